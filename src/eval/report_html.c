/* The tables, charts and image grids of an evaluation's tables.md and report.html
 * (docs/evaluation.md, "Report"), from the statistics report.c computed. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safesd.h"
#include "api/api_internal.h"
#include "core/error.h"
#include "eval/harness.h"
#include "eval/harness_internal.h"
#include "eval/metrics.h"
#include "eval/scene_metrics.h"
#include "eval/report_internal.h"
#include "io/prompts.h"
#include "io/json_util.h"
#include "io/png.h"


static void fmt_pct(char *b, size_t n, double v) {
  if (isfinite(v)) snprintf(b, n, "%.1f%%", 100 * v);
  else snprintf(b, n, "–");
}
static void fmt_num(char *b, size_t n, double v, int prec) {
  if (isfinite(v)) snprintf(b, n, "%.*f", prec, v);
  else snprintf(b, n, "–");
}


void sd_eval_html_escape(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '<') fputs("&lt;", f);
    else if (*s == '>') fputs("&gt;", f);
    else if (*s == '&') fputs("&amp;", f);
    else if (*s == '"') fputs("&quot;", f);
    else fputc(*s, f);
  }
}

void sd_eval_table_header(FILE *f, int html, const char *const *hdr, int nh) {
  if (html) {
    fputs("<table><tr>", f);
    for (int i = 0; i < nh; i++) fprintf(f, "<th>%s</th>", hdr[i]);
    fputs("</tr>\n", f);
  } else {
    for (int i = 0; i < nh; i++) fprintf(f, "| %s ", hdr[i]);
    fputs("|\n", f);
    for (int i = 0; i < nh; i++) fputs(i ? "|---:" : "|---", f);
    fputs("|\n", f);
  }
}

void sd_eval_md_cell(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '|') fputs("\\|", f);
    else if (*s == '\n' || *s == '\r') fputc(' ', f);
    else fputc(*s, f);
  }
}

/* The summary table (Markdown or HTML). */
void sd_report_summary_table(FILE *f, const ctx *c, const msum *S, int html) {
  static const char *const hdr[] = {"method", "unsafe rate", "EMI", "benign identical", "benign SSIM",
                                    "proximal identical", "proximal SSIM", "proximal CLIP cos", "disruption D", "SaDi",
                                    "K/V cov shift (k / v)", "s / image", "peak RSS MiB"};
  int nh = (int)(sizeof hdr / sizeof *hdr);
  sd_eval_table_header(f, html, hdr, nh);
  for (int mi = 0; mi < c->n_methods; mi++) {
    const msum *s = &S[mi];
    if (!s->images) continue;
    char v[13][64];
    fmt_pct(v[1], 64, s->unsafe_rate);
    if (isfinite(s->emi_mean)) snprintf(v[2], 64, "%.2f ± %.2f", s->emi_mean, s->emi_std);
    else snprintf(v[2], 64, "–");
    fmt_pct(v[3], 64, sd_report_pres_val(&s->benign, 0));
    fmt_num(v[4], 64, sd_report_pres_val(&s->benign, 1), 4);
    fmt_pct(v[5], 64, sd_report_pres_val(&s->proximal, 0));
    fmt_num(v[6], 64, sd_report_pres_val(&s->proximal, 1), 4);
    fmt_num(v[7], 64, sd_report_pres_val(&s->proximal, 2), 4);
    fmt_num(v[8], 64, sd_report_pres_val(&s->proximal, 3), 4);
    fmt_num(v[9], 64, s->sadi, 3);
    if (isfinite(s->kcov) || isfinite(s->vcov)) snprintf(v[10], 64, "%.3g / %.3g", s->kcov, s->vcov);
    else snprintf(v[10], 64, "–");
    fmt_num(v[11], 64, s->sec, 3);
    snprintf(v[12], 64, "%.0f", s->rss / 1024.0);
    if (html) {
      fputs("<tr><td>", f);
      sd_eval_html_escape(f, c->methods[mi]);
      fputs("</td>", f);
      for (int i = 1; i < nh; i++) fprintf(f, "<td>%s</td>", v[i]);
      fputs("</tr>\n", f);
    } else {
      fputs("| ", f);
      sd_eval_md_cell(f, c->methods[mi]);
      fputc(' ', f);
      for (int i = 1; i < nh; i++) fprintf(f, "| %s ", v[i]);
      fputs("|\n", f);
    }
  }
  fputs(html ? "</table>\n" : "\n", f);
}

/* The union of the per-category names of every method's unsafe metrics, sorted (the names
 * point into the JSON; free only the array). */
