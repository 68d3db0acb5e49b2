"""End-to-end engine tests on a tiny synthetic dataset: pretrain -> checkpoint -> resume -> probe, bad videos."""

import importlib
import os
import subprocess
import sys

import pytest
import simplejson
import torch

from _tiny import tiny_cfg
from stica_ext.datasets import build_dataset
from stica_ext.datasets.synthetic import generate_clip, write_av_file
from stica_ext.engine import checkpoint as cu
from stica_ext.engine import run_task
from stica_ext.utils.logging import parse_json_stats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_stats(out_dir):
    with open(os.path.join(out_dir, "log.txt")) as f:
        return parse_json_stats(f)


def test_pretrain_checkpoint_resume_probe(synth_dir, tmp_path):
    out = tmp_path / "run"
    cfg = tiny_cfg(synth_dir, out)
    cfg.TEST.ENABLE = False
    last = run_task(cfg)
    assert last == cu.checkpoint_path(str(out), 2) and os.path.exists(last)
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["epoch"] == 2 and set(ckpt) >= {"model_state", "optimizer_state", "cfg", "epoch"}
    assert "video_network.base.stem.0.weight" in ckpt["model_state"]
    epochs = [s for s in read_stats(out) if s["_type"] == "train_epoch"]
    assert [s["epoch"] for s in epochs] == ["1/2", "2/2"]
    assert all(s["skipped_videos"] == 0 and s["loss"] > 0 for s in epochs)

    # resume: asking for 3 epochs continues from the 2 completed ones (optimizer state restored)
    cfg3 = tiny_cfg(synth_dir, out, **{"SOLVER.MAX_EPOCH": "3"})
    cfg3.TEST.ENABLE = False
    last3 = run_task(cfg3)
    assert last3 == cu.checkpoint_path(str(out), 3)
    epochs = [s["epoch"] for s in read_stats(out) if s["_type"] == "train_epoch"]
    assert epochs == ["1/2", "2/2", "3/3"]  # epoch 1-2 not repeated
    # with CHECKPOINT_PERIOD 10 only the latest checkpoint is kept
    assert [os.path.basename(p) for p in cu.list_checkpoints(str(out))] == ["checkpoint_epoch_00003.pyth"]
    # the resumed run started from the saved parameters, not from scratch
    w2 = ckpt["model_state"]["video_network.base.stem.0.weight"]
    w3 = torch.load(last3, weights_only=True)["model_state"]["video_network.base.stem.0.weight"]
    assert not torch.equal(w2, w3) and (w3 - w2).norm() < 0.25 * w2.norm()

    # probe: pretrained and random init, results written
    cfgp = tiny_cfg(synth_dir, tmp_path / "probe", **{"TASK": "linear_probe", "TRAIN.CHECKPOINT_FILE_PATH": last3})
    results = run_task(cfgp)
    assert [r["model"] for r in results] == ["pretrained", "random init"]
    for r in results:
        assert r["num_videos"] == 6 and r["num_clips"] == 12
        assert 0 <= r["video_top1"] <= 100 and r["clip_top5"] >= r["clip_top1"]
        conf = torch.tensor(r["video_confusion"])  # rows: true class (the 6 test videos), columns: predicted
        assert conf.shape == (10, 10) and conf.sum() == 6
        assert 100.0 * conf.trace() / 6 == pytest.approx(r["video_top1"])
    with open(tmp_path / "probe" / "linear_probe.json") as f:
        assert simplejson.load(f) == results


def test_probe_freezes_backbone(synth_dir, tmp_path, monkeypatch):
    """The probe must not change the backbone: BatchNorm statistics and weights stay as built."""
    from stica_ext.engine import linear_probe as lp

    cfg = tiny_cfg(synth_dir, tmp_path, **{"LINEAR.CACHE_FEATURES": "False", "LINEAR.EPOCHS": "1"})
    captured = {}
    build = lp.build_model

    def spy(c):
        m = build(c)
        captured["model"] = m
        captured["before"] = {k: v.clone() for k, v in m.state_dict().items()}
        return m

    monkeypatch.setattr(lp, "build_model", spy)
    metrics = lp.run_linear_probe(cfg, "", "random init")
    after = captured["model"].state_dict()
    assert captured["before"].keys() == after.keys()
    for k, v in captured["before"].items():
        assert torch.equal(v, after[k]), k
    assert metrics["num_videos"] == 6 and metrics["num_clips"] == 12


