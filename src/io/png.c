#include "io/png.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/fileio.h"

#define PNG_MAX_SIDE 65536
/* The most pixels a PNG read may have (192 MiB of RGB): the header alone cannot make the
 * reader allocate more. */
#define PNG_MAX_READ_PIXELS ((uint64_t)8192 * 8192)
/* The largest PNG file read (a 16384² RGB image compresses far below this). */
#define PNG_MAX_FILE ((size_t)1 << 30)

static int is_ascii(const char *s) {
  for (; *s; s++) if ((unsigned char)*s >= 0x80) return 0;
  return 1;
}

static void png_err(png_structp p, png_const_charp msg) {
  sd_fail(SD_E_IO, "PNG: %s", msg);
  png_longjmp(p, 1);
}
static void png_warn(png_structp p, png_const_charp msg) { (void)p; (void)msg; }

static void write_cb(png_structp p, png_bytep data, size_t n) {
  sd_atomic_file *af = png_get_io_ptr(p);
  if (sd_atomic_write(af, data, n) != SD_OK) png_longjmp(p, 1);
}
static void flush_cb(png_structp p) { (void)p; }

/* A growing memory buffer as libpng's output. */
typedef struct mem_sink {
  uint8_t *data;
  size_t len, cap;
} mem_sink;

static void mem_write_cb(png_structp p, png_bytep data, size_t n) {
  mem_sink *m = png_get_io_ptr(p);
  if (n > SIZE_MAX / 2 - m->len) png_error(p, "PNG too large");
  if (m->len + n > m->cap) {
    size_t cap = m->cap ? m->cap : 4096;
    while (cap < m->len + n) cap *= 2;
    uint8_t *d = realloc(m->data, cap);
    if (!d) png_error(p, "out of memory");
    m->data = d;
    m->cap = cap;
  }
  memcpy(m->data + m->len, data, n);
  m->len += n;
}

/* The PNG stream of an 8-bit RGB image through `write` (io: its context); what the file
 * and the memory writers share, so both give the same bytes. */
static int png_emit(const uint8_t *rgb, int width, int height, const sd_png_text *texts, int n_texts,
                    png_rw_ptr write, void *io, const char *what) {
  if (width <= 0 || height <= 0 || width > PNG_MAX_SIDE || height > PNG_MAX_SIDE)
    return sd_fail(SD_E_ARG, "cannot write a %dx%d PNG", width, height);
  png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_err, png_warn);
  png_infop info = p ? png_create_info_struct(p) : NULL;
  png_textp tx = NULL;
  if (!p || !info) {
    png_destroy_write_struct(&p, &info);
    return sd_fail(SD_E_NOMEM, "out of memory writing %s", what);
  }
  if (setjmp(png_jmpbuf(p))) {
    png_destroy_write_struct(&p, &info);
    free(tx);
    return sd_fail_prefix(SD_E_IO, "writing %s: ", what);
  }
  png_set_write_fn(p, io, write, flush_cb);
  png_set_IHDR(p, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (n_texts > 0) {
    tx = calloc((size_t)n_texts, sizeof *tx);
    if (!tx) png_error(p, "out of memory");
    for (int i = 0; i < n_texts; i++) {
      tx[i].key = (png_charp)texts[i].key;
      tx[i].text = (png_charp)texts[i].value;
      tx[i].compression = is_ascii(texts[i].value) ? PNG_TEXT_COMPRESSION_NONE : PNG_ITXT_COMPRESSION_NONE;
    }
    png_set_text(p, info, tx, n_texts);
  }
  png_write_info(p, info);
  for (int y = 0; y < height; y++) png_write_row(p, (png_const_bytep)(rgb + (size_t)y * width * 3));
  png_write_end(p, info);
  png_destroy_write_struct(&p, &info);
  free(tx);
  return SD_OK;
}

int sd_png_write_rgb8(const char *path, const uint8_t *rgb, int width, int height,
                      const sd_png_text *texts, int n_texts) {
  if (width <= 0 || height <= 0 || width > PNG_MAX_SIDE || height > PNG_MAX_SIDE)
    return sd_fail(SD_E_ARG, "cannot write a %dx%d PNG", width, height);
  sd_atomic_file af;
  int rc = sd_atomic_open(&af, path);
  if (rc) return rc;
  if ((rc = png_emit(rgb, width, height, texts, n_texts, write_cb, &af, path))) {
    sd_atomic_abort(&af);
    return rc;
  }
  return sd_atomic_commit(&af);
}

