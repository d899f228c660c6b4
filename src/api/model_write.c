/* Writing a model back out with some tensors replaced (api/model_write.h). */
#include "api/model_write.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "io/fileio.h"
#include "io/safetensors.h"
#include "models/name_map.h"

/* The override for (component, internal name), or NULL; marks it used. */
static const sd_tensor_override *find_override(const sd_tensor_override *ov, size_t n_ov, int *used, sd_component c,
                                               const char *name) {
  for (size_t i = 0; i < n_ov; i++)
    if (ov[i].comp == c && !strcmp(ov[i].name, name)) {
      if (used) used[i] = 1;
      return &ov[i];
    }
  return NULL;
}

static int check_unused(const sd_tensor_override *ov, size_t n_ov, const int *used) {
  for (size_t i = 0; i < n_ov; i++)
    if (!used[i])
      return sd_fail(SD_E_ARG, "no %s tensor '%s' to replace in this model", sd_component_name(ov[i].comp), ov[i].name);
  return SD_OK;
}

/* ---- the single-file LDM checkpoint ------------------------------------------------------ */

/* t in dtype want (SD_DTYPE_COUNT: as it is); a converted copy goes to *buf (the caller frees). */
static int convert_dtype(sd_tensor *t, sd_dtype want, void **buf, const char *name) {
  *buf = NULL;
  if (want == SD_DTYPE_COUNT || t->dtype == want || !sd_dtype_is_float(t->dtype)) return SD_OK;
  size_t cnt = (size_t)sd_numel(t);
  float *f = malloc(cnt * sizeof(float) + 1);
  void *dst = malloc(cnt * sd_dtype_size(want) + 1);
  if (!f || !dst) { free(f); free(dst); return sd_fail(SD_E_NOMEM, "out of memory converting %s", name); }
  sd_to_f32(f, t->data, t->dtype, cnt);
  sd_from_f32(dst, want, f, cnt);
  free(f);
  *buf = dst;
  t->data = dst;
  t->dtype = want;
  return SD_OK;
}

/* The tensors being written: names (owned), views, and the buffers the views point into. */
typedef struct ldm_out {
  char **names;
  sd_tensor *ts;
  void **bufs;
  size_t n, cap;
} ldm_out;

static int out_add(ldm_out *o, const char *name, sd_tensor t, void *buf, sd_dtype want) {
  if (o->n >= o->cap) { free(buf); return sd_fail(SD_E_NOMEM, "LDM writer: more tensors than planned"); }
  void *conv;
  int rc = convert_dtype(&t, want, &conv, name);
  if (rc) { free(buf); return rc; }
  if (conv) { free(buf); buf = conv; }
  o->names[o->n] = strdup(name);
  if (!o->names[o->n]) { free(buf); return sd_fail(SD_E_NOMEM, "out of memory"); }
  o->bufs[o->n] = buf;
  o->ts[o->n++] = t;
  return SD_OK;
}

/* The OpenCLIP text tower of SD 2.x in the LDM layout (cond_stage_model.model.*): each layer's
 * q, k and v projections joined into attn.in_proj_* (rows q, k, v), the others renamed one to
 * one. The layers a diffusers folder holds are SD 2's (the text tower's last layer, which SD 2
 * skips, is not in it); the file gets one more resblock of zeros in that place, so that every
 * SD 2 loader, which runs all resblocks but the last, computes the same states. */
static const struct { const char *hf, *ldm; } k_oc_layer[] = {
    {"layer_norm1.", "ln_1."}, {"layer_norm2.", "ln_2."}, {"mlp.fc1.", "mlp.c_fc."},
    {"mlp.fc2.", "mlp.c_proj."}, {"self_attn.out_proj.", "attn.out_proj."}};

