"""Tests of the PyAV clip decoder: shapes, temporal sampling, audio/video alignment and error handling."""

import random

import numpy as np
import pytest
import torch

from stica_ext.datasets import synthetic as synth
from stica_ext.datasets.decoder import Clip, DecodeError, decode_clips

FPS = 30
SR = 24000
SIZE = 64
DURATION = 3.0
NUM_VIDEO_FRAMES = int(DURATION * FPS)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """An audio-visual mp4, a video-only mp4, an empty file and a file of random bytes."""
    root = tmp_path_factory.mktemp("media")
    clip = synth.generate_clip(11, 0, size=SIZE, duration=DURATION, fps=FPS, sample_rate=SR)
    av_path = root / "clip.mp4"
    synth.write_av_file(av_path, clip.frames, clip.audio, FPS, SR)
    video_only = root / "video_only.mp4"
    synth.write_av_file(video_only, clip.frames[:60], None, FPS, SR)
    empty = root / "empty.mp4"
    empty.write_bytes(b"")
    garbage = root / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).bytes(50_000))
    return {"clip": clip, "av": av_path, "video_only": video_only, "empty": empty, "garbage": garbage}


def _decode(path, **kwargs):
    args = dict(num_frames=30, sampling_rate=1, target_fps=FPS, clip_indices=[0], num_clips=1)
    args.update(kwargs)
    return decode_clips(path, **args)


def _lag(decoded, reference, max_lag):
    """Lag (samples) maximising the cross-correlation of ``decoded`` with ``reference`` (reference[n + lag])."""
    n = decoded.shape[0] - 2 * max_lag
    core = decoded[max_lag : max_lag + n]
    scores = [float(np.dot(core, reference[max_lag + lag : max_lag + lag + n])) for lag in range(-max_lag, max_lag + 1)]
    return int(np.argmax(scores)) - max_lag


def _onset_strength(x, hop):
    """Positive change of the high-passed RMS envelope, one value per ``hop`` samples (value i: hop i vs i - 1)."""
    x = np.diff(x, prepend=x[:1])
    n = x.shape[0] // hop
    env = np.sqrt((x[: n * hop].reshape(n, hop) ** 2).mean(1))
    return np.maximum(np.diff(env, prepend=env[:1]), 0)


def test_shapes_and_types(media):
    clips = _decode(media["av"], audio_sample_rate=SR)
    assert len(clips) == 1
    clip = clips[0]
    assert isinstance(clip, Clip)
    assert clip.frames.shape == (30, SIZE, SIZE, 3)
    assert clip.frames.dtype == torch.uint8
    assert clip.audio.shape == (SR,)
    assert clip.audio.dtype == torch.float32
    assert float(clip.audio.abs().max()) <= 1.0
    assert _decode(media["av"])[0].audio is None


@pytest.mark.parametrize("num_clips", [1, 3, 4])
def test_uniform_clip_timing(media, num_clips):
    delta = NUM_VIDEO_FRAMES - 30
    for clip_idx in range(num_clips):
        clip = _decode(media["av"], clip_indices=[clip_idx], num_clips=num_clips)[0]
        start = int(delta * clip_idx / num_clips)
        assert clip.start_sec == pytest.approx(start / FPS, abs=1e-6)
        np.testing.assert_allclose(clip.frame_times, (start + np.arange(30)) / FPS, atol=1e-6)


def test_decoded_frames_match_source(media):
    source = media["clip"].frames.astype(np.float32)
    clip = _decode(media["av"], clip_indices=[1], num_clips=2)[0]
    index = np.rint(np.asarray(clip.frame_times) * FPS).astype(int)
    decoded = clip.frames.numpy().astype(np.float32)
    errors = np.abs(decoded - source[index]).mean(axis=(1, 2, 3))
    assert errors.max() < 6.0  # H.264 crf 23 on 64 px frames
    # The frame shown is the right one, not a neighbour (the object moves every frame).
    before = np.abs(decoded[1:] - source[index[1:] - 1]).mean(axis=(1, 2, 3))
    assert np.mean(errors[1:] < before) > 0.9


