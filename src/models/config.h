/* Model hyper-parameters: parsing the diffusers / transformers config.json files, checking a
 * configuration for consistency, and the list of tensors (internal names and shapes) that a
 * configuration implies, which is how configs are cross-checked against the weights.
 *
 * The parsers take a buffer (they are fuzzed: tests/fuzz/fuzz_config.c); label names it in
 * messages ("unet/config.json"). Keys follow the upstream classes' defaults when absent or
 * null (CLIPTextConfig, UNet2DConditionModel, AutoencoderKL); options that change the
 * architecture away from SD 1.x/2.x are refused with SD_E_UNSUPPORTED naming the key.
 *
 * diffusers' UNet `attention_head_dim` is, for historical reasons, the NUMBER OF HEADS when
 * `num_attention_heads` is null (SD 1.x: 8 -> 8 heads per level; SD 2.x: [5, 10, 20, 20]);
 * `num_attention_heads`, when given, wins. Either may be a number (every level) or a list
 * (one per down level; up block i uses level n_levels-1-i, the mid block the last level).
 */
#ifndef SD_MODELS_CONFIG_H
#define SD_MODELS_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "models/model_types.h"

int sd_parse_text_config_json(const char *buf, size_t len, const char *label, sd_clip_text_config *out);
int sd_parse_unet_config_json(const char *buf, size_t len, const char *label, sd_unet_config *out);
int sd_parse_vae_config_json(const char *buf, size_t len, const char *label, sd_vae_config *out);
/* scheduler_config.json: prediction_type "epsilon" (default) -> 0, "v_prediction" -> 1. */
int sd_parse_scheduler_config_json(const char *buf, size_t len, const char *label, int *prediction_v);

/* Internal consistency and sanity bounds (heads divide widths, GroupNorm groups divide
 * channels, levels within SD_MAX_LEVELS, ...). SD_E_FORMAT naming label. */
int sd_text_config_check(const sd_clip_text_config *c, const char *label);
int sd_unet_config_check(const sd_unet_config *c, const char *label);
int sd_vae_config_check(const sd_vae_config *c, const char *label);

/* The tensors a configuration implies, internal names, in a fixed order. */
typedef struct sd_tensor_spec {
  char name[128];
  int ndim;
  int64_t shape[4];
} sd_tensor_spec;

typedef struct sd_tensor_specs {
  sd_tensor_spec *v;
  size_t n, cap;
} sd_tensor_specs;

int sd_text_config_tensors(const sd_clip_text_config *c, sd_tensor_specs *out);
int sd_unet_config_tensors(const sd_unet_config *c, sd_tensor_specs *out);
int sd_vae_config_tensors(const sd_vae_config *c, sd_tensor_specs *out);
void sd_tensor_specs_free(sd_tensor_specs *s);

#endif
