// lode-prithvi.cu: the GPU kernels of lode-prithvi-cuda.h (token layouts of
// the Prithvi encoder, the adaptive average pooling of UperNet's pyramid
// pooling module). One thread per output element, grid-stride loops with
// size_t indices, launched on the context's stream and checked with
// cudaGetLastError after each launch. The CPU twins are named in the header.
#include <cuda_runtime.h>
#include <stdarg.h>
#include <stdio.h>

#pragma nv_diag_suppress 1217
#include "../lode-prithvi-cuda.h"
#pragma nv_diag_default 1217
#include "lode-cuda-launch.cuh"

static cudaStream_t
stream_of (LodeOpsCuda *ctx)
{
  return (cudaStream_t) lode_ops_cuda_stream (ctx);
}

static int
check (cudaError_t err, const char *what)
{
  return lode_ops_cuda_status ((int) err, what);
}

// One thread per element of the head-major [n, heads, tokens, hd].
__global__ void
heads_copy_kernel (float *rows, size_t stride, int col, float *hm, size_t total, int tokens,
                   int heads, int hd, int to_heads)
{
  GRID_STRIDE (i, total)
    {
      int d = (int) (i % hd);
      size_t r = i / hd;
      int t = (int) (r % tokens);
      r /= tokens;
      int hh = (int) (r % heads);
      size_t b = r / heads;
      float *row = rows + (b * tokens + t) * stride + col + (size_t) hh * hd + d;

      if (to_heads)
        hm[i] = *row;
      else
        *row = hm[i];
    }
}

extern "C" int
lode_prithvi_cuda_heads_copy (LodeOpsCuda *ctx, float *rows, size_t stride, int col,
                              float *heads_major, int n, int tokens, int heads, int hd,
                              int to_heads)
{
  if (n < 0 || tokens < 0 || heads <= 0 || hd <= 0 || col < 0)
    return lode_ops_cuda_invalid ("heads_copy");
  size_t total = (size_t) n * tokens * heads * hd;
  if (total == 0)
    return LODE_CUDA_OK;
  heads_copy_kernel<<<grid_for (total), BLOCK, 0, stream_of (ctx)>>> (
      rows, stride, col, heads_major, total, tokens, heads, hd, to_heads);
  return check (cudaGetLastError (), "heads_copy");
}

// One thread per element of x [n, 1 + l, e].
__global__ void
tokens_assemble_kernel (float *x, const float *patches, const float *pos, const float *enc,
                        const float *cls, size_t total, int l, int e)
{
  GRID_STRIDE (i, total)
    {
      int j = (int) (i % e);
      size_t r = i / e;
      int t = (int) (r % (l + 1));
      size_t b = r / (l + 1);

      if (t == 0)
        x[i] = cls[j];
      else
        x[i] = patches[(b * e + j) * l + (t - 1)] + pos[(size_t) (t - 1) * e + j]
               + enc[b * e + j];
    }
}

extern "C" int
lode_prithvi_cuda_tokens_assemble (LodeOpsCuda *ctx, float *x, const float *patches,
                                   const float *pos, const float *enc, const float *cls,
                                   int n, int l, int e)
{
  if (n < 0 || l < 0 || e <= 0)
    return lode_ops_cuda_invalid ("tokens_assemble");
  size_t total = (size_t) n * (l + 1) * e;
  if (total == 0)
    return LODE_CUDA_OK;
  tokens_assemble_kernel<<<grid_for (total), BLOCK, 0, stream_of (ctx)>>> (
      x, patches, pos, enc, cls, total, l, e);
  return check (cudaGetLastError (), "tokens_assemble");
}

// One thread per element of out [n, e, l].
__global__ void
tokens_to_image_kernel (float *out, const float *tokens, size_t total, int l, int e)
{
  GRID_STRIDE (i, total)
    {
      int t = (int) (i % l);
      size_t r = i / l;
      int j = (int) (r % e);
      size_t b = r / e;

      out[i] = tokens[(b * (l + 1) + t + 1) * e + j];
    }
}

