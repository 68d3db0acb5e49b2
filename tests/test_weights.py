"""Pretrained weights: weights_only reading with the reference allow-list, layouts, strict/report loading, key
maps, and the conversion tool.

Files in the released GDT layout are written here from the spec's key lists (tests/data) with random tensors, a
pickled ``argparse.Namespace`` and a scheduler object of a class living in a fake ``src.scheduler`` module (which
does not exist when the file is read, as on a user's machine). Full-width models are built on the ``meta``
device where only names and shapes matter; value checks use narrow real models.
"""

import argparse
import contextlib
import importlib.util
import os
import pickle
import subprocess
import sys
import types
from collections import Counter, OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from stica_ext.engine.checkpoint import load_checkpoint, save_checkpoint
from stica_ext.models import GDT
from stica_ext.models.gdt import build_video_base
from stica_ext.models.weights import (
    REFERENCE_SAFE_GLOBALS,
    CheckpointReadError,
    LoadReport,
    PickledReferenceObject,
    UnsafeCheckpointError,
    detect_checkpoint_type,
    extract_state_dict,
    infer_gdt_kwargs,
    load_pretrained,
    load_weights_from_cfg,
    read_checkpoint_file,
    remap_state_dict,
    stand_in_class,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
A1 = "state_dict_gdt_r2plus1d18_resnet9_mlp.txt"
A8 = "state_dict_gdt_r2plus1d34_resnet18_mlp.txt"
FC = ("audio_network.base.fc.weight", "audio_network.base.fc.bias")
VIDEO = "video_network.base."


def read_fixture(name):
    """Lines ``name (d0,d1,...) dtype`` -> list of (name, shape, dtype)."""
    rows = []
    for line in (DATA / name).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, shape, dtype = line.split()
        dims = shape.strip("()")
        rows.append((key, tuple(int(d) for d in dims.split(",")) if dims else (), getattr(torch, dtype)))
    return rows


def random_state(rows, seed=0):
    g = torch.Generator().manual_seed(seed)
    state = OrderedDict()
    for key, shape, dtype in rows:
        if dtype.is_floating_point:
            state[key] = torch.randn(shape, generator=g, dtype=dtype)
        else:
            state[key] = torch.randint(0, 1000, shape, generator=g, dtype=dtype)
    return state


def on_meta(fn, *args, **kwargs):
    with torch.device("meta"):
        return fn(*args, **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Writing files in the reference trainers' layouts
# ---------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def fake_module(path, **attrs):
    """Make ``path`` (dotted) importable while the block runs, holding ``attrs``; classes get it as __module__."""
    parts = path.split(".")
    saved = {}
    mods = []
    for i in range(len(parts)):
        name = ".".join(parts[:i + 1])
        saved[name] = sys.modules.get(name)
        mod = types.ModuleType(name)
        sys.modules[name] = mod
        if mods:
            setattr(mods[-1], parts[i], mod)
        mods.append(mod)
    for k, v in attrs.items():
        if isinstance(v, type):
            v.__module__ = path
        setattr(mods[-1], k, v)
    try:
        yield mods[-1]
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


class GradualWarmupScheduler:
    """Shaped like the reference warm-up scheduler: keeps the scheduler it hands over to in its ``__dict__``."""

    def __init__(self, optimizer, multiplier, total_epoch, after_scheduler):
        self.optimizer = optimizer
        self.multiplier = multiplier
        self.total_epoch = total_epoch
        self.after_scheduler = after_scheduler
        self.finished = False
        self.last_epoch = 0

    def state_dict(self):
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}


def trainer_objects():
    """A real SGD + MultiStepLR (with momentum state) wrapped by the warm-up scheduler class."""
    lin = nn.Linear(3, 2)
    opt = torch.optim.SGD(lin.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-5)
    lin(torch.randn(4, 3)).sum().backward()
    opt.step()
    after = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[241], gamma=0.1)
    return opt, GradualWarmupScheduler(opt, multiplier=16, total_epoch=10, after_scheduler=after)


ARGS = argparse.Namespace(vid_base_arch="r2plus1d_18", aud_base_arch="resnet9", use_mlp=True, lr=0.01, epochs=201,
                          output_dir="/checkpoint/somebody/gdt")


