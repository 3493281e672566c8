// lode-sam2-decoder.cu: the few kernels of the SAM2 decoder on the GPU that
// lode-ops.cu does not have, each the twin of the lode-ops.c function of the
// same name (see lode-ops.h for their semantics).
//
// They exist to keep a click to a few dozen launches: a residual add, layer
// norm and the positional-encoding add in one pass; attention straight on
// the rows of the projections (no head split or merge, no score matrix in
// memory); the prompt's Fourier features in one launch; a linear layer's
// bias and ReLU together. Element-wise kernels use grid-stride loops with
// size_t indices; every launch is followed by a cudaGetLastError check.
#include <cuda_runtime.h>
#include <math.h>

#pragma nv_diag_suppress 1217
#include "../lode-sam2-decoder-cuda.h"
#include "../lode-ops-math.h"
#pragma nv_diag_default 1217
#include "lode-cuda-launch.cuh"

// Attention rows: the largest head width a thread keeps in registers, and
// the key count from which one block (rather than one thread) serves a
// query row and head.
#define MAX_HEAD_DIM 64
static const int BLOCK_KEYS_FROM = 256;
static const int ATTN_BLOCK = 128;

static cudaStream_t
stream_of (LodeOpsCuda *ctx)
{
  return (cudaStream_t) lode_ops_cuda_stream (ctx);
}

static int
launched (void)
{
  return lode_ops_cuda_launch_status ("a SAM2 decoder kernel");
}

// ---- add + layer norm (+ positional encoding) --------------------------------

// One block per row. Each thread reads and writes the same columns in every
// pass, and the reductions synchronise the block before the writes, so out
// may be a or b.
__global__ static void
add_layer_norm_kernel (float *out, const float *a, const float *b, const float *weight,
                       const float *bias, int rows, int c, float eps, float *out_pe,
                       const float *pe)
{
  for (int r = blockIdx.x; r < rows; r += gridDim.x)
    {
      size_t base = (size_t) r * c;
      float s = 0.0f;

      for (int j = threadIdx.x; j < c; j += blockDim.x)
        s += a[base + j] + (b ? b[base + j] : 0.0f);
      float mean = block_sum (s) / c;
      s = 0.0f;
      for (int j = threadIdx.x; j < c; j += blockDim.x)
        {
          float dv = a[base + j] + (b ? b[base + j] : 0.0f) - mean;
          s += dv * dv;
        }
      float rstd = 1.0f / sqrtf (block_sum (s) / c + eps);
      for (int j = threadIdx.x; j < c; j += blockDim.x)
        {
          float x = a[base + j] + (b ? b[base + j] : 0.0f);
          float y = (x - mean) * rstd * (weight ? weight[j] : 1.0f) + (bias ? bias[j] : 0.0f);
          out[base + j] = y;
          if (out_pe)
            out_pe[base + j] = y + pe[base + j];
        }
    }
}

extern "C" int
lode_ops_cuda_add_layer_norm (LodeOpsCuda *ctx, float *out, const float *a, const float *b,
                              const float *weight, const float *bias, int rows, int c,
                              float eps, float *out_pe, const float *pe)
{
  if (rows < 0 || c <= 0 || (out_pe && !pe))
    return LODE_CUDA_ERROR_INVALID;
  if (rows == 0)
    return LODE_CUDA_OK;
  unsigned int grid = (unsigned int) (rows < 65535 * 16 ? rows : 65535 * 16);
  add_layer_norm_kernel<<<grid, BLOCK, 0, stream_of (ctx)>>> (out, a, b, weight, bias, rows, c,
                                                              eps, out_pe, pe);
  return launched ();
}

// ---- attention on rows -----------------------------------------------------------

// Few keys: one thread per (query row, head), an online softmax over the keys
// (running maximum m, sum l, weighted values acc).
__global__ static void
attention_rows_thread_kernel (float *out, const float *q, int q_stride, const float *k,
                              int k_stride, const float *v, int v_stride, int lq, int lk,
                              int h, int d, float scale)
{
  GRID_STRIDE (t, (size_t) lq * h)
    {
      size_t i = t / h;
      int hd = (int) (t % h) * d;
      const float *qi = q + i * q_stride + hd;
      float qr[MAX_HEAD_DIM], acc[MAX_HEAD_DIM];
      float m = -INFINITY, l = 0.0f;

#pragma unroll
      for (int x = 0; x < MAX_HEAD_DIM; x++)
        {
          qr[x] = x < d ? qi[x] : 0.0f;
          acc[x] = 0.0f;
        }
      for (int j = 0; j < lk; j++)
        {
          const float *kj = k + (size_t) j * k_stride + hd;
          const float *vj = v + (size_t) j * v_stride + hd;
          float s = 0.0f;

#pragma unroll
          for (int x = 0; x < MAX_HEAD_DIM; x++)
            if (x < d)
              s += qr[x] * kj[x];
          s *= scale;
          float mn = fmaxf (m, s);
          float shrink = expf (m - mn);  // 0 on the first key (m = -inf)
          float e = expf (s - mn);
          l = l * shrink + e;
#pragma unroll
          for (int x = 0; x < MAX_HEAD_DIM; x++)
            if (x < d)
              acc[x] = acc[x] * shrink + e * vj[x];
          m = mn;
        }
      float *o = out + i * ((size_t) h * d) + hd;
#pragma unroll
      for (int x = 0; x < MAX_HEAD_DIM; x++)
        if (x < d)
          o[x] = acc[x] / l;
    }
}

