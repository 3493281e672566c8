/* lode-sam2-decoder-dev.c: the SAM2.1 prompt encoder and mask decoder as one
 * sequence of kernel calls through a table, for the CPU and the GPU.
 *
 * Layouts: tokens are rows [t, c] (obj_score, iou, 4 mask tokens, then the
 * sparse prompts); the image side is channels-last [hw, c] like the CPU
 * decoder's keys; attention runs on the rows of the projections with the
 * heads side by side (lode_ops_attention_rows), so no head split or merge.
 *
 * Memory: every weight lives in one device allocation (uploaded once), every
 * work buffer in another; the orchestration only passes these pointers to
 * the table, never reads them. Per embedding: the image embedding and the
 * high-resolution features are uploaded, and the first layer's
 * prompt-independent keys (embedding + no_mask_embed, channels-last), keys +
 * positional encoding and its token-to-image K and V are computed. Per
 * click: one upload of the prompt rows (and one of the mask input when
 * given), the kernels, one download of the masks and the scores, which sit
 * side by side in one buffer.
 */
#define G_LOG_DOMAIN "lode-model"

#include "config.h"

#include <glib/gi18n.h>
#include <math.h>
#include <string.h>

#include "lode-ops.h"
#include "lode-sam2-decoder-dev.h"
#ifdef LODE_WITH_CUDA
#include "lode-ops-cuda.h"
#include "lode-sam2-decoder-cuda.h"
#endif

/* Fixed by the official builder (sam2_base.py _build_sam_heads), as in
 * lode-sam2-decoder.c. */
#define MASK_IN_CHANS 16
#define IOU_HIDDEN 256
#define N_MASK_TOKENS 4
#define ATTN_DOWNSAMPLE 2
#define LN_EPS 1e-5f
#define LN2D_EPS 1e-6f
/* sparse prompts: box corners, points, the padding point */
#define MAX_SPARSE LODE_SAM2_PROMPT_ROWS
#define MAX_TOKENS (1 + 1 + N_MASK_TOKENS + MAX_SPARSE)
/* scores after the 4 masks: iou[4], object score, padding */
#define N_SCORES 8

/* ---- the kernel table --------------------------------------------------- */

/* Device pointers in, status out (0 = done). */
typedef struct {
  int  (*alloc)    (void *ctx, float **dev, gsize n);
  void (*release)  (void *ctx, float *dev);
  int  (*upload)   (void *ctx, float *dev, const float *host, gsize n);
  /* waits for the queued work */
  int  (*download) (void *ctx, float *host, const float *dev, gsize n);
  int  (*sync)     (void *ctx);
  gboolean (*check) (int status, GError **error);
  int  (*gemm)     (void *ctx, gboolean ta, gboolean tb, int m, int n, int k, float alpha,
                    const float *a, const float *b, float beta, float *c);
  int  (*gemm_batched) (void *ctx, gboolean ta, gboolean tb, int batch, int m, int n, int k,
                        const float *a, gint64 sa, const float *b, gint64 sb, float *c, gint64 sc);
  /* out = x w^T + b, ReLU when relu */
  int  (*linear)   (void *ctx, float *out, const float *x, const float *w, const float *b,
                    int rows, int in_f, int out_f, gboolean relu);
  /* out = in + bias per row, ReLU when relu */
  int  (*bias)     (void *ctx, float *out, const float *in, const float *bias, int rows, int c,
                    gboolean relu);
  int  (*add)      (void *ctx, float *out, const float *a, const float *b, gsize n);
  int  (*add_layer_norm) (void *ctx, float *out, const float *a, const float *b, const float *w,
                          const float *bias, int rows, int c, float eps, float *out_pe,
                          const float *pe);
  int  (*attention_rows) (void *ctx, float *out, const float *q, int qs, const float *k, int ks,
                          const float *v, int vs, int lq, int lk, int h, int d);
  int  (*point_encoding) (void *ctx, float *out, const float *points, const float *gauss,
                          const float *label_embed, int n, int c, float size);
  int  (*conv2d)   (void *ctx, float *out, const float *in, const float *w, const float *b,
                    const LodeConvShape *s);
  int  (*layer_norm2d) (void *ctx, float *out, const float *in, const float *w, const float *b,
                        int c, int hw, float eps);
  int  (*gelu)     (void *ctx, float *out, const float *in, gsize n);
  int  (*sigmoid)  (void *ctx, float *out, const float *in, gsize n);
  int  (*nchw_to_nhwc) (void *ctx, float *out, const float *in, int c, int h, int w);
  int  (*unfold_2x2) (void *ctx, float *out, const float *cols, const float *bias,
                      const float *add, int c, int side, gboolean gelu);
} DecBackend;

static int
cpu_alloc (void *ctx, float **dev, gsize n)
{
  (void) ctx;
  *dev = g_new0 (float, MAX (n, 1));
  return 0;
}

static void
cpu_release (void *ctx, float *dev)
{
  (void) ctx;
  g_free (dev);
}

static int
cpu_upload (void *ctx, float *dev, const float *host, gsize n)
{
  (void) ctx;
  memcpy (dev, host, n * sizeof (float));
  return 0;
}

static int
cpu_download (void *ctx, float *host, const float *dev, gsize n)
{
  (void) ctx;
  memcpy (host, dev, n * sizeof (float));
  return 0;
}

static int
cpu_sync (void *ctx)
{
  (void) ctx;
  return 0;
}

static gboolean
cpu_check (int status, GError **error)
{
  (void) error;
  return status == 0;
}

static int
cpu_gemm (void *ctx, gboolean ta, gboolean tb, int m, int n, int k, float alpha,
          const float *a, const float *b, float beta, float *c)
{
  (void) ctx;
  lode_ops_gemm (ta, tb, m, n, k, alpha, a, b, beta, c);
  return 0;
}

static int
cpu_gemm_batched (void *ctx, gboolean ta, gboolean tb, int batch, int m, int n, int k,
                  const float *a, gint64 sa, const float *b, gint64 sb, float *c, gint64 sc)
{
  (void) ctx;
  lode_ops_gemm_batched (ta, tb, batch, m, n, k, 1.0f, a, sa, b, sb, 0.0f, c, sc);
  return 0;
}

static int
cpu_linear (void *ctx, float *out, const float *x, const float *w, const float *b,
            int rows, int in_f, int out_f, gboolean relu)
{
  (void) ctx;
  lode_ops_linear (out, x, w, b, rows, in_f, out_f);
  if (relu)
    lode_ops_relu (out, out, (gsize) rows * out_f);
  return 0;
}

static int
cpu_bias (void *ctx, float *out, const float *in, const float *bias, int rows, int c,
          gboolean relu)
{
  (void) ctx;
  if (relu)
    lode_ops_bias_relu (out, in, bias, rows, c);
  else
    lode_ops_add_row_bias (out, in, bias, rows, c);
  return 0;
}

