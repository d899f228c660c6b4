/* libFuzzer target: the model config parsers (models/config.h) and the LDM name map
 * (models/name_map.h).
 *
 * The input is given to each of sd_parse_text_config_json, sd_parse_unet_config_json,
 * sd_parse_vae_config_json and sd_parse_scheduler_config_json. Each must either succeed with a
 * configuration that passes its own consistency check (and, when small enough, yields its
 * tensor list), or fail with SD_E_FORMAT / SD_E_UNSUPPORTED, leave the output untouched and
 * set a printable one-line message that starts with the label.
 *
 * The input is also split into lines, taken as tensor names of a single-file checkpoint:
 * sd_ldm_map_build either fails cleanly or maps every name without overrunning anything, and
 * every mapped name is a non-empty string of bounded length.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "models/config.h"
#include "models/model_source.h"
#include "models/name_map.h"
#include "fuzz_check.h"

#define LABEL "fuzz/config.json"


static void check_fail(int rc, const char *label) {
  CHECK(rc == SD_E_FORMAT || rc == SD_E_UNSUPPORTED);
  const char *msg = sd_errmsg();
  size_t l = strlen(label);
  CHECK(strncmp(msg, label, l) == 0 && msg[l] == ':');
  for (const unsigned char *m = (const unsigned char *)msg; *m; m++) CHECK(*m >= 0x20 && *m != 0x7f);
}

static void specs_ok(sd_tensor_specs *s) {
  for (size_t i = 0; i < s->n; i++) {
    CHECK(s->v[i].name[0] != 0);
    CHECK(s->v[i].ndim >= 1 && s->v[i].ndim <= 4);
    for (int d = 0; d < s->v[i].ndim; d++) CHECK(s->v[i].shape[d] >= 1);
  }
  sd_tensor_specs_free(s);
}

static void fuzz_parsers(const char *buf, size_t size) {
  sd_clip_text_config t, t0;
  memset(&t, 0x5a, sizeof t);
  t0 = t;
  int rc = sd_parse_text_config_json(buf, size, LABEL, &t);
  if (rc == SD_OK) {
    CHECK(sd_text_config_check(&t, LABEL) == SD_OK);
    if ((int64_t)t.layers * t.hidden <= (1 << 16)) {
      sd_tensor_specs s = {0};
      CHECK(sd_text_config_tensors(&t, &s) == SD_OK);
      CHECK(s.n == 2 + 16 * (size_t)t.layers + 2);
      specs_ok(&s);
    }
  } else {
    check_fail(rc, LABEL);
    CHECK(memcmp(&t, &t0, sizeof t) == 0);
  }

  sd_unet_config u, u0;
  memset(&u, 0x5a, sizeof u);
  u0 = u;
  rc = sd_parse_unet_config_json(buf, size, LABEL, &u);
  if (rc == SD_OK) {
    CHECK(sd_unet_config_check(&u, LABEL) == SD_OK);
    CHECK(u.n_levels >= 1 && u.n_levels <= SD_MAX_LEVELS);
    for (int i = 0; i < u.n_levels; i++) CHECK(u.heads[i] * u.head_dim[i] == u.block_out_channels[i]);
    if (u.layers_per_block * u.transformer_layers <= 16) {
      sd_tensor_specs s = {0};
      CHECK(sd_unet_config_tensors(&u, &s) == SD_OK);
      specs_ok(&s);
    }
  } else {
    check_fail(rc, LABEL);
    CHECK(memcmp(&u, &u0, sizeof u) == 0);
  }

  sd_vae_config v, v0;
  memset(&v, 0x5a, sizeof v);
  v0 = v;
  rc = sd_parse_vae_config_json(buf, size, LABEL, &v);
  if (rc == SD_OK) {
    CHECK(sd_vae_config_check(&v, LABEL) == SD_OK);
    if (v.layers_per_block <= 16) {
      sd_tensor_specs s = {0};
      CHECK(sd_vae_config_tensors(&v, &s) == SD_OK);
      specs_ok(&s);
    }
  } else {
    check_fail(rc, LABEL);
    CHECK(memcmp(&v, &v0, sizeof v) == 0);
  }

  int pred = 7;
  rc = sd_parse_scheduler_config_json(buf, size, LABEL, &pred);
  if (rc == SD_OK) CHECK(pred == 0 || pred == 1);
  else { check_fail(rc, LABEL); CHECK(pred == 7); }
}

static void fuzz_names(const char *data, size_t size) {
  enum { MAX_NAMES = 4096 };
  char *copy = malloc(size + 1);
  const char **names = malloc(MAX_NAMES * sizeof *names);
  CHECK(copy && names);
  memcpy(copy, data, size);
  copy[size] = 0;
  size_t n = 0;
  for (char *p = copy; n < MAX_NAMES;) {
    names[n++] = p;
    char *nl = memchr(p, '\n', (size_t)(copy + size - p));
    if (!nl) break;
    *nl = 0;
    p = nl + 1;
  }
  sd_ldm_map *map = NULL;
  int rc = sd_ldm_map_build(names, n, "fuzz.safetensors", &map);
  if (rc == SD_OK) {
    for (size_t i = 0; i < n; i++) {
      sd_mapped_name out[3];
      sd_ignore_kind ign = SD_IGN_COUNT;
      int k = sd_ldm_map_name(map, names[i], out, &ign);
      CHECK(k == 0 || k == 1 || k == 3);
      if (k == 0) CHECK(ign > SD_IGN_NONE && ign < SD_IGN_COUNT);
      for (int j = 0; j < k; j++) {
        size_t len = strnlen(out[j].name, sizeof out[j].name);
        CHECK(len > 0 && len < sizeof out[j].name);
        CHECK((unsigned)out[j].comp < SD_COMP_COUNT);
      }
    }
    sd_ldm_map_free(map);
  } else {
    CHECK(rc == SD_E_FORMAT || rc == SD_E_UNSUPPORTED);
    CHECK(map == NULL);
  }
  /* the diffusers-side map on the same names */
  for (size_t i = 0; i < n; i++) {
    sd_mapped_name out;
    sd_ignore_kind ign;
    for (int c = 0; c < SD_COMP_COUNT; c++) {
      int k = sd_diffusers_map_name((sd_component)c, names[i], &out, &ign);
      CHECK(k == 0 || (k == 1 && strnlen(out.name, sizeof out.name) < sizeof out.name));
    }
  }
  free(names);
  free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sd_clear_error();
  fuzz_parsers((const char *)data, size);
  fuzz_names((const char *)data, size);
  return 0;
}
