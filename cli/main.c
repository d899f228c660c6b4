/* safesd — the command-line program. A thin layer over the public API (safesd.h). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safesd.h"
#include "args.h"
#include "check.h"
#include "demo.h"
#include "edit.h"
#include "eval.h"
#include "serve.h"

#include "core/tensor.h"
#include "io/fileio.h"
#include "io/npy.h"

#define EXIT_USAGE 2
#define EXIT_BLOCKED 3 /* generate: an output image was blocked by the image check */

static const char *g_prog = "safesd";

static int fail(const char *what) { return cli_fail(what); }

static int usage_error(const char *cmd, const char *msg) {
  fprintf(stderr, "%s %s: %s (see '%s %s --help')\n", g_prog, cmd, msg, g_prog, cmd);
  return EXIT_USAGE;
}


/* ---- help texts ----------------------------------------------------------------------- */

static const char *k_main_help =
    "usage: safesd <command> [options]\n"
    "\n"
    "Stable Diffusion in C with an editing-free, tunable safety layer.\n"
    "\n"
    "commands:\n"
    "  generate   text to image: prompt in, PNG out (same image as diffusers for the same seed);\n"
    "             image to image and inpainting with -i IMAGE [--mask MASK]\n"
    "  tokenize   turn text into CLIP token ids (exact to the Hugging Face tokenizer)\n"
    "  encode     run the text encoder and write the prompt embedding (.npy)\n"
    "  inspect    describe a model: family, layout, components, dtypes, sizes, problems\n"
    "  convert    write a model as a single-file LDM checkpoint (.safetensors), e.g. as f16\n"
    "  check      run the safety detectors on a prompt: verdict, categories, evidence\n"
    "  calibrate  choose detector thresholds for a target false-positive rate from labelled\n"
    "             prompt files, and write them to the concept bank or a calibration file\n"
    "  edit       edit a model's weights and write a new checkpoint ('edit uce': UCE concept\n"
    "             erasure, the editing baseline of the evaluation)\n"
    "  eval       evaluate safety methods on prompt sets: images, records, metrics, report\n"
    "             (docs/evaluation.md)\n"
    "  serve      an HTTP server: AUTOMATIC1111 and OpenAI image APIs with per-request\n"
    "             safety, output-image checks, metrics (docs/server.md)\n"
    "  demo       a picture grid of prompts x safety levels (PNG + HTML), by default with\n"
    "             the bundled model\n"
    "  version    print the version\n"
    "  help CMD   help for one command (same as 'safesd CMD --help')\n"
    "\n"
    "Models are diffusers folders (model_index.json, text_encoder/, unet/, vae/, tokenizer/)\n"
    "or single-file .safetensors checkpoints in the original LDM layout; float16, bfloat16\n"
    "and float32 weights. Exit status: 0 success, 1 error (one line on stderr), 2 bad usage;\n"
    "interrupted by SIGINT, SIGTERM or SIGHUP: no temporary file is left, status 128 + signal.\n"
    "Output files (-o ...): a regular file or new path is written to FILE.tmp.<pid>.XXXXXX and\n"
    "renamed when complete (never a partial file); a symbolic link is followed; a FIFO or\n"
    "character device (/dev/stdout, /dev/null) is written through; a directory is an error.\n";

static const char *k_tokenize_help =
    "usage: safesd tokenize [-m MODEL] [--pad ID] [--tokens] [--json] [--bpe] [-f FILE | TEXT...]\n"
    "\n"
    "Tokenize text the way Stable Diffusion's pipeline does: CLIP BPE, <|startoftext|>,\n"
    "up to 75 tokens (longer text is truncated), <|endoftext|>, padded to 77. The text is\n"
    "taken as it is: the prompt syntax (docs/prompts.md) is not parsed here.\n"
    "\n"
    "  -m, --model PATH   use this model's tokenizer (default: the bundled CLIP vocabulary)\n"
    "      --config DIR   diffusers folder describing a single-file checkpoint (its tokenizer)\n"
    "      --pad ID       padding id (default: the model's; 49407 for SD 1.x, 0 for SD 2.x;\n"
    "                     49407 without -m)\n"
    "      --tokens       also print each token's text\n"
    "      --json         one JSON object per input: {\"text\", \"ids\", \"length\"}\n"
    "      --bpe          the BPE ids alone: no <|startoftext|>/<|endoftext|>, no truncation,\n"
    "                     no padding (what one segment of a weighted prompt tokenizes to)\n"
    "  -f, --file FILE    tokenize each line of FILE, a regular file ('-' = standard input)\n"
    "  -h, --help         this help\n"
    "\n"
    "Without --json, each input prints one line: its real length, a tab, the 77 ids.\n";

