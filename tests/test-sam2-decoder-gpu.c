/* The SAM2 decoder on the GPU (suite 'gpu'; every test skips itself without
 * CUDA or without a device).
 *
 * Kernels of lode-sam2-decoder-cuda.h against their CPU twins in lode-ops.h,
 * on random inputs, by normalised error max |gpu - cpu| / (max |cpu| + 1e-6):
 *   TOL_POINTWISE 1e-5  bias + ReLU, the 2 x 2 unfold (+ GELU), the point
 *                       encoding: the same float formula; CUDA's sinf, cosf
 *                       and fused multiply-adds differ by an ulp or two.
 *   TOL_REDUCE    1e-5  add + layer norm: float sums in another order over at
 *                       most a few hundred terms.
 *   TOL_PRODUCT   1e-4  attention on rows: an online softmax (running
 *                       maximum, rescaled sums) against the CPU's two-pass
 *                       softmax, and sums over up to 4096 keys in another
 *                       order; an indexing error would be O(1).
 *
 * The whole decoder: LodeSam2DecoderDev on CUDA against the CPU decoder
 * (lode_sam2_decoder_run) on the reduced and the tiny (1024) models with
 * the weights of the shared rule, several prompts (points, box, box +
 * points, mask input, single and multiple masks):
 *   LOGIT_TOL 1e-3 absolute on the low-res logits and SCORE_TOL 1e-4 on the
 *   IoU and object scores, the bounds the CPU decoder meets against
 *   PyTorch: both sides are fp32 (TF32 off), but cuBLAS, the online softmax
 *   and the unfolded attention (the CPU folds the projections) sum in other
 *   orders, ~1e-6 relative per step on logits of size ~10 through a dozen
 *   layer norms and products. The selection (mask count, stability
 *   fallback, best index) must be the same.
 * It also prints the time of a click at 1024 (tiny), the figure the
 * predictor cares about (target under 1 ms on an H100). */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lode-device.h"
#include "lode-ops.h"
#include "lode-sam2-decoder-dev.h"
#include "lode-test-sam2.h"
#include "lode-test-weights.h"
#if LODE_HAVE_CUDA
#include "lode-sam2-decoder-cuda.h"
#endif

#define TOL_POINTWISE 1e-5
#define TOL_REDUCE 1e-5
#define TOL_PRODUCT 1e-4
#define LOGIT_TOL 1e-3
#define SCORE_TOL 1e-4

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
random_array (gsize n, double lo, double hi)
{
  float *a = g_new (float, n ? n : 1);

  for (gsize i = 0; i < n; i++)
    a[i] = (float) g_rand_double_range (rand_gen, lo, hi);
  return a;
}

static float *
to_gpu (const float *h, gsize n)
{
  void *d = NULL;

  assert_ok (lode_ops_cuda_alloc (&d, sizeof (float) * MAX (n, 1)));
  if (h != NULL)
    assert_ok (lode_ops_cuda_upload (ctx, d, h, sizeof (float) * n));
  return d;
}