static int
cpu_add (void *ctx, float *out, const float *a, const float *b, gsize n)
{
  (void) ctx;
  lode_ops_add (out, a, b, n);
  return 0;
}

static int
cpu_add_layer_norm (void *ctx, float *out, const float *a, const float *b, const float *w,
                    const float *bias, int rows, int c, float eps, float *out_pe, const float *pe)
{
  (void) ctx;
  lode_ops_add_layer_norm (out, a, b, w, bias, rows, c, eps, out_pe, pe);
  return 0;
}

static int
cpu_attention_rows (void *ctx, float *out, const float *q, int qs, const float *k, int ks,
                    const float *v, int vs, int lq, int lk, int h, int d)
{
  (void) ctx;
  lode_ops_attention_rows (out, q, qs, k, ks, v, vs, lq, lk, h, d);
  return 0;
}

static int
cpu_point_encoding (void *ctx, float *out, const float *points, const float *gauss,
                    const float *label_embed, int n, int c, float size)
{
  (void) ctx;
  lode_ops_point_encoding (out, points, gauss, label_embed, n, c, size);
  return 0;
}

static int
cpu_conv2d (void *ctx, float *out, const float *in, const float *w, const float *b,
            const LodeConvShape *s)
{
  (void) ctx;
  lode_ops_conv2d (out, in, w, b, s);
  return 0;
}

static int
cpu_layer_norm2d (void *ctx, float *out, const float *in, const float *w, const float *b,
                  int c, int hw, float eps)
{
  (void) ctx;
  lode_ops_layer_norm2d (out, in, w, b, 1, c, hw, eps);
  return 0;
}

static int
cpu_gelu (void *ctx, float *out, const float *in, gsize n)
{
  (void) ctx;
  lode_ops_gelu (out, in, n);
  return 0;
}

static int
cpu_sigmoid (void *ctx, float *out, const float *in, gsize n)
{
  (void) ctx;
  lode_ops_sigmoid (out, in, n);
  return 0;
}

static int
cpu_nchw_to_nhwc (void *ctx, float *out, const float *in, int c, int h, int w)
{
  (void) ctx;
  lode_ops_nchw_to_nhwc (out, in, 1, c, h, w);
  return 0;
}

static int
cpu_unfold_2x2 (void *ctx, float *out, const float *cols, const float *bias, const float *add,
                int c, int side, gboolean gelu)
{
  (void) ctx;
  lode_ops_unfold_2x2 (out, cols, bias, add, c, side, gelu);
  return 0;
}

static const DecBackend cpu_backend = {
  cpu_alloc, cpu_release, cpu_upload, cpu_download, cpu_sync, cpu_check, cpu_gemm, cpu_gemm_batched,
  cpu_linear, cpu_bias, cpu_add, cpu_add_layer_norm, cpu_attention_rows, cpu_point_encoding,
  cpu_conv2d, cpu_layer_norm2d, cpu_gelu, cpu_sigmoid, cpu_nchw_to_nhwc, cpu_unfold_2x2,
};

#ifdef LODE_WITH_CUDA

/* ctx is a LodeOpsCuda; every call is queued on its stream. */

static int
gpu_alloc (void *ctx, float **dev, gsize n)
{
  (void) ctx;
  return lode_ops_cuda_alloc ((void **) dev, MAX (n, 1) * sizeof (float));
}

static void
gpu_release (void *ctx, float *dev)
{
  (void) ctx;
  lode_ops_cuda_release (dev);
}

static int
gpu_upload (void *ctx, float *dev, const float *host, gsize n)
{
  return lode_ops_cuda_upload (ctx, dev, host, n * sizeof (float));
}

static int
gpu_download (void *ctx, float *host, const float *dev, gsize n)
{
  return lode_ops_cuda_download (ctx, host, dev, n * sizeof (float));
}

static int
gpu_sync (void *ctx)
{
  return lode_ops_cuda_synchronize (ctx);
}

static int
gpu_gemm (void *ctx, gboolean ta, gboolean tb, int m, int n, int k, float alpha,
          const float *a, const float *b, float beta, float *c)
{
  return lode_ops_cuda_gemm (ctx, ta, tb, m, n, k, alpha, a, b, beta, c);
}

static int
gpu_gemm_batched (void *ctx, gboolean ta, gboolean tb, int batch, int m, int n, int k,
                  const float *a, gint64 sa, const float *b, gint64 sb, float *c, gint64 sc)
{
  return lode_ops_cuda_gemm_batched (ctx, ta, tb, batch, m, n, k, 1.0f, a, sa, b, sb, 0.0f, c, sc);
}

static int
gpu_linear (void *ctx, float *out, const float *x, const float *w, const float *b,
            int rows, int in_f, int out_f, gboolean relu)
{
  int s = lode_ops_cuda_gemm (ctx, FALSE, TRUE, rows, out_f, in_f, 1.0f, x, w, 0.0f, out);

  if (s != LODE_CUDA_OK)
    return s;
  if (relu)
    return lode_ops_cuda_bias_relu (ctx, out, out, b, rows, out_f);
  return lode_ops_cuda_add_row_bias (ctx, out, out, b, rows, out_f);
}

static int
gpu_bias (void *ctx, float *out, const float *in, const float *bias, int rows, int c,
          gboolean relu)
{
  if (relu)
    return lode_ops_cuda_bias_relu (ctx, out, in, bias, rows, c);
  return lode_ops_cuda_add_row_bias (ctx, out, in, bias, rows, c);
}

static int
gpu_add (void *ctx, float *out, const float *a, const float *b, gsize n)
{
  return lode_ops_cuda_add (ctx, out, a, b, n);
}

static int
gpu_add_layer_norm (void *ctx, float *out, const float *a, const float *b, const float *w,
                    const float *bias, int rows, int c, float eps, float *out_pe, const float *pe)
{
  return lode_ops_cuda_add_layer_norm (ctx, out, a, b, w, bias, rows, c, eps, out_pe, pe);
}

static int
gpu_attention_rows (void *ctx, float *out, const float *q, int qs, const float *k, int ks,
                    const float *v, int vs, int lq, int lk, int h, int d)
{
  return lode_ops_cuda_attention_rows (ctx, out, q, qs, k, ks, v, vs, lq, lk, h, d);
}

static int
gpu_point_encoding (void *ctx, float *out, const float *points, const float *gauss,
                    const float *label_embed, int n, int c, float size)
{
  return lode_ops_cuda_point_encoding (ctx, out, points, gauss, label_embed, n, c, size);
}

static int
gpu_conv2d (void *ctx, float *out, const float *in, const float *w, const float *b,
            const LodeConvShape *s)
{
  return lode_ops_cuda_conv2d (ctx, out, in, w, b, s);
}