extern "C" int
lode_prithvi_cuda_tokens_to_image (LodeOpsCuda *ctx, float *out, const float *tokens,
                                   int n, int gh, int gw, int e)
{
  if (n < 0 || gh <= 0 || gw <= 0 || e <= 0)
    return lode_ops_cuda_invalid ("tokens_to_image");
  int l = gh * gw;
  size_t total = (size_t) n * e * l;
  if (total == 0)
    return LODE_CUDA_OK;
  tokens_to_image_kernel<<<grid_for (total), BLOCK, 0, stream_of (ctx)>>> (out, tokens, total,
                                                                          l, e);
  return check (cudaGetLastError (), "tokens_to_image");
}

// One thread per output cell: the mean over rows floor(i h / oh) ..
// ceil((i+1) h / oh) - 1 and likewise columns, summed in float in the same
// order as the CPU twin.
__global__ void
adaptive_avg_pool_kernel (float *out, const float *in, size_t total, int h, int w, int oh,
                          int ow)
{
  GRID_STRIDE (i, total)
    {
      int oj = (int) (i % ow);
      int oi = (int) ((i / ow) % oh);
      const float *plane = in + (i / ((size_t) ow * oh)) * h * w;
      int y0 = (oi * h) / oh, y1 = ((oi + 1) * h + oh - 1) / oh;
      int x0 = (oj * w) / ow, x1 = ((oj + 1) * w + ow - 1) / ow;
      float sum = 0.0f;

      for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
          sum += plane[(size_t) y * w + x];
      out[i] = sum / (float) ((y1 - y0) * (x1 - x0));
    }
}

extern "C" int
lode_prithvi_cuda_adaptive_avg_pool (LodeOpsCuda *ctx, float *out, const float *in, int nc,
                                     int h, int w, int out_h, int out_w)
{
  if (nc < 0 || h <= 0 || w <= 0 || out_h <= 0 || out_w <= 0)
    return lode_ops_cuda_invalid ("adaptive_avg_pool");
  size_t total = (size_t) nc * out_h * out_w;
  if (total == 0)
    return LODE_CUDA_OK;
  adaptive_avg_pool_kernel<<<grid_for (total), BLOCK, 0, stream_of (ctx)>>> (
      out, in, total, h, w, out_h, out_w);
  return check (cudaGetLastError (), "adaptive_avg_pool");
}

// ---- backward kernels of the UperNet decoder ----------------------------------

// dL/dx of the exact GELU, in double as the CPU twin (lode_grad_gelu).
__global__ void
gelu_backward_kernel (float *dx, const float *dy, const float *x, size_t n)
{
  GRID_STRIDE (i, n)
    {
      double v = x[i];
      double cdf = 0.5 * (1.0 + erf (v * 0.70710678118654752440));
      double pdf = exp (-0.5 * v * v) * 0.39894228040143267794;

      dx[i] = dy[i] * (float) (cdf + v * pdf);
    }
}

extern "C" int
lode_prithvi_cuda_gelu_backward (LodeOpsCuda *ctx, float *dx, const float *dy, const float *x,
                                 size_t count)
{
  if (count == 0)
    return LODE_CUDA_OK;
  gelu_backward_kernel<<<grid_for (count), BLOCK, 0, stream_of (ctx)>>> (dx, dy, x, count);
  return check (cudaGetLastError (), "gelu_backward");
}

// Where output index dst of a bilinear resize samples the input: the float
// formula of the CPU's bilinear_source.
__device__ void
bilinear_source_b (int dst, int in_size, int out_size, bool align, int *i0, int *i1, float *frac)
{
  float src;

  if (align)
    src = __fmul_rn (out_size > 1 ? (float) (in_size - 1) / (out_size - 1) : 0.0f, (float) dst);
  else
    src = fmaxf (__fsub_rn (__fmul_rn ((float) in_size / out_size, dst + 0.5f), 0.5f), 0.0f);
  *i0 = min ((int) src, in_size - 1);
  *i1 = *i0 + (*i0 < in_size - 1 ? 1 : 0);
  *frac = fminf (fmaxf (src - *i0, 0.0f), 1.0f);
}

