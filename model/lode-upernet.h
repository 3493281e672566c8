/* lode-upernet.h: the UperNet decoder and segmentation head that the
 * SmallMinesDS recipe puts on Prithvi-EO-2.0, on the CPU.
 *
 * TerraTorch's UperNetDecoder with scale_modules (the published training
 * script's decoder_scale_modules=True) and its SegmentationHead, tensor for
 * tensor and name for name:
 *   fpn1            ConvTranspose 2x2/2 (E -> E/2), BatchNorm, GELU,
 *                   ConvTranspose 2x2/2 (E/2 -> E/4): feature 0 at 4x
 *   fpn2            ConvTranspose 2x2/2 (E -> E/2): feature 1 at 2x
 *   fpn3            identity: feature 2 at 1x
 *   fpn4            max pool 2x2/2: feature 3 at 1/2
 *   psp_modules.i   adaptive average pool to 1, 2, 3, 6, then a ConvModule
 *                   1x1 (E -> C), upsampled back (bilinear, corners aligned)
 *   bottleneck      ConvModule 3x3 over [feature 3, the four pools] -> C
 *   lateral_convs.i ConvModule 1x1 on the three larger scales -> C
 *   top-down path   each level plus the next coarser one upsampled
 *   fpn_convs.i     ConvModule 3x3 on the three larger levels
 *   fpn_bottleneck  ConvModule 3x3 over the four levels upsampled to the
 *                   finest -> C
 *   head            dropout 0.1 (identity at inference), conv 1x1 C -> K
 * where ConvModule = conv without bias, BatchNorm (eps 1e-5), ReLU, and E is
 * the width of the ViT, C the decoder's channels (256), K the classes.
 * State-dict names are those of a TerraTorch PixelWiseModel:
 * "decoder.fpn1.0.weight", ..., "head.head.2.weight" (a Lightning
 * checkpoint adds "model." in front: any common prefix is accepted).
 *
 * Inputs are four feature maps [n, E, g_h, g_w] (token grids); the logits
 * come out at [n, K, 4 g_h, 4 g_w]. Parameters and batch-norm statistics
 * live in one allocation, listed by name.
 */
#pragma once

#include <glib.h>

#include "lode-checkpoint.h"
#include "lode-grad.h"
#include "lode-prithvi-backend.h"

G_BEGIN_DECLS

#define LODE_UPERNET_ERROR (lode_upernet_error_quark ())
GQuark lode_upernet_error_quark (void);

typedef enum {
  LODE_UPERNET_ERROR_CONFIG,      /* impossible widths or class count */
  LODE_UPERNET_ERROR_CHECKPOINT,  /* missing or misshapen decoder tensors */
  LODE_UPERNET_ERROR_SIZE,        /* a token grid too small for the pyramid */
} LodeUpernetError;

#define LODE_UPERNET_N_POOLS 4

typedef struct {
  int embed_dim;    /* E: width of each input feature map, multiple of 4 */
  int channels;     /* C: 256 in the recipe */
  int classes;      /* K: 2 for SmallMinesDS, up to 256 */
} LodeUpernetConfig;

typedef struct _LodeUpernet LodeUpernet;

/* The pooling sizes of the pyramid pooling module: 1, 2, 3, 6. */
extern const int lode_upernet_pool_scales[LODE_UPERNET_N_POOLS];

/* A decoder initialised as PyTorch initialises these layers (uniform
 * +-1/sqrt(fan_in) for convolution weights and biases, batch norm 1 and 0,
 * running mean 0 and variance 1) from a generator seeded with seed. */
LodeUpernet *lode_upernet_new              (const LodeUpernetConfig *config,
                                            guint64                  seed,
                                            GError                 **error);
/* The decoder and head found in checkpoint (the tensors whose names end in
 * "fpn1.0.weight" and "head.head.2.weight" give the prefixes); the
 * configuration is read from the shapes. */
LodeUpernet *lode_upernet_new_from_checkpoint (LodeCheckpoint  *checkpoint,
                                               GError         **error);
void         lode_upernet_free             (LodeUpernet             *self);
const LodeUpernetConfig *lode_upernet_get_config (LodeUpernet       *self);

/* Names that start with this hold Lode's training state (AdamW moments,
 * "lode.adamw.m.decoder.fpn1.0.weight", ...) beside a model's tensors;
 * lode_upernet_checkpoint_find never finds them. */
#define LODE_UPERNET_STATE_PREFIX "lode."

