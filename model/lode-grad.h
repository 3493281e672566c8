/* lode-grad.h: the backward passes of the layers Lode trains, on the CPU,
 * and the training-mode forwards they need (batch norm on batch statistics,
 * max pooling that remembers where the maximum was), the losses and AdamW.
 *
 * Same conventions as lode-ops.h: raw float32 arrays, NCHW, explicit sizes.
 * A backward function takes dy (the gradient of the loss with respect to
 * the layer's output) and writes dx (with respect to its input). Gradients
 * of parameters (dweight, dbias) are always ADDED to, so that a batch can
 * be split and the caller zeroes them once per step. Whether dx is
 * overwritten or added to is said per function. The CUDA twins in
 * lode-grad-cuda.h (compared by tests/test-grad-gpu.c) cover every function
 * but the Dice loss, the channel concatenation, which is a copy, and the
 * transformer layers of SAM2 fine-tuning, which run on the CPU only.
 */
#pragma once

#include <glib.h>

#include "lode-ops.h"

G_BEGIN_DECLS

/* ---- convolution -------------------------------------------------------- */

/* Backward of lode_ops_conv2d with input x [n, c_in, h, w], weight and
 * dy [n, c_out, oh, ow]:
 *   dx      [n, c_in, h, w]  (NULL: not wanted), overwritten, or added to
 *           when accumulate_dx
 *   dweight [c_out, c_in/groups, kh, kw] added to (NULL: not wanted)
 *   dbias   [c_out] added to (NULL: the convolution has no bias)
 * im2col + sgemm for the weight, sgemm + col2im for the input. */
void lode_grad_conv2d (float               *dx,
                       float               *dweight,
                       float               *dbias,
                       const float         *dy,
                       const float         *x,
                       const float         *weight,
                       const LodeConvShape *s,
                       gboolean             accumulate_dx);

/* ---- batch normalisation ------------------------------------------------ */

/* torch.nn.functional.batch_norm(training=True) on in [n, c, hw]: each
 * channel normalised with the mean and biased variance of its n*hw values,
 * then weight[c], bias[c] (either may be NULL). save_mean[c] and
 * save_invstd[c] = 1/sqrt(var + eps) are written for the backward pass.
 * running_mean and running_var (either may be NULL) move by momentum
 * towards the batch mean and the unbiased variance, as torch does.
 * out may be in. */
void lode_grad_batch_norm_train (float       *out,
                                 const float *in,
                                 const float *weight,
                                 const float *bias,
                                 float       *running_mean,
                                 float       *running_var,
                                 float       *save_mean,
                                 float       *save_invstd,
                                 int          n,
                                 int          c,
                                 int          hw,
                                 float        eps,
                                 float        momentum);

/* Backward of batch norm. x is the input of the forward, mean[c] and
 * invstd[c] the statistics it used: the batch's (batch_stats TRUE, from
 * lode_grad_batch_norm_train) or the running ones (FALSE, inference mode,
 * invstd = 1/sqrt(running_var + eps)). dx (NULL: not wanted) is
 * overwritten and may be dy; dweight, dbias (NULL: not wanted) added to.
 * weight NULL means 1. */
void lode_grad_batch_norm (float       *dx,
                           float       *dweight,
                           float       *dbias,
                           const float *dy,
                           const float *x,
                           const float *mean,
                           const float *invstd,
                           const float *weight,
                           int          n,
                           int          c,
                           int          hw,
                           gboolean     batch_stats);

/* invstd[c] = 1 / sqrt(var[c] + eps). */
void lode_grad_invstd (float       *invstd,
                       const float *var,
                       int          c,
                       float        eps);

/* ---- element-wise, pooling, resizing, concatenation --------------------- */

/* Backward of ReLU from its output y: dx = dy where y > 0, else 0.
 * dx may be dy. */
void lode_grad_relu (float       *dx,
                     const float *dy,
                     const float *y,
                     gsize        count);

/* lode_ops_max_pool2d that also writes, for every output, the index
 * (iy * w + ix, within its plane) of the input that was the maximum; the
 * first one wins a tie, as in torch. */
