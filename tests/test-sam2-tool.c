/* The SAM2 tool in the window, as a user drives it (display suite): with a
 * random tiny checkpoint chosen in Preferences (memory backend, input size
 * 512), a click on the demo patch encodes it off the main loop and shows
 * three candidates with their IoU scores; the second, applied with replace,
 * is the patch's new mask within the active class (revision source sam2),
 * equal to what the predictor gives for the same click; undo restores the
 * mask; a second patch is encoded and the first comes back from the cache.
 * Moving on while a patch encodes cancels that encode; with prefetching on,
 * the next patch is encoded ahead and comes from the cache.
 * Without a checkpoint the tool says where to choose one; a checkpoint cut
 * short is reported with the file's name and what is wrong. */
#include "config.h"

#include <math.h>
#include <string.h>

#include <glib/gstdio.h>

#include "lode-bench-sam2.h"
#include "lode-canvas.h"
#include "lode-cli-progress.h"
#include "lode-demo.h"
#include "lode-encode-dialog.h"
#include "lode-mask.h"
#include "lode-preferences-dialog.h"
#include "lode-sam2-config.h"
#include "lode-sam2-session.h"
#include "lode-store.h"
#include "lode-test-display.h"
#include "lode-test-util.h"
#include "lode-window.h"

#define INPUT_SIZE 512

static char *ckpt_dir;
static char *ckpt_path;

typedef struct
{
  char       *dir;
  char       *project;
  GSettings  *settings;
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
  g_autoptr(GFile) file = NULL;
  LodeDemoOptions options;
  LodeImportOptions import_options;

  f->dir = lode_test_mkdtemp ();
  f->project = g_build_filename (f->dir, "demo.lode", NULL);
  lode_demo_options_init (&options);
  options.n_tiles = 2;
  g_assert_true (lode_demo_write (f->dir, &options, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  lode_import_options_init (&import_options);
  g_assert_true (lode_cli_import_into (f->project, f->dir, &import_options, TRUE, &error));
  g_assert_no_error (error);

  f->settings = g_settings_new (LODE_APP_ID);
  g_settings_set_string (f->settings, "sam2-checkpoint", data ? data : "");
  g_settings_set_int (f->settings, "sam2-input-size", INPUT_SIZE);
  g_settings_set_int (f->settings, "sam2-cache-mb", 256);
  /* off, so that what each test encodes does not depend on timing; the
   * prefetch test turns it on */
  g_settings_set_boolean (f->settings, "sam2-prefetch", FALSE);

  f->window = lode_window_new (NULL);
  gtk_window_set_default_size (GTK_WINDOW (f->window), 1400, 850);
  gtk_window_present (GTK_WINDOW (f->window));
  file = g_file_new_for_path (f->project);
  g_assert_true (lode_window_open_project (f->window, file));
  g_assert_true (lode_test_wait_for (canvas_ready, f, 5000));
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  if (f->window != NULL)
    gtk_window_destroy (GTK_WINDOW (f->window));
  g_clear_object (&f->settings);
  lode_test_rmtree (f->dir);
  g_free (f->dir);
  g_free (f->project);
}

static LodeSam2Tool *
tool_of (Fixture *f)
{
  return lode_window_get_sam2_tool (f->window);
}

static gboolean
embedding_ready (gpointer data)
{
  LodeSam2Tool *tool = data;

  return lode_sam2_tool_get_state (tool) == LODE_SAM2_TOOL_READY && !lode_sam2_tool_is_busy (tool);
}

static gboolean
prediction_ready (gpointer data)
{
  LodeSam2Tool *tool = data;

  return embedding_ready (tool) && lode_sam2_tool_get_prediction (tool) != NULL;
}

static gboolean
settled (gpointer data)
{
  LodeSam2Tool *tool = data;

  return !lode_sam2_tool_is_busy (tool) && lode_sam2_tool_get_state (tool) != LODE_SAM2_TOOL_LOADING &&
         lode_sam2_tool_get_state (tool) != LODE_SAM2_TOOL_ENCODING;
}

/* A click as the canvas gesture makes it: press and release in place. */
static void
click (Fixture *f, double x, double y, gboolean positive)
{
  LodeCanvas *canvas = LODE_CANVAS (lode_window_get_canvas (f->window));

  if (positive)
    lode_canvas_press (canvas, x, y);
  else
    lode_canvas_press_secondary (canvas, x, y);
  lode_canvas_release (canvas);
}

static LodeMask *
stored_mask (Fixture *f, gint64 patch_id, LodeRevisionSource *source)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) store = lode_store_open (f->project, FALSE, &error);
  g_autoptr(GBytes) blob = NULL;
  g_autoptr(GPtrArray) revisions = NULL;
  gint64 revision = 0;
  LodeMask *mask;

  g_assert_no_error (error);
  blob = lode_store_get_mask (store, patch_id, 0, &revision, &error);
  g_assert_no_error (error);
  g_assert_nonnull (blob);
  mask = lode_mask_deserialize (blob, &error);
  g_assert_no_error (error);
  if (source != NULL)
    {
      const LodeRevisionInfo *last;

      revisions = lode_store_list_revisions (store, patch_id, &error);
      g_assert_no_error (error);
      g_assert_cmpuint (revisions->len, >, 0);
      last = g_ptr_array_index (revisions, revisions->len - 1);
      g_assert_cmpint (last->id, ==, revision);
      *source = last->source;
    }
  return mask;
}

