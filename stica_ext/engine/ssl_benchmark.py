"""Self-supervised learning benchmark on the embedded synthetic audio-visual dataset.

For every seed and method (:data:`METHODS`: GDT H1, GDT H8 = variant to time reversal and invariant to time shift,
GDT H6 = variant to both, STiCA; each a config file plus overrides) the benchmark

1. pretrains on the synthetic training split for the config's budget (``SOLVER.MAX_EPOCH``; an existing run in the
   same output folder is resumed, a finished one reused),
2. linear-probes the video backbone on the held-out test split next to the same network at random init
   (:func:`stica_ext.engine.linear_probe.linear_probe_task`),
3. measures on the test split, with the pretrained embeddings (:func:`av_metrics`):
   audio -> video retrieval R@1 / R@5 (each clip's audio against the videos of all test clips),
   synchronisation accuracy (the audio of a clip scores its own video above the video of the same video's other,
   non-overlapping clip) and time-direction accuracy (the audio scores the forward video above the time-reversed
   one). Chance: ``1 / N`` for R@1, 50 % for the two accuracies.

and once per seed trains the same video network with labels (:func:`stica_ext.engine.finetune.finetune_fold`
from random init, ``MODEL_NAME: VideoClassifier``, the data augmentation, solver and epochs of the GDT demo recipe,
:data:`SUPERVISED_BASE`) as the supervised reference. The report (``ssl_benchmark.json`` / ``.md``) has every run
and mean +- std (sample standard deviation) over seeds; objectives marked as targeting synchronisation / time
direction are flagged in the table.
"""

import copy
import gc
import hashlib
import logging
import os
import random
import resource
import time

import simplejson
import torch
import yaml

from ..config import assert_and_infer_cfg, get_cfg
from ..datasets import build_dataset
from .meters import mean_std

logger = logging.getLogger(__name__)

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# name -> config file (relative to the repository), overrides, label, what the objective targets. Every method gets
# about the same pretraining budget on 2 CPU cores (<= 20 CPU-minutes, README): the 4-view hypotheses (H6-H9) cost
# about 2.2x H1 per epoch and train 8 epochs; the demo configs set the others' epochs.
METHODS = {
    "gdt_h1": {"cfg": "configs/GDT/SYNTH_AV_demo.yaml", "opts": ["GDT.HYPOTHESIS", "1"],
               "label": "GDT H1 (cross-modal)", "targets": []},
    "gdt_h8": {"cfg": "configs/GDT/SYNTH_AV_demo.yaml", "opts": ["GDT.HYPOTHESIS", "8", "SOLVER.MAX_EPOCH", "8"],
               "label": "GDT H8 (variant to reversal, invariant to shift)", "targets": ["direction"]},
    "gdt_h6": {"cfg": "configs/GDT/SYNTH_AV_demo.yaml", "opts": ["GDT.HYPOTHESIS", "6", "SOLVER.MAX_EPOCH", "8"],
               "label": "GDT H6 (variant to reversal + shift)", "targets": ["sync", "direction"]},
    "stica": {"cfg": "configs/STICA/SYNTH_AV_demo.yaml", "opts": [],
              "label": "STiCA (crops + cross-modal)", "targets": []},
}
DEFAULT_METHODS = ("gdt_h1", "gdt_h8", "stica")
# The supervised reference trains the video network of this recipe (the GDT demo config: its data augmentation,
# solver and epochs) with labels, whichever methods run.
SUPERVISED_BASE = "gdt_h1"
SUPERVISED = "supervised"
METRICS = ("probe_top1", "random_top1", "supervised_top1", "a2v_r1", "a2v_r5", "sync_acc", "direction_acc",
           "pretrain_min", "pretrain_cpu_min")
TIMING_FILE = "pretrain_time.json"


def _resolve(path):
    if os.path.isabs(path) or os.path.exists(path):
        return path
    return os.path.join(_REPO, path)


