/* `safesd demo`: a picture grid of prompts x safety levels (fixed seeds) as one PNG and a
 * small HTML page that names every row and column and what the safety layer did. */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safesd.h"
#include "args.h"
#include "demo.h"
#include "io/fileio.h"

static const char *k_demo_help =
    "usage: safesd demo [-m MODEL] [-o DIR] [options]\n"
    "\n"
    "Render a grid: one row per prompt, one column per safety level, the same seed in every\n"
    "cell. Writes DIR/demo.png (the grid), DIR/cells/rROW_LEVEL.png (each image, with its\n"
    "PNG metadata) and DIR/index.html (the grid with prompts, levels and, per row, what the\n"
    "detectors found and the safe text used). Flagged prompts change with the level; every\n"
    "other prompt is the same image in every column.\n"
    "\n"
    "  -m, --model PATH     model (default: the bundled model, models/safesd-emoji)\n"
    "      --prompts FILE   one prompt per line, '#' comments (default: the model's demo.txt)\n"
    "      --levels LIST    comma-separated safety levels (default off,low,medium,high,max)\n"
    "  -o, --output DIR     output folder (default demo)\n"
    "      --steps N        sampling steps (default 20)\n"
    "      --cfg-scale X    guidance scale (default 7.5)\n"
    "  -s, --seed N         seed of every cell (default 7)\n"
    "      --scale N        upscale each cell N times in demo.png (nearest; default: 2 for\n"
    "                       images smaller than 256 px, else 1)\n"
    "  -t, --threads N      worker threads (default: all CPUs; 1 for a UNet under 20 M\n"
    "                       parameters, like the bundled model's)\n"
    "  -q, --quiet          no progress\n"
    "  -h, --help           this help\n";

#define MAX_PROMPTS 64
#define MAX_LEVELS 8
#define GAP 4

typedef struct {
  char *text[MAX_PROMPTS];
  int n;
} prompt_list;

static int read_prompts(const char *path, prompt_list *pl) {
  FILE *f = cli_open_input(path, "a prompts file (one prompt per line)");
  if (!f) return cli_fail("demo"), -1;
  char line[2048];
  int lineno = 0, rc = 0;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    size_t n = strlen(line);
    if (n == sizeof line - 1 && line[n - 1] != '\n') {
      fprintf(stderr, "safesd demo: %s:%d: line too long\n", path, lineno);
      rc = -1;
      break;
    }
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ')) line[--n] = 0;
    char *s = line;
    while (*s == ' ' || *s == '\t') s++;
    if (!*s || *s == '#') continue;
    if (pl->n == MAX_PROMPTS) {
      fprintf(stderr, "safesd demo: %s: more than %d prompts\n", path, MAX_PROMPTS);
      rc = -1;
      break;
    }
    if (!(pl->text[pl->n++] = strdup(s))) { rc = -1; break; }
  }
  fclose(f);
  if (!rc && pl->n == 0) { fprintf(stderr, "safesd demo: %s holds no prompt\n", path); rc = -1; }
  return rc;
}

static void html_escape(FILE *f, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
      case '<': fputs("&lt;", f); break;
      case '>': fputs("&gt;", f); break;
      case '&': fputs("&amp;", f); break;
      case '"': fputs("&quot;", f); break;
      default: fputc(*s, f);
    }
  }
}

typedef struct {
  int flagged;
  char *categories, *detection, *safe_text;
} row_info;

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

