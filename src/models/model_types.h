/* The model layer's plain types: families, layouts, components and the hyper-parameters of
 * the text encoder, UNet and VAE. Shared by the model source (models/model_source.h), the
 * config.json parsers (models/config.h) and the LDM name map (models/name_map.h), which
 * otherwise do not depend on one another. */
#ifndef SD_MODELS_MODEL_TYPES_H
#define SD_MODELS_MODEL_TYPES_H

#include <stdint.h>

typedef enum { SD_FAMILY_UNKNOWN = 0, SD_FAMILY_SD1, SD_FAMILY_SD2 } sd_family;
typedef enum { SD_LAYOUT_DIFFUSERS = 0, SD_LAYOUT_SINGLE_FILE } sd_layout;
typedef enum { SD_COMP_TEXT = 0, SD_COMP_UNET, SD_COMP_VAE, SD_COMP_COUNT } sd_component;

/* "text_encoder", "unet", "vae" (the diffusers folder names), "?" otherwise */
static inline const char *sd_component_name(sd_component c) {
  return c == SD_COMP_TEXT ? "text_encoder" : c == SD_COMP_UNET ? "unet" : c == SD_COMP_VAE ? "vae" : "?";
}

typedef enum { SD_ACT_QUICK_GELU = 0, SD_ACT_GELU } sd_activation;

typedef struct sd_clip_text_config {
  int vocab_size, hidden, layers, heads, intermediate, max_positions;
  sd_activation act;
  float ln_eps;
  int32_t bos_id, eos_id, pad_id; /* pad: 49407 for SD 1.x CLIP-L, 0 for SD 2.x OpenCLIP */
} sd_clip_text_config;

#define SD_MAX_LEVELS 8

typedef struct sd_unet_config {
  int in_channels, out_channels, sample_size;
  int n_levels;                          /* len(block_out_channels) */
  int block_out_channels[SD_MAX_LEVELS];
  int layers_per_block;
  int down_has_attn[SD_MAX_LEVELS];      /* CrossAttnDownBlock2D vs DownBlock2D, per level */
  int up_has_attn[SD_MAX_LEVELS];        /* per up block, in diffusers up_blocks order */
  int mid_has_attn;
  int heads[SD_MAX_LEVELS];              /* attention heads per level (resolved from
                                            attention_head_dim / num_attention_heads) */
  int head_dim[SD_MAX_LEVELS];           /* channels / heads */
  int transformer_layers;                /* transformer_layers_per_block (1 for SD 1.x/2.x) */
  int cross_attention_dim;
  int use_linear_projection;             /* SD 2.x: 1 */
  int norm_num_groups;
  float norm_eps;
  int time_embed_in, time_embed_dim;     /* sinusoidal width (= block_out_channels[0]), MLP out */
  int flip_sin_to_cos, freq_shift;
  int prediction_v;                      /* 1 if v-prediction (from scheduler config) */
} sd_unet_config;

typedef struct sd_vae_config {
  int in_channels, out_channels, latent_channels;
  int n_levels;
  int block_out_channels[SD_MAX_LEVELS];
  int layers_per_block;
  int norm_num_groups;
  float scaling_factor;
  int sample_size;
} sd_vae_config;

#endif