static int
gpu_layer_norm2d (void *ctx, float *out, const float *in, const float *w, const float *b,
                  int c, int hw, float eps)
{
  return lode_ops_cuda_layer_norm2d (ctx, out, in, w, b, 1, c, hw, eps);
}

static int
gpu_gelu (void *ctx, float *out, const float *in, gsize n)
{
  return lode_ops_cuda_gelu (ctx, out, in, n);
}

static int
gpu_sigmoid (void *ctx, float *out, const float *in, gsize n)
{
  return lode_ops_cuda_sigmoid (ctx, out, in, n);
}

static int
gpu_nchw_to_nhwc (void *ctx, float *out, const float *in, int c, int h, int w)
{
  return lode_ops_cuda_nchw_to_nhwc (ctx, out, in, 1, c, h, w);
}

static int
gpu_unfold_2x2 (void *ctx, float *out, const float *cols, const float *bias, const float *add,
                int c, int side, gboolean gelu)
{
  return lode_ops_cuda_unfold_2x2 (ctx, out, cols, bias, add, c, side, gelu);
}

static const DecBackend gpu_backend = {
  gpu_alloc, gpu_release, gpu_upload, gpu_download, gpu_sync, lode_ops_cuda_check, gpu_gemm,
  gpu_gemm_batched, gpu_linear, gpu_bias, gpu_add, gpu_add_layer_norm, gpu_attention_rows,
  gpu_point_encoding, gpu_conv2d, gpu_layer_norm2d, gpu_gelu, gpu_sigmoid, gpu_nchw_to_nhwc,
  gpu_unfold_2x2,
};

#endif

/* ---- the decoder ---------------------------------------------------------- */

typedef struct {
  float *qw, *qb, *kw, *kb, *vw, *vb, *ow, *ob;
} Attn;

typedef struct {
  float *w[3], *b[3];
} Mlp;

typedef struct {
  Attn self_attn, t2i, i2t;
  float *norm_w[4], *norm_b[4];
  Mlp mlp;
} Layer;

/* Every field a pointer into the weights block; only pointers, so that the
 * block can be moved from the host to the device as an array of them. */
typedef struct {
  float *gauss;                   /* [2, c/2] */
  float *label_embed;             /* [5, c]: not_a_point, point_embeddings 0 .. 3 */
  float *tokens;                  /* [s + 1 + 4, c]: obj_score, iou, mask tokens */
  float *no_mask;                 /* [c] */
  float *md_w[3], *md_b[3], *md_ln_w[2], *md_ln_b[2];
  Layer layers[8];
  Attn final_attn;
  float *final_norm_w, *final_norm_b;
  float *up_w[2], *up_b[2], *up_ln_w, *up_ln_b;
  float *hyper_w[3], *hyper_b[3]; /* layer i of the 4 hypernetworks, stacked */
  Mlp iou_head, obj_head;
  float *dense_pe;                /* [hw, c], computed at load */
} Weights;

#define N_WEIGHT_PTRS (sizeof (Weights) / sizeof (float *))

struct _LodeSam2DecoderDev {
  LodeSam2Config config;
  LodeDeviceKind device;
  const DecBackend *be;
  void *ctx;
  int c, e, hw, low_res, heads, depth, s, inner;
  int calls;                      /* table calls in the current click */

  Weights w;
  float *weights;                 /* device block */
  float *work;                    /* device block */

  /* work buffers, in the work block */
  float *tok_pe, *queries, *q, *tq, *tk, *tv, *to, *tattn, *thid, *prompt;
  float *emb, *hr0, *hr1;
  float *c_keys, *c_kpe, *c_k0, *c_v0;      /* per embedding */
  float *keys, *kpe, *keys0, *kpe0, *kimg, *vimg, *pq, *ho, *ktmp;
  float *dense, *md_a, *md_b, *mask_in;
  float *up_cols, *up1, *up2;
  float *hyp_a, *hyp_b, *hyper_in, *head_a, *head_b;
  float *res;                               /* [4, ls, ls] masks, then N_SCORES */

  gboolean has_embedding;
  /* host staging */
  float *host_prompt;                       /* [MAX_SPARSE, 3] */
  float *host_res;
};

/* A table call (counted), and a call of a function made of them. */
#define CALL(expr) \
  do { int s_; self->calls++; s_ = (expr); if (s_ != 0) return s_; } while (0)
#define TRY(expr) \
  do { int s_ = (expr); if (s_ != 0) return s_; } while (0)

/* ---- loading ------------------------------------------------------------- */

typedef struct {
  LodeSam2TensorSource source;
  gpointer data;
  GError **error;
  gboolean failed;
  float *pack;                    /* NULL while measuring */
  gsize off;
} Loader;

#define ROUND16(n) (((gsize) (n) + 15) & ~(gsize) 15)

/* Measuring (pack NULL): counts the room; filling: reads the tensor into
 * the pack and returns where it went. Tensors taken one after the other are
 * contiguous (no rounding), which the stacked groups rely on. */
static float *
take (Loader *l, const char *name, int ndim, gint64 d0, gint64 d1, gint64 d2, gint64 d3)
{
  gint64 shape[4] = { d0, d1, d2, d3 };
  gsize n = 1;
  LodeTensor *t;
  float *dst;

  for (int i = 0; i < ndim; i++)
    n *= (gsize) shape[i];
  if (l->pack == NULL)
    {
      l->off += n;
      return NULL;
    }
  if (l->failed)
    return NULL;
  t = l->source (name, ndim, shape, l->data, l->error);
  if (t == NULL)
    {
      l->failed = TRUE;
      return NULL;
    }
  dst = l->pack + l->off;
  memcpy (dst, t->data, n * sizeof (float));
  lode_tensor_free (t);
  l->off += n;
  return dst;
}

/* Room for n floats computed here rather than read. */
static float *
room (Loader *l, gsize n)
{
  float *dst = l->pack != NULL ? l->pack + l->off : NULL;

  l->off += ROUND16 (n);
  return dst;
}

static void
take_linear (Loader *l, const char *prefix, int out_f, int in_f, float **w, float **b)
{
  g_autofree char *wn = g_strconcat (prefix, ".weight", NULL);
  g_autofree char *bn = g_strconcat (prefix, ".bias", NULL);

  *w = take (l, wn, 2, out_f, in_f, 0, 0);
  *b = take (l, bn, 1, out_f, 0, 0, 0);
}

static void
take_attn (Loader *l, const char *prefix, Attn *a, int c, int downsample)
{
  const char *part[4] = { "q_proj", "k_proj", "v_proj", "out_proj" };
  float **w[4] = { &a->qw, &a->kw, &a->vw, &a->ow };
  float **b[4] = { &a->qb, &a->kb, &a->vb, &a->ob };
  int inner = c / downsample;

  for (int i = 0; i < 4; i++)
    {
      g_autofree char *name = g_strdup_printf ("%s.%s", prefix, part[i]);

      take_linear (l, name, i == 3 ? c : inner, i == 3 ? inner : c, w[i], b[i]);
    }
}

