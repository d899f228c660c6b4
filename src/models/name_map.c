/* LDM <-> internal tensor names: the tables, and the scan that instantiates the per-block rules
 * for one checkpoint. See name_map.h for the design. */
#include "models/name_map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* ---------------------------------------------------------------------------------------- */
/* Tables                                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* A rename inside a block. An `ldm` ending in '.' matches as a prefix of the rest of the name
 * (the remainder is kept); otherwise it must match the rest exactly. `internal` may contain
 * "{P}", replaced by q, k and v for SD_XFORM_ROWS (a fused tensor split in three). */
typedef struct pair {
  const char *ldm, *internal;
  sd_xform xform;
} pair;

/* A parameter of a plain layer. */
static const pair k_param[] = {{"weight", "weight", SD_XFORM_NONE}, {"bias", "bias", SD_XFORM_NONE}, {0}};
/* A bare tensor (OpenCLIP positional_embedding). */
static const pair k_exact[] = {{"", "", SD_XFORM_NONE}, {0}};

/* UNet ResBlock (LDM ResBlock: in_layers = [GroupNorm, SiLU, conv], emb_layers = [SiLU, Linear],
 * out_layers = [GroupNorm, SiLU, Dropout, conv]). */
static const pair k_unet_resnet[] = {
  {"in_layers.0.", "norm1.", SD_XFORM_NONE},
  {"in_layers.2.", "conv1.", SD_XFORM_NONE},
  {"emb_layers.1.", "time_emb_proj.", SD_XFORM_NONE},
  {"out_layers.0.", "norm2.", SD_XFORM_NONE},
  {"out_layers.3.", "conv2.", SD_XFORM_NONE},
  {"skip_connection.", "conv_shortcut.", SD_XFORM_NONE},
  {0}};

/* UNet SpatialTransformer: LDM and diffusers use the same names inside it. */
static const pair k_unet_transformer[] = {
  {"norm.", "norm.", SD_XFORM_NONE},
  {"proj_in.", "proj_in.", SD_XFORM_NONE},
  {"transformer_blocks.", "transformer_blocks.", SD_XFORM_NONE},
  {"proj_out.", "proj_out.", SD_XFORM_NONE},
  {0}};

/* VAE ResnetBlock. */
static const pair k_vae_resnet[] = {
  {"norm1.", "norm1.", SD_XFORM_NONE},
  {"conv1.", "conv1.", SD_XFORM_NONE},
  {"norm2.", "norm2.", SD_XFORM_NONE},
  {"conv2.", "conv2.", SD_XFORM_NONE},
  {"nin_shortcut.", "conv_shortcut.", SD_XFORM_NONE},
  {0}};

/* VAE mid-block attention: LDM 1x1 convs q/k/v/proj_out -> linear to_q/to_k/to_v/to_out.0. */
static const pair k_vae_attn[] = {
  {"norm.", "group_norm.", SD_XFORM_NONE},
  {"q.", "to_q.", SD_XFORM_SQUEEZE},
  {"k.", "to_k.", SD_XFORM_SQUEEZE},
  {"v.", "to_v.", SD_XFORM_SQUEEZE},
  {"proj_out.", "to_out.0.", SD_XFORM_SQUEEZE},
  {0}};

/* The same attention in a diffusers folder: modern names, and the legacy ones older diffusers
 * versions wrote (query/key/value/proj_attn). */
static const pair k_vae_attn_diffusers[] = {
  {"group_norm.", "group_norm.", SD_XFORM_NONE},
  {"to_q.", "to_q.", SD_XFORM_SQUEEZE},
  {"to_k.", "to_k.", SD_XFORM_SQUEEZE},
  {"to_v.", "to_v.", SD_XFORM_SQUEEZE},
  {"to_out.0.", "to_out.0.", SD_XFORM_SQUEEZE},
  {"query.", "to_q.", SD_XFORM_SQUEEZE},
  {"key.", "to_k.", SD_XFORM_SQUEEZE},
  {"value.", "to_v.", SD_XFORM_SQUEEZE},
  {"proj_attn.", "to_out.0.", SD_XFORM_SQUEEZE},
  {0}};

/* OpenCLIP residual attention block -> HF CLIPEncoderLayer. */
static const pair k_openclip_layer[] = {
  {"ln_1.", "layer_norm1.", SD_XFORM_NONE},
  {"ln_2.", "layer_norm2.", SD_XFORM_NONE},
  {"mlp.c_fc.", "mlp.fc1.", SD_XFORM_NONE},
  {"mlp.c_proj.", "mlp.fc2.", SD_XFORM_NONE},
  {"attn.out_proj.", "self_attn.out_proj.", SD_XFORM_NONE},
  {"attn.in_proj_weight", "self_attn.{P}_proj.weight", SD_XFORM_ROWS},
  {"attn.in_proj_bias", "self_attn.{P}_proj.bias", SD_XFORM_ROWS},
  {0}};

enum { RF_NO_REVERSE = 1, RF_PASSTHROUGH = 2 };

/* A complete prefix pair (no placeholders). inner NULL: the rest of the name is kept as is.
 * internal NULL: the tensors under ldm are ignored for the stated reason. */
typedef struct fixed_rule {
  sd_component comp;
  const char *ldm, *internal;
  const pair *inner;
  sd_ignore_kind ignore;
  int flags;
} fixed_rule;

