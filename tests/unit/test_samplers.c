/* Unit tests of sampling/schedule + sampling/sampler.
 *  - the tiny golden set (../shared): DDIM and PLMS driven by diffusers' own guided noise
 *    predictions reproduce every step's latents (no UNet involved);
 *  - the clip-small manifest: resolved scheduler configs give diffusers' timesteps, model
 *    evaluation counts and init_noise_sigma;
 *  - the API: independent streams over one schedule, copy/assign, noise consumption, errors.
 * The comparison with a PyTorch transcription of every sampler is tests/conformance/
 * test_samplers.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/json_util.h"
#include "io/npy.h"
#include "sampling/rng.h"
#include "sampling/sampler.h"
#include "sampling/schedule.h"
#include "testutil.h"

static char *dup_path(const char *p) {
  if (!p) return NULL;
  size_t n = strlen(p) + 1;
  char *d = malloc(n);
  memcpy(d, p, n);
  return d;
}

static void load_f32(const char *path, sd_tensor *t) {
  if (!path) skip(); /* sd_test_shared printed the SKIP reason */
  int rc = sd_npy_read_f32(path, t);
  if (rc) print_error("%s\n", sd_errmsg());
  assert_int_equal(rc, SD_OK);
}

static double max_abs_diff(const float *a, const float *b, int64_t n, int64_t *n_exact) {
  double m = 0;
  int64_t e = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - (double)b[i]);
    if (d > m) m = d;
    if (a[i] == b[i]) e++;
  }
  if (n_exact) *n_exact = e;
  return m;
}

/* ------------------------------------------------------------ tiny golden ------------- */

static void run_tiny(const char *kind_name, sd_sampler_kind kind, int n_evals) {
  char *man = dup_path(sd_test_shared("data/golden/tiny/manifest.json"));
  if (!man) skip();
  json_t *root;
  assert_int_equal(sd_json_load_file(man, 1 << 24, &root), SD_OK);
  const json_t *scheds = json_object_get(root, "schedulers");
  const json_t *cj = json_object_get(scheds, kind_name);
  assert_non_null(cj);
  sd_sched_config c;
  int rc = sd_sched_config_from_json(cj, "tiny manifest", kind, &c);
  if (rc) print_error("%s\n", sd_errmsg());
  assert_int_equal(rc, SD_OK);
  sd_schedule *s;
  assert_int_equal(sd_schedule_create(&c, 4, &s), SD_OK);
  assert_int_equal(sd_schedule_len(s), n_evals);
  assert_true(sd_schedule_init_noise_sigma(s) == 1.0f);

  char rel[256];
  sd_tensor ts, x0;
  snprintf(rel, sizeof rel, "data/golden/tiny/tensors/sample.%s.timesteps.npy", kind_name);
  const char *p = sd_test_shared(rel);
  if (!p) skip();
  assert_int_equal(sd_npy_read(p, &ts), SD_OK);
  assert_int_equal(ts.dtype, SD_I64);
  assert_int_equal(sd_numel(&ts), n_evals);
  int nt;
  const float *t = sd_schedule_timesteps(s, &nt);
  for (int i = 0; i < n_evals; i++) assert_true((double)t[i] == (double)((int64_t *)ts.data)[i]);

  p = sd_test_shared("data/golden/tiny/tensors/sample.init_noise.npy");
  if (!p) skip();
  load_f32(p, &x0);
  int64_t n = sd_numel(&x0);
  float *lat = x0.data;
  sd_sampler_state st;
  assert_int_equal(sd_sampler_init(s, n, &st), SD_OK);
  float *scaled = malloc(sizeof(float) * (size_t)n);
  for (int i = 0; i < n_evals; i++) {
    assert_false(sd_sampler_done(s, &st));
    assert_true(sd_sampler_timestep(s, &st) == t[i]);
    sd_sampler_scale_input(s, &st, lat, scaled); /* identity for DDIM/PNDM */
    assert_memory_equal(scaled, lat, sizeof(float) * (size_t)n);
    sd_tensor eps, want;
    snprintf(rel, sizeof rel, "data/golden/tiny/tensors/sample.%s.step%d.noise_pred_guided.npy", kind_name, i);
    load_f32(sd_test_shared(rel), &eps);
    snprintf(rel, sizeof rel, "data/golden/tiny/tensors/sample.%s.step%d.latents.npy", kind_name, i);
    load_f32(sd_test_shared(rel), &want);
    assert_int_equal(sd_numel(&eps), n);
    assert_int_equal(sd_sampler_step(s, &st, eps.data, lat, NULL), SD_OK);
    int64_t exact;
    double d = max_abs_diff(lat, want.data, n, &exact);
    printf("  %s step %d (t=%g): max abs diff %.3g, %lld of %lld values bit-identical\n", kind_name, i,
           (double)t[i], d, (long long)exact, (long long)n);
    assert_true(d <= 1e-5);
    free(eps.data);
    free(want.data);
  }
  assert_true(sd_sampler_done(s, &st));
  sd_tensor fin;
  snprintf(rel, sizeof rel, "data/golden/tiny/tensors/sample.%s.final_latents.npy", kind_name);
  load_f32(sd_test_shared(rel), &fin);
  assert_true(max_abs_diff(lat, fin.data, n, NULL) <= 1e-5);
  free(fin.data);
  free(scaled);
  free(ts.data);
  free(x0.data);
  sd_sampler_state_free(&st);
  sd_schedule_free(s);
  json_decref(root);
  free(man);
}

