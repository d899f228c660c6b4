/* emoji-judge (emoji_judge.h): loader and forward pass. */
#include "judge/emoji_judge.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/json_util.h"
#include "io/safetensors.h"

#define NAME_MAX_BYTES 128

typedef struct {
  sd_tensor w;          /* [C_out, C_in, 3, 3] stored dtype */
  float *b, *gn_g, *gn_b; /* widened */
  int cin, cout, stride;
} judge_layer;

struct sd_emoji_judge {
  char *file;
  sd_safetensors *st;
  int S, L, groups;
  float eps, threshold;
  judge_layer layers[SD_JUDGE_MAX_LAYERS];
  int n_obj, n_bg;
  char **obj_name, **obj_cat, **bg_name;
  sd_tensor obj_w; /* [N_o, C_L] */
  float *obj_b;
  float *bg_w, *bg_b; /* [N_b, C_L + C_0] widened, [N_b] */
  int out_hw;       /* side of the last feature map */
  int max_floats;   /* the largest activation, floats */
};

void sd_emoji_judge_free(sd_emoji_judge *j) {
  if (!j) return;
  for (int i = 0; i < j->L; i++) {
    free(j->layers[i].b);
    free(j->layers[i].gn_g);
    free(j->layers[i].gn_b);
  }
  for (int i = 0; i < j->n_obj; i++) {
    if (j->obj_name) free(j->obj_name[i]);
    if (j->obj_cat) free(j->obj_cat[i]);
  }
  for (int i = 0; i < j->n_bg; i++)
    if (j->bg_name) free(j->bg_name[i]);
  free(j->obj_name);
  free(j->obj_cat);
  free(j->bg_name);
  free(j->obj_b);
  free(j->bg_w);
  free(j->bg_b);
  sd_st_close(j->st);
  free(j->file);
  free(j);
}

int sd_emoji_judge_image_size(const sd_emoji_judge *j) { return j->S; }
int sd_emoji_judge_grid(const sd_emoji_judge *j) { return j->out_hw; }
int sd_emoji_judge_n_objects(const sd_emoji_judge *j) { return j->n_obj; }
int sd_emoji_judge_n_backgrounds(const sd_emoji_judge *j) { return j->n_bg; }
float sd_emoji_judge_threshold(const sd_emoji_judge *j) { return j->threshold; }

const char *sd_emoji_judge_object(const sd_emoji_judge *j, int i, const char **category) {
  if (!j || i < 0 || i >= j->n_obj) return NULL;
  if (category) *category = j->obj_cat[i];
  return j->obj_name[i];
}

const char *sd_emoji_judge_background(const sd_emoji_judge *j, int i) {
  return j && i >= 0 && i < j->n_bg ? j->bg_name[i] : NULL;
}

int sd_emoji_judge_find_object(const sd_emoji_judge *j, const char *name) {
  for (int i = 0; j && name && i < j->n_obj; i++)
    if (!strcmp(j->obj_name[i], name)) return i;
  return -1;
}

int sd_emoji_judge_find_background(const sd_emoji_judge *j, const char *name) {
  for (int i = 0; j && name && i < j->n_bg; i++)
    if (!strcmp(j->bg_name[i], name)) return i;
  return -1;
}

/* ---- config ------------------------------------------------------------------------------ */

/* A name: 1..NAME_MAX_BYTES bytes, no control characters (the JSON loader guarantees UTF-8). */
static int check_name(const char *s, const char *path, const char *what, int i) {
  size_t n = strlen(s);
  char q[64];
  if (n == 0 || n > NAME_MAX_BYTES)
    return sd_fail(SD_E_FORMAT, "%s: %s %d: name \"%s\" must be 1..%d bytes", path, what, i,
                   sd_msg_quote(s, q, sizeof q), NAME_MAX_BYTES);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p < 0x20 || *p == 0x7f)
      return sd_fail(SD_E_FORMAT, "%s: %s %d: name \"%s\" has a control character", path, what, i,
                     sd_msg_quote(s, q, sizeof q));
  return SD_OK;
}

