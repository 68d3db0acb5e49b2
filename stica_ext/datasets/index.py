"""Video lists of audio-visual datasets and a cached validity index.

Listing (:func:`list_videos`) supports three layouts, chosen by ``DATA.LAYOUT``:

* ``"folders"``: ``<root>/<split dir>/<class>/<video>`` (Kinetics, VGGSound, AudioSet-style class folders, UCF101 /
  HMDB51 folders).  The label is the position of the class folder in the sorted list of class folders (0-based).  The
  class list is the sorted union of the class folders of this split and of the training split, so that every split
  numbers the classes the same way even when one of them lacks a class; ``DATA.CLASS_NAMES_FILE`` fixes it instead.
  Files are filtered by extension (``DATA.VIDEO_EXTENSIONS``, case-insensitive); hidden files and folders are ignored.
* ``"csv"``: PySlowFast lists ``<root>/<split name>.csv``, one ``path<DATA.PATH_LABEL_SEPARATOR>label`` per line, no
  header, ``DATA.PATH_PREFIX`` prepended (read by :func:`stica_ext.datasets.av_dataset.read_video_csv`).  Class
  names come from ``DATA.CLASS_NAMES_FILE``, else ``<root>/classes.txt`` (one name per line), else ``"0", "1", ...``.
* ``"kinetics_csv"``: the official Kinetics CSVs ``<root>/<split name>.csv`` (or ``<root>/annotations/...``) with
  the header ``label,youtube_id,time_start,time_end,split[,is_cc]`` (quoted labels; the test CSV may lack ``label``),
  mapped to downloaded clips ``<youtube_id>_<time_start:06d>_<time_end:06d>.<ext>`` found anywhere below the split
  folder (normally ``<split dir>/<label>/``; files named ``<youtube_id>.<ext>`` are accepted too).  Rows whose file is
  missing are reported and skipped.  Classes are the sorted labels of the split's and the training split's CSVs.
* ``"auto"``: ``kinetics_csv`` when the split's CSV starts with a Kinetics header, ``csv`` when it is another CSV,
  else ``folders``.

Split names map to folder / CSV names through ``DATA.SPLIT_DIRS`` entries ``"split:name1,name2"`` (first existing
name wins; ``"."`` is the root itself); without an entry ``train`` tries ``train, training``, ``val`` tries ``val,
validate, validation, valid``, ``test`` tries ``test, testing``, and any other split its own name.

Validity index (:func:`build_valid_index`): every listed video is probed once with PyAV (in a process pool) for
whether it opens and decodes, its video and audio streams and their durations (stream metadata, the Matroska
``DURATION`` tag, else the timestamps of the last packets).  Probe results are cached in a gzip-compressed JSON file
next to the data (``<root>/.stica_index/<split>.json.gz``; when that folder cannot be written, under
``$STICA_EXT_CACHE/index`` or ``~/.cache/stica_ext/index``), keyed by absolute path, file size and modification
time: a re-run probes only new or changed files and ignores stale entries, whatever the working directory.  The
clip-length thresholds are applied when the index is read, so changing the clip length never invalidates the cache.
A video is valid iff it decodes, its video stream lasts at least the clip length and, when audio is needed, it has
an audio stream lasting at least the audio window (``AUDIO.MISSING "silence"`` keeps videos without audio, or with
a short track, to be given silent / zero-padded audio).
"""

import csv
import gzip
import hashlib
import io
import json
import logging
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from ..utils.io import PathManager
from ..utils.processes import map_in_processes

logger = logging.getLogger(__name__)

LAYOUTS = ("auto", "csv", "folders", "kinetics_csv")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".ogv", ".3gp")
DEFAULT_SPLIT_NAMES = {
    "train": ("train", "training"),
    "val": ("val", "validate", "validation", "valid"),
    "test": ("test", "testing"),
}
KINETICS_COLUMNS = ("youtube_id", "time_start", "time_end")

# Cache file format version: bump when the probe output changes, so older caches are ignored.
INDEX_VERSION = 1
INDEX_FORMAT = "stica_ext.video_index"
INDEX_DIRNAME = ".stica_index"
# A duration this much shorter than required still passes (timestamps are rounded to the stream time base).
DURATION_TOLERANCE = 0.02
# Exclusion reasons, in table order.
REASONS = ("missing", "empty", "corrupt", "no_video", "no_audio", "video_too_short", "audio_too_short")
# Fewer files than this to probe: probe in this process (starting worker processes would cost more).
MIN_POOL_JOBS = 32
# Rewrite the cache at least this often (seconds) while probing, so an interrupted run keeps its work.
SAVE_EVERY_SEC = 120.0


# ---------------------------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------------------------


def _cfg_get(cfg, key, default):
    """``cfg.A.B`` for ``key = "A.B"``, or ``default`` when a node or key is absent."""
    node = cfg
    for part in key.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            return default
    return node


