/* The learned detector: the weights file (validated), the scores and the detector with its
 * word attribution. Definitions in learned.h and docs/safety-detectors.md; the words and
 * features are in learned_text.c. */
#include "safety/learned.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tensor.h"
#include "io/fileio.h"
#include "io/safetensors.h"
#include "safety/emoji.h"
#include "safety/funcwords.h"
#include "safety/learned_internal.h"
#include "safety/lexical_gate.h"
#include "safety/lexicon.h"
#include "safety/normalize.h"
#include "safety/wordnet.h"

#define LEARNED_FORMAT "safesd-learned-detector"
#define LEARNED_VERSION "1 or 2"

/* ---- loading --------------------------------------------------------------------------- */

int sd_learned_meta_int(const sd_safetensors *st, const char *key, int lo, int hi, int *out) {
  const char *v = sd_st_meta(st, key);
  if (!v) return sd_fail(SD_E_FORMAT, "%s: no '%s' in the metadata", st->path, key);
  char *end;
  long x = strtol(v, &end, 10);
  if (end == v || *end || x < lo || x > hi)
    return sd_fail(SD_E_FORMAT, "%s: metadata %s = '%.40s' is not a whole number in [%d, %d]", st->path, key, v, lo, hi);
  *out = (int)x;
  return SD_OK;
}

/* The tensor `name`, of dtype dt and the given shape (ndim values), or an error. */
static int get(const sd_safetensors *st, const char *name, sd_dtype dt, int ndim, const int64_t *shape,
               const sd_st_entry **out) {
  const sd_st_entry *e = sd_st_find(st, name);
  if (!e) return sd_fail(SD_E_FORMAT, "%s: no tensor '%s'", st->path, name);
  if (e->dtype != dt) return sd_fail(SD_E_FORMAT, "%s: tensor '%s' is %s, expected %s", st->path, name,
                                     sd_dtype_name(e->dtype), sd_dtype_name(dt));
  int ok = e->ndim == ndim;
  for (int i = 0; ok && i < ndim; i++) ok = shape[i] < 0 || e->shape[i] == shape[i];
  if (!ok) {
    char want[96] = "", got[96] = "";
    for (int i = 0; i < ndim; i++) {
      char one[24];
      if (shape[i] < 0) snprintf(one, sizeof one, "n");
      else snprintf(one, sizeof one, "%lld", (long long)shape[i]);
      snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s", i ? ", " : "", one);
    }
    for (int i = 0; i < e->ndim; i++)
      snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "", (long long)e->shape[i]);
    return sd_fail(SD_E_FORMAT, "%s: tensor '%s' has shape [%s], expected [%s]", st->path, name, got, want);
  }
  *out = e;
  return SD_OK;
}

static int copy_f32(const sd_safetensors *st, const char *name, int ndim, const int64_t *shape, float **out) {
  const sd_st_entry *e = NULL;
  int rc = get(st, name, SD_F32, ndim, shape, &e);
  if (rc) return rc;
  size_t n = 1;
  for (int i = 0; i < ndim; i++) n *= (size_t)e->shape[i];
  if (!(*out = malloc((n ? n : 1) * sizeof **out))) return sd_fail(SD_E_NOMEM, "learned detector: out of memory");
  memcpy(*out, e->data, n * sizeof **out);
  for (size_t i = 0; i < n; i++)
    if (!isfinite((*out)[i])) return sd_fail(SD_E_FORMAT, "%s: tensor '%s' has a non-finite value at %zu", st->path, name, i);
  return SD_OK;
}

/* An I32 vector (length n; n < 0: any length >= 1, written to *n) copied out. */
int sd_learned_copy_i32(const sd_safetensors *st, const char *name, int *n, int32_t **out) {
  const sd_st_entry *e = NULL;
  int64_t shape[1] = {*n};
  int rc = get(st, name, SD_I32, 1, shape, &e);
  if (rc) return rc;
  if (e->shape[0] < 1 || e->shape[0] > (1 << 24))
    return sd_fail(SD_E_FORMAT, "%s: tensor '%s' has %lld entries (1 to %d allowed)", st->path, name,
                   (long long)e->shape[0], 1 << 24);
  *n = (int)e->shape[0];
  if (!(*out = malloc((size_t)*n * sizeof **out))) return sd_fail(SD_E_NOMEM, "learned detector: out of memory");
  memcpy(*out, e->data, (size_t)*n * sizeof **out);
  return SD_OK;
}

static int valid_cp(int32_t c) { return c >= 0 && c <= 0x10FFFF && !(c >= 0xD800 && c <= 0xDFFF); }

