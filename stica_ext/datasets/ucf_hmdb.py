"""UCF101 and HMDB51 action-recognition datasets with their official 3-fold train / test splits.

Registered as ``Ucf101`` and ``Hmdb51`` (``TRAIN.DATASET: ucf101`` / ``hmdb51``) and, for demos and tests,
``Synthetic_ucf`` (the synthetic audio-visual videos in a UCF101-style tree, see
:func:`stica_ext.datasets.synthetic.write_ucf_style_splits`).

Layout
------
* ``DATA.PATH_TO_DATA_DIR``: the video root, one folder per class, ``<root>/<Class>/<video>``. The label of a
  video is the index of its class folder among the **sorted** class folders (0-based; folders whose name starts
  with ``.`` are ignored). ``classInd.txt`` and the labels written in the lists are checked, not used.
* ``DATA.ANNOTATION_DIR``: the split files (default: the video root).

  - UCF101 (``ucfTrainTestlist/``): ``classInd.txt`` (``"<1-based index> <Class>"``), ``trainlist0{f}.txt``
    (``"<Class>/<video>.avi <1-based label>"``), ``testlist0{f}.txt`` (``"<Class>/<video>.avi"``). Lines may end
    with CRLF. An entry selects the video whose path relative to the root equals it exactly (``/``-separated,
    compared as normalised relative paths, never by slicing strings), so the folder ``HandstandPushups/`` holding
    ``v_HandStandPushups_*.avi`` files needs no special case.
  - HMDB51 (``testTrainMulti_7030_splits/``): ``<class>_test_split{f}.txt`` per class, lines ``"<video>.avi <tag>"``
    (possibly with trailing spaces) with tag 1 = train, 2 = test, 0 = not used; the entry selects
    ``<class>/<video>.avi``.

* ``DATA.FOLD`` (1, 2 or 3) selects the fold. Split ``"train"`` reads the training list, ``"test"`` (and ``"val"``,
  an alias: these datasets have no validation split) the test list.

Errors (raised when the dataset is built, naming the files and the first offending entries): a missing split file,
a fold with no video in the requested split, a class folder that no entry of the fold's lists references (it would
shift every label after it), a malformed line, and a listed video that is not on disk (with
``DATA.SKIP_MISSING_VIDEOS`` such videos are dropped instead, logged and counted in :attr:`num_missing`).

Items
-----
PySlowFast's ``(frames_list, label, index, time, meta)``: ``frames_list = [3 x T x S x S]`` float (normalised),
``label`` the class index, ``index`` the clip index in the expanded list (``video_idx = index //
clips_per_video``), ``time`` the start time (s) of the clip, ``meta`` a dict with ``video_idx``, ``skipped`` (number
of unreadable videos met while producing the item), ``temporal_idx`` / ``spatial_idx`` (test views; -1 for random
training clips) and ``crop_box`` (int64 ``[y0, x0, h, w]`` of the crop in the frame it was cut from, after any
short-side resize).

* Training (``train_augment``): each video is listed ``TRAIN.CLIPS_PER_VIDEO`` times; every copy is a random clip
  (random start, see :mod:`.decoder`) with RandomResizedCrop (area ``DATA.TRAIN_JITTER_SCALES_RELATIVE``, aspect
  ratio ``DATA.TRAIN_JITTER_ASPECT_RELATIVE``, every valid offset possible) to ``DATA.TRAIN_CROP_SIZE``,
  horizontal flip (``DATA.RANDOM_FLIP``) and, with probability ``FINETUNE.COLOR_JITTER_PROB``, per-frame
  brightness / contrast / saturation jitter (``DATA.SSL_COLOR_BRI_CON_SAT``, RGB luminance, on ``[0, 1]`` pixels
  before normalisation). With empty relative scales the short-side jitter ``DATA.TRAIN_JITTER_SCALES`` + random
  crop is used instead (PySlowFast's rule).
* Testing: each video is listed ``TEST.NUM_ENSEMBLE_VIEWS x TEST.NUM_SPATIAL_CROPS`` times (10 x 3); copy ``v`` is
  temporal view ``v // NUM_SPATIAL_CROPS`` (start frame ``int(delta * k / NUM_ENSEMBLE_VIEWS)``) and spatial view
  ``v % NUM_SPATIAL_CROPS`` (left / centre / right, or top / centre / bottom for portrait frames; the centre for a
  single crop), deterministic: short side resized to ``DATA.TEST_CROP_SIZE``, uniform crop, no colour jitter.
  ``FINETUNE.REFERENCE_TEST_AUGMENT`` reproduces the reference evaluation instead (random short side in
  ``DATA.TRAIN_JITTER_SCALES``, uniform crop of ``DATA.TRAIN_CROP_SIZE``, colour jitter with
  ``FINETUNE.COLOR_JITTER_PROB``), for comparison only.

Randomness: an item's clip and augmentation come from ``random.Random`` seeded by ``(RNG_SEED, dataset, fold,
split, epoch, index, attempt)`` (pass ``(index, epoch)`` keys as :class:`~stica_ext.datasets.loader.EpochSampler`
does, or plain indices = epoch 0). A training video that cannot be decoded is logged once, counted in
``meta["skipped"]`` and replaced by a random other video (after ``DATA.NUM_RETRIES`` failures in a row the item
raises). A test view that cannot be decoded is returned as zeros with ``meta["skipped"] = 1`` so that the evaluation
can leave it out (a substitute video would be aggregated under the wrong video).
"""

