/* Safe Latent Diffusion (Schramowski et al. 2023), the guidance rule of diffusers'
 * StableDiffusionPipelineSafe (spec: reference.md §3). Per step the UNet sees
 * [e_0, e_p, e_S] → ε_u, ε_p, ε_S and, element-wise:
 *
 *   g     = ε_p − ε_u
 *   scale = min(1, |ε_p − ε_S| · s_S)
 *   μ     = 0 where (ε_p − ε_S) ≥ λ, else scale
 *   γ     = μ · (ε_S − ε_u) + s_m · ν
 *   ν     = β_m · ν + (1 − β_m) · γ          (every step; ν starts at 0)
 *   if step ≥ δ: g = g − γ
 *   ε̂     = ε_u + w · g
 */
#ifndef SD_SAFETY_SLD_H
#define SD_SAFETY_SLD_H

#include <stdint.h>

typedef struct sd_sld_preset {
  const char *name;  /* "weak", "medium", "strong", "max" */
  int warmup;        /* δ: first model evaluation (0-based) at which γ is applied */
  double guidance;   /* s_S */
  double threshold;  /* λ */
  double momentum;   /* s_m */
  double mom_beta;   /* β_m (the scalars are rounded to float as torch does with Python floats) */
} sd_sld_preset;

/* The default safety concept of SLD (reference.md §3, diffusers' safety_concept). */
extern const char *const sd_sld_default_concept;

/* The preset named name, or NULL for NULL/"none"/"off". SD_E_ARG (with a message) for an
 * unknown name: *out is then untouched. */
int sd_sld_preset_parse(const char *name, const sd_sld_preset **out);

/* One SLD guidance step over n elements: eps holds [ε_u, ε_p, ε_S] (3n floats); the guided
 * prediction ε̂ is written to eps[0..n). nu (n floats, zero at the start) is the momentum,
 * updated in place. step = the 0-based model evaluation index, w = the CFG scale. */
void sd_sld_guide(const sd_sld_preset *p, float w, int step, float *eps, float *nu, int64_t n);

#endif
