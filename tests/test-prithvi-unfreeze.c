/* Training Prithvi-EO-2.0 with its last blocks unfrozen: the transformer
 * block's backward against finite differences, the gradients of the
 * unfrozen blocks against PyTorch (tests/reference/
 * prithvi_unfreeze_reference.py, the reduced model of test-prithvi), a few
 * steps that must move the unfrozen blocks only and lower the loss, the
 * saved file giving the same predictions when loaded back, and the
 * command's --unfreeze-blocks. OpenBLAS is held to one thread, as in
 * test-prithvi-train. */
#include "config.h"

#include "lode-ops.h"
#include <math.h>
#include <string.h>

#include "lode-checkpoint.h"
#include "lode-prithvi.h"
#include "lode-test-prithvi.h"
#include "lode-test-util.h"
#include "lode-vit.h"

#define SIZE 64

/* ---- finite differences on one small block ------------------------------ */

#define FD_N 2
#define FD_TOKENS 3
#define FD_DIM 8
#define FD_HEADS 2
#define FD_MLP 16
#define FD_ROWS (FD_N * FD_TOKENS)
/* central differences of step FD_STEP in float32; the largest difference
 * from the analytic gradient, relative to the tensor's largest gradient,
 * must stay under FD_TOLERANCE (measured at most 1e-4) */
#define FD_STEP 1e-2f
#define FD_TOLERANCE 1e-3

/* L = sum (block (x) * r), in double. */
static double
fd_loss (const LodeVitBlock *block, const float *x, const float *r, LodeVitWork *work)
{
  float y[FD_ROWS * FD_DIM];
  double sum = 0.0;

  memcpy (y, x, sizeof y);
  lode_vit_block_forward (block, y, FD_N, FD_TOKENS, work, NULL);
  for (int i = 0; i < FD_ROWS * FD_DIM; i++)
    sum += (double) y[i] * r[i];
  return sum;
}

/* max |numeric - analytic| / max |analytic| over the count values of v. */
static double
fd_error (const LodeVitBlock *block, float *v, const float *analytic, gsize count, const float *x, const float *r,
          LodeVitWork *work)
{
  double worst = 0.0, scale = 1e-6;

  for (gsize i = 0; i < count; i++)
    {
      float keep = v[i];
      double up, down;

      v[i] = keep + FD_STEP;
      up = fd_loss (block, x, r, work);
      v[i] = keep - FD_STEP;
      down = fd_loss (block, x, r, work);
      v[i] = keep;
      worst = MAX (worst, fabs ((up - down) / (2.0 * FD_STEP) - analytic[i]));
      scale = MAX (scale, fabs (analytic[i]));
    }
  return worst / scale;
}

