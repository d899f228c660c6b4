/* NumPy .npy files (format 1.0/2.0, little-endian, C order): the exchange format with the
 * PyTorch reference tools and what `safesd encode` writes. */
#ifndef SD_IO_NPY_H
#define SD_IO_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"

/* Read a .npy of dtype <f4, <f2, <f8, <i8 or <i4. data is malloc'ed (caller frees). */
int sd_npy_read(const char *path, sd_tensor *out);
/* Read and convert to float32 (any float dtype above); data malloc'ed. */
int sd_npy_read_f32(const char *path, sd_tensor *out);
/* Write a float32/int64/int32 tensor atomically (temp file + rename). */
int sd_npy_write(const char *path, const sd_tensor *t);

#endif