def save_released(path, state, scheduler_as="state", legacy=False):
    """``{"model", "optimizer", "lr_scheduler", "epoch", "args"}`` as the GDT trainer writes it (spec 2.1).
    ``scheduler_as="state"``: the scheduler's state_dict (holding the MultiStepLR object); ``"object"``: the
    warm-up scheduler object itself."""
    with fake_module("src.scheduler", GradualWarmupScheduler=GradualWarmupScheduler):
        opt, sched = trainer_objects()
        ckpt = {
            "model": state,
            "optimizer": opt.state_dict(),
            "lr_scheduler": sched.state_dict() if scheduler_as == "state" else sched,
            "epoch": 201,
            "args": ARGS,
        }
        torch.save(ckpt, str(path), _use_new_zipfile_serialization=not legacy)
    return str(path)


def narrow_gdt(seed=0, **kwargs):
    torch.manual_seed(seed)
    kwargs.setdefault("width", 8)
    kwargs.setdefault("mlp_hidden_dim", 64)
    model = GDT(**kwargs)
    with torch.no_grad():  # make BN buffers differ from their defaults so that copying them is visible
        for name, buf in model.named_buffers():
            if buf.is_floating_point():
                buf.uniform_(0.5, 1.5)
            else:
                buf.fill_(seed + 7)
    return model


def released_state_of(model):
    """A narrow model's state_dict as a released file holds it: no dead audio fc."""
    return OrderedDict((k, v.clone()) for k, v in model.state_dict().items() if k not in FC)


@pytest.fixture(scope="module")
def full_released(tmp_path_factory):
    """Full-width released-layout file built from spec A.1 without the dead audio fc (as released)."""
    rows = [r for r in read_fixture(A1) if r[0] not in FC]
    state = random_state(rows)
    path = save_released(tmp_path_factory.mktemp("released") / "gdt_K400.pth", state)
    return path, state


# ---------------------------------------------------------------------------------------------------------------
# Reading: what torch's weights_only unpickler needs, and the allow-list
# ---------------------------------------------------------------------------------------------------------------
def test_plain_weights_only_rejects_the_released_layout_and_the_allow_list_covers_exactly_it(tmp_path):
    path = save_released(tmp_path / "ref.pth", released_state_of(narrow_gdt()), scheduler_as="object")
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, map_location="cpu", weights_only=True)
    needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    assert needed == {"argparse.Namespace", "builtins.dict", "collections.defaultdict", "torch.optim.sgd.SGD",
                      "torch.optim.lr_scheduler.MultiStepLR", "src.scheduler.GradualWarmupScheduler"}
    names = {e[1] if isinstance(e, tuple) else f"{e.__module__}.{e.__qualname__}" for e in REFERENCE_SAFE_GLOBALS}
    assert needed <= names


@pytest.mark.parametrize("scheduler_as", ["state", "object"])
@pytest.mark.parametrize("legacy", [False, True])
def test_read_released_layout_with_stand_ins(tmp_path, scheduler_as, legacy):
    state = released_state_of(narrow_gdt())
    path = save_released(tmp_path / "ref.pth", state, scheduler_as=scheduler_as, legacy=legacy)
    assert "src.scheduler" not in sys.modules
    ckpt = read_checkpoint_file(path)
    after_read = torch.serialization.get_safe_globals()  # the allow-list was only active while reading
    assert not any(e in after_read for e in REFERENCE_SAFE_GLOBALS)
    assert ckpt["epoch"] == 201
    assert isinstance(ckpt["args"], argparse.Namespace) and vars(ckpt["args"]) == vars(ARGS)
    assert list(ckpt["model"]) == list(state)
    assert torch.equal(ckpt["model"]["video_network.base.stem.0.weight"], state["video_network.base.stem.0.weight"])
    sched = ckpt["lr_scheduler"]
    if scheduler_as == "object":
        assert isinstance(sched, PickledReferenceObject)
        assert sched.reference_path == "src.scheduler.GradualWarmupScheduler"
        assert sched.multiplier == 16 and sched.total_epoch == 10
        after = sched.after_scheduler
    else:
        assert isinstance(sched, dict) and sched["multiplier"] == 16
        after = sched["after_scheduler"]
    assert type(after) is stand_in_class("torch.optim.lr_scheduler.MultiStepLR")
    assert after.milestones == Counter({241: 1}) and after.gamma == 0.1
    opt = after.optimizer
    assert opt.reference_path == "torch.optim.sgd.SGD"
    assert type(opt.state) is dict and len(opt.state) == 2  # defaultdict read as a plain dict
    assert opt.param_groups[0]["lr"] == 0.01 and opt.param_groups[0]["params"][0].shape == (2, 3)
    assert "stand-in for torch.optim.sgd.SGD" in repr(opt)


