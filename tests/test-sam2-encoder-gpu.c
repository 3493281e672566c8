/* The SAM2 image encoder on CUDA against the CPU: its three kernels of
 * lode-sam2-encoder-cuda.h against their CPU twins (the CPU encoder's own
 * kernels, lode_sam2_encoder_cpu_*), then the whole encoder on both devices
 * with the same weights and image, its cancellation, and a work size the
 * GPU has no room for. Suite 'gpu': each test skips itself when the build
 * has no CUDA or the machine has no device, except /no-device, which runs
 * where there is none: asking for CUDA then is a clean error.
 *
 * Errors are normalised: max |gpu - cpu| / (max |cpu| + 1e-6).
 * Tolerances (fp32 on both sides, TF32 off):
 *   pooling            exact: the same comparisons of the same floats.
 *   attention, 1x1     1e-4: cuBLAS sums the products in another order than
 *                      OpenBLAS (a few 1e-7 relative over <= 4200 terms);
 *                      CUDA's expf is within 2 ulp of libm's. TF32 (~1e-3)
 *                      or an indexing slip (O(1)) would fail.
 *   whole encoder      1e-4: the reduced model matches PyTorch to 8.3e-7 on
 *                      the CPU (test-sam2-encoder.c); on the GPU every product
 *                      and cuDNN's patch-embedding convolution (which may
 *                      use Winograd or FFT, ~1e-5) round differently, through
 *                      8 blocks (12 for tiny) of LayerNorm-bounded
 *                      activations, so errors stay near 1e-5; a missed
 *                      upload, a wrong stride or a stale buffer is O(1). */
#include "config.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "lode-checkpoint.h"
#include "lode-device.h"
#include "lode-sam2-config.h"
#include "lode-sam2-encoder.h"
#include "lode-sam2-predictor.h"
#include "lode-test-ckpt.h"
#include "lode-test-util.h"
#include "lode-test-weights.h"
#if LODE_HAVE_CUDA
#include "lode-ops-cuda.h"
#include "lode-sam2-encoder-cuda.h"
#endif

#define TOL_PRODUCT 1e-4
#define TOL_ENCODER 1e-4

static gboolean
fill_rule (const LodeTestTensor *t, float *out, gpointer user_data)
{
  if (!g_str_has_prefix (t->name, "image_encoder.") && !g_str_has_prefix (t->name, "sam_mask_decoder.conv_s")
      && !g_str_equal (t->name, "no_mem_embed"))
    return FALSE;
  lode_test_weights_fill (t->name, t->shape, t->ndim, out);
  return TRUE;
}

/* A checkpoint of the layout file layout_path (NULL: the reduced model's)
 * with the weights rule on the image path; the file stays mapped, its
 * folder is removed. */
static LodeCheckpoint *
open_layout (const char *layout_path)
{
  g_autofree char *reduced = g_test_build_filename (G_TEST_DIST, "data", "sam2", "encoder-reduced.layout.tsv", NULL);
  g_autoptr(LodeTestLayout) layout = lode_test_layout_read (layout_path != NULL ? layout_path : reduced);
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *path = g_build_filename (dir, "sam2.pt", NULL);
  const LodeTestTensor *tensors = (const LodeTestTensor *) layout->tensors->data;
  g_autoptr(GByteArray) pkl = lode_test_pickle_tensors (tensors, layout->tensors->len, LODE_TEST_WRAP_MODEL, FALSE);
  g_autoptr(GError) error = NULL;
  LodeCheckpoint *ckpt;

  lode_test_ckpt_write_with (path, "archive", pkl->data, pkl->len, tensors, layout->tensors->len, fill_rule, NULL);
  ckpt = lode_checkpoint_open (path, &error);
  g_assert_no_error (error);
  lode_test_rmtree (dir);
  return ckpt;
}