static void
take_mlp (Loader *l, const char *prefix, Mlp *m, int in_f, int hidden, int out_f, int n)
{
  for (int i = 0; i < n; i++)
    {
      g_autofree char *name = g_strdup_printf ("%s.layers.%d", prefix, i);

      take_linear (l, name, i == n - 1 ? out_f : hidden, i == 0 ? in_f : hidden, &m->w[i], &m->b[i]);
    }
}

static void
take_norm (Loader *l, const char *prefix, int c, float **w, float **b)
{
  g_autofree char *wn = g_strconcat (prefix, ".weight", NULL);
  g_autofree char *bn = g_strconcat (prefix, ".bias", NULL);

  *w = take (l, wn, 1, c, 0, 0, 0);
  *b = take (l, bn, 1, c, 0, 0, 0);
}

/* The tensors of lode_sam2_decoder_list_tensors, laid out so that the
 * label embeddings, the output tokens and each layer of the four
 * hypernetworks are contiguous. */
static void
load_weights (LodeSam2DecoderDev *self, Loader *l)
{
  Weights *w = &self->w;
  int c = self->c;

  w->gauss = take (l, "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
                   2, 2, c / 2, 0, 0);
  w->label_embed = take (l, "sam_prompt_encoder.not_a_point_embed.weight", 2, 1, c, 0, 0);
  for (int i = 0; i < 4; i++)
    {
      g_autofree char *name = g_strdup_printf ("sam_prompt_encoder.point_embeddings.%d.weight", i);

      take (l, name, 2, 1, c, 0, 0);
    }
  w->no_mask = take (l, "sam_prompt_encoder.no_mask_embed.weight", 2, 1, c, 0, 0);
  w->md_w[0] = take (l, "sam_prompt_encoder.mask_downscaling.0.weight", 4, MASK_IN_CHANS / 4, 1, 2, 2);
  w->md_b[0] = take (l, "sam_prompt_encoder.mask_downscaling.0.bias", 1, MASK_IN_CHANS / 4, 0, 0, 0);
  take_norm (l, "sam_prompt_encoder.mask_downscaling.1", MASK_IN_CHANS / 4, &w->md_ln_w[0], &w->md_ln_b[0]);
  w->md_w[1] = take (l, "sam_prompt_encoder.mask_downscaling.3.weight", 4, MASK_IN_CHANS, MASK_IN_CHANS / 4, 2, 2);
  w->md_b[1] = take (l, "sam_prompt_encoder.mask_downscaling.3.bias", 1, MASK_IN_CHANS, 0, 0, 0);
  take_norm (l, "sam_prompt_encoder.mask_downscaling.4", MASK_IN_CHANS, &w->md_ln_w[1], &w->md_ln_b[1]);
  w->md_w[2] = take (l, "sam_prompt_encoder.mask_downscaling.6.weight", 4, c, MASK_IN_CHANS, 1, 1);
  w->md_b[2] = take (l, "sam_prompt_encoder.mask_downscaling.6.bias", 1, c, 0, 0, 0);

  for (int i = 0; i < self->depth; i++)
    {
      Layer *ly = &w->layers[i];
      g_autofree char *p = g_strdup_printf ("sam_mask_decoder.transformer.layers.%d", i);
      g_autofree char *sa = g_strconcat (p, ".self_attn", NULL);
      g_autofree char *t2i = g_strconcat (p, ".cross_attn_token_to_image", NULL);
      g_autofree char *i2t = g_strconcat (p, ".cross_attn_image_to_token", NULL);
      g_autofree char *mlp = g_strconcat (p, ".mlp", NULL);

      take_attn (l, sa, &ly->self_attn, c, 1);
      take_attn (l, t2i, &ly->t2i, c, ATTN_DOWNSAMPLE);
      take_attn (l, i2t, &ly->i2t, c, ATTN_DOWNSAMPLE);
      for (int n = 0; n < 4; n++)
        {
          g_autofree char *nn = g_strdup_printf ("%s.norm%d", p, n + 1);

          take_norm (l, nn, c, &ly->norm_w[n], &ly->norm_b[n]);
        }
      take_mlp (l, mlp, &ly->mlp, c, self->config.decoder_mlp, c, 2);
    }
  take_attn (l, "sam_mask_decoder.transformer.final_attn_token_to_image", &w->final_attn, c, ATTN_DOWNSAMPLE);
  take_norm (l, "sam_mask_decoder.transformer.norm_final_attn", c, &w->final_norm_w, &w->final_norm_b);

  /* obj_score_token, iou_token, mask_tokens: the first token rows */
  if (self->s)
    w->tokens = take (l, "sam_mask_decoder.obj_score_token.weight", 2, 1, c, 0, 0);
  {
    float *iou = take (l, "sam_mask_decoder.iou_token.weight", 2, 1, c, 0, 0);

    if (!self->s)
      w->tokens = iou;
  }
  take (l, "sam_mask_decoder.mask_tokens.weight", 2, N_MASK_TOKENS, c, 0, 0);

  w->up_w[0] = take (l, "sam_mask_decoder.output_upscaling.0.weight", 4, c, c / 4, 2, 2);
  w->up_b[0] = take (l, "sam_mask_decoder.output_upscaling.0.bias", 1, c / 4, 0, 0, 0);
  take_norm (l, "sam_mask_decoder.output_upscaling.1", c / 4, &w->up_ln_w, &w->up_ln_b);
  w->up_w[1] = take (l, "sam_mask_decoder.output_upscaling.3.weight", 4, c / 4, c / 8, 2, 2);
  w->up_b[1] = take (l, "sam_mask_decoder.output_upscaling.3.bias", 1, c / 8, 0, 0, 0);
  for (int layer = 0; layer < 3; layer++)
    {
      int fo = layer == 2 ? c / 8 : c;

      for (int i = 0; i < N_MASK_TOKENS; i++)
        {
          g_autofree char *name = g_strdup_printf ("sam_mask_decoder.output_hypernetworks_mlps.%d.layers.%d.weight",
                                                   i, layer);
          float *p = take (l, name, 2, fo, c, 0, 0);

          if (i == 0)
            w->hyper_w[layer] = p;
        }
      for (int i = 0; i < N_MASK_TOKENS; i++)
        {
          g_autofree char *name = g_strdup_printf ("sam_mask_decoder.output_hypernetworks_mlps.%d.layers.%d.bias",
                                                   i, layer);
          float *p = take (l, name, 1, fo, 0, 0, 0);

          if (i == 0)
            w->hyper_b[layer] = p;
        }
    }
  take_mlp (l, "sam_mask_decoder.iou_prediction_head", &w->iou_head, c, IOU_HIDDEN, N_MASK_TOKENS, 3);
  if (self->s)
    take_mlp (l, "sam_mask_decoder.pred_obj_score_head", &w->obj_head, c, c, 1, 3);

  w->dense_pe = room (l, (gsize) self->hw * c);
}