static int openclip_tensors(const sd_component_weights *w, const sd_clip_text_config *tc, sd_dtype want,
                            const sd_tensor_override *ov, size_t n_ov, int *used, ldm_out *o) {
  int rc = SD_OK;
  const int L = tc->layers;
  const sd_tensor *qkv[3][2] = {{0}}; /* [q/k/v][weight/bias] of the current layer */
  for (int layer = 0; layer <= L && rc == SD_OK; layer++) {
    char pre[64], ldm[SD_NAME_MAX], nm[SD_NAME_MAX];
    /* the zero resblock (layer == L) takes the shapes of the last real layer */
    snprintf(pre, sizeof pre, "text_model.encoder.layers.%d.", layer < L ? layer : L - 1);
    memset(qkv, 0, sizeof qkv);
    for (size_t i = 0; i < w->n && rc == SD_OK; i++) {
      const char *name = w->w[i].name;
      if (strncmp(name, pre, strlen(pre))) continue;
      const char *rest = name + strlen(pre);
      sd_tensor t = w->w[i].t;
      const sd_tensor_override *ov_t = layer < L ? find_override(ov, n_ov, used, SD_COMP_TEXT, name) : NULL;
      if (ov_t) t = ov_t->t;
      void *buf = NULL;
      if (layer == L) { /* zeros of the same shape and dtype */
        size_t bytes = (size_t)sd_numel(&t) * sd_dtype_size(t.dtype);
        if (!(buf = calloc(1, bytes + 1))) return sd_fail(SD_E_NOMEM, "out of memory");
        t.data = buf;
      }
      static const char *const P[3] = {"self_attn.q_proj.", "self_attn.k_proj.", "self_attn.v_proj."};
      int part = -1;
      for (int k = 0; k < 3; k++)
        if (!strncmp(rest, P[k], strlen(P[k]))) part = k;
      if (part >= 0) {
        const char *wb = rest + strlen(P[part]);
        int which = !strcmp(wb, "weight") ? 0 : !strcmp(wb, "bias") ? 1 : -1;
        if (which < 0) { free(buf); return sd_fail(SD_E_ARG, "no LDM name for text tensor %s", name); }
        /* joined below; a zero block's parts are zero too */
        sd_tensor *keep = malloc(sizeof *keep);
        if (!keep) { free(buf); return sd_fail(SD_E_NOMEM, "out of memory"); }
        *keep = t; /* for the zero block, keep->data is the zero buffer, freed once joined */
        qkv[part][which] = keep;
        continue;
      }
      int done = 0;
      for (size_t k = 0; k < sizeof k_oc_layer / sizeof *k_oc_layer; k++) {
        size_t n = strlen(k_oc_layer[k].hf);
        if (strncmp(rest, k_oc_layer[k].hf, n)) continue;
        snprintf(ldm, sizeof ldm, "cond_stage_model.model.transformer.resblocks.%d.%s%s", layer, k_oc_layer[k].ldm, rest + n);
        rc = out_add(o, ldm, t, buf, want);
        done = 1;
        break;
      }
      if (!done) { free(buf); rc = sd_fail(SD_E_ARG, "no LDM name for text tensor %s", name); }
    }
    /* attn.in_proj_weight / _bias: q, k, v stacked along the rows */
    for (int which = 0; which < 2 && rc == SD_OK; which++) {
      const sd_tensor *a = qkv[0][which], *b = qkv[1][which], *c = qkv[2][which];
      if (!a || !b || !c || a->dtype != b->dtype || a->dtype != c->dtype || a->ndim != b->ndim || a->ndim != c->ndim) {
        rc = sd_fail(SD_E_ARG, "text encoder layer %d: q, k and v projections missing or of different types",
                     layer < L ? layer : L - 1);
        break;
      }
      size_t bytes = (size_t)sd_numel(a) * sd_dtype_size(a->dtype);
      if ((size_t)sd_numel(b) * sd_dtype_size(b->dtype) != bytes || (size_t)sd_numel(c) * sd_dtype_size(c->dtype) != bytes) {
        rc = sd_fail(SD_E_ARG, "text encoder layer %d: q, k and v projections of different shapes", layer);
        break;
      }
      unsigned char *j = malloc(3 * bytes + 1);
      if (!j) { rc = sd_fail(SD_E_NOMEM, "out of memory"); break; }
      memcpy(j, a->data, bytes);
      memcpy(j + bytes, b->data, bytes);
      memcpy(j + 2 * bytes, c->data, bytes);
      sd_tensor t = *a;
      t.data = j;
      t.shape[0] *= 3;
      snprintf(nm, sizeof nm, "cond_stage_model.model.transformer.resblocks.%d.attn.in_proj_%s", layer,
               which ? "bias" : "weight");
      rc = out_add(o, nm, t, j, want);
    }
    for (int k = 0; k < 3; k++)
      for (int which = 0; which < 2; which++) {
        if (qkv[k][which] && layer == L) free(qkv[k][which]->data);
        free((void *)qkv[k][which]);
      }
  }
  /* the rest: embeddings and the final LayerNorm */
  static const struct { const char *hf, *ldm; } k_oc_top[] = {
      {"text_model.embeddings.token_embedding.weight", "cond_stage_model.model.token_embedding.weight"},
      {"text_model.embeddings.position_embedding.weight", "cond_stage_model.model.positional_embedding"},
      {"text_model.final_layer_norm.weight", "cond_stage_model.model.ln_final.weight"},
      {"text_model.final_layer_norm.bias", "cond_stage_model.model.ln_final.bias"}};
  for (size_t i = 0; i < w->n && rc == SD_OK; i++) {
    const char *name = w->w[i].name;
    if (!strncmp(name, "text_model.encoder.layers.", strlen("text_model.encoder.layers."))) continue;
    size_t k = 0;
    while (k < sizeof k_oc_top / sizeof *k_oc_top && strcmp(name, k_oc_top[k].hf)) k++;
    if (k == sizeof k_oc_top / sizeof *k_oc_top) return sd_fail(SD_E_ARG, "no LDM name for text tensor %s", name);
    sd_tensor t = w->w[i].t;
    const sd_tensor_override *ov_t = find_override(ov, n_ov, used, SD_COMP_TEXT, name);
    if (ov_t) t = ov_t->t;
    rc = out_add(o, k_oc_top[k].ldm, t, NULL, want);
  }
  return rc;
}

