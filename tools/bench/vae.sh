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
py=${SAFESD_PYTHON:-/usr/bin/python3}
case_dir="$build/bench-data/vae_sd15_$dtype"
if [ ! -f "$case_dir/.done" ]; then
  "$py" "$src/tools/ref/sdref_vae.py" "$case_dir" --preset sd15 --dtype "$dtype" --no-encoder >/dev/null
  touch "$case_dir/.done"
fi
echo "# machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; threads=$threads; weights $dtype; $(date -u +%F)"
c=(); t=()
for r in $(seq "$rounds"); do
  line=$("$build/bench_vae" "$case_dir/model" --threads "$threads"); echo "$line"
  c+=("$(sed -n 's/.*median_s=\([0-9.]*\).*/\1/p' <<<"$line")")
  line=$("$py" "$here/vae_torch.py" "$case_dir/model" --threads "$threads"); echo "$line"
  t+=("$(sed -n 's/.*median_s=\([0-9.]*\).*/\1/p' <<<"$line")")
done
"$py" - "${c[*]}" "${t[*]}" <<'PY'
import sys, statistics as st
c = [float(x) for x in sys.argv[1].split()]; t = [float(x) for x in sys.argv[2].split()]
mc, mt = st.median(c), st.median(t)
print(f"safesd median {mc:.2f} s, pytorch median {mt:.2f} s, safesd/pytorch time ratio {mc/mt:.2f} (< 1: safesd faster)")
PY
