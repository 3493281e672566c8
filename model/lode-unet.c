/* lode-unet.c: U-Net with a ResNet encoder (see lode-unet.h).
 *
 * The network is a list of "units" (a convolution, optionally followed by
 * batch norm and ReLU), grouped into residual blocks for the encoder and
 * into decoder blocks. Each unit keeps its convolution output z (the input
 * of batch norm), its output y and a buffer dy for the gradient of y; the
 * backward of a unit turns dy, in place, into the gradient of z and then
 * into the gradient of its input, written into the dy of the unit before it
 * (or added to it, where two paths meet: residual shortcuts, U-Net skips).
 *
 * One orchestration for both devices: the passes call their kernels and
 * their memory operations through a UnetBackend table, and never touch the
 * buffers it hands out ("device" buffers) with plain C. The CPU table wraps
 * lode-ops.h and lode-grad.h (its device buffers are host memory, and the
 * device copies of the parameters are the host arrays themselves); the CUDA
 * table wraps lode-ops-cuda.h, lode-grad-cuda.h and lode-unet-cuda.h, and
 * the host arrays are mirrors kept coherent by the stale masks below.
 */
#define G_LOG_DOMAIN "lode-model"

#include "config.h"

#include <glib/gi18n.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "lode-grad.h"
#include "lode-ops.h"
#include "lode-unet.h"
#ifdef LODE_WITH_CUDA
#include "lode-grad-cuda.h"
#include "lode-unet-cuda.h"
#endif

G_DEFINE_QUARK (lode-unet-error-quark, lode_unet_error)

#define BN_EPS 1e-5f
#define BN_MOMENTUM 0.1f
#define N_DECODER 5

static const int decoder_channels[N_DECODER] = { 256, 128, 64, 32, 16 };

/* ---- the kernels and memory operations, per device -------------------- */

/* Device pointers in, a status out (0: done; otherwise a LodeCudaStatus
 * that check turns into a GError). Each entry has the semantics of its
 * lode-ops.h / lode-grad.h namesake. */
typedef struct {
  int  (*alloc)      (void *ctx, void **dev, gsize bytes);
  void (*release)    (void *ctx, void *dev);
  int  (*upload)     (void *ctx, void *dev, const void *host, gsize bytes);
  /* waits for the queued work before it returns */
  int  (*download)   (void *ctx, void *host, const void *dev, gsize bytes);
  int  (*copy)       (void *ctx, void *dst, const void *src, gsize bytes);
  int  (*zero)       (void *ctx, void *dev, gsize bytes);
  int  (*synchronize) (void *ctx);
  gboolean (*check)  (int status, GError **error);
  int  (*conv2d)     (void *ctx, float *out, const float *in, const float *w, const float *b,
                      const LodeConvShape *s);
  int  (*batch_norm) (void *ctx, float *out, const float *in, const float *mean,
                      const float *var, const float *w, const float *b, int n, int c, int hw,
                      float eps);
  int  (*batch_norm_train) (void *ctx, float *out, const float *in, const float *w,
                            const float *b, float *rmean, float *rvar, float *mean,
                            float *invstd, int n, int c, int hw, float eps, float momentum);
  int  (*invstd)     (void *ctx, float *invstd, const float *var, int c, float eps);
  int  (*relu)       (void *ctx, float *out, const float *in, gsize count);
  int  (*add)        (void *ctx, float *out, const float *a, const float *b, gsize count);
  int  (*grad_relu)  (void *ctx, float *dx, const float *dy, const float *y, gsize count);
  int  (*grad_batch_norm) (void *ctx, float *dx, float *dw, float *db, const float *dy,
                           const float *x, const float *mean, const float *invstd,
                           const float *w, int n, int c, int hw, gboolean batch_stats);
  int  (*grad_conv2d) (void *ctx, float *dx, float *dw, float *db, const float *dy,
                       const float *x, const float *w, const LodeConvShape *s,
                       gboolean accumulate);
  int  (*max_pool)   (void *ctx, float *out, gint32 *argmax, const float *in, int n, int c,
                      int h, int w, int kernel, int stride, int pad);
  int  (*grad_max_pool) (void *ctx, float *dx, const float *dy, const gint32 *argmax, int n,
                         int c, int h, int w, int oh, int ow, int kernel, int stride, int pad,
                         gboolean accumulate);
  int  (*upsample)   (void *ctx, float *out, const float *in, int nc, int h, int w);
  int  (*grad_upsample) (void *ctx, float *dx, const float *dy, int nc, int h, int w);
  int  (*concat)     (void *ctx, float *out, const float *a, int ca, const float *b, int cb,
                      int n, int hw);
  int  (*split)      (void *ctx, float *da, float *db, const float *dout, int ca, int cb,
                      int n, int hw);
  int  (*cross_entropy) (void *ctx, float *dlogits, const float *logits, const gint16 *target,
                         const float *class_weight, int n, int c, int hw, int ignore_index,
                         float scale, double *loss);
  /* adds its gradient into dlogits */
  int  (*dice)       (void *ctx, float *dlogits, const float *logits, const gint16 *target,
                      int n, int c, int hw, int ignore_index, float scale, double *loss);
  int  (*adamw)      (void *ctx, float *param, const float *grad, float *m, float *v,
                      gsize count, const LodeAdamW *opt, gint64 step);
} UnetBackend;

static int
cpu_alloc (void *ctx, void **dev, gsize bytes)
{
  *dev = g_malloc (bytes ? bytes : 1);
  return 0;
}

static void
cpu_release (void *ctx, void *dev)
{
  g_free (dev);
}

static int
cpu_memcpy (void *ctx, void *dst, const void *src, gsize bytes)
{
  if (dst != src && bytes > 0)
    memcpy (dst, src, bytes);
  return 0;
}

static int
cpu_zero (void *ctx, void *dev, gsize bytes)
{
  memset (dev, 0, bytes);
  return 0;
}

static int
cpu_synchronize (void *ctx)
{
  return 0;
}

static gboolean
cpu_check (int status, GError **error)
{
  return TRUE;
}

static int
cpu_conv2d (void *ctx, float *out, const float *in, const float *w, const float *b,
            const LodeConvShape *s)
{
  lode_ops_conv2d (out, in, w, b, s);
  return 0;
}

static int
cpu_batch_norm (void *ctx, float *out, const float *in, const float *mean, const float *var,
                const float *w, const float *b, int n, int c, int hw, float eps)
{
  lode_ops_batch_norm (out, in, mean, var, w, b, n, c, hw, eps);
  return 0;
}

static int
cpu_batch_norm_train (void *ctx, float *out, const float *in, const float *w, const float *b,
                      float *rmean, float *rvar, float *mean, float *invstd, int n, int c,
                      int hw, float eps, float momentum)
{
  lode_grad_batch_norm_train (out, in, w, b, rmean, rvar, mean, invstd, n, c, hw, eps, momentum);
  return 0;
}

static int
cpu_invstd (void *ctx, float *invstd, const float *var, int c, float eps)
{
  lode_grad_invstd (invstd, var, c, eps);
  return 0;
}

static int
cpu_relu (void *ctx, float *out, const float *in, gsize count)
{
  lode_ops_relu (out, in, count);
  return 0;
}

static int
cpu_add (void *ctx, float *out, const float *a, const float *b, gsize count)
{
  lode_ops_add (out, a, b, count);
  return 0;
}

static int
cpu_grad_relu (void *ctx, float *dx, const float *dy, const float *y, gsize count)
{
  lode_grad_relu (dx, dy, y, count);
  return 0;
}

static int
cpu_grad_batch_norm (void *ctx, float *dx, float *dw, float *db, const float *dy,
                     const float *x, const float *mean, const float *invstd, const float *w,
                     int n, int c, int hw, gboolean batch_stats)
{
  lode_grad_batch_norm (dx, dw, db, dy, x, mean, invstd, w, n, c, hw, batch_stats);
  return 0;
}

static int
cpu_grad_conv2d (void *ctx, float *dx, float *dw, float *db, const float *dy, const float *x,
                 const float *w, const LodeConvShape *s, gboolean accumulate)
{
  lode_grad_conv2d (dx, dw, db, dy, x, w, s, accumulate);
  return 0;
}

static int
cpu_max_pool (void *ctx, float *out, gint32 *argmax, const float *in, int n, int c, int h,
              int w, int kernel, int stride, int pad)
{
  lode_grad_max_pool2d_forward (out, argmax, in, n, c, h, w, kernel, stride, pad);
  return 0;
}

static int
cpu_grad_max_pool (void *ctx, float *dx, const float *dy, const gint32 *argmax, int n, int c,
                   int h, int w, int oh, int ow, int kernel, int stride, int pad,
                   gboolean accumulate)
{
  lode_grad_max_pool2d (dx, dy, argmax, n, c, h, w, oh, ow, accumulate);
  return 0;
}

static int
cpu_upsample (void *ctx, float *out, const float *in, int nc, int h, int w)
{
  lode_grad_upsample2x_forward (out, in, nc, h, w);
  return 0;
}

static int
cpu_grad_upsample (void *ctx, float *dx, const float *dy, int nc, int h, int w)
{
  lode_grad_upsample2x (dx, dy, nc, h, w);
  return 0;
}