/* The same click straight through the predictor, on the embedding the
 * window's worker left in the project's cache. */
static LodeSam2Prediction *
direct_prediction (Fixture *f, gint64 patch_id, const float *xy, const int *labels, int n)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) store = lode_store_open (f->project, FALSE, &error);
  g_autoptr(LodeSam2Session) session = NULL;
  g_autoptr(LodePatch) patch = NULL;
  g_autoptr(LodeRaster) raster = NULL;
  g_autoptr(LodeSam2Embedding) embedding = NULL;
  g_autofree char *image = NULL;
  LodeCompositeSpec spec;
  LodeSam2Click c = { 0 };
  gboolean from_cache = FALSE;
  LodeSam2Prediction *p;

  g_assert_no_error (error);
  patch = lode_store_get_patch (store, patch_id, &error);
  g_assert_no_error (error);
  image = lode_store_resolve_path (store, patch->image_path);
  raster = lode_raster_open (image, &error);
  g_assert_no_error (error);
  session = lode_sam2_session_new (ckpt_path, INPUT_SIZE, &error);
  g_assert_no_error (error);
  lode_composite_spec_init (&spec, LODE_COMPOSITE_TRUE_COLOUR);
  embedding = lode_sam2_session_embed (session, store, patch_id, raster, &spec, 0, &from_cache, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (from_cache);
  c.n_points = n;
  c.points = xy;
  c.labels = labels;
  c.multimask = TRUE;
  p = lode_sam2_predictor_predict (lode_sam2_session_get_predictor (session), embedding, raster->width,
                                   raster->height, &c, &error);
  g_assert_no_error (error);
  return p;
}

