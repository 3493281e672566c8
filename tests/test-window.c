/* The main window as a user meets it (display suite, under Xvfb): it opens
 * the demo project, shows the first patch on the canvas with its mask, moves
 * to the next patch, and refuses a broken project with a dialog while keeping
 * what was open. Screenshots are written to the build folder. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>

#include "lode-application.h"
#include "lode-canvas.h"
#include "lode-composite.h"
#include "lode-cli-progress.h"
#include "lode-demo.h"
#include "lode-test-display.h"
#include "lode-test-util.h"
#include "lode-store.h"
#include "lode-mask.h"
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
  /* data: NULL for a roomy window, else the default size of the .ui file. */
  if (data == NULL)
    gtk_window_set_default_size (GTK_WINDOW (f->window), 1400, 850);
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

/* The latest mask of a patch, read through a second connection. */
static LodeMask *
stored_mask (Fixture *f, gint64 patch_id, gint64 *revision)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) store = lode_store_open (f->project, FALSE, &error);
  g_autoptr(GBytes) blob = NULL;
  LodeMask *mask;

  g_assert_no_error (error);
  blob = lode_store_get_mask (store, patch_id, 0, revision, &error);
  g_assert_no_error (error);
  g_assert_nonnull (blob);
  mask = lode_mask_deserialize (blob, &error);
  g_assert_no_error (error);
  return mask;
}

static guint64
count_class (const LodeMask *m, guint8 id)
{
  guint64 counts[256] = { 0 };
  lode_mask_count (m, counts);
  return counts[id];
}

static void
open_demo (Fixture *f)
{
  g_autoptr(GFile) file = g_file_new_for_path (f->project);

  g_assert_true (lode_window_open_project (f->window, file));
  g_assert_true (lode_test_wait_for (canvas_ready, f, 5000));
  lode_test_settle (GTK_WIDGET (f->window));
}

static void
test_edit_undo_redo (Fixture *f, gconstpointer data)
{
  LodeCanvas *canvas = LODE_CANVAS (lode_window_get_canvas (f->window));
  g_autoptr(LodeMask) before = NULL;
  g_autoptr(LodeMask) painted = NULL;
  g_autoptr(LodeMask) undone = NULL;
  g_autoptr(LodeMask) redone = NULL;
  gint64 id, rev0 = 0, rev1 = 0, rev2 = 0, rev3 = 0;
  g_autofree char *shot = NULL;

  open_demo (f);
  id = lode_window_get_patch_id (f->window);
  before = stored_mask (f, id, &rev0);

  /* Brush, class 1 (mining), a stroke across the patch as a drag would. */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.tool", "s", "brush"));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.class", "i", 1));
  g_assert_cmpint (lode_canvas_get_tool (canvas), ==, LODE_CANVAS_TOOL_BRUSH);
  g_assert_cmpint (lode_canvas_get_active_class (canvas), ==, 1);
  gtk_widget_activate_action (GTK_WIDGET (f->window), "win.brush-grow", NULL);
  g_assert_cmpfloat (lode_canvas_get_brush_radius (canvas), >, 3.0);
  lode_canvas_press (canvas, 10.5, 60.5);
  for (double x = 12; x <= 110; x += 2)
    lode_canvas_motion (canvas, x, 60.5);
  lode_canvas_release (canvas);
  lode_test_settle (GTK_WIDGET (f->window));

  painted = stored_mask (f, id, &rev1);
  g_assert_cmpint (rev1, >, rev0);
  g_assert_cmpuint (count_class (painted, 1), >, count_class (before, 1) + 100);
  g_assert_cmpint (painted->data[60 * painted->width + 60], ==, 1);
  shot = lode_test_screenshot (GTK_WIDGET (f->window), "screenshot-edit.png");

  /* Zoom in and out keep the stroke; fit comes back. */
  gtk_widget_activate_action (GTK_WIDGET (f->window), "win.zoom-in", NULL);
  g_assert_cmpfloat (lode_canvas_get_zoom (canvas), >, 1.0);
  gtk_widget_activate_action (GTK_WIDGET (f->window), "win.zoom-fit", NULL);

  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.undo", NULL));
  undone = stored_mask (f, id, &rev2);
  g_assert_cmpint (rev2, >, rev1);
  g_assert_true (lode_mask_equal (undone, before));

  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.redo", NULL));
  redone = stored_mask (f, id, &rev3);
  g_assert_cmpint (rev3, >, rev2);
  g_assert_true (lode_mask_equal (redone, painted));

  /* The cursor's status line names the class and band values. */
  g_signal_emit_by_name (canvas, "cursor-moved", 60.5, 60.5);
  g_assert_nonnull (strstr (lode_window_get_status (f->window), "Mining"));
  g_assert_nonnull (strstr (lode_window_get_status (f->window), "B4"));
}

