#define _GNU_SOURCE /* dladdr */
#include "io/fileio.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

const char *sd_file_kind(unsigned mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "a special file";
}

int sd_open_regular(const char *path, const char *expected, int *fd_out, int64_t *size) {
  *fd_out = -1;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return sd_fail(SD_E_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    int e = errno;
    close(fd);
    return sd_fail(SD_E_IO, "%s: cannot stat: %s", path, strerror(e));
  }
  if (!S_ISREG(sb.st_mode)) {
    close(fd);
    if (S_ISDIR(sb.st_mode)) return sd_fail(SD_E_IO, "%s: is a directory, expected %s", path, expected ? expected : "a file");
    return sd_fail(SD_E_IO, "%s: is %s, not a regular file (expected %s)", path, sd_file_kind(sb.st_mode),
                   expected ? expected : "a file");
  }
  *fd_out = fd;
  *size = (int64_t)sb.st_size;
  return SD_OK;
}

int sd_read_file(const char *path, size_t max, const char *expected, char **buf, size_t *len) {
  *buf = NULL;
  *len = 0;
  int fd;
  int64_t size;
  int rc = sd_open_regular(path, expected, &fd, &size);
  if (rc) return rc;
  if ((uint64_t)size > (uint64_t)max) {
    close(fd);
    return sd_fail(SD_E_FORMAT, "%s: file is too large (%lld bytes; the limit is %zu)", path, (long long)size, max);
  }
  char *b = malloc((size_t)size + 1);
  if (!b) { close(fd); return sd_fail(SD_E_NOMEM, "%s: out of memory (%lld bytes)", path, (long long)size); }
  size_t n = 0;
  while (n < (size_t)size) { /* a file that shrinks meanwhile gives what is there */
    ssize_t r = read(fd, b + n, (size_t)size - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      close(fd);
      free(b);
      return sd_fail(SD_E_IO, "%s: read failed: %s", path, strerror(e));
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  close(fd);
  b[n] = 0;
  *buf = b;
  *len = n;
  return SD_OK;
}

/* stat path: 1 when something is there, 0 when nothing (not even a dangling link), else an
 * error naming path. */
static int probe(const char *path, struct stat *sb) {
  if (stat(path, sb) == 0) return 1;
  int e = errno;
  struct stat ls;
  if (e == ENOENT && lstat(path, &ls) == 0)
    return sd_fail(SD_E_IO, "%s: a symbolic link to a missing file", path);
  if (e == ENOENT) return 0;
  return sd_fail(SD_E_IO, "%s: cannot read it: %s", path, strerror(e));
}

int sd_probe_file(const char *path, const char *expected) {
  struct stat sb;
  int rc = probe(path, &sb);
  if (rc <= 0) return rc;
  int fd;
  int64_t size;
  if ((rc = sd_open_regular(path, expected, &fd, &size))) return rc;
  close(fd);
  return 1;
}

int sd_probe_dir(const char *path) {
  struct stat sb;
  int rc = probe(path, &sb);
  if (rc <= 0) return rc;
  if (!S_ISDIR(sb.st_mode)) return sd_fail(SD_E_IO, "%s: is %s, expected a folder", path, sd_file_kind(sb.st_mode));
  return 1;
}

int sd_cache_dir(char *buf, size_t cap) {
  const char *d = getenv("SAFESD_CACHE_DIR");
  int w;
  if (d && *d) w = snprintf(buf, cap, "%s", d);
  else if ((d = getenv("XDG_CACHE_HOME")) && *d) w = snprintf(buf, cap, "%s/safesd", d);
  else if ((d = getenv("HOME")) && *d) w = snprintf(buf, cap, "%s/.cache/safesd", d);
  else return sd_fail(SD_E_IO, "no cache directory: set SAFESD_CACHE_DIR");
  if (w < 0 || (size_t)w >= cap) return sd_fail(SD_E_ARG, "cache directory path too long");
  return SD_OK;
}

void sd_mkdirs_for(const char *path) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) return;
  char *slash = strrchr(tmp, '/');
  if (!slash) return;
  *slash = 0;
  for (char *p = tmp + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      mkdir(tmp, 0755);
      *p = '/';
    }
  mkdir(tmp, 0755);
}

/* The first of $ENV and the folder where this code's data is (runtime_dirs) whose `rel`
 * (joined to it) is a regular file: its folder is written to dir. SD_E_IO naming the places
 * tried, with `what` and the hint, otherwise. */
static int find_in_dirs(const char *env_name, const char *own_dir, const char *rel, const char *what,
                        const char *hint, char *dir, size_t cap) {
  const char *dirs[2];
  int nd = 0;
  const char *env = getenv(env_name);
  if (env && *env) dirs[nd++] = env;
  if (own_dir) dirs[nd++] = own_dir;
  char tried[2 * 1024] = "";
  for (int i = 0; i < nd; i++) {
    char full[4096];
    int w = snprintf(full, sizeof full, "%s/%s", dirs[i], rel);
    if (w < 0 || (size_t)w >= sizeof full) continue;
    struct stat st;
    if (stat(full, &st) == 0 && S_ISREG(st.st_mode)) {
      w = snprintf(dir, cap, "%s", dirs[i]);
      if (w >= 0 && (size_t)w < cap) return SD_OK;
    }
    size_t tl = strlen(tried);
    snprintf(tried + tl, sizeof tried - tl, "%s%.900s", tl ? ", " : "", full);
  }
  return sd_fail(SD_E_IO, "cannot find %s (looked for: %s; %s)", what, tried, hint);
}

