/* The training job on a small synthetic task (32 x 32 patches, 3 bands,
 * mask = where band 1 is bright), ResNet18: it learns, a cancelled run
 * leaves a checkpoint that resumes to exactly the weights of a run that was
 * never stopped, checkpoints round-trip bit for bit and refuse damage, and
 * the metrics have their textbook values. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lode-test-util.h"
#include "lode-train.h"

#define SIDE 32
#define BANDS 3
#define N_TRAIN 12
#define N_VAL 4

/* Sample i: a bright disc in band 0 at a place that depends on i, noise in
 * the other bands; the mask marks the disc. Values around 1000 like
 * Sentinel-2 numbers, so that normalisation matters. */
static void
make_sample (int     i,
             float  *image,
             guint8 *mask)
{
  double cx = 8 + (i * 7) % 17, cy = 6 + (i * 11) % 19, r = 5 + i % 4;

  for (int y = 0; y < SIDE; y++)
    for (int x = 0; x < SIDE; x++)
      {
        gboolean in = (x - cx) * (x - cx) + (y - cy) * (y - cy) < r * r;
        int q = y * SIDE + x;
        image[q] = in ? 1600.0f : 1000.0f + 50.0f * (float) sin (q * 0.7 + i);
        image[SIDE * SIDE + q] = 800.0f + 100.0f * (float) cos (q * 1.3 + i);
        image[2 * SIDE * SIDE + q] = 500.0f;
        mask[q] = in;
      }
  mask[0] = 255;   /* one ignored pixel */
}

static int
source_count (LodeTrainSplit split,
              gpointer       user_data)
{
  return split == LODE_TRAIN_SPLIT_TRAIN ? N_TRAIN : N_VAL;
}

static gboolean
source_get (LodeTrainSplit split,
            int            index,
            float         *image,
            guint8        *mask,
            gpointer       user_data,
            GError       **error)
{
  make_sample (split == LODE_TRAIN_SPLIT_TRAIN ? index : 100 + index, image, mask);
  return TRUE;
}

static const LodeTrainSource source = { SIDE, SIDE, source_count, source_get, NULL };

static void
small_config (LodeTrainConfig *c)
{
  lode_train_config_init (c);
  c->encoder = LODE_UNET_RESNET18;
  c->bands = BANDS;
  c->classes = 2;
  c->batch_size = 4;
  c->epochs = 2;
  c->lr = 3e-3f;
  c->seed = 42;
  g_strlcpy (c->device, "cpu", sizeof c->device);
  c->class_weights[1] = 2.0f;
  c->mean[0] = 1100; c->std[0] = 200;
  c->mean[1] = 800;  c->std[1] = 70;
  c->mean[2] = 500;  c->std[2] = 1;
  c->band_select[0] = 7;
}

typedef struct {
  GCancellable *cancel;
  gint64 cancel_at;
  int reports, validations;
  gint64 last_step;
} Watch;

static void
on_progress (const LodeTrainProgress *p,
             gpointer                 user_data)
{
  Watch *w = user_data;

  w->reports++;
  g_assert_cmpint (p->step, ==, w->last_step + 1);
  w->last_step = p->step;
  g_assert_true (isfinite (p->loss));
  g_assert_cmpfloat (p->seconds_left, >=, 0.0);
  if (p->metrics)
    w->validations++;
  if (w->cancel && p->step == w->cancel_at)
    g_cancellable_cancel (w->cancel);
}

