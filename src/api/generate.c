/* Text to image: the diffusers StableDiffusionPipeline.__call__ loop, in C.
 *
 *   ids = tokenize(prompt), tokenize(negative or "")
 *   context = text_encoder([uncond, cond])                        (once)
 *   latents = randn([B,4,h,w], generator(seed)) * init_noise_sigma
 *   for t in timesteps:
 *     eps_u, eps_c = unet(scale_input([latents, latents]), t, [uncond×B, cond×B])
 *     latents = sampler.step(eps_u + w (eps_c − eps_u), latents)  (the same generator)
 *   image = vae.decode(latents / scaling_factor) → (x/2 + 0.5).clamp(0,1) → ×255, round
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "safesd.h"

#include "api/api_internal.h"
#include "core/error.h"
#include "io/png.h"
#include "sampling/rng.h"
#include "sampling/sampler.h"
#include "sampling/schedule.h"

#define GEN_MAX_SIDE 4096
#define GEN_MAX_BATCH 64
#define GEN_MAX_STEPS 1000
/* Refuse a request whose activation memory alone would exceed this. */
#define GEN_MAX_ARENA ((size_t)64 << 30)

void safesd_gen_defaults(safesd_gen_params *p) {
  memset(p, 0, sizeof *p);
  p->cfg_scale = 7.5f;
  p->batch = 1;
  p->clip_skip = 1;
}

static int need_image_side(safesd_model *m) {
  int rc;
  if ((rc = sd_api_need_text(m))) return rc;
  if ((rc = sd_model_need(m->src, SD_COMP_UNET)) || (rc = sd_model_need(m->src, SD_COMP_VAE))) return rc;
  if (!m->unet && (rc = sd_unet_create(m->src, &m->unet))) return rc;
  if (!m->vae && (rc = sd_vae_create(m->src, &m->vae))) return rc;
  return SD_OK;
}

/* The scheduler configuration: the model's scheduler_config.json (diffusers from_config
 * semantics) or, for single files without one, the SD 1.x configuration; then the
 * requested sampler / schedule on top. */
static int sched_config(safesd_model *m, const safesd_gen_params *p, sd_sched_config *c) {
  sd_sampler_kind kind = SD_SAMPLER_AUTO;
  int rc;
  if (p->sampler && (rc = sd_sampler_kind_parse(p->sampler, &kind))) return rc;
  const char *path = sd_model_scheduler_path(m->src);
  if (path) {
    if ((rc = sd_sched_config_load(path, kind, c))) return rc;
  } else {
    sd_sched_config_sd15(c, kind == SD_SAMPLER_AUTO ? SD_SAMPLER_PNDM : kind);
    c->prediction = sd_model_unet_config(m->src)->prediction_v ? SD_PRED_V : SD_PRED_EPSILON;
  }
  if (p->schedule) {
    sd_sigma_schedule sg;
    if ((rc = sd_sigma_schedule_parse(p->schedule, &sg))) return rc;
    c->sigmas = sg;
  }
  return sd_sched_config_check(c);
}

