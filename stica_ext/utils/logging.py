"""Logging: human-readable lines on the main process's stdout and in ``OUTPUT_DIR/log.txt``, plus PySlowFast-style
``json_stats: {...}`` lines that tools can parse."""

import logging
import os
import sys

import simplejson

from . import distributed as du

_FORMAT = "[%(asctime)s][%(levelname)s] %(name)s: %(message)s"


def setup_logging(output_dir=None):
    """Configure the root logger: INFO on stdout for the main process, warnings only on the others; a log file
    ``output_dir/log.txt`` (main process) when ``output_dir`` is given."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_stica_ext", False):
            root.removeHandler(h)
    main = du.is_main_process()
    root.setLevel(logging.INFO)
    fmt = logging.Formatter(_FORMAT, datefmt="%H:%M:%S")
    sh = logging.StreamHandler(sys.stdout)
    sh.setLevel(logging.INFO if main else logging.WARNING)
    sh.setFormatter(fmt)
    sh._stica_ext = True
    root.addHandler(sh)
    if output_dir and main:
        os.makedirs(output_dir, exist_ok=True)
        fh = logging.FileHandler(os.path.join(output_dir, "log.txt"))
        fh.setFormatter(fmt)
        fh._stica_ext = True
        root.addHandler(fh)
    for noisy in ("iopath", "fvcore", "libav"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _round(v):
    if isinstance(v, float):
        return float(f"{v:.6g}")
    return v


def log_json_stats(stats, logger=None):
    """Log ``json_stats: {...}`` (floats rounded to 6 significant digits)."""
    stats = {k: _round(v) for k, v in stats.items()}
    line = "json_stats: " + simplejson.dumps(stats, sort_keys=True, use_decimal=False)
    (logger or logging.getLogger("stica_ext")).info(line)
    return line


def parse_json_stats(lines):
    """Dicts of every ``json_stats:`` line in an iterable of log lines."""
    out = []
    for line in lines:
        i = line.find("json_stats: ")
        if i >= 0:
            out.append(simplejson.loads(line[i + len("json_stats: "):]))
    return out
