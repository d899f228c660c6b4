/* Emoji names table (emoji.h). */
#include "safety/emoji.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/error.h"
#include "io/fileio.h"
#include "safety/strmap.h"

#define EMOJI_MAX_FILE (16u << 20)
#define EMOJI_MAX_LINE 4096

typedef struct {
  char *key;     /* UTF-8 sequence, no FE0E/FE0F/skin tones */
  char **names;  /* label, tags... */
  int n_names;
} emoji_entry;

struct sd_emoji_table {
  emoji_entry *e;
  int n, cap;
  sd_strmap by_key;
  int max_cps;
};

static int ignorable(int32_t c) { return c == 0xFE0E || c == 0xFE0F || (c >= 0x1F3FB && c <= 0x1F3FF); }

void sd_emoji_free(sd_emoji_table *t) {
  if (!t) return;
  for (int i = 0; i < t->n; i++) {
    free(t->e[i].key);
    for (int k = 0; k < t->e[i].n_names; k++) free(t->e[i].names[k]);
    free(t->e[i].names);
  }
  free(t->e);
  sd_strmap_free(&t->by_key);
  free(t);
}

static char *dupn(const char *s, size_t n) {
  char *r = malloc(n + 1);
  if (r) {
    memcpy(r, s, n);
    r[n] = 0;
  }
  return r;
}

static int push_name(emoji_entry *x, const char *s, const char *e) {
  while (s < e && (*s == ' ' || *s == '\t')) s++;
  while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) e--;
  if (s == e) return 0;
  char **nn = realloc(x->names, (size_t)(x->n_names + 1) * sizeof *nn);
  if (!nn) return -1;
  x->names = nn;
  if (!(x->names[x->n_names] = dupn(s, (size_t)(e - s)))) return -1;
  x->n_names++;
  return 0;
}

/* One line "HEX[-HEX] \t label \t tags" into a new entry. */
static int parse_line(sd_emoji_table *t, const char *s, const char *e, const char *name, int line) {
  const char *tab1 = memchr(s, '\t', (size_t)(e - s));
  if (!tab1) return sd_fail(SD_E_FORMAT, "%s:%d: expected 'HEX<TAB>label<TAB>tags'", name, line);
  const char *tab2 = memchr(tab1 + 1, '\t', (size_t)(e - tab1 - 1));
  char key[SD_EMOJI_MAX_CPS * 4 + 1];
  size_t kn = 0;
  int ncp = 0;
  for (const char *p = s; p < tab1;) {
    char *end;
    char hex[16];
    size_t hl = 0;
    while (p < tab1 && *p != '-' && hl < sizeof hex - 1) hex[hl++] = *p++;
    hex[hl] = 0;
    long cp = strtol(hex, &end, 16);
    if (!hl || *end || cp <= 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || hl > 6)
      return sd_fail(SD_E_FORMAT, "%s:%d: bad code point '%.16s'", name, line, hex);
    if (p < tab1) p++; /* '-' */
    if (ignorable((int32_t)cp)) continue;
    if (++ncp > SD_EMOJI_MAX_CPS)
      return sd_fail(SD_E_FORMAT, "%s:%d: more than %d code points", name, line, SD_EMOJI_MAX_CPS);
    kn += (size_t)utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)key + kn);
  }
  key[kn] = 0;
  if (!ncp) return sd_fail(SD_E_FORMAT, "%s:%d: no code point", name, line);
  const char *la = tab1 + 1, *lz = tab2 ? tab2 : e;
  if (la == lz) return sd_fail(SD_E_FORMAT, "%s:%d: empty label", name, line);
  if (sd_strmap_find(&t->by_key, key)) return SD_OK; /* a variant already listed: the first wins */
  if (t->n == SD_EMOJI_MAX_ENTRIES)
    return sd_fail(SD_E_FORMAT, "%s:%d: more than %d emoji", name, line, SD_EMOJI_MAX_ENTRIES);
  if (t->n == t->cap) {
    int nc = t->cap ? 2 * t->cap : 512;
    emoji_entry *ne = realloc(t->e, (size_t)nc * sizeof *ne);
    if (!ne) return sd_fail(SD_E_NOMEM, "emoji names: out of memory");
    t->e = ne;
    t->cap = nc;
  }
  emoji_entry *x = &t->e[t->n];
  memset(x, 0, sizeof *x);
  int bad = !(x->key = dupn(key, kn)) || push_name(x, la, lz);
  for (const char *p = tab2 ? tab2 + 1 : e; !bad && p < e;) {
    const char *q = p;
    while (q < e && *q != ',') q++;
    bad = push_name(x, p, q);
    p = q + 1;
  }
  t->n++;
  if (bad || sd_strmap_add(&t->by_key, key, t->n - 1)) return sd_fail(SD_E_NOMEM, "emoji names: out of memory");
  if (ncp > t->max_cps) t->max_cps = ncp;
  return SD_OK;
}

