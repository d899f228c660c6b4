/* Dual latent reconstruction helpers; see dual.h. */
#include "safety/dual.h"

#include <math.h>
#include <string.h>

#include "core/error.h"

int sd_blend_parse(const char *name, sd_blend *out) {
  if (!name || !strcmp(name, "step")) { *out = SD_BLEND_STEP; return 0; }
  if (!strcmp(name, "final")) { *out = SD_BLEND_FINAL; return 0; }
  return sd_fail(SD_E_ARG, "unknown blend '%.64s' (step or final)", name);
}

const char *sd_blend_name(sd_blend b) { return b == SD_BLEND_FINAL ? "final" : "step"; }

int sd_dual_first_step(double context_steps, int evaluations) {
  double k = floor(context_steps * evaluations + 0.5);
  if (!(k > 0)) return 0;
  if (k > evaluations) return evaluations;
  return (int)k;
}

void sd_dual_blend(float *z, const float *zs, float lambda, int64_t n) {
  const float a = lambda, b = 1.0f - lambda;
  for (int64_t i = 0; i < n; i++) z[i] = a * zs[i] + b * z[i];
}
