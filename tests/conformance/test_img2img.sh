#!/usr/bin/env bash
# Image to image and inpainting end to end: `safesd generate --init-img [--mask] --strength`
# against the PyTorch reference of diffusers' StableDiffusionImg2ImgPipeline and
# StableDiffusionInpaintPipeline (4-channel UNet), tools/ref/img2img_case.py, on the small
# random-weight models of both families: DDIM, PNDM (a start past and at its duplicated
# step), Euler, Euler a, DPM++ 2M, discrete and Karras sigmas, strengths 0.3..1, batches of
# one and two, 10 steps, CFG 7.5, a negative prompt, fixed seeds: final latents within 1e-3
# (max abs), the tolerance of the text-to-image sampler test.
source "$(dirname "$0")/lib.sh"
need_torch
fail=0
for fam in sd1 sd2 sd1-inpaint; do
  dir="$TMP/img2img_$fam"
  need_ref_case "$dir" "$SRC/tools/ref/img2img_case.py" "$fam" "$SRC/tools/ref/sdref_sched.py" "$SRC/tools/ref/pipeline_case.py"
  prompt=$("$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))['prompt'])" "$dir/prompts.json")
  neg=$("$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))['negative_prompt'])" "$dir/prompts.json")
  while read -r name sampler schedule seed strength mask batch; do
    out="$dir/$name/safesd_latents.npy"
    extra=()
    [ "$mask" = 1 ] && extra=(--mask "$dir/mask.png")
    if ! "$SAFESD_BIN" generate -q -m "$dir/model" -p "$prompt" -n "$neg" --sampler "$sampler" --scheduler "$schedule" \
         --steps 10 --cfg-scale 7.5 -s "$seed" -b "$batch" -i "$dir/init.png" --strength "$strength" "${extra[@]}" \
         --safety off -o "$dir/$name/safesd.png" --latents "$out" >/dev/null; then
      echo "FAIL: safesd generate $fam $name"; fail=1; continue
    fi
    compare_npy "$out" "$dir/$name/final_latents.npy" 1e-3 "$fam $name: final latents" || fail=1
  done < "$dir/cases.txt"
done
# a 9-channel inpainting UNet without an init image and a mask: a clear error, no file
dir="$TMP/img2img_sd1-inpaint"
rm -f "$dir/none.png"
for args in "" "-i $dir/init.png"; do
  set +e
  err=$("$SAFESD_BIN" generate -q -m "$dir/model" -p "$prompt" --steps 2 $args -o "$dir/none.png" 2>&1 >/dev/null)
  rc=$?
  set -e
  if [ "$rc" = 1 ] && [ "$(printf '%s\n' "$err" | wc -l)" = 1 ] && grep -q "inpainting UNet (9 input channels" <<<"$err" \
     && [ ! -e "$dir/none.png" ]; then
    echo "9-channel UNet without a mask ($args): refused: $err"
  else
    echo "FAIL: 9-channel UNet without a mask ($args): exit $rc, '$err'"; fail=1
  fi
done
exit $fail
