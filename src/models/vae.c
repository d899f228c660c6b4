#include "models/vae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/error.h"

#define VAE_EPS 1e-6f
#define VAE_MAX_PIXELS 16384 /* image side limit */
/* Scratch budget (floats) of one row band of the fused 2x-upsample + conv: the gathered,
 * upsampled input rows plus the band's output rows. 8 Mi floats = 32 MiB. */
#define VAE_BAND_FLOATS ((int64_t)8 << 20)

/* ---- parameters ------------------------------------------------------------------------ */

typedef struct { float *g, *b; int C; } gn_p;
typedef struct { const sd_tensor *w; float *b; int cin, cout, k; } conv_p;
typedef struct { gn_p n1, n2; conv_p c1, c2, sc; int has_sc, cin, cout; } resnet_p;
typedef struct { gn_p gn; const sd_tensor *q, *k, *v, *o; float *qb, *kb, *vb, *ob; int C; } attn_p;
typedef struct { resnet_p r0, r1; attn_p at; } mid_p;
typedef struct { resnet_p *res; int n_res, has_sample; conv_p sample; } block_p;

struct sd_vae {
  sd_vae_config cfg;
  int has_encoder;
  /* encoder */
  conv_p e_conv_in, e_conv_out, quant;
  block_p e_down[SD_MAX_LEVELS];
  mid_p e_mid;
  gn_p e_norm;
  /* decoder */
  conv_p post_quant, d_conv_in, d_conv_out;
  mid_p d_mid;
  block_p d_up[SD_MAX_LEVELS];
  gn_p d_norm;
  sd_vae_hook_fn hook;
  void *hook_ctx;
  int band_rows; /* 0: automatic */
};

static void free_resnet(resnet_p *r) {
  free(r->n1.g); free(r->n1.b); free(r->n2.g); free(r->n2.b);
  free(r->c1.b); free(r->c2.b); free(r->sc.b);
}

static void free_mid(mid_p *m) {
  free_resnet(&m->r0);
  free_resnet(&m->r1);
  attn_p *a = &m->at;
  free(a->gn.g); free(a->gn.b); free(a->qb); free(a->kb); free(a->vb); free(a->ob);
}

static void free_block(block_p *b) {
  if (b->res)
    for (int i = 0; i < b->n_res; i++) free_resnet(&b->res[i]);
  free(b->res);
  free(b->sample.b);
}

void sd_vae_free(sd_vae *v) {
  if (!v) return;
  for (int i = 0; i < SD_MAX_LEVELS; i++) {
    free_block(&v->e_down[i]);
    free_block(&v->d_up[i]);
  }
  free_mid(&v->e_mid);
  free_mid(&v->d_mid);
  conv_p *convs[] = {&v->e_conv_in, &v->e_conv_out, &v->quant, &v->post_quant, &v->d_conv_in, &v->d_conv_out};
  for (size_t i = 0; i < sizeof convs / sizeof *convs; i++) free(convs[i]->b);
  free(v->e_norm.g); free(v->e_norm.b); free(v->d_norm.g); free(v->d_norm.b);
  free(v);
}

/* Weight lookups with the expected shapes; small vectors are widened to float32 once. */
static int get_vec(const sd_model_source *m, const char *name, int64_t n, float **out) {
  const sd_tensor *t;
  int rc = sd_model_get(m, SD_COMP_VAE, name, 1, &n, &t);
  if (rc) return rc;
  *out = sd_weight_dup_f32(t);
  return *out ? SD_OK : SD_E_NOMEM;
}

static int get_gn(const sd_model_source *m, const char *prefix, int C, gn_p *p) {
  char n[192];
  int rc;
  p->C = C;
  snprintf(n, sizeof n, "%s.weight", prefix);
  if ((rc = get_vec(m, n, C, &p->g))) return rc;
  snprintf(n, sizeof n, "%s.bias", prefix);
  return get_vec(m, n, C, &p->b);
}

static int get_conv(const sd_model_source *m, const char *prefix, int cout, int cin, int k, conv_p *p) {
  char n[192];
  int64_t shape[4] = {cout, cin, k, k};
  int rc;
  p->cin = cin, p->cout = cout, p->k = k;
  snprintf(n, sizeof n, "%s.weight", prefix);
  if ((rc = sd_model_get(m, SD_COMP_VAE, n, 4, shape, &p->w))) return rc;
  snprintf(n, sizeof n, "%s.bias", prefix);
  return get_vec(m, n, cout, &p->b);
}