static const fixed_rule k_fixed[] = {
  /* UNet */
  {SD_COMP_UNET, "model.diffusion_model.time_embed.0.", "time_embedding.linear_1.", k_param, 0, 0},
  {SD_COMP_UNET, "model.diffusion_model.time_embed.2.", "time_embedding.linear_2.", k_param, 0, 0},
  {SD_COMP_UNET, "model.diffusion_model.input_blocks.0.0.", "conv_in.", k_param, 0, 0},
  {SD_COMP_UNET, "model.diffusion_model.out.0.", "conv_norm_out.", k_param, 0, 0},
  {SD_COMP_UNET, "model.diffusion_model.out.2.", "conv_out.", k_param, 0, 0},
  /* diffusers names inside model.diffusion_model.* (diffusers' converter leaves the blocks its
   * hard-coded SD map does not cover, e.g. up_blocks.0.attentions, unrenamed) */
  {SD_COMP_UNET, "model.diffusion_model.down_blocks.", "down_blocks.", NULL, 0, RF_NO_REVERSE | RF_PASSTHROUGH},
  {SD_COMP_UNET, "model.diffusion_model.mid_block.", "mid_block.", NULL, 0, RF_NO_REVERSE | RF_PASSTHROUGH},
  {SD_COMP_UNET, "model.diffusion_model.up_blocks.", "up_blocks.", NULL, 0, RF_NO_REVERSE | RF_PASSTHROUGH},
  /* VAE */
  {SD_COMP_VAE, "first_stage_model.encoder.conv_in.", "encoder.conv_in.", k_param, 0, 0},
  {SD_COMP_VAE, "first_stage_model.encoder.mid.block_1.", "encoder.mid_block.resnets.0.", k_vae_resnet, 0, 0},
  {SD_COMP_VAE, "first_stage_model.encoder.mid.attn_1.", "encoder.mid_block.attentions.0.", k_vae_attn, 0, 0},
  {SD_COMP_VAE, "first_stage_model.encoder.mid.block_2.", "encoder.mid_block.resnets.1.", k_vae_resnet, 0, 0},
  {SD_COMP_VAE, "first_stage_model.encoder.norm_out.", "encoder.conv_norm_out.", k_param, 0, 0},
  {SD_COMP_VAE, "first_stage_model.encoder.conv_out.", "encoder.conv_out.", k_param, 0, 0},
  {SD_COMP_VAE, "first_stage_model.quant_conv.", "quant_conv.", k_param, 0, 0},
  {SD_COMP_VAE, "first_stage_model.post_quant_conv.", "post_quant_conv.", k_param, 0, 0},
  {SD_COMP_VAE, "first_stage_model.decoder.conv_in.", "decoder.conv_in.", k_param, 0, 0},
  {SD_COMP_VAE, "first_stage_model.decoder.mid.block_1.", "decoder.mid_block.resnets.0.", k_vae_resnet, 0, 0},
  {SD_COMP_VAE, "first_stage_model.decoder.mid.attn_1.", "decoder.mid_block.attentions.0.", k_vae_attn, 0, 0},
  {SD_COMP_VAE, "first_stage_model.decoder.mid.block_2.", "decoder.mid_block.resnets.1.", k_vae_resnet, 0, 0},
  {SD_COMP_VAE, "first_stage_model.decoder.norm_out.", "decoder.conv_norm_out.", k_param, 0, 0},
  {SD_COMP_VAE, "first_stage_model.decoder.conv_out.", "decoder.conv_out.", k_param, 0, 0},
  {SD_COMP_VAE, "first_stage_model.loss.", NULL, NULL, SD_IGN_TRAINING, 0},
  /* Text encoder: HF CLIPTextModel (SD 1.x), current and pre-"text_model" transformers layout */
  {SD_COMP_TEXT, "cond_stage_model.transformer.text_model.", "text_model.", NULL, 0, 0},
  {SD_COMP_TEXT, "cond_stage_model.transformer.", "text_model.", NULL, 0, RF_NO_REVERSE},
  /* Text encoder: OpenCLIP (SD 2.x); the resblocks are per-block rules */
  {SD_COMP_TEXT, "cond_stage_model.model.token_embedding.", "text_model.embeddings.token_embedding.", k_param, 0, RF_NO_REVERSE},
  {SD_COMP_TEXT, "cond_stage_model.model.positional_embedding", "text_model.embeddings.position_embedding.weight", k_exact, 0, RF_NO_REVERSE},
  {SD_COMP_TEXT, "cond_stage_model.model.ln_final.", "text_model.final_layer_norm.", k_param, 0, RF_NO_REVERSE},
  {SD_COMP_TEXT, "cond_stage_model.model.text_projection", NULL, NULL, SD_IGN_TEXT_EXTRA, 0},
  {SD_COMP_TEXT, "cond_stage_model.model.logit_scale", NULL, NULL, SD_IGN_TEXT_EXTRA, 0},
  {SD_COMP_TEXT, "cond_stage_model.model.attn_mask", NULL, NULL, SD_IGN_TEXT_EXTRA, 0},
  /* Not part of the inference model */
  {SD_COMP_UNET, "model_ema.", NULL, NULL, SD_IGN_EMA, 0},
};

/* Per-block rules. Placeholders: {K} LDM block index, {S} slot inside it (UNet) or ResNet index
 * (VAE), {L} diffusers level / block, {J} index inside it. Which blocks exist is read off the
 * checkpoint (sd_ldm_map_build) or the configs (canonical layout). */
