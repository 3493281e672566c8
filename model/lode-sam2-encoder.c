/* lode-sam2-encoder.c: the SAM2.1 image encoder, on the CPU or on CUDA.
 *
 * One forward pass for both devices: it calls its kernels and moves its
 * buffers only through a Sam2Backend table (below: the CPU one on lode-ops.h
 * and OpenBLAS, the CUDA one on lode-ops-cuda.h and
 * lode-sam2-encoder-cuda.h). Weights are staged on the host, uploaded into
 * one device block, and the staging copy is filled with NaN before it is
 * freed, so that a weight pointer left on the host shows on the CPU too.
 *
 * Layouts: the trunk keeps its activations channels-last, [tokens, C] with
 * tokens in row-major (y, x) order, as Hiera's [B, H, W, C]. Windowed
 * blocks cut the normalised input into windows (zero padding at the bottom
 * and right, which then takes part in attention through the qkv bias, as in
 * the official code) and run qkv, attention and the output projection on
 * groups of windows, so that the large intermediates stay small. The neck
 * writes channel-major maps ([C, H*W]), the layout of LodeSam2Embedding.
 *
 * The mask decoder's conv_s0 and conv_s1 follow the neck's lateral 1x1
 * convolutions of levels 0 and 1 with nothing between them, so each pair is
 * folded into one 1x1 convolution at load (the products in double).
 */
#define G_LOG_DOMAIN "lode-model"

#include "config.h"

#include <inttypes.h>

#include <glib/gi18n.h>
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "lode-ops.h"
#include "lode-sam2-config.h"
#include "lode-sam2-encoder.h"
#ifdef LODE_WITH_CUDA
#include "lode-ops-cuda.h"
#include "lode-sam2-encoder-cuda.h"
#endif

/* Threads: the OpenMP team of lode-ops.h (lode_ops_cpu_init: OpenBLAS
 * runs each product on its calling thread). Products are split over the
 * team by lode_ops_gemm_ld; the windows' attention runs one block of query
 * rows of one head per thread. */

/* The large intermediates (qkv of a group of windows, the MLP's hidden
 * rows, the residual projection before pooling) are formed a chunk at a
 * time, about this many floats (8 MiB): full-speed sgemm, small buffers. */
#define CHUNK_FLOATS (1 << 21)
/* Attention scores one thread forms at once (a block of query rows of one
 * head of one window): 1 MiB. */
#define SCORE_FLOATS (1 << 18)

#define LN_EPS 1e-6f

#define ROUND16(n) (((gsize) (n) + 15) & ~(gsize) 15)

/* The CPU backend's context: the OpenMP team size the attention scratch
 * was sized for. */
typedef struct {
  int threads;
} CpuContext;

#ifdef _OPENMP
#define THREAD_NUM() omp_get_thread_num ()
#else
#define THREAD_NUM() 0
#endif

static int
cpu_begin (void *ctx)
{
  lode_ops_cpu_init ();
  return 0;
}

static int
cpu_end (void *ctx)
{
  return 0;
}

/* ---- the kernels the forward pass calls --------------------------------- */

/* Device pointers in, status out (0 = done). The CPU table below wraps
 * lode-ops.h; the CUDA table wraps lode-ops-cuda.h and
 * lode-sam2-encoder-cuda.h (the twins of pool2x2_nhwc, attention and
 * conv1x1_to_nchw). The orchestration touches the buffers only through the
 * table: on the CPU alloc, upload and download are g_try_new and memcpy, so
 * the CPU tests run the data flow of the GPU. */
typedef struct {
  /* memory: n floats */
  int (*alloc)            (void *ctx, float **dev, gsize n);
  void (*release)         (void *ctx, float *dev);
  int (*upload)           (void *ctx, float *dev, const float *host, gsize n);
  int (*download)         (void *ctx, float *host, const float *dev, gsize n);
  /* the scratch floats attention needs for group windows of lq x lk */
  gsize (*attention_scratch) (void *ctx, int group, int lq, int lk);
  /* the detail of the last failure, moved into error; FALSE when none */
  gboolean (*take_error)  (void *ctx, GError **error);
  /* around a forward pass, and between its blocks */
  int (*begin)            (void *ctx);
  int (*end)              (void *ctx);
  int (*sync)             (void *ctx);
  int (*conv2d)           (void *ctx, float *out, const float *in, const float *w,
                           const float *b, const LodeConvShape *s);
  int (*nchw_to_nhwc)     (void *ctx, float *out, const float *in, int c, int h, int w);
  int (*add)              (void *ctx, float *out, const float *a, const float *b, gsize n);
  int (*layer_norm)       (void *ctx, float *out, const float *in, const float *w,
                           const float *b, int rows, int c, float eps);
  int (*linear)           (void *ctx, float *out, const float *x, const float *w,
                           const float *b, int rows, int in_f, int out_f);
  int (*gelu)             (void *ctx, float *x, gsize n);
  int (*window_partition) (void *ctx, float *out, const float *in, int h, int w, int c, int win);
  int (*window_unpartition) (void *ctx, float *out, const float *in, int h, int w, int c, int win);
  /* 2x2 max pooling, stride 2, floor, of in [n, h, w, c] whose rows
   * (pixels) are in_stride floats apart: out [n, h/2, w/2, c]. */
  int (*pool2x2_nhwc)     (void *ctx, float *out, const float *in, int in_stride,
                           int n, int h, int w, int c);
  /* softmax(q k^T / sqrt(hd)) v for nw windows and heads heads: q [nw, lq,
   * heads*hd] with rows q_stride apart, k and v [nw, lk, heads*hd] with
   * rows kv_stride apart, out [nw, lq, heads*hd] contiguous. */
  int (*attention)        (void *ctx, float *out, const float *q, int q_stride,
                           const float *k, const float *v, int kv_stride,
                           int nw, int heads, int lq, int lk, int hd, float *scratch);
  /* 1x1 convolution from channels-last to channel-major:
   * out [c_out, hw] = w [c_out, c_in] x [hw, c_in]^T + b. */
  int (*conv1x1_to_nchw)  (void *ctx, float *out, const float *x, const float *w,
                           const float *b, int hw, int c_in, int c_out);
  int (*add_channel_bias) (void *ctx, float *out, const float *in, const float *bias, int c, int hw);
  int (*upsample2_nearest) (void *ctx, float *out, const float *in, int c, int h, int w);
} Sam2Backend;

static int
cpu_alloc (void *ctx, float **dev, gsize n)
{
  *dev = g_try_new (float, MAX (n, 1));
  return *dev != NULL ? 0 : -1;
}

static void
cpu_release (void *ctx, float *dev)
{
  g_free (dev);
}

static int
cpu_upload (void *ctx, float *dev, const float *host, gsize n)
{
  memcpy (dev, host, n * sizeof (float));
  return 0;
}

static gboolean
cpu_take_error (void *ctx, GError **error)
{
  return FALSE;
}

static int
cpu_sync (void *ctx)
{
  return 0;
}

static int
cpu_conv2d (void *ctx, float *out, const float *in, const float *w, const float *b,
            const LodeConvShape *s)
{
  lode_ops_conv2d (out, in, w, b, s);
  return 0;
}