static void
test_compare (Fixture *f, gconstpointer data)
{
  LodeCompareView *compare;
  LodeCanvas *left, *right;
  g_autoptr(LodeMask) before = NULL;
  g_autoptr(LodeMask) after = NULL;
  double z1, x1, y1, z2, x2, y2;
  gint64 pair;

  open_demo (f);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.view", "s", "compare"));
  lode_test_settle (GTK_WIDGET (f->window));
  pair = lode_window_get_pair_id (f->window);
  g_assert_cmpint (pair, >, 0);
  g_assert_cmpint (pair, !=, lode_window_get_patch_id (f->window));
  compare = lode_window_get_compare_view (f->window);
  left = lode_compare_view_get_canvas (compare, 0);
  right = lode_compare_view_get_canvas (compare, 1);
  g_assert_true (lode_canvas_has_image (left));
  g_assert_true (lode_canvas_has_image (right));

  /* Zoom on one side moves the other. */
  lode_canvas_set_view (right, 3.0, 40.0, 50.0);
  lode_canvas_get_view (left, &z1, &x1, &y1);
  lode_canvas_get_view (right, &z2, &x2, &y2);
  g_assert_cmpfloat_with_epsilon (z1, z2, 1e-9);
  g_assert_cmpfloat_with_epsilon (x1, x2, 1.0);
  g_assert_cmpfloat_with_epsilon (y1, y2, 1.0);
  gtk_widget_activate_action (GTK_WIDGET (f->window), "win.zoom-fit", NULL);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.change-overlay", NULL));
  lode_test_settle (GTK_WIDGET (f->window));
  g_free (lode_test_screenshot (GTK_WIDGET (f->window), "screenshot-compare.png"));

  /* The right side (2022) is editable: a fill there is stored for the pair. */
  before = stored_mask (f, pair, NULL);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.tool", "s", "polygon"));
  lode_canvas_press (right, 2, 2);
  lode_canvas_press (right, 30, 2);
  lode_canvas_press (right, 30, 30);
  lode_canvas_press (right, 2, 30);
  lode_canvas_finish_polygon (right);
  after = stored_mask (f, pair, NULL);
  g_assert_cmpint (after->data[15 * after->width + 15], ==, 1);
  g_assert_false (lode_mask_equal (before, after));

  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.compare-mode", "s", "swipe"));
  lode_test_settle (GTK_WIDGET (f->window));
  g_free (lode_test_screenshot (GTK_WIDGET (f->window), "screenshot-swipe.png"));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.compare-mode", "s", "blink"));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.compare-mode", "s", "side"));
}

static void
test_review (Fixture *f, gconstpointer data)
{
  LodePatchBrowser *browser = lode_window_get_browser (f->window);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) store = NULL;
  g_autoptr(GPtrArray) reviews = NULL;
  const LodeReview *last;
  gint64 id;

  open_demo (f);
  id = lode_window_get_patch_id (f->window);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.submit", NULL));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.view", "s", "review"));
  lode_test_settle (GTK_WIDGET (f->window));
  /* The queue shows only the submitted patch. */
  g_assert_cmpuint (lode_patch_browser_get_n_shown (browser), ==, 1);
  g_assert_cmpint (lode_window_get_patch_id (f->window), ==, id);
  g_assert_true (lode_window_select_revision (f->window, 0));
  lode_test_settle (GTK_WIDGET (f->window));
  g_free (lode_test_screenshot (GTK_WIDGET (f->window), "screenshot-review.png"));

  /* Reject without a comment is refused; accept is stored. */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.reject", NULL));
  lode_window_set_comment (f->window, "boundaries checked");
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.accept", NULL));
  lode_test_settle (GTK_WIDGET (f->window));
  g_assert_cmpuint (lode_patch_browser_get_n_shown (browser), ==, 0);

  store = lode_store_open (f->project, FALSE, &error);
  g_assert_no_error (error);
  reviews = lode_store_list_reviews (store, id, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (reviews->len, ==, 2);
  last = g_ptr_array_index (reviews, reviews->len - 1);
  g_assert_cmpint (last->state, ==, LODE_REVIEW_ACCEPTED);
  g_assert_cmpstr (last->comment, ==, "boundaries checked");
}

