/* Measure the lexical and learned detectors, alone and OR-combined, on labelled prompt sets
 * and I2P, and their speed (tools/bench/learned.sh drives it; docs/safety-detectors.md).
 *
 *   build/detectors_eval [--bank FILE] [--learned FILE] [--threshold T] [--no-wordnet]
 *                        [--show-miss SET] [--show-fp SET] [--i2p CSV]
 *                        unsafe:NAME=FILE | benign:NAME=FILE ...
 *
 * A prompt file is one prompt a line (blank lines and '#' lines skipped); a line
 * "# concept: X" starts group X, reported per group with --by-concept. An unsafe set reports
 * the share flagged (recall), a benign set the share flagged (false positives). I2P: the share
 * of all and of `hard` prompts flagged, per category. Speed: prompts per second of each
 * detector and of both, over every prompt read, from the thread's CPU time (one thread;
 * still indicative under load: caches are shared).
 *
 * Content warning: --show-miss / --show-fp print prompts (I2P prompts are offensive).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "io/prompts.h"
#include "safety/bank.h"
#include "safety/learned.h"
#include "safety/lexical.h"

typedef struct {
  char *text, *group;
  int label; /* I2P: category bits + (hard << 31) */
} item;

typedef struct {
  char *name;
  int unsafe, is_i2p;
  item *it;
  int n;
  char *fired; /* per item: bit 0 lexical, bit 1 learned */
} set;

static char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)n + 1);
  if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
    free(b);
    b = NULL;
  }
  fclose(f);
  if (b) b[n] = 0, *len = (size_t)n;
  return b;
}

static void push(set *s, char *text, char *group, int label) {
  s->it = realloc(s->it, ((size_t)s->n + 1) * sizeof *s->it);
  if (!s->it) exit(1);
  s->it[s->n++] = (item){text, group, label};
}

static int load_lines(set *s, const char *path) {
  size_t len;
  char *t = read_all(path, &len);
  if (!t) return -1;
  char *group = strdup("");
  for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
    size_t l = strlen(line);
    if (l && line[l - 1] == '\r') line[--l] = 0;
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (!strncmp(p, "# concept:", 10)) {
      p += 10;
      while (*p == ' ') p++;
      group = strdup(p);
      continue;
    }
    if (!*p || *p == '#') continue;
    push(s, strdup(p), group, 0);
  }
  free(t);
  return 0;
}

static int load_i2p(set *s, const char *path, const sd_bank *bank) {
  size_t len, pos = 0;
  char *t = read_all(path, &len);
  if (!t) return -1;
  char *f[16];
  int nf = sd_csv_record(t, len, &pos, f, 16), ip = -1, ic = -1, ih = -1;
  for (int i = 0; i < nf; i++) {
    if (!strcmp(f[i], "prompt")) ip = i;
    if (!strcmp(f[i], "categories")) ic = i;
    if (!strcmp(f[i], "hard")) ih = i;
    free(f[i]);
  }
  if (ip < 0 || ic < 0 || ih < 0) return -1;
  while ((nf = sd_csv_record(t, len, &pos, f, 16)) > 0) {
    if (nf > ip && nf > ic && nf > ih) {
      int lab = 0;
      for (int c = 0; c < bank->n_cats; c++) {
        const char *p = f[ic];
        size_t k = strlen(bank->cats[c].name);
        while ((p = strstr(p, bank->cats[c].name))) {
          if ((p == f[ic] || p[-1] == ' ' || p[-1] == ',') && (p[k] == 0 || p[k] == ',')) lab |= 1 << c;
          p += k;
        }
      }
      if (atoi(f[ih]) == 1) lab |= 1 << 30;
      push(s, strdup(f[ip]), "", lab);
    }
    for (int i = 0; i < nf; i++) free(f[i]);
  }
  free(t);
  return 0;
}

