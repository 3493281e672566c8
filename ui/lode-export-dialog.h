/* lode-export-dialog.h: export a project's labels into a folder (masks,
 * splits, manifest, GeoPackage polygons, TerraTorch folder), with progress
 * and cancel. The export runs in a worker thread that opens its own
 * LodeStore on the project file; progress reaches the main loop through a
 * LodeProgressRelay. At the end the dialog shows the report's counts;
 * errors are shown as dialogs naming the file and what is wrong. */
#pragma once

#include <gtk/gtk.h>

#include "lode-job-dialog.h"

#include "lode-export.h"

G_BEGIN_DECLS

#define LODE_TYPE_EXPORT_DIALOG (lode_export_dialog_get_type ())
G_DECLARE_FINAL_TYPE (LodeExportDialog, lode_export_dialog, LODE, EXPORT_DIALOG, LodeJobDialog)

/* project: the project file to export from. */
GtkWidget  *lode_export_dialog_new          (GtkWindow               *parent,
                                             const char              *project);
void        lode_export_dialog_set_folder   (LodeExportDialog        *self,
                                             const char              *folder);
/* Sets the dialog's controls from options. */
void        lode_export_dialog_set_options  (LodeExportDialog        *self,
                                             const LodeExportOptions *options);
/* The options as the controls show them. */
void        lode_export_dialog_get_options  (LodeExportDialog        *self,
                                             LodeExportOptions       *options);
/* Starts the export with the chosen folder and options (the Export button);
 * FALSE when one runs already or no folder or format is chosen. */
gboolean    lode_export_dialog_start        (LodeExportDialog        *self);
/* The report of the last export that completed, NULL before one has. */
const LodeExportReport *lode_export_dialog_get_report (LodeExportDialog *self);
/* The summary line under the progress bar. */
const char *lode_export_dialog_get_summary  (LodeExportDialog        *self);

G_END_DECLS
