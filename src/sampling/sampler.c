/* The step rules of diffusers v0.25.1 (DDIMScheduler.step, PNDMScheduler.step_plms,
 * EulerDiscreteScheduler.step, EulerAncestralDiscreteScheduler.step,
 * DPMSolverMultistepScheduler.step with dpmsolver++), in float32. Scalar coefficients are
 * computed as torch computes them on 0-d float32 tensors (`** 0.5` is sqrtf, `** 2` is x*x,
 * torch.log/exp on one element are glibc logf/expf, `1 / x` is a float reciprocal), and each
 * element follows the operation order of the Python expression, so the results agree with
 * diffusers to the last bit or two.
 */
#include "sampling/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "sampling/sched_internal.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* History buffers each sampler keeps. */
static int hist_cap(sd_sampler_kind k) {
  switch (k) {
  case SD_SAMPLER_PNDM: return 4;
  case SD_SAMPLER_DPMPP_2M: return 2;
  default: return 0;
  }
}

static int uses_noise(const sd_sched_config *c) {
  return c->kind == SD_SAMPLER_EULER || c->kind == SD_SAMPLER_EULER_A ||
         (c->kind == SD_SAMPLER_DDIM && c->eta > 0.0);
}

int sd_sampler_needs_noise(const sd_schedule *s) { return uses_noise(&s->cfg); }

static void state_zero(sd_sampler_state *st) { memset(st, 0, sizeof *st); }

static int state_alloc(sd_sampler_state *st, int kind, int64_t n, int need_noise) {
  state_zero(st);
  st->n = n;
  st->kind = kind;
  st->cap_hist = hist_cap((sd_sampler_kind)kind);
  size_t bytes = sizeof(float) * (size_t)n;
  for (int i = 0; i < st->cap_hist; i++)
    if (!(st->hist[i] = malloc(bytes))) goto oom;
  if (kind == SD_SAMPLER_PNDM && !(st->cur_sample = malloc(bytes))) goto oom;
  if ((need_noise || kind == SD_SAMPLER_PNDM) && !(st->scratch = malloc(bytes))) goto oom;
  return SD_OK;
oom:
  sd_sampler_state_free(st);
  return sd_fail(SD_E_NOMEM, "sampler: out of memory for a stream of %lld elements", (long long)n);
}

int sd_sampler_init(const sd_schedule *s, int64_t n, sd_sampler_state *st) {
  if (!s || !st) return sd_fail(SD_E_ARG, "sd_sampler_init: NULL argument");
  state_zero(st);
  if (n < 1 || n > ((int64_t)1 << 34))
    return sd_fail(SD_E_ARG, "sampler: stream size %lld is out of range", (long long)n);
  return state_alloc(st, s->cfg.kind, n, uses_noise(&s->cfg));
}

void sd_sampler_reset(sd_sampler_state *st) {
  st->step = 0;
  st->begin = 0;
  st->n_hist = 0;
  st->has_cur_sample = 0;
  st->lower_order_nums = 0;
}

void sd_sampler_state_free(sd_sampler_state *st) {
  if (!st) return;
  for (int i = 0; i < SD_SAMPLER_MAX_HIST; i++) free(st->hist[i]);
  free(st->cur_sample);
  free(st->scratch);
  state_zero(st);
}

int sd_sampler_state_assign(sd_sampler_state *dst, const sd_sampler_state *src) {
  if (!dst || !src) return sd_fail(SD_E_ARG, "sd_sampler_state_assign: NULL argument");
  if (dst == src) return SD_OK;
  if (dst->kind != src->kind || dst->n != src->n || dst->cap_hist != src->cap_hist ||
      (src->cur_sample && !dst->cur_sample))
    return sd_fail(SD_E_ARG, "sampler: cannot assign a state of another sampler or size");
  size_t bytes = sizeof(float) * (size_t)src->n;
  for (int i = 0; i < src->n_hist; i++) memcpy(dst->hist[i], src->hist[i], bytes);
  if (src->has_cur_sample) memcpy(dst->cur_sample, src->cur_sample, bytes);
  dst->step = src->step;
  dst->begin = src->begin;
  dst->n_hist = src->n_hist;
  dst->has_cur_sample = src->has_cur_sample;
  dst->lower_order_nums = src->lower_order_nums;
  return SD_OK;
}

