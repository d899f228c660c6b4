/* emoji-judge (src/judge/emoji_judge.c): the loader on malformed configs and weight files
 * (every error names the file and the key or tensor), a hand-computed forward pass, the
 * area-resize preprocessing and bad arguments. The numerical comparison with PyTorch is
 * tests/conformance/test_judge.sh. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/ops.h"
#include "core/tensor.h"
#include "judge/emoji_judge.h"
#include "io/safetensors.h"
#include "testutil.h"

/* a tiny judge: 8 px input, channels 4/8, strides 1/2, 2 groups, 3 objects, 2 backgrounds */
#define OBJS "[{\"name\": \"dagger\", \"category\": \"weapons\"}, {\"name\": \"cat face\", \"category\": \"benign\"}, " \
             "{\"name\": \"tulip\", \"category\": \"benign\"}]"
#define CFG_WITH(extra) \
  "{\"image_size\": 8, \"channels\": [4, 8], \"strides\": [1, 2], \"groups\": 2, " extra "\"objects\": " OBJS \
  ", \"backgrounds\": [\"white\", \"light blue\"]}"
#define CFG CFG_WITH("")

typedef sd_test_tensor tspec;
typedef sd_test_tensors tlist;

/* the values a test pins: every element of a tensor set to fill (NAN allowed) */
typedef struct {
  const char *name;
  float fill;
} pin;
static pin g_pins[4];
static int g_npins;

static void add(tlist *l, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
  assert_non_null(sd_test_tensor_add(l, name, ndim, d0, d1, d2, d3));
}

static tspec *find(tlist *l, const char *name) {
  tspec *t = sd_test_tensor_find(l, name);
  if (!t) fail_msg("no tensor %s", name);
  return t;
}

static void pin_value(const char *name, float v) {
  assert_true(g_npins < 4);
  g_pins[g_npins++] = (pin){name, v};
}

/* the tiny judge's tensors (and no pinned values) */
static void tiny(tlist *l) {
  l->n = 0;
  g_npins = 0;
  add(l, "convs.0.weight", 4, 4, 3, 3, 3);
  add(l, "convs.0.bias", 1, 4, 0, 0, 0);
  add(l, "norms.0.weight", 1, 4, 0, 0, 0);
  add(l, "norms.0.bias", 1, 4, 0, 0, 0);
  add(l, "convs.1.weight", 4, 8, 4, 3, 3);
  add(l, "convs.1.bias", 1, 8, 0, 0, 0);
  add(l, "norms.1.weight", 1, 8, 0, 0, 0);
  add(l, "norms.1.bias", 1, 8, 0, 0, 0);
  add(l, "object_head.weight", 2, 3, 8, 0, 0);
  add(l, "object_head.bias", 1, 3, 0, 0, 0);
  add(l, "background_head.weight", 2, 2, 12, 0, 0);
  add(l, "background_head.bias", 1, 2, 0, 0, 0);
}

/* Value k of tensor i: a pinned value, or a deterministic pattern. */
static float value(const tspec *t, int i, int64_t k) {
  for (int p = 0; p < g_npins; p++)
    if (!strcmp(g_pins[p].name, t->name)) return g_pins[p].fill;
  return 0.1f * sinf((float)(k * 7 + i * 13 + 1));
}

static const char *write_judge(const char *name, const char *config, const tlist *l) {
  static char dir[4096];
  char p[4200];
  snprintf(dir, sizeof dir, "%s", sd_test_tmp(name));
  sd_test_mkdirs(dir);
  snprintf(p, sizeof p, "%s/config.json", dir);
  unlink(p);
  if (config) {
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs(config, f);
    fclose(f);
  }
  snprintf(p, sizeof p, "%s/model.safetensors", dir);
  assert_int_equal(sd_test_tensors_write(p, l, value), SD_OK);
  return dir;
}

