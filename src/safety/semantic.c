/* The semantic detector: concept descriptions and safe anchors embedded with the model's own
 * text encoder, compared with the prompt (whole and per token). Definitions in semantic.h
 * and docs/safety-detectors.md. */
#include "safety/semantic.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "io/fileio.h"

#define SEM_CACHE_MAGIC "SDSEMB1"
#define SEM_FP_BYTES (64u << 10)

typedef struct {
  const sd_bank *bank;
  int token_level;
  char *cache_path; /* NULL = default location, "" = none */
  pthread_mutex_t mu;
  /* embeddings, valid for (for_text, for_fp) when ready */
  int ready, from_cache;
  const sd_clip_text *for_text;
  uint64_t for_fp;
  int D;
  int n_desc, n_anch;
  float *desc;             /* [n_desc, D] */
  float *anch;             /* [n_anch, D] */
  int *desc_cat;           /* category of each description */
  const char **desc_text;  /* borrowed from the bank */
  const char **anch_text;
} semantic;

/* ------------------------------------------------------------------------------------- */
/* encoding                                                                                */

static int enc_check(const sd_semantic_encoder *enc) {
  if (!enc || !enc->tok || !enc->text || !enc->ex)
    return sd_fail(SD_E_ARG, "semantic detector: no text encoder (tokenizer, text encoder and exec needed)");
  return SD_OK;
}

static int enc_ctx(const sd_semantic_encoder *enc) {
  int ctx = sd_clip_text_cfg(enc->text)->max_positions;
  return ctx < SD_CLIP_CONTEXT ? ctx : SD_CLIP_CONTEXT;
}

/* Tokenize + frame + encode the real tokens. *states [n, D] and *ids [n] malloc'ed. */
static int encode_states(const sd_semantic_encoder *enc, const char *text, float **states, int32_t **ids_out,
                         int *n_out) {
  int ctx = enc_ctx(enc);
  if (ctx < 2) return sd_fail(SD_E_FORMAT, "semantic detector: text encoder has %d positions", ctx);
  int D = sd_clip_text_cfg(enc->text)->hidden;
  int32_t *ids = malloc((size_t)ctx * sizeof *ids);
  if (!ids) return sd_fail(SD_E_NOMEM, "semantic detector: out of memory");
  int n = sd_tokenize_prompt(enc->tok, text, enc->pad_id, ctx, ids);
  if (n < 0) {
    free(ids);
    return sd_fail_prefix(n, "semantic detector: tokenizing \"%.60s\": ", text);
  }
  float *h = malloc((size_t)n * (size_t)D * sizeof *h);
  if (!h) {
    free(ids);
    return sd_fail(SD_E_NOMEM, "semantic detector: out of memory");
  }
  sd_clip_text_opts o = {1, 1};
  int rc = sd_clip_text_encode(enc->text, enc->ex, ids, 1, n, &o, h);
  if (rc) {
    free(ids);
    free(h);
    return sd_fail_prefix(rc, "semantic detector: encoding: ");
  }
  *states = h;
  *ids_out = ids;
  *n_out = n;
  return SD_OK;
}

static void l2norm(float *v, int D) {
  double s = 0;
  for (int i = 0; i < D; i++) s += (double)v[i] * v[i];
  if (s <= 0) return;
  float inv = (float)(1.0 / sqrt(s));
  for (int i = 0; i < D; i++) v[i] *= inv;
}

static void mean_pool(const float *h, int n, int D, float *out) {
  for (int j = 0; j < D; j++) {
    double s = 0;
    for (int i = 0; i < n; i++) s += h[(size_t)i * D + j];
    out[j] = (float)(s / n);
  }
  l2norm(out, D);
}

static float dot(const float *a, const float *b, int D) {
  double s = 0;
  for (int i = 0; i < D; i++) s += (double)a[i] * b[i];
  return (float)s;
}

