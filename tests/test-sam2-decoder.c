/* SAM2.1 prompt encoder + mask decoder against the official PyTorch code:
 * the fixtures of tests/reference/sam2_decoder_reference.py (a reduced
 * configuration and the real tiny one, weights from the shared rule), seven
 * prompt sets each. Mask logits within 1e-3, the same thresholded masks
 * except where the logit is within 1e-3 of 0, IoU and object score within
 * 1e-4, the stability fallback taken exactly where PyTorch takes it. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lode-sam2-decoder.h"
#include "lode-sam2-predictor.h"
#include "lode-test-sam2.h"
#include "lode-test-weights.h"

#define LOGIT_TOL 1e-3
#define SCORE_TOL 1e-4

static void
rule_scaled (const char *name, gint64 d0, gint64 d1, gint64 d2, float scale, float *out)
{
  gint64 shape[3] = { d0, d1, d2 };

  lode_test_weights_fill (name, shape, 3, out);
  for (gint64 i = 0; i < d0 * d1 * d2; i++)
    out[i] = out[i] * scale;
}

typedef struct {
  GKeyFile *index;
  GBytes *blob;
  LodeSam2Config config;
  LodeSam2Decoder *decoder;
  LodeSam2Embedding *emb;
  float *mask_input;
  int pw, ph, low_step, logit_step;
} Fixture;

static void
fixture_load (Fixture *f, const char *name)
{
  g_autofree char *ini = g_strdup_printf ("decoder-%s.ini", name);
  g_autofree char *bin = g_strdup_printf ("decoder-%s.bin", name);
  g_autofree char *ini_path = g_test_build_filename (G_TEST_DIST, "data", "sam2", ini, NULL);
  g_autofree char *bin_path = g_test_build_filename (G_TEST_DIST, "data", "sam2", bin, NULL);
  g_autoptr(GError) error = NULL;
  char *contents;
  gsize len;
  int c, e;

  memset (f, 0, sizeof *f);
  f->index = g_key_file_new ();
  g_assert_true (g_key_file_load_from_file (f->index, ini_path, G_KEY_FILE_NONE, &error));
  g_assert_no_error (error);
  g_assert_true (g_file_get_contents (bin_path, &contents, &len, &error));
  f->blob = g_bytes_new_take (contents, len);

  c = g_key_file_get_integer (f->index, "config", "d_model", NULL);
  f->config.decoder_dim = c;
  f->config.d_model = c;
  f->config.decoder_heads = g_key_file_get_integer (f->index, "config", "heads", NULL);
  f->config.decoder_mlp = g_key_file_get_integer (f->index, "config", "mlp", NULL);
  f->config.decoder_depth = g_key_file_get_integer (f->index, "config", "depth", NULL);
  f->config.image_size = g_key_file_get_integer (f->index, "config", "image_size", NULL);
  f->config.num_multimask = 3;
  f->config.use_high_res_features = TRUE;
  f->config.pred_obj_scores = TRUE;
  f->config.iou_prediction_use_sigmoid = TRUE;
  f->config.dynamic_multimask_via_stability = TRUE;
  f->config.dynamic_multimask_stability_delta = 0.05;
  f->config.dynamic_multimask_stability_thresh = 0.98;
  f->config.size_name = "custom";
  f->pw = g_key_file_get_integer (f->index, "config", "patch_width", NULL);
  f->ph = g_key_file_get_integer (f->index, "config", "patch_height", NULL);
  f->low_step = g_key_file_get_integer (f->index, "config", "low_res_step", NULL);
  f->logit_step = g_key_file_get_integer (f->index, "config", "logit_step", NULL);

  f->decoder = lode_sam2_decoder_new (&f->config, lode_test_rule_source, NULL, &error);
  g_assert_no_error (error);

  e = f->config.image_size / 16;
  f->emb = lode_sam2_embedding_new (f->config.image_size, c);
  rule_scaled ("input.image_embed", c, e, e, 50.0f, f->emb->image_embed);
  rule_scaled ("input.high_res_0", c / 8, 4 * e, 4 * e, 50.0f, f->emb->high_res[0]);
  rule_scaled ("input.high_res_1", c / 4, 2 * e, 2 * e, 50.0f, f->emb->high_res[1]);
  f->mask_input = g_new (float, 16 * e * e);
  {
    gint64 shape[2] = { 4 * e, 4 * e };

    lode_test_weights_fill ("input.mask_input", shape, 2, f->mask_input);
    for (int i = 0; i < 16 * e * e; i++)
      f->mask_input[i] = f->mask_input[i] * 500.0f;
  }
}

static void
fixture_clear (Fixture *f)
{
  g_key_file_free (f->index);
  g_bytes_unref (f->blob);
  lode_sam2_decoder_free (f->decoder);
  lode_sam2_embedding_free (f->emb);
  g_free (f->mask_input);
}

static const float *
blob_floats (Fixture *f, const char *group, const char *key)
{
  gsize len;
  const guint8 *d = g_bytes_get_data (f->blob, &len);
  guint64 off = g_key_file_get_uint64 (f->index, group, key, NULL);

  g_assert_cmpuint (off, <, len);
  return (const float *) (d + off);
}

static double
parse_double (const char *s)
{
  return g_ascii_strtod (s, NULL);
}

/* Runs one case and compares; returns the largest logit error seen. */
static double
check_case (Fixture *f, const char *group)
{
  g_autofree char *points_s = g_key_file_get_string (f->index, group, "points", NULL);
  g_autofree char *box_s = g_key_file_get_string (f->index, group, "box", NULL);
  g_autofree char *iou_s = g_key_file_get_string (f->index, group, "iou", NULL);
  g_auto(GStrv) pts = NULL, ious = NULL;
  float points[2 * 8];
  int labels[8];
  LodeSam2Click click = { 0 };
  g_autoptr(LodeSam2Prediction) p = NULL;
  g_autoptr(GError) error = NULL;
  LodeSam2Config cfg = f->config;
  LodeSam2Decoder *decoder = f->decoder;
  g_autoptr(GError) ignore = NULL;
  int n = 0, n_masks, ls, side, lstep = f->logit_step;
  double worst = 0.0;
  gsize psz = (gsize) f->pw * f->ph;
  const float *ref_low, *ref_logits;
  const guint8 *bits;
  gboolean dynamic = g_key_file_get_boolean (f->index, group, "dynamic", &ignore);

  if (points_s != NULL && *points_s != '\0')
    {
      pts = g_strsplit (points_s, ";", -1);
      for (; pts[n] != NULL; n++)
        {
          g_auto(GStrv) v = g_strsplit (pts[n], ",", 3);

          points[2 * n] = (float) parse_double (v[0]);
          points[2 * n + 1] = (float) parse_double (v[1]);
          labels[n] = atoi (v[2]);
        }
    }
  click.n_points = n;
  click.points = points;
  click.labels = labels;
  if (box_s != NULL && *box_s != '\0')
    {
      g_auto(GStrv) v = g_strsplit (box_s, ",", 4);

      click.has_box = TRUE;
      for (int i = 0; i < 4; i++)
        click.box[i] = (float) parse_double (v[i]);
    }
  if (g_key_file_get_boolean (f->index, group, "mask_input", NULL))
    click.low_res_mask = f->mask_input;
  click.multimask = g_key_file_get_boolean (f->index, group, "multimask", NULL);

  if (!dynamic)
    {
      cfg.dynamic_multimask_via_stability = FALSE;
      decoder = lode_sam2_decoder_new (&cfg, lode_test_rule_source, NULL, &error);
      g_assert_no_error (error);
    }
  p = lode_sam2_decoder_predict (decoder, f->emb, f->pw, f->ph, &click, &error);
  g_assert_no_error (error);
  g_assert_nonnull (p);

  n_masks = g_key_file_get_integer (f->index, group, "n_masks", NULL);
  g_assert_cmpint (p->n_masks, ==, n_masks);
  g_assert_cmpint (p->width, ==, f->pw);
  g_assert_cmpint (p->height, ==, f->ph);
  g_assert_cmpint (p->used_stability_fallback, ==,
                   g_key_file_get_boolean (f->index, group, "fallback", NULL));

  ious = g_strsplit (iou_s, ";", -1);
  for (int i = 0; i < n_masks; i++)
    g_assert_cmpfloat_with_epsilon (p->iou[i], parse_double (ious[i]), SCORE_TOL);
  {
    g_autofree char *obj = g_key_file_get_string (f->index, group, "object_score", NULL);

    g_assert_cmpfloat_with_epsilon (p->object_score, parse_double (obj), SCORE_TOL);
  }

  /* low-resolution logits (sampled every low_step pixels in the fixture) */
  ls = p->low_res;
  side = g_key_file_get_integer (f->index, group, "low_res_side", NULL);
  ref_low = blob_floats (f, group, "low_res_offset");
  for (int m = 0; m < n_masks; m++)
    for (int y = 0; y < side; y++)
      for (int x = 0; x < side; x++)
        {
          float ref = ref_low[((gsize) m * side + y) * side + x];
          float got = p->low_res_masks[((gsize) m * ls + y * f->low_step) * ls + x * f->low_step];
          double err = fabs ((double) got - CLAMP (ref, -32.0f, 32.0f));

          worst = MAX (worst, err);
          if (err > LOGIT_TOL)
            g_error ("%s mask %d low-res (%d, %d): %g, PyTorch %g", group, m, x, y, got, ref);
        }

  /* logits at the patch size, sampled */
  ref_logits = blob_floats (f, group, "logits_offset");
  {
    int sw = (f->pw + lstep - 1) / lstep, sh = (f->ph + lstep - 1) / lstep;

    for (int m = 0; m < n_masks; m++)
      for (int y = 0; y < sh; y++)
        for (int x = 0; x < sw; x++)
          {
            float ref = ref_logits[((gsize) m * sh + y) * sw + x];
            float got = p->masks[(gsize) m * psz + (gsize) y * lstep * f->pw + x * lstep];
            double err = fabs ((double) got - ref);

            worst = MAX (worst, err);
            if (err > LOGIT_TOL)
              g_error ("%s mask %d at (%d, %d): %g, PyTorch %g", group, m, x * lstep, y * lstep, got, ref);
          }
  }

  /* thresholded masks: every pixel, except where the logit is near 0 */
  bits = (const guint8 *) blob_floats (f, group, "bits_offset");
  {
    gsize differ = 0;

    for (int m = 0; m < n_masks; m++)
      for (gsize i = 0; i < psz; i++)
        {
          gsize bit = (gsize) m * psz + i;
          gboolean ref = (bits[bit / 8] >> (bit % 8)) & 1;
          float got = p->masks[bit];

          if ((got > 0.0f) != ref)
            {
              differ++;
              g_assert_cmpfloat (fabsf (got), <, LOGIT_TOL);
            }
        }
    g_test_message ("%s: largest logit error %.3g, %" G_GSIZE_FORMAT " mask pixels differ (|logit| < 1e-3)",
                    group, worst, differ);
  }
  if (decoder != f->decoder)
    lode_sam2_decoder_free (decoder);
  return worst;
}

