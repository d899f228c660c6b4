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
py=${SAFESD_PYTHON:-/usr/bin/python3}
case_dir="$build/bench-data/clip_text_sd15_f32"
if [ ! -f "$case_dir/.done" ]; then
  "$py" "$src/tools/ref/clip_text_case.py" "$case_dir" --preset sd15 --dtype f32 >/dev/null
  touch "$case_dir/.done"
fi
echo "# machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; threads=$threads; $(date -u +%F)"
c=(); t=()
for r in $(seq "$rounds"); do
  line=$("$build/bench_text_encoder" "$case_dir/model" --threads "$threads" --repeat 5); echo "$line"
  c+=("$(sed -n 's/.*median_s=\([0-9.]*\).*/\1/p' <<<"$line")")
  line=$("$py" "$here/text_encoder_torch.py" "$case_dir/model" --threads "$threads" --repeat 5); echo "$line"
  t+=("$(sed -n 's/.*median_s=\([0-9.]*\).*/\1/p' <<<"$line")")
done
"$py" - "${c[*]}" "${t[*]}" <<'PY'
import sys, statistics as st
c = [float(x) for x in sys.argv[1].split()]; t = [float(x) for x in sys.argv[2].split()]
mc, mt = st.median(c), st.median(t)
print(f"safesd median {mc:.4f} s, pytorch median {mt:.4f} s, safesd/pytorch time ratio {mc/mt:.2f} "
      f"(< 1 means safesd is faster)")
PY
