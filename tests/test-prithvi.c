/* Prithvi-EO-2.0 + UperNet in a reduced configuration (width 64, 4 blocks,
 * 4 heads, decoder channels 32, 3 classes, time and location encodings)
 * against TerraTorch's own model on the same weights and input
 * (tests/reference/prithvi_reference.py); checkpoints as TerraTorch and
 * Lightning save them; batching, band selection and errors.
 *
 * Tolerance: 1e-4 of the largest reference value, for every block output
 * and the logits. Both sides compute in float32 with different summation
 * orders (OpenBLAS against PyTorch's kernels); the measured error is
 * about 1e-6 relative, so 1e-4 leaves room for other BLAS builds while a
 * wrong operation (a missing encoding, a transposed head, the wrong
 * interpolation) moves values by 1e-2 or more. */
#include "config.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "lode-prithvi.h"
#include "lode-test-prithvi.h"
#include "lode-test-util.h"
#include "lode-test-weights.h"

#define TOL 1e-4
#define N 2
#define SIZE 64

static const float temporal[2 * N] = { 2016.0f, 15.0f, 2022.0f, 200.0f };
static const float location[2 * N] = { 6.25f, -1.75f, 5.5f, -2.125f };

typedef struct {
  char *dir;
  char *path;
} Fixture;

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  g_autoptr(GPtrArray) layout = lode_test_prithvi_layout ("prithvi_reduced.layout.tsv");

  (void) data;
  f->dir = lode_test_mkdtemp ();
  f->path = g_build_filename (f->dir, "reduced.pt", NULL);
  lode_test_prithvi_write_ckpt (f->path, layout, "", LODE_TEST_WRAP_NONE, NULL);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  (void) data;
  lode_test_rmtree (f->dir);
  g_free (f->dir);
  g_free (f->path);
}

static float *
predict (LodePrithviModel *model, const float *raw, int n, int bands, const LodePrithviCoords *coords)
{
  g_autoptr(GError) error = NULL;
  float *logits = g_new (float, (gsize) n * 3 * SIZE * SIZE);

  g_assert_true (lode_prithvi_model_predict (model, raw, n, bands, SIZE, SIZE, coords, logits, NULL, NULL, &error));
  g_assert_no_error (error);
  return logits;
}

static void
test_config (Fixture *f, gconstpointer data)
{
  g_autoptr(LodePrithviModel) model = lode_test_prithvi_open (f->path, NULL, FALSE);
  const LodePrithviConfig *c = lode_prithvi_encoder_get_config (lode_prithvi_model_get_encoder (model));
  LodeUpernet *decoder = lode_prithvi_model_get_decoder (model);
  const LodeUpernetConfig *d = lode_upernet_get_config (decoder);
  g_autoptr(GPtrArray) layout = lode_test_prithvi_layout ("prithvi_reduced.layout.tsv");
  gsize decoder_params = 0;

  (void) data;
  g_assert_cmpint (c->embed_dim, ==, 64);
  g_assert_cmpint (c->depth, ==, 4);
  g_assert_cmpint (c->loaded_depth, ==, 4);
  g_assert_cmpint (c->num_heads, ==, 4);
  g_assert_cmpint (c->mlp_hidden, ==, 256);
  g_assert_cmpint (c->in_chans, ==, 6);
  g_assert_cmpint (c->patch_size, ==, 16);
  g_assert_cmpint (c->img_size, ==, 224);
  g_assert_true (c->temporal_encoding);
  g_assert_true (c->location_encoding);
  g_assert_cmpstr (c->size_name, ==, "custom");
  for (int i = 0; i < 4; i++)
    g_assert_cmpint (c->feature_blocks[i], ==, i);
  g_assert_cmpint (d->embed_dim, ==, 64);
  g_assert_cmpint (d->channels, ==, 32);
  g_assert_cmpint (d->classes, ==, 3);

  /* every decoder tensor of TerraTorch's state dict, by name and size */
  for (guint i = 0; i < layout->len; i++)
    {
      LodeTestLayoutEntry *e = layout->pdata[i];
      gsize numel = 1;
      int k;

      if (g_str_has_prefix (e->name, "encoder.") || g_str_has_suffix (e->name, "num_batches_tracked"))
        continue;
      for (int dd = 0; dd < e->ndim; dd++)
        numel *= (gsize) e->shape[dd];
      k = lode_upernet_find_tensor (decoder, e->name);
      g_assert_cmpint (k, >=, 0);
      g_assert_cmpuint (lode_upernet_tensor_numel (decoder, (guint) k), ==, numel);
      if (!lode_upernet_tensor_is_buffer (decoder, (guint) k))
        decoder_params += numel;
    }
  g_assert_cmpuint (lode_upernet_n_params (decoder), ==, decoder_params);
}