/* Downloads gpu (n floats), frees it, and compares it with cpu. */
static void
compare (float *gpu, const float *cpu, gsize n, double tol, const char *what)
{
  g_autofree float *got = g_new (float, MAX (n, 1));
  double diff = 0.0, mag = 0.0, err;

  assert_ok (lode_ops_cuda_download (ctx, got, gpu, sizeof (float) * n));
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
test_add_layer_norm (void)
{
  static const int shapes[][2] = { { 1, 32 }, { 7, 256 }, { 4096, 256 }, { 3, 1000 } };

  if (!gpu_ready ())
    return;
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
    for (int mode = 0; mode < 3; mode++)
      {
        int rows = shapes[s][0], c = shapes[s][1];
        gsize n = (gsize) rows * c;
        g_autofree float *a = random_array (n, -3, 3), *b = random_array (n, -3, 3);
        g_autofree float *pe = random_array (n, -1, 1), *w = random_array (c, 0.5, 1.5);
        g_autofree float *bias = random_array (c, -1, 1), *out_pe = g_new (float, n);
        float *da = to_gpu (a, n), *db = to_gpu (b, n), *dpe = to_gpu (pe, n);
        float *dw = to_gpu (w, c), *dbias = to_gpu (bias, c), *dout_pe = to_gpu (NULL, n);
        g_autofree char *what = g_strdup_printf ("add_layer_norm %dx%d mode %d", rows, c, mode);
        /* mode 0: no b, no PE; 1: b and PE, out aliasing a; 2: b, PE */
        const float *use_b = mode == 0 ? NULL : b;
        float *dout = mode == 1 ? da : to_gpu (NULL, n);

        assert_ok (lode_ops_cuda_add_layer_norm (ctx, dout, da, mode == 0 ? NULL : db, dw, dbias, rows, c,
                                                 1e-5f, mode == 0 ? NULL : dout_pe, dpe));
        lode_ops_add_layer_norm (a, a, use_b, w, bias, rows, c, 1e-5f, mode == 0 ? NULL : out_pe, pe);
        compare (dout, a, n, TOL_REDUCE, what);
        if (mode != 0)
          compare (dout_pe, out_pe, n, TOL_REDUCE, what);
        else
          lode_ops_cuda_release (dout_pe);
        if (mode != 1)
          lode_ops_cuda_release (da);
        lode_ops_cuda_release (db);
        lode_ops_cuda_release (dpe);
        lode_ops_cuda_release (dw);
        lode_ops_cuda_release (dbias);
      }
}

static void
test_attention_rows (void)
{
  /* lq, lk, h, d, extra stride: the decoder's self attention, token to
   * image (one block per row and head), image to token (one thread per row
   * and head), the widest head supported, strided rows */
  static const int shapes[][5] = {
    { 10, 10, 8, 32, 0 }, { 10, 4096, 8, 16, 0 }, { 4096, 10, 8, 16, 0 },
    { 3, 300, 2, 64, 5 }, { 70, 255, 4, 4, 3 }, { 1, 1, 1, 1, 0 },
  };

  if (!gpu_ready ())
    return;
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
    {
      int lq = shapes[s][0], lk = shapes[s][1], h = shapes[s][2], d = shapes[s][3];
      int st = h * d + shapes[s][4];
      g_autofree float *q = random_array ((gsize) lq * st, -2, 2);
      g_autofree float *k = random_array ((gsize) lk * st, -2, 2);
      g_autofree float *v = random_array ((gsize) lk * st, -2, 2);
      g_autofree float *out = g_new (float, (gsize) lq * h * d);
      float *dq = to_gpu (q, (gsize) lq * st), *dk = to_gpu (k, (gsize) lk * st);
      float *dv = to_gpu (v, (gsize) lk * st), *dout = to_gpu (NULL, (gsize) lq * h * d);
      g_autofree char *what = g_strdup_printf ("attention_rows lq %d lk %d h %d d %d stride %d",
                                               lq, lk, h, d, st);

      assert_ok (lode_ops_cuda_attention_rows (ctx, dout, dq, st, dk, st, dv, st, lq, lk, h, d));
      lode_ops_attention_rows (out, q, st, k, st, v, st, lq, lk, h, d);
      compare (dout, out, (gsize) lq * h * d, TOL_PRODUCT, what);
      lode_ops_cuda_release (dq);
      lode_ops_cuda_release (dk);
      lode_ops_cuda_release (dv);
    }
  /* heads wider than the kernel keeps are refused, not miscomputed */
  {
    g_autoptr(GError) error = NULL;

    g_assert_false (lode_ops_cuda_check (lode_ops_cuda_attention_rows (ctx, NULL, NULL, 65, NULL, 65, NULL, 65,
                                                                       1, 1, 1, 65), &error));
    g_assert_error (error, LODE_OPS_ERROR, LODE_OPS_ERROR_UNSUPPORTED);
  }
}

static void
test_point_encoding (void)
{
  int n = 7, c = 256;
  float pts[7 * 3] = { 0, 0, -1, 512.5f, 100, 0, 1023, 1023, 1, 3, 900, 2, 700, 20, 3, 5, 5, 1, 0, 0, -1 };
  g_autofree float *gauss = NULL, *table = NULL, *out = g_new (float, n * c);
  float *dpts, *dg, *dt, *dout;

  if (!gpu_ready ())
    return;
  gauss = random_array (c, -1, 1);
  table = random_array (5 * c, -1, 1);
  dpts = to_gpu (pts, n * 3);
  dg = to_gpu (gauss, c);
  dt = to_gpu (table, 5 * c);
  for (int with_table = 0; with_table < 2; with_table++)
    {
      dout = to_gpu (NULL, n * c);
      assert_ok (lode_ops_cuda_point_encoding (ctx, dout, dpts, dg, with_table ? dt : NULL, n, c, 1024.0f));
      lode_ops_point_encoding (out, pts, gauss, with_table ? table : NULL, n, c, 1024.0f);
      compare (dout, out, n * c, TOL_POINTWISE, with_table ? "point_encoding" : "point_encoding (PE only)");
    }
  lode_ops_cuda_release (dpts);
  lode_ops_cuda_release (dg);
  lode_ops_cuda_release (dt);
}

static void
test_bias_unfold (void)
{
  int rows = 4, c = 256, side = 16, ch = 8;
  gsize n = (gsize) rows * c, on = (gsize) ch * 4 * side * side;
  g_autofree float *in = NULL, *bias = NULL, *out = g_new (float, MAX (n, on));
  g_autofree float *cols = NULL, *cb = NULL, *add = NULL;
  float *din, *dbias, *dout, *dcols, *dcb, *dadd;

  if (!gpu_ready ())
    return;
  in = random_array (n, -1, 1);
  bias = random_array (c, -1, 1);
  din = to_gpu (in, n);
  dbias = to_gpu (bias, c);
  dout = to_gpu (NULL, n);
  assert_ok (lode_ops_cuda_bias_relu (ctx, dout, din, dbias, rows, c));
  lode_ops_bias_relu (out, in, bias, rows, c);
  compare (dout, out, n, TOL_POINTWISE, "bias_relu");
  lode_ops_cuda_release (din);
  lode_ops_cuda_release (dbias);

  cols = random_array (on, -3, 3);
  cb = random_array (ch, -1, 1);
  add = random_array (on, -1, 1);
  dcols = to_gpu (cols, on);
  dcb = to_gpu (cb, ch);
  dadd = to_gpu (add, on);
  for (int mode = 0; mode < 2; mode++)
    {
      dout = to_gpu (NULL, on);
      assert_ok (lode_ops_cuda_unfold_2x2 (ctx, dout, dcols, dcb, mode ? dadd : NULL, ch, side, mode));
      lode_ops_unfold_2x2 (out, cols, cb, mode ? add : NULL, ch, side, mode);
      compare (dout, out, on, TOL_POINTWISE, mode ? "unfold_2x2 + add + GELU" : "unfold_2x2");
    }
  lode_ops_cuda_release (dcols);
  lode_ops_cuda_release (dcb);
  lode_ops_cuda_release (dadd);
}

/* ---- the whole decoder ---------------------------------------------------- */

static void
rule_scaled (const char *name, int ndim, gint64 d0, gint64 d1, gint64 d2, float scale, float *out)
{
  gint64 shape[3] = { d0, d1, d2 };
  gint64 n = d0 * d1 * (ndim == 3 ? d2 : 1);

  lode_test_weights_fill (name, shape, ndim, out);
  for (gint64 i = 0; i < n; i++)
    out[i] *= scale;
}

/* The configurations of tests/data/sam2/decoder-{reduced,tiny}.ini. */
static void
config_init (LodeSam2Config *k, int c, int heads, int mlp, int size)
{
  memset (k, 0, sizeof *k);
  k->decoder_dim = k->d_model = c;
  k->decoder_heads = heads;
  k->decoder_mlp = mlp;
  k->decoder_depth = 2;
  k->image_size = size;
  k->num_multimask = 3;
  k->use_high_res_features = TRUE;
  k->pred_obj_scores = TRUE;
  k->iou_prediction_use_sigmoid = TRUE;
  k->dynamic_multimask_via_stability = TRUE;
  k->dynamic_multimask_stability_delta = 0.05;
  k->dynamic_multimask_stability_thresh = 0.98;
  k->size_name = "custom";
}

static void
check_model (gconstpointer data)
{
  gboolean tiny = GPOINTER_TO_INT (data);
  LodeSam2Config cfg;
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeSam2Embedding) emb = NULL;
  g_autofree float *mask = NULL;
  LodeSam2Decoder *cpu;
  LodeSam2DecoderDev *dev;
  int c, e;
  float size;
  float pts[6], box[4];
  int labels[3] = { 1, 0, 1 };
  double worst = 0.0;

  if (!gpu_ready ())
    return;
  if (tiny)
    config_init (&cfg, 256, 8, 2048, 1024);
  else
    config_init (&cfg, 32, 4, 64, 128);
  c = cfg.decoder_dim;
  e = cfg.image_size / 16;
  size = (float) cfg.image_size;
  emb = lode_sam2_embedding_new (cfg.image_size, c);
  rule_scaled ("input.image_embed", 3, c, e, e, 50.0f, emb->image_embed);
  rule_scaled ("input.high_res_0", 3, c / 8, 4 * e, 4 * e, 50.0f, emb->high_res[0]);
  rule_scaled ("input.high_res_1", 3, c / 4, 2 * e, 2 * e, 50.0f, emb->high_res[1]);
  mask = g_new (float, 16 * e * e);
  rule_scaled ("input.mask_input", 2, 4 * e, 4 * e, 1, 500.0f, mask);

  cpu = lode_sam2_decoder_new (&cfg, lode_test_rule_source, NULL, &error);
  g_assert_no_error (error);
  dev = lode_sam2_decoder_dev_new (&cfg, lode_test_rule_source, NULL, LODE_DEVICE_CUDA, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lode_sam2_decoder_dev_device (dev), ==, LODE_DEVICE_CUDA);
  g_assert_true (lode_sam2_decoder_dev_set_embedding (dev, emb, &error));
  g_assert_no_error (error);

  pts[0] = 0.31f * size; pts[1] = 0.52f * size;
  pts[2] = 0.70f * size; pts[3] = 0.21f * size;
  pts[4] = 0.50f * size; pts[5] = 0.50f * size;
  box[0] = 0.15f * size; box[1] = 0.20f * size; box[2] = 0.75f * size; box[3] = 0.80f * size;

  /* n points, box, mask input, multimask */
  for (int k = 0; k < 8; k++)
    {
      static const int spec[8][4] = {
        { 1, 0, 0, 1 }, { 2, 0, 0, 1 }, { 0, 1, 0, 1 }, { 1, 1, 0, 0 },
        { 1, 0, 1, 1 }, { 1, 0, 0, 0 }, { 3, 0, 0, 0 }, { 2, 1, 1, 0 },
      };
      LodeSam2Prompt p = { 0 };
      LodeSam2DecoderOutput want = { 0 }, got = { 0 };
      gsize lsz;

      p.n_points = spec[k][0];
      p.points = pts;
      p.labels = labels;
      p.has_box = spec[k][1];
      memcpy (p.box, box, sizeof box);
      p.mask_input = spec[k][2] ? mask : NULL;
      p.multimask = spec[k][3];
      g_assert_true (lode_sam2_decoder_run (cpu, emb, &p, &want, &error));
      g_assert_true (lode_sam2_decoder_dev_run (dev, &p, &got, &error));
      g_assert_no_error (error);
      g_assert_cmpint (got.n_masks, ==, want.n_masks);
      g_assert_cmpint (got.used_stability_fallback, ==, want.used_stability_fallback);
      g_assert_cmpint (got.best, ==, want.best);
      for (int i = 0; i < got.n_masks; i++)
        g_assert_cmpfloat_with_epsilon (got.iou[i], want.iou[i], SCORE_TOL);
      g_assert_cmpfloat_with_epsilon (got.object_score, want.object_score, SCORE_TOL);
      lsz = (gsize) got.low_res * got.low_res;
      for (gsize i = 0; i < got.n_masks * lsz; i++)
        worst = MAX (worst, fabs ((double) got.low_res_masks[i] - want.low_res_masks[i]));
      g_assert_cmpfloat (worst, <, LOGIT_TOL);
      lode_sam2_decoder_output_clear (&want);
      lode_sam2_decoder_output_clear (&got);
    }
  g_test_message ("%s: largest low-res logit difference GPU - CPU %.3g", tiny ? "tiny" : "reduced", worst);

  if (tiny)
    {
      LodeSam2DecoderDevTiming t;
      LodeSam2Prompt p = { 1, pts, labels, FALSE, { 0 }, NULL, TRUE };

      g_assert_true (lode_sam2_decoder_dev_time (dev, &p, 50, &t, &error));
      g_assert_no_error (error);
      g_test_message ("tiny at 1024, one point, three masks: %.3f ms per click, %d calls",
                      t.ms_per_click, t.calls_per_click);
      p.multimask = FALSE;
      p.mask_input = mask;
      g_assert_true (lode_sam2_decoder_dev_time (dev, &p, 50, &t, &error));
      g_test_message ("tiny at 1024, one point + mask input, one mask: %.3f ms per click, %d calls",
                      t.ms_per_click, t.calls_per_click);
    }
  lode_sam2_decoder_free (cpu);
  lode_sam2_decoder_dev_free (dev);
}

