/* Subcommands of the safesd CLI that live outside main.c. */
#ifndef SAFESD_CLI_DEMO_H
#define SAFESD_CLI_DEMO_H
int cli_demo(int argc, char **argv);
#endif