int sd_write_ldm_file(const sd_model_source *m, const char *out, sd_dtype want, const sd_tensor_override *ov,
                      size_t n_ov, size_t n_meta, const char *const *meta_keys, const char *const *meta_values) {
  const sd_clip_text_config *tc = sd_model_text_config(m);
  const sd_component_weights *tw = sd_model_weights(m, SD_COMP_TEXT);
  /* SD 2.x's OpenCLIP tower (GELU) goes to cond_stage_model.model.*, CLIP-L (quick GELU)
   * to cond_stage_model.transformer.text_model.* whatever its vocabulary */
  const int openclip = tw->present && tc->act == SD_ACT_GELU;
  if (openclip && tc->layers < 1) return sd_fail(SD_E_FORMAT, "%s: a text encoder without layers", sd_model_path(m));
  size_t total = 16; /* OpenCLIP: the zero resblock's tensors */
  for (int c = 0; c < SD_COMP_COUNT; c++) total += sd_model_weights(m, (sd_component)c)->n;
  ldm_out o = {calloc(total, sizeof(char *)), calloc(total, sizeof(sd_tensor)), calloc(total, sizeof(void *)), 0, total};
  int *used = calloc(n_ov ? n_ov : 1, sizeof *used);
  int rc = SD_OK;
  if (!o.names || !o.ts || !o.bufs || !used) { rc = sd_fail(SD_E_NOMEM, "out of memory"); goto done; }
  for (size_t i = 0; i < n_ov && rc == SD_OK; i++) { /* replacements must have the model's shapes */
    const sd_component_weights *w = sd_model_weights(m, ov[i].comp);
    for (size_t j = 0; j < w->n; j++) {
      const sd_tensor *t = &w->w[j].t;
      if (strcmp(w->w[j].name, ov[i].name)) continue;
      if (ov[i].t.ndim != t->ndim || memcmp(ov[i].t.shape, t->shape, (size_t)t->ndim * sizeof *t->shape) != 0) {
        char a[96], b[96];
        rc = sd_fail(SD_E_ARG, "replacement for %s has shape %s, the model's is %s", ov[i].name,
                     sd_shape_str(&ov[i].t, a, sizeof a), sd_shape_str(t, b, sizeof b));
      }
      break;
    }
  }
  for (int c = 0; c < SD_COMP_COUNT && rc == SD_OK; c++) {
    const sd_component_weights *w = sd_model_weights(m, (sd_component)c);
    if (c == SD_COMP_TEXT && openclip) {
      rc = openclip_tensors(w, tc, want, ov, n_ov, used, &o);
      continue;
    }
    for (size_t i = 0; i < w->n && rc == SD_OK; i++) {
      char name[SD_NAME_MAX];
      sd_xform xf;
      if ((rc = sd_ldm_canonical_name((sd_component)c, w->w[i].name, sd_model_unet_config(m), sd_model_vae_config(m),
                                      name, sizeof name, &xf)))
        break;
      sd_tensor t = w->w[i].t;
      const sd_tensor_override *ot = find_override(ov, n_ov, used, (sd_component)c, w->w[i].name);
      if (ot) t = ot->t;
      if (xf == SD_XFORM_SQUEEZE && t.ndim == 2) { t.ndim = 4; t.shape[2] = t.shape[3] = 1; }
      rc = out_add(&o, name, t, NULL, want);
    }
  }
  if (rc == SD_OK) rc = check_unused(ov, n_ov, used);
  if (rc == SD_OK) rc = sd_st_write_meta(out, o.n, (const char *const *)o.names, o.ts, n_meta, meta_keys, meta_values);
done:
  for (size_t i = 0; i < o.n; i++) { free(o.names[i]); free(o.bufs[i]); }
  free(o.names);
  free(o.ts);
  free(o.bufs);
  free(used);
  return rc;
}

