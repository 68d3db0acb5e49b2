"""Default configuration of stica_ext.

Keys shared with PySlowFast keep PySlowFast's names and meanings (``TRAIN.BATCH_SIZE`` is the global batch over
all processes, ``NUM_GPUS 0`` means CPU, ...). Concepts that PySlowFast does not have live in new top-level
nodes: ``GDT``, ``AUDIO``, ``SYNTH``, ``LINEAR``. :func:`add_stica_config` adds exactly those new nodes (and the
few new keys of shared nodes) to any ``CfgNode``, which is how the PySlowFast host adapter extends
``slowfast.config.defaults``.
"""

from fvcore.common.config import CfgNode

_C = CfgNode()

# ---------------------------------------------------------------------------------------------------------------
# Top level (PySlowFast names)
# ---------------------------------------------------------------------------------------------------------------
# What run_net does: "ssl_pretrain" (self-supervised pretraining; TEST.ENABLE then runs the linear probe of the
# result) or "linear_probe" (probe TRAIN.CHECKPOINT_FILE_PATH, or a random network when it is empty), "finetune"
# (train and test a VideoClassifier on UCF101 / HMDB51 folds) or "retrieval" (nearest-neighbour video retrieval with
# the pretrained backbone, per fold).
_C.TASK = "ssl_pretrain"
# Number of processes (GPUs) per machine; 0 = run on the CPU (NUM_CPU_PROCESSES processes per machine).
_C.NUM_GPUS = 1
# (new) With NUM_GPUS 0: CPU processes per machine (gloo backend); > 1 runs data-parallel CPU training from one
# command line (used by the tests and for debugging distributed code without GPUs).
_C.NUM_CPU_PROCESSES = 1
_C.NUM_SHARDS = 1
_C.SHARD_ID = 0
_C.OUTPUT_DIR = "."
_C.RNG_SEED = 1
_C.LOG_PERIOD = 10
_C.LOG_MODEL_INFO = True
_C.DIST_BACKEND = "nccl"
# (new; detectron2's name) cuDNN autotuning (torch.backends.cudnn.benchmark): each new input shape is timed once over
# several convolution algorithms, the fastest is kept. Pays off when shapes stay fixed (training crops); GPU only, a
# no-op on the CPU.
_C.CUDNN_BENCHMARK = False

# ---------------------------------------------------------------------------------------------------------------
# TRAIN
# ---------------------------------------------------------------------------------------------------------------
_C.TRAIN = CfgNode()
_C.TRAIN.ENABLE = True
_C.TRAIN.DATASET = "synthetic_av"
# Global batch size over all processes.
_C.TRAIN.BATCH_SIZE = 64
_C.TRAIN.EVAL_PERIOD = 10
# Write a numbered checkpoint every CHECKPOINT_PERIOD epochs (the last epoch always gets one).
_C.TRAIN.CHECKPOINT_PERIOD = 10
_C.TRAIN.AUTO_RESUME = True
# Weights to start from (pretraining: initialisation; linear probe: the network to probe).
_C.TRAIN.CHECKPOINT_FILE_PATH = ""
_C.TRAIN.CHECKPOINT_TYPE = "pytorch"
_C.TRAIN.CHECKPOINT_EPOCH_RESET = False
# Mixed precision (autocast) in training: off by default; TRAIN.AMP_DTYPE "bfloat16" (CPU or GPU) or "float16"
# (GPU, with a gradient scaler).
_C.TRAIN.MIXED_PRECISION = False
_C.TRAIN.AMP_DTYPE = "bfloat16"
# Drop the last incomplete batch of an epoch (contrastive losses want full batches).
_C.TRAIN.DROP_LAST = True
# UCF101 / HMDB51 training: copies of each video per epoch, each a random clip (the finetuning recipe: 10).
_C.TRAIN.CLIPS_PER_VIDEO = 10
# (new) Channels-last memory layout: 3-D convolution weights and the video batches in channels_last_3d, 2-D (audio)
# convolution weights in channels_last. Faster convolutions on GPUs with tensor cores (mostly together with
# TRAIN.MIXED_PRECISION); valid on the CPU too. Numerically the same network; state_dict names are unchanged.
_C.TRAIN.CHANNELS_LAST = False
# (new) Compile the model with torch.compile (in place: state_dict names and checkpoints are unchanged), mode
# TRAIN.COMPILE_MODE: "default", "reduce-overhead" (CUDA graphs), "max-autotune" or "max-autotune-no-cudagraphs".
# The first iterations are slow (compilation); needs a working Inductor backend (Triton on GPUs, a C++ compiler on
# the CPU).
_C.TRAIN.COMPILE = False
_C.TRAIN.COMPILE_MODE = "default"

