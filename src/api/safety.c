/* The safety gate of the public API: named levels, the concept bank and the detectors that
 * decide whether a prompt takes the dual path, and `safesd_check`.
 *
 * A prompt no enabled detector flags is generated exactly as with safety off (the gate
 * returns "not flagged" and generate.c runs the plain loop). A flagged prompt gets the
 * safe text of the chosen strategy (safety/strategy.h) as e_s and the level's (λ, τ_gc).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "safesd.h"

#include "api/api_internal.h"
#include "core/error.h"
#include "io/fileio.h"
#include "safety/calibrate.h"
#include "safety/learned.h"
#include "safety/lexical.h"
#include "safety/semantic.h"
#include "safety/strategy.h"

/* Named levels → (λ, τ_gc). PROVISIONAL: chosen by reasoning about the method (more weight
 * on the safe stream and a shorter context phase as the level rises), not from measured
 * safety–preservation curves. They are the default bank's levels (SD checkpoints); a bank
 * with a measured [levels] section (safesd eval levels) overrides them for its model
 * (sd_api_level_params, docs/safety.md). */
static const struct { const char *name; float weight, context; } k_levels[] = {
    {"off", 0.0f, 0.0f}, {"low", 0.5f, 0.3f}, {"medium", 0.7f, 0.2f}, {"high", 0.85f, 0.1f}, {"max", 1.0f, 0.0f}};

int sd_api_safety_level(const char *name, float *weight, float *context) {
  const char *n = name ? name : "off";
  for (size_t i = 0; i < sizeof k_levels / sizeof *k_levels; i++)
    if (!strcmp(n, k_levels[i].name)) {
      *weight = k_levels[i].weight;
      *context = k_levels[i].context;
      return (int)i;
    }
  return sd_fail(SD_E_ARG, "unknown safety level '%s' (off, low, medium, high, max)", n);
}

static int need_detectors(safesd_model *m, const char *concepts);

int sd_api_level_params(safesd_model *m, const char *concepts, const char *level, sd_level_params *out) {
  memset(out, 0, sizeof *out);
  int lv = sd_api_safety_level(level, &out->weight, &out->context), rc;
  if (lv <= 0) return lv;
  if ((rc = need_detectors(m, concepts))) return rc;
  const sd_level *l = &m->bank->levels.l[lv - 1];
  if (l->set) {
    out->weight = l->weight;
    out->context = l->context;
    snprintf(out->strategy, sizeof out->strategy, "%s", l->strategy);
    snprintf(out->blend, sizeof out->blend, "%s", l->blend);
    out->from_bank = 1;
  }
  return lv;
}

void sd_api_drop_detectors(safesd_model *m) {
  sd_detector_free(m->lexical);
  sd_detector_free(m->semantic);
  sd_detector_free(m->learned);
  sd_bank_free(m->bank);
  sd_bank_free(m->own_bank);
  free(m->bank_path);
  m->lexical = NULL;
  m->semantic = NULL;
  m->learned = NULL;
  m->bank = NULL;
  m->own_bank = NULL;
  m->bank_path = NULL;
}

/* The bank in force and the lexical detector, cached on the model and rebuilt when another
 * bank is asked for. The own bank is `concepts`, else the model's safety/concepts.bank; it
 * adds to the bundled default bank (sd_bank_compose) unless its [bank] section says
 * `base = none`; with no own bank the default bank alone is in force. The lexical detector's
 * threshold comes from the bank's [thresholds] section when it has one (else its default, 1). */
static int need_detectors(safesd_model *m, const char *concepts) {
  if (!concepts) concepts = m->model_bank; /* the model's own bank, else the bundled default */
  const char *want = concepts ? concepts : "";
  if (m->bank && m->bank_path && !strcmp(m->bank_path, want)) return SD_OK;
  sd_api_drop_detectors(m);
  sd_bank *own = NULL, *base = NULL;
  int rc = concepts ? sd_bank_load(concepts, &own) : sd_bank_load_default(&base);
  if (!rc && own && own->base_default) {
    if (!(rc = sd_bank_load_default(&base)) && !(rc = sd_bank_compose(own, base, &m->bank))) m->own_bank = own;
    sd_bank_free(base);
    if (rc) sd_bank_free(own);
  } else if (!rc) {
    m->bank = own ? own : base;
  }
  if (rc) return sd_fail_prefix(rc, "concept bank: ");
  if ((rc = sd_lexical_create(m->bank, NULL, &m->lexical))) return rc;
  if ((rc = sd_calib_apply(&m->bank->thresholds, m->lexical, 0, 0)) < 0)
    return sd_fail_prefix(rc, "%s [thresholds]: ", m->bank->path);
  m->bank_path = strdup(want);
  return m->bank_path ? SD_OK : sd_fail(SD_E_NOMEM, "out of memory");
}