static const char *k_generate_help =
    "usage: safesd generate [-m MODEL] -p PROMPT [options]\n"
    "\n"
    "Generate images from a prompt and write them as PNG (with AUTOMATIC1111-style\n"
    "'parameters' metadata). The same model, prompt, seed and settings give the same image\n"
    "as diffusers' StableDiffusionPipeline on PyTorch (CPU generator).\n"
    "\n"
    "  -m, --model PATH        diffusers folder or single-file checkpoint (default: the\n"
    "                          bundled 64x64 emoji model, models/safesd-emoji)\n"
    "      --config DIR        for a single-file checkpoint: a diffusers folder describing it\n"
    "  -p, --prompt TEXT       the prompt\n"
    "  -n, --negative-prompt TEXT   what to steer away from (default: empty)\n"
    "      --prompt-syntax S   a1111 (default): AUTOMATIC1111's syntax in the prompt and the\n"
    "                          negative prompt: (word) x1.1, [word] /1.1, (word:1.3), nesting\n"
    "                          multiplies, \\( \\) \\[ \\] literal brackets, BREAK starts a new\n"
    "                          chunk; up to 8 chunks of 75 tokens, concatenated (longer: an\n"
    "                          error); the safety detectors judge the text without the\n"
    "                          syntax, every chunk. plain: the text as it is, one 77-token\n"
    "                          window as diffusers (past 75 tokens dropped). docs/prompts.md\n"
    "  -W, --width N           image width in pixels (default: the model's, 512 for SD 1.x;\n"
    "                          with --init-img the image's, and any other is an error)\n"
    "  -H, --height N          image height (multiples of 8; SD's UNet needs multiples of 64)\n"
    "  -i, --init-img FILE     image to image (docs/img2img.md): start from this PNG, encoded\n"
    "                          by the VAE and noised to the strength's first timestep, as\n"
    "                          diffusers' StableDiffusionImg2ImgPipeline (its size is the\n"
    "                          output's: multiples of 8 and of the UNet's factor, no resizing)\n"
    "      --strength X        0..1 (default 0.75): int(steps x X) of the steps run, from the\n"
    "                          noise level of step steps - that (1 = from pure noise level)\n"
    "      --mask FILE         inpainting: a PNG of the init image's size, white = repaint,\n"
    "                          black = keep (StableDiffusionInpaintPipeline: 4-channel UNets,\n"
    "                          and 9-channel inpainting UNets, which need it)\n"
    "      --max-pixels N      pixel budget of one image, width x height (default 4 x the\n"
    "                          model's native size: 1024x1024 for SD 1.x, 128x128 for the\n"
    "                          bundled model; at most 4096x4096); checked before any work\n"
    "      --steps N           sampling steps, 1..1000 (default 50; at most what the model's\n"
    "                          scheduler can make: 999 for DDIM with steps_offset 1)\n"
    "      --cfg-scale X       classifier-free guidance scale (default 7.5; <= 1 turns it off)\n"
    "  -s, --seed N            seed, 0..2^64-1 (default 42; -1 = random, printed)\n"
    "      --sampler NAME      ddim, pndm (= plms), euler, euler_a, dpm++2m\n"
    "                          (default: the model's scheduler, PNDM for SD 1.x)\n"
    "      --sampling-method NAME   the same (stable-diffusion.cpp's name)\n"
    "      --scheduler NAME    sigma schedule: discrete or karras (default: the model's)\n"
    "  -b, --batch-count N     images (default 1), drawn as one latent batch like diffusers'\n"
    "                          num_images_per_prompt\n"
    "      --clip-skip N       1 = last text-encoder layer (default), 2 = penultimate\n"
    "  -t, --threads N         worker threads (default: all CPUs; 1 for a model whose UNet\n"
    "                          has under 20 M parameters, like the bundled one)\n"
    "      --precision P       fp32 (default) or bf16: convolutions and matrix products in\n"
    "                          bf16 with fp32 accumulation, on CPUs with AVX512-BF16 or AMX\n"
    "                          (faster; images differ slightly: docs/performance.md). On other\n"
    "                          CPUs bf16 falls back to fp32 with a warning\n"
    "      --mem-budget SIZE   fp32: keep up to SIZE bytes (K, M, G suffixes) of weights packed\n"
    "                          for the kernels from one UNet pass to the next instead of packing\n"
    "                          them again (default 0; the most reused first). bf16 always keeps\n"
    "                          them, in the memory of the float16 weights. With a budget, fp32\n"
    "                          3x3 convolutions at >= 64x64 run oneDNN's Winograd kernel (faster,\n"
    "                          values within float32 roundings of the direct one);\n"
    "                          SAFESD_CONV_WINOGRAD=0 keeps them direct (docs/performance.md).\n"
    "                          On CPUs with AVX2 but not AVX-512 the linear layers and the\n"
    "                          convolutions at 16x16 and below read weights as stored, keep\n"
    "                          nothing and need no budget\n"    "      --lora-model-dir DIR  the folder of the LoRAs that <lora:NAME:W> tags in the prompt\n"
    "                          name (DIR/NAME.safetensors, kohya or PEFT format; docs/lora.md);\n"
    "                          --lora-dir is the same\n"
    "      --taesd PATH        decode with a TAESD decoder (taesd_decoder.safetensors or a\n"
    "                          diffusers AutoencoderTiny folder) instead of the VAE: much\n"
    "                          faster, lower quality (images up to 2048x2048)\n"
    "      --preview-path FILE  write the model's current estimate of the image to FILE every\n"
    "                          --preview-interval N evaluations (default 1) and at the last\n"
    "                          (decoded with --taesd when given, else the VAE: slower)\n"
    "      --vae-tiling        decode in overlapping tiles, blended (diffusers' tiled_decode:\n"
    "                          its pixels), so large images decode in one tile's memory\n"
    "      --vae-tile-size PX  the tile size (implies --vae-tiling): a multiple of 32 for SD\n"
    "                          (default: the VAE's sample_size, 512 for SD 1.x)\n"
    "  -o, --output FILE       PNG to write (default output.png); with -b N the others are\n"
    "                          FILE_2.png ... FILE_N.png (then FILE must be a regular file).\n"
    "                          A regular file is replaced atomically, a symbolic link's target\n"
    "                          too (the link stays), a FIFO or character device (/dev/stdout)\n"
    "                          is written through ('wrote' lines then go to stderr); a\n"
    "                          directory is an error, found before any work. '-' (here, in\n"
    "                          --latents and in --safety-report) is standard output\n"
    "      --latents FILE      also write the final latents as .npy [N, 4, H/8, W/8]\n"
    "  -q, --quiet             no progress on stderr\n"
    "  -h, --help              this help\n"
    "\n"
    "Safety (docs/safety.md). Whatever the safety layer did is named in the PNG metadata.\n"
    "      --safety LEVEL      off, low, medium (default), high, max: the detectors check the\n"
    "                          prompt; a flagged prompt is generated through the dual path\n"
    "                          with the level's (lambda, tau); any other prompt exactly as\n"
    "                          with 'off'. Levels are provisional until measured.\n"
    "      --concepts FILE     concept bank (default: the model's safety/concepts.bank\n"
    "                          when it has one, else data/concepts/default.bank)\n"
    "      --safety-strategy S substitute+append (default), substitute, append: how the\n"
    "                          safe text is built from a flagged prompt; project: keep the\n"
    "                          prompt's embedding and project the flagged tokens' states off\n"
    "                          the fired categories' concept directions\n"
    "      --detectors LIST    comma-separated: lexical, semantic, learned (default: lexical,\n"
    "                          plus learned when its weights carry a calibrated threshold\n"
    "                          and the bank has its categories, plus semantic when the\n"
    "                          bank holds a threshold calibrated for this model, as the\n"
    "                          bundled model's does)\n"
    "      --semantic-threshold X   the semantic detector's threshold (default: the bank's\n"
    "                          [thresholds] value, else 0.10, uncalibrated; see\n"
    "                          docs/safety-detectors.md and 'safesd calibrate')\n"
    "      --sld PRESET        Safe Latent Diffusion: none, weak, medium, strong, max\n"
    "      --sld-concept TEXT  the safety concept of --sld and --safety-negative\n"
    "                          (default: SLD's list of inappropriate concepts)\n"
    "      --safety-negative   use the safety concept as the negative prompt\n"
    "      --safety-text TEXT  dual latent reconstruction towards this safe text (e_s),\n"
    "                          whatever the detectors say\n"
    "      --safety-weight X   lambda in [0,1]: z = lambda*z_safe + (1-lambda)*z_user\n"
    "                          (default: the level's; medium 0.7)\n"
    "      --context-steps X   tau in [0,1]: the first round(tau*T) of the T UNet evaluations\n"
    "                          follow the prompt alone (default: the level's; medium 0.2)\n"
    "      --safety-blend M    step (merge every step, default) or final (merge the end only)\n"
    "      --safety-report FILE   write what the safety layer did as JSON\n"
    "\n"
    "All outputs of a run (the PNGs, --latents, --safety-report) appear together or not at\n"
    "all: each is written to a temporary file beside it and they are renamed only when every\n"
    "one is complete; an error or an interruption (SIGINT, SIGTERM, SIGHUP) removes them.\n"
    "\n"
    "Output-image checks (docs/safety.md): classifiers judge each generated image; the\n"
    "verdict goes into the PNG metadata ('Image check: ...') and the safety report.\n"
    "      --image-check LIST  ','-separated: safety-checker[:DIR] (the SD safety checker;\n"
    "                          default MODEL/safety_checker), q16[:DIR] (Q16 on a CLIP\n"
    "                          ViT-L/14 tower, default MODEL/safety_checker; vectors from\n"
    "                          ../shared/data/q16), nsfwjs:DIR (nsfwjs MobileNetV2),\n"
    "                          clip-zeroshot[:DIR] (the model's own CLIP judge, default\n"
    "                          MODEL/clip: the bundled model's), auto (safety-checker and\n"
    "                          clip-zeroshot where the model has them), none (default)\n"
    "      --image-check-action A   what an unsafe image gets: flag (default: kept, reported),\n"
    "                          blur (a strong blur replaces it), block (no file is written;\n"
    "                          exit status 3)\n"
    "\n"
    "Exit status: 0 success, 1 error, 2 bad usage, 3 an image was blocked (the others are\n"
    "written).\n";