static void test_tiny_ddim(void **state) { (void)state; run_tiny("ddim", SD_SAMPLER_DDIM, 4); }
static void test_tiny_pndm(void **state) { (void)state; run_tiny("pndm", SD_SAMPLER_PNDM, 5); }

/* ------------------------------------------------------------ clip-small manifest ------ */

static void test_clip_small_manifest(void **state) {
  (void)state;
  char *man = dup_path(sd_test_shared("data/golden/clip-small/manifest.json"));
  if (!man) skip();
  json_t *root;
  assert_int_equal(sd_json_load_file(man, 1 << 24, &root), SD_OK);
  const json_t *cases = json_object_get(root, "cases");
  assert_true(json_is_array(cases));
  size_t i;
  const json_t *cs;
  int seen = 0;
  json_array_foreach(cases, i, cs) {
    const char *name = json_string_value(json_object_get(cs, "name"));
    sd_sched_config c;
    int rc = sd_sched_config_from_json(json_object_get(cs, "sampler_config"), name, SD_SAMPLER_AUTO, &c);
    if (rc) print_error("%s\n", sd_errmsg());
    assert_int_equal(rc, SD_OK);
    int steps = (int)json_integer_value(json_object_get(cs, "steps"));
    sd_schedule *s;
    assert_int_equal(sd_schedule_create(&c, steps, &s), SD_OK);
    const json_t *tl = json_object_get(cs, "timesteps");
    int n;
    const float *t = sd_schedule_timesteps(s, &n);
    assert_int_equal(n, (int)json_array_size(tl));
    assert_int_equal(n, (int)json_integer_value(json_object_get(cs, "unet_evaluations")));
    for (int k = 0; k < n; k++) assert_true((double)t[k] == json_number_value(json_array_get(tl, (size_t)k)));
    double ins = json_number_value(json_object_get(cs, "init_noise_sigma"));
    printf("  %s: %s, %d evaluations, init_noise_sigma %.9g (diffusers %.9g)\n", name,
           sd_sampler_kind_name(c.kind), n, (double)sd_schedule_init_noise_sigma(s), ins);
    assert_true((double)sd_schedule_init_noise_sigma(s) == ins);
    sd_schedule_free(s);
    seen++;
  }
  assert_int_equal(seen, 3);
  json_decref(root);
  free(man);
}

/* The SD 1.5 scheduler_config.json (PNDM) resolved for every sampler, as from_config does. */
static void test_from_sd15_json(void **state) {
  (void)state;
  char *p = dup_path(sd_test_shared("data/golden/clip-small/model/scheduler/scheduler_config.json"));
  if (!p) skip();
  for (int k = -1; k < SD_SAMPLER_COUNT; k++) {
    sd_sched_config a, b;
    assert_int_equal(sd_sched_config_load(p, (sd_sampler_kind)k, &a), SD_OK);
    sd_sched_config_sd15(&b, k < 0 ? SD_SAMPLER_PNDM : (sd_sampler_kind)k);
    assert_int_equal(a.kind, b.kind);
    assert_int_equal(a.beta_schedule, SD_BETA_SCALED_LINEAR);
    assert_true(a.beta_start == 0.00085 && a.beta_end == 0.012);
    assert_int_equal(a.spacing, SD_SPACING_LEADING);
    assert_int_equal(a.steps_offset, 1);
    assert_int_equal(a.set_alpha_to_one, 0);
    assert_int_equal(a.clip_sample, 0);
    assert_int_equal(a.skip_prk_steps, 1);
    assert_int_equal(a.prediction, SD_PRED_EPSILON);
  }
  free(p);
}

