/* The oneDNN backend (Debian libdnnl-dev, C API) for convolutions, and for matrix products
 * in bf16.
 *
 * Activations stay float32 NCHW between ops (the models' one layout). A convolution call
 * reorders its input into the layout oneDNN's direct convolution wants (nChw8c on AVX2,
 * nChw16c on AVX-512; in bf16 when that precision is on), runs it, and reorders the output
 * back; those reorders are memory-bound and cost a few percent of the convolution. The
 * weights are packed into the convolution's layout once per layer call and kept while the
 * same weight is used again (the batch loops call each layer once per image), so a weight
 * is packed once per forward pass, not once per image; float16 weights stay float16 in
 * memory between passes.
 *
 * bf16 emulation (precision bf16 with ex->bf16_emulated, on CPUs without native bf16): the
 * fp32 primitives run on inputs and weights rounded to bf16 (ties to even). Products of
 * bf16 values are exact in fp32 and the sums are fp32, as in the native kernels, so the
 * images show bf16's effect; only the order of the sums differs.
 *
 * fp32 3×3 stride-1 convolutions may run oneDNN's Winograd F(4×4, 3×3) instead
 * (ex->conv_winograd; by default where the packed weight may be kept and the output is
 * large): fewer multiplications, weights 4× larger once transformed, results within a few
 * float32 roundings of the direct ones (tests/unit/test_ops_image.c, bench_precision --winograd).
 * oneDNN 2.6 has that kernel for AVX-512 only; safesd's own (core/ops_wino.c, chosen in
 * core/ops_image.c before this backend is called) takes the large layers on any CPU with AVX2,
 * faster and without the 4× weights, so this one runs on the rest.
 *
 * Primitives are created once per shape and cached (a small table, least recently used out).
 * oneDNN runs on its own OpenMP threads, set to the context's thread count before each
 * call. Its forward convolutions are deterministic for a given thread count.
 */
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/error.h"
#include "core/ops_internal.h"

#define N_ENT 128

typedef struct prim_ent {
  int used;
  int failed; /* oneDNN has no implementation: fall back without retrying */
  uint64_t tick;
  int64_t key[16];
  dnnl_primitive_t prim, rsrc, rdst, rwei;
  dnnl_memory_desc_t usrc_md, src_md, uwei_md, wei_md, dst_md, udst_md, bias_md;
  int src_same, dst_same;
} prim_ent;

typedef struct packed_w {
  const void *ptr; /* the weight's identity: its data pointer, and wbuf's generation if it is wbuf */
  uint64_t gen;
  const prim_ent *ent;
  dnnl_memory_desc_t md;
  void *buf;
  size_t cap;
  int valid;
} packed_w;

/* The persistent packed-weight cache: weights packed once into their kernel's layout and
 * kept (native bf16: always; fp32: within ex->pack_budget bytes, the most used first). One
 * entry per (weight, layout); entries with buf NULL only count uses of weights not kept. */
typedef struct wc_ent {
  const void *src; /* the weight's data (a stable view into a model file) */
  int64_t numel;
  int dtype;
  unsigned char edge[64]; /* its first and last 32 bytes when packed: a freed and reused
                             address with other values never hits */
  dnnl_memory_desc_t md;
  void *buf;
  size_t bytes;
  uint64_t uses;
} wc_ent;

typedef struct wcache {
  wc_ent *e;
  size_t n, cap;
  int32_t *idx; /* open addressing on src: entry index + 1, 0 empty */
  size_t hcap;
  size_t bytes; /* packed bytes kept */
} wcache;

struct sd_dnnl {
  dnnl_engine_t eng;
  dnnl_stream_t st;
  prim_ent ent[N_ENT];
  uint64_t tick;
  packed_w pw[2]; /* [0] convolutions, [1] matrix products: the weight packed last, when the
                     cache does not keep it */
  wcache wc;
  void *sbuf, *dbuf;
  size_t scap, dcap;
  float *ebuf, *ewbuf; /* bf16 emulation: rounded inputs, rounded weights (native bf16: a weight
                        * narrowed from the exec's scratch) */
  size_t ecap, ewcap;
};

static int dnnl_err(dnnl_status_t s, const char *what) {
  if (s == dnnl_unimplemented) return SD_E_UNSUPPORTED;
  if (s == dnnl_out_of_memory) return sd_fail(SD_E_NOMEM, "oneDNN: out of memory in %s", what);
  return sd_fail(SD_E_INTERNAL, "oneDNN: %s failed (status %d)", what, (int)s);
}

