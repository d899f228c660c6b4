#!/usr/bin/env bash
# The C text encoder against the PyTorch reference (tools/ref/sdref.py) on random weights:
# SD 1.x shapes (77×768, 12 layers, 49,408-token vocabulary) and small ones, with float32,
# float16 and bfloat16 stored weights, last layer, clip skip 2 and raw penultimate states.
# Tolerance: max abs error <= 1e-4 (float32 compute either side).
source "$(dirname "$0")/lib.sh"
need_torch
CHECK="$BUILD/tests/encode_check"
fail=0
run() { "$CHECK" "$@" || fail=1; }
for spec in "small f32" "small f16" "small-gelu bf16" "sd15 f32" "sd15 f16"; do
  set -- $spec
  dir="$CASES/clip_text_$1_$2"
  make_case "$dir" --preset "$1" --dtype "$2"
  run "$dir/model" "$dir/ids.npy" "$dir/last_hidden_state.npy" --tol 1e-4
  run "$dir/model" "$dir/ids.npy" "$dir/clip_skip2.npy" --clip-skip 2 --tol 1e-4
  run "$dir/model" "$dir/ids.npy" "$dir/penultimate_raw.npy" --clip-skip 2 --raw --tol 1e-4
done
# one thread gives the same answer within tolerance too
dir="$CASES/clip_text_small_f32"
run "$dir/model" "$dir/ids.npy" "$dir/last_hidden_state.npy" --tol 1e-4 --threads 1
exit $fail