static int
cpu_nchw_to_nhwc (void *ctx, float *out, const float *in, int c, int h, int w)
{
  lode_ops_nchw_to_nhwc (out, in, 1, c, h, w);
  return 0;
}

static int
cpu_add (void *ctx, float *out, const float *a, const float *b, gsize n)
{
  lode_ops_add (out, a, b, n);
  return 0;
}

static int
cpu_layer_norm (void *ctx, float *out, const float *in, const float *w, const float *b,
                int rows, int c, float eps)
{
  lode_ops_layer_norm (out, in, w, b, rows, c, eps);
  return 0;
}

/* c [m, n] = a [m, k] b^T + bias [n], with b [n, k] (a Linear weight),
 * rows of a and c lda and ldc apart. */
static int
cpu_linear (void *ctx, float *out, const float *x, const float *w, const float *b,
            int rows, int in_f, int out_f)
{
  lode_ops_gemm_ld (FALSE, TRUE, rows, out_f, in_f, 1.0f, x, in_f, w, in_f, 0.0f, out, out_f);
  if (b != NULL)
    lode_ops_add_row_bias (out, out, b, rows, out_f);
  return 0;
}

static int
cpu_gelu (void *ctx, float *x, gsize n)
{
  lode_ops_gelu (x, x, n);
  return 0;
}

static int
cpu_window_partition (void *ctx, float *out, const float *in, int h, int w, int c, int win)
{
  lode_ops_window_partition (out, in, 1, h, w, c, win);
  return 0;
}

static int
cpu_window_unpartition (void *ctx, float *out, const float *in, int h, int w, int c, int win)
{
  lode_ops_window_unpartition (out, in, 1, h, w, c, win);
  return 0;
}

static int
cpu_pool2x2_nhwc (void *ctx, float *out, const float *in, int in_stride, int n, int h, int w, int c)
{
  int oh = h / 2, ow = w / 2;

#ifdef _OPENMP
#pragma omp parallel for schedule (static) if ((gint64) n * oh * ow * c > 32768)
#endif
  for (gint64 t = 0; t < (gint64) n * oh; t++)
    {
      gint64 i = t / oh;
      int y = (int) (t % oh);

      for (int x = 0; x < ow; x++)
        {
          const float *p00 = in + ((i * h + 2 * y) * w + 2 * x) * in_stride;
          const float *p01 = p00 + in_stride;
          const float *p10 = p00 + (gsize) w * in_stride;
          const float *p11 = p10 + in_stride;
          float *dst = out + ((i * oh + y) * ow + x) * c;

          for (int ch = 0; ch < c; ch++)
            dst[ch] = MAX (MAX (p00[ch], p01[ch]), MAX (p10[ch], p11[ch]));
        }
    }
  return 0;
}

/* Query rows per task: the scores of a task fit SCORE_FLOATS. */
static int
attention_block_rows (int lq, int lk)
{
  return MAX (1, MIN (lq, SCORE_FLOATS / lk));
}

static int
cpu_attention (void *ctx, float *out, const float *q, int q_stride, const float *k,
               const float *v, int kv_stride, int nw, int heads, int lq, int lk, int hd,
               float *scratch)
{
  int threads = ((CpuContext *) ctx)->threads;
  float scale = 1.0f / sqrtf ((float) hd);
  int dim = heads * hd, block = attention_block_rows (lq, lk);
  int n_blocks = (lq + block - 1) / block;
  gint64 tasks = (gint64) nw * heads * n_blocks;

  /* one task: one block of query rows of one head of one window */
#ifdef _OPENMP
#pragma omp parallel for schedule (dynamic, 1) num_threads (threads)
#endif
  for (gint64 t = 0; t < tasks; t++)
    {
      int win = (int) (t / ((gint64) heads * n_blocks));
      int h = (int) ((t / n_blocks) % heads);
      int r0 = (int) (t % n_blocks) * block;
      int nr = MIN (block, lq - r0);
      float *s = scratch + (gsize) THREAD_NUM () * block * lk;
      const float *qh = q + ((gsize) win * lq + r0) * q_stride + h * hd;
      const float *kh = k + (gsize) win * lk * kv_stride + h * hd;
      const float *vh = v + (gsize) win * lk * kv_stride + h * hd;
      float *oh = out + ((gsize) win * lq + r0) * dim + h * hd;

      lode_ops_gemm_ld (FALSE, TRUE, nr, lk, hd, scale, qh, q_stride, kh, kv_stride, 0.0f, s, lk);
      lode_ops_softmax_rows (s, nr, lk);
      lode_ops_gemm_ld (FALSE, FALSE, nr, hd, lk, 1.0f, s, lk, vh, kv_stride, 0.0f, oh, dim);
    }
  return 0;
}

static int
cpu_conv1x1_to_nchw (void *ctx, float *out, const float *x, const float *w, const float *b,
                     int hw, int c_in, int c_out)
{
  lode_ops_gemm_ld (FALSE, TRUE, c_out, hw, c_in, 1.0f, w, c_in, x, c_in, 0.0f, out, hw);
  lode_ops_add_channel_bias (out, out, b, 1, c_out, hw);
  return 0;
}

static int
cpu_add_channel_bias (void *ctx, float *out, const float *in, const float *bias, int c, int hw)
{
  lode_ops_add_channel_bias (out, in, bias, 1, c, hw);
  return 0;
}

static int
cpu_upsample2_nearest (void *ctx, float *out, const float *in, int c, int h, int w)
{
  lode_ops_resize (out, in, c, h, w, 2 * h, 2 * w, LODE_RESIZE_NEAREST);
  return 0;
}

static int
cpu_download (void *ctx, float *host, const float *dev, gsize n)
{
  memcpy (host, dev, n * sizeof (float));
  return 0;
}

static gsize
cpu_attention_scratch (void *ctx, int group, int lq, int lk)
{
  return (gsize) ((CpuContext *) ctx)->threads * attention_block_rows (lq, lk) * lk;
}

static const Sam2Backend cpu_backend = {
  cpu_alloc, cpu_release, cpu_upload, cpu_download, cpu_attention_scratch, cpu_take_error,
  cpu_begin, cpu_end, cpu_sync,
  cpu_conv2d, cpu_nchw_to_nhwc, cpu_add, cpu_layer_norm, cpu_linear, cpu_gelu,
  cpu_window_partition, cpu_window_unpartition, cpu_pool2x2_nhwc, cpu_attention,
  cpu_conv1x1_to_nchw, cpu_add_channel_bias, cpu_upsample2_nearest,
};

/* ---- the CPU kernels, for the tests of their GPU twins ------------------ */

static CpuContext
cpu_context_default (void)
{
  CpuContext c = { 1 };

#ifdef _OPENMP
  c.threads = MAX (1, omp_get_max_threads ());
#endif
  return c;
}

void
lode_sam2_encoder_cpu_pool2x2_nhwc (float *out, const float *in, int in_stride, int n, int h, int w, int c)
{
  CpuContext cpu = cpu_context_default ();

  cpu_pool2x2_nhwc (&cpu, out, in, in_stride, n, h, w, c);
}

