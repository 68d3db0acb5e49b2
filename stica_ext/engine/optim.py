"""Optimizer and learning-rate policies (PySlowFast semantics, stepped per iteration with fractional epochs)."""

import math

import torch


def construct_optimizer(model, cfg):
    """``SOLVER.OPTIMIZING_METHOD`` over the trainable parameters, weight decay on all of them (as in the GDT
    recipe): ``sgd`` (momentum, dampening, Nesterov from SOLVER), ``adam`` or ``adamw`` (``SOLVER.BETAS``)."""
    params = [p for p in model.parameters() if p.requires_grad]
    s = cfg.SOLVER
    if s.OPTIMIZING_METHOD == "sgd":
        return torch.optim.SGD(params, lr=s.BASE_LR, momentum=s.MOMENTUM, dampening=s.DAMPENING,
                               weight_decay=s.WEIGHT_DECAY, nesterov=s.NESTEROV)
    if s.OPTIMIZING_METHOD == "adam":
        return torch.optim.Adam(params, lr=s.BASE_LR, betas=tuple(s.BETAS), weight_decay=s.WEIGHT_DECAY)
    if s.OPTIMIZING_METHOD == "adamw":
        return torch.optim.AdamW(params, lr=s.BASE_LR, betas=tuple(s.BETAS), weight_decay=s.WEIGHT_DECAY)
    raise ValueError(f"SOLVER.OPTIMIZING_METHOD {s.OPTIMIZING_METHOD!r} is not supported (sgd, adam, adamw)")


def _policy_lr(cfg, epoch):
    s = cfg.SOLVER
    if s.LR_POLICY == "constant":
        return s.BASE_LR
    if s.LR_POLICY == "cosine":
        offset = s.WARMUP_EPOCHS if s.COSINE_AFTER_WARMUP else 0.0
        span = max(s.MAX_EPOCH - offset, 1e-8)
        t = min(max(epoch - offset, 0.0), span) / span
        return s.COSINE_END_LR + (s.BASE_LR - s.COSINE_END_LR) * (math.cos(math.pi * t) + 1.0) * 0.5
    if s.LR_POLICY == "steps_with_relative_lrs":
        # STEPS are epoch boundaries (first must be 0, as in PySlowFast); LRS the multipliers of BASE_LR.
        ind = 0
        for i, step in enumerate(s.STEPS):
            if epoch >= step:
                ind = i
        return s.LRS[ind] * s.BASE_LR
    raise ValueError(f"unknown SOLVER.LR_POLICY {s.LR_POLICY!r}")


def warmup_multiplier(cfg):
    """``SOLVER.WARMUP_MULTIPLIER``, with -1 meaning the number of processes."""
    m = cfg.SOLVER.WARMUP_MULTIPLIER
    if m < 0:
        from ..utils.distributed import get_world_size

        m = get_world_size()
    return float(m)


def gdt_epoch_warmup_lr(base_lr, multiplier, warmup_epochs, epoch):
    """The GDT reference schedule at integer ``epoch``: ``base·(1 + (m−1)·min(e, E)/E)``, constant afterwards
    (the reference's later milestone lies beyond its last epoch)."""
    e = int(math.floor(epoch))
    if warmup_epochs <= 0:
        return base_lr * multiplier
    return base_lr * (1.0 + (multiplier - 1.0) * min(e, warmup_epochs) / warmup_epochs)


def get_lr_at_epoch(cfg, epoch):
    """Learning rate at fractional ``epoch``: linear warmup from ``WARMUP_START_LR`` over ``WARMUP_EPOCHS`` to the
    policy's value at the end of warmup, then the policy (``gdt_epoch_warmup`` has its own per-epoch warmup)."""
    s = cfg.SOLVER
    if s.LR_POLICY == "gdt_epoch_warmup":
        return gdt_epoch_warmup_lr(s.BASE_LR, warmup_multiplier(cfg), s.WARMUP_EPOCHS, epoch)
    lr = _policy_lr(cfg, epoch)
    if epoch < s.WARMUP_EPOCHS:
        end = _policy_lr(cfg, s.WARMUP_EPOCHS)
        lr = s.WARMUP_START_LR + (end - s.WARMUP_START_LR) * epoch / s.WARMUP_EPOCHS
    return lr


def set_lr(optimizer, lr):
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
