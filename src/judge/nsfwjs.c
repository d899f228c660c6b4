/* nsfwjs MobileNetV2: a TF.js layers-model loader and a small interpreter for the Keras
 * layers that model uses (see nsfwjs.h for the contract).
 *
 * Load, in order:
 *  1. model.json is parsed (size-limited, duplicate keys rejected).
 *  2. weightsManifest: every weight's name, shape, dtype and quantisation is validated and
 *     given its byte range in its group's stream (the group's shards, concatenated); the
 *     shards are read and their total length must equal the manifest's byte count exactly.
 *  3. The layer graph: names unique, each layer applied once, inputs only from layers
 *     defined before it (Keras writes them in topological order), the model's single input
 *     and output resolved. Consumers of every layer are counted (for fusion).
 *  4. Each layer becomes an op (or an alias: Dropout, Flatten; or a fusion into the op
 *     before it: BatchNormalization into a convolution/Dense, ReLU into anything with an
 *     epilogue), with its output shape inferred and its weights fetched by name
 *     ("<layer>/<param>") with the shape its configuration implies, dequantised and put in
 *     the layout the op wants. Every manifest weight must be used by exactly one layer.
 *  5. Ops that do not lead to the output are dropped; activation buffers are planned
 *     (liveness, best-fit reuse, element-wise ops in place).
 *
 * Layouts: activations NHWC ([H, W, C], batch 1). Conv2D weights become [Cout, kh·kw·Cin]
 * (im2col columns ordered (ky, kx, ci)), so a convolution is im2col + sd_op_linear and a
 * 1×1 stride-1 convolution is sd_op_linear on the input itself. Depthwise weights keep
 * TF's [kh, kw, C, dm] order, which is the output-channel order c·dm + m. Dense weights
 * become [units, K].
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "core/error.h"
#include "judge/nsfwjs_internal.h"
#include "io/fileio.h"
#include "io/json_util.h"

#define MODEL_JSON_MAX ((size_t)64 << 20)    /* model.json (117 KB for MobileNetV2) */
#define WEIGHTS_MAX ((int64_t)1 << 30)       /* all weight bytes together */
#define MAX_LAYERS 4096
#define MAX_WEIGHTS 65536
#define MAX_SHARDS 4096
#define MAX_DIM 16384                        /* a spatial size or channel count */
#define MAX_KERNEL 64                        /* kernel, stride, pool sizes */
#define MAX_VALUE ((int64_t)1 << 27)         /* floats in one activation */

static const char *const class_names[SD_NSFWJS_CLASSES] = {"Drawing", "Hentai", "Neutral", "Porn", "Sexy"};

const char *sd_nsfwjs_class_name(int k) {
  return k >= 0 && k < SD_NSFWJS_CLASSES ? class_names[k] : NULL;
}

static void free_ops(op *ops, int n) {
  for (int i = 0; i < n; i++) {
    free(ops[i].name);
    free(ops[i].w);
    free(ops[i].b);
  }
  free(ops);
}

void sd_nsfwjs_free(sd_nsfwjs *m) {
  if (!m) return;
  free_ops(m->ops, m->n_ops);
  free(m);
}

void sd_nsfwjs_input_size(const sd_nsfwjs *m, int *h, int *w) {
  *h = m->in_h;
  *w = m->in_w;
}

size_t sd_nsfwjs_workspace_bytes(const sd_nsfwjs *m) { return (size_t)m->ws_floats * sizeof(float); }

void sd_nsfwjs_describe(const sd_nsfwjs *m, char *buf, size_t cap) {
  snprintf(buf, cap, "%d layers, %d ops executed (%d layers fused), %lld parameters, input %dx%dx3, workspace %.1f MiB",
           m->n_layers, m->n_live, m->n_fused, (long long)m->n_params, m->in_h, m->in_w,
           (double)sd_nsfwjs_workspace_bytes(m) / 1048576.0);
}

/* ---- loading context ------------------------------------------------------------------ */

typedef enum { Q_F32, Q_U8, Q_U16, Q_F16 } qtype;

typedef struct {
  const char *name;     /* into the JSON tree */
  int ndim;
  int64_t shape[4];
  qtype q;
  double qmin, qscale;
  int64_t numel, offset, bytes; /* offset into ld.data */
  int used;
} wspec;

typedef struct {
  const char *name, *cls; /* into the JSON tree */
  const json_t *cfg;
  int in[MAX_IN], n_in;   /* layer indices */
  int consumers;          /* inbound references (+1 for the model output) */
  int val;                /* op producing its value */
  vshape shape;
} layer;

typedef struct {
  const char *path;       /* model.json, for messages */
  char *dir;              /* its folder */
  json_t *root;
  wspec *w;
  int nw;
  unsigned char *data;
  int64_t data_len;
  layer *layers;
  int nl;
  op *ops;
  int n_ops, cap_ops;
  int n_fused;
  int64_t n_params;
} ld;

#define QBUF 96
static const char *q(const char *s, char *buf) { return sd_msg_quote(s, buf, QBUF); }

static char *fmt_shape(int n, const int64_t *s, char *buf, size_t cap) {
  size_t k = 0;
  k += (size_t)snprintf(buf + k, cap - k, "[");
  for (int i = 0; i < n && k < cap; i++) k += (size_t)snprintf(buf + k, cap - k, i ? ", %lld" : "%lld", (long long)s[i]);
  if (k < cap) snprintf(buf + k, cap - k, "]");
  return buf;
}

/* ---- weights manifest and shards ------------------------------------------------------ */

