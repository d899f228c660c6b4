/* The model-source layer: diffusers folders and LDM single files give the same internal
 * tensors; configs; the LDM name map (against the golden recipes); OpenCLIP fused q/k/v views;
 * synthetic SD 1.5-shaped (4 levels) and SD 2.x-style checkpoints; error cases. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/tensor.h"
#include "io/safetensors.h"
#include "models/config.h"
#include "models/model_source.h"
#include "models/name_map.h"
#include "testutil.h"

#define GOLDEN "data/golden/"

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static char *dupstr(const char *s) {
  char *d = s ? strdup(s) : NULL;
  return d;
}

static void mkdirs(const char *path) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++)
    if (*p == '/') { *p = 0; mkdir(buf, 0755); *p = '/'; }
  mkdir(buf, 0755);
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void relink(const char *target, const char *link) {
  unlink(link);
  assert_int_equal(symlink(target, link), 0);
}

static int problem_contains(const sd_model_source *m, const char *needle) {
  for (size_t i = 0; i < sd_model_problem_count(m); i++)
    if (strstr(sd_model_problem(m, i), needle)) return 1;
  return 0;
}

static void print_problems(const sd_model_source *m) {
  for (size_t i = 0; i < sd_model_problem_count(m); i++) printf("  problem: %s\n", sd_model_problem(m, i));
}

static sd_model_source *open_ok(const char *path, const char *config_dir) {
  sd_model_source *m = NULL;
  sd_model_open_opts o = {config_dir, 1};
  int rc = sd_model_open_ex(path, &o, &m);
  if (rc) print_message("sd_model_open(%s): %s\n", path, sd_errmsg());
  assert_int_equal(rc, SD_OK);
  assert_non_null(m);
  return m;
}

/* Expect failure with code and a message containing every needle (NULL-terminated). */
static void open_fails(const char *path, int code, ...) {
  sd_model_source *m = NULL;
  int rc = sd_model_open(path, &m);
  const char *msg = sd_errmsg();
  print_message("expected failure for %s: %s\n", path, msg);
  assert_int_equal(rc, code);
  assert_null(m);
  va_list ap;
  va_start(ap, code);
  for (const char *n; (n = va_arg(ap, const char *));) {
    if (!strstr(msg, n)) print_message("missing '%s' in the message\n", n);
    assert_non_null(strstr(msg, n));
  }
  va_end(ap);
}

/* Run a golden folder's make_single_file.py into out_dir (skips when python3 is absent). */
static int make_single_files(const char *script, const char *out_dir) {
  if (system("python3 -c 'import sys' >/dev/null 2>&1") != 0) {
    printf("SKIP: python3 is not available to build the single-file checkpoints\n");
    return -1;
  }
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "python3 '%s' --out-dir '%s' >/dev/null", script, out_dir);
  int rc = system(cmd);
  assert_int_equal(rc, 0);
  return 0;
}

/* The same component tensors (names, shapes, values as float32) in two models. */
static void assert_same_component(const sd_model_source *a, const sd_model_source *b, int c) {
  {
    const sd_component_weights *wa = sd_model_weights(a, c), *wb = sd_model_weights(b, c);
    assert_int_equal(wa->present, wb->present);
    assert_int_equal(wa->n, wb->n);
    assert_true(wa->n_params == wb->n_params);
    for (size_t i = 0; i < wa->n; i++) {
      const sd_tensor *ta = &wa->w[i].t, *tb = &wb->w[i].t;
      if (strcmp(wa->w[i].name, wb->w[i].name) != 0)
        print_message("%s: %s vs %s\n", sd_component_name(c), wa->w[i].name, wb->w[i].name);
      assert_string_equal(wa->w[i].name, wb->w[i].name);
      assert_true(sd_shape_eq(ta, tb->ndim, tb->shape));
      size_t n = (size_t)sd_numel(ta);
      float *fa = malloc(n * sizeof *fa + 1), *fb = malloc(n * sizeof *fb + 1);
      assert_non_null(fa);
      assert_non_null(fb);
      sd_to_f32(fa, ta->data, ta->dtype, n);
      sd_to_f32(fb, tb->data, tb->dtype, n);
      if (memcmp(fa, fb, n * sizeof *fa) != 0) print_message("values differ: %s %s\n", sd_component_name(c), wa->w[i].name);
      assert_memory_equal(fa, fb, n * sizeof *fa);
      free(fa);
      free(fb);
    }
  }
}

static void assert_same_weights(const sd_model_source *a, const sd_model_source *b) {
  for (int c = 0; c < SD_COMP_COUNT; c++) assert_same_component(a, b, c);
}

static void assert_text_config_equal(const sd_clip_text_config *a, const sd_clip_text_config *b, int heads_too) {
  assert_int_equal(a->vocab_size, b->vocab_size);
  assert_int_equal(a->hidden, b->hidden);
  assert_int_equal(a->layers, b->layers);
  if (heads_too) assert_int_equal(a->heads, b->heads);
  assert_int_equal(a->intermediate, b->intermediate);
  assert_int_equal(a->max_positions, b->max_positions);
  assert_int_equal(a->act, b->act);
  assert_true(a->ln_eps == b->ln_eps);
  assert_int_equal(a->bos_id, b->bos_id);
  assert_int_equal(a->eos_id, b->eos_id);
  assert_int_equal(a->pad_id, b->pad_id);
}

static void assert_unet_config_equal(const sd_unet_config *a, const sd_unet_config *b, int sample_too) {
  assert_int_equal(a->in_channels, b->in_channels);
  assert_int_equal(a->out_channels, b->out_channels);
  if (sample_too) assert_int_equal(a->sample_size, b->sample_size);
  assert_int_equal(a->n_levels, b->n_levels);
  for (int i = 0; i < a->n_levels; i++) {
    assert_int_equal(a->block_out_channels[i], b->block_out_channels[i]);
    assert_int_equal(a->down_has_attn[i], b->down_has_attn[i]);
    assert_int_equal(a->up_has_attn[i], b->up_has_attn[i]);
    assert_int_equal(a->heads[i], b->heads[i]);
    assert_int_equal(a->head_dim[i], b->head_dim[i]);
  }
  assert_int_equal(a->layers_per_block, b->layers_per_block);
  assert_int_equal(a->mid_has_attn, b->mid_has_attn);
  assert_int_equal(a->transformer_layers, b->transformer_layers);
  assert_int_equal(a->cross_attention_dim, b->cross_attention_dim);
  assert_int_equal(a->use_linear_projection, b->use_linear_projection);
  assert_int_equal(a->norm_num_groups, b->norm_num_groups);
  assert_true(a->norm_eps == b->norm_eps);
  assert_int_equal(a->time_embed_in, b->time_embed_in);
  assert_int_equal(a->time_embed_dim, b->time_embed_dim);
  assert_int_equal(a->flip_sin_to_cos, b->flip_sin_to_cos);
  assert_int_equal(a->freq_shift, b->freq_shift);
  assert_int_equal(a->prediction_v, b->prediction_v);
}

static void assert_vae_config_equal(const sd_vae_config *a, const sd_vae_config *b, int sample_too) {
  assert_int_equal(a->in_channels, b->in_channels);
  assert_int_equal(a->out_channels, b->out_channels);
  assert_int_equal(a->latent_channels, b->latent_channels);
  assert_int_equal(a->n_levels, b->n_levels);
  for (int i = 0; i < a->n_levels; i++) assert_int_equal(a->block_out_channels[i], b->block_out_channels[i]);
  assert_int_equal(a->layers_per_block, b->layers_per_block);
  assert_int_equal(a->norm_num_groups, b->norm_num_groups);
  assert_true(a->scaling_factor == b->scaling_factor);
  if (sample_too) assert_int_equal(a->sample_size, b->sample_size);
}