/* ---- the diffusers folder copy ------------------------------------------------------------ */

typedef struct copy_ctx {
  const sd_model_source *m;
  const sd_tensor_override *ov;
  size_t n_ov;
  int *used;
  const char *file[SD_COMP_COUNT]; /* weights file to rewrite (NULL: copied as it is) */
  char *comp_dir[SD_COMP_COUNT];   /* its folder: other weight files there are left out */
  char *skipped;
  size_t skipped_len;
} copy_ctx;

static char *path_join(const char *a, const char *b) {
  size_t n = strlen(a) + strlen(b) + 2;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s/%s", a, b);
  return p;
}

static int note_skipped(copy_ctx *cx, const char *path) {
  size_t add = strlen(path) + 2;
  char *s = realloc(cx->skipped, cx->skipped_len + add + 1);
  if (!s) return sd_fail(SD_E_NOMEM, "out of memory");
  cx->skipped = s;
  cx->skipped_len += (size_t)snprintf(s + cx->skipped_len, add + 1, "%s%s", cx->skipped_len ? ", " : "", path);
  return SD_OK;
}

static int ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && !strcmp(s + a - b, suf);
}

/* A file that holds weights (in any format diffusers or transformers would load). */
static int is_weight_file(const char *name) {
  static const char *const ext[] = {".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".msgpack", ".h5", ".onnx",
                                    ".index.json", ".pb", ".pkl", ".gguf"};
  for (size_t i = 0; i < sizeof ext / sizeof *ext; i++)
    if (ends_with(name, ext[i])) return 1;
  return 0;
}