/* ------------------------------------------------------------ schedules ----------------- */

static sd_schedule *make(sd_sampler_kind k, sd_sigma_schedule sig, sd_prediction pred, int steps) {
  sd_sched_config c;
  sd_sched_config_sd15(&c, k);
  c.sigmas = sig;
  c.prediction = pred;
  sd_schedule *s = NULL;
  int rc = sd_schedule_create(&c, steps, &s);
  if (rc) print_error("%s\n", sd_errmsg());
  assert_int_equal(rc, SD_OK);
  return s;
}

static void expect_timesteps(const sd_schedule *s, const float *want, int n) {
  int m;
  const float *t = sd_schedule_timesteps(s, &m);
  assert_int_equal(m, n);
  for (int i = 0; i < n; i++) {
    if (t[i] != want[i]) print_error("timestep %d: %g, expected %g\n", i, (double)t[i], (double)want[i]);
    assert_true(t[i] == want[i]);
  }
}

static void test_timesteps(void **state) {
  (void)state;
  sd_schedule *s = make(SD_SAMPLER_DPMPP_2M, SD_SIGMAS_DISCRETE, SD_PRED_EPSILON, 10);
  static const float dpm[] = {901, 811, 721, 631, 541, 451, 361, 271, 181, 91};
  expect_timesteps(s, dpm, 10);
  assert_true(sd_schedule_init_noise_sigma(s) == 1.0f);
  sd_schedule_free(s);

  s = make(SD_SAMPLER_PNDM, SD_SIGMAS_DISCRETE, SD_PRED_EPSILON, 10);
  static const float pndm[] = {901, 801, 801, 701, 601, 501, 401, 301, 201, 101, 1};
  expect_timesteps(s, pndm, 11);
  assert_int_equal(sd_schedule_steps(s), 10);
  int ns;
  assert_null(sd_schedule_sigmas(s, &ns));
  assert_int_equal(ns, 0);
  sd_schedule_free(s);

  /* 1 step of PNDM: one evaluation */
  s = make(SD_SAMPLER_PNDM, SD_SIGMAS_DISCRETE, SD_PRED_EPSILON, 1);
  static const float pndm1[] = {1};
  expect_timesteps(s, pndm1, 1);
  sd_schedule_free(s);

  /* diffusers class defaults: linear betas, linspace spacing (Euler) */
  sd_sched_config c;
  sd_sched_config_default(&c, SD_SAMPLER_EULER);
  assert_int_equal(sd_schedule_create(&c, 4, &s), SD_OK);
  static const float eul[] = {999, 666, 333, 0};
  expect_timesteps(s, eul, 4);
  const float *sg = sd_schedule_sigmas(s, &ns);
  assert_int_equal(ns, 5);
  assert_true(sg[4] == 0.0f);
  assert_true(sd_schedule_init_noise_sigma(s) == sg[0]); /* linspace: sigma_max */
  sd_schedule_free(s);

  /* trailing spacing */
  sd_sched_config_sd15(&c, SD_SAMPLER_DDIM);
  c.spacing = SD_SPACING_TRAILING;
  assert_int_equal(sd_schedule_create(&c, 4, &s), SD_OK);
  static const float trail[] = {999, 749, 499, 249};
  expect_timesteps(s, trail, 4);
  sd_schedule_free(s);

  /* Karras: sigmas fall monotonically from sigma_max; DPM++ repeats the last sigma */
  s = make(SD_SAMPLER_DPMPP_2M, SD_SIGMAS_KARRAS, SD_PRED_EPSILON, 12);
  sg = sd_schedule_sigmas(s, &ns);
  assert_int_equal(ns, 13);
  int na;
  const float *ac = sd_schedule_alphas_cumprod(s, &na);
  assert_int_equal(na, 1000);
  assert_true(fabsf(sg[0] - sqrtf((1.0f - ac[999]) / ac[999])) <= 1e-6f * sg[0]);
  assert_true(fabsf(sg[11] - sqrtf((1.0f - ac[0]) / ac[0])) <= 1e-6f * sg[11]);
  for (int i = 0; i < 11; i++) assert_true(sg[i] > sg[i + 1]);
  assert_true(sg[12] == sg[11]);
  sd_schedule_free(s);

  /* steps_offset pushing a DDIM timestep past the table is an error, not a wild read */
  sd_sched_config_sd15(&c, SD_SAMPLER_DDIM);
  assert_int_equal(sd_schedule_create(&c, 1000, &s), SD_E_ARG);
  assert_null(s);
}