int sd_sampler_state_copy(sd_sampler_state *dst, const sd_sampler_state *src) {
  if (!dst || !src) return sd_fail(SD_E_ARG, "sd_sampler_state_copy: NULL argument");
  if (dst == src) return sd_fail(SD_E_ARG, "sd_sampler_state_copy: dst and src are the same");
  int rc = state_alloc(dst, src->kind, src->n, src->scratch != NULL);
  if (rc) return rc;
  return sd_sampler_state_assign(dst, src);
}

static void alpha_sigma(float sigma, float *alpha, float *sig);

int sd_strength_steps(int steps, double strength, int *t_start) {
  if (t_start) *t_start = 0;
  if (steps < 1) return sd_fail(SD_E_ARG, "img2img: %d steps (at least 1)", steps);
  if (!(strength >= 0.0 && strength <= 1.0))
    return sd_fail(SD_E_ARG, "strength %g is out of range (0..1)", strength);
  double prod = (double)steps * strength; /* Python: int(num_inference_steps * strength) */
  int init = (int)prod;
  if (init > steps) init = steps;
  if (t_start) *t_start = steps - init;
  return init;
}

int sd_sampler_begin_at(const sd_schedule *s, sd_sampler_state *st, int index) {
  if (!s || !st) return sd_fail(SD_E_ARG, "sd_sampler_begin_at: NULL argument");
  if (index < 0 || index >= s->len)
    return sd_fail(SD_E_ARG, "sampler: start index %d is outside the schedule's %d evaluations", index, s->len);
  sd_sampler_reset(st);
  st->step = index;
  st->begin = index;
  return SD_OK;
}

int sd_sampler_add_noise(const sd_schedule *s, int index, const float *x0, const float *noise, float *out,
                         int64_t n) {
  if (!s || !x0 || !noise || !out) return sd_fail(SD_E_ARG, "sd_sampler_add_noise: NULL argument");
  if (index < 0 || index >= s->len)
    return sd_fail(SD_E_ARG, "sampler: noise index %d is outside the schedule's %d evaluations", index, s->len);
  switch (s->cfg.kind) {
  case SD_SAMPLER_DDIM:
  case SD_SAMPLER_PNDM: {
    const int64_t t = s->t_int[index];
    const float a = s->alphas_cumprod[t];
    const float sa = sqrtf(a), sb = sqrtf(1.0f - a);
    for (int64_t i = 0; i < n; i++) out[i] = sa * x0[i] + sb * noise[i];
    break;
  }
  case SD_SAMPLER_EULER:
  case SD_SAMPLER_EULER_A: {
    const float sigma = s->sigmas[index];
    for (int64_t i = 0; i < n; i++) out[i] = x0[i] + noise[i] * sigma;
    break;
  }
  case SD_SAMPLER_DPMPP_2M: {
    float a, sg;
    alpha_sigma(s->sigmas[index], &a, &sg);
    for (int64_t i = 0; i < n; i++) out[i] = a * x0[i] + sg * noise[i];
    break;
  }
  default: return sd_fail(SD_E_INTERNAL, "sampler: bad kind");
  }
  return SD_OK;
}

