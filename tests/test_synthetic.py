"""Tests of the synthetic audio-visual generator and the on-disk dataset builder."""

import json
import os
import re
from collections import Counter

import numpy as np
import pytest

from stica_ext.datasets import synthetic as synth

SIZE = 64
DURATION = 3.0


@pytest.fixture(scope="module")
def clips():
    """Five clips per class (64 px, 3 s)."""
    return [synth.generate_clip(seed, label, size=SIZE, duration=DURATION) for label in range(10) for seed in range(5)]


def _skewness(x):
    x = x - x.mean()
    return float((x**3).mean() / (x**2).mean() ** 1.5)


def test_class_names_and_label_rule():
    assert len(synth.CLASS_NAMES) == 10
    assert synth.CLASS_NAMES[0] == "circle_gravity"
    assert synth.CLASS_NAMES[1] == "circle_billiard"
    assert synth.CLASS_NAMES[9] == "cross_billiard"
    for label, name in enumerate(synth.CLASS_NAMES):
        shape_idx, regime_idx = synth.label_to_shape_regime(label)
        assert label == shape_idx * 2 + regime_idx
        assert name == f"{synth.SHAPES[shape_idx]}_{synth.REGIMES[regime_idx]}"
    with pytest.raises(ValueError):
        synth.label_to_shape_regime(10)


def test_clip_format_and_meta(clips):
    for clip in clips:
        assert clip.frames.shape == (round(DURATION * 30), SIZE, SIZE, 3)
        assert clip.frames.dtype == np.uint8
        assert clip.audio.dtype == np.float32
        assert clip.audio.shape == (round(DURATION * 24000),)
        assert np.abs(clip.audio).max() <= 1.0
        assert clip.positions.shape == (clip.frames.shape[0], 2)
        shape_idx, regime_idx = synth.label_to_shape_regime(clip.label)
        assert clip.meta["shape"] == synth.SHAPES[shape_idx]
        assert clip.meta["regime"] == synth.REGIMES[regime_idx]
        scale = SIZE / synth.REFERENCE_SIZE
        assert 8 * scale <= clip.meta["radius"] <= 14 * scale
        # f0 tied to the shape and inversely proportional to the object size.
        expected = synth.SHAPE_F0[shape_idx] * synth.REFERENCE_RADIUS * scale / clip.meta["radius"]
        assert clip.meta["f0"] == pytest.approx(expected)
        assert clip.impact_times == sorted(clip.impact_times)
        assert all(0 <= t < DURATION for t in clip.impact_times)
        json.dumps(clip.meta)  # serialisable


def test_determinism():
    a = synth.generate_clip(3, 5, size=SIZE, duration=2.0)
    b = synth.generate_clip(3, 5, size=SIZE, duration=2.0)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert a.impact_times == b.impact_times
    assert a.meta == b.meta
    c = synth.generate_clip(4, 5, size=SIZE, duration=2.0)
    assert not np.array_equal(a.frames, c.frames)
    assert not np.array_equal(a.audio, c.audio)
    assert a.impact_times != c.impact_times


def test_pitch_is_the_fundamental(clips):
    # The strongest spectral line of the soundtrack is the object's f0.
    for clip in clips[::3]:
        spectrum = np.abs(np.fft.rfft(clip.audio))
        freqs = np.fft.rfftfreq(clip.audio.shape[0], 1.0 / clip.sample_rate)
        spectrum[freqs < 100] = 0
        peak = freqs[np.argmax(spectrum)]
        assert peak == pytest.approx(clip.meta["f0"], rel=0.02), clip.meta


def test_impact_rate(clips):
    rates = [len(c.impact_times) / DURATION for c in clips]
    assert min(len(c.impact_times) for c in clips) >= 1
    assert 1.0 <= np.mean(rates) <= 4.0


def test_audio_onsets_at_impacts(clips):
    # High-passed energy jumps at every impact sample (5 ms after vs 5 ms before).
    ratios = []
    for clip in clips:
        x = np.diff(clip.audio, prepend=np.float32(0))
        w = int(0.005 * clip.sample_rate)
        for t in clip.impact_times:
            n = int(round(t * clip.sample_rate))
            if n - w < 0 or n + w > x.shape[0]:
                continue
            before = np.sqrt(np.mean(x[n - w : n] ** 2))
            after = np.sqrt(np.mean(x[n : n + w] ** 2))
            ratios.append(after / before)
    ratios = np.array(ratios)
    assert len(ratios) > 100
    assert np.mean(ratios >= 1.5) >= 0.9
    assert np.median(ratios) > 4.0


def test_velocity_changes_at_impacts(clips):
    # Every sounding impact is a visible velocity change: acceleration spikes in the frames around it.
    hits, total = 0, 0
    for clip in clips:
        p = clip.positions
        acc = np.linalg.norm(p[2:] - 2 * p[1:-1] + p[:-2], axis=1)  # acc[k - 1] is centred on frame k
        baseline = np.median(acc)
        for t in clip.impact_times:
            k = int(np.floor(t * clip.fps))  # impact between frames k and k + 1
            if k < 1 or k + 2 >= p.shape[0]:
                continue
            total += 1
            hits += max(acc[k - 1], acc[k]) > 2 * baseline + 0.05
    assert total > 100
    assert hits / total >= 0.95


def test_time_irreversibility(clips):
    # Percussive envelopes: the envelope derivative is right-skewed forward, left-skewed backward.
    for clip in clips:
        hop = int(0.005 * clip.sample_rate)
        n = clip.audio.shape[0] // hop
        env = np.sqrt((clip.audio[: n * hop].reshape(n, hop) ** 2).mean(1))
        assert _skewness(np.diff(env)) > 1.0
        assert _skewness(np.diff(env[::-1])) < -1.0


