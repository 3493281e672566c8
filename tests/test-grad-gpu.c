/* The CUDA backward kernels (lode-grad-cuda.h) against their CPU twins in
 * lode-grad.h, on the same random inputs, by normalised error
 *   max |gpu - cpu| / (max |cpu| + 1e-6).
 * Suite 'gpu': skips itself without CUDA in the build or a device.
 *
 * Tolerances, fp32 on both sides with TF32 off:
 *   TOL_POINTWISE 1e-6  ReLU, pooling, upsampling, AdamW: the same float
 *                       formula (sqrtf, fused multiply-adds ~1e-7).
 *   TOL_REDUCE    1e-5  batch norm and cross-entropy: double sums on both
 *                       sides, in another order.
 *   TOL_PRODUCT   1e-4  convolution gradients: cuBLAS sums in another order
 *                       over up to a few thousand terms (~1e-5); an indexing
 *                       error gives O(1). */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lode-device.h"
#include "lode-grad.h"
#if LODE_HAVE_CUDA
#include "lode-grad-cuda.h"
#endif

#define TOL_POINTWISE 1e-6
#define TOL_REDUCE 1e-5
#define TOL_PRODUCT 1e-4

#if LODE_HAVE_CUDA

static LodeOpsCuda *ctx;
static GRand *rand_gen;

static void
ok (int status)
{
  g_autoptr(GError) error = NULL;

  lode_ops_cuda_check (status, &error);
  g_assert_no_error (error);
}

static gboolean
gpu_ready (void)
{
  if (lode_device_cuda_count () == 0)
    {
      g_test_skip ("no CUDA device");
      return FALSE;
    }
  if (ctx == NULL)
    ok (lode_ops_cuda_new (&ctx));
  return TRUE;
}

static float *
rnd (gsize n)
{
  float *a = g_new (float, n ? n : 1);

  for (gsize i = 0; i < n; i++)
    a[i] = (float) g_rand_double_range (rand_gen, -1.0, 1.0);
  return a;
}

/* A device copy of host[0..bytes). */
static void *
up (const void *host, gsize bytes)
{
  void *d = NULL;

  ok (lode_ops_cuda_alloc (&d, bytes ? bytes : 4));
  if (host)
    ok (lode_ops_cuda_upload (ctx, d, host, bytes));
  return d;
}

/* Downloads dev and compares with want; frees dev. */
static void
check (void *dev, const float *want, gsize n, double tol, const char *what)
{
  g_autofree float *got = g_new (float, n);
  double diff = 0.0, mag = 0.0;

  ok (lode_ops_cuda_download (ctx, got, dev, n * sizeof (float)));
  lode_ops_cuda_release (dev);
  for (gsize i = 0; i < n; i++)
    {
      diff = MAX (diff, fabs (got[i] - want[i]));
      mag = MAX (mag, fabs (want[i]));
    }
  if (!(diff / (mag + 1e-6) < tol))
    g_test_message ("%s: normalised error %g", what, diff / (mag + 1e-6));
  g_assert_cmpfloat (diff / (mag + 1e-6), <, tol);
}

static void
test_conv2d (void)
{
  LodeConvShape shapes[3];

  if (!gpu_ready ())
    return;
  lode_conv_shape_init (&shapes[0], 2, 5, 13, 11, 7, 3, 2, 1);
  lode_conv_shape_init (&shapes[1], 2, 6, 17, 16, 8, 7, 2, 3);
  lode_conv_shape_init (&shapes[2], 1, 4, 9, 9, 6, 3, 1, 2);
  shapes[2].dil_h = shapes[2].dil_w = 2;
  shapes[2].groups = 2;
  for (guint c = 0; c < G_N_ELEMENTS (shapes); c++)
    {
      const LodeConvShape *s = &shapes[c];
      int oh, ow;
      gsize nx, nw, ny;

      lode_conv_shape_out_size (s, &oh, &ow);
      nx = (gsize) s->n * s->c_in * s->h * s->w;
      nw = (gsize) s->c_out * (s->c_in / s->groups) * s->kh * s->kw;
      ny = (gsize) s->n * s->c_out * oh * ow;
      {
        g_autofree float *x = rnd (nx), *w = rnd (nw), *dy = rnd (ny), *dx = rnd (nx);
        g_autofree float *dw = rnd (nw), *db = rnd (s->c_out);
        float *gx = up (x, nx * 4), *gw = up (w, nw * 4), *gdy = up (dy, ny * 4);
        float *gdx = up (dx, nx * 4), *gdw = up (dw, nw * 4), *gdb = up (db, s->c_out * 4);

        /* accumulating dx, and dw, db added to */
        lode_grad_conv2d (dx, dw, db, dy, x, w, s, TRUE);
        ok (lode_grad_cuda_conv2d (ctx, gdx, gdw, gdb, gdy, gx, gw, s, TRUE));
        check (gdx, dx, nx, TOL_PRODUCT, "conv2d dx");
        check (gdw, dw, nw, TOL_PRODUCT, "conv2d dw");
        check (gdb, db, s->c_out, TOL_PRODUCT, "conv2d db");
        lode_ops_cuda_release (gx);
        lode_ops_cuda_release (gw);
        lode_ops_cuda_release (gdy);
      }
    }
}

