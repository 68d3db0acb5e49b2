"""Benchmarks behind ``tools/benchmark.py``: model size and FLOPs, data loading, training throughput.

Every report is a JSON-serialisable dict (``report`` names its kind) that :func:`to_markdown` renders as tables:

* :func:`model_report`: parameters (total / trainable, per top-level module), FLOPs and activations per clip of
  each modality's backbone (the video backbone on one clip is the headline number) and of the whole training
  forward for one sample (all its views), counted by fvcore's jit-based ``FlopCountAnalysis`` /
  ``ActivationCountAnalysis``. fvcore counts one fused multiply-add as one flop and skips the operators listed
  under ``unsupported_ops`` (element-wise ops, norms, ...: they count 0).
* :func:`data_report`: samples/s of the training DataLoader with 0..N workers and the per-stage latency of one
  sample (open, video decode, audio decode, audio features, augmentation, the rest; collate per batch), for the
  config's dataset and for generated K400-like clips (340x256 H.264 + AAC, a keyframe every second or x264's
  default sparse keyframes), with the ratio of a whole training sample to decoding its video windows alone with
  plain PyAV (:func:`decode_ratio_report`).
* :func:`train_report`: clips/s and peak memory of forward + backward + optimizer step at the configured shape on
  random inputs, warmup iterations excluded, with the speed switches of the config (``TRAIN.MIXED_PRECISION`` /
  ``TRAIN.AMP_DTYPE``, ``TRAIN.CHANNELS_LAST``, ``TRAIN.COMPILE``, ``CUDNN_BENCHMARK``) applied exactly as the
  training engine applies them.

Progress goes to stderr. Wall-clock figures are medians where a report lists several samples.
"""

import json
import logging
import math
import os
import platform
import random
import resource
import statistics
import sys
import time
from fractions import Fraction

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import views_for_hypothesis, world_size
from ..datasets.transforms import _color_affine, apply_view_colors
from ..models.build import build_model
from .launch import get_device, seed_everything
from .optim import construct_optimizer
from .train_ssl import amp_settings, build_loss, prepare_model, ssl_loss, video_to_channels_last

logger = logging.getLogger(__name__)

__all__ = [
    "model_report",
    "data_report",
    "train_report",
    "decode_ratio_report",
    "make_test_clips",
    "pyav_decode_windows",
    "training_inputs",
    "spectrogram_shape",
    "param_counts",
    "to_markdown",
    "write_report",
    "summary_table",
]

_PROGRESS = {"enabled": True}
# fvcore's convention, stated in every model report.
FLOP_NOTE = ("fvcore FlopCountAnalysis: 1 fused multiply-add = 1 flop. Counted: convolutions, linear / addmm / "
             "(b)mm / matmul / einsum, batch / group / layer / instance norm, adaptive_avg_pool2d, 2-D upsampling, "
             "grid_sampler. Ignored without notice: shape and copy ops, ReLU, max, dropout. Everything else counts 0 "
             "and is listed under unsupported_ops (e.g. element-wise add, adaptive_avg_pool3d, max_pool2d, softmax, "
             "vector norms). Activations: outputs of convolutions and linear / matmul ops.")


def set_progress(enabled):
    """Turn the stderr progress lines on or off."""
    _PROGRESS["enabled"] = bool(enabled)


def progress(msg):
    if _PROGRESS["enabled"]:
        print(f"[benchmark {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _median(xs):
    return float(statistics.median(xs)) if xs else math.nan


def _ms(x):
    return round(1000.0 * x, 3) if x == x else None  # NaN -> None (JSON null)


# ---------------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------------


def spectrogram_shape(cfg):
    """``(F, Tspec)`` of the spectrogram the datasets make from one audio window of ``cfg.AUDIO``."""
    from ..datasets.audio import spectrogram_from_waveform

    a = cfg.AUDIO
    n = int(round(a.NUM_SEC * a.SAMPLE_RATE))
    spec = spectrogram_from_waveform(torch.zeros(n), a.SAMPLE_RATE, num_filters=a.NUM_MEL_BINS,
                                     win_length=a.WIN_LENGTH, hop_length=a.HOP_LENGTH, nfft=a.NFFT,
                                     preemph=a.PREEMPHASIS)
    return int(spec.shape[-2]), int(spec.shape[-1])


def num_views(cfg):
    """Video views per training sample: 2 for STiCA, 1 for the classifier, else those of ``GDT.HYPOTHESIS``."""
    name = cfg.MODEL.MODEL_NAME
    if name == "STiCA":
        return 2
    if name == "VideoClassifier":
        return 1
    return len(views_for_hypothesis(cfg.GDT.HYPOTHESIS))


def training_inputs(cfg, batch_size, seed=0):
    """Random tensors shaped like a collated training batch of ``cfg``: ``(args, labels)`` with ``model(*args)``
    the training forward (``labels`` only for the classifier, else None).

    * ``GDT``: video ``B x V x 3 x T x S x S``, audio ``B x V x 1 x F x Tspec`` (V = the hypothesis' views);
    * ``TextVidGDT``: video as GDT, token ids ``B x V x TEXT.MAX_WORDS`` (int64, 1 .. TEXT.VOCAB_SIZE - 1);
    * ``STiCA``: video ``B x 2 x 3 x T x S x S``, audio ``B x 1 x F x Tspec``;
    * ``VideoClassifier``: video ``B x 3 x T x S x S`` (the tensor form of PySlowFast's ``[video]``), labels ``B``.

    ``T = DATA.NUM_FRAMES``, ``S = DATA.TRAIN_CROP_SIZE``; audio shape from :func:`spectrogram_shape`.
    """
    g = torch.Generator().manual_seed(seed)
    t, s, b = cfg.DATA.NUM_FRAMES, cfg.DATA.TRAIN_CROP_SIZE, int(batch_size)
    name = cfg.MODEL.MODEL_NAME

    def video(*lead):
        return torch.randn(*lead, 3, t, s, s, generator=g)

    def audio(*lead):
        return torch.randn(*lead, 1, *spectrogram_shape(cfg), generator=g)

    if name == "VideoClassifier":
        return (video(b),), torch.randint(0, cfg.MODEL.NUM_CLASSES, (b,), generator=g)
    if name == "STiCA":
        return (video(b, 2), audio(b)), None
    v = num_views(cfg)
    if name == "TextVidGDT":
        vocab = max(int(cfg.TEXT.VOCAB_SIZE), 2)
        return (video(b, v), torch.randint(1, vocab, (b, v, cfg.TEXT.MAX_WORDS), generator=g)), None
    if name == "GDT":
        return (video(b, v), audio(b, v)), None
    raise ValueError(f"benchmark: no input recipe for MODEL.MODEL_NAME {name!r} (GDT, STiCA, TextVidGDT, "
                     "VideoClassifier)")


def _shapes(args):
    return [list(a.shape) for a in args]


# ---------------------------------------------------------------------------------------------------------------
# Model report
# ---------------------------------------------------------------------------------------------------------------


def param_counts(model):
    """``{"total", "trainable", "groups": {top-level module: {"total", "trainable"}}}`` (parameters shared between
    modules counted once; parameters held by the root itself under ``"(root)"``)."""
    groups = {}
    seen = set()
    for name, child in model.named_children():
        tot = tr = 0
        for p in child.parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            tot += p.numel()
            tr += p.numel() if p.requires_grad else 0
        if tot or any(True for _ in child.parameters()):
            groups[name] = {"total": tot, "trainable": tr}
    own = [p for p in model.parameters() if id(p) not in seen]
    if own:
        groups["(root)"] = {"total": sum(p.numel() for p in own),
                            "trainable": sum(p.numel() for p in own if p.requires_grad)}
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable, "groups": groups}


