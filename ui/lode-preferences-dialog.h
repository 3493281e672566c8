/* lode-preferences-dialog.h: default composite and stretch, mask opacity
 * and the reviewer's name, stored in GSettings as soon as they change. */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define LODE_TYPE_PREFERENCES_DIALOG (lode_preferences_dialog_get_type ())
G_DECLARE_FINAL_TYPE (LodePreferencesDialog, lode_preferences_dialog, LODE, PREFERENCES_DIALOG, GtkWindow)

/* settings: the org.lodeapp.Lode schema. */
GtkWidget *lode_preferences_dialog_new (GtkWindow *parent,
                                        GSettings *settings);

G_END_DECLS
