/* lode-vit.h: one pre-norm transformer block of a vision transformer (timm's
 * Block, as Prithvi-EO-2.0 uses it), forward and backward, on the CPU.
 *
 *   x += proj (attention (qkv (LN1 x)))     heads of width dim / heads
 *   x += fc2 (GELU (fc1 (LN2 x)))           exact GELU
 *
 * on tokens x [n, tokens, dim] (a batch of sequences, no mask). The
 * parameters are named and ordered as in timm's state dict ("norm1.weight",
 * ..., "mlp.fc2.bias"). A training forward saves what the backward needs
 * (LodeVitActs: the block's input, q, k, v, the attention probabilities,
 * the merged heads, the input of the MLP half and fc1's output,
 * rows * (6 dim + mlp_hidden) + n heads tokens^2 values); the layer norms'
 * outputs and the GELU's are recomputed in the backward.
 *
 * The _on functions run through the kernels of a LodePrithviBackend (CPU
 * or CUDA), their buffers the backend's; the others are their CPU
 * wrappers.
 */
#pragma once

#include <glib.h>

#include "lode-prithvi-backend.h"

G_BEGIN_DECLS

typedef enum {
  LODE_VIT_NORM1_WEIGHT,
  LODE_VIT_NORM1_BIAS,
  LODE_VIT_QKV_WEIGHT,      /* [3 dim, dim]: q, k, v stacked */
  LODE_VIT_QKV_BIAS,
  LODE_VIT_PROJ_WEIGHT,     /* [dim, dim] */
  LODE_VIT_PROJ_BIAS,
  LODE_VIT_NORM2_WEIGHT,
  LODE_VIT_NORM2_BIAS,
  LODE_VIT_FC1_WEIGHT,      /* [mlp_hidden, dim] */
  LODE_VIT_FC1_BIAS,
  LODE_VIT_FC2_WEIGHT,      /* [dim, mlp_hidden] */
  LODE_VIT_FC2_BIAS,
  LODE_VIT_N_PARAMS
} LodeVitParam;

typedef struct {
  int          dim;
  int          heads;
  int          mlp_hidden;
  float        eps;                          /* of both layer norms (1e-5 in Prithvi) */
  const float *param[LODE_VIT_N_PARAMS];
} LodeVitBlock;

/* The timm name of a parameter ("norm1.weight", "attn.qkv.weight", ...). */
const char *lode_vit_param_name  (LodeVitParam        param);
/* Its shape in block; returns ndim (1 or 2). */
int         lode_vit_param_shape (const LodeVitBlock *block,
                                  LodeVitParam        param,
                                  gint64              shape[2]);
gsize       lode_vit_param_numel (const LodeVitBlock *block,
                                  LodeVitParam        param);

/* Scratch buffers for n sequences of tokens tokens, shared by the forward
 * and the backward of every block of one width, on the host.
 * NULL when out of memory. */
typedef struct _LodeVitWork LodeVitWork;
LodeVitWork *lode_vit_work_new  (const LodeVitBlock *block,
                                 int                 n,
                                 int                 tokens);
/* The same, with buffers of backend be (freed by lode_vit_work_free);
 * backward: also the two buffers only the backward needs. NULL when out
 * of memory, the failure in be. */
LodeVitWork *lode_vit_work_new_on (LodePrithviBackend *be,
                                   const LodeVitBlock *block,
                                   int                 n,
                                   int                 tokens,
                                   gboolean            backward);
void         lode_vit_work_free (LodeVitWork *work);

/* The activations one training forward keeps (host memory). NULL when
 * out of memory. */
typedef struct _LodeVitActs LodeVitActs;
LodeVitActs *lode_vit_acts_new  (const LodeVitBlock *block,
                                 int                 n,
                                 int                 tokens);
/* The same in buffers of backend be; NULL when out of memory, the failure
 * in be. */
LodeVitActs *lode_vit_acts_new_on (LodePrithviBackend *be,
                                   const LodeVitBlock *block,
                                   int                 n,
                                   int                 tokens);
void         lode_vit_acts_free (LodeVitActs *acts);

/* x [n, tokens, dim] is replaced by the block's output. work was made for
 * (at least) n and tokens; save (NULL: inference) gets the activations. */
void lode_vit_block_forward  (const LodeVitBlock *block,
                              float              *x,
                              int                 n,
                              int                 tokens,
                              LodeVitWork        *work,
                              LodeVitActs        *save);

/* The same through the kernels of be: x, work, save and the block's
 * parameters are be's buffers. A failure stays in be
 * (lode_prithvi_backend_check). */
void lode_vit_block_forward_on (LodePrithviBackend *be,
                                const LodeVitBlock *block,
                                float              *x,
                                int                 n,
                                int                 tokens,
                                LodeVitWork        *work,
                                LodeVitActs        *save);

/* Backward of the forward that filled acts: dx holds dL/d(output) and is
 * replaced by dL/d(input); grads[p] (NULL: not wanted) are ADDED to. */
void lode_vit_block_backward (const LodeVitBlock *block,
                              float              *dx,
                              const LodeVitActs  *acts,
                              LodeVitWork        *work,
                              float *const        grads[LODE_VIT_N_PARAMS]);
/* The same through the kernels of be: dx, acts, work (made with backward),
 * grads and the block's parameters are be's buffers. */
void lode_vit_block_backward_on (LodePrithviBackend *be,
                                 const LodeVitBlock *block,
                                 float              *dx,
                                 const LodeVitActs  *acts,
                                 LodeVitWork        *work,
                                 float *const        grads[LODE_VIT_N_PARAMS]);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeVitWork, lode_vit_work_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeVitActs, lode_vit_acts_free)

G_END_DECLS