def test_reference_objects_need_the_opt_in(tmp_path):
    path = save_released(tmp_path / "ref.pth", released_state_of(narrow_gdt()))
    with pytest.raises(UnsafeCheckpointError) as err:
        read_checkpoint_file(path, allow_pickled_reference=False)
    msg = str(err.value)
    assert path in msg and "argparse.Namespace" in msg and "torch.optim.sgd.SGD" in msg
    assert "allow_pickled_reference=True" in msg
    assert "argparse.Namespace" in err.value.globals


class Widget:
    def __init__(self):
        self.size = 3


@pytest.mark.parametrize("legacy", [False, True])
def test_unknown_pickled_global_is_named_with_how_to_allow_it(tmp_path, legacy):
    path = str(tmp_path / "odd.pth")
    with fake_module("thirdparty.things", Widget=Widget):
        torch.save({"model": released_state_of(narrow_gdt()), "extra": Widget()}, path,
                   _use_new_zipfile_serialization=not legacy)
    with pytest.raises(UnsafeCheckpointError) as err:
        read_checkpoint_file(path)
    msg = str(err.value)
    assert path in msg and "thirdparty.things.Widget" in msg
    assert "extra_safe_globals" in msg and "add_safe_globals" in msg and "stand_in_class" in msg
    assert err.value.globals == ["thirdparty.things.Widget"]
    # following the advice works, without importing the class
    name = "thirdparty.things.Widget"
    ckpt = read_checkpoint_file(path, extra_safe_globals=[(stand_in_class(name), name)])
    assert ckpt["extra"].size == 3 and ckpt["extra"].reference_path == name


def test_missing_file_is_named(tmp_path):
    path = str(tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        read_checkpoint_file(path)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_pretrained(on_meta(GDT), path)


@pytest.mark.parametrize("legacy", [False, True])
def test_truncated_file_is_named(tmp_path, legacy):
    good = save_released(tmp_path / "good.pth", released_state_of(narrow_gdt()), legacy=legacy)
    data = Path(good).read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 40):
        bad = tmp_path / f"cut{cut}.pth"
        bad.write_bytes(data[:cut])
        with pytest.raises(CheckpointReadError, match=f"cannot read checkpoint .*cut{cut}.pth.*(truncated|corrupt)"):
            read_checkpoint_file(str(bad))


def test_garbage_and_empty_files_are_named(tmp_path):
    for name, data in (("garbage.pth", b"not a checkpoint at all"), ("empty.pth", b"")):
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(CheckpointReadError, match=name):
            read_checkpoint_file(str(p))


# ---------------------------------------------------------------------------------------------------------------
# Layouts
# ---------------------------------------------------------------------------------------------------------------
def test_extract_state_dict_layouts():
    t = torch.zeros(2)
    assert detect_checkpoint_type({"model_state": {"a": t}, "epoch": 1}) == "pytorch"
    assert detect_checkpoint_type({"model": {"a": t}, "args": ARGS}) == "gdt"
    assert detect_checkpoint_type({"state_dict": {"module.a": t}, "epoch": 3}) == "gdt"
    assert detect_checkpoint_type({"a": t}) == "state_dict"
    assert list(extract_state_dict({"model_state": {"a": t}})) == ["a"]
    assert list(extract_state_dict({"model": {"a": t}})) == ["a"]
    # only one leading "module." goes; inner occurrences stay
    sd = extract_state_dict({"state_dict": {"module.video_network.module.x": t, "module.b": t, "c": t}})
    assert list(sd) == ["video_network.module.x", "b", "c"]
    assert list(extract_state_dict({"module.module.a": t})) == ["module.a"]
    # state_dict wins over model when both are present (as the reference evaluation does)
    assert list(extract_state_dict({"state_dict": {"s": t}, "model": {"m": t}})) == ["s"]
    with pytest.raises(ValueError, match="both"):
        extract_state_dict({"module.a": t, "a": t})
    with pytest.raises(ValueError, match="no model weights.*epoch"):
        extract_state_dict({"epoch": 3, "optimizer": {}})
    with pytest.raises(ValueError, match="'pytorch'.*'gdt'"):
        extract_state_dict({"model": {"a": t}}, "pytorch")
    with pytest.raises(ValueError, match="'gdt'.*model_state"):
        extract_state_dict({"model_state": {"a": t}}, "gdt")
    with pytest.raises(ValueError, match="caffe2"):
        extract_state_dict({"a": t}, "caffe2")