int sd_semantic_embed(const sd_semantic_encoder *enc, const char *text, float *out) {
  int rc = enc_check(enc);
  if (rc) return rc;
  if (!text || !out) return sd_fail(SD_E_ARG, "sd_semantic_embed: NULL argument");
  float *h;
  int32_t *ids;
  int n;
  if ((rc = encode_states(enc, text, &h, &ids, &n))) return rc;
  mean_pool(h, n, sd_clip_text_cfg(enc->text)->hidden, out);
  free(h);
  free(ids);
  return SD_OK;
}

int sd_semantic_states(const sd_semantic_encoder *enc, const char *text, float **pooled, float **tokens, int *n) {
  int rc = enc_check(enc);
  if (rc) return rc;
  if (!text || !pooled || !tokens || !n) return sd_fail(SD_E_ARG, "sd_semantic_states: NULL argument");
  int D = sd_clip_text_cfg(enc->text)->hidden;
  float *h;
  int32_t *ids;
  if ((rc = encode_states(enc, text, &h, &ids, n))) return rc;
  free(ids);
  float *p = malloc((size_t)D * sizeof *p);
  if (!p) {
    free(h);
    return sd_fail(SD_E_NOMEM, "semantic detector: out of memory");
  }
  mean_pool(h, *n, D, p);
  for (int i = 0; i < *n; i++) l2norm(h + (size_t)i * D, D);
  *pooled = p;
  *tokens = h;
  return SD_OK;
}

/* ------------------------------------------------------------------------------------- */
/* fingerprint and file cache                                                              */

uint64_t sd_semantic_model_fingerprint(const sd_model_source *m) {
  if (!m) return 0;
  const sd_clip_text_config *c = sd_model_text_config(m);
  const sd_tensor *te = sd_model_find(m, SD_COMP_TEXT, "text_model.embeddings.token_embedding.weight");
  if (!c || !te || !te->data) return 0;
  uint64_t h = SD_FNV1A64_INIT;
  int32_t cfg[8] = {c->vocab_size, c->hidden, c->layers, c->heads, c->intermediate, c->max_positions, (int32_t)c->act,
                    c->pad_id};
  h = sd_fnv1a64(cfg, sizeof cfg, h);
  int32_t dt = (int32_t)te->dtype;
  h = sd_fnv1a64(&dt, sizeof dt, h);
  h = sd_fnv1a64(te->shape, sizeof te->shape, h);
  size_t nb = (size_t)te->shape[0] * (size_t)te->shape[1] * sd_dtype_size(te->dtype);
  h = sd_fnv1a64(te->data, nb < SEM_FP_BYTES ? nb : SEM_FP_BYTES, h);
  const sd_tensor *ln = sd_model_find(m, SD_COMP_TEXT, "text_model.final_layer_norm.weight");
  if (ln && ln->data) h = sd_fnv1a64(ln->data, (size_t)ln->shape[0] * sd_dtype_size(ln->dtype), h);
  return h ? h : 1;
}

int sd_semantic_default_cache(const sd_bank *bank, uint64_t model_fp, char *buf, size_t cap) {
  if (!bank || !buf) return sd_fail(SD_E_ARG, "sd_semantic_default_cache: NULL argument");
  char dir[2048];
  int rc = sd_cache_dir(dir, sizeof dir);
  if (rc) return rc;
  int w = snprintf(buf, cap, "%s/semantic-%016llx-%016llx.bin", dir, (unsigned long long)bank->hash,
                   (unsigned long long)model_fp);
  if (w < 0 || (size_t)w >= cap) return sd_fail(SD_E_ARG, "cache path too long");
  return SD_OK;
}


/* Layout: magic[8] "SDSEMB1\0", u32 D, u32 n_desc, u32 n_anch, u32 0, u64 bank hash,
 * u64 model fp, floats [(n_desc + n_anch) * D], u64 FNV-1a of the floats. Native endianness. */
