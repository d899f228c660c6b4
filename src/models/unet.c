#include "models/unet.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/error.h"

#define TR_TOKENS 4096 /* a transformer processes whole images, up to this many tokens at once */
#define FF_MIN_ROWS 256 /* smallest feed-forward row chunk */
#define TR_GN_EPS 1e-6f
#define LN_EPS 1e-5f

/* ---- weights -------------------------------------------------------------------------- */

typedef struct { const sd_tensor *w; float *b; } lin_t; /* a conv or linear: weight (+ bias) */

typedef struct {
  int cin, cout;
  float *n1g, *n1b, *n2g, *n2b;
  lin_t conv1, conv2, temb, shortcut; /* shortcut.w NULL when cin == cout */
} resnet_t;

typedef struct {
  float *lng[3], *lnb[3];
  const sd_tensor *q1, *k1, *v1, *q2, *k2, *v2;
  lin_t o1, o2, ff1, ff2;
} tblock_t;

typedef struct {
  int C, heads, dh;
  float *gng, *gnb;
  lin_t proj_in, proj_out;
  tblock_t *blk;
  int nblk;
} xformer_t;

typedef struct {
  int cout, nres;
  resnet_t *res;
  xformer_t *att; /* NULL, or one per resnet */
  lin_t sample;   /* downsampler / upsampler conv; w NULL if none */
} block_t;

struct sd_unet {
  sd_unet_config cfg;
  lin_t conv_in, conv_out, time1, time2;
  float *nog, *nob;
  block_t down[SD_MAX_LEVELS], up[SD_MAX_LEVELS];
  resnet_t mid_res[2];
  xformer_t mid_att;
  int mid_has_att;
  sd_unet_debug_fn dbg;
  void *dbg_user;
  float **owned; /* every float32 copy made at creation */
  size_t n_owned, cap_owned;
};

typedef struct {
  sd_unet *u;
  const sd_model_source *m;
  char name[192];
} loader;

/* snprintf for tensor names; they are short, and one that would not fit is cut (the lookup
 * then fails with the cut name, which is an error message, not an overflow). */
static void fmt(char *dst, size_t cap, const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  vsnprintf(dst, cap, f, ap);
  va_end(ap);
}

static const char *nm(loader *L, const char *prefix, const char *suffix) {
  fmt(L->name, sizeof L->name, "%s%s", prefix, suffix);
  return L->name;
}

static int get_t(loader *L, const char *prefix, const char *suffix, int ndim, int64_t d0, int64_t d1, int64_t d2,
                 int64_t d3, const sd_tensor **out) {
  int64_t shape[4] = {d0, d1, d2, d3};
  return sd_model_get(L->m, SD_COMP_UNET, nm(L, prefix, suffix), ndim, shape, out);
}

static int get_v(loader *L, const char *prefix, const char *suffix, int64_t n, float **out) {
  const sd_tensor *t;
  int rc = get_t(L, prefix, suffix, 1, n, 0, 0, 0, &t);
  if (rc) return rc;
  sd_unet *u = L->u;
  if (u->n_owned == u->cap_owned) {
    size_t cap = u->cap_owned ? 2 * u->cap_owned : 256;
    float **p = realloc(u->owned, cap * sizeof *p);
    if (!p) return sd_fail(SD_E_NOMEM, "out of memory");
    u->owned = p;
    u->cap_owned = cap;
  }
  *out = sd_weight_dup_f32(t);
  if (!*out) return SD_E_NOMEM;
  u->owned[u->n_owned++] = *out;
  return SD_OK;
}

/* conv weight [o, i, k, k] + bias [o] */
static int get_conv(loader *L, const char *prefix, const char *what, int64_t o, int64_t i, int k, lin_t *out) {
  char p[192];
  fmt(p, sizeof p, "%s%s.", prefix, what);
  int rc = get_t(L, p, "weight", 4, o, i, k, k, &out->w);
  return rc ? rc : get_v(L, p, "bias", o, &out->b);
}

/* linear weight [o, i] (+ bias [o] when bias) */
static int get_lin(loader *L, const char *prefix, const char *what, int64_t o, int64_t i, int bias, lin_t *out) {
  char p[192];
  fmt(p, sizeof p, "%s%s.", prefix, what);
  int rc = get_t(L, p, "weight", 2, o, i, 0, 0, &out->w);
  if (rc || !bias) return rc;
  return get_v(L, p, "bias", o, &out->b);
}

static int get_norm(loader *L, const char *prefix, const char *what, int64_t n, float **g, float **b) {
  char p[192];
  fmt(p, sizeof p, "%s%s.", prefix, what);
  int rc = get_v(L, p, "weight", n, g);
  return rc ? rc : get_v(L, p, "bias", n, b);
}

static int load_resnet(loader *L, const char *prefix, int cin, int cout, resnet_t *r) {
  const int T = L->u->cfg.time_embed_dim;
  r->cin = cin, r->cout = cout;
  int rc;
  if ((rc = get_norm(L, prefix, "norm1", cin, &r->n1g, &r->n1b)) ||
      (rc = get_conv(L, prefix, "conv1", cout, cin, 3, &r->conv1)) ||
      (rc = get_lin(L, prefix, "time_emb_proj", cout, T, 1, &r->temb)) ||
      (rc = get_norm(L, prefix, "norm2", cout, &r->n2g, &r->n2b)) ||
      (rc = get_conv(L, prefix, "conv2", cout, cout, 3, &r->conv2)))
    return rc;
  if (cin != cout && (rc = get_conv(L, prefix, "conv_shortcut", cout, cin, 1, &r->shortcut))) return rc;
  return SD_OK;
}

