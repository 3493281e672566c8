/* lode-prithvi-backend.c: the CPU and CUDA tables of lode-prithvi-backend.h. */
#define G_LOG_DOMAIN "lode-model"

#include "config.h"

#include <string.h>

#include <glib/gi18n.h>

#include "lode-grad.h"
#include "lode-ops.h"
#include "lode-prithvi-backend.h"
#include "lode-prithvi.h"
#include "lode-upernet.h"
#ifdef LODE_WITH_CUDA
#include "lode-grad-cuda.h"
#include "lode-ops-cuda.h"
#include "lode-prithvi-cuda.h"
#endif

/* statuses of the CPU table (the CUDA table's are LodeCudaStatus) */
#define CPU_NO_MEMORY 1

G_STATIC_ASSERT (sizeof (float) == sizeof (gint32));

/* ---- CPU twins of the new CUDA kernels ----------------------------------- */

void
lode_prithvi_heads_copy (float *rows, gsize stride, int col, float *heads_major, int n, int tokens, int heads,
                         int hd, gboolean to_heads)
{
  for (int b = 0; b < n; b++)
    for (int t = 0; t < tokens; t++)
      for (int hh = 0; hh < heads; hh++)
        {
          float *r = rows + ((gsize) b * tokens + t) * stride + col + hh * hd;
          float *m = heads_major + (((gsize) b * heads + hh) * tokens + t) * hd;

          if (to_heads)
            memcpy (m, r, hd * sizeof (float));
          else
            memcpy (r, m, hd * sizeof (float));
        }
}

void
lode_prithvi_tokens_assemble (float *x, const float *patches, const float *pos, const float *enc, const float *cls,
                              int n, int l, int e)
{
  for (int b = 0; b < n; b++)
    {
      float *xb = x + (gsize) b * (l + 1) * e;
      const float *eb = enc + (gsize) b * e;

      memcpy (xb, cls, e * sizeof (float));
      for (int t = 0; t < l; t++)
        for (int j = 0; j < e; j++)
          xb[(gsize) (t + 1) * e + j] = patches[((gsize) b * e + j) * l + t] + pos[(gsize) t * e + j] + eb[j];
    }
}

void
lode_prithvi_image_to_tokens_add (float *tokens, const float *image, int n, int gh, int gw, int e)
{
  int l = gh * gw;

  for (int b = 0; b < n; b++)
    for (int t = 0; t < l; t++)
      {
        float *row = tokens + ((gsize) b * (l + 1) + t + 1) * e;

        for (int j = 0; j < e; j++)
          row[j] += image[((gsize) b * e + j) * l + t];
      }
}

/* ---- the CPU table -------------------------------------------------------- */

#define CPU_GUARD(be) do { if ((be)->status != 0) return; } while (0)

static float *
cpu_alloc (LodePrithviBackend *be, gsize n)
{
  float *p;

  if (be->status != 0)
    return NULL;
  p = g_try_new (float, n ? n : 1);
  if (p == NULL)
    be->status = CPU_NO_MEMORY;
  return p;
}

static void
cpu_release (LodePrithviBackend *be, float *dev)
{
  g_free (dev);
}

static void
cpu_upload (LodePrithviBackend *be, float *dev, const float *host, gsize n)
{
  CPU_GUARD (be);
  if (dev != host)
    memcpy (dev, host, n * sizeof (float));
}

static void
cpu_copy (LodePrithviBackend *be, float *dst, const float *src, gsize n)
{
  CPU_GUARD (be);
  if (dst != src)
    memcpy (dst, src, n * sizeof (float));
}

static void
cpu_zero (LodePrithviBackend *be, float *dev, gsize n)
{
  CPU_GUARD (be);
  memset (dev, 0, n * sizeof (float));
}

static float *
cpu_mirror (LodePrithviBackend *be, float *host, gsize n)
{
  return host;
}

static void
cpu_unmirror (LodePrithviBackend *be, float *dev)
{
}