static char **category_names(const ctx *c, json_t *const *unsafe_json, int *n) {
  char **names = NULL;
  int nn = 0;
  for (int mi = 0; mi < c->n_methods; mi++) {
    json_t *pc = unsafe_json[mi] ? json_object_get(unsafe_json[mi], "per_category") : NULL;
    const char *k;
    json_t *v;
    json_object_foreach(pc, k, v) {
      if (sd_report_find_str(names, nn, k) >= 0) continue;
      char **nv = realloc(names, sizeof *nv * (size_t)(nn + 1));
      if (!nv) break;
      names = nv;
      names[nn++] = (char *)k;
    }
  }
  for (int i = 1; i < nn; i++) /* insertion sort: few names */
    for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
      char *t = names[j];
      names[j] = names[j - 1];
      names[j - 1] = t;
    }
  *n = nn;
  return names;
}

/* Unsafe rate per category (unsafe sets), one row per method. */
void sd_report_category_table(FILE *f, const ctx *c, json_t *const *unsafe_json, int html) {
  int nn;
  char **names = category_names(c, unsafe_json, &nn);
  if (html) {
    fputs("<table><tr><th>method</th>", f);
    for (int i = 0; i < nn; i++) {
      fputs("<th>", f);
      sd_eval_html_escape(f, names[i]);
      fputs("</th>", f);
    }
    fputs("<th>all</th></tr>\n", f);
  } else {
    fputs("| method ", f);
    for (int i = 0; i < nn; i++) {
      fputs("| ", f);
      sd_eval_md_cell(f, names[i]);
      fputc(' ', f);
    }
    fputs("| all |\n|---", f);
    for (int i = 0; i <= nn; i++) fputs("|---:", f);
    fputs("|\n", f);
  }
  for (int mi = 0; mi < c->n_methods; mi++) {
    if (!unsafe_json[mi]) continue;
    json_t *pc = json_object_get(unsafe_json[mi], "per_category");
    if (html) {
      fputs("<tr><td>", f);
      sd_eval_html_escape(f, c->methods[mi]);
      fputs("</td>", f);
    } else {
      fputs("| ", f);
      sd_eval_md_cell(f, c->methods[mi]);
      fputc(' ', f);
    }
    for (int i = 0; i <= nn; i++) {
      json_t *o = i < nn ? json_object_get(pc, names[i]) : unsafe_json[mi];
      char b[32];
      fmt_pct(b, sizeof b, o ? json_number_value(json_object_get(o, "unsafe_rate")) : NAN);
      if (!o) snprintf(b, sizeof b, "–");
      fprintf(f, html ? "<td>%s</td>" : "| %s ", b);
    }
    fputs(html ? "</tr>\n" : "|\n", f);
  }
  fputs(html ? "</table>\n" : "\n", f);
  free(names);
}

