/* The lexical detector's text normaliser (normalize.h). */
#include "safety/normalize.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/uchar.h>
#include <unicode/uspoof.h>
#include <utf8proc.h>

#include "core/error.h"

int sd_sb_putn(sd_sbuf *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t nc = b->cap ? b->cap : 64;
    while (nc < b->n + n + 1) nc *= 2;
    char *np = realloc(b->p, nc);
    if (!np) return -1;
    b->p = np;
    b->cap = nc;
  }
  if (n) memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
  return 0;
}
int sd_sb_puts(sd_sbuf *b, const char *s) { return sd_sb_putn(b, s, strlen(s)); }

/* ------------------------------------------------------------------------------------- */
/* confusables: the ASCII letters a non-ASCII letter reads as                              */

static pthread_once_t spoof_once = PTHREAD_ONCE_INIT;
static USpoofChecker *spoof;
static pthread_mutex_t fold_lock = PTHREAD_MUTEX_INITIALIZER;
#define FOLD_CACHE 8192
static struct {
  int32_t cp; /* 0 = empty */
  uint8_t n;
  char s[3];
} fold_cache[FOLD_CACHE];

static void spoof_init(void) {
  UErrorCode st = U_ZERO_ERROR;
  spoof = uspoof_open(&st);
  if (U_FAILURE(st)) spoof = NULL;
}

/* s (UTF-8) case-folded with marks stripped; its ASCII letters into out when it is 1 to 3
 * ASCII letters and nothing else. */
static int ascii_letters(const char *s, int len, char out[3]) {
  utf8proc_uint8_t *m = NULL;
  if (utf8proc_map((const utf8proc_uint8_t *)s, len, &m, UTF8PROC_COMPAT | UTF8PROC_DECOMPOSE | UTF8PROC_STRIPMARK) < 0)
    return 0; /* no case folding: it would read ß (the skeleton of β) as "ss" */
  int n = 0, ok = 1;
  for (const utf8proc_uint8_t *p = m; *p && ok; p++) {
    int c = *p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p;
    ok = c >= 'a' && c <= 'z' && n < 3;
    if (ok) out[n++] = (char)c;
  }
  free(m);
  return ok ? n : 0;
}

static int skeleton_fold(int32_t c, char out[3]) {
  if (!spoof) return 0;
  char in[8], sk[64];
  int k = (int)utf8proc_encode_char(c, (utf8proc_uint8_t *)in);
  UErrorCode st = U_ZERO_ERROR;
  int32_t n = uspoof_getSkeletonUTF8(spoof, 0, in, k, sk, (int32_t)sizeof sk - 1, &st);
  if (U_FAILURE(st) || n <= 0 || n >= (int32_t)sizeof sk) return 0;
  return ascii_letters(sk, n, out);
}

/* From the Unicode name: "LATIN LETTER SMALL CAPITAL N", "NEGATIVE SQUARED LATIN CAPITAL
 * LETTER N", "REGIONAL INDICATOR SYMBOL LETTER N", "LATIN SMALL LETTER N WITH ...". */
static int name_fold(int32_t c, char out[3]) {
  char name[128];
  UErrorCode st = U_ZERO_ERROR;
  int32_t n = u_charName(c, U_UNICODE_CHAR_NAME, name, (int32_t)sizeof name, &st);
  if (U_FAILURE(st) || n <= 0 || n >= (int32_t)sizeof name) return 0;
  if (!strstr(name, "LATIN ") && strncmp(name, "REGIONAL INDICATOR SYMBOL LETTER ", 33) != 0) return 0;
  const char *p = strstr(name, "LETTER ");
  if (!p) return 0;
  p += 7;
  if (!strncmp(p, "SMALL CAPITAL ", 14)) p += 14;
  else if (!strncmp(p, "CAPITAL ", 8)) p += 8;
  else if (!strncmp(p, "SMALL ", 6)) p += 6;
  if (!(p[0] >= 'A' && p[0] <= 'Z') || (p[1] && strncmp(p + 1, " WITH ", 6) != 0)) return 0;
  out[0] = (char)(p[0] - 'A' + 'a');
  return 1;
}

/* Scripts matched as substrings (terms of zh, ja, ko, th...): CJK, Hangul, and the scripts
 * written without spaces between words (Thai, Lao, Khmer, Myanmar), kept whole (no mark
 * stripping: a Thai vowel sign is part of the word). */
static int cjk(int32_t c) {
  return (c >= 0x3040 && c <= 0x30FF) || (c >= 0x31F0 && c <= 0x31FF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x20000 && c <= 0x2FFFF) ||
         (c >= 0xAC00 && c <= 0xD7AF) || (c >= 0x1100 && c <= 0x11FF) || (c >= 0x3130 && c <= 0x318F) ||
         c == 0x3005 || (c >= 0x0E01 && c <= 0x0EFF) || (c >= 0x1780 && c <= 0x17FF) || (c >= 0x1000 && c <= 0x109F);
}

