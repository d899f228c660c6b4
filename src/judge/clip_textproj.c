#include "judge/clip_textproj.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "io/json_util.h"
#include "io/safetensors.h"
#include "models/clip_text.h"
#include "models/model_source.h"
#include "text/tokenizer.h"

struct sd_clip_textproj {
  sd_model_source *src;
  sd_clip_text *text;
  sd_tokenizer *tok;
  sd_safetensors *st; /* the CLIP folder's weights (for text_projection) */
  float *proj;        /* [P, D] */
  int D, P;
  int32_t eos, pad;
};

void sd_clip_textproj_free(sd_clip_textproj *t) {
  if (!t) return;
  sd_clip_text_free(t->text);
  sd_model_close(t->src);
  sd_tokenizer_free(t->tok);
  sd_st_close(t->st);
  free(t->proj);
  free(t);
}

int sd_clip_textproj_dim(const sd_clip_textproj *t) { return t->P; }

static int write_text(const char *path, const char *s) {
  FILE *f = fopen(path, "wb");
  if (!f) return sd_fail(SD_E_IO, "cannot write %s: %s", path, strerror(errno));
  int bad = fputs(s, f) < 0;
  bad |= fclose(f) != 0;
  return bad ? sd_fail(SD_E_IO, "cannot write %s", path) : SD_OK;
}

int sd_clip_textproj_load(const char *clip_dir, const char *model_dir, sd_clip_textproj **out) {
  *out = NULL;
  char cfg[PATH_MAX], wfile[PATH_MAX], real_w[PATH_MAX], real_tok[PATH_MAX], tok_dir[PATH_MAX];
  snprintf(cfg, sizeof cfg, "%s/config.json", clip_dir);
  snprintf(wfile, sizeof wfile, "%s/model.safetensors", clip_dir);
  if (access(wfile, R_OK) != 0) snprintf(wfile, sizeof wfile, "%s/model.fp16.safetensors", clip_dir);
  if (access(wfile, R_OK) != 0) return sd_fail(SD_E_IO, "%s: no model.safetensors in the CLIP folder", clip_dir);
  if (!realpath(wfile, real_w)) return sd_fail(SD_E_IO, "%s: %s", wfile, strerror(errno));
  snprintf(tok_dir, sizeof tok_dir, "%s/tokenizer", model_dir);
  if (!realpath(tok_dir, real_tok)) return sd_fail(SD_E_IO, "%s: no tokenizer folder (%s)", model_dir, strerror(errno));

  json_t *root = NULL;
  int rc = sd_json_load_file(cfg, 1 << 20, &root);
  if (rc) return rc;
  json_t *tc = json_object_get(root, "text_config");
  if (!json_is_object(tc)) {
    json_decref(root);
    return sd_fail(SD_E_FORMAT, "%s: no \"text_config\" object (a two-tower CLIPModel config is needed)", cfg);
  }
  char *tc_text = json_dumps(tc, JSON_INDENT(1));
  json_decref(root);
  if (!tc_text) return sd_fail(SD_E_NOMEM, "out of memory");

  sd_clip_textproj *t = calloc(1, sizeof *t);
  if (!t) {
    free(tc_text);
    return sd_fail(SD_E_NOMEM, "out of memory");
  }
  const char *tmpbase = getenv("TMPDIR");
  char dir[1024], p_index[PATH_MAX], p_te[PATH_MAX], p_cfg[PATH_MAX], p_w[PATH_MAX], p_tok[PATH_MAX];
  if (!tmpbase || !*tmpbase || strlen(tmpbase) > 900) tmpbase = "/tmp";
  snprintf(dir, sizeof dir, "%s/safesd-cliptext.XXXXXX", tmpbase);
  if (!mkdtemp(dir)) {
    free(tc_text);
    free(t);
    return sd_fail(SD_E_IO, "cannot create a temporary folder in %s: %s", tmpbase, strerror(errno));
  }
  snprintf(p_index, sizeof p_index, "%s/model_index.json", dir);
  snprintf(p_te, sizeof p_te, "%s/text_encoder", dir);
  snprintf(p_cfg, sizeof p_cfg, "%s/text_encoder/config.json", dir);
  snprintf(p_w, sizeof p_w, "%s/text_encoder/model.safetensors", dir);
  snprintf(p_tok, sizeof p_tok, "%s/tokenizer", dir);
  if ((rc = write_text(p_index, "{\"_class_name\": \"CLIPTextModel\"}\n")) == SD_OK) {
    if (mkdir(p_te, 0700) != 0) rc = sd_fail(SD_E_IO, "cannot create %s: %s", p_te, strerror(errno));
  }
  if (rc == SD_OK) rc = write_text(p_cfg, tc_text);
  if (rc == SD_OK && (symlink(real_w, p_w) != 0 || symlink(real_tok, p_tok) != 0))
    rc = sd_fail(SD_E_IO, "cannot link into %s: %s", dir, strerror(errno));
  if (rc == SD_OK) rc = sd_model_open(dir, &t->src);
  if (rc == SD_OK) rc = sd_clip_text_create(t->src, &t->text);
  if (rc == SD_OK) {
    const char *v = sd_model_vocab_path(t->src), *m = sd_model_merges_path(t->src);
    rc = v && m ? sd_tokenizer_load_hf(v, m, &t->tok) : sd_fail(SD_E_FORMAT, "%s: no tokenizer files", model_dir);
  }
  unlink(p_index);
  unlink(p_cfg);
  unlink(p_w);
  unlink(p_tok);
  rmdir(p_te);
  rmdir(dir);
  free(tc_text);
  if (rc == SD_OK) rc = sd_st_open(wfile, &t->st);
  if (rc == SD_OK) {
    const sd_clip_text_config *c = sd_clip_text_cfg(t->text);
    t->D = c->hidden;
    t->eos = c->eos_id;
    t->pad = c->pad_id;
    const sd_st_entry *e = sd_st_find(t->st, "text_projection.weight");
    if (!e) rc = sd_fail(SD_E_FORMAT, "%s: tensor 'text_projection.weight' is missing", wfile);
    else {
      sd_tensor w = sd_st_tensor(e);
      if (w.ndim != 2 || w.shape[1] != t->D || w.shape[0] < 1 || w.shape[0] > 65536 ||
          (w.dtype != SD_F32 && w.dtype != SD_F16 && w.dtype != SD_BF16))
        rc = sd_fail(SD_E_FORMAT, "%s: text_projection.weight must be [P, %d] float", wfile, t->D);
      else if (!(t->proj = sd_weight_dup_f32(&w)))
        rc = sd_fail(SD_E_NOMEM, "out of memory");
      else
        t->P = (int)w.shape[0];
    }
  }
  if (rc) {
    sd_clip_textproj_free(t);
    return sd_fail_prefix(rc, "CLIP text tower of %s: ", clip_dir);
  }
  *out = t;
  return SD_OK;
}

