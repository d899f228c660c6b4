#!/usr/bin/env bash
# The C UNet against the PyTorch reference (tools/ref/sdref_unet.py, diffusers'
# UNet2DConditionModel names and math) on random weights, small configurations:
#  - small: 3 levels, per-level heads, 2 transformer layers, 16 GroupNorm groups, 16x24 latent,
#    float32, float16 and bfloat16 stored weights; every top-level block checked too;
#  - small-linear (SD 2.x style): linear proj_in/out, num_attention_heads, no sin/cos flip,
#    freq_shift 1, batch 3, 9 context tokens, fractional timestep;
#  - one thread gives the same answer within tolerance.
# Tolerance: max abs error <= 1e-4 (float32 compute either side).
# $SAFESD_CONFORMANCE_TOL replaces it (conformance.*.avx2 runs every 3×3 convolution on
# safesd's own Winograd kernel, whose transforms add float32 roundings: 3e-4 there, at block
# outputs of scale 15-25, that is about 1.5e-5 of the scale). The SD 1.5-sized case is
# test_unet_sd15.sh.
source "$(dirname "$0")/lib.sh"
TOL=${SAFESD_CONFORMANCE_TOL:-1e-4}
need_torch
CHECK="$BUILD/tests/unet_check"
GEN="$SRC/tools/ref/sdref_unet.py"
fail=0
unet_case() { local dir=$1; shift; ref_case "$dir" "$GEN" "$@"; }
run() { # run DIR [ARGS...]
  local dir=$1; shift
  "$CHECK" "$dir/model" "$dir/latents.npy" "$dir/context.npy" "$dir/timestep.npy" "$dir/noise_pred.npy" "$@" || fail=1
}
for spec in "small f32" "small f16" "small bf16" "small-linear f32" "small-linear f16"; do
  set -- $spec
  dir="$CASES/unet_$1_$2"
  unet_case "$dir" --preset "$1" --dtype "$2" --blocks || { echo "FAIL: generating $spec"; fail=1; continue; }
  run "$dir" --tol "$TOL" --blocks "$dir/blocks/unet.block."
done
run "$CASES/unet_small_f32" --tol "$TOL" --threads 1
# a latent whose sides are not multiples of 2^(levels-1) = 4 is refused with a reason
dir="$CASES/unet_small_f32"
"$PYTHON" -c 'import sys, numpy as np; np.save(sys.argv[1], np.zeros((2, 4, 10, 12), np.float32))' "$TMP/unet_bad_latents.npy"
if "$CHECK" "$dir/model" "$TMP/unet_bad_latents.npy" "$dir/context.npy" 417 "$dir/noise_pred.npy" 2>"$TMP/unet_bad.err"; then
  echo "FAIL: a 10x12 latent was accepted"; fail=1
elif ! grep -q "multiples of 4" "$TMP/unet_bad.err"; then
  echo "FAIL: unexpected error for a 10x12 latent: $(cat "$TMP/unet_bad.err")"; fail=1
else
  echo "10x12 latent refused: $(cat "$TMP/unet_bad.err")"
fi
exit $fail
