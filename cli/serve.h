/* `safesd serve`: the HTTP server (src/server/server.h, docs/server.md). */
#ifndef SAFESD_CLI_SERVE_H
#define SAFESD_CLI_SERVE_H

int cli_serve(int argc, char **argv);

#endif