def _tensors(x):
    if torch.is_tensor(x):
        yield x
    elif isinstance(x, dict):
        for v in x.values():
            yield from _tensors(v)
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from _tensors(v)


class _TensorOutputs(nn.Module):
    """Wraps a model so that its forward returns a flat tuple of tensors (what the jit tracer accepts; STiCA returns
    dicts holding crop plans and None)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, *args):
        return tuple(_tensors(self.model(*args)))


def _quiet(analysis):
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    return analysis


def count_flops(module, inputs):
    """fvcore counts of ``module(*inputs)``: ``{"gflops", "by_operator" (GFLOPs), "by_module" (GFLOPs, every
    module path), "unsupported_ops" ({op: calls}), "activations_m" (millions)}``."""
    from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis

    with torch.no_grad():
        flops = _quiet(FlopCountAnalysis(module, inputs))
        total = flops.total()
        by_op = {k: v / 1e9 for k, v in sorted(flops.by_operator().items())}
        by_module = {k: v / 1e9 for k, v in flops.by_module().items()}
        unsupported = dict(sorted(flops.unsupported_ops().items()))
        acts = _quiet(ActivationCountAnalysis(module, inputs))
        act_total = acts.total()
    return {"gflops": total / 1e9, "by_operator": by_op, "by_module": by_module, "unsupported_ops": unsupported,
            "activations_m": act_total / 1e6}


def _modality_parts(model, cfg):
    """``[(key, module path, inputs)]``: each modality's backbone on one clip / window / caption."""
    parts = []
    names = dict(model.named_modules())
    t, s = cfg.DATA.NUM_FRAMES, cfg.DATA.TRAIN_CROP_SIZE
    for path in ("video_network.base", "backbone"):
        if path in names:
            parts.append(("video_base", path, (torch.randn(1, 3, t, s, s),)))
            break
    if "audio_network.base" in names:
        parts.append(("audio_base", "audio_network.base", (torch.randn(1, 1, *spectrogram_shape(cfg)),)))
    if "text_network" in names:
        vocab = max(int(cfg.TEXT.VOCAB_SIZE), 2)
        parts.append(("text_encoder", "text_network", (torch.randint(1, vocab, (1, cfg.TEXT.MAX_WORDS)),)))
    return parts


def _model_config(cfg):
    c = {"model": cfg.MODEL.MODEL_NAME, "video_arch": cfg.MODEL.ARCH, "width": cfg.RESNET.WIDTH_PER_GROUP,
         "frames": cfg.DATA.NUM_FRAMES, "crop": cfg.DATA.TRAIN_CROP_SIZE, "views": num_views(cfg)}
    if cfg.MODEL.MODEL_NAME in ("GDT", "STiCA"):
        c.update(audio_arch=cfg.AUDIO.ARCH, audio_sec=cfg.AUDIO.NUM_SEC, mel_bins=cfg.AUDIO.NUM_MEL_BINS,
                 spectrogram=list(spectrogram_shape(cfg)))
    if cfg.MODEL.MODEL_NAME == "STiCA":
        c.update(pooling_layers=cfg.STICA.NUM_LAYERS)
    if cfg.MODEL.MODEL_NAME == "TextVidGDT":
        c.update(max_words=cfg.TEXT.MAX_WORDS, vocab_size=cfg.TEXT.VOCAB_SIZE)
    if cfg.MODEL.MODEL_NAME == "VideoClassifier":
        c.update(num_classes=cfg.MODEL.NUM_CLASSES, pooling=cfg.FINETUNE.POOLING)
    return c


