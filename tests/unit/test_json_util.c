/* JSON helpers: loading (errors with path:line:col) and the typed getters. */
#define _XOPEN_SOURCE 700

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/error.h"
#include "io/json_util.h"
#include "testutil.h"

static void assert_msg_has(const char *want) {
  if (!strstr(sd_errmsg(), want)) {
    print_error("error message\n  %s\ndoes not contain\n  %s\n", sd_errmsg(), want);
    fail();
  }
}

static json_t *load(const char *text) {
  json_t *j = NULL;
  int rc = sd_json_load_memory(text, strlen(text), "cfg.json", SD_JSON_CONFIG_MAX, &j);
  if (rc) print_error("%s\n", sd_errmsg());
  assert_int_equal(rc, SD_OK);
  return j;
}

static void load_fails(const char *text, size_t len, int code, const char *want) {
  json_t *j = (json_t *)1;
  assert_int_equal(sd_json_load_memory(text, len, "cfg.json", 64, &j), code);
  assert_null(j);
  assert_msg_has(want);
}

static void test_load_memory_errors(void **state) {
  (void)state;
  load_fails("", 0, SD_E_FORMAT, "cfg.json: file is empty");
  load_fails("{\"a\": 1,\n \"b\": tru}", 19, SD_E_FORMAT, "cfg.json:2:");
  load_fails("{\"a\": 1,\n \"b\": tru}", 19, SD_E_FORMAT, "invalid token");
  load_fails("{\"a\": 1, \"a\": 2}", 16, SD_E_FORMAT, "duplicate object key");
  load_fails("[1, 2]", 6, SD_E_FORMAT, "cfg.json: top level is an array, expected an object");
  load_fails("{\"a\": \"\xff\"}", 10, SD_E_FORMAT, "unable to decode byte 0xff");
  load_fails("{\"a\": \"x\\u0000\"}", 15, SD_E_FORMAT, "cfg.json:1:");
  load_fails("{} trailing", 11, SD_E_FORMAT, "end of file expected");
  char big[100];
  memset(big, ' ', sizeof big);
  big[0] = '{';
  big[99] = '}';
  load_fails(big, sizeof big, SD_E_FORMAT, "cfg.json: file is too large (100 bytes; the limit is 64)");
  json_t *j = NULL;
  assert_int_equal(sd_json_load_memory(NULL, 1, "x", 64, &j), SD_E_ARG);
  assert_int_equal(sd_json_load_memory("{}", 2, NULL, 64, NULL), SD_E_ARG);
  assert_int_equal(sd_json_load_memory("{}", 2, NULL, 64, &j), SD_OK);
  json_decref(j);
  /* Deep nesting is refused by the parser, not by a stack overflow. */
  size_t n = 100000;
  char *deep = malloc(n);
  assert_non_null(deep);
  memset(deep, '[', n);
  assert_int_equal(sd_json_load_memory(deep, n, "deep.json", n, &j), SD_E_FORMAT);
  assert_msg_has("maximum parsing depth");
  free(deep);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fputs(text, f);
  assert_int_equal(fclose(f), 0);
}

static void test_load_file(void **state) {
  (void)state;
  json_t *j = (json_t *)1;
  char *missing = strdup(sd_test_tmp("missing.json"));
  assert_int_equal(sd_json_load_file(missing, SD_JSON_CONFIG_MAX, &j), SD_E_IO);
  assert_null(j);
  assert_msg_has(missing);
  assert_msg_has("No such file");
  free(missing);

  char *dir = strdup(sd_test_tmp("dir.json"));
  mkdir(dir, 0755);
  assert_int_equal(sd_json_load_file(dir, SD_JSON_CONFIG_MAX, &j), SD_E_IO);
  assert_msg_has("is a directory");
  rmdir(dir);
  free(dir);

  char *path = strdup(sd_test_tmp("config.json"));
  write_file(path, "{\n  \"in_channels\": 4,\n  \"sample_size\": 64,\n  \"oops\" 3\n}\n");
  assert_int_equal(sd_json_load_file(path, SD_JSON_CONFIG_MAX, &j), SD_E_FORMAT);
  char want[4200];
  snprintf(want, sizeof want, "%s:4:", path); /* path:line:col */
  assert_msg_has(want);

  assert_int_equal(sd_json_load_file(path, 10, &j), SD_E_FORMAT);
  assert_msg_has("file is too large");

  write_file(path, "{\"in_channels\": 4}");
  assert_int_equal(sd_json_load_file(path, SD_JSON_CONFIG_MAX, &j), SD_OK);
  int ch = 0;
  assert_int_equal(sd_json_get_i32(j, "in_channels", path, 1, 16, &ch, 1), SD_OK);
  assert_int_equal(ch, 4);
  json_decref(j);

  write_file(path, "");
  assert_int_equal(sd_json_load_file(path, SD_JSON_CONFIG_MAX, &j), SD_E_FORMAT);
  assert_msg_has("file is empty");
  unlink(path);
  free(path);
}

