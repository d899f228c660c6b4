/* Error reporting for the whole library.
 *
 * Every fallible function returns an int status: SD_OK (0) or a negative sd_status.
 * On failure it first records a one-line, human-readable reason with sd_fail(); the
 * reason is thread-local and read back with sd_errmsg(). Callers add context with
 * sd_fail_prefix() ("loading unet: " + inner reason) rather than overwriting it.
 */
#ifndef SD_CORE_ERROR_H
#define SD_CORE_ERROR_H

typedef enum {
  SD_OK = 0,
  SD_E_IO = -1,          /* file missing, unreadable, unwritable, disk full */
  SD_E_FORMAT = -2,      /* malformed or inconsistent input file or data */
  SD_E_NOMEM = -3,       /* allocation failed or size over a sanity limit */
  SD_E_ARG = -4,         /* invalid argument from the caller or user */
  SD_E_UNSUPPORTED = -5, /* valid input we do not handle (yet) */
  SD_E_INTERNAL = -6,    /* a bug: an invariant did not hold */
  SD_E_CANCELLED = -7    /* stopped by the caller (a cancel callback) */
} sd_status;

#if defined(__GNUC__)
#define SD_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SD_PRINTF(a, b)
#endif

/* Record the reason for a failure and return code (so: `return sd_fail(SD_E_IO, ...)`). */
int sd_fail(int code, const char *fmt, ...) SD_PRINTF(2, 3);
/* Prefix the current reason with more context; returns code. */
int sd_fail_prefix(int code, const char *fmt, ...) SD_PRINTF(2, 3);
/* The last recorded reason on this thread ("" if none). */
const char *sd_errmsg(void);
void sd_clear_error(void);
/* A short name for a status ("I/O error", "format error", ...). */
const char *sd_status_name(int code);

#endif
