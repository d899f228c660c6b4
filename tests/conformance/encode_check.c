/* Conformance helper: run the C text encoder on token ids from a .npy file and compare
 * with a reference output (.npy) from PyTorch / diffusers.
 *
 *   encode_check MODEL IDS.npy EXPECTED.npy [--clip-skip N] [--raw] [--tol T] [--threads N]
 *
 * Prints the max abs error and the output scale; exit 0 if max abs error <= tol. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/ops.h"
#include "io/npy.h"
#include "models/clip_text.h"
#include "models/model_source.h"
#include "common/check_err.h"

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s MODEL IDS.npy EXPECTED.npy [--clip-skip N] [--raw] [--tol T] [--threads N]\n", argv[0]);
    return 2;
  }
  sd_clip_text_opts o = {1, 1};
  double tol = 1e-4;
  int threads = 0;
  for (int i = 4; i < argc; i++) {
    if (!strcmp(argv[i], "--clip-skip") && i + 1 < argc) o.clip_skip = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--raw")) o.final_norm = 0;
    else if (!strcmp(argv[i], "--tol") && i + 1 < argc) tol = atof(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else { fprintf(stderr, "unknown argument %s\n", argv[i]); return 2; }
  }
  sd_model_source *m;
  sd_clip_text *te;
  sd_exec *ex;
  sd_tensor ids, ref;
  if (sd_model_open(argv[1], &m) || sd_clip_text_create(m, &te) || sd_exec_create(threads, &ex) ||
      sd_npy_read(argv[2], &ids) || sd_npy_read_f32(argv[3], &ref)) {
    fprintf(stderr, "error: %s\n", sd_errmsg());
    return 1;
  }
  if (ids.ndim != 2 || (ids.dtype != SD_I64 && ids.dtype != SD_I32)) { fprintf(stderr, "ids must be [B, S] int\n"); return 1; }
  int B = (int)ids.shape[0], S = (int)ids.shape[1];
  int D = sd_clip_text_cfg(te)->hidden;
  int64_t want[3] = {B, S, D};
  if (!sd_shape_eq(&ref, 3, want)) { fprintf(stderr, "expected output is not [%d, %d, %d]\n", B, S, D); return 1; }
  int32_t *id32 = malloc(sizeof(int32_t) * B * S);
  for (int i = 0; i < B * S; i++)
    id32[i] = ids.dtype == SD_I64 ? (int32_t)((int64_t *)ids.data)[i] : ((int32_t *)ids.data)[i];
  float *out = malloc(sizeof(float) * (size_t)B * S * D);
  if (sd_clip_text_encode(te, ex, id32, B, S, &o, out)) { fprintf(stderr, "error: %s\n", sd_errmsg()); return 1; }
  double maxerr = 0, scale = 0;
  const float *r = ref.data;
  for (int64_t i = 0; i < (int64_t)B * S * D; i++) {
    maxerr = sd_check_max(maxerr, fabs((double)out[i] - r[i]));
    scale = fmax(scale, fabs((double)r[i]));
  }
  printf("%s: [%d, %d, %d] clip_skip %d%s: max abs error %.3g (tolerance %.3g), output scale %.3g\n", argv[3], B, S,
         D, o.clip_skip, o.final_norm ? "" : " raw", maxerr, tol, scale);
  free(out);
  free(id32);
  free(ids.data);
  free(ref.data);
  sd_clip_text_free(te);
  sd_exec_destroy(ex);
  sd_model_close(m);
  return maxerr <= tol && !isnan(maxerr) ? 0 : 1;
}
