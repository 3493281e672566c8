/* Every CUDA kernel of lode-ops-cuda.h against its CPU twin in lode-ops.h, on
 * the same random inputs, compared by normalised error
 *   max |gpu - cpu| / (max |cpu| + 1e-6).
 * Suite 'gpu': each test skips itself when the build has no CUDA or the
 * machine has no device.
 *
 * Tolerances (fp32 on both sides, TF32 off on the GPU):
 *   TOL_POINTWISE 1e-5  element-wise, layout, pooling and resizing: the same
 *                       float formula on both sides; only CUDA's erff, expf,
 *                       tanhf (within 2 ulp of libm) and fused multiply-adds
 *                       differ, ~1e-7 relative.
 *   TOL_REDUCE    1e-5  layer norms and softmax: float sums on the GPU against
 *                       double sums on the CPU over at most ~1000 terms of
 *                       size 1, a few 1e-7 relative.
 *   TOL_PRODUCT   1e-4  gemm, attention, convolutions: cuBLAS and cuDNN sum in
 *                       another order and cuDNN may pick Winograd or FFT
 *                       algorithms, which lose a few more bits (~1e-5); TF32
 *                       would show as ~1e-3 and fail, as would any indexing
 *                       error (O(1)).
 *
 * bf16 mode against the CPU given the same operands rounded to bf16
 * (lode_ops_round_bf16): the product of two bf16 values is exact in fp32,
 * so products differ only in summation order (TOL_PRODUCT); convolutions
 * also come back through bf16 outputs, which may round one ulp apart
 * (2^-8 of the value) where the two sums straddle a rounding boundary:
 * TOL_BF16_OUT. Each bf16 check also asserts that the result is NOT the
 * fp32 one (more than TOL_BF16_MIN off it), so a mode that silently stays
 * fp32 fails. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lode-device.h"
#include "lode-grad.h"
#include "lode-ops.h"
#if LODE_HAVE_CUDA
#include "lode-ops-cuda.h"
#endif

#define TOL_POINTWISE 1e-5
#define TOL_REDUCE 1e-5
#define TOL_PRODUCT 1e-4
#define TOL_BF16_OUT 8e-3
#define TOL_BF16_MIN 1e-4

#if LODE_HAVE_CUDA

static LodeOpsCuda *ctx;
static GRand *rand_gen;

static void
assert_ok (int status)
{
  g_autoptr(GError) error = NULL;

  lode_ops_cuda_check (status, &error);
  g_assert_no_error (error);
}

/* TRUE when a device is there; otherwise marks the test skipped. */
static gboolean
gpu_ready (void)
{
  if (lode_device_cuda_count () == 0)
    {
      g_test_skip ("no CUDA device");
      return FALSE;
    }
  if (ctx == NULL)
    assert_ok (lode_ops_cuda_new (&ctx));
  return TRUE;
}

static float *
random_array (gsize n)
{
  float *a = g_new (float, n ? n : 1);

  for (gsize i = 0; i < n; i++)
    a[i] = (float) g_rand_double_range (rand_gen, -1.0, 1.0);
  return a;
}

static float *
gpu_new (gsize n)
{
  void *d = NULL;

  assert_ok (lode_ops_cuda_alloc (&d, sizeof (float) * n));
  return d;
}

static float *
to_gpu (const float *h, gsize n)
{
  float *d = gpu_new (n);

  assert_ok (lode_ops_cuda_upload (ctx, d, h, sizeof (float) * n));
  return d;
}

static float *
from_gpu (const float *d, gsize n)
{
  float *h = g_new (float, n ? n : 1);

  assert_ok (lode_ops_cuda_download (ctx, h, d, sizeof (float) * n));
  return h;
}

/* Downloads gpu (n floats), frees it, and compares it with cpu. */
static void
compare (float *gpu, const float *cpu, gsize n, double tol, const char *what)
{
  g_autofree float *got = from_gpu (gpu, n);
  double diff = 0.0, mag = 0.0, err;

  lode_ops_cuda_release (gpu);
  for (gsize i = 0; i < n; i++)
    {
      diff = isnan (got[i]) ? INFINITY : MAX (diff, fabs ((double) got[i] - cpu[i]));
      mag = MAX (mag, fabs (cpu[i]));
    }
  err = diff / (mag + 1e-6);
  g_test_message ("%s: normalised error %.3g (tolerance %g)", what, err, tol);
  g_assert_cmpfloat (err, <, tol);
}

