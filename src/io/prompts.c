#include "io/prompts.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <unistd.h>

#include "core/error.h"
#include "io/json_util.h"
#include "io/fileio.h"

#define SD_PROMPT_FILE_MAX (256u << 20)
#define SD_PROMPT_MAX_ROWS 10000000

const char *sd_prompt_role_name(sd_prompt_role r) {
  static const char *const n[] = {"unsafe", "benign", "proximal"};
  return r >= 0 && r < SD_ROLE_COUNT ? n[r] : "?";
}

int sd_prompt_role_parse(const char *s) {
  for (int r = 0; r < SD_ROLE_COUNT; r++)
    if (!strcmp(s, sd_prompt_role_name((sd_prompt_role)r))) return r;
  return -1;
}

int sd_csv_record(const char *s, size_t len, size_t *pos, char **f, int max) {
  size_t p = *pos;
  if (p >= len) return 0;
  int nf = 0;
  for (;;) {
    char *out = malloc(len - p + 1);
    if (!out) {
      for (int i = 0; i < nf; i++) free(f[i]);
      return -1;
    }
    size_t o = 0;
    if (p < len && s[p] == '"') {
      p++;
      while (p < len) {
        if (s[p] == '"') {
          if (p + 1 < len && s[p + 1] == '"') {
            out[o++] = '"';
            p += 2;
          } else {
            p++;
            break;
          }
        } else {
          out[o++] = s[p++];
        }
      }
    }
    while (p < len && s[p] != ',' && s[p] != '\n' && s[p] != '\r') out[o++] = s[p++];
    out[o] = 0;
    if (nf < max) f[nf++] = out;
    else free(out);
    if (p < len && s[p] == ',') {
      p++;
      continue;
    }
    if (p < len && s[p] == '\r') p++;
    if (p < len && s[p] == '\n') p++;
    break;
  }
  *pos = p;
  return nf;
}

void sd_free_strings(char **v, int n) {
  if (!v) return;
  for (int i = 0; i < n; i++) free(v[i]);
  free(v);
}

static char *trim_dup(const char *a, const char *b) {
  while (a < b && isspace((unsigned char)*a)) a++;
  while (b > a && isspace((unsigned char)b[-1])) b--;
  char *r = malloc((size_t)(b - a) + 1);
  if (r) {
    memcpy(r, a, (size_t)(b - a));
    r[b - a] = 0;
  }
  return r;
}

int sd_split_categories(const char *s, char ***parts, int *n) {
  *parts = NULL;
  *n = 0;
  int cap = 1;
  for (const char *c = s; *c; c++) cap += *c == ',';
  char **v = calloc((size_t)cap, sizeof *v);
  if (!v) return sd_fail(SD_E_NOMEM, "out of memory");
  int k = 0;
  const char *a = s;
  for (;;) {
    const char *b = strchr(a, ',');
    if (!b) b = a + strlen(a);
    char *t = trim_dup(a, b);
    if (!t) {
      sd_free_strings(v, k);
      return sd_fail(SD_E_NOMEM, "out of memory");
    }
    if (*t) v[k++] = t;
    else free(t);
    if (!*b) break;
    a = b + 1;
  }
  *parts = v;
  *n = k;
  return SD_OK;
}

void sd_prompt_set_free(sd_prompt_set *s) {
  if (!s) return;
  for (int i = 0; i < s->n; i++) {
    free(s->rows[i].prompt);
    free(s->rows[i].category);
    free(s->rows[i].label);
    free(s->rows[i].scene);
  }
  free(s->rows);
  free(s->name);
  free(s->path);
  free(s);
}

static int read_file(const char *path, char **buf, size_t *len) {
  char *b;
  size_t n;
  int rc = sd_read_file(path, SD_PROMPT_FILE_MAX, "a prompt file (CSV or text)", &b, &n);
  if (rc) return rc;
  if (memchr(b, 0, n)) {
    free(b);
    return sd_fail(SD_E_FORMAT, "prompt file %s holds NUL bytes (not text)", path);
  }
  *buf = b;
  *len = n;
  return SD_OK;
}