static int confusable_fold(int32_t c, char out[3]) {
  pthread_once(&spoof_once, spoof_init);
  unsigned h = ((unsigned)c * 2654435761u) >> 19; /* 13 bits */
  pthread_mutex_lock(&fold_lock);
  for (unsigned i = 0; i < 8; i++) {
    unsigned j = (h + i) & (FOLD_CACHE - 1);
    if (fold_cache[j].cp == c) {
      int n = fold_cache[j].n;
      memcpy(out, fold_cache[j].s, 3);
      pthread_mutex_unlock(&fold_lock);
      return n;
    }
    if (!fold_cache[j].cp) break;
  }
  int n = skeleton_fold(c, out);
  if (!n) n = name_fold(c, out);
  if (!n) {
    int32_t u = utf8proc_toupper(c);
    if (u != c) n = skeleton_fold(u, out);
  }
  for (unsigned i = 0; i < 8; i++) {
    unsigned j = (h + i) & (FOLD_CACHE - 1);
    if (!fold_cache[j].cp) {
      fold_cache[j].cp = c;
      fold_cache[j].n = (uint8_t)n;
      memcpy(fold_cache[j].s, out, 3);
      break;
    }
  }
  pthread_mutex_unlock(&fold_lock);
  return n;
}

/* ------------------------------------------------------------------------------------- */
/* code points                                                                            */

static int classify(int32_t c) {
  if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0xA0) return SD_CL_SPACE;
  if (c == '@' || c == '$' || c == '!' || c == '+' || c == 0x20AC) return SD_CL_LEET;
  if (c == '.' || c == '-' || c == '_' || c == '*' || c == '\'' || c == '`' || c == '~' || c == 0xB7 ||
      c == 0x2022 || c == '|')
    return SD_CL_INTRA;
  if (cjk(c)) return SD_CL_CJK;
  utf8proc_category_t k = utf8proc_category(c);
  if (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) return SD_CL_LETTER;
  if (k == UTF8PROC_CATEGORY_ND) return SD_CL_DIGIT;
  if (k == UTF8PROC_CATEGORY_ZS) return SD_CL_SPACE;
  return SD_CL_SEP;
}

static int push_ncp(sd_norm *o, int *cap, sd_ncp x) {
  if (o->n == *cap) {
    int nc = *cap ? 2 * *cap : 64;
    sd_ncp *nv = realloc(o->v, (size_t)nc * sizeof *nv);
    if (!nv) return -1;
    o->v = nv;
    *cap = nc;
  }
  o->v[o->n++] = x;
  return 0;
}

/* A precomposed Latin letter with a diacritic, as the languages written with them use it
 * (Latin-1 Supplement and Latin Extended-A/B letters, Latin Extended Additional): not a
 * fullwidth, small-capital, mathematical or enclosed letter, which only obfuscation uses. */
static int accented_latin(int32_t c) {
  return (c >= 0xC0 && c <= 0x24F && c != 0xD7 && c != 0xF7) || (c >= 0x1E00 && c <= 0x1EFF);
}

