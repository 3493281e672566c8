/* The training panel and the Pre-label dialog as a user drives them
 * (display suite, under Xvfb): on a small demo project (64 x 64), win.train
 * opens the panel, a one-epoch ResNet-18 run started by its Start code path
 * plots the loss and mining IoU and lists the new model version; win.prelabel
 * offers that version and stores model revisions on the unlabelled patches,
 * after which the window shows the patch it showed before with the new mask.
 * Screenshots of both dialogs land in the build folder.
 * SAM2 decoder fine-tuning in the same panel: without a checkpoint in
 * Preferences it says where to choose one and does not start; with a random
 * tiny checkpoint at 512 a four-step run plots its loss per step, writes a
 * new checkpoint beside the project that the predictor opens, lists a model
 * version of kind sam2, and makes it Preferences' checkpoint on request. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lode-bench-sam2.h"
#include "lode-cli-progress.h"
#include "lode-demo.h"
#include "lode-mask.h"
#include "lode-prelabel-dialog.h"
#include "lode-sam2-config.h"
#include "lode-sam2-predictor.h"
#include "lode-sam2-tune-project.h"
#include "lode-store.h"
#include "lode-test-display.h"
#include "lode-test-util.h"
#include "lode-device.h"
#include "lode-training-dialog.h"
#include "lode-window.h"

typedef struct
{
  char       *dir;
  char       *project;
  LodeWindow *window;
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  LodeDemoOptions options;
  LodeImportOptions import_options;

  f->dir = lode_test_mkdtemp ();
  f->project = g_build_filename (f->dir, "demo.lode", NULL);
  lode_demo_options_init (&options);
  options.n_tiles = 3;
  options.size = 64;
  g_assert_true (lode_demo_write (f->dir, &options, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  lode_import_options_init (&import_options);
  g_assert_true (lode_cli_import_into (f->project, f->dir, &import_options, TRUE, &error));
  g_assert_no_error (error);
  f->window = lode_window_new (NULL);
  gtk_window_set_default_size (GTK_WINDOW (f->window), 1200, 800);
  gtk_window_present (GTK_WINDOW (f->window));
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  GListModel *toplevels = gtk_window_get_toplevels ();

  while (g_list_model_get_n_items (toplevels) > 0)
    {
      g_autoptr(GtkWindow) w = g_list_model_get_item (toplevels, 0);
      gtk_window_destroy (w);
    }
  lode_test_rmtree (f->dir);
  g_free (f->dir);
  g_free (f->project);
}

static gpointer
find_toplevel (GType type)
{
  GListModel *toplevels = gtk_window_get_toplevels ();

  for (guint i = 0; i < g_list_model_get_n_items (toplevels); i++)
    {
      g_autoptr(GObject) w = g_list_model_get_item (toplevels, i);
      if (G_TYPE_CHECK_INSTANCE_TYPE (w, type))
        return w;
    }
  return NULL;
}

static gboolean
job_finished (gpointer data)
{
  return !lode_job_dialog_is_running (LODE_JOB_DIALOG (data));
}

static void
test_train_and_prelabel (Fixture *f, gconstpointer data)
{
  g_autoptr(GFile) file = g_file_new_for_path (f->project);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) store = NULL;
  g_autoptr(GPtrArray) revisions = NULL;
  LodeTrainingDialog *training;
  LodePrelabelDialog *prelabel;
  const LodePrelabelReport *report;
  const LodeRevisionInfo *last;
  LodePlot *plot;
  gint64 shown, version;

  /* No project, no training. */
  g_assert_false (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.train", NULL)
                  && find_toplevel (LODE_TYPE_TRAINING_DIALOG) != NULL);
  g_assert_true (lode_window_open_project (f->window, file));
  lode_test_settle (GTK_WIDGET (f->window));
  shown = lode_window_get_patch_id (f->window);
  g_assert_cmpint (shown, >, 0);

  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.train", NULL));
  training = find_toplevel (LODE_TYPE_TRAINING_DIALOG);
  g_assert_nonnull (training);
  g_assert_cmpuint (lode_training_dialog_get_n_versions (training), ==, 0);
  plot = lode_training_dialog_get_plot (training);
  g_assert_cmpuint (lode_plot_get_n_points (plot, 0), ==, 0);

  lode_training_dialog_set_settings (training, LODE_UNET_RESNET18, LODE_TRAIN_BANDS_6, 1, 0.001, FALSE);
  /* TF32 and bf16 are GPU choices: asked for without a CUDA device, the
   * run stays fp32 */
  g_assert_cmpstr (lode_training_dialog_get_precision (training), ==, "fp32");
  lode_training_dialog_set_precision (training, LODE_PRECISION_TF32);
  g_assert_cmpstr (lode_training_dialog_get_precision (training), ==,
                   lode_device_choose ("auto", NULL) == LODE_DEVICE_CUDA ? "tf32" : "fp32");
  lode_training_dialog_set_precision (training, LODE_PRECISION_BF16);
  g_assert_cmpstr (lode_training_dialog_get_precision (training), ==,
                   lode_device_choose ("auto", NULL) == LODE_DEVICE_CUDA ? "bf16" : "fp32");
  lode_training_dialog_set_precision (training, LODE_PRECISION_FP32);
  g_assert_true (lode_training_dialog_start (training));
  g_assert_true (lode_job_dialog_is_running (LODE_JOB_DIALOG (training)));
  g_assert_false (lode_training_dialog_start (training));   /* one run at a time */
  g_assert_true (lode_test_wait_for (job_finished, training, 120000));
  g_test_message ("training: %s", lode_training_dialog_get_summary (training));

  version = lode_training_dialog_get_last_version (training);
  g_assert_cmpint (version, >, 0);
  g_assert_cmpuint (lode_plot_get_n_points (plot, 0), ==, 1);   /* loss, epoch 1 */
  g_assert_cmpuint (lode_plot_get_n_points (plot, 1), ==, 1);   /* mining IoU, epoch 1 */
  g_assert_cmpuint (lode_training_dialog_get_n_versions (training), ==, 1);
  g_assert_nonnull (strstr (lode_training_dialog_get_summary (training), "added"));
  lode_test_settle (GTK_WIDGET (training));
  g_free (lode_test_screenshot (GTK_WIDGET (training), "screenshot-training.png"));
  gtk_window_destroy (GTK_WINDOW (training));

  /* Pre-label the unlabelled patches with it. */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.prelabel", NULL));
  prelabel = find_toplevel (LODE_TYPE_PRELABEL_DIALOG);
  g_assert_nonnull (prelabel);
  g_assert_cmpuint (lode_prelabel_dialog_get_n_versions (prelabel), ==, 1);
  g_assert_true (lode_prelabel_dialog_select_version (prelabel, version));
  g_assert_false (lode_prelabel_dialog_select_version (prelabel, version + 10));
  lode_prelabel_dialog_set_scope (prelabel, LODE_PRELABEL_UNLABELLED, FALSE);
  g_assert_true (lode_prelabel_dialog_start (prelabel));
  g_assert_true (lode_test_wait_for (job_finished, prelabel, 60000));
  report = lode_prelabel_dialog_get_report (prelabel);
  g_assert_nonnull (report);
  g_test_message ("pre-label: %s", lode_prelabel_dialog_get_summary (prelabel));
  g_assert_cmpuint (report->labelled, ==, 6);
  g_assert_cmpuint (report->failed, ==, 0);
  g_assert_nonnull (strstr (lode_prelabel_dialog_get_summary (prelabel), "6 patches pre-labelled"));
  lode_test_settle (GTK_WIDGET (prelabel));
  g_free (lode_test_screenshot (GTK_WIDGET (prelabel), "screenshot-prelabel.png"));

  /* The window read the project again and shows the same patch. */
  lode_test_settle (GTK_WIDGET (f->window));
  g_assert_cmpint (lode_window_get_patch_id (f->window), ==, shown);
  store = lode_store_open (f->project, FALSE, &error);
  revisions = lode_store_list_revisions (store, shown, &error);
  g_assert_no_error (error);
  last = g_ptr_array_index (revisions, revisions->len - 1);
  g_assert_cmpint (last->source, ==, LODE_REVISION_MODEL);
  g_assert_cmpint (last->model_version_id, ==, version);
  gtk_window_destroy (GTK_WINDOW (prelabel));
  lode_test_settle (GTK_WIDGET (f->window));
  g_free (lode_test_screenshot (GTK_WIDGET (f->window), "screenshot-prelabelled-window.png"));
}

