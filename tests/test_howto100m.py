"""Video-text GDT on HowTo100M-style data: captions, pairing, tokenisation, views, bad videos, text encoder, model.

Runs on a tiny fixture written by :func:`make_howto_fixture` (4 synthetic 6-s videos at 48 px); full-width models
are built on the ``meta`` device only.
"""

import csv
import glob
import json
import math
import os
import random
import shutil
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stica_ext.config import ConfigError, assert_and_infer_cfg, get_cfg, load_config
from stica_ext.datasets import build_dataset
from stica_ext.datasets.howto100m import (
    CaptionStore,
    Howto100mDataset,
    Tokenizer,
    UnusableVideo,
    decode_clips_at,
    read_caption_csv,
    read_video_list,
    sample_clip_start,
    scan_video_root,
    widen_window,
)
from stica_ext.datasets.howto_fixture import fixture_overrides
from stica_ext.datasets.synthetic import generate_clip, write_av_file
from stica_ext.losses.gdt import GDTNCELoss
from stica_ext.models import build_model
from stica_ext.models.classifier import VideoClassifier, load_pretrained_backbone
from stica_ext.models.text import TextEncoder, TextVidGDT
from stica_ext.models.weights import load_pretrained
from stica_ext.registry import DATASET_REGISTRY, MODEL_REGISTRY
from stica_ext.utils.logging import parse_json_stats

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
A3 = "state_dict_textvid_gdt_mlp.txt"
CLIP_FRAMES, CLIP_FPS = 8, 16  # 0.5 s clips in the tests
CLIP_LEN = CLIP_FRAMES / CLIP_FPS
SRC_FPS = 30  # the frame rate of the `fx` fixture's videos (conftest.py)


def howto_cfg(fx, use_json=False, **over):
    cfg = get_cfg()
    cfg.merge_from_list(fixture_overrides(fx, use_json=use_json))
    cfg.RNG_SEED = 0
    cfg.DATA.TARGET_FPS = CLIP_FPS
    cfg.DATA.NUM_FRAMES = CLIP_FRAMES
    cfg.DATA.TRAIN_CROP_SIZE = 32
    cfg.DATA.NUM_RETRIES = 10
    cfg.DATA_LOADER.NUM_WORKERS = 0
    cfg.GDT.HYPOTHESIS = "6"
    cfg.MODEL.MODEL_NAME = "TextVidGDT"
    cfg.RESNET.WIDTH_PER_GROUP = 4
    cfg.GDT.EMBED_DIM = 16
    cfg.TEXT.HIDDEN_DIM = 32
    cfg.TEXT.VOCAB_SIZE = 10
    cfg.merge_from_list([x for kv in over.items() for x in kv])
    return cfg


def read_fixture(name):
    rows = []
    for line in (DATA / name).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, shape, dtype = line.split()
        dims = shape.strip("()")
        rows.append((key, tuple(int(d) for d in dims.split(",")) if dims else (), dtype))
    return rows


