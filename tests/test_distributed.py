"""Distributed execution: launch-environment parsing (torchrun, SLURM), the CPU synchronised BatchNorm, gathers,
and the equivalence of a 2-process (gloo) GDT step with a 1-process step on the same global batch.

Multi-process checks run all their work in one spawn of 2 CPU processes (module fixture ``two_procs``); the
single-process references are computed in the test process.
"""

import os
import random
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from stica_ext.config import get_cfg
from stica_ext.engine.launch import (LaunchError, expand_hostlist, find_free_port, launch_job, parse_tasks_per_node,
                                     plan_launch, read_slurm_env, read_torchrun_env)
from stica_ext.losses.gdt import GDTNCELoss, gdt_loss
from stica_ext.models import GDT
from stica_ext.utils import distributed as du

WORLD = 2
GLOBAL_B = 6  # 3 clips per process
LR = 1.0


# ---------------------------------------------------------------------------------------------------------------
# Pure functions: host lists, tasks per node, torchrun / SLURM variables, plans
# ---------------------------------------------------------------------------------------------------------------
def _cfg(num_gpus=8, cpu_procs=None, batch=64, **over):
    cfg = get_cfg()
    cfg.NUM_GPUS = num_gpus
    if cpu_procs is not None:
        cfg.NUM_CPU_PROCESSES = cpu_procs  # added to the node if the defaults do not have it
    cfg.TRAIN.BATCH_SIZE = cfg.TEST.BATCH_SIZE = batch
    for k, v in over.items():
        setattr(cfg, k, v)
    return cfg


