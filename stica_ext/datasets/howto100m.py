"""HowTo100M-style video-text pretraining samples (``TRAIN.DATASET: howto100m``, spec 3.3c, 3.7, 4.5).

Inputs (``TEXT.*`` config keys):

* a video list ``TEXT.VIDEO_LIST``: a CSV **with a header row** holding a ``video_id`` column (file
  ``TEXT.VIDEO_ROOT/<video_id><TEXT.VIDEO_EXT>``; HowTo100M's ``HowTo100M_v1.csv`` works as is) and/or a
  ``video_path`` column (relative to ``TEXT.VIDEO_ROOT``, or to the CSV's folder when the root is empty; the caption
  id is then the file stem). Without a list, every video file directly in ``TEXT.VIDEO_ROOT`` is used;
* captions: one CSV per video ``TEXT.CAPTION_ROOT/<video_id>.csv`` with the header ``start,end,text`` (seconds),
  or a single ``TEXT.CAPTION_JSON`` ``{video_id: {"start": [...], "end": [...], "text": [...]}}``. The JSON file is
  parsed once per process; per-video CSVs are parsed on first use and kept in a per-process LRU cache of
  ``TEXT.CAPTION_CACHE_SIZE`` videos, so a clip never re-reads its captions;
* a vocabulary ``TEXT.DICT_PATH`` (``dict.npy``: a numpy array of words; word ``i`` has token id ``i + 1``,
  0 = padding).

One item (one video):

1. Caption / clip pairing: a caption row is drawn uniformly; a caption shorter than ``TEXT.MIN_TIME`` is widened
   symmetrically to ``MIN_TIME`` seconds (start clamped at 0, end = start + MIN_TIME); times stay fractional (no int
   truncation). The clip start is drawn uniformly so that the clip (``DATA.NUM_FRAMES * DATA.SAMPLING_RATE /
   DATA.TARGET_FPS`` s, 30 frames at 16 fps = 1.875 s) lies inside the widened window; when the window is shorter
   than the clip the clip starts at the window start; the start is finally clamped so that the clip lies inside the
   video.
2. Video: frames sampled at ``DATA.TARGET_FPS`` (PyAV, in process; audio is never decoded), a square crop of side
   ``min(H, W)`` at a uniformly random position, resized to ``DATA.TRAIN_CROP_SIZE`` (bilinear), scaled to [0, 1]
   (``TEXT.VIDEO_NORMALIZE: none``, the reference recipe) or normalised with ``DATA.MEAN`` / ``DATA.STD``
   (``mean_std``, consistent with finetuning). No flip, no colour jitter.
3. Text: :class:`Tokenizer` (regex ``[\\w']+``, unknown words dropped, truncated / zero-padded to
   ``TEXT.MAX_WORDS``).
4. Views, in GDT's packing order ``[V, VR, V2, V2R]`` = ``orig, rev, shift, shift_rev``
   (:data:`stica_ext.config.VIEW_ORDER`), only those the hypothesis needs (:func:`views_for_hypothesis`): ``orig`` =
   the first (clip, caption) pair, ``rev`` = its frames reversed in time and its token vector reversed (padding moves
   to the front), ``shift`` = a second pair from another caption of the same video (a different caption whenever the
   video has more than one; the reference draws both independently and may repeat one), ``shift_rev`` = that pair
   reversed.

Item: ``{"video": V x 3 x T x S x S float, "text": V x MAX_WORDS int64, "label": 0, "index": video index,
"skipped": number of videos replaced while producing this item}`` (tensors), so that a collated batch is
``video B x V x 3 x T x S x S`` / ``text B x V x MAX_WORDS`` and ``TextVidGDT(batch["video"], batch["text"])`` gives
``B x V x D`` embeddings.

Randomness: everything random in an item comes from ``random.Random`` seeded by ``(RNG_SEED, split, epoch, index,
attempt)`` (pass ``(index, epoch)`` keys, see :class:`stica_ext.datasets.loader.EpochSampler`).

Bad videos: a missing / empty / undecodable file, a video shorter than the clip, a video without captions, a missing
or malformed caption file, or a video absent from the caption JSON is logged once, counted in ``skipped`` and
replaced by a randomly chosen other video; after ``DATA.NUM_RETRIES`` consecutive failures the item raises an error
naming the files.
"""