def model_report(cfg, name=""):
    """Parameters, FLOPs and activations of ``MODEL.MODEL_NAME`` built from ``cfg`` (CPU, eval mode, batch 1).

    ``per_clip``: each modality's backbone alone on one clip (``video_base``: ``1 x 3 x T x S x S``, the headline
    ``gflops_video_clip``; ``audio_base``: one spectrogram; ``text_encoder``: one caption). ``per_sample``: the
    whole training forward for one sample with all its views (:func:`training_inputs`, batch 1), split over the
    top-level modules. FLOPs in GFLOPs (1e9), activations in millions.
    """
    progress(f"model report: building {cfg.MODEL.MODEL_NAME} ({cfg.MODEL.ARCH}, width {cfg.RESNET.WIDTH_PER_GROUP})")
    seed_everything(cfg.RNG_SEED)
    model = build_model(cfg).eval()
    report = {"report": "model", "name": name or cfg.MODEL.MODEL_NAME, "config": _model_config(cfg),
              "params": param_counts(model), "per_clip": {}, "flop_note": FLOP_NOTE}
    modules = dict(model.named_modules())
    for key, path, inputs in _modality_parts(model, cfg):
        progress(f"model report: counting {key} ({path}) on input {_shapes(inputs)}")
        c = count_flops(modules[path], inputs)
        report["per_clip"][key] = {"module": path, "input": _shapes(inputs), "gflops": c["gflops"],
                                   "activations_m": c["activations_m"], "by_operator": c["by_operator"],
                                   "unsupported_ops": c["unsupported_ops"],
                                   "params": sum(p.numel() for p in modules[path].parameters())}
    args, _ = training_inputs(cfg, 1)
    progress(f"model report: counting the training forward of one sample on {_shapes(args)}")
    c = count_flops(_TensorOutputs(model), args)
    by_group = {g: c["by_module"].get(f"model.{g}", 0.0) for g in report["params"]["groups"] if g != "(root)"}
    report["per_sample"] = {"input": _shapes(args), "views": num_views(cfg), "gflops": c["gflops"],
                            "activations_m": c["activations_m"], "by_group": by_group,
                            "by_operator": c["by_operator"], "unsupported_ops": c["unsupported_ops"]}
    video = report["per_clip"].get("video_base")
    report["gflops_video_clip"] = video["gflops"] if video else None
    return report


# ---------------------------------------------------------------------------------------------------------------
# Data report
# ---------------------------------------------------------------------------------------------------------------

STAGES = ("open", "video_decode", "audio_decode", "audio_features", "augment")