def describe(model):
    return [(k, tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in model.state_dict().items()]


# ---------------------------------------------------------------------------------------------------------------
# Config, registries, fixture generator
# ---------------------------------------------------------------------------------------------------------------


def test_text_config_node_defaults():
    t = get_cfg().TEXT
    assert (t.VOCAB_SIZE, t.WORD_DIM, t.HIDDEN_DIM, t.MAX_WORDS, t.MIN_TIME) == (66250, 300, 2048, 20, 4.0)
    assert t.VIDEO_NORMALIZE == "none" and t.MASK_PADDING is False and t.LOWER_CASE is True
    for key in ("VIDEO_LIST", "VIDEO_ROOT", "CAPTION_ROOT", "CAPTION_JSON", "DICT_PATH", "WORD2VEC_PATH"):
        assert t[key] == ""


def test_registered_names(fx):
    assert DATASET_REGISTRY.get("Howto100m") is Howto100mDataset
    assert MODEL_REGISTRY.get("TextVidGDT") is TextVidGDT
    ds = build_dataset("howto100m", howto_cfg(fx), "train")
    assert isinstance(ds, Howto100mDataset) and len(ds) == 4


def test_fixture_files_and_captions_describe_the_videos(fx):
    root = Path(fx["root"])
    manifest = json.loads((root / "manifest.json").read_text())["videos"]
    with open(fx["video_list"]) as f:
        assert f.readline().strip() == "video_id"
    words = np.load(fx["dict_path"], allow_pickle=False)
    assert list(words) == fx["words"]
    w2v = torch.load(fx["word2vec_path"], weights_only=True)
    assert torch.is_tensor(w2v) and w2v.shape == (len(words) + 1, 300) and w2v.dtype == torch.float32
    assert torch.all(w2v[0] == 0)
    for info in manifest:
        rows = fx["captions"][info["video_id"]]
        assert len(rows) == 4 and rows[0][0] == 0.0 and rows[-1][1] == 6.0
        assert all(a[1] == b[0] for a, b in zip(rows, rows[1:]))  # consecutive spans
        for start, end, text in rows:
            assert info["shape"] in text and info["colour"] in text and end > start
        # a caption's motion phrase comes from an event inside its span (or none)
        for start, end, text in rows:
            kinds = {k for t, k in zip(info["impact_times"], info["impact_kinds"]) if start <= t < end}
            if "bounces on the floor" in text:
                assert "floor" in kinds
        with open(root / "captions" / f"{info['video_id']}.csv") as f:
            assert next(csv.reader(f)) == ["start", "end", "text"]
    import av

    with av.open(os.path.join(fx["video_root"], "vid_00000.mp4")) as c:
        assert len(c.streams.audio) == 0 and len(c.streams.video) == 1


# ---------------------------------------------------------------------------------------------------------------
# Video lists and captions
# ---------------------------------------------------------------------------------------------------------------


def test_video_list_header_and_folder_scan(fx, tmp_path):
    ids, paths = read_video_list(fx["video_list"], fx["video_root"])
    assert ids == fx["video_ids"]  # the header row is not a video
    assert paths == [os.path.join(fx["video_root"], f"{v}.mp4") for v in ids]
    assert scan_video_root(fx["video_root"]) == (ids, paths)

    # video_path column (MIL-NCE style), relative to the list's folder when no root is given; extra columns ignored
    p = tmp_path / "list.csv"
    p.write_text("video_path,category\nvideos/a.mp4,Cars\nsub/b.webm,Food\n\n")
    ids2, paths2 = read_video_list(str(p))
    assert ids2 == ["a", "b"] and paths2 == [str(tmp_path / "videos/a.mp4"), str(tmp_path / "sub/b.webm")]

    (tmp_path / "header_only.csv").write_text("video_id\n")
    with pytest.raises(ValueError, match="names no video"):
        read_video_list(str(tmp_path / "header_only.csv"))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty"):
        read_video_list(str(tmp_path / "empty.csv"))
    (tmp_path / "no_header.csv").write_text("abc\ndef\n")
    with pytest.raises(ValueError, match="video_id"):
        read_video_list(str(tmp_path / "no_header.csv"))


def test_caption_csv_and_json_parse_the_same(fx):
    by_csv = CaptionStore(caption_root=fx["caption_root"])
    by_json = CaptionStore(caption_json=fx["caption_json"])
    fractional = 0
    for vid, rows in fx["captions"].items():
        for store in (by_csv, by_json):
            caps = store.get(vid)
            assert caps.start.dtype == np.float64 and len(caps) == len(rows)
            assert caps.start.tolist() == [r[0] for r in rows] and caps.end.tolist() == [r[1] for r in rows]
            assert list(caps.text) == [r[2] for r in rows]
        fractional += sum(1 for r in rows if r[0] != int(r[0]))
    assert fractional > 0  # times are not truncated to integers
    with pytest.raises(UnusableVideo, match="no entry"):
        by_json.get("not_a_video")
    with pytest.raises(UnusableVideo, match="not found"):
        by_csv.get("not_a_video")


def test_caption_csv_edge_cases(tmp_path):
    p = tmp_path / "v.csv"
    p.write_text('start,end,text\n0.5,1.25,"hello, world"\n2,3,\nx,4,bad time\n4.75,9.5,last\n')
    caps = read_caption_csv(str(p))
    assert caps.start.tolist() == [0.5, 2.0, 4.75] and caps.end.tolist() == [1.25, 3.0, 9.5]
    assert caps.text == ("hello, world", "", "last")  # empty text stays "" (not "nan"); bad time row dropped
    (tmp_path / "w.csv").write_text("begin,finish,caption\n0,1,a\n")
    with pytest.raises(UnusableVideo, match="lacks column"):
        read_caption_csv(str(tmp_path / "w.csv"))


def test_caption_csvs_are_read_once(fx, tmp_path):
    root = tmp_path / "caps"
    shutil.copytree(fx["caption_root"], root)
    store = CaptionStore(caption_root=str(root))
    first = store.get("vid_00000")
    os.remove(root / "vid_00000.csv")
    assert store.get("vid_00000") is first  # served from the cache, the file is not read again
    small = CaptionStore(caption_root=str(root), cache_size=1)
    small.get("vid_00001")
    small.get("vid_00002")  # evicts vid_00001
    os.remove(root / "vid_00001.csv")
    with pytest.raises(UnusableVideo):
        small.get("vid_00001")


# ---------------------------------------------------------------------------------------------------------------
# Pairing: widening and clip placement
# ---------------------------------------------------------------------------------------------------------------


def test_widen_window():
    assert widen_window(10.3, 11.1, 4.0) == pytest.approx((8.7, 12.7))  # symmetric, fractional kept
    assert widen_window(1.0, 2.0, 4.0) == (0.0, 4.0)  # clamped at 0, still MIN_TIME long
    assert widen_window(3.25, 9.5, 4.0) == (3.25, 9.5)  # long enough: unchanged
    assert widen_window(5.0, 5.0, 0.0) == (5.0, 5.0)


def test_clip_start_inside_the_window():
    rng = random.Random(0)
    starts = [sample_clip_start(2.3, 6.3, 1.875, rng) for _ in range(2000)]
    assert min(starts) >= 2.3 and max(starts) <= 6.3 - 1.875 + 1e-12
    assert max(starts) - min(starts) > 1.9  # covers the range
    assert any(s != int(s) for s in starts)
    assert sample_clip_start(2.0, 3.0, 1.875, rng) == 2.0  # window shorter than the clip: start at its start
    assert sample_clip_start(8.0, 12.0, 1.875, rng, duration=6.0) == pytest.approx(6.0 - 1.875)  # clamp to video
    assert sample_clip_start(0.0, 4.0, 1.875, rng, duration=1.0) == 0.0


def test_dataset_clips_lie_inside_widened_captions(fx):
    ds = Howto100mDataset(howto_cfg(fx), "train")
    seen_fractional = False
    for index in range(4):
        caps = ds.captions.get(ds.video_ids[index])
        for epoch in range(3):
            pairs = ds.sample_pairs(index, ds.item_rng(epoch, index, 0))
            assert len(pairs) == 2 and pairs[0].caption_index != pairs[1].caption_index
            for p in pairs:
                ws, we = p.window
                assert (ws, we) == widen_window(caps.start[p.caption_index], caps.end[p.caption_index], 4.0)
                assert we - ws >= 4.0 - 1e-9
                # the first decoded frame is on the source grid at or after the drawn start
                assert ws - 1e-6 <= p.clip_start <= we - CLIP_LEN + 1.0 / SRC_FPS + 1e-6
                assert p.clip_start + CLIP_LEN <= 6.0 + 1e-6
                seen_fractional |= p.clip_start != int(p.clip_start)
    assert seen_fractional


def test_decode_clips_at_given_times(fx):
    path = os.path.join(fx["video_root"], "vid_00000.mp4")
    duration, clips = decode_clips_at(path, lambda d: [1.0, 2.5, 99.0], num_frames=CLIP_FRAMES, sampling_rate=1,
                                      target_fps=CLIP_FPS)
    assert duration == pytest.approx(6.0)
    assert [c.frames.shape for c in clips] == [(CLIP_FRAMES, 48, 48, 3)] * 3
    assert clips[0].start_sec == pytest.approx(1.0, abs=1.0 / SRC_FPS)
    assert clips[1].start_sec == pytest.approx(2.5, abs=1.0 / SRC_FPS)
    assert clips[2].start_sec == pytest.approx(6.0 - CLIP_LEN, abs=1.0 / SRC_FPS)  # clamped to the video


# ---------------------------------------------------------------------------------------------------------------
# Tokenisation
# ---------------------------------------------------------------------------------------------------------------

VOCAB = ["the", "red", "circle", "Paris", "don't", "bounces", "red"]


def test_tokenizer_edge_cases():
    tok = Tokenizer(VOCAB, max_words=5)
    assert tok("zzz qqq !!!").tolist() == [0] * 5  # all words unknown
    assert tok("").tolist() == [0] * 5
    assert tok("red,circle!bounces...the").tolist() == [2, 3, 6, 1, 0]  # punctuation separates words
    assert tok("the red circle bounces the red circle").tolist() == [1, 2, 3, 6, 1]  # truncated
    assert tok("don't stop").tolist() == [5, 0, 0, 0, 0]  # apostrophes stay inside words
    assert tok("The RED Circle").tolist() == [1, 2, 3, 0, 0]  # lower-case lookup
    assert tok("Paris paris PARIS").tolist() == [4, 0, 0, 0, 0]  # exact-case fallback only
    assert tok(float("nan")).tolist() == [0] * 5
    assert tok("red").dtype == torch.int64
    exact = Tokenizer(VOCAB, max_words=5, lower_case=False)
    assert exact("The red Paris").tolist() == [2, 4, 0, 0, 0]  # reference: case-sensitive
    assert tok.vocab_size == len(VOCAB) + 1


def test_tokenizer_reads_dict_npy(tmp_path):
    np.save(tmp_path / "u.npy", np.array(VOCAB))
    np.save(tmp_path / "o.npy", np.array(VOCAB, dtype=object), allow_pickle=True)
    for name in ("u.npy", "o.npy"):
        assert Tokenizer.from_file(str(tmp_path / name), max_words=3)("red circle").tolist() == [2, 3, 0]
    with pytest.raises(FileNotFoundError, match="TEXT.DICT_PATH"):
        Tokenizer.from_file(str(tmp_path / "missing.npy"))


# ---------------------------------------------------------------------------------------------------------------
# Items: view layout, normalisation, bad videos
# ---------------------------------------------------------------------------------------------------------------


def test_four_view_layout(fx):
    ds = Howto100mDataset(howto_cfg(fx), "train")
    item = ds[(1, 2)]
    assert item["video"].shape == (4, 3, CLIP_FRAMES, 32, 32) and item["video"].dtype == torch.float32
    assert item["text"].shape == (4, 20) and item["text"].dtype == torch.int64
    assert (int(item["label"]), int(item["index"]), int(item["skipped"])) == (0, 1, 0)
    assert 0.0 <= float(item["video"].min()) and float(item["video"].max()) <= 1.0  # "none": /255 only
    pairs = ds.sample_pairs(1, ds.item_rng(2, 1, 0))  # the same draws as the item
    v, t = item["video"], item["text"]
    caps = ds.captions.get("vid_00001")
    assert torch.equal(v[0], pairs[0].video) and torch.equal(v[2], pairs[1].video)
    assert torch.equal(v[1], v[0].flip(1)) and torch.equal(v[3], v[2].flip(1))  # reversed frames
    assert torch.equal(t[0], ds.tokenizer(caps.text[pairs[0].caption_index]))
    assert torch.equal(t[2], ds.tokenizer(caps.text[pairs[1].caption_index]))  # shift: a second caption
    assert not torch.equal(t[0], t[2]) and not torch.equal(v[0], v[2])
    assert torch.equal(t[1], t[0].flip(0)) and torch.equal(t[3], t[2].flip(0))  # reversed tokens
    assert int(t[1, 0]) == 0 and int(t[1, -1]) != 0  # padding moved to the front

    # the same item from caption.json
    ds_json = Howto100mDataset(howto_cfg(fx, use_json=True), "train")
    item_json = ds_json[(1, 2)]
    assert torch.equal(item_json["video"], v) and torch.equal(item_json["text"], t)


@pytest.mark.parametrize("hypothesis,layout", [("1", ["orig"]), ("2", ["orig", "rev"]), ("4", ["orig", "shift"])])
def test_views_follow_the_hypothesis(fx, hypothesis, layout):
    ds = Howto100mDataset(howto_cfg(fx, **{"GDT.HYPOTHESIS": hypothesis}), "train")
    item = ds[(0, 0)]
    assert item["video"].shape[0] == item["text"].shape[0] == len(layout)
    full = Howto100mDataset(howto_cfg(fx), "train")[(0, 0)]
    assert torch.equal(item["video"][0], full["video"][0]) and torch.equal(item["text"][0], full["text"][0])
    if layout[1:] == ["rev"]:
        assert torch.equal(item["text"][1], item["text"][0].flip(0))
        assert torch.equal(item["video"][1], item["video"][0].flip(1))
    if layout[1:] == ["shift"]:
        assert torch.equal(item["text"][1], full["text"][2]) and torch.equal(item["video"][1], full["video"][2])


def test_mean_std_normalisation(fx):
    plain = Howto100mDataset(howto_cfg(fx), "train")[(3, 0)]["video"]
    normed = Howto100mDataset(howto_cfg(fx, **{"TEXT.VIDEO_NORMALIZE": "mean_std"}), "train")[(3, 0)]["video"]
    assert torch.allclose(normed, (plain - 0.45) / 0.225, atol=1e-5)
    with pytest.raises(ValueError, match="TEXT.VIDEO_NORMALIZE"):
        Howto100mDataset(howto_cfg(fx, **{"TEXT.VIDEO_NORMALIZE": "zscore"}), "train")


@pytest.fixture(scope="module")
def bad_fx(fx, tmp_path_factory):
    """The fixture plus five unusable videos: corrupt file, missing file, no caption file, too short, no captions."""
    root = tmp_path_factory.mktemp("howto_bad")
    videos, caps = root / "videos", root / "captions"
    shutil.copytree(fx["video_root"], videos)
    shutil.copytree(fx["caption_root"], caps)
    data = json.loads(Path(fx["caption_json"]).read_text())
    row = "start,end,text\n0.0,2.0,a red circle\n"
    (videos / "corrupt.mp4").write_bytes(os.urandom(4000))
    (caps / "corrupt.csv").write_text(row)
    (caps / "missing.csv").write_text(row)
    shutil.copy(videos / "vid_00000.mp4", videos / "nocaps.mp4")
    short = generate_clip(5, 0, size=48, duration=0.3, fps=SRC_FPS, sample_rate=8000)
    write_av_file(str(videos / "short.mp4"), short.frames, None, SRC_FPS, 8000)
    (caps / "short.csv").write_text(row)
    shutil.copy(videos / "vid_00000.mp4", videos / "empty.mp4")
    (caps / "empty.csv").write_text("start,end,text\n")
    for vid in ("corrupt", "missing", "short"):
        data[vid] = {"start": [0.0], "end": [2.0], "text": ["a red circle"]}
    data["empty"] = {"start": [], "end": [], "text": []}
    (root / "caption.json").write_text(json.dumps(data))
    bad = ["corrupt", "missing", "nocaps", "short", "empty"]
    (root / "videos.csv").write_text("video_id\n" + "\n".join(bad[:3] + fx["video_ids"] + bad[3:]) + "\n")
    return dict(fx, video_root=str(videos), caption_root=str(caps), caption_json=str(root / "caption.json"),
                video_list=str(root / "videos.csv"), bad=bad)


@pytest.mark.parametrize("use_json", [False, True])
def test_bad_videos_are_skipped_and_counted(bad_fx, use_json):
    ds = Howto100mDataset(howto_cfg(bad_fx, use_json=use_json), "train")
    good = {ds.video_ids.index(v) for v in bad_fx["video_ids"]}
    for name in bad_fx["bad"]:
        i = ds.video_ids.index(name)
        item = ds[(i, 0)]
        assert int(item["skipped"]) >= 1 and int(item["index"]) in good, name
        assert item["video"].shape == (4, 3, CLIP_FRAMES, 32, 32)
    for i in good:
        assert int(ds[(i, 0)]["skipped"]) == 0


def test_all_bad_videos_raise(bad_fx, tmp_path):
    (tmp_path / "bad.csv").write_text("video_id\n" + "\n".join(bad_fx["bad"]) + "\n")
    cfg = howto_cfg(bad_fx, **{"TEXT.VIDEO_LIST": str(tmp_path / "bad.csv"), "DATA.NUM_RETRIES": "3"})
    ds = Howto100mDataset(cfg, "train")
    with pytest.raises(RuntimeError, match="4 consecutive videos"):
        ds[0]


# ---------------------------------------------------------------------------------------------------------------
# Text encoder and TextVidGDT
# ---------------------------------------------------------------------------------------------------------------


def test_state_dict_matches_reference_a3():
    rows = read_fixture(A3)
    assert len(rows) == 241
    with torch.device("meta"):
        model = TextVidGDT()
        linear = TextVidGDT(use_mlp=False)
    assert describe(model) == rows  # names, shapes, dtypes and order
    assert sum(p.numel() for p in model.parameters()) == 53_366_997
    assert len(linear.state_dict()) == 229 and sum(p.numel() for p in linear.parameters()) == 52_447_445
    assert not model.text_network.word_embd.weight.requires_grad


def test_a3_state_dict_loads_strictly_into_a_narrow_vocab_model():
    """A checkpoint in the released layout (66250-word matrix) loads strictly into a model built with another
    vocabulary size: the frozen embedding adopts the checkpoint's rows."""
    rows = read_fixture(A3)
    state = {k: torch.empty(shape, dtype=getattr(torch, dt), device="meta") for k, shape, dt in rows}
    with torch.device("meta"):
        model = TextVidGDT(vocab_size=100)
    emb = model.text_network.word_embd.weight
    assert emb.shape == (100, 300)
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert describe(model) == rows
    assert model.text_network.word_embd.weight is emb and not emb.requires_grad  # resized in place
    assert model.text_network.vocab_size == 66250 and model.text_network.embedding_loaded


def test_dual_constructor_reads_the_text_node(fx):
    cfg = howto_cfg(fx, **{"TEXT.MASK_PADDING": "True"})
    with torch.device("meta"):
        a, b = TextVidGDT(cfg), TextVidGDT.from_cfg(cfg)
    assert describe(a) == describe(b)
    enc = a.text_network
    assert (enc.vocab_size, enc.word_dim, enc.out_dim, enc.mask_padding) == (10, 300, 32, True)
    assert enc.word2vec_path == fx["word2vec_path"] and not enc.embedding_loaded  # nothing read at build time
    assert a.mlp_t.block_forward[2].weight.shape == (32, 32) and a.feat_dim == 32  # hidden 512 * 4 / 64
    with pytest.raises(TypeError):
        TextVidGDT(3)


def test_text_encoder_shapes_and_padding_modes():
    torch.manual_seed(0)
    enc = TextEncoder(vocab_size=50, word_dim=300, hidden_dim=64)
    tokens = torch.tensor([[3, 7, 9, 0, 0, 0], [1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 0]])
    out = enc(tokens)
    assert out.shape == (3, 64) and (out >= 0).all()
    masked = TextEncoder(vocab_size=50, word_dim=300, hidden_dim=64, mask_padding=True)
    masked.load_state_dict(enc.state_dict())
    m = masked(tokens)
    assert torch.equal(m[1], out[1])  # no padding: identical
    assert not torch.equal(m[0], out[0])  # padding (row 0 of the matrix) takes part only without masking
    assert torch.allclose(m[0], enc(tokens[:1, :3])[0], atol=1e-6)  # masked = the caption without its padding
    assert torch.all(m[2] == 0)  # all padding -> zero feature
    with pytest.raises(ValueError, match="B x L"):
        enc(tokens[0])


@pytest.mark.parametrize("mask_padding", [False, True])
def test_reversed_tokens_give_identical_text_features(mask_padding):
    """A max-pooled bag of words ignores word order: the reversed caption (padding moved to the front) has exactly
    the same feature, so reversal is degenerate on the text side (spec 4.5)."""
    torch.manual_seed(1)
    model = TextVidGDT(width=4, embed_dim=16, mlp_hidden_dim=8, vocab_size=40, text_hidden_dim=32,
                       mask_padding=mask_padding).eval()
    tokens = torch.randint(1, 40, (5, 20))
    tokens[:, 12:] = 0
    tokens[4] = 0
    assert torch.equal(model.text_features(tokens), model.text_features(tokens.flip(1)))
    assert torch.equal(model.encode_text(tokens), model.encode_text(tokens.flip(1)))
    shuffled = tokens[:, torch.randperm(20)]
    assert torch.equal(model.text_features(tokens), model.text_features(shuffled))


def test_lazy_word2vec_loading(tmp_path):
    path = tmp_path / "word2vec.pth"
    kwargs = dict(width=4, embed_dim=16, mlp_hidden_dim=8, text_hidden_dim=32, vocab_size=5, word2vec_path=str(path))
    model = TextVidGDT(**kwargs)  # the file does not exist yet: building never reads it
    enc = model.text_network
    emb = enc.word_embd.weight
    assert emb.shape == (5, 300) and not emb.requires_grad and not enc.embedding_loaded
    with pytest.raises(FileNotFoundError, match="TEXT.WORD2VEC_PATH"):
        model.text_features(torch.ones(1, 3, dtype=torch.int64))

    vectors = torch.randn(7, 300)
    torch.save(vectors, path)
    assert enc.load_word2vec() == 7
    assert enc.word_embd.weight is emb and torch.equal(emb, vectors) and not emb.requires_grad
    assert enc.vocab_size == 7

    # lazy: the first forward reads the file
    lazy = TextVidGDT(**kwargs)
    tokens = torch.tensor([[1, 6, 0], [2, 3, 4]])
    lazy.train()
    zv, zt = lazy(torch.randn(2, 3, 4, 16, 16), tokens)
    assert lazy.text_network.embedding_loaded and torch.equal(lazy.text_network.word_embd.weight, vectors)
    (zt.sum() + zv.sum()).backward()
    assert lazy.text_network.word_embd.weight.grad is None  # frozen
    assert lazy.text_network.fc1.weight.grad is not None

    # a checkpoint fills the embedding too: the file is then never read
    os.remove(path)
    restored = TextVidGDT(**kwargs)
    restored.load_state_dict(lazy.state_dict())
    assert torch.equal(restored.text_network.word_embd.weight, vectors)
    restored.eval().text_features(tokens)  # no FileNotFoundError

    # a video-only model needs no text file at all
    assert TextVidGDT(**kwargs).eval().video_features(torch.randn(1, 3, 4, 16, 16)).shape == (1, 32)


def test_collated_batch_through_model_and_gdt_loss(fx):
    cfg = howto_cfg(fx)
    ds = build_dataset("howto100m", cfg, "train")
    batch = torch.utils.data.default_collate([ds[(i, 0)] for i in range(2)])
    assert batch["video"].shape == (2, 4, 3, CLIP_FRAMES, 32, 32) and batch["text"].shape == (2, 4, 20)
    assert batch["skipped"].tolist() == [0, 0] and batch["index"].tolist() == [0, 1]
    torch.manual_seed(0)
    model = build_model(cfg)
    assert isinstance(model, TextVidGDT)
    model.train()
    zv, zt = model(batch["video"], batch["text"])  # the fixture's word2vec.pth is loaded lazily here
    assert zv.shape == zt.shape == (2, 4, 16)
    assert model.text_network.vocab_size == len(fx["words"]) + 1
    assert torch.allclose(zt.norm(dim=-1), torch.ones(2, 4), atol=1e-5)
    loss_fn = GDTNCELoss(hypothesis=6)
    loss, _ = loss_fn({name: (zv[:, i], zt[:, i]) for i, name in enumerate(loss_fn.views)})
    assert torch.isfinite(loss)
    loss.backward()
    model.eval()
    with torch.no_grad():
        zv, zt = model(batch["video"], batch["text"])
    assert torch.equal(zt[:, 0], zt[:, 1]) and torch.equal(zt[:, 2], zt[:, 3])  # TR == T
    assert not torch.equal(zv[:, 0], zv[:, 1])  # reversal changes the video embedding
    assert not torch.equal(zt[:, 0], zt[:, 2])  # the shifted caption is another caption


def test_caption_json_entry_with_a_single_caption(tmp_path):
    """A caption.json entry may hold scalars for a one-caption video; a bare string is one caption, not a list of
    characters."""
    path = tmp_path / "caption.json"
    path.write_text(json.dumps({"a": {"start": 1.5, "end": 2.25, "text": "a red circle"},
                                "b": {"start": [0.5], "end": [1.0], "text": ["hello"]},
                                "c": {"start": [0.5, 1.0], "end": [1.0, 2.0], "text": "two starts, one text"}}))
    store = CaptionStore(caption_json=str(path))
    a = store.get("a")
    assert a.start.tolist() == [1.5] and a.end.tolist() == [2.25] and a.text == ("a red circle",)
    assert store.get("b").text == ("hello",)
    with pytest.raises(UnusableVideo, match="different lengths"):
        store.get("c")


# ---------------------------------------------------------------------------------------------------------------
# TEXT config validation and the shipped video-text configs
# ---------------------------------------------------------------------------------------------------------------

HT100M_FILES = sorted(glob.glob(str(ROOT / "configs" / "GDT" / "HT100M_*.yaml")))
HT100M_H = {h: str(ROOT / "configs" / "GDT" / f"HT100M_VT_R2plus1D_18_H{h}.yaml") for h in range(1, 10)}
DEMO_CFG = str(ROOT / "configs" / "GDT" / "SYNTH_VT_demo.yaml")
PRETRAIN_HT = ["TRAIN.DATASET", "howto100m", "MODEL.MODEL_NAME", "TextVidGDT", "TEST.ENABLE", "False",
               "TEXT.VIDEO_ROOT", "v", "TEXT.CAPTION_ROOT", "c", "TEXT.DICT_PATH", "dict.npy", "TEXT.WORD2VEC_PATH",
               "w.pth"]


@pytest.mark.parametrize("opts, key", [
    (["TEXT.MAX_WORDS", "0"], "TEXT.MAX_WORDS"),
    (["TEXT.MIN_TIME", "-1.0"], "TEXT.MIN_TIME"),
    (["TEXT.MIN_TIME", "nan"], "TEXT.MIN_TIME"),
    (["TEXT.CAPTION_CACHE_SIZE", "-2"], "TEXT.CAPTION_CACHE_SIZE"),
    (["TEXT.VOCAB_SIZE", "0"], "TEXT.VOCAB_SIZE"),
    (["TEXT.HIDDEN_DIM", "0"], "TEXT.HIDDEN_DIM"),
    (["TEXT.VIDEO_NORMALIZE", "zscore"], "TEXT.VIDEO_NORMALIZE"),
    (["TEXT.VIDEO_EXT", "mp4"], "TEXT.VIDEO_EXT"),
    # pretraining on howto100m data: the model, the loss and every path it reads
    (PRETRAIN_HT + ["MODEL.MODEL_NAME", "GDT"], "MODEL.MODEL_NAME"),
    (PRETRAIN_HT + ["MODEL.LOSS_FUNC", "stica_nce"], "MODEL.LOSS_FUNC"),
    (PRETRAIN_HT + ["TEXT.VIDEO_ROOT", ""], "TEXT.VIDEO_ROOT"),
    (PRETRAIN_HT + ["TEXT.CAPTION_ROOT", ""], "TEXT.CAPTION_ROOT"),
    (PRETRAIN_HT + ["TEXT.DICT_PATH", ""], "TEXT.DICT_PATH"),
    (PRETRAIN_HT + ["TEXT.WORD2VEC_PATH", ""], "TEXT.WORD2VEC_PATH"),
    (PRETRAIN_HT + ["DATA.TARGET_FPS", "0"], "DATA.TARGET_FPS"),
    (PRETRAIN_HT + ["TEST.ENABLE", "True"], "TEST.ENABLE"),  # the probe after pretraining would need labels
])
def test_text_config_errors_name_the_key(opts, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        assert_and_infer_cfg(load_config(opts=opts))


def test_text_paths_are_only_required_to_pretrain_on_howto100m():
    ok = assert_and_infer_cfg(load_config(opts=PRETRAIN_HT))
    assert ok.TEXT.VIDEO_ROOT == "v"
    # either half of each alternative is enough (a video list alone; caption.json alone)
    assert_and_infer_cfg(load_config(opts=PRETRAIN_HT + ["TEXT.VIDEO_ROOT", "", "TEXT.VIDEO_LIST", "l.csv",
                                                         "TEXT.CAPTION_ROOT", "", "TEXT.CAPTION_JSON", "c.json"]))
    no_paths = PRETRAIN_HT[:6]
    with pytest.raises(ConfigError, match="TEXT.VIDEO_ROOT"):
        assert_and_infer_cfg(load_config(opts=no_paths))
    assert_and_infer_cfg(load_config(opts=no_paths + ["TRAIN.ENABLE", "False"]))  # nothing is trained
    assert_and_infer_cfg(load_config(opts=no_paths + ["TASK", "linear_probe"]))  # probing a video-text checkpoint
    # the model alone (finetuning / probing / benchmarking its video branch) needs no text file
    assert_and_infer_cfg(load_config(opts=["MODEL.MODEL_NAME", "TextVidGDT"]))
    assert_and_infer_cfg(load_config(opts=["TEXT.MIN_TIME", "0.0"]))  # 0 = no widening


def test_recipe_configs_follow_spec_6_2():
    names = {os.path.basename(f) for f in HT100M_FILES}
    assert names == {"HT100M_VT_R2plus1D_18_base.yaml"} | {os.path.basename(f) for f in HT100M_H.values()}
    outputs = set()
    for h in range(1, 10):
        cfg = assert_and_infer_cfg(load_config(cfg_files=[HT100M_H[h]]))
        assert cfg.GDT.HYPOTHESIS == str(h)
        outputs.add(cfg.OUTPUT_DIR)
        procs = cfg.NUM_GPUS * cfg.NUM_SHARDS
        assert (cfg.TASK, cfg.TRAIN.DATASET, cfg.MODEL.MODEL_NAME, cfg.MODEL.ARCH) == \
            ("ssl_pretrain", "howto100m", "TextVidGDT", "r2plus1d_18")
        assert procs == 64 and cfg.TRAIN.BATCH_SIZE == 12 * procs  # 12 clips per GPU, global batch
        d = cfg.DATA
        assert (d.NUM_FRAMES, d.SAMPLING_RATE, d.TARGET_FPS, d.TRAIN_CROP_SIZE) == (30, 1, 16, 112)
        assert d.NUM_FRAMES * d.SAMPLING_RATE / d.TARGET_FPS == 1.875
        t = cfg.TEXT
        assert (t.MAX_WORDS, t.MIN_TIME, t.VIDEO_NORMALIZE, t.WORD_DIM, t.HIDDEN_DIM) == (20, 4.0, "none", 300, 2048)
        assert t.MASK_PADDING is False and t.VOCAB_SIZE == 66250
        assert t.VIDEO_ROOT and t.CAPTION_ROOT and t.DICT_PATH.endswith("dict.npy")
        assert t.WORD2VEC_PATH.endswith("word2vec.pth")
        g = cfg.GDT
        assert (g.EMBED_DIM, g.USE_MLP, g.MLP_HIDDEN_DIM, g.MLP_DROPOUT, g.TEMPERATURE) == (256, True, 512, 0.3, 0.07)
        s = cfg.SOLVER
        assert (s.OPTIMIZING_METHOD, s.BASE_LR, s.MOMENTUM, s.NESTEROV, s.WEIGHT_DECAY) == ("sgd", 0.01, 0.9, False,
                                                                                             1e-5)
        assert (s.LR_POLICY, s.WARMUP_EPOCHS, s.WARMUP_MULTIPLIER, s.MAX_EPOCH) == ("gdt_epoch_warmup", 10.0, -1.0,
                                                                                     201)
        assert cfg.BN.GLOBAL_SYNC and not cfg.TEST.ENABLE and not cfg.AUDIO.ENABLE
    assert len(outputs) == 9


def test_demo_config_points_at_the_fixture_generator_layout():
    cfg = assert_and_infer_cfg(load_config(cfg_files=[DEMO_CFG]))
    assert (cfg.NUM_GPUS, cfg.TRAIN.DATASET, cfg.MODEL.MODEL_NAME, cfg.TEST.DATASET) == \
        (0, "howto100m", "TextVidGDT", "synthetic_av")
    root = "output/howto_fixture"
    fx = {"video_list": f"{root}/videos.csv", "video_root": f"{root}/videos", "caption_root": f"{root}/captions",
          "dict_path": f"{root}/dict.npy", "word2vec_path": f"{root}/word2vec.pth"}
    over = dict(zip(*[iter(fixture_overrides(fx))] * 2))
    assert all(cfg.TEXT[k.split(".")[1]] == v for k, v in over.items())  # what make_howto_fixture.py writes


# ---------------------------------------------------------------------------------------------------------------
# Pretraining from the command line, and the checkpoint it writes
# ---------------------------------------------------------------------------------------------------------------

TINY_CLI = ["NUM_GPUS", "0", "NUM_SHARDS", "1", "TRAIN.BATCH_SIZE", "2", "TEST.BATCH_SIZE", "2", "TEST.ENABLE",
            "False", "DATA_LOADER.NUM_WORKERS", "0", "DATA_LOADER.PIN_MEMORY", "False", "LOG_PERIOD", "1",
            "DATA.NUM_FRAMES", "4", "DATA.TRAIN_CROP_SIZE", "32", "DATA.TEST_CROP_SIZE", "32",
            "RESNET.WIDTH_PER_GROUP", "4", "GDT.EMBED_DIM", "16", "TEXT.HIDDEN_DIM", "32", "SOLVER.MAX_EPOCH", "1"]


def run_net(cfg_file, out_dir, *opts):
    env = dict(os.environ, STICA_EXT_NO_SLOWFAST="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(ROOT / "tools" / "run_net.py"), "--cfg", cfg_file, *TINY_CLI, "OUTPUT_DIR",
           str(out_dir), *opts]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=str(ROOT))


@pytest.fixture(scope="module")
def cli_runs(fx, tmp_path_factory):
    """One-epoch pretraining runs of tools/run_net.py on the fixture (4 videos, batch 2): the CPU demo config
    (hypothesis 1, one view) and the HowTo100M recipe for hypothesis 7 (four views) shrunk on the command line."""
    runs = {}
    for name, cfg_file in (("demo", DEMO_CFG), ("h7", HT100M_H[7])):
        out = tmp_path_factory.mktemp(f"cli_{name}")
        r = run_net(cfg_file, out, *fixture_overrides(fx, use_json=name == "h7"))
        assert r.returncode == 0, r.stderr[-4000:]
        runs[name] = out
    return runs


@pytest.mark.parametrize("name,blocks", [("demo", {"loss/base1-orig"}),
                                         ("h7", {"loss/base-orig-rev", "loss/inv-orig-rev", "loss/inv-shift-shift_rev",
                                                 "loss/var-orig-shift", "loss/var-rev-shift_rev"})])
def test_command_line_pretrain_writes_a_released_layout_checkpoint(fx, cli_runs, name, blocks):
    from stica_ext.engine import checkpoint as cu

    out = cli_runs[name]
    path = cu.checkpoint_path(str(out), 1)
    assert os.path.exists(path)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    state = ckpt["model_state"]
    assert list(state) == [k for k, _, _ in read_fixture(A3)]  # the 241 names of spec A.3, in order
    vectors = torch.load(fx["word2vec_path"], weights_only=True)
    assert torch.equal(state["text_network.word_embd.weight"], vectors)  # read from word2vec.pth, and frozen
    assert state["text_network.fc1.weight"].shape == (32, 300)
    assert state["mlp_t.block_forward.2.weight"].shape == (32, 32)  # TEXT.HIDDEN_DIM -> 512 * 4 / 64
    assert state["mlp_t.block_forward.8.weight"].shape == (16, 32)  # -> GDT.EMBED_DIM

    with open(out / "log.txt") as f:
        stats = parse_json_stats(f)
    iters = [s for s in stats if s["_type"] == "train_iter"]
    epochs = [s for s in stats if s["_type"] == "train_epoch"]
    assert len(iters) == 2 and all(math.isfinite(s["loss"]) for s in iters)
    assert len(epochs) == 1 and epochs[0]["epoch"] == "1/1" and epochs[0]["skipped_videos"] == 0
    assert math.isfinite(epochs[0]["loss"]) and epochs[0]["loss"] > 0
    assert {k for k in epochs[0] if k.startswith("loss/")} == blocks


def test_command_line_checkpoint_loads_as_a_released_file(fx, cli_runs, tmp_path):
    """The run's weights saved in the released GDT layout (``{"model": state_dict, "epoch"}``, spec 2.1) load
    through the checkpoint loader: fully into TextVidGDT, and the video backbone strictly into the finetuning
    classifier."""
    from stica_ext.engine import checkpoint as cu

    state = torch.load(cu.checkpoint_path(str(cli_runs["h7"]), 1), weights_only=True)["model_state"]
    released = tmp_path / "gdt_HT100M.pth"
    torch.save({"model": OrderedDict(state), "epoch": 201, "optimizer": {"state": {}, "param_groups": []}}, released)
    model = TextVidGDT(width=4, embed_dim=16, mlp_hidden_dim=32, text_hidden_dim=32,
                       vocab_size=len(fx["words"]) + 1)
    report = load_pretrained(model, str(released), checkpoint_type="gdt", strict_prefixes=("",))
    assert report.all_matched and len(report.loaded) == 241 and report.epoch == 201
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())

    clf = VideoClassifier(num_classes=5, width=4)
    report = load_pretrained_backbone(clf, str(released), "gdt")
    assert len([k for k in report.loaded if k.startswith("backbone.")]) == 222
    assert {k.split(".")[0] for k in report.missing} == {"classifier"}
    assert torch.equal(clf.backbone.stem[0].weight, state["video_network.base.stem.0.weight"])


