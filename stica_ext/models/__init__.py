"""Backbones, heads and meta-architectures. Importing this package registers the models in ``MODEL_REGISTRY``."""

from .audio_resnet import AudioResNet, resnet9, resnet18
from .build import build_model
from .gdt import GDT, AudioBaseNetwork, VideoBaseNetwork
from .heads import MLPHead, build_head
from .r2plus1d import R2Plus1D, midplanes, r2plus1d_18, r2plus1d_34
from .stica import STiCA  # noqa: F401  (registers STiCA)
from .text import TextEncoder, TextVidGDT  # noqa: F401  (registers TextVidGDT)
from .classifier import VideoClassifier  # noqa: F401  (registers VideoClassifier)

__all__ = [
    "AudioResNet",
    "resnet9",
    "resnet18",
    "R2Plus1D",
    "midplanes",
    "r2plus1d_18",
    "r2plus1d_34",
    "MLPHead",
    "build_head",
    "GDT",
    "VideoBaseNetwork",
    "AudioBaseNetwork",
    "build_model",
]
