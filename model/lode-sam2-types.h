/* lode-sam2-types.h: what the SAM2.1 image encoder and the prompt decoder
 * share: the configuration and the image embedding.
 *
 * The configuration is inferred from a checkpoint's tensor shapes for the
 * four published sizes (tiny, small, base_plus, large); tests build reduced
 * configurations by hand. The embedding is what the encoder computes once per
 * patch and the decoder reads at every click. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define LODE_SAM2_MAX_BLOCKS 64

typedef struct
{
  /* Hiera trunk */
  int embed_dim;                 /* 96, 96, 112, 144 */
  int num_heads;                 /* heads of the first stage; doubled at each stage */
  int stages[4];                 /* blocks per stage */
  int n_global;                  /* blocks with global attention */
  int global_blocks[8];          /* their indices */
  int window_spec[4];            /* window size per stage */
  int pos_embed_bkg[2];          /* background positional embedding, h and w */
  int pos_embed_window;          /* window positional embedding size (8) */
  /* FPN neck */
  int d_model;                   /* 256 */
  int backbone_channels[4];      /* deepest first: 768, 384, 192, 96 for tiny */
  /* prompt encoder and mask decoder */
  int decoder_dim;               /* transformer width, = d_model */
  int decoder_heads;             /* 8 */
  int decoder_mlp;               /* 2048 */
  int decoder_depth;             /* 2 */
  int num_multimask;             /* 3 */
  gboolean use_high_res_features;
  gboolean pred_obj_scores;
  gboolean iou_prediction_use_sigmoid;
  gboolean dynamic_multimask_via_stability;
  double dynamic_multimask_stability_delta;   /* 0.05 */
  double dynamic_multimask_stability_thresh;  /* 0.98 */
  /* input */
  int image_size;                /* 1024 (the model's own) or 512 */
  const char *size_name;         /* "tiny", "small", "base_plus", "large" or "custom" */
} LodeSam2Config;

/* The encoder's output for one image at input size S (stride 16 embedding).
 * All float32, channel-major (CHW), owned by the struct. Its contents are
 * not changed once it is in use: serial (unique in the process, given by
 * lode_sam2_embedding_new) tells a device that holds a copy whether it is
 * the same embedding. */
typedef struct
{
  int    image_size;      /* S */
  int    d_model;         /* C of image_embed */
  int    embed_size;      /* S / 16 */
  float *image_embed;     /* [d_model, S/16, S/16], no_mem_embed already added */
  int    high_res_channels[2];  /* d_model/8, d_model/4: 32, 64 */
  float *high_res[2];     /* [d_model/8, S/4, S/4] and [d_model/4, S/8, S/8] after conv_s0, conv_s1 */
  guint64 serial;
} LodeSam2Embedding;

void               lode_sam2_embedding_free   (LodeSam2Embedding *e);
LodeSam2Embedding *lode_sam2_embedding_new    (int image_size,
                                               int d_model);
gsize              lode_sam2_embedding_bytes  (const LodeSam2Embedding *e);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeSam2Embedding, lode_sam2_embedding_free)

G_END_DECLS
