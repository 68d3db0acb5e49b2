"""PySlowFast's command line: ``--cfg FILE [FILE ...] --init_method URL --num_shards N --shard_id K KEY VALUE ...``."""

import argparse
import os


def _is_cfg_file(arg):
    return arg.endswith((".yaml", ".yml")) or os.path.isfile(arg)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Train / evaluate GDT and STiCA models (PySlowFast-style command line).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--cfg", dest="cfg_files", nargs="+", default=[],
                   help="YAML config file(s), merged in order (each may use _BASE_)")
    p.add_argument("--init_method", default="tcp://localhost:9999",
                   help="torch.distributed init method of multi-process / multi-machine runs")
    p.add_argument("--num_shards", type=int, default=None, help="number of machines (overrides NUM_SHARDS)")
    p.add_argument("--shard_id", type=int, default=None, help="index of this machine (overrides SHARD_ID)")
    p.add_argument("opts", nargs=argparse.REMAINDER, default=None,
                   help="config overrides as KEY VALUE pairs, e.g. SOLVER.BASE_LR 0.1 NUM_GPUS 0")
    return split_cfg_files(p.parse_args(argv))


def split_cfg_files(args):
    """``--cfg a.yaml KEY VALUE``: argparse gives every word to ``--cfg``; keep the leading YAML paths in
    ``args.cfg_files`` and move the rest to the front of ``args.opts``."""
    files = list(args.cfg_files)
    n = 0
    while n < len(files) and _is_cfg_file(files[n]):
        n += 1
    args.cfg_files, extra = files[:n], files[n:]
    args.opts = extra + list(args.opts or [])
    return args
