/* Prithvi-EO-2.0 300M with the recipe's UperNet decoder against TerraTorch
 * (tests/reference/prithvi_reference.py, case 300m). Suite slow: it writes
 * the official checkpoint's layout (Prithvi_EO_V2_300M.pt: PrithviMAE with
 * its MAE decoder, 1.33 GB, values by the weights rule) and a decoder
 * checkpoint into a temporary folder, removed at the end.
 *
 * Tolerance: 1e-4 of the largest reference value for the outputs of blocks
 * 0-3 (what the decoder reads), of block 23 (after the final norm) and the
 * logits. Float32 on both sides with different summation orders over
 * 1024- and 4096-long dot products; measured about 1e-6 everywhere (the
 * rule's weights keep the residual stream from growing through the 24
 * blocks), so 1e-4 leaves room for other BLAS builds and still catches any
 * wrong operation, which moves values by 1e-2 or more. Takes about 20 s
 * and 2.5 GB on two cores. */
#include "config.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "lode-prithvi.h"
#include "lode-test-prithvi.h"
#include "lode-test-util.h"

#define SIZE 128
#define TOKENS 65

static char *dir, *encoder_path, *decoder_path;

static void
write_checkpoints (void)
{
  gint64 t0 = g_get_monotonic_time ();

  dir = lode_test_mkdtemp ();
  encoder_path = g_build_filename (dir, "Prithvi_EO_V2_300M.pt", NULL);
  decoder_path = g_build_filename (dir, "upernet.pt", NULL);
  {
    g_autoptr(GPtrArray) layout = lode_test_prithvi_layout ("prithvi_300m.layout.tsv");

    lode_test_prithvi_write_ckpt (encoder_path, layout, "", LODE_TEST_WRAP_NONE, NULL);
  }
  {
    g_autoptr(GPtrArray) layout = lode_test_prithvi_layout ("prithvi_300m_upernet.layout.tsv");

    lode_test_prithvi_write_ckpt (decoder_path, layout, "", LODE_TEST_WRAP_NONE, NULL);
  }
  g_test_message ("checkpoints written in %.1f s", (g_get_monotonic_time () - t0) / 1e6);
}

/* The default load: the configuration from the shapes, blocks 0-3 only,
 * and the logits. */
static void
test_logits (void)
{
  g_autoptr(GError) error = NULL;
  gint64 t0 = g_get_monotonic_time ();
  g_autoptr(LodePrithviModel) model = lode_prithvi_model_new_from_checkpoint (encoder_path, decoder_path,
                                                                              NULL, &error);
  const LodePrithviConfig *c;
  g_autofree float *raw = g_new (float, 6 * SIZE * SIZE);
  g_autofree float *logits = g_new (float, 2 * SIZE * SIZE);
  g_autoptr(LodeTestRecord) ref = lode_test_prithvi_record ("300m", "logits");
  double err;

  g_assert_no_error (error);
  g_test_message ("loaded in %.1f s", (g_get_monotonic_time () - t0) / 1e6);
  c = lode_prithvi_encoder_get_config (lode_prithvi_model_get_encoder (model));
  g_assert_cmpstr (c->size_name, ==, "300M");
  g_assert_cmpint (c->embed_dim, ==, 1024);
  g_assert_cmpint (c->depth, ==, 24);
  g_assert_cmpint (c->loaded_depth, ==, 4);
  g_assert_cmpint (c->num_heads, ==, 16);
  g_assert_cmpint (c->mlp_hidden, ==, 4096);
  g_assert_cmpint (c->patch_size, ==, 16);
  g_assert_cmpint (c->in_chans, ==, 6);
  g_assert_false (c->temporal_encoding);
  g_assert_false (c->location_encoding);
  g_assert_cmpuint (lode_upernet_n_params (lode_prithvi_model_get_decoder (model)), ==, 15082242);

  lode_test_prithvi_raw_input (raw, 1, SIZE, SIZE);
  t0 = g_get_monotonic_time ();
  g_assert_true (lode_prithvi_model_predict (model, raw, 1, 6, SIZE, SIZE, NULL, logits, NULL, NULL, &error));
  g_assert_no_error (error);
  g_test_message ("one 128 x 128 patch segmented in %.2f s", (g_get_monotonic_time () - t0) / 1e6);
  err = lode_test_record_error (ref, logits);
  g_test_message ("logits: relative error %.3g", err);
  g_assert_cmpfloat (err, <, 1e-4);
}

/* Every block loaded: the outputs of blocks 0-3 and of the last. */
static void
test_blocks (void)
{
  LodePrithviOptions options;
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeCheckpoint) ckpt = lode_checkpoint_open (encoder_path, &error);
  g_autoptr(LodePrithviEncoder) encoder = NULL;
  g_autofree float *raw = g_new (float, 6 * SIZE * SIZE);
  g_autofree float *input = g_new (float, 6 * SIZE * SIZE);
  const int blocks[5] = { 0, 1, 2, 3, 23 };
  float *outs[5];

  g_assert_no_error (error);
  lode_prithvi_options_init (&options);
  options.load_all_blocks = TRUE;
  encoder = lode_prithvi_encoder_new_from_checkpoint (ckpt, &options, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lode_prithvi_encoder_get_config (encoder)->loaded_depth, ==, 24);
  lode_test_prithvi_raw_input (raw, 1, SIZE, SIZE);
  g_assert_true (lode_prithvi_normalise (input, raw, 1, 6, SIZE, SIZE, &error));
  for (int i = 0; i < 5; i++)
    outs[i] = g_new (float, TOKENS * 1024);
  g_assert_true (lode_prithvi_encoder_forward (encoder, input, 1, SIZE, SIZE, NULL, blocks, 5, outs, &error));
  g_assert_no_error (error);
  for (int i = 0; i < 5; i++)
    {
      g_autofree char *name = g_strdup_printf ("block%d", blocks[i]);
      g_autoptr(LodeTestRecord) ref = lode_test_prithvi_record ("300m", name);
      double err = lode_test_record_error (ref, outs[i]);

      g_test_message ("%s: relative error %.3g", name, err);
      g_assert_cmpfloat (err, <, 1e-4);
      g_free (outs[i]);
    }
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  write_checkpoints ();
  g_test_add_func ("/prithvi-300m/logits", test_logits);
  g_test_add_func ("/prithvi-300m/blocks", test_blocks);
  status = g_test_run ();
  lode_test_rmtree (dir);
  g_free (dir);
  g_free (encoder_path);
  g_free (decoder_path);
  return status;
}