static int hexval(int32_t c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The code point an escape at src[r] stands for, and its length in code points (*used), or
 * -1: a URL escape of an ASCII letter, digit or space ("n%75d%65", "a%20nude"), an HTML
 * numeric character reference ("&#110;", "&#x6E;") or one of the named ones prompts carry
 * (&amp; &lt; &gt; &quot; &apos; &nbsp;). The text encoder reads the escape as written, but
 * a prompt that spells a word this way means the word. */
static int32_t escape_at(const int32_t *src, int r, int ns, int *used) {
  if (src[r] == '%' && r + 2 < ns && hexval(src[r + 1]) >= 0 && hexval(src[r + 2]) >= 0) {
    int32_t v = hexval(src[r + 1]) * 16 + hexval(src[r + 2]);
    *used = 3;
    return (v >= 'a' && v <= 'z') || (v >= 'A' && v <= 'Z') || (v >= '0' && v <= '9') || v == ' ' ? v : -1;
  }
  if (src[r] != '&' || r + 3 >= ns) return -1;
  if (src[r + 1] == '#') {
    int hex = src[r + 2] == 'x' || src[r + 2] == 'X', k = r + 2 + hex, nd = 0;
    int32_t v = 0;
    for (; k < ns && nd < 7 && (hex ? hexval(src[k]) >= 0 : src[k] >= '0' && src[k] <= '9'); k++, nd++)
      v = v * (hex ? 16 : 10) + (hex ? hexval(src[k]) : src[k] - '0');
    if (!nd || k >= ns || src[k] != ';' || v < 0x20 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return -1;
    *used = k + 1 - r;
    return v;
  }
  static const struct {
    const char *name;
    int32_t cp;
  } named[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}, {"nbsp;", 0xA0}};
  for (size_t e = 0; e < sizeof named / sizeof *named; e++) {
    int n = (int)strlen(named[e].name), k = 0;
    while (k < n && r + 1 + k < ns && src[r + 1 + k] == named[e].name[k]) k++;
    if (k == n) {
      *used = n + 1;
      return named[e].cp;
    }
  }
  return -1;
}

/* Letters drawn with strokes ("|\/|eth", "|\|ude", "b|_|llet"): the sequences no prompt writes
 * for anything else, longest first. Pipes alone ("[a|b]", "|3") are left to the prompt syntax. */
static const struct {
  const char *art;
  int32_t cp;
} ART[] = {{"|\\/|", 'm'}, {"/\\/\\", 'm'}, {"\\/\\/", 'w'}, {"|\\|", 'n'}, {"/\\/", 'n'}, {"|-|", 'h'},
           {"]-[", 'h'},   {"|_|", 'u'},    {"\\/", 'v'},    {"|<", 'k'}};

static int word_cp(int32_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '@' || c == '$' ||
         c == '!' || c == '+';
}

/* The letter a stroke drawing at src[r] stands for, and its length (*used), or -1; only next to
 * a letter, digit, leetspeak sign or another drawing (never alone between spaces). */
static int32_t art_at(const int32_t *src, int r, int ns, int *used) {
  for (size_t a = 0; a < sizeof ART / sizeof *ART; a++) {
    int n = (int)strlen(ART[a].art), k = 0;
    while (k < n && r + k < ns && src[r + k] == (unsigned char)ART[a].art[k]) k++;
    if (k < n) continue;
    int before = r > 0 && word_cp(src[r - 1]), after = r + n < ns && word_cp(src[r + n]);
    for (size_t b = 0; b < sizeof ART / sizeof *ART && !after; b++) /* another drawing next */
      after = r + n < ns && src[r + n] == (unsigned char)ART[b].art[0] && src[r + n] != '\\';
    if (!before && !after) return -1;
    *used = n;
    return ART[a].cp;
  }
  return -1;
}

/* Letters written upside down ("ǝpnu" is "nude" turned over): the turned letters that give a
 * word away (IPA and a few symbols; not "ɔ", a letter of Akan and Ewe, nor Hebrew "ן"), and
 * the upright letter every letter of such a word stands for. */
static int turned_cue(int32_t c) {
  switch (c) {
    case 0x250: case 0x1DD: case 0x25F: case 0x183: case 0x265: case 0x1D09: case 0x27E: case 0x29E: case 0x26F:
    case 0x279: case 0x287: case 0x28C: case 0x28D: case 0x28E: case 0x2200: case 0x18E: case 0x2132: case 0x2141:
    case 0xA781:
      return 1;
    default:
      return 0;
  }
}

static int32_t turned_upright(int32_t c) {
  static const int32_t map[][2] = {{0x250, 'a'}, {0x1DD, 'e'}, {0x254, 'c'}, {0x25F, 'f'}, {0x183, 'g'},
                                   {0x265, 'h'}, {0x1D09, 'i'}, {0x131, 'i'}, {0x27E, 'j'}, {0x29E, 'k'},
                                   {0x26F, 'm'}, {0x279, 'r'}, {0x287, 't'}, {0x28C, 'v'}, {0x28D, 'w'},
                                   {0x28E, 'y'}, {0x5DF, 'l'}, {0x285, 'l'}, {0xA781, 'l'}, {0x2200, 'a'},
                                   {0x18E, 'e'}, {0x186, 'c'}, {0x2132, 'f'}, {0x2141, 'g'}, {'b', 'q'},
                                   {'q', 'b'}, {'d', 'p'}, {'p', 'd'}, {'n', 'u'}, {'u', 'n'}};
  int32_t l = c < 0x80 ? utf8proc_tolower(c) : c;
  for (size_t i = 0; i < sizeof map / sizeof *map; i++)
    if (map[i][0] == l) return map[i][1];
  return l;
}

/* Rewrite src (ns code points, source spans [st, en)) in place: escapes decoded (escape_at),
 * stroke drawings read as their letters (art_at) and words written upside down turned back
 * (a run of letters holding a turned cue is read in reverse order with every letter upright,
 * each of its code points spanning the whole run). Returns the new count. */
static int unescape_unturn(int32_t *src, size_t *st, size_t *en, int ns) {
  int w = 0;
  for (int r = 0; r < ns;) {
    int used = 1;
    int32_t v = src[r] < 0 ? -1 : escape_at(src, r, ns, &used);
    if (v < 0 && src[r] >= 0) {
      used = 1;
      v = art_at(src, r, ns, &used);
    }
    size_t a = st[r], b = en[r + used - 1];
    src[w] = v >= 0 ? v : src[r];
    st[w] = a;
    en[w++] = v >= 0 ? b : en[r];
    r += v >= 0 ? used : 1;
  }
  for (int i = 0; i < w;) {
    int j = i, cue = 0;
    while (j < w && src[j] >= 0 &&
           (turned_cue(src[j]) || (utf8proc_category(src[j]) >= UTF8PROC_CATEGORY_LU &&
                                   utf8proc_category(src[j]) <= UTF8PROC_CATEGORY_LO)))
      cue |= turned_cue(src[j++]); /* "∀" and "⅁" are math symbols: part of the run too */
    if (j == i) {
      i++;
      continue;
    }
    if (cue) {
      size_t a = st[i], b = en[j - 1];
      for (int x = i, y = j - 1; x < y; x++, y--) {
        int32_t t = src[x];
        src[x] = src[y];
        src[y] = t;
      }
      for (int x = i; x < j; x++) {
        src[x] = turned_upright(src[x]);
        st[x] = a;
        en[x] = b;
      }
    }
    i = j;
  }
  return w;
}

/* Decode; escapes and upside-down words (unescape_unturn); recognise emoji; decompose
 * (compatibility), case-fold, strip marks and ignorables, lump punctuation; give non-ASCII
 * letters their confusable fold. */
static int normalize_cps(const char *text, const sd_emoji_table *em, sd_norm *o) {
  size_t len = strlen(text);
  int32_t *src = malloc((len + 1) * sizeof *src);
  size_t *off = malloc((len + 2) * sizeof *off), *end = malloc((len + 2) * sizeof *end);
  int cap = 0, ns = 0;
  if (!src || !off || !end) goto oom;
  for (size_t i = 0; i < len;) {
    utf8proc_int32_t c;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)text + i, (utf8proc_ssize_t)(len - i), &c);
    off[ns] = i;
    src[ns++] = k <= 0 ? -1 : c; /* -1: an invalid byte, a separator */
    i += k <= 0 ? 1 : (size_t)k;
    end[ns - 1] = i;
  }
  ns = unescape_unturn(src, off, end, ns);
  for (int i = 0; i < ns;) {
    int32_t c = src[i];
    if (c < 0) {
      if (push_ncp(o, &cap, (sd_ncp){' ', SD_CL_SPACE, 1, 0, 0, {0}, -1, off[i], end[i]})) goto oom;
      i++;
      continue;
    }
    int used = 0, e = -1;
    if (em && ((c >= 0xA9 && classify(c) == SD_CL_SEP) || (c < 0x80 && i + 1 < ns && (src[i + 1] == 0xFE0F || src[i + 1] == 0x20E3))))
      e = sd_emoji_match(em, src + i, ns - i, &used);
    if (e >= 0) {
      if (push_ncp(o, &cap, (sd_ncp){c, SD_CL_EMOJI, 1, 0, 0, {0}, e, off[i], end[i + used - 1]})) goto oom;
      i += used;
      continue;
    }
    if (cjk(c) || c == 0x419 || c == 0x439) { /* kana voicing marks, Hangul syllables, й: kept whole */
      int32_t d = c == 0x419 ? 0x439 : c;
      if (push_ncp(o, &cap, (sd_ncp){d, (uint8_t)classify(d), 1, 0, 0, {0}, -1, off[i], end[i]})) goto oom;
      i++;
      continue;
    }
    utf8proc_int32_t buf[32];
    int last = 0;
    utf8proc_ssize_t m = utf8proc_decompose_char(
        c, buf, 32,
        UTF8PROC_COMPAT | UTF8PROC_DECOMPOSE | UTF8PROC_CASEFOLD | UTF8PROC_STRIPMARK | UTF8PROC_IGNORE |
            UTF8PROC_LUMP,
        &last);
    if (m < 0 || m > 32) {
      buf[0] = ' ';
      m = 1;
    }
    for (utf8proc_ssize_t j = 0; j < m; j++) {
      int32_t d = utf8proc_tolower(buf[j]);
      sd_ncp x = {d, (uint8_t)classify(d), (uint8_t)(accented_latin(c) ? 2 : c >= 0x80), 0, j == 0 && utf8proc_isupper(c), {0}, -1, off[i], end[i]};
      if (d >= 0x80 && !cjk(d) && (x.cls == SD_CL_LETTER || x.cls == SD_CL_SEP)) {
        x.nfold = (uint8_t)confusable_fold(d, x.fold);
        if (x.nfold && x.cls == SD_CL_SEP) x.cls = SD_CL_LETTER; /* 🅽, regional indicators */
      }
      if (push_ncp(o, &cap, x)) goto oom;
    }
    i++;
  }
  free(src);
  free(off);
  free(end);
  return SD_OK;
