/* lode-prithvi.h: Prithvi-EO-2.0 (NASA/IBM) with the UperNet decoder of the
 * SmallMinesDS recipe, on the CPU or a CUDA device.
 *
 * The encoder is TerraTorch's PrithviViT with one time step:
 *   patch_embed.proj   Conv3d kernel (1, p, p) stride (1, p, p) over
 *                      [C, T=1, H, W]: a p x p convolution, one token per
 *                      patch (p = 16 for 100M/300M, 14 for 600M)
 *   pos_embed          fixed 3-D sin-cos table of the grid (1, S/p, S/p) for
 *                      the model's image size S (224, the recipe never sets
 *                      it; the checkpoint's own table is ignored, as
 *                      TerraTorch's loader replaces it), width split 6/16 for
 *                      columns, 6/16 rows, 4/16 time; interpolated bicubically
 *                      (corners aligned) to other token grids
 *   temporal / location encodings (the "-TL" checkpoints, which hold
 *                      temporal_embed_enc.scale / location_embed_enc.scale):
 *                      scale * [sin-cos(year), sin-cos(day of year)] and
 *                      scale * [sin-cos(latitude), sin-cos(longitude)], added
 *                      to every patch token when coordinates are given
 *   cls_token          prepended
 *   blocks.i           timm Block: x += proj (attention (qkv (LN1 x))),
 *                      x += fc2 (GELU (fc1 (LN2 x))), LayerNorm eps 1e-5
 *   norm               applied to the last block's output only
 * The configuration comes from the checkpoint's shapes (width, depth, MLP
 * width, patch, bands); the number of heads is not in the shapes: 16 for
 * widths 1024 (300M) and 1280 (600M), 12 for 768 (100M), 3 for 192, else
 * width / 64, unless options say otherwise.
 *
 * The decoder reads the token grids after four blocks. The published
 * training (PrithviModelFactory, UperNetDecoder with scale_modules) hands the
 * decoder all block outputs and the scale modules take the first four, so
 * the recipe's features are those of blocks 0, 1, 2 and 3 (TerraTorch's
 * newer necks pick others, e.g. 5, 11, 17, 23: options.feature_blocks).
 * Only the blocks up to the deepest one used are loaded and run, unless
 * options.load_all_blocks.
 *
 * The segmenter pads patches to multiples of twice the patch size (128 is
 * one for patch 16; with the 600M's 14 a 128 patch becomes 140, a 10 x 10
 * grid), runs, upsamples the decoder's logits to the padded size and crops
 * the patch back, as TerraTorch's PixelWiseModel does.
 *
 * Training (lode_prithvi_model_train_step) follows the recipe: the decoder
 * learns, the encoder is frozen. With unfreeze_blocks N > 0 the last N of
 * the blocks that feed the decoder (blocks d - N + 1 .. d, d the deepest of
 * feature_blocks: with the recipe's 0-3 and N = 2, blocks 2 and 3) learn
 * with it, by the same AdamW (lr and weight decay as the decoder's). Block
 * k's output gets the decoder's gradient at its feature (through the final
 * norm for the encoder's last block) plus block k + 1's input gradient; the
 * blocks below run forward only and keep nothing.
 *
 * Input: the six bands B, G, R, narrow NIR, SWIR1, SWIR2 (SmallMinesDS
 * indices 0, 1, 2, 7, 8, 9) in reflectance x 10000, normalised with the
 * published SmallMinesDS mean and standard deviation; NaN (nodata) becomes
 * 0 before normalising, as the training's no_data_replace=0 does.
 */
#pragma once

#include <gio/gio.h>

#include "lode-checkpoint.h"
#include "lode-device.h"
#include "lode-ops.h"
#include "lode-train.h"
#include "lode-upernet.h"
#include "lode-vit.h"

G_BEGIN_DECLS

#define LODE_PRITHVI_ERROR (lode_prithvi_error_quark ())
GQuark lode_prithvi_error_quark (void);

typedef enum {
  LODE_PRITHVI_ERROR_CHECKPOINT,  /* missing or misshapen encoder tensors */
  LODE_PRITHVI_ERROR_CONFIG,      /* options that do not fit the checkpoint */
  LODE_PRITHVI_ERROR_INPUT,       /* bands, sizes or blocks the model cannot take */
  LODE_PRITHVI_ERROR_MEMORY,      /* the weights or activations do not fit */
} LodePrithviError;

#define LODE_PRITHVI_N_BANDS 6

/* SmallMinesDS band indices of the six input bands, and the published
 * normalisation statistics of those bands. */
