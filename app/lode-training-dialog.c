#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>
#include <inttypes.h>
#include <math.h>

#include "lode-background.h"
#include "lode-classes.h"
#include "lode-device.h"
#include "lode-error-dialog.h"
#include "lode-sam2-tune-project.h"
#include "lode-store.h"
#include "lode-training-dialog.h"

enum { SERIES_LOSS, SERIES_IOU, SERIES_SAM2_IOU };

/* The model dropdown: three U-Nets, then SAM2. */
#define MODEL_SAM2 3

struct _LodeTrainingDialog
{
  LodeJobDialog   parent_instance;

  /* template */
  GtkButton      *cancel_button;
  GtkButton      *start_button;
  GtkGrid        *settings_grid;
  GtkDropDown    *encoder_dropdown;
  GtkDropDown    *bands_dropdown;
  GtkWidget      *bands_label;
  GtkWidget      *epochs_label;
  GtkWidget      *steps_label;
  GtkSpinButton  *steps_spin;
  GtkLabel       *sam2_note;
  GtkButton      *use_button;
  GtkLabel       *classes_label;
  GtkSpinButton  *epochs_spin;
  GtkSpinButton  *lr_spin;
  GtkCheckButton *frozen_check;
  GtkWidget      *precision_label;
  GtkDropDown    *precision_dropdown;
  GtkCheckButton *accepted_check;
  GtkProgressBar *progress_bar;
  LodePlot       *plot;
  GtkLabel       *summary_label;
  GtkListBox     *versions_list;

  char           *project;
  GSettings      *settings;
  guint           n_versions;
  gint64          last_version;
  gboolean        last_is_sam2;
  double          other_lr;      /* the learning rate of the other kind, kept across switches */
};

G_DEFINE_FINAL_TYPE (LodeTrainingDialog, lode_training_dialog, LODE_TYPE_JOB_DIALOG)

/* ---- the worker ----------------------------------------------------------- */

typedef struct
{
  char                    *project;
  LodeTrainProjectOptions  options;
  LodeTrainProjectCounts   counts;
  gboolean                 sam2;
  char                    *checkpoint;   /* SAM2's, to start from */
  LodeSam2TuneProjectOptions sam2_options;
  LodeSam2TuneProjectReport  sam2_report;
  double                   sam2_val;     /* the last validation IoU plotted */
  GWeakRef                 dialog;
  double                   epoch_loss;   /* sum over the epoch's steps */
  gint64                   epoch_steps;
  int                      epoch;
} TrainJob;

static void
train_job_free (TrainJob *job)
{
  g_free (job->project);
  g_free (job->checkpoint);
  g_weak_ref_clear (&job->dialog);
  g_free (job);
}

/* One report, carried from the worker to the main context. */
typedef struct
{
  GWeakRef dialog;
  double   fraction;
  char    *text;
  gboolean has_metrics;
  int      epoch;
  double   loss;        /* the epoch's mean */
  double   mining_iou;
  gboolean has_step;    /* SAM2: a step's loss, and a new validation IoU when finite */
  int      step;
  double   step_loss;
  double   val_iou;
} Update;

static gboolean
apply_update (gpointer data)
{
  Update *u = data;
  g_autoptr(LodeTrainingDialog) self = g_weak_ref_get (&u->dialog);

  if (self != NULL)
    {
      gtk_progress_bar_set_fraction (self->progress_bar, u->fraction);
      gtk_progress_bar_set_text (self->progress_bar, u->text);
      if (u->has_metrics)
        {
          lode_plot_add_point (self->plot, SERIES_LOSS, u->epoch, u->loss);
          lode_plot_add_point (self->plot, SERIES_IOU, u->epoch, u->mining_iou);
        }
      if (u->has_step)
        {
          lode_plot_add_point (self->plot, SERIES_LOSS, u->step, u->step_loss);
          lode_plot_add_point (self->plot, SERIES_SAM2_IOU, u->step, u->val_iou);
        }
    }
  return G_SOURCE_REMOVE;
}