oom:
  free(src);
  free(off);
  free(end);
  return sd_fail(SD_E_NOMEM, "lexical: out of memory");
}

/* ------------------------------------------------------------------------------------- */
/* pieces and units                                                                        */

static int wordish(int cls) { return cls == SD_CL_LETTER || cls == SD_CL_DIGIT || cls == SD_CL_LEET; }

/* Whether code points [a, b) between two single letters are one symbol that joins letters
 * ("n/u/d/e", "n^u^d^e", "n=u=d=e"): not a bracket, quote or phrase punctuation, which keep
 * their meaning in a prompt ("(a:1.2)", "a, b"). */
static int letter_joiner(const sd_norm *o, int a, int b) {
  if (b - a != 1 || o->v[a].cls != SD_CL_SEP) return 0;
  int32_t c = o->v[a].cp;
  return c < 0x80 && !strchr(",;:!?()[]{}<>\"", (int)c);
}

static int is_digit_cp(int32_t c) { return c >= '0' && c <= '9'; }

/* Whether code points [a, b) between two letters are two or more whitespace characters. */
static int wide_space(const sd_norm *o, int a, int b) {
  if (b - a < 2) return 0;
  for (int i = a; i < b; i++)
    if (o->v[i].cls != SD_CL_SPACE) return 0;
  return 1;
}

/* The units of a run of m single letters (piece indices li[0..m)): the run joined, also
 * without up to two letters at either end, at least three letters each, none twice. */
static void run_units(sd_unit *us, int *nu, int np, const int *li, int m) {
  for (int a = 0; a <= 2 && a < m; a++)
    for (int b = m; b >= m - 2 && b > a; b--) {
      if (b - a < 3) continue;
      int u0 = li[a], u1 = li[b - 1] + 1, dup = 0;
      for (int k = np; k < *nu; k++) dup |= us[k].p0 == u0 && us[k].p1 == u1;
      if (!dup) us[(*nu)++] = (sd_unit){u0, u1, 1};
    }
}