extern const int    lode_prithvi_band_indices[LODE_PRITHVI_N_BANDS];
extern const double lode_prithvi_band_mean[LODE_PRITHVI_N_BANDS];
extern const double lode_prithvi_band_std[LODE_PRITHVI_N_BANDS];

/* How patches whose sides are not multiples of twice the patch size are
 * padded (by reflection) before the encoder, the logits being cropped back
 * afterwards. */
typedef enum {
  LODE_PRITHVI_PAD_END,     /* right and bottom: TerraTorch 0.99-1.1, the
                             * published SmallMinesDS training */
  LODE_PRITHVI_PAD_CENTRE,  /* both sides evenly: TerraTorch 1.2 */
} LodePrithviPadding;

typedef struct {
  int      num_heads;           /* 0: from the width */
  int      img_size;            /* 0: 224, the size of the position table */
  int      feature_blocks[4];   /* blocks feeding the decoder; all -1: 0, 1, 2, 3 */
  gboolean load_all_blocks;     /* load every block, not only those used */
  LodePrithviPadding padding;   /* LODE_PRITHVI_PAD_END */
} LodePrithviOptions;

typedef struct {
  int      embed_dim;           /* 1024 (300M), 1280 (600M) */
  int      depth;               /* blocks in the checkpoint: 24, 32 */
  int      loaded_depth;        /* blocks loaded (and runnable) */
  int      num_heads;           /* 16 */
  int      mlp_hidden;          /* 4096, 5120 */
  int      in_chans;            /* 6 */
  int      patch_size;          /* 16, 14 */
  int      img_size;            /* 224 */
  gboolean temporal_encoding;
  gboolean location_encoding;
  int      feature_blocks[4];
  const char *size_name;        /* "300M", "600M", "100M", "tiny" or "custom" */
} LodePrithviConfig;

/* Per-image coordinates for the -TL encodings; either array may be NULL. */
typedef struct {
  const float *temporal;        /* [n, 2]: year, day of year (1-366) */
  const float *location;        /* [n, 2]: latitude, longitude in degrees */
} LodePrithviCoords;

typedef struct _LodePrithviEncoder LodePrithviEncoder;
typedef struct _LodePrithviModel LodePrithviModel;

void lode_prithvi_options_init (LodePrithviOptions *options);

/* The published configuration "100M", "300M", "600M" or "tiny" (the -TL
 * tiny model, with both encodings), features from blocks 0-3, every block
 * loaded; FALSE for another name. */
gboolean lode_prithvi_config_init (LodePrithviConfig *config,
                                   const char        *name);

/* ---- encoder ------------------------------------------------------------ */

/* The encoder in checkpoint: the official Prithvi_EO_V2_*.pt (PrithviMAE,
 * "encoder." names), a TerraTorch fine-tuned model or Lightning checkpoint
 * (any prefix before "patch_embed.proj.weight"). options may be NULL. */
LodePrithviEncoder *lode_prithvi_encoder_new_from_checkpoint (LodeCheckpoint           *checkpoint,
                                                              const LodePrithviOptions *options,
                                                              GError                  **error);
/* An encoder of configuration config with generated weights (Xavier
 * uniform for the linear layers and the patch embedding, norms 1 and 0,
 * class token and encoding scales as TerraTorch initialises them) from
 * seed; config->loaded_depth blocks (depth when 0). For benchmarks. */
LodePrithviEncoder *lode_prithvi_encoder_new        (const LodePrithviConfig *config,
                                                     guint64                  seed,
                                                     GError                 **error);
void                lode_prithvi_encoder_free       (LodePrithviEncoder *self);
const LodePrithviConfig *lode_prithvi_encoder_get_config (LodePrithviEncoder *self);

/* The token grid of an h x w input: floor (h / p) x floor (w / p). */
void     lode_prithvi_encoder_grid    (LodePrithviEncoder *self,
                                       int                 h,
                                       int                 w,
                                       int                *gh,
                                       int                *gw);

/* Runs the encoder on normalised input [n, in_chans, h, w] and copies the
 * output of each block blocks[i] (0-based, below loaded_depth; the last
 * block's after the final norm) to outputs[i], [n, 1 + gh gw, E] with the
 * class token first. coords may be NULL. */
gboolean lode_prithvi_encoder_forward (LodePrithviEncoder      *self,
                                       const float             *input,
                                       int                      n,
                                       int                      h,
                                       int                      w,
                                       const LodePrithviCoords *coords,
                                       const int               *blocks,
                                       int                      n_blocks,
                                       float *const            *outputs,
                                       GError                 **error);

