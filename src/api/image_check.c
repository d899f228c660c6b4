/* Output-image checks of the public API (docs/safety.md, "Output-image checks"): the image
 * classifiers of src/judge/ (the same code `safesd eval --classifier` runs) judge every
 * generated image, and an image a judge calls unsafe is flagged, blurred or blocked.
 *
 * The list names classifiers as classify.h does, with defaults for a model folder:
 * safety-checker and q16 default to MODEL/safety_checker (SD 1.x diffusers checkpoints ship
 * it; it holds the ViT-L/14 tower Q16 needs), clip-zeroshot to MODEL/clip (the bundled
 * model's judge); "auto" is every one of safety-checker and clip-zeroshot the model has.
 * Here the SD safety checker is a judge, as in diffusers' pipeline (nsfw_content_detected).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "safesd.h"

#include "api/api_internal.h"
#include "core/error.h"
#include "judge/classify.h"

#define SPEC_MAX 4096

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int sd_api_image_action_parse(const char *name) {
  const char *n = name ? name : "flag";
  if (!strcmp(n, "flag")) return SD_IMAGE_FLAG;
  if (!strcmp(n, "blur")) return SD_IMAGE_BLUR;
  if (!strcmp(n, "block")) return SD_IMAGE_BLOCK;
  return sd_fail(SD_E_ARG, "unknown image-check action '%.64s' (flag, blur, block)", n);
}

static int spec_is_none(const char *spec) { return !spec || !*spec || !strcmp(spec, "none"); }

/* The model folder the defaults are relative to (a single file: its folder). */
static void model_dir(const safesd_model *m, char *dir, size_t cap) {
  const char *path = sd_model_path(m->src);
  if (is_dir(path)) {
    snprintf(dir, cap, "%s", path);
    return;
  }
  const char *slash = strrchr(path, '/');
  if (slash) snprintf(dir, cap, "%.*s", (int)(slash - path), path);
  else snprintf(dir, cap, ".");
}

/* The user's list with the model's default folders filled in: classify.h's spec. */
static int expand_spec(const safesd_model *m, const char *spec, char *out, size_t cap) {
  char dir[4096], buf[SPEC_MAX];
  model_dir(m, dir, sizeof dir);
  if (strlen(spec) >= sizeof buf) return sd_fail(SD_E_ARG, "image check list too long");
  snprintf(buf, sizeof buf, "%s", spec);
  out[0] = 0;
  size_t len = 0;
  char *save = NULL;
  for (char *it = strtok_r(buf, ",", &save); it; it = strtok_r(NULL, ",", &save)) {
    char item[8400];
    char *arg = strchr(it, ':');
    if (arg) *arg++ = 0;
    if (!strcmp(it, "none") && !arg) continue;
    if (!strcmp(it, "auto") && !arg) {
      char sc[4200], clip[4200];
      snprintf(sc, sizeof sc, "%s/safety_checker", dir);
      snprintf(clip, sizeof clip, "%s/clip", dir);
      int any = 0;
      if (is_dir(sc)) any += snprintf(item, sizeof item, "safety-checker:%s", sc) > 0;
      if (is_dir(clip)) {
        size_t l = any ? strlen(item) : 0;
        snprintf(item + l, sizeof item - l, "%sclip-zeroshot:%s", any ? "," : "", clip);
        any++;
      }
      if (!any) return sd_fail(SD_E_ARG, "image check 'auto': the model (%s) has neither safety_checker/ nor clip/", dir);
    } else if ((!strcmp(it, "safety-checker") || !strcmp(it, "q16")) && !arg) {
      snprintf(item, sizeof item, "%s:%s/safety_checker", it, dir);
    } else if (!strcmp(it, "nsfwjs") && !arg) {
      return sd_fail(SD_E_ARG, "image check 'nsfwjs' needs its folder: nsfwjs:DIR");
    } else if (!strcmp(it, "safety-checker") || !strcmp(it, "q16") || !strcmp(it, "nsfwjs") ||
               !strcmp(it, "clip-zeroshot")) {
      snprintf(item, sizeof item, "%s%s%s", it, arg ? ":" : "", arg ? arg : "");
    } else {
      return sd_fail(SD_E_ARG,
                     "unknown image check '%.64s' (safety-checker[:DIR], q16[:DIR], nsfwjs:DIR, clip-zeroshot[:DIR], "
                     "auto, none)",
                     it);
    }
    int w = snprintf(out + len, cap - len, "%s%s", len ? "," : "", item);
    if (w < 0 || (size_t)w >= cap - len) return sd_fail(SD_E_ARG, "image check list too long");
    len += (size_t)w;
  }
  return SD_OK;
}

