"""Embedded synthetic audio-visual dataset.

Every clip shows one moving object that makes a sound each time it hits a wall, plus static silent distractors,
and comes with the matching soundtrack.  The dataset is small, fully reproducible from integer seeds, and built so
that the self-supervised signals used by GDT / STiCA (audio-visual correspondence, synchronisation, time direction)
are all learnable:

Classes (10): 5 shapes x 2 motion regimes, ``label = shape_index * 2 + regime_index``::

    0 circle_gravity    1 circle_billiard    2 square_gravity   3 square_billiard   4 triangle_gravity
    5 triangle_billiard 6 diamond_gravity    7 diamond_billiard 8 cross_gravity     9 cross_billiard

* Shape -> pitch: fundamental 262 / 330 / 392 / 523 / 659 Hz for circle / square / triangle / diamond / cross, scaled
  by ``REFERENCE_RADIUS / radius`` within a clip (bigger objects sound lower; the object size is drawn per clip in
  ``[8, 14]`` px at 112 px and scales with the frame size).  Neighbouring shapes therefore overlap in pitch: pitch
  alone identifies a shape only together with the object size.
* Regime -> motion and timbre.  ``gravity``: the object falls and bounces on the floor (restitution 0.75-0.85, side
  walls 0.9); when bounces get small it receives a "kick" at a floor contact that relaunches it (audible); sound is a
  near-harmonic "wood knock" (partials 1, 2.01, 3.03, 4.08, short decay) plus a noise burst.  ``billiard``: no
  gravity, exponential friction (0.5-0.9 1/s) and cushions (restitution 0.85-0.95); when the object has slowed down
  it receives a kick in a new direction (audible); sound is an inharmonic "metal ping" (partials 1, 2.76, 5.40, long
  decay, 0.2-0.35 s) with a short click.
* Every sounding event (wall/floor/ceiling impact or kick) is a visible velocity change and an audio onset at the
  same, sample-accurate time (the physics is event based: collision times are solved analytically).  Onset loudness
  is proportional to the normal impulse divided by ``1 + restitution``, i.e. to the normal impact speed for passive
  collisions.  Dissipation plus percussive envelopes (instant attack, exponential decay) make time reversal
  detectable.  There are 1-4 onsets per second on average.
* Nuisances: random object hue, random 2-colour gradient background with a per-clip noise texture, 0-2 static
  silent distractor shapes of random shapes and hues, random start position / velocity, background hiss at a random
  SNR.

Everything random is drawn from ``numpy.random.default_rng(seed)``; no global random state is used.

On disk (:func:`build_synthetic_dataset`) a dataset is a folder::

    <root>/<name>/videos/{train,val,test}_00000.mp4   H.264 + AAC mono mp4 files
    <root>/<name>/{train,val,test}.csv                 "videos/train_00000.mp4 <label>" per line, no header
    <root>/<name>/classes.txt                          one class name per line, line i = label i
    <root>/<name>/manifest.json                        generation parameters and per-video (file, label, seed)

``<name>`` is a short hash of the generation parameters.  CSV paths are relative to the folder that holds the CSV
files (use that folder as the path prefix, e.g. ``DATA.PATH_PREFIX``).
"""

import hashlib
import json
import logging
import math
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Dict, List, Optional

import numpy as np

from ..utils.processes import map_in_processes

logger = logging.getLogger(__name__)

SHAPES = ("circle", "square", "triangle", "diamond", "cross")
REGIMES = ("gravity", "billiard")
CLASS_NAMES = [f"{shape}_{regime}" for shape in SHAPES for regime in REGIMES]
NUM_CLASSES = len(CLASS_NAMES)

# Fundamental frequency of each shape (Hz) for an object of REFERENCE_RADIUS pixels at 112 px frames.
SHAPE_F0 = (262.0, 330.0, 392.0, 523.0, 659.0)
REFERENCE_SIZE = 112
REFERENCE_RADIUS = 11.0
RADIUS_RANGE = (8.0, 14.0)

# Bumped whenever the generator output changes, so cached datasets are rebuilt.
GENERATOR_VERSION = 1

# Encoding settings of write_av_file (also recorded in the manifest).
VIDEO_CODEC = "libx264"
VIDEO_CRF = 23
VIDEO_PRESET = "veryfast"
AUDIO_CODEC = "aac"

_SPLITS = ("train", "val", "test")


def label_to_shape_regime(label: int):
    """``label -> (shape_index, regime_index)`` with ``label = shape_index * 2 + regime_index``."""
    if not 0 <= int(label) < NUM_CLASSES:
        raise ValueError(f"label must be in [0, {NUM_CLASSES}), got {label}")
    return int(label) // len(REGIMES), int(label) % len(REGIMES)


@dataclass
class SynthClip:
    """One generated clip.

    Attributes:
        frames: ``T x H x W x 3`` uint8 RGB frames, frame ``k`` shows time ``k / fps``.
        audio: float32 mono waveform in ``[-1, 1]`` of ``round(duration * sample_rate)`` samples.
        impact_times: time (s) of every sounding event (impacts and kicks), sorted.
        label: class index (see ``CLASS_NAMES``).
        fps: frame rate.
        sample_rate: audio sample rate.
        meta: JSON-serialisable generation details (shape, regime, radius, f0, ...).
        positions: ``T x 2`` float array, (x, y) pixel position of the moving object's centre in every frame.
    """

    frames: np.ndarray
    audio: np.ndarray
    impact_times: List[float]
    label: int
    fps: int
    sample_rate: int
    meta: Dict = field(default_factory=dict)
    positions: Optional[np.ndarray] = None


