"""Process launching and per-process setup (device, distributed group, seeds).

:func:`launch_job` runs ``func(cfg)`` in every training process. Where the processes come from:

1. **torchrun** (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` set,
   ``WORLD_SIZE > 1``): this process is already one rank; nothing is spawned, the group is joined with
   ``init_method="env://"``.
2. **SLURM srun** (``SLURM_PROCID``, ``SLURM_LOCALID``, ``SLURM_NODEID``, the step's task count
   ``SLURM_STEP_NUM_TASKS`` / ``SLURM_NTASKS`` > 1 and the tasks per node ``SLURM_STEP_TASKS_PER_NODE`` /
   ``SLURM_TASKS_PER_NODE`` (e.g. ``8(x2)``) / ``SLURM_NTASKS_PER_NODE``): either one task per process (tasks per
   node = the config's processes per machine; nothing is spawned) or one task per node that spawns the config's
   processes (tasks per node = 1). The rendezvous is ``tcp://MASTER_ADDR:MASTER_PORT`` where the address is
   ``MASTER_ADDR`` if set, else the first host of the step's node list (``SLURM_STEP_NODELIST``,
   ``SLURM_JOB_NODELIST``, ``SLURM_NODELIST``; e.g. ``node[01-04,07]`` -> ``node01``; rank 0 runs there under
   srun's default block distribution), else ``SLURM_LAUNCH_NODE_IPADDR``; the port is ``MASTER_PORT`` if set, else
   ``15000 + SLURM_JOB_ID % 15000`` (stable across requeues, different for jobs sharing a node). Variables are only
   read inside a job step (``SLURM_STEP_ID`` or ``SLURM_STEP_NUM_TASKS`` present): a plain ``python`` in an sbatch
   script or an ``salloc`` shell uses the config, as does a single-task step.
3. **The config** otherwise (PySlowFast's rule): ``NUM_GPUS`` processes per machine (``NUM_CPU_PROCESSES`` when
   ``NUM_GPUS == 0``, default 1) are spawned with ``torch.multiprocessing``; ``NUM_SHARDS`` machines, this one being
   ``SHARD_ID``, meet at ``init_method`` (``--init_method tcp://host:port``, the same on every machine).

In every case global rank = ``SHARD_ID x processes per machine + local rank`` (SLURM: ``SLURM_PROCID``) and world
size = ``NUM_SHARDS x processes per machine``. When torchrun / SLURM describe the job they override ``NUM_SHARDS``
and ``SHARD_ID``; the number of processes per machine they started must equal the config's (``NUM_GPUS``, or
``NUM_CPU_PROCESSES`` on the CPU), otherwise :class:`LaunchError` names both.

Each process: selects its GPU (``cuda:<local rank>``, or ``cuda:0`` when the scheduler shows each process a single
GPU), joins the group (``DIST_BACKEND``, normally NCCL, on GPUs; gloo on the CPU), records its local rank
(:func:`stica_ext.utils.distributed.get_local_rank`), seeds Python / NumPy / torch with ``RNG_SEED + rank`` (so
processes draw different dropout masks and augmentations; the datasets seed each sample from (seed, epoch, index),
so DataLoader workers never repeat augmentations either), and calls ``func`` with a **frozen copy** of the config in
which ``NUM_SHARDS`` and ``SHARD_ID`` are the real values of this job. ``TRAIN.BATCH_SIZE`` stays the global batch;
the engine divides it by the world size (which must divide it).
"""

import logging
import os
import random
import re
import socket
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.distributed as dist

from ..config import ConfigError
from ..utils import distributed as du

logger = logging.getLogger(__name__)

__all__ = [
    "LaunchError", "LaunchPlan", "get_device", "seed_everything", "rank_seed", "procs_per_machine",
    "expand_hostlist", "parse_tasks_per_node", "read_torchrun_env", "read_slurm_env", "plan_launch", "find_free_port",
    "launch_job",
]


class LaunchError(ConfigError):
    """The launch environment (torchrun / SLURM variables) and the config disagree, or the variables are invalid."""


