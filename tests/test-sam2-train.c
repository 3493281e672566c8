/* SAM2 decoder fine-tuning: the recipe's loss and gradients against PyTorch
 * (tests/reference/sam2_train_reference.py, reduced configuration), every
 * tensor's gradient against central finite differences, a short fine-tune
 * that lowers the loss and is saved as a checkpoint the predictor opens, and
 * `lode train sam2` on a demo project. */
#define G_LOG_DOMAIN "lode-test"

#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lode-bench-sam2.h"
#include "lode-cli-progress.h"
#include "lode-demo.h"
#include "lode-sam2-config.h"
#include "lode-sam2-predictor.h"
#include "lode-sam2-train.h"
#include "lode-store.h"
#include "lode-test-util.h"
#include "lode-test-sam2.h"
#include "lode-test-weights.h"

/* The loss is a mean of float32 terms accumulated in double: 1e-5 relative.
 * Gradients: per tensor, the L2 norm of the difference over the L2 norm of
 * PyTorch's gradient below 1e-3 (float32 through two transformer layers,
 * two softmax attentions over 64 positions and a layer norm at each step:
 * the measured error is about 1e-5). */
#define LOSS_TOL 1e-5
#define GRAD_TOL 1e-3
#define ABS_FLOOR 1e-7

static void
rule_scaled (const char *name, gint64 d0, gint64 d1, gint64 d2, float *out)
{
  gint64 shape[3] = { d0, d1, d2 };

  lode_test_weights_fill (name, shape, 3, out);
  for (gint64 i = 0; i < d0 * d1 * d2; i++)
    out[i] *= 50.0f;
}

typedef struct {
  GKeyFile *index;
  GBytes *grads;
  LodeSam2Config config;
  LodeSam2Tuner *tuner;
  LodeSam2Embedding *emb;
  LodeSam2Target targets[2];
  guint8 *masks[2];
  int n;
} Fixture;

static void
fixture_init (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *ini = g_test_build_filename (G_TEST_DIST, "data", "sam2", "train-reduced.ini", NULL);
  g_autofree char *bin = NULL;
  g_autofree char *raw = NULL;
  gsize len;
  int c, e, w, h;

  bin = g_strdup (ini);
  strcpy (bin + strlen (bin) - 3, "bin");
  f->index = g_key_file_new ();
  g_assert_true (g_key_file_load_from_file (f->index, ini, G_KEY_FILE_NONE, &error));
  g_assert_no_error (error);
  g_assert_true (g_file_get_contents (bin, &raw, &len, &error));
  f->grads = g_bytes_new_take (g_steal_pointer (&raw), len);

  memset (&f->config, 0, sizeof f->config);
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
  f->tuner = lode_sam2_tuner_new (&f->config, lode_test_rule_source, NULL, &error);
  g_assert_no_error (error);

  e = f->config.image_size / 16;
  f->emb = lode_sam2_embedding_new (f->config.image_size, c);
  rule_scaled ("input.image_embed", c, e, e, f->emb->image_embed);
  rule_scaled ("input.high_res_0", c / 8, 4 * e, 4 * e, f->emb->high_res[0]);
  rule_scaled ("input.high_res_1", c / 4, 2 * e, 2 * e, f->emb->high_res[1]);

  w = g_key_file_get_integer (f->index, "config", "patch_width", NULL);
  h = g_key_file_get_integer (f->index, "config", "patch_height", NULL);
  f->n = 2;
  for (int i = 0; i < f->n; i++)
    {
      g_autofree char *key = g_strdup_printf ("%d", i);
      g_autofree char *v = g_key_file_get_string (f->index, "targets", key, NULL);
      g_auto(GStrv) parts = g_strsplit (v, ";", -1);
      int x0 = atoi (parts[2]), y0 = atoi (parts[3]), x1 = atoi (parts[4]), y1 = atoi (parts[5]);

      f->masks[i] = g_new0 (guint8, (gsize) w * h);
      for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
          f->masks[i][y * w + x] = 1;
      f->targets[i].width = w;
      f->targets[i].height = h;
      f->targets[i].mask = f->masks[i];
      f->targets[i].x = (float) g_ascii_strtod (parts[0], NULL);
      f->targets[i].y = (float) g_ascii_strtod (parts[1], NULL);
    }
}

static void
fixture_clear (Fixture *f)
{
  g_key_file_unref (f->index);
  g_bytes_unref (f->grads);
  lode_sam2_tuner_free (f->tuner);
  lode_sam2_embedding_free (f->emb);
  for (int i = 0; i < f->n; i++)
    g_free (f->masks[i]);
}

