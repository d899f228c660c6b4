/* libFuzzer target: the JSON config loader and the typed getters (io/json_util.h).
 *
 * The input is parsed with sd_json_load_memory. When it loads, every getter is called on
 * every key of the top level and of nested objects (one level down), required and optional,
 * with several ranges, plus the keys the diffusers config parsers ask for. Each call must
 * either succeed with a value inside the requested range, or fail with SD_E_FORMAT, leave
 * the output untouched and set a one-line message that starts with the label.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/json_util.h"
#include "fuzz_check.h"

#define LABEL "fuzz.json"
#define MAXN 8


static void check_fail(int rc, const char *label) {
  CHECK(rc == SD_E_FORMAT);
  const char *msg = sd_errmsg();
  size_t l = strlen(label);
  CHECK(strncmp(msg, label, l) == 0 && (msg[l] == ':'));
  for (const unsigned char *m = (const unsigned char *)msg; *m; m++) CHECK(*m >= 0x20 && *m != 0x7f);
}

static void probe_key(const json_t *obj, const char *key, const char *label) {
  static const int64_t ranges[][2] = {
    {INT64_MIN, INT64_MAX}, {0, 0}, {1, 4096}, {-5, 5}, {INT_MIN, INT_MAX}};
  int present = sd_json_has(obj, key);
  for (int required = 0; required <= 1; required++) {
    for (size_t r = 0; r < sizeof ranges / sizeof *ranges; r++) {
      int64_t v = 12345;
      int rc = sd_json_get_int(obj, key, label, ranges[r][0], ranges[r][1], &v, required);
      if (rc == SD_OK) CHECK(present ? (v >= ranges[r][0] && v <= ranges[r][1]) : (v == 12345 && !required));
      else { check_fail(rc, label); CHECK(v == 12345); }
      int i = 777;
      int lo = (int)(ranges[r][0] < INT_MIN ? INT_MIN : ranges[r][0]);
      int hi = (int)(ranges[r][1] > INT_MAX ? INT_MAX : ranges[r][1]);
      rc = sd_json_get_i32(obj, key, label, lo, hi, &i, required);
      if (rc == SD_OK) CHECK(present ? (i >= lo && i <= hi) : i == 777);
      else { check_fail(rc, label); CHECK(i == 777); }
    }
    double d = -42.0;
    int rc = sd_json_get_num(obj, key, label, -1e300, 1e300, &d, required);
    if (rc == SD_OK) CHECK(present ? (d >= -1e300 && d <= 1e300) : d == -42.0);
    else { check_fail(rc, label); CHECK(d == -42.0); }
    float f = -42.0f;
    rc = sd_json_get_f32(obj, key, label, 0.0f, 1.0f, &f, required);
    if (rc == SD_OK) CHECK(present ? (f >= 0.0f && f <= 1.0f) : f == -42.0f);
    else { check_fail(rc, label); CHECK(f == -42.0f); }
    const char *s = NULL;
    rc = sd_json_get_str(obj, key, label, &s, required);
    if (rc == SD_OK) CHECK(present ? s != NULL : s == NULL);
    else { check_fail(rc, label); CHECK(s == NULL); }
    if (s) { volatile size_t len = strlen(s); (void)len; }
    int b = 9;
    rc = sd_json_get_bool(obj, key, label, &b, required);
    if (rc == SD_OK) CHECK(present ? (b == 0 || b == 1) : b == 9);
    else { check_fail(rc, label); CHECK(b == 9); }
    int arr[MAXN], n = -1;
    for (int k = 0; k < MAXN; k++) arr[k] = -7;
    rc = sd_json_get_int_array_ex(obj, key, label, 0, 100000, arr, MAXN, &n, required);
    if (rc == SD_OK && present) {
      CHECK(n >= 0 && n <= MAXN);
      for (int k = 0; k < n; k++) CHECK(arr[k] >= 0 && arr[k] <= 100000);
    } else if (rc == SD_OK) {
      CHECK(n == -1);
    } else {
      check_fail(rc, label);
      CHECK(n == -1);
      for (int k = 0; k < MAXN; k++) CHECK(arr[k] == -7);
    }
    const char *sa[MAXN];
    n = -1;
    rc = sd_json_get_str_array(obj, key, label, sa, MAXN, &n, required);
    if (rc == SD_OK && present) {
      CHECK(n >= 0 && n <= MAXN);
      for (int k = 0; k < n; k++) CHECK(sa[k] != NULL);
    } else if (rc == SD_OK) {
      CHECK(n == -1);
    } else {
      check_fail(rc, label);
    }
  }
  if (present) {
    int arr[MAXN], n = 0;
    int rc = sd_json_get_int_array(obj, key, label, arr, MAXN, &n);
    if (rc) check_fail(rc, label);
  }
}

static void probe_object(const json_t *obj, const char *label, int depth) {
  static const char *const known[] = {
    "_class_name", "in_channels", "out_channels", "sample_size", "block_out_channels",
    "layers_per_block", "attention_head_dim", "num_attention_heads", "cross_attention_dim",
    "use_linear_projection", "norm_num_groups", "norm_eps", "down_block_types",
    "up_block_types", "scaling_factor", "latent_channels", "hidden_size", "vocab_size",
    "prediction_type", "flip_sin_to_cos", "freq_shift", ""};
  for (size_t i = 0; i < sizeof known / sizeof *known; i++) probe_key(obj, known[i], label);
  const char *key;
  json_t *v;
  size_t count = 0;
  json_object_foreach((json_t *)obj, key, v) {
    if (count++ >= 64) break; /* bound the work per input */
    probe_key(obj, key, label);
    const json_t *sub = NULL;
    int rc = sd_json_get_obj(obj, key, label, &sub, 1);
    if (rc == SD_OK) {
      CHECK(json_is_object(sub));
      if (depth < 1) probe_object(sub, "fuzz.json: sub", depth + 1);
    } else {
      check_fail(rc, label);
    }
  }
}

/* sd_msg_quote on raw bytes (invalid UTF-8 included) and several capacities. */
static void probe_quote(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  CHECK(s != NULL);
  if (size) memcpy(s, data, size);
  s[size] = 0;
  static const size_t caps[] = {4, 5, 7, 16, 61, 160};
  for (size_t i = 0; i < sizeof caps / sizeof *caps; i++) {
    char *q = malloc(caps[i]); /* exact size: ASan sees any overrun */
    CHECK(q != NULL);
    sd_msg_quote(s, q, caps[i]);
    size_t l = strlen(q);
    CHECK(l < caps[i]);
    for (size_t k = 0; k < l; k++) CHECK((unsigned char)q[k] >= 0x20 && q[k] != 0x7f);
    free(q);
  }
  free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  json_t *root = (json_t *)&root;
  probe_quote(data, size);
  sd_clear_error();
  int rc = sd_json_load_memory(data, size, LABEL, SD_JSON_CONFIG_MAX, &root);
  if (rc != SD_OK) {
    CHECK(root == NULL);
    check_fail(rc, LABEL);
    return 0;
  }
  CHECK(json_is_object(root));
  probe_object(root, LABEL, 0);
  /* A getter on something that is not an object fails cleanly. */
  const char *key;
  json_t *v;
  json_object_foreach(root, key, v) {
    if (!json_is_object(v)) {
      int64_t x = 5;
      rc = sd_json_get_int(v, "k", LABEL, 0, 1, &x, 0);
      CHECK(rc == SD_E_FORMAT && x == 5);
      break;
    }
  }
  json_decref(root);
  return 0;
}
