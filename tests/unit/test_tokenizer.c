/* CLIP BPE tokenizer: golden ids from ../shared (both loaders), hand cases with the bundled
 * vocabulary, framing, invalid input, malformed vocabulary files, concurrent use. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* stat, getline, clock_gettime, setenv */
#endif
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/error.h"
#include "testutil.h"
#include "text/tokenizer.h"

#define BOS 49406
#define EOS 49407

static sd_tokenizer *g_tok; /* the bundled gz, loaded once */

static int group_setup(void **state) {
  (void)state;
  int rc =
      sd_tokenizer_load_openai_gz(sd_test_src("data/clip/bpe_simple_vocab_16e6.txt.gz"), &g_tok);
  if (rc) {
    fprintf(stderr, "loading the bundled vocabulary: %s\n", sd_errmsg());
    return -1;
  }
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  sd_tokenizer_free(g_tok);
  return 0;
}

static void write_file(const char *path, const char *data, size_t len) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

/* ---- golden file ---------------------------------------------------------------------- */

typedef struct {
  char *prompt;
  size_t len;
  int32_t ids[SD_CLIP_CONTEXT];
} golden_line;

static golden_line *load_golden(const char *path, size_t *count) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  golden_line *g = NULL;
  size_t n = 0, cap = 0;
  char *line = NULL;
  size_t lcap = 0;
  ssize_t ll;
  while ((ll = getline(&line, &lcap, f)) > 0) {
    json_error_t err;
    json_t *o = json_loadb(line, (size_t)ll, JSON_ALLOW_NUL, &err);
    if (!o) fail_msg("%s line %zu: %s", path, n + 1, err.text);
    json_t *p = json_object_get(o, "prompt"), *ids = json_object_get(o, "hf_ids");
    assert_true(json_is_string(p));
    assert_true(json_is_array(ids));
    assert_int_equal(json_array_size(ids), SD_CLIP_CONTEXT);
    if (n == cap) {
      cap = cap ? cap * 2 : 512;
      g = realloc(g, cap * sizeof *g);
      assert_non_null(g);
    }
    g[n].len = json_string_length(p);
    g[n].prompt = malloc(g[n].len + 1);
    assert_non_null(g[n].prompt);
    memcpy(g[n].prompt, json_string_value(p), g[n].len + 1);
    for (int i = 0; i < SD_CLIP_CONTEXT; i++)
      g[n].ids[i] = (int32_t)json_integer_value(json_array_get(ids, (size_t)i));
    json_decref(o);
    n++;
  }
  free(line);
  fclose(f);
  *count = n;
  return g;
}

static void free_golden(golden_line *g, size_t n) {
  for (size_t i = 0; i < n; i++) free(g[i].prompt);
  free(g);
}

static void print_ids(const char *label, const int32_t *ids, int n) {
  printf("    %s:", label);
  for (int i = 0; i < n; i++) printf(" %d", (int)ids[i]);
  printf("\n");
}

/* Frame like diffusers: BOS + first 75 + EOS, padded with EOS. */
static int frame_text(const sd_tokenizer *tok, const char *s, size_t len, int32_t pad,
                      int32_t *out) {
  int32_t *ids;
  size_t n;
  int rc = sd_tokenize(tok, s, len, &ids, &n);
  if (rc) return rc;
  rc = sd_tokenizer_frame(tok, ids, n, pad, SD_CLIP_CONTEXT, out);
  free(ids);
  return rc;
}

static void run_golden(const sd_tokenizer *tok, const char *label) {
  const char *path = sd_test_shared("data/clip-tokenizer/golden.jsonl");
  if (!path) skip();
  size_t n;
  golden_line *g = load_golden(path, &n);
  assert_int_equal(n, 468);
  size_t match = 0, shown = 0;
  for (size_t i = 0; i < n; i++) {
    int32_t out[SD_CLIP_CONTEXT];
    int rc = frame_text(tok, g[i].prompt, g[i].len, EOS, out);
    if (rc < 0) {
      if (shown++ < 5) printf("  [%s] line %zu: error %s\n", label, i + 1, sd_errmsg());
      continue;
    }
    if (memcmp(out, g[i].ids, sizeof out) == 0) {
      match++;
    } else if (shown++ < 5) {
      printf("  [%s] mismatch on golden line %zu, prompt \"%s\"\n", label, i + 1, g[i].prompt);
      print_ids("expected", g[i].ids, SD_CLIP_CONTEXT);
      print_ids("got     ", out, SD_CLIP_CONTEXT);
    }
  }
  printf("  [%s] golden: %zu/%zu lines match hf_ids\n", label, match, n);

  /* throughput over the golden prompts (tokenize + frame) */
  struct timespec t0, t1;
  int reps = 0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  double el;
  do {
    for (size_t i = 0; i < n; i++) {
      int32_t out[SD_CLIP_CONTEXT];
      assert_true(frame_text(tok, g[i].prompt, g[i].len, EOS, out) > 0);
    }
    reps++;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    el = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  } while (el < 0.3);
  printf("  [%s] throughput: %.0f prompts/s (%d passes over %zu golden prompts, one thread)\n",
         label, (double)reps * (double)n / el, reps, n);
  fflush(stdout);
  free_golden(g, n);
  assert_int_equal(match, n);
}

