"""Distributed helpers that hide torch.distributed behind plain functions (world size 1 when not initialised).

Process layout (set up by :func:`stica_ext.engine.launch.launch_job`):

* ``get_world_size()`` / ``get_rank()``: all processes of the job, global rank;
* ``get_local_size()`` / ``get_local_rank()``: the processes of this machine and this process's index among them
  (the index of its GPU when training on GPUs).

Collectives work with both backends: NCCL (CUDA tensors; CPU inputs are moved to the current CUDA device and back)
and gloo (CPU tensors; CUDA inputs are moved to the CPU and back).

Synchronised BatchNorm: ``torch.nn.SyncBatchNorm`` only runs on accelerators (torch 2.13 raises "SyncBatchNorm
expected input tensor to be on GPU ..." for CPU tensors), so :class:`CpuSyncBatchNorm` provides the same
computation for CPU processes (gloo) and :func:`convert_sync_batchnorm` picks the right one for the model's
device.
"""

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = [
    "is_dist", "get_world_size", "get_rank", "get_local_rank", "get_local_size", "is_main_process",
    "is_local_main_process", "get_backend", "synchronize", "all_gather_other", "all_gather_all", "all_reduce_mean",
    "all_reduce_sum", "set_local_process", "CpuSyncBatchNorm", "convert_sync_batchnorm",
]

# Local (per-machine) layout of this process, recorded by the launcher after init_process_group.
_LOCAL = {"rank": 0, "size": 1}


def is_dist():
    return dist.is_available() and dist.is_initialized()


def get_world_size():
    return dist.get_world_size() if is_dist() else 1


def get_rank():
    return dist.get_rank() if is_dist() else 0


def set_local_process(local_rank, local_size):
    """Record this process's index on its machine and the number of processes there (called by the launcher)."""
    if not 0 <= int(local_rank) < int(local_size):
        raise ValueError(f"local rank {local_rank} must be in [0, local size {local_size})")
    _LOCAL["rank"], _LOCAL["size"] = int(local_rank), int(local_size)


def get_local_rank():
    """Index of this process among the processes of its machine (0 in a single-process run)."""
    return _LOCAL["rank"] if is_dist() else 0


def get_local_size():
    """Number of processes of this job on this machine (1 in a single-process run)."""
    return _LOCAL["size"] if is_dist() else 1


def is_main_process():
    return get_rank() == 0


def is_local_main_process():
    return get_local_rank() == 0


def get_backend():
    """``"nccl"``, ``"gloo"``, ... of the default process group; ``None`` when not distributed."""
    return dist.get_backend() if is_dist() else None


def synchronize():
    if is_dist() and get_world_size() > 1:
        if get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def _comm_device():
    """The device collectives of the default group work on: the current GPU for NCCL, else the CPU."""
    return torch.device("cuda", torch.cuda.current_device()) if get_backend() == "nccl" else torch.device("cpu")


def _gather_parts(x):
    """``all_gather`` of a detached tensor on the backend's device; returns the parts on ``x``'s device."""
    dev = _comm_device()
    y = x.detach().to(dev).contiguous()
    parts = [torch.empty_like(y) for _ in range(get_world_size())]
    dist.all_gather(parts, y)
    return [p.to(x.device) for p in parts]


@torch.no_grad()
def all_gather_other(x):
    """Rows of ``x`` (``N x C``) from every *other* process, concatenated in rank order and detached.

    Returns a ``(W - 1)·N x C`` tensor on ``x``'s device (``0 x C`` when running in a single process). All
    processes must pass tensors of the same shape and dtype.
    """
    x = x.detach()
    ws = get_world_size()
    if ws == 1:
        return x.new_zeros((0,) + tuple(x.shape[1:]))
    parts = _gather_parts(x)
    rank = get_rank()
    return torch.cat([p for i, p in enumerate(parts) if i != rank], dim=0)


@torch.no_grad()
def all_gather_all(x):
    """Rows of ``x`` from all processes (this one included), in rank order, detached."""
    x = x.detach()
    if get_world_size() == 1:
        return x
    return torch.cat(_gather_parts(x), dim=0)


