/* io/fileio: what an output path is and how it is written, output sets, the sweep of stale
 * temporary files, reading input files that are not regular files, and the non-finite scan
 * of core/tensor (the weight check). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/error.h"
#include "core/tensor.h"
#include "io/fileio.h"
#include "testutil.h"

/* A fresh empty folder under the test scratch area. */
static const char *fresh_dir(const char *name) {
  static char buf[4096];
  snprintf(buf, sizeof buf, "%s", sd_test_tmp(name));
  char cmd[2 * 4096 + 64];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", buf, buf);
  assert_int_equal(system(cmd), 0);
  return buf;
}

static int count_entries(const char *dir, const char *needle) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)))
    if (de->d_name[0] != '.' && (!needle || strstr(de->d_name, needle))) n++;
  closedir(d);
  return n;
}

static int write_file(const char *path, const char *text) {
  sd_atomic_file af;
  int rc = sd_atomic_open(&af, path);
  if (rc) return rc;
  if ((rc = sd_atomic_write(&af, text, strlen(text)))) { sd_atomic_abort(&af); return rc; }
  return sd_atomic_commit(&af);
}

static char *slurp(const char *path) { return sd_test_read_file(path, NULL); }

static void test_regular_and_new(void **state) {
  (void)state;
  const char *d = fresh_dir("fileio_regular");
  char p[4200];
  snprintf(p, sizeof p, "%s/a.txt", d);
  assert_int_equal(write_file(p, "one"), SD_OK);
  char *s = slurp(p);
  assert_string_equal(s, "one");
  free(s);
  chmod(p, 0640);
  assert_int_equal(write_file(p, "two"), SD_OK);
  s = slurp(p);
  assert_string_equal(s, "two");
  free(s);
  struct stat st;
  assert_int_equal(stat(p, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0640); /* a replaced file keeps its mode */
  assert_int_equal(count_entries(d, ".tmp."), 0);
}

static void test_symlinks(void **state) {
  (void)state;
  const char *d = fresh_dir("fileio_links");
  char t[4200], l[4200], g[4200];
  snprintf(t, sizeof t, "%s/target.txt", d);
  snprintf(l, sizeof l, "%s/link.txt", d);
  snprintf(g, sizeof g, "%s/dangling.txt", d);
  assert_int_equal(write_file(t, "old"), SD_OK);
  assert_int_equal(symlink("target.txt", l), 0);
  assert_int_equal(write_file(l, "new"), SD_OK);
  struct stat st;
  assert_int_equal(lstat(l, &st), 0);
  assert_true(S_ISLNK(st.st_mode)); /* the link stays */
  char *s = slurp(t);
  assert_string_equal(s, "new");
  free(s);
  assert_int_equal(symlink("missing.txt", g), 0);
  assert_int_equal(write_file(g, "x"), SD_E_IO);
  assert_non_null(strstr(sd_errmsg(), "missing"));
  assert_int_equal(sd_output_check(g), SD_E_IO);
  assert_int_equal(count_entries(d, NULL), 3);
}

static void test_refused_kinds(void **state) {
  (void)state;
  const char *d = fresh_dir("fileio_refused");
  char sub[4200], missing[4200];
  snprintf(sub, sizeof sub, "%s/sub", d);
  snprintf(missing, sizeof missing, "%s/nofolder/x.txt", d);
  assert_int_equal(mkdir(sub, 0755), 0);
  assert_int_equal(sd_output_check(sub), SD_E_IO);
  assert_non_null(strstr(sd_errmsg(), "a directory"));
  assert_int_equal(write_file(sub, "x"), SD_E_IO);
  assert_int_equal(count_entries(sub, NULL), 0);
  assert_int_equal(sd_output_check(missing), SD_E_IO);
  assert_int_equal(count_entries(d, NULL), 1);
}

static void test_fifo_write_through(void **state) {
  (void)state;
  const char *d = fresh_dir("fileio_fifo");
  char f[4200];
  snprintf(f, sizeof f, "%s/fifo", d);
  assert_int_equal(mkfifo(f, 0644), 0);
  int rfd = open(f, O_RDONLY | O_NONBLOCK); /* a reader, so that the writer's open returns */
  assert_true(rfd >= 0);
  assert_int_equal(sd_output_check(f), SD_OK);
  assert_int_equal(write_file(f, "through"), SD_OK);
  char buf[32] = {0};
  assert_int_equal(read(rfd, buf, sizeof buf - 1), 7);
  assert_string_equal(buf, "through");
  /* in an output set, held back until the commit */
  assert_int_equal(sd_outputs_begin(), SD_OK);
  assert_int_equal(write_file(f, "later"), SD_OK);
  assert_true(read(rfd, buf, sizeof buf - 1) <= 0); /* nothing yet (EOF or EAGAIN) */
  assert_int_equal(sd_outputs_commit(), SD_OK);
  memset(buf, 0, sizeof buf);
  assert_int_equal(read(rfd, buf, sizeof buf - 1), 5);
  assert_string_equal(buf, "later");
  close(rfd);
  struct stat st;
  assert_int_equal(lstat(f, &st), 0);
  assert_true(S_ISFIFO(st.st_mode)); /* never replaced */
}

static void test_output_sets(void **state) {
  (void)state;
  const char *d = fresh_dir("fileio_sets");
  char a[4200], b[4200];
  snprintf(a, sizeof a, "%s/a.txt", d);
  snprintf(b, sizeof b, "%s/b.txt", d);
  /* commit: nothing visible before, both after */
  assert_int_equal(sd_outputs_begin(), SD_OK);
  assert_int_equal(sd_outputs_begin(), SD_E_INTERNAL); /* no nesting */
  assert_int_equal(write_file(a, "A"), SD_OK);
  assert_int_equal(write_file(b, "B"), SD_OK);
  assert_int_equal(access(a, F_OK), -1);
  assert_int_equal(count_entries(d, ".tmp."), 2);
  assert_int_equal(sd_outputs_commit(), SD_OK);
  assert_int_equal(count_entries(d, NULL), 2);
  /* abort: the old files stay, no temporary file */
  assert_int_equal(sd_outputs_begin(), SD_OK);
  assert_int_equal(write_file(a, "A2"), SD_OK);
  assert_int_equal(write_file(b, "B2"), SD_OK);
  sd_outputs_abort();
  assert_int_equal(count_entries(d, NULL), 2);
  char *s = slurp(a);
  assert_string_equal(s, "A");
  free(s);
  /* a rename that fails (the folder went away) takes back the others */
  char sub[4200], c[4200], e[4200];
  snprintf(sub, sizeof sub, "%s/sub", d);
  snprintf(c, sizeof c, "%s/c.txt", d);
  snprintf(e, sizeof e, "%s/sub/e.txt", d);
  assert_int_equal(mkdir(sub, 0755), 0);
  assert_int_equal(sd_outputs_begin(), SD_OK);
  assert_int_equal(write_file(c, "C"), SD_OK);
  assert_int_equal(write_file(e, "E"), SD_OK);
  char cmd[2 * 4200 + 64];
  snprintf(cmd, sizeof cmd, "mv '%s' '%s.moved'", sub, sub);
  assert_int_equal(system(cmd), 0);
  assert_int_equal(sd_outputs_commit(), SD_E_IO);
  assert_int_equal(access(c, F_OK), -1);
  assert_int_equal(count_entries(d, ".tmp."), 0);
}

static void test_stale_sweep(void **state) {
  (void)state;
  const char *d = fresh_dir("fileio_sweep");
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  waitpid(dead, NULL, 0);
  char p[4200], live[4200], locked[4200], other[4200], out[4200];
  snprintf(p, sizeof p, "%s/x.png.tmp.%d.AbC123", d, (int)dead);
  snprintf(live, sizeof live, "%s/y.png.tmp.%d.AbC123", d, (int)getppid());
  snprintf(locked, sizeof locked, "%s/z.png.tmp.%d.QrS456", d, (int)dead);
  snprintf(other, sizeof other, "%s/w.png.tmp.AbC123", d);
  snprintf(out, sizeof out, "%s/out.txt", d);
  const char *all[] = {p, live, locked, other};
  for (int i = 0; i < 4; i++) fclose(fopen(all[i], "w"));
  int lfd = open(locked, O_RDONLY);
  assert_int_equal(flock(lfd, LOCK_EX), 0); /* a live writer's lock (flock is per open file) */
  pid_t child = fork(); /* the sweep runs once per folder and process: do it in a child */
  if (child == 0) _exit(write_file(out, "x") == SD_OK ? 0 : 1);
  int status;
  waitpid(child, &status, 0);
  assert_int_equal(WEXITSTATUS(status), 0);
  assert_int_equal(access(p, F_OK), -1);      /* dead writer: removed */
  assert_int_equal(access(live, F_OK), 0);    /* a live pid: kept */
  assert_int_equal(access(locked, F_OK), 0);  /* locked: kept */
  assert_int_equal(access(other, F_OK), 0);   /* not a name with a pid: kept */
  close(lfd);
}

static void test_inputs(void **state) {
  (void)state;
  const char *d = fresh_dir("fileio_inputs");
  char f[4200], dir[4200], reg[4200], none[4200], dang[4200];
  snprintf(f, sizeof f, "%s/fifo", d);
  snprintf(dir, sizeof dir, "%s/dir", d);
  snprintf(reg, sizeof reg, "%s/reg.txt", d);
  snprintf(none, sizeof none, "%s/none.txt", d);
  snprintf(dang, sizeof dang, "%s/dangling", d);
  assert_int_equal(mkfifo(f, 0644), 0);
  assert_int_equal(mkdir(dir, 0755), 0);
  assert_int_equal(write_file(reg, "0123456789"), SD_OK);
  assert_int_equal(symlink("nothing", dang), 0);
  char *buf;
  size_t len;
  assert_int_equal(sd_read_file(f, 100, "a test file", &buf, &len), SD_E_IO); /* no hang */
  assert_non_null(strstr(sd_errmsg(), "is a FIFO"));
  assert_int_equal(sd_read_file(dir, 100, "a test file", &buf, &len), SD_E_IO);
  assert_non_null(strstr(sd_errmsg(), "is a directory"));
  assert_int_equal(sd_read_file(reg, 9, "a test file", &buf, &len), SD_E_FORMAT);
  assert_int_equal(sd_read_file(reg, 10, "a test file", &buf, &len), SD_OK);
  assert_int_equal(len, 10);
  assert_string_equal(buf, "0123456789");
  free(buf);
  assert_int_equal(sd_probe_file(reg, "x"), 1);
  assert_int_equal(sd_probe_file(none, "x"), 0);
  assert_true(sd_probe_file(f, "x") < 0);
  assert_true(sd_probe_file(dir, "x") < 0);
  assert_true(sd_probe_file(dang, "x") < 0);
  assert_non_null(strstr(sd_errmsg(), "symbolic link"));
  assert_int_equal(sd_probe_dir(dir), 1);
  assert_int_equal(sd_probe_dir(none), 0);
  assert_true(sd_probe_dir(reg) < 0);
}

static void test_nonfinite(void **state) {
  (void)state;
  unsigned char buf[8 * 9000 + 1];
  memset(buf, 0, sizeof buf);
  const struct { sd_dtype t; size_t size; uint64_t nan, inf; } k[] = {
      {SD_F32, 4, 0x7fc00000u, 0x7f800000u}, {SD_F16, 2, 0x7e00u, 0x7c00u},
      {SD_BF16, 2, 0x7fc0u, 0xff80u}, {SD_F64, 8, 0x7ff8000000000000ull, 0xfff0000000000000ull}};
  for (size_t i = 0; i < sizeof k / sizeof *k; i++) {
    unsigned char *p = buf + 1; /* unaligned, as safetensors data may be */
    memset(buf, 0, sizeof buf);
    assert_int_equal(sd_first_nonfinite(p, k[i].t, 9000), -1);
    uint64_t big = k[i].t == SD_F16 ? 0x7bffu : k[i].t == SD_BF16 ? 0x7f7fu : k[i].t == SD_F32 ? 0x7f7fffffu
                                                                               : 0x7fefffffffffffffull;
    memcpy(p + 5 * k[i].size, &big, k[i].size); /* the largest finite value is finite */
    assert_int_equal(sd_first_nonfinite(p, k[i].t, 9000), -1);
    memcpy(p + 8191 * k[i].size, &k[i].inf, k[i].size);
    assert_int_equal(sd_first_nonfinite(p, k[i].t, 9000), 8191);
    memcpy(p + 4100 * k[i].size, &k[i].nan, k[i].size);
    assert_int_equal(sd_first_nonfinite(p, k[i].t, 9000), 4100);
    assert_int_equal(sd_first_nonfinite(p, k[i].t, 4100), -1);
  }
  assert_int_equal(sd_first_nonfinite(buf, SD_I32, 100), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_regular_and_new), cmocka_unit_test(test_symlinks),
      cmocka_unit_test(test_refused_kinds),   cmocka_unit_test(test_fifo_write_through),
      cmocka_unit_test(test_output_sets),     cmocka_unit_test(test_stale_sweep),
      cmocka_unit_test(test_inputs),          cmocka_unit_test(test_nonfinite),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