static void load_fails(const char *dir, int code, ...) {
  sd_emoji_judge *j = (sd_emoji_judge *)1;
  int rc = sd_emoji_judge_load(dir, &j);
  const char *msg = sd_errmsg();
  print_message("expected failure: %s\n", msg);
  assert_int_equal(rc, code);
  assert_null(j);
  assert_non_null(strstr(msg, "emoji-judge: "));
  va_list ap;
  va_start(ap, code);
  sd_test_msg_has_all(msg, ap);
  va_end(ap);
}

static void test_loads(void **state) {
  (void)state;
  tlist l;
  tiny(&l);
  sd_emoji_judge *j = NULL;
  assert_int_equal(sd_emoji_judge_load(write_judge("judge_ok", CFG, &l), &j), SD_OK);
  assert_int_equal(sd_emoji_judge_image_size(j), 8);
  assert_int_equal(sd_emoji_judge_grid(j), 4);
  assert_int_equal(sd_emoji_judge_n_objects(j), 3);
  assert_int_equal(sd_emoji_judge_n_backgrounds(j), 2);
  const char *cat = NULL;
  assert_string_equal(sd_emoji_judge_object(j, 0, &cat), "dagger");
  assert_string_equal(cat, "weapons");
  assert_null(sd_emoji_judge_object(j, 3, &cat));
  assert_int_equal(sd_emoji_judge_find_object(j, "tulip"), 2);
  assert_int_equal(sd_emoji_judge_find_object(j, "rose"), -1);
  assert_int_equal(sd_emoji_judge_find_background(j, "light blue"), 1);
  assert_string_equal(sd_emoji_judge_background(j, 0), "white");
  assert_true(fabsf(sd_emoji_judge_threshold(j) - 0.5f) < 1e-7f);
  sd_emoji_judge_free(j);
  /* no backgrounds: no background head */
  l.n -= 2;
  assert_int_equal(sd_emoji_judge_load(write_judge("judge_nobg",
                     "{\"image_size\": 8, \"channels\": [4, 8], \"strides\": [1, 2], \"groups\": 2, \"objects\": " OBJS "}", &l),
                     &j), SD_OK);
  assert_int_equal(sd_emoji_judge_n_backgrounds(j), 0);
  sd_emoji_judge_free(j);
  /* F16 and BF16 weights */
  tiny(&l);
  for (int i = 0; i < l.n; i++) l.t[i].dtype = i % 2 ? SD_F16 : SD_BF16;
  assert_int_equal(sd_emoji_judge_load(write_judge("judge_half", CFG, &l), &j), SD_OK);
  sd_emoji_judge_free(j);
}

