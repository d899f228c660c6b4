/* Unit tests of sampling/rng: torch.randn on a CPU torch.Generator, reproduced bit for bit.
 * References: the clip-small goldens in ../shared (rng/ and every case's init_noise.npy) and
 * tests/data/rng (made by tools/ref/sdref_sched.py rng). Every comparison is memcmp. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/npy.h"
#include "sampling/rng.h"
#include "sampling/sampler.h"
#include "sampling/schedule.h"
#include "testutil.h"

/* Count of float32 values whose bits differ. */
static int64_t bits_differ(const float *a, const float *b, int64_t n) {
  int64_t k = 0;
  for (int64_t i = 0; i < n; i++)
    if (memcmp(&a[i], &b[i], 4) != 0) k++;
  return k;
}

static int load(const char *path, sd_tensor *t) {
  int rc = sd_npy_read(path, t);
  if (rc) print_error("%s\n", sd_errmsg());
  return rc;
}

/* randn(seed, shape) against a .npy holding exactly that. */
static void check_file(const char *path, uint64_t seed) {
  sd_tensor t;
  assert_int_equal(load(path, &t), SD_OK);
  assert_int_equal(t.dtype, SD_F32);
  int64_t n = sd_numel(&t);
  float *x = malloc(sizeof(float) * (size_t)n);
  assert_non_null(x);
  sd_rng g;
  sd_rng_seed(&g, seed);
  sd_rng_randn(&g, x, n);
  int64_t d = bits_differ(x, t.data, n);
  if (d) print_error("%s: %" PRId64 " of %" PRId64 " values differ\n", path, d, n);
  assert_int_equal(d, 0);
  assert_memory_equal(x, t.data, (size_t)n * 4);
  free(x);
  free(t.data);
}

static void test_mt19937_known_answers(void **state) {
  (void)state;
  /* std::mt19937 with the default seed 5489: first output and the 10000th (C++11 [rand.predef]) */
  sd_rng g;
  sd_rng_seed(&g, 5489);
  assert_int_equal(sd_rng_u32(&g), 3499211612u);
  for (int i = 1; i < 9999; i++) sd_rng_u32(&g);
  assert_int_equal(sd_rng_u32(&g), 4123659995u);
  /* only the low 32 bits of the seed matter (torch: seed & 0xffffffff) */
  sd_rng a, b;
  sd_rng_seed(&a, UINT64_C(0x123456789abcdef0));
  sd_rng_seed(&b, UINT64_C(0x9abcdef0));
  for (int i = 0; i < 2000; i++) assert_int_equal(sd_rng_u32(&a), sd_rng_u32(&b));
  assert_true(a.seed == UINT64_C(0x123456789abcdef0));
}

static void test_shared_rng_files(void **state) {
  (void)state;
  static const struct { const char *file; uint64_t seed; } files[] = {
      {"data/golden/clip-small/rng/randn_seed0_1x4x32x32.npy", 0},
      {"data/golden/clip-small/rng/randn_seed0_1x4x64x64.npy", 0},
      {"data/golden/clip-small/rng/randn_seed42_1x4x32x32.npy", 42},
      {"data/golden/clip-small/rng/randn_seed42_1x4x64x64.npy", 42},
      {"data/golden/clip-small/rng/randn_seed4290749014_1x4x32x32.npy", UINT64_C(4290749014)},
      {"data/golden/clip-small/rng/randn_seed4290749014_1x4x64x64.npy", UINT64_C(4290749014)}};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    const char *p = sd_test_shared(files[i].file);
    if (!p) skip();
    check_file(p, files[i].seed);
  }
}

static void test_shared_case_init_noise(void **state) {
  (void)state;
  static const struct { const char *name; uint64_t seed; } cases[] = {
      {"ddim_s42", 42}, {"pndm_s0", 0}, {"euler_s4290749014", UINT64_C(4290749014)}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char rel[256];
    snprintf(rel, sizeof rel, "data/golden/clip-small/cases/%s/init_noise.npy", cases[i].name);
    const char *p = sd_test_shared(rel);
    if (!p) skip();
    check_file(p, cases[i].seed);
  }
}

/* init_latents.npy = init_noise * init_noise_sigma, through the sampler API (Euler: 8.45007). */
static void test_shared_case_init_latents(void **state) {
  (void)state;
  static const struct { const char *name; uint64_t seed; sd_sampler_kind kind; } cases[] = {
      {"ddim_s42", 42, SD_SAMPLER_DDIM},
      {"pndm_s0", 0, SD_SAMPLER_PNDM},
      {"euler_s4290749014", UINT64_C(4290749014), SD_SAMPLER_EULER}};
  const char *cp = sd_test_shared("data/golden/clip-small/model/scheduler/scheduler_config.json");
  if (!cp) skip();
  char cfgp[4096];
  snprintf(cfgp, sizeof cfgp, "%s", cp); /* sd_test_shared returns a static buffer */
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char rel[256];
    snprintf(rel, sizeof rel, "data/golden/clip-small/cases/%s/init_latents.npy", cases[i].name);
    const char *p = sd_test_shared(rel);
    if (!p) skip();
    sd_tensor t;
    assert_int_equal(load(p, &t), SD_OK);
    sd_sched_config c;
    assert_int_equal(sd_sched_config_load(cfgp, cases[i].kind, &c), SD_OK);
    sd_schedule *s;
    assert_int_equal(sd_schedule_create(&c, 10, &s), SD_OK);
    int64_t n = sd_numel(&t);
    float *x = malloc(sizeof(float) * (size_t)n);
    sd_rng g;
    sd_rng_seed(&g, cases[i].seed);
    sd_sampler_init_latents(s, &g, x, n);
    assert_int_equal(bits_differ(x, t.data, n), 0);
    free(x);
    free(t.data);
    sd_schedule_free(s);
  }
}

