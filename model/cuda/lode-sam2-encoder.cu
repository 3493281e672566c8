// lode-sam2-encoder.cu: the SAM2 image encoder's GPU kernels that
// lode-ops.cu has no twin for. CPU twins: the lode_sam2_encoder_cpu_*
// functions of model/lode-sam2-encoder.c (compared in
// tests/test-sam2-encoder-gpu.c).
//
// The windowed attention reads q, k and v where the qkv projection left
// them (rows 3 * dim apart), through lode_ops_cuda_gemm_strided, so that its
// products follow the context's precision like every other product and
// every kernel of the encoder stays in the context's queue.
#include <cuda_runtime.h>
#include <math.h>

#pragma nv_diag_suppress 1217
#include "../lode-sam2-encoder-cuda.h"
#pragma nv_diag_default 1217
#include "lode-cuda-launch.cuh"

struct _LodeSam2Cuda
{
  LodeOpsCuda *ops;
};

// Attention scores formed at once, at most (64 MiB), unless one query row
// of every window of a group is already more.
static const size_t SCORE_FLOATS = (size_t) 1 << 24;

static int
check_cuda (cudaError_t err, const char *what)
{
  return lode_ops_cuda_status ((int) err, what);
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

  ctx->ops = ops;
  *out = ctx;
  return LODE_CUDA_OK;
}

extern "C" void
lode_sam2_cuda_free (LodeSam2Cuda *ctx)
{
  delete ctx;
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

        // scores [nw][nr, lk] = scale q_h [nr, hd] k_h [lk, hd]^T, the
        // windows lq (lk) rows of q (k) apart
        TRY (lode_ops_cuda_gemm_strided (ctx->ops, 0, 1, nw, nr, lk, hd, scale,
                                         qh, q_stride, (long long) lq * q_stride,
                                         kh, kv_stride, (long long) lk * kv_stride,
                                         0.0f, scratch, lk, (long long) nr * lk));
        TRY (lode_ops_cuda_softmax (ctx->ops, scratch, scratch, nw * nr, lk));
        // out_h [nw][nr, hd] (rows dim apart) = scores [nr, lk] v_h [lk, hd]
        TRY (lode_ops_cuda_gemm_strided (ctx->ops, 0, 0, nw, nr, hd, lk, 1.0f,
                                         scratch, lk, (long long) nr * lk,
                                         vh, kv_stride, (long long) lk * kv_stride,
                                         0.0f, oh, dim, (long long) lq * dim));
      }
  return LODE_CUDA_OK;
}

// ---- 1x1 convolution from channels-last to channel-major -------------------------

extern "C" int
lode_sam2_cuda_conv1x1_to_nchw (LodeSam2Cuda *ctx, float *out, const float *x,
                                const float *w, const float *b, int hw, int c_in, int c_out)
{
  REQUIRE (hw >= 0 && c_in > 0 && c_out > 0, "conv1x1_to_nchw");
  if (hw == 0)
    return LODE_CUDA_OK;
  // out [c_out, hw] = w [c_out, c_in] x [hw, c_in]^T
  TRY (lode_ops_cuda_gemm (ctx->ops, 0, 1, c_out, hw, c_in, 1.0f, w, x, 0.0f, out));
  if (b != NULL)
    TRY (lode_ops_cuda_add_channel_bias (ctx->ops, out, out, b, 1, c_out, hw));
  return LODE_CUDA_OK;
}
