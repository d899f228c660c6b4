/* safesd_convert: write a model as one single-file checkpoint in the original LDM layout
 * (the inverse of the name mapping the loader uses), optionally changing the float dtype. */
#include <stdlib.h>
#include <string.h>

#include "safesd.h"

#include "core/error.h"
#include "io/safetensors.h"
#include "models/model_source.h"
#include "models/name_map.h"

int safesd_convert(const char *model, const char *config_dir, const char *out, const char *dtype) {
  sd_dtype want = SD_DTYPE_COUNT; /* keep */
  if (dtype) {
    if (!strcmp(dtype, "f16") || !strcmp(dtype, "fp16")) want = SD_F16;
    else if (!strcmp(dtype, "bf16")) want = SD_BF16;
    else if (!strcmp(dtype, "f32") || !strcmp(dtype, "fp32")) want = SD_F32;
    else return sd_fail(SD_E_ARG, "unknown dtype '%s' (f16, bf16 or f32)", dtype);
  }
  sd_model_source *m;
  sd_model_open_opts oo = {config_dir};
  int rc = sd_model_open_ex(model, &oo, &m);
  if (rc) return rc;
  const sd_clip_text_config *tc = sd_model_text_config(m);
  if (sd_model_weights(m, SD_COMP_TEXT)->present && (tc->act != SD_ACT_QUICK_GELU || tc->pad_id != 49407)) {
    sd_model_close(m);
    return sd_fail(SD_E_UNSUPPORTED, "%s: writing an OpenCLIP (SD 2.x) text encoder in the LDM layout is not supported", model);
  }
  size_t total = 0;
  for (int c = 0; c < SD_COMP_COUNT; c++) total += sd_model_weights(m, (sd_component)c)->n;
  char **names = calloc(total ? total : 1, sizeof *names);
  sd_tensor *ts = calloc(total ? total : 1, sizeof *ts);
  void **bufs = calloc(total ? total : 1, sizeof *bufs);
  size_t n = 0;
  if (!names || !ts || !bufs) { rc = sd_fail(SD_E_NOMEM, "out of memory"); goto done; }
  for (int c = 0; c < SD_COMP_COUNT && rc == SD_OK; c++) {
    const sd_component_weights *w = sd_model_weights(m, (sd_component)c);
    for (size_t i = 0; i < w->n && rc == SD_OK; i++) {
      char name[SD_NAME_MAX];
      sd_xform xf;
      if ((rc = sd_ldm_canonical_name((sd_component)c, w->w[i].name, sd_model_unet_config(m), sd_model_vae_config(m),
                                      name, sizeof name, &xf)))
        break;
      sd_tensor t = w->w[i].t;
      if (xf == SD_XFORM_SQUEEZE && t.ndim == 2) { t.ndim = 4; t.shape[2] = t.shape[3] = 1; }
      if (want != SD_DTYPE_COUNT && t.dtype != want && sd_dtype_is_float(t.dtype)) {
        size_t cnt = (size_t)sd_numel(&t);
        float *f = malloc(cnt * sizeof(float) + 1);
        void *dst = malloc(cnt * sd_dtype_size(want) + 1);
        if (!f || !dst) { free(f); free(dst); rc = sd_fail(SD_E_NOMEM, "out of memory converting %s", name); break; }
        sd_to_f32(f, t.data, t.dtype, cnt);
        sd_from_f32(dst, want, f, cnt);
        free(f);
        bufs[n] = dst;
        t.data = dst;
        t.dtype = want;
      }
      names[n] = strdup(name);
      if (!names[n]) { rc = sd_fail(SD_E_NOMEM, "out of memory"); break; }
      ts[n++] = t;
    }
  }
  if (rc == SD_OK) rc = sd_st_write(out, n, (const char *const *)names, ts);
done:
  for (size_t i = 0; i < n; i++) { free(names[i]); free(bufs[i]); }
  free(names);
  free(ts);
  free(bufs);
  sd_model_close(m);
  return rc;
}
