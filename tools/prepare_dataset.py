#!/usr/bin/env python
"""Build or refresh the validity index of a configured audio-visual dataset and print a summary table.

Example (from the repository root)::

    python tools/prepare_dataset.py --cfg configs/GDT/SYNTH_AV_demo.yaml --splits train val --workers 8 \\
        DATA.PATH_TO_DATA_DIR /data/kinetics400

Every video of each split (listed as ``DATA.LAYOUT`` says) is probed once with PyAV; the results are cached next to
the data (``<DATA.PATH_TO_DATA_DIR>/.stica_index/<split>.json.gz``, or under ``$STICA_EXT_CACHE/index`` when the
data folder is read-only), so training runs start without probing.  Running the command again probes only new or
changed files.  The table counts, per split, the videos that are valid for the configured clip length
(``DATA.NUM_FRAMES * DATA.SAMPLING_RATE / DATA.TARGET_FPS`` s) and audio window (``AUDIO.NUM_SEC`` s, when
``AUDIO.ENABLE``), and those excluded as missing, empty, corrupt, without video / audio stream or too short
(``AUDIO.MISSING silence`` keeps videos without audio).  Exit status 1 when a requested split cannot be listed.
"""

import argparse
import logging
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from stica_ext.config import load_config  # noqa: E402
from stica_ext.datasets import index as video_index  # noqa: E402

_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+$")


def _is_cfg_file(arg):
    return arg.endswith((".yaml", ".yml")) or os.path.isfile(arg)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cfg", dest="cfg_files", nargs="+", default=[], help="YAML config file(s), merged in order")
    p.add_argument("--splits", nargs="+", default=None,
                   help="splits to index (default: train val test, skipping those that do not exist)")
    p.add_argument("--workers", type=int, default=None, help="probe processes (default: DATA.PROBE_WORKERS, else 4)")
    p.add_argument("--root", default=None, help="dataset folder (default: DATA.PATH_TO_DATA_DIR)")
    p.add_argument("--quiet", action="store_true", help="no progress counter and no log lines")
    p.add_argument("opts", nargs=argparse.REMAINDER, default=None,
                   help="config overrides as KEY VALUE pairs, e.g. DATA.NUM_FRAMES 16")
    args = p.parse_args(argv)
    # nargs="+" options swallow trailing KEY VALUE pairs: keep the leading items that belong to them.
    opts = []
    files = list(args.cfg_files)
    n = 0
    while n < len(files) and _is_cfg_file(files[n]):
        n += 1
    args.cfg_files, opts = files[:n], files[n:]
    if args.splits is not None:
        n = 0
        while n < len(args.splits) and not _KEY.match(args.splits[n]):
            n += 1
        args.splits, extra = args.splits[:n], args.splits[n:]
        opts += extra
        if not args.splits:
            p.error("--splits needs at least one split name")
    args.opts = opts + list(args.opts or [])
    return args


def dataset_root(cfg, root=None):
    """The folder to index: ``root``, ``DATA.PATH_TO_DATA_DIR``, or the (generated) synthetic dataset."""
    if root:
        return root
    if cfg.DATA.PATH_TO_DATA_DIR:
        return cfg.DATA.PATH_TO_DATA_DIR
    if str(cfg.TRAIN.DATASET).lower() == "synthetic_av":
        from stica_ext.datasets.av_dataset import ensure_synthetic_data

        return ensure_synthetic_data(cfg)
    raise ValueError("DATA.PATH_TO_DATA_DIR is empty: set it (or pass --root) to the dataset folder")


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="[%(asctime)s][%(levelname)s] %(name)s: %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr)
    cfg = load_config(args)
    root = dataset_root(cfg, args.root)
    explicit = args.splits is not None
    splits = args.splits if explicit else ["train", "val", "test"]
    clip_sec = video_index.clip_seconds(cfg)
    need_audio = bool(cfg.AUDIO.ENABLE)
    print(f"dataset {os.path.abspath(root)}: clips of {clip_sec:g} s"
          + (f", audio window {cfg.AUDIO.NUM_SEC:g} s (videos without audio: AUDIO.MISSING {cfg.AUDIO.MISSING})"
             if need_audio else ", no audio"))
    summaries, failed = {}, []
    for split in splits:
        try:
            paths, _, class_names = video_index.list_videos(cfg, split, root=root)
        except (FileNotFoundError, ValueError) as e:
            if explicit:
                print(f"{split}: {e}", file=sys.stderr)
                failed.append(split)
            else:
                print(f"{split}: skipped ({e})", file=sys.stderr)
            continue
        _, summaries[split] = video_index.build_valid_index_from_cfg(
            cfg, paths, split, root=root, need_audio=need_audio, num_workers=args.workers,
            progress=False if args.quiet else split)
        print(f"{split}: {len(paths)} videos, {len(class_names)} classes "
              f"(layout {video_index.resolve_layout(video_index.ListOptions.from_cfg(cfg, root), split)})")
    if summaries:
        print(video_index.format_summary_table(summaries))
    elif not failed:
        print(f"no split found under {root}", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