/* Every recipe row [ldm name, component, diffusers name, shape] maps as the recipe says. */
static void check_recipe(const char *recipe_path) {
  json_error_t err;
  json_t *r = json_load_file(recipe_path, 0, &err);
  assert_non_null(r);
  json_t *rows = json_object_get(r, "tensors");
  assert_true(json_is_array(rows));
  size_t n = json_array_size(rows);
  const char **names = calloc(n, sizeof *names);
  assert_non_null(names);
  for (size_t i = 0; i < n; i++) names[i] = json_string_value(json_array_get(json_array_get(rows, i), 0));
  sd_ldm_map *map = NULL;
  assert_int_equal(sd_ldm_map_build(names, n, recipe_path, &map), SD_OK);
  for (size_t i = 0; i < n; i++) {
    json_t *row = json_array_get(rows, i);
    const char *comp = json_string_value(json_array_get(row, 1));
    const char *src = json_string_value(json_array_get(row, 2));
    sd_mapped_name mn[3];
    sd_ignore_kind ign;
    int k = sd_ldm_map_name(map, names[i], mn, &ign);
    if (k != 1 || strcmp(mn[0].name, src) != 0)
      print_message("%s -> %s (expected %s)\n", names[i], k == 1 ? mn[0].name : "(ignored)", src);
    assert_int_equal(k, 1);
    assert_string_equal(mn[0].name, src);
    assert_string_equal(sd_component_name(mn[0].comp), comp);
    /* the VAE attention's 1x1 convs (weights [C,C,1,1]; the rule covers their biases too) */
    int attn = strstr(src, "mid_block.attentions.0.to_") != NULL;
    assert_int_equal(mn[0].xform, attn ? SD_XFORM_SQUEEZE : SD_XFORM_NONE);
  }
  sd_ldm_map_free(map);
  free(names);
  json_decref(r);
}

/* ---------------------------------------------------------------------------------------- */
/* Synthetic checkpoints                                                                     */
/* ---------------------------------------------------------------------------------------- */

typedef struct synth {
  char **names;
  sd_tensor *t;
  size_t n, cap;
} synth;

