/* Noise schedules and timesteps, transcribed from diffusers v0.25.1 set_timesteps() and
 * __init__() of DDIMScheduler, PNDMScheduler, EulerDiscreteScheduler,
 * EulerAncestralDiscreteScheduler and DPMSolverMultistepScheduler, with the numeric types
 * they use:
 *  - betas: torch.linspace(..., dtype=float32) (emulated to the bit: see linspace_f32), then
 *    `** 2` for scaled_linear; alphas = 1 - betas in float32;
 *  - alphas_cumprod: torch.cumprod on float32, which accumulates in double on the CPU and
 *    rounds every partial product to float32;
 *  - sigmas: ((1 - ac) / ac) ** 0.5 in float32, interpolated at the timesteps by np.interp in
 *    float64, then rounded to float32; Karras sigmas and sigma->t in float64 (numpy).
 */
#include "sampling/schedule.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/json_util.h"
#include "sampling/sched_internal.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* ------------------------------------------------------------------ names ---------------- */

static const char *const kind_names[SD_SAMPLER_COUNT] = {"ddim", "pndm", "euler", "euler_a",
                                                         "dpm++2m"};
static const char *const kind_classes[SD_SAMPLER_COUNT] = {
    "DDIMScheduler", "PNDMScheduler", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler",
    "DPMSolverMultistepScheduler"};

static int streq_ci(const char *a, const char *b) {
  for (; *a && *b; a++, b++)
    if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
  return *a == *b;
}

int sd_sampler_kind_parse(const char *name, sd_sampler_kind *out) {
  static const struct { const char *n; sd_sampler_kind k; } tab[] = {
      {"ddim", SD_SAMPLER_DDIM},         {"pndm", SD_SAMPLER_PNDM},
      {"plms", SD_SAMPLER_PNDM},         {"euler", SD_SAMPLER_EULER},
      {"euler_a", SD_SAMPLER_EULER_A},   {"euler-a", SD_SAMPLER_EULER_A},
      {"euler_ancestral", SD_SAMPLER_EULER_A}, {"dpm++2m", SD_SAMPLER_DPMPP_2M},
      {"dpm++_2m", SD_SAMPLER_DPMPP_2M}, {"dpmpp_2m", SD_SAMPLER_DPMPP_2M},
      {"dpmpp2m", SD_SAMPLER_DPMPP_2M},  {"dpm++-2m", SD_SAMPLER_DPMPP_2M}};
  if (!name || !out) return sd_fail(SD_E_ARG, "sampler name: NULL argument");
  for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
    if (streq_ci(name, tab[i].n)) { *out = tab[i].k; return SD_OK; }
  char q[80];
  return sd_fail(SD_E_ARG, "unknown sampler '%s' (expected ddim, pndm, plms, euler, euler_a or dpm++2m)",
                 sd_msg_quote(name, q, sizeof q));
}

const char *sd_sampler_kind_name(sd_sampler_kind kind) {
  return (kind >= 0 && kind < SD_SAMPLER_COUNT) ? kind_names[kind] : "?";
}

const char *sd_sampler_kind_class(sd_sampler_kind kind) {
  return (kind >= 0 && kind < SD_SAMPLER_COUNT) ? kind_classes[kind] : "?";
}

int sd_sigma_schedule_parse(const char *name, sd_sigma_schedule *out) {
  if (!name || !out) return sd_fail(SD_E_ARG, "sigma schedule name: NULL argument");
  if (streq_ci(name, "discrete")) { *out = SD_SIGMAS_DISCRETE; return SD_OK; }
  if (streq_ci(name, "karras")) { *out = SD_SIGMAS_KARRAS; return SD_OK; }
  char q[80];
  return sd_fail(SD_E_ARG, "unknown schedule '%s' (expected discrete or karras)",
                 sd_msg_quote(name, q, sizeof q));
}

const char *sd_sigma_schedule_name(sd_sigma_schedule s) {
  return s == SD_SIGMAS_KARRAS ? "karras" : "discrete";
}

/* ------------------------------------------------------------------ configs -------------- */

void sd_sched_config_default(sd_sched_config *c, sd_sampler_kind kind) {
  memset(c, 0, sizeof *c);
  c->kind = kind;
  c->num_train_timesteps = 1000;
  c->beta_start = 0.0001;
  c->beta_end = 0.02;
  c->beta_schedule = SD_BETA_LINEAR;
  c->prediction = SD_PRED_EPSILON;
  c->spacing = SD_SPACING_LINSPACE;
  c->steps_offset = 0;
  c->sigmas = SD_SIGMAS_DISCRETE;
  c->sigma_min = NAN;
  c->sigma_max = NAN;
  c->set_alpha_to_one = 0;
  c->skip_prk_steps = 1; /* diffusers' PNDMScheduler default is False (PRK warm-up): not done here */
  c->clip_sample = 0;
  c->clip_sample_range = 1.0;
  c->eta = 0.0;
  c->s_churn = 0.0;
  c->s_tmin = 0.0;
  c->s_tmax = INFINITY;
  c->s_noise = 1.0;
  c->solver_order = 2;
  c->solver_heun = 0;
  c->lower_order_final = 1;
  c->euler_at_final = 0;
  switch (kind) {
  case SD_SAMPLER_DDIM:
    c->spacing = SD_SPACING_LEADING;
    c->clip_sample = 1;
    c->set_alpha_to_one = 1;
    break;
  case SD_SAMPLER_PNDM:
    c->spacing = SD_SPACING_LEADING;
    break;
  default:
    break;
  }
}

