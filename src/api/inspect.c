/* safesd_inspect: a report on a model, as text or JSON. It opens and builds the model the
 * way generate does (sd_api_model_check), so it fails on every problem generate would
 * fail on; text output escapes what comes from the files (tensor names in problems). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "safesd.h"

#include "api/api_internal.h"
#include "core/error.h"
#include "io/json_util.h"
#include "models/model_source.h"
#include "sampling/schedule.h"

static json_t *int_array(const int *v, int n) {
  json_t *a = json_array();
  for (int i = 0; i < n; i++) json_array_append_new(a, json_integer(v[i]));
  return a;
}

static json_t *component_json(const sd_model_source *m, sd_component c) {
  const sd_component_weights *w = sd_model_weights(m, c);
  json_t *o = json_object();
  json_object_set_new(o, "present", json_boolean(w && w->present));
  if (!w || !w->present) return o;
  json_object_set_new(o, "tensors", json_integer((json_int_t)w->n));
  json_object_set_new(o, "parameters", json_integer((json_int_t)w->n_params));
  json_t *dt = json_object();
  for (int i = 0; i < SD_DTYPE_COUNT; i++)
    if (w->dtype_count[i]) json_object_set_new(dt, sd_dtype_name((sd_dtype)i), json_integer(w->dtype_count[i]));
  json_object_set_new(o, "dtypes", dt);
  json_t *cfg = json_object();
  if (c == SD_COMP_TEXT) {
    const sd_clip_text_config *t = sd_model_text_config(m);
    json_object_set_new(cfg, "hidden", json_integer(t->hidden));
    json_object_set_new(cfg, "layers", json_integer(t->layers));
    json_object_set_new(cfg, "heads", json_integer(t->heads));
    json_object_set_new(cfg, "intermediate", json_integer(t->intermediate));
    json_object_set_new(cfg, "vocab_size", json_integer(t->vocab_size));
    json_object_set_new(cfg, "max_positions", json_integer(t->max_positions));
    json_object_set_new(cfg, "activation", json_string(t->act == SD_ACT_GELU ? "gelu" : "quick_gelu"));
    json_object_set_new(cfg, "pad_id", json_integer(t->pad_id));
  } else if (c == SD_COMP_UNET) {
    const sd_unet_config *u = sd_model_unet_config(m);
    json_object_set_new(cfg, "block_out_channels", int_array(u->block_out_channels, u->n_levels));
    json_object_set_new(cfg, "layers_per_block", json_integer(u->layers_per_block));
    json_object_set_new(cfg, "down_attention", int_array(u->down_has_attn, u->n_levels));
    json_object_set_new(cfg, "up_attention", int_array(u->up_has_attn, u->n_levels));
    json_object_set_new(cfg, "mid_attention", json_boolean(u->mid_has_attn));
    json_object_set_new(cfg, "heads", int_array(u->heads, u->n_levels));
    json_object_set_new(cfg, "cross_attention_dim", json_integer(u->cross_attention_dim));
    json_object_set_new(cfg, "linear_projection", json_boolean(u->use_linear_projection));
    json_object_set_new(cfg, "in_channels", json_integer(u->in_channels));
    json_object_set_new(cfg, "time_embed_dim", json_integer(u->time_embed_dim));
    json_object_set_new(cfg, "prediction", json_string(u->prediction_v ? "v" : "epsilon"));
  } else {
    const sd_vae_config *v = sd_model_vae_config(m);
    json_object_set_new(cfg, "block_out_channels", int_array(v->block_out_channels, v->n_levels));
    json_object_set_new(cfg, "layers_per_block", json_integer(v->layers_per_block));
    json_object_set_new(cfg, "latent_channels", json_integer(v->latent_channels));
    json_object_set_new(cfg, "scaling_factor", json_real(v->scaling_factor));
  }
  json_object_set_new(o, "config", cfg);
  return o;
}

static json_t *inspect_json(safesd_model *sm) {
  const sd_model_source *m = sm->src;
  json_t *r = json_object();
  json_object_set_new(r, "path", json_string(sd_model_path(m)));
  json_object_set_new(r, "layout", json_string(sd_model_layout(m) == SD_LAYOUT_DIFFUSERS ? "diffusers" : "single-file"));
  json_object_set_new(r, "family", json_string(sd_family_name(sd_model_family(m))));
  json_t *comps = json_object();
  for (int c = 0; c < SD_COMP_COUNT; c++)
    json_object_set_new(comps, sd_component_name((sd_component)c), component_json(m, (sd_component)c));
  json_object_set_new(r, "components", comps);
  json_object_set_new(r, "tokenizer", json_string(sd_model_vocab_path(m) ? "model folder (vocab.json + merges.txt)"
                                                                          : "bundled CLIP vocabulary"));
  const char *sched = sd_model_scheduler_path(m), *bank = sd_model_bank_path(m);
  json_object_set_new(r, "scheduler", sched ? json_string(sched) : json_null());
  json_object_set_new(r, "concept_bank", bank ? json_string(bank) : json_null());
  json_t *probs = json_array();
  for (size_t i = 0; i < sd_model_problem_count(m); i++) json_array_append_new(probs, json_string(sd_model_problem(m, i)));
  json_object_set_new(r, "problems", probs);
  return r;
}

/* File text on a terminal: control characters and the like escaped (sd_msg_quote). */
static void fputs_quoted(const char *s, FILE *out) {
  char q[4096];
  fputs(sd_msg_quote(s, q, sizeof q), out);
}

