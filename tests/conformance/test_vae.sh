#!/usr/bin/env bash
# The C VAE (src/models/vae.c) against the PyTorch reference (tools/ref/sdref_vae.py) on
# random weights, small configurations (the SD 1.5-sized run is test_vae_sd15.sh):
#  - "small": 3 levels (32, 64, 64), 2 layers per block, 16 groups, float32 and float16
#    stored weights, a non-square 8x12 latent;
#  - "small-z8": 2 levels (24, 48), 8 groups, 8 latent channels, scaling factor 0.13025,
#    bfloat16 stored, odd sizes (5x7 latent);
#  - "one-level": no up- or downsampling at all.
# Each: decoder output and every decoder block output; encoder posterior mean (x scaling
# factor) and quant_conv moments; posterior sample with given noise. Also forced small row
# bands in the fused upsample + conv, one thread, bad sizes refused, and sd_vae_to_rgb8's
# self-test. Tiled decoding (diffusers' tiled_decode) against the reference's: "small" at a
# 20x37 latent with its sample_size (64 px: tiles of 16 latent pixels, every 12, the last
# column one latent pixel wide) and with 32-px tiles, "small-z8" at 9x21 (bf16 weights); the
# plain decode must NOT match the tiled reference (so the comparison can fail).
# Tolerance: max abs error <= 1e-4 (float32 compute either side).
# $SAFESD_CONFORMANCE_TOL replaces it (conformance.*.avx2 runs every 3×3 convolution on
# safesd's own Winograd kernel, whose transforms add float32 roundings: 3e-4 there, at block
# outputs of scale 15-25, that is about 1.5e-5 of the scale).
source "$(dirname "$0")/lib.sh"
TOL=${SAFESD_CONFORMANCE_TOL:-1e-4}
need_torch
CHECK="$BUILD/tests/vae_check"
fail=0
run() { "$CHECK" "$@" || fail=1; }

make_vae_case() { # DIR ARGS...: a case of sdref_vae.py with its block outputs
  local dir=$1; shift
  ref_case "$dir" "$SRC/tools/ref/sdref_vae.py" "$@" --blocks
}

blocks() { # the --block arguments for every block file of a case
  local f n
  for f in "$1"/block.*.npy; do n=$(basename "$f" .npy); echo "--block ${n#block.} $f"; done
}

run selftest
for spec in "small f32 8x12" "small f16 8x12" "small-z8 bf16 5x7" "one-level f32 6x5"; do
  set -- $spec
  dir="$CASES/vae_$1_$2"
  make_vae_case "$dir" --preset "$1" --dtype "$2" --latent "$3"
  run decode "$dir/model" "$dir/latents.npy" "$dir/decoded.npy" --tol "$TOL" $(blocks "$dir")
  run encode "$dir/model" "$dir/image.npy" "$dir/latent_mean.npy" --tol "$TOL" --block quant_conv "$dir/moments.npy"
  run encode "$dir/model" "$dir/image.npy" "$dir/latent_sample.npy" --noise "$dir/noise.npy" --tol "$TOL"
done
dir="$CASES/vae_small_f32"
for rows in 1 3; do
  run decode "$dir/model" "$dir/latents.npy" "$dir/decoded.npy" --tol "$TOL" --band-rows "$rows"
done
run errors "$dir/model"
for spec in "small f32 20x37 0" "small f32 20x37 32" "small-z8 bf16 9x21 0"; do
  set -- $spec
  dir="$CASES/vae_tiled_$1_$2_$3_$4"
  ref_case "$dir" "$SRC/tools/ref/sdref_vae.py" --preset "$1" --dtype "$2" --latent "$3" --no-encoder --tiled "$4"
  run decode "$dir/model" "$dir/latents.npy" "$dir/decoded_tiled.npy" --tol "$TOL" --tile "$4"
  if "$CHECK" decode "$dir/model" "$dir/latents.npy" "$dir/decoded_tiled.npy" --tol 1e-4 >/dev/null; then
    echo "FAIL: the untiled decode matches the tiled reference of $spec: the tiled comparison cannot fail"; fail=1
  fi
done
dir="$CASES/vae_small_f32"
run decode "$dir/model" "$dir/latents.npy" "$dir/decoded.npy" --tol "$TOL" --threads 1
run encode "$dir/model" "$dir/image.npy" "$dir/latent_mean.npy" --tol "$TOL" --threads 1
exit $fail
