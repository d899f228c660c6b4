#include "models/clip_text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/error.h"

typedef struct {
  const sd_tensor *q_w, *k_w, *v_w, *o_w, *fc1_w, *fc2_w;
  float *q_b, *k_b, *v_b, *o_b, *fc1_b, *fc2_b;
  float *ln1_g, *ln1_b, *ln2_g, *ln2_b;
} clip_layer;

struct sd_clip_text {
  sd_clip_text_config cfg;
  const sd_tensor *tok_emb, *pos_emb;
  float *lnf_g, *lnf_b;
  clip_layer *layers;
};


/* Look up a weight with the expected shape; on success *dup (if non-NULL) gets a float32 copy. */
static int get(const sd_model_source *m, const char *name, int ndim, int64_t d0, int64_t d1,
               const sd_tensor **t, float **dup) {
  int64_t shape[2] = {d0, d1};
  const sd_tensor *w;
  int rc = sd_model_get(m, SD_COMP_TEXT, name, ndim, shape, &w);
  if (rc) return rc;
  if (t) *t = w;
  if (dup) {
    *dup = sd_weight_dup_f32(w);
    if (!*dup) return SD_E_NOMEM;
  }
  return SD_OK;
}

void sd_clip_text_free(sd_clip_text *te) {
  if (!te) return;
  if (te->layers) {
    for (int l = 0; l < te->cfg.layers; l++) {
      clip_layer *L = &te->layers[l];
      float *v[] = {L->q_b, L->k_b, L->v_b, L->o_b, L->fc1_b, L->fc2_b, L->ln1_g, L->ln1_b, L->ln2_g, L->ln2_b};
      for (size_t i = 0; i < sizeof v / sizeof *v; i++) free(v[i]);
    }
    free(te->layers);
  }
  free(te->lnf_g);
  free(te->lnf_b);
  free(te);
}

int sd_clip_text_create(const sd_model_source *m, sd_clip_text **out) {
  *out = NULL;
  int rc = sd_model_need(m, SD_COMP_TEXT);
  if (rc) return rc;
  sd_clip_text *te = calloc(1, sizeof *te);
  if (!te) return sd_fail(SD_E_NOMEM, "out of memory");
  te->cfg = *sd_model_text_config(m);
  const sd_clip_text_config *c = &te->cfg;
  if (c->hidden <= 0 || c->layers <= 0 || c->heads <= 0 || c->hidden % c->heads != 0 ||
      c->intermediate <= 0 || c->vocab_size <= 0 || c->max_positions <= 0) {
    sd_clip_text_free(te);
    return sd_fail(SD_E_FORMAT, "text encoder: inconsistent configuration (hidden %d, layers %d, heads %d)",
                   c->hidden, c->layers, c->heads);
  }
  const int64_t D = c->hidden, I = c->intermediate;
  char n[160];
  if ((rc = get(m, "text_model.embeddings.token_embedding.weight", 2, c->vocab_size, D, &te->tok_emb, NULL)) ||
      (rc = get(m, "text_model.embeddings.position_embedding.weight", 2, c->max_positions, D, &te->pos_emb, NULL)) ||
      (rc = get(m, "text_model.final_layer_norm.weight", 1, D, 0, NULL, &te->lnf_g)) ||
      (rc = get(m, "text_model.final_layer_norm.bias", 1, D, 0, NULL, &te->lnf_b)))
    goto fail;
  te->layers = calloc((size_t)c->layers, sizeof(clip_layer));
  if (!te->layers) { rc = sd_fail(SD_E_NOMEM, "out of memory"); goto fail; }
  for (int l = 0; l < c->layers; l++) {
    clip_layer *L = &te->layers[l];
#define P(suffix) (snprintf(n, sizeof n, "text_model.encoder.layers.%d.%s", l, suffix), n)
    if ((rc = get(m, P("self_attn.q_proj.weight"), 2, D, D, &L->q_w, NULL)) ||
        (rc = get(m, P("self_attn.k_proj.weight"), 2, D, D, &L->k_w, NULL)) ||
        (rc = get(m, P("self_attn.v_proj.weight"), 2, D, D, &L->v_w, NULL)) ||
        (rc = get(m, P("self_attn.out_proj.weight"), 2, D, D, &L->o_w, NULL)) ||
        (rc = get(m, P("self_attn.q_proj.bias"), 1, D, 0, NULL, &L->q_b)) ||
        (rc = get(m, P("self_attn.k_proj.bias"), 1, D, 0, NULL, &L->k_b)) ||
        (rc = get(m, P("self_attn.v_proj.bias"), 1, D, 0, NULL, &L->v_b)) ||
        (rc = get(m, P("self_attn.out_proj.bias"), 1, D, 0, NULL, &L->o_b)) ||
        (rc = get(m, P("layer_norm1.weight"), 1, D, 0, NULL, &L->ln1_g)) ||
        (rc = get(m, P("layer_norm1.bias"), 1, D, 0, NULL, &L->ln1_b)) ||
        (rc = get(m, P("layer_norm2.weight"), 1, D, 0, NULL, &L->ln2_g)) ||
        (rc = get(m, P("layer_norm2.bias"), 1, D, 0, NULL, &L->ln2_b)) ||
        (rc = get(m, P("mlp.fc1.weight"), 2, I, D, &L->fc1_w, NULL)) ||
        (rc = get(m, P("mlp.fc1.bias"), 1, I, 0, NULL, &L->fc1_b)) ||
        (rc = get(m, P("mlp.fc2.weight"), 2, D, I, &L->fc2_w, NULL)) ||
        (rc = get(m, P("mlp.fc2.bias"), 1, D, 0, NULL, &L->fc2_b)))
      goto fail;
#undef P
  }
  *out = te;
  return SD_OK;
fail:
  sd_clip_text_free(te);
  return sd_fail_prefix(rc, "text encoder: ");
}

