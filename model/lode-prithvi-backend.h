/* lode-prithvi-backend.h: the kernels and memory operations that the
 * Prithvi encoder (lode-prithvi.c, lode-vit.c) and the UperNet decoder
 * (lode-upernet.c) call, as one table per device.
 *
 * The forward code is written once against LodePrithviKernels. Buffers the
 * table hands out are "device" buffers: the callers never read or write
 * them with plain C, only through alloc / release / upload / download /
 * copy / zero. The CPU table wraps lode-ops.h and lode-grad.h (its buffers
 * are host memory, its uploads memcpy), so the CPU parity tests run the very
 * data flow the GPU runs. The CUDA table wraps lode-ops-cuda.h,
 * lode-grad-cuda.h and the kernels of lode-prithvi-cuda.h, all on the
 * stream of one LodeOpsCuda context.
 *
 * Errors are sticky: the first failing call (out of memory, a CUDA error)
 * records its status in the backend and every later call does nothing, so
 * a pass runs to its end and lode_prithvi_backend_check() turns the status
 * into a GError. alloc returns NULL after a failure; releasing NULL is
 * allowed.
 *
 * Weights: mirror gives the device copy of host values (the CPU table
 * returns the host pointer itself, so nothing is duplicated and a CPU
 * optimiser step is seen by the next forward); unmirror frees it.
 */
#pragma once

#include <glib.h>

#include "lode-device.h"
#include "lode-grad.h"
#include "lode-ops.h"

G_BEGIN_DECLS

typedef struct _LodePrithviBackend LodePrithviBackend;

typedef struct {
  /* memory, in floats */
  float *(*alloc)    (LodePrithviBackend *be, gsize n);
  void   (*release)  (LodePrithviBackend *be, float *dev);
  void   (*upload)   (LodePrithviBackend *be, float *dev, const float *host, gsize n);
  /* waits for the device's queued work before returning */
  void   (*download) (LodePrithviBackend *be, float *host, const float *dev, gsize n);
  void   (*copy)     (LodePrithviBackend *be, float *dst, const float *src, gsize n);
  void   (*zero)     (LodePrithviBackend *be, float *dev, gsize n);
  float *(*mirror)   (LodePrithviBackend *be, float *host, gsize n);
  void   (*unmirror) (LodePrithviBackend *be, float *dev);

  /* the kernels of lode-ops.h / lode-grad.h of the same name */
  void (*conv2d)           (LodePrithviBackend *be, float *out, const float *in, const float *w,
                            const float *b, const LodeConvShape *s);
  void (*conv_transpose2d) (LodePrithviBackend *be, float *out, const float *in, const float *w,
                            const float *b, const LodeConvShape *s);
  void (*linear)           (LodePrithviBackend *be, float *out, const float *x, const float *w,
                            const float *b, int rows, int in_f, int out_f);
  void (*layer_norm)       (LodePrithviBackend *be, float *out, const float *in, const float *w,
                            const float *b, int rows, int c, float eps);
  void (*batch_norm)       (LodePrithviBackend *be, float *out, const float *in, const float *mean,
                            const float *var, const float *w, const float *b, int n, int c, int hw,
                            float eps);
  void (*batch_norm_train) (LodePrithviBackend *be, float *out, const float *in, const float *w,
                            const float *b, float *running_mean, float *running_var, float *save_mean,
                            float *save_invstd, int n, int c, int hw, float eps, float momentum);
  void (*gelu)             (LodePrithviBackend *be, float *out, const float *in, gsize count);
  void (*relu)             (LodePrithviBackend *be, float *out, const float *in, gsize count);
  void (*add)              (LodePrithviBackend *be, float *out, const float *a, const float *b, gsize count);
  void (*mul)              (LodePrithviBackend *be, float *out, const float *a, const float *b, gsize count);
  void (*attention)        (LodePrithviBackend *be, float *out, const float *q, const float *k,
                            const float *v, int b, int h, int lq, int lk, int d);
  /* lode_grad_attention_forward: keeps the probabilities */
  void (*attention_train)  (LodePrithviBackend *be, float *out, float *probs, const float *q,
                            const float *k, const float *v, int bh, int lq, int lk, int d);
  void (*max_pool2d)       (LodePrithviBackend *be, float *out, const float *in, int n, int c, int h,
                            int w, int kernel, int stride, int pad);
  /* lode_grad_max_pool2d_forward; argmax is a buffer from alloc */
  void (*max_pool2d_train) (LodePrithviBackend *be, float *out, float *argmax, const float *in, int n,
                            int c, int h, int w, int kernel, int stride, int pad);
  void (*resize)           (LodePrithviBackend *be, float *out, const float *in, int nc, int h, int w,
                            int out_h, int out_w, LodeResizeMode mode);

  /* the Prithvi-specific kernels (CPU twins below) */
  void (*adaptive_avg_pool) (LodePrithviBackend *be, float *out, const float *in, int nc, int h, int w,
                             int out_h, int out_w);
  void (*heads_copy)       (LodePrithviBackend *be, float *rows, gsize stride, int col, float *heads_major,
                            int n, int tokens, int heads, int hd, gboolean to_heads);
  void (*tokens_assemble)  (LodePrithviBackend *be, float *x, const float *patches, const float *pos,
                            const float *enc, const float *cls, int n, int l, int e);
  void (*tokens_to_image)  (LodePrithviBackend *be, float *out, const float *tokens, int n, int gh, int gw,
                            int e);

  /* training the decoder: the backward kernels of lode-grad.h, the
   * decoder's own (lode-upernet.h) and AdamW */
  void (*grad_conv2d)      (LodePrithviBackend *be, float *dx, float *dweight, float *dbias, const float *dy,
                            const float *x, const float *weight, const LodeConvShape *s, gboolean accumulate_dx);
  void (*grad_batch_norm)  (LodePrithviBackend *be, float *dx, float *dweight, float *dbias, const float *dy,
                            const float *x, const float *mean, const float *invstd, const float *weight, int n,
                            int c, int hw);
  void (*grad_relu)        (LodePrithviBackend *be, float *dx, const float *dy, const float *y, gsize count);
  void (*grad_gelu)        (LodePrithviBackend *be, float *dx, const float *dy, const float *x, gsize count);
  /* 2 x 2 pooling, stride 2, of lode_grad_max_pool2d_forward */
  void (*grad_max_pool2d)  (LodePrithviBackend *be, float *dx, const float *dy, const float *argmax, int n,
                            int c, int h, int w, int oh, int ow, gboolean accumulate);
  void (*resize_backward)  (LodePrithviBackend *be, float *dx, const float *dy, int nc, int h, int w, int oh,
                            int ow, gboolean align, gboolean accumulate);
  void (*adaptive_avg_pool_backward) (LodePrithviBackend *be, float *dx, const float *dy, int nc, int h, int w,
                                      int out_h, int out_w);
  void (*up2_backward)     (LodePrithviBackend *be, float *dweight, float *dbias, float *dx, const float *x,
                            const float *dy, const float *weight, int n, int c_in, int c_out, int h, int w);
  void (*adamw)            (LodePrithviBackend *be, float *param, const float *grad, float *m, float *v,
                            gsize count, const LodeAdamW *opt, gint64 step);

  /* training the encoder's blocks: lode_grad_linear, lode_grad_layer_norm,
   * lode_grad_attention and the backward of tokens_to_image (added) */
  void (*grad_linear)      (LodePrithviBackend *be, float *dx, float *dweight, float *dbias, const float *dy,
                            const float *x, const float *weight, int rows, int in_f, int out_f);
  /* dx may be dy only when dweight and dbias are NULL */
  void (*grad_layer_norm)  (LodePrithviBackend *be, float *dx, float *dweight, float *dbias, const float *dy,
                            const float *x, const float *weight, int rows, int c, float eps);
  void (*grad_attention)   (LodePrithviBackend *be, float *dq, float *dk, float *dv, const float *dout,
                            const float *q, const float *k, const float *v, const float *probs, int bh,
                            int lq, int lk, int d);
  void (*image_to_tokens_add) (LodePrithviBackend *be, float *tokens, const float *image, int n, int gh, int gw,
                               int e);
} LodePrithviKernels;