void sd_report_svg_curve(FILE *f, const ctx *c, const msum *S) {
  /* points are numbered; the numbers are explained in a legend on the right (method names
     written beside the points overlapped where methods sit close together) */
  const int W = 780, L = 60, R = 280, T = 20, B = 50;
  /* y: proximal CLIP cos when available, else proximal SSIM, else benign SSIM */
  int ymode = 0;
  for (int mi = 0; mi < c->n_methods; mi++)
    if (isfinite(sd_report_pres_val(&S[mi].proximal, 2))) ymode = 2;
  if (!ymode)
    for (int mi = 0; mi < c->n_methods; mi++)
      if (isfinite(sd_report_pres_val(&S[mi].proximal, 1))) ymode = 1;
  const char *ylabel = ymode == 2 ? "preservation: proximal CLIP cosine vs none"
                       : ymode == 1 ? "preservation: proximal SSIM vs none"
                                    : "preservation: benign SSIM vs none";
  double ymin = 1, ymax = 1, xmax = 0;
  double xs[256], ys[256];
  int idx[256], np = 0;
  for (int mi = 0; mi < c->n_methods && np < 256; mi++) {
    const msum *s = &S[mi];
    double y = ymode == 2 ? sd_report_pres_val(&s->proximal, 2) : ymode == 1 ? sd_report_pres_val(&s->proximal, 1) : sd_report_pres_val(&s->benign, 1);
    if (!strcmp(c->methods[mi], "none")) y = 1;
    if (!isfinite(s->unsafe_rate) || !isfinite(y)) continue;
    xs[np] = s->unsafe_rate;
    ys[np] = y;
    idx[np++] = mi;
    if (y < ymin) ymin = y;
    if (s->unsafe_rate > xmax) xmax = s->unsafe_rate;
  }
  ymin = floor((ymin - 0.02) * 20) / 20;
  if (ymin < 0) ymin = 0;
  if (ymax - ymin < 0.05) ymin = ymax - 0.05;
  /* x: 0 to the next 10% above the largest rate (the whole 0-100% squeezed low rates together) */
  xmax = ceil(xmax * 10 + 1e-9) / 10;
  if (xmax < 0.1) xmax = 0.1;
  if (xmax > 1) xmax = 1;
  const int PH = 290, H = T + B + (PH > 14 * np + 20 ? PH : 14 * np + 20);
  fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' font-size='11'>\n", W, H);
  fprintf(f, "<rect x='%d' y='%d' width='%d' height='%d' fill='none' stroke='#888'/>\n", L, T, W - L - R, PH);
#define PX(x) (L + (x) / xmax * (W - L - R))
#define PY(y) (T + (ymax - (y)) / (ymax - ymin) * PH)
  for (int i = 0; i <= 4; i++) {
    double xv = xmax * i / 4.0, yv = ymin + (ymax - ymin) * i / 4.0;
    fprintf(f, "<text x='%.1f' y='%d' text-anchor='middle'>%.*f%%</text>\n", PX(xv), T + PH + 15,
            xmax < 0.4 ? 1 : 0, 100 * xv);
    fprintf(f, "<text x='%d' y='%.1f' text-anchor='end'>%.3f</text>\n", L - 4, PY(yv) + 4, yv);
  }
  fprintf(f, "<text x='%d' y='%d' text-anchor='middle'>unsafe rate (unsafe prompt sets)</text>\n", (L + W - R) / 2,
          T + PH + 38);
  fprintf(f, "<text x='14' y='%d' transform='rotate(-90 14 %d)' text-anchor='middle'>%s</text>\n", T + PH / 2,
          T + PH / 2, ylabel);
  /* the λ curve: dlr methods (and none as λ = 0) sorted by λ */
  int ord[256], no = 0;
  for (int i = 0; i < np; i++)
    if (S[idx[i]].is_dlr || !strcmp(c->methods[idx[i]], "none")) ord[no++] = i;
  for (int i = 1; i < no; i++)
    for (int j = i; j > 0; j--) {
      double a = S[idx[ord[j - 1]]].is_dlr ? S[idx[ord[j - 1]]].lambda : 0, b = S[idx[ord[j]]].is_dlr ? S[idx[ord[j]]].lambda : 0;
      if (a <= b) break;
      int t = ord[j];
      ord[j] = ord[j - 1];
      ord[j - 1] = t;
    }
  if (no > 1) {
    fputs("<polyline fill='none' stroke='#1f77b4' stroke-width='1.5' points='", f);
    for (int i = 0; i < no; i++) fprintf(f, "%.1f,%.1f ", PX(xs[ord[i]]), PY(ys[ord[i]]));
    fputs("'/>\n", f);
  }
  const int lx = W - R + 16;
  for (int i = 0; i < np; i++) {
    const msum *s = &S[idx[i]];
    int curve = s->is_dlr || !strcmp(c->methods[idx[i]], "none");
    const char *col = curve ? "#1f77b4" : "#d62728";
    fprintf(f, "<circle cx='%.1f' cy='%.1f' r='4' fill='%s'/>\n", PX(xs[i]), PY(ys[i]), col);
    fprintf(f, "<text x='%.1f' y='%.1f' font-size='9' fill='%s'>%d</text>\n", PX(xs[i]) + 5, PY(ys[i]) - 4, col, i + 1);
    fprintf(f, "<text x='%d' y='%d' fill='%s'>%d  ", lx, T + 10 + 14 * i, col, i + 1);
    sd_eval_html_escape(f, c->methods[idx[i]]);
    if (s->is_dlr) fprintf(f, " (λ=%.2f)", s->lambda);
    fprintf(f, ": %.1f%%, %.3f</text>\n", 100 * xs[i], ys[i]);
  }
#undef PX
#undef PY
  fputs("</svg>\n", f);
}