int sd_clip_textproj_embed(sd_clip_textproj *t, sd_exec *ex, const char *const *texts, int n, float *out) {
  const int S = 77;
  const sd_clip_text_config *c = sd_clip_text_cfg(t->text);
  int seq = c->max_positions < S ? c->max_positions : S;
  int32_t *ids = malloc(sizeof(int32_t) * (size_t)seq);
  float *h = malloc(sizeof(float) * (size_t)seq * (size_t)t->D);
  int rc = ids && h ? SD_OK : sd_fail(SD_E_NOMEM, "out of memory");
  sd_clip_text_opts o = {1, 1};
  for (int i = 0; i < n && rc == SD_OK; i++) {
    int len = sd_tokenize_prompt(t->tok, texts[i], t->pad, seq, ids);
    if (len < 0) {
      rc = len;
      break;
    }
    if ((rc = sd_clip_text_encode(t->text, ex, ids, 1, seq, &o, h))) break;
    int pos = 0; /* the first end-of-text token (argmax of ids == eos), 0 if none */
    for (int s = 0; s < seq; s++)
      if (ids[s] == t->eos) {
        pos = s;
        break;
      }
    const float *x = h + (size_t)pos * t->D;
    for (int p = 0; p < t->P; p++) {
      const float *w = t->proj + (size_t)p * t->D;
      float acc = 0;
      for (int d = 0; d < t->D; d++) acc += w[d] * x[d];
      out[(size_t)i * t->P + p] = acc;
    }
  }
  free(ids);
  free(h);
  return rc;
}
