/* Prithvi-EO-2.0 + UperNet on CUDA against the CPU: the kernels of
 * lode-prithvi-cuda.h against their CPU twins, and a whole reduced model
 * (same generated weights on both devices) compared on its encoder
 * features, its logits and its masks, and trained a few steps (the decoder
 * alone, and with unfrozen encoder blocks). Suite 'gpu': every test skips itself
 * without CUDA in the build or a device in the machine.
 *
 * Errors are normalised: max |gpu - cpu| / (max |cpu| + 1e-6).
 *   TOL_EXACT   1e-6  layout kernels (heads split/merge, token assembly,
 *                     tokens to image, copy) move values or add three floats
 *                     in the CPU's order: bit-identical but for a fused
 *                     multiply-add the compiler may form (none here).
 *   TOL_POOL    1e-6  adaptive average pooling: the same float sum in the
 *                     same order, one division.
 *   TOL_MODEL   1e-3  the whole model, fp32 with TF32 off: cuBLAS and cuDNN
 *                     sum the products (widths 64-256, patch 16 x 16 x 6)
 *                     in another order than OpenBLAS, ~1e-6 relative per
 *                     product; four transformer blocks (layer norms divide
 *                     by small deviations), then eleven convolutions and
 *                     batch norms of the decoder compound that to ~1e-5;
 *                     1e-3 leaves room and still fails on any indexing or
 *                     missing-upload error (O(1)) or TF32 (~1e-3 per
 *                     product, compounding to 1e-2).
 *   masks: at least 99.9 % of the pixels agree; the rest are near-ties
 *   whose logits differ by less than the tolerance above. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lode-device.h"
#include "lode-grad.h"
#include "lode-prithvi-backend.h"
#include "lode-prithvi.h"
#include "lode-upernet.h"
#if LODE_HAVE_CUDA
#include "lode-prithvi-cuda.h"
#endif

#define TOL_EXACT 1e-6
#define TOL_POOL 1e-6
#define TOL_MODEL 1e-3

static gboolean
gpu_present (void)
{
  if (lode_device_cuda_count () == 0)
    {
      g_test_skip ("no CUDA device");
      return FALSE;
    }
  return TRUE;
}

static double
normalised_error (const float *gpu, const float *cpu, gsize n)
{
  double diff = 0.0, scale = 0.0;

  for (gsize i = 0; i < n; i++)
    {
      g_assert_true (isfinite (gpu[i]));
      diff = MAX (diff, fabs ((double) gpu[i] - cpu[i]));
      scale = MAX (scale, fabs ((double) cpu[i]));
    }
  return diff / (scale + 1e-6);
}

/* ---- the kernels ----------------------------------------------------------- */

#if LODE_HAVE_CUDA

static LodeOpsCuda *ctx;

static float *
random_array (GRand *rng, gsize n, double lo, double hi)
{
  float *a = g_new (float, n ? n : 1);

  for (gsize i = 0; i < n; i++)
    a[i] = (float) g_rand_double_range (rng, lo, hi);
  return a;
}

static void
assert_ok (int status)
{
  if (status != 0)
    g_error ("CUDA call failed (%d): %s", status, lode_ops_cuda_last_message ());
}

static float *
to_gpu (const float *host, gsize n)
{
  void *d = NULL;

  assert_ok (lode_ops_cuda_alloc (&d, n * sizeof (float)));
  assert_ok (lode_ops_cuda_upload (ctx, d, host, n * sizeof (float)));
  return d;
}

static float *
from_gpu (const float *dev, gsize n)
{
  float *h = g_new (float, n);

  assert_ok (lode_ops_cuda_download (ctx, h, dev, n * sizeof (float)));
  return h;
}

static gboolean
kernels_ready (void)
{
  if (!gpu_present ())
    return FALSE;
  if (ctx == NULL)
    assert_ok (lode_ops_cuda_new (&ctx));
  return TRUE;
}

static void
test_heads_copy (void)
{
  g_autoptr(GRand) rng = g_rand_new_with_seed (1);
  const int n = 3, tokens = 17, heads = 4, hd = 8, e = heads * hd;
  gsize rows_count = (gsize) n * tokens * 3 * e, hm_count = (gsize) n * heads * tokens * hd;
  g_autofree float *rows = NULL, *hm_cpu = NULL, *hm_gpu = NULL, *back_cpu = NULL, *back_gpu = NULL;
  float *d_rows, *d_hm;

  if (!kernels_ready ())
    return;
  rows = random_array (rng, rows_count, -1, 1);
  hm_cpu = g_new (float, hm_count);
  d_rows = to_gpu (rows, rows_count);
  d_hm = to_gpu (hm_cpu, hm_count);
  /* to heads from the k third of qkv rows (column e, stride 3e) */
  lode_prithvi_heads_copy (rows, 3 * (gsize) e, e, hm_cpu, n, tokens, heads, hd, TRUE);
  assert_ok (lode_prithvi_cuda_heads_copy (ctx, d_rows, 3 * (gsize) e, e, d_hm, n, tokens, heads, hd, TRUE));
  hm_gpu = from_gpu (d_hm, hm_count);
  g_assert_cmpfloat (normalised_error (hm_gpu, hm_cpu, hm_count), <=, TOL_EXACT);
  /* and back, merged into the v third */
  lode_prithvi_heads_copy (rows, 3 * (gsize) e, 2 * e, hm_cpu, n, tokens, heads, hd, FALSE);
  assert_ok (lode_prithvi_cuda_heads_copy (ctx, d_rows, 3 * (gsize) e, 2 * e, d_hm, n, tokens, heads, hd, FALSE));
  back_gpu = from_gpu (d_rows, rows_count);
  g_assert_cmpfloat (normalised_error (back_gpu, rows, rows_count), <=, TOL_EXACT);
  lode_ops_cuda_release (d_rows);
  lode_ops_cuda_release (d_hm);
}