void sd_sched_config_sd15(sd_sched_config *c, sd_sampler_kind kind) {
  sd_sched_config_default(c, kind);
  c->beta_start = 0.00085;
  c->beta_end = 0.012;
  c->beta_schedule = SD_BETA_SCALED_LINEAR;
  c->spacing = SD_SPACING_LEADING;
  c->steps_offset = 1;
  c->set_alpha_to_one = 0;
  c->clip_sample = 0;
  c->skip_prk_steps = 1;
}

int sd_sched_config_check(const sd_sched_config *c) {
  if (!c) return sd_fail(SD_E_ARG, "scheduler config: NULL");
  if (c->kind < 0 || c->kind >= SD_SAMPLER_COUNT)
    return sd_fail(SD_E_ARG, "scheduler config: invalid sampler kind %d", (int)c->kind);
  const char *nm = kind_names[c->kind];
  if (c->num_train_timesteps < 2 || c->num_train_timesteps > 100000)
    return sd_fail(SD_E_ARG, "%s: num_train_timesteps %d is out of range [2, 100000]", nm,
                   c->num_train_timesteps);
  if (c->beta_schedule != SD_BETA_SQUAREDCOS_CAP_V2 &&
      !(c->beta_start > 0.0 && c->beta_start < 1.0 && c->beta_end > 0.0 && c->beta_end < 1.0))
    return sd_fail(SD_E_ARG, "%s: beta_start %g / beta_end %g must be in (0, 1)", nm, c->beta_start,
                   c->beta_end);
  if (c->steps_offset < 0 || c->steps_offset > c->num_train_timesteps)
    return sd_fail(SD_E_ARG, "%s: steps_offset %d is out of range", nm, c->steps_offset);
  if (c->prediction != SD_PRED_EPSILON && c->prediction != SD_PRED_V)
    return sd_fail(SD_E_ARG, "%s: invalid prediction type", nm);
  if (c->sigmas == SD_SIGMAS_KARRAS && (c->kind == SD_SAMPLER_DDIM || c->kind == SD_SAMPLER_PNDM))
    return sd_fail(SD_E_UNSUPPORTED,
                   "%s: Karras sigmas are only for euler, euler_a and dpm++2m (diffusers' %s has none)",
                   nm, kind_classes[c->kind]);
  if (c->kind == SD_SAMPLER_PNDM && !c->skip_prk_steps)
    return sd_fail(SD_E_UNSUPPORTED,
                   "pndm: skip_prk_steps false (Runge-Kutta warm-up steps) is not implemented; only PLMS");
  if (c->kind == SD_SAMPLER_DDIM && !(c->eta >= 0.0 && c->eta <= 100.0))
    return sd_fail(SD_E_ARG, "ddim: eta %g is out of range [0, 100]", c->eta);
  if (c->kind == SD_SAMPLER_DDIM && c->clip_sample && !(c->clip_sample_range > 0.0))
    return sd_fail(SD_E_ARG, "ddim: clip_sample_range %g must be positive", c->clip_sample_range);
  if (c->kind == SD_SAMPLER_EULER &&
      !(c->s_churn >= 0.0 && c->s_noise >= 0.0 && isfinite(c->s_churn) && isfinite(c->s_noise) &&
        !isnan(c->s_tmin) && !isnan(c->s_tmax)))
    return sd_fail(SD_E_ARG, "euler: invalid s_churn/s_tmin/s_tmax/s_noise");
  if (c->kind == SD_SAMPLER_DPMPP_2M && c->solver_order != 1 && c->solver_order != 2)
    return sd_fail(SD_E_UNSUPPORTED, "dpm++2m: solver_order %d is not implemented (1 or 2)",
                   c->solver_order);
  if (c->sigmas == SD_SIGMAS_KARRAS) {
    if ((!isnan(c->sigma_min) && !(c->sigma_min > 0.0 && isfinite(c->sigma_min))) ||
        (!isnan(c->sigma_max) && !(c->sigma_max > 0.0 && isfinite(c->sigma_max))))
      return sd_fail(SD_E_ARG, "%s: sigma_min/sigma_max must be positive", nm);
  }
  return SD_OK;
}