/* alphas_cumprod of SD 1.x: a few values of torch's table (bit patterns from PyTorch 1.13). */
static void test_alphas_cumprod(void **state) {
  (void)state;
  sd_schedule *s = make(SD_SAMPLER_DDIM, SD_SIGMAS_DISCRETE, SD_PRED_EPSILON, 10);
  int n;
  const float *ac = sd_schedule_alphas_cumprod(s, &n);
  assert_int_equal(n, 1000);
  /* torch.cumprod(1 - torch.linspace(0.00085**0.5, 0.012**0.5, 1000)**2, 0)[[0, 1, 500, 999]] */
  static const uint32_t want[4] = {0x3f7fc84bu, 0x3f7f9054u, 0x3e8d7b74u, 0x3b98b3b8u};
  static const int idx[4] = {0, 1, 500, 999};
  for (int i = 0; i < 4; i++) {
    uint32_t u;
    memcpy(&u, &ac[idx[i]], 4);
    if (u != want[i]) print_error("ac[%d] = %08x, expected %08x\n", idx[i], u, want[i]);
    assert_int_equal(u, want[i]);
  }
  sd_schedule_free(s);
}

/* ------------------------------------------------------------ streams ------------------- */

static float synth(float x, float t) { return tanhf(0.5f * x) + 0.1f * sinf(t / 100.0f); }

/* Run a whole stream from latents x (n) with generator seed; model input offset `bias`. */
static void run_stream(const sd_schedule *s, float *x, int64_t n, uint64_t seed, float bias) {
  sd_sampler_state st;
  sd_rng g;
  sd_rng_seed(&g, seed);
  assert_int_equal(sd_sampler_init(s, n, &st), SD_OK);
  float *in = malloc(sizeof(float) * (size_t)n), *e = malloc(sizeof(float) * (size_t)n);
  while (!sd_sampler_done(s, &st)) {
    float t = sd_sampler_timestep(s, &st);
    sd_sampler_scale_input(s, &st, x, in);
    for (int64_t i = 0; i < n; i++) e[i] = synth(in[i] + bias, t);
    assert_int_equal(sd_sampler_step(s, &st, e, x, &g), SD_OK);
  }
  free(in);
  free(e);
  sd_sampler_state_free(&st);
}

static const struct { sd_sampler_kind k; sd_sigma_schedule sig; sd_prediction pred; } combos[] = {
    {SD_SAMPLER_DDIM, SD_SIGMAS_DISCRETE, SD_PRED_EPSILON},
    {SD_SAMPLER_PNDM, SD_SIGMAS_DISCRETE, SD_PRED_V},
    {SD_SAMPLER_EULER, SD_SIGMAS_KARRAS, SD_PRED_EPSILON},
    {SD_SAMPLER_EULER_A, SD_SIGMAS_DISCRETE, SD_PRED_V},
    {SD_SAMPLER_DPMPP_2M, SD_SIGMAS_DISCRETE, SD_PRED_EPSILON},
    {SD_SAMPLER_DPMPP_2M, SD_SIGMAS_KARRAS, SD_PRED_V}};