// One thread per element of dy [nc, oh, ow], scattering into dx with
// atomicAdd (the order of the four adds per input varies: ~1e-7 relative).
__global__ void
resize_backward_kernel (float *dx, const float *dy, size_t total, int h, int w, int oh, int ow,
                        int align)
{
  GRID_STRIDE (i, total)
    {
      int ox = (int) (i % ow);
      int oy = (int) ((i / ow) % oh);
      float *x = dx + (i / ((size_t) ow * oh)) * h * w;
      int y0, y1, x0, x1;
      float fy, fx, v = dy[i];

      bilinear_source_b (oy, h, oh, align != 0, &y0, &y1, &fy);
      bilinear_source_b (ox, w, ow, align != 0, &x0, &x1, &fx);
      atomicAdd (x + (size_t) y0 * w + x0, (1.0f - fy) * (1.0f - fx) * v);
      atomicAdd (x + (size_t) y0 * w + x1, (1.0f - fy) * fx * v);
      atomicAdd (x + (size_t) y1 * w + x0, fy * (1.0f - fx) * v);
      atomicAdd (x + (size_t) y1 * w + x1, fy * fx * v);
    }
}

extern "C" int
lode_prithvi_cuda_resize_backward (LodeOpsCuda *ctx, float *dx, const float *dy, int nc, int h,
                                   int w, int oh, int ow, int align, int accumulate)
{
  if (nc < 0 || h <= 0 || w <= 0 || oh <= 0 || ow <= 0)
    return lode_ops_cuda_invalid ("resize_backward");
  size_t total = (size_t) nc * oh * ow;
  if (!accumulate)
    {
      int s = check (cudaMemsetAsync (dx, 0, (size_t) nc * h * w * sizeof (float), stream_of (ctx)),
                     "resize_backward");
      if (s != LODE_CUDA_OK)
        return s;
    }
  if (total == 0)
    return LODE_CUDA_OK;
  resize_backward_kernel<<<grid_for (total), BLOCK, 0, stream_of (ctx)>>> (dx, dy, total, h, w, oh,
                                                                          ow, align);
  return check (cudaGetLastError (), "resize_backward");
}

// One thread per input element: the cells that contain it, in the CPU
// twin's order (rows of cells, then columns), added to dx.
__global__ void
adaptive_avg_pool_backward_kernel (float *dx, const float *dy, size_t total, int h, int w, int oh,
                                   int ow)
{
  GRID_STRIDE (i, total)
    {
      int x = (int) (i % w);
      int y = (int) ((i / w) % h);
      const float *g = dy + (i / ((size_t) w * h)) * oh * ow;
      float v = dx[i];

      for (int ci = 0; ci < oh; ci++)
        {
          int y0 = (ci * h) / oh, y1 = ((ci + 1) * h + oh - 1) / oh;

          if (y < y0 || y >= y1)
            continue;
          for (int cj = 0; cj < ow; cj++)
            {
              int x0 = (cj * w) / ow, x1 = ((cj + 1) * w + ow - 1) / ow;

              if (x >= x0 && x < x1)
                v += g[ci * ow + cj] / (float) ((y1 - y0) * (x1 - x0));
            }
        }
      dx[i] = v;
    }
}

extern "C" int
lode_prithvi_cuda_adaptive_avg_pool_backward (LodeOpsCuda *ctx, float *dx, const float *dy, int nc,
                                              int h, int w, int out_h, int out_w)
{
  if (nc < 0 || h <= 0 || w <= 0 || out_h <= 0 || out_w <= 0)
    return lode_ops_cuda_invalid ("adaptive_avg_pool_backward");
  size_t total = (size_t) nc * h * w;
  if (total == 0)
    return LODE_CUDA_OK;
  adaptive_avg_pool_backward_kernel<<<grid_for (total), BLOCK, 0, stream_of (ctx)>>> (
      dx, dy, total, h, w, out_h, out_w);
  return check (cudaGetLastError (), "adaptive_avg_pool_backward");
}

// D [c_out * 4, h w] of one image from dy [c_out, 2h, 2w]: row (co, ky, kx)
// holds the outputs that kernel tap (ky, kx) of channel co wrote.
__global__ void
up2_gather_kernel (float *d, const float *g, size_t total, int h, int w)
{
  GRID_STRIDE (i, total)
    {
      size_t hw = (size_t) h * w;
      int p = (int) (i % hw);
      size_t r = i / hw;
      int kx = (int) (r % 2), ky = (int) ((r / 2) % 2);
      size_t co = r / 4;
      int y = p / w, x = p % w;

      d[i] = g[(co * 2 * h + 2 * y + ky) * 2 * w + 2 * x + kx];
    }
}