def test_bad_videos_are_skipped_and_counted(synth_dir, tmp_path):
    """A corrupt file, a zero-byte file and a video without audio in the CSV: the epoch completes and the
    replacements are counted in json_stats."""
    data = tmp_path / "bad"
    data.mkdir()
    lines = open(os.path.join(synth_dir, "train.csv")).read().splitlines()
    lines = [f"{os.path.join(synth_dir, p)} {lab}" for p, lab in (ln.rsplit(" ", 1) for ln in lines)]
    (data / "zero.mp4").write_bytes(b"")
    (data / "corrupt.mp4").write_bytes(os.urandom(5000))
    clip = generate_clip(5, 2, size=48, duration=2.0, sample_rate=16000)
    write_av_file(str(data / "silent.mp4"), clip.frames, None, 30, 16000)
    lines += ["zero.mp4 0", "corrupt.mp4 1", "silent.mp4 2"]
    (data / "train.csv").write_text("\n".join(lines) + "\n")
    for split in ("val", "test"):
        (data / f"{split}.csv").write_text(open(os.path.join(synth_dir, f"{split}.csv")).read().replace(
            "videos/", os.path.join(synth_dir, "videos") + "/"))

    # the validity index drops the three bad files before training and counts them by reason
    cfg = tiny_cfg(str(data), tmp_path / "out", **{"SOLVER.MAX_EPOCH": "1", "TRAIN.DROP_LAST": "False"})
    ds = build_dataset("synthetic_av", cfg, "train", sample_type="gdt")
    assert len(ds) == 12 and not any(p.endswith(("zero.mp4", "corrupt.mp4", "silent.mp4")) for p in ds.paths)
    counts = ds.index_summary.as_dict()
    assert (counts["total"], counts["valid"], counts["no_audio"]) == (15, 12, 1)
    assert counts["empty"] + counts["corrupt"] == 2
    # classification samples need no audio: the silent video stays
    assert len(build_dataset("synthetic_av", cfg, "train", sample_type="classify")) == 13

    # without the filter, bad files reach the loader: replaced at load time and counted
    cfg = tiny_cfg(str(data), tmp_path / "out", **{"SOLVER.MAX_EPOCH": "1", "TRAIN.DROP_LAST": "False",
                                                   "DATA.VALIDITY_FILTER": "False"})
    ds = build_dataset("synthetic_av", cfg, "train", sample_type="gdt")
    assert len(ds) == 15
    skipped = {i: int(ds[i]["skipped"]) for i in range(len(ds))}
    assert all(skipped[i] >= 1 for i in (12, 13, 14))
    assert sum(skipped.values()) >= 3

    cfg.TEST.ENABLE = False
    run_task(cfg)
    epoch = [s for s in read_stats(tmp_path / "out") if s["_type"] == "train_epoch"]
    assert len(epoch) == 1 and epoch[0]["skipped_videos"] >= 3


def test_run_net_command_line(synth_dir, tmp_path):
    """tools/run_net.py with PySlowFast's command line: --cfg file then KEY VALUE overrides."""
    cfg_file = tmp_path / "tiny.yaml"
    cfg = tiny_cfg(synth_dir, tmp_path / "cli", **{"SOLVER.MAX_EPOCH": "1"})
    cfg_file.write_text(cfg.dump())
    env = dict(os.environ, STICA_EXT_NO_SLOWFAST="1")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "run_net.py"), "--cfg", str(cfg_file),
                        "LINEAR.EPOCHS", "2", "TEST.ENABLE", "True"], capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "| pretrained |" in r.stdout and "| random init |" in r.stdout
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "run_net.py"), "--cfg", str(cfg_file),
                        "SOLVER.BASE_LRR", "0.1"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode != 0 and "SOLVER.BASE_LRR" in r.stderr


