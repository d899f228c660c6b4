/* emoji-judge: the bundled model's own image classifier (docs/evaluation.md, "emoji-judge").
 *
 * A small convolutional network trained by tools/train/judge.py on scenes rendered by
 * tools/train/scenes.py (the ground truth is free): for a 64×64 RGB image it gives the
 * presence of every object of its vocabulary (each unsafe emoji of the model's concept bank
 * and the benign objects of the scene sets; multi-label, sigmoid), where each one is most
 * likely to be, and the background colour distribution over the renderer's palette
 * (softmax). The architecture is tools/ref/sdref_judge.py's EmojiJudge:
 *
 *   x = area-resize(u8 / 255) to S×S, then 2x − 1        (S = image_size, 64)
 *   h_0 = conv3×3(x) + b, stride s_0                       (the stem, kept for the colour head)
 *   h_i = SiLU(GroupNorm(conv3×3(h_{i−1}) + b, stride s_i))  for i = 0..L−1 (h_0 normalised too)
 *   object logits per cell = W_o · h_{L−1}[:, cell] + b_o  (a 1×1 convolution)
 *   presence logit = max over the cells; where = the argmax cell
 *   background logits = W_b · [mean over cells of h_{L−1}, mean over cells of the stem
 *                              before its GroupNorm] + b_b
 *
 * Files (a folder, e.g. models/safesd-emoji/judge/):
 *   config.json        {"image_size": 64, "channels": [..], "strides": [..], "groups": G,
 *                       "norm_eps": 1e-5, "threshold": 0.5,
 *                       "objects": [{"name": "dagger", "category": "weapons"}, ...],
 *                       "backgrounds": ["white", "light blue", ...]}
 *                      category "benign" marks a benign object; any other is unsafe.
 *   model.safetensors  convs.I.{weight [C_i, C_{i-1}, 3, 3], bias [C_i]},
 *                      norms.I.{weight, bias} [C_i], object_head.{weight [N_o, C_L], bias},
 *                      background_head.{weight [N_b, C_L + C_0], bias}; F32, F16 or BF16.
 * Both are untrusted: ranges, names, shapes and dtypes are checked, the file must hold
 * exactly the expected tensors and every value must be finite; errors name the file and the
 * key or tensor.
 */
#ifndef SD_EVAL_EMOJI_JUDGE_H
#define SD_EVAL_EMOJI_JUDGE_H

#include <stdint.h>

#include "core/ops.h"

#define SD_JUDGE_MAX_LAYERS 16
#define SD_JUDGE_MAX_CHANNELS 1024
#define SD_JUDGE_MAX_OBJECTS 1024
#define SD_JUDGE_MAX_BACKGROUNDS 256
#define SD_JUDGE_MAX_IMAGE 512
#define SD_JUDGE_MAX_ACTIVATION (16 << 20) /* values in one feature map (64 MiB) */
#define SD_JUDGE_MAX_INPUT 65536 /* largest input side accepted (resized to image_size) */

typedef struct sd_emoji_judge sd_emoji_judge;

int sd_emoji_judge_load(const char *dir, sd_emoji_judge **out);
void sd_emoji_judge_free(sd_emoji_judge *j);

int sd_emoji_judge_image_size(const sd_emoji_judge *j);
/* The side of the last feature map (the object head's cells). */
int sd_emoji_judge_grid(const sd_emoji_judge *j);
int sd_emoji_judge_n_objects(const sd_emoji_judge *j);
int sd_emoji_judge_n_backgrounds(const sd_emoji_judge *j);
/* Object i's name and category ("benign" or a bank category); NULL out of range. */
const char *sd_emoji_judge_object(const sd_emoji_judge *j, int i, const char **category);
const char *sd_emoji_judge_background(const sd_emoji_judge *j, int i);
/* Index of the object / background colour called name, or -1. */
int sd_emoji_judge_find_object(const sd_emoji_judge *j, const char *name);
int sd_emoji_judge_find_background(const sd_emoji_judge *j, const char *name);
/* The presence threshold (an object is found when its probability exceeds it). */
float sd_emoji_judge_threshold(const sd_emoji_judge *j);

/* The preprocessing: rgb (h rows of w RGB pixels, tightly packed) → x [3, S, S]: each output
 * pixel is the mean of its source window (PyTorch's adaptive_avg_pool2d windows: rows
 * floor(i·h/S) .. ceil((i+1)·h/S) − 1, likewise columns) of u8/255, computed in double, then
 * 2x − 1, cast to float. SD_E_ARG for NULL pointers or sides outside [1, SD_JUDGE_MAX_INPUT]. */
int sd_emoji_judge_preprocess(const sd_emoji_judge *j, const uint8_t *rgb, int w, int h, float *x);

typedef struct sd_emoji_judge_result {
  float *object_logit; /* [n_objects] presence logits */
  float *object_p;     /* [n_objects] sigmoid of the logits */
  int *object_cell;    /* [n_objects] the argmax cell, row-major in the grid × grid map */
  float *object_x, *object_y; /* [n_objects] centre of that cell, in [0, 1] of the width / height */
  float *background_logit; /* [n_backgrounds] */
  float *background_p;     /* [n_backgrounds] softmax */
  int background_top;      /* argmax (-1 when there are no background classes) */
} sd_emoji_judge_result;

/* Allocate / free a result's arrays for j. */
int sd_emoji_judge_result_alloc(const sd_emoji_judge *j, sd_emoji_judge_result *r);
void sd_emoji_judge_result_free(sd_emoji_judge_result *r);

/* Run on a preprocessed x [3, S, S]. A loaded judge is immutable: several threads may run it
 * at once, each with its own sd_exec and result. */
int sd_emoji_judge_forward(const sd_emoji_judge *j, sd_exec *ex, const float *x, sd_emoji_judge_result *r);
/* Preprocess + forward. */
int sd_emoji_judge_classify(const sd_emoji_judge *j, sd_exec *ex, const uint8_t *rgb, int w, int h,
                            sd_emoji_judge_result *r);

#endif
