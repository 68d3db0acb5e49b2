#!/usr/bin/env python
"""Generate the embedded synthetic audio-visual dataset and print its folder.

Example (from the repository root)::

    python tools/make_synthetic_data.py --num-train 400 --num-val 100 --num-test 200

The folder (``<root>/synth_<hash>``) holds ``videos/*.mp4``, ``train.csv`` / ``val.csv`` / ``test.csv`` (paths relative
to the folder), ``classes.txt`` and ``manifest.json``; point ``DATA.PATH_TO_DATA_DIR`` at it.  Running the command
again with the same parameters returns the existing folder immediately.
"""

import argparse
import logging
import os
import sys

try:
    from stica_ext.datasets.synthetic import build_synthetic_dataset, default_cache_dir
except ImportError:  # not installed: use the checkout this script lives in
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from stica_ext.datasets.synthetic import build_synthetic_dataset, default_cache_dir


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Generate the synthetic audio-visual dataset (mp4 + CSV lists).")
    parser.add_argument("--root", default=None, help="parent folder (default: $STICA_EXT_CACHE/synthetic_av or "
                        "~/.cache/stica_ext/synthetic_av)")
    parser.add_argument("--num-train", type=int, default=400, help="training videos (default: 400)")
    parser.add_argument("--num-val", type=int, default=100, help="validation videos (default: 100)")
    parser.add_argument("--num-test", type=int, default=200, help="test videos (default: 200)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default: 0)")
    parser.add_argument("--size", type=int, default=112, help="frame height and width in pixels, even (default: 112)")
    parser.add_argument("--duration", type=float, default=3.0, help="clip length in seconds (default: 3.0)")
    parser.add_argument("--fps", type=int, default=30, help="frame rate (default: 30)")
    parser.add_argument("--sample-rate", type=int, default=24000, help="audio sample rate in Hz (default: 24000)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default: 2)")
    parser.add_argument("--quiet", action="store_true", help="do not print progress")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    folder = build_synthetic_dataset(
        args.root if args.root else default_cache_dir(),
        num_train=args.num_train,
        num_val=args.num_val,
        num_test=args.num_test,
        seed=args.seed,
        size=args.size,
        duration=args.duration,
        fps=args.fps,
        sample_rate=args.sample_rate,
        num_workers=args.workers,
        progress=not args.quiet,
    )
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
