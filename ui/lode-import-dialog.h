/* lode-import-dialog.h: import a data set folder into a new project file,
 * with progress and cancel; the work runs in a worker thread with its own
 * LodeStore, and progress reaches the main loop through idle callbacks.
 * Emits "imported" (project path) on success; errors are shown as dialogs
 * naming the file and what is wrong. */
#pragma once

#include <gtk/gtk.h>

#include "lode-job-dialog.h"

G_BEGIN_DECLS

#define LODE_TYPE_IMPORT_DIALOG (lode_import_dialog_get_type ())
G_DECLARE_FINAL_TYPE (LodeImportDialog, lode_import_dialog, LODE, IMPORT_DIALOG, LodeJobDialog)

GtkWidget *lode_import_dialog_new         (GtkWindow        *parent);
void       lode_import_dialog_set_source  (LodeImportDialog *self,
                                           const char       *folder);
void       lode_import_dialog_set_project (LodeImportDialog *self,
                                           const char       *path);
/* Starts the import with the chosen folder and file (the Import button). */
gboolean   lode_import_dialog_start       (LodeImportDialog *self);

G_END_DECLS
