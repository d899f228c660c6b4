/* Model hyper-parameters: config.json parsing, consistency checks, implied tensor lists. */
#include "models/config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/json_util.h"

/* Sanity bounds: generous for any SD-like model, small enough that products cannot overflow. */
#define MAX_WIDTH (1 << 16)
#define MAX_VOCAB (1 << 22)
#define MAX_LAYERS 1024

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static const char *lbl(const char *label) { return label ? label : "<json>"; }

/* A key diffusers allows as a number or a list: out gets n values (n = 1 for a number).
 * Absent/null: SD_OK with *n = 0. */
static int get_int_or_list(const json_t *o, const char *key, const char *label, int min, int max,
                           int *out, int max_n, int *n) {
  *n = 0;
  if (!sd_json_has(o, key)) return SD_OK;
  if (json_is_array(json_object_get(o, key)))
    return sd_json_get_int_array_ex(o, key, label, min, max, out, max_n, n, 1);
  int rc = sd_json_get_i32(o, key, label, min, max, out, 1);
  if (rc == SD_OK) *n = 1;
  return rc;
}

/* Reduce a number-or-list to one value (all elements equal), for fields the engine holds as a
 * single number. */
static int one_value(const char *key, const char *label, const int *v, int n, int *out) {
  for (int i = 1; i < n; i++)
    if (v[i] != v[0])
      return sd_fail(SD_E_UNSUPPORTED, "%s: key '%s': different values per block (%d, %d) are not supported",
                     lbl(label), key, v[0], v[i]);
  if (n > 0) *out = v[0];
  return SD_OK;
}

typedef enum { EXP_NULL, EXP_FALSE, EXP_STR, EXP_NUM } exp_kind;
typedef struct fixed_key {
  const char *key;
  exp_kind kind;
  const char *str;
  double num;
} fixed_key;

/* Keys that, set away from their default, change the architecture into something that is not
 * an SD 1.x/2.x component. Absent or null means the default. */
static int check_fixed_keys(const json_t *o, const char *label, const char *what, const fixed_key *keys, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const fixed_key *k = &keys[i];
    const json_t *v = json_object_get(o, k->key);
    if (!v || json_is_null(v)) continue;
    int ok;
    switch (k->kind) {
      case EXP_NULL: ok = 0; break;
      case EXP_FALSE: ok = json_is_false(v); break;
      case EXP_STR: ok = json_is_string(v) && strcmp(json_string_value(v), k->str) == 0; break;
      default: ok = json_is_number(v) && json_number_value(v) == k->num; break;
    }
    if (ok) continue;
    char buf[96], want[64];
    const char *shown = json_is_string(v) ? sd_msg_quote(json_string_value(v), buf, sizeof buf)
                                          : sd_json_type_name(v);
    if (json_is_number(v)) snprintf(buf, sizeof buf, "%g", json_number_value(v)), shown = buf;
    if (json_is_true(v)) shown = "true";
    switch (k->kind) {
      case EXP_NULL: snprintf(want, sizeof want, "null"); break;
      case EXP_FALSE: snprintf(want, sizeof want, "false"); break;
      case EXP_STR: snprintf(want, sizeof want, "\"%s\"", k->str); break;
      default: snprintf(want, sizeof want, "%g", k->num); break;
    }
    return sd_fail(SD_E_UNSUPPORTED, "%s: key '%s' is %s; safesd runs SD 1.x/2.x %s models, which need %s",
                   lbl(label), k->key, shown, what, want);
  }
  return SD_OK;
}

/* Parse buf as a JSON object. */
static int load(const char *buf, size_t len, const char *label, json_t **j) {
  return sd_json_load_memory(buf, len, lbl(label), SD_JSON_CONFIG_MAX, j);
}

static int check_class(const json_t *o, const char *label, const char *const *allowed) {
  const char *cls = NULL;
  int rc = sd_json_get_str(o, "_class_name", label, &cls, 0);
  if (rc || !cls) return rc;
  for (const char *const *a = allowed; *a; a++)
    if (strcmp(cls, *a) == 0) return SD_OK;
  char buf[96];
  return sd_fail(SD_E_UNSUPPORTED, "%s: _class_name is \"%s\", expected %s", lbl(label),
                 sd_msg_quote(cls, buf, sizeof buf), allowed[0]);
}

/* ---------------------------------------------------------------------------------------- */
/* Text encoder (transformers CLIPTextConfig)                                                */
/* ---------------------------------------------------------------------------------------- */

