/* The safety gate of the public API: named levels, the concept bank and the detectors that
 * decide whether a prompt takes the dual path, and `safesd_check`.
 *
 * A prompt no enabled detector flags is generated exactly as with safety off (the gate
 * returns "not flagged" and generate.c runs the plain loop). A flagged prompt gets the
 * safe text of the chosen strategy (safety/strategy.h) as e_s and the level's (λ, τ_gc).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "safesd.h"

#include "api/api_internal.h"
#include "core/error.h"
#include "safety/lexical.h"
#include "safety/semantic.h"
#include "safety/strategy.h"

/* Named levels → (λ, τ_gc). PROVISIONAL: chosen by reasoning about the method (more weight
 * on the safe stream and a shorter context phase as the level rises), not yet from measured
 * safety–preservation curves; the evaluation harness will set them (docs/safety.md). */
static const struct { const char *name; float weight, context; } k_levels[] = {
    {"off", 0.0f, 0.0f}, {"low", 0.5f, 0.3f}, {"medium", 0.7f, 0.2f}, {"high", 0.85f, 0.1f}, {"max", 1.0f, 0.0f}};

int sd_api_safety_level(const char *name, float *weight, float *context) {
  const char *n = name ? name : "off";
  for (size_t i = 0; i < sizeof k_levels / sizeof *k_levels; i++)
    if (!strcmp(n, k_levels[i].name)) {
      *weight = k_levels[i].weight;
      *context = k_levels[i].context;
      return (int)i;
    }
  return sd_fail(SD_E_ARG, "unknown safety level '%s' (off, low, medium, high, max)", n);
}

/* The bank (from `concepts`, or the bundled default) and the lexical detector, cached on
 * the model and rebuilt when another bank is asked for. */
static int need_detectors(safesd_model *m, const char *concepts) {
  const char *want = concepts ? concepts : "";
  if (m->bank && m->bank_path && !strcmp(m->bank_path, want)) return SD_OK;
  sd_detector_free(m->lexical);
  sd_detector_free(m->semantic);
  sd_bank_free(m->bank);
  free(m->bank_path);
  m->lexical = NULL;
  m->semantic = NULL;
  m->bank = NULL;
  m->bank_path = NULL;
  int rc = concepts ? sd_bank_load(concepts, &m->bank) : sd_bank_load_default(&m->bank);
  if (rc) return sd_fail_prefix(rc, "concept bank: ");
  if ((rc = sd_lexical_create(m->bank, NULL, &m->lexical))) return rc;
  m->bank_path = strdup(want);
  return m->bank_path ? SD_OK : sd_fail(SD_E_NOMEM, "out of memory");
}

void sd_api_gate_free(sd_gate *g) {
  for (int i = 0; i < g->n_det; i++) sd_detection_free(&g->det[i]);
  free(g->safe_text);
  free(g->summary);
  free(g->categories);
  memset(g, 0, sizeof *g);
}

/* Parse a detector list: bit 0 lexical, bit 1 semantic. */
static int parse_detectors(const char *list, int *mask) {
  *mask = 0;
  const char *p = list ? list : "lexical";
  while (*p) {
    size_t n = strcspn(p, ",");
    if (n == 7 && !strncmp(p, "lexical", n)) *mask |= 1;
    else if (n == 8 && !strncmp(p, "semantic", n)) *mask |= 2;
    else return sd_fail(SD_E_ARG, "unknown detector list '%.64s' (lexical, semantic, or both with a comma)", list);
    p += n;
    if (*p == ',') p++;
  }
  return *mask ? SD_OK : sd_fail(SD_E_ARG, "no detector given");
}

static int run_semantic(safesd_model *m, const sd_gate_opts *o, const char *prompt, sd_detection *out) {
  int rc;
  if (!m->src) return sd_fail(SD_E_ARG, "the semantic detector needs a model (its text encoder): give -m");
  if ((rc = sd_api_need_text(m))) return rc;
  if (!m->semantic && (rc = sd_semantic_create(m->bank, NULL, &m->semantic))) return rc;
  sd_detector_set_threshold(m->semantic, isnan(o->semantic_threshold) ? SD_SEMANTIC_DEFAULT_THRESHOLD
                                                                      : o->semantic_threshold);
  sd_semantic_encoder enc = {m->tok, m->text, m->ex, sd_clip_text_cfg(m->text)->pad_id, m->src};
  return sd_detector_run(m->semantic, prompt, &enc, out);
}

