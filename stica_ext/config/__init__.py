"""Configuration: ``get_cfg()``, YAML/command-line merging with clear errors, ``assert_and_infer_cfg``."""

import difflib

from fvcore.common.config import CfgNode as _FvCfgNode

from .defaults import NEW_KEYS, NEW_NODES, add_stica_config, get_defaults

__all__ = [
    "CfgNode",
    "ConfigError",
    "get_cfg",
    "load_config",
    "assert_and_infer_cfg",
    "add_stica_config",
    "resolve_hypothesis",
    "HYPOTHESIS_NAMES",
    "VIEW_ORDER",
    "views_for_hypothesis",
    "NEW_NODES",
    "NEW_KEYS",
]

# Keys that accept either a number or a name; numbers given in YAML or on the command line are stored as strings.
_STR_OR_INT_KEYS = ("GDT.HYPOTHESIS",)


class ConfigError(ValueError):
    """An invalid configuration: an unknown key, a wrong type or inconsistent settings (the message names them)."""


def _all_keys(cfg, prefix=""):
    for k, v in cfg.items():
        full = prefix + k
        yield full
        if isinstance(v, _FvCfgNode):
            yield from _all_keys(v, full + ".")


def _normalise_str_or_int(cfg):
    for full in _STR_OR_INT_KEYS:
        node, *rest = full.split(".")
        if node in cfg and isinstance(cfg[node], dict) and rest[0] in cfg[node]:
            # yacs literal-evaluates strings while merging: quote so that "3" stays the string "3"
            cfg[node][rest[0]] = repr(str(cfg[node][rest[0]]))


class CfgNode(_FvCfgNode):
    """fvcore ``CfgNode`` whose merge errors name the offending key (with a suggestion) and the file."""

    def _explain(self, err, source):
        msg = str(err.args[0]) if err.args else str(err)
        if "Non-existent config key" in msg:
            bad = msg.split(":", 1)[1].strip()
            close = difflib.get_close_matches(bad, list(_all_keys(self)), n=1, cutoff=0.6)
            if close:
                msg += f" (did you mean {close[0]}?)"
        return ConfigError(f"{source}: {msg}")

    def merge_from_file(self, cfg_filename, allow_unsafe=False):
        try:
            loaded = self.load_yaml_with_base(cfg_filename, allow_unsafe=allow_unsafe)
        except FileNotFoundError as e:
            raise ConfigError(f"config file not found: {cfg_filename}") from e
        if loaded is None:
            return
        _normalise_str_or_int(loaded)
        try:
            self.merge_from_other_cfg(type(self)(loaded))
        except (KeyError, ValueError, AssertionError) as e:
            raise self._explain(e, f"config file {cfg_filename}") from e

    def merge_from_list(self, cfg_list):
        if len(cfg_list) % 2:
            raise ConfigError(f"command-line overrides must be KEY VALUE pairs, got an odd list: {list(cfg_list)}")
        cfg_list = list(cfg_list)
        for i in range(0, len(cfg_list), 2):
            if cfg_list[i] in _STR_OR_INT_KEYS:
                cfg_list[i + 1] = repr(str(cfg_list[i + 1]))
        try:
            super().merge_from_list(cfg_list)
        except (KeyError, ValueError, AssertionError) as e:
            raise self._explain(e, "command-line override") from e


def get_cfg():
    """The default configuration (a fresh, mutable copy)."""
    return CfgNode(get_defaults())


def load_config(args=None, cfg_files=None, opts=None):
    """Defaults, then each YAML file in order (``_BASE_`` supported), then ``KEY VALUE`` overrides.

    ``args`` may be the namespace of :func:`stica_ext.utils.parser.parse_args` (``cfg_files``, ``opts``,
    ``num_shards``, ``shard_id``, ``init_method``).
    """
    cfg = get_cfg()
    if args is not None:
        cfg_files = getattr(args, "cfg_files", None) or cfg_files
        opts = getattr(args, "opts", None) or opts
    for f in cfg_files or []:
        cfg.merge_from_file(f)
    if opts:
        cfg.merge_from_list(opts)
    if args is not None:
        if getattr(args, "num_shards", None) is not None:
            cfg.NUM_SHARDS = args.num_shards
        if getattr(args, "shard_id", None) is not None:
            cfg.SHARD_ID = args.shard_id
    return cfg


