/* A small program linked against an installed libsafesd: check a prompt, generate one image
 * with the bundled model (or MODEL) at a named safety level with an output-image check, and
 * write the PNG and the safety report.
 *
 *   cc generate.c $(pkg-config --cflags --libs safesd) -o generate     (or CMake: see
 *   CMakeLists.txt here)
 *   ./generate "cat face, noto emoji" out.png [STEPS] [MODEL]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <safesd.h>

static int fail(const char *what) {
  fprintf(stderr, "example: %s: %s\n", what, safesd_last_error());
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s PROMPT OUT.png [STEPS] [MODEL]\n", argv[0]);
    return 2;
  }
  printf("safesd %s\n", safesd_version());
  safesd_model *m;
  if (safesd_model_open(argc > 4 ? argv[4] : NULL, NULL, &m)) return fail("opening the model");

  char *verdict = NULL;
  if (safesd_check_string(m, argv[1], NULL, NULL, NULL, NAN, 1, &verdict)) {
    safesd_model_close(m);
    return fail("check");
  }
  printf("check: %s", verdict);
  free(verdict);

  safesd_gen_params p;
  safesd_gen_defaults(&p);
  p.prompt = argv[1];
  p.seed = 42;
  p.steps = argc > 3 ? atoi(argv[3]) : 20;
  p.safety = "high";
  p.image_check = "auto"; /* the model's own judges (the bundled model's CLIP) */
  p.image_check_action = "blur";
  int rc = 1;
  uint8_t *rgb = NULL;
  if (safesd_gen_resolve(m, &p)) { fail("parameters"); goto out; }
  rgb = malloc((size_t)p.width * p.height * 3 * p.batch);
  if (!rgb) goto out;
  safesd_safety_report rep;
  if (safesd_generate_ex(m, &p, rgb, NULL, &rep)) { fail("generate"); goto out; }
  char *params = safesd_gen_parameters_text(m, &p, 0);
  if (safesd_write_png(argv[2], rgb, p.width, p.height, params)) { free(params); fail("writing"); goto out; }
  free(params);
  char *json = safesd_safety_report_json(&rep, 0);
  if (!json) { fail("report"); goto out; }
  printf("report: %s\n", json);
  free(json);
  printf("wrote %s (%dx%d, flagged %d, nsfw %d)\n", argv[2], p.width, p.height, rep.flagged, rep.images[0].nsfw);
  rc = 0;
out:
  free(rgb);
  safesd_model_close(m);
  return rc;
}
