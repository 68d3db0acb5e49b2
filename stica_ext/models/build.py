"""Model builder: ``build_model(cfg)`` looks ``MODEL.MODEL_NAME`` up in ``MODEL_REGISTRY``."""

from ..registry import MODEL_REGISTRY
from . import gdt  # noqa: F401  -- registers GDT

__all__ = ["build_model"]


def build_model(cfg, name=None):
    """Build the model registered as ``name`` (default ``cfg.MODEL.MODEL_NAME``) on the CPU.

    Calls ``cls.from_cfg(cfg)`` when the class has one, else ``cls(cfg)``; with ``RESNET.ZERO_INIT_FINAL_BN`` the
    last BatchNorm of every residual block of the backbones starts at 0. Moving to a device, SyncBN conversion
    and DDP wrapping are the engine's job.
    """
    name = name or cfg.MODEL.MODEL_NAME
    try:
        cls = MODEL_REGISTRY.get(name)
    except KeyError:
        known = ", ".join(sorted(k for k, _ in MODEL_REGISTRY))
        raise KeyError(f"no model {name!r} (MODEL.MODEL_NAME); known models: {known}") from None
    model = cls.from_cfg(cfg) if hasattr(cls, "from_cfg") else cls(cfg)
    if cfg.RESNET.ZERO_INIT_FINAL_BN:
        for m in model.modules():
            if hasattr(m, "zero_init_residual"):
                m.zero_init_residual()
    return model