static uint32_t fnv1a(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

/* Values exact in float16: multiples of 1/64 below 32. */
static float pattern(uint32_t name_hash, size_t i) {
  return (float)((name_hash % 1024u) + (uint32_t)(i % 97u)) / 64.0f;
}

static void synth_add(synth *s, const char *name, sd_dtype dt, int ndim, const int64_t *shape) {
  if (s->n == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 256;
    s->names = realloc(s->names, s->cap * sizeof *s->names);
    s->t = realloc(s->t, s->cap * sizeof *s->t);
    assert_non_null(s->names);
    assert_non_null(s->t);
  }
  sd_tensor t = sd_tensor_make(dt, ndim, shape, NULL);
  size_t n = (size_t)sd_numel(&t);
  t.data = malloc(n * sd_dtype_size(dt) + 1);
  assert_non_null(t.data);
  if (sd_dtype_is_float(dt)) {
    float *f = malloc(n * sizeof *f + 1);
    assert_non_null(f);
    uint32_t h = fnv1a(name);
    for (size_t i = 0; i < n; i++) f[i] = pattern(h, i);
    sd_from_f32(t.data, dt, f, n);
    free(f);
  } else {
    memset(t.data, 0, n * sd_dtype_size(dt));
  }
  s->names[s->n] = dupstr(name);
  s->t[s->n] = t;
  s->n++;
}

static void synth_write_free(synth *s, const char *path) {
  assert_int_equal(sd_st_write(path, s->n, (const char *const *)s->names, s->t), SD_OK);
  for (size_t i = 0; i < s->n; i++) { free(s->names[i]); free(s->t[i].data); }
  free(s->names);
  free(s->t);
  memset(s, 0, sizeof *s);
}

/* Add the canonical-LDM-named tensors of a component configuration. skip: an internal name to
 * leave out; bad: an internal name to store with its first dimension + 1. */
static void synth_component(synth *s, sd_component c, const sd_clip_text_config *t, const sd_unet_config *u,
                            const sd_vae_config *v, sd_dtype dt, const char *skip, const char *bad) {
  sd_tensor_specs specs = {0};
  int rc = c == SD_COMP_TEXT ? sd_text_config_tensors(t, &specs)
         : c == SD_COMP_UNET ? sd_unet_config_tensors(u, &specs)
                             : sd_vae_config_tensors(v, &specs);
  assert_int_equal(rc, SD_OK);
  for (size_t i = 0; i < specs.n; i++) {
    sd_tensor_spec *sp = &specs.v[i];
    if (skip && strcmp(sp->name, skip) == 0) continue;
    char ldm[SD_NAME_MAX];
    sd_xform x;
    rc = sd_ldm_canonical_name(c, sp->name, u, v, ldm, sizeof ldm, &x);
    if (rc) print_message("%s\n", sd_errmsg());
    assert_int_equal(rc, SD_OK);
    int64_t shape[4] = {sp->shape[0], sp->shape[1], sp->shape[2], sp->shape[3]};
    int nd = sp->ndim;
    if (x == SD_XFORM_SQUEEZE && nd == 2) shape[2] = shape[3] = 1, nd = 4;
    if (bad && strcmp(sp->name, bad) == 0) shape[0] += 1;
    synth_add(s, ldm, dt, nd, shape);
  }
  sd_tensor_specs_free(&specs);
}

/* Every weight holds the pattern of its source tensor; a q/k/v view of a fused in_proj starts at
 * row block 0, 1 or 2. */
static void check_pattern(const sd_model_source *m, sd_component c) {
  const sd_component_weights *cw = sd_model_weights(m, c);
  for (size_t i = 0; i < cw->n; i++) {
    const sd_weight *w = &cw->w[i];
    size_t n = (size_t)sd_numel(&w->t), off = 0;
    if (strstr(w->source_name, "in_proj_")) {
      const char *q = strstr(w->name, "_proj.");
      assert_non_null(q);
      off = (size_t)(q[-1] == 'q' ? 0 : q[-1] == 'k' ? 1 : 2) * n;
    }
    float *f = malloc(n * sizeof *f + 1);
    assert_non_null(f);
    sd_to_f32(f, w->t.data, w->t.dtype, n);
    uint32_t h = fnv1a(w->source_name);
    for (size_t j = 0; j < n; j++) {
      float want = pattern(h, off + j), stored = want;
      if (w->t.dtype == SD_BF16) stored = sd_bf16_to_f32(sd_f32_to_bf16(want));
      if (f[j] != stored) {
        print_message("%s (%s) element %zu: %g\n", w->name, w->source_name, j, (double)f[j]);
        fail();
      }
    }
    free(f);
  }
}

/* ---------------------------------------------------------------------------------------- */
/* (1) clip-small diffusers folder                                                           */
/* ---------------------------------------------------------------------------------------- */

static void test_clip_small_folder(void **state) {
  (void)state;
  const char *dir = sd_test_shared(GOLDEN "clip-small/model");
  if (!dir) skip();
  char *path = dupstr(dir);
  sd_model_source *m = open_ok(path, NULL);
  print_problems(m);
  assert_int_equal(sd_model_layout(m), SD_LAYOUT_DIFFUSERS);
  assert_int_equal(sd_model_family(m), SD_FAMILY_SD1);
  assert_string_equal(sd_family_name(sd_model_family(m)), "SD 1.x");
  assert_true(problem_contains(m, "so SD 1.x rules apply"));

  const sd_clip_text_config *t = sd_model_text_config(m);
  assert_non_null(t);
  assert_int_equal(t->vocab_size, 49408);
  assert_int_equal(t->hidden, 64);
  assert_int_equal(t->layers, 2);
  assert_int_equal(t->heads, 4);
  assert_int_equal(t->intermediate, 128);
  assert_int_equal(t->max_positions, 77);
  assert_int_equal(t->act, SD_ACT_QUICK_GELU);
  assert_true(t->ln_eps == 1e-5f);
  assert_int_equal(t->bos_id, 49406);
  assert_int_equal(t->eos_id, 49407);
  assert_int_equal(t->pad_id, 49407);

  const sd_unet_config *u = sd_model_unet_config(m);
  assert_non_null(u);
  assert_int_equal(u->in_channels, 4);
  assert_int_equal(u->out_channels, 4);
  assert_int_equal(u->sample_size, 32);
  assert_int_equal(u->n_levels, 2);
  assert_int_equal(u->block_out_channels[0], 32);
  assert_int_equal(u->block_out_channels[1], 64);
  assert_int_equal(u->layers_per_block, 1);
  assert_int_equal(u->down_has_attn[0], 1);
  assert_int_equal(u->down_has_attn[1], 0);
  assert_int_equal(u->up_has_attn[0], 0);
  assert_int_equal(u->up_has_attn[1], 1);
  assert_int_equal(u->mid_has_attn, 1);
  /* attention_head_dim 8 = 8 heads: head dim 4 at 32 channels, 8 at 64 */
  assert_int_equal(u->heads[0], 8);
  assert_int_equal(u->heads[1], 8);
  assert_int_equal(u->head_dim[0], 4);
  assert_int_equal(u->head_dim[1], 8);
  assert_int_equal(u->transformer_layers, 1);
  assert_int_equal(u->cross_attention_dim, 64);
  assert_int_equal(u->use_linear_projection, 0);
  assert_int_equal(u->norm_num_groups, 32);
  assert_true(u->norm_eps == 1e-5f);
  assert_int_equal(u->time_embed_in, 32);
  assert_int_equal(u->time_embed_dim, 128);
  assert_int_equal(u->flip_sin_to_cos, 1);
  assert_int_equal(u->freq_shift, 0);
  assert_int_equal(u->prediction_v, 0);

  const sd_vae_config *v = sd_model_vae_config(m);
  assert_non_null(v);
  assert_int_equal(v->in_channels, 3);
  assert_int_equal(v->out_channels, 3);
  assert_int_equal(v->latent_channels, 4);
  assert_int_equal(v->n_levels, 2);
  assert_int_equal(v->block_out_channels[0], 32);
  assert_int_equal(v->block_out_channels[1], 64);
  assert_int_equal(v->layers_per_block, 1);
  assert_int_equal(v->norm_num_groups, 32);
  assert_true(v->scaling_factor == 0.18215f);
  assert_int_equal(v->sample_size, 64);

  /* parameter counts (sums over the files' tensors) and tensor counts */
  const sd_component_weights *w;
  w = sd_model_weights(m, SD_COMP_TEXT);
  assert_true(w->present && w->n == 36 && w->n_params == 3234112 && w->dtype_count[SD_F32] == 36);
  w = sd_model_weights(m, SD_COMP_UNET);
  assert_true(w->present && w->n == 208 && w->n_params == 803204);
  w = sd_model_weights(m, SD_COMP_VAE);
  assert_true(w->present && w->n == 124 && w->n_params == 658375);

  /* lookups */
  const sd_tensor *x = NULL;
  int64_t sh[2] = {64, 64};
  assert_int_equal(sd_model_get(m, SD_COMP_VAE, "decoder.mid_block.attentions.0.to_q.weight", 2, sh, &x), SD_OK);
  assert_non_null(x);
  assert_non_null(sd_model_find(m, SD_COMP_TEXT, "text_model.final_layer_norm.weight"));
  assert_null(sd_model_find(m, SD_COMP_TEXT, "text_model.nothing"));
  int64_t wrong[2] = {64, 32};
  assert_int_equal(sd_model_get(m, SD_COMP_VAE, "decoder.mid_block.attentions.0.to_q.weight", 2, wrong, &x), SD_E_FORMAT);
  assert_null(x);
  assert_non_null(strstr(sd_errmsg(), "expected shape [64, 32], found [64, 64]"));
  assert_int_equal(sd_model_get(m, SD_COMP_UNET, "no.such.tensor", 2, sh, &x), SD_E_FORMAT);
  assert_non_null(strstr(sd_errmsg(), "no tensor no.such.tensor"));
  assert_int_equal(sd_model_need(m, SD_COMP_UNET), SD_OK);

  assert_non_null(sd_model_vocab_path(m));
  assert_non_null(strstr(sd_model_vocab_path(m), "tokenizer/vocab.json"));
  assert_non_null(strstr(sd_model_merges_path(m), "tokenizer/merges.txt"));
  assert_non_null(sd_model_component_file(m, SD_COMP_UNET));
  sd_model_close(m);
  free(path);
}

/* ---------------------------------------------------------------------------------------- */
/* (2) clip-small single files (f32, f16) == folder                                          */
/* ---------------------------------------------------------------------------------------- */

static void test_clip_small_single_files(void **state) {
  (void)state;
  const char *d = sd_test_shared(GOLDEN "clip-small/model");
  if (!d) skip();
  char *dir = dupstr(d);
  char *script = dupstr(sd_test_shared(GOLDEN "clip-small/make_single_file.py"));
  char *recipe = dupstr(sd_test_shared(GOLDEN "clip-small/single_file_recipe.json"));
  char *out = dupstr(sd_test_tmp("clip-small-ldm"));
  mkdirs(out);
  if (make_single_files(script, out) != 0) { free(dir); free(script); free(recipe); free(out); skip(); }
  check_recipe(recipe);

  sd_model_source *folder = open_ok(dir, NULL);
  static const char *const files[2] = {"clip-small-ldm-f32.safetensors", "clip-small-ldm-f16.safetensors"};
  for (int k = 0; k < 2; k++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", out, files[k]);
    sd_model_source *single = open_ok(path, NULL);
    print_problems(single);
    assert_int_equal(sd_model_layout(single), SD_LAYOUT_SINGLE_FILE);
    assert_int_equal(sd_model_family(single), SD_FAMILY_SD1);
    assert_same_weights(folder, single);
    assert_int_equal(sd_model_weights(single, SD_COMP_UNET)->dtype_count[k ? SD_F16 : SD_F32], 208);
    /* inferred configs equal the folder's except what the weights cannot tell */
    assert_text_config_equal(sd_model_text_config(folder), sd_model_text_config(single), 0);
    assert_int_equal(sd_model_text_config(single)->heads, 1); /* width 64: one head of 64 assumed */
    assert_true(problem_contains(single, "number of heads cannot be read"));
    assert_unet_config_equal(sd_model_unet_config(folder), sd_model_unet_config(single), 0);
    assert_vae_config_equal(sd_model_vae_config(folder), sd_model_vae_config(single), 0);
    assert_null(sd_model_vocab_path(single));
    /* the VAE attention is a [C,C,1,1] conv in the file, [C,C] here */
    const sd_component_weights *vw = sd_model_weights(single, SD_COMP_VAE);
    int found = 0;
    for (size_t i = 0; i < vw->n; i++)
      if (strcmp(vw->w[i].name, "decoder.mid_block.attentions.0.to_out.0.weight") == 0) {
        assert_string_equal(vw->w[i].source_name, "first_stage_model.decoder.mid.attn_1.proj_out.weight");
        assert_int_equal(vw->w[i].t.ndim, 2);
        found = 1;
      }
    assert_true(found);
    sd_model_close(single);

    /* with the folder as config source: identical configs, tokenizer too */
    single = open_ok(path, dir);
    assert_text_config_equal(sd_model_text_config(folder), sd_model_text_config(single), 1);
    assert_unet_config_equal(sd_model_unet_config(folder), sd_model_unet_config(single), 1);
    assert_vae_config_equal(sd_model_vae_config(folder), sd_model_vae_config(single), 1);
    assert_non_null(sd_model_vocab_path(single));
    assert_false(problem_contains(single, "number of heads cannot be read"));
    sd_model_close(single);
  }
  sd_model_close(folder);
  free(dir);
  free(script);
  free(recipe);
  free(out);
}

/* ---------------------------------------------------------------------------------------- */
/* (3) tiny: component files (as a diffusers folder of symlinks) == model_original           */
/* ---------------------------------------------------------------------------------------- */

static void make_tiny_folder(const char *weights, const char *dir) {
  static const char *const comp[3] = {"text_encoder", "unet", "vae"};
  static const char *const file[3] = {"model.safetensors", "diffusion_pytorch_model.safetensors",
                                      "diffusion_pytorch_model.safetensors"};
  char a[4096], b[4096];
  for (int c = 0; c < 3; c++) {
    snprintf(a, sizeof a, "%s/%s", dir, comp[c]);
    mkdirs(a);
    snprintf(a, sizeof a, "%s/%s.safetensors", weights, comp[c]);
    snprintf(b, sizeof b, "%s/%s/%s", dir, comp[c], file[c]);
    relink(a, b);
    snprintf(a, sizeof a, "%s/%s_config.json", weights, comp[c]);
    snprintf(b, sizeof b, "%s/%s/config.json", dir, comp[c]);
    relink(a, b);
  }
  snprintf(a, sizeof a, "%s/model_index.json", dir);
  write_text(a, "{\"_class_name\": \"StableDiffusionPipeline\", \"text_encoder\": [\"transformers\", \"CLIPTextModel\"],"
                " \"unet\": [\"diffusers\", \"UNet2DConditionModel\"], \"vae\": [\"diffusers\", \"AutoencoderKL\"]}\n");
}

static void test_tiny_both_layouts(void **state) {
  (void)state;
  const char *w = sd_test_shared(GOLDEN "tiny/weights");
  if (!w) skip();
  char *weights = dupstr(w);
  char *script = dupstr(sd_test_shared(GOLDEN "tiny/make_single_file.py"));
  char *recipe = dupstr(sd_test_shared(GOLDEN "tiny/single_file_recipe.json"));
  char *out = dupstr(sd_test_tmp("tiny-ldm"));
  char *dir = dupstr(sd_test_tmp("tiny-diffusers"));
  mkdirs(out);
  if (make_single_files(script, out) != 0) { free(weights); free(script); free(recipe); free(out); free(dir); skip(); }
  check_recipe(recipe);
  make_tiny_folder(weights, dir);

  sd_model_source *folder = open_ok(dir, NULL);
  print_problems(folder);
  assert_int_equal(sd_model_family(folder), SD_FAMILY_SD1);
  const sd_clip_text_config *t = sd_model_text_config(folder);
  assert_true(t->vocab_size == 1000 && t->hidden == 32 && t->layers == 5 && t->heads == 4 && t->intermediate == 37);
  assert_true(t->bos_id == 0 && t->eos_id == 2 && t->pad_id == 1);
  const sd_unet_config *u = sd_model_unet_config(folder);
  assert_true(u->n_levels == 2 && u->layers_per_block == 2 && u->cross_attention_dim == 32);
  assert_true(!u->down_has_attn[0] && u->down_has_attn[1] && u->up_has_attn[0] && !u->up_has_attn[1]);
  assert_true(u->heads[0] == 8 && u->heads[1] == 8);
  assert_int_equal(sd_model_vae_config(folder)->sample_size, 128);
  assert_true(sd_model_weights(folder, SD_COMP_TEXT)->n_params == 68473);
  assert_true(sd_model_weights(folder, SD_COMP_UNET)->n_params == 1427012);
  assert_true(sd_model_weights(folder, SD_COMP_VAE)->n_params == 658375);

  char path[4096];
  snprintf(path, sizeof path, "%s/weights/model_original.safetensors", out);
  sd_model_source *single = open_ok(path, NULL);
  print_problems(single);
  assert_int_equal(sd_model_family(single), SD_FAMILY_SD1);
  assert_same_weights(folder, single);
  assert_text_config_equal(sd_model_text_config(folder), sd_model_text_config(single), 0);
  assert_unet_config_equal(sd_model_unet_config(folder), sd_model_unet_config(single), 0);
  assert_vae_config_equal(sd_model_vae_config(folder), sd_model_vae_config(single), 0);
  /* diffusers' converter left up_blocks.0.attentions unrenamed: accepted, and said so */
  assert_true(problem_contains(single, "already had diffusers names"));
  assert_true(problem_contains(single, "vocabulary of 1000 tokens"));
  sd_model_close(single);

  single = open_ok(path, dir);
  assert_text_config_equal(sd_model_text_config(folder), sd_model_text_config(single), 1);
  assert_unet_config_equal(sd_model_unet_config(folder), sd_model_unet_config(single), 1);
  assert_vae_config_equal(sd_model_vae_config(folder), sd_model_vae_config(single), 1);
  sd_model_close(single);
  sd_model_close(folder);
  free(weights);
  free(script);
  free(recipe);
  free(out);
  free(dir);
}

/* ---------------------------------------------------------------------------------------- */
/* (4) synthetic SD 2.x-style OpenCLIP single file                                           */
/* ---------------------------------------------------------------------------------------- */

static sd_unet_config sd2_unet(void) {
  sd_unet_config u;
  memset(&u, 0, sizeof u);
  u.in_channels = 4, u.out_channels = 4, u.sample_size = 96, u.n_levels = 2;
  u.block_out_channels[0] = 64, u.block_out_channels[1] = 128;
  u.layers_per_block = 1;
  u.down_has_attn[0] = 1, u.up_has_attn[1] = 1, u.mid_has_attn = 1;
  u.heads[0] = 1, u.heads[1] = 2, u.head_dim[0] = 64, u.head_dim[1] = 64;
  u.transformer_layers = 1, u.cross_attention_dim = 64, u.use_linear_projection = 1;
  u.norm_num_groups = 32, u.norm_eps = 1e-5f, u.time_embed_in = 64, u.time_embed_dim = 256;
  u.flip_sin_to_cos = 1, u.prediction_v = 1;
  return u;
}

static sd_vae_config small_vae(int levels) {
  sd_vae_config v;
  memset(&v, 0, sizeof v);
  v.in_channels = 3, v.out_channels = 3, v.latent_channels = 4, v.n_levels = levels;
  for (int i = 0; i < levels; i++) v.block_out_channels[i] = i == 0 ? 32 : 64;
  v.layers_per_block = 1, v.norm_num_groups = 32, v.scaling_factor = 0.18215f;
  return v;
}

static void test_openclip_sd2_single_file(void **state) {
  (void)state;
  const int D = 64, V = 49408, P = 77, I = 256, BLOCKS = 3;
  synth s = {0};
  char name[256];
  int64_t sh[4];
  /* OpenCLIP text tower, names as in SD 2.x checkpoints */
  sh[0] = V, sh[1] = D;
  synth_add(&s, "cond_stage_model.model.token_embedding.weight", SD_F16, 2, sh);
  sh[0] = P, sh[1] = D;
  synth_add(&s, "cond_stage_model.model.positional_embedding", SD_F32, 2, sh);
  for (int b = 0; b < BLOCKS; b++) {
    static const struct { const char *n; int nd; int r, c; } parts[] = {
      {"attn.in_proj_weight", 2, 3, 1}, {"attn.in_proj_bias", 1, 3, 0}, {"attn.out_proj.weight", 2, 1, 1},
      {"attn.out_proj.bias", 1, 1, 0}, {"ln_1.weight", 1, 1, 0}, {"ln_1.bias", 1, 1, 0},
      {"ln_2.weight", 1, 1, 0}, {"ln_2.bias", 1, 1, 0}, {"mlp.c_fc.weight", 2, -1, 1},
      {"mlp.c_fc.bias", 1, -1, 0}, {"mlp.c_proj.weight", 2, 1, -1}, {"mlp.c_proj.bias", 1, 1, 0}};
    for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++) {
      snprintf(name, sizeof name, "cond_stage_model.model.transformer.resblocks.%d.%s", b, parts[k].n);
      sh[0] = parts[k].r < 0 ? I : parts[k].r * D;
      sh[1] = parts[k].c < 0 ? I : D;
      synth_add(&s, name, SD_F32, parts[k].nd, sh);
    }
  }
  sh[0] = D, sh[1] = D;
  synth_add(&s, "cond_stage_model.model.ln_final.weight", SD_F32, 1, sh);
  synth_add(&s, "cond_stage_model.model.ln_final.bias", SD_F32, 1, sh);
  synth_add(&s, "cond_stage_model.model.text_projection", SD_F32, 2, sh);
  synth_add(&s, "cond_stage_model.model.logit_scale", SD_F32, 0, sh);
  /* UNet with linear projections and cross-attention width 64; VAE */
  sd_unet_config u = sd2_unet();
  sd_vae_config v = small_vae(2);
  synth_component(&s, SD_COMP_UNET, NULL, &u, &v, SD_F16, NULL, NULL);
  synth_component(&s, SD_COMP_VAE, NULL, &u, &v, SD_F16, NULL, NULL);
  sh[0] = 1000;
  synth_add(&s, "alphas_cumprod", SD_F32, 1, sh);
  char *path = dupstr(sd_test_tmp("sd2-openclip.safetensors"));
  synth_write_free(&s, path);

  sd_model_source *m = open_ok(path, NULL);
  print_problems(m);
  assert_int_equal(sd_model_family(m), SD_FAMILY_SD2);
  assert_true(problem_contains(m, "OpenCLIP-like"));
  const sd_clip_text_config *t = sd_model_text_config(m);
  assert_int_equal(t->act, SD_ACT_GELU);
  assert_int_equal(t->hidden, D);
  assert_int_equal(t->heads, 1);
  assert_int_equal(t->intermediate, I);
  assert_int_equal(t->layers, BLOCKS - 1); /* the last resblock is SD 2.x's skipped layer */
  assert_int_equal(t->vocab_size, V);
  assert_int_equal(t->bos_id, 49406);
  assert_int_equal(t->eos_id, 49407);
  assert_int_equal(t->pad_id, 0);
  assert_true(problem_contains(m, "penultimate"));
  assert_true(problem_contains(m, "ignored 2 tensors: text-encoder tensors SD does not use"));
  assert_true(problem_contains(m, "ignored 1 tensor: training-only"));
  assert_true(problem_contains(m, "assuming v-prediction"));
  sd_unet_config want = sd2_unet();
  assert_unet_config_equal(&want, sd_model_unet_config(m), 1);
  assert_int_equal(sd_model_vae_config(m)->sample_size, 192);

  /* fused in_proj -> q/k/v views on rows 0..D-1, D..2D-1, 2D..3D-1 */
  const sd_safetensors *st = NULL;
  sd_safetensors *own = NULL;
  assert_int_equal(sd_st_open(path, &own), SD_OK);
  st = own;
  for (int b = 0; b < BLOCKS - 1; b++) {
    static const char *const qkv[3] = {"q", "k", "v"};
    for (int part = 0; part < 3; part++) {
      char src[256];
      snprintf(src, sizeof src, "cond_stage_model.model.transformer.resblocks.%d.attn.in_proj_weight", b);
      snprintf(name, sizeof name, "text_model.encoder.layers.%d.self_attn.%s_proj.weight", b, qkv[part]);
      const sd_tensor *x = NULL;
      int64_t want_sh[2] = {D, D};
      assert_int_equal(sd_model_get(m, SD_COMP_TEXT, name, 2, want_sh, &x), SD_OK);
      /* the view's bytes are rows part*D.. of the stored tensor (compare through the file) */
      const sd_st_entry *e = sd_st_find(st, src);
      assert_non_null(e);
      size_t off = (size_t)part * D * D * 4;
      assert_int_equal(memcmp(x->data, (const char *)e->data + off, (size_t)D * D * 4), 0);
      snprintf(src, sizeof src, "cond_stage_model.model.transformer.resblocks.%d.attn.in_proj_bias", b);
      snprintf(name, sizeof name, "text_model.encoder.layers.%d.self_attn.%s_proj.bias", b, qkv[part]);
      int64_t bsh[1] = {D};
      assert_int_equal(sd_model_get(m, SD_COMP_TEXT, name, 1, bsh, &x), SD_OK);
      e = sd_st_find(st, src);
      assert_int_equal(memcmp(x->data, (const char *)e->data + (size_t)part * D * 4, (size_t)D * 4), 0);
    }
  }
  assert_null(sd_model_find(m, SD_COMP_TEXT, "text_model.encoder.layers.2.layer_norm1.weight"));
  check_pattern(m, SD_COMP_TEXT);
  check_pattern(m, SD_COMP_UNET);
  check_pattern(m, SD_COMP_VAE);
  sd_st_close(own);
  sd_model_close(m);

  /* a sidecar LDM .yaml decides the prediction type */
  char *yaml = dupstr(sd_test_tmp("sd2-openclip.yaml"));
  write_text(yaml, "model:\n  params:\n    parameterization: \"v\"\n");
  m = open_ok(path, NULL);
  assert_int_equal(sd_model_unet_config(m)->prediction_v, 1);
  assert_false(problem_contains(m, "assuming v-prediction"));
  sd_model_close(m);
  write_text(yaml, "model:\n  params:\n    linear_start: 0.00085\n");
  m = open_ok(path, NULL);
  assert_int_equal(sd_model_unet_config(m)->prediction_v, 0);
  assert_int_equal(sd_model_unet_config(m)->sample_size, 64);
  sd_model_close(m);
  unlink(yaml);
  free(yaml);
  /* a config folder that does not exist */
  sd_model_open_opts o = {"/nonexistent/config/folder", 1};
  assert_int_equal(sd_model_open_ex(path, &o, &m), SD_E_IO);
  assert_non_null(strstr(sd_errmsg(), "config folder"));
  unlink(path);
  free(path);
}

