"""Finetuning on UCF101 / HMDB51 (``TASK: finetune``), multi-fold runs and their report.

Recipe (spec 7.5, the values of ``configs/GDT/UCF101_finetune.yaml``): a :class:`~stica_ext.models.classifier.
VideoClassifier` initialised from ``TRAIN.CHECKPOINT_FILE_PATH`` (``TRAIN.CHECKPOINT_TYPE``; strict on the video
backbone), cross-entropy on clip logits, SGD with two parameter groups -- the new head at ``SOLVER.BASE_LR`` and the
pretrained backbone (+ pooling) at ``SOLVER.BACKBONE_LR``, both with ``SOLVER.WEIGHT_DECAY`` -- and the per-epoch
schedule ``SOLVER.LR_POLICY: gdt_epoch_warmup_steps`` (:func:`finetune_lr_at_epoch`), BatchNorm in training mode.

Every epoch writes a checkpoint (``OUTPUT_DIR/checkpoints``, :mod:`.checkpoint`) holding the evaluation history;
a restarted run resumes from the last one (``TRAIN.AUTO_RESUME``). The test split is evaluated after the epochs of
``FINETUNE.EVAL_EPOCHS`` and always after the last one, with ``TEST.NUM_ENSEMBLE_VIEWS x TEST.NUM_SPATIAL_CROPS``
views per video aggregated by ``DATA.ENSEMBLE_METHOD`` (``"mean_logits"``: the reference's mean of raw logits;
``"sum"``: PySlowFast's sum of softmax scores); clip and video top-1 / top-5 are reported. The reported result of a
fold is the **last epoch**; the best evaluated epoch is added only with ``FINETUNE.REPORT_BEST_EPOCH`` and labelled
as selected on the test split.

Folds: ``DATA.FOLDS`` (e.g. ``[1, 2, 3]``; empty = ``DATA.FOLD``) are run one after the other by
:func:`run_folds`, each in ``OUTPUT_DIR/fold<k>`` with a fresh model that re-loads the pretrained weights, and
``OUTPUT_DIR/<task>_report.{json,md}`` gets the per-fold numbers and their mean +- std. The same runner drives the
linear probe (``TASK: linear_probe`` with ``DATA.FOLDS``) and retrieval (:mod:`.retrieval`).
"""

import logging
import math
import os

import simplejson
import torch
import torch.nn.functional as F

from ..datasets import build_dataset, build_loader, set_loader_epoch
from ..models.build import build_model
from ..models.classifier import VideoClassifier, load_pretrained_backbone
from ..utils import distributed as du
from ..utils.io import PathManager
from ..utils.logging import log_json_stats, setup_logging
from . import checkpoint as cu
from .train_ssl import setup_run
from .linear_probe import classification_metrics, linear_probe_task
from .meters import MeterDict, Timer, mean_std, topk_correct
from .optim import get_lr_at_epoch

logger = logging.getLogger(__name__)

__all__ = [
    "FINETUNE_LR_POLICY",
    "finetune_lr_at_epoch",
    "construct_finetune_optimizer",
    "set_finetune_lr",
    "collect_clip_outputs",
    "evaluate_classifier",
    "finetune_fold",
    "finetune_task",
    "linear_probe_folds_task",
    "run_folds",
    "summarise_folds",
    "format_fold_table",
    "CLASSIFICATION_METRICS",
]

#: The per-epoch finetuning schedule (spec 6.4): see :func:`finetune_lr_at_epoch`.
FINETUNE_LR_POLICY = "gdt_epoch_warmup_steps"

#: Metrics of the fold report for classification results, with their table names.
CLASSIFICATION_METRICS = (("video_top1", "video top-1"), ("video_top5", "video top-5"), ("clip_top1", "clip top-1"),
                          ("clip_top5", "clip top-5"))

LAST = "last epoch"
BEST = "best epoch (selected on test)"


# -------------------------------------------------------------------------------------------------------------------
# Learning rate and optimizer
# -------------------------------------------------------------------------------------------------------------------
def _warmup_multiplier(cfg):
    m = float(cfg.SOLVER.WARMUP_MULTIPLIER)
    return float(du.get_world_size()) if m < 0 else m


