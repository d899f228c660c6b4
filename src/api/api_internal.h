/* What the public API's objects hold (shared by the files of src/api/). */
#ifndef SD_API_INTERNAL_H
#define SD_API_INTERNAL_H

#include "core/ops.h"
#include "models/clip_text.h"
#include "models/model_source.h"
#include "models/unet.h"
#include "models/vae.h"
#include "text/tokenizer.h"
#include "safety/bank.h"
#include "safety/detector.h"

/* What the detectors said about one prompt (src/api/safety.c). */
typedef struct sd_gate {
  int flagged;
  sd_detection det;     /* the lexical detector's detection */
  char *summary;        /* one line per detector */
  char *categories;     /* fired categories, ", "-joined ("" when none) */
  const char *strategy; /* static */
  char *safe_text;      /* the strategy's text when flagged, else NULL */
} sd_gate;

struct safesd_model {
  sd_model_source *src;
  sd_exec *ex;
  /* built on first use, so that opening a model for one job stays cheap */
  sd_tokenizer *tok;
  sd_clip_text *text;
  sd_unet *unet;
  sd_vae *vae;
  /* the safety gate: concept bank (bank_path "" = the bundled default) and detectors */
  sd_bank *bank;
  char *bank_path;
  sd_detector *lexical;
  sd_gate *last_gate;   /* the gate of the last generation (what its report points into) */
};

/* Level name -> (λ, τ_gc); returns the level's index (0 = off) or an error. */
int sd_api_safety_level(const char *name, float *weight, float *context);
/* Run the enabled detectors on prompt (bank: concepts or the default) and build the safe text. */
int sd_api_safety_gate(struct safesd_model *m, const char *concepts, const char *prompt, const char *strategy,
                       sd_gate *g);
void sd_api_gate_free(sd_gate *g);

/* Build the text side (tokenizer + text encoder) if not built yet. */
int sd_api_need_text(struct safesd_model *m);

#endif