class _Threads:
    """Run a block with ``n`` intra-op threads (as one DataLoader worker has), restoring the old count."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.old = torch.get_num_threads()
        if self.n:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.old)
        return False


def _key(dataset, i):
    n = len(dataset)
    return (i % n, i // n)


def _worker_like_allocator(cfg):
    """The allocator settings of a DataLoader worker (``DATA_LOADER.TUNE_MALLOC``) for measurements made in this
    process."""
    if cfg is None or cfg.DATA_LOADER.TUNE_MALLOC:
        from ..utils.malloc import keep_freed_memory

        keep_freed_memory()


def stage_latency(dataset, num_samples, batch_size, threads=1):
    """Per-stage latency of ``num_samples`` items of ``dataset`` (in this process, ``threads`` intra-op threads)
    and of collating batches of ``batch_size`` items.

    Returns ``{"samples", "stages": {stage: {"median_ms", "mean_ms"}}, "total": {...}, "other": {...},
    "collate_batch_ms", "collate_per_sample_ms"}``; ``other`` is the rest of an item's time (packing, stacking,
    retries). Stages are those the dataset reports through its ``stage_times`` hook (:data:`STAGES`).
    """
    from torch.utils.data import default_collate

    _worker_like_allocator(getattr(dataset, "cfg", None))
    has_hook = hasattr(dataset, "stage_times")
    per_stage = {k: [] for k in STAGES}
    totals, others, items = [], [], []
    with _Threads(threads):
        for i in range(num_samples):
            times = {}
            if has_hook:
                dataset.stage_times = times
            t0 = time.perf_counter()
            try:
                item = dataset[_key(dataset, i)]
            finally:
                if has_hook:
                    dataset.stage_times = None
            total = time.perf_counter() - t0
            totals.append(total)
            for k in STAGES:
                if k in times:
                    per_stage[k].append(times[k])
            others.append(total - sum(times.values()))
            if len(items) < batch_size:
                items.append(item)
        collates = []
        for _ in range(5):
            t0 = time.perf_counter()
            default_collate(items)
            collates.append(time.perf_counter() - t0)
    stages = {k: {"median_ms": _ms(_median(v)), "mean_ms": _ms(float(np.mean(v)))} for k, v in per_stage.items() if v}
    coll = _median(collates)
    return {"samples": num_samples, "threads": threads, "stages": stages,
            "total": {"median_ms": _ms(_median(totals)), "mean_ms": _ms(float(np.mean(totals)))},
            "other": {"median_ms": _ms(_median(others)), "mean_ms": _ms(float(np.mean(others)))},
            "collate_batch_ms": _ms(coll), "collate_batch_size": len(items),
            "collate_per_sample_ms": _ms(coll / max(len(items), 1))}


class _Repeated(torch.utils.data.Dataset):
    """``dataset`` listed ``times`` times (key ``(i, epoch)`` -> ``(i mod n, epoch * times + i div n)``: each copy
    draws its own augmentation), so that a few test clips fill the timed batches."""

    def __init__(self, dataset, times):
        self.dataset, self.times, self.n = dataset, int(times), len(dataset)

    def __len__(self):
        return self.n * self.times

    def __getitem__(self, key):
        i, epoch = key if isinstance(key, (tuple, list)) else (key, 0)
        return self.dataset[(i % self.n, epoch * self.times + i // self.n)]


def loader_throughput(dataset, cfg, batch_size, workers=(0,), num_batches=4):
    """Samples/s of the training DataLoader (:func:`stica_ext.datasets.build_loader`: one intra-op thread per
    worker, persistent workers, prefetch 2) for each worker count: ``num_batches`` batches timed after the first
    one (whose time, worker start-up included, is reported as ``first_batch_s``)."""
    from ..datasets import build_loader, set_loader_epoch

    need = batch_size * (num_batches + 1)
    if len(dataset) < need:
        dataset = _Repeated(dataset, math.ceil(need / len(dataset)))
    rows = []
    for w in workers:
        loader = build_loader(dataset, cfg, batch_size, shuffle=True, drop_last=True, num_workers=int(w))
        progress(f"data report: {num_batches + 1} batches of {batch_size} with {w} worker(s)")
        epoch = 0
        it = iter(loader)
        try:
            t0 = time.perf_counter()
            next(it)
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            done = 0
            while done < num_batches:
                try:
                    next(it)
                    done += 1
                except StopIteration:
                    epoch += 1
                    set_loader_epoch(loader, epoch)
                    it = iter(loader)
            elapsed = time.perf_counter() - t0
        finally:
            shutdown = getattr(it, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()
            del it, loader
        rows.append({"workers": int(w), "batch_size": batch_size, "batches": num_batches,
                     "samples_per_s": num_batches * batch_size / max(elapsed, 1e-9), "first_batch_s": first})
    return rows


def _sample_type(cfg):
    from ..datasets.av_dataset import ssl_sample_type

    return ssl_sample_type(cfg) if cfg.TASK == "ssl_pretrain" else "classify"


def _build_train_dataset(cfg):
    from ..datasets import build_dataset

    kwargs = {}
    if cfg.TASK == "ssl_pretrain":
        kwargs["sample_type"] = _sample_type(cfg)
    return build_dataset(cfg.TRAIN.DATASET, cfg, "train", **kwargs)


def dataset_measurements(cfg, name, workers=(0,), batch_size=None, num_batches=4, num_samples=8, dataset=None):
    """Loader throughput (:func:`loader_throughput`) and stage latency (:func:`stage_latency`) of the training set
    of ``cfg``."""
    batch_size = int(batch_size or max(cfg.TRAIN.BATCH_SIZE // world_size(cfg), 1))
    if dataset is None:
        progress(f"data report: building the {cfg.TRAIN.DATASET} training set ({name})")
        dataset = _build_train_dataset(cfg)
    progress(f"data report: stage latency of {num_samples} samples ({name})")
    stages = stage_latency(dataset, num_samples, batch_size)
    loader = loader_throughput(dataset, cfg, batch_size, workers, num_batches)
    return {"name": name, "dataset": cfg.TRAIN.DATASET, "data_dir": cfg.DATA.PATH_TO_DATA_DIR,
            "sample_type": getattr(dataset, "sample_type", None) or "classify", "items": len(dataset),
            "views": num_views(cfg) if getattr(dataset, "sample_type", "") in ("gdt", "stica") else 1,
            "frames": cfg.DATA.NUM_FRAMES, "crop": cfg.DATA.TRAIN_CROP_SIZE, "batch_size": batch_size,
            "loader": loader, "latency": stages}


# --- generated K400-like clips -----------------------------------------------------------------------------------

# Two keyframe layouts of the generated clips: a keyframe every second (g = fps), and x264's default (keyint 250).
CLIP_LAYOUTS = {"gop30": {"g": "30"}, "sparse": {}}


def _scene(rng, width, height, duration, fps):
    """Frames (generator of ``H x W x 3`` uint8) of a textured, panning scene with moving discs: enough detail and
    motion for a realistic H.264 bit rate at crf 23."""
    tex_h, tex_w = 2 * height, 2 * width
    coarse = torch.from_numpy(rng.random((3, tex_h // 16, tex_w // 16), dtype=np.float32))[None]
    smooth = F.interpolate(coarse, size=(tex_h, tex_w), mode="bicubic", align_corners=False)[0].numpy()
    fine = rng.random((tex_h, tex_w), dtype=np.float32)[None] * 0.25
    texture = np.clip(smooth * 0.8 + fine, 0.0, 1.0).transpose(1, 2, 0)
    texture = (texture * 255).astype(np.uint8)
    vel = rng.uniform(-1.5, 1.5, 2)
    discs = [(rng.uniform(0, width), rng.uniform(0, height), rng.uniform(-4, 4), rng.uniform(-4, 4),
              rng.uniform(10, 30), rng.integers(0, 256, 3)) for _ in range(4)]
    yy, xx = np.mgrid[0:height, 0:width]
    n = int(round(duration * fps))
    for k in range(n):
        ox = int(abs((k * vel[0]) % (2 * (tex_w - width)) - (tex_w - width)))
        oy = int(abs((k * vel[1]) % (2 * (tex_h - height)) - (tex_h - height)))
        frame = texture[oy:oy + height, ox:ox + width].copy()
        for (x0, y0, vx, vy, r, col) in discs:
            cx = abs((x0 + k * vx) % (2 * width) - width)
            cy = abs((y0 + k * vy) % (2 * height) - height)
            frame[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = col
        yield frame


def _write_clip(path, rng, width, height, duration, fps, sample_rate, options):
    import av

    tmp = path + ".tmp.mp4"
    with av.open(tmp, mode="w", format="mp4") as container:
        vs = container.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"crf": "23", **options}
        aus = container.add_stream("aac", rate=sample_rate)
        aus.layout = "stereo"
        for k, rgb in enumerate(_scene(rng, width, height, duration, fps)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = k, Fraction(1, fps)
            for packet in vs.encode(frame):
                container.mux(packet)
        for packet in vs.encode():
            container.mux(packet)
        n = int(round(duration * sample_rate))
        t = np.arange(n) / sample_rate
        tone = 0.2 * np.sin(2 * np.pi * (220 + 200 * np.sin(2 * np.pi * 0.3 * t)) * t)
        wave = (tone + 0.05 * rng.standard_normal(n)).astype(np.float32)
        stereo = np.stack([wave, wave[::-1].copy()])
        for start in range(0, n, 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(stereo[:, start:start + 1024]), format="fltp",
                                               layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = sample_rate, start, Fraction(1, sample_rate)
            for packet in aus.encode(frame):
                container.mux(packet)
        for packet in aus.encode():
            container.mux(packet)
    os.replace(tmp, path)


def _keyframe_times(path):
    import av

    with av.open(path) as c:
        s = c.streams.video[0]
        return [float(p.pts * s.time_base) for p in c.demux(s) if p.is_keyframe and p.pts is not None]


def make_test_clips(root, num_clips=4, duration=10.0, width=340, height=256, fps=30, sample_rate=44100, seed=0,
                    layouts=tuple(CLIP_LAYOUTS)):
    """Write K400-like test clips (H.264 crf 23 yuv420p ``width x height`` at ``fps`` + AAC stereo) for each
    keyframe layout of :data:`CLIP_LAYOUTS` into ``root/<layout>/clip_<k>.mp4`` with a ``train.csv`` list.
    Existing files are kept (the folder is a cache; the parameters are part of its name).

    Returns ``{layout: {"dir", "clips", "keyframes_per_clip", "size_kb"}}``.
    """
    out = {}
    for layout in layouts:
        folder = os.path.join(root, f"{layout}_{width}x{height}_{fps}fps_{duration:g}s_{num_clips}")
        os.makedirs(folder, exist_ok=True)
        paths = []
        for k in range(num_clips):
            path = os.path.join(folder, f"clip_{k:03d}.mp4")
            if not os.path.isfile(path):
                progress(f"data report: writing {path}")
                _write_clip(path, np.random.default_rng(seed * 1000 + k), width, height, duration, fps,
                            sample_rate, CLIP_LAYOUTS[layout])
            paths.append(path)
        with open(os.path.join(folder, "train.csv"), "w") as f:
            f.writelines(f"{os.path.basename(p)} 0\n" for p in paths)
        keys = [len(_keyframe_times(p)) for p in paths]
        out[layout] = {"dir": folder, "clips": len(paths), "keyframes_per_clip": float(np.mean(keys)),
                       "size_kb": float(np.mean([os.path.getsize(p) for p in paths]) / 1024)}
    return out


def pyav_decode_windows(path, start_secs, num_frames, stride=1, threads=1):
    """The reference cost: open ``path`` once and, for each start time (s from the stream start), seek to the
    keyframe before it, decode, and convert ``num_frames`` frames (every ``stride``-th from the start) to RGB
    arrays with plain PyAV. Returns the number of frames converted."""
    import av

    got_total = 0
    with av.open(path) as c:
        s = c.streams.video[0]
        if threads != 1:
            s.thread_type = "AUTO"
        s.thread_count = max(int(threads), 0)
        tb = s.time_base
        half_frame = 0.5 / float(s.average_rate or 30)
        origin = float(s.start_time * tb) if s.start_time is not None else 0.0
        for t0 in start_secs:
            t_abs = origin + t0
            c.seek(int(math.floor(t_abs / tb)), stream=s, backward=True, any_frame=False)
            got = k = 0
            for frame in c.decode(s):
                if frame.pts is not None and float(frame.pts * tb) < t_abs - half_frame:
                    continue
                if k % stride == 0:
                    frame.to_ndarray(format="rgb24")
                    got += 1
                k += 1
                if got == num_frames:
                    break
            got_total += got
    return got_total


def _video_duration(path):
    import av

    with av.open(path) as c:
        s = c.streams.video[0]
        if s.duration:
            return float(s.duration * s.time_base)
        return c.duration / av.time_base


def four_view_cfg(cfg, clip_dir):
    """``cfg`` (its DATA / AUDIO recipe) reading the ``train.csv`` folder ``clip_dir`` as GDT samples with all four
    views (``GDT.HYPOTHESIS 6``), without the validity index."""
    c = cfg.clone()
    c.defrost()
    c.TASK, c.MODEL.MODEL_NAME, c.GDT.HYPOTHESIS = "ssl_pretrain", "GDT", "6"
    c.TRAIN.DATASET, c.DATA.PATH_TO_DATA_DIR, c.DATA.PATH_PREFIX = "audiovisual", clip_dir, ""
    c.DATA.VALIDITY_FILTER, c.DATA.LAYOUT, c.AUDIO.ENABLE = False, "csv", True
    c.freeze()
    return c


def decode_ratio_report(cfg, clip_dir, layout="", num_samples=12, threads=1):
    """Whole four-view GDT sample vs. decoding its two video windows alone with plain PyAV, on the clips in
    ``clip_dir`` (a ``train.csv`` folder, e.g. from :func:`make_test_clips`).

    The sample is an :class:`~stica_ext.datasets.av_dataset.AudioVisualDataset` item with ``GDT.HYPOTHESIS 6``
    (all four views ``[V, VR, V2, V2R]``: two clips with their audio windows from one container opening, log-mel
    features, augmentation of four views) and the config's DATA / AUDIO recipe. The baseline
    (:func:`pyav_decode_windows`) opens the file once and decodes two ``DATA.NUM_FRAMES``-frame windows at random
    positions. Both run with ``threads`` intra-op / decoder threads (as in one DataLoader worker), alternating,
    so that load from other processes affects both alike. ``ratio`` = median sample time / median baseline time.
    """
    from ..datasets import build_dataset

    c = four_view_cfg(cfg, clip_dir)
    _worker_like_allocator(c)
    dataset = build_dataset("audiovisual", c, "train", sample_type="gdt")
    span = c.DATA.SAMPLING_RATE * c.DATA.NUM_FRAMES / c.DATA.TARGET_FPS
    durations = {p: _video_duration(p) for p in dataset.paths}
    rng = random.Random(c.RNG_SEED)
    samples, base, per_stage = [], [], {k: [] for k in STAGES}
    progress(f"data report: {num_samples} four-view samples vs. PyAV two-window decodes ({layout or clip_dir})")
    with _Threads(threads):
        for i in range(num_samples + 1):  # the first pair warms caches and is not counted
            key = _key(dataset, i)
            times = {}
            dataset.stage_times = times
            t0 = time.perf_counter()
            try:
                item = dataset[key]
            finally:
                dataset.stage_times = None
            t_sample = time.perf_counter() - t0
            path = dataset.paths[key[0]]
            starts = [rng.uniform(0.0, max(durations[path] - span, 0.0)) for _ in range(2)]
            t0 = time.perf_counter()
            pyav_decode_windows(path, starts, c.DATA.NUM_FRAMES, stride=c.DATA.SAMPLING_RATE, threads=threads)
            t_base = time.perf_counter() - t0
            if i == 0:
                continue
            samples.append(t_sample)
            base.append(t_base)
            for k in STAGES:
                if k in times:
                    per_stage[k].append(times[k])
    ms, mb = _median(samples), _median(base)
    return {"layout": layout, "dir": clip_dir, "samples": num_samples, "threads": threads,
            "views": int(item["video"].shape[0]),
            "video_shape": list(item["video"].shape), "audio_shape": list(item["audio"].shape),
            "sample_ms": _ms(ms), "pyav_two_windows_ms": _ms(mb), "ratio": ms / mb if mb > 0 else None,
            "target_ratio": 1.3,
            "stages_median_ms": {k: _ms(_median(v)) for k, v in per_stage.items() if v}}


def data_report(cfg, workers=(0, 1, 2), batch_size=None, num_batches=4, num_samples=8, clips_root=None,
                clip_params=None, ratio_samples=12):
    """Data-loading report: the config's training set (when it can be built: the synthetic dataset, or
    ``DATA.PATH_TO_DATA_DIR`` set) and, when ``clips_root`` is given, generated K400-like clips in both keyframe
    layouts (:func:`make_test_clips`, parameters ``clip_params``) with the decode ratio of each
    (:func:`decode_ratio_report`)."""
    report = {"report": "data", "workers": [int(w) for w in workers], "datasets": [], "decode_ratio": [],
              "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    can_build = cfg.TRAIN.DATASET.lower().startswith("synthetic") or bool(cfg.DATA.PATH_TO_DATA_DIR)
    if can_build:
        report["datasets"].append(dataset_measurements(cfg, cfg.TRAIN.DATASET, workers, batch_size, num_batches,
                                                       num_samples))
    else:
        report["skipped"] = (f"{cfg.TRAIN.DATASET}: DATA.PATH_TO_DATA_DIR is empty (set it to measure this dataset; "
                             f"the generated clips are measured either way)")
        progress(f"data report: {report['skipped']}")
    if clips_root:
        clips = make_test_clips(clips_root, **(clip_params or {}))
        report["clips"] = clips
        for layout, info in clips.items():
            c = four_view_cfg(cfg, info["dir"])
            m = dataset_measurements(c, f"clips_{layout}", workers, batch_size, num_batches, num_samples)
            m["keyframes_per_clip"] = info["keyframes_per_clip"]
            report["datasets"].append(m)
            r = decode_ratio_report(cfg, info["dir"], layout, ratio_samples)
            r["keyframes_per_clip"] = info["keyframes_per_clip"]
            r["size_kb"] = info["size_kb"]
            report["decode_ratio"].append(r)
    return report


# ---------------------------------------------------------------------------------------------------------------
# Training report
# ---------------------------------------------------------------------------------------------------------------


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak_rss():
    """Reset the process's peak resident set size (Linux ``/proc/self/clear_refs``); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def channels_last_fraction(model):
    """Fraction of the convolution weights (4-D / 5-D parameters) stored channels-last (``channels_last`` /
    ``channels_last_3d``), among those whose two layouts differ (e.g. not ``1x1x1`` kernels or one input channel)."""
    n = ok = 0
    for p in model.parameters():
        if p.dim() not in (4, 5):
            continue
        last = p.is_contiguous(memory_format=torch.channels_last_3d if p.dim() == 5 else torch.channels_last)
        if last and p.is_contiguous():
            continue  # both layouts are the same memory order
        n += 1
        ok += int(last)
    return ok / n if n else 0.0


