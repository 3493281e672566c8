/* The main window as a user meets it (display suite, under Xvfb): it opens
 * the demo project, shows the first patch on the canvas with its mask, moves
 * to the next patch, and refuses a broken project with a dialog while keeping
 * what was open. Screenshots are written to the build folder. */
#include "config.h"

#include <glib/gstdio.h>

#include "lode-application.h"
#include "lode-canvas.h"
#include "lode-cli-progress.h"
#include "lode-demo.h"
#include "lode-test-display.h"
#include "lode-test-util.h"
#include "lode-window.h"

typedef struct
{
  char       *dir;
  char       *project;
  LodeWindow *window;
} Fixture;

static gboolean
canvas_ready (gpointer data)
{
  Fixture *f = data;
  GtkWidget *canvas = lode_window_get_canvas (f->window);

  return lode_canvas_has_image (LODE_CANVAS (canvas)) && gtk_widget_get_mapped (canvas) &&
         gtk_widget_get_width (canvas) > 100;
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  LodeDemoOptions options;
  LodeImportOptions import_options;

  f->dir = lode_test_mkdtemp ();
  f->project = g_build_filename (f->dir, "demo.lode", NULL);
  lode_demo_options_init (&options);
  options.n_tiles = 4;
  g_assert_true (lode_demo_write (f->dir, &options, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  lode_import_options_init (&import_options);
  g_assert_true (lode_cli_import_into (f->project, f->dir, &import_options, TRUE, &error));
  g_assert_no_error (error);

  f->window = lode_window_new (NULL);
  gtk_window_set_default_size (GTK_WINDOW (f->window), 1100, 700);
  gtk_window_present (GTK_WINDOW (f->window));
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  gtk_window_destroy (GTK_WINDOW (f->window));
  lode_test_rmtree (f->dir);
  g_free (f->dir);
  g_free (f->project);
}

static void
test_open_demo (Fixture *f, gconstpointer data)
{
  g_autoptr(GFile) file = g_file_new_for_path (f->project);
  g_autofree char *shot = NULL;
  gint64 first;

  g_assert_cmpint (lode_window_get_patch_id (f->window), ==, 0);
  g_assert_true (lode_window_open_project (f->window, file));
  g_assert_true (lode_test_wait_for (canvas_ready, f, 5000));
  first = lode_window_get_patch_id (f->window);
  g_assert_cmpint (first, >, 0);
  lode_test_settle (GTK_WIDGET (f->window));
  shot = lode_test_screenshot (GTK_WIDGET (f->window), "screenshot-window.png");
  g_assert_true (g_file_test (shot, G_FILE_TEST_IS_REGULAR));

  /* Next patch: another patch is on the canvas. */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.next-patch", NULL));
  lode_test_settle (GTK_WIDGET (f->window));
  g_assert_cmpint (lode_window_get_patch_id (f->window), !=, first);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.previous-patch", NULL));
  g_assert_cmpint (lode_window_get_patch_id (f->window), ==, first);
}

static void
test_open_broken (Fixture *f, gconstpointer data)
{
  g_autoptr(GFile) good = g_file_new_for_path (f->project);
  g_autofree char *bad_path = g_build_filename (f->dir, "broken.lode", NULL);
  g_autoptr(GFile) bad = g_file_new_for_path (bad_path);
  gint64 shown;

  g_assert_true (lode_window_open_project (f->window, good));
  g_assert_true (lode_test_wait_for (canvas_ready, f, 5000));
  shown = lode_window_get_patch_id (f->window);

  g_assert_true (g_file_set_contents (bad_path, "not a project at all", -1, NULL));
  g_assert_false (lode_window_open_project (f->window, bad));
  /* The project that was open stays open. */
  g_assert_cmpint (lode_window_get_patch_id (f->window), ==, shown);
  g_assert_true (lode_canvas_has_image (LODE_CANVAS (lode_window_get_canvas (f->window))));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (!lode_test_display_init ("/window/no-display"))
    return g_test_run ();
  g_test_add ("/window/open-demo", Fixture, NULL, fixture_setup, test_open_demo, fixture_teardown);
  g_test_add ("/window/open-broken", Fixture, NULL, fixture_setup, test_open_broken, fixture_teardown);
  return g_test_run ();
}
