"""Self-supervised pretraining loop (GDT)."""

import logging
import math
import os
import signal
import threading

import torch

from ..datasets import build_dataset, build_loader, set_loader_epoch
from ..datasets.av_dataset import ssl_sample_type
from ..datasets.transforms import apply_view_colors
from ..models.build import build_model
from ..models.weights import load_weights_from_cfg
from ..registry import get_loss_class
from ..utils import distributed as du
from ..utils.logging import log_json_stats, setup_logging
from . import checkpoint as cu
from .launch import get_device, seed_everything
from .meters import MeterDict, Timer
from .optim import construct_optimizer, get_lr_at_epoch, set_lr

logger = logging.getLogger(__name__)


def build_loss(cfg):
    cls = get_loss_class(cfg.MODEL.LOSS_FUNC)
    return cls.from_cfg(cfg) if hasattr(cls, "from_cfg") else cls()


def apply_channels_last(model):
    """Put every 5-D parameter / buffer (3-D conv weights) in ``channels_last_3d`` and every 4-D one (2-D conv
    weights) in ``channels_last``, in place (``TRAIN.CHANNELS_LAST``). ``Module.to(memory_format=...)`` cannot do
    this for a model that mixes 2-D and 3-D convolutions. Each tensor is copied into a new channels-last tensor, so
    that its strides are exactly those of the gradients the convolutions return (``contiguous(memory_format=...)``
    keeps a 1x1 convolution's weight as it is, whose size-1 dimensions make both stride tuples valid) and
    DistributedDataParallel finds gradients laid out like their parameters. Returns ``model``."""
    for t in list(model.parameters()) + list(model.buffers()):
        if t.dim() in (4, 5):
            fmt = torch.channels_last_3d if t.dim() == 5 else torch.channels_last
            t.data = torch.empty(t.shape, dtype=t.dtype, device=t.device, memory_format=fmt).copy_(t.data)
    return model


def video_to_channels_last(video):
    """A video batch in channels-last layout (same values and shape).

    * ``B x C x T x H x W``: ``channels_last_3d``;
    * ``B x V x C x T x H x W`` (views on axis 1): stored view-major, so that every per-view slice ``video[:, i]``
      that the models take is itself a ``channels_last_3d``-contiguous ``B x C x T x H x W`` tensor.

    Other ranks are returned unchanged.
    """
    if video.dim() == 5:
        return video.contiguous(memory_format=torch.channels_last_3d)
    if video.dim() == 6:
        return video.permute(1, 0, 3, 4, 5, 2).contiguous().permute(1, 0, 5, 2, 3, 4)
    return video


def setup_run(cfg):
    """Per-process start of a training run: logging to ``OUTPUT_DIR``, seeds ``RNG_SEED + rank``, the config
    written to ``OUTPUT_DIR/config.yaml`` (main process). Returns the device."""
    setup_logging(cfg.OUTPUT_DIR)
    seed_everything(cfg.RNG_SEED + du.get_rank())
    if du.is_main_process():
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        with open(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), "w") as f:
            f.write(cfg.dump())
    return get_device(cfg)


def prepare_model(cfg, model, device):
    """Move to ``device``; SyncBatchNorm + DistributedDataParallel when training with several processes; the speed
    switches ``TRAIN.CHANNELS_LAST``, ``CUDNN_BENCHMARK`` (GPU) and ``TRAIN.COMPILE`` (last, in place: the module
    and its state_dict names stay the same)."""
    model = model.to(device)
    if cfg.TRAIN.CHANNELS_LAST:
        apply_channels_last(model)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = bool(cfg.CUDNN_BENCHMARK)
    if du.get_world_size() > 1:
        if cfg.BN.GLOBAL_SYNC:
            model = du.convert_sync_batchnorm(model)  # torch's SyncBatchNorm on GPUs, CpuSyncBatchNorm on the CPU
        ids = [device.index] if device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, output_device=ids[0] if ids else None)
    if cfg.TRAIN.COMPILE:
        model.compile(mode=cfg.TRAIN.COMPILE_MODE)
    if cfg.TRAIN.CHANNELS_LAST or cfg.TRAIN.COMPILE or (cfg.CUDNN_BENCHMARK and device.type == "cuda"):
        logger.info("speed switches: channels_last=%s, compile=%s (mode %s), cudnn_benchmark=%s",
                    cfg.TRAIN.CHANNELS_LAST, cfg.TRAIN.COMPILE, cfg.TRAIN.COMPILE_MODE,
                    cfg.CUDNN_BENCHMARK and device.type == "cuda")
    return model