static int parse_weight(ld *L, const json_t *wj, int gi, int wi, wspec *ws) {
  char label[256], qb[QBUF];
  snprintf(label, sizeof label, "%s: weightsManifest[%d].weights[%d]", L->path, gi, wi);
  if (!json_is_object(wj)) return sd_fail(SD_E_FORMAT, "%s: is %s, expected an object", label, sd_json_type_name(wj));
  int rc, dims[8], nd = 0;
  const char *dtype;
  if ((rc = sd_json_get_str(wj, "name", label, &ws->name, 1))) return rc;
  if (!ws->name[0]) return sd_fail(SD_E_FORMAT, "%s: empty weight name", label);
  snprintf(label, sizeof label, "%s: weight '%s'", L->path, q(ws->name, qb));
  if ((rc = sd_json_get_int_array_ex(wj, "shape", label, 0, 1 << 24, dims, 8, &nd, 1))) return rc;
  if (nd > 4) return sd_fail(SD_E_UNSUPPORTED, "%s: has %d dimensions (at most 4 are supported)", label, nd);
  ws->ndim = nd;
  ws->numel = 1;
  for (int i = 0; i < nd; i++) {
    ws->shape[i] = dims[i];
    ws->numel *= dims[i];
    if (ws->numel > WEIGHTS_MAX) return sd_fail(SD_E_FORMAT, "%s: too many values", label);
  }
  if ((rc = sd_json_get_str(wj, "dtype", label, &dtype, 1))) return rc;
  if (strcmp(dtype, "float32") != 0)
    return sd_fail(SD_E_UNSUPPORTED, "%s: dtype '%s'; only float32 weights are supported", label, q(dtype, qb));
  ws->q = Q_F32;
  int esize = 4;
  const json_t *qj = NULL;
  if ((rc = sd_json_get_obj(wj, "quantization", label, &qj, 0))) return rc;
  if (qj) {
    char ql[300];
    snprintf(ql, sizeof ql, "%s: quantization", label);
    const char *qd;
    if ((rc = sd_json_get_str(qj, "dtype", ql, &qd, 1))) return rc;
    if (!strcmp(qd, "uint8")) ws->q = Q_U8, esize = 1;
    else if (!strcmp(qd, "uint16")) ws->q = Q_U16, esize = 2;
    else if (!strcmp(qd, "float16")) ws->q = Q_F16, esize = 2;
    else return sd_fail(SD_E_UNSUPPORTED, "%s: dtype '%s' (uint8, uint16 or float16 expected)", ql, q(qd, qb));
    if (ws->q != Q_F16) {
      if ((rc = sd_json_get_num(qj, "min", ql, -1e30, 1e30, &ws->qmin, 1)) ||
          (rc = sd_json_get_num(qj, "scale", ql, -1e30, 1e30, &ws->qscale, 1)))
        return rc;
    }
  }
  ws->bytes = ws->numel * esize;
  return SD_OK;
}

/* Read a group's shards into data[at, at + need). The shards' total size must be `need`. */
static int read_group(ld *L, const json_t *paths, int gi, int64_t at, int64_t need, int w0, int w1) {
  char qb[QBUF], qb2[QBUF];
  int64_t got = 0;
  size_t np = json_array_size(paths);
  char *file = NULL;
  int rc = SD_OK;
  for (size_t p = 0; p < np; p++) {
    const char *name = json_string_value(json_array_get(paths, p));
    size_t len = strlen(name);
    int bad = len == 0 || len > 255 || !strcmp(name, ".") || !strcmp(name, "..");
    for (size_t i = 0; i < len && !bad; i++)
      bad = name[i] == '/' || name[i] == '\\' || (unsigned char)name[i] < 0x20 || name[i] == 0x7f;
    if (bad)
      return sd_fail(SD_E_FORMAT, "%s: weightsManifest[%d].paths[%zu] '%s' is not a plain file name beside model.json",
                     L->path, gi, p, q(name, qb));
    free(file);
    file = malloc(strlen(L->dir) + len + 2);
    if (!file) return sd_fail(SD_E_NOMEM, "out of memory");
    sprintf(file, "%s/%s", L->dir, name);
    int fd;
    int64_t size;
    if ((rc = sd_open_regular(file, "a weight shard", &fd, &size))) break;
    if (size > need - got) {
      close(fd);
      rc = sd_fail(SD_E_FORMAT, "%s: the shards of weight group %d hold more than the %lld bytes its %d weights need "
                   "(this one is %lld bytes, %lld were expected from it at most)", file, gi, (long long)need, w1 - w0,
                   (long long)size, (long long)(need - got));
      break;
    }
    int64_t r = 0;
    while (r < size) {
      ssize_t k = read(fd, L->data + at + got + r, (size_t)(size - r) > ((size_t)1 << 30) ? ((size_t)1 << 30) : (size_t)(size - r));
      if (k <= 0) break;
      r += k;
    }
    close(fd);
    if (r != size) { rc = sd_fail(SD_E_IO, "%s: read error after %lld of %lld bytes", file, (long long)r, (long long)size); break; }
    got += size;
  }
  if (!rc && got < need) {
    /* name the first weight the shards cut short */
    int wc = w0;
    while (wc < w1 - 1 && L->w[wc].offset + L->w[wc].bytes <= at + got) wc++;
    const wspec *ws = &L->w[wc];
    rc = sd_fail(SD_E_FORMAT, "%s: truncated: weight group %d needs %lld bytes, its shards hold %lld; weight '%s' "
                 "(bytes %lld..%lld of the group) is cut short",
                 np ? file : L->path, gi, (long long)need, (long long)got, q(ws->name, qb2),
                 (long long)(ws->offset - at), (long long)(ws->offset - at + ws->bytes));
  }
  free(file);
  return rc;
}

static int load_weights(ld *L) {
  const json_t *man = json_object_get(L->root, "weightsManifest");
  if (!json_is_array(man)) return sd_fail(SD_E_FORMAT, "%s: 'weightsManifest' is missing or not an array", L->path);
  size_t ng = json_array_size(man), total_w = 0, total_p = 0;
  for (size_t g = 0; g < ng; g++) {
    const json_t *gj = json_array_get(man, g), *ws = json_object_get(gj, "weights"), *ps = json_object_get(gj, "paths");
    if (!json_is_object(gj) || !json_is_array(ws) || !json_is_array(ps))
      return sd_fail(SD_E_FORMAT, "%s: weightsManifest[%zu] needs a 'paths' array and a 'weights' array", L->path, g);
    for (size_t p = 0; p < json_array_size(ps); p++)
      if (!json_is_string(json_array_get(ps, p)))
        return sd_fail(SD_E_FORMAT, "%s: weightsManifest[%zu].paths[%zu] is not a string", L->path, g, p);
    total_w += json_array_size(ws);
    total_p += json_array_size(ps);
  }
  if (total_w > MAX_WEIGHTS || total_p > MAX_SHARDS)
    return sd_fail(SD_E_FORMAT, "%s: weightsManifest lists %zu weights in %zu shards (limits %d, %d)", L->path, total_w,
                   total_p, MAX_WEIGHTS, MAX_SHARDS);
  L->w = calloc(total_w ? total_w : 1, sizeof *L->w);
  if (!L->w) return sd_fail(SD_E_NOMEM, "out of memory");
  int64_t off = 0;
  int rc;
  for (size_t g = 0; g < ng; g++) {
    const json_t *ws = json_object_get(json_array_get(man, g), "weights");
    for (size_t i = 0; i < json_array_size(ws); i++) {
      wspec *s = &L->w[L->nw];
      if ((rc = parse_weight(L, json_array_get(ws, i), (int)g, (int)i, s))) return rc;
      for (int j = 0; j < L->nw; j++)
        if (!strcmp(L->w[j].name, s->name)) {
          char qb[QBUF];
          return sd_fail(SD_E_FORMAT, "%s: weightsManifest lists weight '%s' twice", L->path, q(s->name, qb));
        }
      s->offset = off;
      off += s->bytes;
      if (off > WEIGHTS_MAX)
        return sd_fail(SD_E_FORMAT, "%s: the weights need more than %lld bytes", L->path, (long long)WEIGHTS_MAX);
      L->nw++;
    }
  }
  L->data_len = off;
  L->data = malloc(off ? (size_t)off : 1);
  if (!L->data) return sd_fail(SD_E_NOMEM, "out of memory for %lld weight bytes", (long long)off);
  int w0 = 0;
  int64_t at = 0;
  for (size_t g = 0; g < ng; g++) { /* a group's weights are one stream: its shards, concatenated */
    const json_t *gj = json_array_get(man, g);
    int n = (int)json_array_size(json_object_get(gj, "weights"));
    int64_t need = 0;
    for (int i = w0; i < w0 + n; i++) need += L->w[i].bytes;
    if ((rc = read_group(L, json_object_get(gj, "paths"), (int)g, at, need, w0, w0 + n))) return rc;
    w0 += n;
    at += need;
  }
  return SD_OK;
}

