#!/usr/bin/env bash
# The C VAE against the PyTorch reference (tools/ref/sdref_vae.py) at SD 1.x/2.x shapes on
# random weights: block_out_channels (128, 256, 512, 512), 2 layers per block, 32 groups,
# 4 latent channels (83.7 M parameters).
#  - decode: a 64x64x4 latent -> 512x512 image, float16 stored weights. This is the 512-px
#    path: 512x512x128 and 512x512x256 activations, the row-banded upsample + conv and the
#    4096-token single-head mid attention (tiled sd_op_attention);
#  - decode + encode (posterior mean): a 32x32x4 latent / 256x256 image, float32 stored.
# Criterion: max abs error <= 1e-3 x max|expected| (float32 compute either side; measured
# ~3e-6 relative).
#
# Cost (2 cores): generating the cases once, ~1.5-2 min of PyTorch (kept in SAFESD_TEST_TMP
# and reused while tools/ref/sdref_vae.py is unchanged); each run then ~1-2 min of C
# (measured 49 s CPU for the 512-px decode alone). Over the suite's budget, so it is opt-in:
#   SAFESD_TEST_SD15=1 ctest -L sd15   (this test and the UNet one; SAFESD_VAE_SD15=1 for this one)
# Without SAFESD_VAE_SD15=1 it reports SKIPPED (exit 77).
source "$(dirname "$0")/lib.sh"
if [ "${SAFESD_VAE_SD15:-0}" != 1 ] && [ "${SAFESD_TEST_SD15:-0}" != 1 ]; then
  echo "SKIP: the SD 1.5-sized VAE test is opt-in (several minutes); run with SAFESD_TEST_SD15=1 (or SAFESD_VAE_SD15=1)"
  exit 77
fi
need_torch
CHECK="$BUILD/tests/vae_check"
fail=0

make_vae_case() { # DIR ARGS...: (re)generate unless DIR is newer than the generator
  local dir=$1; shift
  local gen="$SRC/tools/ref/sdref_vae.py"
  if [ ! -f "$dir/.done" ] || [ "$gen" -nt "$dir/.done" ] || [ "$SRC/tools/ref/sdref.py" -nt "$dir/.done" ]; then
    rm -rf "$dir"
    "$PYTHON" "$gen" "$dir" "$@"
    touch "$dir/.done"
  fi
}

dir="$TMP/vae_sd15_f16_512"
make_vae_case "$dir" --preset sd15 --dtype f16 --latent 64x64 --no-encoder
"$CHECK" decode "$dir/model" "$dir/latents.npy" "$dir/decoded.npy" --rel 1e-3 || fail=1

dir="$TMP/vae_sd15_f32_256"
make_vae_case "$dir" --preset sd15 --dtype f32 --latent 32x32
"$CHECK" decode "$dir/model" "$dir/latents.npy" "$dir/decoded.npy" --rel 1e-3 || fail=1
"$CHECK" encode "$dir/model" "$dir/image.npy" "$dir/latent_mean.npy" --rel 1e-3 --block quant_conv "$dir/moments.npy" || fail=1
exit $fail