def resume_or_init(cfg, model, optimizer, scaler=None):
    """Auto-resume from the last complete checkpoint in ``OUTPUT_DIR/checkpoints`` (model, optimizer, scaler, RNG
    and position in the epoch) or initialise from ``TRAIN.CHECKPOINT_FILE_PATH`` (weights only).

    Returns ``(start_epoch, start_iter)``: the epoch to run (0-based) and the iteration within it to start at.
    """
    last = cu.get_last_checkpoint(cfg.OUTPUT_DIR) if cfg.TRAIN.AUTO_RESUME else None
    if last:
        ckpt = cu.load_checkpoint(last, model, optimizer, scaler)
        it = int(ckpt.get("iteration") or 0)
        if ckpt.get("rng_state") is not None:
            torch.set_rng_state(ckpt["rng_state"])
        logger.info("resumed from %s (%d epochs completed%s)", last, ckpt["epoch"],
                    f", {it} iterations into the next" if it else "")
        return int(ckpt["epoch"]), it
    if cfg.TRAIN.CHECKPOINT_FILE_PATH:
        report = load_weights_from_cfg(cu.unwrap(model), cfg.TRAIN.CHECKPOINT_FILE_PATH, cfg.TRAIN.CHECKPOINT_TYPE,
                                       strict_prefixes=("",))
        logger.info("initialised from %s", cfg.TRAIN.CHECKPOINT_FILE_PATH)
        # a released file's epoch counter does not belong to this run's schedule
        if cfg.TRAIN.CHECKPOINT_EPOCH_RESET or cfg.TRAIN.CHECKPOINT_TYPE != "pytorch" or report.epoch is None:
            return 0, 0
        return int(report.epoch), 0
    return 0, 0


class PreemptionHandler:
    """Turns SIGTERM / SIGUSR1 (SLURM preemption, ``scancel``, Kubernetes) into a flag that the training loop
    polls after every iteration: it then writes a checkpoint and stops cleanly. All processes stop at the same
    iteration (the flag is reduced over processes)."""

    SIGNALS = ("SIGTERM", "SIGUSR1")

    def __init__(self):
        self.received = None
        self._previous = {}

    def install(self):
        if threading.current_thread() is not threading.main_thread():
            return self
        for name in self.SIGNALS:
            sig = getattr(signal, name, None)
            if sig is not None:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.received = signal.Signals(signum).name

    def uninstall(self):
        for sig, prev in self._previous.items():
            signal.signal(sig, prev)
        self._previous.clear()

    def should_stop(self):
        flag = 1.0 if self.received else 0.0
        if du.get_world_size() > 1:
            flag = du.all_reduce_sum([flag])[0]
        return flag > 0


def epoch_seed(cfg, epoch):
    """Seed of the global RNGs (dropout masks, negative subsampling) for ``epoch`` on this process: a pure function
    of (RNG_SEED, rank, epoch), so a run restarted from an epoch checkpoint repeats the same random draws."""
    return (cfg.RNG_SEED * 1_000_003 + du.get_rank() * 10_007 + epoch) % (2**31)


