/* Hyper-parameters inferred from the weights' names and shapes, and the model family from
 * the signals of the text encoder and the UNet (models/model_source_internal.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "models/config.h"
#include "models/model_source_internal.h"

/* ---------------------------------------------------------------------------------------- */
/* Inference from shapes                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* Number of indices N such that some weight starts with prefix + "N." (max N + 1). */
static int count_index(const sd_component_weights *cw, const char *prefix) {
  size_t n = strlen(prefix);
  int best = 0;
  for (size_t i = 0; i < cw->n; i++) {
    const char *s = cw->w[i].name;
    if (strncmp(s, prefix, n) != 0) continue;
    s += n;
    if (*s < '0' || *s > '9') continue;
    long v = 0;
    while (*s >= '0' && *s <= '9' && v < 100000) v = v * 10 + (*s++ - '0');
    if (*s == '.' && v + 1 > best) best = (int)(v + 1);
  }
  return best;
}

static int has_prefix(const sd_component_weights *cw, const char *prefix) {
  size_t n = strlen(prefix);
  for (size_t i = 0; i < cw->n; i++)
    if (strncmp(cw->w[i].name, prefix, n) == 0) return 1;
  return 0;
}

/* The weight named name with ndim dims, or an error naming what it was needed for. */
static int need(const sd_model_source *m, sd_component c, const char *name, int ndim, const char *what,
                const sd_tensor **out) {
  *out = NULL;
  const sd_weight *w = sd_model_find_w(&m->w[c], name);
  if (!w)
    return sd_fail(SD_E_FORMAT, "%s: cannot infer the %s %s: tensor %s is missing", m->file[c], sd_component_name(c), what, name);
  if (w->t.ndim != ndim) {
    char sh[96];
    return sd_fail(SD_E_FORMAT, "%s: cannot infer the %s %s: tensor %s (stored as %s) has shape %s, expected %d dimensions",
                   m->file[c], sd_component_name(c), what, name, w->source_name, sd_shape_str(&w->t, sh, sizeof sh), ndim);
  }
  *out = &w->t;
  return SD_OK;
}

static int dim_ok(int64_t v) { return v >= 1 && v <= (1 << 22); }

int sd_model_infer_text(sd_model_source *m, int openclip, sd_clip_text_config *c) {
  const sd_tensor *tok, *pos, *fc1;
  int rc;
  memset(c, 0, sizeof *c);
  if ((rc = need(m, SD_COMP_TEXT, "text_model.embeddings.token_embedding.weight", 2, "vocabulary and width", &tok)) ||
      (rc = need(m, SD_COMP_TEXT, "text_model.embeddings.position_embedding.weight", 2, "context length", &pos)) ||
      (rc = need(m, SD_COMP_TEXT, "text_model.encoder.layers.0.mlp.fc1.weight", 2, "MLP width", &fc1)))
    return rc;
  if (!dim_ok(tok->shape[0]) || !dim_ok(tok->shape[1]) || !dim_ok(pos->shape[0]) || !dim_ok(fc1->shape[0]))
    return sd_fail(SD_E_FORMAT, "%s: text encoder embedding sizes out of range", m->file[SD_COMP_TEXT]);
  c->vocab_size = (int)tok->shape[0];
  c->hidden = (int)tok->shape[1];
  c->max_positions = (int)pos->shape[0];
  c->intermediate = (int)fc1->shape[0];
  c->layers = count_index(&m->w[SD_COMP_TEXT], "text_model.encoder.layers.");
  c->act = openclip ? SD_ACT_GELU : SD_ACT_QUICK_GELU;
  c->ln_eps = 1e-5f;
  c->heads = c->hidden % 64 == 0 ? c->hidden / 64 : 1;
  if (c->hidden != 768 && c->hidden != 1024 && (rc = sd_model_problem_add(m,
        "text_encoder: width %d is not CLIP ViT-L's (768) or OpenCLIP ViT-H's (1024); the number of heads cannot be "
        "read from the weights: assuming %d (head dim %d); pass a diffusers folder with --config to set it", c->hidden, c->heads,
        c->hidden / c->heads)))
    return rc;
  if (c->vocab_size == 49408) {
    c->bos_id = 49406;
    c->eos_id = 49407;
    c->pad_id = openclip ? 0 : 49407;
  } else {
    c->bos_id = 0, c->eos_id = 2, c->pad_id = 1;
    if (c->vocab_size < 3) c->bos_id = c->eos_id = c->pad_id = 0;
    if ((rc = sd_model_problem_add(m, "text_encoder: vocabulary of %d tokens is not CLIP's (49408): the bos/eos/pad ids cannot be "
                         "read from the weights: assuming transformers' defaults %d/%d/%d", c->vocab_size,
                      (int)c->bos_id, (int)c->eos_id, (int)c->pad_id)))
      return rc;
  }
  return sd_text_config_check(c, m->file[SD_COMP_TEXT]);
}