static void
test_batch_norm (void)
{
  int n = 3, c = 5, hw = 37;
  gsize nx = (gsize) n * c * hw;
  g_autofree float *x = NULL, *w = NULL, *b = NULL, *rm = NULL, *rv = NULL, *y = NULL;
  g_autofree float *mean = NULL, *invstd = NULL, *dy = NULL, *dx = NULL, *dw = NULL, *db = NULL;
  float *gx, *gw, *gb, *grm, *grv, *gy, *gmean, *ginv, *gdy, *gdx, *gdw, *gdb;

  if (!gpu_ready ())
    return;
  x = rnd (nx); w = rnd (c); b = rnd (c); rm = rnd (c); rv = rnd (c); dy = rnd (nx);
  for (int j = 0; j < c; j++)
    rv[j] = 1.0f + fabsf (rv[j]);
  y = g_new (float, nx); mean = g_new (float, c); invstd = g_new (float, c);
  dx = g_new (float, nx); dw = rnd (c); db = rnd (c);
  gx = up (x, nx * 4); gw = up (w, c * 4); gb = up (b, c * 4); grm = up (rm, c * 4);
  grv = up (rv, c * 4); gy = up (NULL, nx * 4); gmean = up (NULL, c * 4); ginv = up (NULL, c * 4);
  gdy = up (dy, nx * 4); gdx = up (NULL, nx * 4); gdw = up (dw, c * 4); gdb = up (db, c * 4);

  lode_grad_batch_norm_train (y, x, w, b, rm, rv, mean, invstd, n, c, hw, 1e-5f, 0.1f);
  ok (lode_grad_cuda_batch_norm_train (ctx, gy, gx, gw, gb, grm, grv, gmean, ginv, n, c, hw, 1e-5f, 0.1f));
  lode_grad_batch_norm (dx, dw, db, dy, x, mean, invstd, w, n, c, hw, TRUE);
  ok (lode_grad_cuda_batch_norm (ctx, gdx, gdw, gdb, gdy, gx, gmean, ginv, gw, n, c, hw, TRUE));
  check (gy, y, nx, TOL_REDUCE, "batch norm forward");
  check (grm, rm, c, TOL_REDUCE, "running mean");
  check (grv, rv, c, TOL_REDUCE, "running var");
  check (gdx, dx, nx, TOL_REDUCE, "batch norm dx");
  check (gdw, dw, c, TOL_REDUCE, "batch norm dweight");
  check (gdb, db, c, TOL_REDUCE, "batch norm dbias");
  lode_ops_cuda_release (gx); lode_ops_cuda_release (gw); lode_ops_cuda_release (gb);
  lode_ops_cuda_release (gmean); lode_ops_cuda_release (ginv); lode_ops_cuda_release (gdy);
}

