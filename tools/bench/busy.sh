#!/usr/bin/env bash
# A UNet pass on a shared machine: how much slower one forward gets while another process
# keeps one CPU busy. Runs bench_unet (SD 1.x shapes, random f16 weights, batch 1, 64×64)
# quiet, then beside a competing busy loop (started with setsid, pinned to the last CPU with
# taskset where there is one, ended by this script and bounded by `timeout` in any case),
# for each OpenMP wait setting, and prints the medians and the slowdown.
#
#   tools/bench/busy.sh [BUILD_DIR] [THREADS] [PRECISION]
# Env: BENCH_REPEAT (timed forwards per run, default 3), BUSY_VARIANTS (default
# "default spin300k passive"): default = what the safesd programs set (a short
# GOMP_SPINCOUNT, src/core/threadpool.h), spin300k = libgomp's own default
# (GOMP_SPINCOUNT=300000: the behaviour before), passive = OMP_WAIT_POLICY=passive.
# The issue's target: slowdown <= 2.2x, and the default no more than a few % slower than
# spin300k when quiet. Only meaningful on an otherwise quiet machine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${1:-$src/build}
threads=${2:-$(nproc)}
precision=${3:-bf16}
repeat=${BENCH_REPEAT:-3}
variants=${BUSY_VARIANTS:-default spin300k passive}
source "$here/lib.sh"
case_dir="$build/bench-data/unet_sd15_f16"
if [ ! -f "$case_dir/.done" ]; then
  "$py" "$src/tools/ref/sdref_unet.py" "$case_dir" --preset sd15 --dtype f16 --no-outputs >/dev/null
  touch "$case_dir/.done"
fi
machine_line "threads=$threads; weights f16; batch 1; precision $precision; busy loop on CPU $(($(nproc) - 1))"

tmp=$(mktemp -d)
busy_pgid=
stop_busy() {
  if [ -n "$busy_pgid" ]; then kill -- "-$busy_pgid" 2>/dev/null || true; busy_pgid=; fi
}
trap 'stop_busy; rm -rf "$tmp"' EXIT
start_busy() { # a busy loop in its own session (so that its whole group can be ended), <= 30 min
  local pin=()
  command -v taskset >/dev/null && pin=(taskset -c "$(($(nproc) - 1))")
  rm -f "$tmp/busy.pid"
  setsid bash -c 'echo $$ > "$1"; shift; exec "$@"' _ "$tmp/busy.pid" \
    timeout 1800 "${pin[@]}" bash -c 'while :; do :; done' </dev/null >/dev/null 2>&1 &
  for _ in $(seq 50); do [ -s "$tmp/busy.pid" ] && break; sleep 0.1; done
  busy_pgid=$(cat "$tmp/busy.pid")
  sleep 1
}
run() { # run VARIANT: one bench_unet line
  local env=()
  case $1 in
    default) env=() ;;
    spin300k) env=(GOMP_SPINCOUNT=300000) ;;
    passive) env=(OMP_WAIT_POLICY=passive) ;;
    *) echo "unknown variant $1" >&2; exit 2 ;;
  esac
  env "${env[@]}" "$build/bench_unet" "$case_dir/model" --threads "$threads" --repeat "$repeat" --warmup 1 --batch 1 \
    --precision "$precision"
}
med() { sed -n 's/.*median_s=\([0-9.]*\).*/\1/p' <<<"$1"; }
declare -A quiet busy
for v in $variants; do
  line=$(run "$v"); echo "quiet $v: $line"; quiet[$v]=$(med "$line")
  start_busy
  line=$(run "$v"); echo "busy  $v: $line"; busy[$v]=$(med "$line")
  stop_busy
done
for v in $variants; do
  "$py" -c "import sys; q, b = float(sys.argv[2]), float(sys.argv[3]); print(f'{sys.argv[1]}: quiet {q:.3f} s, busy {b:.3f} s, slowdown {b / q:.2f}x')" \
    "$v" "${quiet[$v]}" "${busy[$v]}"
done
