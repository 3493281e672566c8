/* lode-error-dialog.h: an error shown as a modal message dialog: what
 * failed (primary) and why, naming the file (secondary). */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

void lode_error_dialog_show (GtkWindow  *parent,
                             const char *primary,
                             const char *secondary);

G_END_DECLS
