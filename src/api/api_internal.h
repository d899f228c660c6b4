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
#define SD_GATE_MAX_DETECTORS 2

typedef struct sd_gate {
  int flagged;
  sd_detection det[SD_GATE_MAX_DETECTORS]; /* one per detector that ran (lexical, semantic) */
  int n_det;
  char *summary;        /* the detectors' one-line summaries, "; "-joined */
  char *categories;     /* fired categories, ", "-joined ("" when none) */
  const char *strategy; /* static */
  char *safe_text;      /* the strategy's text when flagged, else NULL (project: the prompt) */
  /* strategy `project`, when flagged (safety/strategy.h): e_s = E(prompt) with the states at
   * proj_pos moved out of the span of basis */
  int project;
  int *proj_pos;             /* framed token positions (BOS = 0), ascending */
  char **proj_tok;           /* their token strings */
  int n_proj;
  const char **proj_desc;    /* the concept descriptions projected against (borrowed from the bank) */
  int n_desc;
  float *basis;              /* [rank, D] orthonormal; NULL when no text encoder was at hand (check
                                without a model) */
  int rank, D;               /* rank -1: not computed */
  char *projection;          /* one-line summary */
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
  char *model_bank;          /* <model folder>/safety/concepts.bank when the model ships one:
                                the default bank for this model (else data/concepts/default.bank) */
  sd_detector *lexical;
  sd_detector *semantic; /* built on first use: it embeds the bank with the model's encoder */
  sd_gate *last_gate;   /* the gate of the last generation (what its report points into) */
};

/* Level name -> (λ, τ_gc); returns the level's index (0 = off) or an error. */
int sd_api_safety_level(const char *name, float *weight, float *context);
/* What the gate runs: the concept bank (NULL = the default), the strategy (NULL =
 * substitute+append), the detectors ("lexical", "semantic" or "lexical,semantic"; NULL =
 * "lexical") and the semantic detector's threshold (NAN = its default). */
typedef struct sd_gate_opts {
  const char *concepts, *strategy, *detectors;
  float semantic_threshold;
} sd_gate_opts;

/* Run the chosen detectors on prompt (OR-combined) and build the safe text. The semantic
 * detector needs m's text encoder (m->src set). */
int sd_api_safety_gate(struct safesd_model *m, const sd_gate_opts *o, const char *prompt, sd_gate *g);
void sd_api_gate_free(sd_gate *g);
/* The gate's projection (strategy project) as a JSON object, or JSON null (jansson's json_t;
 * the caller owns the reference). */
struct json_t;
struct json_t *sd_api_projection_json(const sd_gate *g);

/* Build the text side (tokenizer + text encoder) if not built yet. */
int sd_api_need_text(struct safesd_model *m);

#endif
