/* Unit tests of the image-to-image arithmetic in sampling/sampler: the strength -> steps rule
 * (diffusers' get_timesteps, with Python's float multiplication and int()), a stream begun
 * mid-schedule (sd_sampler_begin_at: PNDM's counter restarts), and each sampler's add_noise.
 * The end-to-end comparison with the PyTorch reference is tests/conformance/test_img2img.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "sampling/sampler.h"
#include "sampling/schedule.h"
#include "testutil.h"

static void test_strength_steps(void **state) {
  (void)state;
  static const struct { int steps; double strength; int init, t_start; } k[] = {
      {10, 0.75, 7, 3},  {10, 0.7, 7, 3},    /* 10 * 0.7 = 7.000000000000001 in doubles */
      {10, 0.3, 3, 7},   {100, 0.29, 28, 72}, /* 100 * 0.29 = 28.999999999999996: int() = 28 */
      {10, 1.0, 10, 0},  {10, 0.0, 0, 10},   {50, 0.75, 37, 13}, {3, 0.2, 0, 3},
      {1, 1.0, 1, 0},    {1000, 0.999, 999, 1}, {20, 0.05, 1, 19}};
  for (size_t i = 0; i < sizeof k / sizeof *k; i++) {
    int ts = -1;
    int init = sd_strength_steps(k[i].steps, k[i].strength, &ts);
    if (init != k[i].init || ts != k[i].t_start)
      print_error("steps %d strength %g: init %d t_start %d, expected %d %d\n", k[i].steps, k[i].strength, init, ts,
                  k[i].init, k[i].t_start);
    assert_int_equal(init, k[i].init);
    assert_int_equal(ts, k[i].t_start);
  }
  int ts;
  assert_int_equal(sd_strength_steps(10, -0.01, &ts), SD_E_ARG);
  assert_non_null(strstr(sd_errmsg(), "out of range"));
  assert_int_equal(sd_strength_steps(10, 1.0000001, &ts), SD_E_ARG);
  assert_int_equal(sd_strength_steps(10, NAN, &ts), SD_E_ARG);
  assert_int_equal(sd_strength_steps(0, 0.5, &ts), SD_E_ARG);
}

static sd_schedule *sched_for(sd_sampler_kind kind, int karras, int steps) {
  sd_sched_config c;
  sd_sched_config_sd15(&c, kind);
  if (karras) c.sigmas = SD_SIGMAS_KARRAS;
  sd_schedule *s = NULL;
  assert_int_equal(sd_schedule_create(&c, steps, &s), SD_OK);
  return s;
}

static void test_begin_at(void **state) {
  (void)state;
  for (int k = 0; k < SD_SAMPLER_COUNT; k++) {
    sd_schedule *s = sched_for((sd_sampler_kind)k, 0, 10);
    int len;
    const float *ts = sd_schedule_timesteps(s, &len);
    sd_sampler_state st;
    assert_int_equal(sd_sampler_init(s, 16, &st), SD_OK);
    for (int b = 0; b < len; b++) {
      assert_int_equal(sd_sampler_begin_at(s, &st, b), SD_OK);
      assert_float_equal(sd_sampler_timestep(s, &st), ts[b], 0.0);
      assert_int_equal(st.begin, b);
      assert_false(sd_sampler_done(s, &st));
      sd_sampler_state cp;
      assert_int_equal(sd_sampler_state_copy(&cp, &st), SD_OK); /* the start travels with a copy */
      assert_int_equal(cp.begin, b);
      assert_int_equal(cp.step, b);
      sd_sampler_state_free(&cp);
    }
    assert_int_equal(sd_sampler_begin_at(s, &st, len), SD_E_ARG);
    assert_int_equal(sd_sampler_begin_at(s, &st, -1), SD_E_ARG);
    sd_sampler_state_free(&st);
    sd_schedule_free(s);
  }
}