/* One key of a scheduler_config.json that this class takes. */
static int takes(sd_sampler_kind k, const char *key) {
  /* keys every class in scope takes */
  static const char *const common[] = {"num_train_timesteps", "beta_start", "beta_end",
                                       "beta_schedule", "trained_betas", "prediction_type",
                                       "timestep_spacing", "steps_offset"};
  for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
    if (!strcmp(key, common[i])) return 1;
  static const struct { sd_sampler_kind k; const char *key; } own[] = {
      {SD_SAMPLER_DDIM, "clip_sample"},          {SD_SAMPLER_DDIM, "set_alpha_to_one"},
      {SD_SAMPLER_DDIM, "thresholding"},         {SD_SAMPLER_DDIM, "clip_sample_range"},
      {SD_SAMPLER_DDIM, "rescale_betas_zero_snr"},
      {SD_SAMPLER_PNDM, "skip_prk_steps"},       {SD_SAMPLER_PNDM, "set_alpha_to_one"},
      {SD_SAMPLER_EULER, "interpolation_type"},  {SD_SAMPLER_EULER, "use_karras_sigmas"},
      {SD_SAMPLER_EULER, "sigma_min"},           {SD_SAMPLER_EULER, "sigma_max"},
      {SD_SAMPLER_EULER, "timestep_type"},       {SD_SAMPLER_EULER, "rescale_betas_zero_snr"},
      {SD_SAMPLER_EULER_A, "rescale_betas_zero_snr"},
      {SD_SAMPLER_EULER_A, "use_karras_sigmas"}, /* this library's extension */
      {SD_SAMPLER_DPMPP_2M, "solver_order"},     {SD_SAMPLER_DPMPP_2M, "thresholding"},
      {SD_SAMPLER_DPMPP_2M, "algorithm_type"},   {SD_SAMPLER_DPMPP_2M, "solver_type"},
      {SD_SAMPLER_DPMPP_2M, "lower_order_final"}, {SD_SAMPLER_DPMPP_2M, "euler_at_final"},
      {SD_SAMPLER_DPMPP_2M, "use_karras_sigmas"}, {SD_SAMPLER_DPMPP_2M, "use_lu_lambdas"},
      {SD_SAMPLER_DPMPP_2M, "lambda_min_clipped"}, {SD_SAMPLER_DPMPP_2M, "variance_type"},
      {SD_SAMPLER_DPMPP_2M, "sigma_min"},        {SD_SAMPLER_DPMPP_2M, "sigma_max"}};
  for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
    if (own[i].k == k && !strcmp(key, own[i].key)) return 1;
  return 0;
}

#define TAKES(key) (takes(kind, key) && sd_json_has(obj, key))

static int get_choice(const json_t *obj, const char *key, const char *path, const char *const *names,
                      const int *values, int n_names, int *out) {
  const char *s = NULL;
  int rc = sd_json_get_str(obj, key, path, &s, 0);
  if (rc || !s) return rc;
  for (int i = 0; i < n_names; i++)
    if (!strcmp(s, names[i])) { *out = values[i]; return SD_OK; }
  char q[80];
  return sd_fail(SD_E_UNSUPPORTED, "%s: key '%s': value '%s' is not supported", path ? path : "<json>",
                 key, sd_msg_quote(s, q, sizeof q));
}

static int get_true_unsupported(const json_t *obj, const char *key, const char *path,
                                sd_sampler_kind kind) {
  if (!TAKES(key)) return SD_OK;
  int b = 0, rc = sd_json_get_bool(obj, key, path, &b, 0);
  if (rc) return rc;
  if (b)
    return sd_fail(SD_E_UNSUPPORTED, "%s: key '%s': true is not supported", path ? path : "<json>", key);
  return SD_OK;
}

/* sigma_min / sigma_max: a positive number or null (None). */
static int get_opt_pos(const json_t *obj, const char *key, const char *path, double *out) {
  return sd_json_get_num(obj, key, path, 1e-30, 1e30, out, 0);
}