static void
test_parity (gconstpointer data)
{
  const char *name = data;
  Fixture f;
  g_auto(GStrv) groups = NULL;
  double worst = 0.0;
  int n = 0;

  fixture_load (&f, name);
  groups = g_key_file_get_groups (f.index, NULL);
  for (int i = 0; groups[i] != NULL; i++)
    {
      if (g_str_equal (groups[i], "config"))
        continue;
      worst = MAX (worst, check_case (&f, groups[i]));
      n++;
    }
  g_assert_cmpint (n, >=, 7);
  g_test_message ("%s: %d prompt sets, largest logit error %.3g", name, n, worst);
  fixture_clear (&f);
}

/* The multimask outputs are the three candidates of a run, and the best
 * index is the highest IoU; a refinement with the returned low-res mask
 * runs and changes the result. */
static void
test_refine (void)
{
  Fixture f;
  float pt[2] = { 40.0f, 50.0f };
  int lab[1] = { 1 };
  LodeSam2Click click = { 1, pt, lab, FALSE, { 0 }, NULL, TRUE };
  g_autoptr(LodeSam2Prediction) a = NULL, b = NULL;
  g_autoptr(GError) error = NULL;
  gsize lsz;

  fixture_load (&f, "reduced");
  a = lode_sam2_decoder_predict (f.decoder, f.emb, f.pw, f.ph, &click, &error);
  g_assert_no_error (error);
  for (int i = 0; i < 3; i++)
    g_assert_cmpfloat (a->iou[a->best], >=, a->iou[i]);
  click.low_res_mask = lode_sam2_prediction_low_res (a, a->best);
  click.multimask = FALSE;
  b = lode_sam2_decoder_predict (f.decoder, f.emb, f.pw, f.ph, &click, &error);
  g_assert_no_error (error);
  g_assert_cmpint (b->n_masks, ==, 1);
  lsz = (gsize) a->low_res * a->low_res;
  g_assert_cmpint (memcmp (b->low_res_masks, a->low_res_masks + a->best * lsz, lsz * 4), !=, 0);
  for (gsize i = 0; i < lsz; i++)
    g_assert_cmpfloat (fabsf (b->low_res_masks[i]), <=, 32.0f);
  fixture_clear (&f);
}

