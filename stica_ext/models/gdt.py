"""GDT audio-visual meta-architecture: video and audio backbones, projection heads, L2-normalised embeddings.

Module names match the released GDT checkpoints (spec 1.5, Appendix A): ``video_network.base`` (R(2+1)D),
``audio_network.base`` (audio ResNet), ``mlp_v`` and ``mlp_a`` (heads).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import MODEL_REGISTRY
from .audio_resnet import resnet9, resnet18
from .heads import build_head
from .r2plus1d import r2plus1d_18, r2plus1d_34

__all__ = ["GDT", "VideoBaseNetwork", "AudioBaseNetwork", "build_video_base", "build_audio_base"]

VIDEO_ARCHS = {"r2plus1d_18": r2plus1d_18, "r2plus1d_34": r2plus1d_34}
AUDIO_ARCHS = ("resnet9", "resnet18")


def build_video_base(arch, width=64):
    """R(2+1)D backbone by name (``"r2plus1d_18"`` or ``"r2plus1d_34"``)."""
    if arch not in VIDEO_ARCHS:
        raise ValueError(f"unknown video arch {arch!r}; choose one of {sorted(VIDEO_ARCHS)}")
    return VIDEO_ARCHS[arch](width=width)


def build_audio_base(arch, width=64, dead_fc=False):
    """Audio ResNet by name (``"resnet9"`` or ``"resnet18"``); ``dead_fc`` only exists for ResNet-9."""
    if arch == "resnet9":
        return resnet9(width=width, with_dead_fc=dead_fc)
    if arch == "resnet18":
        if dead_fc:
            raise ValueError("the dead fc exists only in the reference ResNet-9 (audio_dead_fc=True needs resnet9)")
        return resnet18(width=width)
    raise ValueError(f"unknown audio arch {arch!r}; choose one of {list(AUDIO_ARCHS)}")


class VideoBaseNetwork(nn.Module):
    """Holds the video backbone as ``.base``: ``B x 3 x T x H x W`` -> pooled features ``B x base.out_dim``."""

    def __init__(self, base):
        super().__init__()
        self.base = base
        self.out_dim = base.out_dim

    def forward(self, x):
        return self.base(x)


class AudioBaseNetwork(nn.Module):
    """Holds the audio backbone as ``.base``: ``B x 1 x F x T`` -> pooled features ``B x base.out_dim``."""

    def __init__(self, base):
        super().__init__()
        self.base = base
        self.out_dim = base.out_dim

    def forward(self, x):
        return self.base(x)


def _is_cfg(obj):
    """A config tree (fvcore CfgNode or a dict-like with a ``MODEL`` node) rather than an explicit argument."""
    return hasattr(obj, "MODEL") or (isinstance(obj, dict) and "MODEL" in obj)


def _node(cfg, name):
    return cfg[name] if isinstance(cfg, dict) else getattr(cfg, name)


@MODEL_REGISTRY.register()
class GDT(nn.Module):
    """Audio-visual GDT model: ``(video, audio) -> (zv, za)``.

    Two construction forms:

    * explicit keyword arguments (the normal form), e.g. ``GDT(video_arch="r2plus1d_18", width=16)``;
    * a config as the single positional argument, ``GDT(cfg)`` -- equivalent to ``GDT.from_cfg(cfg)``. This is
      what PySlowFast's builder does (``MODEL_REGISTRY.get(name)(cfg)``).

    Args:
        video_arch: ``"r2plus1d_18"`` or ``"r2plus1d_34"``.
        audio_arch: ``"resnet9"`` or ``"resnet18"``.
        width: backbone width (64 = published; both backbones output ``8 * width`` features).
        embed_dim: embedding size after each head (256).
        use_mlp: MLP heads (``MLPHead``) if True, else plain ``nn.Linear`` heads.
        mlp_hidden_dim: hidden size of the MLP heads (512 in the published model).
        mlp_dropout: dropout of the MLP heads (0.3).
        norm_feat: L2-normalise the embeddings (``F.normalize``, eps 1e-12).
        audio_dead_fc: keep the reference ResNet-9's never-executed ``audio_network.base.fc`` (1000 x 512) so that
            ``state_dict()`` reproduces the reference key set (spec A.1, 312 entries). ``None`` (default) = on for
            ResNet-9, off for ResNet-18. Its parameters are frozen (``requires_grad=False``), so optimisers and DDP
            ignore them; checkpoint loading treats them as optional (released files apparently lack them).

    With default arguments (``width=64``, ``use_mlp=True``, ResNet-9) the state_dict has exactly the 312 entries of
    spec Appendix A.1 (300 of A.2 with ``use_mlp=False``; 550 of A.8 for ``r2plus1d_34`` + ``resnet18``).
    """

    def __init__(self, cfg=None, *, video_arch="r2plus1d_18", audio_arch="resnet9", width=64, embed_dim=256,
                 use_mlp=True, mlp_hidden_dim=512, mlp_dropout=0.3, norm_feat=True, audio_dead_fc=None):
        super().__init__()
        if cfg is not None:
            if not _is_cfg(cfg):
                raise TypeError(f"GDT's only positional argument is a config (with a MODEL node), got {type(cfg)}")
            kwargs = self.cfg_to_kwargs(cfg)
            video_arch, audio_arch, width = kwargs["video_arch"], kwargs["audio_arch"], kwargs["width"]
            embed_dim, use_mlp, mlp_hidden_dim = kwargs["embed_dim"], kwargs["use_mlp"], kwargs["mlp_hidden_dim"]
            mlp_dropout, norm_feat, audio_dead_fc = kwargs["mlp_dropout"], kwargs["norm_feat"], kwargs["audio_dead_fc"]
        if audio_dead_fc is None:
            audio_dead_fc = audio_arch == "resnet9"
        self.video_network = VideoBaseNetwork(build_video_base(video_arch, width))
        self.audio_network = AudioBaseNetwork(build_audio_base(audio_arch, width, dead_fc=audio_dead_fc))
        self.mlp_v = build_head(self.video_network.out_dim, embed_dim, use_mlp, mlp_hidden_dim, mlp_dropout)
        self.mlp_a = build_head(self.audio_network.out_dim, embed_dim, use_mlp, mlp_hidden_dim, mlp_dropout)
        self.norm_feat = norm_feat
        self.embed_dim = embed_dim
        self.feat_dim = self.video_network.out_dim

    @staticmethod
    def cfg_to_kwargs(cfg):
        """Constructor arguments from a config.

        Reads ``MODEL.ARCH``, ``AUDIO.ARCH``, ``RESNET.WIDTH_PER_GROUP``, ``GDT.EMBED_DIM``, ``GDT.USE_MLP``,
        ``GDT.MLP_HIDDEN_DIM``, ``GDT.MLP_DROPOUT``, ``GDT.NORM_FEAT``. ``GDT.MLP_HIDDEN_DIM`` is scaled by
        ``WIDTH_PER_GROUP / 64`` like the backbones (512 -> 128 at width 16), so narrow networks get narrow heads;
        ``GDT.EMBED_DIM`` is not scaled. The dead audio fc follows the default (present for ResNet-9).
        """
        model, audio, resnet, gdt = (_node(cfg, k) for k in ("MODEL", "AUDIO", "RESNET", "GDT"))
        width = int(_node(resnet, "WIDTH_PER_GROUP"))
        hidden = max(1, int(round(int(_node(gdt, "MLP_HIDDEN_DIM")) * width / 64)))
        return dict(
            video_arch=_node(model, "ARCH"),
            audio_arch=_node(audio, "ARCH"),
            width=width,
            embed_dim=int(_node(gdt, "EMBED_DIM")),
            use_mlp=bool(_node(gdt, "USE_MLP")),
            mlp_hidden_dim=hidden,
            mlp_dropout=float(_node(gdt, "MLP_DROPOUT")),
            norm_feat=bool(_node(gdt, "NORM_FEAT")),
            audio_dead_fc=None,
        )

    @classmethod
    def from_cfg(cls, cfg):
        """Build from a config (see :meth:`cfg_to_kwargs` for the keys read)."""
        return cls(**cls.cfg_to_kwargs(cfg))

    # --- backbones -------------------------------------------------------------------------------------------
    def video_features(self, video):
        """``B x 3 x T x H x W`` -> pooled backbone features ``B x 8*width`` (what a linear probe uses)."""
        return self.video_network(video)

    def audio_features(self, audio):
        """``B x 1 x F x T`` -> pooled backbone features ``B x 8*width``."""
        return self.audio_network(audio)

    def forward_features(self, video, audio):
        """Pooled backbone features ``(fv, fa)``, each ``B x 8*width``."""
        return self.video_features(video), self.audio_features(audio)

    # --- heads -----------------------------------------------------------------------------------------------
    def _normalise(self, z):
        return F.normalize(z, p=2, dim=1, eps=1e-12) if self.norm_feat else z

    def forward_head(self, fv, fa):
        """Backbone features ``B x 8*width`` each -> embeddings ``(zv, za)``, ``B x embed_dim`` each."""
        return self._normalise(self.mlp_v(fv)), self._normalise(self.mlp_a(fa))

    def encode_video(self, video):
        """``B x 3 x T x H x W`` -> video embedding ``B x embed_dim`` (unit norm when ``norm_feat``)."""
        return self._normalise(self.mlp_v(self.video_features(video)))

    def encode_audio(self, audio):
        """``B x 1 x F x T`` -> audio embedding ``B x embed_dim`` (unit norm when ``norm_feat``)."""
        return self._normalise(self.mlp_a(self.audio_features(audio)))

    def forward(self, video, audio):
        """Embeddings of one view or of several views.

        * ``video: B x 3 x T x H x W``, ``audio: B x 1 x F x T`` -> ``(zv, za)``, each ``B x embed_dim``;
        * ``video: B x V x 3 x T x H x W``, ``audio: B x V x 1 x F x T`` (V views stacked on axis 1) ->
          ``(zv, za)``, each ``B x V x embed_dim``. Every view pair goes through the networks as its own batch, so
          BatchNorm statistics are per view pair (as in the reference), all inside one ``forward`` call (one
          forward per backward for DDP).
        """
        if video.dim() == 6:
            if audio.dim() != 5 or audio.shape[:2] != video.shape[:2]:
                raise ValueError(f"multi-view video {tuple(video.shape)} needs audio B x V x 1 x F x T with the same "
                                 f"B and V, got {tuple(audio.shape)}")
            pairs = [self.forward(video[:, i], audio[:, i]) for i in range(video.shape[1])]
            return torch.stack([p[0] for p in pairs], 1), torch.stack([p[1] for p in pairs], 1)
        return self.forward_head(*self.forward_features(video, audio))
