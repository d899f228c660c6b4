/* LoRA (low-rank adapters) merged into a model's weights in memory, as AUTOMATIC1111 and
 * stable-diffusion.cpp apply `<lora:NAME:W>` (docs/lora.md):
 *
 *   W' = W + W_user · (alpha / rank) · up · down
 *
 * for every module the file names, in float32 (the merged copy of a weight is float32; the
 * file's view is kept and comes back on restore). Formats: kohya-ss (`lora_unet_<module>` /
 * `lora_te_<module>` with `.lora_down.weight`, `.lora_up.weight`, optional `.alpha`; module =
 * the diffusers module path with '.' -> '_') and diffusers/PEFT (`unet.<module>` /
 * `text_encoder.<module>` with `.lora_A.weight`, `.lora_B.weight`, alpha = rank). Linear
 * weights [out, in] and convolutions [out, in, kh, kw] (down [r, in, kh, kw], up
 * [out, r, 1, 1]). A module that names no weight of the model, or whose shapes do not fit, is
 * an error naming it (a LoRA for another architecture fails here, never silently). */
#ifndef SD_MODELS_LORA_H
#define SD_MODELS_LORA_H

#include "models/model_source.h"

typedef struct sd_lora_spec {
  const char *path;   /* a .safetensors file */
  float weight_text;  /* W_user for the text encoder's modules */
  float weight_unet;  /* W_user for the UNet's */
} sd_lora_spec;

/* What is merged into a model source: the replaced weights and their file views. */
typedef struct sd_lora_state sd_lora_state;

/* Merge the LoRAs of specs[0..n) into m's weights (UNet and text encoder). On success *out
 * holds the state to restore later (NULL when n == 0); on error m is unchanged. */
int sd_lora_apply(sd_model_source *m, const sd_lora_spec *specs, int n, sd_lora_state **out);
/* Point every merged weight back at the file and free the merged copies and the state. */
void sd_lora_restore(sd_model_source *m, sd_lora_state *st);
/* Modules merged (for reports and tests). */
int sd_lora_modules(const sd_lora_state *st);

#endif
