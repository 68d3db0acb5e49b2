#!/usr/bin/env python
"""Benchmarks: model size / FLOPs, data loading, training throughput (JSON + Markdown, progress on stderr).

    python tools/benchmark.py --cfg CONFIG.yaml [--report model|data|train|all] [--out DIR] [options] [KEY VALUE ...]
    python tools/benchmark.py --summary DIR       # table of the train*.json runs in DIR (tools/gpu_benchmark.sh)
    python tools/benchmark.py --report ssl [--methods gdt_h1,gdt_h8,stica] [--seeds 0,1,2] [--out DIR] [KEY VALUE ...]
                                                  # self-supervised learning benchmark (stica_ext.engine.ssl_benchmark)

Config files and KEY VALUE overrides work as in tools/run_net.py. Reports are written to ``--out`` (default
``OUTPUT_DIR/benchmark``) as ``<report>[_<tag>].json`` and ``.md``; the Markdown also goes to stdout.

Examples:
    python tools/benchmark.py --cfg configs/GDT/K400_AV_R2plus1D_18_H1.yaml --report model
    python tools/benchmark.py --cfg configs/GDT/K400_AV_R2plus1D_18_H1.yaml --report data --workers 0,1,2
    python tools/benchmark.py --cfg configs/GDT/SYNTH_AV_demo.yaml --report train NUM_GPUS 0 TRAIN.BATCH_SIZE 4
    python tools/benchmark.py --cfg configs/GDT/K400_AV_R2plus1D_18_H1.yaml --report train --tag bf16_cl \\
        NUM_GPUS 1 NUM_SHARDS 1 TRAIN.BATCH_SIZE 8 TRAIN.MIXED_PRECISION True TRAIN.CHANNELS_LAST True
"""

import argparse
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from stica_ext.config import assert_and_infer_cfg, load_config  # noqa: E402
from stica_ext.utils.parser import split_cfg_files  # noqa: E402

REPORTS = ("model", "data", "train")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--cfg", dest="cfg_files", nargs="+", default=[], help="YAML config file(s), merged in order")
    p.add_argument("--report", choices=REPORTS + ("all", "ssl"), default="all",
                   help="which report(s) to run ('all' = model, data, train)")
    p.add_argument("--out", default="", help="output folder (default OUTPUT_DIR/benchmark)")
    p.add_argument("--tag", default="", help="name of this run (file names <report>_<tag>.*, summary rows)")
    p.add_argument("--summary", metavar="DIR", default="",
                   help="only summarise the train*.json reports in DIR (writes DIR/summary.{json,md})")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--keep-going", action="store_true",
                   help="record a failing report as {'error': ...} and exit 0 (the GPU script uses it for compile)")
    g = p.add_argument_group("data report")
    g.add_argument("--workers", default="0,1,2", help="DataLoader worker counts, comma-separated")
    g.add_argument("--batches", type=int, default=4, help="batches timed per worker count (after the first)")
    g.add_argument("--samples", type=int, default=8, help="samples for the per-stage latency")
    g.add_argument("--ratio-samples", type=int, default=12, help="sample / PyAV-decode pairs for the decode ratio")
    g.add_argument("--clips", default="", help="folder of the generated test clips (default <out>/clips; reused)")
    g.add_argument("--no-clips", action="store_true", help="skip the generated clips and the decode ratio")
    g.add_argument("--num-clips", type=int, default=4, help="generated clips per keyframe layout")
    g.add_argument("--clip-seconds", type=float, default=10.0, help="length of each generated clip")
    g.add_argument("--clip-size", default="340x256", help="WIDTHxHEIGHT of the generated clips")
    g = p.add_argument_group("train report")
    g.add_argument("--warmup", type=int, default=5, help="untimed iterations first")
    g.add_argument("--iters", type=int, default=20, help="timed iterations")
    g = p.add_argument_group("ssl report (not part of 'all': hours on a CPU)")
    g.add_argument("--methods", default="gdt_h1,gdt_h8,stica",
                   help="methods of the SSL benchmark, comma-separated (gdt_h1, gdt_h8, gdt_h6, stica)")
    g.add_argument("--seeds", default="0,1,2", help="seeds of the SSL benchmark, comma-separated")
    g.add_argument("--no-supervised", action="store_true", help="skip the supervised reference runs")
    g.add_argument("--jobs", type=int, default=1,
                   help="runs at once, each in its own process (e.g. several small runs sharing one GPU)")
    g.add_argument("--reevaluate", action="store_true",
                   help="evaluate every finished run again (default: reuse a run's stored evaluation while its "
                        "checkpoint and config are unchanged)")
    p.add_argument("--batch-size", type=int, default=0,
                   help="per-process batch of the data / train reports (default TRAIN.BATCH_SIZE / world size)")
    p.add_argument("opts", nargs=argparse.REMAINDER, default=None, help="config overrides KEY VALUE ...")
    return split_cfg_files(p.parse_args(argv))


