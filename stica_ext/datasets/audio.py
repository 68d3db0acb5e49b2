"""Audio features in torch: log mel filterbank (``python_speech_features.logfbank`` compatible), volume jitter,
z-normalisation and SpecAugment masks.

Conventions: waveforms are float tensors ``(..., N)``; :func:`log_mel_filterbank` expects samples in int16 scale
(``[-32768, 32767]``) like the reference pipeline, :func:`spectrogram_from_waveform` takes ``[-1, 1]`` samples and
scales them itself.  Model inputs are ``1 x F x T`` spectrograms (frequency = height, time = width).
"""

import functools
import math
import random
from typing import Optional, Sequence, Union

import numpy as np
import torch

# ``numpy.finfo(float).eps``: energies equal to zero are replaced by it before the log (log(eps) = -36.04).
_EPS = float(np.finfo(np.float64).eps)

# SpecAugment policies: [n_freq_masks, n_time_masks, F (max freq width, exclusive), T (max time width, exclusive)].
SPEC_AUGMENT_POLICIES = {
    "none": (0, 0, 0, 0),
    "na": (0, 0, 0, 0),
    "mild": (1, 1, 2, 5),
    "medium": (1, 1, 3, 6),
    "heavy": (2, 2, 3, 6),
}


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=32)
def _mel_matrix_np(sample_rate: float, nfft: int, num_filters: int, low_freq: float, high_freq: float) -> np.ndarray:
    """Triangular HTK-mel filterbank ``num_filters x (nfft // 2 + 1)`` (float64, read-only).

    Filter ``j`` rises linearly from FFT bin ``b[j]`` to ``b[j + 1]`` and falls to ``b[j + 2]``, with bin edges
    ``b = floor((nfft + 1) * mel_to_hz(linspace(mel(low), mel(high), num_filters + 2)) / sample_rate)``.  Filters whose
    edges coincide are empty (all zeros).
    """
    mel_points = np.linspace(_hz_to_mel(low_freq), _hz_to_mel(high_freq), num_filters + 2)
    edges = np.floor((nfft + 1) * _mel_to_hz(mel_points) / sample_rate)
    bins = np.arange(nfft // 2 + 1, dtype=np.float64)[None, :]
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        rising = np.where((bins >= left) & (bins < centre), (bins - left) / (centre - left), 0.0)
        falling = np.where((bins >= centre) & (bins < right), (right - bins) / (right - centre), 0.0)
    matrix = rising + falling
    matrix.setflags(write=False)
    return matrix


@functools.lru_cache(maxsize=32)
def _mel_matrix_torch(sample_rate, nfft, num_filters, low_freq, high_freq, dtype, device) -> torch.Tensor:
    """The mel matrix transposed, ``(nfft // 2 + 1) x num_filters``, as a tensor (cached per dtype / device)."""
    matrix = _mel_matrix_np(sample_rate, nfft, num_filters, low_freq, high_freq)
    return torch.tensor(matrix.T.copy(), dtype=dtype, device=device)


def mel_filterbank_matrix(sample_rate, nfft=1024, num_filters=40, low_freq=0.0, high_freq=None) -> torch.Tensor:
    """The ``num_filters x (nfft // 2 + 1)`` float64 mel filterbank used by :func:`log_mel_filterbank`."""
    high = float(high_freq) if high_freq else sample_rate / 2.0
    matrix = _mel_matrix_np(float(sample_rate), int(nfft), int(num_filters), float(low_freq), high)
    return torch.from_numpy(matrix.copy())


def log_mel_filterbank(
    wave: torch.Tensor,
    sample_rate: float,
    num_filters: int = 40,
    win_length: float = 0.02,
    hop_length: float = 0.01,
    nfft: int = 1024,
    preemph: float = 0.97,
    low_freq: float = 0.0,
    high_freq: Optional[float] = None,
) -> torch.Tensor:
    """Log mel filterbank energies, identical to ``python_speech_features.logfbank`` (v0.6).

    Steps: pre-emphasis ``y[0] = x[0], y[n] = x[n] - preemph * x[n - 1]``; frames of ``round(win_length * sr)``
    samples every ``round(hop_length * sr)`` samples, ``1 + ceil((N - win) / hop)`` frames (1 if ``N <= win``) with
    zero padding at the end; rectangular window; power spectrum ``|rfft(frame, nfft)|^2 / nfft``; HTK mel filterbank
    (:func:`mel_filterbank_matrix`); zeros replaced by float64 machine epsilon; natural log.

    Args:
        wave: float tensor ``(..., N)`` of samples in int16 scale (multiply ``[-1, 1]`` audio by 32768).
        sample_rate: sampling rate in Hz.
        num_filters: number of mel filters ``F``.
        win_length, hop_length: frame length and step in seconds.
        nfft: FFT size (frames longer than ``nfft`` are truncated, as in the reference).
        preemph: pre-emphasis coefficient (0 = none).
        low_freq, high_freq: filterbank range in Hz (``high_freq=None``: ``sample_rate / 2``).

    Returns:
        ``(..., frames, F)`` tensor with the dtype of ``wave`` (float32 unless ``wave`` is float64).
    """
    if not torch.is_tensor(wave):
        wave = torch.as_tensor(np.asarray(wave))
    if not wave.is_floating_point():
        wave = wave.to(torch.float32)
    lead_shape = wave.shape[:-1]
    num_samples = wave.shape[-1]
    x = wave.reshape(-1, num_samples)
    if preemph:
        x = torch.cat([x[:, :1], x[:, 1:] - preemph * x[:, :-1]], dim=1)
    win = _round_half_up(win_length * sample_rate)
    hop = _round_half_up(hop_length * sample_rate)
    num_frames = 1 if num_samples <= win else 1 + int(math.ceil((num_samples - win) / hop))
    pad = (num_frames - 1) * hop + win - num_samples
    if pad > 0:
        x = torch.nn.functional.pad(x, (0, pad))
    frames = x.unfold(1, win, hop)  # B x frames x win
    power = torch.fft.rfft(frames, n=nfft).abs().pow(2) / nfft  # B x frames x (nfft // 2 + 1)
    high = float(high_freq) if high_freq else sample_rate / 2.0
    mel = _mel_matrix_torch(float(sample_rate), int(nfft), int(num_filters), float(low_freq), high, power.dtype,
                            power.device)
    feats = power @ mel
    feats = torch.where(feats == 0, torch.full_like(feats, _EPS), feats)
    return feats.log().reshape(*lead_shape, num_frames, int(num_filters))


def spectrogram_from_waveform(
    wave: torch.Tensor,
    sample_rate: float,
    num_filters: int = 40,
    win_length: float = 0.02,
    hop_length: float = 0.01,
    nfft: int = 1024,
    preemph: float = 0.97,
    low_freq: float = 0.0,
    high_freq: Optional[float] = None,
) -> torch.Tensor:
    """Model input spectrogram of a ``[-1, 1]`` waveform.

    Args:
        wave: float tensor ``(..., N)`` in ``[-1, 1]`` (scaled by 32768 internally, the int16 convention of the
            reference features).
        other arguments: see :func:`log_mel_filterbank`.

    Returns:
        float32 ``(..., 1, F, T)``; e.g. ``1 x 40 x 99`` for one second at 24 kHz with the defaults.
    """
    wave = torch.as_tensor(wave)
    if not wave.is_floating_point():
        wave = wave.to(torch.float32)
    feats = log_mel_filterbank(wave * 32768.0, sample_rate, num_filters=num_filters, win_length=win_length,
                               hop_length=hop_length, nfft=nfft, preemph=preemph, low_freq=low_freq,
                               high_freq=high_freq)
    return feats.transpose(-1, -2).unsqueeze(-3).to(torch.float32).contiguous()


def volume_jitter(wave: torch.Tensor, strength: float, rng: random.Random) -> torch.Tensor:
    """Multiply a waveform by a gain drawn from ``U(1 - strength, 1 + strength)`` (``strength <= 0``: unchanged)."""
    if strength <= 0:
        return wave
    return wave * rng.uniform(1.0 - strength, 1.0 + strength)


def z_normalize(spec: torch.Tensor, mean: float = 1.93, std: float = 17.89) -> torch.Tensor:
    """Fixed z-normalisation ``(spec - mean) / std``."""
    return (spec - mean) / std


def spec_augment(
    spec: torch.Tensor,
    policy: Union[str, Sequence[int]],
    rng: Union[random.Random, torch.Generator],
) -> torch.Tensor:
    """SpecAugment frequency and time masks (no time warping) on a ``1 x F x T`` (or ``F x T``) spectrogram.

    ``policy`` is a name of :data:`SPEC_AUGMENT_POLICIES` or ``[n_freq_masks, n_time_masks, F, T]``.  For each
    frequency mask a width ``f = int(U(0, F))`` and a start ``randint(0, n_freq - f)`` (inclusive) are drawn and those
    rows are set to 0; then the time masks likewise over the time axis.  Returns a new tensor; ``spec`` is not
    modified.

    Args:
        rng: a ``random.Random`` or a ``torch.Generator`` (the only source of randomness).
    """
    if isinstance(policy, str):
        key = policy.lower()
        if key not in SPEC_AUGMENT_POLICIES:
            raise ValueError(f"unknown SpecAugment policy {policy!r}; expected one of {sorted(SPEC_AUGMENT_POLICIES)}")
        policy = SPEC_AUGMENT_POLICIES[key]
    n_freq_masks, n_time_masks, max_f, max_t = (int(v) for v in policy)
    if n_freq_masks == 0 and n_time_masks == 0:
        return spec
    uniform, randint = _rng_functions(rng)
    out = spec.clone()
    num_freq, num_time = out.shape[-2], out.shape[-1]
    for _ in range(n_freq_masks):
        width = min(int(uniform(0.0, max_f)), num_freq)
        start = randint(0, num_freq - width)
        out[..., start : start + width, :] = 0
    for _ in range(n_time_masks):
        width = min(int(uniform(0.0, max_t)), num_time)
        start = randint(0, num_time - width)
        out[..., :, start : start + width] = 0
    return out


def _rng_functions(rng):
    """``(uniform(a, b), randint(a, b) inclusive)`` drawing from a ``random.Random`` or a ``torch.Generator``."""
    if isinstance(rng, torch.Generator):

        def uniform(a, b):
            return a + (b - a) * float(torch.rand((), generator=rng))

        def randint(a, b):
            return int(torch.randint(a, b + 1, (), generator=rng))

        return uniform, randint
    if rng is None:
        raise ValueError("an explicit random.Random or torch.Generator is required")
    return rng.uniform, rng.randint
