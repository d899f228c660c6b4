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
#include "text/tokenizer.h"
#include "api/api_internal.h"

_Static_assert((int)SAFESD_E_IO == (int)SD_E_IO && (int)SAFESD_E_INTERNAL == (int)SD_E_INTERNAL, "error codes");
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
    sd_model_open_opts oo = {config_dir};
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

const char *safesd_token_text(const safesd_tokenizer *t, int32_t id) {
  return t ? sd_tokenizer_token(t->tok, id) : NULL;
}

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
  sd_model_open_opts oo = {opts ? opts->config_dir : NULL};
  int threads = opts ? opts->n_threads : 0;
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
  /* bf16 where the CPU has it; elsewhere fp32 (the caller sees it in safesd_model_precision) */
  if (opts && opts->precision == SAFESD_PRECISION_BF16) (void)sd_exec_set_precision(m->ex, SD_PREC_BF16);
  /* a model folder may carry its own concept bank (the bundled model does) */
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    size_t n = strlen(path) + sizeof "/safety/concepts.bank";
    char *bank = malloc(n);
    if (!bank) {
      safesd_model_close(m);
      return sd_fail(SD_E_NOMEM, "out of memory");
    }
    snprintf(bank, n, "%s/safety/concepts.bank", path);
    if (stat(bank, &st) == 0 && S_ISREG(st.st_mode)) m->model_bank = bank;
    else free(bank);
  }
  *out = m;
  return SD_OK;
}

int safesd_bundled_model(char *path, size_t cap) {
  if (!path || !cap) return sd_fail(SD_E_ARG, "safesd_bundled_model: no buffer");
  return sd_bundled_model_dir(path, cap);
}

void safesd_model_close(safesd_model *m) {
  if (!m) return;
  sd_clip_text_free(m->text);
  sd_unet_free(m->unet);
  sd_vae_free(m->vae);
  if (m->last_gate) sd_api_gate_free(m->last_gate);
  free(m->last_gate);
  sd_detector_free(m->lexical);
  sd_detector_free(m->semantic);
  sd_bank_free(m->bank);
  free(m->bank_path);
  free(m->model_bank);
  sd_tokenizer_free(m->tok);
  sd_exec_destroy(m->ex);
  sd_model_close(m->src);
  free(m);
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
