/* safesd check: the safety detectors on prompts (split from main.c). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "safesd.h"
#include "args.h"
#include "check.h"

static int fail(const char *what) { return cli_fail(what); }

static int usage_error(const char *cmd, const char *msg) {
  fprintf(stderr, "safesd %s: %s (see 'safesd %s --help')\n", cmd, msg, cmd);
  return 2;
}

/* ---- check --------------------------------------------------------------------------- */

static const char *k_check_help =
    "usage: safesd check [-m MODEL] [--detectors LIST] [--concepts FILE] [--json] PROMPT...\n"
    "       safesd check [options] -f FILE      (one prompt per line; '-' = standard input)\n"
    "\n"
    "Run the safety detectors on each prompt and print the verdict (flagged or not), the\n"
    "categories that fired, the concept banks in force, each detector's score, threshold and\n"
    "evidence (which word matched which concept-bank term, and how: exact, leetspeak,\n"
    "separators, repeated letters, diacritics, masked letters, a word split by spaces, a typo\n"
    "made on purpose, a word written backwards, in rot13, pig latin, NATO code words or\n"
    "without its vowels, inflection, WordNet; for the learned and semantic detectors, the\n"
    "words whose removal drops the score under the threshold, or 'not localised'), and the\n"
    "safe text the dual path would use. The detectors judge the text the model's encoder\n"
    "sees, without the prompt syntax: with --prompt-syntax a1111 (the default, as generate)\n"
    "the prompt's weights, brackets and BREAKs are removed and every chunk is judged (up to 8\n"
    "chunks of 75 tokens, docs/prompts.md); with plain, words past the 77-token window are\n"
    "reported, not judged. <lora:NAME:W> tags leave the text (as in generate) and their names\n"
    "are judged on their own by the lexical and learned detectors ('LoRA names: ...';\n"
    "evidence without a span: the safe text appends).\n"
    "The bank and detectors are built once for all the prompts. Exit status 0 whatever the\n"
    "verdicts; 1 on an error.\n"
    "\n"
    "  -m, --model PATH          the model whose text encoder the semantic detector uses\n"
    "                            (and whose tokenizer sets the window)\n"
    "      --config DIR          for a single-file model: a diffusers folder describing it\n"
    "      --detectors LIST      comma-separated: lexical, semantic, learned (default:\n"
    "                            lexical, plus learned when calibrated, plus semantic\n"
    "                            when the bank holds a threshold calibrated for this\n"
    "                            model); learned: a classifier of its own over character\n"
    "                            and word n-grams (data/learned/, docs/safety-detectors.md)\n"
    "      --semantic-threshold X   the semantic detector's threshold (default: the bank's\n"
    "                            [thresholds] value, else 0.10)\n"
    "      --concepts FILE       concept bank (default: the model's safety/concepts.bank\n"
    "                            when it has one, else data/concepts/default.bank); a bank\n"
    "                            adds to the default bank unless its [bank] section says\n"
    "                            'base = none'; its [thresholds] section, when present, sets\n"
    "                            the thresholds\n"
    "      --safety-strategy S   substitute+append (default), substitute, append, project\n"
    "                            (project: which token positions would be projected against\n"
    "                            which concept descriptions)\n"
    "  -f, --file FILE           read the prompts from FILE, one per line, streamed (UTF-8;\n"
    "                            blank lines and lines starting with '#' are skipped; lines\n"
    "                            over 64 KiB are an error)\n"
    "      --json                one JSON object per prompt (with -f: one per line)\n"
    "      --prompt-syntax S     a1111 (default) or plain, as generate's\n"
    "  -h, --help                this help\n";

#define CHECK_MAX_LINE (64u << 10)

/* One prompt of a check file: CR/LF stripped; blank and '#' lines skipped (return 0). */
static int check_line(char *line, size_t n) {
  while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
  const char *t = line;
  while (*t == ' ' || *t == '\t') t++;
  return *t && *t != '#';
}

