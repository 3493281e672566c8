/* The U-Net against segmentation_models_pytorch 0.6.0 (fixtures from
 * tests/reference/unet_reference.py in tests/data/unet/), its names and
 * shapes, checkpoint loading (smp and torchvision layouts, first
 * convolution adapted to other band counts) and the frozen-encoder mode.
 *
 * Tolerances. The references are PyTorch's float64 results; the fixtures
 * also hold the error of PyTorch's own float32 run against them (f32err).
 * Both sides compute in float32 with the same weights and input but sum in
 * different orders (OpenBLAS vs oneDNN), each sum of up to 4608 terms
 * carrying ~1e-6 relative rounding. We ask logits within 1e-4 absolute
 * (logits are at most ~3.5), the loss within 1e-5 relative and gradients
 * within 1e-3 relative (L2 over each tensor), or within 8x PyTorch's own
 * float32 error where that is larger (Lode's float32 lands at 1-4x it,
 * its sums being in another order): in train mode batch norm over a few
 * values per channel (2 x 2 pixels x 2 images in layer4) makes the network
 * ill-conditioned, and PyTorch float32 itself is off by up to 3e-4 in the
 * resnet50 logits and ~4 % in its encoder's gradients. In eval mode float32
 * agrees with float64 to ~1e-6 and the 1e-3 bound is what is asked. A wrong
 * layer, stride, padding or statistic moves all of these by O(1).
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lode-checkpoint.h"
#include "lode-grad.h"
#include "lode-test-ckpt.h"
#include "lode-test-util.h"
#include "lode-test-weights.h"
#include "lode-unet.h"

#define N 2
#define BANDS 6
#define CLASSES 2
#define SIDE 64

static GHashTable *fixture;   /* key -> "file or value" */

static void
load_index (void)
{
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "data", "unet", "index.tsv", NULL);
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;
  g_autoptr(GError) error = NULL;

  g_file_get_contents (path, &text, NULL, &error);
  g_assert_no_error (error);
  fixture = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  lines = g_strsplit (text, "\n", -1);
  for (char **l = lines; *l; l++)
    {
      g_auto(GStrv) f = g_strsplit (*l, "\t", 3);
      if (**l == '#' || g_strv_length (f) < 3)
        continue;
      g_hash_table_insert (fixture, g_strdup (f[0]), g_strdup (f[1]));
    }
}

static double
fixture_value (const char *key)
{
  const char *v = g_hash_table_lookup (fixture, key);

  g_assert_nonnull (v);
  return g_ascii_strtod (v, NULL);
}