static int get_linear(const sd_model_source *m, const char *prefix, int C, const sd_tensor **w, float **b) {
  char n[192];
  int64_t shape[2] = {C, C};
  int rc;
  snprintf(n, sizeof n, "%s.weight", prefix);
  if ((rc = sd_model_get(m, SD_COMP_VAE, n, 2, shape, w))) return rc;
  snprintf(n, sizeof n, "%s.bias", prefix);
  return get_vec(m, n, C, b);
}

static int get_resnet(const sd_model_source *m, const char *prefix, int cin, int cout, resnet_p *r) {
  char n[128];
  int rc;
  r->cin = cin, r->cout = cout, r->has_sc = cin != cout;
#define P(s) (snprintf(n, sizeof n, "%s.%s", prefix, s), n)
  if ((rc = get_gn(m, P("norm1"), cin, &r->n1)) || (rc = get_conv(m, P("conv1"), cout, cin, 3, &r->c1)) ||
      (rc = get_gn(m, P("norm2"), cout, &r->n2)) || (rc = get_conv(m, P("conv2"), cout, cout, 3, &r->c2)))
    return rc;
  if (r->has_sc && (rc = get_conv(m, P("conv_shortcut"), cout, cin, 1, &r->sc))) return rc;
#undef P
  return SD_OK;
}

static int get_mid(const sd_model_source *m, const char *prefix, int C, mid_p *p) {
  char n[128];
  int rc;
  attn_p *a = &p->at;
  a->C = C;
#define P(s) (snprintf(n, sizeof n, "%s.%s", prefix, s), n)
  if ((rc = get_resnet(m, P("resnets.0"), C, C, &p->r0)) || (rc = get_resnet(m, P("resnets.1"), C, C, &p->r1)) ||
      (rc = get_gn(m, P("attentions.0.group_norm"), C, &a->gn)) ||
      (rc = get_linear(m, P("attentions.0.to_q"), C, &a->q, &a->qb)) ||
      (rc = get_linear(m, P("attentions.0.to_k"), C, &a->k, &a->kb)) ||
      (rc = get_linear(m, P("attentions.0.to_v"), C, &a->v, &a->vb)) ||
      (rc = get_linear(m, P("attentions.0.to_out.0"), C, &a->o, &a->ob)))
    return rc;
#undef P
  return SD_OK;
}

static int get_block(const sd_model_source *m, const char *prefix, int n_res, int cin, int cout, int sample,
                     block_p *b) {
  char n[96];
  int rc;
  b->res = calloc((size_t)n_res, sizeof *b->res);
  if (!b->res) return sd_fail(SD_E_NOMEM, "out of memory");
  b->n_res = n_res;
  for (int j = 0; j < n_res; j++) {
    snprintf(n, sizeof n, "%s.resnets.%d", prefix, j);
    if ((rc = get_resnet(m, n, j == 0 ? cin : cout, cout, &b->res[j]))) return rc;
  }
  b->has_sample = sample;
  if (sample) {
    snprintf(n, sizeof n, "%s.%s.0.conv", prefix, strstr(prefix, "encoder") ? "downsamplers" : "upsamplers");
    if ((rc = get_conv(m, n, cout, cout, 3, &b->sample))) return rc;
  }
  return SD_OK;
}