static int parse_config(sd_emoji_judge *j, const char *path) {
  json_t *root = NULL;
  int rc = sd_json_load_file(path, SD_JSON_CONFIG_MAX, &root);
  if (rc) return rc;
  int ch[SD_JUDGE_MAX_LAYERS], st[SD_JUDGE_MAX_LAYERS], nc = 0, ns = 0;
  j->S = 64;
  j->groups = 8;
  j->eps = 1e-5f;
  j->threshold = 0.5f;
  if ((rc = sd_json_get_i32(root, "image_size", path, 8, SD_JUDGE_MAX_IMAGE, &j->S, 0)) ||
      (rc = sd_json_get_int_array_ex(root, "channels", path, 1, SD_JUDGE_MAX_CHANNELS, ch, SD_JUDGE_MAX_LAYERS, &nc, 1)) ||
      (rc = sd_json_get_int_array_ex(root, "strides", path, 1, 2, st, SD_JUDGE_MAX_LAYERS, &ns, 1)) ||
      (rc = sd_json_get_i32(root, "groups", path, 1, SD_JUDGE_MAX_CHANNELS, &j->groups, 0)) ||
      (rc = sd_json_get_f32(root, "norm_eps", path, 1e-12f, 1.0f, &j->eps, 0)) ||
      (rc = sd_json_get_f32(root, "threshold", path, 1e-6f, 1.0f - 1e-6f, &j->threshold, 0)))
    goto done;
  if (nc < 1 || nc != ns) {
    rc = sd_fail(SD_E_FORMAT, "%s: 'channels' (%d) and 'strides' (%d) need the same length, at least 1", path, nc, ns);
    goto done;
  }
  int side = j->S, cin = 3;
  for (int i = 0; i < nc; i++) {
    if (ch[i] % j->groups) {
      rc = sd_fail(SD_E_FORMAT, "%s: channels[%d] = %d is not a multiple of groups %d", path, i, ch[i], j->groups);
      goto done;
    }
    side = (side + 2 - 3) / st[i] + 1;
    j->layers[i] = (judge_layer){.cin = cin, .cout = ch[i], .stride = st[i]};
    cin = ch[i];
  }
  j->L = nc;
  j->out_hw = side;
  /* the largest activation: any layer's input or output */
  side = j->S;
  long mx = 3L * side * side;
  for (int i = 0; i < nc; i++) {
    side = (side + 2 - 3) / st[i] + 1;
    long v = (long)ch[i] * side * side;
    if (v > mx) mx = v;
  }
  if (mx > SD_JUDGE_MAX_ACTIVATION) {
    rc = sd_fail(SD_E_FORMAT, "%s: an activation of %ld values (image_size %d with these channels) is over the %d limit",
                 path, mx, j->S, SD_JUDGE_MAX_ACTIVATION);
    goto done;
  }
  j->max_floats = (int)mx;

  const json_t *objs = json_object_get(root, "objects"), *bgs = json_object_get(root, "backgrounds");
  if (!json_is_array(objs) || json_array_size(objs) < 1 || json_array_size(objs) > SD_JUDGE_MAX_OBJECTS) {
    rc = sd_fail(SD_E_FORMAT, "%s: 'objects' must be an array of 1..%d objects", path, SD_JUDGE_MAX_OBJECTS);
    goto done;
  }
  if (bgs && !json_is_null(bgs) && (!json_is_array(bgs) || json_array_size(bgs) > SD_JUDGE_MAX_BACKGROUNDS)) {
    rc = sd_fail(SD_E_FORMAT, "%s: 'backgrounds' must be an array of at most %d names", path, SD_JUDGE_MAX_BACKGROUNDS);
    goto done;
  }
  int no = (int)json_array_size(objs), nb = json_is_array(bgs) ? (int)json_array_size(bgs) : 0;
  j->obj_name = calloc((size_t)no, sizeof *j->obj_name);
  j->obj_cat = calloc((size_t)no, sizeof *j->obj_cat);
  j->bg_name = calloc((size_t)nb + 1, sizeof *j->bg_name);
  if (!j->obj_name || !j->obj_cat || !j->bg_name) {
    rc = sd_fail(SD_E_NOMEM, "out of memory");
    goto done;
  }
  for (int i = 0; i < no; i++) {
    const json_t *o = json_array_get(objs, (size_t)i);
    const char *name = NULL, *cat = NULL;
    char label[4200];
    snprintf(label, sizeof label, "%s objects[%d]", path, i);
    if (!json_is_object(o)) {
      rc = sd_fail(SD_E_FORMAT, "%s: objects[%d] is %s, expected an object {name, category}", path, i,
                   sd_json_type_name(o));
      goto done;
    }
    if ((rc = sd_json_get_str(o, "name", label, &name, 1)) || (rc = sd_json_get_str(o, "category", label, &cat, 1)) ||
        (rc = check_name(name, path, "object", i)) || (rc = check_name(cat, path, "object category", i)))
      goto done;
    for (int k = 0; k < i; k++)
      if (!strcmp(j->obj_name[k], name)) {
        char q[64];
        rc = sd_fail(SD_E_FORMAT, "%s: objects %d and %d are both called \"%s\"", path, k, i, sd_msg_quote(name, q, sizeof q));
        goto done;
      }
    if (!(j->obj_name[i] = strdup(name)) || !(j->obj_cat[i] = strdup(cat))) {
      rc = sd_fail(SD_E_NOMEM, "out of memory");
      goto done;
    }
    j->n_obj = i + 1;
  }
  for (int i = 0; i < nb; i++) {
    const char *name = json_string_value(json_array_get(bgs, (size_t)i));
    if (!name) {
      rc = sd_fail(SD_E_FORMAT, "%s: backgrounds[%d] is %s, expected a string", path, i,
                   sd_json_type_name(json_array_get(bgs, (size_t)i)));
      goto done;
    }
    if ((rc = check_name(name, path, "background", i))) goto done;
    for (int k = 0; k < i; k++)
      if (!strcmp(j->bg_name[k], name)) {
        char q[64];
        rc = sd_fail(SD_E_FORMAT, "%s: backgrounds %d and %d are both called \"%s\"", path, k, i, sd_msg_quote(name, q, sizeof q));
        goto done;
      }
    if (!(j->bg_name[i] = strdup(name))) {
      rc = sd_fail(SD_E_NOMEM, "out of memory");
      goto done;
    }
    j->n_bg = i + 1;
  }
done:
  json_decref(root);
  return rc;
}

