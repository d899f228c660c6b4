/* libFuzzer target: concept banks (a model folder's `concepts.bank` is untrusted input) through
 * the parser, the composition with the default bank, the lexical and learned detectors built
 * on the result, and one judged prompt with its safe text.
 *
 * The input is the bank file's bytes (up to 64 KiB). Invariants: sd_bank_parse succeeds or
 * fails with SD_E_FORMAT (or SD_E_NOMEM) and a one-line message (tabs allowed: a bank line may
 * hold them) naming the file;
 * on success every category has a non-empty name, a term list of as many languages as terms,
 * and the substitutes its count says; the composition keeps the bank's categories first, by
 * name, and holds the default's too; both detectors build on the bank alone (WordNet off: the
 * lexicon of its own terms, confusables, stems, CJK, emoji; a model category it lacks is left
 * out) and judge a fixed prompt with evidence inside it; the safe text is built. Everything
 * is freed (LeakSanitizer).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "safety/bank.h"
#include "safety/learned.h"
#include "safety/lexical.h"
#include "safety/strategy.h"
#include "fuzz_check.h"

static sd_bank *g_default;
static sd_learned_model *g_model;

static const char *k_prompt = "a n*ked woman with a bloody knife, 🔫, une femme nue, 血腥, not nude, NudeWoman";

static void check_message(int rc) {
  CHECK(rc == SD_E_FORMAT || rc == SD_E_NOMEM || rc == SD_E_ARG);
  const char *m = sd_errmsg();
  CHECK(*m);
  for (const unsigned char *p = (const unsigned char *)m; *p; p++) CHECK((*p >= 0x20 || *p == '\t') && *p != 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!g_default && (sd_bank_load_default(&g_default) || sd_learned_load_default(&g_model))) abort();
  if (size > 65536) return 0;
  sd_bank *b = NULL;
  int rc = sd_bank_parse((const char *)data, size, "fuzz.bank", &b);
  if (rc) {
    CHECK(b == NULL);
    check_message(rc);
    return 0;
  }
  CHECK(b != NULL && b->n_cats >= 0);
  for (int c = 0; c < b->n_cats; c++) {
    const sd_bank_category *k = &b->cats[c];
    CHECK(k->name && *k->name);
    CHECK(k->term_lang.n == k->terms.n);
    CHECK(k->n_subst >= 0 && (k->n_subst == 0 || k->subst));
    for (int i = 0; i < k->n_subst; i++) CHECK(k->subst[i].from && k->subst[i].to);
  }
  sd_bank *all = NULL;
  rc = sd_bank_compose(b, g_default, &all);
  if (rc) {
    check_message(rc); /* e.g. more categories than a detector can hold */
    sd_bank_free(b);
    return 0;
  }
  CHECK(all->n_cats >= b->n_cats && all->n_cats >= g_default->n_cats);
  for (int c = 0; c < b->n_cats; c++) CHECK(!strcmp(all->cats[c].name, b->cats[c].name));
  for (int c = 0; c < g_default->n_cats; c++) CHECK(sd_bank_find(all, g_default->cats[c].name) >= 0);
  sd_lexical_options lo = {0, "", NULL};
  sd_detector *det[2] = {NULL, NULL};
  sd_detection d[2];
  memset(d, 0, sizeof d);
  int built = 0;
  sd_bank_free(all); /* the detectors are built on the bank alone: its own lexicon is what is fuzzed */
  rc = sd_lexical_create(b, &lo, &det[0]);
  if (rc) check_message(rc);
  if (!rc && (rc = sd_learned_create(b, g_model, 0, &det[1]))) check_message(rc);
  for (int k = 0; !rc && k < 2; k++) {
    CHECK(sd_detector_run(det[k], k_prompt, NULL, &d[k]) == SD_OK);
    built++;
    for (int i = 0; i < d[k].n_ev; i++)
      CHECK(d[k].ev[i].start <= d[k].ev[i].end && d[k].ev[i].end <= strlen(k_prompt) &&
            d[k].ev[i].category >= 0 && d[k].ev[i].category < b->n_cats);
  }
  if (built == 2) {
    char *t = NULL;
    CHECK(sd_safety_text(b, k_prompt, d, 2, SD_STRATEGY_SUBSTITUTE_APPEND, &t) == SD_OK && t);
    free(t);
  }
  for (int k = 0; k < 2; k++) {
    sd_detection_free(&d[k]);
    sd_detector_free(det[k]);
  }
  sd_bank_free(b);
  return 0;
}