static void test_golden_hf_files(void **state) {
  (void)state;
  char vocab[4096], merges[4096];
  const char *p = sd_test_shared("data/clip-tokenizer/vocab.json");
  if (!p) skip();
  snprintf(vocab, sizeof vocab, "%s", p);
  p = sd_test_shared("data/clip-tokenizer/merges.txt");
  if (!p) skip();
  snprintf(merges, sizeof merges, "%s", p);
  sd_tokenizer *tok;
  int rc = sd_tokenizer_load_hf(vocab, merges, &tok);
  if (rc) fail_msg("load_hf: %s", sd_errmsg());
  assert_int_equal(sd_tokenizer_vocab_size(tok), 49408);
  /* the two loaders build the same vocabulary */
  for (int32_t id = 0; id < 49408; id++)
    assert_string_equal(sd_tokenizer_token(tok, id), sd_tokenizer_token(g_tok, id));
  run_golden(tok, "vocab.json+merges.txt");
  sd_tokenizer_free(tok);
}

static void test_golden_bundled_gz(void **state) {
  (void)state;
  run_golden(g_tok, "bundled gz");
}

/* ---- hand cases (no shared data needed) --------------------------------------------------- */

static void expect_ids(const char *text, size_t len, const int32_t *want, size_t nwant) {
  int32_t *ids;
  size_t n;
  int rc = sd_tokenize(g_tok, text, len, &ids, &n);
  if (rc) fail_msg("tokenize \"%s\": %s", text, sd_errmsg());
  int ok = n == nwant && memcmp(ids, want, n * sizeof *ids) == 0;
  if (!ok) {
    printf("  prompt \"%s\"\n", text);
    print_ids("expected", want, (int)nwant);
    print_ids("got     ", ids, (int)n);
  }
  free(ids);
  assert_true(ok);
}

#define EXPECT(s, ...)                                          \
  do {                                                          \
    static const int32_t w_[] = {__VA_ARGS__};                  \
    expect_ids(s, sizeof(s) - 1, w_, sizeof w_ / sizeof w_[0]); \
  } while (0)

static void test_basic(void **state) {
  (void)state;
  assert_int_equal(sd_tokenizer_vocab_size(g_tok), 49408);
  assert_int_equal(sd_tokenizer_bos(g_tok), BOS);
  assert_int_equal(sd_tokenizer_eos(g_tok), EOS);
  assert_string_equal(sd_tokenizer_token(g_tok, 2368), "cat</w>");
  assert_string_equal(sd_tokenizer_token(g_tok, 0), "!");
  assert_string_equal(sd_tokenizer_token(g_tok, 256), "!</w>");
  assert_string_equal(sd_tokenizer_token(g_tok, BOS), "<|startoftext|>");
  assert_null(sd_tokenizer_token(g_tok, 49408));
  assert_null(sd_tokenizer_token(g_tok, -1));
  assert_int_equal(sd_tokenizer_lookup(g_tok, "photo</w>"), 1125);
  assert_int_equal(sd_tokenizer_lookup(g_tok, "no-such-token"), -1);

  int32_t out[SD_CLIP_CONTEXT];
  int n = sd_tokenize_prompt(g_tok, "a photo of a cat", EOS, SD_CLIP_CONTEXT, out);
  assert_int_equal(n, 7);
  const int32_t want[] = {BOS, 320, 1125, 539, 320, 2368, EOS};
  assert_memory_equal(out, want, sizeof want);
  for (int i = 7; i < SD_CLIP_CONTEXT; i++) assert_int_equal(out[i], EOS);
}

static void test_load_default(void **state) {
  (void)state;
  sd_tokenizer *tok;
  int rc = sd_tokenizer_load_default(&tok);
  if (rc) fail_msg("load_default: %s", sd_errmsg());
  int32_t out[SD_CLIP_CONTEXT];
  assert_int_equal(sd_tokenize_prompt(tok, "a photo of a cat", EOS, SD_CLIP_CONTEXT, out), 7);
  assert_int_equal(out[5], 2368);
  sd_tokenizer_free(tok);

  /* $SAFESD_DATA_DIR first: a folder without clip/ falls through to the source tree */
  setenv("SAFESD_DATA_DIR", sd_test_tmp("no-data-here"), 1);
  rc = sd_tokenizer_load_default(&tok);
  if (rc) fail_msg("load_default with an empty SAFESD_DATA_DIR: %s", sd_errmsg());
  sd_tokenizer_free(tok);
  /* ...but a broken file there is reported, not skipped */
  char dir[4096], sub[4200], gz[4300];
  snprintf(dir, sizeof dir, "%s", sd_test_tmp("datadir"));
  snprintf(sub, sizeof sub, "%s/clip", dir);
  mkdir(dir, 0755);
  mkdir(sub, 0755);
  snprintf(gz, sizeof gz, "%s/bpe_simple_vocab_16e6.txt.gz", sub);
  write_file(gz, "garbage", 7);
  setenv("SAFESD_DATA_DIR", dir, 1);
  rc = sd_tokenizer_load_default(&tok);
  assert_int_equal(rc, SD_E_FORMAT);
  assert_non_null(strstr(sd_errmsg(), "datadir/clip/bpe_simple_vocab_16e6.txt.gz"));
  unsetenv("SAFESD_DATA_DIR");
}

