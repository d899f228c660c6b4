/* The model-source layer: diffusers folders and single-file LDM checkpoints behind one internal
 * naming and one set of hyper-parameters.
 *
 * Opening
 *   - a folder must hold model_index.json (diffusers). Components: text_encoder/model
 *     [.fp16].safetensors, unet/ and vae/diffusion_pytorch_model[.fp16].safetensors (the
 *     full-precision file is preferred when both exist), each with its config.json;
 *     tokenizer/vocab.json + merges.txt; scheduler/scheduler_config.json (prediction_type).
 *     A component folder that is absent is a missing component (not an error); one with only
 *     pickle weights (.bin/.ckpt) or sharded weights is an error.
 *   - a file must be a .safetensors checkpoint in the LDM layout. Pickle checkpoints
 *     (.ckpt/.pt/.pth/.bin/.pkl, or any file starting like a pickle or a PyTorch zip archive)
 *     are refused: unpickling runs code from the file.
 *
 * Hyper-parameters of single files (no config) are inferred from shapes:
 *   text: vocab, hidden (token_embedding), positions (position_embedding), layers (count),
 *         intermediate (fc1); heads = hidden/64 (CLIP ViT-L and OpenCLIP ViT-H both use head
 *         dim 64); quick_gelu for HF-CLIP names, gelu for OpenCLIP; ids 49406/49407 with pad
 *         49407 (CLIP-L) or 0 (OpenCLIP) for CLIP's 49408-token vocabulary;
 *   unet: in/out channels and widths (conv_in, conv_out, each level's first conv1), levels and
 *         layers per level (block counts), attention per level (which transformers exist),
 *         cross-attention width (attn2.to_k), linear projection (proj_in rank 2), transformer
 *         depth, time embedding widths; heads: SD 1.x 8 per level, SD 2.x head dim 64;
 *   vae:  channels, levels, layers, latent channels; scaling factor 0.18215 (SD 1.x/2.x).
 * Configs (folder or opts.config_dir) are parsed instead where present. Either way the full
 * list of tensors the configuration implies (models/config.c) is checked against the weights:
 * a missing tensor or a wrong shape is an error naming the tensor, the file's name for it, the
 * expected and the found shape; tensors the configuration does not use are dropped and listed
 * in the problems.
 *
 * Family (what SD 1.x vs 2.x behaviour to apply):
 *   1. cross-attention width 768 -> SD 1.x (CLIP ViT-L); 1024 -> SD 2.x (OpenCLIP ViT-H);
 *   2. other widths (small test models): the text encoder decides: OpenCLIP names or a GELU
 *      text encoder -> SD 2.x rules; HF CLIP names with quick_gelu (pad 49407 for a CLIP
 *      vocabulary) -> SD 1.x rules;
 *   3. no text encoder: linear transformer projections -> SD 2.x, 1x1 convs -> SD 1.x.
 *   Rules 2-3 add a problem line saying which signals decided; disagreeing signals under rule 1
 *   are listed too.
 */
#define _POSIX_C_SOURCE 200809L
#include "models/model_source_internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/threadpool.h"
#include "io/fileio.h"
#include "io/json_util.h"
#include "io/safetensors.h"
#include "models/config.h"
#include "models/name_map.h"

#define VOCAB_JSON_MAX ((size_t)64 << 20)


static const char *const k_comp_names[SD_COMP_COUNT] = {"text_encoder", "unet", "vae"};

void sd_model_weight_set(sd_model_source *m, sd_component c, size_t i, sd_dtype dtype, void *data) {
  if (!m || (unsigned)c >= SD_COMP_COUNT || i >= m->w[c].n) return;
  m->w[c].w[i].t.dtype = dtype;
  m->w[c].w[i].t.data = data;
}

void sd_model_release(const sd_model_source *m, sd_component c) {
  if (!m || (unsigned)c >= SD_COMP_COUNT) return;
  const sd_safetensors *st = m->st[c] ? m->st[c] : m->single;
  const sd_component_weights *w = &m->w[c];
  for (size_t i = 0; i < w->n; i++) {
    const sd_tensor *t = &w->w[i].t;
    sd_st_release(st, t->data, (size_t)sd_numel(t) * sd_dtype_size(t->dtype));
  }
}

void sd_model_release_range(const sd_model_source *m, const void *p, size_t n) {
  if (!m) return;
  for (int c = 0; c < SD_COMP_COUNT; c++) sd_st_release(m->st[c], p, n); /* each checks its own range */
  sd_st_release(m->single, p, n);
}

static void release_cb(void *ctx, const void *p, size_t n) { sd_model_release_range(ctx, p, n); }

void sd_model_attach(const sd_model_source *m, sd_exec *ex) {
  ex->release = release_cb;
  ex->release_ctx = (void *)m;
}

const char *sd_family_name(sd_family f) {
  switch (f) {
    case SD_FAMILY_SD1: return "SD 1.x";
    case SD_FAMILY_SD2: return "SD 2.x";
    default: return "unknown";
  }
}

/* ---------------------------------------------------------------------------------------- */
/* Small helpers                                                                             */
/* ---------------------------------------------------------------------------------------- */

static char *xasprintf(const char *fmt, ...) SD_PRINTF(1, 2);
static char *xasprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return NULL;
  char *s = malloc((size_t)n + 1);
  if (!s) return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

int sd_model_problem_add(sd_model_source *m, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (m->n_problems == m->cap_problems) {
    size_t cap = m->cap_problems ? 2 * m->cap_problems : 16;
    char **p = realloc(m->problems, cap * sizeof *p);
    if (!p) return sd_fail(SD_E_NOMEM, "out of memory");
    m->problems = p;
    m->cap_problems = cap;
  }
  if (!(m->problems[m->n_problems] = strdup(buf))) return sd_fail(SD_E_NOMEM, "out of memory");
  m->n_problems++;
  return SD_OK;
}

