#!/usr/bin/env bash
# The C nsfwjs MobileNetV2 classifier (src/judge/nsfwjs.c) against the PyTorch reference
# (tools/ref/nsfwjs_ref.py, an independent implementation of the same Keras graph), on the
# real nsfwjs@4.4.0 weights in ../shared/data/nsfwjs/mobilenet_v2 (SKIP when absent).
# Six deterministic synthetic images: three 224x224 (gradient, noise, flat skin colour)
# and three non-square ones that go through the bilinear resize (200x320, 61x97, 400x150).
# Per image: the preprocessed input (<= 1e-6), the logits and the 5 class probabilities
# (<= 1e-4 abs); for the first image also 12 intermediate layer outputs (<= 1e-4 x max|ref|),
# timing and repeat determinism; every comparison once more on one thread. Then argument
# errors of the API.
source "$(dirname "$0")/lib.sh"
need_shared data/nsfwjs/mobilenet_v2/model.json
need_torch
MODEL="$SHARED/data/nsfwjs/mobilenet_v2"
CHECK="$BUILD/tests/nsfwjs_check"
dir="$TMP/nsfwjs_case"
gen="$SRC/tools/ref/nsfwjs_ref.py"
(
  flock 9
  if [ ! -f "$dir/.done" ] || [ "$gen" -nt "$dir/.done" ] || [ "$MODEL/model.json" -nt "$dir/.done" ]; then
    rm -rf "$dir"
    "$PYTHON" "$gen" "$MODEL" "$dir"
    touch "$dir/.done"
  fi
) 9>"$TMP/nsfwjs_case.lock"
fail=0
run() { "$CHECK" "$@" || fail=1; }

"$CHECK" describe "$MODEL" || fail=1
layers=()
for f in "$dir"/layer_*.npy; do n=$(basename "$f" .npy); layers+=(--layer "${n#layer_}" "$f"); done
mapfile -t cases < "$dir/cases.txt"
run classify "$MODEL" "$dir" "${cases[0]}" --tol 1e-4 "${layers[@]}" --repeat 3
for threads in 0 1; do
  for name in "${cases[@]}"; do
    run classify "$MODEL" "$dir" "$name" --tol 1e-4 --threads "$threads"
  done
done
run errors "$MODEL"
# the model.json path itself is accepted as well as its folder
run classify "$MODEL/model.json" "$dir" "${cases[1]}" --tol 1e-4
exit $fail
