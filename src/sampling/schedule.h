/* Noise schedules and timestep lists of the diffusers schedulers (v0.25.1), computed the way
 * diffusers computes them (float32 torch tables, float64 numpy interpolation), so that the
 * timesteps, sigmas and init_noise_sigma match diffusers exactly or to the last bit or two.
 *
 * An sd_sched_config is what a diffusers scheduler_config.json resolves to for one scheduler
 * class (diffusers' from_config: the class's own defaults, overridden by the keys of the file
 * that the class accepts). An sd_schedule is the immutable result of set_timesteps(steps): the
 * list of model evaluations with their timesteps and sigmas. It holds no per-stream state, so
 * any number of latent streams can be stepped against one schedule (see sampling/sampler.h).
 *
 * Samplers (the names users type, and the diffusers classes they stand for):
 *   ddim       DDIMScheduler                     (eta 0 by default; eta > 0 draws noise)
 *   pndm/plms  PNDMScheduler, skip_prk_steps     (N steps = N+1 model evaluations)
 *   euler      EulerDiscreteScheduler            (draws one randn per step even at s_churn 0)
 *   euler_a    EulerAncestralDiscreteScheduler   (draws one randn per step)
 *   dpm++2m    DPMSolverMultistepScheduler, dpmsolver++, solver_order 2 (1 also works)
 * Sigma schedules: "discrete" (the default) and "karras" (use_karras_sigmas; euler, euler_a,
 * dpm++2m only). diffusers v0.25.1's EulerAncestralDiscreteScheduler has no Karras option: for
 * euler_a + karras this library builds the sigmas exactly as EulerDiscreteScheduler does.
 */
#ifndef SD_SAMPLING_SCHEDULE_H
#define SD_SAMPLING_SCHEDULE_H

#include <stdint.h>

#include <jansson.h>

typedef enum {
  SD_SAMPLER_AUTO = -1, /* only for sd_sched_config_from_json: take _class_name */
  SD_SAMPLER_DDIM = 0,
  SD_SAMPLER_PNDM,
  SD_SAMPLER_EULER,
  SD_SAMPLER_EULER_A,
  SD_SAMPLER_DPMPP_2M,
  SD_SAMPLER_COUNT
} sd_sampler_kind;

typedef enum { SD_BETA_LINEAR = 0, SD_BETA_SCALED_LINEAR, SD_BETA_SQUAREDCOS_CAP_V2 } sd_beta_schedule;
typedef enum { SD_SPACING_LEADING = 0, SD_SPACING_TRAILING, SD_SPACING_LINSPACE } sd_timestep_spacing;
typedef enum { SD_PRED_EPSILON = 0, SD_PRED_V } sd_prediction;
typedef enum { SD_SIGMAS_DISCRETE = 0, SD_SIGMAS_KARRAS } sd_sigma_schedule;

typedef struct sd_sched_config {
  sd_sampler_kind kind;
  /* the training noise schedule */
  int num_train_timesteps;        /* 1000 */
  double beta_start, beta_end;    /* as given (Python floats) */
  sd_beta_schedule beta_schedule;
  sd_prediction prediction;       /* prediction_type: "epsilon" or "v_prediction" */
  /* the inference timesteps */
  sd_timestep_spacing spacing;    /* timestep_spacing */
  int steps_offset;
  sd_sigma_schedule sigmas;       /* use_karras_sigmas */
  double sigma_min, sigma_max;    /* Karras range; NAN = diffusers' None (from the table) */
  /* DDIM / PNDM */
  int set_alpha_to_one;
  int skip_prk_steps;             /* PNDM: must be 1 (PRK warm-up steps are not implemented) */
  int clip_sample;                /* DDIM */
  double clip_sample_range;       /* DDIM */
  double eta;                     /* DDIM step(eta=...): 0 = deterministic */
  /* Euler step(s_churn=..., ...) */
  double s_churn, s_tmin, s_tmax, s_noise;
  /* DPM-Solver++ */
  int solver_order;               /* 1 or 2 */
  int solver_heun;                /* solver_type: 0 "midpoint", 1 "heun" */
  int lower_order_final;
  int euler_at_final;
} sd_sched_config;