/* Every block output and the logits against TerraTorch. */
static void
test_parity (Fixture *f, gconstpointer data)
{
  g_autoptr(LodePrithviModel) model = lode_test_prithvi_open (f->path, NULL, FALSE);
  LodePrithviEncoder *encoder = lode_prithvi_model_get_encoder (model);
  g_autofree float *raw = g_new (float, (gsize) N * 6 * SIZE * SIZE);
  g_autofree float *input = g_new (float, (gsize) N * 6 * SIZE * SIZE);
  g_autofree float *logits = NULL;
  g_autofree guint8 *masks = g_new (guint8, (gsize) N * SIZE * SIZE);
  LodePrithviCoords coords = { temporal, location };
  const int blocks[4] = { 0, 1, 2, 3 };
  float *outs[4];
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeTestRecord) ref_logits = lode_test_prithvi_record ("reduced", "logits");
  gsize plane = SIZE * SIZE;

  (void) data;
  lode_test_prithvi_raw_input (raw, N, SIZE, SIZE);
  g_assert_true (lode_prithvi_normalise (input, raw, N, 6, SIZE, SIZE, &error));
  for (int i = 0; i < 4; i++)
    outs[i] = g_new (float, (gsize) N * 17 * 64);
  g_assert_true (lode_prithvi_encoder_forward (encoder, input, N, SIZE, SIZE, &coords, blocks, 4, outs, &error));
  g_assert_no_error (error);
  for (int i = 0; i < 4; i++)
    {
      g_autofree char *name = g_strdup_printf ("block%d", i);
      g_autoptr(LodeTestRecord) ref = lode_test_prithvi_record ("reduced", name);
      double err = lode_test_record_error (ref, outs[i]);

      g_test_message ("%s: relative error %.3g", name, err);
      g_assert_cmpfloat (err, <, TOL);
      g_free (outs[i]);
    }

  logits = predict (model, raw, N, 6, &coords);
  g_test_message ("logits: relative error %.3g", lode_test_record_error (ref_logits, logits));
  g_assert_cmpfloat (lode_test_record_error (ref_logits, logits), <, TOL);

  /* the masks are the arg max of the logits */
  g_assert_true (lode_prithvi_model_predict (model, raw, N, 6, SIZE, SIZE, &coords, NULL, masks, NULL, &error));
  for (int b = 0; b < N; b++)
    for (gsize p = 0; p < plane; p++)
      {
        const float *l = logits + (gsize) b * 3 * plane + p;
        guint8 m = masks[b * plane + p];

        for (int k = 0; k < 3; k++)
          g_assert_cmpfloat (l[m * plane], >=, l[k * plane]);
      }

  /* without coordinates the encodings are left out: the output changes */
  {
    g_autofree float *plain = predict (model, raw, N, 6, NULL);

    g_assert_cmpfloat (lode_test_record_error (ref_logits, plain), >, 10 * TOL);
  }
}

/* One image at a time gives what the batch gives; 13 SmallMinesDS bands
 * select bands 0, 1, 2, 7, 8, 9; nodata (NaN) reads as 0. */
static void
test_batch_and_bands (Fixture *f, gconstpointer data)
{
  g_autoptr(LodePrithviModel) model = lode_test_prithvi_open (f->path, NULL, FALSE);
  gsize plane = SIZE * SIZE;
  g_autofree float *raw = g_new (float, (gsize) N * 6 * plane);
  g_autofree float *raw13 = g_new (float, (gsize) N * 13 * plane);
  g_autofree float *batch = NULL, *wide = NULL, *zeroed = NULL, *holes = NULL;
  LodePrithviCoords coords = { temporal, location };

  (void) data;
  lode_test_prithvi_raw_input (raw, N, SIZE, SIZE);
  batch = predict (model, raw, N, 6, &coords);
  for (int b = 0; b < N; b++)
    {
      LodePrithviCoords one = { temporal + 2 * b, location + 2 * b };
      g_autofree float *single = predict (model, raw + (gsize) b * 6 * plane, 1, 6, &one);

      for (gsize i = 0; i < 3 * plane; i++)
        g_assert_cmpfloat_with_epsilon (single[i], batch[(gsize) b * 3 * plane + i], 1e-5);
    }

  for (int b = 0; b < N; b++)
    for (int band = 0; band < 13; band++)
      for (gsize p = 0; p < plane; p++)
        raw13[((gsize) b * 13 + band) * plane + p] = -9999.0f + band;
  for (int b = 0; b < N; b++)
    for (int c = 0; c < 6; c++)
      memcpy (raw13 + ((gsize) b * 13 + lode_prithvi_band_indices[c]) * plane,
              raw + ((gsize) b * 6 + c) * plane, plane * sizeof (float));
  wide = predict (model, raw13, N, 13, &coords);
  g_assert_cmpmem (wide, 3 * N * plane * sizeof (float), batch, 3 * N * plane * sizeof (float));

  for (gsize p = 0; p < 40; p++)
    raw[p] = 0.0f;
  zeroed = predict (model, raw, N, 6, &coords);
  for (gsize p = 0; p < 40; p++)
    raw[p] = NAN;
  holes = predict (model, raw, N, 6, &coords);
  g_assert_cmpmem (holes, 3 * N * plane * sizeof (float), zeroed, 3 * N * plane * sizeof (float));
}

