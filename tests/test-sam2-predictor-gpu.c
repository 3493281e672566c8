/* The SAM2.1 predictor as the program uses it, on CUDA against the CPU:
 * the tiny layout with random weights (the bench's checkpoint writer) at
 * input size 512, one synthetic patch, encoded on both devices, then a
 * first click (one point, three candidates) and a refinement click (two
 * points and the previous best mask, one mask) on both devices from the
 * same embedding. Suite 'gpu': skips without a CUDA device.
 *
 * Tolerances: the encoder and the decoder each match their CPU twins to
 * about 1e-5 of the largest value (tests/test-sam2-encoder-gpu.c,
 * tests/test-sam2-decoder-gpu.c); through the decoder's two layers and the
 * upscaling that grows to a few 1e-5, so 1e-3 of the largest value leaves
 * a margin while an indexing error (O(1)) fails. Masks are compared where
 * the logit is not within that tolerance of 0. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lode-bench-sam2.h"
#include "lode-device.h"
#include "lode-sam2-config.h"
#include "lode-sam2-predictor.h"
#include "lode-test-util.h"

#define TOL 1e-3

static double
max_abs (const float *a, gsize n)
{
  double m = 0.0;

  for (gsize i = 0; i < n; i++)
    m = MAX (m, fabs (a[i]));
  return m;
}

static void
assert_close (const char *what, const float *gpu, const float *cpu, gsize n)
{
  double scale = max_abs (cpu, n) + 1e-6, worst = 0.0;

  for (gsize i = 0; i < n; i++)
    {
      g_assert_true (isfinite (gpu[i]));
      worst = MAX (worst, fabs ((double) gpu[i] - cpu[i]));
    }
  g_test_message ("%s: largest difference %.3g of %.3g", what, worst, scale);
  g_assert_cmpfloat (worst / scale, <=, TOL);
}

static void
assert_same_prediction (const char *what, const LodeSam2Prediction *gpu, const LodeSam2Prediction *cpu)
{
  gsize lsz = (gsize) cpu->low_res * cpu->low_res, psz = (gsize) cpu->width * cpu->height;
  double scale = max_abs (cpu->masks, psz * cpu->n_masks);

  g_assert_cmpint (gpu->n_masks, ==, cpu->n_masks);
  g_assert_cmpint (gpu->low_res, ==, cpu->low_res);
  g_assert_cmpint (gpu->best, ==, cpu->best);
  g_assert_cmpint (gpu->used_stability_fallback, ==, cpu->used_stability_fallback);
  for (int i = 0; i < cpu->n_masks; i++)
    g_assert_cmpfloat (fabs (gpu->iou[i] - cpu->iou[i]), <=, 1e-4);
  g_assert_cmpfloat (fabs (gpu->object_score - cpu->object_score), <=, TOL * (fabs (cpu->object_score) + 1.0));
  assert_close (what, gpu->low_res_masks, cpu->low_res_masks, lsz * cpu->n_masks);
  for (gsize i = 0; i < psz * cpu->n_masks; i++)
    if (fabs (cpu->masks[i]) > TOL * scale)
      g_assert_cmpint (gpu->masks[i] > 0.0f, ==, cpu->masks[i] > 0.0f);
}

static void
test_predictor (void)
{
  g_autofree char *dir = NULL, *path = NULL;
  g_autoptr(LodeSam2Predictor) cpu = NULL, gpu = NULL;
  g_autoptr(LodeSam2Embedding) emb_cpu = NULL, emb_gpu = NULL;
  g_autoptr(LodeSam2Prediction) c1 = NULL, g1 = NULL, c2 = NULL, g2 = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree guint8 *rgb = NULL;
  LodeSam2Config cfg;
  const int side = 128;
  float pts[4] = { 60.0f, 70.0f, 20.0f, 25.0f };
  int labels[2] = { 1, 0 };
  LodeSam2Click click = { 1, pts, labels, FALSE, { 0 }, NULL, TRUE };
  gsize n_embed;

  if (lode_device_cuda_count () == 0)
    {
      g_test_skip ("no CUDA device");
      return;
    }
  dir = lode_test_mkdtemp ();
  path = g_build_filename (dir, "tiny.safetensors", NULL);
  lode_sam2_config_init_size (&cfg, "tiny");
  g_assert_true (lode_sam2_write_random_checkpoint (&cfg, path, &error));
  g_assert_no_error (error);
  cpu = lode_sam2_predictor_open_on (path, NULL, 512, "cpu", &error);
  g_assert_no_error (error);
  gpu = lode_sam2_predictor_open_on (path, NULL, 512, "cuda", &error);
  g_assert_no_error (error);

  rgb = g_malloc ((gsize) side * side * 3);
  for (int y = 0; y < side; y++)
    for (int x = 0; x < side; x++)
      {
        guint8 *px = rgb + ((gsize) y * side + x) * 3;
        gboolean disc = (x - 60) * (x - 60) + (y - 70) * (y - 70) < 400;

        px[0] = disc ? 220 : (guint8) (40 + x / 2);
        px[1] = disc ? 200 : (guint8) (60 + y / 3);
        px[2] = disc ? 120 : 50;
      }
  emb_cpu = lode_sam2_predictor_encode (cpu, rgb, side, side, &error);
  g_assert_no_error (error);
  emb_gpu = lode_sam2_predictor_encode (gpu, rgb, side, side, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (lode_sam2_predictor_device_name (gpu), ==, "cuda");
  n_embed = (gsize) emb_cpu->d_model * emb_cpu->embed_size * emb_cpu->embed_size;
  assert_close ("image embedding", emb_gpu->image_embed, emb_cpu->image_embed, n_embed);

  /* the decoders from the same (CPU) embedding */
  c1 = lode_sam2_predictor_predict (cpu, emb_cpu, side, side, &click, &error);
  g_assert_no_error (error);
  g1 = lode_sam2_predictor_predict (gpu, emb_cpu, side, side, &click, &error);
  g_assert_no_error (error);
  assert_same_prediction ("first click", g1, c1);

  click.n_points = 2;
  click.multimask = FALSE;
  click.low_res_mask = lode_sam2_prediction_low_res (c1, c1->best);
  c2 = lode_sam2_predictor_predict (cpu, emb_cpu, side, side, &click, &error);
  g_assert_no_error (error);
  g2 = lode_sam2_predictor_predict (gpu, emb_cpu, side, side, &click, &error);
  g_assert_no_error (error);
  assert_same_prediction ("refinement click", g2, c2);

  /* and the GPU's clicks on its own embedding: another upload, same masks */
  g_clear_pointer (&g2, lode_sam2_prediction_free);
  g2 = lode_sam2_predictor_predict (gpu, emb_gpu, side, side, &click, &error);
  g_assert_no_error (error);
  assert_same_prediction ("refinement click on the GPU's embedding", g2, c2);
  lode_test_rmtree (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sam2-predictor-gpu/cpu-and-cuda", test_predictor);
  return g_test_run ();
}
