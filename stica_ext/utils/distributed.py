"""Distributed helpers that hide torch.distributed behind plain functions (world size 1 when not initialised)."""

import torch
import torch.distributed as dist


def is_dist():
    return dist.is_available() and dist.is_initialized()


def get_world_size():
    return dist.get_world_size() if is_dist() else 1


def get_rank():
    return dist.get_rank() if is_dist() else 0


def is_main_process():
    return get_rank() == 0


def synchronize():
    if is_dist() and get_world_size() > 1:
        dist.barrier()


@torch.no_grad()
def all_gather_other(x):
    """Rows of ``x`` (``N x C``) from every *other* process, concatenated in rank order and detached.

    Returns a ``(W - 1)·N x C`` tensor (``0 x C`` when running in a single process). All processes must pass
    tensors of the same shape.
    """
    x = x.detach()
    ws = get_world_size()
    if ws == 1:
        return x.new_zeros((0,) + tuple(x.shape[1:]))
    parts = [torch.empty_like(x) for _ in range(ws)]
    dist.all_gather(parts, x.contiguous())
    rank = get_rank()
    return torch.cat([p for i, p in enumerate(parts) if i != rank], dim=0)


@torch.no_grad()
def all_gather_all(x):
    """Rows of ``x`` from all processes (this one included), in rank order, detached."""
    x = x.detach()
    if get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def all_reduce_mean(values):
    """Average a list of floats / scalar tensors over all processes; returns floats."""
    t = torch.tensor([float(v) for v in values], dtype=torch.float64)
    if get_world_size() > 1:
        backend = dist.get_backend()
        if backend == "nccl":
            t = t.cuda()
        dist.all_reduce(t)
        t = t / get_world_size()
    return [float(v) for v in t.cpu()]


def all_reduce_sum(values):
    t = torch.tensor([float(v) for v in values], dtype=torch.float64)
    if get_world_size() > 1:
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.all_reduce(t)
    return [float(v) for v in t.cpu()]
