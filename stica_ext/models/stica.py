"""STiCA meta-architecture: R(2+1)D feature map, space-time feature-map crops, (transformer) pooling, MLP heads.

Module names match the reference STiCA model (spec 1.5, Appendix A.5-A.7): ``video_network.base`` (R(2+1)D, its
un-pooled layer4 map is used), ``audio_network.base`` (audio ResNet), ``video_pooling`` (:mod:`.pooling`:
global average pooling, or ``[0] TokenPool3d, [1] MapToTokens, [2] TransformerPooling``), ``mlp_v``, ``mlp_a``.

Training forward -- what the training loop consumes
----------------------------------------------------
``outputs = model(video_views, audio, generator=g)`` with

* ``video_views``: ``B x 2 x 3 x T x H x W`` (the two spatial views of one clip stacked on axis 1) or a list of two
  ``B x 3 x T x H x W`` tensors;
* ``audio``: one spectrogram batch ``B x 1 x F x Tspec``;
* ``generator``: ``torch.Generator`` / ``random.Random`` (or NumPy generator) that draws the crop offsets; ``None``
  uses torch's global generator. Pass an explicit, seeded generator for reproducible crops: seeded identically on
  every process it gives every process the same crop positions (as the reference, which seeds all ranks alike),
  seeded per rank it gives independent positions; the loss is correct either way.

``outputs`` is a list of two dicts, ``outputs[0]`` for view 1 ("c1") and ``outputs[1]`` for view 2 ("c2"),
each with

=========== =======================================================================================================
key         value
=========== =======================================================================================================
"video"     ``B x E`` global embedding of the view: ``L2(mlp_v(video_pooling(F)))``
"audio"     ``B x E`` audio embedding ``L2(mlp_a(audio_network(audio)))``. Computed **once** per forward and shared
            by both views (the same tensor object) unless ``audio_per_view=True`` (reference behaviour: the audio is
            re-encoded for each view, with its own dropout masks and BatchNorm statistics updates)
"large"     list of ``num_large_crops`` entries: large spatial crop embeddings ``B x E`` or ``None``
"small"     list of ``num_small_crops`` entries: small spatial crop embeddings or ``None``
"tlarge"    list of ``num_large_tcrops`` entries: large temporal crop embeddings or ``None``
"tsmall"    list of ``num_small_tcrops`` entries: small temporal crop embeddings or ``None``
"crop_plan" the :class:`CropPlan` (windows in feature cells) used for this view
=========== =======================================================================================================

``E`` = ``embed_dim``; every embedding is L2-normalised. Only the crops the STiCA loss reads are computed (spec 8
item 9); the others are ``None`` (see :func:`needed_crops`):

* view 1: every large spatial crop when small crops exist (the detached "teachers" of the S-L term), else only
  large crop 1 (L-L term, ``num_large_crops == 2``); likewise for temporal crops; no small crops.
* view 2: large crop 1 only (L-L term) and every small crop (S-L term, needs ``num_large_crops >= 1``); likewise
  for temporal crops.

Both views go through the networks as separate batches (per-view BatchNorm statistics, as in the reference), inside
a single ``forward`` call. Crop embeddings: ``crop -> video_pooling(crop, num_tokens=T') -> mlp_v -> L2`` (spec 5.1
step 4); spatial crops keep every time step, temporal crops keep the full spatial grid; with transformer pooling a
crop's time axis is adaptively average-pooled to the full map's ``T'`` tokens (a shorter crop is stretched: its
cells repeat or are averaged with a neighbour).

Feature-map crops
-----------------
Window sizes are derived from the actual map ``T' x H' x W'`` as fractions (:func:`crop_sizes`):
``cells = clamp(round_half_up(frac * n), 1, n)`` with spatial fractions ``(6/7, 4/7)`` (large, small) per spatial
axis and temporal fractions ``(3/4, 1/2)``. For a ``7 x 7`` map this gives 6x6 / 4x4, for ``T' = 4`` 3 / 2 and
for ``T' = 8`` 6 / 4 cells (the reference windows); other sizes scale (``T' = 12``: 9 / 6). Offsets are drawn
uniformly over every valid position ``0 .. n - size`` (inclusive), each crop independently, in the order: large
spatial crops (row offset, then column offset), small spatial crops, large temporal crops, small temporal crops.

``crop_compat=True`` reproduces the reference windows and positions (spec 5.1 table): spatial 6x6 / 4x4 on a
``7 x 7`` map (required), temporal 3 / 2 when ``T' == 4`` else 6 / 4, offsets drawn from ``0 .. n - size - 1``
(the exclusive bound of the reference: the large spatial crop is always ``[0:6, 0:6]``, the large temporal crop
for ``T' = 4`` always ``[0:3]``, the last offset is never drawn). Maps where the reference would fail are errors.

Probes and finetuning use :meth:`STiCA.video_features` (``B x C`` pooled backbone features with the pretrained
pooling module) and :attr:`STiCA.pooling` (the pooling module itself, ``pool(fmap) -> B x C``).
"""