// Many keys: one block per (query row, head); each thread runs an online
// softmax over a stride of the keys, then the block merges the partial
// states, rescaled to the common maximum.
__global__ static void
attention_rows_block_kernel (float *out, const float *q, int q_stride, const float *k,
                             int k_stride, const float *v, int v_stride, int lq, int lk,
                             int h, int d, float scale)
{
  __shared__ float sm[32], sl[32], sacc[32][MAX_HEAD_DIM];
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;

  for (size_t t = blockIdx.x; t < (size_t) lq * h; t += gridDim.x)
    {
      size_t i = t / h;
      int hd = (int) (t % h) * d;
      const float *qi = q + i * q_stride + hd;
      float qr[MAX_HEAD_DIM], acc[MAX_HEAD_DIM];
      float m = -INFINITY, l = 0.0f;

#pragma unroll
      for (int x = 0; x < MAX_HEAD_DIM; x++)
        {
          qr[x] = x < d ? qi[x] : 0.0f;
          acc[x] = 0.0f;
        }
      for (int j = threadIdx.x; j < lk; j += blockDim.x)
        {
          const float *kj = k + (size_t) j * k_stride + hd;
          const float *vj = v + (size_t) j * v_stride + hd;
          float s = 0.0f;

#pragma unroll
          for (int x = 0; x < MAX_HEAD_DIM; x++)
            if (x < d)
              s += qr[x] * kj[x];
          s *= scale;
          float mn = fmaxf (m, s);
          float shrink = expf (m - mn);
          float e = expf (s - mn);
          l = l * shrink + e;
#pragma unroll
          for (int x = 0; x < MAX_HEAD_DIM; x++)
            if (x < d)
              acc[x] = acc[x] * shrink + e * vj[x];
          m = mn;
        }
      // merge within the warp: a thread that saw no key (m = -inf) counts 0
      float wm = warp_max (m);
      float f = m == -INFINITY ? 0.0f : expf (m - wm);
      float wl = warp_sum (l * f);
#pragma unroll
      for (int x = 0; x < MAX_HEAD_DIM; x++)
        if (x < d)
          acc[x] = warp_sum (acc[x] * f);
      __syncthreads ();  // the previous row's merge has read the shared arrays
      if (lane == 0)
        {
          sm[warp] = wm;
          sl[warp] = wl;
#pragma unroll
          for (int x = 0; x < MAX_HEAD_DIM; x++)
            if (x < d)
              sacc[warp][x] = acc[x];
        }
      __syncthreads ();
      // merge the warps: thread x < d writes output column x
      if (threadIdx.x < d)
        {
          float bm = -INFINITY, bl = 0.0f, ba = 0.0f;
          for (int w = 0; w < nwarps; w++)
            bm = fmaxf (bm, sm[w]);
          for (int w = 0; w < nwarps; w++)
            {
              float g = sm[w] == -INFINITY ? 0.0f : expf (sm[w] - bm);
              bl += sl[w] * g;
              ba += sacc[w][threadIdx.x] * g;
            }
          out[i * ((size_t) h * d) + hd + threadIdx.x] = ba / bl;
        }
    }
}

extern "C" int
lode_ops_cuda_attention_rows (LodeOpsCuda *ctx, float *out, const float *q, int q_stride,
                              const float *k, int k_stride, const float *v, int v_stride,
                              int lq, int lk, int h, int d)
{
  if (lq < 0 || lk <= 0 || h <= 0 || d <= 0 || q_stride < h * d || k_stride < h * d ||
      v_stride < h * d)
    return LODE_CUDA_ERROR_INVALID;
  if (d > MAX_HEAD_DIM)
    return LODE_CUDA_ERROR_UNSUPPORTED;
  if (lq == 0)
    return LODE_CUDA_OK;
  float scale = 1.0f / sqrtf ((float) d);
  size_t pairs = (size_t) lq * h;
  if (lk >= BLOCK_KEYS_FROM)
    {
      unsigned int grid = (unsigned int) (pairs < MAX_GRID ? pairs : MAX_GRID);
      attention_rows_block_kernel<<<grid, ATTN_BLOCK, 0, stream_of (ctx)>>> (
        out, q, q_stride, k, k_stride, v, v_stride, lq, lk, h, d, scale);
    }
  else
    attention_rows_thread_kernel<<<grid_for (pairs, 64), 64, 0, stream_of (ctx)>>> (
      out, q, q_stride, k, k_stride, v, v_stride, lq, lk, h, d, scale);
  return launched ();
}

