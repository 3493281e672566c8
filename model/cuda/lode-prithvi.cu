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

static thread_local char last_message[384] = "no error";

static const int BLOCK = 256;
static const size_t MAX_GRID = 65535u * 16u;

static unsigned int
grid_for (size_t work)
{
  size_t g = (work + BLOCK - 1) / BLOCK;
  if (g > MAX_GRID)
    g = MAX_GRID;
  return (unsigned int) (g ? g : 1);
}

#define GRID_STRIDE(i, n) \
  for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
       i += (size_t) blockDim.x * gridDim.x)

static cudaStream_t
stream_of (LodeOpsCuda *ctx)
{
  return (cudaStream_t) lode_ops_cuda_stream (ctx);
}

static int
check (cudaError_t err, const char *what)
{
  if (err == cudaSuccess)
    return LODE_CUDA_OK;
  cudaGetLastError ();
  snprintf (last_message, sizeof last_message, "%s: %s", what, cudaGetErrorString (err));
  return err == cudaErrorMemoryAllocation ? LODE_CUDA_ERROR_NO_MEMORY : LODE_CUDA_ERROR_RUNTIME;
}

static int
invalid (const char *what)
{
  snprintf (last_message, sizeof last_message, "%s: invalid sizes", what);
  return LODE_CUDA_ERROR_INVALID;
}

extern "C" const char *
lode_prithvi_cuda_last_message (void)
{
  return last_message;
}

extern "C" int
lode_prithvi_cuda_copy (LodeOpsCuda *ctx, float *dst, const float *src, size_t count)
{
  if (count == 0 || dst == src)
    return LODE_CUDA_OK;
  return check (cudaMemcpyAsync (dst, src, count * sizeof (float), cudaMemcpyDeviceToDevice,
                                 stream_of (ctx)),
                "copying on the GPU");
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
    return invalid ("heads_copy");
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
    return invalid ("tokens_assemble");
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
    return invalid ("tokens_to_image");
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
    return invalid ("adaptive_avg_pool");
  size_t total = (size_t) nc * out_h * out_w;
  if (total == 0)
    return LODE_CUDA_OK;
  adaptive_avg_pool_kernel<<<grid_for (total), BLOCK, 0, stream_of (ctx)>>> (
      out, in, total, h, w, out_h, out_w);
  return check (cudaGetLastError (), "adaptive_avg_pool");
}
