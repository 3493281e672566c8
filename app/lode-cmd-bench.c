#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <stdlib.h>

#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <gtk/gtk.h>

#include "lode-cli-progress.h"
#include "lode-commands.h"
#include "lode-composite.h"
#include "lode-demo.h"
#include "lode-document.h"
#include "lode-edit.h"
#include "lode-import.h"
#include "lode-raster.h"
#include "lode-resources.h"
#include "lode-store.h"
#include "lode-window.h"

/* Benchmarks print figures; they never assert. Each subject is one entry
 * of the table at the end: a name, a summary and a function taking the
 * arguments after "lode bench". */

static void
remove_tree (const char *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  if (dir != NULL && !g_file_test (path, G_FILE_TEST_IS_SYMLINK))
    while ((name = g_dir_read_name (dir)) != NULL)
      {
        g_autofree char *child = g_build_filename (path, name, NULL);

        if (g_file_test (child, G_FILE_TEST_IS_DIR) && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
          remove_tree (child);
        else
          g_unlink (child);
      }
  g_rmdir (path);
}

static int
compare_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return (x > y) - (x < y);
}

static double
mean_of (const double *v, guint n)
{
  double sum = 0.0;

  for (guint i = 0; i < n; i++)
    sum += v[i];
  return n ? sum / n : 0.0;
}

/* The 95th percentile (nearest rank); sorts v. */
static double
p95_of (double *v, guint n)
{
  guint rank;

  if (n == 0)
    return 0.0;
  qsort (v, n, sizeof (double), compare_double);
  rank = (guint) (0.95 * n + 0.999999);
  return v[CLAMP (rank, 1, n) - 1];
}

/* A short random brush stroke inside a size x size patch. */
static void
random_stroke (GRand *rand, int size, double *xy, int n_points)
{
  double x = g_rand_double_range (rand, 8, size - 8), y = g_rand_double_range (rand, 8, size - 8);

  for (int i = 0; i < n_points; i++)
    {
      x = CLAMP (x + g_rand_double_range (rand, -4, 4), 0, size - 1);
      y = CLAMP (y + g_rand_double_range (rand, -4, 4), 0, size - 1);
      xy[2 * i] = x;
      xy[2 * i + 1] = y;
    }
}

#define STROKE_POINTS 12
#define STROKE_RADIUS 4.0
#define N_COMPOSITES 1000
#define N_RASTERS 64
#define N_APPLY 2000
#define N_COMMITS 300

static gboolean
bench_composites (LodeStore *store, GPtrArray *patches, GError **error)
{
  g_autoptr(GPtrArray) rasters = g_ptr_array_new_with_free_func ((GDestroyNotify) lode_raster_free);
  g_autofree guint8 *rgba = NULL;
  LodeCompositeSpec spec;
  gint64 start, total = 0;

  for (guint i = 0; i < patches->len && rasters->len < N_RASTERS; i++)
    {
      const LodePatch *p = g_ptr_array_index (patches, i);
      g_autofree char *path = lode_store_resolve_path (store, p->image_path);
      LodeRaster *r = lode_raster_open (path, error);

      if (r == NULL)
        return FALSE;
      g_ptr_array_add (rasters, r);
    }
  for (guint i = 0; i < N_COMPOSITES; i++)
    {
      const LodeRaster *r = g_ptr_array_index (rasters, i % rasters->len);

      rgba = g_realloc (rgba, (gsize) r->width * r->height * 4);
      start = g_get_monotonic_time ();
      lode_composite_spec_init (&spec, LODE_COMPOSITE_TRUE_COLOUR);
      if (!lode_composite_resolve (&spec, r, error)
          || !lode_composite_render_rgba (r, &spec, NULL, rgba, error))
        return FALSE;
      total += g_get_monotonic_time () - start;
    }
  g_print (_("Composite, true colour 2–98 %%: %.3f ms per patch (mean of %d over %u patches)\n"),
           total / 1000.0 / N_COMPOSITES, N_COMPOSITES, rasters->len);
  return TRUE;
}