static gboolean
is_encoder (const char *name)
{
  return g_str_has_prefix (name, "encoder.");
}

static gboolean
is_not_encoder (const char *name)
{
  return !is_encoder (name);
}

/* A Lightning checkpoint ({'state_dict': {"model.encoder...": ...}}) and an
 * encoder and a decoder in two files give the same logits. */
static void
test_checkpoint_forms (Fixture *f, gconstpointer data)
{
  g_autoptr(GPtrArray) layout = lode_test_prithvi_layout ("prithvi_reduced.layout.tsv");
  g_autofree char *lightning = g_build_filename (f->dir, "lightning.ckpt", NULL);
  g_autofree char *enc = g_build_filename (f->dir, "encoder.pt", NULL);
  g_autofree char *dec = g_build_filename (f->dir, "decoder.pt", NULL);
  g_autofree float *raw = g_new (float, (gsize) N * 6 * SIZE * SIZE);
  g_autoptr(LodeTestRecord) ref = lode_test_prithvi_record ("reduced", "logits");
  LodePrithviCoords coords = { temporal, location };
  g_autoptr(GError) error = NULL;

  (void) data;
  lode_test_prithvi_raw_input (raw, N, SIZE, SIZE);
  lode_test_prithvi_write_ckpt (lightning, layout, "model.", LODE_TEST_WRAP_STATE_DICT, NULL);
  lode_test_prithvi_write_ckpt (enc, layout, "", LODE_TEST_WRAP_NONE, is_encoder);
  lode_test_prithvi_write_ckpt (dec, layout, "", LODE_TEST_WRAP_NONE, is_not_encoder);
  {
    g_autoptr(LodePrithviModel) model = lode_test_prithvi_open (lightning, NULL, FALSE);
    g_autofree float *logits = predict (model, raw, N, 6, &coords);

    g_assert_cmpfloat (lode_test_record_error (ref, logits), <, TOL);
  }
  {
    g_autoptr(LodePrithviModel) model = lode_test_prithvi_open (enc, dec, FALSE);
    g_autofree float *logits = predict (model, raw, N, 6, &coords);

    g_assert_cmpfloat (lode_test_record_error (ref, logits), <, TOL);
  }
  /* the encoder alone has no decoder */
  {
    LodePrithviOptions options;
    g_autoptr(LodePrithviModel) model = NULL;

    lode_prithvi_options_init (&options);
    options.num_heads = 4;
    model = lode_prithvi_model_new_from_checkpoint (enc, NULL, &options, &error);
    g_assert_error (error, LODE_UPERNET_ERROR, LODE_UPERNET_ERROR_CHECKPOINT);
    g_assert_null (model);
    g_clear_error (&error);
    /* the decoder alone has no encoder */
    model = lode_prithvi_model_new_from_checkpoint (dec, NULL, &options, &error);
    g_assert_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_CHECKPOINT);
    g_assert_null (model);
    g_clear_error (&error);
    /* a fresh decoder for training: the recipe's 256 channels */
    model = lode_prithvi_model_new_with_decoder (enc, 2, 0, 7, &options, &error);
    g_assert_no_error (error);
    g_assert_cmpint (lode_prithvi_model_get_classes (model), ==, 2);
    g_assert_cmpint (lode_upernet_get_config (lode_prithvi_model_get_decoder (model))->channels, ==, 256);
  }
}

static gboolean
drop_block2_fc1 (const char *name)
{
  return !g_str_equal (name, "encoder.blocks.2.mlp.fc1.weight");
}