int sd_api_safety_gate(safesd_model *m, const sd_gate_opts *o, const char *prompt, sd_gate *g) {
  memset(g, 0, sizeof *g);
  int strat = sd_strategy_parse(o->strategy ? o->strategy : "substitute+append"), mask, rc;
  if (strat < 0) return sd_fail(SD_E_ARG, "unknown safety strategy '%s' (append, substitute, substitute+append)", o->strategy);
  g->strategy = sd_strategy_name((sd_strategy)strat);
  if ((rc = parse_detectors(o->detectors, &mask)) || (rc = need_detectors(m, o->concepts))) return rc;
  if ((mask & 1) && (rc = sd_detector_run(m->lexical, prompt, NULL, &g->det[g->n_det++]))) goto fail;
  if ((mask & 2) && (rc = run_semantic(m, o, prompt, &g->det[g->n_det++]))) goto fail;
  uint32_t cats = 0;
  size_t cap = 1;
  for (int i = 0; i < g->n_det; i++) cats |= g->det[i].categories;
  g->flagged = cats != 0;
  for (int c = 0; c < m->bank->n_cats; c++) cap += strlen(m->bank->cats[c].name) + 2;
  g->categories = calloc(cap, 1);
  if (!g->categories) { rc = sd_fail(SD_E_NOMEM, "out of memory"); goto fail; }
  for (int c = 0; c < m->bank->n_cats; c++)
    if (cats & (1u << c)) {
      if (*g->categories) strcat(g->categories, ", ");
      strcat(g->categories, m->bank->cats[c].name);
    }
  for (int i = 0; i < g->n_det; i++) {
    char *one = sd_detection_summary(m->bank, &g->det[i]);
    size_t len = (g->summary ? strlen(g->summary) + 2 : 0) + (one ? strlen(one) : 0) + 1;
    char *joined = one ? malloc(len) : NULL;
    if (joined) snprintf(joined, len, "%s%s%s", g->summary ? g->summary : "", g->summary ? "; " : "", one);
    free(one);
    free(g->summary);
    g->summary = joined;
    if (!joined) { rc = sd_fail(SD_E_NOMEM, "out of memory"); goto fail; }
  }
  if (g->flagged && (rc = sd_safety_text(m->bank, prompt, g->det, g->n_det, (sd_strategy)strat, &g->safe_text)))
    goto fail;
  return SD_OK;
fail:
  sd_api_gate_free(g);
  return rc;
}

int safesd_check(safesd_model *model, const char *prompt, const char *concepts, const char *strategy,
                 const char *detectors, float semantic_threshold, int as_json, FILE *out) {
  if (!prompt) return sd_fail(SD_E_ARG, "no prompt given");
  safesd_model tmp;
  memset(&tmp, 0, sizeof tmp);
  safesd_model *m = model ? model : &tmp; /* the lexical detector needs no weights */
  sd_gate g;
  sd_gate_opts go = {concepts, strategy, detectors, semantic_threshold};
  int rc = sd_api_safety_gate(m, &go, prompt, &g);
  if (rc == SD_OK) {
    if (as_json) {
      json_t *o = json_object(), *dets = json_array();
      json_object_set_new(o, "prompt", json_string(prompt));
      json_object_set_new(o, "flagged", json_boolean(g.flagged));
      json_object_set_new(o, "categories", json_string(g.categories));
      for (int k = 0; k < g.n_det; k++) {
        const sd_detection *dt = &g.det[k];
        json_t *d = json_object(), *ev = json_array();
        json_object_set_new(d, "detector", json_string(dt->detector));
        json_object_set_new(d, "fired", json_boolean(dt->fired));
        json_object_set_new(d, "score", json_real(dt->score));
        json_object_set_new(d, "threshold", json_real(dt->threshold));
        for (int i = 0; i < dt->n_ev; i++) {
          const sd_evidence *e = &dt->ev[i];
          json_t *x = json_object();
          json_object_set_new(x, "category", json_string(m->bank->cats[e->category].name));
          json_object_set_new(x, "matched", json_string(e->matched ? e->matched : ""));
          json_object_set_new(x, "term", json_string(e->term ? e->term : ""));
          json_object_set_new(x, "via", json_string(e->via ? e->via : ""));
          json_object_set_new(x, "start", json_integer((json_int_t)e->start));
          json_object_set_new(x, "end", json_integer((json_int_t)e->end));
          json_array_append_new(ev, x);
        }
        json_object_set_new(d, "evidence", ev);
        json_array_append_new(dets, d);
      }
      json_object_set_new(o, "detectors", dets);
      json_object_set_new(o, "strategy", json_string(g.strategy));
      json_object_set_new(o, "safe_text", g.safe_text ? json_string(g.safe_text) : json_null());
      json_dumpf(o, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
      fputc('\n', out);
      json_decref(o);
    } else {
      fprintf(out, "verdict:    %s\n", g.flagged ? "FLAGGED" : "not flagged");
      if (g.flagged) fprintf(out, "categories: %s\n", g.categories);
      fprintf(out, "%s\n", g.summary);
      if (g.flagged) fprintf(out, "safe text (%s): %s\n", g.strategy, g.safe_text);
    }
  }
  sd_api_gate_free(&g);
  if (m == &tmp) {
    sd_detector_free(tmp.lexical);
    sd_detector_free(tmp.semantic);
    sd_bank_free(tmp.bank);
    free(tmp.bank_path);
  }
  return rc;
}