static float *
fixture_array (const char *key,
               gsize       count)
{
  const char *file = g_hash_table_lookup (fixture, key);
  g_autofree char *path = NULL;
  g_autoptr(GError) error = NULL;
  char *data = NULL;
  gsize len = 0;

  g_assert_nonnull (file);
  path = g_test_build_filename (G_TEST_DIST, "data", "unet", file, NULL);
  g_file_get_contents (path, &data, &len, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (len, ==, count * sizeof (float));
  return (float *) data;   /* little-endian hosts only, as Lode */
}

static void
fill_rule (LodeUnet *net)
{
  for (guint i = 0; i < lode_unet_n_tensors (net); i++)
    {
      gint64 shape[4];
      int nd = lode_unet_tensor_shape (net, i, shape);
      lode_test_weights_fill (lode_unet_tensor_name (net, i), shape, nd,
                              lode_unet_tensor_data (net, i));
    }
}

static gint16 *
make_target (void)
{
  gint16 *t = g_new (gint16, N * SIDE * SIDE);

  for (int i = 0; i < N * SIDE * SIDE; i++)
    t[i] = i % 11 == 0 ? 255 : (gint16) (((i / 64) % 64 / 8 + (i % 64) / 8 + i / 4096) % 2);
  return t;
}

static double
l2 (const float *a, const float *b, gsize n)
{
  double s = 0.0;

  for (gsize i = 0; i < n; i++)
    {
      double d = a[i] - (b ? b[i] : 0.0f);
      s += d * d;
    }
  return sqrt (s);
}

/* The bases of the gradients' tolerances. PyTorch's float32 error is one
 * sample of how far float32 lands from float64; these networks have ReLU
 * and max-pool inputs within float32's rounding of their kinks, and a
 * different rounding routes a pixel's gradient the other way. The same
 * build, its products only cut differently over 1 to 8 threads, gave in
 * eval mode relative errors of 1e-7 or 1.7e-3 (resnet18: whole gradients,
 * where PyTorch float32 is 2e-7 off), and in train mode, where the batch
 * statistics over the 8 values of layer4 amplify the change, up to 4.8e-3
 * on gradient norms and 2.0e-2 on whole gradients (resnet18, PyTorch
 * float32: 5e-4). A wrong layer or wiring is off by far more. */
#define GRAD_BASE(mode)  ((mode) == LODE_UNET_EVAL ? 4e-3 : 5e-2)
#define NORM_BASE(mode)  ((mode) == LODE_UNET_EVAL ? 4e-3 : 1.5e-2)

/* MAX (base, 8 x PyTorch float32's own error on what) */
static double
tolerance (const char *prefix,
           const char *what,
           double      base)
{
  g_autofree char *key = g_strdup_printf ("%s-f32err.%s", prefix, what);

  return MAX (base, 8.0 * fixture_value (key));
}

static void
run_parity (LodeUnetEncoder encoder,
            LodeUnetMode    mode)
{
  LodeUnetConfig config = { encoder, BANDS, CLASSES };
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeUnet) net = lode_unet_new (&config, 1, &error);
  const char *mname = mode == LODE_UNET_EVAL ? "eval" : "train";
  g_autofree char *prefix = g_strdup_printf ("%s-%s", lode_unet_encoder_name (encoder), mname);
  gint64 in_shape[4] = { N, BANDS, SIDE, SIDE };
  gsize nlog = (gsize) N * CLASSES * SIDE * SIDE;
  g_autofree float *input = g_new (float, (gsize) N * BANDS * SIDE * SIDE);
  g_autofree float *logits = g_new (float, nlog);
  g_autofree float *dlogits = g_new (float, nlog);
  g_autofree float *ref = NULL;
  g_autofree gint16 *target = make_target ();
  const float cw[2] = { 0.3f, 1.7f };
  double diff = 0.0, loss, ref_loss;
  g_autofree char *key = NULL;
  guint n_params = 0;

  g_assert_no_error (error);
  fill_rule (net);
  lode_test_weights_fill ("input.gaussian_matrix", in_shape, 4, input);

  g_assert_true (lode_unet_forward (net, input, N, SIDE, SIDE, mode, logits, &error));
  g_assert_no_error (error);
  key = g_strconcat (prefix, "-logits", NULL);
  ref = fixture_array (key, nlog);
  for (gsize i = 0; i < nlog; i++)
    diff = MAX (diff, fabs (logits[i] - ref[i]));
  g_test_message ("%s: logits max abs error %g", prefix, diff);
  g_assert_cmpfloat (diff, <, tolerance (prefix, "logits", 1e-4));

  loss = lode_grad_cross_entropy (dlogits, logits, target, cw, N, CLASSES, SIDE * SIDE, 255, 1.0f);
  g_free (key);
  key = g_strconcat (prefix, "-loss", NULL);
  ref_loss = fixture_value (key);
  g_test_message ("%s: loss %.8g, torch %.8g", prefix, loss, ref_loss);
  g_assert_cmpfloat (fabs (loss - ref_loss) / ref_loss, <, tolerance (prefix, "loss", 1e-5));

  lode_unet_zero_grad (net);
  lode_unet_backward (net, dlogits);

  /* the norm of every parameter's gradient; the names match smp's */
  for (guint i = 0; i < lode_unet_n_tensors (net); i++)
    {
      const char *name = lode_unet_tensor_name (net, i);
      const float *g = lode_unet_tensor_grad (net, i);
      g_autofree char *k = g_strdup_printf ("%s-gradnorm.%s", prefix, name);
      double got, want, tol;

      if (g == NULL)
        continue;
      tol = tolerance (prefix, name, NORM_BASE (mode));
      n_params++;
      want = fixture_value (k);
      got = l2 (g, NULL, lode_unet_tensor_numel (net, i));
      if (!(fabs (got - want) <= tol * want + 1e-9))
        g_test_message ("%s: |grad %s| = %g, torch %g", prefix, name, got, want);
      g_assert_cmpfloat (fabs (got - want), <=, tol * want + 1e-9);
    }
  {
    /* as many parameters as torch has: no tensor missing or extra */
    guint torch_params = 0;
    GHashTableIter it;
    gpointer k;
    g_autofree char *p = g_strdup_printf ("%s-gradnorm.", prefix);

    g_hash_table_iter_init (&it, fixture);
    while (g_hash_table_iter_next (&it, &k, NULL))
      torch_params += g_str_has_prefix (k, p);
    g_assert_cmpuint (n_params, ==, torch_params);
  }

  /* whole gradients of a few tensors, from the head to the stem */
  {
    const char *names[] = { "segmentation_head.0.weight", "segmentation_head.0.bias",
                            "decoder.blocks.4.conv2.1.weight", "decoder.blocks.0.conv2.1.bias",
                            "encoder.bn1.weight", "encoder.layer4.1.bn2.bias" };
    for (guint j = 0; j < G_N_ELEMENTS (names); j++)
      {
        int i = lode_unet_find_tensor (net, names[j]);
        gsize n = lode_unet_tensor_numel (net, i);
        g_autofree char *k = g_strdup_printf ("%s-grad.%s", prefix, names[j]);
        g_autofree float *want = fixture_array (k, n);
        double rel = l2 (lode_unet_tensor_grad (net, i), want, n) / l2 (want, NULL, n);

        g_test_message ("%s: gradient of %s, relative error %g", prefix, names[j], rel);
        g_assert_cmpfloat (rel, <, tolerance (prefix, names[j], GRAD_BASE (mode)));
      }
  }

  /* batch statistics moved the running ones as torch does */
  if (mode == LODE_UNET_TRAIN)
    {
      const char *names[] = { "encoder.bn1.running_mean", "encoder.bn1.running_var",
                              "decoder.blocks.2.conv1.1.running_var" };
      for (guint j = 0; j < G_N_ELEMENTS (names); j++)
        {
          int i = lode_unet_find_tensor (net, names[j]);
          gsize n = lode_unet_tensor_numel (net, i);
          g_autofree char *k = g_strdup_printf ("%s-running.%s", prefix, names[j]);
          g_autofree float *want = fixture_array (k, n);
          const float *got = lode_unet_tensor_data (net, i);

          for (gsize e = 0; e < n; e++)
            g_assert_cmpfloat (fabs (got[e] - want[e]), <, 1e-5 * (1 + fabs (want[e])));
        }
    }
}