static void
test_errors (Fixture *f, gconstpointer data)
{
  g_autoptr(GPtrArray) layout = lode_test_prithvi_layout ("prithvi_reduced.layout.tsv");
  g_autofree char *broken = g_build_filename (f->dir, "broken.pt", NULL);
  g_autofree float *raw = g_new0 (float, (gsize) 13 * SIZE * SIZE);
  g_autoptr(LodePrithviModel) model = lode_test_prithvi_open (f->path, NULL, FALSE);
  LodePrithviOptions options;
  g_autoptr(GError) error = NULL;
  LodePrithviModel *bad;
  float logits[3 * 8 * 8];

  (void) data;
  lode_prithvi_options_init (&options);
  options.num_heads = 4;

  /* a block tensor missing */
  lode_test_prithvi_write_ckpt (broken, layout, "", LODE_TEST_WRAP_NONE, drop_block2_fc1);
  bad = lode_prithvi_model_new_from_checkpoint (broken, NULL, &options, &error);
  g_assert_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_CHECKPOINT);
  g_assert_nonnull (strstr (error->message, "encoder.blocks.2.mlp.fc1.weight"));
  g_assert_null (bad);
  g_clear_error (&error);

  /* heads that do not divide the width */
  options.num_heads = 5;
  bad = lode_prithvi_model_new_from_checkpoint (f->path, NULL, &options, &error);
  g_assert_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_CONFIG);
  g_clear_error (&error);
  options.num_heads = 4;

  /* a feature block beyond the depth */
  options.feature_blocks[0] = 0, options.feature_blocks[1] = 1;
  options.feature_blocks[2] = 2, options.feature_blocks[3] = 4;
  bad = lode_prithvi_model_new_from_checkpoint (f->path, NULL, &options, &error);
  g_assert_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_CONFIG);
  g_assert_null (bad);
  g_clear_error (&error);

  /* a file that is not a checkpoint */
  g_assert_true (g_file_set_contents (broken, "not a checkpoint", -1, NULL));
  bad = lode_prithvi_model_new_from_checkpoint (broken, NULL, &options, &error);
  g_assert_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_NOT_ZIP);
  g_clear_error (&error);

  /* wrong band count, images too small to pad by reflection to a multiple
   * of 32 (8 x 8, 16 x 16) */
  g_assert_false (lode_prithvi_model_predict (model, raw, 1, 4, SIZE, SIZE, NULL, NULL, (guint8 *) logits, NULL, &error));
  g_assert_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_INPUT);
  g_clear_error (&error);
  g_assert_false (lode_prithvi_model_predict (model, raw, 1, 6, 8, 8, NULL, logits, NULL, NULL, &error));
  g_assert_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_INPUT);
  g_clear_error (&error);
  g_assert_false (lode_prithvi_model_predict (model, raw, 1, 6, 16, 16, NULL, logits, NULL, NULL, &error));
  g_assert_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_INPUT);
  g_clear_error (&error);
  /* a 1 x 1 grid is too small for the decoder's pyramid */
  {
    const float *maps[4] = { raw, raw, raw, raw };

    g_assert_false (lode_upernet_forward (lode_prithvi_model_get_decoder (model), maps, 1, 1, 1, logits, &error));
    g_assert_error (error, LODE_UPERNET_ERROR, LODE_UPERNET_ERROR_SIZE);
    g_clear_error (&error);
  }
  /* a cancelled job stops before the first group of patches */
  {
    g_autoptr(GCancellable) cancellable = g_cancellable_new ();

    g_cancellable_cancel (cancellable);
    g_assert_false (lode_prithvi_model_predict (model, raw, 1, 6, SIZE, SIZE, NULL, NULL, (guint8 *) raw, cancellable,
                                                &error));
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
    g_clear_error (&error);
  }
  /* 48 x 48 pads to 64 */
  {
    g_autofree guint8 *masks = g_new (guint8, 48 * 48);

    g_assert_true (lode_prithvi_model_predict (model, raw, 1, 6, 48, 48, NULL, NULL, masks, NULL, &error));
    g_assert_no_error (error);
  }
}

/* AdaptiveAvgPool2d by hand: 4 -> 3 and 2 -> 3 (overlapping cells). */
static void
test_adaptive_pool (void)
{
  const float in[16] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
  const float in2[4] = { 1, 2, 3, 4 };
  float out[9];

  lode_upernet_adaptive_avg_pool (out, in, 1, 4, 4, 3, 3);
  /* rows {0,1},{1,2},{2,3}; columns the same */
  g_assert_cmpfloat (out[0], ==, 2.5f);
  g_assert_cmpfloat (out[1], ==, 3.5f);
  g_assert_cmpfloat (out[4], ==, 7.5f);
  g_assert_cmpfloat (out[8], ==, 12.5f);
  lode_upernet_adaptive_avg_pool (out, in2, 1, 2, 2, 3, 3);
  /* cells 0: {0}, 1: {0,1}, 2: {1} */
  g_assert_cmpfloat (out[0], ==, 1.0f);
  g_assert_cmpfloat (out[1], ==, 1.5f);
  g_assert_cmpfloat (out[4], ==, 2.5f);
  g_assert_cmpfloat (out[8], ==, 4.0f);
  lode_upernet_adaptive_avg_pool (out, in, 1, 4, 4, 1, 1);
  g_assert_cmpfloat (out[0], ==, 7.5f);
}

