/* PNG writer/reader: round trip, text metadata, atomic failure behaviour. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "io/png.h"
#include "testutil.h"

static int contains(const char *hay, size_t n, const char *needle, size_t m) {
  for (size_t i = 0; i + m <= n; i++)
    if (memcmp(hay + i, needle, m) == 0) return 1;
  return 0;
}

static void test_roundtrip(void **state) {
  (void)state;
  const int w = 37, h = 19;
  uint8_t *img = malloc((size_t)w * h * 3);
  for (int i = 0; i < w * h * 3; i++) img[i] = (uint8_t)(i * 31 + 7);
  sd_png_text t[2] = {{"parameters", "a red apple\nSteps: 20, Sampler: Euler, CFG scale: 7.5, Seed: 42, Size: 37x19"},
                      {"safety", "caf\xc3\xa9 (not ASCII: stored as iTXt)"}};
  const char *path = sd_test_tmp("roundtrip.png");
  assert_int_equal(sd_png_write_rgb8(path, img, w, h, t, 2), SD_OK);
  uint8_t *back;
  int bw, bh;
  assert_int_equal(sd_png_read_rgb8(path, &back, &bw, &bh), SD_OK);
  assert_int_equal(bw, w);
  assert_int_equal(bh, h);
  assert_memory_equal(back, img, (size_t)w * h * 3);
  size_t len;
  char *raw = sd_test_read_file(path, &len);
  assert_non_null(raw);
  assert_true(contains(raw, len, "tEXtparameters\0a red apple\nSteps: 20", 36));
  assert_true(contains(raw, len, "iTXtsafety", 10));
  free(raw);
  free(back);
  free(img);
}

static void test_errors(void **state) {
  (void)state;
  uint8_t px[12] = {0};
  assert_int_equal(sd_png_write_rgb8(sd_test_tmp("no-such-dir/x.png"), px, 2, 2, NULL, 0), SD_E_IO);
  assert_non_null(strstr(sd_errmsg(), "no-such-dir/x.png"));
  assert_int_equal(sd_png_write_rgb8(sd_test_tmp("zero.png"), px, 0, 2, NULL, 0), SD_E_ARG);
  /* reading garbage is an error naming the file, not a crash */
  const char *g = sd_test_tmp("garbage.png");
  FILE *f = fopen(g, "wb");
  fputs("\x89PNG\r\n\x1a\nthis is not a png", f);
  fclose(f);
  uint8_t *rgb;
  int w, h;
  assert_int_not_equal(sd_png_read_rgb8(g, &rgb, &w, &h), SD_OK);
  assert_non_null(strstr(sd_errmsg(), "garbage.png"));
  /* a failed write leaves no temporary file behind */
  mkdir(sd_test_tmp("pngdir"), 0755);
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", sd_test_tmp("pngdir"));
  char path[4200];
  snprintf(path, sizeof path, "%s/ok.png", dir);
  assert_int_equal(sd_png_write_rgb8(path, px, 2, 2, NULL, 0), SD_OK);
  DIR *d = opendir(dir);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) if (e->d_name[0] != '.') n++;
  closedir(d);
  assert_int_equal(n, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_roundtrip), cmocka_unit_test(test_errors)};
  return cmocka_run_group_tests_name("png", tests, NULL, NULL);
}
