/* Tiled VAE decoding with diffusers' semantics (AutoencoderKL.tiled_decode, overlap factor
 * 0.25), so that large images decode in bounded memory and give the reference's pixels:
 *
 *   T  = tile size in pixels (diffusers: the VAE config's sample_size), t = T / f latent pixels
 *   tiles start every s = floor(0.75·t) latent pixels in each direction (the last ones are
 *   cut by the latent's edge); each is decoded on its own (post_quant_conv + decoder);
 *   E = floor(0.25·T) pixels: the first E rows of a tile are blended linearly with the last
 *   E rows of the (already blended) tile above, weight y/E on the tile's own row y, then the
 *   first E columns with the (already blended) tile to the left; E shrinks to the smaller
 *   of the two tiles' sizes;
 *   each tile keeps its first T − E rows and columns, which is exactly s·f (T a multiple of
 *   4f), and the kept parts, concatenated, are the image.
 * Memory: the decoded tiles of one row of tiles plus the current row, and one tile's
 * activation arena. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "models/vae.h"

typedef struct {
  float *px; /* [3][h][w], decoded and blended */
  int h, w;
} tile_img;

static void free_row(tile_img *row, int n) {
  for (int j = 0; j < n; j++) free(row[j].px), row[j].px = NULL;
}

int sd_vae_tile_check(const sd_vae *v, int tile_px, int *tile_latent) {
  const int f = sd_vae_factor(v);
  if (tile_px < 0) return sd_fail(SD_E_ARG, "VAE tiling: a tile of %d pixels is negative", tile_px);
  if (tile_px == 0) tile_px = sd_vae_cfg(v)->sample_size;
  if (tile_px % (4 * f) || tile_px < 4 * f)
    return sd_fail(SD_E_ARG, "VAE tiling: a tile of %d pixels is not a positive multiple of %d (4 x the VAE's factor %d)",
                   tile_px, 4 * f, f);
  if (tile_px > 16384) return sd_fail(SD_E_ARG, "VAE tiling: a tile of %d pixels is over 16384", tile_px);
  if (tile_latent) *tile_latent = tile_px / f;
  return SD_OK;
}

size_t sd_vae_decode_tiled_arena_bytes(const sd_vae *v, int h, int w, int tile_px) {
  int t = 0;
  if (sd_vae_tile_check(v, tile_px, &t)) return 0;
  return sd_vae_decode_arena_bytes(v, h < t ? h : t, w < t ? w : t);
}

/* b's first E rows (vertical) or columns from a's last E: b = a·(1 − y/E) + b·(y/E). */
static void blend_v(const tile_img *a, tile_img *b, int E) {
  if (a->h < E) E = a->h;
  if (b->h < E) E = b->h;
  const int w = a->w < b->w ? a->w : b->w; /* equal within a column of tiles */
  for (int c = 0; c < 3; c++)
    for (int y = 0; y < E; y++) {
      const float wy = (float)y / (float)E;
      const float *ar = a->px + ((size_t)c * a->h + (a->h - E + y)) * a->w;
      float *br = b->px + ((size_t)c * b->h + y) * b->w;
      for (int x = 0; x < w; x++) br[x] = ar[x] * (1.0f - wy) + br[x] * wy;
    }
}

static void blend_h(const tile_img *a, tile_img *b, int E) {
  if (a->w < E) E = a->w;
  if (b->w < E) E = b->w;
  const int h = a->h < b->h ? a->h : b->h; /* equal within a row of tiles */
  for (int c = 0; c < 3; c++)
    for (int y = 0; y < h; y++) {
      const float *ar = a->px + ((size_t)c * a->h + y) * a->w + (a->w - E);
      float *br = b->px + ((size_t)c * b->h + y) * b->w;
      for (int x = 0; x < E; x++) {
        const float wx = (float)x / (float)E;
        br[x] = ar[x] * (1.0f - wx) + br[x] * wx;
      }
    }
}

int sd_vae_decode_tiled(sd_vae *v, sd_exec *ex, const float *latents, int h, int w, int tile_px, float *image) {
  int t = 0, rc = sd_vae_tile_check(v, tile_px, &t);
  if (rc) return rc;
  if (tile_px == 0) tile_px = sd_vae_cfg(v)->sample_size;
  if (h <= t && w <= t) return sd_vae_decode(v, ex, latents, h, w, image); /* diffusers: no tiling */
  const int f = sd_vae_factor(v), Z = sd_vae_cfg(v)->latent_channels;
  const int s = t * 3 / 4, E = tile_px / 4, keep = tile_px - E; /* keep == s·f */
  const int nr = (h + s - 1) / s, nc = (w + s - 1) / s;
  const int H = h * f, W = w * f;
  tile_img *prev = calloc((size_t)nc, sizeof *prev), *cur = calloc((size_t)nc, sizeof *cur);
  float *zt = malloc(sizeof(float) * (size_t)Z * t * t);
  if (!prev || !cur || !zt) {
    rc = sd_fail(SD_E_NOMEM, "VAE tiling: out of memory");
    goto done;
  }
  for (int i = 0; i < nr && rc == SD_OK; i++) {
    const int y0 = i * s, th = h - y0 < t ? h - y0 : t;
    for (int j = 0; j < nc && rc == SD_OK; j++) {
      const int x0 = j * s, tw = w - x0 < t ? w - x0 : t;
      for (int c = 0; c < Z; c++)
        for (int y = 0; y < th; y++)
          memcpy(zt + ((size_t)c * th + y) * tw, latents + ((size_t)c * h + y0 + y) * w + x0, sizeof(float) * tw);
      tile_img *ti = &cur[j];
      ti->h = th * f, ti->w = tw * f;
      ti->px = malloc(sizeof(float) * 3 * (size_t)ti->h * ti->w);
      if (!ti->px) {
        rc = sd_fail(SD_E_NOMEM, "VAE tiling: out of memory");
        break;
      }
      if ((rc = sd_vae_decode(v, ex, zt, th, tw, ti->px))) break;
      if (i > 0) blend_v(&prev[j], ti, E);
      if (j > 0) blend_h(&cur[j - 1], ti, E);
    }
    if (rc) break;
    /* the kept parts of this row of tiles into the image */
    for (int j = 0; j < nc; j++) {
      const tile_img *ti = &cur[j];
      const int kh = ti->h < keep ? ti->h : keep, kw = ti->w < keep ? ti->w : keep;
      const int py = i * s * f, pxo = j * s * f;
      for (int c = 0; c < 3; c++)
        for (int y = 0; y < kh && py + y < H; y++)
          memcpy(image + ((size_t)c * H + py + y) * W + pxo, ti->px + ((size_t)c * ti->h + y) * ti->w,
                 sizeof(float) * (size_t)(pxo + kw <= W ? kw : W - pxo));
    }
    free_row(prev, nc);
    tile_img *sw = prev;
    prev = cur, cur = sw;
  }
done:
  if (prev) free_row(prev, nc);
  if (cur) free_row(cur, nc);
  free(prev);
  free(cur);
  free(zt);
  return rc ? sd_fail_prefix(rc, "VAE tiled decode: ") : SD_OK;
}