/* The recipe's decoder for the 300M encoder has TerraTorch's 15,082,242
 * trainable parameters (FORMAT.md: "15.1 M trainable"), initialised within
 * PyTorch's bounds. */
static void
test_upernet_new (void)
{
  LodeUpernetConfig config = { 1024, 256, 2 };
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeUpernet) a = lode_upernet_new (&config, 1, &error);
  g_autoptr(LodeUpernet) b = lode_upernet_new (&config, 1, &error);
  int head = lode_upernet_find_tensor (a, "head.head.2.weight");
  int var = lode_upernet_find_tensor (a, "decoder.bottleneck.norm.running_var");
  float *w;

  g_assert_no_error (error);
  g_assert_cmpuint (lode_upernet_n_params (a), ==, 15082242);
  g_assert_cmpint (head, >=, 0);
  w = lode_upernet_tensor_data (a, (guint) head);
  for (int i = 0; i < 512; i++)
    g_assert_cmpfloat (fabsf (w[i]), <=, 1.0f / 16.0f);
  g_assert_cmpfloat (w[0], !=, w[1]);
  g_assert_cmpmem (w, 512 * sizeof (float), lode_upernet_tensor_data (b, (guint) head), 512 * sizeof (float));
  g_assert_cmpfloat (lode_upernet_tensor_data (a, (guint) var)[0], ==, 1.0f);

  config.classes = 0;
  g_assert_null (lode_upernet_new (&config, 1, &error));
  g_assert_error (error, LODE_UPERNET_ERROR, LODE_UPERNET_ERROR_CONFIG);
}

/* The published sizes by name; a generated model with patch 14 (as the
 * 600M) on 128 x 128 patches: a 9 x 9 grid, a 36 x 36 decoder output
 * upsampled to the patch, finite and different from patch to patch. */
static void
test_generated (void)
{
  LodePrithviConfig c;
  LodeUpernetConfig d = { 64, 16, 2 };
  g_autoptr(GError) error = NULL;
  g_autoptr(LodePrithviModel) model = NULL;
  LodePrithviEncoder *encoder;
  g_autofree float *raw = g_new (float, 2 * 6 * 128 * 128);
  g_autofree float *logits = g_new (float, 2 * 2 * 128 * 128);
  int gh, gw;

  g_assert_true (lode_prithvi_config_init (&c, "600M"));
  g_assert_cmpint (c.embed_dim, ==, 1280);
  g_assert_cmpint (c.depth, ==, 32);
  g_assert_cmpint (c.num_heads, ==, 16);
  g_assert_cmpint (c.patch_size, ==, 14);
  g_assert_cmpint (c.mlp_hidden, ==, 5120);
  g_assert_true (lode_prithvi_config_init (&c, "tiny"));
  g_assert_true (c.temporal_encoding && c.location_encoding);
  g_assert_false (lode_prithvi_config_init (&c, "1B"));

  g_assert_true (lode_prithvi_config_init (&c, "600M"));
  c.embed_dim = 64, c.num_heads = 4, c.mlp_hidden = 128, c.depth = 6, c.loaded_depth = 4;
  c.size_name = NULL;
  encoder = lode_prithvi_encoder_new (&c, 3, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (lode_prithvi_encoder_get_config (encoder)->size_name, ==, "custom");
  lode_prithvi_encoder_grid (encoder, 128, 128, &gh, &gw);
  g_assert_cmpint (gh, ==, 9);
  g_assert_cmpint (gw, ==, 9);
  model = lode_prithvi_model_new (encoder, lode_upernet_new (&d, 4, &error));
  lode_test_prithvi_raw_input (raw, 2, 128, 128);
  g_assert_true (lode_prithvi_model_predict (model, raw, 2, 6, 128, 128, NULL, logits, NULL, NULL, &error));
  g_assert_no_error (error);
  for (gsize i = 0; i < 2 * 2 * 128 * 128; i++)
    g_assert_true (isfinite (logits[i]));
  g_assert_true (memcmp (logits, logits + 2 * 128 * 128, 2 * 128 * 128 * sizeof (float)) != 0);

  c.feature_blocks[3] = 6;
  g_assert_null (lode_prithvi_encoder_new (&c, 3, &error));
  g_assert_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_CONFIG);
}

/* sum (logits * r), in double */
static double
weighted_loss (LodeUpernet *d, const float *const f[4], const float *r, float *logits, gsize count)
{
  g_autoptr(GError) error = NULL;
  double sum = 0.0;

  g_assert_true (lode_upernet_forward_train (d, f, 4, 4, 4, 0.25f, 99, 20, 20, logits, &error));
  g_assert_no_error (error);
  for (gsize i = 0; i < count; i++)
    sum += (double) logits[i] * r[i];
  return sum;
}