def parse_split_dirs(entries) -> Dict[str, Tuple[str, ...]]:
    """``["train:train_avi-480p", "val:val_avi-480p,validate"]`` -> ``{"train": ("train_avi-480p",), ...}``.

    A mapping is accepted as is (values may be a string or a list of names).
    """
    if not entries:
        return {}
    if isinstance(entries, Mapping):
        items = entries.items()
    else:
        items = []
        for entry in entries:
            if not isinstance(entry, str) or ":" not in entry:
                raise ValueError(f"DATA.SPLIT_DIRS entries must look like 'split:dir1,dir2', got {entry!r}")
            split, names = entry.split(":", 1)
            items.append((split, names))
    out = {}
    for split, names in items:
        if isinstance(names, str):
            names = names.split(",")
        names = tuple(n.strip() for n in names if n.strip())
        if not split.strip() or not names:
            raise ValueError(f"DATA.SPLIT_DIRS: empty split or folder name in {split!r}: {names!r}")
        out[split.strip()] = names
    return out


@dataclass(frozen=True)
class ListOptions:
    """Everything :func:`list_videos` needs (see :meth:`from_cfg` for the config keys)."""

    root: str
    layout: str = "auto"
    path_prefix: str = ""
    separator: str = " "
    split_dirs: Mapping[str, Tuple[str, ...]] = field(default_factory=dict)
    extensions: Tuple[str, ...] = VIDEO_EXTENSIONS
    class_names_file: str = ""

    @classmethod
    def from_cfg(cls, cfg, root=None):
        """Options from ``DATA.PATH_TO_DATA_DIR`` (or ``root``), ``DATA.LAYOUT``, ``DATA.PATH_PREFIX``,
        ``DATA.PATH_LABEL_SEPARATOR``, ``DATA.SPLIT_DIRS``, ``DATA.VIDEO_EXTENSIONS``, ``DATA.CLASS_NAMES_FILE``
        (keys absent from ``cfg`` take the defaults of this class)."""
        return cls(
            root=root if root is not None else _cfg_get(cfg, "DATA.PATH_TO_DATA_DIR", ""),
            layout=_cfg_get(cfg, "DATA.LAYOUT", "auto"),
            path_prefix=_cfg_get(cfg, "DATA.PATH_PREFIX", ""),
            separator=_cfg_get(cfg, "DATA.PATH_LABEL_SEPARATOR", " "),
            split_dirs=parse_split_dirs(_cfg_get(cfg, "DATA.SPLIT_DIRS", [])),
            extensions=tuple(_cfg_get(cfg, "DATA.VIDEO_EXTENSIONS", VIDEO_EXTENSIONS)),
            class_names_file=_cfg_get(cfg, "DATA.CLASS_NAMES_FILE", ""),
        )

    def split_names(self, split) -> Tuple[str, ...]:
        """Folder / CSV base names tried for ``split``, in order."""
        if split in self.split_dirs:
            return tuple(self.split_dirs[split])
        return DEFAULT_SPLIT_NAMES.get(split, (split,))


def _as_options(cfg_or_args, root=None) -> ListOptions:
    if isinstance(cfg_or_args, ListOptions):
        if root is not None:
            return ListOptions(**{**cfg_or_args.__dict__, "root": root})
        return cfg_or_args
    if isinstance(cfg_or_args, Mapping) and "DATA" in cfg_or_args:
        return ListOptions.from_cfg(cfg_or_args, root=root)
    values = dict(cfg_or_args) if isinstance(cfg_or_args, Mapping) else dict(vars(cfg_or_args))
    known = {k: v for k, v in values.items() if k in ListOptions.__dataclass_fields__}
    if root is not None:
        known["root"] = root
    if "split_dirs" in known:
        known["split_dirs"] = parse_split_dirs(known["split_dirs"])
    if "extensions" in known:
        known["extensions"] = tuple(known["extensions"])
    return ListOptions(**known)


# ---------------------------------------------------------------------------------------------------------------
# Listing
# ---------------------------------------------------------------------------------------------------------------


def list_videos(cfg_or_args, split, root=None) -> Tuple[List[str], List[int], List[str]]:
    """Videos of a split: ``(paths, labels, class_names)``.

    Args:
        cfg_or_args: a config (keys of :meth:`ListOptions.from_cfg`), a :class:`ListOptions`, or a namespace / dict
            with :class:`ListOptions` field names (``root``, ``layout``, ...).
        split: split name (``"train"``, ``"val"``, ``"test"`` or any name mapped by ``DATA.SPLIT_DIRS``).
        root: dataset folder overriding ``DATA.PATH_TO_DATA_DIR`` / ``root``.

    Returns:
        ``paths`` (absolute, sorted by class then file name for folder layouts, in file order for CSVs), ``labels``
        (0-based ints; -1 for unlabelled Kinetics test rows) and ``class_names`` (``class_names[label]``).

    Raises:
        FileNotFoundError: the root, split folder or CSV is missing (the message names the paths tried).
        ValueError: unknown layout, or an empty split folder / CSV.
    """
    opts = _as_options(cfg_or_args, root)
    if not opts.root:
        raise ValueError("DATA.PATH_TO_DATA_DIR is empty: set it to the dataset folder")
    root_dir = os.path.abspath(os.path.expanduser(opts.root)) if "://" not in opts.root else opts.root
    if not PathManager.isdir(root_dir):
        raise FileNotFoundError(f"dataset folder not found: {root_dir} (DATA.PATH_TO_DATA_DIR)")
    opts = ListOptions(**{**opts.__dict__, "root": root_dir})
    layout = resolve_layout(opts, split)
    if layout == "csv":
        return _list_csv(opts, split)
    if layout == "kinetics_csv":
        return _list_kinetics(opts, split)
    return _list_folders(opts, split)