/* The weight "<layer>/<param>", dequantised, with shape `shape` (ndim dims); a new array. */
static int fetch(ld *L, int li, const char *param, int ndim, const int64_t *shape, float **out) {
  char want[512], qb[QBUF], qb2[QBUF], s1[128], s2[128];
  const layer *ly = &L->layers[li];
  *out = NULL;
  if (snprintf(want, sizeof want, "%s/%s", ly->name, param) >= (int)sizeof want)
    return sd_fail(SD_E_FORMAT, "%s: layer name '%s' is too long", L->path, q(ly->name, qb));
  wspec *ws = NULL;
  for (int i = 0; i < L->nw && !ws; i++)
    if (!strcmp(L->w[i].name, want)) ws = &L->w[i];
  if (!ws)
    return sd_fail(SD_E_FORMAT, "%s: layer '%s' (%s) needs weight '%s', which weightsManifest lacks", L->path,
                   q(ly->name, qb), ly->cls, q(want, qb2));
  int same = ws->ndim == ndim;
  for (int i = 0; i < ndim && same; i++) same = ws->shape[i] == shape[i];
  if (!same)
    return sd_fail(SD_E_FORMAT, "%s: weight '%s' has shape %s; layer '%s' (%s) needs %s", L->path, q(want, qb),
                   fmt_shape(ws->ndim, ws->shape, s1, sizeof s1), q(ly->name, qb2), ly->cls, fmt_shape(ndim, shape, s2, sizeof s2));
  if (ws->used) return sd_fail(SD_E_INTERNAL, "%s: weight '%s' used twice", L->path, q(want, qb));
  ws->used = 1;
  float *v = malloc((size_t)(ws->numel ? ws->numel : 1) * sizeof(float));
  if (!v) return sd_fail(SD_E_NOMEM, "out of memory");
  const unsigned char *p = L->data + ws->offset;
  for (int64_t i = 0; i < ws->numel; i++) {
    switch (ws->q) {
      case Q_F32: memcpy(&v[i], p + 4 * i, 4); break;
      case Q_U8: v[i] = (float)((double)p[i] * ws->qscale + ws->qmin); break;
      case Q_U16: {
        uint16_t u;
        memcpy(&u, p + 2 * i, 2);
        v[i] = (float)((double)u * ws->qscale + ws->qmin);
        break;
      }
      case Q_F16: {
        uint16_t u;
        memcpy(&u, p + 2 * i, 2);
        v[i] = sd_f16_to_f32(u);
        break;
      }
    }
    if (!isfinite(v[i])) {
      free(v);
      return sd_fail(SD_E_FORMAT, "%s: weight '%s' holds a non-finite value (element %lld)", L->path, q(want, qb), (long long)i);
    }
  }
  L->n_params += ws->numel;
  *out = v;
  return SD_OK;
}

/* ---- graph ---------------------------------------------------------------------------- */

static int find_layer(const ld *L, const char *name, int before) {
  for (int i = 0; i < before; i++)
    if (!strcmp(L->layers[i].name, name)) return i;
  return -1;
}

static int parse_inbound(ld *L, int li, const json_t *lj, int is_input) {
  layer *ly = &L->layers[li];
  char qb[QBUF], qb2[QBUF];
  const json_t *nodes = json_object_get(lj, "inbound_nodes");
  if (!json_is_array(nodes))
    return sd_fail(SD_E_FORMAT, "%s: layer '%s': 'inbound_nodes' is missing or not an array", L->path, q(ly->name, qb));
  size_t nn = json_array_size(nodes);
  if (is_input) {
    if (nn) return sd_fail(SD_E_FORMAT, "%s: InputLayer '%s' has inbound nodes", L->path, q(ly->name, qb));
    return SD_OK;
  }
  if (nn != 1)
    return sd_fail(nn ? SD_E_UNSUPPORTED : SD_E_FORMAT, "%s: layer '%s' is applied %zu times (a layer must be applied "
                   "exactly once; shared layers are not supported)", L->path, q(ly->name, qb), nn);
  const json_t *node = json_array_get(nodes, 0);
  size_t ni = json_array_size(node);
  if (!json_is_array(node) || ni == 0 || ni > MAX_IN)
    return sd_fail(SD_E_FORMAT, "%s: layer '%s': its inbound node must be an array of 1 to %d inputs", L->path,
                   q(ly->name, qb), MAX_IN);
  for (size_t k = 0; k < ni; k++) {
    const json_t *r = json_array_get(node, k);
    size_t rn = json_array_size(r);
    const json_t *nm = json_array_get(r, 0), *n1 = json_array_get(r, 1), *n2 = json_array_get(r, 2),
                 *kw = rn == 4 ? json_array_get(r, 3) : NULL;
    if (!json_is_array(r) || (rn != 3 && rn != 4) || !json_is_string(nm) || !json_is_integer(n1) || !json_is_integer(n2) ||
        (kw && !json_is_object(kw)))
      return sd_fail(SD_E_FORMAT, "%s: layer '%s': input %zu is not [name, node, tensor, {kwargs}]", L->path,
                     q(ly->name, qb), k);
    if (json_integer_value(n1) != 0 || json_integer_value(n2) != 0)
      return sd_fail(SD_E_UNSUPPORTED, "%s: layer '%s': input %zu uses node %lld tensor %lld (only node 0, tensor 0 "
                     "is supported)", L->path, q(ly->name, qb), k, (long long)json_integer_value(n1),
                     (long long)json_integer_value(n2));
    if (kw && json_object_size(kw))
      return sd_fail(SD_E_UNSUPPORTED, "%s: layer '%s': input %zu has call arguments, which are not supported",
                     L->path, q(ly->name, qb), k);
    int j = find_layer(L, json_string_value(nm), li);
    if (j < 0)
      return sd_fail(SD_E_FORMAT, "%s: layer '%s' takes input '%s', which is not a layer defined before it", L->path,
                     q(ly->name, qb), q(json_string_value(nm), qb2));
    ly->in[ly->n_in++] = j;
    L->layers[j].consumers++;
  }
  return SD_OK;
}

/* ---- config getters ------------------------------------------------------------------- */