/* Every parameter tensor's gradient against central differences of the
 * loss sum (logits * r) on a batch of 4, logits upsampled to 20 x 20 (the
 * decoder gives 16 x 16), dropout 0.25 with a fixed mask, batch statistics. Each tensor
 * is moved as a whole along two unit directions, its gradient g / |g| and
 * a random one u; (L(w + eps u) - L(w - eps u)) / (2 eps) must equal g . u
 * within 2 % of |g| plus 2e-3 (the rounding noise of a float32 loss of
 * about 10 over 2 eps = 2e-2). Moving a whole tensor averages out the ReLU
 * kinks that make single-weight differences unreliable; the biases before
 * batch norm, whose true gradient is 0, are checked along u only. */
static void
test_upernet_backward (void)
{
  LodeUpernetConfig config = { 16, 8, 3 };
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeUpernet) d = lode_upernet_new (&config, 5, &error);
  g_autoptr(GRand) rng = g_rand_new_with_seed (11);
  gsize count = 4 * 3 * 20 * 20;
  g_autofree float *r = g_new (float, count);
  g_autofree float *logits = g_new (float, count);
  float *feats[4];
  double worst = 0.0;
  guint checked = 0;

  for (int i = 0; i < 4; i++)
    {
      feats[i] = g_new (float, 4 * 16 * 4 * 4);
      for (int j = 0; j < 4 * 16 * 4 * 4; j++)
        feats[i][j] = (float) g_rand_double_range (rng, -2, 2);
    }
  for (gsize i = 0; i < count; i++)
    r[i] = (float) g_rand_double_range (rng, -1, 1);

  lode_upernet_zero_grad (d);
  weighted_loss (d, (const float *const *) feats, r, logits, count);
  lode_upernet_backward (d, r);

  for (guint t = 0; t < lode_upernet_n_tensors (d); t++)
    {
      float *w = lode_upernet_tensor_data (d, t);
      const float *g = lode_upernet_tensor_grad (d, t);
      gsize numel = lode_upernet_tensor_numel (d, t);
      g_autofree float *saved = NULL;
      g_autofree float *u = NULL;
      double gnorm = 0.0;

      if (g == NULL)
        continue;
      saved = g_memdup2 (w, numel * sizeof (float));
      u = g_new (float, numel);
      for (gsize i = 0; i < numel; i++)
        gnorm += (double) g[i] * g[i];
      gnorm = sqrt (gnorm);
      for (int dir = 0; dir < 2; dir++)
        {
          const double eps = 3e-3;
          double unorm = 0.0, gu = 0.0, up, down, fd, err;

          if (dir == 0 && gnorm < 1e-3)
            continue;
          for (gsize i = 0; i < numel; i++)
            {
              u[i] = dir == 0 ? g[i] : (float) g_rand_double_range (rng, -1, 1);
              unorm += (double) u[i] * u[i];
            }
          unorm = sqrt (unorm);
          for (gsize i = 0; i < numel; i++)
            {
              u[i] = (float) (u[i] / unorm);
              gu += (double) g[i] * u[i];
            }
          for (gsize i = 0; i < numel; i++)
            w[i] = saved[i] + (float) (eps * u[i]);
          up = weighted_loss (d, (const float *const *) feats, r, logits, count);
          for (gsize i = 0; i < numel; i++)
            w[i] = saved[i] - (float) (eps * u[i]);
          down = weighted_loss (d, (const float *const *) feats, r, logits, count);
          memcpy (w, saved, numel * sizeof (float));
          fd = (up - down) / (2.0 * eps);
          err = fabs (fd - gu) / (5e-2 * gnorm + 5e-3);
          worst = MAX (worst, err);
          if (err > 1.0)
            g_error ("%s along %s: backward %g, finite difference %g (|g| %g)",
                     lode_upernet_tensor_name (d, t), dir == 0 ? "g" : "u", gu, fd, gnorm);
          checked++;
        }
    }
  g_test_message ("worst error %.2f of the tolerance over %u checks", worst, checked);
  g_assert_cmpuint (checked, >=, 46 + 40);
  lode_upernet_release (d);

  /* training needs batch statistics over more than one patch */
  g_assert_false (lode_upernet_forward_train (d, (const float *const *) feats, 1, 4, 4, 0.0f, 0, 16, 16, logits,
                                              &error));
  g_assert_error (error, LODE_UPERNET_ERROR, LODE_UPERNET_ERROR_SIZE);
  for (int i = 0; i < 4; i++)
    g_free (feats[i]);
}

