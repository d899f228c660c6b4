#!/usr/bin/env bash
# VAE decode benchmark: safesd vs PyTorch (Debian python3-torch), back to back, on an SD
# 1.x-shaped random-weight AutoencoderKL (tools/ref/sdref_vae.py --preset sd15): one decode of
# a 64×64×4 latent to a 512×512 image, float32 compute, weights stored as DTYPE.
#
#   tools/bench/vae.sh [BUILD_DIR] [ROUNDS] [THREADS] [DTYPE]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${1:-$src/build}
rounds=${2:-1}
threads=${3:-$(nproc)}
dtype=${4:-f16}
source "$here/lib.sh"
case_dir="$build/bench-data/vae_sd15_$dtype"
if [ ! -f "$case_dir/.done" ]; then
  "$py" "$src/tools/ref/sdref_vae.py" "$case_dir" --preset sd15 --dtype "$dtype" --no-encoder >/dev/null
  touch "$case_dir/.done"
fi
machine_line "threads=$threads; weights $dtype"
run_c() { "$build/bench_vae" "$case_dir/model" --threads "$threads" --precision "${BENCH_PRECISION:-fp32}"; }
run_torch() { "$py" "$here/vae_torch.py" "$case_dir/model" --threads "$threads"; }
bench_rounds "$rounds"
