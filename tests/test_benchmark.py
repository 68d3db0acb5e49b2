"""tools/benchmark.py and stica_ext.engine.benchmark: report structure, FLOP counts against an analytic count of
the convolutions, the speed switches, and the commands of tools/gpu_benchmark.sh. Small CPU shapes only; no
assertion on wall-clock times."""

import importlib.util
import json
import os
import shlex
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from stica_ext.config import ConfigError, add_stica_config, assert_and_infer_cfg, get_cfg, load_config
from stica_ext.config.defaults import NEW_KEYS, NEW_TOP_KEYS
from stica_ext.datasets import transforms as T
from stica_ext.engine import benchmark as B
from stica_ext.engine.train_ssl import apply_channels_last, prepare_model, video_to_channels_last
from stica_ext.models import GDT, build_model
from stica_ext.models.r2plus1d import r2plus1d_18, r2plus1d_34

from _tiny import tiny_cfg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
B.set_progress(False)


def _tool():
    spec = importlib.util.spec_from_file_location("benchmark_tool", os.path.join(ROOT, "tools", "benchmark.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _small(data_dir, out_dir, **over):
    kw = {"RESNET.WIDTH_PER_GROUP": 8, "DATA.NUM_FRAMES": 4, "DATA.TRAIN_CROP_SIZE": 32, "TRAIN.BATCH_SIZE": 2}
    kw.update(over)
    return tiny_cfg(data_dir, out_dir, **kw)


# --- FLOPs ---------------------------------------------------------------------------------------------------------


def _analytic(module, x):
    """Multiply-adds of every Conv3d (out elements x in_ch / groups x kT kH kW) and fvcore's eval-mode batch-norm
    count (2 per input element: scale and shift), from forward hooks."""
    conv, bn = [0], [0]

    def conv_hook(m, inp, out):
        conv[0] += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1] * m.kernel_size[2]

    def bn_hook(m, inp, out):
        bn[0] += 2 * inp[0].numel()

    hooks = [m.register_forward_hook(conv_hook) for m in module.modules() if isinstance(m, nn.Conv3d)]
    hooks += [m.register_forward_hook(bn_hook) for m in module.modules() if isinstance(m, nn.BatchNorm3d)]
    with torch.no_grad():
        module(x)
    for h in hooks:
        h.remove()
    return conv[0], bn[0]


@pytest.mark.parametrize("build,width,shape", [(r2plus1d_18, 16, (1, 3, 8, 48, 48)),
                                               (r2plus1d_34, 8, (1, 3, 6, 40, 40))])
def test_video_base_flops_match_analytic_conv_count(build, width, shape):
    net = build(width=width).eval()
    x = torch.randn(*shape)
    conv, bn = _analytic(net, x)
    counts = B.count_flops(net, (x,))
    assert counts["by_operator"]["conv"] * 1e9 == pytest.approx(conv, rel=0.01)
    # the whole count = convolutions + batch norms (fvcore skips additions, ReLU and the 3-D average pool)
    assert counts["gflops"] * 1e9 == pytest.approx(conv + bn, rel=0.01)
    assert "aten::adaptive_avg_pool3d" in counts["unsupported_ops"]
    assert counts["activations_m"] > 0


# --- model report --------------------------------------------------------------------------------------------------


def test_model_report_structure_and_parameter_totals(synth_dir, tmp_path):
    cfg = _small(synth_dir, tmp_path)
    r = B.model_report(cfg)
    assert r["report"] == "model" and r["config"]["model"] == "GDT"
    model = build_model(cfg)
    total = sum(p.numel() for p in model.parameters())
    assert r["params"]["total"] == total
    assert r["params"]["trainable"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert r["params"]["trainable"] < total  # the frozen, never-executed ResNet-9 fc
    groups = r["params"]["groups"]
    assert set(groups) == {"video_network", "audio_network", "mlp_v", "mlp_a"}
    assert sum(g["total"] for g in groups.values()) == total
    assert set(r["per_clip"]) == {"video_base", "audio_base"}
    video = r["per_clip"]["video_base"]
    assert video["module"] == "video_network.base" and video["input"] == [[1, 3, 4, 32, 32]]
    assert r["gflops_video_clip"] == video["gflops"] > 0
    conv, _ = _analytic(model.video_network.base.eval(), torch.randn(1, 3, 4, 32, 32))
    assert video["by_operator"]["conv"] * 1e9 == pytest.approx(conv, rel=0.01)
    s = r["per_sample"]
    assert s["views"] == 1 and s["input"] == [[1, 1, 3, 4, 32, 32], [1, 1, 1, 40, 99]]
    assert s["gflops"] >= video["gflops"] + r["per_clip"]["audio_base"]["gflops"]
    assert s["by_group"]["video_network"] == pytest.approx(video["gflops"], rel=1e-6)
    assert isinstance(s["unsupported_ops"], dict) and "aten::add" in s["unsupported_ops"]
    md = B.to_markdown(r)
    assert "| module | params (M) | trainable (M) | GFLOPs / sample |" in md and "| video_base |" in md
    json.dumps(r)


@pytest.mark.parametrize("over,parts,views", [
    ({"MODEL.MODEL_NAME": "STiCA", "MODEL.LOSS_FUNC": "stica_nce", "STICA.NUM_LAYERS": 1, "DATA.NUM_FRAMES": 8},
     {"video_base", "audio_base"}, 2),
    ({"MODEL.MODEL_NAME": "TextVidGDT", "AUDIO.ENABLE": False, "TEXT.VOCAB_SIZE": 50, "TEXT.HIDDEN_DIM": 32,
      "GDT.HYPOTHESIS": "6"}, {"video_base", "text_encoder"}, 4),
    ({"MODEL.MODEL_NAME": "VideoClassifier", "TASK": "finetune"}, {"video_base"}, 1),
])
def test_model_report_every_meta_architecture(synth_dir, tmp_path, over, parts, views):
    cfg = _small(synth_dir, tmp_path, **over)
    r = B.model_report(cfg)
    assert set(r["per_clip"]) == parts
    assert r["per_sample"]["views"] == views and r["per_sample"]["gflops"] > 0
    assert r["params"]["total"] == sum(p.numel() for p in build_model(cfg).parameters())


# --- training report and switches ----------------------------------------------------------------------------------


def test_train_report_structure_and_switches(synth_dir, tmp_path, monkeypatch):
    # as on a CPU with native bf16 (elsewhere TRAIN.MIXED_PRECISION falls back to float32 with a warning)
    monkeypatch.setattr(importlib.import_module("stica_ext.engine.train_ssl"), "cpu_has_native_bf16", lambda: True)
    cfg = _small(synth_dir, tmp_path)
    r = B.train_report(cfg, warmup=1, iters=2)
    assert r["report"] == "train" and r["device"] == "cpu" and r["batch_size"] == 2 and r["timed_iters"] == 2
    assert r["input"] == [[2, 1, 3, 4, 32, 32], [2, 1, 1, 40, 99]]
    assert r["clips_per_s"] > 0 and r["peak_memory_mb"] > 0 and r["weights_channels_last"] == 0.0
    assert r["switches"]["channels_last"] is False and r["switches"]["mixed_precision"] is False
    cfg = _small(synth_dir, tmp_path, **{"TRAIN.CHANNELS_LAST": True, "TRAIN.MIXED_PRECISION": True})
    r = B.train_report(cfg, warmup=1, iters=1, tag="bf16_cl")
    assert r["switches"]["channels_last"] and r["switches"]["amp_dtype"] == "bfloat16"
    assert r["weights_channels_last"] == 1.0 and r["tag"] == "bf16_cl"
    assert r["last_loss"] == r["last_loss"]  # finite, not NaN
    md = B.to_markdown(r)
    assert "| model | device | batch |" in md and "bfloat16 + channels-last" in md


def test_prepare_model_applies_channels_last_and_compile(synth_dir, tmp_path):
    cfg = _small(synth_dir, tmp_path, **{"TRAIN.CHANNELS_LAST": True, "TRAIN.COMPILE": True})
    model = prepare_model(cfg, build_model(cfg), torch.device("cpu"))
    w3 = model.video_network.base.stem[0].weight
    w2 = model.audio_network.base.layer1[0].conv1.weight
    assert w3.is_contiguous(memory_format=torch.channels_last_3d) and not w3.is_contiguous()
    assert w2.is_contiguous(memory_format=torch.channels_last) and not w2.is_contiguous()
    assert B.channels_last_fraction(model) == 1.0
    # compiled in place (lazily: nothing is compiled before the first call); names and type unchanged
    assert isinstance(model, GDT) and getattr(model, "_compiled_call_impl", None) is not None
    assert all(not k.startswith("_orig_mod") for k in model.state_dict())
    plain = prepare_model(_small(synth_dir, tmp_path), build_model(cfg), torch.device("cpu"))
    assert getattr(plain, "_compiled_call_impl", None) is None and B.channels_last_fraction(plain) == 0.0


def test_channels_last_gives_the_same_outputs():
    torch.manual_seed(0)
    model = GDT(width=8, embed_dim=16).eval()
    video, audio = torch.randn(2, 3, 3, 4, 32, 32), torch.randn(2, 3, 1, 40, 99)
    with torch.no_grad():
        ref = model(video, audio)
        cl_video = video_to_channels_last(video)
        assert torch.equal(cl_video, video)
        assert all(cl_video[:, i].is_contiguous(memory_format=torch.channels_last_3d) for i in range(3))
        out = apply_channels_last(model)(cl_video, audio)
    for a, b in zip(ref, out):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    x = torch.randn(2, 3, 4, 8, 8)
    assert video_to_channels_last(x).is_contiguous(memory_format=torch.channels_last_3d)


def test_switch_keys_defaults_and_validation():
    cfg = get_cfg()
    assert cfg.TRAIN.CHANNELS_LAST is False and cfg.TRAIN.COMPILE is False and cfg.CUDNN_BENCHMARK is False
    assert cfg.TRAIN.COMPILE_MODE == "default"
    assert "CUDNN_BENCHMARK" in NEW_TOP_KEYS
    assert {"CHANNELS_LAST", "COMPILE", "COMPILE_MODE"} <= set(NEW_KEYS["TRAIN"])
    bare = add_stica_config(type(cfg)({"TRAIN": type(cfg)({"ENABLE": True})}))
    assert bare.CUDNN_BENCHMARK is False and bare.TRAIN.COMPILE_MODE == "default"
    cfg.TRAIN.COMPILE_MODE = "fastest"
    with pytest.raises(ConfigError, match="TRAIN.COMPILE_MODE"):
        assert_and_infer_cfg(cfg)
    cfg = load_config(opts=["TRAIN.COMPILE_MODE", "max-autotune", "CUDNN_BENCHMARK", "True", "NUM_GPUS", "0"])
    assert assert_and_infer_cfg(cfg).TRAIN.COMPILE_MODE == "max-autotune"


# --- data report ---------------------------------------------------------------------------------------------------


def test_data_report_structure_stages_and_decode_ratio(synth_dir, tmp_path):
    cfg = _small(synth_dir, tmp_path, **{"DATA.TRAIN_JITTER_SCALES": [32, 40]})
    r = B.data_report(cfg, workers=(0, 1), batch_size=2, num_batches=1, num_samples=2,
                      clips_root=str(tmp_path / "clips"),
                      clip_params=dict(num_clips=2, duration=2.0, width=68, height=52), ratio_samples=2)
    assert r["report"] == "data" and r["workers"] == [0, 1]
    names = [d["name"] for d in r["datasets"]]
    assert names == ["synthetic_av", "clips_gop30", "clips_sparse"]
    for d in r["datasets"]:
        assert [row["workers"] for row in d["loader"]] == [0, 1]
        assert all(row["samples_per_s"] > 0 for row in d["loader"])
        lat = d["latency"]
        assert set(lat["stages"]) == set(B.STAGES)  # open, video / audio decode, audio features, augment
        assert all(v["median_ms"] > 0 for v in lat["stages"].values())
        assert lat["total"]["median_ms"] > 0 and lat["collate_per_sample_ms"] > 0
    assert r["datasets"][1]["views"] == 4
    clips = r["clips"]
    assert clips["gop30"]["keyframes_per_clip"] >= 2  # one per second of the 2 s clips
    assert clips["sparse"]["keyframes_per_clip"] <= clips["gop30"]["keyframes_per_clip"]
    ratios = {x["layout"]: x for x in r["decode_ratio"]}
    assert set(ratios) == {"gop30", "sparse"}
    for x in ratios.values():
        assert x["video_shape"] == [4, 3, 4, 32, 32] and x["audio_shape"][:2] == [4, 1]
        assert x["ratio"] > 0 and x["sample_ms"] > 0 and x["pyav_two_windows_ms"] > 0
        assert set(x["stages_median_ms"]) == set(B.STAGES)
    md = B.to_markdown(r)
    assert "| dataset | sample | views |" in md and "| gop30 |" in md and "| sparse |" in md
    json.dumps(r)


def test_pyav_reference_decodes_the_requested_frames(tmp_path):
    clips = B.make_test_clips(str(tmp_path), num_clips=1, duration=2.0, width=68, height=52, layouts=("gop30",))
    path = os.path.join(clips["gop30"]["dir"], "clip_000.mp4")
    assert B.pyav_decode_windows(path, [0.2, 1.0], num_frames=8) == 16
    assert B.pyav_decode_windows(path, [0.5], num_frames=4, stride=2) == 4


# --- tool and GPU script -------------------------------------------------------------------------------------------


def test_gpu_script_commands_parse_and_run_at_a_tiny_cpu_shape(synth_dir, tmp_path):
    out = tmp_path / "gpu"
    env = dict(os.environ, DRY_RUN="1", PYTHON=sys.executable)
    lines = subprocess.run(["bash", os.path.join(ROOT, "tools", "gpu_benchmark.sh"), str(out)], env=env, check=True,
                           capture_output=True, text=True).stdout.strip().splitlines()
    tool = _tool()
    cmds = [shlex.split(line)[2:] for line in lines]  # drop "python tools/benchmark.py"
    assert cmds[-1] == ["--summary", str(out)]
    tags = []
    for argv in cmds[:-1]:
        args = tool.parse_args(argv)
        assert args.report == "train" and args.out == str(out) and args.cfg_files and args.keep_going
        cfg = assert_and_infer_cfg(load_config(args))
        assert (cfg.DATA.NUM_FRAMES, cfg.DATA.TRAIN_CROP_SIZE, cfg.TRAIN.BATCH_SIZE, cfg.NUM_GPUS) == (30, 112, 8, 1)
        assert (cfg.MODEL.ARCH, cfg.AUDIO.ARCH) == ("r2plus1d_18", "resnet9")
        tags.append((args.tag, cfg.TRAIN.MIXED_PRECISION, cfg.TRAIN.CHANNELS_LAST, cfg.TRAIN.COMPILE))
    assert tags[0] == ("fp32", False, False, False)
    assert ("bf16", True, False, False) in tags and ("bf16_cl", True, True, False) in tags
    assert tags[-1] == ("bf16_cl_cudnn_compile", True, True, True)
    # the same commands at a tiny CPU shape (compile left out: it takes minutes on a CPU)
    tiny = ["NUM_GPUS", "0", "RESNET.WIDTH_PER_GROUP", "8", "DATA.NUM_FRAMES", "4", "DATA.TRAIN_CROP_SIZE", "32",
            "DATA.TRAIN_JITTER_SCALES", "[32, 40]", "TRAIN.BATCH_SIZE", "2"]
    for argv in cmds[:3]:
        argv = ["--quiet"] + argv + tiny
        argv[argv.index("--warmup") + 1], argv[argv.index("--iters") + 1] = "1", "1"
        tool.main(argv)
    res = tool.run(tool.parse_args(["--quiet"] + cmds[-1]))
    md = (out / "summary.md").read_text()
    assert "| mode | device | batch | switches | clips/s | speed-up |" in md
    assert [r["tag"] for r in res["summary"]["runs"]] == ["fp32", "bf16", "bf16_cl"]
    for tag in ("fp32", "bf16", "bf16_cl"):
        assert json.loads((out / f"train_{tag}.json").read_text())["clips_per_s"] > 0
        assert (out / f"train_{tag}.md").exists()


def test_tool_writes_json_and_markdown_with_overrides(synth_dir, tmp_path):
    tool = _tool()
    out = tmp_path / "bm"
    res = tool.run(tool.parse_args([
        "--cfg", os.path.join(ROOT, "configs", "GDT", "SYNTH_AV_demo.yaml"), "--report", "model", "--out", str(out),
        "--quiet", "--tag", "tiny", "NUM_GPUS", "0", "RESNET.WIDTH_PER_GROUP", "8", "DATA.NUM_FRAMES", "4",
        "DATA.TRAIN_CROP_SIZE", "32", "DATA.TRAIN_JITTER_SCALES", "[32, 40]"]))
    assert set(res) == {"model"} and res["model"]["config"]["width"] == 8
    data = json.loads((out / "model_tiny.json").read_text())
    assert data["params"]["total"] == res["model"]["params"]["total"]
    assert (out / "model_tiny.md").read_text().startswith("## Model: tiny")


def test_keep_freed_memory_respects_the_environment(monkeypatch):
    import platform

    from stica_ext.utils import malloc

    monkeypatch.setattr(malloc, "_applied", None)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert malloc.keep_freed_memory() is False  # the user's own setting wins
    assert malloc.keep_freed_memory() is False  # decided once per process
    monkeypatch.setattr(malloc, "_applied", None)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    applied = malloc.keep_freed_memory()
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert applied is True
    assert malloc.keep_freed_memory() is applied


def test_loader_workers_get_the_allocator_setting(synth_dir, tmp_path):
    import functools

    from stica_ext.datasets import build_dataset, build_loader

    cfg = _small(synth_dir, tmp_path, **{"DATA_LOADER.NUM_WORKERS": 1})
    ds = build_dataset("synthetic_av", cfg, "train")
    loader = build_loader(ds, cfg, 2, shuffle=False, drop_last=False)
    assert isinstance(loader.worker_init_fn, functools.partial) and loader.worker_init_fn.keywords == {
        "tune_malloc": True}
    cfg.defrost()
    cfg.DATA_LOADER.TUNE_MALLOC = False
    loader = build_loader(ds, cfg, 2, shuffle=False, drop_last=False)
    assert loader.worker_init_fn.keywords == {"tune_malloc": False}


def test_ssl_default_methods_are_the_benchmark_defaults():
    from stica_ext.engine.ssl_benchmark import DEFAULT_METHODS

    assert _tool().parse_args(["--report", "ssl"]).methods.split(",") == list(DEFAULT_METHODS)


def test_train_report_finishes_deferred_views_in_the_step(synth_dir, tmp_path):
    # DATA.COLOR_ON_DEVICE: the timed step includes turning the uint8 views into normalised float views
    cfg = _small(synth_dir, tmp_path, **{"DATA.COLOR_ON_DEVICE": True})
    video = torch.zeros(2, 3, 3, 4, 8, 8)
    u8, color, blur = B.deferred_video_inputs(cfg, video)
    assert u8.dtype == torch.uint8 and u8.shape == video.shape and color.shape == (2, 3, 3, 3 + 4) and blur is None
    mean = torch.tensor(cfg.DATA.MEAN).view(3, 1, 1, 1)
    std = torch.tensor(cfg.DATA.STD).view(3, 1, 1, 1)
    torch.testing.assert_close(T.apply_view_colors(u8, color), (u8.float() / 255 - mean) / std, rtol=1e-5,
                               atol=1e-5)
    r = B.train_report(cfg, warmup=1, iters=1)
    assert r["switches"]["color_on_device"] and "colour-on-device" in B.to_markdown(r)
    assert r["input"] == [[2, 1, 3, 4, 32, 32], [2, 1, 1, 40, 99]] and r["last_loss"] == r["last_loss"]


def test_channels_last_gradients_are_laid_out_like_their_parameters():
    # DistributedDataParallel warns ("grad strides do not match bucket view strides") and copies every gradient
    # whose strides differ from its parameter's; the 1x1 convolutions' weights used to be such a case
    torch.manual_seed(0)
    model = apply_channels_last(GDT(width=4, embed_dim=16))
    out = model(video_to_channels_last(torch.randn(2, 1, 3, 4, 32, 32)), torch.randn(2, 1, 1, 40, 99))
    sum(o.float().pow(2).sum() for o in out if torch.is_tensor(o)).backward()
    params = [(n, p) for n, p in model.named_parameters() if p.grad is not None]
    assert len(params) > 100 and any(p.dim() == 5 and p.shape[2:] == (1, 1, 1) for _, p in params)
    assert [n for n, p in params if p.grad.stride() != p.stride()] == []
