"""UCF101 / HMDB51 split-file datasets: fold membership, labels, test views, augmentation, aggregation, errors,
and the synthetic UCF101-style layout."""

import os
import random
import shutil

import numpy as np
import pytest
import torch

from stica_ext.config import assert_and_infer_cfg, get_cfg
from stica_ext.datasets import build_dataset
from stica_ext.datasets import transforms as T
from stica_ext.datasets import ucf_hmdb as U
from stica_ext.datasets.synthetic import build_synthetic_dataset, write_av_file, write_ucf_style_splits
from stica_ext.engine.finetune import evaluate_classifier

FPS, NUM_SRC_FRAMES, H, W = 30, 60, 32, 48

# UCF101-style groups: fold f tests on group 1 / 8 / 15; group 22 is always a training group.
UCF_CLASSES = ("ApplyEyeMakeup", "HandstandPushups", "YoYo")
UCF_GROUPS = {1: 1, 8: 2, 15: 3, 22: None}


def _file_prefix(cls):
    # the real dataset's spelling gotcha: folder HandstandPushups, files v_HandStandPushups_*
    return "HandStandPushups" if cls == "HandstandPushups" else cls


def _ucf_videos():
    out = []
    for cls in UCF_CLASSES:
        for g, test_fold in UCF_GROUPS.items():
            out.append((f"{cls}/v_{_file_prefix(cls)}_g{g:02d}_c01.avi", cls, test_fold))
    out.append(("YoYo/v_YoYo_g08_c02.avi", "YoYo", 2))
    return out


@pytest.fixture(scope="module")
def video_file(tmp_path_factory):
    """A 2 s, 30 fps, 48 x 32 video whose frame k is a flat grey of level 4 k (frame index readable back)."""
    path = tmp_path_factory.mktemp("src") / "ramp.mp4"
    frames = np.stack([np.full((H, W, 3), 4 * k, dtype=np.uint8) for k in range(NUM_SRC_FRAMES)])
    write_av_file(str(path), frames, None, FPS, 16000)
    return str(path)


def _place(video_file, root, rel):
    dst = os.path.join(root, *rel.split("/"))
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copyfile(video_file, dst)


def make_ucf_tree(base, video_file):
    """UCF101-format tree: class folders with .avi names, classInd.txt, train/test lists for 3 folds (CRLF)."""
    root, ann = os.path.join(base, "UCF-101"), os.path.join(base, "ucfTrainTestlist")
    os.makedirs(ann, exist_ok=True)
    for rel, _, _ in _ucf_videos():
        _place(video_file, root, rel)
    index = {c: i + 1 for i, c in enumerate(UCF_CLASSES)}
    with open(os.path.join(ann, "classInd.txt"), "w", newline="") as f:
        f.write("".join(f"{index[c]} {c}\r\n" for c in UCF_CLASSES))
    for fold in (1, 2, 3):
        with open(os.path.join(ann, f"trainlist{fold:02d}.txt"), "w", newline="") as f:
            f.write("".join(f"{rel} {index[c]}\r\n" for rel, c, tf in _ucf_videos() if tf != fold))
        with open(os.path.join(ann, f"testlist{fold:02d}.txt"), "w", newline="") as f:
            f.write("".join(f"{rel}\r\n" for rel, c, tf in _ucf_videos() if tf == fold))
    return root, ann


HMDB = {  # class -> {video: tags for folds 1, 2, 3}
    "brush_hair": {"April_09_brush_hair_u_nm_np1_ba_goo_0.avi": (1, 2, 1), "Blonde_brush_hair_f_nm_np1_ba_med_1.avi":
                   (2, 1, 1), "Brushing_hair_u_nm_np1_fr_goo_2.avi": (1, 1, 2), "unused_brush_0.avi": (0, 0, 0)},
    "cartwheel": {"Cartwheel_f_cm_np1_le_med_0.avi": (1, 2, 2), "Bodenturnen_cartwheel_f_cm_np1_ri_med_1.avi":
                  (2, 1, 1), "park_cartwheel_f_cm_np1_le_bad_2.avi": (1, 1, 2)},
}