static void
test_segment (Fixture *f, gconstpointer data)
{
  LodeSam2Tool *tool = tool_of (f);
  LodeCanvas *canvas = LODE_CANVAS (lode_window_get_canvas (f->window));
  gint64 first = lode_window_get_patch_id (f->window);
  int w = lode_canvas_get_image_width (canvas), h = lode_canvas_get_image_height (canvas);
  guint8 cls = lode_canvas_get_active_class (canvas);
  g_autoptr(LodeMask) before = stored_mask (f, first, NULL);
  g_autoptr(LodeMask) after = NULL;
  g_autoptr(LodeMask) undone = NULL;
  g_autoptr(LodeSam2Prediction) direct = NULL;
  g_autofree guint8 *inside = g_malloc ((gsize) w * h);
  g_autofree guint8 *expected = g_malloc ((gsize) w * h);
  const LodeSam2Prediction *p;
  LodeRevisionSource source;
  const float *points;
  const int *labels;
  float xy[2] = { w * 0.4f, h * 0.55f };
  int one = 1;
  gint64 start;

  g_assert_false (lode_window_get_sam2_message_shown (f->window));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.tool", "s", "sam2"));
  g_assert_cmpint (lode_canvas_get_tool (canvas), ==, LODE_CANVAS_TOOL_SAM2);
  /* Loading and encoding run off the main loop: the window answers at once. */
  g_assert_true (lode_sam2_tool_get_state (tool) == LODE_SAM2_TOOL_LOADING);
  g_assert_true (lode_sam2_tool_is_busy (tool));

  start = g_get_monotonic_time ();
  click (f, xy[0], xy[1], TRUE);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 100000);
  g_assert_cmpint (lode_sam2_tool_get_points (tool, &points, &labels), ==, 1);
  g_assert_cmpfloat (points[0], ==, xy[0]);
  g_assert_cmpint (labels[0], ==, 1);
  g_assert_true (lode_test_wait_for (prediction_ready, tool, 60000));
  g_test_message ("load, encode at %d and first click: %.2f s", INPUT_SIZE,
                  (g_get_monotonic_time () - start) / 1e6);
  g_assert_false (lode_sam2_tool_get_from_cache (tool));
  g_assert_cmpint (lode_sam2_tool_get_patch_id (tool), ==, first);

  p = lode_sam2_tool_get_prediction (tool);
  g_assert_cmpint (p->n_masks, ==, 3);
  g_assert_cmpint (p->width, ==, w);
  g_assert_cmpint (p->height, ==, h);
  for (int i = 0; i < 3; i++)
    g_assert_true (isfinite (p->iou[i]));
  g_assert_cmpint (lode_sam2_tool_get_chosen (tool), ==, p->best);

  /* The same as the predictor's answer to the same click. */
  direct = direct_prediction (f, first, xy, &one, 1);
  g_assert_cmpint (direct->n_masks, ==, 3);
  for (int i = 0; i < 3; i++)
    {
      g_autofree guint8 *a = g_malloc ((gsize) w * h);
      g_autofree guint8 *b = g_malloc ((gsize) w * h);

      g_assert_cmpfloat_with_epsilon (direct->iou[i], p->iou[i], 1e-5);
      lode_sam2_prediction_mask_u8 (p, i, a);
      lode_sam2_prediction_mask_u8 (direct, i, b);
      g_assert_cmpmem (a, (gsize) w * h, b, (gsize) w * h);
    }

  /* The second candidate, by its key, then Tab goes round. */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.number", "i", 2));
  g_assert_cmpint (lode_sam2_tool_get_chosen (tool), ==, 1);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.sam2-next", NULL));
  g_assert_cmpint (lode_sam2_tool_get_chosen (tool), ==, 2);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.sam2-previous", NULL));
  g_assert_cmpint (lode_sam2_tool_get_chosen (tool), ==, 1);
  /* The class palette is untouched by the candidate keys. */
  g_assert_cmpint (lode_canvas_get_active_class (canvas), ==, cls);

  lode_test_settle (GTK_WIDGET (f->window));
  g_free (lode_test_screenshot (GTK_WIDGET (f->window), "screenshot-sam2.png"));

  lode_sam2_prediction_mask_u8 (p, 1, inside);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.sam2-mode", "s", "replace"));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.sam2-apply", NULL));
  /* Applied: the prompts are cleared for the next object. */
  g_assert_false (lode_sam2_tool_has_prompts (tool));
  g_assert_null (lode_sam2_tool_get_prediction (tool));

  after = stored_mask (f, first, &source);
  g_assert_cmpint (source, ==, LODE_REVISION_SAM2);
  for (gsize i = 0; i < (gsize) w * h; i++)
    {
      guint8 was = before->data[i];

      if (was == LODE_MASK_NODATA)
        expected[i] = was;
      else if (inside[i])
        expected[i] = cls;
      else
        expected[i] = was == cls ? 0 : was;
    }
  g_assert_cmpmem (after->data, (gsize) w * h, expected, (gsize) w * h);

  /* Undo restores the mask as it was. */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.undo", NULL));
  undone = stored_mask (f, first, NULL);
  g_assert_cmpmem (undone->data, (gsize) w * h, before->data, (gsize) w * h);

  /* Another patch is encoded; the first comes back from the cache. */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.next-patch", NULL));
  g_assert_cmpint (lode_window_get_patch_id (f->window), !=, first);
  g_assert_true (lode_test_wait_for (embedding_ready, tool, 60000));
  g_assert_cmpint (lode_sam2_tool_get_patch_id (tool), ==, lode_window_get_patch_id (f->window));
  g_assert_false (lode_sam2_tool_get_from_cache (tool));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.previous-patch", NULL));
  g_assert_true (lode_test_wait_for (embedding_ready, tool, 60000));
  g_assert_cmpint (lode_sam2_tool_get_patch_id (tool), ==, first);
  g_assert_true (lode_sam2_tool_get_from_cache (tool));
}