/* ---------------------------------------------------------------------------------------- */
/* 4-level SD 1.5-shaped UNet (canonical LDM layout, stride layers+1 = 3)                    */
/* ---------------------------------------------------------------------------------------- */

static sd_unet_config sd15_like_unet(void) {
  sd_unet_config u;
  memset(&u, 0, sizeof u);
  u.in_channels = 4, u.out_channels = 4, u.sample_size = 64, u.n_levels = 4;
  int ch[4] = {32, 32, 64, 64};
  for (int i = 0; i < 4; i++) {
    u.block_out_channels[i] = ch[i];
    u.down_has_attn[i] = i < 3;
    u.up_has_attn[i] = i > 0;
    u.heads[i] = 8;
    u.head_dim[i] = ch[i] / 8;
  }
  u.layers_per_block = 2, u.mid_has_attn = 1, u.transformer_layers = 1, u.cross_attention_dim = 768;
  u.norm_num_groups = 32, u.norm_eps = 1e-5f, u.time_embed_in = 32, u.time_embed_dim = 128, u.flip_sin_to_cos = 1;
  return u;
}

static void test_sd15_layout(void **state) {
  (void)state;
  sd_unet_config u = sd15_like_unet();
  sd_vae_config v = small_vae(4);
  v.layers_per_block = 2; /* as SD's VAE: 2 ResNets per encoder level, 3 per decoder level */
  /* spot checks against diffusers' convert script for SD 1.5 (4 levels, 2 layers) */
  static const char *const pairs[][2] = {
    {"down_blocks.0.downsamplers.0.conv.weight", "model.diffusion_model.input_blocks.3.0.op.weight"},
    {"down_blocks.2.attentions.1.proj_in.weight", "model.diffusion_model.input_blocks.8.1.proj_in.weight"},
    {"down_blocks.3.resnets.1.conv2.bias", "model.diffusion_model.input_blocks.11.0.out_layers.3.bias"},
    {"up_blocks.0.upsamplers.0.conv.weight", "model.diffusion_model.output_blocks.2.1.conv.weight"},
    {"up_blocks.1.upsamplers.0.conv.weight", "model.diffusion_model.output_blocks.5.2.conv.weight"},
    {"up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_k.weight",
     "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.attn2.to_k.weight"},
    {"up_blocks.2.resnets.0.conv_shortcut.weight", "model.diffusion_model.output_blocks.6.0.skip_connection.weight"},
    {"mid_block.resnets.1.time_emb_proj.weight", "model.diffusion_model.middle_block.2.emb_layers.1.weight"},
    {"time_embedding.linear_2.bias", "model.diffusion_model.time_embed.2.bias"},
    {"conv_norm_out.weight", "model.diffusion_model.out.0.weight"},
  };
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
    char ldm[SD_NAME_MAX];
    sd_xform x;
    assert_int_equal(sd_ldm_canonical_name(SD_COMP_UNET, pairs[i][0], &u, &v, ldm, sizeof ldm, &x), SD_OK);
    assert_string_equal(ldm, pairs[i][1]);
  }
  static const char *const vpairs[][2] = {
    {"decoder.up_blocks.0.upsamplers.0.conv.weight", "first_stage_model.decoder.up.3.upsample.conv.weight"},
    {"decoder.up_blocks.3.resnets.2.norm1.bias", "first_stage_model.decoder.up.0.block.2.norm1.bias"},
    {"encoder.down_blocks.1.resnets.0.conv_shortcut.weight", "first_stage_model.encoder.down.1.block.0.nin_shortcut.weight"},
    {"decoder.mid_block.attentions.0.to_out.0.weight", "first_stage_model.decoder.mid.attn_1.proj_out.weight"},
    {"encoder.conv_norm_out.bias", "first_stage_model.encoder.norm_out.bias"},
  };
  for (size_t i = 0; i < sizeof vpairs / sizeof vpairs[0]; i++) {
    char ldm[SD_NAME_MAX];
    sd_xform x;
    assert_int_equal(sd_ldm_canonical_name(SD_COMP_VAE, vpairs[i][0], &u, &v, ldm, sizeof ldm, &x), SD_OK);
    assert_string_equal(ldm, vpairs[i][1]);
  }

  /* write the whole model in that layout (plus the usual extras) and read it back */
  synth s = {0};
  synth_component(&s, SD_COMP_UNET, NULL, &u, &v, SD_BF16, NULL, NULL);
  synth_component(&s, SD_COMP_VAE, NULL, &u, &v, SD_F32, NULL, NULL);
  int64_t sh[2] = {1, 77};
  synth_add(&s, "cond_stage_model.transformer.text_model.embeddings.position_ids", SD_I64, 2, sh);
  synth_add(&s, "model_ema.decay", SD_F32, 0, sh);
  synth_add(&s, "model_ema.diffusion_modelinput_blocks00weight", SD_F32, 1, sh);
  char *path = dupstr(sd_test_tmp("sd15-layout.safetensors"));
  synth_write_free(&s, path);

  sd_model_source *m = open_ok(path, NULL);
  print_problems(m);
  assert_int_equal(sd_model_family(m), SD_FAMILY_SD1);
  assert_null(sd_model_text_config(m));
  assert_int_equal(sd_model_need(m, SD_COMP_TEXT), SD_E_FORMAT);
  assert_non_null(strstr(sd_errmsg(), "has no text_encoder"));
  assert_unet_config_equal(&u, sd_model_unet_config(m), 1);
  v.sample_size = 512;
  assert_vae_config_equal(&v, sd_model_vae_config(m), 1);
  assert_true(problem_contains(m, "ignored 2 tensors: EMA copy"));
  assert_true(problem_contains(m, "ignored 1 tensor: text-encoder tensors"));
  const sd_component_weights *uw = sd_model_weights(m, SD_COMP_UNET);
  assert_int_equal(uw->dtype_count[SD_BF16], (int)uw->n);
  /* every mapped name maps back to its source name */
  for (int c = SD_COMP_UNET; c <= SD_COMP_VAE; c++) {
    const sd_component_weights *cw = sd_model_weights(m, c);
    for (size_t i = 0; i < cw->n; i++) {
      char ldm[SD_NAME_MAX];
      sd_xform x;
      assert_int_equal(sd_ldm_canonical_name(c, cw->w[i].name, &u, &v, ldm, sizeof ldm, &x), SD_OK);
      assert_string_equal(ldm, cw->w[i].source_name);
    }
  }
  check_pattern(m, SD_COMP_UNET);
  check_pattern(m, SD_COMP_VAE);
  sd_model_close(m);
  unlink(path);
  free(path);
}