static void test_empty_and_whitespace(void **state) {
  (void)state;
  const char *texts[] = {"", " ", "\t\r\n  ", "\xc2\xa0\xe3\x80\x80", "\xe2\x80\x8b", "\x01\x7f"};
  for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
    int32_t out[SD_CLIP_CONTEXT];
    assert_int_equal(sd_tokenize_prompt(g_tok, texts[k], EOS, SD_CLIP_CONTEXT, out), 2);
    assert_int_equal(out[0], BOS);
    for (int i = 1; i < SD_CLIP_CONTEXT; i++) assert_int_equal(out[i], EOS);
  }
  int32_t *ids = (int32_t *)1;
  size_t n = 99;
  assert_int_equal(sd_tokenize(g_tok, NULL, 0, &ids, &n), SD_OK);
  assert_int_equal(n, 0);
  assert_non_null(ids);
  free(ids);
}

static void test_truncation_and_padding(void **state) {
  (void)state;
  char text[1024] = "";
  for (int i = 0; i < 100; i++) strcat(text, "cat ");
  int32_t *ids;
  size_t n;
  assert_int_equal(sd_tokenize(g_tok, text, strlen(text), &ids, &n), SD_OK);
  assert_int_equal(n, 100);
  int32_t out[SD_CLIP_CONTEXT];
  assert_int_equal(sd_tokenizer_frame(g_tok, ids, n, EOS, SD_CLIP_CONTEXT, out), 77);
  assert_int_equal(out[0], BOS);
  for (int i = 1; i < 76; i++) assert_int_equal(out[i], 2368);
  assert_int_equal(out[76], EOS);

  /* exactly 75 tokens fit; 76 are cut to 75 */
  assert_int_equal(sd_tokenizer_frame(g_tok, ids, 75, EOS, SD_CLIP_CONTEXT, out), 77);
  assert_int_equal(out[75], 2368);
  assert_int_equal(out[76], EOS);
  assert_int_equal(sd_tokenizer_frame(g_tok, ids, 74, EOS, SD_CLIP_CONTEXT, out), 76);
  assert_int_equal(out[75], EOS);
  assert_int_equal(out[76], EOS);

  /* SD 2.x (OpenCLIP) pads with 0 */
  assert_int_equal(sd_tokenizer_frame(g_tok, ids, 3, 0, SD_CLIP_CONTEXT, out), 5);
  const int32_t want[] = {BOS, 2368, 2368, 2368, EOS};
  assert_memory_equal(out, want, sizeof want);
  for (int i = 5; i < SD_CLIP_CONTEXT; i++) assert_int_equal(out[i], 0);
  assert_int_equal(sd_tokenize_prompt(g_tok, "", 0, SD_CLIP_CONTEXT, out), 2);
  assert_int_equal(out[1], EOS);
  assert_int_equal(out[2], 0);

  /* other context lengths */
  int32_t small[4];
  assert_int_equal(sd_tokenizer_frame(g_tok, ids, n, 0, 4, small), 4);
  assert_int_equal(small[3], EOS);
  assert_int_equal(sd_tokenizer_frame(g_tok, ids, n, 0, 1, small), SD_E_ARG);
  free(ids);
}

static void test_invalid_utf8(void **state) {
  (void)state;
  static const struct {
    const char *s;
    size_t off;
  } bad[] = {
      {"\xff", 0},             /* never valid */
      {"cat \xc3", 4},         /* truncated sequence at the end */
      {"ab\xc3(", 2},          /* bad continuation */
      {"\xc0\xaf", 0},         /* overlong '/' */
      {"x\xe0\x80\xaf", 1},    /* overlong, 3 bytes */
      {"ok \xed\xa0\x80", 3},  /* UTF-16 surrogate */
      {"\xf4\x90\x80\x80", 0}, /* above U+10FFFF */
      {"caf\xc3\xa9 \x80", 6}, /* lone continuation after valid text */
  };
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    int32_t *ids = NULL;
    size_t n = 0;
    sd_clear_error();
    assert_int_equal(sd_tokenize(g_tok, bad[k].s, strlen(bad[k].s), &ids, &n), SD_E_ARG);
    assert_null(ids);
    char want[64];
    snprintf(want, sizeof want, "offset %zu", bad[k].off);
    if (!strstr(sd_errmsg(), want))
      fail_msg("case %zu: message \"%s\" lacks \"%s\"", k, sd_errmsg(), want);
    int32_t out[SD_CLIP_CONTEXT];
    assert_int_equal(sd_tokenize_prompt(g_tok, bad[k].s, EOS, SD_CLIP_CONTEXT, out), SD_E_ARG);
  }
  /* an embedded NUL is valid UTF-8 (U+0000) and is dropped, like HF's clean step */
  EXPECT("cat\0dog", 1481, 1929);
}