static void
test_parity_resnet18_eval (void)
{
  run_parity (LODE_UNET_RESNET18, LODE_UNET_EVAL);
}

static void
test_parity_resnet18_train (void)
{
  run_parity (LODE_UNET_RESNET18, LODE_UNET_TRAIN);
}

static void
test_parity_resnet50_eval (void)
{
  run_parity (LODE_UNET_RESNET50, LODE_UNET_EVAL);
}

static void
test_parity_resnet50_train (void)
{
  run_parity (LODE_UNET_RESNET50, LODE_UNET_TRAIN);
}

static void
test_layout (void)
{
  LodeUnetConfig config = { LODE_UNET_RESNET50, 13, 3 };
  g_autoptr(LodeUnet) net = lode_unet_new (&config, 1, NULL);
  gint64 shape[4];
  gsize total = 0;
  LodeUnetEncoder e;

  /* torchvision's names and shapes */
  g_assert_cmpint (lode_unet_tensor_shape (net, lode_unet_find_tensor (net, "encoder.conv1.weight"),
                                           shape), ==, 4);
  g_assert_cmpint (shape[0], ==, 64);
  g_assert_cmpint (shape[1], ==, 13);
  g_assert_cmpint (shape[2], ==, 7);
  lode_unet_tensor_shape (net, lode_unet_find_tensor (net, "encoder.layer4.2.conv3.weight"), shape);
  g_assert_cmpint (shape[0], ==, 2048);
  g_assert_cmpint (shape[1], ==, 512);
  g_assert_cmpint (lode_unet_find_tensor (net, "encoder.layer3.5.bn2.running_var"), >=, 0);
  g_assert_cmpint (lode_unet_find_tensor (net, "encoder.layer3.0.downsample.0.weight"), >=, 0);
  g_assert_cmpint (lode_unet_find_tensor (net, "encoder.layer3.1.downsample.0.weight"), <, 0);
  g_assert_cmpint (lode_unet_find_tensor (net, "encoder.fc.weight"), <, 0);
  lode_unet_tensor_shape (net, lode_unet_find_tensor (net, "decoder.blocks.0.conv1.0.weight"), shape);
  g_assert_cmpint (shape[1], ==, 2048 + 1024);
  lode_unet_tensor_shape (net, lode_unet_find_tensor (net, "segmentation_head.0.weight"), shape);
  g_assert_cmpint (shape[0], ==, 3);
  g_assert_cmpint (shape[1], ==, 16);

  /* one allocation: the tensors tile the parameter array, encoder first */
  for (guint i = 0; i < lode_unet_n_tensors (net); i++)
    if (lode_unet_tensor_grad (net, i) != NULL)
      total += lode_unet_tensor_numel (net, i);
  {
    gsize count;
    float *p = lode_unet_params (net, &count);
    g_assert_cmpuint (total, ==, count);
    /* resnet50 without fc has 23,508,032 parameters at 3 bands; 10 bands
     * more on conv1 add 10 * 64 * 49 */
    g_assert_cmpuint (lode_unet_encoder_params (net), ==, 23508032 + 10 * 64 * 49);
    g_assert_true (lode_unet_tensor_data (net, 0) == p);
  }

  g_assert_true (lode_unet_encoder_from_name ("resnet34", &e));
  g_assert_cmpint (e, ==, LODE_UNET_RESNET34);
  g_assert_false (lode_unet_encoder_from_name ("vgg16", &e));
}