int sd_emoji_parse(const char *text, size_t len, const char *name, sd_emoji_table **out) {
  if (!out) return sd_fail(SD_E_ARG, "sd_emoji_parse: out is NULL");
  *out = NULL;
  if (!text && len) return sd_fail(SD_E_ARG, "sd_emoji_parse: text is NULL");
  if (!name) name = "<emoji names>";
  if (len > EMOJI_MAX_FILE) return sd_fail(SD_E_FORMAT, "%s: %zu bytes, over the %u-byte limit", name, len, EMOJI_MAX_FILE);
  sd_emoji_table *t = calloc(1, sizeof *t);
  if (!t) return sd_fail(SD_E_NOMEM, "emoji names: out of memory");
  size_t pos = 0;
  int line = 0, rc = SD_OK;
  while (pos < len && !rc) {
    line++;
    const char *s = text + pos, *nl = memchr(s, '\n', len - pos);
    const char *e = nl ? nl : text + len;
    pos = (size_t)(e - text) + (nl ? 1 : 0);
    if (e - s > EMOJI_MAX_LINE) {
      rc = sd_fail(SD_E_FORMAT, "%s:%d: line over %d bytes", name, line, EMOJI_MAX_LINE);
      break;
    }
    for (const char *p = s; p < e && !rc;) {
      utf8proc_int32_t cp;
      utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)p, e - p, &cp);
      if (k <= 0) rc = sd_fail(SD_E_FORMAT, "%s:%d: invalid UTF-8", name, line);
      else if (cp < 0x20 && cp != '\t' && cp != '\r') rc = sd_fail(SD_E_FORMAT, "%s:%d: control character", name, line);
      p += k > 0 ? k : 1;
    }
    if (rc || s == e || *s == '#' || (e - s == 1 && *s == '\r')) continue;
    rc = parse_line(t, s, e, name, line);
  }
  if (!rc && t->n == 0) rc = sd_fail(SD_E_FORMAT, "%s: no emoji", name);
  if (rc) {
    sd_emoji_free(t);
    return rc;
  }
  *out = t;
  return SD_OK;
}

int sd_emoji_load(const char *path, sd_emoji_table **out) {
  if (!out || !path) return sd_fail(SD_E_ARG, "sd_emoji_load: NULL argument");
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return sd_fail(SD_E_IO, "%s: cannot open the emoji names", path);
  char *buf = malloc(EMOJI_MAX_FILE + 1);
  if (!buf) {
    fclose(f);
    return sd_fail(SD_E_NOMEM, "emoji names: out of memory");
  }
  size_t n = fread(buf, 1, EMOJI_MAX_FILE + 1, f);
  int err = ferror(f);
  fclose(f);
  int rc = err ? sd_fail(SD_E_IO, "%s: read error", path) : sd_emoji_parse(buf, n, path, out);
  free(buf);
  return rc;
}

static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static sd_emoji_table *default_table;
static char default_why[512];

static void load_default(void) {
  char path[4096];
  if (sd_data_file("emoji/emoji-names.tsv", path, sizeof path) || sd_emoji_load(path, &default_table)) {
    snprintf(default_why, sizeof default_why, "%s", sd_errmsg());
    sd_clear_error();
    default_table = NULL;
  }
}

const sd_emoji_table *sd_emoji_default(const char **why) {
  pthread_once(&default_once, load_default);
  if (why) *why = default_table ? "" : default_why;
  return default_table;
}

int sd_emoji_count(const sd_emoji_table *t) { return t ? t->n : 0; }

int sd_emoji_match(const sd_emoji_table *t, const int32_t *cps, int n, int *used) {
  *used = 0;
  if (!t || n <= 0 || ignorable(cps[0])) return -1;
  /* gather the sequence's significant code points and, for each, how far the source goes */
  int32_t sig[SD_EMOJI_MAX_CPS];
  int end_at[SD_EMOJI_MAX_CPS];
  int ns = 0, i = 0;
  while (i < n && ns < t->max_cps && ns < SD_EMOJI_MAX_CPS) {
    sig[ns] = cps[i++];
    while (i < n && ignorable(cps[i])) i++;
    end_at[ns++] = i;
  }
  char key[SD_EMOJI_MAX_CPS * 4 + 1];
  for (int k = ns; k >= 1; k--) {
    if (k == 1 && sig[0] < 0x80) break;
    size_t kn = 0;
    for (int j = 0; j < k; j++) kn += (size_t)utf8proc_encode_char(sig[j], (utf8proc_uint8_t *)key + kn);
    const sd_strmap_slot *s = sd_strmap_findn(&t->by_key, key, kn);
    if (s && s->head >= 0) {
      *used = end_at[k - 1];
      return t->by_key.post[s->head].val;
    }
  }
  return -1;
}

const char *sd_emoji_key(const sd_emoji_table *t, int i) { return t && i >= 0 && i < t->n ? t->e[i].key : NULL; }

const char *sd_emoji_name(const sd_emoji_table *t, int i, int k) {
  if (!t || i < 0 || i >= t->n || k < 0 || k >= t->e[i].n_names) return NULL;
  return t->e[i].names[k];
}