static const char *k_encode_help =
    "usage: safesd encode -m MODEL -p PROMPT [-p PROMPT...] [-o OUT.npy] [options]\n"
    "\n"
    "Run the model's text encoder on each prompt and write the embeddings the UNet is\n"
    "conditioned on, as a float32 NumPy array [prompts, 77 x chunks, dim] (written\n"
    "atomically): with the a1111 prompt syntax (the default, docs/prompts.md) a prompt of more\n"
    "than 75 tokens takes several 77-token chunks, and the prompts with fewer chunks are\n"
    "padded with the empty prompt's chunk, as AUTOMATIC1111 pads a batch.\n"
    "\n"
    "  -m, --model PATH     diffusers folder or single-file checkpoint (required)\n"
    "      --config DIR     for a single-file checkpoint: a diffusers folder whose configs\n"
    "                       and tokenizer describe it (default: infer from the weights)\n"
    "  -p, --prompt TEXT    a prompt (repeat for a batch)\n"
    "  -o, --output FILE    .npy file to write (default: print a summary only)\n"
    "      --clip-skip N    1 = last layer (default), 2 = penultimate layer, ...\n"
    "      --prompt-syntax S\n"
    "                       a1111 (default): (word:1.3), (word), [word], \\(, BREAK and up\n"
    "                       to 8 chunks of 75 tokens; plain: the text as it is, one\n"
    "                       77-token window (diffusers). docs/prompts.md\n"
    "  -t, --threads N      worker threads (default: all CPUs; 1 for a UNet under 20 M\n"
    "                       parameters, like the bundled model's)\n"
    "  -h, --help           this help\n";

static const char *k_inspect_help =
    "usage: safesd inspect MODEL [--config DIR] [--json]\n"
    "\n"
    "Open MODEL as generate does and report its layout, family (SD 1.x / SD 2.x), each\n"
    "component (text_encoder, unet, vae): tensor count, parameter count, stored dtypes and\n"
    "hyper-parameters (from the config or inferred from the weights), the tokenizer, the\n"
    "scheduler configuration, the model's concept bank, and problems found. Everything\n"
    "generate loads is loaded and checked (every weight is read once to check it is finite):\n"
    "what generate would refuse is an error here too (exit 1, one line naming the file).\n"
    "\n"
    "      --json         machine-readable output\n"
    "      --config DIR   for a single-file checkpoint: a diffusers folder whose configs\n"
    "                     describe it (head counts and other values a file cannot state)\n"
    "  -h, --help         this help\n";

/* ---- tokenize ------------------------------------------------------------------------- */

static void print_json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
    else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
    else fputc(*p, f);
  }
  fputc('"', f);
}

/* --bpe: the BPE ids alone (no BOS/EOS, no truncation, no padding) */
static int tokenize_bpe(const safesd_tokenizer *tok, const char *text, int json, int show_tokens) {
  int32_t *ids = NULL;
  size_t n = 0;
  if (safesd_tokenize_bpe(tok, text, &ids, &n)) return fail("tokenize");
  if (json) {
    printf("{\"text\": ");
    print_json_string(stdout, text);
    printf(", \"length\": %zu, \"ids\": [", n);
  } else {
    printf("%zu\t", n);
  }
  for (size_t i = 0; i < n; i++) printf("%s%d", i ? (json ? ", " : " ") : "", ids[i]);
  if (json && show_tokens) {
    printf("], \"tokens\": [");
    for (size_t i = 0; i < n; i++) {
      if (i) printf(", ");
      print_json_string(stdout, safesd_token_text(tok, ids[i]));
    }
  }
  printf(json ? "]}\n" : "\n");
  if (!json && show_tokens) {
    printf("\t");
    for (size_t i = 0; i < n; i++) printf("%s%s", i ? " " : "", safesd_token_text(tok, ids[i]));
    printf("\n");
  }
  free(ids);
  return 0;
}

static int tokenize_one(const safesd_tokenizer *tok, const char *text, int32_t pad, int json, int show_tokens,
                        int bpe) {
  if (bpe) return tokenize_bpe(tok, text, json, show_tokens);
  int32_t ids[SAFESD_TOKENS];
  int n = safesd_tokenize(tok, text, pad, ids);
  if (n < 0) return fail("tokenize");
  if (json) {
    printf("{\"text\": ");
    print_json_string(stdout, text);
    printf(", \"length\": %d, \"ids\": [", n);
    for (int i = 0; i < SAFESD_TOKENS; i++) printf("%s%d", i ? ", " : "", ids[i]);
    printf("]");
    if (show_tokens) {
      printf(", \"tokens\": [");
      for (int i = 0; i < n; i++) {
        if (i) printf(", ");
        print_json_string(stdout, safesd_token_text(tok, ids[i]));
      }
      printf("]");
    }
    printf("}\n");
  } else {
    printf("%d\t", n);
    for (int i = 0; i < SAFESD_TOKENS; i++) printf("%s%d", i ? " " : "", ids[i]);
    printf("\n");
    if (show_tokens) {
      printf("\t");
      for (int i = 0; i < n; i++) printf("%s%s", i ? " " : "", safesd_token_text(tok, ids[i]));
      printf("\n");
    }
  }
  return 0;
}

static int cmd_tokenize(int argc, char **argv) {
  static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"pad", required_argument, 0, 'P'},
                                       {"tokens", no_argument, 0, 'T'},      {"json", no_argument, 0, 'J'},
                                       {"config", required_argument, 0, 'c'},
                                       {"file", required_argument, 0, 'f'},  {"help", no_argument, 0, 'h'},
                                       {"bpe", no_argument, 0, 'B'},
                                       {0, 0, 0, 0}};
  const char *model = NULL, *file = NULL, *config = NULL;
  long pad = -1;
  int json = 0, show = 0, bpe = 0, c;
  while ((c = getopt_long(argc, argv, "m:f:h", opts, NULL)) != -1) {
    switch (c) {
      case 'm': model = optarg; break;
      case 'c': config = optarg; break;
      case 'f': file = optarg; break;
      case 'P':
        if (cli_parse_long(optarg, 0, 1 << 30, &pad)) return usage_error("tokenize", "--pad takes a token id");
        break;
      case 'T': show = 1; break;
      case 'J': json = 1; break;
      case 'B': bpe = 1; break;
      case 'h': fputs(k_tokenize_help, stdout); return 0;
      default: return usage_error("tokenize", "unknown option");
    }
  }
  if (!file && optind >= argc) return usage_error("tokenize", "no text given");
  safesd_tokenizer *tok;
  int32_t pad_id = 49407;
  if (model) {
    safesd_model *m;
    safesd_model_options mo = {.config_dir = config};
    if (safesd_model_open(model, &mo, &m)) return fail("opening model");
    pad_id = safesd_model_pad_id(m);
    safesd_model_close(m);
  }
  if (pad >= 0) pad_id = (int32_t)pad;
  if (config && !model) return usage_error("tokenize", "--config needs -m");
  if (safesd_tokenizer_open_ex(model, config, &tok)) return fail("loading tokenizer");
  int rc = 0;
  if (file) {
    FILE *f = cli_open_input(file, "a text file (one input per line; '-' reads standard input)");
    if (!f) {
      safesd_tokenizer_close(tok);
      return fail("tokenize -f");
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
      while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
      rc = tokenize_one(tok, line, pad_id, json, show, bpe);
    }
    if (rc == 0 && ferror(f)) {
      fprintf(stderr, "%s: tokenize -f: %s: read failed: %s\n", g_prog, file, strerror(errno));
      rc = EXIT_FAILURE;
    }
    free(line);
    if (f != stdin) fclose(f);
  }
  for (int i = optind; i < argc && rc == 0; i++) rc = tokenize_one(tok, argv[i], pad_id, json, show, bpe);
  safesd_tokenizer_close(tok);
  return rc;
}

