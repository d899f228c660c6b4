/* safesd — Stable Diffusion in C with an editing-free safety layer.
 *
 * The public C API of libsafesd (link with `pkg-config --cflags --libs safesd`, or CMake's
 * find_package(safesd) and the target safesd::safesd). All functions return 0 on success or
 * a negative error code (SAFESD_E_*); safesd_last_error() then gives a one-line reason
 * (thread-local: read it on the thread that made the failing call).
 *
 * Ownership. Every object (safesd_model, safesd_tokenizer) is opaque, created by its
 * *_open function and released by its *_close function (NULL is accepted). Strings that
 * a function returns as `char *` are malloc'ed and the caller frees them with free();
 * `const char *` results are owned by the library: static, or valid until the next call
 * on the same object as documented at each function (the safety report of a generation
 * points into the model and into the safesd_gen_params passed).
 *
 * Threads. A safesd_model is not thread-safe: use one model from one thread at a time
 * (calls on one model must be serialised by the caller; `safesd serve` runs every
 * generation on one worker thread). A model computes on its own OpenMP team of
 * n_threads; two models used at once from two threads each run their own team and share
 * the CPUs, which is slower than running the two jobs one after another. A tokenizer may
 * be used from several threads at once. Generation can be stopped from another thread
 * through the cancel callback of safesd_gen_params.
 *
 * Data. The concept bank, the CLIP vocabulary and the bundled model are found relative to
 * the installed library (PREFIX/lib/libsafesd.so -> PREFIX/share/safesd), so an installed
 * tree can be moved; $SAFESD_DATA_DIR and $SAFESD_MODELS_DIR override.
 *
 * ABI. Until version 1.0 the structs below may grow; always initialise them with the
 * *_defaults function (or zero them) and rebuild against the new header when the library's
 * SONAME (libsafesd.so.N) changes.
 */
#ifndef SAFESD_H
#define SAFESD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every public function is exported from libsafesd.so; nothing else is. */
#if defined(__GNUC__) && __GNUC__ >= 4
#define SAFESD_API __attribute__((visibility("default")))
#else
#define SAFESD_API
#endif

enum {
  SAFESD_OK = 0,
  SAFESD_E_IO = -1,          /* file missing, unreadable or unwritable */
  SAFESD_E_FORMAT = -2,      /* malformed or inconsistent model/input file */
  SAFESD_E_NOMEM = -3,       /* out of memory, or a size over a sanity limit */
  SAFESD_E_ARG = -4,         /* invalid argument */
  SAFESD_E_UNSUPPORTED = -5, /* valid input not handled */
  SAFESD_E_INTERNAL = -6,
  SAFESD_E_CANCELLED = -7    /* stopped by the caller's cancel callback */
};

/* The number of token positions of the SD text encoders. */
#define SAFESD_TOKENS 77

SAFESD_API const char *safesd_version(void);
SAFESD_API const char *safesd_last_error(void);

/* ---- tokenizer ---------------------------------------------------------------------- */

typedef struct safesd_tokenizer safesd_tokenizer;

/* The tokenizer of a model (diffusers folder: its tokenizer/ files; single-file
 * checkpoint: the bundled CLIP vocabulary), or the bundled CLIP vocabulary when
 * model_path is NULL. */
SAFESD_API int safesd_tokenizer_open(const char *model_path, safesd_tokenizer **out);
/* The same, for a model opened with a config folder (see safesd_model_options). */
SAFESD_API int safesd_tokenizer_open_ex(const char *model_path, const char *config_dir, safesd_tokenizer **out);
SAFESD_API void safesd_tokenizer_close(safesd_tokenizer *tok);
/* Tokenize and frame one prompt: ids[0..76] = BOS, up to 75 tokens, EOS, padding with
 * pad_id (49407 for SD 1.x, 0 for SD 2.x). Returns the real length (2..77) or an error.
 * Safe to call from several threads on one tokenizer. */
