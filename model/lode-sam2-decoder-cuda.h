/* lode-sam2-decoder-cuda.h: the CUDA kernels of the SAM2 decoder on the
 * GPU (model/cuda/lode-sam2-decoder.cu).
 *
 * Built only with CUDA; call inside #ifdef LODE_WITH_CUDA and only when
 * lode_device_cuda_count () > 0. Each function is the twin of the lode-ops.h
 * function of the same name without "cuda_" (the semantics are documented
 * there), takes device pointers, queues its work on the context's stream and
 * returns a LodeCudaStatus. tests/test-sam2-decoder-gpu.c compares each with
 * its CPU twin.
 */
#pragma once

#include "lode-ops-cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

int lode_ops_cuda_add_layer_norm (LodeOpsCuda *ctx, float *out, const float *a,
                                  const float *b, const float *weight, const float *bias,
                                  int rows, int c, float eps, float *out_pe,
                                  const float *pe);
/* Supports d <= 64 (LODE_CUDA_ERROR_UNSUPPORTED beyond). */
int lode_ops_cuda_attention_rows (LodeOpsCuda *ctx, float *out,
                                  const float *q, int q_stride,
                                  const float *k, int k_stride,
                                  const float *v, int v_stride,
                                  int lq, int lk, int h, int d);
int lode_ops_cuda_point_encoding (LodeOpsCuda *ctx, float *out, const float *points,
                                  const float *gauss, const float *label_embed,
                                  int n, int c, float size);
int lode_ops_cuda_bias_relu      (LodeOpsCuda *ctx, float *out, const float *in,
                                  const float *bias, int rows, int c);
int lode_ops_cuda_unfold_2x2     (LodeOpsCuda *ctx, float *out, const float *cols,
                                  const float *bias, const float *add, int c, int side,
                                  int gelu);

#ifdef __cplusplus
}
#endif