int sd_vae_create(const sd_model_source *m, sd_vae **out) {
  *out = NULL;
  int rc = sd_model_need(m, SD_COMP_VAE);
  if (rc) return rc;
  const sd_vae_config *c = sd_model_vae_config(m);
  if (!c) return sd_fail(SD_E_FORMAT, "VAE: the model source reports no VAE configuration");
  if (c->n_levels < 1 || c->n_levels > SD_MAX_LEVELS || c->layers_per_block < 1 || c->norm_num_groups < 1 ||
      c->latent_channels < 1 || c->in_channels < 1 || c->out_channels < 1 || !(c->scaling_factor > 0.0f) ||
      !isfinite(c->scaling_factor))
    return sd_fail(SD_E_FORMAT, "VAE: inconsistent configuration (%d levels, %d layers per block, %d groups)",
                   c->n_levels, c->layers_per_block, c->norm_num_groups);
  for (int i = 0; i < c->n_levels; i++)
    if (c->block_out_channels[i] < 1 || c->block_out_channels[i] % c->norm_num_groups)
      return sd_fail(SD_E_FORMAT, "VAE: level %d has %d channels (not a positive multiple of %d groups)", i,
                     c->block_out_channels[i], c->norm_num_groups);
  sd_vae *v = calloc(1, sizeof *v);
  if (!v) return sd_fail(SD_E_NOMEM, "out of memory");
  v->cfg = *c;
  const int N = c->n_levels, L = c->layers_per_block, Z = c->latent_channels;
  const int C0 = c->block_out_channels[0], CN = c->block_out_channels[N - 1];
  char n[64];

  /* decoder */
  if ((rc = get_conv(m, "post_quant_conv", Z, Z, 1, &v->post_quant)) ||
      (rc = get_conv(m, "decoder.conv_in", CN, Z, 3, &v->d_conv_in)) ||
      (rc = get_mid(m, "decoder.mid_block", CN, &v->d_mid)))
    goto fail;
  int prev = CN;
  for (int i = 0; i < N; i++) {
    int C = c->block_out_channels[N - 1 - i];
    snprintf(n, sizeof n, "decoder.up_blocks.%d", i);
    if ((rc = get_block(m, n, L + 1, prev, C, i < N - 1, &v->d_up[i]))) goto fail;
    prev = C;
  }
  if ((rc = get_gn(m, "decoder.conv_norm_out", C0, &v->d_norm)) ||
      (rc = get_conv(m, "decoder.conv_out", c->out_channels, C0, 3, &v->d_conv_out)))
    goto fail;

  /* encoder: optional (a decoder-only VAE still decodes; encode then says why it cannot) */
  v->has_encoder = sd_model_find(m, SD_COMP_VAE, "encoder.conv_in.weight") != NULL;
  if (v->has_encoder) {
    if ((rc = get_conv(m, "encoder.conv_in", C0, c->in_channels, 3, &v->e_conv_in))) goto fail;
    prev = C0;
    for (int i = 0; i < N; i++) {
      int C = c->block_out_channels[i];
      snprintf(n, sizeof n, "encoder.down_blocks.%d", i);
      if ((rc = get_block(m, n, L, prev, C, i < N - 1, &v->e_down[i]))) goto fail;
      prev = C;
    }
    if ((rc = get_mid(m, "encoder.mid_block", CN, &v->e_mid)) ||
        (rc = get_gn(m, "encoder.conv_norm_out", CN, &v->e_norm)) ||
        (rc = get_conv(m, "encoder.conv_out", 2 * Z, CN, 3, &v->e_conv_out)) ||
        (rc = get_conv(m, "quant_conv", 2 * Z, 2 * Z, 1, &v->quant)))
      goto fail;
  }
  *out = v;
  return SD_OK;
fail:
  sd_vae_free(v);
  return sd_fail_prefix(rc, "VAE: ");
}

const sd_vae_config *sd_vae_cfg(const sd_vae *v) { return &v->cfg; }
int sd_vae_factor(const sd_vae *v) { return 1 << (v->cfg.n_levels - 1); }
void sd_vae_set_hook(sd_vae *v, sd_vae_hook_fn fn, void *ctx) { v->hook = fn, v->hook_ctx = ctx; }
void sd_vae_set_band_rows(sd_vae *v, int rows) { v->band_rows = rows > 0 ? rows : 0; }

/* ---- one forward pass: a plan (allocations and FLOPs only) or a real run ---------------- */

/* The activation memory is used from both ends: a stage reads its input at one end and,
 * when it cannot work in place, writes its output at the other, then frees the input's
 * end. Invariant between stages: the current activation is the only allocation, at the
 * bottom of end `e`. Sizes are counted in floats, each allocation rounded to 64 bytes. */
typedef struct {
  sd_vae *v;
  sd_exec *ex;
  int plan;          /* 1: count only (no memory, no compute) */
  float *base;
  int64_t cap;       /* floats */
  int64_t used[2];   /* floats used at the low (0) and high (1) end */
  int64_t peak;
  double flops;
  int rc;            /* first error */
} run;

static float plan_dummy[16];

static int64_t round16(int64_t n) { return (n + 15) & ~(int64_t)15; }