# ---------------------------------------------------------------------------------------------------------------
# Loading into full-width models (meta device: names and shapes)
# ---------------------------------------------------------------------------------------------------------------
def test_full_released_file_loads_into_gdt_with_zero_missing_video_keys(full_released):
    path, state = full_released
    assert len(state) == 310
    report = load_pretrained(on_meta(GDT), path, dry_run=True)  # default GDT keeps the dead fc
    assert isinstance(report, LoadReport)
    assert report.checkpoint_type == "gdt" and report.epoch == 201 and report.total == 312
    assert len([k for k in report.loaded if k.startswith(VIDEO)]) == 222
    assert len(report.loaded) == 310
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []
    assert report.ignored == list(FC)  # optional: absent from the file, present in the model
    text = str(report)
    assert "would load 310/312" in text and path in text and "epoch 201" in text and "audio_network.base.fc" in text
    # a model without the dead fc: nothing to ignore
    report = load_pretrained(on_meta(GDT, audio_dead_fc=False), path, dry_run=True)
    assert report.all_matched and report.ignored == [] and len(report.loaded) == 310


def test_checkpoint_with_dead_fc_loads_into_model_without_it():
    state = random_state(read_fixture(A1))
    assert all(k in state for k in FC)
    report = load_pretrained(on_meta(GDT, audio_dead_fc=False), {"model": state, "epoch": 5}, dry_run=True)
    assert report.unexpected == [] and report.missing == [] and sorted(report.ignored) == sorted(FC)
    report = load_pretrained(on_meta(GDT), {"model": state}, dry_run=True)
    assert report.all_matched and report.ignored == [] and len(report.loaded) == 312


def test_rest_is_reported_not_skipped(full_released, caplog):
    path, _ = full_released
    model = on_meta(GDT, use_mlp=False)  # linear heads: the file's MLP heads do not fit
    with caplog.at_level("WARNING", logger="stica_ext.models.weights"):
        report = load_pretrained(model, path, dry_run=True)
    assert sorted(report.missing) == ["mlp_a.bias", "mlp_a.weight", "mlp_v.bias", "mlp_v.weight"]
    assert "mlp_v.block_forward.2.weight" in report.unexpected and len(report.unexpected) == 16
    assert not report.all_matched
    text = str(report)
    assert "missing from the checkpoint" in text and "mlp_v.weight" in text and "mlp_v.block_forward.2.weight" in text
    assert "mlp_v.block_forward" in caplog.text  # logged too
    # a head of another size: shape mismatch reported with both shapes
    state = random_state(read_fixture(A1))
    state["mlp_v.block_forward.8.weight"] = torch.zeros(128, 512)
    state["mlp_v.block_forward.8.bias"] = torch.zeros(128)
    report = load_pretrained(on_meta(GDT), state, dry_run=True)
    assert ("mlp_v.block_forward.8.weight", (128, 512), (256, 512)) in report.mismatched
    assert "checkpoint (128, 512) vs model (256, 512)" in str(report)


def test_missing_video_keys_fail_naming_them(full_released, tmp_path):
    _, state = full_released
    bad = OrderedDict(state)
    del bad["video_network.base.layer2.0.downsample.0.weight"]
    del bad["video_network.base.stem.4.running_var"]
    path = str(tmp_path / "bad.pth")
    torch.save({"model": bad, "epoch": 1}, path)
    with pytest.raises(RuntimeError) as err:
        load_pretrained(on_meta(GDT), path, dry_run=True)
    msg = str(err.value)
    assert path in msg and "2 problem" in msg
    assert "video_network.base.layer2.0.downsample.0.weight (128, 64, 1, 1, 1)" in msg
    assert "video_network.base.stem.4.running_var (64,)" in msg


def test_wrong_video_shape_fails_naming_key_and_shapes():
    state = random_state(read_fixture(A1))
    state["video_network.base.stem.0.weight"] = torch.zeros(32, 3, 1, 7, 7)
    with pytest.raises(RuntimeError, match=r"video_network.base.stem.0.weight: checkpoint \(32, 3, 1, 7, 7\) vs "
                                           r"model \(45, 3, 1, 7, 7\)"):
        load_pretrained(on_meta(GDT), {"model": state}, dry_run=True)


