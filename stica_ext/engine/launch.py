"""Process launching and per-process setup (device, distributed group, seeds)."""

import logging
import random

import numpy as np
import torch
import torch.distributed as dist

from ..config import world_size as cfg_world_size

logger = logging.getLogger(__name__)


def get_device(cfg):
    """``cuda:<local rank>`` when ``NUM_GPUS > 0``, else CPU; a clear error when CUDA is asked for but absent."""
    if cfg.NUM_GPUS > 0:
        if not torch.cuda.is_available():
            raise RuntimeError(f"NUM_GPUS={cfg.NUM_GPUS} but CUDA is not available; use NUM_GPUS 0 to run on the CPU")
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _run_worker(local_rank, func, cfg, init_method):
    ws = cfg_world_size(cfg)
    rank = cfg.SHARD_ID * max(cfg.NUM_GPUS, 1) + local_rank
    backend = cfg.DIST_BACKEND if cfg.NUM_GPUS > 0 else "gloo"
    if cfg.NUM_GPUS > 0:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, init_method=init_method, world_size=ws, rank=rank)
    try:
        func(cfg)
    finally:
        dist.destroy_process_group()


def launch_job(cfg, init_method, func):
    """Run ``func(cfg)`` in ``NUM_GPUS`` processes per machine (one process when ``NUM_GPUS <= 1`` and a single
    machine)."""
    ws = cfg_world_size(cfg)
    if ws == 1:
        return func(cfg)
    nproc = max(cfg.NUM_GPUS, 1)
    torch.multiprocessing.spawn(_run_worker, nprocs=nproc, args=(func, cfg, init_method), daemon=False)
    return None

