/* Conformance helper for the image classifiers (src/eval/): the C CLIP vision tower,
 * preprocessing, Q16 and the SD safety checker against the PyTorch / Pillow reference cases
 * of tools/ref/clip_vision_case.py.
 *
 *   clip_vision_check resize CASE
 *       resize + center crop to 224 of CASE/resize_K_in.npy == Pillow's CASE/resize_K_out.npy
 *       (byte equality).
 *   clip_vision_check embed CASE [--rel R] [--threads N]
 *       CASE/model loaded; per image: crop bytes == crop_K.npy, normalised pixels ==
 *       pixels_K.npy (exact); image_embeds of all images (one batch, from the uint8 images)
 *       vs embeds.npy: max abs error <= R * max|embeds| (default R 1e-4); the same images one
 *       at a time give the same values as the batch.
 *   clip_vision_check q16 CASE [--threads N]
 *       Q16 with CASE/q16_prompts.f32 on the C embeddings: labels == q16_label.npy, 100·cos
 *       within 2e-3 of q16_sims.npy, p within 1e-4 of q16_p.npy; and on the reference
 *       embeddings (the decision math alone): sims within 1e-4.
 *   clip_vision_check q16-file PATH
 *       the real ViT-L/14 prompt file: d = 768, finite, row norms 22.17 / 21.35 and cosine
 *       0.887 (../shared/data/q16/README.md), a 512-d embedding refused.
 *   clip_vision_check safety CASE [--threads N]
 *       the safety checker on the images: cosines within 1e-4, rounded scores within one
 *       rounding step (1e-3), special-care / bad-concept counts and has_nsfw_concept equal.
 *   clip_vision_check errors CASE
 *       the API refuses bad arguments (image sizes, batch sizes, mismatched Q16 dimension).
 * Exit 0 if every comparison passes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/error.h"
#include "core/ops.h"
#include "judge/clip_vision.h"
#include "judge/q16.h"
#include "judge/safety_checker.h"
#include "io/npy.h"
#include "common/check_err.h"

#define MAX_IMAGES 16

static int failures = 0;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static int exists(const char *p) {
  struct stat s;
  return stat(p, &s) == 0;
}

static void check(int ok, const char *fmt, double got, double tol) {
  printf(fmt, got, tol);
  printf(" %s\n", ok ? "ok" : "FAIL");
  if (!ok) failures++;
}

static int die(const char *what) {
  fprintf(stderr, "clip_vision_check: %s: %s\n", what, sd_errmsg());
  return 1;
}

/* image_K.npy (int32 [H, W, 3]) -> uint8 */
typedef struct {
  uint8_t *rgb;
  sd_rgb8_image img;
} owned_image;

static int load_image(const char *path, owned_image *o) {
  sd_tensor t;
  if (sd_npy_read(path, &t)) return 1;
  if (t.dtype != SD_I32 || t.ndim != 3 || t.shape[2] != 3) {
    free(t.data);
    fprintf(stderr, "%s: expected int32 [H, W, 3]\n", path);
    return 1;
  }
  int64_t n = sd_numel(&t);
  o->rgb = malloc((size_t)n);
  for (int64_t i = 0; i < n; i++) o->rgb[i] = (uint8_t)((int32_t *)t.data)[i];
  o->img = (sd_rgb8_image){o->rgb, (int)t.shape[1], (int)t.shape[0]};
  free(t.data);
  return 0;
}

static int load_images(const char *dir, owned_image *imgs) {
  int n = 0;
  char p[4096];
  for (; n < MAX_IMAGES; n++) {
    snprintf(p, sizeof p, "%s/image_%d.npy", dir, n);
    if (!exists(p)) break;
    if (load_image(p, &imgs[n])) return -1;
  }
  return n;
}

static void free_images(owned_image *imgs, int n) {
  for (int i = 0; i < n; i++) free(imgs[i].rgb);
}

static double max_abs(const float *a, const float *b, int64_t n) {
  double e = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - b[i]);
    e = sd_check_max(e, d);
  }
  return e;
}

static double max_mag(const float *a, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i]));
  return m;
}