#else

static void
test_skip_without_cuda (void)
{
  g_test_skip ("built without CUDA");
}

#endif

int
main (int argc, char **argv)
{
  int ret;

  g_test_init (&argc, &argv, NULL);
#if LODE_HAVE_CUDA
  rand_gen = g_rand_new_with_seed (11);
  g_test_add_func ("/sam2-decoder-gpu/add-layer-norm", test_add_layer_norm);
  g_test_add_func ("/sam2-decoder-gpu/attention-rows", test_attention_rows);
  g_test_add_func ("/sam2-decoder-gpu/point-encoding", test_point_encoding);
  g_test_add_func ("/sam2-decoder-gpu/bias-unfold", test_bias_unfold);
  g_test_add_data_func ("/sam2-decoder-gpu/model/reduced", GINT_TO_POINTER (FALSE), check_model);
  g_test_add_data_func ("/sam2-decoder-gpu/model/tiny", GINT_TO_POINTER (TRUE), check_model);
#else
  g_test_add_func ("/sam2-decoder-gpu/skip", test_skip_without_cuda);
#endif
  ret = g_test_run ();
#if LODE_HAVE_CUDA
  if (ctx)
    lode_ops_cuda_free (ctx);
  g_rand_free (rand_gen);
#endif
  return ret;
}