static int load_proj(loader *L, const char *prefix, const char *what, int C, lin_t *out) {
  if (L->u->cfg.use_linear_projection) return get_lin(L, prefix, what, C, C, 1, out);
  return get_conv(L, prefix, what, C, C, 1, out);
}

static int load_xformer(loader *L, const char *prefix, int level, xformer_t *x) {
  const sd_unet_config *c = &L->u->cfg;
  const int C = c->block_out_channels[level], X = c->cross_attention_dim, F = 4 * C;
  x->C = C, x->heads = c->heads[level], x->dh = c->head_dim[level];
  if (x->heads < 1 || x->dh < 1 || x->heads * x->dh != C)
    return sd_fail(SD_E_FORMAT, "%s: %d heads x %d head dim != %d channels", prefix, x->heads, x->dh, C);
  int rc;
  if ((rc = get_norm(L, prefix, "norm", C, &x->gng, &x->gnb)) || (rc = load_proj(L, prefix, "proj_in", C, &x->proj_in)) ||
      (rc = load_proj(L, prefix, "proj_out", C, &x->proj_out)))
    return rc;
  x->nblk = c->transformer_layers;
  x->blk = calloc((size_t)x->nblk, sizeof *x->blk);
  if (!x->blk) return sd_fail(SD_E_NOMEM, "out of memory");
  for (int t = 0; t < x->nblk; t++) {
    tblock_t *b = &x->blk[t];
    char p[192];
    fmt(p, sizeof p, "%stransformer_blocks.%d.", prefix, t);
    lin_t q1, k1, v1, q2, k2, v2;
    if ((rc = get_norm(L, p, "norm1", C, &b->lng[0], &b->lnb[0])) ||
        (rc = get_norm(L, p, "norm2", C, &b->lng[1], &b->lnb[1])) ||
        (rc = get_norm(L, p, "norm3", C, &b->lng[2], &b->lnb[2])) || (rc = get_lin(L, p, "attn1.to_q", C, C, 0, &q1)) ||
        (rc = get_lin(L, p, "attn1.to_k", C, C, 0, &k1)) || (rc = get_lin(L, p, "attn1.to_v", C, C, 0, &v1)) ||
        (rc = get_lin(L, p, "attn1.to_out.0", C, C, 1, &b->o1)) || (rc = get_lin(L, p, "attn2.to_q", C, C, 0, &q2)) ||
        (rc = get_lin(L, p, "attn2.to_k", C, X, 0, &k2)) || (rc = get_lin(L, p, "attn2.to_v", C, X, 0, &v2)) ||
        (rc = get_lin(L, p, "attn2.to_out.0", C, C, 1, &b->o2)) ||
        (rc = get_lin(L, p, "ff.net.0.proj", 2 * F, C, 1, &b->ff1)) || (rc = get_lin(L, p, "ff.net.2", C, F, 1, &b->ff2)))
      return rc;
    b->q1 = q1.w, b->k1 = k1.w, b->v1 = v1.w, b->q2 = q2.w, b->k2 = k2.w, b->v2 = v2.w;
  }
  return SD_OK;
}

static void free_block(block_t *b) {
  if (b->att) {
    for (int j = 0; j < b->nres; j++) free(b->att[j].blk);
    free(b->att);
  }
  free(b->res);
}

void sd_unet_free(sd_unet *u) {
  if (!u) return;
  for (int i = 0; i < SD_MAX_LEVELS; i++) free_block(&u->down[i]), free_block(&u->up[i]);
  free(u->mid_att.blk);
  for (size_t i = 0; i < u->n_owned; i++) free(u->owned[i]);
  free(u->owned);
  free(u);
}

static int alloc_block(block_t *b, int nres, int att) {
  b->nres = nres;
  b->res = calloc((size_t)nres, sizeof *b->res);
  if (att) b->att = calloc((size_t)nres, sizeof *b->att);
  if (!b->res || (att && !b->att)) return sd_fail(SD_E_NOMEM, "out of memory");
  return SD_OK;
}