/* Negative points, a box and Escape. */
static void
test_prompts (Fixture *f, gconstpointer data)
{
  LodeSam2Tool *tool = tool_of (f);
  LodeCanvas *canvas = LODE_CANVAS (lode_window_get_canvas (f->window));
  int w = lode_canvas_get_image_width (canvas), h = lode_canvas_get_image_height (canvas);
  const int *labels;
  float box[4];

  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.tool", "s", "sam2"));
  g_assert_true (lode_test_wait_for (embedding_ready, tool, 60000));
  click (f, w * 0.3, h * 0.3, TRUE);
  click (f, w * 0.7, h * 0.7, FALSE);
  g_assert_cmpint (lode_sam2_tool_get_points (tool, NULL, &labels), ==, 2);
  g_assert_cmpint (labels[0], ==, 1);
  g_assert_cmpint (labels[1], ==, 0);
  /* A drag draws a box. */
  lode_canvas_press (canvas, w * 0.2, h * 0.25);
  lode_canvas_motion (canvas, w * 0.5, h * 0.4);
  lode_canvas_motion (canvas, w * 0.8, h * 0.75);
  lode_canvas_release (canvas);
  g_assert_cmpint (lode_sam2_tool_get_points (tool, NULL, NULL), ==, 2);
  g_assert_true (lode_sam2_tool_get_box (tool, box));
  g_assert_cmpfloat_with_epsilon (box[0], w * 0.2, 1e-3);
  g_assert_cmpfloat_with_epsilon (box[3], h * 0.75, 1e-3);
  g_assert_true (lode_test_wait_for (prediction_ready, tool, 60000));
  g_assert_cmpint (lode_sam2_tool_get_prediction (tool)->n_masks, ==, 3);
  lode_test_settle (GTK_WIDGET (f->window));
  g_free (lode_test_screenshot (GTK_WIDGET (f->window), "screenshot-sam2-box.png"));

  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.sam2-clear", NULL));
  g_assert_false (lode_sam2_tool_has_prompts (tool));
  g_assert_null (lode_sam2_tool_get_prediction (tool));
  /* Nothing to apply now. */
  g_assert_false (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.sam2-apply", NULL) &&
                  lode_sam2_tool_get_prediction (tool) != NULL);
}

static void
test_no_checkpoint (Fixture *f, gconstpointer data)
{
  LodeSam2Tool *tool = tool_of (f);
  LodeCanvas *canvas = LODE_CANVAS (lode_window_get_canvas (f->window));
  gint64 patch = lode_window_get_patch_id (f->window);
  g_autoptr(LodeMask) before = stored_mask (f, patch, NULL);
  g_autoptr(LodeMask) after = NULL;

  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.tool", "s", "sam2"));
  g_assert_true (lode_window_get_sam2_message_shown (f->window));
  g_assert_cmpint (lode_sam2_tool_get_state (tool), ==, LODE_SAM2_TOOL_IDLE);
  click (f, 10, 10, TRUE);
  lode_test_settle (GTK_WIDGET (f->window));
  g_assert_false (lode_sam2_tool_is_busy (tool));
  g_assert_null (lode_sam2_tool_get_prediction (tool));
  g_free (lode_test_screenshot (GTK_WIDGET (f->window), "screenshot-sam2-no-checkpoint.png"));
  after = stored_mask (f, patch, NULL);
  g_assert_cmpmem (after->data, (gsize) after->width * after->height, before->data,
                   (gsize) before->width * before->height);

  /* Another tool hides the message; choosing a checkpoint makes it ready. */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.tool", "s", "brush"));
  g_assert_false (lode_window_get_sam2_message_shown (f->window));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.tool", "s", "sam2"));
  g_settings_set_string (f->settings, "sam2-checkpoint", ckpt_path);
  g_assert_false (lode_window_get_sam2_message_shown (f->window));
  g_assert_true (lode_test_wait_for (embedding_ready, tool, 60000));
  g_assert_cmpint (lode_canvas_get_tool (canvas), ==, LODE_CANVAS_TOOL_SAM2);
}

