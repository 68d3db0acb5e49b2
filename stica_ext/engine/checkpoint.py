"""Checkpoints: ``{"epoch", "model_state", "optimizer_state", "scaler_state", "cfg"}`` written atomically under
``OUTPUT_DIR/checkpoints/checkpoint_epoch_{epoch:05d}.pyth`` (PySlowFast's naming; ``epoch`` = completed epochs),
loaded with ``torch.load(..., weights_only=True)``.

A run stopped by a preemption signal writes ``checkpoint_epoch_{epoch:05d}_iter_{iteration:06d}.pyth`` (``epoch``
completed epochs plus ``iteration`` iterations of the next one, and the RNG state); it sorts after the epoch's own
checkpoint and is removed once the epoch completes."""

import logging
import os
import re

import torch

from ..utils import distributed as du
from ..utils.io import PathManager, atomic_save

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^checkpoint_epoch_(\d{5})(?:_iter_(\d{6}))?\.pyth$")


def checkpoint_dir(output_dir):
    return os.path.join(output_dir, "checkpoints")


def checkpoint_path(output_dir, epoch, iteration=None):
    name = f"checkpoint_epoch_{epoch:05d}" + (f"_iter_{iteration:06d}" if iteration else "") + ".pyth"
    return os.path.join(checkpoint_dir(output_dir), name)


def parse_checkpoint_name(path):
    """``(epoch, iteration)`` of a checkpoint written by :func:`save_checkpoint` (``iteration`` 0 for an epoch
    checkpoint), or None for another file name."""
    m = _NAME.match(os.path.basename(path))
    return (int(m.group(1)), int(m.group(2) or 0)) if m else None


def list_checkpoints(output_dir):
    """Complete checkpoints in ``output_dir/checkpoints`` sorted by epoch (temporary files are ignored)."""
    d = checkpoint_dir(output_dir)
    if not PathManager.exists(d):
        return []
    names = sorted(n for n in PathManager.ls(d) if _NAME.match(n))
    return [os.path.join(d, n) for n in names]


def get_last_checkpoint(output_dir):
    ckpts = list_checkpoints(output_dir)
    return ckpts[-1] if ckpts else None


def unwrap(model):
    return model.module if hasattr(model, "module") else model


def save_checkpoint(output_dir, model, optimizer, epoch, cfg, scaler=None, keep_period=1, extra=None, iteration=None):
    """Write the checkpoint of ``epoch`` completed epochs (plus ``iteration`` iterations of the next epoch for a
    mid-epoch stop) on the main process, and remove older ones except epoch checkpoints whose epoch is a multiple
    of ``keep_period``. Returns the path."""
    path = checkpoint_path(output_dir, epoch, iteration)
    if not du.is_main_process():
        return path
    state = {
        "epoch": epoch,
        "model_state": unwrap(model).state_dict(),
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "scaler_state": scaler.state_dict() if scaler is not None else None,
        "cfg": cfg.dump(),
        "iteration": int(iteration or 0),
    }
    if extra:
        state.update(extra)
    previous = list_checkpoints(output_dir)
    atomic_save(state, path, torch.save)
    for p in previous:
        if p == path:
            continue
        e, it = parse_checkpoint_name(p)
        if it or keep_period <= 0 or e % keep_period != 0:
            PathManager.rm(p)
    logger.info("saved checkpoint %s", path)
    return path


def load_checkpoint(path, model=None, optimizer=None, scaler=None, strict=True):
    """Load a checkpoint of this project's format; returns the checkpoint dict (``epoch`` = completed epochs).

    Raises an error naming the file when it is missing or not a checkpoint, and naming the keys when the model
    state does not match (``strict``).
    """
    if not PathManager.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    with PathManager.open(path, "rb") as f:
        try:
            ckpt = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise RuntimeError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from e
    if not isinstance(ckpt, dict) or "model_state" not in ckpt:
        raise RuntimeError(f"{path} is not a stica_ext checkpoint (no 'model_state')")
    if model is not None:
        result = unwrap(model).load_state_dict(ckpt["model_state"], strict=False)
        problems = []
        if result.missing_keys:
            problems.append(f"missing keys {result.missing_keys[:10]}{' ...' if len(result.missing_keys) > 10 else ''}")
        if result.unexpected_keys:
            problems.append(f"unexpected keys {result.unexpected_keys[:10]}"
                            f"{' ...' if len(result.unexpected_keys) > 10 else ''}")
        if problems:
            msg = f"checkpoint {path} does not match the model: " + "; ".join(problems)
            if strict:
                raise RuntimeError(msg)
            logger.warning(msg)
    if optimizer is not None and ckpt.get("optimizer_state") is not None:
        optimizer.load_state_dict(ckpt["optimizer_state"])
    if scaler is not None and ckpt.get("scaler_state") is not None:
        scaler.load_state_dict(ckpt["scaler_state"])
    return ckpt