static void
update_free (gpointer data)
{
  Update *u = data;

  g_weak_ref_clear (&u->dialog);
  g_free (u->text);
  g_free (u);
}

static void
on_train_progress (const LodeTrainProgress *p, gpointer user_data)
{
  TrainJob *job = user_data;
  g_autoptr(GObject) dialog = NULL;
  Update *u;

  if (p->epoch != job->epoch)
    {
      job->epoch = p->epoch;
      job->epoch_loss = 0;
      job->epoch_steps = 0;
    }
  if (p->metrics == NULL)
    {
      job->epoch_loss += p->loss;
      job->epoch_steps++;
    }
  dialog = g_weak_ref_get (&job->dialog);
  if (dialog == NULL)
    return;
  u = g_new0 (Update, 1);
  g_weak_ref_init (&u->dialog, dialog);
  u->fraction = p->total_steps > 0 ? (double) p->step / p->total_steps : 0;
  if (p->seconds_left >= 0)
    /* Translators: training progress: epoch of epochs, the last loss and the time left */
    u->text = g_strdup_printf (_("Epoch %d of %d, loss %.4f, %.0f s left"), p->epoch, p->epochs, p->loss,
                               p->seconds_left);
  else
    u->text = g_strdup_printf (_("Epoch %d of %d, loss %.4f"), p->epoch, p->epochs, p->loss);
  if (p->metrics != NULL)
    {
      u->has_metrics = TRUE;
      u->epoch = p->epoch;
      u->loss = job->epoch_steps > 0 ? job->epoch_loss / job->epoch_steps : p->loss;
      u->mining_iou = p->metrics->classes > 1 ? p->metrics->iou[1] : NAN;
      /* A class absent from both prediction and truth scores as a miss on the plot. */
      if (!isfinite (u->mining_iou))
        u->mining_iou = 0;
    }
  g_main_context_invoke_full (NULL, G_PRIORITY_DEFAULT, apply_update, u, update_free);
}

static Update *
update_new (TrainJob *job)
{
  g_autoptr(GObject) dialog = g_weak_ref_get (&job->dialog);
  Update *u;

  if (dialog == NULL)
    return NULL;
  u = g_new0 (Update, 1);
  g_weak_ref_init (&u->dialog, dialog);
  return u;
}

static void
on_encode_progress (guint done, guint total, gpointer user_data)
{
  Update *u = update_new (user_data);

  if (u == NULL)
    return;
  u->fraction = 0;
  /* Translators: SAM2 fine-tuning first encodes every patch it learns from */
  u->text = g_strdup_printf (_("Encoding patch %u of %u"), done, total);
  g_main_context_invoke_full (NULL, G_PRIORITY_DEFAULT, apply_update, u, update_free);
}

static void
on_tune_progress (const LodeSam2TuneProgress *p, gpointer user_data)
{
  TrainJob *job = user_data;
  Update *u = update_new (job);

  if (u == NULL)
    return;
  u->fraction = p->steps > 0 ? (double) p->step / p->steps : 0;
  /* Translators: SAM2 fine-tuning progress: step of steps, the loss and the time left */
  u->text = g_strdup_printf (_("Step %d of %d, loss %.4f, %.0f s left"), p->step, p->steps, p->loss,
                             p->seconds_left);
  u->has_step = TRUE;
  u->step = p->step;
  u->step_loss = p->loss;
  u->val_iou = NAN;
  if (isfinite (p->val_iou) && p->val_iou != job->sam2_val)
    u->val_iou = job->sam2_val = p->val_iou;
  g_main_context_invoke_full (NULL, G_PRIORITY_DEFAULT, apply_update, u, update_free);
}