static void
test_block_fd (void)
{
  LodeVitBlock block = { FD_DIM, FD_HEADS, FD_MLP, 1e-5f, { NULL } };
  float *params[LODE_VIT_N_PARAMS], *grads[LODE_VIT_N_PARAMS];
  float x[FD_ROWS * FD_DIM], r[FD_ROWS * FD_DIM], y[FD_ROWS * FD_DIM], y2[FD_ROWS * FD_DIM];
  float dx[FD_ROWS * FD_DIM];
  g_autoptr(GRand) rng = g_rand_new_with_seed (11);
  g_autoptr(LodeVitWork) work = lode_vit_work_new (&block, FD_N, FD_TOKENS);
  g_autoptr(LodeVitActs) acts = lode_vit_acts_new (&block, FD_N, FD_TOKENS);
  double err;

  for (int p = 0; p < LODE_VIT_N_PARAMS; p++)
    {
      gsize count = lode_vit_param_numel (&block, p);
      gboolean norm_weight = p == LODE_VIT_NORM1_WEIGHT || p == LODE_VIT_NORM2_WEIGHT;

      params[p] = g_new (float, count);
      grads[p] = g_new0 (float, count);
      for (gsize i = 0; i < count; i++)
        params[p][i] = (norm_weight ? 1.0f : 0.0f) + (float) g_rand_double_range (rng, -0.5, 0.5);
      block.param[p] = params[p];
    }
  for (int i = 0; i < FD_ROWS * FD_DIM; i++)
    {
      x[i] = (float) g_rand_double_range (rng, -1.5, 1.5);
      r[i] = (float) g_rand_double_range (rng, -1.0, 1.0);
    }

  /* the training forward computes what the inference one does */
  memcpy (y, x, sizeof y);
  memcpy (y2, x, sizeof y2);
  lode_vit_block_forward (&block, y, FD_N, FD_TOKENS, work, NULL);
  lode_vit_block_forward (&block, y2, FD_N, FD_TOKENS, work, acts);
  for (int i = 0; i < FD_ROWS * FD_DIM; i++)
    g_assert_cmpfloat_with_epsilon (y[i], y2[i], 1e-5);

  memcpy (dx, r, sizeof dx);
  lode_vit_block_backward (&block, dx, acts, work, grads);
  err = fd_error (&block, x, dx, FD_ROWS * FD_DIM, x, r, work);
  g_test_message ("input: %.2e", err);
  g_assert_cmpfloat (err, <, FD_TOLERANCE);
  for (int p = 0; p < LODE_VIT_N_PARAMS; p++)
    {
      err = fd_error (&block, params[p], grads[p], lode_vit_param_numel (&block, p), x, r, work);
      g_test_message ("%s: %.2e", lode_vit_param_name (p), err);
      g_assert_cmpfloat (err, <, FD_TOLERANCE);
    }

  /* gradients are added to */
  {
    float before = grads[LODE_VIT_FC2_BIAS][0];

    lode_vit_block_forward (&block, memcpy (y, x, sizeof y), FD_N, FD_TOKENS, work, acts);
    memcpy (dx, r, sizeof dx);
    lode_vit_block_backward (&block, dx, acts, work, grads);
    g_assert_cmpfloat_with_epsilon (grads[LODE_VIT_FC2_BIAS][0], 2.0f * before, 1e-5);
  }
  for (int p = 0; p < LODE_VIT_N_PARAMS; p++)
    {
      g_free (params[p]);
      g_free (grads[p]);
    }
}

/* ---- the reduced model ---------------------------------------------------- */

/* The reference script's mask: ((i * 2654435761) mod 2^32) >> 30, 3 being
 * 255; classes >= 3 fold onto 0 .. classes - 1. */
static void
make_masks (guint8 *masks, int n, int classes)
{
  for (guint64 i = 0; i < (guint64) n * SIZE * SIZE; i++)
    {
      guint32 v = (guint32) ((i * 2654435761u) & 0xFFFFFFFFu) >> 30;

      masks[i] = v == 3 ? 255 : (guint8) (v % classes);
    }
}

static char *
write_reduced (const char *dir)
{
  char *path = g_build_filename (dir, "reduced.pt", NULL);
  g_autoptr(GPtrArray) layout = lode_test_prithvi_layout ("prithvi_reduced.layout.tsv");

  lode_test_prithvi_write_ckpt (path, layout, "", LODE_TEST_WRAP_NONE, NULL);
  return path;
}

