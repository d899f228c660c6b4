#!/usr/bin/env bash
# End to end at full SD 1.5 size with random weights, in both layouts and both dtypes, with
# the peak RSS of each run (the figure docs/performance.md quotes):
#   1. a diffusers folder in float16 (tools/ref/make_sd15_random.py), 512×512, 2 Euler steps;
#   2. the same written as LDM single files (safesd convert) in float16 and float32,
#      256×256, 1 step each; the f16 single file must give the same image as the f16 folder.
#   tools/bench/sd15_e2e.sh [BUILD_DIR] [WORK_DIR]      (needs ~10 GB of disk in WORK_DIR)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); src=$(cd "$here/../.." && pwd)
build=${1:-$src/build}; work=${2:-$build/sd15-random}
py=${SAFESD_PYTHON:-/usr/bin/python3}
mkdir -p "$work"
[ -f "$work/f16/model_index.json" ] || "$py" "$src/tools/ref/make_sd15_random.py" "$work/f16" --dtype f16
[ -f "$work/sd15-f16.safetensors" ] || "$build/safesd" convert "$work/f16" "$work/sd15-f16.safetensors"
[ -f "$work/sd15-f32.safetensors" ] || "$build/safesd" convert "$work/f16" "$work/sd15-f32.safetensors" --dtype f32
run() { # run LABEL ARGS...
  local label=$1; shift
  /usr/bin/time -f "%M %e" -o "$work/time.txt" "$build/safesd" generate -q "$@" >/dev/null
  read -r kb secs < "$work/time.txt"
  printf '%-34s peak RSS %6.0f MiB, %5.0f s wall\n' "$label" "$((kb / 1024))" "$secs"
}
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, $(date -u +%F)"
run "folder f16, 512x512, 2 steps" -m "$work/f16" -p "an astronaut riding a horse" -s 1 --steps 2 --sampler euler -o "$work/folder-f16-512.png"
run "folder f16, 256x256, 1 step" -m "$work/f16" -p "an astronaut riding a horse" -s 1 --steps 1 --sampler euler -W 256 -H 256 -o "$work/folder-f16.png"
run "single file f16, 256x256, 1 step" -m "$work/sd15-f16.safetensors" -p "an astronaut riding a horse" -s 1 --steps 1 --sampler euler -W 256 -H 256 -o "$work/single-f16.png"
run "single file f32, 256x256, 1 step" -m "$work/sd15-f32.safetensors" -p "an astronaut riding a horse" -s 1 --steps 1 --sampler euler -W 256 -H 256 -o "$work/single-f32.png"
# the same pixels (the PNG metadata names the model, so the files differ in that text)
"$build/tests/png_check" "$work/single-f16.png" "$work/folder-f16.png" --max-level 0 --max-frac 0 | sed 's/^/single file f16 vs folder f16: /'
# f32 file = the f16 values widened, so the same numbers: the same pixels too
"$build/tests/png_check" "$work/single-f32.png" "$work/folder-f16.png" --max-level 0 --max-frac 0 | sed 's/^/single file f32 vs folder f16: /'
