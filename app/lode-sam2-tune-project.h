/* lode-sam2-tune-project.h: fine-tuning SAM2's decoder on a project.
 *
 * Joins the project store (the patches and their latest masks), the SAM2
 * session (the image embeddings, computed once and kept in the project's
 * cache) and the fine-tuning job (lode-sam2-train.h). The samples are the
 * patches whose mask holds at least one class pixel and that are not set
 * aside as odd: those of the 'test' split validate, the others train.
 * Shared by lode train sam2 and the training panel. No GTK. One per thread. */
#pragma once

#include <gio/gio.h>

#include "lode-sam2-session.h"
#include "lode-sam2-train.h"
#include "lode-store.h"

G_BEGIN_DECLS

typedef struct _LodeSam2TuneProject LodeSam2TuneProject;

/* Opens the checkpoint at input_size (0: the model's own) for prediction
 * and for training, and gathers the samples of store (kept, not owned). */
LodeSam2TuneProject        *lode_sam2_tune_project_new        (LodeStore           *store,
                                                               const char          *checkpoint,
                                                               int                  input_size,
                                                               GError             **error);
void                        lode_sam2_tune_project_free       (LodeSam2TuneProject *self);
guint                       lode_sam2_tune_project_n_train    (LodeSam2TuneProject *self);
guint                       lode_sam2_tune_project_n_val      (LodeSam2TuneProject *self);
LodeSam2Tuner              *lode_sam2_tune_project_get_tuner  (LodeSam2TuneProject *self);
/* The samples for lode_sam2_tune_run, valid while self lives. */
const LodeSam2SampleSource *lode_sam2_tune_project_get_source (LodeSam2TuneProject *self);

typedef void (*LodeSam2EncodeProgressFunc) (guint done, guint total, gpointer user_data);

/* Puts every sample's embedding in the project's cache beforehand. */
gboolean                    lode_sam2_tune_project_encode     (LodeSam2TuneProject        *self,
                                                               LodeSam2EncodeProgressFunc  progress,
                                                               gpointer                    user_data,
                                                               GCancellable               *cancellable,
                                                               GError                    **error);

/* ---- the whole run, as the training panel makes it ------------------------ */

typedef struct
{
  const char         *checkpoint;   /* the SAM2 checkpoint to start from */
  int                 input_size;   /* 1024 or 512 (0: 1024) */
  const char         *name;         /* of the model version; NULL: made up */
  LodeSam2TuneConfig  tune;         /* steps 0: ten times the training patches */
} LodeSam2TuneProjectOptions;

/* The recipe's defaults: lr 1e-5, weight decay 4e-5, seed 1. */
void        lode_sam2_tune_project_options_init (LodeSam2TuneProjectOptions *options);

typedef struct
{
  guint              train, validation;
  LodeSam2TuneResult result;
} LodeSam2TuneProjectReport;

/* Encodes, fine-tunes, writes PROJECT.lode-models/NAME.safetensors (never
 * over the source checkpoint) and adds a model version of kind sam2 with
 * the metrics JSON; returns its id, or 0 with an error (cancelled: nothing
 * written, no version added). report (may be NULL) is filled as it goes. */
gint64      lode_sam2_tune_project_run (const char                       *project,
                                        const LodeSam2TuneProjectOptions *options,
                                        LodeSam2EncodeProgressFunc        encode_progress,
                                        LodeSam2TuneProgressFunc          progress,
                                        gpointer                          user_data,
                                        LodeSam2TuneProjectReport        *report,
                                        GCancellable                     *cancellable,
                                        GError                          **error);

/* Adds the fine-tuned checkpoint written at path to store as a model
 * version of kind sam2 named name (NULL: made up), with the metrics JSON
 * of the run that made it (input_size, tune, report); returns its id, or 0
 * with an error. */
gint64      lode_sam2_tune_project_record (LodeStore                       *store,
                                           const char                      *name,
                                           const char                      *path,
                                           int                              input_size,
                                           const LodeSam2TuneConfig        *tune,
                                           const LodeSam2TuneProjectReport *report,
                                           GError                         **error);

/* The metrics JSON of a sam2 model version: {"input_size", "steps", "lr",
 * "weight_decay", "seed", "train_patches", "validation_patches",
 * "loss_first", "loss_last", "validation": {"iou_before", "iou_after"}}.
 * Reads the validation IoU before and after back; FALSE when json has none
 * (no patch of the test split validated). */
gboolean    lode_sam2_tune_project_read_metrics (const char *metrics_json,
                                                 double     *iou_before,
                                                 double     *iou_after);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeSam2TuneProject, lode_sam2_tune_project_free)

G_END_DECLS