/* The gradients of every parameter and the running statistics after a
 * training pass against PyTorch's autograd on TerraTorch's UperNetDecoder
 * (prithvi_reference.py, case grad). Tolerance 1e-3 of each tensor's
 * largest reference gradient (at least 0.1: the biases before batch norm
 * have gradients of rounding size only); measured about 1e-6. */
static void
test_upernet_grad_parity (void)
{
  LodeUpernetConfig config = { 16, 8, 3 };
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeUpernet) d = lode_upernet_new (&config, 1, &error);
  g_autoptr(LodeTestRecord) ref_loss = lode_test_prithvi_record ("grad", "loss");
  gsize count = 4 * 3 * 20 * 20;
  g_autofree float *r = g_new (float, count);
  g_autofree float *logits = g_new (float, count);
  float *feats[4];
  double loss = 0.0;
  guint compared = 0;

  for (guint t = 0; t < lode_upernet_n_tensors (d); t++)
    {
      gint64 shape[4];
      int nd = lode_upernet_tensor_shape (d, t, shape);

      lode_test_weights_fill (lode_upernet_tensor_name (d, t), shape, nd, lode_upernet_tensor_data (d, t));
    }
  for (int k = 0; k < 4; k++)
    {
      feats[k] = g_new (float, 4 * 16 * 4 * 4);
      lode_test_prithvi_hashed (feats[k], 4 * 16 * 4 * 4, 1000 * k);
    }
  lode_test_prithvi_hashed (r, count, 77);
  lode_upernet_zero_grad (d);
  g_assert_true (lode_upernet_forward_train (d, (const float *const *) feats, 4, 4, 4, 0.0f, 0, 20, 20, logits,
                                             &error));
  g_assert_no_error (error);
  for (gsize i = 0; i < count; i++)
    loss += (double) logits[i] * r[i];
  g_assert_cmpfloat (fabs (loss - ref_loss->data[0]), <, 1e-4 * fabs (ref_loss->data[0]));
  lode_upernet_backward (d, r);

  for (guint t = 0; t < lode_upernet_n_tensors (d); t++)
    {
      const char *name = lode_upernet_tensor_name (d, t);
      gboolean buffer = lode_upernet_tensor_is_buffer (d, t);
      const float *got = buffer ? lode_upernet_tensor_data (d, t) : lode_upernet_tensor_grad (d, t);
      g_autoptr(LodeTestRecord) ref = NULL;
      double max_ref = 0.0, max_err = 0.0;

      if (buffer && !g_str_has_prefix (name, "decoder.bottleneck.norm."))
        continue;
      ref = lode_test_prithvi_record ("grad", name);
      g_assert_cmpuint (ref->count, ==, lode_upernet_tensor_numel (d, t));
      for (gsize i = 0; i < ref->count; i++)
        {
          max_ref = MAX (max_ref, fabs (ref->data[i]));
          max_err = MAX (max_err, fabs ((double) got[i] - ref->data[i]));
        }
      if (max_err > 1e-3 * MAX (max_ref, 0.1))
        g_error ("%s: %s differs from PyTorch by %g (largest %g)", name, buffer ? "value" : "gradient",
                 max_err, max_ref);
      compared++;
    }
  g_assert_cmpuint (compared, ==, 46 + 2);
  for (int k = 0; k < 4; k++)
    g_free (feats[k]);
}

/* The 600M's patch 14 on 70 x 70 patches against TerraTorch: the encoder
 * on a 5 x 5 grid (the border ignored, the position table interpolated from
 * 16 x 16); the segmenter on the input padded to 84 by reflection, at the
 * right and bottom (TerraTorch up to 1.1, the default) or on both sides
 * (TerraTorch 1.2). */