struct _LodePrithviBackend {
  const LodePrithviKernels *k;
  LodeDeviceKind kind;
  void          *cuda;      /* the LodeOpsCuda context; NULL on the CPU */
  int            status;    /* first failure since the last check, 0: none */
};

/* The CPU backend (nothing to free). */
void     lode_prithvi_backend_init_cpu (LodePrithviBackend *be);
/* The backend of kind: for CUDA a new context (fp32 until the model sets its precision), or an error
 * when the build has no CUDA or the machine no device. */
gboolean lode_prithvi_backend_init     (LodePrithviBackend *be,
                                        LodeDeviceKind      kind,
                                        GError            **error);
/* Frees the context of lode_prithvi_backend_init. */
void     lode_prithvi_backend_clear    (LodePrithviBackend *be);
/* A copy of be for one pass (same table and context, no failure yet). */
LodePrithviBackend lode_prithvi_backend_run (const LodePrithviBackend *be);
/* Waits for the queued work; TRUE when nothing failed since the last
 * check, else the failure as a GError (LODE_OPS_ERROR for CUDA, out of
 * memory naming what to do) and the status cleared. what names the job
 * ("encode 8 images"). */
gboolean lode_prithvi_backend_check    (LodePrithviBackend *be,
                                        const char         *what,
                                        GError            **error);

/* ---- CPU twins of the kernels of lode-prithvi-cuda.h --------------------- */

/* Between token-major rows (head hh at columns col + hh hd of rows of
 * stride values) and head-major [n, heads, tokens, hd]. */
void lode_prithvi_heads_copy      (float       *rows,
                                   gsize        stride,
                                   int          col,
                                   float       *heads_major,
                                   int          n,
                                   int          tokens,
                                   int          heads,
                                   int          hd,
                                   gboolean     to_heads);
/* x [n, 1 + l, e]: the class token cls [e] first, then token t is
 * patches [n, e, l] at t plus pos [l, e] plus enc [n, e]. */
void lode_prithvi_tokens_assemble (float       *x,
                                   const float *patches,
                                   const float *pos,
                                   const float *enc,
                                   const float *cls,
                                   int          n,
                                   int          l,
                                   int          e);

/* Backward of lode_prithvi_tokens_to_image: the map's gradient image
 * [n, e, gh, gw] ADDED to the patch tokens of tokens [n, 1 + gh gw, e]
 * (the class token gets none). */
void lode_prithvi_image_to_tokens_add (float       *tokens,
                                       const float *image,
                                       int          n,
                                       int          gh,
                                       int          gw,
                                       int          e);

G_END_DECLS