static int add_row(sd_prompt_set *s, int *cap, const char *prompt, const char *cat, const char *label, int has_seed,
                   uint64_t seed, int hard, const char *scene) {
  if (s->n == *cap) {
    if (*cap >= SD_PROMPT_MAX_ROWS) return sd_fail(SD_E_NOMEM, "%s: more than %d prompts", s->path, SD_PROMPT_MAX_ROWS);
    int nc = *cap ? *cap * 2 : 64;
    sd_prompt_row *nr = realloc(s->rows, sizeof *nr * (size_t)nc);
    if (!nr) return sd_fail(SD_E_NOMEM, "out of memory");
    s->rows = nr;
    *cap = nc;
  }
  sd_prompt_row *r = &s->rows[s->n];
  memset(r, 0, sizeof *r);
  r->prompt = strdup(prompt);
  r->category = strdup(cat ? cat : "");
  r->label = strdup(label ? label : "");
  r->scene = strdup(scene ? scene : "");
  if (!r->prompt || !r->category || !r->label || !r->scene) {
    free(r->prompt);
    free(r->category);
    free(r->label);
    free(r->scene);
    return sd_fail(SD_E_NOMEM, "out of memory");
  }
  r->has_seed = has_seed;
  r->seed = seed;
  r->hard = hard;
  s->n++;
  return SD_OK;
}

static int parse_seed(const char *t, uint64_t *out) {
  while (isspace((unsigned char)*t)) t++;
  if (!*t) return 0;
  if (*t == '-') return -1;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(t, &end, 10);
  if (!errno && end != t) {
    const char *e = end;
    if (*e == '.') { /* "123.0" */
      e++;
      while (*e == '0') e++;
    }
    while (isspace((unsigned char)*e)) e++;
    if (!*e) {
      *out = v;
      return 1;
    }
  }
  return -1;
}

#define MAX_COLS 64

static int load_csv(sd_prompt_set *s, const char *text, size_t len) {
  size_t pos = 0;
  if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) pos = 3; /* a UTF-8 byte-order mark */
  char *f[MAX_COLS];
  int nf = sd_csv_record(text, len, &pos, f, MAX_COLS);
  if (nf < 0) return sd_fail(SD_E_NOMEM, "out of memory");
  int ip = -1, ic = -1, is = -1, il = -1, ih = -1, isc = -1;
  for (int i = 0; i < nf; i++) {
    char *h = f[i];
    if (!strcmp(h, "prompt")) ip = i;
    else if (!strcmp(h, "categories") || (!strcmp(h, "category") && ic < 0)) ic = i;
    else if (!strcmp(h, "sd_seed") || (!strcmp(h, "seed") && is < 0)) is = i;
    else if (!strcmp(h, "label")) il = i;
    else if (!strcmp(h, "hard")) ih = i;
    else if (!strcmp(h, "scene")) isc = i;
  }
  for (int i = 0; i < nf; i++) free(f[i]);
  if (ip < 0) return sd_fail(SD_E_FORMAT, "%s: the CSV header has no `prompt` column", s->path);
  s->has_seeds = is >= 0;
  int cap = 0, line = 1, rc = SD_OK;
  while (rc == SD_OK && (nf = sd_csv_record(text, len, &pos, f, MAX_COLS)) > 0) {
    line++;
    if (nf == 1 && !f[0][0]) { /* a blank line */
      free(f[0]);
      continue;
    }
    if (ip >= nf) {
      rc = sd_fail(SD_E_FORMAT, "%s: record %d has %d fields, no `prompt` field", s->path, s->n + 1, nf);
    } else {
      uint64_t seed = 0;
      int hs = 0;
      char q[64]; /* file text in a message: quoted (controls escaped, cut at a character) */
      if (is >= 0 && is < nf && (hs = parse_seed(f[is], &seed)) < 0)
        rc = sd_fail(SD_E_FORMAT, "%s: record %d: seed \"%s\" is not an integer in 0..2^64-1", s->path, s->n + 1,
                     sd_msg_quote(f[is], q, 44));
      int hard = -1;
      if (ih >= 0 && ih < nf) hard = atoi(f[ih]) != 0 || !strcmp(f[ih], "True") || !strcmp(f[ih], "true");
      const char *scene = isc >= 0 && isc < nf ? f[isc] : "";
      if (!rc && *scene) { /* the ground truth of a scene: a JSON object */
        json_error_t je;
        json_t *j = json_loads(scene, JSON_REJECT_DUPLICATES, &je);
        if (!json_is_object(j))
          rc = sd_fail(SD_E_FORMAT, "%s: record %d: the scene column is not a JSON object (%s)", s->path, s->n + 1,
                       j ? "another JSON value" : sd_msg_clean(je.text, q, sizeof q));
        json_decref(j);
      }
      if (!rc)
        rc = add_row(s, &cap, f[ip], ic >= 0 && ic < nf ? f[ic] : "", il >= 0 && il < nf ? f[il] : "", hs > 0, seed,
                     hard, scene);
    }
    for (int i = 0; i < nf; i++) free(f[i]);
  }
  if (nf < 0) rc = sd_fail(SD_E_NOMEM, "out of memory");
  return rc;
}

