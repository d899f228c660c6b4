/* The `[levels]` section of a concept bank (levels.h). */
#include "safety/levels.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "safety/dual.h"
#include "safety/strategy.h"

static const char *const k_names[SD_LEVEL_COUNT] = {"low", "medium", "high", "max"};

const char *sd_level_name(int i) { return i >= 0 && i < SD_LEVEL_COUNT ? k_names[i] : NULL; }

int sd_level_index(const char *name) {
  for (int i = 0; name && i < SD_LEVEL_COUNT; i++)
    if (!strcmp(name, k_names[i])) return i;
  return -1;
}

static int parse_unit(const char *s, float *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= 0 && v <= 1)) return -1;
  *out = (float)v;
  return 0;
}

int sd_levels_set(sd_levels *L, const char *key, const char *value, const char *file, int line) {
  int i = sd_level_index(key);
  if (i < 0)
    return sd_fail(SD_E_FORMAT, "%s:%d: [levels]: unknown level '%.40s' (low, medium, high, max)", file, line, key);
  sd_level *l = &L->l[i];
  if (l->set) return sd_fail(SD_E_FORMAT, "%s:%d: [levels]: level '%s' given twice (first at line %d)", file, line, key, l->line);
  sd_level v = {.set = 1, .line = line};
  int have_w = 0, have_c = 0;
  const char *p = value;
  for (;;) {
    const char *e = strchr(p, ',');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    char item[96];
    while (n && isspace((unsigned char)*p)) p++, n--;
    while (n && isspace((unsigned char)p[n - 1])) n--;
    if (!n || n >= sizeof item)
      return sd_fail(SD_E_FORMAT, "%s:%d: [levels] %s: %s item (write 'weight X, context Y[, strategy S][, blend B]')",
                     file, line, key, n ? "an over-long" : "an empty");
    memcpy(item, p, n);
    item[n] = 0;
    char *sp = item;
    while (*sp && !isspace((unsigned char)*sp)) sp++;
    char *val = sp;
    while (*val && isspace((unsigned char)*val)) val++;
    *sp = 0;
    if (!*val) return sd_fail(SD_E_FORMAT, "%s:%d: [levels] %s: '%s' has no value", file, line, key, item);
    int dup = 0;
    if (!strcmp(item, "weight")) {
      dup = have_w++;
      if (!dup && parse_unit(val, &v.weight))
        return sd_fail(SD_E_FORMAT, "%s:%d: [levels] %s: weight '%.24s' is not a number in [0, 1]", file, line, key, val);
    } else if (!strcmp(item, "context")) {
      dup = have_c++;
      if (!dup && parse_unit(val, &v.context))
        return sd_fail(SD_E_FORMAT, "%s:%d: [levels] %s: context '%.24s' is not a number in [0, 1]", file, line, key, val);
    } else if (!strcmp(item, "strategy")) {
      dup = v.strategy[0] != 0;
      if (!dup && sd_strategy_parse(val) < 0)
        return sd_fail(SD_E_FORMAT, "%s:%d: [levels] %s: unknown strategy '%.24s' (" SD_STRATEGY_NAMES ")", file, line,
                       key, val);
      if (!dup) snprintf(v.strategy, sizeof v.strategy, "%s", sd_strategy_name((sd_strategy)sd_strategy_parse(val)));
    } else if (!strcmp(item, "blend")) {
      sd_blend b = SD_BLEND_STEP;
      dup = v.blend[0] != 0;
      if (!dup && sd_blend_parse(val, &b))
        return sd_fail(SD_E_FORMAT, "%s:%d: [levels] %s: unknown blend '%.24s' (step, final)", file, line, key, val);
      if (!dup) snprintf(v.blend, sizeof v.blend, "%s", sd_blend_name(b));
    } else {
      return sd_fail(SD_E_FORMAT, "%s:%d: [levels] %s: unknown item '%.24s' (weight, context, strategy, blend)", file,
                     line, key, item);
    }
    if (dup) return sd_fail(SD_E_FORMAT, "%s:%d: [levels] %s: '%s' given twice", file, line, key, item);
    if (!e) break;
    p = e + 1;
  }
  if (!have_w || !have_c)
    return sd_fail(SD_E_FORMAT, "%s:%d: [levels] %s: needs both 'weight' and 'context'", file, line, key);
  *l = v;
  return SD_OK;
}

char *sd_levels_section(const sd_levels *L, const char *comment) {
  size_t cap = 64 + (comment ? 2 * strlen(comment) + 16 : 0) + SD_LEVEL_COUNT * 160, o = 0;
  char *s = malloc(cap);
  if (!s) return NULL;
  o += (size_t)snprintf(s + o, cap - o, "[levels]\n");
  for (const char *c = comment; c && *c;) { /* each comment line prefixed "# " */
    const char *e = strchr(c, '\n');
    size_t n = e ? (size_t)(e - c) : strlen(c);
    o += (size_t)snprintf(s + o, cap - o, "# %.*s\n", (int)n, c);
    c = e ? e + 1 : c + n;
  }
  for (int i = 0; i < SD_LEVEL_COUNT; i++) {
    const sd_level *l = &L->l[i];
    if (!l->set) continue;
    if (!(l->weight >= 0 && l->weight <= 1) || !(l->context >= 0 && l->context <= 1) ||
        (l->strategy[0] && sd_strategy_parse(l->strategy) < 0)) {
      free(s);
      return NULL;
    }
    o += (size_t)snprintf(s + o, cap - o, "%s = weight %.6g, context %.6g", k_names[i], (double)l->weight,
                          (double)l->context);
    if (l->strategy[0]) o += (size_t)snprintf(s + o, cap - o, ", strategy %s", l->strategy);
    if (l->blend[0]) o += (size_t)snprintf(s + o, cap - o, ", blend %s", l->blend);
    o += (size_t)snprintf(s + o, cap - o, "\n");
  }
  snprintf(s + o, cap - o, "\n");
  return s;
}
