// lode-ops.cu: the CUDA twins of the CPU kernels in model/lode-ops.c.
//
// Matrix products go to cuBLAS, convolutions to cuDNN (legacy descriptor API,
// algorithm from the v7 heuristics, workspace from the context); the rest are
// small kernels written here, each with its CPU reference in lode-ops.c of
// the same name. Element-wise kernels use grid-stride loops with size_t
// indices so that any tensor size works with a capped grid; row kernels
// (layer norm, softmax) give one 256-thread block to a row and stride over
// rows the same way. Every launch is followed by a cudaGetLastError check.
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cudnn.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

// GLib's headers (through lode-ops.h) mark printf-like functions with
// gnu_printf, which nvcc's front end does not know.
#pragma nv_diag_suppress 1217
#include "../lode-ops-cuda.h"
#include "../lode-ops-math.h"
#pragma nv_diag_default 1217
#include "lode-cuda-launch.cuh"

struct _LodeOpsCuda
{
  cudaStream_t stream;
  cublasHandle_t cublas;
  cudnnHandle_t cudnn;
  void *workspace;
  size_t workspace_size;
  // bf16 copies of convolution operands (input, filter, output) in bf16
  // mode, each grown on demand like the workspace.
  void *cast[3];
  size_t cast_size[3];
  LodePrecision precision;
};

// ---- status and messages ----------------------------------------------------

static thread_local char last_message[512] = "no error";

static int
fail (int status, const char *format, ...)
{
  va_list args;

  va_start (args, format);
  vsnprintf (last_message, sizeof last_message, format, args);
  va_end (args);
  return status;
}

extern "C" const char *
lode_ops_cuda_last_message (void)
{
  return last_message;
}

static int
check_cuda (cudaError_t err, const char *what)
{
  if (err == cudaSuccess)
    return LODE_CUDA_OK;
  cudaGetLastError ();  // clear the error unless it is sticky
  if (err == cudaErrorMemoryAllocation)
    {
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo (&free_b, &total_b);
      cudaGetLastError ();
      return fail (LODE_CUDA_ERROR_NO_MEMORY, "%s: %s, %.0f MiB free of %.0f MiB",
                   what, cudaGetErrorString (err),
                   free_b / 1048576.0, total_b / 1048576.0);
    }
  return fail (LODE_CUDA_ERROR_RUNTIME, "%s: %s", what, cudaGetErrorString (err));
}

static int
check_cublas (cublasStatus_t st, const char *what)
{
  if (st == CUBLAS_STATUS_SUCCESS)
    return LODE_CUDA_OK;
  if (st == CUBLAS_STATUS_ALLOC_FAILED)
    return fail (LODE_CUDA_ERROR_NO_MEMORY, "%s: %s", what, cublasGetStatusString (st));
  return fail (LODE_CUDA_ERROR_CUBLAS, "%s: %s", what, cublasGetStatusString (st));
}

static int
check_cudnn (cudnnStatus_t st, const char *what)
{
  if (st == CUDNN_STATUS_SUCCESS)
    return LODE_CUDA_OK;
  if (st == CUDNN_STATUS_ALLOC_FAILED)
    return fail (LODE_CUDA_ERROR_NO_MEMORY, "%s: %s", what, cudnnGetErrorString (st));
  if (st == CUDNN_STATUS_NOT_SUPPORTED)
    return fail (LODE_CUDA_ERROR_UNSUPPORTED, "%s: %s", what, cudnnGetErrorString (st));
  return fail (LODE_CUDA_ERROR_CUDNN, "%s: %s", what, cudnnGetErrorString (st));
}

#define TRY(expr) \
  do { int s_ = (expr); if (s_ != LODE_CUDA_OK) return s_; } while (0)
#define TRY_CUDA(call, what) TRY (check_cuda ((call), (what)))
#define TRY_CUBLAS(call, what) TRY (check_cublas ((call), (what)))
#define TRY_CUDNN(call, what) TRY (check_cudnn ((call), (what)))
// After a kernel launch: bad launch configurations and earlier asynchronous
// failures show up here.
#define CHECK_LAUNCH(what) TRY_CUDA (cudaGetLastError (), (what))
#define REQUIRE(cond, what) \
  do { if (!(cond)) return fail (LODE_CUDA_ERROR_INVALID, "%s: invalid sizes", (what)); } while (0)

// ---- context and memory -----------------------------------------------------

static int
apply_math_modes (LodeOpsCuda *ctx)
{
  // The products go through cublasGemmEx, whose compute type says what
  // tensor cores may do; the math mode is for any other cuBLAS call, and
  // CUBLAS_DEFAULT_MATH never uses TF32.
  TRY_CUBLAS (cublasSetMathMode (ctx->cublas, ctx->precision == LODE_PRECISION_TF32
                                                ? CUBLAS_TF32_TENSOR_OP_MATH
                                                : CUBLAS_DEFAULT_MATH),
              "cublasSetMathMode");
  return LODE_CUDA_OK;
}

extern "C" int
lode_ops_cuda_new (LodeOpsCuda **out)
{
  LodeOpsCuda *ctx = new LodeOpsCuda ();
  int s;

  *out = NULL;
  s = check_cuda (cudaStreamCreateWithFlags (&ctx->stream, cudaStreamNonBlocking),
                  "cudaStreamCreate");
  if (s == LODE_CUDA_OK)
    s = check_cublas (cublasCreate (&ctx->cublas), "cublasCreate");
  if (s == LODE_CUDA_OK)
    s = check_cublas (cublasSetStream (ctx->cublas, ctx->stream), "cublasSetStream");
  if (s == LODE_CUDA_OK)
    s = apply_math_modes (ctx);
  if (s == LODE_CUDA_OK)
    s = check_cudnn (cudnnCreate (&ctx->cudnn), "cudnnCreate");
  if (s == LODE_CUDA_OK)
    s = check_cudnn (cudnnSetStream (ctx->cudnn, ctx->stream), "cudnnSetStream");
  if (s != LODE_CUDA_OK)
    {
      lode_ops_cuda_free (ctx);
      return s;
    }
  *out = ctx;
  return LODE_CUDA_OK;
}

extern "C" void
lode_ops_cuda_free (LodeOpsCuda *ctx)
{
  if (ctx == NULL)
    return;
  if (ctx->stream)
    cudaStreamSynchronize (ctx->stream);
  if (ctx->workspace)
    cudaFree (ctx->workspace);
  for (int i = 0; i < 3; i++)
    if (ctx->cast[i])
      cudaFree (ctx->cast[i]);
  if (ctx->cudnn)
    cudnnDestroy (ctx->cudnn);
  if (ctx->cublas)
    cublasDestroy (ctx->cublas);
  if (ctx->stream)
    cudaStreamDestroy (ctx->stream);
  delete ctx;
}