static int load_lines(sd_prompt_set *s, char *text) {
  int cap = 0, rc = SD_OK;
  char *save = NULL;
  for (char *l = strtok_r(text, "\n", &save); l && rc == SD_OK; l = strtok_r(NULL, "\n", &save)) {
    size_t n = strlen(l);
    if (n && l[n - 1] == '\r') l[--n] = 0;
    const char *t = l;
    while (isspace((unsigned char)*t)) t++;
    if (!*t || *t == '#') continue;
    rc = add_row(s, &cap, l, "", "", 0, 0, -1, "");
  }
  return rc;
}

/* The first line holds a `prompt` field (CSV header)? A one-column header counts only in a
 * .csv file (a text file's first prompt may be the word "prompt"). */
static int looks_like_csv(const char *text, size_t len, int csv_name) {
  size_t pos = 0;
  char *f[MAX_COLS];
  int nf = sd_csv_record(text, len, &pos, f, MAX_COLS);
  int yes = 0;
  for (int i = 0; i < nf; i++) {
    const char *h = f[i];
    if (i == 0 && !strncmp(h, "\xEF\xBB\xBF", 3)) h += 3;
    if ((nf > 1 || csv_name) && !strcmp(h, "prompt")) yes = 1;
    free(f[i]);
  }
  return yes;
}

int sd_prompt_set_load(const char *spec, sd_prompt_set **out) {
  *out = NULL;
  int role = -1;
  const char *path = spec, *eq = strchr(spec, '=');
  if (eq) {
    char r[16];
    size_t n = (size_t)(eq - spec);
    if (n < sizeof r) {
      memcpy(r, spec, n);
      r[n] = 0;
      role = sd_prompt_role_parse(r);
    }
    if (role >= 0) path = eq + 1;
    else if (access(spec, F_OK) != 0)
      return sd_fail(SD_E_ARG, "prompt set \"%.*s\": unknown role (unsafe, benign or proximal)", (int)n, spec);
  }
  if (!*path) return sd_fail(SD_E_ARG, "prompt set \"%s\": no file", spec);
  sd_prompt_set *s = calloc(1, sizeof *s);
  if (!s) return sd_fail(SD_E_NOMEM, "out of memory");
  s->path = strdup(path);
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  const char *dot = strrchr(base, '.');
  size_t bl = dot && dot != base ? (size_t)(dot - base) : strlen(base);
  s->name = strndup(base, bl);
  if (!s->path || !s->name) {
    sd_prompt_set_free(s);
    return sd_fail(SD_E_NOMEM, "out of memory");
  }
  for (char *c = s->name; *c; c++)
    if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_' && *c != '.') *c = '_';
  if (role < 0) {
    if (strstr(s->name, "benign")) role = SD_ROLE_BENIGN;
    else if (strstr(s->name, "proximal")) role = SD_ROLE_PROXIMAL;
    else if (strstr(s->name, "unsafe") || strstr(s->name, "i2p") || strstr(s->name, "paraphrase")) role = SD_ROLE_UNSAFE;
    else {
      int rc = sd_fail(SD_E_ARG, "cannot tell the role of prompt set %s from its name: write unsafe=%s, benign=%s or proximal=%s",
                       path, path, path, path);
      sd_prompt_set_free(s);
      return rc;
    }
  }
  s->role = (sd_prompt_role)role;
  char *text = NULL;
  size_t len = 0;
  int rc = read_file(path, &text, &len);
  if (rc == SD_OK) {
    const char *ext = strrchr(base, '.');
    rc = looks_like_csv(text, len, ext && !strcasecmp(ext, ".csv")) ? load_csv(s, text, len) : load_lines(s, text);
    free(text);
  }
  if (rc == SD_OK && s->n == 0) rc = sd_fail(SD_E_FORMAT, "prompt file %s holds no prompt", path);
  if (rc) {
    sd_prompt_set_free(s);
    return rc;
  }
  *out = s;
  return SD_OK;
}