static void
test_truncated_checkpoint (Fixture *f, gconstpointer data)
{
  LodeSam2Tool *tool = tool_of (f);
  g_autofree char *cut = g_build_filename (f->dir, "sam2.1_hiera_tiny.pt", NULL);
  g_autofree char *contents = NULL;
  g_autoptr(GList) before = gtk_window_list_toplevels ();
  g_autoptr(GList) after = NULL;
  gsize len = 0;

  g_assert_true (g_file_get_contents (ckpt_path, &contents, &len, NULL));
  g_assert_true (g_file_set_contents (cut, contents, len / 3, NULL));
  g_settings_set_string (f->settings, "sam2-checkpoint", cut);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.tool", "s", "sam2"));
  g_assert_true (lode_test_wait_for (settled, tool, 60000));
  g_assert_cmpint (lode_sam2_tool_get_state (tool), ==, LODE_SAM2_TOOL_FAILED);
  g_test_message ("%s", lode_sam2_tool_get_error (tool));
  g_assert_nonnull (strstr (lode_sam2_tool_get_error (tool), "sam2.1_hiera_tiny.pt"));
  g_assert_nonnull (strstr (lode_sam2_tool_get_error (tool), "cut short"));
  /* An error dialog came up over the window. */
  lode_test_settle (GTK_WIDGET (f->window));
  after = gtk_window_list_toplevels ();
  g_assert_cmpuint (g_list_length (after), >, g_list_length (before));
  /* Clicks do nothing, and nothing crashes. */
  click (f, 5, 5, TRUE);
  lode_test_settle (GTK_WIDGET (f->window));
  g_assert_null (lode_sam2_tool_get_prediction (tool));
  for (GList *l = after; l != NULL; l = l->next)
    if (l->data != (gpointer) f->window && g_list_find (before, l->data) == NULL)
      gtk_window_destroy (GTK_WINDOW (l->data));
}

static LodeEncodeDialog *
find_encode_dialog (void)
{
  g_autoptr(GList) windows = gtk_window_list_toplevels ();

  for (GList *l = windows; l != NULL; l = l->next)
    if (LODE_IS_ENCODE_DIALOG (l->data))
      return l->data;
  return NULL;
}

static gboolean
encode_finished (gpointer data)
{
  return !lode_job_dialog_is_running (data) && lode_encode_dialog_get_report (data) != NULL;
}