void
lode_sam2_encoder_cpu_attention (float *out, const float *q, int q_stride, const float *k,
                                 const float *v, int kv_stride, int nw, int heads, int lq, int lk, int hd)
{
  CpuContext cpu = cpu_context_default ();
  g_autofree float *scratch = g_new (float, cpu_attention_scratch (&cpu, nw, lq, lk));

  cpu_attention (&cpu, out, q, q_stride, k, v, kv_stride, nw, heads, lq, lk, hd, scratch);
}

void
lode_sam2_encoder_cpu_conv1x1_to_nchw (float *out, const float *x, const float *w, const float *b,
                                       int hw, int c_in, int c_out)
{
  CpuContext cpu = cpu_context_default ();

  cpu_conv1x1_to_nchw (&cpu, out, x, w, b, hw, c_in, c_out);
}

/* ---- the CUDA table ----------------------------------------------------- */

#ifdef LODE_WITH_CUDA
typedef struct {
  LodeOpsCuda *ops;
  LodeSam2Cuda *sam2;
  GError *error;            /* the first failure of a run */
} CudaContext;

/* Keeps the first failure of a run (the kernels of lode-ops-cuda.h and of
 * lode-sam2-encoder-cuda.h leave one message, lode_ops_cuda_last_message). */
static int
cuda_status (void *ctx, int status)
{
  CudaContext *c = ctx;

  if (status != LODE_CUDA_OK && c->error == NULL)
    lode_ops_cuda_check (status, &c->error);
  return status;
}

#define OPS(call) cuda_status (ctx, (call))
#define OPS_CTX (((CudaContext *) ctx)->ops)
#define OWN_CTX (((CudaContext *) ctx)->sam2)

static int
cuda_alloc (void *ctx, float **dev, gsize n)
{
  return OPS (lode_ops_cuda_alloc ((void **) dev, MAX (n, 1) * sizeof (float)));
}

static void
cuda_release (void *ctx, float *dev)
{
  lode_ops_cuda_release (dev);
}

static int
cuda_upload (void *ctx, float *dev, const float *host, gsize n)
{
  return OPS (lode_ops_cuda_upload (OPS_CTX, dev, host, n * sizeof (float)));
}

static int
cuda_download (void *ctx, float *host, const float *dev, gsize n)
{
  return OPS (lode_ops_cuda_download (OPS_CTX, host, dev, n * sizeof (float)));
}

static gsize
cuda_attention_scratch (void *ctx, int group, int lq, int lk)
{
  return lode_sam2_cuda_attention_scratch (group, lq, lk);
}

static gboolean
cuda_take_error (void *ctx, GError **error)
{
  CudaContext *c = ctx;

  if (c->error == NULL)
    return FALSE;
  g_propagate_error (error, g_steal_pointer (&c->error));
  return TRUE;
}

static int
cuda_begin (void *ctx)
{
  g_clear_error (&((CudaContext *) ctx)->error);
  return 0;
}

static int
cuda_sync (void *ctx)
{
  return OPS (lode_ops_cuda_synchronize (OPS_CTX));
}

static int
cuda_conv2d (void *ctx, float *out, const float *in, const float *w, const float *b,
             const LodeConvShape *s)
{
  return OPS (lode_ops_cuda_conv2d (OPS_CTX, out, in, w, b, s));
}

static int
cuda_nchw_to_nhwc (void *ctx, float *out, const float *in, int c, int h, int w)
{
  return OPS (lode_ops_cuda_nchw_to_nhwc (OPS_CTX, out, in, 1, c, h, w));
}

static int
cuda_add (void *ctx, float *out, const float *a, const float *b, gsize n)
{
  return OPS (lode_ops_cuda_add (OPS_CTX, out, a, b, n));
}

static int
cuda_layer_norm (void *ctx, float *out, const float *in, const float *w, const float *b,
                 int rows, int c, float eps)
{
  return OPS (lode_ops_cuda_layer_norm (OPS_CTX, out, in, w, b, rows, c, eps));
}

static int
cuda_linear (void *ctx, float *out, const float *x, const float *w, const float *b,
             int rows, int in_f, int out_f)
{
  return OPS (lode_ops_cuda_linear (OPS_CTX, out, x, w, b, rows, in_f, out_f));
}

static int
cuda_gelu (void *ctx, float *x, gsize n)
{
  return OPS (lode_ops_cuda_gelu (OPS_CTX, x, x, n));
}

static int
cuda_window_partition (void *ctx, float *out, const float *in, int h, int w, int c, int win)
{
  return OPS (lode_ops_cuda_window_partition (OPS_CTX, out, in, 1, h, w, c, win));
}

static int
cuda_window_unpartition (void *ctx, float *out, const float *in, int h, int w, int c, int win)
{
  return OPS (lode_ops_cuda_window_unpartition (OPS_CTX, out, in, 1, h, w, c, win));
}

static int
cuda_pool2x2_nhwc (void *ctx, float *out, const float *in, int in_stride, int n, int h, int w, int c)
{
  return OPS (lode_sam2_cuda_pool2x2_nhwc (OWN_CTX, out, in, in_stride, n, h, w, c));
}

static int
cuda_attention (void *ctx, float *out, const float *q, int q_stride, const float *k,
                const float *v, int kv_stride, int nw, int heads, int lq, int lk, int hd,
                float *scratch)
{
  return OPS (lode_sam2_cuda_attention (OWN_CTX, out, q, q_stride, k, v, kv_stride,
                                        nw, heads, lq, lk, hd, scratch));
}

static int
cuda_conv1x1_to_nchw (void *ctx, float *out, const float *x, const float *w, const float *b,
                      int hw, int c_in, int c_out)
{
  return OPS (lode_sam2_cuda_conv1x1_to_nchw (OWN_CTX, out, x, w, b, hw, c_in, c_out));
}

static int
cuda_add_channel_bias (void *ctx, float *out, const float *in, const float *bias, int c, int hw)
{
  return OPS (lode_ops_cuda_add_channel_bias (OPS_CTX, out, in, bias, 1, c, hw));
}

static int
cuda_upsample2_nearest (void *ctx, float *out, const float *in, int c, int h, int w)
{
  return OPS (lode_ops_cuda_resize (OPS_CTX, out, in, c, h, w, 2 * h, 2 * w, LODE_RESIZE_NEAREST));
}

#undef OPS
#undef OPS_CTX
#undef OWN_CTX

static const Sam2Backend cuda_backend = {
  cuda_alloc, cuda_release, cuda_upload, cuda_download, cuda_attention_scratch, cuda_take_error,
  cuda_begin, cuda_sync, cuda_sync,
  cuda_conv2d, cuda_nchw_to_nhwc, cuda_add, cuda_layer_norm, cuda_linear, cuda_gelu,
  cuda_window_partition, cuda_window_unpartition, cuda_pool2x2_nhwc, cuda_attention,
  cuda_conv1x1_to_nchw, cuda_add_channel_bias, cuda_upsample2_nearest,
};
#endif

/* ---- the encoder -------------------------------------------------------- */

