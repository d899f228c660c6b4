/* nsfwjs TF.js layers-model loader (src/judge/nsfwjs.c): a small valid model written here,
 * then broken one way at a time: missing files, bad JSON, truncated or over-long shards,
 * wrong weight shapes, missing and unused weights, unknown layer kinds and options, bad
 * graph edges, hostile shard paths, non-finite weights. Each must fail with the right
 * status and a message naming the file and the weight or layer. The numbers themselves
 * are checked against PyTorch in tests/conformance/test_nsfwjs*.sh. */
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

#include <jansson.h>

#include "core/error.h"
#include "core/ops.h"
#include "judge/nsfwjs.h"
#include "testutil.h"

/* in 5x6x3 -> pad (0,1),(0,1) -> conv 3x3/2 valid (uint8) -> bn -> relu6 -> dw 3x3 same
 * (uint16) -> proj 1x1 + bias (float16) -> add(relu, proj) -> avgpool 2x3 -> flatten ->
 * dropout -> dense 5 softmax (float32) */
static const char *BASE =
  "{\"modelTopology\": {\"keras_version\": \"2.2.4\", \"backend\": \"tensorflow\", \"model_config\": {"
  "\"class_name\": \"Model\", \"config\": {\"name\": \"m\", \"layers\": ["
  "{\"name\": \"in\", \"class_name\": \"InputLayer\", \"config\": {\"batch_input_shape\": [null, 5, 6, 3], \"dtype\": \"float32\"}, \"inbound_nodes\": []},"
  "{\"name\": \"pad\", \"class_name\": \"ZeroPadding2D\", \"config\": {\"padding\": [[0, 1], [0, 1]], \"data_format\": \"channels_last\"}, \"inbound_nodes\": [[[\"in\", 0, 0, {}]]]},"
  "{\"name\": \"conv\", \"class_name\": \"Conv2D\", \"config\": {\"filters\": 4, \"kernel_size\": [3, 3], \"strides\": [2, 2], \"padding\": \"valid\", \"use_bias\": false, \"activation\": \"linear\"}, \"inbound_nodes\": [[[\"pad\", 0, 0, {}]]]},"
  "{\"name\": \"bn\", \"class_name\": \"BatchNormalization\", \"config\": {\"axis\": -1, \"epsilon\": 0.001}, \"inbound_nodes\": [[[\"conv\", 0, 0, {}]]]},"
  "{\"name\": \"relu\", \"class_name\": \"ReLU\", \"config\": {\"max_value\": 6}, \"inbound_nodes\": [[[\"bn\", 0, 0, {}]]]},"
  "{\"name\": \"dw\", \"class_name\": \"DepthwiseConv2D\", \"config\": {\"kernel_size\": [3, 3], \"strides\": [1, 1], \"padding\": \"same\", \"depth_multiplier\": 1, \"use_bias\": false}, \"inbound_nodes\": [[[\"relu\", 0, 0, {}]]]},"
  "{\"name\": \"proj\", \"class_name\": \"Conv2D\", \"config\": {\"filters\": 4, \"kernel_size\": [1, 1], \"use_bias\": true}, \"inbound_nodes\": [[[\"dw\", 0, 0, {}]]]},"
  "{\"name\": \"add\", \"class_name\": \"Add\", \"config\": {}, \"inbound_nodes\": [[[\"relu\", 0, 0, {}], [\"proj\", 0, 0, {}]]]},"
  "{\"name\": \"pool\", \"class_name\": \"AveragePooling2D\", \"config\": {\"pool_size\": [2, 3], \"strides\": [2, 3], \"padding\": \"valid\"}, \"inbound_nodes\": [[[\"add\", 0, 0, {}]]]},"
  "{\"name\": \"flat\", \"class_name\": \"Flatten\", \"config\": {}, \"inbound_nodes\": [[[\"pool\", 0, 0, {}]]]},"
  "{\"name\": \"drop\", \"class_name\": \"Dropout\", \"config\": {\"rate\": 0.5}, \"inbound_nodes\": [[[\"flat\", 0, 0, {}]]]},"
  "{\"name\": \"dense\", \"class_name\": \"Dense\", \"config\": {\"units\": 5, \"activation\": \"softmax\"}, \"inbound_nodes\": [[[\"drop\", 0, 0, {}]]]}"
  "], \"input_layers\": [[\"in\", 0, 0]], \"output_layers\": [[\"dense\", 0, 0]]}}},"
  "\"weightsManifest\": [{\"paths\": [\"group1-shard1of1\"], \"weights\": ["
  "{\"name\": \"conv/kernel\", \"shape\": [3, 3, 3, 4], \"dtype\": \"float32\", \"quantization\": {\"dtype\": \"uint8\", \"min\": -0.5, \"scale\": 0.004}},"
  "{\"name\": \"bn/gamma\", \"shape\": [4], \"dtype\": \"float32\"},"
  "{\"name\": \"bn/beta\", \"shape\": [4], \"dtype\": \"float32\"},"
  "{\"name\": \"bn/moving_mean\", \"shape\": [4], \"dtype\": \"float32\"},"
  "{\"name\": \"bn/moving_variance\", \"shape\": [4], \"dtype\": \"float32\", \"quantization\": {\"dtype\": \"uint8\", \"min\": 0.5, \"scale\": 0.01}},"
  "{\"name\": \"dw/depthwise_kernel\", \"shape\": [3, 3, 4, 1], \"dtype\": \"float32\", \"quantization\": {\"dtype\": \"uint16\", \"min\": -0.3, \"scale\": 1e-5}},"
  "{\"name\": \"proj/kernel\", \"shape\": [1, 1, 4, 4], \"dtype\": \"float32\", \"quantization\": {\"dtype\": \"float16\"}},"
  "{\"name\": \"proj/bias\", \"shape\": [4], \"dtype\": \"float32\"},"
  "{\"name\": \"dense/kernel\", \"shape\": [4, 5], \"dtype\": \"float32\"},"
  "{\"name\": \"dense/bias\", \"shape\": [5], \"dtype\": \"float32\"}"
  "]}]}";