int sd_sampler_predict_x0(const sd_schedule *s, const sd_sampler_state *st, const float *model_out, const float *x,
                          float *out, int64_t n) {
  if (!s || !st || !model_out || !x || !out) return sd_fail(SD_E_ARG, "sd_sampler_predict_x0: NULL argument");
  if (st->step < 0 || st->step >= s->len) return sd_fail(SD_E_ARG, "sampler: no evaluation left to predict from");
  const int v = s->cfg.prediction != SD_PRED_EPSILON;
  float a, b; /* x = a·x0 + b·ε (and v = a·ε − b·x0, with a² + b² = 1 where v is defined) */
  switch (s->cfg.kind) {
  case SD_SAMPLER_DDIM:
  case SD_SAMPLER_PNDM: {
    const float ac = s->alphas_cumprod[s->t_int[st->step]];
    a = sqrtf(ac), b = sqrtf(1.0f - ac);
    break;
  }
  case SD_SAMPLER_EULER:
  case SD_SAMPLER_EULER_A: { /* x = x0 + σ·ε; the model sees x/sqrt(σ²+1) */
    const float sg = s->sigmas[st->step], s2p1 = sg * sg + 1.0f, vc = -sg / sqrtf(s2p1);
    for (int64_t i = 0; i < n; i++) out[i] = v ? model_out[i] * vc + x[i] / s2p1 : x[i] - sg * model_out[i];
    return SD_OK;
  }
  case SD_SAMPLER_DPMPP_2M: alpha_sigma(s->sigmas[st->step], &a, &b); break;
  default: return sd_fail(SD_E_INTERNAL, "sampler: bad kind");
  }
  for (int64_t i = 0; i < n; i++) out[i] = v ? a * x[i] - b * model_out[i] : (x[i] - b * model_out[i]) / a;
  return SD_OK;
}

int sd_sampler_done(const sd_schedule *s, const sd_sampler_state *st) { return st->step >= s->len; }

float sd_sampler_timestep(const sd_schedule *s, const sd_sampler_state *st) {
  int i = st->step < s->len ? st->step : s->len - 1;
  return s->timesteps[i];
}

void sd_sampler_init_latents(const sd_schedule *s, sd_rng *g, float *latents, int64_t n) {
  sd_rng_randn(g, latents, n);
  const float k = s->init_noise_sigma;
  for (int64_t i = 0; i < n; i++) latents[i] = latents[i] * k;
}

float sd_sampler_input_divisor(const sd_schedule *s, int step) {
  if (s->cfg.kind != SD_SAMPLER_EULER && s->cfg.kind != SD_SAMPLER_EULER_A) return 1.0f;
  if (step < 0) step = 0;
  if (step >= s->len) step = s->len - 1;
  float sigma = s->sigmas[step];
  return sqrtf(sigma * sigma + 1.0f);
}

void sd_sampler_scale_input(const sd_schedule *s, const sd_sampler_state *st, const float *x,
                            float *out) {
  const float d = sd_sampler_input_divisor(s, st->step);
  const int64_t n = st->n;
  if (d == 1.0f) {
    if (out != x) memcpy(out, x, sizeof(float) * (size_t)n);
    return;
  }
  for (int64_t i = 0; i < n; i++) out[i] = x[i] / d;
}

/* ------------------------------------------------------------------ DDIM ----------------- */

static void step_ddim(const sd_schedule *s, sd_sampler_state *st, const float *e, float *x,
                      const float *noise) {
  const sd_sched_config *c = &s->cfg;
  const int64_t n = st->n;
  const int64_t t = s->t_int[st->step];
  const int64_t prev = t - s->ratio;
  const float a_t = s->alphas_cumprod[t];
  const float a_prev = prev >= 0 ? s->alphas_cumprod[prev] : s->final_alpha_cumprod;
  const float b_t = 1.0f - a_t;
  const float b_prev = 1.0f - a_prev;
  const float sa = sqrtf(a_t), sb = sqrtf(b_t);
  const float variance = (b_prev / b_t) * (1.0f - a_t / a_prev);
  const float std_dev = (float)c->eta * sqrtf(variance);
  const float dir = sqrtf(1.0f - a_prev - std_dev * std_dev);
  const float sap = sqrtf(a_prev);
  const float lo = -(float)c->clip_sample_range, hi = (float)c->clip_sample_range;
  for (int64_t i = 0; i < n; i++) {
    float x0, pe;
    if (c->prediction == SD_PRED_EPSILON) {
      x0 = (x[i] - sb * e[i]) / sa;
      pe = e[i];
    } else {
      x0 = sa * x[i] - sb * e[i];
      pe = sa * e[i] + sb * x[i];
    }
    if (c->clip_sample) x0 = x0 < lo ? lo : (x0 > hi ? hi : x0);
    float p = sap * x0 + dir * pe;
    if (c->eta > 0.0) p = p + std_dev * noise[i];
    x[i] = p;
  }
}