/* Patches opened before are kept and their neighbours opened in idle
 * time: coming back to a patch, or to the other year edited in the compare
 * view, finds its edits and its undo history. */
static void
test_switch_keeps_edits (Fixture *f, gconstpointer data)
{
  LodeCanvas *canvas = LODE_CANVAS (lode_window_get_canvas (f->window));
  LodeCanvas *right;
  g_autoptr(LodeMask) before = NULL;
  g_autoptr(LodeMask) after = NULL;
  g_autoptr(LodeMask) pair_before = NULL;
  g_autoptr(LodeMask) pair_after = NULL;
  g_autoptr(LodeMask) undone = NULL;
  g_autoptr(LodeMask) pair_undone = NULL;
  gint64 id, pair;

  open_demo (f);
  id = lode_window_get_patch_id (f->window);
  before = stored_mask (f, id, NULL);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.tool", "s", "polygon"));
  lode_canvas_press (canvas, 2, 2);
  lode_canvas_press (canvas, 40, 2);
  lode_canvas_press (canvas, 40, 40);
  lode_canvas_finish_polygon (canvas);
  after = stored_mask (f, id, NULL);
  g_assert_false (lode_mask_equal (before, after));

  /* Away and back, with idle time between: undo still reaches the edit. */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.next-patch", NULL));
  lode_test_settle (GTK_WIDGET (f->window));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.previous-patch", NULL));
  g_assert_cmpint (lode_window_get_patch_id (f->window), ==, id);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.undo", NULL));
  undone = stored_mask (f, id, NULL);
  g_assert_true (lode_mask_equal (undone, before));

  /* An edit of the other year in the compare view ... */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.view", "s", "compare"));
  lode_test_settle (GTK_WIDGET (f->window));
  pair = lode_window_get_pair_id (f->window);
  g_assert_cmpint (pair, >, 0);
  pair_before = stored_mask (f, pair, NULL);
  right = lode_compare_view_get_canvas (lode_window_get_compare_view (f->window), 1);
  lode_canvas_press (right, 60, 60);
  lode_canvas_press (right, 100, 60);
  lode_canvas_press (right, 100, 100);
  lode_canvas_finish_polygon (right);
  pair_after = stored_mask (f, pair, NULL);
  g_assert_false (lode_mask_equal (pair_before, pair_after));
  /* ... is there when that patch is selected, and undone from there. */
  g_assert_true (lode_patch_browser_select_id (lode_window_get_browser (f->window), pair));
  g_assert_cmpint (lode_window_get_patch_id (f->window), ==, pair);
  g_assert_cmpint (lode_window_get_pair_id (f->window), ==, id);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.view", "s", "edit"));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.undo", NULL));
  pair_undone = stored_mask (f, pair, NULL);
  g_assert_true (lode_mask_equal (pair_undone, pair_before));
}

static GtkWidget *
child (Fixture *f, const char *name)
{
  GObject *w = gtk_widget_get_template_child (GTK_WIDGET (f->window), LODE_TYPE_WINDOW, name);

  g_assert_nonnull (w);
  return GTK_WIDGET (w);
}

static const char *
band_shown (Fixture *f, const char *name)
{
  GtkStringObject *item = gtk_drop_down_get_selected_item (GTK_DROP_DOWN (child (f, name)));

  return item ? gtk_string_object_get_string (item) : "";
}