static float *ralloc(run *r, int end, int64_t n) {
  if (r->rc) return NULL;
  n = round16(n);
  if (r->used[0] + r->used[1] + n > r->cap) {
    r->rc = sd_fail(SD_E_INTERNAL, "VAE: activation arena exhausted (%lld of %lld floats used, %lld more asked)",
                    (long long)(r->used[0] + r->used[1]), (long long)r->cap, (long long)n);
    return NULL;
  }
  float *p = NULL;
  if (r->plan) p = plan_dummy;
  else if (end == 0) p = r->base + r->used[0];
  else p = r->base + (r->cap - r->used[1] - n);
  r->used[end] += n;
  if (r->used[0] + r->used[1] > r->peak) r->peak = r->used[0] + r->used[1];
  return p;
}

static int64_t rmark(const run *r, int end) { return r->used[end]; }
static void rreset(run *r, int end, int64_t m) { r->used[end] = m; }

static void hook(run *r, const char *name, const float *x, int C, int H, int W) {
  if (!r->plan && !r->rc && r->v->hook) r->v->hook(r->v->hook_ctx, name, x, C, H, W);
}

/* op wrappers: no-ops after an error and in plan mode (which counts FLOPs instead) */
static void conv(run *r, const conv_p *p, const float *x, int H, int W, int stride, int pt, int pl, int pb, int pr,
                 float *y) {
  if (r->rc) return;
  int Ho = (H + pt + pb - p->k) / stride + 1, Wo = (W + pl + pr - p->k) / stride + 1;
  r->flops += 2.0 * p->cout * p->cin * p->k * p->k * (double)Ho * Wo;
  if (r->plan) return;
  sd_conv2d_shape s = {p->cin, H, W, stride, pt, pl, pb, pr};
  r->rc = sd_op_conv2d(r->ex, &s, x, p->w, p->b, y);
}

/* 3x3, stride 1, padding 1 */
static void conv3(run *r, const conv_p *p, const float *x, int H, int W, float *y) {
  conv(r, p, x, H, W, 1, p->k / 2, p->k / 2, p->k / 2, p->k / 2, y);
}

static void gn(run *r, const gn_p *p, const float *x, int64_t HW, int silu, float *y) {
  if (r->rc || r->plan) return;
  sd_op_groupnorm(r->ex, x, p->C, HW, r->v->cfg.norm_num_groups, p->g, p->b, VAE_EPS, silu, y);
}

static void add(run *r, float *y, const float *x, int64_t n) {
  if (r->rc || r->plan) return;
  sd_op_add(r->ex, y, x, n);
}

static void linear(run *r, const float *x, int64_t M, int64_t K, const sd_tensor *w, const float *b, float *y) {
  if (r->rc) return;
  r->flops += 2.0 * (double)M * K * w->shape[0];
  if (r->plan) return;
  r->rc = sd_op_linear(r->ex, x, M, K, w, b, y);
}

static void transpose(run *r, const float *x, int64_t rows, int64_t cols, float *y) {
  if (r->rc || r->plan) return;
  sd_op_transpose(r->ex, x, rows, cols, y);
}

/* ResNet block on x[cin, H, W] at end *e (in place when cin == cout, else the output moves
 * to the other end). Returns the output. */
static float *resnet(run *r, const resnet_p *p, int *e, float *x, int H, int W) {
  const int64_t HW = (int64_t)H * W;
  if (!p->has_sc) {
    int64_t m = rmark(r, *e);
    float *t = ralloc(r, *e, p->cout * HW), *h = ralloc(r, *e, p->cout * HW);
    if (!t || !h) return NULL;
    gn(r, &p->n1, x, HW, 1, t);
    conv3(r, &p->c1, t, H, W, h);
    gn(r, &p->n2, h, HW, 1, h);
    conv3(r, &p->c2, h, H, W, t);
    add(r, x, t, p->cout * HW);
    rreset(r, *e, m);
    return r->rc ? NULL : x;
  }
  /* shortcut first (it needs the un-normalised input), then normalise the input in place */
  int o_end = 1 - *e;
  float *o = ralloc(r, o_end, p->cout * HW);
  if (!o) return NULL;
  conv(r, &p->sc, x, H, W, 1, 0, 0, 0, 0, o);
  gn(r, &p->n1, x, HW, 1, x);
  float *h = ralloc(r, *e, p->cout * HW);
  if (!h) return NULL;
  conv3(r, &p->c1, x, H, W, h);
  gn(r, &p->n2, h, HW, 1, h);
  float *t = p->cin >= p->cout ? x : ralloc(r, *e, p->cout * HW); /* x is dead after conv1 */
  if (!t) return NULL;
  conv3(r, &p->c2, h, H, W, t);
  add(r, o, t, p->cout * HW);
  rreset(r, *e, 0);
  *e = o_end;
  return r->rc ? NULL : o;
}

