#define G_LOG_DOMAIN "lode-ui"

#include "config.h"

#include <inttypes.h>

#include <glib/gi18n.h>

#include "lode-background.h"
#include "lode-error-dialog.h"
#include "lode-export-dialog.h"
#include "lode-progress-relay.h"
#include "lode-store.h"

struct _LodeExportDialog
{
  LodeJobDialog     parent_instance;

  /* template */
  GtkButton        *cancel_button;
  GtkButton        *export_button;
  GtkButton        *folder_button;
  GtkWidget        *formats_box;
  GtkCheckButton   *masks_check;
  GtkCheckButton   *splits_check;
  GtkCheckButton   *manifest_check;
  GtkCheckButton   *gpkg_check;
  GtkCheckButton   *terratorch_check;
  GtkDropDown      *bands_dropdown;
  GtkCheckButton   *accepted_check;
  GtkProgressBar   *progress_bar;
  GtkLabel         *summary_label;

  char             *project;
  char             *folder;
  gboolean          has_report;
  LodeExportReport  report;
};

G_DEFINE_FINAL_TYPE (LodeExportDialog, lode_export_dialog, LODE_TYPE_JOB_DIALOG)

typedef struct
{
  char              *project;
  char              *folder;
  LodeExportOptions  options;
  LodeExportReport   report;
  LodeProgressRelay *relay;
} ExportJob;

static void
export_job_free (ExportJob *job)
{
  g_free (job->project);
  g_free (job->folder);
  g_clear_pointer (&job->relay, lode_progress_relay_unref);
  g_free (job);
}

/* The worker: a connection of its own, closed before the thread ends. */
static void
export_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  ExportJob *job = task_data;
  GError *error = NULL;
  LodeStore *store;
  gboolean ok = FALSE;

  store = lode_store_open (job->project, FALSE, &error);
  if (store != NULL)
    {
      ok = lode_export_run (store, job->folder, &job->options, &job->report,
                            lode_progress_relay_report, job->relay, cancellable, &error);
      lode_store_close (store);
    }
  if (!ok)
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

static const struct
{
  LodeExportFormats format;
  gsize             offset;
} format_checks[] = {
  { LODE_EXPORT_MASKS, G_STRUCT_OFFSET (LodeExportDialog, masks_check) },
  { LODE_EXPORT_SPLITS, G_STRUCT_OFFSET (LodeExportDialog, splits_check) },
  { LODE_EXPORT_MANIFEST, G_STRUCT_OFFSET (LodeExportDialog, manifest_check) },
  { LODE_EXPORT_GPKG, G_STRUCT_OFFSET (LodeExportDialog, gpkg_check) },
  { LODE_EXPORT_TERRATORCH, G_STRUCT_OFFSET (LodeExportDialog, terratorch_check) },
};

static GtkCheckButton *
format_check (LodeExportDialog *self, guint i)
{
  return G_STRUCT_MEMBER (GtkCheckButton *, self, format_checks[i].offset);
}

void
lode_export_dialog_get_options (LodeExportDialog *self, LodeExportOptions *options)
{
  g_return_if_fail (LODE_IS_EXPORT_DIALOG (self));
  g_return_if_fail (options != NULL);

  lode_export_options_init (options);
  options->formats = 0;
  for (guint i = 0; i < G_N_ELEMENTS (format_checks); i++)
    if (gtk_check_button_get_active (format_check (self, i)))
      options->formats |= format_checks[i].format;
  options->accepted_only = gtk_check_button_get_active (self->accepted_check);
  options->bands = gtk_drop_down_get_selected (self->bands_dropdown) == 1 ? LODE_EXPORT_BANDS_SIX
                                                                          : LODE_EXPORT_BANDS_ALL;
}