/* An int or a pair [a, b] (Keras kernel_size, strides, ...); absent: def (if !required). */
static int get_pair(const json_t *cfg, const char *key, const char *label, int min, int max, int def, int out[2],
                    int required) {
  const json_t *v = json_object_get(cfg, key);
  if (!v || json_is_null(v)) {
    if (required) return sd_fail(SD_E_FORMAT, "%s: key '%s': missing required key", label, key);
    out[0] = out[1] = def;
    return SD_OK;
  }
  if (json_is_integer(v)) {
    int rc = sd_json_get_i32(cfg, key, label, min, max, &out[0], 1);
    out[1] = out[0];
    return rc;
  }
  int n = 0;
  int rc = sd_json_get_int_array_ex(cfg, key, label, min, max, out, 2, &n, 1);
  if (rc) return rc;
  if (n != 2) return sd_fail(SD_E_FORMAT, "%s: key '%s': %d values, expected 2", label, key, n);
  return SD_OK;
}

static int check_channels_last(const json_t *cfg, const char *label) {
  const char *df = "channels_last";
  int rc = sd_json_get_str(cfg, "data_format", label, &df, 0);
  if (rc) return rc;
  if (strcmp(df, "channels_last") != 0)
    return sd_fail(SD_E_UNSUPPORTED, "%s: data_format '%s' (only channels_last is supported)", label, df);
  return SD_OK;
}

static int get_padding_mode(const json_t *cfg, const char *label, int *same) {
  const char *p = "valid";
  int rc = sd_json_get_str(cfg, "padding", label, &p, 0);
  if (rc) return rc;
  if (!strcmp(p, "same")) *same = 1;
  else if (!strcmp(p, "valid")) *same = 0;
  else {
    char qb[QBUF];
    return sd_fail(SD_E_UNSUPPORTED, "%s: padding '%s' (valid or same expected)", label, q(p, qb));
  }
  return SD_OK;
}

static int get_activation(const json_t *cfg, const char *label, act_kind *act) {
  const char *a = "linear";
  int rc = sd_json_get_str(cfg, "activation", label, &a, 0);
  if (rc) return rc;
  if (!strcmp(a, "linear")) *act = ACT_NONE;
  else if (!strcmp(a, "relu")) *act = ACT_RELU;
  else if (!strcmp(a, "softmax")) *act = ACT_SOFTMAX;
  else {
    char qb[QBUF];
    return sd_fail(SD_E_UNSUPPORTED, "%s: activation '%s' (linear, relu or softmax expected)", label, q(a, qb));
  }
  return SD_OK;
}

/* Output size and padding of a convolution/pool along one axis, TF semantics: "same"
 * gives ceil(n / s) outputs with the padding split low = total / 2, high = the rest
 * (asymmetric when total is odd); "valid" gives floor((n - k) / s) + 1 and needs n >= k. */
static int conv_axis(int n, int k, int s, int same, int *o, int *lo, int *hi) {
  if (same) {
    *o = (n + s - 1) / s;
    int total = (*o - 1) * s + k - n;
    if (total < 0) total = 0;
    *lo = total / 2;
    *hi = total - *lo;
    return 0;
  }
  if (n < k) return -1;
  *o = (n - k) / s + 1;
  *lo = *hi = 0;
  return 0;
}

/* ---- ops ------------------------------------------------------------------------------ */

static op *new_op(ld *L, op_kind kind, int li) {
  if (L->n_ops == L->cap_ops) {
    int nc = L->cap_ops ? 2 * L->cap_ops : 64;
    op *no = realloc(L->ops, (size_t)nc * sizeof *no);
    if (!no) { sd_fail(SD_E_NOMEM, "out of memory"); return NULL; }
    L->ops = no;
    L->cap_ops = nc;
  }
  op *o = &L->ops[L->n_ops];
  memset(o, 0, sizeof *o);
  o->kind = kind;
  o->tail = li;
  o->relu_max = INFINITY;
  o->name = strdup(L->layers[li].name);
  if (!o->name) { sd_fail(SD_E_NOMEM, "out of memory"); return NULL; }
  L->n_ops++;
  layer *ly = &L->layers[li];
  o->n_in = ly->n_in;
  for (int k = 0; k < ly->n_in; k++) o->in[k] = L->layers[ly->in[k]].val;
  if (ly->n_in) o->ins = L->layers[ly->in[0]].shape;
  ly->val = L->n_ops - 1;
  return o;
}

/* The op a fusing layer may merge into: its single input's op, when that op's current
 * output is exactly that input layer and nothing else uses it. NULL if none. */
static op *fusable(ld *L, int li) {
  const layer *ly = &L->layers[li];
  if (ly->n_in != 1) return NULL;
  const layer *src = &L->layers[ly->in[0]];
  op *p = &L->ops[src->val];
  if (p->tail != ly->in[0] || src->consumers != 1 || p->act != ACT_NONE) return NULL;
  return p;
}

static int fuse_into(ld *L, op *p, int li) {
  free(p->name);
  p->name = strdup(L->layers[li].name);
  if (!p->name) return sd_fail(SD_E_NOMEM, "out of memory");
  p->tail = li;
  L->layers[li].val = (int)(p - L->ops);
  L->layers[li].shape = p->out;
  L->n_fused++;
  return SD_OK;
}

static int need_rank3(ld *L, int li, const char *label) {
  const layer *ly = &L->layers[li];
  if (L->layers[ly->in[0]].shape.rank != 3)
    return sd_fail(SD_E_FORMAT, "%s: needs an [H, W, C] input, got a flat one", label);
  return SD_OK;
}

static int check_value(ld *L, int li, const char *label) {
  vshape s = L->layers[li].shape;
  if (s.h < 1 || s.w < 1 || s.c < 1 || s.h > MAX_DIM || s.w > MAX_DIM || vnumel(s) > MAX_VALUE)
    return sd_fail(SD_E_FORMAT, "%s: output %dx%dx%d is empty or too large", label, s.h, s.w, s.c);
  return SD_OK;
}

