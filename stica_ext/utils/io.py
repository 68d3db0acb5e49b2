"""File access through iopath's PathManager (local paths, and any handler a user registers)."""

import os

from iopath.common.file_io import PathManager as _PathManager

PathManager = _PathManager()


def read_text_lines(path):
    """Lines of a text file without line terminators (CRLF or LF); raises FileNotFoundError naming the path."""
    if not PathManager.exists(path):
        raise FileNotFoundError(f"file not found: {path}")
    with PathManager.open(path, "r") as f:
        return f.read().splitlines()


def atomic_save(obj, path, save_fn):
    """Write ``obj`` with ``save_fn(obj, file)`` to a temporary file next to ``path`` and rename it into place, so
    that a reader never sees a partial file."""
    d = os.path.dirname(path)
    if d:
        PathManager.mkdirs(d)
    tmp = f"{path}.tmp.{os.getpid()}"
    with PathManager.open(tmp, "wb") as f:
        save_fn(obj, f)
        f.flush()
        try:
            os.fsync(f.fileno())
        except (AttributeError, OSError, ValueError):
            pass
    os.replace(tmp, path)