static double
loss_of (Fixture *f, double *iou)
{
  g_autoptr(GError) error = NULL;
  double loss = 0;

  g_assert_true (lode_sam2_tuner_loss (f->tuner, f->emb, f->targets, f->n, FALSE, &loss, iou, &error));
  g_assert_no_error (error);
  return loss;
}

static void
test_parity (void)
{
  Fixture f;
  g_autoptr(GError) error = NULL;
  const float *ref;
  double loss = 0, iou = 0, want, worst = 0;
  gsize len;

  fixture_init (&f);
  ref = g_bytes_get_data (f.grads, &len);
  lode_sam2_tuner_zero_grad (f.tuner);
  g_assert_true (lode_sam2_tuner_loss (f.tuner, f.emb, f.targets, f.n, TRUE, &loss, &iou, &error));
  g_assert_no_error (error);
  want = g_key_file_get_double (f.index, "loss", "loss", NULL);
  g_test_message ("loss %.8f, PyTorch %.8f", loss, want);
  g_assert_cmpfloat (fabs (loss - want), <=, LOSS_TOL * fabs (want));
  g_assert_cmpfloat (fabs (iou - g_key_file_get_double (f.index, "loss", "iou", NULL)), <, 1e-6);

  for (guint i = 0; i < lode_sam2_tuner_n_tensors (f.tuner); i++)
    {
      const char *name = lode_sam2_tuner_tensor_name (f.tuner, i);
      const float *g = lode_sam2_tuner_grad (f.tuner, i);
      g_autofree char *where = g_key_file_get_string (f.index, "grads", name, NULL);
      gsize n;
      double num = 0, den = 0;

      lode_sam2_tuner_tensor (f.tuner, i, &n);
      /* AdamW moves exactly the tensors torch.optim.AdamW would: those
       * with a gradient, zero or not (a None gradient is skipped) */
      g_assert_cmpint (lode_sam2_tuner_tensor_learns (f.tuner, i), ==, where != NULL);
      if (where == NULL)
        {
          /* PyTorch gives it no gradient: the loss never reaches it */
          for (gsize j = 0; j < n; j++)
            g_assert_cmpfloat (g[j], ==, 0.0f);
          continue;
        }
      {
        g_auto(GStrv) parts = g_strsplit (where, ";", 2);
        gsize off = g_ascii_strtoull (parts[0], NULL, 10);

        g_assert_cmpuint (g_ascii_strtoull (parts[1], NULL, 10), ==, n);
        g_assert_cmpuint ((off + n) * 4, <=, len);
        for (gsize j = 0; j < n; j++)
          {
            num += (g[j] - ref[off + j]) * (double) (g[j] - ref[off + j]);
            den += ref[off + j] * (double) ref[off + j];
          }
      }
      /* the key biases' gradients are zero in exact arithmetic (a softmax
       * ignores a constant added to each row): both sides hold rounding
       * noise there, hence the absolute floor ABS_FLOOR on the L2 error */
      if (sqrt (num) > GRAD_TOL * sqrt (den) + ABS_FLOOR)
        g_test_message ("%s: error %.3g, PyTorch's norm %.3g", name, sqrt (num), sqrt (den));
      g_assert_cmpfloat (sqrt (num), <=, GRAD_TOL * sqrt (den) + ABS_FLOOR);
      if (sqrt (den) > 1e3 * ABS_FLOOR)
        worst = MAX (worst, sqrt (num / den));
    }
  g_test_message ("worst relative gradient error %.3g", worst);
  fixture_clear (&f);
}

/* Per tensor, the derivative along a random direction u (entries uniform in
 * [-1, 1), scaled to the tensor's RMS) against (L(w + h u) - L(w - h u)) / 2h
 * with h = 2e-4. The IoU term moves in steps when a pixel crosses the 0.5
 * threshold, so the step is small (at 1e-3 a quarter of the directions
 * cross one); a direction whose IoU differs at +h and -h is not comparable
 * and is counted, not checked (9 of 127 here; at most 12 allowed). The loss
 * is a float32 forward summed in double: its rounding (up to about 4e-8,
 * an ulp of the loss of 0.77, through the vectorised exp, erf and layer
 * norms) over 2h stays near 1e-4, the truncation error O(h^2) is far below,
 * so the check allows 2 % of the analytic value plus 2e-4. */