def _device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"CPU {line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"CPU {platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def deferred_video_inputs(cfg, video, seed=0):
    """``(uint8 views, colour maps, blur sigmas or None)`` shaped like the float ``video`` batch (on its device), as
    the loader hands them over with ``DATA.COLOR_ON_DEVICE``: random pixels, the normalisation as colour map, and
    for STiCA a blur on every other view (the recipe blurs half of them)."""
    g = torch.Generator().manual_seed(seed)
    lead, t = video.shape[:-4], video.shape[-3]
    u8 = torch.randint(0, 256, tuple(video.shape), generator=g, dtype=torch.uint8).to(video.device)
    a, c = _color_affine((), False, cfg.DATA.MEAN, cfg.DATA.STD, None)
    color = torch.cat([a, c.expand(3, t)], dim=1).expand(*lead, 3, 3 + t).contiguous().to(video.device)
    blur = None
    if cfg.MODEL.MODEL_NAME == "STiCA":
        blur = (torch.arange(lead.numel()) % 2 == 0).float().view(lead)  # sigma 1 on every other view
    return u8, color, blur


def train_report(cfg, warmup=5, iters=20, batch_size=None, tag=""):
    """Clips/s and peak memory of the training step (forward, loss, backward, optimizer step) at the configured
    shape (``DATA.NUM_FRAMES`` x ``DATA.TRAIN_CROP_SIZE``, per-process batch ``TRAIN.BATCH_SIZE / world size`` or
    ``batch_size``) on random inputs (:func:`training_inputs`) on ``NUM_GPUS > 0 ? cuda : cpu``.

    The model goes through the engine's ``prepare_model`` (``TRAIN.CHANNELS_LAST``, ``CUDNN_BENCHMARK``,
    ``TRAIN.COMPILE``), the step runs under the engine's autocast settings (``TRAIN.MIXED_PRECISION``,
    ``TRAIN.AMP_DTYPE``; fp16 with a gradient scaler) and reads the loss back every iteration as the training loop
    does. ``warmup`` iterations (compilation, cuDNN autotuning, allocator growth) are timed separately and excluded.
    ``clips_per_s`` = samples per second (one sample = ``views`` video clips + their audio / text), from the median
    iteration time; peak memory: ``torch.cuda.max_memory_allocated`` over the timed iterations on a GPU, the peak
    resident set size of the process (reset before the timed iterations where Linux allows) on the CPU.
    """
    device = get_device(cfg)
    seed_everything(cfg.RNG_SEED)
    b = int(batch_size or max(cfg.TRAIN.BATCH_SIZE // world_size(cfg), 1))
    name = cfg.MODEL.MODEL_NAME
    progress(f"train report [{tag or 'run'}]: {name} {cfg.MODEL.ARCH} width {cfg.RESNET.WIDTH_PER_GROUP}, batch {b}, "
             f"{cfg.DATA.NUM_FRAMES}x{cfg.DATA.TRAIN_CROP_SIZE}x{cfg.DATA.TRAIN_CROP_SIZE} on {device}")
    model = prepare_model(cfg, build_model(cfg), device)
    model.train()
    classify = name == "VideoClassifier"
    loss_fn = None if classify else build_loss(cfg).to(device)
    optimizer = construct_optimizer(model, cfg)
    amp, amp_dtype = amp_settings(cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp and amp_dtype == torch.float16)
    args, labels = training_inputs(cfg, b, seed=cfg.RNG_SEED)
    args = [a.to(device) for a in args]
    deferred = deferred_video_inputs(cfg, args[0]) if cfg.DATA.COLOR_ON_DEVICE and not classify else None
    if cfg.TRAIN.CHANNELS_LAST:
        args[0] = video_to_channels_last(args[0])
    labels = labels.to(device) if labels is not None else None

    def step():
        if deferred is not None:  # DATA.COLOR_ON_DEVICE: the training step finishes the uint8 views first
            video = apply_view_colors(*deferred)
            args[0] = video_to_channels_last(video) if cfg.TRAIN.CHANNELS_LAST else video
        with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=amp):
            out = model(*args)
        loss = F.cross_entropy(out.float(), labels) if classify else ssl_loss(loss_fn, out)[0]
        optimizer.zero_grad(set_to_none=True)
        if scaler.is_enabled():
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        return loss.item()  # the training loop reads the loss every iteration (a device sync)

    t0 = time.perf_counter()
    for i in range(warmup):
        step()
        progress(f"train report [{tag or 'run'}]: warmup {i + 1}/{warmup}")
    _sync(device)
    warmup_s = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss_reset = device.type == "cpu" and _reset_peak_rss()
    times, loss = [], math.nan
    for i in range(iters):
        t0 = time.perf_counter()
        loss = step()
        _sync(device)
        times.append(time.perf_counter() - t0)
        if (i + 1) % max(iters // 4, 1) == 0 or i + 1 == iters:
            progress(f"train report [{tag or 'run'}]: {i + 1}/{iters} iterations, "
                     f"{b / _median(times):.2f} clips/s so far")
    med, total = _median(times), float(sum(times))
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        peak_kind = "cuda max_memory_allocated"
        reserved = torch.cuda.max_memory_reserved(device) / 2**20
    else:
        peak = _peak_rss_mb()
        peak_kind = "process peak RSS (" + ("timed iterations" if rss_reset else "whole process") + ")"
        reserved = None
    v = num_views(cfg)
    return {
        "report": "train", "tag": tag, "model": name, "video_arch": cfg.MODEL.ARCH,
        "audio_arch": cfg.AUDIO.ARCH if name in ("GDT", "STiCA") else None, "width": cfg.RESNET.WIDTH_PER_GROUP,
        "device": str(device), "device_name": _device_name(device), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "batch_size": b, "views": v,
        "input": _shapes(args), "frames": cfg.DATA.NUM_FRAMES, "crop": cfg.DATA.TRAIN_CROP_SIZE,
        "switches": {"mixed_precision": bool(amp), "amp_dtype": str(amp_dtype).replace("torch.", "") if amp else None,
                     "channels_last": bool(cfg.TRAIN.CHANNELS_LAST), "compile": bool(cfg.TRAIN.COMPILE),
                     "color_on_device": deferred is not None,
                     "compile_mode": cfg.TRAIN.COMPILE_MODE if cfg.TRAIN.COMPILE else None,
                     "cudnn_benchmark": bool(cfg.CUDNN_BENCHMARK) and device.type == "cuda",
                     "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32) if device.type == "cuda" else None,
                     "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32) if device.type == "cuda"
                     else None},
        "weights_channels_last": channels_last_fraction(model),
        "warmup_iters": warmup, "timed_iters": iters, "warmup_s": warmup_s,
        "iter_s_median": med, "iter_s_mean": total / max(iters, 1), "iter_s": [round(t, 6) for t in times],
        "clips_per_s": b / med if med > 0 else None, "clips_per_s_mean": b * iters / total if total > 0 else None,
        "video_clips_per_s": b * v / med if med > 0 else None,
        "peak_memory_mb": peak, "peak_memory_kind": peak_kind, "peak_reserved_mb": reserved, "last_loss": loss,
    }


# ---------------------------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------------------------


def _fmt(x, nd=2):
    if x is None or (isinstance(x, float) and x != x):
        return "-"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _shape_str(shapes):
    return " + ".join("x".join(map(str, s)) for s in shapes)


def _model_md(r):
    p = r["params"]
    out = [f"## Model: {r['name']}", "", "config: " + ", ".join(f"{k}={v}" for k, v in r["config"].items()), ""]
    rows = [[g, f"{v['total'] / 1e6:.3f}", f"{v['trainable'] / 1e6:.3f}",
             _fmt(r["per_sample"]["by_group"].get(g), 3)] for g, v in p["groups"].items()]
    rows.append(["**total**", f"{p['total'] / 1e6:.3f}", f"{p['trainable'] / 1e6:.3f}",
                 _fmt(r["per_sample"]["gflops"], 3)])
    out += [_table(["module", "params (M)", "trainable (M)", "GFLOPs / sample"], rows), ""]
    rows = [[k, v["module"], "x".join(map(str, v["input"][0])), f"{v['params'] / 1e6:.3f}", _fmt(v["gflops"], 3),
             _fmt(v["activations_m"], 2)] for k, v in r["per_clip"].items()]
    rows.append(["whole sample", "(training forward)", _shape_str(r["per_sample"]["input"]),
                 f"{p['total'] / 1e6:.3f}", _fmt(r["per_sample"]["gflops"], 3),
                 _fmt(r["per_sample"]["activations_m"], 2)])
    out += [_table(["part", "module", "input", "params (M)", "GFLOPs", "activations (M)"], rows), ""]
    ops = r["per_sample"]["unsupported_ops"]
    out += ["Operators fvcore skipped (counted as 0 flops), calls in one sample: "
            + (", ".join(f"`{k}` x{v}" for k, v in ops.items()) or "none"), "", r["flop_note"], ""]
    return "\n".join(out)


def _data_md(r):
    out = ["## Data loading", ""]
    if r.get("skipped"):
        out += [f"Skipped: {r['skipped']}", ""]
    rows = []
    for d in r["datasets"]:
        for row in d["loader"]:
            rows.append([d["name"], d["sample_type"], d["views"], f"{d['frames']}x{d['crop']}", row["workers"],
                         row["batch_size"], _fmt(row["samples_per_s"]), _fmt(row["first_batch_s"])])
    if rows:
        out += [_table(["dataset", "sample", "views", "clip", "workers", "batch", "samples/s", "first batch (s)"],
                       rows), ""]
    rows = []
    for d in r["datasets"]:
        lat = d["latency"]
        rows.append([d["name"]] + [_fmt((lat["stages"].get(k) or {}).get("median_ms"), 1) for k in STAGES]
                    + [_fmt(lat["other"]["median_ms"], 1), _fmt(lat["total"]["median_ms"], 1),
                       _fmt(lat["collate_per_sample_ms"], 2)])
    if rows:
        out += ["Per-sample latency (ms, medians, one thread, in-process):", "",
                _table(["dataset", "open", "video decode", "audio decode", "audio features", "augment", "other",
                        "total", "collate / sample"], rows), ""]
    if r.get("decode_ratio"):
        rows = [[x["layout"], _fmt(x.get("keyframes_per_clip"), 1), _fmt(x.get("size_kb"), 0), x["samples"],
                 _fmt(x["sample_ms"], 1), _fmt(x["pyav_two_windows_ms"], 1), _fmt(x["ratio"], 2),
                 f"<= {x['target_ratio']}"] for x in r["decode_ratio"]]
        out += ["Four-view GDT sample vs. decoding its two video windows alone with PyAV (medians, one thread):", "",
                _table(["keyframes", "keyframes / clip", "clip kB", "samples", "sample (ms)", "PyAV 2 windows (ms)",
                        "ratio", "target"], rows), ""]
    return "\n".join(out)


def _train_md(r):
    return "\n".join([f"## Training step{' [' + r['tag'] + ']' if r.get('tag') else ''}", "",
                      _table(["model", "device", "batch", "input", "switches", "clips/s", "iter (ms)", "peak mem (MB)",
                              "warmup (s)"],
                             [[f"{r['model']} {r['video_arch']} w{r['width']}", r["device_name"], r["batch_size"],
                               _shape_str(r["input"]), _switches(r["switches"]),
                               _fmt(r["clips_per_s"]), _fmt(1000 * r["iter_s_median"], 1), _fmt(r["peak_memory_mb"], 0),
                               _fmt(r["warmup_s"], 1)]]),
                      "", f"peak memory: {r['peak_memory_kind']}; {r['timed_iters']} timed iterations after "
                      f"{r['warmup_iters']} warmup; torch {r['torch']}, {r['threads']} threads", ""])


def _switches(s):
    on = []
    if s.get("mixed_precision"):
        on.append(s.get("amp_dtype") or "amp")
    if s.get("channels_last"):
        on.append("channels-last")
    if s.get("cudnn_benchmark"):
        on.append("cudnn-benchmark")
    if s.get("compile"):
        on.append(f"compile({s.get('compile_mode')})")
    if s.get("color_on_device"):
        on.append("colour-on-device")
    return " + ".join(on) or "fp32 eager"


def to_markdown(report):
    """Markdown tables of a report of any kind."""
    kind = report.get("report")
    if kind == "model":
        return _model_md(report)
    if kind == "data":
        return _data_md(report)
    if kind == "train":
        if "error" in report:
            return f"## Training step [{report.get('tag')}]\n\nfailed: {report['error']}\n"
        return _train_md(report)
    if kind == "summary":
        return report["markdown"]
    raise ValueError(f"unknown report kind {kind!r}")


def write_report(report, out_dir, stem):
    """Write ``out_dir/<stem>.json`` and ``out_dir/<stem>.md``; returns both paths."""
    os.makedirs(out_dir, exist_ok=True)
    jp, mp = os.path.join(out_dir, f"{stem}.json"), os.path.join(out_dir, f"{stem}.md")
    with open(jp, "w") as f:
        json.dump(report, f, indent=1, default=str)
    with open(mp, "w") as f:
        f.write(to_markdown(report))
    return jp, mp


def summary_table(out_dir):
    """Compact table of every ``train*.json`` in ``out_dir`` (speed-up relative to the run tagged ``fp32``, else the
    first): a ``summary`` report with the rows and their Markdown."""
    runs = []
    for fn in sorted(os.listdir(out_dir)):
        if fn.startswith("train") and fn.endswith(".json"):
            with open(os.path.join(out_dir, fn)) as f:
                r = json.load(f)
            r["_mtime"] = os.path.getmtime(os.path.join(out_dir, fn))
            runs.append(r)
    runs.sort(key=lambda r: r["_mtime"])
    base = next((r for r in runs if r.get("tag") == "fp32" and r.get("clips_per_s")), None)
    base = base or next((r for r in runs if r.get("clips_per_s")), None)
    rows = []
    for r in runs:
        if "error" in r:
            rows.append([r.get("tag", ""), "-", "-", "failed: " + str(r["error"])[:80], "-", "-", "-", "-"])
            continue
        speed = r["clips_per_s"] / base["clips_per_s"] if base and r.get("clips_per_s") else None
        rows.append([r.get("tag", ""), r["device_name"], r["batch_size"], _switches(r["switches"]),
                     _fmt(r["clips_per_s"]), _fmt(speed), _fmt(r["peak_memory_mb"], 0), _fmt(r["warmup_s"], 1)])
    md = _table(["mode", "device", "batch", "switches", "clips/s", "speed-up", "peak mem (MB)", "warmup (s)"], rows)
    first = next((r for r in runs if "error" not in r), None)
    if first:
        md = (f"{first['model']} {first['video_arch']} + {first.get('audio_arch')}, input "
              f"{_shape_str(first['input'])}, {first['timed_iters']} timed iterations "
              f"after {first['warmup_iters']} warmup\n\n" + md)
    return {"report": "summary", "runs": [{k: v for k, v in r.items() if k != "_mtime"} for r in runs],
            "markdown": md + "\n"}