int sd_unet_create(const sd_model_source *m, sd_unet **out) {
  *out = NULL;
  int rc = sd_model_need(m, SD_COMP_UNET);
  if (rc) return rc;
  const sd_unet_config *cp = sd_model_unet_config(m);
  if (!cp) return sd_fail(SD_E_FORMAT, "unet: the model source has no UNet configuration");
  sd_unet *u = calloc(1, sizeof *u);
  if (!u) return sd_fail(SD_E_NOMEM, "out of memory");
  u->cfg = *cp;
  const sd_unet_config *c = &u->cfg;
  loader L = {u, m, {0}};
  const int N = c->n_levels, NL = c->layers_per_block;
  if (N < 1 || N > SD_MAX_LEVELS || NL < 1 || NL > 64 || c->in_channels < 1 || c->out_channels < 1 ||
      c->norm_num_groups < 1 || c->time_embed_in < 1 || c->time_embed_dim < 1 || c->transformer_layers < 1 ||
      c->cross_attention_dim < 1 || !(c->norm_eps > 0)) {
    rc = sd_fail(SD_E_FORMAT, "inconsistent configuration (%d levels, %d layers per block)", N, NL);
    goto fail;
  }
  for (int i = 0; i < N; i++)
    if (c->block_out_channels[i] < 1 || c->block_out_channels[i] % c->norm_num_groups) {
      rc = sd_fail(SD_E_FORMAT, "level %d: %d channels are not a multiple of %d GroupNorm groups", i,
                   c->block_out_channels[i], c->norm_num_groups);
      goto fail;
    }
  const int C0 = c->block_out_channels[0], CN = c->block_out_channels[N - 1], T = c->time_embed_dim;
  char p[128];
  if ((rc = get_conv(&L, "", "conv_in", C0, c->in_channels, 3, &u->conv_in)) ||
      (rc = get_lin(&L, "", "time_embedding.linear_1", T, c->time_embed_in, 1, &u->time1)) ||
      (rc = get_lin(&L, "", "time_embedding.linear_2", T, T, 1, &u->time2)) ||
      (rc = get_norm(&L, "", "conv_norm_out", C0, &u->nog, &u->nob)) ||
      (rc = get_conv(&L, "", "conv_out", c->out_channels, C0, 3, &u->conv_out)))
    goto fail;
  int prev = C0;
  for (int i = 0; i < N; i++) {
    block_t *b = &u->down[i];
    const int C = c->block_out_channels[i];
    b->cout = C;
    if ((rc = alloc_block(b, NL, c->down_has_attn[i]))) goto fail;
    for (int j = 0; j < NL; j++) {
      fmt(p, sizeof p, "down_blocks.%d.resnets.%d.", i, j);
      if ((rc = load_resnet(&L, p, j == 0 ? prev : C, C, &b->res[j]))) goto fail;
      if (b->att) {
        fmt(p, sizeof p, "down_blocks.%d.attentions.%d.", i, j);
        if ((rc = load_xformer(&L, p, i, &b->att[j]))) goto fail;
      }
    }
    if (i < N - 1) {
      fmt(p, sizeof p, "down_blocks.%d.downsamplers.0.", i);
      if ((rc = get_conv(&L, p, "conv", C, C, 3, &b->sample))) goto fail;
    }
    prev = C;
  }
  /* UNetMidBlock2DCrossAttn: resnet, transformer, resnet. UNetMidBlock2D as diffusers'
   * UNet2DConditionModel builds it (num_layers 0, no attention): one resnet. */
  u->mid_has_att = c->mid_has_attn;
  if ((rc = load_resnet(&L, "mid_block.resnets.0.", CN, CN, &u->mid_res[0]))) goto fail;
  if (u->mid_has_att && ((rc = load_xformer(&L, "mid_block.attentions.0.", N - 1, &u->mid_att)) ||
                         (rc = load_resnet(&L, "mid_block.resnets.1.", CN, CN, &u->mid_res[1]))))
    goto fail;
  int out_ch = CN;
  for (int i = 0; i < N; i++) {
    block_t *b = &u->up[i];
    const int level = N - 1 - i, prev_out = out_ch;
    out_ch = c->block_out_channels[level];
    const int in_ch = c->block_out_channels[level > 0 ? level - 1 : 0];
    b->cout = out_ch;
    if ((rc = alloc_block(b, NL + 1, c->up_has_attn[i]))) goto fail;
    for (int j = 0; j <= NL; j++) {
      int skip = j == NL ? in_ch : out_ch;
      fmt(p, sizeof p, "up_blocks.%d.resnets.%d.", i, j);
      if ((rc = load_resnet(&L, p, (j == 0 ? prev_out : out_ch) + skip, out_ch, &b->res[j]))) goto fail;
      if (b->att) {
        fmt(p, sizeof p, "up_blocks.%d.attentions.%d.", i, j);
        if ((rc = load_xformer(&L, p, level, &b->att[j]))) goto fail;
      }
    }
    if (i < N - 1) {
      fmt(p, sizeof p, "up_blocks.%d.upsamplers.0.", i);
      if ((rc = get_conv(&L, p, "conv", out_ch, out_ch, 3, &b->sample))) goto fail;
    }
  }
  *out = u;
  return SD_OK;
fail:
  sd_unet_free(u);
  return sd_fail_prefix(rc, "unet: ");
}

const sd_unet_config *sd_unet_cfg(const sd_unet *u) { return &u->cfg; }
int sd_unet_factor(const sd_unet *u) { return 1 << (u->cfg.n_levels - 1); }

void sd_unet_set_debug(sd_unet *u, sd_unet_debug_fn fn, void *user) {
  u->dbg = fn;
  u->dbg_user = user;
}

/* ---- the forward pass ----------------------------------------------------------------- */

/* One forward, or (dry) its plan: the same walk over the network, allocating from the arena
 * in the same order but computing nothing, which is how the arena is sized. */
