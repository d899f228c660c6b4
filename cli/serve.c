/* `safesd serve`: argument parsing and help; the server is src/server/. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safesd.h"
#include "args.h"
#include "serve.h"

#include "core/error.h"
#include "io/fileio.h"

#include "server/server.h"

#define EXIT_USAGE 2

static const char *k_serve_help =
    "usage: safesd serve [-m MODEL] [--host ADDR] [--port N] [options]\n"
    "\n"
    "Serve text-to-image over HTTP with the safety layer on every request (docs/server.md):\n"
    "AUTOMATIC1111's API (POST /sdapi/v1/txt2img, /sdapi/v1/img2img (init_images, mask,\n"
    "denoising_strength: docs/img2img.md); GET /sdapi/v1/samplers, /sdapi/v1/sd-models,\n"
    "/sdapi/v1/options, /sdapi/v1/progress), OpenAI's (POST /v1/images/generations, b64_json),\n"
    "GET /health and GET /metrics (Prometheus). Every generation response carries the safety\n"
    "report and the output-image verdicts (nsfw_content_detected). One model is loaded; requests\n"
    "wait in a bounded queue and run one at a time. SIGTERM or SIGINT: stop accepting, answer\n"
    "queued requests 503, finish the running one (or cancel it after the grace period), exit 0.\n"
    "\n"
    "  -m, --model PATH         diffusers folder or single file (default: the bundled model)\n"
    "      --config DIR         for a single-file checkpoint: a diffusers folder describing it\n"
    "  -t, --threads N          worker threads of the engine (default: as generate)\n"
    "      --precision P        fp32 (default) or bf16\n"
    "      --mem-budget SIZE    as generate --mem-budget: fp32 weights kept packed from one\n"
    "                           request to the next (K, M, G suffixes; default 0); with it,\n"
    "                           fp32 Winograd convolutions at >= 64x64, as generate's\n"
    "      --lora-model-dir DIR  LoRAs for <lora:NAME:W> tags in request prompts\n"
    "                           (DIR/NAME.safetensors; docs/lora.md); without it a tag is a 400\n"
    "      --host ADDR          numeric address to bind (default 127.0.0.1: this machine only)\n"
    "      --port N             TCP port (default 7860, AUTOMATIC1111's; 0 = any free port)\n"
    "      --port-file FILE     write the port listened on to FILE (with --port 0)\n"
    "      --api-key KEY        require 'Authorization: Bearer KEY' (401 otherwise; /health is\n"
    "                           open); also from $SAFESD_API_KEY\n"
    "      --api-key-file FILE  the key from the first line of FILE (keeps it out of ps)\n"
    "\n"
    "Safety (requests may set a 'safety' object: level, strategy, weight, context_steps):\n"
    "      --safety LEVEL       the default level: off, low, medium (default), high, max\n"
    "      --min-safety LEVEL   the floor: a request asking for a lower level, a smaller weight\n"
    "                           or a longer context phase than LEVEL's gets 400 (default off)\n"
    "      --safety-strategy S  default safe-text strategy (substitute+append)\n"
    "      --detectors LIST     lexical, semantic, lexical,semantic (default: as generate)\n"
    "      --concepts FILE      concept bank (default: the model's, else the bundled one)\n"
    "      --image-check LIST   judge every output image (as generate --image-check)\n"
    "      --image-check-action A   flag (default), blur, or block (blocked images are left out;\n"
    "                           a request whose images are all blocked gets 400\n"
    "                           content_policy_violation)\n"
    "\n"
    "Limits:\n"
    "      --queue N            requests that may wait (default 8; full: 429 + Retry-After)\n"
    "      --max-connections N  open connections (default 64)\n"
    "      --timeout S          per request, queueing included (default 300; then 504)\n"
    "      --max-body BYTES     request body size (default 1048576; larger: 413)\n"
    "      --max-images N       images per request, batch_size x n_iter or n (default 16)\n"
    "      --max-steps N        sampling steps per request (default 150)\n"
    "      --max-side N         image width/height (default: twice the model's native size)\n"
    "      --shutdown-grace S   how long SIGTERM waits for the running request (default 30)\n"
    "      --access-log FILE    one line per request (default: stderr; 'off': none)\n"
    "  -q, --quiet              no start/stop messages\n"
    "  -h, --help               this help\n"
    "\n"
    "Example:\n"
    "  safesd serve --port 7860 &\n"
    "  curl -s localhost:7860/sdapi/v1/txt2img -d '{\"prompt\": \"cat face, noto emoji\", \"steps\": 20}'\n"
    "\n"
    "Exit status: 0 after a clean shutdown, 1 on a start-up error, 2 bad usage.\n";

static int usage(const char *msg) {
  fprintf(stderr, "safesd serve: %s (see 'safesd serve --help')\n", msg);
  return EXIT_USAGE;
}

/* A number in [lo, hi], strictly (cli/args.h). */
static int num(const char *s, double lo, double hi, double *out) {
  double v;
  if (cli_parse_double(s, &v) || !(v >= lo && v <= hi)) return -1;
  *out = v;
  return 0;
}

