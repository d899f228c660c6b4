#include "core/tensor.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const struct { const char *name; size_t size; int is_float; } k_dtypes[SD_DTYPE_COUNT] = {
  [SD_F32] = {"F32", 4, 1},  [SD_F16] = {"F16", 2, 1},  [SD_BF16] = {"BF16", 2, 1},
  [SD_F64] = {"F64", 8, 1},  [SD_I64] = {"I64", 8, 0},  [SD_I32] = {"I32", 4, 0},
  [SD_I16] = {"I16", 2, 0},  [SD_I8] = {"I8", 1, 0},    [SD_U8] = {"U8", 1, 0},
  [SD_U16] = {"U16", 2, 0},  [SD_U32] = {"U32", 4, 0},  [SD_U64] = {"U64", 8, 0},
  [SD_BOOL] = {"BOOL", 1, 0},
};

size_t sd_dtype_size(sd_dtype t) { return (unsigned)t < SD_DTYPE_COUNT ? k_dtypes[t].size : 0; }
const char *sd_dtype_name(sd_dtype t) { return (unsigned)t < SD_DTYPE_COUNT ? k_dtypes[t].name : "?"; }
int sd_dtype_is_float(sd_dtype t) { return (unsigned)t < SD_DTYPE_COUNT && k_dtypes[t].is_float; }

int sd_dtype_parse(const char *s, sd_dtype *out) {
  for (int i = 0; i < SD_DTYPE_COUNT; i++) {
    if (strcmp(s, k_dtypes[i].name) == 0) { *out = (sd_dtype)i; return 0; }
  }
  return -1;
}

int64_t sd_numel(const sd_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

char *sd_shape_str(const sd_tensor *t, char *buf, size_t cap) {
  size_t off = 0;
  off += (size_t)snprintf(buf + off, cap - off, "[");
  for (int i = 0; i < t->ndim && off < cap; i++)
    off += (size_t)snprintf(buf + off, cap - off, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
  if (off < cap) snprintf(buf + off, cap - off, "]");
  return buf;
}

int sd_shape_eq(const sd_tensor *t, int ndim, const int64_t *shape) {
  if (t->ndim != ndim) return 0;
  for (int i = 0; i < ndim; i++) if (t->shape[i] != shape[i]) return 0;
  return 1;
}

sd_tensor sd_tensor_make(sd_dtype dtype, int ndim, const int64_t *shape, void *data) {
  sd_tensor t;
  memset(&t, 0, sizeof t);
  t.dtype = dtype;
  t.ndim = ndim;
  for (int i = 0; i < ndim && i < SD_MAX_DIMS; i++) t.shape[i] = shape[i];
  t.data = data;
  return t;
}

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float sd_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  if (exp == 0) {
    if (man == 0) return u2f(sign);
    /* subnormal: value = man * 2^-24 */
    float v = (float)man * 5.9604644775390625e-08f;
    return sign ? -v : v;
  }
  if (exp == 31) return u2f(sign | 0x7f800000u | (man << 13));
  return u2f(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t sd_f32_to_f16(float f) {
  uint32_t x = f2u(f);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to inf */
  if (ax < 0x38800000u) {                                  /* subnormal or zero in f16 */
    float v = u2f(ax) * 16777216.0f;                       /* scale by 2^24, then round */
    uint32_t m = (uint32_t)lrintf(v);                     /* ties to even under default mode */
    return (uint16_t)(sign | m);
  }
  uint32_t mant = ax & 0x7fffff, e = (ax >> 23) - 112;
  uint32_t h = (e << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
  return (uint16_t)(sign | h);
}

float sd_bf16_to_f32(uint16_t b) { return u2f((uint32_t)b << 16); }

uint16_t sd_f32_to_bf16(float f) {
  uint32_t x = f2u(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
  x += 0x7fff + ((x >> 16) & 1);
  return (uint16_t)(x >> 16);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* F16C: 8 halves -> 8 floats per instruction, exact like the scalar conversion (float16 values
 * are all representable in float32). Chosen at run time; returns how many were converted. */
__attribute__((target("avx,f16c"))) static size_t f16_to_f32_f16c(float *dst, const unsigned char *s, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(s + 2 * i))));
  return i;
}
__attribute__((target("avx2"))) static size_t bf16_to_f32_avx2(float *dst, const unsigned char *s, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(s + 2 * i)));
    _mm256_storeu_si256((__m256i *)(void *)(dst + i), _mm256_slli_epi32(w, 16));
  }
  return i;
}
/* float32 bit patterns -> bfloat16, rounded to nearest even like sd_f32_to_bf16 (NaN
 * payloads aside: weights are finite, checked at load) */
__attribute__((target("avx2"))) static inline __m128i bf16_rne8(__m256i x) {
  __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
  x = _mm256_srli_epi32(_mm256_add_epi32(x, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
  /* 8 values in 0..0xffff -> 8 uint16 in order */
  __m256i p = _mm256_packus_epi32(x, x); /* per 128-bit lane: a0..a3 a0..a3 | a4..a7 a4..a7 */
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(p, 0x08));
}
__attribute__((target("avx2,f16c"))) static size_t to_bf16_avx2(uint16_t *dst, const unsigned char *s, sd_dtype t,
                                                                size_t n) {
  size_t i = 0;
  if (t == SD_F16)
    for (; i + 8 <= n; i += 8) {
      __m256 f = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(s + 2 * i)));
      _mm_storeu_si128((__m128i *)(void *)(dst + i), bf16_rne8(_mm256_castps_si256(f)));
    }
  else if (t == SD_F32)
    for (; i + 8 <= n; i += 8)
      _mm_storeu_si128((__m128i *)(void *)(dst + i),
                       bf16_rne8(_mm256_loadu_si256((const __m256i *)(const void *)(s + 4 * i))));
  return i;
}
static int cpu_f16c(void) {
  static int v = -1;
  /* every x86-64 CPU with AVX2 has F16C (Intel since Haswell, AMD since Piledriver), and
   * clang's __builtin_cpu_supports does not know "f16c" */
  if (v < 0) v = __builtin_cpu_supports("avx2");
  return v;
}
static int cpu_avx2(void) {
  static int v = -1;
  if (v < 0) v = __builtin_cpu_supports("avx2");
  return v;
}
#endif