def test_deeper_video_backbone_is_not_a_match():
    """An R(2+1)D-34 file holds every R(2+1)D-18 key with the same shape; its extra blocks still make it fail."""
    state = random_state(read_fixture(A8))
    with pytest.raises(RuntimeError, match=r"not in the model video_network.base.layer1.2"):
        load_pretrained(on_meta(GDT), {"model": state}, dry_run=True)
    report = load_pretrained(on_meta(GDT, video_arch="r2plus1d_34", audio_arch="resnet18"), {"model": state},
                             dry_run=True)
    assert report.all_matched and len(report.loaded) == 550


def test_strict_everything_and_nothing():
    state = random_state([r for r in read_fixture(A1) if not r[0].startswith("mlp_a.")])
    with pytest.raises(RuntimeError, match="mlp_a.block_forward.2.weight"):
        load_pretrained(on_meta(GDT), state, strict_prefixes=("",), dry_run=True)
    layer4 = [r[0] for r in read_fixture(A1) if r[0].startswith(VIDEO + "layer4")]
    state = random_state([r for r in read_fixture(A1) if r[0] not in layer4])
    report = load_pretrained(on_meta(GDT), state, strict_prefixes=(), dry_run=True)
    assert report.missing == layer4 and len(layer4) == 54


def test_strict_prefix_that_matches_nothing_is_an_error():
    backbone = on_meta(build_video_base, "r2plus1d_18")
    state = random_state(read_fixture(A1))
    with pytest.raises(ValueError, match="prefix_map"):
        load_pretrained(backbone, state, dry_run=True)


# ---------------------------------------------------------------------------------------------------------------
# Values, layouts end to end, key maps
# ---------------------------------------------------------------------------------------------------------------
def assert_same(model, state, keys=None):
    sd = model.state_dict()
    for k in keys or state:
        assert torch.equal(sd[k], state[k]), k


def test_values_are_copied_from_a_released_file(tmp_path):
    src = narrow_gdt(seed=1)
    state = released_state_of(src)
    path = save_released(tmp_path / "gdt.pth", state)
    dst = narrow_gdt(seed=2)
    key = "video_network.base.layer3.1.conv2.0.3.weight"
    assert not torch.equal(dst.state_dict()[key], state[key])
    dead_fc = dst.audio_network.base.fc.weight.clone()
    report = load_pretrained(dst, path)
    assert report.all_matched and report.ignored == list(FC)
    assert torch.equal(dst.state_dict()[key], state[key])
    assert torch.equal(dst.video_network.base.stem[1].num_batches_tracked, torch.tensor(8))
    assert_same(dst, state)
    assert torch.equal(dst.audio_network.base.fc.weight, dead_fc)  # optional key: left as it was


def test_stica_trainer_layout_with_module_prefix(tmp_path):
    src = narrow_gdt(seed=3, audio_dead_fc=False)
    state = OrderedDict(("module." + k, v) for k, v in src.state_dict().items())
    opt = torch.optim.SGD(src.parameters(), lr=0.1)
    path = str(tmp_path / "checkpoint.pth.tar")
    torch.save({"epoch": 20, "state_dict": state, "optimizer": opt.state_dict()}, path)
    dst = narrow_gdt(seed=4, audio_dead_fc=False)
    report = load_pretrained(dst, path, checkpoint_type="gdt")
    assert report.all_matched and report.epoch == 20
    assert_same(dst, src.state_dict())


def test_own_format_and_load_weights_from_cfg(tmp_path):
    src = narrow_gdt(seed=5)
    from stica_ext.config import get_cfg

    cfg = get_cfg()
    path = save_checkpoint(str(tmp_path), src, None, 3, cfg)
    dst = narrow_gdt(seed=6)
    report = load_weights_from_cfg(dst, path, cfg.TRAIN.CHECKPOINT_TYPE)
    assert cfg.TRAIN.CHECKPOINT_TYPE == "pytorch"
    assert report.checkpoint_type == "pytorch" and report.epoch == 3 and report.all_matched
    assert_same(dst, src.state_dict())
    assert load_weights_from_cfg(dst, "", "pytorch") is None
    with pytest.raises(ValueError, match="unknown checkpoint type"):
        load_weights_from_cfg(dst, path, "caffe2")
    with pytest.raises(ValueError, match=f"{path}.*'gdt'.*model_state"):
        load_weights_from_cfg(dst, path, "gdt")
    # a released file under CHECKPOINT_TYPE pytorch: told which type to use
    released = save_released(tmp_path / "gdt.pth", released_state_of(src))
    with pytest.raises(UnsafeCheckpointError, match="allow_pickled_reference"):
        load_weights_from_cfg(dst, released, "pytorch")
    with pytest.raises(ValueError, match="'pytorch' expects.*'gdt'"):
        load_weights_from_cfg(dst, released, "pytorch", allow_pickled_reference=True)
    assert load_weights_from_cfg(dst, released, "gdt").checkpoint_type == "gdt"
    assert load_weights_from_cfg(dst, released, "auto").all_matched


