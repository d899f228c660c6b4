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

#include <png.h>

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

/* A PNG of one colour type, bit depth and interlace written with libpng itself; `rows` holds
 * the packed rows as libpng takes them. */
static void write_raw_png(const char *path, int w, int h, int color, int depth, int interlace, png_bytep *rows,
                          const png_color *palette, int n_palette) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(p);
  assert_int_equal(setjmp(png_jmpbuf(p)), 0);
  png_init_io(p, f);
  png_set_IHDR(p, info, (png_uint_32)w, (png_uint_32)h, depth, color, interlace, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (palette) png_set_PLTE(p, info, palette, n_palette);
  png_write_info(p, info);
  png_write_image(p, rows);
  png_write_end(p, NULL);
  png_destroy_write_struct(&p, &info);
  fclose(f);
}

/* The formats an init image or mask may come in: 1-bit gray (interlaced), 16-bit gray,
 * RGBA (alpha dropped), a palette; all read as 8-bit RGB. */
static void test_read_formats(void **state) {
  (void)state;
  enum { W = 11, H = 5 };
  uint8_t buf[H][W * 8];
  png_bytep rows[H];
  uint8_t want[H * W * 3], *rgb;
  int w, h;
  const char *path = sd_test_tmp("formats.png");
  for (int mode = 0; mode < 4; mode++) {
    memset(buf, 0, sizeof buf);
    for (int y = 0; y < H; y++) {
      rows[y] = buf[y];
      for (int x = 0; x < W; x++) {
        uint8_t v;
        if (mode == 0) { /* 1-bit gray, Adam7: 0 -> 0, 1 -> 255 */
          int bit = (x + y) % 3 == 0;
          if (bit) buf[y][x / 8] |= (uint8_t)(0x80 >> (x % 8));
          v = bit ? 255 : 0;
          want[(y * W + x) * 3] = want[(y * W + x) * 3 + 1] = want[(y * W + x) * 3 + 2] = v;
        } else if (mode == 1) { /* 16-bit gray: the high byte */
          buf[y][2 * x] = (uint8_t)(x * 20 + y);
          buf[y][2 * x + 1] = 0x7f;
          v = (uint8_t)(x * 20 + y);
          want[(y * W + x) * 3] = want[(y * W + x) * 3 + 1] = want[(y * W + x) * 3 + 2] = v;
        } else if (mode == 2) { /* RGBA: alpha dropped, colour kept */
          for (int c = 0; c < 3; c++) buf[y][4 * x + c] = want[(y * W + x) * 3 + c] = (uint8_t)(x * 23 + y * 7 + c * 50);
          buf[y][4 * x + 3] = (uint8_t)(x * 25);
        } else { /* palette of 3 colours */
          buf[y][x] = (uint8_t)((x + y) % 3);
          for (int c = 0; c < 3; c++) want[(y * W + x) * 3 + c] = (uint8_t)(((x + y) % 3) * 100 + c);
        }
      }
    }
    const png_color pal[3] = {{0, 1, 2}, {100, 101, 102}, {200, 201, 202}};
    static const int types[4] = {PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_RGB_ALPHA, PNG_COLOR_TYPE_PALETTE};
    static const int depths[4] = {1, 16, 8, 8};
    write_raw_png(path, W, H, types[mode], depths[mode], mode == 0 ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, rows,
                  mode == 3 ? pal : NULL, 3);
    assert_int_equal(sd_png_read_rgb8(path, &rgb, &w, &h), SD_OK);
    assert_int_equal(w, W);
    assert_int_equal(h, H);
    assert_memory_equal(rgb, want, sizeof want);
    free(rgb);
  }
  /* from memory: not a PNG, and a PNG cut short, are errors that say so */
  assert_int_equal(sd_png_decode_rgb8((const uint8_t *)"GIF89a....", 10, "x.gif", &rgb, &w, &h), SD_E_FORMAT);
  assert_non_null(strstr(sd_errmsg(), "x.gif is not a PNG file"));
  assert_null(rgb);
  size_t len;
  char *raw = sd_test_read_file(path, &len);
  assert_non_null(raw);
  assert_int_not_equal(sd_png_decode_rgb8((const uint8_t *)raw, len / 2, NULL, &rgb, &w, &h), SD_OK);
  assert_non_null(strstr(sd_errmsg(), "the image"));
  assert_null(rgb);
  assert_int_equal(sd_png_decode_rgb8((const uint8_t *)raw, len, NULL, &rgb, &w, &h), SD_OK);
  free(rgb);
  free(raw);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_roundtrip), cmocka_unit_test(test_errors),
                                     cmocka_unit_test(test_read_formats)};
  return cmocka_run_group_tests_name("png", tests, NULL, NULL);
}
