#!/usr/bin/env bash
# Text side against the real diffusers/transformers outputs in ../shared/data/golden:
#  - tiny: component tensors (last_hidden_state, penultimate hidden states) from ids;
#  - clip-small: prompt -> tokenizer -> text encoder through the CLI, both layouts
#    (diffusers folder and the LDM single file in float32 and float16), vs prompt_embeds.
source "$(dirname "$0")/lib.sh"
need_shared data/golden/tiny/tensors/text.last_hidden_state.npy
need_shared data/golden/clip-small/cases/ddim_s42/prompt_embeds.npy
need_torch
G="$SHARED/data/golden"
fail=0

# tiny: its weights/ folder is not a diffusers folder; lay one out with links.
T="$TMP/golden_tiny_model"
rm -rf "$T"; mkdir -p "$T/text_encoder"
echo '{"_class_name": "StableDiffusionPipeline", "text_encoder": ["transformers", "CLIPTextModel"]}' > "$T/model_index.json"
ln -s "$G/tiny/weights/text_encoder_config.json" "$T/text_encoder/config.json"
ln -s "$G/tiny/weights/text_encoder.safetensors" "$T/text_encoder/model.safetensors"
"$BUILD/tests/encode_check" "$T" "$G/tiny/tensors/text.input_ids.npy" "$G/tiny/tensors/text.last_hidden_state.npy" --tol 1e-4 || fail=1
# hidden_states_penultimate = output of the second-to-last layer, no final LayerNorm
"$BUILD/tests/encode_check" "$T" "$G/tiny/tensors/text.input_ids.npy" "$G/tiny/tensors/text.hidden_states_penultimate.npy" --clip-skip 2 --raw --tol 1e-4 || fail=1

# clip-small end to end: prompt text through the CLI.
SF="$TMP/golden_clip_small_ldm"
mkdir -p "$SF"
if [ ! -f "$SF/clip-small-ldm-f16.safetensors" ]; then
  "$PYTHON" "$G/clip-small/make_single_file.py" --out-dir "$SF" >/dev/null
fi
for c in ddim_s42 pndm_s0 euler_s4290749014; do
  prompt=$("$PYTHON" -c "import json,sys; m=json.load(open(sys.argv[1])); print([c for c in m['cases'] if c['name']==sys.argv[2]][0]['prompt'])" "$G/clip-small/manifest.json" "$c" 2>/dev/null || true)
  if [ -z "$prompt" ]; then echo "FAIL: cannot read the prompt of case $c from manifest.json"; fail=1; continue; fi
  for model in "$G/clip-small/model" "$SF/clip-small-ldm-f32.safetensors" "$SF/clip-small-ldm-f16.safetensors"; do
    out="$TMP/golden_embed_${c}_$(basename "$model").npy"
    # A single file cannot state the text encoder's head count (4 here; the width/64 rule
    # that holds for CLIP-L and OpenCLIP gives 1), so it is described by the folder's
    # configs, as diffusers' from_single_file(config=...) does.
    cfg=(); [ -d "$model" ] || cfg=(--config "$G/clip-small/model")
    # diffusers takes the text as it is (one 77-token window): --prompt-syntax plain
    if ! "$SAFESD_BIN" encode -m "$model" "${cfg[@]}" --prompt-syntax plain -p "" -p "$prompt" -o "$out" >/dev/null; then
      echo "FAIL: safesd encode on $model"; fail=1; continue
    fi
    compare_npy "$out" "$G/clip-small/cases/$c/prompt_embeds.npy" 1e-4 "$c $(basename "$model"): prompt_embeds" || fail=1
  done
done
exit $fail