/* compare uint8 crop with an int32 npy; returns mismatching bytes (and max diff) */
static int64_t compare_bytes(const uint8_t *got, const char *path, int64_t n, int *maxd) {
  sd_tensor t;
  *maxd = 0;
  if (sd_npy_read(path, &t)) { fprintf(stderr, "%s\n", sd_errmsg()); return -1; }
  if (t.dtype != SD_I32 || sd_numel(&t) != n) { free(t.data); fprintf(stderr, "%s: wrong size\n", path); return -1; }
  int64_t bad = 0;
  for (int64_t i = 0; i < n; i++) {
    int d = abs((int)got[i] - ((int32_t *)t.data)[i]);
    if (d) bad++;
    if (d > *maxd) *maxd = d;
  }
  free(t.data);
  return bad;
}

static int cmd_resize(const char *dir) {
  char in[4096], ref[4096];
  int k = 0;
  for (;; k++) {
    snprintf(in, sizeof in, "%s/resize_%d_in.npy", dir, k);
    snprintf(ref, sizeof ref, "%s/resize_%d_out.npy", dir, k);
    if (!exists(in)) break;
    owned_image o;
    if (load_image(in, &o)) return 1;
    uint8_t *out = malloc(224 * 224 * 3);
    if (sd_clip_resize_crop_rgb8(&o.img, 224, out)) { free(out); free(o.rgb); return die("resize"); }
    int maxd;
    int64_t bad = compare_bytes(out, ref, 224 * 224 * 3, &maxd);
    printf("resize %dx%d -> 224 crop: %lld of %d bytes differ from Pillow (max diff %d)", o.img.width, o.img.height,
           (long long)bad, 224 * 224 * 3, maxd);
    printf(" %s\n", bad == 0 ? "ok" : "FAIL");
    if (bad != 0) failures++;
    free(out);
    free(o.rgb);
  }
  if (k == 0) { fprintf(stderr, "%s: no resize_*_in.npy\n", dir); return 1; }
  return failures ? 1 : 0;
}

static int embed_case(const char *dir, sd_clip_vision *cv, sd_exec *ex, owned_image *imgs, int n, float **embeds) {
  const int P = sd_clip_vision_cfg(cv)->projection_dim;
  *embeds = malloc((size_t)n * P * sizeof(float));
  double t0 = now();
  (void)dir;
  if (sd_clip_vision_embed(cv, ex, NULL, 0, NULL)) return die("embed 0 images"); /* nothing to do: OK */
  sd_rgb8_image list[MAX_IMAGES];
  for (int i = 0; i < n; i++) list[i] = imgs[i].img;
  if (sd_clip_vision_embed(cv, ex, list, n, *embeds)) return die("embed");
  printf("embedded %d images in %.3f s (arena %.1f MiB for the batch)\n", n, now() - t0,
         sd_clip_vision_arena_bytes(cv, n) / 1048576.0);
  return 0;
}