static int check_tables(const sd_learned_model *m) {
  const char *p = m->path;
  for (int i = 0; i < m->n_norm; i++) {
    if (!valid_cp(m->norm_from[i]) || m->norm_from[i] >= SD_LEARNED_CP_LIMIT || (i && m->norm_from[i] <= m->norm_from[i - 1]))
      return sd_fail(SD_E_FORMAT, "%s: norm.from is not strictly increasing code points below U+%X (entry %d)", p,
                     SD_LEARNED_CP_LIMIT, i);
  }
  if (m->norm_off[0] != 0 || m->norm_off[m->n_norm] != m->n_norm_to)
    return sd_fail(SD_E_FORMAT, "%s: norm.offset must run from 0 to the length of norm.to (%d)", p, m->n_norm_to);
  for (int i = 0; i < m->n_norm; i++)
    if (m->norm_off[i + 1] < m->norm_off[i] || m->norm_off[i + 1] - m->norm_off[i] > 32)
      return sd_fail(SD_E_FORMAT, "%s: norm.offset entry %d is out of order or maps to over 32 code points", p, i);
  for (int i = 0; i < m->n_norm_to; i++)
    if (!valid_cp(m->norm_to[i])) return sd_fail(SD_E_FORMAT, "%s: norm.to entry %d is not a code point", p, i);
  if (m->class_start[0] != 0) return sd_fail(SD_E_FORMAT, "%s: class.start must begin at 0", p);
  for (int i = 0; i < m->n_class; i++) {
    if (i && m->class_start[i] <= m->class_start[i - 1])
      return sd_fail(SD_E_FORMAT, "%s: class.start is not strictly increasing (entry %d)", p, i);
    if (m->class_start[i] > 0x10FFFF) return sd_fail(SD_E_FORMAT, "%s: class.start entry %d is past U+10FFFF", p, i);
    if (m->class_kind[i] < 0 || m->class_kind[i] > 3)
      return sd_fail(SD_E_FORMAT, "%s: class.kind entry %d is %d (0 to 3 allowed)", p, i, m->class_kind[i]);
  }
  for (int i = 0; i < m->n_conf; i++)
    if (!valid_cp(m->conf_from[i]) || !valid_cp(m->conf_to[i]) || (i && m->conf_from[i] <= m->conf_from[i - 1]))
      return sd_fail(SD_E_FORMAT, "%s: confusable entry %d is out of order or not a code point", p, i);
  return SD_OK;
}

static int load_categories(sd_learned_model *m, const char *list) {
  if (!list || !*list) return sd_fail(SD_E_FORMAT, "%s: no 'categories' in the metadata", m->path);
  if (!(m->cats = calloc((size_t)m->C, sizeof *m->cats))) return sd_fail(SD_E_NOMEM, "learned detector: out of memory");
  const char *p = list;
  for (int i = 0; i < m->C; i++) {
    size_t n = strcspn(p, ",");
    if (n == 0 || n > 63) return sd_fail(SD_E_FORMAT, "%s: category %d's name is empty or too long", m->path, i);
    if (!(m->cats[i] = malloc(n + 1))) return sd_fail(SD_E_NOMEM, "learned detector: out of memory");
    memcpy(m->cats[i], p, n);
    m->cats[i][n] = 0;
    p += n;
    if (i + 1 < m->C) {
      if (*p != ',') return sd_fail(SD_E_FORMAT, "%s: 'categories' names %d categories, out.weight has %d", m->path, i + 1, m->C);
      p++;
    }
  }
  if (*p) return sd_fail(SD_E_FORMAT, "%s: 'categories' names more than the %d categories of out.weight", m->path, m->C);
  return SD_OK;
}

/* A version 2 file's metadata `extensions`: a comma-separated list of glove, senses and cjk
 * (CJK text read character by character: learned_text.c). */
static int parse_extensions(const sd_safetensors *st, int *glove, int *senses, int *cjk) {
  const char *e = sd_st_meta(st, "extensions");
  if (!e) return sd_fail(SD_E_FORMAT, "%s: a version 2 file needs 'extensions' in its metadata", st->path);
  while (*e) {
    size_t n = strcspn(e, ",");
    if (n == 5 && !strncmp(e, "glove", 5)) *glove = 1;
    else if (n == 6 && !strncmp(e, "senses", 6)) *senses = 1;
    else if (n == 3 && !strncmp(e, "cjk", 3)) *cjk = 1;
    else return sd_fail(SD_E_FORMAT, "%s: extension '%.*s' is not supported (this build reads glove, senses, cjk)", st->path,
                        (int)(n < 40 ? n : 40), e);
    e += n;
    if (*e == ',') e++;
  }
  return SD_OK;
}