// TF32 and bf16 tensor cores came with Ampere (compute capability 8.0);
// cuBLAS and cuDNN would quietly fall back to slow paths, or refuse bf16
// convolutions, on older GPUs, so bf16 is refused there with a reason.
extern "C" int
lode_ops_cuda_set_precision (LodeOpsCuda *ctx, LodePrecision precision)
{
  if (precision == LODE_PRECISION_BF16)
    {
      int device = 0, major = 0, minor = 0;

      TRY_CUDA (cudaGetDevice (&device), "finding the GPU");
      TRY_CUDA (cudaDeviceGetAttribute (&major, cudaDevAttrComputeCapabilityMajor, device),
                "asking the GPU its compute capability");
      TRY_CUDA (cudaDeviceGetAttribute (&minor, cudaDevAttrComputeCapabilityMinor, device),
                "asking the GPU its compute capability");
      if (major < 8)
        return fail (LODE_CUDA_ERROR_UNSUPPORTED,
                     "bf16 needs a GPU of compute capability 8.0 or newer; this one is %d.%d",
                     major, minor);
    }
  ctx->precision = precision;
  return apply_math_modes (ctx);
}

extern "C" LodePrecision
lode_ops_cuda_get_precision (LodeOpsCuda *ctx)
{
  return ctx->precision;
}

extern "C" void *
lode_ops_cuda_stream (LodeOpsCuda *ctx)
{
  return (void *) ctx->stream;
}

extern "C" int
lode_ops_cuda_synchronize (LodeOpsCuda *ctx)
{
  TRY_CUDA (cudaStreamSynchronize (ctx->stream), "running GPU kernels");
  return LODE_CUDA_OK;
}

// A scratch buffer of the context, grown to at least bytes; the old one is
// freed once the device has finished with it.
static int
grow (void **buffer, size_t *size, size_t bytes)
{
  if (bytes > *size)
    {
      if (*buffer)
        {
          cudaDeviceSynchronize ();   // nothing queued may still use it
          cudaFree (*buffer);
        }
      *buffer = NULL;
      *size = 0;
      cudaError_t err = cudaMalloc (buffer, bytes);
      if (err != cudaSuccess)
        {
          char what[96];
          snprintf (what, sizeof what, "allocating %.1f MiB of GPU scratch memory",
                    bytes / 1048576.0);
          *buffer = NULL;
          return check_cuda (err, what);
        }
      *size = bytes;
    }
  return LODE_CUDA_OK;
}

static int
workspace (LodeOpsCuda *ctx, size_t bytes, void **ptr)
{
  TRY (grow (&ctx->workspace, &ctx->workspace_size, bytes));
  *ptr = ctx->workspace;
  return LODE_CUDA_OK;
}

extern "C" int
lode_ops_cuda_alloc (void **dev, size_t bytes)
{
  char what[96];

  *dev = NULL;
  snprintf (what, sizeof what, "allocating %.1f MiB of GPU memory", bytes / 1048576.0);
  int status = check_cuda (cudaMalloc (dev, bytes ? bytes : 1), what);
  if (status != LODE_CUDA_OK)
    *dev = NULL;
  return status;
}

extern "C" void
lode_ops_cuda_release (void *dev)
{
  if (dev)
    cudaFree (dev);
}

extern "C" int
lode_ops_cuda_upload (LodeOpsCuda *ctx, void *dev, const void *host, size_t bytes)
{
  TRY_CUDA (cudaMemcpyAsync (dev, host, bytes, cudaMemcpyHostToDevice, ctx->stream),
            "copying to the GPU");
  return LODE_CUDA_OK;
}

extern "C" int
lode_ops_cuda_download (LodeOpsCuda *ctx, void *host, const void *dev, size_t bytes)
{
  TRY_CUDA (cudaMemcpyAsync (host, dev, bytes, cudaMemcpyDeviceToHost, ctx->stream),
            "copying from the GPU");
  TRY_CUDA (cudaStreamSynchronize (ctx->stream), "copying from the GPU");
  return LODE_CUDA_OK;
}

extern "C" int
lode_ops_cuda_zero (LodeOpsCuda *ctx, void *dev, size_t bytes)
{
  TRY_CUDA (cudaMemsetAsync (dev, 0, bytes, ctx->stream), "clearing GPU memory");
  return LODE_CUDA_OK;
}

extern "C" int
lode_ops_cuda_copy (LodeOpsCuda *ctx, void *dst, const void *src, size_t bytes)
{
  if (bytes == 0 || dst == src)
    return LODE_CUDA_OK;
  TRY_CUDA (cudaMemcpyAsync (dst, src, bytes, cudaMemcpyDeviceToDevice, ctx->stream),
            "copying on the GPU");
  return LODE_CUDA_OK;
}

extern "C" int
lode_ops_cuda_launch_status (const char *what)
{
  return check_cuda (cudaGetLastError (), what);
}

extern "C" int
lode_ops_cuda_status (int cuda_error, const char *what)
{
  return check_cuda ((cudaError_t) cuda_error, what);
}

extern "C" int
lode_ops_cuda_cublas_status (int cublas_status, const char *what)
{
  return check_cublas ((cublasStatus_t) cublas_status, what);
}

extern "C" int
lode_ops_cuda_invalid (const char *what)
{
  return fail (LODE_CUDA_ERROR_INVALID, "%s: invalid sizes", what);
}

// ---- element-wise -------------------------------------------------------------

__global__ void
gelu_kernel (float *out, const float *in, size_t n)
{
  GRID_STRIDE (i, n)
    out[i] = lode_gelu_approx (in[i]);
}

__global__ void
gelu_tanh_kernel (float *out, const float *in, size_t n)
{
  const float k = 0.7978845608028654f;  // sqrt(2/pi)
  GRID_STRIDE (i, n)
    {
      float x = in[i];
      out[i] = 0.5f * x * (1.0f + tanhf (k * (x + 0.044715f * x * x * x)));
    }
}