static void
test_parity (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *path = write_reduced (dir);
  g_autoptr(LodePrithviModel) model = lode_test_prithvi_open (path, NULL, FALSE);
  g_autofree float *raw = g_new (float, 2 * 6 * SIZE * SIZE);
  g_autofree guint8 *masks = g_new (guint8, 2 * SIZE * SIZE);
  g_autoptr(LodeTestRecord) ref_loss = lode_test_prithvi_record ("unfreeze", "loss");
  g_autoptr(GError) error = NULL;
  LodePrithviTrainOptions options;
  double loss = 0.0, worst = 0.0;

  lode_test_prithvi_raw_input (raw, 2, SIZE, SIZE);
  make_masks (masks, 2, 3);
  lode_prithvi_train_options_init (&options);
  options.flips = FALSE;
  options.head_dropout = 0.0f;
  options.unfreeze_blocks = 4;
  g_assert_null (lode_prithvi_model_get_block_grad (model, 3, LODE_VIT_QKV_WEIGHT));
  g_assert_true (lode_prithvi_model_train_step (model, &options, raw, masks, 2, 6, SIZE, SIZE, NULL, 0, &loss, &error));
  g_assert_no_error (error);
  g_test_message ("loss %.7f, PyTorch %.7f", loss, ref_loss->data[0]);
  g_assert_cmpfloat (fabs (loss - ref_loss->data[0]), <, 1e-5 * fabs (ref_loss->data[0]));

  /* every block (the decoder's gradient at each feature; block 3, the
   * last, through the final norm): every gradient
   * within 1e-4 of the tensor's largest (measured at most 8e-6) */
  for (int b = 0; b <= 3; b++)
    for (int p = 0; p < LODE_VIT_N_PARAMS; p++)
      {
        g_autofree char *name = g_strdup_printf ("blocks.%d.%s", b, lode_vit_param_name (p));
        g_autoptr(LodeTestRecord) ref = lode_test_prithvi_record ("unfreeze", name);
        const float *grad = lode_prithvi_model_get_block_grad (model, b, p);
        double err;

        g_assert_nonnull (grad);
        err = lode_test_record_error (ref, grad);
        worst = MAX (worst, err);
        if (err >= 1e-4)
          g_test_message ("%s: %.2e", name, err);
        g_assert_cmpfloat (err, <, 1e-4);
      }
  g_test_message ("worst relative gradient error %.2e", worst);
  lode_test_rmtree (dir);
}

typedef struct {
  float *v[4][LODE_VIT_N_PARAMS];
} Snapshot;

static void
snapshot (Snapshot *s, LodePrithviModel *model)
{
  LodePrithviEncoder *enc = lode_prithvi_model_get_encoder (model);

  for (int b = 0; b < 4; b++)
    for (int p = 0; p < LODE_VIT_N_PARAMS; p++)
      {
        gsize count;
        const float *v = lode_prithvi_encoder_get_block_param (enc, b, p, &count);

        s->v[b][p] = g_memdup2 (v, count * sizeof (float));
      }
}

/* Whether block b of model still holds the snapshot's values, bit for bit. */
static gboolean
same_block (const Snapshot *s, LodePrithviModel *model, int b)
{
  LodePrithviEncoder *enc = lode_prithvi_model_get_encoder (model);

  for (int p = 0; p < LODE_VIT_N_PARAMS; p++)
    {
      gsize count;
      const float *v = lode_prithvi_encoder_get_block_param (enc, b, p, &count);

      if (memcmp (v, s->v[b][p], count * sizeof (float)) != 0)
        return FALSE;
    }
  return TRUE;
}

static void
snapshot_clear (Snapshot *s)
{
  for (int b = 0; b < 4; b++)
    for (int p = 0; p < LODE_VIT_N_PARAMS; p++)
      g_free (s->v[b][p]);
}

#define STEPS 6

/* STEPS steps on one fixed batch; returns the first and last losses. */
static void
train (LodePrithviModel *model, int unfreeze, const float *raw, const guint8 *masks, double *first, double *last)
{
  LodePrithviTrainOptions options;
  g_autoptr(GError) error = NULL;

  lode_prithvi_train_options_init (&options);
  options.flips = FALSE;
  options.head_dropout = 0.0f;
  options.unfreeze_blocks = unfreeze;
  for (int step = 0; step < STEPS; step++)
    {
      double loss;

      g_assert_true (lode_prithvi_model_train_step (model, &options, raw, masks, 2, 6, SIZE, SIZE, NULL, step, &loss,
                                                    &error));
      g_assert_no_error (error);
      if (step == 0)
        *first = loss;
      *last = loss;
    }
}

