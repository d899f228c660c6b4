/* Previews during sampling (api_internal.h: sd_api_preview): the model's x0 estimate of the
 * batch's first image, decoded by the model's TAESD decoder when it has one (fast) or else by
 * the VAE, as 8-bit RGB for the caller's safesd_preview_fn. */
#include <stdlib.h>

#include "api/api_internal.h"
#include "core/error.h"
#include "models/taesd.h"

int sd_api_preview(safesd_model *m, const safesd_gen_params *p, const float *x0, int C, int h, int w, int step,
                   int total) {
  (void)C;
  if (!p->preview) return SD_OK;
  const int f = m->taesd ? sd_taesd_factor(m->taesd) : sd_vae_factor(m->vae);
  const size_t npx = (size_t)h * f * (size_t)w * f;
  float *img = malloc(sizeof(float) * 3 * npx);
  uint8_t *rgb = malloc(3 * npx);
  int rc = img && rgb ? SD_OK : sd_fail(SD_E_NOMEM, "preview: out of memory");
  if (rc == SD_OK)
    rc = m->taesd ? sd_taesd_decode(m->taesd, m->ex, x0, h, w, img) : sd_vae_decode(m->vae, m->ex, x0, h, w, img);
  if (rc == SD_OK) {
    sd_vae_to_rgb8(img, h * f, w * f, rgb);
    p->preview(p->preview_user, step, total, rgb, w * f, h * f);
  }
  free(img);
  free(rgb);
  return rc ? sd_fail_prefix(rc, "preview: ") : SD_OK;
}