import math
import random
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import MODEL_REGISTRY
from .gdt import GDT, _is_cfg, _node, build_audio_base, build_video_base
from .heads import build_head
from .pooling import build_video_pooling

__all__ = [
    "STiCA",
    "VideoMapNetwork",
    "AudioNetwork",
    "CropPlan",
    "CROP_KINDS",
    "SPATIAL_CROP_FRACS",
    "TEMPORAL_CROP_FRACS",
    "crop_sizes",
    "valid_offsets",
    "sample_crop_plan",
    "needed_crops",
    "crop_feature_map",
]

CROP_KINDS = ("large", "small", "tlarge", "tsmall")
SPATIAL_CROP_FRACS = (6 / 7, 4 / 7)
TEMPORAL_CROP_FRACS = (0.75, 0.5)
_REFERENCE_GRID = 7  # the reference's windows assume a 7 x 7 spatial map (112-px input)


# -------------------------------------------------------------------------------------------------------------------
# Crop windows
# -------------------------------------------------------------------------------------------------------------------
def _cells(frac, n):
    if not 0 < frac <= 1:
        raise ValueError(f"crop fraction must be in (0, 1], got {frac}")
    return min(n, max(1, int(math.floor(frac * n + 0.5 + 1e-6))))


def crop_sizes(map_size, spatial_fracs=SPATIAL_CROP_FRACS, temporal_fracs=TEMPORAL_CROP_FRACS, compat=False):
    """Window sizes in feature cells for a map of ``map_size = (T', H', W')``.

    Returns ``{"large": (h, w), "small": (h, w), "tlarge": (t,), "tsmall": (t,)}``. With ``compat`` the reference's
    fixed windows: 6x6 / 4x4 spatial, 3 / 2 temporal when ``T' == 4`` else 6 / 4.
    """
    t, h, w = (int(s) for s in map_size)
    if compat:
        tl, ts = (3, 2) if t == 4 else (6, 4)
        return {"large": (6, 6), "small": (4, 4), "tlarge": (tl,), "tsmall": (ts,)}
    (sl, ss), (fl, fs) = spatial_fracs, temporal_fracs
    return {"large": (_cells(sl, h), _cells(sl, w)), "small": (_cells(ss, h), _cells(ss, w)),
            "tlarge": (_cells(fl, t),), "tsmall": (_cells(fs, t),)}


def valid_offsets(n, size, compat=False):
    """Number of offsets a window of ``size`` cells may start at on an axis of ``n`` cells: ``n - size + 1``
    (every valid position), or ``n - size`` with ``compat`` (the reference's exclusive bound)."""
    count = n - size if compat else n - size + 1
    if count < 1:
        what = "the reference windows need" if compat else "a window of"
        raise ValueError(f"{what} {size} cells on an axis of {n} feature cells: no valid position"
                         + (" (STICA.CROP_COMPAT reproduces the reference, which fails here)" if compat else ""))
    return count


def _randrange(rng, n):
    """Uniform integer in ``[0, n)`` from a torch / Python / NumPy generator (``None``: torch's global one)."""
    if rng is None or isinstance(rng, torch.Generator):
        return int(torch.randint(n, (1,), generator=rng).item())
    if isinstance(rng, random.Random):
        return rng.randrange(n)
    if hasattr(rng, "integers"):  # numpy.random.Generator
        return int(rng.integers(n))
    if hasattr(rng, "randint"):  # numpy.random.RandomState (exclusive high)
        return int(rng.randint(0, n))
    raise TypeError(f"crop generator must be a torch.Generator, random.Random or NumPy generator, got {type(rng)}")