static void ent_clear(prim_ent *e) {
  if (e->prim) dnnl_primitive_destroy(e->prim);
  if (e->rsrc) dnnl_primitive_destroy(e->rsrc);
  if (e->rdst) dnnl_primitive_destroy(e->rdst);
  if (e->rwei) dnnl_primitive_destroy(e->rwei);
  memset(e, 0, sizeof *e);
}

static void wc_clear(wcache *c) {
  for (size_t i = 0; i < c->n; i++) free(c->e[i].buf);
  free(c->e);
  free(c->idx);
  memset(c, 0, sizeof *c);
}

void sd_dnnl_trim(struct sd_dnnl *d) {
  if (!d) return;
  wc_clear(&d->wc);
  for (int i = 0; i < 2; i++) {
    free(d->pw[i].buf);
    d->pw[i].buf = NULL;
    d->pw[i].cap = 0;
    d->pw[i].valid = 0;
  }
  free(d->sbuf);
  free(d->dbuf);
  free(d->ebuf);
  free(d->ewbuf);
  d->sbuf = d->dbuf = NULL;
  d->ebuf = d->ewbuf = NULL;
  d->scap = d->dcap = d->ecap = d->ewcap = 0;
}

void sd_dnnl_destroy(struct sd_dnnl *d) {
  if (!d) return;
  for (int i = 0; i < N_ENT; i++) ent_clear(&d->ent[i]);
  for (int i = 0; i < 2; i++) free(d->pw[i].buf);
  wc_clear(&d->wc);
  free(d->sbuf);
  free(d->dbuf);
  free(d->ebuf);
  free(d->ewbuf);
  if (d->st) dnnl_stream_destroy(d->st);
  if (d->eng) dnnl_engine_destroy(d->eng);
  free(d);
}

static int get_dnnl(sd_exec *ex, struct sd_dnnl **out) {
  if (!ex->dnnl) {
    struct sd_dnnl *d = calloc(1, sizeof *d);
    if (!d) return sd_fail(SD_E_NOMEM, "out of memory");
    if (dnnl_engine_create(&d->eng, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&d->st, d->eng, dnnl_stream_default_flags) != dnnl_success) {
      sd_dnnl_destroy(d);
      return sd_fail(SD_E_INTERNAL, "oneDNN: could not create the CPU engine");
    }
    ex->dnnl = d;
  }
  *out = ex->dnnl;
  return SD_OK;
}

int sd_dnnl_cpu_has_bf16(void) {
  const char *f = getenv("SAFESD_CPU_BF16");
  if (f && *f == '0') return 0;
  /* the ISA levels are bit sets in oneDNN 2.x: avx512_core_bf16 (0xe7) ⊂ avx512_core_amx */
  unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
  return (isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) == (unsigned)dnnl_cpu_isa_avx512_core_bf16;
}

/* Find the entry for key, or a free / least recently used one (cleared, with the key set). */
static prim_ent *lookup(struct sd_dnnl *d, const int64_t *key, int *found) {
  prim_ent *lru = NULL;
  d->tick++;
  for (int i = 0; i < N_ENT; i++) {
    prim_ent *e = &d->ent[i];
    if (e->used && !memcmp(e->key, key, sizeof e->key)) {
      e->tick = d->tick;
      *found = 1;
      return e;
    }
    if (!lru || !e->used || (lru->used && e->tick < lru->tick)) lru = e;
  }
  for (int i = 0; i < 2; i++)
    if (d->pw[i].ent == lru) d->pw[i].valid = 0;
  ent_clear(lru);
  memcpy(lru->key, key, sizeof lru->key);
  lru->used = 1;
  lru->tick = d->tick;
  *found = 0;
  return lru;
}

static int make_reorder(struct sd_dnnl *d, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                        dnnl_primitive_t *out) {
  dnnl_primitive_desc_t pd;
  dnnl_status_t st = dnnl_reorder_primitive_desc_create(&pd, from, d->eng, to, d->eng, NULL);
  if (st != dnnl_success) return dnnl_err(st, "reorder setup");
  st = dnnl_primitive_create(out, pd);
  dnnl_primitive_desc_destroy(pd);
  return st == dnnl_success ? SD_OK : dnnl_err(st, "reorder setup");
}

