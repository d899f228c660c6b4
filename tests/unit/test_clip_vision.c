/* The image classifiers of src/eval/: loaders of the CLIP vision tower, the SD safety
 * checker and the Q16 prompt vectors on tiny hand-made files (every error path names the
 * file and the tensor or key), the preprocessing's crop rule and normalisation, batching,
 * and the safety checker's and Q16's decision rules on hand-computed cases. The numerical
 * comparison with PyTorch / Pillow is tests/conformance/test_clip_vision.sh. */
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
#include "judge/clip_vision.h"
#include "judge/q16.h"
#include "judge/safety_checker.h"
#include "io/safetensors.h"
#include "testutil.h"

/* ---- a tiny tower: hidden 8, 1 layer, 2 heads, mlp 16, 8 px images, 4 px patches, P 4 ---- */

#define TINY_CONFIG \
  "{\"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"intermediate_size\": 16, " \
  "\"image_size\": 8, \"patch_size\": 4, \"projection_dim\": 4}"

typedef sd_test_tensor tspec;
typedef sd_test_tensors tlist;

static void add(tlist *l, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
  assert_non_null(sd_test_tensor_add(l, name, ndim, d0, d1, d2, d3));
}

static tspec *find(tlist *l, const char *name) {
  tspec *t = sd_test_tensor_find(l, name);
  if (!t) fail_msg("no tensor %s in the list", name);
  return t;
}

static void drop(tlist *l, const char *name) {
  tspec *t = find(l, name);
  *t = l->t[--l->n];
}

