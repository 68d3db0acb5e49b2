"""Linear probe: a linear classifier on the frozen video backbone of a (pretrained or random) network.

The backbone runs in eval mode (BatchNorm uses its running statistics) under ``torch.no_grad``; only the linear
layer is trained. By default (``LINEAR.CACHE_FEATURES``) features of ``LINEAR.TRAIN_CLIPS_PER_VIDEO`` randomly
augmented clips per training video are extracted once and the classifier is trained on that cache; otherwise the
frozen backbone runs every epoch on freshly augmented clips. Testing uses ``TEST.NUM_ENSEMBLE_VIEWS x
TEST.NUM_SPATIAL_CROPS`` deterministic views per video and reports clip-level and video-level top-1 / top-5 (%) and
the video-level confusion matrix (``video_confusion`` in ``linear_probe.json``).
"""

import logging
import math
import os

import simplejson
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..datasets import build_dataset, build_loader
from ..models.build import build_model
from ..models.weights import load_weights_from_cfg
from ..utils import distributed as du
from ..utils.logging import log_json_stats, setup_logging
from . import checkpoint as cu
from .launch import get_device, seed_everything
from .meters import topk_correct

logger = logging.getLogger(__name__)


def backbone_features(model, video):
    """Pooled video-backbone features ``B x D`` of a model exposing ``video_features``."""
    return cu.unwrap(model).video_features(video)


@torch.no_grad()
def extract_features(model, loader, device):
    """Features, labels and clip indices of every item of a classification loader (all processes' shares
    gathered; padding duplicates removed). Returns ``(feats N x D, labels N, index N)`` on the CPU, sorted by
    clip index."""
    model.eval()
    feats, labels, index = [], [], []
    for frames, label, idx, _, _ in loader:
        feats.append(backbone_features(model, frames[0].to(device, non_blocking=True)).float())
        labels.append(label.to(device))
        index.append(idx.to(device))
    feats, labels, index = torch.cat(feats), torch.cat(labels), torch.cat(index)
    if du.get_world_size() > 1:
        feats, labels, index = du.all_gather_all(feats), du.all_gather_all(labels), du.all_gather_all(index)
    feats, labels, index = feats.cpu(), labels.cpu(), index.cpu()
    order = torch.argsort(index)
    index, feats, labels = index[order], feats[order], labels[order]
    keep = torch.ones_like(index, dtype=torch.bool)
    keep[1:] = index[1:] != index[:-1]
    return feats[keep], labels[keep], index[keep]


def aggregate_views(logits, video_idx, num_videos, method):
    """Per-video scores from clip logits: ``"sum"`` of softmax scores or ``"mean_logits"``."""
    scores = logits.softmax(dim=1) if method == "sum" else logits
    out = torch.zeros(num_videos, logits.shape[1], dtype=logits.dtype)
    count = torch.zeros(num_videos, dtype=logits.dtype)
    out.index_add_(0, video_idx, scores)
    count.index_add_(0, video_idx, torch.ones_like(video_idx, dtype=logits.dtype))
    if method == "mean_logits":
        out = out / count.clamp(min=1).unsqueeze(1)
    return out, count > 0


def classification_metrics(clip_logits, clip_labels, clip_video_idx, num_videos, method, confusion=False):
    """Clip and video top-1 / top-5 accuracies (%) of clip logits; with ``confusion``, also the video-level
    confusion matrix ``video_confusion`` (``C x C`` counts as nested lists: row = true class, column = predicted)."""
    c1, c5 = topk_correct(clip_logits, clip_labels)
    n = clip_logits.shape[0]
    vscores, present = aggregate_views(clip_logits, clip_video_idx, num_videos, method)
    vlabels = torch.full((num_videos,), -1, dtype=torch.long)
    vlabels[clip_video_idx] = clip_labels
    vscores, vlabels = vscores[present], vlabels[present]
    v1, v5 = topk_correct(vscores, vlabels)
    nv = vscores.shape[0]
    out = {
        "clip_top1": 100.0 * c1 / n, "clip_top5": 100.0 * c5 / n,
        "video_top1": 100.0 * v1 / nv, "video_top5": 100.0 * v5 / nv,
        "num_clips": int(n), "num_videos": int(nv),
    }
    if confusion:
        c = clip_logits.shape[1]
        counts = torch.bincount(vlabels * c + vscores.argmax(dim=1), minlength=c * c)
        out["video_confusion"] = counts.reshape(c, c).tolist()
    return out