/* Two streams stepped alternately over one schedule give exactly what each gives alone. */
static void test_interleaved_streams(void **state) {
  (void)state;
  enum { N = 37 };
  for (size_t c = 0; c < sizeof combos / sizeof combos[0]; c++) {
    sd_schedule *s = make(combos[c].k, combos[c].sig, combos[c].pred, 8);
    float xa[N], xb[N], ya[N], yb[N];
    sd_rng g;
    sd_rng_seed(&g, 99);
    sd_sampler_init_latents(s, &g, xa, N);
    for (int i = 0; i < N; i++) xb[i] = -0.5f * xa[i];
    memcpy(ya, xa, sizeof xa);
    memcpy(yb, xb, sizeof xb);
    run_stream(s, ya, N, 1, 0.0f);
    run_stream(s, yb, N, 2, 0.3f);

    sd_sampler_state a, b;
    sd_rng ga, gb;
    sd_rng_seed(&ga, 1);
    sd_rng_seed(&gb, 2);
    assert_int_equal(sd_sampler_init(s, N, &a), SD_OK);
    assert_int_equal(sd_sampler_init(s, N, &b), SD_OK);
    float in[N], e[N];
    while (!sd_sampler_done(s, &a)) {
      float t = sd_sampler_timestep(s, &a);
      sd_sampler_scale_input(s, &a, xa, in);
      for (int i = 0; i < N; i++) e[i] = synth(in[i], t);
      assert_int_equal(sd_sampler_step(s, &a, e, xa, &ga), SD_OK);
      sd_sampler_scale_input(s, &b, xb, in);
      for (int i = 0; i < N; i++) e[i] = synth(in[i] + 0.3f, t);
      assert_int_equal(sd_sampler_step(s, &b, e, xb, &gb), SD_OK);
    }
    assert_true(sd_sampler_done(s, &b));
    assert_memory_equal(xa, ya, sizeof xa);
    assert_memory_equal(xb, yb, sizeof xb);
    sd_sampler_state_free(&a);
    sd_sampler_state_free(&b);
    sd_schedule_free(s);
  }
}

/* A stream forked mid-way (state copy + generator copy) continues identically; assign too. */
static void test_copy_and_assign(void **state) {
  (void)state;
  enum { N = 50 };
  for (size_t c = 0; c < sizeof combos / sizeof combos[0]; c++) {
    sd_schedule *s = make(combos[c].k, combos[c].sig, combos[c].pred, 9);
    float x[N], y[N], in[N], e[N];
    sd_rng g;
    sd_rng_seed(&g, 5);
    sd_sampler_init_latents(s, &g, x, N);
    sd_sampler_state a, b, d;
    assert_int_equal(sd_sampler_init(s, N, &a), SD_OK);
    assert_int_equal(sd_sampler_init(s, N, &d), SD_OK);
    sd_rng gb;
    for (int k = 0; k < 3; k++) {
      float t = sd_sampler_timestep(s, &a);
      sd_sampler_scale_input(s, &a, x, in);
      for (int i = 0; i < N; i++) e[i] = synth(in[i], t);
      assert_int_equal(sd_sampler_step(s, &a, e, x, &g), SD_OK);
    }
    assert_int_equal(sd_sampler_state_copy(&b, &a), SD_OK);
    assert_int_equal(sd_sampler_state_assign(&d, &a), SD_OK);
    gb = g;
    memcpy(y, x, sizeof x);
    float z[N];
    memcpy(z, x, sizeof x);
    sd_rng gd = g;
    sd_sampler_state *sts[3] = {&a, &b, &d};
    float *xs[3] = {x, y, z};
    sd_rng *gs[3] = {&g, &gb, &gd};
    while (!sd_sampler_done(s, &a)) {
      for (int j = 0; j < 3; j++) {
        float t = sd_sampler_timestep(s, sts[j]);
        sd_sampler_scale_input(s, sts[j], xs[j], in);
        for (int i = 0; i < N; i++) e[i] = synth(in[i], t);
        assert_int_equal(sd_sampler_step(s, sts[j], e, xs[j], gs[j]), SD_OK);
      }
    }
    assert_memory_equal(x, y, sizeof x);
    assert_memory_equal(x, z, sizeof x);
    /* a finished stream refuses another step */
    assert_int_equal(sd_sampler_step(s, &a, e, x, &g), SD_E_ARG);
    /* reset starts over */
    sd_sampler_reset(&b);
    assert_int_equal(b.step, 0);
    assert_false(sd_sampler_done(s, &b));
    sd_sampler_state_free(&a);
    sd_sampler_state_free(&b);
    sd_sampler_state_free(&d);
    sd_schedule_free(s);
  }
}