static int
cpu_concat (void *ctx, float *out, const float *a, int ca, const float *b, int cb, int n, int hw)
{
  lode_grad_concat_channels (out, a, ca, b, cb, n, hw);
  return 0;
}

static int
cpu_split (void *ctx, float *da, float *db, const float *dout, int ca, int cb, int n, int hw)
{
  lode_grad_split_channels (da, db, dout, ca, cb, n, hw);
  return 0;
}

static int
cpu_cross_entropy (void *ctx, float *dlogits, const float *logits, const gint16 *target,
                   const float *class_weight, int n, int c, int hw, int ignore_index,
                   float scale, double *loss)
{
  *loss = lode_grad_cross_entropy (dlogits, logits, target, class_weight, n, c, hw,
                                   ignore_index, scale);
  return 0;
}

static int
cpu_dice (void *ctx, float *dlogits, const float *logits, const gint16 *target, int n, int c,
          int hw, int ignore_index, float scale, double *loss)
{
  *loss = lode_grad_dice (dlogits, logits, target, n, c, hw, ignore_index, scale);
  return 0;
}

static int
cpu_adamw (void *ctx, float *param, const float *grad, float *m, float *v, gsize count,
           const LodeAdamW *opt, gint64 step)
{
  lode_grad_adamw (param, grad, m, v, count, opt, step);
  return 0;
}

static const UnetBackend cpu_backend = {
  cpu_alloc, cpu_release, cpu_memcpy, cpu_memcpy, cpu_memcpy, cpu_zero, cpu_synchronize,
  cpu_check, cpu_conv2d, cpu_batch_norm, cpu_batch_norm_train, cpu_invstd, cpu_relu, cpu_add,
  cpu_grad_relu, cpu_grad_batch_norm, cpu_grad_conv2d, cpu_max_pool, cpu_grad_max_pool,
  cpu_upsample, cpu_grad_upsample, cpu_concat, cpu_split, cpu_cross_entropy, cpu_dice,
  cpu_adamw,
};

#ifdef LODE_WITH_CUDA

static int
gpu_alloc (void *ctx, void **dev, gsize bytes)
{
  return lode_ops_cuda_alloc (dev, bytes);
}

static void
gpu_release (void *ctx, void *dev)
{
  lode_ops_cuda_release (dev);
}

static int
gpu_upload (void *ctx, void *dev, const void *host, gsize bytes)
{
  return bytes > 0 ? lode_ops_cuda_upload (ctx, dev, host, bytes) : 0;
}

static int
gpu_download (void *ctx, void *host, const void *dev, gsize bytes)
{
  return bytes > 0 ? lode_ops_cuda_download (ctx, host, dev, bytes) : 0;
}

static int
gpu_copy (void *ctx, void *dst, const void *src, gsize bytes)
{
  return lode_ops_cuda_copy (ctx, dst, src, bytes);
}

static int
gpu_zero (void *ctx, void *dev, gsize bytes)
{
  return bytes > 0 ? lode_ops_cuda_zero (ctx, dev, bytes) : 0;
}

static int
gpu_synchronize (void *ctx)
{
  return lode_ops_cuda_synchronize (ctx);
}

static int
gpu_conv2d (void *ctx, float *out, const float *in, const float *w, const float *b,
            const LodeConvShape *s)
{
  return lode_ops_cuda_conv2d (ctx, out, in, w, b, s);
}

static int
gpu_batch_norm (void *ctx, float *out, const float *in, const float *mean, const float *var,
                const float *w, const float *b, int n, int c, int hw, float eps)
{
  return lode_ops_cuda_batch_norm (ctx, out, in, mean, var, w, b, n, c, hw, eps);
}

static int
gpu_batch_norm_train (void *ctx, float *out, const float *in, const float *w, const float *b,
                      float *rmean, float *rvar, float *mean, float *invstd, int n, int c,
                      int hw, float eps, float momentum)
{
  return lode_grad_cuda_batch_norm_train (ctx, out, in, w, b, rmean, rvar, mean, invstd, n, c,
                                          hw, eps, momentum);
}

static int
gpu_invstd (void *ctx, float *invstd, const float *var, int c, float eps)
{
  return lode_unet_cuda_invstd (ctx, invstd, var, c, eps);
}

static int
gpu_relu (void *ctx, float *out, const float *in, gsize count)
{
  return lode_ops_cuda_relu (ctx, out, in, count);
}

static int
gpu_add (void *ctx, float *out, const float *a, const float *b, gsize count)
{
  return lode_ops_cuda_add (ctx, out, a, b, count);
}

static int
gpu_grad_relu (void *ctx, float *dx, const float *dy, const float *y, gsize count)
{
  return lode_grad_cuda_relu (ctx, dx, dy, y, count);
}

static int
gpu_grad_batch_norm (void *ctx, float *dx, float *dw, float *db, const float *dy,
                     const float *x, const float *mean, const float *invstd, const float *w,
                     int n, int c, int hw, gboolean batch_stats)
{
  return lode_grad_cuda_batch_norm (ctx, dx, dw, db, dy, x, mean, invstd, w, n, c, hw,
                                    batch_stats);
}

static int
gpu_grad_conv2d (void *ctx, float *dx, float *dw, float *db, const float *dy, const float *x,
                 const float *w, const LodeConvShape *s, gboolean accumulate)
{
  return lode_grad_cuda_conv2d (ctx, dx, dw, db, dy, x, w, s, accumulate);
}

static int
gpu_max_pool (void *ctx, float *out, gint32 *argmax, const float *in, int n, int c, int h,
              int w, int kernel, int stride, int pad)
{
  return lode_grad_cuda_max_pool2d_forward (ctx, out, argmax, in, n, c, h, w, kernel, stride, pad);
}

static int
gpu_grad_max_pool (void *ctx, float *dx, const float *dy, const gint32 *argmax, int n, int c,
                   int h, int w, int oh, int ow, int kernel, int stride, int pad,
                   gboolean accumulate)
{
  return lode_grad_cuda_max_pool2d (ctx, dx, dy, argmax, n, c, h, w, oh, ow, kernel, stride,
                                    pad, accumulate);
}

static int
gpu_upsample (void *ctx, float *out, const float *in, int nc, int h, int w)
{
  return lode_grad_cuda_upsample2x_forward (ctx, out, in, nc, h, w);
}

static int
gpu_grad_upsample (void *ctx, float *dx, const float *dy, int nc, int h, int w)
{
  return lode_grad_cuda_upsample2x (ctx, dx, dy, nc, h, w);
}

static int
gpu_concat (void *ctx, float *out, const float *a, int ca, const float *b, int cb, int n, int hw)
{
  return lode_unet_cuda_concat_channels (ctx, out, a, ca, b, cb, n, hw);
}

static int
gpu_split (void *ctx, float *da, float *db, const float *dout, int ca, int cb, int n, int hw)
{
  return lode_unet_cuda_split_channels (ctx, da, db, dout, ca, cb, n, hw);
}

static int
gpu_cross_entropy (void *ctx, float *dlogits, const float *logits, const gint16 *target,
                   const float *class_weight, int n, int c, int hw, int ignore_index,
                   float scale, double *loss)
{
  return lode_grad_cuda_cross_entropy (ctx, dlogits, logits, target, class_weight, n, c, hw,
                                       ignore_index, scale, loss);
}

/* Soft Dice on the host, from the downloaded logits and target: its
 * gradient comes back up and is added into dlogits. The logits of a batch
 * are small beside the activations (classes planes a patch), so the copies
 * cost little; lode_grad_dice stays the one implementation. */
static int
gpu_dice (void *ctx, float *dlogits, const float *logits, const gint16 *target, int n, int c,
          int hw, int ignore_index, float scale, double *loss)
{
  gsize nl = (gsize) n * c * hw, nt = (gsize) n * hw;
  g_autofree float *hl = g_new (float, nl);
  g_autofree float *hd = g_new0 (float, nl);
  g_autofree gint16 *ht = g_new (gint16, nt);
  float *dd = NULL;
  int status;

  status = lode_ops_cuda_download (ctx, hl, logits, nl * sizeof (float));
  if (status == 0)
    status = lode_ops_cuda_download (ctx, ht, target, nt * sizeof (gint16));
  if (status != 0)
    return status;
  *loss = lode_grad_dice (hd, hl, ht, n, c, hw, ignore_index, scale);
  status = lode_ops_cuda_alloc ((void **) &dd, nl * sizeof (float));
  if (status == 0)
    status = lode_ops_cuda_upload (ctx, dd, hd, nl * sizeof (float));
  if (status == 0)
    status = lode_ops_cuda_add (ctx, dlogits, dlogits, dd, nl);
  /* the add must have read dd before it goes */
  if (status == 0)
    status = lode_ops_cuda_synchronize (ctx);
  lode_ops_cuda_release (dd);
  return status;
}

static int
gpu_adamw (void *ctx, float *param, const float *grad, float *m, float *v, gsize count,
           const LodeAdamW *opt, gint64 step)
{
  return lode_grad_cuda_adamw (ctx, param, grad, m, v, count, opt->lr, opt->beta1, opt->beta2,
                               opt->eps, opt->weight_decay, step);
}

