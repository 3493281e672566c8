#define G_LOG_DOMAIN "lode-ui"

#include "config.h"

#include <glib/gi18n.h>
#include <glib/gstdio.h>

#include "lode-background.h"
#include "lode-error-dialog.h"
#include "lode-import-dialog.h"
#include "lode-import.h"
#include "lode-progress-relay.h"
#include "lode-store.h"

struct _LodeImportDialog
{
  LodeJobDialog   parent_instance;

  GtkButton      *cancel_button;
  GtkButton      *import_button;
  GtkButton      *source_button;
  GtkButton      *project_button;
  GtkDropDown    *masks_dropdown;
  GtkProgressBar *progress_bar;
  GtkLabel       *summary_label;

  char           *source;
  char           *project;
};

enum {
  SIGNAL_IMPORTED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (LodeImportDialog, lode_import_dialog, LODE_TYPE_JOB_DIALOG)

typedef struct
{
  char            *source;
  char            *project;
  LodeImportMasks  masks;
  gboolean         existed;
  LodeProgressRelay *relay;
  LodeImportReport report;
} ImportJob;

static void
import_job_free (ImportJob *job)
{
  g_free (job->source);
  g_free (job->project);
  g_clear_pointer (&job->relay, lode_progress_relay_unref);
  lode_import_report_clear (&job->report);
  g_free (job);
}

static void
remove_project_files (const char *path)
{
  const char *suffixes[] = { "", "-wal", "-shm", "-journal" };

  for (guint i = 0; i < G_N_ELEMENTS (suffixes); i++)
    {
      g_autofree char *p = g_strconcat (path, suffixes[i], NULL);
      g_remove (p);
    }
}

static void
import_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  ImportJob *job = task_data;
  LodeImportOptions options;
  GError *error = NULL;
  gboolean ok = FALSE;
  LodeStore *store;

  store = lode_store_open (job->project, TRUE, &error);
  if (store != NULL)
    {
      lode_import_options_init (&options);
      options.masks = job->masks;
      if (lode_import_is_smallminesds (job->source))
        ok = lode_import_smallminesds (store, job->source, &options, &job->report,
                                       lode_progress_relay_report, job->relay, cancellable, &error);
      else
        ok = lode_import_folder (store, job->source, &options, &job->report,
                                 lode_progress_relay_report, job->relay, cancellable, &error);
      lode_store_close (store);
    }
  if (!ok)
    {
      if (!job->existed)
        remove_project_files (job->project);
      g_task_return_error (task, error);
      return;
    }
  g_task_return_boolean (task, TRUE);
}

static void
update_sensitivity (LodeImportDialog *self)
{
  gboolean running = lode_job_dialog_is_running (LODE_JOB_DIALOG (self));

  gtk_widget_set_sensitive (GTK_WIDGET (self->import_button),
                            !running && self->source != NULL && self->project != NULL);
  gtk_widget_set_sensitive (GTK_WIDGET (self->source_button), !running);
  gtk_widget_set_sensitive (GTK_WIDGET (self->project_button), !running);
  gtk_widget_set_sensitive (GTK_WIDGET (self->masks_dropdown), !running);
}

static void
on_import_done (GObject *source, GAsyncResult *result, gpointer data)
{
  LodeImportDialog *self = LODE_IMPORT_DIALOG (source);
  ImportJob *job = g_task_get_task_data (G_TASK (result));
  g_autoptr(GError) error = NULL;
  g_autofree char *summary = NULL;

  gboolean close_after = lode_job_dialog_end (LODE_JOB_DIALOG (self));

  if (lode_job_dialog_is_disposed (LODE_JOB_DIALOG (self)))
    return;
  update_sensitivity (self);
  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      gtk_widget_set_visible (GTK_WIDGET (self->progress_bar), FALSE);
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        gtk_label_set_label (self->summary_label, _("Import cancelled; nothing was added."));
      else
        {
          g_autofree char *primary = g_strdup_printf (_("“%s” cannot be imported"), job->source);
          gtk_label_set_label (self->summary_label, error->message);
          if (!close_after)
            lode_error_dialog_show (GTK_WINDOW (self), primary, error->message);
        }
      if (close_after)
        gtk_window_destroy (GTK_WINDOW (self));
      return;
    }
  gtk_progress_bar_set_fraction (self->progress_bar, 1.0);
  summary = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%u patch imported, %u set aside as odd",
                                          "%u patches imported, %u set aside as odd", job->report.n_patches),
                             job->report.n_patches, job->report.odd ? job->report.odd->len : 0);
  gtk_label_set_label (self->summary_label, summary);
  g_signal_emit (self, signals[SIGNAL_IMPORTED], 0, job->project);
  gtk_window_destroy (GTK_WINDOW (self));
}

