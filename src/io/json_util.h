/* JSON helpers for configuration files (diffusers config.json, model_index.json,
 * scheduler_config.json, ...). Files are untrusted input: loading is size-limited, duplicate
 * keys are rejected, and every getter checks type and range and reports errors that name the
 * file and the key, so that a caller can write
 *
 *   json_t *cfg;
 *   int rc = sd_json_load_file(path, SD_JSON_CONFIG_MAX, &cfg);
 *   if (rc) return rc;
 *   int ch = 4, boc[SD_MAX_LEVELS], n;   // 4: the default when the key is absent
 *   if ((rc = sd_json_get_i32(cfg, "in_channels", path, 1, 64, &ch, 0)) ||
 *       (rc = sd_json_get_int_array(cfg, "block_out_channels", path, boc, SD_MAX_LEVELS, &n)))
 *     { json_decref(cfg); return rc; }
 *
 * Conventions shared by all getters:
 *  - Every function returns SD_OK (0) or a negative sd_status (core/error.h) after sd_fail()
 *    with a one-line message "path: key 'k': ...". `path` is only a label for messages (the
 *    file name, or "unet/config.json" for a nested object); NULL prints as "<json>".
 *  - A key that is absent or whose value is JSON null counts as absent (diffusers writes
 *    null for "use the default"). Absent + required=1 -> SD_E_FORMAT "missing required key";
 *    absent + required=0 -> SD_OK with *out left untouched, so preset *out to the default.
 *    Use sd_json_has() to tell whether a key was given.
 *  - A value of the wrong type or out of range -> SD_E_FORMAT; *out is left untouched.
 *  - `obj` must be a JSON object (else SD_E_FORMAT); `key` and `out` must not be NULL
 *    (else SD_E_ARG).
 *  - Strings returned point into the json_t tree and live as long as it does.
 *  - Values quoted in messages are escaped and shortened (see sd_msg_quote), so a hostile
 *    file cannot put terminal escape sequences or megabytes of text into an error message.
 */
#ifndef SD_IO_JSON_UTIL_H
#define SD_IO_JSON_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* A generous upper bound for config files (the largest real ones are a few KiB). */
#define SD_JSON_CONFIG_MAX ((size_t)1 << 20)

/* Read and parse a JSON file whose top level must be an object. Errors:
 *   SD_E_IO      "path: cannot open: No such file or directory" (missing, unreadable,
 *                a directory or other non-regular file);
 *   SD_E_FORMAT  "path: file is too large (N bytes; the limit is M)",
 *                "path: file is empty",
 *                "path:line:col: <parser message>" (malformed JSON, invalid UTF-8, duplicate
 *                keys, nesting deeper than the parser limit, integer too big, NUL in a string),
 *                "path: top level is an array, expected an object".
 * On success *out holds a new reference (json_decref it); on failure *out = NULL. */
int sd_json_load_file(const char *path, size_t max_bytes, json_t **out);
/* The same for a buffer (need not be NUL-terminated); label names it in messages. */
int sd_json_load_memory(const void *buf, size_t len, const char *label, size_t max_bytes,
                        json_t **out);

/* 1 if obj is an object and has key with a non-null value, else 0. */
int sd_json_has(const json_t *obj, const char *key);
/* "an object", "an array", "a string", "an integer", "a number", "true", "false", "null". */
const char *sd_json_type_name(const json_t *v);

/* An integer in [min, max]. A JSON number with a fractional part is rejected; an integral
 * real such as 64.0 is accepted (Python writes floats that way). */
int sd_json_get_int(const json_t *obj, const char *key, const char *path, int64_t min,
                    int64_t max, int64_t *out, int required);
/* The same into an int. */
int sd_json_get_i32(const json_t *obj, const char *key, const char *path, int min, int max,
                    int *out, int required);
/* A number (integer or real) in [min, max]. */
int sd_json_get_num(const json_t *obj, const char *key, const char *path, double min,
                    double max, double *out, int required);
/* The same into a float (min/max must be representable as float). */
int sd_json_get_f32(const json_t *obj, const char *key, const char *path, float min,
                    float max, float *out, int required);
/* A string (valid UTF-8, no NUL bytes: the loader guarantees both). */
int sd_json_get_str(const json_t *obj, const char *key, const char *path, const char **out,
                    int required);
/* true/false only (not 0/1, not "true"); *out = 1 or 0. */
int sd_json_get_bool(const json_t *obj, const char *key, const char *path, int *out,
                     int required);
/* A required array of at most max_n integers, each representable as int; *n = its length
 * (0 allowed). A scalar where an array is expected is an error: for keys that diffusers allows
 * either way (attention_head_dim), branch on json_is_array(json_object_get(obj, key)). */
int sd_json_get_int_array(const json_t *obj, const char *key, const char *path, int *out,
                          int max_n, int *n);
/* Full form: elements in [min, max]; required=0 leaves out and *n untouched when absent. */
int sd_json_get_int_array_ex(const json_t *obj, const char *key, const char *path,
                             int64_t min, int64_t max, int *out, int max_n, int *n,
                             int required);
/* An array of at most max_n strings (e.g. down_block_types); pointers into the tree. */
int sd_json_get_str_array(const json_t *obj, const char *key, const char *path,
                          const char **out, int max_n, int *n, int required);
/* A nested object (e.g. a sub-config); *out borrowed from the tree. */
int sd_json_get_obj(const json_t *obj, const char *key, const char *path, const json_t **out,
                    int required);

/* Copy s into buf (capacity cap >= 4) so that it is safe to print in a one-line message:
 * printable ASCII is kept, '\' becomes "\\", control bytes (C0, DEL), C1 controls and
 * Unicode bidi/line-separator characters become \xNN or \uNNNN, invalid UTF-8 bytes become
 * \xNN, and text that does not fit is cut at a character boundary and ends in "...".
 * NULL prints as "(null)". Returns buf. */
char *sd_msg_quote(const char *s, char *buf, size_t cap);
/* The same without doubling '\\': for text that may already hold sd_msg_quote's escapes
 * (a whole error message about to be printed). */
char *sd_msg_clean(const char *s, char *buf, size_t cap);

#endif