/* Complete an entry from its primitive descriptor: the layouts it wants and the reorders
 * from and to the plain user layouts. */
static int finish_entry(struct sd_dnnl *d, prim_ent *e, dnnl_primitive_desc_t pd) {
  e->src_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
  e->wei_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
  e->dst_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
  dnnl_status_t st = dnnl_primitive_create(&e->prim, pd);
  if (st != dnnl_success) return dnnl_err(st, "primitive setup");
  e->src_same = dnnl_memory_desc_equal(&e->src_md, &e->usrc_md);
  e->dst_same = dnnl_memory_desc_equal(&e->dst_md, &e->udst_md);
  int rc;
  if (!e->src_same && (rc = make_reorder(d, &e->usrc_md, &e->src_md, &e->rsrc))) return rc;
  if (!e->dst_same && (rc = make_reorder(d, &e->dst_md, &e->udst_md, &e->rdst))) return rc;
  return make_reorder(d, &e->uwei_md, &e->wei_md, &e->rwei);
}

/* Create the primitive of a new entry from its op descriptor (st: how initialising that
 * went). On failure the entry is cleared; when oneDNN has no implementation it stays in the
 * table marked failed, so the shape goes to the fallback without asking again. */
static int settle_entry(struct sd_dnnl *d, prim_ent *e, dnnl_status_t st, const void *op_desc, const char *what) {
  dnnl_primitive_desc_t pd = NULL;
  int rc;
  if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, op_desc, NULL, d->eng, NULL);
  if (st == dnnl_success) {
    rc = finish_entry(d, e, pd);
    dnnl_primitive_desc_destroy(pd);
  } else {
    rc = dnnl_err(st, what);
  }
  if (rc) {
    int64_t key[16];
    memcpy(key, e->key, sizeof key);
    ent_clear(e);
    if (rc == SD_E_UNSUPPORTED) {
      memcpy(e->key, key, sizeof key);
      e->used = e->failed = 1;
      e->tick = d->tick;
    }
  }
  return rc;
}

static int grow(void **buf, size_t *cap, size_t need) {
  if (need <= *cap) return SD_OK;
  free(*buf);
  *buf = NULL;
  *cap = 0;
  /* 64-byte alignment for the vector loads of the jit kernels */
  if (posix_memalign(buf, 64, need ? need : 64)) {
    *buf = NULL;
    return sd_fail(SD_E_NOMEM, "out of memory (%zu bytes of oneDNN scratch)", need);
  }
  *cap = need;
  return SD_OK;
}

static int run2(struct sd_dnnl *d, dnnl_primitive_t p, const dnnl_memory_desc_t *fmd, void *from,
                const dnnl_memory_desc_t *tmd, void *to) {
  dnnl_memory_t a = NULL, b = NULL;
  dnnl_status_t st = dnnl_memory_create(&a, fmd, d->eng, from);
  if (st == dnnl_success) st = dnnl_memory_create(&b, tmd, d->eng, to);
  if (st == dnnl_success) {
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, a}, {DNNL_ARG_TO, b}};
    st = dnnl_primitive_execute(p, d->st, 2, args);
    if (st == dnnl_success) st = dnnl_stream_wait(d->st);
  }
  if (a) dnnl_memory_destroy(a);
  if (b) dnnl_memory_destroy(b);
  return st == dnnl_success ? SD_OK : dnnl_err(st, "reorder");
}

/* dst = src rounded to the nearest bf16 (ties to even), kept as float32. */
static void round_bf16(const float *src, float *dst, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &src[i], 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u; /* not inf/nan */
    memcpy(&dst[i], &u, 4);
  }
}

/* The bf16 emulation's copy of n input values, rounded (in d->ebuf). */
static const float *emulated_input(struct sd_dnnl *d, const float *x, int64_t n) {
  if (grow((void **)&d->ebuf, &d->ecap, (size_t)n * sizeof(float))) return NULL;
  round_bf16(x, d->ebuf, n);
  return d->ebuf;
}

static size_t wc_slot(const wcache *c, const void *src) {
  uint64_t h = (uint64_t)(uintptr_t)src >> 4;
  h *= 0x9E3779B97F4A7C15ull;
  return (size_t)(h >> 20) & (c->hcap - 1);
}