typedef struct {
  /* weights */
  const float *norm1_w, *norm1_b, *qkv_w, *qkv_b, *attn_proj_w, *attn_proj_b;
  const float *norm2_w, *norm2_b, *mlp0_w, *mlp0_b, *mlp1_w, *mlp1_b;
  const float *proj_w, *proj_b;      /* stage starts only */
  /* geometry at the encoder's image size */
  int h, w;              /* input grid */
  int oh, ow;            /* output grid (halved when pooling) */
  int din, dout, heads, hd;
  gboolean pool;
  int win;               /* window size, 0 for global attention */
  int nw;                /* windows (1 for global) */
  int lk, lq;            /* tokens per window, before and after pooling */
  int wh, ww;            /* window extent in tokens (the grid for global) */
  int group;             /* windows per chunk of qkv */
  int mlp_rows;          /* tokens per chunk of the MLP */
  int sc_rows;           /* grid rows per chunk of the pooled residual (even) */
} Sam2Block;

struct _LodeSam2Encoder {
  LodeSam2Config cfg;
  LodeDeviceKind device;
  const Sam2Backend *be;
  void *ctx;
  CpuContext cpu;
#ifdef LODE_WITH_CUDA
  CudaContext cuda;
#endif

  float *weights;                /* every parameter, one device allocation */
  gsize n_weights;
  const float *patch_w, *patch_b;
  const float *neck_w[4], *neck_b[4];
  float *hr_w[2], *hr_b[2];      /* conv_s0 . neck 3, conv_s1 . neck 2, folded */
  const float *no_mem;
  float *pos;                    /* [grid*grid, embed_dim], in the weights block */
  Sam2Block blocks[LODE_SAM2_MAX_BLOCKS];
  int n_blocks;
  int grid;                      /* image_size / 4 */

  float *work;                   /* every work buffer, one device allocation */
  gsize n_work;
  float *input;                  /* the image [3, S, S], uploaded at run */
  float *x, *xn, *sc, *part, *qkv, *q, *att, *proj, *hid, *scores;
  float *lat2, *up, *out_embed, *out_hr[2];
};

const LodeSam2Config *
lode_sam2_encoder_config (LodeSam2Encoder *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return &self->cfg;
}

gsize
lode_sam2_encoder_weight_bytes (LodeSam2Encoder *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->n_weights * sizeof (float);
}

gsize
lode_sam2_encoder_work_bytes (LodeSam2Encoder *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->n_work * sizeof (float);
}

LodeDeviceKind
lode_sam2_encoder_device (LodeSam2Encoder *self)
{
  g_return_val_if_fail (self != NULL, LODE_DEVICE_CPU);
  return self->device;
}

gboolean
lode_sam2_encoder_set_precision (LodeSam2Encoder *self, LodePrecision precision, GError **error)
{
  g_return_val_if_fail (self != NULL, FALSE);
#ifdef LODE_WITH_CUDA
  if (self->device == LODE_DEVICE_CUDA)
    return lode_ops_cuda_check (lode_ops_cuda_set_precision (self->cuda.ops, precision), error);
#endif
  return TRUE;
}

void
lode_sam2_encoder_free (LodeSam2Encoder *self)
{
  if (self == NULL)
    return;
  if (self->be != NULL)
    {
      if (self->weights != NULL)
        self->be->release (self->ctx, self->weights);
      if (self->work != NULL)
        self->be->release (self->ctx, self->work);
    }
#ifdef LODE_WITH_CUDA
  lode_sam2_cuda_free (self->cuda.sam2);
  lode_ops_cuda_free (self->cuda.ops);
  g_clear_error (&self->cuda.error);
#endif
  g_free (self);
}

/* ---- resampling on the host (preprocessing, positional embedding) ------- */

/* The taps of torch's antialiased bilinear resampling (interpolate with
 * antialias=True, align_corners=False) along one axis: output i reads
 * inputs first[i] .. first[i] + count[i] - 1 with weights w[i * taps ..]. */
typedef struct {
  int taps;
  int *first, *count;
  float *w;
} AxisTaps;

static void
axis_taps_clear (AxisTaps *a)
{
  g_free (a->first);
  g_free (a->count);
  g_free (a->w);
}

static void
axis_taps_init (AxisTaps *a, int in, int out)
{
  double scale = (double) in / out;
  double support = scale >= 1.0 ? scale : 1.0;
  double invscale = scale >= 1.0 ? 1.0 / scale : 1.0;

  a->taps = (int) ceil (support) * 2 + 1;
  a->first = g_new (int, out);
  a->count = g_new (int, out);
  a->w = g_new0 (float, (gsize) out * a->taps);
  for (int i = 0; i < out; i++)
    {
      double center = scale * (i + 0.5), total = 0.0;
      float *ws = a->w + (gsize) i * a->taps;
      int lo = MAX ((int) (center - support + 0.5), 0);
      int hi = MIN ((int) (center + support + 0.5), in);
      int n = MIN (hi - lo, a->taps);

      for (int j = 0; j < n; j++)
        {
          double x = fabs ((j + lo - center + 0.5) * invscale);

          ws[j] = (float) (x < 1.0 ? 1.0 - x : 0.0);
          total += ws[j];
        }
      a->first[i] = lo;
      a->count[i] = n;
      for (int j = 0; j < n && total != 0.0; j++)
        ws[j] = (float) (ws[j] / total);
    }
}

void
lode_sam2_preprocess (const guint8 *rgb, int w, int h, int s, float *out)
{
  static const float mean[3] = { 0.485f, 0.456f, 0.406f };
  static const float std[3] = { 0.229f, 0.224f, 0.225f };
  AxisTaps ax, ay;
  float *plane, *rows;

  g_return_if_fail (rgb != NULL && out != NULL && w > 0 && h > 0 && s > 0);

  axis_taps_init (&ax, w, s);
  axis_taps_init (&ay, h, s);
  plane = g_new (float, (gsize) w * h);
  rows = g_new (float, (gsize) h * s);
  for (int c = 0; c < 3; c++)
    {
      float *dst = out + (gsize) c * s * s;

      for (gsize i = 0; i < (gsize) w * h; i++)
        plane[i] = rgb[3 * i + c] / 255.0f;
      /* horizontal pass: [h, w] -> [h, s] */
      for (int y = 0; y < h; y++)
        for (int x = 0; x < s; x++)
          {
            const float *src = plane + (gsize) y * w + ax.first[x];
            const float *wt = ax.w + (gsize) x * ax.taps;
            float acc = 0.0f;

            for (int j = 0; j < ax.count[x]; j++)
              acc += src[j] * wt[j];
            rows[(gsize) y * s + x] = acc;
          }
      /* vertical pass: [h, s] -> [s, s], then normalise */
      for (int y = 0; y < s; y++)
        {
          const float *wt = ay.w + (gsize) y * ay.taps;

          for (int x = 0; x < s; x++)
            {
              float acc = 0.0f;

              for (int j = 0; j < ay.count[y]; j++)
                acc += rows[(gsize) (ay.first[y] + j) * s + x] * wt[j];
              dst[(gsize) y * s + x] = (acc - mean[c]) / std[c];
            }
        }
    }
  g_free (plane);
  g_free (rows);
  axis_taps_clear (&ax);
  axis_taps_clear (&ay);
}