static void
test_finite_differences (void)
{
  Fixture f;
  g_autoptr(GError) error = NULL;
  g_autoptr(GRand) rand = g_rand_new_with_seed (7);
  const double h = 2e-4;
  int skipped = 0, checked = 0;
  double loss, worst = 0;

  fixture_init (&f);
  lode_sam2_tuner_zero_grad (f.tuner);
  g_assert_true (lode_sam2_tuner_loss (f.tuner, f.emb, f.targets, f.n, TRUE, &loss, NULL, &error));

  for (guint i = 0; i < lode_sam2_tuner_n_tensors (f.tuner); i++)
    {
      gsize n;
      float *w = lode_sam2_tuner_tensor (f.tuner, i, &n);
      const float *g = lode_sam2_tuner_grad (f.tuner, i);
      g_autofree float *keep = g_memdup2 (w, n * sizeof (float));
      g_autofree float *u = g_new (float, n);
      double rms = 0, an = 0, lp, lm, ip, im, fd;

      if (!lode_sam2_tuner_tensor_learns (f.tuner, i))
        continue;
      for (gsize j = 0; j < n; j++)
        rms += (double) w[j] * w[j];
      rms = MAX (sqrt (rms / n), 1e-2);
      for (gsize j = 0; j < n; j++)
        {
          u[j] = (float) (rms * g_rand_double_range (rand, -1.0, 1.0));
          an += (double) g[j] * u[j];
        }
      for (gsize j = 0; j < n; j++)
        w[j] = (float) (keep[j] + h * u[j]);
      lp = loss_of (&f, &ip);
      for (gsize j = 0; j < n; j++)
        w[j] = (float) (keep[j] - h * u[j]);
      lm = loss_of (&f, &im);
      memcpy (w, keep, n * sizeof (float));
      fd = (lp - lm) / (2 * h);
      if (ip != im)
        {
          skipped++;
          continue;
        }
      checked++;
      worst = MAX (worst, fabs (fd - an) / (fabs (an) + 1e-2));
      if (fabs (fd - an) > 0.02 * fabs (an) + 2e-4)
        g_test_message ("%s: finite difference %.6g, backward %.6g",
                        lode_sam2_tuner_tensor_name (f.tuner, i), fd, an);
      g_assert_cmpfloat (fabs (fd - an), <=, 0.02 * fabs (an) + 2e-4);
    }
  g_test_message ("%d tensors checked, %d skipped at an IoU step, worst |fd - an| / (|an| + 0.01) %.3g",
                  checked, skipped, worst);
  g_assert_cmpint (skipped, <=, 12);
  g_assert_cmpint (checked, >, 100);
  fixture_clear (&f);
}

/* ---- a short fine-tune on random weights ----------------------------------- */

typedef struct {
  LodeSam2Embedding *emb[4];
  guint8 *labels[4];
  int w, h;
} Samples;

static gboolean
samples_get (guint index, LodeSam2Sample *out, gpointer data, GError **error)
{
  Samples *s = data;
  LodeSam2Embedding *e = s->emb[index];

  (void) error;
  out->embedding = lode_sam2_embedding_new (e->image_size, e->d_model);
  memcpy (out->embedding->image_embed, e->image_embed,
          sizeof (float) * e->d_model * e->embed_size * e->embed_size);
  memcpy (out->embedding->high_res[0], e->high_res[0],
          sizeof (float) * (e->d_model / 8) * 16 * e->embed_size * e->embed_size);
  memcpy (out->embedding->high_res[1], e->high_res[1],
          sizeof (float) * (e->d_model / 4) * 4 * e->embed_size * e->embed_size);
  out->labels = g_memdup2 (s->labels[index], (gsize) s->w * s->h);
  out->width = s->w;
  out->height = s->h;
  return TRUE;
}

static void
cancel_at_two (const LodeSam2TuneProgress *p, gpointer data)
{
  if (p->step == 2)
    g_cancellable_cancel (data);
}

