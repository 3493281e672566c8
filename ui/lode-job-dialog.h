/* lode-job-dialog.h: the base of dialogs that run one long job in a worker
 * thread (import, export). It holds the job's GCancellable while the job
 * runs; closing the window cancels the job first and closes when the job
 * has ended; disposing cancels it. */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define LODE_TYPE_JOB_DIALOG (lode_job_dialog_get_type ())
G_DECLARE_DERIVABLE_TYPE (LodeJobDialog, lode_job_dialog, LODE, JOB_DIALOG, GtkWindow)

struct _LodeJobDialogClass
{
  GtkWindowClass parent_class;
};

/* A job begins: its cancellable (owned by the dialog), NULL when one runs. */
GCancellable *lode_job_dialog_begin           (LodeJobDialog *self);
/* The job has ended (its result was taken). TRUE when the user closed the
 * window meanwhile: the caller destroys it after showing nothing more. */
gboolean      lode_job_dialog_end             (LodeJobDialog *self);
gboolean      lode_job_dialog_is_running      (LodeJobDialog *self);
/* TRUE once the dialog was disposed (its window destroyed, e.g. with the
 * main window): a job's callback that comes later only takes its result
 * and touches no widget, they are gone. */
gboolean      lode_job_dialog_is_disposed     (LodeJobDialog *self);
void          lode_job_dialog_cancel          (LodeJobDialog *self);
/* The Cancel button: cancels the job, or closes the window when none runs. */
void          lode_job_dialog_cancel_or_close (LodeJobDialog *self);
/* For subclasses' class_init: binds the template handler "on_cancel_clicked"
 * of their Cancel button to lode_job_dialog_cancel_or_close(). */
void          lode_job_dialog_class_bind_cancel (GtkWidgetClass *widget_class);

G_END_DECLS