static const char *keep_string(sd_model_source *m, const char *s) {
  if (m->n_strings == m->cap_strings) {
    size_t cap = m->cap_strings ? 2 * m->cap_strings : 256;
    char **p = realloc(m->strings, cap * sizeof *p);
    if (!p) return NULL;
    m->strings = p;
    m->cap_strings = cap;
  }
  char *d = strdup(s);
  if (!d) return NULL;
  m->strings[m->n_strings++] = d;
  return d;
}


static char *shape_text(const int64_t *shape, int ndim, char *buf, size_t cap) {
  sd_tensor t;
  memset(&t, 0, sizeof t);
  t.ndim = ndim;
  for (int i = 0; i < ndim && i < SD_MAX_DIMS; i++) t.shape[i] = shape[i];
  return sd_shape_str(&t, buf, cap);
}

/* ---------------------------------------------------------------------------------------- */
/* Weights                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static int weight_cmp(const void *a, const void *b) {
  return strcmp(((const sd_weight *)a)->name, ((const sd_weight *)b)->name);
}

const sd_weight *sd_model_find_w(const sd_component_weights *cw, const char *name) {
  size_t lo = 0, hi = cw->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(cw->w[mid].name, name);
    if (c == 0) return &cw->w[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

static int add_weight(sd_model_source *m, const sd_mapped_name *mn, const sd_st_entry *e, const char *file) {
  sd_component c = mn->comp;
  sd_component_weights *cw = &m->w[c];
  if (!sd_dtype_is_float(e->dtype))
    return sd_fail(SD_E_FORMAT, "%s: tensor %s has dtype %s; weights must be F32, F16, BF16 or F64",
                   file, e->name, sd_dtype_name(e->dtype));
  sd_tensor t = sd_st_tensor(e);
  if (mn->xform == SD_XFORM_SQUEEZE) {
    if (t.ndim == 4 && t.shape[2] == 1 && t.shape[3] == 1) t.ndim = 2;
    else if (t.ndim == 3 && t.shape[2] == 1) t.ndim = 2;
  } else if (mn->xform == SD_XFORM_ROWS) {
    char sh[96];
    if (t.ndim < 1 || t.shape[0] % mn->nparts)
      return sd_fail(SD_E_FORMAT, "%s: tensor %s of shape %s cannot be split into %d equal row blocks (fused q/k/v)",
                     file, e->name, sd_shape_str(&t, sh, sizeof sh), mn->nparts);
    int64_t rows = t.shape[0] / mn->nparts, row_elems = 1;
    for (int i = 1; i < t.ndim; i++) row_elems *= t.shape[i];
    t.data = (char *)t.data + (size_t)(mn->part * rows * row_elems) * sd_dtype_size(t.dtype);
    t.shape[0] = rows;
  }
  if (cw->n == m->cap[c]) {
    size_t cap = m->cap[c] ? 2 * m->cap[c] : 256;
    sd_weight *w = realloc(cw->w, cap * sizeof *w);
    if (!w) return sd_fail(SD_E_NOMEM, "out of memory");
    cw->w = w;
    m->cap[c] = cap;
  }
  const char *name = strcmp(mn->name, e->name) == 0 ? e->name : keep_string(m, mn->name);
  if (!name) return sd_fail(SD_E_NOMEM, "out of memory");
  sd_weight *w = &cw->w[cw->n++];
  w->name = name;
  w->source_name = e->name;
  w->t = t;
  cw->present = 1;
  return SD_OK;
}

/* Sort, refuse duplicates, count. */
static int finish_weights(sd_model_source *m, sd_component c) {
  sd_component_weights *cw = &m->w[c];
  if (!cw->n) return SD_OK;
  qsort(cw->w, cw->n, sizeof *cw->w, weight_cmp);
  for (size_t i = 1; i < cw->n; i++)
    if (strcmp(cw->w[i - 1].name, cw->w[i].name) == 0)
      return sd_fail(SD_E_FORMAT, "%s: tensors %s and %s both map to %s %s", m->file[c], cw->w[i - 1].source_name,
                     cw->w[i].source_name, k_comp_names[c], cw->w[i].name);
  return SD_OK;
}

static void count_weights(sd_component_weights *cw) {
  cw->n_params = 0;
  memset(cw->dtype_count, 0, sizeof cw->dtype_count);
  for (size_t i = 0; i < cw->n; i++) {
    cw->n_params += sd_numel(&cw->w[i].t);
    cw->dtype_count[cw->w[i].t.dtype]++;
  }
}

/* Check the weights against the tensors the configuration implies (config_label says where the
 * configuration came from). Unused weights are dropped and reported. */