/* Rebuild the index with room for at least 2·n entries. */
static int wc_reindex(wcache *c, size_t n) {
  size_t hcap = 64;
  while (hcap < 2 * n) hcap *= 2;
  int32_t *idx = calloc(hcap, sizeof *idx);
  if (!idx) return sd_fail(SD_E_NOMEM, "out of memory (packed-weight index)");
  free(c->idx);
  c->idx = idx;
  c->hcap = hcap;
  for (size_t i = 0; i < c->n; i++) {
    size_t h = wc_slot(c, c->e[i].src);
    while (c->idx[h]) h = (h + 1) & (hcap - 1);
    c->idx[h] = (int32_t)(i + 1);
  }
  return SD_OK;
}

static void edges(const sd_tensor *W, unsigned char out[64]) {
  size_t n = (size_t)sd_numel(W) * sd_dtype_size(W->dtype);
  memset(out, 0, 64);
  memcpy(out, W->data, n < 32 ? n : 32);
  if (n > 32) memcpy(out + 32, (const unsigned char *)W->data + (n >= 64 ? n - 32 : 32), n >= 64 ? 32 : n - 32);
}

/* The entry of (W, layout md), created (uses 0, nothing kept) if new; NULL when out of memory. */
static wc_ent *wc_get(wcache *c, const sd_tensor *W, const dnnl_memory_desc_t *md) {
  const int64_t numel = sd_numel(W);
  if (c->hcap) {
    for (size_t h = wc_slot(c, W->data); c->idx[h]; h = (h + 1) & (c->hcap - 1)) {
      wc_ent *e = &c->e[c->idx[h] - 1];
      if (e->src == W->data && e->numel == numel && e->dtype == (int)W->dtype && dnnl_memory_desc_equal(&e->md, md))
        return e;
    }
  }
  if (c->n == c->cap) {
    size_t cap = c->cap ? 2 * c->cap : 256;
    wc_ent *ne = realloc(c->e, cap * sizeof *ne);
    if (!ne) return NULL;
    c->e = ne;
    c->cap = cap;
  }
  wc_ent *e = &c->e[c->n++];
  memset(e, 0, sizeof *e);
  e->src = W->data;
  e->numel = numel;
  e->dtype = (int)W->dtype;
  e->md = *md;
  if (2 * c->n > c->hcap) {
    if (wc_reindex(c, c->n)) { c->n--; return NULL; }
  } else {
    size_t h = wc_slot(c, e->src);
    while (c->idx[h]) h = (h + 1) & (c->hcap - 1);
    c->idx[h] = (int32_t)c->n;
  }
  return e;
}

/* Whether to keep `need` more packed bytes for entry e: always in native bf16 (the packed
 * copy replaces the weight's file pages, which are dropped); in fp32 within the budget, making
 * room by dropping kept copies used fewer times than e (so the most reused stay; ties keep
 * what is kept, so a forward pass that uses every weight once does not churn). */
static int wc_admit(sd_exec *ex, wcache *c, const wc_ent *e, size_t need) {
  if (ex->precision == SD_PREC_BF16 && !ex->bf16_emulated) return 1;
  if (ex->pack_budget <= 0) return 0;
  const size_t budget = (size_t)ex->pack_budget;
  if (need > budget) return 0;
  size_t freeable = 0;
  for (size_t i = 0; i < c->n; i++)
    if (c->e[i].buf && c->e[i].uses < e->uses) freeable += c->e[i].bytes;
  if (c->bytes + need > budget + freeable) return 0;
  while (c->bytes + need > budget) { /* drop the least used kept copy */
    wc_ent *v = NULL;
    for (size_t i = 0; i < c->n; i++)
      if (c->e[i].buf && c->e[i].uses < e->uses && (!v || c->e[i].uses < v->uses)) v = &c->e[i];
    free(v->buf);
    v->buf = NULL;
    c->bytes -= v->bytes;
    v->bytes = 0;
  }
  return 1;
}

/* Memory for a kept packed weight: from 2 MiB up, aligned to a transparent huge page and
 * advised to use them over its whole 2 MiB blocks (the tail stays in small pages, so no more
 * is resident than the copy's bytes): one page fault per 2 MiB instead of 512 when the copy
 * is written, which is most of packing's cost in a virtual machine. free() releases it. */