static void
cpu_conv2d (LodePrithviBackend *be, float *out, const float *in, const float *w, const float *b,
            const LodeConvShape *s)
{
  CPU_GUARD (be);
  lode_ops_conv2d (out, in, w, b, s);
}

static void
cpu_conv_transpose2d (LodePrithviBackend *be, float *out, const float *in, const float *w, const float *b,
                      const LodeConvShape *s)
{
  CPU_GUARD (be);
  lode_ops_conv_transpose2d (out, in, w, b, s);
}

static void
cpu_linear (LodePrithviBackend *be, float *out, const float *x, const float *w, const float *b, int rows,
            int in_f, int out_f)
{
  CPU_GUARD (be);
  lode_ops_linear (out, x, w, b, rows, in_f, out_f);
}

static void
cpu_layer_norm (LodePrithviBackend *be, float *out, const float *in, const float *w, const float *b, int rows,
                int c, float eps)
{
  CPU_GUARD (be);
  lode_ops_layer_norm (out, in, w, b, rows, c, eps);
}

static void
cpu_batch_norm (LodePrithviBackend *be, float *out, const float *in, const float *mean, const float *var,
                const float *w, const float *b, int n, int c, int hw, float eps)
{
  CPU_GUARD (be);
  lode_ops_batch_norm (out, in, mean, var, w, b, n, c, hw, eps);
}

static void
cpu_batch_norm_train (LodePrithviBackend *be, float *out, const float *in, const float *w, const float *b,
                      float *running_mean, float *running_var, float *save_mean, float *save_invstd, int n,
                      int c, int hw, float eps, float momentum)
{
  CPU_GUARD (be);
  lode_grad_batch_norm_train (out, in, w, b, running_mean, running_var, save_mean, save_invstd, n, c, hw, eps,
                              momentum);
}

static void
cpu_gelu (LodePrithviBackend *be, float *out, const float *in, gsize count)
{
  CPU_GUARD (be);
  lode_ops_gelu (out, in, count);
}

static void
cpu_relu (LodePrithviBackend *be, float *out, const float *in, gsize count)
{
  CPU_GUARD (be);
  lode_ops_relu (out, in, count);
}

static void
cpu_add (LodePrithviBackend *be, float *out, const float *a, const float *b, gsize count)
{
  CPU_GUARD (be);
  lode_ops_add (out, a, b, count);
}

static void
cpu_mul (LodePrithviBackend *be, float *out, const float *a, const float *b, gsize count)
{
  CPU_GUARD (be);
  lode_ops_mul (out, a, b, count);
}

static void
cpu_attention (LodePrithviBackend *be, float *out, const float *q, const float *k, const float *v, int b, int h,
               int lq, int lk, int d)
{
  CPU_GUARD (be);
  lode_ops_attention (out, q, k, v, b, h, lq, lk, d);
}

static void
cpu_attention_train (LodePrithviBackend *be, float *out, float *probs, const float *q, const float *k,
                     const float *v, int bh, int lq, int lk, int d)
{
  CPU_GUARD (be);
  lode_grad_attention_forward (out, probs, q, k, v, bh, lq, lk, d);
}

static void
cpu_max_pool2d (LodePrithviBackend *be, float *out, const float *in, int n, int c, int h, int w, int kernel,
                int stride, int pad)
{
  CPU_GUARD (be);
  lode_ops_max_pool2d (out, in, n, c, h, w, kernel, stride, pad);
}

static void
cpu_max_pool2d_train (LodePrithviBackend *be, float *out, float *argmax, const float *in, int n, int c, int h,
                      int w, int kernel, int stride, int pad)
{
  CPU_GUARD (be);
  lode_grad_max_pool2d_forward (out, (gint32 *) argmax, in, n, c, h, w, kernel, stride, pad);
}