typedef struct {
  sd_unet *u;
  sd_exec *ex;
  int dry;
  sd_arena ar;
  size_t used, peak; /* dry run */
  double flops;
  int B, ctx_len;
  const float *ctx;
  float *temb_act; /* SiLU(temb) [B, time_embed_dim] */
  float *tproj;    /* [B, max channels] */
} run_t;

static float g_dry_dummy[16]; /* what a dry run's allocations return; never touched */

static float *ralloc(run_t *R, int64_t n) {
  if (R->dry) {
    R->used += sd_arena_f32_bytes(n);
    if (R->used > R->peak) R->peak = R->used;
    return g_dry_dummy;
  }
  return sd_arena_f32(&R->ar, n);
}
static size_t rmark(const run_t *R) { return R->dry ? R->used : sd_arena_mark(&R->ar); }
static void rreset(run_t *R, size_t m) {
  if (R->dry) R->used = m;
  else sd_arena_reset(&R->ar, m);
}

/* The weight a convolution over the batch gets. With oneDNN, the stored one: oneDNN packs it
 * once for the batch (and, in bf16 or within the pack budget, keeps the packed copy for the
 * next passes, keyed by the weight). Otherwise an F32 view widened once into the exec's
 * scratch, so that im2col + BLAS does not widen it per image; valid until the next op that
 * widens. */
static int widen(run_t *R, const sd_tensor *w, sd_tensor *view) {
  if (R->ex->backend == SD_BACKEND_DNNL) {
    *view = *w;
    return SD_OK;
  }
  const float *f = sd_weight_f32(R->ex, w);
  if (!f) return SD_E_FORMAT;
  *view = *w;
  view->dtype = SD_F32;
  view->data = (void *)f;
  return SD_OK;
}

static void dump(run_t *R, const char *name, const float *data, int ndim, int64_t d0, int64_t d1, int64_t d2,
                 int64_t d3) {
  if (R->dry || !R->u->dbg) return;
  int64_t shape[4] = {d0, d1, d2, d3};
  R->u->dbg(R->u->dbg_user, name, data, ndim, shape);
}

typedef struct { float *y; const float *t; int64_t C, HW; } chan_add_job;

static void chan_add_task(void *ctx, int64_t r0, int64_t r1, int tid) { /* rows r = (b, c) */
  (void)tid;
  const chan_add_job *j = ctx;
  for (int64_t r = r0; r < r1; r++) {
    float *row = j->y + r * j->HW, v = j->t[r];
    for (int64_t i = 0; i < j->HW; i++) row[i] += v;
  }
}

static double conv_flops(int cout, int cin, int k, int64_t HWo) { return 2.0 * cout * cin * k * k * (double)HWo; }

/* ResNet block: in[B, cin, H, W] -> out[B, cout, H, W] (out must not alias in). */
static int resnet_fwd(run_t *R, const resnet_t *p, const float *in, int H, int W, float *out) {
  const sd_unet_config *c = &R->u->cfg;
  const int B = R->B, cin = p->cin, cout = p->cout, G = c->norm_num_groups;
  const int64_t HW = (int64_t)H * W;
  R->flops += B * (conv_flops(cout, cin, 3, HW) + conv_flops(cout, cout, 3, HW) +
                   (p->shortcut.w ? conv_flops(cout, cin, 1, HW) : 0) + 2.0 * cout * c->time_embed_dim);
  size_t mark = rmark(R);
  float *s1 = ralloc(R, (int64_t)(cin > cout ? cin : cout) * HW); /* one image */
  float *s2 = ralloc(R, (int64_t)B * cout * HW);
  if (!s1 || !s2) return SD_E_INTERNAL;
  int rc = SD_OK;
  if (R->dry) goto done;
  sd_exec *ex = R->ex;
  sd_conv2d_shape cs = {cin, H, W, 1, 1, 1, 1, 1};
  sd_tensor wv;
  if ((rc = sd_op_linear(ex, R->temb_act, B, c->time_embed_dim, p->temb.w, p->temb.b, R->tproj))) goto done;
  if ((rc = widen(R, p->conv1.w, &wv))) goto done;
  for (int b = 0; b < B && !rc; b++) {
    sd_op_groupnorm(ex, in + (int64_t)b * cin * HW, cin, HW, G, p->n1g, p->n1b, c->norm_eps, 1, s1);
    rc = sd_op_conv2d(ex, &cs, s1, &wv, p->conv1.b, s2 + (int64_t)b * cout * HW);
  }
  if (rc) goto done;
  chan_add_job cj = {s2, R->tproj, cout, HW};
  sd_parallel_for(ex->pool, (int64_t)B * cout, 1, chan_add_task, &cj);
  for (int b = 0; b < B; b++) {
    float *s = s2 + (int64_t)b * cout * HW;
    sd_op_groupnorm(ex, s, cout, HW, G, p->n2g, p->n2b, c->norm_eps, 1, s);
  }
  if ((rc = widen(R, p->conv2.w, &wv))) goto done;
  cs.C = cout;
  for (int b = 0; b < B && !rc; b++)
    rc = sd_op_conv2d(ex, &cs, s2 + (int64_t)b * cout * HW, &wv, p->conv2.b, out + (int64_t)b * cout * HW);
  if (rc) goto done;
  if (p->shortcut.w) {
    sd_conv2d_shape ss = {cin, H, W, 1, 0, 0, 0, 0};
    if ((rc = widen(R, p->shortcut.w, &wv))) goto done;
    for (int b = 0; b < B && !rc; b++) {
      rc = sd_op_conv2d(ex, &ss, in + (int64_t)b * cin * HW, &wv, p->shortcut.b, s1);
      if (!rc) sd_op_add(ex, out + (int64_t)b * cout * HW, s1, (int64_t)cout * HW);
    }
  } else {
    sd_op_add(ex, out, in, (int64_t)B * cout * HW);
  }
done:
  rreset(R, mark);
  return rc;
}

