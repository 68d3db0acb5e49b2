import pytest

from stica_ext.datasets.synthetic import build_synthetic_dataset


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """A tiny synthetic audio-visual dataset (12 train / 2 val / 6 test videos, 2 s, 48 px, 16 kHz)."""
    root = tmp_path_factory.mktemp("synth")
    return build_synthetic_dataset(str(root), num_train=12, num_val=2, num_test=6, seed=3, size=48, duration=2.0,
                                   fps=30, sample_rate=16000, num_workers=1, progress=False)
