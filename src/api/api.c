/* The public API (include/safesd.h) on top of the internal modules. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>

#include "safesd.h"

#include "core/error.h"
#include "core/ops.h"
#include "io/fileio.h"
#include "models/clip_text.h"
#include "models/model_source.h"
#include "sampling/schedule.h"
#include "text/tokenizer.h"
#include "safety/learned.h"
#include "api/api_internal.h"
#include "models/taesd.h"

_Static_assert((int)SAFESD_E_IO == (int)SD_E_IO && (int)SAFESD_E_INTERNAL == (int)SD_E_INTERNAL &&
                   (int)SAFESD_E_CANCELLED == (int)SD_E_CANCELLED,
               "error codes");
_Static_assert(SAFESD_TOKENS == SD_CLIP_CONTEXT, "context length");

struct safesd_tokenizer {
  sd_tokenizer *tok;
};


const char *safesd_version(void) { return SAFESD_VERSION; }
const char *safesd_last_error(void) { return sd_errmsg(); }

static int open_tokenizer_for(const sd_model_source *src, sd_tokenizer **out) {
  const char *vocab = src ? sd_model_vocab_path(src) : NULL;
  const char *merges = src ? sd_model_merges_path(src) : NULL;
  if (vocab && merges) return sd_tokenizer_load_hf(vocab, merges, out);
  return sd_tokenizer_load_default(out);
}

int safesd_tokenizer_open(const char *model_path, safesd_tokenizer **out) {
  return safesd_tokenizer_open_ex(model_path, NULL, out);
}

int safesd_tokenizer_open_ex(const char *model_path, const char *config_dir, safesd_tokenizer **out) {
  *out = NULL;
  safesd_tokenizer *t = calloc(1, sizeof *t);
  if (!t) return sd_fail(SD_E_NOMEM, "out of memory");
  int rc;
  if (model_path) {
    sd_model_source *src;
    sd_model_open_opts oo = {config_dir, 1};
    if ((rc = sd_model_open_ex(model_path, &oo, &src))) { free(t); return rc; }
    rc = open_tokenizer_for(src, &t->tok);
    sd_model_close(src);
  } else {
    rc = sd_tokenizer_load_default(&t->tok);
  }
  if (rc) { free(t); return rc; }
  *out = t;
  return SD_OK;
}

void safesd_tokenizer_close(safesd_tokenizer *t) {
  if (!t) return;
  sd_tokenizer_free(t->tok);
  free(t);
}

int safesd_tokenize(const safesd_tokenizer *t, const char *prompt, int32_t pad_id,
                    int32_t ids[SAFESD_TOKENS]) {
  if (!t || !prompt) return sd_fail(SD_E_ARG, "tokenize: no tokenizer or no prompt");
  return sd_tokenize_prompt(t->tok, prompt, pad_id, SAFESD_TOKENS, ids);
}

int safesd_tokenize_bpe(const safesd_tokenizer *t, const char *text, int32_t **ids, size_t *n) {
  if (!t || !text || !ids || !n) return sd_fail(SD_E_ARG, "tokenize: NULL argument");
  return sd_tokenize(t->tok, text, strlen(text), ids, n);
}

const char *safesd_token_text(const safesd_tokenizer *t, int32_t id) {
  return t ? sd_tokenizer_token(t->tok, id) : NULL;
}

void safesd_process_init(char **argv) { sd_threads_setup(argv); }

#define SAFESD_SMALL_UNET_PARAMS 20000000 /* 20 M; SD 1.x has 860 M */

