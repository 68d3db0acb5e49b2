#!/usr/bin/env bash
# Train on one machine with several GPUs (or several CPU processes).
#
# Usage:
#   scripts/launch_single_node.sh CONFIG.yaml [KEY VALUE ...]
#
# Environment variables (all optional):
#   NUM_GPUS      processes / GPUs on this machine (default: every visible GPU, 0 when there is none)
#   LAUNCHER      "spawn" (default): tools/run_net.py starts NUM_GPUS processes itself (torch.multiprocessing);
#                 "torchrun": torchrun starts them and run_net.py joins them (env://), e.g. for torchrun's
#                 restart-on-failure (--max-restarts) or when a cluster tool already speaks torchrun.
#   OUTPUT_DIR    where logs and checkpoints go (default: output/<config name>); a rerun of the same command
#                 resumes from the last checkpoint there (TRAIN.AUTO_RESUME).
#   PORT          rendezvous port (default 29500 + a hash of OUTPUT_DIR, so two jobs on one machine do not collide)
#   PYTHON        the interpreter (default: python)
#   NPROC         (torchrun only) processes to start (default: NUM_GPUS, at least 1)
#
# Examples:
#   scripts/launch_single_node.sh configs/GDT/K400_AV_R2plus1D_18_H1.yaml NUM_SHARDS 1 TRAIN.BATCH_SIZE 64
#   LAUNCHER=torchrun NUM_GPUS=4 scripts/launch_single_node.sh configs/GDT/SYNTH_AV_demo.yaml
#
# TRAIN.BATCH_SIZE is the global batch over all processes (each process gets TRAIN.BATCH_SIZE / NUM_GPUS). The
# K400 configs are written for 8 machines (NUM_SHARDS 8): on one machine pass NUM_SHARDS 1 and the batch you want.
# Several CPU processes (gloo), e.g. to debug distributed code without GPUs: NUM_GPUS=0 and append
# "NUM_CPU_PROCESSES 2" to the overrides (with LAUNCHER=torchrun also NPROC=2).
set -euo pipefail

if [[ $# -lt 1 ]]; then
    sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
CFG="$1"
shift

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python}"
LAUNCHER="${LAUNCHER:-spawn}"
if [[ -z "${NUM_GPUS:-}" ]]; then
    NUM_GPUS="$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())')"
fi
OUTPUT_DIR="${OUTPUT_DIR:-output/$(basename "${CFG%.*}")}"
PORT="${PORT:-$((29500 + $(printf '%s' "$OUTPUT_DIR" | cksum | cut -d' ' -f1) % 1000))}"

case "$LAUNCHER" in
    spawn)
        # One command; run_net.py spawns NUM_GPUS processes (one per GPU) that meet at the --init_method URL.
        exec "$PYTHON" "$REPO/tools/run_net.py" --cfg "$CFG" --init_method "tcp://127.0.0.1:$PORT" \
            NUM_GPUS "$NUM_GPUS" OUTPUT_DIR "$OUTPUT_DIR" "$@"
        ;;
    torchrun)
        # torchrun starts one process per GPU and sets RANK / LOCAL_RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT;
        # run_net.py sees them and does not spawn. NUM_GPUS must equal --nproc_per_node (checked at start-up).
        NPROC="${NPROC:-$NUM_GPUS}"
        [[ "$NPROC" -ge 1 ]] || NPROC=1
        exec "$PYTHON" -m torch.distributed.run --standalone --nnodes 1 --nproc_per_node "$NPROC" \
            "$REPO/tools/run_net.py" --cfg "$CFG" NUM_GPUS "$NUM_GPUS" OUTPUT_DIR "$OUTPUT_DIR" "$@"
        ;;
    *)
        echo "LAUNCHER must be 'spawn' or 'torchrun', got '$LAUNCHER'" >&2
        exit 2
        ;;
esac
