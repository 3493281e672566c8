/* lode-sam2-predictor.h: click-prompted segmentation of one patch with
 * SAM2.1, as the official SAM2ImagePredictor does it, in two steps:
 *
 *   encode   once per patch (slow): the RGB patch, any size, resized to the
 *            model's input size (1024, or 512 as the faster option) ->
 *            LodeSam2Embedding, which can be saved to the on-disk cache;
 *   predict  at every click (fast): points and an optional box in patch
 *            pixels, an optional previous low-resolution mask -> candidate
 *            masks at the patch's size, their IoU scores, the object score
 *            and the low-resolution logits for the next refinement.
 *
 * Point and box coordinates are mapped as transform_coords does
 * (x / patch width * input size); the masks are the low-resolution logits
 * upsampled bilinearly (align_corners=False) straight to the patch size,
 * as postprocess_masks does, and a pixel belongs to the mask when its logit
 * is > 0.
 */
#pragma once

#include <gio/gio.h>

#include "lode-ops.h"
#include "lode-sam2-decoder.h"
#include "lode-sam2-types.h"

G_BEGIN_DECLS

/* One click's prompts in patch pixels. */
typedef struct {
  int          n_points;
  const float *points;        /* [n_points, 2]: x, y in patch pixels */
  const int   *labels;        /* [n_points]: 1 positive, 0 negative */
  gboolean     has_box;
  float        box[4];        /* x0, y0, x1, y1 in patch pixels */
  const float *low_res_mask;  /* NULL, or a previous prediction's low_res_masks (one mask) */
  gboolean     multimask;     /* three candidates, else one */
} LodeSam2Click;

typedef struct {
  int    width, height;       /* the patch size */
  int    n_masks;             /* 3 or 1 */
  float *masks;               /* [n_masks, height, width] logits; > 0 is inside */
  float  iou[3];
  float  object_score;        /* logit; > 0 when the model sees an object */
  int    best;                /* index of the highest IoU */
  int    low_res;             /* side of low_res_masks (256 at input size 1024) */
  float *low_res_masks;       /* [n_masks, low_res, low_res] logits clamped to +-32 */
  gboolean used_stability_fallback;
} LodeSam2Prediction;

void                lode_sam2_prediction_free    (LodeSam2Prediction *p);
/* Mask index as 0/1 bytes [height, width]. */
void                lode_sam2_prediction_mask_u8 (const LodeSam2Prediction *p,
                                                  int                       index,
                                                  guint8                   *out);
/* The low-res logits of mask index, for LodeSam2Click.low_res_mask. */
const float        *lode_sam2_prediction_low_res (const LodeSam2Prediction *p,
                                                  int                       index);

/* Runs the decoder for a click on a patch of patch_width x patch_height
 * whose embedding is given. PROMPT error for an empty click (no point, no
 * box), a label other than 0 or 1, or a mask input of the wrong size. */
LodeSam2Prediction *lode_sam2_decoder_predict    (LodeSam2Decoder         *decoder,
                                                  const LodeSam2Embedding *embedding,
                                                  int                      patch_width,
                                                  int                      patch_height,
                                                  const LodeSam2Click     *click,
                                                  GError                 **error);

/* ---- embedding files ---------------------------------------------------- */

/* The bytes of an embedding file: a 64-byte header (magic "LODESAME",
 * version, the model's size name, input size, shapes, CRC-32 and length of
 * the data) then the float32 arrays, little-endian. */
GBytes             *lode_sam2_embedding_serialize   (const LodeSam2Embedding *e,
                                                     const char              *model);
/* Checks everything (magic, version, model and input size when given,
 * shapes, length, CRC) before trusting it: FILE error naming what is wrong.
 * model may be NULL and image_size 0 to accept any. */
LodeSam2Embedding  *lode_sam2_embedding_deserialize (const guint8 *data,
                                                     gsize         len,
                                                     const char   *model,
                                                     int           image_size,
                                                     GError      **error);