def make_hmdb_tree(base, video_file):
    root, ann = os.path.join(base, "hmdb51"), os.path.join(base, "testTrainMulti_7030_splits")
    os.makedirs(ann, exist_ok=True)
    for cls, videos in HMDB.items():
        for name in videos:
            _place(video_file, root, f"{cls}/{name}")
        for fold in (1, 2, 3):
            with open(os.path.join(ann, f"{cls}_test_split{fold}.txt"), "w", newline="") as f:
                f.write("".join(f"{name} {tags[fold - 1]} \r\n" for name, tags in videos.items()))  # trailing space
    return root, ann


def ds_cfg(root, ann, **over):
    cfg = get_cfg()
    cfg.NUM_GPUS = 0
    cfg.DATA.PATH_TO_DATA_DIR = root
    cfg.DATA.ANNOTATION_DIR = ann
    cfg.DATA.NUM_FRAMES = 8
    cfg.DATA.SAMPLING_RATE = 1
    cfg.DATA.TARGET_FPS = 30
    cfg.DATA.TRAIN_CROP_SIZE = 32
    cfg.DATA.TEST_CROP_SIZE = 32
    cfg.DATA.TRAIN_JITTER_SCALES = [32, 40]
    cfg.DATA.TRAIN_JITTER_SCALES_RELATIVE = [0.14, 1.0]
    cfg.DATA.TRAIN_JITTER_ASPECT_RELATIVE = [0.75, 4 / 3]
    cfg.TRAIN.CLIPS_PER_VIDEO = 10
    cfg.TEST.NUM_ENSEMBLE_VIEWS = 10
    cfg.TEST.NUM_SPATIAL_CROPS = 3
    cfg.merge_from_list([x for kv in over.items() for x in kv])
    return assert_and_infer_cfg(cfg)


@pytest.fixture(scope="module")
def ucf(tmp_path_factory, video_file):
    return make_ucf_tree(str(tmp_path_factory.mktemp("ucf")), video_file)


@pytest.fixture(scope="module")
def hmdb(tmp_path_factory, video_file):
    return make_hmdb_tree(str(tmp_path_factory.mktemp("hmdb")), video_file)


# ---------------------------------------------------------------------------------------------------------------
# Fold membership and labels
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fold", [1, 2, 3])
def test_ucf101_folds_labels_and_handstand_case(ucf, fold):
    root, ann = ucf
    assert open(os.path.join(ann, "testlist01.txt"), "rb").read().count(b"\r\n") == 3  # CRLF files
    cfg = ds_cfg(root, ann, **{"DATA.FOLD": str(fold)})
    train = build_dataset("ucf101", cfg, "train")
    test = build_dataset("ucf101", cfg, "test")
    expect_test = sorted(rel for rel, _, tf in _ucf_videos() if tf == fold)
    expect_train = sorted(rel for rel, _, tf in _ucf_videos() if tf != fold)
    assert test.rel_paths == expect_test and train.rel_paths == expect_train
    assert not set(train.rel_paths) & set(test.rel_paths)
    assert train.classes == sorted(UCF_CLASSES)
    for ds in (train, test):
        assert ds.labels == [sorted(UCF_CLASSES).index(r.split("/")[0]) for r in ds.rel_paths]
        assert all(os.path.isfile(p) for p in ds.paths)
    # the folder / file case mismatch is matched exactly, as listed
    assert f"HandstandPushups/v_HandStandPushups_g{[1, 8, 15][fold - 1]:02d}_c01.avi" in test.rel_paths
    assert "HandstandPushups/v_HandStandPushups_g22_c01.avi" in train.rel_paths
    # items: training lists each video CLIPS_PER_VIDEO times, testing 10 x 3 views; "val" is the test list
    assert len(train) == 10 * train.num_videos and len(test) == 30 * test.num_videos
    assert build_dataset("ucf101", cfg, "val").rel_paths == test.rel_paths


def test_ucf101_matching_is_exact_no_case_folding(ucf, tmp_path):
    """A listed path that differs from the file on disk only by case is a missing video (no special case)."""
    root, ann = ucf
    ann2 = tmp_path / "ann"
    shutil.copytree(ann, ann2)
    text = (ann2 / "testlist01.txt").read_bytes().replace(b"v_HandStandPushups_g01", b"v_HandstandPushups_g01")
    (ann2 / "testlist01.txt").write_bytes(text)
    with pytest.raises(U.SplitFileError, match="HandstandPushups/v_HandstandPushups_g01_c01.avi"):
        build_dataset("ucf101", ds_cfg(root, str(ann2)), "test")