int sd_png_encode_rgb8(const uint8_t *rgb, int width, int height, const sd_png_text *texts, int n_texts,
                       uint8_t **png, size_t *size) {
  mem_sink m = {0};
  *png = NULL;
  *size = 0;
  int rc = png_emit(rgb, width, height, texts, n_texts, mem_write_cb, &m, "a PNG in memory");
  if (rc) {
    free(m.data);
    return rc;
  }
  *png = m.data;
  *size = m.len;
  return SD_OK;
}

typedef struct mem_reader {
  const uint8_t *data;
  size_t len, off;
} mem_reader;

static void mem_read_cb(png_structp p, png_bytep out, size_t n) {
  mem_reader *r = png_get_io_ptr(p);
  if (n > r->len - r->off) png_error(p, "the file ends early (truncated PNG)");
  memcpy(out, r->data + r->off, n);
  r->off += n;
}

static int decode_rgb8(const uint8_t *data, size_t len, const char *name, uint8_t **rgb, int *width, int *height) {
  if (!data || len < 8 || png_sig_cmp(data, 0, 8))
    return sd_fail(SD_E_FORMAT, "%s is not a PNG file (no PNG signature)", name);
  png_structp p = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, png_err, png_warn);
  png_infop info = p ? png_create_info_struct(p) : NULL;
  uint8_t *volatile buf = NULL;
  png_bytep *volatile rows = NULL;
  if (!p || !info) {
    png_destroy_read_struct(&p, &info, NULL);
    return sd_fail(SD_E_NOMEM, "out of memory reading %s", name);
  }
  if (setjmp(png_jmpbuf(p))) {
    png_destroy_read_struct(&p, &info, NULL);
    free(buf);
    free(rows);
    return sd_fail_prefix(SD_E_FORMAT, "reading %s: ", name);
  }
  mem_reader mr = {data, len, 0};
  png_set_read_fn(p, &mr, mem_read_cb);
  png_set_user_limits(p, PNG_MAX_SIDE, PNG_MAX_SIDE);
  png_read_info(p, info);
  png_uint_32 w = png_get_image_width(p, info), h = png_get_image_height(p, info);
  if ((uint64_t)w * h > PNG_MAX_READ_PIXELS) png_error(p, "image too large (more than 8192 x 8192 pixels)");
  int ct = png_get_color_type(p, info), depth = png_get_bit_depth(p, info);
  png_set_strip_16(p);
  png_set_packing(p);
  if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(p);
  if ((ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA) && depth < 8) png_set_expand_gray_1_2_4_to_8(p);
  if (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(p);
  png_set_strip_alpha(p);
  png_set_interlace_handling(p);
  png_read_update_info(p, info);
  if (png_get_rowbytes(p, info) != (size_t)w * 3) png_error(p, "unsupported pixel format");
  buf = malloc((size_t)w * h * 3);
  rows = malloc(sizeof(png_bytep) * h);
  if (!buf || !rows) png_error(p, "out of memory");
  for (png_uint_32 y = 0; y < h; y++) rows[y] = buf + (size_t)y * w * 3;
  png_read_image(p, rows);
  png_read_end(p, NULL);
  png_destroy_read_struct(&p, &info, NULL);
  free(rows);
  *rgb = buf;
  *width = (int)w;
  *height = (int)h;
  return SD_OK;
}

int sd_png_decode_rgb8(const uint8_t *data, size_t len, const char *name, uint8_t **rgb, int *width, int *height) {
  *rgb = NULL;
  return decode_rgb8(data, len, name ? name : "the image", rgb, width, height);
}

int sd_png_read_rgb8(const char *path, uint8_t **rgb, int *width, int *height) {
  char *data = NULL;
  size_t len = 0;
  *rgb = NULL;
  int rc = sd_read_file(path, PNG_MAX_FILE, "a PNG image", &data, &len);
  if (rc) return rc;
  rc = sd_png_decode_rgb8((const uint8_t *)data, len, path, rgb, width, height);
  free(data);
  return rc;
}