const sd_clip_text_config *sd_clip_text_cfg(const sd_clip_text *te) { return &te->cfg; }

size_t sd_clip_text_arena_bytes(const sd_clip_text *te, int batch, int seq) {
  int64_t T = (int64_t)batch * seq, D = te->cfg.hidden, I = te->cfg.intermediate;
  /* alive at the widest point: x, h, q, k, v, attention output (= 6 × T×D) or x, h, mlp (T×I) */
  return 6 * sd_arena_f32_bytes(T * D) + sd_arena_f32_bytes(T * I);
}

double sd_clip_text_flops(const sd_clip_text *te, int batch, int seq) {
  double T = (double)batch * seq, D = te->cfg.hidden, I = te->cfg.intermediate;
  double per_layer = 2 * T * D * D * 4 + 2 * T * D * I * 2 + 2.0 * batch * seq * seq * D * 2 / 2;
  return per_layer * te->cfg.layers;
}

int sd_clip_text_encode(sd_clip_text *te, sd_exec *ex, const int32_t *ids, int batch, int seq,
                        const sd_clip_text_opts *opts, float *out) {
  const sd_clip_text_config *c = &te->cfg;
  int clip_skip = opts ? opts->clip_skip : 1;
  int final_norm = opts ? opts->final_norm : 1;
  if (clip_skip < 1) clip_skip = 1;
  if (clip_skip > c->layers)
    return sd_fail(SD_E_ARG, "clip skip %d is larger than the text encoder's %d layers", clip_skip, c->layers);
  if (batch <= 0 || seq <= 0 || seq > c->max_positions)
    return sd_fail(SD_E_ARG, "text encoder: %d tokens per sequence (it takes 1..%d)", seq, c->max_positions);
  const int64_t T = (int64_t)batch * seq, D = c->hidden, I = c->intermediate;
  for (int64_t i = 0; i < T; i++)
    if (ids[i] < 0 || ids[i] >= c->vocab_size)
      return sd_fail(SD_E_ARG, "token id %d at position %lld is outside the vocabulary (0..%d)", ids[i],
                     (long long)i, c->vocab_size - 1);

  sd_arena ar;
  int rc = sd_arena_init(&ar, sd_clip_text_arena_bytes(te, batch, seq));
  if (rc) return rc;
  float *x = sd_arena_f32(&ar, T * D);
  float *h = sd_arena_f32(&ar, T * D);
  size_t layer_mark = sd_arena_mark(&ar);

  /* embeddings: token rows (converted from the stored dtype) + positions */
  size_t es = sd_dtype_size(te->tok_emb->dtype), ps = sd_dtype_size(te->pos_emb->dtype);
  for (int b = 0; b < batch; b++) {
    for (int s = 0; s < seq; s++) {
      float *row = x + ((int64_t)b * seq + s) * D;
      sd_to_f32(row, (const unsigned char *)te->tok_emb->data + (size_t)ids[(int64_t)b * seq + s] * D * es,
                te->tok_emb->dtype, (size_t)D);
      sd_to_f32(h, (const unsigned char *)te->pos_emb->data + (size_t)s * D * ps, te->pos_emb->dtype, (size_t)D);
      for (int64_t d = 0; d < D; d++) row[d] += h[d];
    }
  }

  const int n_layers = c->layers - (clip_skip - 1);
  const int Dh = (int)(D / c->heads);
  sd_attn_shape as = {batch, c->heads, seq, seq, Dh, D, D, D, 1, 1.0f / sqrtf((float)Dh)};
  for (int l = 0; l < n_layers && rc == SD_OK; l++) {
    clip_layer *L = &te->layers[l];
    sd_arena_reset(&ar, layer_mark);
    /* self-attention block */
    sd_op_layernorm(ex, x, T, D, L->ln1_g, L->ln1_b, c->ln_eps, h);
    float *q = sd_arena_f32(&ar, T * D), *k = sd_arena_f32(&ar, T * D), *v = sd_arena_f32(&ar, T * D);
    float *a = sd_arena_f32(&ar, T * D);
    if (!q || !k || !v || !a) { rc = SD_E_INTERNAL; break; }
    if ((rc = sd_op_linear(ex, h, T, D, L->q_w, L->q_b, q)) || (rc = sd_op_linear(ex, h, T, D, L->k_w, L->k_b, k)) ||
        (rc = sd_op_linear(ex, h, T, D, L->v_w, L->v_b, v)) || (rc = sd_op_attention(ex, &as, q, k, v, a)) ||
        (rc = sd_op_linear(ex, a, T, D, L->o_w, L->o_b, h)))
      break;
    sd_op_add(ex, x, h, T * D);
    /* MLP block */
    sd_arena_reset(&ar, layer_mark);
    float *mlp = sd_arena_f32(&ar, T * I);
    if (!mlp) { rc = SD_E_INTERNAL; break; }
    sd_op_layernorm(ex, x, T, D, L->ln2_g, L->ln2_b, c->ln_eps, h);
    if ((rc = sd_op_linear(ex, h, T, D, L->fc1_w, L->fc1_b, mlp))) break;
    if (c->act == SD_ACT_GELU) sd_op_gelu(ex, mlp, T * I);
    else sd_op_quick_gelu(ex, mlp, T * I);
    if ((rc = sd_op_linear(ex, mlp, T, I, L->fc2_w, L->fc2_b, h))) break;
    sd_op_add(ex, x, h, T * D);
  }
  if (rc == SD_OK) {
    if (final_norm) sd_op_layernorm(ex, x, T, D, te->lnf_g, te->lnf_b, c->ln_eps, out);
    else memcpy(out, x, (size_t)(T * D) * sizeof(float));
  }
  sd_arena_free(&ar);
  return rc ? sd_fail_prefix(rc, "text encoder: ") : SD_OK;
}
