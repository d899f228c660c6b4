#!/usr/bin/env bash
# Every sampler end to end: `safesd generate` against a PyTorch reference of diffusers'
# StableDiffusionPipeline (tools/ref/pipeline_case.py) on small random-weight models of both
# families (SD 1.x-like: quick-GELU text tower, conv projections, epsilon; SD 2.x-like: GELU
# text tower with pad 0, linear projections, per-level heads, v-prediction). DDIM, PNDM,
# Euler, Euler a and DPM++ 2M, discrete and Karras sigmas, 10 steps, CFG 7.5, a negative
# prompt, fixed seeds: final latents within 1e-3 (max abs).
source "$(dirname "$0")/lib.sh"
need_torch
fail=0
for fam in sd1 sd2; do
  need_pipeline_model "$fam"
  dir="$TMP/pipeline_$fam"
  prompt=$("$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))['prompt'])" "$dir/prompts.json")
  neg=$("$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))['negative_prompt'])" "$dir/prompts.json")
  while read -r name sampler schedule seed; do
    out="$dir/$name/safesd_latents.npy"
    if ! "$SAFESD_BIN" generate -q -m "$dir/model" -p "$prompt" -n "$neg" --sampler "$sampler" --scheduler "$schedule" \
         --steps 10 --cfg-scale 7.5 -s "$seed" -o "$dir/$name/safesd.png" --latents "$out" >/dev/null; then
      echo "FAIL: safesd generate $fam $name"; fail=1; continue
    fi
    compare_npy "$out" "$dir/$name/final_latents.npy" 1e-3 "$fam $name: final latents" || fail=1
  done < "$dir/cases.txt"
done
exit $fail