static void
cpu_resize (LodePrithviBackend *be, float *out, const float *in, int nc, int h, int w, int out_h, int out_w,
            LodeResizeMode mode)
{
  CPU_GUARD (be);
  lode_ops_resize (out, in, nc, h, w, out_h, out_w, mode);
}

static void
cpu_adaptive_avg_pool (LodePrithviBackend *be, float *out, const float *in, int nc, int h, int w, int out_h,
                       int out_w)
{
  CPU_GUARD (be);
  lode_upernet_adaptive_avg_pool (out, in, nc, h, w, out_h, out_w);
}

static void
cpu_heads_copy (LodePrithviBackend *be, float *rows, gsize stride, int col, float *heads_major, int n, int tokens,
                int heads, int hd, gboolean to_heads)
{
  CPU_GUARD (be);
  lode_prithvi_heads_copy (rows, stride, col, heads_major, n, tokens, heads, hd, to_heads);
}

static void
cpu_tokens_assemble (LodePrithviBackend *be, float *x, const float *patches, const float *pos, const float *enc,
                     const float *cls, int n, int l, int e)
{
  CPU_GUARD (be);
  lode_prithvi_tokens_assemble (x, patches, pos, enc, cls, n, l, e);
}

static void
cpu_tokens_to_image (LodePrithviBackend *be, float *out, const float *tokens, int n, int gh, int gw, int e)
{
  CPU_GUARD (be);
  lode_prithvi_tokens_to_image (out, tokens, n, gh, gw, e);
}

static void
cpu_grad_conv2d (LodePrithviBackend *be, float *dx, float *dweight, float *dbias, const float *dy, const float *x,
                 const float *weight, const LodeConvShape *s, gboolean accumulate_dx)
{
  CPU_GUARD (be);
  lode_grad_conv2d (dx, dweight, dbias, dy, x, weight, s, accumulate_dx);
}

static void
cpu_grad_batch_norm (LodePrithviBackend *be, float *dx, float *dweight, float *dbias, const float *dy,
                     const float *x, const float *mean, const float *invstd, const float *weight, int n, int c,
                     int hw)
{
  CPU_GUARD (be);
  lode_grad_batch_norm (dx, dweight, dbias, dy, x, mean, invstd, weight, n, c, hw, TRUE);
}

static void
cpu_grad_relu (LodePrithviBackend *be, float *dx, const float *dy, const float *y, gsize count)
{
  CPU_GUARD (be);
  lode_grad_relu (dx, dy, y, count);
}

static void
cpu_grad_gelu (LodePrithviBackend *be, float *dx, const float *dy, const float *x, gsize count)
{
  CPU_GUARD (be);
  lode_grad_gelu (dx, dy, x, count);
}

static void
cpu_grad_max_pool2d (LodePrithviBackend *be, float *dx, const float *dy, const float *argmax, int n, int c, int h,
                     int w, int oh, int ow, gboolean accumulate)
{
  CPU_GUARD (be);
  lode_grad_max_pool2d (dx, dy, (const gint32 *) argmax, n, c, h, w, oh, ow, accumulate);
}

static void
cpu_resize_backward (LodePrithviBackend *be, float *dx, const float *dy, int nc, int h, int w, int oh, int ow,
                     gboolean align, gboolean accumulate)
{
  CPU_GUARD (be);
  lode_upernet_resize_backward (dx, dy, nc, h, w, oh, ow, align, accumulate);
}

static void
cpu_adaptive_avg_pool_backward (LodePrithviBackend *be, float *dx, const float *dy, int nc, int h, int w,
                                int out_h, int out_w)
{
  CPU_GUARD (be);
  lode_upernet_adaptive_avg_pool_backward (dx, dy, nc, h, w, out_h, out_w);
}

static void
cpu_up2_backward (LodePrithviBackend *be, float *dweight, float *dbias, float *dx, const float *x, const float *dy,
                  const float *weight, int n, int c_in, int c_out, int h, int w)
{
  CPU_GUARD (be);
  lode_upernet_up2_backward (dweight, dbias, dx, x, dy, weight, n, c_in, c_out, h, w);
}