/* PositionEmbeddingRandom over the embedding grid, pixel centres. */
static void
fill_dense_pe (LodeSam2DecoderDev *self)
{
  int e = self->e;
  float *pts = g_new (float, (gsize) self->hw * 3);

  for (int i = 0; i < e; i++)
    for (int j = 0; j < e; j++)
      {
        float *p = pts + ((gsize) i * e + j) * 3;

        p[0] = (float) j;
        p[1] = (float) i;
        p[2] = 0.0f;
      }
  lode_ops_point_encoding (self->w.dense_pe, pts, self->w.gauss, NULL, self->hw, self->c, (float) e);
  g_free (pts);
}

/* The work block: buffer pointers at their offsets from base (NULL: only
 * the size). */
static gsize
layout_work (LodeSam2DecoderDev *self, float *base)
{
  gsize off = 0, hw = (gsize) self->hw, c = (gsize) self->c, tc = (gsize) MAX_TOKENS * c;
  gsize lsz = (gsize) self->low_res * self->low_res;
  gsize hidden = MAX ((gsize) self->config.decoder_mlp, MAX (c, (gsize) IOU_HIDDEN));
  gsize hi = hw * (gsize) self->inner;
  struct { float **p; gsize n; } bufs[] = {
    { &self->tok_pe, tc }, { &self->queries, tc }, { &self->q, tc }, { &self->tq, tc },
    { &self->tk, tc }, { &self->tv, tc }, { &self->to, tc }, { &self->tattn, tc },
    { &self->thid, MAX_TOKENS * hidden }, { &self->prompt, MAX_SPARSE * 3 },
    { &self->emb, hw * c }, { &self->hr0, 2 * hw * c }, { &self->hr1, hw * c },
    { &self->c_keys, hw * c }, { &self->c_kpe, hw * c }, { &self->c_k0, hi }, { &self->c_v0, hi },
    { &self->keys, hw * c }, { &self->kpe, hw * c }, { &self->keys0, hw * c }, { &self->kpe0, hw * c },
    { &self->kimg, hi }, { &self->vimg, hi }, { &self->pq, hi }, { &self->ho, hi },
    { &self->ktmp, hw * c }, { &self->dense, hw * c },
    { &self->md_a, (MASK_IN_CHANS / 4) * lsz / 4 }, { &self->md_b, MASK_IN_CHANS * hw },
    { &self->mask_in, lsz },
    { &self->up_cols, 2 * hw * c }, { &self->up1, hw * c }, { &self->up2, 2 * hw * c },
    { &self->hyp_a, N_MASK_TOKENS * c }, { &self->hyp_b, N_MASK_TOKENS * c },
    { &self->hyper_in, N_MASK_TOKENS * c / 8 },
    { &self->head_a, hidden }, { &self->head_b, hidden },
    { &self->res, N_MASK_TOKENS * lsz + N_SCORES },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (bufs); i++)
    {
      if (base != NULL)
        *bufs[i].p = base + off;
      off += ROUND16 (bufs[i].n);
    }
  return off;
}

static gboolean
open_backend (LodeSam2DecoderDev *self, LodeDeviceKind device, GError **error)
{
  self->device = device;
  if (device == LODE_DEVICE_CPU)
    {
      self->be = &cpu_backend;
      return TRUE;
    }
#ifdef LODE_WITH_CUDA
  if (lode_device_cuda_count () > 0)
    {
      LodeOpsCuda *cuda = NULL;

      if (!lode_ops_cuda_check (lode_ops_cuda_new (&cuda), error))
        return FALSE;
      self->ctx = cuda;
      self->be = &gpu_backend;
      return TRUE;
    }
  g_set_error_literal (error, LODE_DEVICE_ERROR, LODE_DEVICE_ERROR_UNAVAILABLE,
                       _("No CUDA device was found; use --device cpu"));
  return FALSE;
#else
  g_set_error_literal (error, LODE_DEVICE_ERROR, LODE_DEVICE_ERROR_UNAVAILABLE,
                       _("This Lode was built without CUDA; use --device cpu"));
  return FALSE;
#endif
}

LodeSam2DecoderDev *
lode_sam2_decoder_dev_new (const LodeSam2Config *config,
                           LodeSam2TensorSource  source,
                           gpointer              user_data,
                           LodeDeviceKind        device,
                           GError              **error)
{
  LodeSam2DecoderDev *self;
  Loader loader = { 0 };
  gsize n_weights, n_work;
  float *pack;
  gboolean ok;

  g_return_val_if_fail (config != NULL && source != NULL, NULL);

  if (!lode_sam2_decoder_check_config (config, error))
    return NULL;

  self = g_new0 (LodeSam2DecoderDev, 1);
  self->config = *config;
  self->c = config->decoder_dim;
  self->e = config->image_size / 16;
  self->hw = self->e * self->e;
  self->low_res = 4 * self->e;
  self->heads = config->decoder_heads;
  self->depth = config->decoder_depth;
  self->s = config->pred_obj_scores ? 1 : 0;
  self->inner = self->c / ATTN_DOWNSAMPLE;

  /* the weights: measured, read into a host pack, then moved as one block */
  loader.source = source;
  loader.data = user_data;
  loader.error = error;
  load_weights (self, &loader);
  n_weights = loader.off;
  pack = g_new0 (float, n_weights);
  loader.pack = pack;
  loader.off = 0;
  load_weights (self, &loader);
  if (loader.failed || !open_backend (self, device, error))
    {
      g_free (pack);
      lode_sam2_decoder_dev_free (self);
      return NULL;
    }
  fill_dense_pe (self);

  n_work = layout_work (self, NULL);
  ok = self->be->check (self->be->alloc (self->ctx, &self->weights, n_weights), error) &&
       self->be->check (self->be->alloc (self->ctx, &self->work, n_work), error);
  if (ok)
    {
      float **ptrs = (float **) &self->w;

      layout_work (self, self->work);
      /* the output tokens' rows of tok_pe never change: uploaded from the
       * pack, then every weight pointer moved from the pack to the block */
      ok = self->be->check (self->be->upload (self->ctx, self->tok_pe, self->w.tokens,
                                              (gsize) (self->s + 1 + N_MASK_TOKENS) * self->c), error) &&
           self->be->check (self->be->upload (self->ctx, self->weights, pack, n_weights), error);
      for (gsize i = 0; i < N_WEIGHT_PTRS; i++)
        if (ptrs[i] != NULL)
          ptrs[i] = self->weights + (ptrs[i] - pack);
    }
  /* the uploads are queued; the pack must outlive them */
  if (ok)
    ok = self->be->check (self->be->sync (self->ctx), error);
  g_free (pack);
  if (!ok)
    {
      lode_sam2_decoder_dev_free (self);
      return NULL;
    }
  self->host_prompt = g_new0 (float, MAX_SPARSE * 3);
  self->host_res = g_new (float, N_MASK_TOKENS * (gsize) self->low_res * self->low_res + N_SCORES);
  return self;
}