def resolve_layout(opts: ListOptions, split) -> str:
    """The concrete layout (``csv``, ``folders`` or ``kinetics_csv``) used for ``split``."""
    layout = str(opts.layout).lower()
    if layout not in LAYOUTS:
        raise ValueError(f"DATA.LAYOUT must be one of {', '.join(LAYOUTS)}, got {opts.layout!r}")
    if layout != "auto":
        return layout
    csv_path = _find_csv(opts, split, kinetics=True)
    if csv_path is not None:
        return "kinetics_csv" if _is_kinetics_csv(csv_path) else "csv"
    if _find_split_dir(opts, split) is not None:
        return "folders"
    tried = [os.path.join(opts.root, n + ".csv") for n in opts.split_names(split)]
    tried += [_join(opts.root, n) for n in opts.split_names(split)]
    raise FileNotFoundError(f"no list or folder for split {split!r} under {opts.root} (DATA.LAYOUT auto); "
                            f"tried: {', '.join(tried)}")


def _join(root, name):
    return root if name in (".", "") else os.path.join(root, name)


def _find_split_dir(opts, split) -> Optional[str]:
    for name in opts.split_names(split):
        d = _join(opts.root, name)
        if PathManager.isdir(d):
            return d
    return None


def _require_split_dir(opts, split) -> str:
    d = _find_split_dir(opts, split)
    if d is None:
        tried = ", ".join(_join(opts.root, n) for n in opts.split_names(split))
        raise FileNotFoundError(f"split folder for {split!r} not found; tried: {tried} (set DATA.SPLIT_DIRS to map "
                                f"the split to its folder)")
    return d


def _find_csv(opts, split, kinetics=False) -> Optional[str]:
    folders = [opts.root] + ([os.path.join(opts.root, "annotations")] if kinetics else [])
    for folder in folders:
        for name in opts.split_names(split):
            p = os.path.join(folder, name + ".csv")
            if PathManager.isfile(p):
                return p
    return None


def _require_csv(opts, split, kinetics=False) -> str:
    p = _find_csv(opts, split, kinetics)
    if p is None:
        folders = [opts.root] + ([os.path.join(opts.root, "annotations")] if kinetics else [])
        tried = ", ".join(os.path.join(f, n + ".csv") for f in folders for n in opts.split_names(split))
        raise FileNotFoundError(f"video list for split {split!r} not found; tried: {tried}")
    return p


def _is_kinetics_csv(path) -> bool:
    with PathManager.open(path, "r") as f:
        for line in f:
            if line.strip():
                head = [c.strip().strip('"').lower() for c in line.strip().split(",")]
                return all(c in head for c in KINETICS_COLUMNS)
    return False


def _is_hidden(name):
    return name.startswith(".") or name.startswith("@") or name == "__MACOSX"


def _class_dirs(split_dir, exclude=()) -> List[str]:
    names = []
    for name in PathManager.ls(split_dir):
        if _is_hidden(name):
            continue
        full = os.path.join(split_dir, name)
        if PathManager.isdir(full) and os.path.abspath(full) not in exclude:
            names.append(name)
    return sorted(names)


def _read_class_names_file(path) -> List[str]:
    from ..utils.io import read_text_lines

    names = [line.strip() for line in read_text_lines(path) if line.strip()]
    if not names:
        raise ValueError(f"class names file is empty: {path} (DATA.CLASS_NAMES_FILE)")
    if len(set(names)) != len(names):
        raise ValueError(f"class names file lists a class twice: {path} (DATA.CLASS_NAMES_FILE)")
    return names


def _list_folders(opts, split):
    split_dir = _require_split_dir(opts, split)
    # Folders of other splits (e.g. "val" inside a root that is itself the training split) are not classes.
    others = set()
    for other in set(DEFAULT_SPLIT_NAMES) | set(opts.split_dirs):
        d = _find_split_dir(opts, other) if other != split else None
        if d is not None and os.path.abspath(d) != os.path.abspath(split_dir):
            others.add(os.path.abspath(d))
    classes = _class_dirs(split_dir, others)
    if opts.class_names_file:
        class_names = _read_class_names_file(opts.class_names_file)
        unknown = [c for c in classes if c not in class_names]
        if unknown:
            raise ValueError(f"{split_dir}: class folders {unknown[:5]} are not in {opts.class_names_file} "
                             f"(DATA.CLASS_NAMES_FILE)")
    else:
        names = set(classes)
        train_dir = _find_split_dir(opts, "train") if split != "train" else None
        if train_dir is not None and os.path.abspath(train_dir) != os.path.abspath(split_dir):
            names |= set(_class_dirs(train_dir, others | {os.path.abspath(split_dir)}))
        class_names = sorted(names)
    if not classes:
        raise ValueError(f"split folder {split_dir} has no class folders (expected <split>/<class>/<video>)")
    label_of = {c: i for i, c in enumerate(class_names)}
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in opts.extensions)
    paths, labels = [], []
    for c in classes:
        cdir = os.path.join(split_dir, c)
        for name in sorted(PathManager.ls(cdir)):
            if _is_hidden(name) or not name.lower().endswith(exts):
                continue
            full = os.path.join(cdir, name)
            if PathManager.isfile(full):
                paths.append(full)
                labels.append(label_of[c])
    if not paths:
        raise ValueError(f"split folder {split_dir} has {len(classes)} class folders but no video files with "
                         f"extensions {' '.join(exts)} (DATA.VIDEO_EXTENSIONS)")
    return paths, labels, class_names