/* Keys's cubic convolution with A = -0.75, as torch's bicubic. */
static void
cubic_weights (float t, float wt[4])
{
  const float a = -0.75f;
  float x;

  x = t + 1.0f;
  wt[0] = ((a * x - 5.0f * a) * x + 8.0f * a) * x - 4.0f * a;
  x = t;
  wt[1] = ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f;
  x = 1.0f - t;
  wt[2] = ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f;
  x = 2.0f - t;
  wt[3] = ((a * x - 5.0f * a) * x + 8.0f * a) * x - 4.0f * a;
}

/* F.interpolate(mode='bicubic', align_corners=False) of one plane
 * [h, w] -> [oh, ow], borders clamped. */
static void
bicubic_plane (float *out, const float *in, int h, int w, int oh, int ow)
{
  float sy = (float) h / oh, sx = (float) w / ow;

  for (int y = 0; y < oh; y++)
    {
      float ry = sy * (y + 0.5f) - 0.5f;
      int iy = (int) floorf (ry);
      float wy[4];

      cubic_weights (ry - iy, wy);
      for (int x = 0; x < ow; x++)
        {
          float rx = sx * (x + 0.5f) - 0.5f;
          int ix = (int) floorf (rx);
          float wx[4], acc = 0.0f;

          cubic_weights (rx - ix, wx);
          for (int j = 0; j < 4; j++)
            {
              const float *row = in + (gsize) CLAMP (iy - 1 + j, 0, h - 1) * w;
              float r = 0.0f;

              for (int i = 0; i < 4; i++)
                r += row[CLAMP (ix - 1 + i, 0, w - 1)] * wx[i];
              acc += r * wy[j];
            }
          out[(gsize) y * ow + x] = acc;
        }
    }
}

/* Hiera's positional embedding at grid x grid, channels-last:
 * bicubic(pos_embed) + pos_embed_window tiled. */
static void
make_pos_embed (float *out, const float *bkg, const float *window, const LodeSam2Config *cfg, int grid)
{
  int e = cfg->embed_dim, pw = cfg->pos_embed_window;
  float *plane = g_new (float, (gsize) grid * grid);

  for (int c = 0; c < e; c++)
    {
      const float *win = window + (gsize) c * pw * pw;

      bicubic_plane (plane, bkg + (gsize) c * cfg->pos_embed_bkg[0] * cfg->pos_embed_bkg[1],
                     cfg->pos_embed_bkg[0], cfg->pos_embed_bkg[1], grid, grid);
      for (int y = 0; y < grid; y++)
        for (int x = 0; x < grid; x++)
          out[((gsize) y * grid + x) * e + c] = plane[(gsize) y * grid + x] + win[(y % pw) * pw + x % pw];
    }
  g_free (plane);
}

/* ---- construction ------------------------------------------------------- */

static void
plan_blocks (LodeSam2Encoder *self)
{
  const LodeSam2Config *cfg = &self->cfg;
  int h = self->grid, w = self->grid;

  self->n_blocks = lode_sam2_config_n_blocks (cfg);
  for (int i = 0; i < self->n_blocks; i++)
    {
      Sam2Block *b = &self->blocks[i];
      int s = lode_sam2_config_block_stage (cfg, i);
      int prev = i > 0 ? lode_sam2_config_block_stage (cfg, i - 1) : 0;

      b->h = h;
      b->w = w;
      b->dout = cfg->embed_dim << s;
      b->pool = i > 0 && prev != s;
      b->din = b->pool ? b->dout / 2 : b->dout;
      b->heads = cfg->num_heads << s;
      b->hd = b->dout / b->heads;
      /* the window lags a block: a stage's first block keeps the previous
       * stage's window */
      b->win = lode_sam2_config_block_is_global (cfg, i) ? 0 : cfg->window_spec[prev];
      if (b->win > 0)
        {
          b->nw = ((h + b->win - 1) / b->win) * ((w + b->win - 1) / b->win);
          b->wh = b->ww = b->win;
        }
      else
        {
          b->nw = 1;
          b->wh = h;
          b->ww = w;
        }
      b->lk = b->wh * b->ww;
      b->lq = b->pool ? (b->wh / 2) * (b->ww / 2) : b->lk;
      b->oh = b->pool ? h / 2 : h;
      b->ow = b->pool ? w / 2 : w;
      b->group = MAX (1, MIN (b->nw, CHUNK_FLOATS / (b->lk * 3 * b->dout)));
      b->mlp_rows = MAX (64, CHUNK_FLOATS / (4 * b->dout));
      b->sc_rows = MAX (2, MIN (h, CHUNK_FLOATS / (w * b->dout)) & ~1);
      h = b->oh;
      w = b->ow;
    }
}

/* Carves the work buffers out of one allocation (or, with base NULL, only
 * counts the floats). */
static gsize
layout_work (LodeSam2Encoder *self, float *base)
{
  gsize x = 0, xn = 0, sc = 0, part = 0, qkv = 0, q = 0, att = 0, proj = 0, hid = 0, scores = 0;
  gsize g = (gsize) self->grid, d = (gsize) self->cfg.d_model, off = 0;

  gsize input = (gsize) 3 * self->cfg.image_size * self->cfg.image_size;

  x = g * g * self->cfg.embed_dim;       /* the patch embedding (NCHW, then NHWC) */
  part = x;
  for (int i = 0; i < self->n_blocks; i++)
    {
      const Sam2Block *b = &self->blocks[i];
      gsize tokens = (gsize) b->nw * b->lk, gtok = (gsize) b->group * b->lk;
      gsize rows = MIN ((gsize) b->mlp_rows, (gsize) b->oh * b->ow);

      x = MAX (x, (gsize) b->h * b->w * b->din);
      xn = MAX (xn, (gsize) b->h * b->w * b->din);
      if (b->pool)
        {
          sc = MAX (sc, (gsize) b->oh * b->ow * b->dout);
          hid = MAX (hid, (gsize) b->sc_rows * b->w * b->dout);
        }
      if (b->win > 0)
        part = MAX (part, tokens * b->din);
      qkv = MAX (qkv, gtok * 3 * b->dout);
      if (b->pool)
        q = MAX (q, (gsize) b->group * b->lq * b->dout);
      att = MAX (att, MAX ((gsize) b->group * b->lq, rows) * b->dout);
      proj = MAX (proj, (gsize) b->nw * b->lq * b->dout);
      hid = MAX (hid, rows * 4 * b->dout);
      scores = MAX (scores, self->be->attention_scratch (self->ctx, b->group, b->lq, b->lk));
    }
  /* the neck's top-down path: the stride-32 lateral, then upsampled */
  hid = MAX (hid, d * (g / 8) * (g / 8));

#define CARVE(field, n) G_STMT_START { \
    if (base != NULL) \
      self->field = base + off; \
    off += ROUND16 (n); \
  } G_STMT_END
  CARVE (input, input);
  CARVE (x, x);
  CARVE (xn, xn);
  CARVE (sc, sc);
  CARVE (part, part);
  CARVE (qkv, qkv);
  CARVE (q, q);
  CARVE (att, att);
  CARVE (proj, proj);
  CARVE (hid, hid);
  CARVE (scores, scores);
  CARVE (lat2, d * (g / 4) * (g / 4));
  CARVE (up, d * (g / 4) * (g / 4));
  CARVE (out_embed, d * (g / 4) * (g / 4));
  CARVE (out_hr[0], d / 8 * g * g);
  CARVE (out_hr[1], d / 4 * (g / 2) * (g / 2));