# ---------------------------------------------------------------------------------------------------------------
# TEST
# ---------------------------------------------------------------------------------------------------------------
_C.TEST = CfgNode()
_C.TEST.ENABLE = True
_C.TEST.DATASET = "synthetic_av"
_C.TEST.BATCH_SIZE = 8
_C.TEST.CHECKPOINT_FILE_PATH = ""
_C.TEST.CHECKPOINT_TYPE = "pytorch"
# Temporal views per video at test time (uniformly spaced) and spatial crops per temporal view.
_C.TEST.NUM_ENSEMBLE_VIEWS = 10
_C.TEST.NUM_SPATIAL_CROPS = 3
_C.TEST.SAVE_RESULTS_PATH = ""

# ---------------------------------------------------------------------------------------------------------------
# DATA
# ---------------------------------------------------------------------------------------------------------------
_C.DATA = CfgNode()
# Folder holding {train,val,test}.csv ("path label" per line, no header).
_C.DATA.PATH_TO_DATA_DIR = ""
_C.DATA.PATH_PREFIX = ""
_C.DATA.PATH_LABEL_SEPARATOR = " "
# Frames per clip and frame stride at TARGET_FPS (clip length = NUM_FRAMES * SAMPLING_RATE / TARGET_FPS s).
_C.DATA.NUM_FRAMES = 30
_C.DATA.SAMPLING_RATE = 1
_C.DATA.TARGET_FPS = 30
_C.DATA.TRAIN_JITTER_SCALES = [128, 160]
_C.DATA.TRAIN_CROP_SIZE = 112
_C.DATA.TEST_CROP_SIZE = 112
_C.DATA.MEAN = [0.45, 0.45, 0.45]
_C.DATA.STD = [0.225, 0.225, 0.225]
_C.DATA.RANDOM_FLIP = True
_C.DATA.INPUT_CHANNEL_NUM = [3]
_C.DATA.DECODING_BACKEND = "pyav"
# Colour jitter of the training views: on/off and brightness, contrast, saturation strengths.
_C.DATA.SSL_COLOR_JITTER = True
_C.DATA.SSL_COLOR_BRI_CON_SAT = [0.4, 0.4, 0.4]
# STiCA pretraining views only (GDT's views have no greyscale or blur): probability of greyscale, probability of a
# Gaussian blur and the range its isotropic sigma (in pixels of the output crop) is drawn from. The recipe's values
# were chosen for 112-px crops; a blur of the same relative strength on smaller crops scales sigma with the crop.
_C.DATA.SSL_GRAY_PROB = 0.2
_C.DATA.SSL_BLUR_PROB = 0.5
_C.DATA.SSL_BLUR_SIGMA = [0.1, 2.0]
# How test views of a video are combined: "sum" (sum of softmax scores, PySlowFast) or "mean_logits" (mean of the
# raw logits, the GDT evaluation code).
_C.DATA.ENSEMBLE_METHOD = "sum"
# How many other samples a dataset tries when a video cannot be decoded before giving up.
_C.DATA.NUM_RETRIES = 10
# Fast view augmentation: resize / crop the uint8 frames and apply colour jitter, greyscale and normalisation as
# one per-frame affine map (same random draws as the float path; pixels differ by uint8 rounding, <= 1/255
# before jitter). False = convert the whole clip to float first (the slower reference path).
_C.DATA.FAST_AUGMENT = True
# Pretraining samples (GDT / STiCA views of the audio-visual datasets) leave the workers as uint8 views plus each
# view's colour map (colour jitter, greyscale and normalisation as one affine map; STiCA's blur sigma), and the
# training step finishes them on its device: a quarter of the bytes to collate, pin and copy, and no float pass in
# the workers. Same views up to float rounding. Needs DATA.FAST_AUGMENT and not GDT.REFERENCE_COLOR_JITTER.
_C.DATA.COLOR_ON_DEVICE = False
# UCF101 / HMDB51: folder of the split files (ucfTrainTestlist/ or testTrainMulti_7030_splits/; "" = the video root
# DATA.PATH_TO_DATA_DIR, which holds one folder per class), the fold (1, 2 or 3), and the folds one command runs
# one after the other, each in OUTPUT_DIR/fold<k> with a per-fold and mean +- std report ([] = DATA.FOLD only).
_C.DATA.ANNOTATION_DIR = ""
_C.DATA.FOLD = 1
_C.DATA.FOLDS = []
# Skip (and count) videos of the split lists that are not on disk instead of stopping with an error.
_C.DATA.SKIP_MISSING_VIDEOS = False
# (new) Audio-visual video lists (see stica_ext.datasets.index): "auto", "csv" (PySlowFast `path label` lists),
# "folders" (<root>/<split>/<class>/<video>, sorted class folders) or "kinetics_csv" (official Kinetics CSVs).
_C.DATA.LAYOUT = "auto"
# (new) Split -> folder / CSV names, entries "split:name1,name2" (first existing wins; "." = the root itself).
_C.DATA.SPLIT_DIRS = []
# (new) File extensions listed by the folder layouts (case-insensitive).
_C.DATA.VIDEO_EXTENSIONS = [".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".ogv", ".3gp"]
# (new) One class name per line, fixing label numbers (default: sorted class folders / classes.txt).
_C.DATA.CLASS_NAMES_FILE = ""
# (new) Probe every listed video once (cached next to the data) and drop those that cannot give a clip: corrupt,
# empty, too short, or without audio when audio is needed and AUDIO.MISSING is "skip". The log and the dataset's
# index_summary count each reason. False = keep the list as is (bad videos are then replaced at load time).
_C.DATA.VALIDITY_FILTER = True
# (new) Processes probing videos for the validity index (<= 1: in the main process).
_C.DATA.PROBE_WORKERS = 4
# (new) Where validity indexes are cached ("" = <data dir>/.stica_index, else $STICA_EXT_CACHE/index).
_C.DATA.INDEX_CACHE_DIR = ""
# RandomResizedCrop for training clips of UCF101 / HMDB51 (PySlowFast names): area fraction [min, max] and aspect
# ratio [min, max]; [] = short-side jitter (TRAIN_JITTER_SCALES) + random crop instead. STiCA pretraining views
# always use RandomResizedCrop: these ranges when set, else the recipe's [0.14, 1] and [3/4, 4/3].
_C.DATA.TRAIN_JITTER_SCALES_RELATIVE = []
_C.DATA.TRAIN_JITTER_ASPECT_RELATIVE = []

# ---------------------------------------------------------------------------------------------------------------
# DATA_LOADER
# ---------------------------------------------------------------------------------------------------------------
_C.DATA_LOADER = CfgNode()
_C.DATA_LOADER.NUM_WORKERS = 8
_C.DATA_LOADER.PIN_MEMORY = True
_C.DATA_LOADER.ENABLE_MULTI_THREAD_DECODE = False
# Keep freed memory in the heap of data-loading processes (glibc M_MMAP_THRESHOLD / M_TRIM_THRESHOLD): avoids
# page faults on every sample's large buffers (stica_ext/utils/malloc.py). Ignored off glibc or when the
# MALLOC_*_THRESHOLD_ environment variables are set.
_C.DATA_LOADER.TUNE_MALLOC = True

# ---------------------------------------------------------------------------------------------------------------
# SOLVER
# ---------------------------------------------------------------------------------------------------------------
_C.SOLVER = CfgNode()
_C.SOLVER.BASE_LR = 0.01
# "cosine", "steps_with_relative_lrs", "constant" (each after an optional linear warmup, per iteration), or
# "gdt_epoch_warmup": the GDT reference schedule, stepped once per epoch: BASE_LR x (1 + (m - 1) x min(e,
# WARMUP_EPOCHS) / WARMUP_EPOCHS) in epoch e, then constant at BASE_LR x m, with m = SOLVER.WARMUP_MULTIPLIER
# (-1 = the number of processes, which is what the reference did implicitly).
_C.SOLVER.LR_POLICY = "cosine"
_C.SOLVER.WARMUP_MULTIPLIER = -1.0
_C.SOLVER.COSINE_END_LR = 0.0
_C.SOLVER.COSINE_AFTER_WARMUP = True
_C.SOLVER.STEPS = []
_C.SOLVER.LRS = []
_C.SOLVER.MAX_EPOCH = 201
_C.SOLVER.MOMENTUM = 0.9
_C.SOLVER.DAMPENING = 0.0
_C.SOLVER.NESTEROV = False
_C.SOLVER.WEIGHT_DECAY = 1e-5
_C.SOLVER.WARMUP_EPOCHS = 0.0
_C.SOLVER.WARMUP_START_LR = 0.01
# "sgd", "adam" or "adamw".
_C.SOLVER.OPTIMIZING_METHOD = "sgd"
_C.SOLVER.BETAS = (0.9, 0.999)
_C.SOLVER.CLIP_GRAD_L2NORM = None
# Finetuning: learning rate of the pretrained part (video backbone and pooling); BASE_LR is the head's. -1 = BASE_LR.
# Both follow the LR policy in proportion.
_C.SOLVER.BACKBONE_LR = -1.0
# LR_POLICY "gdt_epoch_warmup_steps" (the finetuning schedule, per epoch): "gdt_epoch_warmup", then x GAMMA in every
# epoch after each (0-based) epoch listed in SOLVER.STEPS; WARMUP_EPOCHS 2, WARMUP_MULTIPLIER 8, STEPS [6, 10] and
# GAMMA 0.05 give the reference finetuning table.
_C.SOLVER.GAMMA = 0.1

# ---------------------------------------------------------------------------------------------------------------
# MODEL / RESNET / BN
# ---------------------------------------------------------------------------------------------------------------
_C.MODEL = CfgNode()
# Video backbone: "r2plus1d_18" or "r2plus1d_34".
_C.MODEL.ARCH = "r2plus1d_18"
# Meta-architecture in the model registry.
_C.MODEL.MODEL_NAME = "GDT"
_C.MODEL.NUM_CLASSES = 10
_C.MODEL.DROPOUT_RATE = 0.0
# Loss in the loss registry.
_C.MODEL.LOSS_FUNC = "gdt_nce"

_C.RESNET = CfgNode()
# Base width (channels of the first stage) of the video and audio ResNets; 64 is the published network, smaller
# values give narrow networks for demos and tests (every width scales by WIDTH_PER_GROUP / 64).
_C.RESNET.WIDTH_PER_GROUP = 64
# Zero-initialise the last BatchNorm of each residual block (blocks start as identities; faster from scratch).
_C.RESNET.ZERO_INIT_FINAL_BN = False

_C.BN = CfgNode()
_C.BN.NORM_TYPE = "batchnorm"
# Convert every BatchNorm to SyncBatchNorm over all processes when training with several processes.
_C.BN.GLOBAL_SYNC = True

# ---------------------------------------------------------------------------------------------------------------
# GDT (new): heads, objective
# ---------------------------------------------------------------------------------------------------------------
_C.GDT = CfgNode()
_C.GDT.EMBED_DIM = 256
_C.GDT.USE_MLP = True
_C.GDT.MLP_HIDDEN_DIM = 512
_C.GDT.MLP_DROPOUT = 0.3
_C.GDT.NORM_FEAT = True
# NCE softmax temperature.
_C.GDT.TEMPERATURE = 0.07
# Transformation hypothesis, by number 1..9 or README name ("cross_modal_baseline", ...).
_C.GDT.HYPOTHESIS = "1"
# Negatives gathered from the other processes kept per loss term: -1 = all, N > 0 = a random subset of N rows.
_C.GDT.NUM_NEGATIVES = -1
# Reproduce the reference's multi-process negative-bank aliasing (spec 4.4) instead of the clean banks (4.3).
_C.GDT.REFERENCE_BANK_ALIASING = False
# Reproduce the reference's pretraining colour jitter layout quirk (spec 3.3a) instead of per-frame RGB jitter.
_C.GDT.REFERENCE_COLOR_JITTER = False

# ---------------------------------------------------------------------------------------------------------------
# AUDIO (new): audio stream, spectrogram, audio backbone
# ---------------------------------------------------------------------------------------------------------------
_C.AUDIO = CfgNode()
_C.AUDIO.ENABLE = True
# Audio backbone: "resnet9" or "resnet18".
_C.AUDIO.ARCH = "resnet9"
_C.AUDIO.SAMPLE_RATE = 24000
_C.AUDIO.NUM_SEC = 1.0
# Mel filters of the log filterbank (40 for GDT, 257 for STiCA).
_C.AUDIO.NUM_MEL_BINS = 40
_C.AUDIO.WIN_LENGTH = 0.02
_C.AUDIO.HOP_LENGTH = 0.01
_C.AUDIO.NFFT = 1024
_C.AUDIO.PREEMPHASIS = 0.97
# Multiply the waveform by U(1 - j, 1 + j) during training (0 = off).
_C.AUDIO.VOLUME_JITTER = 0.1
# Fixed z-normalisation of the log spectrogram: (spec - MEAN) / STD.
_C.AUDIO.Z_NORMALIZE = True
_C.AUDIO.Z_MEAN = 1.93
_C.AUDIO.Z_STD = 17.89
# SpecAugment during training: "none", "mild", "medium", "heavy".
_C.AUDIO.SPEC_AUGMENT = "medium"
# What to do with a video that has no audio stream: "skip" (replace by another sample) or "silence".
_C.AUDIO.MISSING = "skip"

# ---------------------------------------------------------------------------------------------------------------
# SYNTH (new): the embedded synthetic audio-visual dataset
# ---------------------------------------------------------------------------------------------------------------
_C.SYNTH = CfgNode()
# Where generated videos are cached ("" = $STICA_EXT_CACHE or ~/.cache/stica_ext); a sub-folder per parameter set.
_C.SYNTH.CACHE_DIR = ""
_C.SYNTH.SEED = 0
_C.SYNTH.NUM_TRAIN = 400
_C.SYNTH.NUM_VAL = 100
_C.SYNTH.NUM_TEST = 200
_C.SYNTH.SIZE = 112
_C.SYNTH.DURATION = 3.0
_C.SYNTH.FPS = 30
_C.SYNTH.SAMPLE_RATE = 24000
# Processes used to generate the videos on first use.
_C.SYNTH.NUM_WORKERS = 2
# Visual difficulty: object radius range multiplier (pitch range unchanged) and the most static distractors per clip.
_C.SYNTH.OBJECT_SCALE = 1.0
_C.SYNTH.MAX_DISTRACTORS = 2

# ---------------------------------------------------------------------------------------------------------------
# LINEAR (new): linear probe on frozen features
# ---------------------------------------------------------------------------------------------------------------
_C.LINEAR = CfgNode()
# Split the probe is trained on and the split it is tested on.
_C.LINEAR.TRAIN_SPLIT = "train"
_C.LINEAR.TEST_SPLIT = "test"
# Use only the first N videos of LINEAR.TRAIN_SPLIT for the probe (0 = all): a labelled subset of the pretraining set.
_C.LINEAR.NUM_TRAIN_VIDEOS = 0
# Randomly augmented clips per training video (features are extracted once and cached).
_C.LINEAR.TRAIN_CLIPS_PER_VIDEO = 4
_C.LINEAR.EPOCHS = 100
_C.LINEAR.BATCH_SIZE = 64
_C.LINEAR.BASE_LR = 0.1
_C.LINEAR.WEIGHT_DECAY = 1e-4
_C.LINEAR.MOMENTUM = 0.9
# Extract the frozen features once (TRAIN_CLIPS_PER_VIDEO augmented clips per video) and train on the cache;
# False runs the frozen backbone every epoch on freshly augmented clips.
_C.LINEAR.CACHE_FEATURES = True
# Standardise features with the training set's mean / std before the linear layer.
_C.LINEAR.STANDARDIZE = True
# Also probe the same architecture at random initialisation (same seed) and print both numbers.
_C.LINEAR.COMPARE_RANDOM_INIT = True

# ---------------------------------------------------------------------------------------------------------------
# STICA (new): space-time crops and transformer pooling
# ---------------------------------------------------------------------------------------------------------------
_C.STICA = CfgNode()
# Feature-map crops per view (spec 5.1, 5.3). Large crops: at most 2. The loss needs at least one active crop term
# (2 large crops, or >= 1 large and >= 1 small crops, spatial or temporal) unless CROSS_MODAL_ALPHA is 1.0.
_C.STICA.NUM_LARGE_CROPS = 2
_C.STICA.NUM_SMALL_CROPS = 4
_C.STICA.NUM_LARGE_TCROPS = 2
_C.STICA.NUM_SMALL_TCROPS = 1
# Crop windows as fractions (large, small) of the feature map's size, rounded half up to whole cells: spatial 6/7 and
# 4/7 of each axis (7x7 map: 6x6 and 4x4), temporal 3/4 and 1/2 of T' (T'=4: 3 and 2, T'=8: 6 and 4).
_C.STICA.SPATIAL_CROP_FRACS = [6 / 7, 4 / 7]
_C.STICA.TEMPORAL_CROP_FRACS = [0.75, 0.5]
# Reproduce the reference's crop windows and positions (fixed 6x6 / 4x4 windows on a 7x7 map, temporal 3/2 for
# T'=4 else 6/4, the last valid offset never drawn, large spatial crop always top-left) instead of the fractions
# above with offsets drawn over every valid position.
_C.STICA.CROP_COMPAT = False
# Video pooling: 0 = global average pooling, N > 0 = N-layer transformer over the temporal tokens of the map.
_C.STICA.NUM_LAYERS = 0
_C.STICA.NUM_HEADS = 4
_C.STICA.DROPOUT = 0.0
# Learned positional embedding (MAX_POSITIONS rows; the layer4 time length must not exceed it) and value / output
# projections in the attention.
_C.STICA.POSITIONAL_EMB = False
_C.STICA.MAX_POSITIONS = 64
_C.STICA.QKV_MHA = False
# Objective: crop terms at CROP_TEMPERATURE, video-audio term at CROSS_MODAL_TEMPERATURE, total
# (1 - CROSS_MODAL_ALPHA) * crops + CROSS_MODAL_ALPHA * cross-modal.
_C.STICA.CROP_TEMPERATURE = 0.5
_C.STICA.CROSS_MODAL_TEMPERATURE = 0.1
_C.STICA.CROSS_MODAL_ALPHA = 0.5
# Re-encode the audio for each of the two views (reference) instead of once per step.
_C.STICA.AUDIO_PER_VIEW = False

# ---------------------------------------------------------------------------------------------------------------
# TEXT (new): video-text GDT (HowTo100M)
# ---------------------------------------------------------------------------------------------------------------
_C.TEXT = CfgNode()
# Video list: a CSV with a header and a ``video_id`` column (file ``VIDEO_ROOT/<id><VIDEO_EXT>``) or a ``video_path``
# column (relative to VIDEO_ROOT, or to the CSV's folder when VIDEO_ROOT is empty); "" = every video in VIDEO_ROOT.
_C.TEXT.VIDEO_LIST = ""
_C.TEXT.VIDEO_ROOT = ""
_C.TEXT.VIDEO_EXT = ".mp4"
# Captions: one ``<id>.csv`` (start,end,text) per video under CAPTION_ROOT, or one caption.json
# ({id: {"start": [...], "end": [...], "text": [...]}}); CAPTION_JSON wins when both are set.
_C.TEXT.CAPTION_ROOT = ""
_C.TEXT.CAPTION_JSON = ""
# Videos whose parsed per-video caption CSVs are kept in memory per process (-1 = all).
_C.TEXT.CAPTION_CACHE_SIZE = 20000
# Vocabulary (numpy array of words; token id = index + 1, 0 = padding) and the frozen word-vector matrix
# (V x WORD_DIM tensor, torch.save'd). The matrix is read lazily, never when only the video branch is used.
_C.TEXT.DICT_PATH = ""
_C.TEXT.WORD2VEC_PATH = ""
# Look words up in lower case first, then in their exact case (False = exact case only, the reference behaviour).
_C.TEXT.LOWER_CASE = True
# Word-embedding rows used when the model is built before WORD2VEC_PATH or a checkpoint fills them.
_C.TEXT.VOCAB_SIZE = 66250
_C.TEXT.WORD_DIM = 300
# Text encoder width (fc1 output, input of the text head).
_C.TEXT.HIDDEN_DIM = 2048
# Tokens per caption (truncated / zero-padded).
_C.TEXT.MAX_WORDS = 20
# Captions shorter than this (s) are widened symmetrically to it (clamped at 0); 0 = no widening.
_C.TEXT.MIN_TIME = 4.0
# Video normalisation: "none" (pixels / 255, the reference) or "mean_std" ((x / 255 - DATA.MEAN) / DATA.STD).
_C.TEXT.VIDEO_NORMALIZE = "none"
# Exclude padding positions from the text max-pool (False = reference: padding embeds row 0 and takes part).
_C.TEXT.MASK_PADDING = False

# ---------------------------------------------------------------------------------------------------------------
# FINETUNE (new): downstream classifier (VideoClassifier) and its evaluation on UCF101 / HMDB51
# ---------------------------------------------------------------------------------------------------------------
_C.FINETUNE = CfgNode()
# Pooling of the backbone's layer4 map: "gap" (global average pooling, GDT) or "stica" (the STiCA pooling module
# described by STICA.NUM_LAYERS / NUM_HEADS / DROPOUT / POSITIONAL_EMB / QKV_MHA / MAX_POSITIONS, loaded strictly
# from the pretrained checkpoint when it has parameters).
_C.FINETUNE.POOLING = "gap"
# BatchNorm1d on the pooled features before the linear head, and L2-normalisation of the features (both off in the
# reference recipe). Dropout before the head: MODEL.DROPOUT_RATE.
_C.FINETUNE.USE_BN = False
_C.FINETUNE.L2_NORM = False
# Probability of the colour jitter (strengths DATA.SSL_COLOR_BRI_CON_SAT, on/off DATA.SSL_COLOR_JITTER) of a
# training clip.
_C.FINETUNE.COLOR_JITTER_PROB = 0.8
# Reproduce the reference's random test views (short side U(DATA.TRAIN_JITTER_SCALES), crop DATA.TRAIN_CROP_SIZE,
# colour jitter) instead of the deterministic ones; for comparison with published numbers only.
_C.FINETUNE.REFERENCE_TEST_AUGMENT = False
# Epochs (1-based) after which the test split is also evaluated; the last epoch always is. The reference evaluates
# after epochs 8-12 and reports the best of them.
_C.FINETUNE.EVAL_EPOCHS = []
# Also report the best evaluated epoch (by video top-1). It is selected on the test split, so it is labelled
# "best epoch (selected on test)" and never replaces the last-epoch numbers.
_C.FINETUNE.REPORT_BEST_EPOCH = False

# ---------------------------------------------------------------------------------------------------------------
# RETRIEVAL (new): nearest-neighbour video retrieval with the pretrained backbone
# ---------------------------------------------------------------------------------------------------------------
_C.RETRIEVAL = CfgNode()
# Videos of QUERY_SPLIT query those of GALLERY_SPLIT; a hit at k when one of the k nearest has the query's class.
_C.RETRIEVAL.QUERY_SPLIT = "test"
_C.RETRIEVAL.GALLERY_SPLIT = "train"
_C.RETRIEVAL.KS = [1, 5, 10, 20]
# Deterministic views per video whose L2-normalised features are averaged (temporal x spatial).
_C.RETRIEVAL.NUM_ENSEMBLE_VIEWS = 10
_C.RETRIEVAL.NUM_SPATIAL_CROPS = 1

# ---------------------------------------------------------------------------------------------------------------
# TENSORBOARD
# ---------------------------------------------------------------------------------------------------------------
_C.TENSORBOARD = CfgNode()
_C.TENSORBOARD.ENABLE = False
_C.TENSORBOARD.LOG_DIR = ""

# The nodes and keys this project adds to a PySlowFast config.
NEW_NODES = ("GDT", "AUDIO", "SYNTH", "LINEAR", "STICA", "TEXT", "FINETUNE", "RETRIEVAL")
# New top-level keys.
NEW_TOP_KEYS = ("NUM_CPU_PROCESSES", "CUDNN_BENCHMARK")
NEW_KEYS = {
    "TRAIN": ("DROP_LAST", "AMP_DTYPE", "CLIPS_PER_VIDEO", "CHANNELS_LAST", "COMPILE", "COMPILE_MODE"),
    "SOLVER": ("WARMUP_MULTIPLIER", "BACKBONE_LR"),
    "DATA": ("ENSEMBLE_METHOD", "SSL_COLOR_JITTER", "SSL_COLOR_BRI_CON_SAT", "SSL_GRAY_PROB", "SSL_BLUR_PROB",
             "SSL_BLUR_SIGMA", "NUM_RETRIES", "DECODING_BACKEND",
             "ANNOTATION_DIR", "FOLD", "FOLDS", "SKIP_MISSING_VIDEOS", "LAYOUT", "SPLIT_DIRS", "VIDEO_EXTENSIONS",
             "CLASS_NAMES_FILE", "VALIDITY_FILTER", "PROBE_WORKERS", "INDEX_CACHE_DIR", "FAST_AUGMENT",
             "COLOR_ON_DEVICE"),
    "DATA_LOADER": ("TUNE_MALLOC",),
    "BN": ("GLOBAL_SYNC",),
    "RESNET": ("WIDTH_PER_GROUP", "ZERO_INIT_FINAL_BN"),
}


def get_defaults():
    """A fresh copy of the full default configuration."""
    return _C.clone()


def add_stica_config(cfg):
    """Add this project's nodes (and the new keys of shared nodes) to ``cfg`` (e.g. a PySlowFast config).

    Existing keys are never overwritten.
    """
    cfg.defrost()
    for key in NEW_TOP_KEYS:
        if key not in cfg:
            cfg[key] = _C[key]
    for node in NEW_NODES:
        if node not in cfg:
            cfg[node] = _C[node].clone()
    for node, keys in NEW_KEYS.items():
        if node not in cfg:
            cfg[node] = CfgNode()
        for key in keys:
            if key not in cfg[node]:
                cfg[node][key] = _C[node][key]
    return cfg
