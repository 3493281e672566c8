#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>

#include "lode-background.h"
#include "lode-encode-dialog.h"
#include "lode-error-dialog.h"
#include "lode-progress-relay.h"
#include "lode-sam2-session.h"
#include "lode-store.h"

struct _LodeEncodeDialog
{
  LodeJobDialog      parent_instance;

  /* template */
  GtkButton         *cancel_button;
  GtkLabel          *intro_label;
  GtkProgressBar    *progress_bar;
  GtkLabel          *summary_label;

  char              *project;
  char              *checkpoint;
  int                input_size;
  guint64            cache_bytes;
  LodeCompositeSpec  spec;
  gboolean           has_report;
  LodeEncodeReport   report;
};

G_DEFINE_FINAL_TYPE (LodeEncodeDialog, lode_encode_dialog, LODE_TYPE_JOB_DIALOG)

typedef struct
{
  char              *project;
  char              *checkpoint;
  int                input_size;
  guint64            cache_bytes;
  LodeCompositeSpec  spec;
  LodeEncodeReport   report;
  gboolean           checkpoint_failed;
  LodeProgressRelay *relay;
} EncodeJob;

static void
encode_job_free (EncodeJob *job)
{
  g_free (job->project);
  g_free (job->checkpoint);
  g_clear_pointer (&job->relay, lode_progress_relay_unref);
  g_free (job);
}

/* The worker: a store and a session of its own, closed before it ends. A
 * patch that cannot be read is counted and passed over. */
static gboolean
encode_all (EncodeJob *job, GCancellable *cancellable, GError **error)
{
  g_autoptr(LodeStore) store = NULL;
  g_autoptr(LodeSam2Session) session = NULL;
  g_autoptr(GPtrArray) patches = NULL;

  lode_progress_relay_report (0.0, _("Loading the SAM2 model…"), job->relay);
  store = lode_store_open (job->project, FALSE, error);
  if (store == NULL || (patches = lode_store_list_patches (store, error)) == NULL)
    return FALSE;
  session = lode_sam2_session_new (job->checkpoint, job->input_size, error);
  if (session == NULL)
    {
      job->checkpoint_failed = TRUE;
      return FALSE;
    }
  job->report.total = patches->len;
  for (guint i = 0; i < patches->len; i++)
    {
      const LodePatch *p = g_ptr_array_index (patches, i);
      g_autofree char *path = lode_store_resolve_path (store, p->image_path);
      g_autoptr(LodeRaster) raster = NULL;
      g_autoptr(LodeSam2Embedding) embedding = NULL;
      g_autoptr(GError) local = NULL;
      g_autofree char *what = NULL;
      gboolean from_cache = FALSE;

      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return FALSE;
      raster = lode_raster_open (path, &local);
      if (raster != NULL)
        embedding = lode_sam2_session_embed (session, store, p->id, raster, &job->spec, job->cache_bytes,
                                             &from_cache, NULL, &local);
      if (embedding == NULL)
        {
          g_warning ("Tile %s of %d not encoded: %s", p->tile_id, p->year, local->message);
          job->report.failed++;
        }
      else if (from_cache)
        job->report.cached++;
      else
        job->report.encoded++;
      /* Translators: progress of the project's encoding: patches done and all */
      what = g_strdup_printf (_("%u of %u patches"), i + 1, patches->len);
      lode_progress_relay_report ((double) (i + 1) / patches->len, what, job->relay);
    }
  return TRUE;
}

