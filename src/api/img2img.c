/* Image to image and inpainting (docs/img2img.md): diffusers' StableDiffusionImg2ImgPipeline
 * and, with a mask, StableDiffusionInpaintPipeline for 4-channel UNets, in C.
 *
 *   image (8-bit RGB) -> x / 255 -> 2x - 1 -> VAE encode -> posterior sample (the seed's
 *   generator) x scaling_factor = z0 (one image, repeated over the batch)
 *   init_timestep = min(int(steps x strength), steps), t_start = steps - init_timestep
 *   noise = randn([B,4,h,w]) from the same generator
 *   latents = scheduler.add_noise(z0, noise, timesteps[t_start]); the sampler starts there
 *
 * Inpainting (mask: white = repaint): the mask goes to gray (Pillow's "L" luma), is binarised
 * at 0.5 and sampled nearest down to the latent grid (torch interpolate); the masked image
 * is encoded too (one more posterior draw, as diffusers does for any UNet) but a 4-channel
 * UNet does not use it; at strength 1 the latents are the noise x init_noise_sigma (diffusers'
 * is_strength_max); after every step outside the mask the latents are z0 noised to the next
 * timestep (the clean z0 after the last).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "core/error.h"
#include "io/png.h"

/* Pillow's RGB -> "L" conversion (ITU-R 601-2 luma, fixed point, rounded). */
static int luma8(const uint8_t *px) { return (px[0] * 19595 + px[1] * 38470 + px[2] * 7471 + 0x8000) >> 16; }

int sd_api_init_check(const sd_vae *vae, const safesd_gen_params *p) {
  if (!p->init_image) {
    if (p->mask_image) return sd_fail(SD_E_ARG, "a mask needs an init image (inpainting repaints part of one)");
    return SD_OK;
  }
  if (p->init_width <= 0 || p->init_height <= 0)
    return sd_fail(SD_E_ARG, "init image size %dx%d is invalid", p->init_width, p->init_height);
  if (p->width != p->init_width || p->height != p->init_height)
    return sd_fail(SD_E_ARG, "the init image is %dx%d but the requested size is %dx%d (give no width/height, or "
                   "resize the image)", p->init_width, p->init_height, p->width, p->height);
  if (!(p->strength >= 0.0 && p->strength <= 1.0))
    return sd_fail(SD_E_ARG, "strength %g is out of range (0..1)", p->strength);
  int t_start;
  int init = sd_strength_steps(p->steps, p->strength, &t_start);
  if (init < 0) return init;
  if (init == 0)
    return sd_fail(SD_E_ARG, "strength %g with %d steps runs no step (int(steps x strength) = 0): raise the strength or "
                   "the steps", p->strength, p->steps);
  if (vae && sd_vae_encode_arena_bytes(vae, p->height, p->width) == 0) return sd_fail_prefix(SD_E_ARG, "init image: ");
  return SD_OK;
}

static int rng_noise(void *ctx, float *out, int64_t n) {
  sd_rng_randn((sd_rng *)ctx, out, n);
  return SD_OK;
}

void sd_api_init_free(sd_init_state *is) {
  free(is->z0);
  free(is->noise);
  free(is->mask);
  free(is->extra);
  free(is->scaled);
  memset(is, 0, sizeof *is);
}

/* The image's pixels in [-1, 1], planar [3, H, W], as VaeImageProcessor: x / 255 then 2x - 1
 * in float32; masked: pixels to repaint set to 0 (init_image * (mask < 0.5)). */
static void to_planar(const uint8_t *rgb, const uint8_t *keep, int H, int W, float *out) {
  const int64_t HW = (int64_t)H * W;
  for (int64_t q = 0; q < HW; q++)
    for (int c = 0; c < 3; c++) {
      float x = (float)rgb[q * 3 + c] / 255.0f;
      float v = 2.0f * x - 1.0f;
      out[c * HW + q] = keep && !keep[q] ? v * 0.0f : v;
    }
}

