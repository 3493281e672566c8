/* Training the UperNet decoder of a Prithvi segmenter with the encoder
 * frozen, as the SmallMinesDS recipe does (cross-entropy, AdamW lr 1e-3,
 * weight decay 0.05, flips, head dropout 0.1, batch 4), on the demo data
 * set: the mining IoU on held-out tiles must pass a bar, the saved decoder
 * must give the same masks when loaded back, and the encoder must not
 * move. The encoder is the reduced one of test-prithvi (width 64, 4 blocks)
 * with the weights rule's values (no pretrained weights can be shipped):
 * its block outputs still carry the patches' spectra, which is what the
 * decoder learns from. OpenBLAS is held to one thread: the products are
 * small, and its spinning threads make a shared 2-core machine many times
 * slower (7 to 46 s instead of 4 s). */
#include "config.h"

#include "lode-ops.h"
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "lode-demo.h"
#include "lode-prithvi.h"
#include "lode-raster.h"
#include "lode-train.h"
#include "lode-upernet.h"
#include "lode-test-prithvi.h"
#include "lode-test-util.h"

#define SIZE 128
#define TOKENS ((SIZE / 16) * (SIZE / 16) + 1)
#define N_TILES 16
#define N_TRAIN_TILES 12
#define BATCH 4
#define STEPS 100
/* Mining IoU on the held-out tiles after STEPS steps (measured 0.589, from
 * 0.082 before training). */
#define IOU_BAR 0.45

typedef struct {
  int     n;
  float  *images;   /* [n, 13, SIZE, SIZE], NaN where there is no data */
  guint8 *masks;    /* [n, SIZE, SIZE] */
} Patches;

static void
load_patch (const char *dir, int tile, int year, float *image, guint8 *mask)
{
  g_autofree char *img = g_strdup_printf ("%s/SmallMinesDS/%d/IMAGE/IMG_GH_%04d_%d.tif", dir, year, tile, year);
  g_autofree char *msk = g_strdup_printf ("%s/SmallMinesDS/%d/MASK/MASK_GH_%04d_%d.tif", dir, year, tile, year);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeRaster) r = lode_raster_open (img, &error);
  g_autoptr(LodeRaster) m = NULL;
  gsize plane = SIZE * SIZE;

  g_assert_no_error (error);
  g_assert_cmpint (r->n_bands, ==, 13);
  g_assert_cmpint (r->width, ==, SIZE);
  for (int b = 0; b < 13; b++)
    {
      const float *band = lode_raster_band (r, b);

      for (gsize p = 0; p < plane; p++)
        image[b * plane + p] = r->valid[p] ? band[p] : NAN;
    }
  m = lode_raster_open (msk, &error);
  g_assert_no_error (error);
  for (gsize p = 0; p < plane; p++)
    mask[p] = m->valid[p] ? (guint8) lode_raster_band (m, 0)[p] : 255;
}

static Patches *
load_patches (const char *dir, int first_tile, int last_tile)
{
  Patches *ps = g_new0 (Patches, 1);
  gsize plane = SIZE * SIZE;

  ps->n = 2 * (last_tile - first_tile + 1);
  ps->images = g_new (float, (gsize) ps->n * 13 * plane);
  ps->masks = g_new (guint8, (gsize) ps->n * plane);
  for (int t = first_tile, i = 0; t <= last_tile; t++)
    for (int y = 0; y < 2; y++, i++)
      load_patch (dir, t, y ? 2022 : 2016, ps->images + (gsize) i * 13 * plane, ps->masks + (gsize) i * plane);
  return ps;
}

static void
patches_free (Patches *ps)
{
  g_free (ps->images);
  g_free (ps->masks);
  g_free (ps);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Patches, patches_free)

/* IoU of class 1 over the labelled pixels. */
static double
mining_iou (LodePrithviModel *model, const Patches *val)
{
  gsize plane = SIZE * SIZE;
  g_autofree guint8 *pred = g_new (guint8, (gsize) val->n * plane);
  g_autoptr(GError) error = NULL;
  gint64 inter = 0, uni = 0;

  g_assert_true (lode_prithvi_model_predict (model, val->images, val->n, 13, SIZE, SIZE, NULL, NULL, pred, NULL,
                                             &error));
  g_assert_no_error (error);
  for (gsize i = 0; i < (gsize) val->n * plane; i++)
    {
      gboolean t = val->masks[i] == 1, p = pred[i] == 1;

      if (val->masks[i] == 255)
        continue;
      inter += t && p;
      uni += t || p;
    }
  return uni ? (double) inter / uni : 1.0;
}