static const UnetBackend cuda_backend = {
  gpu_alloc, gpu_release, gpu_upload, gpu_download, gpu_copy, gpu_zero, gpu_synchronize,
  lode_ops_cuda_check, gpu_conv2d, gpu_batch_norm, gpu_batch_norm_train, gpu_invstd, gpu_relu,
  gpu_add, gpu_grad_relu, gpu_grad_batch_norm, gpu_grad_conv2d, gpu_max_pool, gpu_grad_max_pool,
  gpu_upsample, gpu_grad_upsample, gpu_concat, gpu_split, gpu_cross_entropy, gpu_dice,
  gpu_adamw,
};

#endif /* LODE_WITH_CUDA */

/* ---- the model ---------------------------------------------------------- */

typedef struct {
  char   *name;
  int     ndim;
  gint64  shape[4];
  gsize   offset;   /* into params or buffers */
  gsize   numel;
  gboolean buffer;  /* running statistics */
} TensorInfo;

/* Activation buffers below are device buffers (UnetBackend.alloc). */
typedef struct {
  int c_in, c_out, k, stride, pad;
  gboolean has_bn, relu, has_bias, encoder;
  gsize w_off, b_off, g_off;  /* params: conv weight, bias or BN shift, BN scale */
  gsize rm_off, rv_off;       /* buffers */
  /* the last forward */
  LodeConvShape shape;
  int oh, ow;
  gboolean batch_stats;
  gsize cap;
  float *z, *y, *dy;          /* y == z without batch norm */
  float *mean, *invstd;
} Unit;

typedef struct {
  Unit u[3];
  int nu;
  Unit ds;
  gboolean has_ds;
  const float *in;
  float *out, *dout;
  gsize cap;
} Block;

typedef struct {
  Unit conv1, conv2;
  int c_in, c_skip;
  float *up, *cat, *dcat, *dup;
  gsize cap_up, cap_cat;
} DecoderBlock;

/* What the host mirrors and the device copies hold (CUDA only). */
enum {
  SYNC_PARAMS  = 1 << 0,
  SYNC_GRADS   = 1 << 1,
  SYNC_BUFFERS = 1 << 2,
  SYNC_MOMENTS = 1 << 3,
  SYNC_ALL     = 0xf,
};

struct _LodeUnet {
  LodeUnetConfig config;
  LodeDeviceKind device;
  const UnetBackend *be;
  void *ctx;                 /* the LodeOpsCuda on CUDA, NULL on the CPU */
  GArray *tensors;           /* TensorInfo */
  GHashTable *by_name;       /* name -> index + 1 */
  /* host arrays, and their device copies (the same pointers on the CPU) */
  float *params, *grads, *buffers, *adam_m, *adam_v;
  float *d_params, *d_grads, *d_buffers, *d_adam_m, *d_adam_v;
  guint host_stale;          /* SYNC_*: the device copy is newer */
  guint device_stale;        /* SYNC_*: the host array is newer (or was handed out) */
  gsize n_params, n_buffers, n_encoder_params;

  Unit stem;
  float *pool, *dpool;
  gint32 *pool_arg;
  gsize cap_pool;
  int n_blocks[4];
  Block *layers[4];
  int enc_channels[6];
  DecoderBlock dec[N_DECODER];
  Unit head;

  /* the last forward's input (a device copy) and the loss's target */
  float *input;
  gsize cap_input;
  gint16 *target;
  gsize cap_target;
  float *class_weight;       /* classes floats, device */
  gboolean have_forward, have_dlogits;
  int n, h, w;
  LodeUnetMode mode;
};

/* ---- construction ------------------------------------------------------- */

const char *
lode_unet_encoder_name (LodeUnetEncoder encoder)
{
  switch (encoder)
    {
    case LODE_UNET_RESNET18: return "resnet18";
    case LODE_UNET_RESNET34: return "resnet34";
    case LODE_UNET_RESNET50: return "resnet50";
    default: return NULL;
    }
}

gboolean
lode_unet_encoder_from_name (const char      *name,
                             LodeUnetEncoder *encoder)
{
  for (int e = LODE_UNET_RESNET18; e <= LODE_UNET_RESNET50; e++)
    if (g_strcmp0 (name, lode_unet_encoder_name (e)) == 0)
      {
        *encoder = e;
        return TRUE;
      }
  return FALSE;
}

static gsize
add_tensor (LodeUnet   *self,
            const char *name,
            int         ndim,
            const gint64 *shape,
            gboolean    buffer)
{
  TensorInfo t = { .name = g_strdup (name), .ndim = ndim, .buffer = buffer, .numel = 1 };

  for (int d = 0; d < ndim; d++)
    {
      t.shape[d] = shape[d];
      t.numel *= shape[d];
    }
  if (buffer)
    {
      t.offset = self->n_buffers;
      self->n_buffers += t.numel;
    }
  else
    {
      t.offset = self->n_params;
      self->n_params += t.numel;
    }
  g_array_append_val (self->tensors, t);
  g_hash_table_insert (self->by_name, t.name, GUINT_TO_POINTER (self->tensors->len));
  return t.offset;
}

/* Registers a unit's tensors: conv_name.weight (and .bias), and the batch
 * norm bn_name.{weight,bias,running_mean,running_var} when bn_name. */
static void
unit_init (LodeUnet   *self,
           Unit       *u,
           const char *conv_name,
           const char *bn_name,
           int         c_in,
           int         c_out,
           int         k,
           int         stride,
           gboolean    relu,
           gboolean    has_bias,
           gboolean    encoder)
{
  gint64 wshape[4] = { c_out, c_in, k, k }, cshape[1] = { c_out };
  g_autofree char *wname = g_strconcat (conv_name, ".weight", NULL);

  memset (u, 0, sizeof *u);
  u->c_in = c_in;
  u->c_out = c_out;
  u->k = k;
  u->stride = stride;
  u->pad = k / 2;
  u->relu = relu;
  u->has_bn = bn_name != NULL;
  u->has_bias = has_bias;
  u->encoder = encoder;
  u->w_off = add_tensor (self, wname, 4, wshape, FALSE);
  if (has_bias)
    {
      g_autofree char *bname = g_strconcat (conv_name, ".bias", NULL);
      u->b_off = add_tensor (self, bname, 1, cshape, FALSE);
    }
  if (u->has_bn)
    {
      g_autofree char *n1 = g_strconcat (bn_name, ".weight", NULL);
      g_autofree char *n2 = g_strconcat (bn_name, ".bias", NULL);
      g_autofree char *n3 = g_strconcat (bn_name, ".running_mean", NULL);
      g_autofree char *n4 = g_strconcat (bn_name, ".running_var", NULL);

      u->g_off = add_tensor (self, n1, 1, cshape, FALSE);
      u->b_off = add_tensor (self, n2, 1, cshape, FALSE);
      u->rm_off = add_tensor (self, n3, 1, cshape, TRUE);
      u->rv_off = add_tensor (self, n4, 1, cshape, TRUE);
    }
}

/* Releases a device buffer and clears its pointer. */
static void
dev_clear (LodeUnet *self,
           void     *pp)
{
  void **p = pp;

  if (*p != NULL)
    self->be->release (self->ctx, *p);
  *p = NULL;
}

static void
unit_release (LodeUnet *self,
              Unit     *u)
{
  if (u->has_bn)
    dev_clear (self, &u->z);
  dev_clear (self, &u->y);
  dev_clear (self, &u->dy);
  dev_clear (self, &u->mean);
  dev_clear (self, &u->invstd);
  u->z = NULL;
  u->cap = 0;
}