static int cmd_embed(const char *dir, double rel, int threads) {
  char p[4096];
  snprintf(p, sizeof p, "%s/model", dir);
  sd_clip_vision *cv;
  sd_exec *ex;
  if (sd_clip_vision_load(p, &cv)) return die("load");
  if (sd_exec_create(threads, &ex)) return die("exec");
  const sd_clip_vision_config *c = sd_clip_vision_cfg(cv);
  printf("model: hidden %d, layers %d, heads %d, mlp %d, image %d, patch %d, projection %d, %s, eps %g, %s layout\n",
         c->hidden, c->layers, c->heads, c->intermediate, c->image_size, c->patch_size, c->projection_dim,
         c->act == SD_ACT_GELU ? "gelu" : "quick_gelu", (double)c->ln_eps,
         sd_clip_vision_is_safety_layout(cv) ? "safety-checker" : "CLIP");
  owned_image imgs[MAX_IMAGES];
  int n = load_images(dir, imgs);
  if (n <= 0) { fprintf(stderr, "%s: no images\n", dir); return 1; }
  const int S = c->image_size, P = c->projection_dim;
  uint8_t *crop = malloc((size_t)S * S * 3);
  float *px = malloc((size_t)3 * S * S * sizeof(float));
  double px_err = 0;
  int64_t bad_bytes = 0;
  for (int i = 0; i < n; i++) {
    int maxd;
    if (sd_clip_resize_crop_rgb8(&imgs[i].img, S, crop) || sd_clip_preprocess(&imgs[i].img, S, px)) return die("preprocess");
    snprintf(p, sizeof p, "%s/crop_%d.npy", dir, i);
    int64_t b = compare_bytes(crop, p, (int64_t)S * S * 3, &maxd);
    if (b < 0) return 1;
    bad_bytes += b;
    snprintf(p, sizeof p, "%s/pixels_%d.npy", dir, i);
    sd_tensor ref;
    if (sd_npy_read_f32(p, &ref)) return die(p);
    if (sd_numel(&ref) != 3LL * S * S) { fprintf(stderr, "%s: wrong size\n", p); return 1; }
    px_err = sd_check_max(px_err, max_abs(px, ref.data, 3LL * S * S));
    printf("image %d: %dx%d -> %dx%d crop, %lld bytes differ from Pillow\n", i, imgs[i].img.width, imgs[i].img.height, S,
           S, (long long)b);
    free(ref.data);
  }
  check(bad_bytes == 0, "preprocessing: %.0f crop bytes differ from Pillow (tolerance %g)", (double)bad_bytes, 0);
  check(px_err == 0, "preprocessing: normalised pixels max abs error %.3g (tolerance %g)", px_err, 0);
  float *e;
  if (embed_case(dir, cv, ex, imgs, n, &e)) return 1;
  snprintf(p, sizeof p, "%s/embeds.npy", dir);
  sd_tensor ref;
  if (sd_npy_read_f32(p, &ref)) return die(p);
  if (sd_numel(&ref) != (int64_t)n * P) { fprintf(stderr, "%s: wrong size\n", p); return 1; }
  double err = max_abs(e, ref.data, (int64_t)n * P), scale = max_mag(ref.data, (int64_t)n * P);
  printf("image_embeds [%d, %d]: max abs error %.3g, values up to %.3g, relative %.3g\n", n, P, err, scale, err / scale);
  check(err <= rel * scale, "image_embeds relative error %.3g (tolerance %g)", err / scale, rel);
  /* one at a time == batch */
  float *one = malloc((size_t)P * sizeof(float));
  double be = 0;
  for (int i = 0; i < n; i++) {
    if (sd_clip_vision_embed(cv, ex, &imgs[i].img, 1, one)) return die("embed one");
    be = sd_check_max(be, max_abs(one, e + (size_t)i * P, P));
  }
  check(be <= 1e-5 * scale, "single-image vs batch max abs difference %.3g (tolerance %.3g)", be, 1e-5 * scale);
  /* normalisation helper */
  sd_l2_normalize_rows(one, 1, P);
  double nn = 0;
  for (int i = 0; i < P; i++) nn += (double)one[i] * one[i];
  check(fabs(sqrt(nn) - 1) < 1e-6, "normalised embedding norm - 1 = %.3g (tolerance %g)", fabs(sqrt(nn) - 1), 1e-6);
  free(one);
  free(ref.data);
  free(e);
  free(crop);
  free(px);
  free_images(imgs, n);
  sd_exec_destroy(ex);
  sd_clip_vision_free(cv);
  return failures ? 1 : 0;
}

