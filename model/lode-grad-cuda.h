/* lode-grad-cuda.h: the GPU twins of the backward kernels in lode-grad.h.
 *
 * Built only with CUDA; call inside #ifdef LODE_WITH_CUDA and only when
 * lode_device_cuda_count () > 0. Device pointers, the semantics of the CPU
 * namesake (lode_grad_foo -> lode_grad_cuda_foo), a LodeCudaStatus return,
 * work queued on the context's stream. tests/test-grad-gpu.c compares each
 * with its CPU twin.
 */
#pragma once

#include "lode-ops-cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

/* im2col (one image at a time into a scratch of c_in/groups*kh*kw x oh*ow
 * floats) + cuBLAS for the weight, cuBLAS + col2im for the input. */
int lode_grad_cuda_conv2d (LodeOpsCuda *ctx, float *dx, float *dweight, float *dbias,
                           const float *dy, const float *x, const float *weight,
                           const LodeConvShape *s, int accumulate_dx);

int lode_grad_cuda_batch_norm_train (LodeOpsCuda *ctx, float *out, const float *in,
                                     const float *weight, const float *bias,
                                     float *running_mean, float *running_var,
                                     float *save_mean, float *save_invstd,
                                     int n, int c, int hw, float eps, float momentum);
int lode_grad_cuda_batch_norm (LodeOpsCuda *ctx, float *dx, float *dweight, float *dbias,
                               const float *dy, const float *x, const float *mean,
                               const float *invstd, const float *weight,
                               int n, int c, int hw, int batch_stats);

int lode_grad_cuda_relu (LodeOpsCuda *ctx, float *dx, const float *dy, const float *y,
                         size_t count);
int lode_grad_cuda_max_pool2d_forward (LodeOpsCuda *ctx, float *out, int *argmax,
                                       const float *in, int n, int c, int h, int w,
                                       int kernel, int stride, int pad);
int lode_grad_cuda_max_pool2d (LodeOpsCuda *ctx, float *dx, const float *dy, const int *argmax,
                               int n, int c, int h, int w, int oh, int ow, int kernel,
                               int stride, int pad, int accumulate);
int lode_grad_cuda_upsample2x_forward (LodeOpsCuda *ctx, float *out, const float *in,
                                       int nc, int h, int w);
int lode_grad_cuda_upsample2x (LodeOpsCuda *ctx, float *dx, const float *dy, int nc, int h, int w);

/* The loss comes back through loss_host (copied after the stream's work). */
int lode_grad_cuda_cross_entropy (LodeOpsCuda *ctx, float *dlogits, const float *logits,
                                  const short *target, const float *class_weight,
                                  int n, int c, int hw, int ignore_index, float scale,
                                  double *loss_host);

int lode_grad_cuda_adamw (LodeOpsCuda *ctx, float *param, const float *grad, float *m, float *v,
                          size_t count, float lr, float beta1, float beta2, float eps,
                          float weight_decay, long long step);

#ifdef __cplusplus
}
#endif