def cpu_has_native_bf16():
    """Whether this CPU computes bfloat16 convolutions natively (AVX512-BF16 / AMX, as oneDNN reports it); without
    it bf16 is emulated and slower than float32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # no oneDNN query in this build: assume yes, as before
        return True


_warned_bf16 = []


def amp_settings(cfg, device):
    """``(enabled, dtype)`` of autocast for ``TRAIN.MIXED_PRECISION`` / ``TRAIN.AMP_DTYPE``. bfloat16 on a CPU without
    native bf16 support is turned off with a warning (emulated bf16 is slower than float32)."""
    if not cfg.TRAIN.MIXED_PRECISION:
        return False, torch.float32
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}[cfg.TRAIN.AMP_DTYPE]
    if device.type == "cpu" and dtype == torch.float16:
        raise ValueError("TRAIN.AMP_DTYPE float16 needs a GPU; use bfloat16 on the CPU (or TRAIN.MIXED_PRECISION False)")
    if device.type == "cpu" and not cpu_has_native_bf16():
        if not _warned_bf16:
            logger.warning("TRAIN.MIXED_PRECISION: this CPU has no native bfloat16 (AVX512-BF16 / AMX); training in "
                           "float32 instead")
            _warned_bf16.append(True)
        return False, torch.float32
    return True, dtype


def _to_float(x):
    if torch.is_tensor(x):
        return x.float()
    if isinstance(x, dict):
        return {k: _to_float(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to_float(v) for v in x)
    return x


def ssl_loss(loss_fn, outputs):
    """Loss of one step from the model's outputs (computed in float32).

    * GDT / video-text GDT: ``outputs = (zv, za)``, each ``B x V x D`` with the views of ``loss_fn.views`` on axis 1;
    * STiCA: ``outputs`` = the list of per-view dicts of :class:`stica_ext.models.stica.STiCA`, passed through.
    """
    outputs = _to_float(outputs)
    if hasattr(loss_fn, "views"):
        zv, za = outputs
        return loss_fn({name: (zv[:, i], za[:, i]) for i, name in enumerate(loss_fn.views)})
    return loss_fn(outputs)


def train_epoch(cfg, model, loss_fn, loader, optimizer, epoch, device, scaler=None, start_iter=0, preempt=None):
    """One epoch (from iteration ``start_iter``). Returns ``(stats, stopped_at)`` where ``stopped_at`` is the
    number of iterations done in this epoch when a preemption signal stopped it, else None."""
    model.train()
    meters = MeterDict()
    timer, data_timer = Timer(), Timer()
    n_iters = len(loader) + start_iter
    amp, amp_dtype = amp_settings(cfg, device)
    skipped = clips = 0
    lr = get_lr_at_epoch(cfg, epoch + start_iter / n_iters)
    stopped_at = None
    for it, batch in enumerate(loader, start=start_iter):
        data_time = data_timer.seconds()
        lr = get_lr_at_epoch(cfg, epoch + it / n_iters)
        set_lr(optimizer, lr)
        video = batch["video"].to(device, non_blocking=True)
        if "video_color" in batch:  # DATA.COLOR_ON_DEVICE: uint8 views + colour maps, finished here
            video = apply_view_colors(video, batch["video_color"].to(device, non_blocking=True),
                                      batch.get("video_blur"))  # blur sigmas stay on the CPU
        if cfg.TRAIN.CHANNELS_LAST:
            video = video_to_channels_last(video)
        # the second modality: audio spectrograms (audio-visual GDT, STiCA) or token ids (video-text GDT)
        other = (batch["audio"] if "audio" in batch else batch["text"]).to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=amp):
            outputs = model(video, other)
        loss, stats = ssl_loss(loss_fn, outputs)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch + 1}, iteration {it + 1}")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None and scaler.is_enabled():
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if cfg.SOLVER.CLIP_GRAD_L2NORM:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.SOLVER.CLIP_GRAD_L2NORM)
        if scaler is not None and scaler.is_enabled():
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()

        bs = video.shape[0]
        skipped += int(batch["skipped"].sum())
        clips += bs
        names = ["loss"] + sorted(k for k in stats if k != "loss")
        values = du.all_reduce_mean([loss.item()] + [float(stats[k]) for k in names[1:]])
        reduced = dict(zip(names, values))
        meters.update(bs, data_time=data_time, iter_time=data_timer.seconds(), **reduced)
        if (it + 1) % cfg.LOG_PERIOD == 0 or it + 1 == n_iters:
            eta = meters["iter_time"].avg * (n_iters - it - 1 + n_iters * (cfg.SOLVER.MAX_EPOCH - epoch - 1))
            log_json_stats({
                "_type": "train_iter", "epoch": f"{epoch + 1}/{cfg.SOLVER.MAX_EPOCH}", "iter": f"{it + 1}/{n_iters}",
                "loss": reduced["loss"], "nce_acc": reduced.get("nce_acc", math.nan), "lr": lr,
                "data_time": data_time, "iter_time": meters["iter_time"].last, "eta": _fmt_time(eta),
            }, logger)
        data_timer.reset()
        if preempt is not None and preempt.should_stop():
            stopped_at = it + 1
            break
    skipped, clips = du.all_reduce_sum([skipped, clips])
    avg = meters.averages()
    stats = {
        "_type": "train_epoch", "epoch": f"{epoch + 1}/{cfg.SOLVER.MAX_EPOCH}", "lr": lr,
        "skipped_videos": int(skipped), "clips_per_s": clips / max(timer.seconds(), 1e-9),
        "epoch_time": timer.seconds(),
    }
    stats.update({k: v for k, v in avg.items() if k not in ("data_time", "iter_time")})
    stats["data_time"], stats["iter_time"] = avg.get("data_time", math.nan), avg.get("iter_time", math.nan)
    if stopped_at is not None:
        stats["_type"] = "train_epoch_partial"
        stats["iterations"] = stopped_at
    log_json_stats(stats, logger)
    return stats, stopped_at


def _fmt_time(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def training_finished(cfg, last):
    """Whether ``last`` (a path returned by :func:`train_ssl`) ends the schedule: an epoch checkpoint of at least
    ``SOLVER.MAX_EPOCH`` epochs, not the checkpoint of a run stopped by a preemption signal."""
    parsed = cu.parse_checkpoint_name(last) if last else None
    return parsed is not None and parsed[1] == 0 and parsed[0] >= cfg.SOLVER.MAX_EPOCH


def train_ssl(cfg):
    """Pretrain ``MODEL.MODEL_NAME`` with ``MODEL.LOSS_FUNC`` on ``TRAIN.DATASET``; returns the last checkpoint.

    A SIGTERM / SIGUSR1 writes a mid-epoch checkpoint (an epoch checkpoint when it came during the epoch's last
    iteration) and returns early; running the same command again resumes from it (``TRAIN.AUTO_RESUME``).
    :func:`training_finished` tells a returned checkpoint of a finished run from one of a stopped run.
    """
    device = setup_run(cfg)
    ws = du.get_world_size()
    model = build_model(cfg)
    if cfg.LOG_MODEL_INFO:
        n = sum(p.numel() for p in model.parameters())
        logger.info("model %s: %.2fM parameters", cfg.MODEL.MODEL_NAME, n / 1e6)
    model = prepare_model(cfg, model, device)
    loss_fn = build_loss(cfg)
    dataset = build_dataset(cfg.TRAIN.DATASET, cfg, "train", sample_type=ssl_sample_type(cfg))
    per_proc = cfg.TRAIN.BATCH_SIZE // ws
    loader = build_loader(dataset, cfg, per_proc, shuffle=True, drop_last=cfg.TRAIN.DROP_LAST)
    if len(loader) == 0:
        raise ValueError(f"the training set ({len(dataset)} samples over {ws} processes) is smaller than one batch "
                         f"of {per_proc}; lower TRAIN.BATCH_SIZE")
    optimizer = construct_optimizer(model, cfg)
    amp, amp_dtype = amp_settings(cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp and amp_dtype == torch.float16)
    start_epoch, start_iter = resume_or_init(cfg, model, optimizer, scaler)
    logger.info("training epochs %d..%d, %d iterations per epoch, batch %d per process x %d processes",
                start_epoch + 1, cfg.SOLVER.MAX_EPOCH, len(loader), per_proc, ws)
    last = cu.get_last_checkpoint(cfg.OUTPUT_DIR)
    preempt = PreemptionHandler().install()
    try:
        for epoch in range(start_epoch, cfg.SOLVER.MAX_EPOCH):
            if not start_iter:
                seed_everything(epoch_seed(cfg, epoch))
            set_loader_epoch(loader, epoch, start_sample=start_iter * per_proc)
            n_iters = len(loader) + start_iter
            _, stopped_at = train_epoch(cfg, model, loss_fn, loader, optimizer, epoch, device, scaler,
                                        start_iter=start_iter, preempt=preempt)
            set_loader_epoch(loader, epoch, start_sample=0)
            if stopped_at is not None and stopped_at < n_iters:
                last = cu.save_checkpoint(cfg.OUTPUT_DIR, model, optimizer, epoch, cfg, scaler=scaler,
                                          keep_period=cfg.TRAIN.CHECKPOINT_PERIOD, iteration=stopped_at,
                                          extra={"rng_state": torch.get_rng_state()})
            else:  # the epoch completed (a stop requested during its last iteration ends the run at the epoch end)
                start_iter = 0
                last = cu.save_checkpoint(cfg.OUTPUT_DIR, model, optimizer, epoch + 1, cfg, scaler=scaler,
                                          keep_period=cfg.TRAIN.CHECKPOINT_PERIOD)
            du.synchronize()
            if stopped_at is not None:
                logger.warning("received %s: saved %s and stopped; run the same command to resume",
                               preempt.received or "a stop request", last)
                return last
    finally:
        preempt.uninstall()
    return last
