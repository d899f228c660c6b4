/* The tensor type: a dtype, a shape and a pointer.
 *
 * Compute is float32. Weights may be stored as float16, bfloat16 or float32 (as they come
 * in the checkpoint) and are converted when an op uses them; activations are float32.
 * An sd_tensor never owns its memory: weights point into a memory-mapped file, activations
 * into an sd_arena (core/arena.h). Shapes are row-major, outermost dimension first, the
 * same order as PyTorch/safetensors.
 */
#ifndef SD_CORE_TENSOR_H
#define SD_CORE_TENSOR_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
  SD_F32 = 0, SD_F16, SD_BF16, SD_F64,
  SD_I64, SD_I32, SD_I16, SD_I8, SD_U8, SD_U16, SD_U32, SD_U64, SD_BOOL,
  SD_DTYPE_COUNT
} sd_dtype;

#define SD_MAX_DIMS 8

typedef struct sd_tensor {
  sd_dtype dtype;
  int ndim;
  int64_t shape[SD_MAX_DIMS];
  void *data;
} sd_tensor;

size_t sd_dtype_size(sd_dtype t);
/* safetensors spelling: "F32", "F16", "BF16", "I64", ... */
const char *sd_dtype_name(sd_dtype t);
/* Parse a safetensors dtype string; returns 0 and sets *out, or -1 if unknown. */
int sd_dtype_parse(const char *s, sd_dtype *out);
int sd_dtype_is_float(sd_dtype t);

int64_t sd_numel(const sd_tensor *t);
/* Shape as text, "[77, 768]", into buf (returns buf). */
char *sd_shape_str(const sd_tensor *t, char *buf, size_t cap);
int sd_shape_eq(const sd_tensor *t, int ndim, const int64_t *shape);
/* A tensor header with the given shape (data NULL). */
sd_tensor sd_tensor_make(sd_dtype dtype, int ndim, const int64_t *shape, void *data);

/* Scalar conversions (round-to-nearest-even for the narrowing ones). */
float sd_f16_to_f32(uint16_t h);
uint16_t sd_f32_to_f16(float f);
float sd_bf16_to_f32(uint16_t b);
uint16_t sd_f32_to_bf16(float f);

/* Convert n elements of a float tensor (F32/F16/BF16/F64) to float32. src may be unaligned. */
void sd_to_f32(float *dst, const void *src, sd_dtype src_type, size_t n);
/* Convert n elements of a float tensor (F32/F16/BF16/F64) to bfloat16, rounded to nearest
 * even as sd_f32_to_bf16 does (F16 through its exact float32 value). src may be unaligned. */
void sd_to_bf16(uint16_t *dst, const void *src, sd_dtype src_type, size_t n);
/* Convert n float32 values to dst_type (F32/F16/BF16/F64). */
void sd_from_f32(void *dst, sd_dtype dst_type, const float *src, size_t n);

/* The index of the first NaN or infinity among n values of a float dtype (F32, F16, BF16,
 * F64; data may be unaligned), or -1 when all are finite (and for other dtypes). Reads
 * the bit patterns (exponent all ones), at memory speed. */
int64_t sd_first_nonfinite(const void *data, sd_dtype t, int64_t n);

/* Map the pages of [p, p + n) readable now, in one system call (Linux's MADV_POPULATE_READ),
 * instead of one page fault per 4 KiB page as they are first read: file-backed weights whose
 * pages were dropped after the load's check (and every page fault is costly in a virtual
 * machine). Advice only: nothing happens on other systems, or if the call fails. */
void sd_prefault(const void *p, size_t n);

#endif
