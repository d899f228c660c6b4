#!/usr/bin/env bash
# UNet benchmark: safesd vs PyTorch (Debian python3-torch), back to back, on an SD 1.x-shaped
# random-weight UNet (tools/ref/sdref_unet.py --preset sd15), one forward of batch 2 ×
# 64×64 latents × 77 context tokens (one guided step at 512 px), float32 compute. The
# weights are stored as DTYPE (f16, as SD checkpoints usually are, or f32); PyTorch widens
# them to float32 when it loads, safesd keeps them as stored. Runs ROUNDS rounds,
# alternating C and PyTorch, and prints each run plus the ratio of medians.
#
#   tools/bench/unet.sh [BUILD_DIR] [ROUNDS] [THREADS] [DTYPE]
# Env: BENCH_REPEAT (timed forwards per run, default 3), BENCH_WARMUP (default 1).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${1:-$src/build}
rounds=${2:-1}
threads=${3:-$(nproc)}
dtype=${4:-f16}
repeat=${BENCH_REPEAT:-3}
warmup=${BENCH_WARMUP:-1}
py=${SAFESD_PYTHON:-/usr/bin/python3}
case_dir="$build/bench-data/unet_sd15_$dtype"
if [ ! -f "$case_dir/.done" ]; then
  "$py" "$src/tools/ref/sdref_unet.py" "$case_dir" --preset sd15 --dtype "$dtype" --no-outputs >/dev/null
  touch "$case_dir/.done"
fi
echo "# machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; threads=$threads; weights $dtype; $(date -u +%F)"
c=(); t=()
flops=--flops
for r in $(seq "$rounds"); do
  line=$("$build/bench_unet" "$case_dir/model" --threads "$threads" --repeat "$repeat" --warmup "$warmup"); echo "$line"
  c+=("$(sed -n 's/.*median_s=\([0-9.]*\).*/\1/p' <<<"$line")")
  line=$("$py" "$here/unet_torch.py" "$case_dir/model" --threads "$threads" --repeat "$repeat" --warmup "$warmup" $flops); echo "$line"
  t+=("$(sed -n 's/.*median_s=\([0-9.]*\).*/\1/p' <<<"$line")")
  flops=
done
"$py" - "${c[*]}" "${t[*]}" <<'PY'
import sys, statistics as st
c = [float(x) for x in sys.argv[1].split()]; t = [float(x) for x in sys.argv[2].split()]
mc, mt = st.median(c), st.median(t)
print(f"safesd median {mc:.3f} s, pytorch median {mt:.3f} s, safesd/pytorch time ratio {mc/mt:.2f} "
      f"(< 1 means safesd is faster)")
PY
