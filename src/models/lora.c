/* LoRA merging (models/lora.h). */
#include "models/lora.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/name_map.h"

typedef struct merged {
  sd_component comp;
  size_t index;
  sd_dtype orig_dtype;
  void *orig_data;
  float *buf; /* the merged float32 copy */
} merged;

struct sd_lora_state {
  merged *v;
  int n, cap;
  int modules;
};

int sd_lora_modules(const sd_lora_state *st) { return st ? st->modules : 0; }

void sd_lora_restore(sd_model_source *m, sd_lora_state *st) {
  if (!st) return;
  for (int i = 0; i < st->n; i++) {
    sd_model_weight_set(m, st->v[i].comp, st->v[i].index, st->v[i].orig_dtype, st->v[i].orig_data);
    free(st->v[i].buf);
  }
  free(st->v);
  free(st);
}

/* The model weight a LoRA module names: "<module>.weight" of the component, found by the
 * module path with '_' for '.' (kohya) or as it is (PEFT). index -1 if none. */
static int find_weight(const sd_component_weights *w, const char *module, int underscored, size_t *index) {
  char want[SD_NAME_MAX];
  for (size_t i = 0; i < w->n; i++) {
    const char *nm = w->w[i].name;
    size_t len = strlen(nm);
    if (len < 8 || strcmp(nm + len - 7, ".weight") || len - 7 >= sizeof want) continue;
    memcpy(want, nm, len - 7);
    want[len - 7] = 0;
    if (underscored)
      for (char *p = want; *p; p++)
        if (*p == '.') *p = '_';
    if (!strcmp(want, module)) {
      *index = i;
      return 0;
    }
  }
  return -1;
}

/* The merged float32 copy of weight (c, i), made on first use. */
static float *merged_buf(sd_model_source *m, sd_lora_state *st, sd_component c, size_t i) {
  for (int k = 0; k < st->n; k++)
    if (st->v[k].comp == c && st->v[k].index == i) return st->v[k].buf;
  if (st->n == st->cap) {
    int cap = st->cap ? 2 * st->cap : 64;
    merged *nv = realloc(st->v, sizeof *nv * (size_t)cap);
    if (!nv) return NULL;
    st->v = nv, st->cap = cap;
  }
  const sd_tensor *t = &sd_model_weights(m, c)->w[i].t;
  size_t n = (size_t)sd_numel(t);
  float *buf = malloc(sizeof(float) * n + 1);
  if (!buf) return NULL;
  sd_to_f32(buf, t->data, t->dtype, n);
  st->v[st->n++] = (merged){c, i, t->dtype, t->data, buf};
  return buf;
}

/* One module: W += scale · up[out, r] · down[r, in·k] */
static int merge_module(sd_model_source *m, sd_lora_state *st, const char *label, const char *key, sd_component c,
                        size_t i, const sd_st_entry *down, const sd_st_entry *up, float scale) {
  const sd_tensor *W = &sd_model_weights(m, c)->w[i].t;
  const int64_t out = W->shape[0], inner = W->ndim > 1 ? sd_numel(W) / out : 1;
  const int64_t r = down->ndim >= 1 ? down->shape[0] : 0;
  int64_t up_elems = 1, down_elems = 1;
  for (int d = 0; d < up->ndim; d++) up_elems *= up->shape[d];
  for (int d = 0; d < down->ndim; d++) down_elems *= down->shape[d];
  if (r < 1 || r > 4096 || up->ndim < 2 || up->shape[0] != out || up->shape[1] != r || up_elems != out * r ||
      down_elems != r * inner || (W->ndim != 2 && W->ndim != 4))
    return sd_fail(SD_E_ARG, "LoRA %s: module %s does not fit the model's weight %s (up %lldx%lld, down rank %lld, "
                   "weight %lld x %lld)", label, key, sd_model_weights(m, c)->w[i].name, (long long)(up->ndim ? up->shape[0] : 0),
                   (long long)(up->ndim > 1 ? up->shape[1] : 0), (long long)r, (long long)out, (long long)inner);
  if (!sd_dtype_is_float(up->dtype) || !sd_dtype_is_float(down->dtype))
    return sd_fail(SD_E_FORMAT, "LoRA %s: module %s is not stored as floats", label, key);
  float *u = malloc(sizeof(float) * (size_t)(out * r) + 1), *dn = malloc(sizeof(float) * (size_t)(r * inner) + 1);
  float *w = merged_buf(m, st, c, i);
  if (!u || !dn || !w) {
    free(u);
    free(dn);
    return sd_fail(SD_E_NOMEM, "LoRA %s: out of memory", label);
  }
  sd_to_f32(u, up->data, up->dtype, (size_t)(out * r));
  sd_to_f32(dn, down->data, down->dtype, (size_t)(r * inner));
  for (int64_t o = 0; o < out; o++) {
    float *row = w + o * inner;
    for (int64_t k = 0; k < r; k++) {
      const float a = scale * u[o * r + k];
      const float *d = dn + k * inner;
      for (int64_t j = 0; j < inner; j++) row[j] += a * d[j];
    }
  }
  free(u);
  free(dn);
  return SD_OK;
}