typedef enum {
  R_UNET_DOWN_RES, R_UNET_DOWN_ATTN, R_UNET_DOWN_SAMPLE,
  R_UNET_MID_RES, R_UNET_MID_ATTN,
  R_UNET_UP_RES, R_UNET_UP_ATTN, R_UNET_UP_SAMPLE,
  R_VAE_DOWN_RES, R_VAE_DOWN_SAMPLE, R_VAE_UP_RES, R_VAE_UP_SAMPLE,
  R_CLIP_LAYER, R_CLIP_LAST,
  R_COUNT
} rule_id;

typedef struct block_rule {
  sd_component comp;
  const char *ldm, *internal;
  const pair *inner;
  sd_ignore_kind ignore;
} block_rule;

static const block_rule k_block[R_COUNT] = {
  [R_UNET_DOWN_RES]    = {SD_COMP_UNET, "model.diffusion_model.input_blocks.{K}.{S}.", "down_blocks.{L}.resnets.{J}.", k_unet_resnet, 0},
  [R_UNET_DOWN_ATTN]   = {SD_COMP_UNET, "model.diffusion_model.input_blocks.{K}.{S}.", "down_blocks.{L}.attentions.{J}.", k_unet_transformer, 0},
  [R_UNET_DOWN_SAMPLE] = {SD_COMP_UNET, "model.diffusion_model.input_blocks.{K}.{S}.op.", "down_blocks.{L}.downsamplers.0.conv.", k_param, 0},
  [R_UNET_MID_RES]     = {SD_COMP_UNET, "model.diffusion_model.middle_block.{S}.", "mid_block.resnets.{J}.", k_unet_resnet, 0},
  [R_UNET_MID_ATTN]    = {SD_COMP_UNET, "model.diffusion_model.middle_block.{S}.", "mid_block.attentions.{J}.", k_unet_transformer, 0},
  [R_UNET_UP_RES]      = {SD_COMP_UNET, "model.diffusion_model.output_blocks.{K}.{S}.", "up_blocks.{L}.resnets.{J}.", k_unet_resnet, 0},
  [R_UNET_UP_ATTN]     = {SD_COMP_UNET, "model.diffusion_model.output_blocks.{K}.{S}.", "up_blocks.{L}.attentions.{J}.", k_unet_transformer, 0},
  [R_UNET_UP_SAMPLE]   = {SD_COMP_UNET, "model.diffusion_model.output_blocks.{K}.{S}.conv.", "up_blocks.{L}.upsamplers.0.conv.", k_param, 0},
  [R_VAE_DOWN_RES]     = {SD_COMP_VAE, "first_stage_model.encoder.down.{K}.block.{S}.", "encoder.down_blocks.{L}.resnets.{J}.", k_vae_resnet, 0},
  [R_VAE_DOWN_SAMPLE]  = {SD_COMP_VAE, "first_stage_model.encoder.down.{K}.downsample.conv.", "encoder.down_blocks.{L}.downsamplers.0.conv.", k_param, 0},
  [R_VAE_UP_RES]       = {SD_COMP_VAE, "first_stage_model.decoder.up.{K}.block.{S}.", "decoder.up_blocks.{L}.resnets.{J}.", k_vae_resnet, 0},
  [R_VAE_UP_SAMPLE]    = {SD_COMP_VAE, "first_stage_model.decoder.up.{K}.upsample.conv.", "decoder.up_blocks.{L}.upsamplers.0.conv.", k_param, 0},
  [R_CLIP_LAYER]       = {SD_COMP_TEXT, "cond_stage_model.model.transformer.resblocks.{K}.", "text_model.encoder.layers.{L}.", k_openclip_layer, 0},
  [R_CLIP_LAST]        = {SD_COMP_TEXT, "cond_stage_model.model.transformer.resblocks.{K}.", NULL, NULL, SD_IGN_TEXT_LAST},
};

const char *sd_ignore_kind_name(sd_ignore_kind k) {
  switch (k) {
    case SD_IGN_EMA: return "EMA copy of the UNet (model_ema.*)";
    case SD_IGN_TRAINING: return "training-only tensors (noise schedule buffers, VAE loss)";
    case SD_IGN_TEXT_EXTRA: return "text-encoder tensors SD does not use (position_ids, text_projection, logit_scale)";
    case SD_IGN_TEXT_LAST: return "the text encoder's last layer (SD 2.x conditions on the penultimate layer; diffusers drops it too)";
    case SD_IGN_UNKNOWN: return "unknown tensors";
    default: return "";
  }
}

/* ---------------------------------------------------------------------------------------- */
/* Instantiated rules                                                                        */
/* ---------------------------------------------------------------------------------------- */

typedef struct inst {
  sd_component comp;
  char ldm[SD_NAME_MAX], internal[SD_NAME_MAX];
  size_t ldm_len, internal_len;
  const pair *inner;
  sd_ignore_kind ignore;
  int flags;
} inst;

struct sd_ldm_map {
  inst *v;
  size_t n, cap;
  int openclip, text_layers;
  int has[SD_COMP_COUNT];
  size_t passthrough;
};

/* Expand {K} {S} {L} {J} in a template. Returns 0, or -1 if it does not fit. */
static int expand(const char *tpl, int K, int S, int L, int J, char *out, size_t cap) {
  size_t o = 0;
  for (const char *p = tpl; *p;) {
    if (p[0] == '{' && p[1] && p[2] == '}') {
      int v = p[1] == 'K' ? K : p[1] == 'S' ? S : p[1] == 'L' ? L : J;
      int w = snprintf(out + o, cap - o, "%d", v);
      if (w < 0 || (size_t)w >= cap - o) return -1;
      o += (size_t)w;
      p += 3;
    } else {
      if (o + 1 >= cap) return -1;
      out[o++] = *p++;
    }
  }
  out[o] = 0;
  return 0;
}

