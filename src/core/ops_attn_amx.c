/* Attention in bf16 with Intel AMX (AMX-TILE + AMX-BF16: `tdpbf16ps` for both products, fp32
 * accumulation, fp32 online softmax in AVX-512). x86-64 Linux only, chosen at run time
 * (sd_exec.use_amx, which needs the CPU's AMX, the kernel's XTILEDATA permission and
 * AVX512-BF16); the AVX-512 and AVX2 kernels (ops_attn_avx512.c, ops_attn_avx2.c) remain for
 * other CPUs, for causal masks and for fewer than AMX_MIN_KEYS keys (on a CPU with AMX in its
 * fp32 form: there `vdpbf16ps` runs no faster than fp32 FMAs, so the fp32 kernel wins).
 *
 * Flash attention with the queries along the tile rows. One task is one (batch, head, block
 * of QT = 32 queries = two tiles of 16 rows). Per step of KT = 32 keys:
 *   1. S = Q·Kᵀ into four 16×16 fp32 accumulator tiles (2 query tiles × 2 key tiles), the
 *      head dimension in chunks of 32 bf16. Q (scaled by scale·log2 e: scores in log2 units)
 *      is [32][Dq] bf16 per task; K is packed once per call as blocks of 16 keys in the
 *      tile unit's pair layout [Dq/2][16][2]. Dq = Dh rounded up to 32 (zeros): the matrix
 *      unit's work on the padding is cheap next to the softmax, which costs the same at any
 *      head size;
 *   2. the online softmax per query row on the stored scores, with the lazy reference of
 *      ops_attn_avx512.c: P = 2^(S - m) against the row's running reference m, which only
 *      moves (with a horizontal maximum, and the row's output and sum rescaled) when a score
 *      exceeds m by more than LAZY; P is written as bf16 rows [32][32], the A-tile layout;
 *   3. O += P·V, O fp32 [32][Dv] in memory (Dv = Dh rounded up to 16), loaded into tiles,
 *      accumulated and stored per 16 columns; V is packed once per call as key pairs
 *      [Sk/2][Dv][2], the B-tile layout.
 * Keys past Sk (the last step's padding) are masked to -inf before the softmax and are zero
 * in K and V. Every output value is computed by one thread in a fixed order, and whether a
 * reference moves depends on the data only, so results do not depend on the thread count.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/ops_internal.h"
#include "core/tensor.h"

#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/simd_avx512.h"

#define AMX __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma,avx512bf16,amx-tile,amx-bf16")))

#define QT 32      /* queries per task: two tiles of 16 rows */
#define KT 32      /* keys per step: two tiles of 16 */
#define LAZY 24.0f /* log2 units: P <= 2^24 between reference moves */
/* Fewer keys than this go to the AVX-512 fp32 kernel: measured on a Xeon with AMX (2 threads,
 * bench_ops attention --shape cross64: 4096 queries × 77 keys, head 40) it takes 3.2 ms where
 * this kernel's per-block setup makes it 4.5 ms; from 256 keys on this kernel is 3× faster. */
#define AMX_MIN_KEYS 128

/* 1 when this process may use AMX-BF16 tiles: CPUID says AMX-TILE and AMX-BF16, the OS
 * enabled the tile state (XCR0 bits 17 and 18), and Linux granted XTILEDATA
 * (arch_prctl ARCH_REQ_XCOMP_PERM, once per process; oneDNN asks the same). */
static int amx_probe(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
  if (!(d & (1u << 24)) || !(d & (1u << 22))) return 0; /* AMX-TILE, AMX-BF16 */
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0; /* OSXSAVE */
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & (3u << 17)) != (3u << 17)) return 0;
  return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
}

int sd_cpu_has_amx(void) {
  static atomic_int state = -1;
  int s = atomic_load(&state);
  if (s < 0) {
    s = amx_probe();
    atomic_store(&state, s);
  }
  return s;
}

/* The tile configuration: every tile 16 rows × 64 bytes (A: 16×32 bf16, B: 16 pairs × 16
 * columns × 2, C: 16×16 fp32). */