/* Single-head self-attention over the H*W positions of x[C, H, W], in place (x += attn). */
static float *attention(run *r, const attn_p *p, int e, float *x, int H, int W) {
  const int64_t HW = (int64_t)H * W, C = p->C;
  int64_t m = rmark(r, e);
  float *g = ralloc(r, e, C * HW), *gt = ralloc(r, e, C * HW), *k = ralloc(r, e, C * HW),
        *v = ralloc(r, e, C * HW);
  if (!g || !gt || !k || !v) return NULL;
  gn(r, &p->gn, x, HW, 0, g);
  transpose(r, g, C, HW, gt);             /* [HW, C] */
  linear(r, gt, HW, C, p->q, p->qb, g);   /* q in g */
  linear(r, gt, HW, C, p->k, p->kb, k);
  linear(r, gt, HW, C, p->v, p->vb, v);
  if (!r->rc) {
    r->flops += 4.0 * (double)HW * HW * C;
    if (!r->plan) {
      sd_attn_shape s = {1, 1, (int)HW, (int)HW, (int)C, C, C, C, 0, 1.0f / sqrtf((float)C)};
      r->rc = sd_op_attention(r->ex, &s, g, k, v, gt);
    }
  }
  linear(r, gt, HW, C, p->o, p->ob, k);   /* [HW, C] */
  transpose(r, k, HW, C, g);              /* [C, HW] */
  add(r, x, g, C * HW);
  rreset(r, e, m);
  return r->rc ? NULL : x;
}

static float *mid_block(run *r, const mid_p *p, int *e, float *x, int H, int W) {
  if (!(x = resnet(r, &p->r0, e, x, H, W))) return NULL;
  if (!(x = attention(r, &p->at, *e, x, H, W))) return NULL;
  return resnet(r, &p->r1, e, x, H, W);
}

/* Gather rows [u0, u1) of the nearest-2x upsampling of x[C, H, W] into b[C, u1-u0, 2W]. */
typedef struct { const float *x; float *b; int H, W, u0, u1; } gather_job;

static void gather_task(void *ctx, int64_t c0, int64_t c1, int tid) {
  (void)tid;
  gather_job *j = ctx;
  const int W = j->W, W2 = 2 * W, nr = j->u1 - j->u0;
  for (int64_t c = c0; c < c1; c++) {
    const float *xc = j->x + c * (int64_t)j->H * W;
    float *bc = j->b + c * (int64_t)nr * W2;
    for (int u = j->u0; u < j->u1; u++) {
      const float *src = xc + (int64_t)(u / 2) * W;
      float *dst = bc + (int64_t)(u - j->u0) * W2;
      for (int i = 0; i < W; i++) dst[2 * i] = dst[2 * i + 1] = src[i];
    }
  }
}

/* Copy band output b[C, nr, Wo] into rows [r0, r0+nr) of y[C, Ho, Wo]. */
typedef struct { const float *b; float *y; int Ho, Wo, r0, nr; } place_job;

static void place_task(void *ctx, int64_t c0, int64_t c1, int tid) {
  (void)tid;
  place_job *j = ctx;
  for (int64_t c = c0; c < c1; c++)
    memcpy(j->y + (c * j->Ho + j->r0) * (int64_t)j->Wo, j->b + c * (int64_t)j->nr * j->Wo,
           (size_t)j->nr * j->Wo * sizeof(float));
}

/* Nearest 2x upsample then 3x3 conv (padding 1) of x[C, H, W] at end *e into [C', 2H, 2W] at
 * the other end, in row bands: the band's upsampled rows (plus one halo row either side) are
 * gathered into scratch, convolved with zero padding only at the image's top/bottom edge, and
 * the band's output rows placed into the output. */