/* Two paths name the same file (device + inode). */
static int same_file(const char *a, const char *b) {
  struct stat sa, sb;
  return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static int copy_file(const char *src, const char *dst) {
  int fd;
  int64_t size;
  int rc = sd_open_regular(src, "a file", &fd, &size);
  if (rc) return rc;
  sd_atomic_file af;
  if ((rc = sd_atomic_open(&af, dst))) { close(fd); return rc; }
  enum { BUF = 1 << 20 };
  char *buf = malloc(BUF);
  if (!buf) rc = sd_fail(SD_E_NOMEM, "out of memory");
  while (rc == SD_OK) {
    ssize_t r = read(fd, buf, BUF);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) { rc = sd_fail(SD_E_IO, "%s: read failed: %s", src, strerror(errno)); break; }
    if (r == 0) break;
    rc = sd_atomic_write(&af, buf, (size_t)r);
  }
  free(buf);
  close(fd);
  if (rc == SD_OK) rc = sd_atomic_commit(&af);
  else sd_atomic_abort(&af);
  return rc;
}

/* Rewrite one component's safetensors file with its overrides; every other tensor (in the
 * file's names, including ones the engine ignores) and the file's metadata as they are. */
static int rewrite_weights(copy_ctx *cx, sd_component c, const char *src, const char *dst) {
  sd_safetensors *st;
  int rc = sd_st_open(src, &st);
  if (rc) return rc;
  const sd_component_weights *w = sd_model_weights(cx->m, c);
  const char **names = calloc(st->n ? st->n : 1, sizeof *names);
  sd_tensor *ts = calloc(st->n ? st->n : 1, sizeof *ts);
  if (!names || !ts) rc = sd_fail(SD_E_NOMEM, "out of memory");
  for (size_t i = 0; i < st->n && rc == SD_OK; i++) {
    names[i] = st->entries[i].name;
    ts[i] = sd_st_tensor(&st->entries[i]);
  }
  /* each override goes to the file tensor its weight is a view of: whole tensors only */
  for (size_t i = 0; i < w->n && rc == SD_OK; i++) {
    const sd_tensor_override *o = find_override(cx->ov, cx->n_ov, NULL, c, w->w[i].name);
    if (!o) continue;
    const sd_st_entry *e = sd_st_find(st, w->w[i].source_name);
    if (!e) { rc = sd_fail(SD_E_INTERNAL, "%s: tensor %s vanished", src, w->w[i].source_name); break; }
    size_t k = (size_t)(e - st->entries);
    const sd_tensor *mt = &w->w[i].t;
    if (o->t.ndim != mt->ndim || memcmp(o->t.shape, mt->shape, (size_t)mt->ndim * sizeof *mt->shape) != 0 ||
        o->t.dtype != e->dtype || sd_numel(&o->t) != sd_numel(&ts[k])) {
      char a[96], b[96];
      rc = sd_fail(SD_E_ARG, "replacement for %s (%s %s) does not match the stored tensor %s (%s %s)", w->w[i].name,
                   sd_dtype_name(o->t.dtype), sd_shape_str(&o->t, a, sizeof a), e->name, sd_dtype_name(e->dtype),
                   sd_shape_str(&ts[k], b, sizeof b));
      break;
    }
    ts[k].data = o->t.data; /* the stored shape, the new values */
    cx->used[o - cx->ov] = 1;
  }
  if (rc == SD_OK)
    rc = sd_st_write_meta(dst, st->n, names, ts, st->n_meta, (const char *const *)st->meta_keys,
                          (const char *const *)st->meta_values);
  free(names);
  free(ts);
  sd_st_close(st);
  return rc;
}