/* Euler draws exactly one randn(n) per step (even at s_churn 0) from the generator;
 * euler_a too; DDIM only with eta > 0; the others none. step_noise gives the same result. */
static void test_noise_consumption(void **state) {
  (void)state;
  enum { N = 33 };
  static const struct { sd_sampler_kind k; double eta; int draws; } cases[] = {
      {SD_SAMPLER_EULER, 0, 1}, {SD_SAMPLER_EULER_A, 0, 1}, {SD_SAMPLER_DDIM, 0, 0},
      {SD_SAMPLER_DDIM, 0.5, 1}, {SD_SAMPLER_PNDM, 0, 0}, {SD_SAMPLER_DPMPP_2M, 0, 0}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    sd_sched_config cfg;
    sd_sched_config_sd15(&cfg, cases[c].k);
    cfg.eta = cases[c].eta;
    sd_schedule *s;
    assert_int_equal(sd_schedule_create(&cfg, 5, &s), SD_OK);
    assert_int_equal(sd_sampler_needs_noise(s), cases[c].draws);
    sd_sampler_state a, b;
    assert_int_equal(sd_sampler_init(s, N, &a), SD_OK);
    assert_int_equal(sd_sampler_init(s, N, &b), SD_OK);
    sd_rng g, ref;
    sd_rng_seed(&g, 11);
    sd_rng_seed(&ref, 11);
    float x[N], y[N], e[N], noise[N];
    for (int i = 0; i < N; i++) { x[i] = y[i] = (float)i / N - 0.5f; }
    for (int k = 0; k < sd_schedule_len(s); k++) {
      for (int i = 0; i < N; i++) e[i] = synth(x[i], (float)k);
      assert_int_equal(sd_sampler_step(s, &a, e, x, &g), SD_OK);
      if (cases[c].draws) sd_rng_randn(&ref, noise, N);
      assert_int_equal(sd_sampler_step_noise(s, &b, e, y, cases[c].draws ? noise : NULL), SD_OK);
      assert_memory_equal(x, y, sizeof x);
      /* the generators are at the same place: their next outputs agree */
      sd_rng g2 = g, r2 = ref;
      assert_int_equal(sd_rng_u32(&g2), sd_rng_u32(&r2));
    }
    sd_sampler_state_free(&a);
    sd_sampler_state_free(&b);
    sd_schedule_free(s);
  }
  /* euler_a without a generator is an error; euler with s_churn 0 runs without one */
  sd_schedule *s = make(SD_SAMPLER_EULER_A, SD_SIGMAS_DISCRETE, SD_PRED_EPSILON, 3);
  sd_sampler_state st;
  float x[4] = {0}, e[4] = {0};
  assert_int_equal(sd_sampler_init(s, 4, &st), SD_OK);
  assert_int_equal(sd_sampler_step(s, &st, e, x, NULL), SD_E_ARG);
  assert_int_equal(st.step, 0);
  sd_sampler_state_free(&st);
  sd_schedule_free(s);
  s = make(SD_SAMPLER_EULER, SD_SIGMAS_DISCRETE, SD_PRED_EPSILON, 3);
  assert_int_equal(sd_sampler_init(s, 4, &st), SD_OK);
  assert_int_equal(sd_sampler_step(s, &st, e, x, NULL), SD_OK);
  /* a state of another sampler is refused */
  sd_schedule *s2 = make(SD_SAMPLER_DDIM, SD_SIGMAS_DISCRETE, SD_PRED_EPSILON, 3);
  assert_int_equal(sd_sampler_step(s2, &st, e, x, NULL), SD_E_ARG);
  sd_sampler_state_free(&st);
  sd_schedule_free(s);
  sd_schedule_free(s2);
}