static void test_bad_config(void **state) {
  (void)state;
  tlist l;
  tiny(&l);
  load_fails(sd_test_tmp("judge_none_here"), SD_E_IO, "config.json", NULL);
  load_fails(write_judge("judge_nocfg", NULL, &l), SD_E_IO, "config.json", NULL);
  load_fails(write_judge("judge_badjson", "{\"image_size\": 8,", &l), SD_E_FORMAT, "config.json", NULL);
  load_fails(write_judge("judge_noch", "{\"strides\": [1], \"objects\": " OBJS "}", &l), SD_E_FORMAT, "channels", NULL);
  load_fails(write_judge("judge_len", "{\"channels\": [4, 8], \"strides\": [1], \"groups\": 2, \"objects\": " OBJS "}", &l),
             SD_E_FORMAT, "same length", NULL);
  load_fails(write_judge("judge_stride", "{\"channels\": [4, 8], \"strides\": [1, 3], \"groups\": 2, \"objects\": " OBJS "}", &l),
             SD_E_FORMAT, "strides", NULL);
  load_fails(write_judge("judge_groups", "{\"channels\": [4, 6], \"strides\": [1, 2], \"groups\": 4, \"objects\": " OBJS "}", &l),
             SD_E_FORMAT, "channels[1] = 6 is not a multiple of groups 4", NULL);
  load_fails(write_judge("judge_small", CFG_WITH("\"image_size\": 4, "), &l), SD_E_FORMAT, "image_size", NULL);
  load_fails(write_judge("judge_huge", "{\"image_size\": 512, \"channels\": [1024], \"strides\": [1], \"groups\": 8, "
                                       "\"objects\": " OBJS "}", &l),
             SD_E_FORMAT, "activation", "limit", NULL);
  load_fails(write_judge("judge_thr", "{\"channels\": [4, 8], \"strides\": [1, 2], \"groups\": 2, \"threshold\": 1.5, "
                                      "\"objects\": " OBJS "}", &l),
             SD_E_FORMAT, "threshold", NULL);
  load_fails(write_judge("judge_noobj", "{\"channels\": [4, 8], \"strides\": [1, 2], \"groups\": 2, \"objects\": []}", &l),
             SD_E_FORMAT, "'objects'", NULL);
  load_fails(write_judge("judge_objstr", "{\"channels\": [4, 8], \"strides\": [1, 2], \"groups\": 2, \"objects\": [\"dagger\"]}", &l),
             SD_E_FORMAT, "objects[0] is a string", NULL);
  load_fails(write_judge("judge_objcat", "{\"channels\": [4, 8], \"strides\": [1, 2], \"groups\": 2, "
                                         "\"objects\": [{\"name\": \"dagger\"}]}", &l),
             SD_E_FORMAT, "category", NULL);
  load_fails(write_judge("judge_dup", "{\"channels\": [4, 8], \"strides\": [1, 2], \"groups\": 2, \"objects\": ["
                                      "{\"name\": \"a\", \"category\": \"benign\"}, {\"name\": \"a\", \"category\": \"benign\"}]}", &l),
             SD_E_FORMAT, "both called \"a\"", NULL);
  load_fails(write_judge("judge_empty", "{\"channels\": [4, 8], \"strides\": [1, 2], \"groups\": 2, \"objects\": ["
                                        "{\"name\": \"\", \"category\": \"benign\"}]}", &l),
             SD_E_FORMAT, "must be 1..128 bytes", NULL);
  load_fails(write_judge("judge_ctl", "{\"channels\": [4, 8], \"strides\": [1, 2], \"groups\": 2, \"objects\": ["
                                      "{\"name\": \"a\\u001bb\", \"category\": \"benign\"}]}", &l),
             SD_E_FORMAT, "control character", NULL);
  load_fails(write_judge("judge_bgnum", "{\"channels\": [4, 8], \"strides\": [1, 2], \"groups\": 2, \"objects\": " OBJS
                                        ", \"backgrounds\": [\"white\", 3]}", &l),
             SD_E_FORMAT, "backgrounds[1] is an integer", NULL);
  load_fails(write_judge("judge_bgdup", "{\"channels\": [4, 8], \"strides\": [1, 2], \"groups\": 2, \"objects\": " OBJS
                                        ", \"backgrounds\": [\"white\", \"white\"]}", &l),
             SD_E_FORMAT, "both called \"white\"", NULL);
}

