/* The SAM2 predictor around the decoder: embedding files (round trip,
 * atomic replacement, and refusal of cut, damaged, foreign or mismatched
 * files), and a predictor opened on a PyTorch checkpoint giving the same
 * masks as the decoder built on the same tensors, with clear errors for a
 * cut-short download and a wrong input size. */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>

#include "lode-checkpoint.h"
#include "lode-sam2-predictor.h"
#include "lode-test-ckpt.h"
#include "lode-test-util.h"
#include "lode-test-weights.h"

static void
reduced_config (LodeSam2Config *cfg)
{
  memset (cfg, 0, sizeof *cfg);
  cfg->decoder_dim = cfg->d_model = 32;
  cfg->decoder_heads = 4;
  cfg->decoder_mlp = 64;
  cfg->decoder_depth = 2;
  cfg->image_size = 128;
  cfg->num_multimask = 3;
  cfg->use_high_res_features = TRUE;
  cfg->pred_obj_scores = TRUE;
  cfg->iou_prediction_use_sigmoid = TRUE;
  cfg->dynamic_multimask_via_stability = TRUE;
  cfg->dynamic_multimask_stability_delta = 0.05;
  cfg->dynamic_multimask_stability_thresh = 0.98;
  cfg->size_name = "custom";
}

static LodeSam2Embedding *
rule_embedding (int size, int c)
{
  LodeSam2Embedding *e = lode_sam2_embedding_new (size, c);
  int s16 = size / 16;
  gint64 a[3] = { c, s16, s16 }, b[3] = { c / 8, 4 * s16, 4 * s16 }, d[3] = { c / 4, 2 * s16, 2 * s16 };

  lode_test_weights_fill ("input.image_embed", a, 3, e->image_embed);
  lode_test_weights_fill ("input.high_res_0", b, 3, e->high_res[0]);
  lode_test_weights_fill ("input.high_res_1", d, 3, e->high_res[1]);
  for (gsize i = 0; i < (gsize) c * s16 * s16; i++)
    e->image_embed[i] *= 50.0f;
  return e;
}

static void
assert_same_embedding (const LodeSam2Embedding *a, const LodeSam2Embedding *b)
{
  gsize s16 = (gsize) a->embed_size;

  g_assert_cmpint (a->image_size, ==, b->image_size);
  g_assert_cmpint (a->d_model, ==, b->d_model);
  g_assert_cmpint (memcmp (a->image_embed, b->image_embed, 4 * a->d_model * s16 * s16), ==, 0);
  g_assert_cmpint (memcmp (a->high_res[0], b->high_res[0], 4 * (a->d_model / 8) * 16 * s16 * s16), ==, 0);
  g_assert_cmpint (memcmp (a->high_res[1], b->high_res[1], 4 * (a->d_model / 4) * 4 * s16 * s16), ==, 0);
}

