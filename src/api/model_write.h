/* Writing a model back out, with some tensors replaced: the single-file LDM checkpoint of
 * `safesd convert`, and a diffusers folder copy (what `safesd edit uce` writes). */
#ifndef SD_API_MODEL_WRITE_H
#define SD_API_MODEL_WRITE_H

#include <stddef.h>

#include "core/tensor.h"
#include "models/model_source.h"

/* A tensor to write instead of the model's own: by component and internal name. Its shape
 * must be the model tensor's (as the engine sees it); for the folder writer its dtype must
 * also be the stored one (the caller converts). */
typedef struct sd_tensor_override {
  sd_component comp;
  const char *name;
  sd_tensor t;
} sd_tensor_override;

/* One single-file checkpoint in the original LDM layout, written atomically: every tensor of
 * m under its LDM name (the inverse of the loader's mapping), float tensors converted to
 * `want` (SD_DTYPE_COUNT = as stored), overrides in place of the model's tensors (converted
 * like the rest), and the given __metadata__ (n_meta pairs, may be 0). SD 1.x text encoders
 * only (SD_E_UNSUPPORTED otherwise). An override that names no tensor of m is SD_E_ARG. */
int sd_write_ldm_file(const sd_model_source *m, const char *out, sd_dtype want,
                      const sd_tensor_override *ov, size_t n_ov, size_t n_meta,
                      const char *const *meta_keys, const char *const *meta_values);

/* A copy of m's diffusers folder at `out` (which must not exist): every file and folder of the
 * source copied byte for byte (symlinks followed; dot-files left out), except that each
 * component holding an override has its weights file rewritten with the overrides (every
 * other tensor and the file's __metadata__ kept as they are) and the other weight files of
 * that component's folder (.safetensors, .bin, .ckpt, ... variants that would still hold the
 * unedited weights) left out. `extra_name`/`extra` (NULL for none) is one more file written at
 * the top of the copy. The copy is built in a temporary folder beside `out` and renamed at the
 * end; on error it is removed, so nothing is left at out. *skipped (if skipped is not NULL)
 * receives the source paths left out, ", "-joined and malloc'ed, or NULL when none. */
int sd_write_diffusers_copy(const sd_model_source *m, const char *out, const sd_tensor_override *ov,
                            size_t n_ov, const char *extra_name, const char *extra, char **skipped);

#endif