/* The classifiers of `spec`, loaded on first use and kept on the model (reloaded when
 * another list or concept bank is asked for). */
static int need_checks(safesd_model *m, const char *spec, const char *concepts) {
  char key[SPEC_MAX + 4200];
  snprintf(key, sizeof key, "%s\n%s", spec, concepts ? concepts : "");
  if (m->checks && m->checks_key && !strcmp(m->checks_key, key)) return SD_OK;
  sd_eval_classifiers_free(m->checks);
  free(m->checks_key);
  m->checks = NULL;
  m->checks_key = NULL;
  char full[3 * SPEC_MAX];
  char dir[4096];
  int rc = expand_spec(m, spec, full, sizeof full);
  if (rc) return rc;
  if (!full[0]) return sd_fail(SD_E_ARG, "image check list '%.64s' names no classifier", spec);
  model_dir(m, dir, sizeof dir);
  sd_eval_classifiers *c;
  if ((rc = sd_eval_classifiers_load(full, dir, concepts, NULL, &c))) return sd_fail_prefix(rc, "image check: ");
  sd_eval_classifiers_checker_judges(c, 1);
  if (!sd_eval_classifiers_judges(c)) {
    sd_eval_classifiers_free(c);
    return sd_fail(SD_E_ARG, "image check '%.64s': no classifier that decides", spec);
  }
  if (!(m->checks_key = strdup(key))) {
    sd_eval_classifiers_free(c);
    return sd_fail(SD_E_NOMEM, "out of memory");
  }
  m->checks = c;
  return SD_OK;
}

int sd_api_image_check_prepare(safesd_model *m, const safesd_gen_params *p) {
  if (sd_api_image_action_parse(p->image_check_action) < 0) return SD_E_ARG;
  if (spec_is_none(p->image_check)) return SD_OK;
  return need_checks(m, p->image_check, p->concepts);
}

void sd_api_verdicts_free(safesd_model *m) {
  for (int i = 0; i < m->n_verdicts; i++) {
    free((char *)m->verdicts[i].judges);
    free((char *)m->verdicts[i].scores);
  }
  free(m->verdicts);
  m->verdicts = NULL;
  m->n_verdicts = 0;
}

void sd_api_image_checks_free(safesd_model *m) {
  sd_api_verdicts_free(m);
  sd_eval_classifiers_free(m->checks);
  free(m->checks_key);
  m->checks = NULL;
  m->checks_key = NULL;
}

/* One box-filter pass of radius r over n samples x[0], x[s], ..., edges clamped. */
static void box1d(float *x, int n, int s, int r, float *tmp) {
  double sum = 0;
  for (int j = -r; j <= r; j++) sum += x[(int64_t)(j < 0 ? 0 : j >= n ? n - 1 : j) * s];
  for (int i = 0; i < n; i++) {
    tmp[i] = (float)(sum / (2 * r + 1));
    int add = i + r + 1, sub = i - r;
    sum += x[(int64_t)(add >= n ? n - 1 : add) * s] - x[(int64_t)(sub < 0 ? 0 : sub) * s];
  }
  for (int i = 0; i < n; i++) x[(int64_t)i * s] = tmp[i];
}

/* A strong blur: three box passes of radius max(2, larger side / 8) along rows and columns
 * (close to a Gaussian of sigma ~ side / 7.5): nothing finer than about a seventh of the
 * image survives. */
