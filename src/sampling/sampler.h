/* Stepping a latent stream through a schedule: diffusers' scale_model_input() and step() for
 * DDIM, PNDM (PLMS), Euler, Euler ancestral and DPM-Solver++ 2M, with epsilon- or
 * v-prediction, in float32 with the operation order of the diffusers/torch code (results agree
 * with diffusers to ~1e-7 relative per step; see tests/unit/test_samplers.c).
 *
 * The schedule (sampling/schedule.h) is immutable. Everything that changes while sampling is in
 * an sd_sampler_state: the index of the next model evaluation and the multistep history (PLMS's
 * last four ε, DPM++ 2M's last x0, the sample PLMS keeps for its duplicated first step). A state
 * owns its buffers; copy it with sd_sampler_state_copy/_assign, never with `=`. So two streams
 * (say, a safe and an unsafe one mixed at every step) are two states over one schedule:
 *
 *   sd_sampler_state a, b;
 *   sd_sampler_init(sched, n, &a);  sd_sampler_init(sched, n, &b);
 *   for (int i = 0; i < sd_schedule_len(sched); i++) {
 *     float t = sd_schedule_timesteps(sched, NULL)[i];
 *     sd_sampler_scale_input(sched, &a, xa, in_a);  ... eps_a = model(in_a, t) ...
 *     sd_sampler_scale_input(sched, &b, xb, in_b);  ... eps_b = model(in_b, t) ...
 *     sd_sampler_step(sched, &a, eps_a, xa, &rng_a);
 *     sd_sampler_step(sched, &b, eps_b, xb, &rng_b);   // or _step_noise with shared noise
 *   }
 *   sd_sampler_state_free(&a);  sd_sampler_state_free(&b);
 *
 * Randomness: a step of euler, euler_a, or ddim with eta > 0 consumes exactly one
 * randn(n) from the generator, as diffusers' step(generator=...) does (Euler draws it even
 * at s_churn 0 and does not use it). Passing the generator that made the initial latents
 * (sd_sampler_init_latents) reproduces diffusers' pipeline bit for bit in the random stream.
 */
#ifndef SD_SAMPLING_SAMPLER_H
#define SD_SAMPLING_SAMPLER_H

#include <stdint.h>

#include "sampling/rng.h"
#include "sampling/schedule.h"

#define SD_SAMPLER_MAX_HIST 4

typedef struct sd_sampler_state {
  int step;              /* model evaluations done so far = index of the next one */
  int64_t n;             /* latent elements of this stream (the whole latent tensor) */
  int n_hist;            /* valid history entries, oldest first in hist[0..n_hist-1] */
  int cap_hist;          /* buffers allocated in hist[] */
  float *hist[SD_SAMPLER_MAX_HIST]; /* PLMS: past ε (ets); DPM++: past x0 predictions */
  float *cur_sample;     /* PLMS: the sample before the first step (for the duplicated step) */
  int has_cur_sample;
  int lower_order_nums;  /* DPM++: how many lower-order steps were taken (diffusers' counter) */
  float *scratch;        /* one step's scratch, not state: the noise (euler, euler_a, ddim
                            eta > 0) or PLMS's combined ε; never copied */
  int kind;              /* the sampler kind this state was made for (a check) */
  int begin;             /* the first model evaluation of this stream (0, or image to image's
                            t_start: sd_sampler_begin_at); PNDM's counter is step - begin */
} sd_sampler_state;

/* A fresh stream of n elements for this schedule; allocates every buffer it will need (a step
 * never allocates). n >= 1. */
int sd_sampler_init(const sd_schedule *s, int64_t n, sd_sampler_state *st);
/* Back to step 0 (history dropped), buffers kept. */
void sd_sampler_reset(sd_sampler_state *st);
/* dst = a new, independent deep copy of src (dst need not be initialised; free it later). */
int sd_sampler_state_copy(sd_sampler_state *dst, const sd_sampler_state *src);
/* dst (initialised for the same schedule kind and n) takes src's values; no allocation. */
int sd_sampler_state_assign(sd_sampler_state *dst, const sd_sampler_state *src);
void sd_sampler_state_free(sd_sampler_state *st);

