/* lode export, stats, info and bench as a user meets them: help, the work
 * on a demo project, and clear errors with exit codes (1 failure, 2 usage). */
#include "config.h"

#include <string.h>

#include <glib/gstdio.h>

#include "lode-store.h"
#include "lode-test-util.h"

static void
test_help (void)
{
  const char *commands[][2] = {
    { "export", "--accepted-only" }, { "stats", "--per-tile" }, { "info", "PROJECT.lode" },
    { "bench", "annotate" },
  };
  g_autofree char *top = NULL;
  const char *top_args[] = { "--help", NULL };

  g_assert_cmpint (lode_test_run_lode (top_args, &top, NULL), ==, 0);
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    {
      g_autofree char *out = NULL;
      const char *args[] = { commands[i][0], "--help", NULL };

      g_assert_nonnull (strstr (top, commands[i][0]));
      g_assert_cmpint (lode_test_run_lode (args, &out, NULL), ==, 0);
      g_assert_nonnull (strstr (out, commands[i][1]));
    }
  {
    g_autofree char *out = NULL;
    const char *args[] = { "bench", "annotate", "--help", NULL };

    g_assert_cmpint (lode_test_run_lode (args, &out, NULL), ==, 0);
    g_assert_nonnull (strstr (out, "--patches"));
  }
}

static void
test_errors (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *missing = g_build_filename (dir, "missing.lode", NULL);
  g_autofree char *text = g_build_filename (dir, "text.lode", NULL);
  g_autofree char *out = g_build_filename (dir, "out", NULL);
  const char *commands[] = { "info", "stats", "export" };

  g_assert_true (g_file_set_contents (text, "these are not the droids you are looking for\n", -1, NULL));
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    {
      g_autofree char *err1 = NULL, *err2 = NULL, *err3 = NULL;
      const char *a1[] = { commands[i], missing, out, NULL };
      const char *a2[] = { commands[i], text, out, NULL };
      const char *a3[] = { commands[i], NULL };

      if (!g_str_equal (commands[i], "export"))
        a1[2] = a2[2] = NULL;
      g_assert_cmpint (lode_test_run_lode (a1, NULL, &err1), ==, 1);
      g_assert_nonnull (strstr (err1, "missing.lode"));
      g_assert_cmpint (lode_test_run_lode (a2, NULL, &err2), ==, 1);
      g_assert_nonnull (strstr (err2, "text.lode"));
      g_assert_cmpint (lode_test_run_lode (a3, NULL, &err3), ==, 2);
      g_assert_nonnull (strstr (err3, commands[i]));
    }
  {
    g_autofree char *err = NULL;
    const char *args[] = { "export", text, out, "--format", "masks,pdf", NULL };

    g_assert_cmpint (lode_test_run_lode (args, NULL, &err), ==, 2);
    g_assert_nonnull (strstr (err, "pdf"));
  }
  {
    g_autofree char *err = NULL;
    const char *args[] = { "export", text, out, "--bands", "7", NULL };

    g_assert_cmpint (lode_test_run_lode (args, NULL, &err), ==, 2);
    g_assert_nonnull (strstr (err, "--bands"));
  }
  {
    g_autofree char *err = NULL;
    const char *args[] = { "bench", "teleport", NULL };

    g_assert_cmpint (lode_test_run_lode (args, NULL, &err), ==, 2);
    g_assert_nonnull (strstr (err, "teleport"));
  }
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
  lode_test_rmtree (dir);
}