def test_stride_and_two_clips_in_one_call(media):
    clips = _decode(media["av"], num_frames=8, sampling_rate=4, clip_indices=[0, 2], num_clips=2)
    assert len(clips) == 2
    clip_size = 4 * 8  # source frames spanned at 30 fps
    index = np.linspace(0, clip_size - 1, 8).astype(int)
    delta = NUM_VIDEO_FRAMES - clip_size
    for clip, clip_idx in zip(clips, (0, 2)):
        start = int(delta * clip_idx / 2)
        assert clip.frames.shape == (8, SIZE, SIZE, 3)
        np.testing.assert_allclose(clip.frame_times, (start + index) / FPS, atol=1e-6)
        assert clip.clip_index == clip_idx


def test_random_clips_within_bounds(media):
    rng = random.Random(0)
    starts = []
    for _ in range(6):
        clip = _decode(media["av"], clip_indices=[-1], rng=rng, audio_sample_rate=SR)[0]
        starts.append(clip.start_sec)
        assert 0 <= clip.start_sec <= (NUM_VIDEO_FRAMES - 30) / FPS + 1e-6
        np.testing.assert_allclose(np.diff(clip.frame_times), 1.0 / FPS, atol=1e-6)
        assert clip.audio_start_sec == pytest.approx(clip.start_sec, abs=1.0 / SR)
    assert len(set(starts)) > 1
    again = [_decode(media["av"], clip_indices=[-1], rng=random.Random(0))[0].start_sec]
    assert again[0] == starts[0]


def test_clip_longer_than_video_is_clamped(media):
    clip = _decode(media["av"], num_frames=120, clip_indices=[3], num_clips=4, audio_sample_rate=SR,
                   audio_num_sec=4.0)[0]
    assert clip.frames.shape[0] == 120
    assert clip.start_sec == 0.0
    assert clip.frame_times[-1] == pytest.approx((NUM_VIDEO_FRAMES - 1) / FPS)
    assert torch.equal(clip.frames[-1], clip.frames[-25])  # last frame repeated
    assert clip.audio.shape == (4 * SR,)
    assert float(clip.audio[: 3 * SR].abs().max()) > 0.05
    assert float(clip.audio[3 * SR :].abs().max()) == 0.0  # zero padding after the track


def test_audio_window_moved_back_at_the_end(media):
    # A 1.5 s window from the last clip start (2.0 s) would run past the 3 s track: it ends at the last sample.
    clip = _decode(media["av"], clip_indices=[1], num_clips=1, audio_sample_rate=SR, audio_num_sec=1.5)[0]
    assert clip.start_sec == pytest.approx(2.0)
    assert clip.audio_start_sec == pytest.approx(1.5)
    reference = media["clip"].audio[int(1.5 * SR) :]
    assert _lag(clip.audio.numpy()[: -200], reference[: -200], 0) == 0
    assert np.corrcoef(clip.audio.numpy(), reference)[0, 1] > 0.9


@pytest.mark.parametrize("clip_idx", [0, 1, 2, 3])
def test_audio_is_sample_aligned(media, clip_idx):
    # Cross-correlating the decoded window with the generated soundtrack gives lag 0 (AAC priming handled).
    clip = _decode(media["av"], clip_indices=[clip_idx], num_clips=3, audio_sample_rate=SR)[0]
    first = int(round(clip.audio_start_sec * SR))
    padded = np.concatenate([np.zeros(64, np.float32), media["clip"].audio, np.zeros(SR, np.float32)])
    reference = padded[first : first + SR + 128]
    lag = _lag(np.concatenate([np.zeros(64, np.float32), clip.audio.numpy(), np.zeros(64, np.float32)]),
               reference, 48)
    assert abs(lag) <= 1