static void
train_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  TrainJob *job = task_data;
  GError *error = NULL;
  gint64 id;

  if (job->sam2)
    id = lode_sam2_tune_project_run (job->project, &job->sam2_options, on_encode_progress, on_tune_progress,
                                     job, &job->sam2_report, cancellable, &error);
  else
    id = lode_train_project_run (job->project, &job->options, on_train_progress, job, &job->counts,
                                 cancellable, &error);

  if (id > 0)
    g_task_return_int (task, id);
  else
    g_task_return_error (task, error);
}

/* ---- the list of model versions ------------------------------------------- */

static char *
version_text (const LodeModelVersion *v)
{
  double mining, mean;
  g_autoptr(GDateTime) when = g_date_time_new_from_unix_local (v->created_us / G_USEC_PER_SEC);
  g_autofree char *date = when ? g_date_time_format (when, "%Y-%m-%d %H:%M") : g_strdup ("");

  if (v->kind == LODE_MODEL_SAM2)
    {
      if (lode_sam2_tune_project_read_metrics (v->metrics_json, &mining, &mean))
        /* Translators: a fine-tuned SAM2 model: its id, name, date, and its validation IoU before and after */
        return g_strdup_printf (_("#%" PRId64 " SAM2 %s · %s · validation IoU %.3f → %.3f"), v->id, v->name,
                                date, mining, mean);
      /* Translators: a SAM2 model with no metrics: its id, name and date */
      return g_strdup_printf (_("#%" PRId64 " SAM2 %s · %s · no metrics"), v->id, v->name, date);
    }
  if (lode_train_project_read_metrics (v->metrics_json, &mining, &mean))
    /* Translators: a model version: its id, name, date, and its validation scores */
    return g_strdup_printf (_("#%" PRId64 " %s · %s · mining IoU %.3f, mean IoU %.3f"), v->id, v->name, date,
                            mining, mean);
  /* Translators: a model version with no metrics: its id, name and date */
  return g_strdup_printf (_("#%" PRId64 " %s · %s · no metrics"), v->id, v->name, date);
}

static void
fill_versions (LodeTrainingDialog *self)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) store = lode_store_open (self->project, FALSE, &error);
  g_autoptr(GPtrArray) versions = store ? lode_store_list_model_versions (store, &error) : NULL;
  GtkWidget *child;

  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self->versions_list))) != NULL)
    gtk_list_box_remove (self->versions_list, child);
  self->n_versions = 0;
  if (versions == NULL)
    {
      g_warning ("model versions of %s: %s", self->project, error->message);
      return;
    }
  /* Newest first. */
  for (guint i = versions->len; i-- > 0;)
    {
      const LodeModelVersion *v = g_ptr_array_index (versions, i);
      g_autofree char *text = NULL;
      GtkWidget *label;

      if (v->kind != LODE_MODEL_UNET && v->kind != LODE_MODEL_SAM2)
        continue;
      text = version_text (v);
      label = gtk_label_new (text);
      gtk_label_set_xalign (GTK_LABEL (label), 0);
      gtk_label_set_ellipsize (GTK_LABEL (label), PANGO_ELLIPSIZE_MIDDLE);
      gtk_widget_set_margin_start (label, 6);
      gtk_widget_set_margin_end (label, 6);
      gtk_widget_set_margin_top (label, 4);
      gtk_widget_set_margin_bottom (label, 4);
      gtk_list_box_append (self->versions_list, label);
      self->n_versions++;
    }
}

static void
fill_classes (LodeTrainingDialog *self)
{
  g_autoptr(LodeStore) store = lode_store_open (self->project, FALSE, NULL);
  g_autofree char *json = store ? lode_store_get_class_table_json (store) : NULL;
  g_autoptr(LodeClassTable) table = json ? lode_class_table_from_json (json, NULL) : lode_class_table_new_binary ();
  g_autoptr(GString) s = g_string_new (NULL);

  for (guint k = 0; table != NULL && k < lode_class_table_size (table); k++)
    {
      if (k > 0)
        g_string_append (s, ", ");
      g_string_append (s, lode_class_table_get (table, k)->name);
    }
  gtk_label_set_label (self->classes_label, s->str);
}

