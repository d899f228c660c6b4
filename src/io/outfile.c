/* Output files: atomic replacement, write-through for FIFOs and devices, the registry of
 * temporary files that the signal handler removes, stale temporary files of killed
 * processes, and output sets that appear together (fileio.h has the contract).
 *
 * Why named temporary files and a sweep rather than O_TMPFILE + linkat: an O_TMPFILE file
 * has no name while it is written, but it cannot replace an existing file (linkat refuses
 * an existing name), so it must still be linked under a temporary name and renamed; linkat
 * of an O_TMPFILE needs /proc or CAP_DAC_READ_SEARCH; and several file systems (NFS, some
 * FUSE and older overlay mounts) do not support it, so the named path would be needed
 * anyway. One code path that works everywhere, with names that say what they are and a
 * cleanup that needs no daemon, is the simpler promise.
 *
 * The signal handler and the threads that create, rename or remove temporary files
 * exclude each other through one atomic word, g_busy: the count of threads inside a short
 * "busy" section (registering, renaming, unregistering: no blocking I/O), or DYING once a
 * handler has taken it at zero. A signal that arrives while a section is open is recorded
 * in g_pending and acted on by the last thread to leave, so the handler never reads a slot
 * that is being written, and the renames of an output set are never cut in half. */
#include "io/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

/* ---- the registry of temporary files --------------------------------------------------- */

#define MAX_TEMPS 256
#define DYING (1 << 30)
enum { SLOT_FREE = 0, SLOT_RESERVED = 1, SLOT_LIVE = 2 };

static char g_paths[MAX_TEMPS][PATH_MAX];
static atomic_int g_slot[MAX_TEMPS];
static atomic_int g_busy;
static atomic_int g_pending;

static void remove_all_temps(void) {
  for (int i = 0; i < MAX_TEMPS; i++)
    if (atomic_load(&g_slot[i]) == SLOT_LIVE) unlink(g_paths[i]);
}

/* Remove the temporary files and die of sig (the default action). Async-signal-safe. */
static void die_now(int sig) {
  remove_all_temps();
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, NULL);
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, sig);
  pthread_sigmask(SIG_UNBLOCK, &s, NULL);
  raise(sig);
  _exit(128 + sig); /* not reached: the default action of these signals terminates */
}

static void on_signal(int sig) {
  int saved = errno;
  atomic_store(&g_pending, sig);
  int v = atomic_load(&g_busy);
  for (;;) {
    if (v & DYING) for (;;) pause(); /* another thread is cleaning up and about to die */
    if (v != 0) break;               /* a busy section is open: its last thread acts */
    if (atomic_compare_exchange_weak(&g_busy, &v, DYING)) die_now(sig);
  }
  errno = saved;
}

static int busy_enter(void) {
  int v = atomic_load(&g_busy);
  do {
    if (v & DYING) return sd_fail(SD_E_IO, "interrupted by a signal");
  } while (!atomic_compare_exchange_weak(&g_busy, &v, v + 1));
  return SD_OK;
}

static void busy_leave(void) {
  if (atomic_fetch_sub(&g_busy, 1) != 1) return;
  int sig = atomic_load(&g_pending), zero = 0;
  if (sig && atomic_compare_exchange_strong(&g_busy, &zero, DYING)) die_now(sig);
}

/* Inside a busy section: a free slot holding path, or -1. */
static int slot_add(const char *path) {
  if (strlen(path) >= PATH_MAX) return -1;
  for (int i = 0; i < MAX_TEMPS; i++) {
    int f = SLOT_FREE;
    if (atomic_compare_exchange_strong(&g_slot[i], &f, SLOT_RESERVED)) {
      strcpy(g_paths[i], path);
      atomic_store(&g_slot[i], SLOT_LIVE);
      return i;
    }
  }
  return -1;
}

static void slot_drop(int i) {
  if (i >= 0) atomic_store(&g_slot[i], SLOT_FREE);
}