import logging
import math
import os
import posixpath
import random

import torch
import torch.nn.functional as F

from ..registry import DATASET_REGISTRY, register_as
from ..utils.io import PathManager, read_text_lines
from . import transforms as T
from .decoder import DecodeError, decode_clips, stage
from .transforms import random_resized_crop_box

logger = logging.getLogger(__name__)

__all__ = [
    "SplitFileError",
    "list_class_folders",
    "list_videos",
    "read_ucf101_fold",
    "read_hmdb51_fold",
    "select_fold",
    "random_resized_crop_box",
    "uniform_crop_box",
    "finetune_train_transform",
    "finetune_test_transform",
    "reference_test_transform",
    "FoldVideoDataset",
    "Ucf101",
    "Hmdb51",
    "SyntheticUcf",
]

_SHOW = 5  # offending entries named in an error message


class SplitFileError(ValueError):
    """An inconsistency between the split files and the videos on disk (the message names files and entries)."""


def _first(items, n=_SHOW):
    items = list(items)
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return f"{items[:n]}{more}"


def _norm_rel(path):
    """A listed path as a normalised ``/``-separated relative path (``a/./b`` -> ``a/b``, ``\\`` -> ``/``)."""
    p = posixpath.normpath(path.strip().replace("\\", "/"))
    return p[2:] if p.startswith("./") else p


# -------------------------------------------------------------------------------------------------------------------
# Files on disk
# -------------------------------------------------------------------------------------------------------------------
def list_class_folders(root):
    """Sorted names of the class folders under ``root`` (hidden folders ignored); the label of a class is its
    position in this list."""
    if not root:
        raise ValueError("DATA.PATH_TO_DATA_DIR is empty: set it to the video root (one folder per class)")
    if not PathManager.isdir(root):
        raise FileNotFoundError(f"video root not found: {root} (DATA.PATH_TO_DATA_DIR)")
    return sorted(n for n in PathManager.ls(root) if not n.startswith(".") and PathManager.isdir(os.path.join(root, n)))


def list_videos(root, classes):
    """Relative paths ``<Class>/<file>`` of the files in the class folders (hidden files ignored)."""
    out = set()
    for c in classes:
        folder = os.path.join(root, c)
        for n in PathManager.ls(folder):
            if not n.startswith(".") and PathManager.isfile(os.path.join(folder, n)):
                out.add(f"{c}/{n}")
    return out


def _read_lines(path, what):
    if not PathManager.exists(path):
        raise FileNotFoundError(f"{what} not found: {path} (DATA.ANNOTATION_DIR)")
    return read_text_lines(path)