def _train_linear_on_cache(cfg, feats, labels, num_classes, device):
    """Train ``nn.Linear`` on cached features (SGD, cosine schedule). Returns ``(classifier, mean, std)``."""
    lc = cfg.LINEAR
    if lc.STANDARDIZE:
        mean, std = feats.mean(0), feats.std(0).clamp(min=1e-6)
    else:
        mean, std = torch.zeros(feats.shape[1]), torch.ones(feats.shape[1])
    x = ((feats - mean) / std).to(device)
    y = labels.to(device)
    g = torch.Generator().manual_seed(cfg.RNG_SEED)
    clf = nn.Linear(feats.shape[1], num_classes).to(device)
    opt = torch.optim.SGD(clf.parameters(), lr=lc.BASE_LR, momentum=lc.MOMENTUM, weight_decay=lc.WEIGHT_DECAY)
    n = x.shape[0]
    bs = min(lc.BATCH_SIZE, n)
    steps_per_epoch = math.ceil(n / bs)
    total = lc.EPOCHS * steps_per_epoch
    step = 0
    for _ in range(lc.EPOCHS):
        perm = torch.randperm(n, generator=g).to(device)
        for i in range(0, n, bs):
            for grp in opt.param_groups:
                grp["lr"] = lc.BASE_LR * 0.5 * (1 + math.cos(math.pi * step / total))
            b = perm[i:i + bs]
            loss = F.cross_entropy(clf(x[b]), y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    return clf, mean, std


def _train_linear_online(cfg, model, loader, num_classes, feat_dim, device):
    """Train ``nn.Linear`` on features of the frozen backbone computed every epoch on fresh augmentations."""
    lc = cfg.LINEAR
    clf = nn.Linear(feat_dim, num_classes).to(device)
    bn = nn.BatchNorm1d(feat_dim, affine=False).to(device) if lc.STANDARDIZE else nn.Identity()
    opt = torch.optim.SGD(clf.parameters(), lr=lc.BASE_LR, momentum=lc.MOMENTUM, weight_decay=lc.WEIGHT_DECAY)
    total = lc.EPOCHS * len(loader)
    step = 0
    for epoch in range(lc.EPOCHS):
        loader.sampler.set_epoch(epoch)
        model.eval()
        bn.train()
        for frames, label, _, _, _ in loader:
            with torch.no_grad():
                f = backbone_features(model, frames[0].to(device)).float()
            for grp in opt.param_groups:
                grp["lr"] = lc.BASE_LR * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = F.cross_entropy(clf(bn(f)), label.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    bn.eval()
    return nn.Sequential(bn, clf)


def load_backbone_weights(model, path, checkpoint_type="pytorch"):
    """Load weights into ``model`` (this project's checkpoints, or the released GDT layout with
    ``checkpoint_type="gdt"``): every video-backbone key must be present with its shape; everything else is
    reported."""
    if path:
        load_weights_from_cfg(model, path, checkpoint_type)
    return model


def run_linear_probe(cfg, checkpoint_path="", tag="pretrained", checkpoint_type="pytorch"):
    """Probe the video backbone of ``MODEL.MODEL_NAME`` initialised with seed ``RNG_SEED`` and, when
    ``checkpoint_path`` is given, loaded from it. Returns the metrics dict."""
    device = get_device(cfg)
    seed_everything(cfg.RNG_SEED)
    model = build_model(cfg)
    load_backbone_weights(model, checkpoint_path, checkpoint_type)
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    ws = du.get_world_size()
    lc = cfg.LINEAR
    train_set = build_dataset(cfg.TRAIN.DATASET, cfg, lc.TRAIN_SPLIT, sample_type="classify",
                              clips_per_video=lc.TRAIN_CLIPS_PER_VIDEO if lc.CACHE_FEATURES else 1,
                              train_augment=True, max_videos=lc.NUM_TRAIN_VIDEOS)
    test_set = build_dataset(cfg.TEST.DATASET, cfg, lc.TEST_SPLIT, sample_type="classify", train_augment=False)
    num_classes = cfg.MODEL.NUM_CLASSES
    bad = [lab for lab in set(train_set.labels) | set(test_set.labels) if not 0 <= lab < num_classes]
    if bad:
        raise ValueError(f"labels {sorted(bad)[:5]} are outside [0, MODEL.NUM_CLASSES={num_classes})")
    bs = max(1, cfg.TEST.BATCH_SIZE // ws)
    test_loader = build_loader(test_set, cfg, bs, shuffle=False, drop_last=False)
    if lc.CACHE_FEATURES:
        train_loader = build_loader(train_set, cfg, bs, shuffle=False, drop_last=False)
        feats, labels, _ = extract_features(model, train_loader, device)
        clf, mean, std = _train_linear_on_cache(cfg, feats, labels, num_classes, device)
        head = lambda f: clf(((f.to(mean.device) - mean) / std).to(device))  # noqa: E731 (statistics on the CPU)
    else:
        train_loader = build_loader(train_set, cfg, max(1, lc.BATCH_SIZE // ws), shuffle=True, drop_last=False)
        head = _train_linear_online(cfg, model, train_loader, num_classes, model.feat_dim, device)
    tfeats, tlabels, tindex = extract_features(model, test_loader, device)
    with torch.no_grad():
        logits = head(tfeats.to(device)).float().cpu()
    metrics = classification_metrics(logits, tlabels, tindex // test_set.clips_per_video, test_set.num_videos,
                                     cfg.DATA.ENSEMBLE_METHOD, confusion=True)
    metrics.update({"_type": "linear_probe", "model": tag, "checkpoint": checkpoint_path or "random init"})
    log_json_stats({k: v for k, v in metrics.items() if k != "video_confusion"}, logger)  # the matrix: in the json
    return metrics


def format_probe_table(results):
    """Markdown table of probe results (one row per model)."""
    lines = ["| model | clip top-1 | clip top-5 | video top-1 | video top-5 |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['model']} | {r['clip_top1']:.1f} | {r['clip_top5']:.1f} | {r['video_top1']:.1f} | "
                     f"{r['video_top5']:.1f} |")
    return "\n".join(lines)


def linear_probe_task(cfg, checkpoint_path=None):
    """Probe ``checkpoint_path`` (default ``TRAIN.CHECKPOINT_FILE_PATH``; random init when empty) and, with
    ``LINEAR.COMPARE_RANDOM_INIT``, the same network at random init. Writes ``OUTPUT_DIR/linear_probe.json``."""
    setup_logging(cfg.OUTPUT_DIR)
    ctype = "pytorch"
    if checkpoint_path is None:
        checkpoint_path, ctype = cfg.TRAIN.CHECKPOINT_FILE_PATH, cfg.TRAIN.CHECKPOINT_TYPE
    path = checkpoint_path
    results = []
    if path:
        results.append(run_linear_probe(cfg, path, "pretrained", ctype))
    else:
        logger.warning("no checkpoint given (TRAIN.CHECKPOINT_FILE_PATH): probing a randomly initialised network")
    if cfg.LINEAR.COMPARE_RANDOM_INIT or not path:
        results.append(run_linear_probe(cfg, "", "random init"))
    if du.is_main_process():
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        with open(os.path.join(cfg.OUTPUT_DIR, "linear_probe.json"), "w") as f:
            simplejson.dump(results, f, indent=2)
        logger.info("linear probe on %s (%s split):\n%s", cfg.TEST.DATASET, cfg.LINEAR.TEST_SPLIT,
                    format_probe_table(results))
    return results
