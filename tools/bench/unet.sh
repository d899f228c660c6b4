#!/usr/bin/env bash
# UNet benchmark: safesd vs PyTorch (Debian python3-torch), back to back, on an SD 1.x-shaped
# random-weight UNet (tools/ref/sdref_unet.py --preset sd15), one forward of batch 2 ×
# 64×64 latents × 77 context tokens (one guided step at 512 px), float32 compute. The
# weights are stored as DTYPE (f16, as SD checkpoints usually are, or f32); PyTorch widens
# them to float32 when it loads, safesd keeps them as stored. Runs ROUNDS rounds,
# alternating C and PyTorch, and prints each run plus the ratio of medians.
#
#   tools/bench/unet.sh [BUILD_DIR] [ROUNDS] [THREADS] [DTYPE]
# Env: BENCH_REPEAT (timed forwards per run, default 3), BENCH_WARMUP (default 1),
# BENCH_BATCH (default 2: a guided step; 1: one pass), BENCH_PRECISION (fp32 or bf16, safesd
# only), BENCH_TORCH_PRECISION (fp32 or bf16: PyTorch's model and inputs in bfloat16), BENCH_MEM_BUDGET (MiB of packed fp32 weights kept, as safesd
# --mem-budget; default 0), SAFESD_PROFILE=1 (safesd's per-op-class lines).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${1:-$src/build}
rounds=${2:-1}
threads=${3:-$(nproc)}
dtype=${4:-f16}
repeat=${BENCH_REPEAT:-3}
warmup=${BENCH_WARMUP:-1}
batch=${BENCH_BATCH:-2}
precision=${BENCH_PRECISION:-fp32}
budget=${BENCH_MEM_BUDGET:-0}
torch_precision=${BENCH_TORCH_PRECISION:-fp32}
source "$here/lib.sh"
case_dir="$build/bench-data/unet_sd15_$dtype"
if [ ! -f "$case_dir/.done" ]; then
  "$py" "$src/tools/ref/sdref_unet.py" "$case_dir" --preset sd15 --dtype "$dtype" --no-outputs >/dev/null
  touch "$case_dir/.done"
fi
machine_line "threads=$threads; weights $dtype; batch $batch; safesd precision $precision; mem budget ${budget} MiB"
run_c() {
  "$build/bench_unet" "$case_dir/model" --threads "$threads" --repeat "$repeat" --warmup "$warmup" --batch "$batch" \
    --precision "$precision" --mem-budget "$budget"
}
run_torch() { # the FLOP-counting hooks run in the first round only
  local flops=; [ "$1" = 1 ] && flops=--flops
  "$py" "$here/unet_torch.py" "$case_dir/model" --threads "$threads" --repeat "$repeat" --warmup "$warmup" \
    --batch "$batch" --precision "$torch_precision" $flops
}
bench_rounds "$rounds"