static int q16_compare(const char *label, const sd_q16_result *r, int n, const char *dir, double sim_tol, double p_tol) {
  char p[4096];
  sd_tensor sims, prob, lab;
  snprintf(p, sizeof p, "%s/q16_sims.npy", dir);
  if (sd_npy_read_f32(p, &sims)) return die(p);
  snprintf(p, sizeof p, "%s/q16_p.npy", dir);
  if (sd_npy_read_f32(p, &prob)) return die(p);
  snprintf(p, sizeof p, "%s/q16_label.npy", dir);
  if (sd_npy_read(p, &lab)) return die(p);
  if (sd_numel(&sims) != 2LL * n || sd_numel(&prob) != n || sd_numel(&lab) != n || lab.dtype != SD_I32) {
    fprintf(stderr, "%s: reference sizes do not match %d images\n", dir, n);
    return 1;
  }
  double se = 0, pe = 0;
  int wrong = 0;
  for (int i = 0; i < n; i++) {
    const float *s = (const float *)sims.data + 2 * i;
    se = sd_check_max(se, sd_check_max(fabs(r[i].sim[0] - s[0]), fabs(r[i].sim[1] - s[1])));
    pe = sd_check_max(pe, fabs(r[i].p_inappropriate - ((const float *)prob.data)[i]));
    if (r[i].inappropriate != ((const int32_t *)lab.data)[i]) wrong++;
    printf("  %s image %d: sims (%.4f, %.4f), p_inappropriate %.6f -> %s\n", label, i, r[i].sim[0], r[i].sim[1],
           r[i].p_inappropriate, r[i].inappropriate ? "inappropriate" : "appropriate");
  }
  char f[160];
  snprintf(f, sizeof f, "Q16 (%s): 100*cos max abs error %%.3g (tolerance %%g)", label);
  check(se <= sim_tol, f, se, sim_tol);
  snprintf(f, sizeof f, "Q16 (%s): p_inappropriate max abs error %%.3g (tolerance %%g)", label);
  check(pe <= p_tol, f, pe, p_tol);
  snprintf(f, sizeof f, "Q16 (%s): %%.0f labels differ (tolerance %%g)", label);
  check(wrong == 0, f, wrong, 0);
  free(sims.data);
  free(prob.data);
  free(lab.data);
  return 0;
}

static int cmd_q16(const char *dir, int threads) {
  char p[4096];
  snprintf(p, sizeof p, "%s/model", dir);
  sd_clip_vision *cv;
  sd_exec *ex;
  sd_q16 *q;
  if (sd_clip_vision_load(p, &cv)) return die("load");
  if (sd_exec_create(threads, &ex)) return die("exec");
  snprintf(p, sizeof p, "%s/q16_prompts.f32", dir);
  if (sd_q16_load(p, &q)) return die("q16 load");
  owned_image imgs[MAX_IMAGES];
  int n = load_images(dir, imgs);
  if (n <= 0) return 1;
  const int P = sd_clip_vision_cfg(cv)->projection_dim;
  float *e;
  if (embed_case(dir, cv, ex, imgs, n, &e)) return 1;
  sd_q16_result r[MAX_IMAGES];
  if (sd_q16_classify(q, e, n, P, r)) return die("q16");
  if (q16_compare("C embeddings", r, n, dir, 2e-3, 1e-4)) return 1;
  /* the decision math alone, on the reference embeddings */
  sd_tensor ref;
  snprintf(p, sizeof p, "%s/embeds.npy", dir);
  if (sd_npy_read_f32(p, &ref)) return die(p);
  if (sd_q16_classify(q, ref.data, n, P, r)) return die("q16");
  if (q16_compare("reference embeddings", r, n, dir, 1e-4, 1e-5)) return 1;
  free(ref.data);
  free(e);
  free_images(imgs, n);
  sd_q16_free(q);
  sd_exec_destroy(ex);
  sd_clip_vision_free(cv);
  return failures ? 1 : 0;
}

static int cmd_q16_file(const char *path) {
  sd_q16 *q;
  if (sd_q16_load(path, &q)) return die("q16 load");
  int d = sd_q16_dim(q);
  const float *v = sd_q16_prompts(q);
  double n0 = 0, n1 = 0, dot = 0;
  for (int i = 0; i < d; i++) {
    n0 += (double)v[i] * v[i];
    n1 += (double)v[d + i] * v[d + i];
    dot += (double)v[i] * v[d + i];
  }
  n0 = sqrt(n0), n1 = sqrt(n1);
  printf("%s: [2, %d], row norms %.4f %.4f, cosine %.4f\n", path, d, n0, n1, dot / (n0 * n1));
  check(d == 768, "dimension %.0f (expected %g)", d, 768);
  check(fabs(n0 - 22.17) < 0.01 && fabs(n1 - 21.35) < 0.01, "row 0 norm %.4f (README: 22.17, 21.35; tolerance %g)", n0, 0.01);
  check(fabs(dot / (n0 * n1) - 0.887) < 0.001, "row cosine %.4f (README: 0.887, tolerance %g)", dot / (n0 * n1), 0.001);
  /* an embedding equal to row 1 is inappropriate, to row 0 appropriate */
  sd_q16_result r[2];
  if (sd_q16_classify(q, v, 2, d, r)) return die("classify");
  printf("row 0 as image: p_inappropriate %.4f; row 1 as image: %.4f\n", r[0].p_inappropriate, r[1].p_inappropriate);
  check(!r[0].inappropriate && r[1].inappropriate, "self-classification labels ok=%.0f (want %g)",
        !r[0].inappropriate && r[1].inappropriate, 1);
  int rc = sd_q16_classify(q, v, 1, 512, r);
  printf("512-d embedding: %s\n", sd_errmsg());
  check(rc == SD_E_ARG, "512-d embedding refused, status %.0f (want %g)", rc, SD_E_ARG);
  sd_q16_free(q);
  return failures ? 1 : 0;
}