int sd_api_need_bank(safesd_model *m) { return need_detectors(m, NULL); }

void sd_api_gate_free(sd_gate *g) {
  for (int i = 0; i < g->n_det; i++) sd_detection_free(&g->det[i]);
  free(g->safe_text);
  free(g->summary);
  free(g->categories);
  free(g->proj_pos);
  for (int i = 0; i < g->n_proj; i++) free(g->proj_tok[i]);
  free(g->proj_tok);
  free((void *)g->proj_desc);
  free(g->basis);
  free(g->projection);
  free(g->beyond);
  free(g->visible);
  memset(g, 0, sizeof *g);
}

/* Parse a detector list: bit 0 lexical, bit 1 semantic, bit 2 learned. */
static int parse_detectors(const char *list, int *mask) {
  *mask = 0;
  const char *p = list ? list : "lexical";
  while (*p) {
    size_t n = strcspn(p, ",");
    if (n == 7 && !strncmp(p, "lexical", n)) *mask |= 1;
    else if (n == 8 && !strncmp(p, "semantic", n)) *mask |= 2;
    else if (n == 7 && !strncmp(p, "learned", n)) *mask |= 4;
    else return sd_fail(SD_E_ARG, "unknown detector list '%.64s' (lexical, semantic, learned, comma-separated)", list);
    p += n;
    if (*p == ',') p++;
  }
  return *mask ? SD_OK : sd_fail(SD_E_ARG, "no detector given");
}

/* The default detector list is the lexical detector, plus the semantic one when the bank
 * carries a semantic threshold calibrated for this very model (the bundled model's bank
 * does): a calibrated detector is on unless --detectors says otherwise. */
static int calibrated_semantic(const safesd_model *m) {
  if (!m->src || !m->bank) return 0;
  uint64_t fp = sd_semantic_model_fingerprint(m->src);
  for (int i = 0; i < m->bank->thresholds.n; i++) {
    const sd_calib_entry *e = &m->bank->thresholds.e[i];
    if (!strcmp(e->name, "semantic") && e->model && e->model == fp) return 1;
  }
  return 0;
}

/* The semantic detector (built on first use) and the encoder it runs with. */
static int need_semantic(safesd_model *m, sd_semantic_encoder *enc) {
  int rc;
  if (!m->src) return sd_fail(SD_E_ARG, "the semantic detector needs a model (its text encoder): give -m");
  if ((rc = sd_api_need_text(m))) return rc;
  if (!m->semantic && (rc = sd_semantic_create(m->own_bank ? m->own_bank : m->bank, NULL, &m->semantic))) return rc;
  *enc = (sd_semantic_encoder){m->tok, m->text, m->ex, sd_clip_text_cfg(m->text)->pad_id, m->src};
  return SD_OK;
}

/* The learned detector (safety/learned.h): the model folder's weights file, else the shipped
 * one. Its threshold: the bank's [thresholds] entry (refused when made for another weights
 * file), else the file's own calibrated threshold, else SD_LEARNED_DEFAULT_THRESHOLD. */
static int need_learned(safesd_model *m) {
  if (m->learned) return SD_OK;
  sd_learned_model *lm;
  int rc = m->model_learned ? sd_learned_load(m->model_learned, &lm) : sd_learned_load_default(&lm);
  if (rc || (rc = sd_learned_create(m->bank, lm, 1, &m->learned))) return rc;
  if ((rc = sd_calib_apply(&m->bank->thresholds, m->learned, 0, sd_learned_fingerprint(lm))) < 0) {
    sd_detector_free(m->learned);
    m->learned = NULL;
    return sd_fail_prefix(rc, "%s [thresholds] (recalibrate the learned detector): ", m->bank->path);
  }
  return SD_OK;
}

/* The default list holds the learned detector when its weights file is there (a missing one
 * leaves it out; a malformed one is an error), it is calibrated (its file carries a threshold,
 * or the bank's [thresholds] one) and the bank has at least one of its categories. */
static int default_learned(safesd_model *m) {
  char path[4096];
  if (!m->model_learned && sd_data_file(SD_LEARNED_FILE, path, sizeof path)) {
    sd_clear_error();
    return 0;
  }
  int rc = need_learned(m);
  if (rc) return rc;
  const sd_learned_model *lm = sd_learned_detector_model(m->learned);
  return sd_learned_n_mapped(m->learned) > 0 &&
         (!isnan(sd_learned_file_threshold(lm)) || sd_calib_find(&m->bank->thresholds, "learned"));
}

/* Threshold: the explicit one, else the bank's [thresholds] (made for this model), else the
 * default. */