/* Ids below are the hf_ids of the same prompts in ../shared/data/clip-tokenizer/golden.jsonl. */
static void test_hand_cases(void **state) {
  (void)state;
  EXPECT("A Photo Of A CAT", 320, 1125, 539, 320, 2368);
  /* contractions, any case; curly apostrophe is not one; 'ſ matches 's under IGNORECASE */
  EXPECT("it's don't you're we've i'm we'll he'd", 585, 568, 847, 713, 592, 982, 649, 1200, 328,
         880, 649, 1342, 797, 1896);
  EXPECT("IT'S DON'T YOU'RE WE'VE I'M WE'LL HE'D", 585, 568, 847, 713, 592, 982, 649, 1200, 328,
         880, 649, 1342, 797, 1896);
  EXPECT("you\xe2\x80\x99re it\xe2\x80\x99s", 592, 728, 503, 810, 585, 728, 503, 338);
  EXPECT("it'\xc5\xbf", 585, 6, 129, 379);
  /* NFC composes e + U+0301 */
  EXPECT("cafe\xcc\x81", 15304);
  /* CJK ideographs get spaces around them; U+F900 is spaced, then NFC'd to U+8C48 */
  EXPECT("\xe4\xb8\x80\xe5\x8f\xaa\xe7\x8c\xab", 19759, 478, 34517, 359, 163, 234, 360);
  EXPECT(
      "cat\xe7\x8c\xab"
      "dog",
      2368, 163, 234, 360, 1929);
  EXPECT("\xef\xa4\x80", 164, 109, 486);
  /* whitespace: NBSP and U+2028/2029 separate words; ZWSP and NUL are deleted */
  EXPECT(
      "cat\xc2\xa0"
      "dog",
      2368, 1929);
  EXPECT(
      "cat\xe2\x80\xa8"
      "dog\xe2\x80\xa9"
      "bird",
      2368, 1929, 3329);
  EXPECT(
      "cat\xe2\x80\x8b"
      "dog",
      1481, 1929);
  /* emoji tag sequence: the tag characters (Cf) are deleted */
  EXPECT(
      "\xf0\x9f\x8f\xb4\xf3\xa0\x81\xa7\xf3\xa0\x81\xa2\xf3\xa0\x81\xa5\xf3\xa0\x81\xae\xf3\xa0"
      "\x81\xa7\xf3\xa0\x81\xbf",
      19704);
  /* full lowercase: İ -> i + U+0307; final sigma */
  EXPECT("\xc4\xb0stanbul ISTANBUL", 328, 16384, 11231, 12258);
  EXPECT("\xc4\xb1i I\xc4\xb0", 18562, 328, 2329, 16384);
  EXPECT(
      "Stra\xc3\x9f"
      "e STRASSE \xe1\xba\x9e",
      1894, 127, 253, 324, 1894, 8938, 127, 509);
  EXPECT("\xce\xa3\xce\x99\xce\xa3\xce\xa5\xce\xa6\xce\x9f\xce\xa3", 139, 225, 138, 117, 139, 225,
         139, 227, 139, 228, 138, 123, 139, 480);
  EXPECT("\xce\x9f\xce\x94\xce\x9f\xce\xa3 \xce\x9f\xce\x94\xce\x9f\xce\xa3.", 138, 123, 138, 112,
         138, 123, 139, 480, 138, 123, 138, 112, 138, 123, 139, 480, 269);
  /* special tokens: split out literally (case-sensitive) before anything else */
  EXPECT("<|endoftext|>", EOS);
  EXPECT("a cat <|endoftext|> a dog", 320, 2368, EOS, 320, 1929);
  EXPECT("a cat<|endoftext|>a dog", 320, 2368, EOS, 320, 1929);
  EXPECT("!<|endoftext|>", 256, EOS);
  EXPECT("<|endoftext|>'s", EOS, 568);
  /* ...upper case ones are lowercased and then matched by the regex as a whole */
  EXPECT("<|ENDOFTEXT|>", EOS);
  EXPECT("!<|ENDOFTEXT|>", 0, 27, 347, 40786, 4160, 91, 285);
}

