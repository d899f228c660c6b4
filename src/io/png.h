/* PNG output through libpng, written atomically (temporary file + fsync + rename), with
 * tEXt chunks such as AUTOMATIC1111's "parameters". */
#ifndef SD_IO_PNG_H
#define SD_IO_PNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct sd_png_text {
  const char *key;   /* 1..79 Latin-1 characters */
  const char *value; /* UTF-8; stored as iTXt when not plain ASCII */
} sd_png_text;

/* Write an 8-bit RGB image (rgb: height rows of width*3 bytes). */
int sd_png_write_rgb8(const char *path, const uint8_t *rgb, int width, int height,
                      const sd_png_text *texts, int n_texts);

/* The same PNG bytes into memory: *png (malloc'ed) of *size bytes. */
int sd_png_encode_rgb8(const uint8_t *rgb, int width, int height, const sd_png_text *texts, int n_texts,
                       uint8_t **png, size_t *size);

/* Read a PNG (gray, gray+alpha, palette, RGB, RGBA; 1..16 bits; interlaced or not) into
 * malloc'ed 8-bit RGB bytes (alpha dropped, 16 bits cut to 8). A regular file only (no FIFO
 * can block it: io/fileio.h); a file that is not a PNG is SD_E_FORMAT "... is not a PNG file".
 * At most 8192 × 8192 pixels (a larger header is an error before anything is allocated). */
int sd_png_read_rgb8(const char *path, uint8_t **rgb, int *width, int *height);
/* The same from memory; name labels messages (NULL: "the image"). */
int sd_png_decode_rgb8(const uint8_t *data, size_t len, const char *name, uint8_t **rgb, int *width, int *height);

#endif