static int run_semantic(safesd_model *m, const sd_gate_opts *o, const char *prompt, sd_detection *out) {
  sd_semantic_encoder enc;
  int rc = need_semantic(m, &enc);
  if (rc) return rc;
  if (!isnan(o->semantic_threshold)) {
    sd_detector_set_threshold(m->semantic, o->semantic_threshold);
  } else {
    sd_detector_set_threshold(m->semantic, SD_SEMANTIC_DEFAULT_THRESHOLD);
    if ((rc = sd_calib_apply(&m->bank->thresholds, m->semantic, 0, sd_semantic_model_fingerprint(m->src))) < 0)
      return sd_fail_prefix(rc, "%s [thresholds] (give a threshold to override it, or recalibrate): ",
                            m->bank->path);
  }
  return sd_detector_run(m->semantic, prompt, &enc, out);
}

/* The semantic detector on a text longer than the encoder's window (a prompt of several
 * chunks): run on each successive window of SD_PROMPT_CHUNK_TOKENS tokens, OR-combined (the
 * highest score per category, every window's evidence with its byte span moved to the
 * whole text's; token positions are kept for the first window only). */
static int run_semantic_windows(safesd_model *m, const sd_gate_opts *o, const char *text, sd_detection *out) {
  size_t len = strlen(text), at = 0, cut = 0, ntok = 0;
  int rc = sd_window_cut(m->tok, text, SD_PROMPT_CHUNK_TOKENS, &cut, &ntok);
  if (rc) return rc;
  if (ntok <= SD_PROMPT_CHUNK_TOKENS) return run_semantic(m, o, text, out);
  char *win = malloc(len + 1);
  if (!win) return sd_fail(SD_E_NOMEM, "out of memory");
  for (int k = 0; at < len && !rc; k++) {
    if ((rc = sd_window_cut(m->tok, text + at, SD_PROMPT_CHUNK_TOKENS, &cut, NULL))) break;
    if (cut == 0) cut = len - at;
    memcpy(win, text + at, cut);
    win[cut] = 0;
    sd_detection d;
    if ((rc = run_semantic(m, o, win, &d))) break;
    if (k == 0) {
      *out = d;
    } else {
      sd_evidence *ev = realloc(out->ev, sizeof *ev * (size_t)(out->n_ev + d.n_ev + 1));
      if (!ev) {
        sd_detection_free(&d);
        rc = sd_fail(SD_E_NOMEM, "out of memory");
        break;
      }
      out->ev = ev;
      for (int i = 0; i < d.n_ev; i++) {
        sd_evidence e = d.ev[i];
        e.start += at;
        e.end += at;
        e.token = 0;
        out->ev[out->n_ev++] = e;
      }
      free(d.ev); /* its strings moved to out */
      for (int c = 0; c < 32; c++)
        if (d.cat_score[c] > out->cat_score[c]) out->cat_score[c] = d.cat_score[c];
      if (d.score > out->score) out->score = d.score;
      out->categories |= d.categories;
      out->fired = out->categories != 0;
    }
    at += cut;
  }
  free(win);
  if (rc) sd_detection_free(out);
  return rc;
}

static char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *r = malloc(n);
  if (r) memcpy(r, s, n);
  return r;
}

/* Strategy `project` for a flagged prompt: the token positions to move, the concept
 * descriptions of the fired categories and (with a text encoder at hand) the orthonormal
 * basis of their embeddings; and the one-line summary. Without a model (safesd check) the
 * positions come from the bundled tokenizer and the basis is not computed. */