import json
import logging
import os
import random
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import av
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..config import TEXT_VIDEO_NORMALIZE, VIEW_ORDER, views_for_hypothesis
from ..registry import DATASET_REGISTRY, register_as
from ..utils.io import PathManager
from . import decoder as _dec
from . import transforms as T
from .av_dataset import _split_key
from .decoder import DecodeError

__all__ = [
    "Captions",
    "CaptionStore",
    "Tokenizer",
    "UnusableVideo",
    "Howto100mDataset",
    "PairSample",
    "read_video_list",
    "scan_video_root",
    "read_caption_csv",
    "read_caption_json",
    "widen_window",
    "sample_clip_start",
    "decode_clips_at",
    "VIDEO_EXTENSIONS",
]

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v")
_WORD_RE = re.compile(r"[\w']+")
_NORMALIZE_CHOICES = TEXT_VIDEO_NORMALIZE


class UnusableVideo(RuntimeError):
    """A video that cannot give a sample although it may decode: no captions, missing or malformed caption file,
    or shorter than the clip."""


# ---------------------------------------------------------------------------------------------------------------
# Video lists
# ---------------------------------------------------------------------------------------------------------------


def _has_video_ext(name):
    return os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def read_video_list(path, video_root="", video_ext=".mp4"):
    """Read a video list CSV with a header row. Returns ``(video_ids, paths)``.

    Columns: ``video_id`` (file ``video_root/<id><video_ext>``, the extension is not added when the id already ends
    with a video extension) and/or ``video_path`` (relative to ``video_root``, or to the CSV's folder when
    ``video_root`` is empty; absolute paths are kept). With only ``video_path`` the id is the file stem. Other
    columns are ignored. Blank rows are skipped.

    Raises:
        FileNotFoundError / ValueError naming the file when it is missing, has no usable header or lists no video.
    """
    if not PathManager.exists(path):
        raise FileNotFoundError(f"video list not found: {path} (TEXT.VIDEO_LIST)")
    try:
        with PathManager.open(path, "r") as f:
            df = pd.read_csv(f, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: the video list is empty (TEXT.VIDEO_LIST)") from None
    df.columns = [str(c).strip() for c in df.columns]
    if "video_path" not in df.columns and "video_id" not in df.columns:
        raise ValueError(f"{path}: a video list needs a header row naming a 'video_id' or 'video_path' column, "
                         f"found columns {list(df.columns)} (TEXT.VIDEO_LIST)")
    base = video_root or os.path.dirname(os.path.abspath(path))
    ids, paths = [], []
    n = len(df)
    id_col = df["video_id"].tolist() if "video_id" in df.columns else [""] * n
    path_col = df["video_path"].tolist() if "video_path" in df.columns else [""] * n
    for vid, rel in zip(id_col, path_col):
        vid, rel = str(vid).strip(), str(rel).strip()
        if not vid and not rel:
            continue
        if rel:
            p = rel if os.path.isabs(rel) else os.path.join(base, rel)
            vid = vid or os.path.splitext(os.path.basename(rel))[0]
        else:
            p = os.path.join(base, vid if _has_video_ext(vid) else vid + video_ext)
            vid = os.path.splitext(vid)[0] if _has_video_ext(vid) else vid
        ids.append(vid)
        paths.append(p)
    if not ids:
        raise ValueError(f"{path}: the video list names no video (TEXT.VIDEO_LIST)")
    return ids, paths


def scan_video_root(video_root):
    """Every video file (by extension, see :data:`VIDEO_EXTENSIONS`) directly in ``video_root``, sorted by name.
    Returns ``(video_ids, paths)``; ids are the file stems."""
    if not video_root or not PathManager.isdir(video_root):
        raise FileNotFoundError(f"video folder not found: {video_root!r} (TEXT.VIDEO_ROOT; or set TEXT.VIDEO_LIST)")
    names = sorted(n for n in PathManager.ls(video_root) if _has_video_ext(n))
    if not names:
        raise ValueError(f"{video_root}: no video file ({', '.join(VIDEO_EXTENSIONS)}) found (TEXT.VIDEO_ROOT)")
    return [os.path.splitext(n)[0] for n in names], [os.path.join(video_root, n) for n in names]


# ---------------------------------------------------------------------------------------------------------------
# Captions
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Captions:
    """Captions of one video: ``start``, ``end`` (float64 seconds) and ``text`` (tuple of str), one entry per row."""

    start: np.ndarray
    end: np.ndarray
    text: Tuple[str, ...]

    def __len__(self):
        return len(self.text)

    @classmethod
    def from_lists(cls, start, end, text, source="captions"):
        start = np.asarray(start, dtype=np.float64).reshape(-1)
        end = np.asarray(end, dtype=np.float64).reshape(-1)
        if isinstance(text, str) or text is None:  # one caption given as scalars, not a list of characters
            text = [text]
        text = ["" if t is None or (isinstance(t, float) and np.isnan(t)) else str(t) for t in text]
        if not len(start) == len(end) == len(text):
            raise UnusableVideo(f"{source}: start / end / text have different lengths "
                                f"({len(start)}, {len(end)}, {len(text)})")
        keep = np.isfinite(start) & np.isfinite(end)
        if not keep.all():
            text = [t for t, k in zip(text, keep) if k]
            start, end = start[keep], end[keep]
        return cls(start=start, end=end, text=tuple(text))


def read_caption_csv(path):
    """Parse one caption CSV (header ``start,end,text``; rows with a non-numeric time are dropped).

    Raises:
        UnusableVideo: the file is missing or lacks one of the columns.
    """
    if not PathManager.exists(path):
        raise UnusableVideo(f"caption file not found: {path}")
    try:
        with PathManager.open(path, "r") as f:
            df = pd.read_csv(f, keep_default_na=False, dtype={"text": str})
    except pd.errors.EmptyDataError:
        raise UnusableVideo(f"{path}: empty caption file") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise UnusableVideo(f"{path}: cannot parse the caption file ({e})") from e
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in ("start", "end", "text") if c not in df.columns]
    if missing:
        raise UnusableVideo(f"{path}: caption file lacks column(s) {missing} (expected header start,end,text)")
    start = pd.to_numeric(df["start"], errors="coerce").to_numpy(dtype=np.float64)
    end = pd.to_numeric(df["end"], errors="coerce").to_numpy(dtype=np.float64)
    return Captions.from_lists(start, end, df["text"].tolist(), source=path)