def test_impact_sound_lands_on_impact_frame(media):
    """Clear impacts inside a window: the decoded audio onset and the decoded object motion both change there."""
    source = media["clip"]
    impacts = [
        t
        for t, loudness in zip(source.impact_times, source.meta["impact_loudness"])
        if loudness >= 0.3 and all(u == t or abs(u - t) > 0.1 for u in source.impact_times)
    ]
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    hop = SR // 200  # 5 ms
    checked = 0
    for clip_idx in range(4):
        clip = _decode(media["av"], clip_indices=[clip_idx], num_clips=3, audio_sample_rate=SR)[0]
        t0 = clip.start_sec
        onset = _onset_strength(clip.audio.numpy(), hop)
        # Object centre in the decoded frames: pixels far from the temporal median (the static background).
        frames = clip.frames.numpy().astype(np.float32)
        moving = np.abs(frames - np.median(frames, axis=0)).sum(-1) > 60
        counts = moving.sum((1, 2))
        assert counts.min() > 0
        centre = np.stack([(moving * xs).sum((1, 2)), (moving * ys).sum((1, 2))], 1) / counts[:, None]
        # The decoded frame at time t shows the object where the generator put it at time t.
        index = np.rint(np.asarray(clip.frame_times) * FPS).astype(int)
        assert np.median(np.linalg.norm(centre - source.positions[index], axis=1)) < 2.0
        acc = np.linalg.norm(centre[2:] - 2 * centre[1:-1] + centre[:-2], axis=1)  # acc[k - 1] centred on frame k
        for t in impacts:
            rel = t - t0
            if not 0.15 <= rel <= 0.85:
                continue
            # Audio: the strongest onset within +-0.1 s of the impact is within one frame period of it.
            lo, hi = int((rel - 0.1) * 200), int((rel + 0.1) * 200)
            peak = (lo + int(np.argmax(onset[lo:hi]))) * hop / SR
            assert abs(peak - rel) <= 1.0 / FPS, (t, peak + t0)
            # Video: velocity discontinuity between the frames around the impact.
            k = int(np.floor(rel * FPS))
            assert max(acc[k - 1], acc[k]) > 2 * np.median(acc), (t, acc[k - 2 : k + 2])
            checked += 1
    assert checked >= 3


def test_threading_gives_identical_frames(media):
    a = _decode(media["av"], clip_indices=[1], num_clips=2, threads=1)[0]
    b = _decode(media["av"], clip_indices=[1], num_clips=2, threads=0)[0]
    assert torch.equal(a.frames, b.frames)


def test_shared_reformatter_gives_the_per_frame_conversion(media):
    # decode_clips converts with one shared swscale context: identical to PyAV's per-frame to_ndarray("rgb24")
    import av

    from stica_ext.datasets.decoder import _rgb_frames

    with av.open(str(media["av"])) as c:
        frames = [f for _, f in zip(range(12), c.decode(video=0))]
    assert frames[0].format.name != "rgb24"  # a real conversion happens
    out = _rgb_frames(frames, [0, 3, 3, 11])
    assert out.shape == (4, SIZE, SIZE, 3) and out.dtype == torch.uint8
    for k, i in enumerate([0, 3, 3, 11]):
        assert np.array_equal(out[k].numpy(), frames[i].to_ndarray(format="rgb24"))
    clip = _decode(media["av"], clip_indices=[0], num_frames=12)[0]
    assert np.array_equal(clip.frames.numpy(), np.stack([f.to_ndarray(format="rgb24") for f in frames]))


def test_missing_audio(media):
    with pytest.raises(DecodeError, match="no audio stream"):
        _decode(media["video_only"], audio_sample_rate=SR)
    clip = _decode(media["video_only"], audio_sample_rate=SR, audio_missing="silence")[0]
    assert clip.audio.shape == (SR,)
    assert float(clip.audio.abs().max()) == 0.0
    assert clip.frames.shape == (30, SIZE, SIZE, 3)
    with pytest.raises(ValueError):
        _decode(media["video_only"], audio_sample_rate=SR, audio_missing="ignore")


@pytest.mark.parametrize("name", ["empty", "garbage"])
def test_unreadable_files(media, name):
    path = media[name]
    with pytest.raises(DecodeError) as info:
        _decode(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.mp4"
    with pytest.raises(DecodeError, match="nope.mp4"):
        _decode(path)


def test_corrupt_packets_raise_decode_error(media, tmp_path):
    data = bytearray(media["av"].read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4000] = np.random.default_rng(1).bytes(4000)
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(bytes(data))
    try:
        clips = _decode(path, clip_indices=[0, 1, 2], num_clips=2, audio_sample_rate=SR)
    except DecodeError as e:
        assert str(path) in str(e)
    else:  # FFmpeg concealed the damage: the output must still be well formed
        assert all(c.frames.shape == (30, SIZE, SIZE, 3) and c.audio.shape == (SR,) for c in clips)