static int copy_tree(copy_ctx *cx, const char *src, const char *dst, int depth) {
  if (depth > 16) return sd_fail(SD_E_UNSUPPORTED, "%s: folders nested too deeply (a symlink loop?)", src);
  DIR *d = opendir(src);
  if (!d) return sd_fail(SD_E_IO, "%s: cannot read the folder: %s", src, strerror(errno));
  int rc = SD_OK;
  struct dirent *de;
  while (rc == SD_OK && (errno = 0, de = readdir(d))) {
    if (de->d_name[0] == '.') {
      if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
        char *sp = path_join(src, de->d_name);
        rc = sp ? note_skipped(cx, sp) : sd_fail(SD_E_NOMEM, "out of memory");
        free(sp);
      }
      continue;
    }
    char *sp = path_join(src, de->d_name), *dp = path_join(dst, de->d_name);
    struct stat sb;
    if (!sp || !dp) rc = sd_fail(SD_E_NOMEM, "out of memory");
    else if (stat(sp, &sb) != 0) rc = sd_fail(SD_E_IO, "%s: %s", sp, strerror(errno));
    else if (S_ISDIR(sb.st_mode)) {
      if (mkdir(dp, 0777) != 0) rc = sd_fail(SD_E_IO, "cannot create %s: %s", dp, strerror(errno));
      else rc = copy_tree(cx, sp, dp, depth + 1);
    } else if (!S_ISREG(sb.st_mode)) {
      rc = note_skipped(cx, sp);
    } else {
      int done = 0;
      for (int c = 0; c < SD_COMP_COUNT && !done && rc == SD_OK; c++) {
        if (!cx->file[c]) continue;
        if (same_file(sp, cx->file[c])) {
          rc = rewrite_weights(cx, (sd_component)c, sp, dp);
          done = 1;
        } else if (is_weight_file(de->d_name) && same_file(src, cx->comp_dir[c])) {
          rc = note_skipped(cx, sp);
          done = 1;
        }
      }
      if (!done && rc == SD_OK) rc = copy_file(sp, dp);
    }
    free(sp);
    free(dp);
  }
  if (rc == SD_OK && errno) rc = sd_fail(SD_E_IO, "%s: cannot read the folder: %s", src, strerror(errno));
  closedir(d);
  return rc;
}

/* rm -r without following symlinks (only what this process made). */
static void remove_tree(const char *path) {
  struct stat sb;
  if (lstat(path, &sb) != 0) return;
  if (S_ISDIR(sb.st_mode)) {
    DIR *d = opendir(path);
    if (d) {
      struct dirent *de;
      while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char *p = path_join(path, de->d_name);
        if (p) remove_tree(p);
        free(p);
      }
      closedir(d);
    }
    rmdir(path);
  } else {
    unlink(path);
  }
}

static int write_extra(const char *dir, const char *name, const char *text) {
  char *p = path_join(dir, name);
  if (!p) return sd_fail(SD_E_NOMEM, "out of memory");
  sd_atomic_file af;
  int rc = sd_atomic_open(&af, p);
  if (rc == SD_OK) {
    rc = sd_atomic_write(&af, text, strlen(text));
    if (rc == SD_OK) rc = sd_atomic_commit(&af);
    else sd_atomic_abort(&af);
  }
  free(p);
  return rc;
}