/* Atomic write (temporary file renamed into place). */
gboolean            lode_sam2_embedding_save        (const LodeSam2Embedding *e,
                                                     const char              *model,
                                                     const char              *path,
                                                     GError                 **error);
/* Reads at most the size the header announces; errors name the file. */
LodeSam2Embedding  *lode_sam2_embedding_load        (const char  *path,
                                                     const char  *model,
                                                     int          image_size,
                                                     GError     **error);

/* ---- the predictor ------------------------------------------------------ */

typedef struct _LodeSam2Predictor LodeSam2Predictor;

/* Opens a SAM2.1 checkpoint. The configuration is inferred from its tensor
 * shapes when config is NULL; input_size is 1024 or 512 (0: the model's own).
 * The image encoder runs on the CPU; see lode_sam2_predictor_open_on. */
LodeSam2Predictor  *lode_sam2_predictor_open     (const char           *checkpoint_path,
                                                  const LodeSam2Config *config,
                                                  int                   input_size,
                                                  GError              **error);
/* The same with the image encoder on device: "cpu", "cuda" or "auto"
 * (NULL: auto; CUDA when built and a device is present). LODE_DEVICE_ERROR
 * for an unknown name or CUDA asked for without a device. With "auto", an
 * encoder that cannot be built on the GPU (out of memory) is built on the
 * CPU instead. The mask decoder (clicks) runs on the CPU. */
LodeSam2Predictor  *lode_sam2_predictor_open_on  (const char           *checkpoint_path,
                                                  const LodeSam2Config *config,
                                                  int                   input_size,
                                                  const char           *device,
                                                  GError              **error);
/* Moves the image encoder to device (as in open_on), rebuilt at the next
 * encode when it changes. */
gboolean            lode_sam2_predictor_set_device (LodeSam2Predictor  *self,
                                                  const char           *device,
                                                  GError              **error);
/* How the image encoder's products compute on CUDA from the next encode
 * (lode_sam2_encoder_set_precision; fp32 by default; nothing changes on the
 * CPU). A GPU that cannot makes that encode fail. The clicks stay fp32. */
void                lode_sam2_predictor_set_precision (LodeSam2Predictor *self,
                                                  LodePrecision       precision);
/* "cpu" or "cuda": where the image encoder runs. */
const char         *lode_sam2_predictor_device_name (LodeSam2Predictor *self);
void                lode_sam2_predictor_free     (LodeSam2Predictor    *self);
const LodeSam2Config *lode_sam2_predictor_get_config (LodeSam2Predictor *self);
/* "tiny", "small", "base_plus", "large" or "custom". */
const char         *lode_sam2_predictor_model_name (LodeSam2Predictor  *self);
LodeSam2Decoder    *lode_sam2_predictor_get_decoder (LodeSam2Predictor *self);
/* rgb: [height, width, 3] bytes, packed rows. */
LodeSam2Embedding  *lode_sam2_predictor_encode   (LodeSam2Predictor    *self,
                                                  const guint8         *rgb,
                                                  int                   width,
                                                  int                   height,
                                                  GError              **error);
/* The same, stopped between the encoder's blocks when cancellable is
 * cancelled (G_IO_ERROR_CANCELLED). */
LodeSam2Embedding  *lode_sam2_predictor_encode_cancellable (LodeSam2Predictor *self,
                                                  const guint8         *rgb,
                                                  int                   width,
                                                  int                   height,
                                                  GCancellable         *cancellable,
                                                  GError              **error);
LodeSam2Prediction *lode_sam2_predictor_predict  (LodeSam2Predictor    *self,
                                                  const LodeSam2Embedding *embedding,
                                                  int                   patch_width,
                                                  int                   patch_height,
                                                  const LodeSam2Click  *click,
                                                  GError              **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeSam2Prediction, lode_sam2_prediction_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeSam2Predictor, lode_sam2_predictor_free)

G_END_DECLS
