/* Benchmark (not a test): the CPU's peak, for the "% of peak" columns of
 * docs/performance.md. --kind fma (default): a register-only loop of independent float32
 * fused multiply-adds (12 accumulators, enough to cover the FMA latency) on each of N
 * threads, with AVX-512 where the CPU has it, else AVX2 + FMA. --kind bf16: the same with
 * AVX512-BF16 `vdpbf16ps` (two bf16 products summed into each fp32 lane). --kind amx: AMX
 * `tdpbf16ps` on four independent 16×16 fp32 accumulator tiles (16·16·32 products each).
 *
 *   bench_peak [--threads N] [--seconds S] [--kind fma|fma-avx2|bf16|amx]
 *
 * --kind fma-avx2: the AVX2 + FMA loop even where the CPU has AVX-512 (the peak of the AVX2
 * code paths, for running them on an AVX-512 machine as a stand-in for an AVX2-only CPU).
 *
 * Prints "impl=peak isa=... threads=N gflops=... per_core=... per_core_cpu=..." (GFLOP/s
 * counts a multiply-add as two operations; per_core_cpu over the thread's CPU time, for
 * comparing with bench_ops' gflops_cpu on a loaded machine). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/ops_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define FMA12(OP, T, SET, FMA)                                                   \
  T a0 = SET(1e-3f), a1 = SET(2e-3f), a2 = SET(3e-3f), a3 = SET(4e-3f), a4 = SET(5e-3f), \
    a5 = SET(6e-3f), a6 = SET(7e-3f), a7 = SET(8e-3f), a8 = SET(9e-3f), a9 = SET(1e-2f),  \
    a10 = SET(1.1e-2f), a11 = SET(1.2e-2f), m = SET(0.999999f), c = SET(1e-7f);        \
  for (long i = 0; i < iters; i++) {                                                \
    a0 = FMA(a0, m, c); a1 = FMA(a1, m, c); a2 = FMA(a2, m, c); a3 = FMA(a3, m, c);      \
    a4 = FMA(a4, m, c); a5 = FMA(a5, m, c); a6 = FMA(a6, m, c); a7 = FMA(a7, m, c);      \
    a8 = FMA(a8, m, c); a9 = FMA(a9, m, c); a10 = FMA(a10, m, c); a11 = FMA(a11, m, c);  \
  }                                                                                 \
  T r = a0; r = OP(r, a1); r = OP(r, a2); r = OP(r, a3); r = OP(r, a4); r = OP(r, a5);  \
  r = OP(r, a6); r = OP(r, a7); r = OP(r, a8); r = OP(r, a9); r = OP(r, a10); r = OP(r, a11);

__attribute__((target("avx2,fma"))) static float loop_avx2(long iters) {
  FMA12(_mm256_add_ps, __m256, _mm256_set1_ps, _mm256_fmadd_ps)
  float out[8];
  _mm256_storeu_ps(out, r);
  return out[0];
}
__attribute__((target("avx512f"))) static float loop_avx512(long iters) {
  FMA12(_mm512_add_ps, __m512, _mm512_set1_ps, _mm512_fmadd_ps)
  return _mm512_reduce_add_ps(r);
}
#define BF16_SET(x) (__m512bh) _mm512_set1_epi16(0x3f80) /* 1.0 in bf16 pairs */
#define DPBF(a, m, c) _mm512_dpbf16_ps(a, m, c)
__attribute__((target("avx512f,avx512bf16"))) static float loop_bf16(long iters) {
  __m512 a0 = _mm512_set1_ps(1e-3f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0,
         a9 = a0, a10 = a0, a11 = a0;
  const __m512bh m = BF16_SET(1), c = (__m512bh)_mm512_set1_epi16(0x3380); /* 1, 6e-8 */
  for (long i = 0; i < iters; i++) {
    a0 = DPBF(a0, m, c); a1 = DPBF(a1, m, c); a2 = DPBF(a2, m, c); a3 = DPBF(a3, m, c);
    a4 = DPBF(a4, m, c); a5 = DPBF(a5, m, c); a6 = DPBF(a6, m, c); a7 = DPBF(a7, m, c);
    a8 = DPBF(a8, m, c); a9 = DPBF(a9, m, c); a10 = DPBF(a10, m, c); a11 = DPBF(a11, m, c);
  }
  __m512 r = a0; r = _mm512_add_ps(r, a1); r = _mm512_add_ps(r, a2); r = _mm512_add_ps(r, a3);
  r = _mm512_add_ps(r, a4); r = _mm512_add_ps(r, a5); r = _mm512_add_ps(r, a6); r = _mm512_add_ps(r, a7);
  r = _mm512_add_ps(r, a8); r = _mm512_add_ps(r, a9); r = _mm512_add_ps(r, a10); r = _mm512_add_ps(r, a11);
  return _mm512_reduce_add_ps(r);
}
/* 12 tdpbf16ps per iteration on accumulators 0-3 from A tiles 4-5 and B tiles 6-7 */
__attribute__((target("amx-tile,amx-bf16"))) static float loop_amx(long iters) {
  struct { unsigned char palette, start, res[14]; unsigned short colsb[16]; unsigned char rows[16]; } cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int i = 0; i < 8; i++) cfg.colsb[i] = 64, cfg.rows[i] = 16;
  static unsigned short in[16 * 32] __attribute__((aligned(64)));
  static __thread float out[16 * 16] __attribute__((aligned(64)));
  for (int i = 0; i < 16 * 32; i++) in[i] = 0x3380;
  _tile_loadconfig(&cfg);
  _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
  _tile_loadd(4, in, 64); _tile_loadd(5, in, 64); _tile_loadd(6, in, 64); _tile_loadd(7, in, 64);
  for (long i = 0; i < iters; i++) {
    _tile_dpbf16ps(0, 4, 6); _tile_dpbf16ps(1, 4, 7); _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7); _tile_dpbf16ps(0, 5, 7); _tile_dpbf16ps(1, 5, 6);
    _tile_dpbf16ps(2, 4, 7); _tile_dpbf16ps(3, 4, 6); _tile_dpbf16ps(0, 4, 7);
    _tile_dpbf16ps(1, 5, 7); _tile_dpbf16ps(2, 4, 6); _tile_dpbf16ps(3, 5, 6);
  }
  _tile_stored(0, out, 64);
  _tile_release();
  return out[0];
}
#endif