static void
test_elementwise (void)
{
  int n = 2, c = 3, h = 11, w = 9, oh = lode_ops_pool_out_size (11, 3, 2, 1), ow = lode_ops_pool_out_size (9, 3, 2, 1);
  gsize nx = (gsize) n * c * h * w, np = (gsize) n * c * oh * ow;
  g_autofree float *x = rnd (nx), *dy = rnd (nx), *out = g_new (float, MAX (np, nx * 4));
  g_autofree float *dx = g_new (float, nx), *pdy = rnd (np), *big = rnd (nx * 4);
  g_autofree gint32 *arg = g_new (gint32, np);
  float *gx, *gdy, *gout, *gdx, *gpdy, *gbig;
  int *garg;

  if (!gpu_ready ())
    return;
  gx = up (x, nx * 4); gdy = up (dy, nx * 4);

  lode_grad_relu (dx, dy, x, nx);
  gdx = up (NULL, nx * 4);
  ok (lode_grad_cuda_relu (ctx, gdx, gdy, gx, nx));
  check (gdx, dx, nx, TOL_POINTWISE, "relu backward");

  lode_grad_max_pool2d_forward (out, arg, x, n, c, h, w, 3, 2, 1);
  gout = up (NULL, np * 4);
  garg = up (NULL, np * 4);
  ok (lode_grad_cuda_max_pool2d_forward (ctx, gout, garg, gx, n, c, h, w, 3, 2, 1));
  check (gout, out, np, TOL_POINTWISE, "max pool forward");
  lode_grad_max_pool2d (dx, pdy, arg, n, c, h, w, oh, ow, FALSE);
  gpdy = up (pdy, np * 4);
  gdx = up (NULL, nx * 4);
  ok (lode_grad_cuda_max_pool2d (ctx, gdx, gpdy, garg, n, c, h, w, oh, ow, 3, 2, 1, FALSE));
  check (gdx, dx, nx, TOL_POINTWISE, "max pool backward");

  lode_grad_upsample2x_forward (out, x, n * c, h, w);
  gout = up (NULL, nx * 16);
  ok (lode_grad_cuda_upsample2x_forward (ctx, gout, gx, n * c, h, w));
  check (gout, out, nx * 4, TOL_POINTWISE, "upsample forward");
  lode_grad_upsample2x (dx, big, n * c, h, w);
  gbig = up (big, nx * 16);
  gdx = up (NULL, nx * 4);
  ok (lode_grad_cuda_upsample2x (ctx, gdx, gbig, n * c, h, w));
  check (gdx, dx, nx, TOL_POINTWISE, "upsample backward");

  lode_ops_cuda_release (gx); lode_ops_cuda_release (gdy); lode_ops_cuda_release (garg);
  lode_ops_cuda_release (gpdy); lode_ops_cuda_release (gbig);
}

static void
test_cross_entropy (void)
{
  int n = 2, c = 3, hw = 300;
  gsize nl = (gsize) n * c * hw;
  g_autofree float *x = rnd (nl), *d = g_new (float, nl);
  g_autofree gint16 *t = g_new (gint16, n * hw);
  float cw[3] = { 0.5f, 2.0f, 1.0f };
  float *gx, *gd, *gcw;
  gint16 *gt;
  double loss, gloss = -1.0;

  if (!gpu_ready ())
    return;
  for (int i = 0; i < n * hw; i++)
    t[i] = i % 13 == 0 ? 255 : (gint16) g_rand_int_range (rand_gen, 0, c);
  loss = lode_grad_cross_entropy (d, x, t, cw, n, c, hw, 255, 0.5f);
  gx = up (x, nl * 4); gd = up (NULL, nl * 4); gcw = up (cw, sizeof cw);
  gt = up (t, n * hw * sizeof (gint16));
  ok (lode_grad_cuda_cross_entropy (ctx, gd, gx, gt, gcw, n, c, hw, 255, 0.5f, &gloss));
  check (gd, d, nl, TOL_REDUCE, "cross-entropy gradient");
  g_assert_cmpfloat (fabs (gloss - loss) / loss, <, TOL_REDUCE);
  lode_ops_cuda_release (gx); lode_ops_cuda_release (gcw); lode_ops_cuda_release (gt);
}

static void
test_adamw (void)
{
  gsize n = 1000;
  g_autofree float *p = rnd (n), *g = rnd (n), *m = rnd (n), *v = rnd (n);
  LodeAdamW opt = { 1e-2f, 0.9f, 0.999f, 1e-8f, 0.05f };
  float *gp, *gg, *gm, *gv;

  if (!gpu_ready ())
    return;
  for (gsize i = 0; i < n; i++)
    v[i] = fabsf (v[i]);
  gp = up (p, n * 4); gg = up (g, n * 4); gm = up (m, n * 4); gv = up (v, n * 4);
  lode_grad_adamw (p, g, m, v, n, &opt, 7);
  ok (lode_grad_cuda_adamw (ctx, gp, gg, gm, gv, n, opt.lr, opt.beta1, opt.beta2, opt.eps,
                            opt.weight_decay, 7));
  check (gp, p, n, TOL_POINTWISE, "adamw param");
  check (gm, m, n, TOL_POINTWISE, "adamw m");
  check (gv, v, n, TOL_POINTWISE, "adamw v");
  lode_ops_cuda_release (gg);
}

#endif

static void
test_built (void)
{
  if (!LODE_HAVE_CUDA)
    g_test_skip ("built without CUDA");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/grad-gpu/built", test_built);
#if LODE_HAVE_CUDA
  rand_gen = g_rand_new_with_seed (3);
  g_test_add_func ("/grad-gpu/conv2d", test_conv2d);
  g_test_add_func ("/grad-gpu/batch-norm", test_batch_norm);
  g_test_add_func ("/grad-gpu/elementwise", test_elementwise);
  g_test_add_func ("/grad-gpu/cross-entropy", test_cross_entropy);
  g_test_add_func ("/grad-gpu/adamw", test_adamw);
#endif
  return g_test_run ();
}