def test_probe_of_the_demo_checkpoint_on_labelled_videos(cli_runs, synth_dir, tmp_path):
    """The demo's second step: a linear probe of the video-text checkpoint's video network on labelled videos
    (TASK linear_probe, TRAIN.DATASET synthetic_av); the text files are not needed for it."""
    from stica_ext.engine import checkpoint as cu
    from stica_ext.engine import run_task

    ckpt = cu.checkpoint_path(str(cli_runs["demo"]), 1)
    cfg = load_config(cfg_files=[DEMO_CFG], opts=TINY_CLI + [
        "TASK", "linear_probe", "TEST.ENABLE", "True", "TRAIN.DATASET", "synthetic_av", "DATA.PATH_TO_DATA_DIR",
        synth_dir, "TRAIN.CHECKPOINT_FILE_PATH", ckpt, "OUTPUT_DIR", str(tmp_path), "AUDIO.SAMPLE_RATE", "16000",
        "LINEAR.EPOCHS", "2", "LINEAR.TRAIN_CLIPS_PER_VIDEO", "1", "TEST.NUM_ENSEMBLE_VIEWS", "1",
        "TEXT.WORD2VEC_PATH", str(tmp_path / "absent.pth"), "TEXT.DICT_PATH", str(tmp_path / "absent.npy")])
    results = run_task(assert_and_infer_cfg(cfg))
    assert [r["model"] for r in results] == ["pretrained", "random init"]
    assert results[0]["checkpoint"] == ckpt and 0.0 <= results[0]["video_top1"] <= 100.0
    assert json.loads((tmp_path / "linear_probe.json").read_text())[0]["model"] == "pretrained"