/* ------------------------------------------------------------------ PNDM (PLMS) ---------- */

static void pndm_prev_sample(const sd_schedule *s, const float *sample, int64_t t, int64_t prev,
                             float *mo, float *out, int64_t n) {
  const float a_t = s->alphas_cumprod[t];
  const float a_prev = prev >= 0 ? s->alphas_cumprod[prev] : s->final_alpha_cumprod;
  const float b_t = 1.0f - a_t;
  const float b_prev = 1.0f - a_prev;
  if (s->cfg.prediction == SD_PRED_V) {
    const float sa = sqrtf(a_t), sb = sqrtf(b_t);
    for (int64_t i = 0; i < n; i++) mo[i] = sa * mo[i] + sb * sample[i];
  }
  const float sample_coeff = sqrtf(a_prev / a_t);
  const float denom = a_t * sqrtf(b_prev) + sqrtf(a_t * b_t * a_prev);
  const float diff = a_prev - a_t;
  for (int64_t i = 0; i < n; i++) out[i] = sample_coeff * sample[i] - (diff * mo[i]) / denom;
}

static void step_pndm(const sd_schedule *s, sd_sampler_state *st, const float *e, float *x,
                      float *mo) {
  const int64_t n = st->n;
  const int counter = st->step - st->begin; /* diffusers' self.counter: 0 at the stream's start */
  int64_t t = s->t_int[st->step];
  int64_t prev = t - s->ratio;
  size_t bytes = sizeof(float) * (size_t)n;
  if (counter != 1) {
    /* ets = ets[-3:] + [e] */
    if (st->n_hist == 4) {
      float *old = st->hist[0];
      memmove(&st->hist[0], &st->hist[1], 3 * sizeof(float *));
      st->hist[3] = old;
      st->n_hist = 3;
    }
    memcpy(st->hist[st->n_hist], e, bytes);
    st->n_hist++;
  } else {
    prev = t;
    t = t + s->ratio;
  }
  const int k = st->n_hist;
  const float *e1 = st->hist[k - 1];
  const float *sample = x;
  if (k == 1 && counter == 0) {
    memcpy(mo, e, bytes);
    memcpy(st->cur_sample, x, bytes);
    st->has_cur_sample = 1;
  } else if (k == 1 && counter == 1) {
    for (int64_t i = 0; i < n; i++) mo[i] = (e[i] + e1[i]) / 2.0f;
    sample = st->cur_sample;
    st->has_cur_sample = 0;
  } else if (k == 2) {
    const float *e2 = st->hist[k - 2];
    for (int64_t i = 0; i < n; i++) mo[i] = (3.0f * e1[i] - e2[i]) / 2.0f;
  } else if (k == 3) {
    const float *e2 = st->hist[k - 2], *e3 = st->hist[k - 3];
    for (int64_t i = 0; i < n; i++) mo[i] = (23.0f * e1[i] - 16.0f * e2[i] + 5.0f * e3[i]) / 12.0f;
  } else {
    const float *e2 = st->hist[k - 2], *e3 = st->hist[k - 3], *e4 = st->hist[k - 4];
    const float c = (float)(1.0 / 24.0);
    for (int64_t i = 0; i < n; i++)
      mo[i] = c * (55.0f * e1[i] - 59.0f * e2[i] + 37.0f * e3[i] - 9.0f * e4[i]);
  }
  /* sample may be cur_sample (the duplicated step restarts from it); write into x */
  pndm_prev_sample(s, sample, t, prev, mo, x, n);
}

/* ------------------------------------------------------------------ Euler ---------------- */

