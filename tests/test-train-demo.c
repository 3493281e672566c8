/* lode train and lode predict on the demo data set (about 15 s on two
 * idle cores, so in the unit suite).
 *
 * `lode demo --size 64` writes 24 tiles x 2 years of 64 x 64 patches with
 * their split files (34 train, 14 validation); a ResNet18 U-Net trains for
 * 5 epochs (batch 4, lr 1e-3, 40 steps) on the CPU. Before training the
 * validation mining IoU is that of a random network (~0.1); we ask it to
 * end above 0.35 and at least 0.2 above where it started (measured: 0.10 ->
 * 0.67 with seed 1). Then the checkpoint segments a patch
 * through lode predict, twice, with the same file both times. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lode-test-util.h"

#define BAR 0.35

/* The mining IoU of the "epoch N:" lines, in order. */
static GArray *
mining_ious (const char *out)
{
  GArray *v = g_array_new (FALSE, FALSE, sizeof (double));
  g_auto(GStrv) lines = g_strsplit (out, "\n", -1);

  for (char **l = lines; *l; l++)
    {
      const char *p = strstr (*l, "mining IoU ");
      if (g_str_has_prefix (*l, "epoch ") && p != NULL)
        {
          double x = g_ascii_strtod (p + strlen ("mining IoU "), NULL);
          g_array_append_val (v, x);
        }
    }
  return v;
}

static void
test_demo_learns (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *data = g_build_filename (dir, "demo", NULL);
  g_autofree char *ckpt = g_build_filename (dir, "unet.lode-unet", NULL);
  g_autofree char *image = g_build_filename (data, "SmallMinesDS", "2016", "IMAGE",
                                             "IMG_GH_0004_2016.tif", NULL);
  g_autofree char *mask1 = g_build_filename (dir, "a.tif", NULL);
  g_autofree char *mask2 = g_build_filename (dir, "b.tif", NULL);
  g_autofree char *out = NULL, *err = NULL, *c1 = NULL, *c2 = NULL;
  g_autoptr(GArray) ious = NULL;
  gsize l1, l2;
  double first, last;
  const char *demo[] = { "demo", "--size", "64", data, NULL };
  const char *train[] = { "train", "unet", "--data", data, "--encoder", "resnet18", "--epochs", "5",
                          "--batch", "4", "--lr", "1e-3", "--seed", "1", "--device", "cpu",
                          "--out", ckpt, "--quiet", NULL };
  const char *predict1[] = { "predict", "--model", ckpt, "--image", image, "--out", mask1, NULL };
  const char *predict2[] = { "predict", "--model", ckpt, "--image", image, "--out", mask2, NULL };

  g_assert_cmpint (lode_test_run_lode (demo, NULL, NULL), ==, 0);
  g_assert_cmpint (lode_test_run_lode (train, &out, &err), ==, 0);
  g_test_message ("%s", out);
  ious = mining_ious (out);
  g_assert_cmpuint (ious->len, ==, 6);   /* before training, then 5 epochs */
  first = g_array_index (ious, double, 0);
  last = g_array_index (ious, double, ious->len - 1);
  g_test_message ("mining IoU %.3f -> %.3f (bar %.2f)", first, last, BAR);
  g_assert_cmpfloat (last, >, BAR);
  g_assert_cmpfloat (last, >, first + 0.2);
  g_assert_nonnull (strstr (out, "after 40 steps"));

  g_clear_pointer (&out, g_free);
  g_assert_cmpint (lode_test_run_lode (predict1, &out, NULL), ==, 0);
  g_assert_nonnull (strstr (out, "class 1"));
  g_assert_cmpint (lode_test_run_lode (predict2, NULL, NULL), ==, 0);
  g_assert_true (g_file_get_contents (mask1, &c1, &l1, NULL));
  g_assert_true (g_file_get_contents (mask2, &c2, &l2, NULL));
  g_assert_cmpmem (c1, l1, c2, l2);
  lode_test_rmtree (dir);
}

static void
test_errors (void)
{
  g_autofree char *err = NULL;
  const char *no_data[] = { "train", "unet", "--data", "/nonexistent/folder", NULL };
  const char *sam[] = { "train", "sam3", "--data", ".", NULL };
  const char *bad_model[] = { "predict", "--model", "/nonexistent.lode-unet", "--image", "x.tif",
                              "--out", "y.tif", NULL };

  g_assert_cmpint (lode_test_run_lode (no_data, NULL, &err), ==, 1);
  g_assert_nonnull (strstr (err, "/nonexistent/folder"));
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (lode_test_run_lode (sam, NULL, &err), ==, 2);
  g_assert_nonnull (strstr (err, "unet"));
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (lode_test_run_lode (bad_model, NULL, &err), ==, 1);
  g_assert_nonnull (strstr (err, "/nonexistent.lode-unet"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/train-demo/errors", test_errors);
  g_test_add_func ("/train-demo/learns", test_demo_learns);
  return g_test_run ();
}