typedef struct {
  char magic[8];
  uint32_t D, n_desc, n_anch, zero;
  uint64_t bank, model;
} cache_hdr;

static int cache_read(const char *path, semantic *S, uint64_t fp, int D) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  cache_hdr h;

  int ok = fread(&h, sizeof h, 1, f) == 1 && memcmp(h.magic, SEM_CACHE_MAGIC, 8) == 0 && h.D == (uint32_t)D &&
           h.n_desc == (uint32_t)S->n_desc && h.n_anch == (uint32_t)S->n_anch && h.bank == S->bank->hash &&
           h.model == fp;
  uint64_t sum = 0;
  ok = ok && fread(S->desc, sizeof(float), (size_t)S->n_desc * D, f) == (size_t)S->n_desc * D &&
       fread(S->anch, sizeof(float), (size_t)S->n_anch * D, f) == (size_t)S->n_anch * D &&
       fread(&sum, sizeof sum, 1, f) == 1 && fgetc(f) == EOF;
  fclose(f);
  if (!ok) return -1;
  uint64_t k = sd_fnv1a64(S->desc, (size_t)S->n_desc * D * sizeof(float), SD_FNV1A64_INIT);
  k = sd_fnv1a64(S->anch, (size_t)S->n_anch * D * sizeof(float), k);
  return k == sum ? 0 : -1;
}

static int cache_write(const char *path, const semantic *S, uint64_t fp) {
  sd_mkdirs_for(path);
  sd_atomic_file af;
  int rc = sd_atomic_open(&af, path);
  if (rc) return rc;
  cache_hdr h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, SEM_CACHE_MAGIC, 8);
  h.D = (uint32_t)S->D;
  h.n_desc = (uint32_t)S->n_desc;
  h.n_anch = (uint32_t)S->n_anch;
  h.bank = S->bank->hash;
  h.model = fp;
  size_t nd = (size_t)S->n_desc * S->D * sizeof(float), na = (size_t)S->n_anch * S->D * sizeof(float);
  uint64_t k = sd_fnv1a64(S->desc, nd, SD_FNV1A64_INIT);
  k = sd_fnv1a64(S->anch, na, k);
  if ((rc = sd_atomic_write(&af, &h, sizeof h)) || (nd && (rc = sd_atomic_write(&af, S->desc, nd))) ||
      (na && (rc = sd_atomic_write(&af, S->anch, na))) || (rc = sd_atomic_write(&af, &k, sizeof k))) {
    sd_atomic_abort(&af);
    return rc;
  }
  return sd_atomic_commit(&af);
}

/* ------------------------------------------------------------------------------------- */
/* preparation                                                                             */

static int prepare_locked(semantic *S, const sd_semantic_encoder *enc) {
  uint64_t fp = sd_semantic_model_fingerprint(enc->model);
  if (S->ready && S->for_text == enc->text && S->for_fp == fp) return SD_OK;
  S->ready = 0;
  int D = sd_clip_text_cfg(enc->text)->hidden;
  free(S->desc);
  free(S->anch);
  S->desc = malloc(((size_t)S->n_desc + 1) * (size_t)D * sizeof(float));
  S->anch = malloc(((size_t)S->n_anch + 1) * (size_t)D * sizeof(float));
  if (!S->desc || !S->anch) return sd_fail(SD_E_NOMEM, "semantic detector: out of memory");
  S->D = D;
  char path[2200];
  int use_file = 0;
  if (fp) {
    if (S->cache_path) {
      snprintf(path, sizeof path, "%s", S->cache_path);
      use_file = S->cache_path[0] != 0;
    } else if (sd_semantic_default_cache(S->bank, fp, path, sizeof path) == SD_OK) {
      use_file = 1;
    } else {
      sd_clear_error();
    }
  }
  S->from_cache = use_file && cache_read(path, S, fp, D) == 0;
  if (!S->from_cache) {
    int rc;
    for (int i = 0; i < S->n_desc; i++)
      if ((rc = sd_semantic_embed(enc, S->desc_text[i], S->desc + (size_t)i * D)))
        return sd_fail_prefix(rc, "embedding concept description \"%.60s\": ", S->desc_text[i]);
    for (int i = 0; i < S->n_anch; i++)
      if ((rc = sd_semantic_embed(enc, S->anch_text[i], S->anch + (size_t)i * D)))
        return sd_fail_prefix(rc, "embedding safe anchor \"%.60s\": ", S->anch_text[i]);
    if (use_file && cache_write(path, S, fp)) sd_clear_error(); /* the cache is an optimisation */
  }
  S->for_text = enc->text;
  S->for_fp = fp;
  S->ready = 1;
  return SD_OK;
}