#undef CARVE
  return off;
}

/* The next n floats of the weights block, 64-byte aligned. */
static float *
take (LodeSam2Encoder *self, gsize *off, gsize n)
{
  float *p = self->weights + *off;

  *off += ROUND16 (n);
  g_assert (*off <= self->n_weights);
  return p;
}

/* out [a, c] = x [a, b] y [b, c] + (bias_x [a, b] bias_y [b] + bias_z [a]), in double. */
static void
fold_1x1 (float *w_out, float *b_out, const float *w2, const float *b2, const float *w1,
          const float *b1, int c_out, int c_mid, int c_in)
{
  for (int o = 0; o < c_out; o++)
    {
      double bias = b2[o];

      for (int m = 0; m < c_mid; m++)
        bias += (double) w2[(gsize) o * c_mid + m] * b1[m];
      b_out[o] = (float) bias;
      for (int i = 0; i < c_in; i++)
        {
          double acc = 0.0;

          for (int m = 0; m < c_mid; m++)
            acc += (double) w2[(gsize) o * c_mid + m] * w1[(gsize) m * c_in + i];
          w_out[(gsize) o * c_in + i] = (float) acc;
        }
    }
}

/* Chooses the kernel table for device and starts its context. */
static gboolean
start_backend (LodeSam2Encoder *self, LodeDeviceKind device, GError **error)
{
  self->device = device;
  self->cpu = cpu_context_default ();
  if (device == LODE_DEVICE_CPU)
    {
      self->be = &cpu_backend;
      self->ctx = &self->cpu;
      return TRUE;
    }
#ifdef LODE_WITH_CUDA
  if (lode_device_cuda_count () > 0)
    {
      if (!lode_ops_cuda_check (lode_ops_cuda_new (&self->cuda.ops), error))
        return FALSE;
      int status = lode_sam2_cuda_new (self->cuda.ops, &self->cuda.sam2);

      if (!lode_ops_cuda_check (status, error))
        return FALSE;
      self->be = &cuda_backend;
      self->ctx = &self->cuda;
      return TRUE;
    }
#endif
  /* the reason, as --device cuda gets it */
  lode_device_choose ("cuda", error);
  return FALSE;
}

/* One device allocation of n floats through the table, for the weights
 * or the work buffers. */
static gboolean
device_alloc (LodeSam2Encoder *self, float **dev, gsize n, gboolean weights, GError **error)
{
  if (n > G_MAXSIZE / sizeof (float) / 2 || self->be->alloc (self->ctx, dev, n) != 0)
    {
      *dev = NULL;
      /* the GPU's detail (out of memory, with what is free), else the host's */
      if (self->be->take_error (self->ctx, error))
        return FALSE;
      if (weights)
        g_set_error (error, LODE_SAM2_CONFIG_ERROR, LODE_SAM2_CONFIG_ERROR_INVALID,
                     _("Not enough memory for the SAM2 image encoder's weights (%zu MiB)"),
                     (n * sizeof (float)) >> 20);
      else
        g_set_error (error, LODE_SAM2_CONFIG_ERROR, LODE_SAM2_CONFIG_ERROR_INVALID,
                     _("Not enough memory for the SAM2 image encoder's work buffers (%zu MiB)"),
                     (n * sizeof (float)) >> 20);
      return FALSE;
    }
  return TRUE;
}

/* The weight pointers, carved from staging, moved to the same offsets of
 * the device block. */
static void
rebase_weights (LodeSam2Encoder *self, const float *staging)
{
#define REBASE(p) G_STMT_START { \
    if ((p) != NULL) \
      (p) = self->weights + ((p) - staging); \
  } G_STMT_END
  REBASE (self->patch_w);
  REBASE (self->patch_b);
  for (int i = 0; i < 4; i++)
    {
      REBASE (self->neck_w[i]);
      REBASE (self->neck_b[i]);
    }
  for (int i = 0; i < 2; i++)
    {
      REBASE (self->hr_w[i]);
      REBASE (self->hr_b[i]);
    }
  REBASE (self->no_mem);
  REBASE (self->pos);
  for (int i = 0; i < self->n_blocks; i++)
    {
      Sam2Block *b = &self->blocks[i];

      REBASE (b->norm1_w);
      REBASE (b->norm1_b);
      REBASE (b->qkv_w);
      REBASE (b->qkv_b);
      REBASE (b->attn_proj_w);
      REBASE (b->attn_proj_b);
      REBASE (b->norm2_w);
      REBASE (b->norm2_b);
      REBASE (b->mlp0_w);
      REBASE (b->mlp0_b);
      REBASE (b->mlp1_w);
      REBASE (b->mlp1_b);
      REBASE (b->proj_w);
      REBASE (b->proj_b);
    }
#undef REBASE
}

LodeSam2Encoder *
lode_sam2_encoder_new (LodeCheckpoint *ckpt, const LodeSam2Config *cfg, GError **error)
{
  return lode_sam2_encoder_new_on (ckpt, cfg, LODE_DEVICE_CPU, error);
}