/* Parameter param of block block (below loaded_depth), numel (may be
 * NULL) values; on CUDA, as of the last lode_prithvi_model_sync_host. */
const float *lode_prithvi_encoder_get_block_param (LodePrithviEncoder *self,
                                                   int                 block,
                                                   LodeVitParam        param,
                                                   gsize              *numel);

/* [n, 1 + gh gw, E] tokens -> [n, E, gh, gw] feature map, class token
 * dropped (TerraTorch's ReshapeTokensToImage). */
void     lode_prithvi_tokens_to_image (float       *out,
                                       const float *tokens,
                                       int          n,
                                       int          gh,
                                       int          gw,
                                       int          embed_dim);

/* ---- the segmenter ------------------------------------------------------ */

/* Encoder from path and decoder from decoder_path, or from path as well
 * when decoder_path is NULL (a fine-tuned TerraTorch model holds both). */
LodePrithviModel *lode_prithvi_model_new_from_checkpoint (const char               *path,
                                                          const char               *decoder_path,
                                                          const LodePrithviOptions *options,
                                                          GError                  **error);
/* The encoder from path with a freshly initialised decoder of classes
 * classes and channels channels (0: 256, the recipe's), for training. */
LodePrithviModel *lode_prithvi_model_new_with_decoder    (const char               *path,
                                                          int                       classes,
                                                          int                       channels,
                                                          guint64                   seed,
                                                          const LodePrithviOptions *options,
                                                          GError                  **error);
/* A model of encoder and decoder (both taken). */
LodePrithviModel *lode_prithvi_model_new         (LodePrithviEncoder *encoder,
                                                  LodeUpernet        *decoder);
/* The same on device: for CUDA a context is made and every weight is
 * copied to the GPU once; prediction then runs there (the patches are
 * normalised and padded on the host, the logits cropped there). An error
 * (LODE_DEVICE_ERROR_UNAVAILABLE without CUDA or a device, LODE_OPS_ERROR
 * when the GPU fails or lacks memory) frees encoder and decoder. The
 * models on CUDA predict, evaluate and train there (the decoder, and the
 * unfrozen blocks with it). */
LodePrithviModel *lode_prithvi_model_new_on      (LodePrithviEncoder *encoder,
                                                  LodeUpernet        *decoder,
                                                  LodeDeviceKind      device,
                                                  GError            **error);
/* lode_prithvi_model_new_from_checkpoint on device. */
LodePrithviModel *lode_prithvi_model_new_from_checkpoint_on (const char               *path,
                                                             const char               *decoder_path,
                                                             const LodePrithviOptions *options,
                                                             LodeDeviceKind            device,
                                                             GError                  **error);
LodeDeviceKind    lode_prithvi_model_get_device  (LodePrithviModel *self);
/* The decoder's values (running statistics included) and gradients copied
 * from the device to the host arrays of lode_upernet_tensor_data and
 * lode_upernet_tensor_grad, and those of the trained encoder blocks to
 * lode_prithvi_encoder_get_block_param and
 * lode_prithvi_model_get_block_grad; nothing to do on the CPU. */
gboolean          lode_prithvi_model_sync_host   (LodePrithviModel  *self,
                                                  GError           **error);
/* Moves a model to device (the weights copied once; back to the CPU the
 * copies are freed). Not while it predicts. On failure the model stays on
 * the CPU. */
gboolean          lode_prithvi_model_use_device  (LodePrithviModel  *self,
                                                  LodeDeviceKind     device,
                                                  GError           **error);
/* How products and convolutions compute on CUDA, now and after a move to
 * CUDA (LodePrecision; fp32 by default, matching the CPU): TF32 or bf16
 * tensor cores, weights and optimiser state kept fp32. FALSE with a
 * LODE_OPS_ERROR when the GPU cannot (bf16 before compute capability 8.0).
 * Nothing changes on the CPU. */
gboolean          lode_prithvi_model_set_precision (LodePrithviModel *self,
                                                  LodePrecision     precision,
                                                  GError          **error);
void              lode_prithvi_model_free        (LodePrithviModel *self);
void              lode_prithvi_model_set_padding (LodePrithviModel   *self,
                                                  LodePrithviPadding  padding);
LodePrithviEncoder *lode_prithvi_model_get_encoder (LodePrithviModel *self);
LodeUpernet      *lode_prithvi_model_get_decoder (LodePrithviModel *self);
int               lode_prithvi_model_get_classes (LodePrithviModel *self);