/* ------------------------------------------------------------------------------------- */
/* detection                                                                               */

static char *xstrdup(const char *s) {
  size_t n = strlen(s);
  char *r = malloc(n + 1);
  if (r) memcpy(r, s, n + 1);
  return r;
}

/* Locate token `pos` of the framed ids in the prompt (ASCII tokens only, case-insensitive,
 * searching forward token by token). 0 and the span when found, -1 otherwise. */
static int token_span(const sd_tokenizer *tok, const int32_t *ids, int pos, const char *prompt, size_t *s0,
                      size_t *s1) {
  size_t cur = 0, plen = strlen(prompt);
  for (int i = 1; i <= pos; i++) {
    const char *t = sd_tokenizer_token(tok, ids[i]);
    if (!t) return -1;
    char w[128];
    size_t n = strlen(t);
    if (n >= 4 && strcmp(t + n - 4, "</w>") == 0) n -= 4;
    if (n == 0 || n >= sizeof w) return -1;
    for (size_t k = 0; k < n; k++) {
      if ((unsigned char)t[k] >= 0x80) return -1;
      w[k] = (char)tolower((unsigned char)t[k]);
    }
    w[n] = 0;
    size_t found = (size_t)-1;
    for (size_t a = cur; a + n <= plen; a++) {
      size_t k = 0;
      while (k < n && tolower((unsigned char)prompt[a + k]) == w[k]) k++;
      if (k == n) {
        found = a;
        break;
      }
    }
    if (found == (size_t)-1) return -1;
    if (i == pos) {
      *s0 = found;
      *s1 = found + n;
      return 0;
    }
    cur = found + n;
  }
  return -1;
}

/* The scores of one text: per category the best (pooled or token) cosine with its
 * descriptions, which description and which token (-1 = the pooled prompt), and the anchors'
 * best cosine with the pooled prompt. */
typedef struct {
  float pos[SD_BANK_MAX_CATEGORIES], neg;
  int best_desc[SD_BANK_MAX_CATEGORIES], best_tok[SD_BANK_MAX_CATEGORIES], best_anch;
  int32_t *ids;
  int n;
} sem_scores;

/* Function words that carry no concept: their token states are not scored on their own. */
static const char *const k_stopwords[] = {
    "the", "and", "for", "with", "from", "into", "onto", "over", "under", "this", "that", "these", "those", "his",
    "her", "its", "their", "our", "your", "are", "was", "were", "been", "being", "has", "have", "had", "not", "but",
    "very", "some", "any", "all", "one", "two", "who", "whom", "which", "what", "while", "when", "where", "there",
    "here", "than", "then", "also", "just", "out", "off", "per", "via", "about", "above", "below", "between"};

/* Which framed positions 1..n-1 are scored at token level: the last token of a word of at
 * least 3 letters that is not a function word (so a sub-word piece — "ka" of "kaboom" — or
 * "a", "be", "of" never matches a concept on its own), and EOS (the whole prompt's state). */