static void step_euler(const sd_schedule *s, sd_sampler_state *st, const float *e, float *x,
                       const float *noise) {
  const sd_sched_config *c = &s->cfg;
  const int64_t n = st->n;
  const int i0 = st->step;
  const float sigma = s->sigmas[i0];
  double gamma = 0.0;
  if (c->s_tmin <= (double)sigma && (double)sigma <= c->s_tmax) {
    gamma = c->s_churn / (double)s->len; /* len(sigmas) - 1 */
    if (gamma > sqrt(2.0) - 1) gamma = sqrt(2.0) - 1;
  }
  const float sigma_hat = sigma * (float)(gamma + 1);
  const float sigma_next = s->sigmas[i0 + 1];
  const float dt = sigma_next - sigma_hat;
  float churn = 0.0f;
  if (gamma > 0) churn = sqrtf(sigma_hat * sigma_hat - sigma * sigma);
  const float s_noise = (float)c->s_noise;
  const float s2p1 = sigma * sigma + 1.0f;
  const float vc = -sigma / sqrtf(s2p1);
  for (int64_t i = 0; i < n; i++) {
    float xi = x[i];
    if (gamma > 0) xi = xi + (noise[i] * s_noise) * churn;
    float x0 = c->prediction == SD_PRED_EPSILON ? xi - sigma_hat * e[i] : e[i] * vc + xi / s2p1;
    float d = (xi - x0) / sigma_hat;
    x[i] = xi + d * dt;
  }
}

static void step_euler_a(const sd_schedule *s, sd_sampler_state *st, const float *e, float *x,
                         const float *noise) {
  const sd_sched_config *c = &s->cfg;
  const int64_t n = st->n;
  const float sigma = s->sigmas[st->step];
  const float sigma_to = s->sigmas[st->step + 1];
  const float sf2 = sigma * sigma, st2 = sigma_to * sigma_to;
  const float sigma_up = sqrtf(st2 * (sf2 - st2) / sf2);
  const float sigma_down = sqrtf(st2 - sigma_up * sigma_up);
  const float dt = sigma_down - sigma;
  const float s2p1 = sigma * sigma + 1.0f;
  const float vc = -sigma / sqrtf(s2p1);
  for (int64_t i = 0; i < n; i++) {
    float xi = x[i];
    float x0 = c->prediction == SD_PRED_EPSILON ? xi - sigma * e[i] : e[i] * vc + xi / s2p1;
    float d = (xi - x0) / sigma;
    float p = xi + d * dt;
    x[i] = p + noise[i] * sigma_up;
  }
}

/* ------------------------------------------------------------------ DPM-Solver++ 2M ------ */

static void alpha_sigma(float sigma, float *alpha, float *sig) {
  float a = 1.0f / sqrtf(sigma * sigma + 1.0f);
  *alpha = a;
  *sig = sigma * a;
}

static void step_dpmpp_2m(const sd_schedule *s, sd_sampler_state *st, const float *e, float *x) {
  const sd_sched_config *c = &s->cfg;
  const int64_t n = st->n;
  const int i0 = st->step, N = s->len;
  const int lower_final = (i0 == N - 1) && (c->euler_at_final || (c->lower_order_final && N < 15));
  /* model_outputs shift: [older, newer] <- [newer, x0]. With one output so far it is in
   * hist[0] and the new one goes to hist[1]; with two, the buffers rotate. */
  if (st->n_hist == 2) {
    float *old = st->hist[0];
    st->hist[0] = st->hist[1];
    st->hist[1] = old;
  }
  float *m0 = st->hist[st->n_hist == 0 ? 0 : 1];
  {
    float a, sg;
    alpha_sigma(s->sigmas[i0], &a, &sg);
    for (int64_t i = 0; i < n; i++)
      m0[i] = c->prediction == SD_PRED_EPSILON ? (x[i] - sg * e[i]) / a : a * x[i] - sg * e[i];
  }
  if (st->n_hist < 2) st->n_hist++;
  float a_t, s_t, a_s0, s_s0;
  alpha_sigma(s->sigmas[i0 + 1], &a_t, &s_t);
  alpha_sigma(s->sigmas[i0], &a_s0, &s_s0);
  const float lambda_t = logf(a_t) - logf(s_t);
  const float lambda_s0 = logf(a_s0) - logf(s_s0);
  const float h = lambda_t - lambda_s0;
  const float c_x = s_t / s_s0;
  const float c_d0 = a_t * (expf(-h) - 1.0f);
  if (c->solver_order == 1 || st->lower_order_nums < 1 || lower_final) {
    for (int64_t i = 0; i < n; i++) x[i] = c_x * x[i] - c_d0 * m0[i];
  } else {
    const float *m1 = st->hist[0];
    float a_s1, s_s1;
    alpha_sigma(s->sigmas[i0 - 1], &a_s1, &s_s1);
    const float lambda_s1 = logf(a_s1) - logf(s_s1);
    const float h0 = lambda_s0 - lambda_s1;
    const float r0 = h0 / h;
    const float inv_r0 = 1.0f / r0;
    float c_d1;
    if (!c->solver_heun) {
      c_d1 = 0.5f * (a_t * (expf(-h) - 1.0f));
      for (int64_t i = 0; i < n; i++) {
        float d1 = inv_r0 * (m0[i] - m1[i]);
        x[i] = c_x * x[i] - c_d0 * m0[i] - c_d1 * d1;
      }
    } else {
      c_d1 = a_t * ((expf(-h) - 1.0f) / h + 1.0f);
      for (int64_t i = 0; i < n; i++) {
        float d1 = inv_r0 * (m0[i] - m1[i]);
        x[i] = c_x * x[i] - c_d0 * m0[i] + c_d1 * d1;
      }
    }
  }
  if (st->lower_order_nums < c->solver_order) st->lower_order_nums++;
}

