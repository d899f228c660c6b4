/* `safesd edit uce`: the UCE closed-form edit of the cross-attention projections, written as
 * a new checkpoint (src/edit/uce.h). Argument parsing and printing only. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safesd.h"
#include "args.h"
#include "edit.h"

#include "edit/uce.h"

#define EXIT_USAGE 2

static const char *k_edit_help =
    "usage: safesd edit METHOD [options]\n"
    "\n"
    "Edit a model's weights and write the result as a new checkpoint.\n"
    "\n"
    "methods:\n"
    "  uce   Unified Concept Editing: the closed-form edit of the UNet's cross-attention\n"
    "        projections that maps erase concepts onto guide concepts (the editing baseline)\n"
    "\n"
    "See 'safesd edit uce --help'.\n";

static const char *k_uce_help =
    "usage: safesd edit uce [-m MODEL] --erase TEXT [--erase TEXT ...] -o OUT [options]\n"
    "\n"
    "UCE (Gandikota et al., 2024): for every cross-attention value projection W of the UNet\n"
    "(attn2.to_v; attn2.to_k too with --edit-keys), in closed form,\n"
    "  W' = [l*W + se*sum_i W c*_i c_i^T + sp*sum_j W c_j c_j^T] [l*I + se*sum_i c_i c_i^T + sp*sum_j c_j c_j^T]^-1\n"
    "where c_i are the erase concepts' text-encoder token states, c*_i their guides' and c_j\n"
    "the preserve concepts'. Erased concepts then attend like their guides; the closer a\n"
    "benign concept is to an erased one, the more it changes too.\n"
    "\n"
    "  -m, --model PATH        the model to edit (default: the bundled model)\n"
    "      --config DIR        for a single-file MODEL: a diffusers folder describing it\n"
    "  -e, --erase TEXT        a concept to erase (repeatable; at least one)\n"
    "      --erase-file FILE   concepts to erase, one per line ('#' comments, blank lines skipped)\n"
    "  -g, --guide TEXT        what erased concepts become: once for all, or once per erase\n"
    "                          concept in order (default: the empty text)\n"
    "  -p, --preserve TEXT     a concept to keep unchanged (repeatable; \"\" keeps the\n"
    "                          empty prompt's states, which classifier-free guidance uses)\n"
    "      --preserve-file FILE  preserve concepts, one per line\n"
    "      --lambda X          weight of the original projection, l (default 0.1; > 0 keeps\n"
    "                          the system definite)\n"
    "      --erase-scale X     se (default 1)\n"
    "      --preserve-scale X  sp (default 0.1)\n"
    "      --edit-keys         also edit the key projections (attn2.to_k)\n"
    "      --tokens MODE       which token states stand for a concept text:\n"
    "                          last  its last token (BOS for the empty text); one state per\n"
    "                                concept (default; the UCE authors' current script)\n"
    "                          tail  from its last token to the end of the 77-token context\n"
    "                                (EOS and padding), guide aligned from its own last token;\n"
    "                                all 77 states of a preserve concept (the paper's release)\n"
    "  -t, --threads N         threads (default: all cores)\n"
    "  -o, --output OUT        where to write the edited model; must not exist:\n"
    "                          NAME.safetensors  one single-file checkpoint in the LDM layout\n"
    "                                            (as 'safesd convert'; SD 1.x text encoders)\n"
    "                          anything else     a diffusers folder (MODEL must be one): a\n"
    "                                            copy with unet/ weights rewritten and a\n"
    "                                            uce_edit.json describing the edit\n"
    "  -q, --quiet             no progress lines\n"
    "  -h, --help              this help\n"
    "\n"
    "Edited tensors keep the checkpoint's dtype; every other tensor is copied bit for bit. The\n"
    "output appears only when complete. Progress (stderr) gives per projection the relative\n"
    "change |W'-W|/|W|, the erase residual |W'c - Wc*|/|Wc*| and the preserve drift.\n"
    "The UCE authors' settings: --lambda 0.5 --edit-keys, plus --tokens tail for the paper's\n"
    "release or --preserve-scale 1 for their current script (docs/evaluation.md).\n";

typedef struct strlist {
  const char **v;
  char **owned; /* lines read from files (freed at the end) */
  int n, cap, n_owned, cap_owned;
} strlist;