@dataclass(frozen=True)
class CropPlan:
    """Crop windows of one view, half-open and in feature cells.

    ``large`` / ``small``: tuples of ``((h0, h1), (w0, w1))``; ``tlarge`` / ``tsmall``: tuples of ``(t0, t1)``.
    ``map_size`` is the ``(T', H', W')`` the plan was drawn for.
    """

    map_size: tuple
    large: tuple = ()
    small: tuple = ()
    tlarge: tuple = ()
    tsmall: tuple = ()

    def window(self, kind, index):
        return getattr(self, kind)[index]


def sample_crop_plan(map_size, num_large=2, num_small=4, num_large_t=2, num_small_t=1, rng=None,
                     spatial_fracs=SPATIAL_CROP_FRACS, temporal_fracs=TEMPORAL_CROP_FRACS, compat=False):
    """Draw the windows of one view for a map of ``map_size = (T', H', W')``.

    Every window's offsets are drawn independently and uniformly over :func:`valid_offsets` from ``rng`` (a
    ``torch.Generator``, ``random.Random`` or NumPy generator; ``None`` = torch's global generator), in the order
    large spatial (row, column), small spatial (row, column), large temporal, small temporal. ``compat``: reference
    windows and offsets (needs a ``7 x 7`` map when spatial crops are requested).
    """
    t, h, w = (int(s) for s in map_size)
    sizes = crop_sizes((t, h, w), spatial_fracs, temporal_fracs, compat)
    if compat and (num_large or num_small) and (h, w) != (_REFERENCE_GRID, _REFERENCE_GRID):
        raise ValueError(f"STICA.CROP_COMPAT reproduces the reference's crop windows, which assume a 7 x 7 feature "
                         f"map (112-px input); this map is {h} x {w}")

    def spatial(kind):
        sh, sw = sizes[kind]
        h0 = _randrange(rng, valid_offsets(h, sh, compat))
        w0 = _randrange(rng, valid_offsets(w, sw, compat))
        return ((h0, h0 + sh), (w0, w0 + sw))

    def temporal(kind):
        (st,) = sizes[kind]
        t0 = _randrange(rng, valid_offsets(t, st, compat))
        return (t0, t0 + st)

    large = tuple(spatial("large") for _ in range(num_large))
    small = tuple(spatial("small") for _ in range(num_small))
    tlarge = tuple(temporal("tlarge") for _ in range(num_large_t))
    tsmall = tuple(temporal("tsmall") for _ in range(num_small_t))
    return CropPlan((t, h, w), large, small, tlarge, tsmall)


def needed_crops(view, num_large=2, num_small=4, num_large_t=2, num_small_t=1):
    """Indices of the crops of view ``view`` (0 = view 1, 1 = view 2) that the STiCA loss reads, per kind.

    Mirrors the loss terms (spec 5.3): L-L compares large crop 1 of both views (``num_large == 2``); S-L uses every
    small crop of view 2 against every large crop of view 1 (``num_large >= 1``); TL-TL / TS-TL likewise in time.
    """
    if view not in (0, 1):
        raise ValueError(f"view must be 0 or 1, got {view}")

    def pick(n_large, n_small):
        pair = (1,) if n_large == 2 else ()
        if view == 0:
            return (tuple(range(n_large)) if n_small > 0 else pair), ()
        return pair, (tuple(range(n_small)) if n_large > 0 else ())

    large, small = pick(num_large, num_small)
    tlarge, tsmall = pick(num_large_t, num_small_t)
    return {"large": large, "small": small, "tlarge": tlarge, "tsmall": tsmall}


def crop_feature_map(fmap, kind, window):
    """Slice ``fmap`` (``B x C x T' x H' x W'``): spatial kinds over every time step, temporal kinds over the full
    spatial grid."""
    if kind in ("large", "small"):
        (h0, h1), (w0, w1) = window
        return fmap[:, :, :, h0:h1, w0:w1]
    if kind in ("tlarge", "tsmall"):
        t0, t1 = window
        return fmap[:, :, t0:t1]
    raise ValueError(f"unknown crop kind {kind!r}; one of {CROP_KINDS}")


