// lode-grad.cu: the CUDA twins of the backward kernels in model/lode-grad.c.
//
// Convolution gradients come from cuDNN (lode_ops_cuda_conv2d_backward, its
// deterministic algorithms first, bf16 operands in bf16 mode), the bias
// gradient from a channel sum here; batch-norm statistics with one 256-thread
// block per channel summing in double; element-wise kernels with
// grid-stride loops. Max pooling's backward gathers too: each input pixel
// looks at the few windows that contain it and takes the gradient of those
// whose argmax it is, so no two threads write the same value.
#include <cuda_runtime.h>
#include <math.h>

#pragma nv_diag_suppress 1217
#include "../lode-grad-cuda.h"
#pragma nv_diag_default 1217
#include "lode-cuda-launch.cuh"


#define TRY(expr) \
  do { int s_ = (expr); if (s_ != LODE_CUDA_OK) return s_; } while (0)

static cudaStream_t
stream_of (LodeOpsCuda *ctx)
{
  return (cudaStream_t) lode_ops_cuda_stream (ctx);
}

static int
launched (void)
{
  cudaError_t err = cudaGetLastError ();
  if (err == cudaSuccess)
    return LODE_CUDA_OK;
  return err == cudaErrorMemoryAllocation ? LODE_CUDA_ERROR_NO_MEMORY : LODE_CUDA_ERROR_RUNTIME;
}

// ---- convolution ------------------------------------------------------------

// dbias[c] += sum over n and pixels of dy: one block per channel.
__global__ static void
channel_sum_kernel (float *dbias, const float *dy, int n, int c, size_t hw)
{
  __shared__ double part[BLOCK];
  int j = blockIdx.x;
  double s = 0.0;

  for (size_t t = threadIdx.x; t < (size_t) n * hw; t += blockDim.x)
    s += dy[((size_t) (t / hw) * c + j) * hw + t % hw];
  part[threadIdx.x] = s;
  __syncthreads ();
  for (int k = blockDim.x / 2; k > 0; k /= 2)
    {
      if (threadIdx.x < k)
        part[threadIdx.x] += part[threadIdx.x + k];
      __syncthreads ();
    }
  if (threadIdx.x == 0)
    dbias[j] += (float) part[0];
}

extern "C" int
lode_grad_cuda_conv2d (LodeOpsCuda *ctx, float *dx, float *dweight, float *dbias,
                       const float *dy, const float *x, const float *weight,
                       const LodeConvShape *s, int accumulate_dx)
{
  int oh, ow;
  if (!lode_conv_shape_out_size (s, &oh, &ow))
    return LODE_CUDA_ERROR_INVALID;
  if (dbias != NULL && s->c_out > 0)
    {
      channel_sum_kernel<<<s->c_out, BLOCK, 0, stream_of (ctx)>>> (dbias, dy, s->n, s->c_out,
                                                                   (size_t) oh * ow);
      TRY (launched ());
    }
  return lode_ops_cuda_conv2d_backward (ctx, dx, dweight, dy, x, weight, s, accumulate_dx);
}

// ---- batch normalisation ----------------------------------------------------

__global__ static void
bn_train_kernel (float *out, const float *in, const float *weight, const float *bias,
                 float *rm, float *rv, float *save_mean, float *save_invstd,
                 int n, int c, size_t hw, float eps, float momentum)
{
  __shared__ double part[BLOCK];
  int j = blockIdx.x;
  size_t count = (size_t) n * hw;
  double s = 0.0;

  for (size_t t = threadIdx.x; t < count; t += blockDim.x)
    s += in[((t / hw) * c + j) * hw + t % hw];
  double mean = block_sum (s, part) / count;
  s = 0.0;
  for (size_t t = threadIdx.x; t < count; t += blockDim.x)
    {
      double d = in[((t / hw) * c + j) * hw + t % hw] - mean;
      s += d * d;
    }
  double sq = block_sum (s, part), var = sq / count, invstd = 1.0 / sqrt (var + eps);
  double scale = invstd * (weight ? weight[j] : 1.0f);
  double shift = (bias ? bias[j] : 0.0f) - mean * scale;

  if (threadIdx.x == 0)
    {
      save_mean[j] = (float) mean;
      save_invstd[j] = (float) invstd;
      if (rm)
        rm[j] = (float) ((1.0 - momentum) * rm[j] + momentum * mean);
      if (rv)
        rv[j] = (float) ((1.0 - momentum) * rv[j] + momentum * (count > 1 ? sq / (count - 1) : var));
    }
  for (size_t t = threadIdx.x; t < count; t += blockDim.x)
    {
      size_t q = ((t / hw) * c + j) * hw + t % hw;
      out[q] = (float) (in[q] * scale + shift);
    }
}

