/* File helpers: output files (atomic, interruption-safe), reading untrusted input files,
 * safesd's cache and data folders. */
#ifndef SD_IO_FILEIO_H
#define SD_IO_FILEIO_H

#include <stdint.h>
#include <stdio.h>

/* Output files.
 *
 * sd_atomic_open(af, path) looks at what path is, and writes accordingly:
 *  - nothing yet, or a regular file: the data goes to a temporary file beside it,
 *    "<path>.tmp.<pid>.XXXXXX" (same folder, so the rename cannot cross file systems),
 *    flushed and fsync'ed, then renamed over path by sd_atomic_commit. A reader sees the
 *    old file or the complete new one, never a partial one. A replaced file keeps its
 *    permission bits; a new one gets 0666 & ~umask.
 *  - a symbolic link: followed. To a regular file: that file is replaced atomically as
 *    above (in its own folder; the link stays a link). To a FIFO or character device:
 *    written through. Dangling: an error.
 *  - a FIFO or character device (/dev/null, /dev/stdout on a pipe or a terminal):
 *    written through: opened for writing (a FIFO blocks until a reader opens it), never
 *    replaced, no temporary file. What was written before a failure stays written.
 *  - a directory, block device or socket: an error naming the path (nothing is created).
 *
 * Interruption: every temporary file is registered while it exists. With
 * sd_install_signal_cleanup(), SIGINT, SIGTERM, SIGHUP and SIGPIPE remove them (in an
 * async-signal-safe handler) and the process then dies of the signal (exit status
 * 128 + signal number in a shell). A process killed outright (SIGKILL, power loss)
 * leaves its temporary files; the next sd_atomic_open into the same folder removes those
 * whose process is gone: names "*.tmp.<pid>.XXXXXX", owned by this user, <pid> not a
 * live process, and not locked (a writer holds an flock on its temporary file until it
 * is renamed, so a live writer in another pid namespace or on another NFS client is
 * never touched).
 *
 * Output sets: between sd_outputs_begin() and sd_outputs_commit() (per thread), every
 * sd_atomic_commit only finishes its temporary file (flush, fsync) and write-through
 * data is kept in memory; sd_outputs_commit() then writes the write-through outputs and
 * renames every temporary file into place, with signals held back during the renames,
 * so the outputs appear together or not at all; sd_outputs_abort() (or a failed commit)
 * removes them all. A write-through output (a pipe) cannot be taken back once written:
 * it is written only after every other output is complete. */
typedef struct sd_atomic_file {
  FILE *f;
  char *final_path; /* the path as given (for messages) */
  char *target;     /* where the data goes: final_path, or a symbolic link's target */
  char *tmp_path;   /* the temporary file; NULL when writing through */
  int slot;         /* registry slot of tmp_path (-1: none) */
  int through;      /* 1: written through (FIFO, character device) */
  struct sd_held {  /* write-through data held back by an output set (the memstream's) */
    char *buf;
    size_t len;
  } *held;
} sd_atomic_file;

int sd_atomic_open(sd_atomic_file *af, const char *path);
/* Checked write; returns SD_E_IO (and leaves the file to be aborted) on a short write. */
int sd_atomic_write(sd_atomic_file *af, const void *buf, size_t n);
/* Flush, fsync, close and rename (inside an output set: flush and fsync, the rename waits
 * for sd_outputs_commit). On failure the temporary file is removed. */
int sd_atomic_commit(sd_atomic_file *af);
/* Close and remove the temporary file. */
void sd_atomic_abort(sd_atomic_file *af);

/* What sd_atomic_open would do with path, without creating anything: SD_OK when it can be
 * written (its folder exists), else the error sd_atomic_open would give. */
int sd_output_check(const char *path);
/* 1 when path, opened for writing, would reach the same file as the open descriptor fd
 * (e.g. "/dev/stdout" and 1), else 0. */
int sd_output_is_fd(const char *path, int fd);

int sd_outputs_begin(void);
int sd_outputs_commit(void);
void sd_outputs_abort(void);

/* Install the SIGINT/SIGTERM/SIGHUP/SIGPIPE handlers described above (signals ignored at
 * the time, as under nohup, stay ignored). For programs; a library does not call it. */
int sd_install_signal_cleanup(void);

/* Read a whole file (at most max bytes) into a NUL-terminated malloc'ed buffer: a regular
 * file only (opened with O_NONBLOCK, so a FIFO never blocks; a directory, FIFO or device
 * is an error naming the path and what it is). `expected` names what should be there ("a
 * concept bank"). SD_E_FORMAT when the file is over max. */
int sd_read_file(const char *path, size_t max, const char *expected, char **buf, size_t *len);
/* Whether something is at path: 0 nothing (no such file), 1 a regular file that can be
 * opened for reading; an error (SD_E_IO naming the path and what is there instead: a
 * directory, FIFO, device, or no permission) otherwise. */
int sd_probe_file(const char *path, const char *expected);
/* The same for a folder: 0 nothing, 1 a folder, an error when something else is there. */
int sd_probe_dir(const char *path);

/* Open an existing regular file read-only (O_NONBLOCK, so a FIFO cannot hang the caller) and
 * give its size. Errors (SD_E_IO) name the path; for a directory, `expected` says what was
 * wanted there ("a JSON file"). */
int sd_open_regular(const char *path, const char *expected, int *fd, int64_t *size);
/* What a st_mode is, for messages: "a directory", "a FIFO", "a character device", ... */
const char *sd_file_kind(unsigned mode);

/* safesd's cache folder: $SAFESD_CACHE_DIR, else $XDG_CACHE_HOME/safesd, else
 * $HOME/.cache/safesd (not created). SD_E_IO when none can be determined, SD_E_ARG when it
 * does not fit in cap. */
int sd_cache_dir(char *buf, size_t cap);
/* Create the folders above `path` (mkdir -p of its dirname); errors are left to the open. */
void sd_mkdirs_for(const char *path);

/* Find a file shipped in safesd's data folder (rel such as "clip/bpe_simple_vocab_16e6.txt.gz"):
 * $SAFESD_DATA_DIR, then the library's own data: the source tree's data/ for a build-tree
 * binary, else PREFIX/share/safesd found relative to the installed libsafesd.so or program
 * (so a moved install still finds it); the first that exists is written to path. SD_E_IO
 * naming every place tried otherwise. */
int sd_data_file(const char *rel, char *path, size_t cap);

/* The bundled model's folder (SD_BUNDLED_MODEL under $SAFESD_MODELS_DIR, else the source
 * tree's models/ for a build-tree binary, else PREFIX/share/safesd/models/ relative to the
 * installed library or program): the first that holds a model_index.json. SD_E_IO naming every place looked in when none does. */
#define SD_BUNDLED_MODEL "safesd-emoji"
int sd_bundled_model_dir(char *path, size_t cap);

#endif
