#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>
#include <inttypes.h>
#include <math.h>

#include "lode-classes.h"
#include "lode-error-dialog.h"
#include "lode-store.h"
#include "lode-training-dialog.h"

enum { SERIES_LOSS, SERIES_IOU };

struct _LodeTrainingDialog
{
  LodeJobDialog   parent_instance;

  /* template */
  GtkButton      *cancel_button;
  GtkButton      *start_button;
  GtkGrid        *settings_grid;
  GtkDropDown    *encoder_dropdown;
  GtkDropDown    *bands_dropdown;
  GtkLabel       *classes_label;
  GtkSpinButton  *epochs_spin;
  GtkSpinButton  *lr_spin;
  GtkCheckButton *frozen_check;
  GtkCheckButton *accepted_check;
  GtkProgressBar *progress_bar;
  LodePlot       *plot;
  GtkLabel       *summary_label;
  GtkListBox     *versions_list;

  char           *project;
  guint           n_versions;
  gint64          last_version;
};

G_DEFINE_FINAL_TYPE (LodeTrainingDialog, lode_training_dialog, LODE_TYPE_JOB_DIALOG)

/* ---- the worker ----------------------------------------------------------- */

typedef struct
{
  char                    *project;
  LodeTrainProjectOptions  options;
  LodeTrainProjectCounts   counts;
  GWeakRef                 dialog;
  double                   epoch_loss;   /* sum over the epoch's steps */
  gint64                   epoch_steps;
  int                      epoch;
} TrainJob;

static void
train_job_free (TrainJob *job)
{
  g_free (job->project);
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

static void
train_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  TrainJob *job = task_data;
  GError *error = NULL;
  gint64 id = lode_train_project_run (job->project, &job->options, on_train_progress, job, &job->counts,
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

      if (v->kind != LODE_MODEL_UNET)
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

static void
update_buttons (LodeTrainingDialog *self)
{
  gboolean running = lode_job_dialog_is_running (LODE_JOB_DIALOG (self));

  gtk_button_set_label (self->cancel_button, running ? _("_Cancel") : _("_Close"));
  gtk_widget_set_sensitive (GTK_WIDGET (self->start_button), !running);
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
      gtk_progress_bar_set_fraction (self->progress_bar, 1.0);
      gtk_progress_bar_set_text (self->progress_bar, _("Done"));
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
  lode_train_project_options_init (&job->options);
  job->options.config.encoder = encoders[MIN (e, G_N_ELEMENTS (encoders) - 1)];
  lode_train_config_set_bands (&job->options.config, sets[MIN (b, G_N_ELEMENTS (sets) - 1)]);
  job->options.config.epochs = gtk_spin_button_get_value_as_int (self->epochs_spin);
  job->options.config.lr = (float) gtk_spin_button_get_value (self->lr_spin);
  job->options.config.frozen_encoder = gtk_check_button_get_active (self->frozen_check);
  job->options.accepted_only = gtk_check_button_get_active (self->accepted_check);
  g_weak_ref_init (&job->dialog, self);

  cancellable = lode_job_dialog_begin (LODE_JOB_DIALOG (self));
  self->last_version = 0;
  lode_plot_clear (self->plot);
  gtk_progress_bar_set_fraction (self->progress_bar, 0.0);
  gtk_progress_bar_set_text (self->progress_bar, _("Reading the patches…"));
  gtk_label_set_label (self->summary_label, "");
  update_buttons (self);
  task = g_task_new (self, cancellable, on_train_done, NULL);
  g_task_set_source_tag (task, lode_training_dialog_start);
  /* The worker's own result: work it finished just before a cancel is reported as done. */
  g_task_set_check_cancellable (task, FALSE);
  g_task_set_task_data (task, job, (GDestroyNotify) train_job_free);
  g_task_run_in_thread (task, train_thread);
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
on_cancel_clicked (GtkButton *button, LodeJobDialog *self)
{
  lode_job_dialog_cancel_or_close (self);
}

static void
on_start_clicked (GtkButton *button, LodeTrainingDialog *self)
{
  lode_training_dialog_start (self);
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
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, classes_label);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, epochs_spin);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, lr_spin);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, frozen_check);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, accepted_check);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, progress_bar);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, plot);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, summary_label);
  gtk_widget_class_bind_template_child (widget_class, LodeTrainingDialog, versions_list);
  gtk_widget_class_bind_template_callback (widget_class, on_cancel_clicked);
  gtk_widget_class_bind_template_callback (widget_class, on_start_clicked);
}

static void
lode_training_dialog_init (LodeTrainingDialog *self)
{
  GdkRGBA loss = { 0.85f, 0.45f, 0.1f, 1.0f }, iou = { 0.2f, 0.5f, 0.9f, 1.0f };

  gtk_widget_init_template (GTK_WIDGET (self));
  lode_plot_add_series (self->plot, _("Training loss"), &loss);
  lode_plot_add_series (self->plot, _("Validation mining IoU"), &iou);
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
  gtk_progress_bar_set_text (self->progress_bar, _("Ready"));
  return GTK_WIDGET (self);
}