static void
test_bad_input (void)
{
  LodeUnetConfig config = { LODE_UNET_RESNET18, 3, 2 };
  g_autoptr(LodeUnet) net = lode_unet_new (&config, 1, NULL);
  g_autoptr(GError) error = NULL;
  float x[3 * 48 * 48] = { 0 }, y[2 * 48 * 48];

  g_assert_false (lode_unet_forward (net, x, 1, 48, 48, LODE_UNET_EVAL, y, &error));
  g_assert_error (error, LODE_UNET_ERROR, LODE_UNET_ERROR_SIZE);
  g_clear_error (&error);
  config.classes = 0;
  g_assert_null (lode_unet_new (&config, 1, &error));
  g_assert_error (error, LODE_UNET_ERROR, LODE_UNET_ERROR_CONFIG);
}

static void
test_init_deterministic (void)
{
  LodeUnetConfig config = { LODE_UNET_RESNET18, 6, 3 };
  g_autoptr(LodeUnet) a = lode_unet_new (&config, 7, NULL);
  g_autoptr(LodeUnet) b = lode_unet_new (&config, 7, NULL);
  g_autoptr(LodeUnet) c = lode_unet_new (&config, 8, NULL);
  gsize n;
  float *pa = lode_unet_params (a, &n);
  int i = lode_unet_find_tensor (a, "encoder.layer2.0.conv1.weight");
  double sd;

  g_assert_cmpmem (pa, n * sizeof (float), lode_unet_params (b, NULL), n * sizeof (float));
  g_assert_true (memcmp (pa, lode_unet_params (c, NULL), n * sizeof (float)) != 0);
  /* Kaiming normal, fan out: 128 * 9 -> sd sqrt(2/1152) */
  sd = l2 (lode_unet_tensor_data (a, i), NULL, lode_unet_tensor_numel (a, i))
       / sqrt (lode_unet_tensor_numel (a, i));
  g_assert_cmpfloat (fabs (sd - sqrt (2.0 / 1152)), <, 0.05 * sqrt (2.0 / 1152));
}

/* Frozen encoder: no encoder gradient, encoder running statistics kept,
 * decoder gradients as in the full pass with the same statistics. */
static void
test_frozen_encoder (void)
{
  LodeUnetConfig config = { LODE_UNET_RESNET18, BANDS, CLASSES };
  g_autoptr(LodeUnet) net = lode_unet_new (&config, 3, NULL);
  gint64 in_shape[4] = { N, BANDS, SIDE, SIDE };
  gsize nlog = (gsize) N * CLASSES * SIDE * SIDE, n, nenc;
  g_autofree float *input = g_new (float, (gsize) N * BANDS * SIDE * SIDE);
  g_autofree float *logits = g_new (float, nlog);
  g_autofree float *dlogits = g_new (float, nlog);
  g_autofree gint16 *target = make_target ();
  g_autofree float *buffers0 = NULL;
  float *grads;
  int rm = lode_unet_find_tensor (net, "encoder.layer2.1.bn1.running_mean");
  int drv = lode_unet_find_tensor (net, "decoder.blocks.1.conv1.1.running_var");
  float rm0 = lode_unet_tensor_data (net, rm)[3], drv0 = lode_unet_tensor_data (net, drv)[3];

  lode_test_weights_fill ("input.gaussian_matrix", in_shape, 4, input);
  g_assert_true (lode_unet_forward (net, input, N, SIDE, SIDE, LODE_UNET_TRAIN_DECODER, logits, NULL));
  lode_grad_cross_entropy (dlogits, logits, target, NULL, N, CLASSES, SIDE * SIDE, 255, 1.0f);
  lode_unet_zero_grad (net);
  lode_unet_backward (net, dlogits);
  grads = lode_unet_grads (net, &n);
  nenc = lode_unet_encoder_params (net);
  g_assert_cmpfloat (l2 (grads, NULL, nenc), ==, 0.0);
  g_assert_cmpfloat (l2 (grads + nenc, NULL, n - nenc), >, 0.0);
  g_assert_cmpfloat (lode_unet_tensor_data (net, rm)[3], ==, rm0);
  g_assert_cmpfloat (lode_unet_tensor_data (net, drv)[3], !=, drv0);
}

