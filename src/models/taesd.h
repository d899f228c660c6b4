/* TAESD, the tiny autoencoder's decoder (madebyollin/taesd; diffusers AutoencoderTiny): a
 * fast, lower-quality replacement for the VAE decoder, as stable-diffusion.cpp's --taesd.
 *
 *   x = tanh(z / 3) · 3                      (z: the sampler's latents, 4 channels)
 *   conv 3x3 (4 -> 64) + ReLU
 *   3 × [3 Blocks, nearest 2x upsample, conv 3x3 (no bias)]
 *   1 Block, conv 3x3 (64 -> 3)              -> the image in [0, 1] (not clamped)
 *   Block(x) = ReLU(conv(ReLU(conv(ReLU(conv(x))))) + x)
 *
 * Weights: taesd_decoder.safetensors as madebyollin/taesd ships it (nn.Sequential indices:
 * "1.weight", "3.conv.0.weight", ... "19.bias"), or a diffusers AutoencoderTiny folder's
 * file (decoder.layers.N..., the same modules one index lower). Channels, blocks and
 * upsamplings are read from the weights' shapes and checked. */
#ifndef SD_MODELS_TAESD_H
#define SD_MODELS_TAESD_H

#include "core/ops.h"

typedef struct sd_taesd sd_taesd;

/* Open and check a weights file (a .safetensors file, or a diffusers AutoencoderTiny folder:
 * its diffusion_pytorch_model.safetensors). */
int sd_taesd_open(const char *path, sd_taesd **out);
void sd_taesd_free(sd_taesd *t);
/* Latent channels and the upscale factor (8 for SD's TAESD). */
int sd_taesd_latent_channels(const sd_taesd *t);
int sd_taesd_factor(const sd_taesd *t);
/* Decode latents[C, h, w] (sampler space) into image[3, h·f, w·f] in about [-1, 1] (the VAE
 * decoder's range: 2·TAESD − 1, as diffusers' AutoencoderTiny.decode); images up to 2048×2048 pixels. */
int sd_taesd_decode(sd_taesd *t, sd_exec *ex, const float *latents, int h, int w, float *image);

#endif