__global__ void
relu_kernel (float *out, const float *in, size_t n)
{
  GRID_STRIDE (i, n)
    out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

__global__ void
sigmoid_kernel (float *out, const float *in, size_t n)
{
  GRID_STRIDE (i, n)
    {
      float x = in[i];
      if (x >= 0.0f)
        out[i] = 1.0f / (1.0f + expf (-x));
      else
        {
          float e = expf (x);
          out[i] = e / (1.0f + e);
        }
    }
}

__global__ void
add_kernel (float *out, const float *a, const float *b, size_t n)
{
  GRID_STRIDE (i, n)
    out[i] = a[i] + b[i];
}

__global__ void
mul_kernel (float *out, const float *a, const float *b, size_t n)
{
  GRID_STRIDE (i, n)
    out[i] = a[i] * b[i];
}

__global__ void
scale_kernel (float *out, const float *in, float s, size_t n)
{
  GRID_STRIDE (i, n)
    out[i] = in[i] * s;
}

// out[i] = in[i] + bias[(i / inner) % c]: channel bias (inner = hw) and row
// bias (inner = 1).
__global__ void
bias_kernel (float *out, const float *in, const float *bias, size_t n, int c, size_t inner)
{
  GRID_STRIDE (i, n)
    out[i] = in[i] + bias[(i / inner) % (size_t) c];
}

#define UNARY(name, kernel)                                                     \
  extern "C" int                                                                \
  lode_ops_cuda_##name (LodeOpsCuda *ctx, float *out, const float *in, size_t n) \
  {                                                                             \
    if (n == 0)                                                                 \
      return LODE_CUDA_OK;                                                      \
    kernel<<<grid_for (n), BLOCK, 0, ctx->stream>>> (out, in, n);               \
    CHECK_LAUNCH (#name);                                                       \
    return LODE_CUDA_OK;                                                        \
  }

UNARY (gelu, gelu_kernel)
UNARY (gelu_tanh, gelu_tanh_kernel)
UNARY (relu, relu_kernel)
UNARY (sigmoid, sigmoid_kernel)

extern "C" int
lode_ops_cuda_add (LodeOpsCuda *ctx, float *out, const float *a, const float *b, size_t n)
{
  if (n == 0)
    return LODE_CUDA_OK;
  add_kernel<<<grid_for (n), BLOCK, 0, ctx->stream>>> (out, a, b, n);
  CHECK_LAUNCH ("add");
  return LODE_CUDA_OK;
}

extern "C" int
lode_ops_cuda_mul (LodeOpsCuda *ctx, float *out, const float *a, const float *b, size_t n)
{
  if (n == 0)
    return LODE_CUDA_OK;
  mul_kernel<<<grid_for (n), BLOCK, 0, ctx->stream>>> (out, a, b, n);
  CHECK_LAUNCH ("mul");
  return LODE_CUDA_OK;
}

extern "C" int
lode_ops_cuda_scale (LodeOpsCuda *ctx, float *out, const float *in, float s, size_t n)
{
  if (n == 0)
    return LODE_CUDA_OK;
  scale_kernel<<<grid_for (n), BLOCK, 0, ctx->stream>>> (out, in, s, n);
  CHECK_LAUNCH ("scale");
  return LODE_CUDA_OK;
}

extern "C" int
lode_ops_cuda_add_channel_bias (LodeOpsCuda *ctx, float *out, const float *in,
                                const float *bias, int n, int c, int hw)
{
  size_t total = (size_t) n * c * hw;

  REQUIRE (n >= 0 && c > 0 && hw >= 0, "add_channel_bias");
  if (total == 0)
    return LODE_CUDA_OK;
  bias_kernel<<<grid_for (total), BLOCK, 0, ctx->stream>>> (out, in, bias, total, c, hw);
  CHECK_LAUNCH ("add_channel_bias");
  return LODE_CUDA_OK;
}

extern "C" int
lode_ops_cuda_add_row_bias (LodeOpsCuda *ctx, float *out, const float *in,
                            const float *bias, int rows, int c)
{
  size_t total = (size_t) rows * c;

  REQUIRE (rows >= 0 && c >= 0, "add_row_bias");
  if (total == 0)
    return LODE_CUDA_OK;
  bias_kernel<<<grid_for (total), BLOCK, 0, ctx->stream>>> (out, in, bias, total, c, 1);
  CHECK_LAUNCH ("add_row_bias");
  return LODE_CUDA_OK;
}

// ---- normalisation --------------------------------------------------------------

// One block per row (grid-stride over rows); two passes, as the CPU does.
__global__ void
layer_norm_kernel (float *out, const float *in, const float *weight, const float *bias,
                   size_t rows, int c, float eps)
{
  for (size_t r = blockIdx.x; r < rows; r += gridDim.x)
    {
      const float *x = in + r * c;
      float *y = out + r * c;
      float s = 0.0f;

      for (int j = threadIdx.x; j < c; j += blockDim.x)
        s += x[j];
      float mean = block_sum (s) / c;
      s = 0.0f;
      for (int j = threadIdx.x; j < c; j += blockDim.x)
        {
          float d = x[j] - mean;
          s += d * d;
        }
      float rstd = 1.0f / sqrtf (block_sum (s) / c + eps);
      for (int j = threadIdx.x; j < c; j += blockDim.x)
        {
          float v = (x[j] - mean) * rstd;
          if (weight)
            v *= weight[j];
          if (bias)
            v += bias[j];
          y[j] = v;
        }
    }
}

// One thread per pixel; neighbouring threads read neighbouring pixels of the
// same channel plane, so the channel loop is coalesced.
__global__ void
layer_norm2d_kernel (float *out, const float *in, const float *weight, const float *bias,
                     size_t npix, int c, size_t hw, float eps)
{
  GRID_STRIDE (t, npix)
    {
      size_t base = (t / hw) * c * hw + t % hw;
      float mean = 0.0f, var = 0.0f;

      for (int j = 0; j < c; j++)
        mean += in[base + j * hw];
      mean /= c;
      for (int j = 0; j < c; j++)
        {
          float d = in[base + j * hw] - mean;
          var += d * d;
        }
      float rstd = 1.0f / sqrtf (var / c + eps);
      for (int j = 0; j < c; j++)
        {
          float v = (in[base + j * hw] - mean) * rstd;
          out[base + j * hw] = v * (weight ? weight[j] : 1.0f) + (bias ? bias[j] : 0.0f);
        }
    }
}

__global__ void
batch_norm_kernel (float *out, const float *in, const float *mean, const float *var,
                   const float *weight, const float *bias, size_t n, int c, size_t hw,
                   float eps)
{
  GRID_STRIDE (i, n)
    {
      int j = (int) ((i / hw) % (size_t) c);
      float a = 1.0f / sqrtf (var[j] + eps);
      if (weight)
        a *= weight[j];
      float b = (bias ? bias[j] : 0.0f) - mean[j] * a;
      out[i] = in[i] * a + b;
    }
}

extern "C" int
lode_ops_cuda_layer_norm (LodeOpsCuda *ctx, float *out, const float *in,
                          const float *weight, const float *bias,
                          int rows, int c, float eps)
{
  REQUIRE (rows >= 0 && c > 0, "layer_norm");
  if (rows == 0)
    return LODE_CUDA_OK;
  layer_norm_kernel<<<grid_rows (rows), BLOCK, 0, ctx->stream>>> (out, in, weight, bias,
                                                                   rows, c, eps);
  CHECK_LAUNCH ("layer_norm");
  return LODE_CUDA_OK;
}

extern "C" int
lode_ops_cuda_layer_norm2d (LodeOpsCuda *ctx, float *out, const float *in,
                            const float *weight, const float *bias,
                            int n, int c, int hw, float eps)
{
  size_t npix = (size_t) n * hw;

  REQUIRE (n >= 0 && c > 0 && hw >= 0, "layer_norm2d");
  if (npix == 0)
    return LODE_CUDA_OK;
  layer_norm2d_kernel<<<grid_for (npix), BLOCK, 0, ctx->stream>>> (out, in, weight, bias,
                                                                    npix, c, hw, eps);
  CHECK_LAUNCH ("layer_norm2d");
  return LODE_CUDA_OK;
}

extern "C" int
lode_ops_cuda_batch_norm (LodeOpsCuda *ctx, float *out, const float *in,
                          const float *mean, const float *var,
                          const float *weight, const float *bias,
                          int n, int c, int hw, float eps)
{
  size_t total = (size_t) n * c * hw;

  REQUIRE (n >= 0 && c > 0 && hw >= 0, "batch_norm");
  if (total == 0)
    return LODE_CUDA_OK;
  batch_norm_kernel<<<grid_for (total), BLOCK, 0, ctx->stream>>> (out, in, mean, var,
                                                                   weight, bias, total,
                                                                   c, hw, eps);
  CHECK_LAUNCH ("batch_norm");
  return LODE_CUDA_OK;
}

// ---- softmax ------------------------------------------------------------------------

__global__ void
softmax_kernel (float *out, const float *in, size_t rows, int c)
{
  for (size_t r = blockIdx.x; r < rows; r += gridDim.x)
    {
      const float *x = in + r * c;
      float *y = out + r * c;
      float m = -INFINITY, s = 0.0f;

      for (int j = threadIdx.x; j < c; j += blockDim.x)
        m = fmaxf (m, x[j]);
      m = block_max (m);
      for (int j = threadIdx.x; j < c; j += blockDim.x)
        s += expf (x[j] - m);
      float inv = 1.0f / block_sum (s);
      // x may be y: each element is read here before its own thread writes it
      for (int j = threadIdx.x; j < c; j += blockDim.x)
        y[j] = expf (x[j] - m) * inv;
    }
}

extern "C" int
lode_ops_cuda_softmax (LodeOpsCuda *ctx, float *out, const float *in, int rows, int c)
{
  REQUIRE (rows >= 0 && c > 0, "softmax");
  if (rows == 0)
    return LODE_CUDA_OK;
  softmax_kernel<<<grid_rows (rows), BLOCK, 0, ctx->stream>>> (out, in, rows, c);
  CHECK_LAUNCH ("softmax");
  return LODE_CUDA_OK;
}

// ---- matrix products (cuBLAS) ---------------------------------------------------

static cublasComputeType_t
compute_type (LodeOpsCuda *ctx)
{
  switch (ctx->precision)
    {
    case LODE_PRECISION_TF32:
      return CUBLAS_COMPUTE_32F_FAST_TF32;
    case LODE_PRECISION_BF16:
      // fp32 matrices in and out; the tensor cores see the operands rounded
      // to bf16 and sum in fp32 (lode_ops_round_bf16 then sgemm on the CPU).
      return CUBLAS_COMPUTE_32F_FAST_16BF;
    case LODE_PRECISION_FP32:
    default:
      return CUBLAS_COMPUTE_32F;
    }
}

// cuBLAS is column-major: the row-major product C[m,n] = op(A) op(B) is the
// column-major product C^T[n,m] = op(B)^T op(A)^T, so B goes first and
// the leading dimensions are the row lengths of the stored matrices.
extern "C" int
lode_ops_cuda_gemm_strided (LodeOpsCuda *ctx, int trans_a, int trans_b,
                            int batch, int m, int n, int k, float alpha,
                            const float *a, int lda, long long stride_a,
                            const float *b, int ldb, long long stride_b,
                            float beta, float *c, int ldc, long long stride_c)
{
  REQUIRE (batch >= 0 && m >= 0 && n >= 0 && k >= 0 && ldc >= n
           && lda >= (trans_a ? m : k) && ldb >= (trans_b ? k : n), "gemm");
  if (batch == 0 || m == 0 || n == 0)
    return LODE_CUDA_OK;
  if (k == 0)
    {
      // Nothing to multiply: C = beta * C, row by row (C may be strided).
      for (int i = 0; i < batch; i++)
        for (int r = 0; r < m; r++)
          {
            float *row = c + i * stride_c + (size_t) r * ldc;
            if (beta == 0.0f)
              TRY (lode_ops_cuda_zero (ctx, row, sizeof (float) * (size_t) n));
            else
              TRY (lode_ops_cuda_scale (ctx, row, row, beta, (size_t) n));
          }
      return LODE_CUDA_OK;
    }

  cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;

  if (batch == 1)
    TRY_CUBLAS (cublasGemmEx (ctx->cublas, op_b, op_a, n, m, k, &alpha,
                              b, CUDA_R_32F, ldb, a, CUDA_R_32F, lda, &beta,
                              c, CUDA_R_32F, ldc, compute_type (ctx), CUBLAS_GEMM_DEFAULT),
                "cublasGemmEx");
  else
    TRY_CUBLAS (cublasGemmStridedBatchedEx (ctx->cublas, op_b, op_a, n, m, k, &alpha,
                                            b, CUDA_R_32F, ldb, stride_b,
                                            a, CUDA_R_32F, lda, stride_a, &beta,
                                            c, CUDA_R_32F, ldc, stride_c, batch,
                                            compute_type (ctx), CUBLAS_GEMM_DEFAULT),
                "cublasGemmStridedBatchedEx");
  return LODE_CUDA_OK;
}

extern "C" int
lode_ops_cuda_gemm_batched (LodeOpsCuda *ctx, int trans_a, int trans_b,
                            int batch, int m, int n, int k, float alpha,
                            const float *a, long long stride_a,
                            const float *b, long long stride_b,
                            float beta, float *c, long long stride_c)
{
  return lode_ops_cuda_gemm_strided (ctx, trans_a, trans_b, batch, m, n, k, alpha,
                                     a, trans_a ? m : k, stride_a,
                                     b, trans_b ? k : n, stride_b,
                                     beta, c, n, stride_c);
}

extern "C" int
lode_ops_cuda_gemm (LodeOpsCuda *ctx, int trans_a, int trans_b,
                    int m, int n, int k, float alpha,
                    const float *a, const float *b, float beta, float *c)
{
  return lode_ops_cuda_gemm_batched (ctx, trans_a, trans_b, 1, m, n, k, alpha,
                                     a, 0, b, 0, beta, c, 0);
}

extern "C" int
lode_ops_cuda_matmul (LodeOpsCuda *ctx, float *out, const float *a, const float *b,
                      const float *bias, int m, int n, int k, int b_is_weight)
{
  TRY (lode_ops_cuda_gemm (ctx, 0, b_is_weight, m, n, k, 1.0f, a, b, 0.0f, out));
  if (bias)
    TRY (lode_ops_cuda_add_row_bias (ctx, out, out, bias, m, n));
  return LODE_CUDA_OK;
}

extern "C" int
lode_ops_cuda_linear (LodeOpsCuda *ctx, float *out, const float *x,
                      const float *weight, const float *bias,
                      int rows, int in_f, int out_f)
{
  return lode_ops_cuda_matmul (ctx, out, x, weight, bias, rows, out_f, in_f, 1);
}

// ---- attention --------------------------------------------------------------------

// Scores are kept below this many floats (256 MiB) by taking several heads, or
// a block of query rows of one head, at a time.
static const size_t ATTENTION_SCRATCH = (size_t) 1 << 26;

extern "C" int
lode_ops_cuda_attention (LodeOpsCuda *ctx, float *out, const float *q, const float *k,
                         const float *v, int b, int h, int lq, int lk, int d)
{
  REQUIRE (b >= 0 && h >= 0 && lq >= 0 && lk > 0 && d > 0, "attention");
  long long bh = (long long) b * h;
  if (bh == 0 || lq == 0)
    return LODE_CUDA_OK;

  size_t per_head = (size_t) lq * lk;
  long long heads = per_head >= ATTENTION_SCRATCH ? 1
                    : (long long) (ATTENTION_SCRATCH / per_head);
  int rows = lq;
  if (heads > bh)
    heads = bh;
  if (heads > 65535)
    heads = 65535;  // cublasSgemmStridedBatched's batch is an int; stay modest
  if (per_head > ATTENTION_SCRATCH)
    rows = (int) (ATTENTION_SCRATCH / lk > 0 ? ATTENTION_SCRATCH / lk : 1);

  float *scores;
  TRY (workspace (ctx, sizeof (float) * (size_t) heads * rows * lk, (void **) &scores));
  float scale = 1.0f / sqrtf ((float) d);

  for (long long h0 = 0; h0 < bh; h0 += heads)
    {
      int nh = (int) (bh - h0 < heads ? bh - h0 : heads);
      for (int r0 = 0; r0 < lq; r0 += rows)
        {
          int nr = lq - r0 < rows ? lq - r0 : rows;
          const float *qh = q + ((size_t) h0 * lq + r0) * d;
          const float *kh = k + (size_t) h0 * lk * d;
          const float *vh = v + (size_t) h0 * lk * d;
          float *oh = out + ((size_t) h0 * lq + r0) * d;

          // scores[nh][nr, lk] = q[r0:r0+nr] k^T / sqrt(d)
          TRY (lode_ops_cuda_gemm_batched (ctx, 0, 1, nh, nr, lk, d, scale,
                                           qh, (long long) lq * d,
                                           kh, (long long) lk * d,
                                           0.0f, scores, (long long) nr * lk));
          TRY (lode_ops_cuda_softmax (ctx, scores, scores, nh * nr, lk));
          // out[r0:r0+nr] = scores v
          TRY (lode_ops_cuda_gemm_batched (ctx, 0, 0, nh, nr, d, lk, 1.0f,
                                           scores, (long long) nr * lk,
                                           vh, (long long) lk * d,
                                           0.0f, oh, (long long) lq * d));
        }
    }
  return LODE_CUDA_OK;
}

// ---- bf16 copies -------------------------------------------------------------------

__global__ static void
to_bf16_kernel (__nv_bfloat16 *out, const float *in, size_t n)
{
  GRID_STRIDE (i, n)
    out[i] = __float2bfloat16_rn (in[i]);
}

__global__ static void
from_bf16_kernel (float *out, const __nv_bfloat16 *in, size_t n, int accumulate)
{
  GRID_STRIDE (i, n)
    {
      float v = __bfloat162float (in[i]);
      out[i] = accumulate ? out[i] + v : v;
    }
}

// Cast slot of the context, holding at least n bf16 values.
static int
bf16_slot (LodeOpsCuda *ctx, int slot, size_t n, __nv_bfloat16 **out)
{
  TRY (grow (&ctx->cast[slot], &ctx->cast_size[slot], sizeof (__nv_bfloat16) * (n ? n : 1)));
  *out = (__nv_bfloat16 *) ctx->cast[slot];
  return LODE_CUDA_OK;
}

// in rounded to bf16 into cast slot.
static int
to_bf16 (LodeOpsCuda *ctx, int slot, const float *in, size_t n, const void **out)
{
  __nv_bfloat16 *b;

  TRY (bf16_slot (ctx, slot, n, &b));
  if (n > 0)
    {
      to_bf16_kernel<<<grid_for (n), BLOCK, 0, ctx->stream>>> (b, in, n);
      CHECK_LAUNCH ("rounding to bf16");
    }
  *out = b;
  return LODE_CUDA_OK;
}

static int
from_bf16 (LodeOpsCuda *ctx, float *out, const __nv_bfloat16 *in, size_t n, int accumulate)
{
  if (n == 0)
    return LODE_CUDA_OK;
  from_bf16_kernel<<<grid_for (n), BLOCK, 0, ctx->stream>>> (out, in, n, accumulate);
  CHECK_LAUNCH ("widening bf16");
  return LODE_CUDA_OK;
}

extern "C" int
lode_ops_cuda_round_bf16 (LodeOpsCuda *ctx, float *out, const float *in, size_t count)
{
  const void *b;

  TRY (to_bf16 (ctx, 0, in, count, &b));
  return from_bf16 (ctx, out, (const __nv_bfloat16 *) b, count, 0);
}

// ---- convolutions (cuDNN) ---------------------------------------------------------

// The descriptors of one convolution, destroyed on every return path.
struct ConvDescs
{
  cudnnTensorDescriptor_t x = NULL, y = NULL;
  cudnnFilterDescriptor_t w = NULL;
  cudnnConvolutionDescriptor_t conv = NULL;

  ~ConvDescs ()
  {
    if (x) cudnnDestroyTensorDescriptor (x);
    if (y) cudnnDestroyTensorDescriptor (y);
    if (w) cudnnDestroyFilterDescriptor (w);
    if (conv) cudnnDestroyConvolutionDescriptor (conv);
  }
};

// A convolution as cuDNN sees its forward direction: x [n, xc, xh, xw] ->
// y [n, yc, yh, yw] with the filter [fk, fc, kh, kw].
struct ConvGeo
{
  int xc, xh, xw, yc, yh, yw, fk, fc;
};

static int
conv_descs (LodeOpsCuda *ctx, ConvDescs *cd, const LodeConvShape *s, const ConvGeo &g, bool bf16)
{
  cudnnDataType_t type = bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;

  TRY_CUDNN (cudnnCreateTensorDescriptor (&cd->x), "cudnnCreateTensorDescriptor");
  TRY_CUDNN (cudnnCreateTensorDescriptor (&cd->y), "cudnnCreateTensorDescriptor");
  TRY_CUDNN (cudnnCreateFilterDescriptor (&cd->w), "cudnnCreateFilterDescriptor");
  TRY_CUDNN (cudnnCreateConvolutionDescriptor (&cd->conv), "cudnnCreateConvolutionDescriptor");
  TRY_CUDNN (cudnnSetTensor4dDescriptor (cd->x, CUDNN_TENSOR_NCHW, type,
                                         s->n, g.xc, g.xh, g.xw), "cudnnSetTensor4dDescriptor");
  TRY_CUDNN (cudnnSetTensor4dDescriptor (cd->y, CUDNN_TENSOR_NCHW, type,
                                         s->n, g.yc, g.yh, g.yw), "cudnnSetTensor4dDescriptor");
  TRY_CUDNN (cudnnSetFilter4dDescriptor (cd->w, type, CUDNN_TENSOR_NCHW,
                                         g.fk, g.fc, s->kh, s->kw), "cudnnSetFilter4dDescriptor");
  // Sums in fp32 whatever the operands are (cuDNN's "pseudo bf16" setting).
  TRY_CUDNN (cudnnSetConvolution2dDescriptor (cd->conv, s->pad_h, s->pad_w,
                                              s->stride_h, s->stride_w,
                                              s->dil_h, s->dil_w,
                                              CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
             "cudnnSetConvolution2dDescriptor");
  TRY_CUDNN (cudnnSetConvolutionGroupCount (cd->conv, s->groups),
             "cudnnSetConvolutionGroupCount");
  // FMA math keeps cuDNN off TF32 tensor cores, so that fp32 results agree
  // with the CPU to fp32 rounding; TF32 when the caller allowed it (or asked
  // for bf16, for a convolution that falls back to fp32 operands); tensor
  // cores for bf16 operands.
  cudnnMathType_t math = bf16 ? CUDNN_TENSOR_OP_MATH
                         : ctx->precision != LODE_PRECISION_FP32 ? CUDNN_DEFAULT_MATH
                         : CUDNN_FMA_MATH;
  TRY_CUDNN (cudnnSetConvolutionMathType (cd->conv, math), "cudnnSetConvolutionMathType");
  return LODE_CUDA_OK;
}

// The heuristics rank the algorithms; run the first that works, stepping
// past those whose workspace does not fit in GPU memory. Deterministic
// algorithms come first, so that a seeded training run repeats itself (the
// backward passes have atomics-based ones), and the others only when none of
// those runs. size (algo, &bytes) and run (algo, workspace, bytes) make the
// cuDNN calls.
template <typename Perf, typename SizeFn, typename RunFn>
static int
run_ranked (LodeOpsCuda *ctx, const Perf *perf, int found, const char *what,
            SizeFn size, RunFn run)
{
  int status = fail (LODE_CUDA_ERROR_UNSUPPORTED, "%s: no cuDNN algorithm for these sizes",
                     what);

  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < found; i++)
      {
        size_t bytes = 0;
        void *ws = NULL;

        if (perf[i].status != CUDNN_STATUS_SUCCESS
            || (perf[i].determinism == CUDNN_DETERMINISTIC) != (pass == 0))
          continue;
        status = check_cudnn (size (perf[i].algo, &bytes), what);
        if (status == LODE_CUDA_OK)
          status = workspace (ctx, bytes, &ws);
        if (status == LODE_CUDA_OK)
          status = check_cudnn (run (perf[i].algo, ws, bytes), what);
        if (status == LODE_CUDA_OK)
          return LODE_CUDA_OK;
      }
  return status;
}

enum ConvDir { CONV_FORWARD, CONV_BACKWARD_DATA, CONV_BACKWARD_FILTER };

// One cuDNN pass over the convolution g: the forward pass writes y from x
// and w, the backward-data pass x from y and w, the backward-filter pass w
// from x and y. The output is overwritten, or added to with accumulate. In
// bf16 mode the two inputs go through bf16 copies (cast slots 0 and 1) and
// the output comes back through a third (slot 2), widened into fp32.
static int
conv_pass_as (LodeOpsCuda *ctx, bool bf16, ConvDir dir, const LodeConvShape *s, const ConvGeo &g,
              const float *x, const float *w, const float *y, float *out, int accumulate,
              const char *what)
{
  size_t nx = (size_t) s->n * g.xc * g.xh * g.xw;
  size_t nw = (size_t) g.fk * g.fc * s->kh * s->kw;
  size_t ny = (size_t) s->n * g.yc * g.yh * g.yw;
  size_t nout = dir == CONV_FORWARD ? ny : dir == CONV_BACKWARD_DATA ? nx : nw;
  const void *xin = x, *win = w, *yin = y;
  void *dst = out;
  float beta = accumulate ? 1.0f : 0.0f;
  const float one = 1.0f;
  ConvDescs cd;

  if (nout == 0)
    return LODE_CUDA_OK;
  TRY (conv_descs (ctx, &cd, s, g, bf16));
  if (bf16)
    {
      int slot = 0;
      __nv_bfloat16 *b;

      if (dir != CONV_BACKWARD_DATA)
        TRY (to_bf16 (ctx, slot++, x, nx, &xin));
      if (dir != CONV_BACKWARD_FILTER)
        TRY (to_bf16 (ctx, slot++, w, nw, &win));
      if (dir != CONV_FORWARD)
        TRY (to_bf16 (ctx, slot++, y, ny, &yin));
      TRY (bf16_slot (ctx, 2, nout, &b));
      dst = b;
      beta = 0.0f;
    }

  int found = 0;
  if (dir == CONV_FORWARD)
    {
      cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
      TRY_CUDNN (cudnnGetConvolutionForwardAlgorithm_v7 (ctx->cudnn, cd.x, cd.w, cd.conv, cd.y,
                                                          CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                                          &found, perf),
                 "cudnnGetConvolutionForwardAlgorithm_v7");
      TRY (run_ranked (ctx, perf, found, what,
                       [&] (cudnnConvolutionFwdAlgo_t algo, size_t *bytes) {
                         return cudnnGetConvolutionForwardWorkspaceSize (ctx->cudnn, cd.x, cd.w,
                                                                         cd.conv, cd.y, algo,
                                                                         bytes);
                       },
                       [&] (cudnnConvolutionFwdAlgo_t algo, void *ws, size_t bytes) {
                         return cudnnConvolutionForward (ctx->cudnn, &one, cd.x, xin, cd.w, win,
                                                         cd.conv, algo, ws, bytes,
                                                         &beta, cd.y, dst);
                       }));
    }
  else if (dir == CONV_BACKWARD_DATA)
    {
      cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
      TRY_CUDNN (cudnnGetConvolutionBackwardDataAlgorithm_v7 (ctx->cudnn, cd.w, cd.y, cd.conv,
                                                               cd.x,
                                                               CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                                                               &found, perf),
                 "cudnnGetConvolutionBackwardDataAlgorithm_v7");
      TRY (run_ranked (ctx, perf, found, what,
                       [&] (cudnnConvolutionBwdDataAlgo_t algo, size_t *bytes) {
                         return cudnnGetConvolutionBackwardDataWorkspaceSize (ctx->cudnn, cd.w,
                                                                              cd.y, cd.conv,
                                                                              cd.x, algo, bytes);
                       },
                       [&] (cudnnConvolutionBwdDataAlgo_t algo, void *ws, size_t bytes) {
                         return cudnnConvolutionBackwardData (ctx->cudnn, &one, cd.w, win,
                                                              cd.y, yin, cd.conv, algo,
                                                              ws, bytes, &beta, cd.x, dst);
                       }));
    }
  else
    {
      cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
      TRY_CUDNN (cudnnGetConvolutionBackwardFilterAlgorithm_v7 (ctx->cudnn, cd.x, cd.y, cd.conv,
                                                                 cd.w,
                                                                 CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                                                                 &found, perf),
                 "cudnnGetConvolutionBackwardFilterAlgorithm_v7");
      TRY (run_ranked (ctx, perf, found, what,
                       [&] (cudnnConvolutionBwdFilterAlgo_t algo, size_t *bytes) {
                         return cudnnGetConvolutionBackwardFilterWorkspaceSize (ctx->cudnn, cd.x,
                                                                                cd.y, cd.conv,
                                                                                cd.w, algo,
                                                                                bytes);
                       },
                       [&] (cudnnConvolutionBwdFilterAlgo_t algo, void *ws, size_t bytes) {
                         return cudnnConvolutionBackwardFilter (ctx->cudnn, &one, cd.x, xin,
                                                                cd.y, yin, cd.conv, algo,
                                                                ws, bytes, &beta, cd.w, dst);
                       }));
    }
  if (bf16)
    TRY (from_bf16 (ctx, out, (const __nv_bfloat16 *) dst, nout, accumulate));
  return LODE_CUDA_OK;
}

// conv_pass_as in the context's precision. A convolution that cuDNN has no
// bf16 algorithm for (some versions want channel counts that are multiples
// of 8 for bf16, which a first convolution on 6 or 13 bands is not) runs
// with fp32 operands instead, so that bf16 mode never fails where fp32 works.
static int
conv_pass (LodeOpsCuda *ctx, ConvDir dir, const LodeConvShape *s, const ConvGeo &g,
           const float *x, const float *w, const float *y, float *out, int accumulate,
           const char *what)
{
  if (ctx->precision == LODE_PRECISION_BF16)
    {
      int status = conv_pass_as (ctx, true, dir, s, g, x, w, y, out, accumulate, what);
      if (status != LODE_CUDA_ERROR_UNSUPPORTED)
        return status;
    }
  return conv_pass_as (ctx, false, dir, s, g, x, w, y, out, accumulate, what);
}

extern "C" int
lode_ops_cuda_conv2d (LodeOpsCuda *ctx, float *out, const float *in,
                      const float *weight, const float *bias, const LodeConvShape *s)
{
  int oh, ow;

  REQUIRE (lode_conv_shape_out_size (s, &oh, &ow), "conv2d");
  ConvGeo g = { s->c_in, s->h, s->w, s->c_out, oh, ow, s->c_out, s->c_in / s->groups };
  TRY (conv_pass (ctx, CONV_FORWARD, s, g, in, weight, NULL, out, 0,
                  "conv2d (cudnnConvolutionForward)"));
  if (bias)
    TRY (lode_ops_cuda_add_channel_bias (ctx, out, out, bias, s->n, s->c_out, oh * ow));
  return LODE_CUDA_OK;
}

// ConvTranspose2d is the backward-data pass of the convolution that maps its
// output [n, c_out, oh, ow] back to its input [n, c_in, h, w]; that
// convolution's filter [c_in, c_out/groups, kh, kw] is the transposed
// convolution's weight as torch stores it.
extern "C" int
lode_ops_cuda_conv_transpose2d (LodeOpsCuda *ctx, float *out, const float *in,
                                const float *weight, const float *bias,
                                const LodeConvShape *s)
{
  int oh, ow;

  REQUIRE (lode_conv_shape_tout_size (s, &oh, &ow), "conv_transpose2d");
  ConvGeo g = { s->c_out, oh, ow, s->c_in, s->h, s->w, s->c_in, s->c_out / s->groups };
  TRY (conv_pass (ctx, CONV_BACKWARD_DATA, s, g, NULL, weight, in, out, 0,
                  "conv_transpose2d (cudnnConvolutionBackwardData)"));
  if (bias)
    TRY (lode_ops_cuda_add_channel_bias (ctx, out, out, bias, s->n, s->c_out, oh * ow));
  return LODE_CUDA_OK;
}

extern "C" int
lode_ops_cuda_conv2d_backward (LodeOpsCuda *ctx, float *dx, float *dweight, const float *dy,
                               const float *x, const float *weight, const LodeConvShape *s,
                               int accumulate_dx)
{
  int oh, ow;

  REQUIRE (lode_conv_shape_out_size (s, &oh, &ow), "conv2d backward");
  ConvGeo g = { s->c_in, s->h, s->w, s->c_out, oh, ow, s->c_out, s->c_in / s->groups };
  if (dx != NULL)
    TRY (conv_pass (ctx, CONV_BACKWARD_DATA, s, g, NULL, weight, dy, dx, accumulate_dx,
                    "conv2d backward (cudnnConvolutionBackwardData)"));
  if (dweight != NULL)
    TRY (conv_pass (ctx, CONV_BACKWARD_FILTER, s, g, x, NULL, dy, dweight, 1,
                    "conv2d backward (cudnnConvolutionBackwardFilter)"));
  return LODE_CUDA_OK;
}

// ---- pooling and resizing -----------------------------------------------------------

__global__ void
max_pool_kernel (float *out, const float *in, size_t total, int h, int w, int oh, int ow,
                 int kernel, int stride, int pad)
{
  GRID_STRIDE (i, total)
    {
      int ox = (int) (i % ow);
      int oy = (int) ((i / ow) % oh);
      const float *x = in + (i / ((size_t) ow * oh)) * h * w;
      float m = -INFINITY;

      for (int ky = 0; ky < kernel; ky++)
        {
          int iy = oy * stride - pad + ky;
          if (iy < 0 || iy >= h)
            continue;
          for (int kx = 0; kx < kernel; kx++)
            {
              int ix = ox * stride - pad + kx;
              if (ix >= 0 && ix < w)
                m = fmaxf (m, x[(size_t) iy * w + ix]);
            }
        }
      out[i] = m;
    }
}

extern "C" int
lode_ops_cuda_max_pool2d (LodeOpsCuda *ctx, float *out, const float *in,
                          int n, int c, int h, int w, int kernel, int stride, int pad)
{
  REQUIRE (n >= 0 && c >= 0 && h > 0 && w > 0 && kernel > 0 && stride > 0 && pad >= 0,
           "max_pool2d");
  int oh = lode_ops_pool_out_size (h, kernel, stride, pad);
  int ow = lode_ops_pool_out_size (w, kernel, stride, pad);
  size_t total = (size_t) n * c * oh * ow;
  if (total == 0)
    return LODE_CUDA_OK;
  max_pool_kernel<<<grid_for (total), BLOCK, 0, ctx->stream>>> (out, in, total, h, w, oh, ow,
                                                                 kernel, stride, pad);
  CHECK_LAUNCH ("max_pool2d");
  return LODE_CUDA_OK;
}

// Same arithmetic as bilinear_source () and nearest_source () in lode-ops.c.
__device__ void
bilinear_source_dev (int dst, int in_size, int out_size, bool align_corners,
                     int *i0, int *i1, float *frac)
{
  float src;

  if (align_corners)
    {
      float scale = out_size > 1 ? (float) (in_size - 1) / (out_size - 1) : 0.0f;
      src = scale * dst;
    }
  else
    {
      float scale = (float) in_size / out_size;
      src = fmaxf (scale * (dst + 0.5f) - 0.5f, 0.0f);
    }
  *i0 = min ((int) src, in_size - 1);
  *i1 = *i0 + (*i0 < in_size - 1 ? 1 : 0);
  *frac = fminf (fmaxf (src - *i0, 0.0f), 1.0f);
}

__device__ int
nearest_source_dev (int dst, int in_size, int out_size)
{
  float scale = (float) in_size / out_size;
  return min ((int) floorf (dst * scale), in_size - 1);
}

__global__ void
resize_kernel (float *out, const float *in, size_t total, int h, int w, int oh, int ow,
               int mode)
{
  GRID_STRIDE (i, total)
    {
      int ox = (int) (i % ow);
      int oy = (int) ((i / ow) % oh);
      const float *x = in + (i / ((size_t) ow * oh)) * h * w;

      if (mode == LODE_RESIZE_NEAREST)
        {
          out[i] = x[(size_t) nearest_source_dev (oy, h, oh) * w
                     + nearest_source_dev (ox, w, ow)];
        }
      else
        {
          bool align = mode == LODE_RESIZE_BILINEAR_ALIGN_CORNERS;
          int y0, y1, x0, x1;
          float fy, fx;

          bilinear_source_dev (oy, h, oh, align, &y0, &y1, &fy);
          bilinear_source_dev (ox, w, ow, align, &x0, &x1, &fx);
          const float *r0 = x + (size_t) y0 * w;
          const float *r1 = x + (size_t) y1 * w;
          out[i] = (1.0f - fy) * ((1.0f - fx) * r0[x0] + fx * r0[x1])
                   + fy * ((1.0f - fx) * r1[x0] + fx * r1[x1]);
        }
    }
}

extern "C" int
lode_ops_cuda_resize (LodeOpsCuda *ctx, float *out, const float *in,
                      int nc, int h, int w, int out_h, int out_w, LodeResizeMode mode)
{
  REQUIRE (nc >= 0 && h > 0 && w > 0 && out_h > 0 && out_w > 0, "resize");
  size_t total = (size_t) nc * out_h * out_w;
  if (total == 0)
    return LODE_CUDA_OK;
  resize_kernel<<<grid_for (total), BLOCK, 0, ctx->stream>>> (out, in, total, h, w,
                                                               out_h, out_w, (int) mode);
  CHECK_LAUNCH ("resize");
  return LODE_CUDA_OK;
}

// ---- layout -------------------------------------------------------------------------

// One thread per element of the windows [b*nh*nw, win, win, c].
__global__ void
window_partition_kernel (float *out, const float *in, size_t total, int h, int w, int c,
                         int win, int nh, int nw)
{
  GRID_STRIDE (i, total)
    {
      int ch = (int) (i % c);
      size_t t = i / c;
      int ix = (int) (t % win); t /= win;
      int iy = (int) (t % win); t /= win;
      int wx = (int) (t % nw); t /= nw;
      int wy = (int) (t % nh);
      size_t bi = t / nh;
      int y = wy * win + iy, x = wx * win + ix;

      out[i] = (y < h && x < w) ? in[((bi * h + y) * w + x) * c + ch] : 0.0f;
    }
}

// One thread per element of the image [b, h, w, c].
__global__ void
window_unpartition_kernel (float *out, const float *windows, size_t total, int h, int w,
                           int c, int win, int nh, int nw)
{
  GRID_STRIDE (i, total)
    {
      int ch = (int) (i % c);
      size_t t = i / c;
      int x = (int) (t % w); t /= w;
      int y = (int) (t % h);
      size_t bi = t / h;
      size_t widx = (bi * nh + y / win) * nw + x / win;

      out[i] = windows[((widx * win + y % win) * win + x % win) * c + ch];
    }
}

extern "C" int
lode_ops_cuda_window_partition (LodeOpsCuda *ctx, float *out, const float *in,
                                int b, int h, int w, int c, int win)
{
  REQUIRE (b >= 0 && h > 0 && w > 0 && c > 0 && win > 0, "window_partition");
  int nh = (h + win - 1) / win, nw = (w + win - 1) / win;
  size_t total = (size_t) b * nh * nw * win * win * c;
  if (total == 0)
    return LODE_CUDA_OK;
  window_partition_kernel<<<grid_for (total), BLOCK, 0, ctx->stream>>> (out, in, total, h, w,
                                                                         c, win, nh, nw);
  CHECK_LAUNCH ("window_partition");
  return LODE_CUDA_OK;
}

extern "C" int
lode_ops_cuda_window_unpartition (LodeOpsCuda *ctx, float *out, const float *windows,
                                  int b, int h, int w, int c, int win)
{
  REQUIRE (b >= 0 && h > 0 && w > 0 && c > 0 && win > 0, "window_unpartition");
  int nh = (h + win - 1) / win, nw = (w + win - 1) / win;
  size_t total = (size_t) b * h * w * c;
  if (total == 0)
    return LODE_CUDA_OK;
  window_unpartition_kernel<<<grid_for (total), BLOCK, 0, ctx->stream>>> (out, windows, total,
                                                                           h, w, c, win,
                                                                           nh, nw);
  CHECK_LAUNCH ("window_unpartition");
  return LODE_CUDA_OK;
}

struct Perm4
{
  long long out_dims[4];
  long long in_strides[4];  // input stride of each output dimension
};

__global__ void
permute4_kernel (float *out, const float *in, size_t total, Perm4 p)
{
  GRID_STRIDE (i, total)
    {
      size_t t = i, src = 0;
      for (int d = 3; d >= 0; d--)
        {
          src += (t % p.out_dims[d]) * p.in_strides[d];
          t /= p.out_dims[d];
        }
      out[i] = in[src];
    }
}

extern "C" int
lode_ops_cuda_permute4 (LodeOpsCuda *ctx, float *out, const float *in,
                        const int dims[4], const int perm[4])
{
  long long stride[4];
  Perm4 p;
  size_t total = 1;

  stride[3] = 1;
  for (int d = 2; d >= 0; d--)
    stride[d] = stride[d + 1] * dims[d + 1];
  for (int d = 0; d < 4; d++)
    {
      REQUIRE (perm[d] >= 0 && perm[d] < 4 && dims[d] >= 0, "permute4");
      p.out_dims[d] = dims[perm[d]];
      p.in_strides[d] = stride[perm[d]];
      total *= (size_t) dims[d];
    }
  if (total == 0)
    return LODE_CUDA_OK;
  permute4_kernel<<<grid_for (total), BLOCK, 0, ctx->stream>>> (out, in, total, p);
  CHECK_LAUNCH ("permute4");
  return LODE_CUDA_OK;
}

extern "C" int
lode_ops_cuda_nchw_to_nhwc (LodeOpsCuda *ctx, float *out, const float *in,
                            int n, int c, int h, int w)
{
  const int dims[4] = { n, c, h, w };
  const int perm[4] = { 0, 2, 3, 1 };
  return lode_ops_cuda_permute4 (ctx, out, in, dims, perm);
}

extern "C" int
lode_ops_cuda_nhwc_to_nchw (LodeOpsCuda *ctx, float *out, const float *in,
                            int n, int c, int h, int w)
{
  const int dims[4] = { n, h, w, c };
  const int perm[4] = { 0, 3, 1, 2 };
  return lode_ops_cuda_permute4 (ctx, out, in, dims, perm);
}
