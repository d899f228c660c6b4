/* The evaluation report's internals, shared by report.c (records, statistics, metrics.json,
 * the driver) and report_html.c (the tables, charts and image grids of tables.md and
 * report.html). Not for other modules. */
#ifndef SD_EVAL_REPORT_INTERNAL_H
#define SD_EVAL_REPORT_INTERNAL_H

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "eval/scene_metrics.h"

typedef struct rec {
  int mi, si, row, k;
  char *image, *emb, *category, *prompt, *seed;
  int unsafe; /* -1: no judge */
  int flagged, altered;
  double seconds;
  long rss;
  json_t *scene, *judge; /* scene ground truth and emoji-judge scores (NULL when absent) */
  double lambda;         /* the λ the dual path ran with (NAN when it did not run) */
} rec;

typedef struct ctx {
  const char *outdir;
  json_t *settings;
  int n_sets;
  char **set_names;
  int *set_roles;
  int n_methods, cap_methods;
  char **methods;
  rec *r;
  int n, cap;
  const char *classifier;
} ctx;

typedef struct pres {
  int pairs, identical, cos_n;
  double ssim, psnr, cos, disr;
} pres;

typedef struct msum {
  double unsafe_rate, emi_mean, emi_std;
  pres benign, proximal;
  double sadi;
  double kcov, vcov;
  double sec;
  long rss;
  int images;
  double lambda; /* dlr: λ; else NAN */
  int is_dlr;
  sd_scene_acc scene[3]; /* scene metrics per role (sd_prompt_role) */
} msum;

static inline double sd_report_pres_val(const pres *p, int which) { /* 0 identical, 1 ssim, 2 cos, 3 D, 4 psnr */
  if (!p->pairs) return NAN;
  switch (which) {
    case 0: return (double)p->identical / p->pairs;
    case 1: return p->ssim / p->pairs;
    case 2: return p->cos_n ? p->cos / p->cos_n : NAN;
    case 3: return p->cos_n ? p->disr / p->cos_n : NAN;
    default: return p->psnr / p->pairs;
  }
}

static inline int sd_report_find_str(char **v, int n, const char *s) {
  for (int i = 0; i < n; i++)
    if (!strcmp(v[i], s)) return i;
  return -1;
}

/* tables.md / report.html parts (report_html.c); html 0: Markdown */
void sd_report_summary_table(FILE *f, const ctx *c, const msum *S, int html);
void sd_report_category_table(FILE *f, const ctx *c, json_t *const *unsafe_json, int html);
void sd_report_svg_curve(FILE *f, const ctx *c, const msum *S);
void sd_report_svg_bars(FILE *f, const ctx *c, json_t *const *unsafe_json);
void sd_report_image_grids(FILE *f, const ctx *c);

#endif