def _torchrun(rank, local_rank, world, local_world, **extra):
    env = dict(RANK=str(rank), LOCAL_RANK=str(local_rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(local_world),
               MASTER_ADDR="10.0.0.1", MASTER_PORT="29400")
    env.update(extra)
    return env


def _slurm(procid, localid, nodeid, ntasks, tasks_per_node, nodelist="node[01-04,07]", **extra):
    env = dict(SLURM_JOB_ID="4242", SLURM_STEP_ID="0", SLURM_PROCID=str(procid), SLURM_LOCALID=str(localid),
               SLURM_NODEID=str(nodeid), SLURM_NTASKS=str(ntasks), SLURM_TASKS_PER_NODE=tasks_per_node,
               SLURM_JOB_NODELIST=nodelist)
    env.update(extra)
    return env


@pytest.mark.parametrize("text, hosts", [
    ("node[01-04,07]", ["node01", "node02", "node03", "node04", "node07"]),
    ("gpu5", ["gpu5"]),
    ("a[8-10],b1,c[001-002]", ["a8", "a9", "a10", "b1", "c001", "c002"]),
    ("r[1-2]n[0-1]", ["r1n0", "r1n1", "r2n0", "r2n1"]),
    ("x-[3,1]-y,z", ["x-3-y", "x-1-y", "z"]),
    ("", []),
])
def test_expand_hostlist(text, hosts):
    assert expand_hostlist(text) == hosts


@pytest.mark.parametrize("bad", ["node[01-04", "node01]", "node[a-b]", "node[4-1]"])
def test_expand_hostlist_errors(bad):
    with pytest.raises(LaunchError, match="host list"):
        expand_hostlist(bad)


def test_parse_tasks_per_node():
    assert parse_tasks_per_node("8(x2)") == [8, 8]
    assert parse_tasks_per_node("8") == [8]
    assert parse_tasks_per_node("8(x2),4,2(x3)") == [8, 8, 4, 2, 2, 2]
    with pytest.raises(LaunchError, match="tasks-per-node"):
        parse_tasks_per_node("8x2")


def test_torchrun_env_plan():
    env = _torchrun(rank=11, local_rank=3, world=16, local_world=8, GROUP_RANK="1")
    info = read_torchrun_env(env)
    assert info == dict(rank=11, local_rank=3, world_size=16, local_world_size=8, node_rank=1, num_nodes=2,
                        master_addr="10.0.0.1", master_port=29400)
    plan = plan_launch(_cfg(8), "tcp://localhost:9999", env)
    assert (plan.source, plan.spawn, plan.init_method, plan.backend) == ("torchrun", False, "env://", "nccl")
    assert (plan.world_size, plan.rank, plan.local_rank, plan.num_shards, plan.shard_id) == (16, 11, 3, 2, 1)
    # without GROUP_RANK the machine index is rank // LOCAL_WORLD_SIZE
    assert read_torchrun_env(_torchrun(9, 1, 16, 8))["node_rank"] == 1
    # CPU processes under torchrun: gloo, per-machine count from NUM_CPU_PROCESSES
    plan = plan_launch(_cfg(0, cpu_procs=2, batch=4), None, _torchrun(1, 1, 2, 2))
    assert (plan.backend, plan.world_size, plan.rank) == ("gloo", 2, 1)
    # a one-process torchrun is an ordinary single-process run
    assert read_torchrun_env(_torchrun(0, 0, 1, 1)) is None
    assert plan_launch(_cfg(1), None, _torchrun(0, 0, 1, 1)).source == "single"


def test_torchrun_env_errors():
    with pytest.raises(LaunchError, match=r"LOCAL_WORLD_SIZE=8.*asks for 4 \(NUM_GPUS=4\); set NUM_GPUS 8"):
        plan_launch(_cfg(4), None, _torchrun(0, 0, 16, 8))
    with pytest.raises(LaunchError, match="NUM_CPU_PROCESSES"):
        plan_launch(_cfg(0, batch=4), None, _torchrun(0, 0, 2, 2))  # NUM_CPU_PROCESSES defaults to 1
    env = _torchrun(0, 0, 16, 8)
    del env["LOCAL_WORLD_SIZE"], env["MASTER_PORT"]
    with pytest.raises(LaunchError, match="LOCAL_WORLD_SIZE, MASTER_PORT are missing"):
        read_torchrun_env(env)
    with pytest.raises(LaunchError, match="not a multiple"):
        read_torchrun_env(_torchrun(0, 0, 12, 8))
    with pytest.raises(LaunchError, match="inconsistent"):
        read_torchrun_env(_torchrun(16, 0, 16, 8))
    with pytest.raises(LaunchError, match=r"TRAIN.BATCH_SIZE \(60\).*16"):
        plan_launch(_cfg(8, batch=60), None, _torchrun(0, 0, 16, 8))


def test_slurm_env_plan():
    env = _slurm(procid=9, localid=1, nodeid=1, ntasks=16, tasks_per_node="8(x2)")
    info = read_slurm_env(env)
    assert info == dict(rank=9, local_rank=1, world_size=16, local_world_size=8, node_rank=1, num_nodes=2,
                        master_addr="node01", master_port=15000 + 4242)
    plan = plan_launch(_cfg(8), "tcp://localhost:9999", env)
    assert (plan.source, plan.spawn, plan.init_method) == ("slurm", False, "tcp://node01:19242")
    assert (plan.world_size, plan.rank, plan.local_rank, plan.num_shards, plan.shard_id) == (16, 9, 1, 2, 1)
    # the step's own variables win over the job's; MASTER_ADDR / MASTER_PORT override the defaults
    env2 = dict(env, SLURM_STEP_NUM_TASKS="16", SLURM_STEP_TASKS_PER_NODE="8(x2)", SLURM_NTASKS="40",
                SLURM_TASKS_PER_NODE="8(x5)", SLURM_STEP_NODELIST="gpu[12-13]", MASTER_ADDR="head", MASTER_PORT="1234")
    info = read_slurm_env(env2)
    assert (info["world_size"], info["num_nodes"], info["master_addr"], info["master_port"]) == (16, 2, "head", 1234)
    del env2["MASTER_ADDR"]
    assert read_slurm_env(env2)["master_addr"] == "gpu12"
    # no node list: the launch node's address; SLURM_NTASKS_PER_NODE as the per-node count
    env3 = {k: v for k, v in env.items() if k not in ("SLURM_JOB_NODELIST", "SLURM_TASKS_PER_NODE")}
    env3.update(SLURM_LAUNCH_NODE_IPADDR="10.1.2.3", SLURM_NTASKS_PER_NODE="8")
    info = read_slurm_env(env3)
    assert (info["master_addr"], info["local_world_size"], info["num_nodes"]) == ("10.1.2.3", 8, 2)
    # one task per node that spawns NUM_GPUS processes (NUM_SHARDS = nodes, SHARD_ID = task)
    plan = plan_launch(_cfg(8), None, _slurm(3, 0, 3, 4, "1(x4)"))
    assert (plan.spawn, plan.world_size, plan.num_shards, plan.shard_id, plan.global_rank(2)) == (True, 32, 4, 3, 26)
    # not inside an srun step (the batch script itself), or a single task: the config decides
    assert read_slurm_env({k: v for k, v in env.items() if k != "SLURM_STEP_ID"}) is None
    assert read_slurm_env(_slurm(0, 0, 0, 1, "1")) is None
    assert plan_launch(_cfg(2, batch=4), "tcp://127.0.0.1:5", _slurm(0, 0, 0, 1, "1")).source == "config"


def test_slurm_env_errors():
    with pytest.raises(LaunchError, match="different task counts per node"):
        read_slurm_env(_slurm(0, 0, 0, 20, "8(x2),4"))
    with pytest.raises(LaunchError, match=r"SLURM_NTASKS=24 does not match SLURM_TASKS_PER_NODE='8\(x2\)'"):
        read_slurm_env(_slurm(0, 0, 0, 24, "8(x2)"))
    with pytest.raises(LaunchError, match="SLURM_LOCALID is missing"):
        read_slurm_env({k: v for k, v in _slurm(0, 0, 0, 16, "8(x2)").items() if k != "SLURM_LOCALID"})
    with pytest.raises(LaunchError, match=r"8 SLURM task\(s\) per node.*asks for 4 \(NUM_GPUS=4\)"):
        plan_launch(_cfg(4), None, _slurm(0, 0, 0, 16, "8(x2)"))
    with pytest.raises(LaunchError, match="rendezvous host"):
        read_slurm_env({k: v for k, v in _slurm(0, 0, 0, 16, "8(x2)").items() if k != "SLURM_JOB_NODELIST"})


def test_torchrun_takes_precedence_over_slurm():
    env = dict(_slurm(0, 0, 0, 2, "1(x2)"), **_torchrun(5, 1, 16, 8))
    assert plan_launch(_cfg(8), None, env).source == "torchrun"


def test_config_plan():
    cfg = _cfg(8, NUM_SHARDS=2, SHARD_ID=1)
    plan = plan_launch(cfg, "tcp://head:9999", {})
    assert (plan.source, plan.spawn, plan.world_size, plan.procs_per_machine) == ("config", True, 16, 8)
    assert [plan.global_rank(i) for i in (0, 7)] == [8, 15]
    with pytest.raises(LaunchError, match="--init_method"):
        plan_launch(cfg, None, {})
    plan = plan_launch(_cfg(0, cpu_procs=2, batch=4), None, {})
    assert (plan.backend, plan.world_size) == ("gloo", 2) and plan.init_method.startswith("tcp://127.0.0.1:")
    assert plan_launch(_cfg(0, batch=3), None, {}).source == "single"
    with pytest.raises(LaunchError, match=r"TRAIN.BATCH_SIZE \(5\)"):
        plan_launch(_cfg(0, cpu_procs=2, batch=5), None, {})


# ---------------------------------------------------------------------------------------------------------------
# CPU synchronised BatchNorm, single process
# ---------------------------------------------------------------------------------------------------------------
def _bn_net():
    return torch.nn.Sequential(torch.nn.Conv3d(2, 3, 1), torch.nn.BatchNorm3d(3),
                               torch.nn.Sequential(torch.nn.Flatten(2), torch.nn.BatchNorm1d(3, momentum=None)))


def test_convert_sync_batchnorm_cpu_keeps_state_and_matches_batchnorm():
    torch.manual_seed(0)
    ref = _bn_net()
    conv = _bn_net()
    conv.load_state_dict(ref.state_dict())
    conv = du.convert_sync_batchnorm(conv)
    assert isinstance(conv[1], du.CpuSyncBatchNorm) and isinstance(conv[2][1], du.CpuSyncBatchNorm)
    assert list(conv.state_dict()) == list(ref.state_dict())
    assert isinstance(du.convert_sync_batchnorm(torch.nn.BatchNorm2d(4)), du.CpuSyncBatchNorm)
    x = torch.randn(4, 2, 3, 2, 2)
    for _ in range(2):  # training mode, not distributed: plain batch norm (running stats included)
        torch.testing.assert_close(conv(x), ref(x))
    torch.testing.assert_close(conv.state_dict(), ref.state_dict())
    conv.eval(), ref.eval()
    torch.testing.assert_close(conv(x), ref(x))


# ---------------------------------------------------------------------------------------------------------------
# Two CPU processes (gloo): one spawn runs every multi-process check and saves its results
# ---------------------------------------------------------------------------------------------------------------
def _tiny_gdt():
    """The GDT model at a tiny width, in float64: the 1- and 2-process runs then agree to ~1e-12 (in float32 the
    different reduction orders of BN statistics over 6 samples, amplified by τ = 0.07, give ~1e-5 differences)."""
    torch.manual_seed(0)
    return GDT(width=4, mlp_hidden_dim=16, embed_dim=8, mlp_dropout=0.0).double()


def _global_batch(num_views):
    g = torch.Generator().manual_seed(1)
    video = torch.randn(GLOBAL_B, num_views, 3, 4, 16, 16, generator=g, dtype=torch.float64)
    audio = torch.randn(GLOBAL_B, num_views, 1, 40, 20, generator=g, dtype=torch.float64)
    return video, audio


def _gdt_step(model, loss_fn, video, audio):
    """One SGD step as the trainer does it (one forward for all views); returns the loss of this process and the
    (detached) embeddings it was computed from."""
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=LR, momentum=0.9)
    zv, za = model(video, audio)
    views = {name: (zv[:, i], za[:, i]) for i, name in enumerate(loss_fn.views)}
    loss, _ = loss_fn(views)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach(), (zv.detach(), za.detach())