/* Transformer2D, in place on x[B, C, H, W]: x += proj_out(blocks(proj_in(GN(x)))). */
static int xformer_fwd(run_t *R, const xformer_t *p, float *x, int H, int W) {
  const sd_unet_config *c = &R->u->cfg;
  const int B = R->B, C = p->C, G = c->norm_num_groups, S = R->ctx_len, X = c->cross_attention_dim;
  const int64_t HW = (int64_t)H * W;
  int tb = (int)(TR_TOKENS / HW);
  if (tb < 1) tb = 1;
  if (tb > B) tb = B;
  const int64_t T = tb * HW, kvrows = tb * (HW > S ? HW : S);
  const int64_t attn_need = 2 * T * C + 2 * kvrows * C; /* q, attention output, k, v */
  /* feed-forward rows per chunk: as many as fit the attention phase's scratch (so the
   * feed-forward never widens the block), at least FF_MIN_ROWS */
  int64_t ffr = attn_need / (12 * (int64_t)C);
  if (ffr < FF_MIN_ROWS) ffr = FF_MIN_ROWS;
  if (ffr > T) ffr = T;
  {
    double Bt = B, tok = (double)B * HW;
    double per_blk = 2 * tok * C * C * 4                      /* self q, k, v, out */
                     + 2 * tok * C * C * 2 + 2 * Bt * S * X * C * 2 /* cross q, out; k, v */
                     + 2 * tok * C * 8.0 * C + 2 * tok * 4.0 * C * C /* feed-forward */
                     + 4 * tok * (double)HW * C + 4 * tok * (double)S * C; /* attention */
    R->flops += per_blk * p->nblk + 2 * 2 * tok * C * C;
  }
  size_t mark = rmark(R);
  float *tmp = ralloc(R, (int64_t)C * HW), *t = ralloc(R, T * C), *n = ralloc(R, T * C);
  int64_t ff_need = ffr * 12 * C;
  float *work = ralloc(R, attn_need > ff_need ? attn_need : ff_need);
  if (!tmp || !t || !n || !work) return SD_E_INTERNAL;
  int rc = SD_OK;
  if (R->dry) goto done;
  sd_exec *ex = R->ex;
  float *q = work, *a = q + T * C, *k = a + T * C, *v = k + kvrows * C;
  float *f1 = work, *f2 = f1 + ffr * 8 * C;
  for (int b0 = 0; b0 < B && !rc; b0 += tb) {
    const int nb = B - b0 < tb ? B - b0 : tb;
    const int64_t Tn = nb * HW;
    for (int b = 0; b < nb; b++) {
      sd_op_groupnorm(ex, x + (int64_t)(b0 + b) * C * HW, C, HW, G, p->gng, p->gnb, TR_GN_EPS, 0, tmp);
      sd_op_transpose(ex, tmp, C, HW, n + b * HW * C);
    }
    if ((rc = sd_op_linear(ex, n, Tn, C, p->proj_in.w, p->proj_in.b, t))) break;
    const float *ctx = R->ctx + (int64_t)b0 * S * X;
    const float scale = 1.0f / sqrtf((float)p->dh);
    for (int l = 0; l < p->nblk && !rc; l++) {
      const tblock_t *bk = &p->blk[l];
      /* self-attention */
      sd_op_layernorm(ex, t, Tn, C, bk->lng[0], bk->lnb[0], LN_EPS, n);
      sd_attn_shape as = {nb, p->heads, (int)HW, (int)HW, p->dh, C, C, C, 0, scale};
      if ((rc = sd_op_linear(ex, n, Tn, C, bk->q1, NULL, q)) || (rc = sd_op_linear(ex, n, Tn, C, bk->k1, NULL, k)) ||
          (rc = sd_op_linear(ex, n, Tn, C, bk->v1, NULL, v)) || (rc = sd_op_attention(ex, &as, q, k, v, a)) ||
          (rc = sd_op_linear(ex, a, Tn, C, bk->o1.w, bk->o1.b, n)))
        break;
      sd_op_add(ex, t, n, Tn * C);
      /* cross-attention on the context */
      sd_op_layernorm(ex, t, Tn, C, bk->lng[1], bk->lnb[1], LN_EPS, n);
      sd_attn_shape xs = {nb, p->heads, (int)HW, S, p->dh, C, C, C, 0, scale};
      if ((rc = sd_op_linear(ex, n, Tn, C, bk->q2, NULL, q)) ||
          (rc = sd_op_linear(ex, ctx, (int64_t)nb * S, X, bk->k2, NULL, k)) ||
          (rc = sd_op_linear(ex, ctx, (int64_t)nb * S, X, bk->v2, NULL, v)) ||
          (rc = sd_op_attention(ex, &xs, q, k, v, a)) || (rc = sd_op_linear(ex, a, Tn, C, bk->o2.w, bk->o2.b, n)))
        break;
      sd_op_add(ex, t, n, Tn * C);
      /* GEGLU feed-forward, in row chunks; each chunk's output replaces its rows of n */
      sd_op_layernorm(ex, t, Tn, C, bk->lng[2], bk->lnb[2], LN_EPS, n);
      for (int64_t r0 = 0; r0 < Tn && !rc; r0 += ffr) {
        int64_t nr = Tn - r0 < ffr ? Tn - r0 : ffr;
        float *nr0 = n + r0 * C;
        if ((rc = sd_op_linear(ex, nr0, nr, C, bk->ff1.w, bk->ff1.b, f1))) break;
        sd_op_geglu(ex, f1, nr, 4 * (int64_t)C, f2);
        rc = sd_op_linear(ex, f2, nr, 4 * (int64_t)C, bk->ff2.w, bk->ff2.b, nr0);
      }
      if (!rc) sd_op_add(ex, t, n, Tn * C);
    }
    if (rc || (rc = sd_op_linear(ex, t, Tn, C, p->proj_out.w, p->proj_out.b, n))) break;
    for (int b = 0; b < nb; b++) {
      sd_op_transpose(ex, n + b * HW * C, HW, C, tmp);
      sd_op_add(ex, x + (int64_t)(b0 + b) * C * HW, tmp, (int64_t)C * HW);
    }
  }
done:
  rreset(R, mark);
  return rc;
}

