/* libFuzzer target: prompt-set files (`safesd eval --set`, `safesd calibrate`, `check -f`
 * read CSV and text files that users bring: I2P's CSV, their own lists) and the RFC 4180
 * record reader under them.
 *
 * The first input byte picks the file kind (even: a .csv, odd: a .txt); the rest is the file,
 * written to a private temporary folder and loaded with sd_prompt_set_load("unsafe=PATH").
 * Invariants: the load succeeds, or fails with SD_E_FORMAT or SD_E_NOMEM (a row limit) and a
 * printable one-line message; on success every row has a prompt, a category, a label and a
 * scene string, `hard` is -1, 0 or 1, and a seed only where the file has a seed column. The
 * record reader, run on the raw bytes, returns at most `max` fields per record, always moves
 * forward and ends; every set and field is freed (LeakSanitizer).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "io/prompts.h"
#include "fuzz_check.h"

static char g_dir[64];

static void remove_dir(void) { /* at exit (best effort): the file and its folder */
  char path[128];
  snprintf(path, sizeof path, "%s/set.csv", g_dir);
  unlink(path);
  snprintf(path, sizeof path, "%s/set.txt", g_dir);
  unlink(path);
  rmdir(g_dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!g_dir[0]) {
    snprintf(g_dir, sizeof g_dir, "/tmp/safesd-fuzz-promptset-XXXXXX");
    if (!mkdtemp(g_dir)) abort();
    atexit(remove_dir);
  }
  if (size < 1 || size > 65536) return 0;
  /* the record reader on the raw bytes */
  char *fields[8];
  size_t pos = 0;
  int n, records = 0;
  while ((n = sd_csv_record((const char *)data + 1, size - 1, &pos, fields, 8)) > 0) {
    CHECK(n <= 8 && pos <= size - 1);
    for (int i = 0; i < n; i++) {
      CHECK(fields[i] != NULL);
      free(fields[i]);
    }
    CHECK(++records <= (int)size); /* each record consumes input: no endless loop */
  }
  CHECK(n == 0);
  /* the whole file */
  char path[128];
  snprintf(path, sizeof path, "%s/set.%s", g_dir, data[0] % 2 ? "txt" : "csv");
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL);
  CHECK(fwrite(data + 1, 1, size - 1, f) == size - 1);
  CHECK(fclose(f) == 0);
  char spec[160];
  snprintf(spec, sizeof spec, "unsafe=%s", path);
  sd_prompt_set *s = NULL;
  int rc = sd_prompt_set_load(spec, &s);
  if (rc) {
    CHECK(rc == SD_E_FORMAT || rc == SD_E_NOMEM);
    CHECK(s == NULL);
    const char *m = sd_errmsg();
    CHECK(*m);
    for (const unsigned char *p = (const unsigned char *)m; *p; p++) CHECK(*p >= 0x20 && *p != 0x7f);
  } else {
    CHECK(s != NULL && s->n >= 0 && (s->n == 0 || s->rows));
    for (int i = 0; i < s->n; i++) {
      const sd_prompt_row *r = &s->rows[i];
      CHECK(r->prompt && r->category && r->label && r->scene);
      CHECK(r->hard >= -1 && r->hard <= 1);
      CHECK(!r->has_seed || s->has_seeds);
    }
    sd_prompt_set_free(s);
  }
  return 0;
}