/* The encoder: torchvision's ResNet under "encoder.". */
static void
build_encoder (LodeUnet *self)
{
  const LodeUnetConfig *c = &self->config;
  gboolean bottleneck = c->encoder == LODE_UNET_RESNET50;
  int expansion = bottleneck ? 4 : 1;
  int in_planes = 64;
  static const int blocks18[4] = { 2, 2, 2, 2 }, blocks34[4] = { 3, 4, 6, 3 };
  const int *nb = c->encoder == LODE_UNET_RESNET18 ? blocks18 : blocks34;

  unit_init (self, &self->stem, "encoder.conv1", "encoder.bn1", c->in_channels, 64, 7, 2,
             TRUE, FALSE, TRUE);
  self->stem.pad = 3;
  self->enc_channels[0] = c->in_channels;
  self->enc_channels[1] = 64;

  for (int l = 0; l < 4; l++)
    {
      int planes = 64 << l;
      int stride = l == 0 ? 1 : 2;

      self->n_blocks[l] = nb[l];
      self->layers[l] = g_new0 (Block, nb[l]);
      for (int b = 0; b < nb[l]; b++)
        {
          Block *blk = &self->layers[l][b];
          int s = b == 0 ? stride : 1;
          g_autofree char *p = g_strdup_printf ("encoder.layer%d.%d", l + 1, b);
          g_autofree char *c1 = g_strconcat (p, ".conv1", NULL);
          g_autofree char *b1 = g_strconcat (p, ".bn1", NULL);
          g_autofree char *c2 = g_strconcat (p, ".conv2", NULL);
          g_autofree char *b2 = g_strconcat (p, ".bn2", NULL);
          g_autofree char *c3 = g_strconcat (p, ".conv3", NULL);
          g_autofree char *b3 = g_strconcat (p, ".bn3", NULL);
          g_autofree char *d0 = g_strconcat (p, ".downsample.0", NULL);
          g_autofree char *d1 = g_strconcat (p, ".downsample.1", NULL);

          if (bottleneck)
            {
              blk->nu = 3;
              unit_init (self, &blk->u[0], c1, b1, in_planes, planes, 1, 1, TRUE, FALSE, TRUE);
              unit_init (self, &blk->u[1], c2, b2, planes, planes, 3, s, TRUE, FALSE, TRUE);
              unit_init (self, &blk->u[2], c3, b3, planes, planes * 4, 1, 1, FALSE, FALSE, TRUE);
            }
          else
            {
              blk->nu = 2;
              unit_init (self, &blk->u[0], c1, b1, in_planes, planes, 3, s, TRUE, FALSE, TRUE);
              unit_init (self, &blk->u[1], c2, b2, planes, planes, 3, 1, FALSE, FALSE, TRUE);
            }
          blk->has_ds = s != 1 || in_planes != planes * expansion;
          if (blk->has_ds)
            unit_init (self, &blk->ds, d0, d1, in_planes, planes * expansion, 1, s,
                       FALSE, FALSE, TRUE);
          in_planes = planes * expansion;
        }
      self->enc_channels[l + 2] = in_planes;
    }
}

/* segmentation_models_pytorch's UnetDecoder and SegmentationHead. */
static void
build_decoder (LodeUnet *self)
{
  int in_ch = self->enc_channels[5];

  for (int j = 0; j < N_DECODER; j++)
    {
      DecoderBlock *d = &self->dec[j];
      int skip = j < 4 ? self->enc_channels[4 - j] : 0;
      int out = decoder_channels[j];
      g_autofree char *c1 = g_strdup_printf ("decoder.blocks.%d.conv1.0", j);
      g_autofree char *b1 = g_strdup_printf ("decoder.blocks.%d.conv1.1", j);
      g_autofree char *c2 = g_strdup_printf ("decoder.blocks.%d.conv2.0", j);
      g_autofree char *b2 = g_strdup_printf ("decoder.blocks.%d.conv2.1", j);

      d->c_in = in_ch;
      d->c_skip = skip;
      unit_init (self, &d->conv1, c1, b1, in_ch + skip, out, 3, 1, TRUE, FALSE, FALSE);
      unit_init (self, &d->conv2, c2, b2, out, out, 3, 1, TRUE, FALSE, FALSE);
      in_ch = out;
    }
  unit_init (self, &self->head, "segmentation_head.0", NULL, in_ch, self->config.classes,
             3, 1, FALSE, TRUE, FALSE);
}

static double
gauss (GRand *rand)
{
  double u1 = 1.0 - g_rand_double (rand), u2 = g_rand_double (rand);

  return sqrt (-2.0 * log (u1)) * cos (2.0 * G_PI * u2);
}

static void
init_weights (LodeUnet *self,
              guint64   seed)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed_array ((const guint32[]) { (guint32) seed,
                                                                          (guint32) (seed >> 32) }, 2);
  gboolean in_head;

  for (guint i = 0; i < self->tensors->len; i++)
    {
      TensorInfo *t = &g_array_index (self->tensors, TensorInfo, i);
      float *p = (t->buffer ? self->buffers : self->params) + t->offset;
      const char *leaf = strrchr (t->name, '.') + 1;

      if (t->buffer)
        {
          float v = strcmp (leaf, "running_var") == 0 ? 1.0f : 0.0f;
          for (gsize e = 0; e < t->numel; e++)
            p[e] = v;
          continue;
        }
      if (t->ndim == 1)
        {
          /* batch norm scale 1, shifts and biases 0 */
          float v = strcmp (leaf, "weight") == 0 ? 1.0f : 0.0f;
          for (gsize e = 0; e < t->numel; e++)
            p[e] = v;
          continue;
        }
      in_head = g_str_has_prefix (t->name, "segmentation_head.");
      {
        gsize fan_in = t->numel / t->shape[0];
        gsize fan_out = t->shape[0] * t->shape[2] * t->shape[3];

        if (in_head)
          {
            double a = sqrt (6.0 / (fan_in + fan_out));
            for (gsize e = 0; e < t->numel; e++)
              p[e] = (float) g_rand_double_range (rand, -a, a);
          }
        else if (g_str_has_prefix (t->name, "encoder."))
          {
            double sd = sqrt (2.0 / fan_out);
            for (gsize e = 0; e < t->numel; e++)
              p[e] = (float) (sd * gauss (rand));
          }
        else
          {
            double a = sqrt (6.0 / fan_in);
            for (gsize e = 0; e < t->numel; e++)
              p[e] = (float) g_rand_double_range (rand, -a, a);
          }
      }
    }
}

static void
tensor_info_clear (gpointer data)
{
  g_free (((TensorInfo *) data)->name);
}

LodeUnet *
lode_unet_new (const LodeUnetConfig *config,
               guint64               seed,
               GError              **error)
{
  return lode_unet_new_on (config, seed, LODE_DEVICE_CPU, error);
}

LodeUnet *
lode_unet_new_on (const LodeUnetConfig *config,
                  guint64               seed,
                  LodeDeviceKind        device,
                  GError              **error)
{
  g_autoptr(LodeUnet) self = NULL;

  g_return_val_if_fail (config != NULL, NULL);

  if (lode_unet_encoder_name (config->encoder) == NULL)
    {
      g_set_error (error, LODE_UNET_ERROR, LODE_UNET_ERROR_CONFIG,
                   _("Unknown U-Net encoder %d"), (int) config->encoder);
      return NULL;
    }
  if (config->in_channels < 1 || config->in_channels > 64
      || config->classes < 1 || config->classes > 256)
    {
      g_set_error (error, LODE_UNET_ERROR, LODE_UNET_ERROR_CONFIG,
                   _("A U-Net needs 1 to 64 bands and 1 to 256 classes, not %d bands and %d classes"),
                   config->in_channels, config->classes);
      return NULL;
    }

  self = g_new0 (LodeUnet, 1);
  self->config = *config;
  self->device = LODE_DEVICE_CPU;
  self->be = &cpu_backend;
  self->tensors = g_array_new (FALSE, TRUE, sizeof (TensorInfo));
  g_array_set_clear_func (self->tensors, tensor_info_clear);
  self->by_name = g_hash_table_new (g_str_hash, g_str_equal);

  build_encoder (self);
  self->n_encoder_params = self->n_params;
  build_decoder (self);

  self->params = g_new (float, self->n_params);
  self->grads = g_new0 (float, self->n_params);
  self->buffers = g_new (float, self->n_buffers);
  init_weights (self, seed);
  self->d_params = self->params;
  self->d_grads = self->grads;
  self->d_buffers = self->buffers;

  if (device == LODE_DEVICE_CUDA)
    {
#ifdef LODE_WITH_CUDA
      LodeOpsCuda *cuda = NULL;
      int status;

      if (lode_device_cuda_count () == 0)
        {
          g_set_error (error, LODE_DEVICE_ERROR, LODE_DEVICE_ERROR_UNAVAILABLE,
                       _("No CUDA device was found; use --device cpu"));
          return NULL;
        }
      status = lode_ops_cuda_new (&cuda);
      if (!lode_ops_cuda_check (status, error))
        return NULL;
      self->device = LODE_DEVICE_CUDA;
      self->be = &cuda_backend;
      self->ctx = cuda;
      self->d_params = self->d_grads = self->d_buffers = NULL;
      if (!lode_ops_cuda_check (lode_ops_cuda_alloc ((void **) &self->d_params,
                                                     sizeof (float) * self->n_params), error)
          || !lode_ops_cuda_check (lode_ops_cuda_alloc ((void **) &self->d_grads,
                                                        sizeof (float) * self->n_params), error)
          || !lode_ops_cuda_check (lode_ops_cuda_alloc ((void **) &self->d_buffers,
                                                        sizeof (float) * self->n_buffers), error))
        return NULL;
      /* the host holds the initial values; the first pass uploads them */
      self->device_stale = SYNC_PARAMS | SYNC_GRADS | SYNC_BUFFERS;
#else
      g_set_error (error, LODE_DEVICE_ERROR, LODE_DEVICE_ERROR_UNAVAILABLE,
                   _("This Lode was built without CUDA; use --device cpu"));
      return NULL;
#endif
    }
  return g_steal_pointer (&self);
}

static void
block_release (LodeUnet *self,
               Block    *b)
{
  for (int i = 0; i < b->nu; i++)
    unit_release (self, &b->u[i]);
  if (b->has_ds)
    unit_release (self, &b->ds);
  dev_clear (self, &b->out);
  dev_clear (self, &b->dout);
  b->cap = 0;
}

