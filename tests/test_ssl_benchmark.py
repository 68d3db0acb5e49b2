"""Self-supervised learning benchmark (stica_ext/engine/ssl_benchmark.py, tools/benchmark.py --report ssl)."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from stica_ext.engine import ssl_benchmark as S

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# the demo configs shrunk to the tiny fixture dataset: 1 epoch, narrow network, 4 frames at 32 px
TINY = ["DATA.PATH_TO_DATA_DIR", None, "SOLVER.MAX_EPOCH", "1", "TRAIN.BATCH_SIZE", "4", "TEST.BATCH_SIZE", "4",
        "RESNET.WIDTH_PER_GROUP", "4", "GDT.EMBED_DIM", "16", "GDT.MLP_HIDDEN_DIM", "32", "DATA.NUM_FRAMES", "4",
        "DATA.TRAIN_JITTER_SCALES", "[32, 40]", "DATA.TRAIN_CROP_SIZE", "32", "DATA.TEST_CROP_SIZE", "32",
        "DATA_LOADER.NUM_WORKERS", "0", "AUDIO.SAMPLE_RATE", "16000", "LINEAR.EPOCHS", "2",
        "LINEAR.NUM_TRAIN_VIDEOS", "0", "LINEAR.TRAIN_CLIPS_PER_VIDEO", "1", "SOLVER.WARMUP_EPOCHS", "0.0",
        "LOG_PERIOD", "1"]


def tiny_opts(synth_dir):
    return [synth_dir if x is None else x for x in TINY]


def test_av_scores_hand_computed():
    # 3 videos; audio i points at video i except audio 2, which points at video 0
    va = torch.eye(3)
    aa = F.normalize(torch.tensor([[1.0, 0.1, 0], [0, 1, 0.1], [1, 0, 0.5]]), dim=1)
    vb = F.normalize(torch.tensor([[0.0, 1, 1], [1, 0, 1], [1, 1, 0]]), dim=1)  # the other clip of each video
    ab = aa.clone()
    va_rev = F.normalize(torch.tensor([[1.0, 1, 0], [0, 1, 0], [0, 0, 1]]), dim=1)
    m = S.av_scores(va, vb, va_rev, aa, ab)
    # a->v R@1: clip a: audios 0, 1 find their video, 2 does not (2/3); clip b: sims ab @ vb.T
    sim_b = ab @ vb.t()
    r1_b = float((sim_b.argmax(1) == torch.arange(3)).float().mean())
    assert m["a2v_r1"] == pytest.approx(50 * (2 / 3 + r1_b))
    assert m["a2v_r5"] == pytest.approx(100.0)  # 3 candidates
    own_a, own_b = (aa * va).sum(1), (ab * vb).sum(1)
    sync = torch.cat([own_a > (aa * vb).sum(1), own_b > (ab * va).sum(1)]).float().mean()
    assert m["sync_acc"] == pytest.approx(100 * float(sync))
    # direction: audio 0: own 0.995 vs rev (1+0.1)/sqrt2/norm; audio 1: own vs rev equal (not strictly greater)
    expect = (own_a > (aa * va_rev).sum(1)).float().mean()
    assert m["direction_acc"] == pytest.approx(100 * float(expect))
    assert m["num_videos"] == 3 and m["chance_r1"] == pytest.approx(100 / 3)


def test_recall_counts_ties_against_the_query():
    sim = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    assert S._recall(sim, ks=(1,)) == {1: 1.0}  # a tie is not ranked above the own item
    sim = torch.tensor([[0.5, 1.0], [0.0, 1.0]])
    assert S._recall(sim, ks=(1, 2)) == {1: 0.5, 2: 1.0}


def test_summary_mean_std_and_table():
    runs = [
        {"method": "gdt_h1", "seed": 0, "probe_top1": 30.0, "random_top1": 10.0, "a2v_r1": 5.0, "a2v_r5": 20.0,
         "sync_acc": 50.0, "direction_acc": 55.0, "pretrain_min": 2.0},
        {"method": "gdt_h1", "seed": 1, "probe_top1": 40.0, "random_top1": 12.0, "a2v_r1": 7.0, "a2v_r5": 22.0,
         "sync_acc": 52.0, "direction_acc": 57.0, "pretrain_min": None},
        {"method": "supervised", "seed": 0, "supervised_top1": 60.0},
        {"method": "supervised", "seed": 1, "supervised_top1": 70.0},
    ]
    s = S.summarise(runs, ["gdt_h1"])["gdt_h1"]
    assert s["probe_top1"]["mean"] == 35.0 and s["probe_top1"]["std"] == pytest.approx(7.0710678)
    assert s["gain_over_random"]["mean"] == 24.0 and s["gain_over_random"]["std"] == pytest.approx(5.6568542)
    assert s["supervised_top1"]["mean"] == 65.0 and s["supervised_top1"]["n"] == 2
    assert s["pretrain_min"]["mean"] == 2.0 and s["pretrain_min"]["n"] == 1  # resumed runs have no time
    table = S.format_table({"gdt_h1": s}, {"gdt_h1": S.METHODS["gdt_h1"]}, [0, 1])
    assert "| GDT H1 (cross-modal) | 35.0 +- 7.1 | 11.0 +- 1.4 | 65.0 +- 7.1 | 24.0 +- 5.7 |" in table
    assert table.splitlines()[4].endswith("| 2.0 / - |")  # wall / CPU minutes (no CPU record)


def test_cpu_clock_counts_child_processes():
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass"
    with S.CpuClock() as clock:
        subprocess.run([sys.executable, "-c", burn], check=True)
    assert clock.cpu_min * 60 >= 0.6  # the child's CPU time, not only this (idle, waiting) process
    assert clock.wall_min * 60 >= 0.6


def test_method_configs_are_the_demo_recipes(tmp_path):
    h6 = S.method_cfg("gdt_h6", 2, str(tmp_path))
    assert h6.GDT.HYPOTHESIS == "6" and h6.RNG_SEED == 2 and h6.MODEL.MODEL_NAME == "GDT"
    assert h6.OUTPUT_DIR == os.path.join(str(tmp_path), "gdt_h6", "seed2") and h6.LINEAR.COMPARE_RANDOM_INIT
    h1, h8 = S.method_cfg("gdt_h1", 2, str(tmp_path)), S.method_cfg("gdt_h8", 2, str(tmp_path))
    assert h8.GDT.HYPOTHESIS == "8" and h1.GDT.HYPOTHESIS == "1"
    # the 4-view hypotheses train fewer epochs for about the same CPU budget as H1; user overrides still win
    assert h8.SOLVER.MAX_EPOCH == h6.SOLVER.MAX_EPOCH < h1.SOLVER.MAX_EPOCH
    assert S.method_cfg("gdt_h8", 0, str(tmp_path), ["SOLVER.MAX_EPOCH", "2"]).SOLVER.MAX_EPOCH == 2
    assert set(S.DEFAULT_METHODS) <= set(S.METHODS)
    st = S.method_cfg("stica", 0, str(tmp_path), ["SOLVER.MAX_EPOCH", "3"])
    assert st.MODEL.MODEL_NAME == "STiCA" and st.SOLVER.MAX_EPOCH == 3
    # the demo's STiCA takes GDT's 40-band z-normalised audio (README: better than the recipe's 257 bands here)
    assert st.AUDIO.NUM_MEL_BINS == 40 and st.AUDIO.Z_NORMALIZE
    sup = S.supervised_cfg(h6, 2, str(tmp_path))
    assert sup.TASK == "finetune" and sup.MODEL.MODEL_NAME == "VideoClassifier"
    assert sup.SOLVER.MAX_EPOCH == h6.SOLVER.MAX_EPOCH and sup.SOLVER.OPTIMIZING_METHOD == h6.SOLVER.OPTIMIZING_METHOD
    assert sup.RESNET.WIDTH_PER_GROUP == h6.RESNET.WIDTH_PER_GROUP and sup.TRAIN.CHECKPOINT_FILE_PATH == ""
    # the benchmark's reference comes from the GDT demo recipe (not from whichever method runs first), with the
    # benchmark's overrides
    base = S.supervised_base_cfg(1, str(tmp_path), ["SOLVER.BASE_LR", "0.002"])
    assert base.MODEL.MODEL_NAME == "GDT" and base.SOLVER.MAX_EPOCH == h1.SOLVER.MAX_EPOCH
    assert base.SOLVER.BASE_LR == 0.002 and base.RNG_SEED == 1
    assert base.DATA.TRAIN_JITTER_SCALES_RELATIVE == h1.DATA.TRAIN_JITTER_SCALES_RELATIVE
    assert base.DATA.TRAIN_JITTER_SCALES_RELATIVE != st.DATA.TRAIN_JITTER_SCALES_RELATIVE


def test_benchmark_reference_is_the_gdt_recipe_whichever_methods_run(tmp_path, monkeypatch):
    # the loop with the pretraining / training stubbed: which configs reach them, in which order
    seen = []

    def fake_method(method, seed, out_dir, opts, spec, cfg_files, reevaluate=False):
        seen.append((method, seed, reevaluate))
        return {"method": method, "seed": seed, "probe_top1": 20.0, "random_top1": 10.0}, None

    def fake_supervised(base, seed, out_dir):
        seen.append((S.SUPERVISED, seed, base.MODEL.MODEL_NAME, base.SOLVER.MAX_EPOCH, base.SOLVER.BASE_LR))
        return {"method": S.SUPERVISED, "seed": seed, "supervised_top1": 40.0}

    monkeypatch.setattr(S, "run_method", fake_method)
    monkeypatch.setattr(S, "run_supervised", fake_supervised)
    h1 = S.method_cfg("gdt_h1", 0, str(tmp_path))
    report = S.run_ssl_benchmark(str(tmp_path), ["stica"], [3], opts=["SOLVER.BASE_LR", "0.002"], reevaluate=True)
    assert seen == [("stica", 3, True), (S.SUPERVISED, 3, "GDT", h1.SOLVER.MAX_EPOCH, 0.002)]
    assert report["summary"]["stica"]["supervised_top1"]["mean"] == 40.0


def test_clip_pairs_are_the_first_and_last_clip(synth_dir, tmp_path):
    cfg = S.method_cfg("gdt_h1", 0, str(tmp_path), tiny_opts(synth_dir))
    data = S.ClipPairs(cfg, "test")
    assert len(data) == 6
    item = data[1]
    assert item["video"].shape == (2, 3, 4, 32, 32) and item["audio"].shape[:2] == (2, 1)
    clip_len = cfg.DATA.NUM_FRAMES * cfg.DATA.SAMPLING_RATE / cfg.DATA.TARGET_FPS
    assert item["starts"][0] == 0 and item["starts"][1] >= clip_len  # 2-s videos: no overlap
    assert not torch.equal(item["audio"][0], item["audio"][1])
    assert torch.equal(data[1]["video"], item["video"])  # deterministic


@pytest.mark.parametrize("method", ["gdt_h8", "stica"])
def test_run_method_end_to_end(synth_dir, tmp_path, method):
    rec, cfg = S.run_method(method, 0, str(tmp_path), tiny_opts(synth_dir))
    assert rec["epochs"] == 1 and os.path.isfile(rec["checkpoint"]) and rec["resumed_from"] is None
    for k in ("probe_top1", "random_top1", "a2v_r1", "a2v_r5", "sync_acc", "direction_acc"):
        assert 0.0 <= rec[k] <= 100.0
    assert rec["num_videos"] == 6 and rec["pretrain_min"] > 0
    # CPU time counts this process and the loader worker: more than nothing, less than 2 busy cores per wall minute
    assert 0 < rec["pretrain_cpu_min"] <= 2.5 * rec["pretrain_min"] * max(1, os.cpu_count())
    # a finished run is reused, not retrained, and keeps its recorded time
    again, _ = S.run_method(method, 0, str(tmp_path), tiny_opts(synth_dir))
    assert again["resumed_from"] == rec["checkpoint"]
    assert again["pretrain_min"] == rec["pretrain_min"] and again["pretrain_cpu_min"] == rec["pretrain_cpu_min"]
    # a new probe / test protocol re-evaluates the finished run and keeps its time record
    other, _ = S.run_method(method, 0, str(tmp_path), tiny_opts(synth_dir) + ["LINEAR.TRAIN_CLIPS_PER_VIDEO", "2"])
    assert other["resumed_from"] == rec["checkpoint"] and other["pretrain_min"] == rec["pretrain_min"]
    assert other["probe"][0]["checkpoint"] == rec["checkpoint"]
    assert S._eval_only("LINEAR.EPOCHS") and S._eval_only("SYNTH.NUM_TEST") and not S._eval_only("SYNTH.NUM_TRAIN")
    # the evaluation is stored in the run folder and reused for the same checkpoint and config only
    assert not rec["evaluation_reused"] and again["evaluation_reused"] and not other["evaluation_reused"]
    back, _ = S.run_method(method, 0, str(tmp_path), tiny_opts(synth_dir))  # the stored one is other's now
    assert not back["evaluation_reused"] and back["probe_top1"] == rec["probe_top1"]
    # a run folder copied into another benchmark folder is the same run, with the same evaluation
    moved = tmp_path / "moved"
    shutil.copytree(cfg.OUTPUT_DIR, moved / method / "seed0")
    copied, _ = S.run_method(method, 0, str(moved), tiny_opts(synth_dir))
    assert os.path.basename(copied["resumed_from"]) == os.path.basename(rec["checkpoint"])
    assert copied["pretrain_min"] == rec["pretrain_min"] and copied["evaluation_reused"]
    # the stored numbers are what a reused run reports; reevaluate=True measures again
    eval_file = moved / method / "seed0" / S.EVAL_FILE
    stored = json.loads(eval_file.read_text())
    stored["evaluation"]["sync_acc"] = -1.0
    eval_file.write_text(json.dumps(stored))
    assert S.run_method(method, 0, str(moved), tiny_opts(synth_dir))[0]["sync_acc"] == -1.0
    fresh, _ = S.run_method(method, 0, str(moved), tiny_opts(synth_dir), reevaluate=True)
    assert fresh["sync_acc"] == rec["sync_acc"] and not fresh["evaluation_reused"]
    # another checkpoint content (same name) is evaluated again
    ckpt = torch.load(copied["checkpoint"], weights_only=False)
    first = next(k for k, v in ckpt["model_state"].items() if v.is_floating_point())
    ckpt["model_state"][first] = ckpt["model_state"][first] + 1.0
    torch.save(ckpt, copied["checkpoint"])
    assert not S.run_method(method, 0, str(moved), tiny_opts(synth_dir))[0]["evaluation_reused"]
    os.remove(os.path.join(cfg.OUTPUT_DIR, S.TIMING_FILE))  # a run without a time record reports no time
    assert S.run_method(method, 0, str(tmp_path), tiny_opts(synth_dir))[0]["pretrain_min"] is None
    assert again["a2v_r1"] == rec["a2v_r1"] and again["probe_top1"] == rec["probe_top1"]
    # ... but not when the config changed since
    with pytest.raises(RuntimeError, match=r"another config \(STICA.CROP_TEMPERATURE: 0.5 -> 0.3"):
        S.run_method(method, 0, str(tmp_path), tiny_opts(synth_dir) + ["STICA.CROP_TEMPERATURE", "0.3"])


def test_command_line_report(synth_dir, tmp_path):
    out = tmp_path / "ssl"
    env = dict(os.environ, STICA_EXT_NO_SLOWFAST="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, os.path.join(ROOT, "tools", "benchmark.py"), "--report", "ssl", "--methods", "gdt_h1",
           "--seeds", "0,1", "--out", str(out), *tiny_opts(synth_dir)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((out / "ssl_benchmark.json").read_text())
    assert report["seeds"] == [0, 1] and list(report["methods"]) == ["gdt_h1"]
    kinds = [(x["method"], x["seed"]) for x in report["runs"]]
    assert kinds == [("gdt_h1", 0), ("supervised", 0), ("gdt_h1", 1), ("supervised", 1)]
    s = report["summary"]["gdt_h1"]
    assert s["probe_top1"]["n"] == 2 and s["supervised_top1"]["n"] == 2 and s["a2v_r1"]["std"] is not None
    md = (out / "ssl_benchmark.md").read_text()
    assert "| GDT H1 (cross-modal) |" in md and "+-" in md and md.strip() in r.stdout
    assert os.path.isfile(out / "gdt_h1" / "seed1" / "linear_probe.json")
    assert os.path.isfile(out / "supervised" / "seed0" / "results.json")


def test_supervised_reference_with_bf16_and_channels_last(synth_dir, tmp_path, monkeypatch):
    # the finetuning loop honours the speed switches (CPU bf16 autocast, channels-last inputs) like pretraining
    import importlib

    from stica_ext.engine.finetune import finetune_fold
    from stica_ext.utils.logging import parse_json_stats

    train_ssl = importlib.import_module("stica_ext.engine.train_ssl")
    autocasts, layouts = [], []
    real_autocast, real_cl = torch.autocast, train_ssl.video_to_channels_last

    def spy_autocast(*args, **kw):
        autocasts.append((kw.get("dtype"), kw.get("enabled")))
        return real_autocast(*args, **kw)

    def spy_cl(x):
        out = real_cl(x)
        layouts.append(out.is_contiguous(memory_format=torch.channels_last_3d))
        return out

    monkeypatch.setattr(torch, "autocast", spy_autocast)
    monkeypatch.setattr(train_ssl, "video_to_channels_last", spy_cl)
    monkeypatch.setattr(train_ssl, "cpu_has_native_bf16", lambda: True)  # as on a CPU with native bf16

    base = S.method_cfg("gdt_h1", 0, str(tmp_path), tiny_opts(synth_dir) + [
        "TRAIN.MIXED_PRECISION", "True", "TRAIN.CHANNELS_LAST", "True"])
    cfg = S.supervised_cfg(base, 0, str(tmp_path))
    assert cfg.TRAIN.MIXED_PRECISION and cfg.TRAIN.CHANNELS_LAST
    results = finetune_fold(cfg)
    assert 0.0 <= results["last epoch"]["video_top1"] <= 100.0
    with open(os.path.join(cfg.OUTPUT_DIR, "log.txt")) as f:
        epochs = [s for s in parse_json_stats(f) if s["_type"] == "finetune_epoch"]
    assert len(epochs) == 1 and 0.0 < epochs[0]["loss"] < 10.0
    # training iterations under bf16 autocast (the enabled=False ones are the fp32 islands inside the network)
    enabled = [dtype for dtype, on in autocasts if on]
    assert len(enabled) >= 3 and set(enabled) == {torch.bfloat16}  # 12 videos, batch 4: 3 iterations
    assert layouts and all(layouts)  # training and test batches converted to channels-last


def test_parallel_runs_keep_report_order_and_report_failures(synth_dir, tmp_path):
    # jobs=2: every run in its own process with its console in out/jobs/; a failing run (a missing initial checkpoint
    # is found only when its pretraining starts) does not stop the others and is named with its log at the end
    out = tmp_path / "par"
    specs = {"gdt_h1": S.METHODS["gdt_h1"],
             "broken": {"cfg": S.METHODS["gdt_h1"]["cfg"], "label": "broken",
                        "opts": ["TRAIN.CHECKPOINT_FILE_PATH", str(tmp_path / "missing.pyth")]}}
    with pytest.raises(RuntimeError, match=r"1 of 3 runs failed: broken, seed 0.*broken_seed0\.log"):
        S.run_ssl_benchmark(str(out), ["broken", "gdt_h1"], [0], tiny_opts(synth_dir), specs=specs, jobs=2)
    report = json.loads((out / "ssl_benchmark.json").read_text())
    assert [(r["method"], r["seed"]) for r in report["runs"]] == [("gdt_h1", 0), ("supervised", 0)]
    assert report["summary"]["gdt_h1"]["probe_top1"]["n"] == 1
    assert "missing.pyth" in (out / "jobs" / "broken_seed0.log").read_text()
    assert "json_stats" in (out / "jobs" / "gdt_h1_seed0.log").read_text()  # the run's training log went there
    assert "json_stats" in (out / "jobs" / "supervised_seed0.log").read_text()
    # the finished runs are reused by the next benchmark over the same folder, in this process
    again = S.run_ssl_benchmark(str(out), ["gdt_h1"], [0], tiny_opts(synth_dir))
    first = again["runs"][0]
    assert first["evaluation_reused"] and first["probe_top1"] == report["runs"][0]["probe_top1"]
    assert first["pretrain_min"] == report["runs"][0]["pretrain_min"]