static int load(sd_learned_model *m, const sd_safetensors *st) {
  const char *f = sd_st_meta(st, "format"), *v = sd_st_meta(st, "version"), *h = sd_st_meta(st, "hash");
  if (!f || strcmp(f, LEARNED_FORMAT))
    return sd_fail(SD_E_FORMAT, "%s: not a learned-detector file (metadata format is '%.40s', expected '%s')", st->path,
                   f ? f : "", LEARNED_FORMAT);
  if (!v || (strcmp(v, "1") && strcmp(v, "2")))
    return sd_fail(SD_E_FORMAT, "%s: learned-detector version '%.20s' is not supported (this build reads %s)", st->path,
                   v ? v : "", LEARNED_VERSION);
  if (!h || strcmp(h, "fnv1a32")) return sd_fail(SD_E_FORMAT, "%s: feature hash '%.20s' is not fnv1a32", st->path, h ? h : "");
  int rc;
  if ((rc = sd_learned_meta_int(st, "buckets_log2", 8, 24, &m->B)) || (rc = sd_learned_meta_int(st, "ngram_min", 1, SD_LEARNED_MAX_NGRAM, &m->nmin)) ||
      (rc = sd_learned_meta_int(st, "ngram_max", m->nmin, SD_LEARNED_MAX_NGRAM, &m->nmax)) ||
      (rc = sd_learned_meta_int(st, "window", 1, 64, &m->window)))
    return rc;
  m->mask = (1u << m->B) - 1;
  const sd_st_entry *e = NULL;
  /* version 2: the extensions the file declares (each one's tables are required) */
  int ext_glove = 0, ext_senses = 0;
  if (!strcmp(v, "2") && (rc = parse_extensions(st, &ext_glove, &ext_senses, &m->cjk))) return rc;
  if (ext_glove && (rc = sd_learned_meta_int(st, "glove_words", 1, SD_LEARNED_MAX_GLOVE, &m->n_glove))) return rc;
  int64_t es[2] = {((int64_t)1 << m->B) + m->n_glove, -1};
  if ((rc = get(st, "embed", SD_F16, 2, es, &e))) return rc;
  if (e->shape[1] < 1 || e->shape[1] > 256) return sd_fail(SD_E_FORMAT, "%s: embedding width %lld (1 to 256 allowed)", st->path, (long long)e->shape[1]);
  m->D = (int)e->shape[1];
  const sd_st_entry *hw = NULL;
  int64_t hs[2] = {-1, m->D};
  if ((rc = get(st, "hidden.weight", SD_F32, 2, hs, &hw))) return rc;
  if (hw->shape[0] < 1 || hw->shape[0] > 1024) return sd_fail(SD_E_FORMAT, "%s: hidden width %lld (1 to 1024 allowed)", st->path, (long long)hw->shape[0]);
  m->H = (int)hw->shape[0];
  const sd_st_entry *ow = NULL;
  int64_t os[2] = {-1, m->H};
  if ((rc = get(st, "out.weight", SD_F32, 2, os, &ow))) return rc;
  if (ow->shape[0] < 1 || ow->shape[0] > 32) return sd_fail(SD_E_FORMAT, "%s: %lld categories (1 to 32 allowed)", st->path, (long long)ow->shape[0]);
  m->C = (int)ow->shape[0];
  int64_t s1[2] = {m->H, m->D}, s2[1] = {m->H}, s3[2] = {m->C, m->H}, s4[1] = {m->C};
  if ((rc = copy_f32(st, "hidden.weight", 2, s1, &m->W1)) || (rc = copy_f32(st, "hidden.bias", 1, s2, &m->b1)) ||
      (rc = copy_f32(st, "out.weight", 2, s3, &m->W2)) || (rc = copy_f32(st, "out.bias", 1, s4, &m->b2)))
    return rc;
  size_t ne = (((size_t)1 << m->B) + (size_t)m->n_glove) * (size_t)m->D;
  if (!(m->E = malloc(ne * sizeof *m->E))) return sd_fail(SD_E_NOMEM, "learned detector: out of memory");
  sd_to_f32(m->E, e->data, SD_F16, ne);
  for (size_t i = 0; i < ne; i++)
    if (!isfinite(m->E[i])) return sd_fail(SD_E_FORMAT, "%s: tensor 'embed' has a non-finite value at row %zu", st->path, i / (size_t)m->D);
  int n = -1, noff, nk = -1, nct = -1;
  if ((rc = sd_learned_copy_i32(st, "norm.from", &n, &m->norm_from))) return rc;
  m->n_norm = n;
  noff = n + 1;
  m->n_norm_to = -1;
  if ((rc = sd_learned_copy_i32(st, "norm.offset", &noff, &m->norm_off)) || (rc = sd_learned_copy_i32(st, "norm.to", &m->n_norm_to, &m->norm_to)))
    return rc;
  n = -1;
  if ((rc = sd_learned_copy_i32(st, "class.start", &n, &m->class_start))) return rc;
  m->n_class = nk = n;
  if ((rc = sd_learned_copy_i32(st, "class.kind", &nk, &m->class_kind)) || (rc = sd_learned_copy_i32(st, "confusable.from", &nct, &m->conf_from)))
    return rc;
  m->n_conf = nct;
  if ((rc = sd_learned_copy_i32(st, "confusable.to", &nct, &m->conf_to)) || (rc = check_tables(m)) ||
      (rc = load_categories(m, sd_st_meta(st, "categories"))))
    return rc;
  for (uint32_t c = 0; c < 128; c++) {
    int k = m->n_class - 1;
    while (k > 0 && (uint32_t)m->class_start[k] > c) k--;
    m->ascii_class[c] = m->class_kind[k];
    m->ascii_norm[c] = -1;
    for (int i = 0; i < m->n_norm && (uint32_t)m->norm_from[i] <= c; i++)
      if ((uint32_t)m->norm_from[i] == c) m->ascii_norm[c] = i;
  }
  if (ext_glove && (rc = sd_learned_glove_load(m, st))) return rc;
  if (ext_senses && (rc = sd_learned_sense_load(m, st))) return rc;
  m->file_threshold = NAN;
  const char *t = sd_st_meta(st, "threshold");
  if (t) {
    char *end;
    double x = strtod(t, &end);
    if (end == t || *end || !(x >= 0 && x <= 1))
      return sd_fail(SD_E_FORMAT, "%s: metadata threshold = '%.40s' is not a number in [0, 1]", st->path, t);
    m->file_threshold = (float)x;
  }
  uint64_t fp = SD_FNV1A64_INIT;
  m->fingerprint = sd_fnv1a64(st->base, st->size, fp);
  return SD_OK;
}

void sd_learned_free(sd_learned_model *m) {
  if (!m) return;
  free(m->path);
  free(m->E);
  free(m->W1);
  free(m->b1);
  free(m->W2);
  free(m->b2);
  free(m->norm_from);
  free(m->norm_off);
  free(m->norm_to);
  free(m->class_start);
  free(m->class_kind);
  free(m->conf_from);
  free(m->conf_to);
  sd_learned_word_tables_free(m);
  if (m->cats)
    for (int i = 0; i < m->C; i++) free(m->cats[i]);
  free(m->cats);
  free(m);
}

int sd_learned_load(const char *path, sd_learned_model **out) {
  if (!path || !out) return sd_fail(SD_E_ARG, "sd_learned_load: NULL argument");
  *out = NULL;
  sd_safetensors *st;
  int rc = sd_st_open(path, &st);
  if (rc) return sd_fail_prefix(rc, "learned detector: ");
  sd_learned_model *m = calloc(1, sizeof *m);
  if (!m || !(m->path = strdup(path))) {
    free(m);
    sd_st_close(st);
    return sd_fail(SD_E_NOMEM, "learned detector: out of memory");
  }
  rc = load(m, st);
  sd_st_close(st);
  if (rc) {
    sd_learned_free(m);
    return sd_fail_prefix(rc, "learned detector: ");
  }
  *out = m;
  return SD_OK;
}