void
lode_unet_trim (LodeUnet *self)
{
  g_return_if_fail (self != NULL);

  unit_release (self, &self->stem);
  dev_clear (self, &self->pool);
  dev_clear (self, &self->dpool);
  dev_clear (self, &self->pool_arg);
  self->cap_pool = 0;
  for (int l = 0; l < 4; l++)
    for (int b = 0; b < self->n_blocks[l]; b++)
      block_release (self, &self->layers[l][b]);
  for (int j = 0; j < N_DECODER; j++)
    {
      DecoderBlock *d = &self->dec[j];
      unit_release (self, &d->conv1);
      unit_release (self, &d->conv2);
      dev_clear (self, &d->up);
      dev_clear (self, &d->dup);
      dev_clear (self, &d->cat);
      dev_clear (self, &d->dcat);
      d->cap_up = d->cap_cat = 0;
    }
  unit_release (self, &self->head);
  dev_clear (self, &self->input);
  dev_clear (self, &self->target);
  dev_clear (self, &self->class_weight);
  self->cap_input = self->cap_target = 0;
  self->have_forward = self->have_dlogits = FALSE;
}

void
lode_unet_free (LodeUnet *self)
{
  if (self == NULL)
    return;
  if (self->be != NULL)
    lode_unet_trim (self);
  for (int l = 0; l < 4; l++)
    g_free (self->layers[l]);
  if (self->device == LODE_DEVICE_CUDA)
    {
      dev_clear (self, &self->d_params);
      dev_clear (self, &self->d_grads);
      dev_clear (self, &self->d_buffers);
      dev_clear (self, &self->d_adam_m);
      dev_clear (self, &self->d_adam_v);
#ifdef LODE_WITH_CUDA
      lode_ops_cuda_free (self->ctx);
#endif
    }
  if (self->by_name)
    g_hash_table_unref (self->by_name);
  if (self->tensors)
    g_array_unref (self->tensors);
  g_free (self->params);
  g_free (self->grads);
  g_free (self->buffers);
  g_free (self->adam_m);
  g_free (self->adam_v);
  g_free (self);
}

const LodeUnetConfig *
lode_unet_get_config (LodeUnet *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return &self->config;
}

/* ---- tensors ------------------------------------------------------------ */

static TensorInfo *
tensor_at (LodeUnet *self,
           guint     i)
{
  g_return_val_if_fail (self != NULL && i < self->tensors->len, NULL);
  return &g_array_index (self->tensors, TensorInfo, i);
}

guint
lode_unet_n_tensors (LodeUnet *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->tensors->len;
}

const char *
lode_unet_tensor_name (LodeUnet *self,
                       guint     i)
{
  TensorInfo *t = tensor_at (self, i);
  return t ? t->name : NULL;
}

int
lode_unet_tensor_shape (LodeUnet *self,
                        guint     i,
                        gint64    shape[4])
{
  TensorInfo *t = tensor_at (self, i);

  if (t == NULL)
    return 0;
  memcpy (shape, t->shape, sizeof (gint64) * t->ndim);
  return t->ndim;
}

gsize
lode_unet_tensor_numel (LodeUnet *self,
                        guint     i)
{
  TensorInfo *t = tensor_at (self, i);
  return t ? t->numel : 0;
}

/* ---- host mirrors ---------------------------------------------------- */

/* Host array, device copy and length of each SYNC_* part. */
static int
sync_parts (LodeUnet *self,
            float   **host[4],
            float   **dev[4],
            gsize     len[4])
{
  host[0] = &self->params;  dev[0] = &self->d_params;  len[0] = self->n_params;
  host[1] = &self->grads;   dev[1] = &self->d_grads;   len[1] = self->n_params;
  host[2] = &self->buffers; dev[2] = &self->d_buffers; len[2] = self->n_buffers;
  host[3] = &self->adam_m;  dev[3] = &self->d_adam_m;  len[3] = self->n_params;
  return 4;
}

/* Downloads the parts of mask the device holds newer. */
static gboolean
pull (LodeUnet *self,
      guint     mask,
      GError  **error)
{
  float **host[4], **dev[4];
  gsize len[4];
  guint want = self->host_stale & mask;

  if (want == 0)
    return TRUE;
  sync_parts (self, host, dev, len);
  for (int k = 0; k < 4; k++)
    if ((want & (1u << k)) && *dev[k] != NULL)
      {
        int status = self->be->download (self->ctx, *host[k], *dev[k], sizeof (float) * len[k]);
        if (status == 0 && k == 3)
          status = self->be->download (self->ctx, self->adam_v, self->d_adam_v,
                                       sizeof (float) * len[k]);
        if (!self->be->check (status, error))
          return FALSE;
      }
  self->host_stale &= ~want;
  return TRUE;
}

/* Uploads the parts of mask the host holds newer. */
static gboolean
push (LodeUnet *self,
      guint     mask,
      GError  **error)
{
  float **host[4], **dev[4];
  gsize len[4];
  guint want = self->device_stale & mask;

  if (want == 0)
    return TRUE;
  sync_parts (self, host, dev, len);
  for (int k = 0; k < 4; k++)
    if ((want & (1u << k)) && *dev[k] != NULL)
      {
        int status = self->be->upload (self->ctx, *dev[k], *host[k], sizeof (float) * len[k]);
        if (status == 0 && k == 3)
          status = self->be->upload (self->ctx, self->d_adam_v, self->adam_v,
                                     sizeof (float) * len[k]);
        if (!self->be->check (status, error))
          return FALSE;
      }
  self->device_stale &= ~want;
  return TRUE;
}

/* For the getters: bring the host array up to date and assume the caller
 * writes into it. */
static void
hand_out (LodeUnet *self,
          guint     mask)
{
  g_autoptr(GError) error = NULL;

  if (self->device == LODE_DEVICE_CPU)
    return;
  if (!pull (self, mask, &error))
    g_warning ("U-Net: %s", error->message);
  self->device_stale |= mask;
}

gboolean
lode_unet_sync_to_host (LodeUnet *self,
                        GError  **error)
{
  g_return_val_if_fail (self != NULL, FALSE);
  return pull (self, SYNC_ALL, error);
}

gboolean
lode_unet_sync_to_device (LodeUnet *self,
                          GError  **error)
{
  g_return_val_if_fail (self != NULL, FALSE);
  return push (self, SYNC_ALL, error);
}

LodeDeviceKind
lode_unet_get_device (LodeUnet *self)
{
  g_return_val_if_fail (self != NULL, LODE_DEVICE_CPU);
  return self->device;
}

gboolean
lode_unet_set_precision (LodeUnet      *self,
                         LodePrecision  precision,
                         GError       **error)
{
  g_return_val_if_fail (self != NULL, FALSE);
#ifdef LODE_WITH_CUDA
  if (self->device == LODE_DEVICE_CUDA)
    return lode_ops_cuda_check (lode_ops_cuda_set_precision (self->ctx, precision), error);
#endif
  return TRUE;
}

gboolean
lode_unet_finish (LodeUnet *self,
                  GError  **error)
{
  g_return_val_if_fail (self != NULL, FALSE);
  return self->be->check (self->be->synchronize (self->ctx), error);
}

float *
lode_unet_tensor_data (LodeUnet *self,
                       guint     i)
{
  TensorInfo *t = tensor_at (self, i);

  if (t == NULL)
    return NULL;
  hand_out (self, t->buffer ? SYNC_BUFFERS : SYNC_PARAMS);
  return (t->buffer ? self->buffers : self->params) + t->offset;
}

float *
lode_unet_tensor_grad (LodeUnet *self,
                       guint     i)
{
  TensorInfo *t = tensor_at (self, i);

  if (t == NULL || t->buffer)
    return NULL;
  hand_out (self, SYNC_GRADS);
  return self->grads + t->offset;
}

int
lode_unet_find_tensor (LodeUnet   *self,
                       const char *name)
{
  g_return_val_if_fail (self != NULL && name != NULL, -1);
  return GPOINTER_TO_INT (g_hash_table_lookup (self->by_name, name)) - 1;
}

float *
lode_unet_params (LodeUnet *self,
                  gsize    *count)
{
  g_return_val_if_fail (self != NULL, NULL);
  if (count)
    *count = self->n_params;
  hand_out (self, SYNC_PARAMS);
  return self->params;
}

float *
lode_unet_grads (LodeUnet *self,
                 gsize    *count)
{
  g_return_val_if_fail (self != NULL, NULL);
  if (count)
    *count = self->n_params;
  hand_out (self, SYNC_GRADS);
  return self->grads;
}

gsize
lode_unet_encoder_params (LodeUnet *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->n_encoder_params;
}

float *
lode_unet_buffers (LodeUnet *self,
                   gsize    *count)
{
  g_return_val_if_fail (self != NULL, NULL);
  if (count)
    *count = self->n_buffers;
  hand_out (self, SYNC_BUFFERS);
  return self->buffers;
}

void
lode_unet_zero_grad (LodeUnet *self)
{
  g_autoptr(GError) error = NULL;

  g_return_if_fail (self != NULL);
  if (!self->be->check (self->be->zero (self->ctx, self->d_grads,
                                        sizeof (float) * self->n_params), &error))
    g_warning ("U-Net: %s", error->message);
  if (self->device == LODE_DEVICE_CUDA)
    {
      self->device_stale &= ~SYNC_GRADS;
      self->host_stale |= SYNC_GRADS;
    }
}

