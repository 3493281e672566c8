/* lode-train.h: training a U-Net segmenter, as a job the program runs off
 * its main thread.
 *
 * The caller gives a configuration, a source of (image, mask) samples as
 * callbacks, a checkpoint path, a progress callback and a GCancellable.
 * Each step draws a batch (shuffled per epoch), flips and rotates it by a
 * multiple of 90 degrees at random, normalises each band with the given
 * mean and std, and takes an AdamW step on cross-entropy (class weights,
 * ignored label) plus, optionally, soft Dice. After each epoch the model is
 * scored on the validation split (per-class IoU, mean IoU, micro F1,
 * accuracy) and saved. The job runs on the device the configuration asks
 * for ("auto": CUDA when the build has it and a device is present): the
 * batch is drawn, augmented and normalised on the host and uploaded; the
 * passes, cross-entropy and AdamW run on the device (Dice on the host from
 * the downloaded logits); the validation metrics come from downloaded
 * logits; checkpoints go through the model's host mirrors, in the same
 * file whatever the device. Everything random comes from the seed and the step,
 * so a run that is cancelled and resumed from its checkpoint ends with the
 * same weights as one that never stopped.
 *
 * Checkpoints are Lode's own file (lode_train_checkpoint_save): magic
 * "LODEUNET", a format version, the configuration and tensor table as
 * JSON, the parameters, running statistics and AdamW moments as
 * little-endian float32, and a CRC-32 of all of it; written to a temporary
 * file, synced and renamed, so that the path always holds a whole one.
 */
#pragma once

#include <gio/gio.h>

#include "lode-unet.h"

G_BEGIN_DECLS

#define LODE_TRAIN_ERROR (lode_train_error_quark ())
GQuark lode_train_error_quark (void);

typedef enum {
  LODE_TRAIN_ERROR_CONFIG,      /* a configuration that cannot train */
  LODE_TRAIN_ERROR_DATA,        /* the sample source failed or is empty */
  LODE_TRAIN_ERROR_CHECKPOINT,  /* a checkpoint that is damaged, of another
                                 * version, or of another model */
  LODE_TRAIN_ERROR_IO,          /* the checkpoint cannot be written or read */
} LodeTrainError;

#define LODE_TRAIN_MAX_CLASSES 16
#define LODE_TRAIN_MAX_BANDS 64
/* The file format this build writes and reads. */
#define LODE_TRAIN_CHECKPOINT_VERSION 1

typedef struct {
  LodeUnetEncoder encoder;
  int      bands;                                 /* input channels */
  int      classes;                               /* 2 .. LODE_TRAIN_MAX_CLASSES */
  float    class_weights[LODE_TRAIN_MAX_CLASSES]; /* cross-entropy weights */
  int      ignore_index;                          /* mask value not scored (255) */
  float    dice_weight;                           /* 0: cross-entropy alone */
  float    lr;
  float    weight_decay;
  int      epochs;
  gint64   max_steps;                             /* 0: epochs decide */
  int      batch_size;
  gboolean frozen_encoder;                        /* decoder and head only */
  gboolean augment;                               /* flips and rotations */
  guint64  seed;
  char     device[16];                            /* "cpu", "cuda" or "auto" */
  char     precision[8];                          /* "fp32" (or ""), "tf32" or
                                                   * "bf16": tensor cores on
                                                   * CUDA (LodePrecision;
                                                   * ignored on the CPU; not
                                                   * saved in checkpoints) */
  int      band_select[LODE_TRAIN_MAX_BANDS];     /* which band of the source
                                                   * files each input is (kept
                                                   * for prediction; the job
                                                   * itself does not read it) */
  float    mean[LODE_TRAIN_MAX_BANDS];            /* per band, for normalising */
  float    std[LODE_TRAIN_MAX_BANDS];
} LodeTrainConfig;

/* Defaults: resnet50, 6 bands, 2 classes with weights 1, ignore 255, no
 * Dice, lr 1e-4, weight decay 1e-2, 10 epochs, batch 16, full fine-tuning,
 * augmentation on, seed 0, device "auto", precision "fp32", band_select 0,
 * 1, 2, ..., mean 0 and std 1. */
void lode_train_config_init (LodeTrainConfig *config);

typedef enum {
  LODE_TRAIN_SPLIT_TRAIN,
  LODE_TRAIN_SPLIT_VALIDATION,
} LodeTrainSplit;

/* When and where a sample was taken, for models that encode it (the
 * Prithvi-EO-2.0 "-TL" checkpoints); either part may be missing. */
typedef struct {
  gboolean has_date;
  float    year;
  float    day_of_year;       /* 1-366 */
  gboolean has_location;
  float    latitude;          /* WGS84 degrees */
  float    longitude;
} LodeTrainCoords;

/* The samples: every image [bands, height, width] float32 (raw values,
 * NaN where there is no data) with a mask [height, width] of class indices
 * (ignore_index where unlabelled). get is called from the job's thread;
 * so is get_coords, which may be NULL (no coordinates; the U-Net never
 * asks) and fills coords (zeroed beforehand) for sample index. */