static void content_tokens(const sd_tokenizer *tok, const int32_t *ids, int n, char *content) {
  char w[256];
  size_t wl = 0;
  int letters = 0;
  for (int t = 1; t < n; t++) {
    content[t] = 0;
    if (t == n - 1) { /* EOS */
      content[t] = 1;
      break;
    }
    const char *ts = sd_tokenizer_token(tok, ids[t]);
    size_t l = ts ? strlen(ts) : 0;
    int final = l >= 4 && !strcmp(ts + l - 4, "</w>");
    if (final) l -= 4;
    for (size_t k = 0; k < l; k++) {
      if (wl + 1 < sizeof w) w[wl++] = ts[k];
      letters += isalpha((unsigned char)ts[k]) || (unsigned char)ts[k] >= 0x80;
    }
    if (!final) continue;
    w[wl] = 0;
    int stop = 0;
    for (size_t k = 0; k < sizeof k_stopwords / sizeof *k_stopwords && !stop; k++) stop = !strcmp(w, k_stopwords[k]);
    content[t] = letters >= 3 && !stop;
    wl = 0;
    letters = 0;
  }
}

static int score_text(const semantic *S, const sd_semantic_encoder *enc, const char *text, sem_scores *r) {
  const int D = S->D;
  float *h = NULL, *p = NULL;
  int rc = encode_states(enc, text, &h, &r->ids, &r->n);
  if (rc) return rc;
  const int n = r->n;
  if (!(p = malloc((size_t)D * sizeof *p))) {
    free(h);
    return sd_fail(SD_E_NOMEM, "semantic detector: out of memory");
  }
  mean_pool(h, n, D, p);
  for (int i = 0; i < n; i++) l2norm(h + (size_t)i * D, D); /* token states, in place */
  char content[SD_CLIP_CONTEXT + 1];
  content_tokens(enc->tok, r->ids, n < SD_CLIP_CONTEXT ? n : SD_CLIP_CONTEXT, content);
  r->neg = 0;
  r->best_anch = -1;
  for (int a = 0; a < S->n_anch; a++) {
    float c = dot(p, S->anch + (size_t)a * D, D);
    if (r->best_anch < 0 || c > r->neg) {
      r->neg = c;
      r->best_anch = a;
    }
  }
  for (int c = 0; c < S->bank->n_cats; c++) {
    r->pos[c] = -INFINITY;
    r->best_desc[c] = -1;
    r->best_tok[c] = -1;
  }
  for (int i = 0; i < S->n_desc; i++) {
    const float *e = S->desc + (size_t)i * D;
    int c = S->desc_cat[i];
    float v = dot(p, e, D);
    if (v > r->pos[c]) {
      r->pos[c] = v;
      r->best_desc[c] = i;
      r->best_tok[c] = -1;
    }
    if (S->token_level)
      for (int t = 1; t < n && t < SD_CLIP_CONTEXT; t++) {
        if (!content[t]) continue;
        float u = dot(h + (size_t)t * D, e, D);
        if (u > r->pos[c]) {
          r->pos[c] = u;
          r->best_desc[c] = i;
          r->best_tok[c] = t;
        }
      }
  }
  free(h);
  free(p);
  return SD_OK;
}

static float cat_score(const sem_scores *r, int c) { return r->best_desc[c] < 0 ? -2.0f : r->pos[c] - r->neg; }

/* Widen [*s0, *s1) to the whole word around it: a word is a run of bytes other than ASCII
 * space and comma; its leading and trailing ASCII punctuation are left out. */
static void word_around(const char *prompt, size_t plen, size_t *s0, size_t *s1) {
  size_t a = *s0, b = *s1;
  while (a > 0 && prompt[a - 1] != ' ' && prompt[a - 1] != ',' && !isspace((unsigned char)prompt[a - 1])) a--;
  while (b < plen && prompt[b] != ' ' && prompt[b] != ',' && !isspace((unsigned char)prompt[b])) b++;
  while (a < *s0 && ispunct((unsigned char)prompt[a])) a++;
  while (b > *s1 && ispunct((unsigned char)prompt[b - 1])) b--;
  *s0 = a;
  *s1 = b;
}