# ---------------------------------------------------------------------------------------------------------------
# The objective with a bag-of-words text encoder: reversal is degenerate on the text side
# ---------------------------------------------------------------------------------------------------------------


def _views(seed, n=6, dim=16, degenerate=True):
    g = torch.Generator().manual_seed(seed)
    e = [F.normalize(torch.randn(n, dim, generator=g), dim=1) for _ in range(7)]
    v, vr, t, v2, v2r, t2, tr = e
    if degenerate:  # what the text encoder gives: the reversed caption has the caption's feature
        tr = t
    return {"orig": (v, t), "rev": (vr, tr), "shift": (v2, t2), "shift_rev": (v2r, t2)}


def _swap_reversal(views):
    """The same views with each clip exchanged for its time reversal (texts unchanged)."""
    (v, t), (vr, tr), (v2, t2), (v2r, t2r) = (views[k] for k in ("orig", "rev", "shift", "shift_rev"))
    return {"orig": (vr, t), "rev": (v, tr), "shift": (v2r, t2), "shift_rev": (v2, t2r)}


@pytest.mark.parametrize("hypothesis", [2, 6])
def test_reversal_variance_cannot_tell_time_direction_from_text(hypothesis):
    """With T == TR the reversal-variance hypotheses give the same loss when every clip is exchanged for its
    reversal, so they carry no signal about the direction of time (with a text whose reversal differed, they
    would)."""
    loss_fn = GDTNCELoss(hypothesis=hypothesis)
    for seed in range(3):
        views = _views(seed)
        a, _ = loss_fn(views)
        b, _ = loss_fn(_swap_reversal(views))
        assert torch.allclose(a, b, atol=1e-5)
        other = _views(seed, degenerate=False)
        assert not torch.allclose(loss_fn(other)[0], loss_fn(_swap_reversal(other))[0], atol=1e-3)