static float *upsample_conv(run *r, const conv_p *p, int *e, float *x, int H, int W) {
  const int H2 = 2 * H, W2 = 2 * W, C = p->cin, Co = p->cout;
  int o_end = 1 - *e;
  float *o = ralloc(r, o_end, (int64_t)Co * H2 * W2);
  if (!o) return NULL;
  int64_t per_row = (int64_t)(C + Co) * W2;
  int64_t bh64 = VAE_BAND_FLOATS / per_row - 2;
  if (r->v->band_rows > 0 && bh64 > r->v->band_rows) bh64 = r->v->band_rows;
  int bh = bh64 < 1 ? 1 : bh64 > H2 ? H2 : (int)bh64;
  float *ib = ralloc(r, *e, (int64_t)C * (bh + 2) * W2), *ob = ralloc(r, *e, (int64_t)Co * bh * W2);
  if (!ib || !ob) return NULL;
  for (int r0 = 0; r0 < H2 && !r->rc; r0 += bh) {
    int r1 = r0 + bh < H2 ? r0 + bh : H2, nr = r1 - r0;
    int u0 = r0 > 0 ? r0 - 1 : 0, u1 = r1 < H2 ? r1 + 1 : H2;
    if (!r->plan) {
      gather_job gj = {x, ib, H, W, u0, u1};
      sd_parallel_for(r->ex->pool, C, 1, gather_task, &gj);
    }
    /* the band conv gives exactly nr rows: u1-u0 + pt + pb - 2 = nr */
    conv(r, p, ib, u1 - u0, W2, 1, r0 == 0, 1, r1 == H2, 1, ob);
    if (!r->plan && !r->rc) {
      place_job pj = {ob, o, H2, W2, r0, nr};
      sd_parallel_for(r->ex->pool, Co, 1, place_task, &pj);
    }
  }
  rreset(r, *e, 0);
  *e = o_end;
  return r->rc ? NULL : o;
}

/* Zero-pad right and bottom by one, then 3x3 conv stride 2 (diffusers Downsample2D with
 * padding 0): [C, H, W] -> [C, H/2, W/2] at the other end. */
static float *downsample(run *r, const conv_p *p, int *e, float *x, int H, int W) {
  int Ho = (H + 1 - 3) / 2 + 1, Wo = (W + 1 - 3) / 2 + 1, o_end = 1 - *e;
  float *o = ralloc(r, o_end, (int64_t)p->cout * Ho * Wo);
  if (!o) return NULL;
  conv(r, p, x, H, W, 2, 0, 0, 1, 1, o);
  rreset(r, *e, 0);
  *e = o_end;
  return r->rc ? NULL : o;
}

static int run_begin(run *r, sd_vae *v, sd_exec *ex, int plan, sd_arena *ar, int64_t cap) {
  memset(r, 0, sizeof *r);
  r->v = v, r->ex = ex, r->plan = plan;
  if (plan) {
    r->cap = INT64_MAX / 8;
    return SD_OK;
  }
  int rc = sd_arena_init_kept(ar, &ex->act, (size_t)cap * sizeof(float));
  if (rc) return sd_fail_prefix(rc, "VAE: ");
  r->base = sd_arena_f32(ar, cap);
  r->cap = cap;
  if (r->base) return SD_OK;
  sd_arena_free(ar); /* gives a kept block back */
  return SD_E_INTERNAL;
}

static const char *block_name(char *buf, size_t cap, const char *kind, int i) {
  snprintf(buf, cap, "%s.%d", kind, i);
  return buf;
}

/* Decoder pass. image may be NULL in plan mode. */
static int decode_pass(run *r, const float *latents, int h, int w, float *image) {
  sd_vae *v = r->v;
  const sd_vae_config *c = &v->cfg;
  const int N = c->n_levels, Z = c->latent_channels, CN = c->block_out_channels[N - 1];
  char name[64];
  int e = 0, H = h, W = w;
  int64_t HW = (int64_t)H * W;
  float *z = ralloc(r, 0, Z * HW);
  if (!z) return r->rc;
  if (!r->plan) {
    const float sf = c->scaling_factor;
    for (int64_t i = 0; i < Z * HW; i++) z[i] = latents[i] / sf;
  }
  float *x = ralloc(r, 1, Z * HW);
  if (!x) return r->rc;
  conv(r, &v->post_quant, z, H, W, 1, 0, 0, 0, 0, x);
  hook(r, "post_quant_conv", x, Z, H, W);
  rreset(r, 0, 0);
  z = ralloc(r, 0, CN * HW);
  if (!z) return r->rc;
  conv3(r, &v->d_conv_in, x, H, W, z);
  hook(r, "decoder.conv_in", z, CN, H, W);
  rreset(r, 1, 0);
  x = z;
  if (!(x = mid_block(r, &v->d_mid, &e, x, H, W))) return r->rc;
  hook(r, "decoder.mid_block", x, CN, H, W);
  int C = CN;
  for (int i = 0; i < N; i++) {
    const block_p *b = &v->d_up[i];
    for (int j = 0; j < b->n_res; j++)
      if (!(x = resnet(r, &b->res[j], &e, x, H, W))) return r->rc;
    C = b->res[b->n_res - 1].cout;
    if (b->has_sample) {
      if (!(x = upsample_conv(r, &b->sample, &e, x, H, W))) return r->rc;
      H *= 2, W *= 2;
    }
    hook(r, block_name(name, sizeof name, "decoder.up_blocks", i), x, C, H, W);
  }
  HW = (int64_t)H * W;
  int split = !r->plan && v->hook; /* the hook sees GroupNorm's output before SiLU */
  gn(r, &v->d_norm, x, HW, !split, x);
  if (split && !r->rc) {
    hook(r, "decoder.conv_norm_out", x, C, H, W);
    sd_op_silu(r->ex, x, C * HW);
  }
  conv3(r, &v->d_conv_out, x, H, W, image);
  return r->rc;
}