LodeSam2DecoderDev *
lode_sam2_decoder_dev_new_from_checkpoint (LodeCheckpoint       *checkpoint,
                                           const LodeSam2Config *config,
                                           LodeDeviceKind        device,
                                           GError              **error)
{
  g_return_val_if_fail (checkpoint != NULL, NULL);
  return lode_sam2_decoder_dev_new (config, lode_sam2_checkpoint_source, checkpoint, device, error);
}

void
lode_sam2_decoder_dev_free (LodeSam2DecoderDev *self)
{
  if (self == NULL)
    return;
  if (self->be != NULL)
    {
      if (self->weights != NULL)
        self->be->release (self->ctx, self->weights);
      if (self->work != NULL)
        self->be->release (self->ctx, self->work);
    }
#ifdef LODE_WITH_CUDA
  if (self->ctx != NULL)
    lode_ops_cuda_free (self->ctx);
#endif
  g_free (self->host_prompt);
  g_free (self->host_res);
  g_free (self);
}

LodeDeviceKind
lode_sam2_decoder_dev_device (LodeSam2DecoderDev *self)
{
  return self->device;
}

const LodeSam2Config *
lode_sam2_decoder_dev_get_config (LodeSam2DecoderDev *self)
{
  return &self->config;
}

int
lode_sam2_decoder_dev_low_res_size (LodeSam2DecoderDev *self)
{
  return self->low_res;
}

/* ---- the forward pass ------------------------------------------------------ */

/* Attention block with projections: out [lq, c] = out_proj (attention (
 * q_in Wq, k_in Wk, v_in Wv)). k and v may be given already projected
 * (k_proj, v_proj) for the cached first layer. */
static int
attention (LodeSam2DecoderDev *self, const Attn *a, int inner, const float *q_in, float *qp, int lq,
           const float *k_in, const float *v_in, float *kp, float *vp, int lk, gboolean projected,
           float *o, float *out)
{
  const DecBackend *be = self->be;
  int c = self->c;

  CALL (be->linear (self->ctx, qp, q_in, a->qw, a->qb, lq, c, inner, FALSE));
  if (!projected)
    {
      CALL (be->linear (self->ctx, kp, k_in, a->kw, a->kb, lk, c, inner, FALSE));
      CALL (be->linear (self->ctx, vp, v_in, a->vw, a->vb, lk, c, inner, FALSE));
    }
  CALL (be->attention_rows (self->ctx, o, qp, inner, kp, inner, vp, inner, lq, lk, self->heads,
                            inner / self->heads));
  CALL (be->linear (self->ctx, out, o, a->ow, a->ob, lq, inner, c, FALSE));
  return 0;
}

/* keys0 / kpe0 and the first layer's K, V: from the per-embedding cache
 * without a mask input, else from the mask's dense embedding. */
static int
dense_prompt (LodeSam2DecoderDev *self, const float **keys0, const float **kpe0, gboolean *cached)
{
  const DecBackend *be = self->be;
  const Weights *w = &self->w;
  int c = self->c, e = self->e, ls = self->low_res, hw = self->hw;
  LodeConvShape s;

  /* conv 2x2 s2 (1 -> 4), LayerNorm2d, GELU; conv 2x2 s2 (4 -> 16),
   * LayerNorm2d, GELU; conv 1x1 (16 -> c) */
  lode_conv_shape_init (&s, 1, 1, ls, ls, MASK_IN_CHANS / 4, 2, 2, 0);
  CALL (be->conv2d (self->ctx, self->md_a, self->mask_in, w->md_w[0], w->md_b[0], &s));
  CALL (be->layer_norm2d (self->ctx, self->md_a, self->md_a, w->md_ln_w[0], w->md_ln_b[0],
                          MASK_IN_CHANS / 4, (ls / 2) * (ls / 2), LN2D_EPS));
  CALL (be->gelu (self->ctx, self->md_a, self->md_a, (gsize) (MASK_IN_CHANS / 4) * (ls / 2) * (ls / 2)));
  lode_conv_shape_init (&s, 1, MASK_IN_CHANS / 4, ls / 2, ls / 2, MASK_IN_CHANS, 2, 2, 0);
  CALL (be->conv2d (self->ctx, self->md_b, self->md_a, w->md_w[1], w->md_b[1], &s));
  CALL (be->layer_norm2d (self->ctx, self->md_b, self->md_b, w->md_ln_w[1], w->md_ln_b[1],
                          MASK_IN_CHANS, hw, LN2D_EPS));
  CALL (be->gelu (self->ctx, self->md_b, self->md_b, (gsize) MASK_IN_CHANS * hw));
  lode_conv_shape_init (&s, 1, MASK_IN_CHANS, e, e, c, 1, 1, 0);
  CALL (be->conv2d (self->ctx, self->dense, self->md_b, w->md_w[2], w->md_b[2], &s));
  /* keys = (image_embed + dense) channels-last, and + PE */
  CALL (be->add (self->ctx, self->ktmp, self->emb, self->dense, (gsize) c * hw));
  CALL (be->nchw_to_nhwc (self->ctx, self->keys0, self->ktmp, c, e, e));
  CALL (be->add (self->ctx, self->kpe0, self->keys0, w->dense_pe, (gsize) c * hw));
  *keys0 = self->keys0;
  *kpe0 = self->kpe0;
  *cached = FALSE;
  return 0;
}