gboolean
lode_import_dialog_start (LodeImportDialog *self)
{
  g_autoptr(GTask) task = NULL;
  GCancellable *cancellable;
  ImportJob *job;

  g_return_val_if_fail (LODE_IS_IMPORT_DIALOG (self), FALSE);
  if (lode_job_dialog_is_running (LODE_JOB_DIALOG (self)) || self->source == NULL || self->project == NULL)
    return FALSE;

  cancellable = lode_job_dialog_begin (LODE_JOB_DIALOG (self));
  job = g_new0 (ImportJob, 1);
  job->source = g_strdup (self->source);
  job->project = g_strdup (self->project);
  job->masks = gtk_drop_down_get_selected (self->masks_dropdown) == 1 ? LODE_IMPORT_MASKS_COCOA
                                                                       : LODE_IMPORT_MASKS_BINARY;
  job->existed = g_file_test (job->project, G_FILE_TEST_EXISTS);
  job->relay = lode_progress_relay_new (self->progress_bar);
  lode_import_report_init (&job->report);

  gtk_widget_set_visible (GTK_WIDGET (self->progress_bar), TRUE);
  gtk_progress_bar_set_fraction (self->progress_bar, 0.0);
  gtk_progress_bar_set_text (self->progress_bar, _("Starting…"));
  gtk_label_set_label (self->summary_label, "");
  update_sensitivity (self);

  task = g_task_new (self, cancellable, on_import_done, NULL);
  g_task_set_source_tag (task, lode_import_dialog_start);
  /* The worker's own result: work it finished just before a cancel is reported as done. */
  g_task_set_check_cancellable (task, FALSE);
  g_task_set_task_data (task, job, (GDestroyNotify) import_job_free);
  lode_background_run_in_thread (task, import_thread);
  return TRUE;
}

static void
set_button_path (GtkButton *button, const char *path)
{
  g_autofree char *name = g_path_get_basename (path);
  gtk_button_set_label (button, name);
  gtk_widget_set_tooltip_text (GTK_WIDGET (button), path);
}

void
lode_import_dialog_set_source (LodeImportDialog *self, const char *folder)
{
  g_return_if_fail (LODE_IS_IMPORT_DIALOG (self));
  g_free (self->source);
  self->source = g_strdup (folder);
  set_button_path (self->source_button, folder);
  gtk_label_set_label (self->summary_label,
                       lode_import_is_smallminesds (folder) ? _("SmallMinesDS layout found.")
                                                            : _("A folder of GeoTIFF patches."));
  update_sensitivity (self);
}

void
lode_import_dialog_set_project (LodeImportDialog *self, const char *path)
{
  g_return_if_fail (LODE_IS_IMPORT_DIALOG (self));
  g_free (self->project);
  self->project = g_str_has_suffix (path, LODE_STORE_EXTENSION) ? g_strdup (path)
                                                                : g_strconcat (path, LODE_STORE_EXTENSION, NULL);
  set_button_path (self->project_button, self->project);
  update_sensitivity (self);
}

static void
on_chooser_response (GtkNativeDialog *chooser, int response, LodeImportDialog *self)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr(GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (chooser));
      g_autofree char *path = g_file_get_path (file);

      if (path == NULL)
        lode_error_dialog_show (GTK_WINDOW (self), _("Only folders and files on a local disk can be used"),
                    g_file_peek_path (file) ? g_file_peek_path (file) : "");
      else if (gtk_file_chooser_get_action (GTK_FILE_CHOOSER (chooser)) == GTK_FILE_CHOOSER_ACTION_SELECT_FOLDER)
        lode_import_dialog_set_source (self, path);
      else
        lode_import_dialog_set_project (self, path);
    }
  g_object_unref (chooser);
}