static void
test_tokens (void)
{
  g_autoptr(GRand) rng = g_rand_new_with_seed (2);
  const int n = 2, gh = 3, gw = 5, l = gh * gw, e = 24;
  gsize x_count = (gsize) n * (l + 1) * e, img_count = (gsize) n * e * l;
  g_autofree float *patches = random_array (rng, img_count, -1, 1);
  g_autofree float *pos = random_array (rng, (gsize) l * e, -1, 1);
  g_autofree float *enc = random_array (rng, (gsize) n * e, -1, 1);
  g_autofree float *cls = random_array (rng, e, -1, 1);
  g_autofree float *x_cpu = g_new (float, x_count), *img_cpu = g_new (float, img_count);
  g_autofree float *x_gpu = NULL, *img_gpu = NULL, *copy_gpu = NULL;
  float *d_p, *d_pos, *d_enc, *d_cls, *d_x, *d_img, *d_copy;

  if (!kernels_ready ())
    return;
  d_p = to_gpu (patches, img_count), d_pos = to_gpu (pos, (gsize) l * e);
  d_enc = to_gpu (enc, (gsize) n * e), d_cls = to_gpu (cls, e);
  d_x = to_gpu (x_cpu, x_count), d_img = to_gpu (img_cpu, img_count), d_copy = to_gpu (x_cpu, x_count);
  lode_prithvi_tokens_assemble (x_cpu, patches, pos, enc, cls, n, l, e);
  assert_ok (lode_prithvi_cuda_tokens_assemble (ctx, d_x, d_p, d_pos, d_enc, d_cls, n, l, e));
  x_gpu = from_gpu (d_x, x_count);
  g_assert_cmpfloat (normalised_error (x_gpu, x_cpu, x_count), <=, TOL_EXACT);

  lode_prithvi_tokens_to_image (img_cpu, x_cpu, n, gh, gw, e);
  assert_ok (lode_prithvi_cuda_tokens_to_image (ctx, d_img, d_x, n, gh, gw, e));
  img_gpu = from_gpu (d_img, img_count);
  g_assert_cmpfloat (normalised_error (img_gpu, img_cpu, img_count), <=, TOL_EXACT);

  assert_ok (lode_ops_cuda_copy (ctx, d_copy, d_x, x_count * sizeof (float)));
  copy_gpu = from_gpu (d_copy, x_count);
  g_assert_cmpfloat (normalised_error (copy_gpu, x_cpu, x_count), <=, TOL_EXACT);
  lode_ops_cuda_release (d_p), lode_ops_cuda_release (d_pos), lode_ops_cuda_release (d_enc);
  lode_ops_cuda_release (d_cls), lode_ops_cuda_release (d_x), lode_ops_cuda_release (d_img);
  lode_ops_cuda_release (d_copy);
}

static void
test_adaptive_avg_pool (void)
{
  g_autoptr(GRand) rng = g_rand_new_with_seed (3);
  /* the pyramid's 1, 2, 3, 6 on a 4 x 5 map: 6 > 4 makes cells overlap */
  const int nc = 7, h = 4, w = 5, scales[] = { 1, 2, 3, 6 };
  g_autofree float *in = random_array (rng, (gsize) nc * h * w, -2, 2);
  float *d_in;

  if (!kernels_ready ())
    return;
  d_in = to_gpu (in, (gsize) nc * h * w);
  for (gsize i = 0; i < G_N_ELEMENTS (scales); i++)
    {
      int p = scales[i];
      gsize count = (gsize) nc * p * p;
      g_autofree float *cpu = g_new (float, count), *gpu = NULL;
      float *d_out = to_gpu (cpu, count);

      lode_upernet_adaptive_avg_pool (cpu, in, nc, h, w, p, p);
      assert_ok (lode_prithvi_cuda_adaptive_avg_pool (ctx, d_out, d_in, nc, h, w, p, p));
      gpu = from_gpu (d_out, count);
      g_assert_cmpfloat (normalised_error (gpu, cpu, count), <=, TOL_POOL);
      lode_ops_cuda_release (d_out);
    }
  lode_ops_cuda_release (d_in);
}

/* The decoder's backward kernels. resize_backward scatters with atomicAdd
 * (four adds per input in varying order, ~1e-7 relative): TOL_POINTWISE
 * 1e-5. GELU's derivative is computed in double on both sides (CUDA's erf
 * and exp within 2 ulp): 1e-6. The pooling backward gathers in the CPU's
 * order: exact. up2's backward sums products with cuBLAS: TOL_PRODUCT 1e-4
 * as tests/test-ops-gpu.c. */
#define TOL_POINTWISE 1e-5
#define TOL_PRODUCT 1e-4