int safesd_model_open(const char *path, const safesd_model_options *opts, safesd_model **out) {
  *out = NULL;
  char bundled[4096];
  if (!path) {
    int rc = sd_bundled_model_dir(bundled, sizeof bundled);
    if (rc) return rc;
    path = bundled;
  }
  safesd_model *m = calloc(1, sizeof *m);
  if (!m) return sd_fail(SD_E_NOMEM, "out of memory");
  int rc;
  int threads = opts ? opts->n_threads : 0;
  /* the load's weight check on the threads the model will use (<= 0: all CPUs) */
  sd_model_open_opts oo = {opts ? opts->config_dir : NULL, threads > 0 ? threads : -1};
  if ((rc = sd_model_open_ex(path, &oo, &m->src)) == SD_OK && threads <= 0) {
    /* "all CPUs" by default, but one thread for a tiny UNet: there a second thread costs
     * more in synchronisation than it gains (bundled model, 50 steps: 2.4 s on 2 threads,
     * 1.5 s on 1) */
    const sd_component_weights *u = sd_model_weights(m->src, SD_COMP_UNET);
    if (u && u->present && u->n_params < SAFESD_SMALL_UNET_PARAMS) threads = 1;
  }
  if (rc || (rc = sd_exec_create(threads, &m->ex))) {
    safesd_model_close(m);
    return rc;
  }
  sd_model_attach(m->src, m->ex); /* kept packed weights drop their file pages */
  if (opts && opts->mem_budget > 0) m->ex->pack_budget = (int64_t)opts->mem_budget;
  /* bf16 where the CPU has it; elsewhere fp32 (the caller sees it in safesd_model_precision) */
  if (opts && opts->precision == SAFESD_PRECISION_BF16) (void)sd_exec_set_precision(m->ex, SD_PREC_BF16);
  if (opts && opts->taesd && (rc = sd_api_taesd_open(m, opts->taesd))) {
    safesd_model_close(m);
    return rc;
  }
  /* a model folder may carry its own concept bank (the bundled model does; model_source
   * found it, or refused one that cannot be read) */
  const char *bank = sd_model_bank_path(m->src);
  if (bank && !(m->model_bank = strdup(bank))) {
    safesd_model_close(m);
    return sd_fail(SD_E_NOMEM, "out of memory");
  }
  /* ... and its own learned detector (safety/learned.h) */
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    size_t n = strlen(path) + sizeof "/" SD_LEARNED_MODEL_FILE;
    char *learned = malloc(n);
    if (!learned) {
      safesd_model_close(m);
      return sd_fail(SD_E_NOMEM, "out of memory");
    }
    snprintf(learned, n, "%s/" SD_LEARNED_MODEL_FILE, path);
    if (stat(learned, &st) == 0 && S_ISREG(st.st_mode)) m->model_learned = learned;
    else free(learned);
  }
  *out = m;
  return SD_OK;
}

/* The TAESD decoder of the model options: its latents and upscale must be the model's. */
int sd_api_taesd_open(safesd_model *m, const char *path) {
  int rc = sd_taesd_open(path, &m->taesd);
  if (rc) return rc;
  const sd_vae_config *vc = sd_model_vae_config(m->src);
  const int zc = vc->latent_channels, f = 1 << (vc->n_levels > 0 ? vc->n_levels - 1 : 0);
  if (sd_taesd_latent_channels(m->taesd) != zc || sd_taesd_factor(m->taesd) != f)
    return sd_fail(SD_E_ARG, "TAESD %s decodes %d-channel latents %dx up; this model's are %d-channel, %dx", path,
                   sd_taesd_latent_channels(m->taesd), sd_taesd_factor(m->taesd), zc, f);
  return SD_OK;
}

int safesd_bundled_model(char *path, size_t cap) {
  if (!path || !cap) return sd_fail(SD_E_ARG, "safesd_bundled_model: no buffer");
  return sd_bundled_model_dir(path, cap);
}

void safesd_model_close(safesd_model *m) {
  if (!m) return;
  sd_api_lora_free(m);
  free(m->lora_names);
  sd_taesd_free(m->taesd);
  sd_clip_text_free(m->text);
  sd_unet_free(m->unet);
  sd_vae_free(m->vae);
  if (m->last_gate) sd_api_gate_free(m->last_gate);
  free(m->last_gate);
  sd_api_image_checks_free(m);
  sd_api_drop_detectors(m);
  free(m->model_bank);
  free(m->model_learned);
  sd_tokenizer_free(m->tok);
  sd_exec_destroy(m->ex);
  sd_model_close(m->src);
  free(m);
}

int safesd_gate_open(safesd_model **out) {
  if (!out) return sd_fail(SD_E_ARG, "safesd_gate_open: out is NULL");
  *out = calloc(1, sizeof **out);
  return *out ? SD_OK : sd_fail(SD_E_NOMEM, "out of memory");
}

