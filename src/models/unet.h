/* The Stable Diffusion denoiser: diffusers' UNet2DConditionModel, for any configuration the
 * model source reports (sd_unet_config: levels and widths, layers per block, attention per
 * level, heads per level, cross-attention width, 1x1-conv or linear proj_in/out,
 * transformer layers, GroupNorm groups/eps, timestep embedding flip/shift): SD 1.x, SD 2.x
 * and the small test models alike.
 *
 *   t -> sinusoidal embedding -> Linear -> SiLU -> Linear = temb
 *   x -> conv_in -> down blocks [ResNet (+ Transformer2D)] x layers (+ 3x3 conv stride 2)
 *     -> mid block [ResNet, Transformer2D, ResNet] (UNetMidBlock2D: one ResNet, as diffusers builds it)
 *     -> up blocks [concat skip, ResNet (+ Transformer2D)] x (layers+1) (+ nearest 2x, 3x3 conv)
 *     -> GroupNorm -> SiLU -> conv_out
 *   ResNet: GN -> SiLU -> conv3x3 -> + Linear(SiLU(temb)) -> GN -> SiLU -> conv3x3
 *           -> + shortcut (1x1 conv when the channel count changes)
 *   Transformer2D: GN (eps 1e-6) -> proj_in -> [LN -> self-attn -> +] [LN -> cross-attn on
 *           the text context -> +] [LN -> GEGLU feed-forward (4x) -> +] -> proj_out -> + input
 *
 * Memory: weights stay in the stored dtype (views into the mapped file; an F16 weight is
 * widened into the exec's scratch only while its op runs, once per batch); biases and norm
 * gains are widened to float32 once at creation. Activations (float32) live in one arena per
 * forward whose size sd_unet_arena_bytes() gives before anything runs: the forward is
 * planned once without computing (the same code path, allocations only), so the figure is
 * exact. The arena holds the skip connections (all of them, written in place as the down
 * path produces them), two hidden-state buffers and a concat buffer for the up path, and the
 * scratch of the widest block, reused block after block. Transformers run on at most 4096
 * tokens at a time (whole images) and the feed-forward in row chunks that fit the attention
 * phase's scratch, so their scratch does not grow with the batch; attention never builds the
 * score matrix (sd_op_attention). SD 1.5, batch 2, 64x64: 156 MiB (51 MiB of skips).
 */
#ifndef SD_MODELS_UNET_H
#define SD_MODELS_UNET_H

#include <stddef.h>
#include <stdint.h>

#include "core/ops.h"
#include "models/model_source.h"

typedef struct sd_unet sd_unet;

/* Resolve and shape-check every UNet weight of m (which must outlive the sd_unet). */
int sd_unet_create(const sd_model_source *m, sd_unet **out);
void sd_unet_free(sd_unet *u);
const sd_unet_config *sd_unet_cfg(const sd_unet *u);
/* Latent sizes must be multiples of this: 2^(n_levels-1) (8 for SD). */
int sd_unet_factor(const sd_unet *u);

/* Activation memory (bytes) of one forward of B latents of h x w with ctx_len context
 * tokens; 0 if the sizes are invalid. */
size_t sd_unet_arena_bytes(const sd_unet *u, int B, int h, int w, int ctx_len);

/* FLOPs of one forward (multiply-add = 2; convolutions, projections, attention), for
 * benchmarks. 0 if the sizes are invalid. */
double sd_unet_flops(const sd_unet *u, int B, int h, int w, int ctx_len);

/* Predict the noise (or v) for B latents x[B, in_channels, h, w] at one timestep with
 * per-sample context[B, ctx_len, cross_attention_dim] (the text encoder's hidden states) into
 * out[B, out_channels, h, w]. h and w: positive multiples of sd_unet_factor(); out must not
 * alias x. */
int sd_unet_forward(sd_unet *u, sd_exec *ex, const float *x, int B, int h, int w, float timestep,
                    const float *context, int ctx_len, float *out);

/* Debug hook: called during sd_unet_forward with the output of every top-level module, under
 * the diffusers module names ("time_proj", "time_embedding", "conv_in", "down_blocks.N",
 * "mid_block", "up_blocks.N", "conv_norm_out" (GroupNorm output, before SiLU), "conv_out"),
 * as float32 row-major data of the given shape, valid only during the call. NULL disables. */
typedef void (*sd_unet_debug_fn)(void *user, const char *name, const float *data, int ndim,
                                 const int64_t *shape);
void sd_unet_set_debug(sd_unet *u, sd_unet_debug_fn fn, void *user);

#endif