/* 3x3 conv over the batch: in[B, cin, H, W] -> out[B, cout, Ho, Wo]. */
static int conv_batch(run_t *R, const lin_t *cv, const float *in, int cin, int H, int W, int stride, float *out) {
  const int cout = (int)cv->w->shape[0];
  const int Ho = (H + 2 - 3) / stride + 1, Wo = (W + 2 - 3) / stride + 1;
  R->flops += R->B * conv_flops(cout, cin, 3, (int64_t)Ho * Wo);
  if (R->dry) return SD_OK;
  sd_tensor wv;
  int rc = widen(R, cv->w, &wv);
  sd_conv2d_shape cs = {cin, H, W, stride, 1, 1, 1, 1};
  for (int b = 0; b < R->B && !rc; b++)
    rc = sd_op_conv2d(R->ex, &cs, in + (int64_t)b * cin * H * W, &wv, cv->b, out + (int64_t)b * cout * Ho * Wo);
  return rc;
}

/* nearest 2x + 3x3 conv: in[B, C, H, W] -> out[B, C, 2H, 2W] */
static int upsample_fwd(run_t *R, const lin_t *cv, const float *in, int C, int H, int W, float *out) {
  const int64_t HW4 = 4 * (int64_t)H * W;
  R->flops += R->B * conv_flops(C, C, 3, HW4);
  size_t mark = rmark(R);
  float *s = ralloc(R, C * HW4);
  if (!s) return SD_E_INTERNAL;
  int rc = SD_OK;
  if (!R->dry) {
    sd_tensor wv;
    rc = widen(R, cv->w, &wv);
    sd_conv2d_shape cs = {C, 2 * H, 2 * W, 1, 1, 1, 1, 1};
    for (int b = 0; b < R->B && !rc; b++) {
      sd_op_upsample2x(R->ex, in + (int64_t)b * C * H * W, C, H, W, s);
      rc = sd_op_conv2d(R->ex, &cs, s, &wv, cv->b, out + (int64_t)b * C * HW4);
    }
  }
  rreset(R, mark);
  return rc;
}

static void timestep_embedding(const sd_unet_config *c, float t, float *emb) {
  const int dim = c->time_embed_in, half = dim / 2;
  /* float32 throughout, in diffusers' order of operations (get_timestep_embedding) */
  const float nlog = (float)-9.210340371976184; /* -ln(10000) */
  for (int i = 0; i < half; i++) {
    float e = expf(nlog * (float)i / (float)(half - c->freq_shift));
    float arg = t * e;
    float s = sinf(arg), co = cosf(arg);
    if (c->flip_sin_to_cos) emb[i] = co, emb[half + i] = s;
    else emb[i] = s, emb[half + i] = co;
  }
  if (dim % 2) emb[dim - 1] = 0;
}

typedef struct { float *p; int C; } slot_t;