/* Selects the six bands from raw [n, n_bands, h, w] (13 SmallMinesDS bands,
 * or the 6 already chosen) and normalises them into out [n, 6, h, w]. */
gboolean lode_prithvi_normalise (float       *out,
                                 const float *raw,
                                 int          n,
                                 int          n_bands,
                                 int          h,
                                 int          w,
                                 GError     **error);

/* The decoder's four input maps for n patches (raw as for
 * lode_prithvi_normalise, padded as for prediction), computed on the
 * model's device and copied to maps[i], [n, E, gh, gw] of the padded
 * size's token grid. coords may be NULL. */
gboolean lode_prithvi_model_features (LodePrithviModel        *self,
                                      const float             *raw,
                                      int                      n,
                                      int                      n_bands,
                                      int                      h,
                                      int                      w,
                                      const LodePrithviCoords *coords,
                                      float *const             maps[4],
                                      GError                 **error);

/* Segments n patches at once: raw [n, n_bands, h, w] as for
 * lode_prithvi_normalise. Writes logits [n, classes, h, w] (the decoder's
 * output upsampled bilinearly to the input size) and/or masks [n, h, w]
 * (the arg max); either may be NULL. coords and cancellable may be NULL;
 * patches go through in groups of 8, and cancellation is seen between
 * groups (G_IO_ERROR_CANCELLED). Several threads may predict with one
 * model at once, but not while it trains. */
gboolean lode_prithvi_model_predict (LodePrithviModel        *self,
                                     const float             *raw,
                                     int                      n,
                                     int                      n_bands,
                                     int                      h,
                                     int                      w,
                                     const LodePrithviCoords *coords,
                                     float                   *logits,
                                     guint8                  *masks,
                                     GCancellable            *cancellable,
                                     GError                 **error);

/* Writes the decoder and head as a safetensors file with TerraTorch's
 * names ("decoder.fpn1.0.weight", ..., "head.head.2.bias"; running
 * statistics included), and every encoder block that has been trained
 * (unfreeze_blocks) as "encoder.blocks.N.attn.qkv.weight", ...;
 * lode_prithvi_model_new_from_checkpoint reads it back as decoder_path, the
 * blocks it holds replacing those of the encoder's checkpoint. Written to a
 * temporary file and renamed. */
gboolean lode_prithvi_model_save_decoder (LodePrithviModel *self,
                                          const char       *path,
                                          GError          **error);

/* ---- training the decoder (and the last blocks) -------------------------- */

typedef struct {
  float    lr;             /* 1e-3 */
  float    weight_decay;   /* 0.05 (AdamW, betas 0.9, 0.999, eps 1e-8) */
  float    head_dropout;   /* 0.1 */
  gboolean flips;          /* random horizontal and vertical flips, p 0.5 each */
  int      ignore_index;   /* mask value left out of the loss: 255 */
  guint64  seed;
  int      unfreeze_blocks; /* 0: the encoder frozen (the recipe); N: its
                             * last N blocks feeding the decoder trained too */
  const float *class_weights; /* cross-entropy weight of each class (the
                               * decoder's class count of them, not kept);
                               * NULL: all 1 (the recipe) */
  float    dice_weight;    /* soft Dice added with this weight; 0 (the
                            * recipe): cross-entropy alone */
} LodePrithviTrainOptions;

/* The published recipe's values. */
void     lode_prithvi_train_options_init (LodePrithviTrainOptions *options);

/* How many blocks can be unfrozen: those up to the deepest feature block
 * (4 for the recipe's 0-3). */
int      lode_prithvi_model_get_max_unfreeze (LodePrithviModel *self);
/* FALSE (LODE_PRITHVI_ERROR_CONFIG, saying what is allowed) unless
 * 0 <= unfreeze_blocks <= lode_prithvi_model_get_max_unfreeze. */
gboolean lode_prithvi_model_check_unfreeze   (LodePrithviModel *self,
                                              int               unfreeze_blocks,
                                              GError          **error);
/* The gradient of parameter param of block block from the last training
 * step that trained it, or NULL when none has; on CUDA, as of the last
 * lode_prithvi_model_sync_host. */
const float *lode_prithvi_model_get_block_grad (LodePrithviModel *self,
                                                int               block,
                                                LodeVitParam      param);

/* One AdamW step of the decoder (and of options->unfreeze_blocks blocks)
 * on a batch of n >= 2 patches: raw and coords (may be NULL) as for
 * lode_prithvi_model_predict, masks [n, h, w] of class indices (values
 * at or above the class count, or ignore_index, are left out), flipped
 * at random from the seed and step. Cross-entropy on the logits upsampled
 * to the patch, as TerraTorch computes it, with options->class_weights,
 * plus options->dice_weight times the soft Dice loss: the U-Net's loss
 * (lode_unet_loss: lode_grad_cross_entropy, lode_grad_dice); *loss (may
 * be NULL) gets its value before the step. */
