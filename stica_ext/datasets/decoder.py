"""In-process video + audio clip decoding with PyAV.

:func:`decode_clips` opens a file once and returns one :class:`Clip` per requested temporal position: exactly
``num_frames`` RGB frames and, optionally, the audio window that starts at the first returned frame.

Temporal sampling (the early-PySlowFast rule used by GDT, with real timestamps):

* ``fps`` = the stream's average frame rate, ``frames_length`` = the stream's frame count (or ``duration * fps``
  when the container does not store it; when neither is known the whole stream is decoded once and counted);
* clip span in source frames ``clip_size = sampling_rate * num_frames / target_fps * fps``;
* ``delta = max(frames_length - clip_size, 0)``; start frame ``U(0, delta)`` for clip index ``-1``, else
  ``int(delta * clip_idx / num_clips)``; videos shorter than the clip start at 0 (no error);
* frames whose presentation time lies in ``[start / fps, (start + clip_size - 1) / fps]`` are decoded (after seeking
  to the keyframe before the window), plus the first frame after the window; then ``num_frames`` of them are picked
  with ``linspace(0, clip_size - 1, num_frames)`` clamped to the decoded count and truncated.

Times are measured from the video stream's start time (``stream.start_time``, not assumed to be 0).  The audio
window is taken in absolute presentation time, so streams that start at different times stay in sync.  The AAC
encoder delay ("priming") is removed by FFmpeg through the mp4 edit list: the first decoded audio sample is at the
stream start.  Audio is decoded from a seek a few codec frames before its window (an AAC frame decoded right after
a seek lacks its overlap half), resampled with ``av.AudioResampler`` and cut with sample accuracy.
"""

import contextlib
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import av
import numpy as np
from av.video.reformatter import VideoReformatter
import torch

logger = logging.getLogger(__name__)

# Errors PyAV / FFmpeg raise on unreadable or corrupt input.
_AV_ERRORS = (av.FFmpegError, OSError, EOFError, ValueError)

# Tolerance (in frame periods) when comparing a frame's timestamp with the window bounds (at least 1.5 time-base
# ticks, see _decode_window).
_TIME_TOL = 0.01


class DecodeError(RuntimeError):
    """A video could not be decoded (missing, empty or corrupt file, missing stream, decoder failure)."""


class _StageTimer:
    __slots__ = ("timings", "key", "t0")

    def __init__(self, timings, key):
        self.timings, self.key = timings, key

    def __enter__(self):
        self.t0 = time.perf_counter()

    def __exit__(self, *exc):
        self.timings[self.key] = self.timings.get(self.key, 0.0) + time.perf_counter() - self.t0
        return False


_NO_TIMING = contextlib.nullcontext()


def stage(timings, key):
    """``with stage(timings, "video_decode"): ...`` adds the block's wall time (s) to ``timings[key]``; a shared
    no-op context when ``timings`` is None (the normal case: only benchmarks pass a dict)."""
    return _NO_TIMING if timings is None else _StageTimer(timings, key)


@dataclass
class Clip:
    """One decoded clip.

    Attributes:
        frames: ``num_frames x H x W x 3`` uint8 RGB tensor.
        start_sec: presentation time (s) of the first returned frame, relative to the video stream's start.
        frame_times: presentation time (s) of every returned frame, same reference.
        audio: float32 mono waveform ``(round(audio_num_sec * audio_sample_rate),)`` in ``[-1, 1]``, or None.
        audio_start_sec: time (s, same reference) of audio sample 0; equals ``start_sec`` unless the window had to
            be moved to fit inside the audio track.  None without audio.
        clip_index: the requested clip index (-1 = random).
    """

    frames: torch.Tensor
    start_sec: float
    frame_times: List[float] = field(default_factory=list)
    audio: Optional[torch.Tensor] = None
    audio_start_sec: Optional[float] = None
    clip_index: int = 0