def run(args):
    """Run the reports ``args`` asks for; returns ``{report kind: report dict}`` (also written to ``--out``)."""
    from stica_ext.engine import benchmark as B

    B.set_progress(not args.quiet)
    if args.summary:
        s = B.summary_table(args.summary)
        B.write_report(s, args.summary, "summary")
        print(s["markdown"])
        return {"summary": s}
    if args.report == "ssl":
        return {"ssl": run_ssl(args)}
    if not args.cfg_files:
        raise SystemExit("benchmark.py: --cfg is required (e.g. --cfg configs/GDT/K400_AV_R2plus1D_18_H1.yaml)")
    cfg = assert_and_infer_cfg(load_config(args))
    out = args.out or os.path.join(cfg.OUTPUT_DIR, "benchmark")
    suffix = f"_{args.tag}" if args.tag else ""
    kinds = REPORTS if args.report == "all" else (args.report,)
    results = {}
    for kind in kinds:
        try:
            if kind == "model":
                r = B.model_report(cfg, name=args.tag)
            elif kind == "data":
                w, h = (int(v) for v in args.clip_size.lower().split("x"))
                r = B.data_report(
                    cfg, workers=[int(x) for x in args.workers.split(",") if x.strip()],
                    batch_size=args.batch_size or None, num_batches=args.batches, num_samples=args.samples,
                    clips_root=None if args.no_clips else (args.clips or os.path.join(out, "clips")),
                    clip_params=dict(num_clips=args.num_clips, duration=args.clip_seconds, width=w, height=h),
                    ratio_samples=args.ratio_samples)
            else:
                r = B.train_report(cfg, warmup=args.warmup, iters=args.iters, batch_size=args.batch_size or None,
                                   tag=args.tag)
        except Exception as e:  # noqa: BLE001 -- reported, re-raised unless --keep-going
            if not args.keep_going:
                raise
            traceback.print_exc()
            r = {"report": kind, "tag": args.tag, "error": f"{type(e).__name__}: {e}"}
        paths = B.write_report(r, out, kind + suffix)
        B.progress(f"wrote {paths[0]} and {paths[1]}")
        print(B.to_markdown(r))
        results[kind] = r
    return results


def run_ssl(args):
    """The self-supervised learning benchmark (:mod:`stica_ext.engine.ssl_benchmark`): each method's own config
    file, then ``--cfg`` files and ``KEY VALUE`` overrides for all of them."""
    from stica_ext.engine import benchmark as B
    from stica_ext.engine.ssl_benchmark import METHODS, run_ssl_benchmark
    from stica_ext.utils.logging import setup_logging

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"benchmark.py: unknown --methods {unknown}; choose from {sorted(METHODS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    out = args.out or os.path.join("output", "ssl_benchmark")
    setup_logging(out)
    report = run_ssl_benchmark(out, methods, seeds, list(args.opts or []), supervised=not args.no_supervised,
                               progress=B.progress, cfg_files=args.cfg_files, reevaluate=args.reevaluate,
                               jobs=args.jobs)
    with open(os.path.join(out, "ssl_benchmark.md")) as f:
        print(f.read())
    B.progress(f"wrote {os.path.join(out, 'ssl_benchmark.json')} and ssl_benchmark.md")
    return report


def main(argv=None):
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