# -------------------------------------------------------------------------------------------------------------------
# Split files
# -------------------------------------------------------------------------------------------------------------------
def _check_fold(fold):
    if int(fold) not in (1, 2, 3):
        raise ValueError(f"fold must be 1, 2 or 3 (DATA.FOLD), got {fold}")
    return int(fold)


def read_ucf101_fold(annotation_dir, fold):
    """Entries of UCF101 fold ``fold``: ``{"train": [...], "test": [...]}`` normalised relative paths in file
    order, ``"files": {"train": path, "test": path}``.

    ``classInd.txt`` is read too, and every label written in the training list must be the ``classInd`` index of
    the entry's class folder (a mismatch means the files do not belong together)."""
    fold = _check_fold(fold)
    class_ind_path = os.path.join(annotation_dir, "classInd.txt")
    class_ind = {}
    for lineno, line in enumerate(_read_lines(class_ind_path, "UCF101 class index"), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[0].isdigit():
            raise SplitFileError(f"{class_ind_path}:{lineno}: expected '<index> <ClassName>', got {line!r}")
        class_ind[parts[1]] = int(parts[0])
    files = {"train": os.path.join(annotation_dir, f"trainlist{fold:02d}.txt"),
             "test": os.path.join(annotation_dir, f"testlist{fold:02d}.txt")}
    out = {"files": files, "class_ind": class_ind}
    bad_labels = []
    for split, path in files.items():
        entries = []
        for lineno, line in enumerate(_read_lines(path, f"UCF101 {split} list"), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) > 2 or (len(parts) == 2 and not parts[1].lstrip("-").isdigit()):
                raise SplitFileError(f"{path}:{lineno}: expected '<Class>/<video> [label]', got {line!r}")
            rel = _norm_rel(parts[0])
            if len(parts) == 2:
                cls = rel.split("/", 1)[0]
                if class_ind.get(cls) != int(parts[1]):
                    bad_labels.append(f"{path}:{lineno} {line.strip()!r} (classInd: {class_ind.get(cls)})")
            entries.append(rel)
        out[split] = entries
    if bad_labels:
        raise SplitFileError(f"labels in the UCF101 lists disagree with {class_ind_path}: {_first(bad_labels)}")
    return out


def read_hmdb51_fold(annotation_dir, fold):
    """Entries of HMDB51 fold ``fold``: ``{"train": [...], "test": [...]}`` relative paths ``<class>/<video>``
    (tag 1 = train, 2 = test, 0 = unused), ``"files": {class: path}``."""
    fold = _check_fold(fold)
    suffix = f"_test_split{fold}.txt"
    if not PathManager.isdir(annotation_dir):
        raise FileNotFoundError(f"HMDB51 split folder not found: {annotation_dir} (DATA.ANNOTATION_DIR)")
    names = sorted(n for n in PathManager.ls(annotation_dir) if n.endswith(suffix))
    if not names:
        raise FileNotFoundError(f"no HMDB51 split files '*{suffix}' in {annotation_dir} (DATA.ANNOTATION_DIR)")
    out = {"train": [], "test": [], "files": {}}
    for name in names:
        cls = name[: -len(suffix)]
        path = os.path.join(annotation_dir, name)
        out["files"][cls] = path
        for lineno, line in enumerate(_read_lines(path, "HMDB51 split file"), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise SplitFileError(f"{path}:{lineno}: expected '<video> <0|1|2>', got {line!r}")
            if parts[1] == "1":
                out["train"].append(f"{cls}/{_norm_rel(parts[0])}")
            elif parts[1] == "2":
                out["test"].append(f"{cls}/{_norm_rel(parts[0])}")
    return out


def select_fold(dataset, root, annotation_dir, fold, split, skip_missing=False):
    """Videos of one split of one fold, checked against the files on disk.

    Args:
        dataset: ``"ucf101"`` or ``"hmdb51"`` (split-file format).
        root: video root (class folders).
        annotation_dir: folder of the split files.
        fold: 1, 2 or 3.
        split: ``"train"`` or ``"test"``.
        skip_missing: drop listed videos that are not on disk (else an error).

    Returns:
        dict with ``rel_paths`` (sorted), ``labels`` (sorted class-folder index), ``classes`` (sorted class
        folders), ``missing`` (listed videos not on disk that were skipped) and ``files`` (the split files read).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    classes = list_class_folders(root)
    if dataset == "ucf101":
        lists = read_ucf101_fold(annotation_dir, fold)
        where = f"{lists['files']['train']} and {lists['files']['test']}"
        list_file = lists["files"][split]
    elif dataset == "hmdb51":
        lists = read_hmdb51_fold(annotation_dir, fold)
        where = f"the *_test_split{fold}.txt files in {annotation_dir}"
        list_file = where
        no_file = [c for c in classes if c not in lists["files"]]
        if no_file:
            expected = [os.path.join(annotation_dir, f"{c}_test_split{fold}.txt") for c in no_file]
            raise SplitFileError(f"class folders under {root} have no HMDB51 split file for fold {fold}: "
                                 f"{_first(no_file)}; expected {_first(expected, 2)}")
    else:
        raise ValueError(f"unknown split-file format {dataset!r} (ucf101 or hmdb51)")
    referenced = {rel.split("/", 1)[0] for s in ("train", "test") for rel in lists[s]}
    unlisted = [c for c in classes if c not in referenced]
    if unlisted:
        raise SplitFileError(
            f"class folders under {root} that no entry of fold {fold}'s split lists ({where}) references: "
            f"{_first(unlisted)}. Labels are the index of the sorted class folders, so every folder of "
            f"DATA.PATH_TO_DATA_DIR must be a class of the lists (move other folders elsewhere)")
    on_disk = list_videos(root, classes)
    entries = sorted(set(lists[split]))
    missing = [e for e in entries if e not in on_disk]
    if missing and not skip_missing:
        raise SplitFileError(f"{len(missing)} video(s) of fold {fold} {split} list {list_file} not found under "
                             f"{root}: {_first(missing)} (DATA.SKIP_MISSING_VIDEOS True skips them)")
    if missing:
        logger.warning("skipping %d video(s) of fold %d %s list %s that are not under %s: %s", len(missing), fold,
                       split, list_file, root, _first(missing))
    present = [e for e in entries if e in on_disk]
    if not present:
        detail = "has no entries" if not entries else f"lists {len(entries)} video(s), none of them on disk"
        raise SplitFileError(f"fold {fold} {split} split is empty: {list_file} {detail}")
    index = {c: i for i, c in enumerate(classes)}
    return {"rel_paths": present, "labels": [index[e.split("/", 1)[0]] for e in present], "classes": classes,
            "missing": missing, "files": lists["files"]}


# -------------------------------------------------------------------------------------------------------------------
# Transforms (on 3 x T x H x W float clips)
# -------------------------------------------------------------------------------------------------------------------
def uniform_crop_box(h, w, size, spatial_idx):
    """Box ``(y0, x0, size, size)`` of the deterministic test crop ``spatial_idx`` (0 / 1 / 2 = left / centre /
    right when ``w > h``, top / centre / bottom when ``h > w``; the centre offset is ``ceil((L - size) / 2)``), the
    same box as :func:`stica_ext.datasets.transforms.uniform_crop`."""
    if h < size or w < size:
        raise ValueError(f"cannot crop {size}x{size} from a {h}x{w} clip")
    y0, x0 = int(math.ceil((h - size) / 2)), int(math.ceil((w - size) / 2))
    if spatial_idx != 1:
        end = spatial_idx == 2
        if w > h:
            x0 = (w - size) if end else 0
        elif h > w:
            y0 = (h - size) if end else 0
    return y0, x0, size, size


def _crop(x, box):
    y0, x0, ch, cw = box
    return x[..., y0:y0 + ch, x0:x0 + cw]


def _maybe_color(x, color, prob, rng):
    if color is not None and prob > 0 and rng.random() < prob:
        x = T.color_jitter(x, *color, rng)
    return x


def finetune_train_transform(frames, *, crop_size, mean, std, rng, scale=(0.14, 1.0), ratio=(3 / 4, 4 / 3),
                             jitter_scales=None, flip=True, color=(0.4, 0.4, 0.4), color_prob=0.8, fast=True):
    """Training augmentation of the finetuning recipe (spec 3.3b / 7.3, with the intended colour jitter).

    ``frames`` ``T x H x W x 3`` uint8 -> ``(3 x T x crop x crop`` normalised float, crop box ``(y0, x0, h, w)``).
    RandomResizedCrop (``scale``, ``ratio``; bilinear resize, align_corners False) -- or, with ``scale=None``,
    short-side jitter in ``jitter_scales`` and a random crop -- then a horizontal flip with p 0.5 (``flip``), then
    with probability ``color_prob`` brightness / contrast / saturation jitter of strengths ``color`` (None = off) in
    random order, per frame, on ``[0, 1]`` RGB pixels; finally ``(x - mean) / std``. Draws from ``rng`` in that
    order. ``fast``: uint8 geometry and one fused colour / normalisation pass (:func:`T.finish_view_u8`).
    """
    if fast:
        return _finetune_train_fast(frames, crop_size, mean, std, rng, scale, ratio, jitter_scales, flip, color,
                                    color_prob)
    x = T.uint8_thwc_to_float_cthw(frames)
    if scale:
        box = random_resized_crop_box(x.shape[-2], x.shape[-1], scale, ratio, rng)
        x = F.interpolate(_crop(x, box), size=(crop_size, crop_size), mode="bilinear", align_corners=False)
    else:
        x = T.random_short_side_scale_jitter(x, jitter_scales[0], jitter_scales[1], rng)
        h, w = x.shape[-2:]
        if h < crop_size or w < crop_size:
            raise ValueError(f"cannot crop {crop_size}x{crop_size} from a {h}x{w} clip")
        box = (rng.randint(0, h - crop_size), rng.randint(0, w - crop_size), crop_size, crop_size)
        x = _crop(x, box)
    if flip:
        x = T.horizontal_flip(x, 0.5, rng)
    x = _maybe_color(x, color, color_prob, rng)
    return T.normalize(x, mean, std).contiguous(), box


def _finetune_train_fast(frames, crop_size, mean, std, rng, scale, ratio, jitter_scales, flip, color, color_prob):
    h, w = frames.shape[1], frames.shape[2]
    x = frames.permute(0, 3, 1, 2)
    if scale:
        box = random_resized_crop_box(h, w, scale, ratio, rng)
        x = T.resize_u8(_crop(x, box), (crop_size, crop_size))
    else:
        size = int(round(rng.uniform(jitter_scales[0], jitter_scales[1])))
        nh, nw = T.short_side_size(h, w, size)
        if nh < crop_size or nw < crop_size:
            raise ValueError(f"cannot crop {crop_size}x{crop_size} from a {nh}x{nw} clip")
        box = (rng.randint(0, nh - crop_size), rng.randint(0, nw - crop_size), crop_size, crop_size)
        x = _crop(T.resize_u8(x, (nh, nw)), box)
    do_flip = bool(flip) and rng.random() < 0.5
    use_color = color is not None and color_prob > 0 and rng.random() < color_prob
    ops = T.draw_color_ops(*color, rng) if use_color else ()
    return T.finish_view_u8(x, mean=mean, std=std, ops=ops, flip=do_flip), box


def finetune_test_transform(frames, *, crop_size, spatial_idx, mean, std, fast=True):
    """Deterministic test view: short side resized to ``crop_size``, uniform crop ``spatial_idx``, normalised.
    Returns ``(3 x T x crop x crop, box)``."""
    if fast:
        nh, nw = T.short_side_size(frames.shape[1], frames.shape[2], crop_size)
        box = uniform_crop_box(nh, nw, crop_size, spatial_idx)
        x = _crop(T.resize_u8(frames.permute(0, 3, 1, 2), (nh, nw)), box)
        return T.finish_view_u8(x, mean=mean, std=std), box
    x = T.resize_short_side(T.uint8_thwc_to_float_cthw(frames), crop_size)
    box = uniform_crop_box(x.shape[-2], x.shape[-1], crop_size, spatial_idx)
    return T.normalize(_crop(x, box), mean, std).contiguous(), box


def reference_test_transform(frames, *, crop_size, spatial_idx, jitter_scales, mean, std, rng, color, color_prob):
    """The reference evaluation's (random) test view, for comparison only: short side ``round(U(jitter_scales))``,
    uniform crop ``spatial_idx``, colour jitter with probability ``color_prob``. Returns ``(clip, box)``."""
    x = T.random_short_side_scale_jitter(T.uint8_thwc_to_float_cthw(frames), jitter_scales[0], jitter_scales[1], rng)
    box = uniform_crop_box(x.shape[-2], x.shape[-1], crop_size, spatial_idx)
    x = _maybe_color(_crop(x, box), color, color_prob, rng)
    return T.normalize(x, mean, std).contiguous(), box


# -------------------------------------------------------------------------------------------------------------------
# Datasets
# -------------------------------------------------------------------------------------------------------------------
def _split_key(key):
    if isinstance(key, (tuple, list)):
        return int(key[0]), int(key[1])
    return int(key), 0


class FoldVideoDataset(torch.utils.data.Dataset):
    """Base class of the split-file datasets (see the module docstring).

    Args:
        cfg: the config.
        split: ``"train"``, ``"test"`` or ``"val"`` (= ``"test"``).
        sample_type: only ``"classify"`` (or None) is supported.
        clips_per_video: copies of each video; default ``TRAIN.CLIPS_PER_VIDEO`` for training, the number of test
            views for testing (then it must be a multiple of the spatial crops).
        train_augment: random clips and augmentation (default: ``split == "train"``).
        max_videos: keep only the first ``max_videos`` videos (0 / None = all).
        fold: the fold (default ``DATA.FOLD``).
        test_views: ``(temporal views, spatial crops)`` for testing (default ``(TEST.NUM_ENSEMBLE_VIEWS,
            TEST.NUM_SPATIAL_CROPS)``).

    Attributes: ``paths`` (absolute), ``rel_paths``, ``labels`` (per video), ``classes``, ``num_videos``,
    ``clips_per_video``, ``num_temporal_views`` / ``num_spatial_crops`` (testing), ``num_missing``.
    """

    split_format = ""  # "ucf101" / "hmdb51"

    def __init__(self, cfg, split, sample_type=None, clips_per_video=None, train_augment=None, max_videos=None,
                 fold=None, test_views=None):
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        if sample_type not in (None, "classify"):
            raise ValueError(f"{type(self).__name__} provides classification items only (sample_type 'classify'), "
                             f"got {sample_type!r}")
        self.cfg = cfg
        self.split = split
        self.list_split = "train" if split == "train" else "test"
        self.fold = _check_fold(cfg.DATA.FOLD if fold is None else fold)
        self.train_augment = (split == "train") if train_augment is None else bool(train_augment)
        self.root = self.video_root()
        self.annotation_path = self.annotation_dir()
        sel = select_fold(self.split_format, self.root, self.annotation_path, self.fold, self.list_split,
                          skip_missing=cfg.DATA.SKIP_MISSING_VIDEOS)
        self.classes = sel["classes"]
        self.rel_paths, self.labels = sel["rel_paths"], sel["labels"]
        if max_videos:
            self.rel_paths, self.labels = self.rel_paths[:max_videos], self.labels[:max_videos]
        self.paths = [os.path.join(self.root, *r.split("/")) for r in self.rel_paths]
        self.num_missing = len(sel["missing"])
        n_t, n_s = test_views or (cfg.TEST.NUM_ENSEMBLE_VIEWS, cfg.TEST.NUM_SPATIAL_CROPS)
        if self.train_augment:
            self.clips_per_video = int(clips_per_video or cfg.TRAIN.CLIPS_PER_VIDEO)
            self.num_temporal_views, self.num_spatial_crops = 0, 0
        else:
            if clips_per_video:
                if clips_per_video % n_s:
                    raise ValueError(f"clips_per_video ({clips_per_video}) must be a multiple of the spatial crops "
                                     f"({n_s})")
                n_t = clips_per_video // n_s
            self.num_temporal_views, self.num_spatial_crops = int(n_t), int(n_s)
            self.clips_per_video = self.num_temporal_views * self.num_spatial_crops
        if self.clips_per_video < 1:
            raise ValueError(f"clips per video must be >= 1, got {self.clips_per_video}")
        self._warned = set()
        logger.info("%s fold %d %s: %d videos of %d classes, %d clips per video (%s)%s", type(self).__name__,
                    self.fold, split, len(self.paths), len(self.classes), self.clips_per_video,
                    "random clips" if self.train_augment else f"{n_t} x {n_s} test views",
                    f", {self.num_missing} listed videos missing" if self.num_missing else "")

    # -------------------------------------------------------------------------------------------------------------
    def video_root(self):
        return self.cfg.DATA.PATH_TO_DATA_DIR

    def annotation_dir(self):
        return self.cfg.DATA.ANNOTATION_DIR or self.video_root()

    @property
    def num_videos(self):
        return len(self.paths)

    def __len__(self):
        return len(self.paths) * self.clips_per_video

    # Per-stage timing for benchmarks: None or a dict (see AudioVisualDataset.stage_times).
    stage_times = None

    def _rng(self, epoch, index, attempt):
        return random.Random(f"{self.cfg.RNG_SEED}-{self.split_format}-{self.fold}-{self.split}-{epoch}-{index}-"
                             f"{attempt}")

    def view_of(self, index):
        """``(temporal_idx, spatial_idx)`` of test clip ``index`` (spatial: 0/1/2, or 1 = centre for one crop)."""
        view = index % self.clips_per_video
        n_s = max(self.num_spatial_crops, 1)
        return view // n_s, (view % n_s if n_s == 3 else 1)

    def _decode(self, video_idx, clip_idx, num_clips, rng):
        d = self.cfg.DATA
        return decode_clips(self.paths[video_idx], num_frames=d.NUM_FRAMES, sampling_rate=d.SAMPLING_RATE,
                            target_fps=d.TARGET_FPS, clip_indices=[clip_idx], num_clips=num_clips, rng=rng,
                            threads=1 if not self.cfg.DATA_LOADER.ENABLE_MULTI_THREAD_DECODE else 0,
                            timings=self.stage_times)[0]

    def _color(self):
        d = self.cfg.DATA
        return tuple(d.SSL_COLOR_BRI_CON_SAT) if d.SSL_COLOR_JITTER else None

    def _train_clip(self, video_idx, rng):
        d = self.cfg.DATA
        clip = self._decode(video_idx, -1, 1, rng)
        with stage(self.stage_times, "augment"):
            x, box = finetune_train_transform(
                clip.frames, crop_size=d.TRAIN_CROP_SIZE, mean=d.MEAN, std=d.STD, rng=rng,
                scale=tuple(d.TRAIN_JITTER_SCALES_RELATIVE) or None,
                ratio=tuple(d.TRAIN_JITTER_ASPECT_RELATIVE) or (3 / 4, 4 / 3), jitter_scales=d.TRAIN_JITTER_SCALES,
                flip=d.RANDOM_FLIP, color=self._color(), color_prob=self.cfg.FINETUNE.COLOR_JITTER_PROB,
                fast=d.FAST_AUGMENT)
        return x, box, clip.start_sec

    def _test_clip(self, video_idx, temporal_idx, spatial_idx, rng):
        d = self.cfg.DATA
        clip = self._decode(video_idx, temporal_idx, self.num_temporal_views, rng)
        if self.cfg.FINETUNE.REFERENCE_TEST_AUGMENT:
            x, box = reference_test_transform(
                clip.frames, crop_size=d.TRAIN_CROP_SIZE, spatial_idx=spatial_idx, jitter_scales=d.TRAIN_JITTER_SCALES,
                mean=d.MEAN, std=d.STD, rng=rng, color=self._color(), color_prob=self.cfg.FINETUNE.COLOR_JITTER_PROB)
        else:
            x, box = finetune_test_transform(clip.frames, crop_size=d.TEST_CROP_SIZE, spatial_idx=spatial_idx,
                                             mean=d.MEAN, std=d.STD, fast=d.FAST_AUGMENT)
        return x, box, clip.start_sec

    def _warn(self, video_idx, err):
        if self.paths[video_idx] not in self._warned:
            self._warned.add(self.paths[video_idx])
            logger.warning("unreadable video (%s)", err)

    def __getitem__(self, key):
        index, epoch = _split_key(key)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} clips")
        video_idx = index // self.clips_per_video
        if not self.train_augment:
            t_idx, s_idx = self.view_of(index)
            try:
                x, box, start = self._test_clip(video_idx, t_idx, s_idx, self._rng(epoch, index, 0))
                skipped = 0
            except DecodeError as e:
                self._warn(video_idx, e)
                size = self.cfg.DATA.TRAIN_CROP_SIZE if self.cfg.FINETUNE.REFERENCE_TEST_AUGMENT \
                    else self.cfg.DATA.TEST_CROP_SIZE
                x, box, start, skipped = torch.zeros(3, self.cfg.DATA.NUM_FRAMES, size, size), (0, 0, 0, 0), 0.0, 1
            meta = {"video_idx": video_idx, "skipped": skipped, "temporal_idx": t_idx, "spatial_idx": s_idx,
                    "crop_box": torch.tensor(box, dtype=torch.long)}
            return [x], self.labels[video_idx], index, float(start), meta
        errors = []
        for attempt in range(self.cfg.DATA.NUM_RETRIES + 1):
            rng = self._rng(epoch, index, attempt)
            try:
                x, box, start = self._train_clip(video_idx, rng)
            except DecodeError as e:
                errors.append(str(e))
                self._warn(video_idx, e)
                video_idx = rng.randrange(self.num_videos)
                continue
            meta = {"video_idx": video_idx, "skipped": attempt, "temporal_idx": -1, "spatial_idx": -1,
                    "crop_box": torch.tensor(box, dtype=torch.long)}
            return [x], self.labels[video_idx], index, float(start), meta
        raise RuntimeError(f"{self.cfg.DATA.NUM_RETRIES + 1} consecutive videos could not be decoded: "
                           + "; ".join(errors[:3]))


@register_as(DATASET_REGISTRY, "Ucf101")
class Ucf101(FoldVideoDataset):
    """UCF101 (``TRAIN.DATASET: ucf101``): ``classInd.txt``, ``trainlist0{f}.txt``, ``testlist0{f}.txt``."""

    split_format = "ucf101"


@register_as(DATASET_REGISTRY, "Hmdb51")
class Hmdb51(FoldVideoDataset):
    """HMDB51 (``TRAIN.DATASET: hmdb51``): ``<class>_test_split{f}.txt`` with tags 1 = train, 2 = test."""

    split_format = "hmdb51"


@register_as(DATASET_REGISTRY, "Synthetic_ucf")
class SyntheticUcf(Ucf101):
    """The synthetic audio-visual videos in a UCF101-style tree (``TRAIN.DATASET: synthetic_ucf``).

    The synthetic dataset described by ``SYNTH.*`` (or the folder ``DATA.PATH_TO_DATA_DIR`` written by
    ``tools/make_synthetic_data.py``) is generated if needed and given a UCF101-style class-folder tree and split
    files by :func:`stica_ext.datasets.synthetic.write_ucf_style_splits`; it is then read exactly like UCF101.
    """

    def _layout(self):
        if not hasattr(self, "_ucf_layout"):
            from .av_dataset import ensure_synthetic_data
            from .synthetic import write_ucf_style_splits

            folder = self.cfg.DATA.PATH_TO_DATA_DIR or ensure_synthetic_data(self.cfg)
            self._ucf_layout = write_ucf_style_splits(folder)
        return self._ucf_layout

    def video_root(self):
        return self._layout()[0]

    def annotation_dir(self):
        return self._layout()[1]