/* Euler's model input is x / sqrt(sigma^2 + 1), divided (not multiplied by a reciprocal). */
static void test_scale_input(void **state) {
  (void)state;
  sd_schedule *s = make(SD_SAMPLER_EULER, SD_SIGMAS_DISCRETE, SD_PRED_EPSILON, 10);
  int n;
  const float *sg = sd_schedule_sigmas(s, &n);
  sd_sampler_state st;
  assert_int_equal(sd_sampler_init(s, 3, &st), SD_OK);
  float x[3] = {1.0f, -3.25f, 7.0f}, y[3];
  float d = sqrtf(sg[0] * sg[0] + 1.0f);
  assert_true(sd_sampler_input_divisor(s, 0) == d);
  sd_sampler_scale_input(s, &st, x, y);
  for (int i = 0; i < 3; i++) assert_true(y[i] == x[i] / d);
  /* leading spacing: init_noise_sigma = sqrt(sigma_max^2 + 1) */
  assert_true(sd_schedule_init_noise_sigma(s) == d);
  sd_sampler_state_free(&st);
  sd_schedule_free(s);
}

/* ------------------------------------------------------------ names and configs -------- */

static void test_names(void **state) {
  (void)state;
  static const struct { const char *n; sd_sampler_kind k; } ok[] = {
      {"ddim", SD_SAMPLER_DDIM}, {"PNDM", SD_SAMPLER_PNDM}, {"plms", SD_SAMPLER_PNDM},
      {"euler", SD_SAMPLER_EULER}, {"euler_a", SD_SAMPLER_EULER_A}, {"Euler-A", SD_SAMPLER_EULER_A},
      {"dpm++2m", SD_SAMPLER_DPMPP_2M}, {"dpmpp_2m", SD_SAMPLER_DPMPP_2M}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    sd_sampler_kind k;
    assert_int_equal(sd_sampler_kind_parse(ok[i].n, &k), SD_OK);
    assert_int_equal(k, ok[i].k);
  }
  sd_sampler_kind k;
  assert_int_equal(sd_sampler_kind_parse("lms", &k), SD_E_ARG);
  assert_non_null(strstr(sd_errmsg(), "lms"));
  assert_int_equal(sd_sampler_kind_parse("euler\x1b[2J", &k), SD_E_ARG);
  assert_null(strchr(sd_errmsg(), '\x1b'));
  assert_string_equal(sd_sampler_kind_name(SD_SAMPLER_DPMPP_2M), "dpm++2m");
  assert_string_equal(sd_sampler_kind_class(SD_SAMPLER_EULER_A), "EulerAncestralDiscreteScheduler");
  sd_sigma_schedule sg;
  assert_int_equal(sd_sigma_schedule_parse("Karras", &sg), SD_OK);
  assert_int_equal(sg, SD_SIGMAS_KARRAS);
  assert_int_equal(sd_sigma_schedule_parse("discrete", &sg), SD_OK);
  assert_int_equal(sg, SD_SIGMAS_DISCRETE);
  assert_int_equal(sd_sigma_schedule_parse("exponential", &sg), SD_E_ARG);
  assert_string_equal(sd_sigma_schedule_name(SD_SIGMAS_KARRAS), "karras");
}

static int cfg_from(const char *json, sd_sampler_kind k, sd_sched_config *c) {
  json_t *o;
  int rc = sd_json_load_memory(json, strlen(json), "test.json", 1 << 16, &o);
  if (rc) return rc;
  rc = sd_sched_config_from_json(o, "test.json", k, c);
  json_decref(o);
  return rc;
}

