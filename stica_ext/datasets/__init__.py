"""Datasets, decoding, audio features, transforms and loaders."""

from . import av_dataset  # noqa: F401  (registers Audiovisual, Synthetic_av)
from . import howto100m  # noqa: F401  (registers Howto100m)
from .loader import EpochSampler, build_dataset, build_loader, set_loader_epoch  # noqa: F401