static int
two_way_transformer (LodeSam2DecoderDev *self, int t, const float *keys_in, const float *kpe_in,
                     gboolean first_cached)
{
  const DecBackend *be = self->be;
  const Weights *w = &self->w;
  int c = self->c, hw = self->hw, inner = self->inner;

  for (int l = 0; l < self->depth; l++)
    {
      const Layer *ly = &w->layers[l];
      /* self attention; the first layer has neither the PE nor the residual:
       * its queries are the token rows themselves */
      const float *q_in = l == 0 ? self->tok_pe : self->q;
      const float *v_in = l == 0 ? self->tok_pe : self->queries;

      CALL (be->linear (self->ctx, self->tq, q_in, ly->self_attn.qw, ly->self_attn.qb, t, c, c, FALSE));
      CALL (be->linear (self->ctx, self->tk, q_in, ly->self_attn.kw, ly->self_attn.kb, t, c, c, FALSE));
      CALL (be->linear (self->ctx, self->tv, v_in, ly->self_attn.vw, ly->self_attn.vb, t, c, c, FALSE));
      CALL (be->attention_rows (self->ctx, self->to, self->tq, c, self->tk, c, self->tv, c,
                                t, t, self->heads, c / self->heads));
      CALL (be->linear (self->ctx, self->tattn, self->to, ly->self_attn.ow, ly->self_attn.ob, t, c, c, FALSE));
      CALL (be->add_layer_norm (self->ctx, self->queries, l == 0 ? self->tattn : self->queries,
                                l == 0 ? NULL : self->tattn, ly->norm_w[0], ly->norm_b[0], t, c,
                                LN_EPS, self->q, self->tok_pe));

      /* the tokens attend to the image */
      TRY (attention (self, &ly->t2i, inner, self->q, self->tq, t, kpe_in, keys_in,
                      first_cached && l == 0 ? self->c_k0 : self->kimg,
                      first_cached && l == 0 ? self->c_v0 : self->vimg, hw, first_cached && l == 0,
                      self->to, self->tattn));
      CALL (be->add_layer_norm (self->ctx, self->queries, self->queries, self->tattn,
                                ly->norm_w[1], ly->norm_b[1], t, c, LN_EPS, NULL, NULL));

      /* MLP */
      CALL (be->linear (self->ctx, self->thid, self->queries, ly->mlp.w[0], ly->mlp.b[0], t, c,
                        self->config.decoder_mlp, TRUE));
      CALL (be->linear (self->ctx, self->tattn, self->thid, ly->mlp.w[1], ly->mlp.b[1], t,
                        self->config.decoder_mlp, c, FALSE));
      CALL (be->add_layer_norm (self->ctx, self->queries, self->queries, self->tattn,
                                ly->norm_w[2], ly->norm_b[2], t, c, LN_EPS, self->q, self->tok_pe));

      /* the image attends to the tokens: keys = norm4 (keys + attn), kpe = keys + PE */
      CALL (be->linear (self->ctx, self->pq, kpe_in, ly->i2t.qw, ly->i2t.qb, hw, c, inner, FALSE));
      CALL (be->linear (self->ctx, self->tk, self->q, ly->i2t.kw, ly->i2t.kb, t, c, inner, FALSE));
      CALL (be->linear (self->ctx, self->tv, self->queries, ly->i2t.vw, ly->i2t.vb, t, c, inner, FALSE));
      CALL (be->attention_rows (self->ctx, self->ho, self->pq, inner, self->tk, inner, self->tv, inner,
                                hw, t, self->heads, inner / self->heads));
      CALL (be->linear (self->ctx, self->ktmp, self->ho, ly->i2t.ow, ly->i2t.ob, hw, inner, c, FALSE));
      CALL (be->add_layer_norm (self->ctx, self->keys, keys_in, self->ktmp, ly->norm_w[3], ly->norm_b[3],
                                hw, c, LN_EPS, self->kpe, w->dense_pe));
      keys_in = self->keys;
      kpe_in = self->kpe;
    }

  /* final attention of the tokens to the image, then its norm */
  TRY (attention (self, &w->final_attn, inner, self->q, self->tq, t, self->kpe, self->keys,
                   self->kimg, self->vimg, hw, FALSE, self->to, self->tattn));
  CALL (be->add_layer_norm (self->ctx, self->queries, self->queries, self->tattn,
                            w->final_norm_w, w->final_norm_b, t, c, LN_EPS, NULL, NULL));
  return 0;
}

static int
upload_embedding (LodeSam2DecoderDev *self, const LodeSam2Embedding *emb)
{
  const DecBackend *be = self->be;
  const Weights *w = &self->w;
  const Attn *a = &w->layers[0].t2i;
  int c = self->c, e = self->e, hw = self->hw;

  CALL (be->upload (self->ctx, self->emb, emb->image_embed, (gsize) c * hw));
  CALL (be->upload (self->ctx, self->hr0, emb->high_res[0], (gsize) (c / 8) * 16 * hw));
  CALL (be->upload (self->ctx, self->hr1, emb->high_res[1], (gsize) (c / 4) * 4 * hw));
  /* keys without a mask input: (image_embed + no_mask_embed) channels-last,
   * keys + PE, and the first token-to-image attention's K and V */
  CALL (be->nchw_to_nhwc (self->ctx, self->c_keys, self->emb, c, e, e));
  CALL (be->bias (self->ctx, self->c_keys, self->c_keys, w->no_mask, hw, c, FALSE));
  CALL (be->add (self->ctx, self->c_kpe, self->c_keys, w->dense_pe, (gsize) hw * c));
  CALL (be->linear (self->ctx, self->c_k0, self->c_kpe, a->kw, a->kb, hw, c, self->inner, FALSE));
  CALL (be->linear (self->ctx, self->c_v0, self->c_keys, a->vw, a->vb, hw, c, self->inner, FALSE));
  /* the caller may free the embedding when this returns */
  CALL (be->sync (self->ctx));
  return 0;
}

gboolean
lode_sam2_decoder_dev_set_embedding (LodeSam2DecoderDev      *self,
                                     const LodeSam2Embedding *emb,
                                     GError                 **error)
{
  int c;

  g_return_val_if_fail (self != NULL && emb != NULL, FALSE);

  c = self->c;
  self->has_embedding = FALSE;
  if (emb->image_size != self->config.image_size || emb->d_model != c ||
      emb->embed_size != self->e || emb->high_res_channels[0] != c / 8 ||
      emb->high_res_channels[1] != c / 4)
    {
      g_set_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_EMBEDDING,
                   _("The image embedding (input size %d, width %d) does not fit the model (input size %d, width %d)"),
                   emb->image_size, emb->d_model, self->config.image_size, c);
      return FALSE;
    }
  if (!self->be->check (upload_embedding (self, emb), error))
    return FALSE;
  self->has_embedding = TRUE;
  return TRUE;
}

/* One click on the device; the masks and scores end in host_res (from
 * mask 1 on when multimask). */