# GDT transformation hypotheses (spec 4.3): number -> README name.
HYPOTHESIS_NAMES = {
    1: "cross_modal_baseline",
    2: "v_reversal",
    3: "i_reversal",
    4: "v_shift",
    5: "i_shift",
    6: "v_reversal_v_shift",
    7: "i_reversal_v_shift",
    8: "v_reversal_i_shift",
    9: "i_reversal_i_shift",
}


def resolve_hypothesis(value):
    """Hypothesis number (1..9) from a number, a numeric string or a README name."""
    s = str(value).strip().lower()
    if s.isdigit() and int(s) in HYPOTHESIS_NAMES:
        return int(s)
    for num, name in HYPOTHESIS_NAMES.items():
        if s == name:
            return num
    choices = ", ".join(f"{k} ({v})" for k, v in HYPOTHESIS_NAMES.items())
    raise ValueError(f"unknown hypothesis {value!r}; choose one of {choices}")


# Views of a GDT sample in the dataset's packing order [V, VR, V2, V2R] (spec 3.5): the clip, the clip time-reversed,
# a second clip of the same video at an independent position (time shift), and that clip reversed.
VIEW_ORDER = ("orig", "rev", "shift", "shift_rev")
_HYPOTHESIS_VIEWS = {1: ("orig",), 2: ("orig", "rev"), 3: ("orig", "rev"), 4: ("orig", "shift"), 5: ("orig", "shift")}


def views_for_hypothesis(hypothesis):
    """Names of the views (a subset of ``VIEW_ORDER``, in that order) that hypothesis 1..9 uses."""
    return _HYPOTHESIS_VIEWS.get(resolve_hypothesis(hypothesis), VIEW_ORDER)


def world_size(cfg):
    """Number of training processes the config asks for: ``NUM_GPUS`` (``NUM_CPU_PROCESSES`` with ``NUM_GPUS 0``)
    per machine times ``NUM_SHARDS``."""
    per_machine = cfg.NUM_GPUS if cfg.NUM_GPUS > 0 else cfg.get("NUM_CPU_PROCESSES", 1)
    return max(1, per_machine) * cfg.NUM_SHARDS


# Modes of torch.compile accepted by TRAIN.COMPILE_MODE.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

# Values of TASK (what tools/run_net.py runs, see stica_ext.engine.run_task).
TASKS = ("ssl_pretrain", "linear_probe", "finetune", "retrieval")