void sd_to_f32(float *dst, const void *src, sd_dtype t, size_t n) {
  const unsigned char *s = (const unsigned char *)src;
  size_t done = 0;
#if defined(__x86_64__) && defined(__GNUC__)
  if (t == SD_F16 && cpu_f16c()) done = f16_to_f32_f16c(dst, s, n);
  if (t == SD_BF16 && cpu_avx2()) done = bf16_to_f32_avx2(dst, s, n);
#endif
  dst += done;
  s += done * (t == SD_F16 || t == SD_BF16 ? 2 : 0);
  n -= t == SD_F16 || t == SD_BF16 ? done : 0;
  switch (t) {
    case SD_F32: memmove(dst, src, n * 4); break;
    case SD_F16:
      for (size_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, s + 2 * i, 2); dst[i] = sd_f16_to_f32(h); }
      break;
    case SD_BF16:
      for (size_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, s + 2 * i, 2); dst[i] = sd_bf16_to_f32(h); }
      break;
    case SD_F64:
      for (size_t i = 0; i < n; i++) { double d; memcpy(&d, s + 8 * i, 8); dst[i] = (float)d; }
      break;
    default: memset(dst, 0, n * 4); break;
  }
}

void sd_to_bf16(uint16_t *dst, const void *src, sd_dtype t, size_t n) {
  const unsigned char *s = (const unsigned char *)src;
  size_t i = 0;
#if defined(__x86_64__) && defined(__GNUC__)
  if ((t == SD_F16 || t == SD_F32) && cpu_avx2()) i = to_bf16_avx2(dst, s, t, n);
#endif
  if (t == SD_BF16) {
    memmove(dst, src, n * 2);
    return;
  }
  for (; i < n; i++) {
    float f = 0;
    sd_to_f32(&f, s + i * sd_dtype_size(t), t, 1);
    dst[i] = sd_f32_to_bf16(f);
  }
}

void sd_from_f32(void *dst, sd_dtype t, const float *src, size_t n) {
  unsigned char *d = (unsigned char *)dst;
  switch (t) {
    case SD_F32: memmove(dst, src, n * 4); break;
    case SD_F16:
      for (size_t i = 0; i < n; i++) { uint16_t h = sd_f32_to_f16(src[i]); memcpy(d + 2 * i, &h, 2); }
      break;
    case SD_BF16:
      for (size_t i = 0; i < n; i++) { uint16_t h = sd_f32_to_bf16(src[i]); memcpy(d + 2 * i, &h, 2); }
      break;
    case SD_F64:
      for (size_t i = 0; i < n; i++) { double v = src[i]; memcpy(d + 8 * i, &v, 8); }
      break;
    default: break;
  }
}

/* The exponent-all-ones test on bit patterns, in blocks so that the compiler vectorises the
 * scan; the exact index is looked for only in a block that has one. */
#define NONFINITE_SCAN(UT, MASK)                                                   \
  do {                                                                             \
    const unsigned char *p = data;                                                 \
    for (int64_t b = 0; b < n; b += 4096) {                                        \
      int64_t e = b + 4096 < n ? b + 4096 : n;                                     \
      int hit = 0;                                                                 \
      for (int64_t i = b; i < e; i++) {                                            \
        UT v;                                                                      \
        memcpy(&v, p + (size_t)i * sizeof v, sizeof v);                            \
        hit |= (v & (UT)(MASK)) == (UT)(MASK);                                     \
      }                                                                            \
      if (!hit) continue;                                                          \
      for (int64_t i = b; i < e; i++) {                                            \
        UT v;                                                                      \
        memcpy(&v, p + (size_t)i * sizeof v, sizeof v);                            \
        if ((v & (UT)(MASK)) == (UT)(MASK)) return i;                              \
      }                                                                            \
    }                                                                              \
  } while (0)

int64_t sd_first_nonfinite(const void *data, sd_dtype t, int64_t n) {
  if (!data || n <= 0) return -1;
  switch (t) {
    case SD_F32: NONFINITE_SCAN(uint32_t, 0x7f800000u); break;
    case SD_F16: NONFINITE_SCAN(uint16_t, 0x7c00u); break;
    case SD_BF16: NONFINITE_SCAN(uint16_t, 0x7f80u); break;
    case SD_F64: NONFINITE_SCAN(uint64_t, 0x7ff0000000000000ull); break;
    default: break;
  }
  return -1;
}

void sd_prefault(const void *p, size_t n) {
#if defined(__linux__) && defined(MADV_POPULATE_READ)
  const long pg = sysconf(_SC_PAGESIZE);
  if (!p || n == 0 || pg <= 0) return;
  uintptr_t a0 = (uintptr_t)p & ~((uintptr_t)pg - 1), a1 = (uintptr_t)p + n;
  if (a1 < a0) return;
  (void)madvise((void *)a0, a1 - a0, MADV_POPULATE_READ);
#else
  (void)p;
  (void)n;
#endif
}