/* The first line of a key file: a regular file of at most 64 KiB (io/fileio.h), not empty. */
static char *read_key_file(const char *path) {
  char *buf = NULL;
  size_t len = 0;
  if (sd_read_file(path, 1 << 16, "an API key file", &buf, &len)) return NULL;
  buf[strcspn(buf, "\r\n")] = 0;
  if (!*buf) {
    free(buf);
    sd_fail(SD_E_FORMAT, "%s: the first line is empty", path);
    return NULL;
  }
  return buf;
}

/* --port-file: the port, written once the server listens (an atomic replace: a reader sees
 * no file or the whole number; io/fileio.h). */
static int write_port_file(void *user, int port) {
  const char *path = user;
  char text[16];
  int n = snprintf(text, sizeof text, "%d\n", port);
  sd_atomic_file af;
  if (sd_atomic_open(&af, path)) return cli_fail("serve: --port-file");
  if (sd_atomic_write(&af, text, (size_t)n) || sd_atomic_commit(&af)) {
    sd_atomic_abort(&af);
    return cli_fail("serve: --port-file");
  }
  return 0;
}

int cli_serve(int argc, char **argv) {
  static const struct option opts[] = {
      {"model", required_argument, 0, 'm'},         {"config", required_argument, 0, 'c'},
      {"threads", required_argument, 0, 't'},       {"precision", required_argument, 0, 'P'},
      {"host", required_argument, 0, 'H'},          {"port", required_argument, 0, 'p'},
      {"port-file", required_argument, 0, 'F'},     {"api-key", required_argument, 0, 'k'},
      {"api-key-file", required_argument, 0, 'K'},  {"safety", required_argument, 0, 's'},
      {"min-safety", required_argument, 0, 'f'},    {"safety-strategy", required_argument, 0, 'S'},
      {"detectors", required_argument, 0, 'D'},     {"concepts", required_argument, 0, 'C'},
      {"image-check", required_argument, 0, 'i'},   {"image-check-action", required_argument, 0, 'a'},
      {"queue", required_argument, 0, 'Q'},         {"max-connections", required_argument, 0, 'M'},
      {"timeout", required_argument, 0, 'T'},       {"max-body", required_argument, 0, 'B'},
      {"max-images", required_argument, 0, 'I'},    {"max-steps", required_argument, 0, 'X'},
      {"max-side", required_argument, 0, 'W'},      {"shutdown-grace", required_argument, 0, 'G'},
      {"access-log", required_argument, 0, 'L'},    {"quiet", no_argument, 0, 'q'},
      {"mem-budget", required_argument, 0, 'b'},    {"help", no_argument, 0, 'h'},
      {"lora-model-dir", required_argument, 0, 'r'}, {"lora-dir", required_argument, 0, 'r'},
      {0, 0, 0, 0}};
  sd_server_config c;
  sd_server_config_defaults(&c);
  char *key_from_file = NULL;
  const char *env_key = getenv("SAFESD_API_KEY");
  if (env_key && *env_key) c.api_key = env_key;
  double v;
  long l;
  long long bytes;
  int opt;
  while ((opt = getopt_long(argc, argv, "m:t:qh", opts, NULL)) != -1) {
    switch (opt) {
      case 'm': c.model = optarg; break;
      case 'c': c.config_dir = optarg; break;
      case 't': if (cli_parse_long(optarg, 0, 256, &l)) return usage("--threads takes 0..256"); c.threads = (int)l; break;
      case 'P':
        if (!strcmp(optarg, "fp32")) c.precision = SAFESD_PRECISION_FP32;
        else if (!strcmp(optarg, "bf16")) c.precision = SAFESD_PRECISION_BF16;
        else return usage("--precision takes fp32 or bf16");
        break;
      case 'H': c.host = optarg; break;
      case 'p': if (cli_parse_long(optarg, 0, 65535, &l)) return usage("--port takes 0..65535"); c.port = (int)l; break;
      case 'F':
        c.on_listening = write_port_file;
        c.on_listening_user = optarg;
        break;
      case 'b':
        if (cli_parse_bytes(optarg, &bytes))
          return usage("--mem-budget takes a size in bytes, with an optional K, M or G (e.g. 3G)");
        c.mem_budget = bytes;
        break;
      case 'k': c.api_key = optarg; break;
      case 'r': c.lora_dir = optarg; break;
      case 'K':
        free(key_from_file);
        if (!(key_from_file = read_key_file(optarg))) return cli_fail("serve: --api-key-file");
        c.api_key = key_from_file;
        break;
      case 's': c.safety = optarg; break;
      case 'f': c.min_safety = optarg; break;
      case 'S': c.strategy = optarg; break;
      case 'D': c.detectors = optarg; break;
      case 'C': c.concepts = optarg; break;
      case 'i': c.image_check = optarg; break;
      case 'a':
        if (strcmp(optarg, "flag") && strcmp(optarg, "blur") && strcmp(optarg, "block"))
          return usage("--image-check-action takes flag, blur or block");
        c.image_check_action = optarg;
        break;
      case 'Q': if (cli_parse_long(optarg, 0, 10000, &l)) return usage("--queue takes 0..10000"); c.queue = (int)l; break;
      case 'M':
        if (cli_parse_long(optarg, 1, 10000, &l)) return usage("--max-connections takes 1..10000");
        c.max_connections = (int)l;
        break;
      case 'T': if (num(optarg, 0.01, 86400, &v)) return usage("--timeout takes seconds (0.01..86400)"); c.timeout_s = v; break;
      case 'B':
        if (cli_parse_bytes(optarg, &bytes) || bytes < 64 || bytes > (1 << 30))
          return usage("--max-body takes 64..2^30 bytes (K, M suffixes)");
        c.max_body = (size_t)bytes;
        break;
      case 'I': if (cli_parse_long(optarg, 1, 64, &l)) return usage("--max-images takes 1..64"); c.max_images = (int)l; break;
      case 'X': if (cli_parse_long(optarg, 1, 1000, &l)) return usage("--max-steps takes 1..1000"); c.max_steps = (int)l; break;
      case 'W': if (cli_parse_long(optarg, 8, 4096, &l)) return usage("--max-side takes 8..4096"); c.max_side = (int)l; break;
      case 'G': if (num(optarg, 0, 3600, &v)) return usage("--shutdown-grace takes 0..3600 seconds"); c.shutdown_grace_s = v; break;
      case 'L': c.access_log = optarg; break;
      case 'q': c.quiet = 1; break;
      case 'h': fputs(k_serve_help, stdout); free(key_from_file); return 0;
      default: free(key_from_file); return usage("unknown option");
    }
  }
  if (optind < argc) { free(key_from_file); return usage("unexpected argument"); }
  if (c.api_key && !*c.api_key) { free(key_from_file); return usage("the API key is empty"); }
  if (c.on_listening_user && sd_output_check(c.on_listening_user)) { free(key_from_file); return cli_fail("serve: --port-file"); }
  int rc = sd_server_run(&c);
  free(key_from_file);
  return rc;
}