static void
encode_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  EncodeJob *job = task_data;
  GError *error = NULL;

  if (encode_all (job, cancellable, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

static void
update_buttons (LodeEncodeDialog *self)
{
  gboolean running = lode_job_dialog_is_running (LODE_JOB_DIALOG (self));

  gtk_button_set_label (self->cancel_button, running ? _("_Cancel") : _("_Close"));
}

static char *
summary_text (const LodeEncodeReport *r)
{
  GString *s = g_string_new (NULL);

  g_string_append_printf (s, g_dngettext (GETTEXT_PACKAGE, "%u patch encoded", "%u patches encoded", r->encoded),
                          r->encoded);
  g_string_append (s, ", ");
  g_string_append_printf (s, g_dngettext (GETTEXT_PACKAGE, "%u found in the cache", "%u found in the cache",
                                          r->cached), r->cached);
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
on_encode_done (GObject *source, GAsyncResult *result, gpointer data)
{
  LodeEncodeDialog *self = LODE_ENCODE_DIALOG (source);
  EncodeJob *job = g_task_get_task_data (G_TASK (result));
  g_autoptr(GError) error = NULL;
  g_autofree char *summary = NULL;
  gboolean close_after = lode_job_dialog_end (LODE_JOB_DIALOG (self));

  self->report = job->report;
  self->has_report = TRUE;
  if (lode_job_dialog_is_disposed (LODE_JOB_DIALOG (self)))
    return;
  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          /* Translators: the encoding was cancelled; what was done is kept */
          summary = summary_text (&self->report);
          gtk_label_set_label (self->summary_label, summary);
          gtk_progress_bar_set_text (self->progress_bar, _("Cancelled; the embeddings computed are kept"));
        }
      else
        {
          /* Translators: %s is the SAM2 checkpoint or the project file */
          g_autofree char *primary = g_strdup_printf (job->checkpoint_failed
                                                        ? _("The SAM2 checkpoint “%s” cannot be used")
                                                        : _("The project “%s” cannot be encoded"),
                                                      job->checkpoint_failed ? job->checkpoint : job->project);
          gtk_label_set_label (self->summary_label, error->message);
          gtk_progress_bar_set_text (self->progress_bar, _("Failed"));
          if (!close_after)
            lode_error_dialog_show (GTK_WINDOW (self), primary, error->message);
        }
    }
  else
    {
      gtk_progress_bar_set_fraction (self->progress_bar, 1.0);
      gtk_progress_bar_set_text (self->progress_bar, _("Done"));
      summary = summary_text (&self->report);
      gtk_label_set_label (self->summary_label, summary);
    }
  update_buttons (self);
  if (close_after)
    gtk_window_destroy (GTK_WINDOW (self));
}

gboolean
lode_encode_dialog_start (LodeEncodeDialog *self)
{
  g_autoptr(GTask) task = NULL;
  GCancellable *cancellable;
  EncodeJob *job;

  g_return_val_if_fail (LODE_IS_ENCODE_DIALOG (self), FALSE);
  if (lode_job_dialog_is_running (LODE_JOB_DIALOG (self)))
    return FALSE;
  job = g_new0 (EncodeJob, 1);
  job->project = g_strdup (self->project);
  job->checkpoint = g_strdup (self->checkpoint);
  job->input_size = self->input_size;
  job->cache_bytes = self->cache_bytes;
  job->spec = self->spec;
  job->relay = lode_progress_relay_new (self->progress_bar);
  cancellable = lode_job_dialog_begin (LODE_JOB_DIALOG (self));
  self->has_report = FALSE;
  gtk_progress_bar_set_fraction (self->progress_bar, 0.0);
  gtk_progress_bar_set_text (self->progress_bar, _("Starting…"));
  gtk_label_set_label (self->summary_label, "");
  update_buttons (self);
  task = g_task_new (self, cancellable, on_encode_done, NULL);
  g_task_set_source_tag (task, lode_encode_dialog_start);
  /* The worker's own result: work it finished just before a cancel is reported as done. */
  g_task_set_check_cancellable (task, FALSE);
  g_task_set_task_data (task, job, (GDestroyNotify) encode_job_free);
  lode_background_run_in_thread (task, encode_thread);
  return TRUE;
}

const LodeEncodeReport *
lode_encode_dialog_get_report (LodeEncodeDialog *self)
{
  g_return_val_if_fail (LODE_IS_ENCODE_DIALOG (self), NULL);
  return self->has_report ? &self->report : NULL;
}

const char *
lode_encode_dialog_get_summary (LodeEncodeDialog *self)
{
  g_return_val_if_fail (LODE_IS_ENCODE_DIALOG (self), NULL);
  return gtk_label_get_label (self->summary_label);
}

static void
lode_encode_dialog_dispose (GObject *object)
{
  gtk_widget_dispose_template (GTK_WIDGET (object), LODE_TYPE_ENCODE_DIALOG);
  G_OBJECT_CLASS (lode_encode_dialog_parent_class)->dispose (object);
}

static void
lode_encode_dialog_finalize (GObject *object)
{
  LodeEncodeDialog *self = LODE_ENCODE_DIALOG (object);

  g_free (self->project);
  g_free (self->checkpoint);
  G_OBJECT_CLASS (lode_encode_dialog_parent_class)->finalize (object);
}

static void
lode_encode_dialog_class_init (LodeEncodeDialogClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = lode_encode_dialog_dispose;
  object_class->finalize = lode_encode_dialog_finalize;
  gtk_widget_class_set_template_from_resource (widget_class, "/org/lodeapp/Lode/lode-encode-dialog.ui");
  gtk_widget_class_bind_template_child (widget_class, LodeEncodeDialog, cancel_button);
  gtk_widget_class_bind_template_child (widget_class, LodeEncodeDialog, intro_label);
  gtk_widget_class_bind_template_child (widget_class, LodeEncodeDialog, progress_bar);
  gtk_widget_class_bind_template_child (widget_class, LodeEncodeDialog, summary_label);
  lode_job_dialog_class_bind_cancel (widget_class);
}

static void
lode_encode_dialog_init (LodeEncodeDialog *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
}

GtkWidget *
lode_encode_dialog_new (GtkWindow               *parent,
                        const char              *project,
                        const char              *checkpoint,
                        int                      input_size,
                        guint64                  cache_bytes,
                        const LodeCompositeSpec *spec)
{
  LodeEncodeDialog *self;
  g_autofree char *name = NULL;
  g_autofree char *intro = NULL;

  g_return_val_if_fail (project != NULL && checkpoint != NULL && spec != NULL, NULL);

  self = g_object_new (LODE_TYPE_ENCODE_DIALOG, "transient-for", parent, NULL);
  self->project = g_strdup (project);
  self->checkpoint = g_strdup (checkpoint);
  self->input_size = input_size;
  self->cache_bytes = cache_bytes;
  self->spec = *spec;
  name = g_path_get_basename (checkpoint);
  /* Translators: %s is the checkpoint's file name, %d the input size in pixels */
  intro = g_strdup_printf (_("The SAM2 embedding of every patch, with the composite shown now, is computed "
                             "with %s at %d pixels and kept beside the project, so that clicks answer at once."),
                           name, input_size);
  gtk_label_set_label (self->intro_label, intro);
  return GTK_WIDGET (self);
}