void
lode_export_dialog_set_options (LodeExportDialog *self, const LodeExportOptions *options)
{
  g_return_if_fail (LODE_IS_EXPORT_DIALOG (self));
  g_return_if_fail (options != NULL);

  for (guint i = 0; i < G_N_ELEMENTS (format_checks); i++)
    gtk_check_button_set_active (format_check (self, i), (options->formats & format_checks[i].format) != 0);
  gtk_check_button_set_active (self->accepted_check, options->accepted_only);
  gtk_drop_down_set_selected (self->bands_dropdown, options->bands == LODE_EXPORT_BANDS_SIX ? 1 : 0);
}

static void
update_sensitivity (LodeExportDialog *self)
{
  gboolean running = lode_job_dialog_is_running (LODE_JOB_DIALOG (self));
  LodeExportOptions options;

  lode_export_dialog_get_options (self, &options);
  gtk_widget_set_sensitive (GTK_WIDGET (self->export_button),
                            !running && self->folder != NULL && options.formats != 0);
  gtk_widget_set_sensitive (GTK_WIDGET (self->folder_button), !running);
  gtk_widget_set_sensitive (self->formats_box, !running);
  gtk_widget_set_sensitive (GTK_WIDGET (self->accepted_check), !running);
  gtk_widget_set_sensitive (GTK_WIDGET (self->bands_dropdown),
                            !running && (options.formats & LODE_EXPORT_TERRATORCH) != 0);
  gtk_button_set_label (self->cancel_button, running || !self->has_report ? _("_Cancel") : _("_Close"));
}

static char *
summary_text (const LodeExportReport *r)
{
  GString *s = g_string_new (NULL);

  g_string_append_printf (s, g_dngettext (GETTEXT_PACKAGE, "%u patch exported", "%u patches exported",
                                          r->n_exported), r->n_exported);
  g_string_append (s, ", ");
  /* Translators: how many exported masks differ from the imported ones, and by how many pixels */
  g_string_append_printf (s, g_dngettext (GETTEXT_PACKAGE, "%u corrected (%" PRIu64 " pixels changed)",
                                          "%u corrected (%" PRIu64 " pixels changed)", r->n_changed),
                          r->n_changed, r->changed_pixels);
  g_string_append (s, ", ");
  g_string_append_printf (s, g_dngettext (GETTEXT_PACKAGE, "%u file written", "%u files written", r->n_files),
                          r->n_files);
  g_string_append (s, ".");
  if (r->n_without_mask > 0)
    {
      g_string_append (s, " ");
      g_string_append_printf (s, g_dngettext (GETTEXT_PACKAGE, "%u patch without a mask left out.",
                                              "%u patches without a mask left out.", r->n_without_mask),
                              r->n_without_mask);
    }
  if (r->n_not_accepted > 0)
    {
      g_string_append (s, " ");
      g_string_append_printf (s, g_dngettext (GETTEXT_PACKAGE, "%u patch not accepted left out.",
                                              "%u patches not accepted left out.", r->n_not_accepted),
                              r->n_not_accepted);
    }
  return g_string_free (s, FALSE);
}

static void
on_export_done (GObject *source, GAsyncResult *result, gpointer data)
{
  LodeExportDialog *self = LODE_EXPORT_DIALOG (source);
  ExportJob *job = g_task_get_task_data (G_TASK (result));
  g_autoptr(GError) error = NULL;
  g_autofree char *summary = NULL;

  gboolean close_after = lode_job_dialog_end (LODE_JOB_DIALOG (self));

  if (lode_job_dialog_is_disposed (LODE_JOB_DIALOG (self)))
    return;
  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      gtk_widget_set_visible (GTK_WIDGET (self->progress_bar), FALSE);
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        gtk_label_set_label (self->summary_label,
                             _("Export cancelled; files already complete stay in the folder, none is partial."));
      else
        {
          /* Translators: %s is the export folder */
          g_autofree char *primary = g_strdup_printf (_("The export to “%s” failed"), job->folder);

          gtk_label_set_label (self->summary_label, error->message);
          if (!close_after)
            lode_error_dialog_show (GTK_WINDOW (self), primary, error->message);
        }
      update_sensitivity (self);
      if (close_after)
        gtk_window_destroy (GTK_WINDOW (self));
      return;
    }
  self->report = job->report;
  self->has_report = TRUE;
  gtk_progress_bar_set_fraction (self->progress_bar, 1.0);
  gtk_progress_bar_set_text (self->progress_bar, _("Done"));
  summary = summary_text (&self->report);
  gtk_label_set_label (self->summary_label, summary);
  update_sensitivity (self);
  if (close_after)
    gtk_window_destroy (GTK_WINDOW (self));
}

