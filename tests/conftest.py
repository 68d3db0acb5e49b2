import pytest
import torch

from stica_ext.config import get_cfg
from stica_ext.datasets.howto_fixture import make_howto_fixture
from stica_ext.datasets.synthetic import build_synthetic_dataset
from stica_ext.engine import checkpoint as cu
from stica_ext.models import GDT


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """A tiny synthetic audio-visual dataset (12 train / 2 val / 6 test videos, 2 s, 48 px, 16 kHz)."""
    root = tmp_path_factory.mktemp("synth")
    return build_synthetic_dataset(str(root), num_train=12, num_val=2, num_test=6, seed=3, size=48, duration=2.0,
                                   fps=30, sample_rate=16000, num_workers=1, progress=False)


@pytest.fixture(scope="module")
def synth_folder(tmp_path_factory):
    """A 30-video synthetic training split (1 s, 32 px, 16 kHz) for the folder-dataset (UCF / HMDB layout) tests."""
    return build_synthetic_dataset(str(tmp_path_factory.mktemp("synth")), num_train=30, num_val=0, num_test=0,
                                   seed=4, size=32, duration=1.0, fps=30, sample_rate=16000, num_workers=1,
                                   progress=False)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A GDT checkpoint in this project's format (width 4)."""
    cfg = get_cfg()
    torch.manual_seed(0)
    return cu.save_checkpoint(str(tmp_path_factory.mktemp("pre")), GDT(width=4, embed_dim=16), None, 2, cfg)


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    """The HowTo100M-layout fixture: 4 videos of 6 s at 30 fps (48 px), 4 captions each."""
    root = tmp_path_factory.mktemp("howto")
    return make_howto_fixture(str(root), num_videos=4, seed=1, size=48, duration=6.0, fps=30, captions_per_video=4)