/* The reduced configuration of test-sam2-encoder.c. */
static void
reduced_config (LodeSam2Config *cfg)
{
  g_autoptr(GError) error = NULL;

  lode_sam2_config_init_size (cfg, "tiny");
  cfg->size_name = "custom";
  cfg->embed_dim = 16;
  cfg->num_heads = 1;
  cfg->stages[0] = 1;
  cfg->stages[1] = 2;
  cfg->stages[2] = 3;
  cfg->stages[3] = 2;
  cfg->n_global = 1;
  cfg->global_blocks[0] = 4;
  cfg->window_spec[0] = 8;
  cfg->window_spec[1] = 4;
  cfg->window_spec[2] = 6;
  cfg->window_spec[3] = 3;
  cfg->pos_embed_bkg[0] = cfg->pos_embed_bkg[1] = 5;
  cfg->d_model = 32;
  cfg->image_size = 128;
  g_assert_true (lode_sam2_config_complete (cfg, &error));
  g_assert_no_error (error);
}

#if LODE_HAVE_CUDA

static LodeOpsCuda *ops;
static LodeSam2Cuda *sam2;
static GRand *rand_gen;

static void
assert_ok (int status)
{
  if (status != LODE_CUDA_OK)
    g_error ("CUDA status %d: %s", status, lode_ops_cuda_last_message ());
}