LodeSam2Encoder *
lode_sam2_encoder_new_on (LodeCheckpoint       *ckpt,
                          const LodeSam2Config *cfg,
                          LodeDeviceKind        device,
                          GError              **error)
{
  g_autoptr(LodeSam2Encoder) self = NULL;
  g_autoptr(GArray) specs = NULL;
  g_autofree const float **ptr = NULL;
  g_autofree float *staging = NULL;
  LodeSam2Config checked;
  gsize total = 0, off = 0, g, d;
  int k = 0;

  g_return_val_if_fail (ckpt != NULL && cfg != NULL, NULL);

  checked = *cfg;
  if (!lode_sam2_config_complete (&checked, error)
      || !lode_sam2_config_check_encoder (&checked, ckpt, error))
    return NULL;

  self = g_new0 (LodeSam2Encoder, 1);
  self->cfg = checked;
  if (!start_backend (self, device, error))
    return NULL;
  self->grid = checked.image_size / 4;
  g = (gsize) self->grid;
  d = (gsize) checked.d_model;

  /* every tensor, the folded high-resolution convolutions, the positional
   * embedding: one block of float32 */
  specs = lode_sam2_config_encoder_tensors (&checked);
  for (guint i = 0; i < specs->len; i++)
    {
      const LodeSam2TensorSpec *spec = &g_array_index (specs, LodeSam2TensorSpec, i);
      gsize n = 1;

      for (int j = 0; j < spec->ndim; j++)
        n *= (gsize) spec->shape[j];
      total += ROUND16 (n);
    }
  total += ROUND16 (d / 8 * checked.embed_dim) + ROUND16 (d / 8);
  total += ROUND16 (d / 4 * checked.embed_dim * 2) + ROUND16 (d / 4);
  total += ROUND16 (g * g * checked.embed_dim);
  /* built on the host (folding, positional embedding), then uploaded */
  staging = g_try_new (float, total);
  self->weights = staging;
  if (staging == NULL)
    {
      g_set_error (error, LODE_SAM2_CONFIG_ERROR, LODE_SAM2_CONFIG_ERROR_INVALID,
                   _("Not enough memory for the SAM2 image encoder's weights (%zu MiB)"),
                   total * sizeof (float) >> 20);
      return NULL;
    }
  self->n_weights = total;

  ptr = g_new0 (const float *, specs->len);
  for (guint i = 0; i < specs->len; i++)
    {
      const LodeSam2TensorSpec *spec = &g_array_index (specs, LodeSam2TensorSpec, i);
      g_autoptr(LodeTensor) t = lode_checkpoint_load (ckpt, spec->name, error);

      if (t == NULL)
        return NULL;
      ptr[i] = take (self, &off, t->numel);
      memcpy ((float *) ptr[i], t->data, t->numel * sizeof (float));
    }

  /* the same order as lode_sam2_config_encoder_tensors */
  {
    const float *bkg = ptr[k++];
    const float *window = ptr[k++];

    self->patch_w = ptr[k++];
    self->patch_b = ptr[k++];
    plan_blocks (self);
    for (int i = 0; i < self->n_blocks; i++)
      {
        Sam2Block *b = &self->blocks[i];

        b->norm1_w = ptr[k++];
        b->norm1_b = ptr[k++];
        b->qkv_w = ptr[k++];
        b->qkv_b = ptr[k++];
        b->attn_proj_w = ptr[k++];
        b->attn_proj_b = ptr[k++];
        b->norm2_w = ptr[k++];
        b->norm2_b = ptr[k++];
        b->mlp0_w = ptr[k++];
        b->mlp0_b = ptr[k++];
        b->mlp1_w = ptr[k++];
        b->mlp1_b = ptr[k++];
        if (b->pool)
          {
            b->proj_w = ptr[k++];
            b->proj_b = ptr[k++];
          }
      }
    for (int i = 0; i < 4; i++)
      {
        self->neck_w[i] = ptr[k++];
        self->neck_b[i] = ptr[k++];
      }
    {
      const float *s0_w = ptr[k++], *s0_b = ptr[k++];
      const float *s1_w = ptr[k++], *s1_b = ptr[k++];

      self->no_mem = ptr[k++];
      g_assert ((guint) k == specs->len);

      self->hr_w[0] = take (self, &off, d / 8 * checked.embed_dim);
      self->hr_b[0] = take (self, &off, d / 8);
      self->hr_w[1] = take (self, &off, d / 4 * checked.embed_dim * 2);
      self->hr_b[1] = take (self, &off, d / 4);
      fold_1x1 (self->hr_w[0], self->hr_b[0], s0_w, s0_b, self->neck_w[3], self->neck_b[3],
                (int) d / 8, (int) d, checked.embed_dim);
      fold_1x1 (self->hr_w[1], self->hr_b[1], s1_w, s1_b, self->neck_w[2], self->neck_b[2],
                (int) d / 4, (int) d, checked.embed_dim * 2);
    }
    self->pos = take (self, &off, g * g * checked.embed_dim);
    make_pos_embed (self->pos, bkg, window, &checked, self->grid);
  }

  self->weights = NULL;
  if (!device_alloc (self, &self->weights, total, TRUE, error))
    return NULL;
  if (self->be->upload (self->ctx, self->weights, staging, total) != 0
      || self->be->sync (self->ctx) != 0)
    {
      if (!self->be->take_error (self->ctx, error))
        g_set_error (error, LODE_SAM2_CONFIG_ERROR, LODE_SAM2_CONFIG_ERROR_INVALID,
                     _("The SAM2 image encoder failed"));
      return NULL;
    }
  rebase_weights (self, staging);
  /* a weight left pointing at the host copy reads NaN from here on, on
   * the CPU too: the CPU tests catch a forgotten rebase */
  for (gsize i = 0; i < total; i++)
    staging[i] = NAN;

  self->n_work = layout_work (self, NULL);
  if (!device_alloc (self, &self->work, self->n_work, FALSE, error))
    return NULL;
  layout_work (self, self->work);
  return g_steal_pointer (&self);
}

/* ---- the forward pass --------------------------------------------------- */

#define RUN(call) G_STMT_START { if ((call) != 0) return FALSE; } G_STMT_END

/* qkv, attention (with q pooled at stage starts) and the output projection
 * on every window, group by group: self->proj [nw, lq, dout]. src holds the
 * windows [nw, lk, din]. */
static gboolean
block_attention (LodeSam2Encoder *self, const Sam2Block *b, const float *src)
{
  const Sam2Backend *be = self->be;
  int stride = 3 * b->dout;

  for (int w0 = 0; w0 < b->nw; w0 += b->group)
    {
      int n = MIN (b->group, b->nw - w0);
      const float *q = self->qkv;
      int q_stride = stride;

      RUN (be->linear (self->ctx, self->qkv, src + (gsize) w0 * b->lk * b->din, b->qkv_w, b->qkv_b,
                       n * b->lk, b->din, stride));
      if (b->pool)
        {
          RUN (be->pool2x2_nhwc (self->ctx, self->q, self->qkv, stride, n, b->wh, b->ww, b->dout));
          q = self->q;
          q_stride = b->dout;
        }
      RUN (be->attention (self->ctx, self->att, q, q_stride, self->qkv + b->dout, self->qkv + 2 * b->dout,
                          stride, n, b->heads, b->lq, b->lk, b->hd, self->scores));
      RUN (be->linear (self->ctx, self->proj + (gsize) w0 * b->lq * b->dout, self->att,
                       b->attn_proj_w, b->attn_proj_b, n * b->lq, b->dout, b->dout));
    }
  return TRUE;
}

static gboolean
block_forward (LodeSam2Encoder *self, const Sam2Block *b)
{
  const Sam2Backend *be = self->be;
  gsize in_tokens = (gsize) b->h * b->w, out_tokens = (gsize) b->oh * b->ow;
  const float *shortcut = self->x;
  const float *att;

  RUN (be->layer_norm (self->ctx, self->xn, self->x, b->norm1_w, b->norm1_b, (int) in_tokens, b->din, LN_EPS));
  if (b->pool)
    {
      /* the residual: projected to the new width, then pooled, a band of
       * grid rows at a time */
      for (int y0 = 0; y0 < b->h; y0 += b->sc_rows)
        {
          int rows = MIN (b->sc_rows, b->h - y0);

          RUN (be->linear (self->ctx, self->hid, self->xn + (gsize) y0 * b->w * b->din, b->proj_w, b->proj_b,
                           rows * b->w, b->din, b->dout));
          RUN (be->pool2x2_nhwc (self->ctx, self->sc + (gsize) (y0 / 2) * b->ow * b->dout, self->hid,
                                 b->dout, 1, rows, b->w, b->dout));
        }
      shortcut = self->sc;
    }

  if (b->win > 0)
    {
      RUN (be->window_partition (self->ctx, self->part, self->xn, b->h, b->w, b->din, b->win));
      if (!block_attention (self, b, self->part))
        return FALSE;
      RUN (be->window_unpartition (self->ctx, self->part, self->proj, b->oh, b->ow, b->dout,
                                   b->pool ? b->win / 2 : b->win));
      att = self->part;
    }
  else
    {
      if (!block_attention (self, b, self->xn))
        return FALSE;
      att = self->proj;
    }
  RUN (be->add (self->ctx, self->x, shortcut, att, out_tokens * b->dout));

  /* MLP, by chunks of rows */
  RUN (be->layer_norm (self->ctx, self->xn, self->x, b->norm2_w, b->norm2_b, (int) out_tokens, b->dout, LN_EPS));
  for (gsize r0 = 0; r0 < out_tokens; r0 += b->mlp_rows)
    {
      int rows = (int) MIN ((gsize) b->mlp_rows, out_tokens - r0);
      float *xr = self->x + r0 * b->dout;

      RUN (be->linear (self->ctx, self->hid, self->xn + r0 * b->dout, b->mlp0_w, b->mlp0_b,
                       rows, b->dout, 4 * b->dout));
      RUN (be->gelu (self->ctx, self->hid, (gsize) rows * 4 * b->dout));
      RUN (be->linear (self->ctx, self->att, self->hid, b->mlp1_w, b->mlp1_b, rows, 4 * b->dout, b->dout));
      RUN (be->add (self->ctx, xr, xr, self->att, (gsize) rows * b->dout));
    }
  return TRUE;
}