def method_cfg(method, seed, out_dir, opts=(), spec=None, cfg_files=()):
    """Config of ``method`` (a :data:`METHODS` key, or ``spec`` = ``{"cfg", "opts"}``) for ``seed``, writing to
    ``out_dir/<method>/seed<seed>``; extra ``cfg_files`` and then ``opts`` (``KEY VALUE`` pairs) are applied
    last."""
    spec = spec or METHODS[method]
    cfg = get_cfg()
    for f in [spec["cfg"]] + list(cfg_files):
        cfg.merge_from_file(_resolve(f))
    cfg.merge_from_list(list(spec.get("opts", [])) + list(opts))
    cfg.TASK = "ssl_pretrain"
    cfg.RNG_SEED = int(seed)
    cfg.OUTPUT_DIR = os.path.join(out_dir, method, f"seed{seed}")
    cfg.LINEAR.COMPARE_RANDOM_INIT = True
    cfg.TRAIN.ENABLE = cfg.TEST.ENABLE = True
    return assert_and_infer_cfg(cfg)


def supervised_base_cfg(seed, out_dir, opts=(), cfg_files=()):
    """The pretraining config the supervised reference is derived from (:data:`SUPERVISED_BASE` with the benchmark's
    ``cfg_files`` and ``opts``), the same whichever methods run."""
    return method_cfg(SUPERVISED_BASE, seed, out_dir, opts, METHODS[SUPERVISED_BASE], cfg_files)


def supervised_cfg(base, seed, out_dir):
    """Supervised reference for ``base`` (a pretraining config): a VideoClassifier with the same video network,
    trained from random init with labels on the training split, same solver and epochs, tested on the test split."""
    cfg = base.clone()
    cfg.defrost()
    cfg.TASK = "finetune"
    cfg.MODEL.MODEL_NAME = "VideoClassifier"
    cfg.RNG_SEED = int(seed)
    cfg.OUTPUT_DIR = os.path.join(out_dir, SUPERVISED, f"seed{seed}")
    cfg.TRAIN.CHECKPOINT_FILE_PATH = ""
    cfg.DATA.FOLDS = []
    cfg.TRAIN.ENABLE = cfg.TEST.ENABLE = True
    cfg.FINETUNE.EVAL_EPOCHS = []
    return assert_and_infer_cfg(cfg)


# ---------------------------------------------------------------------------------------------------------------
# Audio-visual metrics
# ---------------------------------------------------------------------------------------------------------------
class ClipPairs(torch.utils.data.Dataset):
    """For every video of a split: its first and its last clip (``clip_indices [0, 1]`` of 1 uniform position:
    non-overlapping when the video is at least two clips long), deterministic test views (short side resized to
    ``TEST_CROP_SIZE``, centre crop) and their spectrograms without augmentation.

    Items: ``video`` ``2 x 3 x T x S x S``, ``audio`` ``2 x 1 x F x Tspec``, ``index``, ``starts`` (s).
    """

    def __init__(self, cfg, split="test"):
        self.cfg = cfg
        self.ds = build_dataset(cfg.TEST.DATASET, cfg, split, sample_type="gdt")

    def __len__(self):
        return self.ds.num_videos

    def __getitem__(self, key):
        i = int(key[0]) if isinstance(key, (tuple, list)) else int(key)  # (index, epoch) keys of the loaders
        rng = random.Random(f"{self.cfg.RNG_SEED}-clip-pairs-{i}")
        video, audio, starts = self.ds.eval_clips(i, [0, 1], 1, rng)
        return {"video": video, "audio": audio, "index": torch.tensor(i), "starts": torch.tensor(starts)}


def _recall(sim, ks=(1, 5)):
    """Fraction of rows whose own column (the diagonal) ranks within the top k."""
    own = sim.diagonal().unsqueeze(1)
    rank = (sim > own).sum(dim=1)  # 0 = best
    return {k: float((rank < k).float().mean()) for k in ks}


def av_scores(va, vb, va_rev, aa, ab):
    """Metrics from L2-normalised embeddings (rows = videos): ``va`` / ``vb`` videos of clips a / b, ``va_rev``
    time-reversed videos of clips a, ``aa`` / ``ab`` audios of clips a / b. Returns percentages."""
    sim_a = aa @ va.t()
    sim_b = ab @ vb.t()
    r_a, r_b = _recall(sim_a), _recall(sim_b)
    own_a, own_b = (aa * va).sum(1), (ab * vb).sum(1)
    sync = torch.cat([own_a > (aa * vb).sum(1), own_b > (ab * va).sum(1)]).float().mean()
    direction = (own_a > (aa * va_rev).sum(1)).float().mean()
    n = va.shape[0]
    return {"a2v_r1": 50.0 * (r_a[1] + r_b[1]), "a2v_r5": 50.0 * (r_a[5] + r_b[5]),
            "sync_acc": 100.0 * float(sync), "direction_acc": 100.0 * float(direction),
            "num_videos": n, "chance_r1": 100.0 / n}


