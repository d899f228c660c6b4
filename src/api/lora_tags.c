/* `<lora:NAME[:TE[:UNET]]>` tags in the prompt (AUTOMATIC1111's extra-network syntax):
 * taken out of the text that the tokenizer and the safety detectors see, and the LoRAs
 * merged into the model (models/lora.h) before the generation; the model keeps them merged
 * while the next prompt names the same set (docs/lora.md). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/api_internal.h"
#include "core/error.h"
#include "models/lora.h"

#define MAX_LORAS 16

/* Parse one tag's inside ("NAME:0.8" or "NAME:0.8:1.0" or "NAME"); 0 or an SD_E_ARG. */
static int parse_tag(const char *in, size_t len, char *name, size_t cap, float *te, float *unet) {
  char buf[512];
  if (len >= sizeof buf) return sd_fail(SD_E_ARG, "a <lora:...> tag is over %zu bytes", sizeof buf - 1);
  memcpy(buf, in, len);
  buf[len] = 0;
  char *f[3] = {buf, NULL, NULL};
  int nf = 1;
  for (char *p = buf; *p; p++)
    if (*p == ':') {
      if (nf == 3) return sd_fail(SD_E_ARG, "<lora:%.*s>: at most a name and two weights (text encoder, UNet)", (int)len, in);
      *p = 0;
      f[nf++] = p + 1;
    }
  size_t n = strlen(f[0]);
  if (n == 0 || n >= cap) return sd_fail(SD_E_ARG, "<lora:...>: an empty or too long LoRA name");
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)f[0][i];
    if (ch == '/' || ch == '\\' || ch < 0x20 || ch == 0x7f)
      return sd_fail(SD_E_ARG, "<lora:%s>: a LoRA name is a file name in the LoRA folder, without '/'", f[0]);
  }
  if (!strcmp(f[0], ".") || !strcmp(f[0], "..")) return sd_fail(SD_E_ARG, "<lora:%s>: not a LoRA name", f[0]);
  memcpy(name, f[0], n + 1);
  float w[2] = {1.0f, 1.0f};
  for (int k = 1; k < nf; k++) {
    char *end;
    double v = strtod(f[k], &end);
    while (*end && isspace((unsigned char)*end)) end++;
    if (end == f[k] || *end || !(v >= -100 && v <= 100))
      return sd_fail(SD_E_ARG, "<lora:%s:...>: weight '%s' is not a number in [-100, 100]", name, f[k]);
    w[k - 1] = (float)v;
  }
  *te = w[0];
  *unet = nf > 2 ? w[1] : w[0]; /* A1111: the UNet's weight defaults to the text encoder's */
  return SD_OK;
}

void sd_api_lora_free(safesd_model *m) {
  if (m->lora) sd_lora_restore(m->src, m->lora);
  m->lora = NULL;
  free(m->lora_key);
  free(m->lora_prompt);
  free(m->lora_summary);
  m->lora_key = m->lora_prompt = m->lora_summary = NULL;
}

/* The names of the tags in s (", "-joined, '_', '-' and '.' as spaces: "nsfw_style-v2" ->
 * "nsfw style v2"), which the safety gate judges besides the text (sd_gate_opts.lora_names);
 * NULL for none. */
static char *names_text(char names[][256], int n) {
  if (n == 0) return NULL;
  size_t cap = 1;
  for (int k = 0; k < n; k++) cap += strlen(names[k]) + 2;
  char *t = malloc(cap);
  if (!t) return NULL;
  size_t o = 0;
  for (int k = 0; k < n; k++) {
    if (k) t[o++] = ',', t[o++] = ' ';
    for (const char *c = names[k]; *c; c++) t[o++] = (*c == '_' || *c == '-' || *c == '.') ? ' ' : *c;
  }
  t[o] = 0;
  return t;
}

/* The tags of s parsed: the text without them (malloc'ed) and up to MAX_LORAS names and
 * weights; *n their count. */
static int split_tags(const char *s, char **text_out, char names[][256], float *te, float *un, int *n_out) {
  size_t len = strlen(s);
  char *text = malloc(len + 1);
  int n = 0, rc = SD_OK;
  size_t o = 0;
  if (!text) return sd_fail(SD_E_NOMEM, "out of memory");
  for (size_t i = 0; i < len && rc == SD_OK;) {
    if (!strncmp(s + i, "<lora:", 6)) {
      const char *close = strchr(s + i + 6, '>');
      if (!close) { rc = sd_fail(SD_E_ARG, "a <lora: tag without its '>'"); break; }
      if (n == MAX_LORAS) { rc = sd_fail(SD_E_ARG, "more than %d <lora:...> tags", MAX_LORAS); break; }
      rc = parse_tag(s + i + 6, (size_t)(close - (s + i + 6)), names[n], sizeof names[n], &te[n], &un[n]);
      n++;
      i = (size_t)(close - s) + 1;
      continue;
    }
    text[o++] = s[i++];
  }
  text[o] = 0;
  if (rc) { free(text); return rc; }
  *text_out = text, *n_out = n;
  return SD_OK;
}