#ifndef SAFESD_DATA_DIR_SOURCE
#define SAFESD_DATA_DIR_SOURCE NULL
#endif
#ifndef SAFESD_MODELS_DIR_SOURCE
#define SAFESD_MODELS_DIR_SOURCE NULL
#endif
/* Relative paths from the installed library's folder (PREFIX/lib) and from the installed
 * program's folder (PREFIX/bin) to the data folder (PREFIX/share/safesd). */
#ifndef SAFESD_REL_LIB_DATA
#define SAFESD_REL_LIB_DATA "../share/safesd"
#endif
#ifndef SAFESD_REL_BIN_DATA
#define SAFESD_REL_BIN_DATA "../share/safesd"
#endif

/* Remove "." and "dir/.." segments of an absolute path in place (lexically: the folders need
 * not exist, so an error can name the place a moved install looked in). */
static void collapse_dots(char *path) {
  char *out = path, *in = path;
  while (*in) {
    while (*in == '/') in++;
    char *seg = in;
    while (*in && *in != '/') in++;
    size_t n = (size_t)(in - seg);
    if (n == 0 || (n == 1 && seg[0] == '.')) continue;
    if (n == 2 && seg[0] == '.' && seg[1] == '.') {
      while (out > path && *--out != '/') {}
      continue;
    }
    *out++ = '/';
    memmove(out, seg, n);
    out += n;
  }
  if (out == path) *out++ = '/';
  *out = 0;
}

/* Where this code runs from decides where its data is. Built in the build tree (the
 * library or program lies under SAFESD_BUILD_DIR): the source tree's data/ and models/.
 * Installed: the data folder relative to the file that holds this code, libsafesd.so
 * (found with dladdr) or the program (/proc/self/exe, when linked statically), so an
 * installed tree works wherever it is moved. data gets the data folder, models the
 * bundled models' folder (data/models when installed). */
static void runtime_dirs(char *data, char *models, size_t cap) {
  data[0] = models[0] = 0;
  Dl_info info;
  char obj[PATH_MAX], exe[PATH_MAX];
  const char *rel = SAFESD_REL_BIN_DATA;
  int have = 0;
  if (dladdr((void *)&runtime_dirs, &info) && info.dli_fname && info.dli_fname[0]) {
    const char *base = strrchr(info.dli_fname, '/');
    base = base ? base + 1 : info.dli_fname;
    if (strstr(base, ".so") && realpath(info.dli_fname, obj)) { /* a shared library */
      rel = SAFESD_REL_LIB_DATA;
      have = 1;
    }
  }
  if (!have) {
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return;
    exe[n] = 0;
    if (!realpath(exe, obj)) return;
  }
#ifdef SAFESD_BUILD_DIR
  char build[PATH_MAX];
  if (realpath(SAFESD_BUILD_DIR, build)) {
    size_t bl = strlen(build);
    if (!strncmp(obj, build, bl) && obj[bl] == '/') {
      if (SAFESD_DATA_DIR_SOURCE) snprintf(data, cap, "%s", SAFESD_DATA_DIR_SOURCE);
      if (SAFESD_MODELS_DIR_SOURCE) snprintf(models, cap, "%s", SAFESD_MODELS_DIR_SOURCE);
      return;
    }
  }
#endif
  char *slash = strrchr(obj, '/');
  if (!slash) return;
  *slash = 0;
  char joined[2 * PATH_MAX + 2];
  snprintf(joined, sizeof joined, "%s/%s", obj, rel);
  collapse_dots(joined);
  snprintf(data, cap, "%.*s", (int)cap - 1, joined);
  snprintf(models, cap, "%.*s/models", (int)cap - 8, data);
}

int sd_data_file(const char *rel, char *path, size_t cap) {
  char dir[4096], what[512];
  snprintf(what, sizeof what, "safesd's %.400s", rel);
  char data[PATH_MAX], models[PATH_MAX];
  runtime_dirs(data, models, sizeof data);
  int rc = find_in_dirs("SAFESD_DATA_DIR", data[0] ? data : NULL, rel, what, "set SAFESD_DATA_DIR", dir, sizeof dir);
  if (rc) return rc;
  int w = snprintf(path, cap, "%s/%s", dir, rel);
  return (w >= 0 && (size_t)w < cap) ? SD_OK : sd_fail(SD_E_ARG, "path of %s too long", rel);
}

int sd_bundled_model_dir(char *path, size_t cap) {
  char dir[4096];
  char data[PATH_MAX], models[PATH_MAX];
  runtime_dirs(data, models, sizeof data);
  int rc = find_in_dirs("SAFESD_MODELS_DIR", models[0] ? models : NULL,
                        SD_BUNDLED_MODEL "/model_index.json", "the bundled model " SD_BUNDLED_MODEL,
                        "set SAFESD_MODELS_DIR or give -m", dir, sizeof dir);
  if (rc) return rc;
  int w = snprintf(path, cap, "%s/" SD_BUNDLED_MODEL, dir);
  return (w >= 0 && (size_t)w < cap) ? SD_OK : sd_fail(SD_E_ARG, "path of the bundled model too long");
}