int sd_api_need_tokenizer(safesd_model *m) {
  if (m->tok) return SD_OK;
  return m->src ? open_tokenizer_for(m->src, &m->tok) : sd_tokenizer_load_default(&m->tok);
}

int sd_api_model_check(safesd_model *m) {
  int rc;
  const int text = sd_model_text_config(m->src) != NULL, unet = sd_model_unet_config(m->src) != NULL;
  const int vae = sd_model_vae_config(m->src) != NULL;
  /* the builders of generate (sd_api_need_image_side), each for what the model has */
  if (text && (rc = sd_api_need_text(m))) return rc;
  if (unet && !m->unet && (rc = sd_unet_create(m->src, &m->unet))) return rc;
  if (vae && !m->vae && (rc = sd_vae_create(m->src, &m->vae))) return rc;
  sd_sched_config c;
  if (unet && (rc = sd_api_sched_config(m, NULL, NULL, &c))) return rc;
  if (m->model_bank && (rc = sd_api_need_bank(m))) return rc;
  return SD_OK;
}

/* The text side is built on first use, so opening a model for other work stays cheap. */
int sd_api_need_text(safesd_model *m) {
  int rc;
  if (!m->text && (rc = sd_clip_text_create(m->src, &m->text))) return rc;
  if (!m->tok && (rc = open_tokenizer_for(m->src, &m->tok))) return rc;
  return SD_OK;
}

int safesd_model_precision(const safesd_model *m) {
  return m->ex->precision == SD_PREC_BF16 ? SAFESD_PRECISION_BF16 : SAFESD_PRECISION_FP32;
}
const char *safesd_precision_name(int precision) {
  return precision == SAFESD_PRECISION_BF16 ? "bf16" : "fp32";
}
int safesd_cpu_has_bf16(void) { return sd_cpu_has_bf16(); }

int safesd_model_text_dim(const safesd_model *m) {
  const sd_clip_text_config *c = sd_model_text_config(m->src);
  return c ? c->hidden : 0;
}

int32_t safesd_model_pad_id(const safesd_model *m) {
  const sd_clip_text_config *c = sd_model_text_config(m->src);
  return c ? c->pad_id : 49407;
}

int safesd_encode_ids(safesd_model *m, const int32_t *ids, int n_seq, int clip_skip, float *out) {
  int rc = sd_api_need_text(m);
  if (rc) return rc;
  sd_clip_text_opts o = {clip_skip, 1};
  return sd_clip_text_encode(m->text, m->ex, ids, n_seq, SAFESD_TOKENS, &o, out);
}

int safesd_encode_prompt(safesd_model *m, const char *prompt, int clip_skip, float *out) {
  int rc = sd_api_need_text(m);
  if (rc) return rc;
  int32_t ids[SAFESD_TOKENS];
  rc = sd_tokenize_prompt(m->tok, prompt, safesd_model_pad_id(m), SAFESD_TOKENS, ids);
  if (rc < 0) return rc;
  return safesd_encode_ids(m, ids, 1, clip_skip, out);
}

int safesd_check_string(safesd_model *model, const char *prompt, const char *concepts, const char *strategy,
                        const char *detectors, float semantic_threshold, int as_json, char **out) {
  if (!out) return sd_fail(SD_E_ARG, "check: no output");
  *out = NULL;
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return sd_fail(SD_E_NOMEM, "out of memory");
  int rc = safesd_check(model, prompt, concepts, strategy, detectors, semantic_threshold, as_json, f);
  if (fclose(f) != 0 && rc == SD_OK) rc = sd_fail(SD_E_NOMEM, "out of memory");
  if (rc) {
    free(buf);
    return rc;
  }
  *out = buf;
  return SD_OK;
}

int safesd_safety_level(const char *name, float *weight, float *context) {
  float w, c;
  if (!name) return sd_fail(SD_E_ARG, "no safety level given");
  int rank = sd_api_safety_level(name, &w, &c);
  if (rank < 0) return rank;
  if (weight) *weight = w;
  if (context) *context = c;
  return rank;
}
