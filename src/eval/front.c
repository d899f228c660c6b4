/* Levels from the measured safety–preservation front (front.h). */
#include "eval/front.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/error.h"
#include "eval/harness.h"
#include "eval/harness_internal.h"
#include "io/json_util.h"

const double sd_level_fraction[SD_LEVEL_COUNT] = {0.5, 0.25, 0.1, 0.0};

static double num(const json_t *o, const char *k) {
  const json_t *v = json_object_get(o, k);
  return json_is_number(v) ? json_number_value(v) : NAN;
}

/* a beats b: no less safe, no less preserving, better in one */
static int dominates(const sd_front_point *a, const sd_front_point *b) {
  return a->unsafe <= b->unsafe && a->preservation >= b->preservation &&
         (a->unsafe < b->unsafe || a->preservation > b->preservation);
}

/* a is the better choice for a level than b (both allowed) */
static int better(const sd_front_point *a, const sd_front_point *b) {
  if (a->preservation != b->preservation) return a->preservation > b->preservation;
  if (a->unsafe != b->unsafe) return a->unsafe < b->unsafe;
  if (isfinite(a->ssim) && isfinite(b->ssim) && a->ssim != b->ssim) return a->ssim > b->ssim;
  return a->lambda < b->lambda;
}

void sd_front_choose(sd_front *f) {
  double umin = INFINITY;
  for (int i = 0; i < f->n; i++) {
    f->p[i].on_front = 1;
    for (int j = 0; j < f->n && f->p[i].on_front; j++)
      if (j != i && dominates(&f->p[j], &f->p[i])) f->p[i].on_front = 0;
    if (f->p[i].on_front && f->p[i].unsafe < umin) umin = f->p[i].unsafe;
  }
  double u0 = isfinite(f->u0) && f->u0 > umin ? f->u0 : umin;
  for (int l = 0; l < SD_LEVEL_COUNT; l++) {
    double lim = umin + sd_level_fraction[l] * (u0 - umin) + 1e-12;
    f->level[l] = -1;
    for (int i = 0; i < f->n; i++)
      if (f->p[i].on_front && f->p[i].unsafe <= lim && (f->level[l] < 0 || better(&f->p[i], &f->p[f->level[l]])))
        f->level[l] = i;
  }
}

int sd_front_separates(const sd_front *f) {
  double umin = INFINITY;
  for (int i = 0; i < f->n; i++)
    if (f->p[i].on_front && f->p[i].unsafe < umin) umin = f->p[i].unsafe;
  if (isfinite(f->u0) && f->u0 > umin) return SD_OK;
  return sd_fail(SD_E_ARG, "the sweep does not tell the settings apart: 'none' leaves the unsafe object in %.1f%% of "
                 "the scenes, the dual path's lowest is %.1f%%, so every level is the same point (the judge finds "
                 "nothing to remove); no levels chosen",
                 100 * f->u0, 100 * umin);
}

int sd_front_from_eval(const char *outdir, sd_front *f) {
  memset(f, 0, sizeof *f);
  f->u0 = NAN;
  char path[PATH_MAX];
  json_t *root = NULL;
  int rc;
  if (snprintf(path, sizeof path, "%s/metrics.json", outdir) >= (int)sizeof path) return sd_fail(SD_E_ARG, "path too long");
  if ((rc = sd_json_load_file(path, 256u << 20, &root))) return sd_fail_prefix(rc, "no metrics (run safesd eval first): ");
  const json_t *ms = json_object_get(root, "methods");
  if (!json_is_object(ms)) {
    json_decref(root);
    return sd_fail(SD_E_FORMAT, "%s: no \"methods\" object", path);
  }
  const char *name;
  json_t *o;
  json_object_foreach((json_t *)ms, name, o) {
    const json_t *u = json_object_get(json_object_get(o, "scenes"), "unsafe");
    double rate = num(u, "unsafe_object_present"), kept = num(u, "objects_kept"), bg = num(u, "background_kept");
    if (!json_is_object(u) || !isfinite(rate)) continue;
    if (!strcmp(name, "none")) {
      f->u0 = rate;
      f->images0 = (int)num(u, "unsafe_scenes");
      continue;
    }
    sd_eval_method m;
    if (sd_eval_method_parse(name, &m)) {
      sd_clear_error();
      continue;
    }
    int ok = m.kind == SD_EM_DLR && !isnan(m.lambda) && !isnan(m.tau) && isfinite(kept) && isfinite(bg);
    if (ok && f->n < SD_LEVELS_MAX_POINTS) {
      sd_front_point *p = &f->p[f->n++];
      snprintf(p->method, sizeof p->method, "%s", name);
      p->lambda = m.lambda;
      p->tau = m.tau;
      snprintf(p->strategy, sizeof p->strategy, "%s", m.strategy);
      snprintf(p->blend, sizeof p->blend, "%s", m.blend);
      p->unsafe = rate;
      p->kept = kept;
      p->background = bg;
      p->preservation = (kept + bg) / 2;
      p->ssim = num(u, "ssim_outside");
      p->images = (int)num(u, "unsafe_scenes");
      const json_t *ci = json_object_get(u, "unsafe_ci95");
      p->ci_lo = json_number_value(json_array_get(ci, 0));
      p->ci_hi = json_number_value(json_array_get(ci, 1));
    }
    sd_eval_method_clear(&m);
  }
  json_decref(root);
  if (!isfinite(f->u0))
    return sd_fail(SD_E_ARG, "%s: no scene metrics of 'none' (the sweep needs none and scene sets with an unsafe role, "
                   "judged by emoji-judge)", path);
  if (!f->n)
    return sd_fail(SD_E_ARG, "%s: no dual-path method with explicit parameters (dlr:l=X,t=Y,...) has scene metrics", path);
  sd_front_choose(f);
  return SD_OK;
}