static void
test_gemm (void)
{
  static const int shapes[][3] = { { 1, 1, 1 }, { 33, 17, 29 }, { 128, 96, 257 } };

  if (!gpu_ready ())
    return;
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
    for (int t = 0; t < 4; t++)
      {
        int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        g_autofree float *a = random_array ((gsize) m * k);
        g_autofree float *b = random_array ((gsize) k * n);
        g_autofree float *c = random_array ((gsize) m * n);
        float *da = to_gpu (a, (gsize) m * k), *db = to_gpu (b, (gsize) k * n);
        float *dc = to_gpu (c, (gsize) m * n);
        g_autofree char *what = g_strdup_printf ("gemm %dx%dx%d trans %d", m, n, k, t);

        assert_ok (lode_ops_cuda_gemm (ctx, t & 1, t >> 1, m, n, k, 0.5f, da, db, 2.0f, dc));
        lode_ops_gemm (t & 1, t >> 1, m, n, k, 0.5f, a, b, 2.0f, c);
        compare (dc, c, (gsize) m * n, TOL_PRODUCT, what);
        lode_ops_cuda_release (da);
        lode_ops_cuda_release (db);
      }
}

static void
test_gemm_batched (void)
{
  int batch = 5, m = 19, n = 23, k = 31;
  gint64 sa = m * k, sb = k * n, sc = m * n;

  if (!gpu_ready ())
    return;
  for (int t = 0; t < 4; t++)
    {
      g_autofree float *a = random_array (batch * sa);
      g_autofree float *b = random_array (batch * sb);
      g_autofree float *c = g_new (float, batch * sc);
      float *da = to_gpu (a, batch * sa), *db = to_gpu (b, batch * sb);
      float *dc = gpu_new (batch * sc);

      assert_ok (lode_ops_cuda_gemm_batched (ctx, t & 1, t >> 1, batch, m, n, k, 1.0f,
                                             da, sa, db, sb, 0.0f, dc, sc));
      lode_ops_gemm_batched (t & 1, t >> 1, batch, m, n, k, 1.0f, a, sa, b, sb, 0.0f, c, sc);
      compare (dc, c, batch * sc, TOL_PRODUCT, "gemm_batched");
      lode_ops_cuda_release (da);
      lode_ops_cuda_release (db);
    }
}

static void
test_matmul_linear (void)
{
  int m = 37, n = 21, k = 45;
  g_autofree float *a = NULL, *b = NULL, *bias = NULL, *c = NULL;
  float *da, *db, *dbias, *dc;

  if (!gpu_ready ())
    return;
  a = random_array (m * k);
  b = random_array (k * n);
  bias = random_array (n);
  c = g_new (float, m * n);
  da = to_gpu (a, m * k);
  db = to_gpu (b, k * n);
  dbias = to_gpu (bias, n);
  for (int layout = 0; layout < 2; layout++)
    {
      dc = gpu_new (m * n);
      assert_ok (lode_ops_cuda_matmul (ctx, dc, da, db, dbias, m, n, k, layout));
      lode_ops_matmul (c, a, b, bias, m, n, k, layout);
      compare (dc, c, m * n, TOL_PRODUCT, layout ? "matmul weight layout" : "matmul");
    }
  dc = gpu_new (m * n);
  assert_ok (lode_ops_cuda_linear (ctx, dc, da, db, dbias, m, k, n));
  lode_ops_linear (c, a, b, bias, m, k, n);
  compare (dc, c, m * n, TOL_PRODUCT, "linear");
  lode_ops_cuda_release (da);
  lode_ops_cuda_release (db);
  lode_ops_cuda_release (dbias);
}

static const LodeConvShape conv_cases[] = {
  /* n cin h w  cout kh kw  sh sw  ph pw  dh dw  groups  oph opw */
  { 2, 3, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 0 },
  { 1, 4, 11, 8, 6, 3, 2, 2, 1, 1, 0, 1, 1, 2, 0, 0 },
  { 1, 3, 13, 10, 4, 3, 3, 2, 2, 2, 2, 2, 2, 1, 0, 0 },
  { 2, 5, 6, 7, 3, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0 },
  { 1, 3, 64, 64, 96, 7, 7, 4, 4, 3, 3, 1, 1, 1, 0, 0 },  /* Hiera patch embedding */
  { 1, 32, 64, 64, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 0 }, /* Winograd-sized */
};

static const LodeConvShape convt_cases[] = {
  { 1, 64, 16, 16, 32, 2, 2, 2, 2, 0, 0, 1, 1, 1, 0, 0 },  /* SAM2's upscaler */
  { 2, 4, 5, 4, 6, 3, 3, 2, 2, 1, 1, 1, 1, 2, 1, 1 },
  { 1, 3, 4, 5, 2, 3, 2, 1, 2, 0, 1, 2, 1, 1, 0, 0 },
};