static void add_layer(tlist *l, const char *prefix, int layer) {
  const char *w[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj"};
  char n[128];
  for (int i = 0; i < 4; i++) {
    snprintf(n, sizeof n, "%sencoder.layers.%d.%s.weight", prefix, layer, w[i]);
    add(l, n, 2, 8, 8, 0, 0);
    snprintf(n, sizeof n, "%sencoder.layers.%d.%s.bias", prefix, layer, w[i]);
    add(l, n, 1, 8, 0, 0, 0);
  }
  const char *ln[] = {"layer_norm1", "layer_norm2"};
  for (int i = 0; i < 2; i++) {
    snprintf(n, sizeof n, "%sencoder.layers.%d.%s.weight", prefix, layer, ln[i]);
    add(l, n, 1, 8, 0, 0, 0);
    snprintf(n, sizeof n, "%sencoder.layers.%d.%s.bias", prefix, layer, ln[i]);
    add(l, n, 1, 8, 0, 0, 0);
  }
  snprintf(n, sizeof n, "%sencoder.layers.%d.mlp.fc1.weight", prefix, layer);
  add(l, n, 2, 16, 8, 0, 0);
  snprintf(n, sizeof n, "%sencoder.layers.%d.mlp.fc1.bias", prefix, layer);
  add(l, n, 1, 16, 0, 0, 0);
  snprintf(n, sizeof n, "%sencoder.layers.%d.mlp.fc2.weight", prefix, layer);
  add(l, n, 2, 8, 16, 0, 0);
  snprintf(n, sizeof n, "%sencoder.layers.%d.mlp.fc2.bias", prefix, layer);
  add(l, n, 1, 8, 0, 0, 0);
}

/* The tiny tower's tensors; safety = the safety checker's naming and concept tensors. */
static void tiny_tower(tlist *l, int safety) {
  const char *p = safety ? "vision_model.vision_model." : "vision_model.";
  char n[128];
  l->n = 0;
#define ADD(suffix, ...) (snprintf(n, sizeof n, "%s%s", p, suffix), add(l, n, __VA_ARGS__))
  ADD("embeddings.class_embedding", 1, 8, 0, 0, 0);
  ADD("embeddings.patch_embedding.weight", 4, 8, 3, 4, 4);
  ADD("embeddings.position_embedding.weight", 2, 5, 8, 0, 0);
  ADD("pre_layrnorm.weight", 1, 8, 0, 0, 0);
  ADD("pre_layrnorm.bias", 1, 8, 0, 0, 0);
  ADD("post_layernorm.weight", 1, 8, 0, 0, 0);
  ADD("post_layernorm.bias", 1, 8, 0, 0, 0);
#undef ADD
  add_layer(l, p, 0);
  add(l, "visual_projection.weight", 2, 4, 8, 0, 0);
  if (safety) {
    add(l, "concept_embeds", 2, 3, 4, 0, 0);
    add(l, "special_care_embeds", 2, 1, 4, 0, 0);
    add(l, "concept_embeds_weights", 1, 3, 0, 0, 0);
    add(l, "special_care_embeds_weights", 1, 1, 0, 0, 0);
  }
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* The deterministic filler: norm gains near 1, small values elsewhere. */
static float filler(const tspec *t, int i, int64_t k) {
  if (strstr(t->name, "norm") && strstr(t->name, "weight")) return 1.0f + 0.01f * (float)(k % 7);
  return 0.1f * sinf((float)(k * 7 + i * 13 + 1));
}

/* Write DIR/config.json (unless config is NULL) and DIR/model.safetensors from l. */
static const char *write_model(const char *name, const char *config, const tlist *l) {
  static char dir[4096];
  char p[4200];
  snprintf(dir, sizeof dir, "%s", sd_test_tmp(name));
  sd_test_mkdirs(dir);
  snprintf(p, sizeof p, "%s/config.json", dir);
  unlink(p);
  if (config) write_text(p, config);
  snprintf(p, sizeof p, "%s/model.safetensors", dir);
  int rc = sd_test_tensors_write(p, l, filler);
  if (rc) print_message("sd_st_write: %s\n", sd_errmsg());
  assert_int_equal(rc, SD_OK);
  return dir;
}

/* Expect sd_clip_vision_load(dir) to fail with code and a message holding every needle. */
static void load_fails(const char *dir, int code, ...) {
  sd_clip_vision *cv = (sd_clip_vision *)1;
  int rc = sd_clip_vision_load(dir, &cv);
  const char *msg = sd_errmsg();
  print_message("expected failure: %s\n", msg);
  assert_int_equal(rc, code);
  assert_null(cv);
  va_list ap;
  va_start(ap, code);
  sd_test_msg_has_all(msg, ap);
  va_end(ap);
}

static void safety_fails(const char *dir, int code, ...) {
  sd_safety_checker *sc = (sd_safety_checker *)1;
  int rc = sd_safety_checker_load(dir, &sc);
  const char *msg = sd_errmsg();
  print_message("expected failure: %s\n", msg);
  assert_int_equal(rc, code);
  assert_null(sc);
  va_list ap;
  va_start(ap, code);
  sd_test_msg_has_all(msg, ap);
  va_end(ap);
}

/* ---- loading ---------------------------------------------------------------------------- */

static void test_load_and_embed(void **state) {
  (void)state;
  tlist l;
  tiny_tower(&l, 0);
  const char *dir = write_model("cv_ok", TINY_CONFIG, &l);
  sd_clip_vision *cv;
  int rc = sd_clip_vision_load(dir, &cv);
  if (rc) print_message("%s\n", sd_errmsg());
  assert_int_equal(rc, SD_OK);
  const sd_clip_vision_config *c = sd_clip_vision_cfg(cv);
  assert_int_equal(c->hidden, 8);
  assert_int_equal(c->layers, 1);
  assert_int_equal(c->heads, 2);
  assert_int_equal(c->intermediate, 16);
  assert_int_equal(c->image_size, 8);
  assert_int_equal(c->patch_size, 4);
  assert_int_equal(c->projection_dim, 4);
  assert_int_equal(c->act, SD_ACT_QUICK_GELU);
  assert_true(fabsf(c->ln_eps - 1e-5f) < 1e-12f);
  assert_int_equal(sd_clip_vision_is_safety_layout(cv), 0);
  assert_non_null(strstr(sd_clip_vision_file(cv), "model.safetensors"));

  /* 11 images of assorted sizes: more than one batch; batch == one at a time */
  sd_exec *ex;
  assert_int_equal(sd_exec_create(1, &ex), SD_OK);
  enum { N = 11 };
  uint8_t *pix[N];
  sd_rgb8_image imgs[N];
  for (int i = 0; i < N; i++) {
    int w = 3 + 2 * i, h = 17 - i;
    pix[i] = malloc((size_t)w * h * 3);
    for (int k = 0; k < w * h * 3; k++) pix[i][k] = (uint8_t)((k * 37 + i * 11) & 255);
    imgs[i] = (sd_rgb8_image){pix[i], w, h};
  }
  float all[N * 4], one[4];
  assert_int_equal(sd_clip_vision_embed(cv, ex, imgs, N, all), SD_OK);
  for (int i = 0; i < N; i++) {
    assert_int_equal(sd_clip_vision_embed(cv, ex, &imgs[i], 1, one), SD_OK);
    for (int k = 0; k < 4; k++) {
      assert_true(isfinite(all[i * 4 + k]));
      assert_true(fabsf(all[i * 4 + k] - one[k]) <= 1e-5f * (1 + fabsf(one[k])));
    }
  }
  /* images differ, so embeddings do */
  assert_true(fabsf(all[0] - all[4]) + fabsf(all[1] - all[5]) > 1e-6f);
  sd_l2_normalize_rows(all, N, 4);
  for (int i = 0; i < N; i++) {
    double s = 0;
    for (int k = 0; k < 4; k++) s += (double)all[i * 4 + k] * all[i * 4 + k];
    assert_true(fabs(s - 1) < 1e-6);
  }
  float zero[4] = {0, 0, 0, 0};
  sd_l2_normalize_rows(zero, 1, 4);
  for (int k = 0; k < 4; k++) assert_true(zero[k] == 0.0f);
  for (int i = 0; i < N; i++) free(pix[i]);
  sd_exec_destroy(ex);
  sd_clip_vision_free(cv);
}

static void test_config_variants(void **state) {
  (void)state;
  tlist l;
  tiny_tower(&l, 0);
  sd_clip_vision *cv;
  /* a CLIPModel config: tower under vision_config, projection at the top, gelu */
  const char *dir = write_model("cv_clipmodel",
                                "{\"architectures\": [\"CLIPModel\"], \"projection_dim\": 4, \"text_config\": {},"
                                " \"vision_config\": {\"hidden_size\": 8, \"num_hidden_layers\": 1,"
                                " \"num_attention_heads\": 2, \"intermediate_size\": 16, \"image_size\": 8,"
                                " \"patch_size\": 4, \"hidden_act\": \"gelu\", \"layer_norm_eps\": 1e-6,"
                                " \"projection_dim\": 512}}",
                                &l);
  assert_int_equal(sd_clip_vision_load(dir, &cv), SD_OK);
  assert_int_equal(sd_clip_vision_cfg(cv)->act, SD_ACT_GELU);
  assert_int_equal(sd_clip_vision_cfg(cv)->projection_dim, 4);
  assert_true(fabsf(sd_clip_vision_cfg(cv)->ln_eps - 1e-6f) < 1e-12f);
  sd_clip_vision_free(cv);
  /* vision_config_dict replaces vision_config, defaults included (eps back to 1e-5) */
  dir = write_model("cv_dict",
                    "{\"projection_dim\": 4, \"vision_config\": {\"hidden_size\": 999, \"layer_norm_eps\": 0.1},"
                    " \"vision_config_dict\": {\"hidden_size\": 8, \"num_hidden_layers\": 1,"
                    " \"num_attention_heads\": 2, \"intermediate_size\": 16, \"image_size\": 8, \"patch_size\": 4}}",
                    &l);
  assert_int_equal(sd_clip_vision_load(dir, &cv), SD_OK);
  assert_int_equal(sd_clip_vision_cfg(cv)->hidden, 8);
  assert_true(fabsf(sd_clip_vision_cfg(cv)->ln_eps - 1e-5f) < 1e-12f);
  sd_clip_vision_free(cv);
  /* model.fp16.safetensors is found when model.safetensors is absent; F16 weights */
  for (int i = 0; i < l.n; i++) l.t[i].dtype = SD_F16;
  dir = write_model("cv_fp16", TINY_CONFIG, &l);
  char a[4200], b[4200];
  snprintf(a, sizeof a, "%s/model.safetensors", dir);
  snprintf(b, sizeof b, "%s/model.fp16.safetensors", dir);
  assert_int_equal(rename(a, b), 0);
  assert_int_equal(sd_clip_vision_load(dir, &cv), SD_OK);
  assert_non_null(strstr(sd_clip_vision_file(cv), "model.fp16.safetensors"));
  sd_clip_vision_free(cv);
}

static void test_file_errors(void **state) {
  (void)state;
  tlist l;
  char p[4200];
  load_fails(sd_test_tmp("cv_no_such_folder"), SD_E_IO, "cv_no_such_folder", "not a folder", NULL);
  sd_test_mkdirs(sd_test_tmp("cv_empty"));
  load_fails(sd_test_tmp("cv_empty"), SD_E_IO, "no model.safetensors", NULL);
  tiny_tower(&l, 0);
  const char *dir = write_model("cv_noconfig", NULL, &l);
  load_fails(dir, SD_E_IO, "config.json", NULL);
  dir = write_model("cv_badjson", "{\"hidden_size\": 8,", &l);
  load_fails(dir, SD_E_FORMAT, "config.json", NULL);
  /* corrupt safetensors: truncated */
  dir = write_model("cv_truncated", TINY_CONFIG, &l);
  snprintf(p, sizeof p, "%s/model.safetensors", dir);
  assert_int_equal(truncate(p, 100), 0);
  load_fails(dir, SD_E_FORMAT, "model.safetensors", NULL);
  /* garbage */
  write_text(p, "not a safetensors file at all");
  load_fails(dir, SD_E_FORMAT, "model.safetensors", NULL);
}

static void test_tensor_errors(void **state) {
  (void)state;
  tlist l;
  const char *dir;
  /* missing tensors */
  const char *missing[] = {"vision_model.encoder.layers.0.mlp.fc2.bias", "vision_model.post_layernorm.weight",
                           "visual_projection.weight", "vision_model.embeddings.position_embedding.weight",
                           "vision_model.embeddings.patch_embedding.weight"};
  for (size_t i = 0; i < sizeof missing / sizeof *missing; i++) {
    tiny_tower(&l, 0);
    drop(&l, missing[i]);
    dir = write_model("cv_missing", TINY_CONFIG, &l);
    load_fails(dir, SD_E_FORMAT, "CLIP vision tower", "model.safetensors", missing[i], "is missing", NULL);
  }
  /* no tower at all */
  tiny_tower(&l, 0);
  drop(&l, "vision_model.embeddings.class_embedding");
  dir = write_model("cv_notower", TINY_CONFIG, &l);
  load_fails(dir, SD_E_FORMAT, "no CLIP vision tower", NULL);
  /* wrong shapes */
  tiny_tower(&l, 0);
  find(&l, "vision_model.encoder.layers.0.self_attn.q_proj.weight")->shape[1] = 7;
  dir = write_model("cv_shape", TINY_CONFIG, &l);
  load_fails(dir, SD_E_FORMAT, "self_attn.q_proj.weight", "[8, 7]", "expected [8, 8]", NULL);
  tiny_tower(&l, 0);
  find(&l, "vision_model.embeddings.position_embedding.weight")->shape[0] = 17; /* tokens for 16 px */
  dir = write_model("cv_pos", TINY_CONFIG, &l);
  load_fails(dir, SD_E_FORMAT, "position_embedding.weight", "[17, 8]", "expected [5, 8]", NULL);
  tiny_tower(&l, 0);
  find(&l, "vision_model.embeddings.patch_embedding.weight")->shape[2] = 2;
  find(&l, "vision_model.embeddings.patch_embedding.weight")->shape[3] = 2;
  dir = write_model("cv_patch", TINY_CONFIG, &l);
  load_fails(dir, SD_E_FORMAT, "patch_embedding.weight", "expected [8, 3, 4, 4]", NULL);
  tiny_tower(&l, 0);
  find(&l, "visual_projection.weight")->shape[0] = 5;
  dir = write_model("cv_proj", TINY_CONFIG, &l);
  load_fails(dir, SD_E_FORMAT, "visual_projection.weight", "[5, 8]", "expected [4, 8]", NULL);
  tiny_tower(&l, 0);
  tspec *t = find(&l, "vision_model.embeddings.class_embedding");
  t->ndim = 2, t->shape[1] = 1;
  dir = write_model("cv_rank", TINY_CONFIG, &l);
  load_fails(dir, SD_E_FORMAT, "class_embedding", "expected [8]", NULL);
  /* wrong dtype */
  tiny_tower(&l, 0);
  find(&l, "vision_model.encoder.layers.0.layer_norm1.weight")->dtype = SD_I32;
  dir = write_model("cv_dtype", TINY_CONFIG, &l);
  load_fails(dir, SD_E_FORMAT, "layer_norm1.weight", "dtype I32", NULL);
  /* more layers in the file than in the config */
  tiny_tower(&l, 0);
  add_layer(&l, "vision_model.", 1);
  dir = write_model("cv_extra_layer", TINY_CONFIG, &l);
  load_fails(dir, SD_E_FORMAT, "more encoder layers", "num_hidden_layers 1", NULL);
  /* fewer layers in the file than in the config */
  tiny_tower(&l, 0);
  dir = write_model("cv_few_layers",
                    "{\"hidden_size\": 8, \"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"intermediate_size\": 16,"
                    " \"image_size\": 8, \"patch_size\": 4, \"projection_dim\": 4}",
                    &l);
  load_fails(dir, SD_E_FORMAT, "encoder.layers.1.self_attn.q_proj.weight", "is missing", NULL);
}

static void test_config_errors(void **state) {
  (void)state;
  tlist l;
  tiny_tower(&l, 0);
  struct {
    const char *json;
    int code;
    const char *needle;
  } cases[] = {
    {"{\"hidden_size\": 0}", SD_E_FORMAT, "hidden_size"},
    {"{\"hidden_size\": 8, \"num_attention_heads\": 3}", SD_E_FORMAT, "not a multiple"},
    {"{\"num_hidden_layers\": 100000}", SD_E_FORMAT, "num_hidden_layers"},
    {"{\"image_size\": 100000}", SD_E_FORMAT, "image_size"},
    {"{\"image_size\": 4096, \"patch_size\": 1}", SD_E_FORMAT, "patches per side"},
    {"{\"image_size\": 8, \"patch_size\": 16}", SD_E_FORMAT, "patches per side"},
    {"{\"num_channels\": 4}", SD_E_UNSUPPORTED, "num_channels 4"},
    {"{\"hidden_act\": \"relu\"}", SD_E_UNSUPPORTED, "hidden_act"},
    {"{\"layer_norm_eps\": -1}", SD_E_FORMAT, "layer_norm_eps"},
    {"{\"layer_norm_eps\": 0}", SD_E_FORMAT, "layer_norm_eps"},
    {"{\"projection_dim\": \"abc\"}", SD_E_FORMAT, "projection_dim"},
    {"{\"projection_dim\": 1e12}", SD_E_FORMAT, "projection_dim"},
    {"{\"vision_config\": [1, 2]}", SD_E_FORMAT, "vision_config"},
    {"{\"intermediate_size\": -5}", SD_E_FORMAT, "intermediate_size"},
    {"[1, 2, 3]", SD_E_FORMAT, "config.json"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const char *dir = write_model("cv_cfg", cases[i].json, &l);
    print_message("config %s\n", cases[i].json);
    load_fails(dir, cases[i].code, "config.json", cases[i].needle, NULL);
  }
}

/* ---- preprocessing ---------------------------------------------------------------------- */

static void test_preprocess(void **state) {
  (void)state;
  /* 9x4 at size 4: no resize (the short side fits), crop left = (9-4)//2 = 2 */
  uint8_t img[4 * 9 * 3], out[4 * 4 * 3];
  for (int i = 0; i < 4 * 9 * 3; i++) img[i] = (uint8_t)i;
  sd_rgb8_image im = {img, 9, 4};
  assert_int_equal(sd_clip_resize_crop_rgb8(&im, 4, out), SD_OK);
  for (int y = 0; y < 4; y++)
    for (int x = 0; x < 4; x++)
      for (int c = 0; c < 3; c++) assert_int_equal(out[(y * 4 + x) * 3 + c], img[(y * 9 + x + 2) * 3 + c]);
  /* 4x9 likewise vertically: top = 2 */
  sd_rgb8_image tall = {img, 4, 9};
  assert_int_equal(sd_clip_resize_crop_rgb8(&tall, 4, out), SD_OK);
  assert_memory_equal(out, img + 2 * 4 * 3, 4 * 4 * 3);
  /* normalisation: value u -> (float(u/255) - mean) / std in float32 */
  float px[3 * 16];
  uint8_t flat[4 * 4 * 3];
  for (int i = 0; i < 16; i++) flat[3 * i] = 0, flat[3 * i + 1] = 255, flat[3 * i + 2] = 128;
  sd_rgb8_image fi = {flat, 4, 4};
  assert_int_equal(sd_clip_preprocess(&fi, 4, px), SD_OK);
  float r128 = (float)(128 * (1.0 / 255.0));
  for (int i = 0; i < 16; i++) {
    assert_true(px[i] == (0.0f - 0.48145466f) / 0.26862954f);
    assert_true(px[16 + i] == (1.0f - 0.4578275f) / 0.26130258f);
    assert_true(px[32 + i] == (r128 - 0.40821073f) / 0.27577711f);
  }
  /* a uniform image stays uniform through down- and upscaling (coefficients sum to one) */
  uint8_t *big = malloc(37 * 23 * 3), small[8 * 8 * 3];
  memset(big, 77, 37 * 23 * 3);
  sd_rgb8_image bi = {big, 37, 23};
  assert_int_equal(sd_clip_resize_crop_rgb8(&bi, 8, small), SD_OK);
  for (int i = 0; i < 8 * 8 * 3; i++) assert_int_equal(small[i], 77);
  uint8_t up[50 * 50 * 3];
  sd_rgb8_image si = {small, 8, 8};
  assert_int_equal(sd_clip_resize_crop_rgb8(&si, 50, up), SD_OK);
  for (int i = 0; i < 50 * 50 * 3; i++) assert_int_equal(up[i], 77);
  /* an extreme aspect ratio costs only the crop: 1 x 60000 -> 224 (the resized image would be
   * 224 x 13,440,000) */
  uint8_t *thin = malloc(60000 * 3), *o224 = malloc(224 * 224 * 3);
  for (int i = 0; i < 60000 * 3; i++) thin[i] = (uint8_t)(i / 3 % 251);
  sd_rgb8_image ti = {thin, 1, 60000};
  assert_int_equal(sd_clip_resize_crop_rgb8(&ti, 224, o224), SD_OK);
  free(thin);
  free(o224);
  free(big);
  /* bad arguments */
  sd_rgb8_image bad = {img, 0, 4};
  assert_int_equal(sd_clip_resize_crop_rgb8(&bad, 4, out), SD_E_ARG);
  assert_int_equal(sd_clip_resize_crop_rgb8(&im, 0, out), SD_E_ARG);
}

/* ---- safety checker --------------------------------------------------------------------- */

static void test_safety_rule(void **state) {
  (void)state;
  tlist l;
  tiny_tower(&l, 1);
  /* P = 4. special care: e0 with threshold 0.5. concepts: c0 = e1 (threshold 0.9996: a
   * cosine of 1 scores round(0.0004, 3) = 0, not flagged), c1 = e3 (threshold 0.005: flagged
   * at cosine 0 only with the 0.01 adjustment), c2 = e0 + e1 (threshold 0.75). */
  static const float special[4] = {1, 0, 0, 0}, special_w[1] = {0.5f};
  static const float concepts[12] = {0, 1, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0}, concept_w[3] = {0.9996f, 0.005f, 0.75f};
  find(&l, "special_care_embeds")->values = special;
  find(&l, "special_care_embeds_weights")->values = special_w;
  find(&l, "concept_embeds")->values = concepts;
  find(&l, "concept_embeds_weights")->values = concept_w;
  const char *dir = write_model("sc_ok", TINY_CONFIG, &l);
  sd_safety_checker *sc;
  int rc = sd_safety_checker_load(dir, &sc);
  if (rc) print_message("%s\n", sd_errmsg());
  assert_int_equal(rc, SD_OK);
  assert_int_equal(sd_clip_vision_is_safety_layout(sd_safety_checker_vision(sc)), 1);
  int nc, ns;
  sd_safety_checker_counts(sc, &nc, &ns);
  assert_int_equal(nc, 3);
  assert_int_equal(ns, 1);
  const float e[4 * 4] = {2, 0, 0, 0, /* special care -> c1 flagged by the adjustment */
                          0, 3, 0, 0, /* c0: 0.0004 rounds to 0 -> safe */
                          0, 0, 0, 1, /* c1 directly */
                          0, 0, 5, 0};
  sd_safety_result r[4];
  assert_int_equal(sd_safety_checker_scores(sc, e, 4, r), SD_OK);
  assert_int_equal(r[0].n_special_care, 1);
  assert_true(r[0].special_score[0] == 0.5);
  assert_int_equal(r[0].n_bad_concepts, 1);
  assert_true(r[0].concept_score[1] == 0.005);
  assert_true(fabs(r[0].concept_score[2] - (-0.033)) < 1e-12);
  assert_int_equal(r[0].has_nsfw_concept, 1);
  assert_int_equal(r[1].n_special_care, 0);
  assert_true(r[1].concept_cos[0] == 1.0f);
  assert_true(r[1].concept_score[0] == 0.0);
  assert_int_equal(r[1].has_nsfw_concept, 0);
  assert_int_equal(r[2].n_bad_concepts, 1);
  assert_true(r[2].concept_score[1] == 0.995);
  assert_int_equal(r[2].has_nsfw_concept, 1);
  assert_int_equal(r[3].has_nsfw_concept, 0);
  assert_int_equal(r[3].n_special, 1);
  assert_int_equal(r[3].n_concepts, 3);
  /* and on images, end to end */
  sd_exec *ex;
  assert_int_equal(sd_exec_create(1, &ex), SD_OK);
  uint8_t px[10 * 12 * 3];
  for (int i = 0; i < 10 * 12 * 3; i++) px[i] = (uint8_t)(i * 29);
  sd_rgb8_image im = {px, 10, 12};
  assert_int_equal(sd_safety_checker_check(sc, ex, &im, 1, r), SD_OK);
  assert_true(isfinite(r[0].concept_cos[0]));
  sd_exec_destroy(ex);
  sd_safety_checker_free(sc);
}

static void test_safety_errors(void **state) {
  (void)state;
  tlist l;
  const char *dir;
  tiny_tower(&l, 1);
  drop(&l, "concept_embeds");
  dir = write_model("sc_bad", TINY_CONFIG, &l);
  safety_fails(dir, SD_E_FORMAT, "safety checker", "model.safetensors", "'concept_embeds' is missing", NULL);
  tiny_tower(&l, 1);
  find(&l, "concept_embeds_weights")->shape[0] = 2;
  dir = write_model("sc_bad", TINY_CONFIG, &l);
  safety_fails(dir, SD_E_FORMAT, "concept_embeds_weights", "[2]", "expected [3]", NULL);
  tiny_tower(&l, 1);
  find(&l, "special_care_embeds")->shape[1] = 5;
  dir = write_model("sc_bad", TINY_CONFIG, &l);
  safety_fails(dir, SD_E_FORMAT, "special_care_embeds", "[1, 5]", "expected [*, 4]", NULL);
  tiny_tower(&l, 1);
  find(&l, "concept_embeds")->shape[0] = 65;
  find(&l, "concept_embeds_weights")->shape[0] = 65;
  dir = write_model("sc_bad", TINY_CONFIG, &l);
  safety_fails(dir, SD_E_FORMAT, "65 concepts", NULL);
  tiny_tower(&l, 1);
  static const float nan_w[1] = {NAN};
  find(&l, "special_care_embeds_weights")->values = nan_w;
  dir = write_model("sc_bad", TINY_CONFIG, &l);
  safety_fails(dir, SD_E_FORMAT, "special_care_embeds_weights", "not finite", NULL);
  /* a plain CLIP folder is not a safety checker */
  tiny_tower(&l, 0);
  dir = write_model("sc_plain", TINY_CONFIG, &l);
  safety_fails(dir, SD_E_FORMAT, "'concept_embeds' is missing", NULL);
}

/* ---- Q16 -------------------------------------------------------------------------------- */

static const char *write_bytes(const char *name, const void *data, size_t n) {
  const char *p = sd_test_tmp(name);
  FILE *f = fopen(p, "wb");
  assert_non_null(f);
  if (n) assert_int_equal(fwrite(data, 1, n, f), n);
  fclose(f);
  return p;
}

static void q16_fails(const char *path, int code, const char *needle) {
  sd_q16 *q = (sd_q16 *)1;
  int rc = sd_q16_load(path, &q);
  print_message("expected failure: %s\n", sd_errmsg());
  assert_int_equal(rc, code);
  assert_null(q);
  assert_non_null(strstr(sd_errmsg(), needle));
}

static void test_q16(void **state) {
  (void)state;
  float v[2 * 3] = {1, 0, 0, 0, 1, 0};
  const char *p = write_bytes("q16_ok.f32", v, sizeof v);
  sd_q16 *q;
  assert_int_equal(sd_q16_load(p, &q), SD_OK);
  assert_int_equal(sd_q16_dim(q), 3);
  /* e = (1, 2, 0): cos 1/sqrt5, 2/sqrt5; p1 = 1 / (1 + exp(100 (cos0 - cos1))) */
  float e[2 * 3] = {1, 2, 0, 3, 1, 0};
  sd_q16_result r[2];
  assert_int_equal(sd_q16_classify(q, e, 2, 3, r), SD_OK);
  assert_true(fabs(r[0].sim[0] - 100 / sqrt(5)) < 1e-9);
  assert_true(fabs(r[0].sim[1] - 200 / sqrt(5)) < 1e-9);
  assert_true(fabs(r[0].p_inappropriate - 1 / (1 + exp(-100 / sqrt(5)))) < 1e-12);
  assert_int_equal(r[0].inappropriate, 1);
  assert_int_equal(r[1].inappropriate, 0);
  assert_true(r[1].p_inappropriate < 0.5);
  assert_int_equal(sd_q16_classify(q, e, 1, 4, r), SD_E_ARG);
  assert_non_null(strstr(sd_errmsg(), "do not match"));
  float nan_e[3] = {NAN, 0, 0};
  assert_int_equal(sd_q16_classify(q, nan_e, 1, 3, r), SD_E_ARG);
  sd_q16_free(q);
  /* from memory */
  assert_int_equal(sd_q16_create(v, 3, &q), SD_OK);
  assert_memory_equal(sd_q16_prompts(q), v, sizeof v);
  sd_q16_free(q);
  assert_int_equal(sd_q16_create(v, 0, &q), SD_E_FORMAT);
  /* loader errors */
  q16_fails(sd_test_tmp("q16_absent.f32"), SD_E_IO, "q16_absent.f32");
  sd_test_mkdirs(sd_test_tmp("q16_dir.f32"));
  q16_fails(sd_test_tmp("q16_dir.f32"), SD_E_IO, "not a regular file");
  q16_fails(write_bytes("q16_empty.f32", v, 0), SD_E_FORMAT, "0 bytes");
  q16_fails(write_bytes("q16_odd.f32", v, 7), SD_E_FORMAT, "7 bytes");
  q16_fails(write_bytes("q16_odd.f32", v, 20), SD_E_FORMAT, "20 bytes");
  float *huge = calloc(2 * 8193, sizeof(float));
  q16_fails(write_bytes("q16_huge.f32", huge, 2 * 8193 * sizeof(float)), SD_E_FORMAT, "65544 bytes");
  free(huge);
  float bad[6] = {1, 0, 0, 0, INFINITY, 0};
  q16_fails(write_bytes("q16_inf.f32", bad, sizeof bad), SD_E_FORMAT, "row 1, value 1 is not finite");
  float zero_row[6] = {0, 0, 0, 1, 1, 1};
  q16_fails(write_bytes("q16_zero.f32", zero_row, sizeof zero_row), SD_E_FORMAT, "row 0 is zero");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_load_and_embed), cmocka_unit_test(test_config_variants),
    cmocka_unit_test(test_file_errors),    cmocka_unit_test(test_tensor_errors),
    cmocka_unit_test(test_config_errors),  cmocka_unit_test(test_preprocess),
    cmocka_unit_test(test_safety_rule),    cmocka_unit_test(test_safety_errors),
    cmocka_unit_test(test_q16),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
