#include "judge/clip_vision.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/arena.h"
#include "core/error.h"
#include "io/json_util.h"
#include "io/safetensors.h"

#define MAX_WIDTH 16384
#define MAX_LAYERS 256
#define MAX_PROJ 65536
#define MAX_IMAGE_SIZE 4096

static const float CLIP_MEAN[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float CLIP_STD[3] = {0.26862954f, 0.26130258f, 0.27577711f};

typedef struct {
  sd_tensor q_w, k_w, v_w, o_w, fc1_w, fc2_w;
  float *q_b, *k_b, *v_b, *o_b, *fc1_b, *fc2_b;
  float *ln1_g, *ln1_b, *ln2_g, *ln2_b;
} vis_layer;

struct sd_clip_vision {
  sd_clip_vision_config cfg;
  sd_safetensors *st;
  char *file;
  int safety_layout;
  char prefix[32];       /* "vision_model." or "vision_model.vision_model." */
  int grid, n_tokens;    /* patches per side, grid² + 1 */
  sd_tensor patch_w;     /* [D, 3·p·p] view of the [D, 3, p, p] convolution weight */
  sd_tensor proj;        /* [P, D] */
  float *cls, *pos;      /* [D], [n_tokens, D] widened */
  float *pre_g, *pre_b, *post_g, *post_b;
  vis_layer *layers;
};

/* ---- config ------------------------------------------------------------------------- */

static int read_vision_keys(const json_t *o, const char *label, sd_clip_vision_config *c, int *channels) {
  const char *act = NULL;
  int rc;
  if ((rc = sd_json_get_i32(o, "hidden_size", label, 1, MAX_WIDTH, &c->hidden, 0)) ||
      (rc = sd_json_get_i32(o, "num_hidden_layers", label, 1, MAX_LAYERS, &c->layers, 0)) ||
      (rc = sd_json_get_i32(o, "num_attention_heads", label, 1, MAX_WIDTH, &c->heads, 0)) ||
      (rc = sd_json_get_i32(o, "intermediate_size", label, 1, 4 * MAX_WIDTH, &c->intermediate, 0)) ||
      (rc = sd_json_get_i32(o, "image_size", label, 1, MAX_IMAGE_SIZE, &c->image_size, 0)) ||
      (rc = sd_json_get_i32(o, "patch_size", label, 1, MAX_IMAGE_SIZE, &c->patch_size, 0)) ||
      (rc = sd_json_get_i32(o, "num_channels", label, 1, 64, channels, 0)) ||
      (rc = sd_json_get_f32(o, "layer_norm_eps", label, 0.0f, 1.0f, &c->ln_eps, 0)) ||
      (rc = sd_json_get_str(o, "hidden_act", label, &act, 0)))
    return rc;
  if (act) {
    if (strcmp(act, "quick_gelu") == 0) c->act = SD_ACT_QUICK_GELU;
    else if (strcmp(act, "gelu") == 0) c->act = SD_ACT_GELU;
    else {
      char q[64];
      return sd_fail(SD_E_UNSUPPORTED, "%s: key 'hidden_act': \"%s\" is not supported (quick_gelu or gelu)", label,
                     sd_msg_quote(act, q, sizeof q));
    }
  }
  return SD_OK;
}

static int parse_config(const char *path, sd_clip_vision_config *out) {
  json_t *root = NULL;
  int rc = sd_json_load_file(path, SD_JSON_CONFIG_MAX, &root);
  if (rc) return rc;
  sd_clip_vision_config c = {
    .hidden = 768, .layers = 12, .heads = 12, .intermediate = 3072, .image_size = 224, .patch_size = 32,
    .projection_dim = 512, .act = SD_ACT_QUICK_GELU, .ln_eps = 1e-5f,
  };
  int channels = 3;
  const json_t *vc = NULL, *vcd = NULL;
  int whole = sd_json_has(root, "vision_config") || sd_json_has(root, "vision_config_dict");
  if ((rc = sd_json_get_obj(root, "vision_config", path, &vc, 0)) ||
      (rc = sd_json_get_obj(root, "vision_config_dict", path, &vcd, 0)))
    goto done;
  if (whole) {
    /* CLIPConfig: the tower's keys in vision_config, the projection at the top level. The
     * legacy vision_config_dict, when present, replaces vision_config entirely (transformers
     * updates vision_config with CLIPVisionConfig(**vision_config_dict), defaults included) */
    if ((rc = read_vision_keys(vcd ? vcd : vc, path, &c, &channels))) goto done;
  } else if ((rc = read_vision_keys(root, path, &c, &channels))) {
    goto done;
  }
  if ((rc = sd_json_get_i32(root, "projection_dim", path, 1, MAX_PROJ, &c.projection_dim, 0))) goto done;
  if (channels != 3) {
    rc = sd_fail(SD_E_UNSUPPORTED, "%s: num_channels %d (only RGB, 3, is supported)", path, channels);
    goto done;
  }
  if (c.hidden % c.heads) {
    rc = sd_fail(SD_E_FORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d", path, c.hidden, c.heads);
    goto done;
  }
  if (c.patch_size > c.image_size || c.image_size / c.patch_size > SD_CLIP_VISION_MAX_GRID) {
    rc = sd_fail(SD_E_FORMAT, "%s: image_size %d with patch_size %d gives %d patches per side (1..%d accepted)", path,
                 c.image_size, c.patch_size, c.image_size / c.patch_size, SD_CLIP_VISION_MAX_GRID);
    goto done;
  }
  if (!(c.ln_eps > 0.0f)) {
    rc = sd_fail(SD_E_FORMAT, "%s: layer_norm_eps %g must be positive", path, (double)c.ln_eps);
    goto done;
  }
  *out = c;
done:
  json_decref(root);
  return rc;
}

/* ---- weights ------------------------------------------------------------------------ */

/* Look up name (ndim, shape; shape[i] < 0 = any) with a float dtype. */
static int lookup(const sd_clip_vision *cv, const char *name, int ndim, const int64_t *shape, sd_tensor *t) {
  const sd_st_entry *e = sd_st_find(cv->st, name);
  if (!e) return sd_fail(SD_E_FORMAT, "%s: tensor '%s' is missing", cv->file, name);
  sd_tensor v = sd_st_tensor(e);
  int ok = v.ndim == ndim;
  for (int i = 0; ok && i < ndim; i++)
    if (shape[i] >= 0 && v.shape[i] != shape[i]) ok = 0;
  if (!ok) {
    char got[96], want[96] = "[";
    for (int i = 0; i < ndim; i++) {
      size_t l = strlen(want);
      if (shape[i] >= 0) snprintf(want + l, sizeof want - l, "%s%lld", i ? ", " : "", (long long)shape[i]);
      else snprintf(want + l, sizeof want - l, "%s*", i ? ", " : "");
    }
    strncat(want, "]", sizeof want - strlen(want) - 1);
    return sd_fail(SD_E_FORMAT, "%s: tensor '%s' has shape %s, expected %s", cv->file, name,
                   sd_shape_str(&v, got, sizeof got), want);
  }
  if (v.dtype != SD_F32 && v.dtype != SD_F16 && v.dtype != SD_BF16)
    return sd_fail(SD_E_FORMAT, "%s: tensor '%s' has dtype %s (F32, F16 or BF16 expected)", cv->file, name,
                   sd_dtype_name(v.dtype));
  *t = v;
  return SD_OK;
}

/* Tower weight (name relative to the prefix): a view (t) and/or a float32 copy (dup). */
static int get(const sd_clip_vision *cv, const char *rel, int ndim, int64_t d0, int64_t d1, sd_tensor *t,
               float **dup) {
  char name[192];
  snprintf(name, sizeof name, "%s%s", cv->prefix, rel);
  int64_t shape[2] = {d0, d1};
  sd_tensor v;
  int rc = lookup(cv, name, ndim, shape, &v);
  if (rc) return rc;
  if (t) *t = v;
  if (dup && !(*dup = sd_weight_dup_f32(&v))) return SD_E_NOMEM;
  return SD_OK;
}

int sd_clip_vision_extra_f32(const sd_clip_vision *cv, const char *name, int ndim, const int64_t *shape,
                             int64_t *got_shape, float **out) {
  *out = NULL;
  if (ndim < 1 || ndim > SD_MAX_DIMS) return sd_fail(SD_E_ARG, "extra tensor '%s': bad rank %d", name, ndim);
  sd_tensor v;
  int rc = lookup(cv, name, ndim, shape, &v);
  if (rc) return rc;
  if (got_shape)
    for (int i = 0; i < ndim; i++) got_shape[i] = v.shape[i];
  if (!(*out = sd_weight_dup_f32(&v))) return SD_E_NOMEM;
  return SD_OK;
}

void sd_clip_vision_free(sd_clip_vision *cv) {
  if (!cv) return;
  if (cv->layers) {
    for (int l = 0; l < cv->cfg.layers; l++) {
      vis_layer *L = &cv->layers[l];
      float *v[] = {L->q_b, L->k_b, L->v_b, L->o_b, L->fc1_b, L->fc2_b, L->ln1_g, L->ln1_b, L->ln2_g, L->ln2_b};
      for (size_t i = 0; i < sizeof v / sizeof *v; i++) free(v[i]);
    }
    free(cv->layers);
  }
  free(cv->cls);
  free(cv->pos);
  free(cv->pre_g);
  free(cv->pre_b);
  free(cv->post_g);
  free(cv->post_b);
  sd_st_close(cv->st);
  free(cv->file);
  free(cv);
}

static int is_file(const char *p) {
  struct stat s;
  return stat(p, &s) == 0 && S_ISREG(s.st_mode);
}

static int load_weights(sd_clip_vision *cv) {
  const sd_clip_vision_config *c = &cv->cfg;
  const int64_t D = c->hidden, I = c->intermediate, p = c->patch_size;
  int rc;
  if (sd_st_find(cv->st, "vision_model.vision_model.embeddings.class_embedding")) {
    cv->safety_layout = 1;
    snprintf(cv->prefix, sizeof cv->prefix, "vision_model.vision_model.");
  } else if (sd_st_find(cv->st, "vision_model.embeddings.class_embedding")) {
    snprintf(cv->prefix, sizeof cv->prefix, "vision_model.");
  } else {
    return sd_fail(SD_E_FORMAT,
                   "%s: no CLIP vision tower (neither 'vision_model.embeddings.class_embedding' nor "
                   "'vision_model.vision_model.embeddings.class_embedding' is in the file)",
                   cv->file);
  }
  cv->grid = c->image_size / c->patch_size;
  cv->n_tokens = cv->grid * cv->grid + 1;
  sd_tensor pw, pos;
  int64_t pshape[4] = {D, 3, p, p};
  char name[192];
  snprintf(name, sizeof name, "%sembeddings.patch_embedding.weight", cv->prefix);
  if ((rc = get(cv, "embeddings.class_embedding", 1, D, 0, NULL, &cv->cls)) ||
      (rc = lookup(cv, name, 4, pshape, &pw)) ||
      (rc = get(cv, "embeddings.position_embedding.weight", 2, cv->n_tokens, D, &pos, &cv->pos)) ||
      (rc = get(cv, "pre_layrnorm.weight", 1, D, 0, NULL, &cv->pre_g)) ||
      (rc = get(cv, "pre_layrnorm.bias", 1, D, 0, NULL, &cv->pre_b)) ||
      (rc = get(cv, "post_layernorm.weight", 1, D, 0, NULL, &cv->post_g)) ||
      (rc = get(cv, "post_layernorm.bias", 1, D, 0, NULL, &cv->post_b)))
    return rc;
  (void)pos;
  int64_t prj[2] = {c->projection_dim, D};
  if ((rc = lookup(cv, "visual_projection.weight", 2, prj, &cv->proj))) return rc;
  /* the convolution weight [D, 3, p, p] seen as a matrix [D, 3·p·p] (same bytes) */
  cv->patch_w = pw;
  cv->patch_w.ndim = 2;
  cv->patch_w.shape[1] = 3 * p * p;
  cv->layers = calloc((size_t)c->layers, sizeof(vis_layer));
  if (!cv->layers) return sd_fail(SD_E_NOMEM, "out of memory");
  for (int l = 0; l < c->layers; l++) {
    vis_layer *L = &cv->layers[l];
    char n[128];
#define P(suffix) (snprintf(n, sizeof n, "encoder.layers.%d.%s", l, suffix), n)
    if ((rc = get(cv, P("self_attn.q_proj.weight"), 2, D, D, &L->q_w, NULL)) ||
        (rc = get(cv, P("self_attn.k_proj.weight"), 2, D, D, &L->k_w, NULL)) ||
        (rc = get(cv, P("self_attn.v_proj.weight"), 2, D, D, &L->v_w, NULL)) ||
        (rc = get(cv, P("self_attn.out_proj.weight"), 2, D, D, &L->o_w, NULL)) ||
        (rc = get(cv, P("self_attn.q_proj.bias"), 1, D, 0, NULL, &L->q_b)) ||
        (rc = get(cv, P("self_attn.k_proj.bias"), 1, D, 0, NULL, &L->k_b)) ||
        (rc = get(cv, P("self_attn.v_proj.bias"), 1, D, 0, NULL, &L->v_b)) ||
        (rc = get(cv, P("self_attn.out_proj.bias"), 1, D, 0, NULL, &L->o_b)) ||
        (rc = get(cv, P("layer_norm1.weight"), 1, D, 0, NULL, &L->ln1_g)) ||
        (rc = get(cv, P("layer_norm1.bias"), 1, D, 0, NULL, &L->ln1_b)) ||
        (rc = get(cv, P("layer_norm2.weight"), 1, D, 0, NULL, &L->ln2_g)) ||
        (rc = get(cv, P("layer_norm2.bias"), 1, D, 0, NULL, &L->ln2_b)) ||
        (rc = get(cv, P("mlp.fc1.weight"), 2, I, D, &L->fc1_w, NULL)) ||
        (rc = get(cv, P("mlp.fc1.bias"), 1, I, 0, NULL, &L->fc1_b)) ||
        (rc = get(cv, P("mlp.fc2.weight"), 2, D, I, &L->fc2_w, NULL)) ||
        (rc = get(cv, P("mlp.fc2.bias"), 1, D, 0, NULL, &L->fc2_b)))
      return rc;
#undef P
  }
  /* a deeper tower than the config says is a mismatched config, not something to ignore */
  snprintf(name, sizeof name, "%sencoder.layers.%d.layer_norm1.weight", cv->prefix, c->layers);
  if (sd_st_find(cv->st, name))
    return sd_fail(SD_E_FORMAT, "%s: the file has more encoder layers than num_hidden_layers %d of config.json ('%s' exists)",
                   cv->file, c->layers, name);
  return SD_OK;
}

int sd_clip_vision_load(const char *dir, sd_clip_vision **out) {
  *out = NULL;
  char cfg_path[4096], file[4096];
  struct stat s;
  if (stat(dir, &s) != 0 || !S_ISDIR(s.st_mode))
    return sd_fail(SD_E_IO, "%s: not a folder (a CLIP folder holds config.json and model.safetensors)", dir);
  snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
  snprintf(file, sizeof file, "%s/model.safetensors", dir);
  if (!is_file(file)) {
    snprintf(file, sizeof file, "%s/model.fp16.safetensors", dir);
    if (!is_file(file))
      return sd_fail(SD_E_IO, "%s: no model.safetensors (nor model.fp16.safetensors) in the folder", dir);
  }
  sd_clip_vision *cv = calloc(1, sizeof *cv);
  if (!cv || !(cv->file = strdup(file))) {
    free(cv);
    return sd_fail(SD_E_NOMEM, "out of memory");
  }
  int rc;
  if ((rc = parse_config(cfg_path, &cv->cfg)) || (rc = sd_st_open(file, &cv->st)) || (rc = load_weights(cv))) {
    sd_clip_vision_free(cv);
    return sd_fail_prefix(rc, "CLIP vision tower: ");
  }
  *out = cv;
  return SD_OK;
}

const sd_clip_vision_config *sd_clip_vision_cfg(const sd_clip_vision *cv) { return &cv->cfg; }
const char *sd_clip_vision_file(const sd_clip_vision *cv) { return cv->file; }
int sd_clip_vision_is_safety_layout(const sd_clip_vision *cv) { return cv->safety_layout; }

/* ---- preprocessing: Pillow's BICUBIC resample (libImaging/Resample.c), uint8 -------- */

#define PRECISION_BITS (32 - 8 - 2)

static double bicubic_filter(double x) {
  const double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

typedef struct {
  int ksize;
  int *bounds;  /* [count][2]: first input index, number of taps */
  int32_t *k;   /* [count][ksize] fixed-point coefficients */
} coeffs;

static void coeffs_free(coeffs *c) {
  free(c->bounds);
  free(c->k);
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc for output indices [o0, o0 + count)
 * of a resize of in_size to out_size (box = the whole input). */
static int precompute(int in_size, int out_size, int o0, int count, coeffs *c) {
  double scale = (double)((float)in_size - 0.0f) / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
  double support = 2.0 * filterscale;
  int ksize = (int)ceil(support) * 2 + 1;
  c->ksize = ksize;
  c->bounds = malloc((size_t)count * 2 * sizeof(int));
  c->k = malloc((size_t)count * (size_t)ksize * sizeof(int32_t));
  double *kk = malloc((size_t)ksize * sizeof(double));
  if (!c->bounds || !c->k || !kk) {
    free(kk);
    coeffs_free(c);
    return sd_fail(SD_E_NOMEM, "out of memory (resize coefficients)");
  }
  for (int i = 0; i < count; i++) {
    int xx = o0 + i;
    double center = 0.0 + (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
    int xmin = (int)(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = (int)(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    if (xmax > ksize) xmax = ksize; /* cannot happen (2·support ≤ ksize - 1); keeps reads in bounds */
    int x;
    for (x = 0; x < xmax; x++) {
      double w = bicubic_filter((x + xmin - center + 0.5) * ss);
      kk[x] = w;
      ww += w;
    }
    for (x = 0; x < xmax; x++)
      if (ww != 0.0) kk[x] /= ww;
    for (; x < ksize; x++) kk[x] = 0;
    int32_t *k = c->k + (size_t)i * ksize;
    for (x = 0; x < ksize; x++)
      k[x] = kk[x] < 0 ? (int32_t)(-0.5 + kk[x] * (1 << PRECISION_BITS)) : (int32_t)(0.5 + kk[x] * (1 << PRECISION_BITS));
    c->bounds[2 * i] = xmin;
    c->bounds[2 * i + 1] = xmax;
  }
  free(kk);
  return SD_OK;
}

static inline uint8_t clip8(int64_t in) {
  if (in >= ((int64_t)1 << PRECISION_BITS << 8)) return 255;
  if (in <= 0) return 0;
  return (uint8_t)(in >> PRECISION_BITS);
}

/* The output size CLIPImageProcessor resizes to (shortest side = size). */
static void resized_dims(int w, int h, int size, int *ow, int *oh) {
  int shrt = w <= h ? w : h, lng = w <= h ? h : w;
  int new_long = (int)((double)((int64_t)size * lng) / shrt);
  if (w <= h) *ow = size, *oh = new_long;
  else *ow = new_long, *oh = size;
}

int sd_clip_resize_crop_rgb8(const sd_rgb8_image *img, int size, uint8_t *out) {
  if (!img || !img->rgb || !out) return sd_fail(SD_E_ARG, "image preprocessing: NULL argument");
  const int W = img->width, H = img->height;
  if (W < 1 || H < 1 || W > SD_CLIP_IMAGE_MAX_SIDE || H > SD_CLIP_IMAGE_MAX_SIDE)
    return sd_fail(SD_E_ARG, "image preprocessing: image of %dx%d pixels (each side 1..%d)", W, H, SD_CLIP_IMAGE_MAX_SIDE);
  if (size < 1 || size > MAX_IMAGE_SIZE)
    return sd_fail(SD_E_ARG, "image preprocessing: output size %d (1..%d)", size, MAX_IMAGE_SIZE);
  int ow, oh;
  resized_dims(W, H, size, &ow, &oh);
  const int left = (ow - size) / 2, top = (oh - size) / 2;
  const int need_h = ow != W, need_v = oh != H;
  coeffs ch = {0}, cvt = {0};
  int rc;
  if (need_h && (rc = precompute(W, ow, left, size, &ch))) return rc;
  if (need_v && (rc = precompute(H, oh, top, size, &cvt))) { coeffs_free(&ch); return rc; }
  /* input rows the vertical pass reads */
  int r0 = top, r1 = top + size;
  if (need_v) r0 = cvt.bounds[0], r1 = cvt.bounds[2 * (size - 1)] + cvt.bounds[2 * (size - 1) + 1];
  uint8_t *tmp = malloc((size_t)(r1 - r0) * size * 3);
  if (!tmp) {
    coeffs_free(&ch);
    coeffs_free(&cvt);
    return sd_fail(SD_E_NOMEM, "image preprocessing: out of memory");
  }
  /* horizontal pass (or the crop of the columns) over rows [r0, r1) */
  for (int y = r0; y < r1; y++) {
    const uint8_t *src = img->rgb + (size_t)y * W * 3;
    uint8_t *dst = tmp + (size_t)(y - r0) * size * 3;
    if (!need_h) {
      memcpy(dst, src + (size_t)left * 3, (size_t)size * 3);
      continue;
    }
    for (int xx = 0; xx < size; xx++) {
      int xmin = ch.bounds[2 * xx], xmax = ch.bounds[2 * xx + 1];
      const int32_t *k = ch.k + (size_t)xx * ch.ksize;
      int64_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
      for (int x = 0; x < xmax; x++) {
        const uint8_t *px = src + (size_t)(x + xmin) * 3;
        s0 += px[0] * (int64_t)k[x];
        s1 += px[1] * (int64_t)k[x];
        s2 += px[2] * (int64_t)k[x];
      }
      dst[3 * xx] = clip8(s0), dst[3 * xx + 1] = clip8(s1), dst[3 * xx + 2] = clip8(s2);
    }
  }
  /* vertical pass (or the crop of the rows) */
  for (int yy = 0; yy < size; yy++) {
    uint8_t *dst = out + (size_t)yy * size * 3;
    if (!need_v) {
      memcpy(dst, tmp + (size_t)(top + yy - r0) * size * 3, (size_t)size * 3);
      continue;
    }
    int ymin = cvt.bounds[2 * yy] - r0, ymax = cvt.bounds[2 * yy + 1];
    const int32_t *k = cvt.k + (size_t)yy * cvt.ksize;
    for (int c = 0; c < size * 3; c++) {
      int64_t s = 1 << (PRECISION_BITS - 1);
      for (int y = 0; y < ymax; y++) s += tmp[(size_t)(y + ymin) * size * 3 + c] * (int64_t)k[y];
      dst[c] = clip8(s);
    }
  }
  free(tmp);
  coeffs_free(&ch);
  coeffs_free(&cvt);
  return SD_OK;
}

int sd_clip_preprocess(const sd_rgb8_image *img, int size, float *out) {
  if (size < 1 || size > MAX_IMAGE_SIZE)
    return sd_fail(SD_E_ARG, "image preprocessing: output size %d (1..%d)", size, MAX_IMAGE_SIZE);
  uint8_t *crop = malloc((size_t)size * size * 3);
  if (!crop) return sd_fail(SD_E_NOMEM, "image preprocessing: out of memory");
  int rc = sd_clip_resize_crop_rgb8(img, size, crop);
  if (rc == SD_OK) {
    const size_t plane = (size_t)size * size;
    for (size_t i = 0; i < plane; i++)
      for (int c = 0; c < 3; c++) {
        /* transformers: rescale in float64, cast to float32; normalise in float32 */
        float r = (float)((double)crop[3 * i + c] * (1.0 / 255.0));
        out[c * plane + i] = (r - CLIP_MEAN[c]) / CLIP_STD[c];
      }
  }
  free(crop);
  return rc;
}

/* ---- forward ------------------------------------------------------------------------ */

size_t sd_clip_vision_arena_bytes(const sd_clip_vision *cv, int n) {
  const int64_t T = (int64_t)n * cv->n_tokens, D = cv->cfg.hidden, I = cv->cfg.intermediate;
  const int64_t p = cv->cfg.patch_size, G = (int64_t)n * cv->grid * cv->grid;
  /* x and h live throughout; then the widest of: patches (+ their embeddings in h),
   * q/k/v/attention output (4·T·D), the MLP (T·I) */
  size_t a = sd_arena_f32_bytes(G * 3 * p * p), b = 4 * sd_arena_f32_bytes(T * D), c = sd_arena_f32_bytes(T * I);
  size_t widest = a > b ? a : b;
  if (c > widest) widest = c;
  return 2 * sd_arena_f32_bytes(T * D) + widest;
}

int sd_clip_vision_embed_pixels(sd_clip_vision *cv, sd_exec *ex, const float *pixels, int n, float *out) {
  const sd_clip_vision_config *c = &cv->cfg;
  if (n < 1 || n > 4096) return sd_fail(SD_E_ARG, "CLIP vision tower: batch of %d images (1..4096)", n);
  if (!pixels || !out) return sd_fail(SD_E_ARG, "CLIP vision tower: NULL pixels or output");
  const int S = c->image_size, p = c->patch_size, g = cv->grid, N = cv->n_tokens;
  const int64_t T = (int64_t)n * N, D = c->hidden, I = c->intermediate, K = 3 * (int64_t)p * p;
  const int64_t G = (int64_t)g * g;
  sd_arena ar;
  int rc = sd_arena_init(&ar, sd_clip_vision_arena_bytes(cv, n));
  if (rc) return rc;
  float *x = sd_arena_f32(&ar, T * D), *h = sd_arena_f32(&ar, T * D);
  size_t mark = sd_arena_mark(&ar);

  /* patch embedding: gather each patch as (c, i, j) to match the [D, 3, p, p] weight */
  float *patches = sd_arena_f32(&ar, n * G * K);
  if (!x || !h || !patches) { rc = SD_E_INTERNAL; goto out; }
  for (int b = 0; b < n; b++)
    for (int gy = 0; gy < g; gy++)
      for (int gx = 0; gx < g; gx++) {
        float *row = patches + ((int64_t)b * G + (int64_t)gy * g + gx) * K;
        for (int ch = 0; ch < 3; ch++)
          for (int i = 0; i < p; i++) {
            const float *src = pixels + (((int64_t)b * 3 + ch) * S + (int64_t)gy * p + i) * S + (int64_t)gx * p;
            memcpy(row + ((int64_t)ch * p + i) * p, src, (size_t)p * sizeof(float));
          }
      }
  if ((rc = sd_op_linear(ex, patches, n * G, K, &cv->patch_w, NULL, h))) goto out;
  for (int b = 0; b < n; b++) {
    float *xb = x + (int64_t)b * N * D;
    memcpy(xb, cv->cls, (size_t)D * sizeof(float));
    memcpy(xb + D, h + (int64_t)b * G * D, (size_t)(G * D) * sizeof(float));
    for (int64_t i = 0; i < N * D; i++) xb[i] += cv->pos[i];
  }
  sd_op_layernorm(ex, x, T, D, cv->pre_g, cv->pre_b, c->ln_eps, x);

  const int Dh = (int)(D / c->heads);
  sd_attn_shape as = {n, c->heads, N, N, Dh, D, D, D, 0, 1.0f / sqrtf((float)Dh)};
  for (int l = 0; l < c->layers; l++) {
    vis_layer *L = &cv->layers[l];
    sd_arena_reset(&ar, mark);
    sd_op_layernorm(ex, x, T, D, L->ln1_g, L->ln1_b, c->ln_eps, h);
    float *q = sd_arena_f32(&ar, T * D), *k = sd_arena_f32(&ar, T * D), *v = sd_arena_f32(&ar, T * D);
    float *a = sd_arena_f32(&ar, T * D);
    if (!q || !k || !v || !a) { rc = SD_E_INTERNAL; goto out; }
    if ((rc = sd_op_linear(ex, h, T, D, &L->q_w, L->q_b, q)) || (rc = sd_op_linear(ex, h, T, D, &L->k_w, L->k_b, k)) ||
        (rc = sd_op_linear(ex, h, T, D, &L->v_w, L->v_b, v)) || (rc = sd_op_attention(ex, &as, q, k, v, a)) ||
        (rc = sd_op_linear(ex, a, T, D, &L->o_w, L->o_b, h)))
      goto out;
    sd_op_add(ex, x, h, T * D);
    sd_arena_reset(&ar, mark);
    float *mlp = sd_arena_f32(&ar, T * I);
    if (!mlp) { rc = SD_E_INTERNAL; goto out; }
    sd_op_layernorm(ex, x, T, D, L->ln2_g, L->ln2_b, c->ln_eps, h);
    if ((rc = sd_op_linear(ex, h, T, D, &L->fc1_w, L->fc1_b, mlp))) goto out;
    if (c->act == SD_ACT_GELU) sd_op_gelu(ex, mlp, T * I);
    else sd_op_quick_gelu(ex, mlp, T * I);
    if ((rc = sd_op_linear(ex, mlp, T, I, &L->fc2_w, L->fc2_b, h))) goto out;
    sd_op_add(ex, x, h, T * D);
  }
  /* pooled = post_layernorm(state of [CLS]); image_embeds = pooled · projectionᵀ */
  for (int b = 0; b < n; b++) memcpy(h + (int64_t)b * D, x + (int64_t)b * N * D, (size_t)D * sizeof(float));
  sd_op_layernorm(ex, h, n, D, cv->post_g, cv->post_b, c->ln_eps, h);
  rc = sd_op_linear(ex, h, n, D, &cv->proj, NULL, out);
out:
  sd_arena_free(&ar);
  return rc ? sd_fail_prefix(rc, "CLIP vision tower: ") : SD_OK;
}

int sd_clip_vision_embed(sd_clip_vision *cv, sd_exec *ex, const sd_rgb8_image *images, int n, float *out) {
  if (n < 0 || (n > 0 && (!images || !out))) return sd_fail(SD_E_ARG, "CLIP vision tower: bad image list");
  const int S = cv->cfg.image_size;
  const size_t per = (size_t)3 * S * S;
  int chunk = n < SD_CLIP_VISION_BATCH ? n : SD_CLIP_VISION_BATCH;
  if (n == 0) return SD_OK;
  float *px = malloc((size_t)chunk * per * sizeof(float));
  if (!px) return sd_fail(SD_E_NOMEM, "CLIP vision tower: out of memory");
  int rc = SD_OK;
  for (int i0 = 0; i0 < n && rc == SD_OK; i0 += chunk) {
    int m = n - i0 < chunk ? n - i0 : chunk;
    for (int j = 0; j < m && rc == SD_OK; j++)
      if ((rc = sd_clip_preprocess(&images[i0 + j], S, px + (size_t)j * per)))
        sd_fail_prefix(rc, "image %d: ", i0 + j);
    if (rc == SD_OK) rc = sd_clip_vision_embed_pixels(cv, ex, px, m, out + (size_t)i0 * cv->cfg.projection_dim);
  }
  free(px);
  return rc;
}

void sd_l2_normalize_rows(float *x, int64_t n, int64_t d) {
  for (int64_t r = 0; r < n; r++) {
    float *v = x + r * d;
    double s = 0;
    for (int64_t i = 0; i < d; i++) s += (double)v[i] * v[i];
    double nrm = sqrt(s);
    if (nrm < 1e-12) nrm = 1e-12;
    for (int64_t i = 0; i < d; i++) v[i] = (float)(v[i] / nrm);
  }
}