/* Cross-attention width and projection kind of the first transformer of the UNet. */
static void unet_signals(const sd_component_weights *cw, int *ctx, int *linear, int *depth, char *first, size_t cap) {
  *ctx = 0, *linear = -1, *depth = 0;
  if (first) first[0] = 0;
  for (size_t i = 0; i < cw->n; i++) {
    const char *s = cw->w[i].name;
    const char *k = strstr(s, "transformer_blocks.0.attn2.to_k.weight");
    if (k && !*ctx && cw->w[i].t.ndim == 2) {
      *ctx = (int)cw->w[i].t.shape[1];
      if (first) snprintf(first, cap, "%.*s", (int)(k - s), s);
    }
    if (sd_model_ends_with(s, ".proj_in.weight") && *linear < 0) *linear = cw->w[i].t.ndim == 2;
  }
  if (*linear < 0) *linear = 0;
  if (first && first[0]) {
    char p[256];
    snprintf(p, sizeof p, "%stransformer_blocks.", first);
    *depth = count_index(cw, p);
  }
}

int sd_model_infer_unet(sd_model_source *m, sd_family fam, sd_unet_config *c) {
  const sd_component_weights *cw = &m->w[SD_COMP_UNET];
  const sd_tensor *cin, *cout, *t1, *t;
  int rc;
  memset(c, 0, sizeof *c);
  if ((rc = need(m, SD_COMP_UNET, "conv_in.weight", 4, "input channels", &cin)) ||
      (rc = need(m, SD_COMP_UNET, "conv_out.weight", 4, "output channels", &cout)) ||
      (rc = need(m, SD_COMP_UNET, "time_embedding.linear_1.weight", 2, "time embedding", &t1)))
    return rc;
  if (!dim_ok(cin->shape[1]) || !dim_ok(cout->shape[0]) || !dim_ok(t1->shape[0]) || !dim_ok(t1->shape[1]))
    return sd_fail(SD_E_FORMAT, "%s: UNet sizes out of range", m->file[SD_COMP_UNET]);
  c->in_channels = (int)cin->shape[1];
  c->out_channels = (int)cout->shape[0];
  c->time_embed_dim = (int)t1->shape[0];
  c->time_embed_in = (int)t1->shape[1];
  c->n_levels = count_index(cw, "down_blocks.");
  if (c->n_levels < 1 || c->n_levels > SD_MAX_LEVELS)
    return sd_fail(SD_E_FORMAT, "%s: the UNet has %d down levels (1..%d supported)", m->file[SD_COMP_UNET], c->n_levels, SD_MAX_LEVELS);
  c->layers_per_block = count_index(cw, "down_blocks.0.resnets.");
  for (int i = 0; i < c->n_levels; i++) {
    char name[96];
    snprintf(name, sizeof name, "down_blocks.%d.resnets.0.conv1.weight", i);
    if ((rc = need(m, SD_COMP_UNET, name, 4, "level widths", &t))) return rc;
    if (!dim_ok(t->shape[0])) return sd_fail(SD_E_FORMAT, "%s: UNet width out of range", m->file[SD_COMP_UNET]);
    c->block_out_channels[i] = (int)t->shape[0];
    snprintf(name, sizeof name, "down_blocks.%d.attentions.0.", i);
    c->down_has_attn[i] = has_prefix(cw, name);
    snprintf(name, sizeof name, "up_blocks.%d.attentions.0.", i);
    c->up_has_attn[i] = has_prefix(cw, name);
  }
  c->mid_has_attn = has_prefix(cw, "mid_block.attentions.0.");
  int linear;
  unet_signals(cw, &c->cross_attention_dim, &linear, &c->transformer_layers, NULL, 0);
  c->use_linear_projection = linear;
  if (!c->cross_attention_dim) c->cross_attention_dim = 768; /* no attention at all: unused */
  if (!c->transformer_layers) c->transformer_layers = 1;
  int std = 1;
  for (int i = 0; i < c->n_levels; i++) {
    int ch = c->block_out_channels[i];
    if (fam == SD_FAMILY_SD2) {
      c->heads[i] = ch % 64 == 0 ? ch / 64 : 1;   /* SD 2.x: head dim 64 */
      std &= ch % 64 == 0;
    } else {
      c->heads[i] = ch % 8 == 0 ? 8 : 1;           /* SD 1.x: 8 heads */
      std &= ch % 8 == 0;
    }
    c->head_dim[i] = ch / c->heads[i];
  }
  if (!std && (rc = sd_model_problem_add(m, "unet: widths do not fit the %s head rule; some levels use 1 head", sd_family_name(fam))))
    return rc;
  c->norm_num_groups = 32;
  c->norm_eps = 1e-5f;
  c->flip_sin_to_cos = 1;
  c->freq_shift = 0;
  c->sample_size = 64;
  return SD_OK;
}

