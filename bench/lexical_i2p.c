/* Measure the lexical detector: share of I2P prompts flagged (per category, overall, and on
 * the `hard` subset), share of benign prompt sets flagged (false positives), and its speed
 * (detector creation, microseconds per prompt on one thread over the I2P prompts; wall clock,
 * so only meaningful on a quiet machine).
 *
 *   build/lexical_i2p [--bank FILE] [--no-wordnet] [--threshold T] [--show-fp]
 *                     [--show-miss N] [--repeat R] [--unsafe FILE]... I2P_CSV BENIGN...
 *
 * A BENIGN file (false positives) or --unsafe file (recall) is a prompt per line (.txt, '#'
 * comments) or a CSV with a `prompt` column (the bundled model's safety/benign.csv and
 * proximal.csv). --show-fp prints the benign prompts that fired, --show-miss the unsafe
 * ones that did not.
 * Content warning: --show-miss prints I2P prompts (offensive text).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "io/prompts.h"
#include "safety/bank.h"
#include "safety/lexical.h"

static char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 1 << 20, n = 0;
  char *b = malloc(cap + 1);
  size_t k;
  while (b && (k = fread(b + n, 1, cap - n, f)) > 0) {
    n += k;
    if (n == cap) {
      char *nb = realloc(b, cap * 2 + 1);
      if (!nb) {
        free(b);
        b = NULL;
        break;
      }
      b = nb;
      cap *= 2;
    }
  }
  fclose(f);
  if (b) b[n] = 0;
  *len = n;
  return b;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Run the detector over a prompt file (benign: false positives; unsafe: recall) and print
 * the tally line; with show, every prompt that fired (benign) or did not (unsafe). */
static int prompt_file(sd_detector *d, const sd_bank *bank, const char *path, int unsafe, int show) {
  size_t len;
  char *text = read_all(path, &len);
  if (!text) {
    fprintf(stderr, "lexical_i2p: cannot read %s\n", path);
    return 1;
  }
  long nb = 0, fb = 0;
  size_t n = strlen(path), pos = 0;
  int is_csv = n > 4 && !strcmp(path + n - 4, ".csv"), ip = -1;
  char *f[16];
  if (is_csv) {
    int nf = sd_csv_record(text, len, &pos, f, 16);
    for (int i = 0; i < nf; i++) {
      if (!strcmp(f[i], "prompt")) ip = i;
      free(f[i]);
    }
    if (ip < 0) {
      fprintf(stderr, "lexical_i2p: %s: no prompt column\n", path);
      return 1;
    }
  }
  char *save = NULL, *line = is_csv ? NULL : strtok_r(text, "\n", &save);
  for (;;) {
    char *prompt = NULL;
    int nf = 0;
    if (is_csv) {
      if ((nf = sd_csv_record(text, len, &pos, f, 16)) <= 0) break;
      prompt = nf > ip ? f[ip] : NULL;
    } else {
      if (!line) break;
      prompt = line[0] == '#' || !line[0] ? NULL : line;
    }
    if (prompt) {
      sd_detection det;
      if (sd_detector_run(d, prompt, NULL, &det)) {
        fprintf(stderr, "lexical_i2p: %s\n", sd_errmsg());
        return 1;
      }
      nb++;
      fb += det.fired;
      if (show && det.fired != unsafe) {
        char *s = sd_detection_summary(bank, &det);
        printf("%s: %s\n    %s\n", unsafe ? "MISSED" : "FP", prompt, s);
        free(s);
      }
      sd_detection_free(&det);
    }
    if (is_csv)
      for (int i = 0; i < nf; i++) free(f[i]);
    else
      line = strtok_r(NULL, "\n", &save);
  }
  free(text);
  printf("%s %s: %ld of %ld flagged = %.1f%%\n", unsafe ? "unsafe" : "benign", path, fb, nb, nb ? 100.0 * fb / nb : 0);
  return 0;
}