static void
test_on_demo (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *data = g_build_filename (dir, "data", NULL);
  g_autofree char *project = g_build_filename (data, "demo.lode", NULL);
  g_autofree char *out = g_build_filename (dir, "out", NULL);
  g_autofree char *inside = g_build_filename (data, "SmallMinesDS", "export", NULL);
  g_autofree char *csv = g_build_filename (dir, "stats.csv", NULL);
  g_autofree char *manifest = g_build_filename (out, "manifest.json", NULL);
  g_autofree char *info = NULL, *stats = NULL, *export_out = NULL, *err = NULL, *written = NULL;
  g_autofree char *demo_out = NULL, *stats_out = NULL;
  const char *demo[] = { "demo", "--tiles", "2", "--size", "24", data, NULL };
  const char *info_args[] = { "info", project, NULL };
  const char *stats_args[] = { "stats", project, "--per-tile", NULL };
  const char *stats_file[] = { "stats", project, "--out", csv, NULL };
  const char *export_args[] = { "export", project, out, "--format", "masks,manifest", NULL };
  const char *refused[] = { "export", project, inside, NULL };

  g_assert_cmpint (lode_test_run_lode (demo, &demo_out, NULL), ==, 0);

  g_assert_cmpint (lode_test_run_lode (info_args, &info, NULL), ==, 0);
  g_assert_nonnull (strstr (info, "Patches: 4"));
  g_assert_nonnull (strstr (info, "2016 2"));
  g_assert_nonnull (strstr (info, "Mining"));
  g_assert_nonnull (strstr (info, "Format version:"));
  g_assert_nonnull (strstr (info, "Model versions: 0"));
  g_assert_nonnull (strstr (info, "Embedding cache: 0 bytes"));

  /* Model versions and the embedding cache, as training and SAM2 leave them. */
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(LodeStore) store = lode_store_open (project, FALSE, &error);
    g_autofree char *again = NULL;
    gint64 unet, sam2, tuned;

    g_assert_no_error (error);
    unet = lode_store_add_model_version (store, LODE_MODEL_UNET, "unet-resnet18-1", "demo.lode-models/u.lode-unet",
                                         "{\"validation\": {\"mean_iou\": 0.5126, \"mining_iou\": 0.3876}}",
                                         0, &error);
    g_assert_no_error (error);
    sam2 = lode_store_add_model_version (store, LODE_MODEL_SAM2, "sam2-base", "/models/sam2.1_hiera_tiny.pt",
                                         NULL, 0, &error);
    tuned = lode_store_add_model_version (store, LODE_MODEL_SAM2, "sam2-2-tuned", "demo.lode-models/t.safetensors",
                                          "{\"validation\": {\"iou_before\": 0.25, \"iou_after\": 0.625}}",
                                          sam2, &error);
    g_assert_no_error (error);
    g_assert_cmpint (unet, >, 0);
    g_assert_cmpint (tuned, >, sam2);
    g_assert_true (lode_store_cache_put (store, "k1", "demo.lode.cache/sam2/a.bin", 1500000, &error));
    g_assert_true (lode_store_cache_put (store, "k2", "demo.lode.cache/sam2/b.bin", 600000, &error));
    g_assert_no_error (error);
    g_clear_pointer (&store, lode_store_close);

    g_assert_cmpint (lode_test_run_lode (info_args, &again, NULL), ==, 0);
    g_test_message ("%s", again);
    g_assert_nonnull (strstr (again, "Model versions: 3"));
    g_assert_nonnull (strstr (again, "unet-resnet18-1"));
    g_assert_nonnull (strstr (again, "demo.lode-models/u.lode-unet"));
    g_assert_nonnull (strstr (again, "mining IoU 0.388, mean IoU 0.513"));
    g_assert_nonnull (strstr (again, "sam2.1_hiera_tiny.pt\n"));
    g_assert_nonnull (strstr (again, "sam2-2-tuned"));
    g_assert_nonnull (strstr (again, "validation IoU 0.250 → 0.625"));
    g_assert_nonnull (strstr (again, "Embedding cache: 2.1\u00a0MB"));
    g_assert_true (strstr (again, "unet-resnet18-1") < strstr (again, "sam2-2-tuned"));
  }

  g_assert_cmpint (lode_test_run_lode (stats_args, &stats, NULL), ==, 0);
  g_assert_true (g_str_has_prefix (stats, "kind,tile,year,class,from_class,to_class,pixels,hectares\n"));
  g_assert_nonnull (strstr (stats, "\narea,0001,2016,Mining,"));
  g_assert_nonnull (strstr (stats, "\ntransition,total,2016-2022,,"));
  g_assert_cmpint (lode_test_run_lode (stats_file, &stats_out, NULL), ==, 0);
  g_assert_cmpstr (stats_out, ==, "");
  g_assert_true (g_file_get_contents (csv, &written, NULL, NULL));
  g_assert_true (g_str_has_prefix (written, "kind,tile,year,"));

  g_assert_cmpint (lode_test_run_lode (export_args, &export_out, NULL), ==, 0);
  g_assert_nonnull (strstr (export_out, "Exported 4 patches"));
  g_assert_true (g_file_test (manifest, G_FILE_TEST_IS_REGULAR));

  g_assert_cmpint (lode_test_run_lode (refused, NULL, &err), ==, 1);
  g_assert_nonnull (strstr (err, inside));
  g_assert_false (g_file_test (inside, G_FILE_TEST_EXISTS));
  lode_test_rmtree (dir);
}

/* The benchmark prints its four figures on a tiny set and cleans up. */
static void
test_bench (void)
{
  g_autofree char *out = NULL;
  const char *args[] = { "bench", "annotate", "--patches", "4", "--size", "32", NULL };

  g_assert_cmpint (lode_test_run_lode (args, &out, NULL), ==, 0);
  g_assert_nonnull (strstr (out, "Import of 4 patches"));
  g_assert_nonnull (strstr (out, "ms per patch"));
  g_assert_nonnull (strstr (out, "applied to the mask"));
  g_assert_nonnull (strstr (out, "p95"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/cli-annotate/help", test_help);
  g_test_add_func ("/cli-annotate/errors", test_errors);
  g_test_add_func ("/cli-annotate/on-demo", test_on_demo);
  g_test_add_func ("/cli-annotate/bench", test_bench);
  return g_test_run ();
}