static void
on_source_clicked (GtkButton *button, LodeImportDialog *self)
{
  GtkFileChooserNative *chooser = gtk_file_chooser_native_new (_("Choose the Data Set Folder"), GTK_WINDOW (self),
                                                               GTK_FILE_CHOOSER_ACTION_SELECT_FOLDER,
                                                               _("_Select"), _("_Cancel"));
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (chooser), TRUE);
  g_signal_connect (chooser, "response", G_CALLBACK (on_chooser_response), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (chooser));
}

static void
on_project_clicked (GtkButton *button, LodeImportDialog *self)
{
  GtkFileChooserNative *chooser = gtk_file_chooser_native_new (_("New Project File"), GTK_WINDOW (self),
                                                               GTK_FILE_CHOOSER_ACTION_SAVE,
                                                               _("_Create"), _("_Cancel"));
  gtk_file_chooser_set_current_name (GTK_FILE_CHOOSER (chooser), "project.lode");
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (chooser), TRUE);
  g_signal_connect (chooser, "response", G_CALLBACK (on_chooser_response), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (chooser));
}

static void
on_import_clicked (GtkButton *button, LodeImportDialog *self)
{
  lode_import_dialog_start (self);
}

static void
lode_import_dialog_dispose (GObject *object)
{
  LodeImportDialog *self = LODE_IMPORT_DIALOG (object);

  gtk_widget_dispose_template (GTK_WIDGET (self), LODE_TYPE_IMPORT_DIALOG);
  G_OBJECT_CLASS (lode_import_dialog_parent_class)->dispose (object);
}

static void
lode_import_dialog_finalize (GObject *object)
{
  LodeImportDialog *self = LODE_IMPORT_DIALOG (object);

  g_free (self->source);
  g_free (self->project);
  G_OBJECT_CLASS (lode_import_dialog_parent_class)->finalize (object);
}

static void
lode_import_dialog_class_init (LodeImportDialogClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = lode_import_dialog_dispose;
  object_class->finalize = lode_import_dialog_finalize;

  signals[SIGNAL_IMPORTED] =
    g_signal_new ("imported", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, G_TYPE_STRING);

  gtk_widget_class_set_template_from_resource (widget_class, "/org/lodeapp/Lode/lode-import-dialog.ui");
  gtk_widget_class_bind_template_child (widget_class, LodeImportDialog, cancel_button);
  gtk_widget_class_bind_template_child (widget_class, LodeImportDialog, import_button);
  gtk_widget_class_bind_template_child (widget_class, LodeImportDialog, source_button);
  gtk_widget_class_bind_template_child (widget_class, LodeImportDialog, project_button);
  gtk_widget_class_bind_template_child (widget_class, LodeImportDialog, masks_dropdown);
  gtk_widget_class_bind_template_child (widget_class, LodeImportDialog, progress_bar);
  gtk_widget_class_bind_template_child (widget_class, LodeImportDialog, summary_label);
  gtk_widget_class_bind_template_callback (widget_class, on_source_clicked);
  gtk_widget_class_bind_template_callback (widget_class, on_project_clicked);
  gtk_widget_class_bind_template_callback (widget_class, on_import_clicked);
  lode_job_dialog_class_bind_cancel (widget_class);
}

static void
lode_import_dialog_init (LodeImportDialog *self)
{
  const char *masks[] = { _("SmallMinesDS (mining / not mining)"), _("Cocoa companion (background, mining, cocoa)"),
                          NULL };

  gtk_widget_init_template (GTK_WIDGET (self));
  gtk_drop_down_set_model (self->masks_dropdown, G_LIST_MODEL (gtk_string_list_new (masks)));
  g_object_unref (gtk_drop_down_get_model (self->masks_dropdown));
}

GtkWidget *
lode_import_dialog_new (GtkWindow *parent)
{
  return g_object_new (LODE_TYPE_IMPORT_DIALOG, "transient-for", parent, NULL);
}