static int use512;
static int kind; /* 0 fma, 1 bf16, 2 amx */
static long g_iters;
static volatile float sink;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *worker(void *arg) {
  double *cpu = arg, c0 = 0;
  struct timespec ts;
  if (cpu && !clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)) c0 = (double)ts.tv_sec + ts.tv_nsec * 1e-9;
#if defined(__x86_64__) && defined(__GNUC__)
  sink = kind == 2 ? loop_amx(g_iters) : kind == 1 ? loop_bf16(g_iters) : use512 ? loop_avx512(g_iters) : loop_avx2(g_iters);
#endif
  if (cpu && !clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)) *cpu = (double)ts.tv_sec + ts.tv_nsec * 1e-9 - c0;
  return NULL;
}

int main(int argc, char **argv) {
  int threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
  double seconds = 2.0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
    else if (!strcmp(argv[i], "--kind") && i + 1 < argc && !strcmp(argv[i + 1], "fma")) kind = 0, i++;
    else if (!strcmp(argv[i], "--kind") && i + 1 < argc && !strcmp(argv[i + 1], "bf16")) kind = 1, i++;
    else if (!strcmp(argv[i], "--kind") && i + 1 < argc && !strcmp(argv[i + 1], "amx")) kind = 2, i++;
    else if (!strcmp(argv[i], "--kind") && i + 1 < argc && !strcmp(argv[i + 1], "fma-avx2")) kind = 3, i++;
    else {
      fprintf(stderr, "usage: %s [--threads N] [--seconds S] [--kind fma|fma-avx2|bf16|amx]\n", argv[0]);
      return 2;
    }
  }
  if (threads < 1 || threads > 1024) threads = 1;
#if defined(__x86_64__) && defined(__GNUC__)
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    fprintf(stderr, "bench_peak: this CPU has no AVX2 + FMA\n");
    return 1;
  }
  use512 = __builtin_cpu_supports("avx512f") && kind != 3; /* fma-avx2: the AVX2 + FMA peak on any CPU */
  if (kind == 3) kind = 0;
  if (kind == 1 && !__builtin_cpu_supports("avx512bf16")) {
    fprintf(stderr, "bench_peak: this CPU has no AVX512-BF16\n");
    return 1;
  }
  if (kind == 2 && !sd_cpu_has_amx()) {
    fprintf(stderr, "bench_peak: this CPU (or the OS) gives no AMX-BF16\n");
    return 1;
  }
#else
  fprintf(stderr, "bench_peak: x86-64 only\n");
  return 1;
#endif
  const int lanes = use512 ? 16 : 8;
  /* FLOPs per loop iteration: 12 instructions of lanes×2 (FMA), lanes×4 (vdpbf16ps: two
   * products per lane) or 16·16·32·2 (tdpbf16ps) */
  const double per_iter = kind == 2 ? 12.0 * 16 * 16 * 32 * 2 : kind == 1 ? 12.0 * 16 * 4 : 12.0 * 2.0 * lanes;
  /* calibrate: iterations for about `seconds` on one thread */
  g_iters = 1L << 22;
  double t0 = now();
  worker(NULL);
  double t1 = now() - t0;
  g_iters = (long)(g_iters * seconds / (t1 > 1e-6 ? t1 : 1e-6));
  pthread_t *th = malloc(sizeof(pthread_t) * (size_t)threads);
  double *cpu = calloc((size_t)threads, sizeof(double));
  if (!th || !cpu) return 1;
  t0 = now();
  for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, worker, &cpu[i]);
  for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
  double dt = now() - t0, cpu_max = 0;
  for (int i = 0; i < threads; i++) cpu_max = cpu[i] > cpu_max ? cpu[i] : cpu_max;
  const double flop = per_iter * (double)g_iters;
  double gflops = flop * threads / dt / 1e9;
  /* per_core_cpu: one thread's FLOPs over its own CPU time: the core's peak even on a loaded
   * machine (time descheduled is not counted) */
  printf("impl=peak isa=%s threads=%d gflops=%.1f per_core=%.1f per_core_cpu=%.1f\n", kind == 2 ? "amx-bf16" : kind == 1 ? "avx512-bf16" : use512 ? "avx512" : "avx2+fma",
         threads, gflops, gflops / threads, cpu_max > 0 ? flop / cpu_max / 1e9 : 0.0);
  free(th);
  free(cpu);
  return 0;
}