static void
test_embedding_file (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *path = g_build_filename (dir, "patch.emb", NULL);
  g_autoptr(LodeSam2Embedding) e = rule_embedding (128, 32);
  g_autoptr(LodeSam2Embedding) back = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *bytes = NULL;
  gsize len;
  g_autoptr(GDir) d = NULL;
  int n_files = 0;

  g_assert_true (lode_sam2_embedding_save (e, "tiny", path, &error));
  g_assert_no_error (error);
  /* saving again replaces the file; no temporary is left behind */
  g_assert_true (lode_sam2_embedding_save (e, "tiny", path, &error));
  d = g_dir_open (dir, 0, NULL);
  while (g_dir_read_name (d) != NULL)
    n_files++;
  g_assert_cmpint (n_files, ==, 1);
  g_assert_true (g_file_get_contents (path, &bytes, &len, NULL));
  g_assert_cmpuint (len, ==, 64 + lode_sam2_embedding_bytes (e));

  back = lode_sam2_embedding_load (path, "tiny", 128, &error);
  g_assert_no_error (error);
  assert_same_embedding (e, back);
  g_clear_pointer (&back, lode_sam2_embedding_free);
  back = lode_sam2_embedding_load (path, NULL, 0, &error);
  g_assert_no_error (error);
  g_clear_pointer (&back, lode_sam2_embedding_free);

  /* another model, another input size */
  g_assert_null (lode_sam2_embedding_load (path, "large", 128, &error));
  g_assert_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_FILE);
  g_assert_nonnull (strstr (error->message, "large"));
  g_clear_error (&error);
  g_assert_null (lode_sam2_embedding_load (path, "tiny", 1024, &error));
  g_assert_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_FILE);
  g_clear_error (&error);

  /* cut short, one byte changed, trailing bytes, announced sizes absurd */
  g_assert_null (lode_sam2_embedding_deserialize ((guint8 *) bytes, len - 1000, NULL, 0, &error));
  g_assert_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_FILE);
  g_assert_nonnull (strstr (error->message, "cut short"));
  g_clear_error (&error);
  bytes[len / 2] ^= 0x40;
  g_assert_null (lode_sam2_embedding_deserialize ((guint8 *) bytes, len, NULL, 0, &error));
  g_assert_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_FILE);
  g_assert_nonnull (strstr (error->message, "checksum"));
  g_clear_error (&error);
  bytes[len / 2] ^= 0x40;
  {
    g_autofree guint8 *longer = g_malloc0 (len + 8);

    memcpy (longer, bytes, len);
    g_assert_null (lode_sam2_embedding_deserialize (longer, len + 8, NULL, 0, &error));
    g_assert_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_FILE);
    g_clear_error (&error);
  }
  bytes[32] = 0x00;      /* image size 0x..00: not a multiple of 16 matching the rest */
  bytes[33] = 0x7f;
  g_assert_null (lode_sam2_embedding_deserialize ((guint8 *) bytes, len, NULL, 0, &error));
  g_assert_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_FILE);
  g_clear_error (&error);
  /* not an embedding at all, and a missing file, name the file */
  g_assert_true (g_file_set_contents (path, "hello", 5, NULL));
  g_assert_null (lode_sam2_embedding_load (path, NULL, 0, &error));
  g_assert_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_FILE);
  g_assert_nonnull (strstr (error->message, path));
  g_clear_error (&error);
  g_unlink (path);
  g_assert_null (lode_sam2_embedding_load (path, NULL, 0, &error));
  g_assert_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_FILE);
  g_rmdir (dir);
}

/* A torch zip with every decoder tensor of cfg (generated values). */
typedef struct {
  GArray *tensors;   /* LodeTestTensor */
  GPtrArray *strings;
} Listing;

static void
collect (const char *name, int ndim, const gint64 *shape, gpointer data)
{
  Listing *l = data;
  LodeTestTensor t = { 0 };
  gint64 n = 1;

  t.name = g_strdup (name);
  t.storage_type = "FloatStorage";
  t.key = g_strdup_printf ("%u", l->tensors->len);
  g_ptr_array_add (l->strings, (char *) t.name);
  g_ptr_array_add (l->strings, (char *) t.key);
  t.ndim = ndim;
  for (int i = 0; i < ndim; i++)
    {
      t.shape[i] = shape[i];
      n *= shape[i];
    }
  t.storage_numel = n;
  g_array_append_val (l->tensors, t);
}

static char *
write_decoder_checkpoint (const char *dir, const LodeSam2Config *cfg)
{
  Listing l = { g_array_new (FALSE, TRUE, sizeof (LodeTestTensor)), g_ptr_array_new_with_free_func (g_free) };
  g_autoptr(GByteArray) pkl = NULL;
  char *path = g_build_filename (dir, "decoder.pt", NULL);

  lode_sam2_decoder_list_tensors (cfg, collect, &l);
  pkl = lode_test_pickle_tensors ((LodeTestTensor *) l.tensors->data, l.tensors->len,
                                  LODE_TEST_WRAP_MODEL, FALSE);
  lode_test_ckpt_write (path, "decoder", pkl->data, pkl->len,
                        (LodeTestTensor *) l.tensors->data, l.tensors->len, TRUE);
  g_array_unref (l.tensors);
  g_ptr_array_unref (l.strings);
  return path;
}