int sd_install_signal_cleanup(void) {
  static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaddset(&sa.sa_mask, sigs[i]);
  for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
    struct sigaction old;
    if (sigaction(sigs[i], NULL, &old) != 0) return sd_fail(SD_E_INTERNAL, "sigaction: %s", strerror(errno));
    if (old.sa_handler == SIG_IGN) continue; /* nohup, or a background job: keep ignoring */
    if (sigaction(sigs[i], &sa, NULL) != 0) return sd_fail(SD_E_INTERNAL, "sigaction: %s", strerror(errno));
  }
  return SD_OK;
}

/* ---- what a path is -------------------------------------------------------------------- */

enum { OUT_REPLACE, OUT_THROUGH };

/* How path is written, and where to (*target: malloc'ed; the file to replace or to write
 * through; *mode: its permission bits, or -1 for a new file). */
static int classify(const char *path, int *how, char **target, int *mode) {
  struct stat ls, st;
  *target = NULL;
  *mode = -1;
  if (!path || !*path) return sd_fail(SD_E_ARG, "no output path given");
  if (lstat(path, &ls) != 0) {
    if (errno != ENOENT) return sd_fail(SD_E_IO, "cannot write %s: %s", path, strerror(errno));
    *how = OUT_REPLACE;
    return (*target = strdup(path)) ? SD_OK : sd_fail(SD_E_NOMEM, "out of memory");
  }
  st = ls;
  if (S_ISLNK(ls.st_mode) && stat(path, &st) != 0)
    return sd_fail(SD_E_IO, "cannot write %s: a symbolic link to %s (%s)", path,
                   errno == ENOENT ? "a missing file" : "something unreachable", strerror(errno));
  if (S_ISREG(st.st_mode)) {
    *how = OUT_REPLACE;
    *mode = (int)(st.st_mode & 07777);
    *target = S_ISLNK(ls.st_mode) ? realpath(path, NULL) : strdup(path);
    if (!*target) return sd_fail(SD_E_IO, "cannot write %s: %s", path, strerror(errno));
    return SD_OK;
  }
  if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
    *how = OUT_THROUGH;
    return (*target = strdup(path)) ? SD_OK : sd_fail(SD_E_NOMEM, "out of memory");
  }
  return sd_fail(SD_E_IO, "cannot write %s: it is %s%s (an output is a regular file, a FIFO or a character device)",
                 path, sd_file_kind(st.st_mode), S_ISLNK(ls.st_mode) ? " (through a symbolic link)" : "");
}

/* The folder of a file path (malloc'ed; "." when it has none). */
static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return strdup(".");
  if (slash == path) return strdup("/");
  return strndup(path, (size_t)(slash - path));
}

int sd_output_check(const char *path) {
  int how, mode;
  char *target;
  int rc = classify(path, &how, &target, &mode);
  if (rc) return rc;
  if (how == OUT_REPLACE) {
    char *dir = dir_of(target);
    struct stat st;
    if (!dir) rc = sd_fail(SD_E_NOMEM, "out of memory");
    else if (stat(dir, &st) != 0)
      rc = sd_fail(SD_E_IO, "cannot write %s: folder %s: %s", path, dir, strerror(errno));
    else if (!S_ISDIR(st.st_mode))
      rc = sd_fail(SD_E_IO, "cannot write %s: %s is not a folder", path, dir);
    free(dir);
  }
  free(target);
  return rc;
}

