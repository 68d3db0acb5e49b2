"""Training infrastructure: LR policies, preemption, deterministic resume after SIGKILL, mixed precision."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from _tiny import tiny_cfg
from stica_ext.config import ConfigError, assert_and_infer_cfg, get_cfg
from stica_ext.engine import checkpoint as cu
from stica_ext.engine.optim import gdt_epoch_warmup_lr, get_lr_at_epoch
from stica_ext.utils.logging import parse_json_stats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gdt_epoch_warmup_matches_reference_schedule():
    # spec 6.1: LR(e) = 0.01 (1 + (W - 1) min(e, 10) / 10); W = 16: 0.01, 0.025, ..., 0.145, then 0.16
    expected = [0.01 * (1 + 15 * min(e, 10) / 10) for e in range(15)]
    got = [gdt_epoch_warmup_lr(0.01, 16, 10, e) for e in range(15)]
    assert got == pytest.approx(expected)
    assert got[1] == pytest.approx(0.025) and got[9] == pytest.approx(0.145) and got[14] == pytest.approx(0.16)
    # stepped per epoch: constant within an epoch
    assert gdt_epoch_warmup_lr(0.01, 16, 10, 3.99) == pytest.approx(gdt_epoch_warmup_lr(0.01, 16, 10, 3.0))
    cfg = get_cfg()
    cfg.SOLVER.LR_POLICY = "gdt_epoch_warmup"
    cfg.SOLVER.BASE_LR, cfg.SOLVER.WARMUP_EPOCHS, cfg.SOLVER.WARMUP_MULTIPLIER = 0.01, 10.0, 64.0
    assert get_lr_at_epoch(cfg, 10.5) == pytest.approx(0.64)
    cfg.SOLVER.WARMUP_MULTIPLIER = -1.0  # = number of processes (1 here): constant base LR
    assert get_lr_at_epoch(cfg, 5.0) == pytest.approx(0.01)


def test_cosine_and_steps_policies_with_warmup():
    cfg = get_cfg()
    s = cfg.SOLVER
    s.LR_POLICY, s.BASE_LR, s.MAX_EPOCH, s.WARMUP_EPOCHS, s.WARMUP_START_LR = "cosine", 1.0, 10, 2.0, 0.1
    s.COSINE_END_LR, s.COSINE_AFTER_WARMUP = 0.0, True
    assert get_lr_at_epoch(cfg, 0.0) == pytest.approx(0.1)
    assert get_lr_at_epoch(cfg, 1.0) == pytest.approx(0.55)
    assert get_lr_at_epoch(cfg, 2.0) == pytest.approx(1.0)
    assert get_lr_at_epoch(cfg, 6.0) == pytest.approx(0.5)
    assert get_lr_at_epoch(cfg, 10.0) == pytest.approx(0.0, abs=1e-12)
    s.LR_POLICY, s.STEPS, s.LRS, s.WARMUP_EPOCHS = "steps_with_relative_lrs", [0, 4, 8], [1.0, 0.1, 0.01], 0.0
    assert [get_lr_at_epoch(cfg, e) for e in (0, 3.9, 4, 9)] == pytest.approx([1.0, 1.0, 0.1, 0.01])


def test_mixed_precision_settings_validated():
    cfg = get_cfg()
    cfg.NUM_GPUS = 0
    cfg.TRAIN.MIXED_PRECISION = True
    cfg.TRAIN.AMP_DTYPE = "float16"
    with pytest.raises(ConfigError, match="AMP_DTYPE"):
        assert_and_infer_cfg(cfg)
    cfg.TRAIN.AMP_DTYPE = "bfloat16"
    assert_and_infer_cfg(cfg)


def _write_cfg(synth_dir, out, path, **over):
    cfg = tiny_cfg(synth_dir, out, **over)
    cfg.TEST.ENABLE = False
    path.write_text(cfg.dump())
    return str(path)


def _run(cfg_file, *opts, wait=True):
    env = dict(os.environ, STICA_EXT_NO_SLOWFAST="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, os.path.join(ROOT, "tools", "run_net.py"), "--cfg", cfg_file, *opts]
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_iteration(out_dir, epoch_label, proc, timeout=300):
    """Block until the run's log shows an iteration of ``epoch_label`` (e.g. "2/3"). The runs below have 6
    iterations per epoch, so a signal sent now lands mid-epoch even on a slow machine."""
    log = os.path.join(out_dir, "log.txt")
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"run ended early: {proc.stderr.read()[-2000:]}")
        if os.path.exists(log):
            with open(log) as f:
                stats = parse_json_stats(f)
            if any(s["_type"] == "train_iter" and s["epoch"] == epoch_label for s in stats):
                return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for the run")


def _final_state(out_dir, epoch):
    return torch.load(cu.checkpoint_path(str(out_dir), epoch), weights_only=True)["model_state"]


# 3 epochs of 6 iterations (12 training videos, batch 2), dropout on so the RNG matters
_INTERRUPTED = {"SOLVER.MAX_EPOCH": "3", "GDT.MLP_DROPOUT": "0.3", "TRAIN.BATCH_SIZE": "2"}


@pytest.fixture(scope="module")
def reference_run(synth_dir, tmp_path_factory):
    """An uninterrupted 3-epoch run (dropout on, so the RNG matters)."""
    tmp = tmp_path_factory.mktemp("ref")
    cfg_file = _write_cfg(synth_dir, tmp / "out", tmp / "c.yaml", **_INTERRUPTED)
    r = _run(cfg_file)
    assert r.returncode == 0, r.stderr[-3000:]
    return cfg_file, _final_state(tmp / "out", 3)


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5, rtol=1e-4), k


def test_sigkill_mid_epoch_then_restart_matches_uninterrupted(reference_run, synth_dir, tmp_path):
    _, ref = reference_run
    out = tmp_path / "out"
    cfg_file = _write_cfg(synth_dir, out, tmp_path / "c.yaml", **_INTERRUPTED)
    proc = _run(cfg_file, wait=False)
    _wait_for_iteration(str(out), "2/3", proc)
    proc.kill()  # SIGKILL: no chance to write anything
    proc.wait()
    assert [os.path.basename(p) for p in cu.list_checkpoints(str(out))] == ["checkpoint_epoch_00001.pyth"]
    r = _run(cfg_file)
    assert r.returncode == 0, r.stderr[-3000:]
    _assert_same_state(_final_state(out, 3), ref)


def test_sigterm_writes_mid_epoch_checkpoint_and_resume_matches(reference_run, synth_dir, tmp_path):
    _, ref = reference_run
    out = tmp_path / "out"
    cfg_file = _write_cfg(synth_dir, out, tmp_path / "c.yaml", **_INTERRUPTED)
    proc = _run(cfg_file, wait=False)
    _wait_for_iteration(str(out), "2/3", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=300) == 0
    names = [os.path.basename(p) for p in cu.list_checkpoints(str(out))]
    assert len(names) == 1 and names[0].startswith("checkpoint_epoch_00001_iter_"), names
    ckpt = torch.load(cu.list_checkpoints(str(out))[0], weights_only=True)
    assert ckpt["epoch"] == 1 and 1 <= ckpt["iteration"] < 6 and ckpt["rng_state"] is not None
    r = _run(cfg_file)
    assert r.returncode == 0, r.stderr[-3000:]
    assert [os.path.basename(p) for p in cu.list_checkpoints(str(out))] == ["checkpoint_epoch_00003.pyth"]
    _assert_same_state(_final_state(out, 3), ref)


def test_stop_during_last_iteration_of_an_epoch_writes_the_epoch_checkpoint(synth_dir, tmp_path, monkeypatch):
    import importlib

    from stica_ext.engine import run_task

    ts = importlib.import_module("stica_ext.engine.train_ssl")  # the module (the package exports the function)

    cfg = tiny_cfg(synth_dir, tmp_path, **{"SOLVER.MAX_EPOCH": "2"})  # 12 videos, batch 4: 3 iterations per epoch
    calls = []

    def stop_at_third_iteration(self):
        calls.append(1)
        return len(calls) == 3

    monkeypatch.setattr(ts.PreemptionHandler, "should_stop", stop_at_third_iteration)
    last = run_task(cfg)  # TEST.ENABLE: the probe must not run on a stopped run
    assert os.path.basename(last) == "checkpoint_epoch_00001.pyth" and not ts.training_finished(cfg, last)
    assert [os.path.basename(p) for p in cu.list_checkpoints(cfg.OUTPUT_DIR)] == ["checkpoint_epoch_00001.pyth"]
    assert not os.path.exists(os.path.join(cfg.OUTPUT_DIR, "linear_probe.json"))
    monkeypatch.undo()
    cfg.TEST.ENABLE = False
    last = run_task(cfg)  # resumes at epoch 2, iteration 0
    assert os.path.basename(last) == "checkpoint_epoch_00002.pyth" and ts.training_finished(cfg, last)
    with open(os.path.join(cfg.OUTPUT_DIR, "log.txt")) as f:
        epochs = [s["epoch"] for s in parse_json_stats(f) if s["_type"].startswith("train_epoch")]
    assert epochs == ["1/2", "2/2"]


def test_bfloat16_autocast_runs_on_cpu(synth_dir, tmp_path):
    from stica_ext.engine import run_task

    cfg = tiny_cfg(synth_dir, tmp_path, **{"SOLVER.MAX_EPOCH": "1", "TRAIN.MIXED_PRECISION": "True"})
    cfg.TEST.ENABLE = False
    last = run_task(cfg)
    state = torch.load(last, weights_only=True)["model_state"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    assert state["video_network.base.stem.0.weight"].dtype == torch.float32  # master weights stay fp32