static void
test_backward_kernels (void)
{
  g_autoptr(GRand) rng = g_rand_new_with_seed (4);
  const int nc = 5, h = 3, w = 4, oh = 12, ow = 16;
  gsize in_count = (gsize) nc * h * w, out_count = (gsize) nc * oh * ow;
  g_autofree float *dy = NULL, *dx0 = NULL, *x = NULL;
  float *d_dy, *d_dx, *d_x;

  if (!kernels_ready ())
    return;
  dy = random_array (rng, out_count, -1, 1);
  dx0 = random_array (rng, out_count, -1, 1);
  x = random_array (rng, out_count, -3, 3);
  d_dy = to_gpu (dy, out_count), d_x = to_gpu (x, out_count);
  /* resize backward, corners aligned or not, overwriting or adding */
  for (int mode = 0; mode < 4; mode++)
    {
      g_autofree float *cpu = g_memdup2 (dx0, in_count * sizeof (float)), *gpu = NULL;

      d_dx = to_gpu (cpu, in_count);
      lode_upernet_resize_backward (cpu, dy, nc, h, w, oh, ow, mode & 1, mode >> 1);
      assert_ok (lode_prithvi_cuda_resize_backward (ctx, d_dx, d_dy, nc, h, w, oh, ow, mode & 1, mode >> 1));
      gpu = from_gpu (d_dx, in_count);
      g_assert_cmpfloat (normalised_error (gpu, cpu, in_count), <=, TOL_POINTWISE);
      lode_ops_cuda_release (d_dx);
    }
  /* GELU's derivative */
  {
    g_autofree float *cpu = g_new (float, out_count), *gpu = NULL;

    d_dx = to_gpu (cpu, out_count);
    lode_grad_gelu (cpu, dy, x, out_count);
    assert_ok (lode_prithvi_cuda_gelu_backward (ctx, d_dx, d_dy, d_x, out_count));
    gpu = from_gpu (d_dx, out_count);
    g_assert_cmpfloat (normalised_error (gpu, cpu, out_count), <=, 1e-6);
    lode_ops_cuda_release (d_dx);
  }
  /* adaptive average pooling's backward, the pyramid's 6 on a 4 x 5 map
   * (overlapping cells) added to dx */
  {
    const int ph = 4, pw = 5, p = 6;
    g_autofree float *cpu = g_memdup2 (dx0, (gsize) nc * ph * pw * sizeof (float)), *gpu = NULL;

    d_dx = to_gpu (cpu, (gsize) nc * ph * pw);
    lode_upernet_adaptive_avg_pool_backward (cpu, dy, nc, ph, pw, p, p);
    assert_ok (lode_prithvi_cuda_adaptive_avg_pool_backward (ctx, d_dx, d_dy, nc, ph, pw, p, p));
    gpu = from_gpu (d_dx, (gsize) nc * ph * pw);
    g_assert_cmpfloat (normalised_error (gpu, cpu, (gsize) nc * ph * pw), <=, TOL_EXACT);
    lode_ops_cuda_release (d_dx);
  }
  lode_ops_cuda_release (d_dy), lode_ops_cuda_release (d_x);

  /* up2's backward: 2 images, 6 -> 4 channels, 3 x 5 */
  {
    const int n = 2, ci = 6, co = 4, uh = 3, uw = 5;
    gsize xs = (gsize) n * ci * uh * uw, ys = (gsize) n * co * 4 * uh * uw, ws = (gsize) ci * co * 4;
    g_autofree float *ux = random_array (rng, xs, -1, 1), *udy = random_array (rng, ys, -1, 1);
    g_autofree float *wt = random_array (rng, ws, -1, 1), *dw = random_array (rng, ws, -1, 1);
    g_autofree float *db = random_array (rng, co, -1, 1), *udx = g_new (float, xs);
    g_autofree float *gdw = NULL, *gdb = NULL, *gdx = NULL;
    float *d_ux = to_gpu (ux, xs), *d_udy = to_gpu (udy, ys), *d_wt = to_gpu (wt, ws);
    float *d_dw = to_gpu (dw, ws), *d_db = to_gpu (db, co), *d_udx = to_gpu (udx, xs);

    lode_upernet_up2_backward (dw, db, udx, ux, udy, wt, n, ci, co, uh, uw);
    assert_ok (lode_prithvi_cuda_up2_backward (ctx, d_dw, d_db, d_udx, d_ux, d_udy, d_wt, n, ci, co, uh, uw));
    gdw = from_gpu (d_dw, ws), gdb = from_gpu (d_db, co), gdx = from_gpu (d_udx, xs);
    g_assert_cmpfloat (normalised_error (gdw, dw, ws), <=, TOL_PRODUCT);
    g_assert_cmpfloat (normalised_error (gdb, db, co), <=, TOL_PRODUCT);
    g_assert_cmpfloat (normalised_error (gdx, udx, xs), <=, TOL_PRODUCT);
    lode_ops_cuda_release (d_ux), lode_ops_cuda_release (d_udy), lode_ops_cuda_release (d_wt);
    lode_ops_cuda_release (d_dw), lode_ops_cuda_release (d_db), lode_ops_cuda_release (d_udx);
  }
}

/* The backward kernels of the encoder's blocks. Products through cuBLAS:
 * TOL_PRODUCT as above. The softmax backward subtracts each row's dot
 * product of probabilities and gradients, cancelling up to about ten times
 * the rounding of the products before it: TOL_SOFTMAX 5e-4 for dq and dk.
 * The layer norm's statistics are summed in double on both sides, in
 * another order (a few 1e-16 relative), then the same float operations in
 * the same order; its weight's and bias's gradients and the linear layer's
 * bias gradient are float sums over the rows in the CPU's order:
 * TOL_POINTWISE. Adding a map to the tokens moves and adds one float per
 * element: TOL_EXACT. Gradients are added to random starting values, as
 * the blocks accumulate them. */
#define TOL_SOFTMAX 5e-4