// db[co] += the sum of the 4 h w values of D's rows of co: one block per
// channel, double partial sums as the CPU twin.
__global__ void
up2_bias_kernel (float *db, const float *d, int c_out, size_t len)
{
  __shared__ double part[256];
  for (int co = blockIdx.x; co < c_out; co += gridDim.x)
    {
      double sum = 0.0;
      for (size_t j = threadIdx.x; j < len; j += blockDim.x)
        sum += d[(size_t) co * len + j];
      part[threadIdx.x] = sum;
      __syncthreads ();
      for (int s = blockDim.x / 2; s > 0; s >>= 1)
        {
          if ((int) threadIdx.x < s)
            part[threadIdx.x] += part[threadIdx.x + s];
          __syncthreads ();
        }
      if (threadIdx.x == 0)
        db[co] += (float) part[0];
      __syncthreads ();
    }
}

extern "C" int
lode_prithvi_cuda_up2_backward (LodeOpsCuda *ctx, float *dweight, float *dbias, float *dx,
                                const float *x, const float *dy, const float *weight, int n,
                                int c_in, int c_out, int h, int w)
{
  if (n < 0 || c_in <= 0 || c_out <= 0 || h <= 0 || w <= 0)
    return lode_ops_cuda_invalid ("up2_backward");
  size_t hw = (size_t) h * w, dcount = (size_t) c_out * 4 * hw;
  void *d = NULL;
  int s = LODE_CUDA_OK;

  if (n == 0)
    return LODE_CUDA_OK;
  s = check (cudaMalloc (&d, dcount * sizeof (float)), "up2_backward scratch");
  if (s != LODE_CUDA_OK)
    return s;
  for (int b = 0; b < n && s == LODE_CUDA_OK; b++)
    {
      up2_gather_kernel<<<grid_for (dcount), BLOCK, 0, stream_of (ctx)>>> (
          (float *) d, dy + (size_t) b * dcount, dcount, h, w);
      s = check (cudaGetLastError (), "up2_backward gather");
      if (s == LODE_CUDA_OK)
        {
          up2_bias_kernel<<<c_out < 65535 ? c_out : 65535, 256, 0, stream_of (ctx)>>> (
              dbias, (const float *) d, c_out, 4 * hw);
          s = check (cudaGetLastError (), "up2_backward bias");
        }
      // dW [c_in, c_out 4] += X_b [c_in, hw] D^T
      if (s == LODE_CUDA_OK)
        s = lode_ops_cuda_gemm (ctx, 0, 1, c_in, c_out * 4, (int) hw, 1.0f,
                                x + (size_t) b * c_in * hw, (const float *) d, 1.0f, dweight);
      // dx_b [c_in, hw] = W [c_in, c_out 4] D
      if (s == LODE_CUDA_OK && dx != NULL)
        s = lode_ops_cuda_gemm (ctx, 0, 0, c_in, (int) hw, c_out * 4, 1.0f, weight,
                                (const float *) d, 0.0f, dx + (size_t) b * c_in * hw);
    }
  cudaFree (d);  // waits for the products that read it
  return s;
}

// ---- backward kernels of the encoder's transformer blocks --------------------------

// Threads per block of the row kernels (a power of two for the reduction).
#define ROW_BLOCK 256

// out[o] += sum over rows of in[r, o], rows in order, in float: the CPU
// twin's order (lode_grad_linear's bias, lode_grad_layer_norm's weight
// and bias). One thread per column, reading consecutive columns together.
__global__ void
column_sum_kernel (float *out, const float *in, size_t rows, int cols)
{
  GRID_STRIDE (o, (size_t) cols)
    {
      float acc = out[o];
      for (size_t r = 0; r < rows; r++)
        acc = __fadd_rn (acc, in[r * cols + o]);
      out[o] = acc;
    }
}