static void test_long_word(void **state) {
  (void)state;
  /* 300 letters with no space (golden edge/long): 37 x "aaaaaaaa" + "aaaa</w>" */
  char text[301];
  memset(text, 'a', 300);
  text[300] = 0;
  int32_t *ids;
  size_t n;
  assert_int_equal(sd_tokenize(g_tok, text, 300, &ids, &n), SD_OK);
  assert_int_equal(n, 38);
  for (size_t i = 0; i < 37; i++) assert_int_equal(ids[i], 23126);
  assert_int_equal(ids[37], 19336);
  free(ids);

  /* a huge word stays fast (BPE is O(n log n)) and never crashes */
  size_t big = 200000;
  char *huge = malloc(big);
  assert_non_null(huge);
  for (size_t i = 0; i < big; i++) huge[i] = (char)('a' + (i * 7 + i / 3) % 26);
  assert_int_equal(sd_tokenize(g_tok, huge, big, &ids, &n), SD_OK);
  assert_true(n > 1000);
  free(ids);
  free(huge);
}

static void test_append_segments(void **state) {
  (void)state;
  /* a prompt parser tokenizes "(a cat:1.2), dog" as segments: "a cat", ", dog" */
  int32_t *ids = NULL;
  size_t n = 0, cap = 0;
  const char *p = "(a cat:1.2), dog";
  assert_int_equal(sd_tokenize_append(g_tok, p + 1, 5, &ids, &n, &cap), SD_OK);
  assert_int_equal(n, 2);
  assert_int_equal(sd_tokenize_append(g_tok, p + 11, 5, &ids, &n, &cap), SD_OK);
  const int32_t want[] = {320, 2368, 267, 1929};
  assert_int_equal(n, 4);
  assert_memory_equal(ids, want, sizeof want);
  /* an error leaves what was there */
  assert_int_equal(sd_tokenize_append(g_tok, "\xff", 1, &ids, &n, &cap), SD_E_ARG);
  assert_int_equal(n, 4);
  assert_memory_equal(ids, want, sizeof want);
  free(ids);
}

/* ---- concurrent use ------------------------------------------------------------------------ */

static const char *const k_thread_prompts[] = {
    "a photo of a cat",
    "Stra\xc3\x9f\x65 \xce\xa3\xce\x99\xce\xa3", /* "Straße ΣΙΣ" */
    "cafe\xcc\x81 \xe4\xb8\x80\xe5\x8f\xaa",
    "masterpiece, best quality, (detailed face:1.3), 8k uhd", "it's <|endoftext|> ok"};
#define N_TP (sizeof k_thread_prompts / sizeof k_thread_prompts[0])
static int32_t k_thread_want[N_TP][SD_CLIP_CONTEXT];

static void *thread_main(void *arg) {
  (void)arg;
  for (int r = 0; r < 300; r++) {
    for (size_t k = 0; k < N_TP; k++) {
      int32_t out[SD_CLIP_CONTEXT];
      if (sd_tokenize_prompt(g_tok, k_thread_prompts[k], EOS, SD_CLIP_CONTEXT, out) < 0)
        return (void *)1;
      if (memcmp(out, k_thread_want[k], sizeof out) != 0) return (void *)1;
    }
  }
  return NULL;
}

static void test_threads(void **state) {
  (void)state;
  for (size_t k = 0; k < N_TP; k++)
    assert_true(
        sd_tokenize_prompt(g_tok, k_thread_prompts[k], EOS, SD_CLIP_CONTEXT, k_thread_want[k]) > 0);
  pthread_t th[4];
  for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&th[i], NULL, thread_main, NULL), 0);
  for (int i = 0; i < 4; i++) {
    void *res;
    assert_int_equal(pthread_join(th[i], &res), 0);
    assert_null(res);
  }
}

/* ---- malformed vocabulary files -------------------------------------------------------------- */

/* A minimal valid HF pair: the 512 byte symbols, "ca", "cat</w>", specials; merges
 * "c a" and "ca t</w>". extra_json/extra_merges are appended for the broken variants. */
static void byte_symbol(int b, char *out) {
  /* bytes_to_unicode: printable Latin-1 maps to itself, the rest to U+0100 + k */
  static int map[256];
  static int ready;
  if (!ready) {
    int k = 0;
    for (int c = 0; c < 256; c++) {
      int keep = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE);
      map[c] = keep ? c : 256 + k++;
    }
    ready = 1;
  }
  int cp = map[b];
  if (cp < 0x80) {
    out[0] = (char)cp, out[1] = 0;
  } else {
    out[0] = (char)(0xC0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
  }
}

static char *mini_vocab(const char *extra, int with_specials, int drop_byte) {
  size_t cap = 65536, len = 0;
  char *s = malloc(cap);
  assert_non_null(s);
  len += (size_t)snprintf(s + len, cap - len, "{");
  int id = 0;
  for (int pass = 0; pass < 2; pass++) {
    for (int b = 0; b < 256; b++) {
      char sym[4];
      byte_symbol(b, sym);
      int id_here = id++;
      if (b == drop_byte && pass == 0) continue;
      const char *esc = (strcmp(sym, "\"") == 0) ? "\\\"" : (strcmp(sym, "\\") == 0) ? "\\\\" : sym;
      len += (size_t)snprintf(s + len, cap - len, "%s\"%s%s\":%d", id_here ? "," : "", esc,
                              pass ? "</w>" : "", id_here);
    }
  }
  len += (size_t)snprintf(s + len, cap - len, ",\"ca\":512,\"cat</w>\":513");
  if (with_specials)
    len += (size_t)snprintf(s + len, cap - len, ",\"<|startoftext|>\":514,\"<|endoftext|>\":515");
  len += (size_t)snprintf(s + len, cap - len, "%s}", extra ? extra : "");
  return s;
}