def finetune_lr_at_epoch(cfg, epoch, base_lr=None):
    """Learning rate in (fractional) ``epoch`` for a group whose base rate is ``base_lr`` (default
    ``SOLVER.BASE_LR``).

    With ``SOLVER.LR_POLICY: gdt_epoch_warmup_steps`` the rate changes once per epoch (``e = floor(epoch)``,
    0-based): ``base * (1 + (m - 1) * min(e, W) / W)`` with ``m = SOLVER.WARMUP_MULTIPLIER`` (-1 = number of
    processes) and ``W = SOLVER.WARMUP_EPOCHS`` (``base * m`` when ``W = 0``), times ``SOLVER.GAMMA`` for every
    entry ``s`` of ``SOLVER.STEPS`` with ``e > s``. With ``m = 8``, ``W = 2``, ``STEPS [6, 10]``, ``GAMMA 0.05``
    this is the reference finetuning table (head 0.0025: 0.0025, 0.01125, 0.02 (epochs 2-6), 0.001 (7-10), 5e-05
    (11)). Any other policy is :func:`stica_ext.engine.optim.get_lr_at_epoch` scaled to ``base_lr``.
    """
    s = cfg.SOLVER
    base = s.BASE_LR if base_lr is None else float(base_lr)
    if s.LR_POLICY != FINETUNE_LR_POLICY:
        if s.BASE_LR == 0:
            return 0.0
        return get_lr_at_epoch(cfg, epoch) * base / s.BASE_LR
    e = int(math.floor(epoch + 1e-9))
    m, w = _warmup_multiplier(cfg), float(s.WARMUP_EPOCHS)
    lr = base * (1.0 + (m - 1.0) * min(e, w) / w) if w > 0 else base * m
    return lr * s.GAMMA ** sum(1 for step in s.STEPS if e > step)


def construct_finetune_optimizer(model, cfg):
    """Optimizer with a ``head`` group (``SOLVER.BASE_LR``) and a ``backbone`` group (backbone + pooling,
    ``SOLVER.BACKBONE_LR``, -1 = ``BASE_LR``), both with ``SOLVER.WEIGHT_DECAY``; each group records its
    ``base_lr``. ``SOLVER.OPTIMIZING_METHOD`` sgd (momentum, dampening, Nesterov), adam or adamw."""
    m = cu.unwrap(model)
    s = cfg.SOLVER
    backbone_lr = s.BASE_LR if s.BACKBONE_LR < 0 else s.BACKBONE_LR
    groups = []
    for name, modules, lr in (("head", m.head_modules(), s.BASE_LR), ("backbone", m.pretrained_modules(), backbone_lr)):
        params = [p for mod in modules for p in mod.parameters() if p.requires_grad]
        if params:
            groups.append({"params": params, "lr": lr, "base_lr": lr, "name": name, "weight_decay": s.WEIGHT_DECAY})
    if s.OPTIMIZING_METHOD == "sgd":
        return torch.optim.SGD(groups, lr=s.BASE_LR, momentum=s.MOMENTUM, dampening=s.DAMPENING,
                               weight_decay=s.WEIGHT_DECAY, nesterov=s.NESTEROV)
    if s.OPTIMIZING_METHOD in ("adam", "adamw"):
        cls = torch.optim.Adam if s.OPTIMIZING_METHOD == "adam" else torch.optim.AdamW
        return cls(groups, lr=s.BASE_LR, betas=tuple(s.BETAS), weight_decay=s.WEIGHT_DECAY)
    raise ValueError(f"SOLVER.OPTIMIZING_METHOD {s.OPTIMIZING_METHOD!r} is not supported (sgd, adam, adamw)")


def set_finetune_lr(optimizer, cfg, epoch):
    """Set every group's rate for ``epoch``; returns ``{group name: lr}``."""
    out = {}
    for g in optimizer.param_groups:
        g["lr"] = finetune_lr_at_epoch(cfg, epoch, g["base_lr"])
        out[g.get("name", str(len(out)))] = g["lr"]
    return out