extern "C" int
lode_prithvi_cuda_linear_backward (LodeOpsCuda *ctx, float *dx, float *dweight, float *dbias,
                                   const float *dy, const float *x, const float *weight,
                                   int rows, int in_f, int out_f)
{
  int s = LODE_CUDA_OK;

  if (rows < 0 || in_f <= 0 || out_f <= 0)
    return lode_ops_cuda_invalid ("linear_backward");
  if (rows == 0)
    return LODE_CUDA_OK;
  // dW [out_f, in_f] += dy^T [out_f, rows] x [rows, in_f]
  if (dweight != NULL)
    s = lode_ops_cuda_gemm (ctx, 1, 0, out_f, in_f, rows, 1.0f, dy, x, 1.0f, dweight);
  if (s == LODE_CUDA_OK && dbias != NULL)
    {
      column_sum_kernel<<<grid_for ((size_t) out_f), BLOCK, 0, stream_of (ctx)>>> (
          dbias, dy, (size_t) rows, out_f);
      s = check (cudaGetLastError (), "linear_backward bias");
    }
  // dx [rows, in_f] = dy [rows, out_f] W [out_f, in_f]
  if (s == LODE_CUDA_OK && dx != NULL)
    s = lode_ops_cuda_gemm (ctx, 0, 0, rows, in_f, out_f, 1.0f, dy, weight, 0.0f, dx);
  return s;
}

// One block per row of x [rows, c]: the statistics in double as the CPU
// twin (lode_grad_layer_norm), dx = rstd (g - mean(g) - xhat mean(g xhat))
// with g = dy weight; the row's mean and rstd go to stats [rows, 2] for the
// weight's and bias's gradients.
__global__ void
layer_norm_backward_rows_kernel (float *dx, double *stats, const float *dy, const float *x,
                                 const float *weight, size_t rows, int c, float eps)
{
  __shared__ double part[ROW_BLOCK];
  for (size_t r = blockIdx.x; r < rows; r += gridDim.x)
    {
      const float *xr = x + r * c, *dyr = dy + r * c;
      float *dxr = dx + r * c;
      double s = 0.0;

      for (int j = threadIdx.x; j < c; j += ROW_BLOCK)
        s += xr[j];
      double mean = block_sum (s, part) / c;
      s = 0.0;
      for (int j = threadIdx.x; j < c; j += ROW_BLOCK)
        s += (xr[j] - mean) * (xr[j] - mean);
      double var = block_sum (s, part) / c;
      float rstd = (float) (1.0 / sqrt (var + eps));
      double m1 = 0.0, m2 = 0.0;
      for (int j = threadIdx.x; j < c; j += ROW_BLOCK)
        {
          float xh = __fmul_rn ((float) (xr[j] - mean), rstd);
          float g = weight != NULL ? __fmul_rn (dyr[j], weight[j]) : dyr[j];

          m1 += g;
          m2 += (double) g * xh;
        }
      float fm1 = (float) (block_sum (m1, part) / c);
      float fm2 = (float) (block_sum (m2, part) / c);
      // dx may be dy: each element is read by its own thread before it writes
      for (int j = threadIdx.x; j < c; j += ROW_BLOCK)
        {
          float xh = __fmul_rn ((float) (xr[j] - mean), rstd);
          float g = weight != NULL ? __fmul_rn (dyr[j], weight[j]) : dyr[j];

          dxr[j] = __fmul_rn (rstd, __fsub_rn (__fsub_rn (g, fm1), __fmul_rn (xh, fm2)));
        }
      if (threadIdx.x == 0)
        {
          stats[2 * r] = mean;
          stats[2 * r + 1] = rstd;
        }
    }
}

// One thread per column: dweight[j] += sum_r dy xhat, dbias[j] += sum_r dy,
// rows in order in float as the CPU twin.
__global__ void
layer_norm_backward_columns_kernel (float *dweight, float *dbias, const double *stats,
                                    const float *dy, const float *x, size_t rows, int c)
{
  GRID_STRIDE (j, (size_t) c)
    {
      float aw = dweight != NULL ? dweight[j] : 0.0f;
      float ab = dbias != NULL ? dbias[j] : 0.0f;

      for (size_t r = 0; r < rows; r++)
        {
          float g = dy[r * c + j];
          float xh = __fmul_rn ((float) (x[r * c + j] - stats[2 * r]), (float) stats[2 * r + 1]);

          aw = __fadd_rn (aw, __fmul_rn (g, xh));
          ab = __fadd_rn (ab, g);
        }
      if (dweight != NULL)
        dweight[j] = aw;
      if (dbias != NULL)
        dbias[j] = ab;
    }
}