static void
cpu_adamw (LodePrithviBackend *be, float *param, const float *grad, float *m, float *v, gsize count,
           const LodeAdamW *opt, gint64 step)
{
  CPU_GUARD (be);
  lode_grad_adamw (param, grad, m, v, count, opt, step);
}

static void
cpu_grad_linear (LodePrithviBackend *be, float *dx, float *dweight, float *dbias, const float *dy, const float *x,
                 const float *weight, int rows, int in_f, int out_f)
{
  CPU_GUARD (be);
  lode_grad_linear (dx, dweight, dbias, dy, x, weight, rows, in_f, out_f);
}

static void
cpu_grad_layer_norm (LodePrithviBackend *be, float *dx, float *dweight, float *dbias, const float *dy,
                     const float *x, const float *weight, int rows, int c, float eps)
{
  CPU_GUARD (be);
  lode_grad_layer_norm (dx, dweight, dbias, dy, x, weight, rows, c, eps);
}

static void
cpu_grad_attention (LodePrithviBackend *be, float *dq, float *dk, float *dv, const float *dout, const float *q,
                    const float *k, const float *v, const float *probs, int bh, int lq, int lk, int d)
{
  CPU_GUARD (be);
  lode_grad_attention (dq, dk, dv, dout, q, k, v, probs, bh, lq, lk, d);
}

static void
cpu_image_to_tokens_add (LodePrithviBackend *be, float *tokens, const float *image, int n, int gh, int gw, int e)
{
  CPU_GUARD (be);
  lode_prithvi_image_to_tokens_add (tokens, image, n, gh, gw, e);
}

static const LodePrithviKernels cpu_kernels = {
  cpu_alloc, cpu_release, cpu_upload, cpu_copy /* download */, cpu_copy, cpu_zero, cpu_mirror, cpu_unmirror,
  cpu_conv2d, cpu_conv_transpose2d, cpu_linear, cpu_layer_norm, cpu_batch_norm, cpu_batch_norm_train,
  cpu_gelu, cpu_relu, cpu_add, cpu_mul, cpu_attention, cpu_attention_train, cpu_max_pool2d,
  cpu_max_pool2d_train, cpu_resize, cpu_adaptive_avg_pool, cpu_heads_copy, cpu_tokens_assemble,
  cpu_tokens_to_image, cpu_grad_conv2d, cpu_grad_batch_norm, cpu_grad_relu, cpu_grad_gelu, cpu_grad_max_pool2d,
  cpu_resize_backward, cpu_adaptive_avg_pool_backward, cpu_up2_backward, cpu_adamw, cpu_grad_linear,
  cpu_grad_layer_norm, cpu_grad_attention, cpu_image_to_tokens_add,
};

/* ---- the CUDA table ------------------------------------------------------- */

#ifdef LODE_WITH_CUDA

/* Runs a call of lode-ops-cuda, lode-grad-cuda or lode-prithvi-cuda unless
 * an earlier one failed, keeping the first failure (its detail is in
 * lode_ops_cuda_last_message). */
#define CUDA_OPS(be, call) \
  do { if ((be)->status == 0) (be)->status = (call); } while (0)
#define CTX(be) ((LodeOpsCuda *) (be)->cuda)

static float *
cuda_alloc (LodePrithviBackend *be, gsize n)
{
  void *p = NULL;

  if (be->status != 0)
    return NULL;
  be->status = lode_ops_cuda_alloc (&p, (n ? n : 1) * sizeof (float));
  return be->status == 0 ? p : NULL;
}

static void
cuda_release (LodePrithviBackend *be, float *dev)
{
  /* cudaFree waits for the device, so queued work on dev finishes first */
  lode_ops_cuda_release (dev);
}