static int add_inst(sd_ldm_map *m, sd_component comp, const char *ldm, const char *internal,
                    const pair *inner, sd_ignore_kind ignore, int flags) {
  if (m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 64;
    inst *v = realloc(m->v, cap * sizeof *v);
    if (!v) return sd_fail(SD_E_NOMEM, "out of memory building the name map");
    m->v = v;
    m->cap = cap;
  }
  inst *r = &m->v[m->n];
  memset(r, 0, sizeof *r);
  r->comp = comp;
  snprintf(r->ldm, sizeof r->ldm, "%s", ldm);
  snprintf(r->internal, sizeof r->internal, "%s", internal ? internal : "");
  r->ldm_len = strlen(r->ldm);
  r->internal_len = strlen(r->internal);
  r->inner = inner;
  r->ignore = ignore;
  r->flags = flags;
  m->n++;
  return SD_OK;
}

static int add_block(sd_ldm_map *m, rule_id id, int K, int S, int L, int J) {
  const block_rule *b = &k_block[id];
  char ldm[SD_NAME_MAX], internal[SD_NAME_MAX] = "";
  if (expand(b->ldm, K, S, L, J, ldm, sizeof ldm) ||
      (b->internal && expand(b->internal, K, S, L, J, internal, sizeof internal)))
    return sd_fail(SD_E_INTERNAL, "name template too long");
  return add_inst(m, b->comp, ldm, b->internal ? internal : NULL, b->inner, b->ignore, 0);
}

