#!/usr/bin/env bash
# The a1111 prompt syntax (docs/prompts.md) against the Python/PyTorch reference of
# tools/ref/prompt_case.py (AUTOMATIC1111's parser, 75-token chunks with the comma backtrack,
# "Original" emphasis) on small random-weight models of both families (SD 1.x-like, pad
# 49407; SD 2.x-like, pad 0):
#   - the parsed segments (weights to the last bit) and the chunks' ids and weights;
#   - `safesd encode` (weighted, BREAK, escapes, several chunks, the empty prompt): max abs
#     error <= 1e-4 against the reference conditioning [1, 77 x chunks, D];
#   - `safesd generate` with a weighted prompt of several chunks and a shorter negative
#     prompt, and the other way round (the shorter padded with empty chunks): DDIM, 10 steps,
#     final latents within 1e-3;
#   - --prompt-syntax plain on a weighted prompt differs from a1111 (the weights are used).
source "$(dirname "$0")/lib.sh"
need_torch
fail=0
for fam in sd1 sd2; do
  dir="$TMP/prompt_$fam"
  need_ref_case "$dir" "$SRC/tools/ref/prompt_case.py" "$fam" "$SAFESD_BIN"
  "$BUILD/tests/prompt_check" "$dir/cases.json" || fail=1
  n=$("$PYTHON" -c "import json,sys; print(len(json.load(open(sys.argv[1]))['cases']))" "$dir/cases.json")
  for ((k = 0; k < n; k++)); do
    IFS= read -r -d '' prompt < <("$PYTHON" -c "import json,sys
sys.stdout.buffer.write(json.load(open(sys.argv[1], encoding='utf-8'))['cases'][int(sys.argv[2])]['prompt'].encode() + b'\0')" \
      "$dir/cases.json" "$k")
    if ! "$SAFESD_BIN" encode -m "$dir/model" -p "$prompt" -o "$dir/got_$k.npy" >/dev/null; then
      echo "FAIL: $fam case $k: safesd encode: $prompt"; fail=1; continue
    fi
    compare_npy "$dir/got_$k.npy" "$dir/emb_$k.npy" 1e-4 "$fam case $k conditioning" || fail=1
  done
  for k in 0 1; do
    { IFS= read -r -d '' prompt; IFS= read -r -d '' neg; IFS= read -r -d '' seed; } < <("$PYTHON" -c "import json,sys
g = json.load(open(sys.argv[1], encoding='utf-8'))['generate'][int(sys.argv[2])]
sys.stdout.buffer.write(('%s\0%s\0%d\0' % (g['prompt'], g['negative_prompt'], g['seed'])).encode())" "$dir/cases.json" "$k")
    out="$dir/gen_$k/safesd_latents.npy"
    if ! "$SAFESD_BIN" generate -q -m "$dir/model" -p "$prompt" -n "$neg" --sampler ddim --steps 10 --cfg-scale 7.5 \
         -s "$seed" --safety off -o "$dir/gen_$k/safesd.png" --latents "$out" >/dev/null; then
      echo "FAIL: $fam generate case $k"; fail=1; continue
    fi
    compare_npy "$out" "$dir/gen_$k/final_latents.npy" 1e-3 "$fam generate case $k (chunks, padding)" || fail=1
  done
  # the weights are used: plain (the text as it is) gives another conditioning
  "$SAFESD_BIN" encode -m "$dir/model" --prompt-syntax plain -p "a (red:1.3) apple on a [wooden] table" \
    -o "$dir/plain.npy" >/dev/null || { echo "FAIL: $fam encode --prompt-syntax plain"; fail=1; }
  if "$PYTHON" -c "import numpy as np,sys; a,b=np.load(sys.argv[1]),np.load(sys.argv[2]); sys.exit(0 if a.shape==b.shape and np.abs(a-b).max()<1e-3 else 1)" \
       "$dir/plain.npy" "$dir/emb_0.npy"; then
    echo "FAIL: $fam: --prompt-syntax plain gave the a1111 conditioning"; fail=1
  fi
done
exit $fail