/* ---- weights ----------------------------------------------------------------------------- */

static int lookup(sd_emoji_judge *j, const char *name, int ndim, const int64_t *shape, sd_tensor *t) {
  const sd_st_entry *e = sd_st_find(j->st, name);
  if (!e) return sd_fail(SD_E_FORMAT, "%s: tensor '%s' is missing", j->file, name);
  sd_tensor v = sd_st_tensor(e);
  if (!sd_shape_eq(&v, ndim, shape)) {
    sd_tensor want = sd_tensor_make(SD_F32, ndim, shape, NULL);
    char got[96], w[96];
    return sd_fail(SD_E_FORMAT, "%s: tensor '%s' has shape %s, expected %s", j->file, name, sd_shape_str(&v, got, sizeof got),
                   sd_shape_str(&want, w, sizeof w));
  }
  if (v.dtype != SD_F32 && v.dtype != SD_F16 && v.dtype != SD_BF16)
    return sd_fail(SD_E_FORMAT, "%s: tensor '%s' has dtype %s (F32, F16 or BF16 expected)", j->file, name,
                   sd_dtype_name(v.dtype));
  /* every value finite: a NaN weight would give silent garbage */
  int64_t n = sd_numel(&v);
  float buf[256];
  for (int64_t o = 0; o < n; o += 256) {
    int64_t m = n - o < 256 ? n - o : 256;
    sd_to_f32(buf, (const char *)v.data + (size_t)o * sd_dtype_size(v.dtype), v.dtype, (size_t)m);
    for (int64_t i = 0; i < m; i++)
      if (!isfinite(buf[i]))
        return sd_fail(SD_E_FORMAT, "%s: tensor '%s' holds a non-finite value at element %lld", j->file, name,
                       (long long)(o + i));
  }
  *t = v;
  return SD_OK;
}