# ---------------------------------------------------------------------------------------------------------------
# Per-process helpers
# ---------------------------------------------------------------------------------------------------------------
def get_device(cfg):
    """``cuda:<current device>`` (the launcher selects the local rank's GPU) when ``NUM_GPUS > 0``, else CPU; a clear
    error when CUDA is asked for but absent."""
    if cfg.NUM_GPUS > 0:
        if not torch.cuda.is_available():
            raise RuntimeError(f"NUM_GPUS={cfg.NUM_GPUS} but CUDA is not available; use NUM_GPUS 0 to run on the CPU")
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def seed_everything(seed):
    """Seed Python's, NumPy's and torch's global RNGs (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def rank_seed(cfg, rank=None):
    """Seed of process ``rank`` (default: this process): ``RNG_SEED + rank``."""
    return cfg.RNG_SEED + (du.get_rank() if rank is None else rank)


def procs_per_machine(cfg):
    """Processes per machine the config asks for: ``NUM_GPUS``, or ``NUM_CPU_PROCESSES`` (default 1) when
    ``NUM_GPUS == 0``."""
    if cfg.NUM_GPUS > 0:
        return int(cfg.NUM_GPUS)
    n = int(cfg.get("NUM_CPU_PROCESSES", 1))
    if n < 1:
        raise LaunchError(f"NUM_CPU_PROCESSES must be >= 1, got {n}")
    return n


def _procs_key(cfg):
    return "NUM_GPUS" if cfg.NUM_GPUS > 0 else "NUM_CPU_PROCESSES (with NUM_GPUS 0)"


def find_free_port():
    """A TCP port that is free on this machine now (for single-machine rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------------------------
# Environment parsing (pure functions of a dict of environment variables)
# ---------------------------------------------------------------------------------------------------------------
def _split_top_level(text, sep=","):
    """Split on ``sep`` outside square brackets."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise LaunchError(f"unbalanced ']' in host list {text!r}")
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth != 0:
        raise LaunchError(f"unbalanced '[' in host list {text!r}")
    parts.append("".join(cur))
    return parts


def _expand_range(item, text):
    """``"01-04"`` -> ``["01", "02", "03", "04"]`` (zero padding kept), ``"7"`` -> ``["7"]``."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", item)
    if not m:
        raise LaunchError(f"invalid range {item!r} in host list {text!r}")
    lo, hi = m.group(1), m.group(2)
    if hi is None:
        return [lo]
    if int(hi) < int(lo):
        raise LaunchError(f"descending range {item!r} in host list {text!r}")
    width = len(lo) if lo.startswith("0") or len(lo) == len(hi) else 0
    return [str(i).zfill(width) for i in range(int(lo), int(hi) + 1)]


def _expand_host(pattern, text):
    m = re.search(r"\[([^\[\]]*)\]", pattern)
    if not m:
        return [pattern]
    head, tail = pattern[:m.start()], pattern[m.end():]
    values = [v for item in m.group(1).split(",") for v in _expand_range(item, text)]
    return [head + v + rest for v in values for rest in _expand_host(tail, text)]


def expand_hostlist(text):
    """Expand a SLURM host list: ``"node[01-04,07],gpu5"`` -> ``["node01", ..., "node04", "node07", "gpu5"]``.

    Supports comma-separated entries, bracket ranges with zero padding, several bracket groups in one name
    (``"r[1-2]n[1-2]"`` -> ``r1n1 r1n2 r2n1 r2n2``). No ``scontrol`` needed.
    """
    text = (text or "").strip()
    if not text:
        return []
    hosts = []
    for part in _split_top_level(text):
        part = part.strip()
        if part:
            hosts += _expand_host(part, text)
    return hosts


def parse_tasks_per_node(text):
    """SLURM's tasks-per-node format: ``"8(x2),4"`` -> ``[8, 8, 4]``; ``"8"`` -> ``[8]``."""
    out = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part)
        if not m:
            raise LaunchError(f"invalid tasks-per-node value {text!r} (expected e.g. '8', '8(x2)' or '8(x2),4')")
        out += [int(m.group(1))] * int(m.group(2) or 1)
    if not out:
        raise LaunchError(f"empty tasks-per-node value {text!r}")
    return out


def _int_var(env, name, source):
    try:
        return int(env[name])
    except (KeyError, ValueError):
        raise LaunchError(f"{source}: environment variable {name}={env.get(name)!r} must be an integer") from None


_TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def read_torchrun_env(env=None):
    """The job layout described by torchrun's variables, or ``None`` if they do not describe a multi-process job.

    Returns a dict with ``rank``, ``local_rank``, ``world_size``, ``local_world_size``, ``node_rank``, ``num_nodes``,
    ``master_addr``, ``master_port``. Raises :class:`LaunchError` when ``RANK`` and ``WORLD_SIZE`` are set but other
    variables are missing or inconsistent.
    """
    env = os.environ if env is None else env
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return None
    world = _int_var(env, "WORLD_SIZE", "torchrun")
    if world <= 1:
        return None
    missing = [v for v in _TORCHRUN_VARS if v not in env]
    if missing:
        raise LaunchError(f"RANK and WORLD_SIZE={world} are set (torchrun convention) but {', '.join(missing)} "
                          f"{'is' if len(missing) == 1 else 'are'} missing; launch with torchrun or unset them")
    rank, local_rank = _int_var(env, "RANK", "torchrun"), _int_var(env, "LOCAL_RANK", "torchrun")
    local_world = _int_var(env, "LOCAL_WORLD_SIZE", "torchrun")
    _int_var(env, "MASTER_PORT", "torchrun")
    if not (0 <= rank < world and 0 <= local_rank < local_world <= world):
        raise LaunchError(f"torchrun: inconsistent RANK={rank}, LOCAL_RANK={local_rank}, WORLD_SIZE={world}, "
                          f"LOCAL_WORLD_SIZE={local_world}")
    if world % local_world:
        raise LaunchError(f"torchrun: WORLD_SIZE={world} is not a multiple of LOCAL_WORLD_SIZE={local_world}; every "
                          f"machine must run the same number of processes")
    node_rank = _int_var(env, "GROUP_RANK", "torchrun") if "GROUP_RANK" in env else rank // local_world
    return dict(rank=rank, local_rank=local_rank, world_size=world, local_world_size=local_world,
                node_rank=node_rank, num_nodes=world // local_world, master_addr=env["MASTER_ADDR"],
                master_port=int(env["MASTER_PORT"]))


def _slurm_default_port(env):
    job = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID") or "0"
    try:
        return 15000 + int(job) % 15000
    except ValueError:
        return 29500