/* Fully inside the window and no narrower than it asks to be. */
static void
assert_fits (Fixture *f, GtkWidget *widget)
{
  graphene_rect_t r;
  int min;

  g_assert_true (gtk_widget_get_mapped (widget));
  g_assert_true (gtk_widget_compute_bounds (widget, GTK_WIDGET (f->window), &r));
  gtk_widget_measure (widget, GTK_ORIENTATION_HORIZONTAL, -1, &min, NULL, NULL, NULL);
  g_assert_cmpfloat (r.origin.x, >=, 0);
  g_assert_cmpfloat (r.origin.x + r.size.width, <=, gtk_widget_get_width (GTK_WIDGET (f->window)) + 0.5);
  g_assert_cmpint (gtk_widget_get_width (widget), >=, min);
}

/* The layer controls show the bands of the composite; everything fits in
 * the default window size in each view; F9 hides the side panel. */
static void
test_layout (Fixture *f, gconstpointer data)
{
  const char *views[] = { "edit", "compare", "review" };
  const char *controls[] = { "composite_dropdown", "band_r", "band_g", "band_b", "stretch_dropdown",
                             "low_spin", "high_spin" };
  GtkWidget *canvas;
  GListModel *model;
  guint b12;
  int width;

  open_demo (f);
  g_assert_cmpstr (band_shown (f, "band_r"), ==, "B4");
  g_assert_cmpstr (band_shown (f, "band_g"), ==, "B3");
  g_assert_cmpstr (band_shown (f, "band_b"), ==, "B2");
  g_assert_false (gtk_widget_get_sensitive (child (f, "band_r")));

  gtk_drop_down_set_selected (GTK_DROP_DOWN (child (f, "composite_dropdown")), LODE_COMPOSITE_NIR);
  g_assert_cmpstr (band_shown (f, "band_r"), ==, "B8");
  g_assert_cmpstr (band_shown (f, "band_g"), ==, "B4");
  g_assert_cmpstr (band_shown (f, "band_b"), ==, "B3");
  /* Custom bands start from the view shown, and can be changed. */
  gtk_drop_down_set_selected (GTK_DROP_DOWN (child (f, "composite_dropdown")), LODE_COMPOSITE_CUSTOM);
  g_assert_true (gtk_widget_get_sensitive (child (f, "band_r")));
  g_assert_cmpstr (band_shown (f, "band_r"), ==, "B8");
  model = gtk_drop_down_get_model (GTK_DROP_DOWN (child (f, "band_r")));
  for (b12 = 0; b12 < g_list_model_get_n_items (model); b12++)
    if (g_str_equal (gtk_string_list_get_string (GTK_STRING_LIST (model), b12), "B12"))
      break;
  gtk_drop_down_set_selected (GTK_DROP_DOWN (child (f, "band_r")), b12);
  g_assert_cmpstr (band_shown (f, "band_r"), ==, "B12");
  /* The next patch keeps the custom bands. */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.next-patch", NULL));
  g_assert_cmpstr (band_shown (f, "band_r"), ==, "B12");
  g_assert_cmpstr (band_shown (f, "band_g"), ==, "B4");
  gtk_drop_down_set_selected (GTK_DROP_DOWN (child (f, "composite_dropdown")), LODE_COMPOSITE_TRUE_COLOUR);
  g_assert_cmpstr (band_shown (f, "band_r"), ==, "B4");
  g_assert_false (gtk_widget_get_sensitive (child (f, "band_g")));

  for (guint v = 0; v < G_N_ELEMENTS (views); v++)
    {
      g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.view", "s", views[v]));
      lode_test_settle (GTK_WIDGET (f->window));
      g_assert_cmpint (gtk_widget_get_width (GTK_WIDGET (f->window)), <=, 1280);
      assert_fits (f, child (f, "inspector"));
      assert_fits (f, child (f, "toolbar"));
      if (v != 2)
        for (guint c = 0; c < G_N_ELEMENTS (controls); c++)
          assert_fits (f, child (f, controls[c]));
      if (v == 1)
        {
          LodeCompareView *compare = lode_window_get_compare_view (f->window);
          double z1, x1, y1, z2, x2, y2;

          /* Both years open fitted, at the same scale. */
          lode_canvas_get_view (lode_compare_view_get_canvas (compare, 0), &z1, &x1, &y1);
          lode_canvas_get_view (lode_compare_view_get_canvas (compare, 1), &z2, &x2, &y2);
          g_assert_cmpfloat_with_epsilon (z1, z2, 1e-9);
          g_assert_cmpfloat_with_epsilon (y1, y2, 1.0);
          g_assert_true (lode_canvas_get_fit (lode_compare_view_get_canvas (compare, 1)));
          g_free (lode_test_screenshot (GTK_WIDGET (f->window), "screenshot-compare-1280.png"));
        }
    }

  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.view", "s", "edit"));
  lode_test_settle (GTK_WIDGET (f->window));
  canvas = lode_window_get_canvas (f->window);
  width = gtk_widget_get_width (canvas);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.show-inspector", NULL));
  lode_test_settle (GTK_WIDGET (f->window));
  g_assert_false (gtk_widget_get_visible (child (f, "inspector")));
  g_assert_cmpint (gtk_widget_get_width (canvas), >, width + 200);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.show-inspector", NULL));
  g_assert_true (gtk_widget_get_visible (child (f, "inspector")));
}

