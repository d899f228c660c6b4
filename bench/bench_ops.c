/* Benchmark (not a test): single ops at Stable Diffusion shapes on a chosen kernel path, for
 * comparing the dispatch paths of the op layer side by side.
 *
 *   bench_ops attention [--path P] [--shape S] [--threads N] [--repeat R]
 *   bench_ops linear    [--path P] [--shape S] [--threads N] [--repeat R]
 *
 * attention shapes (batch 1, SD 1.x unless named): self64 (8 heads × 4096 tokens, head 40),
 * self32 (8 × 1024, head 80), self16 (8 × 256, head 160), cross64 (4096 queries × 77 keys,
 * head 40), sd2self64 (5 × 4096, head 64), vae (1 × 4096, head 512), clip (12 × 77 causal,
 * head 64); "all" runs each.
 * linear shapes: M×K×N of the UNet's products at 64×64 (tok320: 4096×320×320, ff320:
 * 4096×320×2560, ff320b: 4096×1280×320), 32×32 (tok640: 1024×640×640), 16×16 (tok1280:
 * 256×1280×1280), ctx (77×768×320); the feed-forward row chunks of an SD 1.5 pass (ff64c:
 * 1365×320×2560, ff64cb: 1365×1280×320, ff32c: 341×640×5120, ff32cb: 341×2560×640, ff16:
 * 256×1280×10240, ff16b: 256×5120×1280) and the time embedding's (temb: 1×1280×1280); "all"
 * runs each.
 * Paths: portable, avx2, avx512, bf16 (attention: AVX-512 kernels in bf16; linear: oneDNN
 * bf16), amx (attention: the AMX-BF16 kernel; linear: oneDNN bf16, which uses AMX itself), blas (linear: OpenBLAS sgemm), dnnl (linear: oneDNN fp32), own (linear: safesd's AVX2 kernel).
 *
 * Prints one "op=... path=... shape=... best_s=... median_s=... best_cpu_s=... gflops=..."
 * line per shape. On a loaded machine compare the best of R runs at --threads 1, and its
 * CPU time (gflops_cpu: FLOPs over the best CPU time, times the thread count). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/ops.h"
#include "core/tensor.h"
#include "bench_common.h"

typedef struct { const char *name; int H, Sq, Sk, Dh, causal; } att_shape;
static const att_shape att_shapes[] = {
    {"self64", 8, 4096, 4096, 40, 0}, {"self32", 8, 1024, 1024, 80, 0}, {"self16", 8, 256, 256, 160, 0},
    {"cross64", 8, 4096, 77, 40, 0},  {"sd2self64", 5, 4096, 4096, 64, 0}, {"vae", 1, 4096, 4096, 512, 0},
    {"clip", 12, 77, 77, 64, 1},
};
typedef struct { const char *name; int M, K, N; } lin_shape;
static const lin_shape lin_shapes[] = {
    {"tok320", 4096, 320, 320},   {"ff320", 4096, 320, 2560},    {"ff320b", 4096, 1280, 320},
    {"tok640", 1024, 640, 640},   {"tok1280", 256, 1280, 1280}, {"ctx", 77, 768, 320},
    {"ff64c", 1365, 320, 2560},   {"ff64cb", 1365, 1280, 320},  {"ff32c", 341, 640, 5120},
    {"ff32cb", 341, 2560, 640},   {"ff16", 256, 1280, 10240},   {"ff16b", 256, 5120, 1280},
    {"temb", 1, 1280, 1280},
};

/* Set the context's dispatch for a path name; 1 if this CPU runs it. */
static int set_path(sd_exec *ex, const char *path, int op_linear) {
  if (!strcmp(path, "portable")) {
    ex->use_avx2 = 0;
    ex->backend = SD_BACKEND_BLAS;
    return 1;
  }
  if (!strcmp(path, "avx2")) { ex->use_avx512 = 0; return ex->use_avx2; }
  if (!strcmp(path, "avx512")) return ex->use_avx512;
  if (!strcmp(path, "blas")) {
    ex->backend = SD_BACKEND_BLAS;
    ex->matmul_dnnl = ex->matmul_own = 0;
    return 1;
  }
  if (!strcmp(path, "dnnl")) { ex->matmul_dnnl = 1; return op_linear; }
  if (!strcmp(path, "own")) {
    ex->matmul_dnnl = 0;
    ex->matmul_own = 1;
    return op_linear && ex->use_avx2;
  }
  if (!strcmp(path, "bf16")) { /* attention: the vdpbf16ps kernels, not AMX */
    ex->use_amx = 0;
    return sd_exec_set_precision(ex, SD_PREC_BF16) == SD_OK && !ex->bf16_emulated;
  }
  if (!strcmp(path, "amx")) return ex->use_amx && sd_exec_set_precision(ex, SD_PREC_BF16) == SD_OK;
  return -1;
}

/* t: repeat wall times, then repeat CPU times */
static void report(const char *op, const char *path, const char *shape, int threads, double *t, int repeat,
                   double flops) {
  qsort(t, (size_t)repeat, sizeof *t, bench_cmp_double);
  qsort(t + repeat, (size_t)repeat, sizeof *t, bench_cmp_double);
  printf("op=%s path=%s shape=%s threads=%d best_s=%.5f median_s=%.5f best_cpu_s=%.5f gflop=%.3f gflops=%.1f "
         "gflops_cpu=%.1f\n",
         op, path, shape, threads, t[0], t[repeat / 2], t[repeat], flops / 1e9, flops / 1e9 / t[0],
         flops / 1e9 / t[repeat] * threads);
  fflush(stdout);
}