int sd_sched_config_from_json(const json_t *obj, const char *path, sd_sampler_kind kind,
                              sd_sched_config *out) {
  int rc;
  if (!obj || !out) return sd_fail(SD_E_ARG, "scheduler config: NULL argument");
  if (!json_is_object(obj)) return sd_fail(SD_E_FORMAT, "%s: not a JSON object", path ? path : "<json>");
  const char *P = path ? path : "scheduler_config.json";
  if (kind == SD_SAMPLER_AUTO) {
    const char *cls = NULL;
    if ((rc = sd_json_get_str(obj, "_class_name", P, &cls, 1))) return rc;
    kind = SD_SAMPLER_COUNT;
    for (int k = 0; k < SD_SAMPLER_COUNT; k++)
      if (!strcmp(cls, kind_classes[k])) kind = (sd_sampler_kind)k;
    if (kind == SD_SAMPLER_COUNT) {
      char q[80];
      return sd_fail(SD_E_UNSUPPORTED, "%s: scheduler class '%s' is not supported (DDIM, PNDM, "
                     "EulerDiscrete, EulerAncestralDiscrete, DPMSolverMultistep)",
                     P, sd_msg_quote(cls, q, sizeof q));
    }
  } else if (kind < 0 || kind >= SD_SAMPLER_COUNT) {
    return sd_fail(SD_E_ARG, "scheduler config: invalid sampler kind %d", (int)kind);
  }
  sd_sched_config c;
  sd_sched_config_default(&c, kind);

  if (TAKES("num_train_timesteps") &&
      (rc = sd_json_get_i32(obj, "num_train_timesteps", P, 2, 100000, &c.num_train_timesteps, 0)))
    return rc;
  if ((rc = sd_json_get_num(obj, "beta_start", P, 1e-12, 0.999999, &c.beta_start, 0))) return rc;
  if ((rc = sd_json_get_num(obj, "beta_end", P, 1e-12, 0.999999, &c.beta_end, 0))) return rc;
  {
    static const char *const n[] = {"linear", "scaled_linear", "squaredcos_cap_v2"};
    static const int v[] = {SD_BETA_LINEAR, SD_BETA_SCALED_LINEAR, SD_BETA_SQUAREDCOS_CAP_V2};
    int b = (int)c.beta_schedule;
    if ((rc = get_choice(obj, "beta_schedule", P, n, v, 3, &b))) return rc;
    c.beta_schedule = (sd_beta_schedule)b;
  }
  if (sd_json_has(obj, "trained_betas"))
    return sd_fail(SD_E_UNSUPPORTED, "%s: key 'trained_betas': explicit betas are not supported", P);
  {
    static const char *const n[] = {"epsilon", "v_prediction"};
    static const int v[] = {SD_PRED_EPSILON, SD_PRED_V};
    int p = (int)c.prediction;
    if ((rc = get_choice(obj, "prediction_type", P, n, v, 2, &p))) return rc;
    c.prediction = (sd_prediction)p;
  }
  {
    static const char *const n[] = {"leading", "trailing", "linspace"};
    static const int v[] = {SD_SPACING_LEADING, SD_SPACING_TRAILING, SD_SPACING_LINSPACE};
    int s = (int)c.spacing;
    if ((rc = get_choice(obj, "timestep_spacing", P, n, v, 3, &s))) return rc;
    c.spacing = (sd_timestep_spacing)s;
  }
  if ((rc = sd_json_get_i32(obj, "steps_offset", P, 0, 100000, &c.steps_offset, 0))) return rc;
  if (TAKES("set_alpha_to_one") && (rc = sd_json_get_bool(obj, "set_alpha_to_one", P, &c.set_alpha_to_one, 0)))
    return rc;
  if (TAKES("skip_prk_steps") && (rc = sd_json_get_bool(obj, "skip_prk_steps", P, &c.skip_prk_steps, 0)))
    return rc;
  if (TAKES("clip_sample") && (rc = sd_json_get_bool(obj, "clip_sample", P, &c.clip_sample, 0)))
    return rc;
  if (TAKES("clip_sample_range") &&
      (rc = sd_json_get_num(obj, "clip_sample_range", P, 1e-30, 1e30, &c.clip_sample_range, 0)))
    return rc;
  if ((rc = get_true_unsupported(obj, "thresholding", P, kind)) ||
      (rc = get_true_unsupported(obj, "rescale_betas_zero_snr", P, kind)) ||
      (rc = get_true_unsupported(obj, "use_lu_lambdas", P, kind)))
    return rc;
  if (TAKES("use_karras_sigmas")) {
    int k = 0;
    if ((rc = sd_json_get_bool(obj, "use_karras_sigmas", P, &k, 0))) return rc;
    c.sigmas = k ? SD_SIGMAS_KARRAS : SD_SIGMAS_DISCRETE;
  }
  if (TAKES("sigma_min") && (rc = get_opt_pos(obj, "sigma_min", P, &c.sigma_min))) return rc;
  if (TAKES("sigma_max") && (rc = get_opt_pos(obj, "sigma_max", P, &c.sigma_max))) return rc;
  if (TAKES("interpolation_type")) {
    static const char *const n[] = {"linear"};
    static const int v[] = {0};
    int d = 0;
    if ((rc = get_choice(obj, "interpolation_type", P, n, v, 1, &d))) return rc;
  }
  if (TAKES("timestep_type")) {
    static const char *const n[] = {"discrete", "continuous"};
    static const int v[] = {0, 1};
    int t = 0;
    if ((rc = get_choice(obj, "timestep_type", P, n, v, 2, &t))) return rc;
    if (t == 1 && c.prediction == SD_PRED_V)
      return sd_fail(SD_E_UNSUPPORTED, "%s: key 'timestep_type': continuous timesteps with "
                     "v_prediction are not supported", P);
  }
  if (TAKES("solver_order") && (rc = sd_json_get_i32(obj, "solver_order", P, 1, 3, &c.solver_order, 0)))
    return rc;
  if (TAKES("algorithm_type")) {
    static const char *const n[] = {"dpmsolver++", "deis"};
    static const int v[] = {0, 0};
    int a = 0;
    if ((rc = get_choice(obj, "algorithm_type", P, n, v, 2, &a))) return rc;
  }
  if (TAKES("solver_type")) {
    static const char *const n[] = {"midpoint", "heun", "logrho", "bh1", "bh2"};
    static const int v[] = {0, 1, 0, 0, 0};
    if ((rc = get_choice(obj, "solver_type", P, n, v, 5, &c.solver_heun))) return rc;
  }
  if (TAKES("lower_order_final") &&
      (rc = sd_json_get_bool(obj, "lower_order_final", P, &c.lower_order_final, 0)))
    return rc;
  if (TAKES("euler_at_final") && (rc = sd_json_get_bool(obj, "euler_at_final", P, &c.euler_at_final, 0)))
    return rc;
  if (TAKES("lambda_min_clipped")) {
    /* only the default, -inf (which JSON cannot hold: Python writes -Infinity, or a string) */
    const json_t *v = json_object_get(obj, "lambda_min_clipped");
    int ok = json_is_string(v) && (!strcmp(json_string_value(v), "-inf") ||
                                   !strcmp(json_string_value(v), "-Infinity"));
    if (json_is_number(v) && json_number_value(v) < -1e300) ok = 1;
    if (!ok)
      return sd_fail(SD_E_UNSUPPORTED, "%s: key 'lambda_min_clipped': only -inf is supported", P);
  }
  if (TAKES("variance_type"))
    return sd_fail(SD_E_UNSUPPORTED, "%s: key 'variance_type': learned variances are not supported", P);
  if ((rc = sd_sched_config_check(&c))) return sd_fail_prefix(rc, "%s: ", P);
  *out = c;
  return SD_OK;
}

