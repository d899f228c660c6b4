/* The model-source layer: opens a Stable Diffusion model in either layout and presents one
 * internal naming and one set of hyper-parameters to the rest of the engine.
 *
 * Layouts:
 *  - diffusers folder: model_index.json, text_encoder/, unet/, vae/, tokenizer/, scheduler/
 *    (weights as *.safetensors; configs as config.json);
 *  - single-file checkpoint in the original LDM layout (.safetensors): model.diffusion_model.*
 *    (UNet), first_stage_model.* (VAE), cond_stage_model.transformer.text_model.* (CLIP-L,
 *    SD 1.x) or cond_stage_model.model.* (OpenCLIP, SD 2.x, fused in_proj).
 *
 * Internal naming = diffusers / transformers names without the component folder:
 *   text: "text_model.encoder.layers.0.self_attn.q_proj.weight"
 *   unet: "down_blocks.0.resnets.0.conv1.weight"
 *   vae:  "decoder.mid_block.attentions.0.to_q.weight" (always the modern to_q/to_k/to_v/
 *         to_out.0 names, linear [C, C] shapes, whatever the file used)
 * The LDM <-> internal mapping is a table (models/name_map.c). A mapped tensor may be a view
 * on part of a stored tensor (OpenCLIP's fused in_proj split into q/k/v) or a reshape
 * (VAE 1x1 conv attention weights [C,C,1,1] -> [C,C]); no data is copied.
 *
 * Hyper-parameters come from config.json where present and are otherwise inferred from
 * tensor shapes; they are cross-checked against the weights either way.
 */
#ifndef SD_MODELS_MODEL_SOURCE_H
#define SD_MODELS_MODEL_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "core/ops.h"
#include "core/tensor.h"
#include "models/model_types.h"

typedef struct sd_weight {
  const char *name;        /* internal name */
  const char *source_name; /* name in the file */
  sd_tensor t;             /* view into the mapped file (dtype as stored) */
} sd_weight;

typedef struct sd_component_weights {
  int present;
  size_t n;
  sd_weight *w;            /* sorted by internal name */
  int64_t n_params;
  int dtype_count[SD_DTYPE_COUNT];
} sd_component_weights;

typedef struct sd_model_source sd_model_source;

/* Open a diffusers folder or a single .safetensors checkpoint. Validates the files,
 * maps names, reads or infers hyper-parameters, detects the family. Missing components are
 * not an error here (inspect reports them); sd_model_need() makes them one. */
int sd_model_open(const char *path, sd_model_source **out);
void sd_model_close(sd_model_source *m);

sd_layout sd_model_layout(const sd_model_source *m);
sd_family sd_model_family(const sd_model_source *m);
const char *sd_family_name(sd_family f);      /* "SD 1.x", "SD 2.x", "unknown" */
const char *sd_model_path(const sd_model_source *m);

const sd_component_weights *sd_model_weights(const sd_model_source *m, sd_component c);
/* Point weight i of component c at data of the given dtype (the shape stays): in-memory
 * changes such as merged LoRAs (models/lora.c), whose owner keeps the data alive and puts the
 * file's view back before closing. Out-of-range c or i: nothing happens. */
void sd_model_weight_set(sd_model_source *m, sd_component c, size_t i, sd_dtype dtype, void *data);
const sd_clip_text_config *sd_model_text_config(const sd_model_source *m);
const sd_unet_config *sd_model_unet_config(const sd_model_source *m);
const sd_vae_config *sd_model_vae_config(const sd_model_source *m);

/* Error (SD_E_FORMAT "model X has no unet") unless the component is present. */
int sd_model_need(const sd_model_source *m, sd_component c);
/* Drop the resident memory of a component's weights that are views into a mapped file
 * (never owned, converted copies). They stay valid: pages are read again when used. */
void sd_model_release(const sd_model_source *m, sd_component c);
/* Drop the resident pages of [p, p + n) where that range lies in one of m's mapped files
 * (nothing otherwise). */
void sd_model_release_range(const sd_model_source *m, const void *p, size_t n);
/* Let ex drop the file pages of m's weights it keeps packed copies of (sd_exec.release);
 * m must outlive ex's use of it. */
void sd_model_attach(const sd_model_source *m, sd_exec *ex);
/* Look a weight up by internal name; NULL if absent. */
const sd_tensor *sd_model_find(const sd_model_source *m, sd_component c, const char *name);
/* Look a weight up and check its shape (ndim, shape); on mismatch or absence an SD_E_FORMAT
 * error naming the model, the tensor, the expected and the found shape. */
int sd_model_get(const sd_model_source *m, sd_component c, const char *name, int ndim,
                 const int64_t *shape, const sd_tensor **out);

/* Tokenizer files: diffusers folder's tokenizer/vocab.json + merges.txt, or NULL for
 * single-file checkpoints (use the bundled OpenAI vocabulary). */
const char *sd_model_vocab_path(const sd_model_source *m);
const char *sd_model_merges_path(const sd_model_source *m);
/* scheduler/scheduler_config.json of the folder (or config folder), NULL if there is none. */
const char *sd_model_scheduler_path(const sd_model_source *m);
/* The folder's own concept bank, safety/concepts.bank, NULL if it has none (a bank that is
 * there but is not a readable regular file is an error at open, never a silent default). */
const char *sd_model_bank_path(const sd_model_source *m);
/* Every weight of every present component is finite: SD_OK, or SD_E_FORMAT naming the first
 * tensor holding a NaN or an infinity (and where). Reads all the weights (done by open). */
int sd_model_check_finite(const sd_model_source *m, int n_threads); /* n_threads: as check_threads */

/* Problems found while opening that did not stop it (unknown tensors ignored, config vs
 * weight disagreements resolved in favour of the weights, ...): n strings. */
size_t sd_model_problem_count(const sd_model_source *m);
const char *sd_model_problem(const sd_model_source *m, size_t i);

/* --- Additions (model_source.c documents the rules in full) ------------------------------
 *
 * Single files carry no configuration: hyper-parameters are inferred from tensor shapes.
 * Widths that are not SD's (the small test models) leave some of them undetermined (the text
 * encoder's head count, token ids of a non-CLIP vocabulary, sample sizes); each guess is
 * listed in the problems. opts.config_dir names a diffusers folder whose
 * text_encoder/config.json, unet/config.json, vae/config.json, scheduler/scheduler_config.json
 * and tokenizer/ are used instead where present (as diffusers' from_single_file(config=...));
 * they are cross-checked against the weights like a folder's own. Ignored for folders.
 *
 * OpenCLIP (SD 2.x) single files store 24 layers; SD 2.x conditions on the penultimate one,
 * and diffusers' SD 2.x text_encoder folders store only 23. The last layer of an OpenCLIP
 * single file is therefore left out (listed in the problems), so that layers/weights mean
 * the same in both layouts: run all `layers`, then final_layer_norm.
 */
typedef struct sd_model_open_opts {
  const char *config_dir; /* NULL: infer everything from the weights */
  int check_threads;      /* threads reading the weights for the NaN/Inf check: 0 or 1 one,
                             below 0 all online CPUs (the result never depends on it) */
} sd_model_open_opts;

int sd_model_open_ex(const char *path, const sd_model_open_opts *opts, sd_model_source **out);
/* The file a component's weights come from (the single file for all three), or NULL. */
const char *sd_model_component_file(const sd_model_source *m, sd_component c);

#endif
