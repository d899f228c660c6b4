/* The model source's internals, shared by its files: model_source.c (opening, naming,
 * access) and model_infer.c (hyper-parameters and family from the weights). Not for other
 * modules: they use models/model_source.h. */
#ifndef SD_MODELS_MODEL_SOURCE_INTERNAL_H
#define SD_MODELS_MODEL_SOURCE_INTERNAL_H

#include <string.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/model_source.h"

struct sd_model_source {
  char *path;
  sd_layout layout;
  sd_family family;
  sd_safetensors *st[SD_COMP_COUNT]; /* diffusers: one file per component */
  sd_safetensors *single;            /* single-file checkpoint */
  char *file[SD_COMP_COUNT];
  sd_component_weights w[SD_COMP_COUNT];
  size_t cap[SD_COMP_COUNT];
  sd_clip_text_config text;
  sd_unet_config unet;
  sd_vae_config vae;
  char *vocab, *merges;
  char *sched; /* scheduler_config.json (folder or config_dir), NULL if none */
  char *bank;  /* safety/concepts.bank of a folder, NULL if none */
  char **problems;
  size_t n_problems, cap_problems;
  char **strings; /* owned internal names */
  size_t n_strings, cap_strings;
};

/* s ends with suffix (lowercase), ASCII letters of s compared case-insensitively */
static inline int sd_model_ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  if (k > n) return 0;
  for (size_t i = 0; i < k; i++) {
    char a = s[n - k + i], b = suffix[i];
    if (a >= 'A' && a <= 'Z') a = (char)(a - 'A' + 'a');
    if (a != b) return 0;
  }
  return 1;
}

/* Note a problem (kept for inspect; not an error); SD_OK or SD_E_NOMEM. */
int sd_model_problem_add(sd_model_source *m, const char *fmt, ...) SD_PRINTF(2, 3);
/* The weight named name (binary search: the weights are sorted), or NULL. */
const sd_weight *sd_model_find_w(const sd_component_weights *cw, const char *name);

/* Hyper-parameters inferred from the shapes of m's weights (model_infer.c); an error names
 * the tensor that is missing or does not fit. */
int sd_model_infer_text(sd_model_source *m, int openclip, sd_clip_text_config *c);
int sd_model_infer_unet(sd_model_source *m, sd_family fam, sd_unet_config *c);
int sd_model_infer_vae(sd_model_source *m, sd_vae_config *c);
/* m->family from the cross-attention width, the projections and the text encoder. */
int sd_model_detect_family(sd_model_source *m, int openclip);

#endif
