/* nsfwjs's MobileNetV2 NSFW image classifier, the nudity signal of the evaluation harness.
 *
 * NudeNet's weights cannot be obtained here; the image-side nudity signal is the 5-class
 * MobileNetV2 that npm's nsfwjs@4.4.0 ships (MIT, ../shared/data/nsfwjs/mobilenet_v2/). Its
 * numbers are NOT comparable with NudeNet's, and reports must say so. This module gives the
 * five class probabilities only; it defines no combined "nudity score" or threshold (the
 * spec gives none; see docs/evaluation.md, "nsfwjs (MobileNetV2)").
 *
 * The model is read from the TensorFlow.js *layers* format: `model.json` (the Keras
 * functional graph in modelTopology, and weightsManifest: names, shapes, dtypes,
 * quantisation) and the binary weight shards the manifest names, next to model.json.
 * Both are untrusted: the JSON is parsed with typed, range-checked getters; every layer
 * kind, configuration value, graph edge, weight name, shape and byte count is validated,
 * and errors name the file, the layer and the weight. Layers implemented (exactly those
 * Keras MobileNetV2 + the nsfwjs head use): InputLayer, ZeroPadding2D, Conv2D,
 * DepthwiseConv2D, BatchNormalization, ReLU (max_value), Add, AveragePooling2D ('valid'),
 * Flatten, Dense, Dropout (identity); activations linear, relu, softmax. Weights may be
 * float32 or quantised (uint8/uint16: w = min + scale·q, as TF.js dequantises; float16).
 *
 * Compute is float32, NHWC, batch 1. At load time BatchNormalization is folded into the
 * convolution or Dense layer before it and a ReLU into the layer before it (when that
 * layer's output has no other user); ZeroPadding2D is kept as its own copy. The activation
 * memory of a forward pass is planned at load time (sd_nsfwjs_workspace_bytes) and
 * allocated once per call. A loaded model is immutable: it may be used from several
 * threads at once, each with its own sd_exec.
 */
#ifndef SD_JUDGE_NSFWJS_H
#define SD_JUDGE_NSFWJS_H

#include <stddef.h>
#include <stdint.h>

#include "core/ops.h"

/* The classes, in nsfwjs's output order (nsfwjs src/nsfw_classes.ts). */
#define SD_NSFWJS_CLASSES 5
typedef enum {
  SD_NSFWJS_DRAWING = 0,
  SD_NSFWJS_HENTAI = 1,
  SD_NSFWJS_NEUTRAL = 2,
  SD_NSFWJS_PORN = 3,
  SD_NSFWJS_SEXY = 4
} sd_nsfwjs_class;

/* "Drawing", "Hentai", "Neutral", "Porn", "Sexy"; NULL outside [0, 5). */
const char *sd_nsfwjs_class_name(int k);

typedef struct sd_nsfwjs sd_nsfwjs;

/* Load a TF.js layers model. `path` is the folder that holds model.json, or model.json
 * itself; the shards are looked up beside it. Errors: SD_E_IO (a file missing or
 * unreadable), SD_E_FORMAT (malformed JSON, bad graph, missing/mis-shaped weight, shard
 * too short or too long, non-finite weights), SD_E_UNSUPPORTED (a layer kind or option
 * not implemented), SD_E_NOMEM. The model's output must have 5 values. */
int sd_nsfwjs_load(const char *path, sd_nsfwjs **out);
void sd_nsfwjs_free(sd_nsfwjs *m);

/* The network's input height and width (224 × 224 for nsfwjs's MobileNetV2). */
void sd_nsfwjs_input_size(const sd_nsfwjs *m, int *h, int *w);
/* Bytes of activation memory one forward pass allocates (workspace, planned at load). */
size_t sd_nsfwjs_workspace_bytes(const sd_nsfwjs *m);
/* A one-line description: layers, executed ops, fusions, parameters, workspace. */
void sd_nsfwjs_describe(const sd_nsfwjs *m, char *buf, size_t cap);

/* nsfwjs's preprocessing (NSFWJS.infer): pixels / 255 in float32, then, unless the image
 * already has the input size, tf.image.resizeBilinear to it with alignCorners = true and
 * halfPixelCenters = false (no cropping, aspect ratio not kept), computed as TF.js's CPU
 * kernel does (source position r·(in−1)/(out−1) in double precision). rgb: h rows of w
 * RGB pixels, tightly packed (w·3 bytes a row). x: [H, W, 3] float32 for the input size.
 * SD_E_ARG for NULL pointers or sizes outside [1, 65536]. */
int sd_nsfwjs_preprocess(const sd_nsfwjs *m, const uint8_t *rgb, int w, int h, float *x);

/* Called after each executed op with the name of the (last fused) Keras layer it computes
 * and its NHWC output (a rank-1 value has h = w = 1). For a layer with a softmax activation
 * it is also called before the softmax with "<layer>/logits". data is valid only during
 * the call. */
typedef void (*sd_nsfwjs_hook)(void *ctx, const char *layer, const float *data, int h, int w,
                               int c);

/* Run the network on a preprocessed input x [H, W, 3]; probs gets the 5 outputs (the
 * model's softmax). hook may be NULL. */
int sd_nsfwjs_forward(const sd_nsfwjs *m, sd_exec *ex, const float *x,
                      float probs[SD_NSFWJS_CLASSES], sd_nsfwjs_hook hook, void *ctx);

/* Preprocess + forward: the class probabilities of an RGB image (h rows of w pixels). */
int sd_nsfwjs_classify(const sd_nsfwjs *m, sd_exec *ex, const uint8_t *rgb, int w, int h,
                       float probs[SD_NSFWJS_CLASSES]);

#endif
