/* `safesd edit`: model edits that write a new checkpoint (today: `safesd edit uce`). */
#ifndef SAFESD_CLI_EDIT_H
#define SAFESD_CLI_EDIT_H
int cli_edit(int argc, char **argv);
#endif