static void
test_sam2 (Fixture *f, gconstpointer data)
{
  g_autoptr(GFile) file = g_file_new_for_path (f->project);
  g_autoptr(GSettings) settings = g_settings_new (LODE_APP_ID);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) store = NULL;
  g_autoptr(LodeModelVersion) v = NULL;
  g_autoptr(LodeSam2Predictor) predictor = NULL;
  g_autofree char *source = g_build_filename (f->dir, "random-tiny.safetensors", NULL);
  g_autofree char *models = g_strconcat (f->project, "-models", NULL);
  g_autofree char *written = NULL, *chosen = NULL, *source_before = NULL, *source_after = NULL;
  gsize len_before = 0, len_after = 0;
  double before, after;
  LodeSam2Config cfg;
  LodeTrainingDialog *training;
  LodePlot *plot;
  gint64 version;

  g_assert_true (lode_sam2_config_init_size (&cfg, "tiny"));
  g_assert_true (lode_sam2_write_random_checkpoint (&cfg, source, &error));
  g_assert_no_error (error);
  g_assert_true (g_file_get_contents (source, &source_before, &len_before, NULL));
  g_settings_set_string (settings, "sam2-checkpoint", "");
  g_settings_set_int (settings, "sam2-input-size", 512);

  /* The last patch with a class region validates, the others train. */
  store = lode_store_open (f->project, FALSE, &error);
  g_assert_no_error (error);
  {
    g_autoptr(GPtrArray) patches = lode_store_list_patches (store, &error);
    gint64 last = 0;

    g_assert_no_error (error);
    for (guint i = 0; i < patches->len; i++)
      {
        const LodePatch *p = g_ptr_array_index (patches, i);
        g_autoptr(GBytes) blob = lode_store_get_mask (store, p->id, 0, NULL, NULL);
        LodeMask *m = blob ? lode_mask_deserialize (blob, NULL) : NULL;
        gboolean any = FALSE;

        g_assert_true (lode_store_set_patch_split (store, p->id, "train", &error));
        for (gsize k = 0; m != NULL && k < (gsize) m->width * m->height; k++)
          any |= m->data[k] != 0 && m->data[k] != LODE_MASK_NODATA;
        if (any)
          last = p->id;
        g_clear_pointer (&m, lode_mask_free);
      }
    g_assert_cmpint (last, >, 0);
    g_assert_true (lode_store_set_patch_split (store, last, "test", &error));
  }
  g_clear_pointer (&store, lode_store_close);

  g_assert_true (lode_window_open_project (f->window, file));
  lode_test_settle (GTK_WIDGET (f->window));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->window), "win.train", NULL));
  training = find_toplevel (LODE_TYPE_TRAINING_DIALOG);
  g_assert_nonnull (training);
  g_assert_cmpstr (lode_training_dialog_get_note (training), ==, "");

  /* No checkpoint: the panel says where to choose one and does not start. */
  lode_training_dialog_set_sam2_settings (training, 4, 1e-5);
  g_assert_nonnull (strstr (lode_training_dialog_get_note (training), "Preferences"));
  g_assert_false (lode_training_dialog_start (training));
  g_assert_false (lode_job_dialog_is_running (LODE_JOB_DIALOG (training)));

  /* Chosen in Preferences: the note names it, and four steps run. */
  g_settings_set_string (settings, "sam2-checkpoint", source);
  g_assert_nonnull (strstr (lode_training_dialog_get_note (training), "random-tiny.safetensors"));
  g_assert_nonnull (strstr (lode_training_dialog_get_note (training), "512"));
  g_assert_true (lode_training_dialog_start (training));
  g_assert_true (lode_test_wait_for (job_finished, training, 120000));
  g_test_message ("SAM2: %s", lode_training_dialog_get_summary (training));
  version = lode_training_dialog_get_last_version (training);
  g_assert_cmpint (version, >, 0);
  plot = lode_training_dialog_get_plot (training);
  g_assert_cmpuint (lode_plot_get_n_points (plot, 0), ==, 4);   /* the loss of every step */
  g_assert_cmpuint (lode_training_dialog_get_n_versions (training), ==, 1);
  g_assert_nonnull (strstr (lode_training_dialog_get_summary (training), "fine-tuned on"));
  g_assert_nonnull (strstr (lode_training_dialog_get_summary (training), "validated on 1: validation IoU"));
  g_assert_cmpuint (lode_plot_get_n_points (plot, 2), >=, 2);   /* validation IoU, the last after step 4 */

  store = lode_store_open (f->project, FALSE, &error);
  g_assert_no_error (error);
  v = lode_store_get_model_version (store, version, &error);
  g_assert_no_error (error);
  g_assert_cmpint (v->kind, ==, LODE_MODEL_SAM2);
  g_assert_true (lode_sam2_tune_project_read_metrics (v->metrics_json, &before, &after));
  g_assert_true (before >= 0 && before <= 1 && after >= 0 && after <= 1);
  g_assert_nonnull (strstr (v->metrics_json, "\"steps\":4"));
  written = lode_store_resolve_path (store, v->path);
  g_assert_true (g_str_has_prefix (written, models));
  g_assert_true (g_str_has_suffix (written, ".safetensors"));
  g_assert_true (g_file_test (written, G_FILE_TEST_IS_REGULAR));
  predictor = lode_sam2_predictor_open (written, NULL, 512, &error);
  g_assert_no_error (error);
  g_assert_nonnull (predictor);
  /* The source is left as it was. */
  g_assert_true (g_file_get_contents (source, &source_after, &len_after, NULL));
  g_assert_cmpuint (len_after, ==, len_before);
  g_assert_true (memcmp (source_after, source_before, len_before) == 0);

  lode_test_settle (GTK_WIDGET (training));
  g_free (lode_test_screenshot (GTK_WIDGET (training), "screenshot-training-sam2.png"));

  /* Offered as Preferences' checkpoint. */
  g_assert_true (lode_training_dialog_use_as_sam2_checkpoint (training));
  chosen = g_settings_get_string (settings, "sam2-checkpoint");
  g_assert_cmpstr (chosen, ==, written);
  g_settings_set_string (settings, "sam2-checkpoint", "");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (!lode_test_display_init ("/training-ui/no-display"))
    return g_test_run ();
  g_test_add ("/training-ui/train-and-prelabel", Fixture, NULL, fixture_setup, test_train_and_prelabel,
              fixture_teardown);
  g_test_add ("/training-ui/sam2", Fixture, NULL, fixture_setup, test_sam2, fixture_teardown);
  return g_test_run ();
}
