/* lode-unet.h: U-Net with a ResNet encoder, on the CPU or a CUDA device.
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
 *
 * Devices: lode_unet_new_on (..., LODE_DEVICE_CUDA, ...) keeps the
 * parameters, gradients, running statistics, AdamW moments and activations
 * in GPU memory, and runs the same passes with the CUDA kernels. The
 * host-pointer API below (lode_unet_params, lode_unet_grads,
 * lode_unet_buffers, lode_unet_tensor_data, lode_unet_tensor_grad) then
 * works on host mirrors, kept coherent this way:
 *   - a getter first downloads what the device holds newer, and counts the
 *     array as written by the caller: the next pass uploads it again. The
 *     pointer stays valid for the model's life; its contents are current as
 *     of the call, so call the getter again after a pass or a step;
 *   - lode_unet_sync_to_host and lode_unet_sync_to_device do the same for
 *     everything at once, with errors reported (a getter can only warn);
 *     checkpoint saving calls the first, lode_unet_load_checkpoint needs
 *     neither.
 * Forward takes host input and writes host logits (the copies are inside);
 * lode_unet_loss, lode_unet_backward_checked with NULL and
 * lode_unet_adamw_step keep a training step on the device. On the CPU the
 * mirrors are the arrays themselves and the syncs do nothing. A model is
 * used by one thread at a time.
 */
#pragma once

#include <glib.h>

#include "lode-checkpoint.h"
#include "lode-device.h"
#include "lode-grad.h"

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
/* The same on a device: LODE_DEVICE_CUDA fails (LODE_DEVICE_ERROR) when
 * the build has no CUDA or there is no device, and with a LODE_OPS_ERROR
 * when the GPU memory does not suffice. The weights are the same as on the
 * CPU for the same seed. */
LodeUnet   *lode_unet_new_on            (const LodeUnetConfig *config,
                                         guint64               seed,
                                         LodeDeviceKind        device,
                                         GError              **error);
LodeDeviceKind lode_unet_get_device     (LodeUnet             *self);
/* CUDA: how the convolutions and products of both passes compute (see
 * LodePrecision): fp32 (the default), TF32 tensor cores (about 1e-3
 * relative error) or bf16 mixed precision (operands rounded to bf16, sums,
 * weights, optimiser state and every tensor in memory in fp32; about 4e-3).
 * FALSE with a LODE_OPS_ERROR when the GPU cannot (bf16 before compute
 * capability 8.0). The CPU computes in fp32 whatever is asked. */
gboolean    lode_unet_set_precision     (LodeUnet             *self,
                                         LodePrecision         precision,
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

/* Host mirrors and device copies (see the top of this file); TRUE at once
 * on the CPU. */
gboolean     lode_unet_sync_to_host     (LodeUnet     *self,
                                         GError      **error);
gboolean     lode_unet_sync_to_device   (LodeUnet     *self,
                                         GError      **error);
/* Waits for the device's queued work (timing). */
gboolean     lode_unet_finish           (LodeUnet     *self,
                                         GError      **error);

/* ---- AdamW, with the moments kept by the model ----------------------- */

/* One AdamW step (lode_grad_adamw) of the parameters from index first on
 * (lode_unet_encoder_params to leave the encoder alone), on the model's
 * device. The moments start at zero. */
gboolean     lode_unet_adamw_step       (LodeUnet        *self,
                                         const LodeAdamW *opt,
                                         gint64           step,
                                         gsize            first,
                                         GError         **error);
/* The moments m (returned) and v as host arrays of lode_unet_params' length,
 * current as of the call; NULL before a step or lode_unet_set_adam_moments. */
const float *lode_unet_adam_moments     (LodeUnet        *self,
                                         const float    **v);
/* Copies m and v in (NULL and NULL: zeros). */
gboolean     lode_unet_set_adam_moments (LodeUnet        *self,
                                         const float     *m,
                                         const float     *v,
                                         GError         **error);

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

/* The forward pass on input [n, in_channels, h, w] (host memory) into
 * logits [n, classes, h, w] (host memory; NULL: they stay on the device for
 * lode_unet_loss). The model keeps a copy of the input for the backward. */
gboolean     lode_unet_forward          (LodeUnet     *self,
                                         const float  *input,
                                         int           n,
                                         int           h,
                                         int           w,
                                         LodeUnetMode  mode,
                                         float        *logits,
                                         GError      **error);

/* Adds to the gradients the backward pass of the last forward, from
 * dlogits [n, classes, h, w] (host memory). A device failure is only
 * warned about: use lode_unet_backward_checked on CUDA. */
void         lode_unet_backward         (LodeUnet     *self,
                                         const float  *dlogits);
/* The same with errors; dlogits NULL takes the gradient lode_unet_loss
 * left on the device. */
gboolean     lode_unet_backward_checked (LodeUnet     *self,
                                         const float  *dlogits,
                                         GError      **error);

/* The loss of the last forward against target [n, h, w] (host memory,
 * class indices, ignore_index not scored): cross-entropy with
 * class_weights (NULL: 1; classes values) plus dice_weight times soft Dice
 * (lode_grad_cross_entropy, lode_grad_dice), into *loss, and its gradient
 * kept on the device for lode_unet_backward_checked (self, NULL, ...).
 * Cross-entropy runs on the device; Dice on the host, from the downloaded
 * logits, its gradient uploaded and added. */
gboolean     lode_unet_loss             (LodeUnet     *self,
                                         const gint16 *target,
                                         const float  *class_weights,
                                         int           ignore_index,
                                         float         dice_weight,
                                         double       *loss,
                                         GError      **error);

/* Releases the activations kept between passes. */
void         lode_unet_trim             (LodeUnet     *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeUnet, lode_unet_free)

G_END_DECLS
