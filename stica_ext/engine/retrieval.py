"""Nearest-neighbour video retrieval with a pretrained backbone (``TASK: retrieval``).

For each fold (``DATA.FOLDS`` / ``DATA.FOLD``, see :func:`stica_ext.engine.finetune.run_folds`): the videos of
``RETRIEVAL.QUERY_SPLIT`` (test) query those of ``RETRIEVAL.GALLERY_SPLIT`` (train). A video's feature is the mean
of the L2-normalised pooled backbone features of its ``RETRIEVAL.NUM_ENSEMBLE_VIEWS x RETRIEVAL.NUM_SPATIAL_CROPS``
deterministic views; queries and gallery videos are compared by cosine similarity (the mean is L2-normalised
again). Recall at k (``RETRIEVAL.KS``, default R@1/5/10/20) is the percentage of queries with at least one video of
their own class among their k nearest gallery videos (ties in similarity are broken by gallery order).

The backbone: ``MODEL.MODEL_NAME: VideoClassifier`` (its backbone + pooling, loaded from
``TRAIN.CHECKPOINT_FILE_PATH`` like finetuning; the head is not used) or a pretraining model (``GDT``, ``STiCA``,
... loaded with :func:`~stica_ext.models.weights.load_weights_from_cfg`, strict on the video backbone), both through
``video_features``. Results: ``OUTPUT_DIR/fold<k>/retrieval.json`` and ``OUTPUT_DIR/retrieval_report.{json,md}``.
"""

import logging
import os

import torch
import torch.nn.functional as F

from ..datasets import build_dataset, build_loader
from ..models.build import build_model
from ..models.classifier import VideoClassifier, load_pretrained_backbone
from ..models.weights import load_weights_from_cfg
from ..utils import distributed as du
from ..utils.logging import log_json_stats, setup_logging
from . import checkpoint as cu
from .finetune import _write_json, collect_clip_outputs, run_folds
from .launch import get_device, seed_everything

logger = logging.getLogger(__name__)

__all__ = ["video_level_features", "retrieval_recall", "retrieval_fold", "retrieval_task"]


def video_level_features(clip_feats, video_idx, num_videos):
    """Mean of the L2-normalised clip features of each video, L2-normalised again.

    Args:
        clip_feats: ``N x D``; video_idx: ``N`` (int64, in ``[0, num_videos)``).

    Returns:
        ``(num_videos x D`` features, ``num_videos`` bool mask of the videos that have at least one clip).
    """
    f = F.normalize(clip_feats.float(), p=2, dim=1)
    out = torch.zeros(num_videos, f.shape[1], dtype=f.dtype)
    count = torch.zeros(num_videos, dtype=f.dtype)
    out.index_add_(0, video_idx, f)
    count.index_add_(0, video_idx, torch.ones_like(video_idx, dtype=f.dtype))
    present = count > 0
    out[present] = out[present] / count[present].unsqueeze(1)
    return F.normalize(out, p=2, dim=1), present


def retrieval_recall(query_feats, query_labels, gallery_feats, gallery_labels, ks=(1, 5, 10, 20)):
    """Recall at k (%) of nearest-neighbour retrieval by cosine similarity.

    A query scores a hit at k when one of its ``k`` most similar gallery items has its label (``k`` is capped at
    the gallery size). Returns ``{"R@k": value}``.
    """
    q = F.normalize(query_feats.float(), p=2, dim=1)
    g = F.normalize(gallery_feats.float(), p=2, dim=1)
    sim = q @ g.t()
    kmax = min(max(ks), g.shape[0])
    # stable descending sort: equal similarities keep gallery order
    top = torch.sort(sim, dim=1, descending=True, stable=True).indices[:, :kmax]
    hit = gallery_labels[top] == query_labels.view(-1, 1)
    return {f"R@{k}": 100.0 * float(hit[:, :min(k, kmax)].any(dim=1).float().mean()) for k in ks}


