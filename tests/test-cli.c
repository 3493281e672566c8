/* The command line as a user meets it: help lists the commands that work,
 * bad input gives a clear message and a non-zero exit. */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "lode-device.h"
#include "lode-test-util.h"

static void
test_help (void)
{
  g_autofree char *out = NULL, *err = NULL;
  const char *args[] = { "--help", NULL };

  g_assert_cmpint (lode_test_run_lode (args, &out, &err), ==, 0);
  g_assert_nonnull (strstr (out, "Usage:"));
  g_assert_nonnull (strstr (out, "demo"));
}

static void
test_version (void)
{
  g_autofree char *out = NULL;
  const char *args[] = { "--version", NULL };

  g_assert_cmpint (lode_test_run_lode (args, &out, NULL), ==, 0);
  g_assert_true (g_str_has_prefix (out, "lode " PACKAGE_VERSION));
}

static void
test_command_help (void)
{
  g_autofree char *out = NULL;
  const char *args[] = { "demo", "--help", NULL };

  g_assert_cmpint (lode_test_run_lode (args, &out, NULL), ==, 0);
  g_assert_nonnull (strstr (out, "--tiles"));
  g_assert_nonnull (strstr (out, "--seed"));
}

static void
test_unknown_command (void)
{
  g_autofree char *err = NULL;
  const char *args[] = { "frobnicate", NULL };

  g_assert_cmpint (lode_test_run_lode (args, NULL, &err), ==, 2);
  g_assert_nonnull (strstr (err, "frobnicate"));
  g_assert_nonnull (strstr (err, "--help"));
}

static void
test_unknown_option (void)
{
  g_autofree char *err = NULL;
  const char *args[] = { "demo", "--no-such-option", "x", NULL };

  g_assert_cmpint (lode_test_run_lode (args, NULL, &err), ==, 2);
  g_assert_nonnull (strstr (err, "--no-such-option"));
}

static void
test_missing_project (void)
{
  g_autofree char *err = NULL;
  const char *args[] = { "/nonexistent/nothing-here.lode", NULL };

  g_assert_cmpint (lode_test_run_lode (args, NULL, &err), ==, 1);
  g_assert_nonnull (strstr (err, "nothing-here.lode"));
}

/* Asking for CUDA where there is none: a clear error and exit 1, before
 * any data is read (lode train unet) or any model is built (lode bench
 * train). */
static void
test_cuda_unavailable (void)
{
  g_autofree char *err1 = NULL, *err2 = NULL;
  const char *train[] = { "train", "unet", "--data", "/nonexistent/no-data-here", "--device", "cuda",
                          "--quiet", NULL };
  const char *bench[] = { "bench", "train", "--device", "cuda", "--encoder", "resnet18",
                          "--batch", "1", "--size", "32", "--steps", "1", NULL };

  if (lode_device_cuda_count () > 0)
    {
      g_test_skip ("a CUDA device is present");
      return;
    }
  g_assert_cmpint (lode_test_run_lode (train, NULL, &err1), ==, 1);
  g_assert_nonnull (strstr (err1, "CUDA"));
  g_assert_nonnull (strstr (err1, "--device cpu"));
  g_assert_null (strstr (err1, "no-data-here"));
  g_assert_cmpint (lode_test_run_lode (bench, NULL, &err2), ==, 1);
  g_assert_nonnull (strstr (err2, "CUDA"));
  g_assert_nonnull (strstr (err2, "--device cpu"));
}

static void
test_demo_unwritable (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *locked = g_build_filename (dir, "locked", NULL);
  g_autofree char *target = g_build_filename (locked, "demo", NULL);
  g_autofree char *err = NULL;
  const char *args[] = { "demo", "--tiles", "1", target, NULL };

  if (geteuid () == 0)
    {
      /* root writes anywhere; a plain file in the way fails for everyone. */
      g_assert_true (g_file_set_contents (locked, "x", 1, NULL));
    }
  else
    {
      g_assert_cmpint (g_mkdir (locked, 0500), ==, 0);
    }
  g_assert_cmpint (lode_test_run_lode (args, NULL, &err), ==, 1);
  g_assert_nonnull (strstr (err, "demo"));
  lode_test_rmtree (dir);
}

static void
test_demo_usage (void)
{
  g_autofree char *err = NULL;
  const char *args[] = { "demo", NULL };
  const char *args2[] = { "demo", "--tiles", "0", "/tmp/x", NULL };

  g_assert_cmpint (lode_test_run_lode (args, NULL, &err), ==, 2);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (lode_test_run_lode (args2, NULL, &err), ==, 2);
  g_assert_nonnull (strstr (err, "--tiles"));
}

static void
test_encode_usage (void)
{
  g_autofree char *err = NULL;
  const char *no_ckpt[] = { "encode", "/tmp/x.lode", NULL };
  const char *missing[] = { "encode", "--checkpoint", "/nonexistent/sam2.1_hiera_tiny.pt",
                            "/nonexistent/project.lode", NULL };
  const char *size[] = { "encode", "--checkpoint", "c.pt", "--size", "300", "p.lode", NULL };

  g_assert_cmpint (lode_test_run_lode (no_ckpt, NULL, &err), ==, 2);
  g_assert_nonnull (strstr (err, "--checkpoint"));
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (lode_test_run_lode (size, NULL, &err), ==, 2);
  g_assert_nonnull (strstr (err, "--size"));
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (lode_test_run_lode (missing, NULL, &err), ==, 1);
  g_assert_nonnull (strstr (err, "project.lode"));
}

