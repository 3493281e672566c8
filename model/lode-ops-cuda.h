/* lode-ops-cuda.h: the GPU twins of the kernels in lode-ops.h.
 *
 * Only built when the build has CUDA: callers include this header and call
 * these functions inside #ifdef LODE_WITH_CUDA, and only when
 * lode_device_cuda_count () > 0.
 *
 * Every function has the semantics of its CPU namesake (lode_ops_foo ->
 * lode_ops_cuda_foo), takes device pointers, and returns a status: 0
 * (LODE_CUDA_OK) or one of LodeCudaStatus. lode_ops_cuda_check() turns a
 * status into a GError. Kernels are queued on the context's stream; results
 * are ready after lode_ops_cuda_download() or lode_ops_cuda_synchronize().
 *
 * fp32 in memory throughout. Products and convolutions compute in fp32
 * unless lode_ops_cuda_set_precision() asks for TF32 or bf16 tensor cores
 * (see LodePrecision); in fp32, results match the CPU to fp32 rounding.
 */
#pragma once

#include <stddef.h>

#include "lode-ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  LODE_CUDA_OK = 0,
  LODE_CUDA_ERROR_NO_MEMORY,    /* cudaErrorMemoryAllocation, cuBLAS/cuDNN alloc failures */
  LODE_CUDA_ERROR_RUNTIME,      /* another CUDA runtime error (launch, copy, driver) */
  LODE_CUDA_ERROR_CUBLAS,       /* a cuBLAS call failed */
  LODE_CUDA_ERROR_CUDNN,        /* a cuDNN call failed */
  LODE_CUDA_ERROR_UNSUPPORTED,  /* arguments the GPU twin does not handle */
  LODE_CUDA_ERROR_INVALID,      /* sizes that make no sense (a programmer error) */
} LodeCudaStatus;

/* A CUDA stream with its cuBLAS and cuDNN handles and a workspace that grows
 * on demand. One per thread. */
typedef struct _LodeOpsCuda LodeOpsCuda;

/* The detail of the last failure on this thread (what failed, the CUDA
 * message, the sizes involved). Never NULL. */
const char *lode_ops_cuda_last_message (void);
/* Turns status into a LODE_OPS_ERROR GError (out of memory gets its own
 * code and a message saying what to do); TRUE when status is LODE_CUDA_OK. */
gboolean    lode_ops_cuda_check        (int      status,
                                        GError **error);

int  lode_ops_cuda_new         (LodeOpsCuda **out);
void lode_ops_cuda_free        (LodeOpsCuda  *ctx);
/* How products and convolutions compute from now on. bf16 needs compute
 * capability 8.0 (LODE_CUDA_ERROR_UNSUPPORTED otherwise, the precision
 * unchanged). TF32: ~1e-3 relative error; bf16: ~4e-3 (operands rounded to
 * 8 bits of mantissa, sums in fp32). */
int  lode_ops_cuda_set_precision (LodeOpsCuda  *ctx,
                                  LodePrecision precision);
LodePrecision lode_ops_cuda_get_precision (LodeOpsCuda *ctx);
int  lode_ops_cuda_synchronize (LodeOpsCuda  *ctx);
/* The context's cudaStream_t, for kernels launched elsewhere (lode-grad.cu). */
void *lode_ops_cuda_stream     (LodeOpsCuda  *ctx);

/* ---- device memory ---- */
int  lode_ops_cuda_alloc    (void       **dev,
                             size_t       bytes);
void lode_ops_cuda_release  (void        *dev);
/* Host -> device and device -> host; download waits for the stream. */
int  lode_ops_cuda_upload   (LodeOpsCuda *ctx,
                             void        *dev,
                             const void  *host,
                             size_t       bytes);
int  lode_ops_cuda_download (LodeOpsCuda *ctx,
                             void        *host,
                             const void  *dev,
                             size_t       bytes);
int  lode_ops_cuda_zero     (LodeOpsCuda *ctx,
                             void        *dev,
                             size_t       bytes);
/* Device -> device, bytes long (nothing when dst == src). */
int  lode_ops_cuda_copy     (LodeOpsCuda *ctx,
                             void        *dst,
                             const void  *src,
                             size_t       bytes);
/* For kernels launched in other .cu files: the status of the last launch
 * on this thread, with the message lode_ops_cuda_last_message () gives
 * naming what (e.g. "the U-Net's channel concatenation"). */
int  lode_ops_cuda_launch_status (const char *what);
/* The same for a CUDA runtime error code (cudaError_t) or a cuBLAS status
 * (cublasStatus_t) that a call in another .cu file returned, and for sizes
 * that call refuses: one message for every CUDA file of Lode. */
int  lode_ops_cuda_status        (int         cuda_error,
                                  const char *what);
int  lode_ops_cuda_cublas_status (int         cublas_status,
                                  const char *what);
int  lode_ops_cuda_invalid       (const char *what);

/* ---- matrix products (cuBLAS) ---- */
int lode_ops_cuda_gemm         (LodeOpsCuda *ctx, int trans_a, int trans_b,
                                int m, int n, int k, float alpha,
                                const float *a, const float *b,
                                float beta, float *c);
int lode_ops_cuda_gemm_batched (LodeOpsCuda *ctx, int trans_a, int trans_b,
                                int batch, int m, int n, int k, float alpha,
                                const float *a, long long stride_a,
                                const float *b, long long stride_b,
                                float beta, float *c, long long stride_c);
