"""Audio-visual video datasets: PySlowFast CSV lists, GDT pretraining samples and classification samples.

Two kinds of items, chosen by ``sample_type``:

* ``"gdt"`` (self-supervised pretraining): a dict

  - ``video``: ``V x 3 x T x S x S`` float, the views a hypothesis needs in the order ``[V, VR, V2, V2R]``
    (``orig``, ``rev``, ``shift``, ``shift_rev``; see :data:`stica_ext.config.VIEW_ORDER`),
  - ``audio``: ``V x 1 x F x Tspec`` float, the matching spectrograms (reversed views are the time-flipped
    spectrogram of their clip),
  - ``label`` (int64), ``index`` (int64, video index), ``skipped`` (int64: undecodable videos replaced while
    producing this item).

* ``"stica"`` (STiCA pretraining, spec 3.6): a dict with ``video``: ``2 x 3 x T x S x S`` (two independently
  augmented spatial views of the same random clip), ``audio``: ``1 x F x Tspec`` (the clip's spectrogram),
  ``label``, ``index``, ``skipped``.

* ``"classify"`` (linear probe / finetuning), PySlowFast's item ``(frames_list, label, index, time, meta)``:
  ``frames_list = [3 x T x S x S]``, ``index`` = clip index in the expanded list (``video_idx = index //
  clips_per_video``), ``time`` = start time of the clip in seconds, ``meta = {"video_idx", "skipped"}``. Training
  lists each video ``clips_per_video`` times with random clips; testing lists each video
  ``NUM_ENSEMBLE_VIEWS x NUM_SPATIAL_CROPS`` times with deterministic views.

Randomness: an item's augmentation is drawn from ``random.Random`` seeded by ``(RNG_SEED, epoch, index,
attempt)``, so it does not depend on the DataLoader worker; pass ``(index, epoch)`` keys (see
:class:`stica_ext.datasets.loader.EpochSampler`) or plain integer indices (epoch 0).

A video that cannot be decoded (missing, zero-byte or corrupt file, no audio stream when audio is needed) is
logged once, counted in the item's ``skipped`` field and replaced by another randomly chosen video; after
``DATA.NUM_RETRIES`` consecutive failures the item raises an error naming the files.
"""

import logging
import os
import random

import torch

from ..config import VIEW_ORDER, views_for_hypothesis
from ..registry import DATASET_REGISTRY, register_as
from ..utils.io import read_text_lines
from . import audio as audio_ops
from . import transforms as T
from .decoder import DecodeError, decode_clips, stage
from .index import list_videos

logger = logging.getLogger(__name__)

# Uniform grid of clip start positions for GDT's two clips (spec 3.5: clip index in [0, 1000] of 1000).
_GDT_NUM_POSITIONS = 1000
_SPLIT_FILES = {"train": "train.csv", "val": "val.csv", "test": "test.csv"}