def test_remap_state_dict():
    t = torch.zeros(1)
    state = OrderedDict([("video_network.base.stem.0.weight", t), ("video_network.other", t),
                         ("audio_network.base.conv1.weight", t), ("mlp_v.x", t)])
    out, dropped = remap_state_dict(state, {"video_network.": "v.", "video_network.base.": "backbone.",
                                            "audio_network.": None})
    assert list(out) == ["backbone.stem.0.weight", "v.other", "mlp_v.x"]  # longest source prefix wins
    assert dropped == ["audio_network.base.conv1.weight"]
    out, _ = remap_state_dict(state, {"video_network.base.": ""})
    assert "stem.0.weight" in out
    with pytest.raises(ValueError, match="two checkpoint keys"):
        remap_state_dict(OrderedDict([("a.x", t), ("b.x", t)]), {"a.": "", "b.": ""})
    assert remap_state_dict(state, None)[0] == state


def test_prefix_map_into_the_backbone_alone(tmp_path):
    src = narrow_gdt(seed=7)
    state = released_state_of(src)
    path = save_released(tmp_path / "gdt.pth", state)
    backbone = build_video_base("r2plus1d_18", width=8)
    report = load_pretrained(backbone, path, prefix_map={VIDEO: ""})
    assert report.missing == [] and report.mismatched == [] and len(report.loaded) == 222
    assert len(report.unexpected) == len(state) - 222  # audio and heads: reported, not used
    for k, v in backbone.state_dict().items():
        assert torch.equal(v, state[VIDEO + k]), k
    # the same, with the unused parts dropped on purpose
    report = load_pretrained(build_video_base("r2plus1d_18", width=8), path,
                             prefix_map={VIDEO: "", "audio_network.": None, "mlp_": None})
    assert report.all_matched and len(report.dropped) == len(state) - 222
    assert "dropped by prefix_map" in str(report)
    # into the video_network.base of another GDT
    dst = narrow_gdt(seed=8)
    load_pretrained(dst.video_network.base, path, prefix_map={VIDEO: ""})
    assert_same(dst, state, [k for k in state if k.startswith(VIDEO)])


class Classifier(nn.Module):
    """A finetuning model holding the backbone as ``backbone`` and its own ``head``."""

    def __init__(self):
        super().__init__()
        self.backbone = build_video_base("r2plus1d_18", width=8)
        self.head = nn.Linear(64, 101)


def test_prefix_map_into_a_classifier(tmp_path):
    state = released_state_of(narrow_gdt(seed=9))
    path = save_released(tmp_path / "gdt.pth", state)
    model = Classifier()
    head = model.head.weight.clone()
    report = load_pretrained(model, path, prefix_map={VIDEO: "backbone."})
    assert sorted(report.missing) == ["head.bias", "head.weight"]
    assert all(k.startswith("backbone.") for k in report.loaded) and len(report.loaded) == 222
    assert torch.equal(model.backbone.layer4[1].conv2[1].running_mean,
                       state[VIDEO + "layer4.1.conv2.1.running_mean"])
    assert torch.equal(model.head.weight, head)
    # strict applies through the map: a missing backbone key fails
    del state[VIDEO + "layer4.1.conv2.1.running_mean"]
    with pytest.raises(RuntimeError, match=r"missing backbone.layer4.1.conv2.1.running_mean \(64,\)"):
        load_pretrained(Classifier(), {"model": state}, prefix_map={VIDEO: "backbone."})


def test_ddp_style_wrapper_is_unwrapped():
    src = narrow_gdt(seed=10, audio_dead_fc=False)
    dst = nn.DataParallel(narrow_gdt(seed=11, audio_dead_fc=False))
    report = load_pretrained(dst, {"model": src.state_dict()})
    assert report.all_matched
    assert_same(dst.module, src.state_dict())


