/* lode-sam2-encoder.h: the SAM2.1 image encoder (Hiera trunk, FPN neck and
 * the image predictor's projections), on the CPU or on a CUDA device.
 *
 * What SAM2ImagePredictor.set_image computes: the image resized to S x S
 * and normalised (lode_sam2_preprocess), the Hiera trunk, the FPN neck with
 * the lowest-resolution level dropped, the mask decoder's conv_s0 and conv_s1
 * on the two high-resolution levels and no_mem_embed added to the stride-16
 * level, returned as a LodeSam2Embedding. The neck's sine positional
 * encodings are not computed: the image predictor drops them (the decoder
 * builds its own dense positional encoding).
 *
 * Weights are converted to float32 once, at construction, into one
 * allocation on the device (built on the host, then uploaded); the work
 * buffers of a run are one more device allocation sized from the
 * configuration. The forward pass calls its kernels through a table of
 * functions (the CPU one wraps lode-ops.h, the CUDA one lode-ops-cuda.h and
 * lode-sam2-encoder-cuda.h), so both devices run the same sequence: the
 * image is uploaded at run, the three outputs downloaded at its end. One
 * encoder runs one image at a time.
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
#include "lode-device.h"
#include "lode-ops.h"
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
/* The same on device (lode_sam2_encoder_new: LODE_DEVICE_CPU). Also
 * LODE_DEVICE_ERROR_UNAVAILABLE for CUDA without a device or a build
 * without CUDA, LODE_OPS_ERROR (LODE_OPS_ERROR_GPU_MEMORY when the weights
 * or work buffers do not fit) for a failure on the GPU. */
LodeSam2Encoder   *lode_sam2_encoder_new_on      (LodeCheckpoint       *ckpt,
                                                  const LodeSam2Config *cfg,
                                                  LodeDeviceKind        device,
                                                  GError              **error);
void               lode_sam2_encoder_free        (LodeSam2Encoder      *self);
LodeDeviceKind     lode_sam2_encoder_device      (LodeSam2Encoder      *self);
/* How the products compute on CUDA (LodePrecision): fp32 by default, so
 * that CUDA matches the CPU; TF32 (about 1e-3 relative error) or bf16
 * (about 4e-3) tensor cores. FALSE with a LODE_OPS_ERROR when the GPU
 * cannot. No effect on the CPU, which computes in fp32. */
gboolean           lode_sam2_encoder_set_precision (LodeSam2Encoder    *self,
                                                  LodePrecision         precision,
                                                  GError              **error);
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

/* The CPU encoder's own kernels, for the tests of their GPU twins
 * (lode-sam2-encoder-cuda.h); they use the OpenMP team as the encoder does.
 * 2x2 max pooling, stride 2, of in [n, h, w, c] whose pixels are in_stride
 * floats apart: out [n, h/2, w/2, c]. */
void               lode_sam2_encoder_cpu_pool2x2_nhwc (float       *out,
                                                  const float          *in,
                                                  int                   in_stride,
                                                  int                   n,
                                                  int                   h,
                                                  int                   w,
                                                  int                   c);
/* softmax(q k^T / sqrt(hd)) v for nw windows and heads heads: q [nw, lq,
 * heads*hd] with rows q_stride apart, k and v [nw, lk, heads*hd] with rows
 * kv_stride apart, out [nw, lq, heads*hd] contiguous. */
void               lode_sam2_encoder_cpu_attention (float          *out,
                                                  const float          *q,
                                                  int                   q_stride,
                                                  const float          *k,
                                                  const float          *v,
                                                  int                   kv_stride,
                                                  int                   nw,
                                                  int                   heads,
                                                  int                   lq,
                                                  int                   lk,
                                                  int                   hd);
/* out [c_out, hw] = w [c_out, c_in] x [hw, c_in]^T + b [c_out]. */
void               lode_sam2_encoder_cpu_conv1x1_to_nchw (float    *out,
                                                  const float          *x,
                                                  const float          *w,
                                                  const float          *b,
                                                  int                   hw,
                                                  int                   c_in,
                                                  int                   c_out);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeSam2Encoder, lode_sam2_encoder_free)

G_END_DECLS
