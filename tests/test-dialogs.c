/* The export, import and preferences dialogs as a user drives them
 * (display suite, under Xvfb): the Export button's code path writes the
 * demo project's labels and reports the counts; a refused folder is shown
 * as an error dialog naming it; the import dialog's worker builds a new
 * project with progress, and cancelling leaves no project file; the
 * preferences land in GSettings (memory backend) and a new window follows
 * them. */
#include "config.h"

#include <string.h>

#include <glib/gstdio.h>

#include "lode-cli-progress.h"
#include "lode-composite.h"
#include "lode-demo.h"
#include "lode-export-dialog.h"
#include "lode-export.h"
#include "lode-import-dialog.h"
#include "lode-preferences-dialog.h"
#include "lode-store.h"
#include "lode-test-display.h"
#include "lode-test-util.h"
#include "lode-window.h"

typedef struct
{
  char *dir;      /* the demo data set */
  char *project;  /* the demo project, imported from it */
  char *out;      /* beside the data set, for exports */
  char *tmp;
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  LodeDemoOptions options;
  LodeImportOptions import_options;

  f->tmp = lode_test_mkdtemp ();
  f->dir = g_build_filename (f->tmp, "data", NULL);
  f->out = g_build_filename (f->tmp, "export", NULL);
  f->project = g_build_filename (f->tmp, "demo.lode", NULL);
  g_assert_cmpint (g_mkdir (f->dir, 0755), ==, 0);
  lode_demo_options_init (&options);
  options.n_tiles = 4;
  g_assert_true (lode_demo_write (f->dir, &options, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  if (data != NULL)
    {
      lode_import_options_init (&import_options);
      g_assert_true (lode_cli_import_into (f->project, f->dir, &import_options, TRUE, &error));
      g_assert_no_error (error);
    }
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  GListModel *toplevels = gtk_window_get_toplevels ();

  /* Windows left by a test (error dialogs, the main window) go first. */
  while (g_list_model_get_n_items (toplevels) > 0)
    {
      g_autoptr(GtkWindow) w = g_list_model_get_item (toplevels, 0);
      gtk_window_destroy (w);
    }
  lode_test_rmtree (f->tmp);
  g_free (f->dir);
  g_free (f->project);
  g_free (f->out);
  g_free (f->tmp);
}

static gpointer
find_toplevel (GType type)
{
  GListModel *toplevels = gtk_window_get_toplevels ();

  for (guint i = 0; i < g_list_model_get_n_items (toplevels); i++)
    {
      g_autoptr(GObject) w = g_list_model_get_item (toplevels, i);
      if (G_TYPE_CHECK_INSTANCE_TYPE (w, type))
        return w;  /* the list holds it */
    }
  return NULL;
}

static gboolean
export_finished (gpointer data)
{
  return !lode_job_dialog_is_running (data);
}

static gboolean
has_file (const char *dir, const char *a, const char *b)
{
  g_autofree char *path = g_build_filename (dir, a, b, NULL);
  return g_file_test (path, G_FILE_TEST_IS_REGULAR);
}

/* Fractions the progress bar showed strictly between 0 and 1. */
static void
on_fraction (GtkProgressBar *bar, GParamSpec *pspec, guint *n_between)
{
  double v = gtk_progress_bar_get_fraction (bar);

  if (v > 0.0 && v < 1.0)
    (*n_between)++;
}

static void
test_export (Fixture *f, gconstpointer data)
{
  g_autoptr(GFile) file = g_file_new_for_path (f->project);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) store = NULL;
  g_autoptr(GPtrArray) patches = NULL;
  g_autofree char *layout = NULL;
  g_autofree char *mask = NULL;
  LodeWindow *window = lode_window_new (NULL);
  LodeExportDialog *dialog;
  const LodeExportReport *report;
  LodeExportOptions options;
  GtkProgressBar *bar;
  guint n_between = 0;

  /* Without a project there is nothing to export. */
  gtk_window_present (GTK_WINDOW (window));
  gtk_widget_activate_action (GTK_WIDGET (window), "win.export", NULL);
  g_assert_null (find_toplevel (LODE_TYPE_EXPORT_DIALOG));
  g_assert_true (lode_window_open_project (window, file));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "win.export", NULL));
  dialog = find_toplevel (LODE_TYPE_EXPORT_DIALOG);
  g_assert_nonnull (dialog);
  g_assert_true (gtk_window_get_transient_for (GTK_WINDOW (dialog)) == GTK_WINDOW (window));
  /* No folder yet: the Export button does nothing. */
  g_assert_false (lode_export_dialog_start (dialog));

  lode_export_dialog_get_options (dialog, &options);
  g_assert_cmpint (options.formats, ==, LODE_EXPORT_ALL_FORMATS);
  options.bands = LODE_EXPORT_BANDS_SIX;
  lode_export_dialog_set_options (dialog, &options);
  lode_export_dialog_set_folder (dialog, f->out);
  bar = GTK_PROGRESS_BAR (gtk_widget_get_template_child (GTK_WIDGET (dialog), LODE_TYPE_EXPORT_DIALOG,
                                                         "progress_bar"));
  g_signal_connect (bar, "notify::fraction", G_CALLBACK (on_fraction), &n_between);
  g_assert_true (lode_export_dialog_start (dialog));
  g_assert_true (lode_job_dialog_is_running (LODE_JOB_DIALOG (dialog)));
  g_assert_true (lode_test_wait_for (export_finished, dialog, 30000));

  report = lode_export_dialog_get_report (dialog);
  g_assert_nonnull (report);
  g_assert_cmpuint (report->n_exported, ==, 8);
  g_assert_cmpuint (report->n_files, >, 8);
  g_assert_cmpuint (n_between, >, 0);
  g_assert_cmpfloat (gtk_progress_bar_get_fraction (bar), ==, 1.0);
  g_assert_nonnull (strstr (lode_export_dialog_get_summary (dialog), "8 patches exported"));
  g_test_message ("export summary: %s", lode_export_dialog_get_summary (dialog));
  lode_test_settle (GTK_WIDGET (dialog));
  g_free (lode_test_screenshot (GTK_WIDGET (dialog), "screenshot-export.png"));

  g_assert_true (has_file (f->out, "manifest.json", NULL));
  g_assert_true (has_file (f->out, "polygons.gpkg", NULL));
  g_assert_true (has_file (f->out, "terratorch", "config.yaml"));
  store = lode_store_open (f->project, FALSE, &error);
  g_assert_no_error (error);
  patches = lode_store_list_patches (store, &error);
  g_assert_no_error (error);
  layout = lode_store_get_meta (store, "layout");
  for (guint i = 0; i < patches->len; i++)
    {
      g_free (mask);
      mask = lode_export_mask_path (g_ptr_array_index (patches, i), layout);
      g_assert_true (has_file (f->out, mask, NULL));
    }

  /* A folder inside the data set is refused: an error dialog names it, and
   * the summary says why. */
  lode_export_dialog_set_folder (dialog, f->dir);
  g_assert_true (lode_export_dialog_start (dialog));
  g_assert_true (lode_test_wait_for (export_finished, dialog, 30000));
  g_assert_null (lode_export_dialog_get_report (dialog));
  g_assert_nonnull (find_toplevel (GTK_TYPE_MESSAGE_DIALOG));
  {
    GtkMessageDialog *error_dialog = find_toplevel (GTK_TYPE_MESSAGE_DIALOG);
    g_autofree char *text = NULL;

    g_object_get (error_dialog, "text", &text, NULL);
    g_assert_nonnull (strstr (text, f->dir));
    g_assert_cmpstr (lode_export_dialog_get_summary (dialog), !=, "");
    gtk_window_destroy (GTK_WINDOW (error_dialog));
  }

  /* Cancelled at once: nothing exported, the dialog says so. */
  g_autofree char *other = g_build_filename (f->tmp, "other", NULL);
  lode_export_dialog_set_folder (dialog, other);
  g_assert_true (lode_export_dialog_start (dialog));
  lode_job_dialog_cancel (LODE_JOB_DIALOG (dialog));
  g_assert_true (lode_test_wait_for (export_finished, dialog, 30000));
  g_assert_null (lode_export_dialog_get_report (dialog));
  g_assert_false (has_file (other, "manifest.json", NULL));
  g_assert_null (find_toplevel (GTK_TYPE_MESSAGE_DIALOG));
}