static int gate_project(safesd_model *m, const char *prompt, uint32_t cats, sd_gate *g) {
  int rc;
  float *dirs = NULL;
  g->project = 1;
  g->rank = -1;
  if ((rc = m->src ? sd_api_need_text(m) : sd_api_need_tokenizer(m))) return rc;
  const sd_tokenizer *tok = m->tok;
  int32_t ids[SD_CLIP_CONTEXT];
  int32_t pad = m->text ? sd_clip_text_cfg(m->text)->pad_id : sd_tokenizer_eos(tok);
  if ((rc = sd_tokenize_prompt(tok, prompt, pad, SD_CLIP_CONTEXT, ids)) < 0 ||
      (rc = sd_project_positions(tok, prompt, g->det, g->n_det, SD_CLIP_CONTEXT, &g->proj_pos, &g->n_proj)))
    goto done;
  if (!(g->proj_tok = calloc((size_t)g->n_proj + 1, sizeof *g->proj_tok))) {
    rc = sd_fail(SD_E_NOMEM, "out of memory");
    goto done;
  }
  for (int i = 0; i < g->n_proj; i++) {
    const char *t = sd_tokenizer_token(tok, ids[g->proj_pos[i]]);
    if (!(g->proj_tok[i] = xstrdup(t ? t : "?"))) {
      for (int j = 0; j < i; j++) free(g->proj_tok[j]);
      free(g->proj_tok);
      g->proj_tok = NULL;
      g->n_proj = 0;
      rc = sd_fail(SD_E_NOMEM, "out of memory");
      goto done;
    }
  }
  if (m->src) {
    sd_semantic_encoder enc;
    int nd = 0, D = 0;
    if ((rc = need_semantic(m, &enc)) ||
        (rc = sd_semantic_concepts(m->semantic, &enc, cats, &dirs, &g->proj_desc, &nd, &D)))
      goto done;
    g->n_desc = nd;
    g->D = D;
    if (!(g->basis = malloc(((size_t)nd + 1) * (size_t)D * sizeof *g->basis))) {
      rc = sd_fail(SD_E_NOMEM, "out of memory");
      goto done;
    }
    if ((rc = sd_orthonormal_basis(dirs, nd, D, SD_PROJECT_TOL, g->basis, &g->rank))) goto done;
  } else {
    int nd = 0;
    for (int c = 0; c < m->bank->n_cats; c++)
      if ((cats >> c) & 1) nd += m->bank->cats[c].descriptions.n;
    if (!(g->proj_desc = malloc(((size_t)nd + 1) * sizeof *g->proj_desc))) {
      rc = sd_fail(SD_E_NOMEM, "out of memory");
      goto done;
    }
    for (int c = 0; c < m->bank->n_cats; c++)
      if ((cats >> c) & 1)
        for (int k = 0; k < m->bank->cats[c].descriptions.n; k++)
          g->proj_desc[g->n_desc++] = m->bank->cats[c].descriptions.items[k];
  }
  if (g->n_desc == 0) { /* nothing to project against: the caller appends the contexts instead */
    rc = 1;
    goto done;
  }
  /* "projected tokens 5 'bloody</w>', 6 'knife</w>' against 3 concept descriptions of
   * violence (rank 3)" */
  size_t cap = 256 + strlen(g->categories);
  for (int i = 0; i < g->n_proj; i++) cap += strlen(g->proj_tok[i]) + 16;
  if (!(g->projection = malloc(cap))) {
    rc = sd_fail(SD_E_NOMEM, "out of memory");
    goto done;
  }
  size_t o = 0;
  if (g->n_proj == 0)
    o += (size_t)snprintf(g->projection + o, cap - o, "no flagged token among the %d the encoder sees",
                          SD_CLIP_CONTEXT - 2);
  else
    o += (size_t)snprintf(g->projection + o, cap - o, "projected token%s", g->n_proj > 1 ? "s" : "");
  for (int i = 0; i < g->n_proj; i++)
    o += (size_t)snprintf(g->projection + o, cap - o, "%s %d '%s'", i ? "," : "", g->proj_pos[i], g->proj_tok[i]);
  o += (size_t)snprintf(g->projection + o, cap - o, " against %d concept description%s of %s", g->n_desc,
                        g->n_desc > 1 ? "s" : "", g->categories);
  if (g->rank >= 0) snprintf(g->projection + o, cap - o, " (rank %d)", g->rank);
  else snprintf(g->projection + o, cap - o, " (directions not computed: they need the model's text encoder, -m)");
  rc = SD_OK;
done:
  free(dirs);
  return rc;
}

/* The word tokens the text encoder sees (77 positions less BOS and EOS for SD's). */
static int encoder_room(const safesd_model *m) {
  int ctx = SD_CLIP_CONTEXT;
  const sd_clip_text_config *c = m->src ? sd_model_text_config(m->src) : NULL;
  if (c && c->max_positions < ctx) ctx = c->max_positions;
  return ctx > 2 ? ctx - 2 : 1;
}

/* The detectors judge exactly the text the encoder sees: the prompt up to the end of the
 * word that holds its last token in the window (safety/strategy.h: sd_window_cut); what
 * lies beyond is kept for the report. *win is malloc'ed. */
static int gate_window(safesd_model *m, const char *prompt, sd_gate *g, char **win) {
  size_t cut = 0;
  int rc = sd_api_need_tokenizer(m);
  if (rc || (rc = sd_window_cut(m->tok, prompt, encoder_room(m), &cut, NULL))) return rc;
  g->window = cut;
  if (!(*win = malloc(cut + 1))) return sd_fail(SD_E_NOMEM, "out of memory");
  memcpy(*win, prompt, cut);
  (*win)[cut] = 0;
  const char *b = prompt + cut;
  while (*b == ' ' || *b == ',' || *b == '\t' || *b == '\n' || *b == '\r') b++;
  if (*b && !(g->beyond = xstrdup(b))) return sd_fail(SD_E_NOMEM, "out of memory");
  return SD_OK;
}

/* The a1111 syntax: the detectors judge the prompt's visible text (text/prompt.h), every chunk
 * of it; a prompt over the chunk limit is an error. *trivial: the prompt is one unweighted
 * chunk whose visible text the encoder sees as one text (the project strategy's positions
 * apply). *win is malloc'ed. */
