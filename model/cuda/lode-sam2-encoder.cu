// lode-sam2-encoder.cu: the SAM2 image encoder's GPU kernels that
// lode-ops.cu has no twin for. CPU twins: the lode_sam2_encoder_cpu_*
// functions of model/lode-sam2-encoder.c (compared in
// tests/test-sam2-encoder-gpu.c).
//
// The windowed attention reads q, k and v where the qkv projection left
// them (rows 3 * dim apart), so its products need leading dimensions that
// lode_ops_cuda_gemm_batched does not take: this file keeps its own cuBLAS
// handle, bound to the LodeOpsCuda context's stream so that every kernel of
// the encoder stays in one queue. cuBLAS is column-major: a row-major
// C [m, n] = A B is the column-major C^T = B^T A^T, so each call below names
// the row-major operands in swapped order with their row lengths as leading
// dimensions.
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <math.h>

#pragma nv_diag_suppress 1217
#include "../lode-sam2-encoder-cuda.h"
#pragma nv_diag_default 1217
#include "lode-cuda-launch.cuh"

struct _LodeSam2Cuda
{
  LodeOpsCuda *ops;
  cublasHandle_t cublas;
};

// Attention scores formed at once, at most (64 MiB), unless one query row
// of every window of a group is already more.
static const size_t SCORE_FLOATS = (size_t) 1 << 24;

static int
check_cuda (cudaError_t err, const char *what)
{
  return lode_ops_cuda_status ((int) err, what);
}

static int
check_cublas (cublasStatus_t st, const char *what)
{
  return lode_ops_cuda_cublas_status ((int) st, what);
}

#define TRY(expr) \
  do { int s_ = (expr); if (s_ != LODE_CUDA_OK) return s_; } while (0)
#define REQUIRE(cond, what) \
  do { if (!(cond)) return lode_ops_cuda_invalid (what); } while (0)

static cudaStream_t
stream_of (LodeSam2Cuda *ctx)
{
  return (cudaStream_t) lode_ops_cuda_stream (ctx->ops);
}

// ---- context ------------------------------------------------------------------

extern "C" int
lode_sam2_cuda_new (LodeOpsCuda *ops, LodeSam2Cuda **out)
{
  LodeSam2Cuda *ctx = new LodeSam2Cuda ();
  int s;

  *out = NULL;
  ctx->ops = ops;
  s = check_cublas (cublasCreate (&ctx->cublas), "cublasCreate");
  if (s == LODE_CUDA_OK)
    s = check_cublas (cublasSetStream (ctx->cublas, stream_of (ctx)), "cublasSetStream");
  if (s == LODE_CUDA_OK)
    s = lode_sam2_cuda_set_tf32 (ctx, 0);
  if (s != LODE_CUDA_OK)
    {
      lode_sam2_cuda_free (ctx);
      return s;
    }
  *out = ctx;
  return LODE_CUDA_OK;
}

extern "C" void
lode_sam2_cuda_free (LodeSam2Cuda *ctx)
{
  if (ctx == NULL)
    return;
  if (ctx->cublas)
    cublasDestroy (ctx->cublas);
  delete ctx;
}

extern "C" int
lode_sam2_cuda_set_tf32 (LodeSam2Cuda *ctx, int allow)
{
  // CUBLAS_DEFAULT_MATH never uses TF32 for sgemm: fp32 products, as the CPU
  return check_cublas (cublasSetMathMode (ctx->cublas, allow ? CUBLAS_TF32_TENSOR_OP_MATH
                                                             : CUBLAS_DEFAULT_MATH),
                       "cublasSetMathMode");
}

// ---- 2x2 max pooling of channels-last rows with a stride ----------------------

__global__ static void
pool2x2_kernel (float *out, const float *in, size_t in_stride, int h, int w, int c, size_t total)
{
  size_t oh = (size_t) (h / 2), ow = (size_t) (w / 2);

  for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (size_t) blockDim.x * gridDim.x)
    {
      size_t ch = i % (size_t) c, p = i / (size_t) c;
      size_t x = p % ow, t = p / ow;
      size_t y = t % oh, img = t / oh;
      const float *p00 = in + ((img * h + 2 * y) * w + 2 * x) * in_stride + ch;
      const float *p10 = p00 + (size_t) w * in_stride;
      float a = p00[0], b = p00[in_stride], d = p10[0], e = p10[in_stride];
      float m0 = a > b ? a : b, m1 = d > e ? d : e;

      // out is [n, oh, ow, c] contiguous: its index is i
      out[i] = m0 > m1 ? m0 : m1;
    }
}

extern "C" int
lode_sam2_cuda_pool2x2_nhwc (LodeSam2Cuda *ctx, float *out, const float *in, int in_stride,
                             int n, int h, int w, int c)
{
  size_t total = (size_t) n * (h / 2) * (w / 2) * c;

  REQUIRE (n >= 0 && h >= 0 && w >= 0 && c > 0 && in_stride >= c, "pool2x2_nhwc");
  if (total == 0)
    return LODE_CUDA_OK;
  pool2x2_kernel<<<grid_for (total), BLOCK, 0, stream_of (ctx)>>> (out, in, (size_t) in_stride,
                                                                   h, w, c, total);
  return check_cuda (cudaGetLastError (), "pool2x2_nhwc");
}

// ---- windowed attention --------------------------------------------------------

