"""Builder registries and the PySlowFast host adapter.

``MODEL_REGISTRY``, ``DATASET_REGISTRY`` and ``LOSS_REGISTRY`` are fvcore ``Registry`` objects. Datasets are looked
up with PySlowFast's rule: ``TRAIN.DATASET: synthetic_av`` selects the class registered as ``Synthetic_av``
(``name.capitalize()``).

When an upstream PySlowFast (``slowfast``) with builder registries is importable, :func:`register_with_slowfast`
registers the same components into ``slowfast.models.build.MODEL_REGISTRY``,
``slowfast.datasets.build.DATASET_REGISTRY`` and ``slowfast.models.losses._LOSSES`` and adds this project's config
nodes to ``slowfast.config.defaults``. A ``slowfast`` without those registries (e.g. the 2019 snapshot on PyPI) is
reported once and ignored.
"""

import importlib
import importlib.util
import logging

from fvcore.common.registry import Registry

logger = logging.getLogger(__name__)

MODEL_REGISTRY = Registry("MODEL")
MODEL_REGISTRY.__doc__ = "Models (meta-architectures); built with ``build_model(cfg)`` from ``MODEL.MODEL_NAME``."
DATASET_REGISTRY = Registry("DATASET")
DATASET_REGISTRY.__doc__ = "Datasets; ``TRAIN.DATASET: foo_bar`` selects the class registered as ``Foo_bar``."
LOSS_REGISTRY = Registry("LOSS")
LOSS_REGISTRY.__doc__ = "Losses; selected by ``MODEL.LOSS_FUNC``."


def register_as(registry, name):
    """Decorator registering an object under an explicit ``name`` (e.g. ``Synthetic_av``, ``gdt_nce``)."""

    def deco(obj):
        registry._do_register(name, obj)
        return obj

    return deco


def dataset_key(name):
    """PySlowFast's dataset lookup rule: ``name.capitalize()``."""
    return name.capitalize()


def get_dataset_class(name):
    """The class registered for dataset ``name`` (a config value such as ``"synthetic_av"``)."""
    _import_components()
    key = dataset_key(name)
    try:
        return DATASET_REGISTRY.get(key)
    except KeyError:
        known = ", ".join(sorted(k.lower() for k, _ in DATASET_REGISTRY))
        raise KeyError(f"no dataset {name!r} (looked up as {key!r}); known datasets: {known}") from None


def get_loss_class(name):
    _import_components()
    try:
        return LOSS_REGISTRY.get(name)
    except KeyError:
        known = ", ".join(sorted(k for k, _ in LOSS_REGISTRY))
        raise KeyError(f"no loss {name!r} in MODEL.LOSS_FUNC; known losses: {known}") from None


def _import_components():
    """Import the modules whose decorators fill the registries."""
    importlib.import_module("stica_ext.models")
    importlib.import_module("stica_ext.datasets")
    importlib.import_module("stica_ext.losses")


# ----------------------------------------------------------------------------------------------------------------
# PySlowFast host adapter
# ----------------------------------------------------------------------------------------------------------------
_HOST_STATE = {"done": False, "result": None}


def _register_into(target, name, obj):
    """Register ``obj`` under ``name`` into a PySlowFast registry (fvcore Registry or plain dict)."""
    if isinstance(target, dict):
        if name in target and target[name] is not obj:
            logger.warning("slowfast already has a loss named %r; keeping slowfast's", name)
            return False
        target[name] = obj
        return True
    try:
        existing = target.get(name)
    except KeyError:
        existing = None
    if existing is not None:
        if existing is not obj:
            logger.warning("slowfast registry %s already has %r; keeping slowfast's", getattr(target, "_name", ""), name)
        return False
    target._do_register(name, obj)
    return True


def register_with_slowfast(force=False):
    """Register this project's models, datasets, losses and config nodes into an importable PySlowFast.

    Returns a dict ``{"models": [...], "datasets": [...], "losses": [...], "config": bool}`` of what was added, or
    ``None`` when no usable ``slowfast`` is importable. Never raises: an incompatible ``slowfast`` (one without
    builder registries, or one whose import fails, e.g. because detectron2 is missing) is reported once with a
    warning and ignored. Safe to call repeatedly.
    """
    if _HOST_STATE["done"] and not force:
        return _HOST_STATE["result"]
    _HOST_STATE["done"] = True
    if importlib.util.find_spec("slowfast") is None:
        return None
    try:
        sf_model_build = importlib.import_module("slowfast.models.build")
        sf_data_build = importlib.import_module("slowfast.datasets.build")
        sf_losses = importlib.import_module("slowfast.models.losses")
        sf_defaults = importlib.import_module("slowfast.config.defaults")
        sf_models = sf_model_build.MODEL_REGISTRY
        sf_datasets = sf_data_build.DATASET_REGISTRY
        sf_loss_table = sf_losses._LOSSES
    except Exception as e:  # noqa: BLE001 -- any failure means "not a usable host"
        logger.warning(
            "an importable 'slowfast' package was found but it is not a PySlowFast with builder registries "
            "(%s: %s); stica_ext runs standalone and ignores it", type(e).__name__, e)
        return None

    _import_components()
    from .config.defaults import add_stica_config

    result = {"models": [], "datasets": [], "losses": [], "config": False}
    for name, obj in MODEL_REGISTRY:
        if _register_into(sf_models, name, obj):
            result["models"].append(name)
    for name, obj in DATASET_REGISTRY:
        if _register_into(sf_datasets, name, obj):
            result["datasets"].append(name)
    for name, obj in LOSS_REGISTRY:
        if _register_into(sf_loss_table, name, obj):
            result["losses"].append(name)
    sf_cfg = getattr(sf_defaults, "_C", None)
    if sf_cfg is not None:
        add_stica_config(sf_cfg)
        result["config"] = True
    # PySlowFast's get_cfg() may call custom_config.add_custom_config(_C); our nodes are already in _C.
    _HOST_STATE["result"] = result
    logger.info("registered stica_ext components into slowfast: %s", result)
    return result