#define SEM_MAX_ATTRIB_WORDS 64

/* Leave-one-word-out attribution of category c's prompt-level score: the words of the
 * prompt without which its score falls below the threshold. Their spans go to spans[]
 * (at most SEM_MAX_ATTRIB_WORDS); *n = 0 when no single word carries the score, when most
 * words do (the prompt matched as a whole), or when the prompt has more words than that
 * bound: the evidence then stays unlocalised. */
static int attribute_words(const semantic *S, const sd_semantic_encoder *enc, const char *prompt, int c,
                           float threshold, size_t (*spans)[2], int *n) {
  size_t plen = strlen(prompt), w0[SEM_MAX_ATTRIB_WORDS], w1[SEM_MAX_ATTRIB_WORDS];
  int nw = 0, rc = SD_OK;
  *n = 0;
  for (size_t i = 0; i < plen;) {
    while (i < plen && (prompt[i] == ',' || isspace((unsigned char)prompt[i]))) i++;
    if (i >= plen) break;
    size_t a = i, b = i;
    word_around(prompt, plen, &a, &b);
    size_t e = i;
    while (e < plen && prompt[e] != ',' && !isspace((unsigned char)prompt[e])) e++;
    i = e;
    if (a >= b) continue; /* punctuation only */
    if (nw == SEM_MAX_ATTRIB_WORDS) return SD_OK;
    w0[nw] = a;
    w1[nw++] = b;
  }
  if (nw < 2) return SD_OK; /* one word: the prompt-level match is that word (the caller's span) */
  char *t = malloc(plen + 1);
  if (!t) return sd_fail(SD_E_NOMEM, "semantic detector: out of memory");
  for (int k = 0; k < nw && !rc; k++) {
    memcpy(t, prompt, w0[k]);
    memcpy(t + w0[k], prompt + w1[k], plen - w1[k] + 1);
    sem_scores r = {0};
    if (!(rc = score_text(S, enc, t, &r)) && !(cat_score(&r, c) >= threshold)) {
      spans[*n][0] = w0[k];
      spans[*n][1] = w1[k];
      (*n)++;
    }
    free(r.ids);
  }
  free(t);
  if (*n * 2 > nw) *n = 0; /* most words carry it: the prompt as a whole matched, not a word */
  return rc;
}

static int add_evidence(sd_detection *out, int c, const char *prompt, size_t s0, size_t s1, const char *term,
                        const char *via, int token) {
  sd_evidence *ne = realloc(out->ev, (size_t)(out->n_ev + 1) * sizeof *ne);
  if (!ne) return sd_fail(SD_E_NOMEM, "semantic detector: out of memory");
  out->ev = ne;
  sd_evidence *e = &out->ev[out->n_ev++];
  memset(e, 0, sizeof *e);
  e->category = c;
  e->start = s0;
  e->end = s1;
  e->token = token;
  e->matched = malloc(s1 - s0 + 1);
  if (e->matched) {
    memcpy(e->matched, prompt + s0, s1 - s0);
    e->matched[s1 - s0] = 0;
  }
  e->term = xstrdup(term);
  e->via = xstrdup(via);
  if (!e->matched || !e->term || !e->via) return sd_fail(SD_E_NOMEM, "semantic detector: out of memory");
  return SD_OK;
}