/* Image to image (diffusers' StableDiffusionImg2ImgPipeline.get_timesteps): with `steps`
 * inference steps and strength in [0, 1], init_timestep = min(int(steps * strength), steps)
 * (strength a double, as Python multiplies) and t_start = steps - init_timestep; the sampler
 * runs the schedule's evaluations from index t_start * order (order 1 for every sampler here,
 * PNDM included: its timesteps[t_start:] as diffusers slices them). Returns init_timestep, the
 * number of inference steps that run (0: none would run, which callers must refuse), with
 * *t_start set; SD_E_ARG for a strength outside [0, 1] or NaN, or steps < 1. */
int sd_strength_steps(int steps, double strength, int *t_start);

/* Start st (initialised for s) at model evaluation `index` (0 <= index < sd_schedule_len): the
 * history is empty and PNDM's step counter starts at 0 there, as a freshly set scheduler that
 * the pipeline hands timesteps[index:] (the step index of euler, euler_a and dpm++2m is the
 * position in the full schedule, as diffusers looks it up from the timestep). */
int sd_sampler_begin_at(const sd_schedule *s, sd_sampler_state *st, int index);

/* scheduler.add_noise(x0, noise, timesteps[index]) into out[0..n) (out may be x0): ddim and
 * pndm sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·noise on the training table at the integral timestep;
 * euler and euler_a x0 + noise·σ_index; dpm++2m α·x0 + σ_t·noise with α = 1/sqrt(σ² + 1),
 * σ_t = σ·α of σ_index (diffusers v0.25.1's add_noise of each class, in float32). */
int sd_sampler_add_noise(const sd_schedule *s, int index, const float *x0, const float *noise, float *out,
                         int64_t n);

/* The model's estimate of the clean latents x0 from its output at the state's next evaluation
 * (before sd_sampler_step): ddim/pndm (x − sqrt(1−ᾱ)·ε)/sqrt(ᾱ) or sqrt(ᾱ)·x − sqrt(1−ᾱ)·v;
 * euler/euler_a x − σ·ε or v·(−σ/sqrt(σ²+1)) + x/(σ²+1); dpm++2m (x − σ_t·ε)/α or α·x − σ_t·v
 * (each sampler's own convention; Euler's churn is ignored). For previews: the sampler steps
 * themselves are unchanged. */
int sd_sampler_predict_x0(const sd_schedule *s, const sd_sampler_state *st, const float *model_out, const float *x,
                          float *out, int64_t n);

/* 1 when the state has done every model evaluation of the schedule. */
int sd_sampler_done(const sd_schedule *s, const sd_sampler_state *st);
/* The timestep of the state's next model evaluation. */
float sd_sampler_timestep(const sd_schedule *s, const sd_sampler_state *st);

/* Initial latents: randn(n) from g, times init_noise_sigma (diffusers' prepare_latents). */
void sd_sampler_init_latents(const sd_schedule *s, sd_rng *g, float *latents, int64_t n);

/* scale_model_input at evaluation `step`: the model input is x / divisor (1 except for
 * euler/euler_a: sqrt(sigma^2 + 1)). */
float sd_sampler_input_divisor(const sd_schedule *s, int step);
/* out[i] = x[i] / divisor for the state's next evaluation (out may be x). */
void sd_sampler_scale_input(const sd_schedule *s, const sd_sampler_state *st, const float *x,
                            float *out);

/* 1 if the state's next step consumes one randn(n) (euler, euler_a, ddim with eta > 0). */
int sd_sampler_needs_noise(const sd_schedule *s);

/* One scheduler.step(model_out, t, latents): latents (n floats) are updated in place and the
 * state advances by one evaluation. rng may be NULL only if the sampler needs no noise, or
 * for euler with s_churn 0 (then nothing is drawn, like diffusers with generator=None drawing
 * from another stream). SD_E_ARG when the schedule is already finished or n does not match. */
int sd_sampler_step(const sd_schedule *s, sd_sampler_state *st, const float *model_out,
                    float *latents, sd_rng *rng);
/* The same with the step's noise given (diffusers' variance_noise): n floats, or NULL when the
 * step does not use noise. Use it to feed two streams the same noise. */
int sd_sampler_step_noise(const sd_schedule *s, sd_sampler_state *st, const float *model_out,
                          float *latents, const float *noise);

#endif