static void
test_block_backward_kernels (void)
{
  g_autoptr(GRand) rng = g_rand_new_with_seed (6);

  if (!kernels_ready ())
    return;
  /* linear: 37 rows, 300 -> 70 features */
  {
    const int rows = 37, in_f = 300, out_f = 70;
    gsize xs = (gsize) rows * in_f, ys = (gsize) rows * out_f, ws = (gsize) out_f * in_f;
    g_autofree float *x = random_array (rng, xs, -1, 1), *dy = random_array (rng, ys, -1, 1);
    g_autofree float *wt = random_array (rng, ws, -1, 1), *dw = random_array (rng, ws, -1, 1);
    g_autofree float *db = random_array (rng, out_f, -1, 1), *dx = g_new (float, xs);
    g_autofree float *gdw = NULL, *gdb = NULL, *gdx = NULL;
    float *d_x = to_gpu (x, xs), *d_dy = to_gpu (dy, ys), *d_wt = to_gpu (wt, ws);
    float *d_dw = to_gpu (dw, ws), *d_db = to_gpu (db, out_f), *d_dx = to_gpu (dx, xs);

    lode_grad_linear (dx, dw, db, dy, x, wt, rows, in_f, out_f);
    assert_ok (lode_prithvi_cuda_linear_backward (ctx, d_dx, d_dw, d_db, d_dy, d_x, d_wt, rows, in_f, out_f));
    gdw = from_gpu (d_dw, ws), gdb = from_gpu (d_db, out_f), gdx = from_gpu (d_dx, xs);
    g_assert_cmpfloat (normalised_error (gdw, dw, ws), <=, TOL_PRODUCT);
    g_assert_cmpfloat (normalised_error (gdb, db, out_f), <=, TOL_POINTWISE);
    g_assert_cmpfloat (normalised_error (gdx, dx, xs), <=, TOL_PRODUCT);
    lode_ops_cuda_release (d_x), lode_ops_cuda_release (d_dy), lode_ops_cuda_release (d_wt);
    lode_ops_cuda_release (d_dw), lode_ops_cuda_release (d_db), lode_ops_cuda_release (d_dx);
  }
  /* layer norm: 41 rows of 300 (more than a block of threads), with the
   * weight's and bias's gradients, then the input's alone */
  for (int with_params = 1; with_params >= 0; with_params--)
    {
      const int rows = 41, c = 300;
      gsize xs = (gsize) rows * c;
      g_autofree float *x = random_array (rng, xs, -3, 5), *dy = random_array (rng, xs, -1, 1);
      g_autofree float *wt = random_array (rng, c, 0.5, 1.5), *dw = random_array (rng, c, -1, 1);
      g_autofree float *db = random_array (rng, c, -1, 1), *dx = g_new (float, xs);
      g_autofree float *gdw = NULL, *gdb = NULL, *gdx = NULL;
      float *d_x = to_gpu (x, xs), *d_dy = to_gpu (dy, xs), *d_wt = to_gpu (wt, c);
      float *d_dw = to_gpu (dw, c), *d_db = to_gpu (db, c), *d_dx = to_gpu (dx, xs);

      lode_grad_layer_norm (dx, with_params ? dw : NULL, with_params ? db : NULL, dy, x, wt, rows, c, 1e-5f);
      assert_ok (lode_prithvi_cuda_layer_norm_backward (ctx, d_dx, with_params ? d_dw : NULL,
                                                        with_params ? d_db : NULL, d_dy, d_x, d_wt, rows, c, 1e-5f));
      gdw = from_gpu (d_dw, c), gdb = from_gpu (d_db, c), gdx = from_gpu (d_dx, xs);
      g_assert_cmpfloat (normalised_error (gdx, dx, xs), <=, TOL_POINTWISE);
      g_assert_cmpfloat (normalised_error (gdw, dw, c), <=, TOL_POINTWISE);
      g_assert_cmpfloat (normalised_error (gdb, db, c), <=, TOL_POINTWISE);
      lode_ops_cuda_release (d_x), lode_ops_cuda_release (d_dy), lode_ops_cuda_release (d_wt);
      lode_ops_cuda_release (d_dw), lode_ops_cuda_release (d_db), lode_ops_cuda_release (d_dx);
    }
  /* attention kept for training and its backward: 6 heads, 13 queries,
   * 19 keys (lq != lk catches a transposed product), width 8 */
  {
    const int bh = 6, lq = 13, lk = 19, d = 8;
    gsize qs = (gsize) bh * lq * d, ks = (gsize) bh * lk * d, ps = (gsize) bh * lq * lk;
    g_autofree float *q = random_array (rng, qs, -2, 2), *k = random_array (rng, ks, -2, 2);
    g_autofree float *v = random_array (rng, ks, -1, 1), *dout = random_array (rng, qs, -1, 1);
    g_autofree float *out = g_new (float, qs), *probs = g_new (float, ps);
    g_autofree float *dq = g_new (float, qs), *dk = g_new (float, ks), *dv = g_new (float, ks);
    g_autofree float *gout = NULL, *gprobs = NULL, *gdq = NULL, *gdk = NULL, *gdv = NULL;
    float *d_q = to_gpu (q, qs), *d_k = to_gpu (k, ks), *d_v = to_gpu (v, ks), *d_dout = to_gpu (dout, qs);
    float *d_out = to_gpu (out, qs), *d_probs = to_gpu (probs, ps);
    float *d_dq = to_gpu (dq, qs), *d_dk = to_gpu (dk, ks), *d_dv = to_gpu (dv, ks);

    lode_grad_attention_forward (out, probs, q, k, v, bh, lq, lk, d);
    assert_ok (lode_prithvi_cuda_attention_forward (ctx, d_out, d_probs, d_q, d_k, d_v, bh, lq, lk, d));
    gout = from_gpu (d_out, qs), gprobs = from_gpu (d_probs, ps);
    g_assert_cmpfloat (normalised_error (gout, out, qs), <=, TOL_PRODUCT);
    g_assert_cmpfloat (normalised_error (gprobs, probs, ps), <=, TOL_PRODUCT);
    /* the backward from the CPU's probabilities on both sides */
    lode_grad_attention (dq, dk, dv, dout, q, k, v, probs, bh, lq, lk, d);
    lode_ops_cuda_release (d_probs);
    d_probs = to_gpu (probs, ps);
    assert_ok (lode_prithvi_cuda_attention_backward (ctx, d_dq, d_dk, d_dv, d_dout, d_q, d_k, d_v, d_probs, bh, lq,
                                                     lk, d));
    gdq = from_gpu (d_dq, qs), gdk = from_gpu (d_dk, ks), gdv = from_gpu (d_dv, ks);
    g_assert_cmpfloat (normalised_error (gdv, dv, ks), <=, TOL_PRODUCT);
    g_assert_cmpfloat (normalised_error (gdq, dq, qs), <=, TOL_SOFTMAX);
    g_assert_cmpfloat (normalised_error (gdk, dk, ks), <=, TOL_SOFTMAX);
    lode_ops_cuda_release (d_q), lode_ops_cuda_release (d_k), lode_ops_cuda_release (d_v);
    lode_ops_cuda_release (d_dout), lode_ops_cuda_release (d_out), lode_ops_cuda_release (d_probs);
    lode_ops_cuda_release (d_dq), lode_ops_cuda_release (d_dk), lode_ops_cuda_release (d_dv);
  }
  /* a map's gradient added to the patch tokens (the class token kept) */
  {
    const int n = 2, gh = 3, gw = 5, e = 24;
    gsize ts = (gsize) n * (gh * gw + 1) * e, is = (gsize) n * e * gh * gw;
    g_autofree float *tokens = random_array (rng, ts, -1, 1), *image = random_array (rng, is, -1, 1);
    g_autofree float *gtokens = NULL;
    float *d_tokens = to_gpu (tokens, ts), *d_image = to_gpu (image, is);

    lode_prithvi_image_to_tokens_add (tokens, image, n, gh, gw, e);
    assert_ok (lode_prithvi_cuda_image_to_tokens_add (ctx, d_tokens, d_image, n, gh, gw, e));
    gtokens = from_gpu (d_tokens, ts);
    g_assert_cmpfloat (normalised_error (gtokens, tokens, ts), <=, TOL_EXACT);
    lode_ops_cuda_release (d_tokens), lode_ops_cuda_release (d_image);
  }
}