@pytest.mark.parametrize("fold", [1, 2, 3])
def test_hmdb51_folds_and_labels(hmdb, fold):
    root, ann = hmdb
    cfg = ds_cfg(root, ann, **{"DATA.FOLD": str(fold)})
    train = build_dataset("hmdb51", cfg, "train")
    test = build_dataset("hmdb51", cfg, "test")
    expect = {tag: sorted(f"{c}/{n}" for c, vids in HMDB.items() for n, tags in vids.items() if tags[fold - 1] == tag)
              for tag in (1, 2)}
    assert train.rel_paths == expect[1] and test.rel_paths == expect[2]
    assert "brush_hair/unused_brush_0.avi" not in train.rel_paths + test.rel_paths  # tag 0 = unused
    assert train.classes == ["brush_hair", "cartwheel"]
    assert test.labels == [0 if r.startswith("brush_hair/") else 1 for r in test.rel_paths]


# ---------------------------------------------------------------------------------------------------------------
# Test views and training clips
# ---------------------------------------------------------------------------------------------------------------
def test_thirty_test_views_time_offsets_and_crops(ucf):
    root, ann = ucf
    cfg = ds_cfg(root, ann)
    test = build_dataset("ucf101", cfg, "test")
    assert test.clips_per_video == 30
    clip_size = 8  # NUM_FRAMES x SAMPLING_RATE / TARGET_FPS x fps (30 fps source)
    delta = NUM_SRC_FRAMES - clip_size
    video = 1
    for v in range(30):
        index = video * 30 + v
        frames, label, idx, start, meta = test[index]
        k, s = v // 3, v % 3
        assert idx == index and label == test.labels[video] and meta["video_idx"] == video
        assert (meta["temporal_idx"], meta["spatial_idx"]) == (k, s) == test.view_of(index)
        first = int(delta * k / 10)
        assert start == pytest.approx(first / FPS, abs=1e-6)
        # the first frame's grey level is 4 x its frame index
        x = frames[0]
        assert x.shape == (3, 8, 32, 32)
        level = float((x[:, 0] * 0.225 + 0.45).mean() * 255)
        assert level == pytest.approx(4 * first, abs=3)
        # short side 32 = crop size: the 48-px wide frame gives left / centre / right crops at x = 0 / 8 / 16
        assert meta["crop_box"].tolist() == [0, [0, 8, 16][s], 32, 32]
    # deterministic: the same view twice, in any epoch
    a, b = test[(5, 0)], test[(5, 3)]
    assert torch.equal(a[0][0], b[0][0])


def test_uniform_crop_box_matches_transforms():
    x = torch.arange(40 * 64, dtype=torch.float32).view(1, 1, 40, 64)
    for idx in (0, 1, 2):
        y0, x0, h, w = U.uniform_crop_box(40, 64, 32, idx)
        assert torch.equal(x[..., y0:y0 + h, x0:x0 + w], T.uniform_crop(x, 32, idx))
    assert [U.uniform_crop_box(64, 40, 32, i)[0] for i in (0, 1, 2)] == [0, 16, 32]  # portrait: top/centre/bottom
    # the test transform on a horizontal ramp: the crop's first column is its x offset
    frames = torch.arange(48, dtype=torch.uint8).view(1, 1, 48, 1).expand(2, 32, 48, 3).contiguous()
    for idx, x0 in ((0, 0), (1, 8), (2, 16)):
        out, box = U.finetune_test_transform(frames, crop_size=32, spatial_idx=idx, mean=[0.0] * 3, std=[1.0] * 3)
        assert box == (0, x0, 32, 32) and out.shape == (3, 2, 32, 32)
        assert out[0, 0, 0, 0].item() * 255 == pytest.approx(x0, abs=1e-3)