static int segment(sd_norm *o) {
  const sd_ncp *v = o->v;
  int n = o->n;
  sd_piece *ps = malloc(((size_t)n + 1) * sizeof *ps);
  if (!ps) return sd_fail(SD_E_NOMEM, "lexical: out of memory");
  int np = 0, gap = 3, gap_len = 0;
#define GAP_BEFORE() (np == 0 ? 3 : gap_len > 3 ? 3 : gap_len ? gap : 0)
  for (int i = 0; i < n;) {
    int c = v[i].cls;
    if (c == SD_CL_EMOJI) {
      ps[np] = (sd_piece){i, i + 1, GAP_BEFORE(), SD_PIECE_EMOJI, 1, 0, 0, 0};
      np++;
      gap = gap_len = 0;
      i++;
      continue;
    }
    if (c == SD_CL_CJK) {
      int j = i;
      while (j < n && v[j].cls == SD_CL_CJK) j++;
      ps[np] = (sd_piece){i, j, GAP_BEFORE(), SD_PIECE_CJK, 1, 0, 0, 0};
      np++;
      gap = gap_len = 0;
      i = j;
      continue;
    }
    if (wordish(c)) {
      int j = i, alnum = 0, na = 0, fo = 0, acc = 1;
      /* camel case ends a piece: "NudeWoman", "BloodyKnife" read as "Nude" + "Woman" joined
       * by an intra-word gap (so "nudewoman" is still one unit too) */
      while (j < n && wordish(v[j].cls) &&
             !(j > i && v[j].upper && v[j].cls == SD_CL_LETTER && v[j - 1].cls == SD_CL_LETTER && !v[j - 1].upper)) {
        alnum |= v[j].cls != SD_CL_LEET;
        na |= v[j].nonascii && v[j].cls == SD_CL_LETTER;
        acc &= !(v[j].nonascii == 1 && v[j].cls == SD_CL_LETTER);
        fo |= v[j].nfold > 0;
        j++;
      }
      /* a lone symbol run ("!!!", "$") is punctuation, unless it leads into letters */
      if (alnum || (j - i == 1 && v[i].cls == SD_CL_LEET && gap_len == 1)) {
        ps[np] = (sd_piece){i, j, GAP_BEFORE(), SD_PIECE_WORD, na, fo, 0, na && acc};
        np++;
        gap = gap_len = 0;
        if (j < n && wordish(v[j].cls)) gap = gap_len = 1; /* a camel-case split */
      } else {
        gap = 3;
        gap_len++;
      }
      i = j;
      continue;
    }
    int g = c == SD_CL_INTRA ? 1 : c == SD_CL_SPACE ? 2 : 3;
    if (g > gap) gap = g;
    gap_len++;
    i++;
  }
#undef GAP_BEFORE
  /* units: each piece; parts joined by intra-word separators only ("b.l.o.o.d", "self-harm",
   * "b|ood"); runs of >= 3 single characters separated by whitespace, one joining symbol or
   * one emoji ("b l o o d", "n/u/d/e", "n^u^d^e", "n💦u💦d💦e"), also without up to two single
   * letters at either end ("a n u d e" -> "nude"), and the same for each part of such a run
   * between two or more spaces ("n u d e  w o m a n" -> "nude", "woman"), and two single digits
   * one space apart ("5 0" -> "50"). The units per piece stay under 12: one alone, one
   * intra-word join, at most 9 per run and 9 per part of >= 3, one per digit pair. */
  sd_unit *us = malloc(((size_t)np * 12 + 1) * sizeof *us);
  if (!us) {
    free(ps);
    return sd_fail(SD_E_NOMEM, "lexical: out of memory");
  }
  int *li = malloc(((size_t)np + 1) * sizeof *li); /* a run's single letters (below) */
  if (!li) {
    free(ps);
    free(us);
    return sd_fail(SD_E_NOMEM, "lexical: out of memory");
  }
  int nu = 0;
  for (int p = 0; p < np; p++) us[nu++] = (sd_unit){p, p + 1, 0};
  for (int p = 0; p < np;) {
    int q = p + 1;
    while (q < np && ps[q].gap == 1 && ps[q].kind == SD_PIECE_WORD && ps[p].kind == SD_PIECE_WORD) q++;
    if (q - p >= 2) us[nu++] = (sd_unit){p, q, 1};
    p = q;
  }
  for (int p = 0; p < np;) {
    if (ps[p].kind != SD_PIECE_WORD || ps[p].b - ps[p].a != 1) {
      p++;
      continue;
    }
    /* the run's letters: li[0..m), piece indices; one emoji right between two letters is a
     * separator too ("n💦u💦d💦e") */
    int m = 0, q = p + 1;
    li[m++] = p;
    for (;;) {
      if (q < np && ps[q].kind == SD_PIECE_WORD && ps[q].b - ps[q].a == 1 &&
          (ps[q].gap <= 2 || letter_joiner(o, ps[q - 1].b, ps[q].a))) {
        li[m++] = q++;
      } else if (q + 1 < np && ps[q].kind == SD_PIECE_EMOJI && ps[q].gap == 0 && ps[q + 1].gap == 0 &&
                 ps[q + 1].kind == SD_PIECE_WORD && ps[q + 1].b - ps[q + 1].a == 1) {
        li[m++] = q + 1;
        q += 2;
      } else {
        break;
      }
    }
    run_units(us, &nu, np, li, m);
    /* two single digits one space apart are one number as well: lexica's prompts space their
     * digits ("5 0 shades of grey"; "8 k" and longer runs as before). Only a phrase's first word
     * is read from such a unit, so "rule 3 4" is not (docs/safety-detectors.md) */
    if (m == 2 && ps[li[1]].gap == 2 && !wide_space(o, ps[li[0]].b, ps[li[1]].a) && is_digit_cp(o->v[ps[li[0]].a].cp) &&
        is_digit_cp(o->v[ps[li[1]].a].cp))
      us[nu++] = (sd_unit){li[0], li[1] + 1, 1};
    /* two or more spaces between letters part words: "n u d e  w o m a n", "a n i m a l  a b
     * u s e" read "nude" and "abuse" as well as the whole run */
    for (int k0 = 0, k = 1; k <= m; k++)
      if (k == m || wide_space(o, ps[li[k - 1]].b, ps[li[k]].a)) {
        if (k0 > 0 || k < m) run_units(us, &nu, np, li + k0, k - k0);
        k0 = k;
      }
    p = q;
  }
  free(li);
  o->ps = ps;
  o->np = np;
  o->us = us;
  o->nu = nu;
  return SD_OK;
}