int sd_parse_text_config_json(const char *buf, size_t len, const char *label, sd_clip_text_config *out) {
  json_t *root = NULL;
  int rc = load(buf, len, label, &root);
  if (rc) return rc;
  sd_clip_text_config c = {
    .vocab_size = 49408, .hidden = 512, .layers = 12, .heads = 8, .intermediate = 2048,
    .max_positions = 77, .act = SD_ACT_QUICK_GELU, .ln_eps = 1e-5f,
    .bos_id = 49406, .eos_id = 49407, .pad_id = 1,
  };
  const json_t *o = root;
  const char *act = NULL;
  /* a whole CLIPConfig: the text tower's settings are under text_config */
  if (sd_json_has(root, "text_config") && (rc = sd_json_get_obj(root, "text_config", label, &o, 1))) goto done;
  if ((rc = sd_json_get_i32(o, "vocab_size", label, 1, MAX_VOCAB, &c.vocab_size, 0)) ||
      (rc = sd_json_get_i32(o, "hidden_size", label, 1, MAX_WIDTH, &c.hidden, 0)) ||
      (rc = sd_json_get_i32(o, "num_hidden_layers", label, 1, MAX_LAYERS, &c.layers, 0)) ||
      (rc = sd_json_get_i32(o, "num_attention_heads", label, 1, MAX_WIDTH, &c.heads, 0)) ||
      (rc = sd_json_get_i32(o, "intermediate_size", label, 1, 4 * MAX_WIDTH, &c.intermediate, 0)) ||
      (rc = sd_json_get_i32(o, "max_position_embeddings", label, 1, MAX_WIDTH, &c.max_positions, 0)) ||
      (rc = sd_json_get_f32(o, "layer_norm_eps", label, 0.0f, 1.0f, &c.ln_eps, 0)) ||
      (rc = sd_json_get_str(o, "hidden_act", label, &act, 0)))
    goto done;
  int ids[3] = {c.bos_id, c.eos_id, c.pad_id};
  if ((rc = sd_json_get_i32(o, "bos_token_id", label, 0, MAX_VOCAB, &ids[0], 0)) ||
      (rc = sd_json_get_i32(o, "eos_token_id", label, 0, MAX_VOCAB, &ids[1], 0)) ||
      (rc = sd_json_get_i32(o, "pad_token_id", label, 0, MAX_VOCAB, &ids[2], 0)))
    goto done;
  c.bos_id = ids[0], c.eos_id = ids[1], c.pad_id = ids[2];
  if (act) {
    if (strcmp(act, "quick_gelu") == 0) c.act = SD_ACT_QUICK_GELU;
    else if (strcmp(act, "gelu") == 0) c.act = SD_ACT_GELU;
    else {
      char q[64];
      rc = sd_fail(SD_E_UNSUPPORTED, "%s: key 'hidden_act': \"%s\" is not supported (quick_gelu or gelu)",
                   lbl(label), sd_msg_quote(act, q, sizeof q));
      goto done;
    }
  }
  if ((rc = sd_text_config_check(&c, label))) goto done;
  *out = c;
done:
  json_decref(root);
  return rc;
}

