/* Dual latent reconstruction (method.md §2.4): the step-count rule and the latent merge.
 * The loop itself (one UNet call on [e_0, e_u, e_s], two sampler states, shared noise) is
 * in src/api/generate.c. */
#ifndef SD_SAFETY_DUAL_H
#define SD_SAFETY_DUAL_H

#include <stdint.h>

typedef enum { SD_BLEND_STEP = 0, SD_BLEND_FINAL = 1 } sd_blend;

/* "step" (also NULL) or "final"; SD_E_ARG otherwise. */
int sd_blend_parse(const char *name, sd_blend *out);
const char *sd_blend_name(sd_blend b);

/* The first model evaluation of the dual phase: k = round(τ_gc · T), rounding halves up
 * (floor(τ_gc·T + 0.5), computed in double), clamped to 0..T. T = the number of model
 * evaluations of the schedule (steps + 1 for PNDM/PLMS). */
int sd_dual_first_step(double context_steps, int evaluations);

/* z[i] = λ · zs[i] + (1 − λ) · z[i] for i < n (z is the unsafe stream, updated in place). */
void sd_dual_blend(float *z, const float *zs, float lambda, int64_t n);

#endif