/* ---- encode --------------------------------------------------------------------------- */

#define MAX_PROMPTS 64

static int cmd_encode(int argc, char **argv) {
  static const struct option opts[] = {{"model", required_argument, 0, 'm'},     {"prompt", required_argument, 0, 'p'},
                                       {"output", required_argument, 0, 'o'},    {"clip-skip", required_argument, 0, 'C'},
                                       {"threads", required_argument, 0, 't'},   {"help", no_argument, 0, 'h'},
                                       {"config", required_argument, 0, 'c'},
                                       {"prompt-syntax", required_argument, 0, 'Y'},
                                       {0, 0, 0, 0}};
  const char *model = NULL, *output = NULL, *config = NULL, *prompts[MAX_PROMPTS], *syntax = NULL;
  int n_prompts = 0, c;
  long clip_skip = 1, threads = 0;
  while ((c = getopt_long(argc, argv, "m:p:o:t:h", opts, NULL)) != -1) {
    switch (c) {
      case 'm': model = optarg; break;
      case 'p':
        if (n_prompts == MAX_PROMPTS) return usage_error("encode", "at most 64 prompts");
        prompts[n_prompts++] = optarg;
        break;
      case 'o': output = optarg; break;
      case 'c': config = optarg; break;
      case 'Y':
        if (strcmp(optarg, "a1111") && strcmp(optarg, "plain")) return usage_error("encode", "--prompt-syntax takes a1111 or plain");
        syntax = optarg;
        break;
      case 'C':
        if (cli_parse_long(optarg, 1, 48, &clip_skip)) return usage_error("encode", "--clip-skip takes 1..48");
        break;
      case 't':
        if (cli_parse_long(optarg, 0, 256, &threads)) return usage_error("encode", "--threads takes 0..256");
        break;
      case 'h': fputs(k_encode_help, stdout); return 0;
      default: return usage_error("encode", "unknown option");
    }
  }
  if (!model) return usage_error("encode", "no model given (-m)");
  if (optind < argc && n_prompts < MAX_PROMPTS) prompts[n_prompts++] = argv[optind++];
  if (optind < argc) return usage_error("encode", "unexpected argument (quote the prompt, or use -p)");
  if (n_prompts == 0) return usage_error("encode", "no prompt given (-p)");
  if (output && sd_output_check(output)) return fail("encode");
  safesd_model_options mo = {.n_threads = (int)threads, .config_dir = config};
  safesd_model *m;
  if (safesd_model_open(model, &mo, &m)) return fail("opening model");
  int dim = safesd_model_text_dim(m);
  /* each prompt in its chunks; the shorter ones padded with the empty chunk's embedding to
   * the longest (as a batch of prompts is in AUTOMATIC1111) */
  float *enc[MAX_PROMPTS] = {0}, *empty = NULL;
  int ntok[MAX_PROMPTS] = {0}, nempty = 0, seq = 0, rc = 0;
  for (int i = 0; i < n_prompts && rc == 0; i++) {
    if (safesd_encode_text(m, prompts[i], syntax, (int)clip_skip, &enc[i], &ntok[i])) rc = fail("encode");
    else if (ntok[i] > seq) seq = ntok[i];
  }
  for (int i = 0; i < n_prompts && rc == 0 && !empty; i++)
    if (ntok[i] < seq && safesd_encode_text(m, "", "plain", (int)clip_skip, &empty, &nempty)) rc = fail("encode");
  size_t per = (size_t)seq * (size_t)dim, chunk = (size_t)SAFESD_TOKENS * (size_t)dim;
  float *out = rc ? NULL : malloc(per * (size_t)n_prompts * sizeof(float));
  if (rc == 0 && !out) { fprintf(stderr, "%s: out of memory\n", g_prog); rc = EXIT_FAILURE; }
  for (int i = 0; i < n_prompts && rc == 0; i++) {
    size_t have = (size_t)ntok[i] * (size_t)dim;
    memcpy(out + per * (size_t)i, enc[i], have * sizeof(float));
    for (size_t at = have; at < per; at += chunk) memcpy(out + per * (size_t)i + at, empty, chunk * sizeof(float));
  }
  for (int i = 0; i < n_prompts; i++) free(enc[i]);
  free(empty);
  if (rc == 0) {
    for (int i = 0; i < n_prompts; i++) {
      const float *e = out + per * (size_t)i;
      double sum = 0, sq = 0;
      for (size_t j = 0; j < per; j++) { sum += e[j]; sq += (double)e[j] * e[j]; }
      double mean = sum / (double)per;
      printf("prompt %d: [%d, %d] (%d chunk%s) mean %.5f std %.5f first %.5f %.5f %.5f\n", i, ntok[i], dim,
             ntok[i] / SAFESD_TOKENS, ntok[i] > SAFESD_TOKENS ? "s" : "", mean, sqrt(sq / (double)per - mean * mean),
             e[0], e[1], e[2]);
    }
    if (output) {
      int64_t shape[3] = {n_prompts, seq, dim};
      sd_tensor t = sd_tensor_make(SD_F32, 3, shape, out);
      if (sd_npy_write(output, &t)) rc = fail("writing output");
      else printf("wrote %s [%d, %d, %d]\n", output, n_prompts, seq, dim);
    }
  }
  free(out);
  safesd_model_close(m);
  return rc;
}

/* ---- generate ------------------------------------------------------------------------- */

typedef struct { int tty, quiet, evals; double total_s; } progress_state;

/* --preview-path: each preview replaces the file (written atomically); a failure is reported
 * once, at the end */
typedef struct { const char *path; int failed; } preview_state;
static void on_preview(void *user, int step, int total, const uint8_t *rgb, int width, int height) {
  preview_state *pv = user;
  char text[64];
  snprintf(text, sizeof text, "preview %d/%d", step, total);
  if (safesd_write_png(pv->path, rgb, width, height, text) && !pv->failed++)
    fprintf(stderr, "%s: warning: preview %s: %s\n", g_prog, pv->path, safesd_last_error());
}