static void
cuda_upload (LodePrithviBackend *be, float *dev, const float *host, gsize n)
{
  CUDA_OPS (be, lode_ops_cuda_upload (CTX (be), dev, host, n * sizeof (float)));
  /* the host buffer may be freed or reused as soon as this returns */
  CUDA_OPS (be, lode_ops_cuda_synchronize (CTX (be)));
}

static void
cuda_download (LodePrithviBackend *be, float *host, const float *dev, gsize n)
{
  CUDA_OPS (be, lode_ops_cuda_download (CTX (be), host, dev, n * sizeof (float)));
}

static void
cuda_copy (LodePrithviBackend *be, float *dst, const float *src, gsize n)
{
  CUDA_OPS (be, lode_ops_cuda_copy (CTX (be), dst, src, n * sizeof (float)));
}

static void
cuda_zero (LodePrithviBackend *be, float *dev, gsize n)
{
  CUDA_OPS (be, lode_ops_cuda_zero (CTX (be), dev, n * sizeof (float)));
}

static float *
cuda_mirror (LodePrithviBackend *be, float *host, gsize n)
{
  float *dev = cuda_alloc (be, n);

  if (dev != NULL)
    cuda_upload (be, dev, host, n);
  return dev;
}

static void
cuda_unmirror (LodePrithviBackend *be, float *dev)
{
  lode_ops_cuda_release (dev);
}

static void
cuda_conv2d (LodePrithviBackend *be, float *out, const float *in, const float *w, const float *b,
             const LodeConvShape *s)
{
  CUDA_OPS (be, lode_ops_cuda_conv2d (CTX (be), out, in, w, b, s));
}

static void
cuda_conv_transpose2d (LodePrithviBackend *be, float *out, const float *in, const float *w, const float *b,
                       const LodeConvShape *s)
{
  CUDA_OPS (be, lode_ops_cuda_conv_transpose2d (CTX (be), out, in, w, b, s));
}

static void
cuda_linear (LodePrithviBackend *be, float *out, const float *x, const float *w, const float *b, int rows,
             int in_f, int out_f)
{
  CUDA_OPS (be, lode_ops_cuda_linear (CTX (be), out, x, w, b, rows, in_f, out_f));
}

static void
cuda_layer_norm (LodePrithviBackend *be, float *out, const float *in, const float *w, const float *b, int rows,
                 int c, float eps)
{
  CUDA_OPS (be, lode_ops_cuda_layer_norm (CTX (be), out, in, w, b, rows, c, eps));
}

static void
cuda_batch_norm (LodePrithviBackend *be, float *out, const float *in, const float *mean, const float *var,
                 const float *w, const float *b, int n, int c, int hw, float eps)
{
  CUDA_OPS (be, lode_ops_cuda_batch_norm (CTX (be), out, in, mean, var, w, b, n, c, hw, eps));
}

static void
cuda_batch_norm_train (LodePrithviBackend *be, float *out, const float *in, const float *w, const float *b,
                       float *running_mean, float *running_var, float *save_mean, float *save_invstd, int n,
                       int c, int hw, float eps, float momentum)
{
  CUDA_OPS (be, lode_grad_cuda_batch_norm_train (CTX (be), out, in, w, b, running_mean, running_var, save_mean,
                                                 save_invstd, n, c, hw, eps, momentum));
}

static void
cuda_gelu (LodePrithviBackend *be, float *out, const float *in, gsize count)
{
  CUDA_OPS (be, lode_ops_cuda_gelu (CTX (be), out, in, count));
}

static void
cuda_relu (LodePrithviBackend *be, float *out, const float *in, gsize count)
{
  CUDA_OPS (be, lode_ops_cuda_relu (CTX (be), out, in, count));
}

static void
cuda_add (LodePrithviBackend *be, float *out, const float *a, const float *b, gsize count)
{
  CUDA_OPS (be, lode_ops_cuda_add (CTX (be), out, a, b, count));
}