extern "C" int
lode_grad_cuda_batch_norm_train (LodeOpsCuda *ctx, float *out, const float *in,
                                 const float *weight, const float *bias,
                                 float *running_mean, float *running_var,
                                 float *save_mean, float *save_invstd,
                                 int n, int c, int hw, float eps, float momentum)
{
  if (n <= 0 || c < 0 || hw <= 0)
    return LODE_CUDA_ERROR_INVALID;
  if (c == 0)
    return LODE_CUDA_OK;
  bn_train_kernel<<<c, BLOCK, 0, stream_of (ctx)>>> (out, in, weight, bias, running_mean, running_var,
                                                     save_mean, save_invstd, n, c, hw, eps, momentum);
  return launched ();
}

__global__ static void
bn_backward_kernel (float *dx, float *dweight, float *dbias, const float *dy, const float *x,
                    const float *mean, const float *invstd, const float *weight,
                    int n, int c, size_t hw, int batch_stats)
{
  __shared__ double part[BLOCK];
  int j = blockIdx.x;
  size_t count = (size_t) n * hw;
  double m = mean[j], is = invstd[j], gm = weight ? weight[j] : 1.0f, s1 = 0.0, s2 = 0.0;

  for (size_t t = threadIdx.x; t < count; t += blockDim.x)
    {
      size_t q = ((t / hw) * c + j) * hw + t % hw;
      s1 += dy[q];
      s2 += dy[q] * ((x[q] - m) * is);
    }
  double sum_dy = block_sum (s1, part), sum_dy_xhat = block_sum (s2, part);
  if (threadIdx.x == 0)
    {
      if (dweight)
        dweight[j] += (float) sum_dy_xhat;
      if (dbias)
        dbias[j] += (float) sum_dy;
    }
  if (dx == NULL)
    return;
  for (size_t t = threadIdx.x; t < count; t += blockDim.x)
    {
      size_t q = ((t / hw) * c + j) * hw + t % hw;
      if (batch_stats)
        {
          double xhat = (x[q] - m) * is;
          dx[q] = (float) (gm * is * (dy[q] - sum_dy / count - xhat * sum_dy_xhat / count));
        }
      else
        dx[q] = dy[q] * (float) (gm * is);
    }
}

extern "C" int
lode_grad_cuda_batch_norm (LodeOpsCuda *ctx, float *dx, float *dweight, float *dbias,
                           const float *dy, const float *x, const float *mean,
                           const float *invstd, const float *weight,
                           int n, int c, int hw, int batch_stats)
{
  if (n <= 0 || c < 0 || hw <= 0)
    return LODE_CUDA_ERROR_INVALID;
  if (c == 0)
    return LODE_CUDA_OK;
  bn_backward_kernel<<<c, BLOCK, 0, stream_of (ctx)>>> (dx, dweight, dbias, dy, x, mean, invstd,
                                                        weight, n, c, hw, batch_stats);
  return launched ();
}

// ---- element-wise, pooling, resizing ----------------------------------------