#define PACKED_HUGE ((size_t)2 << 20)
static void *packed_alloc(size_t need) {
  void *p = NULL;
  if (need < PACKED_HUGE) return posix_memalign(&p, 64, need ? need : 64) ? NULL : p;
  if (posix_memalign(&p, PACKED_HUGE, need)) return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  (void)madvise(p, need / PACKED_HUGE * PACKED_HUGE, MADV_HUGEPAGE);
#endif
  return p;
}

/* Pack W (plain float32 [rows, ...] as the entry's uwei_md describes) into the entry's layout;
 * *out: the packed copy, from the cache when it keeps it, else packed into the scratch slot
 * of `which` (0 conv, 1 matmul) unless the same weight is already there. A weight packed into
 * the cache has its file pages dropped (ex->release). */
static int pack_weight(sd_exec *ex, struct sd_dnnl *d, int which, const prim_ent *e, const sd_tensor *W,
                       void **out) {
  packed_w *p = &d->pw[which];
  const void *ptr = W->data;
  const int transient = (const void *)ex->wbuf == ptr; /* a widened copy: never cached */
  uint64_t gen = transient ? ex->wbuf_gen : 0;
  wc_ent *ce = NULL;
  const int cache_on = !transient && ((ex->precision == SD_PREC_BF16 && !ex->bf16_emulated) || ex->pack_budget > 0);
  unsigned char edge[64];
  if (cache_on) {
    ce = wc_get(&d->wc, W, &e->wei_md);
    if (!ce) return sd_fail(SD_E_NOMEM, "out of memory (packed-weight cache)");
    ce->uses++;
    if (ce->buf) {
      edges(W, edge);
      if (!memcmp(edge, ce->edge, sizeof edge)) return *out = ce->buf, SD_OK;
      free(ce->buf); /* the address now holds other values */
      ce->buf = NULL;
      d->wc.bytes -= ce->bytes;
      ce->bytes = 0;
    }
  }
  if (p->valid && p->ptr == ptr && p->gen == gen && p->ent == e && dnnl_memory_desc_equal(&p->md, &e->wei_md))
    return *out = p->buf, SD_OK;
  /* native bf16: converted straight to bf16 (the entry's uwei_md is bf16), half the bytes of
   * a float32 copy for the reorder to read; otherwise widened to float32 */
  const int native = ex->precision == SD_PREC_BF16 && !ex->bf16_emulated;
  const size_t need = dnnl_memory_desc_get_size(&e->wei_md);
  const int keep = ce && wc_admit(ex, &d->wc, ce, need);
  /* a copy to keep is packed once, from file pages the load's check dropped: mapped back in
   * one call rather than a fault per page (a weight packed every pass reads the same pages
   * each time, and they stay mapped after the first) */
  if (keep) sd_prefault(W->data, (size_t)sd_numel(W) * sd_dtype_size(W->dtype));
  const void *w;
  if (native && transient) {
    /* the caller's float32 copy in ex->wbuf, which it uses again (the batch loops): narrowed
     * into the backend's own scratch, the copy left as it is */
    const int64_t n = sd_numel(W);
    int rc = grow((void **)&d->ewbuf, &d->ewcap, (size_t)n * sizeof(uint16_t));
    if (rc) return rc;
    sd_to_bf16((uint16_t *)(void *)d->ewbuf, W->data, W->dtype, (size_t)n);
    w = d->ewbuf;
  } else {
    w = native ? (const void *)sd_weight_bf16(ex, W) : (const void *)sd_weight_f32(ex, W);
  }
  if (!w) return SD_E_FORMAT;
  SD_PROF_BEGIN(ex);
  void *dst = NULL;
  if (keep) {
    if (!(dst = packed_alloc(need))) return sd_fail(SD_E_NOMEM, "out of memory (%zu bytes of packed weights)", need);
  } else {
    p->valid = 0;
    int rc = grow(&p->buf, &p->cap, need);
    if (rc) return rc;
    dst = p->buf;
  }
  int rc = SD_OK;
  if (ex->bf16_emulated) {
    int64_t n = sd_numel(W);
    if ((rc = grow((void **)&d->ewbuf, &d->ewcap, (size_t)n * sizeof(float))) == SD_OK) {
      round_bf16((const float *)w, d->ewbuf, n);
      w = d->ewbuf;
    }
  }
  if (rc == SD_OK) rc = run2(d, e->rwei, &e->uwei_md, (void *)w, &e->wei_md, dst);
  if (rc) {
    if (dst != p->buf) free(dst);
    return rc;
  }
  SD_PROF_END(ex, SD_OPC_WEIGHTS, 0);
  if (dst != p->buf) {
    ce->buf = dst;
    ce->bytes = need;
    edges(W, ce->edge);
    d->wc.bytes += need;
    if (ex->release) ex->release(ex->release_ctx, W->data, (size_t)sd_numel(W) * sd_dtype_size(W->dtype));
    *out = dst;
    return SD_OK;
  }
  p->ptr = ptr;
  p->gen = gen;
  p->ent = e;
  p->md = e->wei_md;
  p->valid = 1;
  *out = p->buf;
  return SD_OK;
}