typedef struct {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} amx_cfg;

typedef struct {
  const sd_attn_shape *s;
  const float *q, *k, *v;
  float *out;
  int q_blocks, Dq, Dv;
  int64_t kblocks; /* blocks of 16 keys, even (whole steps of KT) */
  uint16_t *kp;    /* [B·H][kblocks][Dq/2][16][2] */
  uint16_t *vp;    /* [B·H][kblocks·8][Dv][2] */
  atomic_int failed;
} amx_job;

/* dst[0..npad) = bf16(src[0..n) · scale), zeros past n; npad a multiple of 16. */
AMX static void row_to_bf16(const float *src, int n, float scale, uint16_t *dst, int npad) {
  const __m512 sc = _mm512_set1_ps(scale);
  for (int d = 0; d < npad; d += 16) {
    const __mmask16 m = d >= n ? 0 : n - d >= 16 ? 0xffff : (__mmask16)((1u << (n - d)) - 1);
    const __m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, src + d), sc);
    _mm256_storeu_si256((__m256i *)(dst + d), (__m256i)_mm512_cvtneps_pbh(x));
  }
}

/* K and V of one (b, h) into the tile layouts, one task per (b, h). */
AMX static void pack_task(void *ctx, int64_t t0, int64_t t1, int tid) {
  (void)tid;
  amx_job *jb = ctx;
  const sd_attn_shape *s = jb->s;
  const int Dh = s->Dh, Dq = jb->Dq, Dv = jb->Dv;
  uint16_t row[1056]; /* Dq <= 1056 (Dh <= 1024) */
  for (int64_t t = t0; t < t1; t++) {
    const int b = (int)(t / s->H), h = (int)(t % s->H);
    const float *kr = jb->k + (int64_t)b * s->Sk * s->kv_stride + (int64_t)h * Dh;
    const float *vr = jb->v + (int64_t)b * s->Sk * s->kv_stride + (int64_t)h * Dh;
    uint16_t *kd = jb->kp + t * jb->kblocks * 16 * Dq, *vd = jb->vp + t * jb->kblocks * 16 * Dv;
    memset(kd, 0, (size_t)jb->kblocks * 16 * Dq * sizeof *kd);
    memset(vd, 0, (size_t)jb->kblocks * 16 * Dv * sizeof *vd);
    for (int j = 0; j < s->Sk; j++) {
      /* K: key j is column j%16 of block j/16: element (pair p, column, half) */
      row_to_bf16(kr + (int64_t)j * s->kv_stride, Dh, 1.0f, row, Dq);
      uint16_t *kb = kd + (int64_t)(j / 16) * 16 * Dq + 2 * (j % 16);
      for (int p = 0; p < Dq / 2; p++) kb[p * 32] = row[2 * p], kb[p * 32 + 1] = row[2 * p + 1];
      /* V: key j is half j%2 of key pair j/2: [pair][d][2] */
      row_to_bf16(vr + (int64_t)j * s->kv_stride, Dh, 1.0f, row, Dv);
      uint16_t *vb = vd + (int64_t)(j / 2) * 2 * Dv + (j % 2);
      for (int d = 0; d < Dh; d++) vb[2 * d] = row[d];
    }
  }
}

AMX static inline float hmax(__m512 x) { return _mm512_reduce_max_ps(x); }