/* Allocates the AdamW moments (zero) when there are none. */
static gboolean
ensure_moments (LodeUnet *self,
                GError  **error)
{
  gsize bytes = sizeof (float) * self->n_params;

  if (self->adam_m != NULL)
    return TRUE;
  self->adam_m = g_new0 (float, self->n_params);
  self->adam_v = g_new0 (float, self->n_params);
  if (self->device == LODE_DEVICE_CPU)
    {
      self->d_adam_m = self->adam_m;
      self->d_adam_v = self->adam_v;
      return TRUE;
    }
  if (!self->be->check (self->be->alloc (self->ctx, (void **) &self->d_adam_m, bytes), error)
      || !self->be->check (self->be->alloc (self->ctx, (void **) &self->d_adam_v, bytes), error))
    {
      dev_clear (self, &self->d_adam_m);
      dev_clear (self, &self->d_adam_v);
      g_clear_pointer (&self->adam_m, g_free);
      g_clear_pointer (&self->adam_v, g_free);
      return FALSE;
    }
  self->device_stale |= SYNC_MOMENTS;
  return TRUE;
}

gboolean
lode_unet_set_adam_moments (LodeUnet    *self,
                            const float *m,
                            const float *v,
                            GError     **error)
{
  g_return_val_if_fail (self != NULL && (m == NULL) == (v == NULL), FALSE);

  if (!ensure_moments (self, error))
    return FALSE;
  if (m != NULL)
    {
      memcpy (self->adam_m, m, sizeof (float) * self->n_params);
      memcpy (self->adam_v, v, sizeof (float) * self->n_params);
    }
  else
    {
      memset (self->adam_m, 0, sizeof (float) * self->n_params);
      memset (self->adam_v, 0, sizeof (float) * self->n_params);
    }
  if (self->device == LODE_DEVICE_CUDA)
    {
      self->host_stale &= ~SYNC_MOMENTS;
      self->device_stale |= SYNC_MOMENTS;
    }
  return TRUE;
}

const float *
lode_unet_adam_moments (LodeUnet     *self,
                        const float **v)
{
  g_return_val_if_fail (self != NULL && v != NULL, NULL);

  *v = NULL;
  if (self->adam_m == NULL)
    return NULL;
  if (self->device == LODE_DEVICE_CUDA)
    {
      g_autoptr(GError) error = NULL;
      if (!pull (self, SYNC_MOMENTS, &error))
        g_warning ("U-Net: %s", error->message);
    }
  *v = self->adam_v;
  return self->adam_m;
}

gboolean
lode_unet_adamw_step (LodeUnet        *self,
                      const LodeAdamW *opt,
                      gint64           step,
                      gsize            first,
                      GError         **error)
{
  int status;

  g_return_val_if_fail (self != NULL && opt != NULL && first <= self->n_params, FALSE);
  g_return_val_if_fail (step >= 1, FALSE);

  if (!ensure_moments (self, error) || !push (self, SYNC_ALL, error))
    return FALSE;
  status = self->be->adamw (self->ctx, self->d_params + first, self->d_grads + first,
                            self->d_adam_m + first, self->d_adam_v + first,
                            self->n_params - first, opt, step);
  if (self->device == LODE_DEVICE_CUDA)
    self->host_stale |= SYNC_PARAMS | SYNC_MOMENTS;
  return self->be->check (status, error);
}

/* The first convolution of a 3-band checkpoint for a model of `bands`
 * bands, as segmentation_models_pytorch's patch_first_conv: one band takes
 * the sum over RGB; otherwise band i takes RGB channel i mod 3, and all are
 * scaled by 3 / bands. */
static void
adapt_first_conv (float       *dst,
                  const float *src,
                  int          c_out,
                  int          bands,
                  int          kk)
{
  for (int o = 0; o < c_out; o++)
    for (int i = 0; i < bands; i++)
      for (int e = 0; e < kk; e++)
        {
          float v;
          if (bands == 1)
            v = src[(o * 3 + 0) * kk + e] + src[(o * 3 + 1) * kk + e] + src[(o * 3 + 2) * kk + e];
          else
            v = src[(o * 3 + i % 3) * kk + e] * (3.0f / bands);
          dst[((gsize) o * bands + i) * kk + e] = v;
        }
}

gboolean
lode_unet_load_checkpoint (LodeUnet       *self,
                           LodeCheckpoint *checkpoint,
                           guint          *n_loaded,
                           GError        **error)
{
  guint loaded = 0, enc_total = 0, enc_found = 0, dec_total = 0, dec_found = 0;
  g_autofree char **names = NULL;
  const char *first_missing_enc = NULL, *first_missing_dec = NULL;
  gboolean bare;

  g_return_val_if_fail (self != NULL && checkpoint != NULL, FALSE);

  /* smp names ("encoder.conv1.weight") or a bare ResNet ("conv1.weight") */
  bare = !lode_checkpoint_has (checkpoint, "encoder.conv1.weight")
         && lode_checkpoint_has (checkpoint, "conv1.weight");
  names = g_new0 (char *, self->tensors->len);

  /* first pass: what is there, and does it fit */
  for (guint i = 0; i < self->tensors->len; i++)
    {
      TensorInfo *t = tensor_at (self, i);
      gboolean enc = g_str_has_prefix (t->name, "encoder.");
      const char *name = bare && enc ? t->name + strlen ("encoder.") : t->name;
      gint64 shape[LODE_TENSOR_MAX_DIMS];
      int ndim;

      if (enc)
        enc_total++;
      else
        dec_total++;
      if (!lode_checkpoint_shape (checkpoint, name, &ndim, shape))
        {
          if (enc && first_missing_enc == NULL)
            first_missing_enc = name;
          if (!enc && first_missing_dec == NULL)
            first_missing_dec = name;
          continue;
        }
      if (ndim != t->ndim
          || memcmp (shape, t->shape, sizeof (gint64) * ndim) != 0)
        {
          gboolean adaptable = strcmp (t->name, "encoder.conv1.weight") == 0 && ndim == 4
                               && shape[0] == t->shape[0] && shape[1] == 3
                               && shape[2] == t->shape[2] && shape[3] == t->shape[3];
          if (!adaptable)
            {
              g_autofree char *want = g_strdup_printf ("%" PRId64, t->shape[0]);
              g_set_error (error, LODE_UNET_ERROR, LODE_UNET_ERROR_CHECKPOINT,
                           _("The checkpoint's tensor “%s” has another shape than the %s U-Net's "
                             "(%d dimensions, %" PRId64 " first; expected %d, %s)"),
                           name, lode_unet_encoder_name (self->config.encoder), ndim, shape[0],
                           t->ndim, want);
              return FALSE;
            }
        }
      names[i] = (char *) name;
      if (enc)
        enc_found++;
      else
        dec_found++;
    }
  if (enc_found == 0)
    {
      g_set_error (error, LODE_UNET_ERROR, LODE_UNET_ERROR_CHECKPOINT,
                   _("The checkpoint holds no %s encoder (no tensor “%s”)"),
                   lode_unet_encoder_name (self->config.encoder), first_missing_enc);
      return FALSE;
    }
  if (enc_found < enc_total || (dec_found > 0 && dec_found < dec_total))
    {
      g_set_error (error, LODE_UNET_ERROR, LODE_UNET_ERROR_CHECKPOINT,
                   _("The checkpoint lacks the tensor “%s” of the %s U-Net"),
                   enc_found < enc_total ? first_missing_enc : first_missing_dec,
                   lode_unet_encoder_name (self->config.encoder));
      return FALSE;
    }

  for (guint i = 0; i < self->tensors->len; i++)
    {
      TensorInfo *t = tensor_at (self, i);
      g_autoptr(LodeTensor) src = NULL;
      float *dst = lode_unet_tensor_data (self, i);

      if (names[i] == NULL)
        continue;
      src = lode_checkpoint_load (checkpoint, names[i], error);
      if (src == NULL)
        return FALSE;
      if (src->numel == t->numel)
        memcpy (dst, src->data, sizeof (float) * t->numel);
      else
        adapt_first_conv (dst, src->data, (int) t->shape[0], self->config.in_channels,
                          (int) (t->shape[2] * t->shape[3]));
      loaded++;
    }
  if (n_loaded)
    *n_loaded = loaded;
  return TRUE;
}

/* ---- forward ------------------------------------------------------------ */

#define TRY(expr) \
  G_STMT_START { int s_ = (expr); if (s_ != 0) return s_; } G_STMT_END

/* Makes *buf a device buffer of at least count elements of size, keeping
 * it when it is big enough (*cap counts elements). */
static int
ensure_buffer (LodeUnet *self,
               void     *buf,
               gsize    *cap,
               gsize     count,
               gsize     size)
{
  void **p = buf;

  if (*p != NULL && count <= *cap)
    return 0;
  dev_clear (self, p);
  *cap = 0;
  TRY (self->be->alloc (self->ctx, p, count * size));
  *cap = count;
  return 0;
}