_JSON_CACHE = {}


def read_caption_json(path):
    """The parsed ``caption.json`` (``{video_id: {"start": [...], "end": [...], "text": [...]}}``), read once per
    process (cached by absolute path and modification time)."""
    if not PathManager.exists(path):
        raise FileNotFoundError(f"caption file not found: {path} (TEXT.CAPTION_JSON)")
    local = PathManager.get_local_path(path)
    key = (os.path.abspath(local), os.path.getmtime(local))
    if key not in _JSON_CACHE:
        with open(local, "r") as f:
            data = json.load(f)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object {{video_id: {{start, end, text}}}} (TEXT.CAPTION_JSON)")
        _JSON_CACHE.clear()  # one caption file per process is enough; do not keep stale copies
        _JSON_CACHE[key] = data
    return _JSON_CACHE[key]


class CaptionStore:
    """Caption lookup ``video_id -> Captions`` from a caption JSON or a folder of per-video caption CSVs.

    Args:
        caption_root: folder of ``<video_id>.csv`` files.
        caption_json: ``caption.json`` (wins when both are given).
        cache_size: per-video CSVs kept parsed in memory (LRU); ``-1`` = all, ``0`` = none.
    """

    def __init__(self, caption_root="", caption_json="", cache_size=20000):
        if not caption_root and not caption_json:
            raise ValueError("no captions given: set TEXT.CAPTION_ROOT (per-video CSVs) or TEXT.CAPTION_JSON")
        self.caption_root = caption_root
        self.caption_json = caption_json
        self.cache_size = int(cache_size)
        self._cache = OrderedDict()
        self._json = read_caption_json(caption_json) if caption_json else None
        if not caption_json and not PathManager.isdir(caption_root):
            raise FileNotFoundError(f"caption folder not found: {caption_root} (TEXT.CAPTION_ROOT)")

    def __getstate__(self):
        # DataLoader workers started with "spawn" re-read the JSON from the per-process cache instead of pickling it.
        state = self.__dict__.copy()
        state["_json"] = None
        state["_cache"] = OrderedDict()
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.caption_json:
            self._json = read_caption_json(self.caption_json)

    def get(self, video_id):
        """Captions of ``video_id``; raises :class:`UnusableVideo` when there are none."""
        if self._json is not None:
            entry = self._json.get(video_id)
            if entry is None:
                raise UnusableVideo(f"video {video_id!r} has no entry in {self.caption_json}")
            try:
                caps = Captions.from_lists(entry["start"], entry["end"], entry["text"],
                                           source=f"{self.caption_json}[{video_id!r}]")
            except (KeyError, TypeError, ValueError) as e:
                raise UnusableVideo(f"{self.caption_json}[{video_id!r}]: malformed entry ({e})") from e
        else:
            caps = self._cache.get(video_id)
            if caps is None:
                caps = read_caption_csv(os.path.join(self.caption_root, f"{video_id}.csv"))
                if self.cache_size != 0:
                    self._cache[video_id] = caps
                    if 0 < self.cache_size < len(self._cache):
                        self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(video_id)
        if len(caps) == 0:
            raise UnusableVideo(f"video {video_id!r} has no captions")
        return caps


