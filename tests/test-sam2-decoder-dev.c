/* The SAM2 decoder's device orchestration (lode-sam2-decoder-dev.h) with the
 * CPU table, against the CPU decoder (lode_sam2_decoder_run) and the PyTorch
 * fixtures of tests/data/sam2 (reduced configuration and the real tiny one
 * at 1024, weights from the shared rule).
 *
 * Tolerances:
 *   DEV_TOL 1e-4 (low-res logits, absolute) and 1e-5 (scores) against the
 *     CPU decoder: the same fp32 model, but the CPU decoder folds the
 *     attention projections into the token rows (x . Wk^T q instead of
 *     (Wk x) . q) and the dev decoder does not, so sums run in another
 *     order; a few float roundings of logits of size ~10 through two layer
 *     norms stay near 1e-5. Any wrong weight, missing upload or misplaced
 *     row shows as O(0.1) or more.
 *   LOGIT_TOL 1e-3, SCORE_TOL 1e-4 against PyTorch: those of
 *     test-sam2-decoder.c (PyTorch sums in yet another order). PyTorch's
 *     low-res logits are clamped to +-32 in the fixture, so both sides are.
 * The selection (mask count, best index, stability fallback) must be the
 * same exactly. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lode-ops.h"
#include "lode-sam2-decoder-dev.h"
#include "lode-test-sam2.h"
#include "lode-test-weights.h"

#define DEV_TOL 1e-4
#define DEV_SCORE_TOL 1e-5
#define LOGIT_TOL 1e-3
#define SCORE_TOL 1e-4

static void
rule_scaled (const char *name, int ndim, gint64 d0, gint64 d1, gint64 d2, float scale, float *out)
{
  gint64 shape[3] = { d0, d1, d2 };
  gint64 n = d0 * d1 * (ndim == 3 ? d2 : 1);

  lode_test_weights_fill (name, shape, ndim, out);
  for (gint64 i = 0; i < n; i++)
    out[i] *= scale;
}

typedef struct {
  GKeyFile *index;
  GBytes *blob;
  LodeSam2Config config;
  LodeSam2Embedding *emb;
  float *mask_input;
  int pw, ph, low_step;
} Fixture;

/* The fixture's configuration and inputs, as tests/test-sam2-decoder.c
 * builds them. */
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

  e = f->config.image_size / 16;
  f->emb = lode_sam2_embedding_new (f->config.image_size, c);
  rule_scaled ("input.image_embed", 3, c, e, e, 50.0f, f->emb->image_embed);
  rule_scaled ("input.high_res_0", 3, c / 8, 4 * e, 4 * e, 50.0f, f->emb->high_res[0]);
  rule_scaled ("input.high_res_1", 3, c / 4, 2 * e, 2 * e, 50.0f, f->emb->high_res[1]);
  f->mask_input = g_new (float, 16 * e * e);
  rule_scaled ("input.mask_input", 2, 4 * e, 4 * e, 1, 500.0f, f->mask_input);
}

static void
fixture_clear (Fixture *f)
{
  g_key_file_free (f->index);
  g_bytes_unref (f->blob);
  lode_sam2_embedding_free (f->emb);
  g_free (f->mask_input);
}

/* A fixture case's prompt in input pixels, mapped as the predictor does. */
typedef struct {
  LodeSam2Prompt prompt;
  float points[16];
  int labels[8];
} Case;

