/* Conformance helper: compare two PNG images pixel by pixel.
 *
 *   png_check GOT.png REF.png [--max-level L] [--max-frac F]
 *
 * Passes (exit 0) when both have the same size, no channel value differs by more than L
 * levels (default 1) and at most a fraction F (default 0.01) of the values differ. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/png.h"

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: %s GOT.png REF.png [--max-level L] [--max-frac F]\n", argv[0]); return 2; }
  int max_level = 1;
  double max_frac = 0.01;
  for (int i = 3; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--max-level")) max_level = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--max-frac")) max_frac = atof(argv[i + 1]);
  }
  uint8_t *a, *b;
  int aw, ah, bw, bh;
  if (sd_png_read_rgb8(argv[1], &a, &aw, &ah) || sd_png_read_rgb8(argv[2], &b, &bw, &bh)) {
    fprintf(stderr, "error: %s\n", sd_errmsg());
    return 1;
  }
  if (aw != bw || ah != bh) { printf("%s: size %dx%d, reference %dx%d\n", argv[1], aw, ah, bw, bh); return 1; }
  size_t n = (size_t)aw * ah * 3, ndiff = 0;
  int worst = 0;
  for (size_t i = 0; i < n; i++) {
    int d = abs((int)a[i] - (int)b[i]);
    if (d) ndiff++;
    if (d > worst) worst = d;
  }
  double frac = (double)ndiff / (double)n;
  printf("%s: %zu of %zu values differ (%.2f%%), max %d levels (limits: %d levels, %.2f%%)\n", argv[1], ndiff, n,
         100 * frac, worst, max_level, 100 * max_frac);
  free(a);
  free(b);
  return worst <= max_level && frac <= max_frac ? 0 : 1;
}
