#!/usr/bin/env bash
# Text-encoder benchmark: safesd vs PyTorch (Debian python3-torch), back to back, on an
# SD 1.x-shaped random-weight CLIP text tower (12 layers, 768 wide, 49,408 tokens), one
# pass of batch 2 × 77, float32. Runs ROUNDS rounds, alternating C and PyTorch, and prints
# each run plus the ratio of medians.
#
#   tools/bench/text_encoder.sh [BUILD_DIR] [ROUNDS] [THREADS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${1:-$src/build}
rounds=${2:-3}
threads=${3:-$(nproc)}
source "$here/lib.sh"
case_dir="$build/bench-data/clip_text_sd15_f32"
if [ ! -f "$case_dir/.done" ]; then
  "$py" "$src/tools/ref/clip_text_case.py" "$case_dir" --preset sd15 --dtype f32 >/dev/null
  touch "$case_dir/.done"
fi
machine_line "threads=$threads"
run_c() { "$build/bench_text_encoder" "$case_dir/model" --threads "$threads" --repeat 5; }
run_torch() { "$py" "$here/text_encoder_torch.py" "$case_dir/model" --threads "$threads" --repeat 5; }
bench_rounds "$rounds"
