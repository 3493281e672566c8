/* lode-train-project.h: training a U-Net on a project's patches.
 *
 * Joins the project store (annotate/) and the trainer (model/): the samples
 * are the project's patches, each image read through lode-raster with the
 * chosen band set and each mask the patch's latest revision, its class ids
 * mapped to the class table's order (no-data pixels become the ignored
 * label). Patches of the 'train' split train, those of 'test' validate;
 * patches with no mask, set aside as odd, or of another size than the first
 * are left out. When the run ends, its checkpoint is added to the project
 * as a model version with the validation metrics as JSON.
 *
 * Runs in the caller's thread with a store of its own on the project file,
 * so that a worker thread may call it while the window keeps its own. */
#pragma once

#include <gio/gio.h>

#include "lode-train.h"

G_BEGIN_DECLS

typedef enum {
  LODE_TRAIN_BANDS_6,     /* B, G, R, B8A, B11, B12: bands 1, 2, 3, 8, 9, 10 */
  LODE_TRAIN_BANDS_13,    /* every band of the SmallMinesDS files */
  LODE_TRAIN_BANDS_RGB,   /* R, G, B: bands 3, 2, 1 */
} LodeTrainBandSet;

/* "6", "13", "rgb" */
const char *lode_train_band_set_id        (LodeTrainBandSet  set);
gboolean    lode_train_band_set_from_id   (const char       *id,
                                           LodeTrainBandSet *set);
/* Sets config's bands, band_select, mean and std (the published per-band
 * statistics of SmallMinesDS). */
void        lode_train_config_set_bands   (LodeTrainConfig  *config,
                                           LodeTrainBandSet  set);

typedef struct
{
  LodeTrainConfig  config;          /* classes are taken from the project */
  gboolean         accepted_only;   /* train on accepted patches only */
  const char      *name;            /* of the model version; NULL: made up */
  const char      *checkpoint;      /* NULL: beside the project, in
                                     * PROJECT.lode-models/NAME.lode-unet */
} LodeTrainProjectOptions;

/* Defaults: lode_train_config_init's, resnet18 on 6 bands, 5 epochs,
 * batch 4, lr 1e-3, all labelled patches. */
void        lode_train_project_options_init (LodeTrainProjectOptions *options);

typedef struct
{
  guint train;        /* patches in the training split */
  guint validation;   /* patches in the validation split */
  guint left_out;     /* no mask, odd, another size, or not accepted */
} LodeTrainProjectCounts;

/* Trains and adds the model version; returns its id, or 0 with an error
 * (G_IO_ERROR_CANCELLED when cancelled: the checkpoint then holds the last
 * step, and no model version is added). counts (may be NULL) is filled
 * once the patches are gathered. */
gint64      lode_train_project_run        (const char                    *project,
                                           const LodeTrainProjectOptions *options,
                                           LodeTrainProgressFunc          progress,
                                           gpointer                       user_data,
                                           LodeTrainProjectCounts        *counts,
                                           GCancellable                  *cancellable,
                                           GError                       **error);

/* The metrics JSON stored with a model version: {"encoder", "bands",
 * "band_set", "classes", "class_ids": [...], "epochs", "steps",
 * "validation": {"mean_iou", "iou": [...], "f1", "accuracy"}, "history":
 * [{"epoch", "loss", "mean_iou", "mining_iou"}, ...]}. Reads the mining
 * IoU (class 1) and mean IoU back; FALSE when json has none. */
gboolean    lode_train_project_read_metrics (const char *metrics_json,
                                             double     *mining_iou,
                                             double     *mean_iou);

G_END_DECLS