static void
case_load (Fixture *f, const char *group, Case *k)
{
  g_autofree char *points_s = g_key_file_get_string (f->index, group, "points", NULL);
  g_autofree char *box_s = g_key_file_get_string (f->index, group, "box", NULL);
  float size = (float) f->config.image_size;
  int n = 0;

  memset (k, 0, sizeof *k);
  if (points_s != NULL && *points_s != '\0')
    {
      g_auto(GStrv) pts = g_strsplit (points_s, ";", -1);

      for (; pts[n] != NULL; n++)
        {
          g_auto(GStrv) v = g_strsplit (pts[n], ",", 3);

          k->points[2 * n] = (float) g_ascii_strtod (v[0], NULL) / (float) f->pw * size;
          k->points[2 * n + 1] = (float) g_ascii_strtod (v[1], NULL) / (float) f->ph * size;
          k->labels[n] = atoi (v[2]);
        }
    }
  k->prompt.n_points = n;
  k->prompt.points = k->points;
  k->prompt.labels = k->labels;
  if (box_s != NULL && *box_s != '\0')
    {
      g_auto(GStrv) v = g_strsplit (box_s, ",", 4);

      k->prompt.has_box = TRUE;
      for (int i = 0; i < 4; i++)
        k->prompt.box[i] = (float) g_ascii_strtod (v[i], NULL) / (float) (i % 2 == 0 ? f->pw : f->ph) * size;
    }
  if (g_key_file_get_boolean (f->index, group, "mask_input", NULL))
    k->prompt.mask_input = f->mask_input;
  k->prompt.multimask = g_key_file_get_boolean (f->index, group, "multimask", NULL);
}

/* Runs prompt on both decoders; the outputs must agree. Returns the
 * largest logit difference. */
static double
compare (LodeSam2Decoder *cpu, const LodeSam2Embedding *emb, LodeSam2DecoderDev *dev,
         const LodeSam2Prompt *prompt, LodeSam2DecoderOutput *got)
{
  LodeSam2DecoderOutput want = { 0 };
  g_autoptr(GError) error = NULL;
  gsize lsz;
  double worst = 0.0;

  g_assert_true (lode_sam2_decoder_run (cpu, emb, prompt, &want, &error));
  g_assert_no_error (error);
  g_assert_true (lode_sam2_decoder_dev_run (dev, prompt, got, &error));
  g_assert_no_error (error);

  g_assert_cmpint (got->n_masks, ==, want.n_masks);
  g_assert_cmpint (got->low_res, ==, want.low_res);
  g_assert_cmpint (got->best, ==, want.best);
  g_assert_cmpint (got->used_stability_fallback, ==, want.used_stability_fallback);
  for (int i = 0; i < got->n_masks; i++)
    g_assert_cmpfloat_with_epsilon (got->iou[i], want.iou[i], DEV_SCORE_TOL);
  g_assert_cmpfloat_with_epsilon (got->object_score, want.object_score, DEV_SCORE_TOL);
  lsz = (gsize) got->low_res * got->low_res;
  for (gsize i = 0; i < got->n_masks * lsz; i++)
    {
      double d = fabs ((double) got->low_res_masks[i] - want.low_res_masks[i]);

      if (d > DEV_TOL)
        g_error ("mask %zu pixel %zu: %g, CPU decoder %g", i / lsz, i % lsz,
                 got->low_res_masks[i], want.low_res_masks[i]);
      worst = MAX (worst, d);
    }
  lode_sam2_decoder_output_clear (&want);
  return worst;
}

/* The committed PyTorch outputs of one case. */
static void
check_reference (Fixture *f, const char *group, const LodeSam2DecoderOutput *got)
{
  g_autofree char *iou_s = g_key_file_get_string (f->index, group, "iou", NULL);
  g_autofree char *obj_s = g_key_file_get_string (f->index, group, "object_score", NULL);
  g_auto(GStrv) ious = g_strsplit (iou_s, ";", -1);
  gsize len;
  const guint8 *d = g_bytes_get_data (f->blob, &len);
  const float *ref = (const float *) (d + g_key_file_get_uint64 (f->index, group, "low_res_offset", NULL));
  int side = g_key_file_get_integer (f->index, group, "low_res_side", NULL), ls = got->low_res;

  g_assert_cmpint (got->n_masks, ==, g_key_file_get_integer (f->index, group, "n_masks", NULL));
  g_assert_cmpint (got->used_stability_fallback, ==,
                   g_key_file_get_boolean (f->index, group, "fallback", NULL));
  for (int i = 0; i < got->n_masks; i++)
    g_assert_cmpfloat_with_epsilon (got->iou[i], g_ascii_strtod (ious[i], NULL), SCORE_TOL);
  g_assert_cmpfloat_with_epsilon (got->object_score, g_ascii_strtod (obj_s, NULL), SCORE_TOL);
  for (int m = 0; m < got->n_masks; m++)
    for (int y = 0; y < side; y++)
      for (int x = 0; x < side; x++)
        {
          float r = ref[((gsize) m * side + y) * side + x];
          float g = got->low_res_masks[((gsize) m * ls + y * f->low_step) * ls + x * f->low_step];

          g_assert_cmpfloat_with_epsilon (CLAMP (g, -32.0f, 32.0f), CLAMP (r, -32.0f, 32.0f), LOGIT_TOL);
        }
}