# -------------------------------------------------------------------------------------------------------------------
# Model
# -------------------------------------------------------------------------------------------------------------------
class VideoMapNetwork(nn.Module):
    """Holds the video backbone as ``.base``: ``B x 3 x T x H x W`` -> layer4 map ``B x C x T' x H' x W'``."""

    def __init__(self, base):
        super().__init__()
        self.base = base
        self.out_dim = base.out_dim

    def forward(self, x):
        return self.base.forward_features(x)


class AudioNetwork(nn.Module):
    """Holds the audio backbone as ``.base``: ``B x 1 x F x T`` -> pooled features ``B x C``."""

    def __init__(self, base):
        super().__init__()
        self.base = base
        self.out_dim = base.out_dim

    def forward(self, x):
        return self.base(x)


def _l2(z):
    return F.normalize(z, p=2, dim=1, eps=1e-12)


@MODEL_REGISTRY.register()
class STiCA(nn.Module):
    """Audio-visual STiCA model (space-time crops + attention pooling).

    Two construction forms, as :class:`~stica_ext.models.gdt.GDT`: keyword arguments, or a config as the single
    positional argument (``STiCA(cfg)`` == ``STiCA.from_cfg(cfg)``).

    Args:
        video_arch, audio_arch, width, embed_dim, use_mlp, mlp_hidden_dim, mlp_dropout, audio_dead_fc: as for GDT
            (``audio_dead_fc=None``: the reference ResNet-9's frozen, never-executed ``fc`` is kept, so that with
            ``width=64`` the state_dict reproduces spec A.5 / A.6 / A.7).
        num_layers: 0 = global average pooling; > 0 = transformer pooling with that many layers.
        num_heads, pool_dropout, positional_emb, qkv_mha, max_positions: transformer pooling options
            (:class:`~stica_ext.models.pooling.TransformerPooling`; its width is the backbone's ``out_dim``).
        num_large_crops, num_small_crops: spatial crops per view (large at most 2).
        num_large_tcrops, num_small_tcrops: temporal crops per view (large at most 2).
        spatial_crop_fracs, temporal_crop_fracs: ``(large, small)`` window fractions (see module docstring).
        crop_compat: reference crop windows and offsets.
        audio_per_view: re-encode the audio for each view (reference) instead of once per forward.

    Embeddings are always L2-normalised.
    """

    def __init__(self, cfg=None, *, video_arch="r2plus1d_18", audio_arch="resnet9", width=64, embed_dim=256,
                 use_mlp=True, mlp_hidden_dim=512, mlp_dropout=0.3, audio_dead_fc=None,
                 num_layers=0, num_heads=4, pool_dropout=0.0, positional_emb=False, qkv_mha=False, max_positions=64,
                 num_large_crops=2, num_small_crops=4, num_large_tcrops=2, num_small_tcrops=1,
                 spatial_crop_fracs=SPATIAL_CROP_FRACS, temporal_crop_fracs=TEMPORAL_CROP_FRACS, crop_compat=False,
                 audio_per_view=False):
        if cfg is not None:
            if not _is_cfg(cfg):
                raise TypeError(f"STiCA's only positional argument is a config (with a MODEL node), got {type(cfg)}")
            STiCA.__init__(self, **STiCA.cfg_to_kwargs(cfg))
            return
        super().__init__()
        if num_large_crops > 2 or num_large_tcrops > 2:
            raise ValueError(f"at most 2 large spatial / temporal crops, got {num_large_crops} / {num_large_tcrops}")
        if min(num_large_crops, num_small_crops, num_large_tcrops, num_small_tcrops) < 0:
            raise ValueError("crop counts must be >= 0")
        if audio_dead_fc is None:
            audio_dead_fc = audio_arch == "resnet9"
        self.video_network = VideoMapNetwork(build_video_base(video_arch, width))
        self.audio_network = AudioNetwork(build_audio_base(audio_arch, width, dead_fc=audio_dead_fc))
        feat_dim = self.video_network.out_dim
        self.video_pooling = build_video_pooling(feat_dim, num_layers, num_heads, pool_dropout, positional_emb,
                                                 qkv_mha, max_positions=max_positions)
        self.mlp_v = build_head(feat_dim, embed_dim, use_mlp, mlp_hidden_dim, mlp_dropout)
        self.mlp_a = build_head(self.audio_network.out_dim, embed_dim, use_mlp, mlp_hidden_dim, mlp_dropout)
        self.feat_dim, self.embed_dim, self.num_layers = feat_dim, embed_dim, num_layers
        self.num_crops = {"large": int(num_large_crops), "small": int(num_small_crops),
                          "tlarge": int(num_large_tcrops), "tsmall": int(num_small_tcrops)}
        self.spatial_crop_fracs = tuple(float(f) for f in spatial_crop_fracs)
        self.temporal_crop_fracs = tuple(float(f) for f in temporal_crop_fracs)
        for f in self.spatial_crop_fracs + self.temporal_crop_fracs:
            _cells(f, 1)  # validates the range
        self.crop_compat = bool(crop_compat)
        self.audio_per_view = bool(audio_per_view)

    @staticmethod
    def cfg_to_kwargs(cfg):
        """Constructor arguments from a config: the GDT keys (``MODEL.ARCH``, ``AUDIO.ARCH``,
        ``RESNET.WIDTH_PER_GROUP``, ``GDT.EMBED_DIM / USE_MLP / MLP_HIDDEN_DIM`` (scaled by width/64) ``/
        MLP_DROPOUT``; ``GDT.NORM_FEAT`` is ignored: STiCA always normalises) and the ``STICA`` node."""
        kw = GDT.cfg_to_kwargs(cfg)
        kw.pop("norm_feat")
        s = _node(cfg, "STICA")
        kw.update(
            num_layers=int(_node(s, "NUM_LAYERS")),
            num_heads=int(_node(s, "NUM_HEADS")),
            pool_dropout=float(_node(s, "DROPOUT")),
            positional_emb=bool(_node(s, "POSITIONAL_EMB")),
            qkv_mha=bool(_node(s, "QKV_MHA")),
            max_positions=int(_node(s, "MAX_POSITIONS")),
            num_large_crops=int(_node(s, "NUM_LARGE_CROPS")),
            num_small_crops=int(_node(s, "NUM_SMALL_CROPS")),
            num_large_tcrops=int(_node(s, "NUM_LARGE_TCROPS")),
            num_small_tcrops=int(_node(s, "NUM_SMALL_TCROPS")),
            spatial_crop_fracs=tuple(_node(s, "SPATIAL_CROP_FRACS")),
            temporal_crop_fracs=tuple(_node(s, "TEMPORAL_CROP_FRACS")),
            crop_compat=bool(_node(s, "CROP_COMPAT")),
            audio_per_view=bool(_node(s, "AUDIO_PER_VIEW")),
        )
        return kw

    @classmethod
    def from_cfg(cls, cfg):
        """Build from a config (see :meth:`cfg_to_kwargs` for the keys read)."""
        return cls(**cls.cfg_to_kwargs(cfg))

    # --- features ----------------------------------------------------------------------------------------------
    @property
    def pooling(self):
        """The video pooling module: ``pooling(fmap B x C x T' x H' x W') -> B x C`` (reusable by a classifier)."""
        return self.video_pooling

    def video_feature_map(self, video):
        """``B x 3 x T x H x W`` -> layer4 map ``B x C x T' x H' x W'``."""
        return self.video_network(video)

    def video_features(self, video):
        """``B x 3 x T x H x W`` -> pooled features ``B x C`` (pretrained pooling; for probes and finetuning)."""
        return self.video_pooling(self.video_network(video))

    def audio_features(self, audio):
        """``B x 1 x F x T`` -> pooled audio features ``B x C``."""
        return self.audio_network(audio)

    def embed_map(self, fmap, num_tokens=None):
        """Map or crop ``B x C x t x h x w`` -> ``L2(mlp_v(video_pooling(fmap, num_tokens)))``, ``B x E``."""
        return _l2(self.mlp_v(self.video_pooling(fmap, num_tokens)))

    def encode_video(self, video):
        """``B x 3 x T x H x W`` -> global video embedding ``B x E``."""
        return self.embed_map(self.video_network(video))

    def encode_audio(self, audio):
        """``B x 1 x F x T`` -> audio embedding ``B x E``."""
        return _l2(self.mlp_a(self.audio_network(audio)))

    # --- crops -------------------------------------------------------------------------------------------------
    def sample_crop_plan(self, map_size, generator=None):
        """Windows of one view for a map ``(T', H', W')`` with this model's crop settings."""
        c = self.num_crops
        return sample_crop_plan(map_size, c["large"], c["small"], c["tlarge"], c["tsmall"], generator,
                                self.spatial_crop_fracs, self.temporal_crop_fracs, self.crop_compat)

    def forward_view(self, video, view, crop_plan=None, generator=None):
        """One view: ``B x 3 x T x H x W`` -> dict ``video``, ``large``, ``small``, ``tlarge``, ``tsmall``,
        ``crop_plan`` (no ``audio``) with the crops :func:`needed_crops` lists for ``view`` (0 or 1)."""
        fmap = self.video_network(video)
        map_size = tuple(fmap.shape[2:])
        if crop_plan is None:
            crop_plan = self.sample_crop_plan(map_size, generator)
        elif tuple(crop_plan.map_size) != map_size:
            raise ValueError(f"crop plan drawn for a {crop_plan.map_size} map, but the feature map is {map_size}")
        num_tokens = map_size[0]
        out = {"video": self.embed_map(fmap), "crop_plan": crop_plan}
        c = self.num_crops
        needed = needed_crops(view, c["large"], c["small"], c["tlarge"], c["tsmall"])
        for kind in CROP_KINDS:
            windows = getattr(crop_plan, kind)
            if len(windows) != self.num_crops[kind]:
                raise ValueError(f"crop plan has {len(windows)} {kind} windows, the model expects "
                                 f"{self.num_crops[kind]}")
            out[kind] = [self.embed_map(crop_feature_map(fmap, kind, windows[i]), num_tokens) if i in needed[kind]
                         else None for i in range(len(windows))]
        return out

    @staticmethod
    def _split_views(video_views):
        if torch.is_tensor(video_views):
            if video_views.dim() != 6 or video_views.shape[1] != 2:
                raise ValueError(f"video_views must be B x 2 x 3 x T x H x W (two views on axis 1), "
                                 f"got {tuple(video_views.shape)}")
            return [video_views[:, 0], video_views[:, 1]]
        views = list(video_views)
        if len(views) != 2 or any(not torch.is_tensor(v) or v.dim() != 5 for v in views):
            raise ValueError("video_views must be a B x 2 x 3 x T x H x W tensor or a list of two B x 3 x T x H x W "
                             "tensors")
        return views

    def forward(self, video_views, audio, generator=None, crop_plans=None):
        """Training forward (see the module docstring for the output structure).

        Args:
            video_views: ``B x 2 x 3 x T x H x W`` or a list of two ``B x 3 x T x H x W`` tensors.
            audio: ``B x 1 x F x Tspec``.
            generator: draws the crop offsets (``torch.Generator`` / ``random.Random`` / NumPy; ``None`` = torch's
                global generator). Ignored for views whose plan is given.
            crop_plans: optional list of two :class:`CropPlan` (e.g. drawn by the caller) instead of drawing.

        Returns:
            list of two dicts (view 1, view 2) with ``video``, ``audio``, ``large``, ``small``, ``tlarge``,
            ``tsmall`` and ``crop_plan``.
        """
        views = self._split_views(video_views)
        if audio.dim() != 4 or audio.shape[0] != views[0].shape[0]:
            raise ValueError(f"audio must be B x 1 x F x T with the views' batch size {views[0].shape[0]}, "
                             f"got {tuple(audio.shape)}")
        plans = list(crop_plans) if crop_plans is not None else [None, None]
        if len(plans) != 2:
            raise ValueError(f"crop_plans must list one plan per view (2), got {len(plans)}")
        za = None if self.audio_per_view else self.encode_audio(audio)
        outputs = []
        for k, video in enumerate(views):
            out = self.forward_view(video, k, plans[k], generator)
            out["audio"] = self.encode_audio(audio) if self.audio_per_view else za
            outputs.append(out)
        return outputs