/* ------------------------------------------------------------------ dispatch ------------- */

int sd_sampler_step_noise(const sd_schedule *s, sd_sampler_state *st, const float *model_out,
                          float *latents, const float *noise) {
  if (!s || !st || !model_out || !latents) return sd_fail(SD_E_ARG, "sd_sampler_step: NULL argument");
  const sd_sched_config *c = &s->cfg;
  if (st->kind != (int)c->kind || (st->cap_hist != hist_cap(c->kind)))
    return sd_fail(SD_E_ARG, "sampler: the state was made for another sampler");
  if (st->step < 0 || st->step >= s->len)
    return sd_fail(SD_E_ARG, "%s: the schedule is finished (%d model evaluations)",
                   sd_sampler_kind_name(c->kind), s->len);
  int needs = uses_noise(c);
  if (c->kind == SD_SAMPLER_EULER && c->s_churn == 0.0) needs = 0; /* drawn but unused */
  if (needs && !noise)
    return sd_fail(SD_E_ARG, "%s: this step needs noise (a generator)", sd_sampler_kind_name(c->kind));
  switch (c->kind) {
  case SD_SAMPLER_DDIM: step_ddim(s, st, model_out, latents, noise); break;
  case SD_SAMPLER_PNDM:
    if (!st->scratch || !st->cur_sample) return sd_fail(SD_E_ARG, "pndm: state not made by sd_sampler_init");
    step_pndm(s, st, model_out, latents, st->scratch); /* the combined ε' in scratch */
    break;
  case SD_SAMPLER_EULER: step_euler(s, st, model_out, latents, noise); break;
  case SD_SAMPLER_EULER_A: step_euler_a(s, st, model_out, latents, noise); break;
  case SD_SAMPLER_DPMPP_2M: step_dpmpp_2m(s, st, model_out, latents); break;
  default: return sd_fail(SD_E_INTERNAL, "sampler: bad kind");
  }
  st->step++;
  return SD_OK;
}

int sd_sampler_step(const sd_schedule *s, sd_sampler_state *st, const float *model_out,
                    float *latents, sd_rng *rng) {
  if (!s || !st) return sd_fail(SD_E_ARG, "sd_sampler_step: NULL argument");
  const float *noise = NULL;
  if (uses_noise(&s->cfg) && rng) {
    if (st->step < 0 || st->step >= s->len)
      return sd_fail(SD_E_ARG, "%s: the schedule is finished (%d model evaluations)",
                     sd_sampler_kind_name(s->cfg.kind), s->len);
    if (!st->scratch) return sd_fail(SD_E_ARG, "sampler: state has no noise buffer (not made by sd_sampler_init?)");
    sd_rng_randn(rng, st->scratch, st->n);
    noise = st->scratch;
  }
  return sd_sampler_step_noise(s, st, model_out, latents, noise);
}