def read_video_csv(path, path_prefix="", separator=" "):
    """Read a PySlowFast list ``path<sep>label`` (no header). Relative paths (after ``path_prefix``) are
    resolved against the CSV's folder. Returns ``(paths, labels)``."""
    base = os.path.dirname(os.path.abspath(path))
    paths, labels = [], []
    for lineno, line in enumerate(read_text_lines(path), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.rsplit(separator, 1)
        if len(parts) != 2 or not parts[1].strip().lstrip("-").isdigit():
            raise ValueError(f"{path}:{lineno}: expected 'path{separator}label' with an integer label, got {line!r}")
        p = os.path.join(path_prefix, parts[0].strip()) if path_prefix else parts[0].strip()
        if not os.path.isabs(p) and "://" not in p:
            p = os.path.join(base, p)
        paths.append(p)
        labels.append(int(parts[1]))
    if not paths:
        raise ValueError(f"{path}: the video list is empty")
    return paths, labels


def _validity_index(cfg, paths, split, root, need_audio):
    """:func:`~stica_ext.datasets.index.build_valid_index_from_cfg`, probed once per machine: with several
    processes the local main process probes and writes the cache while the others wait, then read it."""
    from ..utils import distributed as du
    from .index import build_valid_index_from_cfg

    def build(progress):
        return build_valid_index_from_cfg(cfg, paths, split, root=root, need_audio=need_audio, progress=progress)

    if du.get_world_size() > 1:
        result = build(True) if du.is_local_main_process() else None
        du.synchronize()
        return result if result is not None else build(False)
    return build(True)


def ssl_sample_type(cfg):
    """Sample layout the pretraining objective of ``cfg`` needs: ``"stica"`` or ``"gdt"``."""
    return "stica" if cfg.MODEL.MODEL_NAME == "STiCA" else "gdt"


def _split_key(key):
    if isinstance(key, (tuple, list)):
        return int(key[0]), int(key[1])
    return int(key), 0


@register_as(DATASET_REGISTRY, "Audiovisual")
class AudioVisualDataset(torch.utils.data.Dataset):
    """Videos with audio: a PySlowFast CSV ``DATA.PATH_TO_DATA_DIR/{split}.csv``, class folders
    ``<root>/<split>/<class>/*`` or the official Kinetics CSVs (``DATA.LAYOUT``, see
    :func:`stica_ext.datasets.index.list_videos`).

    With ``DATA.VALIDITY_FILTER`` (default) every listed video is probed once (cached next to the data) and those
    that cannot give a clip are dropped before training; ``index_summary`` counts them by reason. Videos that
    still fail at load time are replaced and counted (``skipped``).

    Args:
        cfg: the config.
        split: ``"train"``, ``"val"`` or ``"test"``.
        sample_type: ``"gdt"`` or ``"classify"``; default ``"gdt"`` for the training split of an
            ``ssl_pretrain`` task, else ``"classify"``.
        clips_per_video: classification only; default 1 for training, ``NUM_ENSEMBLE_VIEWS x NUM_SPATIAL_CROPS``
            for val/test.
        train_augment: classification only; random clips and augmentation (default: split == "train").
        max_videos: keep only the first ``max_videos`` videos of the list (0 / None = all).
    """

    # Per-stage timing for benchmarks (stica_ext.engine.benchmark): None (default, no timing) or a dict to which
    # every item adds the seconds spent in "open", "video_decode", "audio_decode" (decoder), "audio_features"
    # (waveform -> log-mel spectrogram, with volume jitter and SpecAugment) and "augment" (video view transforms).
    stage_times = None

    def __init__(self, cfg, split, sample_type=None, clips_per_video=None, train_augment=None, max_videos=None):
        if split not in _SPLIT_FILES:
            raise ValueError(f"split must be one of {sorted(_SPLIT_FILES)}, got {split!r}")
        self.cfg = cfg
        self.split = split
        if sample_type is None:
            sample_type = ssl_sample_type(cfg) if (cfg.TASK == "ssl_pretrain" and split == "train") else "classify"
        if sample_type not in ("gdt", "stica", "classify"):
            raise ValueError(f"sample_type must be 'gdt', 'stica' or 'classify', got {sample_type!r}")
        self.sample_type = sample_type
        self.train_augment = (split == "train") if train_augment is None else train_augment
        if clips_per_video is None:
            clips_per_video = 1 if self.train_augment else cfg.TEST.NUM_ENSEMBLE_VIEWS * cfg.TEST.NUM_SPATIAL_CROPS
        self.clips_per_video = int(clips_per_video) if sample_type == "classify" else 1
        self.need_audio = sample_type in ("gdt", "stica") and cfg.AUDIO.ENABLE
        root = self.data_dir()
        if not root:
            raise ValueError(f"DATA.PATH_TO_DATA_DIR is empty: set it to the dataset folder ({split}.csv or "
                             f"{split}/<class>/<video> folders)")
        self.paths, self.labels, self.class_names = list_videos(cfg, split, root=root)
        self.index_summary = None
        if cfg.DATA.VALIDITY_FILTER:
            valid, self.index_summary = _validity_index(cfg, self.paths, split, root, self.need_audio)
            if not valid:
                raise ValueError(f"{root} ({split}): none of the {len(self.paths)} listed videos can give a clip "
                                 f"({self.index_summary}); see the log for examples")
            self.paths = [self.paths[i] for i in valid]
            self.labels = [self.labels[i] for i in valid]
        if max_videos:
            self.paths, self.labels = self.paths[:max_videos], self.labels[:max_videos]
        self.views = views_for_hypothesis(cfg.GDT.HYPOTHESIS)
        self._warned = set()
        logger.info("%s %s: %d videos, %s samples, %d clips per video", type(self).__name__, split,
                    len(self.paths), sample_type, self.clips_per_video)

    # -------------------------------------------------------------------------------------------------------------
    def data_dir(self):
        return self.cfg.DATA.PATH_TO_DATA_DIR

    @property
    def num_videos(self):
        return len(self.paths)

    def __len__(self):
        return len(self.paths) * self.clips_per_video

    def _rng(self, epoch, index, attempt):
        return random.Random(f"{self.cfg.RNG_SEED}-{self.split}-{epoch}-{index}-{attempt}")

    # -------------------------------------------------------------------------------------------------------------
    def __getitem__(self, key):
        index, epoch = _split_key(key)
        video_idx = index // self.clips_per_video
        errors = []
        for attempt in range(self.cfg.DATA.NUM_RETRIES + 1):
            rng = self._rng(epoch, index, attempt)
            try:
                if self.sample_type in ("gdt", "stica"):
                    make = self._gdt_item if self.sample_type == "gdt" else self._stica_item
                    item = make(video_idx, rng)
                    item["skipped"] = torch.tensor(attempt)
                    return item
                return self._classify_item(index, video_idx, rng, attempt)
            except DecodeError as e:
                errors.append(str(e))
                if self.paths[video_idx] not in self._warned:
                    self._warned.add(self.paths[video_idx])
                    logger.warning("skipping unreadable video (%s); using another sample", e)
                video_idx = rng.randrange(self.num_videos)
        raise RuntimeError(f"{self.cfg.DATA.NUM_RETRIES + 1} consecutive videos could not be decoded: "
                           + "; ".join(errors[:3]))

    # -------------------------------------------------------------------------------------------------------------
    def _decode(self, video_idx, clip_indices, num_clips, rng, with_audio):
        d = self.cfg.DATA
        return decode_clips(
            self.paths[video_idx],
            num_frames=d.NUM_FRAMES,
            sampling_rate=d.SAMPLING_RATE,
            target_fps=d.TARGET_FPS,
            clip_indices=clip_indices,
            num_clips=num_clips,
            audio_sample_rate=self.cfg.AUDIO.SAMPLE_RATE if with_audio else None,
            audio_num_sec=self.cfg.AUDIO.NUM_SEC,
            audio_missing="error" if self.cfg.AUDIO.MISSING == "skip" else "silence",
            rng=rng,
            threads=1 if not self.cfg.DATA_LOADER.ENABLE_MULTI_THREAD_DECODE else 0,
            timings=self.stage_times,
        )

    def _train_view(self, frames, rng, reverse=False, out=None, defer_color=False):
        d = self.cfg.DATA
        color = tuple(d.SSL_COLOR_BRI_CON_SAT) if d.SSL_COLOR_JITTER else None
        return T.train_video_transform(frames, jitter_scales=d.TRAIN_JITTER_SCALES, crop_size=d.TRAIN_CROP_SIZE,
                                       mean=d.MEAN, std=d.STD, rng=rng, flip=d.RANDOM_FLIP, color=color,
                                       reference_color=self.cfg.GDT.REFERENCE_COLOR_JITTER, fast=d.FAST_AUGMENT,
                                       reverse=reverse, out=out, defer_color=defer_color)

    def _eval_view(self, frames, spatial_idx=1):
        d = self.cfg.DATA
        return T.eval_video_transform(frames, crop_size=d.TEST_CROP_SIZE, spatial_idx=spatial_idx, mean=d.MEAN,
                                      std=d.STD, fast=d.FAST_AUGMENT)

    def eval_clips(self, video_idx, clip_indices, num_clips, rng):
        """Deterministic test views (short side resized to ``TEST_CROP_SIZE``, centre crop) of the clips at
        ``clip_indices`` (uniform positions of ``num_clips``, one container opening) and, when the dataset has audio,
        their spectrograms without augmentation. Returns ``(video C x 3 x T x S x S, audio C x 1 x F x Tspec or
        None, start times in s)``."""
        clips = self._decode(video_idx, list(clip_indices), num_clips, rng, self.need_audio)
        video = torch.stack([self._eval_view(c.frames) for c in clips])
        audio = torch.stack([self._spectrogram(c.audio, rng, train=False) for c in clips]) if self.need_audio else None
        return video, audio, [float(c.start_sec) for c in clips]

    def _spectrogram(self, wave, rng, train):
        a = self.cfg.AUDIO
        if train and a.VOLUME_JITTER > 0:
            wave = audio_ops.volume_jitter(wave, a.VOLUME_JITTER, rng)
        spec = audio_ops.spectrogram_from_waveform(
            wave, a.SAMPLE_RATE, num_filters=a.NUM_MEL_BINS, win_length=a.WIN_LENGTH, hop_length=a.HOP_LENGTH,
            nfft=a.NFFT, preemph=a.PREEMPHASIS)
        if a.Z_NORMALIZE:
            spec = audio_ops.z_normalize(spec, a.Z_MEAN, a.Z_STD)
        if train and a.SPEC_AUGMENT != "none":
            spec = audio_ops.spec_augment(spec, a.SPEC_AUGMENT, rng)
        return spec

    def _gdt_item(self, video_idx, rng):
        """Decode the clips the hypothesis needs (one container opening) and build its views."""
        need_shift = any(v.startswith("shift") for v in self.views)
        positions = [rng.randint(0, _GDT_NUM_POSITIONS)]
        if need_shift:
            positions.append(rng.randint(0, _GDT_NUM_POSITIONS))
        clips = self._decode(video_idx, positions, _GDT_NUM_POSITIONS, rng, self.need_audio)
        d = self.cfg.DATA
        names = [name for name in VIEW_ORDER if name in self.views]
        defer = d.COLOR_ON_DEVICE
        # The views are written straight into the sample tensor (no stacking copy); with DATA.COLOR_ON_DEVICE as
        # uint8 views plus their colour maps, finished on the training device (transforms.apply_view_colors).
        shape = (len(names), 3, d.NUM_FRAMES, d.TRAIN_CROP_SIZE, d.TRAIN_CROP_SIZE)
        video = torch.empty(shape, dtype=torch.uint8 if defer else torch.float32)
        colors = torch.empty(len(names), 3, 3 + d.NUM_FRAMES) if defer else None
        audios = []
        specs = {}
        for k, name in enumerate(names):
            clip = clips[1] if name.startswith("shift") else clips[0]
            reverse = name.endswith("rev")
            with stage(self.stage_times, "augment"):
                # Own augmentation per view (spec 3.5); the reversed views reuse the decoded frames.
                if defer:
                    video[k], colors[k] = self._train_view(clip.frames, rng, reverse=reverse, defer_color=True)
                else:
                    self._train_view(clip.frames, rng, reverse=reverse, out=video[k])
            if self.need_audio:
                key = id(clip)
                with stage(self.stage_times, "audio_features"):
                    if key not in specs:
                        specs[key] = self._spectrogram(clip.audio, rng, train=True)
                    audios.append(specs[key].flip(-1) if reverse else specs[key])
        item = {
            "video": video,
            "label": torch.tensor(self.labels[video_idx]),
            "index": torch.tensor(video_idx),
        }
        if defer:
            item["video_color"] = colors
        if self.need_audio:
            item["audio"] = torch.stack(audios)
        return item

    def _stica_item(self, video_idx, rng):
        """One random clip, two independently augmented spatial views of it, and its spectrogram (spec 3.6)."""
        d = self.cfg.DATA
        clip = self._decode(video_idx, [-1], 1, rng, self.need_audio)[0]
        color = tuple(d.SSL_COLOR_BRI_CON_SAT) if d.SSL_COLOR_JITTER else None
        with stage(self.stage_times, "augment"):
            # RandomResizedCrop area / aspect ranges: DATA.TRAIN_JITTER_SCALES_RELATIVE / ASPECT_RELATIVE
            # (PySlowFast's keys), default the recipe's (0.14, 1) and (3/4, 4/3).
            scale = tuple(d.TRAIN_JITTER_SCALES_RELATIVE) or (0.14, 1.0)
            ratio = tuple(d.TRAIN_JITTER_ASPECT_RELATIVE) or (3 / 4, 4 / 3)
            views = [T.stica_video_transform(clip.frames, crop_size=d.TRAIN_CROP_SIZE, mean=d.MEAN, std=d.STD,
                                             rng=rng, flip=d.RANDOM_FLIP, color=color, scale=scale, ratio=ratio,
                                             gray_prob=d.SSL_GRAY_PROB, blur_prob=d.SSL_BLUR_PROB,
                                             blur_sigma=tuple(d.SSL_BLUR_SIGMA), fast=d.FAST_AUGMENT,
                                             defer_color=d.COLOR_ON_DEVICE)
                     for _ in range(2)]
        item = {"label": torch.tensor(self.labels[video_idx]), "index": torch.tensor(video_idx)}
        if d.COLOR_ON_DEVICE:  # uint8 views, colour maps and blur sigmas: finished on the training device
            item["video"] = torch.stack([v[0] for v in views])
            item["video_color"] = torch.stack([v[1] for v in views])
            item["video_blur"] = torch.tensor([float(v[2]) for v in views])
        else:
            item["video"] = torch.stack(views)
        if self.need_audio:
            with stage(self.stage_times, "audio_features"):
                item["audio"] = self._spectrogram(clip.audio, rng, train=True)
        return item

    def _classify_item(self, index, video_idx, rng, attempt):
        d = self.cfg.DATA
        if self.train_augment:
            clip = self._decode(video_idx, [-1], 1, rng, False)[0]
            with stage(self.stage_times, "augment"):
                x = T.train_video_transform(clip.frames, jitter_scales=d.TRAIN_JITTER_SCALES,
                                            crop_size=d.TRAIN_CROP_SIZE, mean=d.MEAN, std=d.STD, rng=rng,
                                            flip=d.RANDOM_FLIP, color=None, fast=d.FAST_AUGMENT)
        else:
            n_spatial = self.cfg.TEST.NUM_SPATIAL_CROPS
            view = index % self.clips_per_video
            temporal_idx, spatial_idx = view // n_spatial, view % n_spatial
            n_temporal = max(1, self.clips_per_video // n_spatial)
            clip = self._decode(video_idx, [temporal_idx], n_temporal, rng, False)[0]
            with stage(self.stage_times, "augment"):
                x = self._eval_view(clip.frames, spatial_idx if n_spatial == 3 else 1)
        meta = {"video_idx": video_idx, "skipped": attempt}
        return [x], self.labels[video_idx], index, float(clip.start_sec), meta


@register_as(DATASET_REGISTRY, "Synthetic_av")
class SyntheticAVDataset(AudioVisualDataset):
    """The embedded synthetic audio-visual dataset (``TRAIN.DATASET: synthetic_av``).

    Videos are generated on first use (``SYNTH.*`` parameters) into ``SYNTH.CACHE_DIR`` and then read exactly like
    any other :class:`AudioVisualDataset`. When ``DATA.PATH_TO_DATA_DIR`` is set, it is used instead (e.g. a folder
    written by ``tools/make_synthetic_data.py``).
    """

    def data_dir(self):
        if self.cfg.DATA.PATH_TO_DATA_DIR:
            return self.cfg.DATA.PATH_TO_DATA_DIR
        return ensure_synthetic_data(self.cfg)


def ensure_synthetic_data(cfg):
    """Folder of the synthetic dataset described by ``cfg.SYNTH`` (generated if absent)."""
    from .synthetic import build_synthetic_dataset, default_cache_dir

    s = cfg.SYNTH
    root = os.path.expanduser(s.CACHE_DIR) if s.CACHE_DIR else default_cache_dir()
    return build_synthetic_dataset(root, num_train=s.NUM_TRAIN, num_val=s.NUM_VAL, num_test=s.NUM_TEST, seed=s.SEED,
                                   size=s.SIZE, duration=s.DURATION, fps=s.FPS, sample_rate=s.SAMPLE_RATE,
                                   num_workers=s.NUM_WORKERS, object_scale=s.OBJECT_SCALE,
                                   max_distractors=s.MAX_DISTRACTORS)