int sd_norm_text(const char *text, const sd_emoji_table *em, sd_norm *out) {
  memset(out, 0, sizeof *out);
  out->src = text;
  int rc = normalize_cps(text, em, out);
  if (!rc) rc = segment(out);
  if (rc) sd_norm_free(out);
  return rc;
}

void sd_norm_free(sd_norm *n) {
  free(n->v);
  free(n->ps);
  free(n->us);
  memset(n, 0, sizeof *n);
}

static int leet_char(int32_t c, int alt) {
  switch (c) {
    case '0': return 'o';
    case '1': return alt ? 'l' : 'i';
    case '3': return 'e';
    case '4': return 'a';
    case '5': return 's';
    case '6': return 'g';
    case '7': return 't';
    case '8': return 'b';
    case '9': return 'g';
    case '@': return 'a';
    case '$': return 's';
    case '!': return 'i';
    case '|': return 'l';
    case '+': return 't';
    case 0x20AC: return 'e';
    default: return 0;
  }
}

int sd_norm_unit_text(const sd_norm *nm, const sd_unit *u, int mode, sd_sbuf *out) {
  const sd_ncp *v = nm->v;
  const sd_piece *ps = nm->ps;
  int leet = mode & 3, fold = mode & SD_TEXT_FOLD, mask = mode & SD_TEXT_MASK;
  out->n = 0;
  if (sd_sb_puts(out, "")) return -1;
  int last = ps[u->p1 - 1].b; /* trailing symbols are punctuation ("blood!"), not leetspeak */
  while (last > ps[u->p1 - 1].a && v[last - 1].cls == SD_CL_LEET) last--;
  for (int p = u->p0; p < u->p1; p++) {
    if (ps[p].kind == SD_PIECE_EMOJI) continue; /* an emoji between joined letters separates */
    if (p > u->p0 && (leet || mask)) /* "b|ood": a bar between joined parts reads as l; "n*ked" */
      for (int i = ps[p - 1].b; i < ps[p].a; i++) {
        if (leet && v[i].cp == '|' && sd_sb_puts(out, "l")) return -1;
        if (mask && v[i].cp == '*' && sd_sb_puts(out, "?")) return -1;
      }
    for (int i = ps[p].a; i < ps[p].b && i < last; i++) {
      int32_t c = v[i].cp;
      if (fold && v[i].nfold) {
        if (sd_sb_putn(out, v[i].fold, v[i].nfold)) return -1;
        continue;
      }
      if (leet && (v[i].cls == SD_CL_DIGIT || v[i].cls == SD_CL_LEET)) {
        int l = leet_char(c, leet == SD_TEXT_LEET_L);
        if (l) c = l;
        else if (v[i].cls == SD_CL_LEET) continue;
      } else if (v[i].cls == SD_CL_LEET) {
        continue;
      }
      utf8proc_uint8_t enc[4];
      utf8proc_ssize_t k = utf8proc_encode_char(c, enc);
      if (sd_sb_putn(out, (const char *)enc, (size_t)k)) return -1;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------------------------- */
/* negation                                                                                */

static int in_list(const char *w, const char *const *list) {
  for (; *list; list++)
    if (!strcmp(w, *list)) return 1;
  return 0;
}

/* en, es, fr, de, it, pt, ru, ar; pl, nl, id, uk; sv (diacritics already stripped; Turkish negates
 * after the word, "ciplak degil", which this forward scope does not read) */
static const char *const neg_cues[] = {
    "no", "not", "without", "non", "never", "nor", "sin", "ni", "nunca", "sans", "pas", "aucun", "aucune",
    "jamais", "kein", "keine", "keinen", "keiner", "keinem", "keines", "nicht", "ohne", "nie", "senza", "nessun",
    "nessuna", "nessuno", "sem", "nao", "nem", "nenhum", "nenhuma", "не", "без", "нет", "ни", "لا", "بدون",
    "غير", "ليس", "بلا", "bez", "zaden", "zadna", "zadne", "zadnych", "geen", "niet", "zonder", "nooit",
    "tidak", "tanpa", "bukan", "ні", "немає", "inte", "ingen", "inga", "inget", "aldrig", "utan", NULL};
/* cues read in the source text, with their marks (the normalised forms are other words: vi
 * "chưa", not yet, would read as "chùa", pagoda; hi "बिना", without, as "बन", become): vi, hi */
static const char *const neg_cues_src[] = {"không", "chẳng", "chưa", "बिना", "बगैर", "बग़ैर", NULL};
/* cues after the words they negate (the same phrase, at most SD_NEG_SCOPE words back): tr
 * "çıplak değil", "kan yok", "kan olmadan"; hi "हत्या नहीं", "हिंसा रहित" (source forms) */
static const char *const neg_post[] = {"degil", "yok", "olmadan", NULL};
static const char *const neg_post_src[] = {"नहीं", "रहित", NULL};
/* opposition prefixes ("anti-racism", "anti war"): they negate the one word they are attached to */
static const char *const neg_prefix[] = {"anti", "анти", NULL};
static const char *const neg_only[] = {"only", "just", "merely", "simply", "solely", "solo", "solamente",
                                       "seulement", "nur", "soltanto", "apenas", "только", "فقط", NULL};
/* contrast words, and English words that start a new clause or a second noun phrase ("no
 * mouth attempting to scream", "no mouth and a bloody face", "no weapons while killing") */
static const char *const neg_stop[] = {"but", "except", "yet", "though", "although", "however", "instead", "rather",
                                       "and", "to", "who", "which", "that", "while", "when", "where",
                                       "pero", "sino", "mais", "aber", "sondern", "ma", "però", "mas", "porem",
                                       "но", "لكن", "بل", "ale", "lecz", "maar", "tetapi", "tapi", "але", "nhung", "ama",
                                       "fakat", NULL};

/* Whether a phrase ends between piece q - 1 and piece q although the gap is only
 * whitespace-level: a sentence's end or a spaced dash or bar ("no escape. beksinski",
 * "no rescue - bloody", "no blood | gore") between them, or '!' / '?' run into the word before
 * ("no escape! gore": '!' reads as a letter inside words). Punctuation without a space after it
 * ("u.s", "b.l.o.o.d") does not end one. */
static int phrase_break(const sd_norm *n, int q) {
  const sd_ncp *v = n->v;
  int t = n->ps[q - 1].b, b = n->ps[q].a;
  while (t > n->ps[q - 1].a && v[t - 1].cls == SD_CL_LEET) t--;
  for (int i = t; i < b; i++) {
    int32_t c = v[i].cp;
    if (c == '!' || c == '?') return 1;
    if ((c == '.' || c == '-' || c == '|') && i + 1 < b && v[i + 1].cls == SD_CL_SPACE &&
        (c == '.' || (i > t && v[i - 1].cls == SD_CL_SPACE)))
      return 1;
  }
  return 0;
}

static int is_mark(utf8proc_int32_t c) {
  utf8proc_category_t k = utf8proc_category(c);
  return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_MC || k == UTF8PROC_CATEGORY_ME;
}

/* Whether the UTF-8 bytes s[0, len) equal `cue` (lower case), letters compared lower-cased. */
static int src_equal(const char *s, size_t len, const char *cue) {
  const char *e = s + len;
  while (s < e && *cue) {
    utf8proc_int32_t a, b;
    utf8proc_ssize_t ka = utf8proc_iterate((const utf8proc_uint8_t *)s, e - s, &a);
    utf8proc_ssize_t kb = utf8proc_iterate((const utf8proc_uint8_t *)cue, -1, &b);
    if (ka <= 0 || kb <= 0 || utf8proc_tolower(a) != b) return 0;
    s += ka;
    cue += kb;
  }
  return s == e && !*cue;
}

/* Whether piece p as written (its source bytes and the marks that follow its last letter) is
 * one of `list`. */
static int piece_src_in(const sd_norm *n, int p, const char *const *list) {
  if (!n->src) return 0;
  size_t a = n->v[n->ps[p].a].s0, b = n->v[n->ps[p].b - 1].s1;
  for (;;) {
    utf8proc_int32_t c;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)n->src + b, -1, &c);
    if (k <= 0 || !is_mark(c)) break;
    b += (size_t)k;
  }
  for (; *list; list++)
    if (src_equal(n->src + a, b - a, *list)) return 1;
  return 0;
}

/* A cue after the words it negates: mark the words before piece p, back to the start of its
 * phrase and at most SD_NEG_SCOPE words. */
static void negate_before(sd_norm *n, int p) {
  for (int q = p - 1, k = 0; q >= 0 && k < SD_NEG_SCOPE && n->ps[q + 1].gap <= 2 && !phrase_break(n, q + 1);
       k += q == 0 || n->ps[q].gap != 1, q--)
    n->ps[q].neg = 1;
}

void sd_norm_negation(sd_norm *n) {
  sd_sbuf t = {0}, t2 = {0};
  for (int p = 0; p < n->np; p++) n->ps[p].neg = 0;
  for (int p = 0; p < n->np; p++) {
    if (n->ps[p].kind != SD_PIECE_WORD) continue;
    sd_unit u = {p, p + 1, 0};
    if (sd_norm_unit_text(n, &u, 0, &t)) break;
    if (in_list(t.p, neg_post) || piece_src_in(n, p, neg_post_src)) {
      negate_before(n, p);
      continue;
    }
    int cue = in_list(t.p, neg_cues) || piece_src_in(n, p, neg_cues_src), scope = SD_NEG_SCOPE;
    if (!cue && in_list(t.p, neg_prefix)) cue = 1, scope = 1;
    /* "don't", "isn't": the piece "t" after an apostrophe, after a word ending in n */
    if (!cue && !strcmp(t.p, "t") && p > 0 && n->ps[p].gap == 1 && n->v[n->ps[p].a - 1].cp == '\'') {
      sd_unit w = {p - 1, p, 0};
      if (!sd_norm_unit_text(n, &w, 0, &t2) && t2.n > 1 && t2.p[t2.n - 1] == 'n') cue = 1;
    }
    if (!cue || p + 1 >= n->np || n->ps[p + 1].gap > 2) continue;
    sd_unit nx = {p + 1, p + 2, 0};
    if (n->ps[p + 1].kind == SD_PIECE_WORD) {
      if (sd_norm_unit_text(n, &nx, 0, &t2)) break;
      if (in_list(t2.p, neg_only) || in_list(t2.p, neg_cues)) { /* "not only", "not without" */
        p++;
        continue;
      }
    }
    /* k counts words: pieces joined by intra-word separators ("b.l.o.o.d", "self-harm", camel
     * case) are one word of the scope */
    for (int q = p + 1, k = 0; q < n->np && k < scope && n->ps[q].gap <= 2 && !(q > p + 1 && phrase_break(n, q));
         k += q + 1 >= n->np || n->ps[q + 1].gap != 1, q++) {
      if (n->ps[q].kind == SD_PIECE_WORD) {
        sd_unit w = {q, q + 1, 0};
        if (sd_norm_unit_text(n, &w, 0, &t2)) break;
        if (in_list(t2.p, neg_stop)) break;
      }
      n->ps[q].neg = 1;
    }
  }
  free(t.p);
  free(t2.p);
}

/* CJK cues: UTF-8 strings matched right before / right after a substring. */
static const char *const cjk_pre[] = {"不", "没有", "没", "無", "无", "非", "未", "别", "비", "무", NULL};
static const char *const cjk_post[] = {"なし", "無し", "のない", "がない", "ない", "없는", "없이", "없음", "없고", NULL};
/* Thai cues right before a substring, read in the source text (the normaliser strips the tone
 * marks: "ไม่", not, would read as "ไม้", wood): ไม่มี there is no, ไม่ not, ไร้ and ปราศจาก without */
static const char *const thai_pre_src[] = {"ไม่มี", "ไม่", "ไร้", "ปราศจาก", NULL};

static int cps_equal(const sd_ncp *v, int a, int b, const char *s) {
  for (int i = a; i < b; i++) {
    utf8proc_int32_t c;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s, -1, &c);
    if (k <= 0 || c != v[i].cp) return 0;
    s += k;
  }
  return *s == 0;
}

