"""Training and evaluation loops, checkpointing, launching."""

from .linear_probe import linear_probe_task, run_linear_probe  # noqa: F401
from .train_ssl import train_ssl  # noqa: F401


def run_task(cfg):
    """What ``tools/run_net.py`` runs in every process: dispatch on ``TASK``, ``TRAIN.ENABLE``, ``TEST.ENABLE``.

    * ``ssl_pretrain``: pretrain (``TRAIN.ENABLE``), then linear-probe the last checkpoint (``TEST.ENABLE``; also
      a random-init network with ``LINEAR.COMPARE_RANDOM_INIT``).
    * ``linear_probe``: probe ``TRAIN.CHECKPOINT_FILE_PATH`` (``TEST.ENABLE`` or ``TRAIN.ENABLE``).
    """
    if cfg.TASK == "ssl_pretrain":
        last = train_ssl(cfg) if cfg.TRAIN.ENABLE else None
        if cfg.TEST.ENABLE:
            from . import checkpoint as cu

            path = last or cu.get_last_checkpoint(cfg.OUTPUT_DIR) or cfg.TRAIN.CHECKPOINT_FILE_PATH
            return linear_probe_task(cfg, path or "")
        return last
    if cfg.TASK == "linear_probe":
        if cfg.TRAIN.ENABLE or cfg.TEST.ENABLE:
            return linear_probe_task(cfg)
        return None
    raise ValueError(f"unknown TASK {cfg.TASK!r}")