/* ---------------------------------------------------------------------------------------- */
/* (5) errors                                                                                */
/* ---------------------------------------------------------------------------------------- */

static void test_errors_paths(void **state) {
  (void)state;
  char *missing = dupstr(sd_test_tmp("no-such-model"));
  open_fails(missing, SD_E_IO, "no such file or folder", NULL);
  char *empty = dupstr(sd_test_tmp("not-a-diffusers-folder"));
  mkdirs(empty);
  open_fails(empty, SD_E_FORMAT, "not a diffusers model folder", "model_index.json", NULL);

  /* pickle checkpoints: by extension, and by content whatever the extension */
  char *ckpt = dupstr(sd_test_tmp("model.ckpt"));
  write_text(ckpt, "PK\003\004 not really a zip");
  open_fails(ckpt, SD_E_UNSUPPORTED, "pickle", "model.ckpt", NULL);
  char *disguised = dupstr(sd_test_tmp("disguised.safetensors"));
  write_text(disguised, "\x80\x02}q\x00.");
  open_fails(disguised, SD_E_UNSUPPORTED, "pickle", NULL);
  char *text = dupstr(sd_test_tmp("notes.txt"));
  write_text(text, "hello, this is not a model at all");
  open_fails(text, SD_E_FORMAT, "neither a diffusers folder nor a .safetensors checkpoint", NULL);

  /* a safetensors file that is not an SD checkpoint */
  synth s = {0};
  int64_t sh[1] = {4};
  synth_add(&s, "some.other.weight", SD_F32, 1, sh);
  char *other = dupstr(sd_test_tmp("other.safetensors"));
  synth_write_free(&s, other);
  open_fails(other, SD_E_FORMAT, "not a Stable Diffusion checkpoint", NULL);

  /* a diffusers folder whose UNet has only pickle weights */
  char *pk = dupstr(sd_test_tmp("pickle-folder"));
  char buf[4096];
  snprintf(buf, sizeof buf, "%s/unet", pk);
  mkdirs(buf);
  snprintf(buf, sizeof buf, "%s/model_index.json", pk);
  write_text(buf, "{\"_class_name\": \"StableDiffusionPipeline\"}");
  snprintf(buf, sizeof buf, "%s/unet/diffusion_pytorch_model.bin", pk);
  write_text(buf, "\x80\x02.");
  open_fails(pk, SD_E_UNSUPPORTED, "pickle", "diffusion_pytorch_model.bin", NULL);
  free(missing);
  free(empty);
  free(ckpt);
  free(disguised);
  free(text);
  free(other);
  free(pk);
}

