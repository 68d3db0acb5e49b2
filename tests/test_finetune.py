"""Downstream evaluation: the finetuning schedule, the VideoClassifier and its weight loading, finetune -> test from
the command line with the 3-fold report and resume, linear probe and retrieval per fold, retrieval recall."""

import argparse
import glob
import os
import subprocess
import sys

import pytest
import simplejson
import torch
import torch.nn.functional as F

from stica_ext.config import ConfigError, assert_and_infer_cfg, get_cfg, load_config
from stica_ext.engine import checkpoint as cu
from stica_ext.engine import run_task
from stica_ext.engine.finetune import construct_finetune_optimizer, finetune_lr_at_epoch, set_finetune_lr
from stica_ext.engine.retrieval import retrieval_recall, video_level_features
from stica_ext.models import GDT, STiCA
from stica_ext.models.classifier import VideoClassifier, load_pretrained_backbone
from stica_ext.utils.logging import parse_json_stats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UCF_CFG = os.path.join(ROOT, "configs", "GDT", "UCF101_finetune.yaml")


# ---------------------------------------------------------------------------------------------------------------
# Schedule (spec 6.4 table) and parameter groups
# ---------------------------------------------------------------------------------------------------------------
HEAD = [0.0025, 0.01125] + [0.02] * 5 + [0.001] * 4 + [5e-05]
BACKBONE = [0.00025, 0.001125] + [0.002] * 5 + [0.0001] * 4 + [5e-06]


def test_reference_schedule_table():
    cfg = assert_and_infer_cfg(load_config(cfg_files=[UCF_CFG]))
    assert cfg.SOLVER.MAX_EPOCH == 12 == len(HEAD)
    model = VideoClassifier(num_classes=101, width=4)
    opt = construct_finetune_optimizer(model, cfg)
    groups = {g["name"]: g for g in opt.param_groups}
    assert set(groups) == {"head", "backbone"}
    assert {id(p) for p in groups["head"]["params"]} == {id(p) for p in model.classifier.parameters()}
    n_backbone = sum(p.numel() for p in groups["backbone"]["params"])
    assert n_backbone == sum(p.numel() for p in model.backbone.parameters())
    assert groups["head"]["weight_decay"] == groups["backbone"]["weight_decay"] == 0.005
    assert opt.defaults["momentum"] == 0.9
    for e in range(12):
        lrs = set_finetune_lr(opt, cfg, e)
        assert lrs["head"] == pytest.approx(HEAD[e], rel=1e-12, abs=0)
        assert lrs["backbone"] == pytest.approx(BACKBONE[e], rel=1e-12, abs=0)
        # stepped once per epoch: constant within it
        assert finetune_lr_at_epoch(cfg, e + 0.99) == pytest.approx(HEAD[e], rel=1e-12, abs=0)
    # other policies are the usual ones, scaled to the group's base rate
    cfg.SOLVER.LR_POLICY = "constant"
    cfg.SOLVER.WARMUP_EPOCHS = 0.0
    assert set_finetune_lr(opt, cfg, 3) == pytest.approx({"head": 0.0025, "backbone": 0.00025})


