"""Tests of the torch audio features against python_speech_features and of the audio augmentations."""

import random

import numpy as np
import pytest
import torch

from stica_ext.datasets import audio as A

SR = 24000


def _test_wave(seconds, seed):
    """int16-scaled noise + tones + a silent gap (float64)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = 3000 * rng.standard_normal(n) + 8000 * np.sin(2 * np.pi * 440 * t) + 4000 * np.sin(2 * np.pi * 3150 * t + 1)
    x[n // 3 : n // 3 + 2000] *= 0.001
    return np.clip(np.round(x), -32768, 32767)


@pytest.mark.parametrize("num_filters", [40, 257])
@pytest.mark.parametrize("seconds", [1.0, 2.0])
def test_matches_python_speech_features(num_filters, seconds):
    psf = pytest.importorskip("python_speech_features")
    wave = _test_wave(seconds, seed=int(seconds * 10) + num_filters)
    expected = psf.logfbank(wave, SR, winlen=0.02, winstep=0.01, nfilt=num_filters, nfft=1024)
    got = A.log_mel_filterbank(torch.tensor(wave, dtype=torch.float32), SR, num_filters=num_filters)
    assert got.shape == expected.shape == (int(100 * seconds) - 1, num_filters)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-3, rtol=0)
    got64 = A.log_mel_filterbank(torch.tensor(wave, dtype=torch.float64), SR, num_filters=num_filters)
    np.testing.assert_allclose(got64.numpy(), expected, atol=1e-8, rtol=0)


def test_mel_matrix_matches_python_speech_features():
    psf = pytest.importorskip("python_speech_features")
    for nfilt in (40, 257):
        expected = psf.get_filterbanks(nfilt, 1024, SR, 0, SR / 2)
        got = A.mel_filterbank_matrix(SR, 1024, nfilt).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-12)
    # 257 filters over 513 bins: the lowest filters are empty and give log(eps).
    assert (A.mel_filterbank_matrix(SR, 1024, 257).sum(1) == 0).sum() == 38


def test_empty_filters_and_silence_give_log_eps():
    feats = A.log_mel_filterbank(torch.zeros(SR), SR, num_filters=257)
    assert torch.allclose(feats, torch.full_like(feats, float(np.log(np.finfo(float).eps))))


def test_short_and_odd_lengths_match():
    psf = pytest.importorskip("python_speech_features")
    for n in (300, 480, 481, 24001, 12345):
        wave = _test_wave(1.0, seed=n)[:n]
        expected = psf.logfbank(wave, SR, winlen=0.02, winstep=0.01, nfilt=40, nfft=1024)
        got = A.log_mel_filterbank(torch.tensor(wave), SR)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got.numpy(), expected, atol=1e-6)


def test_batched_equals_unbatched():
    waves = torch.tensor(np.stack([_test_wave(1.0, seed=s) for s in range(6)]), dtype=torch.float32)
    batched = A.log_mel_filterbank(waves.reshape(2, 3, -1), SR)
    assert batched.shape == (2, 3, 99, 40)
    for i in range(6):
        single = A.log_mel_filterbank(waves[i], SR)
        torch.testing.assert_close(batched.reshape(6, 99, 40)[i], single, atol=1e-4, rtol=0)


def test_spectrogram_layout():
    wave = torch.tensor(_test_wave(1.0, seed=0) / 32768.0, dtype=torch.float32)
    spec = A.spectrogram_from_waveform(wave, SR)
    assert spec.shape == (1, 40, 99)
    assert spec.dtype == torch.float32
    torch.testing.assert_close(spec[0], A.log_mel_filterbank(wave * 32768.0, SR).T)
    assert A.spectrogram_from_waveform(wave, SR, num_filters=257).shape == (1, 257, 99)
    assert A.spectrogram_from_waveform(torch.zeros(2 * SR), SR, num_filters=257).shape == (1, 257, 199)
    assert A.spectrogram_from_waveform(torch.zeros(4, SR), SR).shape == (4, 1, 40, 99)


def test_z_normalize():
    spec = torch.tensor([1.93, 1.93 + 17.89, 1.93 - 2 * 17.89])
    torch.testing.assert_close(A.z_normalize(spec), torch.tensor([0.0, 1.0, -2.0]))
    torch.testing.assert_close(A.z_normalize(spec, mean=0.0, std=2.0), spec / 2.0)


def test_volume_jitter_range():
    wave = torch.ones(100)
    rng = random.Random(0)
    gains = [float(A.volume_jitter(wave, 0.1, rng)[0]) for _ in range(500)]
    assert 0.9 <= min(gains) < 0.92 and 1.08 < max(gains) <= 1.1
    assert A.volume_jitter(wave, 0.0, rng) is wave
    assert random.Random(5).uniform(0.9, 1.1) == pytest.approx(float(A.volume_jitter(wave, 0.1, random.Random(5))[0]))


def _masked_runs(mask_1d):
    """Lengths of runs of True."""
    runs, n = [], 0
    for v in list(mask_1d) + [False]:
        if v:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs


@pytest.mark.parametrize("policy", ["mild", "medium", "heavy"])
def test_spec_augment_masks(policy):
    n_freq, n_time, max_f, max_t = A.SPEC_AUGMENT_POLICIES[policy]
    rng = random.Random(1)
    seen_f, seen_t = set(), set()
    for _ in range(300):
        spec = torch.rand(1, 40, 99) + 1.0  # strictly positive: zeros are masks
        out = A.spec_augment(spec, policy, rng)
        assert out.shape == spec.shape
        assert bool((spec > 0).all())  # input untouched
        zero = out[0] == 0
        rows = zero.all(1)
        cols = zero.all(0)
        # Every zero belongs to a fully masked row or column; unmasked values are unchanged.
        assert torch.equal(zero, rows[:, None] | cols[None, :])
        assert torch.equal(out[0], torch.where(zero, torch.zeros_like(spec[0]), spec[0]))
        # At most n masks of width <= F - 1 each (masks may overlap or touch).
        row_runs, col_runs = _masked_runs(rows.tolist()), _masked_runs(cols.tolist())
        assert len(row_runs) <= n_freq and sum(row_runs) <= n_freq * (max_f - 1)
        assert len(col_runs) <= n_time and sum(col_runs) <= n_time * (max_t - 1)
        seen_f.add(int(rows.sum()))
        seen_t.add(int(cols.sum()))
    # Widths are int(U(0, F)): 0 .. F - 1 all occur, F never.
    if n_freq == 1:
        assert seen_f == set(range(max_f))
    if n_time == 1:
        assert seen_t == set(range(max_t))


def test_spec_augment_edges_reachable_and_generators():
    # Start offsets are inclusive: the last band can be masked.
    rng = random.Random(0)
    hit_last_row = hit_last_col = False
    for _ in range(2000):
        out = A.spec_augment(torch.ones(1, 40, 99), [1, 1, 3, 6], rng)
        hit_last_row |= bool((out[0, -1] == 0).all())
        hit_last_col |= bool((out[0, :, -1] == 0).all())
    assert hit_last_row and hit_last_col
    gen = torch.Generator().manual_seed(0)
    out = A.spec_augment(torch.ones(1, 40, 99), "heavy", gen)
    assert out.shape == (1, 40, 99)
    spec = torch.ones(1, 40, 99)
    assert torch.equal(A.spec_augment(spec, "none", rng), spec)
    with pytest.raises(ValueError):
        A.spec_augment(spec, "extreme", rng)