static int bench_attention(sd_exec *ex, const att_shape *a, const char *path, int repeat) {
  const int64_t C = (int64_t)a->H * a->Dh;
  float *q = malloc(sizeof(float) * a->Sq * C), *k = malloc(sizeof(float) * a->Sk * C);
  float *v = malloc(sizeof(float) * a->Sk * C), *o = malloc(sizeof(float) * a->Sq * C);
  double *t = malloc(sizeof(double) * 2 * repeat);
  if (!q || !k || !v || !o || !t) { fprintf(stderr, "out of memory\n"); return 1; }
  bench_fill(q, (size_t)(a->Sq * C), 1);
  bench_fill(k, (size_t)(a->Sk * C), 2);
  bench_fill(v, (size_t)(a->Sk * C), 3);
  sd_attn_shape s = {1, a->H, a->Sq, a->Sk, a->Dh, C, C, C, a->causal, 0.125f};
  int rc = sd_op_attention(ex, &s, q, k, v, o); /* warm-up */
  for (int r = 0; r < repeat && !rc; r++) {
    double t0 = bench_now(), c0 = bench_cpu_now();
    rc = sd_op_attention(ex, &s, q, k, v, o);
    t[r] = bench_now() - t0;
    t[repeat + r] = bench_cpu_now() - c0;
  }
  if (rc) { fprintf(stderr, "error: %s\n", sd_errmsg()); return 1; }
  report("attention", path, a->name, ex->n_threads, t, repeat, 4.0 * a->H * (double)a->Sq * a->Sk * a->Dh);
  free(q); free(k); free(v); free(o); free(t);
  return 0;
}

static int bench_linear(sd_exec *ex, const lin_shape *l, const char *path, int repeat) {
  float *x = malloc(sizeof(float) * l->M * l->K), *y = malloc(sizeof(float) * l->M * l->N);
  uint16_t *w = malloc(sizeof(uint16_t) * l->N * l->K);
  float *wf = malloc(sizeof(float) * l->N * l->K), *b = malloc(sizeof(float) * l->N);
  double *t = malloc(sizeof(double) * 2 * repeat);
  if (!x || !y || !w || !wf || !b || !t) { fprintf(stderr, "out of memory\n"); return 1; }
  bench_fill(x, (size_t)l->M * l->K, 1);
  bench_fill(wf, (size_t)l->N * l->K, 2);
  bench_fill(b, (size_t)l->N, 3);
  sd_from_f32(w, SD_F16, wf, (size_t)l->N * l->K); /* stored as SD checkpoints store it */
  int64_t shp[2] = {l->N, l->K};
  sd_tensor W = sd_tensor_make(SD_F16, 2, shp, w);
  int rc = sd_op_linear(ex, x, l->M, l->K, &W, b, y);
  for (int r = 0; r < repeat && !rc; r++) {
    double t0 = bench_now(), c0 = bench_cpu_now();
    rc = sd_op_linear(ex, x, l->M, l->K, &W, b, y);
    t[r] = bench_now() - t0;
    t[repeat + r] = bench_cpu_now() - c0;
  }
  if (rc) { fprintf(stderr, "error: %s\n", sd_errmsg()); return 1; }
  report("linear", path, l->name, ex->n_threads, t, repeat, 2.0 * l->M * (double)l->K * l->N);
  free(x); free(y); free(w); free(wf); free(b); free(t);
  return 0;
}

int main(int argc, char **argv) {
  sd_threads_setup(argv); /* the same OpenMP waits as the safesd program */
  if (argc < 2 || (strcmp(argv[1], "attention") && strcmp(argv[1], "linear"))) {
    fprintf(stderr, "usage: %s attention|linear [--path P] [--shape S|all] [--threads N] [--repeat R]\n", argv[0]);
    return 2;
  }
  const int lin = !strcmp(argv[1], "linear");
  const char *path = lin ? "blas" : "avx512", *shape = "all";
  int threads = 1, repeat = 5;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--path") && i + 1 < argc) path = argv[++i];
    else if (!strcmp(argv[i], "--shape") && i + 1 < argc) shape = argv[++i];
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
    else { fprintf(stderr, "unknown argument %s\n", argv[i]); return 2; }
  }
  if (repeat < 1 || repeat > 10000) repeat = 5;
  sd_exec *ex;
  if (sd_exec_create(threads, &ex)) { fprintf(stderr, "error: %s\n", sd_errmsg()); return 1; }
  int ok = set_path(ex, path, lin);
  if (ok < 0) { fprintf(stderr, "unknown --path %s\n", path); return 2; }
  if (!ok) { fprintf(stderr, "this CPU (or build) cannot run path %s\n", path); return 1; }
  if (lin && !strcmp(path, "blas")) ex->matmul_dnnl = 0;
  int found = 0, rc = 0;
  if (lin) {
    for (size_t i = 0; i < sizeof lin_shapes / sizeof *lin_shapes && !rc; i++)
      if (!strcmp(shape, "all") || !strcmp(shape, lin_shapes[i].name)) found = 1, rc = bench_linear(ex, &lin_shapes[i], path, repeat);
  } else {
    for (size_t i = 0; i < sizeof att_shapes / sizeof *att_shapes && !rc; i++)
      if (!strcmp(shape, "all") || !strcmp(shape, att_shapes[i].name)) found = 1, rc = bench_attention(ex, &att_shapes[i], path, repeat);
  }
  if (!found) { fprintf(stderr, "unknown --shape %s\n", shape); return 2; }
  sd_exec_destroy(ex);
  return rc;
}