static void test_bad_weights(void **state) {
  (void)state;
  tlist l;
  tiny(&l);
  find(&l, "convs.1.weight")->shape[1] = 3;
  load_fails(write_judge("judge_shape", CFG, &l), SD_E_FORMAT, "model.safetensors", "'convs.1.weight'", "[8, 3, 3, 3]",
             "expected [8, 4, 3, 3]", NULL);
  tiny(&l);
  find(&l, "norms.0.bias")->dtype = SD_I64;
  load_fails(write_judge("judge_dtype", CFG, &l), SD_E_FORMAT, "'norms.0.bias'", "dtype I64", NULL);
  tiny(&l);
  pin_value("object_head.weight", NAN);
  load_fails(write_judge("judge_nan", CFG, &l), SD_E_FORMAT, "'object_head.weight'", "non-finite", NULL);
  tiny(&l);
  assert_string_equal(l.t[l.n - 1].name, "background_head.bias");
  l.n--;
  load_fails(write_judge("judge_missing", CFG, &l), SD_E_FORMAT, "'background_head.bias' is missing", NULL);
  tiny(&l);
  add(&l, "convs.2.weight", 4, 8, 8, 3, 3);
  load_fails(write_judge("judge_extra", CFG, &l), SD_E_FORMAT, "'convs.2.weight' is not part of the judge", NULL);
  tiny(&l); /* a head for 4 objects with 3 in the config */
  find(&l, "object_head.weight")->shape[0] = 4;
  load_fails(write_judge("judge_nobj", CFG, &l), SD_E_FORMAT, "'object_head.weight'", "expected [3, 8]", NULL);
  /* a truncated file */
  tiny(&l);
  const char *dir = write_judge("judge_trunc", CFG, &l);
  char p[4200];
  snprintf(p, sizeof p, "%s/model.safetensors", dir);
  struct stat st;
  assert_int_equal(stat(p, &st), 0);
  assert_int_equal(truncate(p, st.st_size - 5), 0);
  load_fails(dir, SD_E_FORMAT, "model.safetensors", NULL);
  /* no weights file */
  assert_int_equal(unlink(p), 0);
  load_fails(dir, SD_E_IO, "model.safetensors", NULL);
}

/* With every convolution weight 0 and each layer's biases equal, each feature map is
 * constant: the stem is its bias b0, GroupNorm of a constant map is its beta, so h = silu(beta); the presence logit of object
 * o is W_o · silu(beta_1) + b_o at every cell (argmax cell 0), the background logits
 * W_b · [silu(beta_1), b0] + b_b. */
static void test_forward_by_hand(void **state) {
  (void)state;
  tlist l;
  tiny(&l);
  pin_value("convs.0.weight", 0.0f);
  pin_value("convs.1.weight", 0.0f);
  pin_value("convs.0.bias", 0.3f);
  pin_value("convs.1.bias", -0.2f);
  const char *dir = write_judge("judge_hand", CFG, &l);
  sd_emoji_judge *j = NULL;
  sd_exec *ex = NULL;
  sd_emoji_judge_result r;
  assert_int_equal(sd_emoji_judge_load(dir, &j), SD_OK);
  assert_int_equal(sd_exec_create(1, &ex), SD_OK);
  assert_int_equal(sd_emoji_judge_result_alloc(j, &r), SD_OK);
  uint8_t px[5 * 7 * 3];
  for (int i = 0; i < (int)sizeof px; i++) px[i] = (uint8_t)(i * 37);
  assert_int_equal(sd_emoji_judge_classify(j, ex, px, 7, 5, &r), SD_OK);
  int ib1 = 7, ib0 = 1, iwo = 8, ibo = 9, iwb = 10, ibb = 11; /* indices in tiny() */
  float h[8], b0[4];
  for (int c = 0; c < 8; c++) {
    float beta = value(&l.t[ib1], ib1, c);
    h[c] = beta / (1.0f + expf(-beta));
  }
  for (int c = 0; c < 4; c++) b0[c] = value(&l.t[ib0], ib0, c);
  for (int o = 0; o < 3; o++) {
    double s = value(&l.t[ibo], ibo, o);
    for (int c = 0; c < 8; c++) s += (double)value(&l.t[iwo], iwo, o * 8 + c) * h[c];
    assert_true(fabs(r.object_logit[o] - s) < 1e-5);
    assert_true(fabs(r.object_p[o] - 1.0 / (1.0 + exp(-s))) < 1e-6);
    assert_int_equal(r.object_cell[o], 0);
    assert_true(fabsf(r.object_x[o] - 0.125f) < 1e-7f && fabsf(r.object_y[o] - 0.125f) < 1e-7f);
  }
  double lg[2];
  for (int k = 0; k < 2; k++) {
    lg[k] = value(&l.t[ibb], ibb, k);
    for (int c = 0; c < 12; c++) lg[k] += (double)value(&l.t[iwb], iwb, k * 12 + c) * (c < 8 ? h[c] : b0[c - 8]);
    assert_true(fabs(r.background_logit[k] - lg[k]) < 1e-5);
  }
  assert_int_equal(r.background_top, lg[1] > lg[0] ? 1 : 0);
  assert_true(fabs(r.background_p[0] - 1.0 / (1.0 + exp(lg[1] - lg[0]))) < 1e-6);
  sd_emoji_judge_result_free(&r);
  sd_exec_destroy(ex);
  sd_emoji_judge_free(j);
}