typedef struct {
  int        height, width;   /* multiples of 32 */
  int      (*count) (LodeTrainSplit split,
                     gpointer       user_data);
  gboolean (*get)   (LodeTrainSplit split,
                     int            index,
                     float         *image,
                     guint8        *mask,
                     gpointer       user_data,
                     GError       **error);
  gpointer   user_data;
  gboolean (*get_coords) (LodeTrainSplit    split,
                          int               index,
                          LodeTrainCoords  *coords,
                          gpointer          user_data,
                          GError          **error);
} LodeTrainSource;

typedef struct {
  int     classes;
  double  iou[LODE_TRAIN_MAX_CLASSES];  /* NaN for a class absent from both */
  double  mean_iou;                     /* over the classes that have an IoU */
  double  f1;                           /* micro F1 over the classes other
                                         * than 0 (the background) */
  double  accuracy;                     /* over every scored pixel */
  gint64  pixels;                       /* scored pixels */
} LodeTrainMetrics;

typedef struct {
  gint64                  step;          /* steps done */
  gint64                  total_steps;
  int                     epoch;         /* 1-based, the epoch in progress */
  int                     epochs;
  double                  loss;          /* of the last step */
  double                  seconds_left;  /* estimate, < 0 when unknown */
  const LodeTrainMetrics *metrics;       /* after a validation, else NULL */
} LodeTrainProgress;

typedef void (*LodeTrainProgressFunc) (const LodeTrainProgress *progress,
                                       gpointer                 user_data);

typedef struct _LodeTrainJob LodeTrainJob;

/* A job that trains into checkpoint_path (NULL: no checkpoints), on the
 * device config->device names (an error of LODE_DEVICE_ERROR when it names
 * cuda and there is none). When that
 * file exists and resume is TRUE, the run continues from it (its model and
 * configuration must match config's). encoder_weights (may be NULL) is a
 * PyTorch or safetensors checkpoint loaded into a fresh model (see
 * lode_unet_load_checkpoint). */
LodeTrainJob *lode_train_job_new        (const LodeTrainConfig  *config,
                                         const LodeTrainSource  *source,
                                         const char             *checkpoint_path,
                                         gboolean                resume,
                                         const char             *encoder_weights,
                                         GError                **error);
void          lode_train_job_free       (LodeTrainJob           *self);
/* Trains until the last step, an error or cancellation. A cancelled job
 * saves its last whole step to the checkpoint and fails with
 * G_IO_ERROR_CANCELLED. */
gboolean      lode_train_job_run        (LodeTrainJob           *self,
                                         LodeTrainProgressFunc   progress,
                                         gpointer                user_data,
                                         GCancellable           *cancellable,
                                         GError                **error);
/* The model, on the job's device (see lode-unet.h for reading it). */
LodeUnet     *lode_train_job_get_model  (LodeTrainJob           *self);
LodeDeviceKind lode_train_job_get_device (LodeTrainJob          *self);
gint64        lode_train_job_get_step   (LodeTrainJob           *self);
/* The last validation's metrics, NULL before one. */
const LodeTrainMetrics *lode_train_job_get_metrics (LodeTrainJob *self);

/* Scores model on a split (eval mode, batches of batch_size). */
gboolean      lode_train_evaluate       (LodeUnet               *model,
                                         const LodeTrainConfig  *config,
                                         const LodeTrainSource  *source,
                                         LodeTrainSplit          split,
                                         LodeTrainMetrics       *metrics,
                                         GCancellable           *cancellable,
                                         GError                **error);

/* The metrics of a confusion matrix cm[truth * c + predicted] of c
 * classes (shared with the other segmenters' training). */
void          lode_train_metrics_from_confusion (LodeTrainMetrics *metrics,
                                                 const gint64     *cm,
                                                 int               c);

/* image [bands, h, w] in place: (x - mean) / std per band, NaN to 0. */
void          lode_train_normalise      (float                  *image,
                                         const LodeTrainConfig  *config,
                                         int                     h,
                                         int                     w);

/* ---- checkpoints -------------------------------------------------------- */

/* Saves the model (and the AdamW moments m, v of its parameters with the
 * step count, when m is not NULL). */
gboolean      lode_train_checkpoint_save (const char            *path,
                                          LodeUnet              *model,
                                          const LodeTrainConfig *config,
                                          const float           *adam_m,
                                          const float           *adam_v,
                                          gint64                 step,
                                          GError               **error);
/* Reads a checkpoint: a new model with its weights and statistics, the
 * configuration it was trained with, and (when adam_m is not NULL) freshly
 * allocated moments (NULL when the file has none) and the step. */
LodeUnet     *lode_train_checkpoint_load (const char            *path,
                                          LodeTrainConfig       *config,
                                          float                **adam_m,
                                          float                **adam_v,
                                          gint64                *step,
                                          GError               **error);
/* The same, the model on device. */
LodeUnet     *lode_train_checkpoint_load_on (const char         *path,
                                             LodeDeviceKind      device,
                                             LodeTrainConfig    *config,
                                             float             **adam_m,
                                             float             **adam_v,
                                             gint64             *step,
                                             GError            **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeTrainJob, lode_train_job_free)

G_END_DECLS