SAFESD_API int safesd_tokenize(const safesd_tokenizer *tok, const char *prompt, int32_t pad_id,
                    int32_t ids[SAFESD_TOKENS]);
/* The BPE ids of text alone: no BOS/EOS, no truncation, no padding. *ids is malloc'ed (the
 * caller frees it; also when *n is 0). Text of at most 1 MiB. */
SAFESD_API int safesd_tokenize_bpe(const safesd_tokenizer *tok, const char *text, int32_t **ids, size_t *n);
/* The token string of an id ("cat</w>") or NULL. */
SAFESD_API const char *safesd_token_text(const safesd_tokenizer *tok, int32_t id);

/* ---- model -------------------------------------------------------------------------- */

typedef struct safesd_model safesd_model;

typedef struct safesd_model_options {
  int n_threads;          /* <= 0: all CPUs (1 for a model whose UNet has under 20 M
                             parameters, such as the bundled one: faster there) */
  const char *config_dir; /* single-file checkpoints: a diffusers folder whose configs (and
                             tokenizer) describe the file, as diffusers' from_single_file
                             config=...; NULL: infer the hyper-parameters from the weights */
  int precision;          /* SAFESD_PRECISION_FP32 (0, the default) or SAFESD_PRECISION_BF16:
                             convolutions and matrix products in bf16 with fp32 accumulation
                             (oneDNN), on CPUs with AVX512-BF16 or AMX. Elsewhere the model
                             opens in fp32; safesd_model_precision tells which is in use. */
  long long mem_budget;   /* fp32: bytes of weights packed into the kernels' layouts that may be
                             kept from one UNet pass to the next instead of being packed again
                             each time (0, the default: none; the most reused are kept). bf16
                             keeps every packed weight (the same bytes as float16 weights,
                             whose file pages it drops). With a budget, fp32 3×3
                             convolutions with outputs of 64×64 or more use oneDNN's
                             Winograd kernel (values within float32 roundings of the
                             direct one; $SAFESD_CONV_WINOGRAD=0: never). On CPUs with
                             AVX2 but not AVX-512, linear layers and convolutions with at
                             most 256 output pixels read the weights as stored and keep
                             nothing. docs/performance.md */
  const char *taesd;      /* a TAESD decoder (madebyollin/taesd's taesd_decoder.safetensors,
                             or a diffusers AutoencoderTiny folder): images are decoded with
                             it instead of the VAE, much faster and of lower quality (as
                             stable-diffusion.cpp's --taesd); NULL: the VAE */
} safesd_model_options;

enum { SAFESD_PRECISION_FP32 = 0, SAFESD_PRECISION_BF16 = 1 };

/* Call first thing in main() of a program that runs models, with main's argv. OpenMP's idle
 * threads spin for milliseconds after each parallel region, which on a machine shared with
 * other busy processes slows a pass several times; libgomp reads its settings when it is
 * loaded, before main. So unless $OMP_WAIT_POLICY or $GOMP_SPINCOUNT is already set, this
 * sets GOMP_SPINCOUNT to a short spin and re-executes the program once (/proc/self/exe); it
 * returns when there is nothing to do (or the exec failed). docs/performance.md */
SAFESD_API void safesd_process_init(char **argv);

/* Open a diffusers folder or a single-file .safetensors checkpoint (original LDM layout).
 * path NULL opens the bundled model (models/safesd-emoji, see safesd_bundled_model).
 * opts may be NULL. */
SAFESD_API int safesd_model_open(const char *path, const safesd_model_options *opts, safesd_model **out);
/* The bundled model's folder: $SAFESD_MODELS_DIR/safesd-emoji, else the source tree's or the
 * installed copy. Non-zero (and a message naming the places looked in) when absent. */
