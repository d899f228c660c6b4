/* Unit tests of the prompt syntax (text/prompt.h): AUTOMATIC1111's emphasis parser, BREAK,
 * escapes, unbalanced brackets, malformed weights, and the 75-token chunks (comma backtrack,
 * limit, framing, weights). The reference conformance test (tools/ref/prompt_case.py) checks
 * the same against a Python implementation of A1111's functions. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "testutil.h"
#include "text/prompt.h"
#include "text/tokenizer.h"

static sd_tokenizer *g_tok;

static int setup(void **state) {
  (void)state;
  return sd_tokenizer_load_default(&g_tok);
}

static int teardown(void **state) {
  (void)state;
  sd_tokenizer_free(g_tok);
  return 0;
}

typedef struct {
  const char *text;
  double weight;
  int is_break;
} want_seg;

/* parse text and compare with the n wanted segments (weights to the last bit) */
static void expect_parse(const char *text, const char *visible, int n, const want_seg *w) {
  sd_prompt_parsed p;
  int rc = sd_prompt_parse(text, SD_SYNTAX_A1111, &p);
  if (rc) fail_msg("'%s': %s", text, sd_errmsg());
  if (p.n != n) {
    for (int i = 0; i < p.n; i++) printf("  got ('%s', %.17g, %d)\n", p.seg[i].text, p.seg[i].weight, p.seg[i].is_break);
    fail_msg("'%s': %d segments, want %d", text, p.n, n);
  }
  for (int i = 0; i < n; i++) {
    if (strcmp(p.seg[i].text, w[i].text) || p.seg[i].is_break != w[i].is_break ||
        (!w[i].is_break && p.seg[i].weight != w[i].weight))
      fail_msg("'%s': segment %d is ('%s', %.17g, %d), want ('%s', %.17g, %d)", text, i, p.seg[i].text,
               p.seg[i].weight, p.seg[i].is_break, w[i].text, w[i].weight, w[i].is_break);
  }
  if (visible && strcmp(p.visible, visible)) fail_msg("'%s': visible text '%s', want '%s'", text, p.visible, visible);
  sd_prompt_parsed_free(&p);
}

#define SEGS(...) (sizeof((want_seg[]){__VA_ARGS__}) / sizeof(want_seg)), (want_seg[]){__VA_ARGS__}

static void test_emphasis(void **state) {
  (void)state;
  const double up = 1.1, down = 1 / 1.1;
  expect_parse("a (b) c", "a b c", SEGS({"a ", 1.0, 0}, {"b", up, 0}, {" c", 1.0, 0}));
  expect_parse("[b]", "b", SEGS({"b", down, 0}));
  expect_parse("x (b:1.3)", "x b", SEGS({"x ", 1.0, 0}, {"b", 1.3, 0}));
  /* nesting multiplies, innermost first (A1111's order of operations) */
  expect_parse("((b))", "b", SEGS({"b", 1.0 * up * up, 0}));
  expect_parse("(a (b:2) c)", "a b c", SEGS({"a ", up, 0}, {"b", 2.0 * up, 0}, {" c", up, 0}));
  expect_parse("[(b:1.5)]", "b", SEGS({"b", 1.5 * down, 0}));
  /* weight forms: sign, leading or trailing dot, spaces around */
  expect_parse("(a:+2)(b:.5)(c:2.)", "abc", SEGS({"a", 2.0, 0}, {"b", 0.5, 0}, {"c", 2.0, 0}));
  expect_parse("( a : 1.5 )", " a ", SEGS({" a ", 1.5, 0}));
  expect_parse("(a:-1) z", "a z", SEGS({"a", -1.0, 0}, {" z", 1.0, 0}));
  /* runs of equal weight are one segment */
  expect_parse("(a)(b)", "ab", SEGS({"ab", up, 0}));
  expect_parse("plain text: with a colon", "plain text: with a colon", SEGS({"plain text: with a colon", 1.0, 0}));
}

