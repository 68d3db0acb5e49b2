"""Downstream video classifier: pretrained R(2+1)D backbone -> pooling -> (BN / L2 / dropout) -> linear head.

``VideoClassifier`` follows PySlowFast's model contract: ``model([video])`` with ``video`` ``B x 3 x T x H x W``
returns logits ``B x num_classes`` (raw logits in training and evaluation; the evaluation aggregates them per video,
see :func:`stica_ext.engine.linear_probe.aggregate_views`). It is registered in ``MODEL_REGISTRY`` as
``VideoClassifier`` (``MODEL.MODEL_NAME: VideoClassifier``).

Modules (state_dict prefixes):

* ``backbone``: the R(2+1)D network (``MODEL.ARCH``, ``RESNET.WIDTH_PER_GROUP``); its un-pooled layer4 map
  ``B x C x T' x H' x W'`` is pooled by
* ``pooling``: :class:`~stica_ext.models.pooling.GlobalAvgPool` (``FINETUNE.POOLING: gap``, GDT) or the STiCA video
  pooling (``FINETUNE.POOLING: stica``: global average pooling for ``STICA.NUM_LAYERS 0``, else the temporal
  transformer described by the ``STICA`` keys) -> ``B x C``;
* L2-normalisation (``FINETUNE.L2_NORM``), ``dropout`` (``MODEL.DROPOUT_RATE``), ``bn`` (``FINETUNE.USE_BN``,
  ``BatchNorm1d(C)``), in this order -- all off in the reference recipe;
* ``classifier``: ``Linear(C, num_classes)``, orthogonal weight (gain 1), zero bias.

Pretrained weights (:func:`load_pretrained_backbone`): the video backbone of a GDT / STiCA / video-text checkpoint
(``video_network.base.*`` -> ``backbone.*``) and, for STiCA pooling, ``video_pooling.*`` -> ``pooling.*``, both loaded
strictly; audio / text networks and projection heads are dropped (and listed in the load report); the head keeps its
initialisation. A checkpoint of this classifier itself (``backbone.*`` keys) is loaded as it is.
"""

import logging

import torch.nn as nn
import torch.nn.functional as F

from ..registry import MODEL_REGISTRY
from .gdt import _is_cfg, _node, build_video_base
from .pooling import GlobalAvgPool, build_video_pooling
from .weights import extract_state_dict, load_weights_from_cfg, read_checkpoint_file

logger = logging.getLogger(__name__)

__all__ = ["VideoClassifier", "pretrained_prefix_map", "load_pretrained_backbone"]


@MODEL_REGISTRY.register()
class VideoClassifier(nn.Module):
    """Video backbone + pooling + linear classifier.

    Construction: keyword arguments, or a config as the single positional argument (``VideoClassifier(cfg)`` ==
    ``VideoClassifier.from_cfg(cfg)``, what PySlowFast's builder calls).

    Args:
        num_classes: classes of the linear head (101 for UCF101, 51 for HMDB51).
        video_arch: ``"r2plus1d_18"`` or ``"r2plus1d_34"``.
        width: backbone width (64 = published; features are ``8 * width``-d).
        pooling: ``"gap"`` or ``"stica"``.
        num_layers, num_heads, pool_dropout, positional_emb, qkv_mha, max_positions: STiCA pooling (``"stica"``
            only; ``num_layers=0`` is global average pooling).
        use_bn: BatchNorm1d before the head.
        l2_norm: L2-normalise the pooled features.
        dropout: dropout probability before the head.
    """

    def __init__(self, cfg=None, *, num_classes=101, video_arch="r2plus1d_18", width=64, pooling="gap",
                 num_layers=0, num_heads=4, pool_dropout=0.0, positional_emb=False, qkv_mha=False, max_positions=64,
                 use_bn=False, l2_norm=False, dropout=0.0):
        if cfg is not None:
            if not _is_cfg(cfg):
                raise TypeError(f"VideoClassifier's only positional argument is a config, got {type(cfg)}")
            VideoClassifier.__init__(self, **VideoClassifier.cfg_to_kwargs(cfg))
            return
        super().__init__()
        if pooling not in ("gap", "stica"):
            raise ValueError(f"pooling must be 'gap' or 'stica', got {pooling!r}")
        self.backbone = build_video_base(video_arch, width)
        self.feat_dim = self.backbone.out_dim
        if pooling == "gap":
            self.pooling = GlobalAvgPool()
        else:
            self.pooling = build_video_pooling(self.feat_dim, num_layers, num_heads, pool_dropout, positional_emb,
                                               qkv_mha, max_positions=max_positions)
        self.pooling_type = pooling
        self.bn = nn.BatchNorm1d(self.feat_dim) if use_bn else None
        self.l2_norm = bool(l2_norm)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        self.classifier = nn.Linear(self.feat_dim, num_classes)
        nn.init.orthogonal_(self.classifier.weight, gain=1.0)
        nn.init.zeros_(self.classifier.bias)
        self.num_classes = num_classes

    @staticmethod
    def cfg_to_kwargs(cfg):
        """Constructor arguments from ``MODEL.NUM_CLASSES / ARCH / DROPOUT_RATE``, ``RESNET.WIDTH_PER_GROUP``,
        ``FINETUNE.POOLING / USE_BN / L2_NORM`` and the ``STICA`` pooling keys."""
        model, ft, s = _node(cfg, "MODEL"), _node(cfg, "FINETUNE"), _node(cfg, "STICA")
        return dict(
            num_classes=int(_node(model, "NUM_CLASSES")),
            video_arch=_node(model, "ARCH"),
            width=int(_node(_node(cfg, "RESNET"), "WIDTH_PER_GROUP")),
            pooling=_node(ft, "POOLING"),
            num_layers=int(_node(s, "NUM_LAYERS")),
            num_heads=int(_node(s, "NUM_HEADS")),
            pool_dropout=float(_node(s, "DROPOUT")),
            positional_emb=bool(_node(s, "POSITIONAL_EMB")),
            qkv_mha=bool(_node(s, "QKV_MHA")),
            max_positions=int(_node(s, "MAX_POSITIONS")),
            use_bn=bool(_node(ft, "USE_BN")),
            l2_norm=bool(_node(ft, "L2_NORM")),
            dropout=float(_node(model, "DROPOUT_RATE")),
        )

    @classmethod
    def from_cfg(cls, cfg):
        return cls(**cls.cfg_to_kwargs(cfg))

    # --- parameter groups --------------------------------------------------------------------------------------
    def pretrained_modules(self):
        """Modules initialised from the pretrained checkpoint (backbone, pooling): the backbone LR group."""
        return [self.backbone, self.pooling]

    def head_modules(self):
        """Newly initialised modules (BN, classifier): the head LR group."""
        return [m for m in (self.bn, self.classifier) if m is not None]

    # --- forward -----------------------------------------------------------------------------------------------
    def forward_features(self, video):
        """``B x 3 x T x H x W`` -> pooled features ``B x feat_dim`` (before BN / L2 / dropout)."""
        return self.pooling(self.backbone.forward_features(video))

    def video_features(self, video):
        """Alias of :meth:`forward_features` (what probes and retrieval call)."""
        return self.forward_features(video)

    def forward_head(self, feats):
        """Pooled features ``B x feat_dim`` -> (L2-norm, dropout, BN) -> logits ``B x num_classes``."""
        if self.l2_norm:
            feats = F.normalize(feats, p=2, dim=1)
        if self.dropout is not None:
            feats = self.dropout(feats)
        if self.bn is not None:
            feats = self.bn(feats)
        return self.classifier(feats)

    def forward(self, x):
        """``x``: a list with one pathway ``[B x 3 x T x H x W]`` (PySlowFast) or the tensor itself -> raw logits
        ``B x num_classes`` in training and evaluation (no softmax: PySlowFast heads apply one at test time; here
        the evaluation aggregates views by ``DATA.ENSEMBLE_METHOD``)."""
        if isinstance(x, (list, tuple)):
            if len(x) != 1:
                raise ValueError(f"VideoClassifier takes one pathway, got {len(x)}")
            x = x[0]
        return self.forward_head(self.forward_features(x))