SAFESD_API int safesd_bundled_model(char *path, size_t cap);
SAFESD_API void safesd_model_close(safesd_model *m);
/* The compute precision in use (SAFESD_PRECISION_*), and its name ("fp32", "bf16"). */
SAFESD_API int safesd_model_precision(const safesd_model *m);
SAFESD_API const char *safesd_precision_name(int precision);
/* 1 when this CPU computes bf16 natively (so SAFESD_PRECISION_BF16 takes effect). */
SAFESD_API int safesd_cpu_has_bf16(void);
/* Width of the text encoder's output (768 for SD 1.x, 1024 for SD 2.x). */
SAFESD_API int safesd_model_text_dim(const safesd_model *m);
/* The padding id the model's text encoder expects. */
SAFESD_API int32_t safesd_model_pad_id(const safesd_model *m);

/* Encode a prompt with the model's own tokenizer and text encoder into
 * out[SAFESD_TOKENS × safesd_model_text_dim()], exactly what the UNet is conditioned on with
 * the plain prompt syntax (the text as it is, one 77-token window; safesd_encode_text takes
 * the a1111 syntax, the generation default).
 * clip_skip: 1 = last layer (SD 1.x default), 2 = penultimate ("clip skip 2"), ... */
SAFESD_API int safesd_encode_prompt(safesd_model *m, const char *prompt, int clip_skip, float *out);
/* The same from token ids (n_seq rows of SAFESD_TOKENS ids) into
 * out[n_seq × SAFESD_TOKENS × dim]. */
SAFESD_API int safesd_encode_ids(safesd_model *m, const int32_t *ids, int n_seq, int clip_skip, float *out);

/* Encode a prompt in a prompt syntax (NULL or "a1111": docs/prompts.md; "plain": one
 * 77-token window as safesd_encode_prompt) into *out (malloc'ed; the caller frees it) of
 * *n_tokens × safesd_model_text_dim() floats, *n_tokens = 77 × the prompt's chunks (1..8):
 * each chunk encoded on its own, AUTOMATIC1111's emphasis applied, the chunks concatenated. */
SAFESD_API int safesd_encode_text(safesd_model *m, const char *prompt, const char *prompt_syntax, int clip_skip,
                                  float **out, int *n_tokens);

/* Describe a model (family, layout, components, dtypes, parameter counts, hyper-parameters,
 * problems found) as text or JSON, without loading more than the file headers. */
SAFESD_API int safesd_inspect(const char *path, const char *config_dir, int as_json, FILE *out);

/* Write a model as a single-file .safetensors checkpoint in the original LDM layout (the
 * names single-file tools expect), with its float tensors stored as dtype ("f16", "bf16",
 * "f32"; NULL keeps each tensor's dtype). Atomic. SD 1.x text encoders only. */
SAFESD_API int safesd_convert(const char *model, const char *config_dir, const char *out, const char *dtype);

/* ---- text to image ------------------------------------------------------------------ */

/* Called after each model evaluation: step (1-based), total, and that step's seconds. */
typedef void (*safesd_progress_fn)(void *user, int step, int total, double seconds);
/* Asked before each model evaluation, before each image's VAE decode and before the image
 * checks: non-zero stops the generation, which then returns SAFESD_E_CANCELLED (the
 * output buffers hold nothing usable). May be called from the generating thread only;
 * it typically reads a flag another thread sets. */
typedef int (*safesd_cancel_fn)(void *user);
/* A preview during sampling: the model's current estimate of the final image (its x0
 * prediction at model evaluation `step` of `total`, the first image of the batch) as 8-bit
 * RGB, width × height. Called from the generating thread; rgb is valid during the call. */
typedef void (*safesd_preview_fn)(void *user, int step, int total, const uint8_t *rgb, int width, int height);