def test_reversal_variance_has_a_floor_with_bag_of_words_text():
    """The video-query terms of a reversal-variance block hold T among the negatives while TR == T is the
    positive: each is >= log 2, so the block (the mean of two video-query and two text-query terms) is
    >= log(2) / 2 even for perfectly aligned embeddings."""
    loss_fn = GDTNCELoss(hypothesis=2)
    eye = torch.eye(6, 16)
    aligned = {"orig": (eye, eye), "rev": (eye, eye)}
    perfect, _ = loss_fn(aligned)
    assert float(perfect) >= math.log(2) / 2 - 1e-6
    for seed in range(3):
        assert float(loss_fn({k: _views(seed)[k] for k in ("orig", "rev")})[0]) >= math.log(2) / 2
    # a text encoder that did see the order could drive the same block to ~0
    ortho = torch.eye(12, 16)
    distinct = {"orig": (ortho[:6], ortho[:6]), "rev": (ortho[6:], ortho[6:])}
    assert float(loss_fn(distinct)[0]) < 1e-3


def test_reversal_invariance_reduces_to_matching_both_clips_to_the_caption():
    """With T == TR the reversal-invariance block equals the plain cross-modal block over (V, VR): it only asks
    the caption to match a clip and its reversal alike."""
    _, stats = GDTNCELoss(hypothesis=3)(_views(0))
    assert stats["loss/inv-orig-rev"] == pytest.approx(float(stats["loss/base-orig-rev"]), abs=1e-6)


@pytest.mark.parametrize("normalize", ["none", "mean_std"])
def test_fast_video_path_matches_the_float_path(fx, normalize):
    # DATA.FAST_AUGMENT: uint8 crop + antialiased uint8 resize, one float pass; the same draws as the float path
    items = {fast: Howto100mDataset(howto_cfg(fx, **{"DATA.FAST_AUGMENT": str(fast),
                                                     "TEXT.VIDEO_NORMALIZE": normalize}), "train")[(1, 2)]
             for fast in (True, False)}
    a, b = items[True]["video"], items[False]["video"]
    assert a.shape == b.shape and a.dtype == b.dtype == torch.float32 and a.is_contiguous()
    assert torch.equal(items[True]["text"], items[False]["text"])
    step = 1.0 / 255 / (0.225 if normalize == "mean_std" else 1.0)
    assert (a - b).abs().max() <= 1.01 * step  # at most one grey level apart
    assert not torch.equal(a, b)  # ... and the switch did select the other path
