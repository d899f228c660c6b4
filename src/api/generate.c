/* Text to image: the diffusers StableDiffusionPipeline.__call__ loop, in C.
 *
 *   ids = tokenize(prompt), tokenize(negative or "")
 *   context = text_encoder([uncond, cond])                        (once)
 *   latents = randn([B,4,h,w], generator(seed)) * init_noise_sigma
 *   for t in timesteps:
 *     eps_u, eps_c = unet(scale_input([latents, latents]), t, [uncond×B, cond×B])
 *     latents = sampler.step(eps_u + w (eps_c − eps_u), latents)  (the same generator)
 *   image = vae.decode(latents / scaling_factor) → (x/2 + 0.5).clamp(0,1) → ×255, round
 *
 * Safety (generation side, docs/safety.md), all off by default:
 *   SLD (safety/sld.h): the UNet sees [latents ×3B] with [uncond, cond, concept] context and
 *     the guided ε is diffusers' StableDiffusionPipelineSafe rule.
 *   safety_negative: the concept text is the negative prompt.
 *   dual latent reconstruction (method.md §2.4, safety/dual.h): evaluations 0..k-1 as above;
 *     from k one UNet call on [z ×3B] with [uncond, cond, safe] (blend=final: [z_u, z_u, z_s,
 *     z_s] with [uncond, cond, uncond, safe], 4B, since the streams differ), ε̂_u and ε̂_s by
 *     CFG, each stream stepped with its own sampler state (copied at k) and the same noise,
 *     then z = λ·z_s + (1−λ)·z_u (blend=step), or only the final latents merged (final).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "safesd.h"

#include "api/api_internal.h"
#include "core/error.h"
#include "io/png.h"
#include "text/tokenizer.h"
#include "sampling/rng.h"
#include "sampling/sampler.h"
#include "sampling/schedule.h"
#include "safety/dual.h"
#include "safety/sld.h"
#include "safety/strategy.h"
#include "io/fileio.h"
#include "models/taesd.h"

#include <jansson.h>

#define GEN_MAX_SIDE 4096
#define GEN_MAX_BATCH 64
#define GEN_MAX_STEPS 1000
/* The default pixel budget of one image: this many times the model's native sample size
 * (SD 1.x: 512x512 -> 1,048,576 pixels, e.g. 1024x1024; the bundled model: 64x64 -> 128x128) */
#define GEN_PIXEL_BUDGET_FACTOR 4
/* Refuse a request whose activation memory alone would exceed this. */
#define GEN_MAX_ARENA ((size_t)64 << 30)

void safesd_gen_defaults(safesd_gen_params *p) {
  memset(p, 0, sizeof *p);
  p->cfg_scale = 7.5f;
  p->batch = 1;
  p->clip_skip = 1;
  p->safety = "medium";
  p->safety_weight = NAN;
  p->context_steps = NAN;
  p->semantic_threshold = NAN;
  p->strength = 0.75;
}

/* The safety settings of a resolved p, checked. */
typedef struct safety_plan {
  const sd_sld_preset *sld; /* NULL: SLD off */
  const char *concept;      /* SLD / safety_negative concept text */
  int dual;                 /* safety_text set */
  sd_blend blend;
  int groups;               /* context groups of a safety step (0: no safety step) */
} safety_plan;

static int safety_plan_make(const safesd_gen_params *p, safety_plan *sp) {
  int rc;
  memset(sp, 0, sizeof *sp);
  const int guided = p->cfg_scale > 1.0f;
  if ((rc = sd_sld_preset_parse(p->sld, &sp->sld))) return rc;
  sp->concept = p->sld_concept ? p->sld_concept : sd_sld_default_concept;
  if (sp->sld && !guided)
    return sd_fail(SD_E_ARG, "SLD needs classifier-free guidance (CFG scale > 1, got %g)", (double)p->cfg_scale);
  if (p->safety_negative && p->negative_prompt && *p->negative_prompt)
    return sd_fail(SD_E_ARG, "the safety negative prompt replaces the negative prompt: give only one of them");
  sp->dual = p->safety_text != NULL;
  if (sp->dual) {
    if (sp->sld) return sd_fail(SD_E_ARG, "SLD and the dual path (a safety text) cannot be combined");
    if (!(p->safety_weight >= 0.0f && p->safety_weight <= 1.0f))
      return sd_fail(SD_E_ARG, "safety weight %g is out of range (0..1)", (double)p->safety_weight);
    if (!(p->context_steps >= 0.0f && p->context_steps <= 1.0f))
      return sd_fail(SD_E_ARG, "context steps %g is out of range (0..1)", (double)p->context_steps);
    if ((rc = sd_blend_parse(p->blend, &sp->blend))) return rc;
  }
  if (sp->sld) sp->groups = 3;
  else if (sp->dual) sp->groups = sp->blend == SD_BLEND_FINAL ? (guided ? 4 : 2) : (guided ? 3 : 2);
  return SD_OK;
}

int sd_api_need_image_side(safesd_model *m) {
  int rc;
  if ((rc = sd_api_need_text(m))) return rc;
  if ((rc = sd_model_need(m->src, SD_COMP_UNET)) || (rc = sd_model_need(m->src, SD_COMP_VAE))) return rc;
  if (!m->unet && (rc = sd_unet_create(m->src, &m->unet))) return rc;
  if (!m->vae && (rc = sd_vae_create(m->src, &m->vae))) return rc;
  return SD_OK;
}

/* The scheduler configuration: the model's scheduler_config.json (diffusers from_config
 * semantics) or, for single files without one, the SD 1.x configuration; then the
 * requested sampler / schedule on top (NULL: the model's). */
int sd_api_sched_config(safesd_model *m, const char *sampler, const char *schedule, sd_sched_config *c) {
  sd_sampler_kind kind = SD_SAMPLER_AUTO;
  int rc;
  if (sampler && (rc = sd_sampler_kind_parse(sampler, &kind))) return rc;
  const char *path = sd_model_scheduler_path(m->src);
  if (path) {
    if ((rc = sd_sched_config_load(path, kind, c))) return rc;
  } else {
    sd_sched_config_sd15(c, kind == SD_SAMPLER_AUTO ? SD_SAMPLER_PNDM : kind);
    c->prediction = sd_model_unet_config(m->src)->prediction_v ? SD_PRED_V : SD_PRED_EPSILON;
  }
  if (schedule) {
    sd_sigma_schedule sg;
    if ((rc = sd_sigma_schedule_parse(schedule, &sg))) return rc;
    c->sigmas = sg;
  }
  return sd_sched_config_check(c);
}

/* The texts of p are valid UTF-8 (a clear error, with the raw bytes escaped, before any
 * detector or tokenizer sees them). */
static int check_texts(const safesd_gen_params *p) {
  int rc;
  if ((rc = sd_text_check_utf8("the prompt", p->prompt)) || (rc = sd_text_check_utf8("the negative prompt", p->negative_prompt)) ||
      (rc = sd_text_check_utf8("the safety text", p->safety_text)) || (rc = sd_text_check_utf8("the SLD concept", p->sld_concept)))
    return rc;
  return SD_OK;
}