int sd_sched_config_load(const char *path, sd_sampler_kind kind, sd_sched_config *out) {
  json_t *obj = NULL;
  int rc = sd_json_load_file(path, SD_JSON_CONFIG_MAX, &obj);
  if (rc) return rc;
  rc = sd_sched_config_from_json(obj, path, kind, out);
  json_decref(obj);
  return rc;
}

/* ------------------------------------------------------------------ numerics ------------- */

/* torch.linspace(start, end, n, dtype=float32) on the CPU (PyTorch 1.13, AVX2 build): float
 * step = (end - start) / (n - 1); the first half counts up from start, the second half down
 * from end; blocks of 16 are two 8-wide vectors with base (fused multiply-add, as compiled)
 * plus k * step for lane k; the remainder is scalar (fused). */
static void linspace_f32(double start_d, double end_d, int64_t n, float *out) {
  const float start = (float)start_d, end = (float)end_d;
  if (n == 1) { out[0] = start; return; }
  const float step = (end - start) / (float)(n - 1);
  const int64_t half = n / 2;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int v = 0; v < 2; v++) {
      int64_t idx = i + 8 * v;
      float base = idx < half ? fmaf(step, (float)idx, start) : fmaf(-step, (float)(n - idx - 1), end);
      for (int k = 0; k < 8; k++) out[idx + k] = base + (float)k * step;
    }
  }
  for (; i < n; i++) out[i] = i < half ? fmaf(step, (float)i, start) : fmaf(-step, (float)(n - i - 1), end);
}

static int make_alphas_cumprod(const sd_sched_config *c, float *ac) {
  const int T = c->num_train_timesteps;
  float *betas = malloc(sizeof(float) * (size_t)T);
  if (!betas) return sd_fail(SD_E_NOMEM, "scheduler: out of memory");
  switch (c->beta_schedule) {
  case SD_BETA_LINEAR:
    linspace_f32(c->beta_start, c->beta_end, T, betas);
    break;
  case SD_BETA_SCALED_LINEAR:
    linspace_f32(pow(c->beta_start, 0.5), pow(c->beta_end, 0.5), T, betas);
    for (int i = 0; i < T; i++) betas[i] = betas[i] * betas[i];
    break;
  case SD_BETA_SQUAREDCOS_CAP_V2:
    for (int i = 0; i < T; i++) {
      double t1 = (double)i / T, t2 = (double)(i + 1) / T;
      double c1 = cos((t1 + 0.008) / 1.008 * 3.141592653589793 / 2);
      double c2 = cos((t2 + 0.008) / 1.008 * 3.141592653589793 / 2);
      double b = 1 - (c2 * c2) / (c1 * c1);
      betas[i] = (float)(b < 0.999 ? b : 0.999);
    }
    break;
  }
  double acc = 1.0;
  for (int i = 0; i < T; i++) {
    float alpha = 1.0f - betas[i];
    acc *= (double)alpha;
    ac[i] = (float)acc;
  }
  free(betas);
  return SD_OK;
}

