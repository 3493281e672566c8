/* lode-prelabel-dialog.h: "Pre-label": a trained model version's masks
 * stored as new revisions of the chosen patches (unlabelled, not yet
 * reviewed, or all; those edited by hand only when asked), in a worker
 * thread with its own store, with progress and cancel. Emits "finished"
 * after a run that stored something, so that the window shows it. */
#pragma once

#include <gtk/gtk.h>

#include "lode-job-dialog.h"
#include "lode-prelabel.h"

G_BEGIN_DECLS

#define LODE_TYPE_PRELABEL_DIALOG (lode_prelabel_dialog_get_type ())
G_DECLARE_FINAL_TYPE (LodePrelabelDialog, lode_prelabel_dialog, LODE, PRELABEL_DIALOG, LodeJobDialog)

GtkWidget                *lode_prelabel_dialog_new         (GtkWindow          *parent,
                                                            const char         *project);
/* The U-Net model versions offered, newest first. */
guint                     lode_prelabel_dialog_get_n_versions (LodePrelabelDialog *self);
/* Chooses a model version by id; FALSE when it is not offered. */
gboolean                  lode_prelabel_dialog_select_version (LodePrelabelDialog *self,
                                                              gint64              id);
void                      lode_prelabel_dialog_set_scope   (LodePrelabelDialog *self,
                                                            LodePrelabelScope   scope,
                                                            gboolean            include_edited);
/* Starts the job; FALSE when one runs already or no version is offered. */
gboolean                  lode_prelabel_dialog_start       (LodePrelabelDialog *self);
/* The last finished job's counts, NULL before one finished. */
const LodePrelabelReport *lode_prelabel_dialog_get_report  (LodePrelabelDialog *self);
const char               *lode_prelabel_dialog_get_summary (LodePrelabelDialog *self);

G_END_DECLS