__global__ static void
relu_backward_kernel (float *dx, const float *dy, const float *y, size_t n)
{
  GRID_STRIDE (i, n)
    dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

extern "C" int
lode_grad_cuda_relu (LodeOpsCuda *ctx, float *dx, const float *dy, const float *y, size_t count)
{
  if (count == 0)
    return LODE_CUDA_OK;
  relu_backward_kernel<<<grid_for (count), BLOCK, 0, stream_of (ctx)>>> (dx, dy, y, count);
  return launched ();
}

__global__ static void
pool_forward_kernel (float *out, int *arg, const float *in, size_t planes, int h, int w,
                     int oh, int ow, int k, int s, int p)
{
  GRID_STRIDE (i, planes * oh * ow)
    {
      size_t t = i / ((size_t) oh * ow);
      int oy = (int) ((i / ow) % oh), ox = (int) (i % ow);
      const float *x = in + t * h * w;
      float m = -INFINITY;
      int at = -1;

      for (int ky = 0; ky < k; ky++)
        {
          int iy = oy * s - p + ky;
          if (iy < 0 || iy >= h)
            continue;
          for (int kx = 0; kx < k; kx++)
            {
              int ix = ox * s - p + kx;
              if (ix < 0 || ix >= w)
                continue;
              float v = x[iy * w + ix];
              if (at < 0 || v > m || (isnan (v) && !isnan (m)))
                {
                  m = v;
                  at = iy * w + ix;
                }
            }
        }
      out[i] = m;
      arg[i] = at;
    }
}

extern "C" int
lode_grad_cuda_max_pool2d_forward (LodeOpsCuda *ctx, float *out, int *argmax, const float *in,
                                   int n, int c, int h, int w, int kernel, int stride, int pad)
{
  int oh = lode_ops_pool_out_size (h, kernel, stride, pad);
  int ow = lode_ops_pool_out_size (w, kernel, stride, pad);
  size_t work = (size_t) n * c * oh * ow;

  if (work == 0)
    return LODE_CUDA_OK;
  pool_forward_kernel<<<grid_for (work), BLOCK, 0, stream_of (ctx)>>> (out, argmax, in, (size_t) n * c,
                                                                       h, w, oh, ow, kernel, stride, pad);
  return launched ();
}

__global__ static void
pool_backward_kernel (float *dx, const float *dy, const int *arg, size_t planes, int h, int w,
                      int oh, int ow, int k, int s, int p, int accumulate)
{
  GRID_STRIDE (i, planes * h * w)
    {
      size_t t = i / ((size_t) h * w);
      int iy = (int) ((i / w) % h), ix = (int) (i % w), me = iy * w + ix;
      int oy0 = max (0, (iy + p - k + s) / s), oy1 = min (oh - 1, (iy + p) / s);
      int ox0 = max (0, (ix + p - k + s) / s), ox1 = min (ow - 1, (ix + p) / s);
      float acc = 0.0f;

      for (int oy = oy0; oy <= oy1; oy++)
        for (int ox = ox0; ox <= ox1; ox++)
          {
            size_t q = t * oh * ow + (size_t) oy * ow + ox;
            if (arg[q] == me)
              acc += dy[q];
          }
      dx[i] = accumulate ? dx[i] + acc : acc;
    }
}

extern "C" int
lode_grad_cuda_max_pool2d (LodeOpsCuda *ctx, float *dx, const float *dy, const int *argmax,
                           int n, int c, int h, int w, int oh, int ow, int kernel, int stride,
                           int pad, int accumulate)
{
  size_t work = (size_t) n * c * h * w;

  if (work == 0)
    return LODE_CUDA_OK;
  pool_backward_kernel<<<grid_for (work), BLOCK, 0, stream_of (ctx)>>> (dx, dy, argmax, (size_t) n * c,
                                                                        h, w, oh, ow, kernel, stride,
                                                                        pad, accumulate);
  return launched ();
}

__global__ static void
upsample_forward_kernel (float *out, const float *in, size_t nc, int h, int w)
{
  GRID_STRIDE (i, nc * h * w * 4)
    {
      size_t t = i / ((size_t) h * w * 4);
      int y = (int) ((i / (2 * w)) % (2 * h)), x = (int) (i % (2 * w));
      out[i] = in[(t * h + y / 2) * w + x / 2];
    }
}

__global__ static void
upsample_backward_kernel (float *dx, const float *dy, size_t nc, int h, int w)
{
  GRID_STRIDE (i, nc * h * w)
    {
      size_t t = i / ((size_t) h * w);
      int y = (int) ((i / w) % h), x = (int) (i % w);
      const float *r0 = dy + (t * 2 * h + 2 * y) * 2 * w, *r1 = r0 + 2 * w;
      dx[i] = (r0[2 * x] + r0[2 * x + 1]) + (r1[2 * x] + r1[2 * x + 1]);
    }
}

extern "C" int
lode_grad_cuda_upsample2x_forward (LodeOpsCuda *ctx, float *out, const float *in, int nc, int h, int w)
{
  size_t work = (size_t) nc * h * w * 4;
  if (work == 0)
    return LODE_CUDA_OK;
  upsample_forward_kernel<<<grid_for (work), BLOCK, 0, stream_of (ctx)>>> (out, in, nc, h, w);
  return launched ();
}

extern "C" int
lode_grad_cuda_upsample2x (LodeOpsCuda *ctx, float *dx, const float *dy, int nc, int h, int w)
{
  size_t work = (size_t) nc * h * w;
  if (work == 0)
    return LODE_CUDA_OK;
  upsample_backward_kernel<<<grid_for (work), BLOCK, 0, stream_of (ctx)>>> (dx, dy, nc, h, w);
  return launched ();
}

// ---- cross-entropy ----------------------------------------------------------

// Pass 1: the weight sum and the weighted loss sum, in double, by atomics on
// two doubles (sm_60 and later).
__global__ static void
ce_sums_kernel (double *sums, const float *logits, const short *target, const float *cw,
                int n, int c, size_t hw, int ignore)
{
  GRID_STRIDE (i, (size_t) n * hw)
    {
      size_t img = i / hw, q = i % hw;
      int t = target[i];
      if (t == ignore || t < 0 || t >= c)
        continue;
      const float *x = logits + img * c * hw + q;
      double mx = -INFINITY, sum = 0.0, wt = cw ? cw[t] : 1.0;
      for (int k = 0; k < c; k++)
        mx = fmax (mx, (double) x[k * hw]);
      for (int k = 0; k < c; k++)
        sum += exp (x[k * hw] - mx);
      atomicAdd (&sums[0], wt);
      atomicAdd (&sums[1], wt * -(x[t * hw] - mx - log (sum)));
    }
}

__global__ static void
ce_grad_kernel (float *dl, const float *logits, const short *target, const float *cw,
                const double *sums, int n, int c, size_t hw, int ignore, float scale)
{
  GRID_STRIDE (i, (size_t) n * hw)
    {
      size_t img = i / hw, q = i % hw;
      int t = target[i];
      const float *x = logits + img * c * hw + q;
      float *d = dl + img * c * hw + q;
      double wsum = sums[0];

      if (t == ignore || t < 0 || t >= c || wsum <= 0.0)
        {
          for (int k = 0; k < c; k++)
            d[k * hw] = 0.0f;
          continue;
        }
      double mx = -INFINITY, sum = 0.0, wt = cw ? cw[t] : 1.0;
      for (int k = 0; k < c; k++)
        mx = fmax (mx, (double) x[k * hw]);
      for (int k = 0; k < c; k++)
        sum += exp (x[k * hw] - mx);
      for (int k = 0; k < c; k++)
        d[k * hw] = (float) (scale * wt * (exp (x[k * hw] - mx) / sum - (k == t)) / wsum);
    }
}

extern "C" int
lode_grad_cuda_cross_entropy (LodeOpsCuda *ctx, float *dlogits, const float *logits,
                              const short *target, const float *class_weight,
                              int n, int c, int hw, int ignore_index, float scale,
                              double *loss_host)
{
  double *sums = NULL, host[2] = { 0.0, 0.0 };
  cudaStream_t st = stream_of (ctx);
  size_t work = (size_t) n * hw;
  int status;

  if (n <= 0 || c <= 0 || hw <= 0)
    return LODE_CUDA_ERROR_INVALID;
  TRY (lode_ops_cuda_alloc ((void **) &sums, sizeof host));
  status = cudaMemsetAsync (sums, 0, sizeof host, st) == cudaSuccess ? LODE_CUDA_OK : LODE_CUDA_ERROR_RUNTIME;
  if (status == LODE_CUDA_OK)
    {
      ce_sums_kernel<<<grid_for (work), BLOCK, 0, st>>> (sums, logits, target, class_weight, n, c, hw,
                                                         ignore_index);
      status = launched ();
    }
  if (status == LODE_CUDA_OK && dlogits != NULL)
    {
      ce_grad_kernel<<<grid_for (work), BLOCK, 0, st>>> (dlogits, logits, target, class_weight, sums,
                                                         n, c, hw, ignore_index, scale);
      status = launched ();
    }
  if (status == LODE_CUDA_OK)
    status = lode_ops_cuda_download (ctx, host, sums, sizeof host);
  lode_ops_cuda_release (sums);
  if (status == LODE_CUDA_OK && loss_host != NULL)
    *loss_host = host[0] > 0.0 ? host[1] / host[0] : 0.0;
  return status;
}

// ---- AdamW ------------------------------------------------------------------

__global__ static void
adamw_kernel (float *p, const float *g, float *m, float *v, size_t n, float lr, float b1, float b2,
              float eps, float decay, float step_size, float bc2_sqrt)
{
  GRID_STRIDE (i, n)
    {
      float gi = g[i];
      p[i] *= decay;
      m[i] = b1 * m[i] + (1.0f - b1) * gi;
      v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
      p[i] -= step_size * (m[i] / (sqrtf (v[i]) / bc2_sqrt + eps));
    }
}

extern "C" int
lode_grad_cuda_adamw (LodeOpsCuda *ctx, float *param, const float *grad, float *m, float *v,
                      size_t count, float lr, float beta1, float beta2, float eps,
                      float weight_decay, long long step)
{
  if (step < 1)
    return LODE_CUDA_ERROR_INVALID;
  if (count == 0)
    return LODE_CUDA_OK;
  double bc1 = 1.0 - pow ((double) beta1, (double) step);
  double bc2 = 1.0 - pow ((double) beta2, (double) step);
  adamw_kernel<<<grid_for (count), BLOCK, 0, stream_of (ctx)>>> (param, grad, m, v, count, lr, beta1, beta2,
                                                                 eps, 1.0f - lr * weight_decay,
                                                                 (float) (lr / bc1), (float) sqrt (bc2));
  return launched ();
}