/* ---- running -------------------------------------------------------------- */

static gboolean
is_sam2 (LodeTrainingDialog *self)
{
  return gtk_drop_down_get_selected (self->encoder_dropdown) == MODEL_SAM2;
}

/* SAM2's checkpoint from Preferences, NULL when none is chosen. */
static char *
sam2_checkpoint (LodeTrainingDialog *self)
{
  g_autofree char *path = g_settings_get_string (self->settings, "sam2-checkpoint");

  return path[0] != '\0' ? g_steal_pointer (&path) : NULL;
}

static int
sam2_input_size (LodeTrainingDialog *self)
{
  return g_settings_get_int (self->settings, "sam2-input-size") == 512 ? 512 : 1024;
}

static void
update_buttons (LodeTrainingDialog *self)
{
  gboolean running = lode_job_dialog_is_running (LODE_JOB_DIALOG (self));
  g_autofree char *checkpoint = sam2_checkpoint (self);

  gtk_button_set_label (self->cancel_button, running ? _("_Cancel") : _("_Close"));
  gtk_widget_set_sensitive (GTK_WIDGET (self->start_button), !running && (!is_sam2 (self) || checkpoint != NULL));
  gtk_widget_set_sensitive (GTK_WIDGET (self->use_button), !running);
  gtk_widget_set_sensitive (GTK_WIDGET (self->settings_grid), !running);
}

static void
on_train_done (GObject *source, GAsyncResult *result, gpointer data)
{
  LodeTrainingDialog *self = LODE_TRAINING_DIALOG (source);
  TrainJob *job = g_task_get_task_data (G_TASK (result));
  g_autoptr(GError) error = NULL;
  gboolean close_after = lode_job_dialog_end (LODE_JOB_DIALOG (self));
  gint64 id = g_task_propagate_int (G_TASK (result), &error);

  if (lode_job_dialog_is_disposed (LODE_JOB_DIALOG (self)))
    return;
  if (id <= 0)
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          gtk_progress_bar_set_text (self->progress_bar, _("Cancelled; no model version was added"));
          gtk_label_set_label (self->summary_label, "");
        }
      else
        {
          gtk_progress_bar_set_text (self->progress_bar, _("Failed"));
          gtk_label_set_label (self->summary_label, error->message);
          if (!close_after)
            /* Translators: %s is the project file */
            lode_error_dialog_show (GTK_WINDOW (self), _("The model cannot be trained"), error->message);
        }
    }
  else
    {
      g_autofree char *summary = NULL;

      self->last_version = id;
      self->last_is_sam2 = job->sam2;
      gtk_progress_bar_set_fraction (self->progress_bar, 1.0);
      gtk_progress_bar_set_text (self->progress_bar, _("Done"));
      if (job->sam2)
        {
          const LodeSam2TuneResult *r = &job->sam2_report.result;

          /* The final validation, after the last step. */
          lode_plot_add_point (self->plot, SERIES_SAM2_IOU, r->steps_done, r->val_iou_after);
          if (job->sam2_report.validation > 0)
            /* Translators: after SAM2 fine-tuning: the model version's id, the patches used, the IoU before and after */
            summary = g_strdup_printf (_("Model version %" PRId64 " added, fine-tuned on %u patches and validated "
                                         "on %u: validation IoU %.3f → %.3f."), id, job->sam2_report.train,
                                       job->sam2_report.validation, r->val_iou_before, r->val_iou_after);
          else
            /* Translators: after SAM2 fine-tuning with no patch of the test split */
            summary = g_strdup_printf (_("Model version %" PRId64 " added, fine-tuned on %u patches; no patch of "
                                         "the test split to validate on."), id, job->sam2_report.train);
          gtk_button_set_label (self->use_button, _("_Use as the SAM2 Checkpoint"));
          gtk_widget_set_visible (GTK_WIDGET (self->use_button), TRUE);
        }
      else
        /* Translators: after training: the new model version's id and the patches used */
        summary = g_strdup_printf (_("Model version %" PRId64 " added, trained on %u patches and validated on %u."),
                                   id, job->counts.train, job->counts.validation);
      gtk_label_set_label (self->summary_label, summary);
      fill_versions (self);
    }
  update_buttons (self);
  if (close_after)
    gtk_window_destroy (GTK_WINDOW (self));
}