def test_infer_gdt_kwargs():
    info = infer_gdt_kwargs(random_state(read_fixture(A1)))
    assert info == dict(video_arch="r2plus1d_18", width=64, audio_arch="resnet9", audio_dead_fc=True, use_mlp=True,
                        embed_dim=256, mlp_hidden_dim=512)
    info = infer_gdt_kwargs(random_state(read_fixture(A8)))
    assert info["video_arch"] == "r2plus1d_34" and info["audio_arch"] == "resnet18" and not info["audio_dead_fc"]
    video_only = {k: v for k, v in released_state_of(narrow_gdt()).items() if k.startswith(VIDEO)}
    info = infer_gdt_kwargs(video_only)
    assert info["width"] == 8 and info["audio_arch"] is None and info["use_mlp"] is None
    with pytest.raises(ValueError, match="stem.3.weight"):
        infer_gdt_kwargs({"mlp_v.weight": torch.zeros(2, 2)})


def model_from_rows(rows):
    """A module on the meta device whose state_dict has exactly the given names, shapes and dtypes (a stand-in for
    the STiCA / video-text models, whose names spec Appendix A fixes)."""
    root = nn.Module()
    for key, shape, dtype in rows:
        *path, leaf = key.split(".")
        mod = root
        for part in path:
            if part not in mod._modules:
                mod.add_module(part, nn.Module())
            mod = mod._modules[part]
        mod.register_buffer(leaf, torch.empty(shape, dtype=dtype, device="meta"))
    return root


def test_stica_trainer_file_with_transformer_pooling(tmp_path):
    """STiCA trainer layout (spec 2.2): ``state_dict`` with ``module.`` keys, incl. ``video_pooling.*``."""
    rows = read_fixture("state_dict_stica_transformer2_mlp.txt")
    assert len(rows) == 336 and sum(r[0].startswith("video_pooling.2.transformer.") for r in rows) == 24
    state = random_state(rows)
    path = str(tmp_path / "checkpoint.pth.tar")
    torch.save({"epoch": 100, "state_dict": OrderedDict(("module." + k, v) for k, v in state.items()),
                "optimizer": {"state": {}, "param_groups": []}}, path)
    report = load_pretrained(model_from_rows(rows), path, strict_prefixes=(VIDEO, "video_pooling."), dry_run=True)
    assert report.all_matched and len(report.loaded) == 336 and report.epoch == 100
    # a pooling with positional embedding and v/out projections: strict on the pooling names the differences
    pos_rows = read_fixture("state_dict_stica_transformer2_posemb_qkv_pooling.txt")
    target = model_from_rows([r for r in rows if not r[0].startswith("video_pooling.")] + pos_rows)
    with pytest.raises(RuntimeError, match=r"missing video_pooling.2.pos_ids \(1, 64\)"):
        load_pretrained(target, path, strict_prefixes=(VIDEO, "video_pooling."), dry_run=True)
    report = load_pretrained(target, path, dry_run=True)  # strict on the video backbone only: reported
    assert "video_pooling.2.pos_embs.0.weight" in report.missing
    assert "video_pooling.*" in str(report)


def test_video_text_layout_reports_a_vocabulary_of_another_size():
    """HT100M layout (spec A.3): ``text_network.*`` and ``mlp_t.*`` instead of audio; the word-embedding rows
    depend on the word2vec file, so a different vocabulary is a reported shape mismatch, not an error."""
    rows = read_fixture("state_dict_textvid_gdt_mlp.txt")
    assert len(rows) == 241
    small = [(k, (1000, 300) if k == "text_network.word_embd.weight" else s, d) for k, s, d in rows]
    report = load_pretrained(model_from_rows(rows), {"model": random_state(small), "epoch": 101}, dry_run=True)
    assert report.mismatched == [("text_network.word_embd.weight", (1000, 300), (66250, 300))]
    assert len(report.loaded) == 240 and not report.missing and not report.unexpected
    assert "text_network.word_embd.weight: checkpoint (1000, 300) vs model (66250, 300)" in str(report)


# ---------------------------------------------------------------------------------------------------------------
# Conversion tool
# ---------------------------------------------------------------------------------------------------------------
def run_tool(*args):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the tool must find the package from the repository root by itself
    return subprocess.run([sys.executable, str(ROOT / "tools" / "convert_checkpoint.py"), *args], cwd=str(ROOT),
                          env=env, capture_output=True, text=True, timeout=120)