def _assert_downstream(cfg, need):
    """Checks of the UCF101 / HMDB51 evaluation keys (DATA folds and crops, FINETUNE, RETRIEVAL, the finetuning
    schedule)."""
    d, s = cfg.DATA, cfg.SOLVER
    need(d.FOLD in (1, 2, 3) and all(f in (1, 2, 3) for f in d.FOLDS) and len(set(d.FOLDS)) == len(d.FOLDS),
         f"DATA.FOLD must be 1, 2 or 3 and DATA.FOLDS a list of distinct folds from 1-3, got {d.FOLD} / "
         f"{list(d.FOLDS)}")
    need(len(d.TRAIN_JITTER_SCALES_RELATIVE) in (0, 2)
         and (not d.TRAIN_JITTER_SCALES_RELATIVE or 0 < d.TRAIN_JITTER_SCALES_RELATIVE[0]
              <= d.TRAIN_JITTER_SCALES_RELATIVE[1] <= 1),
         f"DATA.TRAIN_JITTER_SCALES_RELATIVE must be [] or [min, max] with 0 < min <= max <= 1, got "
         f"{list(d.TRAIN_JITTER_SCALES_RELATIVE)}")
    need(len(d.TRAIN_JITTER_ASPECT_RELATIVE) in (0, 2)
         and (not d.TRAIN_JITTER_ASPECT_RELATIVE or 0 < d.TRAIN_JITTER_ASPECT_RELATIVE[0]
              <= d.TRAIN_JITTER_ASPECT_RELATIVE[1]),
         f"DATA.TRAIN_JITTER_ASPECT_RELATIVE must be [] or [min, max] with 0 < min <= max, got "
         f"{list(d.TRAIN_JITTER_ASPECT_RELATIVE)}")
    need(cfg.TRAIN.CLIPS_PER_VIDEO >= 1, f"TRAIN.CLIPS_PER_VIDEO must be >= 1, got {cfg.TRAIN.CLIPS_PER_VIDEO}")
    f = cfg.FINETUNE
    need(f.POOLING in ("gap", "stica"), f"FINETUNE.POOLING must be 'gap' or 'stica', got {f.POOLING!r}")
    need(0.0 <= f.COLOR_JITTER_PROB <= 1.0, f"FINETUNE.COLOR_JITTER_PROB must be in [0, 1], got {f.COLOR_JITTER_PROB}")
    need(all(1 <= e <= s.MAX_EPOCH for e in f.EVAL_EPOCHS),
         f"FINETUNE.EVAL_EPOCHS must be epochs in 1..SOLVER.MAX_EPOCH ({s.MAX_EPOCH}), got {list(f.EVAL_EPOCHS)}")
    need(0.0 <= cfg.MODEL.DROPOUT_RATE < 1.0, f"MODEL.DROPOUT_RATE must be in [0, 1), got {cfg.MODEL.DROPOUT_RATE}")
    need(s.BACKBONE_LR == -1.0 or s.BACKBONE_LR >= 0.0,
         f"SOLVER.BACKBONE_LR must be >= 0 (or -1 = SOLVER.BASE_LR), got {s.BACKBONE_LR}")
    if s.LR_POLICY == "gdt_epoch_warmup_steps":
        need(list(s.STEPS) == sorted(s.STEPS) and all(st >= 0 for st in s.STEPS) and s.GAMMA > 0,
             f"LR_POLICY gdt_epoch_warmup_steps needs SOLVER.STEPS sorted 0-based epochs and SOLVER.GAMMA > 0, got "
             f"{list(s.STEPS)} / {s.GAMMA}")
    r = cfg.RETRIEVAL
    need(len(r.KS) > 0 and all(k >= 1 for k in r.KS), f"RETRIEVAL.KS must be positive integers, got {list(r.KS)}")
    need(r.QUERY_SPLIT in ("train", "val", "test") and r.GALLERY_SPLIT in ("train", "val", "test"),
         f"RETRIEVAL.QUERY_SPLIT / RETRIEVAL.GALLERY_SPLIT must be train, val or test, got {r.QUERY_SPLIT!r} / "
         f"{r.GALLERY_SPLIT!r}")
    need(r.NUM_ENSEMBLE_VIEWS >= 1 and r.NUM_SPATIAL_CROPS in (1, 3),
         f"RETRIEVAL.NUM_ENSEMBLE_VIEWS must be >= 1 and RETRIEVAL.NUM_SPATIAL_CROPS 1 or 3, got "
         f"{r.NUM_ENSEMBLE_VIEWS} / {r.NUM_SPATIAL_CROPS}")


# Values of TEXT.VIDEO_NORMALIZE (see stica_ext.datasets.howto100m).
TEXT_VIDEO_NORMALIZE = ("none", "mean_std")