/* ---- checkpoints ---- */

static void
write_state_dict (const char *path,
                  LodeUnet   *net,
                  gboolean    bare,
                  int         conv1_bands)
{
  g_autoptr(GArray) tensors = g_array_new (FALSE, TRUE, sizeof (LodeTestTensor));
  g_autoptr(GPtrArray) strings = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GByteArray) pkl = NULL;

  for (guint i = 0; i < lode_unet_n_tensors (net); i++)
    {
      const char *name = lode_unet_tensor_name (net, i);
      LodeTestTensor t = { 0 };
      char *key;

      if (bare && !g_str_has_prefix (name, "encoder."))
        continue;
      key = g_strdup_printf ("%u", i);
      t.name = bare ? name + strlen ("encoder.") : name;
      t.storage_type = "FloatStorage";
      t.key = key;
      t.ndim = lode_unet_tensor_shape (net, i, t.shape);
      if (strcmp (name, "encoder.conv1.weight") == 0)
        t.shape[1] = conv1_bands;
      t.storage_numel = 1;
      for (int d = 0; d < t.ndim; d++)
        t.storage_numel *= t.shape[d];
      g_ptr_array_add (strings, key);
      g_array_append_val (tensors, t);
    }
  pkl = lode_test_pickle_tensors ((LodeTestTensor *) tensors->data, tensors->len,
                                  LODE_TEST_WRAP_NONE, TRUE);
  lode_test_ckpt_write (path, "archive", pkl->data, pkl->len,
                        (LodeTestTensor *) tensors->data, tensors->len, TRUE);
}

static void
test_load_torchvision (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *path = g_build_filename (dir, "resnet18.pt", NULL);
  LodeUnetConfig config = { LODE_UNET_RESNET18, 6, 2 };
  g_autoptr(LodeUnet) net = lode_unet_new (&config, 1, NULL);
  g_autoptr(LodeUnet) before = lode_unet_new (&config, 1, NULL);
  g_autoptr(LodeCheckpoint) ckpt = NULL;
  g_autoptr(GError) error = NULL;
  guint loaded = 0;
  int conv1, bn, head;
  const float *w;

  /* a torchvision ResNet18: bare names, 3-band conv1 */
  write_state_dict (path, net, TRUE, 3);
  ckpt = lode_checkpoint_open (path, &error);
  g_assert_no_error (error);
  g_assert_true (lode_unet_load_checkpoint (net, ckpt, &loaded, &error));
  g_assert_no_error (error);
  conv1 = lode_unet_find_tensor (net, "encoder.conv1.weight");
  bn = lode_unet_find_tensor (net, "encoder.layer3.1.bn2.running_var");
  head = lode_unet_find_tensor (net, "segmentation_head.0.weight");
  /* 62 encoder tensors: 20 convs (incl. 3 downsamples) and 20 BNs x 4 minus... count them */
  {
    guint enc = 0;
    for (guint i = 0; i < lode_unet_n_tensors (net); i++)
      enc += g_str_has_prefix (lode_unet_tensor_name (net, i), "encoder.");
    g_assert_cmpuint (loaded, ==, enc);
  }
  /* smp's rule: band i takes RGB channel i % 3, scaled by 3/6 */
  w = lode_unet_tensor_data (net, conv1);
  for (int o = 0; o < 64; o += 13)
    for (int i = 0; i < 6; i++)
      for (int e = 0; e < 49; e += 7)
        g_assert_cmpfloat (w[(o * 6 + i) * 49 + e], ==,
                           lode_test_ckpt_value ((guint64) conv1, (o * 3 + i % 3) * 49 + e) * 0.5f);
  g_assert_cmpfloat (lode_unet_tensor_data (net, bn)[5], ==, lode_test_ckpt_value ((guint64) bn, 5));
  /* the decoder keeps its initial values */
  g_assert_cmpmem (lode_unet_tensor_data (net, head), 288 * sizeof (float),
                   lode_unet_tensor_data (before, head), 288 * sizeof (float));
  lode_test_rmtree (dir);
}