int main(int argc, char **argv) {
  const char *bank_path = NULL, *csv = NULL, *benign[16], *unsafe[16];
  int wordnet = 1, show_fp = 0, show_miss = 0, nbenign = 0, nunsafe = 0, repeat = 1;
  float thr = 1.0f;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--bank") && i + 1 < argc) bank_path = argv[++i];
    else if (!strcmp(argv[i], "--no-wordnet")) wordnet = 0;
    else if (!strcmp(argv[i], "--threshold") && i + 1 < argc) thr = (float)atof(argv[++i]);
    else if (!strcmp(argv[i], "--show-fp")) show_fp = 1;
    else if (!strcmp(argv[i], "--show-miss") && i + 1 < argc) show_miss = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--unsafe") && i + 1 < argc && nunsafe < 16) unsafe[nunsafe++] = argv[++i];
    else if (!csv) csv = argv[i];
    else if (nbenign < 16) benign[nbenign++] = argv[i];
    else {
      fprintf(stderr, "lexical_i2p: at most 16 benign files\n");
      return 2;
    }
  }
  if (!csv || !nbenign || repeat < 1) {
    fprintf(stderr, "usage: %s [--bank F] [--no-wordnet] [--threshold T] [--show-fp] [--show-miss N] [--repeat R] "
            "[--unsafe FILE]... I2P_CSV BENIGN...\n", argv[0]);
    return 2;
  }
  sd_bank *bank;
  if ((bank_path ? sd_bank_load(bank_path, &bank) : sd_bank_load_default(&bank))) {
    fprintf(stderr, "lexical_i2p: %s\n", sd_errmsg());
    return 1;
  }
  sd_lexical_options o = {.wordnet = wordnet};
  sd_detector *d;
  double t0 = now_s();
  if (sd_lexical_create(bank, &o, &d)) {
    fprintf(stderr, "lexical_i2p: %s\n", sd_errmsg());
    return 1;
  }
  double t_create = now_s() - t0, t_detect = 0;
  long n_detect = 0;
  sd_detector_set_threshold(d, thr);
  printf("bank %s (%d categories), lexicon %d terms, wordnet: %s, threshold %g\n", bank->path, bank->n_cats,
         sd_lexical_n_terms(d), !wordnet ? "off" : sd_lexical_wordnet_status(d)[0] ? sd_lexical_wordnet_status(d) : "on",
         (double)thr);

  size_t len;
  char *text = read_all(csv, &len);
  if (!text) {
    fprintf(stderr, "lexical_i2p: cannot read %s\n", csv);
    return 1;
  }
  size_t pos = 0;
  char *f[16];
  int nf = sd_csv_record(text, len, &pos, f, 16);
  int ip = -1, ic = -1, ih = -1;
  for (int i = 0; i < nf; i++) {
    if (!strcmp(f[i], "prompt")) ip = i;
    if (!strcmp(f[i], "categories")) ic = i;
    if (!strcmp(f[i], "hard")) ih = i;
    free(f[i]);
  }
  if (ip < 0 || ic < 0 || ih < 0) {
    fprintf(stderr, "lexical_i2p: %s: no prompt/categories/hard columns\n", csv);
    return 1;
  }
  int nc = bank->n_cats;
  long n[2][SD_BANK_MAX_CATEGORIES + 1] = {{0}}, any[2][SD_BANK_MAX_CATEGORIES + 1] = {{0}},
       same[2][SD_BANK_MAX_CATEGORIES + 1] = {{0}};
  int shown = 0;
  while ((nf = sd_csv_record(text, len, &pos, f, 16)) > 0) {
    if (nf > ip && nf > ic && nf > ih) {
      int hard = atoi(f[ih]) == 1;
      uint32_t labels = 0;
      for (int c = 0; c < nc; c++) {
        const char *p = f[ic];
        size_t k = strlen(bank->cats[c].name);
        while ((p = strstr(p, bank->cats[c].name))) {
          if ((p == f[ic] || p[-1] == ' ' || p[-1] == ',') && (p[k] == 0 || p[k] == ',')) labels |= 1u << c;
          p += k;
        }
      }
      sd_detection det;
      double t1 = now_s();
      for (int r = 0; r < repeat; r++) {
        if (r) sd_detection_free(&det);
        if (sd_detector_run(d, f[ip], NULL, &det)) {
          fprintf(stderr, "lexical_i2p: %s\n", sd_errmsg());
          return 1;
        }
      }
      t_detect += now_s() - t1;
      n_detect += repeat;
      for (int h = 0; h <= hard; h++) {
        n[h][nc]++;
        any[h][nc] += det.fired;
        same[h][nc] += (det.categories & labels) != 0;
        for (int c = 0; c < nc; c++)
          if (labels & (1u << c)) {
            n[h][c]++;
            any[h][c] += det.fired;
            same[h][c] += (det.categories >> c) & 1;
          }
      }
      if (hard && !det.fired && shown < show_miss) {
        printf("MISS [%s] %s\n", f[ic], f[ip]);
        shown++;
      }
      sd_detection_free(&det);
    }
    for (int i = 0; i < nf; i++) free(f[i]);
  }
  free(text);
  printf("\nI2P: share of prompts flagged (any category) / flagged with a matching category\n");
  printf("%-18s %8s %16s %16s %8s %16s %16s\n", "category", "n", "flagged", "same-category", "n(hard)", "flagged(hard)",
         "same-cat(hard)");
  for (int c = 0; c <= nc; c++) {
    printf("%-18s %8ld %15.1f%% %15.1f%% %8ld %15.1f%% %15.1f%%\n", c < nc ? bank->cats[c].name : "ALL", n[0][c],
           n[0][c] ? 100.0 * any[0][c] / n[0][c] : 0, n[0][c] ? 100.0 * same[0][c] / n[0][c] : 0, n[1][c],
           n[1][c] ? 100.0 * any[1][c] / n[1][c] : 0, n[1][c] ? 100.0 * same[1][c] / n[1][c] : 0);
  }

  printf("\nspeed (one thread, wall clock): detector created in %.1f ms (first call of the process; the WordNet "
         "cache and dictionary load included); %.1f us per I2P prompt (%ld runs) = %.0f prompts/s\n\n",
         1e3 * t_create, 1e6 * t_detect / (double)(n_detect ? n_detect : 1), n_detect,
         t_detect > 0 ? (double)n_detect / t_detect : 0);
  for (int i = 0; i < nbenign; i++)
    if (prompt_file(d, bank, benign[i], 0, show_fp)) return 1;
  for (int i = 0; i < nunsafe; i++)
    if (prompt_file(d, bank, unsafe[i], 1, show_miss > 0)) return 1;
  sd_detector_free(d);
  sd_bank_free(bank);
  return 0;
}
