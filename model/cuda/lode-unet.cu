// lode-unet.cu: the U-Net's GPU kernels that lode-ops.cu and lode-grad.cu
// do not have (see lode-unet-cuda.h): channel concatenation and its
// backward for the decoder's skips, the inverse standard deviation of the
// running variances, and a device-to-device copy. Element-wise, one thread
// per output element in grid-stride loops, size_t indices; each output
// element is written by one thread only, so no atomics.
#include <cuda_runtime.h>
#include <math.h>

#pragma nv_diag_suppress 1217
#include "../lode-unet-cuda.h"
#pragma nv_diag_default 1217
#include "lode-cuda-launch.cuh"


static cudaStream_t
stream_of (LodeOpsCuda *ctx)
{
  return (cudaStream_t) lode_ops_cuda_stream (ctx);
}

static int
launched (void)
{
  return lode_ops_cuda_launch_status ("a U-Net kernel");
}

__global__ static void
invstd_kernel (float *invstd, const float *var, int c, float eps)
{
  GRID_STRIDE (j, (size_t) c)
    invstd[j] = (float) (1.0 / sqrt ((double) var[j] + eps));
}

extern "C" int
lode_unet_cuda_invstd (LodeOpsCuda *ctx, float *invstd, const float *var, int c, float eps)
{
  if (c < 0)
    return LODE_CUDA_ERROR_INVALID;
  if (c == 0)
    return LODE_CUDA_OK;
  invstd_kernel<<<grid_for ((size_t) c), BLOCK, 0, stream_of (ctx)>>> (invstd, var, c, eps);
  return launched ();
}

__global__ static void
concat_kernel (float *out, const float *a, size_t na, const float *b, size_t nb, size_t total)
{
  GRID_STRIDE (i, total)
    {
      size_t img = i / (na + nb), r = i % (na + nb);
      out[i] = r < na ? a[img * na + r] : b[img * nb + (r - na)];
    }
}

extern "C" int
lode_unet_cuda_concat_channels (LodeOpsCuda *ctx, float *out, const float *a, int ca,
                                const float *b, int cb, int n, int hw)
{
  if (n < 0 || ca < 0 || cb < 0 || hw < 0 || (cb > 0 && b == NULL))
    return LODE_CUDA_ERROR_INVALID;
  size_t na = (size_t) ca * hw, nb = (size_t) cb * hw, total = (size_t) n * (na + nb);
  if (total == 0)
    return LODE_CUDA_OK;
  concat_kernel<<<grid_for (total), BLOCK, 0, stream_of (ctx)>>> (out, a, na, b, nb, total);
  return launched ();
}

__global__ static void
split_kernel (float *da, float *db, const float *dout, size_t na, size_t nb, size_t total)
{
  GRID_STRIDE (i, total)
    {
      size_t img = i / (na + nb), r = i % (na + nb);
      if (r < na)
        {
          if (da)
            da[img * na + r] = dout[i];
        }
      else if (db)
        {
          float *d = db + img * nb + (r - na);
          *d = *d + dout[i];
        }
    }
}

extern "C" int
lode_unet_cuda_split_channels (LodeOpsCuda *ctx, float *da, float *db, const float *dout,
                               int ca, int cb, int n, int hw)
{
  if (n < 0 || ca < 0 || cb < 0 || hw < 0)
    return LODE_CUDA_ERROR_INVALID;
  size_t na = (size_t) ca * hw, nb = (size_t) cb * hw, total = (size_t) n * (na + nb);
  if (total == 0 || (da == NULL && db == NULL))
    return LODE_CUDA_OK;
  split_kernel<<<grid_for (total), BLOCK, 0, stream_of (ctx)>>> (da, db, dout, na, nb, total);
  return launched ();
}