def _list_csv(opts, split):
    from .av_dataset import read_video_csv  # imported here: av_dataset imports this module

    path = _require_csv(opts, split)
    paths, labels = read_video_csv(path, opts.path_prefix, opts.separator)
    paths = [os.path.abspath(p) if "://" not in p else p for p in paths]
    num_labels = max(labels) + 1
    bad = [lab for lab in labels if lab < 0]
    if bad:
        raise ValueError(f"{path}: negative label {bad[0]}")
    if opts.class_names_file:
        class_names = _read_class_names_file(opts.class_names_file)
        if num_labels > len(class_names):
            raise ValueError(f"{path}: label {num_labels - 1} is outside the {len(class_names)} classes of "
                             f"{opts.class_names_file} (DATA.CLASS_NAMES_FILE)")
        return paths, labels, class_names
    classes_txt = os.path.join(opts.root, "classes.txt")
    if PathManager.isfile(classes_txt):
        with PathManager.open(classes_txt, "r") as f:
            class_names = [line.strip() for line in f.read().splitlines() if line.strip()]
        if num_labels <= len(class_names):
            return paths, labels, class_names
        logger.warning("%s lists %d classes but %s uses label %d; naming classes by number", classes_txt,
                       len(class_names), path, num_labels - 1)
    return paths, labels, [str(i) for i in range(num_labels)]


def read_kinetics_csv(path) -> List[Dict[str, object]]:
    """Rows of an official Kinetics CSV: dicts with ``label`` (str or None), ``youtube_id``, ``time_start``,
    ``time_end`` (ints, seconds).  Duplicate rows are dropped."""
    with PathManager.open(path, "r") as f:
        text = f.read()
    reader = csv.DictReader(io.StringIO(text))
    fields = [c.strip().lower() for c in (reader.fieldnames or [])]
    missing = [c for c in KINETICS_COLUMNS if c not in fields]
    if missing:
        raise ValueError(f"{path}: not a Kinetics CSV (header {reader.fieldnames}, missing columns {missing})")
    rows, seen = [], set()
    for lineno, raw in enumerate(reader, 2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        try:
            start, end = int(float(row["time_start"])), int(float(row["time_end"]))
        except ValueError as e:
            raise ValueError(f"{path}:{lineno}: bad time_start/time_end in {raw}") from e
        key = (row["youtube_id"], start, end)
        if key in seen:
            continue
        seen.add(key)
        rows.append({"label": row.get("label") or None, "youtube_id": row["youtube_id"], "time_start": start,
                     "time_end": end})
    if not rows:
        raise ValueError(f"{path}: the Kinetics CSV has no rows")
    return rows


def _list_kinetics(opts, split):
    csv_path = _require_csv(opts, split, kinetics=True)
    rows = read_kinetics_csv(csv_path)
    video_dir = _require_split_dir(opts, split)
    if opts.class_names_file:
        class_names = _read_class_names_file(opts.class_names_file)
    else:
        names = {r["label"] for r in rows if r["label"]}
        train_csv = _find_csv(opts, "train", kinetics=True) if split != "train" else None
        if train_csv is not None and os.path.abspath(train_csv) != os.path.abspath(csv_path):
            names |= {r["label"] for r in read_kinetics_csv(train_csv) if r["label"]}
        class_names = sorted(names)
    label_of = {c: i for i, c in enumerate(class_names)}
    # One walk of the split folder: file stem -> path (clips may sit in class folders or directly in the folder).
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in opts.extensions)
    by_stem = {}
    for dirpath, dirnames, filenames in os.walk(video_dir):
        dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d))
        for name in sorted(filenames):
            stem, ext = os.path.splitext(name)
            if ext.lower() in exts and not _is_hidden(name):
                by_stem.setdefault(stem, os.path.join(dirpath, name))
    paths, labels, missing = [], [], []
    for r in rows:
        stem = f"{r['youtube_id']}_{r['time_start']:06d}_{r['time_end']:06d}"
        p = by_stem.get(stem) or by_stem.get(r["youtube_id"])
        if p is None:
            missing.append(stem)
            continue
        if r["label"] is not None and r["label"] not in label_of:
            raise ValueError(f"{csv_path}: label {r['label']!r} is not in {opts.class_names_file} "
                             f"(DATA.CLASS_NAMES_FILE)")
        paths.append(p)
        labels.append(label_of[r["label"]] if r["label"] is not None else -1)
    if missing:
        logger.warning("%s: %d of %d clips listed in %s were not found under %s and are skipped (e.g. %s)", split,
                       len(missing), len(rows), csv_path, video_dir, ", ".join(missing[:5]))
    if not paths:
        raise ValueError(f"none of the {len(rows)} clips of {csv_path} was found under {video_dir} (expected files "
                         f"named <youtube_id>_<time_start:06d>_<time_end:06d>{exts[0]})")
    return paths, labels, class_names