static int ends(const char *s, const char *suf, size_t *stem) {
  size_t a = strlen(s), b = strlen(suf);
  if (a <= b || strcmp(s + a - b, suf)) return 0;
  *stem = a - b;
  return 1;
}

/* One file into st. */
static int apply_one(sd_model_source *m, sd_lora_state *st, const sd_lora_spec *sp) {
  sd_safetensors *f;
  int rc = sd_st_open(sp->path, &f);
  if (rc) return sd_fail_prefix(rc, "LoRA: ");
  const char *label = sp->path;
  int modules = 0, unknown = 0;
  char first_unknown[SD_NAME_MAX] = "";
  for (size_t e = 0; e < f->n && rc == SD_OK; e++) {
    const char *key = f->entries[e].name;
    size_t stem;
    int kohya;
    if (ends(key, ".lora_down.weight", &stem)) kohya = 1;
    else if (ends(key, ".lora_A.weight", &stem)) kohya = 0;
    else continue; /* up, alpha and anything else are read with their down */
    char mod[SD_NAME_MAX], k2[SD_NAME_MAX + 32];
    if (stem >= sizeof mod) { rc = sd_fail(SD_E_FORMAT, "LoRA %s: key too long: %.80s...", label, key); break; }
    memcpy(mod, key, stem);
    mod[stem] = 0;
    snprintf(k2, sizeof k2, "%s%s", mod, kohya ? ".lora_up.weight" : ".lora_B.weight");
    const sd_st_entry *down = &f->entries[e], *up = sd_st_find(f, k2);
    if (!up) { rc = sd_fail(SD_E_FORMAT, "LoRA %s: %s has no %s", label, key, k2); break; }
    const int64_t r = down->ndim >= 1 ? down->shape[0] : 0;
    float alpha = (float)r;
    snprintf(k2, sizeof k2, "%s.alpha", mod);
    const sd_st_entry *al = sd_st_find(f, k2);
    if (al) {
      int64_t n = 1;
      for (int d = 0; d < al->ndim; d++) n *= al->shape[d];
      if (n != 1 || !sd_dtype_is_float(al->dtype)) { rc = sd_fail(SD_E_FORMAT, "LoRA %s: %s is not one number", label, k2); break; }
      sd_to_f32(&alpha, al->data, al->dtype, 1);
    }
    /* which component, and the module path */
    sd_component c;
    const char *path;
    if (kohya && !strncmp(mod, "lora_unet_", 10)) c = SD_COMP_UNET, path = mod + 10;
    else if (kohya && !strncmp(mod, "lora_te_", 8)) c = SD_COMP_TEXT, path = mod + 8;
    else if (!kohya && !strncmp(mod, "unet.", 5)) c = SD_COMP_UNET, path = mod + 5;
    else if (!kohya && !strncmp(mod, "text_encoder.", 13)) c = SD_COMP_TEXT, path = mod + 13;
    else c = SD_COMP_COUNT, path = NULL;
    size_t idx = 0;
    if (!path || !sd_model_weights(m, c)->present || find_weight(sd_model_weights(m, c), path, kohya, &idx)) {
      if (!unknown++) snprintf(first_unknown, sizeof first_unknown, "%s", mod);
      continue;
    }
    const float wu = c == SD_COMP_UNET ? sp->weight_unet : sp->weight_text;
    rc = merge_module(m, st, label, mod, c, idx, down, up, wu * alpha / (float)(r > 0 ? r : 1));
    modules++;
  }
  if (rc == SD_OK && unknown)
    rc = sd_fail(SD_E_ARG, "LoRA %s: %d of its %d modules name no weight of this model (first: %s): a LoRA for "
                 "another architecture?", label, unknown, unknown + modules, first_unknown);
  if (rc == SD_OK && modules == 0)
    rc = sd_fail(SD_E_FORMAT, "LoRA %s: no LoRA modules in it (kohya lora_down/lora_up or PEFT lora_A/lora_B)", label);
  st->modules += modules;
  sd_st_close(f);
  return rc;
}

int sd_lora_apply(sd_model_source *m, const sd_lora_spec *specs, int n, sd_lora_state **out) {
  *out = NULL;
  if (n <= 0) return SD_OK;
  sd_lora_state *st = calloc(1, sizeof *st);
  if (!st) return sd_fail(SD_E_NOMEM, "out of memory");
  int rc = SD_OK;
  for (int k = 0; k < n && rc == SD_OK; k++) rc = apply_one(m, st, &specs[k]);
  if (rc == SD_OK)
    for (int k = 0; k < st->n; k++) sd_model_weight_set(m, st->v[k].comp, st->v[k].index, SD_F32, st->v[k].buf);
  else {
    for (int k = 0; k < st->n; k++) free(st->v[k].buf); /* nothing was pointed at them yet */
    free(st->v);
    free(st);
    return rc;
  }
  *out = st;
  return SD_OK;
}