static gboolean
is_encoder (const char *name)
{
  return g_str_has_prefix (name, "encoder.");
}

/* The encoder's outputs for the first validation patch. */
static float *
encode (LodePrithviModel *model, const Patches *val)
{
  LodePrithviEncoder *encoder = lode_prithvi_model_get_encoder (model);
  g_autofree float *input = g_new (float, 6 * SIZE * SIZE);
  float *tokens = g_new (float, TOKENS * 64);
  const int block = 3;
  g_autoptr(GError) error = NULL;

  g_assert_true (lode_prithvi_normalise (input, val->images, 1, 13, SIZE, SIZE, &error));
  g_assert_true (lode_prithvi_encoder_forward (encoder, input, 1, SIZE, SIZE, NULL, &block, 1, &tokens, &error));
  g_assert_no_error (error);
  return tokens;
}

static void
test_train_demo (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *saved = g_build_filename (dir, "decoder.safetensors", NULL);
  g_autofree char *enc_path = g_build_filename (dir, "encoder.pt", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(Patches) train = NULL;
  g_autoptr(Patches) val = NULL;
  g_autoptr(LodePrithviModel) model = NULL;
  g_autoptr(LodePrithviModel) reloaded = NULL;
  g_autofree float *tokens_before = NULL, *tokens_after = NULL;
  g_autofree guint8 *pred = NULL, *pred2 = NULL;
  LodeDemoOptions demo;
  LodePrithviTrainOptions options;
  gsize plane = SIZE * SIZE;
  g_autofree float *batch = g_new (float, (gsize) BATCH * 13 * plane);
  g_autofree guint8 *masks = g_new (guint8, (gsize) BATCH * plane);
  g_autofree guint *order = NULL;
  double before, after, first_loss = 0.0, last_loss = 0.0;
  gint64 t0;

  lode_demo_options_init (&demo);
  demo.n_tiles = N_TILES;
  demo.size = SIZE;
  g_assert_true (lode_demo_write (dir, &demo, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  train = load_patches (dir, 1, N_TRAIN_TILES);
  val = load_patches (dir, N_TRAIN_TILES + 1, N_TILES);
  {
    g_autoptr(GPtrArray) layout = lode_test_prithvi_layout ("prithvi_reduced.layout.tsv");

    lode_test_prithvi_write_ckpt (enc_path, layout, "", LODE_TEST_WRAP_NONE, is_encoder);
  }
  model = lode_test_prithvi_open (enc_path, NULL, TRUE);
  tokens_before = encode (model, val);

  before = mining_iou (model, val);
  lode_prithvi_train_options_init (&options);
  options.seed = 3;
  order = g_new (guint, train->n);
  t0 = g_get_monotonic_time ();
  for (int step = 0; step < STEPS; step++)
    {
      int at = (step * BATCH) % train->n;
      double loss;

      if (at == 0)
        {
          g_autoptr(GRand) rng = g_rand_new_with_seed (step);

          for (int i = 0; i < train->n; i++)
            order[i] = i;
          for (int i = train->n - 1; i > 0; i--)
            {
              int j = g_rand_int_range (rng, 0, i + 1);
              guint tmp = order[i];

              order[i] = order[j], order[j] = tmp;
            }
        }
      for (int b = 0; b < BATCH; b++)
        {
          guint idx = order[(at + b) % train->n];

          memcpy (batch + (gsize) b * 13 * plane, train->images + (gsize) idx * 13 * plane, 13 * plane * sizeof (float));
          memcpy (masks + (gsize) b * plane, train->masks + (gsize) idx * plane, plane);
        }
      g_assert_true (lode_prithvi_model_train_step (model, &options, batch, masks, BATCH, 13, SIZE, SIZE, NULL, step,
                                                    &loss, &error));
      g_assert_no_error (error);
      g_assert_true (isfinite (loss));
      if (step < 5)
        first_loss += loss / 5;
      if (step >= STEPS - 5)
        last_loss += loss / 5;
    }
  after = mining_iou (model, val);
  g_test_message ("%d steps of %d patches in %.1f s; loss %.3f -> %.3f; mining IoU on %d held-out patches "
                  "%.3f -> %.3f", STEPS, BATCH, (g_get_monotonic_time () - t0) / 1e6, first_loss, last_loss,
                  val->n, before, after);
  g_assert_cmpfloat (last_loss, <, first_loss);
  g_assert_cmpfloat (after, >=, IOU_BAR);
  g_assert_cmpfloat (after, >, before + 0.3);

  /* the encoder is frozen */
  tokens_after = encode (model, val);
  g_assert_cmpmem (tokens_before, TOKENS * 64 * sizeof (float), tokens_after, TOKENS * 64 * sizeof (float));

  /* the saved decoder loads back and segments alike */
  g_assert_true (lode_prithvi_model_save_decoder (model, saved, &error));
  g_assert_no_error (error);
  reloaded = lode_test_prithvi_open (enc_path, saved, FALSE);
  pred = g_new (guint8, (gsize) val->n * plane);
  pred2 = g_new (guint8, (gsize) val->n * plane);
  g_assert_true (lode_prithvi_model_predict (model, val->images, val->n, 13, SIZE, SIZE, NULL, NULL, pred, NULL, &error));
  g_assert_true (lode_prithvi_model_predict (reloaded, val->images, val->n, 13, SIZE, SIZE, NULL, NULL, pred2, NULL,
                                             &error));
  g_assert_cmpmem (pred, (gsize) val->n * plane, pred2, (gsize) val->n * plane);

  /* a batch of one cannot train (batch statistics) */
  g_assert_false (lode_prithvi_model_train_step (model, &options, batch, masks, 1, 13, SIZE, SIZE, NULL, 0, NULL, &error));
  g_assert_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_INPUT);

  lode_test_rmtree (dir);
}

/* One step from a fresh decoder (same seed: same dropout and flips) on ps
 * with class weights (NULL: none) and a Dice weight: its loss, and a copy
 * of the gradient of the last decoder tensor (the classifier's bias
 * excluded: the head's last weight). */
static double
one_step (const char *enc_path, const Patches *ps, const float *weights, float dice, float **grad, gsize *count)
{
  g_autoptr(LodePrithviModel) model = lode_test_prithvi_open (enc_path, NULL, TRUE);
  g_autoptr(GError) error = NULL;
  LodePrithviTrainOptions options;
  LodeUpernet *decoder;
  guint t;
  double loss = NAN;

  lode_prithvi_train_options_init (&options);
  options.seed = 5;
  options.class_weights = weights;
  options.dice_weight = dice;
  g_assert_true (lode_prithvi_model_train_step (model, &options, ps->images, ps->masks, ps->n, 13, SIZE, SIZE, NULL,
                                                0, &loss, &error));
  g_assert_no_error (error);
  decoder = lode_prithvi_model_get_decoder (model);
  t = lode_upernet_n_tensors (decoder) - 2;
  g_assert_true (g_str_has_suffix (lode_upernet_tensor_name (decoder, t), "weight"));
  *count = lode_upernet_tensor_numel (decoder, t);
  *grad = g_memdup2 (lode_upernet_tensor_grad (decoder, t), *count * sizeof (float));
  return loss;
}

/* The U-Net's loss options on a Prithvi step: class weights all 1 are the
 * unweighted step exactly; weights (1, 5) give the weighted mean of the
 * per-class losses (each measured alone with weights (1, 0) and (0, 1)),
 * in loss and gradient alike, as lode_grad_cross_entropy's formula says;
 * a Dice weight adds that many times one Dice term, between 0 and 1, to
 * the loss and its gradient. */
static void
test_loss_options (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *enc_path = g_build_filename (dir, "encoder.pt", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(Patches) ps = NULL;
  g_autofree float *g_plain = NULL, *g_ones = NULL, *g_0 = NULL, *g_1 = NULL, *g_15 = NULL;
  g_autofree float *g_dice1 = NULL, *g_dice_half = NULL;
  const float ones[2] = { 1, 1 }, only0[2] = { 1, 0 }, only1[2] = { 0, 1 }, w15[2] = { 1, 5 };
  LodeDemoOptions demo;
  double plain, l_ones, l0, l1, l15, dice1, dice_half, d, expect, n0 = 0, n1 = 0;
  gsize count;

  lode_demo_options_init (&demo);
  demo.n_tiles = 4;
  demo.size = SIZE;
  g_assert_true (lode_demo_write (dir, &demo, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  /* the first tile with mining in it: both classes weigh in */
  for (int tile = 1; tile <= (int) demo.n_tiles && n1 == 0; tile++)
    {
      g_clear_pointer (&ps, patches_free);
      ps = load_patches (dir, tile, tile);
      n0 = n1 = 0;
      for (gsize i = 0; i < (gsize) ps->n * SIZE * SIZE; i++)
        {
          n0 += ps->masks[i] == 0;
          n1 += ps->masks[i] == 1;
        }
    }
  {
    g_autoptr(GPtrArray) layout = lode_test_prithvi_layout ("prithvi_reduced.layout.tsv");

    lode_test_prithvi_write_ckpt (enc_path, layout, "", LODE_TEST_WRAP_NONE, is_encoder);
  }
  g_assert_cmpfloat (n0, >, 0);
  g_assert_cmpfloat (n1, >, 0);

  plain = one_step (enc_path, ps, NULL, 0, &g_plain, &count);
  l_ones = one_step (enc_path, ps, ones, 0, &g_ones, &count);
  g_assert_cmpfloat (l_ones, ==, plain);
  g_assert_cmpmem (g_ones, count * sizeof (float), g_plain, count * sizeof (float));

  l0 = one_step (enc_path, ps, only0, 0, &g_0, &count);
  l1 = one_step (enc_path, ps, only1, 0, &g_1, &count);
  l15 = one_step (enc_path, ps, w15, 0, &g_15, &count);
  g_assert_cmpfloat (fabs ((n0 * l0 + n1 * l1) / (n0 + n1) - plain), <, 1e-6 * plain);
  expect = (n0 * l0 + 5 * n1 * l1) / (n0 + 5 * n1);
  g_test_message ("loss %.6f, class 0 alone %.6f, class 1 alone %.6f, weights (1, 5) %.6f (expected %.6f)",
                  plain, l0, l1, l15, expect);
  g_assert_cmpfloat (fabs (l15 - plain), >, 1e-3);
  g_assert_cmpfloat (fabs (l15 - expect), <, 1e-6 * expect);
  /* Each gradient element is a float sum over the patch's pixels, so its
   * rounding (a few 1e-7 of its terms, more in a build without fused
   * multiply-adds) is measured against the largest element; a wrong
   * weighting is off by the size of the elements themselves. */
  {
    double gmax = 0.0, worst = 0.0;

    for (gsize i = 0; i < count; i++)
      gmax = MAX (gmax, fabs ((n0 * g_0[i] + 5 * n1 * g_1[i]) / (n0 + 5 * n1)));
    for (gsize i = 0; i < count; i++)
      {
        double want = (n0 * g_0[i] + 5 * n1 * g_1[i]) / (n0 + 5 * n1);

        worst = MAX (worst, fabs (g_15[i] - want));
      }
    g_test_message ("weighted gradient: largest error %.3g of %.3g", worst, gmax);
    g_assert_cmpfloat (gmax, >, 0.0);
    g_assert_cmpfloat (worst, <, 1e-4 * gmax);
  }

  dice1 = one_step (enc_path, ps, NULL, 1.0f, &g_dice1, &count);
  dice_half = one_step (enc_path, ps, NULL, 0.5f, &g_dice_half, &count);
  d = dice1 - plain;
  g_test_message ("Dice term %.6f", d);
  g_assert_cmpfloat (d, >, 0.01);
  g_assert_cmpfloat (d, <, 1.0);
  g_assert_cmpfloat (fabs ((dice_half - plain) - 0.5 * d), <, 1e-6);
  {
    gboolean moved = FALSE;

    for (gsize i = 0; i < count; i++)
      {
        double gd = g_dice1[i] - g_plain[i];

        moved = moved || fabs (gd) > 1e-6;
        g_assert_cmpfloat (fabs ((g_dice_half[i] - g_plain[i]) - 0.5 * gd), <, 1e-4 * (fabs (gd) + 1e-4));
      }
    g_assert_true (moved);
  }
  lode_test_rmtree (dir);
}

/* The patches as a training source: all of them for training, none for
 * validation. */
static int
patches_count (LodeTrainSplit split, gpointer user_data)
{
  return split == LODE_TRAIN_SPLIT_TRAIN ? ((Patches *) user_data)->n : 0;
}

static gboolean
patches_get (LodeTrainSplit split, int index, float *image, guint8 *mask, gpointer user_data, GError **error)
{
  Patches *ps = user_data;
  gsize plane = SIZE * SIZE;

  memcpy (image, ps->images + (gsize) index * 13 * plane, 13 * plane * sizeof (float));
  memcpy (mask, ps->masks + (gsize) index * plane, plane);
  return TRUE;
}

static char *
read_all (const char *path, gsize *length)
{
  g_autoptr(GError) error = NULL;
  char *text = NULL;

  g_assert_true (g_file_get_contents (path, &text, length, &error));
  g_assert_no_error (error);
  return text;
}

/* Trained into path for config's steps from a fresh decoder. */
static LodePrithviModel *
train_fresh (const char *enc_path, const LodeTrainConfig *config, int unfreeze, const LodeTrainSource *source,
             const char *path)
{
  g_autoptr(GError) error = NULL;
  LodePrithviModel *model = lode_test_prithvi_open (enc_path, NULL, TRUE);

  g_assert_true (lode_prithvi_model_train (model, config, unfreeze, source, path, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  return model;
}

/* 4 steps in one run, and 2 steps then a new model resumed from the
 * checkpoint to 4 (3 steps an epoch: the resumed run goes on in the first
 * epoch's order and crosses into the second), end with the same file: the
 * decoder, the trained blocks and the AdamW moments bit for bit (dropout
 * and flips come from the seed and step, OpenBLAS runs on one thread). A
 * decoder saved without training state, or a run with another seed,
 * cannot resume. */
static void
test_resume (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *enc_path = g_build_filename (dir, "encoder.pt", NULL);
  g_autofree char *straight_path = g_build_filename (dir, "straight.safetensors", NULL);
  g_autofree char *resumed_path = g_build_filename (dir, "resumed.safetensors", NULL);
  g_autofree char *plain_path = g_build_filename (dir, "plain.safetensors", NULL);
  g_autoptr(Patches) ps = NULL;
  g_autoptr(GError) error = NULL;
  LodeDemoOptions demo;
  LodeTrainConfig config, half, other;
  LodeTrainSource source;

  lode_demo_options_init (&demo);
  demo.n_tiles = 4;
  demo.size = SIZE;
  g_assert_true (lode_demo_write (dir, &demo, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  ps = load_patches (dir, 1, 3);
  source = (LodeTrainSource) { SIZE, SIZE, patches_count, patches_get, ps, NULL };
  {
    g_autoptr(GPtrArray) layout = lode_test_prithvi_layout ("prithvi_reduced.layout.tsv");

    lode_test_prithvi_write_ckpt (enc_path, layout, "", LODE_TEST_WRAP_NONE, is_encoder);
  }
  lode_train_config_init (&config);
  config.bands = 13;
  config.classes = 2;
  config.batch_size = 2;
  config.epochs = 2;
  config.max_steps = 4;
  config.lr = 1e-3f;
  config.seed = 5;
  half = config;
  half.max_steps = 2;

  for (int unfreeze = 0; unfreeze <= 1; unfreeze++)
    {
      g_autoptr(LodePrithviModel) straight = train_fresh (enc_path, &config, unfreeze, &source, straight_path);
      g_autoptr(LodePrithviModel) first = train_fresh (enc_path, &half, unfreeze, &source, resumed_path);
      g_autoptr(LodePrithviModel) resumed = lode_test_prithvi_open (enc_path, resumed_path, FALSE);
      g_autofree char *a = NULL, *b = NULL, *c = NULL;
      gsize la, lb, lc;
      gint64 step = -1;
      LodeUpernet *da = lode_prithvi_model_get_decoder (straight), *db = lode_prithvi_model_get_decoder (resumed);

      /* half way the decoders differ */
      c = read_all (resumed_path, &lc);
      a = read_all (straight_path, &la);
      g_assert_false (la == lc && memcmp (a, c, la) == 0);

      g_assert_true (lode_prithvi_model_load_train_state (resumed, resumed_path, &config, unfreeze, &step, &error));
      g_assert_no_error (error);
      g_assert_cmpint (step, ==, 2);
      g_assert_true (lode_prithvi_model_train_from (resumed, &config, unfreeze, &source, resumed_path, step, NULL,
                                                    NULL, NULL, &error));
      g_assert_no_error (error);
      for (guint i = 0; i < lode_upernet_n_tensors (da); i++)
        g_assert_cmpmem (lode_upernet_tensor_data (da, i), lode_upernet_tensor_numel (da, i) * sizeof (float),
                         lode_upernet_tensor_data (db, i), lode_upernet_tensor_numel (db, i) * sizeof (float));
      b = read_all (resumed_path, &lb);
      g_assert_cmpmem (a, la, b, lb);
      g_test_message ("unfreeze %d: 4 steps straight and 2 + 2 resumed give the same %zu-byte file", unfreeze, la);

      /* another seed cannot continue this run */
      other = config;
      other.seed = 6;
      g_assert_false (lode_prithvi_model_load_train_state (resumed, resumed_path, &other, unfreeze, NULL, &error));
      g_assert_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_CONFIG);
      g_clear_error (&error);
    }

  /* the decoder alone (lode_prithvi_model_save_decoder) holds no state */
  {
    g_autoptr(LodePrithviModel) model = lode_test_prithvi_open (enc_path, straight_path, FALSE);
    g_autoptr(LodePrithviModel) plain = NULL;

    g_assert_true (lode_prithvi_model_save_decoder (model, plain_path, &error));
    g_assert_no_error (error);
    plain = lode_test_prithvi_open (enc_path, plain_path, FALSE);
    g_assert_false (lode_prithvi_model_load_train_state (plain, plain_path, &config, 0, NULL, &error));
    g_assert_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_CHECKPOINT);
    g_assert_nonnull (strstr (error->message, "plain.safetensors"));
  }
  lode_test_rmtree (dir);
}

/* lode train prithvi and lode predict --encoder on a small demo set (a few
 * steps: the command line is checked here, the learning above). */
static void
test_commands (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *enc = g_build_filename (dir, "encoder.pt", NULL);
  g_autofree char *dec = g_build_filename (dir, "decoder.safetensors", NULL);
  g_autofree char *plain = g_build_filename (dir, "plain.safetensors", NULL);
  g_autofree char *mask = g_build_filename (dir, "mask.tif", NULL);
  g_autofree char *image = g_build_filename (dir, "SmallMinesDS", "2022", "IMAGE", "IMG_GH_0002_2022.tif", NULL);
  g_autofree char *out = NULL, *err = NULL;
  const char *demo[] = { "demo", dir, "--tiles", "4", "--size", "64", NULL };
  const char *train[] = { "train", "prithvi", "--data", dir, "--weights", enc, "--out", dec, "--batch", "2",
                          "--steps", "2", "--quiet", "--class-weights", "1,4", "--dice", "0.5", NULL };
  const char *predict[] = { "predict", "--encoder", enc, "--model", dec, "--image", image, "--out", mask, NULL };
  const char *resume[] = { "train", "prithvi", "--data", dir, "--weights", enc, "--out", dec, "--batch", "2",
                           "--steps", "3", "--quiet", "--resume", "--class-weights", "1,4", "--dice", "0.5", NULL };
  const char *resume_plain[] = { "train", "prithvi", "--data", dir, "--weights", enc, "--out", plain, "--batch", "2",
                                 "--steps", "3", "--quiet", "--resume", "--class-weights", "1,4", "--dice", "0.5", NULL };
  const char *no_weights[] = { "train", "prithvi", "--data", dir, NULL };
  const char *bad_weights[][11] = {
    { "train", "prithvi", "--data", dir, "--weights", enc, "--class-weights", "1", NULL },
    { "train", "prithvi", "--data", dir, "--weights", enc, "--class-weights", "1,-4", NULL },
    { "train", "prithvi", "--data", dir, "--weights", enc, "--class-weights", "1,x", NULL },
  };
  const char *bad_dice[] = { "train", "prithvi", "--data", dir, "--weights", enc, "--dice", "much", NULL };
  const char *encoder[] = { "train", "prithvi", "--data", dir, "--weights", enc, "--encoder", "resnet18", NULL };
  g_autoptr(LodeRaster) written = NULL;
  g_autoptr(GError) error = NULL;

  {
    g_autoptr(GPtrArray) layout = lode_test_prithvi_layout ("prithvi_reduced.layout.tsv");

    lode_test_prithvi_write_ckpt (enc, layout, "", LODE_TEST_WRAP_NONE, is_encoder);
  }
  g_assert_cmpint (lode_test_run_lode (demo, &out, NULL), ==, 0);
  g_clear_pointer (&out, g_free);
  g_assert_cmpint (lode_test_run_lode (train, &out, &err), ==, 0);
  g_assert_nonnull (strstr (out, "Prithvi-EO-2.0"));
  g_assert_nonnull (strstr (out, "mining IoU"));
  g_assert_true (g_file_test (dec, G_FILE_TEST_IS_REGULAR));
  g_clear_pointer (&out, g_free);
  g_assert_cmpint (lode_test_run_lode (predict, &out, NULL), ==, 0);
  written = lode_raster_open (mask, &error);
  g_assert_no_error (error);
  g_assert_cmpint (written->width, ==, 64);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (lode_test_run_lode (no_weights, NULL, &err), ==, 2);
  g_assert_nonnull (strstr (err, "--weights"));
  g_clear_pointer (&err, g_free);
  /* --class-weights and --dice are parsed as for the U-Net (the run above
   * took them); --encoder is the U-Net's alone */
  for (guint i = 0; i < G_N_ELEMENTS (bad_weights); i++)
    {
      g_clear_pointer (&err, g_free);
      g_assert_cmpint (lode_test_run_lode (bad_weights[i], NULL, &err), ==, 2);
      g_assert_nonnull (strstr (err, "--class-weights needs 2"));
    }
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (lode_test_run_lode (bad_dice, NULL, &err), ==, 2);
  g_assert_nonnull (strstr (err, "--dice"));
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (lode_test_run_lode (encoder, NULL, &err), ==, 2);
  g_assert_nonnull (strstr (err, "--encoder"));

  /* --resume goes on from the checkpoint's step 2 to step 3 */
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (lode_test_run_lode (resume, &out, &err), ==, 0);
  g_assert_nonnull (strstr (out, "after step 2"));
  {
    g_autoptr(LodePrithviModel) model = lode_test_prithvi_open (enc, dec, FALSE);
    LodeTrainConfig config;
    gint64 step = 0;

    lode_train_config_init (&config);
    config.batch_size = 2;
    g_assert_true (lode_prithvi_model_load_train_state (model, dec, &config, 0, &step, &error));
    g_assert_no_error (error);
    g_assert_cmpint (step, ==, 3);
    /* a decoder without training state is refused, naming the file */
    g_assert_true (lode_prithvi_model_save_decoder (model, plain, &error));
    g_assert_no_error (error);
  }
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (lode_test_run_lode (resume_plain, NULL, &err), ==, 1);
  g_assert_nonnull (strstr (err, "plain.safetensors"));
  g_assert_nonnull (strstr (err, "training state"));
  lode_test_rmtree (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  lode_ops_cpu_set_threads (1);
  g_test_add_func ("/prithvi-train/demo", test_train_demo);
  g_test_add_func ("/prithvi-train/loss-options", test_loss_options);
  g_test_add_func ("/prithvi-train/resume", test_resume);
  g_test_add_func ("/prithvi-train/commands", test_commands);
  return g_test_run ();
}