static int build_conv(ld *L, int li, const char *label, int depthwise) {
  layer *ly = &L->layers[li];
  const json_t *cfg = ly->cfg;
  int rc, filters = 0, dm = 1, k[2], s[2], dil[2], groups = 1, same, use_bias = 1;
  act_kind act;
  if (ly->n_in != 1) return sd_fail(SD_E_FORMAT, "%s: takes 1 input, has %d", label, ly->n_in);
  if ((rc = need_rank3(L, li, label))) return rc;
  if (depthwise) {
    if ((rc = sd_json_get_i32(cfg, "depth_multiplier", label, 1, MAX_KERNEL, &dm, 0))) return rc;
  } else {
    if ((rc = sd_json_get_i32(cfg, "filters", label, 1, MAX_DIM, &filters, 1)) ||
        (rc = sd_json_get_i32(cfg, "groups", label, 1, MAX_DIM, &groups, 0)))
      return rc;
    if (groups != 1) return sd_fail(SD_E_UNSUPPORTED, "%s: groups = %d (only 1 is supported)", label, groups);
  }
  if ((rc = get_pair(cfg, "kernel_size", label, 1, MAX_KERNEL, 1, k, 1)) ||
      (rc = get_pair(cfg, "strides", label, 1, MAX_KERNEL, 1, s, 0)) ||
      (rc = get_pair(cfg, "dilation_rate", label, 1, MAX_KERNEL, 1, dil, 0)) ||
      (rc = get_padding_mode(cfg, label, &same)) || (rc = check_channels_last(cfg, label)) ||
      (rc = sd_json_get_bool(cfg, "use_bias", label, &use_bias, 0)) || (rc = get_activation(cfg, label, &act)))
    return rc;
  if (dil[0] != 1 || dil[1] != 1)
    return sd_fail(SD_E_UNSUPPORTED, "%s: dilation_rate %dx%d (only 1 is supported)", label, dil[0], dil[1]);
  vshape in = L->layers[ly->in[0]].shape;
  op *o = new_op(L, depthwise ? OP_DW : OP_CONV, li);
  if (!o) return SD_E_NOMEM;
  o->kh = k[0], o->kw = k[1], o->sh = s[0], o->sw = s[1], o->dm = dm, o->act = act;
  int Ho, Wo;
  if (conv_axis(in.h, k[0], s[0], same, &Ho, &o->pt, &o->pb) || conv_axis(in.w, k[1], s[1], same, &Wo, &o->pl, &o->pr))
    return sd_fail(SD_E_FORMAT, "%s: a %dx%d 'valid' kernel does not fit the %dx%d input", label, k[0], k[1], in.h, in.w);
  int Co = depthwise ? in.c * dm : filters;
  o->out = (vshape){Ho, Wo, Co, 3};
  ly->shape = o->out;
  if ((rc = check_value(L, li, label))) return rc;
  float *kern;
  if (depthwise) {
    int64_t shp[4] = {k[0], k[1], in.c, dm};
    if ((rc = fetch(L, li, "depthwise_kernel", 4, shp, &kern))) return rc;
    o->w = kern; /* [kh, kw, C, dm] is already [kh·kw, C·dm] */
  } else {
    int64_t shp[4] = {k[0], k[1], in.c, filters};
    if ((rc = fetch(L, li, "kernel", 4, shp, &kern))) return rc;
    int64_t K = (int64_t)k[0] * k[1] * in.c;
    o->w = malloc((size_t)(K * filters) * sizeof(float));
    if (!o->w) { free(kern); return sd_fail(SD_E_NOMEM, "out of memory"); }
    for (int64_t r = 0; r < K; r++) /* [kh, kw, Cin, Cout] -> [Cout, kh·kw·Cin] */
      for (int co = 0; co < filters; co++) o->w[(int64_t)co * K + r] = kern[r * filters + co];
    free(kern);
    o->direct = k[0] == 1 && k[1] == 1 && s[0] == 1 && s[1] == 1 && !o->pt && !o->pb && !o->pl && !o->pr;
    if (!o->direct) {
      int64_t row = (int64_t)Wo * K, rows = COL_TILE / row;
      o->tile_rows = rows < 1 ? 1 : rows > Ho ? Ho : (int)rows;
    }
  }
  if (use_bias) {
    int64_t shp[1] = {Co};
    if ((rc = fetch(L, li, "bias", 1, shp, &o->b))) return rc;
  }
  return SD_OK;
}

static int build_dense(ld *L, int li, const char *label) {
  layer *ly = &L->layers[li];
  int rc, units, use_bias = 1;
  act_kind act;
  if (ly->n_in != 1) return sd_fail(SD_E_FORMAT, "%s: takes 1 input, has %d", label, ly->n_in);
  if ((rc = sd_json_get_i32(ly->cfg, "units", label, 1, 1 << 20, &units, 1)) ||
      (rc = sd_json_get_bool(ly->cfg, "use_bias", label, &use_bias, 0)) || (rc = get_activation(ly->cfg, label, &act)))
    return rc;
  vshape in = L->layers[ly->in[0]].shape;
  if (in.rank != 1)
    return sd_fail(SD_E_UNSUPPORTED, "%s: input is %dx%dx%d; only a flat input (after Flatten) is supported", label,
                   in.h, in.w, in.c);
  op *o = new_op(L, OP_DENSE, li);
  if (!o) return SD_E_NOMEM;
  o->act = act;
  o->out = (vshape){1, 1, units, 1};
  ly->shape = o->out;
  if ((rc = check_value(L, li, label))) return rc;
  int64_t shp[2] = {in.c, units};
  float *kern;
  if ((rc = fetch(L, li, "kernel", 2, shp, &kern))) return rc;
  o->w = malloc((size_t)((int64_t)in.c * units) * sizeof(float));
  if (!o->w) { free(kern); return sd_fail(SD_E_NOMEM, "out of memory"); }
  for (int64_t r = 0; r < in.c; r++) /* [K, units] -> [units, K] */
    for (int u = 0; u < units; u++) o->w[(int64_t)u * in.c + r] = kern[r * units + u];
  free(kern);
  if (use_bias) {
    int64_t s1[1] = {units};
    if ((rc = fetch(L, li, "bias", 1, s1, &o->b))) return rc;
  }
  return SD_OK;
}