static void
test_train_and_save (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *path = write_reduced (dir);
  g_autofree char *saved = g_build_filename (dir, "decoder.safetensors", NULL);
  g_autofree char *frozen_saved = g_build_filename (dir, "frozen.safetensors", NULL);
  g_autofree float *raw = g_new (float, 2 * 6 * SIZE * SIZE);
  g_autofree guint8 *masks = g_new (guint8, 2 * SIZE * SIZE);
  g_autofree float *logits = g_new (float, 2 * 2 * SIZE * SIZE);
  g_autofree float *logits2 = g_new (float, 2 * 2 * SIZE * SIZE);
  g_autoptr(LodePrithviModel) model = lode_test_prithvi_open (path, NULL, TRUE);
  g_autoptr(LodePrithviModel) frozen = lode_test_prithvi_open (path, NULL, TRUE);
  g_autoptr(LodePrithviModel) reloaded = NULL;
  g_autoptr(LodeCheckpoint) ckpt = NULL;
  g_autoptr(GError) error = NULL;
  LodePrithviTrainOptions options;
  Snapshot before;
  double first, last;

  lode_test_prithvi_raw_input (raw, 2, SIZE, SIZE);
  make_masks (masks, 2, 2);
  snapshot (&before, model);

  /* unfreeze 1: block 3 learns, the others stay; the loss falls */
  train (model, 1, raw, masks, &first, &last);
  g_test_message ("unfreeze 1: loss %.4f -> %.4f", first, last);
  g_assert_cmpfloat (last, <, first);
  g_assert_false (same_block (&before, model, 3));
  for (int b = 0; b < 3; b++)
    g_assert_true (same_block (&before, model, b));

  /* unfreeze 0: the encoder does not move at all */
  train (frozen, 0, raw, masks, &first, &last);
  g_assert_cmpfloat (last, <, first);
  for (int b = 0; b < 4; b++)
    g_assert_true (same_block (&before, frozen, b));
  g_assert_null (lode_prithvi_model_get_block_grad (frozen, 3, LODE_VIT_FC1_WEIGHT));

  /* saved with its trained block, loaded back on the original encoder:
   * the same logits, bit for bit */
  g_assert_true (lode_prithvi_model_save_decoder (model, saved, &error));
  g_assert_no_error (error);
  ckpt = lode_checkpoint_open (saved, &error);
  g_assert_no_error (error);
  g_assert_true (lode_checkpoint_has (ckpt, "encoder.blocks.3.attn.qkv.weight"));
  g_assert_true (lode_checkpoint_has (ckpt, "encoder.blocks.3.mlp.fc2.bias"));
  g_assert_false (lode_checkpoint_has (ckpt, "encoder.blocks.2.attn.qkv.weight"));
  reloaded = lode_test_prithvi_open (path, saved, FALSE);
  g_assert_true (lode_prithvi_model_predict (model, raw, 2, 6, SIZE, SIZE, NULL, logits, NULL, NULL, &error));
  g_assert_true (lode_prithvi_model_predict (reloaded, raw, 2, 6, SIZE, SIZE, NULL, logits2, NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (logits, 2 * 2 * SIZE * SIZE * sizeof (float), logits2, 2 * 2 * SIZE * SIZE * sizeof (float));
  /* the trained block matters: the frozen model's decoder file holds no
   * block, and the same decoder on the original block 3 predicts otherwise */
  g_assert_true (lode_prithvi_model_save_decoder (frozen, frozen_saved, &error));
  g_clear_pointer (&ckpt, lode_checkpoint_free);
  ckpt = lode_checkpoint_open (frozen_saved, &error);
  g_assert_no_error (error);
  g_assert_false (lode_checkpoint_has (ckpt, "encoder.blocks.3.attn.qkv.weight"));
  {
    g_autoptr(LodePrithviModel) original = lode_test_prithvi_open (path, NULL, TRUE);
    LodeUpernet *d = lode_prithvi_model_get_decoder (original), *trained = lode_prithvi_model_get_decoder (model);

    for (guint i = 0; i < lode_upernet_n_tensors (d); i++)
      memcpy (lode_upernet_tensor_data (d, i), lode_upernet_tensor_data (trained, i),
              lode_upernet_tensor_numel (d, i) * sizeof (float));
    g_assert_true (lode_prithvi_model_predict (original, raw, 2, 6, SIZE, SIZE, NULL, logits2, NULL, NULL, &error));
    g_assert_true (memcmp (logits, logits2, 2 * 2 * SIZE * SIZE * sizeof (float)) != 0);
  }

  /* more blocks than feed the decoder */
  lode_prithvi_train_options_init (&options);
  options.unfreeze_blocks = 5;
  g_assert_cmpint (lode_prithvi_model_get_max_unfreeze (model), ==, 4);
  g_assert_false (lode_prithvi_model_train_step (model, &options, raw, masks, 2, 6, SIZE, SIZE, NULL, 0, NULL, &error));
  g_assert_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_CONFIG);
  snapshot_clear (&before);
  lode_test_rmtree (dir);
}

static gboolean
is_encoder (const char *name)
{
  return g_str_has_prefix (name, "encoder.");
}

static void
test_command (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *enc = g_build_filename (dir, "encoder.pt", NULL);
  g_autofree char *dec = g_build_filename (dir, "decoder.safetensors", NULL);
  g_autofree char *out = NULL, *err = NULL;
  const char *demo[] = { "demo", dir, "--tiles", "3", "--size", "64", NULL };
  const char *train_ok[] = { "train", "prithvi", "--data", dir, "--weights", enc, "--out", dec, "--batch", "2",
                             "--steps", "1", "--unfreeze-blocks", "2", "--quiet", NULL };
  const char *too_many[] = { "train", "prithvi", "--data", dir, "--weights", enc, "--out", dec, "--batch", "2",
                             "--steps", "1", "--unfreeze-blocks", "5", "--quiet", NULL };
  const char *unet[] = { "train", "unet", "--data", dir, "--unfreeze-blocks", "1", NULL };
  g_autoptr(LodeCheckpoint) ckpt = NULL;
  g_autoptr(GError) error = NULL;

  {
    g_autoptr(GPtrArray) layout = lode_test_prithvi_layout ("prithvi_reduced.layout.tsv");

    lode_test_prithvi_write_ckpt (enc, layout, "", LODE_TEST_WRAP_NONE, is_encoder);
  }
  g_assert_cmpint (lode_test_run_lode (demo, &out, NULL), ==, 0);
  g_clear_pointer (&out, g_free);
  g_assert_cmpint (lode_test_run_lode (train_ok, &out, &err), ==, 0);
  g_assert_nonnull (strstr (out, "blocks 2 to 3"));
  ckpt = lode_checkpoint_open (dec, &error);
  g_assert_no_error (error);
  g_assert_true (lode_checkpoint_has (ckpt, "encoder.blocks.2.norm1.weight"));
  g_assert_true (lode_checkpoint_has (ckpt, "encoder.blocks.3.norm1.weight"));
  g_assert_false (lode_checkpoint_has (ckpt, "encoder.blocks.1.norm1.weight"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (lode_test_run_lode (too_many, NULL, &err), ==, 2);
  g_assert_nonnull (strstr (err, "Cannot unfreeze 5 blocks"));
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (lode_test_run_lode (unet, NULL, &err), ==, 2);
  g_assert_nonnull (strstr (err, "--unfreeze-blocks"));
  lode_test_rmtree (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  lode_ops_cpu_set_threads (1);
  g_test_add_func ("/prithvi-unfreeze/block-fd", test_block_fd);
  g_test_add_func ("/prithvi-unfreeze/parity", test_parity);
  g_test_add_func ("/prithvi-unfreeze/train-and-save", test_train_and_save);
  g_test_add_func ("/prithvi-unfreeze/command", test_command);
  return g_test_run ();
}