static const char *k_cfg =
  "{\"_class_name\": \"UNet2DConditionModel\", \"in_channels\": 4, \"sample_size\": 64.0,"
  " \"norm_eps\": 1e-05, \"neg\": -3, \"half\": 2.5, \"big\": 9223372036854775807,"
  " \"center_input_sample\": false, \"flag\": true, \"num_attention_heads\": null,"
  " \"block_out_channels\": [320, 640, 1280, 1280], \"empty\": [],"
  " \"attention_head_dim\": 8, \"mixed\": [1, \"2\"], \"bigarr\": [1, 3000000000],"
  " \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"],"
  " \"sub\": {\"k\": 1}, \"evil\": \"\\u001b[2J\\u202e\"}";

static void test_get_int(void **state) {
  (void)state;
  json_t *j = load(k_cfg);
  int64_t v = -1;
  assert_int_equal(sd_json_get_int(j, "in_channels", "c", 1, 16, &v, 1), SD_OK);
  assert_int_equal(v, 4);
  assert_int_equal(sd_json_get_int(j, "sample_size", "c", 1, 1024, &v, 1), SD_OK); /* 64.0 */
  assert_int_equal(v, 64);
  assert_int_equal(sd_json_get_int(j, "neg", "c", INT64_MIN, INT64_MAX, &v, 1), SD_OK);
  assert_int_equal(v, -3);
  assert_int_equal(sd_json_get_int(j, "big", "c", INT64_MIN, INT64_MAX, &v, 1), SD_OK);
  assert_true(v == INT64_MAX);

  v = 77;
  assert_int_equal(sd_json_get_int(j, "in_channels", "c.json", 5, 16, &v, 1), SD_E_FORMAT);
  assert_msg_has("c.json: key 'in_channels': 4 is out of range [5, 16]");
  assert_int_equal(v, 77); /* untouched on error */
  assert_int_equal(sd_json_get_int(j, "half", "c.json", 0, 10, &v, 1), SD_E_FORMAT);
  assert_msg_has("key 'half': expected an integer in [0, 10], got 2.5");
  assert_int_equal(sd_json_get_int(j, "flag", "c.json", 0, 10, &v, 1), SD_E_FORMAT);
  assert_msg_has("got true");
  assert_int_equal(sd_json_get_int(j, "_class_name", "c.json", 0, 10, &v, 1), SD_E_FORMAT);
  assert_msg_has("got \"UNet2DConditionModel\"");
  assert_int_equal(sd_json_get_int(j, "block_out_channels", "c.json", 0, 10, &v, 1), SD_E_FORMAT);
  assert_msg_has("got an array");

  /* Absent / null. */
  assert_int_equal(sd_json_get_int(j, "nope", "c.json", 0, 10, &v, 0), SD_OK);
  assert_int_equal(v, 77);
  assert_int_equal(sd_json_get_int(j, "num_attention_heads", "c.json", 0, 10, &v, 0), SD_OK);
  assert_int_equal(v, 77);
  assert_int_equal(sd_json_get_int(j, "nope", "c.json", 0, 10, &v, 1), SD_E_FORMAT);
  assert_msg_has("c.json: missing required key 'nope'");
  assert_int_equal(sd_json_get_int(j, "num_attention_heads", "c.json", 0, 10, &v, 1), SD_E_FORMAT);
  assert_msg_has("missing required key 'num_attention_heads'");
  assert_int_equal(sd_json_has(j, "num_attention_heads"), 0);
  assert_int_equal(sd_json_has(j, "in_channels"), 1);
  assert_int_equal(sd_json_has(NULL, "in_channels"), 0);

  /* Bad calls. */
  assert_int_equal(sd_json_get_int(j, NULL, "c", 0, 1, &v, 0), SD_E_ARG);
  assert_int_equal(sd_json_get_int(j, "in_channels", "c", 0, 1, NULL, 0), SD_E_ARG);
  assert_int_equal(sd_json_get_int(j, "in_channels", "c", 5, 1, &v, 0), SD_E_ARG);
  assert_int_equal(sd_json_get_int(json_object_get(j, "block_out_channels"), "x", "c", 0, 1, &v, 0),
                   SD_E_FORMAT);
  assert_msg_has("expected an object holding key 'x', got an array");
  assert_int_equal(sd_json_get_int(NULL, "x", NULL, 0, 1, &v, 0), SD_E_FORMAT);
  assert_msg_has("<json>: ");

  int i = 0;
  assert_int_equal(sd_json_get_i32(j, "in_channels", "c", 1, 16, &i, 1), SD_OK);
  assert_int_equal(i, 4);
  assert_int_equal(sd_json_get_i32(j, "big", "c", INT_MIN, INT_MAX, &i, 1), SD_E_FORMAT);
  assert_msg_has("out of range");
  assert_int_equal(i, 4);
  assert_int_equal(sd_json_get_i32(j, "nope", "c", 0, 1, &i, 0), SD_OK);
  assert_int_equal(i, 4);
  json_decref(j);
}