void sd_front_print(const sd_front *f, FILE *out) {
  fprintf(out, "none: unsafe object present %.1f%% (%d scenes)\n", 100 * f->u0, f->images0);
  fprintf(out, "%-5s %-44s %8s %13s %8s %8s %8s %8s\n", "front", "method", "unsafe", "95% CI", "kept", "bg kept",
          "preserv.", "SSIM out");
  for (int i = 0; i < f->n; i++) {
    const sd_front_point *p = &f->p[i];
    char ci[32];
    snprintf(ci, sizeof ci, "%.0f-%.0f%%", 100 * p->ci_lo, 100 * p->ci_hi);
    fprintf(out, "%-5s %-44s %7.1f%% %13s %7.1f%% %7.1f%% %7.1f%% %8.4f\n", p->on_front ? "*" : "", p->method,
            100 * p->unsafe, ci, 100 * p->kept, 100 * p->background, 100 * p->preservation, p->ssim);
  }
  for (int l = 0; l < SD_LEVEL_COUNT; l++) {
    int i = f->level[l];
    if (i < 0) continue;
    fprintf(out, "level %-6s (rate <= floor + %.2f x (none - floor)): %s: unsafe %.1f%%, preservation %.1f%%\n",
            sd_level_name(l), sd_level_fraction[l], f->p[i].method, 100 * f->p[i].unsafe, 100 * f->p[i].preservation);
  }
}

void sd_front_levels(const sd_front *f, sd_levels *L) {
  memset(L, 0, sizeof *L);
  for (int l = 0; l < SD_LEVEL_COUNT; l++) {
    int i = f->level[l];
    if (i < 0) continue;
    sd_level *v = &L->l[l];
    v->set = 1;
    v->weight = f->p[i].lambda;
    v->context = f->p[i].tau;
    snprintf(v->strategy, sizeof v->strategy, "%s", f->p[i].strategy);
    snprintf(v->blend, sizeof v->blend, "%s", f->p[i].blend);
  }
}

char *sd_front_comment(const sd_front *f, const char *outdir) {
  size_t cap = 1024 + strlen(outdir) + SD_LEVEL_COUNT * 256, o = 0;
  char *s = malloc(cap);
  if (!s) return NULL;
  int front = 0;
  for (int i = 0; i < f->n; i++) front += f->p[i].on_front;
  o += (size_t)snprintf(s + o, cap - o,
                        "measured by `safesd eval levels %s`: %d dual-path settings, %d on the safety-preservation front;\n"
                        "none leaves the unsafe object in %.1f%% of %d unsafe scenes. Rule (docs/safety.md): each level is\n"
                        "the front point that keeps the most (objects and background) with an unsafe rate at most\n"
                        "floor + f x (none - floor), f = 0.5 / 0.25 / 0.1 / 0 for low / medium / high / max.",
                        outdir, f->n, front, 100 * f->u0, f->images0);
  for (int l = 0; l < SD_LEVEL_COUNT; l++) {
    int i = f->level[l];
    if (i < 0) continue;
    o += (size_t)snprintf(s + o, cap - o, "\n%s: unsafe object present %.1f%%, objects kept %.1f%%, background kept %.1f%%",
                          sd_level_name(l), 100 * f->p[i].unsafe, 100 * f->p[i].kept, 100 * f->p[i].background);
  }
  return s;
}

int sd_front_write_json(const sd_front *f, const char *path) {
  json_t *o = json_object(), *pts = json_array(), *lv = json_object();
  json_object_set_new(o, "none_unsafe", json_real(f->u0));
  json_object_set_new(o, "none_scenes", json_integer(f->images0));
  for (int i = 0; i < f->n; i++) {
    const sd_front_point *p = &f->p[i];
    json_array_append_new(pts, json_pack("{s:s,s:f,s:f,s:s,s:s,s:f,s:[f,f],s:f,s:f,s:f,s:f,s:b}", "method", p->method,
                                         "lambda", (double)p->lambda, "tau", (double)p->tau, "strategy", p->strategy,
                                         "blend", p->blend, "unsafe", p->unsafe, "unsafe_ci95", p->ci_lo, p->ci_hi,
                                         "objects_kept", p->kept, "background_kept", p->background, "preservation",
                                         p->preservation, "ssim_outside", isfinite(p->ssim) ? p->ssim : -1.0, "front",
                                         p->on_front));
  }
  for (int l = 0; l < SD_LEVEL_COUNT; l++)
    json_object_set_new(lv, sd_level_name(l), f->level[l] >= 0 ? json_string(f->p[f->level[l]].method) : json_null());
  json_object_set_new(o, "points", pts);
  json_object_set_new(o, "levels", lv);
  json_object_set_new(o, "fractions", json_pack("[f,f,f,f]", sd_level_fraction[0], sd_level_fraction[1],
                                                sd_level_fraction[2], sd_level_fraction[3]));
  int rc = sd_eval_write_json(path, o);
  json_decref(o);
  return rc;
}

int sd_front_eval_bank(const char *outdir, char *out, size_t cap) {
  char p[PATH_MAX];
  json_t *root = NULL;
  if (snprintf(p, sizeof p, "%s/eval.json", outdir) >= (int)sizeof p || sd_json_load_file(p, 64u << 20, &root)) {
    sd_clear_error();
    return -1;
  }
  const json_t *st = json_object_get(root, "settings");
  const char *c = json_string_value(json_object_get(st, "concepts")), *m = json_string_value(json_object_get(st, "model"));
  int ok = c ? snprintf(out, cap, "%s", c) < (int)cap : m ? snprintf(out, cap, "%s/safety/concepts.bank", m) < (int)cap : 0;
  json_decref(root);
  return ok ? 0 : -1;
}
