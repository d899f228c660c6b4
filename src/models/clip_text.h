/* CLIP text encoder (the text tower of SD 1.x's CLIP ViT-L/14, and of the same shape at any
 * width/depth: the bundled model and the golden test models use it too).
 *
 * tokens → token embedding + learned positions → L pre-LayerNorm transformer layers (causal
 * multi-head self-attention, MLP with quick-GELU or GELU) → final LayerNorm.
 * Weights stay in the checkpoint's dtype (views into the mapped file); small vectors
 * (biases, norms) are widened to float32 once at creation.
 */
#ifndef SD_MODELS_CLIP_TEXT_H
#define SD_MODELS_CLIP_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "core/ops.h"
#include "models/model_source.h"

typedef struct sd_clip_text sd_clip_text;

/* Resolve and shape-check every weight of the text encoder of m (which must outlive it). */
int sd_clip_text_create(const sd_model_source *m, sd_clip_text **out);
void sd_clip_text_free(sd_clip_text *te);
const sd_clip_text_config *sd_clip_text_cfg(const sd_clip_text *te);

typedef struct sd_clip_text_opts {
  /* 1 = last layer (no skip, the SD 1.x default); 2 = penultimate layer ("clip skip 2"),
   * and so on: the output of layer L-(clip_skip-1). */
  int clip_skip;
  /* Apply the final LayerNorm (1, what SD feeds the UNet) or return raw hidden states. */
  int final_norm;
} sd_clip_text_opts;

/* Activation memory one encode of batch × seq tokens needs (bytes; allocated per call). */
size_t sd_clip_text_arena_bytes(const sd_clip_text *te, int batch, int seq);

/* Encode batch sequences of seq token ids (row-major [batch, seq]) into
 * out[batch, seq, hidden]. Ids must be in [0, vocab); seq ≤ max_positions. */
int sd_clip_text_encode(sd_clip_text *te, sd_exec *ex, const int32_t *ids, int batch, int seq,
                        const sd_clip_text_opts *opts, float *out);

/* FLOPs of one encode (multiply-add = 2), for benchmarks. */
double sd_clip_text_flops(const sd_clip_text *te, int batch, int seq);

#endif