static void test_errors_shapes(void **state) {
  (void)state;
  sd_unet_config u = sd2_unet();
  sd_vae_config v = small_vae(2);
  char *path = dupstr(sd_test_tmp("broken.safetensors"));
  synth s = {0};

  /* a missing tensor */
  synth_component(&s, SD_COMP_UNET, NULL, &u, &v, SD_F16, NULL, NULL);
  synth_component(&s, SD_COMP_VAE, NULL, &u, &v, SD_F16, "decoder.mid_block.attentions.0.to_k.weight", NULL);
  synth_write_free(&s, path);
  open_fails(path, SD_E_FORMAT, "vae tensor decoder.mid_block.attentions.0.to_k.weight is missing",
             "expected shape [64, 64]", NULL);

  /* a wrong-shaped tensor: named by both names, with both shapes */
  synth_component(&s, SD_COMP_UNET, NULL, &u, &v, SD_F16, NULL, "up_blocks.1.resnets.0.conv1.weight");
  synth_component(&s, SD_COMP_VAE, NULL, &u, &v, SD_F16, NULL, NULL);
  synth_write_free(&s, path);
  open_fails(path, SD_E_FORMAT, "unet tensor up_blocks.1.resnets.0.conv1.weight",
             "stored as model.diffusion_model.output_blocks.2.0.in_layers.2.weight", "expected shape [64, 192, 3, 3]",
             "found [65, 192, 3, 3]", NULL);

  /* an integer tensor where a weight belongs */
  synth_component(&s, SD_COMP_VAE, NULL, &u, &v, SD_F16, "post_quant_conv.bias", NULL);
  int64_t sh[1] = {4};
  synth_add(&s, "first_stage_model.post_quant_conv.bias", SD_I32, 1, sh);
  synth_write_free(&s, path);
  open_fails(path, SD_E_FORMAT, "first_stage_model.post_quant_conv.bias has dtype I32", NULL);
  unlink(path);
  free(path);

  /* config vs weights: clip-small's weights with a UNet config that says cross_attention_dim 32 */
  const char *d = sd_test_shared(GOLDEN "clip-small/model");
  if (!d) skip();
  char *src = dupstr(d);
  char *dir = dupstr(sd_test_tmp("clip-small-badconfig"));
  char a[4096], b[4096];
  static const char *const comps[3] = {"text_encoder", "unet", "vae"};
  static const char *const files[3] = {"model.safetensors", "diffusion_pytorch_model.safetensors",
                                       "diffusion_pytorch_model.safetensors"};
  for (int c = 0; c < 3; c++) {
    snprintf(a, sizeof a, "%s/%s", dir, comps[c]);
    mkdirs(a);
    snprintf(a, sizeof a, "%s/%s/%s", src, comps[c], files[c]);
    snprintf(b, sizeof b, "%s/%s/%s", dir, comps[c], files[c]);
    relink(a, b);
    if (c != 1) {
      snprintf(a, sizeof a, "%s/%s/config.json", src, comps[c]);
      snprintf(b, sizeof b, "%s/%s/config.json", dir, comps[c]);
      relink(a, b);
    }
  }
  snprintf(a, sizeof a, "%s/model_index.json", src);
  snprintf(b, sizeof b, "%s/model_index.json", dir);
  relink(a, b);
  snprintf(a, sizeof a, "%s/unet/config.json", src);
  size_t len = 0;
  char *cfg = sd_test_read_file(a, &len);
  assert_non_null(cfg);
  char *p = strstr(cfg, "\"cross_attention_dim\": 64");
  assert_non_null(p);
  memcpy(p + strlen("\"cross_attention_dim\": "), "32", 2);
  snprintf(b, sizeof b, "%s/unet/config.json", dir);
  write_text(b, cfg);
  open_fails(dir, SD_E_FORMAT, "unet tensor down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
             "expected shape [32, 32] (from", "unet/config.json), found [32, 64]", NULL);
  /* an unsupported architecture option is named */
  p = strstr(cfg, "\"cross_attention_dim\": 32");
  memcpy(p + strlen("\"cross_attention_dim\": "), "64", 2);
  p = strstr(cfg, "\"class_embed_type\": null");
  assert_non_null(p);
  memcpy(p + strlen("\"class_embed_type\": "), "1   ", 4);
  write_text(b, cfg);
  open_fails(dir, SD_E_UNSUPPORTED, "class_embed_type", NULL);
  free(cfg);
  free(src);
  free(dir);
}