@torch.no_grad()
def av_metrics(cfg, checkpoint_path, split="test", batch_size=None):
    """Audio -> video retrieval, synchronisation and time-direction accuracy of the pretrained model in
    ``checkpoint_path`` on ``split`` (:class:`ClipPairs`, :func:`av_scores`)."""
    from ..datasets import build_loader
    from ..models.build import build_model
    from . import checkpoint as cu
    from .launch import get_device

    device = get_device(cfg)
    model = build_model(cfg)
    if checkpoint_path:
        cu.load_checkpoint(checkpoint_path, model)
    model = model.to(device).eval()
    data = ClipPairs(cfg, split)
    loader = build_loader(data, cfg, batch_size or cfg.TEST.BATCH_SIZE, shuffle=False, drop_last=False)
    emb = {k: [] for k in ("va", "vb", "va_rev", "aa", "ab")}
    order = []
    for batch in loader:
        v, a = batch["video"].to(device), batch["audio"].to(device)
        emb["va"].append(model.encode_video(v[:, 0]).float())
        emb["vb"].append(model.encode_video(v[:, 1]).float())
        emb["va_rev"].append(model.encode_video(v[:, 0].flip(2)).float())
        emb["aa"].append(model.encode_audio(a[:, 0]).float())
        emb["ab"].append(model.encode_audio(a[:, 1]).float())
        order.append(batch["index"])
    order = torch.argsort(torch.cat(order))
    emb = {k: torch.cat(v).cpu()[order] for k, v in emb.items()}
    return av_scores(**emb)


# ---------------------------------------------------------------------------------------------------------------
# Runner and report
# ---------------------------------------------------------------------------------------------------------------
def _probe_rows(results):
    by = {r["model"]: r for r in results}
    return by["pretrained"]["video_top1"], by["random init"]["video_top1"]


def _flat(node, prefix=""):
    out = {}
    for k, v in node.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# Keys that only change the evaluation (probe, test views, the size of the synthetic val / test splits: the training
# split's videos and labels do not depend on them), not the pretraining: a finished run is reused under new values and
# evaluated with them.
EVAL_ONLY_KEYS = ("LINEAR.", "TEST.", "SYNTH.NUM_VAL", "SYNTH.NUM_TEST")


def _eval_only(key):
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in EVAL_ONLY_KEYS)


def check_reusable(cfg):
    """A run already in ``cfg.OUTPUT_DIR`` is resumed / reused only if it was made with the same config (its
    ``config.yaml``) up to :data:`EVAL_ONLY_KEYS` and ``OUTPUT_DIR``; otherwise raise an error naming the folder and
    the differing keys."""
    path = os.path.join(cfg.OUTPUT_DIR, "config.yaml")
    if not os.path.isfile(path):
        return
    saved = get_cfg()
    saved.merge_from_file(path)
    old, new = _flat(saved), _flat(cfg)
    # OUTPUT_DIR: a run folder moved or copied elsewhere is the same run
    diff = sorted(k for k in set(old) | set(new)
                  if old.get(k) != new.get(k) and not _eval_only(k) and k != "OUTPUT_DIR")
    if diff:
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:5])
        raise RuntimeError(f"{cfg.OUTPUT_DIR} holds a run with another config ({shown}); remove it or choose "
                           f"another --out")


class CpuClock:
    """Wall and CPU time of a block: CPU = this process (all threads) + its finished child processes (data loader
    workers, joined when their loader is collected)."""

    def __enter__(self):
        gc.collect()
        self.wall0, self.cpu0, self.child0 = time.perf_counter(), time.process_time(), self._children()
        return self

    @staticmethod
    def _children():
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    def __exit__(self, *exc):
        gc.collect()  # joins the workers of loaders that are no longer referenced
        self.wall_min = (time.perf_counter() - self.wall0) / 60.0
        self.cpu_min = (time.process_time() - self.cpu0 + self._children() - self.child0) / 60.0
        return False