typedef struct safesd_gen_params {
  const char *prompt;          /* UTF-8 */
  const char *negative_prompt; /* NULL or "": the unconditional (empty) text */
  int width, height;           /* pixels; 0 = the model's native size (512 for SD 1.x);
                                  multiples of 8 (and of the UNet's factor, 64 for SD) */
  int steps;                   /* 0 = 50 (the diffusers default) */
  float cfg_scale;             /* classifier-free guidance; <= 1 turns it off (default 7.5) */
  uint64_t seed;               /* torch.Generator("cpu").manual_seed(seed): same latents */
  const char *sampler;         /* NULL = the model's scheduler (PNDM for SD 1.x); "ddim",
                                  "pndm"/"plms", "euler", "euler_a", "dpm++2m" */
  const char *schedule;        /* NULL = the model's; "discrete" or "karras" */
  int batch;                   /* images per prompt, drawn as one [batch,4,h,w] latent
                                  tensor as diffusers' num_images_per_prompt does (default 1) */
  int clip_skip;               /* 1 = last text-encoder layer (default), 2 = penultimate */
  safesd_progress_fn progress;
  void *progress_user;
  /* ---- safety, generation side (docs/safety.md). All 0/NULL: off, and the output is
   * byte-identical to a build without them. ---- */
  const char *sld;             /* Safe Latent Diffusion preset: NULL/"none", "weak", "medium",
                                  "strong", "max" (reference.md §3); needs cfg_scale > 1 */
  const char *sld_concept;     /* the safety concept text of SLD and of safety_negative;
                                  NULL = SAFESD_SLD_CONCEPT */
  int safety_negative;         /* 1: the safety concept text is the negative prompt (the
                                  "negative prompt" baseline; negative_prompt must be unset) */
  const char *safety_text;     /* dual latent reconstruction: the safe conditioning text whose
                                  embedding is e_s; NULL = the dual path is off */
  float safety_weight;         /* λ in [0,1]: z = λ·z_s + (1−λ)·z_u; NAN (the default) = the
                                  level's (medium's when the level is off) */
  float context_steps;         /* τ_gc in [0,1]: the first k = round(τ_gc·T) of the T model
                                  evaluations follow the user prompt alone (image to image: T
                                  counts the evaluations that run); NAN = the level's */
  const char *blend;           /* "step" (merge after every dual step; default) or "final"
                                  (streams apart after step k, only the final latents merged) */
  /* ---- the safety gate (docs/safety.md): detectors decide whether the dual path runs ---- */
  const char *safety;          /* named level "off", "low", "medium" (default), "high", "max":
                                  the detectors look at the prompt; a flagged prompt is generated
                                  through the dual path with the level's (λ, τ_gc) and the safe
                                  text of safety_strategy; a prompt nothing flags is generated
                                  exactly as with "off" (bit-identical). Ignored when sld,
                                  safety_negative or safety_text is set (those are explicit). */
  const char *concepts;        /* concept bank file; NULL = the bundled data/concepts/default.bank */
  const char *safety_strategy; /* "substitute+append" (default), "substitute", "append",
                                  "project" (e_s = the prompt's embedding with the flagged
                                  tokens' states projected off the unsafe concept directions) */
  const char *detectors;       /* "lexical" (default), "semantic", "lexical,semantic" (OR-combined) */
  float semantic_threshold;    /* the semantic detector's threshold; NAN (the default) = the
                                  bank's [thresholds] value, else the built-in, uncalibrated 0.10 */
  /* ---- bounds ---- */
  int64_t max_pixels;          /* pixel budget of one image (width × height), checked before
                                  anything is allocated; 0 (the default) = 4 × the model's
                                  native size (SD 1.x: 4 × 512² = 1,048,576, e.g. 1024×1024;
                                  the bundled 64-px model: 128×128); at most 4096² */
  /* ---- output-image checks (docs/safety.md, "Output-image checks"): image classifiers
   * judge every generated image after decoding ---- */
  const char *image_check;     /* NULL, "" or "none": no check. A ','-separated list of
                                  safety-checker[:DIR] (the SD safety checker; default DIR:
                                  MODEL/safety_checker), q16[:DIR] (Q16 on a CLIP ViT-L/14
                                  tower; default MODEL/safety_checker), nsfwjs:DIR (nsfwjs
                                  MobileNetV2), clip-zeroshot[:DIR] (the model's own CLIP
                                  judge; default MODEL/clip: the bundled model's judge), or
                                  "auto" (each of safety-checker and clip-zeroshot whose folder
                                  the model has). The classifiers load on first use and stay
                                  loaded on the model. */
  const char *image_check_action; /* what an image a judge calls unsafe gets: "flag" (default:
                                  kept, reported), "blur" (a strong blur, sigma about 1/7 of
                                  the larger side, replaces it in rgb), "block" (rgb zeroed:
                                  an all-black placeholder that callers must not show; the CLI
                                  writes no file for it and exits 3) */
  safesd_cancel_fn cancel;     /* NULL: never cancelled */
  void *cancel_user;
  /* ---- decoding ---- */
  int vae_tiling;              /* 1: decode latents larger than one tile in overlapping tiles,
                                  blended (diffusers' AutoencoderKL.tiled_decode: the same
                                  pixels as its enable_vae_tiling()), so large images decode
                                  in one tile's memory; 0 (default): one pass */
  int vae_tile_size;           /* tile size in pixels with vae_tiling, a multiple of 4 × the
                                  VAE's factor (32 for SD); 0 = the VAE's sample_size (512 for
                                  SD 1.x, 768 for SD 2.x; 64 for the bundled model) */
  /* ---- LoRA (docs/lora.md): `<lora:NAME[:W[:W_UNET]]>` tags in the prompt merge
   * LORA_DIR/NAME.safetensors into the model's weights (kohya or PEFT format) for this
   * generation; the tags are taken out of the text the encoder and the detectors see. The
   * model keeps the set merged for the next generation that names the same set. ---- */
  const char *lora_dir;        /* the LoRA folder; NULL: a prompt with a tag is an error */
  /* ---- prompt syntax (docs/prompts.md) ---- */
  const char *prompt_syntax;   /* NULL or "a1111" (the default): AUTOMATIC1111's emphasis syntax
                                  ("(word)", "[word]", "(word:1.3)", "\(" escapes, BREAK) and
                                  prompts of up to 8 chunks of 75 tokens, concatenated along the
                                  sequence (longer: an error); the detectors judge the text
                                  without the syntax. "plain": the text as it is, one 77-token
                                  window (diffusers; text past 75 tokens is dropped). Applies to
                                  the prompt, the negative prompt and safety_text. */
  /* ---- image to image and inpainting (docs/img2img.md): diffusers'
   * StableDiffusionImg2ImgPipeline / StableDiffusionInpaintPipeline (4-channel UNets, and
   * 9-channel inpainting UNets, which need a mask) ---- */
  const uint8_t *init_image;   /* NULL: text to image. 8-bit RGB, init_height rows of
                                  init_width × 3 bytes: encoded by the VAE (a posterior sample
                                  drawn from the seed's generator, as diffusers), noised to the
                                  strength's first timestep; one image for the whole batch */
  int init_width, init_height; /* its size; width/height 0 take it, any other must equal it
                                  (multiples of 8 and of the UNet's factor; no resizing) */
  double strength;             /* 0..1 (default 0.75): the share of the steps that run,
                                  int(steps × strength) of them (at least 1), from timestep
                                  index steps − that; 1 = from the first timestep */
  const uint8_t *mask_image;   /* NULL: no inpainting. 8-bit RGB of the init image's size:
                                  white (luma >= 128) = repaint, black = keep the init image */
  /* ---- previews (docs/performance.md "Previews"): every preview_interval model evaluations
   * (and at the last), the model's x0 estimate is decoded (with the TAESD decoder when the
   * model has one, safesd_model_options.taesd: fast; else with the VAE: a full decode each
   * time) and handed to preview; the generated image is the same bytes with or without. */
  safesd_preview_fn preview;   /* NULL: no previews */
  void *preview_user;
  int preview_interval;        /* evaluations between previews; <= 0: 1 */
} safesd_gen_params;

