/* Private to src/sampling: the layout of an sd_schedule. */
#ifndef SD_SAMPLING_SCHED_INTERNAL_H
#define SD_SAMPLING_SCHED_INTERNAL_H

#include <stdint.h>

#include "sampling/schedule.h"

struct sd_schedule {
  sd_sched_config cfg;
  int steps;               /* num_inference_steps as asked */
  int len;                 /* model evaluations = length of timesteps */
  float *timesteps;        /* len: what the model is given */
  int64_t *t_int;          /* len: integral timesteps (ddim, pndm, dpm++2m); else NULL */
  float *sigmas;           /* len + 1 (euler, euler_a, dpm++2m); else NULL */
  int n_train;
  float *alphas_cumprod;   /* n_train */
  float final_alpha_cumprod;
  float init_noise_sigma;
  int ratio;               /* ddim/pndm: num_train_timesteps // steps (prev_timestep offset) */
};

#endif