int sd_learned_load_default(sd_learned_model **out) {
  if (!out) return sd_fail(SD_E_ARG, "sd_learned_load_default: out is NULL");
  *out = NULL;
  char path[4096];
  int rc = sd_data_file(SD_LEARNED_FILE, path, sizeof path);
  return rc ? sd_fail_prefix(rc, "learned detector: ") : sd_learned_load(path, out);
}

const char *sd_learned_path(const sd_learned_model *m) { return m ? m->path : NULL; }
int sd_learned_n_categories(const sd_learned_model *m) { return m ? m->C : 0; }
const char *sd_learned_category(const sd_learned_model *m, int i) { return m && i >= 0 && i < m->C ? m->cats[i] : NULL; }
float sd_learned_file_threshold(const sd_learned_model *m) { return m ? m->file_threshold : NAN; }
uint64_t sd_learned_fingerprint(const sd_learned_model *m) { return m ? m->fingerprint : 0; }

/* ---- words and features (public forms) --------------------------------------------------- */

void sd_learned_words_free(sd_learned_word *w, int n) {
  if (!w) return;
  for (int i = 0; i < n; i++) free(w[i].text);
  free(w);
}

int sd_learned_words(const sd_learned_model *m, const char *prompt, sd_learned_word **words, int *n) {
  if (!m || !prompt || !words || !n) return sd_fail(SD_E_ARG, "sd_learned_words: NULL argument");
  *words = NULL;
  *n = 0;
  sd_lwords w;
  int rc = sd_learned_split(m, prompt, &w);
  if (rc) return rc;
  sd_learned_word *o = calloc((size_t)w.n + 1, sizeof *o);
  if (!o) rc = sd_fail(SD_E_NOMEM, "learned detector: out of memory");
  for (int i = 0; !rc && i < w.n; i++) {
    if (!(o[i].text = malloc((size_t)w.w[i].len * 4 + 1))) {
      rc = sd_fail(SD_E_NOMEM, "learned detector: out of memory");
      break;
    }
    o[i].text[sd_learned_utf8(w.cp + w.w[i].off, w.w[i].len, o[i].text)] = 0;
    o[i].start = w.w[i].start;
    o[i].end = w.w[i].end;
  }
  if (rc) sd_learned_words_free(o, w.n);
  else *words = o, *n = w.n;
  sd_lwords_free(&w);
  return rc;
}

int sd_learned_features(const sd_learned_model *m, const char *prompt, uint32_t **idx, int **word, int *n) {
  if (!m || !prompt || !idx || !word || !n) return sd_fail(SD_E_ARG, "sd_learned_features: NULL argument");
  *idx = NULL, *word = NULL, *n = 0;
  sd_lwords w;
  int rc = sd_learned_split(m, prompt, &w);
  if (rc) return rc;
  size_t cap = (size_t)w.n * (SD_LEARNED_MAX_WORD_FEATURES + 1) + 1;
  uint32_t *f = malloc(cap * sizeof *f);
  int *wd = malloc(cap * sizeof *wd);
  int k = 0;
  if (!f || !wd) {
    free(f);
    free(wd);
    sd_lwords_free(&w);
    return sd_fail(SD_E_NOMEM, "learned detector: out of memory");
  }
  for (int j = 0; j < w.n; j++) {
    int c = sd_learned_word_features(m, &w, j, f + k);
    for (int i = 0; i < c; i++) wd[k + i] = j;
    k += c;
    if (j) f[k] = sd_learned_bigram(m, &w, j), wd[k++] = j;
  }
  sd_lwords_free(&w);
  *idx = f, *word = wd, *n = k;
  return SD_OK;
}

/* ---- scores ---------------------------------------------------------------------------------- */

/* One prompt's word vectors and window logits, with a drop mask for attribution. */
typedef struct {
  const sd_learned_model *m;
  sd_lwords w;
  int n, nwin;
  float *u, *g;   /* [n, D] */
  float *z;       /* [nwin, C] window logits (no word dropped) */
  unsigned char *drop;
  float *x, *h;   /* scratch [D], [H] */
} scored;

static void scored_free(scored *s) {
  sd_lwords_free(&s->w);
  free(s->u);
  free(s->g);
  free(s->z);
  free(s->drop);
  free(s->x);
  free(s->h);
}

/* The hidden layer h = relu(W1 x + b1) of a window sum x. */
static void hidden(const sd_learned_model *m, const float *x, float *h) {
  int D = m->D;
  for (int i = 0; i < m->H; i++) {
    const float *wr = m->W1 + (size_t)i * D;
    float acc = m->b1[i];
    for (int d = 0; d < D; d++) acc += wr[d] * x[d];
    h[i] = acc > 0 ? acc : 0;
  }
}

/* Category c's logit W2[c] h + b2[c]. */
static float logit(const sd_learned_model *m, const float *h, int c) {
  const float *wr = m->W2 + (size_t)c * m->H;
  float acc = m->b2[c];
  for (int i = 0; i < m->H; i++) acc += wr[i] * h[i];
  return acc;
}

/* The logits of window a (words a .. e-1) into z[C], words with drop[j] left out. */
static void window_logits(scored *s, int a, float *z) {
  const sd_learned_model *m = s->m;
  int D = m->D, e = a + m->window < s->n ? a + m->window : s->n;
  float *x = s->x, *h = s->h;
  memset(x, 0, (size_t)D * sizeof *x);
  for (int j = a; j < e; j++)
    if (!s->drop[j])
      for (int d = 0; d < D; d++) x[d] += s->u[(size_t)j * D + d];
  for (int j = a + 1; j < e; j++)
    if (!s->drop[j] && !s->drop[j - 1])
      for (int d = 0; d < D; d++) x[d] += s->g[(size_t)j * D + d];
  hidden(m, x, h);
  for (int c = 0; c < m->C; c++) z[c] = logit(m, h, c);
}