int sd_output_is_fd(const char *path, int fd) {
  struct stat a, b;
  return stat(path, &a) == 0 && fstat(fd, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* ---- stale temporary files ------------------------------------------------------------- */

/* The pid of a temporary-file name "*.tmp.<pid>.XXXXXX", or 0. */
static pid_t temp_name_pid(const char *name) {
  size_t n = strlen(name);
  if (n < 7 + 6 + 2) return 0;
  const char *x = name + n - 6;
  for (int i = 0; i < 6; i++) {
    char c = x[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return 0;
  }
  if (x[-1] != '.') return 0;
  const char *d = x - 1; /* the dot before XXXXXX */
  const char *p = d;
  while (p > name && p[-1] >= '0' && p[-1] <= '9') p--;
  if (p == d || d - p > 10 || p - name < 6 || strncmp(p - 5, ".tmp.", 5) != 0) return 0;
  long v = 0;
  for (const char *q = p; q < d; q++) v = v * 10 + (*q - '0');
  return v > 0 && v <= INT_MAX ? (pid_t)v : 0;
}

static pthread_mutex_t g_sweep_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_swept[8][PATH_MAX];
static int g_n_swept;

/* Remove the temporary files of dead writers in dir (once per folder and process). */
static void sweep_stale(const char *dir) {
  pthread_mutex_lock(&g_sweep_lock);
  for (int i = 0; i < g_n_swept && i < 8; i++)
    if (!strcmp(g_swept[i], dir)) { pthread_mutex_unlock(&g_sweep_lock); return; }
  if (strlen(dir) < PATH_MAX) snprintf(g_swept[g_n_swept++ % 8], PATH_MAX, "%s", dir);
  pthread_mutex_unlock(&g_sweep_lock);
  DIR *d = opendir(dir);
  if (!d) return;
  const pid_t self = getpid();
  const uid_t me = geteuid();
  struct dirent *de;
  while ((de = readdir(d))) {
    pid_t pid = temp_name_pid(de->d_name);
    if (pid <= 0 || pid == self || kill(pid, 0) == 0 || errno != ESRCH) continue;
    int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) continue;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == me && flock(fd, LOCK_EX | LOCK_NB) == 0)
      (void)unlinkat(dirfd(d), de->d_name, 0);
    close(fd);
  }
  closedir(d);
}

/* ---- output sets ----------------------------------------------------------------------- */

typedef struct out_set {
  sd_atomic_file *v;
  size_t n, cap;
} out_set;

static _Thread_local out_set *tl_set;

int sd_outputs_begin(void) {
  if (tl_set) return sd_fail(SD_E_INTERNAL, "sd_outputs_begin: an output set is already open");
  tl_set = calloc(1, sizeof *tl_set);
  return tl_set ? SD_OK : sd_fail(SD_E_NOMEM, "out of memory");
}

/* ---- one output file ------------------------------------------------------------------- */

static void af_free(sd_atomic_file *af) {
  free(af->tmp_path);
  free(af->final_path);
  free(af->target);
  if (af->held) free(af->held->buf);
  free(af->held);
  memset(af, 0, sizeof *af);
  af->slot = -1;
}

static void unregister_tmp(sd_atomic_file *af, int remove) {
  if (!af->tmp_path) return;
  int entered = busy_enter() == SD_OK; /* fails only while dying: then the handler removes it */
  if (remove) unlink(af->tmp_path);
  slot_drop(af->slot);
  af->slot = -1;
  if (entered) busy_leave();
}

int sd_atomic_open(sd_atomic_file *af, const char *path) {
  memset(af, 0, sizeof *af);
  af->slot = -1;
  int how, mode, rc = classify(path, &how, &af->target, &mode);
  if (rc) return rc;
  if (!(af->final_path = strdup(path))) { af_free(af); return sd_fail(SD_E_NOMEM, "out of memory"); }
  if (how == OUT_THROUGH) {
    af->through = 1;
    if (tl_set) { /* held back until the set commits (the buffer lives apart: af is copied) */
      if ((af->held = calloc(1, sizeof *af->held))) af->f = open_memstream(&af->held->buf, &af->held->len);
    } else {
      int fd = open(af->target, O_WRONLY | O_CLOEXEC | O_NOCTTY);
      if (fd >= 0 && !(af->f = fdopen(fd, "wb"))) close(fd);
    }
    if (!af->f) {
      rc = sd_fail(SD_E_IO, "cannot write %s: %s", path, strerror(errno));
      af_free(af);
    }
    return rc;
  }
  char *dir = dir_of(af->target);
  size_t n = strlen(af->target) + 40;
  af->tmp_path = malloc(n);
  if (!dir || !af->tmp_path) { free(dir); af_free(af); return sd_fail(SD_E_NOMEM, "out of memory"); }
  sweep_stale(dir);
  free(dir);
  snprintf(af->tmp_path, n, "%s.tmp.%ld.XXXXXX", af->target, (long)getpid());
  /* create and register in one busy section: a signal in between cannot leave it behind */
  if ((rc = busy_enter())) { af_free(af); return rc; }
  int fd = mkstemp(af->tmp_path), e = errno, full = 0;
  if (fd >= 0 && (af->slot = slot_add(af->tmp_path)) < 0) {
    unlink(af->tmp_path);
    close(fd);
    fd = -1;
    full = 1;
  }
  busy_leave();
  if (fd < 0) {
    rc = full ? sd_fail(SD_E_IO, "cannot write %s: too many output files at once (%d) or the path is too long", path, MAX_TEMPS)
              : sd_fail(SD_E_IO, "cannot write %s: %s", path, strerror(e));
    free(af->tmp_path);
    af->tmp_path = NULL;
    af_free(af);
    return rc;
  }
  (void)flock(fd, LOCK_EX | LOCK_NB); /* held until renamed: tells the sweep this writer lives */
  /* mkstemp makes the file 0600: a replaced file keeps its bits, a new one gets 0666 & ~umask */
  if (mode < 0) {
    mode_t um = umask(0);
    umask(um);
    mode = (int)(0666 & ~um);
  }
  (void)fchmod(fd, (mode_t)mode);
  if (!(af->f = fdopen(fd, "wb"))) {
    rc = sd_fail(SD_E_IO, "cannot write %s: %s", path, strerror(errno));
    close(fd);
    sd_atomic_abort(af);
  }
  return rc;
}

int sd_atomic_write(sd_atomic_file *af, const void *buf, size_t n) {
  if (n && fwrite(buf, 1, n, af->f) != n)
    return sd_fail(SD_E_IO, "%s: write failed: %s", af->final_path, strerror(errno));
  return SD_OK;
}

void sd_atomic_abort(sd_atomic_file *af) {
  if (af->f) fclose(af->f);
  af->f = NULL;
  unregister_tmp(af, 1);
  af_free(af);
}

/* Flush (and for a temporary file fsync) without closing. */
static int finish(sd_atomic_file *af) {
  if (fflush(af->f) != 0 || (!af->through && fsync(fileno(af->f)) != 0))
    return sd_fail(SD_E_IO, "%s: write failed: %s", af->final_path, strerror(errno));
  return SD_OK;
}

/* Make a rename in the folder of path durable (best effort: some file systems refuse). */
static void sync_dir_of(const char *path) {
  char *dir = dir_of(path);
  if (!dir) return;
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) { (void)fsync(dfd); close(dfd); }
  free(dir);
}