/* The most steps the scheduler c can make (the largest count below `steps` it accepts). */
static int max_steps(const sd_sched_config *c, int steps) {
  for (int k = steps - 1; k >= 1; k--) {
    sd_schedule *s = NULL;
    if (sd_schedule_create(c, k, &s) == SD_OK) {
      sd_schedule_free(s);
      return k;
    }
  }
  return 0;
}

int safesd_gen_resolve(safesd_model *m, safesd_gen_params *p) {
  int rc;
  if (!p->prompt) return sd_fail(SD_E_ARG, "no prompt given");
  if ((rc = check_texts(p))) return rc;
  if ((rc = sd_model_need(m->src, SD_COMP_UNET)) || (rc = sd_model_need(m->src, SD_COMP_VAE))) return rc;
  /* the size first, from the configurations alone: nothing is built for a request refused */
  const sd_unet_config *uc = sd_model_unet_config(m->src);
  const int vf = 1 << (sd_model_vae_config(m->src)->n_levels - 1);
  const int64_t native = (int64_t)(uc->sample_size > 0 ? uc->sample_size : 64) * vf;
  if (p->init_image && (p->init_width <= 0 || p->init_height <= 0 || p->init_width > GEN_MAX_SIDE ||
                        p->init_height > GEN_MAX_SIDE))
    return sd_fail(SD_E_ARG, "init image size %dx%d is out of range (1..%d pixels a side)", p->init_width,
                   p->init_height, GEN_MAX_SIDE);
  if (p->width == 0) p->width = p->init_image ? p->init_width : (int)native;
  if (p->height == 0) p->height = p->init_image ? p->init_height : (int)native;
  const char *size_what = p->init_image ? "init image size" : "image size";
  if (p->width < 0 || p->height < 0 || p->width > GEN_MAX_SIDE || p->height > GEN_MAX_SIDE)
    return sd_fail(SD_E_ARG, "image size %dx%d is out of range (1..%d pixels a side)", p->width, p->height, GEN_MAX_SIDE);
  const int64_t budget_default = GEN_PIXEL_BUDGET_FACTOR * native * native;
  if (p->max_pixels < 0 || p->max_pixels > (int64_t)GEN_MAX_SIDE * GEN_MAX_SIDE)
    return sd_fail(SD_E_ARG, "pixel budget %lld is out of range (0 = the default, up to %lld)", (long long)p->max_pixels,
                   (long long)GEN_MAX_SIDE * GEN_MAX_SIDE);
  const int64_t budget = p->max_pixels > 0 ? p->max_pixels : budget_default;
  if ((int64_t)p->width * p->height > budget) {
    char why[96] = "";
    if (p->max_pixels == 0)
      snprintf(why, sizeof why, ", %d x this model's native %lldx%lld", GEN_PIXEL_BUDGET_FACTOR, (long long)native,
               (long long)native);
    return sd_fail(SD_E_ARG, "image size %dx%d (%lld pixels) is over the pixel budget of %lld pixels%s (--max-pixels N "
                   "raises it)", p->width, p->height, (long long)p->width * p->height, (long long)budget, why);
  }
  if ((rc = sd_api_need_image_side(m))) return rc;
  /* the prompt syntax, and the chunks of the texts (a malformed weight or a prompt over the
   * chunk limit is an error here, before any work) */
  sd_prompt_syntax syn;
  if ((rc = sd_prompt_syntax_parse(p->prompt_syntax, &syn))) return rc;
  p->prompt_syntax = sd_prompt_syntax_name(syn);
  int chunks = 1;
  {
    const char *txt[3] = {p->prompt, p->negative_prompt, p->safety_text};
    const char *what[3] = {"the prompt", "the negative prompt", "the safety text"};
    for (int i = 0; i < 3; i++) {
      if (!txt[i]) continue;
      sd_prompt_chunks c;
      if ((rc = sd_api_prompt_chunks(m, txt[i], syn, what[i], &c))) return rc;
      if (c.n > chunks) chunks = c.n;
      sd_prompt_chunks_free(&c);
    }
    /* a flagged prompt's safe text may take one chunk more than the prompt */
    if (syn != SD_SYNTAX_PLAIN && chunks < SD_PROMPT_MAX_CHUNKS) chunks++;
  }
  const int uf = sd_unet_factor(m->unet);
  if (p->width % 8 || p->height % 8)
    return sd_fail(SD_E_ARG, "%s %dx%d: width and height must be multiples of 8", size_what, p->width, p->height);
  if (p->width % (vf * uf) || p->height % (vf * uf))
    return sd_fail(SD_E_ARG, "%s %dx%d: this model needs multiples of %d (its UNet halves the %dx%d latent %d times)",
                   size_what, p->width, p->height, vf * uf, p->width / vf, p->height / vf, uf == 1 ? 0 : (int)log2(uf));
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
  if ((rc = sd_api_sched_config(m, p->sampler, p->schedule, &c))) return rc;
  { /* the scheduler's own limit (its training timesteps, spacing and offset), before any work */
    sd_schedule *s = NULL;
    if (sd_schedule_create(&c, p->steps, &s) != SD_OK) {
      int k = max_steps(&c, p->steps < c.num_train_timesteps + 1 ? p->steps : c.num_train_timesteps + 1);
      return k > 0 ? sd_fail(SD_E_ARG, "%d steps is more than this model's %s scheduler can make: at most %d (%d training "
                                       "timesteps, steps_offset %d)", p->steps, sd_sampler_kind_name(c.kind), k,
                             c.num_train_timesteps, c.steps_offset)
                   : sd_fail_prefix(SD_E_ARG, "steps %d: ", p->steps);
    }
    sd_schedule_free(s);
  }
  p->sampler = sd_sampler_kind_name(c.kind);
  p->schedule = sd_sigma_schedule_name(c.sigmas);
  if ((rc = sd_api_init_check(m->vae, p))) return rc;
  { /* an inpainting UNet (9 input channels: latents, mask, masked-image latents) needs both */
    const int ci = sd_unet_cfg(m->unet)->in_channels, co = sd_unet_cfg(m->unet)->out_channels;
    if (ci != co && ci != 2 * co + 1)
      return sd_fail(SD_E_UNSUPPORTED, "this UNet takes %d input channels and gives %d: not a layout safesd knows "
                     "(%d, or %d for an inpainting UNet)", ci, co, co, 2 * co + 1);
    if (ci != co && !p->mask_image)
      return sd_fail(SD_E_ARG, "this is an inpainting UNet (%d input channels: latents, mask, masked image): it needs an "
                     "init image and a mask", ci);
  }
  float lw, lt;
  sd_level_params lp; /* a level's values: the bank's [levels], else the built-in table */
  int level = sd_api_level_params(m, p->concepts, p->safety, &lp);
  if (level < 0) return level;
  lw = lp.weight;
  lt = lp.context;
  if (level == 0) sd_api_safety_level("medium", &lw, &lt); /* explicit safety_text, no level */
  if (isnan(p->safety_weight)) p->safety_weight = lw;
  if (isnan(p->context_steps)) p->context_steps = lt;
  if (level > 0 && !p->blend && lp.blend[0]) p->blend = !strcmp(lp.blend, "final") ? "final" : "step";
  if (p->safety_strategy && sd_strategy_parse(p->safety_strategy) < 0)
    return sd_fail(SD_E_ARG, "unknown safety strategy '%s' (" SD_STRATEGY_NAMES ")", p->safety_strategy);
  safety_plan sp;
  if ((rc = safety_plan_make(p, &sp))) return rc;
  if ((rc = sd_api_image_action_parse(p->image_check_action)) < 0) return rc;
  if (p->sld) p->sld = sp.sld ? sp.sld->name : "none";
  if (sp.dual) p->blend = sd_blend_name(sp.blend);
  int h = p->height / vf, w = p->width / vf, B = p->batch, guided = p->cfg_scale > 1.0f;
  int groups = sp.groups > (guided ? 2 : 1) ? sp.groups : (guided ? 2 : 1);
  /* a level may turn the dual path on after the detectors ran: plan memory for it */
  if (level > 0 && !sp.sld && !p->safety_negative) {
    int dual_groups = p->blend && !strcmp(p->blend, "final") ? (guided ? 4 : 2) : (guided ? 3 : 2);
    if (groups < dual_groups) groups = dual_groups;
  }
  if (p->vae_tiling && (rc = sd_vae_tile_check(m->vae, p->vae_tile_size, NULL))) return rc;
  size_t dec = p->vae_tiling ? sd_vae_decode_tiled_arena_bytes(m->vae, h, w, p->vae_tile_size)
                             : sd_vae_decode_arena_bytes(m->vae, h, w);
  size_t enc = p->init_image ? sd_vae_encode_arena_bytes(m->vae, p->height, p->width) : 0;
  size_t need = sd_unet_arena_bytes(m->unet, groups * B, h, w, SD_CLIP_CONTEXT * chunks) + (enc > dec ? enc : dec);
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  size_t ram = pages > 0 && page > 0 ? (size_t)pages * (size_t)page : GEN_MAX_ARENA;
  if (need == 0 || need > GEN_MAX_ARENA || need > ram)
    return sd_fail(SD_E_NOMEM, "a %dx%d image, batch %d, would need %.1f GiB of activation memory (this machine has %.1f GiB)",
                   p->width, p->height, B, (double)need / (1 << 30), (double)ram / (1 << 30));
  return SD_OK;
}