typedef struct {
  const char *name;
  const char *vocab; /* NULL: mini_vocab(NULL, 1, -1) */
  const char *merges;
  int code;
  const char *needle; /* expected in the message */
} bad_case;

static void check_hf(const char *vocab, size_t vlen, const char *merges, size_t mlen, int code,
                     const char *needle, const char *name) {
  char vp[4096], mp[4096];
  snprintf(vp, sizeof vp, "%s", sd_test_tmp("tok_vocab.json"));
  snprintf(mp, sizeof mp, "%s", sd_test_tmp("tok_merges.txt"));
  write_file(vp, vocab, vlen);
  write_file(mp, merges, mlen);
  sd_tokenizer *tok = (sd_tokenizer *)1;
  sd_clear_error();
  int rc = sd_tokenizer_load_hf(vp, mp, &tok);
  if (rc != code) fail_msg("%s: expected %d, got %d (%s)", name, code, rc, sd_errmsg());
  if (code == SD_OK) {
    assert_non_null(tok);
    sd_tokenizer_free(tok);
    return;
  }
  assert_null(tok);
  if (!strstr(sd_errmsg(), needle))
    fail_msg("%s: message \"%s\" lacks \"%s\"", name, sd_errmsg(), needle);
}

/* a merges.txt (string literal) against the valid minimal vocab.json */
#define CHECK_MERGES(m, code, needle, name) check_hf(good, gl, m, sizeof(m) - 1, code, needle, name)