static void print_value(FILE *out, json_t *v) {
  if (json_is_array(v)) {
    fputc('[', out);
    for (size_t i = 0; i < json_array_size(v); i++) {
      if (i) fputs(", ", out);
      print_value(out, json_array_get(v, i));
    }
    fputc(']', out);
  } else if (json_is_integer(v)) fprintf(out, "%lld", (long long)json_integer_value(v));
  else if (json_is_real(v)) fprintf(out, "%g", json_real_value(v));
  else if (json_is_string(v)) fputs_quoted(json_string_value(v), out);
  else fputs(json_is_true(v) ? "yes" : "no", out);
}

static void inspect_text(json_t *r, FILE *out) {
  static const char *const keys[][2] = {{"path", "model:     "}, {"layout", "layout:    "}, {"family", "family:    "},
                                        {"tokenizer", "tokenizer: "}, {"scheduler", "scheduler: "},
                                        {"concept_bank", "concept bank: "}};
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
    json_t *v = json_object_get(r, keys[i][0]);
    fputs(keys[i][1], out);
    if (json_is_string(v)) fputs_quoted(json_string_value(v), out);
    else fputs(i == 4 ? "none (SD 1.x defaults)" : "none", out);
    fputc('\n', out);
  }
  const char *key;
  json_t *c;
  json_object_foreach(json_object_get(r, "components"), key, c) {
    if (!json_is_true(json_object_get(c, "present"))) { fprintf(out, "%-13s missing\n", key); continue; }
    fprintf(out, "%-13s %lld tensors, %.2f M parameters, dtypes", key,
            (long long)json_integer_value(json_object_get(c, "tensors")),
            (double)json_integer_value(json_object_get(c, "parameters")) / 1e6);
    const char *dk;
    json_t *dv;
    json_object_foreach(json_object_get(c, "dtypes"), dk, dv) fprintf(out, " %s×%lld", dk, (long long)json_integer_value(dv));
    fputc('\n', out);
    json_object_foreach(json_object_get(c, "config"), dk, dv) {
      fprintf(out, "    %-20s ", dk);
      print_value(out, dv);
      fputc('\n', out);
    }
  }
  json_t *p = json_object_get(r, "problems");
  if (json_array_size(p) == 0) fprintf(out, "problems:  none\n");
  for (size_t i = 0; i < json_array_size(p); i++) {
    fputs("problem:   ", out);
    fputs_quoted(json_string_value(json_array_get(p, i)), out);
    fputc('\n', out);
  }
}

int safesd_inspect(const char *path, const char *config_dir, int as_json, FILE *out) {
  safesd_model *m;
  safesd_model_options oo = {.n_threads = 1, .config_dir = config_dir, .precision = SAFESD_PRECISION_FP32};
  int rc = safesd_model_open(path, &oo, &m);
  if (rc) return rc;
  if ((rc = sd_api_model_check(m))) {
    safesd_model_close(m);
    return rc;
  }
  json_t *r = inspect_json(m);
  if (as_json) {
    json_dumpf(r, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', out);
  } else {
    inspect_text(r, out);
  }
  json_decref(r);
  safesd_model_close(m);
  return SD_OK;
}