static int
click (LodeSam2DecoderDev *self, const LodeSam2Prompt *prompt, int n_sparse)
{
  const DecBackend *be = self->be;
  const Weights *w = &self->w;
  int c = self->c, e = self->e, hw = self->hw, s = self->s;
  int first = s + 1 + N_MASK_TOKENS, t = first + n_sparse;
  gsize lsz = (gsize) self->low_res * self->low_res;
  float *scores = self->res + N_MASK_TOKENS * lsz;
  const float *keys0 = self->c_keys, *kpe0 = self->c_kpe;
  gboolean cached = TRUE;
  gsize skip;

  /* tokens: [obj_score, iou, mask tokens (uploaded at load), sparse prompts] */
  CALL (be->upload (self->ctx, self->prompt, self->host_prompt, (gsize) n_sparse * 3));
  CALL (be->point_encoding (self->ctx, self->tok_pe + (gsize) first * c, self->prompt, w->gauss,
                            w->label_embed, n_sparse, c, (float) self->config.image_size));
  if (prompt->mask_input != NULL)
    {
      CALL (be->upload (self->ctx, self->mask_in, prompt->mask_input, lsz));
      TRY (dense_prompt (self, &keys0, &kpe0, &cached));
    }
  TRY (two_way_transformer (self, t, keys0, kpe0, cached));

  /* upscaling (transposed convolutions 2x2 s2 as a product and an unfold)
   * with the high-resolution features */
  CALL (be->gemm (self->ctx, TRUE, TRUE, c, hw, c, 1.0f, w->up_w[0], self->keys, 0.0f, self->up_cols));
  CALL (be->unfold_2x2 (self->ctx, self->up1, self->up_cols, w->up_b[0], self->hr1, c / 4, e, FALSE));
  CALL (be->layer_norm2d (self->ctx, self->up1, self->up1, w->up_ln_w, w->up_ln_b, c / 4, 4 * hw, LN2D_EPS));
  CALL (be->gelu (self->ctx, self->up1, self->up1, (gsize) c * hw));
  CALL (be->gemm (self->ctx, TRUE, FALSE, c / 2, 4 * hw, c / 4, 1.0f, w->up_w[1], self->up1, 0.0f,
                  self->up_cols));
  CALL (be->unfold_2x2 (self->ctx, self->up2, self->up_cols, w->up_b[1], self->hr0, c / 8, 2 * e, TRUE));

  /* the four hypernetworks at once (one row each), masks = hyper @ up2 */
  CALL (be->gemm_batched (self->ctx, FALSE, TRUE, N_MASK_TOKENS, 1, c, c,
                          self->queries + (gsize) (s + 1) * c, c, w->hyper_w[0], (gint64) c * c,
                          self->hyp_a, c));
  CALL (be->bias (self->ctx, self->hyp_a, self->hyp_a, w->hyper_b[0], 1, N_MASK_TOKENS * c, TRUE));
  CALL (be->gemm_batched (self->ctx, FALSE, TRUE, N_MASK_TOKENS, 1, c, c,
                          self->hyp_a, c, w->hyper_w[1], (gint64) c * c, self->hyp_b, c));
  CALL (be->bias (self->ctx, self->hyp_b, self->hyp_b, w->hyper_b[1], 1, N_MASK_TOKENS * c, TRUE));
  CALL (be->gemm_batched (self->ctx, FALSE, TRUE, N_MASK_TOKENS, 1, c / 8, c,
                          self->hyp_b, c, w->hyper_w[2], (gint64) (c / 8) * c, self->hyper_in, c / 8));
  CALL (be->bias (self->ctx, self->hyper_in, self->hyper_in, w->hyper_b[2], 1, N_MASK_TOKENS * c / 8, FALSE));
  CALL (be->gemm (self->ctx, FALSE, FALSE, N_MASK_TOKENS, (int) lsz, c / 8, 1.0f, self->hyper_in,
                  self->up2, 0.0f, self->res));

  /* IoU and object scores after the masks */
  CALL (be->linear (self->ctx, self->head_a, self->queries + (gsize) s * c, w->iou_head.w[0],
                    w->iou_head.b[0], 1, c, IOU_HIDDEN, TRUE));
  CALL (be->linear (self->ctx, self->head_b, self->head_a, w->iou_head.w[1], w->iou_head.b[1], 1,
                    IOU_HIDDEN, IOU_HIDDEN, TRUE));
  CALL (be->linear (self->ctx, scores, self->head_b, w->iou_head.w[2], w->iou_head.b[2], 1,
                    IOU_HIDDEN, N_MASK_TOKENS, FALSE));
  if (self->config.iou_prediction_use_sigmoid)
    CALL (be->sigmoid (self->ctx, scores, scores, N_MASK_TOKENS));
  if (s)
    {
      CALL (be->linear (self->ctx, self->head_a, self->queries, w->obj_head.w[0], w->obj_head.b[0],
                        1, c, c, TRUE));
      CALL (be->linear (self->ctx, self->head_b, self->head_a, w->obj_head.w[1], w->obj_head.b[1],
                        1, c, c, TRUE));
      CALL (be->linear (self->ctx, scores + N_MASK_TOKENS, self->head_b, w->obj_head.w[2],
                        w->obj_head.b[2], 1, c, 1, FALSE));
    }

  /* one download: the three candidates with multimask, else all four (the
   * stability fallback may need them), then the scores */
  skip = prompt->multimask ? lsz : 0;
  CALL (be->download (self->ctx, self->host_res + skip, self->res + skip,
                      N_MASK_TOKENS * lsz + N_SCORES - skip));
  return 0;
}

gboolean
lode_sam2_decoder_dev_run (LodeSam2DecoderDev    *self,
                           const LodeSam2Prompt  *prompt,
                           LodeSam2DecoderOutput *out,
                           GError               **error)
{
  gsize lsz;
  int n_sparse;
  const float *iou_all, *scores;

  g_return_val_if_fail (self != NULL && prompt != NULL && out != NULL, FALSE);
  g_return_val_if_fail (self->has_embedding, FALSE);

  memset (out, 0, sizeof *out);
  n_sparse = lode_sam2_prompt_rows (prompt, self->host_prompt, error);
  if (n_sparse < 0)
    return FALSE;
  self->calls = 0;
  if (!self->be->check (click (self, prompt, n_sparse), error))
    return FALSE;

  lsz = (gsize) self->low_res * self->low_res;
  scores = self->host_res + N_MASK_TOKENS * lsz;
  iou_all = scores;
  out->object_score = self->s ? scores[N_MASK_TOKENS] : 10.0f;
  lode_sam2_decoder_select_masks (&self->config, self->host_res, iou_all, self->low_res, prompt->multimask, out);
  return TRUE;
}

gboolean
lode_sam2_decoder_dev_time (LodeSam2DecoderDev       *self,
                            const LodeSam2Prompt     *prompt,
                            int                       n_runs,
                            LodeSam2DecoderDevTiming *timing,
                            GError                  **error)
{
  LodeSam2DecoderOutput out = { 0 };
  gint64 t0;

  g_return_val_if_fail (self != NULL && prompt != NULL && timing != NULL && n_runs > 0, FALSE);

  if (!lode_sam2_decoder_dev_run (self, prompt, &out, error))
    return FALSE;
  lode_sam2_decoder_output_clear (&out);
  t0 = g_get_monotonic_time ();
  for (int i = 0; i < n_runs; i++)
    {
      if (!lode_sam2_decoder_dev_run (self, prompt, &out, error))
        return FALSE;
      lode_sam2_decoder_output_clear (&out);
    }
  timing->ms_per_click = (double) (g_get_monotonic_time () - t0) / 1000.0 / n_runs;
  timing->calls_per_click = self->calls;
  return TRUE;
}
