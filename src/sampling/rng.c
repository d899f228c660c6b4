/* PyTorch CPU generator, bit for bit. See rng.h for the contract.
 *
 * Sources of the semantics (PyTorch 1.13): ATen/core/MT19937RNGEngine.h (seeding, twist),
 * ATen/core/TransformationHelper.h + DistributionsHelper.h (uniform_real / normal_distribution),
 * ATen/native/cpu/DistributionTemplates.h (normal_kernel, normal_fill_AVX2, normal_fill_16_AVX2)
 * and ATen/native/cpu/avx_mathfun.h (log256_ps, sincos256_ps). The vector code is written with
 * separate _mm256_mul_ps/_mm256_add_ps intrinsics, but GCC contracted many of them into FMA
 * instructions when it built libtorch_cpu.so (-mfma, -ffp-contract=fast). Which ones were fused
 * was read off the disassembly of the shipped library (Debian python3-torch 1.13.1, both inlined
 * copies of normal_fill_16_AVX2: the block loop and the tail), and every fused operation below
 * is an explicit fmaf(); every other operation is a single IEEE float32 operation. The file must
 * therefore be compiled without floating-point contraction (strict ISO C mode does that for GCC;
 * the pragma covers clang) and without -ffast-math.
 */
#include "sampling/rng.h"

#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#if defined(__FAST_MATH__)
#error "sampling/rng.c must not be compiled with -ffast-math (the RNG must be bit-exact)"
#endif

/* ---------------------------------------------------------------- mt19937 ---------------- */

#define MT_M 397

void sd_rng_seed(sd_rng *g, uint64_t seed) {
  memset(g, 0, sizeof *g);
  g->seed = seed;
  g->mt[0] = (uint32_t)(seed & 0xffffffffu);
  for (int i = 1; i < SD_RNG_MT_N; i++)
    g->mt[i] = 1812433253u * (g->mt[i - 1] ^ (g->mt[i - 1] >> 30)) + (uint32_t)i;
  g->mti = SD_RNG_MT_N;
  g->has_next_normal = 0;
  g->next_normal = 0.0;
}

static void mt_regenerate(sd_rng *g) {
  uint32_t *s = g->mt;
  for (int i = 0; i < SD_RNG_MT_N; i++) {
    uint32_t y = (s[i] & 0x80000000u) | (s[(i + 1) % SD_RNG_MT_N] & 0x7fffffffu);
    uint32_t v = s[(i + MT_M) % SD_RNG_MT_N] ^ (y >> 1);
    if (y & 1u) v ^= 0x9908b0dfu;
    s[i] = v;
  }
  g->mti = 0;
}

