/* lode-unet-cuda.h: the GPU kernels the U-Net needs beyond lode-ops-cuda.h
 * and lode-grad-cuda.h (model/cuda/lode-unet.cu).
 *
 * Built only with CUDA; call inside #ifdef LODE_WITH_CUDA and only when
 * lode_device_cuda_count () > 0. Device pointers, a LodeCudaStatus return,
 * work queued on the context's stream. Each has a CPU twin, and
 * tests/test-unet-gpu.c compares them:
 *   lode_unet_cuda_invstd          lode_grad_invstd
 *   lode_unet_cuda_concat_channels lode_grad_concat_channels
 *   lode_unet_cuda_split_channels  lode_grad_split_channels
 */
#pragma once

#include "lode-ops-cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Device to device, bytes long, on the context's stream. */
/* invstd[j] = 1 / sqrt (var[j] + eps), in double as the CPU. */
int lode_unet_cuda_invstd          (LodeOpsCuda *ctx, float *invstd, const float *var, int c,
                                    float eps);
/* out [n, ca + cb, hw] = a [n, ca, hw] then b [n, cb, hw] (b may be NULL when cb is 0). */
int lode_unet_cuda_concat_channels (LodeOpsCuda *ctx, float *out, const float *a, int ca,
                                    const float *b, int cb, int n, int hw);
/* da (may be NULL) = the first ca channels of dout; db (may be NULL) += the
 * last cb. */
int lode_unet_cuda_split_channels  (LodeOpsCuda *ctx, float *da, float *db, const float *dout,
                                    int ca, int cb, int n, int hw);

#ifdef __cplusplus
}
#endif
