/* The text side of a two-tower CLIPModel folder (config.json + model.safetensors with
 * text_model.*, vision_model.*, visual_projection, text_projection, logit_scale): transformers'
 * CLIPModel.get_text_features / tools/ref/sdref_clip.py's CLIPModel.text_embeds:
 *
 *   ids (BOS, tokens, EOS, padding to 77) → the CLIP text transformer (models/clip_text.h,
 *   reused as is: final-LayerNorm states, clip skip 1) → the state at the FIRST end-of-text
 *   token of the sequence (the pooled output) → text_projection (no bias) → text_embeds.
 *
 * The text tower is built by models/clip_text.c from a model source opened on a temporary
 * diffusers-shaped view of the folder (model_index.json, text_encoder/config.json = the
 * folder's "text_config", text_encoder/model.safetensors = a link to the folder's weights,
 * tokenizer/ = a link to the tokenizer folder given), removed again right after loading; the
 * tensors other than text_model.* are ignored there. The tokenizer is the SD model's (the
 * bundled model's CLIP was trained with it).
 */
#ifndef SD_JUDGE_CLIP_TEXTPROJ_H
#define SD_JUDGE_CLIP_TEXTPROJ_H

#include "core/ops.h"

typedef struct sd_clip_textproj sd_clip_textproj;

/* clip_dir: the CLIPModel folder; model_dir: a diffusers folder whose tokenizer/ tokenizes for
 * it. */
int sd_clip_textproj_load(const char *clip_dir, const char *model_dir, sd_clip_textproj **out);
void sd_clip_textproj_free(sd_clip_textproj *t);
int sd_clip_textproj_dim(const sd_clip_textproj *t);
/* text_embeds (projected, NOT normalised) of n texts into out[n, dim]. */
int sd_clip_textproj_embed(sd_clip_textproj *t, sd_exec *ex, const char *const *texts, int n, float *out);

#endif
