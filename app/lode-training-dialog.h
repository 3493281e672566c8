/* lode-training-dialog.h: the training panel. A U-Net (ResNet-18, -34 or
 * -50 encoder) trained on the project's patches in a worker thread with its
 * own store: band set, epochs, learning rate and frozen encoder chosen here,
 * the classes from the project's class table; a live plot of the training
 * loss and the validation mining IoU per epoch; start and cancel. When a
 * run ends, its model version joins the list below with its metrics. */
#pragma once

#include <gtk/gtk.h>

#include "lode-job-dialog.h"
#include "lode-plot.h"
#include "lode-train-project.h"

G_BEGIN_DECLS

#define LODE_TYPE_TRAINING_DIALOG (lode_training_dialog_get_type ())
G_DECLARE_FINAL_TYPE (LodeTrainingDialog, lode_training_dialog, LODE, TRAINING_DIALOG, LodeJobDialog)

GtkWidget *lode_training_dialog_new            (GtkWindow          *parent,
                                                const char         *project);
/* Starts a run with the settings shown; FALSE when one runs already. */
gboolean   lode_training_dialog_start          (LodeTrainingDialog *self);
/* Sets the controls (for tests and for starting from the command line). */
void       lode_training_dialog_set_settings   (LodeTrainingDialog *self,
                                                LodeUnetEncoder     encoder,
                                                LodeTrainBandSet    bands,
                                                int                 epochs,
                                                double              lr,
                                                gboolean            frozen_encoder);
LodePlot  *lode_training_dialog_get_plot       (LodeTrainingDialog *self);
/* Rows in the list of model versions. */
guint      lode_training_dialog_get_n_versions (LodeTrainingDialog *self);
/* The model version the last finished run added, 0 when none. */
gint64     lode_training_dialog_get_last_version (LodeTrainingDialog *self);
const char *lode_training_dialog_get_summary   (LodeTrainingDialog *self);

G_END_DECLS
