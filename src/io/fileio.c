#include "io/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

int sd_atomic_open(sd_atomic_file *af, const char *path) {
  memset(af, 0, sizeof *af);
  size_t n = strlen(path);
  af->final_path = strdup(path);
  af->tmp_path = malloc(n + 16);
  if (!af->final_path || !af->tmp_path) {
    sd_atomic_abort(af);
    return sd_fail(SD_E_NOMEM, "out of memory");
  }
  snprintf(af->tmp_path, n + 16, "%s.tmp.XXXXXX", path);
  int fd = mkstemp(af->tmp_path);
  if (fd < 0) {
    int e = errno;
    free(af->tmp_path);
    af->tmp_path = NULL;
    sd_atomic_abort(af);
    return sd_fail(SD_E_IO, "cannot write %s: %s", path, strerror(e));
  }
  /* mkstemp makes the file 0600; the finished file gets the usual 0666 & ~umask */
  mode_t um = umask(0);
  umask(um);
  if (fchmod(fd, 0666 & ~um) != 0) { /* not fatal: the file stays private */ }
  af->f = fdopen(fd, "wb");
  if (!af->f) {
    close(fd);
    sd_atomic_abort(af);
    return sd_fail(SD_E_IO, "cannot write %s: %s", path, strerror(errno));
  }
  return SD_OK;
}

int sd_atomic_write(sd_atomic_file *af, const void *buf, size_t n) {
  if (n && fwrite(buf, 1, n, af->f) != n)
    return sd_fail(SD_E_IO, "%s: write failed: %s", af->final_path, strerror(errno));
  return SD_OK;
}

int sd_atomic_commit(sd_atomic_file *af) {
  int rc = SD_OK;
  if (fflush(af->f) != 0 || fsync(fileno(af->f)) != 0)
    rc = sd_fail(SD_E_IO, "%s: write failed: %s", af->final_path, strerror(errno));
  if (fclose(af->f) != 0 && rc == SD_OK)
    rc = sd_fail(SD_E_IO, "%s: write failed: %s", af->final_path, strerror(errno));
  af->f = NULL;
  if (rc == SD_OK && rename(af->tmp_path, af->final_path) != 0)
    rc = sd_fail(SD_E_IO, "cannot create %s: %s", af->final_path, strerror(errno));
  if (rc != SD_OK) unlink(af->tmp_path);
  if (rc == SD_OK) { /* make the rename durable (best effort: some file systems refuse) */
    char *slash = strrchr(af->final_path, '/');
    if (slash) *slash = 0;
    int dfd = open(slash ? (*af->final_path ? af->final_path : "/") : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) { (void)fsync(dfd); close(dfd); }
  }
  free(af->tmp_path);
  free(af->final_path);
  af->tmp_path = af->final_path = NULL;
  return rc;
}

void sd_atomic_abort(sd_atomic_file *af) {
  if (af->f) fclose(af->f);
  if (af->tmp_path) unlink(af->tmp_path);
  free(af->tmp_path);
  free(af->final_path);
  memset(af, 0, sizeof *af);
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
  if (S_ISDIR(sb.st_mode)) { close(fd); return sd_fail(SD_E_IO, "%s: is a directory, expected %s", path, expected); }
  if (!S_ISREG(sb.st_mode)) { close(fd); return sd_fail(SD_E_IO, "%s: not a regular file", path); }
  *fd_out = fd;
  *size = (int64_t)sb.st_size;
  return SD_OK;
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

/* The first of $ENV, the source tree's folder, the installed folder whose `rel` (joined to
 * it) is a regular file: its folder is written to dir. SD_E_IO naming the places tried, with
 * `what` and the hint, otherwise. */
static int find_in_dirs(const char *env_name, const char *src_dir, const char *inst_dir, const char *rel,
                        const char *what, const char *hint, char *dir, size_t cap) {
  const char *dirs[3];
  int nd = 0;
  const char *env = getenv(env_name);
  if (env && *env) dirs[nd++] = env;
  if (src_dir) dirs[nd++] = src_dir;
  if (inst_dir) dirs[nd++] = inst_dir;
  char tried[3 * 1024] = "";
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
#ifndef SAFESD_DATA_DIR_INSTALL
#define SAFESD_DATA_DIR_INSTALL NULL
#endif
#ifndef SAFESD_MODELS_DIR_SOURCE
#define SAFESD_MODELS_DIR_SOURCE NULL
#endif
#ifndef SAFESD_MODELS_DIR_INSTALL
#define SAFESD_MODELS_DIR_INSTALL NULL
#endif

int sd_data_file(const char *rel, char *path, size_t cap) {
  char dir[4096], what[512];
  snprintf(what, sizeof what, "safesd's %.400s", rel);
  int rc = find_in_dirs("SAFESD_DATA_DIR", SAFESD_DATA_DIR_SOURCE, SAFESD_DATA_DIR_INSTALL, rel, what,
                        "set SAFESD_DATA_DIR", dir, sizeof dir);
  if (rc) return rc;
  int w = snprintf(path, cap, "%s/%s", dir, rel);
  return (w >= 0 && (size_t)w < cap) ? SD_OK : sd_fail(SD_E_ARG, "path of %s too long", rel);
}

int sd_bundled_model_dir(char *path, size_t cap) {
  char dir[4096];
  int rc = find_in_dirs("SAFESD_MODELS_DIR", SAFESD_MODELS_DIR_SOURCE, SAFESD_MODELS_DIR_INSTALL,
                        SD_BUNDLED_MODEL "/model_index.json", "the bundled model " SD_BUNDLED_MODEL,
                        "set SAFESD_MODELS_DIR or give -m", dir, sizeof dir);
  if (rc) return rc;
  int w = snprintf(path, cap, "%s/" SD_BUNDLED_MODEL, dir);
  return (w >= 0 && (size_t)w < cap) ? SD_OK : sd_fail(SD_E_ARG, "path of the bundled model too long");
}
