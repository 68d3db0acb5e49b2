"""Training and evaluation loops, checkpointing, launching."""

import logging

from .linear_probe import linear_probe_task, run_linear_probe  # noqa: F401
from .train_ssl import train_ssl, training_finished  # noqa: F401


def run_task(cfg):
    """What ``tools/run_net.py`` runs in every process: dispatch on ``TASK``, ``TRAIN.ENABLE``, ``TEST.ENABLE``.

    * ``ssl_pretrain``: pretrain (``TRAIN.ENABLE``), then linear-probe the last checkpoint (``TEST.ENABLE``; also
      a random-init network with ``LINEAR.COMPARE_RANDOM_INIT``).
    * ``linear_probe``: probe ``TRAIN.CHECKPOINT_FILE_PATH`` (``TEST.ENABLE`` or ``TRAIN.ENABLE``); with
      ``DATA.FOLDS`` once per fold in ``OUTPUT_DIR/fold<k>`` plus a fold report.
    * ``finetune``: finetune a VideoClassifier per fold (``TRAIN.ENABLE``) and test it (``TEST.ENABLE``); fold report.
    * ``retrieval``: nearest-neighbour retrieval with the pretrained backbone per fold; fold report.
    """
    if cfg.TASK == "ssl_pretrain":
        last = train_ssl(cfg) if cfg.TRAIN.ENABLE else None
        if last and not training_finished(cfg, last):
            # stopped by a preemption signal: the job is about to end; the probe runs after the resume
            logging.getLogger(__name__).warning("training was interrupted; skipping the linear probe")
            return last
        if cfg.TEST.ENABLE:
            from . import checkpoint as cu

            path = last or cu.get_last_checkpoint(cfg.OUTPUT_DIR) or cfg.TRAIN.CHECKPOINT_FILE_PATH
            return linear_probe_task(cfg, path or "")
        return last
    if cfg.TASK == "linear_probe":
        if cfg.TRAIN.ENABLE or cfg.TEST.ENABLE:
            if cfg.DATA.FOLDS:
                from .finetune import linear_probe_folds_task

                return linear_probe_folds_task(cfg)
            return linear_probe_task(cfg)
        return None
    if cfg.TASK == "finetune":
        from .finetune import finetune_task

        return finetune_task(cfg) if cfg.TRAIN.ENABLE or cfg.TEST.ENABLE else None
    if cfg.TASK == "retrieval":
        from .retrieval import retrieval_task

        return retrieval_task(cfg)
    raise ValueError(f"unknown TASK {cfg.TASK!r}")
