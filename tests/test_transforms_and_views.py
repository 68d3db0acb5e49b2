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


# ---------------------------------------------------------------------------------------------------------------
# Fast (uint8 geometry + fused colour) path vs the float path
# ---------------------------------------------------------------------------------------------------------------
_MEAN, _STD = [0.45, 0.40, 0.35], [0.225, 0.25, 0.2]


def _smooth_clip(t=6, h=48, w=64, seed=0):
    """Smooth colour gradients that change over time (uint8 ``T x H x W x 3``): bilinear resizing of such frames
    is well conditioned, so the two paths may differ only by uint8 rounding."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([yy, xx, 1 - (yy + xx) / 2], -1)
    frames = [base * (0.5 + 0.5 * torch.rand(1, 1, 3, generator=g)) + 0.1 * torch.rand(1, 1, 3, generator=g)
              for _ in range(t)]
    return (torch.stack(frames).clamp(0, 1) * 255).round().to(torch.uint8)


def _rounding_tol(color_strength=0.4):
    # one uint8 step after the resize, scaled by the strongest colour factor and the smallest std (+ float error)
    return (1.0 / 255) * (1 + color_strength) ** 3 / min(_STD) + 1e-4


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("reverse", [False, True])
def test_fast_gdt_view_matches_float_path(seed, reverse):
    frames = _smooth_clip(seed=seed)
    kw = dict(jitter_scales=(36, 44), crop_size=32, mean=_MEAN, std=_STD, color=(0.4, 0.4, 0.4), reverse=reverse)
    fast = T.train_video_transform(frames, rng=random.Random(seed), fast=True, **kw)
    ref = T.train_video_transform(frames, rng=random.Random(seed), fast=False, **kw)
    assert fast.shape == ref.shape == (3, 6, 32, 32) and fast.dtype == torch.float32 and fast.is_contiguous()
    assert (fast - ref).abs().max() <= _rounding_tol()
    for f, expected in ((True, fast), (False, ref)):  # written into a preallocated view of a multi-view sample
        buf = torch.full((2, 3, 6, 32, 32), float("nan"))
        res = T.train_video_transform(frames, rng=random.Random(seed), fast=f, out=buf[1], **kw)
        assert res.data_ptr() == buf[1].data_ptr() and torch.equal(buf[1], expected) and buf[0].isnan().all()
    # the same draws were made: a different seed gives a different view
    other = T.train_video_transform(frames, rng=random.Random(seed + 100), fast=False, **kw)
    assert (other - ref).abs().max() > 10 * _rounding_tol()


def test_fast_reversed_view_is_the_time_flip_of_the_forward_view():
    frames = _smooth_clip()
    kw = dict(jitter_scales=(36, 44), crop_size=32, mean=_MEAN, std=_STD, color=(0.4, 0.4, 0.4))
    fwd = T.train_video_transform(frames, rng=random.Random(7), **kw)
    rev = T.train_video_transform(frames, rng=random.Random(7), reverse=True, **kw)
    # contrast uses each frame's own mean, so reversal commutes with the whole augmentation
    assert torch.allclose(rev, fwd.flip(1), atol=1e-5)
    assert torch.allclose(T.train_video_transform(frames.flip(0), rng=random.Random(7), **kw), rev, atol=1e-5)


@pytest.mark.parametrize("gray", [False, True])
@pytest.mark.parametrize("order_seed", range(4))
def test_fused_colour_affine_equals_sequential_ops_exactly(gray, order_seed):
    # no resizing involved: the fused affine map must equal the float ops up to float32 error
    torch.manual_seed(order_seed)
    crop = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    ops = T.draw_color_ops(0.4, 0.4, 0.4, random.Random(order_seed))
    assert sorted(k for k, _ in ops) == ["b", "c", "s"]
    fused = T.finish_view_u8(crop, mean=_MEAN, std=_STD, ops=ops, gray=gray, flip=True, reverse=True)
    x = crop.flip([-1, 0]).permute(1, 0, 2, 3).float() / 255
    x = T.apply_color_ops(x, ops)
    if gray:
        x = T.grayscale(x)
    ref = T.normalize(x, _MEAN, _STD)
    assert torch.allclose(fused, ref, atol=2e-5), (fused - ref).abs().max()
    # brightness / contrast only: the cheaper diagonal branch
    diag_ops = [op for op in ops if op[0] != "s"]
    fused = T.finish_view_u8(crop, mean=_MEAN, std=_STD, ops=diag_ops)
    ref = T.normalize(T.apply_color_ops(crop.permute(1, 0, 2, 3).float() / 255, diag_ops), _MEAN, _STD)
    assert torch.allclose(fused, ref, atol=2e-5)


@pytest.mark.parametrize("seed", range(4))
def test_fast_stica_view_matches_float_path_with_every_op(seed):
    frames = _smooth_clip(seed=seed)
    kw = dict(crop_size=24, mean=_MEAN, std=_STD, color_prob=1.0, gray_prob=0.5, blur_prob=1.0)
    fast = T.stica_video_transform(frames, rng=random.Random(seed), fast=True, **kw)
    ref = T.stica_video_transform(frames, rng=random.Random(seed), fast=False, **kw)
    assert fast.shape == ref.shape == (3, 6, 24, 24)
    assert (fast - ref).abs().max() <= _rounding_tol()


def test_fast_eval_and_finetune_views_match_float_path():
    from stica_ext.datasets.ucf_hmdb import finetune_test_transform, finetune_train_transform

    frames = _smooth_clip(h=40, w=60)
    for idx in range(3):
        a = T.eval_video_transform(frames, crop_size=32, spatial_idx=idx, mean=_MEAN, std=_STD, fast=True)
        b = T.eval_video_transform(frames, crop_size=32, spatial_idx=idx, mean=_MEAN, std=_STD, fast=False)
        assert a.shape == (3, 6, 32, 32) and (a - b).abs().max() <= _rounding_tol(0.0)
        (a, box_a), (b, box_b) = (finetune_test_transform(frames, crop_size=32, spatial_idx=idx, mean=_MEAN,
                                                          std=_STD, fast=f) for f in (True, False))
        assert box_a == box_b and (a - b).abs().max() <= _rounding_tol(0.0)
    for seed in range(4):
        for scale in [(0.3, 1.0), None]:
            kw = dict(crop_size=24, mean=_MEAN, std=_STD, scale=scale, jitter_scales=(30, 36), color_prob=0.7)
            (a, box_a), (b, box_b) = (finetune_train_transform(frames, rng=random.Random(seed), fast=f, **kw)
                                      for f in (True, False))
            assert box_a == box_b and a.shape == (3, 6, 24, 24)
            assert (a - b).abs().max() <= _rounding_tol()


def test_dataset_fast_augment_switch(synth_dir, tmp_path):
    items = {}
    for fast in (True, False):
        cfg = tiny_cfg(synth_dir, tmp_path, **{"GDT.HYPOTHESIS": "6", "DATA.FAST_AUGMENT": str(fast)})
        ds = build_dataset("synthetic_av", cfg, "train", sample_type="gdt")
        items[fast] = ds[(3, 1)]
    a, b = items[True], items[False]
    assert a["video"].shape == b["video"].shape and a["video"].shape[0] == 4
    assert torch.equal(a["audio"], b["audio"])
    # same draws: the views agree up to uint8 rounding of the resized pixels (synthetic frames have hard edges,
    # so compare the mean difference)
    assert (a["video"] - b["video"]).abs().mean() < 0.02
    assert not torch.equal(a["video"], b["video"])  # ... and the switch did select the other path


@pytest.mark.parametrize("seed", range(3))
def test_deferred_views_finished_later_equal_the_workers_views(seed):
    # DATA.COLOR_ON_DEVICE: same random draws, a uint8 view + colour map (+ blur sigma) that apply_view_colors
    # turns into the view the fast path finishes in the worker
    frames = _smooth_clip(seed=seed)
    kw = dict(crop_size=24, mean=_MEAN, std=_STD, color_prob=1.0, gray_prob=0.5, blur_prob=0.5)
    ref = T.stica_video_transform(frames, rng=random.Random(seed), **kw)
    u8, color, sigma = T.stica_video_transform(frames, rng=random.Random(seed), defer_color=True, **kw)
    assert u8.dtype == torch.uint8 and u8.shape == (3, 6, 24, 24) and color.shape == (3, 3 + 6)
    out = T.apply_view_colors(u8[None, None], color[None, None], torch.tensor([[sigma]]))[0, 0]
    assert torch.allclose(out, ref, atol=1e-4)
    gkw = dict(jitter_scales=(30, 36), crop_size=24, mean=_MEAN, std=_STD, color=(0.4, 0.4, 0.4))
    for reverse in (False, True):
        ref = T.train_video_transform(frames, rng=random.Random(seed), reverse=reverse, **gkw)
        u8, color = T.train_video_transform(frames, rng=random.Random(seed), reverse=reverse, defer_color=True, **gkw)
        assert torch.allclose(T.apply_view_colors(u8, color), ref, atol=1e-4)
    # every draw makes a difference: another seed's colour map gives another view
    other = T.train_video_transform(frames, rng=random.Random(seed + 10), defer_color=True, **gkw)[1]
    assert not torch.allclose(T.apply_view_colors(u8, other), ref, atol=1e-2)
    with pytest.raises(ValueError, match="color must have shape"):
        T.apply_view_colors(u8, color[:, :4])
    with pytest.raises(ValueError, match="fast path"):
        T.train_video_transform(frames, rng=random.Random(0), fast=False, defer_color=True, **gkw)


@pytest.mark.parametrize("model", ["GDT", "STiCA"])
def test_dataset_color_on_device_samples(synth_dir, tmp_path, model):
    over = {"DATA.SSL_COLOR_JITTER": "True"}
    if model == "GDT":
        over["GDT.HYPOTHESIS"] = "6"
    else:
        over.update({"MODEL.MODEL_NAME": "STiCA", "MODEL.LOSS_FUNC": "stica_nce", "STICA.NUM_LARGE_TCROPS": "0",
                     "STICA.NUM_SMALL_TCROPS": "0"})
    items = {}
    for defer in (False, True):
        cfg = tiny_cfg(synth_dir, tmp_path, **over, **{"DATA.COLOR_ON_DEVICE": str(defer)})
        ds = build_dataset("synthetic_av", cfg, "train", sample_type="gdt" if model == "GDT" else "stica")
        items[defer] = [ds[(i, 1)] for i in range(4)]
    for plain, deferred in zip(items[False], items[True]):
        assert deferred["video"].dtype == torch.uint8 and deferred["video"].shape == plain["video"].shape
        assert torch.equal(deferred["audio"], plain["audio"])
        batch = torch.utils.data.default_collate([deferred])
        out = T.apply_view_colors(batch["video"], batch["video_color"], batch.get("video_blur"))[0]
        assert torch.allclose(out, plain["video"], atol=1e-4)
    if model == "STiCA":
        assert any(float(it["video_blur"].max()) > 0 for it in items[True])
        assert items[True][0]["video_blur"].shape == (2,)
    else:
        assert "video_blur" not in items[True][0] and items[True][0]["video_color"].shape == (4, 3, 3 + 4)


def test_color_on_device_config_errors(synth_dir, tmp_path):
    from stica_ext.config import ConfigError

    with pytest.raises(ConfigError, match="DATA.COLOR_ON_DEVICE needs DATA.FAST_AUGMENT"):
        tiny_cfg(synth_dir, tmp_path, **{"DATA.COLOR_ON_DEVICE": "True", "DATA.FAST_AUGMENT": "False"})
    with pytest.raises(ConfigError, match="GDT.REFERENCE_COLOR_JITTER"):
        tiny_cfg(synth_dir, tmp_path, **{"DATA.COLOR_ON_DEVICE": "True", "GDT.REFERENCE_COLOR_JITTER": "True"})
