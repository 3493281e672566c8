#define G_LOG_DOMAIN "lode-ui"

#include "config.h"

#include "lode-job-dialog.h"

typedef struct
{
  GCancellable *cancellable;
  gboolean      close_after;
  gboolean      disposed;
} LodeJobDialogPrivate;

G_DEFINE_TYPE_WITH_PRIVATE (LodeJobDialog, lode_job_dialog, GTK_TYPE_WINDOW)

GCancellable *
lode_job_dialog_begin (LodeJobDialog *self)
{
  LodeJobDialogPrivate *priv = lode_job_dialog_get_instance_private (self);

  g_return_val_if_fail (LODE_IS_JOB_DIALOG (self), NULL);
  if (priv->cancellable != NULL)
    return NULL;
  priv->cancellable = g_cancellable_new ();
  priv->close_after = FALSE;
  return priv->cancellable;
}

gboolean
lode_job_dialog_end (LodeJobDialog *self)
{
  LodeJobDialogPrivate *priv = lode_job_dialog_get_instance_private (self);

  g_return_val_if_fail (LODE_IS_JOB_DIALOG (self), FALSE);
  g_clear_object (&priv->cancellable);
  return priv->close_after;
}

gboolean
lode_job_dialog_is_running (LodeJobDialog *self)
{
  LodeJobDialogPrivate *priv = lode_job_dialog_get_instance_private (self);

  g_return_val_if_fail (LODE_IS_JOB_DIALOG (self), FALSE);
  return priv->cancellable != NULL;
}

gboolean
lode_job_dialog_is_disposed (LodeJobDialog *self)
{
  LodeJobDialogPrivate *priv = lode_job_dialog_get_instance_private (self);

  g_return_val_if_fail (LODE_IS_JOB_DIALOG (self), TRUE);
  return priv->disposed;
}

void
lode_job_dialog_cancel (LodeJobDialog *self)
{
  LodeJobDialogPrivate *priv = lode_job_dialog_get_instance_private (self);

  g_return_if_fail (LODE_IS_JOB_DIALOG (self));
  if (priv->cancellable != NULL)
    g_cancellable_cancel (priv->cancellable);
}

void
lode_job_dialog_cancel_or_close (LodeJobDialog *self)
{
  g_return_if_fail (LODE_IS_JOB_DIALOG (self));
  if (lode_job_dialog_is_running (self))
    lode_job_dialog_cancel (self);
  else
    gtk_window_destroy (GTK_WINDOW (self));
}

static void
on_cancel_clicked (GtkButton *button, LodeJobDialog *self)
{
  lode_job_dialog_cancel_or_close (self);
}

void
lode_job_dialog_class_bind_cancel (GtkWidgetClass *widget_class)
{
  gtk_widget_class_bind_template_callback_full (widget_class, "on_cancel_clicked",
                                                G_CALLBACK (on_cancel_clicked));
}

static gboolean
lode_job_dialog_close_request (GtkWindow *window)
{
  LodeJobDialog *self = LODE_JOB_DIALOG (window);
  LodeJobDialogPrivate *priv = lode_job_dialog_get_instance_private (self);

  if (priv->cancellable == NULL)
    return FALSE;
  /* Stop the worker first; the window closes when it has. */
  priv->close_after = TRUE;
  g_cancellable_cancel (priv->cancellable);
  return TRUE;
}

static void
lode_job_dialog_dispose (GObject *object)
{
  LodeJobDialogPrivate *priv = lode_job_dialog_get_instance_private (LODE_JOB_DIALOG (object));

  priv->disposed = TRUE;
  lode_job_dialog_cancel (LODE_JOB_DIALOG (object));
  G_OBJECT_CLASS (lode_job_dialog_parent_class)->dispose (object);
}

static void
lode_job_dialog_finalize (GObject *object)
{
  LodeJobDialogPrivate *priv = lode_job_dialog_get_instance_private (LODE_JOB_DIALOG (object));

  g_clear_object (&priv->cancellable);
  G_OBJECT_CLASS (lode_job_dialog_parent_class)->finalize (object);
}

static void
lode_job_dialog_class_init (LodeJobDialogClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  GtkWindowClass *window_class = GTK_WINDOW_CLASS (klass);

  object_class->dispose = lode_job_dialog_dispose;
  object_class->finalize = lode_job_dialog_finalize;
  window_class->close_request = lode_job_dialog_close_request;
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Escape, 0, "window.close", NULL);
}

static void
lode_job_dialog_init (LodeJobDialog *self)
{
}