/* ---------------------------------------------------------------------------------------- */
/* Legacy diffusers VAE names (query/key/value/proj_attn, 1x1-conv shapes), .fp16 variant     */
/* ---------------------------------------------------------------------------------------- */

static void test_vae_legacy_names(void **state) {
  (void)state;
  const char *d = sd_test_shared(GOLDEN "clip-small/model");
  if (!d) skip();
  char *src = dupstr(d);
  char *dir = dupstr(sd_test_tmp("vae-legacy"));
  char a[4096], b[4096];
  snprintf(a, sizeof a, "%s/vae", dir);
  mkdirs(a);
  snprintf(a, sizeof a, "%s/vae/diffusion_pytorch_model.safetensors", src);
  sd_safetensors *st = NULL;
  assert_int_equal(sd_st_open(a, &st), SD_OK);
  char **names = calloc(st->n, sizeof *names);
  sd_tensor *ts = calloc(st->n, sizeof *ts);
  assert_true(names && ts);
  static const char *const ren[][2] = {{"to_q.", "query."}, {"to_k.", "key."}, {"to_v.", "value."}, {"to_out.0.", "proj_attn."}};
  for (size_t i = 0; i < st->n; i++) {
    const sd_st_entry *e = &st->entries[i];
    char name[256];
    snprintf(name, sizeof name, "%s", e->name);
    sd_tensor t = sd_st_tensor(e);
    char *at = strstr(name, "mid_block.attentions.0.");
    for (size_t k = 0; at && k < 4; k++) {
      char *r = strstr(at, ren[k][0]);
      if (!r) continue;
      char tail[128];
      snprintf(tail, sizeof tail, "%s", r + strlen(ren[k][0]));
      snprintf(r, sizeof name - (size_t)(r - name), "%s%s", ren[k][1], tail);
      if (t.ndim == 2) t.ndim = 4, t.shape[2] = t.shape[3] = 1;
    }
    size_t n = (size_t)sd_numel(&t);
    float *f = malloc(n * sizeof *f + 1);
    void *h = malloc(n * 2 + 1);
    assert_true(f && h);
    sd_to_f32(f, t.data, t.dtype, n);
    sd_from_f32(h, SD_F16, f, n);
    free(f);
    t.dtype = SD_F16;
    t.data = h;
    names[i] = dupstr(name);
    ts[i] = t;
  }
  snprintf(b, sizeof b, "%s/vae/diffusion_pytorch_model.fp16.safetensors", dir);
  assert_int_equal(sd_st_write(b, st->n, (const char *const *)names, ts), SD_OK);
  for (size_t i = 0; i < st->n; i++) { free(names[i]); free(ts[i].data); }
  free(names);
  free(ts);
  sd_st_close(st);
  snprintf(a, sizeof a, "%s/vae/config.json", src);
  snprintf(b, sizeof b, "%s/vae/config.json", dir);
  relink(a, b);
  snprintf(b, sizeof b, "%s/model_index.json", dir);
  write_text(b, "{\"_class_name\": \"StableDiffusionPipeline\", \"vae\": [\"diffusers\", \"AutoencoderKL\"]}");

  sd_model_source *ref = open_ok(src, NULL);
  sd_model_source *m = open_ok(dir, NULL);
  print_problems(m);
  assert_false(sd_model_weights(m, SD_COMP_UNET)->present);
  assert_null(sd_model_unet_config(m));
  assert_int_equal(sd_model_need(m, SD_COMP_UNET), SD_E_FORMAT);
  assert_int_equal(sd_model_family(m), SD_FAMILY_UNKNOWN);
  assert_non_null(strstr(sd_model_component_file(m, SD_COMP_VAE), ".fp16.safetensors"));
  assert_int_equal(sd_model_weights(m, SD_COMP_VAE)->dtype_count[SD_F16], 124);
  assert_same_component(ref, m, SD_COMP_VAE);
  const sd_component_weights *vw = sd_model_weights(m, SD_COMP_VAE);
  for (size_t i = 0; i < vw->n; i++)
    if (strcmp(vw->w[i].name, "encoder.mid_block.attentions.0.to_out.0.weight") == 0)
      assert_string_equal(vw->w[i].source_name, "encoder.mid_block.attentions.0.proj_attn.weight");
  sd_model_close(m);
  sd_model_close(ref);
  free(src);
  free(dir);
}

