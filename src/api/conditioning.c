/* The text conditioning of a generation: prompts in their syntax (text/prompt.h) cut into
 * 77-token chunks, each chunk encoded by the text encoder, AUTOMATIC1111's emphasis applied,
 * the chunks concatenated along the sequence (docs/prompts.md).
 *
 * Emphasis (A1111's "Original"): per chunk, z <- z * weight (each token's hidden state times
 * its multiplier), then z <- z * (mean(z before) / mean(z after)), the means over the
 * chunk's 77 x D values. A chunk whose weights are all 1 is left alone (the same bytes: the
 * rescale would be by exactly 1). A prompt with one chunk and no weight is therefore encoded
 * exactly as before the syntax existed.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "safesd.h"

#include "api/api_internal.h"
#include "core/error.h"

int sd_api_prompt_chunks(safesd_model *m, const char *text, sd_prompt_syntax s, const char *what,
                         sd_prompt_chunks *out) {
  int rc = sd_api_need_text(m);
  if (rc) return rc;
  return sd_prompt_tokenize(m->tok, text ? text : "", s, sd_clip_text_cfg(m->text)->pad_id, what, out);
}

/* A1111's emphasis on one chunk's states z[77, D] with weights w[77]. */
static void emphasis(float *z, const float *w, int D) {
  const int64_t n = (int64_t)SD_CLIP_CONTEXT * D;
  double s0 = 0, s1 = 0;
  for (int64_t i = 0; i < n; i++) s0 += z[i];
  for (int t = 0; t < SD_CLIP_CONTEXT; t++)
    for (int d = 0; d < D; d++) z[(int64_t)t * D + d] *= w[t];
  for (int64_t i = 0; i < n; i++) s1 += z[i];
  const float m0 = (float)(s0 / (double)n), m1 = (float)(s1 / (double)n);
  if (m1 == 0.0f || !isfinite(m1)) return; /* A1111 would divide by zero: leave the weighted states */
  const float r = m0 / m1;
  for (int64_t i = 0; i < n; i++) z[i] *= r;
}

static int chunk_weighted(const sd_prompt_chunks *c, int k) {
  const float *w = c->weights + (size_t)k * SD_CLIP_CONTEXT;
  for (int i = 0; i < SD_CLIP_CONTEXT; i++)
    if (w[i] != 1.0f) return 1;
  return 0;
}

int sd_api_encode_chunks(safesd_model *m, const sd_prompt_chunks *const *cs, int nt, int L, int clip_skip,
                         float *out) {
  int rc = sd_api_need_text(m);
  if (rc) return rc;
  if (nt < 1 || L < 1 || L > SD_PROMPT_MAX_CHUNKS) return sd_fail(SD_E_ARG, "conditioning: bad chunk count");
  const int D = sd_clip_text_cfg(m->text)->hidden;
  const int64_t per = (int64_t)SD_CLIP_CONTEXT * D, row = per * L;
  int32_t *ids = malloc(sizeof *ids * SD_CLIP_CONTEXT * (size_t)nt);
  float *z = L > 1 ? malloc(sizeof *z * (size_t)per * (size_t)nt) : NULL;
  if (!ids || (L > 1 && !z)) {
    free(ids);
    free(z);
    return sd_fail(SD_E_NOMEM, "out of memory");
  }
  int32_t empty[SD_CLIP_CONTEXT];
  sd_prompt_empty_chunk(m->tok, sd_clip_text_cfg(m->text)->pad_id, empty);
  sd_clip_text_opts o = {clip_skip, 1};
  for (int k = 0; k < L && !rc; k++) {
    /* chunk k of every text as one batch (the empty chunk for a text with fewer chunks) */
    for (int t = 0; t < nt; t++)
      memcpy(ids + (size_t)t * SD_CLIP_CONTEXT, k < cs[t]->n ? cs[t]->ids + (size_t)k * SD_CLIP_CONTEXT : empty,
             sizeof empty);
    float *dst = L > 1 ? z : out; /* one chunk: straight into out ([nt, 77, D]) */
    if ((rc = sd_clip_text_encode(m->text, m->ex, ids, nt, SD_CLIP_CONTEXT, &o, dst))) break;
    for (int t = 0; t < nt; t++) {
      if (k < cs[t]->n && chunk_weighted(cs[t], k))
        emphasis(dst + per * t, cs[t]->weights + (size_t)k * SD_CLIP_CONTEXT, D);
      if (L > 1) memcpy(out + row * t + per * k, dst + per * t, sizeof *out * (size_t)per);
    }
  }
  free(ids);
  free(z);
  return rc;
}

int safesd_encode_text(safesd_model *m, const char *prompt, const char *prompt_syntax, int clip_skip, float **out,
                       int *n_tokens) {
  if (!m || !prompt || !out || !n_tokens) return sd_fail(SD_E_ARG, "encode: NULL argument");
  *out = NULL;
  *n_tokens = 0;
  sd_prompt_syntax s;
  int rc;
  if ((rc = sd_prompt_syntax_parse(prompt_syntax, &s)) || (rc = sd_text_check_utf8("the prompt", prompt))) return rc;
  sd_prompt_chunks c;
  if ((rc = sd_api_prompt_chunks(m, prompt, s, "the prompt", &c))) return rc;
  const int D = sd_clip_text_cfg(m->text)->hidden;
  float *e = malloc(sizeof *e * (size_t)SD_CLIP_CONTEXT * (size_t)D * (size_t)c.n);
  const sd_prompt_chunks *cp = &c;
  if (!e) rc = sd_fail(SD_E_NOMEM, "out of memory");
  else rc = sd_api_encode_chunks(m, &cp, 1, c.n, clip_skip, e);
  if (!rc) {
    *out = e;
    *n_tokens = SD_CLIP_CONTEXT * c.n;
  } else {
    free(e);
  }
  sd_prompt_chunks_free(&c);
  return rc;
}