/* Run entry e: x (plain) -> [reorder] -> primitive(weights = packed, bias) -> [reorder] -> y. */
static int run_entry(struct sd_dnnl *d, const prim_ent *e, void *wpacked, const float *x, const float *b,
                     float *y) {
  int rc;
  void *src = (void *)x, *dst = y;
  if (!e->src_same) {
    if ((rc = grow(&d->sbuf, &d->scap, dnnl_memory_desc_get_size(&e->src_md)))) return rc;
    if ((rc = run2(d, e->rsrc, &e->usrc_md, (void *)x, &e->src_md, d->sbuf))) return rc;
    src = d->sbuf;
  }
  if (!e->dst_same) {
    if ((rc = grow(&d->dbuf, &d->dcap, dnnl_memory_desc_get_size(&e->dst_md)))) return rc;
    dst = d->dbuf;
  }
  dnnl_memory_t ms = NULL, mw = NULL, mb = NULL, md = NULL;
  dnnl_status_t st = dnnl_memory_create(&ms, &e->src_md, d->eng, src);
  if (st == dnnl_success) st = dnnl_memory_create(&mw, &e->wei_md, d->eng, wpacked);
  if (st == dnnl_success && b) st = dnnl_memory_create(&mb, &e->bias_md, d->eng, (void *)b);
  if (st == dnnl_success) st = dnnl_memory_create(&md, &e->dst_md, d->eng, dst);
  if (st == dnnl_success) {
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, md}, {DNNL_ARG_BIAS, mb}};
    st = dnnl_primitive_execute(e->prim, d->st, b ? 4 : 3, args);
    if (st == dnnl_success) st = dnnl_stream_wait(d->st);
  }
  if (ms) dnnl_memory_destroy(ms);
  if (mw) dnnl_memory_destroy(mw);
  if (mb) dnnl_memory_destroy(mb);
  if (md) dnnl_memory_destroy(md);
  if (st != dnnl_success) return dnnl_err(st, "execute");
  if (!e->dst_same) return run2(d, e->rdst, &e->dst_md, d->dbuf, &e->udst_md, y);
  return SD_OK;
}

