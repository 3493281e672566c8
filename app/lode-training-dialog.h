/* lode-training-dialog.h: the training panel. A U-Net (ResNet-18, -34 or
 * -50 encoder) trained on the project's patches in a worker thread with its
 * own store: band set, epochs, learning rate and frozen encoder chosen here,
 * the classes from the project's class table; a live plot of the training
 * loss and the validation mining IoU per epoch; start and cancel. When a
 * run ends, its model version joins the list below with its metrics.
 * Or SAM2 decoder fine-tuning (lode-sam2-tune-project.h) from the checkpoint
 * and input size chosen in Preferences: steps and learning rate here, the
 * loss and validation IoU plotted per step, the new checkpoint written
 * beside the project and offered as Preferences' SAM2 checkpoint. */
#pragma once

#include <gtk/gtk.h>

#include "lode-job-dialog.h"
#include "lode-ops.h"
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
/* Chooses SAM2 decoder fine-tuning, from the checkpoint and at the input
 * size Preferences name, with these steps and learning rate. */
void       lode_training_dialog_set_sam2_settings (LodeTrainingDialog *self,
                                                   int                 steps,
                                                   double              lr);
/* Makes the SAM2 model the last run wrote the SAM2 checkpoint in
 * Preferences; FALSE when the last run was no SAM2 run. */
gboolean   lode_training_dialog_use_as_sam2_checkpoint (LodeTrainingDialog *self);
/* The arithmetic the next U-Net run asks for (lode_precision_name): the
 * choice when a CUDA device is there to use it, else "fp32". */
const char *lode_training_dialog_get_precision (LodeTrainingDialog *self);
void       lode_training_dialog_set_precision  (LodeTrainingDialog *self,
                                                LodePrecision       precision);
/* What the SAM2 choice says about its checkpoint; "" for a U-Net. */
const char *lode_training_dialog_get_note      (LodeTrainingDialog *self);
LodePlot  *lode_training_dialog_get_plot       (LodeTrainingDialog *self);
/* Rows in the list of model versions. */
guint      lode_training_dialog_get_n_versions (LodeTrainingDialog *self);
/* The model version the last finished run added, 0 when none. */
gint64     lode_training_dialog_get_last_version (LodeTrainingDialog *self);
const char *lode_training_dialog_get_summary   (LodeTrainingDialog *self);

G_END_DECLS