static int gate_visible(safesd_model *m, const char *prompt, sd_gate *g, char **win, int *trivial) {
  sd_prompt_parsed pp;
  sd_prompt_chunks c;
  int rc = sd_api_need_tokenizer(m);
  if (rc || (rc = sd_prompt_parse(prompt, SD_SYNTAX_A1111, &pp))) return rc ? sd_fail_prefix(rc, "the prompt: ") : rc;
  if (!(rc = sd_prompt_chunk(m->tok, &pp, SD_SYNTAX_A1111, sd_tokenizer_eos(m->tok), SD_PROMPT_MAX_CHUNKS,
                             "the prompt", &c))) {
    *trivial = pp.n == 1 && !pp.weighted && c.n == 1;
    sd_prompt_chunks_free(&c);
    g->window = strlen(pp.visible);
    if (strcmp(pp.visible, prompt) && !(g->visible = xstrdup(pp.visible))) rc = sd_fail(SD_E_NOMEM, "out of memory");
    *win = pp.visible; /* moved */
    pp.visible = NULL;
  }
  sd_prompt_parsed_free(&pp);
  return rc;
}

/* The safe text of a prompt of several chunks: fitted to the chunk limit (the token room of
 * SD_PROMPT_MAX_CHUNKS chunks, less where commas cut chunks early). */
static int fit_chunked(safesd_model *m, const char *win, const sd_gate *g, sd_strategy st, char **out) {
  int room = SD_PROMPT_CHUNK_TOKENS * SD_PROMPT_MAX_CHUNKS, rc;
  for (;;) {
    if ((rc = sd_safety_text_fit(m->bank, win, g->det, g->n_det, st, m->tok, room, out))) return rc;
    sd_prompt_chunks c;
    rc = sd_prompt_tokenize(m->tok, *out, SD_SYNTAX_CHUNKED, sd_tokenizer_eos(m->tok), NULL, &c);
    sd_prompt_chunks_free(&c);
    if (rc != SD_E_ARG || room <= SD_PROMPT_COMMA_BACKTRACK) return rc;
    sd_clear_error();
    free(*out);
    *out = NULL;
    room -= SD_PROMPT_COMMA_BACKTRACK;
  }
}

/* The prompt's LoRA names (sd_gate_opts.lora_names) judged by the lexical and learned
 * detectors of mask: a LoRA changes the weights, and its name is often what it draws. The
 * names are not in the text the encoder sees, so their evidence has no span in the prompt
 * (start = end = 0): the safe text appends the fired categories' contexts for it and deletes
 * nothing; `via` says "lora name". */
static int gate_lora_names(safesd_model *m, const char *names, int mask, sd_gate *g) {
  static const char *const label[2] = {"lexical (LoRA names)", "learned (LoRA names)"};
  for (int d = 0; d < 2; d++) {
    sd_detector *det = d == 0 ? m->lexical : m->learned;
    if (!(mask & (d == 0 ? 1 : 4)) || !det) continue;
    sd_detection *x = &g->det[g->n_det++];
    int rc = sd_detector_run(det, names, NULL, x);
    if (rc) return rc;
    x->detector = label[d];
    for (int i = 0; i < x->n_ev; i++) {
      sd_evidence *e = &x->ev[i];
      e->start = e->end = 0;
      e->token = 0;
      size_t len = strlen("lora name") + (e->via ? strlen(e->via) + 2 : 0) + 1;
      char *via = malloc(len);
      if (!via) return sd_fail(SD_E_NOMEM, "out of memory");
      snprintf(via, len, "lora name%s%s", e->via ? ", " : "", e->via ? e->via : "");
      free(e->via);
      e->via = via;
    }
  }
  return SD_OK;
}