void lode_grad_max_pool2d_forward (float       *out,
                                   gint32      *argmax,
                                   const float *in,
                                   int          n,
                                   int          c,
                                   int          h,
                                   int          w,
                                   int          kernel,
                                   int          stride,
                                   int          pad);
/* Backward: dx [n, c, h, w] is overwritten (or added to when accumulate)
 * with dy [n, c, oh, ow] sent back to the argmax of each output. */
void lode_grad_max_pool2d (float        *dx,
                           const float  *dy,
                           const gint32 *argmax,
                           int           n,
                           int           c,
                           int           h,
                           int           w,
                           int           oh,
                           int           ow,
                           gboolean      accumulate);

/* Nearest upsampling by 2 (F.interpolate(scale_factor=2, mode='nearest')):
 * in [nc, h, w] -> out [nc, 2h, 2w]. Backward: dx [nc, h, w] is the sum
 * of each 2x2 block of dy [nc, 2h, 2w] (overwritten). */
void lode_grad_upsample2x_forward (float       *out,
                                   const float *in,
                                   int          nc,
                                   int          h,
                                   int          w);
void lode_grad_upsample2x (float       *dx,
                           const float *dy,
                           int          nc,
                           int          h,
                           int          w);

/* torch.cat([a, b], dim=1): a [n, ca, hw], b [n, cb, hw] -> out
 * [n, ca + cb, hw]. b may be NULL with cb 0. */
void lode_grad_concat_channels (float       *out,
                                const float *a,
                                int          ca,
                                const float *b,
                                int          cb,
                                int          n,
                                int          hw);
/* Backward: da (overwritten) and db (added to; NULL: not wanted) are the
 * two channel slices of dout. */
void lode_grad_split_channels (float       *da,
                               float       *db,
                               const float *dout,
                               int          ca,
                               int          cb,
                               int          n,
                               int          hw);

/* ---- losses ------------------------------------------------------------- */

/* torch.nn.CrossEntropyLoss(weight=class_weight, ignore_index) on logits
 * [n, c, hw] and target [n, hw] (class indices, or ignore_index):
 *   loss = sum_i w[t_i] * -log softmax(x_i)[t_i] / sum_i w[t_i]
 * over the pixels i whose target is not ignored (class_weight NULL: all 1).
 * Returns the loss (0 when every pixel is ignored); dlogits (NULL: not
 * wanted) is overwritten with scale * dloss/dlogits (0 on ignored pixels).
 * A target outside [0, c) that is not ignore_index counts as ignored. */
double lode_grad_cross_entropy (float        *dlogits,
                                const float  *logits,
                                const gint16 *target,
                                const float  *class_weight,
                                int           n,
                                int           c,
                                int           hw,
                                int           ignore_index,
                                float         scale);

/* Soft Dice loss on softmax probabilities, as segmentation_models_pytorch's
 * DiceLoss(mode='multiclass', smooth=0, eps=1e-7): for each class k,
 *   score_k = 2 sum_i p_ik t_ik / max(sum_i (p_ik + t_ik), eps)
 * over the non-ignored pixels i of the whole batch, loss = mean over the
 * classes of (1 - score_k), classes absent from the target counting 0.
 * Returns the loss; dlogits (NULL: not wanted) is ADDED to with
 * scale * dloss/dlogits. */
double lode_grad_dice (float        *dlogits,
                       const float  *logits,
                       const gint16 *target,
                       int           n,
                       int           c,
                       int           hw,
                       int           ignore_index,
                       float         scale);

/* ---- transformer layers (CPU only, for SAM2 decoder fine-tuning) -------- */

/* Backward of lode_ops_linear (y = x W^T + b) on x [rows, in_f], weight
 * [out_f, in_f], dy [rows, out_f]: dx (NULL: not wanted) overwritten,
 * dweight and dbias (NULL: not wanted) added to. */
void lode_grad_linear (float       *dx,
                       float       *dweight,
                       float       *dbias,
                       const float *dy,
                       const float *x,
                       const float *weight,
                       int          rows,
                       int          in_f,
                       int          out_f);

