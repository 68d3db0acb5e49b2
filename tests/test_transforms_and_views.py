"""Video transforms (spec 3.3) and the GDT four-view sample layout (spec 3.5)."""

import random

import pytest
import torch

from _tiny import tiny_cfg
from stica_ext.datasets import build_dataset
from stica_ext.datasets import transforms as T


def test_random_crop_reaches_every_offset_including_the_last():
    x = torch.arange(10 * 10, dtype=torch.float32).view(1, 1, 10, 10)
    rng = random.Random(0)
    seen = set()
    for _ in range(400):
        c = T.random_crop(x, 8, rng)
        seen.add((int(c[0, 0, 0, 0]) // 10, int(c[0, 0, 0, 0]) % 10))
    assert seen == {(y, x) for y in range(3) for x in range(3)}  # offsets 0..2 in both axes
    with pytest.raises(ValueError, match="cannot crop"):
        T.random_crop(x, 11, rng)


def test_uniform_crop_positions():
    x = torch.arange(8 * 12, dtype=torch.float32).view(1, 1, 8, 12)  # W > H: left / centre / right
    assert [int(T.uniform_crop(x, 8, i)[0, 0, 0, 0]) for i in range(3)] == [0, 2, 4]
    y = torch.arange(12 * 8, dtype=torch.float32).view(1, 1, 12, 8)  # H > W: top / centre / bottom
    assert [int(T.uniform_crop(y, 8, i)[0, 0, 0, 0]) for i in range(3)] == [0, 2 * 8, 4 * 8]
    z = torch.arange(9 * 9, dtype=torch.float32).view(1, 1, 9, 9)  # centre offset ceil((9 - 6) / 2) = 2
    assert int(T.uniform_crop(z, 6, 1)[0, 0, 0, 0]) == 2 * 9 + 2


def test_resize_short_side():
    x = torch.rand(3, 2, 60, 80)
    assert T.resize_short_side(x, 30).shape == (3, 2, 30, 40)
    assert T.resize_short_side(x, 60) is x
    assert T.resize_short_side(torch.rand(3, 2, 81, 60), 40).shape == (3, 2, 54, 40)


def test_color_jitter_is_per_frame_rgb():
    # saturation alone (brightness / contrast off): a grey frame is unchanged, a coloured one moves towards its
    # own luminance, frames are independent of each other
    rng = random.Random(3)
    grey = torch.full((3, 1, 4, 4), 0.5)
    red = torch.zeros(3, 1, 4, 4)
    red[0] = 1.0
    x = torch.cat([grey, red], dim=1)
    y = T.color_jitter(x, 0.0, 0.0, 0.4, rng)
    assert torch.allclose(y[:, 0], grey[:, 0])
    alpha = random.Random(3).uniform(-0.4, 0.4) + 1.0
    lum = 0.299
    assert torch.allclose(y[:, 1, 0, 0], torch.tensor([alpha + (1 - alpha) * lum, (1 - alpha) * lum,
                                                        (1 - alpha) * lum]), atol=1e-6)


def test_reference_color_jitter_reproduces_layout_quirk():
    torch.manual_seed(0)
    x = torch.rand(3, 6, 4, 4)
    rng = random.Random(5)
    alpha = 1.0 + random.Random(5).uniform(-0.4, 0.4)
    y = T.reference_color_jitter(x, 0.0, 0.0, 0.4, rng)
    # frames 3.. are only scaled; frames 0-2 of channel c blend with 0.299 f2 + 0.587 f1 + 0.114 f0 of channel c
    assert torch.allclose(y[:, 3:], alpha * x[:, 3:])
    mix = 0.299 * x[:, 2] + 0.587 * x[:, 1] + 0.114 * x[:, 0]
    for t in range(3):
        assert torch.allclose(y[:, t], alpha * x[:, t] + (1 - alpha) * mix, atol=1e-6)


def test_four_view_layout_hypothesis_6(synth_dir, tmp_path):
    # no spatial randomness (frames already at crop size, no flip, no colour jitter): reversed views are the exact
    # time-flip of their clip, and reversed spectrograms the time-flip of the clip's spectrogram
    cfg = tiny_cfg(synth_dir, tmp_path, **{
        "GDT.HYPOTHESIS": "6", "DATA.TRAIN_JITTER_SCALES": [48, 48], "DATA.TRAIN_CROP_SIZE": 48,
        "DATA.RANDOM_FLIP": "False", "DATA.SSL_COLOR_JITTER": "False", "AUDIO.SPEC_AUGMENT": "none"})
    ds = build_dataset("synthetic_av", cfg, "train", sample_type="gdt")
    item = ds[(3, 0)]
    v, a = item["video"], item["audio"]
    assert v.shape == (4, 3, 4, 48, 48) and a.shape == (4, 1, 40, 99)
    assert torch.equal(v[1], v[0].flip(1)) and torch.equal(v[3], v[2].flip(1))
    assert torch.equal(a[1], a[0].flip(-1)) and torch.equal(a[3], a[2].flip(-1))
    assert not torch.equal(a[0], a[2])  # the shift view is another clip of the video
    # deterministic per (seed, epoch, index); another epoch draws other positions
    assert torch.equal(ds[(3, 0)]["audio"], a)
    assert not torch.equal(ds[(3, 1)]["audio"], a)


@pytest.mark.parametrize("hyp, n", [("1", 1), ("v_reversal", 2), ("i_shift", 2), ("9", 4)])
def test_only_needed_views_are_built(synth_dir, tmp_path, hyp, n):
    cfg = tiny_cfg(synth_dir, tmp_path, **{"GDT.HYPOTHESIS": hyp})
    item = build_dataset("synthetic_av", cfg, "train", sample_type="gdt")[0]
    assert item["video"].shape[0] == n and item["audio"].shape[0] == n