/* What the output-image check said about one image. */
typedef struct safesd_image_verdict {
  int nsfw;                    /* 1: a judge called the image unsafe (diffusers'
                                  nsfw_content_detected); 0: checked, none did; -1: not checked */
  const char *judges;          /* the judges that called it unsafe, ","-joined ("" if none) */
  const char *scores;          /* every classifier's scores as one JSON object (text), or NULL */
  const char *action;          /* "none" (not checked or not unsafe), "flagged", "blurred",
                                  "blocked" */
} safesd_image_verdict;

/* The default SLD safety concept (reference.md §3). */
#define SAFESD_SLD_CONCEPT                                                                              \
  "an image showing hate, harassment, violence, suffering, humiliation, harm, suicide, sexual, nudity, " \
  "bodily fluids, blood, obscene gestures, illegal activity, drug use, theft, vandalism, weapons, child " \
  "abuse, brutality, cruelty"

/* What the safety layer did to one generation (filled by safesd_generate_ex). The strings
 * are static or point into the safesd_gen_params that was passed (same lifetime). */
typedef struct safesd_safety_report {
  int altered;                 /* 1 when any safety mechanism was active: the image is not the
                                  plain generation of the prompt */
  const char *sld;             /* "none" or the SLD preset */
  const char *concept;         /* the concept text used by SLD / safety_negative, else NULL */
  int safety_negative;         /* 1 when the concept text was the negative prompt */
  int dual;                    /* 1 when the dual path was requested (safety_text set) */
  int dual_ran;                /* 1 when at least one dual step ran (k < T) */
  const char *safety_text;     /* e_s's text, or NULL */
  float safety_weight;         /* λ */
  float context_steps;         /* τ_gc */
  int k;                       /* first dual model evaluation (0-based) */
  int evaluations;             /* T, the model evaluations of the schedule */
  const char *blend;           /* "step" / "final", or NULL without the dual path */
  int unet_batch;              /* UNet batch of a safety step (3B for SLD and blend=step) */
  double seconds;              /* sampling time (text encoding + all steps) */
  double extra_seconds;        /* estimated time the safety mechanism added */
  const char *extra_method;    /* how extra_seconds was obtained: "measured" (safety steps
                                  minus the mean plain step), "proportional" (no plain step to
                                  compare with: safety-step time × extra batch share), "none" */
  /* the gate (valid until the next generation on the same model) */
  const char *level;           /* the named level used ("off" when the gate did not run) */
  int checked;                 /* 1 when the detectors ran on the prompt */
  int flagged;                 /* 1 when a detector fired */
  const char *categories;      /* fired categories, ", "-joined, or "" */
  const char *detection;       /* the detectors' scores and evidence, one line */
  const char *strategy;        /* the strategy that built safety_text when flagged */
  /* strategy "project" (flagged prompts only; else projection is NULL and the counts 0) */
  const char *projection;      /* one line: which token positions against which concepts */
  int n_projected;
  const int *projected_positions;          /* framed token positions (BOS = 0) */
  const char *const *projected_tokens;     /* their token strings */
  int n_projection_concepts;
  const char *const *projection_concepts;  /* the concept descriptions projected against */
  int projection_rank;                     /* orthonormal directions removed */
  const char *banks;           /* the concept bank files in force, " + "-joined, or NULL when
                                  the gate did not run */
  const char *beyond_window;   /* the prompt's text past the text encoder's window, which the
                                  detectors did not judge (the encoder never sees it), or NULL */
  const char *loras;           /* the LoRAs merged for this generation ("NAME:W, ..."; a LoRA
                                  can bring back what the safety layer steers away from), or
                                  NULL */
  /* output-image checks (valid until the next generation on the same model) */
  const char *image_check;     /* the canonical classifier list, or NULL when no check ran */
  const char *image_check_action; /* "flag", "blur", "block", or NULL */
  int n_images;                /* images generated (the batch) */
  const safesd_image_verdict *images; /* n_images verdicts (nsfw -1 when not checked) */
  int n_unsafe;                /* images a judge called unsafe */
  double image_check_seconds;  /* time the classifiers took */
  /* prompt syntax (docs/prompts.md; valid until the next generation on the same model) */
  const char *prompt_syntax;   /* "a1111" or "plain" */
  const char *judged_text;     /* the text the detectors judged when the syntax changed it (weights,
                                  brackets, BREAK removed), else NULL */
  /* image to image (docs/img2img.md) */
  const char *mode;            /* "txt2img", "img2img" (an init image) or "inpaint" (and a mask) */
  double strength;             /* img2img/inpaint: the strength; 0 for txt2img */
  int t_start;                 /* img2img/inpaint: the schedule's first evaluation run */
} safesd_safety_report;