#endif /* LODE_HAVE_CUDA */

/* ---- the whole model ---------------------------------------------------- */

/* A reduced Prithvi (width 64, 4 blocks, 4 heads, MLP 256) with a UperNet of
 * 32 channels and 3 classes, the same weights for every call. */
static LodePrithviModel *
reduced_model (LodeDeviceKind device, GError **error)
{
  LodePrithviConfig config;
  LodeUpernetConfig dconfig = { 64, 32, 3 };
  LodePrithviEncoder *encoder;
  LodeUpernet *decoder;

  lode_prithvi_config_init (&config, "300M");
  config.embed_dim = 64, config.depth = 4, config.loaded_depth = 4, config.num_heads = 4, config.mlp_hidden = 256;
  encoder = lode_prithvi_encoder_new (&config, 11, error);
  g_assert_nonnull (encoder);
  decoder = lode_upernet_new (&dconfig, 12, error);
  g_assert_nonnull (decoder);
  return lode_prithvi_model_new_on (encoder, decoder, device, error);
}

/* n patches of 6 bands around the published means. */
static float *
patches (int n, int h, int w)
{
  g_autoptr(GRand) rng = g_rand_new_with_seed (5);
  gsize plane = (gsize) h * w;
  float *raw = g_new (float, (gsize) n * LODE_PRITHVI_N_BANDS * plane);

  for (int b = 0; b < n * LODE_PRITHVI_N_BANDS; b++)
    {
      int c = b % LODE_PRITHVI_N_BANDS;

      for (gsize p = 0; p < plane; p++)
        raw[b * plane + p] = (float) (lode_prithvi_band_mean[c]
                                      + lode_prithvi_band_std[c] * g_rand_double_range (rng, -2, 2));
    }
  return raw;
}

