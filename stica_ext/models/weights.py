"""Pretrained weights: read checkpoint files safely, find their model weights, load them with a full report.

Three file layouts are understood (spec section 2):

* ``"pytorch"`` -- this project's checkpoints, ``{"epoch", "model_state", "optimizer_state", "scaler_state",
  "cfg"}`` (PySlowFast's name for its own format; the default of ``TRAIN/TEST.CHECKPOINT_TYPE``);
* ``"gdt"`` -- the released GDT files (``gdt_K400.pth``, ``gdt_HT100M.pth``, ``gdt_IG65M.pth``) and the reference
  trainers' files: ``{"model": state_dict, "optimizer", "lr_scheduler", "epoch", "args"}`` (GDT trainer) or
  ``{"epoch", "state_dict": {"module.<name>": ...}, "optimizer"}`` (STiCA trainer); a bare state_dict with the
  reference names is accepted too;
* ``"auto"`` -- detect the layout from the top-level keys.

Every file is read with ``torch.load(map_location="cpu", weights_only=True)``. The reference GDT trainer also
pickles an ``argparse.Namespace`` and a learning-rate scheduler object (which drags in the optimizer object), and
``weights_only`` rejects those. Instead of falling back to ``weights_only=False`` (which runs arbitrary code from
the file), the globals those files need are allow-listed explicitly (:data:`REFERENCE_SAFE_GLOBALS`); the
trainer objects are rebuilt as inert stand-ins (:class:`PickledReferenceObject`) whose only behaviour is to hold
their pickled attributes, so no scheduler or optimizer code from anywhere runs while a file is read.

:func:`load_pretrained` copies the weights into a model whose parameter names follow spec Appendix A (the GDT
model of this package, later STiCA / video-text models with ``video_pooling.*``, ``text_network.*``,
``mlp_t.*``). It is strict on chosen prefixes (the video backbone by default) and reports every other missing,
unexpected or shape-mismatched entry; nothing is skipped silently. ``prefix_map`` renames checkpoint keys for
targets that hold the backbone elsewhere (the backbone alone, or a classifier with a ``backbone.`` attribute).
"""

import argparse
import contextlib
import logging
import os
import pickle
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..utils.io import PathManager

logger = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_TYPES",
    "REFERENCE_SAFE_GLOBALS",
    "CheckpointReadError",
    "UnsafeCheckpointError",
    "LoadReport",
    "PickledReferenceObject",
    "stand_in_class",
    "read_checkpoint_file",
    "detect_checkpoint_type",
    "extract_state_dict",
    "remap_state_dict",
    "load_pretrained",
    "load_weights_from_cfg",
    "infer_gdt_kwargs",
]

#: Accepted values of ``TRAIN.CHECKPOINT_TYPE`` / ``TEST.CHECKPOINT_TYPE``.
CHECKPOINT_TYPES = ("pytorch", "gdt", "auto")

#: Keys that may be absent from either side without being reported as missing / unexpected: the reference
#: ResNet-9's never-executed 1000-way audio ``fc`` (spec 1.3, 2.3, section 8 item 3).
OPTIONAL_PREFIXES = ("audio_network.base.fc.",)


# ---------------------------------------------------------------------------------------------------------------
# Reading files: weights_only with an explicit allow-list for the reference layout
# ---------------------------------------------------------------------------------------------------------------
class PickledReferenceObject:
    """Inert stand-in for a trainer object pickled in a reference checkpoint (scheduler, optimizer).

    The unpickler creates it without calling any constructor and hands it the pickled attribute dict, which
    becomes its ``__dict__`` (so ``obj.last_epoch``, ``obj.after_scheduler`` ... read like the original's
    attributes). It has no other behaviour. ``reference_path`` names the class it stands in for. One subclass
    per reference class is made by :func:`stand_in_class`. Stand-ins are for reading only: a dict holding one
    cannot be saved again with ``torch.save`` and loaded with ``weights_only``.
    """

    reference_path = ""

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (instance dict, slot dict)
            merged = dict(state[0] or {})
            merged.update(state[1] or {})
            state = merged
        if not isinstance(state, dict):
            state = {"state": state}
        self.__dict__.update(state)

    def __repr__(self):
        return f"<stand-in for {self.reference_path} with attributes {sorted(map(str, self.__dict__))}>"


_STAND_INS = {}