int sd_write_diffusers_copy(const sd_model_source *m, const char *out, const sd_tensor_override *ov, size_t n_ov,
                            const char *extra_name, const char *extra, char **skipped) {
  if (skipped) *skipped = NULL;
  if (sd_model_layout(m) != SD_LAYOUT_DIFFUSERS)
    return sd_fail(SD_E_ARG, "%s is a single file: a diffusers folder can only be written from a diffusers folder "
                             "(write a .safetensors file instead)", sd_model_path(m));
  if (!out || !*out) return sd_fail(SD_E_ARG, "no output folder given");
  size_t ol = strlen(out);
  while (ol > 1 && out[ol - 1] == '/') ol--;
  char *dst = strndup(out, ol);
  if (!dst) return sd_fail(SD_E_NOMEM, "out of memory");
  struct stat sb;
  if (lstat(dst, &sb) == 0) {
    int rc = sd_fail(SD_E_IO, "%s already exists (remove it or choose another output)", dst);
    free(dst);
    return rc;
  }
  { /* an output inside the source would be copied into itself */
    char *parent = strdup(dst), *rp_parent = NULL, *rp_src = realpath(sd_model_path(m), NULL);
    if (parent) {
      char *slash = strrchr(parent, '/');
      if (slash == parent) slash[1] = 0;
      else if (slash) *slash = 0;
      else strcpy(parent, ".");
      rp_parent = realpath(parent, NULL);
    }
    int inside = 0;
    if (rp_parent && rp_src) {
      size_t n = strlen(rp_src);
      inside = !strncmp(rp_parent, rp_src, n) && (rp_parent[n] == 0 || rp_parent[n] == '/');
    }
    free(parent);
    free(rp_parent);
    free(rp_src);
    if (inside) {
      int rc = sd_fail(SD_E_ARG, "%s is inside the model folder %s; write the copy elsewhere", dst, sd_model_path(m));
      free(dst);
      return rc;
    }
  }
  copy_ctx cx = {.m = m, .ov = ov, .n_ov = n_ov};
  int rc = SD_OK;
  char *tmp = malloc(ol + 16);
  cx.used = calloc(n_ov ? n_ov : 1, sizeof *cx.used);
  if (!tmp || !cx.used) { rc = sd_fail(SD_E_NOMEM, "out of memory"); goto done; }
  for (int c = 0; c < SD_COMP_COUNT && rc == SD_OK; c++) {
    int has = 0;
    for (size_t i = 0; i < n_ov; i++) has |= ov[i].comp == (sd_component)c;
    if (!has) continue;
    cx.file[c] = sd_model_component_file(m, (sd_component)c);
    if (!cx.file[c]) { rc = sd_fail(SD_E_ARG, "%s has no %s to edit", sd_model_path(m), sd_component_name((sd_component)c)); break; }
    const char *slash = strrchr(cx.file[c], '/');
    cx.comp_dir[c] = slash ? strndup(cx.file[c], (size_t)(slash - cx.file[c])) : strdup(".");
    if (!cx.comp_dir[c]) rc = sd_fail(SD_E_NOMEM, "out of memory");
  }
  if (rc) goto done;
  snprintf(tmp, ol + 16, "%s.tmp.XXXXXX", dst);
  if (!mkdtemp(tmp)) {
    rc = sd_fail(SD_E_IO, "cannot create a folder beside %s: %s", dst, strerror(errno));
    free(tmp);
    tmp = NULL;
    goto done;
  }
  { /* mkdtemp makes the folder 0700: give it the usual 0777 & ~umask */
    mode_t um = umask(0);
    umask(um);
    (void)chmod(tmp, 0777 & ~um);
  }
  rc = copy_tree(&cx, sd_model_path(m), tmp, 0);
  if (rc == SD_OK) rc = check_unused(ov, n_ov, cx.used);
  if (rc == SD_OK && extra_name && extra) rc = write_extra(tmp, extra_name, extra);
  if (rc == SD_OK && lstat(dst, &sb) == 0) rc = sd_fail(SD_E_IO, "%s appeared while writing it; left as it was", dst);
  if (rc == SD_OK && rename(tmp, dst) != 0) rc = sd_fail(SD_E_IO, "cannot create %s: %s", dst, strerror(errno));
  if (rc != SD_OK) remove_tree(tmp);
done:
  if (rc == SD_OK && skipped) {
    *skipped = cx.skipped;
    cx.skipped = NULL;
  }
  free(cx.skipped);
  for (int c = 0; c < SD_COMP_COUNT; c++) free(cx.comp_dir[c]);
  free(cx.used);
  free(tmp);
  free(dst);
  return rc;
}