@dataclass
class _VideoInfo:
    fps: float
    start: float  # absolute start time of the stream (s)
    frames_length: Optional[float]  # number of frames used by the sampling rule (None: unknown)
    # Whole stream decoded up front (files without frame count / duration): (frames, times from the stream start).
    all_frames: Optional[list] = None
    all_times: Optional[List[float]] = None


def decode_clips(
    path,
    *,
    num_frames: int,
    sampling_rate: int,
    target_fps: float,
    clip_indices: Sequence[int],
    num_clips: int,
    audio_sample_rate: Optional[int] = None,
    audio_num_sec: float = 1.0,
    audio_missing: str = "error",
    rng: Optional[random.Random] = None,
    threads: int = 0,
    timings: Optional[dict] = None,
) -> List[Clip]:
    """Decode one clip per entry of ``clip_indices`` from the video at ``path`` (opened once).

    Args:
        path: video file.
        num_frames: frames per clip ``T``.
        sampling_rate: frame stride at ``target_fps``.
        target_fps: frame rate the clip is sampled at (a clip spans ``sampling_rate * num_frames / target_fps`` s).
        clip_indices: ``-1`` for a random start (drawn with ``rng``), else a uniform position in
            ``[0, num_clips]`` (start frame ``int(delta * clip_idx / num_clips)``).
        num_clips: number of uniform positions.
        audio_sample_rate: output audio rate; None = no audio.
        audio_num_sec: audio window length in seconds.
        audio_missing: ``"error"`` (raise :class:`DecodeError` when the file has no audio stream) or ``"silence"``
            (return zeros).
        rng: ``random.Random`` for random starts (a fresh unseeded one if None).
        threads: decoder threads; 0 = FFmpeg's default (automatic), ``!= 1`` enables ``thread_type="AUTO"``.
        timings: optional dict (benchmarks): seconds spent are added to its keys ``"open"`` (opening the container,
            stream metadata), ``"video_decode"`` (seeking, decoding and RGB conversion of the frames) and
            ``"audio_decode"`` (seeking, decoding and resampling the audio windows).

    Returns:
        list of :class:`Clip`, in the order of ``clip_indices``.

    Raises:
        DecodeError: the file is missing, empty or unreadable, has no video stream, has no audio stream while audio
            is requested with ``audio_missing="error"``, or no frame could be decoded.
    """
    if audio_missing not in ("error", "silence"):
        raise ValueError(f"audio_missing must be 'error' or 'silence', got {audio_missing!r}")
    if num_frames <= 0 or sampling_rate <= 0 or target_fps <= 0:
        raise ValueError("num_frames, sampling_rate and target_fps must be positive")
    if any(int(c) < -1 for c in clip_indices):
        raise ValueError(f"clip indices must be -1 (random) or >= 0, got {list(clip_indices)}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DecodeError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise DecodeError(f"{path}: empty file")
    rng = rng if rng is not None else random.Random()
    try:
        with stage(timings, "open"):
            container = av.open(path, metadata_errors="ignore")
    except _AV_ERRORS as e:
        raise DecodeError(f"{path}: cannot open ({e})") from e
    try:
        if not container.streams.video:
            raise DecodeError(f"{path}: no video stream")
        vstream = container.streams.video[0]
        if threads != 1:
            vstream.thread_type = "AUTO"
        vstream.thread_count = max(int(threads), 0)
        astream = None
        if audio_sample_rate is not None:
            if container.streams.audio:
                astream = container.streams.audio[0]
            elif audio_missing == "error":
                raise DecodeError(f"{path}: no audio stream")
        with stage(timings, "open"):
            info = _video_info(container, vstream, target_fps)
        if info.frames_length is None:
            # No frame count and no duration: decode the stream once, sequentially, and sample from it.
            with stage(timings, "video_decode"):
                info.all_frames, info.all_times = _decode_all(vstream, container, info)
            info.frames_length = float(len(info.all_frames))
        clip_size = sampling_rate * num_frames / target_fps * info.fps
        delta = max(info.frames_length - clip_size, 0.0)
        clips = []
        reformatter = VideoReformatter()
        for clip_idx in clip_indices:
            if clip_idx == -1:
                start = rng.uniform(0.0, delta)
            else:
                start = float(int(delta * clip_idx / max(num_clips, 1)))
            with stage(timings, "video_decode"):
                clip = _decode_video_clip(container, vstream, info, start, clip_size, num_frames, reformatter)
            clip.clip_index = int(clip_idx)
            if audio_sample_rate is not None:
                n = int(round(audio_num_sec * audio_sample_rate))
                if astream is None:
                    clip.audio, clip.audio_start_sec = torch.zeros(n, dtype=torch.float32), clip.start_sec
                else:
                    with stage(timings, "audio_decode"):
                        clip.audio, clip.audio_start_sec = _decode_audio_window(
                            container, astream, info.start + clip.start_sec, n, int(audio_sample_rate))
                    clip.audio_start_sec -= info.start
            clips.append(clip)
        return clips
    except DecodeError as e:
        if path not in str(e):
            raise DecodeError(f"{path}: {e}") from e
        raise
    except _AV_ERRORS as e:  # demuxer / decoder failures on corrupt data
        raise DecodeError(f"{path}: decoding failed ({type(e).__name__}: {e})") from e
    finally:
        container.close()


# ---------------------------------------------------------------------------------------------------------------
# Video
# ---------------------------------------------------------------------------------------------------------------


def _video_info(container, vstream, target_fps) -> _VideoInfo:
    """Frame rate, absolute start time and frame count of the video stream (from metadata when present)."""
    time_base = vstream.time_base
    rate = vstream.average_rate or vstream.guessed_rate or vstream.base_rate
    fps = float(rate) if rate else 0.0
    if not fps > 0:
        logger.warning("%s: unknown frame rate, assuming %s fps", container.name, target_fps)
        fps = float(target_fps)
    start = float(vstream.start_time * time_base) if vstream.start_time is not None and time_base else 0.0
    duration = None
    if vstream.duration and time_base:
        duration = float(vstream.duration * time_base)
    elif container.duration:
        container_start = container.start_time / av.time_base if container.start_time is not None else start
        duration = container.duration / av.time_base - max(start - container_start, 0.0)
    if vstream.frames and vstream.frames > 0:
        frames_length = float(vstream.frames)
    elif duration and duration > 0:
        frames_length = duration * fps
    else:
        frames_length = None
    return _VideoInfo(fps=fps, start=start, frames_length=frames_length)


def _decode_all(vstream, container, info):
    """Every frame of the stream (from the current position, no seeking) and its time from the stream start."""
    period = 1.0 / info.fps
    frames, times = [], []
    last_abs = None
    for packet in container.demux(vstream):
        for frame in packet.decode():
            last_abs = _frame_time(frame, vstream.time_base, last_abs, period, info.start)
            frames.append(frame)
            times.append(last_abs - info.start)
    order = sorted(range(len(frames)), key=lambda i: times[i])
    return [frames[i] for i in order], [times[i] for i in order]


def _frame_time(frame, time_base, previous: Optional[float], period: float, default: float) -> float:
    """Absolute presentation time of a frame (previous frame + one period when it has no timestamp)."""
    pts = frame.pts if frame.pts is not None else frame.dts
    if pts is not None and time_base:
        return float(pts * time_base)
    return previous + period if previous is not None else default


def _decode_window(container, vstream, info, t_start, t_end):
    """Decode frames of ``[t_start, t_end]`` (seconds from the stream start) plus the first frame after it.

    Returns ``(frames, times, last_time)``: the kept ``av.VideoFrame`` objects in presentation order, their times and
    the time of the last frame decoded at all (None if nothing was decoded).
    """
    period = 1.0 / info.fps
    time_base = vstream.time_base
    # Timestamps are rounded to the stream time base: allow that much (and 1% of a frame) around the bounds.
    tol = max(_TIME_TOL * period, 1.5 * float(time_base) if time_base else 0.0)
    if info.all_frames is not None:
        kept, times = [], []
        for frame, t in zip(info.all_frames, info.all_times):
            if t < t_start - tol:
                continue
            kept.append(frame)
            times.append(t)
            if t > t_end + tol:
                break
        return kept, times, (info.all_times[-1] if info.all_times else None)
    margin = 0.0
    while True:
        seek_abs = info.start + t_start - margin
        seek_pts = int(math.floor(seek_abs / time_base)) if time_base else 0
        first_pts_limit = vstream.start_time if vstream.start_time is not None else 0
        at_start = seek_abs <= info.start
        container.seek(max(seek_pts, first_pts_limit) if not at_start else first_pts_limit, stream=vstream,
                       backward=True, any_frame=False)
        kept, times = [], []
        first_time, last_time, last_abs = None, None, None
        done = False
        for packet in container.demux(vstream):
            for frame in packet.decode():
                last_abs = _frame_time(frame, time_base, last_abs, period, max(seek_abs, info.start))
                t = last_abs - info.start
                last_time = t
                if first_time is None:
                    first_time = t
                if t < t_start - tol:
                    continue
                kept.append(frame)
                times.append(t)
                if t > t_end + tol:
                    done = True
                    break
            if done:
                break
        # A keyframe found by the seek can present after the window start (B-frame reordering): seek earlier.
        if first_time is not None and first_time > t_start + tol and not at_start:
            margin = max(2.0 * margin, 0.5)
            continue
        break
    order = sorted(range(len(kept)), key=lambda i: times[i])
    return [kept[i] for i in order], [times[i] for i in order], last_time


def _rgb_frames(frames, index, reformatter=None):
    """``len(index) x H x W x 3`` uint8 RGB tensor of ``frames[i] for i in index``.

    Each distinct frame is converted once with one shared ``VideoReformatter`` (``VideoFrame.to_ndarray(format=...)``
    sets up a new swscale context for every frame, which costs about as much again as the conversion itself for
    340x256 frames) and its RGB plane is copied straight into the output.
    """
    reformatter = reformatter if reformatter is not None else VideoReformatter()
    first = frames[index[0]]
    h, w = first.height, first.width
    out = np.empty((len(index), h, w, 3), dtype=np.uint8)
    done = {}
    for k, i in enumerate(index):
        if i in done:
            out[k] = out[done[i]]
            continue
        done[i] = k
        frame = frames[i]
        if frame.format.name != "rgb24":
            frame = reformatter.reformat(frame, format="rgb24")
        if frame.height != h or frame.width != w:
            raise DecodeError(f"frame size changes within the clip ({w}x{h} -> {frame.width}x{frame.height})")
        plane = frame.planes[0]
        rows = np.frombuffer(plane, dtype=np.uint8).reshape(h, plane.line_size)
        out[k] = rows[:, : w * 3].reshape(h, w, 3)
    return torch.from_numpy(out)


def _decode_video_clip(container, vstream, info, start, clip_size, num_frames, reformatter=None) -> Clip:
    t_start = start / info.fps
    t_end = (start + clip_size - 1.0) / info.fps
    frames, times, last_time = _decode_window(container, vstream, info, t_start, t_end)
    if not frames and last_time is not None:
        # The metadata promised more frames than the file holds: take the clip that ends at the last frame.
        t_start = max(last_time - (clip_size - 1.0) / info.fps, 0.0)
        frames, times, _ = _decode_window(container, vstream, info, t_start, last_time)
    if not frames:
        raise DecodeError("no video frame could be decoded")
    index = torch.linspace(0, clip_size - 1, num_frames).clamp(0, len(frames) - 1).long().tolist()
    video = _rgb_frames(frames, index, reformatter)
    frame_times = [times[i] for i in index]
    return Clip(frames=video, start_sec=frame_times[0], frame_times=frame_times)


# ---------------------------------------------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------------------------------------------


def _audio_stream_info(astream):
    """(absolute start time s, duration s or None) of an audio stream."""
    time_base = astream.time_base
    start = float(astream.start_time * time_base) if astream.start_time is not None and time_base else 0.0
    duration = float(astream.duration * time_base) if astream.duration and time_base else None
    return start, duration


def _read_audio(container, astream, first, count, sample_rate, stream_start):
    """Samples ``[first, first + count)`` (output-rate indices from the stream start) as float32 mono.

    Returns ``(samples, end)``: ``samples`` may be shorter than ``count`` when the track ends early (then ``end`` is
    the index one past the last decoded sample, else None).  Indices before the stream start are zeros.
    """
    time_base = astream.time_base
    frame_size = astream.codec_context.frame_size or 1024
    in_rate = astream.codec_context.sample_rate or astream.rate or sample_rate
    # Start a few codec frames early: the first frame decoded after a seek lacks its overlap half.
    margin = max(3.0 * frame_size / in_rate, 0.05)
    t_first = stream_start + first / sample_rate
    t_stop = t_first + count / sample_rate
    seek_abs = t_first - margin
    start_pts = astream.start_time if astream.start_time is not None else 0
    seek_pts = max(int(math.floor(seek_abs / time_base)), start_pts) if time_base else start_pts
    container.seek(seek_pts, stream=astream, backward=True, any_frame=False)
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=sample_rate)
    chunks = []
    collected = 0
    anchor = None  # absolute time of the first resampled sample
    reached_end = True
    for packet in container.demux(astream):
        for frame in packet.decode():
            if anchor is None:
                pts = frame.pts if frame.pts is not None else packet.pts
                anchor = float(pts * time_base) if pts is not None else max(seek_abs, stream_start)
            for out in resampler.resample(frame):
                chunk = out.to_ndarray().reshape(-1)
                chunks.append(chunk)
                collected += chunk.shape[0]
        if anchor is not None and anchor + collected / sample_rate >= t_stop + 0.01:
            reached_end = False
            break
    if reached_end:
        for out in resampler.resample(None):
            chunk = out.to_ndarray().reshape(-1)
            chunks.append(chunk)
            collected += chunk.shape[0]
    if anchor is None:
        return np.zeros(0, dtype=np.float32), first
    data = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, dtype=np.float32)
    offset = int(round((t_first - anchor) * sample_rate))
    if offset < 0:
        data = np.concatenate([np.zeros(-offset, dtype=np.float32), data])
        offset = 0
    samples = data[offset : offset + count]
    end = first + max(data.shape[0] - offset, 0) if reached_end else None
    return samples, end