static void
test_bad_prompts (void)
{
  Fixture f;
  float pt[2] = { 10.0f, 10.0f };
  int bad_label[1] = { 2 };
  LodeSam2Click click = { 0 };
  g_autoptr(GError) error = NULL;
  LodeSam2Prediction *p;
  LodeSam2Embedding *other;

  fixture_load (&f, "reduced");
  /* nothing to segment */
  p = lode_sam2_decoder_predict (f.decoder, f.emb, f.pw, f.ph, &click, &error);
  g_assert_null (p);
  g_assert_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_PROMPT);
  g_clear_error (&error);
  /* box-corner labels are for boxes */
  click.n_points = 1;
  click.points = pt;
  click.labels = bad_label;
  p = lode_sam2_decoder_predict (f.decoder, f.emb, f.pw, f.ph, &click, &error);
  g_assert_null (p);
  g_assert_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_PROMPT);
  g_clear_error (&error);
  /* an embedding of another input size */
  bad_label[0] = 1;
  other = lode_sam2_embedding_new (2 * f.config.image_size, f.config.d_model);
  p = lode_sam2_decoder_predict (f.decoder, other, f.pw, f.ph, &click, &error);
  g_assert_null (p);
  g_assert_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_EMBEDDING);
  lode_sam2_embedding_free (other);
  fixture_clear (&f);
}

static void
test_missing_weight (void)
{
  LodeSam2Config cfg = { 0 };
  g_autoptr(GError) error = NULL;

  cfg.decoder_dim = 32;
  cfg.d_model = 32;
  cfg.decoder_heads = 4;
  cfg.decoder_mlp = 64;
  cfg.decoder_depth = 2;
  cfg.image_size = 128;
  cfg.num_multimask = 3;
  cfg.use_high_res_features = TRUE;
  cfg.pred_obj_scores = TRUE;
  /* heads must divide the attention width: 16 / 5 does not */
  cfg.decoder_heads = 5;
  g_assert_null (lode_sam2_decoder_new (&cfg, lode_test_rule_source, NULL, &error));
  g_assert_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_CONFIG);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_data_func ("/sam2-decoder/parity/reduced", "reduced", test_parity);
  g_test_add_data_func ("/sam2-decoder/parity/tiny", "tiny", test_parity);
  g_test_add_func ("/sam2-decoder/refine", test_refine);
  g_test_add_func ("/sam2-decoder/bad-prompts", test_bad_prompts);
  g_test_add_func ("/sam2-decoder/bad-config", test_missing_weight);
  return g_test_run ();
}
