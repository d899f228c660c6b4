/* safesd_convert: write a model as one single-file checkpoint in the original LDM layout
 * (the inverse of the name mapping the loader uses), optionally changing the float dtype.
 * The writer itself is api/model_write.c (shared with `safesd edit uce`). */
#include <string.h>

#include "safesd.h"

#include "api/model_write.h"
#include "core/error.h"
#include "models/model_source.h"

int safesd_convert(const char *model, const char *config_dir, const char *out, const char *dtype) {
  sd_dtype want = SD_DTYPE_COUNT; /* keep */
  if (dtype) {
    if (!strcmp(dtype, "f16") || !strcmp(dtype, "fp16")) want = SD_F16;
    else if (!strcmp(dtype, "bf16")) want = SD_BF16;
    else if (!strcmp(dtype, "f32") || !strcmp(dtype, "fp32")) want = SD_F32;
    else return sd_fail(SD_E_ARG, "unknown dtype '%s' (f16, bf16 or f32)", dtype);
  }
  sd_model_source *m;
  sd_model_open_opts oo = {config_dir, 1};
  int rc = sd_model_open_ex(model, &oo, &m);
  if (rc) return rc;
  rc = sd_write_ldm_file(m, out, want, NULL, 0, 0, NULL, NULL);
  sd_model_close(m);
  return rc;
}