static void on_progress(void *user, int step, int total, double seconds) {
  progress_state *ps = user;
  ps->total_s += seconds;
  ps->evals = step;
  if (ps->quiet) return;
  double eta = ps->total_s / step * (total - step);
  int width = 30, fill = step * width / total;
  char bar[64];
  for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
  bar[width] = 0;
  if (ps->tty)
    fprintf(stderr, "\r  step %3d/%d [%s] %.2f s/step, ETA %.0f s ", step, total, bar, seconds, eta);
  else if (step == total || step % ((total + 9) / 10) == 0)
    fprintf(stderr, "  step %d/%d [%s] %.2f s/step, ETA %.0f s\n", step, total, bar, seconds, eta);
  if (ps->tty && step == total) fputc('\n', stderr);
}

static char *numbered_path(const char *out, int i) {
  size_t n = strlen(out) + 16;
  char *p = malloc(n);
  if (!p) return NULL;
  if (i == 0) { snprintf(p, n, "%s", out); return p; }
  const char *dot = strrchr(out, '.'), *slash = strrchr(out, '/');
  if (!dot || (slash && dot < slash)) dot = out + strlen(out);
  snprintf(p, n, "%.*s_%d%s", (int)(dot - out), out, i + 1, dot);
  return p;
}


/* The output files of one generate run: the images (FILE, FILE_2, ...), then --latents and
 * --safety-report. */
typedef struct outputs {
  char *path[64 + 2];
  int n;
  int to_stdout; /* one of them is this process's standard output: messages go to stderr */
} outputs;

static void outputs_free(outputs *o) {
  for (int i = 0; i < o->n; i++) free(o->path[i]);
  o->n = 0;
}

/* Each output can be written (io/fileio.h: a regular file or a new path in an existing
 * folder is replaced atomically, a FIFO or character device written through; a directory
 * is an error), and no two name the same file. Exit status (1 error, 2 usage) or 0. */