int sd_api_lora_split(const char *prompt, char **text, char **names) {
  char nm[MAX_LORAS][256];
  float te[MAX_LORAS], un[MAX_LORAS];
  int n = 0;
  *text = *names = NULL;
  int rc = split_tags(prompt, text, nm, te, un, &n);
  if (rc) return rc;
  if (n && !(*names = names_text(nm, n))) {
    free(*text);
    *text = NULL;
    return sd_fail(SD_E_NOMEM, "out of memory");
  }
  return SD_OK;
}

int sd_api_lora_prepare(safesd_model *m, safesd_gen_params *p) {
  free(m->lora_prompt);
  free(m->lora_names);
  m->lora_prompt = m->lora_names = NULL;
  if (!p->prompt) return SD_OK;
  char *text = NULL;
  char names[MAX_LORAS][256];
  float te[MAX_LORAS], un[MAX_LORAS];
  int n = 0, rc = split_tags(p->prompt, &text, names, te, un, &n);
  if (rc) return rc;
  if (n == 0 && !m->lora) { free(text); return SD_OK; } /* nothing named, nothing merged */
  if (n && !(m->lora_names = names_text(names, n))) { free(text); return sd_fail(SD_E_NOMEM, "out of memory"); }
  if (!m->src) { /* a gate without a model (safesd_gate_open): the tags only leave the text */
    m->lora_prompt = text;
    p->prompt = text;
    return SD_OK;
  }
  if (n && (!p->lora_dir || !*p->lora_dir)) {
    free(text);
    return sd_fail(SD_E_ARG, "the prompt names LoRA '%s' but no LoRA folder is set (--lora-model-dir DIR)", names[0]);
  }
  /* the files, the key of the set and its summary for reports */
  sd_lora_spec specs[MAX_LORAS];
  char *paths[MAX_LORAS] = {0};
  size_t key_cap = 64, sum_cap = 64;
  for (int k = 0; k < n; k++) key_cap += strlen(p->lora_dir) + strlen(names[k]) + 64, sum_cap += strlen(names[k]) + 48;
  char *key = malloc(key_cap), *sum = malloc(sum_cap);
  size_t ko = 0, so = 0;
  if (!key || !sum) rc = sd_fail(SD_E_NOMEM, "out of memory");
  if (key) key[0] = 0;
  if (sum) sum[0] = 0;
  for (int k = 0; k < n && rc == SD_OK; k++) {
    size_t pl = strlen(p->lora_dir) + strlen(names[k]) + 16;
    if (!(paths[k] = malloc(pl))) { rc = sd_fail(SD_E_NOMEM, "out of memory"); break; }
    snprintf(paths[k], pl, "%s/%s.safetensors", p->lora_dir, names[k]);
    struct stat stt;
    if (stat(paths[k], &stt) || !S_ISREG(stt.st_mode)) {
      rc = sd_fail(SD_E_ARG, "LoRA '%s': no file %s", names[k], paths[k]);
      break;
    }
    specs[k] = (sd_lora_spec){paths[k], te[k], un[k]};
    /* the file's identity (path, size, mtime) and the weights: the same key, the same merge */
    ko += (size_t)snprintf(key + ko, key_cap - ko, "%s|%lld|%lld|%.9g|%.9g;", paths[k], (long long)stt.st_size,
                           (long long)stt.st_mtime, (double)te[k], (double)un[k]);
    if (te[k] == un[k]) so += (size_t)snprintf(sum + so, sum_cap - so, "%s%s:%g", k ? ", " : "", names[k], (double)te[k]);
    else so += (size_t)snprintf(sum + so, sum_cap - so, "%s%s:%g:%g", k ? ", " : "", names[k], (double)te[k], (double)un[k]);
  }
  if (rc == SD_OK && !(m->lora_key && !strcmp(m->lora_key, key) && n)) {
    /* a different set: back to the file's weights, then merge the new one; packed copies of
     * the old weights in the op layer's caches go too */
    sd_api_lora_free(m);
    sd_exec_trim(m->ex);
    sd_lora_state *st = NULL;
    if ((rc = sd_lora_apply(m->src, specs, n, &st)) == SD_OK && n) {
      m->lora = st;
      m->lora_key = key, key = NULL;
      m->lora_summary = sum, sum = NULL;
    }
  }
  for (int k = 0; k < n; k++) free(paths[k]);
  free(key);
  free(sum);
  if (rc) { free(text); return rc; }
  m->lora_prompt = text;
  p->prompt = text;
  return SD_OK;
}