// ---- prompt encoding ---------------------------------------------------------------

__global__ static void
point_encoding_kernel (float *out, const float *points, const float *gauss,
                       const float *label_embed, int n, int c, float size)
{
  int half = c / 2;
  const float two_pi = (float) (2.0 * 3.14159265358979323846);

  GRID_STRIDE (t, (size_t) n * half)
    {
      size_t i = t / half;
      int j = (int) (t % half);
      float *row = out + i * c;
      int label = (int) points[3 * i + 2];

      if (label_embed && label < 0)
        {
          row[j] = label_embed[j];
          row[half + j] = label_embed[half + j];
          continue;
        }
      float cx = 2.0f * ((points[3 * i] + 0.5f) / size) - 1.0f;
      float cy = 2.0f * ((points[3 * i + 1] + 0.5f) / size) - 1.0f;
      float a = two_pi * (cx * gauss[j] + cy * gauss[half + j]);
      float sn = sinf (a), cs = cosf (a);
      if (label_embed)
        {
          const float *e = label_embed + (size_t) (label + 1) * c;
          sn += e[j];
          cs += e[half + j];
        }
      row[j] = sn;
      row[half + j] = cs;
    }
}

extern "C" int
lode_ops_cuda_point_encoding (LodeOpsCuda *ctx, float *out, const float *points,
                              const float *gauss, const float *label_embed, int n, int c,
                              float size)
{
  if (n < 0 || c <= 0 || c % 2 != 0 || !(size > 0.0f))
    return LODE_CUDA_ERROR_INVALID;
  if (n == 0)
    return LODE_CUDA_OK;
  size_t work = (size_t) n * (c / 2);
  point_encoding_kernel<<<grid_for (work), BLOCK, 0, stream_of (ctx)>>> (out, points, gauss,
                                                                         label_embed, n, c, size);
  return launched ();
}

// ---- bias + ReLU, and the 2 x 2 unfold of the transposed convolutions -------------

__global__ static void
bias_relu_kernel (float *out, const float *in, const float *bias, size_t n, int c)
{
  GRID_STRIDE (i, n)
    {
      float x = in[i] + bias[i % (size_t) c];
      out[i] = x > 0.0f ? x : 0.0f;
    }
}

extern "C" int
lode_ops_cuda_bias_relu (LodeOpsCuda *ctx, float *out, const float *in, const float *bias,
                         int rows, int c)
{
  if (rows < 0 || c <= 0)
    return LODE_CUDA_ERROR_INVALID;
  size_t n = (size_t) rows * c;
  if (n == 0)
    return LODE_CUDA_OK;
  bias_relu_kernel<<<grid_for (n), BLOCK, 0, stream_of (ctx)>>> (out, in, bias, n, c);
  return launched ();
}

// out[co, 2i + a, 2j + b] = cols[co, 2a + b, i, j] + bias[co] (+ add) (GELU).
__global__ static void
unfold_2x2_kernel (float *out, const float *cols, const float *bias, const float *add,
                   int c, int side, int gelu)
{
  size_t hw = (size_t) side * side, ow = 2 * (size_t) side;
  GRID_STRIDE (o, (size_t) c * 4 * hw)
    {
      size_t x = o % ow, y = (o / ow) % ow, co = o / (ow * ow);
      size_t sub = 2 * (y % 2) + x % 2;
      float val = cols[(co * 4 + sub) * hw + (y / 2) * side + x / 2] + (bias ? bias[co] : 0.0f);
      if (add)
        val += add[o];
      out[o] = gelu ? lode_gelu_approx (val) : val;
    }
}

extern "C" int
lode_ops_cuda_unfold_2x2 (LodeOpsCuda *ctx, float *out, const float *cols, const float *bias,
                          const float *add, int c, int side, int gelu)
{
  if (c < 0 || side < 0)
    return LODE_CUDA_ERROR_INVALID;
  size_t n = (size_t) c * 4 * side * side;
  if (n == 0)
    return LODE_CUDA_OK;
  unfold_2x2_kernel<<<grid_for (n), BLOCK, 0, stream_of (ctx)>>> (out, cols, bias, add, c, side,
                                                                  gelu);
  return launched ();
}