static int check_file(safesd_model *m, const char *path, const char *syntax, const char *concepts,
                      const char *strategy, const char *detectors, float sem_threshold, int json) {
  FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
  if (!f) {
    fprintf(stderr, "safesd check: %s: %s\n", path, strerror(errno));
    return 1;
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  long lineno = 0;
  int rc = 0;
  while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
    lineno++;
    if ((size_t)n > CHECK_MAX_LINE) {
      fprintf(stderr, "safesd check: %s:%ld: line is %zd bytes, over the %u-byte limit\n", path, lineno, n,
              CHECK_MAX_LINE);
      rc = 1;
    } else if (memchr(line, 0, (size_t)n)) {
      fprintf(stderr, "safesd check: %s:%ld: NUL byte in the line\n", path, lineno);
      rc = 1;
    } else if (check_line(line, (size_t)n) &&
               safesd_check_ex(m, line, syntax, concepts, strategy, detectors, sem_threshold, json ? 2 : 0, stdout)) {
      fprintf(stderr, "safesd check: %s:%ld: %s\n", path, lineno, safesd_last_error());
      rc = 1;
    }
  }
  if (!rc && ferror(f)) {
    fprintf(stderr, "safesd check: %s: read error: %s\n", path, strerror(errno));
    rc = 1;
  }
  free(line);
  if (f != stdin) fclose(f);
  return rc;
}

int cli_check(int argc, char **argv) {
  static const struct option opts[] = {{"concepts", required_argument, 0, 'c'}, {"safety-strategy", required_argument, 0, 's'},
                                       {"json", no_argument, 0, 'J'}, {"help", no_argument, 0, 'h'},
                                       {"model", required_argument, 0, 'm'}, {"config", required_argument, 0, 'C'},
                                       {"detectors", required_argument, 0, 'D'}, {"file", required_argument, 0, 'f'},
                                       {"semantic-threshold", required_argument, 0, 'T'},
                                       {"prompt-syntax", required_argument, 0, 'Y'}, {0, 0, 0, 0}};
  const char *concepts = NULL, *strategy = NULL, *model = NULL, *config = NULL, *detectors = NULL, *file = NULL;
  const char *syntax = NULL;
  float sem_threshold = NAN;
  int json = 0, c;
  while ((c = getopt_long(argc, argv, "m:f:h", opts, NULL)) != -1) {
    switch (c) {
      case 'm': model = optarg; break;
      case 'C': config = optarg; break;
      case 'D': detectors = optarg; break;
      case 'f': file = optarg; break;
      case 'T':
        if (cli_parse_float(optarg, &sem_threshold)) return usage_error("check", "--semantic-threshold takes a number");
        break;
      case 'c': concepts = optarg; break;
      case 's': strategy = optarg; break;
      case 'J': json = 1; break;
      case 'Y':
        if (strcmp(optarg, "a1111") && strcmp(optarg, "plain")) return usage_error("check", "--prompt-syntax takes a1111 or plain");
        syntax = optarg;
        break;
      case 'h': fputs(k_check_help, stdout); return 0;
      default: return usage_error("check", "unknown option");
    }
  }
  if (optind >= argc && !file) return usage_error("check", "no prompt given (PROMPT... or -f FILE)");
  if (optind < argc && file) return usage_error("check", "give prompts as arguments or with -f, not both");
  safesd_model *m = NULL;
  safesd_model_options mo = {.config_dir = config};
  if (model ? safesd_model_open(model, &mo, &m) : safesd_gate_open(&m)) return fail("opening model");
  int rc = 0;
  if (file) rc = check_file(m, file, syntax, concepts, strategy, detectors, sem_threshold, json);
  for (int i = optind; i < argc && rc == 0; i++)
    if (safesd_check_ex(m, argv[i], syntax, concepts, strategy, detectors, sem_threshold, json, stdout))
      rc = fail("check");
  safesd_model_close(m);
  return rc;
}