static void test_malformed_hf(void **state) {
  (void)state;
  char *good = mini_vocab(NULL, 1, -1);
  size_t gl = strlen(good);
  const char *gm = "#version: 0.2\nc a\nca t</w>\n";

  /* the minimal pair is valid and tokenizes "cat" to one token */
  {
    char vp[4096], mp[4096];
    snprintf(vp, sizeof vp, "%s", sd_test_tmp("tok_vocab.json"));
    snprintf(mp, sizeof mp, "%s", sd_test_tmp("tok_merges.txt"));
    write_file(vp, good, strlen(good));
    write_file(mp, gm, strlen(gm));
    sd_tokenizer *tok;
    if (sd_tokenizer_load_hf(vp, mp, &tok)) fail_msg("minimal vocab: %s", sd_errmsg());
    int32_t out[8];
    assert_int_equal(sd_tokenize_prompt(tok, "Cat cab", 0, 8, out), 5);
    assert_int_equal(out[1], 513);
    assert_int_equal(out[2], 512);
    assert_string_equal(sd_tokenizer_token(tok, out[3]), "b</w>");
    assert_int_equal(out[4], 515);
    sd_tokenizer_free(tok);
  }

  const char *m = gm;
  size_t ml = strlen(gm);
  check_hf(good, gl, m, ml, SD_OK, "", "valid");
  check_hf("{\"a\": 0,", 8, m, ml, SD_E_FORMAT, "not valid JSON", "truncated JSON");
  check_hf("[1, 2]", 6, m, ml, SD_E_FORMAT, "JSON object", "array instead of object");
  check_hf("{}", 2, m, ml, SD_E_FORMAT, "vocabulary entries", "empty object");
  check_hf("\xff\xfe", 2, m, ml, SD_E_FORMAT, "not valid JSON", "binary");

  char *v;
  v = mini_vocab(",\"xyz\":\"516\"", 1, -1);
  check_hf(v, strlen(v), m, ml, SD_E_FORMAT, "not an integer", "string id");
  free(v);
  v = mini_vocab(",\"xyz\":516.5", 1, -1);
  check_hf(v, strlen(v), m, ml, SD_E_FORMAT, "not an integer", "real id");
  free(v);
  v = mini_vocab(",\"xyz\":-1", 1, -1);
  check_hf(v, strlen(v), m, ml, SD_E_FORMAT, "outside", "negative id");
  free(v);
  v = mini_vocab(",\"xyz\":999999", 1, -1);
  check_hf(v, strlen(v), m, ml, SD_E_FORMAT, "outside", "id out of range");
  free(v);
  v = mini_vocab(",\"xyz\":513", 1, -1);
  check_hf(v, strlen(v), m, ml, SD_E_FORMAT, "more than one token", "duplicate id");
  free(v);
  v = mini_vocab(",\"ca\":516", 1, -1);
  check_hf(v, strlen(v), m, ml, SD_E_FORMAT, "not valid JSON", "duplicate key");
  free(v);
  v = mini_vocab(",\"xyz\":99999999999999999999999", 1, -1);
  check_hf(v, strlen(v), m, ml, SD_E_FORMAT, "not valid JSON", "huge id");
  free(v);
  v = mini_vocab(NULL, 0, -1);
  check_hf(v, strlen(v), m, ml, SD_E_FORMAT, "lacks <|startoftext|>", "no special tokens");
  free(v);
  v = mini_vocab(",\"<|startoftext|>\":514,\"<|endoftext|>\":515", 0, 'z');
  check_hf(v, strlen(v), m, ml, SD_E_FORMAT, "outside", "missing byte symbol shifts ids");
  free(v);
  v = mini_vocab(",\"<|startoftext|>\":514,\"<|endoftext|>\":515,\"zz\":516", 0, 'z');
  /* 'z' dropped from ids 0..255, "zz" takes its place at the end: ids are dense again */
  {
    /* rewrite: put "zz" at the dropped id so ids stay 0..n-1 */
    char *p = strstr(v, "\"zz\":516");
    assert_non_null(p);
    snprintf(p, 16, "\"zz\":%d}", 'z'); /* pass-0 ids follow byte values */
    check_hf(v, strlen(v), m, ml, SD_E_FORMAT, "lacks the symbol for byte 0x7A",
             "missing byte symbol");
  }
  free(v);

  /* merges.txt */
  CHECK_MERGES("#version: 0.2\nc a\nca\n", SD_E_FORMAT, "line 3: expected two symbols",
               "one symbol");
  CHECK_MERGES("#version: 0.2\nc a\nca t</w> x\n", SD_E_FORMAT, "line 3: expected two symbols",
               "three symbols");
  CHECK_MERGES("#version: 0.2\nc a\n\nca t</w>\n", SD_E_FORMAT, "line 3: expected two symbols",
               "blank line inside");
  CHECK_MERGES("#version: 0.2\nc a\nq@ t</w>\n", SD_E_FORMAT, "\"q@\" is not in the vocabulary",
               "piece not in vocab");
  CHECK_MERGES("#version: 0.2\nc a\nc t\n", SD_E_FORMAT, "merge result \"ct\"",
               "result not in vocab");
  CHECK_MERGES("#version: 0.2\nc a\nc a\n", SD_E_FORMAT, "repeats the merge", "duplicate merge");
  CHECK_MERGES("#version: 0.2\n", SD_E_FORMAT, "no merges", "no merges");
  CHECK_MERGES("#version: 0.2\nc a\n\xc3\n", SD_E_FORMAT, "not valid UTF-8", "bad UTF-8");
  /* CRLF and trailing blank lines are fine; no header is fine */
  CHECK_MERGES("#version: 0.2\r\nc a\r\nca t</w>\r\n\r\n\n", SD_OK, "", "CRLF");
  CHECK_MERGES("c a\nca t</w>\n", SD_OK, "", "no header");

  /* missing files */
  sd_tokenizer *tok;
  char nope[4096], mtxt[4096];
  snprintf(nope, sizeof nope, "%s", sd_test_tmp("nope.json"));
  snprintf(mtxt, sizeof mtxt, "%s", sd_test_tmp("tok_merges.txt"));
  assert_int_equal(sd_tokenizer_load_hf(nope, mtxt, &tok), SD_E_IO);
  assert_non_null(strstr(sd_errmsg(), "nope.json"));
  char vp[4096];
  snprintf(vp, sizeof vp, "%s", sd_test_tmp("tok_vocab.json"));
  write_file(vp, good, gl);
  assert_int_equal(sd_tokenizer_load_hf(vp, sd_test_tmp("nope.txt"), &tok), SD_E_IO);
  assert_non_null(strstr(sd_errmsg(), "nope.txt"));
  snprintf(nope, sizeof nope, "%s", sd_test_tmp(""));
  assert_int_equal(sd_tokenizer_load_hf(nope, mtxt, &tok), SD_E_IO); /* a folder */

  /* too large: a sparse 65 MiB file is refused before it is read */
  {
    char big[4096];
    snprintf(big, sizeof big, "%s", sd_test_tmp("tok_big.json"));
    FILE *f = fopen(big, "wb");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), (off_t)65 << 20), 0);
    fclose(f);
    char mp[4096];
    snprintf(mp, sizeof mp, "%s", sd_test_tmp("tok_merges.txt"));
    write_file(mp, gm, strlen(gm));
    assert_int_equal(sd_tokenizer_load_hf(big, mp, &tok), SD_E_FORMAT);
    assert_non_null(strstr(sd_errmsg(), "too large"));
    assert_int_equal(sd_tokenizer_load_hf(vp, big, &tok), SD_E_FORMAT);
    assert_non_null(strstr(sd_errmsg(), "too large"));
    unlink(big);
  }
  free(good);
}

static void write_gz(const char *path, const char *data, size_t len) {
  gzFile gz = gzopen(path, "wb");
  assert_non_null(gz);
  assert_int_equal(gzwrite(gz, data, (unsigned)len), (int)len);
  assert_int_equal(gzclose(gz), Z_OK);
}

