/* lode-preferences-dialog.h: default composite and stretch, mask opacity,
 * the reviewer's name and SAM2's checkpoint, input size and cache bound,
 * stored in GSettings as soon as they change. */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define LODE_TYPE_PREFERENCES_DIALOG (lode_preferences_dialog_get_type ())
G_DECLARE_FINAL_TYPE (LodePreferencesDialog, lode_preferences_dialog, LODE, PREFERENCES_DIALOG, GtkWindow)

/* settings: the org.lodeapp.Lode schema. */
GtkWidget *lode_preferences_dialog_new (GtkWindow *parent,
                                        GSettings *settings);
/* As the checkpoint button's file chooser does; NULL chooses none. */
void       lode_preferences_dialog_set_checkpoint (LodePreferencesDialog *self,
                                                   const char            *path);

G_END_DECLS