/* The weights were checked at open (model_source), so a NaN or infinity here is an
 * activation that overflowed float32: an error, never an image of garbage. */
static int check_finite(const float *v, int64_t n, const char *what, int step, int total) {
  int64_t at = sd_first_nonfinite(v, SD_F32, n);
  if (at < 0) return SD_OK;
  char when[48] = "";
  if (step) snprintf(when, sizeof when, " after step %d of %d", step, total);
  return sd_fail(SD_E_FORMAT, "%s%s: %s at element %lld (the weights are finite, so an activation overflowed float32: "
                 "a broken or mis-scaled checkpoint)", what, when, isnan(v[at]) ? "NaN" : "infinity", (long long)at);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One model evaluation of the generation loop, in its three forms. */
typedef struct gen_step {
  safesd_model *m;
  const sd_schedule *sched;
  sd_sampler_state *st, *st_s; /* the user stream's state; the safe stream's (dual only) */
  sd_rng *rng;
  const float *ctx;            /* context groups of B rows each (see safesd_generate_ex) */
  float *lat, *lat_s;          /* latents; the safe stream's (dual only) */
  float *xin, *eps;            /* UNet input / output, up to G groups of n */
  float *nu;                   /* SLD momentum */
  float *noise;                /* a step's shared noise (dual only) */
  int64_t n;                   /* latent elements of the batch */
  int B, h, w;
  float cfg;
  int guided;
  int S;                       /* context tokens: 77 × chunks */
  /* a 9-channel inpainting UNet: its input per image is [scaled latents (cl), mask (1),
   * masked-image latents (cl)]; extra holds the last two for each of the B images */
  const float *extra;          /* NULL for an ordinary UNet */
  float *scaled;               /* n floats: the scaled latents before interleaving */
  int64_t nin;                 /* UNet input elements of one group (n without extra) */
  int cl, cin;                 /* latent and UNet input channels */
  float *x0;                   /* non-NULL: this step writes the x0 estimate there (2n floats) */
  float lambda;                /* the dual blend weight (for the x0 estimate of a dual step) */
} gen_step;

/* eps[0..n) = eps_u + w·(eps_c − eps_u), with eps_c at eps + n */
static void cfg_combine(float *eps, int64_t n, float g) {
  for (int64_t q = 0; q < n; q++) eps[q] = eps[q] + g * (eps[n + q] - eps[q]);
}

/* the UNet input: the scaled latents, repeated in `groups` groups */
static void scaled_input(const gen_step *r, const sd_sampler_state *st, const float *lat, float *xin, int groups) {
  sd_sampler_scale_input(r->sched, st, lat, r->extra ? r->scaled : xin);
  if (r->extra) { /* diffusers: cat([scale_model_input(latents), mask, masked_image_latents], dim=1) */
    const int64_t hw = (int64_t)r->h * r->w, pl = r->cl * hw, pe = (int64_t)(r->cin - r->cl) * hw;
    for (int b = 0; b < r->B; b++) {
      memcpy(xin + b * (pl + pe), r->scaled + b * pl, sizeof(float) * pl);
      memcpy(xin + b * (pl + pe) + pl, r->extra + b * pe, sizeof(float) * pe);
    }
  }
  for (int g = 1; g < groups; g++) memcpy(xin + g * r->nin, xin, sizeof(float) * r->nin);
}

/* The plain diffusers step: [z, z] with [uncond, cond] (or [z] with [cond]). */
static int step_plain(gen_step *r, float t) {
  int rc;
  scaled_input(r, r->st, r->lat, r->xin, r->guided ? 2 : 1);
  if ((rc = sd_unet_forward(r->m->unet, r->m->ex, r->xin, (r->guided ? 2 : 1) * r->B, r->h, r->w, t, r->ctx,
                            r->S, r->eps)))
    return rc;
  if (r->guided) cfg_combine(r->eps, r->n, r->cfg);
  if (r->x0 && (rc = sd_sampler_predict_x0(r->sched, r->st, r->eps, r->lat, r->x0, r->n))) return rc;
  return sd_sampler_step(r->sched, r->st, r->eps, r->lat, r->rng);
}

/* SLD: [z, z, z] with [uncond, cond, concept], then the SLD guidance rule. */
static int step_sld(gen_step *r, const sd_sld_preset *sld, int i, float t) {
  int rc;
  scaled_input(r, r->st, r->lat, r->xin, 3);
  if ((rc = sd_unet_forward(r->m->unet, r->m->ex, r->xin, 3 * r->B, r->h, r->w, t, r->ctx, r->S, r->eps)))
    return rc;
  sd_sld_guide(sld, r->cfg, i, r->eps, r->nu, r->n);
  if (r->x0 && (rc = sd_sampler_predict_x0(r->sched, r->st, r->eps, r->lat, r->x0, r->n))) return rc;
  return sd_sampler_step(r->sched, r->st, r->eps, r->lat, r->rng);
}

/* A dual step (method.md §2.4): one UNet call for both streams, each stepped with its own
 * sampler state and the same noise. blend=step: input [z, z, z] (guided) or [z, z], then
 * z = λ·z_s + (1−λ)·z_u; blend=final: [z_u, z_u, z_s, z_s] or [z_u, z_s], the streams kept
 * apart. `first`: the first dual step, where the safe stream forks from the user stream. */
static int step_dual(gen_step *r, const safety_plan *sp, float lambda, int first, float t) {
  const int64_t n = r->n;
  const int final = sp->blend == SD_BLEND_FINAL, Gs = sp->groups;
  int rc;
  if (first) {
    if ((rc = sd_sampler_state_copy(r->st_s, r->st))) return rc;
    memcpy(r->lat_s, r->lat, sizeof(float) * n);
  }
  if (!final) {
    scaled_input(r, r->st, r->lat, r->xin, Gs);
  } else {
    const int half = Gs / 2;
    scaled_input(r, r->st, r->lat, r->xin, half);
    scaled_input(r, r->st_s, r->lat_s, r->xin + half * r->nin, half);
  }
  if ((rc = sd_unet_forward(r->m->unet, r->m->ex, r->xin, Gs * r->B, r->h, r->w, t, r->ctx, r->S, r->eps)))
    return rc;
  float *eu = r->eps, *es = r->eps + (int64_t)(Gs - 1) * n;
  if (r->guided) {
    const float *e0s = final ? r->eps + 2 * n : r->eps; /* the unconditional seen by the safe stream */
    for (int64_t q = 0; q < n; q++) es[q] = e0s[q] + r->cfg * (es[q] - e0s[q]);
    cfg_combine(r->eps, n, r->cfg);
  }
  if (r->x0) { /* the estimate of what the blended streams become */
    if ((rc = sd_sampler_predict_x0(r->sched, r->st, eu, r->lat, r->x0, n)) ||
        (rc = sd_sampler_predict_x0(r->sched, r->st_s, es, final ? r->lat_s : r->lat, r->x0 + n, n)))
      return rc;
    sd_dual_blend(r->x0, r->x0 + n, lambda, n);
  }
  const float *nz = NULL;
  if (sd_sampler_needs_noise(r->sched)) {
    sd_rng_randn(r->rng, r->noise, n); /* drawn once, shared by both streams */
    nz = r->noise;
  }
  if (!final) memcpy(r->lat_s, r->lat, sizeof(float) * n);
  if ((rc = sd_sampler_step_noise(r->sched, r->st, eu, r->lat, nz)) ||
      (rc = sd_sampler_step_noise(r->sched, r->st_s, es, r->lat_s, nz)))
    return rc;
  if (!final) sd_dual_blend(r->lat, r->lat_s, lambda, n);
  return SD_OK;
}

int safesd_generate(safesd_model *m, const safesd_gen_params *p, uint8_t *rgb, float *latents_out) {
  return safesd_generate_ex(m, p, rgb, latents_out, NULL);
}

int safesd_generate_ex(safesd_model *m, const safesd_gen_params *p_in, uint8_t *rgb, float *latents_out,
                       safesd_safety_report *report) {
  safesd_gen_params p = *p_in;
  sd_api_verdicts_free(m); /* the last generation's verdicts describe its images only */
  int rc = sd_api_lora_prepare(m, &p); /* <lora:...> tags: merged, and out of the prompt */
  if (rc) return rc;
  rc = safesd_gen_resolve(m, &p);
  if (rc) return rc;
  /* the output-image classifiers load before any generation work: a bad list costs nothing */
  if ((rc = sd_api_image_check_prepare(m, &p))) return rc;
  /* the gate: explicit mechanisms (SLD, the negative-prompt baseline, a given safety text)
   * bypass it; otherwise the detectors decide, and an unflagged prompt runs the plain loop */
  if (m->last_gate) sd_api_gate_free(m->last_gate);
  else if (!(m->last_gate = calloc(1, sizeof *m->last_gate))) return sd_fail(SD_E_NOMEM, "out of memory");
  sd_gate *gate = m->last_gate;
  sd_level_params lp; /* the bank's [levels] entry, else the built-in table */
  const int level = sd_api_level_params(m, p.concepts, p.safety, &lp);
  if (level < 0) return level;
  const int gated = level > 0 && !p.safety_text && !(p.sld && strcmp(p.sld, "none")) && !p.safety_negative;
  if (gated) {
    sd_gate_opts go = {p.concepts, p.safety_strategy ? p.safety_strategy : lp.strategy[0] ? lp.strategy : NULL,
                       p.detectors, p.semantic_threshold, p.prompt_syntax, m->lora_names};
    if ((rc = sd_api_safety_gate(m, &go, p.prompt, gate))) return rc;
    if (gate->flagged) {
      p.safety_text = gate->safe_text;
      if (isnan(p_in->safety_weight)) p.safety_weight = lp.weight;
      if (isnan(p_in->context_steps)) p.context_steps = lp.context;
    }
  }
  /* strategy project: e_s is the prompt's own embedding with the flagged positions moved */
  const int project = gated && gate->flagged && gate->project;
  if (project && (!gate->basis || gate->D != sd_clip_text_cfg(m->text)->hidden))
    return sd_fail(SD_E_INTERNAL, "safety strategy 'project': no concept directions of the text encoder's width");
  safety_plan sp;
  if ((rc = safety_plan_make(&p, &sp))) return rc;
  const double t_start = now_s();
  const int vf = sd_vae_factor(m->vae), h = p.height / vf, w = p.width / vf, B = p.batch;
  const int guided = p.cfg_scale > 1.0f, Gp = guided ? 2 : 1, Bu = Gp * B;
  const int G = sp.groups > Gp ? sp.groups : Gp; /* context groups of the largest call */
  const int D = sd_clip_text_cfg(m->text)->hidden, C = sd_unet_cfg(m->unet)->out_channels;
  const int Cin = sd_unet_cfg(m->unet)->in_channels; /* C, or 2C + 1 for an inpainting UNet */
  const int64_t per = (int64_t)C * h * w, n = per * B, nin = (int64_t)Cin * h * w * B;
  sd_sched_config sc;
  sd_schedule *sched = NULL;
  sd_sampler_state st, st_s;
  memset(&st, 0, sizeof st);
  memset(&st_s, 0, sizeof st_s);
  float *ctx = NULL, *lat = NULL, *xin = NULL, *eps = NULL, *img = NULL;
  float *nu = NULL, *lat_s = NULL, *noise = NULL, *x0buf = NULL;
  sd_prompt_chunks ch[3]; /* [uncond (or the prompt unguided), prompt, extra text] */
  memset(ch, 0, sizeof ch);
  sd_init_state init;
  memset(&init, 0, sizeof init);
  double extra_enc_s = 0, plain_s = 0, safety_s = 0;
  int n_plain = 0, n_safety = 0;
  if ((rc = sd_api_sched_config(m, p.sampler, p.schedule, &sc)) || (rc = sd_schedule_create(&sc, p.steps, &sched)) ||
      (rc = sd_sampler_init(sched, n, &st)))
    goto done;

  /* conditioning: [uncond × B, cond × B] (or cond × B without guidance), then the safety
   * groups: SLD [.., concept × B]; dual [.., safe × B] (blend=final: [.., uncond × B, safe × B]) */
  sd_prompt_syntax syn = SD_SYNTAX_A1111;
  (void)sd_prompt_syntax_parse(p.prompt_syntax, &syn); /* checked by resolve */
  const char *neg = p.safety_negative ? sp.concept : p.negative_prompt ? p.negative_prompt : "";
  if ((rc = sd_api_prompt_chunks(m, guided ? neg : p.prompt, syn, guided ? "the negative prompt" : "the prompt", &ch[0])) ||
      (guided && (rc = sd_api_prompt_chunks(m, p.prompt, syn, "the prompt", &ch[1]))))
    goto done;
  const char *extra_text = sp.sld ? sp.concept : sp.dual ? p.safety_text : NULL;
  /* the gate's safe text is made of the prompt's visible text: no syntax, cut into chunks */
  const sd_prompt_syntax syn_extra = gated && gate->flagged && syn != SD_SYNTAX_PLAIN ? SD_SYNTAX_CHUNKED : syn;
  if (extra_text && (rc = sd_api_prompt_chunks(m, extra_text, syn_extra, sp.sld ? "the SLD concept" : "the safety text",
                                               &ch[2])))
    goto done;
  /* every context group has the same length: the longest text's chunks, the others padded
   * with empty chunks (A1111's pad_cond_uncond) */
  int L = ch[0].n;
  for (int i = 1; i < 3; i++)
    if (ch[i].n > L) L = ch[i].n;
  const int S = SD_CLIP_CONTEXT * L;
  const int64_t ctx_per = (int64_t)S * D;
  ctx = malloc(sizeof(float) * ctx_per * B * G);
  lat = malloc(sizeof(float) * n);
  xin = malloc(sizeof(float) * nin * G);
  eps = malloc(sizeof(float) * per * B * G);
  if (!ctx || !lat || !xin || !eps) { rc = sd_fail(SD_E_NOMEM, "out of memory"); goto done; }
  if (sp.sld && !(nu = calloc((size_t)n, sizeof(float)))) { rc = sd_fail(SD_E_NOMEM, "out of memory"); goto done; }
  if ((sp.dual || p.mask_image) && !(noise = malloc(sizeof(float) * n))) { rc = sd_fail(SD_E_NOMEM, "out of memory"); goto done; }
  if (sp.dual && !(lat_s = malloc(sizeof(float) * n))) {
    rc = sd_fail(SD_E_NOMEM, "out of memory");
    goto done;
  }
  {
    const sd_prompt_chunks *uc[2] = {&ch[0], &ch[1]};
    if ((rc = sd_api_encode_chunks(m, uc, guided ? 2 : 1, L, p.clip_skip, ctx))) goto done;
    /* ctx holds [u, c]; spread to [u × B, c × B] from the back so nothing is overwritten */
    const int groups = guided ? 2 : 1;
    for (int g = groups - 1; g >= 0; g--)
      for (int b = B - 1; b >= 0; b--)
        memmove(ctx + ((int64_t)g * B + b) * ctx_per, ctx + (int64_t)g * ctx_per, sizeof(float) * ctx_per);
    if (extra_text) {
      /* encoded alone, so the [u, c] embeddings are the very bytes of a run without safety */
      double t0 = now_s();
      float *es = ctx + (int64_t)(G - 1) * B * ctx_per;
      if (project) {
        /* E(p) itself (the very bytes of the conditioning), flagged positions projected:
         * every other position stays bit-identical */
        memcpy(es, ctx + (int64_t)(Gp - 1) * B * ctx_per, sizeof(float) * ctx_per);
        if ((rc = sd_project_tokens(es, S, D, gate->proj_pos, gate->n_proj, gate->basis, gate->rank)))
          goto done;
      } else if (guided) {
        /* [uncond, extra] as one batch of two, exactly as a plain run with the extra text as
         * its prompt encodes it: the embedding is then the same bytes (λ = 1 invariant) */
        const sd_prompt_chunks *us[2] = {&ch[0], &ch[2]};
        float *tmp = malloc(sizeof(float) * ctx_per * 2);
        if (!tmp) { rc = sd_fail(SD_E_NOMEM, "out of memory"); goto done; }
        rc = sd_api_encode_chunks(m, us, 2, L, p.clip_skip, tmp);
        if (!rc) memcpy(es, tmp + ctx_per, sizeof(float) * ctx_per);
        free(tmp);
        if (rc) goto done;
      } else {
        const sd_prompt_chunks *xs[1] = {&ch[2]};
        if ((rc = sd_api_encode_chunks(m, xs, 1, L, p.clip_skip, es))) goto done;
      }
      for (int b = B - 1; b >= 1; b--) memcpy(es + (int64_t)b * ctx_per, es, sizeof(float) * ctx_per);
      if (G == 4) /* blend=final, guided: group 2 is the unconditional again */
        memcpy(ctx + (int64_t)2 * B * ctx_per, ctx, sizeof(float) * ctx_per * B);
      extra_enc_s = now_s() - t0;
    }
  }
  if ((rc = check_finite(ctx, ctx_per * B * G, "the text encoder's output", 0, 0))) goto done;
  /* the stages run one after another: each one's mapped weights leave memory when it is done
   * (read again from the file, or the page cache, by the next image) */
  sd_model_release(m->src, SD_COMP_TEXT);

  sd_rng rng;
  sd_rng_seed(&rng, p.seed);
  if (p.init_image) { /* image to image: the init image's latents noised to timestep t_start */
    if ((rc = sd_api_init_latents(m, &p, sched, &st, &rng, C, h, w, &init, lat)) ||
        (rc = check_finite(lat, n, "the init image's latents", 0, 0)))
      goto done;
  } else {
    sd_sampler_init_latents(sched, &rng, lat, n);
  }
  const int total = sd_schedule_len(sched) - init.t_start; /* the model evaluations that run */
  /* λ = 0 and λ = 1 weigh one stream by exactly 0: it is not computed, and the run is the
   * plain loop on the user prompt (λ = 0) or on the safe text from step k (λ = 1), so the
   * invariants hold bit for bit (a 3B UNet batch rounds differently from a 2B one).
   * SAFESD_DUAL_NO_SHORTCUT=1 computes both streams anyway (a test knob). */
  const char *no_short = getenv("SAFESD_DUAL_NO_SHORTCUT");
  const int shortcut = !(no_short && *no_short && strcmp(no_short, "0"));
  const int lam0 = sp.dual && shortcut && p.safety_weight == 0.0f;
  const int lam1 = sp.dual && shortcut && p.safety_weight == 1.0f;
  const int k_dual = sp.dual && !lam0 ? sd_dual_first_step(p.context_steps, total) : total;
  const int k_report = sp.dual ? sd_dual_first_step(p.context_steps, total) : total;
  gen_step r = {m, sched, &st, &st_s, &rng, ctx, lat, lat_s, xin, eps, nu, noise, n, B, h, w, p.cfg_scale, guided, S,
                init.extra, init.scaled, nin, C, Cin, NULL, p.safety_weight};
  const int pv_every = p.preview_interval > 0 ? p.preview_interval : 1;
  if (p.preview && !(x0buf = malloc(sizeof(float) * 2 * (size_t)n))) { rc = sd_fail(SD_E_NOMEM, "out of memory"); goto done; }
  for (int i = 0; !sd_sampler_done(sched, &st); i++) {
    if (p.cancel && p.cancel(p.cancel_user)) { rc = sd_fail(SD_E_CANCELLED, "cancelled"); goto done; }
    double t0 = now_s();
    float t = sd_sampler_timestep(sched, &st);
    int safety_step = sp.sld || (sp.dual && i >= k_dual && !lam1);
    if (lam1 && i == k_dual) /* from here the safe text replaces the prompt: [u, s] */
      memcpy(ctx + (int64_t)(Gp - 1) * B * ctx_per, ctx + (int64_t)(G - 1) * B * ctx_per, sizeof(float) * ctx_per * B);
    r.x0 = p.preview && ((i + 1) % pv_every == 0 || i + 1 == total) ? x0buf : NULL;
    if (sp.sld) rc = step_sld(&r, sp.sld, i, t);
    else if (safety_step) rc = step_dual(&r, &sp, p.safety_weight, i == k_dual, t);
    else rc = step_plain(&r, t);
    if (!rc && init.inpaint) { /* outside the mask: the init latents at the next noise level */
      rc = sd_api_inpaint_blend(sched, &init, st.step, lat, noise);
      if (!rc && sp.dual && sp.blend == SD_BLEND_FINAL && i >= k_dual && !lam1)
        rc = sd_api_inpaint_blend(sched, &init, st.step, lat_s, noise);
    }
    if (rc || (rc = check_finite(lat, n, "the latents", i + 1, total))) goto done;
    double dt = now_s() - t0;
    if (safety_step) { safety_s += dt; n_safety++; }
    else { plain_s += dt; n_plain++; }
    if (p.progress) p.progress(p.progress_user, i + 1, total, dt);
    if (r.x0 && (rc = sd_api_preview(m, &p, x0buf, C, h, w, i + 1, total))) goto done;
  }
  if (sp.dual && sp.blend == SD_BLEND_FINAL && k_dual < total && !lam1) sd_dual_blend(lat, lat_s, p.safety_weight, n);
  if (latents_out) memcpy(latents_out, lat, sizeof(float) * n);

  if (report) {
    memset(report, 0, sizeof *report);
    report->sld = sp.sld ? sp.sld->name : "none";
    report->concept = sp.sld || p.safety_negative ? sp.concept : NULL;
    report->safety_negative = p.safety_negative != 0;
    report->dual = sp.dual;
    report->dual_ran = sp.dual && k_dual < total; /* 0 for λ = 0: nothing of the safe stream is used */
    report->safety_text = p.safety_text;
    report->safety_weight = sp.dual ? p.safety_weight : 0.0f;
    report->context_steps = sp.dual ? p.context_steps : 0.0f;
    report->k = k_report;
    report->evaluations = total;
    report->blend = sp.dual ? sd_blend_name(sp.blend) : NULL;
    report->unet_batch = sp.groups && !lam0 && !lam1 ? sp.groups * B : Bu;
    report->altered = sp.sld || p.safety_negative || sp.dual;
    report->level = gated ? p.safety : "off";
    report->checked = gated;
    report->flagged = gated && gate->flagged;
    report->categories = gated ? gate->categories : "";
    report->detection = gated ? gate->summary : NULL;
    report->strategy = gated && gate->flagged ? gate->strategy : NULL;
    report->banks = gated ? gate->banks : NULL;
    report->beyond_window = gated ? gate->beyond : NULL;
    report->loras = m->lora ? m->lora_summary : NULL;
    report->prompt_syntax = p.prompt_syntax;
    report->judged_text = gated ? gate->visible : NULL;
    if (project) {
      report->projection = gate->projection;
      report->n_projected = gate->n_proj;
      report->projected_positions = gate->proj_pos;
      report->projected_tokens = (const char *const *)gate->proj_tok;
      report->n_projection_concepts = gate->n_desc;
      report->projection_concepts = gate->proj_desc;
      report->projection_rank = gate->rank;
    }
    report->mode = !p.init_image ? "txt2img" : p.mask_image ? "inpaint" : "img2img";
    report->strength = p.init_image ? p.strength : 0.0;
    report->t_start = init.t_start;
    report->seconds = now_s() - t_start;
    if (n_safety == 0) {
      report->extra_seconds = extra_enc_s;
      report->extra_method = extra_enc_s > 0 ? "measured" : "none";
    } else if (n_plain > 0) {
      report->extra_seconds = extra_enc_s + safety_s - n_safety * (plain_s / n_plain);
      report->extra_method = "measured";
    } else {
      report->extra_seconds = extra_enc_s + safety_s * (double)(sp.groups - Gp) / sp.groups;
      report->extra_method = "proportional";
    }
  }

  sd_model_release(m->src, SD_COMP_UNET);
  sd_exec_trim(m->ex);
  const int64_t npx = (int64_t)p.width * p.height;
  img = malloc(sizeof(float) * 3 * npx);
  if (!img) { rc = sd_fail(SD_E_NOMEM, "out of memory"); goto done; }
  for (int b = 0; b < B; b++) {
    if (p.cancel && p.cancel(p.cancel_user)) { rc = sd_fail(SD_E_CANCELLED, "cancelled"); goto done; }
    if ((rc = m->taesd       ? sd_taesd_decode(m->taesd, m->ex, lat + per * b, h, w, img)
              : p.vae_tiling ? sd_vae_decode_tiled(m->vae, m->ex, lat + per * b, h, w, p.vae_tile_size, img)
                             : sd_vae_decode(m->vae, m->ex, lat + per * b, h, w, img)) ||
        (rc = check_finite(img, 3 * npx, "the VAE's output", 0, 0)))
      goto done;
    sd_vae_to_rgb8(img, p.height, p.width, rgb + (size_t)b * npx * 3);
  }
  sd_model_release(m->src, SD_COMP_VAE);
  sd_exec_trim(m->ex);
  rc = sd_api_image_check_run(m, &p, rgb, report);
done:
  for (int i = 0; i < 3; i++) sd_prompt_chunks_free(&ch[i]);
  free(ctx);
  free(lat);
  free(xin);
  free(eps);
  free(img);
  free(nu);
  free(lat_s);
  free(noise);
  free(x0buf);
  sd_api_init_free(&init);
  sd_sampler_state_free(&st);
  sd_sampler_state_free(&st_s);
  sd_schedule_free(sched);
  return rc < 0 ? rc : SD_OK;
}

static int jset(json_t *o, const char *k, json_t *v) { return v && !json_object_set_new(o, k, v) ? 0 : -1; }
static json_t *jstr_or_null(const char *s) { return s ? json_string(s) : json_null(); }

/* The output-image verdicts: "image_check" (the classifiers, the action, one entry per
 * image) and "nsfw_content_detected" (diffusers' name: one boolean per image, null when
 * no check ran). */
static int image_check_json(json_t *o, const safesd_safety_report *r) {
  int bad = 0;
  if (!r->image_check) {
    bad |= jset(o, "image_check", json_null());
    bad |= jset(o, "nsfw_content_detected", json_null());
    return bad;
  }
  json_t *ic = json_object(), *imgs = json_array(), *flags = json_array();
  if (!ic || !imgs || !flags) {
    json_decref(ic);
    json_decref(imgs);
    json_decref(flags);
    return -1;
  }
  for (int i = 0; i < r->n_images && !bad; i++) {
    const safesd_image_verdict *v = &r->images[i];
    json_t *e = json_object(), *sc = v->scores ? json_loads(v->scores, 0, NULL) : json_null();
    bad |= !e || !sc;
    if (!bad) {
      bad |= jset(e, "index", json_integer(i));
      bad |= jset(e, "nsfw", v->nsfw < 0 ? json_null() : json_boolean(v->nsfw));
      bad |= jset(e, "judges", json_string(v->judges ? v->judges : ""));
      bad |= jset(e, "action", json_string(v->action ? v->action : "none"));
      bad |= jset(e, "scores", json_incref(sc));
      bad |= json_array_append(imgs, e);
      bad |= json_array_append_new(flags, v->nsfw < 0 ? json_null() : json_boolean(v->nsfw == 1));
    }
    json_decref(e);
    json_decref(sc);
  }
  bad |= jset(ic, "classifiers", json_string(r->image_check));
  bad |= jset(ic, "action", json_string(r->image_check_action ? r->image_check_action : "flag"));
  bad |= jset(ic, "unsafe", json_integer(r->n_unsafe));
  bad |= jset(ic, "seconds", json_real(r->image_check_seconds));
  bad |= jset(ic, "images", imgs);
  bad |= jset(o, "image_check", ic);
  bad |= jset(o, "nsfw_content_detected", flags);
  return bad;
}

char *safesd_safety_report_json(const safesd_safety_report *r, int indent) {
  json_t *o = json_object(), *dual = json_object();
  int bad = !o || !dual;
  if (!bad) {
    bad |= jset(dual, "requested", json_boolean(r->dual));
    bad |= jset(dual, "ran", json_boolean(r->dual_ran));
    bad |= jset(dual, "safety_text", jstr_or_null(r->safety_text));
    bad |= jset(dual, "safety_weight", json_real(r->safety_weight));
    bad |= jset(dual, "context_steps", json_real(r->context_steps));
    bad |= jset(dual, "k", json_integer(r->k));
    bad |= jset(dual, "blend", jstr_or_null(r->blend));
    bad |= jset(o, "altered", json_boolean(r->altered));
    bad |= jset(o, "sld", json_string(r->sld ? r->sld : "none"));
    bad |= jset(o, "concept", jstr_or_null(r->concept));
    bad |= jset(o, "safety_negative", json_boolean(r->safety_negative));
    bad |= jset(o, "dual", json_incref(dual));
    bad |= jset(o, "evaluations", json_integer(r->evaluations));
    bad |= jset(o, "unet_batch", json_integer(r->unet_batch));
    bad |= jset(o, "seconds", json_real(r->seconds));
    bad |= jset(o, "extra_seconds", json_real(r->extra_seconds));
    bad |= jset(o, "extra_method", json_string(r->extra_method ? r->extra_method : "none"));
    bad |= jset(o, "prompt_syntax", json_string(r->prompt_syntax ? r->prompt_syntax : "a1111"));
    json_t *gate = json_object();
    bad |= !gate;
    if (gate) {
      bad |= jset(gate, "level", json_string(r->level ? r->level : "off"));
      bad |= jset(gate, "checked", json_boolean(r->checked));
      bad |= jset(gate, "flagged", json_boolean(r->flagged));
      bad |= jset(gate, "categories", json_string(r->categories ? r->categories : ""));
      bad |= jset(gate, "detection", jstr_or_null(r->detection));
      bad |= jset(gate, "strategy", jstr_or_null(r->strategy));
      bad |= jset(gate, "banks", jstr_or_null(r->banks));
      bad |= jset(gate, "beyond_window", jstr_or_null(r->beyond_window));
      bad |= jset(gate, "loras", jstr_or_null(r->loras));
      bad |= jset(gate, "judged_text", jstr_or_null(r->judged_text));
      if (r->projection) {
        json_t *pr = json_object(), *pos = json_array(), *tok = json_array(), *desc = json_array();
        bad |= !pr || !pos || !tok || !desc;
        for (int i = 0; i < r->n_projected && !bad; i++) {
          bad |= json_array_append_new(pos, json_integer(r->projected_positions[i]));
          bad |= json_array_append_new(tok, json_string(r->projected_tokens[i]));
        }
        for (int i = 0; i < r->n_projection_concepts && !bad; i++)
          bad |= json_array_append_new(desc, json_string(r->projection_concepts[i]));
        if (pr) {
          bad |= jset(pr, "positions", pos);
          bad |= jset(pr, "tokens", tok);
          bad |= jset(pr, "categories", json_string(r->categories ? r->categories : ""));
          bad |= jset(pr, "descriptions", desc);
          bad |= jset(pr, "rank", json_integer(r->projection_rank));
          bad |= jset(pr, "summary", json_string(r->projection));
          bad |= jset(gate, "projection", pr);
        } else {
          json_decref(pos);
          json_decref(tok);
          json_decref(desc);
        }
      } else {
        bad |= jset(gate, "projection", json_null());
      }
      bad |= jset(o, "detectors", gate);
    }
  }
  if (!bad) { /* image to image: what the run started from (docs/img2img.md) */
    const int init = r->mode && strcmp(r->mode, "txt2img");
    bad |= jset(o, "mode", json_string(r->mode ? r->mode : "txt2img"));
    bad |= jset(o, "init_image", json_boolean(init));
    bad |= jset(o, "strength", init ? json_real(r->strength) : json_null());
    bad |= jset(o, "t_start", init ? json_integer(r->t_start) : json_null());
  }
  bad |= !o || image_check_json(o, r);
  size_t flags = (indent > 0 ? JSON_INDENT(indent > 31 ? 31 : indent) : JSON_COMPACT) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII;
  char *text = bad ? NULL : json_dumps(o, flags);
  json_decref(dual);
  json_decref(o);
  if (!text) sd_fail(SD_E_NOMEM, "safety report: out of memory");
  return text;
}

int safesd_safety_report_write(const safesd_safety_report *r, const char *path) {
  char *text = safesd_safety_report_json(r, 2);
  if (!text) return SD_E_NOMEM;
  sd_atomic_file af;
  int rc = sd_atomic_open(&af, path);
  if (!rc) {
    if ((rc = sd_atomic_write(&af, text, strlen(text))) || (rc = sd_atomic_write(&af, "\n", 1))) sd_atomic_abort(&af);
    else rc = sd_atomic_commit(&af);
  }
  free(text);
  return rc;
}

void safesd_gen_latent_shape(const safesd_model *m, const safesd_gen_params *p, int *channels, int *h, int *w) {
  int vf = m->vae ? sd_vae_factor(m->vae) : 8;
  *channels = m->unet ? sd_unet_cfg(m->unet)->out_channels : 4;
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

/* ", KEY: VALUE" into buf (at most cap bytes; returns the length written, or what would have
 * been), VALUE quoted as A1111's infotext quote() does: as a JSON string (non-ASCII kept)
 * when it holds a ',', ':' or newline, else as it is. */
static int infotext_value(char *buf, size_t cap, const char *key, const char *value) {
  if (!strpbrk(value, ",:\n")) return snprintf(buf, cap, ", %s: %s", key, value);
  json_t *j = json_string(value);
  char *q = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
  int n = snprintf(buf, cap, ", %s: %s", key, q ? q : "\"\"");
  free(q);
  json_decref(j);
  return n;
}

char *safesd_gen_parameters_text(const safesd_model *m, const safesd_gen_params *p, int index) {
  const char *model = sd_model_path(m->src), *slash = strrchr(model, '/');
  char tail[4096] = "";
  int off = 0;
  if (p->schedule && !strcmp(p->schedule, "karras")) off += snprintf(tail + off, sizeof tail - (size_t)off, ", Schedule type: Karras");
  if (p->clip_skip > 1) off += snprintf(tail + off, sizeof tail - (size_t)off, ", Clip skip: %d", p->clip_skip);
  if (p->batch > 1) off += snprintf(tail + off, sizeof tail - (size_t)off, ", Batch size: %d, Batch pos: %d", p->batch, index);
  if (p->init_image) /* A1111's img2img key, and which pipeline ran on an init image */
    off += snprintf(tail + off, sizeof tail - (size_t)off, ", Denoising strength: %g, Init image: %s", p->strength,
                    p->mask_image ? "inpaint" : "img2img");
  /* bf16 compute gives slightly different pixels: say so (fp32, the default, is not named) */
  if (m->ex->precision == SD_PREC_BF16)
    off += snprintf(tail + off, sizeof tail - (size_t)off, ", Precision: bf16%s", m->ex->bf16_emulated ? " (emulated)" : "");
  if (m->lora && m->lora_summary && strlen(m->lora_summary) < 1024) /* quoted: it has ':' and ',' */
    off += infotext_value(tail + off, sizeof tail - (size_t)off, "LoRA", m->lora_summary);
  if (m->taesd) off += snprintf(tail + off, sizeof tail - (size_t)off, ", VAE: TAESD");
  /* tiled decoding changes pixels too (near the tiles' seams) */
  if (p->vae_tiling && m->vae && !m->taesd)
    off += snprintf(tail + off, sizeof tail - (size_t)off, ", VAE tiling: %d",
                    p->vae_tile_size > 0 ? p->vae_tile_size : sd_vae_cfg(m->vae)->sample_size);
  if (p->prompt_syntax && !strcmp(p->prompt_syntax, "plain"))
    off += snprintf(tail + off, sizeof tail - (size_t)off, ", Prompt syntax: plain");
  /* the safety summary: whoever reads the image learns that it was altered and how. One
   * "Safety" key (A1111's infotext parser keeps one value per key), quoted as A1111 quotes a
   * value with commas or colons */
  char safety[640] = "";
  int so = 0;
#define SAFETY_ADD(...) \
  (so += snprintf(safety + so, sizeof safety - (size_t)so, "%s", so ? ", " : ""), \
   so += snprintf(safety + so, sizeof safety - (size_t)so, __VA_ARGS__), \
   so = so < (int)sizeof safety ? so : (int)sizeof safety - 1)
  const sd_sld_preset *sld = NULL;
  if (p->sld && sd_sld_preset_parse(p->sld, &sld) == 0 && sld) SAFETY_ADD("SLD %s", sld->name);
  if (p->safety_negative) SAFETY_ADD("negative prompt");
  const sd_gate *gt = m->last_gate;
  const char *safe_text = p->safety_text;
  if (!safe_text && gt && gt->flagged && gt->safe_text) {
    SAFETY_ADD("%s, flagged (%.200s)", p->safety ? p->safety : "medium", gt->categories);
    if (gt->project) { /* which positions were moved: at most 16 listed (the JSON report has all) */
      SAFETY_ADD("projected token%s", gt->n_proj == 1 ? "" : "s");
      for (int i = 0; i < gt->n_proj && i < 16 && so < 400; i++)
        so += snprintf(safety + so, sizeof safety - (size_t)so, " %d", gt->proj_pos[i]);
      if (gt->n_proj > 16) so += snprintf(safety + so, sizeof safety - (size_t)so, " ...");
      if (gt->n_proj == 0) so += snprintf(safety + so, sizeof safety - (size_t)so, ": none");
      so += snprintf(safety + so, sizeof safety - (size_t)so, " (rank %d)", gt->rank);
      if (so >= (int)sizeof safety) so = (int)sizeof safety - 1;
    }
    safe_text = gt->safe_text;
  }
  if (safe_text) {
    sd_blend b = SD_BLEND_STEP;
    (void)sd_blend_parse(p->blend, &b);
    SAFETY_ADD("dual \u03bb=%g \u03c4=%g (%s)", (double)p->safety_weight, (double)p->context_steps, sd_blend_name(b));
  }
#undef SAFETY_ADD
  if (so > 0) off += infotext_value(tail + off, sizeof tail - (size_t)off, "Safety", safety);
  if (off >= (int)sizeof tail) off = (int)sizeof tail - 1;
  char verdict[256];
  if (sd_api_image_check_label(m, index, verdict, sizeof verdict))
    off += infotext_value(tail + off, sizeof tail - (size_t)off, "Image check", verdict);
  const char *neg = p->safety_negative ? (p->sld_concept ? p->sld_concept : sd_sld_default_concept)
                    : p->negative_prompt && *p->negative_prompt ? p->negative_prompt : NULL;
  size_t len = strlen(p->prompt) + (neg ? strlen(neg) : 0) + strlen(model) + strlen(tail) + 256;
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

int safesd_encode_png(const uint8_t *rgb, int width, int height, const char *parameters, uint8_t **png, size_t *size) {
  if (!rgb || !png || !size) return sd_fail(SD_E_ARG, "encode PNG: no image or no output");
  sd_png_text t = {"parameters", parameters};
  return sd_png_encode_rgb8(rgb, width, height, parameters ? &t : NULL, parameters ? 1 : 0, png, size);
}