def read_slurm_env(env=None):
    """The job layout of an ``srun`` step, or ``None`` outside a multi-task step.

    Returns a dict like :func:`read_torchrun_env`'s (``rank`` = ``SLURM_PROCID``, ``local_rank`` = ``SLURM_LOCALID``,
    ``node_rank`` = ``SLURM_NODEID``, ``local_world_size`` = tasks per node), with ``master_addr`` / ``master_port``
    resolved as described in the module docstring. Raises :class:`LaunchError` on missing or inconsistent variables
    (e.g. a different number of tasks on different nodes).
    """
    env = os.environ if env is None else env
    if "SLURM_PROCID" not in env:
        return None
    if not any(k in env for k in ("SLURM_STEP_ID", "SLURM_STEPID", "SLURM_STEP_NUM_TASKS")):
        return None  # the batch script / salloc shell itself, not a task started by srun
    world_var = next((k for k in ("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", "SLURM_NPROCS") if k in env), None)
    if world_var is None:
        return None
    world = _int_var(env, world_var, "SLURM")
    if world <= 1:
        return None
    rank = _int_var(env, "SLURM_PROCID", "SLURM")
    if "SLURM_LOCALID" not in env:
        raise LaunchError(f"SLURM: {world_var}={world} and SLURM_PROCID={rank} are set but SLURM_LOCALID is missing")
    local_rank = _int_var(env, "SLURM_LOCALID", "SLURM")
    per_node_var = next((k for k in ("SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE", "SLURM_NTASKS_PER_NODE")
                         if env.get(k)), None)
    if per_node_var is None:
        raise LaunchError(f"SLURM: {world_var}={world} but none of SLURM_STEP_TASKS_PER_NODE, SLURM_TASKS_PER_NODE, "
                          f"SLURM_NTASKS_PER_NODE is set; cannot tell how many tasks run per node")
    per_node = parse_tasks_per_node(env[per_node_var])
    if len(set(per_node)) != 1:
        raise LaunchError(f"SLURM: {per_node_var}={env[per_node_var]!r} gives different task counts per node "
                          f"({per_node}); every node must run the same number of tasks (e.g. --ntasks-per-node)")
    local_world = per_node[0]
    if per_node_var == "SLURM_NTASKS_PER_NODE":
        per_node = [local_world] * max(1, world // local_world)
    if world != local_world * len(per_node) or world % local_world:
        raise LaunchError(f"SLURM: {world_var}={world} does not match {per_node_var}={env[per_node_var]!r} "
                          f"({len(per_node)} node(s) x {local_world} tasks)")
    node_rank = _int_var(env, "SLURM_NODEID", "SLURM") if "SLURM_NODEID" in env else rank // local_world
    if not (0 <= rank < world and 0 <= local_rank < local_world and 0 <= node_rank < len(per_node)):
        raise LaunchError(f"SLURM: inconsistent SLURM_PROCID={rank}, SLURM_LOCALID={local_rank}, "
                          f"SLURM_NODEID={node_rank} for {world} tasks, {local_world} per node")
    addr = env.get("MASTER_ADDR")
    if not addr:
        for var in ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST"):
            if env.get(var):
                addr = expand_hostlist(env[var])[0]
                break
    addr = addr or env.get("SLURM_LAUNCH_NODE_IPADDR")
    if not addr:
        raise LaunchError("SLURM: cannot find the rendezvous host: set MASTER_ADDR, or SLURM_JOB_NODELIST / "
                          "SLURM_LAUNCH_NODE_IPADDR must be present")
    port = _int_var(env, "MASTER_PORT", "SLURM") if env.get("MASTER_PORT") else _slurm_default_port(env)
    return dict(rank=rank, local_rank=local_rank, world_size=world, local_world_size=local_world,
                node_rank=node_rank, num_nodes=world // local_world, master_addr=addr, master_port=port)


# ---------------------------------------------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LaunchPlan:
    """How this command runs.

    ``spawn``: start ``procs_per_machine`` local processes (local ranks 0..P-1, global rank
    ``shard_id * P + local``); otherwise this process is rank ``rank`` / local rank ``local_rank`` (or the only
    process when ``world_size == 1``).
    """

    source: str  # "single", "config", "torchrun" or "slurm"
    world_size: int
    num_shards: int
    shard_id: int
    procs_per_machine: int
    backend: str
    init_method: Optional[str]
    spawn: bool
    rank: Optional[int] = None
    local_rank: Optional[int] = None

    def global_rank(self, local_rank):
        return self.shard_id * self.procs_per_machine + local_rank


def _check_batches(cfg, world, where):
    for node in ("TRAIN", "TEST"):
        bs = cfg[node].BATCH_SIZE
        if bs % world:
            raise LaunchError(f"{node}.BATCH_SIZE ({bs}) is the global batch and must be divisible by the number of "
                              f"processes, {world} ({where})")


def plan_launch(cfg, init_method=None, env=None):
    """Decide how to run (see the module docstring); a pure function of ``cfg``, ``init_method`` and ``env``
    (default ``os.environ``). Raises :class:`LaunchError` when the environment and the config disagree."""
    env = os.environ if env is None else env
    per_machine = procs_per_machine(cfg)
    backend = cfg.DIST_BACKEND if cfg.NUM_GPUS > 0 else "gloo"
    key = _procs_key(cfg)
    for source, info in (("torchrun", read_torchrun_env(env)), ("slurm", read_slurm_env(env))):
        if info is None:
            continue
        started = info["local_world_size"]
        where = (f"LOCAL_WORLD_SIZE={started}" if source == "torchrun"
                 else f"{started} SLURM task(s) per node")
        if cfg.NUM_SHARDS not in (1, info["num_nodes"]):
            logger.warning("%s describes %d machine(s): overriding NUM_SHARDS=%d", source, info["num_nodes"],
                           cfg.NUM_SHARDS)
        if started == per_machine:
            _check_batches(cfg, info["world_size"], f"{source}: {info['world_size']} processes")
            init = ("env://" if source == "torchrun"
                    else f"tcp://{info['master_addr']}:{info['master_port']}")
            return LaunchPlan(source, info["world_size"], info["num_nodes"], info["node_rank"], per_machine, backend,
                              init, spawn=False, rank=info["rank"], local_rank=info["local_rank"])
        if source == "slurm" and started == 1:
            # one task per node: each task spawns the config's processes; the task index is the machine index
            world = info["world_size"] * per_machine
            _check_batches(cfg, world, f"slurm: {info['world_size']} nodes x {per_machine} processes")
            return LaunchPlan(source, world, info["world_size"], info["rank"], per_machine, backend,
                              f"tcp://{info['master_addr']}:{info['master_port']}", spawn=True)
        hint = f"set {key.split(' ')[0]} {started}"
        if source == "slurm":
            hint += f", or start one task per node (--ntasks-per-node 1) that spawns {per_machine} processes"
        raise LaunchError(f"{source} started {started} process(es) per machine ({where}) but the config asks for "
                          f"{per_machine} ({key}={per_machine}); {hint}")
    world = cfg.NUM_SHARDS * per_machine
    _check_batches(cfg, world, f"NUM_SHARDS {cfg.NUM_SHARDS} x {key} {per_machine}")
    if world == 1:
        return LaunchPlan("single", 1, 1, 0, 1, backend, None, spawn=False, rank=0, local_rank=0)
    if not init_method:
        if cfg.NUM_SHARDS > 1:
            raise LaunchError(f"NUM_SHARDS={cfg.NUM_SHARDS} machines need a common --init_method tcp://HOST:PORT")
        init_method = f"tcp://127.0.0.1:{find_free_port()}"
    elif cfg.NUM_SHARDS > 1 and re.match(r"tcp://(localhost|127\.)", init_method):
        logger.warning("NUM_SHARDS=%d but --init_method %s is a loopback address the other machines cannot reach",
                       cfg.NUM_SHARDS, init_method)
    return LaunchPlan("config", world, cfg.NUM_SHARDS, cfg.SHARD_ID, per_machine, backend, init_method, spawn=True)


# ---------------------------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------------------------
def _process_cfg(cfg, plan):
    """Frozen copy of ``cfg`` with the job's real ``NUM_SHARDS`` / ``SHARD_ID``."""
    out = cfg.clone()
    out.defrost()
    out.NUM_SHARDS, out.SHARD_ID = plan.num_shards, plan.shard_id
    out.freeze()
    return out


def _select_cuda_device(local_rank, local_size):
    n = torch.cuda.device_count()
    if n == 0:
        raise RuntimeError("NUM_GPUS > 0 but CUDA is not available; use NUM_GPUS 0 to run on the CPU")
    if n >= local_size:
        index = local_rank
    elif n == 1:  # the scheduler shows each process its own GPU (e.g. srun --gpus-per-task 1)
        index = 0
    else:
        raise RuntimeError(f"{local_size} processes on this machine but {n} visible GPUs; each process needs one")
    torch.cuda.set_device(index)
    return index


def _run_process(local_rank, func, cfg, plan):
    """Body of every process of a multi-process job (spawned or started by torchrun / srun)."""
    rank = plan.global_rank(local_rank) if plan.spawn else plan.rank
    if cfg.NUM_GPUS > 0:
        _select_cuda_device(local_rank, plan.procs_per_machine)
    elif plan.procs_per_machine > 1 and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // plan.procs_per_machine))
    dist.init_process_group(backend=plan.backend, init_method=plan.init_method, world_size=plan.world_size,
                            rank=rank)
    try:
        du.set_local_process(local_rank, plan.procs_per_machine)
        if rank == 0:
            logger.info("distributed job (%s): %d processes = %d machine(s) x %d, backend %s, init %s", plan.source,
                        plan.world_size, plan.num_shards, plan.procs_per_machine, plan.backend, plan.init_method)
        seed_everything(rank_seed(cfg, rank))
        return func(_process_cfg(cfg, plan))
    finally:
        dist.destroy_process_group()


def launch_job(cfg, init_method, func, env=None):
    """Run ``func(cfg)`` in every process of the job (see the module docstring for where processes come from).

    Args:
        cfg: the full config (``NUM_GPUS``, ``NUM_SHARDS``, ``SHARD_ID``, ``DIST_BACKEND``, ``RNG_SEED``, optional
            ``NUM_CPU_PROCESSES``).
        init_method: rendezvous URL of config-launched multi-process jobs (``tcp://host:port``; ``None`` picks a
            free local port on a single machine). Ignored under torchrun / SLURM.
        func: a picklable (module-level) function of the config.
        env: environment variables to read (default ``os.environ``).

    Returns:
        ``func``'s result in this process, or ``None`` when processes were spawned.
    """
    plan = plan_launch(cfg, init_method, env)
    if plan.source == "single":
        seed_everything(rank_seed(cfg, 0))
        return func(_process_cfg(cfg, plan))
    if not plan.spawn:
        return _run_process(plan.local_rank, func, cfg, plan)
    torch.multiprocessing.spawn(_run_process, nprocs=plan.procs_per_machine, args=(func, cfg, plan), daemon=False)
    return None
