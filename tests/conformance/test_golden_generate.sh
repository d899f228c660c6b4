#!/usr/bin/env bash
# `safesd generate` end to end against the real diffusers pipeline (../shared/data/golden/
# clip-small): for each case (DDIM, PNDM, Euler; 10 steps, CFG 7.5, 64×64) the final latents
# within 2e-3 (max abs) and the PNG within 1 level with at most 1% of values differing, from
# the diffusers folder and from the LDM single files (float32 and float16) with --config.
source "$(dirname "$0")/lib.sh"
need_shared data/golden/clip-small/cases/ddim_s42/final_latents.npy
need_torch
G="$SHARED/data/golden/clip-small"
SF="$TMP/golden_clip_small_ldm"
mkdir -p "$SF"
[ -f "$SF/clip-small-ldm-f16.safetensors" ] || "$PYTHON" "$G/make_single_file.py" --out-dir "$SF" >/dev/null
fail=0
while read -r case sampler seed; do
  prompt=$("$PYTHON" -c "import json,sys; m=json.load(open(sys.argv[1])); print([c for c in m['cases'] if c['name']==sys.argv[2]][0]['prompt'])" "$G/manifest.json" "$case")
  for model in "$G/model" "$SF/clip-small-ldm-f32.safetensors" "$SF/clip-small-ldm-f16.safetensors"; do
    cfg=(); [ -d "$model" ] || cfg=(--config "$G/model")
    tag="${case}_$(basename "$model")"
    if ! "$SAFESD_BIN" generate -q -m "$model" "${cfg[@]}" -p "$prompt" --sampler "$sampler" --steps 10 \
         --cfg-scale 7.5 -s "$seed" -W 64 -H 64 -o "$TMP/gen_$tag.png" --latents "$TMP/gen_$tag.npy" >/dev/null; then
      echo "FAIL: safesd generate ($tag)"; fail=1; continue
    fi
    compare_npy "$TMP/gen_$tag.npy" "$G/cases/$case/final_latents.npy" 2e-3 "$tag: final latents" || fail=1
    "$BUILD/tests/png_check" "$TMP/gen_$tag.png" "$G/cases/$case/image.png" --max-level 1 --max-frac 0.01 || fail=1
  done
done <<'CASES'
ddim_s42 ddim 42
pndm_s0 pndm 0
euler_s4290749014 euler 4290749014
CASES
exit $fail