def stand_in_class(reference_path):
    """The :class:`PickledReferenceObject` subclass standing in for the class pickled as ``reference_path``
    (``"module.Class"``); the same class object is returned for the same path. Allow-list it with
    ``(stand_in_class(path), path)`` in ``extra_safe_globals``."""
    if reference_path not in _STAND_INS:
        name = reference_path.rsplit(".", 1)[-1]
        _STAND_INS[reference_path] = type(name, (PickledReferenceObject,), {
            "reference_path": reference_path,
            "__module__": __name__,
            "__qualname__": f"PickledReferenceObject[{reference_path}]",
            "__doc__": f"Inert stand-in for ``{reference_path}`` (see PickledReferenceObject).",
        })
    return _STAND_INS[reference_path]


def defaultdict_as_dict(default_factory=None, *args):
    """Stand-in for ``collections.defaultdict`` while reading: returns a plain ``dict`` (the weights_only
    unpickler only fills dict, OrderedDict and Counter objects). The pickled items are added afterwards."""
    return {}


#: Class paths the reference trainers pickle as whole objects (spec 2.1): the warm-up scheduler (module path
#: as imported by the GDT trainer, ``src/scheduler.py``, plus the two other paths its class commonly lives
#: under), the MultiStepLR it wraps, and the SGD optimizer that one holds.
REFERENCE_OBJECT_PATHS = (
    "src.scheduler.GradualWarmupScheduler",
    "scheduler.GradualWarmupScheduler",
    "warmup_scheduler.scheduler.GradualWarmupScheduler",
    "torch.optim.lr_scheduler.MultiStepLR",
    "torch.optim.sgd.SGD",
)

#: The allow-list used for reference files (entries in ``torch.serialization.add_safe_globals`` form).
#:
#: * ``argparse.Namespace`` -- the trainer's ``args``; its unpickling only sets attributes;
#: * ``builtins.dict`` -- the ``default_factory`` of the optimizer's ``state`` defaultdict (calling ``dict`` is
#:   harmless);
#: * ``collections.defaultdict`` -> :func:`defaultdict_as_dict` (a plain dict: the weights_only unpickler cannot
#:   fill a defaultdict);
#: * each path of :data:`REFERENCE_OBJECT_PATHS` -> an inert :func:`stand_in_class` (no scheduler or optimizer
#:   code is imported or run).
#:
#: ``collections.Counter`` (the MultiStepLR milestones) and tensors / Parameters are allowed by torch already.
REFERENCE_SAFE_GLOBALS = (
    argparse.Namespace,
    dict,
    (defaultdict_as_dict, "collections.defaultdict"),
) + tuple((stand_in_class(p), p) for p in REFERENCE_OBJECT_PATHS)


def _global_name(entry):
    if isinstance(entry, tuple):
        return entry[1]
    return f"{entry.__module__}.{entry.__qualname__}"


REFERENCE_GLOBAL_NAMES = frozenset(_global_name(e) for e in REFERENCE_SAFE_GLOBALS) | {"builtins.dict"}


class CheckpointReadError(RuntimeError):
    """A checkpoint file that cannot be read (truncated, corrupt, not written by ``torch.save``)."""


class UnsafeCheckpointError(CheckpointReadError):
    """A checkpoint file that pickles Python objects outside the allow-list; ``.globals`` lists their paths."""

    def __init__(self, message, path, names):
        super().__init__(message)
        self.path = path
        self.globals = list(names)


@contextlib.contextmanager
def _allowed_globals(entries):
    """Allow-list ``entries`` for the duration of the block; entries that were already allowed stay allowed."""
    present = set(torch.serialization.get_safe_globals())
    new = [e for e in entries if e not in present]
    if not new:
        yield
        return
    with torch.serialization.safe_globals(new):
        yield


_GLOBAL_IN_MESSAGE = re.compile(r"GLOBAL (\S+) was not an allowed global")
_DOTTED_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")


def _unsafe_globals(f, error, allowed_names):
    """Paths of the globals the file needs that are not allowed: the whole list for zip-format files, the first
    one (from the error message) for legacy files. Empty when the error is not about globals."""
    names = []
    try:
        f.seek(0)
        names = list(torch.serialization.get_unsafe_globals_in_checkpoint(f))
    except Exception:  # noqa: BLE001 -- legacy (non-zip) format or an unreadable file: use the message
        names = []
    names = [n for n in names if n not in allowed_names]
    if not names:
        names = _GLOBAL_IN_MESSAGE.findall(str(error))
    # A legacy file cut inside a GLOBAL instruction yields a broken name such as "torch.opti.": that is damage.
    return sorted(n for n in set(names) if _DOTTED_NAME.match(n))