static void
compare_model (int n, int h, int w)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodePrithviModel) cpu = reduced_model (LODE_DEVICE_CPU, &error);
  g_autoptr(LodePrithviModel) gpu = reduced_model (LODE_DEVICE_CUDA, &error);
  g_autofree float *raw = patches (n, h, w);
  int k = 3, gh = (h + 31) / 32 * 2, gw = (w + 31) / 32 * 2;
  gsize map_count = (gsize) n * 64 * gh * gw, logit_count = (gsize) n * k * h * w, agree = 0;
  g_autofree float *logits_cpu = g_new (float, logit_count), *logits_gpu = g_new (float, logit_count);
  g_autofree guint8 *masks_cpu = g_new (guint8, (gsize) n * h * w), *masks_gpu = g_new (guint8, (gsize) n * h * w);

  g_assert_no_error (error);
  g_assert_cmpint (lode_prithvi_model_get_device (gpu), ==, LODE_DEVICE_CUDA);
  for (int i = 0; i < 4; i++)
    {
      g_autofree float *fc = g_new (float, map_count), *fg = g_new (float, map_count);
      float *const mc[4] = { fc, fc, fc, fc }, *const mg[4] = { fg, fg, fg, fg };
      float *oc[4], *og[4];

      /* feature i read into its own buffer, the others thrown away */
      memcpy (oc, mc, sizeof oc), memcpy (og, mg, sizeof og);
      for (int j = 0; j < 4; j++)
        if (j != i)
          oc[j] = g_new (float, map_count), og[j] = g_new (float, map_count);
      g_assert_true (lode_prithvi_model_features (cpu, raw, n, LODE_PRITHVI_N_BANDS, h, w, NULL, oc, &error));
      g_assert_true (lode_prithvi_model_features (gpu, raw, n, LODE_PRITHVI_N_BANDS, h, w, NULL, og, &error));
      g_assert_no_error (error);
      g_assert_cmpfloat (normalised_error (fg, fc, map_count), <=, TOL_MODEL);
      for (int j = 0; j < 4; j++)
        if (j != i)
          g_free (oc[j]), g_free (og[j]);
    }
  g_assert_true (lode_prithvi_model_predict (cpu, raw, n, LODE_PRITHVI_N_BANDS, h, w, NULL, logits_cpu, masks_cpu,
                                             NULL, &error));
  g_assert_true (lode_prithvi_model_predict (gpu, raw, n, LODE_PRITHVI_N_BANDS, h, w, NULL, logits_gpu, masks_gpu,
                                             NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpfloat (normalised_error (logits_gpu, logits_cpu, logit_count), <=, TOL_MODEL);
  for (gsize p = 0; p < (gsize) n * h * w; p++)
    agree += masks_cpu[p] == masks_gpu[p];
  g_assert_cmpfloat ((double) agree / ((gsize) n * h * w), >=, 0.999);
}

/* bf16 mixed precision on the GPU against fp32 on the CPU: every product
 * and convolution takes operands rounded to 8 bits of mantissa (~4e-3
 * relative each) through four blocks and the decoder's nine convolutions,
 * batch norm renormalising between them: the logits stay within a few 1e-2
 * of their largest value (TOL_BF16 1e-1), while a product wired to the
 * wrong operand is O(1) off. They must also differ from fp32 (> 1e-5), or
 * the mode did nothing. */
#define TOL_BF16 1e-1

static void
test_model_bf16 (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodePrithviModel) cpu = NULL, gpu = NULL;
  g_autofree float *raw = NULL, *lc = NULL, *lg = NULL;
  g_autofree guint8 *mc = NULL, *mg = NULL;
  int n = 2, h = 64, w = 64;
  gsize count = (gsize) n * 3 * h * w;
  double e;

  if (!gpu_present ())
    return;
  cpu = reduced_model (LODE_DEVICE_CPU, &error);
  gpu = reduced_model (LODE_DEVICE_CUDA, &error);
  g_assert_no_error (error);
  g_assert_true (lode_prithvi_model_set_precision (gpu, LODE_PRECISION_BF16, &error));
  g_assert_no_error (error);
  raw = patches (n, h, w);
  lc = g_new (float, count), lg = g_new (float, count);
  mc = g_new (guint8, (gsize) n * h * w), mg = g_new (guint8, (gsize) n * h * w);
  g_assert_true (lode_prithvi_model_predict (cpu, raw, n, LODE_PRITHVI_N_BANDS, h, w, NULL, lc, mc, NULL, &error));
  g_assert_true (lode_prithvi_model_predict (gpu, raw, n, LODE_PRITHVI_N_BANDS, h, w, NULL, lg, mg, NULL, &error));
  g_assert_no_error (error);
  e = normalised_error (lg, lc, count);
  g_test_message ("bf16 logits: %.3g", e);
  g_assert_cmpfloat (e, <, TOL_BF16);
  g_assert_cmpfloat (e, >, 1e-5);
}

/* 64 x 64: a 4 x 4 grid, no padding, logits at the decoder's size. */
static void
test_model_64 (void)
{
  if (gpu_present ())
    compare_model (2, 64, 64);
}

/* 50 x 70: padded to 64 x 96, logits resized and cropped; 9 patches span
 * two groups of prediction. */
static void
test_model_padded (void)
{
  if (gpu_present ())
    compare_model (9, 50, 70);
}

/* One decoder training step (flips, dropout, a padded size) on both
 * devices from the same weights and batch: the loss, every gradient, every
 * parameter and running statistic after AdamW. The loss comes from logits
 * compared at TOL_MODEL, so it agrees to ~1e-5 relative (TOL_LOSS 1e-4).
 * Gradients go back through eleven batch norms, each subtracting channel
 * means (cancellation lifts fp32 differences relative to a tensor's
 * largest value by up to ~10x): TOL_GRAD 2e-3 of each tensor's largest
 * gradient. After AdamW's first step a parameter moves by about lr sign(g):
 * where a tiny gradient's sign differs between devices the parameters
 * differ by up to 2 lr, so each may differ by 2 lr + 1e-6, and at most 1 %
 * of them by more than 1e-5. The model moves back to the CPU afterwards
 * with what it learnt. */
#define TOL_LOSS 1e-4
#define TOL_GRAD 2e-3