static gboolean
bench_edits (LodeStore *store, GPtrArray *patches, GError **error)
{
  const LodePatch *first = g_ptr_array_index (patches, 0);
  g_autoptr(LodeDocument) doc = lode_document_open (store, first->id, error);
  g_autoptr(GRand) rand = g_rand_new_with_seed (2022);
  g_autofree double *apply = g_new (double, N_APPLY);
  g_autofree double *commit = g_new (double, N_COMMITS);
  g_autoptr(LodeMask) scratch = NULL;
  double xy[2 * STROKE_POINTS];
  LodeClassTable *classes;

  if (doc == NULL)
    return FALSE;
  classes = lode_document_get_classes (doc);
  scratch = lode_mask_copy (lode_document_get_mask (doc));
  for (guint i = 0; i < N_APPLY; i++)
    {
      g_autoptr(LodeMaskDelta) delta = NULL;
      gint64 start;

      random_stroke (rand, scratch->width, xy, STROKE_POINTS);
      start = g_get_monotonic_time ();
      delta = lode_edit_stroke (scratch, classes, xy, STROKE_POINTS, STROKE_RADIUS, i % 2);
      apply[i] = (g_get_monotonic_time () - start) / 1000.0;
    }
  for (guint i = 0; i < N_COMMITS; i++)
    {
      gint64 start;

      random_stroke (rand, scratch->width, xy, STROKE_POINTS);
      start = g_get_monotonic_time ();
      if (!lode_document_stroke (doc, xy, STROKE_POINTS, STROKE_RADIUS, i % 2, "bench", error))
        return FALSE;
      commit[i] = (g_get_monotonic_time () - start) / 1000.0;
    }
  g_print (_("Brush stroke (%d points, radius %.0f) applied to the mask: %.4f ms (mean of %d)\n"),
           STROKE_POINTS, STROKE_RADIUS, mean_of (apply, N_APPLY), N_APPLY);
  g_print (_("Brush stroke applied and committed to the store: %.3f ms mean, %.3f ms p95 (%d edits)\n"),
           mean_of (commit, N_COMMITS), p95_of (commit, N_COMMITS), N_COMMITS);
  return TRUE;
}

/* Writes a demo set of about n_patches patches into a new temporary folder
 * (with progress on a terminal) and returns the folder, or NULL after
 * printing why. */
static char *
write_demo_set (int n_patches, int size, LodeDemoOptions *demo)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("lode-bench-XXXXXX", &error);
  gboolean ok;

  if (dir == NULL)
    {
      lode_cli_error ("bench", "%s", error->message);
      return NULL;
    }
  lode_demo_options_init (demo);
  demo->n_tiles = (guint) (n_patches + 1) / 2;
  demo->size = size;
  g_printerr (_("Writing %u demo tiles (%u patches) into %s…\n"), demo->n_tiles, 2 * demo->n_tiles, dir);
  ok = lode_demo_write (dir, demo, lode_cli_progress, NULL, NULL, &error);
  lode_cli_progress_end ();
  if (!ok)
    {
      lode_cli_error ("bench", "%s", error->message);
      remove_tree (dir);
      return NULL;
    }
  return g_steal_pointer (&dir);
}

static gboolean
check_sizes (int n_patches, int size)
{
  if (n_patches < 2 || n_patches > 2 * 9999)
    {
      lode_cli_error ("bench", _("--patches must be between 2 and 19998"));
      return FALSE;
    }
  if (size < 16 || size > 4096)
    {
      lode_cli_error ("bench", _("--size must be between 16 and 4096"));
      return FALSE;
    }
  return TRUE;
}