gboolean
lode_export_dialog_start (LodeExportDialog *self)
{
  g_autoptr(GTask) task = NULL;
  GCancellable *cancellable;
  ExportJob *job;

  g_return_val_if_fail (LODE_IS_EXPORT_DIALOG (self), FALSE);

  job = g_new0 (ExportJob, 1);
  lode_export_dialog_get_options (self, &job->options);
  if (lode_job_dialog_is_running (LODE_JOB_DIALOG (self)) || self->folder == NULL || job->options.formats == 0)
    {
      export_job_free (job);
      return FALSE;
    }
  job->project = g_strdup (self->project);
  job->folder = g_strdup (self->folder);
  job->relay = lode_progress_relay_new (self->progress_bar);
  cancellable = lode_job_dialog_begin (LODE_JOB_DIALOG (self));
  self->has_report = FALSE;

  gtk_widget_set_visible (GTK_WIDGET (self->progress_bar), TRUE);
  gtk_progress_bar_set_fraction (self->progress_bar, 0.0);
  gtk_progress_bar_set_text (self->progress_bar, _("Starting…"));
  gtk_label_set_label (self->summary_label, "");
  update_sensitivity (self);

  task = g_task_new (self, cancellable, on_export_done, NULL);
  g_task_set_source_tag (task, lode_export_dialog_start);
  /* The worker's own result: work it finished just before a cancel is reported as done. */
  g_task_set_check_cancellable (task, FALSE);
  g_task_set_task_data (task, job, (GDestroyNotify) export_job_free);
  lode_background_run_in_thread (task, export_thread);
  return TRUE;
}

const LodeExportReport *
lode_export_dialog_get_report (LodeExportDialog *self)
{
  g_return_val_if_fail (LODE_IS_EXPORT_DIALOG (self), NULL);
  return self->has_report ? &self->report : NULL;
}

const char *
lode_export_dialog_get_summary (LodeExportDialog *self)
{
  g_return_val_if_fail (LODE_IS_EXPORT_DIALOG (self), NULL);
  return gtk_label_get_label (self->summary_label);
}

void
lode_export_dialog_set_folder (LodeExportDialog *self, const char *folder)
{
  g_autofree char *name = NULL;

  g_return_if_fail (LODE_IS_EXPORT_DIALOG (self));
  g_return_if_fail (folder != NULL);

  g_free (self->folder);
  self->folder = g_strdup (folder);
  name = g_path_get_basename (folder);
  gtk_button_set_label (self->folder_button, name);
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->folder_button), folder);
  update_sensitivity (self);
}

static void
on_chooser_response (GtkNativeDialog *chooser, int response, LodeExportDialog *self)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr(GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (chooser));
      g_autofree char *path = g_file_get_path (file);

      if (path == NULL)
        lode_error_dialog_show (GTK_WINDOW (self), _("Only folders on a local disk can be used"),
                                g_file_peek_path (file) ? g_file_peek_path (file) : "");
      else
        lode_export_dialog_set_folder (self, path);
    }
  g_object_unref (chooser);
}

