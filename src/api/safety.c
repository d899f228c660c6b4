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
  sd_bank_free(m->bank);
  free(m->bank_path);
  m->lexical = NULL;
  m->bank = NULL;
  m->bank_path = NULL;
  int rc = concepts ? sd_bank_load(concepts, &m->bank) : sd_bank_load_default(&m->bank);
  if (rc) return sd_fail_prefix(rc, "concept bank: ");
  if ((rc = sd_lexical_create(m->bank, NULL, &m->lexical))) return rc;
  m->bank_path = strdup(want);
  return m->bank_path ? SD_OK : sd_fail(SD_E_NOMEM, "out of memory");
}

void sd_api_gate_free(sd_gate *g) {
  sd_detection_free(&g->det);
  free(g->safe_text);
  free(g->summary);
  free(g->categories);
  memset(g, 0, sizeof *g);
}

int sd_api_safety_gate(safesd_model *m, const char *concepts, const char *prompt, const char *strategy, sd_gate *g) {
  memset(g, 0, sizeof *g);
  int strat = sd_strategy_parse(strategy ? strategy : "substitute+append");
  if (strat < 0) return sd_fail(SD_E_ARG, "unknown safety strategy '%s' (append, substitute, substitute+append)", strategy);
  g->strategy = sd_strategy_name((sd_strategy)strat);
  int rc;
  if ((rc = need_detectors(m, concepts)) || (rc = sd_detector_run(m->lexical, prompt, NULL, &g->det))) return rc;
  g->flagged = g->det.fired;
  g->summary = sd_detection_summary(m->bank, &g->det);
  size_t cap = 1;
  for (int c = 0; c < m->bank->n_cats; c++) cap += strlen(m->bank->cats[c].name) + 2;
  g->categories = calloc(cap, 1);
  if (!g->summary || !g->categories) { sd_api_gate_free(g); return sd_fail(SD_E_NOMEM, "out of memory"); }
  for (int c = 0; c < m->bank->n_cats; c++)
    if (g->det.categories & (1u << c)) {
      if (*g->categories) strcat(g->categories, ", ");
      strcat(g->categories, m->bank->cats[c].name);
    }
  if (g->flagged && (rc = sd_safety_text(m->bank, prompt, &g->det, 1, (sd_strategy)strat, &g->safe_text))) {
    sd_api_gate_free(g);
    return rc;
  }
  return SD_OK;
}

int safesd_check(safesd_model *model, const char *prompt, const char *concepts, const char *strategy, int as_json,
                 FILE *out) {
  if (!prompt) return sd_fail(SD_E_ARG, "no prompt given");
  safesd_model tmp;
  memset(&tmp, 0, sizeof tmp);
  safesd_model *m = model ? model : &tmp; /* the lexical detector needs no weights */
  sd_gate g;
  int rc = sd_api_safety_gate(m, concepts, prompt, strategy, &g);
  if (rc == SD_OK) {
    if (as_json) {
      json_t *o = json_object(), *ev = json_array();
      json_object_set_new(o, "prompt", json_string(prompt));
      json_object_set_new(o, "flagged", json_boolean(g.flagged));
      json_object_set_new(o, "categories", json_string(g.categories));
      json_t *d = json_object();
      json_object_set_new(d, "detector", json_string(g.det.detector));
      json_object_set_new(d, "fired", json_boolean(g.det.fired));
      json_object_set_new(d, "score", json_real(g.det.score));
      json_object_set_new(d, "threshold", json_real(g.det.threshold));
      for (int i = 0; i < g.det.n_ev; i++) {
        const sd_evidence *e = &g.det.ev[i];
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
      json_t *dets = json_array();
      json_array_append_new(dets, d);
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
    sd_bank_free(tmp.bank);
    free(tmp.bank_path);
  }
  return rc;
}