static void
test_train_step (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodePrithviModel) cpu = NULL, gpu = NULL;
  const int n = 3, h = 50, w = 70;
  g_autofree float *raw = NULL;
  g_autofree guint8 *masks = g_new (guint8, (gsize) n * h * w);
  LodePrithviTrainOptions options;
  LodeUpernet *dc, *dg;
  double loss_cpu = 0.0, loss_gpu = 0.0;
  gsize far = 0, total = 0;

  if (!gpu_present ())
    return;
  cpu = reduced_model (LODE_DEVICE_CPU, &error);
  gpu = reduced_model (LODE_DEVICE_CUDA, &error);
  g_assert_no_error (error);
  raw = patches (n, h, w);
  for (gsize i = 0; i < (gsize) n * h * w; i++)
    masks[i] = (guint8) ((i / 9 + i / 700) % 4 == 3 ? 255 : (i / 9 + i / 700) % 3);
  lode_prithvi_train_options_init (&options);
  options.seed = 7;
  g_assert_true (lode_prithvi_model_train_step (cpu, &options, raw, masks, n, LODE_PRITHVI_N_BANDS, h, w, NULL, 1,
                                                &loss_cpu, &error));
  g_assert_true (lode_prithvi_model_train_step (gpu, &options, raw, masks, n, LODE_PRITHVI_N_BANDS, h, w, NULL, 1,
                                                &loss_gpu, &error));
  g_assert_no_error (error);
  g_assert_cmpfloat (fabs (loss_gpu - loss_cpu), <=, TOL_LOSS * fabs (loss_cpu));
  g_assert_true (lode_prithvi_model_sync_host (gpu, &error));
  g_assert_no_error (error);
  dc = lode_prithvi_model_get_decoder (cpu), dg = lode_prithvi_model_get_decoder (gpu);
  for (guint t = 0; t < lode_upernet_n_tensors (dc); t++)
    {
      gsize count = lode_upernet_tensor_numel (dc, t);
      const float *pc = lode_upernet_tensor_data (dc, t), *pg = lode_upernet_tensor_data (dg, t);

      if (lode_upernet_tensor_is_buffer (dc, t))
        {
          g_assert_cmpfloat (normalised_error (pg, pc, count), <=, TOL_MODEL);
          continue;
        }
      if (normalised_error (lode_upernet_tensor_grad (dg, t), lode_upernet_tensor_grad (dc, t), count) > TOL_GRAD)
        g_error ("gradient of %s: error %g", lode_upernet_tensor_name (dc, t),
                 normalised_error (lode_upernet_tensor_grad (dg, t), lode_upernet_tensor_grad (dc, t), count));
      for (gsize i = 0; i < count; i++)
        {
          double d = fabs ((double) pg[i] - pc[i]);

          g_assert_cmpfloat (d, <=, 2.0 * options.lr + 1e-6);
          far += d > 1e-5;
        }
      total += count;
    }
  g_assert_cmpfloat ((double) far / total, <=, 0.01);

  /* back on the CPU with the trained values */
  g_assert_true (lode_prithvi_model_use_device (gpu, LODE_DEVICE_CPU, &error));
  g_assert_no_error (error);
  g_assert_cmpfloat (normalised_error (lode_upernet_tensor_data (dg, 0), lode_upernet_tensor_data (dc, 0),
                                       lode_upernet_tensor_numel (dc, 0)), <=, 2.0 * options.lr + 1e-6);
}

/* The parameters of blocks 0 to 3 of model's encoder, concatenated (after
 * lode_prithvi_model_sync_host on CUDA). */
static float *
block_params (LodePrithviModel *model, int block, gsize *count)
{
  LodePrithviEncoder *enc = lode_prithvi_model_get_encoder (model);
  g_autoptr(GArray) all = g_array_new (FALSE, FALSE, sizeof (float));

  for (int p = 0; p < LODE_VIT_N_PARAMS; p++)
    {
      gsize n = 0;
      const float *v = lode_prithvi_encoder_get_block_param (enc, block, p, &n);

      g_array_append_vals (all, v, (guint) n);
    }
  *count = all->len;
  return (float *) g_array_free (g_steal_pointer (&all), FALSE);
}

/* Unfrozen blocks: three training steps with blocks 2 and 3 of 4 learning
 * (block 3, the encoder's last, through the final norm; block 2 through
 * block 3's input gradient and its own feature) on both devices, from the
 * same weights and batches. Step 1's loss agrees to TOL_LOSS as in
 * test_train_step; later steps start from parameters that already differ
 * by ~1e-7 (see below), TOL_LOSS_LATER 1e-3. Step 1's block gradients: the
 * decoder's input gradient (TOL_GRAD) goes back through the final layer
 * norm and two blocks of layer norms (each subtracting row means, as the
 * batch norms do) and softmaxes: TOL_BLOCK_GRAD 5e-3 of each parameter's
 * largest gradient; a wrong index or a missing copy is off by O(1). After
 * three AdamW steps each parameter has moved by at most about 3 lr; where
 * a tiny gradient's sign differs between devices the two differ by up to
 * 2 lr a step: at most 6 lr + 1e-6 each, and at most 1 % by more than
 * 1e-5. Blocks 0 and 1 stay exactly as they were on both. Moved back to
 * the CPU, the GPU's model keeps its trained blocks and trains on. */
#define TOL_LOSS_LATER 1e-3
#define TOL_BLOCK_GRAD 5e-3