def _build_backbone(cfg):
    model = build_model(cfg)
    path, ctype = cfg.TRAIN.CHECKPOINT_FILE_PATH, cfg.TRAIN.CHECKPOINT_TYPE
    if not path:
        logger.warning("TRAIN.CHECKPOINT_FILE_PATH is empty: retrieval with a randomly initialised backbone")
    elif isinstance(model, VideoClassifier):
        load_pretrained_backbone(model, path, ctype)
    else:
        load_weights_from_cfg(model, path, ctype)
    if not hasattr(model, "video_features"):
        raise ValueError(f"MODEL.MODEL_NAME {cfg.MODEL.MODEL_NAME!r} has no video_features(); use VideoClassifier or a "
                         "pretraining model")
    return model


def _split_features(cfg, model, dataset_name, split, device):
    rc = cfg.clone()
    rc.defrost()
    rc.TEST.NUM_ENSEMBLE_VIEWS = cfg.RETRIEVAL.NUM_ENSEMBLE_VIEWS
    rc.TEST.NUM_SPATIAL_CROPS = cfg.RETRIEVAL.NUM_SPATIAL_CROPS
    dataset = build_dataset(dataset_name, rc, split, sample_type="classify", train_augment=False)
    loader = build_loader(dataset, rc, max(1, cfg.TEST.BATCH_SIZE // du.get_world_size()), shuffle=False,
                          drop_last=False)
    feats, _, index, ok = collect_clip_outputs(cu.unwrap(model).video_features, loader, device)
    vfeats, present = video_level_features(feats[ok], index[ok] // dataset.clips_per_video, dataset.num_videos)
    labels = torch.as_tensor(dataset.labels, dtype=torch.long)
    if not bool(present.all()):
        logger.warning("%d %s video(s) have no decodable view and are left out of retrieval",
                       int((~present).sum()), split)
    return vfeats[present], labels[present], int((~ok).sum())


@torch.no_grad()
def retrieval_fold(cfg):
    """Retrieval for one fold (``DATA.FOLD``) in ``cfg.OUTPUT_DIR``; returns ``{"retrieval": metrics}`` and writes
    ``OUTPUT_DIR/retrieval.json``."""
    setup_logging(cfg.OUTPUT_DIR)
    seed_everything(cfg.RNG_SEED)
    device = get_device(cfg)
    model = _build_backbone(cfg).to(device).eval()
    r = cfg.RETRIEVAL
    qf, ql, q_skip = _split_features(cfg, model, cfg.TEST.DATASET, r.QUERY_SPLIT, device)
    gf, gl, g_skip = _split_features(cfg, model, cfg.TRAIN.DATASET, r.GALLERY_SPLIT, device)
    metrics = retrieval_recall(qf, ql, gf, gl, tuple(int(k) for k in r.KS))
    metrics.update({"num_queries": int(qf.shape[0]), "num_gallery": int(gf.shape[0]),
                    "skipped_clips": q_skip + g_skip, "views_per_video": r.NUM_ENSEMBLE_VIEWS * r.NUM_SPATIAL_CROPS})
    log_json_stats({"_type": "retrieval", "fold": int(cfg.DATA.FOLD), **metrics}, logger)
    _write_json(os.path.join(cfg.OUTPUT_DIR, "retrieval.json"),
                {"task": "retrieval", "dataset": cfg.TEST.DATASET, "fold": int(cfg.DATA.FOLD),
                 "checkpoint": cfg.TRAIN.CHECKPOINT_FILE_PATH or "random init", "results": metrics})
    return {"retrieval": metrics}


def retrieval_task(cfg):
    """``TASK: retrieval``: :func:`retrieval_fold` for every fold, then the fold report (R@k mean +- std)."""
    metrics = tuple((f"R@{int(k)}", f"R@{int(k)}") for k in cfg.RETRIEVAL.KS)
    return run_folds(cfg, retrieval_fold, "retrieval", metrics=metrics)
