/* lode-sam2-decoder-dev.h: SAM2.1's prompt encoder and mask decoder on a
 * compute device (the CPU or a CUDA GPU).
 *
 * The same computation as lode-sam2-decoder.h (same weights, same prompt
 * handling, same LodeSam2DecoderOutput), written plainly as one sequence of
 * kernel calls that goes through a table: lode-ops.h on the CPU, lode-ops-cuda.h
 * and lode-sam2-decoder-cuda.h on the GPU. On the GPU everything stays on the
 * device: the weights are uploaded once at construction, the embedding once
 * per patch (lode_sam2_decoder_dev_set_embedding, which also computes the
 * prompt-independent part of the first layer), and a click uploads its
 * prompt (and mask input, if any), queues the kernels and downloads the
 * low-resolution masks and the scores in one copy. Nothing is allocated on
 * the device per click.
 *
 * On the CPU it is slower than lode-sam2-decoder.h (which folds the
 * attention projections for the CPU); it exists there so that the unit
 * tests run the GPU path's data flow.
 */
#pragma once

#include <glib.h>

#include "lode-checkpoint.h"
#include "lode-device.h"
#include "lode-sam2-decoder.h"
#include "lode-sam2-types.h"

G_BEGIN_DECLS

typedef struct _LodeSam2DecoderDev LodeSam2DecoderDev;

/* Tensors from source (the names and shapes of lode_sam2_decoder_list_tensors).
 * CONFIG error for an unusable configuration, WEIGHTS error when a tensor is
 * missing, a LODE_DEVICE_ERROR when device is CUDA and there is none, a
 * LODE_OPS_ERROR when the GPU fails (out of memory included). */
LodeSam2DecoderDev *lode_sam2_decoder_dev_new       (const LodeSam2Config *config,
                                                     LodeSam2TensorSource  source,
                                                     gpointer              user_data,
                                                     LodeDeviceKind        device,
                                                     GError              **error);
LodeSam2DecoderDev *lode_sam2_decoder_dev_new_from_checkpoint (LodeCheckpoint       *checkpoint,
                                                               const LodeSam2Config *config,
                                                               LodeDeviceKind        device,
                                                               GError              **error);
void                lode_sam2_decoder_dev_free      (LodeSam2DecoderDev   *self);

LodeDeviceKind      lode_sam2_decoder_dev_device    (LodeSam2DecoderDev   *self);
const LodeSam2Config *lode_sam2_decoder_dev_get_config (LodeSam2DecoderDev *self);
int                 lode_sam2_decoder_dev_low_res_size (LodeSam2DecoderDev *self);

/* Makes embedding the one the next clicks run on: uploads it and computes
 * the first layer's prompt-independent keys. EMBEDDING error when it does
 * not fit the model. The embedding may be freed afterwards. */
gboolean lode_sam2_decoder_dev_set_embedding (LodeSam2DecoderDev      *self,
                                              const LodeSam2Embedding *embedding,
                                              GError                 **error);

/* One click on the current embedding: fills out as lode_sam2_decoder_run
 * does (clear it with lode_sam2_decoder_output_clear). PROMPT error for bad
 * prompts. An embedding must have been set (a programmer error otherwise).
 * Not thread-safe on one decoder. */
gboolean lode_sam2_decoder_dev_run (LodeSam2DecoderDev    *self,
                                    const LodeSam2Prompt  *prompt,
                                    LodeSam2DecoderOutput *out,
                                    GError               **error);

/* Timing for a benchmark: runs the click n_runs times after one warm-up run
 * and reports the mean wall-clock time of a click (prompt upload to
 * downloaded results) and the number of kernel and copy calls it queues. */
typedef struct {
  double ms_per_click;
  int    calls_per_click;
} LodeSam2DecoderDevTiming;

gboolean lode_sam2_decoder_dev_time (LodeSam2DecoderDev       *self,
                                     const LodeSam2Prompt     *prompt,
                                     int                       n_runs,
                                     LodeSam2DecoderDevTiming *timing,
                                     GError                  **error);

G_END_DECLS
