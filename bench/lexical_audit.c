/* Audit the lexical detector's precision on single words: every whole-word token of the CLIP
 * vocabulary (the words SD's text encoder knows as words) and every emoji of
 * data/emoji/emoji-names.tsv is run through the detector alone; the flagged ones are printed
 * with how they matched, so that a stem, a derived word, a compound or an emoji tag that
 * should not count can be found and put in the bank's `safe` / `exclude` lists.
 *
 *   build/lexical_audit [--bank FILE] [--all] [--emoji]
 *
 * Default: words flagged other than by an exact match of a bank term (stem, compound,
 * WordNet, another language); --all: every flagged word; --emoji: the emoji instead.
 * Content warning: prints offensive words.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "safety/bank.h"
#include "safety/emoji.h"
#include "safety/lexical.h"
#include "text/tokenizer.h"

static void run(sd_detector *d, const sd_bank *bank, const char *text, int all, long *nf) {
  sd_detection det;
  if (sd_detector_run(d, text, NULL, &det)) {
    fprintf(stderr, "lexical_audit: %s\n", sd_errmsg());
    exit(1);
  }
  int show = det.fired && all;
  for (int i = 0; i < det.n_ev && det.fired && !show; i++) show = strcmp(det.ev[i].via, "exact") != 0;
  if (det.fired) (*nf)++;
  if (show) {
    char *s = sd_detection_summary(bank, &det);
    printf("%s\t%s\n", text, s);
    free(s);
  }
  sd_detection_free(&det);
}

int main(int argc, char **argv) {
  const char *bank_path = NULL;
  int all = 0, emoji = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--bank") && i + 1 < argc) bank_path = argv[++i];
    else if (!strcmp(argv[i], "--all")) all = 1;
    else if (!strcmp(argv[i], "--emoji")) emoji = 1;
    else {
      fprintf(stderr, "usage: %s [--bank FILE] [--all] [--emoji]\n", argv[0]);
      return 2;
    }
  }
  sd_bank *bank;
  sd_detector *d;
  sd_tokenizer *tok;
  if ((bank_path ? sd_bank_load(bank_path, &bank) : sd_bank_load_default(&bank)) || sd_lexical_create(bank, NULL, &d) ||
      sd_tokenizer_load_default(&tok)) {
    fprintf(stderr, "lexical_audit: %s\n", sd_errmsg());
    return 1;
  }
  fprintf(stderr, "%s\n", sd_lexical_status(d));
  long n = 0, nf = 0;
  if (emoji) {
    const sd_emoji_table *em = sd_emoji_default(NULL);
    for (int i = 0; i < sd_emoji_count(em); i++, n++) {
      char buf[128];
      snprintf(buf, sizeof buf, "%s", sd_emoji_key(em, i));
      run(d, bank, buf, 1, &nf);
    }
  } else {
    for (int32_t id = 0; id < sd_tokenizer_vocab_size(tok); id++) {
      const char *t = sd_tokenizer_token(tok, id);
      size_t l = t ? strlen(t) : 0;
      if (l < 7 || strcmp(t + l - 4, "</w>")) continue;
      char w[128];
      if (l - 4 >= sizeof w) continue;
      memcpy(w, t, l - 4);
      w[l - 4] = 0;
      int letters = 1;
      for (size_t i = 0; w[i] && letters; i++) letters = w[i] >= 'a' && w[i] <= 'z';
      if (!letters) continue;
      n++;
      run(d, bank, w, all, &nf);
    }
  }
  fprintf(stderr, "%ld of %ld flagged\n", nf, n);
  sd_detector_free(d);
  sd_tokenizer_free(tok);
  sd_bank_free(bank);
  return 0;
}
