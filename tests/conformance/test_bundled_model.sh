#!/usr/bin/env bash
# The bundled model (models/safesd-emoji) end to end against the PyTorch reference of
# diffusers' StableDiffusionPipeline (tools/ref/bundled_case.py): same prompt, seed and
# sampler => final latents within 1e-3 (max abs) and the same PNG within 1 level on 99% of
# the values. Also the model's own BPE tokenizer against tools/train/clip_bpe.py on every
# prompt the model ships (evaluation sets, demo prompts).
source "$(dirname "$0")/lib.sh"
need_torch
MODEL="$SRC/models/safesd-emoji"
[ -f "$MODEL/model_index.json" ] || { echo "FAIL: $MODEL is missing"; exit 1; }
dir="$TMP/bundled_model"
rm -rf "$dir" && mkdir -p "$dir"
fail=0

# tokenizer: every shipped prompt, C against the Python trainer's encoder
"$PYTHON" - "$MODEL" > "$dir/prompts.txt" <<'PY'
import csv, glob, os, sys
m = sys.argv[1]
for f in sorted(glob.glob(os.path.join(m, "safety", "*.csv")) + glob.glob(os.path.join(m, "eval", "*.csv"))):
    for r in csv.DictReader(open(f, newline="", encoding="utf-8")):
        print(r["prompt"])
for line in open(os.path.join(m, "demo.txt"), encoding="utf-8"):
    if line.strip() and not line.startswith("#"):
        print(line.strip())
PY
"$SAFESD_BIN" tokenize -m "$MODEL" --json -f "$dir/prompts.txt" > "$dir/ids.jsonl"
"$PYTHON" - "$MODEL" "$dir/ids.jsonl" "$SRC/tools/train" <<'PY' || fail=1
import json, sys
sys.path.insert(0, sys.argv[3])
import clip_bpe
tok = clip_bpe.Tokenizer(sys.argv[1] + "/tokenizer")
n = bad = 0
for line in open(sys.argv[2], encoding="utf-8"):
    o = json.loads(line)
    n += 1
    if tok.encode(o["text"]) != o["ids"]:
        bad += 1
        print(f"FAIL: tokenizer differs on {o['text']!r}")
print(f"tokenizer: {n - bad}/{n} prompts identical to clip_bpe.py")
sys.exit(1 if bad or n < 300 else 0)
PY

cases=("pndm:pndm:discrete:11:20:7.5:red apple, noto emoji"
       "euler_a:euler_a:karras:12:20:7.5:grinning face, twemoji emoji"
       "dpm:dpm++2m:karras:13:15:5:cat face, noto emoji"
       "ddim:ddim:discrete:14:20:7.5:dagger, twemoji emoji")
args=()
for c in "${cases[@]}"; do args+=(--case "$c"); done
"$PYTHON" "$SRC/tools/ref/bundled_case.py" "$MODEL" "$dir/ref" --safesd "$SAFESD_BIN" "${args[@]}" >/dev/null
"$PYTHON" - "$dir/ref" <<'PY'
# the reference image as PNG (diffusers' postprocess: (x/2+0.5).clamp(0,1), *255, round)
import glob, os, sys
import numpy as np
from PIL import Image
for f in glob.glob(os.path.join(sys.argv[1], "*", "decoded.npy")):
    x = np.load(f)[0].transpose(1, 2, 0)
    Image.fromarray(np.round(np.clip(x / 2 + 0.5, 0, 1) * 255).astype(np.uint8)).save(f[:-4] + ".png")
PY
for c in "${cases[@]}"; do
  IFS=: read -r name sampler schedule seed steps cfg prompt <<<"$c"
  # --safety off: the reference is the plain pipeline (the dagger prompt would be flagged)
  if ! "$SAFESD_BIN" generate -q -m "$MODEL" -p "$prompt" --sampler "$sampler" --scheduler "$schedule" \
       -s "$seed" --steps "$steps" --cfg-scale "$cfg" --safety off -o "$dir/$name.png" --latents "$dir/$name.npy" >/dev/null; then
    echo "FAIL: safesd generate $name"; fail=1; continue
  fi
  compare_npy "$dir/$name.npy" "$dir/ref/$name/final_latents.npy" 1e-3 "bundled $name: final latents" || fail=1
  "$BUILD/tests/png_check" "$dir/$name.png" "$dir/ref/$name/decoded.png" --max-level 1 --max-frac 0.01 || fail=1
done
exit $fail