// Query rows per pass: the scores of every window of the call for those rows
// stay under SCORE_FLOATS.
static int
attention_rows (int nw, int lq, int lk)
{
  size_t per_row = (size_t) nw * lk, rows;

  if (per_row == 0)
    return lq > 0 ? lq : 1;
  rows = SCORE_FLOATS / per_row;
  if (rows < 1)
    rows = 1;
  if (rows > (size_t) lq)
    rows = (size_t) lq;
  return (int) rows;
}

// A bound for every call with at most nw windows (the last group of a block
// has fewer, hence more rows per pass): a pass of n windows and r rows takes
// n * r * lk <= min (n * lq * lk, max (SCORE_FLOATS, n * lk)) floats.
extern "C" size_t
lode_sam2_cuda_attention_scratch (int nw, int lq, int lk)
{
  size_t all, pass;

  if (nw <= 0 || lq <= 0 || lk <= 0)
    return 0;
  all = (size_t) nw * lq * lk;
  pass = (size_t) nw * lk;
  if (pass < SCORE_FLOATS)
    pass = SCORE_FLOATS;
  return all < pass ? all : pass;
}

// One head at a time, every window of the call in one strided batch, a block
// of query rows per pass:
//   scores [nw][nr, lk] = scale * q_h [nw][nr, hd] k_h [nw][lk, hd]^T
//   softmax over each row of scores (the scale already applied, as the CPU)
//   out_h [nw][nr, hd] = scores v_h [nw][lk, hd]
extern "C" int
lode_sam2_cuda_attention (LodeSam2Cuda *ctx, float *out, const float *q, int q_stride,
                          const float *k, const float *v, int kv_stride,
                          int nw, int heads, int lq, int lk, int hd, float *scratch)
{
  const float zero = 0.0f, one = 1.0f;
  float scale;
  int dim = heads * hd, rows;

  REQUIRE (nw >= 0 && heads > 0 && lq >= 0 && lk > 0 && hd > 0
           && q_stride >= dim && kv_stride >= dim, "attention");
  if (nw == 0 || lq == 0)
    return LODE_CUDA_OK;
  scale = 1.0f / sqrtf ((float) hd);
  rows = attention_rows (nw, lq, lk);
  for (int h = 0; h < heads; h++)
    for (int r0 = 0; r0 < lq; r0 += rows)
      {
        int nr = lq - r0 < rows ? lq - r0 : rows;
        const float *qh = q + (size_t) r0 * q_stride + (size_t) h * hd;
        const float *kh = k + (size_t) h * hd;
        const float *vh = v + (size_t) h * hd;
        float *oh = out + (size_t) r0 * dim + (size_t) h * hd;

        // column-major scores^T [lk, nr] (ld lk) = op(A) op(B): A = k_h,
        // column-major [hd, lk] with ld kv_stride, transposed; B = q_h,
        // column-major [hd, nr] with ld q_stride
        TRY (check_cublas (cublasSgemmStridedBatched (ctx->cublas, CUBLAS_OP_T, CUBLAS_OP_N,
                                                      lk, nr, hd, &scale,
                                                      kh, kv_stride, (long long) lk * kv_stride,
                                                      qh, q_stride, (long long) lq * q_stride,
                                                      &zero, scratch, lk, (long long) nr * lk, nw),
                           "attention scores (cublasSgemmStridedBatched)"));
        TRY (lode_ops_cuda_softmax (ctx->ops, scratch, scratch, nw * nr, lk));
        // column-major out_h^T [hd, nr] (ld dim) = v_h^T [hd, lk] (ld
        // kv_stride) scores^T [lk, nr] (ld lk)
        TRY (check_cublas (cublasSgemmStridedBatched (ctx->cublas, CUBLAS_OP_N, CUBLAS_OP_N,
                                                      hd, nr, lk, &one,
                                                      vh, kv_stride, (long long) lk * kv_stride,
                                                      scratch, lk, (long long) nr * lk,
                                                      &zero, oh, dim, (long long) lq * dim, nw),
                           "attention output (cublasSgemmStridedBatched)"));
      }
  return LODE_CUDA_OK;
}

// ---- 1x1 convolution from channels-last to channel-major -------------------------

extern "C" int
lode_sam2_cuda_conv1x1_to_nchw (LodeSam2Cuda *ctx, float *out, const float *x,
                                const float *w, const float *b, int hw, int c_in, int c_out)
{
  const float zero = 0.0f, one = 1.0f;

  REQUIRE (hw >= 0 && c_in > 0 && c_out > 0, "conv1x1_to_nchw");
  if (hw == 0)
    return LODE_CUDA_OK;
  // row-major out [c_out, hw] = w x^T is column-major out^T [hw, c_out]
  // (ld hw) = op(A) op(B): A = x, column-major [c_in, hw] with ld c_in,
  // transposed; B = w, column-major [c_in, c_out] with ld c_in
  TRY (check_cublas (cublasSgemm (ctx->cublas, CUBLAS_OP_T, CUBLAS_OP_N, hw, c_out, c_in, &one,
                                  x, c_in, w, c_in, &zero, out, hw),
                     "conv1x1_to_nchw (cublasSgemm)"));
  if (b != NULL)
    TRY (lode_ops_cuda_add_channel_bias (ctx->ops, out, out, b, 1, c_out, hw));
  return LODE_CUDA_OK;
}