int sd_model_infer_vae(sd_model_source *m, sd_vae_config *c) {
  const sd_component_weights *cw = &m->w[SD_COMP_VAE];
  const sd_tensor *cin, *din, *dout, *t;
  int rc;
  memset(c, 0, sizeof *c);
  if ((rc = need(m, SD_COMP_VAE, "encoder.conv_in.weight", 4, "input channels", &cin)) ||
      (rc = need(m, SD_COMP_VAE, "decoder.conv_in.weight", 4, "latent channels", &din)) ||
      (rc = need(m, SD_COMP_VAE, "decoder.conv_out.weight", 4, "output channels", &dout)))
    return rc;
  if (!dim_ok(cin->shape[1]) || !dim_ok(din->shape[1]) || !dim_ok(dout->shape[0]))
    return sd_fail(SD_E_FORMAT, "%s: VAE sizes out of range", m->file[SD_COMP_VAE]);
  c->in_channels = (int)cin->shape[1];
  c->latent_channels = (int)din->shape[1];
  c->out_channels = (int)dout->shape[0];
  c->n_levels = count_index(cw, "encoder.down_blocks.");
  if (c->n_levels < 1 || c->n_levels > SD_MAX_LEVELS)
    return sd_fail(SD_E_FORMAT, "%s: the VAE encoder has %d levels (1..%d supported)", m->file[SD_COMP_VAE], c->n_levels, SD_MAX_LEVELS);
  c->layers_per_block = count_index(cw, "encoder.down_blocks.0.resnets.");
  for (int i = 0; i < c->n_levels; i++) {
    char name[96];
    snprintf(name, sizeof name, "encoder.down_blocks.%d.resnets.0.conv1.weight", i);
    if ((rc = need(m, SD_COMP_VAE, name, 4, "level widths", &t))) return rc;
    if (!dim_ok(t->shape[0])) return sd_fail(SD_E_FORMAT, "%s: VAE width out of range", m->file[SD_COMP_VAE]);
    c->block_out_channels[i] = (int)t->shape[0];
  }
  c->norm_num_groups = 32;
  c->scaling_factor = 0.18215f;
  c->sample_size = 512;
  return SD_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Family                                                                                    */
/* ---------------------------------------------------------------------------------------- */

int sd_model_detect_family(sd_model_source *m, int openclip) {
  int has_text = m->w[SD_COMP_TEXT].present, has_unet = m->w[SD_COMP_UNET].present;
  int ctx = 0, linear = 0, depth = 0;
  if (has_unet) unet_signals(&m->w[SD_COMP_UNET], &ctx, &linear, &depth, NULL, 0);
  int text_gelu = has_text && (openclip || m->text.act == SD_ACT_GELU);
  sd_family f = SD_FAMILY_UNKNOWN;
  int rc = SD_OK;
  if (has_unet && (ctx == 768 || ctx == 1024)) {
    f = ctx == 768 ? SD_FAMILY_SD1 : SD_FAMILY_SD2;
    int sd2_text = text_gelu, sd2_unet = linear;
    if (has_text && sd2_text != (f == SD_FAMILY_SD2))
      rc = sd_model_problem_add(m, "family: %s by the cross-attention width %d, but the text encoder is %s", sd_family_name(f),
                   ctx, text_gelu ? "OpenCLIP-like (GELU)" : "CLIP-L-like (quick_gelu)");
    else if (sd2_unet != (f == SD_FAMILY_SD2))
      rc = sd_model_problem_add(m, "family: %s by the cross-attention width %d, but the UNet uses %s projections", sd_family_name(f),
                   ctx, linear ? "linear" : "1x1 conv");
  } else if (has_text) {
    f = text_gelu ? SD_FAMILY_SD2 : SD_FAMILY_SD1;
    if (text_gelu)
      rc = sd_model_problem_add(m, "family: cross-attention width %d is neither 768 (SD 1.x) nor 1024 (SD 2.x); the text encoder is "
                      "OpenCLIP-like (%s, gelu, pad %d), so SD 2.x rules apply", ctx,
                   openclip ? "OpenCLIP names" : "HF names", (int)m->text.pad_id);
    else
      rc = sd_model_problem_add(m, "family: cross-attention width %d is neither 768 (SD 1.x) nor 1024 (SD 2.x); the text encoder is "
                      "CLIP-L-like (HF CLIP names, quick_gelu, pad %d), so SD 1.x rules apply", ctx, (int)m->text.pad_id);
  } else if (has_unet) {
    f = linear ? SD_FAMILY_SD2 : SD_FAMILY_SD1;
    rc = sd_model_problem_add(m, "family: no text encoder and cross-attention width %d; %s transformer projections, so %s rules apply",
                 ctx, linear ? "linear" : "1x1 conv", sd_family_name(f));
  }
  m->family = f;
  return rc;
}