# -------------------------------------------------------------------------------------------------------------------
# Evaluation
# -------------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def collect_clip_outputs(fn, loader, device):
    """Run ``fn(clip batch) -> B x D`` over a classification loader (items ``(frames, label, index, time,
    meta)``), gather every process's share and drop the sampler's padding duplicates.

    Returns ``(outputs N x D float, labels N, index N, ok N bool)`` on the CPU sorted by clip index; ``ok`` is False
    for clips the dataset could not decode (``meta["skipped"] > 0`` at test time).
    """
    outs, labels, index, ok = [], [], [], []
    for frames, label, idx, _, meta in loader:
        outs.append(fn(frames[0].to(device, non_blocking=True)).float())
        labels.append(torch.as_tensor(label).to(device))
        index.append(torch.as_tensor(idx).to(device))
        skipped = meta.get("skipped", torch.zeros_like(torch.as_tensor(idx))) if isinstance(meta, dict) else None
        ok.append((torch.as_tensor(skipped) == 0).to(device) if skipped is not None
                  else torch.ones(len(idx), dtype=torch.bool, device=device))
    if not outs:
        raise ValueError("the evaluation loader is empty")
    outs, labels, index, ok = torch.cat(outs), torch.cat(labels), torch.cat(index), torch.cat(ok)
    if du.get_world_size() > 1:
        outs, labels, index = du.all_gather_all(outs), du.all_gather_all(labels), du.all_gather_all(index)
        ok = du.all_gather_all(ok.to(torch.uint8)).bool()
    outs, labels, index, ok = outs.cpu(), labels.cpu(), index.cpu(), ok.cpu()
    order = torch.argsort(index, stable=True)
    outs, labels, index, ok = outs[order], labels[order], index[order], ok[order]
    keep = torch.ones_like(index, dtype=torch.bool)
    keep[1:] = index[1:] != index[:-1]
    return outs[keep], labels[keep], index[keep], ok[keep]


@torch.no_grad()
def evaluate_classifier(cfg, model, loader, dataset, device):
    """Clip and video top-1 / top-5 (%) of ``model`` on a test loader; views of a video are aggregated by
    ``DATA.ENSEMBLE_METHOD``. Clips that could not be decoded are left out and counted (``skipped_clips``)."""
    from .train_ssl import video_to_channels_last

    model.eval()
    layout = video_to_channels_last if cfg.TRAIN.CHANNELS_LAST else (lambda x: x)
    logits, labels, index, ok = collect_clip_outputs(lambda x: model([layout(x)]), loader, device)
    if not bool(ok.any()):
        raise RuntimeError(f"no test clip of {type(dataset).__name__} could be decoded")
    metrics = classification_metrics(logits[ok], labels[ok], index[ok] // dataset.clips_per_video,
                                     dataset.num_videos, cfg.DATA.ENSEMBLE_METHOD)
    metrics["skipped_clips"] = int((~ok).sum())
    metrics["ensemble_method"] = cfg.DATA.ENSEMBLE_METHOD
    return metrics


# -------------------------------------------------------------------------------------------------------------------
# Training
# -------------------------------------------------------------------------------------------------------------------
def _train_epoch(cfg, model, loader, optimizer, epoch, device, scaler=None):
    from .train_ssl import amp_settings, video_to_channels_last

    amp, amp_dtype = amp_settings(cfg, device)
    model.train()  # BatchNorm layers train in batch mode (spec 7.5)
    lrs = set_finetune_lr(optimizer, cfg, epoch)
    meters = MeterDict()
    timer, data_timer = Timer(), Timer()
    n_iters = len(loader)
    skipped = clips = correct = 0
    for it, (frames, labels, _, _, meta) in enumerate(loader):
        data_time = data_timer.seconds()
        x = frames[0].to(device, non_blocking=True)
        if cfg.TRAIN.CHANNELS_LAST:
            x = video_to_channels_last(x)
        y = labels.to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=amp):
            logits = model([x])
        loss = F.cross_entropy(logits.float(), y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch + 1}, iteration {it + 1}")
        optimizer.zero_grad(set_to_none=True)
        scaled = scaler is not None and scaler.is_enabled()
        (scaler.scale(loss) if scaled else loss).backward()
        if scaled:
            scaler.unscale_(optimizer)
        if cfg.SOLVER.CLIP_GRAD_L2NORM:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.SOLVER.CLIP_GRAD_L2NORM)
        if scaled:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        bs = x.shape[0]
        top1 = topk_correct(logits.detach(), y, ks=(1,))[0]
        skipped += int(torch.as_tensor(meta["skipped"]).sum())
        clips += bs
        correct += top1
        (loss_v,) = du.all_reduce_mean([loss.item()])
        meters.update(bs, loss=loss_v, data_time=data_time, iter_time=data_timer.seconds())
        if (it + 1) % cfg.LOG_PERIOD == 0 or it + 1 == n_iters:
            log_json_stats({"_type": "finetune_iter", "epoch": f"{epoch + 1}/{cfg.SOLVER.MAX_EPOCH}",
                            "iter": f"{it + 1}/{n_iters}", "loss": loss_v, "lr": lrs.get("head", 0.0),
                            "data_time": data_time, "iter_time": meters["iter_time"].last}, logger)
        data_timer.reset()
    skipped, clips, correct = du.all_reduce_sum([skipped, clips, correct])
    stats = {"_type": "finetune_epoch", "epoch": f"{epoch + 1}/{cfg.SOLVER.MAX_EPOCH}",
             "loss": meters.averages().get("loss", math.nan), "clip_top1": 100.0 * correct / max(clips, 1),
             "lr": lrs.get("head", 0.0), "lr_backbone": lrs.get("backbone", 0.0), "skipped_videos": int(skipped),
             "epoch_time": timer.seconds()}
    log_json_stats(stats, logger)
    return stats