int sd_dnnl_conv2d(sd_exec *ex, const sd_conv2d_shape *s, int Cout, int kh, int kw, int Ho, int Wo,
                   const float *x, const sd_tensor *W, const float *b, float *y) {
  struct sd_dnnl *d;
  int rc = get_dnnl(ex, &d);
  if (rc) return rc;
  const int bf16 = ex->precision == SD_PREC_BF16 && !ex->bf16_emulated;
  /* Winograd in fp32 only (oneDNN has no bf16 one); the key holds the choice */
  const int wino = !bf16 && !ex->bf16_emulated && kh == 3 && kw == 3 && s->stride == 1 &&
                   (ex->conv_winograd == SD_WINO_ON ||
                    (ex->conv_winograd == SD_WINO_AUTO && ex->pack_budget > 0 && Ho * Wo >= SD_WINO_MIN_PIXELS));
  int64_t key[16] = {1, s->C, s->H, s->W, Cout, kh, kw, s->stride, s->pad_t, s->pad_l, s->pad_b, s->pad_r,
                     b != NULL, bf16, ex->bf16_emulated, wino};
  int found;
  prim_ent *e = lookup(d, key, &found);
  if (found && e->failed) return SD_E_UNSUPPORTED;
  if (!found) {
    dnnl_dims_t sdims = {1, s->C, s->H, s->W}, wdims = {Cout, s->C, kh, kw}, ddims = {1, Cout, Ho, Wo},
                bdims = {Cout};
    dnnl_dims_t strides = {s->stride, s->stride}, pl = {s->pad_t, s->pad_l}, pr = {s->pad_b, s->pad_r};
    dnnl_data_type_t dt = bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t smd, wmd, dmd;
    dnnl_memory_desc_init_by_tag(&e->usrc_md, 4, sdims, dnnl_f32, dnnl_nchw);
    dnnl_memory_desc_init_by_tag(&e->uwei_md, 4, wdims, bf16 ? dnnl_bf16 : dnnl_f32, dnnl_oihw);
    dnnl_memory_desc_init_by_tag(&e->udst_md, 4, ddims, dnnl_f32, dnnl_nchw);
    dnnl_memory_desc_init_by_tag(&e->bias_md, 1, bdims, dnnl_f32, dnnl_x);
    dnnl_memory_desc_init_by_tag(&smd, 4, sdims, dt, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&wmd, 4, wdims, dt, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&dmd, 4, ddims, dnnl_f32, dnnl_format_tag_any);
    dnnl_convolution_desc_t cd;
    dnnl_status_t st = dnnl_invalid_arguments;
    if (wino) { /* where oneDNN has no Winograd kernel for the shape or CPU: direct */
      dnnl_primitive_desc_t pd = NULL;
      st = dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_winograd, &smd, &wmd,
                                              b ? &e->bias_md : NULL, &dmd, strides, pl, pr);
      if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &cd, NULL, d->eng, NULL);
      if (pd) dnnl_primitive_desc_destroy(pd);
    }
    if (st != dnnl_success)
      st = dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &smd, &wmd,
                                              b ? &e->bias_md : NULL, &dmd, strides, pl, pr);
    if ((rc = settle_entry(d, e, st, &cd, "convolution setup"))) return rc;
  }
  omp_set_num_threads(ex->n_threads);
  void *wp;
  if ((rc = pack_weight(ex, d, 0, e, W, &wp))) return rc;
  if (ex->bf16_emulated && !(x = emulated_input(d, x, (int64_t)s->C * s->H * s->W))) return SD_E_NOMEM;
  return run_entry(d, e, wp, x, b, y);
}

int sd_dnnl_linear(sd_exec *ex, const float *x, int64_t M, int64_t K, int64_t N, const sd_tensor *W,
                   const float *b, float *y) {
  struct sd_dnnl *d;
  int rc = get_dnnl(ex, &d);
  if (rc) return rc;
  const int bf16 = ex->precision == SD_PREC_BF16 && !ex->bf16_emulated;
  int64_t key[16] = {2, M, K, N, b != NULL, bf16, ex->bf16_emulated};
  int found;
  prim_ent *e = lookup(d, key, &found);
  if (found && e->failed) return SD_E_UNSUPPORTED;
  if (!found) {
    dnnl_dims_t sdims = {M, K}, wdims = {K, N}, ddims = {M, N}, bdims = {1, N};
    dnnl_data_type_t dt = bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t smd, wmd, dmd;
    dnnl_memory_desc_init_by_tag(&e->usrc_md, 2, sdims, dnnl_f32, dnnl_ab);
    /* W[N,K] is Wᵀ[K,N] in ba; bf16 when native (pack_weight converts it so) */
    dnnl_memory_desc_init_by_tag(&e->uwei_md, 2, wdims, bf16 ? dnnl_bf16 : dnnl_f32, dnnl_ba);
    dnnl_memory_desc_init_by_tag(&e->udst_md, 2, ddims, dnnl_f32, dnnl_ab);
    dnnl_memory_desc_init_by_tag(&e->bias_md, 2, bdims, dnnl_f32, dnnl_ab);
    dnnl_memory_desc_init_by_tag(&smd, 2, sdims, dt, dnnl_ab);
    dnnl_memory_desc_init_by_tag(&wmd, 2, wdims, dt, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&dmd, 2, ddims, dnnl_f32, dnnl_ab);
    dnnl_matmul_desc_t md;
    dnnl_status_t st = dnnl_matmul_desc_init(&md, &smd, &wmd, b ? &e->bias_md : NULL, &dmd);
    if ((rc = settle_entry(d, e, st, &md, "matmul setup"))) return rc;
  }
  omp_set_num_threads(ex->n_threads);
  void *wp;
  if ((rc = pack_weight(ex, d, 1, e, W, &wp))) return rc;
  if (ex->bf16_emulated && !(x = emulated_input(d, x, M * K))) return SD_E_NOMEM;
  return run_entry(d, e, wp, x, b, y);
}