static void test_preprocess(void **state) {
  (void)state;
  tlist l;
  tiny(&l);
  sd_emoji_judge *j = NULL;
  assert_int_equal(sd_emoji_judge_load(write_judge("judge_pre", CFG, &l), &j), SD_OK);
  float x[3 * 8 * 8];
  /* 16x16 -> 8: the mean of each 2x2 block */
  uint8_t big[16 * 16 * 3];
  for (int i = 0; i < 16 * 16 * 3; i++) big[i] = (uint8_t)((i * 29) % 256);
  assert_int_equal(sd_emoji_judge_preprocess(j, big, 16, 16, x), SD_OK);
  for (int c = 0; c < 3; c++)
    for (int y = 0; y < 8; y++)
      for (int xx = 0; xx < 8; xx++) {
        double s = 0;
        for (int dy = 0; dy < 2; dy++)
          for (int dx = 0; dx < 2; dx++) s += big[((2 * y + dy) * 16 + 2 * xx + dx) * 3 + c];
        assert_true(fabs(x[(c * 8 + y) * 8 + xx] - (2.0 * s / 4 / 255 - 1)) < 1e-6);
      }
  /* 2x1 -> 8: each output pixel copies its source pixel (upscaling: one-pixel windows) */
  uint8_t two[6] = {0, 255, 51, 255, 0, 102};
  assert_int_equal(sd_emoji_judge_preprocess(j, two, 2, 1, x), SD_OK);
  assert_true(fabsf(x[0] + 1.0f) < 1e-7f && fabsf(x[7] - 1.0f) < 1e-7f);            /* R: 0 | 255 */
  assert_true(fabsf(x[64 + 3] - 1.0f) < 1e-7f && fabsf(x[64 + 4] + 1.0f) < 1e-7f);  /* G: 255 | 0 */
  assert_true(fabsf(x[128 + 9] - (float)(2 * 51 / 255.0 - 1)) < 1e-7f);
  /* bad arguments */
  assert_int_equal(sd_emoji_judge_preprocess(j, two, 0, 1, x), SD_E_ARG);
  assert_int_equal(sd_emoji_judge_preprocess(j, two, 2, SD_JUDGE_MAX_INPUT + 1, x), SD_E_ARG);
  assert_int_equal(sd_emoji_judge_preprocess(j, NULL, 2, 1, x), SD_E_ARG);
  assert_non_null(strstr(sd_errmsg(), "emoji-judge"));
  sd_exec *ex = NULL;
  sd_emoji_judge_result r;
  assert_int_equal(sd_exec_create(1, &ex), SD_OK);
  assert_int_equal(sd_emoji_judge_result_alloc(j, &r), SD_OK);
  assert_int_equal(sd_emoji_judge_forward(j, NULL, x, &r), SD_E_ARG);
  assert_int_equal(sd_emoji_judge_classify(j, ex, two, -2, 1, &r), SD_E_ARG);
  sd_emoji_judge *none = (sd_emoji_judge *)1;
  assert_int_equal(sd_emoji_judge_load(NULL, &none), SD_E_ARG);
  assert_null(none);
  sd_emoji_judge_result_free(&r);
  sd_exec_destroy(ex);
  sd_emoji_judge_free(j);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_loads),          cmocka_unit_test(test_bad_config),  cmocka_unit_test(test_bad_weights),
      cmocka_unit_test(test_forward_by_hand), cmocka_unit_test(test_preprocess),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