/* The diffusers class defaults of each scheduler (what `Class()` gives). */
void sd_sched_config_default(sd_sched_config *c, sd_sampler_kind kind);
/* The Stable Diffusion 1.x scheduler_config.json applied to `kind` (scaled_linear
 * 0.00085..0.012, leading spacing, steps_offset 1, set_alpha_to_one false, clip_sample false,
 * skip_prk_steps true): what `Class.from_config(sd15_pipe.scheduler.config)` gives. */
void sd_sched_config_sd15(sd_sched_config *c, sd_sampler_kind kind);

/* diffusers' from_config: the defaults of `kind` overridden by the keys of a parsed
 * scheduler_config.json that the class accepts (others are ignored, as diffusers does).
 * kind = SD_SAMPLER_AUTO takes the class from "_class_name". Keys that ask for something this
 * library does not implement (trained_betas, thresholding, rescale_betas_zero_snr, PRK steps,
 * v-prediction with continuous timesteps, solver_order 3, SDE/dpmsolver algorithms, ...) give
 * SD_E_UNSUPPORTED; malformed values give SD_E_FORMAT. `path` labels messages. */
int sd_sched_config_from_json(const json_t *obj, const char *path, sd_sampler_kind kind,
                              sd_sched_config *out);
/* The same from a file. */
int sd_sched_config_load(const char *path, sd_sampler_kind kind, sd_sched_config *out);

/* Names: "ddim", "pndm"/"plms", "euler", "euler_a" (also "euler-a", "euler_ancestral"),
 * "dpm++2m" (also "dpmpp_2m", "dpm++_2m", "dpmpp2m"); case-insensitive. SD_E_ARG if unknown. */
int sd_sampler_kind_parse(const char *name, sd_sampler_kind *out);
const char *sd_sampler_kind_name(sd_sampler_kind kind);      /* "ddim", ..., "dpm++2m" */
const char *sd_sampler_kind_class(sd_sampler_kind kind);     /* "DDIMScheduler", ... */
/* "discrete" / "karras". */
int sd_sigma_schedule_parse(const char *name, sd_sigma_schedule *out);
const char *sd_sigma_schedule_name(sd_sigma_schedule s);
/* SD_OK if the combination is implemented, else SD_E_UNSUPPORTED with the reason. */
int sd_sched_config_check(const sd_sched_config *c);

typedef struct sd_schedule sd_schedule;

/* set_timesteps(steps). steps in [1, num_train_timesteps]. */
int sd_schedule_create(const sd_sched_config *cfg, int steps, sd_schedule **out);
void sd_schedule_free(sd_schedule *s);

const sd_sched_config *sd_schedule_config(const sd_schedule *s);
/* The number of inference steps asked for, and the number of model evaluations (the length
 * of the timestep list: steps + 1 for PNDM, steps otherwise). */
int sd_schedule_steps(const sd_schedule *s);
int sd_schedule_len(const sd_schedule *s);
/* The timestep given to the model at each evaluation (diffusers' scheduler.timesteps, PNDM's
 * duplicate included). Integral for ddim/pndm/dpm++2m; Euler's Karras timesteps are not. */
const float *sd_schedule_timesteps(const sd_schedule *s, int *n);
/* scheduler.init_noise_sigma (the initial latents are randn * this). */
float sd_schedule_init_noise_sigma(const sd_schedule *s);
/* scheduler.sigmas (len + 1 values, float32) for euler/euler_a/dpm++2m; NULL (n = 0) else. */
const float *sd_schedule_sigmas(const sd_schedule *s, int *n);
/* The training table alphas_cumprod (float32, num_train_timesteps values). */
const float *sd_schedule_alphas_cumprod(const sd_schedule *s, int *n);

#endif