static int
unit_forward (LodeUnet    *self,
              Unit        *u,
              const float *x,
              int          n,
              int          h,
              int          w,
              gboolean     batch_stats)
{
  const UnetBackend *be = self->be;
  void *ctx = self->ctx;
  gsize need, hw;
  float *par = self->d_params, *buf = self->d_buffers;

  lode_conv_shape_init (&u->shape, n, u->c_in, h, w, u->c_out, u->k, u->stride, u->pad);
  lode_conv_shape_out_size (&u->shape, &u->oh, &u->ow);
  hw = (gsize) u->oh * u->ow;
  need = (gsize) n * u->c_out * hw;
  if (need > u->cap || u->y == NULL)
    {
      unit_release (self, u);
      TRY (be->alloc (ctx, (void **) &u->y, sizeof (float) * need));
      TRY (be->alloc (ctx, (void **) &u->dy, sizeof (float) * need));
      if (u->has_bn)
        TRY (be->alloc (ctx, (void **) &u->z, sizeof (float) * need));
      else
        u->z = u->y;
      TRY (be->alloc (ctx, (void **) &u->mean, sizeof (float) * u->c_out));
      TRY (be->alloc (ctx, (void **) &u->invstd, sizeof (float) * u->c_out));
      u->cap = need;
    }
  u->batch_stats = batch_stats;

  TRY (be->conv2d (ctx, u->z, x, par + u->w_off, u->has_bias ? par + u->b_off : NULL, &u->shape));
  if (u->has_bn)
    {
      if (batch_stats)
        TRY (be->batch_norm_train (ctx, u->y, u->z, par + u->g_off, par + u->b_off,
                                   buf + u->rm_off, buf + u->rv_off, u->mean, u->invstd,
                                   n, u->c_out, (int) hw, BN_EPS, BN_MOMENTUM));
      else
        {
          TRY (be->batch_norm (ctx, u->y, u->z, buf + u->rm_off, buf + u->rv_off,
                               par + u->g_off, par + u->b_off, n, u->c_out, (int) hw, BN_EPS));
          TRY (be->copy (ctx, u->mean, buf + u->rm_off, sizeof (float) * u->c_out));
          TRY (be->invstd (ctx, u->invstd, buf + u->rv_off, u->c_out, BN_EPS));
        }
    }
  if (u->relu)
    TRY (be->relu (ctx, u->y, u->y, need));
  return 0;
}

/* u->dy holds dL/dy; it is consumed. dx (may be NULL) receives dL/dx,
 * added to when accumulate. */
static int
unit_backward (LodeUnet    *self,
               Unit        *u,
               const float *x,
               float       *dx,
               gboolean     accumulate)
{
  const UnetBackend *be = self->be;
  void *ctx = self->ctx;
  gsize hw = (gsize) u->oh * u->ow, count = (gsize) u->shape.n * u->c_out * hw;
  float *par = self->d_params, *gr = self->d_grads;

  if (u->relu)
    TRY (be->grad_relu (ctx, u->dy, u->dy, u->y, count));
  if (u->has_bn)
    TRY (be->grad_batch_norm (ctx, u->dy, gr + u->g_off, gr + u->b_off, u->dy, u->z, u->mean,
                              u->invstd, par + u->g_off, u->shape.n, u->c_out, (int) hw,
                              u->batch_stats));
  return be->grad_conv2d (ctx, dx, gr + u->w_off, u->has_bias ? gr + u->b_off : NULL, u->dy, x,
                          par + u->w_off, &u->shape, accumulate);
}

static int
block_forward (LodeUnet    *self,
               Block       *b,
               const float *x,
               int          n,
               int          h,
               int          w,
               gboolean     batch_stats,
               int         *oh,
               int         *ow)
{
  const UnetBackend *be = self->be;
  Unit *last = &b->u[b->nu - 1];
  gsize count;
  const float *prev = x;
  int ph = h, pw = w;

  b->in = x;
  for (int i = 0; i < b->nu; i++)
    {
      TRY (unit_forward (self, &b->u[i], prev, n, ph, pw, batch_stats));
      prev = b->u[i].y;
      ph = b->u[i].oh;
      pw = b->u[i].ow;
    }
  count = (gsize) n * last->c_out * ph * pw;
  if (count > b->cap || b->out == NULL)
    {
      dev_clear (self, &b->out);
      dev_clear (self, &b->dout);
      b->cap = 0;
      TRY (be->alloc (self->ctx, (void **) &b->out, sizeof (float) * count));
      TRY (be->alloc (self->ctx, (void **) &b->dout, sizeof (float) * count));
      b->cap = count;
    }
  if (b->has_ds)
    {
      TRY (unit_forward (self, &b->ds, x, n, h, w, batch_stats));
      TRY (be->add (self->ctx, b->out, last->y, b->ds.y, count));
    }
  else
    TRY (be->add (self->ctx, b->out, last->y, x, count));
  TRY (be->relu (self->ctx, b->out, b->out, count));
  *oh = ph;
  *ow = pw;
  return 0;
}

/* b->dout holds dL/dout; dx gets dL/dx (added to when accumulate). */
static int
block_backward (LodeUnet *self,
                Block    *b,
                float    *dx,
                gboolean  accumulate)
{
  const UnetBackend *be = self->be;
  Unit *last = &b->u[b->nu - 1];
  gsize count = (gsize) last->shape.n * last->c_out * last->oh * last->ow;

  TRY (be->grad_relu (self->ctx, b->dout, b->dout, b->out, count));
  TRY (be->copy (self->ctx, last->dy, b->dout, sizeof (float) * count));
  for (int i = b->nu - 1; i >= 0; i--)
    {
      const float *in = i > 0 ? b->u[i - 1].y : b->in;
      if (i > 0)
        TRY (unit_backward (self, &b->u[i], in, b->u[i - 1].dy, FALSE));
      else
        TRY (unit_backward (self, &b->u[i], in, dx, accumulate));
    }
  if (b->has_ds)
    {
      TRY (be->copy (self->ctx, b->ds.dy, b->dout, sizeof (float) * count));
      TRY (unit_backward (self, &b->ds, b->in, dx, TRUE));
    }
  else
    TRY (be->add (self->ctx, dx, dx, b->dout, count));
  return 0;
}

static float *
block_last_dout (LodeUnet *self,
                 int       layer)
{
  return self->layers[layer][self->n_blocks[layer] - 1].dout;
}

/* The whole forward from self->input (already on the device). */
static int
run_forward (LodeUnet *self)
{
  const UnetBackend *be = self->be;
  void *ctx = self->ctx;
  int n = self->n, h = self->h, w = self->w;
  gboolean enc_batch = self->mode == LODE_UNET_TRAIN, dec_batch = self->mode != LODE_UNET_EVAL;
  int ph, pw, fh[6], fw[6];
  const float *x, *feat[6];
  gsize count;

  /* encoder */
  feat[0] = self->input;
  fh[0] = h;
  fw[0] = w;
  TRY (unit_forward (self, &self->stem, self->input, n, h, w, enc_batch));
  feat[1] = self->stem.y;
  fh[1] = self->stem.oh;
  fw[1] = self->stem.ow;
  ph = lode_ops_pool_out_size (fh[1], 3, 2, 1);
  pw = lode_ops_pool_out_size (fw[1], 3, 2, 1);
  count = (gsize) n * 64 * ph * pw;
  if (count > self->cap_pool || self->pool == NULL)
    {
      dev_clear (self, &self->pool);
      dev_clear (self, &self->dpool);
      dev_clear (self, &self->pool_arg);
      self->cap_pool = 0;
      TRY (be->alloc (ctx, (void **) &self->pool, sizeof (float) * count));
      TRY (be->alloc (ctx, (void **) &self->dpool, sizeof (float) * count));
      TRY (be->alloc (ctx, (void **) &self->pool_arg, sizeof (gint32) * count));
      self->cap_pool = count;
    }
  TRY (be->max_pool (ctx, self->pool, self->pool_arg, self->stem.y, n, 64, fh[1], fw[1], 3, 2, 1));
  x = self->pool;
  for (int l = 0; l < 4; l++)
    {
      for (int b = 0; b < self->n_blocks[l]; b++)
        {
          TRY (block_forward (self, &self->layers[l][b], x, n, ph, pw, enc_batch, &ph, &pw));
          x = self->layers[l][b].out;
        }
      feat[l + 2] = x;
      fh[l + 2] = ph;
      fw[l + 2] = pw;
    }

  /* decoder */
  for (int j = 0; j < N_DECODER; j++)
    {
      DecoderBlock *d = &self->dec[j];
      int sh = fh[5 - j], sw = fw[5 - j];   /* the size before this block */
      gsize nup = (gsize) n * d->c_in * sh * sw * 4;
      gsize ncat = (gsize) n * (d->c_in + d->c_skip) * sh * sw * 4;

      if (nup > d->cap_up || d->up == NULL)
        {
          dev_clear (self, &d->up);
          dev_clear (self, &d->dup);
          d->cap_up = 0;
          TRY (be->alloc (ctx, (void **) &d->up, sizeof (float) * nup));
          TRY (be->alloc (ctx, (void **) &d->dup, sizeof (float) * nup));
          d->cap_up = nup;
        }
      TRY (be->upsample (ctx, d->up, x, n * d->c_in, sh, sw));
      if (d->c_skip > 0)
        {
          if (ncat > d->cap_cat || d->cat == NULL)
            {
              dev_clear (self, &d->cat);
              dev_clear (self, &d->dcat);
              d->cap_cat = 0;
              TRY (be->alloc (ctx, (void **) &d->cat, sizeof (float) * ncat));
              TRY (be->alloc (ctx, (void **) &d->dcat, sizeof (float) * ncat));
              d->cap_cat = ncat;
            }
          TRY (be->concat (ctx, d->cat, d->up, d->c_in, feat[4 - j], d->c_skip, n, sh * sw * 4));
        }
      TRY (unit_forward (self, &d->conv1, d->c_skip > 0 ? d->cat : d->up, n, 2 * sh, 2 * sw,
                         dec_batch));
      TRY (unit_forward (self, &d->conv2, d->conv1.y, n, 2 * sh, 2 * sw, dec_batch));
      x = d->conv2.y;
    }
  return unit_forward (self, &self->head, x, n, h, w, FALSE);
}

