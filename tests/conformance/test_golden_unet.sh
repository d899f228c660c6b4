#!/usr/bin/env bash
# The C UNet against the real diffusers v0.25.1 outputs in ../shared/data/golden/tiny: the
# latents [2, 4, 32, 32] at timestep 500 with the text encoder's last_hidden_state as context;
# every top-level block output (forward hooks: time_proj, time_embedding, conv_in,
# down_blocks.N, mid_block, up_blocks.N, conv_norm_out, conv_out) and noise_pred within 1e-4
# (max abs error), with all threads and with one.
source "$(dirname "$0")/lib.sh"
need_shared data/golden/tiny/tensors/unet.out.noise_pred.npy
need_shared data/golden/tiny/weights/unet.safetensors
G="$SHARED/data/golden/tiny"
fail=0

# tiny's weights/ folder is not a diffusers folder; lay one out with links.
T="$TMP/golden_tiny_unet_model"
rm -rf "$T"; mkdir -p "$T/unet"
echo '{"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}' > "$T/model_index.json"
ln -s "$G/weights/unet_config.json" "$T/unet/config.json"
ln -s "$G/weights/unet.safetensors" "$T/unet/diffusion_pytorch_model.safetensors"
for threads in 0 1; do
  "$BUILD/tests/unet_check" "$T" "$G/tensors/unet.in.latents.npy" "$G/tensors/text.last_hidden_state.npy" \
    "$G/tensors/unet.in.timestep.npy" "$G/tensors/unet.out.noise_pred.npy" --tol 1e-4 \
    --blocks "$G/tensors/unet.block." --threads "$threads" || fail=1
done
exit $fail