static void
test_patch14 (void)
{
  g_autoptr(GPtrArray) layout = lode_test_prithvi_layout ("prithvi_patch14.layout.tsv");
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *path = g_build_filename (dir, "patch14.pt", NULL);
  g_autofree float *raw = g_new (float, 2 * 6 * 70 * 70);
  g_autofree float *input = g_new (float, 2 * 6 * 70 * 70);
  g_autofree float *logits = g_new (float, 2 * 2 * 70 * 70);
  g_autoptr(LodePrithviModel) model = NULL;
  g_autoptr(LodeTestRecord) ref = lode_test_prithvi_record ("patch14", "logits");
  g_autoptr(LodeTestRecord) ref_end = lode_test_prithvi_record ("patch14", "logits_end");
  g_autoptr(GError) error = NULL;
  const int blocks[4] = { 0, 1, 2, 3 };
  float *outs[4];

  lode_test_prithvi_write_ckpt (path, layout, "", LODE_TEST_WRAP_NONE, NULL);
  model = lode_test_prithvi_open (path, NULL, FALSE);
  g_assert_cmpint (lode_prithvi_encoder_get_config (lode_prithvi_model_get_encoder (model))->patch_size, ==, 14);
  lode_test_prithvi_raw_input (raw, 2, 70, 70);
  g_assert_true (lode_prithvi_normalise (input, raw, 2, 6, 70, 70, &error));
  for (int i = 0; i < 4; i++)
    outs[i] = g_new (float, 2 * 26 * 64);
  g_assert_true (lode_prithvi_encoder_forward (lode_prithvi_model_get_encoder (model), input, 2, 70, 70, NULL,
                                               blocks, 4, outs, &error));
  for (int i = 0; i < 4; i++)
    {
      g_autofree char *name = g_strdup_printf ("block%d", i);
      g_autoptr(LodeTestRecord) r = lode_test_prithvi_record ("patch14", name);

      g_assert_cmpfloat (lode_test_record_error (r, outs[i]), <, TOL);
      g_free (outs[i]);
    }
  g_assert_true (lode_prithvi_model_predict (model, raw, 2, 6, 70, 70, NULL, logits, NULL, NULL, &error));
  g_assert_no_error (error);
  g_test_message ("logits, padded at the end: relative error %.3g", lode_test_record_error (ref_end, logits));
  g_assert_cmpfloat (lode_test_record_error (ref_end, logits), <, TOL);
  lode_prithvi_model_set_padding (model, LODE_PRITHVI_PAD_CENTRE);
  g_assert_true (lode_prithvi_model_predict (model, raw, 2, 6, 70, 70, NULL, logits, NULL, NULL, &error));
  g_assert_no_error (error);
  g_test_message ("logits, padded evenly: relative error %.3g", lode_test_record_error (ref, logits));
  g_assert_cmpfloat (lode_test_record_error (ref, logits), <, TOL);
  lode_test_rmtree (dir);
}

/* The official Prithvi_EO_V2_600M.pt layout (2.6 GB, written sparse with
 * zero storages) gives the 600M configuration; only the four blocks the
 * recipe reads are loaded. */
static void
test_600m_layout (void)
{
  g_autoptr(GPtrArray) layout = lode_test_prithvi_layout ("prithvi_600m.layout.tsv");
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *path = g_build_filename (dir, "Prithvi_EO_V2_600M.pt", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeCheckpoint) ckpt = NULL;
  g_autoptr(LodePrithviEncoder) encoder = NULL;
  const LodePrithviConfig *c;

  lode_test_prithvi_write_zero_ckpt (path, layout);
  ckpt = lode_checkpoint_open (path, &error);
  g_assert_no_error (error);
  encoder = lode_prithvi_encoder_new_from_checkpoint (ckpt, NULL, &error);
  g_assert_no_error (error);
  c = lode_prithvi_encoder_get_config (encoder);
  g_assert_cmpstr (c->size_name, ==, "600M");
  g_assert_cmpint (c->embed_dim, ==, 1280);
  g_assert_cmpint (c->depth, ==, 32);
  g_assert_cmpint (c->loaded_depth, ==, 4);
  g_assert_cmpint (c->num_heads, ==, 16);
  g_assert_cmpint (c->mlp_hidden, ==, 5120);
  g_assert_cmpint (c->patch_size, ==, 14);
  g_assert_cmpint (c->in_chans, ==, 6);
  g_assert_false (c->temporal_encoding || c->location_encoding);
  lode_test_rmtree (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/prithvi/reduced/config", Fixture, NULL, fixture_set_up, test_config, fixture_tear_down);
  g_test_add ("/prithvi/reduced/parity", Fixture, NULL, fixture_set_up, test_parity, fixture_tear_down);
  g_test_add ("/prithvi/reduced/batch-and-bands", Fixture, NULL, fixture_set_up, test_batch_and_bands,
              fixture_tear_down);
  g_test_add ("/prithvi/reduced/checkpoint-forms", Fixture, NULL, fixture_set_up, test_checkpoint_forms,
              fixture_tear_down);
  g_test_add ("/prithvi/reduced/errors", Fixture, NULL, fixture_set_up, test_errors, fixture_tear_down);
  g_test_add_func ("/prithvi/generated", test_generated);
  g_test_add_func ("/prithvi/patch14", test_patch14);
  g_test_add_func ("/prithvi/600m-layout", test_600m_layout);
  g_test_add_func ("/prithvi/upernet/adaptive-pool", test_adaptive_pool);
  g_test_add_func ("/prithvi/upernet/new", test_upernet_new);
  g_test_add_func ("/prithvi/upernet/backward", test_upernet_backward);
  g_test_add_func ("/prithvi/upernet/grad-parity", test_upernet_grad_parity);
  return g_test_run ();
}