static LodeSam2DecoderDev *
dev_new (const LodeSam2Config *config, const LodeSam2Embedding *emb)
{
  g_autoptr(GError) error = NULL;
  LodeSam2DecoderDev *dev = lode_sam2_decoder_dev_new (config, lode_test_rule_source, NULL, LODE_DEVICE_CPU, &error);

  g_assert_no_error (error);
  g_assert_true (lode_sam2_decoder_dev_set_embedding (dev, emb, &error));
  g_assert_no_error (error);
  return dev;
}

/* Every fixture case: points, negative points, box, box + point, mask
 * input, single mask with and without the stability fallback. */
static void
test_fixtures (gconstpointer data)
{
  const char *name = data;
  Fixture f;
  g_auto(GStrv) groups = NULL;
  g_autoptr(GError) error = NULL;
  LodeSam2Decoder *cpu;
  LodeSam2DecoderDev *dev;
  double worst = 0.0;
  int n = 0;

  fixture_load (&f, name);
  cpu = lode_sam2_decoder_new (&f.config, lode_test_rule_source, NULL, &error);
  g_assert_no_error (error);
  dev = dev_new (&f.config, f.emb);
  groups = g_key_file_get_groups (f.index, NULL);
  for (int i = 0; groups[i] != NULL; i++)
    {
      g_autoptr(GError) ignore = NULL;
      LodeSam2DecoderOutput got = { 0 };
      Case k;
      double d;

      if (g_str_equal (groups[i], "config"))
        continue;
      case_load (&f, groups[i], &k);
      if (g_key_file_has_key (f.index, groups[i], "dynamic", NULL) &&
          !g_key_file_get_boolean (f.index, groups[i], "dynamic", &ignore))
        {
          LodeSam2Config cfg = f.config;
          LodeSam2Decoder *cpu2;
          LodeSam2DecoderDev *dev2;

          cfg.dynamic_multimask_via_stability = FALSE;
          cpu2 = lode_sam2_decoder_new (&cfg, lode_test_rule_source, NULL, &error);
          dev2 = dev_new (&cfg, f.emb);
          d = compare (cpu2, f.emb, dev2, &k.prompt, &got);
          lode_sam2_decoder_free (cpu2);
          lode_sam2_decoder_dev_free (dev2);
        }
      else
        d = compare (cpu, f.emb, dev, &k.prompt, &got);
      /* MAX evaluates its arguments twice: compare runs once */
      worst = MAX (worst, d);
      check_reference (&f, groups[i], &got);
      lode_sam2_decoder_output_clear (&got);
      n++;
    }
  g_assert_cmpint (n, >=, 7);
  g_test_message ("%s: %d prompt sets, largest difference from the CPU decoder %.3g", name, n, worst);
  {
    /* what a click queues (kernels, copies), the figure for the GPU */
    float pt[2] = { 100.0f, 200.0f };
    int lab[1] = { 1 };
    LodeSam2Prompt p = { 1, pt, lab, FALSE, { 0 }, NULL, TRUE };
    LodeSam2DecoderDevTiming t;

    g_assert_true (lode_sam2_decoder_dev_time (dev, &p, 1, &t, &error));
    g_assert_cmpint (t.calls_per_click, >, 0);
    g_test_message ("%s: a one-point click is %d table calls, %.1f ms with the CPU table",
                    name, t.calls_per_click, t.ms_per_click);
  }
  lode_sam2_decoder_free (cpu);
  lode_sam2_decoder_dev_free (dev);
  fixture_clear (&f);
}

/* Prompts the fixtures lack, on the reduced model: box corners given as
 * points, a box with single-mask output, a mask input with multimask,
 * many points, a refinement with the previous best mask; then a second
 * embedding replaces the first. */