/* lode_ops_cuda_gemm_batched on matrices whose rows are lda, ldb, ldc floats
 * apart (row-major leading dimensions, at least the stored row lengths):
 * products of column blocks of wider matrices. */
int lode_ops_cuda_gemm_strided (LodeOpsCuda *ctx, int trans_a, int trans_b,
                                int batch, int m, int n, int k, float alpha,
                                const float *a, int lda, long long stride_a,
                                const float *b, int ldb, long long stride_b,
                                float beta, float *c, int ldc, long long stride_c);
int lode_ops_cuda_matmul       (LodeOpsCuda *ctx, float *out, const float *a,
                                const float *b, const float *bias,
                                int m, int n, int k, int b_is_weight);
int lode_ops_cuda_linear       (LodeOpsCuda *ctx, float *out, const float *x,
                                const float *weight, const float *bias,
                                int rows, int in_f, int out_f);

/* ---- convolutions (cuDNN) ---- */
int lode_ops_cuda_conv2d           (LodeOpsCuda *ctx, float *out, const float *in,
                                    const float *weight, const float *bias,
                                    const LodeConvShape *s);
int lode_ops_cuda_conv_transpose2d (LodeOpsCuda *ctx, float *out, const float *in,
                                    const float *weight, const float *bias,
                                    const LodeConvShape *s);
/* The backward pass of lode_ops_cuda_conv2d without the bias (cuDNN's
 * deterministic algorithms first): dx = conv2d^T (dy) when dx is not NULL
 * (added to dx with accumulate_dx), dweight += the filter gradient when
 * dweight is not NULL. lode_grad_cuda_conv2d is the full twin of
 * lode_grad_conv2d. */
int lode_ops_cuda_conv2d_backward  (LodeOpsCuda *ctx, float *dx, float *dweight,
                                    const float *dy, const float *x, const float *weight,
                                    const LodeConvShape *s, int accumulate_dx);

/* ---- precision ---- */
/* out = in rounded to bf16 and back, as the bf16 mode rounds operands: the
 * twin of lode_ops_round_bf16. out may be in. */
int lode_ops_cuda_round_bf16 (LodeOpsCuda *ctx, float *out, const float *in, size_t count);

/* ---- normalisation ---- */
int lode_ops_cuda_layer_norm   (LodeOpsCuda *ctx, float *out, const float *in,
                                const float *weight, const float *bias,
                                int rows, int c, float eps);
int lode_ops_cuda_layer_norm2d (LodeOpsCuda *ctx, float *out, const float *in,
                                const float *weight, const float *bias,
                                int n, int c, int hw, float eps);
int lode_ops_cuda_batch_norm   (LodeOpsCuda *ctx, float *out, const float *in,
                                const float *mean, const float *var,
                                const float *weight, const float *bias,
                                int n, int c, int hw, float eps);

/* ---- element-wise ---- */
int lode_ops_cuda_gelu      (LodeOpsCuda *ctx, float *out, const float *in, size_t count);
int lode_ops_cuda_gelu_tanh (LodeOpsCuda *ctx, float *out, const float *in, size_t count);
int lode_ops_cuda_relu      (LodeOpsCuda *ctx, float *out, const float *in, size_t count);
int lode_ops_cuda_sigmoid   (LodeOpsCuda *ctx, float *out, const float *in, size_t count);
int lode_ops_cuda_add       (LodeOpsCuda *ctx, float *out, const float *a, const float *b,
                             size_t count);
int lode_ops_cuda_mul       (LodeOpsCuda *ctx, float *out, const float *a, const float *b,
                             size_t count);
int lode_ops_cuda_scale     (LodeOpsCuda *ctx, float *out, const float *in, float s,
                             size_t count);
int lode_ops_cuda_add_channel_bias (LodeOpsCuda *ctx, float *out, const float *in,
                                    const float *bias, int n, int c, int hw);
int lode_ops_cuda_add_row_bias     (LodeOpsCuda *ctx, float *out, const float *in,
                                    const float *bias, int rows, int c);

/* ---- softmax and attention ---- */
int lode_ops_cuda_softmax   (LodeOpsCuda *ctx, float *out, const float *in, int rows, int c);
int lode_ops_cuda_attention (LodeOpsCuda *ctx, float *out, const float *q, const float *k,
                             const float *v, int b, int h, int lq, int lk, int d);

/* ---- pooling, resizing, layout ---- */
int lode_ops_cuda_max_pool2d (LodeOpsCuda *ctx, float *out, const float *in,
                              int n, int c, int h, int w, int kernel, int stride, int pad);
int lode_ops_cuda_resize     (LodeOpsCuda *ctx, float *out, const float *in,
                              int nc, int h, int w, int out_h, int out_w,
                              LodeResizeMode mode);
int lode_ops_cuda_window_partition   (LodeOpsCuda *ctx, float *out, const float *in,
                                      int b, int h, int w, int c, int win);
int lode_ops_cuda_window_unpartition (LodeOpsCuda *ctx, float *out, const float *windows,
                                      int b, int h, int w, int c, int win);
int lode_ops_cuda_permute4     (LodeOpsCuda *ctx, float *out, const float *in,
                                const int dims[4], const int perm[4]);
int lode_ops_cuda_nchw_to_nhwc (LodeOpsCuda *ctx, float *out, const float *in,
                                int n, int c, int h, int w);
int lode_ops_cuda_nhwc_to_nchw (LodeOpsCuda *ctx, float *out, const float *in,
                                int n, int c, int h, int w);

#ifdef __cplusplus
}
#endif