/* numpy.arange(start, stop, step) for floats: length ceil((stop - start) / step); values
 * start + i * delta with delta = (start + step) - start. Returns the length (<= cap). */
static int np_arange(double start, double stop, double step, double *out, int cap) {
  double len_d = ceil((stop - start) / step);
  int len = len_d > 0 ? (len_d > cap ? cap : (int)len_d) : 0;
  double delta = (start + step) - start;
  for (int i = 0; i < len; i++) out[i] = i == 0 ? start : (i == 1 ? start + step : start + i * delta);
  return len;
}

/* numpy.linspace(start, stop, num): i * step + start, the last exactly stop. */
static void np_linspace(double start, double stop, int num, double *out) {
  if (num == 1) { out[0] = start; return; }
  double step = (stop - start) / (num - 1);
  for (int i = 0; i < num; i++) out[i] = (double)i * step + start;
  out[num - 1] = stop;
}

/* numpy.interp(x, arange(n), fp) for fp in float32 (computed in float64). */
static double np_interp_idx(double x, const float *fp, int n) {
  if (!(x > 0.0)) return fp[0];   /* x <= xp[0] (and NaN handled as left) */
  if (x >= n - 1) return fp[n - 1];
  int j = (int)floor(x);
  if ((double)j == x) return fp[j];
  double slope = ((double)fp[j + 1] - (double)fp[j]) / 1.0;
  return slope * (x - (double)j) + (double)fp[j];
}

/* diffusers' _sigma_to_t: fractional timestep of sigma on the log-sigma table (float32). */
static double sigma_to_t(double sigma, const float *log_sigmas, int n) {
  double log_sigma = log(sigma > 1e-10 ? sigma : 1e-10);
  int low = 0;
  for (int i = 0; i < n; i++)
    if (log_sigma - (double)log_sigmas[i] >= 0) low = i; /* last index with dist >= 0, else 0 */
  if (low > n - 2) low = n - 2;
  int high = low + 1;
  double lo = log_sigmas[low], hi = log_sigmas[high];
  double w = (lo - log_sigma) / (lo - hi);
  if (w < 0) w = 0;
  if (w > 1) w = 1;
  return (1 - w) * low + w * high;
}

/* Karras et al. (2022) sigmas, rho 7, from sigma_max down to sigma_min (float64). */
static void karras(double smin, double smax, int n, double *out) {
  double *ramp = malloc(sizeof(double) * (size_t)n);
  if (!ramp) { for (int i = 0; i < n; i++) out[i] = smax; return; }
  np_linspace(0.0, 1.0, n, ramp);
  const double rho = 7.0;
  double min_inv = pow(smin, 1 / rho), max_inv = pow(smax, 1 / rho);
  for (int i = 0; i < n; i++) out[i] = pow(max_inv + ramp[i] * (min_inv - max_inv), rho);
  free(ramp);
}

/* ------------------------------------------------------------------ schedule ------------- */

void sd_schedule_free(sd_schedule *s) {
  if (!s) return;
  free(s->timesteps);
  free(s->t_int);
  free(s->sigmas);
  free(s->alphas_cumprod);
  free(s);
}

/* The integer timesteps of DDIM (descending) for spacing; n_out = count. */
static int ddim_like_timesteps(const sd_sched_config *c, int N, int64_t *t, int cap, int *n_out) {
  const int T = c->num_train_timesteps;
  int n = 0;
  *n_out = 0;
  if (c->spacing == SD_SPACING_LINSPACE) {
    double *v = malloc(sizeof(double) * (size_t)N);
    if (!v) return sd_fail(SD_E_NOMEM, "scheduler: out of memory");
    np_linspace(0, T - 1, N, v);
    for (int i = 0; i < N; i++) t[i] = (int64_t)nearbyint(v[N - 1 - i]);
    free(v);
    n = N;
  } else if (c->spacing == SD_SPACING_LEADING) {
    int ratio = T / N;
    for (int i = 0; i < N; i++) t[i] = (int64_t)(N - 1 - i) * ratio + c->steps_offset;
    n = N;
  } else {
    double *v = malloc(sizeof(double) * (size_t)cap);
    if (!v) return sd_fail(SD_E_NOMEM, "scheduler: out of memory");
    n = np_arange(T, 0, -((double)T / N), v, cap);
    for (int i = 0; i < n; i++) t[i] = (int64_t)nearbyint(v[i]) - 1;
    free(v);
  }
  *n_out = n;
  return SD_OK;
}

