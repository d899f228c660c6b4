/* safesd check (cli/check.c). */
#ifndef SAFESD_CLI_CHECK_H
#define SAFESD_CLI_CHECK_H
int cli_check(int argc, char **argv);
#endif