int sd_text_config_check(const sd_clip_text_config *c, const char *label) {
  if (c->vocab_size < 1 || c->vocab_size > MAX_VOCAB || c->hidden < 1 || c->hidden > MAX_WIDTH ||
      c->layers < 1 || c->layers > MAX_LAYERS || c->heads < 1 || c->intermediate < 1 ||
      c->intermediate > 4 * MAX_WIDTH || c->max_positions < 1 || c->max_positions > MAX_WIDTH)
    return sd_fail(SD_E_FORMAT, "%s: text encoder size out of range (vocab %d, hidden %d, layers %d, heads %d, mlp %d, positions %d)",
                   lbl(label), c->vocab_size, c->hidden, c->layers, c->heads, c->intermediate, c->max_positions);
  if (c->hidden % c->heads)
    return sd_fail(SD_E_FORMAT, "%s: text encoder hidden size %d is not a multiple of the %d heads",
                   lbl(label), c->hidden, c->heads);
  if (!(c->ln_eps > 0.0f) || !(c->ln_eps < 1.0f))
    return sd_fail(SD_E_FORMAT, "%s: text encoder layer_norm_eps %g out of range", lbl(label), (double)c->ln_eps);
  if (c->bos_id < 0 || c->bos_id >= c->vocab_size || c->eos_id < 0 || c->eos_id >= c->vocab_size ||
      c->pad_id < 0 || c->pad_id >= c->vocab_size)
    return sd_fail(SD_E_FORMAT, "%s: text encoder token ids (bos %d, eos %d, pad %d) outside the vocabulary of %d",
                   lbl(label), (int)c->bos_id, (int)c->eos_id, (int)c->pad_id, c->vocab_size);
  return SD_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* UNet (diffusers UNet2DConditionModel)                                                     */
/* ---------------------------------------------------------------------------------------- */

static const fixed_key k_unet_fixed[] = {
  {"time_embedding_type", EXP_STR, "positional", 0},
  {"resnet_time_scale_shift", EXP_STR, "default", 0},
  {"act_fn", EXP_STR, "silu", 0},
  {"attention_type", EXP_STR, "default", 0},
  {"class_embed_type", EXP_NULL, NULL, 0},
  {"addition_embed_type", EXP_NULL, NULL, 0},
  {"num_class_embeds", EXP_NULL, NULL, 0},
  {"time_cond_proj_dim", EXP_NULL, NULL, 0},
  {"encoder_hid_dim", EXP_NULL, NULL, 0},
  {"encoder_hid_dim_type", EXP_NULL, NULL, 0},
  {"time_embedding_act_fn", EXP_NULL, NULL, 0},
  {"timestep_post_act", EXP_NULL, NULL, 0},
  {"cross_attention_norm", EXP_NULL, NULL, 0},
  {"reverse_transformer_layers_per_block", EXP_NULL, NULL, 0},
  {"dual_cross_attention", EXP_FALSE, NULL, 0},
  {"center_input_sample", EXP_FALSE, NULL, 0},
  {"resnet_skip_time_act", EXP_FALSE, NULL, 0},
  {"class_embeddings_concat", EXP_FALSE, NULL, 0},
  {"mid_block_only_cross_attention", EXP_FALSE, NULL, 0},
  {"conv_in_kernel", EXP_NUM, NULL, 3},
  {"conv_out_kernel", EXP_NUM, NULL, 3},
  {"downsample_padding", EXP_NUM, NULL, 1},
  {"mid_block_scale_factor", EXP_NUM, NULL, 1},
  {"resnet_out_scale_factor", EXP_NUM, NULL, 1},
};

int sd_parse_unet_config_json(const char *buf, size_t len, const char *label, sd_unet_config *out) {
  json_t *o = NULL;
  int rc = load(buf, len, label, &o);
  if (rc) return rc;
  static const char *const classes[] = {"UNet2DConditionModel", NULL};
  sd_unet_config c;
  memset(&c, 0, sizeof c);
  c.in_channels = 4, c.out_channels = 4, c.sample_size = 64;
  c.norm_num_groups = 32, c.norm_eps = 1e-5f, c.flip_sin_to_cos = 1, c.freq_shift = 0;
  int boc[SD_MAX_LEVELS] = {320, 640, 1280, 1280}, n_boc = 4;
  const char *down[SD_MAX_LEVELS] = {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"};
  const char *up[SD_MAX_LEVELS] = {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"};
  int n_down = 4, n_up = 4;
  const char *mid = "UNetMidBlock2DCrossAttn";
  int v[SD_MAX_LEVELS], n;
  if ((rc = check_class(o, label, classes)) ||
      (rc = check_fixed_keys(o, label, "UNet", k_unet_fixed, sizeof k_unet_fixed / sizeof k_unet_fixed[0])) ||
      (rc = sd_json_get_i32(o, "in_channels", label, 1, 1024, &c.in_channels, 0)) ||
      (rc = sd_json_get_i32(o, "out_channels", label, 1, 1024, &c.out_channels, 0)) ||
      (rc = sd_json_get_i32(o, "sample_size", label, 1, MAX_WIDTH, &c.sample_size, 0)) ||
      (rc = sd_json_get_int_array_ex(o, "block_out_channels", label, 1, MAX_WIDTH, boc, SD_MAX_LEVELS, &n_boc, 0)) ||
      (rc = sd_json_get_str_array(o, "down_block_types", label, down, SD_MAX_LEVELS, &n_down, 0)) ||
      (rc = sd_json_get_str_array(o, "up_block_types", label, up, SD_MAX_LEVELS, &n_up, 0)) ||
      (rc = sd_json_get_str(o, "mid_block_type", label, &mid, 0)) ||
      (rc = sd_json_get_i32(o, "norm_num_groups", label, 1, MAX_WIDTH, &c.norm_num_groups, 0)) ||
      (rc = sd_json_get_f32(o, "norm_eps", label, 0.0f, 1.0f, &c.norm_eps, 0)) ||
      (rc = sd_json_get_bool(o, "flip_sin_to_cos", label, &c.flip_sin_to_cos, 0)) ||
      (rc = sd_json_get_i32(o, "freq_shift", label, -MAX_WIDTH, MAX_WIDTH, &c.freq_shift, 0)) ||
      (rc = sd_json_get_bool(o, "use_linear_projection", label, &c.use_linear_projection, 0)))
    goto done;
  if (n_boc < 1) { rc = sd_fail(SD_E_FORMAT, "%s: key 'block_out_channels' is empty", lbl(label)); goto done; }
  c.n_levels = n_boc;
  memcpy(c.block_out_channels, boc, sizeof boc);
  if (n_down != n_boc || n_up != n_boc) {
    rc = sd_fail(SD_E_FORMAT, "%s: %d block_out_channels but %d down_block_types and %d up_block_types",
                 lbl(label), n_boc, n_down, n_up);
    goto done;
  }
  for (int i = 0; i < n_boc; i++) {
    char q[64];
    if (strcmp(down[i], "CrossAttnDownBlock2D") == 0) c.down_has_attn[i] = 1;
    else if (strcmp(down[i], "DownBlock2D") != 0) {
      rc = sd_fail(SD_E_UNSUPPORTED, "%s: down_block_types[%d] \"%s\" is not supported (CrossAttnDownBlock2D or DownBlock2D)",
                   lbl(label), i, sd_msg_quote(down[i], q, sizeof q));
      goto done;
    }
    if (strcmp(up[i], "CrossAttnUpBlock2D") == 0) c.up_has_attn[i] = 1;
    else if (strcmp(up[i], "UpBlock2D") != 0) {
      rc = sd_fail(SD_E_UNSUPPORTED, "%s: up_block_types[%d] \"%s\" is not supported (CrossAttnUpBlock2D or UpBlock2D)",
                   lbl(label), i, sd_msg_quote(up[i], q, sizeof q));
      goto done;
    }
  }
  if (strcmp(mid, "UNetMidBlock2DCrossAttn") == 0) c.mid_has_attn = 1;
  else if (strcmp(mid, "UNetMidBlock2D") == 0) c.mid_has_attn = 0;
  else {
    char q[64];
    rc = sd_fail(SD_E_UNSUPPORTED, "%s: mid_block_type \"%s\" is not supported (UNetMidBlock2DCrossAttn)",
                 lbl(label), sd_msg_quote(mid, q, sizeof q));
    goto done;
  }
  /* only_cross_attention: false, or a list of falses */
  {
    const json_t *oca = json_object_get(o, "only_cross_attention");
    int bad = oca && json_is_true(oca);
    if (oca && json_is_array(oca)) {
      size_t i;
      json_t *e;
      json_array_foreach(oca, i, e) if (!json_is_false(e)) bad = 1;
    }
    if (bad) {
      rc = sd_fail(SD_E_UNSUPPORTED, "%s: key 'only_cross_attention' must be false for SD 1.x/2.x UNets", lbl(label));
      goto done;
    }
  }

  c.layers_per_block = 2;
  if ((rc = get_int_or_list(o, "layers_per_block", label, 1, 64, v, SD_MAX_LEVELS, &n)) ||
      (rc = one_value("layers_per_block", label, v, n, &c.layers_per_block)))
    goto done;
  c.transformer_layers = 1;
  if ((rc = get_int_or_list(o, "transformer_layers_per_block", label, 1, 64, v, SD_MAX_LEVELS, &n)) ||
      (rc = one_value("transformer_layers_per_block", label, v, n, &c.transformer_layers)))
    goto done;
  c.cross_attention_dim = 1280;
  if ((rc = get_int_or_list(o, "cross_attention_dim", label, 1, MAX_WIDTH, v, SD_MAX_LEVELS, &n)) ||
      (rc = one_value("cross_attention_dim", label, v, n, &c.cross_attention_dim)))
    goto done;

  /* heads: num_attention_heads if given, else attention_head_dim (legacy name for the number
   * of heads), default 8 */
  {
    const char *key = sd_json_has(o, "num_attention_heads") ? "num_attention_heads" : "attention_head_dim";
    if ((rc = get_int_or_list(o, key, label, 1, MAX_WIDTH, v, SD_MAX_LEVELS, &n))) goto done;
    if (n == 0) v[0] = 8, n = 1;
    if (n != 1 && n != c.n_levels) {
      rc = sd_fail(SD_E_FORMAT, "%s: key '%s' has %d entries for %d levels", lbl(label), key, n, c.n_levels);
      goto done;
    }
    for (int i = 0; i < c.n_levels; i++) {
      c.heads[i] = v[n == 1 ? 0 : i];
      if (c.block_out_channels[i] % c.heads[i]) {
        rc = sd_fail(SD_E_FORMAT, "%s: level %d has %d channels, not a multiple of %d heads (key '%s')",
                     lbl(label), i, c.block_out_channels[i], c.heads[i], key);
        goto done;
      }
      c.head_dim[i] = c.block_out_channels[i] / c.heads[i];
    }
  }

  c.time_embed_in = c.block_out_channels[0];
  c.time_embed_dim = 4 * c.block_out_channels[0];
  if ((rc = sd_json_get_i32(o, "time_embedding_dim", label, 1, 4 * MAX_WIDTH, &c.time_embed_dim, 0))) goto done;
  if ((rc = sd_unet_config_check(&c, label))) goto done;
  *out = c;
done:
  json_decref(o);
  return rc;
}

int sd_unet_config_check(const sd_unet_config *c, const char *label) {
  if (c->n_levels < 1 || c->n_levels > SD_MAX_LEVELS)
    return sd_fail(SD_E_FORMAT, "%s: UNet has %d levels (1..%d supported)", lbl(label), c->n_levels, SD_MAX_LEVELS);
  if (c->in_channels < 1 || c->in_channels > 1024 || c->out_channels < 1 || c->out_channels > 1024 ||
      c->layers_per_block < 1 || c->layers_per_block > 64 || c->transformer_layers < 1 ||
      c->transformer_layers > 64 || c->cross_attention_dim < 1 || c->cross_attention_dim > MAX_WIDTH ||
      c->norm_num_groups < 1 || c->time_embed_dim < 1 || c->time_embed_dim > 4 * MAX_WIDTH ||
      c->sample_size < 1)
    return sd_fail(SD_E_FORMAT, "%s: UNet size out of range", lbl(label));
  if (!(c->norm_eps > 0.0f) || !(c->norm_eps < 1.0f))
    return sd_fail(SD_E_FORMAT, "%s: UNet norm_eps %g out of range", lbl(label), (double)c->norm_eps);
  if (c->time_embed_in != c->block_out_channels[0])
    return sd_fail(SD_E_FORMAT, "%s: UNet timestep embedding width %d differs from block_out_channels[0] %d",
                   lbl(label), c->time_embed_in, c->block_out_channels[0]);
  for (int i = 0; i < c->n_levels; i++) {
    int ch = c->block_out_channels[i];
    if (ch < 1 || ch > MAX_WIDTH)
      return sd_fail(SD_E_FORMAT, "%s: UNet level %d has %d channels", lbl(label), i, ch);
    if (ch % c->norm_num_groups)
      return sd_fail(SD_E_FORMAT, "%s: UNet level %d: %d channels are not a multiple of %d GroupNorm groups",
                     lbl(label), i, ch, c->norm_num_groups);
    int attn = c->down_has_attn[i] || c->up_has_attn[c->n_levels - 1 - i] ||
               (i == c->n_levels - 1 && c->mid_has_attn);
    if (attn && (c->heads[i] < 1 || c->head_dim[i] < 1 || c->heads[i] * c->head_dim[i] != ch))
      return sd_fail(SD_E_FORMAT, "%s: UNet level %d: %d heads x %d head dim != %d channels",
                     lbl(label), i, c->heads[i], c->head_dim[i], ch);
  }
  return SD_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* VAE (diffusers AutoencoderKL)                                                             */
/* ---------------------------------------------------------------------------------------- */

static const fixed_key k_vae_fixed[] = {
  {"act_fn", EXP_STR, "silu", 0},
  {"shift_factor", EXP_NULL, NULL, 0},
};

int sd_parse_vae_config_json(const char *buf, size_t len, const char *label, sd_vae_config *out) {
  json_t *o = NULL;
  int rc = load(buf, len, label, &o);
  if (rc) return rc;
  static const char *const classes[] = {"AutoencoderKL", NULL};
  sd_vae_config c;
  memset(&c, 0, sizeof c);
  c.in_channels = 3, c.out_channels = 3, c.latent_channels = 4, c.layers_per_block = 1;
  c.norm_num_groups = 32, c.scaling_factor = 0.18215f, c.sample_size = 32;
  int boc[SD_MAX_LEVELS] = {64}, n_boc = 1;
  const char *down[SD_MAX_LEVELS] = {"DownEncoderBlock2D"}, *up[SD_MAX_LEVELS] = {"UpDecoderBlock2D"};
  int n_down = 1, n_up = 1, flags[3] = {1, 1, 1};
  double scaling = c.scaling_factor;
  /* options that remove layers SD 1.x/2.x VAEs have */
  static const char *const bool_keys[3] = {"use_quant_conv", "use_post_quant_conv", "mid_block_add_attention"};
  for (int i = 0; i < 3; i++)
    if ((rc = sd_json_get_bool(o, bool_keys[i], label, &flags[i], 0))) goto done;
  for (int i = 0; i < 3; i++)
    if (!flags[i]) {
      rc = sd_fail(SD_E_UNSUPPORTED, "%s: key '%s' is false; safesd runs SD 1.x/2.x VAEs, which need true",
                   lbl(label), bool_keys[i]);
      goto done;
    }
  if ((rc = check_class(o, label, classes)) ||
      (rc = check_fixed_keys(o, label, "VAE", k_vae_fixed, sizeof k_vae_fixed / sizeof k_vae_fixed[0])) ||
      (rc = sd_json_get_i32(o, "in_channels", label, 1, 1024, &c.in_channels, 0)) ||
      (rc = sd_json_get_i32(o, "out_channels", label, 1, 1024, &c.out_channels, 0)) ||
      (rc = sd_json_get_i32(o, "latent_channels", label, 1, 1024, &c.latent_channels, 0)) ||
      (rc = sd_json_get_i32(o, "layers_per_block", label, 1, 64, &c.layers_per_block, 0)) ||
      (rc = sd_json_get_i32(o, "norm_num_groups", label, 1, MAX_WIDTH, &c.norm_num_groups, 0)) ||
      (rc = sd_json_get_i32(o, "sample_size", label, 1, 1 << 20, &c.sample_size, 0)) ||
      (rc = sd_json_get_num(o, "scaling_factor", label, 1e-6, 1e6, &scaling, 0)) ||
      (rc = sd_json_get_int_array_ex(o, "block_out_channels", label, 1, MAX_WIDTH, boc, SD_MAX_LEVELS, &n_boc, 0)) ||
      (rc = sd_json_get_str_array(o, "down_block_types", label, down, SD_MAX_LEVELS, &n_down, 0)) ||
      (rc = sd_json_get_str_array(o, "up_block_types", label, up, SD_MAX_LEVELS, &n_up, 0)))
    goto done;
  c.scaling_factor = (float)scaling;
  if (n_boc < 1) { rc = sd_fail(SD_E_FORMAT, "%s: key 'block_out_channels' is empty", lbl(label)); goto done; }
  /* absent block type lists default to one entry per level */
  if (!sd_json_has(o, "down_block_types")) for (n_down = 0; n_down < n_boc; n_down++) down[n_down] = "DownEncoderBlock2D";
  if (!sd_json_has(o, "up_block_types")) for (n_up = 0; n_up < n_boc; n_up++) up[n_up] = "UpDecoderBlock2D";
  if (n_down != n_boc || n_up != n_boc) {
    rc = sd_fail(SD_E_FORMAT, "%s: %d block_out_channels but %d down_block_types and %d up_block_types",
                 lbl(label), n_boc, n_down, n_up);
    goto done;
  }
  for (int i = 0; i < n_boc; i++) {
    char q[64];
    if (strcmp(down[i], "DownEncoderBlock2D") != 0) {
      rc = sd_fail(SD_E_UNSUPPORTED, "%s: down_block_types[%d] \"%s\" is not supported (DownEncoderBlock2D)",
                   lbl(label), i, sd_msg_quote(down[i], q, sizeof q));
      goto done;
    }
    if (strcmp(up[i], "UpDecoderBlock2D") != 0) {
      rc = sd_fail(SD_E_UNSUPPORTED, "%s: up_block_types[%d] \"%s\" is not supported (UpDecoderBlock2D)",
                   lbl(label), i, sd_msg_quote(up[i], q, sizeof q));
      goto done;
    }
  }
  c.n_levels = n_boc;
  memcpy(c.block_out_channels, boc, sizeof boc);
  if ((rc = sd_vae_config_check(&c, label))) goto done;
  *out = c;
done:
  json_decref(o);
  return rc;
}

int sd_vae_config_check(const sd_vae_config *c, const char *label) {
  if (c->n_levels < 1 || c->n_levels > SD_MAX_LEVELS)
    return sd_fail(SD_E_FORMAT, "%s: VAE has %d levels (1..%d supported)", lbl(label), c->n_levels, SD_MAX_LEVELS);
  if (c->in_channels < 1 || c->in_channels > 1024 || c->out_channels < 1 || c->out_channels > 1024 ||
      c->latent_channels < 1 || c->latent_channels > 1024 || c->layers_per_block < 1 ||
      c->layers_per_block > 64 || c->norm_num_groups < 1 || c->sample_size < 1)
    return sd_fail(SD_E_FORMAT, "%s: VAE size out of range", lbl(label));
  if (!(c->scaling_factor > 0.0f) || !isfinite(c->scaling_factor))
    return sd_fail(SD_E_FORMAT, "%s: VAE scaling_factor %g out of range", lbl(label), (double)c->scaling_factor);
  for (int i = 0; i < c->n_levels; i++) {
    int ch = c->block_out_channels[i];
    if (ch < 1 || ch > MAX_WIDTH)
      return sd_fail(SD_E_FORMAT, "%s: VAE level %d has %d channels", lbl(label), i, ch);
    if (ch % c->norm_num_groups)
      return sd_fail(SD_E_FORMAT, "%s: VAE level %d: %d channels are not a multiple of %d GroupNorm groups",
                     lbl(label), i, ch, c->norm_num_groups);
  }
  return SD_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Scheduler                                                                                 */
/* ---------------------------------------------------------------------------------------- */

int sd_parse_scheduler_config_json(const char *buf, size_t len, const char *label, int *prediction_v) {
  json_t *o = NULL;
  int rc = load(buf, len, label, &o);
  if (rc) return rc;
  const char *pt = "epsilon";
  if ((rc = sd_json_get_str(o, "prediction_type", label, &pt, 0)) == SD_OK) {
    if (strcmp(pt, "epsilon") == 0) *prediction_v = 0;
    else if (strcmp(pt, "v_prediction") == 0) *prediction_v = 1;
    else {
      char q[64];
      rc = sd_fail(SD_E_UNSUPPORTED, "%s: prediction_type \"%s\" is not supported (epsilon or v_prediction)",
                   lbl(label), sd_msg_quote(pt, q, sizeof q));
    }
  }
  json_decref(o);
  return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Implied tensors                                                                           */
/* ---------------------------------------------------------------------------------------- */

void sd_tensor_specs_free(sd_tensor_specs *s) {
  free(s->v);
  memset(s, 0, sizeof *s);
}

/* Append the tensor prefix + name + "." + param (name may be NULL: prefix + param) with a
 * shape of ndim dims. */
static int spec(sd_tensor_specs *s, const char *prefix, const char *name, const char *param, int ndim,
                int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 256;
    sd_tensor_spec *v = realloc(s->v, cap * sizeof *v);
    if (!v) return sd_fail(SD_E_NOMEM, "out of memory");
    s->v = v;
    s->cap = cap;
  }
  sd_tensor_spec *t = &s->v[s->n];
  int w = name ? snprintf(t->name, sizeof t->name, "%s%s.%s", prefix, name, param)
               : snprintf(t->name, sizeof t->name, "%s%s", prefix, param);
  if (w < 0 || (size_t)w >= sizeof t->name) return sd_fail(SD_E_INTERNAL, "tensor name too long");
  t->ndim = ndim;
  t->shape[0] = d0, t->shape[1] = d1, t->shape[2] = d2, t->shape[3] = d3;
  s->n++;
  return SD_OK;
}

/* snprintf into a local array, failing on truncation. */
#define FMT(buf, ...)                                                         \
  do {                                                                        \
    int w_ = snprintf(buf, sizeof buf, __VA_ARGS__);                          \
    if (w_ < 0 || (size_t)w_ >= sizeof buf)                                   \
      return sd_fail(SD_E_INTERNAL, "tensor name too long");                  \
  } while (0)

static int norm(sd_tensor_specs *out, const char *p, const char *name, int64_t ch) {
  int rc;
  if ((rc = spec(out, p, name, "weight", 1, ch, 0, 0, 0)) || (rc = spec(out, p, name, "bias", 1, ch, 0, 0, 0))) return rc;
  return SD_OK;
}

static int linear(sd_tensor_specs *out, const char *p, const char *name, int64_t o, int64_t i, int bias) {
  int rc;
  if ((rc = spec(out, p, name, "weight", 2, o, i, 0, 0))) return rc;
  if (bias && (rc = spec(out, p, name, "bias", 1, o, 0, 0, 0))) return rc;
  return SD_OK;
}

static int conv(sd_tensor_specs *out, const char *p, const char *name, int64_t o, int64_t i, int k) {
  int rc;
  if ((rc = spec(out, p, name, "weight", 4, o, i, k, k)) || (rc = spec(out, p, name, "bias", 1, o, 0, 0, 0))) return rc;
  return SD_OK;
}

int sd_text_config_tensors(const sd_clip_text_config *c, sd_tensor_specs *out) {
  int rc;
  int64_t D = c->hidden, I = c->intermediate;
  if ((rc = spec(out, "text_model.embeddings.", "token_embedding", "weight", 2, c->vocab_size, D, 0, 0)) ||
      (rc = spec(out, "text_model.embeddings.", "position_embedding", "weight", 2, c->max_positions, D, 0, 0)))
    return rc;
  for (int l = 0; l < c->layers; l++) {
    char p[96];
    FMT(p, "text_model.encoder.layers.%d.", l);
    if ((rc = linear(out, p, "self_attn.q_proj", D, D, 1)) || (rc = linear(out, p, "self_attn.k_proj", D, D, 1)) ||
        (rc = linear(out, p, "self_attn.v_proj", D, D, 1)) || (rc = linear(out, p, "self_attn.out_proj", D, D, 1)) ||
        (rc = norm(out, p, "layer_norm1", D)) || (rc = norm(out, p, "layer_norm2", D)) ||
        (rc = linear(out, p, "mlp.fc1", I, D, 1)) || (rc = linear(out, p, "mlp.fc2", D, I, 1)))
      return rc;
  }
  return norm(out, "text_model.", "final_layer_norm", D);
}

static int unet_resnet(sd_tensor_specs *out, const char *p, int64_t in, int64_t o, int64_t temb) {
  int rc;
  if ((rc = norm(out, p, "norm1", in)) || (rc = conv(out, p, "conv1", o, in, 3)) ||
      (rc = linear(out, p, "time_emb_proj", o, temb, 1)) || (rc = norm(out, p, "norm2", o)) ||
      (rc = conv(out, p, "conv2", o, o, 3)))
    return rc;
  if (in != o && (rc = conv(out, p, "conv_shortcut", o, in, 1))) return rc;
  return SD_OK;
}

static int unet_transformer(sd_tensor_specs *out, const char *p, const sd_unet_config *c, int64_t C) {
  int rc;
  int64_t X = c->cross_attention_dim, F = 4 * C;
  if ((rc = norm(out, p, "norm", C))) return rc;
  if (c->use_linear_projection) rc = linear(out, p, "proj_in", C, C, 1);
  else rc = conv(out, p, "proj_in", C, C, 1);
  if (rc) return rc;
  for (int t = 0; t < c->transformer_layers; t++) {
    char b[128];
    FMT(b, "%stransformer_blocks.%d.", p, t);
    if ((rc = norm(out, b, "norm1", C)) || (rc = linear(out, b, "attn1.to_q", C, C, 0)) ||
        (rc = linear(out, b, "attn1.to_k", C, C, 0)) || (rc = linear(out, b, "attn1.to_v", C, C, 0)) ||
        (rc = linear(out, b, "attn1.to_out.0", C, C, 1)) || (rc = norm(out, b, "norm2", C)) ||
        (rc = linear(out, b, "attn2.to_q", C, C, 0)) || (rc = linear(out, b, "attn2.to_k", C, X, 0)) ||
        (rc = linear(out, b, "attn2.to_v", C, X, 0)) || (rc = linear(out, b, "attn2.to_out.0", C, C, 1)) ||
        (rc = norm(out, b, "norm3", C)) || (rc = linear(out, b, "ff.net.0.proj", 2 * F, C, 1)) ||
        (rc = linear(out, b, "ff.net.2", C, F, 1)))
      return rc;
  }
  if (c->use_linear_projection) rc = linear(out, p, "proj_out", C, C, 1);
  else rc = conv(out, p, "proj_out", C, C, 1);
  return rc;
}

int sd_unet_config_tensors(const sd_unet_config *c, sd_tensor_specs *out) {
  int rc, N = c->n_levels, L = c->layers_per_block;
  int64_t C0 = c->block_out_channels[0], T = c->time_embed_dim;
  char p[128];
  if ((rc = conv(out, "", "conv_in", C0, c->in_channels, 3)) ||
      (rc = linear(out, "", "time_embedding.linear_1", T, c->time_embed_in, 1)) ||
      (rc = linear(out, "", "time_embedding.linear_2", T, T, 1)))
    return rc;
  int64_t prev = C0;
  for (int i = 0; i < N; i++) {
    int64_t C = c->block_out_channels[i];
    for (int j = 0; j < L; j++) {
      FMT(p, "down_blocks.%d.resnets.%d.", i, j);
      if ((rc = unet_resnet(out, p, j == 0 ? prev : C, C, T))) return rc;
      if (c->down_has_attn[i]) {
        FMT(p, "down_blocks.%d.attentions.%d.", i, j);
        if ((rc = unet_transformer(out, p, c, C))) return rc;
      }
    }
    if (i < N - 1) {
      FMT(p, "down_blocks.%d.downsamplers.0.", i);
      if ((rc = conv(out, p, "conv", C, C, 3))) return rc;
    }
    prev = C;
  }
  int64_t CN = c->block_out_channels[N - 1];
  if ((rc = unet_resnet(out, "mid_block.resnets.0.", CN, CN, T))) return rc;
  if (c->mid_has_attn && (rc = unet_transformer(out, "mid_block.attentions.0.", c, CN))) return rc;
  if (c->mid_has_attn && (rc = unet_resnet(out, "mid_block.resnets.1.", CN, CN, T))) return rc; /* UNetMidBlock2D: one ResNet */
  /* up path (diffusers UNet2DConditionModel): level channels reversed; the skip of the last
   * ResNet of a block comes from one level further up */
  int64_t out_ch = CN;
  for (int i = 0; i < N; i++) {
    int64_t prev_out = out_ch;
    out_ch = c->block_out_channels[N - 1 - i];
    int64_t in_ch = c->block_out_channels[N - 1 - (i + 1 < N ? i + 1 : N - 1)];
    for (int j = 0; j <= L; j++) {
      int64_t skip = j == L ? in_ch : out_ch;
      int64_t rin = (j == 0 ? prev_out : out_ch) + skip;
      FMT(p, "up_blocks.%d.resnets.%d.", i, j);
      if ((rc = unet_resnet(out, p, rin, out_ch, T))) return rc;
      if (c->up_has_attn[i]) {
        FMT(p, "up_blocks.%d.attentions.%d.", i, j);
        if ((rc = unet_transformer(out, p, c, out_ch))) return rc;
      }
    }
    if (i < N - 1) {
      FMT(p, "up_blocks.%d.upsamplers.0.", i);
      if ((rc = conv(out, p, "conv", out_ch, out_ch, 3))) return rc;
    }
  }
  if ((rc = norm(out, "", "conv_norm_out", C0)) || (rc = conv(out, "", "conv_out", c->out_channels, C0, 3)))
    return rc;
  return SD_OK;
}

static int vae_resnet(sd_tensor_specs *out, const char *p, int64_t in, int64_t o) {
  int rc;
  if ((rc = norm(out, p, "norm1", in)) || (rc = conv(out, p, "conv1", o, in, 3)) ||
      (rc = norm(out, p, "norm2", o)) || (rc = conv(out, p, "conv2", o, o, 3)))
    return rc;
  if (in != o && (rc = conv(out, p, "conv_shortcut", o, in, 1))) return rc;
  return SD_OK;
}

static int vae_mid(sd_tensor_specs *out, const char *p, int64_t C) {
  char b[128];
  int rc;
  FMT(b, "%sresnets.0.", p);
  if ((rc = vae_resnet(out, b, C, C))) return rc;
  FMT(b, "%sattentions.0.", p);
  if ((rc = norm(out, b, "group_norm", C)) || (rc = linear(out, b, "to_q", C, C, 1)) ||
      (rc = linear(out, b, "to_k", C, C, 1)) || (rc = linear(out, b, "to_v", C, C, 1)) ||
      (rc = linear(out, b, "to_out.0", C, C, 1)))
    return rc;
  FMT(b, "%sresnets.1.", p);
  return vae_resnet(out, b, C, C);
}

int sd_vae_config_tensors(const sd_vae_config *c, sd_tensor_specs *out) {
  int rc, N = c->n_levels, L = c->layers_per_block;
  int64_t C0 = c->block_out_channels[0], CN = c->block_out_channels[N - 1], Z = c->latent_channels;
  char p[128];
  if ((rc = conv(out, "encoder.", "conv_in", C0, c->in_channels, 3))) return rc;
  int64_t prev = C0;
  for (int i = 0; i < N; i++) {
    int64_t C = c->block_out_channels[i];
    for (int j = 0; j < L; j++) {
      FMT(p, "encoder.down_blocks.%d.resnets.%d.", i, j);
      if ((rc = vae_resnet(out, p, j == 0 ? prev : C, C))) return rc;
    }
    if (i < N - 1) {
      FMT(p, "encoder.down_blocks.%d.downsamplers.0.", i);
      if ((rc = conv(out, p, "conv", C, C, 3))) return rc;
    }
    prev = C;
  }
  if ((rc = vae_mid(out, "encoder.mid_block.", CN)) || (rc = norm(out, "encoder.", "conv_norm_out", CN)) ||
      (rc = conv(out, "encoder.", "conv_out", 2 * Z, CN, 3)) || (rc = conv(out, "", "quant_conv", 2 * Z, 2 * Z, 1)) ||
      (rc = conv(out, "", "post_quant_conv", Z, Z, 1)) || (rc = conv(out, "decoder.", "conv_in", CN, Z, 3)) ||
      (rc = vae_mid(out, "decoder.mid_block.", CN)))
    return rc;
  prev = CN;
  for (int i = 0; i < N; i++) {
    int64_t C = c->block_out_channels[N - 1 - i];
    for (int j = 0; j <= L; j++) {
      FMT(p, "decoder.up_blocks.%d.resnets.%d.", i, j);
      if ((rc = vae_resnet(out, p, j == 0 ? prev : C, C))) return rc;
    }
    if (i < N - 1) {
      FMT(p, "decoder.up_blocks.%d.upsamplers.0.", i);
      if ((rc = conv(out, p, "conv", C, C, 3))) return rc;
    }
    prev = C;
  }
  if ((rc = norm(out, "decoder.", "conv_norm_out", C0)) ||
      (rc = conv(out, "decoder.", "conv_out", c->out_channels, C0, 3)))
    return rc;
  return SD_OK;
}
