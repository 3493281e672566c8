/* lode-sam2-encoder.h: the SAM2.1 image encoder (Hiera trunk, FPN neck and
 * the image predictor's projections), on the CPU.
 *
 * What SAM2ImagePredictor.set_image computes: the image resized to S x S
 * and normalised (lode_sam2_preprocess), the Hiera trunk, the FPN neck with
 * the lowest-resolution level dropped, the mask decoder's conv_s0 and conv_s1
 * on the two high-resolution levels and no_mem_embed added to the stride-16
 * level, returned as a LodeSam2Embedding. The neck's sine positional
 * encodings are not computed: the image predictor drops them (the decoder
 * builds its own dense positional encoding).
 *
 * Weights are converted to float32 once, at lode_sam2_encoder_new, into one
 * allocation; the work buffers of a run are one more allocation sized from
 * the configuration. The forward pass calls its kernels through a table of
 * functions (the CPU one wraps lode-ops.h), so that a CUDA table can run the
 * same sequence. One encoder runs one image at a time.
 *
 * Threads: during lode_sam2_encoder_run OpenBLAS is set to one thread and
 * the products are split over the OpenMP team instead (two thread pools
 * spinning against each other made it 3x slower on two cores); the
 * previous OpenBLAS thread count is restored afterwards. The tiny model at
 * 1024 runs in about 2 s on two cores.
 */
#pragma once

#include <gio/gio.h>

#include "lode-checkpoint.h"
#include "lode-sam2-types.h"

G_BEGIN_DECLS

typedef struct _LodeSam2Encoder LodeSam2Encoder;

/* SAM2Transforms on an RGB image: rgb is h rows of w pixels of 3 bytes;
 * out [3, s, s] receives the image scaled to [0, 1], resized to s x s as
 * torchvision's Resize does on a float tensor (bilinear, half-pixel
 * centres, antialiased when shrinking) and normalised with the ImageNet
 * mean (0.485, 0.456, 0.406) and standard deviation (0.229, 0.224, 0.225). */
void               lode_sam2_preprocess          (const guint8         *rgb,
                                                  int                   w,
                                                  int                   h,
                                                  int                   s,
                                                  float                *out);

/* Loads the image path's weights of ckpt for cfg (completed, e.g. by
 * lode_sam2_config_from_checkpoint) and prepares the positional embedding
 * for cfg->image_size. LODE_SAM2_CONFIG_ERROR when a tensor is missing or
 * has the wrong shape, LODE_CHECKPOINT_ERROR when one cannot be read. */
LodeSam2Encoder   *lode_sam2_encoder_new         (LodeCheckpoint       *ckpt,
                                                  const LodeSam2Config *cfg,
                                                  GError              **error);
void               lode_sam2_encoder_free        (LodeSam2Encoder      *self);
const LodeSam2Config *lode_sam2_encoder_config   (LodeSam2Encoder      *self);
/* Bytes of the float32 weights and of the work buffers. */
gsize              lode_sam2_encoder_weight_bytes (LodeSam2Encoder     *self);
gsize              lode_sam2_encoder_work_bytes  (LodeSam2Encoder      *self);

/* Encodes a preprocessed image [3, S, S] (S = the config's image_size).
 * cancellable (may be NULL) is looked at between Hiera blocks and before
 * each neck stage: a cancelled run ends there with G_IO_ERROR_CANCELLED,
 * the encoder ready for the next run. */
LodeSam2Embedding *lode_sam2_encoder_run         (LodeSam2Encoder      *self,
                                                  const float          *image,
                                                  GCancellable         *cancellable,
                                                  GError              **error);
/* lode_sam2_preprocess, then lode_sam2_encoder_run. */
LodeSam2Embedding *lode_sam2_encoder_run_rgb     (LodeSam2Encoder      *self,
                                                  const guint8         *rgb,
                                                  int                   w,
                                                  int                   h,
                                                  GCancellable         *cancellable,
                                                  GError              **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeSam2Encoder, lode_sam2_encoder_free)

G_END_DECLS