static int score(const sd_learned_model *m, const char *prompt, scored *s) {
  memset(s, 0, sizeof *s);
  s->m = m;
  int rc = sd_learned_split(m, prompt, &s->w);
  if (rc) return rc;
  int n = s->n = s->w.n, D = m->D;
  s->nwin = n > m->window ? n - m->window + 1 : 1;
  s->u = calloc((size_t)(n ? n : 1) * D, sizeof *s->u);
  s->g = calloc((size_t)(n ? n : 1) * D, sizeof *s->g);
  s->z = malloc((size_t)s->nwin * m->C * sizeof *s->z);
  s->drop = calloc((size_t)n + 1, 1);
  s->x = malloc((size_t)D * sizeof *s->x);
  s->h = malloc((size_t)m->H * sizeof *s->h);
  uint32_t *f = malloc(SD_LEARNED_MAX_WORD_FEATURES * sizeof *f);
  if (!s->u || !s->g || !s->z || !s->drop || !s->x || !s->h || !f) {
    free(f);
    scored_free(s);
    return sd_fail(SD_E_NOMEM, "learned detector: out of memory");
  }
  for (int j = 0; j < n; j++) {
    float *u = s->u + (size_t)j * D;
    int k = sd_learned_word_features(m, &s->w, j, f);
    for (int i = 0; i < k; i++) {
      const float *er = m->E + (size_t)f[i] * D;
      for (int d = 0; d < D; d++) u[d] += er[d];
    }
    if (j) memcpy(s->g + (size_t)j * D, m->E + (size_t)sd_learned_bigram(m, &s->w, j) * D, (size_t)D * sizeof(float));
  }
  free(f);
  for (int a = 0; a < s->nwin; a++) window_logits(s, a, s->z + (size_t)a * m->C);
  return SD_OK;
}

static float prob(float z) { return (float)(1.0 / (1.0 + exp(-(double)z))); }

int sd_learned_scores(const sd_learned_model *m, const char *prompt, float *p) {
  if (!m || !prompt || !p) return sd_fail(SD_E_ARG, "sd_learned_scores: NULL argument");
  scored s;
  int rc = score(m, prompt, &s);
  if (rc) return rc;
  for (int c = 0; c < m->C; c++) {
    float z = s.z[c];
    for (int a = 1; a < s.nwin; a++)
      if (s.z[(size_t)a * m->C + c] > z) z = s.z[(size_t)a * m->C + c];
    p[c] = prob(z);
  }
  scored_free(&s);
  return SD_OK;
}

/* ---- the detector ------------------------------------------------------------------------- */

typedef struct {
  const sd_bank *bank;
  sd_learned_model *model;
  int own;
  int map[32]; /* model category -> bank category, -1 = not in the bank */
  int n_mapped;
  sd_lexicon safe; /* the bank's `safe` phrases, all categories (the benign-sense gate) */
  sd_lexicon terms; /* the bank's own terms, all categories, no WordNet expansion (the
                       negation gate) */
  const sd_wn_dict *dict; /* the English dictionary for the gates' matching (NULL: none) */
} learned_det;

static char *xstrndup(const char *s, size_t n) {
  char *r = malloc(n + 1);
  if (r) {
    memcpy(r, s, n);
    r[n] = 0;
  }
  return r;
}

/* Max over windows of category k's logit with s->drop, where `zw` holds the window logits
 * for the current drop set; word j additionally left out (j < 0: none). */
static float max_without(scored *s, const float *zw, int k, int j, float *tmp) {
  const sd_learned_model *m = s->m;
  float best = -INFINITY;
  if (j >= 0) s->drop[j] = 1;
  for (int a = 0; a < s->nwin; a++) {
    int e = a + m->window < s->n ? a + m->window : s->n;
    float z;
    if (j >= 0 && j >= a && j < e) { /* the window holds word j (and the bigrams that touch it) */
      window_logits(s, a, tmp);
      z = tmp[k];
    } else {
      z = zw[(size_t)a * m->C + k];
    }
    if (z > best) best = z;
  }
  if (j >= 0) s->drop[j] = 0;
  return best;
}

/* Attribution for model category k (fired at threshold t): the chosen words in pos[], their
 * count in *np (0 = not localised), the probability left in *p_after. */
/* Category k's probability for the words pos[i] with in[i] set, as one window of their own
 * (their word vectors, and the bigrams between neighbours among them). */
static float alone_prob(scored *s, const int *pos, const unsigned char *in, int n, int k) {
  const sd_learned_model *m = s->m;
  int D = m->D;
  float *x = s->x;
  memset(x, 0, (size_t)D * sizeof *x);
  for (int i = 0; i < n; i++) {
    if (!in[i]) continue;
    int j = pos[i];
    for (int d = 0; d < D; d++) x[d] += s->u[(size_t)j * D + d];
    for (int q = 0; q < n; q++)
      if (in[q] && pos[q] == j - 1)
        for (int d = 0; d < D; d++) x[d] += s->g[(size_t)j * D + d];
  }
  hidden(m, x, s->h);
  return prob(logit(m, s->h, k));
}

/* English function words: never part of the evidence (no category lives in "after" or "the";
 * when the model leans on them the safe text would lose them), so the attribution chooses
 * among the other words and, failing that, leaves the score unlocalised (context appended,
 * nothing deleted). */
static int function_word(const uint32_t *cp, int len) {
  if (len < 1 || len > 10) return 0;
  char w[11];
  for (int i = 0; i < len; i++) {
    if (cp[i] > 127) return 0;
    w[i] = (char)cp[i];
  }
  return sd_en_function_word(w, (size_t)len);
}