static void test_get_num_str_bool(void **state) {
  (void)state;
  json_t *j = load(k_cfg);
  double d = 0;
  assert_int_equal(sd_json_get_num(j, "norm_eps", "c", 0, 1, &d, 1), SD_OK);
  assert_true(d == 1e-05);
  assert_int_equal(sd_json_get_num(j, "in_channels", "c", 0, 10, &d, 1), SD_OK); /* an integer is a number */
  assert_true(d == 4.0);
  assert_int_equal(sd_json_get_num(j, "half", "c", 0, 1, &d, 1), SD_E_FORMAT);
  assert_msg_has("key 'half': 2.5 is out of range [0, 1]");
  assert_int_equal(sd_json_get_num(j, "flag", "c", 0, 1, &d, 1), SD_E_FORMAT);
  assert_msg_has("expected a number");
  float f = 0;
  assert_int_equal(sd_json_get_f32(j, "norm_eps", "c", 0, 1, &f, 1), SD_OK);
  assert_true(f == 1e-05f);
  f = 9;
  assert_int_equal(sd_json_get_f32(j, "nope", "c", 0, 1, &f, 0), SD_OK);
  assert_true(f == 9);

  const char *s = NULL;
  assert_int_equal(sd_json_get_str(j, "_class_name", "c", &s, 1), SD_OK);
  assert_string_equal(s, "UNet2DConditionModel");
  assert_int_equal(sd_json_get_str(j, "in_channels", "c", &s, 1), SD_E_FORMAT);
  assert_msg_has("key 'in_channels': expected a string, got 4");
  int b = -1;
  assert_int_equal(sd_json_get_bool(j, "flag", "c", &b, 1), SD_OK);
  assert_int_equal(b, 1);
  assert_int_equal(sd_json_get_bool(j, "center_input_sample", "c", &b, 1), SD_OK);
  assert_int_equal(b, 0);
  assert_int_equal(sd_json_get_bool(j, "in_channels", "c", &b, 1), SD_E_FORMAT);
  assert_msg_has("expected true or false, got 4");

  /* Strings from the file are escaped in messages. */
  assert_int_equal(sd_json_get_int(j, "evil", "c", 0, 1, (int64_t[]){0}, 1), SD_E_FORMAT);
  assert_msg_has("got \"\\x1b[2J\\u202e\"");
  const json_t *sub = NULL;
  assert_int_equal(sd_json_get_obj(j, "sub", "c", &sub, 1), SD_OK);
  assert_int_equal(sd_json_get_i32(sub, "k", "c: sub", 0, 1, &b, 1), SD_OK);
  assert_int_equal(b, 1);
  assert_int_equal(sd_json_get_obj(j, "flag", "c", &sub, 1), SD_E_FORMAT);
  json_decref(j);
}