int sd_api_safety_gate(safesd_model *m, const sd_gate_opts *o, const char *prompt, sd_gate *g) {
  memset(g, 0, sizeof *g);
  sd_prompt_syntax syn;
  int trivial = 1;
  int strat = sd_strategy_parse(o->strategy ? o->strategy : "substitute+append"), mask, rc;
  if (strat < 0) return sd_fail(SD_E_ARG, "unknown safety strategy '%s' (" SD_STRATEGY_NAMES ")", o->strategy);
  g->strategy = sd_strategy_name((sd_strategy)strat);
  if ((rc = sd_prompt_syntax_parse(o->prompt_syntax, &syn)) || (rc = parse_detectors(o->detectors, &mask)) ||
      (rc = need_detectors(m, o->concepts)))
    return rc;
  const int a1111 = syn != SD_SYNTAX_PLAIN;
  g->banks = m->bank->sources ? m->bank->sources : m->bank->path;
  if (!o->detectors && calibrated_semantic(m)) mask |= 2;
  if (!o->detectors && (rc = default_learned(m)) != 0) {
    if (rc < 0) return rc;
    mask |= 4;
  }
  char *win = NULL;
  if ((rc = a1111 ? gate_visible(m, prompt, g, &win, &trivial) : gate_window(m, prompt, g, &win))) goto fail;
  if ((mask & 1) && (rc = sd_detector_run(m->lexical, win, NULL, &g->det[g->n_det++]))) goto fail;
  if ((mask & 2) && (rc = (a1111 ? run_semantic_windows : run_semantic)(m, o, win, &g->det[g->n_det++]))) goto fail;
  if ((mask & 4) && ((rc = need_learned(m)) || (rc = sd_detector_run(m->learned, win, NULL, &g->det[g->n_det++]))))
    goto fail;
  if (o->lora_names && *o->lora_names && (rc = gate_lora_names(m, o->lora_names, mask, g))) goto fail;
  uint32_t cats = 0;
  size_t cap = 1;
  for (int i = 0; i < g->n_det; i++) cats |= g->det[i].categories;
  g->flagged = cats != 0;
  for (int c = 0; c < m->bank->n_cats; c++) cap += strlen(m->bank->cats[c].name) + 2;
  g->categories = calloc(cap, 1);
  if (!g->categories) { rc = sd_fail(SD_E_NOMEM, "out of memory"); goto fail; }
  for (int c = 0; c < m->bank->n_cats; c++)
    if (cats & (1u << c)) {
      if (*g->categories) strcat(g->categories, ", ");
      strcat(g->categories, m->bank->cats[c].name);
    }
  for (int i = 0; i < g->n_det; i++) {
    char *one = sd_detection_summary(m->bank, &g->det[i]);
    size_t len = (g->summary ? strlen(g->summary) + 2 : 0) + (one ? strlen(one) : 0) + 1;
    char *joined = one ? malloc(len) : NULL;
    if (joined) snprintf(joined, len, "%s%s%s", g->summary ? g->summary : "", g->summary ? "; " : "", one);
    free(one);
    free(g->summary);
    g->summary = joined;
    if (!joined) { rc = sd_fail(SD_E_NOMEM, "out of memory"); goto fail; }
  }
  /* the project strategy moves token positions of one plain window: a prompt with weights,
   * BREAKs or several chunks gets substitute+append instead, and the report says so */
  if (g->flagged && strat == SD_STRATEGY_PROJECT && !trivial) {
    strat = SD_STRATEGY_SUBSTITUTE_APPEND;
    g->strategy = "substitute+append (project: not for a prompt with weights, BREAK or several chunks)";
  }
  /* the safe text is built from the window and fits it, contexts included (strategy.h); for
   * the a1111 syntax, from the visible text, within the chunk limit */
  if (g->flagged && (rc = a1111 ? fit_chunked(m, win, g, (sd_strategy)strat, &g->safe_text)
                                : sd_safety_text_fit(m->bank, win, g->det, g->n_det, (sd_strategy)strat, m->tok,
                                                     encoder_room(m), &g->safe_text)))
    goto fail;
  if (g->flagged && strat == SD_STRATEGY_PROJECT && (rc = gate_project(m, win, cats, g)) < 0) goto fail;
  if (g->flagged && strat == SD_STRATEGY_PROJECT && rc == 1) {
    /* the fired categories have no concept directions (e.g. only the default bank's, for a
     * model whose own bank the semantic detector embeds): append their contexts instead, and
     * say so; never a silent no-op */
    free(g->safe_text);
    g->safe_text = NULL;
    free(g->projection);
    g->projection = NULL;
    g->project = 0;
    g->strategy = "append (project: no concept directions for the fired categories)";
    if ((rc = a1111 ? fit_chunked(m, win, g, SD_STRATEGY_APPEND, &g->safe_text)
                    : sd_safety_text_fit(m->bank, win, g->det, g->n_det, SD_STRATEGY_APPEND, m->tok, encoder_room(m),
                                         &g->safe_text)))
      goto fail;
  }
  free(win);
  return SD_OK;
fail:
  free(win);
  sd_api_gate_free(g);
  return rc;
}

json_t *sd_api_projection_json(const sd_gate *g) {
  if (!g || !g->project) return json_null();
  json_t *o = json_object(), *pos = json_array(), *tok = json_array(), *desc = json_array();
  for (int i = 0; i < g->n_proj; i++) {
    json_array_append_new(pos, json_integer(g->proj_pos[i]));
    json_array_append_new(tok, json_string(g->proj_tok[i]));
  }
  for (int i = 0; i < g->n_desc; i++) json_array_append_new(desc, json_string(g->proj_desc[i]));
  json_object_set_new(o, "positions", pos);
  json_object_set_new(o, "tokens", tok);
  json_object_set_new(o, "categories", json_string(g->categories));
  json_object_set_new(o, "descriptions", desc);
  json_object_set_new(o, "rank", g->rank >= 0 ? json_integer(g->rank) : json_null());
  json_object_set_new(o, "summary", json_string(g->projection ? g->projection : ""));
  return o;
}