def _bn_modules():
    torch.manual_seed(5)
    mods = [torch.nn.BatchNorm1d(3), torch.nn.BatchNorm2d(4, momentum=None), torch.nn.BatchNorm3d(2)]
    for m in mods:
        torch.nn.init.uniform_(m.weight, 0.5, 1.5)
        torch.nn.init.uniform_(m.bias, -0.5, 0.5)
    g = torch.Generator().manual_seed(6)
    shapes = [(GLOBAL_B, 3), (GLOBAL_B, 4, 3, 2), (GLOBAL_B, 2, 2, 3, 2)]
    data = [(torch.randn(s, generator=g) * 3 + 1, torch.randn(s, generator=g)) for s in shapes]
    return mods, data


def _bn_run(mod, x, w_out):
    """Two training steps of forward + backward of ``sum(y * w_out)``, then an eval forward."""
    outs = []
    for _ in range(2):
        x_ = x.clone().requires_grad_(True)
        mod.zero_grad()
        y = mod(x_)
        (y * w_out).sum().backward()
        outs.append((y.detach(), x_.grad))
    mod.eval()
    y_eval = mod(x).detach()
    mod.train()
    return outs, y_eval


def _worker(rank, port, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", world_size=WORLD, rank=rank)
    du.set_local_process(rank, WORLD)
    res = {}
    try:
        n = GLOBAL_B // WORLD
        rows = slice(rank * n, (rank + 1) * n)

        # gathers and reductions
        x = (torch.arange(n * 2, dtype=torch.float32).view(n, 2) + 100 * rank).requires_grad_(True)
        res["gather_other"] = du.all_gather_other(x * 1.0)
        res["gather_all"] = du.all_gather_all(x * 1.0)
        res["reduce"] = (du.all_reduce_mean([rank, 2.0]), du.all_reduce_sum([rank, 2.0]))
        res["local"] = (du.get_local_rank(), du.get_local_size(), du.get_rank(), du.get_world_size())

        # synchronised BatchNorm on local slices vs. BatchNorm on the global batch (in the test process)
        mods, data = _bn_modules()
        res["bn"] = []
        for mod, (xg, wg) in zip(mods, data):
            sync = du.convert_sync_batchnorm(mod)
            outs, y_eval = _bn_run(sync, xg[rows], wg[rows])
            grads = du.all_reduce_sum(torch.cat([sync.weight.grad, sync.bias.grad]).tolist())
            res["bn"].append(dict(outs=outs, y_eval=y_eval, param_grads=torch.tensor(grads),
                                  state=sync.state_dict()))

        # GDT step: SyncBN + DDP + SGD, each process holding its half of the global batch
        for h in (1, 6):
            loss_fn = GDTNCELoss(hypothesis=h)
            video, audio = _global_batch(len(loss_fn.views))
            model = du.convert_sync_batchnorm(_tiny_gdt())
            model = torch.nn.parallel.DistributedDataParallel(model)
            res[f"gdt{h}_loss"] = _gdt_step(model, loss_fn, video[rows], audio[rows])[0]
            res[f"gdt{h}_state"] = model.module.state_dict()
            # negative control: without SyncBN the BN statistics are local and the loss differs
            with torch.no_grad():
                zv, za = _tiny_gdt().train()(video[rows], audio[rows])
                res[f"gdt{h}_local_bn_loss"] = gdt_loss(
                    {name: (zv[:, i], za[:, i]) for i, name in enumerate(loss_fn.views)}, h)[0]
        torch.save(res, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _spawn(fn, nprocs, args, timeout=240):
    ctx = mp.start_processes(fn, args=args, nprocs=nprocs, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                if p.is_alive():
                    p.terminate()
            pytest.fail(f"{nprocs} processes did not finish within {timeout} s")


@pytest.fixture(scope="module")
def two_procs(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    _spawn(_worker, WORLD, (find_free_port(), str(out)))
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def test_gathers_two_processes(two_procs):
    n = GLOBAL_B // WORLD
    rows = [torch.arange(n * 2, dtype=torch.float32).view(n, 2) + 100 * r for r in range(WORLD)]
    for rank, res in enumerate(two_procs):
        other = res["gather_other"]
        assert torch.equal(other, rows[1 - rank]) and not other.requires_grad
        assert torch.equal(res["gather_all"], torch.cat(rows)) and not res["gather_all"].requires_grad
        assert res["reduce"] == ([0.5, 2.0], [1.0, 4.0])
        assert res["local"] == (rank, WORLD, rank, WORLD)


def test_cpu_sync_batchnorm_matches_global_batchnorm(two_procs):
    mods, data = _bn_modules()
    n = GLOBAL_B // WORLD
    for k, (mod, (xg, wg)) in enumerate(zip(mods, data)):
        outs, y_eval = _bn_run(mod, xg, wg)  # plain BatchNorm on the whole batch
        for rank, res in enumerate(two_procs):
            got = res["bn"][k]
            rows = slice(rank * n, (rank + 1) * n)
            for (y, gx), (y_ref, gx_ref) in zip(got["outs"], outs):
                torch.testing.assert_close(y, y_ref[rows], rtol=1e-5, atol=1e-5)
                torch.testing.assert_close(gx, gx_ref[rows], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(got["param_grads"].float(), torch.cat([mod.weight.grad, mod.bias.grad]),
                                       rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(got["state"], mod.state_dict(), rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(got["y_eval"], y_eval[rows], rtol=1e-5, atol=1e-5)


def _split_losses(loss_fn, zv, za):
    """Single process, from the embeddings ``B x V x D`` of the global batch (global BN statistics): the loss of each
    half as a process holding that half sees it (the other half as gathered negatives), and the global loss."""
    n = GLOBAL_B // WORLD
    views = {name: (zv[:, i], za[:, i]) for i, name in enumerate(loss_fn.views)}
    per_rank = []
    for r in range(WORLD):
        rows = slice(r * n, (r + 1) * n)
        local = {k: (v[rows], a[rows]) for k, (v, a) in views.items()}
        others = [(t_local, torch.cat([t[:r * n], t[(r + 1) * n:]]))
                  for (k, pair) in views.items() for t, t_local in zip(pair, local[k])]

        def gather(t, others=others):
            return next(o for tl, o in others if tl is t)

        per_rank.append(gdt_loss(local, loss_fn.hypothesis, loss_fn.temperature, gather=gather)[0])
    return torch.stack(per_rank), gdt_loss(views, loss_fn.hypothesis, loss_fn.temperature)[0]


@pytest.mark.parametrize("hypothesis", [1, 6])
def test_two_processes_match_one_process(two_procs, hypothesis):
    """Every query of a process sees the same keys as in one process (its local rows + the other process's rows
    as bank negatives, in another column order), so the per-process losses are the global loss's per-half means and
    their average is the global loss; keys are detached in both runs, so with SyncBN (global BN statistics) and
    DDP (gradient average) one SGD step gives the same parameters. Hypothesis 6 uses only Var blocks, whose banks
    decompose this way (Base / Inv blocks, e.g. hypothesis 3, do not: see the next test)."""
    loss_fn = GDTNCELoss(hypothesis=hypothesis)
    video, audio = _global_batch(len(loss_fn.views))
    model = _tiny_gdt().train()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    loss, (zv, za) = _gdt_step(model, loss_fn, video, audio)
    per_rank, global_loss = _split_losses(loss_fn, zv, za)
    torch.testing.assert_close(per_rank.mean(), global_loss, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(loss, global_loss, rtol=1e-12, atol=1e-12)
    got = torch.stack([res[f"gdt{hypothesis}_loss"] for res in two_procs])
    torch.testing.assert_close(got, per_rank, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(got.mean(), loss, rtol=1e-9, atol=1e-9)

    ref = model.state_dict()
    moved = max((ref[k].float() - init[k].float()).abs().max().item() for k in ref if ref[k].is_floating_point())
    assert moved > 1e-2  # the step changed the parameters noticeably
    for res in two_procs:
        torch.testing.assert_close(res[f"gdt{hypothesis}_state"], ref, rtol=1e-9, atol=1e-9)
    # the comparison is sensitive: per-process BN statistics give another loss
    local_bn = torch.stack([res[f"gdt{hypothesis}_local_bn_loss"] for res in two_procs]).mean()
    assert (local_bn - loss).abs() > 1e-3


def test_base_and_inv_blocks_do_not_decompose_over_processes():
    """Base / Inv blocks use the other processes' rows of *both* views but only the local rows of one view, so the
    2-process loss is not the 1-process loss of the same global batch (a property of the objective, spec 4.3)."""
    loss_fn = GDTNCELoss(hypothesis=3)
    video, audio = _global_batch(len(loss_fn.views))
    with torch.no_grad():
        zv, za = _tiny_gdt().train()(video, audio)
    per_rank, global_loss = _split_losses(loss_fn, zv, za)
    assert (per_rank.mean() - global_loss).abs() > 1e-4


# ---------------------------------------------------------------------------------------------------------------
# launch_job with 2 CPU processes
# ---------------------------------------------------------------------------------------------------------------
def _report(cfg):
    draws = (random.random(), float(np.random.rand()), torch.rand(1).item())
    others = du.all_gather_other(torch.tensor([[du.get_rank()]]))
    torch.save(dict(rank=du.get_rank(), world=du.get_world_size(), local=du.get_local_rank(),
                    backend=du.get_backend(), frozen=cfg.is_frozen(), shards=(cfg.NUM_SHARDS, cfg.SHARD_ID),
                    seed=torch.initial_seed(), draws=draws, others=others),
               os.path.join(cfg.OUTPUT_DIR, f"launch{du.get_rank()}.pt"))


def test_launch_job_two_cpu_processes(tmp_path):
    cfg = _cfg(0, cpu_procs=2, batch=4, OUTPUT_DIR=str(tmp_path), RNG_SEED=7)
    assert launch_job(cfg, f"tcp://127.0.0.1:{find_free_port()}", _report, env={}) is None
    res = [torch.load(tmp_path / f"launch{r}.pt", weights_only=False) for r in range(2)]
    for r, x in enumerate(res):
        assert (x["rank"], x["world"], x["local"], x["backend"], x["frozen"]) == (r, 2, r, "gloo", True)
        assert x["shards"] == (1, 0) and x["seed"] == 7 + r
        assert x["others"].tolist() == [[1 - r]]
    assert res[0]["draws"] != res[1]["draws"]  # per-rank seeds: different random streams
    # the same function in one process: no process group, the frozen config, seed RNG_SEED
    cfg.NUM_CPU_PROCESSES = 1
    assert launch_job(cfg, None, _report, env={}) is None
    single = torch.load(tmp_path / "launch0.pt", weights_only=False)
    assert (single["world"], single["backend"], single["frozen"], single["seed"]) == (1, None, True, 7)


_JOB_SCRIPT = """
import os, sys
import torch
sys.path.insert(0, {root!r})
from stica_ext.config import get_cfg
from stica_ext.engine.launch import launch_job
from stica_ext.utils import distributed as du


def report(cfg):
    others = du.all_gather_other(torch.tensor([[float(du.get_rank())]]))
    with open(os.path.join(cfg.OUTPUT_DIR, "rank%d.txt" % du.get_rank()), "w") as f:
        f.write("%d %d %d %s %d %d %d %s" % (du.get_rank(), du.get_world_size(), du.get_local_rank(), du.get_backend(),
                                          cfg.NUM_SHARDS, cfg.SHARD_ID, torch.initial_seed(), others.tolist()))
    return du.get_rank()


if __name__ == "__main__":
    cfg = get_cfg()
    cfg.NUM_GPUS = 0
    cfg.NUM_CPU_PROCESSES = 2
    cfg.RNG_SEED = 3
    cfg.TRAIN.BATCH_SIZE = cfg.TEST.BATCH_SIZE = 4
    cfg.OUTPUT_DIR = sys.argv[1]
    rank = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", -1)))
    assert launch_job(cfg, "tcp://unused:1", report) == rank
"""


def _job_script(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(_JOB_SCRIPT.format(root=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RANK", "LOCAL_", "WORLD_", "MASTER_",
                                                                    "GROUP_", "TORCHELASTIC_"))}
    env["OMP_NUM_THREADS"] = "1"
    return script, env


def _check_job_outputs(out_dir):
    for r in range(2):
        assert (out_dir / f"rank{r}.txt").read_text() == f"{r} 2 {r} gloo 1 0 {3 + r} [[{float(1 - r)}]]"


def test_launch_job_under_torchrun(tmp_path):
    """torchrun starts the 2 processes; launch_job joins them with env:// instead of spawning."""
    script, env = _job_script(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(tmp_path)], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_job_outputs(tmp_path)


def test_launch_job_under_srun_variables(tmp_path):
    """Two processes started the way srun starts 2 tasks on one node (its variables, no srun needed): launch_job
    joins them at tcp://<first host of the node list>:MASTER_PORT instead of spawning."""
    script, env = _job_script(tmp_path)
    env.update(SLURM_JOB_ID="77", SLURM_STEP_ID="0", SLURM_STEP_NUM_TASKS="2", SLURM_STEP_TASKS_PER_NODE="2",
               SLURM_NODEID="0", SLURM_STEP_NODELIST="localhost", MASTER_PORT=str(find_free_port()))
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path)], stderr=subprocess.PIPE, text=True,
                              env=dict(env, SLURM_PROCID=str(r), SLURM_LOCALID=str(r))) for r in range(2)]
    try:
        errs = [p.communicate(timeout=180)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(e[-2000:] for e in errs)
    _check_job_outputs(tmp_path)
