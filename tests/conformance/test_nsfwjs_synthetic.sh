#!/usr/bin/env bash
# The C TF.js layers-model interpreter (src/judge/nsfwjs.c) against the PyTorch reference
# (tools/ref/nsfwjs_ref.py) on a small random model that the reference writes itself
# (--synthetic; needs no ../shared): 37x45 input, two weight shards split inside a weight,
# manifest order unlike layer order, uint8/uint16/float16/float32 weights, and the layer
# options the nsfwjs model does not use (stride-2 "same" padding with an even kernel, conv
# bias, relu inside Conv2D so the BatchNormalization after it is not folded, BN without
# center, depth_multiplier 2, int ZeroPadding2D, a ReLU without max_value as its own op, a
# three-input Add, pooling with strides null, BN after Dense). The same six synthetic
# images as test_nsfwjs.sh, all resized; logits and probabilities <= 1e-4 abs, the 9
# intermediate op outputs of the first image <= 1e-4 x max|ref|, on 2 threads and on 1.
source "$(dirname "$0")/lib.sh"
need_torch
CHECK="$BUILD/tests/nsfwjs_check"
dir="$TMP/nsfwjs_synthetic"
gen="$SRC/tools/ref/nsfwjs_ref.py"
(
  flock 9
  if [ ! -f "$dir/.done" ] || [ "$gen" -nt "$dir/.done" ]; then
    rm -rf "$dir"
    "$PYTHON" "$gen" "$dir/model" "$dir/case" --synthetic
    touch "$dir/.done"
  fi
) 9>"$TMP/nsfwjs_synthetic.lock"
fail=0
run() { "$CHECK" "$@" || fail=1; }

"$CHECK" describe "$dir/model" || fail=1
layers=()
for f in "$dir/case"/layer_*.npy; do n=$(basename "$f" .npy); layers+=(--layer "${n#layer_}" "$f"); done
mapfile -t cases < "$dir/case/cases.txt"
for threads in 0 1; do
  run classify "$dir/model" "$dir/case" "${cases[0]}" --tol 1e-4 --threads "$threads" "${layers[@]}" --repeat 2
  for name in "${cases[@]:1}"; do
    run classify "$dir/model" "$dir/case" "$name" --tol 1e-4 --threads "$threads"
  done
done
exit $fail