def _assert_text(cfg, need):
    """Checks of the TEXT node (video-text GDT): value ranges always; when the run pretrains on ``howto100m`` data,
    the model / loss it needs and the data paths (non-empty; files are only opened by the dataset and the model)."""
    t = cfg.TEXT
    need(t.MAX_WORDS >= 1, f"TEXT.MAX_WORDS must be >= 1, got {t.MAX_WORDS}")
    need(t.MIN_TIME >= 0 and t.MIN_TIME != float("inf"),
         f"TEXT.MIN_TIME must be a finite number of seconds >= 0 (0 = no widening), got {t.MIN_TIME}")
    need(t.CAPTION_CACHE_SIZE >= -1, f"TEXT.CAPTION_CACHE_SIZE must be >= -1 (-1 = all), got {t.CAPTION_CACHE_SIZE}")
    for key in ("VOCAB_SIZE", "WORD_DIM", "HIDDEN_DIM"):
        need(t[key] >= 1, f"TEXT.{key} must be >= 1, got {t[key]}")
    need(t.VIDEO_NORMALIZE in TEXT_VIDEO_NORMALIZE,
         f"TEXT.VIDEO_NORMALIZE must be one of {', '.join(TEXT_VIDEO_NORMALIZE)}, got {t.VIDEO_NORMALIZE!r}")
    need(t.VIDEO_EXT.startswith(".") and len(t.VIDEO_EXT) > 1,
         f"TEXT.VIDEO_EXT must be a file extension with its dot (e.g. '.mp4'), got {t.VIDEO_EXT!r}")
    if not (cfg.TASK == "ssl_pretrain" and cfg.TRAIN.ENABLE and str(cfg.TRAIN.DATASET).lower() == "howto100m"):
        return
    need(cfg.MODEL.MODEL_NAME == "TextVidGDT",
         f"TRAIN.DATASET howto100m gives (video, text) samples: MODEL.MODEL_NAME must be TextVidGDT, got "
         f"{cfg.MODEL.MODEL_NAME!r}")
    need(cfg.MODEL.LOSS_FUNC == "gdt_nce",
         f"MODEL.MODEL_NAME TextVidGDT is trained with the GDT objective: MODEL.LOSS_FUNC must be gdt_nce, got "
         f"{cfg.MODEL.LOSS_FUNC!r}")
    need(cfg.DATA.TARGET_FPS > 0, f"DATA.TARGET_FPS must be > 0, got {cfg.DATA.TARGET_FPS}")
    need(not cfg.TEST.ENABLE,
         "TEST.ENABLE after ssl_pretrain runs a linear probe on TRAIN.DATASET, and howto100m has no labels: set "
         "TEST.ENABLE False and probe the checkpoint afterwards with TASK linear_probe, TRAIN.DATASET <a labelled "
         "dataset> and TRAIN.CHECKPOINT_FILE_PATH")
    need(bool(t.VIDEO_LIST or t.VIDEO_ROOT),
         "TRAIN.DATASET howto100m needs videos: set TEXT.VIDEO_ROOT (the video folder) and/or TEXT.VIDEO_LIST (a CSV "
         "with a video_id or video_path column)")
    need(bool(t.CAPTION_ROOT or t.CAPTION_JSON),
         "TRAIN.DATASET howto100m needs captions: set TEXT.CAPTION_ROOT (one <video_id>.csv per video) or "
         "TEXT.CAPTION_JSON (caption.json)")
    need(bool(t.DICT_PATH), "TRAIN.DATASET howto100m needs a vocabulary: set TEXT.DICT_PATH (dict.npy)")
    need(bool(t.WORD2VEC_PATH),
         "TRAIN.DATASET howto100m needs the frozen word vectors: set TEXT.WORD2VEC_PATH (word2vec.pth, a V x "
         "TEXT.WORD_DIM tensor whose row i + 1 is the vector of word i of TEXT.DICT_PATH)")