def _eval_epochs(cfg):
    return set(int(e) for e in cfg.FINETUNE.EVAL_EPOCHS) | {int(cfg.SOLVER.MAX_EPOCH)}


def fold_results(cfg, history):
    """``{"last epoch": metrics}`` of an evaluation history (plus the best epoch when
    ``FINETUNE.REPORT_BEST_EPOCH``)."""
    if not history:
        return {}
    out = {LAST: dict(history[-1])}
    if cfg.FINETUNE.REPORT_BEST_EPOCH:
        best = max(history, key=lambda h: (h["video_top1"], -h["epoch"]))
        out[BEST] = dict(best)
    return out


def _write_json(path, obj):
    if du.is_main_process():
        PathManager.mkdirs(os.path.dirname(path))
        with PathManager.open(path, "w") as f:
            simplejson.dump(obj, f, indent=2)


def finetune_fold(cfg):
    """Finetune and/or test one fold in ``cfg.OUTPUT_DIR`` (``DATA.FOLD``). Returns the fold's results
    ``{"last epoch": metrics, ["best epoch (selected on test)": metrics]}`` and writes them to
    ``OUTPUT_DIR/results.json`` together with the evaluation history."""
    device = setup_run(cfg)
    ws = du.get_world_size()
    model = build_model(cfg)
    if not isinstance(model, VideoClassifier):
        raise ValueError(f"TASK finetune trains a VideoClassifier; MODEL.MODEL_NAME is {cfg.MODEL.MODEL_NAME!r}")
    if cfg.LOG_MODEL_INFO:
        logger.info("model VideoClassifier (%s, %s pooling, %d classes): %.2fM parameters", cfg.MODEL.ARCH,
                    model.pooling_type, model.num_classes, sum(p.numel() for p in model.parameters()) / 1e6)
    test_loader = test_set = None
    if cfg.TEST.ENABLE:
        test_set = build_dataset(cfg.TEST.DATASET, cfg, "test", sample_type="classify", train_augment=False)
        test_loader = build_loader(test_set, cfg, max(1, cfg.TEST.BATCH_SIZE // ws), shuffle=False, drop_last=False)
        _check_labels(test_set, model.num_classes)
    history = []
    final = int(cfg.SOLVER.MAX_EPOCH)
    if cfg.TRAIN.ENABLE:
        from .train_ssl import amp_settings

        optimizer = construct_finetune_optimizer(model, cfg)
        amp, amp_dtype = amp_settings(cfg, device)
        scaler = torch.amp.GradScaler(device.type, enabled=amp and amp_dtype == torch.float16)
        last = cu.get_last_checkpoint(cfg.OUTPUT_DIR) if cfg.TRAIN.AUTO_RESUME else None
        start_epoch = 0
        if last:
            ckpt = cu.load_checkpoint(last, model, optimizer, scaler)
            start_epoch, history = int(ckpt["epoch"]), list(ckpt.get("eval_history") or [])
            logger.info("resumed from %s (epoch %d completed)", last, start_epoch)
        elif cfg.TRAIN.CHECKPOINT_FILE_PATH:
            load_pretrained_backbone(model, cfg.TRAIN.CHECKPOINT_FILE_PATH, cfg.TRAIN.CHECKPOINT_TYPE)
        else:
            logger.warning("TRAIN.CHECKPOINT_FILE_PATH is empty: finetuning from random initialisation")
        from .train_ssl import prepare_model

        model = prepare_model(cfg, model, device)
        train_set = build_dataset(cfg.TRAIN.DATASET, cfg, "train", sample_type="classify", train_augment=True)
        _check_labels(train_set, cu.unwrap(model).num_classes)
        per_proc = cfg.TRAIN.BATCH_SIZE // ws
        train_loader = build_loader(train_set, cfg, per_proc, shuffle=True, drop_last=cfg.TRAIN.DROP_LAST)
        if len(train_loader) == 0:
            raise ValueError(f"the training set ({len(train_set)} clips over {ws} processes) is smaller than one "
                             f"batch of {per_proc}; lower TRAIN.BATCH_SIZE")
        logger.info("fold %d: epochs %d..%d, %d iterations per epoch, batch %d per process x %d processes",
                    cfg.DATA.FOLD, start_epoch + 1, final, len(train_loader), per_proc, ws)
        for epoch in range(start_epoch, final):
            set_loader_epoch(train_loader, epoch)
            _train_epoch(cfg, model, train_loader, optimizer, epoch, device, scaler)
            if test_loader is not None and epoch + 1 in _eval_epochs(cfg):
                history.append(_evaluate_epoch(cfg, model, test_loader, test_set, device, epoch + 1))
            cu.save_checkpoint(cfg.OUTPUT_DIR, model, optimizer, epoch + 1, cfg, scaler=scaler,
                               keep_period=cfg.TRAIN.CHECKPOINT_PERIOD, extra={"eval_history": history})
            du.synchronize()
        if test_loader is not None:
            if start_epoch >= final and history and history[-1]["epoch"] == final:
                # a finished run started again: its test settings (split, views) may have changed since its stored
                # final evaluation, which is therefore made again
                history.pop()
            if not history or history[-1]["epoch"] != final:  # also: completed earlier with TEST.ENABLE off
                history.append(_evaluate_epoch(cfg, model, test_loader, test_set, device, final))
    elif test_loader is not None:
        path = cfg.TEST.CHECKPOINT_FILE_PATH or cu.get_last_checkpoint(cfg.OUTPUT_DIR)
        if not path:
            raise FileNotFoundError(f"nothing to test: TEST.CHECKPOINT_FILE_PATH is empty and {cfg.OUTPUT_DIR} has no "
                                    "checkpoint")
        report = load_pretrained_backbone(model, path, cfg.TEST.CHECKPOINT_TYPE if cfg.TEST.CHECKPOINT_FILE_PATH
                                          else "pytorch")
        model = model.to(device)
        epoch = report.epoch if report is not None and isinstance(report.epoch, int) else final
        history.append(_evaluate_epoch(cfg, model, test_loader, test_set, device, epoch))
    results = fold_results(cfg, history)
    _write_json(os.path.join(cfg.OUTPUT_DIR, "results.json"),
                {"task": "finetune", "dataset": cfg.TEST.DATASET, "fold": int(cfg.DATA.FOLD), "results": results,
                 "eval_history": history})
    return results


def _check_labels(dataset, num_classes):
    bad = sorted({lab for lab in dataset.labels if not 0 <= lab < num_classes})
    if bad:
        raise ValueError(f"labels {bad[:5]} of {type(dataset).__name__} are outside [0, MODEL.NUM_CLASSES="
                         f"{num_classes}); the dataset has {len(getattr(dataset, 'classes', []) or [])} classes")


def _evaluate_epoch(cfg, model, loader, dataset, device, epoch):
    metrics = evaluate_classifier(cfg, model, loader, dataset, device)
    metrics["epoch"] = int(epoch)
    log_json_stats({"_type": "finetune_test", "fold": int(cfg.DATA.FOLD), **metrics}, logger)
    return metrics


# -------------------------------------------------------------------------------------------------------------------
# Folds
# -------------------------------------------------------------------------------------------------------------------
def summarise_folds(per_fold, metrics):
    """``{row: {metric: {"values": [...], "mean", "std"}}}`` over folds (sample standard deviation, n - 1) for the
    rows present in every fold."""
    folds = list(per_fold)
    rows = [r for r in per_fold[folds[0]] if all(r in per_fold[f] for f in folds)] if folds else []
    out = {}
    for row in rows:
        out[row] = {}
        for key, _ in metrics:
            values = [float(per_fold[f][row][key]) for f in folds if key in per_fold[f][row]]
            if len(values) == len(folds):
                mean, std = mean_std(values)
                out[row][key] = {"values": values, "mean": mean, "std": std}
    return out


def format_fold_table(title, per_fold, summary, metrics):
    """Markdown: a title line and a table ``| result | metric | fold 1 | ... | mean ± std |``."""
    folds = list(per_fold)
    head = "| result | metric | " + " | ".join(f"fold {f}" for f in folds) + " | mean ± std |"
    sep = "|---|---|" + "---:|" * (len(folds) + 1)
    lines = [f"## {title}", "", head, sep]
    names = dict(metrics)
    for row, per_metric in summary.items():
        for key, s in per_metric.items():
            cells = " | ".join(f"{v:.2f}" for v in s["values"])
            lines.append(f"| {row} | {names[key]} | {cells} | {s['mean']:.2f} ± {s['std']:.2f} |")
    epochs = {f: per_fold[f][row].get("epoch") for row in summary for f in folds if row == BEST}
    if any(e is not None for e in epochs.values()):
        lines += ["", "Best epochs (selected on the test split): "
                  + ", ".join(f"fold {f}: {e}" for f, e in epochs.items())]
    lines += ["", "mean ± std: over folds (sample standard deviation)."]
    return "\n".join(lines) + "\n"


def run_folds(cfg, fold_fn, task, metrics=CLASSIFICATION_METRICS):
    """Run ``fold_fn(fold_cfg) -> {row: {metric: value}}`` for every fold of ``DATA.FOLDS`` (``[]`` =
    ``[DATA.FOLD]``), each with ``DATA.FOLD = k`` and ``OUTPUT_DIR = <OUTPUT_DIR>/fold<k>``; write
    ``OUTPUT_DIR/<task>_report.json`` (per fold, mean, std) and ``<task>_report.md``. Returns the report dict."""
    folds = [int(f) for f in cfg.DATA.FOLDS] or [int(cfg.DATA.FOLD)]
    base = cfg.OUTPUT_DIR
    per_fold, dirs = {}, {}
    for fold in folds:
        c = cfg.clone()
        c.defrost()
        c.DATA.FOLD = fold
        c.OUTPUT_DIR = os.path.join(base, f"fold{fold}")
        logger.info("%s: fold %d of %s -> %s", task, fold, folds, c.OUTPUT_DIR)
        per_fold[fold] = fold_fn(c)
        dirs[fold] = c.OUTPUT_DIR
    summary = summarise_folds(per_fold, metrics)
    dataset = cfg.TEST.DATASET
    report = {"task": task, "dataset": dataset, "folds": folds, "output_dirs": {str(f): d for f, d in dirs.items()},
              "per_fold": {str(f): r for f, r in per_fold.items()}, "summary": summary}
    setup_logging(base)
    title = f"{task} on {dataset}, fold{'s' if len(folds) > 1 else ''} {', '.join(map(str, folds))}"
    table = format_fold_table(title, per_fold, summary, metrics)
    if du.is_main_process():
        _write_json(os.path.join(base, f"{task}_report.json"), report)
        with PathManager.open(os.path.join(base, f"{task}_report.md"), "w") as f:
            f.write(table)
        logger.info("%s report (%s):\n%s", task, os.path.join(base, f"{task}_report.md"), table)
    return report


def finetune_task(cfg):
    """``TASK: finetune``: :func:`finetune_fold` for every fold, then the fold report."""
    return run_folds(cfg, finetune_fold, "finetune")


def linear_probe_folds_task(cfg):
    """``TASK: linear_probe`` with ``DATA.FOLDS``: :func:`stica_ext.engine.linear_probe.linear_probe_task` per fold
    (rows: ``pretrained`` and, with ``LINEAR.COMPARE_RANDOM_INIT``, ``random init``), then the fold report."""
    return run_folds(cfg, lambda c: {r["model"]: r for r in linear_probe_task(c)}, "linear_probe")