static int build_bn(ld *L, int li, const char *label) {
  layer *ly = &L->layers[li];
  const json_t *cfg = ly->cfg;
  int rc, center = 1, scale = 1, axis = -1;
  double eps = 1e-3;
  if (ly->n_in != 1) return sd_fail(SD_E_FORMAT, "%s: takes 1 input, has %d", label, ly->n_in);
  vshape in = L->layers[ly->in[0]].shape;
  const json_t *ax = json_object_get(cfg, "axis");
  if (json_is_array(ax) && json_array_size(ax) == 1 && json_is_integer(json_array_get(ax, 0)))
    axis = (int)json_integer_value(json_array_get(ax, 0));
  else if ((rc = sd_json_get_i32(cfg, "axis", label, -8, 8, &axis, 0)))
    return rc;
  if (axis != -1 && axis != in.rank)
    return sd_fail(SD_E_UNSUPPORTED, "%s: axis %d (only the channel axis, -1, is supported)", label, axis);
  if ((rc = sd_json_get_num(cfg, "epsilon", label, 0, 1e3, &eps, 0)) ||
      (rc = sd_json_get_bool(cfg, "center", label, &center, 0)) || (rc = sd_json_get_bool(cfg, "scale", label, &scale, 0)))
    return rc;
  const int C = in.c;
  int64_t shp[1] = {C};
  float *gamma = NULL, *beta = NULL, *mean = NULL, *var = NULL;
  if ((scale && (rc = fetch(L, li, "gamma", 1, shp, &gamma))) || (center && (rc = fetch(L, li, "beta", 1, shp, &beta))) ||
      (rc = fetch(L, li, "moving_mean", 1, shp, &mean)) || (rc = fetch(L, li, "moving_variance", 1, shp, &var)))
    goto out;
  /* y = (x - mean) / sqrt(var + eps) * gamma + beta = x * s + t */
  float *sc = malloc((size_t)C * sizeof(float)), *sh = malloc((size_t)C * sizeof(float));
  if (!sc || !sh) { free(sc); free(sh); rc = sd_fail(SD_E_NOMEM, "out of memory"); goto out; }
  for (int c = 0; c < C; c++) {
    double v = (double)var[c] + (double)(float)eps;
    if (!(v > 0)) {
      free(sc);
      free(sh);
      char qb[QBUF];
      rc = sd_fail(SD_E_FORMAT, "%s: weight '%s/moving_variance' + epsilon is not positive at channel %d", L->path,
                   q(ly->name, qb), c);
      goto out;
    }
    double s = (scale ? gamma[c] : 1.0) / sqrt(v);
    sc[c] = (float)s;
    sh[c] = (float)((center ? beta[c] : 0.0) - mean[c] * s);
  }
  op *p = fusable(L, li);
  if (p && (p->kind == OP_CONV || p->kind == OP_DW || p->kind == OP_DENSE)) {
    /* fold into the producer: w'[o] = w[o]·s[o], b'[o] = b[o]·s[o] + t[o] */
    const int Co = p->out.c;
    if (p->kind == OP_DW) {
      int64_t taps = (int64_t)p->kh * p->kw;
      for (int64_t t = 0; t < taps; t++)
        for (int o = 0; o < Co; o++) p->w[t * Co + o] *= sc[o];
    } else {
      int64_t K = p->kind == OP_DENSE ? p->ins.c : (int64_t)p->kh * p->kw * p->ins.c;
      for (int o = 0; o < Co; o++)
        for (int64_t r = 0; r < K; r++) p->w[(int64_t)o * K + r] *= sc[o];
    }
    if (p->b) {
      for (int o = 0; o < Co; o++) p->b[o] = p->b[o] * sc[o] + sh[o];
      free(sh);
    } else {
      p->b = sh;
    }
    free(sc);
    rc = fuse_into(L, p, li);
    goto out;
  }
  op *o = new_op(L, OP_AFFINE, li);
  if (!o) { free(sc); free(sh); rc = SD_E_NOMEM; goto out; }
  o->w = sc;
  o->b = sh;
  o->out = in;
  ly->shape = in;
  rc = SD_OK;
out:
  free(gamma);
  free(beta);
  free(mean);
  free(var);
  return rc;
}

static int build_relu(ld *L, int li, const char *label) {
  layer *ly = &L->layers[li];
  const json_t *cfg = ly->cfg;
  int rc;
  double mx = INFINITY, slope = 0, thr = 0;
  if (ly->n_in != 1) return sd_fail(SD_E_FORMAT, "%s: takes 1 input, has %d", label, ly->n_in);
  if ((rc = sd_json_get_num(cfg, "max_value", label, 0, 1e30, &mx, 0)) ||
      (rc = sd_json_get_num(cfg, "negative_slope", label, -1e30, 1e30, &slope, 0)) ||
      (rc = sd_json_get_num(cfg, "threshold", label, -1e30, 1e30, &thr, 0)))
    return rc;
  if (slope != 0 || thr != 0)
    return sd_fail(SD_E_UNSUPPORTED, "%s: negative_slope %g, threshold %g (only 0 is supported)", label, slope, thr);
  op *p = fusable(L, li);
  if (p && p->kind != OP_PAD && p->kind != OP_AVGPOOL && p->kind != OP_INPUT && p->kind != OP_ACT) {
    p->act = ACT_RELU;
    p->relu_max = (float)mx;
    return fuse_into(L, p, li);
  }
  op *o = new_op(L, OP_ACT, li);
  if (!o) return SD_E_NOMEM;
  o->act = ACT_RELU;
  o->relu_max = (float)mx;
  o->out = o->ins;
  ly->shape = o->out;
  return SD_OK;
}

static int build_add(ld *L, int li, const char *label) {
  layer *ly = &L->layers[li];
  if (ly->n_in < 2) return sd_fail(SD_E_FORMAT, "%s: needs at least 2 inputs, has %d", label, ly->n_in);
  vshape a = L->layers[ly->in[0]].shape;
  for (int k = 1; k < ly->n_in; k++) {
    vshape b = L->layers[ly->in[k]].shape;
    if (b.h != a.h || b.w != a.w || b.c != a.c || b.rank != a.rank)
      return sd_fail(SD_E_FORMAT, "%s: input %d is %dx%dx%d, input 0 is %dx%dx%d (no broadcasting)", label, k, b.h,
                     b.w, b.c, a.h, a.w, a.c);
  }
  op *o = new_op(L, OP_ADD, li);
  if (!o) return SD_E_NOMEM;
  o->out = a;
  ly->shape = a;
  return SD_OK;
}

static int build_pad(ld *L, int li, const char *label) {
  layer *ly = &L->layers[li];
  int rc, p[4] = {1, 1, 1, 1}; /* t, b, l, r; Keras default 1 */
  if (ly->n_in != 1) return sd_fail(SD_E_FORMAT, "%s: takes 1 input, has %d", label, ly->n_in);
  if ((rc = need_rank3(L, li, label)) || (rc = check_channels_last(ly->cfg, label))) return rc;
  const json_t *v = json_object_get(ly->cfg, "padding");
  if (json_is_integer(v)) {
    int x;
    if ((rc = sd_json_get_i32(ly->cfg, "padding", label, 0, MAX_DIM, &x, 1))) return rc;
    p[0] = p[1] = p[2] = p[3] = x;
  } else if (json_is_array(v) && json_array_size(v) == 2 && json_is_integer(json_array_get(v, 0))) {
    int n, hw[2];
    if ((rc = sd_json_get_int_array_ex(ly->cfg, "padding", label, 0, MAX_DIM, hw, 2, &n, 1))) return rc;
    p[0] = p[1] = hw[0];
    p[2] = p[3] = hw[1];
  } else if (json_is_array(v) && json_array_size(v) == 2) {
    for (int d = 0; d < 2; d++) {
      const json_t *e = json_array_get(v, d);
      for (int k = 0; k < 2; k++) {
        const json_t *x = json_array_get(e, k);
        if (!json_is_array(e) || json_array_size(e) != 2 || !json_is_integer(x) || json_integer_value(x) < 0 ||
            json_integer_value(x) > MAX_DIM)
          return sd_fail(SD_E_FORMAT, "%s: key 'padding': expected an int, [h, w] or [[top, bottom], [left, right]] "
                         "of integers in [0, %d]", label, MAX_DIM);
        p[2 * d + k] = (int)json_integer_value(x);
      }
    }
  } else if (v && !json_is_null(v)) {
    return sd_fail(SD_E_FORMAT, "%s: key 'padding': expected an int, [h, w] or [[top, bottom], [left, right]]", label);
  }
  op *o = new_op(L, OP_PAD, li);
  if (!o) return SD_E_NOMEM;
  o->pt = p[0], o->pb = p[1], o->pl = p[2], o->pr = p[3];
  o->out = (vshape){o->ins.h + p[0] + p[1], o->ins.w + p[2] + p[3], o->ins.c, 3};
  ly->shape = o->out;
  return check_value(L, li, label);
}

