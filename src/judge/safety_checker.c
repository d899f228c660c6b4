#include "judge/safety_checker.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

struct sd_safety_checker {
  sd_clip_vision *cv;
  int nc, ns, dim;
  float *concepts, *special;        /* [nc, P], [ns, P] as stored (widened) */
  float *concept_thr, *special_thr; /* [nc], [ns] */
};

void sd_safety_checker_free(sd_safety_checker *sc) {
  if (!sc) return;
  sd_clip_vision_free(sc->cv);
  free(sc->concepts);
  free(sc->special);
  free(sc->concept_thr);
  free(sc->special_thr);
  free(sc);
}

static int check_finite(const sd_clip_vision *cv, const char *name, const float *v, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(v[i]))
      return sd_fail(SD_E_FORMAT, "%s: tensor '%s' holds a value that is not finite (index %lld)",
                     sd_clip_vision_file(cv), name, (long long)i);
  return SD_OK;
}

int sd_safety_checker_load(const char *dir, sd_safety_checker **out) {
  *out = NULL;
  sd_safety_checker *sc = calloc(1, sizeof *sc);
  if (!sc) return sd_fail(SD_E_NOMEM, "out of memory");
  int rc = sd_clip_vision_load(dir, &sc->cv);
  if (rc) goto fail;
  const sd_clip_vision *cv = sc->cv;
  const int64_t P = sd_clip_vision_cfg(cv)->projection_dim;
  sc->dim = (int)P;
  int64_t any_p[2] = {-1, P}, got[2];
  if ((rc = sd_clip_vision_extra_f32(cv, "concept_embeds", 2, any_p, got, &sc->concepts))) goto fail;
  sc->nc = (int)got[0];
  if ((rc = sd_clip_vision_extra_f32(cv, "special_care_embeds", 2, any_p, got, &sc->special))) goto fail;
  sc->ns = (int)got[0];
  if (sc->nc < 1 || sc->nc > SD_SAFETY_MAX_CONCEPTS || sc->ns < 1 || sc->ns > SD_SAFETY_MAX_CONCEPTS) {
    rc = sd_fail(SD_E_FORMAT, "%s: %d concepts and %d special-care concepts (1..%d each)", sd_clip_vision_file(cv),
                 sc->nc, sc->ns, SD_SAFETY_MAX_CONCEPTS);
    goto fail;
  }
  int64_t nc[1] = {sc->nc}, ns[1] = {sc->ns};
  if ((rc = sd_clip_vision_extra_f32(cv, "concept_embeds_weights", 1, nc, NULL, &sc->concept_thr)) ||
      (rc = sd_clip_vision_extra_f32(cv, "special_care_embeds_weights", 1, ns, NULL, &sc->special_thr)) ||
      (rc = check_finite(cv, "concept_embeds", sc->concepts, sc->nc * P)) ||
      (rc = check_finite(cv, "special_care_embeds", sc->special, sc->ns * P)) ||
      (rc = check_finite(cv, "concept_embeds_weights", sc->concept_thr, sc->nc)) ||
      (rc = check_finite(cv, "special_care_embeds_weights", sc->special_thr, sc->ns)))
    goto fail;
  *out = sc;
  return SD_OK;
fail:
  sd_safety_checker_free(sc);
  return sd_fail_prefix(rc, "safety checker: ");
}

sd_clip_vision *sd_safety_checker_vision(sd_safety_checker *sc) { return sc->cv; }

int sd_safety_checker_counts(const sd_safety_checker *sc, int *n_concepts, int *n_special) {
  if (n_concepts) *n_concepts = sc->nc;
  if (n_special) *n_special = sc->ns;
  return SD_OK;
}

/* cos(a, b) as F.normalize(a) · F.normalize(b) (norms clamped at 1e-12), rounded to float32 */
static float cosine(const float *a, const float *b, int d) {
  double aa = 0, bb = 0, ab = 0;
  for (int i = 0; i < d; i++) {
    aa += (double)a[i] * a[i];
    bb += (double)b[i] * b[i];
    ab += (double)a[i] * b[i];
  }
  return (float)(ab / (fmax(sqrt(aa), 1e-12) * fmax(sqrt(bb), 1e-12)));
}

static double round3(double x) { return rint(x * 1000.0) / 1000.0; }

int sd_safety_checker_scores(const sd_safety_checker *sc, const float *embeds, int n, sd_safety_result *out) {
  if (n < 0 || (n > 0 && (!embeds || !out))) return sd_fail(SD_E_ARG, "safety checker: bad arguments");
  const int P = sc->dim;
  for (int b = 0; b < n; b++) {
    const float *e = embeds + (size_t)b * P;
    sd_safety_result *r = &out[b];
    memset(r, 0, sizeof *r);
    r->n_concepts = sc->nc;
    r->n_special = sc->ns;
    double adjustment = 0.0;
    for (int j = 0; j < sc->ns; j++) {
      r->special_cos[j] = cosine(e, sc->special + (size_t)j * P, P);
      r->special_score[j] = round3((double)r->special_cos[j] - (double)sc->special_thr[j] + adjustment);
      if (r->special_score[j] > 0) {
        r->n_special_care++;
        adjustment = 0.01;
      }
    }
    for (int k = 0; k < sc->nc; k++) {
      r->concept_cos[k] = cosine(e, sc->concepts + (size_t)k * P, P);
      r->concept_score[k] = round3((double)r->concept_cos[k] - (double)sc->concept_thr[k] + adjustment);
      if (r->concept_score[k] > 0) r->n_bad_concepts++;
    }
    r->has_nsfw_concept = r->n_bad_concepts > 0;
  }
  return SD_OK;
}

int sd_safety_checker_check(sd_safety_checker *sc, sd_exec *ex, const sd_rgb8_image *images, int n,
                            sd_safety_result *out) {
  if (n <= 0) return n == 0 ? SD_OK : sd_fail(SD_E_ARG, "safety checker: %d images", n);
  float *e = malloc((size_t)n * sc->dim * sizeof(float));
  if (!e) return sd_fail(SD_E_NOMEM, "safety checker: out of memory");
  int rc = sd_clip_vision_embed(sc->cv, ex, images, n, e);
  if (rc == SD_OK) rc = sd_safety_checker_scores(sc, e, n, out);
  free(e);
  return rc ? sd_fail_prefix(rc, "safety checker: ") : SD_OK;
}