# ---------------------------------------------------------------------------------------------------------------
# Physics (event based: piecewise analytic trajectories, collision times solved in closed form)
# ---------------------------------------------------------------------------------------------------------------

_EPS_T = 1e-9


def _shape_extent(shape: str, radius: float):
    """Half extents (x, y) of a shape's bounding box; the object touches a wall when its box does."""
    if shape == "circle":
        return radius, radius
    if shape == "square":
        return 0.9 * radius, 0.9 * radius
    if shape == "diamond":
        return 1.15 * radius, 1.15 * radius
    if shape == "cross":
        return 1.1 * radius, 1.1 * radius
    if shape == "triangle":
        half_h = 1.0 * radius
        return half_h * 2.0 / math.sqrt(3.0), half_h
    raise ValueError(f"unknown shape {shape}")


def _sdf(shape: str, radius: float, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Approximate signed distance (pixels, negative inside) of a shape centred at the origin."""
    if shape == "circle":
        return np.sqrt(dx * dx + dy * dy) - radius
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) - 0.9 * radius
    if shape == "diamond":
        return (np.abs(dx) + np.abs(dy) - 1.15 * radius) / math.sqrt(2.0)
    if shape == "cross":
        arm, half_w = 1.1 * radius, 0.38 * radius
        ax, ay = np.abs(dx), np.abs(dy)
        return np.minimum(np.maximum(ax - arm, ay - half_w), np.maximum(ax - half_w, ay - arm))
    if shape == "triangle":
        # Equilateral, apex up (image y axis points down), centred on its bounding box.
        half_w, half_h = _shape_extent("triangle", radius)
        norm = math.hypot(2.0 * half_h, half_w)
        right = (2.0 * half_h * dx - half_w * (dy + half_h)) / norm
        left = (-2.0 * half_h * dx - half_w * (dy + half_h)) / norm
        return np.maximum(np.maximum(right, left), dy - half_h)
    raise ValueError(f"unknown shape {shape}")


def _first_hit_linear(pos, vel, lo, hi):
    """Time for ``pos + vel * t`` to reach ``lo`` or ``hi`` (inf if never); returns (t, side) side -1 = lo, +1 = hi."""
    if vel > 0:
        return max((hi - pos) / vel, 0.0), 1
    if vel < 0:
        return max((lo - pos) / vel, 0.0), -1
    return math.inf, 0


def _simulate_gravity(rng, size, ext_x, ext_y, duration):
    """Bouncing under gravity.  Returns (segments, events); a segment is (t0, x0, y0, vx, vy)."""
    scale = size / REFERENCE_SIZE
    g = 800.0 * scale
    x_lo, x_hi = ext_x, size - ext_x
    y_lo, y_hi = ext_y, size - ext_y
    room = y_hi - y_lo
    restitution = float(rng.uniform(0.75, 0.85))
    wall_restitution = 0.9
    # Kick when the next bounce would rise less than 20% of the room; relaunch to 55-95% of it.
    v_kick = math.sqrt(2.0 * g * 0.2 * room)
    v_ref = math.sqrt(2.0 * g * room)

    def kick_speed():
        return math.sqrt(2.0 * g * room * rng.uniform(0.55, 0.95))

    def side_speed():
        return float(rng.uniform(30.0, 110.0)) * scale

    x = float(rng.uniform(x_lo, x_hi))
    y = float(rng.uniform(y_lo, y_lo + 0.6 * room))
    vx = side_speed() * float(rng.choice([-1.0, 1.0]))
    vy = float(rng.uniform(-0.5, 0.5)) * v_ref
    if vy < 0:  # keep the first apex inside the room
        vy = -min(-vy, math.sqrt(2.0 * g * max(y - y_lo, 0.0)) * 0.95)

    t = 0.0
    segments = []
    events = []  # (time, loudness, kind)
    max_events = int(duration * 200) + 100
    while t < duration and len(events) < max_events:
        segments.append((t, x, y, vx, vy))
        # Floor: y + vy s + g s^2 / 2 = y_hi.
        disc = vy * vy + 2.0 * g * (y_hi - y)
        t_floor = (-vy + math.sqrt(max(disc, 0.0))) / g
        # Ceiling: only reached when moving up fast enough.
        t_ceil = math.inf
        if vy < 0:
            disc_c = vy * vy - 2.0 * g * (y - y_lo)
            if disc_c > 0:
                t_ceil = (-vy - math.sqrt(disc_c)) / g
                if t_ceil <= _EPS_T:
                    t_ceil = math.inf
        t_wall, side = _first_hit_linear(x, vx, x_lo, x_hi)
        if t_floor <= _EPS_T:
            t_floor = math.inf if vy < 0 else t_floor
        dt = min(t_floor, t_ceil, t_wall)
        if not math.isfinite(dt):
            break
        # Advance.
        x = x + vx * dt
        y = y + vy * dt + 0.5 * g * dt * dt
        vy = vy + g * dt
        t = t + dt
        if dt == t_wall:
            x = x_hi if side > 0 else x_lo
            events.append((t, abs(vx) / v_ref, "wall"))
            vx = -wall_restitution * vx
            if abs(vx) < 0.5 * side_speed():
                vx = math.copysign(side_speed(), vx)
        elif dt == t_ceil:
            y = y_lo
            events.append((t, abs(vy) / v_ref, "ceiling"))
            vy = -restitution * vy
        else:
            y = y_hi
            v_in = vy
            v_out = restitution * v_in
            if v_out < v_kick:
                v_out = kick_speed()
                events.append((t, (v_in + v_out) / (1.0 + restitution) / v_ref, "kick"))
            else:
                events.append((t, v_in / v_ref, "floor"))
            vy = -v_out
        x = min(max(x, x_lo), x_hi)
        y = min(max(y, y_lo), y_hi)
    params = {"gravity": g, "restitution": restitution, "wall_restitution": wall_restitution}
    return segments, events, params


def _simulate_billiard(rng, size, ext_x, ext_y, duration):
    """Sliding with exponential friction: v(t) = v0 exp(-mu t).  Returns (segments, events, params)."""
    scale = size / REFERENCE_SIZE
    x_lo, x_hi = ext_x, size - ext_x
    y_lo, y_hi = ext_y, size - ext_y
    friction = float(rng.uniform(0.5, 0.9))
    restitution = float(rng.uniform(0.85, 0.95))
    v_min = 70.0 * scale
    v_ref = 300.0 * scale

    def launch():
        speed = float(rng.uniform(170.0, 290.0)) * scale
        # Diagonal-ish directions so that both pairs of walls are hit.
        angle = float(rng.uniform(math.radians(20), math.radians(70))) + 0.5 * math.pi * int(rng.integers(4))
        return speed * math.cos(angle), speed * math.sin(angle)

    x = float(rng.uniform(x_lo, x_hi))
    y = float(rng.uniform(y_lo, y_hi))
    vx, vy = launch()

    t = 0.0
    segments = []
    events = []
    max_events = int(duration * 200) + 100
    while t < duration and len(events) < max_events:
        segments.append((t, x, y, vx, vy))
        speed = math.hypot(vx, vy)
        # Distance travelled along each axis is v * s with s = (1 - exp(-mu t)) / mu < 1 / mu.
        s_x, side_x = _first_hit_linear(x, vx, x_lo, x_hi)
        s_y, side_y = _first_hit_linear(y, vy, y_lo, y_hi)
        s_hit = min(s_x, s_y)
        t_hit = -math.log(1.0 - friction * s_hit) / friction if friction * s_hit < 1.0 else math.inf
        t_kick = math.log(speed / v_min) / friction if speed > v_min else 0.0
        dt = max(min(t_hit, t_kick), 0.0)
        s = (1.0 - math.exp(-friction * dt)) / friction
        decay = math.exp(-friction * dt)
        x, y = x + vx * s, y + vy * s
        vx, vy = vx * decay, vy * decay
        t = t + dt
        if t_kick < t_hit:
            new_vx, new_vy = launch()
            # Never launch into a wall the object is touching.
            if (x >= x_hi and new_vx > 0) or (x <= x_lo and new_vx < 0):
                new_vx = -new_vx
            if (y >= y_hi and new_vy > 0) or (y <= y_lo and new_vy < 0):
                new_vy = -new_vy
            dv = math.hypot(new_vx - vx, new_vy - vy)
            loudness = dv / (1.0 + restitution) / v_ref
            if events and t - events[-1][0] <= _EPS_T:
                # The wall hit just before slowed the object below the kick speed: one event, not two.
                loudness = max(loudness, events.pop()[1])
            events.append((t, loudness, "kick"))
            vx, vy = new_vx, new_vy
        else:
            if s_hit == s_x:
                x = x_hi if side_x > 0 else x_lo
                v_n = abs(vx)
                vx = -restitution * vx
                if s_y - s_x <= 1e-9:  # corner: both walls at once
                    y = y_hi if side_y > 0 else y_lo
                    v_n = math.hypot(v_n, vy)
                    vy = -restitution * vy
            else:
                y = y_hi if side_y > 0 else y_lo
                v_n = abs(vy)
                vy = -restitution * vy
            events.append((t, v_n / v_ref, "wall"))
        x = min(max(x, x_lo), x_hi)
        y = min(max(y, y_lo), y_hi)
    params = {"friction": friction, "restitution": restitution}
    return segments, events, params


def _positions_at(segments, regime, params, times):
    """Object centre ``len(times) x 2`` evaluated on the piecewise analytic trajectory."""
    seg = np.asarray(segments, dtype=np.float64)
    idx = np.clip(np.searchsorted(seg[:, 0], times, side="right") - 1, 0, len(seg) - 1)
    t0, x0, y0, vx, vy = (seg[idx, k] for k in range(5))
    dt = times - t0
    if regime == "gravity":
        x = x0 + vx * dt
        y = y0 + vy * dt + 0.5 * params["gravity"] * dt * dt
    else:
        mu = params["friction"]
        s = (1.0 - np.exp(-mu * dt)) / mu
        x = x0 + vx * s
        y = y0 + vy * s
    return np.stack([x, y], axis=1)


# ---------------------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------------------


def _hsv_to_rgb(h, s, v):
    """Scalar HSV (all in [0, 1]) to an RGB float array in [0, 1]."""
    i = int(h * 6.0) % 6
    f = h * 6.0 - math.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i], dtype=np.float32)


def _background(rng, size):
    """``size x size x 3`` float32 background: 2-colour linear gradient plus a smooth noise texture."""
    c1 = _hsv_to_rgb(rng.uniform(), rng.uniform(0.2, 0.7), rng.uniform(0.2, 0.6))
    c2 = _hsv_to_rgb(rng.uniform(), rng.uniform(0.2, 0.7), rng.uniform(0.2, 0.6))
    angle = rng.uniform(0.0, 2.0 * math.pi)
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    ramp = np.clip(xx * math.cos(angle) + yy * math.sin(angle) + 0.5, 0.0, 1.0)[..., None]
    image = c1 * (1.0 - ramp) + c2 * ramp
    # Smooth texture: a coarse random grid, bilinearly upsampled, plus a little fine grain.
    cells = max(size // 8, 2)
    coarse = rng.normal(0.0, 1.0, (cells + 1, cells + 1)).astype(np.float32)
    pos = np.linspace(0.0, cells, size, dtype=np.float32)
    i0 = np.minimum(pos.astype(np.int64), cells - 1)
    w = (pos - i0)[:, None]
    rows = coarse[i0] * (1.0 - w) + coarse[i0 + 1] * w  # size x (cells + 1)
    texture = rows[:, i0] * (1.0 - w.T) + rows[:, i0 + 1] * w.T
    amplitude = rng.uniform(0.03, 0.07)
    grain = rng.normal(0.0, 0.012, (size, size)).astype(np.float32)
    image = image + (amplitude * texture + grain)[..., None]
    return np.clip(image, 0.0, 1.0)


def _object_colour(rng):
    return _hsv_to_rgb(rng.uniform(), rng.uniform(0.6, 1.0), rng.uniform(0.8, 1.0))


def _paint_static(image, shape, radius, cx, cy, colour):
    """Alpha-blend a shape into a float ``H x W x 3`` image in place."""
    size = image.shape[0]
    coords = np.arange(size, dtype=np.float32) + 0.5
    alpha = np.clip(0.5 - _sdf(shape, radius, coords[None, :] - cx, coords[:, None] - cy), 0.0, 1.0)[..., None]
    image *= 1.0 - alpha
    image += alpha * colour


def _render_frames(background_u8, shape, radius, colour, positions):
    """Draw the moving object on every frame.  Returns ``T x H x W x 3`` uint8."""
    num_frames = positions.shape[0]
    size = background_u8.shape[0]
    half = int(math.ceil(1.2 * radius)) + 2
    patch = 2 * half + 1
    pad = half + 1
    canvas = np.empty((num_frames, size + 2 * pad, size + 2 * pad, 3), dtype=np.uint8)
    canvas[:] = np.pad(background_u8, ((pad, pad), (pad, pad), (0, 0)), mode="edge")[None]
    # Patch corners (in canvas coordinates) and the object centre relative to each patch: vectorised over frames.
    corner = np.floor(positions).astype(np.int64) - half + pad  # T x 2 (x, y)
    offsets = np.arange(patch, dtype=np.float32) + 0.5
    dx = offsets[None, None, :] + (corner[:, 0] - pad - positions[:, 0])[:, None, None].astype(np.float32)
    dy = offsets[None, :, None] + (corner[:, 1] - pad - positions[:, 1])[:, None, None].astype(np.float32)
    alpha = np.clip(0.5 - _sdf(shape, radius, dx, dy), 0.0, 1.0)[..., None]  # T x P x P x 1
    paint = alpha * (colour * 255.0)
    keep = 1.0 - alpha
    for t in range(num_frames):
        x0, y0 = corner[t]
        region = canvas[t, y0 : y0 + patch, x0 : x0 + patch]
        region[:] = np.clip(region * keep[t] + paint[t] + 0.5, 0, 255).astype(np.uint8)
    return canvas[:, pad : pad + size, pad : pad + size]


# ---------------------------------------------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------------------------------------------


def _impact_template(regime, f0, sample_rate, num_samples, decay):
    """Tonal part of one impact sound at unit loudness (float64), instant attack and exponential decay."""
    if regime == "gravity":
        ratios, amps = (1.0, 2.01, 3.03, 4.08), (1.0, 0.5, 0.28, 0.15)
    else:
        ratios, amps = (1.0, 2.76, 5.40), (1.0, 0.55, 0.35)
    length = min(num_samples, int(math.ceil(6.0 * decay * sample_rate)))
    t = np.arange(length, dtype=np.float64) / sample_rate
    wave = np.zeros(length, dtype=np.float64)
    nyquist = 0.5 * sample_rate
    for ratio, amp in zip(ratios, amps):
        freq = f0 * ratio
        if freq >= 0.95 * nyquist:
            continue
        wave += amp * np.sin(2.0 * math.pi * freq * t) * np.exp(-t * math.sqrt(ratio) / decay)
    # Short fade at the template end so truncation does not click.
    fade = min(length, int(0.01 * sample_rate))
    if fade > 1:
        wave[-fade:] *= np.linspace(1.0, 0.0, fade)
    return wave / sum(amps)


def _synthesize_audio(rng, regime, f0, events, duration, sample_rate):
    """Mono float32 soundtrack: one percussive sound per event plus background hiss."""
    num_samples = int(round(duration * sample_rate))
    out = np.zeros(num_samples, dtype=np.float64)
    if regime == "gravity":
        decay = float(rng.uniform(0.04, 0.07))
        burst_level, burst_decay = 0.6, 0.006
    else:
        decay = float(rng.uniform(0.2, 0.35))
        burst_level, burst_decay = 0.4, 0.002
    template = _impact_template(regime, f0, sample_rate, num_samples, decay)
    burst_len = int(math.ceil(6.0 * burst_decay * sample_rate))
    burst_env = burst_level * np.exp(-np.arange(burst_len) / (burst_decay * sample_rate))
    gain = 0.5
    onsets = []
    for time_s, loudness, _ in events:
        start = int(round(time_s * sample_rate))
        if start >= num_samples:
            continue
        onsets.append(start)
        amp = gain * loudness
        stop = min(num_samples, start + template.shape[0])
        out[start:stop] += amp * template[: stop - start]
        stop_b = min(num_samples, start + burst_len)
        out[start:stop_b] += amp * burst_env[: stop_b - start] * rng.uniform(-1.0, 1.0, stop_b - start)
    signal_rms = float(np.sqrt(np.mean(out**2))) if onsets else 0.01
    snr_db = float(rng.uniform(15.0, 35.0))
    hiss_rms = max(signal_rms, 1e-3) * 10.0 ** (-snr_db / 20.0)
    out += rng.normal(0.0, hiss_rms, num_samples)
    peak = float(np.max(np.abs(out))) if num_samples else 0.0
    if peak > 0.99:  # rare pile-ups of long billiard rings: scale the clip down rather than clip it
        out *= 0.99 / peak
    return out.astype(np.float32), {"snr_db": snr_db, "decay": decay}


# ---------------------------------------------------------------------------------------------------------------
# Clip generation
# ---------------------------------------------------------------------------------------------------------------


def generate_clip(
    seed: int,
    label: int,
    *,
    size: int = 112,
    duration: float = 3.0,
    fps: int = 30,
    sample_rate: int = 24000,
    object_scale: float = 1.0,
    max_distractors: int = 2,
) -> SynthClip:
    """Generate one clip of class ``label``, deterministically from ``seed``.

    Args:
        seed: non-negative integer; all randomness comes from ``numpy.random.default_rng(seed)`` (the same seed with
            another label gives the same nuisances with another object / motion).
        label: class index in ``[0, 10)``, ``label = shape_index * 2 + regime_index`` (see ``CLASS_NAMES``).
        size: frame height and width in pixels (object sizes and speeds scale with it).
        duration: clip length in seconds.
        fps: frame rate; frame ``k`` shows time ``k / fps``.
        sample_rate: audio sample rate.
        object_scale: multiplies the object radius range (distractors too); the pitch stays in the same range
            (``f0`` scales with ``object_scale / radius``). Values above 1 make the visual task easier.
        max_distractors: static distractors are drawn uniformly in ``0 .. max_distractors``.

    Returns:
        ``SynthClip`` with ``frames`` ``T x size x size x 3`` uint8 (``T = round(duration * fps)``) and ``audio`` of
        ``round(duration * sample_rate)`` float32 samples.
    """
    shape_idx, regime_idx = label_to_shape_regime(label)
    shape, regime = SHAPES[shape_idx], REGIMES[regime_idx]
    rng = np.random.default_rng(int(seed))
    scale = size / REFERENCE_SIZE

    # Appearance first, so that the nuisances depend on the seed only.
    background = _background(rng, size)
    num_distractors = int(rng.integers(0, max_distractors + 1))
    distractors = []
    for _ in range(num_distractors):
        d_shape = SHAPES[int(rng.integers(len(SHAPES)))]
        d_radius = float(rng.uniform(*RADIUS_RANGE)) * scale * object_scale
        d_x, d_y = (float(v) for v in rng.uniform(d_radius, size - d_radius, 2))
        d_colour = _object_colour(rng)
        _paint_static(background, d_shape, d_radius, d_x, d_y, d_colour)
        distractors.append({"shape": d_shape, "radius": d_radius, "x": d_x, "y": d_y})
    background_u8 = (background * 255.0 + 0.5).astype(np.uint8)
    colour = _object_colour(rng)
    radius = float(rng.uniform(*RADIUS_RANGE)) * scale * object_scale

    # Motion.
    ext_x, ext_y = _shape_extent(shape, radius)
    simulate = _simulate_gravity if regime == "gravity" else _simulate_billiard
    segments, events, physics = simulate(rng, size, ext_x, ext_y, duration)
    events = [e for e in events if e[0] < duration]
    num_frames = int(round(duration * fps))
    frame_times = np.arange(num_frames, dtype=np.float64) / fps
    positions = _positions_at(segments, regime, physics, frame_times)
    frames = _render_frames(background_u8, shape, radius, colour, positions)

    # Sound.
    f0 = SHAPE_F0[shape_idx] * REFERENCE_RADIUS * scale * object_scale / radius
    audio, audio_meta = _synthesize_audio(rng, regime, f0, events, duration, sample_rate)

    meta = {
        "seed": int(seed),
        "shape": shape,
        "regime": regime,
        "class_name": CLASS_NAMES[label],
        "radius": radius,
        "f0": f0,
        "colour": [float(c) for c in colour],
        "distractors": distractors,
        "impact_kinds": [e[2] for e in events],
        "impact_loudness": [float(e[1]) for e in events],
        "num_impacts": len(events),
        **{k: float(v) for k, v in physics.items()},
        **audio_meta,
    }
    return SynthClip(
        frames=np.ascontiguousarray(frames),
        audio=audio,
        impact_times=[float(e[0]) for e in events],
        label=int(label),
        fps=int(fps),
        sample_rate=int(sample_rate),
        meta=meta,
        positions=positions,
    )


# ---------------------------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------------------------


def write_av_file(path, frames, audio, fps, sample_rate) -> None:
    """Write an mp4 with H.264 video (crf 23, preset veryfast, one keyframe per second, yuv420p) and AAC mono audio.

    Args:
        path: output file (``.mp4``).
        frames: ``T x H x W x 3`` uint8 RGB array (H and W must be even).
        audio: 1-D float waveform in ``[-1, 1]``, or ``None`` for a video-only file.
        fps: integer frame rate.
        sample_rate: audio sample rate (ignored when ``audio`` is None).
    """
    import av  # local import: only needed when writing files

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be a T x H x W x 3 uint8 array, got {frames.shape} {frames.dtype}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"yuv420p needs even frame sizes, got {width}x{height}")
    fps = int(fps)
    with av.open(str(path), mode="w", format="mp4") as container:
        vstream = container.add_stream(VIDEO_CODEC, rate=fps)
        vstream.width = width
        vstream.height = height
        vstream.pix_fmt = "yuv420p"
        vstream.options = {"crf": str(VIDEO_CRF), "preset": VIDEO_PRESET, "g": str(fps)}
        astream = None
        if audio is not None:
            astream = container.add_stream(AUDIO_CODEC, rate=int(sample_rate))
            astream.layout = "mono"
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            for packet in vstream.encode(frame):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
        if astream is not None:
            wave = np.clip(np.asarray(audio, dtype=np.float32).reshape(-1), -1.0, 1.0)
            chunk = 1024
            for start in range(0, wave.shape[0], chunk):
                piece = np.ascontiguousarray(wave[None, start : start + chunk])
                frame = av.AudioFrame.from_ndarray(piece, format="fltp", layout="mono")
                frame.sample_rate = int(sample_rate)
                frame.pts = start
                frame.time_base = Fraction(1, int(sample_rate))
                for packet in astream.encode(frame):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)


# ---------------------------------------------------------------------------------------------------------------
# Dataset on disk
# ---------------------------------------------------------------------------------------------------------------


def default_cache_dir() -> str:
    """``$STICA_EXT_CACHE/synthetic_av`` or ``~/.cache/stica_ext/synthetic_av``."""
    base = os.environ.get("STICA_EXT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "stica_ext")
    return os.path.join(base, "synthetic_av")


def video_seed(seed: int, split: str, index: int) -> int:
    """Per-video generator seed derived from the dataset seed, the split and the video index."""
    state = np.random.SeedSequence([int(seed), _SPLITS.index(split), int(index)]).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def split_labels(seed: int, split: str, count: int) -> List[int]:
    """Balanced labels for a split: ``arange(count) % 10`` in a seeded random order."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _SPLITS.index(split), 0x5EED]))
    return [int(v) for v in rng.permutation(np.arange(count) % NUM_CLASSES)]


def _dataset_params(num_train, num_val, num_test, seed, size, duration, fps, sample_rate, object_scale=1.0,
                    max_distractors=2):
    params = {
        "generator_version": GENERATOR_VERSION,
        "num_train": int(num_train),
        "num_val": int(num_val),
        "num_test": int(num_test),
        "seed": int(seed),
        "size": int(size),
        "duration": float(duration),
        "fps": int(fps),
        "sample_rate": int(sample_rate),
        "video": {
            "codec": VIDEO_CODEC, "crf": VIDEO_CRF, "preset": VIDEO_PRESET, "gop": int(fps), "pix_fmt": "yuv420p"
        },
        "audio": {"codec": AUDIO_CODEC, "layout": "mono"},
    }
    # only non-default difficulty settings enter the parameter set, so existing dataset folders keep their names
    if float(object_scale) != 1.0:
        params["object_scale"] = float(object_scale)
    if int(max_distractors) != 2:
        params["max_distractors"] = int(max_distractors)
    return params


def dataset_name(params: Dict) -> str:
    """Stable folder name of a parameter set: ``synth_<10 hex digits of sha1>``."""
    digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode("utf-8")).hexdigest()
    return f"synth_{digest[:10]}"