def test_random_resized_crop_reaches_every_offset():
    rng = random.Random(0)
    ys, xs = set(), set()
    for _ in range(2000):
        y0, x0, h, w = U.random_resized_crop_box(10, 10, (0.25, 0.25), (1.0, 1.0), rng)
        assert (h, w) == (5, 5)
        ys.add(y0)
        xs.add(x0)
    assert ys == xs == set(range(6))  # 0 .. H - h, both ends included
    # every box fits, area and aspect within range
    for _ in range(500):
        y0, x0, h, w = U.random_resized_crop_box(32, 48, (0.14, 1.0), (3 / 4, 4 / 3), rng)
        assert 0 <= y0 <= 32 - h and 0 <= x0 <= 48 - w and h >= 1 and w >= 1
    # impossible draws fall back to the centred box with the ratio clamped
    assert U.random_resized_crop_box(10, 100, (2.0, 2.0), (0.5, 2.0), rng) == (0, 40, 10, 20)


def test_training_items_and_color_jitter(ucf):
    root, ann = ucf
    cfg = ds_cfg(root, ann)
    train = build_dataset("ucf101", cfg, "train")
    frames, label, index, start, meta = train[(3, 0)]
    assert frames[0].shape == (3, 8, 32, 32) and index == 3 and meta["temporal_idx"] == -1
    y0, x0, h, w = meta["crop_box"].tolist()
    assert 0 <= y0 <= H - h and 0 <= x0 <= W - w
    again = train[(3, 0)]
    assert torch.equal(again[0][0], frames[0]) and again[3] == start  # same (index, epoch): same clip
    other = [train[(3, e)] for e in range(1, 6)]
    assert any(not torch.equal(o[0][0], frames[0]) for o in other)  # new augmentation in other epochs
    # colour jitter: off (prob 0) keeps the cropped pixels; on, a flat grey stays grey (RGB luminance, per frame)
    grey = torch.full((4, 16, 16, 3), 128, dtype=torch.uint8)
    kw = dict(crop_size=16, mean=[0.0] * 3, std=[1.0] * 3, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False)
    plain, _ = U.finetune_train_transform(grey, rng=random.Random(1), color_prob=0.0, **kw)
    assert torch.allclose(plain, torch.full_like(plain, 128 / 255))
    jittered = [U.finetune_train_transform(grey, rng=random.Random(s), color_prob=1.0, **kw)[0] for s in range(5)]
    for j in jittered:
        assert torch.allclose(j[0], j[1], atol=1e-5) and torch.allclose(j[1], j[2], atol=1e-5)  # still grey
    assert len({round(float(j.mean()), 4) for j in jittered}) > 1  # brightness / contrast changed it


# ---------------------------------------------------------------------------------------------------------------
# Per-video aggregation
# ---------------------------------------------------------------------------------------------------------------
class _FakeTestSet:
    clips_per_video = 3
    num_videos = 2
    labels = [0, 1]