int sd_api_init_latents(safesd_model *m, const safesd_gen_params *p, const sd_schedule *sched, sd_sampler_state *st,
                        sd_rng *rng, int C, int h, int w, sd_init_state *is, float *lat) {
  memset(is, 0, sizeof *is);
  const int H = p->height, W = p->width, B = p->batch;
  const int64_t per = (int64_t)C * h * w, n = per * B, HW = (int64_t)H * W;
  int t_start, rc;
  if ((rc = sd_strength_steps(p->steps, p->strength, &t_start)) < 0) return rc;
  const int masked = p->mask_image != NULL;
  is->t_start = t_start;
  is->unet9 = masked && sd_unet_cfg(m->unet)->in_channels == 2 * C + 1;
  is->inpaint = masked && !is->unet9; /* the 4-channel blend */
  is->n = n;
  is->plane = (int64_t)h * w;
  const int64_t pe = (int64_t)(1 + C) * h * w; /* 9-channel UNet: mask + masked-image latents */
  float *img = malloc(sizeof(float) * 3 * HW);
  uint8_t *keep = masked ? malloc((size_t)HW) : NULL;
  is->z0 = malloc(sizeof(float) * n);
  is->noise = malloc(sizeof(float) * n);
  is->mask = masked ? malloc((size_t)h * w) : NULL;
  if (is->unet9) {
    is->extra = malloc(sizeof(float) * pe * B);
    is->scaled = malloc(sizeof(float) * n);
  }
  if (!img || !is->z0 || !is->noise || (masked && (!keep || !is->mask)) || (is->unet9 && (!is->extra || !is->scaled))) {
    rc = sd_fail(SD_E_NOMEM, "init image: out of memory");
    goto done;
  }
  if (masked) {
    /* binarised full-size mask (1 = repaint), then nearest-neighbour down to the latent grid:
     * with an exact factor f, latent (y, x) takes pixel (f·y, f·x) */
    const int f = H / h;
    for (int64_t q = 0; q < HW; q++) keep[q] = (float)luma8(p->mask_image + q * 3) / 255.0f < 0.5f;
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++) is->mask[(int64_t)y * w + x] = !keep[(int64_t)y * f * W + (int64_t)x * f];
  }
  /* z0: one posterior sample of the one image, repeated over the batch (a 9-channel UNet at
   * strength 1 starts from noise alone: diffusers encodes nothing then, and draws nothing) */
  if (!is->unet9 || p->strength < 1.0) {
    to_planar(p->init_image, NULL, H, W, img);
    if ((rc = sd_vae_encode(m->vae, m->ex, img, H, W, rng_noise, rng, is->z0))) goto done;
    for (int b = 1; b < B; b++) memcpy(is->z0 + b * per, is->z0, sizeof(float) * per);
  }
  sd_rng_randn(rng, is->noise, n);
  if (masked) {
    /* the masked image's latents: a 9-channel UNet's conditioning; a 4-channel UNet does not
     * use them, but they are drawn as diffusers draws them (the random stream stays aligned),
     * into lat, overwritten below */
    float *ml = is->unet9 ? is->extra + (int64_t)h * w : lat;
    to_planar(p->init_image, keep, H, W, img);
    if ((rc = sd_vae_encode(m->vae, m->ex, img, H, W, rng_noise, rng, ml))) goto done;
    if (is->unet9)
      for (int b = 0; b < B; b++) {
        float *e = is->extra + b * pe;
        if (b) memcpy(e + (int64_t)h * w, ml, sizeof(float) * per);
        for (int64_t q = 0; q < (int64_t)h * w; q++) e[q] = is->mask[q] ? 1.0f : 0.0f;
      }
  }
  if (masked && p->strength == 1.0) {
    const float k = sd_schedule_init_noise_sigma(sched);
    for (int64_t i = 0; i < n; i++) lat[i] = is->noise[i] * k;
  } else if ((rc = sd_sampler_add_noise(sched, t_start, is->z0, is->noise, lat, n))) {
    goto done;
  }
  rc = sd_sampler_begin_at(sched, st, t_start);
done:
  free(img);
  free(keep);
  if (rc) sd_api_init_free(is);
  return rc;
}

int sd_api_inpaint_blend(const sd_schedule *sched, const sd_init_state *is, int next, float *lat, float *tmp) {
  if (!is->inpaint) return SD_OK;
  const float *proper = is->z0;
  if (next < sd_schedule_len(sched)) {
    int rc = sd_sampler_add_noise(sched, next, is->z0, is->noise, tmp, is->n);
    if (rc) return rc;
    proper = tmp;
  }
  for (int64_t i = 0; i < is->n; i++) /* (1 - m)·proper + m·latents with a 0/1 mask */
    if (!is->mask[i % is->plane]) lat[i] = proper[i];
  return SD_OK;
}

int safesd_read_png(const char *path, uint8_t **rgb, int *width, int *height) {
  if (!path || !rgb || !width || !height) return sd_fail(SD_E_ARG, "read PNG: NULL argument");
  return sd_png_read_rgb8(path, rgb, width, height);
}

int safesd_decode_png(const uint8_t *png, size_t size, uint8_t **rgb, int *width, int *height) {
  if (!rgb || !width || !height) return sd_fail(SD_E_ARG, "decode PNG: NULL argument");
  return sd_png_decode_rgb8(png, size, NULL, rgb, width, height);
}
