/* lode-prithvi-cuda.h: the GPU kernels the Prithvi encoder and its UperNet
 * decoder need beyond lode-ops-cuda.h (model/cuda/lode-prithvi.cu).
 *
 * Built only with CUDA: call inside #ifdef LODE_WITH_CUDA (LODE_HAVE_CUDA
 * in tests) and only when lode_device_cuda_count () > 0. Device pointers,
 * work queued on the stream of ctx, a LodeCudaStatus return; the detail of
 * a failure is in lode_ops_cuda_last_message (). Each kernel has a CPU
 * twin with the same semantics, compared by tests/test-prithvi-gpu.c:
 *   heads_copy         lode_prithvi_heads_copy        (lode-prithvi-backend.h)
 *   tokens_assemble    lode_prithvi_tokens_assemble   (lode-prithvi-backend.h)
 *   tokens_to_image    lode_prithvi_tokens_to_image   (lode-prithvi.h)
 *   adaptive_avg_pool  lode_upernet_adaptive_avg_pool (lode-upernet.h)
 *   gelu_backward      lode_grad_gelu                 (lode-grad.h)
 *   resize_backward    lode_upernet_resize_backward   (lode-upernet.h)
 *   adaptive_avg_pool_backward  lode_upernet_adaptive_avg_pool_backward
 *   up2_backward       lode_upernet_up2_backward      (lode-upernet.h)
 *   linear_backward    lode_grad_linear               (lode-grad.h)
 *   layer_norm_backward  lode_grad_layer_norm         (lode-grad.h)
 *   attention_forward  lode_grad_attention_forward    (lode-grad.h)
 *   attention_backward lode_grad_attention            (lode-grad.h)
 *   image_to_tokens_add  lode_prithvi_image_to_tokens_add (lode-prithvi-backend.h)
 */
#pragma once

#include <stddef.h>

#include "lode-ops-cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Device to device, count floats. */
int lode_prithvi_cuda_heads_copy        (LodeOpsCuda *ctx, float *rows, size_t stride, int col,
                                         float *heads_major, int n, int tokens, int heads, int hd,
                                         int to_heads);
int lode_prithvi_cuda_tokens_assemble   (LodeOpsCuda *ctx, float *x, const float *patches,
                                         const float *pos, const float *enc, const float *cls,
                                         int n, int l, int e);
int lode_prithvi_cuda_tokens_to_image   (LodeOpsCuda *ctx, float *out, const float *tokens,
                                         int n, int gh, int gw, int e);
int lode_prithvi_cuda_adaptive_avg_pool (LodeOpsCuda *ctx, float *out, const float *in, int nc,
                                         int h, int w, int out_h, int out_w);

/* ---- backward ---- */
int lode_prithvi_cuda_gelu_backward     (LodeOpsCuda *ctx, float *dx, const float *dy, const float *x,
                                         size_t count);
int lode_prithvi_cuda_resize_backward   (LodeOpsCuda *ctx, float *dx, const float *dy, int nc, int h,
                                         int w, int oh, int ow, int align, int accumulate);
int lode_prithvi_cuda_adaptive_avg_pool_backward (LodeOpsCuda *ctx, float *dx, const float *dy,
                                                  int nc, int h, int w, int out_h, int out_w);
int lode_prithvi_cuda_up2_backward      (LodeOpsCuda *ctx, float *dweight, float *dbias, float *dx,
                                         const float *x, const float *dy, const float *weight,
                                         int n, int c_in, int c_out, int h, int w);

/* ---- backward of the encoder's transformer blocks ---- */
/* dweight, dbias added to (NULL: not wanted); dx overwritten (NULL: not
 * wanted). cuBLAS for the products, the bias summed over rows in order. */
int lode_prithvi_cuda_linear_backward   (LodeOpsCuda *ctx, float *dx, float *dweight, float *dbias,
                                         const float *dy, const float *x, const float *weight,
                                         int rows, int in_f, int out_f);
/* dx overwritten, dweight and dbias added to (NULL: not wanted); dx may be
 * dy only when neither is wanted. A scratch of 2 rows doubles. */
int lode_prithvi_cuda_layer_norm_backward (LodeOpsCuda *ctx, float *dx, float *dweight, float *dbias,
                                           const float *dy, const float *x, const float *weight,
                                           int rows, int c, float eps);
/* out [bh, lq, d] and probs [bh, lq, lk] kept for the backward. */
int lode_prithvi_cuda_attention_forward (LodeOpsCuda *ctx, float *out, float *probs, const float *q,
                                         const float *k, const float *v, int bh, int lq, int lk,
                                         int d);
/* dq, dk, dv overwritten; a scratch of bh lq lk floats. */
int lode_prithvi_cuda_attention_backward (LodeOpsCuda *ctx, float *dq, float *dk, float *dv,
                                          const float *dout, const float *q, const float *k,
                                          const float *v, const float *probs, int bh, int lq,
                                          int lk, int d);
/* image [n, e, gh gw] added to the patch tokens of tokens [n, 1 + gh gw, e]. */
int lode_prithvi_cuda_image_to_tokens_add (LodeOpsCuda *ctx, float *tokens, const float *image,
                                           int n, int gh, int gw, int e);

#ifdef __cplusplus
}
#endif