static void test_escapes_and_unbalanced(void **state) {
  (void)state;
  const double up = 1.1, down = 1 / 1.1;
  /* \( \) \[ \] \\ are literal; a lone backslash is dropped (as A1111 drops it) */
  expect_parse("\\(a\\) \\[b\\] \\\\ \\x", "(a) [b] \\ x", SEGS({"(a) [b] \\ x", 1.0, 0}));
  /* brackets left open weigh up to the end; a stray closing one is text */
  expect_parse("x (a", "x a", SEGS({"x ", 1.0, 0}, {"a", up, 0}));
  expect_parse("x [a", "x a", SEGS({"x ", 1.0, 0}, {"a", down, 0}));
  expect_parse("a) b]", "a) b]", SEGS({"a) b]", 1.0, 0}));
  expect_parse("((a)", "a", SEGS({"a", up * up, 0}));
  /* a weight token with no '(' open is text; ':' without a number is text */
  expect_parse("a:1.5) b", "a:1.5) b", SEGS({"a:1.5) b", 1.0, 0}));
  expect_parse("(a:1.5", "a:1.5", SEGS({"a:1.5", up, 0}));
  expect_parse("(a:b)", "a:b", SEGS({"a:b", up, 0}));
  expect_parse("(a:1.2.3 no)", "a:1.2.3 no", SEGS({"a:1.2.3 no", up, 0}));
  expect_parse("", "", SEGS({"", 1.0, 0}));
  expect_parse("()", "", SEGS({"", 1.0, 0}));
}

static void test_break(void **state) {
  (void)state;
  const double up = 1.1;
  expect_parse("a BREAK b", "a b", SEGS({"a", 1.0, 0}, {"BREAK", -1.0, 1}, {"b", 1.0, 0}));
  expect_parse("a, BREAK, b", "a, , b", SEGS({"a,", 1.0, 0}, {"BREAK", -1.0, 1}, {", b", 1.0, 0}));
  /* not a word of its own, or lower case: text */
  expect_parse("aBREAK BREAKb BREAK_ break", NULL, SEGS({"aBREAK BREAKb BREAK_ break", 1.0, 0}));
  expect_parse("\xc3\xa9" "BREAK x", NULL, SEGS({"\xc3\xa9" "BREAK x", 1.0, 0}));
  /* Unicode whitespace (no-break space) is consumed around it */
  expect_parse("a\xc2\xa0" "BREAK\xc2\xa0" "b", "a b", SEGS({"a", 1.0, 0}, {"BREAK", -1.0, 1}, {"b", 1.0, 0}));
  /* inside brackets its weight is multiplied: then it is the word BREAK */
  expect_parse("(BREAK)", "BREAK", SEGS({"", up, 0}, {"BREAK", -1.0 * up, 0}, {"", up, 0}));
  /* a syntax character is a boundary: "(x)BREAK" breaks */
  expect_parse("(x)BREAK y", "x y", SEGS({"x", up, 0}, {"", 1.0, 0}, {"BREAK", -1.0, 1}, {"y", 1.0, 0}));
}

static void test_malformed(void **state) {
  (void)state;
  static const char *bad[] = {"(a:1.2.3)", "(a:.)", "(a:..5)", "(a:-.)", "x (y (a:1..2))"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    sd_prompt_parsed p;
    assert_int_equal(sd_prompt_parse(bad[i], SD_SYNTAX_A1111, &p), SD_E_ARG);
    assert_non_null(strstr(sd_errmsg(), "malformed emphasis weight"));
    assert_null(strchr(sd_errmsg(), '\n'));
  }
  /* a weight that overflows float32 */
  sd_prompt_parsed p;
  assert_int_equal(sd_prompt_parse("(((a:1e1)))(b:99999999999999999999999999999999999999999)", SD_SYNTAX_A1111, &p),
                   SD_E_ARG);
  /* brackets nested thousands deep: refused, not quadratic time */
  char *deep = malloc(20001);
  assert_non_null(deep);
  for (int i = 0; i < 10000; i++) memcpy(deep + 2 * i, "(a", 2);
  deep[20000] = 0;
  assert_int_equal(sd_prompt_parse(deep, SD_SYNTAX_A1111, &p), SD_E_ARG);
  assert_non_null(strstr(sd_errmsg(), "nest too deeply"));
  deep[4000] = 0; /* 2000 levels: fine */
  assert_int_equal(sd_prompt_parse(deep, SD_SYNTAX_A1111, &p), SD_E_ARG); /* 1.1^2000: out of range */
  assert_non_null(strstr(sd_errmsg(), "out of range"));
  deep[400] = 0; /* 200 levels */
  assert_int_equal(sd_prompt_parse(deep, SD_SYNTAX_A1111, &p), SD_OK);
  assert_int_equal(p.n, 200);
  sd_prompt_parsed_free(&p);
  free(deep);
  /* plain: nothing is parsed */
  assert_int_equal(sd_prompt_parse("(a:1.2.3) BREAK", SD_SYNTAX_PLAIN, &p), SD_OK);
  assert_int_equal(p.n, 1);
  assert_string_equal(p.visible, "(a:1.2.3) BREAK");
  sd_prompt_parsed_free(&p);
}