static int lookup_f32(sd_emoji_judge *j, const char *name, int ndim, const int64_t *shape, float **out) {
  sd_tensor t;
  int rc = lookup(j, name, ndim, shape, &t);
  if (rc) return rc;
  if (!(*out = sd_weight_dup_f32(&t))) return sd_fail(SD_E_NOMEM, "out of memory");
  return SD_OK;
}

static int load_weights(sd_emoji_judge *j) {
  int rc;
  char n[96];
  size_t expected = 0;
  for (int i = 0; i < j->L; i++) {
    judge_layer *l = &j->layers[i];
    int64_t ws[4] = {l->cout, l->cin, 3, 3}, vs[1] = {l->cout};
    snprintf(n, sizeof n, "convs.%d.weight", i);
    if ((rc = lookup(j, n, 4, ws, &l->w))) return rc;
    snprintf(n, sizeof n, "convs.%d.bias", i);
    if ((rc = lookup_f32(j, n, 1, vs, &l->b))) return rc;
    snprintf(n, sizeof n, "norms.%d.weight", i);
    if ((rc = lookup_f32(j, n, 1, vs, &l->gn_g))) return rc;
    snprintf(n, sizeof n, "norms.%d.bias", i);
    if ((rc = lookup_f32(j, n, 1, vs, &l->gn_b))) return rc;
    expected += 4;
  }
  int CL = j->layers[j->L - 1].cout, C0 = j->layers[0].cout;
  int64_t ow[2] = {j->n_obj, CL}, ob[1] = {j->n_obj};
  if ((rc = lookup(j, "object_head.weight", 2, ow, &j->obj_w)) || (rc = lookup_f32(j, "object_head.bias", 1, ob, &j->obj_b)))
    return rc;
  expected += 2;
  if (j->n_bg) {
    int64_t bw[2] = {j->n_bg, CL + C0}, bb[1] = {j->n_bg};
    if ((rc = lookup_f32(j, "background_head.weight", 2, bw, &j->bg_w)) ||
        (rc = lookup_f32(j, "background_head.bias", 1, bb, &j->bg_b)))
      return rc;
    expected += 2;
  }
  if (j->st->n != expected) {
    /* name the first tensor the architecture does not use (a config that does not match) */
    for (size_t i = 0; i < j->st->n; i++) {
      const char *nm = j->st->entries[i].name;
      int used = !strcmp(nm, "object_head.weight") || !strcmp(nm, "object_head.bias") ||
                 (j->n_bg && (!strcmp(nm, "background_head.weight") || !strcmp(nm, "background_head.bias")));
      for (int l = 0; l < j->L && !used; l++) {
        const char *kinds[4] = {"convs.%d.weight", "convs.%d.bias", "norms.%d.weight", "norms.%d.bias"};
        for (int k = 0; k < 4 && !used; k++) {
          char want[64];
          snprintf(want, sizeof want, kinds[k], l);
          used = !strcmp(nm, want);
        }
      }
      if (!used) {
        char q[96];
        return sd_fail(SD_E_FORMAT, "%s: tensor '%s' is not part of the judge that config.json describes", j->file,
                       sd_msg_quote(nm, q, sizeof q));
      }
    }
  }
  return SD_OK;
}

int sd_emoji_judge_load(const char *dir, sd_emoji_judge **out) {
  if (!out) return sd_fail(SD_E_ARG, "sd_emoji_judge_load: out is NULL");
  *out = NULL;
  if (!dir) return sd_fail(SD_E_ARG, "sd_emoji_judge_load: no folder");
  sd_emoji_judge *j = calloc(1, sizeof *j);
  if (!j) return sd_fail(SD_E_NOMEM, "out of memory");
  char path[4096];
  int rc;
  if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path) {
    rc = sd_fail(SD_E_ARG, "emoji-judge: path too long");
    goto fail;
  }
  if ((rc = parse_config(j, path))) goto fail;
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  if (!(j->file = strdup(path))) {
    rc = sd_fail(SD_E_NOMEM, "out of memory");
    goto fail;
  }
  if ((rc = sd_st_open(path, &j->st)) || (rc = load_weights(j))) goto fail;
  *out = j;
  return SD_OK;
