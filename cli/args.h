/* Shared by the safesd subcommands: strict number parsing, input files, error printing. */
#ifndef SAFESD_CLI_ARGS_H
#define SAFESD_CLI_ARGS_H

#include <stdint.h>
#include <stdio.h>

/* Numbers as options take them: decimal digits only, a leading '-' only where the range
 * allows negative values; no spaces, no '+', no trailing text, no overflow. 0 on success. */
int cli_parse_long(const char *s, long lo, long hi, long *out);
int cli_parse_u64(const char *s, uint64_t *out);
/* [-]digits[.digits][e[+-]digits] (or [-].digits...), finite, in float / double range. */
int cli_parse_float(const char *s, float *out);
int cli_parse_double(const char *s, double *out);
/* A byte count: digits with an optional K, M or G (powers of 1024) and an optional B, at most
 * 1 TiB. */
int cli_parse_bytes(const char *s, long long *out);

/* An input file for reading lines: "-" is standard input; anything else must be a regular
 * file (a directory, FIFO or device is an error, without blocking). NULL on error, with
 * safesd_last_error() saying why. */
FILE *cli_open_input(const char *path, const char *expected);

/* Image to image's inputs (generate --init-img, --mask): read the PNGs (either path may be
 * NULL) into *init_rgb / *mask_rgb (malloc'ed; the caller frees them) and set p's
 * init_image, init_width, init_height, mask_image. A mask of another size than the image is
 * an error. 0, or 1 after printing a one-line error. */
struct safesd_gen_params;
int cli_read_init_images(const char *init, const char *mask, struct safesd_gen_params *p, uint8_t **init_rgb,
                         uint8_t **mask_rgb);

/* Print "safesd: WHAT: <last error>" on stderr, control characters escaped; returns 1. */
int cli_fail(const char *what);

#endif