static int n_cps(const char *s) {
  int n = 0;
  for (; *s; n++) {
    utf8proc_int32_t x;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s, -1, &x);
    s += k > 0 ? k : 1;
  }
  return n;
}

int sd_norm_cjk_negated(const sd_norm *n, int p, int i, int j) {
  const sd_piece *ps = &n->ps[p];
  for (const char *const *c = cjk_pre; *c; c++) {
    int len = n_cps(*c);
    if (i - len >= ps->a && cps_equal(n->v, i - len, i, *c)) return 1;
  }
  for (const char *const *c = cjk_post; *c; c++) {
    int len = n_cps(*c);
    if (j + len <= ps->b && cps_equal(n->v, j, j + len, *c)) return 1;
  }
  if (n->src) {
    size_t start = n->v[ps->a].s0, at = n->v[i].s0;
    for (const char *const *c = thai_pre_src; *c; c++) {
      size_t len = strlen(*c);
      if (at >= start + len && !memcmp(n->src + at - len, *c, len)) return 1;
    }
  }
  return 0;
}

int sd_script_of(const char *word) {
  utf8proc_int32_t c;
  for (const char *s = word; *s;) {
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s, -1, &c);
    if (k <= 0) return SD_SCRIPT_OTHER;
    s += k;
    if (c < 0x80 ? !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) : 0) continue;
    if (c < 0x250 || (c >= 0x1E00 && c <= 0x1EFF)) return SD_SCRIPT_LATIN;
    if (c >= 0x400 && c <= 0x52F) return SD_SCRIPT_CYRILLIC;
    if (c >= 0x600 && c <= 0x6FF) return SD_SCRIPT_ARABIC;
    if (c >= 0x370 && c <= 0x3FF) return SD_SCRIPT_GREEK;
    return SD_SCRIPT_OTHER;
  }
  return *word ? SD_SCRIPT_LATIN : SD_SCRIPT_OTHER; /* digits and symbols only: "1488" */
}