fail:
  sd_emoji_judge_free(j);
  return sd_fail_prefix(rc, "emoji-judge: ");
}

/* ---- forward ----------------------------------------------------------------------------- */

int sd_emoji_judge_preprocess(const sd_emoji_judge *j, const uint8_t *rgb, int w, int h, float *x) {
  if (!j || !rgb || !x) return sd_fail(SD_E_ARG, "emoji-judge: NULL image");
  if (w < 1 || h < 1 || w > SD_JUDGE_MAX_INPUT || h > SD_JUDGE_MAX_INPUT)
    return sd_fail(SD_E_ARG, "emoji-judge: image size %dx%d is outside 1..%d", w, h, SD_JUDGE_MAX_INPUT);
  const int S = j->S;
  for (int oy = 0; oy < S; oy++) {
    int y0 = (int)((int64_t)oy * h / S), y1 = (int)(((int64_t)(oy + 1) * h + S - 1) / S);
    for (int ox = 0; ox < S; ox++) {
      int x0 = (int)((int64_t)ox * w / S), x1 = (int)(((int64_t)(ox + 1) * w + S - 1) / S);
      double s[3] = {0, 0, 0};
      for (int yy = y0; yy < y1; yy++)
        for (int xx = x0; xx < x1; xx++)
          for (int c = 0; c < 3; c++) s[c] += rgb[((size_t)yy * w + xx) * 3 + c] / 255.0;
      double n = (double)(y1 - y0) * (x1 - x0);
      for (int c = 0; c < 3; c++) x[((size_t)c * S + oy) * S + ox] = (float)(2.0 * (s[c] / n) - 1.0);
    }
  }
  return SD_OK;
}

int sd_emoji_judge_result_alloc(const sd_emoji_judge *j, sd_emoji_judge_result *r) {
  memset(r, 0, sizeof *r);
  size_t no = (size_t)j->n_obj, nb = (size_t)j->n_bg + 1;
  r->object_logit = calloc(no, sizeof(float));
  r->object_p = calloc(no, sizeof(float));
  r->object_cell = calloc(no, sizeof(int));
  r->object_x = calloc(no, sizeof(float));
  r->object_y = calloc(no, sizeof(float));
  r->background_logit = calloc(nb, sizeof(float));
  r->background_p = calloc(nb, sizeof(float));
  r->background_top = -1;
  if (!r->object_logit || !r->object_p || !r->object_cell || !r->object_x || !r->object_y || !r->background_logit || !r->background_p) {
    sd_emoji_judge_result_free(r);
    return sd_fail(SD_E_NOMEM, "out of memory");
  }
  return SD_OK;
}

void sd_emoji_judge_result_free(sd_emoji_judge_result *r) {
  if (!r) return;
  free(r->object_logit);
  free(r->object_p);
  free(r->object_cell);
  free(r->object_x);
  free(r->object_y);
  free(r->background_logit);
  free(r->background_p);
  memset(r, 0, sizeof *r);
}