def _is_complete(folder: str, params: Dict) -> bool:
    manifest = os.path.join(folder, "manifest.json")
    try:
        with open(manifest, "r") as f:
            stored = json.load(f)
    except (OSError, ValueError):
        return False
    return stored.get("params") == params


def _make_video(job):
    """Worker: generate and encode one video.  ``job = (path, seed, label, size, duration, fps, sample_rate,
    object_scale, max_distractors)``."""
    path, seed, label, size, duration, fps, sample_rate, object_scale, max_distractors = job
    clip = generate_clip(seed, label, size=size, duration=duration, fps=fps, sample_rate=sample_rate,
                         object_scale=object_scale, max_distractors=max_distractors)
    write_av_file(path, clip.frames, clip.audio, fps, sample_rate)
    return len(clip.impact_times)


def build_synthetic_dataset(
    root,
    *,
    num_train: int,
    num_val: int,
    num_test: int,
    seed: int = 0,
    size: int = 112,
    duration: float = 3.0,
    fps: int = 30,
    sample_rate: int = 24000,
    num_workers: int = 2,
    progress: bool = True,
    object_scale: float = 1.0,
    max_distractors: int = 2,
) -> str:
    """Generate (once) a synthetic dataset and return its folder ``<root>/synth_<hash>``.

    The folder holds ``videos/*.mp4``, PySlowFast CSVs ``train.csv`` / ``val.csv`` / ``test.csv`` (no header,
    ``"videos/<split>_<index:05d>.mp4 <label>"`` per line, paths relative to the folder), ``classes.txt`` and
    ``manifest.json``.  The folder name is a hash of all parameters, so other parameters never reuse stale data.
    When the folder exists with a matching manifest the function returns at once.  Generation happens in a temporary
    sibling folder that is renamed into place at the end; if another process finished first, its copy is kept.

    Args:
        root: parent folder (``None`` = :func:`default_cache_dir`).
        num_train, num_val, num_test: videos per split; labels are balanced (``index % 10`` in shuffled order).
        seed: dataset seed; per-video seeds derive from ``(seed, split, index)`` (:func:`video_seed`).
        size, duration, fps, sample_rate, object_scale, max_distractors: clip parameters (see
            :func:`generate_clip`).
        num_workers: worker processes (``<= 1``: generate in this process).  Workers use the "spawn" start method.
        progress: log a line every ~10% of the videos (to stderr).
    """
    root = os.path.abspath(os.path.expanduser(str(root if root is not None else default_cache_dir())))
    params = _dataset_params(num_train, num_val, num_test, seed, size, duration, fps, sample_rate, object_scale,
                             max_distractors)
    name = dataset_name(params)
    final = os.path.join(root, name)
    if _is_complete(final, params):
        return final
    os.makedirs(root, exist_ok=True)
    tmp = os.path.join(root, f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.makedirs(os.path.join(tmp, "videos"))
    try:
        entries = {}
        jobs = []
        for split, count in zip(_SPLITS, (num_train, num_val, num_test)):
            labels = split_labels(seed, split, count)
            entries[split] = []
            for index, label in enumerate(labels):
                rel = f"videos/{split}_{index:05d}.mp4"
                s = video_seed(seed, split, index)
                entries[split].append([rel, label, s])
                jobs.append((os.path.join(tmp, rel), s, label, size, duration, fps, sample_rate, float(object_scale),
                             int(max_distractors)))
        _run_jobs(jobs, num_workers, progress, name)
        for split in _SPLITS:
            with open(os.path.join(tmp, f"{split}.csv"), "w") as f:
                for rel, label, _ in entries[split]:
                    f.write(f"{rel} {label}\n")
        with open(os.path.join(tmp, "classes.txt"), "w") as f:
            f.write("\n".join(CLASS_NAMES) + "\n")
        manifest = {
            "params": params,
            "classes": CLASS_NAMES,
            "label_rule": "label = shape_index * 2 + regime_index",
            "csv_paths": "relative to this folder",
            "videos": entries,
        }
        with open(os.path.join(tmp, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=1)
        _move_into_place(tmp, final, params)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _move_into_place(tmp: str, final: str, params: Dict) -> None:
    """Atomically rename ``tmp`` to ``final``; a complete ``final`` made by another process wins."""
    for _ in range(3):
        try:
            os.rename(tmp, final)
            return
        except OSError:
            if _is_complete(final, params):
                return  # another process won the race; the caller deletes tmp
            if os.path.isdir(final):
                # Incomplete or foreign folder under our name: move it aside and retry.
                stale = f"{final}.stale-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                try:
                    os.rename(final, stale)
                    shutil.rmtree(stale, ignore_errors=True)
                except OSError:
                    pass
            else:
                raise
    raise OSError(f"could not move {tmp} to {final}")


def _run_jobs(jobs, num_workers: int, progress: bool, name: str) -> None:
    total = len(jobs)
    step = max(1, int(math.ceil(total / 10)))
    started = time.time()
    done = 0

    def report():
        if progress and (done % step == 0 or done == total):
            msg = f"[synthetic_av {name}] {done}/{total} videos ({time.time() - started:.1f} s)"
            print(msg, file=sys.stderr, flush=True)

    for _ in map_in_processes(_make_video, jobs, num_workers):
        done += 1
        report()


# ---------------------------------------------------------------------------------------------------------------
# UCF101-style layout (for finetuning / retrieval demos and tests)
# ---------------------------------------------------------------------------------------------------------------

UCF_STYLE_DIR = "ucf_style"
UCF_STYLE_VERSION = 1
UCF_NUM_FOLDS = 3


def ucf_class_name(name: str) -> str:
    """UCF101-style CamelCase class name of a synthetic class: ``"circle_gravity" -> "CircleGravity"``."""
    return "".join(part.capitalize() for part in name.split("_"))


def ucf_style_plan(manifest: Dict) -> List[Dict]:
    """Where every video of a synthetic dataset goes in its UCF101-style layout.

    All videos of the ``train``, ``val`` and ``test`` splits are pooled in that order; the ``k``-th video (0-based) of
    a class becomes group ``k + 1``, clip 1 -- ``<Class>/v_<Class>_g{k+1:02d}_c01.mp4`` -- and is a test video of
    fold ``f`` (1..3) when ``k % 3 == f - 1``, a training video of the two other folds. Returns one dict per video
    with ``source`` (path relative to the dataset folder), ``rel`` (path in the class-folder tree), ``label`` (the
    synthetic label), ``class_name`` and ``test_fold``.
    """
    counts: Dict[int, int] = {}
    plan = []
    for split in _SPLITS:
        for source, label, _ in manifest["videos"].get(split, []):
            k = counts.get(int(label), 0)
            counts[int(label)] = k + 1
            cls = ucf_class_name(CLASS_NAMES[int(label)])
            ext = os.path.splitext(source)[1]
            plan.append({"source": source, "rel": f"{cls}/v_{cls}_g{k + 1:02d}_c01{ext}", "label": int(label),
                         "class_name": cls, "test_fold": k % UCF_NUM_FOLDS + 1})
    return plan


def write_ucf_style_splits(folder: str, link: bool = True):
    """Give a dataset folder written by :func:`build_synthetic_dataset` a UCF101-style layout (once).

    Writes ``<folder>/ucf_style/videos/<Class>/v_<Class>_gXX_cYY.mp4`` (relative symbolic links to the mp4 files, or
    copies when ``link`` is False or the file system has no links) and ``<folder>/ucf_style/splits/`` with
    ``classInd.txt`` (``"<1-based index> <Class>"``, classes in sorted order), ``trainlist0{1,2,3}.txt``
    (``"<Class>/<video> <1-based index>"``) and ``testlist0{1,2,3}.txt`` (``"<Class>/<video>"``), all with CRLF line
    endings like the official files. Folds follow :func:`ucf_style_plan`. The tree is built in a temporary folder
    and renamed into place; an existing complete tree is reused.

    Returns:
        ``(video_root, split_dir)``: the values for ``DATA.PATH_TO_DATA_DIR`` and ``DATA.ANNOTATION_DIR``.
    """
    folder = os.path.abspath(os.path.expanduser(str(folder)))
    final = os.path.join(folder, UCF_STYLE_DIR)
    result = (os.path.join(final, "videos"), os.path.join(final, "splits"))
    marker = {"ucf_style_version": UCF_STYLE_VERSION}
    try:
        with open(os.path.join(final, "done.json")) as f:
            if json.load(f) == marker:
                return result
    except (OSError, ValueError):
        pass
    try:
        with open(os.path.join(folder, "manifest.json")) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(f"{folder} is not a synthetic dataset folder (no readable manifest.json): {e}") from e
    plan = ucf_style_plan(manifest)
    tmp = os.path.join(folder, f".{UCF_STYLE_DIR}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        videos, splits = os.path.join(tmp, "videos"), os.path.join(tmp, "splits")
        os.makedirs(splits)
        for item in plan:
            dst = os.path.join(videos, *item["rel"].split("/"))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            src = os.path.join(folder, item["source"])
            # the link is relative to its own folder, which ends up at <folder>/ucf_style/videos/<Class>/
            rel_src = os.path.relpath(src, os.path.join(final, "videos", item["class_name"]))
            try:
                if not link:
                    raise OSError("copy requested")
                os.symlink(rel_src, dst)
            except (OSError, NotImplementedError):
                shutil.copyfile(src, dst)
        classes = sorted({item["class_name"] for item in plan})
        index = {c: i + 1 for i, c in enumerate(classes)}
        with open(os.path.join(splits, "classInd.txt"), "w", newline="") as f:
            f.write("".join(f"{index[c]} {c}\r\n" for c in classes))
        for fold in range(1, UCF_NUM_FOLDS + 1):
            with open(os.path.join(splits, f"trainlist{fold:02d}.txt"), "w", newline="") as f:
                f.write("".join(f"{it['rel']} {index[it['class_name']]}\r\n" for it in plan
                                if it["test_fold"] != fold))
            with open(os.path.join(splits, f"testlist{fold:02d}.txt"), "w", newline="") as f:
                f.write("".join(f"{it['rel']}\r\n" for it in plan if it["test_fold"] == fold))
        with open(os.path.join(tmp, "done.json"), "w") as f:
            json.dump(marker, f)
        try:
            os.rename(tmp, final)
        except OSError:
            # another process finished first (its tree is identical), or a stale incomplete tree is in the way
            if not os.path.exists(os.path.join(final, "done.json")):
                shutil.rmtree(final, ignore_errors=True)
                os.rename(tmp, final)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return result