static const uint64_t seeds[] = {0, 1, 42, UINT64_C(2147483648), UINT64_C(4290749014),
                                 UINT64_C(9223372036854775813)};

static void test_fresh_sizes(void **state) {
  (void)state;
  static const int sizes[] = {1, 7, 16, 17, 31, 100};
  for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
    char rel[128];
    snprintf(rel, sizeof rel, "tests/data/rng/fresh_seed%" PRIu64 ".npy", seeds[s]);
    sd_tensor t;
    assert_int_equal(load(sd_test_src(rel), &t), SD_OK);
    const float *ref = t.data;
    int64_t off = 0;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
      float x[128];
      sd_rng g;
      sd_rng_seed(&g, seeds[s]);
      sd_rng_randn(&g, x, sizes[k]);
      if (bits_differ(x, ref + off, sizes[k]))
        print_error("seed %" PRIu64 " n %d differs\n", seeds[s], sizes[k]);
      assert_memory_equal(x, ref + off, (size_t)sizes[k] * 4);
      off += sizes[k];
    }
    assert_int_equal(off, sd_numel(&t));
    free(t.data);
  }
}

/* One generator, several draws: the stream continues across calls, including the cached
 * second normal of the < 16-element path and the redrawn tail of n % 16 != 0. */
static void test_continuation(void **state) {
  (void)state;
  static const int sizes[] = {1, 1, 3, 16, 17, 2, 100, 5, 33};
  for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
    char rel[128];
    snprintf(rel, sizeof rel, "tests/data/rng/cont_seed%" PRIu64 ".npy", seeds[s]);
    sd_tensor t;
    assert_int_equal(load(sd_test_src(rel), &t), SD_OK);
    const float *ref = t.data;
    sd_rng g;
    sd_rng_seed(&g, seeds[s]);
    int64_t off = 0;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
      float x[128];
      sd_rng_randn(&g, x, sizes[k]);
      if (bits_differ(x, ref + off, sizes[k]))
        print_error("seed %" PRIu64 " draw %zu (n %d) differs\n", seeds[s], k, sizes[k]);
      assert_memory_equal(x, ref + off, (size_t)sizes[k] * 4);
      off += sizes[k];
    }
    assert_int_equal(off, sd_numel(&t));
    free(t.data);
  }
}

static uint64_t fnv1a64(const void *p, size_t n) {
  const unsigned char *b = p;
  uint64_t h = UINT64_C(0xcbf29ce484222325);
  for (size_t i = 0; i < n; i++) { h ^= b[i]; h *= UINT64_C(0x100000001b3); }
  return h;
}

static void test_big(void **state) {
  (void)state;
  enum { N = 4 * 64 * 64 };
  check_file(sd_test_src("tests/data/rng/randn_seed2147483648_1x4x64x64.npy"), UINT64_C(2147483648));
  check_file(sd_test_src("tests/data/rng/randn_seed9223372036854775813_1x4x64x64.npy"),
             UINT64_C(9223372036854775813));
  char *txt = sd_test_read_file(sd_test_src("tests/data/rng/randn_1x4x64x64_fnv1a64.txt"), NULL);
  assert_non_null(txt);
  float *x = malloc(sizeof(float) * N);
  int lines = 0;
  for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n")) {
    uint64_t seed, h;
    assert_int_equal(sscanf(line, "%" SCNu64 " %" SCNx64, &seed, &h), 2);
    sd_rng g;
    sd_rng_seed(&g, seed);
    sd_rng_randn(&g, x, N);
    if (fnv1a64(x, sizeof(float) * N) != h) print_error("seed %" PRIu64 ": hash differs\n", seed);
    assert_true(fnv1a64(x, sizeof(float) * N) == h);
    lines++;
  }
  assert_int_equal(lines, 6);
  free(x);
  free(txt);
}

/* sd_rng is a value: a struct copy forks the stream. */
static void test_copy_forks(void **state) {
  (void)state;
  sd_rng a, b;
  sd_rng_seed(&a, 7);
  float x[40], y[40];
  sd_rng_randn(&a, x, 3); /* leaves a cached normal */
  b = a;
  sd_rng_randn(&a, x, 40);
  sd_rng_randn(&b, y, 40);
  assert_memory_equal(x, y, sizeof x);
  sd_rng_randn(&a, x, 1);
  sd_rng_randn(&b, y, 1);
  assert_memory_equal(x, y, 4);
  /* n <= 0 draws nothing */
  sd_rng c = a;
  sd_rng_randn(&a, x, 0);
  sd_rng_randn(&a, x, -5);
  assert_memory_equal(a.mt, c.mt, sizeof a.mt);
  assert_int_equal(a.mti, c.mti);
  assert_int_equal(a.has_next_normal, c.has_next_normal);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mt19937_known_answers),
      cmocka_unit_test(test_shared_rng_files),
      cmocka_unit_test(test_shared_case_init_noise),
      cmocka_unit_test(test_shared_case_init_latents),
      cmocka_unit_test(test_fresh_sizes),
      cmocka_unit_test(test_continuation),
      cmocka_unit_test(test_big),
      cmocka_unit_test(test_copy_forks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