/* Random strings over the syntax's alphabet: parse and chunk never crash, every error is
 * SD_E_ARG with one line, and the visible text is never longer than the prompt plus a space
 * per BREAK. */
static void test_random_inputs(void **state) {
  (void)state;
  static const char *alpha[] = {"(", ")", "[", "]", "\\", ":", "1", ".", "5", " ", "a", "BREAK", ",", "-", "+",
                                "\xc3\xa9", "\xc2\xa0", "\xff"};
  const int na = (int)(sizeof alpha / sizeof *alpha);
  uint32_t seed = 12345;
  char buf[512];
  for (int it = 0; it < 20000; it++) {
    size_t o = 0;
    int len = (int)((seed = seed * 1103515245u + 12345u) >> 16) % 60;
    for (int k = 0; k < len; k++) {
      const char *a = alpha[((seed = seed * 1103515245u + 12345u) >> 16) % (uint32_t)na];
      size_t l = strlen(a);
      memcpy(buf + o, a, l);
      o += l;
    }
    buf[o] = 0;
    sd_prompt_parsed p;
    int rc = sd_prompt_parse(buf, SD_SYNTAX_A1111, &p);
    if (rc) {
      assert_int_equal(rc, SD_E_ARG);
      continue;
    }
    assert_true(strlen(p.visible) <= o + (size_t)p.breaks);
    sd_prompt_chunks c;
    rc = sd_prompt_chunk(g_tok, &p, SD_SYNTAX_A1111, 49407, SD_PROMPT_MAX_CHUNKS, "the prompt", &c);
    if (rc == SD_OK) {
      assert_true(c.n >= 1 && c.n <= SD_PROMPT_MAX_CHUNKS);
      sd_prompt_chunks_free(&c);
    } else {
      assert_int_equal(rc, SD_E_ARG); /* invalid UTF-8 (the API checks it before) */
    }
    sd_prompt_parsed_free(&p);
  }
}

static char *repeat(const char *w, int n) {
  size_t l = strlen(w);
  char *s = malloc(l * (size_t)n + 1);
  assert_non_null(s);
  for (int i = 0; i < n; i++) memcpy(s + l * (size_t)i, w, l);
  s[l * (size_t)n] = 0;
  return s;
}

/* "cat" x before, ", ", "cat" x after: two chunks of len0 and len1 word tokens, the comma at
 * its place in the first. */
static void expect_comma_cut(int before, int after, int len0, int len1) {
  const int32_t eos = sd_tokenizer_eos(g_tok), cat = sd_tokenizer_lookup(g_tok, "cat</w>");
  const int32_t comma = sd_tokenizer_lookup(g_tok, ",</w>");
  char *a = repeat("cat ", before), *b = repeat("cat ", after), s[1024];
  snprintf(s, sizeof s, "%s, %s", a, b);
  sd_prompt_chunks c;
  assert_int_equal(sd_prompt_tokenize(g_tok, s, SD_SYNTAX_A1111, 49407, "the prompt", &c), SD_OK);
  assert_int_equal(c.n, 2);
  assert_int_equal(c.ids[1 + before], comma);
  assert_int_equal(c.ids[len0], len0 == before + 1 ? comma : cat);
  assert_int_equal(c.ids[len0 + 1], eos);
  assert_int_equal(c.ids[77 + len1], cat);
  assert_int_equal(c.ids[77 + len1 + 1], eos);
  sd_prompt_chunks_free(&c);
  free(a);
  free(b);
}

