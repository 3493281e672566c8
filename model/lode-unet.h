/* lode-unet.h: U-Net with a ResNet encoder, on the CPU.
 *
 * The layout of segmentation_models_pytorch 0.6.0's Unet(encoder_name=
 * 'resnet18' | 'resnet34' | 'resnet50', decoder_channels (256, 128, 64, 32,
 * 16), batch norm in the decoder, nearest upsampling), tensor for tensor and
 * name for name, so that its state dict loads as is:
 *   encoder.*            torchvision's ResNet (conv1 7x7/2, bn1, ReLU, max
 *                        pool 3x3/2, layer1..4 of BasicBlocks [2,2,2,2] or
 *                        [3,4,6,3], or Bottlenecks [3,4,6,3] with expansion
 *                        4 and the stride on conv2), no fc
 *   decoder.blocks.N.*   upsample x2, concatenate the skip, conv3x3-BN-ReLU
 *                        twice (conv1.0 / conv1.1, conv2.0 / conv2.1)
 *   segmentation_head.0  conv3x3 with bias to the classes
 * A torchvision or timm ResNet state dict (conv1.weight, layer1.0.conv1.
 * weight, ..., no "encoder." prefix) loads as the encoder; when its first
 * convolution has 3 input channels and the model another number, it is
 * adapted as segmentation_models_pytorch does (channel i takes the
 * weights of RGB channel i mod 3, all scaled by 3 / bands; one band takes
 * their sum).
 *
 * Parameters (weights, biases, batch-norm scales and shifts) live in one
 * allocation, encoder first, with their gradients in a second of the same
 * layout; the batch-norm running statistics in a third. Activations are
 * kept from the forward for the backward and reallocated only when the
 * batch shape grows. Inputs are NCHW float32 with height and width
 * multiples of 32.
 */
#pragma once

#include <glib.h>

#include "lode-checkpoint.h"

G_BEGIN_DECLS

#define LODE_UNET_ERROR (lode_unet_error_quark ())
GQuark lode_unet_error_quark (void);

typedef enum {
  LODE_UNET_ERROR_CONFIG,      /* unknown encoder, bad band or class count */
  LODE_UNET_ERROR_SIZE,        /* an input whose sides are not multiples of 32 */
  LODE_UNET_ERROR_CHECKPOINT,  /* a checkpoint that does not fit the model */
} LodeUnetError;

typedef enum {
  LODE_UNET_RESNET18,
  LODE_UNET_RESNET34,
  LODE_UNET_RESNET50,
} LodeUnetEncoder;

typedef struct {
  LodeUnetEncoder encoder;
  int             in_channels;   /* bands, 1 .. 64 */
  int             classes;       /* 1 .. 256 */
} LodeUnetConfig;

/* How a forward pass treats batch norm and what the backward computes. */
typedef enum {
  LODE_UNET_EVAL,           /* running statistics everywhere; a backward
                             * gives the gradients of the network as it
                             * runs in inference */
  LODE_UNET_TRAIN,          /* batch statistics everywhere (running ones
                             * updated); backward reaches every parameter */
  LODE_UNET_TRAIN_DECODER,  /* frozen encoder: running statistics in the
                             * encoder, batch statistics in the decoder;
                             * backward stops at the encoder's features */
} LodeUnetMode;

typedef struct _LodeUnet LodeUnet;

/* "resnet18", "resnet34", "resnet50" */
const char *lode_unet_encoder_name      (LodeUnetEncoder  encoder);
gboolean    lode_unet_encoder_from_name (const char      *name,
                                         LodeUnetEncoder *encoder);

/* A model with weights initialised as torchvision and
 * segmentation_models_pytorch do (Kaiming normal, fan out, in the encoder;
 * Kaiming uniform in the decoder; Xavier uniform in the head; biases 0,
 * batch norm 1 and 0, running mean 0 and variance 1), from a generator
 * seeded with seed. */
LodeUnet   *lode_unet_new               (const LodeUnetConfig *config,
                                         guint64               seed,
                                         GError              **error);
void        lode_unet_free              (LodeUnet             *self);
const LodeUnetConfig *lode_unet_get_config (LodeUnet          *self);

/* ---- the tensors, by name --------------------------------------------- */

guint        lode_unet_n_tensors        (LodeUnet     *self);
/* The state-dict name of tensor i (num_batches_tracked is not kept). */
const char  *lode_unet_tensor_name      (LodeUnet     *self,
                                         guint         i);
/* Its shape; returns ndim (1 or 4). */
int          lode_unet_tensor_shape     (LodeUnet     *self,
                                         guint         i,
                                         gint64        shape[4]);
gsize        lode_unet_tensor_numel     (LodeUnet     *self,
                                         guint         i);
float       *lode_unet_tensor_data      (LodeUnet     *self,
                                         guint         i);
/* Its gradient, NULL for the running statistics. */
float       *lode_unet_tensor_grad      (LodeUnet     *self,
                                         guint         i);
/* Index of a tensor by name, -1 when there is none. */
int          lode_unet_find_tensor      (LodeUnet     *self,
                                         const char   *name);

/* The trainable parameters as one array (encoder first), their gradients
 * in the same layout, and how many of them belong to the encoder. */
float       *lode_unet_params           (LodeUnet     *self,
                                         gsize        *count);
float       *lode_unet_grads            (LodeUnet     *self,
                                         gsize        *count);
gsize        lode_unet_encoder_params   (LodeUnet     *self);
/* The running means and variances as one array. */
float       *lode_unet_buffers          (LodeUnet     *self,
                                         gsize        *count);
void         lode_unet_zero_grad        (LodeUnet     *self);

/* Copies every tensor of the checkpoint that the model has: the names of a
 * segmentation_models_pytorch Unet, or a torchvision / timm ResNet (the
 * encoder alone; the decoder keeps its values). *n_loaded (may be NULL)
 * says how many tensors were copied. Fails on a shape that does not fit,
 * on a checkpoint with none of the encoder's tensors, and on one with some
 * but not all of them. */
gboolean     lode_unet_load_checkpoint  (LodeUnet       *self,
                                         LodeCheckpoint *checkpoint,
                                         guint          *n_loaded,
                                         GError        **error);

/* ---- running ------------------------------------------------------------ */

/* The forward pass on input [n, in_channels, h, w] into logits [n, classes,
 * h, w]. The input must stay unchanged until lode_unet_backward, if one
 * follows. */
gboolean     lode_unet_forward          (LodeUnet     *self,
                                         const float  *input,
                                         int           n,
                                         int           h,
                                         int           w,
                                         LodeUnetMode  mode,
                                         float        *logits,
                                         GError      **error);

/* Adds to the gradients the backward pass of the last forward, from
 * dlogits [n, classes, h, w]. The input of that forward must be unchanged. */
void         lode_unet_backward         (LodeUnet     *self,
                                         const float  *dlogits);

/* Releases the activations kept between passes. */
void         lode_unet_trim             (LodeUnet     *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeUnet, lode_unet_free)

G_END_DECLS
