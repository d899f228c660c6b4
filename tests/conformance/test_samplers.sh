#!/usr/bin/env bash
# The C samplers (src/sampling) against the PyTorch transcription of diffusers v0.25.1's
# schedulers (tools/ref/sdref_sched.py): every sampler x {discrete, karras} x {eps, v}, plus the
# other timestep spacings, DDIM with eta > 0 and 20-step DPM++ 2M, 10 steps from a fixed seed
# with a deterministic synthetic model. The initial latents must be bit-identical (the RNG);
# the final latents must agree within 1e-5 relative (max abs error / max abs value).
# The reference is first checked against diffusers' goldens in ../shared (bit for bit).
source "$(dirname "$0")/lib.sh"
need_torch
CHECK="$BUILD/tests/samplers_check"
gen="$SRC/tools/ref/sdref_sched.py"
dir="$TMP/samplers"
if [ ! -f "$dir/.done" ] || [ "$gen" -nt "$dir/.done" ]; then
  rm -rf "$dir"
  "$PYTHON" "$gen" cases "$dir"
  touch "$dir/.done"
fi
fail=0
n=0
# First the reference itself against diffusers' outputs in ../shared (when present).
if [ -d "$SHARED/data/golden/tiny" ] && [ -d "$SHARED/data/golden/clip-small" ]; then
  "$PYTHON" "$gen" check-golden "$SHARED/data/golden" || fail=1
else
  echo "note: $SHARED/data/golden is absent; the reference is not re-checked against diffusers' goldens"
fi
while read -r name sampler sigmas pred spacing eta steps seed; do
  [ -n "$name" ] || continue
  "$CHECK" "$dir/$name" "$sampler" "$sigmas" "$pred" "$spacing" "$eta" "$steps" "$seed" --tol 1e-5 || fail=1
  n=$((n + 1))
done < "$dir/cases.txt"
[ "$n" -ge 20 ] || { echo "FAIL: only $n cases in $dir/cases.txt"; fail=1; }
exit $fail