int safesd_gen_resolve(safesd_model *m, safesd_gen_params *p) {
  int rc;
  if (!p->prompt) return sd_fail(SD_E_ARG, "no prompt given");
  if ((rc = need_image_side(m))) return rc;
  const sd_unet_config *uc = sd_unet_cfg(m->unet);
  int vf = sd_vae_factor(m->vae), uf = sd_unet_factor(m->unet);
  int native = (uc->sample_size > 0 ? uc->sample_size : 64) * vf;
  if (p->width == 0) p->width = native;
  if (p->height == 0) p->height = native;
  if (p->width < 0 || p->height < 0 || p->width > GEN_MAX_SIDE || p->height > GEN_MAX_SIDE)
    return sd_fail(SD_E_ARG, "image size %dx%d is out of range (1..%d pixels a side)", p->width, p->height, GEN_MAX_SIDE);
  if (p->width % 8 || p->height % 8)
    return sd_fail(SD_E_ARG, "image size %dx%d: width and height must be multiples of 8", p->width, p->height);
  if (p->width % (vf * uf) || p->height % (vf * uf))
    return sd_fail(SD_E_ARG, "image size %dx%d: this model needs multiples of %d (its UNet halves the %dx%d latent %d times)",
                   p->width, p->height, vf * uf, p->width / vf, p->height / vf, uf == 1 ? 0 : (int)log2(uf));
  if (p->steps == 0) p->steps = 50;
  if (p->steps < 1 || p->steps > GEN_MAX_STEPS) return sd_fail(SD_E_ARG, "steps %d is out of range (1..%d)", p->steps, GEN_MAX_STEPS);
  if (p->batch == 0) p->batch = 1;
  if (p->batch < 1 || p->batch > GEN_MAX_BATCH) return sd_fail(SD_E_ARG, "batch %d is out of range (1..%d)", p->batch, GEN_MAX_BATCH);
  if (!(p->cfg_scale >= 0 && p->cfg_scale <= 100)) return sd_fail(SD_E_ARG, "CFG scale %g is out of range (0..100)", p->cfg_scale);
  if (p->clip_skip == 0) p->clip_skip = 1;
  const sd_clip_text_config *tc = sd_clip_text_cfg(m->text);
  if (p->clip_skip < 1 || p->clip_skip > tc->layers)
    return sd_fail(SD_E_ARG, "clip skip %d is out of range (1..%d)", p->clip_skip, tc->layers);
  sd_sched_config c;
  if ((rc = sched_config(m, p, &c))) return rc;
  p->sampler = sd_sampler_kind_name(c.kind);
  p->schedule = sd_sigma_schedule_name(c.sigmas);
  int h = p->height / vf, w = p->width / vf, B = p->batch, guided = p->cfg_scale > 1.0f;
  size_t need = sd_unet_arena_bytes(m->unet, guided ? 2 * B : B, h, w, SD_CLIP_CONTEXT) +
                sd_vae_decode_arena_bytes(m->vae, h, w);
  if (need == 0 || need > GEN_MAX_ARENA)
    return sd_fail(SD_E_NOMEM, "a %dx%d image, batch %d, would need %.1f GiB of activation memory", p->width,
                   p->height, B, (double)need / (1 << 30));
  return SD_OK;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int safesd_generate(safesd_model *m, const safesd_gen_params *p_in, uint8_t *rgb, float *latents_out) {
  safesd_gen_params p = *p_in;
  int rc = safesd_gen_resolve(m, &p);
  if (rc) return rc;
  const int vf = sd_vae_factor(m->vae), h = p.height / vf, w = p.width / vf, B = p.batch;
  const int guided = p.cfg_scale > 1.0f, Bu = guided ? 2 * B : B;
  const int D = sd_clip_text_cfg(m->text)->hidden, C = sd_unet_cfg(m->unet)->in_channels;
  const int64_t per = (int64_t)C * h * w, n = per * B;
  sd_sched_config sc;
  sd_schedule *sched = NULL;
  sd_sampler_state st;
  memset(&st, 0, sizeof st);
  float *ctx = NULL, *lat = NULL, *xin = NULL, *eps = NULL, *img = NULL;
  if ((rc = sched_config(m, &p, &sc)) || (rc = sd_schedule_create(&sc, p.steps, &sched)) ||
      (rc = sd_sampler_init(sched, n, &st)))
    goto done;

  /* conditioning: [uncond × B, cond × B] (or cond × B without guidance) */
  int32_t ids[2][SD_CLIP_CONTEXT];
  const int32_t pad = sd_clip_text_cfg(m->text)->pad_id;
  const char *neg = p.negative_prompt ? p.negative_prompt : "";
  if ((rc = sd_tokenize_prompt(m->tok, guided ? neg : p.prompt, pad, SD_CLIP_CONTEXT, ids[0])) < 0 ||
      (guided && (rc = sd_tokenize_prompt(m->tok, p.prompt, pad, SD_CLIP_CONTEXT, ids[1])) < 0))
    goto done;
  const int64_t ctx_per = (int64_t)SD_CLIP_CONTEXT * D;
  ctx = malloc(sizeof(float) * ctx_per * Bu);
  lat = malloc(sizeof(float) * n);
  xin = malloc(sizeof(float) * per * Bu);
  eps = malloc(sizeof(float) * per * Bu);
  if (!ctx || !lat || !xin || !eps) { rc = sd_fail(SD_E_NOMEM, "out of memory"); goto done; }
  {
    sd_clip_text_opts o = {p.clip_skip, 1};
    if ((rc = sd_clip_text_encode(m->text, m->ex, ids[0], guided ? 2 : 1, SD_CLIP_CONTEXT, &o, ctx))) goto done;
    /* ctx holds [u, c]; spread to [u × B, c × B] from the back so nothing is overwritten */
    const int groups = guided ? 2 : 1;
    for (int g = groups - 1; g >= 0; g--)
      for (int b = B - 1; b >= 0; b--)
        memmove(ctx + ((int64_t)g * B + b) * ctx_per, ctx + (int64_t)g * ctx_per, sizeof(float) * ctx_per);
  }

  sd_rng rng;
  sd_rng_seed(&rng, p.seed);
  sd_sampler_init_latents(sched, &rng, lat, n);
  const int total = sd_schedule_len(sched);
  for (int i = 0; !sd_sampler_done(sched, &st); i++) {
    double t0 = now_s();
    float t = sd_sampler_timestep(sched, &st);
    sd_sampler_scale_input(sched, &st, lat, xin);
    if (guided) memcpy(xin + n, xin, sizeof(float) * n);
    if ((rc = sd_unet_forward(m->unet, m->ex, xin, Bu, h, w, t, ctx, SD_CLIP_CONTEXT, eps))) goto done;
    if (guided) {
      const float g = p.cfg_scale;
      for (int64_t k = 0; k < n; k++) eps[k] = eps[k] + g * (eps[n + k] - eps[k]);
    }
    if ((rc = sd_sampler_step(sched, &st, eps, lat, &rng))) goto done;
    if (p.progress) p.progress(p.progress_user, i + 1, total, now_s() - t0);
  }
  if (latents_out) memcpy(latents_out, lat, sizeof(float) * n);

  const int64_t npx = (int64_t)p.width * p.height;
  img = malloc(sizeof(float) * 3 * npx);
  if (!img) { rc = sd_fail(SD_E_NOMEM, "out of memory"); goto done; }
  for (int b = 0; b < B; b++) {
    if ((rc = sd_vae_decode(m->vae, m->ex, lat + per * b, h, w, img))) goto done;
    sd_vae_to_rgb8(img, p.height, p.width, rgb + (size_t)b * npx * 3);
  }
done:
  free(ctx);
  free(lat);
  free(xin);
  free(eps);
  free(img);
  sd_sampler_state_free(&st);
  sd_schedule_free(sched);
  return rc < 0 ? rc : SD_OK;
}

void safesd_gen_latent_shape(const safesd_model *m, const safesd_gen_params *p, int *channels, int *h, int *w) {
  int vf = m->vae ? sd_vae_factor(m->vae) : 8;
  *channels = m->unet ? sd_unet_cfg(m->unet)->in_channels : 4;
  *h = p->height / vf;
  *w = p->width / vf;
}

static const char *sampler_label(const char *name) {
  static const struct { const char *name, *label; } k[] = {
      {"ddim", "DDIM"}, {"pndm", "PLMS"}, {"euler", "Euler"}, {"euler_a", "Euler a"}, {"dpm++2m", "DPM++ 2M"}};
  for (size_t i = 0; i < sizeof k / sizeof *k; i++)
    if (name && !strcmp(name, k[i].name)) return k[i].label;
  return name ? name : "?";
}

char *safesd_gen_parameters_text(const safesd_model *m, const safesd_gen_params *p, int index) {
  const char *model = sd_model_path(m->src), *slash = strrchr(model, '/');
  char tail[512] = "";
  int off = 0;
  if (p->schedule && !strcmp(p->schedule, "karras")) off += snprintf(tail + off, sizeof tail - (size_t)off, ", Schedule type: Karras");
  if (p->clip_skip > 1) off += snprintf(tail + off, sizeof tail - (size_t)off, ", Clip skip: %d", p->clip_skip);
  if (p->batch > 1) snprintf(tail + off, sizeof tail - (size_t)off, ", Batch size: %d, Batch pos: %d", p->batch, index);
  const char *neg = p->negative_prompt && *p->negative_prompt ? p->negative_prompt : NULL;
  size_t len = strlen(p->prompt) + (neg ? strlen(neg) : 0) + strlen(model) + 1024;
  char *s = malloc(len);
  if (!s) return NULL;
  snprintf(s, len, "%s\n%s%s%sSteps: %d, Sampler: %s, CFG scale: %g, Seed: %llu, Size: %dx%d, Model: %s%s", p->prompt,
           neg ? "Negative prompt: " : "", neg ? neg : "", neg ? "\n" : "", p->steps, sampler_label(p->sampler),
           (double)p->cfg_scale, (unsigned long long)p->seed, p->width, p->height, slash && slash[1] ? slash + 1 : model,
           tail);
  return s;
}

int safesd_write_png(const char *path, const uint8_t *rgb, int width, int height, const char *parameters) {
  sd_png_text t = {"parameters", parameters};
  return sd_png_write_rgb8(path, rgb, width, height, parameters ? &t : NULL, parameters ? 1 : 0);
}
