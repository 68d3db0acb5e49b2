#!/usr/bin/env bash
# GDT / STiCA pretraining on a SLURM cluster: 8 nodes x 8 GPUs = 64 processes (the paper's setting).
#
# Submit from the repository root (partition, account, QoS, ... are cluster-specific: give them to sbatch):
#   sbatch --partition=<partition> scripts/launch_slurm.sh
#   sbatch --export=ALL,CFG=configs/GDT/K400_AV_R2plus1D_18_H6.yaml,OUTPUT_DIR=/path/to/runs/h6 scripts/launch_slurm.sh
#   sbatch --nodes=2 scripts/launch_slurm.sh            # fewer nodes: NUM_SHARDS follows the allocation
#
# How the processes find each other: srun starts one task per GPU; tools/run_net.py reads the task's SLURM
# variables (SLURM_PROCID = global rank, SLURM_LOCALID = GPU on the node, SLURM_NODEID = machine, tasks per node from
# SLURM_STEP_TASKS_PER_NODE, rendezvous at the first node of the step's node list, port MASTER_PORT) and joins the
# NCCL group without spawning anything (stica_ext/engine/launch.py). The config's NUM_GPUS must equal the tasks per
# node (passed below); NUM_SHARDS / SHARD_ID come from the allocation. TRAIN.BATCH_SIZE is the global batch over all
# 64 processes.
#
# Preemption and time limits: 120 s before the time limit SLURM sends SIGUSR1 to this batch shell
# (--signal=B:USR1@120; "B:" so that the shell, which alone can requeue, is told). The shell forwards it to srun,
# which forwards it to every task; the training loop then writes a mid-epoch checkpoint to OUTPUT_DIR and exits, and
# the shell requeues the job (scontrol requeue; allowed by --requeue). When the scheduler preempts the job (SIGTERM to
# every task) the tasks checkpoint the same way and SLURM requeues it itself (--requeue). The requeued job keeps its
# job id, hence its OUTPUT_DIR, and resumes from the last checkpoint (TRAIN.AUTO_RESUME True).
#
#SBATCH --job-name=gdt_pretrain
#SBATCH --nodes=8
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=10
#SBATCH --time=72:00:00
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%j.out

set -uo pipefail

# ---------------------------------------------------------------------------------------------------------------
# Settings: edit here or pass as environment variables (sbatch --export=ALL,NAME=value,...)
# ---------------------------------------------------------------------------------------------------------------
REPO="${REPO:-${SLURM_SUBMIT_DIR:-$(pwd)}}"                     # checkout of this repository
CFG="${CFG:-configs/GDT/K400_AV_R2plus1D_18_H1.yaml}"           # relative to REPO, or absolute
OUTPUT_DIR="${OUTPUT_DIR:-$REPO/output/${SLURM_JOB_NAME:-gdt}_${SLURM_JOB_ID:-0}}"  # logs + checkpoints
PYTHON="${PYTHON:-python}"                                      # interpreter with stica_ext's requirements
SETUP="${SETUP:-}"              # evaluated first, e.g. "source ~/envs/gdt/bin/activate" or "module load cuda"
EXTRA_OPTS="${EXTRA_OPTS:-}"    # more KEY VALUE overrides, e.g. "DATA.PATH_TO_DATA_DIR /data/k400 GDT.HYPOTHESIS 6"
export MASTER_PORT="${MASTER_PORT:-$((15000 + ${SLURM_JOB_ID:-0} % 15000))}"  # rendezvous port on the first node
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}"

# ---------------------------------------------------------------------------------------------------------------
cd "$REPO" || exit 1
if [[ -n "$SETUP" ]]; then
    eval "$SETUP"
fi
TASKS_PER_NODE="${SLURM_NTASKS_PER_NODE:-8}"
NODES="${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-1}}"
mkdir -p "$OUTPUT_DIR"
echo "$(date) job ${SLURM_JOB_ID:-?} (restart ${SLURM_RESTART_COUNT:-0}): $NODES node(s) x $TASKS_PER_NODE tasks," \
     "config $CFG, output $OUTPUT_DIR, rendezvous port $MASTER_PORT"

REQUEUE=0
SRUN_PID=""
on_usr1() {
    echo "$(date) SIGUSR1: time limit close; the tasks checkpoint and stop, then the job is requeued"
    REQUEUE=1
    [[ -n "$SRUN_PID" ]] && kill -USR1 "$SRUN_PID" 2>/dev/null
}
on_term() {
    echo "$(date) SIGTERM: preempted or cancelled; the tasks checkpoint and stop"
    [[ -n "$SRUN_PID" ]] && kill -TERM "$SRUN_PID" 2>/dev/null
}
trap on_usr1 USR1
trap on_term TERM

# One task per GPU; --kill-on-bad-exit stops every task when one fails (instead of leaving them waiting forever).
srun --kill-on-bad-exit=1 "$PYTHON" tools/run_net.py --cfg "$CFG" \
    NUM_GPUS "$TASKS_PER_NODE" NUM_SHARDS "$NODES" OUTPUT_DIR "$OUTPUT_DIR" $EXTRA_OPTS &
SRUN_PID=$!

# A trapped signal interrupts `wait`: keep waiting until srun itself has exited.
while :; do
    wait "$SRUN_PID"
    kill -0 "$SRUN_PID" 2>/dev/null || break
done
wait "$SRUN_PID"
rc=$?

if [[ "$REQUEUE" == 1 ]]; then
    echo "$(date) requeueing job $SLURM_JOB_ID (srun exit status $rc)"
    scontrol requeue "$SLURM_JOB_ID"
fi
exit "$rc"
