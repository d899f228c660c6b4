/* libFuzzer target: the safety detectors and the safe text on untrusted prompts.
 *
 * The input, NUL-terminated (inputs holding a NUL byte or invalid UTF-8 are what the API
 * refuses before the detectors run: skipped), is cut to the encoder's window and judged by
 * the lexical detector (default bank, WordNet on, no cache file) and the learned detector
 * (the shipped weights), and the safe text is built from both (substitute+append, fitted to
 * 75 tokens). Invariants: every call succeeds; the window cut lies inside the text, on a
 * UTF-8 boundary; a detection's score is finite and not negative (the learned one at most
 * 1), `fired` equals categories != 0 and its categories exist in the bank; every evidence
 * span lies inside the judged text with both ends on UTF-8 boundaries and names a category
 * of the bank; the safe text is valid UTF-8, and (unfitted) equals the judged text when
 * nothing fired.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "safety/bank.h"
#include "safety/learned.h"
#include "safety/lexical.h"
#include "safety/strategy.h"
#include "text/prompt.h"
#include "text/tokenizer.h"
#include "fuzz_check.h"

static sd_tokenizer *g_tok;
static sd_bank *g_bank;
static sd_detector *g_det[2];

static void setup(void) {
  if (sd_tokenizer_load_default(&g_tok) || sd_bank_load_default(&g_bank)) abort();
  sd_lexical_options lo = {1, "", NULL};
  sd_learned_model *m = NULL;
  if (sd_lexical_create(g_bank, &lo, &g_det[0]) || sd_learned_load_default(&m) ||
      sd_learned_create(g_bank, m, 1, &g_det[1]))
    abort();
}

static int boundary(const char *s, size_t i) { return ((unsigned char)s[i] & 0xC0) != 0x80; }

static void check_detection(const sd_detection *d, const char *text, size_t len, int learned) {
  CHECK(isfinite(d->score) && d->score >= 0 && (!learned || d->score <= 1));
  CHECK(d->fired == (d->categories != 0));
  CHECK(g_bank->n_cats >= 32 || d->categories >> g_bank->n_cats == 0);
  CHECK(d->n_ev >= 0 && (d->n_ev == 0 || d->ev != NULL));
  for (int i = 0; i < d->n_ev; i++) {
    const sd_evidence *e = &d->ev[i];
    CHECK(e->category >= 0 && e->category < g_bank->n_cats);
    CHECK(e->start <= e->end && e->end <= len);
    CHECK(boundary(text, e->start) && boundary(text, e->end));
    CHECK(e->matched != NULL && e->term != NULL && e->via != NULL);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!g_tok) setup();
  char *s = fuzz_prompt_text(data, size, 2048);
  if (!s) return 0;
  size_t cut = 0;
  CHECK(sd_window_cut(g_tok, s, 75, &cut, NULL) == SD_OK);
  CHECK(cut <= size && boundary(s, cut));
  s[cut] = 0;
  sd_detection det[2];
  for (int k = 0; k < 2; k++) {
    CHECK(sd_detector_run(g_det[k], s, NULL, &det[k]) == SD_OK);
    check_detection(&det[k], s, cut, k);
  }
  char *t = NULL;
  CHECK(sd_safety_text_fit(g_bank, s, det, 2, SD_STRATEGY_SUBSTITUTE_APPEND, g_tok, 75, &t) == SD_OK);
  CHECK(t != NULL && sd_text_check_utf8("fuzz", t) == SD_OK);
  free(t);
  if (!det[0].fired && !det[1].fired) { /* unfitted: the prompt itself (the gate uses no safe text then) */
    CHECK(sd_safety_text(g_bank, s, det, 2, SD_STRATEGY_SUBSTITUTE_APPEND, &t) == SD_OK && !strcmp(t, s));
    free(t);
  }
  for (int k = 0; k < 2; k++) sd_detection_free(&det[k]);
  free(s);
  return 0;
}
