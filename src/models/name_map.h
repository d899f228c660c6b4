/* LDM (original CompVis / Stability single-file) <-> internal (diffusers / transformers) tensor
 * names, as tables.
 *
 * The rules are those of diffusers' scripts/convert_diffusers_to_original_stable_diffusion.py
 * and pipelines/stable_diffusion/convert_from_ckpt.py, written down as data:
 *
 *  - fixed pairs (UNet time_embed.0 <-> time_embedding.linear_1, out.2 <-> conv_out, VAE
 *    norm_out <-> conv_norm_out, text prefixes, OpenCLIP embeddings, ...);
 *  - inner renames applied inside one block (ResNet in_layers.0 <-> norm1, ...; VAE attention
 *    q <-> to_q, proj_out <-> to_out.0, ...; OpenCLIP ln_1 <-> layer_norm1, ...);
 *  - per-block rules with placeholders ({K}: LDM block index, {S}: slot inside the LDM block,
 *    {L}: diffusers level, {J}: index inside the level), e.g.
 *      "input_blocks.{K}.{S}."  <->  "down_blocks.{L}.resnets.{J}."   (inner: ResNet renames)
 *
 * The LDM block numbering depends on the number of levels, the layers per level and which
 * levels have attention, none of which a single file states. sd_ldm_map_build() therefore
 * reads the block structure off the names present (which input_blocks.K.S hold a ResNet, a
 * downsampler "op" or a transformer; the same for output_blocks, middle_block and the VAE's
 * encoder.down.I / decoder.up.K) and instantiates the per-block rules for exactly those blocks.
 * That covers the 4-level SD 1.x/2.x layout (input block stride layers+1), the small 2-level
 * golden models, and the files written by diffusers' own converter for non-SD-sized models
 * (it hard-codes SD's stride 3 and decoder index 3-i and leaves up_blocks.0.attentions in
 * diffusers names; those are accepted as they are).
 *
 * Mapped tensors are views: a name may come with a transform, SD_XFORM_SQUEEZE (drop the
 * trailing 1x1 of a [C,C,1,1] conv weight: VAE attention) or SD_XFORM_ROWS (rows
 * part*R..(part+1)*R-1 of a fused [3R, ...] tensor: OpenCLIP in_proj -> q/k/v).
 */
#ifndef SD_MODELS_NAME_MAP_H
#define SD_MODELS_NAME_MAP_H

#include <stddef.h>

#include "models/model_types.h"

#define SD_NAME_MAX 192

typedef enum {
  SD_XFORM_NONE = 0,
  SD_XFORM_SQUEEZE, /* [C,C,1,1] or [C,C,1] -> [C,C]; other shapes unchanged */
  SD_XFORM_ROWS     /* rows [part*R, (part+1)*R) of a tensor with nparts*R rows */
} sd_xform;

typedef struct sd_mapped_name {
  sd_component comp;
  char name[SD_NAME_MAX]; /* internal name */
  sd_xform xform;
  int part, nparts;       /* SD_XFORM_ROWS only */
} sd_mapped_name;

/* What sd_ldm_map_name() says about a name it does not map to a model tensor. */
typedef enum {
  SD_IGN_NONE = 0,
  SD_IGN_EMA,          /* model_ema.* : EMA copy of the UNet weights */
  SD_IGN_TRAINING,     /* top-level buffers: betas, alphas_cumprod, ...; first_stage_model.loss.* */
  SD_IGN_TEXT_EXTRA,   /* position_ids, OpenCLIP text_projection / logit_scale / attn_mask */
  SD_IGN_TEXT_LAST,    /* OpenCLIP's last resblock: SD 2.x uses the penultimate layer */
  SD_IGN_UNKNOWN,      /* anything else */
  SD_IGN_COUNT
} sd_ignore_kind;

const char *sd_ignore_kind_name(sd_ignore_kind k);

/* The mapping generated for one single-file checkpoint. */
typedef struct sd_ldm_map sd_ldm_map;

/* Scan the names of a single-file checkpoint and generate its mapping. Errors (SD_E_FORMAT)
 * for block structures that fit no rule (a block holding both a ResNet and a downsampler,
 * levels with different numbers of ResNets, ...); label names the file in messages. */
int sd_ldm_map_build(const char *const *names, size_t n, const char *label, sd_ldm_map **out);
void sd_ldm_map_free(sd_ldm_map *m);

/* Map one name of the checkpoint. Returns the number of internal tensors it gives (1, or 3
 * for a fused in_proj), or 0 when it is not a model tensor (*ign says why). */
int sd_ldm_map_name(const sd_ldm_map *m, const char *ldm_name, sd_mapped_name out[3],
                    sd_ignore_kind *ign);

/* Facts the scan established (for hyper-parameter inference and family detection). */
int sd_ldm_map_text_is_openclip(const sd_ldm_map *m); /* cond_stage_model.model.* present */
int sd_ldm_map_text_layers_in_file(const sd_ldm_map *m); /* resblocks / layers in the file */
int sd_ldm_map_has(const sd_ldm_map *m, sd_component c);
/* Number of diffusers-named UNet tensors found inside model.diffusion_model.* (diffusers'
 * converter leaves some unrenamed); they are accepted as they are. */
size_t sd_ldm_map_passthrough_count(const sd_ldm_map *m);

/* Internal name of a tensor stored in a diffusers folder: identity except the VAE attention,
 * whose legacy names (query/key/value/proj_attn) become to_q/to_k/to_v/to_out.0, with
 * SD_XFORM_SQUEEZE for any [C,C,1,1] weight. Returns 1, or 0 for names to ignore
 * (text_model.embeddings.position_ids). */
int sd_diffusers_map_name(sd_component c, const char *name, sd_mapped_name *out,
                          sd_ignore_kind *ign);

/* The canonical LDM name of an internal name (the layout the original LDM code writes: input
 * block stride layers_per_block+1, upsampler in slot 1 + has-attention, decoder.up.{levels-1-i},
 * cond_stage_model.transformer.text_model.* for the text encoder), for the model structure
 * given by the configs. *xform tells how the LDM tensor differs (SQUEEZE: the LDM tensor is
 * [C,C,1,1]). Returns SD_OK or SD_E_ARG for a name outside the structure. For tests and
 * writers. */
int sd_ldm_canonical_name(sd_component c, const char *internal, const sd_unet_config *unet,
                          const sd_vae_config *vae, char *out, size_t cap, sd_xform *xform);

#endif