/* Backward of lode_ops_layer_norm on x [rows, c] (the forward's input;
 * the statistics are recomputed): dx overwritten, dweight and dbias added
 * to (NULL: not wanted). */
void lode_grad_layer_norm (float       *dx,
                           float       *dweight,
                           float       *dbias,
                           const float *dy,
                           const float *x,
                           const float *weight,
                           int          rows,
                           int          c,
                           float        eps);

/* Backward of lode_ops_layer_norm2d (SAM2's LayerNorm2d) on x [n, c, hw]. */
void lode_grad_layer_norm2d (float       *dx,
                             float       *dweight,
                             float       *dbias,
                             const float *dy,
                             const float *x,
                             const float *weight,
                             int          n,
                             int          c,
                             int          hw,
                             float        eps);

/* Backward of lode_ops_gelu (exact, erf): dx = dy (Phi(x) + x phi(x)),
 * overwritten; dx may be dy. */
void lode_grad_gelu (float       *dx,
                     const float *dy,
                     const float *x,
                     gsize        count);

/* lode_ops_attention that also keeps the probabilities probs
 * [bh, lq, lk] = softmax(q k^T / sqrt(d)) for the backward pass; q
 * [bh, lq, d], k and v [bh, lk, d], out [bh, lq, d]. */
void lode_grad_attention_forward (float       *out,
                                  float       *probs,
                                  const float *q,
                                  const float *k,
                                  const float *v,
                                  int          bh,
                                  int          lq,
                                  int          lk,
                                  int          d);
/* Its backward: dq, dk, dv overwritten. */
void lode_grad_attention (float       *dq,
                          float       *dk,
                          float       *dv,
                          const float *dout,
                          const float *q,
                          const float *k,
                          const float *v,
                          const float *probs,
                          int          bh,
                          int          lq,
                          int          lk,
                          int          d);

/* Backward of ConvTranspose2d with kernel 2, stride 2, no padding (SAM2's
 * output upscaling) on one image x [c_in, h, w], weight [c_in, c_out, 2, 2],
 * dy [c_out, 2h, 2w]: dx overwritten, dweight and dbias added to (NULL:
 * not wanted). */
void lode_grad_conv_transpose2x2 (float       *dx,
                                  float       *dweight,
                                  float       *dbias,
                                  const float *dy,
                                  const float *x,
                                  const float *weight,
                                  int          c_in,
                                  int          c_out,
                                  int          h,
                                  int          w);

/* Adjoint of lode_ops_resize (LODE_RESIZE_BILINEAR, align_corners=False):
 * dy [nc, out_h, out_w] spread back to dx [nc, h, w], overwritten. */
void lode_grad_resize_bilinear (float       *dx,
                                const float *dy,
                                int          nc,
                                int          h,
                                int          w,
                                int          out_h,
                                int          out_w);

/* The binary cross-entropy of the SAM2 fine-tuning script on logits z and
 * a 0/1 target: p = sigmoid(z),
 *   loss = mean(-t log(p + eps) - (1 - t) log(1 - p + eps))
 * (eps 1e-5 there). Returns the loss; dlogits (NULL: not wanted) is
 * overwritten with scale * dloss/dz. */
double lode_grad_bce_sigmoid (float        *dlogits,
                              const float  *logits,
                              const guint8 *target,
                              gsize         count,
                              double        eps,
                              float         scale);

/* ---- optimiser ---------------------------------------------------------- */

typedef struct {
  float lr;
  float beta1, beta2;
  float eps;
  float weight_decay;
} LodeAdamW;

/* torch.optim.AdamW defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8,
 * weight decay 0.01. */
void lode_adamw_init_defaults (LodeAdamW *opt);

/* One AdamW step (torch semantics) on count parameters, step counting from
 * 1: p -= lr * wd * p; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 * p -= lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps). */
void lode_grad_adamw (float           *param,
                      const float     *grad,
                      float           *m,
                      float           *v,
                      gsize            count,
                      const LodeAdamW *opt,
                      gint64           step);

G_END_DECLS