static json_t *base(void) {
  json_error_t e;
  json_t *r = json_loads(BASE, 0, &e);
  if (!r) fail_msg("BASE: %s at %d", e.text, e.line);
  return r;
}

static json_t *manifest(json_t *root) { return json_object_get(json_array_get(json_object_get(root, "weightsManifest"), 0), "weights"); }

static json_t *wspec(json_t *root, const char *name) {
  json_t *ws = manifest(root);
  for (size_t i = 0; i < json_array_size(ws); i++)
    if (!strcmp(json_string_value(json_object_get(json_array_get(ws, i), "name")), name)) return json_array_get(ws, i);
  fail_msg("no weight %s", name);
  return NULL;
}

static json_t *layers(json_t *root) {
  return json_object_get(json_object_get(json_object_get(json_object_get(root, "modelTopology"), "model_config"), "config"), "layers");
}

static json_t *layer(json_t *root, const char *name) {
  json_t *ls = layers(root);
  for (size_t i = 0; i < json_array_size(ls); i++)
    if (!strcmp(json_string_value(json_object_get(json_array_get(ls, i), "name")), name)) return json_array_get(ls, i);
  fail_msg("no layer %s", name);
  return NULL;
}

static json_t *cfg(json_t *root, const char *name) { return json_object_get(layer(root, name), "config"); }

static uint16_t f16(float f) { return sd_f32_to_f16(f); }

/* A fresh folder `name` under the test tmp dir with model.json = root and the shard the
 * manifest describes (deterministic values), `delta` bytes longer (or shorter). If
 * nan_weight, the first float32 weight's first value is NaN. Returns the folder. */
