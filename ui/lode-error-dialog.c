#define G_LOG_DOMAIN "lode-ui"

#include "config.h"

#include "lode-error-dialog.h"

void
lode_error_dialog_show (GtkWindow *parent, const char *primary, const char *secondary)
{
  GtkWidget *dialog;

  g_return_if_fail (primary != NULL);

  dialog = gtk_message_dialog_new (parent, GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT,
                                   GTK_MESSAGE_ERROR, GTK_BUTTONS_CLOSE, "%s", primary);
  if (secondary != NULL)
    gtk_message_dialog_format_secondary_text (GTK_MESSAGE_DIALOG (dialog), "%s", secondary);
  g_signal_connect (dialog, "response", G_CALLBACK (gtk_window_destroy), NULL);
  gtk_window_present (GTK_WINDOW (dialog));
}