int sd_emoji_judge_forward(const sd_emoji_judge *j, sd_exec *ex, const float *x, sd_emoji_judge_result *r) {
  if (!j || !ex || !x || !r || !r->object_p) return sd_fail(SD_E_ARG, "emoji-judge: bad argument");
  const int C0 = j->layers[0].cout, CL = j->layers[j->L - 1].cout;
  float *a = malloc(sizeof(float) * (size_t)j->max_floats), *b = malloc(sizeof(float) * (size_t)j->max_floats);
  float *feat = malloc(sizeof(float) * (size_t)(CL + C0)), *cells = NULL;
  int rc = SD_OK;
  if (!a || !b || !feat) {
    rc = sd_fail(SD_E_NOMEM, "out of memory");
    goto done;
  }
  memcpy(a, x, sizeof(float) * 3 * (size_t)j->S * j->S);
  int side = j->S;
  for (int i = 0; i < j->L; i++) {
    const judge_layer *l = &j->layers[i];
    sd_conv2d_shape s = {l->cin, side, side, l->stride, 1, 1, 1, 1};
    if ((rc = sd_op_conv2d(ex, &s, a, &l->w, l->b, b))) goto done;
    side = (side + 2 - 3) / l->stride + 1;
    const int64_t HW = (int64_t)side * side;
    if (i == 0) /* the colour head's raw stem statistics: channel means before the norm */
      for (int c = 0; c < C0; c++) {
        double m = 0;
        for (int64_t p = 0; p < HW; p++) m += b[c * HW + p];
        feat[CL + c] = (float)(m / (double)HW);
      }
    sd_op_groupnorm(ex, b, l->cout, HW, j->groups, l->gn_g, l->gn_b, j->eps, 1, a);
  }
  /* a: [CL, side, side]. Object head per cell: [HW, CL] · W_oᵀ */
  const int HW = side * side;
  if (!(cells = malloc(sizeof(float) * (size_t)HW * ((size_t)CL + (size_t)j->n_obj)))) {
    rc = sd_fail(SD_E_NOMEM, "out of memory");
    goto done;
  }
  float *t = cells, *logits = cells + (size_t)HW * CL;
  sd_op_transpose(ex, a, CL, HW, t);
  if ((rc = sd_op_linear(ex, t, HW, CL, &j->obj_w, j->obj_b, logits))) goto done;
  for (int o = 0; o < j->n_obj; o++) {
    int best = 0;
    for (int p = 1; p < HW; p++)
      if (logits[(size_t)p * j->n_obj + o] > logits[(size_t)best * j->n_obj + o]) best = p;
    float v = logits[(size_t)best * j->n_obj + o];
    r->object_logit[o] = v;
    r->object_p[o] = (float)(1.0 / (1.0 + exp(-(double)v)));
    r->object_cell[o] = best;
    r->object_x[o] = ((float)(best % side) + 0.5f) / (float)side;
    r->object_y[o] = ((float)(best / side) + 0.5f) / (float)side;
  }
  r->background_top = -1;
  if (j->n_bg) {
    for (int c = 0; c < CL; c++) {
      double m = 0;
      for (int p = 0; p < HW; p++) m += a[(size_t)c * HW + p];
      feat[c] = (float)(m / HW);
    }
    double mx = -INFINITY, z = 0;
    for (int k = 0; k < j->n_bg; k++) {
      double s = j->bg_b[k];
      const float *wk = j->bg_w + (size_t)k * (CL + C0);
      for (int c = 0; c < CL + C0; c++) s += (double)wk[c] * feat[c];
      r->background_logit[k] = (float)s;
      if (s > mx) mx = s, r->background_top = k;
    }
    for (int k = 0; k < j->n_bg; k++) z += exp((double)r->background_logit[k] - mx);
    for (int k = 0; k < j->n_bg; k++) r->background_p[k] = (float)(exp((double)r->background_logit[k] - mx) / z);
  }
done:
  free(a);
  free(b);
  free(feat);
  free(cells);
  return rc;
}

int sd_emoji_judge_classify(const sd_emoji_judge *j, sd_exec *ex, const uint8_t *rgb, int w, int h,
                            sd_emoji_judge_result *r) {
  if (!j) return sd_fail(SD_E_ARG, "emoji-judge: no judge");
  float *x = malloc(sizeof(float) * 3 * (size_t)j->S * j->S);
  if (!x) return sd_fail(SD_E_NOMEM, "out of memory");
  int rc = sd_emoji_judge_preprocess(j, rgb, w, h, x);
  if (!rc) rc = sd_emoji_judge_forward(j, ex, x, r);
  free(x);
  return rc;
}