/* ---------------------------------------------------------------------------------------- */
/* Config parsing                                                                            */
/* ---------------------------------------------------------------------------------------- */

static void test_config_parsing(void **state) {
  (void)state;
  sd_unet_config u;
  /* SD 2.x: attention_head_dim as a list = heads per level */
  const char *sd2 = "{\"_class_name\": \"UNet2DConditionModel\", \"attention_head_dim\": [5, 10, 20, 20],"
                    " \"block_out_channels\": [320, 640, 1280, 1280], \"cross_attention_dim\": 1024,"
                    " \"use_linear_projection\": true, \"sample_size\": 96, \"num_attention_heads\": null}";
  assert_int_equal(sd_parse_unet_config_json(sd2, strlen(sd2), "sd2", &u), SD_OK);
  assert_true(u.heads[0] == 5 && u.heads[3] == 20 && u.head_dim[0] == 64 && u.head_dim[2] == 64);
  assert_true(u.use_linear_projection && u.cross_attention_dim == 1024 && u.layers_per_block == 2);
  assert_true(u.down_has_attn[0] && !u.down_has_attn[3] && !u.up_has_attn[0] && u.up_has_attn[3]);
  assert_int_equal(u.time_embed_dim, 1280);
  /* num_attention_heads wins when given */
  const char *nah = "{\"attention_head_dim\": 8, \"num_attention_heads\": 4, \"block_out_channels\": [64, 128],"
                    " \"down_block_types\": [\"DownBlock2D\", \"CrossAttnDownBlock2D\"],"
                    " \"up_block_types\": [\"CrossAttnUpBlock2D\", \"UpBlock2D\"], \"transformer_layers_per_block\": [2, 2]}";
  assert_int_equal(sd_parse_unet_config_json(nah, strlen(nah), "nah", &u), SD_OK);
  assert_true(u.heads[0] == 4 && u.head_dim[0] == 16 && u.head_dim[1] == 32 && u.transformer_layers == 2);
  const char *bad_list = "{\"transformer_layers_per_block\": [1, 2, 1, 1]}";
  assert_int_equal(sd_parse_unet_config_json(bad_list, strlen(bad_list), "x", &u), SD_E_UNSUPPORTED);
  const char *bad_type = "{\"down_block_types\": [\"SimpleCrossAttnDownBlock2D\", \"DownBlock2D\", \"DownBlock2D\", \"DownBlock2D\"]}";
  assert_int_equal(sd_parse_unet_config_json(bad_type, strlen(bad_type), "x", &u), SD_E_UNSUPPORTED);
  assert_non_null(strstr(sd_errmsg(), "SimpleCrossAttnDownBlock2D"));
  const char *bad_heads = "{\"attention_head_dim\": 7}";
  assert_int_equal(sd_parse_unet_config_json(bad_heads, strlen(bad_heads), "x", &u), SD_E_FORMAT);
  assert_int_equal(sd_parse_unet_config_json("[1]", 3, "x", &u), SD_E_FORMAT);
  assert_int_equal(sd_parse_unet_config_json("{", 1, "x", &u), SD_E_FORMAT);

  sd_clip_text_config t;
  const char *sd2t = "{\"hidden_size\": 1024, \"num_attention_heads\": 16, \"num_hidden_layers\": 23,"
                     " \"intermediate_size\": 4096, \"hidden_act\": \"gelu\", \"bos_token_id\": 0, \"eos_token_id\": 2,"
                     " \"pad_token_id\": 1, \"vocab_size\": 49408}";
  assert_int_equal(sd_parse_text_config_json(sd2t, strlen(sd2t), "t", &t), SD_OK);
  assert_true(t.act == SD_ACT_GELU && t.layers == 23 && t.heads == 16);
  const char *badact = "{\"hidden_act\": \"relu\"}";
  assert_int_equal(sd_parse_text_config_json(badact, strlen(badact), "t", &t), SD_E_UNSUPPORTED);

  sd_vae_config v;
  const char *vae = "{\"block_out_channels\": [128, 256, 512, 512], \"layers_per_block\": 2, \"scaling_factor\": 0.18215}";
  assert_int_equal(sd_parse_vae_config_json(vae, strlen(vae), "v", &v), SD_OK);
  assert_true(v.n_levels == 4 && v.layers_per_block == 2 && v.scaling_factor == 0.18215f);
  const char *novq = "{\"use_quant_conv\": false}";
  assert_int_equal(sd_parse_vae_config_json(novq, strlen(novq), "v", &v), SD_E_UNSUPPORTED);

  int pv = -1;
  const char *sch = "{\"prediction_type\": \"v_prediction\"}";
  assert_int_equal(sd_parse_scheduler_config_json(sch, strlen(sch), "s", &pv), SD_OK);
  assert_int_equal(pv, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_clip_small_folder),
    cmocka_unit_test(test_clip_small_single_files),
    cmocka_unit_test(test_tiny_both_layouts),
    cmocka_unit_test(test_openclip_sd2_single_file),
    cmocka_unit_test(test_sd15_layout),
    cmocka_unit_test(test_errors_paths),
    cmocka_unit_test(test_errors_shapes),
    cmocka_unit_test(test_vae_legacy_names),
    cmocka_unit_test(test_config_parsing),
  };
  return cmocka_run_group_tests_name("model_source", tests, NULL, NULL);
}