int sd_schedule_create(const sd_sched_config *cfg, int steps, sd_schedule **out) {
  int rc;
  if (!out) return sd_fail(SD_E_ARG, "sd_schedule_create: NULL argument");
  *out = NULL;
  if ((rc = sd_sched_config_check(cfg))) return rc;
  const int T = cfg->num_train_timesteps;
  const char *nm = kind_names[cfg->kind];
  if (steps < 1 || steps > T)
    return sd_fail(SD_E_ARG, "%s: %d steps is out of range [1, %d]", nm, steps, T);
  sd_schedule *s = calloc(1, sizeof *s);
  if (!s) return sd_fail(SD_E_NOMEM, "scheduler: out of memory");
  s->cfg = *cfg;
  s->steps = steps;
  s->n_train = T;
  s->init_noise_sigma = 1.0f;
  s->ratio = T / steps;
  const int cap = steps + 2;
  s->alphas_cumprod = malloc(sizeof(float) * (size_t)T);
  s->timesteps = malloc(sizeof(float) * (size_t)cap);
  s->t_int = malloc(sizeof(int64_t) * (size_t)cap);
  s->sigmas = malloc(sizeof(float) * (size_t)(cap + 1));
  float *train_sigmas = malloc(sizeof(float) * (size_t)T);
  float *log_sigmas = malloc(sizeof(float) * (size_t)T);
  double *dt = malloc(sizeof(double) * (size_t)cap);
  double *ds = malloc(sizeof(double) * (size_t)cap);
  if (!s->alphas_cumprod || !s->timesteps || !s->t_int || !s->sigmas || !train_sigmas ||
      !log_sigmas || !dt || !ds) {
    rc = sd_fail(SD_E_NOMEM, "scheduler: out of memory");
    goto fail;
  }
  if ((rc = make_alphas_cumprod(cfg, s->alphas_cumprod))) goto fail;
  const float *ac = s->alphas_cumprod;
  s->final_alpha_cumprod = cfg->set_alpha_to_one ? 1.0f : ac[0];
  /* ((1 - ac) / ac) ** 0.5 in float32, and np.log of it (float32) */
  for (int i = 0; i < T; i++) {
    train_sigmas[i] = sqrtf((1.0f - ac[i]) / ac[i]);
    log_sigmas[i] = (float)log((double)train_sigmas[i]);
  }

  switch (cfg->kind) {
  case SD_SAMPLER_DDIM: {
    int n = 0;
    if ((rc = ddim_like_timesteps(cfg, steps, s->t_int, cap, &n))) goto fail;
    s->len = n;
    break;
  }
  case SD_SAMPLER_PNDM: {
    /* _timesteps ascending; plms = concat(_t[:-1], _t[-2:-1], _t[-1:])[::-1] */
    int64_t *asc = malloc(sizeof(int64_t) * (size_t)cap);
    if (!asc) { rc = sd_fail(SD_E_NOMEM, "scheduler: out of memory"); goto fail; }
    int n = 0;
    if (cfg->spacing == SD_SPACING_LINSPACE) {
      np_linspace(0, T - 1, steps, dt);
      for (int i = 0; i < steps; i++) asc[i] = (int64_t)nearbyint(dt[i]);
      n = steps;
    } else if (cfg->spacing == SD_SPACING_LEADING) {
      for (int i = 0; i < steps; i++) asc[i] = (int64_t)i * s->ratio + cfg->steps_offset;
      n = steps;
    } else {
      n = np_arange(T, 0, -((double)T / steps), dt, cap);
      for (int i = 0; i < n; i++) asc[n - 1 - i] = (int64_t)nearbyint(dt[i]) - 1;
    }
    int m = 0;
    /* build ascending list with the duplicate, then reverse */
    int64_t *lst = malloc(sizeof(int64_t) * (size_t)(n + 1));
    if (!lst) { free(asc); rc = sd_fail(SD_E_NOMEM, "scheduler: out of memory"); goto fail; }
    for (int i = 0; i < n - 1; i++) lst[m++] = asc[i];
    if (n >= 2) lst[m++] = asc[n - 2];
    if (n >= 1) lst[m++] = asc[n - 1];
    for (int i = 0; i < m; i++) s->t_int[i] = lst[m - 1 - i];
    s->len = m;
    free(lst);
    free(asc);
    break;
  }
  case SD_SAMPLER_EULER:
  case SD_SAMPLER_EULER_A: {
    int n = steps;
    if (cfg->spacing == SD_SPACING_LINSPACE) {
      np_linspace(0, T - 1, steps, dt);
      for (int i = 0; i < steps; i++) s->timesteps[i] = (float)dt[steps - 1 - i];
    } else if (cfg->spacing == SD_SPACING_LEADING) {
      for (int i = 0; i < steps; i++)
        s->timesteps[i] = (float)((double)(steps - 1 - i) * s->ratio) + (float)cfg->steps_offset;
    } else {
      n = np_arange(T, 0, -((double)T / steps), dt, cap);
      for (int i = 0; i < n; i++) s->timesteps[i] = (float)nearbyint(dt[i]) - 1.0f;
    }
    s->len = n;
    for (int i = 0; i < n; i++) ds[i] = np_interp_idx((double)s->timesteps[i], train_sigmas, T);
    if (cfg->sigmas == SD_SIGMAS_KARRAS) {
      double smin = isnan(cfg->sigma_min) ? ds[n - 1] : cfg->sigma_min;
      double smax = isnan(cfg->sigma_max) ? ds[0] : cfg->sigma_max;
      karras(smin, smax, n, ds);
      for (int i = 0; i < n; i++) s->timesteps[i] = (float)sigma_to_t(ds[i], log_sigmas, T);
    }
    for (int i = 0; i < n; i++) s->sigmas[i] = (float)ds[i];
    s->sigmas[n] = 0.0f;
    float mx = 0.0f;
    for (int i = 0; i <= n; i++) if (s->sigmas[i] > mx) mx = s->sigmas[i];
    s->init_noise_sigma = cfg->spacing == SD_SPACING_LEADING ? sqrtf(mx * mx + 1.0f) : mx;
    free(s->t_int);
    s->t_int = NULL;
    break;
  }
  case SD_SAMPLER_DPMPP_2M: {
    const int last = T; /* lambda_min_clipped = -inf */
    int n = steps;
    if (cfg->sigmas == SD_SIGMAS_KARRAS) {
      double smin = isnan(cfg->sigma_min) ? (double)train_sigmas[0] : cfg->sigma_min;
      double smax = isnan(cfg->sigma_max) ? (double)train_sigmas[T - 1] : cfg->sigma_max;
      karras(smin, smax, n, ds);
      for (int i = 0; i < n; i++) s->t_int[i] = (int64_t)nearbyint(sigma_to_t(ds[i], log_sigmas, T));
      for (int i = 0; i < n; i++) s->sigmas[i] = (float)ds[i];
      s->sigmas[n] = s->sigmas[n - 1];
    } else {
      if (cfg->spacing == SD_SPACING_LINSPACE) {
        double *v = malloc(sizeof(double) * (size_t)(steps + 1));
        if (!v) { rc = sd_fail(SD_E_NOMEM, "scheduler: out of memory"); goto fail; }
        np_linspace(0, last - 1, steps + 1, v);
        for (int i = 0; i < steps; i++) s->t_int[i] = (int64_t)nearbyint(v[steps - i]);
        free(v);
      } else if (cfg->spacing == SD_SPACING_LEADING) {
        int ratio = last / (steps + 1);
        for (int i = 0; i < steps; i++) s->t_int[i] = (int64_t)(steps - i) * ratio + cfg->steps_offset;
      } else {
        n = np_arange(last, 0, -((double)T / steps), dt, cap);
        for (int i = 0; i < n; i++) s->t_int[i] = (int64_t)nearbyint(dt[i]) - 1;
      }
      for (int i = 0; i < n; i++) s->sigmas[i] = (float)np_interp_idx((double)s->t_int[i], train_sigmas, T);
      s->sigmas[n] = sqrtf((1.0f - ac[0]) / ac[0]);
    }
    s->len = n;
    break;
  }
  default:
    rc = sd_fail(SD_E_INTERNAL, "scheduler: bad kind");
    goto fail;
  }
  if (s->len < 1) {
    rc = sd_fail(SD_E_ARG, "%s: %d steps give no timesteps", nm, steps);
    goto fail;
  }
  if (s->t_int) {
    for (int i = 0; i < s->len; i++) {
      int64_t t = s->t_int[i];
      if ((cfg->kind == SD_SAMPLER_DDIM || cfg->kind == SD_SAMPLER_PNDM) && (t < 0 || t >= T)) {
        rc = sd_fail(SD_E_ARG, "%s: timestep %lld (from %d steps, steps_offset %d) is outside [0, %d]",
                     nm, (long long)t, steps, cfg->steps_offset, T - 1);
        goto fail;
      }
      s->timesteps[i] = (float)t;
    }
  }
  if (cfg->kind == SD_SAMPLER_DDIM || cfg->kind == SD_SAMPLER_PNDM) {
    free(s->sigmas);
    s->sigmas = NULL;
  }
  free(train_sigmas);
  free(log_sigmas);
  free(dt);
  free(ds);
  *out = s;
  return SD_OK;
fail:
  free(train_sigmas);
  free(log_sigmas);
  free(dt);
  free(ds);
  sd_schedule_free(s);
  return rc;
}

const sd_sched_config *sd_schedule_config(const sd_schedule *s) { return &s->cfg; }
int sd_schedule_steps(const sd_schedule *s) { return s->steps; }
int sd_schedule_len(const sd_schedule *s) { return s->len; }

const float *sd_schedule_timesteps(const sd_schedule *s, int *n) {
  if (n) *n = s->len;
  return s->timesteps;
}

float sd_schedule_init_noise_sigma(const sd_schedule *s) { return s->init_noise_sigma; }

const float *sd_schedule_sigmas(const sd_schedule *s, int *n) {
  if (n) *n = s->sigmas ? s->len + 1 : 0;
  return s->sigmas;
}

const float *sd_schedule_alphas_cumprod(const sd_schedule *s, int *n) {
  if (n) *n = s->n_train;
  return s->alphas_cumprod;
}