static gboolean
gpu_ready (void)
{
  if (lode_device_cuda_count () == 0)
    {
      g_test_skip ("no CUDA device");
      return FALSE;
    }
  if (ops == NULL)
    {
      assert_ok (lode_ops_cuda_new (&ops));
      assert_ok (lode_sam2_cuda_new (ops, &sam2));
    }
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
to_gpu (const float *h, gsize n)
{
  void *d = NULL;

  assert_ok (lode_ops_cuda_alloc (&d, sizeof (float) * MAX (n, 1)));
  if (h != NULL)
    assert_ok (lode_ops_cuda_upload (ops, d, h, sizeof (float) * n));
  return d;
}

/* Normalised error of a against the reference b. */
static double
norm_error (const float *a, const float *b, gsize n)
{
  double diff = 0.0, mag = 0.0;

  for (gsize i = 0; i < n; i++)
    {
      diff = isnan (a[i]) ? INFINITY : MAX (diff, fabs ((double) a[i] - b[i]));
      mag = MAX (mag, fabs (b[i]));
    }
  return diff / (mag + 1e-6);
}

/* Downloads dev (n floats), releases it, compares it with cpu. */
static void
compare (float *dev, const float *cpu, gsize n, double tol, const char *what)
{
  g_autofree float *got = g_new (float, MAX (n, 1));
  double err;

  assert_ok (lode_ops_cuda_download (ops, got, dev, sizeof (float) * n));
  lode_ops_cuda_release (dev);
  err = norm_error (got, cpu, n);
  g_test_message ("%s: normalised error %.3g (tolerance %g)", what, err, tol);
  g_assert_cmpfloat (err, <=, tol);
}

/* ---- kernels -------------------------------------------------------------- */

/* Pixels in_stride apart (the q columns of a qkv row), odd sizes (floor). */
static void
test_pool (void)
{
  static const int shapes[][5] = { /* n, h, w, c, in_stride */
    { 1, 2, 2, 1, 1 }, { 3, 9, 10, 5, 12 }, { 7, 8, 8, 96, 288 }, { 1, 64, 64, 192, 192 },
  };

  if (!gpu_ready ())
    return;
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
    {
      int n = shapes[s][0], h = shapes[s][1], w = shapes[s][2], c = shapes[s][3], st = shapes[s][4];
      gsize n_in = (gsize) n * h * w * st, n_out = (gsize) n * (h / 2) * (w / 2) * c;
      g_autofree float *in = random_array (n_in);
      g_autofree float *want = g_new (float, n_out);
      float *din = to_gpu (in, n_in), *dout = to_gpu (NULL, n_out);
      g_autofree char *what = g_strdup_printf ("pool2x2 n %d %dx%d c %d stride %d", n, h, w, c, st);

      lode_sam2_encoder_cpu_pool2x2_nhwc (want, in, st, n, h, w, c);
      assert_ok (lode_sam2_cuda_pool2x2_nhwc (sam2, dout, din, st, n, h, w, c));
      compare (dout, want, n_out, 0.0, what);
      lode_ops_cuda_release (din);
    }
}

/* q, k and v read from one qkv buffer [nw, l, 3 * dim] (a windowed block),
 * q from its own buffer (a pooled block), and one window of 4200 tokens
 * whose scores (17.6 M floats) take two passes of query rows. */
static void
test_attention (void)
{
  static const int shapes[][6] = { /* nw, heads, lq, lk, hd, pooled */
    { 1, 1, 1, 1, 8, 0 }, { 5, 2, 64, 64, 12, 0 }, { 9, 4, 16, 64, 16, 1 }, { 2, 3, 49, 49, 8, 0 },
    { 1, 2, 4200, 4200, 16, 0 },
  };

  if (!gpu_ready ())
    return;
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
    {
      int nw = shapes[s][0], heads = shapes[s][1], lq = shapes[s][2], lk = shapes[s][3];
      int hd = shapes[s][4], dim = heads * hd, kv_stride = 3 * dim;
      gboolean pooled = shapes[s][5];
      int q_stride = pooled ? dim : kv_stride;
      gsize n_qkv = (gsize) nw * lk * kv_stride, n_q = (gsize) nw * lq * dim, n_out = (gsize) nw * lq * dim;
      g_autofree float *qkv = random_array (n_qkv);
      g_autofree float *q = random_array (n_q);
      g_autofree float *want = g_new (float, n_out);
      const float *hq = pooled ? q : qkv;
      float *dqkv = to_gpu (qkv, n_qkv), *dq = to_gpu (q, n_q), *dout = to_gpu (NULL, n_out);
      float *scratch = to_gpu (NULL, lode_sam2_cuda_attention_scratch (nw, lq, lk));
      g_autofree char *what = g_strdup_printf ("attention nw %d heads %d lq %d lk %d hd %d%s",
                                               nw, heads, lq, lk, hd, pooled ? " pooled" : "");

      /* the scratch stays bounded: one pass of rows at most 2^24 floats */
      g_assert_cmpuint (lode_sam2_cuda_attention_scratch (nw, lq, lk), <=,
                        MAX ((gsize) 1 << 24, (gsize) nw * lk));
      lode_sam2_encoder_cpu_attention (want, hq, q_stride, qkv + dim, qkv + 2 * dim, kv_stride,
                                       nw, heads, lq, lk, hd);
      assert_ok (lode_sam2_cuda_attention (sam2, dout, pooled ? dq : dqkv, q_stride, dqkv + dim,
                                           dqkv + 2 * dim, kv_stride, nw, heads, lq, lk, hd, scratch));
      compare (dout, want, n_out, TOL_PRODUCT, what);
      lode_ops_cuda_release (dqkv);
      lode_ops_cuda_release (dq);
      lode_ops_cuda_release (scratch);
    }
}

static void
test_conv1x1 (void)
{
  static const int shapes[][3] = { { 1, 1, 1 }, { 300, 48, 24 }, { 4096, 96, 32 }, { 256, 768, 256 } };

  if (!gpu_ready ())
    return;
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
    {
      int hw = shapes[s][0], c_in = shapes[s][1], c_out = shapes[s][2];
      g_autofree float *x = random_array ((gsize) hw * c_in);
      g_autofree float *w = random_array ((gsize) c_out * c_in);
      g_autofree float *b = random_array (c_out);
      g_autofree float *want = g_new (float, (gsize) hw * c_out);
      float *dx = to_gpu (x, (gsize) hw * c_in), *dw = to_gpu (w, (gsize) c_out * c_in);
      float *db = to_gpu (b, c_out), *dout = to_gpu (NULL, (gsize) hw * c_out);
      g_autofree char *what = g_strdup_printf ("conv1x1_to_nchw hw %d %d -> %d", hw, c_in, c_out);

      lode_sam2_encoder_cpu_conv1x1_to_nchw (want, x, w, b, hw, c_in, c_out);
      assert_ok (lode_sam2_cuda_conv1x1_to_nchw (sam2, dout, dx, dw, db, hw, c_in, c_out));
      compare (dout, want, (gsize) hw * c_out, TOL_PRODUCT, what);
      lode_ops_cuda_release (dx);
      lode_ops_cuda_release (dw);
      lode_ops_cuda_release (db);
    }
}

/* ---- the whole encoder ------------------------------------------------------ */

static guint8 *
make_image (int w, int h)
{
  guint8 *rgb = g_new (guint8, (gsize) w * h * 3);

  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      {
        guint8 *p = rgb + 3 * ((gsize) y * w + x);

        p[0] = (guint8) ((3 * x + 5 * y) % 256);
        p[1] = (guint8) ((x * y + 17) % 256);
        p[2] = (guint8) ((x * x + 7 * y) % 256);
      }
  return rgb;
}

static void
compare_embeddings (const LodeSam2Embedding *gpu, const LodeSam2Embedding *cpu, const char *what)
{
  gsize s16 = (gsize) cpu->embed_size;
  double e0 = norm_error (gpu->image_embed, cpu->image_embed, (gsize) cpu->d_model * s16 * s16);
  double e1 = norm_error (gpu->high_res[0], cpu->high_res[0], (gsize) cpu->high_res_channels[0] * s16 * s16 * 16);
  double e2 = norm_error (gpu->high_res[1], cpu->high_res[1], (gsize) cpu->high_res_channels[1] * s16 * s16 * 4);

  g_test_message ("%s: image_embed %.3g, high_res_0 %.3g, high_res_1 %.3g (tolerance %g)",
                  what, e0, e1, e2, TOL_ENCODER);
  g_assert_cmpint (gpu->embed_size, ==, cpu->embed_size);
  g_assert_cmpfloat (e0, <=, TOL_ENCODER);
  g_assert_cmpfloat (e1, <=, TOL_ENCODER);
  g_assert_cmpfloat (e2, <=, TOL_ENCODER);
}

/* The same checkpoint, configuration and image on both devices; the CUDA
 * encoder twice (a second run reuses its buffers), after a cancelled run. */
static void
check_devices (LodeCheckpoint *ckpt, const LodeSam2Config *cfg, const char *what)
{
  g_autoptr(LodeSam2Encoder) cpu = NULL, gpu = NULL;
  g_autoptr(LodeSam2Embedding) want = NULL, got = NULL, again = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree guint8 *rgb = make_image (160, 96);
  gint64 t0;

  cpu = lode_sam2_encoder_new (ckpt, cfg, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lode_sam2_encoder_device (cpu), ==, LODE_DEVICE_CPU);
  t0 = g_get_monotonic_time ();
  want = lode_sam2_encoder_run_rgb (cpu, rgb, 160, 96, NULL, &error);
  g_assert_no_error (error);
  g_test_message ("%s: CPU %.3f s", what, (g_get_monotonic_time () - t0) / 1e6);

  gpu = lode_sam2_encoder_new_on (ckpt, cfg, LODE_DEVICE_CUDA, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lode_sam2_encoder_device (gpu), ==, LODE_DEVICE_CUDA);
  {
    g_autoptr(GCancellable) cancellable = g_cancellable_new ();

    g_cancellable_cancel (cancellable);
    g_assert_null (lode_sam2_encoder_run_rgb (gpu, rgb, 160, 96, cancellable, &error));
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
    g_clear_error (&error);
  }
  got = lode_sam2_encoder_run_rgb (gpu, rgb, 160, 96, NULL, &error);
  g_assert_no_error (error);
  compare_embeddings (got, want, what);
  t0 = g_get_monotonic_time ();
  again = lode_sam2_encoder_run_rgb (gpu, rgb, 160, 96, NULL, &error);
  g_assert_no_error (error);
  g_test_message ("%s: CUDA %.3f s (second run)", what, (g_get_monotonic_time () - t0) / 1e6);
  compare_embeddings (again, want, what);

  /* Tensor-core products: TF32 rounds operands to 10 bits of mantissa
   * (~1e-3 relative each), bf16 to 8 bits (~4e-3); over the trunk's blocks
   * and the neck the embedding drifts by a few 1e-2 of its range at most,
   * while a product wired to the wrong operand or stride is off by O(1). */
  {
    const LodePrecision modes[] = { LODE_PRECISION_TF32, LODE_PRECISION_BF16 };
    const double tol[] = { 5e-2, 1e-1 };
    gsize n = (gsize) want->d_model * want->embed_size * want->embed_size;

    for (guint m = 0; m < G_N_ELEMENTS (modes); m++)
      {
        g_autoptr(LodeSam2Embedding) fast = NULL;
        double err;

        g_assert_true (lode_sam2_encoder_set_precision (gpu, modes[m], &error));
        g_assert_no_error (error);
        fast = lode_sam2_encoder_run_rgb (gpu, rgb, 160, 96, NULL, &error);
        g_assert_no_error (error);
        err = norm_error (fast->image_embed, want->image_embed, n);
        g_test_message ("%s: %s image_embed %.3g", what, lode_precision_name (modes[m]), err);
        g_assert_cmpfloat (err, <, tol[m]);
      }
    g_assert_true (lode_sam2_encoder_set_precision (gpu, LODE_PRECISION_FP32, &error));
  }
}

static void
test_encoder_reduced (void)
{
  g_autoptr(LodeCheckpoint) ckpt = NULL;
  LodeSam2Config cfg;

  if (!gpu_ready ())
    return;
  ckpt = open_layout (NULL);
  reduced_config (&cfg);
  check_devices (ckpt, &cfg, "reduced at 128");
  cfg.image_size = 256;
  g_assert_true (lode_sam2_config_complete (&cfg, NULL));
  check_devices (ckpt, &cfg, "reduced at 256");
}

/* The real tiny configuration at 1024 (its layout from the shared
 * reference files; skipped without them). */
static void
test_encoder_tiny (void)
{
  const char *shared = lode_test_shared_dir ();
  g_autofree char *path = NULL;
  g_autoptr(LodeCheckpoint) ckpt = NULL;
  g_autoptr(GError) error = NULL;
  LodeSam2Config cfg;

  if (!gpu_ready ())
    return;
  if (shared == NULL)
    {
      g_test_skip ("no shared reference files");
      return;
    }
  path = g_build_filename (shared, "reference", "sam2", "sam2.1_hiera_tiny.layout.tsv", NULL);
  ckpt = open_layout (path);
  g_assert_true (lode_sam2_config_from_checkpoint (ckpt, &cfg, &error));
  g_assert_no_error (error);
  check_devices (ckpt, &cfg, "tiny at 1024");
}

/* With the GPU filled up but for 256 MiB, an encoder whose work buffers
 * need more is refused with LODE_OPS_ERROR_GPU_MEMORY, nothing crashes,
 * and once the memory is back the same construction works. */
static void
test_encoder_out_of_memory (void)
{
  g_autoptr(LodeCheckpoint) ckpt = NULL;
  g_autoptr(GPtrArray) hog = NULL;
  g_autoptr(GError) error = NULL;
  LodeSam2Config cfg, big;
  LodeSam2Encoder *enc;
  const gsize chunk = (gsize) 64 << 20;

  if (!gpu_ready ())
    return;
  ckpt = open_layout (NULL);
  reduced_config (&cfg);
  big = cfg;
  big.image_size = 4096;
  g_assert_true (lode_sam2_config_complete (&big, NULL));
  /* the premise: at 4096 the work buffers are well over 256 MiB (the CPU's
   * layout; the GPU's differs only in the attention scratch) */
  enc = lode_sam2_encoder_new (ckpt, &big, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (lode_sam2_encoder_work_bytes (enc), >, (gsize) 512 << 20);
  lode_sam2_encoder_free (enc);

  /* the weights and the contexts fit in what is left; the work does not */
  hog = g_ptr_array_new_with_free_func (lode_ops_cuda_release);
  for (;;)
    {
      void *p = NULL;

      if (lode_ops_cuda_alloc (&p, chunk) != LODE_CUDA_OK)
        break;
      g_ptr_array_add (hog, p);
    }
  for (int i = 0; i < 4 && hog->len > 0; i++)
    g_ptr_array_remove_index (hog, hog->len - 1);
  enc = lode_sam2_encoder_new_on (ckpt, &big, LODE_DEVICE_CUDA, &error);
  g_assert_null (enc);
  g_assert_error (error, LODE_OPS_ERROR, LODE_OPS_ERROR_GPU_MEMORY);
  g_test_message ("refused: %s", error->message);
  g_clear_error (&error);

  g_ptr_array_set_size (hog, 0);
  enc = lode_sam2_encoder_new_on (ckpt, &cfg, LODE_DEVICE_CUDA, &error);
  g_assert_no_error (error);
  g_assert_nonnull (enc);
  lode_sam2_encoder_free (enc);
}

#endif

/* Without a CUDA device (or without CUDA in the build), asking for one is
 * a LODE_DEVICE_ERROR, from the encoder and from the predictor (before the
 * checkpoint is read), and the CPU stays available. */
static void
test_no_device (void)
{
  g_autoptr(LodeCheckpoint) ckpt = NULL;
  g_autoptr(LodeSam2Encoder) enc = NULL;
  g_autoptr(GError) error = NULL;
  LodeSam2Config cfg;

  g_assert_null (lode_sam2_predictor_open_on ("/nonexistent/sam2.pt", NULL, 0, "tpu", &error));
  g_assert_error (error, LODE_DEVICE_ERROR, LODE_DEVICE_ERROR_UNKNOWN);
  g_clear_error (&error);
  if (lode_device_cuda_count () > 0)
    {
      g_test_skip ("a CUDA device is present");
      return;
    }
  g_assert_null (lode_sam2_predictor_open_on ("/nonexistent/sam2.pt", NULL, 0, "cuda", &error));
  g_assert_error (error, LODE_DEVICE_ERROR, LODE_DEVICE_ERROR_UNAVAILABLE);
  g_clear_error (&error);

  ckpt = open_layout (NULL);
  reduced_config (&cfg);
  g_assert_null (lode_sam2_encoder_new_on (ckpt, &cfg, LODE_DEVICE_CUDA, &error));
  g_assert_error (error, LODE_DEVICE_ERROR, LODE_DEVICE_ERROR_UNAVAILABLE);
  g_clear_error (&error);
  enc = lode_sam2_encoder_new_on (ckpt, &cfg, LODE_DEVICE_CPU, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lode_sam2_encoder_device (enc), ==, LODE_DEVICE_CPU);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#if LODE_HAVE_CUDA
  rand_gen = g_rand_new_with_seed (20240611);
  g_test_add_func ("/sam2-encoder-gpu/pool2x2", test_pool);
  g_test_add_func ("/sam2-encoder-gpu/attention", test_attention);
  g_test_add_func ("/sam2-encoder-gpu/conv1x1-to-nchw", test_conv1x1);
  g_test_add_func ("/sam2-encoder-gpu/encoder-reduced", test_encoder_reduced);
  g_test_add_func ("/sam2-encoder-gpu/encoder-tiny", test_encoder_tiny);
  g_test_add_func ("/sam2-encoder-gpu/encoder-out-of-memory", test_encoder_out_of_memory);
#endif
  g_test_add_func ("/sam2-encoder-gpu/no-device", test_no_device);
  return g_test_run ();
}