static int add_fixed(sd_ldm_map *m, int reverse) {
  for (size_t i = 0; i < sizeof k_fixed / sizeof k_fixed[0]; i++) {
    const fixed_rule *f = &k_fixed[i];
    if (reverse && (f->flags & RF_NO_REVERSE)) continue;
    int rc = add_inst(m, f->comp, f->ldm, f->internal, f->inner, f->ignore, f->flags);
    if (rc) return rc;
  }
  return SD_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Scanning a checkpoint                                                                     */
/* ---------------------------------------------------------------------------------------- */

#define MAX_BLOCKS 128
#define MAX_SLOTS 8
#define MAX_VAE_LEVELS 16
#define MAX_VAE_RES 32

enum { KIND_RES = 1, KIND_OP = 2, KIND_CONV = 4, KIND_ATTN = 8, KIND_OTHER = 16 };

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

/* Parse a non-negative decimal index followed by '.'; returns the index or -1. */
static int parse_index(const char **p, int max) {
  const char *s = *p;
  if (*s < '0' || *s > '9') return -1;
  long v = 0;
  while (*s >= '0' && *s <= '9') {
    v = v * 10 + (*s - '0');
    if (v >= max) return -1;
    s++;
  }
  if (*s != '.') return -1;
  *p = s + 1;
  return (int)v;
}

static int unet_kind(const char *rest) {
  if (starts(rest, "in_layers.") || starts(rest, "out_layers.") || starts(rest, "emb_layers.") ||
      starts(rest, "skip_connection."))
    return KIND_RES;
  if (starts(rest, "op.")) return KIND_OP;
  if (starts(rest, "conv.")) return KIND_CONV;
  if (starts(rest, "norm.") || starts(rest, "proj_in.") || starts(rest, "proj_out.") ||
      starts(rest, "transformer_blocks."))
    return KIND_ATTN;
  return KIND_OTHER;
}

typedef struct scan {
  unsigned char in[MAX_BLOCKS][MAX_SLOTS], out[MAX_BLOCKS][MAX_SLOTS], mid[MAX_SLOTS];
  int any_in, any_out, any_mid;
  unsigned enc_res[MAX_VAE_LEVELS], dec_res[MAX_VAE_LEVELS]; /* bit j: block.j present */
  int enc_down[MAX_VAE_LEVELS], dec_up[MAX_VAE_LEVELS], dec_any[MAX_VAE_LEVELS];
  int clip_blocks;  /* max resblock index + 1 */
  int hf_layers;    /* max HF text layer index + 1 */
} scan;

static const char *kind_name(int k) {
  switch (k) {
    case KIND_RES: return "a ResNet";
    case KIND_OP: return "a downsampler";
    case KIND_CONV: return "an upsampler";
    case KIND_ATTN: return "a transformer";
    default: return "unknown layers";
  }
}

/* K < 0: the middle block (no block index). */
static int check_slot(const char *label, const char *what, int K, int S, unsigned char k) {
  char where[64];
  if (K >= 0) snprintf(where, sizeof where, "%s.%d.%d", what, K, S);
  else snprintf(where, sizeof where, "%s.%d", what, S);
  if (k & KIND_OTHER)
    return sd_fail(SD_E_FORMAT, "%s: model.diffusion_model.%s holds tensors of an unknown layer type",
                   label, where);
  if (k & (k - 1)) {
    int a = k & -k, b = k & ~a;
    return sd_fail(SD_E_FORMAT, "%s: model.diffusion_model.%s mixes %s and %s", label, where,
                   kind_name(a), kind_name(b & -b));
  }
  return SD_OK;
}

static void scan_name(scan *s, const char *name) {
  const char *p;
  int K, S;
  if (starts(name, "model.diffusion_model.input_blocks.")) {
    p = name + strlen("model.diffusion_model.input_blocks.");
    if ((K = parse_index(&p, MAX_BLOCKS)) < 0 || (S = parse_index(&p, MAX_SLOTS)) < 0) return;
    if (K == 0) return; /* conv_in: a fixed rule */
    s->in[K][S] |= (unsigned char)unet_kind(p);
    s->any_in = 1;
  } else if (starts(name, "model.diffusion_model.output_blocks.")) {
    p = name + strlen("model.diffusion_model.output_blocks.");
    if ((K = parse_index(&p, MAX_BLOCKS)) < 0 || (S = parse_index(&p, MAX_SLOTS)) < 0) return;
    s->out[K][S] |= (unsigned char)unet_kind(p);
    s->any_out = 1;
  } else if (starts(name, "model.diffusion_model.middle_block.")) {
    p = name + strlen("model.diffusion_model.middle_block.");
    if ((S = parse_index(&p, MAX_SLOTS)) < 0) return;
    s->mid[S] |= (unsigned char)unet_kind(p);
    s->any_mid = 1;
  } else if (starts(name, "first_stage_model.encoder.down.")) {
    p = name + strlen("first_stage_model.encoder.down.");
    if ((K = parse_index(&p, MAX_VAE_LEVELS)) < 0) return;
    if (starts(p, "block.")) {
      p += 6;
      if ((S = parse_index(&p, MAX_VAE_RES)) >= 0) s->enc_res[K] |= 1u << S;
    } else if (starts(p, "downsample.")) {
      s->enc_down[K] = 1;
    }
  } else if (starts(name, "first_stage_model.decoder.up.")) {
    p = name + strlen("first_stage_model.decoder.up.");
    if ((K = parse_index(&p, MAX_VAE_LEVELS)) < 0) return;
    if (starts(p, "block.")) {
      p += 6;
      if ((S = parse_index(&p, MAX_VAE_RES)) >= 0) { s->dec_res[K] |= 1u << S; s->dec_any[K] = 1; }
    } else if (starts(p, "upsample.")) {
      s->dec_up[K] = 1;
      s->dec_any[K] = 1;
    }
  } else if (starts(name, "cond_stage_model.model.transformer.resblocks.")) {
    p = name + strlen("cond_stage_model.model.transformer.resblocks.");
    if ((K = parse_index(&p, 4096)) >= 0 && K + 1 > s->clip_blocks) s->clip_blocks = K + 1;
  } else if (starts(name, "cond_stage_model.transformer.")) {
    p = name + strlen("cond_stage_model.transformer.");
    if (starts(p, "text_model.")) p += strlen("text_model.");
    if (starts(p, "encoder.layers.")) {
      p += strlen("encoder.layers.");
      if ((K = parse_index(&p, 4096)) >= 0 && K + 1 > s->hf_layers) s->hf_layers = K + 1;
    }
  }
}

/* Walk the UNet blocks in order and instantiate the per-block rules. */
static int build_unet(sd_ldm_map *m, const scan *s, const char *label) {
  int rc;
  int level = 0, j = 0, res_per_level[MAX_BLOCKS] = {0};
  for (int K = 1; K < MAX_BLOCKS; K++) {
    int any = 0;
    for (int S = 0; S < MAX_SLOTS; S++) {
      if (!s->in[K][S]) continue;
      any = 1;
      if ((rc = check_slot(label, "input_blocks", K, S, s->in[K][S]))) return rc;
    }
    if (!any) continue;
    unsigned char k0 = s->in[K][0];
    if (k0 == KIND_OP) {
      for (int S = 1; S < MAX_SLOTS; S++)
        if (s->in[K][S])
          return sd_fail(SD_E_FORMAT, "%s: model.diffusion_model.input_blocks.%d holds a downsampler and more", label, K);
      if (res_per_level[level] == 0)
        return sd_fail(SD_E_FORMAT, "%s: model.diffusion_model.input_blocks.%d: downsampler of a level without ResNets", label, K);
      if ((rc = add_block(m, R_UNET_DOWN_SAMPLE, K, 0, level, 0))) return rc;
      if (++level >= SD_MAX_LEVELS)
        return sd_fail(SD_E_UNSUPPORTED, "%s: the UNet has more than %d levels", label, SD_MAX_LEVELS);
      j = 0;
    } else if (k0 == KIND_RES) {
      if ((rc = add_block(m, R_UNET_DOWN_RES, K, 0, level, j))) return rc;
      for (int S = 1; S < MAX_SLOTS; S++) {
        if (!s->in[K][S]) continue;
        if (S != 1 || s->in[K][S] != KIND_ATTN)
          return sd_fail(SD_E_FORMAT, "%s: model.diffusion_model.input_blocks.%d.%d holds %s where only a transformer (slot 1) may follow a ResNet",
                         label, K, S, kind_name(s->in[K][S]));
        if ((rc = add_block(m, R_UNET_DOWN_ATTN, K, S, level, j))) return rc;
      }
      j++;
      res_per_level[level]++;
    } else {
      return sd_fail(SD_E_FORMAT, "%s: model.diffusion_model.input_blocks.%d starts with %s (expected a ResNet or a downsampler)",
                     label, K, s->in[K][0] ? kind_name(s->in[K][0]) : "nothing");
    }
  }
  int n_levels = res_per_level[level] ? level + 1 : level;
  int lpb = n_levels ? res_per_level[0] : 0;
  for (int i = 1; i < n_levels; i++)
    if (res_per_level[i] != lpb)
      return sd_fail(SD_E_FORMAT, "%s: UNet down level %d has %d ResNets but level 0 has %d", label, i,
                     res_per_level[i], lpb);

  /* middle block: ResNets and transformers in slot order */
  int nr = 0, na = 0;
  for (int S = 0; S < MAX_SLOTS; S++) {
    if (!s->mid[S]) continue;
    if ((rc = check_slot(label, "middle_block", -1, S, s->mid[S]))) return rc;
    if (s->mid[S] == KIND_RES) rc = add_block(m, R_UNET_MID_RES, 0, S, 0, nr++);
    else if (s->mid[S] == KIND_ATTN) rc = add_block(m, R_UNET_MID_ATTN, 0, S, 0, na++);
    else return sd_fail(SD_E_FORMAT, "%s: model.diffusion_model.middle_block.%d holds %s", label, S, kind_name(s->mid[S]));
    if (rc) return rc;
  }

  if (s->any_out && !lpb)
    return sd_fail(SD_E_FORMAT, "%s: the UNet has output_blocks but no input_blocks", label);
  /* output blocks: layers_per_block + 1 ResNets per level; a transformer belongs to the ResNet
   * of its block; an upsampler to the level of the last ResNet seen (diffusers' converter may
   * put it in a block of its own) */
  int count = 0, last_level = -1, last_j = -1, up_seen[MAX_BLOCKS] = {0};
  for (int K = 0; K < MAX_BLOCKS; K++) {
    int has_res = 0;
    for (int S = 0; S < MAX_SLOTS; S++) {
      unsigned char k = s->out[K][S];
      if (!k) continue;
      if ((rc = check_slot(label, "output_blocks", K, S, k))) return rc;
      if (S == 0 && k == KIND_RES) {
        last_level = count / (lpb + 1);
        last_j = count % (lpb + 1);
        count++;
        has_res = 1;
        if ((rc = add_block(m, R_UNET_UP_RES, K, 0, last_level, last_j))) return rc;
      } else if (S > 0 && k == KIND_ATTN && has_res) {
        if ((rc = add_block(m, R_UNET_UP_ATTN, K, S, last_level, last_j))) return rc;
      } else if (S > 0 && k == KIND_CONV && last_level >= 0) {
        if (up_seen[last_level]++)
          return sd_fail(SD_E_FORMAT, "%s: two upsamplers for UNet up level %d (model.diffusion_model.output_blocks.%d.%d)",
                         label, last_level, K, S);
        if ((rc = add_block(m, R_UNET_UP_SAMPLE, K, S, last_level, 0))) return rc;
      } else {
        return sd_fail(SD_E_FORMAT, "%s: model.diffusion_model.output_blocks.%d.%d holds %s where it fits no UNet block rule",
                       label, K, S, kind_name(k));
      }
    }
  }
  return SD_OK;
}

static int build_vae(sd_ldm_map *m, const scan *s) {
  int rc;
  for (int K = 0; K < MAX_VAE_LEVELS; K++) {
    for (int S = 0; S < MAX_VAE_RES; S++)
      if ((s->enc_res[K] >> S) & 1u)
        if ((rc = add_block(m, R_VAE_DOWN_RES, K, S, K, S))) return rc;
    if (s->enc_down[K] && (rc = add_block(m, R_VAE_DOWN_SAMPLE, K, 0, K, 0))) return rc;
  }
  /* decoder.up.K: the highest K is diffusers' up_blocks.0 (LDM numbers the decoder levels by
   * resolution; diffusers in execution order). Ranking rather than N-1-K also reads the files
   * of diffusers' converter, which writes 3-i whatever the number of levels. */
  int rank = 0;
  for (int K = MAX_VAE_LEVELS - 1; K >= 0; K--) {
    if (!s->dec_any[K]) continue;
    for (int S = 0; S < MAX_VAE_RES; S++)
      if ((s->dec_res[K] >> S) & 1u)
        if ((rc = add_block(m, R_VAE_UP_RES, K, S, rank, S))) return rc;
    if (s->dec_up[K] && (rc = add_block(m, R_VAE_UP_SAMPLE, K, 0, rank, 0))) return rc;
    rank++;
  }
  return SD_OK;
}

int sd_ldm_map_build(const char *const *names, size_t n, const char *label, sd_ldm_map **out) {
  *out = NULL;
  if (!label) label = "checkpoint";
  scan *s = calloc(1, sizeof *s);
  sd_ldm_map *m = calloc(1, sizeof *m);
  int rc = SD_OK;
  if (!s || !m) { rc = sd_fail(SD_E_NOMEM, "out of memory"); goto done; }
  for (size_t i = 0; i < n; i++) {
    scan_name(s, names[i]);
    if (starts(names[i], "model.diffusion_model.")) {
      m->has[SD_COMP_UNET] = 1;
      const char *r = names[i] + strlen("model.diffusion_model.");
      if (starts(r, "down_blocks.") || starts(r, "mid_block.") || starts(r, "up_blocks.")) m->passthrough++;
    } else if (starts(names[i], "first_stage_model.") && !starts(names[i], "first_stage_model.loss.")) {
      m->has[SD_COMP_VAE] = 1;
    } else if (starts(names[i], "cond_stage_model.transformer.")) {
      m->has[SD_COMP_TEXT] = 1;
    } else if (starts(names[i], "cond_stage_model.model.")) {
      m->has[SD_COMP_TEXT] = 1;
      m->openclip = 1;
    }
  }
  if ((rc = add_fixed(m, 0))) goto done;
  if ((rc = build_unet(m, s, label))) goto done;
  if ((rc = build_vae(m, s))) goto done;
  if (m->openclip) {
    /* keep resblocks 0..n-2; the last one is what SD 2.x skips */
    for (int K = 0; K < s->clip_blocks; K++)
      if ((rc = add_block(m, K + 1 < s->clip_blocks ? R_CLIP_LAYER : R_CLIP_LAST, K, 0, K, 0))) goto done;
    m->text_layers = s->clip_blocks;
  } else {
    m->text_layers = s->hf_layers;
  }
done:
  free(s);
  if (rc) { sd_ldm_map_free(m); return rc; }
  *out = m;
  return SD_OK;
}

void sd_ldm_map_free(sd_ldm_map *m) {
  if (!m) return;
  free(m->v);
  free(m);
}

int sd_ldm_map_text_is_openclip(const sd_ldm_map *m) { return m->openclip; }
int sd_ldm_map_text_layers_in_file(const sd_ldm_map *m) { return m->text_layers; }
int sd_ldm_map_has(const sd_ldm_map *m, sd_component c) {
  return (unsigned)c < SD_COMP_COUNT ? m->has[c] : 0;
}
size_t sd_ldm_map_passthrough_count(const sd_ldm_map *m) { return m->passthrough; }

/* ---------------------------------------------------------------------------------------- */
/* Mapping one name                                                                          */
/* ---------------------------------------------------------------------------------------- */

static const pair *match_inner(const pair *inner, const char *rest, int reverse) {
  for (const pair *p = inner; p->ldm; p++) {
    const char *key = reverse ? p->internal : p->ldm;
    size_t n = strlen(key);
    if (reverse && p->xform == SD_XFORM_ROWS) continue;
    if (n && key[n - 1] == '.') {
      if (strncmp(rest, key, n) == 0 && rest[n]) return p;
    } else if (strcmp(rest, key) == 0) {
      return p;
    }
  }
  return NULL;
}

/* Compose prefix + replacement + tail, with {P} replaced by qkv. -1 if it does not fit. */
static int compose(char *out, size_t cap, const char *prefix, const char *repl, const char *tail,
                   const char *qkv) {
  char tmp[SD_NAME_MAX];
  const char *ph = qkv ? strstr(repl, "{P}") : NULL;
  if (ph) {
    int w = snprintf(tmp, sizeof tmp, "%.*s%s%s", (int)(ph - repl), repl, qkv, ph + 3);
    if (w < 0 || (size_t)w >= sizeof tmp) return -1;
    repl = tmp;
  }
  int w = snprintf(out, cap, "%s%s%s", prefix, repl, tail);
  return (w < 0 || (size_t)w >= cap) ? -1 : 0;
}

/* The longest rule whose key (ldm or internal) is a prefix of name. */
static const inst *find_rule(const sd_ldm_map *m, const char *name, int reverse, sd_component comp) {
  const inst *best = NULL;
  size_t best_len = 0;
  for (size_t i = 0; i < m->n; i++) {
    const inst *r = &m->v[i];
    const char *key = reverse ? r->internal : r->ldm;
    size_t len = reverse ? r->internal_len : r->ldm_len;
    if (reverse && (r->comp != comp || r->ignore)) continue;
    if (len > best_len && strncmp(name, key, len) == 0) {
      best = r;
      best_len = len;
    }
  }
  return best;
}

int sd_ldm_map_name(const sd_ldm_map *m, const char *name, sd_mapped_name out[3], sd_ignore_kind *ign) {
  *ign = SD_IGN_NONE;
  const inst *r = find_rule(m, name, 0, 0);
  if (!r) {
    *ign = strchr(name, '.') ? SD_IGN_UNKNOWN : SD_IGN_TRAINING;
    return 0;
  }
  if (r->ignore) { *ign = r->ignore; return 0; }
  const char *rest = name + r->ldm_len;
  int n = 1;
  if (!r->inner) {
    if (!*rest || compose(out[0].name, sizeof out[0].name, r->internal, rest, "", NULL)) {
      *ign = SD_IGN_UNKNOWN;
      return 0;
    }
    out[0].xform = SD_XFORM_NONE;
  } else {
    const pair *p = match_inner(r->inner, rest, 0);
    if (!p) { *ign = SD_IGN_UNKNOWN; return 0; }
    const char *tail = rest + strlen(p->ldm);
    if (p->xform == SD_XFORM_ROWS) {
      static const char *const qkv[3] = {"q", "k", "v"};
      for (int i = 0; i < 3; i++) {
        if (compose(out[i].name, sizeof out[i].name, r->internal, p->internal, tail, qkv[i])) {
          *ign = SD_IGN_UNKNOWN;
          return 0;
        }
        out[i].xform = SD_XFORM_ROWS;
        out[i].part = i;
        out[i].nparts = 3;
      }
      n = 3;
    } else {
      if (compose(out[0].name, sizeof out[0].name, r->internal, p->internal, tail, NULL)) {
        *ign = SD_IGN_UNKNOWN;
        return 0;
      }
      out[0].xform = p->xform;
    }
  }
  for (int i = 0; i < n; i++) {
    out[i].comp = r->comp;
    if (out[i].xform != SD_XFORM_ROWS) out[i].part = 0, out[i].nparts = 1;
  }
  if (r->comp == SD_COMP_TEXT && strcmp(out[0].name, "text_model.embeddings.position_ids") == 0) {
    *ign = SD_IGN_TEXT_EXTRA;
    return 0;
  }
  return n;
}

int sd_diffusers_map_name(sd_component c, const char *name, sd_mapped_name *out, sd_ignore_kind *ign) {
  *ign = SD_IGN_NONE;
  memset(out, 0, sizeof *out);
  out->comp = c;
  out->nparts = 1;
  if (c == SD_COMP_TEXT && strcmp(name, "text_model.embeddings.position_ids") == 0) {
    *ign = SD_IGN_TEXT_EXTRA;
    return 0;
  }
  if (c == SD_COMP_VAE) {
    static const char *const mids[] = {"encoder.mid_block.attentions.0.", "decoder.mid_block.attentions.0."};
    for (int i = 0; i < 2; i++) {
      size_t n = strlen(mids[i]);
      if (strncmp(name, mids[i], n) != 0) continue;
      const pair *p = match_inner(k_vae_attn_diffusers, name + n, 0);
      if (!p) break;
      if (compose(out->name, sizeof out->name, mids[i], p->internal, name + n + strlen(p->ldm), NULL))
        break;
      out->xform = p->xform;
      return 1;
    }
  }
  if (strlen(name) >= sizeof out->name) { *ign = SD_IGN_UNKNOWN; return 0; }
  strcpy(out->name, name);
  return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Canonical LDM layout (internal -> LDM)                                                    */
/* ---------------------------------------------------------------------------------------- */

static int build_canonical(sd_ldm_map *m, const sd_unet_config *u, const sd_vae_config *v) {
  int rc;
  if ((rc = add_fixed(m, 1))) return rc;
  if (u && u->n_levels > 0) {
    int N = u->n_levels, L = u->layers_per_block, K = 1;
    for (int i = 0; i < N; i++) {
      for (int j = 0; j < L; j++, K++) {
        if ((rc = add_block(m, R_UNET_DOWN_RES, K, 0, i, j))) return rc;
        if (u->down_has_attn[i] && (rc = add_block(m, R_UNET_DOWN_ATTN, K, 1, i, j))) return rc;
      }
      if (i < N - 1 && (rc = add_block(m, R_UNET_DOWN_SAMPLE, K++, 0, i, 0))) return rc;
    }
    int S = 0;
    if ((rc = add_block(m, R_UNET_MID_RES, 0, S++, 0, 0))) return rc;
    if (u->mid_has_attn && (rc = add_block(m, R_UNET_MID_ATTN, 0, S++, 0, 0))) return rc;
    if ((rc = add_block(m, R_UNET_MID_RES, 0, S, 0, 1))) return rc;
    K = 0;
    for (int i = 0; i < N; i++) {
      for (int j = 0; j <= L; j++, K++) {
        int slot = 1;
        if ((rc = add_block(m, R_UNET_UP_RES, K, 0, i, j))) return rc;
        if (u->up_has_attn[i] && (rc = add_block(m, R_UNET_UP_ATTN, K, slot++, i, j))) return rc;
        if (j == L && i < N - 1 && (rc = add_block(m, R_UNET_UP_SAMPLE, K, slot, i, 0))) return rc;
      }
    }
  }
  if (v && v->n_levels > 0) {
    int N = v->n_levels, L = v->layers_per_block;
    for (int i = 0; i < N; i++) {
      for (int j = 0; j < L; j++)
        if ((rc = add_block(m, R_VAE_DOWN_RES, i, j, i, j))) return rc;
      if (i < N - 1 && (rc = add_block(m, R_VAE_DOWN_SAMPLE, i, 0, i, 0))) return rc;
      for (int j = 0; j <= L; j++)
        if ((rc = add_block(m, R_VAE_UP_RES, N - 1 - i, j, i, j))) return rc;
      if (i < N - 1 && (rc = add_block(m, R_VAE_UP_SAMPLE, N - 1 - i, 0, i, 0))) return rc;
    }
  }
  return SD_OK;
}

int sd_ldm_canonical_name(sd_component c, const char *internal, const sd_unet_config *unet,
                          const sd_vae_config *vae, char *out, size_t cap, sd_xform *xform) {
  sd_ldm_map m;
  memset(&m, 0, sizeof m);
  int rc = build_canonical(&m, unet, vae);
  if (rc) { free(m.v); return rc; }
  *xform = SD_XFORM_NONE;
  const inst *r = find_rule(&m, internal, 1, c);
  rc = SD_OK;
  if (!r) {
    rc = sd_fail(SD_E_ARG, "no LDM name for %s tensor %s", sd_component_name(c), internal);
  } else {
    const char *rest = internal + r->internal_len;
    if (!r->inner) {
      if (!*rest || compose(out, cap, r->ldm, rest, "", NULL))
        rc = sd_fail(SD_E_ARG, "no LDM name for %s tensor %s", sd_component_name(c), internal);
    } else {
      const pair *p = match_inner(r->inner, rest, 1);
      if (!p || compose(out, cap, r->ldm, p->ldm, rest + strlen(p->internal), NULL))
        rc = sd_fail(SD_E_ARG, "no LDM name for %s tensor %s", sd_component_name(c), internal);
      else
        *xform = p->xform;
    }
  }
  free(m.v);
  return rc;
}
