#!/usr/bin/env bash
# Training throughput of the K400 GDT recipe shape on one GPU in each speed mode, then a compact table.
#
#   tools/gpu_benchmark.sh [DIR]
#
# Shape: configs/GDT/K400_AV_R2plus1D_18_H1.yaml (R(2+1)D-18 + ResNet-9, 30 x 112 x 112 video, 1 s of audio as a
# 40 x 99 log-mel spectrogram), batch 8, NUM_GPUS 1, random inputs (no dataset, nothing downloaded). Modes:
#   fp32                   everything off (PyTorch defaults: cuDNN may use TF32 for convolutions)
#   bf16                   TRAIN.MIXED_PRECISION True, TRAIN.AMP_DTYPE bfloat16
#   bf16_cl                + TRAIN.CHANNELS_LAST True
#   bf16_cl_cudnn          + CUDNN_BENCHMARK True
#   bf16_cl_cudnn_compile  + TRAIN.COMPILE True (torch.compile, mode "default")
# Each mode runs `tools/benchmark.py --report train` in its own process (WARMUP untimed + ITERS timed iterations)
# and writes DIR/train_<mode>.{json,md}; the last step writes DIR/summary.{json,md} and prints the table.
# DIR defaults to $OUT when set, else output/gpu_benchmark. The whole script stays under BUDGET_S seconds (default
# 330): a mode that would run past it is cut short by `timeout` and recorded as failed.
#
# Environment: PYTHON (interpreter), WARMUP (5), ITERS (20), MODES (space-separated subset), EXTRA (more KEY VALUE
# overrides appended to every mode, e.g. a tiny CPU shape for a smoke test), BUDGET_S, MODE_TIMEOUT (240 s),
# DRY_RUN=1 (print the commands, run nothing).
set -uo pipefail

DIR=${1:-${OUT:-output/gpu_benchmark}}
[[ "$DIR" == /* ]] || DIR="$PWD/$DIR"
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
WARMUP=${WARMUP:-5}
ITERS=${ITERS:-20}
BUDGET_S=${BUDGET_S:-330}
MODE_TIMEOUT=${MODE_TIMEOUT:-240}
MODES=${MODES:-"fp32 bf16 bf16_cl bf16_cl_cudnn bf16_cl_cudnn_compile"}
EXTRA=${EXTRA:-}
CFG=configs/GDT/K400_AV_R2plus1D_18_H1.yaml
SHAPE="NUM_GPUS 1 NUM_SHARDS 1 TRAIN.BATCH_SIZE 8 DATA.NUM_FRAMES 30 DATA.TRAIN_CROP_SIZE 112"

mode_opts() {
  case "$1" in
    fp32) echo "" ;;
    bf16) echo "TRAIN.MIXED_PRECISION True TRAIN.AMP_DTYPE bfloat16" ;;
    bf16_cl) echo "TRAIN.MIXED_PRECISION True TRAIN.AMP_DTYPE bfloat16 TRAIN.CHANNELS_LAST True" ;;
    bf16_cl_cudnn) echo "TRAIN.MIXED_PRECISION True TRAIN.AMP_DTYPE bfloat16 TRAIN.CHANNELS_LAST True CUDNN_BENCHMARK True" ;;
    bf16_cl_cudnn_compile) echo "TRAIN.MIXED_PRECISION True TRAIN.AMP_DTYPE bfloat16 TRAIN.CHANNELS_LAST True CUDNN_BENCHMARK True TRAIN.COMPILE True" ;;
    *) echo "unknown mode $1" >&2; return 1 ;;
  esac
}

if [[ "${DRY_RUN:-0}" != "1" ]]; then
  mkdir -p "$DIR"
  "$PYTHON" -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(), '|',
torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')" || true
fi

start=$SECONDS
for mode in $MODES; do
  opts=$(mode_opts "$mode") || exit 2
  # shellcheck disable=SC2206
  cmd=("$PYTHON" tools/benchmark.py --report train --tag "$mode" --out "$DIR" --warmup "$WARMUP" --iters "$ITERS"
       --keep-going --cfg "$CFG" $SHAPE $opts $EXTRA)
  if [[ "${DRY_RUN:-0}" == "1" ]]; then
    printf '%q ' "${cmd[@]}"; echo
    continue
  fi
  left=$(( BUDGET_S - (SECONDS - start) - 15 ))
  limit=$(( left < MODE_TIMEOUT ? left : MODE_TIMEOUT ))
  if (( limit < 20 )); then
    echo "gpu_benchmark: no time left for mode $mode (budget ${BUDGET_S}s)" >&2
    printf '{"report": "train", "tag": "%s", "error": "skipped: time budget of %ss used up"}\n' "$mode" "$BUDGET_S" \
      > "$DIR/train_$mode.json"
    continue
  fi
  echo "=== $mode (at most ${limit}s) ===" >&2
  timeout --signal=TERM --kill-after=10 "$limit" "${cmd[@]}" > "$DIR/train_$mode.log" 2>&1
  rc=$?
  tail -n 3 "$DIR/train_$mode.log" >&2
  if [[ $rc -ne 0 || ! -f "$DIR/train_$mode.json" ]]; then
    printf '{"report": "train", "tag": "%s", "error": "exit code %s%s (see train_%s.log)"}\n' "$mode" "$rc" \
      "$([[ $rc -eq 124 ]] && echo ': timed out')" "$mode" > "$DIR/train_$mode.json"
  fi
done

if [[ "${DRY_RUN:-0}" == "1" ]]; then
  printf '%q ' "$PYTHON" tools/benchmark.py --summary "$DIR"; echo
  exit 0
fi
echo "=== summary ($(( SECONDS - start ))s) ===" >&2
"$PYTHON" tools/benchmark.py --quiet --summary "$DIR"