static int cross_check(sd_model_source *m, sd_component c, const char *config_label) {
  sd_component_weights *cw = &m->w[c];
  sd_tensor_specs specs = {0};
  int rc;
  if (c == SD_COMP_TEXT) rc = sd_text_config_tensors(&m->text, &specs);
  else if (c == SD_COMP_UNET) rc = sd_unet_config_tensors(&m->unet, &specs);
  else rc = sd_vae_config_tensors(&m->vae, &specs);
  if (rc) return rc;
  unsigned char *used = calloc(cw->n ? cw->n : 1, 1);
  if (!used) { sd_tensor_specs_free(&specs); return sd_fail(SD_E_NOMEM, "out of memory"); }
  for (size_t i = 0; i < specs.n && rc == SD_OK; i++) {
    const sd_tensor_spec *s = &specs.v[i];
    const sd_weight *w = sd_model_find_w(cw, s->name);
    char want[96], got[96];
    if (!w) {
      rc = sd_fail(SD_E_FORMAT, "%s: %s tensor %s is missing (expected shape %s, from %s)", m->file[c],
                   k_comp_names[c], s->name, shape_text(s->shape, s->ndim, want, sizeof want), config_label);
      break;
    }
    used[w - cw->w] = 1;
    if (!sd_shape_eq(&w->t, s->ndim, s->shape)) {
      if (strcmp(w->name, w->source_name) != 0)
        rc = sd_fail(SD_E_FORMAT, "%s: %s tensor %s (stored as %s): expected shape %s (from %s), found %s",
                     m->file[c], k_comp_names[c], w->name, w->source_name,
                     shape_text(s->shape, s->ndim, want, sizeof want), config_label,
                     sd_shape_str(&w->t, got, sizeof got));
      else
        rc = sd_fail(SD_E_FORMAT, "%s: %s tensor %s: expected shape %s (from %s), found %s", m->file[c],
                     k_comp_names[c], w->name, shape_text(s->shape, s->ndim, want, sizeof want),
                     config_label, sd_shape_str(&w->t, got, sizeof got));
    }
  }
  if (rc == SD_OK) {
    size_t kept = 0, dropped = 0;
    const char *example = NULL;
    for (size_t i = 0; i < cw->n; i++) {
      if (used[i]) cw->w[kept++] = cw->w[i];
      else if (!dropped++) example = cw->w[i].source_name;
    }
    if (dropped)
      rc = sd_model_problem_add(m, "%s: ignored %zu tensor%s the configuration does not use (e.g. %s)", k_comp_names[c],
                   dropped, dropped == 1 ? "" : "s", example);
    cw->n = kept;
    count_weights(cw);
  }
  free(used);
  sd_tensor_specs_free(&specs);
  return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Tokens and tokenizer                                                                      */
/* ---------------------------------------------------------------------------------------- */

/* The vocabulary id of a special token named in special_tokens_map.json; -1 if not found. */
static int32_t token_id(const json_t *map, const json_t *vocab, const char *key) {
  const json_t *v = json_object_get(map, key);
  if (json_is_object(v)) v = json_object_get(v, "content");
  if (!json_is_string(v)) return -1;
  const json_t *id = json_object_get(vocab, json_string_value(v));
  if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) > INT32_MAX) return -1;
  return (int32_t)json_integer_value(id);
}

/* Token ids: the tokenizer's special tokens win over config.json, whose CLIP token ids are
 * often transformers' placeholder defaults (bos 0, eos 2, pad 1 in SD 1.5's config). Without
 * tokenizer files, a config with CLIP's 49408-token vocabulary gets CLIP's ids (pad 49407 for
 * quick_gelu CLIP-L, 0 for gelu OpenCLIP) when its own do not fit. */
static int resolve_tokens(sd_model_source *m, const char *tok_dir, int config_given) {
  sd_clip_text_config *c = &m->text;
  int rc = SD_OK, from_tokenizer = 0;
  char *map_path = tok_dir ? xasprintf("%s/special_tokens_map.json", tok_dir) : NULL;
  char *vocab_path = tok_dir ? xasprintf("%s/vocab.json", tok_dir) : NULL;
  if (tok_dir && (!map_path || !vocab_path)) rc = sd_fail(SD_E_NOMEM, "out of memory");
  int have_map = 0, have_vocab = 0;
  if (rc == SD_OK && tok_dir && (have_map = sd_probe_file(map_path, "a JSON file")) < 0) rc = have_map;
  if (rc == SD_OK && tok_dir && (have_vocab = sd_probe_file(vocab_path, "a JSON file")) < 0) rc = have_vocab;
  if (rc == SD_OK && have_map && have_vocab) {
    json_t *map = NULL, *vocab = NULL;
    if ((rc = sd_json_load_file(map_path, SD_JSON_CONFIG_MAX, &map)) == SD_OK &&
        (rc = sd_json_load_file(vocab_path, VOCAB_JSON_MAX, &vocab)) == SD_OK) {
      int32_t ids[3] = {token_id(map, vocab, "bos_token"), token_id(map, vocab, "eos_token"),
                        token_id(map, vocab, "pad_token")};
      int32_t *dst[3] = {&c->bos_id, &c->eos_id, &c->pad_id};
      static const char *const names[3] = {"bos", "eos", "pad"};
      int legacy = c->bos_id == 0 && c->eos_id == 2 && c->pad_id == 1;
      from_tokenizer = 1;
      for (int i = 0; i < 3 && rc == SD_OK; i++) {
        if (ids[i] < 0 || ids[i] >= c->vocab_size) { from_tokenizer = 0; continue; }
        if (ids[i] == *dst[i]) continue;
        if (config_given && !legacy)
          rc = sd_model_problem_add(m, "text_encoder: config.json says %s id %d, the tokenizer %d; using the tokenizer's",
                       names[i], (int)*dst[i], (int)ids[i]);
        *dst[i] = ids[i];
      }
    }
    json_decref(map);
    json_decref(vocab);
  }
  free(map_path);
  free(vocab_path);
  if (rc || from_tokenizer || !config_given || c->vocab_size != 49408) return rc;
  int32_t pad = c->act == SD_ACT_GELU ? 0 : 49407;
  if (c->bos_id == 49406 && c->eos_id == 49407 && (c->pad_id == 0 || c->pad_id == 49407)) return SD_OK;
  if (!(c->bos_id == 0 && c->eos_id == 2 && c->pad_id == 1) &&
      (rc = sd_model_problem_add(m, "text_encoder: config.json token ids %d/%d/%d do not fit CLIP's vocabulary; using 49406/49407/%d",
                    (int)c->bos_id, (int)c->eos_id, (int)c->pad_id, (int)pad)))
    return rc;
  c->bos_id = 49406, c->eos_id = 49407, c->pad_id = pad;
  return SD_OK;
}