static void
test_resume (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *full = g_build_filename (dir, "full.lode-unet", NULL);
  g_autofree char *part = g_build_filename (dir, "part.lode-unet", NULL);
  g_autoptr(GCancellable) cancel = g_cancellable_new ();
  g_autoptr(LodeTrainJob) a = NULL, b = NULL, c = NULL;
  g_autoptr(GError) error = NULL;
  LodeTrainConfig config;
  Watch wa = { 0 }, wb = { .cancel = cancel, .cancel_at = 2 }, wc = { .last_step = 2 };
  gsize n;

  small_config (&config);
  /* straight through: 3 steps per epoch, 2 epochs */
  a = lode_train_job_new (&config, &source, full, FALSE, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (lode_train_job_run (a, on_progress, &wa, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (wa.reports, ==, 6);
  g_assert_cmpint (wa.validations, ==, 2);
  g_assert_cmpint (lode_train_job_get_step (a), ==, 6);

  /* cancelled after step 2: a checkpoint of step 2 */
  b = lode_train_job_new (&config, &source, part, FALSE, NULL, &error);
  g_assert_false (lode_train_job_run (b, on_progress, &wb, cancel, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);
  g_assert_cmpint (lode_train_job_get_step (b), ==, 2);
  g_assert_true (g_file_test (part, G_FILE_TEST_EXISTS));

  /* resumed: ends with the very weights of the run that never stopped */
  c = lode_train_job_new (&config, &source, part, TRUE, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lode_train_job_get_step (c), ==, 2);
  g_assert_true (lode_train_job_run (c, on_progress, &wc, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (wc.reports, ==, 4);
  lode_unet_params (lode_train_job_get_model (a), &n);
  g_assert_cmpmem (lode_unet_params (lode_train_job_get_model (a), NULL), n * sizeof (float),
                   lode_unet_params (lode_train_job_get_model (c), NULL), n * sizeof (float));
  lode_unet_buffers (lode_train_job_get_model (a), &n);
  g_assert_cmpmem (lode_unet_buffers (lode_train_job_get_model (a), NULL), n * sizeof (float),
                   lode_unet_buffers (lode_train_job_get_model (c), NULL), n * sizeof (float));

  /* a resumed checkpoint of another model is refused */
  config.classes = 3;
  g_assert_null (lode_train_job_new (&config, &source, part, TRUE, NULL, &error));
  g_assert_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_CHECKPOINT);
  lode_test_rmtree (dir);
}

static void
test_learns (void)
{
  g_autoptr(LodeTrainJob) job = NULL;
  g_autoptr(GError) error = NULL;
  LodeTrainConfig config;
  LodeTrainMetrics before, after;

  small_config (&config);
  config.epochs = 8;
  config.dice_weight = 0.5f;
  job = lode_train_job_new (&config, &source, NULL, FALSE, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (lode_train_evaluate (lode_train_job_get_model (job), &config, &source,
                                      LODE_TRAIN_SPLIT_VALIDATION, &before, NULL, &error));
  g_assert_true (lode_train_job_run (job, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  after = *lode_train_job_get_metrics (job);
  g_test_message ("disc IoU %.3f -> %.3f, accuracy %.3f -> %.3f",
                  before.iou[1], after.iou[1], before.accuracy, after.accuracy);
  /* 4 validation patches of 1023 scored pixels */
  g_assert_cmpint (after.pixels, ==, N_VAL * (SIDE * SIDE - 1));
  g_assert_cmpfloat (after.iou[1], >, 0.6);
  g_assert_cmpfloat (after.iou[1], >, before.iou[1] + 0.3);
}

static void
test_checkpoint (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *path = g_build_filename (dir, "model.lode-unet", NULL);
  LodeUnetConfig uc = { LODE_UNET_RESNET18, BANDS, 2 };
  g_autoptr(LodeUnet) net = lode_unet_new (&uc, 5, NULL);
  g_autoptr(LodeUnet) back = NULL;
  g_autoptr(GError) error = NULL;
  LodeTrainConfig config, read;
  float image[BANDS * SIDE * SIDE], y1[2 * SIDE * SIDE], y2[2 * SIDE * SIDE];
  guint8 mask[SIDE * SIDE];
  g_autofree float *m = NULL, *v = NULL;
  g_autofree char *data = NULL;
  gsize len, np;
  gint64 step = 0;

  small_config (&config);
  make_sample (3, image, mask);
  lode_train_normalise (image, &config, SIDE, SIDE);
  /* one training forward moves the running statistics */
  lode_unet_forward (net, image, 1, SIDE, SIDE, LODE_UNET_TRAIN, y1, NULL);
  lode_unet_params (net, &np);
  m = g_new (float, np);
  v = g_new (float, np);
  for (gsize i = 0; i < np; i++)
    {
      m[i] = (float) i;
      v[i] = 1.0f / (1 + i);
    }
  g_assert_true (lode_train_checkpoint_save (path, net, &config, m, v, 17, &error));
  g_assert_no_error (error);
  g_clear_pointer (&m, g_free);
  g_clear_pointer (&v, g_free);

  back = lode_train_checkpoint_load (path, &read, &m, &v, &step, &error);
  g_assert_no_error (error);
  g_assert_cmpint (step, ==, 17);
  g_assert_cmpfloat (m[12345], ==, 12345.0f);
  g_assert_cmpfloat (v[99], ==, 1.0f / 100);
  g_assert_cmpint (read.encoder, ==, LODE_UNET_RESNET18);
  g_assert_cmpint (read.bands, ==, BANDS);
  g_assert_cmpfloat (read.std[1], ==, 70.0f);
  g_assert_cmpfloat (read.class_weights[1], ==, 2.0f);
  g_assert_cmpfloat (read.lr, ==, config.lr);
  g_assert_cmpint (read.band_select[0], ==, 7);
  g_assert_cmpint (read.band_select[2], ==, 2);
  /* the same outputs, bit for bit */
  g_assert_true (lode_unet_forward (net, image, 1, SIDE, SIDE, LODE_UNET_EVAL, y1, NULL));
  g_assert_true (lode_unet_forward (back, image, 1, SIDE, SIDE, LODE_UNET_EVAL, y2, NULL));
  g_assert_cmpmem (y1, sizeof y1, y2, sizeof y2);

  /* one flipped bit is found */
  g_file_get_contents (path, &data, &len, NULL);
  data[len / 2] ^= 0x10;
  g_file_set_contents (path, data, len, NULL);
  g_clear_pointer (&back, lode_unet_free);
  back = lode_train_checkpoint_load (path, NULL, NULL, NULL, NULL, &error);
  g_assert_null (back);
  g_assert_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_CHECKPOINT);
  g_assert_nonnull (strstr (error->message, path));
  g_clear_error (&error);
  /* a later format version is refused by name */
  data[len / 2] ^= 0x10;
  data[8] = 9;
  g_file_set_contents (path, data, len, NULL);
  g_assert_null (lode_train_checkpoint_load (path, NULL, NULL, NULL, NULL, &error));
  g_assert_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_CHECKPOINT);
  g_assert_nonnull (strstr (error->message, "9"));
  g_clear_error (&error);
  /* a band index below 0 or a standard deviation of 0, whole checksum and
   * all, is refused rather than read before the raster or divided by */
  config.band_select[1] = -1;
  g_assert_true (lode_train_checkpoint_save (path, net, &config, NULL, NULL, 0, &error));
  g_assert_no_error (error);
  g_assert_null (lode_train_checkpoint_load (path, NULL, NULL, NULL, NULL, &error));
  g_assert_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_CHECKPOINT);
  g_clear_error (&error);
  config.band_select[1] = 1;
  config.std[0] = 0.0f;
  g_assert_true (lode_train_checkpoint_save (path, net, &config, NULL, NULL, 0, &error));
  g_assert_no_error (error);
  g_assert_null (lode_train_checkpoint_load (path, NULL, NULL, NULL, NULL, &error));
  g_assert_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_CHECKPOINT);
  g_clear_error (&error);
  /* a configuration training would refuse (batch size 0, learning rate
   * NaN) is refused when read back too, naming the file */
  config.std[0] = 200.0f;
  config.batch_size = 0;
  g_assert_true (lode_train_checkpoint_save (path, net, &config, NULL, NULL, 0, &error));
  g_assert_no_error (error);
  g_assert_null (lode_train_checkpoint_load (path, NULL, NULL, NULL, NULL, &error));
  g_assert_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_CHECKPOINT);
  g_assert_nonnull (strstr (error->message, path));
  g_clear_error (&error);
  config.batch_size = 4;
  config.lr = NAN;
  if (lode_train_checkpoint_save (path, net, &config, NULL, NULL, 0, &error))
    {
      g_assert_null (lode_train_checkpoint_load (path, NULL, NULL, NULL, NULL, &error));
      g_assert_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_CHECKPOINT);
      g_assert_nonnull (strstr (error->message, path));
    }
  g_clear_error (&error);
  /* not a checkpoint at all */
  g_file_set_contents (path, "hello", 5, NULL);
  g_assert_null (lode_train_checkpoint_load (path, NULL, NULL, NULL, NULL, &error));
  g_assert_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_CHECKPOINT);
  lode_test_rmtree (dir);
}

static void
test_metrics (void)
{
  LodeTrainConfig config;
  LodeUnetConfig uc = { LODE_UNET_RESNET18, BANDS, 2 };
  g_autoptr(LodeUnet) net = lode_unet_new (&uc, 1, NULL);
  g_autoptr(GError) error = NULL;
  int head_w = lode_unet_find_tensor (net, "segmentation_head.0.weight");
  int head_b = lode_unet_find_tensor (net, "segmentation_head.0.bias");
  LodeTrainMetrics m;
  gint64 ones = 0, scored = 0;

  small_config (&config);
  /* a head that says "class 1" everywhere */
  memset (lode_unet_tensor_data (net, head_w), 0, lode_unet_tensor_numel (net, head_w) * sizeof (float));
  lode_unet_tensor_data (net, head_b)[0] = 0.0f;
  lode_unet_tensor_data (net, head_b)[1] = 1.0f;
  for (int i = 0; i < N_VAL; i++)
    {
      float image[BANDS * SIDE * SIDE];
      guint8 mask[SIDE * SIDE];
      make_sample (100 + i, image, mask);
      for (int q = 0; q < SIDE * SIDE; q++)
        if (mask[q] != 255)
          {
            scored++;
            ones += mask[q];
          }
    }
  g_assert_true (lode_train_evaluate (net, &config, &source, LODE_TRAIN_SPLIT_VALIDATION, &m,
                                      NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (m.pixels, ==, scored);
  /* every pixel predicted 1: IoU(1) = #1 / all, IoU(0) = 0, F1 = 2TP/(2TP+FP) */
  g_assert_cmpfloat_with_epsilon (m.iou[1], (double) ones / scored, 1e-12);
  g_assert_cmpfloat (m.iou[0], ==, 0.0);
  g_assert_cmpfloat_with_epsilon (m.mean_iou, 0.5 * ones / scored, 1e-12);
  g_assert_cmpfloat_with_epsilon (m.accuracy, (double) ones / scored, 1e-12);
  g_assert_cmpfloat_with_epsilon (m.f1, 2.0 * ones / (2.0 * ones + (scored - ones)), 1e-12);
}

static void
test_bad_config (void)
{
  LodeTrainConfig config;
  g_autoptr(GError) error = NULL;
  LodeTrainSource odd = source;

  small_config (&config);
  config.std[2] = 0.0f;
  g_assert_null (lode_train_job_new (&config, &source, NULL, FALSE, NULL, &error));
  g_assert_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_CONFIG);
  g_clear_error (&error);
  /* bf16 is a GPU mode; fp16 is not one Lode has */
  small_config (&config);
  g_strlcpy (config.precision, "fp16", sizeof config.precision);
  g_assert_null (lode_train_job_new (&config, &source, NULL, FALSE, NULL, &error));
  g_assert_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_CONFIG);
  g_assert_nonnull (strstr (error->message, "bf16"));
  g_clear_error (&error);
  small_config (&config);
  odd.height = 40;
  g_assert_null (lode_train_job_new (&config, &odd, NULL, FALSE, NULL, &error));
  g_assert_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_DATA);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/train/checkpoint", test_checkpoint);
  g_test_add_func ("/train/metrics", test_metrics);
  g_test_add_func ("/train/bad-config", test_bad_config);
  g_test_add_func ("/train/resume", test_resume);
  g_test_add_func ("/train/learns", test_learns);
  return g_test_run ();
}
