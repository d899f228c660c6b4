/* nsfwjs's internals, shared by nsfwjs.c (loading a TF.js layers model into ops, planning
 * memory) and nsfwjs_run.c (preprocessing and the forward pass). Not for other modules. */
#ifndef SD_JUDGE_NSFWJS_INTERNAL_H
#define SD_JUDGE_NSFWJS_INTERNAL_H

#include <stdint.h>

#include "judge/nsfwjs.h"

#define MAX_IN 16                            /* inputs of one layer (Add) */
#define COL_TILE ((int64_t)1 << 20)          /* floats in one im2col tile (4 MiB) */
#define WORKSPACE_MAX ((int64_t)1 << 29)     /* floats of activation memory (2 GiB) */
#define MAX_IMAGE 65536                      /* preprocess: input image side */

/* ---- the model ------------------------------------------------------------------------ */

typedef enum { OP_INPUT, OP_CONV, OP_DW, OP_DENSE, OP_AFFINE, OP_ACT, OP_ADD, OP_PAD, OP_AVGPOOL } op_kind;
typedef enum { ACT_NONE, ACT_RELU, ACT_SOFTMAX } act_kind;

typedef struct {
  int h, w, c; /* rank 1: h = w = 1 */
  int rank;    /* 3 ([H, W, C]) or 1 ([C]) */
} vshape;

typedef struct {
  op_kind kind;
  char *name;          /* the Keras layer whose output this op produces (last fused one) */
  int tail;            /* that layer's index */
  int in[MAX_IN], n_in;/* op indices of the inputs */
  vshape ins, out;     /* shape of in[0]; of the output */
  int kh, kw, sh, sw;  /* conv, dw, pool */
  int pt, pl, pb, pr;  /* zero padding (conv, dw: TF "same"; pad op) */
  int dm;              /* depthwise multiplier */
  float *w;            /* conv [Cout, kh·kw·Cin]; dw [kh·kw, C·dm]; dense [units, K]; affine: scale */
  float *b;            /* per output channel (bias, folded BN shift, affine shift) or NULL */
  act_kind act;
  float relu_max;      /* INFINITY when unbounded */
  int direct;          /* conv: 1×1, stride 1, unpadded: one GEMM on the input */
  int tile_rows;       /* conv (not direct): output rows per im2col tile */
  int live;            /* leads to the output */
  int64_t off;         /* workspace offset of the output (floats) */
} op;

struct sd_nsfwjs {
  op *ops;
  int n_ops;
  int out_op;
  int in_h, in_w;
  int64_t ws_floats, col_off;
  int64_t n_params;
  int n_layers, n_live, n_fused;
};

static inline int64_t vnumel(vshape s) { return (int64_t)s.h * s.w * s.c; }

/* The activation workspace: liveness, best-fit reuse, element-wise ops in place; sets each
 * live op's offset and m->ws_floats (nsfwjs_run.c). SD_OK or an error naming the limit. */
int sd_nsfwjs_plan(sd_nsfwjs *m);

#endif