AMX static void amx_task(void *ctx, int64_t t0, int64_t t1, int tid) {
  (void)tid;
  amx_job *jb = ctx;
  const sd_attn_shape *s = jb->s;
  const int Dh = s->Dh, Dq = jb->Dq, Dv = jb->Dv;
  /* qb [QT][Dq] bf16 | pb [QT][KT] bf16 | sb [QT][KT] | ob [QT][Dv] | lsum [QT][16] */
  const size_t nq = (size_t)QT * Dq / 2, np = (size_t)QT * KT / 2, ns = (size_t)QT * KT, no = (size_t)QT * Dv;
  float *buf = NULL;
  if (posix_memalign((void **)&buf, 64, (nq + np + ns + no + QT * 16) * sizeof(float))) {
    atomic_store(&jb->failed, 1);
    return;
  }
  uint16_t *qb = (uint16_t *)buf, *pb = (uint16_t *)(buf + nq);
  float *sb = buf + nq + np, *ob = sb + ns, *lsum = ob + no;
  float m[QT];
  amx_cfg cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int i = 0; i < 8; i++) cfg.colsb[i] = 64, cfg.rows[i] = 16;
  _tile_loadconfig(&cfg);
  const float qscale = s->scale * 1.44269504088896341f;
  const int64_t kstep = (int64_t)16 * Dq; /* elements per block of 16 keys */
  for (int64_t t = t0; t < t1; t++) {
    const int64_t bh = t / jb->q_blocks;
    const int i0 = (int)(t % jb->q_blocks) * QT;
    const int b = (int)(bh / s->H), h = (int)(bh % s->H);
    const int ni = s->Sq - i0 < QT ? s->Sq - i0 : QT;
    for (int i = 0; i < QT; i++) {
      if (i < ni)
        row_to_bf16(jb->q + ((int64_t)b * s->Sq + i0 + i) * s->q_stride + (int64_t)h * Dh, Dh, qscale,
                    qb + (size_t)i * Dq, Dq);
      else
        memset(qb + (size_t)i * Dq, 0, (size_t)Dq * sizeof *qb);
      m[i] = -INFINITY;
    }
    memset(pb, 0, np * sizeof(float));
    memset(ob, 0, no * sizeof(float));
    memset(lsum, 0, QT * 16 * sizeof(float));
    const uint16_t *kbh = jb->kp + bh * jb->kblocks * kstep;
    const uint16_t *vbh = jb->vp + bh * jb->kblocks * 16 * Dv;
    for (int j0 = 0; j0 < s->Sk; j0 += KT) {
      const int nj = s->Sk - j0 < KT ? s->Sk - j0 : KT;
      /* 1. S = Q·Kᵀ */
      const uint16_t *k0 = kbh + (int64_t)(j0 / 16) * kstep, *k1 = k0 + kstep;
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int c = 0; c < Dq; c += 32) {
        _tile_loadd(4, qb + c, Dq * 2);
        _tile_loadd(5, qb + (size_t)16 * Dq + c, Dq * 2);
        _tile_loadd(6, k0 + (size_t)c * 16, 64);
        _tile_loadd(7, k1 + (size_t)c * 16, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
      _tile_stored(0, sb, KT * 4);
      _tile_stored(1, sb + 16, KT * 4);
      _tile_stored(2, sb + 16 * KT, KT * 4);
      _tile_stored(3, sb + 16 * KT + 16, KT * 4);
      /* 2. online softmax per row; P as bf16 rows */
      const __mmask16 v0 = nj >= 16 ? 0xffff : (__mmask16)((1u << nj) - 1);
      const __mmask16 v1 = nj >= 32 ? 0xffff : nj <= 16 ? 0 : (__mmask16)((1u << (nj - 16)) - 1);
      const __m512 ninf = _mm512_set1_ps(-INFINITY), lo = _mm512_set1_ps(-200.0f);
      for (int r = 0; r < ni; r++) {
        const __m512 s0 = _mm512_mask_mov_ps(ninf, v0, _mm512_load_ps(sb + (size_t)r * KT));
        const __m512 s1 = _mm512_mask_mov_ps(ninf, v1, _mm512_load_ps(sb + (size_t)r * KT + 16));
        const __m512 lim = _mm512_set1_ps(m[r] + LAZY);
        if (_mm512_cmp_ps_mask(s0, lim, _CMP_GT_OQ) | _mm512_cmp_ps_mask(s1, lim, _CMP_GT_OQ)) {
          const float mnew = hmax(_mm512_max_ps(s0, s1));
          if (m[r] > -INFINITY) { /* rescale this row's output and sum */
            const __m512 corr = _mm512_set1_ps(exp2f(m[r] - mnew));
            float *o = ob + (size_t)r * Dv;
            for (int d = 0; d < Dv; d += 16) _mm512_store_ps(o + d, _mm512_mul_ps(_mm512_load_ps(o + d), corr));
            _mm512_store_ps(lsum + r * 16, _mm512_mul_ps(_mm512_load_ps(lsum + r * 16), corr));
          }
          m[r] = mnew;
        }
        const __m512 mr = _mm512_set1_ps(m[r]);
        const __m512 p0 = sd_exp2_512_bf16(_mm512_max_ps(_mm512_sub_ps(s0, mr), lo));
        const __m512 p1 = sd_exp2_512_bf16(_mm512_max_ps(_mm512_sub_ps(s1, mr), lo));
        _mm512_store_ps(lsum + r * 16, _mm512_add_ps(_mm512_load_ps(lsum + r * 16), _mm512_add_ps(p0, p1)));
        _mm512_store_si512(pb + (size_t)r * KT, (__m512i)_mm512_cvtne2ps_pbh(p1, p0));
      }
      /* 3. O += P·V */
      _tile_loadd(4, pb, KT * 2);
      _tile_loadd(5, pb + 16 * KT, KT * 2);
      const uint16_t *vb = vbh + (int64_t)(j0 / 2) * 2 * Dv;
      for (int n = 0; n < Dv; n += 16) {
        _tile_loadd(0, ob + n, Dv * 4);
        _tile_loadd(1, ob + (size_t)16 * Dv + n, Dv * 4);
        _tile_loadd(6, vb + 2 * n, Dv * 4);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 5, 6);
        _tile_stored(0, ob + n, Dv * 4);
        _tile_stored(1, ob + (size_t)16 * Dv + n, Dv * 4);
      }
    }
    for (int i = 0; i < ni; i++) {
      const float l = _mm512_reduce_add_ps(_mm512_load_ps(lsum + i * 16));
      const float inv = l > 0 ? 1.0f / l : 0.0f;
      float *o = jb->out + ((int64_t)b * s->Sq + i0 + i) * s->out_stride + (int64_t)h * Dh;
      const float *a = ob + (size_t)i * Dv;
      for (int d = 0; d < Dh; d++) o[d] = a[d] * inv;
    }
  }
  _tile_release();
  free(buf);
}

