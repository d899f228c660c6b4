#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safesd.h"

#include "io/fileio.h"
#include "io/json_util.h"

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* [-]digits, the sign only when allowed */
static int integer_syntax(const char *s, int sign_ok) {
  if (*s == '-' && sign_ok) s++;
  if (!is_digit(*s)) return 0;
  while (is_digit(*s)) s++;
  return *s == 0;
}

int cli_parse_long(const char *s, long lo, long hi, long *out) {
  if (!s || !integer_syntax(s, lo < 0)) return -1;
  errno = 0;
  long v = strtol(s, NULL, 10);
  if (errno || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

int cli_parse_u64(const char *s, uint64_t *out) {
  if (!s || !integer_syntax(s, 0)) return -1;
  errno = 0;
  unsigned long long v = strtoull(s, NULL, 10);
  if (errno) return -1;
  *out = v;
  return 0;
}

static int float_syntax(const char *s) {
  int digits = 0;
  if (*s == '-') s++;
  while (is_digit(*s)) s++, digits++;
  if (*s == '.') {
    s++;
    while (is_digit(*s)) s++, digits++;
  }
  if (!digits) return 0;
  if (*s == 'e' || *s == 'E') {
    s++;
    if (*s == '+' || *s == '-') s++;
    if (!is_digit(*s)) return 0;
    while (is_digit(*s)) s++;
  }
  return *s == 0;
}

int cli_parse_double(const char *s, double *out) {
  if (!s || !float_syntax(s)) return -1;
  errno = 0;
  double v = strtod(s, NULL);
  if (errno || !isfinite(v)) return -1;
  *out = v;
  return 0;
}

int cli_parse_float(const char *s, float *out) {
  if (!s || !float_syntax(s)) return -1;
  errno = 0;
  float v = strtof(s, NULL);
  if (errno || !isfinite(v)) return -1;
  *out = v;
  return 0;
}

int cli_parse_bytes(const char *s, long long *out) {
  if (!s || !is_digit(*s)) return -1;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno) return -1;
  unsigned long long mul = 1;
  if (*end == 'K' || *end == 'k') mul = 1ull << 10, end++;
  else if (*end == 'M' || *end == 'm') mul = 1ull << 20, end++;
  else if (*end == 'G' || *end == 'g') mul = 1ull << 30, end++;
  if (*end == 'B' || *end == 'b') end++;
  if (*end || v > (1ull << 40) / mul) return -1;
  *out = (long long)(v * mul);
  return 0;
}

FILE *cli_open_input(const char *path, const char *expected) {
  if (!strcmp(path, "-")) return stdin;
  int fd;
  int64_t size;
  if (sd_open_regular(path, expected, &fd, &size)) return NULL;
  FILE *f = fdopen(fd, "r");
  if (!f) close(fd);
  return f;
}

int cli_fail(const char *what) {
  char msg[2048];
  fprintf(stderr, "safesd: %s: %s\n", what, sd_msg_clean(safesd_last_error(), msg, sizeof msg));
  return EXIT_FAILURE;
}

int cli_read_init_images(const char *init, const char *mask, safesd_gen_params *p, uint8_t **init_rgb,
                         uint8_t **mask_rgb) {
  if (init) {
    if (safesd_read_png(init, init_rgb, &p->init_width, &p->init_height)) return cli_fail("--init-img");
    p->init_image = *init_rgb;
  }
  if (mask) {
    int mw, mh;
    if (safesd_read_png(mask, mask_rgb, &mw, &mh)) return cli_fail("--mask");
    if (mw != p->init_width || mh != p->init_height) {
      fprintf(stderr, "safesd: --mask: the mask is %dx%d but the init image is %dx%d (they must match)\n", mw, mh,
              p->init_width, p->init_height);
      return 1;
    }
    p->mask_image = *mask_rgb;
  }
  return 0;
}
