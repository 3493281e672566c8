#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>
#include <inttypes.h>

#include "lode-background.h"
#include "lode-error-dialog.h"
#include "lode-prelabel-dialog.h"
#include "lode-progress-relay.h"
#include "lode-store.h"

struct _LodePrelabelDialog
{
  LodeJobDialog       parent_instance;

  /* template */
  GtkButton          *cancel_button;
  GtkButton          *start_button;
  GtkGrid            *settings_grid;
  GtkDropDown        *version_dropdown;
  GtkDropDown        *scope_dropdown;
  GtkCheckButton     *edited_check;
  GtkProgressBar     *progress_bar;
  GtkLabel           *summary_label;

  char               *project;
  GArray             *version_ids;   /* gint64, as in the drop-down */
  gboolean            has_report;
  LodePrelabelReport  report;
};

G_DEFINE_FINAL_TYPE (LodePrelabelDialog, lode_prelabel_dialog, LODE_TYPE_JOB_DIALOG)

enum { FINISHED, N_SIGNALS };
static guint signals[N_SIGNALS];

typedef struct
{
  char               *project;
  gint64              version_id;
  LodePrelabelScope   scope;
  gboolean            include_edited;
  LodePrelabelReport  report;
  LodeProgressRelay  *relay;
} PrelabelJob;

static void
prelabel_job_free (PrelabelJob *job)
{
  g_free (job->project);
  g_clear_pointer (&job->relay, lode_progress_relay_unref);
  g_free (job);
}