extern "C" int
lode_prithvi_cuda_layer_norm_backward (LodeOpsCuda *ctx, float *dx, float *dweight, float *dbias,
                                       const float *dy, const float *x, const float *weight,
                                       int rows, int c, float eps)
{
  void *stats = NULL;
  int s;

  if (rows < 0 || c <= 0 || dx == NULL)
    return lode_ops_cuda_invalid ("layer_norm_backward");
  // the columns read dy after the rows wrote dx
  if (dx == dy && (dweight != NULL || dbias != NULL))
    return lode_ops_cuda_invalid ("layer_norm_backward (dx is dy)");
  if (rows == 0)
    return LODE_CUDA_OK;
  s = check (cudaMalloc (&stats, (size_t) rows * 2 * sizeof (double)), "layer_norm_backward scratch");
  if (s != LODE_CUDA_OK)
    return s;
  layer_norm_backward_rows_kernel<<<grid_rows ((size_t) rows), ROW_BLOCK, 0, stream_of (ctx)>>> (
      dx, (double *) stats, dy, x, weight, (size_t) rows, c, eps);
  s = check (cudaGetLastError (), "layer_norm_backward");
  if (s == LODE_CUDA_OK && (dweight != NULL || dbias != NULL))
    {
      layer_norm_backward_columns_kernel<<<grid_for ((size_t) c), BLOCK, 0, stream_of (ctx)>>> (
          dweight, dbias, (const double *) stats, dy, x, (size_t) rows, c);
      s = check (cudaGetLastError (), "layer_norm_backward weight");
    }
  cudaFree (stats);  // waits for the kernels that read it
  return s;
}

// ds = p (ds - rowsum(p ds)) on rows [rows, c], one block per row, the dot
// in double as the CPU twin (lode_grad_attention).
__global__ void
softmax_backward_kernel (float *ds, const float *p, size_t rows, int c)
{
  __shared__ double part[ROW_BLOCK];
  for (size_t r = blockIdx.x; r < rows; r += gridDim.x)
    {
      const float *pr = p + r * c;
      float *dr = ds + r * c;
      double dot = 0.0;

      for (int j = threadIdx.x; j < c; j += ROW_BLOCK)
        dot += (double) pr[j] * dr[j];
      float fdot = (float) block_sum (dot, part);
      for (int j = threadIdx.x; j < c; j += ROW_BLOCK)
        dr[j] = __fmul_rn (pr[j], __fsub_rn (dr[j], fdot));
    }
}

extern "C" int
lode_prithvi_cuda_attention_forward (LodeOpsCuda *ctx, float *out, float *probs, const float *q,
                                     const float *k, const float *v, int bh, int lq, int lk, int d)
{
  float scale;
  int s;

  if (bh < 0 || lq < 0 || lk <= 0 || d <= 0 || (long long) bh * lq > 0x7fffffffLL)
    return lode_ops_cuda_invalid ("attention_forward");
  if (bh == 0 || lq == 0)
    return LODE_CUDA_OK;
  scale = 1.0f / sqrtf ((float) d);
  // P = softmax (Q K^T / sqrt d) per head, kept; out = P V
  s = lode_ops_cuda_gemm_batched (ctx, 0, 1, bh, lq, lk, d, scale, q, (long long) lq * d, k,
                                  (long long) lk * d, 0.0f, probs, (long long) lq * lk);
  if (s == LODE_CUDA_OK)
    s = lode_ops_cuda_softmax (ctx, probs, probs, bh * lq, lk);
  if (s == LODE_CUDA_OK)
    s = lode_ops_cuda_gemm_batched (ctx, 0, 0, bh, lq, d, lk, 1.0f, probs, (long long) lq * lk, v,
                                    (long long) lk * d, 0.0f, out, (long long) lq * d);
  return s;
}