/* PNDM begun at index b takes its first-step branch there (counter 0: ε as is, the sample kept),
 * as a fresh PNDMScheduler handed timesteps[b:] does: x' = sqrt(ā_prev/ā_t)·x − (ā_prev − ā_t)·ε
 * / (ā_t·sqrt(1 − ā_prev) + sqrt(ā_t·(1 − ā_t)·ā_prev)), prev = t − 1000/steps. */
static void test_pndm_counter_restarts(void **state) {
  (void)state;
  const int steps = 10, n = 8;
  sd_schedule *s = sched_for(SD_SAMPLER_PNDM, 0, steps);
  int len, nt;
  const float *ts = sd_schedule_timesteps(s, &len);
  const float *ac = sd_schedule_alphas_cumprod(s, &nt);
  assert_int_equal(len, steps + 1);
  for (int b = 1; b < len - 1; b++) {
    sd_sampler_state st;
    assert_int_equal(sd_sampler_init(s, n, &st), SD_OK);
    assert_int_equal(sd_sampler_begin_at(s, &st, b), SD_OK);
    float x[8], e[8], want[8];
    for (int i = 0; i < n; i++) x[i] = 0.25f * (float)(i - 3), e[i] = 0.1f * (float)(5 - i);
    const int t = (int)ts[b], prev = t - 1000 / steps;
    const float a_t = ac[t], a_p = prev >= 0 ? ac[prev] : ac[0];
    const float coeff = sqrtf(a_p / a_t), denom = a_t * sqrtf(1.0f - a_p) + sqrtf(a_t * (1.0f - a_t) * a_p);
    for (int i = 0; i < n; i++) want[i] = coeff * x[i] - ((a_p - a_t) * e[i]) / denom;
    assert_int_equal(sd_sampler_step(s, &st, e, x, NULL), SD_OK);
    if (fabsf(x[0] - want[0]) > 1e-6f) print_error("b %d t %d prev %d: %g vs %g\n", b, t, prev, x[0], want[0]);
    for (int i = 0; i < n; i++) assert_float_equal(x[i], want[i], 1e-6);
    assert_true(st.has_cur_sample); /* the sample of counter 0 is kept for counter 1 */
    sd_sampler_state_free(&st);
  }
  sd_schedule_free(s);
}

static void test_add_noise(void **state) {
  (void)state;
  const int n = 5;
  const float x0[5] = {1.0f, -0.5f, 0.25f, 2.0f, 0.0f}, nz[5] = {0.3f, 1.1f, -0.7f, 0.0f, -2.0f};
  float out[5];
  for (int k = 0; k < SD_SAMPLER_COUNT; k++)
    for (int karras = 0; karras < 2; karras++) {
      if (karras && (k == SD_SAMPLER_DDIM || k == SD_SAMPLER_PNDM)) continue;
      sd_schedule *s = sched_for((sd_sampler_kind)k, karras, 10);
      int len, ns, nt;
      const float *ts = sd_schedule_timesteps(s, &len);
      const float *sg = sd_schedule_sigmas(s, &ns);
      const float *ac = sd_schedule_alphas_cumprod(s, &nt);
      for (int idx = 0; idx < len; idx++) {
        assert_int_equal(sd_sampler_add_noise(s, idx, x0, nz, out, n), SD_OK);
        for (int i = 0; i < n; i++) {
          float want;
          if (k == SD_SAMPLER_DDIM || k == SD_SAMPLER_PNDM) {
            float a = ac[(int)ts[idx]];
            want = sqrtf(a) * x0[i] + sqrtf(1.0f - a) * nz[i];
          } else if (k == SD_SAMPLER_DPMPP_2M) {
            float al = 1.0f / sqrtf(sg[idx] * sg[idx] + 1.0f);
            want = al * x0[i] + sg[idx] * al * nz[i];
          } else {
            want = x0[i] + nz[i] * sg[idx];
          }
          assert_float_equal(out[i], want, 1e-5f * (1.0f + fabsf(want)));
        }
      }
      /* more noise earlier in the schedule: the first index is the noisiest */
      float first[5], last[5];
      sd_sampler_add_noise(s, 0, x0, nz, first, n);
      sd_sampler_add_noise(s, len - 1, x0, nz, last, n);
      assert_true(fabsf(first[4] - x0[4]) > fabsf(last[4] - x0[4]));
      assert_int_equal(sd_sampler_add_noise(s, len, x0, nz, out, n), SD_E_ARG);
      assert_int_equal(sd_sampler_add_noise(s, -1, x0, nz, out, n), SD_E_ARG);
      sd_schedule_free(s);
    }
}