static const char *write_model(const char *name, json_t *root, long delta, int nan_weight) {
  static char dir[4096];
  snprintf(dir, sizeof dir, "%s", sd_test_tmp(name));
  char path[4200];
  mkdir(dir, 0755);
  snprintf(path, sizeof path, "%s/model.json", dir);
  assert_int_equal(json_dump_file(root, path, 0), 0);
  unsigned char *buf = malloc(1 << 16);
  size_t n = 0;
  json_t *ws = manifest(root);
  int nan_done = !nan_weight;
  for (size_t i = 0; i < json_array_size(ws); i++) {
    json_t *w = json_array_get(ws, i), *sh = json_object_get(w, "shape"), *qz = json_object_get(w, "quantization");
    int64_t numel = 1;
    for (size_t d = 0; d < json_array_size(sh); d++) numel *= json_integer_value(json_array_get(sh, d));
    const char *qd = qz ? json_string_value(json_object_get(qz, "dtype")) : "float32";
    for (int64_t k = 0; k < numel; k++) {
      assert_true(n + 4 < (1 << 16));
      if (!strcmp(qd, "uint8")) buf[n++] = (unsigned char)((k * 37 + (int64_t)i * 11) % 256);
      else if (!strcmp(qd, "uint16")) {
        uint16_t u = (uint16_t)((k * 4099 + (int64_t)i) % 65536);
        memcpy(buf + n, &u, 2), n += 2;
      } else if (!strcmp(qd, "float16")) {
        uint16_t u = f16(0.1f * (float)((k % 7) - 3));
        memcpy(buf + n, &u, 2), n += 2;
      } else {
        float v = 0.05f + 0.01f * (float)(k % 11);
        if (!nan_done) v = NAN, nan_done = 1;
        memcpy(buf + n, &v, 4), n += 4;
      }
    }
  }
  if (delta < 0) n = (size_t)((long)n + delta);
  else
    for (long k = 0; k < delta; k++) buf[n++] = 0;
  snprintf(path, sizeof path, "%s/group1-shard1of1", dir);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(buf, 1, n, f), n);
  fclose(f);
  free(buf);
  return dir;
}

/* load must fail with `code` and a message holding every needle (NULL-terminated list) */
static void expect_fail(const char *dir, int code, ...) {
  sd_nsfwjs *m = (sd_nsfwjs *)1;
  int rc = sd_nsfwjs_load(dir, &m);
  assert_null(m);
  if (rc != code) fail_msg("load gave %s (%s), expected %s", sd_status_name(rc), sd_errmsg(), sd_status_name(code));
  va_list ap;
  va_start(ap, code);
  for (const char *s; (s = va_arg(ap, const char *));)
    if (!strstr(sd_errmsg(), s)) fail_msg("error '%s' lacks '%s'", sd_errmsg(), s);
  va_end(ap);
  assert_null(strchr(sd_errmsg(), '\n'));
}

static void test_valid(void **state) {
  (void)state;
  json_t *r = base();
  const char *dir = write_model("nsfwjs_valid", r, 0, 0);
  sd_nsfwjs *m = NULL;
  if (sd_nsfwjs_load(dir, &m)) fail_msg("%s", sd_errmsg());
  int h, w;
  sd_nsfwjs_input_size(m, &h, &w);
  assert_int_equal(h, 5);
  assert_int_equal(w, 6);
  char d[256];
  sd_nsfwjs_describe(m, d, sizeof d);
  assert_non_null(strstr(d, "12 layers"));
  assert_non_null(strstr(d, "(2 layers fused)")); /* bn into conv, relu into conv */
  assert_true(sd_nsfwjs_workspace_bytes(m) > 0);
  sd_exec *ex = NULL;
  assert_int_equal(sd_exec_create(1, &ex), SD_OK);
  uint8_t img[7 * 9 * 3];
  for (size_t i = 0; i < sizeof img; i++) img[i] = (uint8_t)(i * 29 % 256);
  float p[5], p2[5];
  assert_int_equal(sd_nsfwjs_classify(m, ex, img, 9, 7, p), SD_OK);
  double s = 0;
  for (int k = 0; k < 5; k++) {
    assert_true(isfinite(p[k]) && p[k] >= 0);
    s += p[k];
  }
  assert_true(fabs(s - 1) < 1e-5);
  assert_int_equal(sd_nsfwjs_classify(m, ex, img, 9, 7, p2), SD_OK);
  assert_memory_equal(p, p2, sizeof p);
  sd_nsfwjs_free(m);
  /* model.json itself as the path */
  char path[4200];
  snprintf(path, sizeof path, "%s/model.json", dir);
  m = NULL;
  if (sd_nsfwjs_load(path, &m)) fail_msg("%s", sd_errmsg());
  assert_int_equal(sd_nsfwjs_classify(m, ex, img, 9, 7, p2), SD_OK);
  assert_memory_equal(p, p2, sizeof p);
  sd_nsfwjs_free(m);
  sd_exec_destroy(ex);
  json_decref(r);
  assert_string_equal(sd_nsfwjs_class_name(SD_NSFWJS_PORN), "Porn");
  assert_string_equal(sd_nsfwjs_class_name(0), "Drawing");
  assert_null(sd_nsfwjs_class_name(5));
}

