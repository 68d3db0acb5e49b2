"""Self-supervised pretraining loop (GDT)."""

import logging
import math
import os

import torch

from ..datasets import build_dataset, build_loader, set_loader_epoch
from ..models.build import build_model
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


def prepare_model(cfg, model, device):
    """Move to ``device``; SyncBatchNorm + DistributedDataParallel when training with several processes."""
    model = model.to(device)
    if du.get_world_size() > 1:
        if cfg.BN.GLOBAL_SYNC:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ids = [device.index] if device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, output_device=ids[0] if ids else None)
    return model


def resume_or_init(cfg, model, optimizer):
    """Auto-resume from ``OUTPUT_DIR/checkpoints`` (optimizer included) or initialise from
    ``TRAIN.CHECKPOINT_FILE_PATH`` (weights only). Returns the epoch to start from."""
    last = cu.get_last_checkpoint(cfg.OUTPUT_DIR) if cfg.TRAIN.AUTO_RESUME else None
    if last:
        ckpt = cu.load_checkpoint(last, model, optimizer)
        logger.info("resumed from %s (epoch %d completed)", last, ckpt["epoch"])
        return int(ckpt["epoch"])
    if cfg.TRAIN.CHECKPOINT_FILE_PATH:
        ckpt = cu.load_checkpoint(cfg.TRAIN.CHECKPOINT_FILE_PATH, model, None)
        logger.info("initialised from %s", cfg.TRAIN.CHECKPOINT_FILE_PATH)
        return 0 if cfg.TRAIN.CHECKPOINT_EPOCH_RESET else int(ckpt["epoch"])
    return 0


def train_epoch(cfg, model, loss_fn, loader, optimizer, epoch, device):
    model.train()
    meters = MeterDict()
    timer, data_timer = Timer(), Timer()
    n_iters = len(loader)
    skipped = 0
    clips = 0
    for it, batch in enumerate(loader):
        data_time = data_timer.seconds()
        lr = get_lr_at_epoch(cfg, epoch + it / n_iters)
        set_lr(optimizer, lr)
        video = batch["video"].to(device, non_blocking=True)
        audio = batch["audio"].to(device, non_blocking=True)
        zv, za = model(video, audio)
        views = {name: (zv[:, i], za[:, i]) for i, name in enumerate(loss_fn.views)}
        loss, stats = loss_fn(views)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch + 1}, iteration {it + 1}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.SOLVER.CLIP_GRAD_L2NORM:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.SOLVER.CLIP_GRAD_L2NORM)
        optimizer.step()

        bs = video.shape[0]
        skipped += int(batch["skipped"].sum())
        clips += bs
        loss_v, acc_v = du.all_reduce_mean([loss.item(), stats["nce_acc"].item()])
        meters.update(bs, loss=loss_v, nce_acc=acc_v, data_time=data_time, iter_time=data_timer.seconds())
        if (it + 1) % cfg.LOG_PERIOD == 0 or it + 1 == n_iters:
            eta = meters["iter_time"].avg * (n_iters - it - 1 + n_iters * (cfg.SOLVER.MAX_EPOCH - epoch - 1))
            log_json_stats({
                "_type": "train_iter", "epoch": f"{epoch + 1}/{cfg.SOLVER.MAX_EPOCH}", "iter": f"{it + 1}/{n_iters}",
                "loss": loss_v, "nce_acc": acc_v, "lr": lr, "data_time": data_time,
                "iter_time": meters["iter_time"].last, "eta": _fmt_time(eta),
            }, logger)
        data_timer.reset()
    skipped, clips = du.all_reduce_sum([skipped, clips])
    avg = meters.averages()
    stats = {
        "_type": "train_epoch", "epoch": f"{epoch + 1}/{cfg.SOLVER.MAX_EPOCH}", "loss": avg.get("loss", math.nan),
        "nce_acc": avg.get("nce_acc", math.nan), "lr": lr, "skipped_videos": int(skipped),
        "clips_per_s": clips / max(timer.seconds(), 1e-9), "epoch_time": timer.seconds(),
    }
    log_json_stats(stats, logger)
    return stats


def _fmt_time(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def train_ssl(cfg):
    """Pretrain ``MODEL.MODEL_NAME`` with ``MODEL.LOSS_FUNC`` on ``TRAIN.DATASET``; returns the last checkpoint."""
    setup_logging(cfg.OUTPUT_DIR)
    seed_everything(cfg.RNG_SEED + du.get_rank())
    device = get_device(cfg)
    ws = du.get_world_size()
    if du.is_main_process():
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        with open(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), "w") as f:
            f.write(cfg.dump())
    model = build_model(cfg)
    if cfg.LOG_MODEL_INFO:
        n = sum(p.numel() for p in model.parameters())
        logger.info("model %s: %.2fM parameters", cfg.MODEL.MODEL_NAME, n / 1e6)
    model = prepare_model(cfg, model, device)
    loss_fn = build_loss(cfg)
    dataset = build_dataset(cfg.TRAIN.DATASET, cfg, "train", sample_type="gdt")
    per_proc = cfg.TRAIN.BATCH_SIZE // ws
    loader = build_loader(dataset, cfg, per_proc, shuffle=True, drop_last=cfg.TRAIN.DROP_LAST)
    if len(loader) == 0:
        raise ValueError(f"the training set ({len(dataset)} samples over {ws} processes) is smaller than one batch "
                         f"of {per_proc}; lower TRAIN.BATCH_SIZE")
    optimizer = construct_optimizer(model, cfg)
    start_epoch = resume_or_init(cfg, model, optimizer)
    logger.info("training epochs %d..%d, %d iterations per epoch, batch %d per process x %d processes",
                start_epoch + 1, cfg.SOLVER.MAX_EPOCH, len(loader), per_proc, ws)
    last = cu.get_last_checkpoint(cfg.OUTPUT_DIR)
    for epoch in range(start_epoch, cfg.SOLVER.MAX_EPOCH):
        set_loader_epoch(loader, epoch)
        train_epoch(cfg, model, loss_fn, loader, optimizer, epoch, device)
        last = cu.save_checkpoint(cfg.OUTPUT_DIR, model, optimizer, epoch + 1, cfg,
                                  keep_period=cfg.TRAIN.CHECKPOINT_PERIOD)
        du.synchronize()
    return last