# Checkpoint parts a classifier never uses: audio / text networks and projection heads of pretraining models.
_DROP = ("audio_network.", "text_network.", "mlp_v.", "mlp_a.", "mlp_t.")


def pretrained_prefix_map(model):
    """``prefix_map`` from a pretraining checkpoint's names (spec Appendix A) to ``model``'s, and the strict
    prefixes (checkpoint namespace): the video backbone always, ``video_pooling.`` when the classifier's pooling
    has parameters (STiCA transformer); otherwise ``video_pooling.*`` is dropped."""
    pmap = {"video_network.base.": "backbone."}
    strict = ["video_network.base."]
    if model.pooling_type == "stica" and any(True for _ in model.pooling.parameters()):
        pmap["video_pooling."] = "pooling."
        strict.append("video_pooling.")
    else:
        pmap["video_pooling."] = None
    pmap.update({p: None for p in _DROP})
    return pmap, tuple(strict)


def load_pretrained_backbone(model, path, checkpoint_type="pytorch"):
    """Load pretrained weights from ``path`` into a :class:`VideoClassifier` and return the load report.

    * a pretraining checkpoint (GDT, STiCA, video-text; this project's ``"pytorch"`` layout or the released /
      reference ``"gdt"`` layout): the video backbone (and STiCA transformer pooling) strictly, see
      :func:`pretrained_prefix_map`; when the checkpoint has a transformer pooling the classifier does not use, a
      warning says so;
    * a checkpoint of a ``VideoClassifier`` (``backbone.*`` keys): everything strictly.
    """
    if not path:
        return None
    target = model.module if hasattr(model, "module") else model
    ckpt = read_checkpoint_file(path, allow_pickled_reference=checkpoint_type != "pytorch")
    try:
        state = extract_state_dict(ckpt, checkpoint_type)
    except ValueError as e:
        raise ValueError(f"checkpoint {path}: {e}") from None
    if any(k.startswith("backbone.") for k in state):
        return load_weights_from_cfg(target, ckpt, checkpoint_type, strict_prefixes=("",), source=path)
    head = tuple(f"{name}." for name in ("classifier", "bn") if getattr(target, name, None) is not None)
    pmap, strict = pretrained_prefix_map(target)
    if "video_pooling." not in strict and any(k.startswith("video_pooling.") for k in state):
        logger.warning("checkpoint %s has a pretrained video pooling (video_pooling.*) but the classifier uses %s "
                       "pooling; set FINETUNE.POOLING stica and the STICA pooling keys to use it", path,
                       "global average" if target.pooling_type == "gap" else "parameter-free")
    report = load_weights_from_cfg(target, ckpt, checkpoint_type, strict_prefixes=strict, prefix_map=pmap,
                                   source=path, log_report=False)
    # the new head is expected to be missing; anything else unmatched deserves a warning
    expected = not report.unexpected and not report.mismatched and all(k.startswith(head) for k in report.missing)
    (logger.info if expected else logger.warning)("%s%s", report,
                                                  "\n  (the head is new: initialised, not loaded)" if expected else "")
    return report
