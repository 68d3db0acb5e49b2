"""End-to-end runs on one CUDA GPU (``NUM_GPUS 1``): every task, the speed switches, checkpoints moving between the
GPU and the CPU, and the same training step on both devices. Skipped without CUDA (CI has none); on a GPU machine:

    python -m pytest -q tests/test_gpu.py      # about a minute on one H100
"""

import os

import pytest
import torch

from _tiny import tiny_cfg
from stica_ext.engine import checkpoint as cu
from stica_ext.engine import run_task
from stica_ext.engine import ssl_benchmark as S
from stica_ext.utils.logging import parse_json_stats
from test_finetune import _tiny_cfg as ft_cfg
from test_howto100m import DEMO_CFG as VT_DEMO_CFG
from test_howto100m import fixture_overrides, run_net
from test_ssl_benchmark import tiny_opts

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def stats(out_dir, kind):
    with open(os.path.join(out_dir, "log.txt")) as f:
        return [s for s in parse_json_stats(f) if s["_type"] == kind]


@pytest.fixture
def exact_float32():
    """No TF32 in matrix products and convolutions, so that GPU and CPU float32 agree closely."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def test_gdt_training_step_matches_the_cpu(synth_dir, tmp_path, exact_float32):
    # the same seed, data and float32 arithmetic on both devices: the first iteration's loss agrees to float
    # precision, the later ones closely (only the order of floating-point sums differs)
    over = {"SOLVER.MAX_EPOCH": "1", "GDT.MLP_DROPOUT": "0.0", "TEST.ENABLE": "False"}
    losses = {}
    for dev, gpus in (("cpu", "0"), ("cuda", "1")):
        cfg = tiny_cfg(synth_dir, tmp_path / dev, **over, NUM_GPUS=gpus)
        run_task(cfg)
        losses[dev] = [s["loss"] for s in stats(tmp_path / dev, "train_iter")]
    assert len(losses["cuda"]) == len(losses["cpu"]) == 3
    assert losses["cuda"][0] == pytest.approx(losses["cpu"][0], rel=1e-4)
    assert losses["cuda"] == pytest.approx(losses["cpu"], rel=1e-2)
    # the GPU checkpoint holds CPU-loadable tensors with the CPU run's keys
    a = torch.load(cu.checkpoint_path(str(tmp_path / "cpu"), 1), map_location="cpu", weights_only=True)
    b = torch.load(cu.checkpoint_path(str(tmp_path / "cuda"), 1), map_location="cpu", weights_only=True)
    assert set(a["model_state"]) == set(b["model_state"])
    w = "video_network.base.stem.0.weight"
    assert torch.allclose(a["model_state"][w], b["model_state"][w], atol=1e-3)


@pytest.mark.parametrize("switches", [
    {"TRAIN.MIXED_PRECISION": "True", "TRAIN.AMP_DTYPE": "bfloat16", "TRAIN.CHANNELS_LAST": "True",
     "CUDNN_BENCHMARK": "True"},
    {"TRAIN.MIXED_PRECISION": "True", "TRAIN.AMP_DTYPE": "float16", "GDT.HYPOTHESIS": "6"},
], ids=["bf16_channels_last_cudnn", "fp16_gradscaler_h6"])
def test_pretrain_resume_and_probe_with_speed_switches(synth_dir, tmp_path, switches):
    out = tmp_path / "run"
    cfg = tiny_cfg(synth_dir, out, NUM_GPUS="1", **switches, **{"SOLVER.MAX_EPOCH": "1", "TEST.ENABLE": "False"})
    first = run_task(cfg)
    state = torch.load(first, map_location="cpu", weights_only=True)
    if switches["TRAIN.AMP_DTYPE"] == "float16":
        assert state.get("scaler_state"), "the fp16 loss scaler must be saved for the resume"
    # resume on the GPU for a second epoch, then probe (pretrained and random init, cached features)
    cfg2 = tiny_cfg(synth_dir, out, NUM_GPUS="1", **switches, **{"SOLVER.MAX_EPOCH": "2"})
    results = run_task(cfg2)
    epochs = stats(out, "train_epoch")
    assert [e["epoch"] for e in epochs] == ["1/1", "2/2"] and all(e["loss"] == e["loss"] for e in epochs)
    assert [r["model"] for r in results] == ["pretrained", "random init"]
    assert all(r["num_videos"] == 6 and 0 <= r["video_top1"] <= 100 for r in results)
    # the GPU checkpoint is probed on the CPU just the same
    cpu = tiny_cfg(synth_dir, tmp_path / "cpu_probe", **{"TASK": "linear_probe", "LINEAR.COMPARE_RANDOM_INIT": "False",
                                                        "TRAIN.CHECKPOINT_FILE_PATH": cu.checkpoint_path(str(out), 2)})
    assert run_task(cpu)[0]["num_videos"] == 6


def test_stica_pretrain_and_online_probe(synth_dir, tmp_path):
    # the views' colour maps and blur are applied on the GPU (DATA.COLOR_ON_DEVICE)
    cfg = tiny_cfg(synth_dir, tmp_path, NUM_GPUS="1", **{
        "MODEL.MODEL_NAME": "STiCA", "MODEL.LOSS_FUNC": "stica_nce", "SOLVER.MAX_EPOCH": "1",
        "STICA.NUM_LARGE_TCROPS": "0", "STICA.NUM_SMALL_TCROPS": "0", "STICA.NUM_SMALL_CROPS": "2",
        "LINEAR.EPOCHS": "2", "LINEAR.CACHE_FEATURES": "False", "TRAIN.MIXED_PRECISION": "True",
        "DATA.COLOR_ON_DEVICE": "True", "DATA.SSL_COLOR_JITTER": "True"})
    results = run_task(cfg)
    epoch = stats(tmp_path, "train_epoch")[0]
    assert {"loss_crops", "loss_av"} <= set(epoch) and epoch["loss"] == epoch["loss"]
    assert [r["model"] for r in results] == ["pretrained", "random init"]


def test_finetune_linear_probe_and_retrieval_folds(synth_folder, pretrained, tmp_path):
    gpu = ["NUM_GPUS", "1"]
    ft = ft_cfg("SYNTH_UCF_finetune.yaml", synth_folder, tmp_path / "ft", gpu + [
        "TRAIN.CHECKPOINT_FILE_PATH", pretrained, "TRAIN.BATCH_SIZE", "4", "TRAIN.CLIPS_PER_VIDEO", "1",
        "SOLVER.MAX_EPOCH", "1", "DATA.FOLDS", "[1]", "TRAIN.MIXED_PRECISION", "True", "TRAIN.CHANNELS_LAST", "True"])
    report = run_task(ft)
    last = report["per_fold"]["1"]["last epoch"]
    assert last["num_videos"] == 10 and last["num_clips"] == 10 * 2 * ft.TEST.NUM_SPATIAL_CROPS
    lin = ft_cfg("SYNTH_UCF_linear.yaml", synth_folder, tmp_path / "lin", gpu + [
        "TRAIN.CHECKPOINT_FILE_PATH", pretrained, "LINEAR.EPOCHS", "2", "GDT.EMBED_DIM", "16", "DATA.FOLDS", "[1]"])
    assert set(run_task(lin)["summary"]) == {"pretrained", "random init"}
    ret = ft_cfg("SYNTH_UCF_retrieval.yaml", synth_folder, tmp_path / "ret", gpu + [
        "TRAIN.CHECKPOINT_FILE_PATH", pretrained, "DATA.FOLDS", "[1]"])
    res = run_task(ret)["per_fold"]["1"]["retrieval"]
    assert res["R@1"] <= res["R@5"] <= res["R@20"] == 100.0


def test_video_text_pretraining_on_the_fixture(fx, tmp_path):
    r = run_net(VT_DEMO_CFG, tmp_path, *fixture_overrides(fx), "NUM_GPUS", "1")
    assert r.returncode == 0, r.stderr[-4000:]
    assert cu.get_last_checkpoint(str(tmp_path))


def test_parallel_ssl_benchmark_shares_the_gpu(synth_dir, tmp_path):
    report = S.run_ssl_benchmark(str(tmp_path), ["gdt_h1", "stica"], [0], tiny_opts(synth_dir) + ["NUM_GPUS", "1"],
                                 jobs=3)
    assert [(r["method"], r["seed"]) for r in report["runs"]] == [("gdt_h1", 0), ("stica", 0), ("supervised", 0)]
    assert all(0 <= r["probe_top1"] <= 100 and 0 <= r["a2v_r1"] <= 100 for r in report["runs"][:2])