static int strlist_add(strlist *l, const char *s, int own) {
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 8;
    const char **v = realloc(l->v, (size_t)cap * sizeof *v);
    if (!v) return -1;
    l->v = v;
    l->cap = cap;
  }
  if (own) {
    if (l->n_owned == l->cap_owned) {
      int cap = l->cap_owned ? 2 * l->cap_owned : 8;
      char **o = realloc(l->owned, (size_t)cap * sizeof *o);
      if (!o) return -1;
      l->owned = o;
      l->cap_owned = cap;
    }
    l->owned[l->n_owned++] = (char *)s;
  }
  l->v[l->n++] = s;
  return 0;
}

static void strlist_free(strlist *l) {
  for (int i = 0; i < l->n_owned; i++) free(l->owned[i]);
  free(l->owned);
  free(l->v);
}

/* Concepts from a file: one per line, surrounding blanks trimmed, '#' lines and blank lines
 * skipped. Returns 0, or -1 after printing the reason. */
static int read_concepts(const char *path, strlist *l) {
  FILE *f = cli_open_input(path, "a text file (one concept per line; '-' reads standard input)");
  if (!f) return cli_fail("edit uce"), -1;
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  int rc = 0;
  while ((n = getline(&line, &cap, f)) >= 0) {
    char *s = line, *e = line + n;
    while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) e--;
    *e = 0;
    while (*s == ' ' || *s == '\t') s++;
    if (!*s || *s == '#') continue;
    char *copy = strdup(s);
    if (!copy || strlist_add(l, copy, 1)) {
      free(copy);
      fprintf(stderr, "safesd edit uce: out of memory\n");
      rc = -1;
      break;
    }
  }
  if (rc == 0 && ferror(f)) {
    fprintf(stderr, "safesd edit uce: %s: read error\n", path);
    rc = -1;
  }
  free(line);
  if (f != stdin) fclose(f);
  return rc;
}

static int usage(const char *msg) {
  fprintf(stderr, "safesd edit uce: %s (see 'safesd edit uce --help')\n", msg);
  return EXIT_USAGE;
}

static void progress(void *user, const sd_uce_layer_info *i) {
  (void)user;
  fprintf(stderr, "safesd edit uce: [%d/%d] %s [%d x %d]: change %.3g%%, erase residual %.3g%%", i->index, i->count,
          i->name, i->rows, i->d, 100.0 * i->fit.change, 100.0 * i->fit.erase);
  if (i->fit.preserve > 0) fprintf(stderr, ", preserve drift %.3g%%", 100.0 * i->fit.preserve);
  fputc('\n', stderr);
}