def test_stica_pretrain_and_probe(synth_dir, tmp_path):
    """STiCA from the config: two spatial views + one 257-band spectrogram per sample, crop and cross-modal terms
    logged, a checkpoint whose pooling round-trips into the probe."""
    cfg = tiny_cfg(synth_dir, tmp_path, **{
        "MODEL.MODEL_NAME": "STiCA", "MODEL.LOSS_FUNC": "stica_nce", "AUDIO.NUM_MEL_BINS": "257",
        "AUDIO.Z_NORMALIZE": "False", "SOLVER.MAX_EPOCH": "1", "STICA.NUM_LARGE_TCROPS": "0",
        "STICA.NUM_SMALL_TCROPS": "0", "STICA.NUM_SMALL_CROPS": "2", "LINEAR.EPOCHS": "2"})
    ds = build_dataset("synthetic_av", cfg, "train")
    item = ds[0]
    assert item["video"].shape == (2, 3, 4, 32, 32) and item["audio"].shape == (1, 257, 99)
    assert not torch.equal(item["video"][0], item["video"][1])  # independently augmented views
    # RandomResizedCrop ranges: the recipe's by default, DATA.TRAIN_JITTER_SCALES_RELATIVE / ASPECT_RELATIVE if set
    from stica_ext.datasets import av_dataset

    seen = []
    real = av_dataset.T.stica_video_transform

    def spy(frames, **kw):
        seen.append((kw["scale"], kw["ratio"], kw["gray_prob"], kw["blur_prob"], kw["blur_sigma"]))
        return real(frames, **kw)

    av_dataset.T.stica_video_transform = spy
    try:
        ds[1]
        c2 = cfg.clone()
        c2.defrost()
        c2.DATA.TRAIN_JITTER_SCALES_RELATIVE, c2.DATA.TRAIN_JITTER_ASPECT_RELATIVE = [0.5, 1.0], [0.9, 1.1]
        # greyscale / blur: the recipe's by default, DATA.SSL_GRAY_PROB / SSL_BLUR_PROB / SSL_BLUR_SIGMA if set
        c2.DATA.SSL_GRAY_PROB, c2.DATA.SSL_BLUR_PROB, c2.DATA.SSL_BLUR_SIGMA = 0.0, 1.0, [0.5, 0.5]
        blurred = build_dataset("synthetic_av", c2, "train")[1]["video"]
        c2.DATA.SSL_BLUR_PROB = 0.0
        sharp = build_dataset("synthetic_av", c2, "train")[1]["video"]
    finally:
        av_dataset.T.stica_video_transform = real
    assert seen == ([((0.14, 1.0), (0.75, 4 / 3), 0.2, 0.5, (0.1, 2.0))] * 2
                    + [((0.5, 1.0), (0.9, 1.1), 0.0, 1.0, (0.5, 0.5))] * 2
                    + [((0.5, 1.0), (0.9, 1.1), 0.0, 0.0, (0.5, 0.5))] * 2)
    # view 1 draws the same crop and colours either way (its blur draws come last): blurred with sigma 0.5 exactly
    assert blurred.shape == sharp.shape
    assert torch.allclose(blurred[0], av_dataset.T.gaussian_blur(sharp[0], 0.5), atol=1e-5)
    assert not torch.allclose(blurred[0], sharp[0], atol=1e-2)
    results = run_task(cfg)
    epoch = [s for s in read_stats(tmp_path) if s["_type"] == "train_epoch"][0]
    assert {"loss_crops", "loss_av", "acc_crops", "acc_av"} <= set(epoch)
    assert [r["model"] for r in results] == ["pretrained", "random init"]
    state = torch.load(cu.checkpoint_path(str(tmp_path), 1), weights_only=True)["model_state"]
    assert any(k.startswith("video_network.base.") for k in state)


def test_cpu_bf16_autocast_falls_back_to_float32_without_native_support(monkeypatch):
    from stica_ext.config import get_cfg
    T = importlib.import_module("stica_ext.engine.train_ssl")

    cfg = get_cfg()
    cfg.TRAIN.MIXED_PRECISION = True
    cpu = torch.device("cpu")
    monkeypatch.setattr(T, "cpu_has_native_bf16", lambda: True)
    assert T.amp_settings(cfg, cpu) == (True, torch.bfloat16)
    monkeypatch.setattr(T, "cpu_has_native_bf16", lambda: False)
    assert T.amp_settings(cfg, cpu) == (False, torch.float32)
    cfg.TRAIN.MIXED_PRECISION = False
    assert T.amp_settings(cfg, cpu) == (False, torch.float32)


def test_video_confusion_matrix_of_known_predictions():
    from stica_ext.engine.linear_probe import classification_metrics

    # 3 videos x 2 clips, 3 classes: video 0 (class 0) -> 0, video 1 (class 1) -> 2, video 2 (class 2) -> 2
    logits = torch.tensor([[5.0, 0, 0], [4, 1, 0], [0, 1, 3], [0, 0, 2], [0, 0, 9], [1, 0, 8]])
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    m = classification_metrics(logits, labels, torch.tensor([0, 0, 1, 1, 2, 2]), 3, "sum", confusion=True)
    assert m["video_confusion"] == [[1, 0, 0], [0, 0, 1], [0, 0, 1]]
    assert m["video_top1"] == pytest.approx(200.0 / 3)
    assert "video_confusion" not in classification_metrics(logits, labels, torch.tensor([0, 0, 1, 1, 2, 2]), 3, "sum")


def test_color_on_device_trains_like_the_worker_path(synth_dir, tmp_path):
    # DATA.COLOR_ON_DEVICE: the loader (one worker) hands uint8 views + colour maps to the training step, which
    # finishes them: same losses as the views finished in the worker
    losses = {}
    for defer in (False, True):
        out = tmp_path / str(defer)
        cfg = tiny_cfg(synth_dir, out, **{"DATA.COLOR_ON_DEVICE": str(defer), "DATA.SSL_COLOR_JITTER": "True",
                                          "GDT.HYPOTHESIS": "6", "SOLVER.MAX_EPOCH": "1", "TEST.ENABLE": "False",
                                          "GDT.MLP_DROPOUT": "0.0", "DATA_LOADER.NUM_WORKERS": "1"})
        run_task(cfg)
        losses[defer] = [s["loss"] for s in read_stats(out) if s["_type"] == "train_iter"]
    assert len(losses[True]) == 3
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)
