/* lode-sam2-train.h: fine-tuning SAM2.1's prompt encoder and mask decoder.
 *
 * The published SmallMinesDS recipe (FORMAT.md): the image encoder is frozen
 * and its cached embeddings are reused (the high-resolution features are
 * cached after conv_s0/conv_s1, which the official script computes under
 * no_grad, so those two convolutions stay frozen too); one image a step; for
 * every class present one random positive point inside its region; loss =
 * BCE on the first multimask output (its low-resolution logits upsampled
 * bilinearly to the patch, sigmoid, log(p + 1e-5) as the script writes it)
 * + 0.05 x |predicted IoU - IoU of the mask thresholded at 0.5|; AdamW.
 *
 * A LodeSam2Tuner holds the decoder's tensors with their gradients and
 * AdamW moments, runs a training forward that keeps what the backward
 * needs, and writes a new SAM2 checkpoint (safetensors) with the image
 * encoder's tensors copied from the source. No GTK, no SQLite.
 */
#pragma once

#include <gio/gio.h>

#include "lode-checkpoint.h"
#include "lode-sam2-decoder.h"
#include "lode-sam2-types.h"

G_BEGIN_DECLS

typedef struct _LodeSam2Tuner LodeSam2Tuner;

/* One prompt and its target: a positive point in patch pixels and the
 * binary target mask at the patch's size (nonzero = inside). */
typedef struct {
  int           width, height;
  const guint8 *mask;
  float         x, y;
} LodeSam2Target;

LodeSam2Tuner *lode_sam2_tuner_new                 (const LodeSam2Config *config,
                                                    LodeSam2TensorSource  source,
                                                    gpointer              user_data,
                                                    GError              **error);
LodeSam2Tuner *lode_sam2_tuner_new_from_checkpoint (LodeCheckpoint       *checkpoint,
                                                    const LodeSam2Config *config,
                                                    GError              **error);
void           lode_sam2_tuner_free                (LodeSam2Tuner        *self);

/* The decoder's tensors, in lode_sam2_decoder_list_tensors order. */
guint          lode_sam2_tuner_n_tensors           (LodeSam2Tuner        *self);
const char    *lode_sam2_tuner_tensor_name         (LodeSam2Tuner        *self,
                                                    guint                 i);
float         *lode_sam2_tuner_tensor              (LodeSam2Tuner        *self,
                                                    guint                 i,
                                                    gsize                *count);
const float   *lode_sam2_tuner_grad                (LodeSam2Tuner        *self,
                                                    guint                 i);
/* FALSE for the tensors the recipe's loss never reaches (the object score
 * head, the mask-downscaling path, the Fourier matrix): they stay as they are. */
gboolean       lode_sam2_tuner_tensor_learns       (LodeSam2Tuner        *self,
                                                    guint                 i);

void           lode_sam2_tuner_zero_grad           (LodeSam2Tuner        *self);

/* The recipe's loss averaged over the n targets of one embedding (each
 * its own prompt, as a batch), adding its gradients when accumulate; iou
 * (may be NULL) receives the mean IoU of the first multimask output at
 * threshold 0.5. */
gboolean       lode_sam2_tuner_loss                (LodeSam2Tuner           *self,
                                                    const LodeSam2Embedding *embedding,
                                                    const LodeSam2Target    *targets,
                                                    int                      n,
                                                    gboolean                 accumulate,
                                                    double                  *loss,
                                                    double                  *iou,
                                                    GError                 **error);

/* One AdamW step over the tensors that learn. */
void           lode_sam2_tuner_step                (LodeSam2Tuner        *self,
                                                    double                lr,
                                                    double                weight_decay);

/* Writes a safetensors SAM2 checkpoint: every tensor of source (converted
 * to float32) with the decoder's replaced by the tuner's. out_path must
 * differ from the source; written to a temporary file then renamed. */
gboolean       lode_sam2_tuner_save                (LodeSam2Tuner        *self,
                                                    const char           *source_path,
                                                    const char           *out_path,
                                                    GError              **error);

/* ---- the fine-tuning job ------------------------------------------------ */

/* One sample: an embedding and the patch's class map (0 background,
 * 255 unlabelled, any other value a class), owned by the caller of get
 * until lode_sam2_sample_clear. */
typedef struct {
  LodeSam2Embedding *embedding;
  guint8            *labels;
  int                width, height;
} LodeSam2Sample;

void lode_sam2_sample_clear (LodeSam2Sample *s);

/* Indices 0 .. n_train-1 are training samples, n_train .. n_train+n_val-1
 * validation samples. */
typedef struct {
  guint    n_train, n_val;
  gboolean (*get) (guint index, LodeSam2Sample *out, gpointer user_data, GError **error);
  gpointer user_data;
} LodeSam2SampleSource;

typedef struct {
  int     steps;          /* images seen, one a step */
  double  lr;             /* 1e-5 */
  double  weight_decay;   /* 4e-5 */
  guint32 seed;
  int     val_every;      /* validate every that many steps (0: at the end only) */
} LodeSam2TuneConfig;

void lode_sam2_tune_config_init_defaults (LodeSam2TuneConfig *c);

typedef struct {
  int    step, steps;
  double loss;            /* mean training loss since the last report */
  double val_iou;         /* latest validation IoU, NAN before the first */
  double seconds_left;
} LodeSam2TuneProgress;

typedef void (*LodeSam2TuneProgressFunc) (const LodeSam2TuneProgress *p, gpointer user_data);

typedef struct {
  int    steps_done;
  double first_loss;      /* mean loss of the first tenth of the steps */
  double last_loss;       /* mean loss of the last tenth */
  double val_iou_before, val_iou_after;   /* NAN without validation samples */
} LodeSam2TuneResult;

/* Validation IoU: one deterministic point per class present (from seed),
 * mean IoU of the first multimask output at threshold 0.5. */
gboolean lode_sam2_tune_validate (LodeSam2Tuner              *self,
                                  const LodeSam2SampleSource *source,
                                  guint32                     seed,
                                  double                     *iou,
                                  GError                    **error);

/* Runs the recipe. Cancelled: FALSE with G_IO_ERROR_CANCELLED, the tuner
 * keeping the weights of the last finished step. */
gboolean lode_sam2_tune_run (LodeSam2Tuner              *self,
                             const LodeSam2TuneConfig   *config,
                             const LodeSam2SampleSource *source,
                             LodeSam2TuneProgressFunc    progress,
                             gpointer                    progress_data,
                             GCancellable               *cancellable,
                             LodeSam2TuneResult         *result,
                             GError                    **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeSam2Tuner, lode_sam2_tuner_free)

G_END_DECLS