static int find_tokenizer(sd_model_source *m, const char *dir) {
  char *v = xasprintf("%s/tokenizer/vocab.json", dir), *g = xasprintf("%s/tokenizer/merges.txt", dir);
  if (!v || !g) { free(v); free(g); return sd_fail(SD_E_NOMEM, "out of memory"); }
  int hv = sd_probe_file(v, "a JSON file"), hg = hv < 0 ? 0 : sd_probe_file(g, "a text file");
  int rc = hv < 0 ? hv : hg < 0 ? hg : SD_OK;
  if (rc == SD_OK && hv != hg) /* half a tokenizer is not the bundled vocabulary either */
    rc = sd_fail(SD_E_FORMAT, "%s is missing (%s is there): a tokenizer needs both", hv ? g : v, hv ? v : g);
  if (rc == SD_OK && hv && hg) {
    m->vocab = v, m->merges = g;
  } else {
    free(v);
    free(g);
  }
  return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Config files                                                                              */
/* ---------------------------------------------------------------------------------------- */

/* Parse dir/<comp>/<file> into the component's config if it exists: *found = 1. */
static int load_component_config(sd_model_source *m, const char *dir, sd_component c, int *found, char **label_out) {
  static const char *const files[SD_COMP_COUNT] = {"text_encoder/config.json", "unet/config.json", "vae/config.json"};
  *found = 0;
  char *path = xasprintf("%s/%s", dir, files[c]);
  if (!path) return sd_fail(SD_E_NOMEM, "out of memory");
  int rc = sd_probe_file(path, "a JSON file");
  if (rc <= 0) { free(path); return rc; }
  char *buf;
  size_t len;
  rc = sd_read_file(path, SD_JSON_CONFIG_MAX, "a JSON file", &buf, &len);
  if (rc == SD_OK) {
    if (c == SD_COMP_TEXT) rc = sd_parse_text_config_json(buf, len, path, &m->text);
    else if (c == SD_COMP_UNET) rc = sd_parse_unet_config_json(buf, len, path, &m->unet);
    else rc = sd_parse_vae_config_json(buf, len, path, &m->vae);
    free(buf);
  }
  if (rc == SD_OK) {
    *found = 1;
    *label_out = path;
  } else {
    free(path);
  }
  return rc;
}

/* scheduler/scheduler_config.json: -1 if absent, else 0/1. */
static int load_prediction(sd_model_source *m, const char *dir, int *pred) {
  *pred = -1;
  char *path = xasprintf("%s/scheduler/scheduler_config.json", dir);
  if (!path) return sd_fail(SD_E_NOMEM, "out of memory");
  int rc = sd_probe_file(path, "a JSON file");
  if (rc > 0) {
    char *buf;
    size_t len;
    if ((rc = sd_read_file(path, SD_JSON_CONFIG_MAX, "a JSON file", &buf, &len)) == SD_OK) {
      int v = 0;
      if ((rc = sd_parse_scheduler_config_json(buf, len, path, &v)) == SD_OK) *pred = v;
      free(buf);
    }
    if (rc == SD_OK) {
      free(m->sched);
      m->sched = path;
      path = NULL;
    }
  }
  free(path);
  return rc < 0 ? rc : SD_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Diffusers folder                                                                          */
/* ---------------------------------------------------------------------------------------- */

static int pickle_refusal(const char *path) {
  return sd_fail(SD_E_UNSUPPORTED,
                 "%s is a pickle checkpoint (PyTorch .ckpt/.pt/.bin); safesd refuses pickle files because loading one "
                 "can run arbitrary code. Convert it to .safetensors first",
                 path);
}

static int open_component_dir(sd_model_source *m, const char *dir, sd_component c) {
  static const char *const sub[SD_COMP_COUNT] = {"text_encoder", "unet", "vae"};
  static const char *const base[SD_COMP_COUNT] = {"model", "diffusion_pytorch_model", "diffusion_pytorch_model"};
  char *cdir = xasprintf("%s/%s", dir, sub[c]);
  if (!cdir) return sd_fail(SD_E_NOMEM, "out of memory");
  int rc = SD_OK;
  char *file = NULL;
  if ((rc = sd_probe_dir(cdir)) <= 0) goto done; /* 0: a missing component */
  rc = SD_OK;
  static const char *const variants[] = {".safetensors", ".fp16.safetensors"};
  for (int i = 0; i < 2 && !file; i++) {
    char *p = xasprintf("%s/%s%s", cdir, base[c], variants[i]);
    if (!p) { rc = sd_fail(SD_E_NOMEM, "out of memory"); goto done; }
    int have = sd_probe_file(p, "a .safetensors file");
    if (have > 0) file = p;
    else free(p);
    if (have < 0) { rc = have; goto done; }
  }
  if (!file) {
    static const char *const others[] = {".bin", ".fp16.bin", ".ckpt", ".safetensors.index.json", ".fp16.safetensors.index.json"};
    for (int i = 0; i < 5 && rc == SD_OK; i++) {
      char *p = xasprintf("%s/%s%s", cdir, base[c], others[i]);
      if (!p) { rc = sd_fail(SD_E_NOMEM, "out of memory"); break; }
      int have = sd_probe_file(p, "a weight file");
      if (have < 0) rc = have;
      else if (have)
        rc = i < 3 ? pickle_refusal(p)
                   : sd_fail(SD_E_UNSUPPORTED, "%s: sharded weights are not supported; merge them into one %s.safetensors",
                             p, base[c]);
      free(p);
    }
    if (rc == SD_OK)
      rc = sd_fail(SD_E_FORMAT, "%s: the %s folder has no weights (%s.safetensors)", dir, sub[c], base[c]);
    goto done;
  }
  if ((rc = sd_st_open(file, &m->st[c]))) goto done;
  m->file[c] = file;
  file = NULL;
  const sd_safetensors *st = m->st[c];
  size_t ignored = 0;
  const char *example = NULL;
  for (size_t i = 0; i < st->n; i++) {
    sd_mapped_name mn;
    sd_ignore_kind ign;
    if (sd_diffusers_map_name(c, st->entries[i].name, &mn, &ign) == 0) {
      if (!ignored++) example = st->entries[i].name;
      continue;
    }
    if ((rc = add_weight(m, &mn, &st->entries[i], m->file[c]))) goto done;
  }
  if (ignored && (rc = sd_model_problem_add(m, "%s: ignored %zu tensor%s SD does not use (e.g. %s)", sub[c], ignored,
                               ignored == 1 ? "" : "s", example)))
    goto done;
  if (!m->w[c].n) {
    rc = sd_fail(SD_E_FORMAT, "%s: holds no %s tensors", m->file[c], sub[c]);
    goto done;
  }
  rc = finish_weights(m, c);
done:
  free(file);
  free(cdir);
  return rc;
}

static int open_diffusers(sd_model_source *m, const char *dir) {
  char *index = xasprintf("%s/model_index.json", dir);
  if (!index) return sd_fail(SD_E_NOMEM, "out of memory");
  int rc = sd_probe_file(index, "a JSON file");
  if (rc < 0) { free(index); return rc; }
  if (rc == 0) {
    rc = sd_fail(SD_E_FORMAT, "%s is a folder but not a diffusers model folder: it has no model_index.json "
                              "(to open a single-file checkpoint, give the .safetensors file itself)", dir);
    free(index);
    return rc;
  }
  json_t *mi = NULL;
  if ((rc = sd_json_load_file(index, SD_JSON_CONFIG_MAX, &mi))) { free(index); return rc; }
  const char *cls = NULL;
  rc = sd_json_get_str(mi, "_class_name", index, &cls, 0);
  if (rc == SD_OK && cls && strstr(cls, "XL")) {
    char q[96];
    rc = sd_fail(SD_E_UNSUPPORTED, "%s: %s models are not supported (SD 1.x and 2.x only)", index, sd_msg_quote(cls, q, sizeof q));
  }
  json_decref(mi);
  free(index);
  if (rc) return rc;

  for (int c = 0; c < SD_COMP_COUNT; c++)
    if ((rc = open_component_dir(m, dir, (sd_component)c))) return rc;
  if ((rc = find_tokenizer(m, dir))) return rc;

  /* configs: required for a component that is present */
  for (int c = 0; c < SD_COMP_COUNT; c++) {
    if (!m->w[c].present) continue;
    int found = 0;
    char *label = NULL;
    if ((rc = load_component_config(m, dir, (sd_component)c, &found, &label))) return rc;
    if (!found) return sd_fail(SD_E_FORMAT, "%s/%s/config.json is missing", dir, k_comp_names[c]);
    if (c == SD_COMP_TEXT) {
      char *tok = xasprintf("%s/tokenizer", dir);
      if (!tok) { free(label); return sd_fail(SD_E_NOMEM, "out of memory"); }
      int have = sd_probe_dir(tok);
      rc = have < 0 ? have : resolve_tokens(m, have ? tok : NULL, 1);
      free(tok);
      if (rc == SD_OK) rc = sd_text_config_check(&m->text, label);
    }
    if (rc == SD_OK) rc = cross_check(m, (sd_component)c, label);
    free(label);
    if (rc) return rc;
  }
  /* the model's own concept bank (the bundled model has one): there or not, never unreadable */
  char *bank = xasprintf("%s/safety/concepts.bank", dir);
  if (!bank) return sd_fail(SD_E_NOMEM, "out of memory");
  if ((rc = sd_probe_file(bank, "a concept bank")) <= 0) {
    free(bank);
    if (rc) return rc;
  } else {
    m->bank = bank;
  }
  int pred;
  if ((rc = load_prediction(m, dir, &pred))) return rc;
  if (m->w[SD_COMP_UNET].present) m->unet.prediction_v = pred > 0;
  return sd_model_detect_family(m, 0);
}

/* ---------------------------------------------------------------------------------------- */
/* Single file                                                                               */
/* ---------------------------------------------------------------------------------------- */

/* Prediction type of a single file: safetensors metadata (modelspec.prediction_type), a
 * sidecar LDM .yaml (parameterization: "v"), or -1 if neither says; an error when the .yaml
 * is there but cannot be read. */
static int single_prediction(const sd_model_source *m, int *pred_out) {
  const char *meta = sd_st_meta(m->single, "modelspec.prediction_type");
  if (!meta) meta = sd_st_meta(m->single, "prediction_type");
  if (meta) {
    if (strcmp(meta, "v") == 0 || strcmp(meta, "v_prediction") == 0) { *pred_out = 1; return SD_OK; }
    if (strcmp(meta, "epsilon") == 0 || strcmp(meta, "eps") == 0) { *pred_out = 0; return SD_OK; }
  }
  size_t n = strlen(m->path);
  const char *dot = strrchr(m->path, '.');
  const char *slash = strrchr(m->path, '/');
  if (!dot || (slash && dot < slash)) dot = m->path + n;
  char *yaml = xasprintf("%.*s.yaml", (int)(dot - m->path), m->path);
  int pred = -1, rc = yaml ? sd_probe_file(yaml, "an LDM .yaml config") : sd_fail(SD_E_NOMEM, "out of memory");
  char *buf = NULL;
  size_t len;
  if (rc > 0 && (rc = sd_read_file(yaml, SD_JSON_CONFIG_MAX, "an LDM .yaml config", &buf, &len)) == SD_OK) {
    pred = 0; /* an LDM config without parameterization means epsilon */
    const char *p = strstr(buf, "parameterization:");
    if (p) {
      p += strlen("parameterization:");
      while (*p == ' ' || *p == '\t' || *p == '"' || *p == '\'') p++;
      if (*p == 'v' && (p[1] == '"' || p[1] == '\'' || p[1] == '\n' || p[1] == '\r' || p[1] == ' ' || !p[1])) pred = 1;
    }
  }
  free(buf);
  free(yaml);
  *pred_out = pred;
  return rc < 0 ? rc : SD_OK;
}

static int looks_like_pickle(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  unsigned char b[4] = {0};
  size_t n = fread(b, 1, 4, f);
  fclose(f);
  if (n >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5) return 1;      /* pickle protocol 2..5 */
  if (n >= 4 && b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4) return 1; /* torch zip archive */
  return 0;
}

static int open_single(sd_model_source *m, const char *path, const sd_model_open_opts *opts) {
  int rc = sd_st_open(path, &m->single);
  if (rc) {
    if (rc == SD_E_FORMAT && !sd_model_ends_with(path, ".safetensors"))
      return sd_fail_prefix(rc, "model %s is neither a diffusers folder nor a .safetensors checkpoint: ", path);
    return rc;
  }
  const sd_safetensors *st = m->single;
  const char **names = malloc((st->n ? st->n : 1) * sizeof *names);
  if (!names) return sd_fail(SD_E_NOMEM, "out of memory");
  for (size_t i = 0; i < st->n; i++) names[i] = st->entries[i].name;
  sd_ldm_map *map = NULL;
  rc = sd_ldm_map_build(names, st->n, path, &map);
  free(names);
  if (rc) return rc;

  int any = 0;
  for (int c = 0; c < SD_COMP_COUNT; c++) {
    if (!sd_ldm_map_has(map, (sd_component)c)) continue;
    any = 1;
    if (!(m->file[c] = strdup(path))) { rc = sd_fail(SD_E_NOMEM, "out of memory"); goto done; }
  }
  if (!any) {
    int diffusers = 0, sdxl = 0;
    for (size_t i = 0; i < st->n; i++) {
      const char *s = st->entries[i].name;
      if (!strncmp(s, "conditioner.embedders.", 22)) sdxl = 1;
      if (!strncmp(s, "down_blocks.", 12) || !strncmp(s, "text_model.", 11) || !strncmp(s, "encoder.down_blocks.", 20))
        diffusers = 1;
    }
    if (sdxl)
      rc = sd_fail(SD_E_UNSUPPORTED, "%s: an SDXL checkpoint (conditioner.embedders.*); safesd runs SD 1.x and 2.x", path);
    else if (diffusers)
      rc = sd_fail(SD_E_FORMAT, "%s holds one diffusers component, not a whole model; open the model folder (the one with "
                                "model_index.json) instead", path);
    else
      rc = sd_fail(SD_E_FORMAT, "%s is not a Stable Diffusion checkpoint in the LDM layout: it has no "
                                "model.diffusion_model.*, first_stage_model.* or cond_stage_model.* tensors", path);
    goto done;
  }

  /* map every tensor */
  size_t ign_count[SD_IGN_COUNT] = {0};
  const char *ign_example[SD_IGN_COUNT] = {0};
  for (size_t i = 0; i < st->n; i++) {
    sd_mapped_name mn[3];
    sd_ignore_kind ign;
    int n = sd_ldm_map_name(map, st->entries[i].name, mn, &ign);
    if (n == 0) {
      if (!ign_count[ign]++) ign_example[ign] = st->entries[i].name;
      continue;
    }
    for (int j = 0; j < n; j++)
      if ((rc = add_weight(m, &mn[j], &st->entries[i], path))) goto done;
  }
  for (int k = 1; k < SD_IGN_COUNT; k++)
    if (ign_count[k] && (rc = sd_model_problem_add(m, "ignored %zu tensor%s: %s (e.g. %s)", ign_count[k], ign_count[k] == 1 ? "" : "s",
                                      sd_ignore_kind_name((sd_ignore_kind)k), ign_example[k])))
      goto done;
  if (sd_ldm_map_passthrough_count(map) &&
      (rc = sd_model_problem_add(m, "unet: %zu tensors inside model.diffusion_model.* already had diffusers names (diffusers' "
                       "converter leaves some unrenamed); used as they are", sd_ldm_map_passthrough_count(map))))
    goto done;
  for (int c = 0; c < SD_COMP_COUNT; c++)
    if ((rc = finish_weights(m, (sd_component)c))) goto done;

  /* configurations: from opts.config_dir where given, else inferred */
  int openclip = sd_ldm_map_text_is_openclip(map);
  int given[SD_COMP_COUNT] = {0};
  char *labels[SD_COMP_COUNT] = {0};
  const char *cdir = opts ? opts->config_dir : NULL;
  if (cdir && (rc = sd_probe_dir(cdir)) <= 0) {
    if (rc == 0) rc = sd_fail(SD_E_IO, "config folder %s does not exist", cdir);
    goto done;
  }
  rc = SD_OK;
  for (int c = 0; c < SD_COMP_COUNT && cdir; c++)
    if (m->w[c].present && (rc = load_component_config(m, cdir, (sd_component)c, &given[c], &labels[c]))) goto cfg_done;
  if (cdir && (rc = find_tokenizer(m, cdir))) goto cfg_done;

  if (m->w[SD_COMP_TEXT].present) {
    if (!given[SD_COMP_TEXT] && (rc = sd_model_infer_text(m, openclip, &m->text))) goto cfg_done;
    if (cdir) {
      char *tok = xasprintf("%s/tokenizer", cdir);
      if (!tok) { rc = sd_fail(SD_E_NOMEM, "out of memory"); goto cfg_done; }
      int have = sd_probe_dir(tok);
      rc = have < 0 ? have : resolve_tokens(m, have ? tok : NULL, given[SD_COMP_TEXT]);
      free(tok);
      if (rc) goto cfg_done;
    }
  }
  /* the family is needed for the UNet's head rule; it reads the text config and raw shapes */
  if ((rc = sd_model_detect_family(m, openclip))) goto cfg_done;
  int pred = -1;
  if (cdir && (rc = load_prediction(m, cdir, &pred))) goto cfg_done;
  if (pred < 0 && (rc = single_prediction(m, &pred))) goto cfg_done;
  if (m->w[SD_COMP_UNET].present) {
    if (!given[SD_COMP_UNET]) {
      if ((rc = sd_model_infer_unet(m, m->family, &m->unet))) goto cfg_done;
      if (pred < 0 && m->family == SD_FAMILY_SD2) {
        pred = 1;
        if ((rc = sd_model_problem_add(m, "unet: the prediction type is not recorded in the file; assuming v-prediction as diffusers "
                             "does for SD 2.x (768-px models; 512-px \"base\" models predict epsilon: give a config "
                             "folder or a sidecar .yaml)")))
          goto cfg_done;
      }
      if (pred > 0 && m->family == SD_FAMILY_SD2) m->unet.sample_size = 96;
    }
    m->unet.prediction_v = pred > 0;
  }
  if (m->w[SD_COMP_VAE].present && !given[SD_COMP_VAE]) {
    if ((rc = sd_model_infer_vae(m, &m->vae))) goto cfg_done;
    int u = m->w[SD_COMP_UNET].present ? m->unet.sample_size : 64;
    m->vae.sample_size = u << (m->vae.n_levels - 1);
  }
  for (int c = 0; c < SD_COMP_COUNT; c++) {
    if (!m->w[c].present) continue;
    const char *label = given[c] ? labels[c] : "the shapes of the other tensors";
    if (c == SD_COMP_UNET && !given[c]) rc = sd_unet_config_check(&m->unet, path);
    else if (c == SD_COMP_VAE && !given[c]) rc = sd_vae_config_check(&m->vae, path);
    else if (c == SD_COMP_TEXT) rc = sd_text_config_check(&m->text, given[c] ? labels[c] : path);
    if (rc || (rc = cross_check(m, (sd_component)c, label))) goto cfg_done;
  }
cfg_done:
  for (int c = 0; c < SD_COMP_COUNT; c++) free(labels[c]);
done:
  sd_ldm_map_free(map);
  return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Public API                                                                                */
/* ---------------------------------------------------------------------------------------- */

int sd_model_open(const char *path, sd_model_source **out) { return sd_model_open_ex(path, NULL, out); }

int sd_model_open_ex(const char *path, const sd_model_open_opts *opts, sd_model_source **out) {
  if (!out) return sd_fail(SD_E_ARG, "sd_model_open: out is NULL");
  *out = NULL;
  if (!path || !*path) return sd_fail(SD_E_ARG, "no model path given");
  struct stat sb;
  if (stat(path, &sb) != 0)
    return sd_fail(SD_E_IO, "model %s: %s", path, errno == ENOENT ? "no such file or folder" : strerror(errno));
  sd_model_source *m = calloc(1, sizeof *m);
  if (!m || !(m->path = strdup(path))) {
    free(m);
    return sd_fail(SD_E_NOMEM, "out of memory");
  }
  int rc;
  if (S_ISDIR(sb.st_mode)) {
    m->layout = SD_LAYOUT_DIFFUSERS;
    rc = open_diffusers(m, path);
  } else if (!S_ISREG(sb.st_mode)) {
    rc = sd_fail(SD_E_IO, "model %s is neither a folder nor a regular file", path);
  } else if (sd_model_ends_with(path, ".ckpt") || sd_model_ends_with(path, ".pt") || sd_model_ends_with(path, ".pth") ||
             sd_model_ends_with(path, ".bin") || sd_model_ends_with(path, ".pkl") || sd_model_ends_with(path, ".pickle") ||
             looks_like_pickle(path)) {
    rc = pickle_refusal(path);
  } else {
    m->layout = SD_LAYOUT_SINGLE_FILE;
    rc = open_single(m, path, opts);
  }
  if (rc == SD_OK) rc = sd_model_check_finite(m, opts ? opts->check_threads : 1);
  if (rc) {
    sd_model_close(m);
    return rc;
  }
  sd_clear_error();
  *out = m;
  return SD_OK;
}

typedef struct {
  const sd_component_weights *cw;
  int64_t *at; /* per tensor: its first non-finite element, or -1 */
} finite_job;

static void finite_task(void *ctx, int64_t b, int64_t e, int tid) {
  (void)tid;
  finite_job *j = ctx;
  for (int64_t i = b; i < e; i++) {
    const sd_tensor *t = &j->cw->w[i].t;
    sd_prefault(t->data, (size_t)sd_numel(t) * sd_dtype_size(t->dtype)); /* one call, not a fault a page */
    j->at[i] = sd_first_nonfinite(t->data, t->dtype, sd_numel(t));
  }
}

int sd_model_check_finite(const sd_model_source *m, int n_threads) {
  size_t most = 1;
  for (int c = 0; c < SD_COMP_COUNT; c++) most = m->w[c].n > most ? m->w[c].n : most;
  finite_job j = {NULL, malloc(most * sizeof *j.at)};
  if (!j.at) return sd_fail(SD_E_NOMEM, "out of memory checking the weights");
  sd_pool *pool = NULL;
  if (n_threads != 0 && n_threads != 1 && sd_pool_create(n_threads < 0 ? 0 : n_threads, &pool) != SD_OK) pool = NULL;
  int rc = SD_OK;
  /* a component at a time, its pages dropped after it (peak memory: the largest component);
   * the threads only read, and the first tensor in order holding a non-finite value is the
   * one named, whatever the thread count */
  for (int c = 0; c < SD_COMP_COUNT && rc == SD_OK; c++) {
    const sd_component_weights *cw = &m->w[c];
    j.cw = cw;
    if (pool && cw->n > 1) sd_parallel_for(pool, (int64_t)cw->n, 1, finite_task, &j);
    else finite_task(&j, 0, (int64_t)cw->n, 0);
    for (size_t i = 0; i < cw->n; i++) {
      if (j.at[i] < 0) continue;
      const sd_tensor *t = &cw->w[i].t;
      float v = 0;
      sd_to_f32(&v, (const char *)t->data + (size_t)j.at[i] * sd_dtype_size(t->dtype), t->dtype, 1);
      char qn[160];
      rc = sd_fail(SD_E_FORMAT, "%s: %s tensor %s holds %s at element %lld: the weights are corrupt (NaN/Inf)",
                   m->file[c], k_comp_names[c], sd_msg_quote(cw->w[i].source_name, qn, sizeof qn),
                   isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf", (long long)j.at[i]);
      break;
    }
    if (rc == SD_OK) sd_model_release(m, (sd_component)c); /* read once: the pages go until a stage needs them */
  }
  sd_pool_destroy(pool);
  free(j.at);
  return rc;
}

void sd_model_close(sd_model_source *m) {
  if (!m) return;
  for (int c = 0; c < SD_COMP_COUNT; c++) {
    sd_st_close(m->st[c]);
    free(m->file[c]);
    free(m->w[c].w);
  }
  sd_st_close(m->single);
  for (size_t i = 0; i < m->n_problems; i++) free(m->problems[i]);
  free(m->problems);
  for (size_t i = 0; i < m->n_strings; i++) free(m->strings[i]);
  free(m->strings);
  free(m->vocab);
  free(m->sched);
  free(m->bank);
  free(m->merges);
  free(m->path);
  free(m);
}

sd_layout sd_model_layout(const sd_model_source *m) { return m->layout; }
sd_family sd_model_family(const sd_model_source *m) { return m->family; }
const char *sd_model_path(const sd_model_source *m) { return m->path; }

const sd_component_weights *sd_model_weights(const sd_model_source *m, sd_component c) {
  return (unsigned)c < SD_COMP_COUNT ? &m->w[c] : NULL;
}
const sd_clip_text_config *sd_model_text_config(const sd_model_source *m) {
  return m->w[SD_COMP_TEXT].present ? &m->text : NULL;
}
const sd_unet_config *sd_model_unet_config(const sd_model_source *m) {
  return m->w[SD_COMP_UNET].present ? &m->unet : NULL;
}
const sd_vae_config *sd_model_vae_config(const sd_model_source *m) {
  return m->w[SD_COMP_VAE].present ? &m->vae : NULL;
}
const char *sd_model_component_file(const sd_model_source *m, sd_component c) {
  return (unsigned)c < SD_COMP_COUNT && m->w[c].present ? m->file[c] : NULL;
}

int sd_model_need(const sd_model_source *m, sd_component c) {
  if ((unsigned)c >= SD_COMP_COUNT) return sd_fail(SD_E_ARG, "sd_model_need: bad component %d", (int)c);
  if (!m->w[c].present) return sd_fail(SD_E_FORMAT, "model %s has no %s", m->path, k_comp_names[c]);
  return SD_OK;
}

const sd_tensor *sd_model_find(const sd_model_source *m, sd_component c, const char *name) {
  if ((unsigned)c >= SD_COMP_COUNT || !name) return NULL;
  const sd_weight *w = sd_model_find_w(&m->w[c], name);
  return w ? &w->t : NULL;
}

int sd_model_get(const sd_model_source *m, sd_component c, const char *name, int ndim,
                 const int64_t *shape, const sd_tensor **out) {
  if (out) *out = NULL;
  if ((unsigned)c >= SD_COMP_COUNT || !name || !out || ndim < 0 || ndim > SD_MAX_DIMS || (ndim && !shape))
    return sd_fail(SD_E_ARG, "sd_model_get: bad arguments");
  if (!m->w[c].present) return sd_fail(SD_E_FORMAT, "model %s has no %s", m->path, k_comp_names[c]);
  const sd_weight *w = sd_model_find_w(&m->w[c], name);
  char want[128], got[128];
  if (!w)
    return sd_fail(SD_E_FORMAT, "model %s: %s has no tensor %s (expected shape %s)", m->path, k_comp_names[c], name,
                   shape_text(shape, ndim, want, sizeof want));
  if (!sd_shape_eq(&w->t, ndim, shape)) {
    if (strcmp(w->name, w->source_name) != 0)
      return sd_fail(SD_E_FORMAT, "model %s: %s tensor %s (stored as %s): expected shape %s, found %s", m->path,
                     k_comp_names[c], name, w->source_name, shape_text(shape, ndim, want, sizeof want),
                     sd_shape_str(&w->t, got, sizeof got));
    return sd_fail(SD_E_FORMAT, "model %s: %s tensor %s: expected shape %s, found %s", m->path, k_comp_names[c],
                   name, shape_text(shape, ndim, want, sizeof want), sd_shape_str(&w->t, got, sizeof got));
  }
  *out = &w->t;
  return SD_OK;
}

const char *sd_model_vocab_path(const sd_model_source *m) { return m->vocab; }
const char *sd_model_scheduler_path(const sd_model_source *m) { return m->sched; }
const char *sd_model_bank_path(const sd_model_source *m) { return m->bank; }
const char *sd_model_merges_path(const sd_model_source *m) { return m->merges; }

size_t sd_model_problem_count(const sd_model_source *m) { return m->n_problems; }
const char *sd_model_problem(const sd_model_source *m, size_t i) {
  return i < m->n_problems ? m->problems[i] : NULL;
}