def test_config_checks_name_the_keys():
    for opts, key in ((["DATA.FOLD", "4"], "DATA.FOLD"), (["DATA.FOLDS", "[1, 1]"], "DATA.FOLDS"),
                      (["FINETUNE.POOLING", "max"], "FINETUNE.POOLING"),
                      (["DATA.TRAIN_JITTER_SCALES_RELATIVE", "[0.5]"], "DATA.TRAIN_JITTER_SCALES_RELATIVE"),
                      (["RETRIEVAL.KS", "[0, 5]"], "RETRIEVAL.KS"),
                      (["FINETUNE.EVAL_EPOCHS", "[13]"], "FINETUNE.EVAL_EPOCHS")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            assert_and_infer_cfg(load_config(cfg_files=[UCF_CFG], opts=opts))


# ---------------------------------------------------------------------------------------------------------------
# Classifier and pretrained weights
# ---------------------------------------------------------------------------------------------------------------
def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _video_base(state, prefix="video_network.base."):
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def test_classifier_contract_and_init():
    cfg = get_cfg()
    cfg.RESNET.WIDTH_PER_GROUP = 4
    cfg.MODEL.NUM_CLASSES = 7
    cfg.MODEL.MODEL_NAME = "VideoClassifier"
    cfg.FINETUNE.USE_BN = True
    cfg.MODEL.DROPOUT_RATE = 0.5
    from stica_ext.models import build_model

    model = build_model(cfg)
    assert isinstance(model, VideoClassifier) and model.feat_dim == 32
    w = model.classifier.weight
    assert torch.allclose(w @ w.t(), torch.eye(7), atol=1e-5) and not model.classifier.bias.any()  # orthogonal
    model.eval()
    x = torch.randn(1, 3, 4, 32, 32)
    out = model([x])
    assert out.shape == (1, 7) and torch.equal(out, model(x))  # batch of one keeps its axis; tensor accepted
    assert model.video_features(x).shape == (1, 32)
    assert {"backbone.stem.0.weight", "bn.running_mean", "classifier.weight"} <= set(model.state_dict())
    with pytest.raises(ValueError, match="one pathway"):
        model([x, x])


def test_load_this_projects_and_released_checkpoints(tmp_path):
    gdt = GDT(width=4, embed_dim=16)
    out = tmp_path / "pre"
    path = cu.save_checkpoint(str(out), gdt, None, 3, get_cfg())
    clf = VideoClassifier(num_classes=5, width=4)
    head_before = clf.classifier.weight.clone()
    report = load_pretrained_backbone(clf, path, "pytorch")
    assert _same(_video_base(gdt.state_dict()), _video_base(clf.state_dict(), "backbone."))
    assert torch.equal(clf.classifier.weight, head_before)  # the head keeps its initialisation
    assert report.missing == ["classifier.weight", "classifier.bias"] and not report.unexpected
    assert any(k.startswith("audio_network.") for k in report.dropped)
    assert any(k.startswith("mlp_v.") for k in report.dropped)

    # the released GDT layout: {"model": state_dict, "epoch", "args": Namespace, ...}, no module. prefix
    gdt2 = GDT(width=4, embed_dim=16)
    released = tmp_path / "gdt_released.pth"
    torch.save({"model": gdt2.state_dict(), "epoch": 100, "args": argparse.Namespace(lr=0.01)}, released)
    clf2 = VideoClassifier(num_classes=5, width=4)
    report = load_pretrained_backbone(clf2, str(released), "gdt")
    assert _same(_video_base(gdt2.state_dict()), _video_base(clf2.state_dict(), "backbone.")) and report.epoch == 100
    with pytest.raises(RuntimeError, match="CHECKPOINT_TYPE 'gdt'"):  # the file's layout needs type gdt
        load_pretrained_backbone(VideoClassifier(num_classes=5, width=4), str(released), "pytorch")
    with pytest.raises(ValueError, match="CHECKPOINT_TYPE"):
        load_pretrained_backbone(VideoClassifier(num_classes=5, width=4), path, "gdt")

    # strict on the video backbone: a missing key is an error naming it, and nothing is loaded
    state = gdt2.state_dict()
    del state["video_network.base.layer4.1.conv2.1.running_var"]
    torch.save({"model": state, "epoch": 1}, tmp_path / "broken.pth")
    clf3 = VideoClassifier(num_classes=5, width=4)
    before = {k: v.clone() for k, v in clf3.state_dict().items()}
    with pytest.raises(RuntimeError, match=r"backbone\.layer4\.1\.conv2\.1\.running_var"):
        load_pretrained_backbone(clf3, str(tmp_path / "broken.pth"), "gdt")
    assert _same(before, clf3.state_dict())
    # a width mismatch is a shape error
    with pytest.raises(RuntimeError, match="shape"):
        load_pretrained_backbone(VideoClassifier(num_classes=5, width=8), str(released), "gdt")


def test_load_stica_pooling_strictly(tmp_path):
    stica = STiCA(width=8, embed_dim=16, num_layers=1, num_heads=2)
    path = tmp_path / "stica.pth.tar"
    torch.save({"epoch": 5, "state_dict": {f"module.{k}": v for k, v in stica.state_dict().items()}}, path)
    clf = VideoClassifier(num_classes=4, width=8, pooling="stica", num_layers=1, num_heads=2)
    report = load_pretrained_backbone(clf, str(path), "gdt")
    pool = {k[len("video_pooling."):]: v for k, v in stica.state_dict().items() if k.startswith("video_pooling.")}
    assert pool and _same(pool, {k[len("pooling."):]: v for k, v in clf.state_dict().items()
                                 if k.startswith("pooling.")})
    assert report.missing == ["classifier.weight", "classifier.bias"]
    clf.eval()
    stica.eval()
    x = torch.randn(2, 3, 8, 32, 32)
    assert torch.allclose(clf.video_features(x), stica.video_features(x), atol=1e-5)
    # a classifier with transformer pooling and a checkpoint without one: strict error, not a random transformer
    gap = STiCA(width=8, embed_dim=16, num_layers=0)
    torch.save({"epoch": 5, "state_dict": gap.state_dict()}, tmp_path / "gap.pth.tar")
    with pytest.raises(RuntimeError, match=r"pooling\."):
        load_pretrained_backbone(VideoClassifier(num_classes=4, width=8, pooling="stica", num_layers=1, num_heads=2),
                                 str(tmp_path / "gap.pth.tar"), "gdt")
    # a GAP STiCA checkpoint into a GAP classifier works
    report = load_pretrained_backbone(VideoClassifier(num_classes=4, width=8, pooling="stica", num_layers=0),
                                      str(tmp_path / "gap.pth.tar"), "gdt")
    assert report.missing == ["classifier.weight", "classifier.bias"]


# ---------------------------------------------------------------------------------------------------------------
# Retrieval recall against a hand computation
# ---------------------------------------------------------------------------------------------------------------
def test_retrieval_recall_hand_computed():
    gallery = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.6, 0.8]])
    g_labels = torch.tensor([0, 1, 2, 1])
    queries = torch.tensor([[2.0, 0.1], [0.0, -1.0], [-1.0, 0.05]])
    q_labels = torch.tensor([1, 1, 2])
    # cosine order: q0 -> g0 (0.999), g3 (0.65), g1 (0.05), g2 (-0.999); q1 -> g0 (0), g2 (0, tie kept in
    # gallery order), g3 (-0.8), g1 (-1); q2 -> g2 (0.999) first.  q0 hits at k >= 2, q1 at k >= 3, q2 at k >= 1.
    r = retrieval_recall(queries, q_labels, gallery, g_labels, ks=(1, 2, 3, 4, 20))
    assert r == pytest.approx({"R@1": 100 / 3, "R@2": 200 / 3, "R@3": 100.0, "R@4": 100.0, "R@20": 100.0})
    # per-video features: mean of the L2-normalised clip features, normalised again
    clips = torch.tensor([[3.0, 0.0], [0.0, 0.5], [1.0, 1.0]])
    feats, present = video_level_features(clips, torch.tensor([0, 0, 2]), 3)
    assert present.tolist() == [True, False, True]
    assert torch.allclose(feats[0], F.normalize(torch.tensor([0.5, 0.5]), dim=0))
    assert torch.allclose(feats[2], F.normalize(torch.tensor([1.0, 1.0]), dim=0))