static gsize
logits_count (LodeUnet *self)
{
  return (gsize) self->n * self->config.classes * self->h * self->w;
}

gboolean
lode_unet_forward (LodeUnet     *self,
                   const float  *input,
                   int           n,
                   int           h,
                   int           w,
                   LodeUnetMode  mode,
                   float        *logits,
                   GError      **error)
{
  gsize nin;
  int status;

  g_return_val_if_fail (self != NULL && input != NULL, FALSE);
  g_return_val_if_fail (n > 0, FALSE);

  if (h < 32 || w < 32 || h % 32 != 0 || w % 32 != 0)
    {
      g_set_error (error, LODE_UNET_ERROR, LODE_UNET_ERROR_SIZE,
                   _("The U-Net takes images whose sides are multiples of 32, not %d × %d"),
                   w, h);
      return FALSE;
    }
  if (!push (self, SYNC_PARAMS | SYNC_BUFFERS, error))
    return FALSE;
  self->have_forward = self->have_dlogits = FALSE;
  self->n = n;
  self->h = h;
  self->w = w;
  self->mode = mode;
  nin = (gsize) n * self->config.in_channels * h * w;
  status = ensure_buffer (self, &self->input, &self->cap_input, nin, sizeof (float));
  if (status == 0)
    status = self->be->upload (self->ctx, self->input, input, sizeof (float) * nin);
  if (status == 0)
    status = run_forward (self);
  if (mode != LODE_UNET_EVAL && self->device == LODE_DEVICE_CUDA)
    self->host_stale |= SYNC_BUFFERS;   /* batch statistics moved the running ones */
  if (status == 0 && logits != NULL)
    status = self->be->download (self->ctx, logits, self->head.y,
                                 sizeof (float) * logits_count (self));
  if (!self->be->check (status, error))
    return FALSE;
  self->have_forward = TRUE;
  return TRUE;
}

gboolean
lode_unet_loss (LodeUnet     *self,
                const gint16 *target,
                const float  *class_weights,
                int           ignore_index,
                float         dice_weight,
                double       *loss,
                GError      **error)
{
  const UnetBackend *be;
  gsize nt, cap_cw = (gsize) self->config.classes;
  int c = self->config.classes, hw, status;
  double ce = 0.0, dice = 0.0;

  g_return_val_if_fail (self != NULL && target != NULL && loss != NULL, FALSE);
  g_return_val_if_fail (self->have_forward, FALSE);

  be = self->be;
  hw = self->h * self->w;
  nt = (gsize) self->n * hw;
  status = ensure_buffer (self, &self->target, &self->cap_target, nt, sizeof (gint16));
  if (status == 0)
    status = be->upload (self->ctx, self->target, target, sizeof (gint16) * nt);
  if (status == 0 && class_weights != NULL && self->class_weight == NULL)
    status = ensure_buffer (self, &self->class_weight, &cap_cw, cap_cw, sizeof (float));
  if (status == 0 && class_weights != NULL)
    status = be->upload (self->ctx, self->class_weight, class_weights, sizeof (float) * c);
  if (status == 0)
    status = be->cross_entropy (self->ctx, self->head.dy, self->head.y, self->target,
                                class_weights != NULL ? self->class_weight : NULL, self->n, c,
                                hw, ignore_index, 1.0f, &ce);
  if (status == 0 && dice_weight > 0.0f)
    status = be->dice (self->ctx, self->head.dy, self->head.y, self->target, self->n, c, hw,
                       ignore_index, dice_weight, &dice);
  if (!be->check (status, error))
    return FALSE;
  *loss = ce + (dice_weight > 0.0f ? dice_weight * dice : 0.0);
  self->have_dlogits = TRUE;
  return TRUE;
}

static int
run_backward (LodeUnet *self)
{
  const UnetBackend *be = self->be;
  void *ctx = self->ctx;
  gboolean full;
  float *dfeat[6];
  int n, ph, pw;

  n = self->n;
  full = self->mode != LODE_UNET_TRAIN_DECODER;
  dfeat[1] = self->stem.dy;
  for (int l = 0; l < 4; l++)
    dfeat[l + 2] = block_last_dout (self, l);
  if (full)
    for (int f = 1; f <= 4; f++)
      {
        Unit *u = f == 1 ? &self->stem : NULL;
        gsize count = u ? (gsize) n * u->c_out * u->oh * u->ow
                        : (gsize) n * self->enc_channels[f] * (self->h >> f) * (self->w >> f);
        TRY (be->zero (ctx, dfeat[f], sizeof (float) * count));
      }

  TRY (unit_backward (self, &self->head, self->dec[N_DECODER - 1].conv2.y,
                      self->dec[N_DECODER - 1].conv2.dy, FALSE));
  for (int j = N_DECODER - 1; j >= 0; j--)
    {
      DecoderBlock *d = &self->dec[j];
      int sh = self->h >> (5 - j), sw = self->w >> (5 - j);
      float *dprev;

      TRY (unit_backward (self, &d->conv2, d->conv1.y, d->conv1.dy, FALSE));
      if (d->c_skip > 0)
        {
          TRY (unit_backward (self, &d->conv1, d->cat, d->dcat, FALSE));
          TRY (be->split (ctx, d->dup, full ? dfeat[4 - j] : NULL, d->dcat, d->c_in, d->c_skip,
                          n, sh * sw * 4));
        }
      else
        TRY (unit_backward (self, &d->conv1, d->up, d->dup, FALSE));
      if (j == 0 && !full)
        break;
      dprev = j > 0 ? self->dec[j - 1].conv2.dy : dfeat[5];
      TRY (be->grad_upsample (ctx, dprev, d->dup, n * d->c_in, sh, sw));
    }
  if (!full)
    return 0;

  for (int l = 3; l >= 0; l--)
    for (int b = self->n_blocks[l] - 1; b >= 0; b--)
      {
        Block *blk = &self->layers[l][b];
        float *dx;
        gboolean acc;

        if (b > 0)
          {
            dx = self->layers[l][b - 1].dout;
            acc = FALSE;
          }
        else if (l > 0)
          {
            dx = dfeat[l + 1];   /* the previous layer's output, skip grads in it */
            acc = TRUE;
          }
        else
          {
            dx = self->dpool;
            acc = FALSE;
          }
        TRY (block_backward (self, blk, dx, acc));
      }
  ph = lode_ops_pool_out_size (self->stem.oh, 3, 2, 1);
  pw = lode_ops_pool_out_size (self->stem.ow, 3, 2, 1);
  TRY (be->grad_max_pool (ctx, self->stem.dy, self->dpool, self->pool_arg, n, 64, self->stem.oh,
                          self->stem.ow, ph, pw, 3, 2, 1, TRUE));
  return unit_backward (self, &self->stem, self->input, NULL, FALSE);
}

gboolean
lode_unet_backward_checked (LodeUnet    *self,
                            const float *dlogits,
                            GError     **error)
{
  int status = 0;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (self->have_forward, FALSE);
  g_return_val_if_fail (dlogits != NULL || self->have_dlogits, FALSE);

  if (!push (self, SYNC_PARAMS | SYNC_GRADS, error))
    return FALSE;
  if (dlogits != NULL)
    status = self->be->upload (self->ctx, self->head.dy, dlogits,
                               sizeof (float) * logits_count (self));
  if (status == 0)
    status = run_backward (self);
  /* the backward consumes the dlogits in place */
  self->have_dlogits = FALSE;
  if (self->device == LODE_DEVICE_CUDA)
    self->host_stale |= SYNC_GRADS;
  return self->be->check (status, error);
}

void
lode_unet_backward (LodeUnet    *self,
                    const float *dlogits)
{
  g_autoptr(GError) error = NULL;

  g_return_if_fail (self != NULL && dlogits != NULL);
  g_return_if_fail (self->have_forward);

  if (!lode_unet_backward_checked (self, dlogits, &error))
    g_warning ("U-Net: %s", error->message);
}
