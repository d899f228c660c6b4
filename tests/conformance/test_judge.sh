#!/usr/bin/env bash
# The C emoji-judge (src/judge/emoji_judge.c) against its PyTorch reference
# (tools/ref/sdref_judge.py, computed in float64; cases from tools/ref/judge_case.py):
# random judges of odd shapes (24 px input, strides 1/2/2, 4 groups) stored in F32, F16
# and BF16, and the shipped judge of the bundled model (models/safesd-emoji/judge). Six
# images each (the input size, a non-integer downscale, an upscale, a wide and a tall image,
# a flat 64x64 scene): preprocessed input <= 1e-6, presence and background logits <= 1e-4
# relative, the argmax cells equal, on all threads and on one.
source "$(dirname "$0")/lib.sh"
need_torch
CHECK="$BUILD/tests/judge_check"
fail=0
cases=()
for dt in f32 f16 bf16; do
  dir="$TMP/judge_$dt"
  (
    flock 9
    if [ ! -f "$dir/.done" ] || [ "$SRC/tools/ref/judge_case.py" -nt "$dir/.done" ] || [ "$SRC/tools/ref/sdref_judge.py" -nt "$dir/.done" ]; then
      rm -rf "$dir"
      "$PYTHON" "$SRC/tools/ref/judge_case.py" "$dir" --dtype "$dt"
      touch "$dir/.done"
    fi
  ) 9>"$dir.lock"
  cases+=("$dir/model:$dir/case")
done
shipped="$SRC/models/safesd-emoji/judge"
if [ -f "$shipped/config.json" ]; then
  dir="$TMP/judge_shipped"
  rm -rf "$dir"
  "$PYTHON" "$SRC/tools/ref/judge_case.py" "$dir" --model "$shipped"
  cases+=("$shipped:$dir/case")
  "$CHECK" describe "$shipped" || fail=1
else
  echo "FAIL: $shipped/config.json is missing (the bundled model ships its judge)"
  fail=1
fi
for c in "${cases[@]}"; do
  model=${c%%:*} case=${c#*:}
  mapfile -t names < "$case/cases.txt"
  for threads in 0 1; do
    for n in "${names[@]}"; do
      "$CHECK" classify "$model" "$case" "$n" --threads "$threads" || fail=1
    done
  done
done
exit $fail