gboolean
lode_training_dialog_start (LodeTrainingDialog *self)
{
  g_autoptr(GTask) task = NULL;
  GCancellable *cancellable;
  TrainJob *job;
  LodeUnetEncoder encoders[] = { LODE_UNET_RESNET18, LODE_UNET_RESNET34, LODE_UNET_RESNET50 };
  LodeTrainBandSet sets[] = { LODE_TRAIN_BANDS_6, LODE_TRAIN_BANDS_13, LODE_TRAIN_BANDS_RGB };
  guint e = gtk_drop_down_get_selected (self->encoder_dropdown);
  guint b = gtk_drop_down_get_selected (self->bands_dropdown);

  g_return_val_if_fail (LODE_IS_TRAINING_DIALOG (self), FALSE);
  if (lode_job_dialog_is_running (LODE_JOB_DIALOG (self)))
    return FALSE;
  job = g_new0 (TrainJob, 1);
  job->project = g_strdup (self->project);
  if (e == MODEL_SAM2)
    {
      job->checkpoint = sam2_checkpoint (self);
      if (job->checkpoint == NULL)
        {
          train_job_free (job);
          return FALSE;
        }
      job->sam2 = TRUE;
      job->sam2_val = NAN;
      lode_sam2_tune_project_options_init (&job->sam2_options);
      job->sam2_options.checkpoint = job->checkpoint;
      job->sam2_options.input_size = sam2_input_size (self);
      job->sam2_options.tune.steps = gtk_spin_button_get_value_as_int (self->steps_spin);
      job->sam2_options.tune.lr = gtk_spin_button_get_value (self->lr_spin);
      job->sam2_options.tune.val_every = MAX (1, job->sam2_options.tune.steps / 10);
    }
  lode_train_project_options_init (&job->options);
  job->options.config.encoder = encoders[MIN (e, G_N_ELEMENTS (encoders) - 1)];
  lode_train_config_set_bands (&job->options.config, sets[MIN (b, G_N_ELEMENTS (sets) - 1)]);
  job->options.config.epochs = gtk_spin_button_get_value_as_int (self->epochs_spin);
  job->options.config.lr = (float) gtk_spin_button_get_value (self->lr_spin);
  job->options.config.frozen_encoder = gtk_check_button_get_active (self->frozen_check);
  g_strlcpy (job->options.config.precision, lode_training_dialog_get_precision (self),
             sizeof job->options.config.precision);
  job->options.accepted_only = gtk_check_button_get_active (self->accepted_check);
  g_weak_ref_init (&job->dialog, self);

  cancellable = lode_job_dialog_begin (LODE_JOB_DIALOG (self));
  self->last_version = 0;
  gtk_widget_set_visible (GTK_WIDGET (self->use_button), FALSE);
  lode_plot_clear (self->plot);
  gtk_progress_bar_set_fraction (self->progress_bar, 0.0);
  gtk_progress_bar_set_text (self->progress_bar, job->sam2 ? _("Reading the checkpoint and the patches…")
                                                          : _("Reading the patches…"));
  gtk_label_set_label (self->summary_label, "");
  update_buttons (self);
  task = g_task_new (self, cancellable, on_train_done, NULL);
  g_task_set_source_tag (task, lode_training_dialog_start);
  /* The worker's own result: work it finished just before a cancel is reported as done. */
  g_task_set_check_cancellable (task, FALSE);
  g_task_set_task_data (task, job, (GDestroyNotify) train_job_free);
  lode_background_run_in_thread (task, train_thread);
  return TRUE;
}