uint32_t sd_rng_u32(sd_rng *g) {
  if (g->mti >= SD_RNG_MT_N || g->mti < 0) mt_regenerate(g);
  uint32_t y = g->mt[g->mti++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

/* at::uniform_real_distribution<float>(0, 1): 24 random bits. */
static float uniform_f32(sd_rng *g) {
  return (float)(sd_rng_u32(g) & 0xffffffu) * 0x1p-24f;
}

/* at::uniform_real_distribution<double>(0, 1): 53 bits of random64() = (first << 32) | second. */
static double uniform_f64(sd_rng *g) {
  uint64_t hi = sd_rng_u32(g);
  uint64_t lo = sd_rng_u32(g);
  uint64_t x = (hi << 32) | lo;
  return (double)(x & ((UINT64_C(1) << 53) - 1)) * 0x1p-53;
}

/* at::normal_distribution<double>(0, 1) with the generator's cached second sample. */
static double normal_f64(sd_rng *g) {
  if (g->has_next_normal) {
    g->has_next_normal = 0;
    return g->next_normal * 1.0 + 0.0;
  }
  double u1 = uniform_f64(g);
  double u2 = uniform_f64(g);
  double r = sqrt(-2.0 * log(1.0 - u2));
  double theta = 2.0 * 3.14159265358979323846 * u1;
  g->next_normal = r * sin(theta);
  g->has_next_normal = 1;
  return r * cos(theta) * 1.0 + 0.0;
}

/* ------------------------------------------- avx_mathfun.h, one lane, as compiled ---------- */

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* The Cephes constants, as float (the header's _PS256_CONST initialisers). */
#define C_SQRTHF 0.707106781186547524f
#define C_LOG_P0 7.0376836292E-2f
#define C_LOG_P1 -1.1514610310E-1f
#define C_LOG_P2 1.1676998740E-1f
#define C_LOG_P3 -1.2420140846E-1f
#define C_LOG_P4 +1.4249322787E-1f
#define C_LOG_P5 -1.6668057665E-1f
#define C_LOG_P6 +2.0000714765E-1f
#define C_LOG_P7 -2.4999993993E-1f
#define C_LOG_P8 +3.3333331174E-1f
#define C_LOG_Q1 -2.12194440e-4f
#define C_LOG_Q2 0.693359375f
#define C_MDP1 -0.78515625f
#define C_MDP2 -2.4187564849853515625e-4f
#define C_MDP3 -3.77489497744594108e-8f
#define C_SIN_P0 -1.9515295891E-4f
#define C_SIN_P1 8.3321608736E-3f
#define C_SIN_P2 -1.6666654611E-1f
#define C_COS_P0 2.443315711809948E-005f
#define C_COS_P1 -1.388731625493765E-003f
#define C_COS_P2 4.166664568298827E-002f
#define C_FOPI 1.27323954473516f

/* log256_ps for one lane. x > 0 here (x = 1 - u with u in [0, 1 - 2^-24]). */
static float cephes_logf(float x) {
  int invalid = !(x > 0.0f);
  if (x < 0x1p-126f) x = 0x1p-126f; /* _mm256_max_ps(x, min_norm_pos) */
  uint32_t bits = f2u(x);
  int32_t imm0 = (int32_t)(bits >> 23) + (-127);
  x = u2f((bits & ~0x7f800000u) | f2u(0.5f));
  float e = (float)imm0;
  e = e + 1.0f;
  int lt = x < C_SQRTHF;
  float tmp = lt ? x : 0.0f;
  x = x - 1.0f;
  e = e - (lt ? 1.0f : 0.0f);
  x = tmp + x;
  float z = x * x;
  float y = fmaf(C_LOG_P0, x, C_LOG_P1);
  y = fmaf(y, x, C_LOG_P2);
  y = fmaf(y, x, C_LOG_P3);
  y = fmaf(y, x, C_LOG_P4);
  y = fmaf(y, x, C_LOG_P5);
  y = fmaf(y, x, C_LOG_P6);
  y = fmaf(y, x, C_LOG_P7);
  y = fmaf(y, x, C_LOG_P8);
  y = x * y;
  float eq1 = e * C_LOG_Q1;
  y = fmaf(y, z, eq1);
  y = fmaf(-z, 0.5f, y);
  x = x + y;
  x = fmaf(e, C_LOG_Q2, x);
  if (invalid) x = u2f(0xffffffffu); /* or with an all-ones mask: NaN */
  return x;
}

/* sincos256_ps for one lane. */
static void cephes_sincosf(float xin, float *s, float *c) {
  uint32_t sign_sin = f2u(xin) & 0x80000000u;
  float x = u2f(f2u(xin) & 0x7fffffffu);
  float y = x * C_FOPI;
  int32_t j = (int32_t)y; /* cvttps2dq: truncation (inputs here are small) */
  j = (j + 1) & ~1;
  float yf = (float)j;
  uint32_t swap_sin = ((uint32_t)j & 4u) << 29;
  int poly = (j & 2) == 0;
  int32_t jc = j - 2;
  uint32_t sign_cos = (~(uint32_t)jc & 4u) << 29;
  x = fmaf(yf, C_MDP1, x);
  x = fmaf(yf, C_MDP2, x);
  x = fmaf(yf, C_MDP3, x);
  sign_sin ^= swap_sin;
  float z = x * x;
  float yc = fmaf(C_COS_P0, z, C_COS_P1);
  yc = fmaf(yc, z, C_COS_P2);
  float half_z = z * 0.5f;
  yc = z * yc;
  yc = fmaf(yc, z, -half_z);
  yc = yc + 1.0f;
  float ys = fmaf(C_SIN_P0, z, C_SIN_P1);
  ys = fmaf(ys, z, C_SIN_P2);
  ys = z * ys;
  ys = fmaf(ys, x, x);
  float ysin2 = poly ? ys : 0.0f;
  float ysin1 = poly ? 0.0f : yc;
  ys = ys - ysin2;
  yc = yc - ysin1;
  float sv = ysin2 + ysin1;
  float cv = ys + yc;
  *s = u2f(f2u(sv) ^ sign_sin);
  *c = u2f(f2u(cv) ^ sign_cos);
}

/* normal_fill_16_AVX2 on data[0..15] (uniforms in, normals out), mean 0, std 1. */
static void normal_fill_16(float *d) {
  const float two_pi = (float)(2.0 * 3.14159265358979323846);
  for (int j = 0; j < 8; j++) {
    float u1 = 1.0f - d[j];
    float theta = two_pi * d[j + 8];
    float radius = sqrtf(cephes_logf(u1) * -2.0f);
    float sn, cs;
    cephes_sincosf(theta, &sn, &cs);
    float n1 = radius * cs;
    float n2 = radius * sn;
    d[j] = fmaf(n1, 1.0f, 0.0f);
    d[j + 8] = fmaf(n2, 1.0f, 0.0f);
  }
}

/* ---------------------------------------------------------------- public ---------------- */

void sd_rng_rand(sd_rng *g, float *out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = uniform_f32(g);
}

void sd_rng_randn(sd_rng *g, float *out, int64_t n) {
  if (n <= 0) return;
  if (n < 16) {
    for (int64_t i = 0; i < n; i++) out[i] = (float)normal_f64(g);
    return;
  }
  for (int64_t i = 0; i < n; i++) out[i] = uniform_f32(g);
  for (int64_t i = 0; i + 16 <= n; i += 16) normal_fill_16(out + i);
  if (n % 16 != 0) {
    float *tail = out + n - 16;
    for (int i = 0; i < 16; i++) tail[i] = uniform_f32(g);
    normal_fill_16(tail);
  }
}