extern "C" int
lode_prithvi_cuda_attention_backward (LodeOpsCuda *ctx, float *dq, float *dk, float *dv,
                                      const float *dout, const float *q, const float *k,
                                      const float *v, const float *probs, int bh, int lq, int lk,
                                      int d)
{
  size_t scores;
  void *ds = NULL;
  float scale;
  int s;

  if (bh < 0 || lq < 0 || lk <= 0 || d <= 0 || (long long) bh * lq > 0x7fffffffLL)
    return lode_ops_cuda_invalid ("attention_backward");
  if (bh == 0)
    return LODE_CUDA_OK;
  if (lq == 0)
    {
      // no queries: nothing reaches the keys and values
      s = lode_ops_cuda_zero (ctx, dk, (size_t) bh * lk * d * sizeof (float));
      return s != LODE_CUDA_OK ? s : lode_ops_cuda_zero (ctx, dv, (size_t) bh * lk * d * sizeof (float));
    }
  scale = 1.0f / sqrtf ((float) d);
  scores = (size_t) bh * lq * lk;
  s = check (cudaMalloc (&ds, scores * sizeof (float)), "attention_backward scratch");
  if (s != LODE_CUDA_OK)
    return s;
  // dV = P^T dO; dP = dO V^T; dS = P (dP - rowsum (P dP)); dQ = dS K / sqrt d;
  // dK = dS^T Q / sqrt d
  s = lode_ops_cuda_gemm_batched (ctx, 1, 0, bh, lk, d, lq, 1.0f, probs, (long long) lq * lk, dout,
                                  (long long) lq * d, 0.0f, dv, (long long) lk * d);
  if (s == LODE_CUDA_OK)
    s = lode_ops_cuda_gemm_batched (ctx, 0, 1, bh, lq, lk, d, 1.0f, dout, (long long) lq * d, v,
                                    (long long) lk * d, 0.0f, (float *) ds, (long long) lq * lk);
  if (s == LODE_CUDA_OK)
    {
      size_t rows = (size_t) bh * lq;

      softmax_backward_kernel<<<grid_rows (rows), ROW_BLOCK, 0, stream_of (ctx)>>> (
          (float *) ds, probs, rows, lk);
      s = check (cudaGetLastError (), "attention_backward softmax");
    }
  if (s == LODE_CUDA_OK)
    s = lode_ops_cuda_gemm_batched (ctx, 0, 0, bh, lq, d, lk, scale, (const float *) ds,
                                    (long long) lq * lk, k, (long long) lk * d, 0.0f, dq,
                                    (long long) lq * d);
  if (s == LODE_CUDA_OK)
    s = lode_ops_cuda_gemm_batched (ctx, 1, 0, bh, lk, d, lq, scale, (const float *) ds,
                                    (long long) lq * lk, q, (long long) lq * d, 0.0f, dk,
                                    (long long) lk * d);
  cudaFree (ds);  // waits for the products that read it
  return s;
}

// One thread per element of image [n, e, l]: added to its patch token of
// tokens [n, 1 + l, e] (each token element gets one value: no race).
__global__ void
image_to_tokens_add_kernel (float *tokens, const float *image, size_t total, int l, int e)
{
  GRID_STRIDE (i, total)
    {
      int t = (int) (i % l);
      size_t r = i / l;
      int j = (int) (r % e);
      size_t b = r / e;

      tokens[(b * (l + 1) + t + 1) * e + j] += image[i];
    }
}

extern "C" int
lode_prithvi_cuda_image_to_tokens_add (LodeOpsCuda *ctx, float *tokens, const float *image, int n,
                                       int gh, int gw, int e)
{
  if (n < 0 || gh <= 0 || gw <= 0 || e <= 0)
    return lode_ops_cuda_invalid ("image_to_tokens_add");
  int l = gh * gw;
  size_t total = (size_t) n * e * l;
  if (total == 0)
    return LODE_CUDA_OK;
  image_to_tokens_add_kernel<<<grid_for (total), BLOCK, 0, stream_of (ctx)>>> (tokens, image,
                                                                              total, l, e);
  return check (cudaGetLastError (), "image_to_tokens_add");
}
