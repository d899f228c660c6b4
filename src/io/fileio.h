/* Output files are written atomically: to a temporary file in the same folder, flushed
 * and fsync'ed, then renamed over the destination. An interrupted or failed write (disk
 * full, no permission) leaves no partial file and reports the path. */
#ifndef SD_IO_FILEIO_H
#define SD_IO_FILEIO_H

#include <stdint.h>
#include <stdio.h>

typedef struct sd_atomic_file {
  FILE *f;
  char *final_path;
  char *tmp_path;
} sd_atomic_file;

int sd_atomic_open(sd_atomic_file *af, const char *path);
/* Checked write; returns SD_E_IO (and leaves the file to be aborted) on a short write. */
int sd_atomic_write(sd_atomic_file *af, const void *buf, size_t n);
/* Flush, fsync, close and rename. On failure the temporary file is removed. */
int sd_atomic_commit(sd_atomic_file *af);
/* Close and remove the temporary file. */
void sd_atomic_abort(sd_atomic_file *af);

/* Open an existing regular file read-only (O_NONBLOCK, so a FIFO cannot hang the caller) and
 * give its size. Errors (SD_E_IO) name the path; for a directory, `expected` says what was
 * wanted there ("a JSON file"). */
int sd_open_regular(const char *path, const char *expected, int *fd, int64_t *size);

/* safesd's cache folder: $SAFESD_CACHE_DIR, else $XDG_CACHE_HOME/safesd, else
 * $HOME/.cache/safesd (not created). SD_E_IO when none can be determined, SD_E_ARG when it
 * does not fit in cap. */
int sd_cache_dir(char *buf, size_t cap);
/* Create the folders above `path` (mkdir -p of its dirname); errors are left to the open. */
void sd_mkdirs_for(const char *path);

/* Find a file shipped in safesd's data folder (rel such as "clip/bpe_simple_vocab_16e6.txt.gz"):
 * $SAFESD_DATA_DIR, then the source tree's data/, then the installed share/safesd/; the
 * first that exists is written to path. SD_E_IO naming every place tried otherwise. */
int sd_data_file(const char *rel, char *path, size_t cap);

/* The bundled model's folder (SD_BUNDLED_MODEL under $SAFESD_MODELS_DIR, else the source
 * tree's models/, else the installed share/safesd/models/): the first that holds a
 * model_index.json. SD_E_IO naming every place looked in when none does. */
#define SD_BUNDLED_MODEL "safesd-emoji"
int sd_bundled_model_dir(char *path, size_t cap);

#endif