int safesd_check(safesd_model *model, const char *prompt, const char *concepts, const char *strategy,
                 const char *detectors, float semantic_threshold, int as_json, FILE *out) {
  return safesd_check_ex(model, prompt, NULL, concepts, strategy, detectors, semantic_threshold, as_json, out);
}

int safesd_check_ex(safesd_model *model, const char *prompt, const char *prompt_syntax, const char *concepts,
                    const char *strategy, const char *detectors, float semantic_threshold, int as_json, FILE *out) {
  if (!prompt) return sd_fail(SD_E_ARG, "no prompt given");
  if (sd_text_check_utf8("the prompt", prompt)) return SD_E_ARG;
  safesd_model tmp;
  memset(&tmp, 0, sizeof tmp);
  safesd_model *m = model ? model : &tmp; /* the lexical detector needs no weights */
  sd_gate g;
  /* <lora:...> tags leave the text as in generation; their names are judged on their own */
  char *text = NULL, *loras = NULL;
  int rc = sd_api_lora_split(prompt, &text, &loras);
  if (rc) return rc;
  sd_gate_opts go = {concepts, strategy, detectors, semantic_threshold, prompt_syntax, loras};
  rc = sd_api_safety_gate(m, &go, text, &g);
  if (rc == SD_OK) {
    if (as_json) {
      json_t *o = json_object(), *dets = json_array();
      json_object_set_new(o, "prompt", json_string(prompt));
      json_object_set_new(o, "flagged", json_boolean(g.flagged));
      json_object_set_new(o, "banks", json_string(g.banks));
      json_object_set_new(o, "beyond_window", g.beyond ? json_string(g.beyond) : json_null());
      json_object_set_new(o, "judged_text", g.visible ? json_string(g.visible) : json_null());
      json_object_set_new(o, "lora_names", loras ? json_string(loras) : json_null());
      json_object_set_new(o, "categories", json_string(g.categories));
      for (int k = 0; k < g.n_det; k++) {
        const sd_detection *dt = &g.det[k];
        json_t *d = json_object(), *ev = json_array();
        json_object_set_new(d, "detector", json_string(dt->detector));
        json_object_set_new(d, "fired", json_boolean(dt->fired));
        json_object_set_new(d, "score", json_real(dt->score));
        json_object_set_new(d, "threshold", json_real(dt->threshold));
        for (int i = 0; i < dt->n_ev; i++) {
          const sd_evidence *e = &dt->ev[i];
          json_t *x = json_object();
          json_object_set_new(x, "category", json_string(m->bank->cats[e->category].name));
          json_object_set_new(x, "matched", json_string(e->matched ? e->matched : ""));
          json_object_set_new(x, "term", json_string(e->term ? e->term : ""));
          json_object_set_new(x, "via", json_string(e->via ? e->via : ""));
          json_object_set_new(x, "start", json_integer((json_int_t)e->start));
          json_object_set_new(x, "end", json_integer((json_int_t)e->end));
          json_array_append_new(ev, x);
        }
        json_object_set_new(d, "evidence", ev);
        json_array_append_new(dets, d);
      }
      json_object_set_new(o, "detectors", dets);
      json_object_set_new(o, "strategy", json_string(g.strategy));
      json_object_set_new(o, "safe_text", g.safe_text ? json_string(g.safe_text) : json_null());
      json_object_set_new(o, "projection", sd_api_projection_json(&g));
      json_dumpf(o, out, (as_json == 2 ? JSON_COMPACT : JSON_INDENT(2)) | JSON_PRESERVE_ORDER);
      fputc('\n', out);
      json_decref(o);
    } else {
      fprintf(out, "verdict:    %s\n", g.flagged ? "FLAGGED" : "not flagged");
      if (g.flagged) fprintf(out, "categories: %s\n", g.categories);
      fprintf(out, "banks:      %s\n", g.banks);
      if (g.beyond) fprintf(out, "beyond the encoder's window (not judged): %s\n", g.beyond);
      if (g.visible) fprintf(out, "judged:     %s (the prompt without its syntax)\n", g.visible);
      if (loras) fprintf(out, "LoRA names: %s (judged too; not in the encoder's text)\n", loras);
      fprintf(out, "%s\n", g.summary);
      if (g.flagged) fprintf(out, "safe text (%s): %s\n", g.strategy, g.safe_text);
      if (g.projection) fprintf(out, "projection: %s\n", g.projection);
    }
  }
  sd_api_gate_free(&g);
  free(text);
  free(loras);
  if (m == &tmp) sd_api_drop_detectors(&tmp);
  return rc;
}

/* ---- calibrate ------------------------------------------------------------------------ */

/* Whether every score is a whole number (the lexical detector counts terms). */
static int all_integral(const float *a, int n) {
  for (int i = 0; i < n; i++)
    if (a[i] != floorf(a[i])) return 0;
  return 1;
}

