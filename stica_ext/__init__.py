"""stica_ext: GDT and STiCA self-supervised multi-modal video learning, PySlowFast style."""

import os as _os

__version__ = "0.1.0"


def _maybe_register_with_slowfast():
    # A PySlowFast user gets our models, datasets, losses and config nodes in PySlowFast's registries just by
    # importing stica_ext. Set STICA_EXT_NO_SLOWFAST=1 to skip (the import of slowfast can be slow).
    if _os.environ.get("STICA_EXT_NO_SLOWFAST", "") not in ("", "0"):
        return
    import importlib.util

    if importlib.util.find_spec("slowfast") is None:
        return
    from .registry import register_with_slowfast

    register_with_slowfast()


_maybe_register_with_slowfast()
