/* safetensors reader. Model files are untrusted input: everything is validated before
 * any tensor can be reached.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F16", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"k": "v"}}, then the raw data section. Offsets are relative to the
 * data section.
 *
 * Checks (each failure is SD_E_FORMAT with a message naming the file and, where there is
 * one, the tensor): file at least 8 bytes; N ≤ 16 MiB and 8 + N ≤ file size; at most
 * 65,536 entries and 2^20 JSON values, counted before the header is parsed; the header is
 * well-formed UTF-8 JSON whose top level is an object; no duplicate names; every entry an
 * object with exactly a known dtype, a shape of non-negative integers (rank ≤ SD_MAX_DIMS,
 * element count without overflow), data_offsets [begin, end] with begin ≤ end; end inside
 * the data section; (end - begin) == numel × dtype size; byte ranges pairwise
 * non-overlapping; __metadata__ (optional) an object of strings.
 */
#ifndef SD_IO_SAFETENSORS_H
#define SD_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"

typedef struct sd_st_entry {
  char *name;
  sd_dtype dtype;
  int ndim;
  int64_t shape[SD_MAX_DIMS];
  uint64_t begin, end;  /* byte range within the data section */
  const void *data;     /* = data section + begin (may be unaligned) */
} sd_st_entry;

typedef struct sd_safetensors {
  char *path;           /* label used in messages (the file path) */
  const unsigned char *base; size_t size; /* whole file (mmap or caller buffer) */
  int mapped;           /* 1 if base was mmap'ed by sd_st_open */
  size_t n;             /* number of tensors */
  sd_st_entry *entries; /* sorted by name (strcmp) */
  size_t n_meta;
  char **meta_keys, **meta_values;
} sd_safetensors;

/* Memory-map and validate a file. */
int sd_st_open(const char *path, sd_safetensors **out);
/* Validate a buffer the caller owns (must outlive the handle); label names it in errors. */
int sd_st_open_memory(const void *buf, size_t len, const char *label, sd_safetensors **out);
/* Drop the resident pages of [p, p+n) if that range lies in st's file mapping (whole pages
 * inside it only; nothing happens otherwise). The data stays readable: the kernel reads the
 * pages from the file again on the next access. Lowers the peak memory of a pipeline whose
 * stages run one after the other. */
void sd_st_release(const sd_safetensors *st, const void *p, size_t n);
void sd_st_close(sd_safetensors *st);

/* Binary search by exact name; NULL if absent. */
const sd_st_entry *sd_st_find(const sd_safetensors *st, const char *name);
/* A tensor view of an entry (no copy). */
sd_tensor sd_st_tensor(const sd_st_entry *e);
/* Metadata value or NULL. */
const char *sd_st_meta(const sd_safetensors *st, const char *key);

/* Write a safetensors file atomically (temp file + rename). names/tensors arrays of n. */
int sd_st_write(const char *path, size_t n, const char *const *names, const sd_tensor *tensors);
/* The same with a __metadata__ object of n_meta string pairs (none when n_meta is 0). */
int sd_st_write_meta(const char *path, size_t n, const char *const *names, const sd_tensor *tensors,
                     size_t n_meta, const char *const *meta_keys, const char *const *meta_values);

#endif