static void
prelabel_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  PrelabelJob *job = task_data;
  GError *error = NULL;

  if (lode_prelabel_run (job->project, job->version_id, NULL, job->scope, job->include_edited,
                         lode_progress_relay_report, job->relay, &job->report, cancellable, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

static void
update_buttons (LodePrelabelDialog *self)
{
  gboolean running = lode_job_dialog_is_running (LODE_JOB_DIALOG (self));

  gtk_button_set_label (self->cancel_button, running ? _("_Cancel") : _("_Close"));
  gtk_widget_set_sensitive (GTK_WIDGET (self->start_button), !running && self->version_ids->len > 0);
  gtk_widget_set_sensitive (GTK_WIDGET (self->settings_grid), !running);
}

static char *
summary_text (const LodePrelabelReport *r)
{
  GString *s = g_string_new (NULL);

  g_string_append_printf (s, g_dngettext (GETTEXT_PACKAGE, "%u patch pre-labelled", "%u patches pre-labelled",
                                          r->labelled), r->labelled);
  g_string_append (s, ", ");
  g_string_append_printf (s, g_dngettext (GETTEXT_PACKAGE, "%u edited by hand passed over",
                                          "%u edited by hand passed over", r->edited), r->edited);
  g_string_append (s, ", ");
  g_string_append_printf (s, g_dngettext (GETTEXT_PACKAGE, "%u outside the selection",
                                          "%u outside the selection", r->skipped), r->skipped);
  g_string_append (s, ".");
  if (r->failed > 0)
    {
      g_string_append (s, " ");
      g_string_append_printf (s, g_dngettext (GETTEXT_PACKAGE, "%u patch could not be read.",
                                              "%u patches could not be read.", r->failed), r->failed);
    }
  return g_string_free (s, FALSE);
}

static void
on_prelabel_done (GObject *source, GAsyncResult *result, gpointer data)
{
  LodePrelabelDialog *self = LODE_PRELABEL_DIALOG (source);
  PrelabelJob *job = g_task_get_task_data (G_TASK (result));
  g_autoptr(GError) error = NULL;
  g_autofree char *summary = NULL;
  gboolean close_after = lode_job_dialog_end (LODE_JOB_DIALOG (self));
  gboolean ok = g_task_propagate_boolean (G_TASK (result), &error);

  self->report = job->report;
  self->has_report = TRUE;
  if (lode_job_dialog_is_disposed (LODE_JOB_DIALOG (self)))
    return;
  summary = summary_text (&self->report);
  if (!ok && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      gtk_label_set_label (self->summary_label, summary);
      gtk_progress_bar_set_text (self->progress_bar, _("Cancelled; the pre-labels stored are kept"));
    }
  else if (!ok)
    {
      gtk_label_set_label (self->summary_label, error->message);
      gtk_progress_bar_set_text (self->progress_bar, _("Failed"));
      if (!close_after)
        lode_error_dialog_show (GTK_WINDOW (self), _("The patches cannot be pre-labelled"), error->message);
    }
  else
    {
      gtk_progress_bar_set_fraction (self->progress_bar, 1.0);
      gtk_progress_bar_set_text (self->progress_bar, _("Done"));
      gtk_label_set_label (self->summary_label, summary);
    }
  update_buttons (self);
  if (self->report.labelled > 0)
    g_signal_emit (self, signals[FINISHED], 0);
  if (close_after)
    gtk_window_destroy (GTK_WINDOW (self));
}

gboolean
lode_prelabel_dialog_start (LodePrelabelDialog *self)
{
  static const LodePrelabelScope scopes[] = { LODE_PRELABEL_UNLABELLED, LODE_PRELABEL_UNREVIEWED, LODE_PRELABEL_ALL };
  g_autoptr(GTask) task = NULL;
  GCancellable *cancellable;
  PrelabelJob *job;
  guint v = gtk_drop_down_get_selected (self->version_dropdown);
  guint s = gtk_drop_down_get_selected (self->scope_dropdown);

  g_return_val_if_fail (LODE_IS_PRELABEL_DIALOG (self), FALSE);
  if (lode_job_dialog_is_running (LODE_JOB_DIALOG (self)) || v >= self->version_ids->len)
    return FALSE;
  job = g_new0 (PrelabelJob, 1);
  job->project = g_strdup (self->project);
  job->version_id = g_array_index (self->version_ids, gint64, v);
  job->scope = scopes[MIN (s, G_N_ELEMENTS (scopes) - 1)];
  job->include_edited = gtk_check_button_get_active (self->edited_check);
  job->relay = lode_progress_relay_new (self->progress_bar);
  cancellable = lode_job_dialog_begin (LODE_JOB_DIALOG (self));
  self->has_report = FALSE;
  gtk_progress_bar_set_fraction (self->progress_bar, 0.0);
  gtk_progress_bar_set_text (self->progress_bar, _("Starting…"));
  gtk_label_set_label (self->summary_label, "");
  update_buttons (self);
  task = g_task_new (self, cancellable, on_prelabel_done, NULL);
  g_task_set_source_tag (task, lode_prelabel_dialog_start);
  /* The worker's own result: work it finished just before a cancel is reported as done. */
  g_task_set_check_cancellable (task, FALSE);
  g_task_set_task_data (task, job, (GDestroyNotify) prelabel_job_free);
  lode_background_run_in_thread (task, prelabel_thread);
  return TRUE;
}

static void
fill_versions (LodePrelabelDialog *self)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) store = lode_store_open (self->project, FALSE, &error);
  g_autoptr(GPtrArray) versions = store ? lode_store_list_model_versions (store, &error) : NULL;
  g_autoptr(GtkStringList) names = gtk_string_list_new (NULL);

  g_array_set_size (self->version_ids, 0);
  if (versions == NULL)
    g_warning ("model versions of %s: %s", self->project, error->message);
  for (guint i = versions ? versions->len : 0; i-- > 0;)
    {
      const LodeModelVersion *mv = g_ptr_array_index (versions, i);
      g_autofree char *text = NULL;

      if (mv->kind != LODE_MODEL_UNET)
        continue;
      /* Translators: a model version in the drop-down: its id and name */
      text = g_strdup_printf (_("#%" PRId64 " %s"), mv->id, mv->name);
      gtk_string_list_append (names, text);
      g_array_append_val (self->version_ids, mv->id);
    }
  gtk_drop_down_set_model (self->version_dropdown, G_LIST_MODEL (names));
  if (self->version_ids->len == 0)
    gtk_label_set_label (self->summary_label, _("The project has no trained model yet: train one first (Ctrl+T)."));
}

guint
lode_prelabel_dialog_get_n_versions (LodePrelabelDialog *self)
{
  g_return_val_if_fail (LODE_IS_PRELABEL_DIALOG (self), 0);
  return self->version_ids->len;
}