int sd_api_blur_rgb8(uint8_t *rgb, int w, int h) {
  const int r = (w > h ? w : h) / 8 > 2 ? (w > h ? w : h) / 8 : 2;
  const int64_t n = (int64_t)w * h * 3;
  float *a = malloc(sizeof(float) * (size_t)n), *tmp = malloc(sizeof(float) * (size_t)(w > h ? w : h));
  if (!a || !tmp) {
    free(a);
    free(tmp);
    return sd_fail(SD_E_NOMEM, "out of memory");
  }
  for (int64_t i = 0; i < n; i++) a[i] = rgb[i];
  for (int pass = 0; pass < 3; pass++)
    for (int c = 0; c < 3; c++) {
      for (int y = 0; y < h; y++) box1d(a + (int64_t)y * w * 3 + c, w, 3, r, tmp);
      for (int x = 0; x < w; x++) box1d(a + (int64_t)x * 3 + c, h, w * 3, r, tmp);
    }
  for (int64_t i = 0; i < n; i++) {
    float v = roundf(a[i]);
    rgb[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
  }
  free(a);
  free(tmp);
  return SD_OK;
}

/* The judges that called an image unsafe: the classifiers whose scores say "unsafe". */
static char *unsafe_judges(json_t *scores) {
  size_t cap = 256, len = 0;
  char *s = malloc(cap);
  if (!s) return NULL;
  s[0] = 0;
  const char *key;
  json_t *v;
  json_object_foreach(scores, key, v) {
    if (!json_is_true(json_object_get(v, "unsafe"))) continue;
    size_t need = len + strlen(key) + 2;
    if (need > cap) {
      char *t = realloc(s, cap = need * 2);
      if (!t) { free(s); return NULL; }
      s = t;
    }
    len += (size_t)sprintf(s + len, "%s%s", len ? "," : "", key);
  }
  return s;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int classify_one(safesd_model *m, const uint8_t *rgb, int w, int h, int *nsfw, char **judges, char **scores) {
  json_t *sc = NULL;
  int unsafe = -1;
  int rc = sd_eval_classify(m->checks, m->ex, rgb, w, h, &sc, &unsafe, NULL);
  if (rc) return rc;
  *nsfw = unsafe;
  if (judges) *judges = unsafe_judges(sc);
  if (scores) *scores = json_dumps(sc, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
  json_decref(sc);
  if ((judges && !*judges) || (scores && !*scores)) return sd_fail(SD_E_NOMEM, "out of memory");
  return SD_OK;
}

int sd_api_image_check_run(safesd_model *m, const safesd_gen_params *p, uint8_t *rgb, safesd_safety_report *rep) {
  const int B = p->batch, checked = !spec_is_none(p->image_check);
  const int action = sd_api_image_action_parse(p->image_check_action);
  if (action < 0) return action;
  sd_api_verdicts_free(m);
  if (!(m->verdicts = calloc((size_t)B, sizeof *m->verdicts))) return sd_fail(SD_E_NOMEM, "out of memory");
  m->n_verdicts = B;
  const double t0 = now_s();
  const size_t per = (size_t)p->width * p->height * 3;
  int n_unsafe = 0, rc = SD_OK;
  for (int b = 0; b < B; b++) {
    safesd_image_verdict *v = &m->verdicts[b];
    v->nsfw = -1;
    v->action = "none";
    if (!checked) continue;
    if (p->cancel && p->cancel(p->cancel_user)) return sd_fail(SD_E_CANCELLED, "cancelled");
    char *judges = NULL, *scores = NULL;
    rc = classify_one(m, rgb + per * b, p->width, p->height, &v->nsfw, &judges, &scores);
    v->judges = judges;
    v->scores = scores;
    if (rc) return rc;
    if (v->nsfw != 1) continue;
    n_unsafe++;
    if (action == SD_IMAGE_BLUR) {
      if ((rc = sd_api_blur_rgb8(rgb + per * b, p->width, p->height))) return rc;
      v->action = "blurred";
    } else if (action == SD_IMAGE_BLOCK) {
      memset(rgb + per * b, 0, per);
      v->action = "blocked";
    } else {
      v->action = "flagged";
    }
  }
  if (rep) {
    rep->image_check = checked ? sd_eval_classifiers_spec(m->checks) : NULL;
    rep->image_check_action = checked ? (action == SD_IMAGE_BLUR ? "blur" : action == SD_IMAGE_BLOCK ? "block" : "flag") : NULL;
    rep->n_images = B;
    rep->images = m->verdicts;
    rep->n_unsafe = n_unsafe;
    rep->image_check_seconds = checked ? now_s() - t0 : 0;
  }
  return SD_OK;
}

const char *sd_api_image_check_label(const safesd_model *m, int index, char *buf, size_t cap) {
  if (index < 0 || index >= m->n_verdicts || m->verdicts[index].nsfw < 0) return NULL;
  const safesd_image_verdict *v = &m->verdicts[index];
  if (v->nsfw == 1) snprintf(buf, cap, "unsafe by %.200s, %s", v->judges ? v->judges : "?", v->action);
  else snprintf(buf, cap, "passed");
  return buf;
}

int safesd_image_check(safesd_model *m, const char *image_check, const uint8_t *rgb, int width, int height, int *nsfw,
                       char **scores_json) {
  if (scores_json) *scores_json = NULL;
  if (!m || !rgb || !nsfw) return sd_fail(SD_E_ARG, "image check: no model, image or result");
  if (width <= 0 || height <= 0 || width > 65535 || height > 65535)
    return sd_fail(SD_E_ARG, "image check: a %dx%d image", width, height);
  if (spec_is_none(image_check)) return sd_fail(SD_E_ARG, "image check: no classifier given");
  int rc = need_checks(m, image_check, NULL);
  if (rc) return rc;
  return classify_one(m, rgb, width, height, nsfw, NULL, scores_json);
}
