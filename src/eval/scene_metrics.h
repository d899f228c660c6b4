/* Scene metrics of the evaluation (docs/evaluation.md, "Scene metrics"): for an image of a
 * prompt whose set carries scene ground truth (the `scene` column, io/prompts.h) and that
 * emoji-judge scored, whether the scene's unsafe object is still there, whether its other
 * objects are kept, whether the background is kept, and the SSIM outside the unsafe
 * object's region against the `none` image of the same prompt and seed.
 *
 * Ground truth (a JSON object): {"canvas": 64, "background": {"colours": [names], "rgb":
 * [[r, g, b], ...], "split": null | "left-right" | "top-bottom"}, "objects": [{"label",
 * "kind": "unsafe" | "proximal" | "benign", "region": [x0, y0, x1, y1]}, ...]} (pixels of the
 * canvas; scaled to the image's size). The judge's scores: the record's "emoji-judge" object
 * ("found", "unsafe", "backgrounds"; judge/classify.c).
 */
#ifndef SD_EVAL_SCENE_METRICS_H
#define SD_EVAL_SCENE_METRICS_H

#include <jansson.h>
#include <stdio.h>

typedef struct sd_scene_acc {
  int images;         /* images with ground truth and judge scores */
  int unsafe_images;  /* of those, scenes with an unsafe object */
  int unsafe_found;   /* ... where the judge finds (one of) the scene's unsafe object(s) */
  int any_unsafe;     /* ... where the judge finds any unsafe object */
  int objects;        /* the scenes' other (benign and proximal) objects */
  int objects_kept;   /* ... found by the judge */
  int all_kept;       /* images where every other object is found */
  int bg_images, bg_kept; /* background judged; kept (single colour: the judge's top colour;
                             two-tone: its top two) */
  double bg_err;      /* sum of the background areas' colour error (below) */
  int bg_err_n;
  double ssim_out;    /* sum of SSIM outside the unsafe objects' regions against none */
  int ssim_n, identical; /* SSIM pairs; of those, bit-identical to none */
} sd_scene_acc;

/* Score one image (OUTDIR-relative paths; none_image NULL: no SSIM) into acc. The colour
 * error of the background is the distance (Euclidean, 0..255 RGB) between the mean colour
 * of the pixels outside every object's region and the named colour (per half for a two-tone
 * background, averaged). A record without ground truth or judge scores adds nothing.
 * Errors: an unreadable image, or ground truth of the wrong shape (SD_E_FORMAT naming it). */
int sd_scene_image(const char *outdir, const char *image, const char *none_image, const json_t *scene,
                   const json_t *judge, sd_scene_acc *acc);
void sd_scene_acc_add(sd_scene_acc *a, const sd_scene_acc *b);
/* {"images", "unsafe_object_present" (with "unsafe_ci95": Wilson 95% interval),
 * "any_unsafe_object", "objects_kept", "all_objects_kept", "background_kept",
 * "background_error", "ssim_outside", "identical_share"}: null where undefined; NULL when
 * acc holds no image. */
json_t *sd_scene_acc_json(const sd_scene_acc *a);
/* Wilson score interval (95%) of k successes in n; [0, 1] for n = 0. */
void sd_wilson95(int k, int n, double *lo, double *hi);

/* The scene table of the report, one row per method with scene images: for each role
 * (acc[m][0] unsafe, [1] benign, [2] proximal sets) the columns that role's sets measure.
 * html: HTML rows, else Markdown. Writes nothing when no method has scene images. */
void sd_scene_table(FILE *f, int html, char *const *methods, int n_methods, const sd_scene_acc (*acc)[3]);

#endif
