/* The random stream of a generation: a bit-exact reimplementation of PyTorch's CPU generator
 * (torch.Generator("cpu"), PyTorch 1.13, x86-64 AVX2 kernels), so that the same seed gives the
 * same initial latents, and the same per-step noise, as diffusers.
 *
 *   sd_rng g;
 *   sd_rng_seed(&g, seed);          // torch.Generator("cpu").manual_seed(seed)
 *   sd_rng_randn(&g, x, n);         // torch.randn(n, generator=g) (any shape with n elements)
 *   sd_rng_randn(&g, y, n);         // the next draw from the SAME generator
 *
 * What is reproduced (see rng.c for the details, checked bit for bit against torch):
 *  - mt19937 seeded with (seed & 0xffffffff) by the standard init_genrand; seeds are 64-bit as in
 *    torch (a negative Python seed s is 2^64 + s).
 *  - n >= 16: n float uniforms (u32 & 0xFFFFFF) * 2^-24 first, then Box-Muller on each block of 16
 *    in float32 with the Cephes polynomials of PyTorch's avx_mathfun.h (log256_ps, sincos256_ps),
 *    fused multiply-adds exactly where the shipped libtorch_cpu uses them; when n % 16 != 0 the
 *    last 16 values are drawn again and transformed again.
 *  - n < 16: the scalar double-precision path (at::normal_distribution<double>: two 53-bit
 *    uniforms per pair, cos sample returned, sin sample cached in the generator for the next call).
 *
 * sd_rng is a plain value: copying the struct (assignment or memcpy) forks the stream; nothing
 * inside points elsewhere. It is about 2.5 KiB.
 */
#ifndef SD_SAMPLING_RNG_H
#define SD_SAMPLING_RNG_H

#include <stdint.h>

#define SD_RNG_MT_N 624

typedef struct sd_rng {
  uint64_t seed;                 /* as given to sd_rng_seed (torch's initial_seed()) */
  uint32_t mt[SD_RNG_MT_N];      /* mt19937 state */
  int mti;                       /* next state word to temper; SD_RNG_MT_N = regenerate */
  int has_next_normal;           /* torch's cached next_double_normal_sample */
  double next_normal;
} sd_rng;

/* torch.Generator("cpu").manual_seed(seed). */
void sd_rng_seed(sd_rng *g, uint64_t seed);
/* The next raw 32-bit mt19937 output (CPUGeneratorImpl::random()). */
uint32_t sd_rng_u32(sd_rng *g);
/* torch.randn(n, generator=g, dtype=float32) into out[0..n-1]; n <= 0 draws nothing. */
void sd_rng_randn(sd_rng *g, float *out, int64_t n);
/* torch.rand(n, generator=g, dtype=float32): (u32 & 0xFFFFFF) * 2^-24. */
void sd_rng_rand(sd_rng *g, float *out, int64_t n);

#endif