/* Prithvi's --device: cpu runs, an unknown name is a usage error, cuda
 * without a device (this machine, or any without CUDA) fails clearly. */
static void
test_prithvi_device (void)
{
  g_autofree char *out = NULL, *err = NULL;
  const char *cpu[] = { "bench", "prithvi", "-m", "reduced", "--size", "64", "-r", "1", "--device", "cpu", NULL };
  const char *unknown[] = { "bench", "prithvi", "-m", "reduced", "--device", "gpu", NULL };
  const char *cuda[] = { "bench", "prithvi", "-m", "reduced", "--size", "64", "-r", "1", "--device", "cuda", NULL };
  const char *train[] = { "train", "prithvi", "--weights", "/nonexistent/Prithvi_EO_V2_300M.pt", "--data",
                          "/nonexistent/smallmines", "--device", "cuda", NULL };
  const char *unfreeze[] = { "bench", "prithvi", "-m", "reduced", "--size", "64", "-r", "1", "--train",
                             "--unfreeze-blocks", "1", "--device", "cuda", NULL };
  const char *predict[] = { "predict", "--device", "cuda", "-m", "/nonexistent/decoder.safetensors", "-i",
                            "/nonexistent/patch.tif", "-o", "/nonexistent/mask.tif", NULL };
  int rc;

  g_assert_cmpint (lode_test_run_lode (cpu, &out, NULL), ==, 0);
  g_assert_nonnull (strstr (out, "images/s"));
  g_assert_nonnull (strstr (out, "Device: CPU"));
  g_clear_pointer (&out, g_free);
  g_assert_cmpint (lode_test_run_lode (unknown, NULL, &err), ==, 2);
  g_assert_nonnull (strstr (err, "gpu"));
  g_clear_pointer (&err, g_free);

  rc = lode_test_run_lode (cuda, &out, &err);
  if (rc == 0)
    g_assert_nonnull (strstr (out, "Device: CUDA"));   /* a machine with a GPU */
  else
    {
      g_assert_cmpint (rc, ==, 1);
      g_assert_nonnull (strstr (err, "CUDA"));
      g_assert_nonnull (strstr (err, "--device cpu"));
    }
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  /* without a device the device is refused before the files are read */
  g_assert_cmpint (lode_test_run_lode (predict, NULL, &err), ==, 1);
  g_assert_true (strstr (err, "--device cpu") != NULL || strstr (err, "decoder.safetensors") != NULL);
  g_clear_pointer (&err, g_free);
  rc = lode_test_run_lode (train, NULL, &err);
  g_assert_cmpint (rc, ==, 1);
  g_assert_true (strstr (err, "--device cpu") != NULL || strstr (err, "/nonexistent") != NULL);
  g_clear_pointer (&err, g_free);
  /* encoder blocks train on CUDA too: refused only for want of a device */
  rc = lode_test_run_lode (unfreeze, &out, &err);
  if (rc == 0)
    {
      g_assert_nonnull (strstr (out, "Device: CUDA"));
      g_assert_nonnull (strstr (out, "1 encoder blocks"));
    }
  else
    {
      g_assert_cmpint (rc, ==, 1);
      g_assert_nonnull (strstr (err, "CUDA"));
      g_assert_nonnull (strstr (err, "--device cpu"));
      g_assert_null (strstr (err, "unfreeze"));
    }
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
}

/* A French user gets French messages (the catalogue built in po/). */
static void
test_french (void)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  const char *help[] = { "--help", NULL };
  const char *missing[] = { "import", "/nonexistent-folder", "/tmp/never-made.lode", NULL };

  g_setenv ("LANGUAGE", "fr", TRUE);
  g_setenv ("LC_ALL", "C.UTF-8", TRUE);
  g_assert_cmpint (lode_test_run_lode (help, &out, NULL), ==, 0);
  g_assert_nonnull (strstr (out, "Utilisation"));
  g_assert_nonnull (strstr (out, "Commandes"));
  g_assert_cmpint (lode_test_run_lode (missing, NULL, &err), ==, 1);
  g_assert_nonnull (strstr (err, "n’existe pas"));
  g_unsetenv ("LANGUAGE");
  g_unsetenv ("LC_ALL");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/cli/help", test_help);
  g_test_add_func ("/cli/version", test_version);
  g_test_add_func ("/cli/command-help", test_command_help);
  g_test_add_func ("/cli/unknown-command", test_unknown_command);
  g_test_add_func ("/cli/unknown-option", test_unknown_option);
  g_test_add_func ("/cli/missing-project", test_missing_project);
  g_test_add_func ("/cli/demo-unwritable", test_demo_unwritable);
  g_test_add_func ("/cli/cuda-unavailable", test_cuda_unavailable);
  g_test_add_func ("/cli/demo-usage", test_demo_usage);
  g_test_add_func ("/cli/encode-usage", test_encode_usage);
  g_test_add_func ("/cli/french", test_french);
  g_test_add_func ("/cli/prithvi-device", test_prithvi_device);
  return g_test_run ();
}