/* The first tensor of checkpoint named suffix or ending in "." suffix
 * (how a model's prefix inside a bigger checkpoint is found), or NULL;
 * names starting with LODE_UPERNET_STATE_PREFIX are skipped. */
const char  *lode_upernet_checkpoint_find  (LodeCheckpoint *checkpoint,
                                            const char     *suffix);

/* TRUE when checkpoint holds an UperNet decoder (a name ending in
 * "fpn1.0.weight"). */
gboolean     lode_upernet_checkpoint_has_decoder (LodeCheckpoint *checkpoint);

/* ---- the tensors, by name (without prefix) ----------------------------- */

guint        lode_upernet_n_tensors        (LodeUpernet  *self);
/* "decoder.fpn1.0.weight", ..., "head.head.2.bias". */
const char  *lode_upernet_tensor_name      (LodeUpernet  *self,
                                            guint         i);
/* Its shape; returns ndim (1 or 4). */
int          lode_upernet_tensor_shape     (LodeUpernet  *self,
                                            guint         i,
                                            gint64        shape[4]);
gsize        lode_upernet_tensor_numel     (LodeUpernet  *self,
                                            guint         i);
float       *lode_upernet_tensor_data      (LodeUpernet  *self,
                                            guint         i);
/* TRUE for the batch-norm running statistics. */
gboolean     lode_upernet_tensor_is_buffer (LodeUpernet  *self,
                                            guint         i);
/* Index of a tensor by name, -1 when there is none. */
int          lode_upernet_find_tensor      (LodeUpernet  *self,
                                            const char   *name);
/* Number of trainable values (15,082,242 for the 300M recipe). */
gsize        lode_upernet_n_params         (LodeUpernet  *self);

/* ---- running ------------------------------------------------------------ */

/* Inference: features[i] is [n, E, gh, gw] (the same grid for the four);
 * logits [n, K, 4 gh, 4 gw]. gh and gw must be at least 2. */
gboolean     lode_upernet_forward          (LodeUpernet  *self,
                                            const float  *const features[4],
                                            int           n,
                                            int           gh,
                                            int           gw,
                                            float        *logits,
                                            GError      **error);

/* ---- on a device ------------------------------------------------------------ */

/* Puts the decoder's values on the device of be (a copy on CUDA, the
 * values themselves on the CPU, which is how a decoder starts); replaces an
 * earlier binding. */
gboolean     lode_upernet_bind             (LodeUpernet          *self,
                                            LodePrithviBackend   *be,
                                            GError              **error);
/* lode_upernet_forward with be's kernels (the backend of the last
 * lode_upernet_bind): features and logits are be's buffers. Kernel failures
 * stay in be (lode_prithvi_backend_check); FALSE only for a grid too small. */
gboolean     lode_upernet_forward_on       (LodeUpernet          *self,
                                            LodePrithviBackend   *be,
                                            const float  *const   features[4],
                                            int                   n,
                                            int                   gh,
                                            int                   gw,
                                            float                *logits,
                                            GError              **error);

/* The training pass on be's device (the backend of the last
 * lode_upernet_bind): features, logits, dlogits, dfeatures are be's
 * buffers; gradients, moments and running statistics stay on the device
 * until lode_upernet_sync_host. Kernel failures stay in be. */
gboolean     lode_upernet_forward_train_on (LodeUpernet          *self,
                                            LodePrithviBackend   *be,
                                            const float  *const   features[4],
                                            int                   n,
                                            int                   gh,
                                            int                   gw,
                                            float                 dropout,
                                            guint64               dropout_seed,
                                            int                   out_h,
                                            int                   out_w,
                                            float                *logits,
                                            GError              **error);
/* dfeatures may be NULL (a frozen encoder). */
gboolean     lode_upernet_backward_on      (LodeUpernet          *self,
                                            LodePrithviBackend   *be,
                                            const float          *dlogits,
                                            float *const          dfeatures[4]);
gboolean     lode_upernet_zero_grad_on     (LodeUpernet          *self,
                                            LodePrithviBackend   *be);
gboolean     lode_upernet_adamw_step_on    (LodeUpernet          *self,
                                            LodePrithviBackend   *be,
                                            const LodeAdamW      *opt);
/* Copies the values (running statistics included), gradients and AdamW
 * moments from the device back to the host arrays that
 * lode_upernet_tensor_data, lode_upernet_tensor_grad and
 * lode_upernet_tensor_moment give (nothing to do on the CPU). */
gboolean     lode_upernet_sync_host        (LodeUpernet          *self,
                                            GError              **error);