static int cmd_uce(int argc, char **argv) {
  enum { O_ERASE_FILE = 256, O_PRESERVE_FILE, O_LAMBDA, O_ESCALE, O_PSCALE, O_KEYS, O_TOKENS, O_CONFIG };
  static const struct option opts[] = {
      {"model", required_argument, 0, 'm'},          {"config", required_argument, 0, O_CONFIG},
      {"erase", required_argument, 0, 'e'},          {"erase-file", required_argument, 0, O_ERASE_FILE},
      {"guide", required_argument, 0, 'g'},          {"preserve", required_argument, 0, 'p'},
      {"preserve-file", required_argument, 0, O_PRESERVE_FILE},
      {"lambda", required_argument, 0, O_LAMBDA},    {"erase-scale", required_argument, 0, O_ESCALE},
      {"preserve-scale", required_argument, 0, O_PSCALE},
      {"edit-keys", no_argument, 0, O_KEYS},         {"tokens", required_argument, 0, O_TOKENS},
      {"threads", required_argument, 0, 't'},        {"output", required_argument, 0, 'o'},
      {"quiet", no_argument, 0, 'q'},                {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  strlist erase = {0}, guide = {0}, preserve = {0};
  sd_uce_opts o;
  sd_uce_opts_init(&o);
  const char *model = NULL, *out = NULL;
  int quiet = 0, c, rc = -1;
  optind = 1;
  while (rc < 0 && (c = getopt_long(argc, argv, "m:e:g:p:t:o:qh", opts, NULL)) != -1) {
    switch (c) {
      case 'm': model = optarg; break;
      case O_CONFIG: o.config_dir = optarg; break;
      case 'e': if (strlist_add(&erase, optarg, 0)) rc = usage("out of memory"); break;
      case 'g': if (strlist_add(&guide, optarg, 0)) rc = usage("out of memory"); break;
      case 'p': if (strlist_add(&preserve, optarg, 0)) rc = usage("out of memory"); break;
      case O_ERASE_FILE: if (read_concepts(optarg, &erase)) rc = 1; break;
      case O_PRESERVE_FILE: if (read_concepts(optarg, &preserve)) rc = 1; break;
      case O_LAMBDA:
        if (cli_parse_double(optarg, &o.lambda) || o.lambda < 0) rc = usage("--lambda takes a number >= 0");
        break;
      case O_ESCALE:
        if (cli_parse_double(optarg, &o.erase_scale) || o.erase_scale < 0) rc = usage("--erase-scale takes a number >= 0");
        break;
      case O_PSCALE:
        if (cli_parse_double(optarg, &o.preserve_scale) || o.preserve_scale < 0)
          rc = usage("--preserve-scale takes a number >= 0");
        break;
      case O_KEYS: o.edit_keys = 1; break;
      case O_TOKENS: {
        int t = sd_uce_tokens_parse(optarg);
        if (t < 0) rc = usage("--tokens takes last or tail");
        else o.tokens = (sd_uce_tokens)t;
        break;
      }
      case 't': {
        long v;
        if (cli_parse_long(optarg, 0, 256, &v)) rc = usage("--threads takes 0..256");
        else o.n_threads = (int)v;
        break;
      }
      case 'o': out = optarg; break;
      case 'q': quiet = 1; break;
      case 'h': fputs(k_uce_help, stdout); rc = 0; break;
      default: rc = usage("unknown option"); break;
    }
  }
  if (rc < 0) {
    if (optind < argc) rc = usage("unexpected argument");
    else if (!erase.n) rc = usage("no concept to erase: give --erase TEXT or --erase-file FILE");
    else if (!out) rc = usage("no output: give -o OUT");
    else if (guide.n > 1 && guide.n != erase.n) {
      char msg[160];
      snprintf(msg, sizeof msg, "%d guides for %d erase concepts: give one guide, or one per erase concept", guide.n,
               erase.n);
      rc = usage(msg);
    }
  }
  if (rc < 0) {
    o.erase = erase.v;
    o.n_erase = erase.n;
    o.guide = guide.v;
    o.n_guide = guide.n;
    o.preserve = preserve.v;
    o.n_preserve = preserve.n;
    if (!quiet) o.progress = progress;
    if (!quiet)
      fprintf(stderr, "safesd edit uce: erasing %d concept%s (%d preserved), lambda %g, erase scale %g, preserve scale %g, tokens %s\n",
              erase.n, erase.n == 1 ? "" : "s", preserve.n, o.lambda, o.erase_scale, o.preserve_scale,
              sd_uce_tokens_name(o.tokens));
    sd_uce_result res;
    if (sd_uce_edit_model(model, out, &o, &res)) {
      fprintf(stderr, "safesd edit uce: %s\n", safesd_last_error());
      rc = EXIT_FAILURE;
    } else {
      printf("wrote %s (%s): %d projection%s edited (%s), %d erase state%s, %d preserve state%s\n", out,
             res.folder ? "diffusers folder" : "single-file checkpoint", res.n_layers, res.n_layers == 1 ? "" : "s",
             o.edit_keys ? "attn2.to_v and attn2.to_k" : "attn2.to_v", res.n_erase_states,
             res.n_erase_states == 1 ? "" : "s", res.n_preserve_states, res.n_preserve_states == 1 ? "" : "s");
      if (res.skipped) printf("left out of the copy: %s\n", res.skipped);
      sd_uce_result_free(&res);
      rc = 0;
    }
  }
  strlist_free(&erase);
  strlist_free(&guide);
  strlist_free(&preserve);
  return rc;
}

int cli_edit(int argc, char **argv) {
  if (argc < 2) {
    fputs(k_edit_help, stderr);
    return EXIT_USAGE;
  }
  const char *method = argv[1];
  if (!strcmp(method, "-h") || !strcmp(method, "--help")) {
    fputs(k_edit_help, stdout);
    return 0;
  }
  if (!strcmp(method, "uce")) return cmd_uce(argc - 1, argv + 1);
  fprintf(stderr, "safesd edit: unknown method '%s' (see 'safesd edit --help')\n", method);
  return EXIT_USAGE;
}