static int forward_impl(run_t *R, const float *x, int h, int w, float timestep, float *out) {
  sd_unet *u = R->u;
  const sd_unet_config *c = &u->cfg;
  const int B = R->B, N = c->n_levels, G = c->norm_num_groups;
  const int C0 = c->block_out_channels[0], TE = c->time_embed_dim, TI = c->time_embed_in;
  int maxC = c->in_channels;
  for (int i = 0; i < N; i++) if (c->block_out_channels[i] > maxC) maxC = c->block_out_channels[i];

  /* sizes of the persistent buffers: hidden states of the mid/up path and the concat input */
  int64_t max_hid = (int64_t)C0 * h * w, max_cat = 0;
  {
    int64_t hh = h >> (N - 1), ww = w >> (N - 1);
    int64_t hid = (int64_t)c->block_out_channels[N - 1] * hh * ww;
    if (hid > max_hid) max_hid = hid;
    for (int i = 0; i < N; i++) {
      const block_t *b = &u->up[i];
      for (int j = 0; j < b->nres; j++) {
        int64_t cat = (int64_t)b->res[j].cin * hh * ww;
        if (cat > max_cat) max_cat = cat;
      }
      hid = (int64_t)b->cout * hh * ww;
      if (hid > max_hid) max_hid = hid;
      if (i < N - 1) {
        hh *= 2, ww *= 2;
        hid = (int64_t)b->cout * hh * ww;
        if (hid > max_hid) max_hid = hid;
      }
    }
  }
  /* skip connections: conv_in, every down resnet(+attention) output, every downsample */
  slot_t slots[1 + SD_MAX_LEVELS * 65];
  int nslots = 0;

  float *temb_in = ralloc(R, (int64_t)B * TI), *temb = ralloc(R, (int64_t)B * TE);
  R->temb_act = ralloc(R, (int64_t)B * TE);
  R->tproj = ralloc(R, (int64_t)B * maxC);
  float *hA = ralloc(R, B * max_hid), *hB = ralloc(R, B * max_hid), *cat = ralloc(R, B * max_cat);
  if (!temb_in || !temb || !R->temb_act || !R->tproj || !hA || !hB || !cat) return SD_E_INTERNAL;
  int rc = SD_OK;
  sd_exec *ex = R->ex;

  /* timestep embedding */
  R->flops += 2.0 * B * TE * (TI + TE);
  if (!R->dry) {
    for (int b = 0; b < B; b++) timestep_embedding(c, timestep, temb_in + (int64_t)b * TI);
    dump(R, "time_proj", temb_in, 2, B, TI, 0, 0);
    if ((rc = sd_op_linear(ex, temb_in, B, TI, u->time1.w, u->time1.b, R->temb_act))) return rc;
    sd_op_silu(ex, R->temb_act, (int64_t)B * TE);
    if ((rc = sd_op_linear(ex, R->temb_act, B, TE, u->time2.w, u->time2.b, temb))) return rc;
    dump(R, "time_embedding", temb, 2, B, TE, 0, 0);
    memcpy(R->temb_act, temb, sizeof(float) * (size_t)B * TE);
    sd_op_silu(ex, R->temb_act, (int64_t)B * TE);
  }

  /* conv_in */
  int H = h, W = w, C = C0;
  float *cur = ralloc(R, (int64_t)B * C0 * H * W);
  if (!cur) return SD_E_INTERNAL;
  if ((rc = conv_batch(R, &u->conv_in, x, c->in_channels, H, W, 1, cur))) return rc;
  slots[nslots++] = (slot_t){cur, C};
  dump(R, "conv_in", cur, 4, B, C, H, W);

  /* down path: every output is a skip connection, written straight into its slot */
  char name[32];
  for (int i = 0; i < N; i++) {
    const block_t *b = &u->down[i];
    for (int j = 0; j < b->nres; j++) {
      float *o = ralloc(R, (int64_t)B * b->cout * H * W);
      if (!o) return SD_E_INTERNAL;
      if ((rc = resnet_fwd(R, &b->res[j], cur, H, W, o))) return rc;
      if (b->att && (rc = xformer_fwd(R, &b->att[j], o, H, W))) return rc;
      cur = o, C = b->cout;
      slots[nslots++] = (slot_t){cur, C};
    }
    if (b->sample.w) {
      float *o = ralloc(R, (int64_t)B * C * ((H + 1) / 2) * ((W + 1) / 2));
      if (!o) return SD_E_INTERNAL;
      if ((rc = conv_batch(R, &b->sample, cur, C, H, W, 2, o))) return rc;
      H = (H + 1) / 2, W = (W + 1) / 2;
      cur = o;
      slots[nslots++] = (slot_t){cur, C};
    }
    snprintf(name, sizeof name, "down_blocks.%d", i);
    dump(R, name, cur, 4, B, C, H, W);
  }

  /* mid block */
  if ((rc = resnet_fwd(R, &u->mid_res[0], cur, H, W, hA))) return rc;
  cur = hA;
  float *other = hB;
  if (u->mid_has_att) {
    if ((rc = xformer_fwd(R, &u->mid_att, hA, H, W)) || (rc = resnet_fwd(R, &u->mid_res[1], hA, H, W, hB))) return rc;
    cur = hB, other = hA;
  }
  dump(R, "mid_block", cur, 4, B, C, H, W);

  /* up path: concat the skip (last in, first out), ResNet (+ attention); then upsample */
  for (int i = 0; i < N; i++) {
    const block_t *b = &u->up[i];
    const int64_t HW = (int64_t)H * W;
    for (int j = 0; j < b->nres; j++) {
      if (nslots < 1) return sd_fail(SD_E_INTERNAL, "skip connections exhausted");
      slot_t s = slots[--nslots];
      if (C + s.C != b->res[j].cin)
        return sd_fail(SD_E_INTERNAL, "up block %d: %d + %d channels for a %d-channel ResNet", i, C, s.C,
                       b->res[j].cin);
      if (!R->dry)
        for (int bb = 0; bb < B; bb++) {
          float *d = cat + (int64_t)bb * (C + s.C) * HW;
          memcpy(d, cur + (int64_t)bb * C * HW, sizeof(float) * (size_t)(C * HW));
          memcpy(d + C * HW, s.p + (int64_t)bb * s.C * HW, sizeof(float) * (size_t)(s.C * HW));
        }
      if ((rc = resnet_fwd(R, &b->res[j], cat, H, W, cur))) return rc;
      C = b->cout;
      if (b->att && (rc = xformer_fwd(R, &b->att[j], cur, H, W))) return rc;
    }
    if (b->sample.w) {
      if ((rc = upsample_fwd(R, &b->sample, cur, C, H, W, other))) return rc;
      float *t = cur;
      cur = other, other = t;
      H *= 2, W *= 2;
    }
    snprintf(name, sizeof name, "up_blocks.%d", i);
    dump(R, name, cur, 4, B, C, H, W);
  }
  if (nslots != 0) return sd_fail(SD_E_INTERNAL, "%d skip connections left over", nslots);

  /* GroupNorm -> SiLU -> conv_out */
  R->flops += B * conv_flops(c->out_channels, C, 3, (int64_t)H * W);
  if (R->dry) return SD_OK;
  const int64_t HW = (int64_t)H * W;
  const int silu_now = u->dbg == NULL;
  for (int b = 0; b < B; b++)
    sd_op_groupnorm(ex, cur + b * C * HW, C, HW, G, u->nog, u->nob, c->norm_eps, silu_now, other + b * C * HW);
  if (!silu_now) {
    dump(R, "conv_norm_out", other, 4, B, C, H, W);
    sd_op_silu(ex, other, (int64_t)B * C * HW);
  }
  sd_tensor wv;
  if ((rc = widen(R, u->conv_out.w, &wv))) return rc;
  sd_conv2d_shape cs = {C, H, W, 1, 1, 1, 1, 1};
  for (int b = 0; b < B && !rc; b++)
    rc = sd_op_conv2d(ex, &cs, other + b * C * HW, &wv, u->conv_out.b, out + (int64_t)b * c->out_channels * HW);
  if (!rc) dump(R, "conv_out", out, 4, B, c->out_channels, H, W);
  return rc;
}