def load_timing(run_dir):
    """The pretraining time record of a run folder (``{"wall_min", "cpu_min", "resumed_from"}``) or None."""
    path = os.path.join(run_dir, TIMING_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return simplejson.load(f)


EVAL_FILE = "benchmark_eval.json"


def _sha256(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def eval_key(cfg, checkpoint_path):
    """What a run's evaluation depends on: the checkpoint's content (SHA-256) and the whole config except
    ``OUTPUT_DIR`` (probe, test views, data, model...)."""
    config = yaml.safe_load(cfg.dump())
    config.pop("OUTPUT_DIR", None)
    return {"checkpoint": os.path.basename(checkpoint_path), "checkpoint_sha256": _sha256(checkpoint_path),
            "config": config}


def load_evaluation(run_dir, key):
    """The evaluation stored in ``run_dir`` (:data:`EVAL_FILE`) if it was made for ``key``, else None."""
    path = os.path.join(run_dir, EVAL_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        stored = simplejson.load(f)
    # compare through JSON so that tuples / lists and int / float spellings match as they were written
    return stored.get("evaluation") if stored.get("key") == simplejson.loads(simplejson.dumps(key)) else None


def save_evaluation(run_dir, key, evaluation):
    with open(os.path.join(run_dir, EVAL_FILE), "w") as f:
        simplejson.dump({"key": key, "evaluation": evaluation}, f, indent=2, ignore_nan=True)


def run_method(method, seed, out_dir, opts=(), spec=None, cfg_files=(), reevaluate=False):
    """Pretrain (or resume / reuse), probe and measure one method for one seed. Returns the run's record.

    The pretraining's wall and CPU minutes (:class:`CpuClock`) are kept in the run folder (:data:`TIMING_FILE`), so
    a reused run still reports them; a run resumed after a kill reports none (the killed part was not timed).
    The evaluation (probe and audio-visual metrics) is kept there too (:data:`EVAL_FILE`) and reused while the
    checkpoint and the config (:func:`eval_key`) are unchanged, unless ``reevaluate``."""
    from . import checkpoint as cu
    from .linear_probe import linear_probe_task
    from .train_ssl import train_ssl, training_finished

    cfg = method_cfg(method, seed, out_dir, opts, spec, cfg_files)
    check_reusable(cfg)
    existing = cu.get_last_checkpoint(cfg.OUTPUT_DIR)
    finished = training_finished(cfg, existing)
    with CpuClock() as clock:
        last = train_ssl(cfg)
    if not training_finished(cfg, last):
        raise RuntimeError(f"{method} seed {seed}: pretraining did not finish ({last})")
    timing = load_timing(cfg.OUTPUT_DIR)
    if not finished:
        timing = {"wall_min": clock.wall_min, "cpu_min": clock.cpu_min, "resumed_from": existing}
        with open(os.path.join(cfg.OUTPUT_DIR, TIMING_FILE), "w") as f:
            simplejson.dump(timing, f, indent=2)
    complete = bool(timing) and not timing["resumed_from"]  # a resumed run's killed segments were not timed
    key = eval_key(cfg, last)
    evaluation = None if reevaluate else load_evaluation(cfg.OUTPUT_DIR, key)
    reused = evaluation is not None
    if reused:
        logger.info("%s seed %s: reusing the evaluation in %s", method, seed, os.path.join(cfg.OUTPUT_DIR, EVAL_FILE))
    else:
        evaluation = {"probe": linear_probe_task(cfg, last)}
        evaluation.update(av_metrics(cfg, last))
        save_evaluation(cfg.OUTPUT_DIR, key, evaluation)
    top1, rnd = _probe_rows(evaluation["probe"])
    rec = {"method": method, "seed": int(seed), "checkpoint": last, "epochs": int(cfg.SOLVER.MAX_EPOCH),
           "probe_top1": top1, "random_top1": rnd,
           "pretrain_min": timing["wall_min"] if complete else None,
           "pretrain_cpu_min": timing["cpu_min"] if complete else None,
           "resumed_from": existing, "evaluation_reused": reused}
    rec.update(evaluation)
    return rec, cfg


def run_supervised(base_cfg, seed, out_dir):
    from .finetune import finetune_fold

    cfg = supervised_cfg(base_cfg, seed, out_dir)
    t0 = time.perf_counter()
    results = finetune_fold(cfg)
    last = results["last epoch"]
    return {"method": SUPERVISED, "seed": int(seed), "supervised_top1": last["video_top1"],
            "epochs": int(cfg.SOLVER.MAX_EPOCH), "train_min": (time.perf_counter() - t0) / 60.0, "results": results}


def _mean_std(values):
    return mean_std([v for v in values if v is not None])


def summarise(runs, methods):
    """``{method: {metric: {"mean", "std", "n"}}}`` over the seeds of ``runs`` (and the supervised runs)."""
    sup = [r["supervised_top1"] for r in runs if r["method"] == SUPERVISED]
    out = {}
    for m in methods:
        rows = [r for r in runs if r["method"] == m]
        summary = {}
        for k in METRICS:
            vals = sup if k == "supervised_top1" else [r.get(k) for r in rows]
            mean, std = _mean_std(vals)
            summary[k] = {"mean": mean, "std": std, "n": len([v for v in vals if v is not None])}
        gains = [r["probe_top1"] - r["random_top1"] for r in rows]
        mean, std = _mean_std(gains)
        summary["gain_over_random"] = {"mean": mean, "std": std, "n": len(gains)}
        out[m] = summary
    return out


def _fmt(s, nd=1):
    if s is None or s["mean"] is None:
        return "-"
    return f"{s['mean']:.{nd}f} +- {s['std']:.{nd}f}" if s["n"] > 1 else f"{s['mean']:.{nd}f}"


def format_table(summary, specs, seeds):
    lines = [f"Seeds {', '.join(str(s) for s in seeds)} (mean +- std over seeds; video-level top-1 %, test split).",
             "",
             "| method | probe top-1 | random init | supervised | gain | a->v R@1 | a->v R@5 | sync acc | "
             "direction acc | pretrain min (wall / CPU) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for m, s in summary.items():
        targets = specs[m].get("targets", [])
        sync = _fmt(s["sync_acc"]) + (" (t)" if "sync" in targets else "")
        direction = _fmt(s["direction_acc"]) + (" (t)" if "direction" in targets else "")
        lines.append(f"| {specs[m].get('label', m)} | {_fmt(s['probe_top1'])} | {_fmt(s['random_top1'])} | "
                     f"{_fmt(s['supervised_top1'])} | {_fmt(s['gain_over_random'])} | {_fmt(s['a2v_r1'])} | "
                     f"{_fmt(s['a2v_r5'])} | {sync} | {direction} | {_fmt(s['pretrain_min'])} / "
                     f"{_fmt(s['pretrain_cpu_min'])} |")
    lines += ["", "(t): the objective targets this property. Chance: R@1 = 100 / number of test videos, "
                  "sync / direction = 50 %. CPU minutes: the training process and its loader workers."]
    return "\n".join(lines)


def _benchmark_jobs(methods, seeds, supervised):
    """The benchmark's runs in report order: ``("method", name, seed)`` and, once per seed, ``("supervised", None,
    seed)``."""
    jobs = []
    for seed in seeds:
        jobs += [("method", m, int(seed)) for m in methods]
        if supervised and methods:
            jobs.append((SUPERVISED, None, int(seed)))
    return jobs


def job_log_path(out_dir, job):
    """Console log of one run of a parallel benchmark (``out_dir/jobs/<method>_seed<seed>.log``)."""
    kind, m, seed = job
    return os.path.join(out_dir, "jobs", f"{m if kind == 'method' else SUPERVISED}_seed{seed}.log")


def _run_one(job, out_dir, opts, spec, cfg_files, reevaluate):
    """The record of one run of the benchmark (:func:`_benchmark_jobs`): a method and seed, or a supervised
    reference."""
    kind, m, seed = job
    if kind == "method":
        return run_method(m, seed, out_dir, opts, spec, cfg_files, reevaluate=reevaluate)[0]
    return run_supervised(supervised_base_cfg(seed, out_dir, opts, cfg_files), seed, out_dir)


def _run_job(args):
    """One run of a parallel benchmark, in its own process: its console goes to :func:`job_log_path`, its torch
    threads are the machine's cores shared between the jobs. Returns ``(job index, record or None, error or None)``:
    one failing run does not stop the others."""
    import sys
    import traceback

    index, job, out_dir, opts, spec, cfg_files, reevaluate, threads = args
    log = job_log_path(out_dir, job)
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, "a", buffering=1) as f:
        sys.stdout = sys.stderr = f
        torch.set_num_threads(threads)
        try:
            return index, _run_one(job, out_dir, opts, spec, cfg_files, reevaluate), None
        except Exception:  # noqa: BLE001 - reported by the parent with the run's log file
            traceback.print_exc()
            return index, None, traceback.format_exc(limit=3)
        finally:
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__


def run_ssl_benchmark(out_dir, methods=DEFAULT_METHODS, seeds=(0, 1, 2), opts=(), supervised=True,
                      specs=None, progress=None, cfg_files=(), reevaluate=False, jobs=1):
    """Run the benchmark (see the module docstring) into ``out_dir``; returns the report dict and writes
    ``ssl_benchmark.json`` / ``ssl_benchmark.md`` there after every run (a killed benchmark keeps what it had).

    ``jobs > 1`` runs that many runs (pretraining + evaluation of a method and seed, or a supervised reference) at
    once, each in a new spawned process with its console in ``out_dir/jobs/`` (:func:`job_log_path`), e.g. on a
    GPU machine where one small run leaves the GPU mostly idle (``NUM_GPUS 1``: they share the GPU). The synthetic
    dataset is generated first, once. Runs that fail are reported together after the others finished (RuntimeError
    naming their logs); the report holds the finished ones. The CPU minutes of runs that shared the machine are not
    comparable with those of runs alone."""
    from ..datasets.av_dataset import ensure_synthetic_data
    from ..utils.processes import map_in_processes

    specs = copy.deepcopy(specs or {m: METHODS[m] for m in methods})
    say = progress or (lambda msg: logger.info(msg))
    os.makedirs(out_dir, exist_ok=True)
    todo = _benchmark_jobs(methods, seeds, supervised)
    done = {}
    report = {}

    def write():
        runs = [done[i] for i in sorted(done)]
        report.update({"report": "ssl", "methods": {m: specs[m] for m in methods}, "seeds": list(seeds),
                       "cfg_files": list(cfg_files), "opts": list(opts), "runs": runs,
                       "summary": summarise(runs, methods)})
        with open(os.path.join(out_dir, "ssl_benchmark.json"), "w") as f:
            simplejson.dump(report, f, indent=2, ignore_nan=True)
        with open(os.path.join(out_dir, "ssl_benchmark.md"), "w") as f:
            f.write(format_table(report["summary"], specs, seeds) + "\n")

    def describe(job):
        kind, m, seed = job
        return (f"{m}, seed {seed}: pretraining + probe + audio-visual metrics" if kind == "method"
                else f"supervised reference, seed {seed}")

    jobs = max(1, min(int(jobs), len(todo)))
    if jobs == 1:
        for i, job in enumerate(todo):
            say(f"ssl benchmark: {describe(job)}")
            done[i] = _run_one(job, out_dir, opts, specs.get(job[1]), cfg_files, reevaluate)
            write()
    else:
        for m in methods:  # once, here: parallel runs would each generate it
            ensure_synthetic_data(method_cfg(m, seeds[0] if seeds else 0, out_dir, opts, specs[m], cfg_files))
        threads = max(1, (os.cpu_count() or 1) // jobs)
        args = [(i, job, out_dir, list(opts), specs[job[1]] if job[0] == "method" else None, list(cfg_files),
                 reevaluate, threads) for i, job in enumerate(todo)]
        say(f"ssl benchmark: {len(todo)} runs, {jobs} at a time ({threads} torch threads each; logs in "
            f"{os.path.join(out_dir, 'jobs')})")
        failed = []
        for i, rec, error in map_in_processes(_run_job, args, jobs, fresh_process=True):
            if rec is None:
                failed.append((todo[i], error))
                say(f"ssl benchmark: FAILED {describe(todo[i])} (see {job_log_path(out_dir, todo[i])})")
                continue
            done[i] = rec
            say(f"ssl benchmark: done {describe(todo[i])} ({len(done) + len(failed)}/{len(todo)})")
            write()
        if failed:
            write()
            raise RuntimeError("ssl benchmark: {} of {} runs failed: {}".format(
                len(failed), len(todo), "; ".join(f"{describe(j)} ({job_log_path(out_dir, j)}): "
                                                  f"{e.strip().splitlines()[-1]}" for j, e in failed)))
    write()
    return report