static int cmd_safety(const char *dir, int threads) {
  char p[4096];
  snprintf(p, sizeof p, "%s/model", dir);
  sd_safety_checker *sc;
  sd_exec *ex;
  if (sd_safety_checker_load(p, &sc)) return die("load");
  if (sd_exec_create(threads, &ex)) return die("exec");
  owned_image imgs[MAX_IMAGES];
  int n = load_images(dir, imgs);
  if (n <= 0) return 1;
  int nc, ns;
  sd_safety_checker_counts(sc, &nc, &ns);
  printf("safety checker: %d concepts, %d special-care concepts\n", nc, ns);
  sd_rgb8_image list[MAX_IMAGES];
  for (int i = 0; i < n; i++) list[i] = imgs[i].img;
  sd_safety_result r[MAX_IMAGES];
  double t0 = now();
  if (sd_safety_checker_check(sc, ex, list, n, r)) return die("check");
  printf("checked %d images in %.3f s\n", n, now() - t0);
  const char *names[] = {"safety_cos", "safety_special_cos", "safety_scores", "safety_special_scores",
                         "safety_special_care", "safety_bad", "safety_nsfw"};
  sd_tensor t[7];
  for (int i = 0; i < 7; i++) {
    snprintf(p, sizeof p, "%s/%s.npy", dir, names[i]);
    if ((i < 4 ? sd_npy_read_f32(p, &t[i]) : sd_npy_read(p, &t[i]))) return die(p);
  }
  if (sd_numel(&t[0]) != (int64_t)n * nc || sd_numel(&t[1]) != (int64_t)n * ns || sd_numel(&t[2]) != (int64_t)n * nc ||
      sd_numel(&t[3]) != (int64_t)n * ns) {
    fprintf(stderr, "%s: reference sizes do not match\n", dir);
    return 1;
  }
  double ce = 0, se = 0;
  int wrong = 0;
  for (int i = 0; i < n; i++) {
    for (int k = 0; k < nc; k++) {
      ce = sd_check_max(ce, fabs(r[i].concept_cos[k] - ((float *)t[0].data)[i * nc + k]));
      se = sd_check_max(se, fabs(r[i].concept_score[k] - ((float *)t[2].data)[i * nc + k]));
    }
    for (int k = 0; k < ns; k++) {
      ce = sd_check_max(ce, fabs(r[i].special_cos[k] - ((float *)t[1].data)[i * ns + k]));
      se = sd_check_max(se, fabs(r[i].special_score[k] - ((float *)t[3].data)[i * ns + k]));
    }
    int sc_ref = ((int32_t *)t[4].data)[i], bad_ref = ((int32_t *)t[5].data)[i], nsfw_ref = ((int32_t *)t[6].data)[i];
    if (r[i].n_special_care != sc_ref || r[i].n_bad_concepts != bad_ref || r[i].has_nsfw_concept != nsfw_ref) wrong++;
    printf("  image %d: special care %d (ref %d), bad concepts %d (ref %d), has_nsfw_concept %d (ref %d)\n", i,
           r[i].n_special_care, sc_ref, r[i].n_bad_concepts, bad_ref, r[i].has_nsfw_concept, nsfw_ref);
  }
  check(ce <= 1e-4, "safety checker: cosine max abs error %.3g (tolerance %g)", ce, 1e-4);
  check(se <= 1e-3 + 1e-9, "safety checker: rounded score max abs error %.3g (tolerance %g)", se, 1e-3);
  check(wrong == 0, "safety checker: %.0f images with different decisions (tolerance %g)", wrong, 0);
  for (int i = 0; i < 7; i++) free(t[i].data);
  free_images(imgs, n);
  sd_exec_destroy(ex);
  sd_safety_checker_free(sc);
  return failures ? 1 : 0;
}