static void
test_predictor_checkpoint (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  LodeSam2Config cfg;
  g_autofree char *path = NULL;
  g_autoptr(LodeSam2Predictor) pred = NULL;
  g_autoptr(LodeCheckpoint) ckpt = NULL;
  g_autoptr(GError) error = NULL;
  LodeSam2Decoder *direct;
  g_autoptr(LodeSam2Embedding) emb = rule_embedding (128, 32);
  g_autoptr(LodeSam2Prediction) a = NULL, b = NULL;
  float pts[4] = { 30.0f, 40.0f, 100.0f, 20.0f };
  int labels[2] = { 1, 0 };
  LodeSam2Click click = { 2, pts, labels, TRUE, { 10, 10, 90, 70 }, NULL, TRUE };
  g_autofree guint8 *m = g_malloc (96 * 128);

  reduced_config (&cfg);
  path = write_decoder_checkpoint (dir, &cfg);
  pred = lode_sam2_predictor_open (path, &cfg, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (lode_sam2_predictor_model_name (pred), ==, "custom");
  a = lode_sam2_predictor_predict (pred, emb, 128, 96, &click, &error);
  g_assert_no_error (error);

  ckpt = lode_checkpoint_open (path, &error);
  direct = lode_sam2_decoder_new_from_checkpoint (ckpt, &cfg, &error);
  g_assert_no_error (error);
  b = lode_sam2_decoder_predict (direct, emb, 128, 96, &click, &error);
  g_assert_no_error (error);
  g_assert_cmpint (a->n_masks, ==, 3);
  g_assert_cmpint (memcmp (a->masks, b->masks, sizeof (float) * 3 * 128 * 96), ==, 0);
  g_assert_cmpint (a->best, ==, b->best);
  lode_sam2_prediction_mask_u8 (a, a->best, m);
  for (gsize i = 0; i < 128 * 96; i++)
    g_assert_cmpint (m[i], ==, a->masks[(gsize) a->best * 128 * 96 + i] > 0.0f);
  lode_sam2_decoder_free (direct);

  /* the same checkpoint read for another width: the tensor is named */
  {
    LodeSam2Config wide = cfg;

    wide.decoder_dim = wide.d_model = 64;
    g_assert_null (lode_sam2_predictor_open (path, &wide, 0, &error));
    g_assert_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_WEIGHTS);
    g_assert_nonnull (strstr (error->message, "sam_prompt_encoder"));
    g_assert_nonnull (strstr (error->message, path));
    g_clear_error (&error);
  }
  g_assert_null (lode_sam2_predictor_open (path, &cfg, 800, &error));
  g_assert_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_CONFIG);
  g_clear_error (&error);
  g_unlink (path);
  g_rmdir (dir);
}

static void
test_truncated_download (void)
{
  const char *shared = g_getenv ("LODE_SHARED_DIR");
  g_autofree char *path = NULL;
  g_autoptr(GError) error = NULL;
  LodeSam2Config cfg;

  if (shared == NULL)
    {
      g_test_skip ("LODE_SHARED_DIR is not set");
      return;
    }
  path = g_build_filename (shared, "reference", "sam2", "sam2.1_hiera_tiny.truncated.pt", NULL);
  reduced_config (&cfg);
  g_assert_null (lode_sam2_predictor_open (path, &cfg, 1024, &error));
  g_assert_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_TRUNCATED);
  g_assert_nonnull (strstr (error->message, "cut short"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sam2-predictor/embedding-file", test_embedding_file);
  g_test_add_func ("/sam2-predictor/checkpoint", test_predictor_checkpoint);
  g_test_add_func ("/sam2-predictor/truncated-download", test_truncated_download);
  return g_test_run ();
}