static void
on_folder_clicked (GtkButton *button, LodeExportDialog *self)
{
  GtkFileChooserNative *chooser = gtk_file_chooser_native_new (_("Choose the Export Folder"), GTK_WINDOW (self),
                                                               GTK_FILE_CHOOSER_ACTION_SELECT_FOLDER,
                                                               _("_Select"), _("_Cancel"));
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (chooser), TRUE);
  g_signal_connect (chooser, "response", G_CALLBACK (on_chooser_response), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (chooser));
}

static void
on_option_toggled (GtkCheckButton *check, LodeExportDialog *self)
{
  update_sensitivity (self);
}

static void
on_export_clicked (GtkButton *button, LodeExportDialog *self)
{
  lode_export_dialog_start (self);
}

static void
lode_export_dialog_dispose (GObject *object)
{
  LodeExportDialog *self = LODE_EXPORT_DIALOG (object);

  gtk_widget_dispose_template (GTK_WIDGET (self), LODE_TYPE_EXPORT_DIALOG);
  G_OBJECT_CLASS (lode_export_dialog_parent_class)->dispose (object);
}

static void
lode_export_dialog_finalize (GObject *object)
{
  LodeExportDialog *self = LODE_EXPORT_DIALOG (object);

  g_free (self->project);
  g_free (self->folder);
  G_OBJECT_CLASS (lode_export_dialog_parent_class)->finalize (object);
}

static void
lode_export_dialog_class_init (LodeExportDialogClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = lode_export_dialog_dispose;
  object_class->finalize = lode_export_dialog_finalize;

  gtk_widget_class_set_template_from_resource (widget_class, "/org/lodeapp/Lode/lode-export-dialog.ui");
  gtk_widget_class_bind_template_child (widget_class, LodeExportDialog, cancel_button);
  gtk_widget_class_bind_template_child (widget_class, LodeExportDialog, export_button);
  gtk_widget_class_bind_template_child (widget_class, LodeExportDialog, folder_button);
  gtk_widget_class_bind_template_child (widget_class, LodeExportDialog, formats_box);
  gtk_widget_class_bind_template_child (widget_class, LodeExportDialog, masks_check);
  gtk_widget_class_bind_template_child (widget_class, LodeExportDialog, splits_check);
  gtk_widget_class_bind_template_child (widget_class, LodeExportDialog, manifest_check);
  gtk_widget_class_bind_template_child (widget_class, LodeExportDialog, gpkg_check);
  gtk_widget_class_bind_template_child (widget_class, LodeExportDialog, terratorch_check);
  gtk_widget_class_bind_template_child (widget_class, LodeExportDialog, bands_dropdown);
  gtk_widget_class_bind_template_child (widget_class, LodeExportDialog, accepted_check);
  gtk_widget_class_bind_template_child (widget_class, LodeExportDialog, progress_bar);
  gtk_widget_class_bind_template_child (widget_class, LodeExportDialog, summary_label);
  gtk_widget_class_bind_template_callback (widget_class, on_folder_clicked);
  gtk_widget_class_bind_template_callback (widget_class, on_option_toggled);
  gtk_widget_class_bind_template_callback (widget_class, on_export_clicked);
  lode_job_dialog_class_bind_cancel (widget_class);
}

static void
lode_export_dialog_init (LodeExportDialog *self)
{
  const char *bands[] = { _("All bands"), _("The 6 bands of the published models (B2 B3 B4 B8A B11 B12)"), NULL };
  g_autoptr(GtkStringList) model = gtk_string_list_new (bands);

  gtk_widget_init_template (GTK_WIDGET (self));
  gtk_drop_down_set_model (self->bands_dropdown, G_LIST_MODEL (model));
  update_sensitivity (self);
}

GtkWidget *
lode_export_dialog_new (GtkWindow *parent, const char *project)
{
  LodeExportDialog *self;

  g_return_val_if_fail (project != NULL, NULL);

  self = g_object_new (LODE_TYPE_EXPORT_DIALOG, "transient-for", parent, NULL);
  self->project = g_strdup (project);
  return GTK_WIDGET (self);
}