def assert_and_infer_cfg(cfg):
    """Check that settings are consistent (errors name the keys) and fill in derived values. Returns ``cfg``."""
    def need(cond, msg):
        if not cond:
            raise ConfigError(msg)

    need(cfg.TASK in TASKS, f"TASK must be one of {', '.join(TASKS)}, got {cfg.TASK!r}")
    need(cfg.NUM_GPUS >= 0, f"NUM_GPUS must be >= 0, got {cfg.NUM_GPUS}")
    need(cfg.NUM_SHARDS >= 1, f"NUM_SHARDS must be >= 1, got {cfg.NUM_SHARDS}")
    need(0 <= cfg.SHARD_ID < cfg.NUM_SHARDS, f"SHARD_ID ({cfg.SHARD_ID}) must be in [0, NUM_SHARDS={cfg.NUM_SHARDS})")
    need(cfg.get("NUM_CPU_PROCESSES", 1) >= 1, f"NUM_CPU_PROCESSES must be >= 1, got {cfg.get('NUM_CPU_PROCESSES')}")
    ws = world_size(cfg)
    procs = "NUM_GPUS" if cfg.NUM_GPUS > 0 else "NUM_CPU_PROCESSES"
    for node in ("TRAIN", "TEST"):
        need(cfg[node].BATCH_SIZE % ws == 0,
             f"{node}.BATCH_SIZE ({cfg[node].BATCH_SIZE}) must be divisible by the number of processes "
             f"{procs} x NUM_SHARDS = {ws}")
    need(str(cfg.DATA.LAYOUT).lower() in ("auto", "csv", "folders", "kinetics_csv"),
         f"DATA.LAYOUT must be auto, csv, folders or kinetics_csv, got {cfg.DATA.LAYOUT!r}")
    need(cfg.DATA.PROBE_WORKERS >= 0, f"DATA.PROBE_WORKERS must be >= 0, got {cfg.DATA.PROBE_WORKERS}")
    for entry in cfg.DATA.SPLIT_DIRS:
        need(isinstance(entry, str) and ":" in entry,
             f"DATA.SPLIT_DIRS entries must be 'split:name1,name2', got {entry!r}")
    need(cfg.DATA.NUM_FRAMES >= 1, f"DATA.NUM_FRAMES must be >= 1, got {cfg.DATA.NUM_FRAMES}")
    need(cfg.DATA.SAMPLING_RATE >= 1, f"DATA.SAMPLING_RATE must be >= 1, got {cfg.DATA.SAMPLING_RATE}")
    need(len(cfg.DATA.TRAIN_JITTER_SCALES) == 2 and cfg.DATA.TRAIN_JITTER_SCALES[0] <= cfg.DATA.TRAIN_JITTER_SCALES[1],
         f"DATA.TRAIN_JITTER_SCALES must be [min, max], got {cfg.DATA.TRAIN_JITTER_SCALES}")
    need(cfg.DATA.TRAIN_JITTER_SCALES[0] >= cfg.DATA.TRAIN_CROP_SIZE,
         f"DATA.TRAIN_JITTER_SCALES ({cfg.DATA.TRAIN_JITTER_SCALES}) must not be smaller than "
         f"DATA.TRAIN_CROP_SIZE ({cfg.DATA.TRAIN_CROP_SIZE})")
    need(len(cfg.DATA.MEAN) == 3 and len(cfg.DATA.STD) == 3, "DATA.MEAN and DATA.STD must have 3 values")
    need(cfg.MODEL.ARCH in ("r2plus1d_18", "r2plus1d_34"),
         f"MODEL.ARCH must be 'r2plus1d_18' or 'r2plus1d_34', got {cfg.MODEL.ARCH!r}")
    need(cfg.AUDIO.ARCH in ("resnet9", "resnet18"), f"AUDIO.ARCH must be 'resnet9' or 'resnet18', got {cfg.AUDIO.ARCH!r}")
    need(cfg.RESNET.WIDTH_PER_GROUP >= 4 and cfg.RESNET.WIDTH_PER_GROUP % 4 == 0,
         f"RESNET.WIDTH_PER_GROUP must be a positive multiple of 4, got {cfg.RESNET.WIDTH_PER_GROUP}")
    need(cfg.AUDIO.SPEC_AUGMENT in ("none", "mild", "medium", "heavy"),
         f"AUDIO.SPEC_AUGMENT must be one of none/mild/medium/heavy, got {cfg.AUDIO.SPEC_AUGMENT!r}")
    need(cfg.AUDIO.MISSING in ("skip", "silence"), f"AUDIO.MISSING must be 'skip' or 'silence', got {cfg.AUDIO.MISSING!r}")
    need(cfg.AUDIO.NUM_SEC > 0, f"AUDIO.NUM_SEC must be > 0, got {cfg.AUDIO.NUM_SEC}")
    need(cfg.SOLVER.LR_POLICY in ("cosine", "steps_with_relative_lrs", "constant", "gdt_epoch_warmup",
                                  "gdt_epoch_warmup_steps"),
         f"SOLVER.LR_POLICY must be cosine, steps_with_relative_lrs, constant, gdt_epoch_warmup or "
         f"gdt_epoch_warmup_steps, got {cfg.SOLVER.LR_POLICY!r}")
    need(cfg.TRAIN.AMP_DTYPE in ("bfloat16", "float16"),
         f"TRAIN.AMP_DTYPE must be bfloat16 or float16, got {cfg.TRAIN.AMP_DTYPE!r}")
    need(not (cfg.TRAIN.MIXED_PRECISION and cfg.TRAIN.AMP_DTYPE == "float16" and cfg.NUM_GPUS == 0),
         "TRAIN.MIXED_PRECISION with TRAIN.AMP_DTYPE float16 needs NUM_GPUS > 0; use bfloat16 on the CPU")
    need(cfg.TRAIN.COMPILE_MODE in COMPILE_MODES,
         f"TRAIN.COMPILE_MODE must be one of {', '.join(COMPILE_MODES)}, got {cfg.TRAIN.COMPILE_MODE!r}")
    if cfg.SOLVER.LR_POLICY == "steps_with_relative_lrs":
        need(len(cfg.SOLVER.LRS) == len(cfg.SOLVER.STEPS) and len(cfg.SOLVER.STEPS) > 0,
             f"SOLVER.STEPS ({cfg.SOLVER.STEPS}) and SOLVER.LRS ({cfg.SOLVER.LRS}) must be non-empty and of equal length")
    need(cfg.SOLVER.OPTIMIZING_METHOD in ("sgd", "adam", "adamw"),
         f"SOLVER.OPTIMIZING_METHOD must be sgd, adam or adamw, got {cfg.SOLVER.OPTIMIZING_METHOD!r}")
    need(cfg.SOLVER.MAX_EPOCH >= 1, f"SOLVER.MAX_EPOCH must be >= 1, got {cfg.SOLVER.MAX_EPOCH}")
    need(cfg.GDT.TEMPERATURE > 0, f"GDT.TEMPERATURE must be > 0, got {cfg.GDT.TEMPERATURE}")
    try:
        cfg.GDT.HYPOTHESIS = str(resolve_hypothesis(cfg.GDT.HYPOTHESIS))
    except ValueError as e:
        raise ConfigError(f"GDT.HYPOTHESIS: {e}") from e
    for node in ("TRAIN", "TEST"):
        need(cfg[node].CHECKPOINT_TYPE in ("pytorch", "gdt", "auto"),
             f"{node}.CHECKPOINT_TYPE must be 'pytorch' (this project's checkpoints), 'gdt' (released GDT files) "
             f"or 'auto', got {cfg[node].CHECKPOINT_TYPE!r}")
    need(cfg.DATA.ENSEMBLE_METHOD in ("sum", "mean_logits"),
         f"DATA.ENSEMBLE_METHOD must be 'sum' or 'mean_logits', got {cfg.DATA.ENSEMBLE_METHOD!r}")
    need(cfg.LINEAR.TRAIN_SPLIT in ("train", "val", "test") and cfg.LINEAR.TEST_SPLIT in ("train", "val", "test"),
         f"LINEAR.TRAIN_SPLIT / LINEAR.TEST_SPLIT must be train, val or test, got "
         f"{cfg.LINEAR.TRAIN_SPLIT!r} / {cfg.LINEAR.TEST_SPLIT!r}")
    need(cfg.LINEAR.TRAIN_CLIPS_PER_VIDEO >= 1, "LINEAR.TRAIN_CLIPS_PER_VIDEO must be >= 1")
    need(cfg.TEST.NUM_ENSEMBLE_VIEWS >= 1 and cfg.TEST.NUM_SPATIAL_CROPS in (1, 3),
         f"TEST.NUM_ENSEMBLE_VIEWS must be >= 1 and TEST.NUM_SPATIAL_CROPS 1 or 3, got "
         f"{cfg.TEST.NUM_ENSEMBLE_VIEWS} / {cfg.TEST.NUM_SPATIAL_CROPS}")
    d = cfg.DATA  # the STiCA pretraining views' greyscale and blur
    for key in ("SSL_GRAY_PROB", "SSL_BLUR_PROB"):
        need(0.0 <= d[key] <= 1.0, f"DATA.{key} must be a probability in [0, 1], got {d[key]}")
    need(len(d.SSL_BLUR_SIGMA) == 2 and 0 < d.SSL_BLUR_SIGMA[0] <= d.SSL_BLUR_SIGMA[1],
         f"DATA.SSL_BLUR_SIGMA must be [min, max] with 0 < min <= max (pixels), got {list(d.SSL_BLUR_SIGMA)}")
    if cfg.DATA.COLOR_ON_DEVICE:
        need(cfg.DATA.FAST_AUGMENT and not cfg.GDT.REFERENCE_COLOR_JITTER,
             "DATA.COLOR_ON_DEVICE needs DATA.FAST_AUGMENT True and GDT.REFERENCE_COLOR_JITTER False (it defers the "
             "fast path's fused colour map)")
        need(str(cfg.TRAIN.DATASET).lower() != "howto100m",
             "DATA.COLOR_ON_DEVICE is supported by the audio-visual datasets only, not TRAIN.DATASET howto100m")
    _assert_downstream(cfg, need)
    _assert_text(cfg, need)
    if cfg.MODEL.MODEL_NAME == "STiCA":  # STiCA crops, pooling and loss (spec 5, 8 items 4, 8, 18)
        s = cfg.STICA
        crops = {f"STICA.{k}": s[k]
                 for k in ("NUM_LARGE_CROPS", "NUM_SMALL_CROPS", "NUM_LARGE_TCROPS", "NUM_SMALL_TCROPS")}
        need(min(crops.values()) >= 0 and s.NUM_LARGE_CROPS <= 2 and s.NUM_LARGE_TCROPS <= 2,
             f"STiCA crop counts must be >= 0, with at most 2 large crops; got {crops}")
        need(0.0 <= s.CROSS_MODAL_ALPHA <= 1.0, f"STICA.CROSS_MODAL_ALPHA must be in [0, 1], got {s.CROSS_MODAL_ALPHA}")
        active = (s.NUM_LARGE_CROPS == 2 or s.NUM_LARGE_CROPS * s.NUM_SMALL_CROPS > 0
                  or s.NUM_LARGE_TCROPS == 2 or s.NUM_LARGE_TCROPS * s.NUM_SMALL_TCROPS > 0)
        need(active or s.CROSS_MODAL_ALPHA == 1.0,
             f"no STiCA crop term is active ({crops}): use 2 large crops or >= 1 large and >= 1 small crops (spatial "
             f"or temporal), or STICA.CROSS_MODAL_ALPHA 1.0 for cross-modal learning only (got {s.CROSS_MODAL_ALPHA})")
        need(s.CROP_TEMPERATURE > 0 and s.CROSS_MODAL_TEMPERATURE > 0,
             f"STICA.CROP_TEMPERATURE and STICA.CROSS_MODAL_TEMPERATURE must be > 0, got {s.CROP_TEMPERATURE} / "
             f"{s.CROSS_MODAL_TEMPERATURE}")
        fracs = list(s.SPATIAL_CROP_FRACS) + list(s.TEMPORAL_CROP_FRACS)
        need(len(s.SPATIAL_CROP_FRACS) == 2 and len(s.TEMPORAL_CROP_FRACS) == 2 and all(0 < f <= 1 for f in fracs),
             f"STICA.SPATIAL_CROP_FRACS / STICA.TEMPORAL_CROP_FRACS must be [large, small] fractions in (0, 1], got "
             f"{list(s.SPATIAL_CROP_FRACS)} / {list(s.TEMPORAL_CROP_FRACS)}")
        need(s.NUM_LAYERS >= 0 and 0.0 <= s.DROPOUT < 1.0,
             f"STICA.NUM_LAYERS must be >= 0 and STICA.DROPOUT in [0, 1), got {s.NUM_LAYERS} / {s.DROPOUT}")
        t_map, hw_map = cfg.DATA.NUM_FRAMES, (cfg.DATA.TRAIN_CROP_SIZE + 1) // 2  # layer4 map: the stem halves space,
        for _ in range(3):  # layer2-4 halve time and space (ceil)
            t_map, hw_map = (t_map + 1) // 2, (hw_map + 1) // 2
        if s.NUM_LAYERS > 0:
            need(8 * cfg.RESNET.WIDTH_PER_GROUP % s.NUM_HEADS == 0,
                 f"the transformer width 8 x RESNET.WIDTH_PER_GROUP ({8 * cfg.RESNET.WIDTH_PER_GROUP}) must be "
                 f"divisible by STICA.NUM_HEADS ({s.NUM_HEADS})")
            need(not s.POSITIONAL_EMB or t_map <= s.MAX_POSITIONS,
                 f"DATA.NUM_FRAMES ({cfg.DATA.NUM_FRAMES}) gives {t_map} temporal tokens, more than the positional "
                 f"embedding's STICA.MAX_POSITIONS ({s.MAX_POSITIONS})")
        if s.CROP_COMPAT:
            need(hw_map == 7 or s.NUM_LARGE_CROPS + s.NUM_SMALL_CROPS == 0,
                 f"STICA.CROP_COMPAT needs the reference's 7 x 7 feature map (DATA.TRAIN_CROP_SIZE 97..112), "
                 f"DATA.TRAIN_CROP_SIZE {cfg.DATA.TRAIN_CROP_SIZE} gives {hw_map} x {hw_map}")
            need(t_map == 4 or t_map >= 7 or s.NUM_LARGE_TCROPS + s.NUM_SMALL_TCROPS == 0,
                 f"STICA.CROP_COMPAT temporal crops need a feature map of 4 or >= 7 time steps; DATA.NUM_FRAMES "
                 f"{cfg.DATA.NUM_FRAMES} gives {t_map}")
    return cfg
