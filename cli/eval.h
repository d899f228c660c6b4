/* `safesd eval`: the evaluation harness (src/eval/harness.h). */
#ifndef SAFESD_CLI_EVAL_H
#define SAFESD_CLI_EVAL_H

int cli_eval(int argc, char **argv);

#endif