def test_objects_stay_in_frame(clips):
    for clip in clips:
        assert clip.positions.min() >= 0 and clip.positions.max() <= SIZE


def test_seeds_and_balanced_labels():
    labels = synth.split_labels(0, "train", 40)
    assert Counter(labels) == {k: 4 for k in range(10)}
    assert labels != sorted(labels)
    assert synth.split_labels(0, "train", 40) == labels
    seeds = {synth.video_seed(0, split, i) for split in ("train", "val", "test") for i in range(50)}
    assert len(seeds) == 150
    assert synth.video_seed(1, "train", 0) != synth.video_seed(0, "train", 0)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("STICA_EXT_CACHE", str(tmp_path))
    assert synth.default_cache_dir() == os.path.join(str(tmp_path), "synthetic_av")
    monkeypatch.delenv("STICA_EXT_CACHE")
    assert synth.default_cache_dir().endswith(os.path.join(".cache", "stica_ext", "synthetic_av"))


def test_build_dataset(tmp_path):
    kwargs = dict(num_train=20, num_val=10, num_test=10, seed=0, size=32, duration=1.0, num_workers=2, progress=False)
    folder = synth.build_synthetic_dataset(tmp_path, **kwargs)
    assert os.path.dirname(folder) == str(tmp_path)
    assert os.path.basename(folder).startswith("synth_")
    line_re = re.compile(r"^videos/(train|val|test)_\d{5}\.mp4 \d$")
    for split, count in (("train", 20), ("val", 10), ("test", 10)):
        with open(os.path.join(folder, f"{split}.csv")) as f:
            lines = f.read().splitlines()
        assert len(lines) == count
        labels = []
        for line in lines:
            assert line_re.match(line), line
            rel, label = line.split(" ")
            assert rel.startswith(f"videos/{split}_")
            path = os.path.join(folder, rel)
            assert os.path.getsize(path) > 1000
            labels.append(int(label))
        assert Counter(labels) == {k: count // 10 for k in range(10)}
    with open(os.path.join(folder, "classes.txt")) as f:
        assert f.read().splitlines() == synth.CLASS_NAMES
    with open(os.path.join(folder, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["params"]["size"] == 32 and manifest["params"]["num_train"] == 20
    assert [e[1] for e in manifest["videos"]["test"]] == labels  # the last split read above
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # temporary folder removed

    # Second call: returns at once and rewrites nothing.
    mtimes = {p: os.stat(os.path.join(folder, p)).st_mtime_ns for p in ("train.csv", "manifest.json")}
    video = os.path.join(folder, "videos", "train_00000.mp4")
    video_mtime = os.stat(video).st_mtime_ns
    assert synth.build_synthetic_dataset(tmp_path, **kwargs) == folder
    assert {p: os.stat(os.path.join(folder, p)).st_mtime_ns for p in mtimes} == mtimes
    assert os.stat(video).st_mtime_ns == video_mtime

    # Other parameters -> another folder.
    other = synth.build_synthetic_dataset(tmp_path, num_train=2, num_val=0, num_test=0, seed=1, size=32, duration=1.0,
                                          num_workers=1, progress=False)
    assert other != folder
    assert len(open(os.path.join(other, "train.csv")).read().splitlines()) == 2
    assert open(os.path.join(other, "val.csv")).read() == ""


def test_lost_race_keeps_winner(tmp_path):
    kwargs = dict(num_train=1, num_val=0, num_test=0, seed=3, size=32, duration=1.0, num_workers=1, progress=False)
    folder = synth.build_synthetic_dataset(tmp_path, **kwargs)
    params = json.load(open(os.path.join(folder, "manifest.json")))["params"]
    loser = tmp_path / ".loser"
    (loser / "videos").mkdir(parents=True)
    (loser / "manifest.json").write_text(json.dumps({"params": params}))
    synth._move_into_place(str(loser), folder, params)  # must not raise nor replace the winner
    assert os.path.isfile(os.path.join(folder, "videos", "train_00000.mp4"))


def test_write_av_file_rejects_odd_sizes(tmp_path):
    frames = np.zeros((3, 31, 32, 3), dtype=np.uint8)
    with pytest.raises(ValueError):
        synth.write_av_file(tmp_path / "odd.mp4", frames, None, 30, 24000)


def test_difficulty_options_scale_objects_keep_pitch_and_drop_distractors():
    base = synth.generate_clip(11, 4, size=48, duration=1.0, sample_rate=8000, max_distractors=0)
    big = synth.generate_clip(11, 4, size=48, duration=1.0, sample_rate=8000, object_scale=1.5, max_distractors=0)
    assert big.meta["radius"] / base.meta["radius"] == pytest.approx(1.5)
    assert big.meta["f0"] == pytest.approx(base.meta["f0"])  # pitch range unchanged
    assert big.meta["distractors"] == []
    many = [len(synth.generate_clip(s, 0, size=32, duration=0.5, sample_rate=8000, max_distractors=4).meta["distractors"])
            for s in range(40)]
    assert max(many) > 2 and min(many) >= 0
    # default parameters keep the dataset folder name of earlier versions; other values get their own folder
    p = synth._dataset_params(1, 1, 1, 0, 48, 1.0, 30, 8000)
    assert "object_scale" not in p and "max_distractors" not in p
    assert synth.dataset_name(p) != synth.dataset_name(synth._dataset_params(1, 1, 1, 0, 48, 1.0, 30, 8000, 1.5, 0))