# ---------------------------------------------------------------------------------------------------------------
# Tokenisation
# ---------------------------------------------------------------------------------------------------------------

_VOCAB_CACHE = {}


def _load_words(path):
    """Words of a ``dict.npy`` (cached per process by absolute path and modification time)."""
    if not path or not PathManager.exists(path):
        raise FileNotFoundError(f"vocabulary not found: {path!r} (TEXT.DICT_PATH)")
    local = PathManager.get_local_path(path)
    key = (os.path.abspath(local), os.path.getmtime(local))
    if key not in _VOCAB_CACHE:
        try:
            words = np.load(local, allow_pickle=False)
        except ValueError:
            # Arrays of Python strings (dtype object) are pickled by numpy; the vocabulary is a user-supplied file.
            words = np.load(local, allow_pickle=True)
        _VOCAB_CACHE[key] = [str(w) for w in np.asarray(words).reshape(-1).tolist()]
    return _VOCAB_CACHE[key]


class Tokenizer:
    """Caption text -> fixed-length token ids.

    ``re.findall(r"[\\w']+", text)`` splits the text into words (punctuation other than the apostrophe separates
    words and is dropped); each word is mapped to ``index + 1`` of the vocabulary, unknown words are dropped, and the
    ids are truncated or zero-padded (at the end) to ``max_words``. A text without any known word gives all zeros.

    Case: with ``lower_case=True`` a word is looked up in lower case first and, when that is not in the vocabulary,
    in its exact case (so a lower-case vocabulary such as HowTo100M's matches "The" and "the", and an entry that only
    exists capitalised, e.g. a proper noun, is still found). ``lower_case=False`` looks up the exact case only (the
    reference behaviour). When the vocabulary holds a word twice, the first occurrence's id is used.

    Args:
        words: the vocabulary (word ``i`` has id ``i + 1``; 0 is padding).
        max_words: output length.
        lower_case: see above.
    """

    def __init__(self, words: Sequence[str], max_words=20, lower_case=True):
        if int(max_words) < 1:
            raise ValueError(f"max_words must be >= 1, got {max_words} (TEXT.MAX_WORDS)")
        self.max_words = int(max_words)
        self.lower_case = bool(lower_case)
        self.word_to_token = {}
        for i, w in enumerate(words):
            self.word_to_token.setdefault(str(w), i + 1)
        self.vocab_size = len(words) + 1  # rows an embedding needs (padding row 0 included)

    @classmethod
    def from_file(cls, path, max_words=20, lower_case=True):
        """Tokenizer over the words of a ``dict.npy`` file."""
        return cls(_load_words(path), max_words=max_words, lower_case=lower_case)

    def token(self, word) -> Optional[int]:
        """Id of one word, or None when it is unknown."""
        if self.lower_case:
            tok = self.word_to_token.get(word.lower())
            if tok is not None:
                return tok
        return self.word_to_token.get(word)

    def ids(self, text) -> List[int]:
        """Ids of the known words of ``text``, in order, not padded nor truncated."""
        out = []
        for w in _WORD_RE.findall(str(text)):
            tok = self.token(w)
            if tok is not None:
                out.append(tok)
        return out

    def __call__(self, text) -> torch.Tensor:
        """``max_words`` int64 ids (zero-padded at the end)."""
        ids = self.ids(text)[: self.max_words]
        out = torch.zeros(self.max_words, dtype=torch.int64)
        if ids:
            out[: len(ids)] = torch.tensor(ids, dtype=torch.int64)
        return out