/* Encode Project: every patch ahead of time; then the tool reads the cache. */
static void
test_encode_project (Fixture *f, gconstpointer data)
{
  LodeSam2Tool *tool = tool_of (f);
  LodeEncodeDialog *dialog;
  const LodeEncodeReport *r;

  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.encode-project", NULL));
  dialog = find_encode_dialog ();
  g_assert_nonnull (dialog);
  g_assert_true (lode_job_dialog_is_running (LODE_JOB_DIALOG (dialog)));
  g_assert_true (lode_test_wait_for (encode_finished, dialog, 120000));
  r = lode_encode_dialog_get_report (dialog);
  g_assert_cmpuint (r->total, ==, 4);
  g_assert_cmpuint (r->encoded, ==, 4);
  g_assert_cmpuint (r->cached, ==, 0);
  g_assert_cmpuint (r->failed, ==, 0);
  g_test_message ("%s", lode_encode_dialog_get_summary (dialog));
  lode_test_settle (GTK_WIDGET (dialog));
  g_free (lode_test_screenshot (GTK_WIDGET (dialog), "screenshot-encode-project.png"));

  /* Again: all from the cache. */
  g_assert_true (lode_encode_dialog_start (dialog));
  g_assert_true (lode_test_wait_for (encode_finished, dialog, 60000));
  g_assert_cmpuint (lode_encode_dialog_get_report (dialog)->cached, ==, 4);
  gtk_window_destroy (GTK_WINDOW (dialog));

  /* The tool finds each patch in the cache. */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.tool", "s", "sam2"));
  g_assert_true (lode_test_wait_for (embedding_ready, tool, 60000));
  g_assert_true (lode_sam2_tool_get_from_cache (tool));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.next-patch", NULL));
  g_assert_true (lode_test_wait_for (embedding_ready, tool, 60000));
  g_assert_true (lode_sam2_tool_get_from_cache (tool));
}

/* Cancel stops between patches; what was computed stays usable. */
static void
test_encode_cancel (Fixture *f, gconstpointer data)
{
  LodeEncodeDialog *dialog;
  const LodeEncodeReport *r;

  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.encode-project", NULL));
  dialog = find_encode_dialog ();
  g_assert_nonnull (dialog);
  lode_job_dialog_cancel (LODE_JOB_DIALOG (dialog));
  g_assert_true (lode_test_wait_for (encode_finished, dialog, 60000));
  r = lode_encode_dialog_get_report (dialog);
  g_assert_cmpuint (r->encoded + r->cached, <, 4);
  gtk_window_destroy (GTK_WINDOW (dialog));
}

static gboolean
no_main_loop_work (gpointer data)
{
  return !g_main_context_pending (NULL);
}

/* Closing the window while the model encodes a patch at 1024 (about 2 s
 * for the tiny model on two cores) does not wait for the encode: the tool
 * cancels it and the window is gone at once. */
static void
test_close_while_encoding (Fixture *f, gconstpointer data)
{
  LodeSam2Tool *tool = tool_of (f);
  gint64 start;

  g_settings_set_int (f->settings, "sam2-input-size", 1024);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.tool", "s", "sam2"));
  g_assert_true (lode_sam2_tool_is_busy (tool));
  g_object_add_weak_pointer (G_OBJECT (tool), (gpointer *) &tool);
  /* let the worker load the checkpoint and start encoding */
  g_usleep (300000);
  g_assert_nonnull (tool);
  g_assert_true (lode_sam2_tool_is_busy (tool));

  start = g_get_monotonic_time ();
  gtk_window_destroy (GTK_WINDOW (f->window));
  f->window = NULL;
  g_assert_cmpint (g_get_monotonic_time () - start, <, G_USEC_PER_SEC);
  g_assert_null (tool);
  /* the cancelled job comes back to the main loop and is dropped */
  g_usleep (500000);
  lode_test_wait_for (no_main_loop_work, NULL, 2000);
}

static guint
count_cached_embeddings (Fixture *f)
{
  g_autofree char *dir = g_strconcat (f->project, ".cache", G_DIR_SEPARATOR_S, "sam2", NULL);
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;
  guint n = 0;

  while (d != NULL && (name = g_dir_read_name (d)) != NULL)
    n += g_str_has_suffix (name, ".emb");
  return n;
}

/* Moving to the next patch while the first is being encoded at 1024 does
 * not wait for that encode: it is cancelled (so never cached) and the new
 * patch's embedding is the only one made. */