static void
run_conv (const LodeConvShape *s, gboolean transposed, const char *what)
{
  int oh, ow;
  gsize nin, nw, nout;

  if (transposed)
    g_assert_true (lode_conv_shape_tout_size (s, &oh, &ow));
  else
    g_assert_true (lode_conv_shape_out_size (s, &oh, &ow));
  nin = (gsize) s->n * s->c_in * s->h * s->w;
  nw = (gsize) s->c_in * s->c_out / s->groups * s->kh * s->kw;
  nout = (gsize) s->n * s->c_out * oh * ow;
  {
    g_autofree float *in = random_array (nin);
    g_autofree float *w = random_array (nw);
    g_autofree float *bias = random_array (s->c_out);
    g_autofree float *out = g_new (float, nout);
    float *din = to_gpu (in, nin), *dw = to_gpu (w, nw), *db = to_gpu (bias, s->c_out);
    float *dout = gpu_new (nout);

    if (transposed)
      {
        assert_ok (lode_ops_cuda_conv_transpose2d (ctx, dout, din, dw, db, s));
        lode_ops_conv_transpose2d (out, in, w, bias, s);
      }
    else
      {
        assert_ok (lode_ops_cuda_conv2d (ctx, dout, din, dw, db, s));
        lode_ops_conv2d (out, in, w, bias, s);
      }
    compare (dout, out, nout, TOL_PRODUCT, what);
    lode_ops_cuda_release (din);
    lode_ops_cuda_release (dw);
    lode_ops_cuda_release (db);
  }
}

static void
test_conv2d (void)
{
  if (!gpu_ready ())
    return;
  for (guint c = 0; c < G_N_ELEMENTS (conv_cases); c++)
    {
      g_autofree char *what = g_strdup_printf ("conv2d case %u", c);
      run_conv (&conv_cases[c], FALSE, what);
    }
}

static void
test_conv_transpose2d (void)
{
  if (!gpu_ready ())
    return;
  for (guint c = 0; c < G_N_ELEMENTS (convt_cases); c++)
    {
      g_autofree char *what = g_strdup_printf ("conv_transpose2d case %u", c);
      run_conv (&convt_cases[c], TRUE, what);
    }
}

static void
test_norms (void)
{
  int n = 3, c = 96, hw = 257;
  gsize total = (gsize) n * c * hw;
  g_autofree float *x = NULL, *w = NULL, *b = NULL, *mean = NULL, *var = NULL, *out = NULL;
  float *dx, *dw, *db, *dmean, *dvar, *dout;

  if (!gpu_ready ())
    return;
  x = random_array (total);
  w = random_array (c);
  b = random_array (c);
  mean = random_array (c);
  var = random_array (c);
  out = g_new (float, total);
  for (int j = 0; j < c; j++)
    var[j] = fabsf (var[j]) + 0.1f;
  dx = to_gpu (x, total);
  dw = to_gpu (w, c);
  db = to_gpu (b, c);
  dmean = to_gpu (mean, c);
  dvar = to_gpu (var, c);

  /* rows of c, with and without the affine part */
  dout = gpu_new (total);
  assert_ok (lode_ops_cuda_layer_norm (ctx, dout, dx, dw, db, n * hw, c, 1e-6f));
  lode_ops_layer_norm (out, x, w, b, n * hw, c, 1e-6f);
  compare (dout, out, total, TOL_REDUCE, "layer_norm");
  dout = gpu_new (total);
  assert_ok (lode_ops_cuda_layer_norm (ctx, dout, dx, NULL, NULL, n * c, hw, 1e-5f));
  lode_ops_layer_norm (out, x, NULL, NULL, n * c, hw, 1e-5f);
  compare (dout, out, total, TOL_REDUCE, "layer_norm, no affine");

  dout = gpu_new (total);
  assert_ok (lode_ops_cuda_layer_norm2d (ctx, dout, dx, dw, db, n, c, hw, 1e-6f));
  lode_ops_layer_norm2d (out, x, w, b, n, c, hw, 1e-6f);
  compare (dout, out, total, TOL_REDUCE, "layer_norm2d");

  dout = gpu_new (total);
  assert_ok (lode_ops_cuda_batch_norm (ctx, dout, dx, dmean, dvar, dw, db, n, c, hw, 1e-5f));
  lode_ops_batch_norm (out, x, mean, var, w, b, n, c, hw, 1e-5f);
  compare (dout, out, total, TOL_POINTWISE, "batch_norm");

  lode_ops_cuda_release (dx);
  lode_ops_cuda_release (dw);
  lode_ops_cuda_release (db);
  lode_ops_cuda_release (dmean);
  lode_ops_cuda_release (dvar);
}

