"""Datasets, decoding, audio features, transforms and loaders."""

from . import av_dataset  # noqa: F401  (registers Audiovisual, Synthetic_av)
from . import howto100m  # noqa: F401  (registers Howto100m)
from . import ucf_hmdb  # noqa: F401  (registers Ucf101, Hmdb51, Synthetic_ucf)
from .loader import EpochSampler, build_dataset, build_loader, set_loader_epoch  # noqa: F401