/* Attribution for model category k (fired at threshold t): the removal set in pos[] (greedy
 * order; *nrem words, 0 when no SD_LEARNED_MAX_SPAN_WORDS words clear the category), *np the
 * same count when those words also carry it alone (0 = not localised), the probability left
 * without them (*p_after), their core in core[] (*ncore words) and the core's probability
 * alone (*alone; NAN when not computed). */
static int attribute(scored *s, int k, float t, int *pos, int *nrem, int *np, float *p_after, int *core, int *ncore,
                     float *alone) {
  const sd_learned_model *m = s->m;
  *np = *nrem = 0;
  *p_after = 1;
  *alone = NAN;
  float *zw = malloc((size_t)s->nwin * m->C * sizeof *zw), *tmp = malloc((size_t)m->C * sizeof *tmp);
  unsigned char *cand = malloc((size_t)s->n + 1), *fw = malloc((size_t)s->n + 1);
  if (!zw || !tmp || !cand || !fw) {
    free(zw);
    free(tmp);
    free(cand);
    free(fw);
    return sd_fail(SD_E_NOMEM, "learned detector: out of memory");
  }
  for (int j = 0; j < s->n; j++) fw[j] = (unsigned char)function_word(s->w.cp + s->w.w[j].off, s->w.w[j].len);
  memcpy(zw, s->z, (size_t)s->nwin * m->C * sizeof *zw);
  int chosen = 0;
  for (int step = 0; step < SD_LEARNED_MAX_SPAN_WORDS; step++) {
    memset(cand, 0, (size_t)s->n + 1);
    for (int a = 0; a < s->nwin; a++)
      if (prob(zw[(size_t)a * m->C + k]) >= t) {
        int e = a + m->window < s->n ? a + m->window : s->n;
        for (int j = a; j < e; j++) cand[j] = !s->drop[j] && !fw[j];
      }
    int best = -1;
    float bz = INFINITY;
    for (int j = 0; j < s->n; j++)
      if (cand[j]) {
        float z = max_without(s, zw, k, j, tmp);
        if (z < bz) bz = z, best = j;
      }
    if (best < 0) break;
    s->drop[best] = 1;
    pos[chosen++] = best;
    for (int a = 0; a < s->nwin; a++) window_logits(s, a, zw + (size_t)a * m->C);
    *p_after = prob(bz);
    if (*p_after < t) {
      *np = chosen;
      break;
    }
  }
  for (int i = 0; i < chosen; i++) s->drop[pos[i]] = 0;
  *nrem = *np;
  /* clear only when the words carry the category by themselves: their own window fires too;
   * the core is what is left after dropping, latest choice first, every word without which
   * the rest still fires alone */
  *ncore = 0;
  if (*np) {
    unsigned char in[SD_LEARNED_MAX_SPAN_WORDS];
    memset(in, 1, sizeof in);
    *alone = alone_prob(s, pos, in, *np, k);
    if (*alone < t) {
      *np = 0;
    } else {
      for (int i = *np - 1; i >= 0; i--) {
        in[i] = 0;
        float a = alone_prob(s, pos, in, *np, k);
        if (a >= t) *alone = a;
        else in[i] = 1;
      }
      for (int i = 0; i < *np; i++)
        if (in[i]) core[(*ncore)++] = pos[i];
    }
  }
  free(zw);
  free(tmp);
  free(cand);
  free(fw);
  return SD_OK;
}

static int int_cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

static int add_evidence(sd_detection *out, int cat, size_t start, size_t end, char *matched, char *term, char *via) {
  sd_evidence *ne = realloc(out->ev, ((size_t)out->n_ev + 1) * sizeof *ne);
  if (!ne || !matched || !term || !via) {
    if (ne) out->ev = ne;
    free(matched);
    free(term);
    free(via);
    return sd_fail(SD_E_NOMEM, "learned detector: out of memory");
  }
  out->ev = ne;
  out->ev[out->n_ev++] = (sd_evidence){cat, start, end, matched, term, via, 0};
  return SD_OK;
}

/* The gates' spans of prompt (source byte start, end and bank category, malloc'd): g[0] the
 * bank's `safe` phrases, g[1] the bank's terms inside a negation's scope ("not nude", "no
 * blood": the lexical detector's rule, sd_norm_negation; a term that begins with its cue,
 * "no clothes", is not negated by it), g[2] the bank's terms that the lexical detector's
 * context gates drop (a place's or an animal's name, a make-believe thing, the object of
 * "laughing at": "Slaughter Beach", "bully dog", "toy gun"; lexical_gate.h). */
#define N_GATES 3
typedef struct {
  size_t *sp[N_GATES];
  int n[N_GATES];
} gate_spans;

#define ANY_CAT ((size_t)-1)

static uint32_t gate_term_cats(const void *ctx, const char *word, size_t n) { return sd_lex_single_cats(ctx, word, n); }

/* The spans of lexicon lx's matches in nm (matched as the lexical detector matches), for
 * each mode m < n_modes into out[m], n[m]: mode 0, every match; 1, the negated ones; 2, the
 * ones a context gate drops. One match of the lexicon serves every mode. */