gboolean
lode_prelabel_dialog_select_version (LodePrelabelDialog *self, gint64 id)
{
  g_return_val_if_fail (LODE_IS_PRELABEL_DIALOG (self), FALSE);
  for (guint i = 0; i < self->version_ids->len; i++)
    if (g_array_index (self->version_ids, gint64, i) == id)
      {
        gtk_drop_down_set_selected (self->version_dropdown, i);
        return TRUE;
      }
  return FALSE;
}

void
lode_prelabel_dialog_set_scope (LodePrelabelDialog *self, LodePrelabelScope scope, gboolean include_edited)
{
  g_return_if_fail (LODE_IS_PRELABEL_DIALOG (self));
  gtk_drop_down_set_selected (self->scope_dropdown, scope == LODE_PRELABEL_UNLABELLED ? 0
                                                    : scope == LODE_PRELABEL_UNREVIEWED ? 1 : 2);
  gtk_check_button_set_active (self->edited_check, include_edited);
}

const LodePrelabelReport *
lode_prelabel_dialog_get_report (LodePrelabelDialog *self)
{
  g_return_val_if_fail (LODE_IS_PRELABEL_DIALOG (self), NULL);
  return self->has_report ? &self->report : NULL;
}

const char *
lode_prelabel_dialog_get_summary (LodePrelabelDialog *self)
{
  g_return_val_if_fail (LODE_IS_PRELABEL_DIALOG (self), NULL);
  return gtk_label_get_label (self->summary_label);
}

static void
on_start_clicked (GtkButton *button, LodePrelabelDialog *self)
{
  lode_prelabel_dialog_start (self);
}

static void
lode_prelabel_dialog_dispose (GObject *object)
{
  gtk_widget_dispose_template (GTK_WIDGET (object), LODE_TYPE_PRELABEL_DIALOG);
  G_OBJECT_CLASS (lode_prelabel_dialog_parent_class)->dispose (object);
}

static void
lode_prelabel_dialog_finalize (GObject *object)
{
  LodePrelabelDialog *self = LODE_PRELABEL_DIALOG (object);

  g_free (self->project);
  g_array_unref (self->version_ids);
  G_OBJECT_CLASS (lode_prelabel_dialog_parent_class)->finalize (object);
}

static void
lode_prelabel_dialog_class_init (LodePrelabelDialogClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = lode_prelabel_dialog_dispose;
  object_class->finalize = lode_prelabel_dialog_finalize;
  signals[FINISHED] = g_signal_new ("finished", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                                    NULL, NULL, NULL, G_TYPE_NONE, 0);
  gtk_widget_class_set_template_from_resource (widget_class, "/org/lodeapp/Lode/lode-prelabel-dialog.ui");
  gtk_widget_class_bind_template_child (widget_class, LodePrelabelDialog, cancel_button);
  gtk_widget_class_bind_template_child (widget_class, LodePrelabelDialog, start_button);
  gtk_widget_class_bind_template_child (widget_class, LodePrelabelDialog, settings_grid);
  gtk_widget_class_bind_template_child (widget_class, LodePrelabelDialog, version_dropdown);
  gtk_widget_class_bind_template_child (widget_class, LodePrelabelDialog, scope_dropdown);
  gtk_widget_class_bind_template_child (widget_class, LodePrelabelDialog, edited_check);
  gtk_widget_class_bind_template_child (widget_class, LodePrelabelDialog, progress_bar);
  gtk_widget_class_bind_template_child (widget_class, LodePrelabelDialog, summary_label);
  lode_job_dialog_class_bind_cancel (widget_class);
  gtk_widget_class_bind_template_callback (widget_class, on_start_clicked);
}

static void
lode_prelabel_dialog_init (LodePrelabelDialog *self)
{
  self->version_ids = g_array_new (FALSE, FALSE, sizeof (gint64));
  gtk_widget_init_template (GTK_WIDGET (self));
}

GtkWidget *
lode_prelabel_dialog_new (GtkWindow *parent, const char *project)
{
  LodePrelabelDialog *self;

  g_return_val_if_fail (project != NULL, NULL);
  self = g_object_new (LODE_TYPE_PRELABEL_DIALOG, "transient-for", parent, NULL);
  self->project = g_strdup (project);
  fill_versions (self);
  update_buttons (self);
  return GTK_WIDGET (self);
}
