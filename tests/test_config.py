import pytest

from stica_ext.config import (ConfigError, HYPOTHESIS_NAMES, assert_and_infer_cfg, get_cfg, load_config,
                              resolve_hypothesis, views_for_hypothesis)


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_defaults_follow_pyslowfast_names():
    cfg = get_cfg()
    for key in ("TRAIN.BATCH_SIZE", "TRAIN.CHECKPOINT_FILE_PATH", "TEST.NUM_ENSEMBLE_VIEWS", "TEST.NUM_SPATIAL_CROPS",
                "DATA.PATH_TO_DATA_DIR", "DATA.PATH_PREFIX", "DATA.PATH_LABEL_SEPARATOR", "SOLVER.BASE_LR",
                "SOLVER.LR_POLICY", "DATA_LOADER.NUM_WORKERS", "MODEL.NUM_CLASSES", "BN.NORM_TYPE"):
        node, k = key.split(".")
        assert k in cfg[node], key
    for k in ("NUM_GPUS", "NUM_SHARDS", "SHARD_ID", "OUTPUT_DIR", "RNG_SEED", "LOG_PERIOD", "TASK"):
        assert k in cfg
    assert cfg.DATA.MEAN == [0.45, 0.45, 0.45] and cfg.GDT.TEMPERATURE == 0.07 and cfg.AUDIO.SAMPLE_RATE == 24000


def test_yaml_base_and_overrides(tmp_path):
    write(tmp_path, "base.yaml", "TRAIN:\n  BATCH_SIZE: 16\nSOLVER:\n  BASE_LR: 0.5\n")
    child = write(tmp_path, "child.yaml", "_BASE_: base.yaml\nSOLVER:\n  BASE_LR: 0.25\n")
    cfg = load_config(cfg_files=[child], opts=["SOLVER.MAX_EPOCH", "3", "GDT.HYPOTHESIS", "4"])
    assert cfg.TRAIN.BATCH_SIZE == 16 and cfg.SOLVER.BASE_LR == 0.25 and cfg.SOLVER.MAX_EPOCH == 3
    assert cfg.GDT.HYPOTHESIS == "4"


def test_unknown_yaml_key_names_key_and_file(tmp_path):
    bad = write(tmp_path, "bad.yaml", "TRAIN:\n  BATCH_SZE: 16\n")
    with pytest.raises(ConfigError) as e:
        load_config(cfg_files=[bad])
    msg = str(e.value)
    assert "TRAIN.BATCH_SZE" in msg and "bad.yaml" in msg and "TRAIN.BATCH_SIZE" in msg  # suggestion


def test_unknown_command_line_key():
    with pytest.raises(ConfigError, match="SOLVER.BASE_LRR"):
        load_config(opts=["SOLVER.BASE_LRR", "0.1"])
    with pytest.raises(ConfigError, match="KEY VALUE"):
        load_config(opts=["SOLVER.BASE_LR"])


def test_wrong_type_is_an_error(tmp_path):
    bad = write(tmp_path, "t.yaml", "TRAIN:\n  BATCH_SIZE: many\n")
    with pytest.raises(ConfigError, match="BATCH_SIZE"):
        load_config(cfg_files=[bad])


def test_missing_file():
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(cfg_files=["nope.yaml"])


def test_hypothesis_by_number_or_name():
    assert resolve_hypothesis(3) == 3 and resolve_hypothesis("v_shift") == 4 and resolve_hypothesis(" 9 ") == 9
    assert len(HYPOTHESIS_NAMES) == 9
    with pytest.raises(ValueError, match="cross_modal_baseline"):
        resolve_hypothesis("10")
    cfg = load_config(opts=["GDT.HYPOTHESIS", "i_reversal"])
    assert assert_and_infer_cfg(cfg).GDT.HYPOTHESIS == "3"
    assert views_for_hypothesis(1) == ("orig",)
    assert views_for_hypothesis("i_shift") == ("orig", "shift")
    assert views_for_hypothesis(7) == ("orig", "rev", "shift", "shift_rev")
    with pytest.raises(ConfigError, match="GDT.HYPOTHESIS"):
        assert_and_infer_cfg(load_config(opts=["GDT.HYPOTHESIS", "v_flip"]))


@pytest.mark.parametrize("opts, keys", [
    (["NUM_GPUS", "3", "TRAIN.BATCH_SIZE", "8"], ["TRAIN.BATCH_SIZE", "NUM_GPUS"]),
    (["DATA.TRAIN_CROP_SIZE", "200"], ["DATA.TRAIN_JITTER_SCALES", "DATA.TRAIN_CROP_SIZE"]),
    (["MODEL.ARCH", "r3d_18"], ["MODEL.ARCH"]),
    (["AUDIO.SPEC_AUGMENT", "extreme"], ["AUDIO.SPEC_AUGMENT"]),
    (["SOLVER.LR_POLICY", "steps_with_relative_lrs"], ["SOLVER.STEPS", "SOLVER.LRS"]),
    (["SHARD_ID", "2"], ["SHARD_ID", "NUM_SHARDS"]),
    (["TASK", "finetune_everything"], ["TASK"]),
    (["DATA.SSL_BLUR_PROB", "1.5"], ["DATA.SSL_BLUR_PROB"]),
    (["DATA.SSL_GRAY_PROB", "-0.1"], ["DATA.SSL_GRAY_PROB"]),
    (["DATA.SSL_BLUR_SIGMA", "[2.0, 1.0]"], ["DATA.SSL_BLUR_SIGMA"]),
])
def test_inconsistent_settings_name_the_keys(opts, keys):
    with pytest.raises(ConfigError) as e:
        assert_and_infer_cfg(load_config(opts=opts))
    for k in keys:
        assert k in str(e.value)


def test_shipped_configs_load():
    import glob
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files = sorted(glob.glob(os.path.join(root, "configs", "**", "*.yaml"), recursive=True))
    assert files
    for f in files:
        assert_and_infer_cfg(load_config(cfg_files=[f]))
