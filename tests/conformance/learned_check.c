/* The C side of the learned detector's conformance test (test_learned.sh): the same dump as
 * `tools/learned/ref.py dump MODEL PROMPTS` — per prompt line (raw bytes; the newline and a
 * CR before it dropped): "P i", "W start end word" per word, "F idx ..." and "S p ...". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "safety/learned.h"

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s MODEL PROMPTS\n", argv[0]);
    return 2;
  }
  sd_learned_model *m;
  if (sd_learned_load(argv[1], &m)) {
    fprintf(stderr, "learned_check: %s\n", sd_errmsg());
    return 1;
  }
  FILE *f = fopen(argv[2], "rb");
  if (!f) {
    fprintf(stderr, "learned_check: cannot open %s\n", argv[2]);
    return 1;
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  int i = 0, rc = 0, C = sd_learned_n_categories(m);
  float *p = malloc((size_t)C * sizeof *p);
  while ((len = getline(&line, &cap, f)) >= 0) {
    if (len && line[len - 1] == '\n') line[--len] = 0;
    if (len && line[len - 1] == '\r') line[--len] = 0;
    if ((ssize_t)strlen(line) != len) {
      fprintf(stderr, "learned_check: line %d holds a NUL byte\n", i + 1);
      rc = 1;
      break;
    }
    printf("P %d\n", i++);
    sd_learned_word *w;
    uint32_t *idx;
    int *wd, nw, nf;
    if (sd_learned_words(m, line, &w, &nw) || sd_learned_features(m, line, &idx, &wd, &nf) ||
        sd_learned_scores(m, line, p)) {
      fprintf(stderr, "learned_check: %s\n", sd_errmsg());
      rc = 1;
      break;
    }
    for (int k = 0; k < nw; k++) printf("W %zu %zu %s\n", w[k].start, w[k].end, w[k].text);
    printf("F");
    for (int k = 0; k < nf; k++) printf(" %u", idx[k]);
    printf("\nS");
    for (int c = 0; c < C; c++) printf(" %.9g", (double)p[c]);
    printf("\n");
    sd_learned_words_free(w, nw);
    free(idx);
    free(wd);
  }
  free(line);
  free(p);
  fclose(f);
  sd_learned_free(m);
  return rc;
}