# ---------------------------------------------------------------------------------------------------------------
# End to end on the synthetic UCF101-style data
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture
def one_thread():
    """Tiny convolutions run fastest on one intra-op thread (and do not stall on a busy 2-core machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


TINY = ["RESNET.WIDTH_PER_GROUP", "4", "DATA.NUM_FRAMES", "4", "DATA.SAMPLING_RATE", "4",
        "DATA.TRAIN_CROP_SIZE", "32", "DATA.TEST_CROP_SIZE", "32", "DATA.TRAIN_JITTER_SCALES", "[32, 40]",
        "DATA_LOADER.NUM_WORKERS", "0", "TEST.NUM_ENSEMBLE_VIEWS", "2", "TEST.BATCH_SIZE", "8", "LOG_PERIOD", "100"]


def _stats(path, kind):
    with open(path) as f:
        return [s for s in parse_json_stats(f) if s["_type"] == kind]


def test_finetune_three_folds_from_the_command_line(synth_folder, pretrained, tmp_path, one_thread):
    out = tmp_path / "ft"
    cmd = [sys.executable, os.path.join(ROOT, "tools", "run_net.py"), "--cfg",
           os.path.join(ROOT, "configs", "GDT", "SYNTH_UCF_finetune.yaml"),
           "DATA.PATH_TO_DATA_DIR", synth_folder, "OUTPUT_DIR", str(out), "TRAIN.CHECKPOINT_FILE_PATH", pretrained,
           "TRAIN.BATCH_SIZE", "4", "TRAIN.CLIPS_PER_VIDEO", "1", "SOLVER.MAX_EPOCH", "2", "SOLVER.STEPS", "[0]",
           "FINETUNE.EVAL_EPOCHS", "[1]", "FINETUNE.REPORT_BEST_EPOCH", "True",
           "TRAIN.CHECKPOINT_PERIOD", "1"] + TINY
    env = dict(os.environ, STICA_EXT_NO_SLOWFAST="1", OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    with open(out / "finetune_report.json") as f:
        report = simplejson.load(f)
    md = (out / "finetune_report.md").read_text()
    assert report["folds"] == [1, 2, 3] and report["dataset"] == "synthetic_ucf"
    for fold in (1, 2, 3):
        d = out / f"fold{fold}"
        with open(d / "results.json") as f:
            res = simplejson.load(f)
        assert res["fold"] == fold and [h["epoch"] for h in res["eval_history"]] == [1, 2]
        last = res["results"]["last epoch"]
        assert last["epoch"] == 2 and last["num_videos"] == 10 and last["num_clips"] == 60
        assert res["results"]["best epoch (selected on test)"]["epoch"] in (1, 2)
        assert report["per_fold"][str(fold)] == res["results"]
        assert [os.path.basename(p) for p in cu.list_checkpoints(str(d))] == [
            "checkpoint_epoch_00001.pyth", "checkpoint_epoch_00002.pyth"]
        epochs = _stats(d / "log.txt", "finetune_epoch")
        assert [e["epoch"] for e in epochs] == ["1/2", "2/2"]
        # schedule: warmup x8 over 1 epoch, then x0.05 after epoch 0 -> 0.0025, 0.02 x 0.05
        assert [e["lr"] for e in epochs] == pytest.approx([0.0025, 0.001])
        assert [e["lr_backbone"] for e in epochs] == pytest.approx([0.00025, 0.0001])
        assert "loaded" in (d / "log.txt").read_text()  # the pretrained weights were loaded in every fold
    s = report["summary"]["last epoch"]["video_top1"]
    values = [report["per_fold"][str(f)]["last epoch"]["video_top1"] for f in (1, 2, 3)]
    assert s["values"] == values and s["mean"] == pytest.approx(sum(values) / 3)
    assert f"| last epoch | video top-1 | {values[0]:.2f} | {values[1]:.2f} | {values[2]:.2f} |" in md
    assert "best epoch (selected on test)" in md and "± " in md

    # resume: fold 2 lost its last checkpoint (killed during epoch 2); the rerun trains only that epoch
    os.remove(cu.checkpoint_path(str(out / "fold2"), 2))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert [e["epoch"] for e in _stats(out / "fold1" / "log.txt", "finetune_epoch")] == ["1/2", "2/2"]
    assert [e["epoch"] for e in _stats(out / "fold2" / "log.txt", "finetune_epoch")] == ["1/2", "2/2", "2/2"]
    with open(out / "fold1" / "results.json") as f:
        assert simplejson.load(f)["results"] == report["per_fold"]["1"]

    # a finished fold run again with other test views is not retrained but tested again with them
    cfg = load_config(cfg_files=[cmd[cmd.index("--cfg") + 1]], opts=cmd[cmd.index("--cfg") + 2:])
    cfg.DATA.FOLDS = [1]
    cfg.TEST.NUM_ENSEMBLE_VIEWS = 1
    views = run_task(assert_and_infer_cfg(cfg))["per_fold"]["1"]["last epoch"]
    assert views["epoch"] == 2 and views["num_videos"] == 10 and views["num_clips"] == 10 * cfg.TEST.NUM_SPATIAL_CROPS
    assert [e["epoch"] for e in _stats(out / "fold1" / "log.txt", "finetune_epoch")] == ["1/2", "2/2"]
    with open(out / "fold1" / "results.json") as f:
        assert [h["epoch"] for h in simplejson.load(f)["eval_history"]] == [1, 2]

    # test only (TRAIN.ENABLE False): the last checkpoint of the fold gives the last-epoch numbers again
    cfg = load_config(cfg_files=[cmd[cmd.index("--cfg") + 1]], opts=cmd[cmd.index("--cfg") + 2:])
    cfg.TRAIN.ENABLE = False
    cfg.DATA.FOLDS = [3]
    again = run_task(assert_and_infer_cfg(cfg))
    last = report["per_fold"]["3"]["last epoch"]
    for key in ("video_top1", "video_top5", "clip_top1", "clip_top5", "num_clips", "epoch"):
        assert again["per_fold"]["3"]["last epoch"][key] == pytest.approx(last[key])


def _tiny_cfg(config, synth_folder, out, opts=()):
    cfg = load_config(cfg_files=[os.path.join(ROOT, "configs", "GDT", config)],
                      opts=["DATA.PATH_TO_DATA_DIR", synth_folder, "OUTPUT_DIR", str(out)] + TINY + list(opts))
    return assert_and_infer_cfg(cfg)


def test_linear_probe_and_retrieval_per_fold(synth_folder, pretrained, tmp_path, one_thread):
    cfg = _tiny_cfg("SYNTH_UCF_linear.yaml", synth_folder, tmp_path / "lin",
                    ["TRAIN.CHECKPOINT_FILE_PATH", pretrained, "LINEAR.EPOCHS", "3", "GDT.EMBED_DIM", "16",
                     "DATA.FOLDS", "[1, 3]"])
    report = run_task(cfg)
    assert report["folds"] == [1, 3] and set(report["summary"]) == {"pretrained", "random init"}
    for fold in (1, 3):
        with open(tmp_path / "lin" / f"fold{fold}" / "linear_probe.json") as f:
            rows = simplejson.load(f)
        assert [r["model"] for r in rows] == ["pretrained", "random init"] and rows[0]["num_videos"] == 10
    assert os.path.exists(tmp_path / "lin" / "linear_probe_report.md")

    cfg = _tiny_cfg("SYNTH_UCF_retrieval.yaml", synth_folder, tmp_path / "ret",
                    ["TRAIN.CHECKPOINT_FILE_PATH", pretrained])
    report = run_task(cfg)
    assert report["folds"] == [1, 2, 3]
    for fold in (1, 2, 3):
        with open(tmp_path / "ret" / f"fold{fold}" / "retrieval.json") as f:
            res = simplejson.load(f)["results"]
        assert res["num_queries"] == 10 and res["num_gallery"] == 20
        # every class has 2 training videos per fold and 10 classes: R@20 = 100 %, recall grows with k
        assert res["R@1"] <= res["R@5"] <= res["R@10"] <= res["R@20"] == 100.0
        assert report["per_fold"][str(fold)]["retrieval"]["R@5"] == res["R@5"]
    md = (tmp_path / "ret" / "retrieval_report.md").read_text()
    assert "| retrieval | R@1 |" in md and "| retrieval | R@20 |" in md
    assert sorted(glob.glob(str(tmp_path / "ret" / "fold*"))) == [str(tmp_path / "ret" / f"fold{k}") for k in (1, 2, 3)]
