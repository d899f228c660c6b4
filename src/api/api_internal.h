/* What the public API's objects hold (shared by the files of src/api/). */
#ifndef SD_API_INTERNAL_H
#define SD_API_INTERNAL_H

#include "safesd.h"

#include "core/ops.h"
#include "models/clip_text.h"
#include "models/model_source.h"
#include "models/unet.h"
#include "models/vae.h"
#include "text/prompt.h"
#include "sampling/rng.h"
#include "sampling/sampler.h"
#include "text/tokenizer.h"
#include "safety/bank.h"
#include "safety/detector.h"

/* What the detectors said about one prompt (src/api/safety.c). */
#define SD_GATE_MAX_DETECTORS 5 /* lexical, semantic, learned; lexical and learned on LoRA names */

typedef struct sd_gate {
  int flagged;
  sd_detection det[SD_GATE_MAX_DETECTORS]; /* one per detector that ran (lexical, semantic, learned) */
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
  char *beyond;              /* the prompt's text past the encoder's window (not judged: the
                                encoder never sees it), or NULL when it all fits */
  size_t window;             /* bytes of the prompt the detectors judged */
  char *visible;             /* the a1111 syntax: the text the detectors judged when it differs
                                from the prompt (weights, brackets, escapes, BREAK removed) */
  const char *banks;         /* the concept bank files in force, " + "-joined (borrowed from
                                the model's bank) */
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
  sd_bank *bank;              /* the bank in force: the own bank composed with the default one
                                (sd_bank_compose), or either alone */
  sd_bank *own_bank;          /* the own bank (model's or --concepts) when composed, else NULL:
                                the semantic detector's descriptions and calibration are its */
  char *bank_path;
  char *model_bank;          /* <model folder>/safety/concepts.bank when the model ships one:
                                the default bank for this model (else data/concepts/default.bank) */
  sd_detector *lexical;
  sd_detector *semantic; /* built on first use: it embeds the bank with the model's encoder */
  sd_detector *learned;  /* built on first use (safety/learned.h): its weights file is loaded then */
  char *model_learned;   /* <model folder>/safety/learned.safetensors when the model ships one: its
                            learned detector (else data/learned/detector.safetensors) */
  sd_gate *last_gate;   /* the gate of the last generation (what its report points into) */
  /* output-image checks (image_check.c): the classifiers, loaded on first use for checks_key
   * (the list and the concept bank), and the verdicts of the last generation */
  struct sd_eval_classifiers *checks;
  char *checks_key;
  safesd_image_verdict *verdicts;
  int n_verdicts;
  /* LoRAs (lora_tags.c): the merged set, its key (files and weights), the last prompt
   * without its tags, and "NAME:W, ..." for reports */
  struct sd_lora_state *lora;
  char *lora_key, *lora_prompt, *lora_summary;
  char *lora_names; /* the last prompt's LoRA names as text for the gate (NULL: none) */
  struct sd_taesd *taesd; /* the TAESD decoder in place of the VAE's (model options), or NULL */
};

/* Take the <lora:...> tags out of p->prompt (p->prompt then points at the model's copy
 * without them) and merge the LoRAs they name into the model, unless the same set is merged
 * already; a prompt without tags restores the file's weights. */
int sd_api_lora_prepare(safesd_model *m, safesd_gen_params *p);
/* The <lora:...> tags of prompt parsed without a model: *text the prompt without them, *names
 * their names as text for the gate (NULL when none); both malloc'ed. */
int sd_api_lora_split(const char *prompt, char **text, char **names);
/* A preview (preview.c): decode the first image of the x0 estimate x0[C, h, w] (TAESD when the
 * model has it, else the VAE) and hand its 8-bit RGB to p->preview. */
int sd_api_preview(safesd_model *m, const safesd_gen_params *p, const float *x0, int C, int h, int w, int step,
                   int total);
/* Open the TAESD decoder at path into m->taesd, checked against the model's latents. */
int sd_api_taesd_open(safesd_model *m, const char *path);
/* Restore the file's weights and free the LoRA state. */
void sd_api_lora_free(safesd_model *m);

/* Level name -> (λ, τ_gc) of the built-in (provisional) table; returns the level's index
 * (0 = off) or an error. */
int sd_api_safety_level(const char *name, float *weight, float *context);
/* A level's parameters for model m: the [levels] entry of its bank (concepts, else the
 * model's own bank, else the default) when the bank names the level, else the built-in
 * table. strategy / blend "" = not given. Returns the level's index (0 = off: the bank is
 * not read) or an error. */
typedef struct sd_level_params {
  float weight, context;
  char strategy[24], blend[8];
  int from_bank;
} sd_level_params;
struct safesd_model;
int sd_api_level_params(struct safesd_model *m, const char *concepts, const char *level, sd_level_params *out);
/* What the gate runs: the concept bank (NULL = the default), the strategy (NULL =
 * substitute+append), the detectors (a comma-separated list of lexical, semantic, learned;
 * NULL = the default list: lexical, plus each other detector that is calibrated for this
 * bank and model) and the semantic detector's threshold (NAN = its default). */
typedef struct sd_gate_opts {
  const char *concepts, *strategy, *detectors;
  float semantic_threshold;
  const char *prompt_syntax; /* "a1111" (NULL) or "plain": the detectors judge the prompt's
                                visible text (text/prompt.h), all of its chunks (a1111), or
                                the plain text within the encoder's 77-token window */
  const char *lora_names;    /* the prompt's <lora:...> names as text (sd_api_lora_split), or
                                NULL: judged by the lexical and learned detectors as well; their
                                evidence is not localised in the prompt (the safe text appends,
                                never deletes, for it) */
} sd_gate_opts;