static void test_get_arrays(void **state) {
  (void)state;
  json_t *j = load(k_cfg);
  int a[8] = {0}, n = -1;
  assert_int_equal(sd_json_get_int_array(j, "block_out_channels", "c", a, 8, &n), SD_OK);
  assert_int_equal(n, 4);
  assert_int_equal(a[0], 320);
  assert_int_equal(a[3], 1280);
  assert_int_equal(sd_json_get_int_array(j, "empty", "c", a, 8, &n), SD_OK);
  assert_int_equal(n, 0);
  n = -1;
  assert_int_equal(sd_json_get_int_array(j, "block_out_channels", "c", a, 3, &n), SD_E_FORMAT);
  assert_msg_has("key 'block_out_channels': the array has 4 elements; at most 3 are supported");
  assert_int_equal(n, -1);
  assert_int_equal(sd_json_get_int_array(j, "attention_head_dim", "c", a, 8, &n), SD_E_FORMAT);
  assert_msg_has("expected an array of integers, got 8");
  assert_int_equal(sd_json_get_int_array(j, "mixed", "c", a, 8, &n), SD_E_FORMAT);
  assert_msg_has("key 'mixed'[1]: expected an integer");
  a[0] = 5;
  assert_int_equal(sd_json_get_int_array(j, "bigarr", "c", a, 8, &n), SD_E_FORMAT);
  assert_msg_has("key 'bigarr'[1]: 3000000000 is out of range");
  assert_int_equal(a[0], 5); /* untouched on error */
  assert_int_equal(sd_json_get_int_array(j, "nope", "c", a, 8, &n), SD_E_FORMAT);
  assert_msg_has("missing required key 'nope'");
  assert_int_equal(sd_json_get_int_array_ex(j, "nope", "c", 1, 10, a, 8, &n, 0), SD_OK);
  assert_int_equal(n, -1);
  assert_int_equal(sd_json_get_int_array_ex(j, "block_out_channels", "c", 1, 1000, a, 8, &n, 1),
                   SD_E_FORMAT);
  assert_msg_has("key 'block_out_channels'[2]: 1280 is out of range [1, 1000]");
  assert_int_equal(sd_json_get_int_array(j, "block_out_channels", "c", NULL, 8, &n), SD_E_ARG);
  assert_int_equal(sd_json_get_int_array(j, "block_out_channels", "c", a, -1, &n), SD_E_ARG);
  assert_int_equal(sd_json_get_int_array(j, "block_out_channels", "c", a, 8, NULL), SD_E_ARG);

  const char *s[4];
  assert_int_equal(sd_json_get_str_array(j, "down_block_types", "c", s, 4, &n, 1), SD_OK);
  assert_int_equal(n, 2);
  assert_string_equal(s[0], "CrossAttnDownBlock2D");
  assert_string_equal(s[1], "DownBlock2D");
  assert_int_equal(sd_json_get_str_array(j, "mixed", "c", s, 4, &n, 1), SD_E_FORMAT);
  assert_msg_has("key 'mixed'[0]: expected a string, got 1");
  json_decref(j);
}

static void test_quote(void **state) {
  (void)state;
  char b[32];
  assert_string_equal(sd_msg_quote("plain text", b, sizeof b), "plain text");
  assert_string_equal(sd_msg_quote("a\\b", b, sizeof b), "a\\\\b");
  assert_string_equal(sd_msg_quote("\x1b[31m\n\x7f", b, sizeof b), "\\x1b[31m\\x0a\\x7f");
  assert_string_equal(sd_msg_quote("h\xc3\xa9llo", b, sizeof b), "h\xc3\xa9llo");
  assert_string_equal(sd_msg_quote("\xc2\x9b" "1", b, sizeof b), "\\u009b1");   /* C1 CSI */
  assert_string_equal(sd_msg_quote("\xe2\x80\xae", b, sizeof b), "\\u202e");     /* RLO */
  assert_string_equal(sd_msg_quote("\xff\xc3", b, sizeof b), "\\xff\\xc3");     /* invalid */
  assert_string_equal(sd_msg_quote("\xed\xa0\x80", b, sizeof b), "\\xed\\xa0\\x80"); /* surrogate */
  assert_string_equal(sd_msg_quote("\xc0\xaf", b, sizeof b), "\\xc0\\xaf");     /* overlong */
  assert_string_equal(sd_msg_quote(NULL, b, sizeof b), "(null)");
  /* Exactly fits (31 chars) vs one more. */
  assert_string_equal(sd_msg_quote("0123456789012345678901234567890", b, sizeof b),
                      "0123456789012345678901234567890");
  assert_string_equal(sd_msg_quote("01234567890123456789012345678901", b, sizeof b),
                      "0123456789012345678901234567...");
  /* A cut never splits an escape or a UTF-8 sequence. */
  assert_string_equal(sd_msg_quote("0123456789012345678901234\x01xxxxxxx", b, sizeof b),
                      "0123456789012345678901234...");
  assert_string_equal(sd_msg_quote("012345678901234567890123456\xc3\xa9xxxxx", b, sizeof b),
                      "012345678901234567890123456...");
  char tiny[4];
  assert_string_equal(sd_msg_quote("abcdef", tiny, sizeof tiny), "...");
  assert_string_equal(sd_msg_quote("abc", tiny, sizeof tiny), "abc");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_load_memory_errors),
    cmocka_unit_test(test_load_file),
    cmocka_unit_test(test_get_int),
    cmocka_unit_test(test_get_num_str_bool),
    cmocka_unit_test(test_get_arrays),
    cmocka_unit_test(test_quote),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