def all_reduce_mean(values):
    """Average a list of floats / scalar tensors over all processes; returns floats."""
    t = torch.tensor([float(v) for v in values], dtype=torch.float64)
    if get_world_size() > 1:
        t = t.to(_comm_device())
        dist.all_reduce(t)
        t = t / get_world_size()
    return [float(v) for v in t.cpu()]


def all_reduce_sum(values):
    """Sum a list of floats / scalar tensors over all processes; returns floats."""
    t = torch.tensor([float(v) for v in values], dtype=torch.float64)
    if get_world_size() > 1:
        t = t.to(_comm_device())
        dist.all_reduce(t)
    return [float(v) for v in t.cpu()]


# ---------------------------------------------------------------------------------------------------------------
# Synchronised BatchNorm for CPU processes
# ---------------------------------------------------------------------------------------------------------------
def _group_size(group):
    return dist.get_world_size(group) if is_dist() else 1


def _compute_dtype(x):
    """``x`` in the precision the statistics are computed in: float32 for half / bfloat16, else its own dtype."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


class _SyncBatchNormFn(torch.autograd.Function):
    """Batch normalisation with statistics over the union of the batches of all processes of ``group``.

    Forward: every process computes (count, mean, sum of squared deviations) per channel of its batch; one
    ``all_gather`` combines them (Chan's parallel formula, float64) into the global mean and biased variance.
    Backward: with ``x̂ = (x - mean)·invstd`` and ``N`` the global count,
    ``dx = weight·invstd·(dy - Σdy/N - x̂·Σ(dy·x̂)/N)`` where the two sums run over all processes (one
    ``all_reduce``); the weight / bias gradients are the local sums ``Σ(dy·x̂)`` and ``Σdy`` (DDP averages them
    like every other parameter gradient). This is the gradient of the sum of the processes' losses, which is what
    DDP's gradient averaging expects.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps, group):
        c = x.shape[1]
        dims = [0] + list(range(2, x.dim()))
        xf = _compute_dtype(x)
        n_local = xf.numel() // c if c else 0
        if n_local > 0:
            var_l, mean_l = torch.var_mean(xf, dim=dims, correction=0)
        else:  # an empty local batch contributes nothing
            var_l = mean_l = xf.new_zeros(c)
        local = torch.cat([torch.tensor([float(n_local)], dtype=torch.float64, device=x.device),
                           mean_l.double(), var_l.double() * n_local])
        dev = _comm_device()
        parts = [torch.empty_like(local, device=dev) for _ in range(_group_size(group))]
        dist.all_gather(parts, local.to(dev), group=group)
        stats = torch.stack(parts).to(x.device)
        counts, means, m2s = stats[:, :1], stats[:, 1:c + 1], stats[:, c + 1:]
        total = counts.sum()
        if total <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training over all processes, got input "
                             f"size {list(x.shape)} and {int(total)} values per channel in total")
        mean = (counts * means).sum(0) / total
        var = (m2s + counts * (means - mean) ** 2).sum(0) / total
        mean, var = mean.to(xf.dtype), var.to(xf.dtype)
        invstd = torch.rsqrt(var + eps)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (xf - mean.view(shape)) * invstd.view(shape)
        if weight is not None:
            y = y * weight.to(xf.dtype).view(shape)
        if bias is not None:
            y = y + bias.to(xf.dtype).view(shape)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.total = float(total)
        ctx.group = group
        ctx.has_bias = bias is not None
        ctx.mark_non_differentiable(mean, var, total)
        return y.to(x.dtype), mean, var, total

    @staticmethod
    def backward(ctx, dy, _dmean, _dvar, _dtotal):
        x, weight, mean, invstd = ctx.saved_tensors
        c = x.shape[1]
        dims = [0] + list(range(2, x.dim()))
        shape = [1, c] + [1] * (x.dim() - 2)
        dyf = dy.to(mean.dtype)
        xhat = (x.to(mean.dtype) - mean.view(shape)) * invstd.view(shape)
        sum_dy = dyf.sum(dims)
        sum_dy_xhat = (dyf * xhat).sum(dims)
        grad_x = grad_w = grad_b = None
        if weight is not None and ctx.needs_input_grad[1]:
            grad_w = sum_dy_xhat.to(weight.dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = sum_dy.to(weight.dtype if weight is not None else dy.dtype)
        if ctx.needs_input_grad[0]:
            both = torch.cat([sum_dy, sum_dy_xhat]).to(_comm_device())
            dist.all_reduce(both, group=ctx.group)
            both = both.to(x.device)
            g_dy, g_dy_xhat = both[:c] / ctx.total, both[c:] / ctx.total
            scale = invstd if weight is None else invstd * weight.to(invstd.dtype)
            grad_x = (scale.view(shape) * (dyf - g_dy.view(shape) - xhat * g_dy_xhat.view(shape))).to(x.dtype)
        return grad_x, grad_w, grad_b, None, None


class CpuSyncBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics are computed over the batches of all processes (like
    ``torch.nn.SyncBatchNorm``), for CPU processes on the gloo backend (it also runs on any other device).

    Accepts ``N x C x *`` inputs (what BatchNorm1d/2d/3d accept). Parameters and buffers are those of BatchNorm
    (``weight``, ``bias``, ``running_mean``, ``running_var``, ``num_batches_tracked``), so state dicts and
    checkpoints are interchangeable with the unsynchronised model. Running statistics are updated with the global
    mean and the global unbiased variance, identically on every process. In eval mode, or when no process group
    with more than one process exists, it is exactly ``F.batch_norm``.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 process_group=None, device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype)
        self.process_group = process_group

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x):
        self._check_input_dim(x)
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels on axis 1, got input {list(x.shape)}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        use_batch_stats = self.training or not self.track_running_stats
        group = self.process_group if self.process_group is not None else dist.group.WORLD
        if not (use_batch_stats and is_dist() and _group_size(group) > 1):
            return F.batch_norm(x, self.running_mean if not self.training or self.track_running_stats else None,
                                self.running_var if not self.training or self.track_running_stats else None,
                                self.weight, self.bias, use_batch_stats, factor, self.eps)
        y, mean, var, total = _SyncBatchNormFn.apply(x, self.weight, self.bias, self.eps, group)
        if self.training and self.track_running_stats:
            with torch.no_grad():
                unbiased = var * (total / (total - 1))
                self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)
        return y