/* Write held-back data through to its FIFO or device. */
static int write_through(sd_atomic_file *af) {
  if (af->f) { fclose(af->f); af->f = NULL; } /* the memstream: held->buf and len now final */
  const char *data = af->held ? af->held->buf : NULL;
  const size_t len = af->held ? af->held->len : 0;
  int fd = open(af->target, O_WRONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return sd_fail(SD_E_IO, "cannot write %s: %s", af->final_path, strerror(errno));
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, data + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int e = w < 0 ? errno : EIO;
      close(fd);
      return sd_fail(SD_E_IO, "%s: write failed: %s", af->final_path, strerror(e));
    }
    off += (size_t)w;
  }
  return close(fd) == 0 || errno == EINTR ? SD_OK : sd_fail(SD_E_IO, "%s: write failed: %s", af->final_path, strerror(errno));
}

int sd_atomic_commit(sd_atomic_file *af) {
  int rc = af->through && tl_set ? SD_OK : finish(af);
  if (rc == SD_OK && tl_set) { /* an output set: the rename (or the write-through) waits */
    if (tl_set->n == tl_set->cap) {
      size_t cap = tl_set->cap ? 2 * tl_set->cap : 8;
      sd_atomic_file *v = realloc(tl_set->v, cap * sizeof *v);
      if (!v) { sd_atomic_abort(af); return sd_fail(SD_E_NOMEM, "out of memory"); }
      tl_set->v = v;
      tl_set->cap = cap;
    }
    tl_set->v[tl_set->n++] = *af;
    memset(af, 0, sizeof *af);
    af->slot = -1;
    return SD_OK;
  }
  if (rc == SD_OK && af->through) {
    if (fclose(af->f) != 0) rc = sd_fail(SD_E_IO, "%s: write failed: %s", af->final_path, strerror(errno));
    af->f = NULL;
  }
  if (rc == SD_OK && !af->through) {
    if ((rc = busy_enter()) == SD_OK) {
      if (rename(af->tmp_path, af->target) != 0)
        rc = sd_fail(SD_E_IO, "cannot create %s: %s", af->final_path, strerror(errno));
      else {
        slot_drop(af->slot);
        af->slot = -1;
      }
      busy_leave();
    }
    if (rc == SD_OK) {
      fclose(af->f); /* after the rename: the lock is held until then */
      af->f = NULL;
      sync_dir_of(af->target);
    }
  }
  if (rc != SD_OK) {
    sd_atomic_abort(af);
    return rc;
  }
  af_free(af);
  return SD_OK;
}