void
lode_training_dialog_set_settings (LodeTrainingDialog *self,
                                   LodeUnetEncoder     encoder,
                                   LodeTrainBandSet    bands,
                                   int                 epochs,
                                   double              lr,
                                   gboolean            frozen_encoder)
{
  g_return_if_fail (LODE_IS_TRAINING_DIALOG (self));
  gtk_drop_down_set_selected (self->encoder_dropdown, encoder == LODE_UNET_RESNET50 ? 2
                                                      : encoder == LODE_UNET_RESNET34 ? 1 : 0);
  gtk_drop_down_set_selected (self->bands_dropdown, bands == LODE_TRAIN_BANDS_13 ? 1
                                                    : bands == LODE_TRAIN_BANDS_RGB ? 2 : 0);
  gtk_spin_button_set_value (self->epochs_spin, epochs);
  gtk_spin_button_set_value (self->lr_spin, lr);
  gtk_check_button_set_active (self->frozen_check, frozen_encoder);
}

void
lode_training_dialog_set_sam2_settings (LodeTrainingDialog *self,
                                        int                 steps,
                                        double              lr)
{
  g_return_if_fail (LODE_IS_TRAINING_DIALOG (self));
  gtk_drop_down_set_selected (self->encoder_dropdown, MODEL_SAM2);
  gtk_spin_button_set_value (self->steps_spin, steps);
  gtk_spin_button_set_value (self->lr_spin, lr);
}

gboolean
lode_training_dialog_use_as_sam2_checkpoint (LodeTrainingDialog *self)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) store = NULL;
  g_autoptr(LodeModelVersion) v = NULL;
  g_autofree char *path = NULL;

  g_return_val_if_fail (LODE_IS_TRAINING_DIALOG (self), FALSE);
  if (self->last_version <= 0 || !self->last_is_sam2)
    return FALSE;
  store = lode_store_open (self->project, FALSE, &error);
  v = store ? lode_store_get_model_version (store, self->last_version, &error) : NULL;
  if (v == NULL)
    {
      lode_error_dialog_show (GTK_WINDOW (self), _("The model version cannot be read"), error->message);
      return FALSE;
    }
  path = lode_store_resolve_path (store, v->path);
  g_settings_set_string (self->settings, "sam2-checkpoint", path);
  gtk_button_set_label (self->use_button, _("In use as the SAM2 checkpoint"));
  gtk_widget_set_sensitive (GTK_WIDGET (self->use_button), FALSE);
  return TRUE;
}

const char *
lode_training_dialog_get_note (LodeTrainingDialog *self)
{
  g_return_val_if_fail (LODE_IS_TRAINING_DIALOG (self), NULL);
  return gtk_widget_get_visible (GTK_WIDGET (self->sam2_note)) ? gtk_label_get_label (self->sam2_note) : "";
}

LodePlot *
lode_training_dialog_get_plot (LodeTrainingDialog *self)
{
  g_return_val_if_fail (LODE_IS_TRAINING_DIALOG (self), NULL);
  return self->plot;
}

guint
lode_training_dialog_get_n_versions (LodeTrainingDialog *self)
{
  g_return_val_if_fail (LODE_IS_TRAINING_DIALOG (self), 0);
  return self->n_versions;
}

gint64
lode_training_dialog_get_last_version (LodeTrainingDialog *self)
{
  g_return_val_if_fail (LODE_IS_TRAINING_DIALOG (self), 0);
  return self->last_version;
}

const char *
lode_training_dialog_get_summary (LodeTrainingDialog *self)
{
  g_return_val_if_fail (LODE_IS_TRAINING_DIALOG (self), NULL);
  return gtk_label_get_label (self->summary_label);
}

static void
on_start_clicked (GtkButton *button, LodeTrainingDialog *self)
{
  lode_training_dialog_start (self);
}

static void
on_use_clicked (GtkButton *button, LodeTrainingDialog *self)
{
  lode_training_dialog_use_as_sam2_checkpoint (self);
}

