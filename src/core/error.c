#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char g_msg[1024];

int sd_fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_msg, sizeof g_msg, fmt, ap);
  va_end(ap);
  return code;
}

int sd_fail_prefix(int code, const char *fmt, ...) {
  char prefix[512], old[sizeof g_msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, g_msg, sizeof old);
  size_t n = strlen(prefix);
  if (n >= sizeof g_msg) n = sizeof g_msg - 1;
  memcpy(g_msg, prefix, n);
  size_t m = strlen(old);
  if (m > sizeof g_msg - 1 - n) m = sizeof g_msg - 1 - n;
  memcpy(g_msg + n, old, m);
  g_msg[n + m] = 0;
  return code;
}

const char *sd_errmsg(void) { return g_msg; }

void sd_clear_error(void) { g_msg[0] = 0; }

const char *sd_status_name(int code) {
  switch (code) {
    case SD_OK: return "ok";
    case SD_E_IO: return "I/O error";
    case SD_E_FORMAT: return "format error";
    case SD_E_NOMEM: return "out of memory";
    case SD_E_ARG: return "invalid argument";
    case SD_E_UNSUPPORTED: return "unsupported";
    case SD_E_CANCELLED: return "cancelled";
    default: return "internal error";
  }
}