static void
cuda_mul (LodePrithviBackend *be, float *out, const float *a, const float *b, gsize count)
{
  CUDA_OPS (be, lode_ops_cuda_mul (CTX (be), out, a, b, count));
}

static void
cuda_attention (LodePrithviBackend *be, float *out, const float *q, const float *k, const float *v, int b, int h,
                int lq, int lk, int d)
{
  CUDA_OPS (be, lode_ops_cuda_attention (CTX (be), out, q, k, v, b, h, lq, lk, d));
}

static void
cuda_attention_train (LodePrithviBackend *be, float *out, float *probs, const float *q, const float *k,
                      const float *v, int bh, int lq, int lk, int d)
{
  CUDA_OPS (be, lode_prithvi_cuda_attention_forward (CTX (be), out, probs, q, k, v, bh, lq, lk, d));
}

static void
cuda_max_pool2d (LodePrithviBackend *be, float *out, const float *in, int n, int c, int h, int w, int kernel,
                 int stride, int pad)
{
  CUDA_OPS (be, lode_ops_cuda_max_pool2d (CTX (be), out, in, n, c, h, w, kernel, stride, pad));
}

static void
cuda_max_pool2d_train (LodePrithviBackend *be, float *out, float *argmax, const float *in, int n, int c, int h,
                       int w, int kernel, int stride, int pad)
{
  CUDA_OPS (be, lode_grad_cuda_max_pool2d_forward (CTX (be), out, (int *) argmax, in, n, c, h, w, kernel, stride,
                                                   pad));
}

static void
cuda_resize (LodePrithviBackend *be, float *out, const float *in, int nc, int h, int w, int out_h, int out_w,
             LodeResizeMode mode)
{
  CUDA_OPS (be, lode_ops_cuda_resize (CTX (be), out, in, nc, h, w, out_h, out_w, mode));
}

static void
cuda_adaptive_avg_pool (LodePrithviBackend *be, float *out, const float *in, int nc, int h, int w, int out_h,
                        int out_w)
{
  CUDA_OPS (be, lode_prithvi_cuda_adaptive_avg_pool (CTX (be), out, in, nc, h, w, out_h, out_w));
}

static void
cuda_heads_copy (LodePrithviBackend *be, float *rows, gsize stride, int col, float *heads_major, int n,
                 int tokens, int heads, int hd, gboolean to_heads)
{
  CUDA_OPS (be, lode_prithvi_cuda_heads_copy (CTX (be), rows, stride, col, heads_major, n, tokens, heads, hd,
                                              to_heads));
}

static void
cuda_tokens_assemble (LodePrithviBackend *be, float *x, const float *patches, const float *pos, const float *enc,
                      const float *cls, int n, int l, int e)
{
  CUDA_OPS (be, lode_prithvi_cuda_tokens_assemble (CTX (be), x, patches, pos, enc, cls, n, l, e));
}

static void
cuda_tokens_to_image (LodePrithviBackend *be, float *out, const float *tokens, int n, int gh, int gw, int e)
{
  CUDA_OPS (be, lode_prithvi_cuda_tokens_to_image (CTX (be), out, tokens, n, gh, gw, e));
}

static void
cuda_grad_conv2d (LodePrithviBackend *be, float *dx, float *dweight, float *dbias, const float *dy, const float *x,
                  const float *weight, const LodeConvShape *s, gboolean accumulate_dx)
{
  CUDA_OPS (be, lode_grad_cuda_conv2d (CTX (be), dx, dweight, dbias, dy, x, weight, s, accumulate_dx));
}

static void
cuda_grad_batch_norm (LodePrithviBackend *be, float *dx, float *dweight, float *dbias, const float *dy,
                      const float *x, const float *mean, const float *invstd, const float *weight, int n, int c,
                      int hw)
{
  CUDA_OPS (be, lode_grad_cuda_batch_norm (CTX (be), dx, dweight, dbias, dy, x, mean, invstd, weight, n, c, hw, 1));
}