static int sem_detect(sd_detector *d, const char *prompt, const void *encoder, float threshold, sd_detection *out) {
  semantic *S = d->impl;
  const sd_semantic_encoder *enc = encoder;
  int rc = enc_check(enc);
  if (rc) return rc;
  pthread_mutex_lock(&S->mu);
  rc = prepare_locked(S, enc);
  pthread_mutex_unlock(&S->mu);
  if (rc) return rc;
  sem_scores r = {0};
  if ((rc = score_text(S, enc, prompt, &r))) return rc;
  size_t plen = strlen(prompt);
  out->score = -2.0f;
  for (int c = 0; c < S->bank->n_cats && !rc; c++) {
    float s = cat_score(&r, c);
    out->cat_score[c] = s;
    if (s > out->score) out->score = s;
    if (r.best_desc[c] < 0 || !(s >= threshold)) continue;
    out->categories |= 1u << c;
    char via[512];
    const char *anch = r.best_anch >= 0 ? S->anch_text[r.best_anch] : "";
    const char *term = S->desc_text[r.best_desc[c]];
    if (r.best_tok[c] >= 0 && r.best_tok[c] < r.n - 1) {
      /* a word's token matched: the evidence is the whole word that holds it */
      int t = r.best_tok[c];
      const char *ts = sd_tokenizer_token(enc->tok, r.ids[t]);
      size_t s0 = 0, s1 = 0;
      if (token_span(enc->tok, r.ids, t, prompt, &s0, &s1) == 0) word_around(prompt, plen, &s0, &s1);
      else s0 = s1 = 0;
      snprintf(via, sizeof via, "token %d '%s' cos=%.4f, anchor cos=%.4f ('%.80s')", t, ts ? ts : "?",
               (double)r.pos[c], (double)r.neg, anch);
      rc = add_evidence(out, c, prompt, s0, s1, term, via, t);
      continue;
    }
    /* the pooled prompt (or EOS, its last state) matched: localise by leaving one word out
     * at a time */
    size_t spans[SEM_MAX_ATTRIB_WORDS][2];
    int ns = 0;
    if ((rc = attribute_words(S, enc, prompt, c, threshold, spans, &ns))) break;
    if (ns == 0) {
      size_t a = 0, b = plen; /* a one-word prompt is that word; else not localised */
      word_around(prompt, plen, &a, &b);
      int one = a < b && !memchr(prompt + a, ' ', b - a) && !memchr(prompt + a, ',', b - a);
      snprintf(via, sizeof via, "prompt cos=%.4f, anchor cos=%.4f ('%.80s')%s", (double)r.pos[c], (double)r.neg,
               anch, one ? "" : "; no single word carries it: not localised");
      rc = add_evidence(out, c, prompt, one ? a : 0, one ? b : 0, term, via, 0);
      continue;
    }
    for (int k = 0; k < ns && !rc; k++) {
      snprintf(via, sizeof via, "prompt cos=%.4f, anchor cos=%.4f ('%.80s'); below the threshold without it",
               (double)r.pos[c], (double)r.neg, anch);
      rc = add_evidence(out, c, prompt, spans[k][0], spans[k][1], term, via, 0);
    }
  }
  free(r.ids);
  out->fired = out->categories != 0;
  return rc;
}

static void sem_destroy(sd_detector *d) {
  semantic *S = d->impl;
  if (S) {
    pthread_mutex_destroy(&S->mu);
    free(S->cache_path);
    free(S->desc);
    free(S->anch);
    free(S->desc_cat);
    free(S->desc_text);
    free(S->anch_text);
    free(S);
  }
  free(d);
}

static const sd_detector_vtable sem_vt = {"semantic", sem_detect, sem_destroy};

int sd_semantic_prepare(sd_detector *d, const sd_semantic_encoder *enc) {
  if (!d || d->vt != &sem_vt) return sd_fail(SD_E_ARG, "sd_semantic_prepare: not a semantic detector");
  int rc = enc_check(enc);
  if (rc) return rc;
  semantic *S = d->impl;
  pthread_mutex_lock(&S->mu);
  rc = prepare_locked(S, enc);
  pthread_mutex_unlock(&S->mu);
  return rc;
}