static int build_avgpool(ld *L, int li, const char *label) {
  layer *ly = &L->layers[li];
  int rc, ps[2], s[2], same;
  if (ly->n_in != 1) return sd_fail(SD_E_FORMAT, "%s: takes 1 input, has %d", label, ly->n_in);
  if ((rc = need_rank3(L, li, label)) || (rc = get_pair(ly->cfg, "pool_size", label, 1, MAX_DIM, 2, ps, 0)) ||
      (rc = get_padding_mode(ly->cfg, label, &same)) || (rc = check_channels_last(ly->cfg, label)))
    return rc;
  if ((rc = get_pair(ly->cfg, "strides", label, 1, MAX_DIM, 0, s, 0))) return rc;
  if (s[0] == 0) s[0] = ps[0], s[1] = ps[1]; /* strides null: the pool size */
  if (same) return sd_fail(SD_E_UNSUPPORTED, "%s: padding 'same' (only 'valid' pooling is supported)", label);
  op *o = new_op(L, OP_AVGPOOL, li);
  if (!o) return SD_E_NOMEM;
  o->kh = ps[0], o->kw = ps[1], o->sh = s[0], o->sw = s[1];
  int Ho, Wo, d0, d1;
  if (conv_axis(o->ins.h, ps[0], s[0], 0, &Ho, &d0, &d1) || conv_axis(o->ins.w, ps[1], s[1], 0, &Wo, &d0, &d1))
    return sd_fail(SD_E_FORMAT, "%s: a %dx%d pool does not fit the %dx%d input", label, ps[0], ps[1], o->ins.h, o->ins.w);
  o->out = (vshape){Ho, Wo, o->ins.c, 3};
  ly->shape = o->out;
  return check_value(L, li, label);
}

static int build_input(ld *L, int li, const char *label, int *H, int *W) {
  layer *ly = &L->layers[li];
  const json_t *bis = json_object_get(ly->cfg, "batch_input_shape");
  if (!bis) bis = json_object_get(ly->cfg, "batchInputShape");
  const json_t *b0 = json_array_get(bis, 0);
  int d[3];
  if (!json_is_array(bis) || json_array_size(bis) != 4 || !(json_is_null(b0) || (json_is_integer(b0) && json_integer_value(b0) == 1)))
    return sd_fail(SD_E_FORMAT, "%s: batch_input_shape must be [null, H, W, 3]", label);
  for (int k = 0; k < 3; k++) {
    const json_t *x = json_array_get(bis, (size_t)k + 1);
    if (!json_is_integer(x) || json_integer_value(x) < 1 || json_integer_value(x) > MAX_DIM)
      return sd_fail(SD_E_FORMAT, "%s: batch_input_shape must be [null, H, W, 3] with H, W in [1, %d]", label, MAX_DIM);
    d[k] = (int)json_integer_value(x);
  }
  if (d[2] != 3) return sd_fail(SD_E_UNSUPPORTED, "%s: %d input channels (an RGB input, 3, is needed)", label, d[2]);
  const char *dt = "float32";
  int rc = sd_json_get_str(ly->cfg, "dtype", label, &dt, 0);
  if (rc) return rc;
  if (strcmp(dt, "float32")) {
    char qb[QBUF];
    return sd_fail(SD_E_UNSUPPORTED, "%s: input dtype '%s' (float32 expected)", label, q(dt, qb));
  }
  op *o = new_op(L, OP_INPUT, li);
  if (!o) return SD_E_NOMEM;
  o->out = (vshape){d[0], d[1], 3, 3};
  ly->shape = o->out;
  *H = d[0];
  *W = d[1];
  return check_value(L, li, label);
}

/* ---- load ----------------------------------------------------------------------------- */