def _convert_to_cpu_sync(module, process_group):
    out = module
    if isinstance(module, _BatchNorm) and not isinstance(module, CpuSyncBatchNorm):
        out = CpuSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                               module.track_running_stats, process_group)
        if module.affine:
            with torch.no_grad():
                out.weight = module.weight
                out.bias = module.bias
        if module.track_running_stats:
            out.running_mean = module.running_mean
            out.running_var = module.running_var
            out.num_batches_tracked = module.num_batches_tracked
        out.training = module.training
        if hasattr(module, "qconfig"):
            out.qconfig = module.qconfig
    for name, child in module.named_children():
        out.add_module(name, _convert_to_cpu_sync(child, process_group))
    return out


def convert_sync_batchnorm(model, process_group=None, device=None):
    """Replace every BatchNorm of ``model`` by a synchronised one: ``torch.nn.SyncBatchNorm`` when the model lives
    on a GPU (or ``device`` is one), :class:`CpuSyncBatchNorm` on the CPU. Parameters and buffers are reused
    (same tensors, same state_dict keys). Returns the converted model (the root itself may be replaced when it is
    a BatchNorm).
    """
    if device is None:
        tensors = list(model.parameters()) + list(model.buffers())
        device = tensors[0].device if tensors else torch.device("cpu")
    device = torch.device(device)
    if device.type == "cpu":
        return _convert_to_cpu_sync(model, process_group)
    return nn.SyncBatchNorm.convert_sync_batchnorm(model, process_group)
