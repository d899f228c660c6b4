/* The K/V second-order statistics of an edited checkpoint against its base (docs/evaluation.md,
 * "Metrics": K/V cov shift), split from report.c. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safesd.h"
#include "api/api_internal.h"
#include "core/error.h"
#include "eval/harness_internal.h"
#include "eval/metrics.h"

static json_t *jnum(double v) { return isfinite(v) ? json_real(v) : json_null(); }

/* ---- K/V second-order statistics ------------------------------------------------------- */

static int encode_rows(safesd_model *m, safesd_tokenizer *tok, char **prompts, int n, float **out, int64_t *rows) {
  int D = safesd_model_text_dim(m);
  float *e = malloc(sizeof(float) * SAFESD_TOKENS * (size_t)D);
  float *all = malloc(sizeof(float) * SAFESD_TOKENS * (size_t)D * (size_t)n);
  int64_t r = 0;
  int rc = e && all ? SD_OK : sd_fail(SD_E_NOMEM, "out of memory");
  for (int i = 0; i < n && rc == SD_OK; i++) {
    int32_t ids[SAFESD_TOKENS];
    int len = safesd_tokenize(tok, prompts[i], safesd_model_pad_id(m), ids);
    if (len < 0) { rc = len; break; }
    if ((rc = safesd_encode_prompt(m, prompts[i], 1, e))) break;
    /* the prompt's own states: its tokens and its end-of-text token (positions 1..len-1) */
    for (int s = 1; s < len; s++) memcpy(all + (size_t)r++ * D, e + (size_t)s * D, sizeof(float) * (size_t)D);
  }
  free(e);
  if (rc) {
    free(all);
    return rc;
  }
  *out = all;
  *rows = r;
  return SD_OK;
}

static int ends_with(const char *s, const char *t) {
  size_t a = strlen(s), b = strlen(t);
  return a >= b && !strcmp(s + a - b, t);
}

int sd_eval_kv_model(const char *base_path, const char *method_path, char **prompts, int n, json_t **out) {
  *out = NULL;
  safesd_model *b = NULL, *m = NULL;
  safesd_tokenizer *tb = NULL, *tm = NULL;
  float *eb = NULL, *em = NULL, *kb = NULL, *km = NULL;
  int64_t rb = 0, rm = 0;
  int rc;
  if ((rc = safesd_model_open(base_path, NULL, &b)) || (rc = safesd_model_open(method_path, NULL, &m)) ||
      (rc = safesd_tokenizer_open(base_path, &tb)) || (rc = safesd_tokenizer_open(method_path, &tm)))
    goto done;
  if (safesd_model_text_dim(b) != safesd_model_text_dim(m)) {
    rc = sd_fail(SD_E_FORMAT, "%s and %s have text encoders of different widths", base_path, method_path);
    goto done;
  }
  if ((rc = encode_rows(b, tb, prompts, n, &eb, &rb)) || (rc = encode_rows(m, tm, prompts, n, &em, &rm))) goto done;
  if (rb != rm || rb < 2) {
    rc = sd_fail(SD_E_ARG, "K/V statistics: %lld / %lld token states (need the same number, at least 2)", (long long)rb,
                 (long long)rm);
    goto done;
  }
  const sd_component_weights *cw = sd_model_weights(b->src, SD_COMP_UNET);
  if (!cw || !cw->present) { rc = sd_fail(SD_E_FORMAT, "%s: no UNet", base_path); goto done; }
  json_t *layers = json_array();
  double sk = 0, sv = 0, mk = 0, mv = 0;
  int nk = 0, nv = 0;
  int D = safesd_model_text_dim(b);
  for (size_t i = 0; i < cw->n && rc == SD_OK; i++) {
    const char *name = cw->w[i].name;
    int is_k = ends_with(name, "attn2.to_k.weight"), is_v = ends_with(name, "attn2.to_v.weight");
    if (!is_k && !is_v) continue;
    const sd_tensor *wb = &cw->w[i].t, *wm = sd_model_find(m->src, SD_COMP_UNET, name);
    if (!wm || wm->ndim != 2 || wb->ndim != 2 || wm->shape[0] != wb->shape[0] || wm->shape[1] != wb->shape[1] ||
        wb->shape[1] != D) {
      rc = sd_fail(SD_E_FORMAT, "%s: %s is missing or differs in shape from the base model's", method_path, name);
      break;
    }
    int64_t inner = wb->shape[0];
    free(kb);
    free(km);
    kb = malloc(sizeof(float) * (size_t)(rb * inner));
    km = malloc(sizeof(float) * (size_t)(rb * inner));
    if (!kb || !km) { rc = sd_fail(SD_E_NOMEM, "out of memory"); break; }
    if ((rc = sd_op_linear(b->ex, eb, rb, D, wb, NULL, kb)) || (rc = sd_op_linear(m->ex, em, rb, D, wm, NULL, km))) break;
    double mr, cr;
    if ((rc = sd_second_order_distance(kb, km, rb, inner, &mr, &cr))) break;
    json_t *l = json_object();
    json_object_set_new(l, "name", json_string(name));
    json_object_set_new(l, "mean_rel", jnum(mr));
    json_object_set_new(l, "cov_rel", jnum(cr));
    json_array_append_new(layers, l);
    if (is_k) sk += cr, mk += mr, nk++;
    else sv += cr, mv += mr, nv++;
  }
  if (rc == SD_OK) {
    json_t *o = json_object();
    json_object_set_new(o, "token_states", json_integer(rb));
    json_object_set_new(o, "k_cov_rel", nk ? jnum(sk / nk) : json_null());
    json_object_set_new(o, "v_cov_rel", nv ? jnum(sv / nv) : json_null());
    json_object_set_new(o, "k_mean_rel", nk ? jnum(mk / nk) : json_null());
    json_object_set_new(o, "v_mean_rel", nv ? jnum(mv / nv) : json_null());
    json_object_set_new(o, "layers", layers);
    *out = o;
  } else {
    json_decref(layers);
  }
done:
  free(eb);
  free(em);
  free(kb);
  free(km);
  safesd_tokenizer_close(tb);
  safesd_tokenizer_close(tm);
  safesd_model_close(b);
  safesd_model_close(m);
  return rc;
}
