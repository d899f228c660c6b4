/* Helper of tests/conformance/test_eval_clip_text.sh: the CLIP text embeddings
 * (judge/clip_textproj.h) of each line of stdin, one line of space-separated floats each.
 *   eval_clip_text_check CLIP_DIR MODEL_DIR < texts */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/ops.h"
#include "judge/clip_textproj.h"

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s CLIP_DIR MODEL_DIR < texts\n", argv[0]);
    return 2;
  }
  sd_clip_textproj *t;
  sd_exec *ex;
  if (sd_clip_textproj_load(argv[1], argv[2], &t) || sd_exec_create(1, &ex)) {
    fprintf(stderr, "%s\n", sd_errmsg());
    return 1;
  }
  int P = sd_clip_textproj_dim(t), rc = 0;
  float *e = malloc(sizeof(float) * (size_t)P);
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  while (e && (n = getline(&line, &cap, stdin)) > 0) {
    if (line[n - 1] == '\n') line[n - 1] = 0;
    const char *txt = line;
    if (sd_clip_textproj_embed(t, ex, &txt, 1, e)) {
      fprintf(stderr, "%s\n", sd_errmsg());
      rc = 1;
      break;
    }
    for (int p = 0; p < P; p++) printf("%s%.9g", p ? " " : "", e[p]);
    putchar('\n');
  }
  free(line);
  free(e);
  sd_exec_destroy(ex);
  sd_clip_textproj_free(t);
  return rc;
}