static int build(ld *L, sd_nsfwjs *m) {
  char label[400], qb[QBUF], qb2[QBUF];
  int rc;
  const json_t *topo = json_object_get(L->root, "modelTopology");
  if (!json_is_object(topo)) return sd_fail(SD_E_FORMAT, "%s: 'modelTopology' is missing or not an object", L->path);
  if (json_is_object(json_object_get(topo, "model_config"))) topo = json_object_get(topo, "model_config");
  const char *cls;
  const json_t *cfg;
  if ((rc = sd_json_get_str(topo, "class_name", L->path, &cls, 1))) return rc;
  if (strcmp(cls, "Model") && strcmp(cls, "Functional"))
    return sd_fail(SD_E_UNSUPPORTED, "%s: model class '%s' (a Keras functional Model is needed)", L->path, q(cls, qb));
  if ((rc = sd_json_get_obj(topo, "config", L->path, &cfg, 1))) return rc;
  const json_t *layers = json_object_get(cfg, "layers");
  if (!json_is_array(layers) || json_array_size(layers) < 2 || json_array_size(layers) > MAX_LAYERS)
    return sd_fail(SD_E_FORMAT, "%s: modelTopology 'layers' must be an array of 2 to %d layers", L->path, MAX_LAYERS);
  const int nl = (int)json_array_size(layers);
  L->layers = calloc((size_t)nl, sizeof *L->layers);
  if (!L->layers) return sd_fail(SD_E_NOMEM, "out of memory");
  L->nl = nl;
  /* pass 1: names, kinds, edges */
  for (int i = 0; i < nl; i++) {
    const json_t *lj = json_array_get(layers, (size_t)i);
    layer *ly = &L->layers[i];
    snprintf(label, sizeof label, "%s: layers[%d]", L->path, i);
    if (!json_is_object(lj)) return sd_fail(SD_E_FORMAT, "%s: is %s, expected an object", label, sd_json_type_name(lj));
    if ((rc = sd_json_get_str(lj, "name", label, &ly->name, 1)) || (rc = sd_json_get_str(lj, "class_name", label, &ly->cls, 1)) ||
        (rc = sd_json_get_obj(lj, "config", label, &ly->cfg, 1)))
      return rc;
    if (!ly->name[0]) return sd_fail(SD_E_FORMAT, "%s: empty layer name", label);
    if (find_layer(L, ly->name, i) >= 0)
      return sd_fail(SD_E_FORMAT, "%s: two layers are named '%s'", L->path, q(ly->name, qb));
    if ((rc = parse_inbound(L, i, lj, !strcmp(ly->cls, "InputLayer")))) return rc;
  }
  /* the model's input and output */
  int io[2];
  const char *keys[2] = {"input_layers", "output_layers"};
  for (int k = 0; k < 2; k++) {
    const json_t *a = json_object_get(cfg, keys[k]), *r = json_array_get(a, 0);
    if (!json_is_array(a) || json_array_size(a) != 1 || !json_is_array(r) || !json_is_string(json_array_get(r, 0)))
      return sd_fail(json_array_size(a) > 1 ? SD_E_UNSUPPORTED : SD_E_FORMAT,
                     "%s: '%s' must name exactly one layer", L->path, keys[k]);
    const char *nm = json_string_value(json_array_get(r, 0));
    if ((io[k] = find_layer(L, nm, nl)) < 0)
      return sd_fail(SD_E_FORMAT, "%s: %s names '%s', which is not a layer", L->path, keys[k], q(nm, qb));
  }
  if (strcmp(L->layers[io[0]].cls, "InputLayer"))
    return sd_fail(SD_E_FORMAT, "%s: the input layer '%s' is a %s, not an InputLayer", L->path,
                   q(L->layers[io[0]].name, qb), L->layers[io[0]].cls);
  L->layers[io[1]].consumers++; /* the model output is used outside */
  /* pass 2: ops */
  int H = 0, W = 0;
  for (int i = 0; i < nl; i++) {
    layer *ly = &L->layers[i];
    const char *c = ly->cls;
    snprintf(label, sizeof label, "%s: layer '%s' (%s)", L->path, q(ly->name, qb), q(c, qb2));
    if (!strcmp(c, "InputLayer")) {
      if (i != io[0]) return sd_fail(SD_E_UNSUPPORTED, "%s: a second input (only one is supported)", label);
      rc = build_input(L, i, label, &H, &W);
    } else if (!strcmp(c, "Conv2D")) rc = build_conv(L, i, label, 0);
    else if (!strcmp(c, "DepthwiseConv2D")) rc = build_conv(L, i, label, 1);
    else if (!strcmp(c, "BatchNormalization")) rc = build_bn(L, i, label);
    else if (!strcmp(c, "ReLU")) rc = build_relu(L, i, label);
    else if (!strcmp(c, "Add")) rc = build_add(L, i, label);
    else if (!strcmp(c, "ZeroPadding2D")) rc = build_pad(L, i, label);
    else if (!strcmp(c, "AveragePooling2D")) rc = build_avgpool(L, i, label);
    else if (!strcmp(c, "Dense")) rc = build_dense(L, i, label);
    else if (!strcmp(c, "Dropout") || !strcmp(c, "Flatten")) {
      if (ly->n_in != 1) return sd_fail(SD_E_FORMAT, "%s: takes 1 input, has %d", label, ly->n_in);
      if (!strcmp(c, "Flatten") && (rc = check_channels_last(ly->cfg, label))) return rc;
      const layer *src = &L->layers[ly->in[0]];
      ly->val = src->val;
      ly->shape = src->shape;
      if (!strcmp(c, "Flatten")) ly->shape = (vshape){1, 1, (int)vnumel(src->shape), 1};
      rc = SD_OK;
    } else
      return sd_fail(SD_E_UNSUPPORTED, "%s: layer type '%s' is not implemented (supported: InputLayer, Conv2D, "
                     "DepthwiseConv2D, BatchNormalization, ReLU, Add, ZeroPadding2D, AveragePooling2D, Flatten, "
                     "Dense, Dropout)", label, q(c, qb2));
    if (rc) return rc;
  }
  for (int i = 0; i < L->nw; i++)
    if (!L->w[i].used)
      return sd_fail(SD_E_FORMAT, "%s: weight '%s' is not used by any layer (the manifest does not match the graph)",
                     L->path, q(L->w[i].name, qb));
  const layer *ol = &L->layers[io[1]];
  if (vnumel(ol->shape) != SD_NSFWJS_CLASSES)
    return sd_fail(SD_E_FORMAT, "%s: the output layer '%s' gives %lld values; nsfwjs has %d classes", L->path,
                   q(ol->name, qb), (long long)vnumel(ol->shape), SD_NSFWJS_CLASSES);
  if (L->ops[0].kind != OP_INPUT)
    return sd_fail(SD_E_FORMAT, "%s: the InputLayer must come first", L->path);
  /* hand the ops over and keep only those the output depends on */
  m->ops = L->ops;
  m->n_ops = L->n_ops;
  L->ops = NULL;
  L->n_ops = 0;
  m->out_op = ol->val;
  m->in_h = H;
  m->in_w = W;
  m->n_layers = nl;
  m->n_fused = L->n_fused;
  m->n_params = L->n_params;
  m->ops[m->out_op].live = 1;
  for (int i = m->n_ops - 1; i >= 0; i--)
    if (m->ops[i].live)
      for (int k = 0; k < m->ops[i].n_in; k++) m->ops[m->ops[i].in[k]].live = 1;
  if (m->out_op == 0) return sd_fail(SD_E_FORMAT, "%s: the output is the input", L->path);
  for (int i = 0; i < m->n_ops; i++) m->n_live += m->ops[i].live;
  return sd_nsfwjs_plan(m);
}

int sd_nsfwjs_load(const char *path, sd_nsfwjs **out) {
  *out = NULL;
  if (!path || !*path) return sd_fail(SD_E_ARG, "nsfwjs: no model path");
  ld L;
  memset(&L, 0, sizeof L);
  /* a folder: its model.json; else the JSON file itself, shards beside it */
  struct stat sb;
  int is_dir = stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
  size_t pl = strlen(path);
  char *json_path = malloc(pl + 12);
  L.dir = malloc(pl + 2);
  if (!json_path || !L.dir) {
    free(json_path);
    free(L.dir);
    return sd_fail(SD_E_NOMEM, "out of memory");
  }
  if (is_dir) {
    strcpy(L.dir, path);
    sprintf(json_path, "%s/model.json", path);
  } else {
    strcpy(json_path, path);
    const char *slash = strrchr(path, '/');
    if (!slash) strcpy(L.dir, ".");
    else if (slash == path) strcpy(L.dir, "/");
    else memcpy(L.dir, path, (size_t)(slash - path)), L.dir[slash - path] = 0;
  }
  L.path = json_path;
  sd_nsfwjs *m = calloc(1, sizeof *m);
  int rc = m ? SD_OK : sd_fail(SD_E_NOMEM, "out of memory");
  if (!rc) rc = sd_json_load_file(json_path, MODEL_JSON_MAX, &L.root);
  if (!rc) rc = load_weights(&L);
  if (!rc) rc = build(&L, m);
  free_ops(L.ops, L.n_ops);
  free(L.layers);
  free(L.w);
  free(L.data);
  json_decref(L.root);
  free(L.dir);
  free(json_path);
  if (rc) {
    sd_nsfwjs_free(m);
    return sd_fail_prefix(rc, "nsfwjs: ");
  }
  *out = m;
  return SD_OK;
}