static void test_config_json(void **state) {
  (void)state;
  sd_sched_config c;
  /* class defaults when keys are absent; class-specific keys of other classes are ignored */
  assert_int_equal(cfg_from("{\"_class_name\": \"DDIMScheduler\"}", SD_SAMPLER_AUTO, &c), SD_OK);
  assert_int_equal(c.kind, SD_SAMPLER_DDIM);
  assert_int_equal(c.clip_sample, 1);
  assert_int_equal(c.set_alpha_to_one, 1);
  assert_int_equal(c.beta_schedule, SD_BETA_LINEAR);
  assert_int_equal(cfg_from("{\"use_karras_sigmas\": true, \"solver_order\": 2}", SD_SAMPLER_EULER, &c), SD_OK);
  assert_int_equal(c.sigmas, SD_SIGMAS_KARRAS);
  assert_int_equal(c.spacing, SD_SPACING_LINSPACE);
  assert_int_equal(cfg_from("{\"use_karras_sigmas\": true}", SD_SAMPLER_DDIM, &c), SD_OK);
  assert_int_equal(c.sigmas, SD_SIGMAS_DISCRETE);
  assert_int_equal(cfg_from("{\"thresholding\": true}", SD_SAMPLER_EULER, &c), SD_OK);
  assert_int_equal(cfg_from("{\"prediction_type\": \"v_prediction\", \"solver_type\": \"heun\","
                            " \"lower_order_final\": false, \"lambda_min_clipped\": \"-inf\"}",
                            SD_SAMPLER_DPMPP_2M, &c), SD_OK);
  assert_int_equal(c.prediction, SD_PRED_V);
  assert_int_equal(c.solver_heun, 1);
  assert_int_equal(c.lower_order_final, 0);
  /* unsupported requests */
  assert_int_equal(cfg_from("{\"thresholding\": true}", SD_SAMPLER_DDIM, &c), SD_E_UNSUPPORTED);
  assert_int_equal(cfg_from("{\"skip_prk_steps\": false}", SD_SAMPLER_PNDM, &c), SD_E_UNSUPPORTED);
  assert_int_equal(cfg_from("{\"trained_betas\": [0.1, 0.2]}", SD_SAMPLER_DDIM, &c), SD_E_UNSUPPORTED);
  assert_int_equal(cfg_from("{\"prediction_type\": \"sample\"}", SD_SAMPLER_DDIM, &c), SD_E_UNSUPPORTED);
  assert_int_equal(cfg_from("{\"algorithm_type\": \"sde-dpmsolver++\"}", SD_SAMPLER_DPMPP_2M, &c), SD_E_UNSUPPORTED);
  assert_int_equal(cfg_from("{\"solver_order\": 3}", SD_SAMPLER_DPMPP_2M, &c), SD_E_UNSUPPORTED);
  assert_int_equal(cfg_from("{\"_class_name\": \"LMSDiscreteScheduler\"}", SD_SAMPLER_AUTO, &c), SD_E_UNSUPPORTED);
  assert_int_equal(cfg_from("{\"timestep_spacing\": \"sideways\"}", SD_SAMPLER_EULER, &c), SD_E_UNSUPPORTED);
  /* malformed values */
  assert_int_equal(cfg_from("{\"steps_offset\": \"1\"}", SD_SAMPLER_DDIM, &c), SD_E_FORMAT);
  assert_int_equal(cfg_from("{\"beta_start\": -1}", SD_SAMPLER_DDIM, &c), SD_E_FORMAT);
  assert_int_equal(cfg_from("{\"num_train_timesteps\": 0}", SD_SAMPLER_DDIM, &c), SD_E_FORMAT);
  assert_int_equal(cfg_from("{\"set_alpha_to_one\": 1}", SD_SAMPLER_DDIM, &c), SD_E_FORMAT);
  assert_int_equal(cfg_from("{}", SD_SAMPLER_AUTO, &c), SD_E_FORMAT);
  assert_non_null(strstr(sd_errmsg(), "_class_name"));
  /* unsupported combinations at schedule creation */
  sd_sched_config_sd15(&c, SD_SAMPLER_PNDM);
  c.sigmas = SD_SIGMAS_KARRAS;
  sd_schedule *s;
  assert_int_equal(sd_schedule_create(&c, 10, &s), SD_E_UNSUPPORTED);
  sd_sched_config_sd15(&c, SD_SAMPLER_EULER);
  assert_int_equal(sd_schedule_create(&c, 0, &s), SD_E_ARG);
  assert_int_equal(sd_schedule_create(&c, 1001, &s), SD_E_ARG);
  assert_int_equal(sd_sched_config_load("/nonexistent/scheduler_config.json", SD_SAMPLER_AUTO, &c), SD_E_IO);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tiny_ddim),
      cmocka_unit_test(test_tiny_pndm),
      cmocka_unit_test(test_clip_small_manifest),
      cmocka_unit_test(test_from_sd15_json),
      cmocka_unit_test(test_timesteps),
      cmocka_unit_test(test_alphas_cumprod),
      cmocka_unit_test(test_interleaved_streams),
      cmocka_unit_test(test_copy_and_assign),
      cmocka_unit_test(test_noise_consumption),
      cmocka_unit_test(test_scale_input),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_config_json),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
