"""Dataset building and data loaders (PySlowFast rule for names, epoch-aware sharded sampling)."""

import functools
import math

import torch

from ..registry import get_dataset_class
from ..utils import distributed as du


def build_dataset(name, cfg, split, **kwargs):
    """``DATASET_REGISTRY.get(name.capitalize())(cfg, split, **kwargs)``."""
    return get_dataset_class(name)(cfg, split, **kwargs)


class EpochSampler(torch.utils.data.Sampler):
    """Shuffled (or ordered) indices, sharded over processes, yielding ``(index, epoch)`` keys.

    Like ``DistributedSampler`` (pad by wrapping so every process gets the same number of samples; call
    :meth:`set_epoch` before each epoch), but the epoch travels with each key so that datasets can seed their
    augmentation by ``(epoch, index)`` even with persistent workers.
    """

    def __init__(self, size, shuffle=True, seed=0, rank=None, world_size=None):
        self.size = int(size)
        self.shuffle = shuffle
        self.seed = seed
        self.rank = du.get_rank() if rank is None else rank
        self.world_size = du.get_world_size() if world_size is None else world_size
        self.num_samples = math.ceil(self.size / self.world_size)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch, start_sample=0):
        """Select the epoch; ``start_sample`` skips the first samples of this process's share (resuming an
        interrupted epoch at the same place)."""
        self.epoch = int(epoch)
        self.start = int(start_sample)

    def indices(self):
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        total = self.num_samples * self.world_size
        order += order[: total - len(order)] if total > len(order) else []
        while len(order) < total:  # tiny datasets with more processes than samples
            order += order[: total - len(order)]
        return order[self.rank:total:self.world_size][self.start:]

    def __iter__(self):
        return iter([(i, self.epoch) for i in self.indices()])

    def __len__(self):
        return max(self.num_samples - self.start, 0)


def _worker_init(worker_id, tune_malloc=True):
    # One intra-op thread per worker: N workers x M threads would oversubscribe the cores.
    torch.set_num_threads(1)
    if tune_malloc:
        from ..utils.malloc import keep_freed_memory

        keep_freed_memory()


def build_loader(dataset, cfg, batch_size, shuffle, drop_last, num_workers=None, seed=None):
    """DataLoader over ``dataset`` with an :class:`EpochSampler`; ``batch_size`` is per process."""
    sampler = EpochSampler(len(dataset), shuffle=shuffle, seed=cfg.RNG_SEED if seed is None else seed)
    workers = cfg.DATA_LOADER.NUM_WORKERS if num_workers is None else num_workers
    tune = cfg.DATA_LOADER.TUNE_MALLOC
    if tune and workers == 0:  # samples are made in this process
        from ..utils.malloc import keep_freed_memory

        keep_freed_memory()
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=cfg.DATA_LOADER.PIN_MEMORY and torch.cuda.is_available() and cfg.NUM_GPUS > 0,
        drop_last=drop_last,
        worker_init_fn=functools.partial(_worker_init, tune_malloc=tune) if workers > 0 else None,
        persistent_workers=workers > 0,
        # its own generator: creating an iterator must not consume the global RNG (exact resume mid-epoch)
        generator=torch.Generator().manual_seed(cfg.RNG_SEED if seed is None else seed),
        prefetch_factor=2 if workers > 0 else None,
    )


def set_loader_epoch(loader, epoch, start_sample=0):
    if isinstance(loader.sampler, EpochSampler):
        loader.sampler.set_epoch(epoch, start_sample)
    elif hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)