static void
test_fine_tune_saves (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *src = g_build_filename (dir, "random.safetensors", NULL);
  g_autofree char *dst = g_build_filename (dir, "tuned.safetensors", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeCheckpoint) ckpt = NULL;
  g_autoptr(LodeSam2Tuner) tuner = NULL;
  g_autoptr(LodeSam2Predictor) before = NULL, after = NULL;
  g_autoptr(GRand) rand = g_rand_new_with_seed (3);
  LodeSam2Config cfg;
  LodeSam2TuneConfig tc;
  LodeSam2TuneResult res;
  LodeSam2SampleSource source;
  Samples s = { 0 };
  g_autofree guint8 *rgb = NULL;

  g_assert_true (lode_sam2_config_init_size (&cfg, "tiny"));
  cfg.image_size = 512;
  g_assert_true (lode_sam2_write_random_checkpoint (&cfg, src, &error));
  g_assert_no_error (error);
  before = lode_sam2_predictor_open (src, NULL, 512, &error);
  g_assert_no_error (error);

  /* four 32 x 32 patches: a bright square (class 1) on a dark field */
  s.w = s.h = 32;
  rgb = g_new (guint8, 32 * 32 * 3);
  for (int k = 0; k < 4; k++)
    {
      int x0 = 4 + 4 * k, y0 = 20 - 4 * k;

      s.labels[k] = g_new0 (guint8, 32 * 32);
      for (int i = 0; i < 32 * 32; i++)
        {
          int x = i % 32, y = i / 32;
          gboolean in = x >= x0 && x < x0 + 10 && y >= y0 && y < y0 + 10;

          s.labels[k][i] = in;
          for (int b = 0; b < 3; b++)
            rgb[i * 3 + b] = (guint8) (in ? 200 : 40 + g_rand_int_range (rand, 0, 20));
        }
      s.emb[k] = lode_sam2_predictor_encode (before, rgb, 32, 32, &error);
      g_assert_no_error (error);
    }

  ckpt = lode_checkpoint_open (src, &error);
  g_assert_no_error (error);
  tuner = lode_sam2_tuner_new_from_checkpoint (ckpt, lode_sam2_predictor_get_config (before), &error);
  g_assert_no_error (error);
  source.n_train = 3;
  source.n_val = 1;
  source.get = samples_get;
  source.user_data = &s;
  lode_sam2_tune_config_init_defaults (&tc);
  tc.steps = 10;
  tc.lr = 1e-3;   /* random weights learn visibly in 10 steps only at a larger rate */
  g_assert_true (lode_sam2_tune_run (tuner, &tc, &source, NULL, NULL, NULL, &res, &error));
  g_assert_no_error (error);
  g_test_message ("loss %.4f -> %.4f, validation IoU %.4f -> %.4f",
                  res.first_loss, res.last_loss, res.val_iou_before, res.val_iou_after);
  g_assert_cmpint (res.steps_done, ==, 10);
  /* the bar: the last tenth's mean loss at most 80 % of the first tenth's */
  g_assert_cmpfloat (res.last_loss, <, 0.8 * res.first_loss);

  /* cancelled after the second step: stops there, saying so */
  {
    g_autoptr(GCancellable) cancel = g_cancellable_new ();

    tc.steps = 5;
    source.n_val = 0;
    g_assert_false (lode_sam2_tune_run (tuner, &tc, &source, cancel_at_two, cancel, cancel, &res, &error));
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
    g_clear_error (&error);
    g_assert_cmpint (res.steps_done, ==, 2);
  }

  /* the source is never the destination */
  g_assert_false (lode_sam2_tuner_save (tuner, src, src, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  g_assert_true (lode_sam2_tuner_save (tuner, src, dst, &error));
  g_assert_no_error (error);

  after = lode_sam2_predictor_open (dst, NULL, 512, &error);
  g_assert_no_error (error);
  {
    g_autoptr(LodeSam2Prediction) p0 = NULL, p1 = NULL;
    float pt[2] = { 10.0f, 24.0f };
    int lab[1] = { 1 };
    LodeSam2Click click = { 0 };
    const float *l0, *l1;
    double diff = 0;

    click.n_points = 1;
    click.points = pt;
    click.labels = lab;
    click.multimask = TRUE;
    p0 = lode_sam2_predictor_predict (before, s.emb[0], 32, 32, &click, &error);
    g_assert_no_error (error);
    p1 = lode_sam2_predictor_predict (after, s.emb[0], 32, 32, &click, &error);
    g_assert_no_error (error);
    g_assert_cmpint (p0->low_res, ==, p1->low_res);
    l0 = lode_sam2_prediction_low_res (p0, 0);
    l1 = lode_sam2_prediction_low_res (p1, 0);
    for (int i = 0; i < p0->low_res * p0->low_res; i++)
      diff = MAX (diff, fabs (l0[i] - l1[i]));
    g_test_message ("largest change of a low-resolution logit: %.4f", diff);
    g_assert_cmpfloat (diff, >, 1e-2);
  }
  for (int k = 0; k < 4; k++)
    {
      lode_sam2_embedding_free (s.emb[k]);
      g_free (s.labels[k]);
    }
  lode_test_rmtree (dir);
}

/* `lode train sam2` on a demo project with a random tiny checkpoint at 512:
 * the training loss falls (the bar: the last tenth's mean below 90 % of
 * the first tenth's, at lr 1e-3 for 20 steps), the source checkpoint is
 * untouched, the new one opens in the predictor and is the project's new
 * model version. */
static double
number_after (const char *text, const char *key)
{
  const char *p = strstr (text, key);

  g_assert_nonnull (p);
  return g_ascii_strtod (p + strlen (key), NULL);
}

static void
test_cli (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *ckpt = g_build_filename (dir, "random-tiny.safetensors", NULL);
  g_autofree char *tuned = g_build_filename (dir, "tuned.safetensors", NULL);
  g_autofree char *project = g_build_filename (dir, "demo.lode", NULL);
  g_autofree char *out = NULL, *err = NULL, *before = NULL, *after = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeSam2Predictor) pred = NULL;
  gsize l1, l2;
  LodeSam2Config cfg;
  LodeDemoOptions demo;
  LodeImportOptions import;
  double first, last;
  const char *args[] = { "train", "sam2", "--checkpoint", ckpt, "--project", project, "--out", tuned,
                         "--size", "512", "--steps", "20", "--lr", "1e-3", "--name", "field-tuned", "--quiet", NULL };
  const char *same[] = { "train", "sam2", "--checkpoint", ckpt, "--project", project, "--out", ckpt,
                         "--size", "512", "--steps", "1", "--quiet", NULL };

  g_assert_true (lode_sam2_config_init_size (&cfg, "tiny"));
  g_assert_true (lode_sam2_write_random_checkpoint (&cfg, ckpt, &error));
  g_assert_no_error (error);
  lode_demo_options_init (&demo);
  demo.n_tiles = 2;
  demo.size = 32;
  g_assert_true (lode_demo_write (dir, &demo, NULL, NULL, NULL, &error));
  lode_import_options_init (&import);
  g_assert_true (lode_cli_import_into (project, dir, &import, TRUE, &error));
  g_assert_no_error (error);
  g_assert_true (g_file_get_contents (ckpt, &before, &l1, NULL));

  g_assert_cmpint (lode_test_run_lode (args, &out, &err), ==, 0);
  g_test_message ("%s", out);
  first = number_after (out, "training loss ");
  last = number_after (strstr (out, "training loss ") + strlen ("training loss "), "-> ");
  g_assert_cmpfloat (last, <, 0.9 * first);
  g_assert_true (g_file_get_contents (ckpt, &after, &l2, NULL));
  g_assert_cmpuint (l1, ==, l2);
  g_assert_true (memcmp (before, after, l1) == 0);
  pred = lode_sam2_predictor_open (tuned, NULL, 512, &error);
  g_assert_no_error (error);
  g_assert_nonnull (pred);

  /* the project lists it as a SAM2 model version, with the run's metrics */
  {
    g_autoptr(LodeStore) store = lode_store_open (project, FALSE, &error);
    g_autoptr(GPtrArray) versions = NULL;
    g_autofree char *where = NULL;
    const LodeModelVersion *v;

    g_assert_no_error (error);
    versions = lode_store_list_model_versions (store, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (versions->len, ==, 1);
    v = g_ptr_array_index (versions, 0);
    g_assert_cmpint (v->kind, ==, LODE_MODEL_SAM2);
    g_assert_cmpstr (v->name, ==, "field-tuned");
    where = lode_store_resolve_path (store, v->path);
    g_assert_cmpstr (where, ==, tuned);
    g_assert_nonnull (strstr (v->metrics_json, "\"steps\":20"));
    g_assert_nonnull (strstr (out, "Added model version"));
  }

  /* refusing to overwrite the source */
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (lode_test_run_lode (same, &out, &err), !=, 0);
  g_assert_nonnull (strstr (err, "overwrite"));
  lode_test_rmtree (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sam2-train/parity", test_parity);
  g_test_add_func ("/sam2-train/finite-differences", test_finite_differences);
  g_test_add_func ("/sam2-train/fine-tune-saves", test_fine_tune_saves);
  g_test_add_func ("/sam2-train/cli", test_cli);
  return g_test_run ();
}