int cli_demo(int argc, char **argv) {
  static const struct option opts[] = {
      {"model", required_argument, 0, 'm'}, {"prompts", required_argument, 0, 'P'},
      {"levels", required_argument, 0, 'l'}, {"output", required_argument, 0, 'o'},
      {"steps", required_argument, 0, 'S'}, {"cfg-scale", required_argument, 0, 'g'},
      {"seed", required_argument, 0, 's'},  {"scale", required_argument, 0, 'x'},
      {"threads", required_argument, 0, 't'}, {"quiet", no_argument, 0, 'q'},
      {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
  const char *model = NULL, *prompts = NULL, *outdir = "demo";
  char levels_buf[256] = "off,low,medium,high,max";
  int steps = 20, scale = 0, threads = 0, quiet = 0, c;
  const int tty = isatty(2);
  float cfg = 7.5f;
  unsigned long long seed = 7;
  uint64_t seed64;
  long v;
  while ((c = getopt_long(argc, argv, "m:o:s:t:qh", opts, NULL)) != -1) {
    switch (c) {
      case 'm': model = optarg; break;
      case 'P': prompts = optarg; break;
      case 'l':
        if (strlen(optarg) >= sizeof levels_buf) { fputs("safesd demo: --levels is too long\n", stderr); return 2; }
        strcpy(levels_buf, optarg);
        break;
      case 'o': outdir = optarg; break;
      case 'S': if (cli_parse_long(optarg, 1, 1000, &v)) { fputs("safesd demo: --steps takes 1..1000\n", stderr); return 2; } steps = (int)v; break;
      case 'g': if (cli_parse_float(optarg, &cfg) || !(cfg >= 0 && cfg <= 100)) { fputs("safesd demo: --cfg-scale takes 0..100\n", stderr); return 2; } break;
      case 's': if (cli_parse_u64(optarg, &seed64)) { fputs("safesd demo: --seed takes 0..2^64-1\n", stderr); return 2; } seed = seed64; break;
      case 'x': if (cli_parse_long(optarg, 1, 16, &v)) { fputs("safesd demo: --scale takes 1..16\n", stderr); return 2; } scale = (int)v; break;
      case 't': if (cli_parse_long(optarg, 0, 256, &v)) { fputs("safesd demo: --threads takes 0..256\n", stderr); return 2; } threads = (int)v; break;
      case 'q': quiet = 1; break;
      case 'h': fputs(k_demo_help, stdout); return 0;
      default: fputs("safesd demo: unknown option (see 'safesd demo --help')\n", stderr); return 2;
    }
  }
  if (optind < argc) { fputs("safesd demo: unexpected argument (see 'safesd demo --help')\n", stderr); return 2; }

  const char *levels[MAX_LEVELS];
  int nl = 0;
  for (char *tok = strtok(levels_buf, ","); tok; tok = strtok(NULL, ",")) {
    if (nl == MAX_LEVELS) { fprintf(stderr, "safesd demo: at most %d levels\n", MAX_LEVELS); return 2; }
    levels[nl++] = tok;
  }
  if (!nl) { fputs("safesd demo: --levels is empty\n", stderr); return 2; }

  char mpath[4096], ppath[4200];
  if (!model) {
    if (safesd_bundled_model(mpath, sizeof mpath)) {
      fprintf(stderr, "safesd demo: no -m given, and the bundled model: %s\n", safesd_last_error());
      return 1;
    }
    model = mpath;
  }
  if (!prompts) {
    snprintf(ppath, sizeof ppath, "%s/demo.txt", model);
    prompts = ppath;
  }
  prompt_list pl = {{0}, 0};
  if (read_prompts(prompts, &pl)) return 1;

  safesd_model_options mo = {.n_threads = threads};
  safesd_model *m = NULL;
  int rc = 1;
  uint8_t *grid = NULL, *rgb = NULL;
  row_info rows[MAX_PROMPTS];
  memset(rows, 0, sizeof rows);
  if (safesd_model_open(model, &mo, &m)) { fprintf(stderr, "safesd demo: opening model: %s\n", safesd_last_error()); goto out; }

  safesd_gen_params p;
  safesd_gen_defaults(&p);
  p.prompt = pl.text[0];
  p.steps = steps;
  p.cfg_scale = cfg;
  p.seed = seed;
  if (safesd_gen_resolve(m, &p)) { fprintf(stderr, "safesd demo: %s\n", safesd_last_error()); goto out; }
  const int W = p.width, H = p.height;
  if (!scale) scale = (W < 256 && H < 256) ? 2 : 1;
  const int cw = W * scale, ch = H * scale;
  const int GW = nl * cw + (nl + 1) * GAP, GH = pl.n * ch + (pl.n + 1) * GAP;
  grid = malloc((size_t)GW * GH * 3);
  rgb = malloc((size_t)W * H * 3);
  if (!grid || !rgb) { fputs("safesd demo: out of memory\n", stderr); goto out; }
  memset(grid, 255, (size_t)GW * GH * 3);

  char path[4600];
  snprintf(path, sizeof path, "%s/cells/x", outdir);
  sd_mkdirs_for(path);
  for (int r = 0; r < pl.n; r++) {
    for (int l = 0; l < nl; l++) {
      safesd_gen_defaults(&p);
      p.prompt = pl.text[r];
      p.steps = steps;
      p.cfg_scale = cfg;
      p.seed = seed;
      p.safety = levels[l];
      safesd_safety_report rep;
      if (safesd_gen_resolve(m, &p) || safesd_generate_ex(m, &p, rgb, NULL, &rep)) {
        fprintf(stderr, "safesd demo: \"%s\" at %s: %s\n", pl.text[r], levels[l], safesd_last_error());
        goto out;
      }
      if (rep.checked && !rows[r].detection) {
        rows[r].flagged = rep.flagged;
        rows[r].categories = dup_or_empty(rep.categories);
        rows[r].detection = dup_or_empty(rep.detection);
        rows[r].safe_text = dup_or_empty(rep.flagged ? rep.safety_text : NULL);
      }
      char *params = safesd_gen_parameters_text(m, &p, 0);
      snprintf(path, sizeof path, "%s/cells/r%02d_%s.png", outdir, r, levels[l]);
      int wrc = safesd_write_png(path, rgb, W, H, params);
      free(params);
      if (wrc) { fprintf(stderr, "safesd demo: writing %s: %s\n", path, safesd_last_error()); goto out; }
      const int x0 = GAP + l * (cw + GAP), y0 = GAP + r * (ch + GAP);
      for (int y = 0; y < ch; y++)
        for (int x = 0; x < cw; x++)
          memcpy(grid + ((size_t)(y0 + y) * GW + x0 + x) * 3, rgb + ((size_t)(y / scale) * W + x / scale) * 3, 3);
      if (!quiet && tty) {
        fprintf(stderr, "\rdemo: %d/%d images", r * nl + l + 1, pl.n * nl);
        fflush(stderr);
      }
    }
    /* into a log or a pipe: one line per prompt, no carriage returns */
    if (!quiet && !tty) fprintf(stderr, "demo: %d/%d images\n", (r + 1) * nl, pl.n * nl);
  }
  if (!quiet && tty) fputc('\n', stderr);
  snprintf(path, sizeof path, "%s/demo.png", outdir);
  char meta[4800];
  snprintf(meta, sizeof meta, "safesd demo grid: %d prompts x levels %s; %d steps, CFG %g, seed %llu", pl.n,
           prompts, steps, (double)cfg, seed);
  if (safesd_write_png(path, grid, GW, GH, meta)) { fprintf(stderr, "safesd demo: writing %s: %s\n", path, safesd_last_error()); goto out; }

  snprintf(path, sizeof path, "%s/index.html", outdir);
  sd_atomic_file af;
  if (sd_atomic_open(&af, path)) { fprintf(stderr, "safesd demo: %s\n", safesd_last_error()); goto out; }
  FILE *f = af.f;
  fprintf(f, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>safesd demo</title>\n"
             "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 8px;text-align:center;"
             "vertical-align:middle}td.p{text-align:left;max-width:22em}tr.f td.p{color:#a00}"
             "img{image-rendering:pixelated;width:%dpx}small{color:#555}</style></head><body>\n"
             "<h1>safesd demo</h1>\n<p>Model <code>", cw);
  html_escape(f, model);
  fprintf(f, "</code>; %d steps, CFG %g, seed %llu in every cell. Rows in red were flagged by the detectors: "
             "they change with the safety level. Every other row is the same image in every column "
             "(the safety layer does not touch it).</p>\n<table>\n<tr><th>prompt</th>", steps, (double)cfg, seed);
  for (int l = 0; l < nl; l++) { fputs("<th>", f); html_escape(f, levels[l]); fputs("</th>", f); }
  fputs("</tr>\n", f);
  for (int r = 0; r < pl.n; r++) {
    fprintf(f, "<tr%s><td class=\"p\">", rows[r].flagged ? " class=\"f\"" : "");
    html_escape(f, pl.text[r]);
    if (rows[r].flagged) {
      fputs("<br><small>flagged: ", f);
      html_escape(f, rows[r].categories);
      fputs("; safe text: ", f);
      html_escape(f, rows[r].safe_text);
      fputs("</small>", f);
    }
    if (rows[r].detection) {
      fputs("<br><small>", f);
      html_escape(f, rows[r].detection);
      fputs("</small>", f);
    }
    fputs("</td>", f);
    for (int l = 0; l < nl; l++) fprintf(f, "<td><img src=\"cells/r%02d_%s.png\" alt=\"\"></td>", r, levels[l]);
    fputs("</tr>\n", f);
  }
  fputs("</table>\n</body></html>\n", f);
  if (ferror(f)) { sd_atomic_abort(&af); fprintf(stderr, "safesd demo: writing %s failed\n", path); goto out; }
  if (sd_atomic_commit(&af)) { fprintf(stderr, "safesd demo: %s\n", safesd_last_error()); goto out; }
  printf("wrote %s/demo.png (%dx%d) and %s/index.html\n", outdir, GW, GH, outdir);
  rc = 0;
out:
  for (int r = 0; r < pl.n; r++) {
    free(pl.text[r]);
    free(rows[r].categories);
    free(rows[r].detection);
    free(rows[r].safe_text);
  }
  free(grid);
  free(rgb);
  safesd_model_close(m);
  return rc;
}
