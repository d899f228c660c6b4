/* The emoji names table (src/safety/emoji.h): the shipped data file, longest-match with
 * variation selectors and skin tones ignored, and the loader's checks of untrusted input. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "safety/emoji.h"
#include "testutil.h"

static void test_default_table(void **state) {
  (void)state;
  const char *why = NULL;
  const sd_emoji_table *t = sd_emoji_default(&why);
  if (!t) fail_msg("emoji names: %s", why);
  assert_true(sd_emoji_count(t) > 1500);
  /* 🔫 */
  int32_t gun[] = {0x1F52B, 'x'};
  int used = 0, i = sd_emoji_match(t, gun, 2, &used);
  assert_true(i >= 0);
  assert_int_equal(used, 1);
  assert_string_equal(sd_emoji_name(t, i, 0), "water pistol");
  int gun_tag = 0;
  for (int k = 1; sd_emoji_name(t, i, k); k++) gun_tag |= !strcmp(sd_emoji_name(t, i, k), "gun");
  assert_true(gun_tag);
  /* 🖕🏽 and ❤️: a skin tone and a variation selector belong to the emoji */
  int32_t finger[] = {0x1F595, 0x1F3FD, ' '};
  i = sd_emoji_match(t, finger, 3, &used);
  assert_string_equal(sd_emoji_name(t, i, 0), "middle finger");
  assert_int_equal(used, 2);
  int32_t heart[] = {0x2764, 0xFE0F};
  i = sd_emoji_match(t, heart, 2, &used);
  assert_string_equal(sd_emoji_name(t, i, 0), "red heart");
  assert_int_equal(used, 2);
  /* a ZWJ sequence is matched whole (longest first): 🧑‍🚒 firefighter */
  int32_t ff[] = {0x1F9D1, 0x200D, 0x1F692};
  i = sd_emoji_match(t, ff, 3, &used);
  assert_int_equal(used, 3);
  assert_string_equal(sd_emoji_name(t, i, 0), "firefighter");
  /* a letter is no emoji; regional indicators are left to be letters */
  int32_t a[] = {'a'}, ri[] = {0x1F1F3, 0x1F1FA};
  assert_int_equal(sd_emoji_match(t, a, 1, &used), -1);
  assert_int_equal(sd_emoji_match(t, ri, 2, &used), -1);
}

static void expect_error(const char *text, const char *needle) {
  sd_emoji_table *t = (sd_emoji_table *)1;
  assert_int_equal(sd_emoji_parse(text, strlen(text), "e.tsv", &t), SD_E_FORMAT);
  assert_null(t);
  if (!strstr(sd_errmsg(), needle)) fail_msg("error '%s' lacks '%s'", sd_errmsg(), needle);
}

static void test_malformed(void **state) {
  (void)state;
  const char *ok = "# c\n1F52B\twater pistol\tgun, weapon\n2764-FE0F\tred heart\t\n";
  sd_emoji_table *t;
  assert_int_equal(sd_emoji_parse(ok, strlen(ok), "e.tsv", &t), SD_OK);
  assert_int_equal(sd_emoji_count(t), 2);
  assert_string_equal(sd_emoji_name(t, 0, 2), "weapon");
  assert_string_equal(sd_emoji_key(t, 1), "\xE2\x9D\xA4"); /* FE0F dropped from the key */
  sd_emoji_free(t);
  expect_error("1F52B water pistol\n", "e.tsv:1: expected 'HEX<TAB>label<TAB>tags'");
  expect_error("# x\nZZZ\tx\t\n", "e.tsv:2: bad code point 'ZZZ'");
  expect_error("110000\tx\t\n", "e.tsv:1: bad code point");
  expect_error("D800\tx\t\n", "e.tsv:1: bad code point");
  expect_error("1F52B\t\tgun\n", "e.tsv:1: empty label");
  expect_error("FE0F\tx\t\n", "e.tsv:1: no code point");
  expect_error("1F52B\tx\xFF\t\n", "e.tsv:1: invalid UTF-8");
  expect_error("1F52B\tx\x01\t\n", "e.tsv:1: control character");
  expect_error("# only comments\n", "e.tsv: no emoji");
  char seq[256] = "";
  for (int i = 0; i < SD_EMOJI_MAX_CPS + 1; i++) strcat(seq, i ? "-1F600" : "1F600");
  strcat(seq, "\tx\t\n");
  expect_error(seq, "e.tsv:1: more than 16 code points");
  char *big = malloc(5000);
  memset(big, 'a', 4999);
  big[0] = '1', big[1] = '\t', big[4999] = 0;
  expect_error(big, "e.tsv:1: line over 4096 bytes");
  free(big);
  assert_int_equal(sd_emoji_load("/nonexistent/e.tsv", &t), SD_E_IO);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_default_table), cmocka_unit_test(test_malformed)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