static void
test_switch_while_encoding (Fixture *f, gconstpointer data)
{
  LodeSam2Tool *tool = tool_of (f);
  gint64 first = lode_window_get_patch_id (f->window);

  g_settings_set_int (f->settings, "sam2-input-size", 1024);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.tool", "s", "sam2"));
  g_assert_true (lode_sam2_tool_is_busy (tool));
  /* let the worker load the checkpoint and start encoding */
  g_usleep (300000);
  g_assert_true (lode_sam2_tool_is_busy (tool));

  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.next-patch", NULL));
  g_assert_cmpint (lode_window_get_patch_id (f->window), !=, first);
  g_assert_true (lode_test_wait_for (embedding_ready, tool, 60000));
  g_assert_cmpint (lode_sam2_tool_get_patch_id (tool), ==, lode_window_get_patch_id (f->window));
  g_assert_cmpuint (count_cached_embeddings (f), ==, 1);

  /* Back to the first: encoded now, from scratch. */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.previous-patch", NULL));
  g_assert_true (lode_test_wait_for (embedding_ready, tool, 60000));
  g_assert_false (lode_sam2_tool_get_from_cache (tool));
  g_assert_cmpuint (count_cached_embeddings (f), ==, 2);
}

static gboolean
prefetched (gpointer data)
{
  return lode_sam2_tool_get_prefetched (data) != 0;
}

/* With "Encode the next patch ahead" on, the next patch of the list is
 * encoded into the cache while the tool waits for clicks on the first:
 * moving on finds its embedding there. */
static void
test_prefetch (Fixture *f, gconstpointer data)
{
  LodeSam2Tool *tool = tool_of (f);
  gint64 first = lode_window_get_patch_id (f->window);

  g_settings_set_boolean (f->settings, "sam2-prefetch", TRUE);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.tool", "s", "sam2"));
  g_assert_true (lode_test_wait_for (embedding_ready, tool, 60000));
  g_assert_cmpint (lode_sam2_tool_get_patch_id (tool), ==, first);
  g_assert_false (lode_sam2_tool_get_from_cache (tool));
  g_assert_true (lode_test_wait_for (prefetched, tool, 60000));
  g_assert_cmpint (lode_sam2_tool_get_prefetched (tool), !=, first);
  g_assert_cmpuint (count_cached_embeddings (f), ==, 2);
  /* the tool is not busy with it: clicks on the first are answered */
  g_assert_false (lode_sam2_tool_is_busy (tool));

  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.next-patch", NULL));
  g_assert_cmpint (lode_window_get_patch_id (f->window), ==, lode_sam2_tool_get_prefetched (tool));
  g_assert_true (lode_test_wait_for (embedding_ready, tool, 60000));
  g_assert_true (lode_sam2_tool_get_from_cache (tool));

  /* Turned off, nothing more is encoded ahead. */
  g_settings_set_boolean (f->settings, "sam2-prefetch", FALSE);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.next-patch", NULL));
  g_assert_true (lode_test_wait_for (embedding_ready, tool, 60000));
  g_assert_false (lode_sam2_tool_get_from_cache (tool));
  lode_test_wait_for (NULL, NULL, 1500);
  g_assert_cmpuint (count_cached_embeddings (f), ==, 3);
}

