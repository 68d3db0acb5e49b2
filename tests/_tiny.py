"""A tiny CPU configuration shared by the engine tests."""

from stica_ext.config import assert_and_infer_cfg, get_cfg


def tiny_cfg(data_dir, out_dir, **over):
    cfg = get_cfg()
    cfg.NUM_GPUS = 0
    cfg.OUTPUT_DIR = str(out_dir)
    cfg.RNG_SEED = 0
    cfg.LOG_PERIOD = 1
    cfg.TRAIN.DATASET = cfg.TEST.DATASET = "synthetic_av"
    cfg.DATA.PATH_TO_DATA_DIR = data_dir
    cfg.TRAIN.BATCH_SIZE = 4
    cfg.TEST.BATCH_SIZE = 4
    cfg.TEST.NUM_ENSEMBLE_VIEWS = 2
    cfg.TEST.NUM_SPATIAL_CROPS = 1
    cfg.DATA.NUM_FRAMES = 4
    cfg.DATA.SAMPLING_RATE = 4
    cfg.DATA.TRAIN_JITTER_SCALES = [32, 40]
    cfg.DATA.TRAIN_CROP_SIZE = 32
    cfg.DATA.TEST_CROP_SIZE = 32
    cfg.DATA_LOADER.NUM_WORKERS = 0
    cfg.AUDIO.SAMPLE_RATE = 16000
    cfg.RESNET.WIDTH_PER_GROUP = 4
    cfg.GDT.EMBED_DIM = 16
    cfg.SOLVER.BASE_LR = 0.01
    cfg.SOLVER.MAX_EPOCH = 2
    cfg.SOLVER.WARMUP_EPOCHS = 0.0
    cfg.LINEAR.EPOCHS = 5
    cfg.LINEAR.TRAIN_CLIPS_PER_VIDEO = 1
    cfg.merge_from_list([x for kv in over.items() for x in kv])
    return assert_and_infer_cfg(cfg)