static void test_chunks(void **state) {
  (void)state;
  const int32_t bos = sd_tokenizer_bos(g_tok), eos = sd_tokenizer_eos(g_tok);
  const int32_t cat = sd_tokenizer_lookup(g_tok, "cat</w>"), comma = sd_tokenizer_lookup(g_tok, ",</w>");
  assert_true(cat > 0 && comma > 0);
  sd_prompt_chunks c;
  /* 80 tokens: 75 + 5, each framed BOS .. EOS and padded (pad 0 as SD 2.x) */
  char *t = repeat("cat ", 80);
  assert_int_equal(sd_prompt_tokenize(g_tok, t, SD_SYNTAX_A1111, 0, "the prompt", &c), SD_OK);
  assert_int_equal(c.n, 2);
  assert_int_equal(c.tokens, 80);
  assert_int_equal(c.ids[0], bos);
  assert_int_equal(c.ids[75], cat);
  assert_int_equal(c.ids[76], eos);
  assert_int_equal(c.ids[77], bos);
  assert_int_equal(c.ids[77 + 5], cat);
  assert_int_equal(c.ids[77 + 6], eos);
  assert_int_equal(c.ids[77 + 7], 0);
  assert_int_equal(c.weighted, 0);
  sd_prompt_chunks_free(&c);
  /* plain: one window, the rest dropped */
  assert_int_equal(sd_prompt_tokenize(g_tok, t, SD_SYNTAX_PLAIN, 49407, "the prompt", &c), SD_OK);
  assert_int_equal(c.n, 1);
  assert_int_equal(c.tokens, 75);
  sd_prompt_chunks_free(&c);
  free(t);
  /* the comma backtrack: 70 tokens, a comma, 10 more: the chunk is cut after the comma
   * (71 tokens, then 10); a comma more than 20 tokens back: no backtrack (75, then 6) */
  expect_comma_cut(70, 10, 71, 10);
  expect_comma_cut(50, 30, 75, 6);
  /* BREAK: a new chunk; a BREAK at the start gives an empty first chunk; one at the end none */
  assert_int_equal(sd_prompt_tokenize(g_tok, "cat BREAK cat BREAK", SD_SYNTAX_A1111, 49407, NULL, &c), SD_OK);
  assert_int_equal(c.n, 2);
  sd_prompt_chunks_free(&c);
  assert_int_equal(sd_prompt_tokenize(g_tok, "BREAK cat", SD_SYNTAX_A1111, 49407, NULL, &c), SD_OK);
  assert_int_equal(c.n, 2);
  assert_int_equal(c.ids[1], eos);
  sd_prompt_chunks_free(&c);
  /* weights: float32 of the parsed weight, 1 for BOS, EOS and padding */
  assert_int_equal(sd_prompt_tokenize(g_tok, "a (cat:1.5) [cat]", SD_SYNTAX_A1111, 49407, NULL, &c), SD_OK);
  assert_int_equal(c.weighted, 1);
  assert_true(c.weights[0] == 1.0f && c.weights[1] == 1.0f && c.weights[2] == 1.5f);
  assert_true(c.weights[3] == (float)(1 / 1.1) && c.weights[4] == 1.0f && c.weights[76] == 1.0f);
  sd_prompt_chunks_free(&c);
  /* the empty prompt: one empty chunk */
  assert_int_equal(sd_prompt_tokenize(g_tok, "", SD_SYNTAX_A1111, 49407, NULL, &c), SD_OK);
  assert_int_equal(c.n, 1);
  int32_t empty[SD_CLIP_CONTEXT];
  sd_prompt_empty_chunk(g_tok, 49407, empty);
  assert_memory_equal(c.ids, empty, sizeof empty);
  sd_prompt_chunks_free(&c);
}

static void test_chunk_limit(void **state) {
  (void)state;
  sd_prompt_chunks c;
  char *t = repeat("cat ", 600);
  assert_int_equal(sd_prompt_tokenize(g_tok, t, SD_SYNTAX_A1111, 49407, "the prompt", &c), SD_OK);
  assert_int_equal(c.n, SD_PROMPT_MAX_CHUNKS);
  sd_prompt_chunks_free(&c);
  free(t);
  t = repeat("cat ", 601);
  assert_int_equal(sd_prompt_tokenize(g_tok, t, SD_SYNTAX_A1111, 49407, "the prompt", &c), SD_E_ARG);
  assert_non_null(strstr(sd_errmsg(), "the prompt needs more than 8 chunks"));
  assert_non_null(strstr(sd_errmsg(), "601 tokens"));
  free(t);
  /* BREAKs count as chunk ends: 9 chunks of one token */
  t = repeat("cat BREAK ", 9);
  assert_int_equal(sd_prompt_tokenize(g_tok, t, SD_SYNTAX_A1111, 49407, "the negative prompt", &c), SD_E_ARG);
  assert_non_null(strstr(sd_errmsg(), "the negative prompt needs more than 8 chunks"));
  free(t);
  /* syntax names */
  sd_prompt_syntax s;
  assert_int_equal(sd_prompt_syntax_parse(NULL, &s), SD_OK);
  assert_int_equal(s, SD_SYNTAX_A1111);
  assert_int_equal(sd_prompt_syntax_parse("plain", &s), SD_OK);
  assert_int_equal(s, SD_SYNTAX_PLAIN);
  assert_int_equal(sd_prompt_syntax_parse("A1111", &s), SD_E_ARG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_emphasis),      cmocka_unit_test(test_escapes_and_unbalanced),
      cmocka_unit_test(test_break),         cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_random_inputs), cmocka_unit_test(test_chunks),
      cmocka_unit_test(test_chunk_limit),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