gboolean lode_prithvi_model_train_step (LodePrithviModel              *self,
                                        const LodePrithviTrainOptions *options,
                                        const float                   *raw,
                                        const guint8                  *masks,
                                        int                            n,
                                        int                            n_bands,
                                        int                            h,
                                        int                            w,
                                        const LodePrithviCoords       *coords,
                                        gint64                         step,
                                        double                        *loss,
                                        GError                       **error);

/* The decoder (with unfreeze_blocks blocks, as in LodePrithviTrainOptions)
 * trained on source as lode-train's job trains a U-Net, with
 * its configuration and sample source: config->batch_size (at least 2),
 * epochs, max_steps, lr, weight_decay, augment (flips), seed,
 * ignore_index, class_weights, dice_weight and classes (the decoder's)
 * are used; the samples hold the
 * six bands (or all 13). For a model with temporal or location encodings,
 * source->get_coords (when not NULL) gives each sample's coordinates; a
 * batch gets the dates when every sample in it has one, and the locations
 * likewise, else that encoding is left out for the batch. Batches are drawn shuffled per epoch; after each
 * epoch the validation split is scored (progress gets the metrics) and the
 * decoder saved to checkpoint_path (may be NULL) as by
 * lode_prithvi_model_save_decoder, with the training state beside it (see
 * lode_prithvi_model_load_train_state). A cancelled run saves the last
 * whole step and fails with G_IO_ERROR_CANCELLED. */
gboolean lode_prithvi_model_train    (LodePrithviModel       *self,
                                      const LodeTrainConfig  *config,
                                      int                     unfreeze_blocks,
                                      const LodeTrainSource  *source,
                                      const char             *checkpoint_path,
                                      LodeTrainProgressFunc   progress,
                                      gpointer                user_data,
                                      GCancellable           *cancellable,
                                      GError                **error);
/* lode_prithvi_model_train continued from first_step (the steps done, as
 * lode_prithvi_model_load_train_state gives): the run goes on in that
 * step's epoch, with that epoch's order drawn again from the seed, so that
 * stopping and resuming ends with the same decoder as one run. */
gboolean lode_prithvi_model_train_from (LodePrithviModel       *self,
                                        const LodeTrainConfig  *config,
                                        int                     unfreeze_blocks,
                                        const LodeTrainSource  *source,
                                        const char             *checkpoint_path,
                                        gint64                  first_step,
                                        LodeTrainProgressFunc   progress,
                                        gpointer                user_data,
                                        GCancellable           *cancellable,
                                        GError                **error);
/* The training state of a decoder file written by lode_prithvi_model_train
 * (the model made from it, with it as decoder_path): the AdamW moments of
 * the decoder and the trained blocks, stored as "lode.adamw.m.NAME" and
 * "lode.adamw.v.NAME" tensors (which loaders of the decoder skip), and in
 * the metadata the steps done ("lode.step"), the AdamW step counts, the
 * seed, batch size and unfrozen blocks. Restores the moments and counts
 * (onto the model's device) and gives the steps done in *step (may be
 * NULL). Fails with LODE_PRITHVI_ERROR_CHECKPOINT when the file holds no
 * training state (a decoder saved by lode_prithvi_model_save_decoder) and
 * LODE_PRITHVI_ERROR_CONFIG when config's seed or batch size or
 * unfreeze_blocks differ from the run's. */
gboolean lode_prithvi_model_load_train_state (LodePrithviModel      *self,
                                              const char            *path,
                                              const LodeTrainConfig *config,
                                              int                    unfreeze_blocks,
                                              gint64                *step,
                                              GError               **error);
/* Scores the model on a split of source (per-class IoU, mean IoU, micro
 * F1, accuracy over the labelled pixels), in batches of 8, with the
 * coordinates of source->get_coords as lode_prithvi_model_train. */
gboolean lode_prithvi_model_evaluate (LodePrithviModel       *self,
                                      const LodeTrainConfig  *config,
                                      const LodeTrainSource  *source,
                                      LodeTrainSplit          split,
                                      LodeTrainMetrics       *metrics,
                                      GCancellable           *cancellable,
                                      GError                **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodePrithviEncoder, lode_prithvi_encoder_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodePrithviModel, lode_prithvi_model_free)

G_END_DECLS
