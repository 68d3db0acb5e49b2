#!/usr/bin/env python
"""Write a small HowTo100M-style video-text dataset (synthetic videos + describing captions) and print the config
overrides that point ``TEXT.*`` at it.

Example (from the repository root)::

    python tools/make_howto_fixture.py --root /tmp/howto_demo --num-videos 40

The folder holds ``videos/*.mp4`` (no audio), ``captions/<id>.csv`` (``start,end,text``), ``caption.json``,
``videos.csv`` (header ``video_id``), ``dict.npy``, ``word2vec.pth`` and ``manifest.json``. The last line printed is
the ``KEY VALUE`` list to append to ``tools/run_net.py --cfg <video-text config>``.
"""

import argparse
import os
import shlex
import sys

try:
    from stica_ext.datasets.howto_fixture import fixture_overrides, make_howto_fixture
except ImportError:  # not installed: use the checkout this script lives in
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from stica_ext.datasets.howto_fixture import fixture_overrides, make_howto_fixture


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Generate a HowTo100M-style video-text fixture dataset.")
    parser.add_argument("--root", required=True, help="output folder")
    parser.add_argument("--num-videos", type=int, default=40, help="videos (default: 40)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    parser.add_argument("--size", type=int, default=112, help="frame side in pixels, even (default: 112)")
    parser.add_argument("--duration", type=float, default=6.0, help="video length in seconds (default: 6.0)")
    parser.add_argument("--fps", type=int, default=30, help="frame rate of the written videos (default: 30)")
    parser.add_argument("--captions-per-video", type=int, default=4, help="captions per video (default: 4)")
    parser.add_argument("--word-dim", type=int, default=300, help="word-vector size (default: 300)")
    parser.add_argument("--json", action="store_true", help="print overrides that use caption.json instead of the "
                        "per-video caption CSVs")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    fixture = make_howto_fixture(args.root, num_videos=args.num_videos, seed=args.seed, size=args.size,
                                 duration=args.duration, fps=args.fps, captions_per_video=args.captions_per_video,
                                 word_dim=args.word_dim)
    print(f"wrote {len(fixture['video_ids'])} videos, {len(fixture['words'])} words to {fixture['root']}")
    print(" ".join(shlex.quote(x) for x in fixture_overrides(fixture, use_json=args.json)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