typedef struct
{
  LodeImportDialog *dialog;
  char             *imported;
} ImportWatch;

static void
on_imported (LodeImportDialog *dialog, const char *path, ImportWatch *w)
{
  g_free (w->imported);
  w->imported = g_strdup (path);
}

static gboolean
import_finished (gpointer data)
{
  return !lode_job_dialog_is_running (LODE_JOB_DIALOG (((ImportWatch *) data)->dialog));
}

static void
test_import (Fixture *f, gconstpointer data)
{
  g_autofree char *project = g_build_filename (f->tmp, "new", NULL);
  g_autofree char *expected = g_strconcat (project, LODE_STORE_EXTENSION, NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) store = NULL;
  g_autoptr(GPtrArray) patches = NULL;
  ImportWatch w = { 0 };
  GtkProgressBar *bar;
  guint n_between = 0;

  /* Cancelled at once: no project file is left behind. */
  w.dialog = g_object_ref_sink (LODE_IMPORT_DIALOG (lode_import_dialog_new (NULL)));
  g_signal_connect (w.dialog, "imported", G_CALLBACK (on_imported), &w);
  g_assert_false (lode_import_dialog_start (w.dialog));
  lode_import_dialog_set_source (w.dialog, f->dir);
  lode_import_dialog_set_project (w.dialog, project);
  g_assert_true (lode_import_dialog_start (w.dialog));
  lode_job_dialog_cancel (LODE_JOB_DIALOG (w.dialog));
  g_assert_true (lode_test_wait_for (import_finished, &w, 30000));
  g_assert_null (w.imported);
  g_assert_false (g_file_test (expected, G_FILE_TEST_EXISTS));

  /* Then the import itself, with progress on the way. */
  bar = GTK_PROGRESS_BAR (gtk_widget_get_template_child (GTK_WIDGET (w.dialog), LODE_TYPE_IMPORT_DIALOG,
                                                         "progress_bar"));
  g_signal_connect (bar, "notify::fraction", G_CALLBACK (on_fraction), &n_between);
  gtk_window_present (GTK_WINDOW (w.dialog));
  g_assert_true (lode_import_dialog_start (w.dialog));
  g_assert_true (lode_test_wait_for (import_finished, &w, 30000));
  g_assert_cmpstr (w.imported, ==, expected);
  g_assert_cmpuint (n_between, >, 0);

  store = lode_store_open (expected, FALSE, &error);
  g_assert_no_error (error);
  patches = lode_store_list_patches (store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (patches->len, ==, 8);

  g_object_unref (w.dialog);
  g_free (w.imported);
}

static void
test_preferences (Fixture *f, gconstpointer data)
{
  g_autoptr(GSettings) settings = g_settings_new (LODE_APP_ID);
  g_autofree char *name = NULL;
  g_autofree char *composite = NULL;
  GtkWidget *dialog = lode_preferences_dialog_new (NULL, settings);
  GtkWidget *entry = GTK_WIDGET (gtk_widget_get_template_child (dialog, LODE_TYPE_PREFERENCES_DIALOG,
                                                                "reviewer_entry"));
  GtkDropDown *presets = GTK_DROP_DOWN (gtk_widget_get_template_child (dialog, LODE_TYPE_PREFERENCES_DIALOG,
                                                                       "composite_dropdown"));
  g_autoptr(GFile) file = g_file_new_for_path (f->project);
  LodeWindow *window;
  GtkStringObject *shown;

  g_autoptr(GSettingsBackend) backend = NULL;

  g_object_get (settings, "backend", &backend, NULL);
  g_assert_cmpstr (G_OBJECT_TYPE_NAME (backend), ==, "GMemorySettingsBackend");
  gtk_window_present (GTK_WINDOW (dialog));
  gtk_editable_set_text (GTK_EDITABLE (entry), "Ama Mensah");
  name = g_settings_get_string (settings, "reviewer-name");
  g_assert_cmpstr (name, ==, "Ama Mensah");

  g_assert_cmpuint (gtk_drop_down_get_selected (presets), ==, LODE_COMPOSITE_TRUE_COLOUR);
  gtk_drop_down_set_selected (presets, LODE_COMPOSITE_NIR);
  composite = g_settings_get_string (settings, "default-composite");
  g_assert_cmpstr (composite, ==, lode_composite_preset_id (LODE_COMPOSITE_NIR));

  /* A window opened now shows the new default composite. */
  window = lode_window_new (NULL);
  gtk_window_present (GTK_WINDOW (window));
  g_assert_true (lode_window_open_project (window, file));
  shown = gtk_drop_down_get_selected_item (GTK_DROP_DOWN (gtk_widget_get_template_child (GTK_WIDGET (window),
                                                                                           LODE_TYPE_WINDOW,
                                                                                           "band_r")));
  g_assert_nonnull (shown);
  g_assert_cmpstr (gtk_string_object_get_string (shown), ==, "B8");
  g_settings_reset (settings, "default-composite");
  g_settings_reset (settings, "reviewer-name");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (!lode_test_display_init ("/dialogs/no-display"))
    return g_test_run ();
  g_test_add ("/dialogs/export", Fixture, "import", fixture_setup, test_export, fixture_teardown);
  g_test_add ("/dialogs/import", Fixture, NULL, fixture_setup, test_import, fixture_teardown);
  g_test_add ("/dialogs/preferences", Fixture, "import", fixture_setup, test_preferences, fixture_teardown);
  return g_test_run ();
}