/* Shows the controls of the chosen kind of model and, for SAM2, where it
 * starts from. */
static void
update_model (LodeTrainingDialog *self)
{
  gboolean sam2 = is_sam2 (self);
  g_autofree char *checkpoint = sam2_checkpoint (self);

  gtk_widget_set_visible (self->bands_label, !sam2);
  gtk_widget_set_visible (GTK_WIDGET (self->bands_dropdown), !sam2);
  gtk_widget_set_visible (self->epochs_label, !sam2);
  gtk_widget_set_visible (GTK_WIDGET (self->epochs_spin), !sam2);
  gtk_widget_set_visible (GTK_WIDGET (self->frozen_check), !sam2);
  gtk_widget_set_visible (self->precision_label, !sam2);
  gtk_widget_set_visible (GTK_WIDGET (self->precision_dropdown), !sam2);
  gtk_widget_set_visible (GTK_WIDGET (self->accepted_check), !sam2);
  gtk_widget_set_visible (self->steps_label, sam2);
  gtk_widget_set_visible (GTK_WIDGET (self->steps_spin), sam2);
  gtk_widget_set_visible (GTK_WIDGET (self->sam2_note), sam2);
  if (checkpoint == NULL)
    gtk_label_set_label (self->sam2_note,
                         _("No SAM2 checkpoint is chosen. Choose one (a sam2.1_hiera_*.pt or .safetensors file) "
                           "in Preferences first: the fine-tuning starts from it and leaves it as it is."));
  else
    {
      g_autofree char *base = g_path_get_basename (checkpoint);
      g_autofree char *note = NULL;

      /* Translators: %s is the checkpoint's file name, %d the input size in pixels */
      note = g_strdup_printf (_("Starts from %s at %d pixels, as Preferences say. The image encoder stays frozen; "
                                "the prompt encoder and mask decoder learn from the masks, one random point a "
                                "class region (AdamW, weight decay 4e-5). The result is a new checkpoint "
                                "beside the project."), base, sam2_input_size (self));
      gtk_label_set_label (self->sam2_note, note);
    }
  update_buttons (self);
}

static void
on_model_changed (GtkDropDown *dropdown, GParamSpec *pspec, LodeTrainingDialog *self)
{
  gboolean sam2;
  double lr;

  if (self->steps_spin == NULL)   /* still being built */
    return;
  sam2 = is_sam2 (self);
  lr = gtk_spin_button_get_value (self->lr_spin);
  /* Each kind keeps its own learning rate: 1e-3 for the U-Net, 1e-5 for SAM2. */
  if (sam2 != (gtk_widget_get_visible (GTK_WIDGET (self->steps_spin))))
    {
      gtk_spin_button_set_value (self->lr_spin, self->other_lr);
      self->other_lr = lr;
    }
  update_model (self);
}

static void
on_sam2_settings_changed (GSettings *settings, const char *key, LodeTrainingDialog *self)
{
  update_model (self);
}

static void
lode_training_dialog_dispose (GObject *object)
{
  gtk_widget_dispose_template (GTK_WIDGET (object), LODE_TYPE_TRAINING_DIALOG);
  G_OBJECT_CLASS (lode_training_dialog_parent_class)->dispose (object);
}

static void
lode_training_dialog_finalize (GObject *object)
{
  g_free (LODE_TRAINING_DIALOG (object)->project);
  g_clear_object (&LODE_TRAINING_DIALOG (object)->settings);
  G_OBJECT_CLASS (lode_training_dialog_parent_class)->finalize (object);
}

