/* The Stable Diffusion safety checker (diffusers' StableDiffusionSafetyChecker, the
 * `safety_checker/` folder of SD 1.x diffusers checkpoints), written from its public
 * description (docs/evaluation.md; reference.md §5):
 *
 *   e = image_embeds of the CLIP ViT-L/14 vision tower + projection (judge/clip_vision.h,
 *       stored as vision_model.vision_model.* + visual_projection.weight);
 *   special_cos[j] = cos(e, special_care_embeds[j]),  cos[k] = cos(e, concept_embeds[k]);
 *   adjustment = 0
 *   for each special-care concept j in order:
 *       special_score[j] = round(special_cos[j] - special_care_embeds_weights[j] + adjustment, 3)
 *       if special_score[j] > 0: the image needs special care, adjustment = 0.01
 *   for each concept k:
 *       concept_score[k] = round(cos[k] - concept_embeds_weights[k] + adjustment, 3)
 *       if concept_score[k] > 0: k is a bad concept
 *   has_nsfw_concept = at least one bad concept.
 * round(x, 3) is numpy's: rint(x · 1000) / 1000 in double (halves to even); the differences
 * are taken in double from the float32 cosine and the stored threshold, as in diffusers
 * (numpy float32 - Python float). This is the rule of diffusers' forward() (what the
 * pipeline runs), not forward_onnx() (no rounding; the 0.01 only affects the concepts).
 * Cosines are computed in float32 weights/activations here; diffusers runs the checker in
 * the pipeline's dtype (float16 for fp16 pipelines), so a score within ~1e-3 of a threshold
 * can differ from a float16 run.
 *
 * Tensors besides the tower: concept_embeds [Nc, P], special_care_embeds [Ns, P],
 * concept_embeds_weights [Nc], special_care_embeds_weights [Ns] (SD 1.4: Nc = 17, Ns = 3,
 * P = 768), 1 ≤ Nc, Ns ≤ SD_SAFETY_MAX_CONCEPTS.
 */
#ifndef SD_JUDGE_SAFETY_CHECKER_H
#define SD_JUDGE_SAFETY_CHECKER_H

#include "core/ops.h"
#include "judge/clip_vision.h"

#define SD_SAFETY_MAX_CONCEPTS 64

typedef struct sd_safety_checker sd_safety_checker;

/* Load a safety_checker folder (config.json + model.safetensors). */
int sd_safety_checker_load(const char *dir, sd_safety_checker **out);
void sd_safety_checker_free(sd_safety_checker *sc);
sd_clip_vision *sd_safety_checker_vision(sd_safety_checker *sc);
int sd_safety_checker_counts(const sd_safety_checker *sc, int *n_concepts, int *n_special);

typedef struct sd_safety_result {
  int n_concepts, n_special;
  float concept_cos[SD_SAFETY_MAX_CONCEPTS], special_cos[SD_SAFETY_MAX_CONCEPTS];
  double concept_score[SD_SAFETY_MAX_CONCEPTS], special_score[SD_SAFETY_MAX_CONCEPTS]; /* rounded */
  int n_special_care;   /* special-care concepts with score > 0 */
  int n_bad_concepts;   /* concepts with score > 0 */
  int has_nsfw_concept; /* n_bad_concepts > 0 */
} sd_safety_result;

/* The decision for n image embeddings embeds[n, P] (image_embeds, not normalised). */
int sd_safety_checker_scores(const sd_safety_checker *sc, const float *embeds, int n, sd_safety_result *out);
/* Preprocess, embed and decide n images. */
int sd_safety_checker_check(sd_safety_checker *sc, sd_exec *ex, const sd_rgb8_image *images, int n,
                            sd_safety_result *out);

#endif
