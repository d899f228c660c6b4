/* The detector plug-in interface (method.md §2.1).
 *
 * A detector looks at the prompt (and, for detectors that need it, the model's text
 * encoder) and returns an sd_detection: a score, the categories it fired for (a bitmask
 * over the concept bank's categories, bit c = bank->cats[c]), the threshold it used, and
 * human-readable evidence. Detectors are OR-combined by the caller: a prompt is flagged
 * if any enabled detector fires. Each can be disabled or re-thresholded at run time.
 *
 * Implementations: the lexical detector (safety/lexical.h). The semantic detector (text
 * encoder space) will plug in through the same vtable.
 */
#ifndef SD_SAFETY_DETECTOR_H
#define SD_SAFETY_DETECTOR_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/error.h"

typedef struct {
  int category;       /* bank category index */
  size_t start, end;  /* byte span in the original prompt */
  char *matched;      /* the prompt text of the span (as written) */
  char *term;         /* the bank term (or WordNet lemma) it matched */
  char *via;          /* how: "exact", "leetspeak", "separators", "repeats", "unicode",
                         "confusable", "stem", "compound", "masked", "split", "typo",
                         "reversed", "rot13", "pig latin", "vowels dropped", "nato",
                         "emoji:water pistol", "lang:fr", "wordnet:gun#1", "wordnet:gloss"
                         (comma-joined when several) */
  int token;          /* the framed token position (BOS = 0) this evidence is about, when the
                         detector knows it (semantic, token-level match); 0 = none (BOS is
                         never one). The `project` strategy moves that position. */
} sd_evidence;

typedef struct {
  const char *detector; /* name of the detector that produced it (static string) */
  float score;          /* the highest per-category score */
  float threshold;      /* the threshold the detector used */
  uint32_t categories;  /* categories whose score reached the threshold */
  int fired;            /* categories != 0 */
  float cat_score[32];  /* per-category scores */
  sd_evidence *ev;
  int n_ev;
} sd_detection;

static inline void sd_detection_free(sd_detection *d) {
  if (!d) return;
  for (int i = 0; i < d->n_ev; i++) {
    free(d->ev[i].matched);
    free(d->ev[i].term);
    free(d->ev[i].via);
  }
  free(d->ev);
  d->ev = NULL;
  d->n_ev = 0;
}

typedef struct sd_detector sd_detector;

typedef struct {
  const char *name;
  /* Fill *out (zeroed by the caller) for `prompt`. `encoder` is the model's text encoder
   * (opaque; NULL when none is loaded: detectors that need it return SD_E_ARG). The
   * detector compares its scores with `threshold`. */
  int (*detect)(sd_detector *d, const char *prompt, const void *encoder, float threshold, sd_detection *out);
  void (*destroy)(sd_detector *d);
} sd_detector_vtable;

struct sd_detector {
  const sd_detector_vtable *vt;
  int enabled;     /* 0: sd_detector_run returns an empty detection */
  float threshold; /* the detector's threshold; set by the user or a calibration file */
  void *impl;
};

static inline int sd_detector_run(sd_detector *d, const char *prompt, const void *encoder, sd_detection *out) {
  if (!d || !d->vt || !out || !prompt) return sd_fail(SD_E_ARG, "sd_detector_run: NULL argument");
  *out = (sd_detection){0};
  out->detector = d->vt->name;
  out->threshold = d->threshold;
  if (!d->enabled) return SD_OK;
  int rc = d->vt->detect(d, prompt, encoder, d->threshold, out);
  if (rc) sd_detection_free(out);
  return rc;
}
static inline void sd_detector_set_enabled(sd_detector *d, int on) {
  if (d) d->enabled = on != 0;
}
static inline void sd_detector_set_threshold(sd_detector *d, float t) {
  if (d) d->threshold = t;
}
static inline void sd_detector_free(sd_detector *d) {
  if (d && d->vt && d->vt->destroy) d->vt->destroy(d);
}

#endif
