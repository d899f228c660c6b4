/* Safe Latent Diffusion guidance; see sld.h. */
#include "safety/sld.h"

#include <math.h>
#include <string.h>

#include "safesd.h"

#include "core/error.h"

const char *const sd_sld_default_concept = SAFESD_SLD_CONCEPT;

/* reference.md §3 (and diffusers' SafetyConfig): δ, s_S, λ, s_m, β_m */
static const sd_sld_preset k_presets[] = {
    {"weak", 15, 20.0, 0.0, 0.0, 0.0},
    {"medium", 10, 1000.0, 0.01, 0.3, 0.4},
    {"strong", 7, 2000.0, 0.025, 0.5, 0.7},
    {"max", 0, 5000.0, 1.0, 0.5, 0.7},
};

int sd_sld_preset_parse(const char *name, const sd_sld_preset **out) {
  if (!name || !*name || !strcmp(name, "none") || !strcmp(name, "off")) {
    *out = NULL;
    return 0;
  }
  for (size_t i = 0; i < sizeof k_presets / sizeof *k_presets; i++)
    if (!strcmp(name, k_presets[i].name)) {
      *out = &k_presets[i];
      return 0;
    }
  return sd_fail(SD_E_ARG, "unknown SLD preset '%.64s' (none, weak, medium, strong, max)", name);
}

void sd_sld_guide(const sd_sld_preset *p, float w, int step, float *eps, float *nu, int64_t n) {
  const float sS = (float)p->guidance, thr = (float)p->threshold, sm = (float)p->momentum, bm = (float)p->mom_beta,
              one_bm = (float)(1.0 - p->mom_beta);
  const int apply = step >= p->warmup;
  const float *ep = eps + n, *es = eps + 2 * n;
  for (int64_t k = 0; k < n; k++) {
    const float eu = eps[k], d = ep[k] - es[k];
    float g = ep[k] - eu;
    float scale = fminf(fabsf(d) * sS, 1.0f);
    float mu = d >= thr ? 0.0f : scale;
    float gam = (es[k] - eu) * mu;
    gam = gam + sm * nu[k];
    nu[k] = bm * nu[k] + one_bm * gam;
    if (apply) g = g - gam;
    eps[k] = eu + w * g;
  }
}
