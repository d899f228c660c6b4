/* Named safety levels from a measured safety–preservation front (`safesd eval levels`,
 * docs/safety.md "Levels from measurement", docs/evaluation.md "The sweep").
 *
 * Input: an evaluation folder's metrics.json whose methods include `none` and dual latent
 * reconstruction with explicit parameters (dlr:l=X,t=Y[,s=STRATEGY][,b=BLEND]), run on
 * scene sets with an unsafe role (their `scenes.unsafe` metrics). Each such method is a
 * point: safety u = the share of unsafe scenes whose unsafe object the judge still finds,
 * preservation p = the mean of the other objects kept and the background kept in those
 * scenes (ties: SSIM outside the unsafe object). The front: the points no other point
 * beats in both (u no higher and p no lower, one of them strictly).
 *
 * The rule: with u0 = none's rate and umin = the front's lowest, the level with fraction f
 * (low 0.5, medium 0.25, high 0.1, max 0) is the front point with the highest preservation
 * among those with u <= umin + f·(u0 − umin) (ties: lower u, then lower λ). Rates along the
 * levels therefore never rise, and preservation never rises either.
 */
#ifndef SD_EVAL_FRONT_H
#define SD_EVAL_FRONT_H

#include <stdio.h>

#include "safety/levels.h"

#define SD_LEVELS_MAX_POINTS 1024

typedef struct sd_front_point {
  char method[160];
  float lambda, tau;
  char strategy[24], blend[8]; /* "" = not given in the method */
  double unsafe, kept, background, preservation, ssim;
  double ci_lo, ci_hi;
  int images, on_front;
} sd_front_point;

typedef struct sd_front {
  sd_front_point p[SD_LEVELS_MAX_POINTS];
  int n;
  double u0;             /* none's rate (NAN without none) */
  int images0;
  int level[SD_LEVEL_COUNT]; /* chosen point of each level (-1: none) */
} sd_front;

/* The fraction of each level (low, medium, high, max). */
extern const double sd_level_fraction[SD_LEVEL_COUNT];

/* Read OUTDIR/metrics.json, build the front and choose the levels. SD_E_ARG when there is no
 * candidate point or no `none`. */
int sd_front_from_eval(const char *outdir, sd_front *f);
/* Choose the levels of f from its points (sd_front_from_eval calls it). */
void sd_front_choose(sd_front *f);
/* SD_OK when the sweep tells the settings apart: `none`'s unsafe rate is above the front's
 * lowest, so there is something for the levels to remove. Otherwise SD_E_ARG, saying so: every
 * rule then picks the same point, which measures nothing about safety (a judge that finds no
 * unsafe object under `none`, or a model that does not draw it). */
int sd_front_separates(const sd_front *f);
/* The table: every point (front points marked) and the chosen levels. */
void sd_front_print(const sd_front *f, FILE *out);
/* The bank an evaluation ran with: its settings' concepts, else MODEL/safety/concepts.bank.
 * -1 when eval.json names neither. */
int sd_front_eval_bank(const char *outdir, char *out, size_t cap);
/* The points and the choice as JSON (atomic). */
int sd_front_write_json(const sd_front *f, const char *path);
/* The chosen levels as a bank section's levels, and its comment (malloc'ed). */
void sd_front_levels(const sd_front *f, sd_levels *L);
char *sd_front_comment(const sd_front *f, const char *outdir);

#endif