static void test_malformed_gz(void **state) {
  (void)state;
  char p[4096];
  snprintf(p, sizeof p, "%s", sd_test_tmp("tok_bad.txt.gz"));
  sd_tokenizer *tok = (sd_tokenizer *)1;

  assert_int_equal(sd_tokenizer_load_openai_gz(sd_test_tmp("missing.gz"), &tok), SD_E_IO);
  assert_null(tok);
  assert_non_null(strstr(sd_errmsg(), "missing.gz"));

  write_gz(p, "", 0);
  assert_int_equal(sd_tokenizer_load_openai_gz(p, &tok), SD_E_FORMAT);
  assert_non_null(strstr(sd_errmsg(), "empty"));

  write_gz(p, "header\ni n\nt h\n", 15);
  assert_int_equal(sd_tokenizer_load_openai_gz(p, &tok), SD_E_FORMAT);
  assert_non_null(strstr(sd_errmsg(), "has 2 merges"));

  write_gz(p, "header\ni n\nth\n", 14);
  assert_int_equal(sd_tokenizer_load_openai_gz(p, &tok), SD_E_FORMAT);
  assert_non_null(strstr(sd_errmsg(), "line 3: expected two symbols"));

  write_gz(p, "header\ni n\nt \xc3\n", 15);
  assert_int_equal(sd_tokenizer_load_openai_gz(p, &tok), SD_E_FORMAT);
  assert_non_null(strstr(sd_errmsg(), "line 3 is not valid UTF-8"));

  write_gz(p, "header\ni n\nt h\0x\n", 17);
  assert_int_equal(sd_tokenizer_load_openai_gz(p, &tok), SD_E_FORMAT);
  assert_non_null(strstr(sd_errmsg(), "line 3"));

  {
    size_t n = 10000;
    char *longl = malloc(n);
    assert_non_null(longl);
    memcpy(longl, "header\n", 7);
    memset(longl + 7, 'a', n - 8);
    longl[n - 1] = '\n';
    write_gz(p, longl, n);
    free(longl);
    assert_int_equal(sd_tokenizer_load_openai_gz(p, &tok), SD_E_FORMAT);
    assert_non_null(strstr(sd_errmsg(), "line 2 is longer"));
  }

  /* the real file, cut short or with a corrupted gzip stream */
  size_t len;
  char *real = sd_test_read_file(sd_test_src("data/clip/bpe_simple_vocab_16e6.txt.gz"), &len);
  assert_non_null(real);
  write_file(p, real, 200000);
  assert_int_equal(sd_tokenizer_load_openai_gz(p, &tok), SD_E_FORMAT);
  assert_non_null(strstr(sd_errmsg(), "truncated or corrupt"));
  for (size_t i = 5000; i < 5100; i++) real[i] ^= 0x5A;
  write_file(p, real, len);
  assert_int_equal(sd_tokenizer_load_openai_gz(p, &tok), SD_E_FORMAT);
  free(real);

  /* a merge that repeats an earlier one: the derived vocabulary would hold a token twice */
  {
    size_t n;
    char *txt = NULL;
    gzFile gz = gzopen(sd_test_src("data/clip/bpe_simple_vocab_16e6.txt.gz"), "rb");
    assert_non_null(gz);
    size_t cap = 1 << 20;
    txt = malloc(cap);
    n = 0;
    char line[512];
    char first[512] = "";
    for (int ln = 0; ln < 48895 && gzgets(gz, line, sizeof line); ln++) {
      if (ln == 1) snprintf(first, sizeof first, "%s", line);
      if (ln == 100) snprintf(line, sizeof line, "%s", first); /* line 101 repeats line 2 */
      size_t l = strlen(line);
      if (n + l > cap) txt = realloc(txt, cap *= 2);
      memcpy(txt + n, line, l);
      n += l;
    }
    gzclose(gz);
    write_gz(p, txt, n);
    free(txt);
    assert_int_equal(sd_tokenizer_load_openai_gz(p, &tok), SD_E_FORMAT);
    assert_non_null(strstr(sd_errmsg(), "line 101"));
  }

  /* NULL arguments */
  assert_int_equal(sd_tokenizer_load_openai_gz(NULL, &tok), SD_E_ARG);
  assert_int_equal(sd_tokenizer_load_openai_gz(p, NULL), SD_E_ARG);
  assert_int_equal(sd_tokenizer_load_hf(NULL, p, &tok), SD_E_ARG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic),
      cmocka_unit_test(test_load_default),
      cmocka_unit_test(test_empty_and_whitespace),
      cmocka_unit_test(test_truncation_and_padding),
      cmocka_unit_test(test_invalid_utf8),
      cmocka_unit_test(test_hand_cases),
      cmocka_unit_test(test_long_word),
      cmocka_unit_test(test_append_segments),
      cmocka_unit_test(test_threads),
      cmocka_unit_test(test_malformed_hf),
      cmocka_unit_test(test_malformed_gz),
      cmocka_unit_test(test_golden_bundled_gz),
      cmocka_unit_test(test_golden_hf_files),
  };
  return cmocka_run_group_tests_name("tokenizer", tests, group_setup, group_teardown);
}