/* Encoder pass: latents[Z, H/f, W/f] in sampler space. */
static int encode_pass(run *r, const float *image, int H, int W, int sample, sd_vae_noise_fn noise,
                       void *noise_ctx, float *latents) {
  sd_vae *v = r->v;
  const sd_vae_config *c = &v->cfg;
  const int N = c->n_levels, Z = c->latent_channels, C0 = c->block_out_channels[0];
  const int CN = c->block_out_channels[N - 1];
  char name[64];
  int e = 0;
  float *x = ralloc(r, 0, (int64_t)C0 * H * W);
  if (!x) return r->rc;
  conv3(r, &v->e_conv_in, image, H, W, x);
  hook(r, "encoder.conv_in", x, C0, H, W);
  for (int i = 0; i < N; i++) {
    const block_p *b = &v->e_down[i];
    for (int j = 0; j < b->n_res; j++)
      if (!(x = resnet(r, &b->res[j], &e, x, H, W))) return r->rc;
    if (b->has_sample) {
      if (!(x = downsample(r, &b->sample, &e, x, H, W))) return r->rc;
      H /= 2, W /= 2;
    }
    hook(r, block_name(name, sizeof name, "encoder.down_blocks", i), x, b->res[b->n_res - 1].cout, H, W);
  }
  if (!(x = mid_block(r, &v->e_mid, &e, x, H, W))) return r->rc;
  hook(r, "encoder.mid_block", x, CN, H, W);
  const int64_t HW = (int64_t)H * W;
  gn(r, &v->e_norm, x, HW, 1, x);
  float *y = ralloc(r, 1 - e, 2 * Z * HW);
  if (!y) return r->rc;
  conv3(r, &v->e_conv_out, x, H, W, y);
  hook(r, "encoder.conv_out", y, 2 * Z, H, W);
  rreset(r, e, 0);
  float *mo = ralloc(r, e, 2 * Z * HW);
  if (!mo) return r->rc;
  conv(r, &v->quant, y, H, W, 1, 0, 0, 0, 0, mo);
  hook(r, "quant_conv", mo, 2 * Z, H, W);
  rreset(r, 1 - e, 0);
  float *eps = sample ? ralloc(r, 1 - e, Z * HW) : NULL;
  if (sample && !eps) return r->rc;
  if (r->plan || r->rc) return r->rc;
  const float sf = c->scaling_factor;
  const float *mean = mo, *logvar = mo + Z * HW;
  if (sample) {
    int rc = noise(noise_ctx, eps, Z * HW);
    if (rc) return sd_fail_prefix(rc, "VAE: drawing posterior noise: ");
    for (int64_t i = 0; i < Z * HW; i++) {
      float lv = logvar[i] < -30.0f ? -30.0f : logvar[i] > 20.0f ? 20.0f : logvar[i];
      float sd = expf(0.5f * lv);
      float s = mean[i] + sd * eps[i];
      latents[i] = s * sf;
    }
  } else {
    for (int64_t i = 0; i < Z * HW; i++) latents[i] = mean[i] * sf;
  }
  return SD_OK;
}

static int check_decode_size(const sd_vae *v, int h, int w) {
  int f = sd_vae_factor(v);
  if (h < 1 || w < 1 || h > VAE_MAX_PIXELS / f || w > VAE_MAX_PIXELS / f)
    return sd_fail(SD_E_ARG, "VAE: cannot decode a latent of height %d, width %d (1..%d each)", h, w,
                   VAE_MAX_PIXELS / f);
  return SD_OK;
}