/* Run the chosen detectors on prompt (OR-combined) and build the safe text. The semantic
 * detector needs m's text encoder (m->src set). */
int sd_api_safety_gate(struct safesd_model *m, const sd_gate_opts *o, const char *prompt, sd_gate *g);
void sd_api_gate_free(sd_gate *g);
/* The gate's projection (strategy project) as a JSON object, or JSON null (jansson's json_t;
 * the caller owns the reference). */
struct json_t;
struct json_t *sd_api_projection_json(const sd_gate *g);

/* Output-image checks (image_check.c). */
enum { SD_IMAGE_FLAG = 0, SD_IMAGE_BLUR = 1, SD_IMAGE_BLOCK = 2 };
/* "flag" (NULL), "blur", "block" -> SD_IMAGE_*, or an error. */
int sd_api_image_action_parse(const char *name);
/* Validate p's image-check settings and load its classifiers (before any generation work). */
int sd_api_image_check_prepare(struct safesd_model *m, const safesd_gen_params *p);
/* Judge the p->batch images in rgb, apply the action, keep the verdicts on m and fill the
 * report's image-check fields (rep may be NULL). Without a check list every verdict is
 * "not checked". */
int sd_api_image_check_run(struct safesd_model *m, const safesd_gen_params *p, uint8_t *rgb,
                           safesd_safety_report *rep);
/* The verdict of image `index` of the last generation for the PNG metadata ("passed",
 * "unsafe by nsfwjs, blurred"), or NULL when it was not checked. */
const char *sd_api_image_check_label(const struct safesd_model *m, int index, char *buf, size_t cap);
void sd_api_verdicts_free(struct safesd_model *m);
void sd_api_image_checks_free(struct safesd_model *m);
/* The strong blur of the "blur" action, in place. */
int sd_api_blur_rgb8(uint8_t *rgb, int w, int h);

/* The chunks of text in syntax s (text/prompt.h) with m's tokenizer and padding id
 * (conditioning.c); `what` names the text in errors. */
int sd_api_prompt_chunks(struct safesd_model *m, const char *text, sd_prompt_syntax s, const char *what,
                         sd_prompt_chunks *out);
/* The conditioning of nt chunked texts: out[nt, L × 77, D], chunk k of every text encoded as
 * one batch of nt (the empty chunk for a text with fewer than L chunks), A1111's emphasis
 * applied per weighted chunk (conditioning.c). */
int sd_api_encode_chunks(struct safesd_model *m, const sd_prompt_chunks *const *cs, int nt, int L, int clip_skip,
                         float *out);

/* Build the text side (tokenizer + text encoder) if not built yet. */
int sd_api_need_text(struct safesd_model *m);
/* The tokenizer alone: the model's, or the bundled CLIP vocabulary for a model handle
 * without weights (safesd_gate_open). */
int sd_api_need_tokenizer(struct safesd_model *m);
/* Free the concept bank and detectors cached on m. */
void sd_api_drop_detectors(struct safesd_model *m);
/* The text side, the UNet and the VAE (generate.c). */
int sd_api_need_image_side(struct safesd_model *m);
/* The model's scheduler configuration with a sampler / sigma schedule on top (NULL: the
 * model's), checked (generate.c). */
struct sd_sched_config;
int sd_api_sched_config(struct safesd_model *m, const char *sampler, const char *schedule, struct sd_sched_config *c);
/* The concept bank the gate uses by default (the model's own, else the bundled one) and
 * the lexical detector, built and cached on m (safety.c). */
int sd_api_need_bank(struct safesd_model *m);
/* Build, without running anything, everything generate builds from the model's files: the
 * tokenizer and text encoder, the UNet, the VAE (each where present), the scheduler
 * configuration, the model's own concept bank. The one validation path of `inspect` and
 * `generate` (api.c). */
int sd_api_model_check(struct safesd_model *m);

/* Image to image and inpainting (img2img.c, docs/img2img.md). */
typedef struct sd_init_state {
  int t_start;     /* the first model evaluation (sd_strength_steps) */
  int inpaint;     /* a mask was given */
  int64_t n, plane; /* latent elements of the batch; of one channel (h × w) */
  float *z0;       /* the init image's latents (posterior sample × scaling factor), × batch */
  float *noise;    /* the initial noise (the inpainting blend noises z0 with it again) */
  uint8_t *mask;   /* [h × w] 1 = repaint (inpainting), else NULL */
  int unet9;       /* a 9-channel inpainting UNet: no blend; extra conditions every step */
  float *extra;    /* 9-channel UNet: [B × (1 + C) × h × w] mask and masked-image latents */
  float *scaled;   /* 9-channel UNet: n floats of scratch for the scaled latents */
} sd_init_state;
/* Check p's init image, mask and strength against the resolved size and steps (vae NULL:
 * the encoder's size limits are not checked). */
int sd_api_init_check(const sd_vae *vae, const safesd_gen_params *p);
/* Encode the init image, draw the noise (posterior sample, then noise, then the masked
 * image's sample for inpainting, all from rng as diffusers draws them), write the starting
 * latents lat[B × C × h × w] and start st at t_start. */
int sd_api_init_latents(struct safesd_model *m, const safesd_gen_params *p, const sd_schedule *sched,
                        sd_sampler_state *st, sd_rng *rng, int C, int h, int w, sd_init_state *is, float *lat);
/* Inpainting with a 4-channel UNet, after a step: outside the mask lat takes z0 noised to
 * evaluation `next` (the clean z0 when next is past the schedule); tmp holds n floats. A
 * no-op without a mask and for a 9-channel UNet. */
int sd_api_inpaint_blend(const sd_schedule *sched, const sd_init_state *is, int next, float *lat, float *tmp);
void sd_api_init_free(sd_init_state *is);

#endif