def _unsafe_message(path, names, allow_pickled_reference):
    reference = [n for n in names if n in REFERENCE_GLOBAL_NAMES]
    other = [n for n in names if n not in REFERENCE_GLOBAL_NAMES]
    msg = (f"checkpoint {path} pickles Python objects that are not allowed when loading with weights_only=True: "
           f"{', '.join(names)}.")
    if reference and not allow_pickled_reference:
        msg += (f" {', '.join(reference)} are what the reference GDT trainer pickles; read the file with "
                "allow_pickled_reference=True (CHECKPOINT_TYPE 'gdt' or 'auto'), which maps them to inert "
                "stand-ins.")
    if other:
        msg += (f" If you trust this file, allow {', '.join(other)} explicitly: pass the class in "
                "read_checkpoint_file(..., extra_safe_globals=[cls]) or call "
                "torch.serialization.add_safe_globals([cls]); to read it without importing or running its code "
                "pass (stica_ext.models.weights.stand_in_class(name), name) for each name instead. "
                "weights_only=False is never used here.")
    return msg


def read_checkpoint_file(path, allow_pickled_reference=True, extra_safe_globals=()):
    """Read a checkpoint with ``torch.load(map_location="cpu", weights_only=True)`` and return what it holds.

    Args:
        path: local path or any path iopath's ``PathManager`` handles.
        allow_pickled_reference: also allow the objects the reference GDT trainer pickles
            (:data:`REFERENCE_SAFE_GLOBALS`: ``argparse.Namespace``, and inert stand-ins for its scheduler /
            optimizer objects). This project's own files never need it.
        extra_safe_globals: further entries in ``torch.serialization.add_safe_globals`` form (a class or
            function, or ``(obj, "module.Name")``), for files you trust.

    The allow-list is active only while this file is read. Raises ``FileNotFoundError`` for a missing file,
    :class:`UnsafeCheckpointError` naming the file and every global it needs beyond the allow-list (with how to
    allow them), and :class:`CheckpointReadError` naming the file when it is truncated or corrupt.
    """
    path = os.fspath(path)
    if not PathManager.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    entries = list(extra_safe_globals) + (list(REFERENCE_SAFE_GLOBALS) if allow_pickled_reference else [])
    allowed_names = {_global_name(e) for e in entries}
    with PathManager.open(path, "rb") as f:
        try:
            with _allowed_globals(entries):
                return torch.load(f, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            names = _unsafe_globals(f, e, allowed_names) if "allowed global" in str(e) else []
            if names:
                raise UnsafeCheckpointError(_unsafe_message(path, names, allow_pickled_reference), path,
                                            names) from None
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            detail = next((ln for ln in lines if ln.startswith("WeightsUnpickler error")), lines[0] if lines else "")
            raise CheckpointReadError(f"cannot read checkpoint {path}: the file is truncated or corrupt, or holds "
                                      f"objects weights_only loading cannot build ({detail})") from e
        except Exception as e:  # noqa: BLE001 -- any other failure of torch.load means a damaged file
            raise CheckpointReadError(f"cannot read checkpoint {path}: the file is truncated or corrupt or was not "
                                      f"written by torch.save ({type(e).__name__}: {e})") from e


# ---------------------------------------------------------------------------------------------------------------
# Finding the state_dict
# ---------------------------------------------------------------------------------------------------------------
def _is_state_dict(obj):
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def detect_checkpoint_type(ckpt):
    """Layout of a loaded checkpoint: ``"pytorch"`` (has ``model_state``), ``"gdt"`` (a reference trainer's
    ``model`` or ``state_dict`` entry), ``"state_dict"`` (a bare state_dict). Raises ``ValueError`` otherwise."""
    if not isinstance(ckpt, Mapping):
        raise ValueError(f"a checkpoint must be a dict, got {type(ckpt).__name__}")
    if isinstance(ckpt.get("model_state"), Mapping):
        return "pytorch"
    if isinstance(ckpt.get("state_dict"), Mapping) or isinstance(ckpt.get("model"), Mapping):
        return "gdt"
    if _is_state_dict(ckpt):
        return "state_dict"
    raise ValueError("no model weights found: expected a 'model_state' (this project), 'model' (released GDT) or "
                     "'state_dict' (STiCA trainer) entry, or a bare state_dict; top-level keys are "
                     f"{sorted(map(str, ckpt))[:20]}")


def _strip_module_prefix(state):
    """Remove one leading ``module.`` (DDP / DataParallel wrapper) from every key; inner occurrences stay."""
    out = OrderedDict()
    for key, value in state.items():
        new = key[len("module."):] if key.startswith("module.") else key
        if new in out:
            raise ValueError(f"checkpoint holds both {key!r} and {new!r}: cannot strip the 'module.' prefix")
        out[new] = value
    return out


def extract_state_dict(ckpt, checkpoint_type="auto"):
    """The model state_dict inside a loaded checkpoint, with one leading ``module.`` stripped from each key.

    Accepts this project's format (``model_state``), the released GDT layout (``model``), the STiCA trainer
    layout (``state_dict`` with ``module.`` prefixes) and a bare state_dict. ``checkpoint_type`` ``"pytorch"``
    requires ``model_state``; ``"gdt"`` requires a reference layout (``state_dict`` is preferred over ``model``
    when both exist, as the reference evaluation does) or a bare state_dict; ``"auto"`` takes any of them.
    """
    checkpoint_type = _check_type(checkpoint_type)
    kind = detect_checkpoint_type(ckpt)
    if checkpoint_type == "pytorch" and kind != "pytorch":
        raise ValueError(f"checkpoint type 'pytorch' expects this project's format with 'model_state', but the "
                         f"checkpoint looks like {kind!r} (top-level keys {sorted(map(str, ckpt))[:10]}); set "
                         "CHECKPOINT_TYPE to 'gdt' (released / reference files) or 'auto'")
    if checkpoint_type == "gdt" and kind == "pytorch":
        raise ValueError("checkpoint type 'gdt' expects a released / reference layout ('model' or 'state_dict'), "
                         "but the checkpoint is in this project's format ('model_state'); set CHECKPOINT_TYPE to "
                         "'pytorch' or 'auto'")
    if kind == "pytorch":
        state = ckpt["model_state"]
    elif kind == "gdt":
        state = ckpt["state_dict"] if isinstance(ckpt.get("state_dict"), Mapping) else ckpt["model"]
    else:
        state = ckpt
    return _strip_module_prefix(state)


def _check_type(checkpoint_type):
    t = str(checkpoint_type).lower()
    if t not in CHECKPOINT_TYPES:
        raise ValueError(f"unknown checkpoint type {checkpoint_type!r} (TRAIN/TEST.CHECKPOINT_TYPE); choose one of "
                         f"{list(CHECKPOINT_TYPES)}")
    return t


# ---------------------------------------------------------------------------------------------------------------
# Key mapping (timm checkpoint_filter_fn style)
# ---------------------------------------------------------------------------------------------------------------
def _map_key(key, prefix_map):
    """``key`` renamed by the longest matching source prefix of ``prefix_map``; ``None`` when its target is
    ``None`` (drop); unchanged when no source prefix matches."""
    for src in sorted(prefix_map, key=len, reverse=True):
        if key.startswith(src):
            dst = prefix_map[src]
            return None if dst is None else dst + key[len(src):]
    return key


def remap_state_dict(state, prefix_map):
    """Rename checkpoint keys for a model that keeps the same modules under other names.

    ``prefix_map`` maps a checkpoint key prefix to the model's prefix, e.g. ``{"video_network.base.": ""}`` to
    load into the backbone itself or ``{"video_network.base.": "backbone."}`` for a classifier holding it as
    ``backbone``; a target of ``None`` drops the keys. The longest matching source prefix wins; keys no source
    prefix matches keep their name. Returns ``(renamed OrderedDict, list of dropped keys)``; raises
    ``ValueError`` when two keys would get the same name.
    """
    out, dropped, _ = _remap(state, prefix_map)
    return out, dropped


def _remap(state, prefix_map):
    """:func:`remap_state_dict` plus the original name of every renamed key."""
    out, dropped, origin = OrderedDict(), [], {}
    for key, value in state.items():
        new = _map_key(key, prefix_map) if prefix_map else key
        if new is None:
            dropped.append(key)
            continue
        if new in out:
            raise ValueError(f"prefix_map {prefix_map} maps two checkpoint keys to {new!r}")
        out[new] = value
        origin[new] = key
    return out, dropped, origin


def _map_prefixes(prefixes, prefix_map):
    """Checkpoint-namespace prefixes (strict / optional) expressed in the model's namespace."""
    out = []
    for p in prefixes:
        new = _map_key(p, prefix_map) if prefix_map else p
        if new is not None:
            out.append(new)
    return tuple(out)


# ---------------------------------------------------------------------------------------------------------------
# Loading with a report
# ---------------------------------------------------------------------------------------------------------------
def _shape(v):
    return tuple(v.shape) if isinstance(v, torch.Tensor) else None


def _group(key):
    head = key.split(".", 1)[0]
    if head.endswith("_network") and key.split(".")[1:2] == ["base"]:
        return ".".join(key.split(".")[:2])
    return head


def _summarise(keys, limit=4):
    groups = OrderedDict()
    for k in keys:
        groups.setdefault(_group(k), []).append(k)
    lines = []
    for g, ks in groups.items():
        shown = ", ".join(ks[:limit]) + (", ..." if len(ks) > limit else "")
        lines.append(f"    {g}.* ({len(ks)}): {shown}")
    return lines


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did. Key names are the model's (after ``prefix_map``).

    Attributes:
        source: the file (or ``"<checkpoint dict>"``).
        checkpoint_type: detected layout (``"pytorch"``, ``"gdt"``, ``"state_dict"``).
        epoch: the checkpoint's ``epoch`` entry when present.
        total: number of entries in the model's state_dict.
        loaded: model keys copied from the checkpoint.
        missing: model keys the checkpoint lacks (they keep their current values).
        unexpected: checkpoint keys the model lacks (not used).
        mismatched: ``(key, checkpoint shape, model shape)`` of keys present on both sides with different shapes
            (not copied).
        ignored: optional keys (the dead audio fc) present on one side only.
        dropped: checkpoint keys dropped on purpose by ``prefix_map`` (target ``None``).
        dry_run: nothing was copied (names and shapes were only compared).
    """

    source: str = "<checkpoint dict>"
    checkpoint_type: str = ""
    epoch: object = None
    total: int = 0
    loaded: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    mismatched: list = field(default_factory=list)
    ignored: list = field(default_factory=list)
    dropped: list = field(default_factory=list)
    dry_run: bool = False

    @property
    def all_matched(self):
        """True when every model entry was loaded and every checkpoint entry used (optional keys aside)."""
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self):
        verb = "would load" if self.dry_run else "loaded"
        epoch = f", epoch {self.epoch}" if self.epoch is not None else ""
        lines = [f"{verb} {len(self.loaded)}/{self.total} model entries from {self.source} "
                 f"(checkpoint type {self.checkpoint_type or '?'}{epoch})"]
        if self.missing:
            lines.append(f"  missing from the checkpoint, left as they are ({len(self.missing)}):")
            lines += _summarise(self.missing)
        if self.unexpected:
            lines.append(f"  in the checkpoint but not in the model, not used ({len(self.unexpected)}):")
            lines += _summarise(self.unexpected)
        if self.mismatched:
            lines.append(f"  shape differs, not copied ({len(self.mismatched)}):")
            for k, cs, ms in self.mismatched[:8]:
                lines.append(f"    {k}: checkpoint {cs} vs model {ms}")
            if len(self.mismatched) > 8:
                lines.append(f"    ... and {len(self.mismatched) - 8} more")
        if self.ignored:
            lines.append(f"  optional, present on one side only ({len(self.ignored)}): {', '.join(self.ignored)}")
        if self.dropped:
            lines.append(f"  dropped by prefix_map ({len(self.dropped)}):")
            lines += _summarise(self.dropped)
        if self.all_matched:
            lines.append("  all other entries matched")
        return "\n".join(lines)


def _unwrap(model):
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        return model.module
    return model


def _under(key, prefixes):
    return any(key.startswith(p) for p in prefixes)


def _strict_error(source, prefixes, missing, mismatched, unexpected, model_sd, state):
    parts = []
    if missing:
        parts.append("missing " + ", ".join(f"{k} {_shape(model_sd[k])}" for k in missing[:5])
                     + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""))
    if mismatched:
        parts.append("wrong shape " + ", ".join(f"{k}: checkpoint {cs} vs model {ms}" for k, cs, ms in mismatched[:5])
                     + (f" (+{len(mismatched) - 5} more)" if len(mismatched) > 5 else ""))
    if unexpected:
        parts.append("not in the model " + ", ".join(f"{k} {_shape(state[k])}" for k in unexpected[:5])
                     + (f" (+{len(unexpected) - 5} more)" if len(unexpected) > 5 else ""))
    n = len(missing) + len(mismatched) + len(unexpected)
    return RuntimeError(f"checkpoint {source} does not match the model under {list(prefixes)} "
                        f"({n} problem(s), nothing was loaded): " + "; ".join(parts))


def load_pretrained(model, path_or_ckpt, strict_prefixes=("video_network.base.",), checkpoint_type="auto",
                    prefix_map=None, optional_prefixes=OPTIONAL_PREFIXES, dry_run=False,
                    allow_pickled_reference=None, extra_safe_globals=(), source=None, log_report=True):
    """Copy pretrained weights into ``model`` and return a :class:`LoadReport`.

    Args:
        model: the target (a DDP / DataParallel wrapper is unwrapped). Its names follow spec Appendix A, or
            ``prefix_map`` translates.
        path_or_ckpt: a checkpoint file (read by :func:`read_checkpoint_file`) or an already loaded checkpoint
            dict / state_dict.
        strict_prefixes: checkpoint-namespace prefixes on which loading is strict: every model key under them
            must be in the checkpoint with the same shape and every checkpoint key under them must exist in the
            model, else a ``RuntimeError`` names the first offending keys and shapes and nothing is loaded.
            ``("",)`` makes the whole load strict, ``()`` makes nothing strict. Each prefix must match at least
            one model key (after ``prefix_map``).
        checkpoint_type: ``"pytorch"``, ``"gdt"`` or ``"auto"`` (see :func:`extract_state_dict`).
        prefix_map: checkpoint prefix -> model prefix (``None`` drops), see :func:`remap_state_dict`; the strict
            and optional prefixes are translated with it too.
        optional_prefixes: keys that may be absent on either side without being reported as missing or
            unexpected (default: the dead audio ``fc``); listed in ``report.ignored``.
        dry_run: only compare names and shapes (e.g. for a model on the ``meta`` device).
        allow_pickled_reference: passed to :func:`read_checkpoint_file`; default: True unless
            ``checkpoint_type == "pytorch"``.
        extra_safe_globals: passed to :func:`read_checkpoint_file`.
        source: name used in messages for an in-memory checkpoint.
        log_report: log the report (INFO when everything matched, else WARNING).

    Missing, unexpected and shape-mismatched keys outside the strict prefixes are reported (logged and in the
    returned report), never skipped silently; entries that match are copied in place.
    """
    checkpoint_type = _check_type(checkpoint_type)
    if isinstance(path_or_ckpt, (str, os.PathLike)):
        source = source or os.fspath(path_or_ckpt)
        if allow_pickled_reference is None:
            allow_pickled_reference = checkpoint_type != "pytorch"
        ckpt = read_checkpoint_file(path_or_ckpt, allow_pickled_reference=allow_pickled_reference,
                                    extra_safe_globals=extra_safe_globals)
    else:
        ckpt = path_or_ckpt
        source = source or "<checkpoint dict>"
    try:
        kind = detect_checkpoint_type(ckpt)
        state = extract_state_dict(ckpt, checkpoint_type)
        state, dropped, origin = _remap(state, prefix_map)
    except ValueError as e:
        raise ValueError(f"checkpoint {source}: {e}") from None
    strict = _map_prefixes(strict_prefixes, prefix_map)
    optional = _map_prefixes(optional_prefixes, prefix_map)

    target = _unwrap(model)
    model_sd = target.state_dict()
    for p in strict:
        if not any(k.startswith(p) for k in model_sd):
            hint = "" if prefix_map else (" (if the model is only the backbone, or holds it under another name, pass "
                                          "prefix_map, e.g. {'video_network.base.': ''})")
            raise ValueError(f"strict prefix {p!r} matches no entry of the model {type(target).__name__} (first "
                             f"entries: {list(model_sd)[:3]}){hint}")

    report = LoadReport(source=source, checkpoint_type=kind, total=len(model_sd), dropped=dropped,
                        dry_run=dry_run, epoch=ckpt.get("epoch") if kind != "state_dict" else None)
    for key, value in model_sd.items():
        if key in state:
            cs, ms = _shape(state[key]), _shape(value)
            if cs == ms:
                report.loaded.append(key)
            else:
                report.mismatched.append((key, cs, ms))
        elif _under(key, optional):
            report.ignored.append(key)
        else:
            report.missing.append(key)
    for key in state:
        if key not in model_sd:
            (report.ignored if _under(key, optional) else report.unexpected).append(key)

    if strict:
        bad_missing = [k for k in report.missing if _under(k, strict)]
        bad_shape = [m for m in report.mismatched if _under(m[0], strict)]
        # checkpoint keys are judged by their original names: with {"video_network.base.": ""} the strict prefix
        # becomes "" in the model, but audio / head keys of the file are not the backbone's business
        bad_extra = [k for k in report.unexpected if _under(origin[k], strict_prefixes)]
        if bad_missing or bad_shape or bad_extra:
            raise _strict_error(source, strict, bad_missing, bad_shape, bad_extra, model_sd, state)

    if not dry_run and report.loaded:
        target.load_state_dict(OrderedDict((k, state[k]) for k in report.loaded), strict=False)
    if log_report:
        (logger.info if report.all_matched else logger.warning)("%s", report)
    return report


def load_weights_from_cfg(model, path, checkpoint_type="pytorch", **kwargs):
    """Engine entry point: load ``path`` into ``model`` according to ``TRAIN/TEST.CHECKPOINT_TYPE``.

    ``checkpoint_type``: ``"pytorch"`` (this project's checkpoints, PySlowFast's name and the default),
    ``"gdt"`` (released GDT files / reference trainer files) or ``"auto"``. Further keyword arguments go to
    :func:`load_pretrained` (``strict_prefixes``, ``prefix_map``, ...). Returns the :class:`LoadReport`, or
    ``None`` when ``path`` is empty (nothing to load).
    """
    checkpoint_type = _check_type(checkpoint_type)
    if not path:
        return None
    return load_pretrained(model, path, checkpoint_type=checkpoint_type, **kwargs)


def infer_gdt_kwargs(state):
    """Constructor arguments of :class:`~stica_ext.models.gdt.GDT` whose state_dict has the names and shapes of
    ``state`` (a GDT state_dict in spec Appendix A naming, e.g. from :func:`extract_state_dict`).

    Returns a dict with ``video_arch``, ``width``, ``audio_arch`` (``None`` without ``audio_network.*``),
    ``audio_dead_fc``, ``use_mlp`` (``None`` without ``mlp_v.*``), ``embed_dim`` and ``mlp_hidden_dim``
    (``None`` when not determined). Raises ``ValueError`` when there is no R(2+1)D video backbone.
    """
    stem = state.get("video_network.base.stem.3.weight")
    if not isinstance(stem, torch.Tensor):
        raise ValueError("no 'video_network.base.stem.3.weight' entry: not a GDT-style state_dict")
    width = int(stem.shape[0])
    video_arch = "r2plus1d_34" if any(k.startswith("video_network.base.layer3.5.") for k in state) else "r2plus1d_18"
    audio_arch = None
    if any(k.startswith("audio_network.base.") for k in state):
        audio_arch = "resnet18" if any(k.startswith("audio_network.base.layer1.1.") for k in state) else "resnet9"
    use_mlp = embed_dim = hidden = None
    if "mlp_v.block_forward.2.weight" in state:
        use_mlp = True
        hidden = int(state["mlp_v.block_forward.2.weight"].shape[0])
        if "mlp_v.block_forward.8.weight" in state:
            embed_dim = int(state["mlp_v.block_forward.8.weight"].shape[0])
    elif "mlp_v.weight" in state:
        use_mlp = False
        embed_dim = int(state["mlp_v.weight"].shape[0])
    return dict(video_arch=video_arch, width=width, audio_arch=audio_arch,
                audio_dead_fc="audio_network.base.fc.weight" in state, use_mlp=use_mlp, embed_dim=embed_dim,
                mlp_hidden_dim=hidden)