static int
compare_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static void
report_times (const char *what, const LodeSwitchTiming *t, guint n)
{
  double sync[64], shown[64], paint[64], sum_sync = 0, sum_paint = 0, sum_shown = 0;
  guint late = 0;

  g_assert_cmpuint (n, <=, G_N_ELEMENTS (sync));
  for (guint i = 0; i < n; i++)
    {
      sync[i] = t[i].sync_ms;
      paint[i] = t[i].paint_ms;
      shown[i] = t[i].shown_ms;
      sum_sync += sync[i];
      sum_paint += paint[i];
      sum_shown += shown[i];
      late += t[i].frames > 1;
    }
  qsort (sync, n, sizeof *sync, compare_double);
  qsort (paint, n, sizeof *paint, compare_double);
  qsort (shown, n, sizeof *shown, compare_double);
  g_test_message ("%s (%u switches, 128 x 128 x 13): main loop mean %.2f / max %.2f ms; "
                  "paint mean %.2f / max %.2f ms; shown after mean %.2f / max %.2f ms; "
                  "%u not in the next frame",
                  what, n, sum_sync / n, sync[n - 1], sum_paint / n, paint[n - 1], sum_shown / n, shown[n - 1],
                  late);
}

/* How long a patch switch takes (figures, not assertions: lode bench ui
 * is the benchmark). Each switch shows another patch, in a frame. */
static void
test_switch_time (Fixture *f, gconstpointer data)
{
  LodeSwitchTiming t[24];
  guint n;

  open_demo (f);
  n = lode_window_time_switches (f->window, 24, 0, t);
  g_assert_cmpuint (n, ==, 24);
  for (guint i = 0; i < n; i++)
    {
      g_assert_cmpuint (t[i].frames, >=, 1);
      g_assert_cmpfloat (t[i].shown_ms, >=, t[i].sync_ms);
    }
  report_times ("patch switch, next/previous", t, n);
  n = lode_window_time_switches (f->window, 24, 7, t);
  g_assert_cmpuint (n, >, 0);
  report_times ("patch switch, random jumps", t, n);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (!lode_test_display_init ("/window/no-display"))
    return g_test_run ();
  g_test_add ("/window/open-demo", Fixture, NULL, fixture_setup, test_open_demo, fixture_teardown);
  g_test_add ("/window/open-broken", Fixture, NULL, fixture_setup, test_open_broken, fixture_teardown);
  g_test_add ("/window/edit-undo-redo", Fixture, NULL, fixture_setup, test_edit_undo_redo, fixture_teardown);
  g_test_add ("/window/compare", Fixture, NULL, fixture_setup, test_compare, fixture_teardown);
  g_test_add ("/window/review", Fixture, NULL, fixture_setup, test_review, fixture_teardown);
  g_test_add ("/window/switch-keeps-edits", Fixture, NULL, fixture_setup, test_switch_keeps_edits,
              fixture_teardown);
  g_test_add ("/window/layout", Fixture, "default-size", fixture_setup, test_layout, fixture_teardown);
  g_test_add ("/window/switch-time", Fixture, NULL, fixture_setup, test_switch_time, fixture_teardown);
  return g_test_run ();
}