static void
test_preferences (void)
{
  g_autoptr(GSettings) settings = g_settings_new (LODE_APP_ID);
  GtkWidget *dialog;
  GtkDropDown *sizes;
  GtkAdjustment *cache;
  GtkLabel *label;
  GtkSwitch *prefetch;

  g_settings_reset (settings, "sam2-checkpoint");
  g_settings_reset (settings, "sam2-input-size");
  g_settings_reset (settings, "sam2-cache-mb");
  g_settings_reset (settings, "sam2-prefetch");
  dialog = lode_preferences_dialog_new (NULL, settings);
  sizes = GTK_DROP_DOWN (gtk_widget_get_template_child (dialog, LODE_TYPE_PREFERENCES_DIALOG, "size_dropdown"));
  cache = GTK_ADJUSTMENT (gtk_widget_get_template_child (dialog, LODE_TYPE_PREFERENCES_DIALOG, "cache_adjustment"));
  label = GTK_LABEL (gtk_widget_get_template_child (dialog, LODE_TYPE_PREFERENCES_DIALOG, "checkpoint_label"));
  prefetch = GTK_SWITCH (gtk_widget_get_template_child (dialog, LODE_TYPE_PREFERENCES_DIALOG, "prefetch_switch"));
  gtk_window_present (GTK_WINDOW (dialog));

  /* encoding ahead is on unless the user turns it off */
  g_assert_true (gtk_switch_get_active (prefetch));
  gtk_switch_set_active (prefetch, FALSE);
  g_assert_false (g_settings_get_boolean (settings, "sam2-prefetch"));
  g_settings_reset (settings, "sam2-prefetch");
  g_assert_true (gtk_switch_get_active (prefetch));

  g_assert_cmpuint (gtk_drop_down_get_selected (sizes), ==, 0);
  g_assert_cmpint (g_settings_get_int (settings, "sam2-input-size"), ==, 1024);
  gtk_drop_down_set_selected (sizes, 1);
  g_assert_cmpint (g_settings_get_int (settings, "sam2-input-size"), ==, 512);
  g_assert_cmpfloat (gtk_adjustment_get_value (cache), ==, 2048);
  gtk_adjustment_set_value (cache, 512);
  g_assert_cmpint (g_settings_get_int (settings, "sam2-cache-mb"), ==, 512);

  lode_preferences_dialog_set_checkpoint (LODE_PREFERENCES_DIALOG (dialog), ckpt_path);
  {
    g_autofree char *stored = g_settings_get_string (settings, "sam2-checkpoint");
    g_autofree char *base = g_path_get_basename (ckpt_path);

    g_assert_cmpstr (stored, ==, ckpt_path);
    g_assert_cmpstr (gtk_label_get_label (label), ==, base);
  }
  lode_test_settle (dialog);
  g_free (lode_test_screenshot (dialog, "screenshot-preferences-sam2.png"));
  lode_preferences_dialog_set_checkpoint (LODE_PREFERENCES_DIALOG (dialog), NULL);
  g_assert_cmpstr (gtk_label_get_label (label), !=, g_path_get_basename (ckpt_path));
  gtk_window_destroy (GTK_WINDOW (dialog));
}

int
main (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  LodeSam2Config cfg;
  int status;

  g_test_init (&argc, &argv, NULL);
  if (!lode_test_display_init ("/sam2-tool/no-display"))
    return g_test_run ();

  ckpt_dir = lode_test_mkdtemp ();
  ckpt_path = g_build_filename (ckpt_dir, "random-tiny.safetensors", NULL);
  g_assert_true (lode_sam2_config_init_size (&cfg, "tiny"));
  g_assert_true (lode_sam2_write_random_checkpoint (&cfg, ckpt_path, &error));
  g_assert_no_error (error);

  g_test_add_func ("/sam2-tool/preferences", test_preferences);
  g_test_add ("/sam2-tool/segment", Fixture, ckpt_path, fixture_setup, test_segment, fixture_teardown);
  g_test_add ("/sam2-tool/prompts", Fixture, ckpt_path, fixture_setup, test_prompts, fixture_teardown);
  g_test_add ("/sam2-tool/encode-project", Fixture, ckpt_path, fixture_setup, test_encode_project,
              fixture_teardown);
  g_test_add ("/sam2-tool/encode-cancel", Fixture, ckpt_path, fixture_setup, test_encode_cancel, fixture_teardown);
  g_test_add ("/sam2-tool/prefetch", Fixture, ckpt_path, fixture_setup, test_prefetch, fixture_teardown);
  g_test_add ("/sam2-tool/switch-while-encoding", Fixture, ckpt_path, fixture_setup, test_switch_while_encoding,
              fixture_teardown);
  g_test_add ("/sam2-tool/close-while-encoding", Fixture, ckpt_path, fixture_setup, test_close_while_encoding,
              fixture_teardown);
  g_test_add ("/sam2-tool/no-checkpoint", Fixture, NULL, fixture_setup, test_no_checkpoint, fixture_teardown);
  g_test_add ("/sam2-tool/truncated-checkpoint", Fixture, NULL, fixture_setup, test_truncated_checkpoint,
              fixture_teardown);
  status = g_test_run ();
  lode_test_rmtree (ckpt_dir);
  g_free (ckpt_dir);
  g_free (ckpt_path);
  return status;
}