static int outputs_plan(outputs *o, const char *output, int batch, const char *latents, const char *report) {
  memset(o, 0, sizeof *o);
  struct stat st;
  if (batch > 1 && stat(output, &st) == 0 && !S_ISREG(st.st_mode))
    return usage_error("generate", "with -b N the images are FILE, FILE_2, ... FILE_N: -o must name a regular file");
  for (int i = 0; i < batch; i++)
    if (!(o->path[o->n++] = numbered_path(output, i))) { outputs_free(o); fprintf(stderr, "%s: out of memory\n", g_prog); return EXIT_FAILURE; }
  const char *extra[2] = {latents, report};
  for (int k = 0; k < 2; k++)
    if (extra[k] && !(o->path[o->n++] = strdup(extra[k]))) { outputs_free(o); fprintf(stderr, "%s: out of memory\n", g_prog); return EXIT_FAILURE; }
  for (int i = 0; i < o->n; i++) {
    if (sd_output_check(o->path[i])) { outputs_free(o); return fail("generate"); }
    o->to_stdout |= sd_output_is_fd(o->path[i], 1);
    struct stat a, b;
    int ea = stat(o->path[i], &a) == 0;
    for (int j = 0; j < i; j++)
      if (!strcmp(o->path[i], o->path[j]) || (ea && stat(o->path[j], &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)) {
        char msg[600];
        snprintf(msg, sizeof msg, "two outputs are the same file: %.280s and %.280s", o->path[j], o->path[i]);
        outputs_free(o);
        return usage_error("generate", msg);
      }
  }
  return 0;
}

static int cmd_generate(int argc, char **argv) {
  static const struct option opts[] = {
      {"model", required_argument, 0, 'm'},   {"prompt", required_argument, 0, 'p'},
      {"negative-prompt", required_argument, 0, 'n'}, {"width", required_argument, 0, 'W'},
      {"height", required_argument, 0, 'H'},  {"steps", required_argument, 0, 'S'},
      {"cfg-scale", required_argument, 0, 'g'}, {"seed", required_argument, 0, 's'},
      {"sampler", required_argument, 0, 'a'}, {"sampling-method", required_argument, 0, 'a'},
      {"scheduler", required_argument, 0, 'k'}, {"batch-count", required_argument, 0, 'b'},
      {"clip-skip", required_argument, 0, 'C'}, {"threads", required_argument, 0, 't'},
      {"output", required_argument, 0, 'o'},  {"latents", required_argument, 0, 'L'},
      {"config", required_argument, 0, 'c'},  {"quiet", no_argument, 0, 'q'},
      {"sld", required_argument, 0, 1001},    {"sld-concept", required_argument, 0, 1002},
      {"safety-negative", no_argument, 0, 1003}, {"safety-text", required_argument, 0, 1004},
      {"safety-weight", required_argument, 0, 1005}, {"context-steps", required_argument, 0, 1006},
      {"safety-blend", required_argument, 0, 1007}, {"safety-report", required_argument, 0, 1008},
      {"safety", required_argument, 0, 1009},  {"concepts", required_argument, 0, 1010},
      {"safety-strategy", required_argument, 0, 1011}, {"detectors", required_argument, 0, 1012},
      {"semantic-threshold", required_argument, 0, 1013}, {"precision", required_argument, 0, 1014},
      {"max-pixels", required_argument, 0, 1015}, {"mem-budget", required_argument, 0, 1016},
      {"image-check", required_argument, 0, 1017}, {"image-check-action", required_argument, 0, 1018},
      {"vae-tiling", no_argument, 0, 1101},   {"vae-tile-size", required_argument, 0, 1102},
      {"lora-model-dir", required_argument, 0, 1103}, {"lora-dir", required_argument, 0, 1103},
      {"taesd", required_argument, 0, 1104},
      {"preview-path", required_argument, 0, 1105}, {"preview-interval", required_argument, 0, 1106},
      {"prompt-syntax", required_argument, 0, 1019},
      {"init-img", required_argument, 0, 'i'}, {"strength", required_argument, 0, 1021},
      {"mask", required_argument, 0, 1022},
      {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
  const char *model = NULL, *config = NULL, *output = "output.png", *latents_path = NULL, *report_path = NULL;
  const char *init_path = NULL, *mask_path = NULL;
  int precision = SAFESD_PRECISION_FP32;
  long long mem_budget = 0;
  const char *taesd = NULL;
  preview_state pv = {NULL, 0};
  safesd_gen_params p;
  safesd_gen_defaults(&p);
  p.seed = 42;
  long v, threads = 0;
  int c, quiet = 0;
  while ((c = getopt_long(argc, argv, "m:p:n:W:H:s:b:t:o:i:qh", opts, NULL)) != -1) {
    switch (c) {
      case 'm': model = optarg; break;
      case 'c': config = optarg; break;
      case 'p': p.prompt = optarg; break;
      case 'n': p.negative_prompt = optarg; break;
      case 'W': if (cli_parse_long(optarg, 8, 1 << 20, &v)) return usage_error("generate", "-W takes a width in pixels"); p.width = (int)v; break;
      case 'H': if (cli_parse_long(optarg, 8, 1 << 20, &v)) return usage_error("generate", "-H takes a height in pixels"); p.height = (int)v; break;
      case 'S':
        if (cli_parse_long(optarg, 1, 1000, &v))
          return usage_error("generate", "--steps takes 1..1000 (SD's schedulers have 1000 training timesteps; the model's "
                                         "scheduler may allow fewer)");
        p.steps = (int)v;
        break;
      case 1015:
        if (cli_parse_long(optarg, 1, 4096L * 4096L, &v))
          return usage_error("generate", "--max-pixels takes 1..16777216 (width x height of one image)");
        p.max_pixels = v;
        break;
      case 'g': if (cli_parse_float(optarg, &p.cfg_scale)) return usage_error("generate", "--cfg-scale takes a number"); break;
      case 's':
        if (!strcmp(optarg, "-1")) {
          struct timespec ts;
          clock_gettime(CLOCK_REALTIME, &ts);
          p.seed = ((uint64_t)ts.tv_sec * 1000000007ull) ^ (uint64_t)ts.tv_nsec;
          p.seed &= 0xffffffffull;
        } else if (cli_parse_u64(optarg, &p.seed)) return usage_error("generate", "--seed takes 0..2^64-1 or -1");
        break;
      case 'a': p.sampler = optarg; break;
      case 'k': p.schedule = optarg; break;
      case 'b': if (cli_parse_long(optarg, 1, 64, &v)) return usage_error("generate", "-b takes 1..64"); p.batch = (int)v; break;
      case 'C': if (cli_parse_long(optarg, 1, 48, &v)) return usage_error("generate", "--clip-skip takes 1..48"); p.clip_skip = (int)v; break;
      case 't': if (cli_parse_long(optarg, 0, 256, &threads)) return usage_error("generate", "--threads takes 0..256"); break;
      case 'o': output = optarg; break;
      case 'L': latents_path = optarg; break;
      case 'q': quiet = 1; break;
      case 1001:
        if (strcmp(optarg, "none") && strcmp(optarg, "weak") && strcmp(optarg, "medium") && strcmp(optarg, "strong") &&
            strcmp(optarg, "max"))
          return usage_error("generate", "--sld takes none, weak, medium, strong or max");
        p.sld = optarg;
        break;
      case 1002: p.sld_concept = optarg; break;
      case 1003: p.safety_negative = 1; break;
      case 1004: p.safety_text = optarg; break;
      case 1009: p.safety = optarg; break;
      case 1010: p.concepts = optarg; break;
      case 1011: p.safety_strategy = optarg; break;
      case 1012: p.detectors = optarg; break;
      case 1013:
        if (cli_parse_float(optarg, &p.semantic_threshold)) return usage_error("generate", "--semantic-threshold takes a number");
        break;
      case 1014:
        if (!strcmp(optarg, "fp32")) precision = SAFESD_PRECISION_FP32;
        else if (!strcmp(optarg, "bf16")) precision = SAFESD_PRECISION_BF16;
        else return usage_error("generate", "--precision takes fp32 or bf16");
        break;
      case 1016:
        if (cli_parse_bytes(optarg, &mem_budget))
          return usage_error("generate", "--mem-budget takes a size in bytes, with an optional K, M or G (e.g. 3G)");
        break;
      case 1005:
        if (cli_parse_float(optarg, &p.safety_weight) || p.safety_weight < 0 || p.safety_weight > 1)
          return usage_error("generate", "--safety-weight takes a number in [0,1]");
        break;
      case 1006:
        if (cli_parse_float(optarg, &p.context_steps) || p.context_steps < 0 || p.context_steps > 1)
          return usage_error("generate", "--context-steps takes a number in [0,1]");
        break;
      case 1007:
        if (strcmp(optarg, "step") && strcmp(optarg, "final")) return usage_error("generate", "--safety-blend takes step or final");
        p.blend = optarg;
        break;
      case 1008: report_path = optarg; break;
      case 1101: p.vae_tiling = 1; break;
      case 1103: p.lora_dir = optarg; break;
      case 1104: taesd = optarg; break;
      case 1105: pv.path = optarg; break;
      case 1106:
        if (cli_parse_long(optarg, 1, 1000, &v)) return usage_error("generate", "--preview-interval takes 1..1000");
        p.preview_interval = (int)v;
        break;
      case 1102:
        if (cli_parse_long(optarg, 1, 16384, &v))
          return usage_error("generate", "--vae-tile-size takes a size in pixels, 1..16384 (a multiple of 4 x the VAE's factor)");
        p.vae_tiling = 1, p.vae_tile_size = (int)v;
        break;
      case 1017: p.image_check = optarg; break;
      case 1018:
        if (strcmp(optarg, "flag") && strcmp(optarg, "blur") && strcmp(optarg, "block"))
          return usage_error("generate", "--image-check-action takes flag, blur or block");
        p.image_check_action = optarg;
        break;
      case 1019:
        if (strcmp(optarg, "a1111") && strcmp(optarg, "plain")) return usage_error("generate", "--prompt-syntax takes a1111 or plain");
        p.prompt_syntax = optarg;
        break;
      case 'i': init_path = optarg; break;
      case 1021:
        if (cli_parse_double(optarg, &p.strength)) return usage_error("generate", "--strength takes a number");
        break;
      case 1022: mask_path = optarg; break;
      case 'h': fputs(k_generate_help, stdout); return 0;
      default: return usage_error("generate", "unknown option");
    }
  }
  if (optind < argc && !p.prompt) p.prompt = argv[optind++];
  if (optind < argc) return usage_error("generate", "unexpected argument (quote the prompt)");
  if (!p.prompt) return usage_error("generate", "no prompt given (-p)");
  if (mask_path && !init_path) return usage_error("generate", "--mask needs --init-img (the image to repaint)");
  /* the outputs, checked before any work */
  outputs outs;
  const char *dash[] = {"-", "/dev/stdout"};
  if (!strcmp(output, dash[0])) output = dash[1];
  if (latents_path && !strcmp(latents_path, dash[0])) latents_path = dash[1];
  if (report_path && !strcmp(report_path, dash[0])) report_path = dash[1];
  int orc = outputs_plan(&outs, output, p.batch, latents_path, report_path);
  if (orc) return orc;
  char bundled[4096];
  if (!model) {
    if (config) { outputs_free(&outs); return usage_error("generate", "--config describes a single-file checkpoint given with -m"); }
    if (safesd_bundled_model(bundled, sizeof bundled)) { outputs_free(&outs); return fail("no -m given, and the bundled model"); }
    model = bundled;
    if (!quiet) fprintf(stderr, "model: %s (the bundled model; -m chooses another)\n", model);
  }
  safesd_model_options mo = {.n_threads = (int)threads, .config_dir = config, .precision = precision, .mem_budget = mem_budget,
                             .taesd = taesd};
  safesd_model *m;
  if (safesd_model_open(model, &mo, &m)) { outputs_free(&outs); return fail("opening model"); }
  if (precision == SAFESD_PRECISION_BF16 && safesd_model_precision(m) != SAFESD_PRECISION_BF16)
    fprintf(stderr, "safesd: warning: --precision bf16: this CPU has no native bf16 arithmetic (AVX512-BF16 or "
                    "AMX); computing in fp32\n");
  int rc = 0;
  uint8_t *rgb = NULL, *init_rgb = NULL, *mask_rgb = NULL;
  float *lat = NULL;
  if ((rc = cli_read_init_images(init_path, mask_path, &p, &init_rgb, &mask_rgb))) goto out;
  if (safesd_gen_resolve(m, &p)) { rc = fail("generate"); goto out; }
  size_t npx = (size_t)p.width * p.height;
  int lc, lh, lw;
  safesd_gen_latent_shape(m, &p, &lc, &lh, &lw);
  rgb = malloc(npx * 3 * (size_t)p.batch);
  lat = latents_path ? malloc((size_t)lc * lh * lw * sizeof(float) * (size_t)p.batch) : NULL;
  if (!rgb || (latents_path && !lat)) { fprintf(stderr, "%s: out of memory\n", g_prog); rc = EXIT_FAILURE; goto out; }
  progress_state ps = {isatty(2), quiet, 0, 0};
  p.progress = on_progress;
  p.progress_user = &ps;
  if (pv.path) p.preview = on_preview, p.preview_user = &pv;
  if (!quiet)
    fprintf(stderr, "generating %d image%s %dx%d, %d steps, %s (%s), CFG %g, seed %llu\n", p.batch,
            p.batch > 1 ? "s" : "", p.width, p.height, p.steps, p.sampler, p.schedule, (double)p.cfg_scale,
            (unsigned long long)p.seed);
  if (!quiet && p.init_image)
    fprintf(stderr, "%s from %s%s%s, strength %g\n", p.mask_image ? "inpainting" : "image to image", init_path,
            p.mask_image ? " with the mask " : "", p.mask_image ? mask_path : "", p.strength);
  safesd_safety_report rep;
  if (safesd_generate_ex(m, &p, rgb, lat, &rep)) { if (ps.tty && !quiet) fputc('\n', stderr); rc = fail("generate"); goto out; }
  /* every output to a temporary file (or held back, for a pipe); then all renamed at once:
   * they appear together or not at all (io/fileio.h). An image the image check blocks is
   * not written at all. */
  if (sd_outputs_begin()) { rc = fail("generate"); goto out; }
  FILE *msgs = outs.to_stdout ? stderr : stdout;
  int n_blocked = 0;
  char blocked[64 + 2] = {0};
  for (int i = 0; i < p.batch && rc == 0; i++) {
    char *params = safesd_gen_parameters_text(m, &p, i);
    const safesd_image_verdict *v = i < rep.n_images ? &rep.images[i] : NULL;
    if (v && v->nsfw == 1 && !quiet) fprintf(stderr, "image check: %s: unsafe by %s (%s)\n", outs.path[i], v->judges, v->action);
    if (!params) { fprintf(stderr, "%s: out of memory\n", g_prog); rc = EXIT_FAILURE; }
    else if (v && !strcmp(v->action, "blocked")) { blocked[i] = 1; n_blocked++; }
    else if (safesd_write_png(outs.path[i], rgb + npx * 3 * (size_t)i, p.width, p.height, params)) rc = fail("writing image");
    free(params);
  }
  if (rc == 0 && latents_path) {
    int64_t shape[4] = {p.batch, lc, lh, lw};
    sd_tensor t = sd_tensor_make(SD_F32, 4, shape, lat);
    if (sd_npy_write(latents_path, &t)) rc = fail("writing latents");
  }
  if (rc == 0 && report_path && safesd_safety_report_write(&rep, report_path)) rc = fail("writing safety report");
  if (rc == 0 && sd_outputs_commit()) rc = fail("writing the outputs");
  if (rc) sd_outputs_abort();
  for (int i = 0; i < outs.n && rc == 0; i++)
    fprintf(msgs, blocked[i] ? "blocked %s (not written)\n" : "wrote %s\n", outs.path[i]);
  if (rc == 0 && !quiet && rep.flagged)
    fprintf(stderr, "safety: prompt flagged (%s) at level %s; safe text: \"%s\"\n", rep.categories, rep.level,
            rep.safety_text ? rep.safety_text : "");
  if (rc == 0 && !quiet && rep.projection) fprintf(stderr, "safety: %s\n", rep.projection);
  if (rc == 0 && !quiet && rep.loras)
    fprintf(stderr, "LoRA: %s merged (a LoRA can bring back what the safety layer steers away from)\n", rep.loras);
  if (rc == 0 && !quiet && rep.beyond_window)
    fprintf(stderr, "safety: past the text encoder's window (not seen by the model, not judged): \"%s\"\n",
            rep.beyond_window);
  if (rc == 0 && !quiet && rep.altered)
    fprintf(stderr, "safety: SLD %s%s%s, extra %.2f s (%s)\n", rep.sld, rep.safety_negative ? ", negative prompt" : "",
            rep.dual ? (rep.dual_ran ? ", dual path ran" : ", dual path requested (k = T: no dual step)") : "",
            rep.extra_seconds, rep.extra_method);
  if (rc == 0 && !quiet) fprintf(stderr, "sampling took %.1f s (%.2f s per UNet evaluation)\n", ps.total_s, ps.total_s / (ps.evals ? ps.evals : 1));
  if (rc == 0 && n_blocked) {
    fprintf(stderr, "%s generate: %d of %d image%s blocked by the image check (--image-check-action block)\n", g_prog,
            n_blocked, p.batch, p.batch > 1 ? "s" : "");
    rc = EXIT_BLOCKED;
  }
out:
  free(rgb);
  free(lat);
  free(init_rgb);
  free(mask_rgb);
  safesd_model_close(m);
  outputs_free(&outs);
  return rc;
}

/* ---- calibrate ----------------------------------------------------------------------- */

static const char *k_calibrate_help =
    "usage: safesd calibrate --unsafe FILE --benign FILE [--target-fpr R] [-m MODEL]\n"
    "                        [--concepts BANK] [--detectors LIST] [--out FILE | --write-bank]\n"
    "\n"
    "Choose each detector's threshold from labelled prompts: the smallest threshold at which\n"
    "at most floor(R x benign prompts) of the benign file fire. Prints, per detector, the\n"
    "threshold, the true-positive rate on the unsafe file and the false-positive rate on the\n"
    "benign file. Prompt files: UTF-8, one prompt per line; blank lines and lines starting\n"
    "with '#' are skipped. Without --out or --write-bank nothing is written.\n"
    "\n"
    "      --unsafe FILE         prompts that should be flagged\n"
    "      --benign FILE         prompts that should not be flagged\n"
    "      --target-fpr R        target false-positive rate on the benign file, 0..1\n"
    "                            (default 0.05)\n"
    "  -m, --model PATH          the model whose text encoder the semantic detector uses\n"
    "      --config DIR          for a single-file model: a diffusers folder describing it\n"
    "      --concepts FILE       concept bank (default: the model's safety/concepts.bank\n"
    "                            when it has one, else data/concepts/default.bank)\n"
    "      --detectors LIST      lexical (default), semantic, learned, comma-separated\n"
    "      --out FILE            write the thresholds to this calibration file (created, or\n"
    "                            updated keeping other detectors' entries)\n"
    "      --write-bank          write them to the [thresholds] section of the --concepts\n"
    "                            bank (or of the model's own bank), which 'check' and\n"
    "                            'generate' then use (a semantic threshold is tied to\n"
    "                            the model it was calibrated with, a learned one to\n"
    "                            its weights file)\n"
    "  -h, --help                this help\n";

static int cmd_calibrate(int argc, char **argv) {
  static const struct option opts[] = {{"unsafe", required_argument, 0, 'U'},     {"benign", required_argument, 0, 'B'},
                                       {"target-fpr", required_argument, 0, 'r'}, {"model", required_argument, 0, 'm'},
                                       {"config", required_argument, 0, 'C'},     {"concepts", required_argument, 0, 'c'},
                                       {"detectors", required_argument, 0, 'D'},  {"out", required_argument, 0, 'o'},
                                       {"write-bank", no_argument, 0, 'W'},       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *model = NULL, *config = NULL;
  safesd_calibrate_params cp = {0};
  cp.target_fpr = 0.05;
  int c;
  while ((c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
    switch (c) {
      case 'U': cp.unsafe_file = optarg; break;
      case 'B': cp.benign_file = optarg; break;
      case 'r':
        if (cli_parse_double(optarg, &cp.target_fpr) || !(cp.target_fpr >= 0 && cp.target_fpr <= 1))
          return usage_error("calibrate", "--target-fpr takes a rate in [0, 1]");
        break;
      case 'm': model = optarg; break;
      case 'C': config = optarg; break;
      case 'c': cp.concepts = optarg; break;
      case 'D': cp.detectors = optarg; break;
      case 'o': cp.out_file = optarg; break;
      case 'W': cp.write_bank = 1; break;
      case 'h': fputs(k_calibrate_help, stdout); return 0;
      default: return usage_error("calibrate", "unknown option");
    }
  }
  if (optind < argc) return usage_error("calibrate", "unexpected argument");
  if (!cp.unsafe_file || !cp.benign_file) return usage_error("calibrate", "give --unsafe FILE and --benign FILE");
  if (cp.out_file && cp.write_bank) return usage_error("calibrate", "give --out FILE or --write-bank, not both");
  if (cp.write_bank && !cp.concepts && !model)
    return usage_error("calibrate", "--write-bank needs --concepts FILE or -m MODEL with its own safety/concepts.bank "
                                    "(the bundled default bank is not rewritten)");
  if (config && !model) return usage_error("calibrate", "--config needs -m");
  safesd_model *m = NULL;
  safesd_model_options mo = {.config_dir = config};
  if (model && safesd_model_open(model, &mo, &m)) return fail("opening model");
  int rc = safesd_calibrate(m, &cp, stdout) ? fail("calibrate") : 0;
  safesd_model_close(m);
  return rc;
}

/* ---- convert ------------------------------------------------------------------------- */

static const char *k_convert_help =
    "usage: safesd convert MODEL OUT.safetensors [--dtype f16|bf16|f32] [--config DIR]\n"
    "\n"
    "Write MODEL (a diffusers folder or a single file) as one .safetensors checkpoint in the\n"
    "original LDM layout (model.diffusion_model.*, first_stage_model.*, and\n"
    "cond_stage_model.transformer.text_model.* for SD 1.x's CLIP text encoder or\n"
    "cond_stage_model.model.* for SD 2.x's OpenCLIP one), the layout single-file tools load.\n"
    "The file is written atomically. OpenCLIP: each layer's q, k, v become attn.in_proj_*,\n"
    "and a resblock of zeros follows the folder's layers in the place of the tower's last\n"
    "layer, which SD 2 skips (every SD 2 loader runs all resblocks but the last). A file\n"
    "has no tokenizer or scheduler: a model with its own vocabulary (the bundled one) or\n"
    "non-standard sizes loads with --config ITS_FOLDER.\n"
    "\n"
    "      --dtype T      store float tensors as f16, bf16 or f32 (default: as they are)\n"
    "      --config DIR   for a single-file input: a diffusers folder describing it\n"
    "  -h, --help         this help\n";

static int cmd_convert(int argc, char **argv) {
  static const struct option opts[] = {{"dtype", required_argument, 0, 'd'}, {"config", required_argument, 0, 'c'},
                                       {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  const char *dtype = NULL, *config = NULL;
  int c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
      case 'd': dtype = optarg; break;
      case 'c': config = optarg; break;
      case 'h': fputs(k_convert_help, stdout); return 0;
      default: return usage_error("convert", "unknown option");
    }
  }
  if (optind != argc - 2) return usage_error("convert", "give a model and an output file");
  if (sd_output_check(argv[optind + 1])) return fail("convert"); /* before the work */
  if (safesd_convert(argv[optind], config, argv[optind + 1], dtype)) return fail("convert");
  printf("wrote %s\n", argv[optind + 1]);
  return 0;
}

/* ---- inspect -------------------------------------------------------------------------- */

static int cmd_inspect(int argc, char **argv) {
  static const struct option opts[] = {{"json", no_argument, 0, 'J'}, {"config", required_argument, 0, 'c'},
                                       {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  int json = 0, c;
  const char *config = NULL;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
      case 'J': json = 1; break;
      case 'c': config = optarg; break;
      case 'h': fputs(k_inspect_help, stdout); return 0;
      default: return usage_error("inspect", "unknown option");
    }
  }
  if (optind != argc - 1) return usage_error("inspect", "give exactly one model path");
  if (safesd_inspect(argv[optind], config, json, stdout)) return fail("inspect");
  return 0;
}

/* ---- main ----------------------------------------------------------------------------- */

typedef struct {
  const char *name;
  int (*fn)(int, char **);
} command;

static const command k_commands[] = {
    {"generate", cmd_generate},
    {"tokenize", cmd_tokenize},
    {"encode", cmd_encode},
    {"inspect", cmd_inspect},
    {"convert", cmd_convert},
    {"check", cli_check},
    {"calibrate", cmd_calibrate},
    {"demo", cli_demo},
    {"edit", cli_edit},
    {"eval", cli_eval},
    {"serve", cli_serve},
};

int main(int argc, char **argv) {
  if (argc < 2) { fputs(k_main_help, stderr); return EXIT_USAGE; }
  safesd_process_init(argv); /* short OpenMP spin-waits (may re-execute once) */
  /* an interrupted run leaves no temporary files (io/fileio.h) */
  if (sd_install_signal_cleanup()) return fail("installing signal handlers");
  const char *cmd = argv[1];
  if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) { fputs(k_main_help, stdout); return 0; }
  if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) { printf("safesd %s\n", safesd_version()); return 0; }
  if (!strcmp(cmd, "help")) {
    if (argc < 3) { fputs(k_main_help, stdout); return 0; }
    char *hargv[] = {argv[2], "--help", NULL};
    cmd = argv[2];
    argc = 2;
    argv = hargv; /* argv[0] = command name, argv[1] = --help */
    for (size_t i = 0; i < sizeof k_commands / sizeof *k_commands; i++)
      if (!strcmp(cmd, k_commands[i].name)) return k_commands[i].fn(argc, argv);
    fprintf(stderr, "%s: unknown command '%s'\n", g_prog, cmd);
    return EXIT_USAGE;
  }
  for (size_t i = 0; i < sizeof k_commands / sizeof *k_commands; i++)
    if (!strcmp(cmd, k_commands[i].name)) return k_commands[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "%s: unknown command '%s' (see 'safesd --help')\n", g_prog, cmd);
  return EXIT_USAGE;
}