/* ---- training ------------------------------------------------------------ */

/* The forward of a training step: batch statistics in every batch norm
 * (the running ones move with momentum 0.1), dropout with probability
 * dropout on the head's input (mask drawn from dropout_seed), logits
 * upsampled bilinearly to [n, K, out_h, out_w] as TerraTorch's rescale
 * does. Keeps the activations (and pointers to features, which must stay
 * unchanged) for lode_upernet_backward. n must be at least 2. */
gboolean     lode_upernet_forward_train    (LodeUpernet  *self,
                                            const float  *const features[4],
                                            int           n,
                                            int           gh,
                                            int           gw,
                                            float         dropout,
                                            guint64       dropout_seed,
                                            int           out_h,
                                            int           out_w,
                                            float        *logits,
                                            GError      **error);
/* Adds to the parameters' gradients the backward pass of the last
 * lode_upernet_forward_train from dlogits [n, K, out_h, out_w]. */
void         lode_upernet_backward         (LodeUpernet  *self,
                                            const float  *dlogits);
/* The same, and the gradient with respect to each input feature map
 * written to dfeatures[i] [n, E, gh, gw] (overwritten; NULL: not wanted,
 * as for a frozen encoder). */
void         lode_upernet_backward_features (LodeUpernet  *self,
                                             const float  *dlogits,
                                             float *const  dfeatures[4]);
/* Frees the activations kept by lode_upernet_forward_train. */
void         lode_upernet_release          (LodeUpernet  *self);
/* The gradient of tensor i (NULL for running statistics). */
float       *lode_upernet_tensor_grad      (LodeUpernet  *self,
                                            guint         i);
void         lode_upernet_zero_grad        (LodeUpernet  *self);
/* One AdamW step on every parameter (moments kept by the decoder; the
 * running statistics are not parameters). */
void         lode_upernet_adamw_step       (LodeUpernet     *self,
                                            const LodeAdamW *opt);

/* The AdamW state, for checkpoints that resume training: the first (which
 * 0) or second (which 1) moment of tensor i on the host, zeros before the
 * first step, NULL for running statistics. A decoder on a device holds its
 * moments there: lode_upernet_sync_host copies them back into these
 * arrays first. */
float       *lode_upernet_tensor_moment    (LodeUpernet  *self,
                                            guint         i,
                                            int           which);
/* The number of AdamW steps taken (bias correction counts them). */
gint64       lode_upernet_get_adamw_step   (LodeUpernet  *self);
/* Sets that number, and puts the host moments (as written through
 * lode_upernet_tensor_moment) on the device the decoder is bound to. */
gboolean     lode_upernet_set_adamw_state  (LodeUpernet  *self,
                                            gint64        step,
                                            GError      **error);

/* torch.nn.AdaptiveAvgPool2d(out_h, out_w) on in [nc, h, w]: cell (i, j)
 * averages rows floor(i h / out_h) .. ceil((i+1) h / out_h) - 1, likewise
 * columns (cells overlap when the output is larger than the input). */
void         lode_upernet_adaptive_avg_pool (float       *out,
                                             const float *in,
                                             int          nc,
                                             int          h,
                                             int          w,
                                             int          out_h,
                                             int          out_w);

/* The CPU twins of the decoder's backward kernels (lode-prithvi-cuda.h):
 * the backward of lode_ops_resize (bilinear; align: corners aligned) into
 * dx [nc, h, w], overwritten or added to; of
 * lode_upernet_adaptive_avg_pool, added to dx; of the 2 x 2 stride 2
 * transposed convolution in [n, c_in, h, w] -> [n, c_out, 2h, 2w]
 * (dweight, dbias added to, dx overwritten, NULL: not wanted). */
void         lode_upernet_resize_backward   (float       *dx,
                                             const float *dy,
                                             int          nc,
                                             int          h,
                                             int          w,
                                             int          oh,
                                             int          ow,
                                             gboolean     align,
                                             gboolean     accumulate);
void         lode_upernet_adaptive_avg_pool_backward (float       *dx,
                                                      const float *dy,
                                                      int          nc,
                                                      int          h,
                                                      int          w,
                                                      int          out_h,
                                                      int          out_w);
void         lode_upernet_up2_backward      (float       *dweight,
                                             float       *dbias,
                                             float       *dx,
                                             const float *x,
                                             const float *dy,
                                             const float *weight,
                                             int          n,
                                             int          c_in,
                                             int          c_out,
                                             int          h,
                                             int          w);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeUpernet, lode_upernet_free)

G_END_DECLS