static void test_missing_files(void **state) {
  (void)state;
  const char *dir = sd_test_tmp("nsfwjs_empty");
  mkdir(dir, 0755);
  expect_fail(dir, SD_E_IO, "nsfwjs_empty/model.json", "cannot open", NULL);
  expect_fail(sd_test_tmp("nsfwjs_no_such_folder"), SD_E_IO, "cannot open", NULL);
  json_t *r = base();
  dir = write_model("nsfwjs_noshard", r, 0, 0);
  char path[4200];
  snprintf(path, sizeof path, "%s/group1-shard1of1", dir);
  unlink(path);
  expect_fail(dir, SD_E_IO, "nsfwjs_noshard/group1-shard1of1", "cannot open", NULL);
  json_decref(r);
}

static void write_text(const char *dir, const char *text) {
  char path[4200];
  mkdir(dir, 0755);
  snprintf(path, sizeof path, "%s/model.json", dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void test_bad_json(void **state) {
  (void)state;
  const char *dir = sd_test_tmp("nsfwjs_badjson");
  write_text(dir, "{\"modelTopology\": {\n  \"x\": [1, 2,,]}}");
  expect_fail(dir, SD_E_FORMAT, "model.json:2:", NULL);
  write_text(dir, "[1, 2]");
  expect_fail(dir, SD_E_FORMAT, "top level is an array", NULL);
  write_text(dir, "");
  expect_fail(dir, SD_E_FORMAT, "empty", NULL);
  write_text(dir, "{\"a\": 1, \"a\": 2}");
  expect_fail(dir, SD_E_FORMAT, "model.json", NULL);
  write_text(dir, "{\"modelTopology\": {}}");
  expect_fail(dir, SD_E_FORMAT, "'weightsManifest' is missing", NULL);
  write_text(dir, "{\"weightsManifest\": [], \"modelTopology\": 3}");
  expect_fail(dir, SD_E_FORMAT, "'modelTopology' is missing or not an object", NULL);
  write_text(dir, "{\"weightsManifest\": [{\"paths\": [], \"weights\": [{\"name\": \"a\", \"shape\": [2], \"dtype\": \"float32\"}]}], "
                  "\"modelTopology\": {\"class_name\": \"Sequential\", \"config\": {}}}");
  expect_fail(dir, SD_E_FORMAT, "truncated", "weight 'a'", NULL); /* no shard for a weight */
  write_text(dir, "{\"weightsManifest\": [], \"modelTopology\": {\"class_name\": \"Sequential\", \"config\": {}}}");
  expect_fail(dir, SD_E_UNSUPPORTED, "model class 'Sequential'", NULL);
}

static void test_shard_length(void **state) {
  (void)state;
  json_t *r = base();
  /* the last weight in the manifest (dense/bias, 20 bytes) is cut short */
  expect_fail(write_model("nsfwjs_trunc", r, -3, 0), SD_E_FORMAT, "nsfwjs_trunc/group1-shard1of1", "truncated",
              "weight 'dense/bias'", NULL);
  /* cut deep: the first weight whose bytes are missing is named */
  expect_fail(write_model("nsfwjs_trunc2", r, -120, 0), SD_E_FORMAT, "truncated", "weight 'proj/kernel'", NULL);
  expect_fail(write_model("nsfwjs_long", r, 1, 0), SD_E_FORMAT, "group1-shard1of1", "hold more than", NULL);
  json_decref(r);
}

static void test_weight_errors(void **state) {
  (void)state;
  json_t *r = base();
  /* wrong shape (shard consistent with the manifest) */
  json_array_set_new(json_object_get(wspec(r, "conv/kernel"), "shape"), 3, json_integer(5));
  expect_fail(write_model("nsfwjs_shape", r, 0, 0), SD_E_FORMAT, "model.json", "weight 'conv/kernel' has shape [3, 3, 3, 5]",
              "layer 'conv' (Conv2D) needs [3, 3, 3, 4]", NULL);
  json_decref(r);
  r = base();
  json_array_set_new(json_object_get(wspec(r, "dense/kernel"), "shape"), 0, json_integer(5));
  expect_fail(write_model("nsfwjs_shape2", r, 0, 0), SD_E_FORMAT, "weight 'dense/kernel' has shape [5, 5]", "needs [4, 5]", NULL);
  json_decref(r);
  /* missing weight */
  r = base();
  json_t *ws = manifest(r);
  for (size_t i = 0; i < json_array_size(ws); i++)
    if (!strcmp(json_string_value(json_object_get(json_array_get(ws, i), "name")), "proj/bias")) json_array_remove(ws, i);
  expect_fail(write_model("nsfwjs_missingw", r, 0, 0), SD_E_FORMAT, "layer 'proj' (Conv2D) needs weight 'proj/bias'",
              "weightsManifest lacks", NULL);
  json_decref(r);
  /* unused weight */
  r = base();
  json_array_append_new(manifest(r), json_pack("{s:s, s:[i], s:s}", "name", "extra/kernel", "shape", 3, "dtype", "float32"));
  expect_fail(write_model("nsfwjs_unused", r, 0, 0), SD_E_FORMAT, "weight 'extra/kernel' is not used", NULL);
  json_decref(r);
  /* duplicate weight */
  r = base();
  json_array_append(manifest(r), wspec(r, "bn/gamma"));
  expect_fail(write_model("nsfwjs_dupw", r, 0, 0), SD_E_FORMAT, "lists weight 'bn/gamma' twice", NULL);
  json_decref(r);
  /* unknown quantisation, non-float dtype, bad shape values */
  r = base();
  json_object_set_new(json_object_get(wspec(r, "conv/kernel"), "quantization"), "dtype", json_string("int8"));
  expect_fail(write_model("nsfwjs_q", r, 0, 0), SD_E_UNSUPPORTED, "weight 'conv/kernel': quantization", "'int8'", NULL);
  json_decref(r);
  r = base();
  json_object_set_new(wspec(r, "dense/bias"), "dtype", json_string("int32"));
  expect_fail(write_model("nsfwjs_dt", r, 0, 0), SD_E_UNSUPPORTED, "weight 'dense/bias'", "only float32", NULL);
  json_decref(r);
  r = base();
  json_array_set_new(json_object_get(wspec(r, "dense/bias"), "shape"), 0, json_integer(-5));
  expect_fail(write_model("nsfwjs_neg", r, 0, 0), SD_E_FORMAT, "weight 'dense/bias'", "shape", NULL);
  json_decref(r);
  r = base();
  json_object_del(json_object_get(wspec(r, "conv/kernel"), "quantization"), "scale");
  expect_fail(write_model("nsfwjs_noscale", r, 0, 0), SD_E_FORMAT, "conv/kernel", "'scale'", NULL);
  json_decref(r);
  /* a NaN weight (the first float32 one: bn/gamma) */
  r = base();
  expect_fail(write_model("nsfwjs_nan", r, 0, 1), SD_E_FORMAT, "weight 'bn/gamma' holds a non-finite value", NULL);
  json_decref(r);
}

static void test_layer_errors(void **state) {
  (void)state;
  json_t *r = base();
  json_object_set_new(layer(r, "drop"), "class_name", json_string("Lambda"));
  expect_fail(write_model("nsfwjs_kind", r, 0, 0), SD_E_UNSUPPORTED, "model.json: layer 'drop' (Lambda)",
              "layer type 'Lambda' is not implemented", NULL);
  json_decref(r);
  r = base();
  json_object_set_new(cfg(r, "dense"), "activation", json_string("tanh"));
  expect_fail(write_model("nsfwjs_act", r, 0, 0), SD_E_UNSUPPORTED, "layer 'dense' (Dense)", "activation 'tanh'", NULL);
  json_decref(r);
  r = base();
  json_object_set_new(cfg(r, "conv"), "padding", json_string("causal"));
  expect_fail(write_model("nsfwjs_pad", r, 0, 0), SD_E_UNSUPPORTED, "layer 'conv'", "padding 'causal'", NULL);
  json_decref(r);
  r = base();
  json_object_set_new(cfg(r, "conv"), "dilation_rate", json_pack("[i,i]", 2, 2));
  expect_fail(write_model("nsfwjs_dil", r, 0, 0), SD_E_UNSUPPORTED, "dilation_rate 2x2", NULL);
  json_decref(r);
  r = base();
  json_object_set_new(cfg(r, "conv"), "data_format", json_string("channels_first"));
  expect_fail(write_model("nsfwjs_df", r, 0, 0), SD_E_UNSUPPORTED, "data_format 'channels_first'", NULL);
  json_decref(r);
  r = base();
  json_object_set_new(cfg(r, "relu"), "negative_slope", json_real(0.1));
  expect_fail(write_model("nsfwjs_leaky", r, 0, 0), SD_E_UNSUPPORTED, "layer 'relu' (ReLU)", "negative_slope", NULL);
  json_decref(r);
  r = base();
  json_object_set_new(cfg(r, "pool"), "padding", json_string("same"));
  expect_fail(write_model("nsfwjs_poolsame", r, 0, 0), SD_E_UNSUPPORTED, "layer 'pool'", "'same'", NULL);
  json_decref(r);
  /* kernel_size wrong type / out of range */
  r = base();
  json_object_set_new(cfg(r, "conv"), "kernel_size", json_string("3"));
  expect_fail(write_model("nsfwjs_ks", r, 0, 0), SD_E_FORMAT, "layer 'conv'", "kernel_size", NULL);
  json_decref(r);
  r = base();
  json_object_set_new(cfg(r, "conv"), "kernel_size", json_pack("[i,i,i]", 3, 3, 3));
  expect_fail(write_model("nsfwjs_ks3", r, 0, 0), SD_E_FORMAT, "kernel_size", NULL);
  json_decref(r);
  /* a 'valid' kernel larger than its input (and the weight shaped to match) */
  r = base();
  json_object_set_new(cfg(r, "conv"), "kernel_size", json_pack("[i,i]", 7, 7));
  json_object_set_new(wspec(r, "conv/kernel"), "shape", json_pack("[i,i,i,i]", 7, 7, 3, 4));
  expect_fail(write_model("nsfwjs_big", r, 0, 0), SD_E_FORMAT, "a 7x7 'valid' kernel does not fit the 6x7 input", NULL);
  json_decref(r);
  /* output with 3 values */
  r = base();
  json_object_set_new(cfg(r, "dense"), "units", json_integer(3));
  json_object_set_new(wspec(r, "dense/kernel"), "shape", json_pack("[i,i]", 4, 3));
  json_object_set_new(wspec(r, "dense/bias"), "shape", json_pack("[i]", 3));
  expect_fail(write_model("nsfwjs_units", r, 0, 0), SD_E_FORMAT, "output layer 'dense' gives 3 values", NULL);
  json_decref(r);
  /* Add of different shapes: add(relu, pad) */
  r = base();
  json_array_set_new(json_array_get(json_array_get(json_object_get(layer(r, "add"), "inbound_nodes"), 0), 1),
                     0, json_string("pad"));
  expect_fail(write_model("nsfwjs_addshape", r, 0, 0), SD_E_FORMAT, "layer 'add' (Add)", "no broadcasting", NULL);
  json_decref(r);
  /* input shape */
  r = base();
  json_object_set_new(cfg(r, "in"), "batch_input_shape", json_pack("[n,i,i,i]", 5, 6, 4));
  expect_fail(write_model("nsfwjs_in4", r, 0, 0), SD_E_UNSUPPORTED, "4 input channels", NULL);
  json_decref(r);
  r = base();
  json_object_set_new(cfg(r, "in"), "batch_input_shape", json_pack("[n,n,i,i]", 6, 3));
  expect_fail(write_model("nsfwjs_innull", r, 0, 0), SD_E_FORMAT, "batch_input_shape", NULL);
  json_decref(r);
}

static void test_graph_errors(void **state) {
  (void)state;
  json_t *r = base();
  json_array_set_new(json_array_get(json_array_get(json_object_get(layer(r, "flat"), "inbound_nodes"), 0), 0), 0,
                     json_string("nope"));
  expect_fail(write_model("nsfwjs_edge", r, 0, 0), SD_E_FORMAT, "layer 'flat' takes input 'nope', which is not a layer defined before it", NULL);
  json_decref(r);
  /* a forward reference: flat before pool */
  r = base();
  json_array_set_new(json_array_get(json_array_get(json_object_get(layer(r, "flat"), "inbound_nodes"), 0), 0), 0,
                     json_string("drop"));
  expect_fail(write_model("nsfwjs_fwd", r, 0, 0), SD_E_FORMAT, "takes input 'drop'", NULL);
  json_decref(r);
  r = base();
  json_object_set_new(layer(r, "pool"), "name", json_string("add"));
  expect_fail(write_model("nsfwjs_dupname", r, 0, 0), SD_E_FORMAT, "two layers are named 'add'", NULL);
  json_decref(r);
  r = base();
  json_t *ib = json_object_get(layer(r, "pool"), "inbound_nodes");
  json_array_append(ib, json_array_get(ib, 0));
  expect_fail(write_model("nsfwjs_shared", r, 0, 0), SD_E_UNSUPPORTED, "layer 'pool' is applied 2 times", NULL);
  json_decref(r);
  r = base();
  json_array_set_new(json_array_get(json_array_get(json_object_get(layer(r, "flat"), "inbound_nodes"), 0), 0), 1,
                     json_integer(1));
  expect_fail(write_model("nsfwjs_node1", r, 0, 0), SD_E_UNSUPPORTED, "layer 'flat'", "node 1", NULL);
  json_decref(r);
  r = base();
  json_object_set_new(json_object_get(json_object_get(json_object_get(r, "modelTopology"), "model_config"), "config"),
                      "output_layers", json_pack("[[s,i,i]]", "missing", 0, 0));
  expect_fail(write_model("nsfwjs_out", r, 0, 0), SD_E_FORMAT, "output_layers names 'missing'", NULL);
  json_decref(r);
  /* a layer name with control characters is quoted safely in messages */
  r = base();
  json_t *drop = layer(r, "drop");
  json_object_set_new(drop, "class_name", json_string("Lambda"));
  json_object_set_new(drop, "name", json_string("evil\x1b[31m\n"));
  json_array_set_new(json_array_get(json_array_get(json_object_get(layer(r, "dense"), "inbound_nodes"), 0), 0), 0,
                     json_string("evil\x1b[31m\n"));
  expect_fail(write_model("nsfwjs_evil", r, 0, 0), SD_E_UNSUPPORTED, "evil\\x1b[31m\\x0a", NULL);
  json_decref(r);
}

static void test_shard_paths(void **state) {
  (void)state;
  const char *bad[] = {"../group1-shard1of1", "/etc/passwd", "sub/shard", "", ".."};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json_t *r = base();
    json_array_set_new(json_object_get(json_array_get(json_object_get(r, "weightsManifest"), 0), "paths"), 0,
                       json_string(bad[i]));
    expect_fail(write_model("nsfwjs_paths", r, 0, 0), SD_E_FORMAT, "is not a plain file name beside model.json", NULL);
    json_decref(r);
  }
  /* a folder where the shard should be */
  json_t *r = base();
  const char *dir = write_model("nsfwjs_shard_dir", r, 0, 0);
  char path[4200];
  snprintf(path, sizeof path, "%s/group1-shard1of1", dir);
  unlink(path);
  mkdir(path, 0755);
  expect_fail(dir, SD_E_IO, "is a directory", NULL);
  rmdir(path);
  json_decref(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_valid),        cmocka_unit_test(test_missing_files), cmocka_unit_test(test_bad_json),
    cmocka_unit_test(test_shard_length), cmocka_unit_test(test_weight_errors), cmocka_unit_test(test_layer_errors),
    cmocka_unit_test(test_graph_errors), cmocka_unit_test(test_shard_paths),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