static int spans_of(const learned_det *L, const sd_lexicon *lx, const char *prompt, const sd_norm *nm,
                    const int *modes, int n_modes, size_t **out[], int *n[]) {
  sd_lex_hits hits = {0};
  sd_lex_env env = {lx->em, NULL, NULL, L->dict, NULL};
  int rc = sd_lex_match(lx, &env, nm, &hits);
  for (int k = 0; !rc && k < n_modes; k++) {
    int mode = modes[k], negated_only = mode == 1;
    size_t **o = out[k];
    int *no = n[k];
    if (hits.n > 0 && !(*o = malloc((size_t)hits.n * 6 * sizeof **o))) rc = sd_fail(SD_E_NOMEM, "learned detector: out of memory");
    for (int i = 0; !rc && i < hits.n; i++) {
      if (negated_only && !hits.h[i].neg) continue;
      if (mode == 2) {
        const sd_term *t = &lx->t[hits.h[i].term];
        if (hits.h[i].neg || t->lang != lx->en ||
            !sd_lex_gate(nm, prompt, &hits.h[i], L->bank->cats[t->cat].name, t->act, L->dict, gate_term_cats, lx))
          continue;
      }
      (*o)[3 * *no] = nm->v[hits.h[i].a].s0;
      (*o)[3 * *no + 1] = nm->v[hits.h[i].b - 1].s1;
      (*o)[3 * *no + 2] = (size_t)lx->t[hits.h[i].term].cat;
      ++*no;
      /* the cue that negates it ("anti" of "anti-racism", "without"), for every category: a
       * cue is no evidence of anything once it negates a term ("an anti-war protest") */
      int q = hits.h[i].p0 - 1;
      while (negated_only && q >= 0 && nm->ps[q].neg) q--;
      if (negated_only && q >= 0 && nm->ps[q].kind == SD_PIECE_WORD) {
        (*o)[3 * *no] = nm->v[nm->ps[q].a].s0;
        (*o)[3 * *no + 1] = nm->v[nm->ps[q].b - 1].s1;
        (*o)[3 * *no + 2] = ANY_CAT;
        ++*no;
      }
    }
  }
  free(hits.h);
  return rc;
}

static int gates_of(const learned_det *L, const char *prompt, gate_spans *g) {
  memset(g, 0, sizeof *g);
  if (L->safe.n == 0 && L->terms.n == 0) return SD_OK;
  sd_norm nm;
  int rc = sd_norm_text(prompt, L->safe.em, &nm);
  if (rc) return rc;
  sd_norm_negation(&nm);
  static const int safe_modes[] = {0}, term_modes[] = {1, 2};
  if (L->safe.n) rc = spans_of(L, &L->safe, prompt, &nm, safe_modes, 1, (size_t **[]){&g->sp[0]}, (int *[]){&g->n[0]});
  if (!rc && L->terms.n)
    rc = spans_of(L, &L->terms, prompt, &nm, term_modes, 2, (size_t **[]){&g->sp[1], &g->sp[2]},
                  (int *[]){&g->n[1], &g->n[2]});
  sd_norm_free(&nm);
  return rc;
}

/* Whether the byte span [a, b) lies inside one of the n spans (of category cat, unless
 * cat < 0). */
static int in_spans(const size_t *sp, int n, size_t a, size_t b, int cat) {
  for (int i = 0; i < n; i++)
    if (sp[3 * i] <= a && b <= sp[3 * i + 1] && (cat < 0 || sp[3 * i + 2] == (size_t)cat || sp[3 * i + 2] == ANY_CAT))
      return 1;
  return 0;
}

static int learned_detect(sd_detector *d, const char *prompt, const void *encoder, float threshold, sd_detection *out) {
  (void)encoder;
  learned_det *L = d->impl;
  const sd_learned_model *m = L->model;
  scored s;
  int rc = score(m, prompt, &s);
  if (rc) return rc;
  float zmax[32];
  for (int c = 0; c < m->C; c++) {
    zmax[c] = s.z[c];
    for (int a = 1; a < s.nwin; a++)
      if (s.z[(size_t)a * m->C + c] > zmax[c]) zmax[c] = s.z[(size_t)a * m->C + c];
  }
  out->score = 0;
  for (int c = 0; c < m->C; c++) {
    int bc = L->map[c];
    if (bc < 0) continue;
    float p = prob(zmax[c]);
    out->cat_score[bc] = p;
    if (p > out->score) out->score = p;
    if (p >= threshold) out->categories |= 1u << bc;
  }
  gate_spans g = {{NULL}, {0}};
  if (out->categories) rc = gates_of(L, prompt, &g);
  for (int c = 0; rc == SD_OK && c < m->C; c++) {
    int bc = L->map[c];
    if (bc < 0 || !((out->categories >> bc) & 1)) continue;
    int pos[SD_LEARNED_MAX_SPAN_WORDS], core[SD_LEARNED_MAX_SPAN_WORDS], nrem = 0, np = 0, nc = 0;
    float after, alone;
    if ((rc = attribute(&s, c, threshold, pos, &nrem, &np, &after, core, &nc, &alone))) break;
    /* the benign-sense gate: when every word whose removal clears the category lies inside
     * one of the bank's `safe` phrases ("bullet train", "nude colour", "demon slayer"), the
     * score comes from a sense the bank declares benign: the category does not fire. The
     * negation gate, the same way: every such word inside a negated term of this category
     * ("a woman on a beach, not nude", "no blood"), the lexical detector's negation rule.
     * Whether or not those words carry the score alone: "a disabled athlete in a wheelchair"
     * is cleared by dropping "disabled", a `safe` identity word, although "disabled athlete"
     * alone scores under the threshold. And the context gates': every such word inside a
     * term of this category that a gate drops ("American Bully dog") */
    int benign = 0;
    for (int k = 0; k < N_GATES && !benign; k++) {
      benign = nrem > 0 && g.n[k] > 0;
      for (int i = 0; benign && i < nrem; i++)
        benign = in_spans(g.sp[k], g.n[k], s.w.w[pos[i]].start, s.w.w[pos[i]].end, k ? bc : -1);
    }
    if (benign) {
      out->categories &= ~(1u << bc);
      continue;
    }
    char via[512];
    if (np == 0) {
      if (s.n == 0)
        snprintf(via, sizeof via, "learned p=%.3f, not localised to words (the prompt has none)", (double)prob(zmax[c]));
      else if (isnan(alone))
        snprintf(via, sizeof via, "learned p=%.3f, not localised to words (no %d content words clear it)", (double)prob(zmax[c]),
                 SD_LEARNED_MAX_SPAN_WORDS);
      else
        snprintf(via, sizeof via, "learned p=%.3f, not localised to words (the words whose removal clears it score "
                 "%.3f alone)", (double)prob(zmax[c]), (double)alone);
      rc = add_evidence(out, bc, 0, 0, xstrndup("", 0), xstrndup("", 0), xstrndup(via, strlen(via)));
      continue;
    }
    qsort(pos, (size_t)np, sizeof *pos, int_cmp);
    qsort(core, (size_t)nc, sizeof *core, int_cmp);
    /* "learned p=0.994; 0.070 without "a n u d e", "woman"; "a n u d e" alone 0.992" */
    size_t o = (size_t)snprintf(via, sizeof via, "learned p=%.3f; %.3f without", (double)prob(zmax[c]), (double)after);
    for (int i = 0; i < np && o < sizeof via; i++) {
      const sd_lword *w = &s.w.w[pos[i]];
      o += (size_t)snprintf(via + o, sizeof via - o, "%s \"%.*s\"", i ? "," : "", (int)(w->end - w->start), prompt + w->start);
    }
    for (int i = 0; i < nc && o < sizeof via; i++) {
      const sd_lword *w = &s.w.w[core[i]];
      o += (size_t)snprintf(via + o, sizeof via - o, "%s \"%.*s\"", i ? "," : ";", (int)(w->end - w->start), prompt + w->start);
    }
    if (o < sizeof via) snprintf(via + o, sizeof via - o, " alone %.3f", (double)alone);
    for (int i = 0; rc == SD_OK && i < nc; i++) {
      const sd_lword *w = &s.w.w[core[i]];
      char *term = malloc((size_t)w->len * 4 + 1);
      if (term) term[sd_learned_utf8(s.w.cp + w->off, w->len, term)] = 0;
      rc = add_evidence(out, bc, w->start, w->end, xstrndup(prompt + w->start, w->end - w->start), term,
                        xstrndup(via, strlen(via)));
    }
  }
  for (int k = 0; k < N_GATES; k++) free(g.sp[k]);
  out->fired = out->categories != 0;
  scored_free(&s);
  return rc;
}

