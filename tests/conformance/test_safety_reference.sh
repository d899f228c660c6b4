#!/usr/bin/env bash
# Generation-side safety against a PyTorch reference (tools/ref/safety_case.py) on a small
# random sd1-like model, 10 steps, CFG 7.5, negative prompt "blurry", final latents within
# 1e-3 (max abs):
#  - Safe Latent Diffusion, every preset (weak, medium, strong, max) with DDIM and Euler a,
#    medium with DPM++ 2M, strong with PLMS: the StableDiffusionPipelineSafe loop.
#  - Dual latent reconstruction, the two-state form, blend=step and blend=final, with the
#    stochastic Euler a (shared noise) and the multistep DPM++ 2M and PLMS (history per
#    stream), and tau = 0.
#  - DDIM blend=step against ONE DDIM stream stepped with the mixed prediction
#    lam*eps_s + (1-lam)*eps_u (the two forms agree because the DDIM step is affine in eps).
# The MAX preset is checked within 3e-2: its rule is ill-conditioned (scale = min(1, |d|·5000)
# has slope 5000 where |ε_p − ε_S| < 2e-4), so float32 rounding differences of 1e-7 move a few
# latents by ~1e-2. Measured on this model: the PyTorch reference rerun with another thread
# count differs from itself by 9.2e-3 (DDIM) and 1.3e-3 (Euler a); multiplying ε by
# (1 + 1e-6·noise) moves it by 2.6e-3. Every other preset has slope ≤ 2000 and passes 1e-3.
# So every SLD case is also replayed (sld_replay_check): the reference's recorded UNet
# predictions of each step through sd_sld_guide and the C sampler, final latents within 1e-3
# of the reference's: the update rule itself, max included, without the UNet's rounding.
source "$(dirname "$0")/lib.sh"
need_torch
dir="$TMP/safety_sd1"
gen="$SRC/tools/ref/safety_case.py"
if [ ! -f "$dir/.done" ] || [ "$gen" -nt "$dir/.done" ] || [ "$SRC/tools/ref/pipeline_case.py" -nt "$dir/.done" ]; then
  rm -rf "$dir"
  "$PYTHON" "$gen" "$dir" --safesd "$SAFESD_BIN"
  touch "$dir/.done"
fi
get() { "$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$dir/prompts.json" "$1"; }
prompt=$(get prompt); neg=$(get negative_prompt); safe=$(get safety_text)
fail=0
while read -r name sampler seed mode a b c; do
  if [ "$mode" = sld ]; then extra=(--sld "$a")
  else extra=(--safety-text "$safe" --safety-weight "$a" --context-steps "$b" --safety-blend "$c"); fi
  out="$dir/$name/safesd_latents.npy"
  if ! "$SAFESD_BIN" generate -q -m "$dir/model" -p "$prompt" -n "$neg" --sampler "$sampler" --steps 10 \
       --cfg-scale 7.5 -s "$seed" "${extra[@]}" -o "$dir/$name/safesd.png" --latents "$out" >/dev/null; then
    echo "FAIL: safesd generate $name"; fail=1; continue
  fi
  tol=1e-3; [ "$mode $a" = "sld max" ] && tol=3e-2
  compare_npy "$out" "$dir/$name/final_latents.npy" "$tol" "$name: final latents" || fail=1
  if [ "$mode" = sld ]; then
    # the update rule itself: the reference's own UNet predictions replayed through
    # sd_sld_guide and the C sampler, final latents within 1e-3 for every preset, max included
    "$BUILD/tests/sld_replay_check" "$dir/$name" "$sampler" "$a" eps 10 "$seed" --tol 1e-3 || fail=1
  fi
done < "$dir/cases.txt"
exit $fail