static void
test_prompts (void)
{
  Fixture f;
  g_autoptr(GError) error = NULL;
  LodeSam2Decoder *cpu;
  LodeSam2DecoderDev *dev;
  float pts[2 * 40];
  int labels[40];
  float corners[4] = { 20.0f, 30.0f, 90.0f, 100.0f };
  int corner_labels[2] = { LODE_SAM2_LABEL_BOX_TOP_LEFT, LODE_SAM2_LABEL_BOX_BOTTOM_RIGHT };
  LodeSam2Prompt p = { 0 };
  LodeSam2DecoderOutput a = { 0 }, b = { 0 };
  LodeSam2Embedding *other;
  gsize lsz;

  fixture_load (&f, "reduced");
  cpu = lode_sam2_decoder_new (&f.config, lode_test_rule_source, NULL, &error);
  g_assert_no_error (error);
  dev = dev_new (&f.config, f.emb);

  /* box corners as points */
  p.n_points = 2;
  p.points = corners;
  p.labels = corner_labels;
  p.multimask = TRUE;
  compare (cpu, f.emb, dev, &p, &a);
  lode_sam2_decoder_output_clear (&a);
  /* a box, one mask */
  p.n_points = 0;
  p.has_box = TRUE;
  memcpy (p.box, corners, sizeof corners);
  p.multimask = FALSE;
  compare (cpu, f.emb, dev, &p, &a);
  lode_sam2_decoder_output_clear (&a);
  /* a mask input with three candidates */
  p.mask_input = f.mask_input;
  p.multimask = TRUE;
  compare (cpu, f.emb, dev, &p, &a);
  lode_sam2_decoder_output_clear (&a);
  /* 40 points of both labels (more tokens than heads times anything) */
  for (int i = 0; i < 40; i++)
    {
      pts[2 * i] = (float) (i * 3 % 128);
      pts[2 * i + 1] = (float) (i * 7 % 128);
      labels[i] = i % 2;
    }
  p.has_box = FALSE;
  p.mask_input = NULL;
  p.n_points = 40;
  p.points = pts;
  p.labels = labels;
  compare (cpu, f.emb, dev, &p, &a);
  /* refinement: the best candidate back as the mask input, one mask */
  lsz = (gsize) a.low_res * a.low_res;
  p.n_points = 1;
  p.mask_input = a.low_res_masks + a.best * lsz;
  p.multimask = FALSE;
  compare (cpu, f.emb, dev, &p, &b);
  g_assert_cmpint (memcmp (b.low_res_masks, a.low_res_masks + a.best * lsz, lsz * sizeof (float)), !=, 0);
  lode_sam2_decoder_output_clear (&a);
  lode_sam2_decoder_output_clear (&b);
  /* clicks without a mask input after one with it use the cached keys */
  p.mask_input = NULL;
  compare (cpu, f.emb, dev, &p, &a);

  /* another embedding: the per-embedding cache must follow */
  other = lode_sam2_embedding_new (f.config.image_size, f.config.d_model);
  {
    gsize e = (gsize) f.config.image_size / 16, c = (gsize) f.config.d_model;

    for (gsize i = 0; i < c * e * e; i++)
      other->image_embed[i] = -f.emb->image_embed[i];
    memcpy (other->high_res[0], f.emb->high_res[0], sizeof (float) * (c / 8) * 16 * e * e);
    memcpy (other->high_res[1], f.emb->high_res[1], sizeof (float) * (c / 4) * 4 * e * e);
  }
  g_assert_true (lode_sam2_decoder_dev_set_embedding (dev, other, &error));
  g_assert_no_error (error);
  compare (cpu, other, dev, &p, &b);
  g_assert_cmpint (memcmp (a.low_res_masks, b.low_res_masks, lsz * sizeof (float)), !=, 0);
  lode_sam2_decoder_output_clear (&a);
  lode_sam2_decoder_output_clear (&b);
  lode_sam2_embedding_free (other);

  lode_sam2_decoder_free (cpu);
  lode_sam2_decoder_dev_free (dev);
  fixture_clear (&f);
}

