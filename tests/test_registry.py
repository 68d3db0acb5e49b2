import os
import subprocess
import sys
import textwrap

import pytest

from stica_ext.registry import DATASET_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY, dataset_key, get_dataset_class

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_dataset_lookup_follows_pyslowfast_rule():
    from stica_ext.datasets.av_dataset import AudioVisualDataset, SyntheticAVDataset

    assert dataset_key("synthetic_av") == "Synthetic_av"
    assert get_dataset_class("synthetic_av") is SyntheticAVDataset
    assert get_dataset_class("audiovisual") is AudioVisualDataset
    assert DATASET_REGISTRY.get("Synthetic_av") is SyntheticAVDataset
    with pytest.raises(KeyError, match="synthetic_av"):  # the message lists the known datasets
        get_dataset_class("kinetics_typo")


def test_models_and_losses_registered():
    from stica_ext.losses import GDTNCELoss
    from stica_ext.models import GDT

    assert MODEL_REGISTRY.get("GDT") is GDT
    assert LOSS_REGISTRY.get("gdt_nce") is GDTNCELoss


STANDIN = {
    "slowfast/__init__.py": "",
    "slowfast/models/__init__.py": "",
    "slowfast/models/build.py": """
        from fvcore.common.registry import Registry
        MODEL_REGISTRY = Registry("MODEL")

        @MODEL_REGISTRY.register()
        class SlowFast:
            pass
    """,
    "slowfast/models/losses.py": """
        import torch.nn as nn
        _LOSSES = {"cross_entropy": nn.CrossEntropyLoss}
    """,
    "slowfast/datasets/__init__.py": "",
    "slowfast/datasets/build.py": """
        from fvcore.common.registry import Registry
        DATASET_REGISTRY = Registry("DATASET")

        def build_dataset(dataset_name, cfg, split):
            return DATASET_REGISTRY.get(dataset_name.capitalize())(cfg, split)
    """,
    "slowfast/config/__init__.py": "",
    "slowfast/config/defaults.py": """
        from fvcore.common.config import CfgNode
        _C = CfgNode()
        _C.TRAIN = CfgNode()
        _C.TRAIN.BATCH_SIZE = 64
        _C.TRAIN.DATASET = "kinetics"
        _C.DATA = CfgNode()
        _C.DATA.NUM_FRAMES = 8
        _C.BN = CfgNode()
        _C.BN.NORM_TYPE = "batchnorm"

        def get_cfg():
            return _C.clone()
    """,
}


def _write_pkg(root, files):
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))


def _run(tmp_path, code):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), ROOT]))
    env.pop("STICA_EXT_NO_SLOWFAST", None)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=120)


def test_registration_into_standin_slowfast(tmp_path):
    _write_pkg(tmp_path, STANDIN)
    r = _run(tmp_path, """
        import stica_ext
        from slowfast.models.build import MODEL_REGISTRY
        from slowfast.datasets.build import DATASET_REGISTRY, build_dataset
        from slowfast.models.losses import _LOSSES
        from slowfast.config.defaults import get_cfg
        from stica_ext.models import GDT
        from stica_ext.datasets.av_dataset import SyntheticAVDataset
        from stica_ext.losses import GDTNCELoss
        assert MODEL_REGISTRY.get("GDT") is GDT
        assert MODEL_REGISTRY.get("SlowFast") is not None          # host's own entries untouched
        assert DATASET_REGISTRY.get("Synthetic_av") is SyntheticAVDataset
        assert DATASET_REGISTRY.get("Audiovisual") is not None
        assert _LOSSES["gdt_nce"] is GDTNCELoss and "cross_entropy" in _LOSSES
        cfg = get_cfg()
        assert cfg.GDT.TEMPERATURE == 0.07 and cfg.AUDIO.SAMPLE_RATE == 24000 and "NUM_TRAIN" in cfg.SYNTH
        assert cfg.TRAIN.BATCH_SIZE == 64 and cfg.DATA.NUM_FRAMES == 8     # host defaults kept
        assert "SSL_COLOR_JITTER" in cfg.DATA and "DROP_LAST" in cfg.TRAIN  # new keys of shared nodes added
        # PySlowFast's model builder contract: MODEL_REGISTRY.get(name)(cfg)
        cfg.MODEL = stica_ext.config.get_cfg().MODEL
        cfg.RESNET = stica_ext.config.get_cfg().RESNET
        cfg.RESNET.WIDTH_PER_GROUP = 8
        m = MODEL_REGISTRY.get("GDT")(cfg)
        assert m.feat_dim == 64
        from stica_ext.registry import register_with_slowfast
        assert register_with_slowfast() is register_with_slowfast()  # idempotent
        print("OK")
    """)
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout


def test_incompatible_slowfast_is_reported_once_and_ignored(tmp_path):
    # like the 2019 PyPI snapshot: no builder registries, imports detectron2 at load time
    _write_pkg(tmp_path, {"slowfast/__init__.py": "", "slowfast/models/__init__.py": "import detectron2\n"})
    r = _run(tmp_path, """
        import logging
        logging.basicConfig(level=logging.WARNING)
        import stica_ext
        from stica_ext.registry import register_with_slowfast, get_dataset_class
        assert register_with_slowfast() is None
        assert register_with_slowfast() is None
        assert get_dataset_class("synthetic_av").__name__ == "SyntheticAVDataset"
        print("OK")
    """)
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout
    assert r.stderr.count("not a PySlowFast with builder registries") == 1
