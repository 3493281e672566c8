/* lode-sam2-decoder.h: SAM2.1's prompt encoder and mask decoder on the CPU.
 *
 * The fast half of click-prompted segmentation: given the image embedding
 * of one patch (lode-sam2-types.h) and the prompts of one click (points,
 * box corners, an optional previous low-resolution mask), it computes the
 * candidate mask logits at 4 x the embedding size (256 x 256 at input size
 * 1024), their IoU scores and the object score, as the official
 * PromptEncoder + MaskDecoder (sam2/modeling/sam/) do for one image.
 *
 * Coordinates here are in input-image pixels (0 .. image_size); the
 * predictor (lode-sam2-predictor.h) maps patch pixels to them.
 *
 * The weights are the checkpoint tensors under "sam_prompt_encoder." and
 * "sam_mask_decoder." (except conv_s0/conv_s1, which the encoder applies to
 * the high-resolution features). The prompt-independent part of the first
 * transformer layer is computed once per embedding and kept.
 */
#pragma once

#include <glib.h>

#include "lode-checkpoint.h"
#include "lode-sam2-types.h"
#include "lode-tensor.h"

G_BEGIN_DECLS

#define LODE_SAM2_ERROR (lode_sam2_error_quark ())
GQuark lode_sam2_error_quark (void);

typedef enum {
  LODE_SAM2_ERROR_WEIGHTS,    /* a tensor is missing or has the wrong shape */
  LODE_SAM2_ERROR_CONFIG,     /* the configuration cannot be used */
  LODE_SAM2_ERROR_PROMPT,     /* bad prompts (no points, bad labels, sizes) */
  LODE_SAM2_ERROR_EMBEDDING,  /* the embedding does not fit the model */
  LODE_SAM2_ERROR_FILE,       /* an embedding file is unreadable or damaged */
} LodeSam2Error;

/* Point labels, as the official code numbers them. */
enum {
  LODE_SAM2_LABEL_PAD = -1,
  LODE_SAM2_LABEL_NEGATIVE = 0,
  LODE_SAM2_LABEL_POSITIVE = 1,
  LODE_SAM2_LABEL_BOX_TOP_LEFT = 2,
  LODE_SAM2_LABEL_BOX_BOTTOM_RIGHT = 3,
};

#define LODE_SAM2_MAX_POINTS 64

/* Where the decoder's tensors come from: returns the tensor of that name,
 * which must have the given shape, or NULL with error set. */
typedef LodeTensor *(*LodeSam2TensorSource) (const char   *name,
                                             int           ndim,
                                             const gint64 *shape,
                                             gpointer      user_data,
                                             GError      **error);

typedef struct _LodeSam2Decoder LodeSam2Decoder;

/* A LodeSam2TensorSource that reads from user_data, a LodeCheckpoint:
 * WEIGHTS error naming the tensor when it is absent or of another shape. */
LodeTensor *lode_sam2_checkpoint_source (const char   *name,
                                         int           ndim,
                                         const gint64 *shape,
                                         gpointer      user_data,
                                         GError      **error);
/* CONFIG error unless the decoder can be built for config. */
gboolean    lode_sam2_decoder_check_config (const LodeSam2Config *config,
                                            GError              **error);

LodeSam2Decoder *lode_sam2_decoder_new             (const LodeSam2Config *config,
                                                    LodeSam2TensorSource  source,
                                                    gpointer              user_data,
                                                    GError              **error);
/* Reads the tensors from a checkpoint; WEIGHTS error naming the tensor when
 * one is absent or of another shape. */
LodeSam2Decoder *lode_sam2_decoder_new_from_checkpoint (LodeCheckpoint       *checkpoint,
                                                        const LodeSam2Config *config,
                                                        GError              **error);
void             lode_sam2_decoder_free            (LodeSam2Decoder      *self);

/* Calls visit for every tensor the decoder reads under config, with the
 * shape it must have, in a fixed order (to build checkpoints). */
typedef void (*LodeSam2TensorVisit) (const char   *name,
                                     int           ndim,
                                     const gint64 *shape,
                                     gpointer      user_data);
void             lode_sam2_decoder_list_tensors    (const LodeSam2Config *config,
                                                    LodeSam2TensorVisit   visit,
                                                    gpointer              user_data);
const LodeSam2Config *lode_sam2_decoder_get_config (LodeSam2Decoder      *self);
/* Side of the low-resolution masks: 4 * image_size / 16. */
int              lode_sam2_decoder_low_res_size    (LodeSam2Decoder      *self);

/* One click's prompts, in input-image pixels. Box corners may also be
 * given as points with labels 2 and 3; the official image predictor puts
 * the box first, then the points, then one padding point. */
typedef struct {
  int          n_points;
  const float *points;        /* [n_points, 2]: x, y */
  const int   *labels;        /* [n_points]: 1 positive, 0 negative, 2/3 box corners, -1 padding */
  gboolean     has_box;
  float        box[4];        /* x0, y0, x1, y1 */
  const float *mask_input;    /* NULL, or previous low-res logits [low_res, low_res] */
  gboolean     multimask;     /* three candidates, else one */
} LodeSam2Prompt;

/* Rows of the sparse prompt as the official image predictor orders them:
 * the box corners (labels 2, 3), the points, one padding point (label -1),
 * x, y, label each, into rows [LODE_SAM2_PROMPT_ROWS, 3]. Returns their
 * count, or -1 with a PROMPT error for bad points or labels. */
#define LODE_SAM2_PROMPT_ROWS (LODE_SAM2_MAX_POINTS + 3)
int  lode_sam2_prompt_rows (const LodeSam2Prompt *prompt,
                            float                *rows,
                            GError              **error);

typedef struct {
  int    n_masks;             /* 3 with multimask, else 1 */
  int    low_res;             /* side of the low-resolution masks */
  float *low_res_masks;       /* [n_masks, low_res, low_res] logits, not clamped */
  float  iou[3];              /* predicted IoU per mask */
  float  object_score;        /* logit: > 0 when an object is present */
  int    best;                /* index of the highest IoU */
  gboolean used_stability_fallback; /* single mask replaced by the best candidate */
} LodeSam2DecoderOutput;

void lode_sam2_decoder_output_clear (LodeSam2DecoderOutput *out);

/* Runs the prompt encoder and the mask decoder. The embedding must have the
 * decoder's image size and width (EMBEDDING error otherwise); out is filled
 * (clear it with lode_sam2_decoder_output_clear). Not thread-safe on one
 * decoder: it keeps per-embedding scratch. */
gboolean lode_sam2_decoder_run (LodeSam2Decoder         *self,
                                const LodeSam2Embedding *embedding,
                                const LodeSam2Prompt    *prompt,
                                LodeSam2DecoderOutput   *out,
                                GError                 **error);

/* Fills out's masks and scores (the other fields are left as they are)
 * from the low-res logits of the four mask tokens masks [4, low_res^2] and
 * their predicted IoU iou_all [4], as the official decoder chooses: with
 * multimask tokens 1-3 and the best of them by IoU; otherwise token 0, or
 * the best of 1-3 when token 0's mask is unstable
 * (dynamic_multimask_via_stability). */
void lode_sam2_decoder_select_masks (const LodeSam2Config  *config,
                                     const float           *masks,
                                     const float           *iou_all,
                                     int                    low_res,
                                     gboolean               multimask,
                                     LodeSam2DecoderOutput *out);

/* The stability score of mask logits (count > delta) / (count > -delta),
 * 1 when nothing is above -delta. */
double lode_sam2_stability_score (const float *logits,
                                  gsize        count,
                                  double       delta);

G_END_DECLS