def load_tool():
    """The tool as a module, to run its ``main`` in this process (the round trip runs it as a script)."""
    spec = importlib.util.spec_from_file_location("convert_checkpoint", ROOT / "tools" / "convert_checkpoint.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_convert_tool_round_trip(tmp_path):
    src = narrow_gdt(seed=12)
    state = released_state_of(src)
    inp = save_released(tmp_path / "gdt_K400.pth", state, scheduler_as="object")
    out = str(tmp_path / "converted.pyth")
    res = run_tool("--input", inp, "--output", out, "--arch", "r2plus1d_18", "--keep", "audio,heads")
    assert res.returncode == 0, res.stderr
    assert "would load 310/310" in res.stdout and "all other entries matched" in res.stdout
    assert "wrote" in res.stdout and "video 222" in res.stdout

    raw = torch.load(out, map_location="cpu", weights_only=True)  # plain weights_only, no allow-list
    assert set(raw) == {"epoch", "model_state", "optimizer_state", "scaler_state", "cfg", "converted_from"}
    assert raw["epoch"] == 201 and raw["optimizer_state"] is None and raw["scaler_state"] is None
    assert list(raw["model_state"]) == list(state)
    from fvcore.common.config import CfgNode

    cfg = CfgNode.load_cfg(raw["cfg"])
    assert cfg.MODEL.ARCH == "r2plus1d_18" and cfg.RESNET.WIDTH_PER_GROUP == 8 and cfg.AUDIO.ARCH == "resnet9"
    assert cfg.GDT.USE_MLP and cfg.GDT.MLP_HIDDEN_DIM == 512 and cfg.GDT.EMBED_DIM == 256

    dst = narrow_gdt(seed=13, audio_dead_fc=False)
    ckpt = load_checkpoint(out, dst)  # this project's loader, strict
    assert ckpt["epoch"] == 201
    assert_same(dst, state)
    assert torch.equal(dst.mlp_a.block_forward[8].weight, src.mlp_a.block_forward[8].weight)


def test_convert_tool_help():
    res = run_tool("--help")
    assert res.returncode == 0 and "--keep" in res.stdout and "--input" in res.stdout


def test_convert_tool_default_keeps_the_video_backbone_only(tmp_path, capsys):
    state = released_state_of(narrow_gdt(seed=14))
    inp = save_released(tmp_path / "gdt.pth", state)
    out = str(tmp_path / "video.pyth")
    assert load_tool().main(["--input", inp, "--output", out]) == 0
    printed = capsys.readouterr().out
    assert "would load 222/222" in printed and "dropped 88" in printed
    raw = torch.load(out, map_location="cpu", weights_only=True)
    assert len(raw["model_state"]) == 222 and all(k.startswith(VIDEO) for k in raw["model_state"])
    dst = narrow_gdt(seed=15)
    report = load_weights_from_cfg(dst, out, "pytorch")
    assert report.loaded == [k for k in state if k.startswith(VIDEO)]
    assert any(k.startswith("audio_network.") for k in report.missing)  # reported, not an error
    assert_same(dst, state, report.loaded)


def test_convert_tool_errors_name_the_problem(tmp_path, capsys):
    tool = load_tool()
    state = released_state_of(narrow_gdt(seed=16))
    inp = save_released(tmp_path / "gdt.pth", state)
    assert tool.main(["--input", inp, "--output", str(tmp_path / "x.pyth"), "--arch", "r2plus1d_34"]) == 1
    err = capsys.readouterr().err
    assert "gdt.pth" in err and "missing video_network.base.layer1.2" in err
    assert not (tmp_path / "x.pyth").exists()
    assert tool.main(["--input", str(tmp_path / "missing.pth"), "--output", str(tmp_path / "y.pyth")]) == 1
    assert "missing.pth" in capsys.readouterr().err
    assert tool.main(["--input", inp, "--output", str(tmp_path / "z.pyth"), "--keep", "audio,bogus"]) == 1
    assert "bogus" in capsys.readouterr().err
    truncated = tmp_path / "cut.pth"
    truncated.write_bytes(Path(inp).read_bytes()[:1000])
    assert tool.main(["--input", str(truncated), "--output", str(tmp_path / "w.pyth")]) == 1
    assert "cut.pth" in capsys.readouterr().err