static int check_encode_size(const sd_vae *v, int H, int W) {
  int f = sd_vae_factor(v);
  if (H < f || W < f || H % f || W % f || H > VAE_MAX_PIXELS || W > VAE_MAX_PIXELS)
    return sd_fail(SD_E_ARG, "VAE: cannot encode an image of height %d, width %d (multiples of %d, at most %d)", H,
                   W, f, VAE_MAX_PIXELS);
  if (!v->has_encoder) return sd_fail(SD_E_UNSUPPORTED, "VAE: the model has no encoder weights");
  return SD_OK;
}

static int plan_decode(sd_vae *v, int h, int w, run *r) {
  run_begin(r, v, NULL, 1, NULL, 0);
  return decode_pass(r, NULL, h, w, NULL);
}

static int plan_encode(sd_vae *v, int H, int W, int sample, run *r) {
  run_begin(r, v, NULL, 1, NULL, 0);
  return encode_pass(r, NULL, H, W, sample, NULL, NULL, NULL);
}

size_t sd_vae_decode_arena_bytes(const sd_vae *v, int h, int w) {
  run r;
  if (check_decode_size(v, h, w) || plan_decode((sd_vae *)v, h, w, &r)) return 0;
  return (size_t)r.peak * sizeof(float);
}

size_t sd_vae_encode_arena_bytes(const sd_vae *v, int H, int W) {
  run r;
  if (check_encode_size(v, H, W) || plan_encode((sd_vae *)v, H, W, 1, &r)) return 0;
  return (size_t)r.peak * sizeof(float);
}

size_t sd_vae_arena_bytes(const sd_vae *v, int h, int w) {
  size_t d = sd_vae_decode_arena_bytes(v, h, w);
  int f = sd_vae_factor(v);
  size_t en = v->has_encoder ? sd_vae_encode_arena_bytes(v, h * f, w * f) : 0;
  return d > en ? d : en;
}

double sd_vae_decode_flops(const sd_vae *v, int h, int w) {
  run r;
  if (check_decode_size(v, h, w) || plan_decode((sd_vae *)v, h, w, &r)) return 0;
  return r.flops;
}

double sd_vae_flops(const sd_vae *v, int h, int w) { return sd_vae_decode_flops(v, h, w); }

double sd_vae_encode_flops(const sd_vae *v, int H, int W) {
  run r;
  if (check_encode_size(v, H, W) || plan_encode((sd_vae *)v, H, W, 0, &r)) return 0;
  return r.flops;
}

int sd_vae_decode(sd_vae *v, sd_exec *ex, const float *latents, int h, int w, float *image) {
  int rc = check_decode_size(v, h, w);
  if (rc) return rc;
  run r;
  if ((rc = plan_decode(v, h, w, &r))) return rc;
  sd_arena ar;
  if ((rc = run_begin(&r, v, ex, 0, &ar, r.peak))) return rc;
  rc = decode_pass(&r, latents, h, w, image);
  sd_arena_free(&ar);
  return rc ? sd_fail_prefix(rc, "VAE decode: ") : SD_OK;
}

int sd_vae_encode(sd_vae *v, sd_exec *ex, const float *image, int H, int W, sd_vae_noise_fn noise,
                  void *noise_ctx, float *latents) {
  int rc = check_encode_size(v, H, W);
  if (rc) return rc;
  run r;
  if ((rc = plan_encode(v, H, W, noise != NULL, &r))) return rc;
  sd_arena ar;
  if ((rc = run_begin(&r, v, ex, 0, &ar, r.peak))) return rc;
  rc = encode_pass(&r, image, H, W, noise != NULL, noise, noise_ctx, latents);
  sd_arena_free(&ar);
  return rc ? sd_fail_prefix(rc, "VAE encode: ") : SD_OK;
}

/* ---- output mapping -------------------------------------------------------------------- */

void sd_vae_to_rgb8(const float *image, int H, int W, uint8_t *rgb) {
  const int64_t HW = (int64_t)H * W;
  for (int64_t p = 0; p < HW; p++) {
    for (int c = 0; c < 3; c++) {
      float x = image[c * HW + p];
      float t = x / 2.0f + 0.5f;
      t = t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t; /* NaN fails both tests: handled below */
      float s = t * 255.0f;
      float q = rintf(s); /* default rounding mode: ties to even, as numpy's round */
      rgb[p * 3 + c] = (uint8_t)(q >= 0.0f && q <= 255.0f ? q : 0.0f);
    }
  }
}