# ---------------------------------------------------------------------------------------------------------------
# Probing
# ---------------------------------------------------------------------------------------------------------------


def _parse_hms(value) -> Optional[float]:
    """``"HH:MM:SS.fff"`` (Matroska DURATION tag) -> seconds."""
    m = re.match(r"^\s*(\d+):(\d{1,2}):(\d{1,2}(?:\.\d*)?)\s*$", str(value))
    if not m:
        return None
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


def _metadata_duration(container, stream) -> Optional[float]:
    """Duration (s) of a stream from its metadata: ``stream.duration`` or a ``DURATION`` tag; None if absent."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    for key, value in (stream.metadata or {}).items():
        if key.upper() == "DURATION":
            seconds = _parse_hms(value)
            if seconds is not None and seconds > 0:
                return seconds
    return None


def _duration_from_packets(container, stream) -> Optional[float]:
    """Duration (s) of a stream from packet timestamps: the end of the last packet minus the stream start.

    Seeks to a few seconds before the container's end when its duration is known (and the stream start is known),
    else reads every packet of the stream (demuxing only, no decoding).
    """
    import av

    tb = stream.time_base
    if not tb:
        return None
    start = stream.start_time
    attempts = []
    if container.duration and container.duration > 0 and start is not None:
        attempts.append(max(container.duration / av.time_base - 10.0, 0.0))
    attempts.append(None)  # whole stream from the beginning
    for seek_sec in attempts:
        first, end = None, None
        try:
            if seek_sec:
                offset = int(seek_sec * av.time_base) + (container.start_time or 0)
                container.seek(offset, backward=True, any_frame=False)
            else:
                container.seek(container.start_time or 0, backward=True, any_frame=False)
        except (av.FFmpegError, OSError, ValueError):
            if seek_sec:
                continue
        try:
            for packet in container.demux(stream):
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None:
                    continue
                first = ts if first is None else min(first, ts)
                e = ts + (packet.duration or 0)
                end = e if end is None else max(end, e)
        except (av.FFmpegError, OSError, EOFError, ValueError):
            pass
        if end is not None:
            origin = start if start is not None else first
            return max(float((end - origin) * tb), 0.0)
    return None


def _stream_duration(container, stream):
    seconds = _metadata_duration(container, stream)
    if seconds is None:
        seconds = _duration_from_packets(container, stream)
    return seconds


def probe_video(path) -> Dict[str, object]:
    """Probe one file with PyAV.

    Returns a dict: ``status`` (``"ok"``, ``"missing"``, ``"empty"``, ``"corrupt"`` or ``"no_video"``),
    ``video_sec`` / ``audio_sec`` (stream durations in seconds, None when unknown / no audio stream), ``has_audio``,
    ``fps``, ``width``, ``height``, ``audio_rate`` and ``error`` (a message for a failed probe).  The first video
    frame is decoded, so files with a readable header but undecodable content count as corrupt.
    """
    import av

    out = {"status": "ok", "video_sec": None, "audio_sec": None, "has_audio": False, "fps": None, "width": None,
           "height": None, "audio_rate": None, "error": ""}
    if not os.path.isfile(path):
        return {**out, "status": "missing", "error": "no such file"}
    if os.path.getsize(path) == 0:
        return {**out, "status": "empty", "error": "empty file"}
    errors = (av.FFmpegError, OSError, EOFError, ValueError, IndexError, RuntimeError)
    try:
        container = av.open(path, metadata_errors="ignore")
    except errors as e:
        return {**out, "status": "corrupt", "error": f"cannot open: {type(e).__name__}: {e}"}
    try:
        if not container.streams.video:
            return {**out, "status": "no_video", "error": "no video stream",
                    "has_audio": bool(container.streams.audio)}
        v = container.streams.video[0]
        rate = v.average_rate or v.guessed_rate or v.base_rate
        out.update(fps=float(rate) if rate else None, width=v.codec_context.width or None,
                   height=v.codec_context.height or None)
        got_frame = False
        for _ in container.decode(v):
            got_frame = True
            break
        if not got_frame:
            return {**out, "status": "corrupt", "error": "no video frame could be decoded"}
        out["video_sec"] = _stream_duration(container, v)
        if out["video_sec"] is None:
            return {**out, "status": "corrupt", "error": "video stream has no timestamps"}
        if container.streams.audio:
            a = container.streams.audio[0]
            out["has_audio"] = True
            out["audio_rate"] = int(a.codec_context.sample_rate or a.rate or 0) or None
            out["audio_sec"] = _stream_duration(container, a) or 0.0
        return out
    except errors as e:
        return {**out, "status": "corrupt", "error": f"decoding failed: {type(e).__name__}: {e}"}
    finally:
        container.close()


def _probe_job(job):
    index, path = job
    return index, probe_video(path)


# ---------------------------------------------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------------------------------------------


def user_cache_dir() -> str:
    """``$STICA_EXT_CACHE/index`` or ``~/.cache/stica_ext/index``: where indexes of read-only datasets go."""
    base = os.environ.get("STICA_EXT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "stica_ext")
    return os.path.join(base, "index")


def _path_hash(path) -> str:
    return hashlib.sha1(os.path.abspath(path).encode("utf-8")).hexdigest()[:16]


def default_cache_path(root, split, cache_dir="") -> str:
    """Index file of a split: ``<root>/.stica_index/<split>.json.gz``, or ``<cache_dir>/<hash of root>/...`` when
    ``cache_dir`` (``DATA.INDEX_CACHE_DIR``) is set."""
    root = os.path.abspath(os.path.expanduser(root))
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(split)) + ".json.gz"
    if cache_dir:
        return os.path.join(os.path.abspath(os.path.expanduser(cache_dir)), _path_hash(root), name)
    return os.path.join(root, INDEX_DIRNAME, name)


def fallback_cache_path(cache_path) -> str:
    """Where the index of ``cache_path`` goes when that location cannot be written (read-only data)."""
    return os.path.join(user_cache_dir(), _path_hash(os.path.dirname(os.path.abspath(cache_path))),
                        os.path.basename(cache_path))


def _fingerprint(path) -> Optional[Tuple[int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return int(st.st_size), int(st.st_mtime_ns)


def _load_cache_file(path) -> Dict[str, dict]:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as e:
        logger.warning("cannot read video index %s (%s); ignoring it", path, e)
        return {}
    try:
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        data = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError, EOFError) as e:
        logger.warning("video index %s is unreadable (%s); ignoring it", path, e)
        return {}
    if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT or data.get("version") != INDEX_VERSION:
        logger.info("video index %s has another format/version; ignoring it", path)
        return {}
    entries = data.get("entries")
    return entries if isinstance(entries, dict) else {}


def load_cache(cache_path) -> Dict[str, dict]:
    """Cached probe entries (``{absolute path: entry}``) of ``cache_path`` and of its fallback location."""
    if not cache_path:
        return {}
    entries = dict(_load_cache_file(fallback_cache_path(cache_path)))
    entries.update(_load_cache_file(cache_path))
    return entries


def _write_cache_file(path, entries) -> None:
    payload = json.dumps({"format": INDEX_FORMAT, "version": INDEX_VERSION, "entries": entries}, sort_keys=True,
                         separators=(",", ":")).encode("utf-8")
    data = gzip.compress(payload, mtime=0)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_cache(cache_path, entries) -> Optional[str]:
    """Write ``entries`` atomically to ``cache_path``, or to :func:`fallback_cache_path` when that fails.  Returns
    the file written (None if neither location is writable)."""
    for path in (cache_path, fallback_cache_path(cache_path)):
        try:
            _write_cache_file(path, entries)
            if path != cache_path:
                logger.info("video index folder %s is not writable; index written to %s",
                            os.path.dirname(cache_path), path)
            return path
        except OSError as e:
            last = e
    logger.warning("could not write the video index to %s or %s (%s); videos will be probed again next time",
                   cache_path, fallback_cache_path(cache_path), last)
    return None


# ---------------------------------------------------------------------------------------------------------------
# Validity index
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class IndexSummary:
    """What :func:`build_valid_index` found.

    Attributes:
        total: listed videos.  valid: videos kept.
        counts: excluded videos per reason (keys :data:`REASONS`).
        kept_silent: kept videos without an audio stream (to be given silent audio).
        kept_short_audio: kept videos whose audio track is shorter than the audio window (zero-padded).
        probed: files probed in this call.  cached: files answered by the cache.
        examples: up to 5 excluded paths per reason.
        cache_path: the index file read / written (None without cache).
        clip_sec, audio_sec, need_audio, missing_audio: the thresholds applied.
    """

    total: int = 0
    valid: int = 0
    counts: Dict[str, int] = field(default_factory=lambda: {r: 0 for r in REASONS})
    kept_silent: int = 0
    kept_short_audio: int = 0
    probed: int = 0
    cached: int = 0
    examples: Dict[str, List[str]] = field(default_factory=dict)
    cache_path: Optional[str] = None
    clip_sec: float = 0.0
    audio_sec: float = 0.0
    need_audio: bool = True
    missing_audio: str = "skip"

    @property
    def excluded(self) -> int:
        return sum(self.counts.values())

    def as_dict(self):
        return {"total": self.total, "valid": self.valid, **self.counts, "kept_silent": self.kept_silent,
                "kept_short_audio": self.kept_short_audio, "probed": self.probed, "cached": self.cached,
                "cache_path": self.cache_path}

    def __str__(self):
        parts = [f"{r}={n}" for r, n in self.counts.items() if n]
        if self.kept_silent:
            parts.append(f"kept with silent audio={self.kept_silent}")
        if self.kept_short_audio:
            parts.append(f"kept with zero-padded audio={self.kept_short_audio}")
        return (f"{self.valid}/{self.total} videos valid for {self.clip_sec:g} s clips"
                + (f" with {self.audio_sec:g} s of audio" if self.need_audio else "")
                + (f"; excluded: {', '.join(parts)}" if parts else "")
                + f" ({self.probed} probed, {self.cached} from the index {self.cache_path})")


_TABLE_COLUMNS = ("total", "valid") + REASONS + ("kept_silent", "probed", "cached")


def format_summary_table(summaries: Mapping[str, IndexSummary]) -> str:
    """A plain-text table, one row per split (``{split: summary}``)."""
    header = ["split"] + list(_TABLE_COLUMNS) + ["index file"]
    rows = []
    for split, s in summaries.items():
        d = s.as_dict()
        rows.append([split] + [str(d[c]) for c in _TABLE_COLUMNS] + [str(s.cache_path or "-")])
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i in (0, len(header) - 1) else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in [header] + rows]
    return "\n".join(lines)


def exclusion_reason(entry, clip_sec, audio_sec, need_audio, missing_audio="skip") -> str:
    """Why a probed video cannot give a clip (one of :data:`REASONS`), ``"silent"`` / ``"short_audio"`` for a video
    kept with silent / zero-padded audio, or ``""`` when it is fully valid."""
    status = entry.get("status")
    if status != "ok":
        return status if status in REASONS else "corrupt"
    video_sec = entry.get("video_sec")
    if video_sec is None or video_sec + DURATION_TOLERANCE < clip_sec:
        return "video_too_short"
    if need_audio:
        if not entry.get("has_audio"):
            return "no_audio" if missing_audio == "skip" else "silent"
        if (entry.get("audio_sec") or 0.0) + DURATION_TOLERANCE < audio_sec:
            return "audio_too_short" if missing_audio == "skip" else "short_audio"
    return ""


class _Progress:
    """A ``done/total`` counter on stderr (updated in place on a terminal, a line per 10% otherwise)."""

    def __init__(self, total, name, enabled):
        self.total, self.name, self.enabled = total, name, enabled and total > 0
        self.tty = self.enabled and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
        self.start = time.time()
        self.last = 0.0
        self.step = max(1, int(math.ceil(total / 10)))

    def update(self, done):
        if not self.enabled:
            return
        now = time.time()
        label = f"video index {self.name}" if self.name else "video index"
        msg = f"[{label}] probed {done}/{self.total} ({now - self.start:.1f} s)"
        if self.tty:
            if done == self.total or now - self.last >= 0.2:
                self.last = now
                print("\r" + msg, end="\n" if done == self.total else "", file=sys.stderr, flush=True)
        elif done % self.step == 0 or done == self.total:
            print(msg, file=sys.stderr, flush=True)


def _probe_all(jobs, num_workers, progress, on_result):
    """Probe ``jobs`` (``(index, path)``), calling ``on_result(index, entry)`` as results arrive."""
    bar = _Progress(len(jobs), progress if isinstance(progress, str) else "", bool(progress))
    workers = num_workers if len(jobs) >= MIN_POOL_JOBS else 1
    chunksize = max(1, min(64, len(jobs) // (max(workers, 1) * 8)))
    done = 0
    for index, entry in map_in_processes(_probe_job, jobs, workers, chunksize=chunksize):
        on_result(index, entry)
        done += 1
        bar.update(done)


def probe_videos(paths: Sequence[str], num_workers=0, cache_path=None, progress=True):
    """Probe entries of ``paths`` (in order), reusing and refreshing the cache at ``cache_path``.

    Returns ``(entries, probed, cached, cache_file)``: one :func:`probe_video` dict per path, the number of files
    probed now and answered by the cache, and the index file used (None without cache).
    """
    keys = [os.path.abspath(p) if "://" not in p else p for p in paths]
    cache = load_cache(cache_path) if cache_path else {}
    entries: List[Optional[dict]] = [None] * len(paths)
    fingerprints = {}
    jobs = []
    cached = 0
    for i, key in enumerate(keys):
        fp = _fingerprint(key)
        if fp is None:
            entries[i] = {"status": "missing", "error": "no such file"}
            continue
        if fp[0] == 0:
            entries[i] = {"status": "empty", "error": "empty file"}
            continue
        fingerprints[key] = fp
        hit = cache.get(key)
        if hit is not None and hit.get("size") == fp[0] and hit.get("mtime_ns") == fp[1]:
            entries[i] = hit
            cached += 1
        else:
            jobs.append((i, key))
    cache_file = cache_path if cache_path and os.path.exists(cache_path) else None
    if cache_path and cache_file is None and os.path.exists(fallback_cache_path(cache_path)):
        cache_file = fallback_cache_path(cache_path)

    def current_entries():
        # This list's entries plus entries of other files that are still up to date.
        out = {}
        for key, entry in cache.items():
            if key in fingerprints:
                continue
            fp = _fingerprint(key)
            if fp is not None and entry.get("size") == fp[0] and entry.get("mtime_ns") == fp[1]:
                out[key] = entry
        for key, entry in zip(keys, entries):
            if entry is not None and key in fingerprints:
                out[key] = entry
        return out

    if jobs:
        logger.info("probing %d of %d videos (%d answered by the index %s)", len(jobs), len(paths), cached,
                    cache_file or cache_path or "-")
        last_save = [time.time()]

        def on_result(index, entry):
            size, mtime_ns = fingerprints[keys[index]]
            entries[index] = {**entry, "size": size, "mtime_ns": mtime_ns}
            if cache_path and time.time() - last_save[0] > SAVE_EVERY_SEC:
                save_cache(cache_path, current_entries())
                last_save[0] = time.time()

        _probe_all(jobs, int(num_workers or 0), progress, on_result)
        if cache_path:
            cache_file = save_cache(cache_path, current_entries())
    elif cache_path and cache and len(current_entries()) != len(cache):
        cache_file = save_cache(cache_path, current_entries())  # drop stale entries
    return entries, len(jobs), cached, cache_file


def _explain(entry, reason, clip_sec, audio_sec):
    if reason == "video_too_short":
        v = entry.get("video_sec")
        return f"video stream {'of unknown length' if v is None else f'{v:.2f} s'} < clip {clip_sec:g} s"
    if reason == "audio_too_short":
        return f"audio stream {entry.get('audio_sec') or 0.0:.2f} s < audio window {audio_sec:g} s"
    if reason == "no_audio":
        return "no audio stream"
    return entry.get("error") or reason


def build_valid_index(paths, clip_sec, audio_sec=1.0, need_audio=True, num_workers=0, cache_path=None, *,
                      missing_audio="skip", progress=True, log_name=""):
    """Indices of the videos of ``paths`` that can give a clip, and an :class:`IndexSummary`.

    Args:
        paths: video files.
        clip_sec: clip length in seconds (``DATA.NUM_FRAMES * DATA.SAMPLING_RATE / DATA.TARGET_FPS``); the video
            stream must last at least this long.
        audio_sec: audio window in seconds (``AUDIO.NUM_SEC``); the audio stream must last at least this long.
        need_audio: whether clips need audio.
        num_workers: probe processes (``<= 1``: in this process).
        cache_path: index file (see :func:`default_cache_path`); None = no cache.
        missing_audio: ``"skip"`` excludes videos without audio (or with a too short track), ``"silence"`` keeps
            them (``AUDIO.MISSING``).
        progress: print a probe counter on stderr (a string is used as its label).
        log_name: prefix of the log line (e.g. the split).

    Returns:
        ``(valid_indices, summary)``: sorted indices into ``paths``.
    """
    if missing_audio not in ("skip", "silence"):
        raise ValueError(f"missing_audio must be 'skip' or 'silence' (AUDIO.MISSING), got {missing_audio!r}")
    if progress is True and log_name:
        progress = log_name
    entries, probed, cached, cache_file = probe_videos(paths, num_workers, cache_path, progress)
    summary = IndexSummary(total=len(paths), probed=probed, cached=cached, cache_path=cache_file,
                           clip_sec=float(clip_sec), audio_sec=float(audio_sec), need_audio=bool(need_audio),
                           missing_audio=missing_audio)
    valid = []
    for i, entry in enumerate(entries):
        reason = exclusion_reason(entry, clip_sec, audio_sec, need_audio, missing_audio)
        if reason in ("", "silent", "short_audio"):
            valid.append(i)
            summary.kept_silent += reason == "silent"
            summary.kept_short_audio += reason == "short_audio"
            continue
        summary.counts[reason] += 1
        ex = summary.examples.setdefault(reason, [])
        if len(ex) < 5:
            ex.append(f"{paths[i]} ({_explain(entry, reason, clip_sec, audio_sec)})")
    summary.valid = len(valid)
    prefix = f"{log_name}: " if log_name else ""
    logger.info("%s%s", prefix, summary)
    for reason, examples in summary.examples.items():
        logger.warning("%s%d videos excluded (%s), e.g. %s", prefix, summary.counts[reason], reason,
                       "; ".join(examples))
    return valid, summary


def clip_seconds(cfg) -> float:
    """Clip length in seconds: ``DATA.NUM_FRAMES * DATA.SAMPLING_RATE / DATA.TARGET_FPS``."""
    d = cfg.DATA
    return float(d.NUM_FRAMES) * float(d.SAMPLING_RATE) / float(d.TARGET_FPS)


def build_valid_index_from_cfg(cfg, paths, split, root=None, need_audio=None, num_workers=None, progress=True):
    """:func:`build_valid_index` with the thresholds, workers and cache location of ``cfg``.

    Uses ``DATA.NUM_FRAMES / SAMPLING_RATE / TARGET_FPS`` (clip length), ``AUDIO.NUM_SEC``, ``AUDIO.ENABLE`` (when
    ``need_audio`` is None), ``AUDIO.MISSING``, ``DATA.PROBE_WORKERS`` and ``DATA.INDEX_CACHE_DIR``; the index lives
    next to ``root`` (default ``DATA.PATH_TO_DATA_DIR``).
    """
    root = root if root is not None else cfg.DATA.PATH_TO_DATA_DIR
    if need_audio is None:
        need_audio = bool(_cfg_get(cfg, "AUDIO.ENABLE", True))
    if num_workers is None:
        num_workers = int(_cfg_get(cfg, "DATA.PROBE_WORKERS", 4))
    cache_path = default_cache_path(root, split, _cfg_get(cfg, "DATA.INDEX_CACHE_DIR", "")) if root else None
    return build_valid_index(paths, clip_seconds(cfg), float(_cfg_get(cfg, "AUDIO.NUM_SEC", 1.0)), need_audio,
                             num_workers, cache_path, missing_audio=_cfg_get(cfg, "AUDIO.MISSING", "skip"),
                             progress=progress, log_name=str(split))
