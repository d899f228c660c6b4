/* CLIP vision tower with projection: the image side of the evaluation classifiers (Q16, the
 * SD safety checker). transformers' CLIPVisionModelWithProjection / the vision half of
 * CLIPModel, written from their public description:
 *
 *   pixels [3, S, S] → patch embedding (Conv2d 3→D, kernel = stride = p, no bias) → [CLS] +
 *   patches + learned positions → pre_layrnorm → L pre-LayerNorm encoder layers (full, not
 *   causal, multi-head self-attention; MLP with quick_gelu or gelu) → post_layernorm of the
 *   [CLS] state → visual_projection (no bias) → image_embeds [projection_dim].
 *
 * Files (a folder): config.json and model.safetensors (or model.fp16.safetensors).
 *  - config.json: a CLIPModel config (vision settings under "vision_config"; the legacy
 *    "vision_config_dict", where present, replaces it entirely, defaults filling the keys
 *    it lacks, as in transformers; projection_dim at the top level) or a CLIPVisionConfig
 *    (everything at the top level). Keys and defaults
 *    of CLIPVisionConfig: hidden_size 768, num_hidden_layers 12, num_attention_heads 12,
 *    intermediate_size 3072, image_size 224, patch_size 32, num_channels 3 (only 3),
 *    hidden_act "quick_gelu" ("gelu" = exact erf GELU), layer_norm_eps 1e-5,
 *    projection_dim 512.
 *  - weights (F32, F16 or BF16; kept in stored precision, widened per op):
 *    vision_model.embeddings.{class_embedding [D], patch_embedding.weight [D,3,p,p],
 *    position_embedding.weight [(S/p)²+1, D]}, vision_model.pre_layrnorm.{weight,bias},
 *    vision_model.encoder.layers.N.{self_attn.{q,k,v,out}_proj, layer_norm1, mlp.fc1,
 *    mlp.fc2, layer_norm2}.{weight,bias}, vision_model.post_layernorm.{weight,bias},
 *    visual_projection.weight [P, D]. The SD safety checker's folder stores the tower one
 *    level deeper (vision_model.vision_model.*; detected automatically) plus its concept
 *    tensors (read with sd_clip_vision_extra_f32).
 * The file is untrusted: every tensor is looked up with its expected shape and dtype, a
 * layer beyond num_hidden_layers is an error, and every error names the file and tensor.
 *
 * Preprocessing (transformers' CLIPImageProcessor with the CLIP defaults, for uint8 RGB):
 *  1. resize so that the shortest side is S: new short = S, new long = int(S·long/short)
 *     (truncated), with Pillow's BICUBIC resampling on uint8 (Image.resize, reducing_gap
 *     None): the same two passes (horizontal, then vertical, each rounding to uint8), the
 *     same antialiasing support (2·max(1, in/out)), the same a = -0.5 cubic kernel, and the
 *     same 22-bit fixed-point coefficients, so the bytes equal Pillow's (the conformance test
 *     requires byte equality against Pillow 9.4); no resize when the size already fits;
 *  2. center crop S×S at top = (H'-S)//2, left = (W'-S)//2 (transformers' rule; torchvision's
 *     CenterCrop rounds the offset instead, which differs by one pixel for odd margins);
 *  3. x = float32(u8 · (1/255) in double), then (x - mean) / std in float32 with mean
 *     (0.48145466, 0.4578275, 0.40821073), std (0.26862954, 0.26130258, 0.27577711).
 * Only the cropped window of the resized image is computed (the result is identical), so
 * extreme aspect ratios cost no more than the crop.
 */
#ifndef SD_JUDGE_CLIP_VISION_H
#define SD_JUDGE_CLIP_VISION_H

#include <stddef.h>
#include <stdint.h>

#include "core/ops.h"
#include "models/model_source.h" /* sd_activation */

typedef struct sd_clip_vision_config {
  int hidden, layers, heads, intermediate;
  int image_size, patch_size;
  int projection_dim;
  sd_activation act;
  float ln_eps;
} sd_clip_vision_config;

/* An 8-bit RGB image: height rows of width*3 bytes, no padding. */
typedef struct sd_rgb8_image {
  const uint8_t *rgb;
  int width, height;
} sd_rgb8_image;

/* Limits on what the loader and the preprocessing accept. */
#define SD_CLIP_VISION_MAX_GRID 64     /* patches per side (ViT-L/14 at 224 px: 16) */
#define SD_CLIP_IMAGE_MAX_SIDE 65535   /* input image width / height */

typedef struct sd_clip_vision sd_clip_vision;

/* Load from a folder (config.json + model.safetensors, else model.fp16.safetensors). */
int sd_clip_vision_load(const char *dir, sd_clip_vision **out);
void sd_clip_vision_free(sd_clip_vision *cv);
const sd_clip_vision_config *sd_clip_vision_cfg(const sd_clip_vision *cv);
/* The weights file (for messages). */
const char *sd_clip_vision_file(const sd_clip_vision *cv);
/* 1 if the tower was stored as in the SD safety checker (vision_model.vision_model.*). */
int sd_clip_vision_is_safety_layout(const sd_clip_vision *cv);

/* Another tensor of the same file (full name, e.g. "concept_embeds"), checked against ndim
 * and shape (shape[i] < 0: any size) and dtype (F32/F16/BF16), widened into a new malloc'ed
 * float32 array (*out; caller frees). got_shape (may be NULL) receives the shape. */
int sd_clip_vision_extra_f32(const sd_clip_vision *cv, const char *name, int ndim,
                             const int64_t *shape, int64_t *got_shape, float **out);

/* Steps 1-2 of the preprocessing: out[size, size, 3] uint8 (the bytes CLIPImageProcessor
 * gets from Pillow, cropped). size in [1, 4096]; image sides in [1, SD_CLIP_IMAGE_MAX_SIDE]. */
int sd_clip_resize_crop_rgb8(const sd_rgb8_image *img, int size, uint8_t *out);
/* All three steps: out[3, size, size] float32 (CHW). */
int sd_clip_preprocess(const sd_rgb8_image *img, int size, float *out);

/* Activation memory of one forward pass over a batch of n images (bytes). */
size_t sd_clip_vision_arena_bytes(const sd_clip_vision *cv, int n);

/* image_embeds (projected, NOT normalised) of n preprocessed images pixels[n, 3, S, S]
 * (S = image_size) into out[n, projection_dim]. */
int sd_clip_vision_embed_pixels(sd_clip_vision *cv, sd_exec *ex, const float *pixels, int n,
                                float *out);
/* Preprocess and embed n images of any size (batches of up to SD_CLIP_VISION_BATCH). */
#define SD_CLIP_VISION_BATCH 8
int sd_clip_vision_embed(sd_clip_vision *cv, sd_exec *ex, const sd_rgb8_image *images, int n,
                         float *out);

/* L2-normalise n rows of d values in place (x / max(‖x‖, 1e-12), like F.normalize). */
void sd_l2_normalize_rows(float *x, int64_t n, int64_t d);

#endif
