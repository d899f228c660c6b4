/* The Stable Diffusion VAE (diffusers AutoencoderKL), decoder and encoder, for any
 * configuration the model source reports (levels, widths, layers per block, GroupNorm
 * groups, latent channels): SD 1.x/2.x (128, 256, 512, 512; 2 layers; 4 latent channels)
 * and the small test models alike.
 *
 * Decoder: post_quant_conv (1x1) -> conv_in -> mid block [ResNet, single-head attention
 * (GroupNorm, q/k/v, out projection, + residual), ResNet] -> up blocks of layers_per_block+1
 * ResNets (+ nearest 2x upsample and 3x3 conv, except the last) -> GroupNorm -> SiLU ->
 * conv_out. Encoder: conv_in -> down blocks of layers_per_block ResNets (+ zero pad right and
 * bottom by one, then 3x3 conv stride 2, except the last) -> mid block -> GroupNorm -> SiLU ->
 * conv_out -> quant_conv (1x1) -> moments (mean, logvar). All GroupNorms use eps 1e-6.
 *
 * LATENT SCALING: both directions work in the sampler's latent space. sd_vae_decode takes
 * the latents as the sampler leaves them and divides by the configuration's scaling_factor
 * itself (diffusers: vae.decode(latents / scaling_factor)); sd_vae_encode returns
 * mean * scaling_factor (or a posterior sample times scaling_factor), ready for the sampler.
 * Callers never touch scaling_factor.
 *
 * Memory: weights stay in the stored dtype (views into the mapped file); biases and norm
 * gains are widened to float32 once at creation. Activations (float32) live in one arena
 * per call whose size sd_vae_*_arena_bytes() gives before anything runs: the pass is planned
 * once without computing (the same code path, allocations only), so the figure is exact.
 * The arena is used from both ends (a stage reads at one end and writes at the other), the
 * 2x-upsample + conv is computed in row bands (the upsampled tensor is never materialised),
 * and the 4096x4096 (at 512 px) mid-block attention goes through the tiled sd_op_attention.
 */
#ifndef SD_MODELS_VAE_H
#define SD_MODELS_VAE_H

#include <stddef.h>
#include <stdint.h>

#include "core/ops.h"
#include "models/model_source.h"

typedef struct sd_vae sd_vae;

/* Resolve and shape-check every VAE weight of m (which must outlive the sd_vae). */
int sd_vae_create(const sd_model_source *m, sd_vae **out);
void sd_vae_free(sd_vae *v);
const sd_vae_config *sd_vae_cfg(const sd_vae *v);
/* Image pixels per latent pixel along each axis: 2^(n_levels-1) (8 for SD). */
int sd_vae_factor(const sd_vae *v);

/* Activation memory (bytes) of one decode of an h x w latent / one encode of an H x W
 * image; 0 if the size is invalid (see the decode/encode limits below). */
size_t sd_vae_decode_arena_bytes(const sd_vae *v, int h, int w);
size_t sd_vae_encode_arena_bytes(const sd_vae *v, int H, int W);
/* The larger of the two, for callers that keep one figure. */
size_t sd_vae_arena_bytes(const sd_vae *v, int h, int w);

/* Decode latents[latent_channels, h, w] (sampler space, NOT yet divided by scaling_factor)
 * into image[out_channels, h*f, w*f] (f = sd_vae_factor), the raw decoder output (about
 * [-1, 1]; not clamped). 1 <= h, w and h*f, w*f <= 16384. */
int sd_vae_decode(sd_vae *v, sd_exec *ex, const float *latents, int h, int w, float *image);

/* Tiled decoding (models/vae_tiled.c), diffusers' AutoencoderKL.tiled_decode: tiles of
 * tile_px pixels (0 = the configuration's sample_size, as diffusers), overlapping by a
 * quarter and blended linearly; a latent no larger than one tile decodes as sd_vae_decode
 * does. tile_px must be a positive multiple of 4·f (so the kept parts tile the image
 * exactly). Same arguments and output as sd_vae_decode otherwise. */
int sd_vae_decode_tiled(sd_vae *v, sd_exec *ex, const float *latents, int h, int w, int tile_px, float *image);
/* SD_OK when tile_px (0: the sample_size; negative: invalid) is a valid tile size, with *tile_latent its size in
 * latent pixels; else SD_E_ARG with the reason. */
int sd_vae_tile_check(const sd_vae *v, int tile_px, int *tile_latent);
/* Activation memory of a tiled decode (one tile's), 0 if tile_px is invalid. */
size_t sd_vae_decode_tiled_arena_bytes(const sd_vae *v, int h, int w, int tile_px);

/* Standard-normal source for posterior sampling: fill out[0..n) with N(0, 1) draws (an
 * sd_rng or a torch.randn-compatible generator). Returns SD_OK or an error. */
typedef int (*sd_vae_noise_fn)(void *ctx, float *out, int64_t n);

/* Encode image[in_channels, H, W] (values in [-1, 1]) into latents[latent_channels, H/f, W/f]
 * in sampler space: noise == NULL gives the posterior mean * scaling_factor (the mode);
 * otherwise (mean + exp(0.5 * clamp(logvar, -30, 20)) * noise) * scaling_factor with the
 * noise drawn from noise(noise_ctx, ., latent_channels*(H/f)*(W/f)), as diffusers'
 * latent_dist.sample(generator) * scaling_factor. H and W must be positive multiples of f. */
int sd_vae_encode(sd_vae *v, sd_exec *ex, const float *image, int H, int W, sd_vae_noise_fn noise,
                  void *noise_ctx, float *latents);

/* FLOPs of one decode of an h x w latent / one encode of an H x W image (multiply-add = 2;
 * convolutions, projections and attention), for benchmarks. */
double sd_vae_decode_flops(const sd_vae *v, int h, int w);
double sd_vae_encode_flops(const sd_vae *v, int H, int W);
/* Same as sd_vae_decode_flops. */
double sd_vae_flops(const sd_vae *v, int h, int w);

/* Map a decoded image[3, H, W] to 8-bit RGB rgb[H, W, 3] (HWC) exactly as the diffusers
 * pipeline + numpy do: v = clamp(x / 2 + 0.5, 0, 1) in float32, then round(v * 255) with
 * ties to even (NaN -> 0). */
void sd_vae_to_rgb8(const float *image, int H, int W, uint8_t *rgb);

/* Debugging / conformance: when set, the hook sees the output of each top-level module as it
 * is produced, named as the diffusers module ("post_quant_conv", "decoder.conv_in",
 * "decoder.mid_block", "decoder.up_blocks.1", "decoder.conv_norm_out" (before SiLU),
 * "encoder.down_blocks.0", "encoder.conv_out", "quant_conv", ...); data is [C, H, W]
 * float32, valid during the call only. NULL disables it. */
/* Testing: cap the output rows per band of the fused upsample + conv (0 = automatic, from a
 * fixed scratch budget), so tests can force many small bands. Results agree within float
 * rounding (the convolution's GEMM blocking depends on the band size); for a given setting
 * they are deterministic. */
void sd_vae_set_band_rows(sd_vae *v, int rows);

typedef void (*sd_vae_hook_fn)(void *ctx, const char *name, const float *data, int C, int H, int W);
void sd_vae_set_hook(sd_vae *v, sd_vae_hook_fn fn, void *ctx);

#endif