static void print_rate(FILE *out, int k, int n) {
  char buf[64];
  snprintf(buf, sizeof buf, "%d/%d = %.1f%%", k, n, n ? 100.0 * k / n : 0.0);
  fprintf(out, "  %-20s", buf);
}

int safesd_calibrate(safesd_model *model, const safesd_calibrate_params *p, FILE *out) {
  if (!p || !p->unsafe_file || !p->benign_file) return sd_fail(SD_E_ARG, "calibrate: the unsafe and benign prompt files are needed");
  if (!(p->target_fpr >= 0 && p->target_fpr <= 1))
    return sd_fail(SD_E_ARG, "target false-positive rate %g is not in [0, 1]", p->target_fpr);
  /* the bank written: the one given, else the model's own (safety/concepts.bank) */
  const char *bank_file = p->concepts ? p->concepts : (model ? model->model_bank : NULL);
  if (p->write_bank && !bank_file)
    return sd_fail(SD_E_ARG, "writing the thresholds into the bank needs the bank file (--concepts FILE, or a "
                             "model with its own safety/concepts.bank); the bundled default bank is not "
                             "rewritten (copy it first)");
  int mask, rc;
  if ((rc = parse_detectors(p->detectors, &mask))) return rc;
  safesd_model tmp;
  memset(&tmp, 0, sizeof tmp);
  safesd_model *m = model ? model : &tmp;
  char **unsafe = NULL, **benign = NULL;
  int nu = 0, nb = 0, ne = 0;
  float *su = NULL, *sb = NULL;
  sd_calib_entry ent[SD_GATE_MAX_DETECTORS];
  if ((rc = sd_prompt_file_load(p->unsafe_file, &unsafe, &nu)) ||
      (rc = sd_prompt_file_load(p->benign_file, &benign, &nb)) || (rc = need_detectors(m, p->concepts)))
    goto done;
  su = malloc((size_t)nu * sizeof *su);
  sb = malloc((size_t)nb * sizeof *sb);
  if (!su || !sb) {
    rc = sd_fail(SD_E_NOMEM, "out of memory");
    goto done;
  }
  if (out)
    fprintf(out, "%d unsafe prompts (%s), %d benign prompts (%s), target FPR %g\n%-10s  %-12s  %-20s  %-20s\n", nu,
            p->unsafe_file, nb, p->benign_file, p->target_fpr, "detector", "threshold", "TPR on unsafe",
            "FPR on benign");
  for (int k = 0; k < 3; k++) {
    if (!((mask >> k) & 1)) continue;
    sd_detector *d = m->lexical;
    sd_semantic_encoder enc, *encp = NULL;
    uint64_t fp = 0;
    if (k == 1) {
      if ((rc = need_semantic(m, &enc))) goto done;
      d = m->semantic;
      encp = &enc;
      fp = sd_semantic_model_fingerprint(m->src);
    } else if (k == 2) {
      if ((rc = need_learned(m))) goto done;
      d = m->learned;
      fp = sd_learned_fingerprint(sd_learned_detector_model(d));
    }
    const char *name = d->vt->name;
    sd_calibration c;
    if ((rc = sd_detector_scores(d, encp, (const char *const *)unsafe, nu, su)) ||
        (rc = sd_detector_scores(d, encp, (const char *const *)benign, nb, sb))) {
      sd_fail_prefix(rc, "%s detector: ", name);
      goto done;
    }
    if ((rc = sd_calibrate(su, nu, sb, nb, p->target_fpr, &c))) goto done;
    /* whole-number scores: any threshold in (n - 1, n] selects the same prompts; write n */
    if (all_integral(su, nu) && all_integral(sb, nb)) c.threshold = ceilf(c.threshold);
    ent[ne++] = sd_calib_entry_make(name, &c, 0, fp);
    if (out) {
      fprintf(out, "%-10s  %-12.9g", name, (double)c.threshold);
      print_rate(out, c.n_tp, c.n_unsafe);
      print_rate(out, c.n_fp, c.n_benign);
      fputc('\n', out);
    }
  }
  if (p->out_file) {
    for (int i = 0; i < ne && !rc; i++) {
      sd_calib_entry e = ent[i];
      e.bank = m->bank->hash; /* a separate file says which bank the scores came from */
      rc = sd_calib_update(p->out_file, &e);
    }
    if (rc) goto done;
    if (out) fprintf(out, "wrote %s\n", p->out_file);
  }
  if (p->write_bank) {
    if ((rc = sd_bank_write_thresholds(bank_file, ent, ne))) goto done;
    sd_api_drop_detectors(m); /* the cached bank is stale now */
    if (out) fprintf(out, "wrote the [thresholds] section of %s\n", bank_file);
  }
done:
  sd_prompt_list_free(unsafe, nu);
  sd_prompt_list_free(benign, nb);
  free(su);
  free(sb);
  if (m == &tmp) sd_api_drop_detectors(&tmp);
  return rc;
}