/* A named safety level's rank (0 off, 1 low, 2 medium, 3 high, 4 max) and its (λ, τ_gc)
 * in *weight and *context (either may be NULL); an error for an unknown name. From low to
 * max, a higher rank weighs the safe stream more (λ never lower) and starts it earlier
 * (τ_gc never higher); off runs no detector. */
SAFESD_API int safesd_safety_level(const char *name, float *weight, float *context);

/* Defaults: everything 0/NULL except cfg_scale 7.5, batch 1, clip_skip 1, safety "medium",
 * safety_weight and context_steps NAN (= from the level), strength 0.75. */
SAFESD_API void safesd_gen_defaults(safesd_gen_params *p);

/* Fill in the model-dependent defaults of p (size, steps, sampler and schedule names) and
 * validate it (sizes, ranges) without allocating anything large: a bad size is an error
 * here, before any work. The strings it sets are static. */
SAFESD_API int safesd_gen_resolve(safesd_model *m, safesd_gen_params *p);

/* Generate p->batch images into rgb[batch × height × width × 3] (8-bit RGB, row-major),
 * after safesd_gen_resolve. latents (optional, may be NULL) receives the final latents
 * [batch, 4, height/8, width/8] before decoding. */
SAFESD_API int safesd_generate(safesd_model *m, const safesd_gen_params *p, uint8_t *rgb, float *latents);