int sd_attention_amx(sd_exec *ex, const sd_attn_shape *s, const float *q, const float *k, const float *v,
                     float *out) {
  if (!ex->use_amx || ex->precision != SD_PREC_BF16 || ex->bf16_emulated) return SD_E_UNSUPPORTED;
  if (s->causal || s->Dh > 1024 || s->Sk < AMX_MIN_KEYS) return SD_E_UNSUPPORTED;
  amx_job j = {s, q, k, v, out, (s->Sq + QT - 1) / QT, (s->Dh + 31) / 32 * 32, (s->Dh + 15) / 16 * 16,
               ((int64_t)s->Sk + KT - 1) / KT * 2, NULL, NULL, 0};
  atomic_init(&j.failed, 0);
  const int64_t bh = (int64_t)s->B * s->H;
  j.kp = malloc((size_t)bh * j.kblocks * 16 * j.Dq * sizeof(uint16_t));
  j.vp = malloc((size_t)bh * j.kblocks * 16 * j.Dv * sizeof(uint16_t));
  if (!j.kp || !j.vp) {
    free(j.kp);
    free(j.vp);
    return sd_fail(SD_E_NOMEM, "attention: out of memory for the bf16 keys and values");
  }
  sd_parallel_for(ex->pool, bh, 1, pack_task, &j);
  sd_parallel_for(ex->pool, bh * j.q_blocks, 1, amx_task, &j);
  free(j.kp);
  free(j.vp);
  if (atomic_load(&j.failed)) return sd_fail(SD_E_NOMEM, "attention: out of memory for tile scratch");
  return SD_OK;
}

#else
int sd_cpu_has_amx(void) { return 0; }
int sd_attention_amx(sd_exec *ex, const sd_attn_shape *s, const float *q, const float *k, const float *v,
                     float *out) {
  (void)ex, (void)s, (void)q, (void)k, (void)v, (void)out;
  return SD_E_UNSUPPORTED;
}
#endif