static int check_sizes(const sd_unet *u, int B, int h, int w, int ctx_len) {
  const int f = sd_unet_factor(u);
  if (B < 1 || B > 4096) return sd_fail(SD_E_ARG, "unet: batch of %d (1..4096)", B);
  if (h < 1 || w < 1 || h % f || w % f || (int64_t)h * w > (1 << 22))
    return sd_fail(SD_E_ARG, "unet: a %dx%d latent (sides must be positive multiples of %d, at most 4M values)", h,
                   w, f);
  if (ctx_len < 1 || ctx_len > 4096) return sd_fail(SD_E_ARG, "unet: %d context tokens (1..4096)", ctx_len);
  return SD_OK;
}

static int plan(const sd_unet *u, int B, int h, int w, int ctx_len, size_t *bytes, double *flops) {
  int rc = check_sizes(u, B, h, w, ctx_len);
  if (rc) return rc;
  run_t R;
  memset(&R, 0, sizeof R);
  R.u = (sd_unet *)u, R.dry = 1, R.B = B, R.ctx_len = ctx_len;
  rc = forward_impl(&R, NULL, h, w, 0.0f, NULL);
  if (rc) return rc;
  if (bytes) *bytes = R.peak;
  if (flops) *flops = R.flops;
  return SD_OK;
}

size_t sd_unet_arena_bytes(const sd_unet *u, int B, int h, int w, int ctx_len) {
  size_t bytes;
  return plan(u, B, h, w, ctx_len, &bytes, NULL) ? 0 : bytes;
}

double sd_unet_flops(const sd_unet *u, int B, int h, int w, int ctx_len) {
  double f;
  return plan(u, B, h, w, ctx_len, NULL, &f) ? 0 : f;
}

int sd_unet_forward(sd_unet *u, sd_exec *ex, const float *x, int B, int h, int w, float timestep,
                    const float *context, int ctx_len, float *out) {
  size_t bytes;
  int rc = plan(u, B, h, w, ctx_len, &bytes, NULL);
  if (rc) return rc;
  if (!x || !out || !context) return sd_fail(SD_E_ARG, "unet: missing input, context or output buffer");
  if (!isfinite(timestep)) return sd_fail(SD_E_ARG, "unet: timestep is not finite");
  run_t R;
  memset(&R, 0, sizeof R);
  R.u = u, R.ex = ex, R.B = B, R.ctx_len = ctx_len, R.ctx = context;
  if ((rc = sd_arena_init_kept(&R.ar, &ex->act, bytes))) return sd_fail_prefix(rc, "unet: ");
  rc = forward_impl(&R, x, h, w, timestep, out);
  if (!rc && R.ar.peak != bytes) /* the plan walks the same code: it must match exactly */
    rc = sd_fail(SD_E_INTERNAL, "activation arena: planned %zu bytes, used %zu", bytes, R.ar.peak);
  sd_arena_free(&R.ar);
  return rc ? sd_fail_prefix(rc, "unet: ") : SD_OK;
}