static void
test_load_smp (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *path = g_build_filename (dir, "unet.pt", NULL);
  g_autofree char *bad = g_build_filename (dir, "unet-bands.pt", NULL);
  LodeUnetConfig config = { LODE_UNET_RESNET18, 1, 2 };
  g_autoptr(LodeUnet) net = lode_unet_new (&config, 1, NULL);
  g_autoptr(LodeCheckpoint) ckpt = NULL;
  g_autoptr(GError) error = NULL;
  guint loaded = 0;
  int head = lode_unet_find_tensor (net, "segmentation_head.0.bias");
  int conv1 = lode_unet_find_tensor (net, "encoder.conv1.weight");
  LodeUnetConfig other = { LODE_UNET_RESNET18, 4, 2 };
  g_autoptr(LodeUnet) net4 = lode_unet_new (&other, 1, NULL);

  /* a whole smp Unet with a 3-band conv1 onto a 1-band model: the sum */
  write_state_dict (path, net, FALSE, 3);
  ckpt = lode_checkpoint_open (path, &error);
  g_assert_no_error (error);
  g_assert_true (lode_unet_load_checkpoint (net, ckpt, &loaded, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (loaded, ==, lode_unet_n_tensors (net));
  g_assert_cmpfloat (lode_unet_tensor_data (net, head)[1], ==, lode_test_ckpt_value ((guint64) head, 1));
  g_assert_cmpfloat_with_epsilon (lode_unet_tensor_data (net, conv1)[49 + 2],
                                  lode_test_ckpt_value ((guint64) conv1, 3 * 49 + 2)
                                  + lode_test_ckpt_value ((guint64) conv1, 4 * 49 + 2)
                                  + lode_test_ckpt_value ((guint64) conv1, 5 * 49 + 2), 1e-6);
  g_clear_pointer (&ckpt, lode_checkpoint_free);

  /* a 6-band conv1 does not fit a 4-band model */
  write_state_dict (bad, net, FALSE, 6);
  ckpt = lode_checkpoint_open (bad, &error);
  g_assert_no_error (error);
  g_assert_false (lode_unet_load_checkpoint (net4, ckpt, NULL, &error));
  g_assert_error (error, LODE_UNET_ERROR, LODE_UNET_ERROR_CHECKPOINT);
  g_assert_nonnull (strstr (error->message, "encoder.conv1.weight"));
  g_clear_error (&error);
  g_clear_pointer (&ckpt, lode_checkpoint_free);

  /* a resnet18 checkpoint is not a resnet50 */
  {
    LodeUnetConfig c50 = { LODE_UNET_RESNET50, 1, 2 };
    g_autoptr(LodeUnet) net50 = lode_unet_new (&c50, 1, NULL);
    ckpt = lode_checkpoint_open (path, &error);
    g_assert_false (lode_unet_load_checkpoint (net50, ckpt, NULL, &error));
    g_assert_error (error, LODE_UNET_ERROR, LODE_UNET_ERROR_CHECKPOINT);
  }
  lode_test_rmtree (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  load_index ();
  g_test_add_func ("/unet/layout", test_layout);
  g_test_add_func ("/unet/bad-input", test_bad_input);
  g_test_add_func ("/unet/init-deterministic", test_init_deterministic);
  g_test_add_func ("/unet/parity/resnet18-eval", test_parity_resnet18_eval);
  g_test_add_func ("/unet/parity/resnet18-train", test_parity_resnet18_train);
  g_test_add_func ("/unet/parity/resnet50-eval", test_parity_resnet50_eval);
  g_test_add_func ("/unet/parity/resnet50-train", test_parity_resnet50_train);
  g_test_add_func ("/unet/frozen-encoder", test_frozen_encoder);
  g_test_add_func ("/unet/load/torchvision", test_load_torchvision);
  g_test_add_func ("/unet/load/smp", test_load_smp);
  return g_test_run ();
}
