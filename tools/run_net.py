#!/usr/bin/env python
"""Train / evaluate from a YAML config, PySlowFast style:

    python tools/run_net.py --cfg configs/GDT/SYNTH_AV_demo.yaml [KEY VALUE ...]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from stica_ext.config import assert_and_infer_cfg, load_config  # noqa: E402
from stica_ext.engine import run_task  # noqa: E402
from stica_ext.engine.launch import launch_job  # noqa: E402
from stica_ext.utils.parser import parse_args  # noqa: E402


def main(argv=None):
    args = parse_args(argv)
    if not args.cfg_files:
        print("run_net.py: --cfg is required (e.g. --cfg configs/GDT/SYNTH_AV_demo.yaml)", file=sys.stderr)
        return 2
    cfg = assert_and_infer_cfg(load_config(args))
    launch_job(cfg, args.init_method, run_task)
    return 0


if __name__ == "__main__":
    sys.exit(main())