/* sd_sampler_predict_x0 inverts each sampler's add_noise: x = add_noise(x0, ε) at index b, and
 * the model output ε (or v = α·ε − σ_t·x0, with (α, σ_t) = (sqrt(ᾱ), sqrt(1 − ᾱ)) or
 * (1, σ)/sqrt(σ² + 1)) gives back x0, for every sampler, both σ schedules and both predictions. */
static void test_predict_x0(void **state) {
  (void)state;
  const int n = 6;
  const float x0[6] = {1.0f, -0.5f, 0.25f, 2.0f, 0.0f, -1.5f}, nz[6] = {0.3f, 1.1f, -0.7f, 0.0f, -2.0f, 0.9f};
  for (int k = 0; k < SD_SAMPLER_COUNT; k++)
    for (int karras = 0; karras < 2; karras++)
      for (int v = 0; v < 2; v++) {
        if (karras && (k == SD_SAMPLER_DDIM || k == SD_SAMPLER_PNDM)) continue; /* no sigmas there */
        sd_sched_config c;
        sd_sched_config_sd15(&c, (sd_sampler_kind)k);
        if (karras) c.sigmas = SD_SIGMAS_KARRAS;
        c.prediction = v ? SD_PRED_V : SD_PRED_EPSILON;
        sd_schedule *s = NULL;
        assert_int_equal(sd_schedule_create(&c, 10, &s), SD_OK);
        int len, nt;
        (void)sd_schedule_timesteps(s, &len);
        const float *ac = sd_schedule_alphas_cumprod(s, &nt);
        sd_sampler_state st;
        assert_int_equal(sd_sampler_init(s, n, &st), SD_OK);
        for (int b = 0; b < len; b++) {
          float x[6], out[6], mo[6], a, sg;
          assert_int_equal(sd_sampler_add_noise(s, b, x0, nz, x, n), SD_OK);
          assert_int_equal(sd_sampler_begin_at(s, &st, b), SD_OK);
          if (k == SD_SAMPLER_DDIM || k == SD_SAMPLER_PNDM) {
            const float abar = ac[(int)lroundf(sd_sampler_timestep(s, &st))];
            a = sqrtf(abar), sg = sqrtf(1.0f - abar);
          } else {
            int ns;
            const float sigma = sd_schedule_sigmas(s, &ns)[b];
            a = 1.0f / sqrtf(sigma * sigma + 1.0f), sg = sigma * a;
          }
          for (int i = 0; i < n; i++) mo[i] = v ? a * nz[i] - sg * x0[i] : nz[i];
          assert_int_equal(sd_sampler_predict_x0(s, &st, mo, x, out, n), SD_OK);
          for (int i = 0; i < n; i++)
            if (fabsf(out[i] - x0[i]) > 2e-3f * (1.0f + fabsf(x0[i]))) {
              print_error("kind %d karras %d v %d index %d: x0[%d] %g, predicted %g\n", k, karras, v, b, i, x0[i], out[i]);
              fail();
            }
        }
        st.step = len; /* nothing left to predict from */
        float x[6] = {0}, out[6];
        assert_int_equal(sd_sampler_predict_x0(s, &st, x, x, out, n), SD_E_ARG);
        sd_sampler_state_free(&st);
        sd_schedule_free(s);
      }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_strength_steps),
      cmocka_unit_test(test_begin_at),
      cmocka_unit_test(test_pndm_counter_restarts),
      cmocka_unit_test(test_add_noise),
      cmocka_unit_test(test_predict_x0),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