static void
test_errors (void)
{
  Fixture f;
  g_autoptr(GError) error = NULL;
  LodeSam2DecoderDev *dev;
  LodeSam2Embedding *other;
  float pt[2] = { 10.0f, 10.0f };
  int label[1] = { 7 };
  LodeSam2Prompt p = { 1, pt, label, FALSE, { 0 }, NULL, TRUE };
  LodeSam2DecoderOutput out = { 0 };
  LodeSam2Config bad;

  fixture_load (&f, "reduced");
  dev = lode_sam2_decoder_dev_new (&f.config, lode_test_rule_source, NULL, LODE_DEVICE_CPU, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lode_sam2_decoder_dev_device (dev), ==, LODE_DEVICE_CPU);
  g_assert_cmpint (lode_sam2_decoder_dev_low_res_size (dev), ==, f.config.image_size / 4);
  /* no embedding yet: a programmer error */
  label[0] = 1;
  g_test_expect_message ("lode-model", G_LOG_LEVEL_CRITICAL, "*has_embedding*");
  g_assert_false (lode_sam2_decoder_dev_run (dev, &p, &out, &error));
  g_test_assert_expected_messages ();
  g_assert_no_error (error);
  /* an embedding of another size */
  other = lode_sam2_embedding_new (2 * f.config.image_size, f.config.d_model);
  g_assert_false (lode_sam2_decoder_dev_set_embedding (dev, other, &error));
  g_assert_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_EMBEDDING);
  g_clear_error (&error);
  lode_sam2_embedding_free (other);
  /* a label that does not exist */
  g_assert_true (lode_sam2_decoder_dev_set_embedding (dev, f.emb, &error));
  label[0] = 7;
  g_assert_false (lode_sam2_decoder_dev_run (dev, &p, &out, &error));
  g_assert_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_PROMPT);
  g_clear_error (&error);
  g_assert_null (out.low_res_masks);
  lode_sam2_decoder_dev_free (dev);
  /* a configuration the decoder cannot use */
  bad = f.config;
  bad.decoder_heads = 5;
  g_assert_null (lode_sam2_decoder_dev_new (&bad, lode_test_rule_source, NULL, LODE_DEVICE_CPU, &error));
  g_assert_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_CONFIG);
  g_clear_error (&error);
  /* CUDA without a device */
  if (lode_device_cuda_count () == 0)
    {
      g_assert_null (lode_sam2_decoder_dev_new (&f.config, lode_test_rule_source, NULL, LODE_DEVICE_CUDA, &error));
      g_assert_error (error, LODE_DEVICE_ERROR, LODE_DEVICE_ERROR_UNAVAILABLE);
    }
  fixture_clear (&f);
}

/* The CPU twins of the new GPU kernels against compositions of the
 * existing kernels (the GPU suite compares the GPU kernels with these). */