# ---------------------------------------------------------------------------------------------------------------
# Caption / clip pairing
# ---------------------------------------------------------------------------------------------------------------


def widen_window(start, end, min_time):
    """A caption span widened symmetrically to ``min_time`` seconds when shorter (start clamped at 0, end = start +
    min_time); fractional times are kept. Returns ``(start, end)`` as floats."""
    start, end = float(start), float(end)
    if end - start < min_time:
        start = max(0.0, start - (min_time - (end - start)) / 2.0)
        end = start + float(min_time)
    return start, end


def sample_clip_start(win_start, win_end, clip_len, rng, duration=None):
    """Clip start (s) drawn uniformly in ``[win_start, max(win_start, win_end - clip_len)]`` -- the clip lies inside
    the window, or starts at its start when the window is shorter than the clip -- then clamped to
    ``[0, duration - clip_len]`` when the video ``duration`` is given."""
    hi = max(float(win_start), float(win_end) - clip_len)
    s = rng.uniform(float(win_start), hi)
    if duration is not None:
        s = min(s, max(0.0, float(duration) - clip_len))
    return max(0.0, s)


# ---------------------------------------------------------------------------------------------------------------
# Decoding at given times
# ---------------------------------------------------------------------------------------------------------------


def decode_clips_at(path, choose_starts: Callable[[float], Sequence[float]], *, num_frames, sampling_rate,
                    target_fps, threads=1):
    """Open a video once and decode one clip per start time chosen from its duration.

    Uses the project decoder's sampling (:mod:`stica_ext.datasets.decoder`): a clip spans ``sampling_rate *
    num_frames / target_fps`` seconds and ``num_frames`` frames are taken on that grid from the decoded window.

    Args:
        path: video file.
        choose_starts: ``duration_s -> [start_s, ...]``, called once the duration is known (it may raise
            :class:`UnusableVideo`, which propagates).
        num_frames, sampling_rate, target_fps: clip sampling, as for :func:`~stica_ext.datasets.decoder.decode_clips`.
        threads: decoder threads (1 = single-threaded; 0 = FFmpeg's automatic choice).

    Returns:
        ``(duration_s, [Clip, ...])``; each ``Clip.frames`` is ``num_frames x H x W x 3`` uint8 and ``Clip.start_sec``
        the time of its first frame. Starts are clamped to the video.

    Raises:
        DecodeError: missing, empty or undecodable file, no video stream.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DecodeError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise DecodeError(f"{path}: empty file")
    try:
        container = av.open(path, metadata_errors="ignore")
    except _dec._AV_ERRORS as e:
        raise DecodeError(f"{path}: cannot open ({e})") from e
    try:
        if not container.streams.video:
            raise DecodeError(f"{path}: no video stream")
        vstream = container.streams.video[0]
        if threads != 1:
            vstream.thread_type = "AUTO"
        vstream.thread_count = max(int(threads), 0)
        info = _dec._video_info(container, vstream, target_fps)
        if info.frames_length is None:
            info.all_frames, info.all_times = _dec._decode_all(vstream, container, info)
            info.frames_length = float(len(info.all_frames))
        duration = info.frames_length / info.fps
        clip_size = sampling_rate * num_frames / target_fps * info.fps
        clips = []
        reformatter = _dec.VideoReformatter()
        for start_s in choose_starts(duration):
            start = min(max(float(start_s) * info.fps, 0.0), max(info.frames_length - clip_size, 0.0))
            clips.append(_dec._decode_video_clip(container, vstream, info, start, clip_size, num_frames, reformatter))
        return duration, clips
    except DecodeError as e:
        if path not in str(e):
            raise DecodeError(f"{path}: {e}") from e
        raise
    except _dec._AV_ERRORS as e:
        raise DecodeError(f"{path}: decoding failed ({type(e).__name__}: {e})") from e
    finally:
        container.close()


# ---------------------------------------------------------------------------------------------------------------
# Dataset
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class PairSample:
    """One (clip, caption) pair of an item.

    Attributes:
        caption_index: row of the video's captions.
        window: the (widened) caption window ``(start, end)`` in seconds.
        clip_start: time (s) of the first decoded frame.
        video: ``3 x T x S x S`` float clip.
        text: ``MAX_WORDS`` int64 token ids.
    """

    caption_index: int
    window: Tuple[float, float]
    clip_start: float
    video: torch.Tensor
    text: torch.Tensor


@register_as(DATASET_REGISTRY, "Howto100m")
class Howto100mDataset(torch.utils.data.Dataset):
    """Video-text GDT pretraining samples from HowTo100M-style data (see the module docstring).

    Args:
        cfg: the config (``TEXT.*``, ``DATA.{NUM_FRAMES, SAMPLING_RATE, TARGET_FPS, TRAIN_CROP_SIZE, MEAN, STD,
            NUM_RETRIES}``, ``GDT.HYPOTHESIS``, ``RNG_SEED``).
        split: ``"train"``, ``"val"`` or ``"test"``; all use the same video list (only pretraining samples exist).
        sample_type: the sample layout the trainer asks for (:func:`stica_ext.datasets.av_dataset.ssl_sample_type`);
            only ``"gdt"`` (the four-view layout) exists for video-text data.
    """

    def __init__(self, cfg, split="train", sample_type="gdt"):
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test, got {split!r}")
        if sample_type != "gdt":
            raise ValueError(f"the howto100m dataset only gives GDT (video, text) samples, not {sample_type!r} "
                             f"samples (MODEL.MODEL_NAME {cfg.MODEL.MODEL_NAME}); use MODEL.MODEL_NAME TextVidGDT")
        t, d = cfg.TEXT, cfg.DATA
        if t.VIDEO_NORMALIZE not in _NORMALIZE_CHOICES:
            raise ValueError(f"TEXT.VIDEO_NORMALIZE must be one of {_NORMALIZE_CHOICES}, got {t.VIDEO_NORMALIZE!r}")
        if not t.MIN_TIME >= 0:
            raise ValueError(f"TEXT.MIN_TIME must be >= 0, got {t.MIN_TIME}")
        self.cfg = cfg
        self.split = split
        if t.VIDEO_LIST:
            self.video_ids, self.paths = read_video_list(t.VIDEO_LIST, t.VIDEO_ROOT, t.VIDEO_EXT)
        else:
            self.video_ids, self.paths = scan_video_root(t.VIDEO_ROOT)
        self.captions = CaptionStore(t.CAPTION_ROOT, t.CAPTION_JSON, t.CAPTION_CACHE_SIZE)
        self.tokenizer = Tokenizer.from_file(t.DICT_PATH, max_words=t.MAX_WORDS, lower_case=t.LOWER_CASE)
        self.views = views_for_hypothesis(cfg.GDT.HYPOTHESIS)
        self.num_pairs = 2 if any(v.startswith("shift") for v in self.views) else 1
        self.clip_len = d.NUM_FRAMES * d.SAMPLING_RATE / d.TARGET_FPS
        self.crop_size = int(d.TRAIN_CROP_SIZE)
        self.min_time = float(t.MIN_TIME)
        self._warned = set()
        logger.info("%s %s: %d videos, views %s, clip %.3f s, %s", type(self).__name__, split, len(self.paths),
                    list(self.views), self.clip_len,
                    f"captions {t.CAPTION_JSON}" if t.CAPTION_JSON else f"caption folder {t.CAPTION_ROOT}")

    @property
    def num_videos(self):
        return len(self.paths)

    def __len__(self):
        return len(self.paths)

    def item_rng(self, epoch, index, attempt):
        """The ``random.Random`` an item draws from (a pure function of seed, split, epoch, index and attempt)."""
        return random.Random(f"{self.cfg.RNG_SEED}-howto100m-{self.split}-{epoch}-{index}-{attempt}")

    # -------------------------------------------------------------------------------------------------------------
    def __getitem__(self, key):
        index, epoch = _split_key(key)
        video_idx = index
        errors = []
        for attempt in range(self.cfg.DATA.NUM_RETRIES + 1):
            rng = self.item_rng(epoch, index, attempt)
            try:
                item = self._item(video_idx, rng)
                item["skipped"] = torch.tensor(attempt)
                return item
            except (DecodeError, UnusableVideo) as e:
                errors.append(str(e))
                if self.paths[video_idx] not in self._warned:
                    self._warned.add(self.paths[video_idx])
                    logger.warning("skipping video %s (%s); using another sample", self.video_ids[video_idx], e)
                video_idx = rng.randrange(self.num_videos)
        raise RuntimeError(f"{self.cfg.DATA.NUM_RETRIES + 1} consecutive videos could not give a sample: "
                           + "; ".join(errors[:3]))

    def _item(self, video_idx, rng):
        pairs = self.sample_pairs(video_idx, rng)
        videos, texts = [], []
        for name in VIEW_ORDER:
            if name not in self.views:
                continue
            pair = pairs[1] if name.startswith("shift") else pairs[0]
            if name.endswith("rev"):
                videos.append(pair.video.flip(1))  # time axis of 3 x T x S x S
                texts.append(pair.text.flip(0))
            else:
                videos.append(pair.video)
                texts.append(pair.text)
        return {
            "video": torch.stack(videos),
            "text": torch.stack(texts),
            "label": torch.tensor(0),
            "index": torch.tensor(video_idx),
        }

    def sample_pairs(self, video_idx, rng) -> List[PairSample]:
        """The (clip, caption) pairs of one item (1, or 2 when the hypothesis has shift views), drawn from ``rng``.

        Raises:
            UnusableVideo / DecodeError: see the module docstring.
        """
        caps = self.captions.get(self.video_ids[video_idx])
        n = len(caps)
        rows = [rng.randrange(n)]
        if self.num_pairs == 2:
            if n > 1:
                other = rng.randrange(n - 1)
                rows.append(other + 1 if other >= rows[0] else other)
            else:
                rows.append(rows[0])
        windows = [widen_window(caps.start[r], caps.end[r], self.min_time) for r in rows]

        def choose(duration):
            if duration + 1e-6 < self.clip_len:
                raise UnusableVideo(f"{self.paths[video_idx]}: {duration:.3f} s is shorter than a clip "
                                    f"({self.clip_len:.3f} s)")
            return [sample_clip_start(w[0], w[1], self.clip_len, rng, duration) for w in windows]

        d = self.cfg.DATA
        _, clips = decode_clips_at(self.paths[video_idx], choose, num_frames=d.NUM_FRAMES,
                                   sampling_rate=d.SAMPLING_RATE, target_fps=d.TARGET_FPS,
                                   threads=0 if self.cfg.DATA_LOADER.ENABLE_MULTI_THREAD_DECODE else 1)
        pairs = []
        for r, w, clip in zip(rows, windows, clips):
            pairs.append(PairSample(caption_index=r, window=w, clip_start=float(clip.start_sec),
                                    video=self.video_transform(clip.frames, rng), text=self.tokenizer(caps.text[r])))
        return pairs

    def video_transform(self, frames, rng):
        """``T x H x W x 3`` uint8 -> ``3 x T x S x S`` float: square crop of side ``min(H, W)`` at a random position,
        bilinear resize to ``S = DATA.TRAIN_CROP_SIZE`` (antialiased when shrinking), ``/255`` and optional mean /
        std normalisation. With ``DATA.FAST_AUGMENT`` (default) the crop and the resize work on the uint8 frames and
        only the small result is converted to float, in the pass that normalises it (same draws; pixels differ from
        the float path by the uint8 rounding of the resized frame, at most one grey level)."""
        h, w = frames.shape[1:3]
        side = min(h, w)
        y0, x0 = rng.randint(0, h - side), rng.randint(0, w - side)
        crop = frames[:, y0:y0 + side, x0:x0 + side]
        normalise = self.cfg.TEXT.VIDEO_NORMALIZE == "mean_std"
        if self.cfg.DATA.FAST_AUGMENT:
            x = crop.permute(0, 3, 1, 2)  # T x 3 x side x side, a view
            if side != self.crop_size:
                x = F.interpolate(x.contiguous(memory_format=torch.channels_last), size=(self.crop_size,) * 2,
                                  mode="bilinear", align_corners=False, antialias=side > self.crop_size)
            mean, std = (self.cfg.DATA.MEAN, self.cfg.DATA.STD) if normalise else ((0.0,) * 3, (1.0,) * 3)
            return T.finish_view_u8(x, mean=mean, std=std)
        x = T.uint8_thwc_to_float_cthw(crop)
        if side != self.crop_size:
            x = F.interpolate(x, size=(self.crop_size, self.crop_size), mode="bilinear", align_corners=False,
                              antialias=side > self.crop_size)
        if normalise:
            x = T.normalize(x, self.cfg.DATA.MEAN, self.cfg.DATA.STD)
        return x.contiguous()