static void learned_destroy(sd_detector *d) {
  learned_det *L = d->impl;
  if (L && L->own) sd_learned_free(L->model);
  if (L) {
    sd_lex_free(&L->safe);
    sd_lex_free(&L->terms);
  }
  free(L);
  free(d);
}

static const sd_detector_vtable k_learned_vt = {"learned", learned_detect, learned_destroy};

int sd_learned_create(const sd_bank *bank, sd_learned_model *model, int own_model, sd_detector **out) {
  if (!out) return sd_fail(SD_E_ARG, "sd_learned_create: out is NULL");
  *out = NULL;
  if (!bank || !model) {
    if (own_model) sd_learned_free(model);
    return sd_fail(SD_E_ARG, "sd_learned_create: NULL bank or model");
  }
  sd_detector *d = calloc(1, sizeof *d);
  learned_det *L = calloc(1, sizeof *L);
  if (!d || !L) {
    free(d);
    free(L);
    if (own_model) sd_learned_free(model);
    return sd_fail(SD_E_NOMEM, "learned detector: out of memory");
  }
  L->bank = bank;
  L->model = model;
  L->own = own_model;
  for (int c = 0; c < model->C; c++) {
    L->map[c] = sd_bank_find(bank, model->cats[c]);
    L->n_mapped += L->map[c] >= 0;
  }
  const char *why = "";
  L->safe.em = L->terms.em = sd_emoji_default(&why);
  L->dict = sd_wn_dictionary(NULL); /* "hero" is no foreign term once English is read first */
  L->safe.surface = 1;
  int rc = sd_lex_finish_langs(&L->safe);
  for (int c = 0; c < bank->n_cats && !rc; c++)
    for (int i = 0; i < bank->cats[c].term_lang.n && !rc; i++) rc = sd_lex_lang_add(&L->terms, bank->cats[c].term_lang.items[i]);
  if (!rc) rc = sd_lex_finish_langs(&L->terms);
  for (int c = 0; c < bank->n_cats && !rc; c++) {
    const sd_bank_category *k = &bank->cats[c];
    for (int i = 0; i < k->safe.n && !rc; i++) rc = sd_lex_add(&L->safe, c, "en", k->safe.items[i], NULL, NULL);
    for (int i = 0; i < k->terms.n && !rc; i++) rc = sd_lex_add(&L->terms, c, k->term_lang.items[i], k->terms.items[i], NULL, NULL);
    for (int i = 0; i < k->acts.n && !rc; i++) sd_lex_mark_act(&L->terms, c, k->acts.items[i]); /* lexical reports a bad one */
  }
  d->vt = &k_learned_vt;
  d->impl = L;
  if (rc) {
    learned_destroy(d);
    return rc;
  }
  d->enabled = 1;
  d->threshold = isnan(model->file_threshold) ? SD_LEARNED_DEFAULT_THRESHOLD : model->file_threshold;
  d->impl = L;
  *out = d;
  return SD_OK;
}

int sd_learned_n_mapped(const sd_detector *d) {
  return d && d->vt == &k_learned_vt ? ((const learned_det *)d->impl)->n_mapped : 0;
}

const sd_learned_model *sd_learned_detector_model(const sd_detector *d) {
  return d && d->vt == &k_learned_vt ? ((const learned_det *)d->impl)->model : NULL;
}