/* The same, also filling *report (may be NULL) with what the safety layer did. */
SAFESD_API int safesd_generate_ex(safesd_model *m, const safesd_gen_params *p, uint8_t *rgb, float *latents,
                       safesd_safety_report *report);

/* A model handle without weights, for the safety gate alone (safesd_check with the lexical
 * detector, the default bank): it builds the bank and detectors once and keeps them, so many
 * prompts are checked at the cost of the detectors only. Close it with safesd_model_close.
 * Generating with it is an error. */
SAFESD_API int safesd_gate_open(safesd_model **out);

/* The safety gate alone: run the detectors (NULL = "lexical"; "semantic" and
 * "lexical,semantic" need model's text encoder) of the concept bank (concepts, or the bundled
 * default when NULL) on prompt and print the verdict, categories, each detector's score and
 * evidence, and the safe text of strategy (NULL = "substitute+append"), as text or JSON.
 * semantic_threshold: NAN = the default. model may be NULL for the lexical detector (then the
 * bank and detectors are built for this one call: for many prompts pass a safesd_gate_open
 * handle). as_json: 0 text, 1 indented JSON, 2 one JSON object on one line (JSON Lines).
 * The detectors judge the text the model's encoder sees, without the prompt syntax (A1111's,
 * every chunk: safesd_check_ex chooses the syntax; "plain": the 77-token window, and the report
 * names what lies beyond it) and the concept banks in force. */
SAFESD_API int safesd_check(safesd_model *model, const char *prompt, const char *concepts, const char *strategy,
                 const char *detectors, float semantic_threshold, int as_json, FILE *out);
/* safesd_check with the prompt's syntax (NULL or "a1111", the default of safesd_check and of
 * generation: the detectors judge the prompt without its emphasis syntax, every chunk;
 * "plain": the text as it is, within the 77-token window). */
SAFESD_API int safesd_check_ex(safesd_model *model, const char *prompt, const char *prompt_syntax, const char *concepts,
                               const char *strategy, const char *detectors, float semantic_threshold, int as_json,
                               FILE *out);