static int
bench_annotate (int argc, char **argv)
{
  int n_patches = 4270;
  int size = 128;
  g_autoptr(GError) error = NULL;
  const GOptionEntry entries[] = {
    { "patches", 'n', 0, G_OPTION_ARG_INT, &n_patches, N_("Patches of the demo set (default 4270: 2135 tiles in two years)"), N_("N") },
    { "size", 0, 0, G_OPTION_ARG_INT, &size, N_("Patch width and height (default 128)"), N_("PIXELS") },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (NULL);
  g_autofree char *dir = NULL;
  g_autofree char *project = NULL;
  g_autoptr(LodeStore) store = NULL;
  g_autoptr(GPtrArray) patches = NULL;
  LodeDemoOptions demo;
  LodeImportOptions import;
  LodeImportReport report;
  gint64 start;
  gboolean ok;

  g_option_context_set_summary (context,
    _("Time the annotation engine on a demo set written to a temporary folder\n"
      "(writing it is not timed): importing it, true-colour composites, and a\n"
      "brush stroke applied and committed. The folder is removed afterwards."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!lode_cli_parse (context, &argc, &argv) || !check_sizes (n_patches, size))
    return LODE_EXIT_USAGE;
  dir = write_demo_set (n_patches, size, &demo);
  if (dir == NULL)
    return LODE_EXIT_FAILURE;
  project = g_build_filename (dir, "bench.lode", NULL);
  store = lode_store_open (project, TRUE, &error);
  ok = store != NULL;
  if (ok)
    {
      lode_import_options_init (&import);
      import.expected_size = size;
      import.expected_bands = 13;
      lode_import_report_init (&report);
      start = g_get_monotonic_time ();
      ok = lode_import_smallminesds (store, dir, &import, &report, NULL, NULL, NULL, &error);
      if (ok)
        g_print (_("Import of %u patches: %.2f s\n"), report.n_patches,
                 (g_get_monotonic_time () - start) / 1e6);
      lode_import_report_clear (&report);
    }
  if (ok)
    {
      patches = lode_store_list_patches (store, &error);
      ok = patches != NULL && patches->len > 0;
    }
  ok = ok && bench_composites (store, patches, &error) && bench_edits (store, patches, &error);

  g_clear_pointer (&store, lode_store_close);
  remove_tree (dir);
  if (!ok)
    {
      lode_cli_error ("bench", "%s", error ? error->message : _("no patches were imported"));
      return LODE_EXIT_FAILURE;
    }
  return LODE_EXIT_OK;
}

static void
print_times (const char *what, double *v, guint n)
{
  double mean = mean_of (v, n), p95 = p95_of (v, n);

  /* p95_of sorted v: the last is the largest. */
  g_print (_("%s: %.2f ms mean, %.2f ms p95, %.2f ms max\n"), what, mean, p95, n ? v[n - 1] : 0.0);
}

static void
print_switches (const char *what, const LodeSwitchTiming *t, guint n)
{
  g_autofree double *v = g_new (double, MAX (n, 1));
  guint late = 0;
  g_autofree char *line = NULL;

  g_print ("%s\n", what);
  for (guint i = 0; i < n; i++)
    v[i] = t[i].sync_ms;
  print_times (_("  switch work on the main loop"), v, n);
  for (guint i = 0; i < n; i++)
    v[i] = t[i].paint_ms;
  print_times (_("  paint of the frame showing it"), v, n);
  for (guint i = 0; i < n; i++)
    v[i] = t[i].sync_ms + t[i].paint_ms;
  print_times (_("  work plus paint (the budget is 16 ms)"), v, n);
  for (guint i = 0; i < n; i++)
    {
      v[i] = t[i].shown_ms;
      late += t[i].frames > 1;
    }
  print_times (_("  from the selection to the frame shown"), v, n);
  g_print (g_dngettext (GETTEXT_PACKAGE, "  %u of %u switch missed the next frame\n",
                        "  %u of %u switches missed the next frame\n", late), late, n);
}

static int
bench_ui (int argc, char **argv)
{
  int n_patches = 200;
  int n_switches = 200;
  int size = 128;
  g_autoptr(GError) error = NULL;
  const GOptionEntry entries[] = {
    { "patches", 'n', 0, G_OPTION_ARG_INT, &n_patches, N_("Patches of the demo set (default 200)"), N_("N") },
    { "switches", 0, 0, G_OPTION_ARG_INT, &n_switches, N_("Switches timed in each way (default 200)"), N_("N") },
    { "size", 0, 0, G_OPTION_ARG_INT, &size, N_("Patch width and height (default 128)"), N_("PIXELS") },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (NULL);
  g_autofree char *dir = NULL;
  g_autofree char *project = NULL;
  g_autofree LodeSwitchTiming *timings = NULL;
  g_autoptr(GFile) file = NULL;
  GSettingsSchemaSource *schemas;
  g_autoptr(GSettingsSchema) schema = NULL;
  LodeDemoOptions demo;
  LodeImportOptions import;
  LodeWindow *window;
  guint n;
  gboolean ok;

  g_option_context_set_summary (context,
    _("Time patch switching in the window on a demo set written to a temporary\n"
      "folder: stepping to the next patch as a person would (the neighbours are\n"
      "opened in idle time) and jumping to random patches. Each switch is timed\n"
      "from the selection to the paint of the frame that shows the new patch.\n"
      "Needs a display (a desktop session, or xvfb-run); the settings are kept\n"
      "in memory. The folder is removed afterwards."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!lode_cli_parse (context, &argc, &argv) || !check_sizes (n_patches, size))
    return LODE_EXIT_USAGE;
  if (n_switches < 1 || n_switches > 100000)
    {
      lode_cli_error ("bench", _("--switches must be between 1 and 100000"));
      return LODE_EXIT_USAGE;
    }

  /* Before GTK reads any setting: nothing of the user's is changed. */
  g_setenv ("GSETTINGS_BACKEND", "memory", TRUE);
  if ((g_getenv ("DISPLAY") == NULL && g_getenv ("WAYLAND_DISPLAY") == NULL) || !gtk_init_check ())
    {
      lode_cli_error ("bench", _("“bench ui” needs a display: run it in a desktop session or under xvfb-run"));
      return LODE_EXIT_USAGE;
    }
  schemas = g_settings_schema_source_get_default ();
  schema = schemas ? g_settings_schema_source_lookup (schemas, LODE_APP_ID, TRUE) : NULL;
  if (schema == NULL)
    {
      lode_cli_error ("bench", _("the settings schema %s is not installed; from the build folder set "
                                 "GSETTINGS_SCHEMA_DIR=build/data"), LODE_APP_ID);
      return LODE_EXIT_FAILURE;
    }

  dir = write_demo_set (n_patches, size, &demo);
  if (dir == NULL)
    return LODE_EXIT_FAILURE;
  project = g_build_filename (dir, "bench.lode", NULL);
  lode_import_options_init (&import);
  ok = lode_cli_import_into (project, dir, &import, TRUE, &error);
  if (!ok)
    {
      remove_tree (dir);
      lode_cli_error ("bench", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }

  g_assert (lode_get_resource () != NULL);
  window = lode_window_new (NULL);
  gtk_window_present (GTK_WINDOW (window));
  file = g_file_new_for_path (project);
  ok = lode_window_open_project (window, file);
  if (ok)
    {
      timings = g_new0 (LodeSwitchTiming, n_switches);
      /* A first switch and a few frames: the window is laid out. */
      lode_window_time_switches (window, 1, 0, timings);
      g_print (_("Patch switching in the window, %d × %d pixels, %u patches (%s):\n"), size, size,
               2 * demo.n_tiles, gdk_display_get_name (gdk_display_get_default ()));
      n = lode_window_time_switches (window, n_switches, 0, timings);
      print_switches (_("Next and previous patch:"), timings, n);
      n = lode_window_time_switches (window, n_switches, 1, timings);
      print_switches (_("Jumps to random patches:"), timings, n);
    }
  gtk_window_destroy (GTK_WINDOW (window));
  remove_tree (dir);
  if (!ok)
    {
      lode_cli_error ("bench", _("the demo project cannot be opened"));
      return LODE_EXIT_FAILURE;
    }
  return LODE_EXIT_OK;
}

typedef struct
{
  const char *name;
  const char *summary;
  int (*run) (int argc, char **argv);
} BenchSubject;

static const BenchSubject subjects[] = {
  { "annotate", N_("Import, composites, brush strokes and their commits"), bench_annotate },
  { "sam2", N_("SAM2.1: load, encode a patch, clicks, peak memory"), lode_bench_sam2 },
  { "train", N_("U-Net: training and inference images per second, peak memory"), lode_bench_train },
  { "ui", N_("Patch switching in the window (needs a display)"), bench_ui },
};

static void
print_subjects (FILE *out)
{
  fprintf (out, "%s\n  lode bench %s [%s…]\n\n%s\n", _("Usage:"), _("SUBJECT"), _("OPTION"), _("Subjects:"));
  for (gsize i = 0; i < G_N_ELEMENTS (subjects); i++)
    fprintf (out, "  %-10s %s\n", subjects[i].name, _(subjects[i].summary));
  fprintf (out, "\n%s\n", _("Run “lode bench SUBJECT --help” for the options of a subject."));
}

int
lode_cmd_bench (int argc, char **argv)
{
  if (argc < 2 || g_str_equal (argv[1], "--help") || g_str_equal (argv[1], "-h"))
    {
      print_subjects (argc < 2 ? stderr : stdout);
      return argc < 2 ? LODE_EXIT_USAGE : LODE_EXIT_OK;
    }
  for (gsize i = 0; i < G_N_ELEMENTS (subjects); i++)
    if (g_str_equal (argv[1], subjects[i].name))
      {
        g_autofree char *name = g_strdup_printf ("bench %s", subjects[i].name);
        char *saved = argv[1];
        int status;

        argv[1] = name;
        status = subjects[i].run (argc - 1, argv + 1);
        argv[1] = saved;
        return status;
      }
  lode_cli_error ("bench", _("unknown subject “%s”; run “lode bench --help” for the list"), argv[1]);
  return LODE_EXIT_USAGE;
}
