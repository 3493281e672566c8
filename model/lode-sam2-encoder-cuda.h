/* lode-sam2-encoder-cuda.h: the GPU kernels of the SAM2 image encoder that
 * lode-ops-cuda.h has no twin for (model/cuda/lode-sam2-encoder.cu).
 *
 * Only built when the build has CUDA (LODE_WITH_CUDA). Each kernel has the
 * semantics of its CPU twin in lode-sam2-encoder.h
 * (lode_sam2_encoder_cpu_pool2x2_nhwc, _cpu_attention,
 * _cpu_conv1x1_to_nchw: the CPU encoder's own kernels), takes device
 * pointers, queues its work on the LodeOpsCuda context's stream and returns
 * 0 (LODE_CUDA_OK) or a LodeCudaStatus, the detail in
 * lode_ops_cuda_last_message ().
 */
#pragma once

#include <stddef.h>

#include "lode-ops-cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The encoder's kernels on ops's stream, with ops's precision. ops must
 * outlive it. */
typedef struct _LodeSam2Cuda LodeSam2Cuda;

int  lode_sam2_cuda_new      (LodeOpsCuda   *ops,
                              LodeSam2Cuda **out);
void lode_sam2_cuda_free     (LodeSam2Cuda  *ctx);

/* out [n, h/2, w/2, c] = 2x2 max pooling, stride 2, of in [n, h, w, c]
 * whose pixels are in_stride floats apart. */
int lode_sam2_cuda_pool2x2_nhwc (LodeSam2Cuda *ctx, float *out, const float *in,
                                 int in_stride, int n, int h, int w, int c);

/* Floats of scratch lode_sam2_cuda_attention needs for any call with at
 * most nw windows of these sizes (bounded by 2^24 floats unless a single
 * query row of every window is more). */
size_t lode_sam2_cuda_attention_scratch (int nw, int lq, int lk);

/* softmax(q k^T / sqrt(hd)) v for nw windows and heads heads: q [nw, lq,
 * heads*hd] rows q_stride apart, k and v [nw, lk, heads*hd] rows kv_stride
 * apart, out [nw, lq, heads*hd] contiguous. scratch: the floats above. */
int lode_sam2_cuda_attention (LodeSam2Cuda *ctx, float *out, const float *q, int q_stride,
                              const float *k, const float *v, int kv_stride,
                              int nw, int heads, int lq, int lk, int hd, float *scratch);

/* out [c_out, hw] = w [c_out, c_in] x [hw, c_in]^T + b [c_out]. */
int lode_sam2_cuda_conv1x1_to_nchw (LodeSam2Cuda *ctx, float *out, const float *x,
                                    const float *w, const float *b,
                                    int hw, int c_in, int c_out);

#ifdef __cplusplus
}
#endif