static void
cuda_grad_relu (LodePrithviBackend *be, float *dx, const float *dy, const float *y, gsize count)
{
  CUDA_OPS (be, lode_grad_cuda_relu (CTX (be), dx, dy, y, count));
}

static void
cuda_grad_gelu (LodePrithviBackend *be, float *dx, const float *dy, const float *x, gsize count)
{
  CUDA_OPS (be, lode_prithvi_cuda_gelu_backward (CTX (be), dx, dy, x, count));
}

static void
cuda_grad_max_pool2d (LodePrithviBackend *be, float *dx, const float *dy, const float *argmax, int n, int c, int h,
                      int w, int oh, int ow, gboolean accumulate)
{
  CUDA_OPS (be, lode_grad_cuda_max_pool2d (CTX (be), dx, dy, (const int *) argmax, n, c, h, w, oh, ow, 2, 2, 0,
                                           accumulate));
}

static void
cuda_resize_backward (LodePrithviBackend *be, float *dx, const float *dy, int nc, int h, int w, int oh, int ow,
                      gboolean align, gboolean accumulate)
{
  CUDA_OPS (be, lode_prithvi_cuda_resize_backward (CTX (be), dx, dy, nc, h, w, oh, ow, align, accumulate));
}

static void
cuda_adaptive_avg_pool_backward (LodePrithviBackend *be, float *dx, const float *dy, int nc, int h, int w,
                                 int out_h, int out_w)
{
  CUDA_OPS (be, lode_prithvi_cuda_adaptive_avg_pool_backward (CTX (be), dx, dy, nc, h, w, out_h, out_w));
}

static void
cuda_up2_backward (LodePrithviBackend *be, float *dweight, float *dbias, float *dx, const float *x, const float *dy,
                   const float *weight, int n, int c_in, int c_out, int h, int w)
{
  CUDA_OPS (be, lode_prithvi_cuda_up2_backward (CTX (be), dweight, dbias, dx, x, dy, weight, n, c_in, c_out, h, w));
}

static void
cuda_adamw (LodePrithviBackend *be, float *param, const float *grad, float *m, float *v, gsize count,
            const LodeAdamW *opt, gint64 step)
{
  CUDA_OPS (be, lode_grad_cuda_adamw (CTX (be), param, grad, m, v, count, opt->lr, opt->beta1, opt->beta2, opt->eps,
                                      opt->weight_decay, step));
}

static void
cuda_grad_linear (LodePrithviBackend *be, float *dx, float *dweight, float *dbias, const float *dy, const float *x,
                  const float *weight, int rows, int in_f, int out_f)
{
  CUDA_OPS (be, lode_prithvi_cuda_linear_backward (CTX (be), dx, dweight, dbias, dy, x, weight, rows, in_f, out_f));
}

static void
cuda_grad_layer_norm (LodePrithviBackend *be, float *dx, float *dweight, float *dbias, const float *dy,
                      const float *x, const float *weight, int rows, int c, float eps)
{
  CUDA_OPS (be, lode_prithvi_cuda_layer_norm_backward (CTX (be), dx, dweight, dbias, dy, x, weight, rows, c, eps));
}

static void
cuda_grad_attention (LodePrithviBackend *be, float *dq, float *dk, float *dv, const float *dout, const float *q,
                     const float *k, const float *v, const float *probs, int bh, int lq, int lk, int d)
{
  CUDA_OPS (be, lode_prithvi_cuda_attention_backward (CTX (be), dq, dk, dv, dout, q, k, v, probs, bh, lq, lk, d));
}

static void
cuda_image_to_tokens_add (LodePrithviBackend *be, float *tokens, const float *image, int n, int gh, int gw, int e)
{
  CUDA_OPS (be, lode_prithvi_cuda_image_to_tokens_add (CTX (be), tokens, image, n, gh, gw, e));
}