/* FALSE on a kernel's failure or, with *cancelled set, when cancellable
 * was cancelled (seen between blocks and before each neck stage). */
static gboolean
encoder_forward (LodeSam2Encoder *self, const float *image, GCancellable *cancellable, gboolean *cancelled)
{
  const Sam2Backend *be = self->be;
  const LodeSam2Config *cfg = &self->cfg;
  int g = self->grid, d = cfg->d_model, stage = 0;
  LodeConvShape cs;

  /* patch embedding: 7x7 stride 4 convolution, to channels-last, plus the
   * positional embedding */
  RUN (be->upload (self->ctx, self->input, image, (gsize) 3 * cfg->image_size * cfg->image_size));
  lode_conv_shape_init (&cs, 1, 3, cfg->image_size, cfg->image_size, cfg->embed_dim, 7, 4, 3);
  RUN (be->conv2d (self->ctx, self->part, self->input, self->patch_w, self->patch_b, &cs));
  RUN (be->nchw_to_nhwc (self->ctx, self->x, self->part, cfg->embed_dim, g, g));
  RUN (be->add (self->ctx, self->x, self->x, self->pos, (gsize) g * g * cfg->embed_dim));

  for (int i = 0; i < self->n_blocks; i++)
    {
      const Sam2Block *b = &self->blocks[i];
      int hw;

      /* the host waits for the device's previous block here, so that a
       * cancellation stops the work within a block (kernels are queued
       * ahead of the device otherwise) */
      RUN (be->sync (self->ctx));
      if (g_cancellable_is_cancelled (cancellable))
        {
          *cancelled = TRUE;
          return FALSE;
        }
      if (!block_forward (self, b))
        return FALSE;
      if (i != lode_sam2_config_n_blocks (cfg) - 1
          && lode_sam2_config_block_stage (cfg, i + 1) == stage)
        continue;

      /* the end of a stage: the neck's lateral convolution of that level */
      if (g_cancellable_is_cancelled (cancellable))
        {
          *cancelled = TRUE;
          return FALSE;
        }
      hw = b->oh * b->ow;
      switch (stage)
        {
        case 0:
          /* level 0: conv_s0 . lateral, folded */
          RUN (be->conv1x1_to_nchw (self->ctx, self->out_hr[0], self->x, self->hr_w[0], self->hr_b[0],
                                    hw, b->dout, d / 8));
          break;
        case 1:
          RUN (be->conv1x1_to_nchw (self->ctx, self->out_hr[1], self->x, self->hr_w[1], self->hr_b[1],
                                    hw, b->dout, d / 4));
          break;
        case 2:
          RUN (be->conv1x1_to_nchw (self->ctx, self->lat2, self->x, self->neck_w[1], self->neck_b[1],
                                    hw, b->dout, d));
          break;
        default:
          /* level 3 is dropped (scalp 1) but feeds level 2 top-down:
           * image_embed = lateral 2 + nearest x2 (lateral 3) + no_mem_embed */
          RUN (be->conv1x1_to_nchw (self->ctx, self->hid, self->x, self->neck_w[0], self->neck_b[0],
                                    hw, b->dout, d));
          RUN (be->upsample2_nearest (self->ctx, self->up, self->hid, d, b->oh, b->ow));
          RUN (be->add (self->ctx, self->out_embed, self->lat2, self->up, (gsize) d * hw * 4));
          RUN (be->add_channel_bias (self->ctx, self->out_embed, self->out_embed, self->no_mem, d, hw * 4));
          break;
        }
      stage++;
    }
  return TRUE;
}

LodeSam2Embedding *
lode_sam2_encoder_run (LodeSam2Encoder *self,
                       const float     *image,
                       GCancellable    *cancellable,
                       GError         **error)
{
  g_autoptr(LodeSam2Embedding) e = NULL;
  gboolean ok, cancelled = FALSE;
  gsize s16;

  g_return_val_if_fail (self != NULL && image != NULL, NULL);

  e = lode_sam2_embedding_new (self->cfg.image_size, self->cfg.d_model);
  s16 = (gsize) e->embed_size;
  if (self->be->begin (self->ctx) != 0)
    ok = FALSE;
  else
    {
      ok = encoder_forward (self, image, cancellable, &cancelled);
      ok = self->be->end (self->ctx) == 0 && ok;
    }
  if (cancelled)
    {
      g_cancellable_set_error_if_cancelled (cancellable, error);
      return NULL;
    }
  if (!ok && self->be->take_error (self->ctx, error))
    return NULL;
  if (!ok
      || self->be->download (self->ctx, e->image_embed, self->out_embed, (gsize) e->d_model * s16 * s16) != 0
      || self->be->download (self->ctx, e->high_res[0], self->out_hr[0],
                             (gsize) e->high_res_channels[0] * s16 * s16 * 16) != 0
      || self->be->download (self->ctx, e->high_res[1], self->out_hr[1],
                             (gsize) e->high_res_channels[1] * s16 * s16 * 4) != 0)
    {
      if (self->be->take_error (self->ctx, error))
        return NULL;
      g_set_error (error, LODE_SAM2_CONFIG_ERROR, LODE_SAM2_CONFIG_ERROR_INVALID,
                   _("The SAM2 image encoder failed"));
      return NULL;
    }
  return g_steal_pointer (&e);
}

LodeSam2Embedding *
lode_sam2_encoder_run_rgb (LodeSam2Encoder *self,
                           const guint8    *rgb,
                           int              w,
                           int              h,
                           GCancellable    *cancellable,
                           GError         **error)
{
  g_autofree float *image = NULL;
  int s;

  g_return_val_if_fail (self != NULL && rgb != NULL && w > 0 && h > 0, NULL);

  s = self->cfg.image_size;
  image = g_try_new (float, (gsize) 3 * s * s);
  if (image == NULL)
    {
      g_set_error (error, LODE_SAM2_CONFIG_ERROR, LODE_SAM2_CONFIG_ERROR_INVALID,
                   _("Not enough memory for a %d x %d input image"), s, s);
      return NULL;
    }
  lode_sam2_preprocess (rgb, w, h, s, image);
  return lode_sam2_encoder_run (self, image, cancellable, error);
}