void sd_outputs_abort(void) {
  out_set *s = tl_set;
  if (!s) return;
  tl_set = NULL;
  for (size_t i = 0; i < s->n; i++) sd_atomic_abort(&s->v[i]);
  free(s->v);
  free(s);
}

int sd_outputs_commit(void) {
  out_set *s = tl_set;
  if (!s) return sd_fail(SD_E_INTERNAL, "sd_outputs_commit: no output set is open");
  int rc = SD_OK;
  /* 1. the pipes and devices, now that every file is complete (a signal here removes the
   *    temporary files, as anywhere else) */
  for (size_t i = 0; i < s->n && rc == SD_OK; i++)
    if (s->v[i].through) rc = write_through(&s->v[i]);
  /* 2. the renames, with signals held back; a failure takes back the renames done */
  size_t done = 0;
  if (rc == SD_OK && (rc = busy_enter()) == SD_OK) {
    for (; done < s->n && rc == SD_OK; done++) {
      sd_atomic_file *af = &s->v[done];
      if (af->through) continue;
      if (rename(af->tmp_path, af->target) != 0) {
        rc = sd_fail(SD_E_IO, "cannot create %s: %s", af->final_path, strerror(errno));
        break;
      }
    }
    if (rc != SD_OK)
      for (size_t i = 0; i < done; i++)
        if (!s->v[i].through) unlink(s->v[i].target);
    for (size_t i = 0; i < s->n; i++) {
      sd_atomic_file *af = &s->v[i];
      if (rc != SD_OK && af->tmp_path) unlink(af->tmp_path);
      slot_drop(af->slot);
      af->slot = -1;
    }
    busy_leave();
  }
  for (size_t i = 0; i < s->n; i++) {
    sd_atomic_file *af = &s->v[i];
    if (af->f) fclose(af->f);
    af->f = NULL;
    if (rc == SD_OK && !af->through) sync_dir_of(af->target);
    if (rc != SD_OK) unregister_tmp(af, 1);
    af_free(af);
  }
  free(s->v);
  free(s);
  tl_set = NULL;
  return rc;
}