def _decode_audio_window(container, astream, t_abs, count, sample_rate):
    """``count`` samples starting at absolute time ``t_abs`` (moved back to end at the last sample when the window
    runs past the end of the track; zero-padded when the track is shorter than the window).

    Returns ``(waveform tensor, absolute time of sample 0)``.
    """
    stream_start, duration = _audio_stream_info(astream)
    total = int(round(duration * sample_rate)) if duration else None
    first = int(round((t_abs - stream_start) * sample_rate))
    if total is not None and first + count > total:
        first = max(total - count, 0)
    samples, end = _read_audio(container, astream, first, count, sample_rate, stream_start)
    if end is not None and total is not None:
        end = min(end, total)  # decoded tails carry the encoder's padding beyond the stream duration
        samples = samples[: max(end - first, 0)]
    if samples.shape[0] < count and end is not None and first > 0:
        # The track ends earlier than its metadata said: move the window back to end at the last sample.
        new_first = max(end - count, 0)
        if new_first != first:
            first = new_first
            samples, end = _read_audio(container, astream, first, count, sample_rate, stream_start)
            if end is not None and total is not None:
                samples = samples[: max(min(end, total) - first, 0)]
    if samples.shape[0] < count:
        samples = np.concatenate([samples, np.zeros(count - samples.shape[0], dtype=np.float32)])
    wave = torch.from_numpy(np.clip(samples, -1.0, 1.0).astype(np.float32, copy=False))
    return wave, stream_start + first / sample_rate