int sd_semantic_concepts(sd_detector *d, const sd_semantic_encoder *enc, uint32_t cats, float **dirs,
                         const char ***texts, int *n, int *D) {
  if (!dirs || !texts || !n || !D) return sd_fail(SD_E_ARG, "sd_semantic_concepts: NULL argument");
  *dirs = NULL;
  *texts = NULL;
  *n = *D = 0;
  if (!d || d->vt != &sem_vt) return sd_fail(SD_E_ARG, "sd_semantic_concepts: not a semantic detector");
  int rc = enc_check(enc);
  if (rc) return rc;
  semantic *S = d->impl;
  pthread_mutex_lock(&S->mu);
  rc = prepare_locked(S, enc);
  int m = 0;
  if (!rc) {
    for (int i = 0; i < S->n_desc; i++) m += (cats >> S->desc_cat[i]) & 1;
    *dirs = malloc(((size_t)m + 1) * (size_t)S->D * sizeof **dirs);
    *texts = malloc(((size_t)m + 1) * sizeof **texts);
    if (!*dirs || !*texts) {
      rc = sd_fail(SD_E_NOMEM, "semantic detector: out of memory");
    } else {
      int j = 0;
      for (int i = 0; i < S->n_desc; i++)
        if ((cats >> S->desc_cat[i]) & 1) {
          memcpy(*dirs + (size_t)j * S->D, S->desc + (size_t)i * S->D, (size_t)S->D * sizeof **dirs);
          (*texts)[j++] = S->desc_text[i];
        }
      *n = m;
      *D = S->D;
    }
  }
  pthread_mutex_unlock(&S->mu);
  if (rc) {
    free(*dirs);
    free((void *)*texts);
    *dirs = NULL;
    *texts = NULL;
  }
  return rc;
}

int sd_semantic_from_cache(const sd_detector *d) {
  return d && d->vt == &sem_vt ? ((const semantic *)d->impl)->from_cache : 0;
}

int sd_semantic_create(const sd_bank *bank, const sd_semantic_options *opts, sd_detector **out) {
  if (!out) return sd_fail(SD_E_ARG, "sd_semantic_create: out is NULL");
  *out = NULL;
  if (!bank) return sd_fail(SD_E_ARG, "sd_semantic_create: bank is NULL");
  sd_detector *d = calloc(1, sizeof *d);
  semantic *S = calloc(1, sizeof *S);
  if (!d || !S) {
    free(d);
    free(S);
    return sd_fail(SD_E_NOMEM, "semantic detector: out of memory");
  }
  pthread_mutex_init(&S->mu, NULL);
  d->vt = &sem_vt;
  d->enabled = 1;
  d->threshold = SD_SEMANTIC_DEFAULT_THRESHOLD;
  d->impl = S;
  S->bank = bank;
  S->token_level = opts ? opts->token_level : 1;
  if (opts && opts->cache_path && !(S->cache_path = xstrdup(opts->cache_path))) {
    sem_destroy(d);
    return sd_fail(SD_E_NOMEM, "semantic detector: out of memory");
  }
  for (int c = 0; c < bank->n_cats; c++) {
    S->n_desc += bank->cats[c].descriptions.n;
    S->n_anch += bank->cats[c].anchors.n;
  }
  S->desc_cat = malloc(((size_t)S->n_desc + 1) * sizeof *S->desc_cat);
  S->desc_text = malloc(((size_t)S->n_desc + 1) * sizeof *S->desc_text);
  S->anch_text = malloc(((size_t)S->n_anch + 1) * sizeof *S->anch_text);
  if (!S->desc_cat || !S->desc_text || !S->anch_text) {
    sem_destroy(d);
    return sd_fail(SD_E_NOMEM, "semantic detector: out of memory");
  }
  int i = 0, j = 0;
  for (int c = 0; c < bank->n_cats; c++) {
    const sd_bank_category *k = &bank->cats[c];
    for (int m = 0; m < k->descriptions.n; m++, i++) {
      S->desc_cat[i] = c;
      S->desc_text[i] = k->descriptions.items[m];
    }
    for (int m = 0; m < k->anchors.n; m++) S->anch_text[j++] = k->anchors.items[m];
  }
  *out = d;
  return SD_OK;
}