static const LodePrithviKernels cuda_kernels = {
  cuda_alloc, cuda_release, cuda_upload, cuda_download, cuda_copy, cuda_zero, cuda_mirror, cuda_unmirror,
  cuda_conv2d, cuda_conv_transpose2d, cuda_linear, cuda_layer_norm, cuda_batch_norm, cuda_batch_norm_train,
  cuda_gelu, cuda_relu, cuda_add, cuda_mul, cuda_attention, cuda_attention_train, cuda_max_pool2d,
  cuda_max_pool2d_train, cuda_resize, cuda_adaptive_avg_pool, cuda_heads_copy, cuda_tokens_assemble,
  cuda_tokens_to_image, cuda_grad_conv2d, cuda_grad_batch_norm, cuda_grad_relu, cuda_grad_gelu,
  cuda_grad_max_pool2d, cuda_resize_backward, cuda_adaptive_avg_pool_backward, cuda_up2_backward, cuda_adamw,
  cuda_grad_linear, cuda_grad_layer_norm, cuda_grad_attention, cuda_image_to_tokens_add,
};

#endif /* LODE_WITH_CUDA */

/* ---- the backend ---------------------------------------------------------- */

void
lode_prithvi_backend_init_cpu (LodePrithviBackend *be)
{
  g_return_if_fail (be != NULL);
  memset (be, 0, sizeof *be);
  be->k = &cpu_kernels;
  be->kind = LODE_DEVICE_CPU;
}

gboolean
lode_prithvi_backend_init (LodePrithviBackend *be, LodeDeviceKind kind, GError **error)
{
  g_return_val_if_fail (be != NULL, FALSE);
  lode_prithvi_backend_init_cpu (be);
  if (kind == LODE_DEVICE_CPU)
    return TRUE;
#ifdef LODE_WITH_CUDA
  if (lode_device_cuda_count () > 0)
    {
      LodeOpsCuda *ctx = NULL;

      if (!lode_ops_cuda_check (lode_ops_cuda_new (&ctx), error))
        return FALSE;
      be->k = &cuda_kernels;
      be->kind = LODE_DEVICE_CUDA;
      be->cuda = ctx;
      return TRUE;
    }
#endif
  g_set_error (error, LODE_DEVICE_ERROR, LODE_DEVICE_ERROR_UNAVAILABLE,
               lode_device_cuda_built ()
                 ? _("Prithvi cannot run on CUDA: no CUDA device was found on this machine")
                 : _("Prithvi cannot run on CUDA: Lode was built without CUDA"));
  return FALSE;
}

void
lode_prithvi_backend_clear (LodePrithviBackend *be)
{
  g_return_if_fail (be != NULL);
#ifdef LODE_WITH_CUDA
  if (be->cuda != NULL)
    lode_ops_cuda_free (be->cuda);
#endif
  lode_prithvi_backend_init_cpu (be);
}

LodePrithviBackend
lode_prithvi_backend_run (const LodePrithviBackend *be)
{
  LodePrithviBackend run = *be;

  run.status = 0;
  return run;
}

gboolean
lode_prithvi_backend_check (LodePrithviBackend *be, const char *what, GError **error)
{
  int status;

  g_return_val_if_fail (be != NULL, FALSE);
#ifdef LODE_WITH_CUDA
  if (be->cuda != NULL && be->status == 0)
    be->status = lode_ops_cuda_synchronize (be->cuda);
#endif
  status = be->status;
  be->status = 0;
  if (status == 0)
    return TRUE;
  if (be->kind == LODE_DEVICE_CPU)
    {
      g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_MEMORY, _("Not enough memory to %s"), what);
      return FALSE;
    }
#ifdef LODE_WITH_CUDA
  {
    g_autoptr(GError) inner = NULL;

    lode_ops_cuda_check (status, &inner);
    g_set_error (error, inner->domain, inner->code, _("Could not %s on the GPU: %s"), what, inner->message);
  }
#endif
  return FALSE;
}
