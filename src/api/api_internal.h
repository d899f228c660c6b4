/* What the public API's objects hold (shared by the files of src/api/). */
#ifndef SD_API_INTERNAL_H
#define SD_API_INTERNAL_H

#include "core/ops.h"
#include "models/clip_text.h"
#include "models/model_source.h"
#include "models/unet.h"
#include "models/vae.h"
#include "text/tokenizer.h"

struct safesd_model {
  sd_model_source *src;
  sd_exec *ex;
  /* built on first use, so that opening a model for one job stays cheap */
  sd_tokenizer *tok;
  sd_clip_text *text;
  sd_unet *unet;
  sd_vae *vae;
};

/* Build the text side (tokenizer + text encoder) if not built yet. */
int sd_api_need_text(struct safesd_model *m);

#endif