static void
lode_training_dialog_class_init (LodeTrainingDialogClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = lode_training_dialog_dispose;
  object_class->finalize = lode_training_dialog_finalize;
  g_type_ensure (LODE_TYPE_PLOT);
  gtk_widget_class_set_template_from_resource (widget_class, "/org/lodeapp/Lode/lode-training-dialog.ui");
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, cancel_button);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, start_button);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, settings_grid);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, encoder_dropdown);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, bands_dropdown);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, bands_label);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, epochs_label);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, steps_label);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, steps_spin);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, sam2_note);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, use_button);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, classes_label);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, epochs_spin);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, lr_spin);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, frozen_check);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, precision_label);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, precision_dropdown);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, accepted_check);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, progress_bar);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, plot);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, summary_label);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, versions_list);
  lode_job_dialog_class_bind_cancel (widget_class);
  gtk_widget_class_bind_template_callback (widget_class, on_start_clicked);
  gtk_widget_class_bind_template_callback (widget_class, on_use_clicked);
  gtk_widget_class_bind_template_callback (widget_class, on_model_changed);
}

static void
lode_training_dialog_init (LodeTrainingDialog *self)
{
  GdkRGBA loss = { 0.85f, 0.45f, 0.1f, 1.0f }, iou = { 0.2f, 0.5f, 0.9f, 1.0f };
  GdkRGBA sam2_iou = { 0.15f, 0.65f, 0.45f, 1.0f };

  self->settings = g_settings_new (LODE_APP_ID);
  self->other_lr = 1e-5;
  gtk_widget_init_template (GTK_WIDGET (self));
  /* U-Nets train on the GPU when there is one; the arithmetic is a choice
   * only there */
  {
    LodeDeviceKind kind = lode_device_choose ("auto", NULL);
    g_autofree char *where = lode_device_describe (kind);
    g_autofree char *tip = kind == LODE_DEVICE_CUDA
      ? g_strdup_printf (_("U-Nets train on %s"), where)
      : g_strdup_printf (_("No CUDA device: U-Nets train on %s"), where);

    gtk_widget_set_sensitive (GTK_WIDGET (self->precision_dropdown), kind == LODE_DEVICE_CUDA);
    gtk_widget_set_tooltip_text (GTK_WIDGET (self->precision_dropdown), tip);
  }
  lode_plot_add_series (self->plot, _("Training loss"), &loss);
  lode_plot_add_series (self->plot, _("Validation mining IoU"), &iou);
  lode_plot_add_series (self->plot, _("Validation IoU, SAM2"), &sam2_iou);
  g_signal_connect_object (self->settings, "changed::sam2-checkpoint", G_CALLBACK (on_sam2_settings_changed),
                           self, 0);
  g_signal_connect_object (self->settings, "changed::sam2-input-size", G_CALLBACK (on_sam2_settings_changed),
                           self, 0);
}

const char *
lode_training_dialog_get_precision (LodeTrainingDialog *self)
{
  g_return_val_if_fail (LODE_IS_TRAINING_DIALOG (self), NULL);
  /* the rows of the drop-down are the LodePrecision values */
  if (!gtk_widget_get_sensitive (GTK_WIDGET (self->precision_dropdown)))
    return lode_precision_name (LODE_PRECISION_FP32);
  return lode_precision_name ((LodePrecision) MIN (gtk_drop_down_get_selected (self->precision_dropdown),
                                                   (guint) LODE_PRECISION_BF16));
}

void
lode_training_dialog_set_precision (LodeTrainingDialog *self,
                                    LodePrecision       precision)
{
  g_return_if_fail (LODE_IS_TRAINING_DIALOG (self));
  gtk_drop_down_set_selected (self->precision_dropdown, (guint) precision);
}

GtkWidget *
lode_training_dialog_new (GtkWindow *parent, const char *project)
{
  LodeTrainingDialog *self;

  g_return_val_if_fail (project != NULL, NULL);
  self = g_object_new (LODE_TYPE_TRAINING_DIALOG, "transient-for", parent, NULL);
  self->project = g_strdup (project);
  fill_classes (self);
  fill_versions (self);
  update_model (self);
  gtk_progress_bar_set_text (self->progress_bar, _("Ready"));
  return GTK_WIDGET (self);
}