static void
test_unfreeze_steps (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodePrithviModel) cpu = NULL, gpu = NULL;
  const int n = 2, h = 64, w = 64, steps = 3;
  g_autofree float *raw = NULL;
  g_autofree guint8 *masks = g_new (guint8, (gsize) n * h * w);
  LodePrithviTrainOptions options;
  gsize far = 0, total = 0;

  if (!gpu_present ())
    return;
  cpu = reduced_model (LODE_DEVICE_CPU, &error);
  gpu = reduced_model (LODE_DEVICE_CUDA, &error);
  g_assert_no_error (error);
  raw = patches (n, h, w);
  for (gsize i = 0; i < (gsize) n * h * w; i++)
    masks[i] = (guint8) ((i / 5 + i / 300) % 3);
  lode_prithvi_train_options_init (&options);
  options.seed = 9;
  options.unfreeze_blocks = 2;
  for (int step = 0; step < steps; step++)
    {
      double loss_cpu = 0.0, loss_gpu = 0.0;

      g_assert_true (lode_prithvi_model_train_step (cpu, &options, raw, masks, n, LODE_PRITHVI_N_BANDS, h, w, NULL,
                                                    step, &loss_cpu, &error));
      g_assert_true (lode_prithvi_model_train_step (gpu, &options, raw, masks, n, LODE_PRITHVI_N_BANDS, h, w, NULL,
                                                    step, &loss_gpu, &error));
      g_assert_no_error (error);
      g_test_message ("step %d: loss %.6f (CPU) %.6f (CUDA)", step, loss_cpu, loss_gpu);
      g_assert_cmpfloat (fabs (loss_gpu - loss_cpu), <=, (step == 0 ? TOL_LOSS : TOL_LOSS_LATER) * fabs (loss_cpu));
      if (step > 0)
        continue;
      g_assert_true (lode_prithvi_model_sync_host (gpu, &error));
      g_assert_no_error (error);
      for (int b = 0; b < 4; b++)
        for (int p = 0; p < LODE_VIT_N_PARAMS; p++)
          {
            const float *gc = lode_prithvi_model_get_block_grad (cpu, b, p);
            const float *gg = lode_prithvi_model_get_block_grad (gpu, b, p);
            gsize count = 0;

            lode_prithvi_encoder_get_block_param (lode_prithvi_model_get_encoder (cpu), b, p, &count);
            g_assert_true ((gc == NULL) == (b < 2) && (gg == NULL) == (b < 2));
            if (gc != NULL && normalised_error (gg, gc, count) > TOL_BLOCK_GRAD)
              g_error ("gradient of block %d's %s: error %g", b, lode_vit_param_name (p),
                       normalised_error (gg, gc, count));
          }
    }
  g_assert_true (lode_prithvi_model_sync_host (gpu, &error));
  g_assert_no_error (error);
  {
    g_autoptr(LodePrithviModel) fresh = reduced_model (LODE_DEVICE_CPU, &error);

    for (int b = 0; b < 4; b++)
      {
        gsize count = 0;
        g_autofree float *pc = block_params (cpu, b, &count), *pg = block_params (gpu, b, &count);
        g_autofree float *p0 = block_params (fresh, b, &count);

        if (b < 2)
          {
            g_assert_cmpmem (pc, count * sizeof (float), p0, count * sizeof (float));
            g_assert_cmpmem (pg, count * sizeof (float), p0, count * sizeof (float));
            continue;
          }
        g_assert_cmpfloat (normalised_error (pg, p0, count), >, 0.0);
        for (gsize i = 0; i < count; i++)
          {
            double d = fabs ((double) pg[i] - pc[i]);

            g_assert_cmpfloat (d, <=, 2.0 * steps * options.lr + 1e-6);
            far += d > 1e-5;
          }
        total += count;
      }
  }
  g_assert_cmpfloat ((double) far / total, <=, 0.01);

  /* back on the CPU with the trained blocks, and training on there */
  {
    gsize count = 0;
    g_autofree float *before = block_params (gpu, 3, &count), *after = NULL;
    double loss = 0.0;

    g_assert_true (lode_prithvi_model_use_device (gpu, LODE_DEVICE_CPU, &error));
    g_assert_no_error (error);
    after = block_params (gpu, 3, &count);
    g_assert_cmpmem (after, count * sizeof (float), before, count * sizeof (float));
    g_assert_true (lode_prithvi_model_train_step (gpu, &options, raw, masks, n, LODE_PRITHVI_N_BANDS, h, w, NULL,
                                                  steps, &loss, &error));
    g_assert_no_error (error);
    g_assert_true (isfinite (loss));
  }
}

/* Without a device, asking for CUDA is a clear error (runs here). */
static void
test_no_device (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodePrithviModel) model = NULL;

  if (lode_device_cuda_count () > 0)
    {
      g_test_skip ("a CUDA device is present");
      return;
    }
  model = reduced_model (LODE_DEVICE_CUDA, &error);
  g_assert_null (model);
  g_assert_error (error, LODE_DEVICE_ERROR, LODE_DEVICE_ERROR_UNAVAILABLE);
  g_assert_nonnull (strstr (error->message, "CUDA"));
}

int
main (int argc, char **argv)
{
  int ret;

  g_test_init (&argc, &argv, NULL);
#if LODE_HAVE_CUDA
  g_test_add_func ("/prithvi-gpu/heads-copy", test_heads_copy);
  g_test_add_func ("/prithvi-gpu/tokens", test_tokens);
  g_test_add_func ("/prithvi-gpu/adaptive-avg-pool", test_adaptive_avg_pool);
  g_test_add_func ("/prithvi-gpu/backward-kernels", test_backward_kernels);
  g_test_add_func ("/prithvi-gpu/block-backward-kernels", test_block_backward_kernels);
#endif
  g_test_add_func ("/prithvi-gpu/model-64", test_model_64);
  g_test_add_func ("/prithvi-gpu/model-padded", test_model_padded);
  g_test_add_func ("/prithvi-gpu/model-bf16", test_model_bf16);
  g_test_add_func ("/prithvi-gpu/train-step", test_train_step);
  g_test_add_func ("/prithvi-gpu/unfreeze-steps", test_unfreeze_steps);
  g_test_add_func ("/prithvi-gpu/no-device", test_no_device);
  ret = g_test_run ();
#if LODE_HAVE_CUDA
  if (ctx != NULL)
    lode_ops_cuda_free (ctx);
#endif
  return ret;
}