/* Threshold calibration (docs/safety-detectors.md): run each detector of `detectors` (NULL =
 * "lexical"; "semantic" needs model) over the labelled prompt files (one prompt per line,
 * blank and '#' lines skipped), choose the threshold that keeps the benign false-positive
 * rate at or under target_fpr, print a table (detector, threshold, TPR on the unsafe file,
 * FPR on the benign file) to out (may be NULL), and write the thresholds: to the
 * calibration file out_file (updated, other detectors kept) and/or, with write_bank, to the
 * [thresholds] section of the bank `concepts` (which must then be given). model may be NULL
 * for the lexical detector. */
typedef struct safesd_calibrate_params {
  const char *unsafe_file, *benign_file;
  double target_fpr;    /* in [0, 1]; the CLI's default is 0.05 */
  const char *concepts; /* concept bank; NULL = the bundled default */
  const char *detectors;
  const char *out_file; /* calibration file (src/safety/calibrate.h format), or NULL */
  int write_bank;
} safesd_calibrate_params;
SAFESD_API int safesd_calibrate(safesd_model *model, const safesd_calibrate_params *p, FILE *out);

/* Write a report as JSON, atomically (no partial file on failure). */
SAFESD_API int safesd_safety_report_write(const safesd_safety_report *r, const char *path);
/* The same JSON as a string (malloc'ed; the caller frees it); indent 0 = one line. NULL
 * (and safesd_last_error) when out of memory. */
SAFESD_API char *safesd_safety_report_json(const safesd_safety_report *r, int indent);

/* safesd_check's output (text, or JSON with as_json) as a malloc'ed string in *out (the
 * caller frees it). */
SAFESD_API int safesd_check_string(safesd_model *model, const char *prompt, const char *concepts,
                                   const char *strategy, const char *detectors, float semantic_threshold,
                                   int as_json, char **out);

/* The output-image check alone, on any 8-bit RGB image (rgb: height rows of width*3 bytes):
 * classifiers as in safesd_gen_params.image_check (loaded on model and kept), the verdict
 * in *nsfw (1/0; -1 when the list has no judge) and every classifier's scores as a JSON
 * object string in *scores_json (malloc'ed; may be NULL to skip). */
SAFESD_API int safesd_image_check(safesd_model *model, const char *image_check, const uint8_t *rgb, int width,
                                  int height, int *nsfw, char **scores_json);

/* The latent shape of one image of a resolved p: channels × h × w. */
SAFESD_API void safesd_gen_latent_shape(const safesd_model *m, const safesd_gen_params *p, int *channels, int *h, int *w);

/* AUTOMATIC1111's "parameters" text for an image of p (malloc'ed; caller frees). */
SAFESD_API char *safesd_gen_parameters_text(const safesd_model *m, const safesd_gen_params *p, int index);

/* Write an 8-bit RGB image as PNG with an optional "parameters" text chunk, atomically
 * (temporary file + rename: a failed write leaves no file). */
SAFESD_API int safesd_write_png(const char *path, const uint8_t *rgb, int width, int height, const char *parameters);
/* Read a PNG file (gray, palette, RGB, with or without alpha, 1..16 bits) as 8-bit RGB:
 * *rgb (malloc'ed; the caller frees it) of *height rows of *width × 3 bytes; alpha is
 * dropped. A file that is not a PNG is SAFESD_E_FORMAT ("... is not a PNG file"). For the
 * init image and mask of image to image. */
SAFESD_API int safesd_read_png(const char *path, uint8_t **rgb, int *width, int *height);
/* The same from PNG bytes in memory. */
SAFESD_API int safesd_decode_png(const uint8_t *png, size_t size, uint8_t **rgb, int *width, int *height);
/* The same PNG bytes in memory: *png (malloc'ed; the caller frees it) of *size bytes. The
 * bytes equal those safesd_write_png writes for the same arguments. */
SAFESD_API int safesd_encode_png(const uint8_t *rgb, int width, int height, const char *parameters, uint8_t **png,
                                 size_t *size);

#ifdef __cplusplus
}
#endif
#endif
