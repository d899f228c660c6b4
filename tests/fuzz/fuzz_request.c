/* libFuzzer target: `safesd serve`'s request validation (src/server/routes.c, compiled into
 * this target) on untrusted bodies.
 *
 * The first byte picks the route (0 txt2img, 1 img2img, 2 OpenAI images), the rest is the
 * body, loaded as the server loads it (jansson, duplicate keys refused, objects only). The
 * parser runs with the server's default limits for a 64×64 model. Invariants: it returns 0
 * or -1; on -1 the message is a non-empty printable line of UTF-8 (request text quoted in
 * it cleaned: srv_clean_text); on 0 the job holds a prompt, steps within --max-steps, a size that
 * is a positive multiple of 8 within --max-side, images within --max-images, a finite CFG
 * scale, and for img2img an init image of that size and a strength in (0, 1]; a job is
 * always freed without a leak.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/error.h"
#include "server/server_internal.h"
#include "fuzz_check.h"

static int printable_line(const char *m) {
  if (!m || !*m) return 0;
  for (const unsigned char *p = (const unsigned char *)m; *p; p++)
    if (*p < 0x20 || *p == 0x7f) return 0;
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 65536) return 0;
  int route = data[0] % 3;
  json_error_t je;
  json_t *body = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, &je);
  if (!body) return 0;
  if (!json_is_object(body)) {
    json_decref(body);
    return 0;
  }
  sd_server_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.safety = "medium";
  cfg.min_safety = "off";
  cfg.max_images = 16;
  cfg.max_steps = 150;
  cfg.max_side = 128;
  srv_info si = {&cfg, "safesd-emoji", "models/safesd-emoji", 64, 64, "ddim", 0, 0.0f, 0.0f};
  srv_job *j = calloc(1, sizeof *j);
  CHECK(j != NULL);
  char err[600] = "";
  const char *field = NULL;
  int rc = route == 2 ? srv_parse_openai(&si, body, j, err, sizeof err, &field)
                      : srv_parse_a1111(&si, body, j, route == 1, err, sizeof err, &field);
  CHECK(rc == 0 || rc == -1);
  if (rc) {
    CHECK(printable_line(err) && sd_text_check_utf8("the message", err) == SD_OK);
  } else {
    const safesd_gen_params *p = &j->p;
    CHECK(j->prompt != NULL && p->prompt != NULL);
    CHECK(p->steps >= 1 && p->steps <= cfg.max_steps);
    CHECK(p->width >= 8 && p->width <= cfg.max_side && p->width % 8 == 0);
    CHECK(p->height >= 8 && p->height <= cfg.max_side && p->height % 8 == 0);
    CHECK(p->batch >= 1 && j->n_iter >= 1 && (long long)p->batch * j->n_iter <= cfg.max_images);
    CHECK(isfinite(p->cfg_scale));
    if (route == 1) {
      CHECK(p->init_image != NULL && p->init_width == p->width && p->init_height == p->height);
      CHECK(p->strength > 0 && p->strength <= 1);
    } else {
      CHECK(p->init_image == NULL);
    }
  }
  json_decref(body);
  srv_job_free(j);
  return 0;
}