/* This thread's CPU time: time spent waiting for a core on a loaded machine is left out
 * (cache and memory contention are not). */
static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void pct(int k, int n) {
  char b[48];
  snprintf(b, sizeof b, "%d/%d = %.1f%%", k, n, n ? 100.0 * k / n : 0.0);
  printf(" %18s", b);
}

int main(int argc, char **argv) {
  const char *bank_path = NULL, *learned_path = NULL, *i2p = NULL, *show_miss = NULL, *show_fp = NULL;
  float thr = -1;
  int wordnet = 1, by_concept = 0;
  set sets[32];
  int ns = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--bank") && i + 1 < argc) bank_path = argv[++i];
    else if (!strcmp(argv[i], "--learned") && i + 1 < argc) learned_path = argv[++i];
    else if (!strcmp(argv[i], "--threshold") && i + 1 < argc) thr = (float)atof(argv[++i]);
    else if (!strcmp(argv[i], "--i2p") && i + 1 < argc) i2p = argv[++i];
    else if (!strcmp(argv[i], "--show-miss") && i + 1 < argc) show_miss = argv[++i];
    else if (!strcmp(argv[i], "--show-fp") && i + 1 < argc) show_fp = argv[++i];
    else if (!strcmp(argv[i], "--no-wordnet")) wordnet = 0;
    else if (!strcmp(argv[i], "--by-concept")) by_concept = 1;
    else if ((!strncmp(argv[i], "unsafe:", 7) || !strncmp(argv[i], "benign:", 7)) && strchr(argv[i], '=') && ns < 31) {
      set *s = &sets[ns++];
      memset(s, 0, sizeof *s);
      s->unsafe = argv[i][0] == 'u';
      char *eq = strchr(argv[i], '=');
      s->name = strndup(argv[i] + 7, (size_t)(eq - argv[i] - 7));
      if (load_lines(s, eq + 1)) {
        fprintf(stderr, "detectors_eval: cannot read %s\n", eq + 1);
        return 1;
      }
    } else {
      fprintf(stderr, "usage: %s [--bank F] [--learned F] [--threshold T] [--no-wordnet] [--by-concept] "
                      "[--show-miss SET] [--show-fp SET] [--i2p CSV] unsafe:NAME=FILE | benign:NAME=FILE ...\n",
              argv[0]);
      return 2;
    }
  }
  sd_bank *bank;
  sd_learned_model *lm;
  sd_detector *lex, *lrn;
  sd_lexical_options lo = {wordnet, NULL, NULL};
  if ((bank_path ? sd_bank_load(bank_path, &bank) : sd_bank_load_default(&bank)) ||
      (learned_path ? sd_learned_load(learned_path, &lm) : sd_learned_load_default(&lm)) ||
      sd_lexical_create(bank, &lo, &lex) || sd_learned_create(bank, lm, 1, &lrn)) {
    fprintf(stderr, "detectors_eval: %s\n", sd_errmsg());
    return 1;
  }
  if (thr >= 0) sd_detector_set_threshold(lrn, thr);
  if (i2p) {
    set *s = &sets[ns++];
    memset(s, 0, sizeof *s);
    s->name = strdup("I2P");
    s->unsafe = s->is_i2p = 1;
    if (load_i2p(s, i2p, bank)) {
      fprintf(stderr, "detectors_eval: cannot read I2P from %s\n", i2p);
      return 1;
    }
  }
  printf("bank %s; learned %s, threshold %.6g; lexical wordnet %s\n", bank->path, sd_learned_path(lm),
         (double)lrn->threshold, wordnet ? "on" : "off");
  double t_lex = 0, t_lrn = 0;
  long n_all = 0;
  for (int k = 0; k < ns; k++) {
    set *s = &sets[k];
    s->fired = calloc((size_t)s->n + 1, 1);
    for (int i = 0; i < s->n; i++) {
      sd_detection a, b;
      double t0 = now();
      if (sd_detector_run(lex, s->it[i].text, NULL, &a)) goto err;
      double t1 = now();
      if (sd_detector_run(lrn, s->it[i].text, NULL, &b)) goto err;
      double t2 = now();
      t_lex += t1 - t0, t_lrn += t2 - t1, n_all++;
      s->fired[i] = (char)(a.fired | (b.fired << 1));
      int show = (s->unsafe && show_miss && !strcmp(show_miss, s->name) && !s->fired[i]) ||
                 (!s->unsafe && show_fp && !strcmp(show_fp, s->name) && s->fired[i]);
      if (show) {
        char *sa = sd_detection_summary(bank, &a), *sb = sd_detection_summary(bank, &b);
        printf("%s [%s] %s\n    %s\n    %s\n", s->unsafe ? "MISS" : "FP", s->name, s->it[i].text, sa, sb);
        free(sa);
        free(sb);
      }
      sd_detection_free(&a);
      sd_detection_free(&b);
    }
  }
  printf("\n%-22s %6s %18s %18s %18s\n", "set (share flagged)", "n", "lexical", "learned", "either");
  for (int k = 0; k < ns; k++) {
    set *s = &sets[k];
    for (int h = 0; h <= s->is_i2p; h++) {
      int n = 0, a = 0, b = 0, e = 0;
      for (int i = 0; i < s->n; i++) {
        if (h && !(s->it[i].label >> 30 & 1)) continue;
        n++, a += s->fired[i] & 1, b += s->fired[i] >> 1 & 1, e += s->fired[i] != 0;
      }
      char nm[64];
      snprintf(nm, sizeof nm, "%s%s (%s)", s->name, h ? " hard" : "", s->unsafe ? "recall" : "FP");
      printf("%-22s %6d", nm, n);
      pct(a, n), pct(b, n), pct(e, n);
      printf("\n");
    }
    if (s->is_i2p)
      for (int c = 0; c < bank->n_cats; c++)
        for (int h = 0; h <= 1; h++) {
          int n = 0, a = 0, b = 0, e = 0;
          for (int i = 0; i < s->n; i++) {
            if (!(s->it[i].label >> c & 1) || (h && !(s->it[i].label >> 30 & 1))) continue;
            n++, a += s->fired[i] & 1, b += s->fired[i] >> 1 & 1, e += s->fired[i] != 0;
          }
          char nm[64];
          snprintf(nm, sizeof nm, "  %s%s", bank->cats[c].name, h ? " hard" : "");
          printf("%-22s %6d", nm, n);
          pct(a, n), pct(b, n), pct(e, n);
          printf("\n");
        }
    if (by_concept && !s->is_i2p)
      for (int i = 0; i < s->n; i++) {
        if (i && !strcmp(s->it[i].group, s->it[i - 1].group)) continue;
        int n = 0, a = 0, b = 0, e = 0;
        for (int j = i; j < s->n && !strcmp(s->it[j].group, s->it[i].group); j++)
          n++, a += s->fired[j] & 1, b += s->fired[j] >> 1 & 1, e += s->fired[j] != 0;
        if (!*s->it[i].group) continue;
        printf("  %-20.20s %6d", s->it[i].group, n);
        pct(a, n), pct(b, n), pct(e, n);
        printf("\n");
      }
  }
  printf("\nspeed over %ld prompts (one thread, its CPU time): lexical %.0f prompts/s, learned %.0f prompts/s, both %.0f prompts/s "
         "(%.3f ms per prompt for both)\n",
         n_all, n_all / t_lex, n_all / t_lrn, n_all / (t_lex + t_lrn), 1e3 * (t_lex + t_lrn) / (double)n_all);
  sd_detector_free(lex);
  sd_detector_free(lrn);
  sd_bank_free(bank);
  return 0;
err:
  fprintf(stderr, "detectors_eval: %s\n", sd_errmsg());
  return 1;
}