def test_per_video_aggregation_against_hand_computation():
    """Mean of logits (reference) and sum of softmax scores (PySlowFast) differ on this example; padding duplicates
    and undecodable clips are left out."""
    logits = {0: [10.0, 0.0], 1: [0.0, 2.0], 2: [0.0, 2.0],  # video 0 (label 0)
              3: [0.0, 3.0], 4: [2.0, 0.0], 5: [9.0, 0.0]}  # video 1 (label 1); clip 5 cannot be decoded
    table = torch.tensor([logits[i] for i in range(6)])

    class Model(torch.nn.Module):
        def forward(self, x):
            return table[x[0][:, 0, 0, 0, 0].long()]

    def batch(indices, skipped):
        x = torch.zeros(len(indices), 3, 1, 1, 1)
        x[:, 0, 0, 0, 0] = torch.tensor(indices, dtype=torch.float32)
        return ([x], torch.tensor([i // 3 for i in indices]), torch.tensor(indices), torch.zeros(len(indices)),
                {"skipped": torch.tensor(skipped)})

    loader = [batch([4, 0, 5], [0, 0, 1]), batch([2, 1, 3, 0], [0, 0, 0, 0])]  # out of order, 0 padded twice
    cfg = get_cfg()
    results = {}
    for method in ("mean_logits", "sum"):
        cfg.DATA.ENSEMBLE_METHOD = method
        results[method] = evaluate_classifier(cfg, Model(), loader, _FakeTestSet(), torch.device("cpu"))
    # Hand computation. Video 0: mean of logits (10/3, 4/3) -> class 0 (right); sum of softmax scores
    # p0 = 1.0000 + 0.1192 + 0.1192 = 1.238 < p1 = 1.762 -> class 1 (wrong). Video 1 (clips 3, 4; clip 5 left
    # out, with it the mean would be (11/3, 1) -> wrong): mean (1, 1.5) -> class 1; softmax sum p0 = 0.0474 +
    # 0.8808 = 0.928 < p1 = 1.072 -> class 1. Clips: 0 right, 1 wrong, 2 wrong, 3 right, 4 wrong -> 40 %.
    for r in results.values():
        assert r["num_clips"] == 5 and r["skipped_clips"] == 1 and r["num_videos"] == 2
        assert r["clip_top1"] == pytest.approx(40.0) and r["clip_top5"] == pytest.approx(100.0)
    assert results["mean_logits"]["video_top1"] == pytest.approx(100.0)
    assert results["sum"]["video_top1"] == pytest.approx(50.0)
    from stica_ext.engine.linear_probe import aggregate_views

    vscores, present = aggregate_views(table[:3], torch.zeros(3, dtype=torch.long), 1, "sum")
    assert torch.allclose(vscores, table[:3].softmax(1).sum(0, keepdim=True)) and bool(present.all())
    vscores, _ = aggregate_views(table[:3], torch.zeros(3, dtype=torch.long), 1, "mean_logits")
    assert torch.allclose(vscores, torch.tensor([[10 / 3, 4 / 3]]))


# ---------------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------------
def _copy_tree(src_root, src_ann, dst):
    root, ann = os.path.join(dst, "root"), os.path.join(dst, "ann")
    shutil.copytree(src_root, root)
    shutil.copytree(src_ann, ann)
    return root, ann


def test_missing_split_file_names_the_path(ucf, hmdb, tmp_path):
    root, ann = _copy_tree(*ucf, str(tmp_path / "u"))
    os.remove(os.path.join(ann, "testlist02.txt"))
    with pytest.raises(FileNotFoundError, match="testlist02.txt"):
        build_dataset("ucf101", ds_cfg(root, ann, **{"DATA.FOLD": "2"}), "train")
    os.remove(os.path.join(ann, "classInd.txt"))
    with pytest.raises(FileNotFoundError, match="classInd.txt"):
        build_dataset("ucf101", ds_cfg(root, ann), "train")
    hroot, hann = _copy_tree(*hmdb, str(tmp_path / "h"))
    os.remove(os.path.join(hann, "cartwheel_test_split3.txt"))
    with pytest.raises(U.SplitFileError, match=r"cartwheel_test_split3\.txt") as e:
        build_dataset("hmdb51", ds_cfg(hroot, hann, **{"DATA.FOLD": "3"}), "train")
    assert "'cartwheel'" in str(e.value)
    with pytest.raises(FileNotFoundError, match=r"_test_split1\.txt"):
        build_dataset("hmdb51", ds_cfg(hroot, str(tmp_path)), "train")


def test_empty_fold_names_the_list(ucf, tmp_path):
    root, ann = _copy_tree(*ucf, str(tmp_path))
    open(os.path.join(ann, "testlist03.txt"), "w").close()
    with pytest.raises(U.SplitFileError, match="empty") as e:
        build_dataset("ucf101", ds_cfg(root, ann, **{"DATA.FOLD": "3"}), "test")
    assert os.path.join(ann, "testlist03.txt") in str(e.value)


def test_class_folder_absent_from_lists(ucf, tmp_path):
    root, ann = _copy_tree(*ucf, str(tmp_path))
    for extra in ("Zebra", "ucfTrainTestlist"):
        os.makedirs(os.path.join(root, extra))
    with pytest.raises(U.SplitFileError) as e:
        build_dataset("ucf101", ds_cfg(root, ann), "train")
    msg = str(e.value)
    assert root in msg and "'Zebra'" in msg and "'ucfTrainTestlist'" in msg and "trainlist01.txt" in msg


def test_listed_video_missing_on_disk(ucf, tmp_path):
    root, ann = _copy_tree(*ucf, str(tmp_path))
    os.remove(os.path.join(root, "YoYo", "v_YoYo_g22_c01.avi"))
    with pytest.raises(U.SplitFileError, match="YoYo/v_YoYo_g22_c01.avi") as e:
        build_dataset("ucf101", ds_cfg(root, ann), "train")
    assert "trainlist01.txt" in str(e.value) and "DATA.SKIP_MISSING_VIDEOS" in str(e.value)
    ds = build_dataset("ucf101", ds_cfg(root, ann, **{"DATA.SKIP_MISSING_VIDEOS": "True"}), "train")
    assert ds.num_missing == 1 and "YoYo/v_YoYo_g22_c01.avi" not in ds.rel_paths
    assert ds.num_videos == len([v for v in _ucf_videos() if v[2] != 1]) - 1


def test_undecodable_test_view_is_marked_skipped(ucf, tmp_path):
    root, ann = _copy_tree(*ucf, str(tmp_path))
    with open(os.path.join(root, "YoYo", "v_YoYo_g01_c01.avi"), "wb") as f:
        f.write(os.urandom(3000))
    test = build_dataset("ucf101", ds_cfg(root, ann), "test")
    v = test.rel_paths.index("YoYo/v_YoYo_g01_c01.avi")
    frames, label, _, _, meta = test[v * 30]
    assert meta["skipped"] == 1 and label == test.labels[v] and not frames[0].any()
    train = build_dataset("ucf101", ds_cfg(root, ann, **{"DATA.FOLD": "2"}), "train")
    i = train.rel_paths.index("YoYo/v_YoYo_g01_c01.avi") * 10
    _, label, _, _, meta = train[i]
    assert meta["skipped"] >= 1 and label == train.labels[meta["video_idx"]]  # replaced, label of the replacement


# ---------------------------------------------------------------------------------------------------------------
# Synthetic UCF101-style layout
# ---------------------------------------------------------------------------------------------------------------
def test_synthetic_ucf_style_layout(tmp_path):
    folder = build_synthetic_dataset(str(tmp_path), num_train=24, num_val=3, num_test=3, seed=2, size=32,
                                     duration=1.0, fps=30, sample_rate=16000, num_workers=1, progress=False)
    video_root, split_dir = write_ucf_style_splits(folder)
    assert write_ucf_style_splits(folder) == (video_root, split_dir)  # reused
    class_ind = open(os.path.join(split_dir, "classInd.txt"), "rb").read().decode()
    assert class_ind.endswith("\r\n") and class_ind.splitlines()[0] == "1 CircleBilliard"
    classes = sorted(os.listdir(video_root))
    assert len(classes) == 10 and [ln.split()[1] for ln in class_ind.splitlines()] == classes
    all_videos = {f"{c}/{n}" for c in classes for n in os.listdir(os.path.join(video_root, c))}
    assert len(all_videos) == 30
    tests = []
    for fold in (1, 2, 3):
        raw = open(os.path.join(split_dir, f"testlist{fold:02d}.txt"), "rb").read().decode()
        assert raw.count("\r\n") == raw.count("\n")
        test = set(raw.split())
        train_lines = open(os.path.join(split_dir, f"trainlist{fold:02d}.txt"), "rb").read().decode().splitlines()
        train = {ln.split()[0] for ln in train_lines}
        assert train | test == all_videos and not train & test
        for ln in train_lines:  # labels are the classInd indices
            rel, lab = ln.split()
            assert classes.index(rel.split("/")[0]) + 1 == int(lab)
            assert rel.split("/")[1].startswith(f"v_{rel.split('/')[0]}_g")
        tests.append(test)
    assert set.union(*tests) == all_videos and sum(len(t) for t in tests) == 30  # each video tested once
    # the tree reads as UCF101 through the synthetic_ucf dataset; labels are the sorted class-folder index
    cfg = ds_cfg("", "", **{"DATA.PATH_TO_DATA_DIR": folder})
    ds = build_dataset("synthetic_ucf", cfg, "test")
    assert ds.classes == classes and set(ds.rel_paths) == tests[0]
    assert all(os.path.isfile(p) for p in ds.paths)
    frames, label, _, _, _ = ds[0]
    assert frames[0].shape == (3, 8, 32, 32) and 0 <= label < 10