static int cmd_errors(const char *dir) {
  char p[4096];
  snprintf(p, sizeof p, "%s/model", dir);
  sd_clip_vision *cv;
  sd_exec *ex;
  if (sd_clip_vision_load(p, &cv)) return die("load");
  if (sd_exec_create(1, &ex)) return die("exec");
  uint8_t px[12] = {0};
  uint8_t out[16 * 16 * 3];
  float e[1024];
  struct {
    sd_rgb8_image img;
    int size;
  } bad[] = {{{px, 0, 2}, 16}, {{px, 2, 0}, 16}, {{px, -1, 2}, 16}, {{px, 70000, 1}, 16}, {{NULL, 2, 2}, 16},
             {{px, 2, 2}, 0}, {{px, 2, 2}, 5000}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    int rc = sd_clip_resize_crop_rgb8(&bad[i].img, bad[i].size, out);
    printf("resize %dx%d -> %d: %s\n", bad[i].img.width, bad[i].img.height, bad[i].size, sd_errmsg());
    check(rc == SD_E_ARG, "  refused with status %.0f (want %g)", rc, SD_E_ARG);
  }
  sd_rgb8_image zero = {px, 0, 0};
  int rc = sd_clip_vision_embed(cv, ex, &zero, 1, e);
  printf("embed of a 0x0 image: %s\n", sd_errmsg());
  check(rc == SD_E_ARG && strstr(sd_errmsg(), "image 0") != NULL, "  refused with status %.0f (want %g)", rc, SD_E_ARG);
  rc = sd_clip_vision_embed_pixels(cv, ex, (const float *)px, 0, e);
  check(rc == SD_E_ARG, "embed_pixels of 0 images refused with status %.0f (want %g)", rc, SD_E_ARG);
  rc = sd_clip_vision_embed(cv, ex, NULL, -1, e);
  check(rc == SD_E_ARG, "embed of -1 images refused with status %.0f (want %g)", rc, SD_E_ARG);
  float prom[2 * 4] = {1, 0, 0, 0, 0, 1, 0, 0};
  sd_q16 *q;
  if (sd_q16_create(prom, 4, &q)) return die("q16 create");
  sd_q16_result r;
  float z[4] = {0, 0, 0, 0};
  rc = sd_q16_classify(q, z, 1, 4, &r);
  printf("Q16 of a zero embedding: %s\n", sd_errmsg());
  check(rc == SD_E_ARG, "  refused with status %.0f (want %g)", rc, SD_E_ARG);
  float tie[4] = {1, 1, 0, 0};
  rc = sd_q16_classify(q, tie, 1, 4, &r);
  check(rc == SD_OK && !r.inappropriate && fabs(r.p_inappropriate - 0.5) < 1e-12,
        "Q16 tie is appropriate, p %.3g (want %g)", r.p_inappropriate, 0.5);
  sd_q16_free(q);
  sd_exec_destroy(ex);
  sd_clip_vision_free(cv);
  return failures ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: clip_vision_check resize|embed|q16|q16-file|safety|errors CASE [--rel R] [--threads N]\n");
    return 2;
  }
  const char *cmd = argv[1], *dir = argv[2];
  double rel = 1e-4;
  int threads = 0;
  for (int i = 3; i < argc; i++) {
    if (strcmp(argv[i], "--rel") == 0 && i + 1 < argc) rel = atof(argv[++i]);
    else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
    else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
  }
  if (strcmp(cmd, "resize") == 0) return cmd_resize(dir);
  if (strcmp(cmd, "embed") == 0) return cmd_embed(dir, rel, threads);
  if (strcmp(cmd, "q16") == 0) return cmd_q16(dir, threads);
  if (strcmp(cmd, "q16-file") == 0) return cmd_q16_file(dir);
  if (strcmp(cmd, "safety") == 0) return cmd_safety(dir, threads);
  if (strcmp(cmd, "errors") == 0) return cmd_errors(dir);
  fprintf(stderr, "unknown command %s\n", cmd);
  return 2;
}