static void
test_elementwise (void)
{
  gsize n = 1000003;
  int bn = 7, bc = 13, bhw = 10989;  /* bn * bc * bhw = n */
  g_autofree float *a = NULL, *b = NULL, *bias = NULL, *out = NULL;
  float *da, *db, *dbias, *dout;

  if (!gpu_ready ())
    return;
  g_assert_cmpuint ((gsize) bn * bc * bhw, ==, n);
  a = random_array (n);
  b = random_array (n);
  bias = random_array (bhw);
  out = g_new (float, n);
  for (gsize i = 0; i < n; i++)
    a[i] *= 8.0f;  /* reach the tails of gelu and sigmoid */
  da = to_gpu (a, n);
  db = to_gpu (b, n);
  dbias = to_gpu (bias, bhw);

#define UNARY(name)                                              \
  dout = gpu_new (n);                                            \
  assert_ok (lode_ops_cuda_##name (ctx, dout, da, n));           \
  lode_ops_##name (out, a, n);                                   \
  compare (dout, out, n, TOL_POINTWISE, #name);
  UNARY (gelu)
  UNARY (gelu_tanh)
  UNARY (relu)
  UNARY (sigmoid)
#undef UNARY

  dout = gpu_new (n);
  assert_ok (lode_ops_cuda_add (ctx, dout, da, db, n));
  lode_ops_add (out, a, b, n);
  compare (dout, out, n, TOL_POINTWISE, "add");
  dout = gpu_new (n);
  assert_ok (lode_ops_cuda_mul (ctx, dout, da, db, n));
  lode_ops_mul (out, a, b, n);
  compare (dout, out, n, TOL_POINTWISE, "mul");
  dout = gpu_new (n);
  assert_ok (lode_ops_cuda_scale (ctx, dout, da, -0.37f, n));
  lode_ops_scale (out, a, -0.37f, n);
  compare (dout, out, n, TOL_POINTWISE, "scale");
  dout = gpu_new (n);
  assert_ok (lode_ops_cuda_add_channel_bias (ctx, dout, da, dbias, bn, bc, bhw));
  lode_ops_add_channel_bias (out, a, bias, bn, bc, bhw);
  compare (dout, out, n, TOL_POINTWISE, "add_channel_bias");
  dout = gpu_new (n);
  assert_ok (lode_ops_cuda_add_row_bias (ctx, dout, da, dbias, bn * bc, bhw));
  lode_ops_add_row_bias (out, a, bias, bn * bc, bhw);
  compare (dout, out, n, TOL_POINTWISE, "add_row_bias");

  lode_ops_cuda_release (da);
  lode_ops_cuda_release (db);
  lode_ops_cuda_release (dbias);
}

static void
test_softmax (void)
{
  /* the second shape has more rows than the grid, so blocks stride over rows */
  static const int shapes[][2] = { { 17, 1000 }, { 1100000, 5 }, { 3, 4097 } };

  if (!gpu_ready ())
    return;
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
    {
      int rows = shapes[s][0], c = shapes[s][1];
      gsize total = (gsize) rows * c;
      g_autofree float *x = random_array (total);
      g_autofree float *out = g_new (float, total);
      float *dx, *dout;

      for (gsize i = 0; i < total; i++)
        x[i] *= 30.0f;
      dx = to_gpu (x, total);
      dout = gpu_new (total);
      assert_ok (lode_ops_cuda_softmax (ctx, dout, dx, rows, c));
      lode_ops_softmax (out, x, rows, c);
      compare (dout, out, total, TOL_REDUCE, "softmax");
      /* in place, as attention uses it */
      assert_ok (lode_ops_cuda_softmax (ctx, dx, dx, rows, c));
      compare (dx, out, total, TOL_REDUCE, "softmax in place");
    }
}

static void
test_attention (void)
{
  /* b h lq lk d: odd sizes; SAM2's decoder cross-attention; a global
   * attention of Hiera's last stage at 1024 px */
  static const int shapes[][5] = { { 2, 3, 7, 11, 5 }, { 1, 8, 7, 4096, 16 },
                                   { 1, 2, 1024, 1024, 64 } };

  if (!gpu_ready ())
    return;
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
    {
      int b = shapes[s][0], h = shapes[s][1], lq = shapes[s][2], lk = shapes[s][3];
      int d = shapes[s][4];
      gsize nq = (gsize) b * h * lq * d, nk = (gsize) b * h * lk * d;
      g_autofree float *q = random_array (nq);
      g_autofree float *k = random_array (nk);
      g_autofree float *v = random_array (nk);
      g_autofree float *out = g_new (float, nq);
      float *dq = to_gpu (q, nq), *dk = to_gpu (k, nk), *dv = to_gpu (v, nk);
      float *dout = gpu_new (nq);
      g_autofree char *what = g_strdup_printf ("attention shape %u", s);

      assert_ok (lode_ops_cuda_attention (ctx, dout, dq, dk, dv, b, h, lq, lk, d));
      lode_ops_attention (out, q, k, v, b, h, lq, lk, d);
      compare (dout, out, nq, TOL_PRODUCT, what);
      lode_ops_cuda_release (dq);
      lode_ops_cuda_release (dk);
      lode_ops_cuda_release (dv);
    }
}

static void
test_pool_resize (void)
{
  static const int sizes[][4] = { { 2, 2, 4, 4 }, { 5, 7, 16, 9 }, { 17, 13, 6, 4 },
                                  { 64, 64, 256, 256 }, { 6, 9, 1, 5 } };
  int nc = 6;

  if (!gpu_ready ())
    return;
  {
    int h = 33, w = 20, oh = lode_ops_pool_out_size (h, 3, 2, 1);
    int ow = lode_ops_pool_out_size (w, 3, 2, 1);
    g_autofree float *x = random_array (nc * h * w);
    g_autofree float *out = g_new (float, nc * oh * ow);
    float *dx = to_gpu (x, nc * h * w), *dout = gpu_new (nc * oh * ow);

    assert_ok (lode_ops_cuda_max_pool2d (ctx, dout, dx, 2, 3, h, w, 3, 2, 1));
    lode_ops_max_pool2d (out, x, 2, 3, h, w, 3, 2, 1);
    compare (dout, out, nc * oh * ow, TOL_POINTWISE, "max_pool2d");
    lode_ops_cuda_release (dx);
  }
  for (guint s = 0; s < G_N_ELEMENTS (sizes); s++)
    for (int mode = LODE_RESIZE_NEAREST; mode <= LODE_RESIZE_BILINEAR_ALIGN_CORNERS; mode++)
      {
        int h = sizes[s][0], w = sizes[s][1], oh = sizes[s][2], ow = sizes[s][3];
        g_autofree float *x = random_array ((gsize) nc * h * w);
        g_autofree float *out = g_new (float, (gsize) nc * oh * ow);
        float *dx = to_gpu (x, (gsize) nc * h * w), *dout = gpu_new ((gsize) nc * oh * ow);
        g_autofree char *what = g_strdup_printf ("resize %dx%d -> %dx%d mode %d",
                                                 h, w, oh, ow, mode);

        assert_ok (lode_ops_cuda_resize (ctx, dout, dx, nc, h, w, oh, ow, mode));
        lode_ops_resize (out, x, nc, h, w, oh, ow, mode);
        compare (dout, out, (gsize) nc * oh * ow, TOL_POINTWISE, what);
        lode_ops_cuda_release (dx);
      }
}

static void
test_layout (void)
{
  int b = 2, h = 30, w = 23, c = 96, win = 8;
  gsize total = (gsize) b * h * w * c;
  gsize nwin = (gsize) b * lode_ops_window_count (h, w, win) * win * win * c;
  g_autofree float *x = NULL, *windows = NULL, *out = NULL;
  float *dx, *dwin, *dout;
  const int dims[4] = { b, h, w, c };
  const int perm[4] = { 0, 2, 1, 3 };

  if (!gpu_ready ())
    return;
  x = random_array (total);
  windows = g_new (float, nwin);
  out = g_new (float, total);
  dx = to_gpu (x, total);

  dwin = gpu_new (nwin);
  assert_ok (lode_ops_cuda_window_partition (ctx, dwin, dx, b, h, w, c, win));
  lode_ops_window_partition (windows, x, b, h, w, c, win);
  dout = gpu_new (total);
  assert_ok (lode_ops_cuda_window_unpartition (ctx, dout, dwin, b, h, w, c, win));
  compare (dwin, windows, nwin, TOL_POINTWISE, "window_partition");
  compare (dout, x, total, TOL_POINTWISE, "window_unpartition");

  /* x seen as NCHW [b, h, w, c] */
  dout = gpu_new (total);
  assert_ok (lode_ops_cuda_nchw_to_nhwc (ctx, dout, dx, b, h, w, c));
  lode_ops_nchw_to_nhwc (out, x, b, h, w, c);
  compare (dout, out, total, TOL_POINTWISE, "nchw_to_nhwc");
  dout = gpu_new (total);
  assert_ok (lode_ops_cuda_nhwc_to_nchw (ctx, dout, dx, b, h, w, c));
  lode_ops_nhwc_to_nchw (out, x, b, h, w, c);
  compare (dout, out, total, TOL_POINTWISE, "nhwc_to_nchw");
  dout = gpu_new (total);
  assert_ok (lode_ops_cuda_permute4 (ctx, dout, dx, dims, perm));
  lode_ops_permute4 (out, x, dims, perm);
  compare (dout, out, total, TOL_POINTWISE, "permute4");
  lode_ops_cuda_release (dx);
}

static void
test_out_of_memory (void)
{
  g_autoptr(GError) error = NULL;
  void *p = NULL;
  int status;

  if (!gpu_ready ())
    return;
  /* 1 PiB: no GPU has it; the user must be told it is memory */
  status = lode_ops_cuda_alloc (&p, (size_t) 1 << 50);
  g_assert_cmpint (status, ==, LODE_CUDA_ERROR_NO_MEMORY);
  g_assert_null (p);
  g_assert_false (lode_ops_cuda_check (status, &error));
  g_assert_error (error, LODE_OPS_ERROR, LODE_OPS_ERROR_GPU_MEMORY);
  g_assert_nonnull (strstr (error->message, "MiB"));
  /* and the device still works afterwards */
  {
    float one = 1.0f, *d = to_gpu (&one, 1);
    float *back;

    assert_ok (lode_ops_cuda_scale (ctx, d, d, 3.0f, 1));
    back = from_gpu (d, 1);
    g_assert_cmpfloat (back[0], ==, 3.0f);
    g_free (back);
    lode_ops_cuda_release (d);
  }
}

/* lode_ops_cuda_round_bf16 is bit for bit lode_ops_round_bf16: values over
 * many binades, ties, the largest finite values, infinities. */
static void
test_round_bf16 (void)
{
  const gsize n = 4096;
  g_autofree float *in = g_new (float, n), *want = g_new (float, n), *got = NULL;
  float *d;

  if (!gpu_ready ())
    return;
  for (gsize i = 0; i < n; i++)
    in[i] = (float) (g_rand_double_range (rand_gen, -1.0, 1.0)
                     * pow (2.0, g_rand_int_range (rand_gen, -60, 60)));
  in[0] = 1.0f + 0x1p-8f;               /* a tie, to even */
  in[1] = 1.0f + 3 * 0x1p-8f;           /* a tie, up */
  in[2] = 3.4e38f;                      /* beyond bf16: infinity */
  in[3] = -INFINITY;
  in[4] = 1e-40f;                       /* subnormal */
  lode_ops_round_bf16 (want, in, n);
  d = to_gpu (in, n);
  assert_ok (lode_ops_cuda_round_bf16 (ctx, d, d, n));
  got = from_gpu (d, n);
  lode_ops_cuda_release (d);
  g_assert_cmpmem (got, n * sizeof (float), want, n * sizeof (float));
}

/* Products of column blocks of wider matrices: rows lda, ldb, ldc apart. */
static void
test_gemm_strided (void)
{
  const int batch = 3, m = 9, n = 7, k = 11, lda = 20, ldb = 16, ldc = 13;
  const gsize na = (gsize) batch * 32 * lda, nb = (gsize) batch * 32 * ldb, nc = (gsize) batch * m * ldc;

  if (!gpu_ready ())
    return;
  for (int t = 0; t < 4; t++)
    {
      gboolean ta = t & 1, tb = t >> 1;
      g_autofree float *a = random_array (na), *b = random_array (nb), *c = random_array (nc);
      g_autofree float *pa = g_new (float, m * k), *pb = g_new (float, k * n), *pc = g_new (float, m * n);
      g_autofree float *want = g_memdup2 (c, nc * sizeof (float));
      float *da = to_gpu (a, na), *db = to_gpu (b, nb), *dc = to_gpu (c, nc);
      int ra = ta ? k : m, ca = ta ? m : k, rb = tb ? n : k, cb = tb ? k : n;

      /* the CPU on packed copies of each block */
      for (int i = 0; i < batch; i++)
        {
          for (int r = 0; r < ra; r++)
            memcpy (pa + r * ca, a + (gsize) i * 32 * lda + (gsize) r * lda, ca * sizeof (float));
          for (int r = 0; r < rb; r++)
            memcpy (pb + r * cb, b + (gsize) i * 32 * ldb + (gsize) r * ldb, cb * sizeof (float));
          for (int r = 0; r < m; r++)
            memcpy (pc + r * n, want + (gsize) i * m * ldc + (gsize) r * ldc, n * sizeof (float));
          lode_ops_gemm (ta, tb, m, n, k, 0.5f, pa, pb, 2.0f, pc);
          for (int r = 0; r < m; r++)
            memcpy (want + (gsize) i * m * ldc + (gsize) r * ldc, pc + r * n, n * sizeof (float));
        }
      assert_ok (lode_ops_cuda_gemm_strided (ctx, ta, tb, batch, m, n, k, 0.5f,
                                             da, lda, (long long) 32 * lda,
                                             db, ldb, (long long) 32 * ldb,
                                             2.0f, dc, ldc, (long long) m * ldc));
      /* the gaps between the blocks' rows keep their values */
      compare (dc, want, nc, TOL_PRODUCT, "gemm_strided");
      lode_ops_cuda_release (da);
      lode_ops_cuda_release (db);
    }
}

static float *
rounded (const float *in, gsize n)
{
  float *out = g_new (float, n ? n : 1);

  lode_ops_round_bf16 (out, in, n);
  return out;
}

/* Compares gpu with the bf16 twin want (tolerance tol) and checks that it
 * is not the fp32 result fp32 either. */
static void
compare_bf16 (float *gpu, const float *want, const float *fp32, gsize n, double tol, const char *what)
{
  g_autofree float *got = from_gpu (gpu, n);
  double off = 0.0, mag = 0.0;

  for (gsize i = 0; i < n; i++)
    {
      off = MAX (off, fabs ((double) got[i] - fp32[i]));
      mag = MAX (mag, fabs (fp32[i]));
    }
  g_test_message ("%s: %.3g from fp32", what, off / (mag + 1e-6));
  g_assert_cmpfloat (off / (mag + 1e-6), >, TOL_BF16_MIN);
  compare (gpu, want, n, tol, what);
}

static void
test_bf16 (void)
{
  const int m = 64, n = 48, k = 257;
  const LodeConvShape conv = { 2, 16, 12, 10, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 0 };
  const LodeConvShape convt = { 1, 32, 8, 8, 16, 2, 2, 2, 2, 0, 0, 1, 1, 1, 0, 0 };

  if (!gpu_ready ())
    return;
  assert_ok (lode_ops_cuda_set_precision (ctx, LODE_PRECISION_BF16));
  g_assert_cmpint (lode_ops_cuda_get_precision (ctx), ==, LODE_PRECISION_BF16);

  /* gemm: fp32 out of bf16 operands */
  {
    g_autofree float *a = random_array ((gsize) m * k), *b = random_array ((gsize) k * n);
    g_autofree float *ra = rounded (a, (gsize) m * k), *rb = rounded (b, (gsize) k * n);
    g_autofree float *want = g_new (float, m * n), *fp32 = g_new (float, m * n);
    float *da = to_gpu (a, (gsize) m * k), *db = to_gpu (b, (gsize) k * n), *dc = gpu_new (m * n);

    assert_ok (lode_ops_cuda_gemm (ctx, 0, 1, m, n, k, 1.0f, da, db, 0.0f, dc));
    lode_ops_gemm (FALSE, TRUE, m, n, k, 1.0f, ra, rb, 0.0f, want);
    lode_ops_gemm (FALSE, TRUE, m, n, k, 1.0f, a, b, 0.0f, fp32);
    compare_bf16 (dc, want, fp32, (gsize) m * n, TOL_PRODUCT, "bf16 gemm");
    lode_ops_cuda_release (da);
    lode_ops_cuda_release (db);
  }

  /* convolution forward, backward (data and filter) and transposed */
  {
    int oh, ow;
    g_assert_true (lode_conv_shape_out_size (&conv, &oh, &ow));
    gsize nx = (gsize) conv.n * conv.c_in * conv.h * conv.w, nw = (gsize) conv.c_out * conv.c_in * 9;
    gsize ny = (gsize) conv.n * conv.c_out * oh * ow;
    g_autofree float *x = random_array (nx), *w = random_array (nw), *dy = random_array (ny);
    g_autofree float *rx = rounded (x, nx), *rw = rounded (w, nw), *rdy = rounded (dy, ny);
    g_autofree float *want = g_new (float, MAX (nx, ny)), *fp32 = g_new (float, MAX (nx, ny));
    g_autofree float *dw0 = random_array (nw), *dw_want = g_new0 (float, nw), *dw_fp32 = g_new0 (float, nw);
    float *dx_ = to_gpu (x, nx), *dw_ = to_gpu (w, nw), *ddy = to_gpu (dy, ny);
    float *dout = gpu_new (ny), *dgx = gpu_new (nx), *dgw = to_gpu (dw0, nw);

    assert_ok (lode_ops_cuda_conv2d (ctx, dout, dx_, dw_, NULL, &conv));
    lode_ops_conv2d (want, rx, rw, NULL, &conv);
    lode_ops_round_bf16 (want, want, ny);
    lode_ops_conv2d (fp32, x, w, NULL, &conv);
    compare_bf16 (dout, want, fp32, ny, TOL_BF16_OUT, "bf16 conv2d");

    /* dx overwritten; dweight added to (dw0 + rounded gradient) */
    assert_ok (lode_ops_cuda_conv2d_backward (ctx, dgx, dgw, ddy, dx_, dw_, &conv, 0));
    lode_grad_conv2d (want, dw_want, NULL, rdy, rx, rw, &conv, FALSE);
    lode_ops_round_bf16 (want, want, nx);
    lode_ops_round_bf16 (dw_want, dw_want, nw);
    lode_grad_conv2d (fp32, dw_fp32, NULL, dy, x, w, &conv, FALSE);
    compare_bf16 (dgx, want, fp32, nx, TOL_BF16_OUT, "bf16 conv2d backward data");
    for (gsize i = 0; i < nw; i++)
      {
        dw_want[i] += dw0[i];
        dw_fp32[i] += dw0[i];
      }
    compare_bf16 (dgw, dw_want, dw_fp32, nw, TOL_BF16_OUT, "bf16 conv2d backward filter");
    lode_ops_cuda_release (dx_);
    lode_ops_cuda_release (dw_);
    lode_ops_cuda_release (ddy);
  }
  {
    int oh, ow;
    g_assert_true (lode_conv_shape_tout_size (&convt, &oh, &ow));
    gsize nx = (gsize) convt.c_in * convt.h * convt.w, nw = (gsize) convt.c_in * convt.c_out * 4;
    gsize ny = (gsize) convt.c_out * oh * ow;
    g_autofree float *x = random_array (nx), *w = random_array (nw);
    g_autofree float *rx = rounded (x, nx), *rw = rounded (w, nw);
    g_autofree float *want = g_new (float, ny), *fp32 = g_new (float, ny);
    float *dx_ = to_gpu (x, nx), *dw_ = to_gpu (w, nw), *dout = gpu_new (ny);

    assert_ok (lode_ops_cuda_conv_transpose2d (ctx, dout, dx_, dw_, NULL, &convt));
    lode_ops_conv_transpose2d (want, rx, rw, NULL, &convt);
    lode_ops_round_bf16 (want, want, ny);
    lode_ops_conv_transpose2d (fp32, x, w, NULL, &convt);
    compare_bf16 (dout, want, fp32, ny, TOL_BF16_OUT, "bf16 conv_transpose2d");
    lode_ops_cuda_release (dx_);
    lode_ops_cuda_release (dw_);
  }

  /* the U-Net's stem on 6 bands: in bf16 where cuDNN has an algorithm for
   * 6 channels, else with fp32 operands; near the fp32 result either way */
  {
    const LodeConvShape stem = { 2, 6, 32, 32, 64, 7, 7, 2, 2, 3, 3, 1, 1, 1, 0, 0 };
    int oh, ow;
    g_assert_true (lode_conv_shape_out_size (&stem, &oh, &ow));
    gsize nx = (gsize) 2 * 6 * 32 * 32, nw = (gsize) 64 * 6 * 49, ny = (gsize) 2 * 64 * oh * ow;
    g_autofree float *x = random_array (nx), *w = random_array (nw), *fp32 = g_new (float, ny);
    float *dx_ = to_gpu (x, nx), *dw_ = to_gpu (w, nw), *dout = gpu_new (ny);

    assert_ok (lode_ops_cuda_conv2d (ctx, dout, dx_, dw_, NULL, &stem));
    lode_ops_conv2d (fp32, x, w, NULL, &stem);
    compare (dout, fp32, ny, TOL_BF16_OUT, "bf16 mode, 6-channel stem");
    lode_ops_cuda_release (dx_);
    lode_ops_cuda_release (dw_);
  }

  /* back to fp32: the CPU's results again */
  assert_ok (lode_ops_cuda_set_precision (ctx, LODE_PRECISION_FP32));
  {
    g_autofree float *a = random_array ((gsize) m * k), *b = random_array ((gsize) k * n);
    g_autofree float *want = g_new (float, m * n);
    float *da = to_gpu (a, (gsize) m * k), *db = to_gpu (b, (gsize) k * n), *dc = gpu_new (m * n);

    assert_ok (lode_ops_cuda_gemm (ctx, 0, 1, m, n, k, 1.0f, da, db, 0.0f, dc));
    lode_ops_gemm (FALSE, TRUE, m, n, k, 1.0f, a, b, 0.0f, want);
    compare (dc, want, (gsize) m * n, TOL_PRODUCT, "fp32 gemm after bf16");
    lode_ops_cuda_release (da);
    lode_ops_cuda_release (db);
  }
}

#else

static void
test_skip_without_cuda (void)
{
  g_test_skip ("built without CUDA");
}

#endif /* LODE_HAVE_CUDA */

int
main (int argc, char **argv)
{
  int ret;

  g_test_init (&argc, &argv, NULL);
#if LODE_HAVE_CUDA
  rand_gen = g_rand_new_with_seed (42);
  g_test_add_func ("/ops-gpu/gemm", test_gemm);
  g_test_add_func ("/ops-gpu/gemm-batched", test_gemm_batched);
  g_test_add_func ("/ops-gpu/matmul-linear", test_matmul_linear);
  g_test_add_func ("/ops-gpu/conv2d", test_conv2d);
  g_test_add_func ("/ops-gpu/conv-transpose2d", test_conv_transpose2d);
  g_test_add_func ("/ops-gpu/norms", test_norms);
  g_test_add_func ("/ops-gpu/elementwise", test_elementwise);
  g_test_add_func ("/ops-gpu/softmax", test_softmax);
  g_test_add_func ("/ops-gpu/attention", test_attention);
  g_test_add_func ("/ops-gpu/pool-resize", test_pool_resize);
  g_test_add_func ("/ops-gpu/layout", test_layout);
  g_test_add_func ("/ops-gpu/out-of-memory", test_out_of_memory);
  g_test_add_func ("/ops-gpu/round-bf16", test_round_bf16);
  g_test_add_func ("/ops-gpu/gemm-strided", test_gemm_strided);
  g_test_add_func ("/ops-gpu/bf16", test_bf16);
#else
  g_test_add_func ("/ops-gpu/skip", test_skip_without_cuda);
#endif
  ret = g_test_run ();
#if LODE_HAVE_CUDA
  if (ctx)
    lode_ops_cuda_free (ctx);
  g_rand_free (rand_gen);
#endif
  return ret;
}