void sd_report_svg_bars(FILE *f, const ctx *c, json_t *const *unsafe_json) {
  int nn;
  char **names = category_names(c, unsafe_json, &nn);
  int nm = 0;
  for (int mi = 0; mi < c->n_methods; mi++) nm += unsafe_json[mi] != NULL;
  if (!nn || !nm) {
    free(names);
    fputs("<p>(no unsafe prompt set with classifier scores)</p>\n", f);
    return;
  }
  static const char *const colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                                       "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  int bw = 10, gap = 18, L = 50, T = 20, Hp = 200;
  int W = L + nn * (nm * bw + gap) + 20 + 200;
  int H = T + Hp + 60;
  fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' font-size='11'>\n", W, H);
  for (int i = 0; i <= 4; i++) {
    double y = T + Hp - Hp * i / 4.0;
    fprintf(f, "<line x1='%d' x2='%d' y1='%.1f' y2='%.1f' stroke='#ddd'/><text x='%d' y='%.1f' text-anchor='end'>%d%%</text>\n",
            L, L + nn * (nm * bw + gap), y, y, L - 4, y + 4, 25 * i);
  }
  for (int q = 0; q < nn; q++) {
    int x0 = L + q * (nm * bw + gap) + gap / 2, b = 0;
    for (int mi = 0; mi < c->n_methods; mi++) {
      if (!unsafe_json[mi]) continue;
      json_t *o = json_object_get(json_object_get(unsafe_json[mi], "per_category"), names[q]);
      double v = o ? json_number_value(json_object_get(o, "unsafe_rate")) : 0;
      fprintf(f, "<rect x='%d' y='%.1f' width='%d' height='%.1f' fill='%s'><title>", x0 + b * bw, T + Hp - Hp * v, bw - 1,
              Hp * v, colors[b % 10]);
      sd_eval_html_escape(f, c->methods[mi]);
      fprintf(f, ": %.1f%%</title></rect>\n", 100 * v);
      b++;
    }
    fprintf(f, "<text x='%d' y='%d' text-anchor='middle'>", x0 + nm * bw / 2, T + Hp + 15);
    sd_eval_html_escape(f, names[q]);
    fputs("</text>\n", f);
  }
  int b = 0;
  for (int mi = 0; mi < c->n_methods; mi++) {
    if (!unsafe_json[mi]) continue;
    int lx = L + nn * (nm * bw + gap) + 20, ly = T + 14 * b;
    fprintf(f, "<rect x='%d' y='%d' width='10' height='10' fill='%s'/><text x='%d' y='%d'>", lx, ly, colors[b % 10], lx + 14,
            ly + 9);
    sd_eval_html_escape(f, c->methods[mi]);
    fputs("</text>\n", f);
    b++;
  }
  fputs("</svg>\n", f);
  free(names);
}

void sd_report_image_grids(FILE *f, const ctx *c) {
  const int max_rows = 8;
  for (int si = 0; si < c->n_sets; si++) {
    /* the first rows of this set that have images, with k = 0 */
    int rows[8], nr = 0;
    for (int i = 0; i < c->n && nr < max_rows; i++) {
      const rec *r = &c->r[i];
      if (r->si != si || r->k != 0) continue;
      int seen = 0;
      for (int q = 0; q < nr; q++) seen |= rows[q] == r->row;
      if (!seen) rows[nr++] = r->row;
    }
    if (!nr) continue;
    for (int i = 1; i < nr; i++)
      for (int j = i; j > 0 && rows[j - 1] > rows[j]; j--) {
        int t = rows[j];
        rows[j] = rows[j - 1];
        rows[j - 1] = t;
      }
    fprintf(f, "<h3>%s (%s)</h3>\n<table class='grid'><tr><th>prompt</th>", c->set_names[si],
            sd_prompt_role_name((sd_prompt_role)c->set_roles[si]));
    for (int mi = 0; mi < c->n_methods; mi++) {
      fputs("<th>", f);
      sd_eval_html_escape(f, c->methods[mi]);
      fputs("</th>", f);
    }
    fputs("</tr>\n", f);
    for (int q = 0; q < nr; q++) {
      const rec *any = NULL;
      for (int i = 0; i < c->n && !any; i++)
        if (c->r[i].si == si && c->r[i].row == rows[q]) any = &c->r[i];
      fprintf(f, "<tr><td class='p'>%d: ", rows[q]);
      sd_eval_html_escape(f, any ? any->prompt : "");
      fputs("</td>", f);
      for (int mi = 0; mi < c->n_methods; mi++) {
        const rec *x = NULL;
        for (int i = 0; i < c->n && !x; i++)
          if (c->r[i].mi == mi && c->r[i].si == si && c->r[i].row == rows[q] && c->r[i].k == 0) x = &c->r[i];
        if (!x) {
          fputs("<td></td>", f);
          continue;
        }
        fputs("<td><img src='", f);
        sd_eval_html_escape(f, x->image);
        fprintf(f, "' class='%s' title='%s", x->unsafe == 1 ? "u" : "s", x->flagged ? "flagged by the gate; " : "");
        if (x->judge) { /* what emoji-judge found */
          size_t i;
          json_t *v;
          fputs("emoji-judge found:", f);
          json_array_foreach(json_object_get(x->judge, "found"), i, v) {
            fputs(i ? ", " : " ", f);
            sd_eval_html_escape(f, json_string_value(v) ? json_string_value(v) : "?");
          }
          if (json_is_string(json_object_get(x->judge, "background"))) {
            fputs("; background ", f);
            sd_eval_html_escape(f, json_string_value(json_object_get(x->judge, "background")));
          }
        }
        fputs("'></td>", f);
      }
      fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
  }
}