static void
test_twins (void)
{
  GRand *r = g_rand_new_with_seed (7);
  int lq = 5, lk = 300, h = 4, d = 8, hd = h * d, st = hd + 3;
  float *q = g_new (float, lq * st), *k = g_new (float, lk * st), *v = g_new (float, lk * st);
  float *qh = g_new (float, lq * hd), *kh = g_new (float, lk * hd), *vh = g_new (float, lk * hd);
  float *tmp = g_new (float, lk * hd), *o1 = g_new (float, lq * hd), *o2 = g_new (float, lq * hd);
  float w[32], b[32], a[3 * 32], bb[3 * 32], pe[3 * 32], y1[3 * 32], y2[3 * 32], ype[3 * 32];
  float gauss[2 * 4], table[5 * 8], pts[3 * 3] = { 0.0f, 127.0f, -1.0f, 10.0f, 20.0f, 1.0f, 50.0f, 60.0f, 3.0f };
  float enc[3 * 8], plain[3 * 8];

  for (int i = 0; i < lq * st; i++)
    q[i] = (float) g_rand_double_range (r, -2, 2);
  for (int i = 0; i < lk * st; i++)
    {
      k[i] = (float) g_rand_double_range (r, -2, 2);
      v[i] = (float) g_rand_double_range (r, -2, 2);
    }
  /* attention on strided rows = split heads, attention, merge heads */
  for (int i = 0; i < lq; i++)
    memcpy (tmp + i * hd, q + i * st, hd * sizeof (float));
  lode_ops_split_heads (qh, tmp, lq, h, d);
  for (int i = 0; i < lk; i++)
    memcpy (tmp + i * hd, k + i * st, hd * sizeof (float));
  lode_ops_split_heads (kh, tmp, lk, h, d);
  for (int i = 0; i < lk; i++)
    memcpy (tmp + i * hd, v + i * st, hd * sizeof (float));
  lode_ops_split_heads (vh, tmp, lk, h, d);
  lode_ops_attention (tmp, qh, kh, vh, 1, h, lq, lk, d);
  lode_ops_merge_heads (o1, tmp, lq, h, d);
  lode_ops_attention_rows (o2, q, st, k, st, v, st, lq, lk, h, d);
  for (int i = 0; i < lq * hd; i++)
    g_assert_cmpfloat_with_epsilon (o2[i], o1[i], 1e-5);

  /* add + layer norm + PE = add, layer norm, add */
  for (int i = 0; i < 32; i++)
    {
      w[i] = (float) g_rand_double_range (r, 0.5, 1.5);
      b[i] = (float) g_rand_double_range (r, -1, 1);
    }
  for (int i = 0; i < 96; i++)
    {
      a[i] = (float) g_rand_double_range (r, -3, 3);
      bb[i] = (float) g_rand_double_range (r, -3, 3);
      pe[i] = (float) g_rand_double_range (r, -1, 1);
    }
  lode_ops_add (y1, a, bb, 96);
  lode_ops_layer_norm (y1, y1, w, b, 3, 32, 1e-5f);
  memcpy (y2, a, sizeof a);
  lode_ops_add_layer_norm (y2, y2, bb, w, b, 3, 32, 1e-5f, ype, pe);
  for (int i = 0; i < 96; i++)
    {
      g_assert_cmpfloat (y2[i], ==, y1[i]);
      g_assert_cmpfloat (ype[i], ==, y1[i] + pe[i]);
    }

  /* point encoding: padding gets not-a-point alone, the others the
   * Fourier features plus their label's row */
  for (int i = 0; i < 8; i++)
    gauss[i] = (float) g_rand_double_range (r, -1, 1);
  for (int i = 0; i < 40; i++)
    table[i] = (float) (i + 1);
  lode_ops_point_encoding (enc, pts, gauss, table, 3, 8, 128.0f);
  lode_ops_point_encoding (plain, pts, gauss, NULL, 3, 8, 128.0f);
  for (int j = 0; j < 8; j++)
    {
      g_assert_cmpfloat (enc[j], ==, table[j]);
      g_assert_cmpfloat (enc[8 + j], ==, plain[8 + j] + table[2 * 8 + j]);
      g_assert_cmpfloat (enc[16 + j], ==, plain[16 + j] + table[4 * 8 + j]);
    }
  for (int j = 0; j < 4; j++)
    {
      float x = 2.0f * (10.5f / 128.0f) - 1.0f, y = 2.0f * (20.5f / 128.0f) - 1.0f;
      double ang = 2.0 * G_PI * (x * gauss[j] + y * gauss[4 + j]);

      g_assert_cmpfloat_with_epsilon (plain[8 + j], sin (ang), 1e-5);
      g_assert_cmpfloat_with_epsilon (plain[8 + 4 + j], cos (ang), 1e-5);
    }

  /* bias + ReLU */
  lode_ops_bias_relu (y1, a, w, 3, 32);
  for (int i = 0; i < 96; i++)
    g_assert_cmpfloat (y1[i], ==, MAX (a[i] + w[i % 32], 0.0f));

  g_free (q); g_free (k); g_free (v); g_free (qh); g_free (kh); g_free (vh);
  g_free (tmp); g_free (o1); g_free (o2);
  g_rand_free (r);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_data_func ("/sam2-decoder-dev/fixtures/reduced", "reduced", test_fixtures);
  g_test_add_data_func ("/sam2-decoder-dev/fixtures/tiny", "tiny", test_fixtures);
  g_test_add_func ("/sam2-decoder-dev/prompts", test_prompts);
  g_test_add_func ("/sam2-decoder-dev/errors", test_errors);
  g_test_add_func ("/sam2-decoder-dev/twins", test_twins);
  return g_test_run ();
}
