#define G_LOG_DOMAIN "lode-model"

#include "config.h"

#include <glib/gi18n.h>
#include <math.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif
#include "lode-ops.h"
#include "lode-ops-math.h"
#include "lode-parallel.h"
#include "lode-sam2-decoder.h"

G_DEFINE_QUARK (lode-sam2-error-quark, lode_sam2_error)

/* Fixed by the official builder (sam2_base.py _build_sam_heads). */
#define MASK_IN_CHANS 16
#define IOU_HIDDEN 256
#define N_MASK_TOKENS 4
#define ATTN_DOWNSAMPLE 2
#define LN_EPS 1e-5f
#define LN2D_EPS 1e-6f
/* obj_score_token, iou_token, 4 mask tokens, box corners, points, padding */
#define MAX_TOKENS (1 + 1 + N_MASK_TOKENS + 2 + LODE_SAM2_MAX_POINTS + 1)
/* Image rows per work item of the row-wise passes over [hw, c]. */
#define NORM_BLOCK 64
/* and of add_product_norm_pe: a product's rows [256, c] stay in a core's
 * cache to the norm, and its right factor is packed once per block */
#define PRODUCT_BLOCK 256

typedef struct {
  LodeTensor *qw, *qb, *kw, *kb, *vw, *vb, *ow, *ob;
  int internal;
} Attn;

typedef struct {
  LodeTensor *w[3], *b[3];
  int n;
} Mlp;

typedef struct {
  Attn self_attn, t2i, i2t;
  LodeTensor *norm_w[4], *norm_b[4];
  Mlp mlp;
} Layer;

struct _LodeSam2Decoder {
  LodeSam2Config config;
  int c, e, hw, low_res, heads;
  GPtrArray *tensors;             /* owns every LodeTensor */

  /* prompt encoder */
  LodeTensor *gauss;              /* [2, c/2] */
  LodeTensor *point_embed[4];     /* [1, c] */
  LodeTensor *not_a_point, *no_mask;
  LodeTensor *md_w[3], *md_b[3];  /* mask downscaling convolutions */
  LodeTensor *md_ln_w[2], *md_ln_b[2];
  float *dense_pe;                /* [hw, c] */

  /* mask decoder */
  LodeTensor *obj_token, *iou_token, *mask_tokens;
  Layer layers[8];
  int depth;
  Attn final_attn;
  LodeTensor *final_norm_w, *final_norm_b;
  LodeTensor *up_w[2], *up_b[2], *up_ln_w, *up_ln_b;
  Mlp hyper[N_MASK_TOKENS];
  Mlp iou_head, obj_head;

  /* scratch, allocated once */
  float *tok_pe, *queries, *qtmp, *tbuf, *tbuf2;     /* token rows */
  float *tq, *tk, *tv, *thq, *thk, *thv, *tho;
  float *keys, *kpe, *ktmp;                          /* [hw, c] */
  float *pk, *pv, *pq, *hk, *hv, *hq, *ho;           /* [hw, internal] */
  float *up2;                                        /* a band's masks */
  float *up_h1, *up_h0;                              /* the features (upscale_cache) */
  float *masks;                                      /* [4, low_res^2] */
  float *mask_scratch;
  float *up_cols;                                    /* transposed convolution columns */
  float *r, *z, *sc, *fold_bias;                      /* folded attention */
  float *wout_t[8 + 1];                              /* per attention: out_proj^T per head */

  /* prompt-independent first layer (no mask input): keys, keys + PE and
   * the token-to-image K and V in transposed head layout [heads, d, hw],
   * for the embedding of serial
   * cached_serial (an embedding's contents never change once in use, see
   * lode-sam2-types.h, and serials are not reused) */
  guint64 cached_serial;
  gboolean cache_valid;
  float *c_keys, *c_kpe, *c_hk, *c_hv;
  /* and layer 0's image-to-token queries Wq (K0 + PE) + bq, likewise */
  float *c_hq;
  /* layer 0's token-to-image Wk Wd and Wv Wd [internal, MASK_IN_CHANS]
   * (Wd: the last convolution of the mask downscaling), each followed by
   * a column: the shift bd - no_mask_embed [c] through Wk and Wv */
  float *mask_kw, *mask_vw;
  float *mask_shift;
  /* the same for layer 0's image-to-token queries: Wq Wd, Wq shift */
  float *mask_qw;
  /* Wd^T [MASK_IN_CHANS, c] and the shift [c], under each other; and the
   * mask features G with a row of ones [MASK_IN_CHANS + 1, hw] of this
   * click when its image-to-token attentions are folded, else NULL */
  float *mask_rows;
  const float *mask_g;

  /* The first upscaling's product through the layers' last norms (see
   * factor_init): M_l [c, c] per layer, the constant rows (per layer
   * ob_l M_l, 1^T M_l, b_l M_l+1, then Wd^T M_0 and shift M_0), the cached
   * M_0^T K0^T [c, hw]; per click the factors left [hw, f_k] and right
   * [f_k, c], the norms' means and 1 / std [depth, 2, hw] and the
   * coefficient of M_0^T K0^T per pixel. */
  float *fm[8], *f_rows, *c_y0, *f_left, *f_right, *f_stats, *f_p0;
  gboolean factored;
  int f_ht, f_k;

  /* Layer 1's image projections through layer 0's cache (expand_init):
   * per embedding x_c [x_n, hw] = W1 ((K0 - mean) G0)^T, W1 the rows of
   * layer 1's token-to-image Wk and Wv and image-to-token Wq under each
   * other (x_w [x_n, c]), and x_p [2 internal, hw] = Wk (b0 + PE)^T + bk,
   * then Wq (b0 + PE)^T + bq; x_cv = Wv b0 + bv. Per click x_m [w0 + 1,
   * x_n]: the centred rows of layer 0's z (and of ob0) times G0 W1^T;
   * x_u and x_ad [heads * t, w0], x_sl [heads * t, hw] scratch. */
  gboolean expanded;
  int x_n;
  float *x_w, *x_c, *x_p, *x_cv, *x_zg, *x_m, *x_u, *x_ad, *x_sl, *x_beta, *x_sum;

  /* add_product_norm_pe's per-thread scratch when it runs the next
   * token-to-image attention: fuse_threads parts of fuse_part floats */
  float *fuse_buf;
  int fuse_threads;
  gsize fuse_part;
};

/* Embedding rows per band of the upscaling: about BAND_PIXELS pixels. */
#define BAND_PIXELS 512

static int
band_rows (const LodeSam2Decoder *self)
{
  return MAX (1, BAND_PIXELS / self->e);
}

/* ---- weights ------------------------------------------------------------ */

typedef struct {
  LodeSam2Decoder *self;
  LodeSam2TensorSource source;
  gpointer data;
  GError **error;
  gboolean failed;
} Loader;

static LodeTensor *
take (Loader *l, const char *name, int ndim, gint64 d0, gint64 d1, gint64 d2, gint64 d3)
{
  gint64 shape[4] = { d0, d1, d2, d3 };
  LodeTensor *t;

  if (l->failed)
    return NULL;
  t = l->source (name, ndim, shape, l->data, l->error);
  if (t == NULL)
    {
      l->failed = TRUE;
      return NULL;
    }
  g_ptr_array_add (l->self->tensors, t);
  return t;
}

static void
take_linear (Loader *l, const char *prefix, int out_f, int in_f, LodeTensor **w, LodeTensor **b)
{
  g_autofree char *wn = g_strconcat (prefix, ".weight", NULL);
  g_autofree char *bn = g_strconcat (prefix, ".bias", NULL);

  *w = take (l, wn, 2, out_f, in_f, 0, 0);
  *b = take (l, bn, 1, out_f, 0, 0, 0);
}

static void
take_attn (Loader *l, const char *prefix, Attn *a, int c, int downsample)
{
  g_autofree char *q = g_strconcat (prefix, ".q_proj", NULL);
  g_autofree char *k = g_strconcat (prefix, ".k_proj", NULL);
  g_autofree char *v = g_strconcat (prefix, ".v_proj", NULL);
  g_autofree char *o = g_strconcat (prefix, ".out_proj", NULL);

  a->internal = c / downsample;
  take_linear (l, q, a->internal, c, &a->qw, &a->qb);
  take_linear (l, k, a->internal, c, &a->kw, &a->kb);
  take_linear (l, v, a->internal, c, &a->vw, &a->vb);
  take_linear (l, o, c, a->internal, &a->ow, &a->ob);
}

/* MLP(input, hidden, output, n) of sam2_utils: Linear layers numbered
 * layers.0 .. layers.n-1. */
static void
take_mlp (Loader *l, const char *prefix, Mlp *m, int in_f, int hidden, int out_f, int n)
{
  m->n = n;
  for (int i = 0; i < n; i++)
    {
      g_autofree char *name = g_strdup_printf ("%s.layers.%d", prefix, i);
      int fi = i == 0 ? in_f : hidden;
      int fo = i == n - 1 ? out_f : hidden;

      take_linear (l, name, fo, fi, &m->w[i], &m->b[i]);
    }
}

static void
take_norm (Loader *l, const char *prefix, int c, LodeTensor **w, LodeTensor **b)
{
  g_autofree char *wn = g_strconcat (prefix, ".weight", NULL);
  g_autofree char *bn = g_strconcat (prefix, ".bias", NULL);

  *w = take (l, wn, 1, c, 0, 0, 0);
  *b = take (l, bn, 1, c, 0, 0, 0);
}

static void
load_weights (Loader *l)
{
  LodeSam2Decoder *self = l->self;
  int c = self->c;
  const char *pe = "sam_prompt_encoder";
  const char *md = "sam_mask_decoder";

  self->gauss = take (l, "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
                      2, 2, c / 2, 0, 0);
  for (int i = 0; i < 4; i++)
    {
      g_autofree char *name = g_strdup_printf ("%s.point_embeddings.%d.weight", pe, i);
      self->point_embed[i] = take (l, name, 2, 1, c, 0, 0);
    }
  self->not_a_point = take (l, "sam_prompt_encoder.not_a_point_embed.weight", 2, 1, c, 0, 0);
  self->no_mask = take (l, "sam_prompt_encoder.no_mask_embed.weight", 2, 1, c, 0, 0);
  self->md_w[0] = take (l, "sam_prompt_encoder.mask_downscaling.0.weight", 4, MASK_IN_CHANS / 4, 1, 2, 2);
  self->md_b[0] = take (l, "sam_prompt_encoder.mask_downscaling.0.bias", 1, MASK_IN_CHANS / 4, 0, 0, 0);
  take_norm (l, "sam_prompt_encoder.mask_downscaling.1", MASK_IN_CHANS / 4, &self->md_ln_w[0], &self->md_ln_b[0]);
  self->md_w[1] = take (l, "sam_prompt_encoder.mask_downscaling.3.weight", 4, MASK_IN_CHANS, MASK_IN_CHANS / 4, 2, 2);
  self->md_b[1] = take (l, "sam_prompt_encoder.mask_downscaling.3.bias", 1, MASK_IN_CHANS, 0, 0, 0);
  take_norm (l, "sam_prompt_encoder.mask_downscaling.4", MASK_IN_CHANS, &self->md_ln_w[1], &self->md_ln_b[1]);
  self->md_w[2] = take (l, "sam_prompt_encoder.mask_downscaling.6.weight", 4, c, MASK_IN_CHANS, 1, 1);
  self->md_b[2] = take (l, "sam_prompt_encoder.mask_downscaling.6.bias", 1, c, 0, 0, 0);

  for (int i = 0; i < self->depth; i++)
    {
      Layer *ly = &self->layers[i];
      g_autofree char *p = g_strdup_printf ("%s.transformer.layers.%d", md, i);
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
  take_attn (l, "sam_mask_decoder.transformer.final_attn_token_to_image", &self->final_attn, c, ATTN_DOWNSAMPLE);
  take_norm (l, "sam_mask_decoder.transformer.norm_final_attn", c, &self->final_norm_w, &self->final_norm_b);

  self->iou_token = take (l, "sam_mask_decoder.iou_token.weight", 2, 1, c, 0, 0);
  self->mask_tokens = take (l, "sam_mask_decoder.mask_tokens.weight", 2, N_MASK_TOKENS, c, 0, 0);
  if (self->config.pred_obj_scores)
    self->obj_token = take (l, "sam_mask_decoder.obj_score_token.weight", 2, 1, c, 0, 0);
  self->up_w[0] = take (l, "sam_mask_decoder.output_upscaling.0.weight", 4, c, c / 4, 2, 2);
  self->up_b[0] = take (l, "sam_mask_decoder.output_upscaling.0.bias", 1, c / 4, 0, 0, 0);
  take_norm (l, "sam_mask_decoder.output_upscaling.1", c / 4, &self->up_ln_w, &self->up_ln_b);
  self->up_w[1] = take (l, "sam_mask_decoder.output_upscaling.3.weight", 4, c / 4, c / 8, 2, 2);
  self->up_b[1] = take (l, "sam_mask_decoder.output_upscaling.3.bias", 1, c / 8, 0, 0, 0);
  for (int i = 0; i < N_MASK_TOKENS; i++)
    {
      g_autofree char *name = g_strdup_printf ("%s.output_hypernetworks_mlps.%d", md, i);
      take_mlp (l, name, &self->hyper[i], c, c, c / 8, 3);
    }
  take_mlp (l, "sam_mask_decoder.iou_prediction_head", &self->iou_head, c, IOU_HIDDEN, N_MASK_TOKENS, 3);
  if (self->config.pred_obj_scores)
    take_mlp (l, "sam_mask_decoder.pred_obj_score_head", &self->obj_head, c, c, 1, 3);
}

/* ---- positional encoding -------------------------------------------------- */

/* PositionEmbeddingRandom._pe_encoding of one point normalised to [0,1]:
 * out[0..c/2) = sin, out[c/2..c) = cos of 2 pi ((2x-1, 2y-1) @ G). */
static void
pe_encode (const LodeSam2Decoder *self, float x, float y, float *out)
{
  int half = self->c / 2;
  const float *g = self->gauss->data;
  const float two_pi = (float) (2.0 * G_PI);
  float cx = 2.0f * x - 1.0f, cy = 2.0f * y - 1.0f;

  for (int j = 0; j < half; j++)
    {
      float v = two_pi * (cx * g[j] + cy * g[half + j]);

      out[j] = sinf (v);
      out[half + j] = cosf (v);
    }
}

static void
compute_dense_pe (LodeSam2Decoder *self)
{
  int e = self->e;

  for (int i = 0; i < e; i++)
    for (int j = 0; j < e; j++)
      pe_encode (self, ((float) j + 0.5f) / (float) e, ((float) i + 0.5f) / (float) e,
                 self->dense_pe + ((gsize) i * e + j) * self->c);
}

/* ---- construction ------------------------------------------------------- */

gboolean
lode_sam2_decoder_check_config (const LodeSam2Config *config, GError **error)
{
  const LodeSam2Config *k = config;

  if (k->decoder_dim <= 0 || k->decoder_dim % 16 != 0 || k->image_size <= 0 ||
      k->image_size % 16 != 0 || k->decoder_heads <= 0 ||
      (k->decoder_dim / ATTN_DOWNSAMPLE) % k->decoder_heads != 0 ||
      k->decoder_depth < 1 || k->decoder_depth > 8 || k->decoder_mlp <= 0 ||
      k->num_multimask != 3 || !k->use_high_res_features)
    {
      g_set_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_CONFIG,
                   _("Unusable SAM2 decoder configuration (width %d, heads %d, depth %d, input size %d)"),
                   k->decoder_dim, k->decoder_heads, k->decoder_depth, k->image_size);
      return FALSE;
    }
  return TRUE;
}

/* [W Wd | W shift] [in, MASK_IN_CHANS + 1] for W [in, c], Wd [c,
 * MASK_IN_CHANS], in double. */
static float *
fold_weight (const LodeTensor *w, const float *wd, const float *shift, int in, int c)
{
  int n = MASK_IN_CHANS + 1;
  float *out = g_new (float, (gsize) in * n);

  for (int i = 0; i < in; i++)
    for (int j = 0; j < n; j++)
      {
        double acc = 0.0;

        for (int m = 0; m < c; m++)
          acc += (double) w->data[(gsize) i * c + m] *
                 (j < MASK_IN_CHANS ? wd[(gsize) m * MASK_IN_CHANS + j] : shift[m]);
        out[(gsize) i * n + j] = (float) acc;
      }
  return out;
}

/* A mask input changes the keys of layer 0 only through the last 1x1
 * convolution of the mask downscaling (see apply_mask_input), so the
 * token-to-image keys and values of that layer, and its image-to-token
 * queries, see it through Wk Wd, Wv Wd and Wq Wd, products of the weights
 * formed here once, in double. */
static void
fold_mask_input (LodeSam2Decoder *self)
{
  const Attn *a = &self->layers[0].t2i;
  const float *wd = self->md_w[2]->data;   /* [c, MASK_IN_CHANS] */
  int c = self->c, in = a->internal;

  self->mask_shift = g_new (float, c);
  for (int j = 0; j < c; j++)
    self->mask_shift[j] = self->md_b[2]->data[j] - self->no_mask->data[j];
  self->mask_kw = fold_weight (a->kw, wd, self->mask_shift, in, c);
  self->mask_vw = fold_weight (a->vw, wd, self->mask_shift, in, c);
  self->mask_qw = fold_weight (self->layers[0].i2t.qw, wd, self->mask_shift,
                               self->layers[0].i2t.internal, c);
  self->mask_rows = g_new (float, (gsize) (MASK_IN_CHANS + 1) * c);
  for (int j = 0; j < MASK_IN_CHANS; j++)
    for (int m = 0; m < c; m++)
      self->mask_rows[(gsize) j * c + m] = wd[(gsize) m * MASK_IN_CHANS + j];
  memcpy (self->mask_rows + (gsize) MASK_IN_CHANS * c, self->mask_shift, sizeof (float) * c);
}

static gboolean use_folded (const LodeSam2Decoder *self, const Attn *a, int t);
static void upscale_cache (LodeSam2Decoder *self, const LodeSam2Embedding *emb);

/* The row width of layer 0's folded image-to-token softmax in self->sc:
 * heads * t, and the mask features' columns after them with a mask input
 * (image_to_token_cached). */
static int
layer0_score_width (const LodeSam2Decoder *self, int t)
{
  return self->heads * t + (self->mask_g != NULL ? MASK_IN_CHANS + 1 : 0);
}

/* The image-to-token attention of layer l adds A_l Z_l + ob_l to the keys
 * K_l (A_l [hw, heads * t]: the softmax, Z_l: the heads' Wo_h v_h, when
 * folded), and its norm gives K_l+1 = D_l (X_l - mu_l 1^T) G_l + 1 b_l^T
 * (X_l the sum, D_l = diag (1 / std), G_l = diag (weight)). The first
 * upscaling's product K_L W (W [c, c]: [c_in, c_out * 4]) then unrolls, with
 * M_L = W and M_l = G_l M_l+1, into
 *   K_l+1 M_l+1 = D_l (K_l M_l + A_l (Z_l M_l) + 1 ob_l M_l - mu_l 1^T M_l)
 *                 + 1 b_l M_l+1,
 * down to K_0 M_0, which depends on the image only and is cached. What
 * changes per click is a sum of products of depth heads * t (A_l, scaled by
 * the product P_l of the later norms' 1 / std, times Z_l M_l) and of per
 * pixel multiples of constant rows: one product of depth depth * heads * t
 * + 3 depth instead of depth c. With a mask input K_0 moves by G^T Wd^T + 1
 * shift^T (apply_mask_input): 17 more columns. Formed here in double. */
static void
factor_init (LodeSam2Decoder *self)
{
  int c = self->c, L = self->depth, in = self->layers[0].i2t.internal;
  const float *w = self->up_w[0]->data, *wd = self->md_w[2]->data;
  gsize cc = (gsize) c * c;
  float *rows;
  int kmax = L * (in - 1) + 3 * L + MASK_IN_CHANS + 1;

  for (int l = L - 1; l >= 0; l--)
    {
      const float *next = l == L - 1 ? w : self->fm[l + 1];
      const float *g = self->layers[l].norm_w[3]->data;

      self->fm[l] = g_new (float, cc);
      for (int m = 0; m < c; m++)
        for (int n = 0; n < c; n++)
          self->fm[l][(gsize) m * c + n] = (float) ((double) g[m] * next[(gsize) m * c + n]);
    }
  self->f_rows = rows = g_new0 (float, (gsize) (3 * L + MASK_IN_CHANS + 1) * c);
  for (int l = 0; l < L; l++)
    {
      const float *ml = self->fm[l], *next = l == L - 1 ? w : self->fm[l + 1];
      const float *ob = self->layers[l].i2t.ob->data, *b = self->layers[l].norm_b[3]->data;

      for (int n = 0; n < c; n++)
        {
          double o = 0.0, cs = 0.0, bm = 0.0;

          for (int m = 0; m < c; m++)
            {
              o += (double) ob[m] * ml[(gsize) m * c + n];
              cs += ml[(gsize) m * c + n];
              bm += (double) b[m] * next[(gsize) m * c + n];
            }
          rows[(gsize) (3 * l) * c + n] = (float) o;
          rows[(gsize) (3 * l + 1) * c + n] = (float) cs;
          rows[(gsize) (3 * l + 2) * c + n] = (float) bm;
        }
    }
  for (int n = 0; n < c; n++)
    {
      double sh = 0.0;

      for (int j = 0; j < MASK_IN_CHANS; j++)
        {
          double acc = 0.0;

          for (int m = 0; m < c; m++)
            acc += (double) wd[(gsize) m * MASK_IN_CHANS + j] * self->fm[0][(gsize) m * c + n];
          rows[(gsize) (3 * L + j) * c + n] = (float) acc;
        }
      for (int m = 0; m < c; m++)
        sh += ((double) self->md_b[2]->data[m] - self->no_mask->data[m]) * self->fm[0][(gsize) m * c + n];
      rows[(gsize) (3 * L + MASK_IN_CHANS) * c + n] = (float) sh;
    }
  self->c_y0 = g_new (float, (gsize) self->hw * c);
  self->f_left = g_new (float, (gsize) self->hw * kmax);
  self->f_right = g_new (float, (gsize) kmax * c);
  self->f_stats = g_new (float, (gsize) 2 * L * self->hw);
  self->f_p0 = g_new (float, self->hw);
}

/* Layer 1's token-to-image K and V and its image-to-token queries are
 * linear in its keys K1 = D0 (X0 - mu0 1^T) G0 + 1 b0^T, the norm of X0 =
 * K0 + A0 z0 + 1 ob0^T (D0, G0, b0: the norm's 1 / std per pixel, weight
 * and bias; A0 [hw, w0] layer 0's image-to-token softmax, followed by the
 * mask features when a mask input is folded in; z0 their rows). A row
 * minus its mean is the sum of the centred parts, so with W' = W G0,
 *   (K1 + PE) W^T = D0 (Kc W'^T + A0 (zc W'^T) + 1 obc W'^T)
 *                   + (1 b0^T + PE) W^T
 * (c: centred). Kc W'^T and the last term depend on the image only and
 * join the cache; per click the product of A0 with zc W'^T, of depth w0,
 * replaces those of depth c over the whole image. The heads' scores need
 * not even that: the tokens' vectors meet the cached projections in d
 * dimensions and A0 in w0 (token_to_image_expanded,
 * image_to_token_expanded). */
static void
expand_init (LodeSam2Decoder *self)
{
  const Attn *t2i, *i2t;
  const float *g, *b0;
  int c = self->c, in0 = self->layers[0].i2t.internal, it, iq, w0max;

  if (self->depth < 2)
    return;
  t2i = &self->layers[1].t2i;
  i2t = &self->layers[1].i2t;
  it = t2i->internal;
  iq = i2t->internal;
  if (it != in0 || iq != in0)
    return;
  g = self->layers[0].norm_w[3]->data;
  b0 = self->layers[0].norm_b[3]->data;
  self->x_n = 2 * it + iq;
  self->x_w = g_new (float, (gsize) self->x_n * c);
  for (int o = 0; o < self->x_n; o++)
    {
      const float *w = o < it ? t2i->kw->data + (gsize) o * c
                     : o < 2 * it ? t2i->vw->data + (gsize) (o - it) * c
                     : i2t->qw->data + (gsize) (o - 2 * it) * c;

      for (int m = 0; m < c; m++)
        self->x_w[(gsize) o * c + m] = w[m] * g[m];
    }
  self->x_cv = g_new (float, it);
  for (int o = 0; o < it; o++)
    {
      double acc = t2i->vb->data[o];

      for (int m = 0; m < c; m++)
        acc += (double) t2i->vw->data[(gsize) o * c + m] * b0[m];
      self->x_cv[o] = (float) acc;
    }
  /* the expanded path runs with heads * t < in0 (factor_begin) */
  w0max = in0 + MASK_IN_CHANS + 1;
  self->x_c = g_new (float, (gsize) self->x_n * self->hw);
  self->x_p = g_new (float, (gsize) (it + iq) * self->hw);
  self->x_zg = g_new (float, (gsize) (w0max + 1) * c);
  self->x_m = g_new (float, (gsize) (w0max + 1) * self->x_n);
  self->x_u = g_new (float, (gsize) in0 * w0max);
  self->x_ad = g_new (float, (gsize) in0 * w0max);
  self->x_sl = g_new (float, (gsize) in0 * self->hw);
  self->x_beta = g_new (float, in0);
  self->x_sum = g_new (float, in0);
}

/* Starts a click's factors (see factor_init) for t tokens: the first
 * upscaling goes through them when every image-to-token attention is
 * folded. */
static void
factor_begin (LodeSam2Decoder *self, int t, gboolean mask)
{
  int L = self->depth, c = self->c;

  self->factored = use_folded (self, &self->layers[0].i2t, t);
  self->expanded = self->factored && self->x_c != NULL;
  if (!self->factored)
    return;
  self->f_ht = self->heads * t;
  self->f_k = L * self->f_ht + 3 * L + (mask ? MASK_IN_CHANS + 1 : 0);
  memcpy (self->f_right + (gsize) L * self->f_ht * c, self->f_rows,
          sizeof (float) * (gsize) (self->f_k - L * self->f_ht) * c);
}

/* Layer l's softmax A_l (self->sc) and Z_l M_l into the factors. */
static void
factor_layer (LodeSam2Decoder *self, int l, int t)
{
  int ht = self->f_ht, k = self->f_k, c = self->c;
  int w = l == 0 ? layer0_score_width (self, t) : ht;

  PARALLEL_FOR ((gint64) self->hw * ht)
  for (int r = 0; r < self->hw; r++)
    memcpy (self->f_left + (gsize) r * k + (gsize) l * ht, self->sc + (gsize) r * w,
            sizeof (float) * ht);
  lode_ops_gemm (FALSE, FALSE, ht, c, c, 1.0f, self->z, self->fm[l], 0.0f,
                 self->f_right + (gsize) l * ht * c);
}

/* The per-pixel coefficients, once every norm is known. */
static void
factor_end (LodeSam2Decoder *self)
{
  int L = self->depth, ht = self->f_ht, k = self->f_k, hw = self->hw;
  gboolean mask = k > L * ht + 3 * L;

  PARALLEL_FOR ((gint64) hw * k)
  for (int r = 0; r < hw; r++)
    {
      float *row = self->f_left + (gsize) r * k, *cst = row + (gsize) L * ht;
      float p = 1.0f;

      for (int l = L - 1; l >= 0; l--)
        {
          float mean = self->f_stats[(gsize) (2 * l) * hw + r];
          float next = p;

          p *= self->f_stats[(gsize) (2 * l + 1) * hw + r];
          for (int j = 0; j < ht; j++)
            row[(gsize) l * ht + j] *= p;
          cst[3 * l] = p;
          cst[3 * l + 1] = -p * mean;
          cst[3 * l + 2] = next;
        }
      if (mask)
        for (int j = 0; j <= MASK_IN_CHANS; j++)
          cst[3 * L + j] *= p;
      self->f_p0[r] = p;
    }
}

LodeSam2Decoder *
lode_sam2_decoder_new (const LodeSam2Config *config,
                       LodeSam2TensorSource  source,
                       gpointer              user_data,
                       GError              **error)
{
  LodeSam2Decoder *self;
  Loader loader = { 0 };
  gsize hw, c, inner, ls;

  g_return_val_if_fail (config != NULL && source != NULL, NULL);

  if (!lode_sam2_decoder_check_config (config, error))
    return NULL;

  self = g_new0 (LodeSam2Decoder, 1);
  self->config = *config;
  self->c = config->decoder_dim;
  self->e = config->image_size / 16;
  self->hw = self->e * self->e;
  self->low_res = 4 * self->e;
  self->heads = config->decoder_heads;
  self->depth = config->decoder_depth;
  self->tensors = g_ptr_array_new_with_free_func ((GDestroyNotify) lode_tensor_free);

  loader.self = self;
  loader.source = source;
  loader.data = user_data;
  loader.error = error;
  load_weights (&loader);
  if (loader.failed)
    {
      lode_sam2_decoder_free (self);
      return NULL;
    }

  hw = (gsize) self->hw;
  c = (gsize) self->c;
  inner = c;   /* the self attention is the widest: internal = c */
  ls = (gsize) self->low_res * self->low_res;
  self->dense_pe = g_new (float, hw * c);
  compute_dense_pe (self);

  self->tok_pe = g_new (float, MAX_TOKENS * c);
  self->queries = g_new (float, MAX_TOKENS * c);
  self->qtmp = g_new (float, MAX_TOKENS * c);
  self->tbuf = g_new (float, MAX_TOKENS * c);
  self->tbuf2 = g_new (float, MAX (MAX_TOKENS * (gsize) config->decoder_mlp,
                                   (N_MASK_TOKENS + 2) * 2 * (gsize) MAX (c, IOU_HIDDEN)));
  self->tq = g_new (float, MAX_TOKENS * inner);
  self->tk = g_new (float, MAX_TOKENS * inner);
  self->tv = g_new (float, MAX_TOKENS * inner);
  self->thq = g_new (float, MAX_TOKENS * inner);
  self->thk = g_new (float, MAX_TOKENS * inner);
  self->thv = g_new (float, MAX_TOKENS * inner);
  self->tho = g_new (float, MAX_TOKENS * inner);
  self->keys = g_new (float, hw * c);
  self->kpe = g_new (float, hw * c);
  self->ktmp = g_new (float, hw * c);
  self->pk = g_new (float, hw * c);
  self->pv = g_new (float, hw * c);
  self->pq = g_new (float, hw * c);
  self->hk = g_new (float, hw * c);
  self->hv = g_new (float, hw * c);
  self->hq = g_new (float, hw * c);
  self->ho = g_new (float, hw * c);
  self->up2 = g_new (float, (gsize) N_MASK_TOKENS * 16 * band_rows (self) * self->e);
  self->up_h1 = g_new (float, hw * c);
  self->up_h0 = g_new (float, hw * c * 2);
  self->masks = g_new (float, N_MASK_TOKENS * ls);
  self->mask_scratch = g_new (float, ls * MASK_IN_CHANS);
  self->up_cols = g_new (float, hw * c * 4);
  self->r = g_new (float, (gsize) self->heads * MAX_TOKENS * c);
  self->z = g_new (float, (gsize) self->heads * MAX_TOKENS * c);
  self->sc = g_new (float, (gsize) self->heads * MAX_TOKENS * hw);
  self->fold_bias = g_new (float, c);
  self->c_keys = g_new (float, hw * c);
  self->c_kpe = g_new (float, hw * c);
  self->c_hk = g_new (float, hw * c);
  self->c_hq = g_new (float, hw * c);
  self->c_hv = g_new (float, hw * c);
  fold_mask_input (self);
  factor_init (self);
  expand_init (self);
  /* out_proj^T per head of the image-to-token attentions: [h][d, c] */
  for (int l = 0; l < self->depth; l++)
    {
      const Attn *a = &self->layers[l].i2t;
      int d = a->internal / self->heads;

      self->wout_t[l] = g_new (float, (gsize) a->internal * c);
      for (int h = 0; h < self->heads; h++)
        for (int j = 0; j < d; j++)
          for (int k = 0; k < (int) c; k++)
            self->wout_t[l][((gsize) h * d + j) * c + k] = a->ow->data[(gsize) k * a->internal + h * d + j];
    }
  return self;
}

LodeTensor *
lode_sam2_checkpoint_source (const char   *name,
                   int           ndim,
                   const gint64 *shape,
                   gpointer      user_data,
                   GError      **error)
{
  LodeCheckpoint *ckpt = user_data;
  LodeTensor *t;
  gboolean same;

  if (!lode_checkpoint_has (ckpt, name))
    {
      g_set_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_WEIGHTS,
                   _("The checkpoint has no tensor “%s”; it is not a SAM2.1 checkpoint"), name);
      return NULL;
    }
  t = lode_checkpoint_load (ckpt, name, error);
  if (t == NULL)
    return NULL;
  same = t->ndim == ndim;
  for (int i = 0; same && i < ndim; i++)
    same = t->shape[i] == shape[i];
  if (!same)
    {
      g_autoptr(GString) want = g_string_new (NULL);
      g_autoptr(GString) got = g_string_new (NULL);

      for (int i = 0; i < ndim; i++)
        g_string_append_printf (want, "%s%" G_GINT64_FORMAT, i ? ", " : "", shape[i]);
      for (int i = 0; i < t->ndim; i++)
        g_string_append_printf (got, "%s%" G_GINT64_FORMAT, i ? ", " : "", t->shape[i]);
      g_set_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_WEIGHTS,
                   _("Tensor “%s” of the checkpoint has shape [%s], expected [%s]"),
                   name, got->str, want->str);
      lode_tensor_free (t);
      return NULL;
    }
  return t;
}

LodeSam2Decoder *
lode_sam2_decoder_new_from_checkpoint (LodeCheckpoint       *checkpoint,
                                       const LodeSam2Config *config,
                                       GError              **error)
{
  g_return_val_if_fail (checkpoint != NULL, NULL);
  return lode_sam2_decoder_new (config, lode_sam2_checkpoint_source, checkpoint, error);
}

typedef struct {
  LodeSam2TensorVisit visit;
  gpointer data;
} Lister;

static LodeTensor *
listing_source (const char   *name,
                int           ndim,
                const gint64 *shape,
                gpointer      user_data,
                GError      **error)
{
  Lister *l = user_data;
  gint64 one = 1;

  (void) error;
  l->visit (name, ndim, shape, l->data);
  return lode_tensor_new (1, &one);
}

void
lode_sam2_decoder_list_tensors (const LodeSam2Config *config,
                                LodeSam2TensorVisit   visit,
                                gpointer              user_data)
{
  LodeSam2Decoder self = { 0 };
  Lister lister = { visit, user_data };
  Loader loader = { 0 };

  g_return_if_fail (config != NULL && visit != NULL);

  self.config = *config;
  self.c = config->decoder_dim;
  self.depth = CLAMP (config->decoder_depth, 0, 8);
  self.tensors = g_ptr_array_new_with_free_func ((GDestroyNotify) lode_tensor_free);
  loader.self = &self;
  loader.source = listing_source;
  loader.data = &lister;
  load_weights (&loader);
  g_ptr_array_unref (self.tensors);
}

void
lode_sam2_decoder_free (LodeSam2Decoder *self)
{
  if (self == NULL)
    return;
  g_ptr_array_unref (self->tensors);
  g_free (self->dense_pe);
  g_free (self->tok_pe);
  g_free (self->queries);
  g_free (self->qtmp);
  g_free (self->tbuf);
  g_free (self->tbuf2);
  g_free (self->tq);
  g_free (self->tk);
  g_free (self->tv);
  g_free (self->thq);
  g_free (self->thk);
  g_free (self->thv);
  g_free (self->tho);
  g_free (self->keys);
  g_free (self->kpe);
  g_free (self->ktmp);
  g_free (self->pk);
  g_free (self->pv);
  g_free (self->pq);
  g_free (self->hk);
  g_free (self->hv);
  g_free (self->hq);
  g_free (self->ho);
  g_free (self->up2);
  g_free (self->up_h1);
  g_free (self->up_h0);
  g_free (self->masks);
  g_free (self->mask_scratch);
  g_free (self->up_cols);
  g_free (self->r);
  g_free (self->z);
  g_free (self->sc);
  g_free (self->fold_bias);
  g_free (self->c_keys);
  g_free (self->c_kpe);
  g_free (self->c_hk);
  g_free (self->c_hq);
  g_free (self->mask_qw);
  for (int l = 0; l < 8; l++)
    g_free (self->fm[l]);
  g_free (self->f_rows);
  g_free (self->c_y0);
  g_free (self->f_left);
  g_free (self->f_right);
  g_free (self->f_stats);
  g_free (self->f_p0);
  g_free (self->fuse_buf);
  g_free (self->x_w);
  g_free (self->x_c);
  g_free (self->x_p);
  g_free (self->x_cv);
  g_free (self->x_zg);
  g_free (self->x_m);
  g_free (self->x_u);
  g_free (self->x_ad);
  g_free (self->x_sl);
  g_free (self->x_beta);
  g_free (self->x_sum);
  g_free (self->mask_rows);
  g_free (self->c_hv);
  g_free (self->mask_kw);
  g_free (self->mask_vw);
  g_free (self->mask_shift);
  for (int l = 0; l < 9; l++)
    g_free (self->wout_t[l]);
  g_free (self);
}

const LodeSam2Config *
lode_sam2_decoder_get_config (LodeSam2Decoder *self)
{
  return &self->config;
}

int
lode_sam2_decoder_low_res_size (LodeSam2Decoder *self)
{
  return self->low_res;
}

void
lode_sam2_decoder_output_clear (LodeSam2DecoderOutput *out)
{
  if (out == NULL)
    return;
  g_clear_pointer (&out->low_res_masks, g_free);
  memset (out, 0, sizeof *out);
}

/* ---- building blocks ---------------------------------------------------- */

static void
linear (float *out, const float *x, const LodeTensor *w, const LodeTensor *b, int rows)
{
  lode_ops_linear (out, x, w->data, b->data, rows, (int) w->shape[1], (int) w->shape[0]);
}

/* x [rows, in] -> out [rows, out] through the MLP, ReLU between layers. */
static void
mlp_run (const Mlp *m, const float *x, int rows, float *out, float *tmp_a, float *tmp_b)
{
  const float *in = x;

  for (int i = 0; i < m->n; i++)
    {
      float *dst = i == m->n - 1 ? out : (i % 2 == 0 ? tmp_a : tmp_b);
      int fo = (int) m->w[i]->shape[0];

      linear (dst, in, m->w[i], m->b[i], rows);
      if (i < m->n - 1)
        lode_ops_relu (dst, dst, (gsize) rows * fo);
      in = dst;
    }
}

/* The core of the Attention module on projected q [lq, internal], k and v
 * [lk, internal]: heads, scaled dot product, heads merged, out_proj into
 * out [lq, c]. The head layouts go to hq, hk, hv, ho; pq is overwritten. */
typedef struct {
  float *hq, *hk, *hv, *ho;
} Heads;

static void
attn_core (const LodeSam2Decoder *self, const Attn *a, float *pq, const float *pk,
           const float *pv, const Heads *hs, int lq, int lk, float *out)
{
  int h = self->heads, d = a->internal / self->heads;

  lode_ops_split_heads (hs->hq, pq, lq, h, d);
  lode_ops_split_heads (hs->hk, pk, lk, h, d);
  lode_ops_split_heads (hs->hv, pv, lk, h, d);
  lode_ops_attention (hs->ho, hs->hq, hs->hk, hs->hv, 1, h, lq, lk, d);
  lode_ops_merge_heads (pq, hs->ho, lq, h, d);
  linear (out, pq, a->ow, a->ob, lq);
}

static void
layer_norm (float *x, const LodeTensor *w, const LodeTensor *b, int rows, int c)
{
  lode_ops_layer_norm (x, x, w->data, b->data, rows, c, LN_EPS);
}

/* ---- prompt encoder ----------------------------------------------------- */

int
lode_sam2_prompt_rows (const LodeSam2Prompt *p, float *rows, GError **error)
{
  int n = 0;

  if (p->n_points < 0 || p->n_points > LODE_SAM2_MAX_POINTS ||
      (p->n_points > 0 && (p->points == NULL || p->labels == NULL)))
    {
      g_set_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_PROMPT,
                   _("A SAM2 prompt has between 0 and %d points"), LODE_SAM2_MAX_POINTS);
      return -1;
    }
  if (p->has_box)
    {
      float corners[6] = { p->box[0], p->box[1], LODE_SAM2_LABEL_BOX_TOP_LEFT,
                           p->box[2], p->box[3], LODE_SAM2_LABEL_BOX_BOTTOM_RIGHT };

      memcpy (rows, corners, sizeof corners);
      n = 2;
    }
  for (int i = 0; i < p->n_points; i++, n++)
    {
      if (p->labels[i] < -1 || p->labels[i] > 3 ||
          !isfinite (p->points[2 * i]) || !isfinite (p->points[2 * i + 1]))
        {
          g_set_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_PROMPT,
                       _("Point %d of a SAM2 prompt has label %d or a coordinate that is not a number"),
                       i + 1, p->labels[i]);
          return -1;
        }
      rows[3 * n] = p->points[2 * i];
      rows[3 * n + 1] = p->points[2 * i + 1];
      rows[3 * n + 2] = (float) p->labels[i];
    }
  /* The image predictor always passes boxes=None to the prompt encoder,
   * which then appends one padding point. */
  rows[3 * n] = 0.0f;
  rows[3 * n + 1] = 0.0f;
  rows[3 * n + 2] = (float) LODE_SAM2_LABEL_PAD;
  return n + 1;
}

static gboolean
embed_prompts (LodeSam2Decoder *self, const LodeSam2Prompt *p, int *n_sparse, GError **error)
{
  int c = self->c;
  float size = (float) self->config.image_size;
  float *out = self->tok_pe;   /* sparse embeddings go after the output tokens */
  int first = (self->config.pred_obj_scores ? 1 : 0) + 1 + N_MASK_TOKENS;
  float rows[LODE_SAM2_PROMPT_ROWS * 3];
  int n = lode_sam2_prompt_rows (p, rows, error);

  if (n < 0)
    return FALSE;
  for (int i = 0; i < n; i++)
    {
      float *row = out + (gsize) (first + i) * c;
      int label = (int) rows[3 * i + 2];

      if (label == LODE_SAM2_LABEL_PAD)
        {
          memcpy (row, self->not_a_point->data, sizeof (float) * c);
          continue;
        }
      pe_encode (self, (rows[3 * i] + 0.5f) / size, (rows[3 * i + 1] + 0.5f) / size, row);
      lode_ops_add (row, row, self->point_embed[label]->data, c);
    }
  *n_sparse = n;
  return TRUE;
}

/* The mask downscaling path up to its last convolution: the previous
 * low-resolution logits -> G [MASK_IN_CHANS, hw], in self->ktmp. */
static float *
mask_features (LodeSam2Decoder *self, const float *mask)
{
  int e = self->e, ls = self->low_res;
  LodeConvShape s;
  float *a = self->mask_scratch;
  float *b = self->ktmp;

  /* conv 2x2 s2 (1 -> 4), LayerNorm2d, GELU */
  lode_conv_shape_init (&s, 1, 1, ls, ls, MASK_IN_CHANS / 4, 2, 2, 0);
  lode_ops_conv2d (a, mask, self->md_w[0]->data, self->md_b[0]->data, &s);
  lode_ops_layer_norm2d (a, a, self->md_ln_w[0]->data, self->md_ln_b[0]->data,
                         1, MASK_IN_CHANS / 4, (ls / 2) * (ls / 2), LN2D_EPS);
  lode_ops_gelu (a, a, (gsize) (MASK_IN_CHANS / 4) * (ls / 2) * (ls / 2));
  /* conv 2x2 s2 (4 -> 16), LayerNorm2d, GELU */
  lode_conv_shape_init (&s, 1, MASK_IN_CHANS / 4, ls / 2, ls / 2, MASK_IN_CHANS, 2, 2, 0);
  lode_ops_conv2d (b, a, self->md_w[1]->data, self->md_b[1]->data, &s);
  lode_ops_layer_norm2d (b, b, self->md_ln_w[1]->data, self->md_ln_b[1]->data,
                         1, MASK_IN_CHANS, e * e, LN2D_EPS);
  lode_ops_gelu (b, b, (gsize) MASK_IN_CHANS * e * e);
  return b;
}

/* ---- two-way transformer ------------------------------------------------ */

/* One head's scores p [t, hw] = scale q [t, d] kT [d, hw] (the image's
 * projection in transposed layout), lanes along the image; p's rows are
 * p_stride apart. add: added to p. */
VECTOR_CLONES static void
head_scores (float *p, gsize p_stride, const float *q, const float *kt, int t, int d, int hw,
             float scale, gboolean add)
{
  for (int i = 0; i < t; i++)
    {
      float *pi = p + (gsize) i * p_stride;

      if (!add)
        {
          SIMD_FOR
          for (int r = 0; r < hw; r++)
            pi[r] = 0.0f;
        }
      for (int j = 0; j < d; j++)
        {
          const float *kj = kt + (gsize) j * hw;
          float qj = q[i * d + j] * scale;

          SIMD_FOR
          for (int r = 0; r < hw; r++)
            pi[r] += qj * kj[r];
        }
    }
}

/* Pixels per step of head_scores_expanded: the rows of C and P over
 * them stay in the first level of cache while the tokens pass. */
#define EXPAND_LANES 256

/* Sixteen floats anywhere in memory, for the kernels that keep sums in
 * vector registers across an inner loop (the vectoriser keeps them in
 * memory there). GCC lets a vector alias its elements. */
typedef float V16 __attribute__ ((vector_size (64), aligned (4)));

/* A head's rows [d, hw] of a cached projection in the order of
 * head_scores_expanded: in chunks of EXPAND_LANES pixels (the last may be
 * shorter), each chunk's d rows after each other, so that the kernel
 * reads one run per chunk instead of d short ones far apart. In place;
 * tmp: d hw floats. */
static void
block_head_rows (float *rows, float *tmp, int d, int hw)
{
  memcpy (tmp, rows, sizeof (float) * d * hw);
  for (int r0 = 0; r0 < hw; r0 += EXPAND_LANES)
    {
      int n = MIN (EXPAND_LANES, hw - r0);

      for (int j = 0; j < d; j++)
        memcpy (rows + (gsize) r0 * d + (gsize) j * n, tmp + (gsize) j * hw + r0, sizeof (float) * n);
    }
}

/* The scores of one head's tokens against a cached projection C^T
 * [d, hw] in block_head_rows' order: p [t, hw] (rows p_stride apart)
 * receives q C^T, plus p on entry when add. Expanded, the image rows are
 * projected as s (C + L) + P (P^T likewise, s [hw]): p holds the scores
 * against L on entry (A0 U^T) and leaves with
 *   s[r] (q_i . C[r] + p[i, r] + beta[i]) + q_i . P[r].
 * q [t, d] has the softmax's scale in it; m [t] receives each row's
 * maximum. Sixty-four pixels at a time, their sums over the d dimensions
 * in named vector registers (an array of them would live in memory).
 * Inlined into the two kernels below, where expanded is a constant. */
static inline __attribute__ ((always_inline)) void
head_scores_body (float *p, gsize p_stride, const float *q, const float *ct, const float *pt,
                  const float *s, const float *beta, gboolean add, gboolean expanded, float *m,
                  int t, int d, int hw)
{
  for (int i = 0; i < t; i++)
    m[i] = -INFINITY;
  for (int r0 = 0; r0 < hw; r0 += EXPAND_LANES)
    {
      int n = MIN (EXPAND_LANES, hw - r0), r;
      const float *c0 = ct + (gsize) r0 * d;
      const float *p0 = expanded ? pt + (gsize) r0 * d : NULL, *sr = expanded ? s + r0 : NULL;

      for (int i = 0; i < t; i++)
        {
          float *pi = p + (gsize) i * p_stride + r0, mi = m[i], bi = expanded ? beta[i] : 0.0f;
          const float *qi = q + (gsize) i * d;

          for (r = 0; r + 64 <= n; r += 64)
            {
              V16 a0 = { 0.0f }, a1 = { 0.0f }, a2 = { 0.0f }, a3 = { 0.0f };
              V16 b0 = { 0.0f }, b1 = { 0.0f }, b2 = { 0.0f }, b3 = { 0.0f };

              if (add || expanded)
                {
                  a0 = *(const V16 *) (pi + r) + bi;
                  a1 = *(const V16 *) (pi + r + 16) + bi;
                  a2 = *(const V16 *) (pi + r + 32) + bi;
                  a3 = *(const V16 *) (pi + r + 48) + bi;
                }
              for (int j = 0; j < d; j++)
                {
                  const float *cj = c0 + (gsize) j * n + r;
                  float qj = qi[j];

                  a0 += qj * *(const V16 *) cj;
                  a1 += qj * *(const V16 *) (cj + 16);
                  a2 += qj * *(const V16 *) (cj + 32);
                  a3 += qj * *(const V16 *) (cj + 48);
                  if (expanded)
                    {
                      const float *pj = p0 + (gsize) j * n + r;

                      b0 += qj * *(const V16 *) pj;
                      b1 += qj * *(const V16 *) (pj + 16);
                      b2 += qj * *(const V16 *) (pj + 32);
                      b3 += qj * *(const V16 *) (pj + 48);
                    }
                }
              if (expanded)
                {
                  a0 = *(const V16 *) (sr + r) * a0 + b0;
                  a1 = *(const V16 *) (sr + r + 16) * a1 + b1;
                  a2 = *(const V16 *) (sr + r + 32) * a2 + b2;
                  a3 = *(const V16 *) (sr + r + 48) * a3 + b3;
                }
              *(V16 *) (pi + r) = a0;
              *(V16 *) (pi + r + 16) = a1;
              *(V16 *) (pi + r + 32) = a2;
              *(V16 *) (pi + r + 48) = a3;
            }
          for (; r < n; r++)
            {
              float a = add || expanded ? pi[r] + bi : 0.0f, b = 0.0f;

              for (int j = 0; j < d; j++)
                {
                  a += qi[j] * c0[(gsize) j * n + r];
                  if (expanded)
                    b += qi[j] * p0[(gsize) j * n + r];
                }
              pi[r] = expanded ? sr[r] * a + b : a;
            }
          SIMD_MAX (mi)
          for (r = 0; r < n; r++)
            mi = MAX (mi, pi[r]);
          m[i] = mi;
        }
    }
}

/* head_scores_body against a plain cached projection. */
VECTOR_CLONES_FMA static void
head_scores_cached (float *p, gsize p_stride, const float *q, const float *ct, gboolean add,
                    float *m, int t, int d, int hw)
{
  head_scores_body (p, p_stride, q, ct, NULL, NULL, NULL, add, FALSE, m, t, d, hw);
}

/* head_scores_body against a projection through layer 0's cache. */
VECTOR_CLONES_FMA static void
head_scores_expanded (float *p, gsize p_stride, const float *q, const float *ct, const float *pt,
                      const float *s, const float *beta, float *m, int t, int d, int hw)
{
  head_scores_body (p, p_stride, q, ct, pt, s, beta, FALSE, TRUE, m, t, d, hw);
}

/* A mask input moves one head's cached projection kT [d, hw] (in
 * block_head_rows' order) by w [d, MASK_IN_CHANS + 1] (that head's rows of
 * [W Wd | W shift]) times G1 = [G; 1] [MASK_IN_CHANS + 1, hw]: the scores
 * of q [t, d] (scaled already) against it are those of q w against G1
 * plus those against kT; m [t]: their rows' maxima. */
#define MOVE_K (MASK_IN_CHANS + 1)

static void
scores_moved (float *p, gsize p_stride, const float *q, const float *kt, const float *g,
              const float *w, float *m, int t, int d, int hw)
{
  float qw[MAX_TOKENS * MOVE_K];

  if (g != NULL)
    {
      for (int i = 0; i < t; i++)
        for (int x = 0; x < MOVE_K; x++)
          {
            float acc = 0.0f;

            for (int j = 0; j < d; j++)
              acc += q[i * d + j] * w[j * MOVE_K + x];
            qw[i * MOVE_K + x] = acc;
          }
      head_scores (p, p_stride, qw, g, t, MOVE_K, hw, 1.0f, FALSE);
    }
  head_scores_cached (p, p_stride, q, kt, g != NULL, m, t, d, hw);
}

/* Softmax along the rows of p [t, hw] whose maxima are m, each row then
 * times s [hw] (when not NULL), with the rows' sums into sums (when not
 * NULL). */
VECTOR_CLONES static void
softmax_scaled_rows (float *p, const float *m, const float *s, float *sums, int t, int hw)
{
  for (int i = 0; i < t; i++)
    {
      float *pi = p + (gsize) i * hw;
      float sum = 0.0f, inv, ws = 0.0f;

      SIMD_REDUCE (sum)
      for (int r = 0; r < hw; r++)
        {
          pi[r] = lode_exp_nonpositive (pi[r] - m[i]);
          sum += pi[r];
        }
      inv = 1.0f / sum;
      if (s == NULL)
        {
          SIMD_FOR
          for (int r = 0; r < hw; r++)
            pi[r] *= inv;
          continue;
        }
      SIMD_REDUCE (ws)
      for (int r = 0; r < hw; r++)
        {
          pi[r] *= inv * s[r];
          ws += pi[r];
        }
      if (sums != NULL)
        sums[i] = ws;
    }
}

/* One head of the tokens' attention to the image through its projected
 * keys and values kT (block_head_rows' order), vT [d, hw]: o [t, d]; p
 * [t, hw] is scratch; q [t, d] scaled already. With g (not NULL), both are
 * moved by a mask input (scores_moved): wk, wv. */
static void
head_attend (float *o, float *p, const float *q, const float *kt, const float *vt, const float *g,
             const float *wk, const float *wv, int t, int d, int hw)
{
  float mx[MAX_TOKENS], pg[MAX_TOKENS * MOVE_K];

  scores_moved (p, hw, q, kt, g, wk, mx, t, d, hw);
  softmax_scaled_rows (p, mx, NULL, NULL, t, hw);
  /* o = p vT^T, and with g, + (p G1^T) wv^T */
  lode_ops_gemm (FALSE, TRUE, t, d, hw, 1.0f, p, vt, 0.0f, o);
  if (g == NULL)
    return;
  lode_ops_gemm (FALSE, TRUE, t, MOVE_K, hw, 1.0f, p, g, 0.0f, pg);
  lode_ops_gemm (FALSE, TRUE, t, d, MOVE_K, 1.0f, pg, wv, 1.0f, o);
}

/* Scores of heads sh [h, t, rows] plus bias [h * t] (or NULL) to softmax
 * rows sc [rows, h * t], rows w apart (each head's t scores normalised
 * apart), for rows r0 .. r1 (at most NORM_BLOCK), in lanes along the rows. */
VECTOR_CLONES static void
heads_softmax_rows (float *sc, int w, const float *sh, const float *bias, int r0, int r1, int rows,
                    int h, int t)
{
  float m[NORM_BLOCK], sum[NORM_BLOCK], e[NORM_BLOCK];
  int n = r1 - r0;

  for (int k = 0; k < h; k++)
    {
      const float *in = sh + (gsize) k * t * rows + r0;
      const float *b = bias != NULL ? bias + k * t : NULL;

      for (int r = 0; r < n; r++)
        {
          m[r] = in[r] + (b != NULL ? b[0] : 0.0f);
          sum[r] = 0.0f;
        }
      for (int i = 1; i < t; i++)
        {
          const float *x = in + (gsize) i * rows;
          float bi = b != NULL ? b[i] : 0.0f;

          SIMD_FOR
          for (int r = 0; r < n; r++)
            m[r] = x[r] + bi > m[r] ? x[r] + bi : m[r];
        }
      for (int i = 0; i < t; i++)
        {
          const float *x = in + (gsize) i * rows;
          float bi = b != NULL ? b[i] : 0.0f;

          SIMD_FOR
          for (int r = 0; r < n; r++)
            sum[r] += lode_exp_nonpositive (x[r] + bi - m[r]);
        }
      SIMD_FOR
      for (int r = 0; r < n; r++)
        sum[r] = 1.0f / sum[r];
      for (int i = 0; i < t; i++)
        {
          const float *x = in + (gsize) i * rows;
          float *o = sc + (gsize) r0 * w + (gsize) k * t + i;
          float bi = b != NULL ? b[i] : 0.0f;

          SIMD_FOR
          for (int r = 0; r < n; r++)
            e[r] = lode_exp_nonpositive (x[r] + bi - m[r]) * sum[r];
          for (int r = 0; r < n; r++)
            o[(gsize) r * w] = e[r];
        }
    }
}

/* Attention between t tokens and the hw image positions costs 2 hw c
 * internal multiply-adds through the projections, and 2 hw c (heads * t)
 * when the projections are folded into the few token rows instead: the
 * score q . (Wk x + bk) is x . (Wk^T q) plus a term constant along the
 * softmax, and the softmax-weighted sum of Wv x + bv is Wv (sum a x) + bv.
 * The folded form is used when heads * t < internal. */
static gboolean
use_folded (const LodeSam2Decoder *self, const Attn *a, int t)
{
  return self->heads * t < a->internal;
}

/* The tokens' side of a folded token-to-image attention:
 * self->r [heads * t, c], r[h*t + i] = Wk_h^T q_h[i] / sqrt d, whose scores
 * against the image rows x (keys + PE) are r . x (the key bias adds a
 * constant along the softmax). */
static void
token_to_image_queries (LodeSam2Decoder *self, const Attn *a, const float *q, int t)
{
  int h = self->heads, d = a->internal / h, c = self->c;
  float scale = 1.0f / sqrtf ((float) d);

  linear (self->tq, q, a->qw, a->qb, t);                   /* [t, internal] */
  lode_ops_split_heads (self->thq, self->tq, t, h, d);
  for (int k = 0; k < h; k++)
    {
      lode_ops_gemm (FALSE, FALSE, t, c, d, scale, self->thq + (gsize) k * t * d,
                     a->kw->data + (gsize) k * d * c, 0.0f, self->r + (gsize) k * t * c);
    }
}

/* Its end: out [t, c] from self->z [heads * t, c], the softmax-weighted
 * sums of the image rows (keys) per head and token. */
static void
token_to_image_output (LodeSam2Decoder *self, const Attn *a, int t, float *out)
{
  int h = self->heads, d = a->internal / h, c = self->c;

  /* o_h[i] = Wv_h z[h*t + i] + bv_h, written as [t, heads, d] */
  for (int k = 0; k < h; k++)
    {
      lode_ops_gemm (FALSE, TRUE, t, d, c, 1.0f, self->z + (gsize) k * t * c,
                     a->vw->data + (gsize) k * d * c, 0.0f, self->tho + (gsize) k * t * d);
      for (int i = 0; i < t; i++)
        lode_ops_add (self->tho + ((gsize) k * t + i) * d, self->tho + ((gsize) k * t + i) * d,
                      a->vb->data + (gsize) k * d, d);
    }
  lode_ops_merge_heads (self->tk, self->tho, t, h, d);
  linear (out, self->tk, a->ow, a->ob, t);
}

/* Tokens attend to the image, folded: q [t, c] (tokens + PE), x = kpe,
 * v from keys; out [t, c]. */
static void
token_to_image_folded (LodeSam2Decoder *self, const Attn *a, const float *q, int t, float *out)
{
  int ht = self->heads * t, c = self->c, hw = self->hw;

  token_to_image_queries (self, a, q, t);
  lode_ops_gemm (FALSE, TRUE, ht, hw, c, 1.0f, self->r, self->kpe, 0.0f, self->sc);
  lode_ops_softmax (self->sc, self->sc, ht, hw);
  lode_ops_gemm (FALSE, FALSE, ht, c, hw, 1.0f, self->sc, self->keys, 0.0f, self->z);
  token_to_image_output (self, a, t, out);
}

/* Tokens attend to the image: q from the tokens (plus their PE), k from
 * keys + PE (kpe), v from keys. With hk and hv (not NULL), K and V are
 * already projected, in transposed head layout [h, d, hw]. */
static void
token_to_image (LodeSam2Decoder *self, const Attn *a, const float *q, int t,
                const float *hk, const float *hv, float *out)
{
  Heads tok_img = { self->thq, self->hk, self->hv, self->tho };
  int h = self->heads, d = a->internal / h;

  if (hk != NULL)
    {
      float scale = 1.0f / sqrtf ((float) d);
      int hw = self->hw;

      linear (self->tq, q, a->qw, a->qb, t);
      lode_ops_split_heads (self->thq, self->tq, t, h, d);
      lode_ops_scale (self->thq, self->thq, scale, (gsize) h * t * d);
      PARALLEL_FOR ((gint64) h * t * hw * d)
      for (int k = 0; k < h; k++)
        head_attend (self->tho + (gsize) k * t * d, self->sc + (gsize) k * t * hw,
                     self->thq + (gsize) k * t * d, hk + (gsize) k * d * hw, hv + (gsize) k * d * hw,
                     self->mask_g, self->mask_kw + (gsize) k * d * MOVE_K,
                     self->mask_vw + (gsize) k * d * MOVE_K, t, d, hw);
      lode_ops_merge_heads (self->tq, self->tho, t, h, d);
      linear (out, self->tq, a->ow, a->ob, t);
      return;
    }
  if (use_folded (self, a, t))
    {
      token_to_image_folded (self, a, q, t, out);
      return;
    }
  linear (self->tq, q, a->qw, a->qb, t);
  linear (self->pk, self->kpe, a->kw, a->kb, self->hw);
  linear (self->pv, self->keys, a->vw, a->vb, self->hw);
  attn_core (self, a, self->tq, self->pk, self->pv, &tok_img, t, self->hw, out);
}

/* The tokens' side of a folded image-to-token attention: keys and
 * values in head layout (thk, thv) and z[h*t + i] = Wo_h v_h[i] [c]. */
static void
image_to_token_values (LodeSam2Decoder *self, int layer, const float *ktok, const float *vtok, int t)
{
  const Attn *a = &self->layers[layer].i2t;
  int h = self->heads, d = a->internal / h, c = self->c;

  linear (self->tk, ktok, a->kw, a->kb, t);
  linear (self->tv, vtok, a->vw, a->vb, t);
  lode_ops_split_heads (self->thk, self->tk, t, h, d);
  lode_ops_split_heads (self->thv, self->tv, t, h, d);
  for (int k = 0; k < h; k++)
    lode_ops_gemm (FALSE, FALSE, t, c, d, 1.0f, self->thv + (gsize) k * t * d,
                   self->wout_t[layer] + (gsize) k * d * c, 0.0f, self->z + (gsize) k * t * c);
}

/* The image attends to the tokens, folded: the queries Wq x + bq meet the
 * keys k_h[i] as x . (Wq_h^T k_h[i]) + bq_h . k_h[i] (a term that differs
 * from key to key, so it is kept: the softmax runs over the keys); the
 * output Wo (sum_i a v_h[i]) + bo is sum a (Wo_h v_h[i]) + bo. x = kpe.
 * Leaves the softmax A in self->sc [hw, heads * t] and the Wo_h v_h[i] in
 * self->z: the output without bo is A z (add_product_norm_pe). */
static void
image_to_token_folded (LodeSam2Decoder *self, int layer, const float *kpe, const float *ktok,
                       const float *vtok, int t)
{
  const Attn *a = &self->layers[layer].i2t;
  int h = self->heads, d = a->internal / h, c = self->c, hw = self->hw;
  float scale = 1.0f / sqrtf ((float) d);
  float *bias = self->fold_bias;

  image_to_token_values (self, layer, ktok, vtok, t);
  for (int k = 0; k < h; k++)
    {
      /* m[h*t + i] = Wq_h^T k_h[i] / sqrt d, bias = bq_h . k_h[i] / sqrt d */
      lode_ops_gemm (FALSE, FALSE, t, c, d, scale, self->thk + (gsize) k * t * d,
                     a->qw->data + (gsize) k * d * c, 0.0f, self->r + (gsize) k * t * c);
      for (int i = 0; i < t; i++)
        {
          float acc = 0.0f;

          for (int j = 0; j < d; j++)
            acc += a->qb->data[k * d + j] * self->thk[((gsize) k * t + i) * d + j];
          bias[k * t + i] = acc * scale;
        }
    }
  /* scores [heads * t, hw], softmax over each head's t tokens into
   * self->sc [hw, heads * t] */
  lode_ops_gemm (FALSE, TRUE, h * t, hw, c, 1.0f, self->r, kpe, 0.0f, self->ho);
  PARALLEL_FOR ((gint64) hw * h * t * 8)
  for (int r = 0; r < hw; r += NORM_BLOCK)
    heads_softmax_rows (self->sc, h * t, self->ho, bias, r, MIN (hw, r + NORM_BLOCK), hw, h, t);
}

/* Layer 0's image-to-token attention, the image's queries given in
 * transposed head layout (hq [h, d, hw]: cached, see prepare_first_layer): scores
 * q_h . k_h[i] / sqrt d are products of depth d, and the output as in
 * image_to_token_folded. With a mask input (self->mask_g) the keys' move
 * G^T Wd^T + shift comes with the product: [A | G^T | 1] [Z; Wd^T; shift]
 * (self->sc rows of layer0_score_width). */
static void
image_to_token_cached (LodeSam2Decoder *self, const float *hq, const float *ktok, const float *vtok,
                       int t)
{
  const Attn *a = &self->layers[0].i2t;
  int h = self->heads, d = a->internal / h, c = self->c, hw = self->hw;
  float scale = 1.0f / sqrtf ((float) d);
  float *sh = self->ho;

  const float *g = self->mask_g;
  int ht = h * t, w = layer0_score_width (self, t);

  image_to_token_values (self, 0, ktok, vtok, t);
  lode_ops_scale (self->tq, self->thk, scale, (gsize) ht * d);
  PARALLEL_FOR ((gint64) hw * h * t * d)
  for (int k = 0; k < h; k++)
    {
      float mx[MAX_TOKENS];

      scores_moved (sh + (gsize) k * t * hw, hw, self->tq + (gsize) k * t * d, hq + (gsize) k * d * hw,
                    g, self->mask_qw + (gsize) k * d * MOVE_K, mx, t, d, hw);
    }
  PARALLEL_FOR ((gint64) hw * w * 8)
  for (int r = 0; r < hw; r += NORM_BLOCK)
    {
      heads_softmax_rows (self->sc, w, sh, NULL, r, MIN (hw, r + NORM_BLOCK), hw, h, t);
      for (int i = r; g != NULL && i < MIN (hw, r + NORM_BLOCK); i++)
        for (int j = 0; j <= MASK_IN_CHANS; j++)
          self->sc[(gsize) i * w + ht + j] = g[(gsize) j * hw + i];
    }
  if (g != NULL)
    memcpy (self->z + (gsize) ht * c, self->mask_rows, sizeof (float) * (MASK_IN_CHANS + 1) * c);
}

/* ---- layer 1 through layer 0's cache (see expand_init) ----------------- */

/* dst [c] = src minus its mean (the parts of a norm's centred sum). */
static void
centre_row (float *dst, const float *src, int c)
{
  double sum = 0.0;
  float mean;

  for (int j = 0; j < c; j++)
    sum += src[j];
  mean = (float) (sum / c);
  for (int j = 0; j < c; j++)
    dst[j] = src[j] - mean;
}

/* Layer 0's image-to-token values z [w0, c] (after its product with the
 * softmax, which the rows of w0 in self->sc hold) and ob0, centred, times
 * G0 W1^T: self->x_m [w0 + 1, x_n]. */
static void
expand_click (LodeSam2Decoder *self, int w0)
{
  int c = self->c;
  const float *ob = self->layers[0].i2t.ob->data;

  for (int i = 0; i <= w0; i++)
    centre_row (self->x_zg + (gsize) i * c, i < w0 ? self->z + (gsize) i * c : ob, c);
  lode_ops_gemm (FALSE, TRUE, w0 + 1, self->x_n, c, 1.0f, self->x_zg, self->x_w, 0.0f, self->x_m);
}

/* One head of layer 1's token-to-image attention: scores as
 * head_scores_expanded (ck, pk: the head's cached rows), the softmax over
 * the pixels, and the cached part of the values (cv^T [d, hw], D0 C through
 * the head's Wv'): o [t, d]. p leaves with the softmax times s, and sums
 * [t] with its rows' sums (the weights of the rest of the values). */
static void
head_attend_expanded (float *o, float *p, const float *q, const float *ck, const float *pk,
                      const float *cv, const float *s, const float *beta, float *sums, int t, int d,
                      int hw)
{
  float mx[MAX_TOKENS];

  head_scores_expanded (p, hw, q, ck, pk, s, beta, mx, t, d, hw);
  softmax_scaled_rows (p, mx, s, sums, t, hw);
  /* o = p cv (a product of depth hw, on this thread) */
  lode_ops_gemm (FALSE, TRUE, t, d, hw, 1.0f, p, cv, 0.0f, o);
}

/* The tokens' vectors q [h, t, d] against the rows col .. col + h d of
 * self->x_m (zc, obc through G0 W^T): U [h t, w0] into self->x_u and
 * beta [h t] into self->x_beta; then the scores against A0's part,
 * A0 U^T, into p [h t, hw]. */
static void
expand_low_rank (LodeSam2Decoder *self, const float *q, int t, int d, int w0, int col, float *p)
{
  int h = self->heads, n = self->x_n;
  const float *m = self->x_m + col, *ob = self->x_m + (gsize) w0 * n + col;

  for (int k = 0; k < h; k++)
    {
      lode_ops_gemm_ld (FALSE, TRUE, t, w0, d, 1.0f, q + (gsize) k * t * d, d, m + (gsize) k * d, n,
                        0.0f, self->x_u + (gsize) k * t * w0, w0);
      for (int i = 0; i < t; i++)
        {
          float acc = 0.0f;

          for (int j = 0; j < d; j++)
            acc += q[((gsize) k * t + i) * d + j] * ob[k * d + j];
          self->x_beta[k * t + i] = acc;
        }
    }
  lode_ops_gemm_ld (FALSE, TRUE, h * t, self->hw, w0, 1.0f, self->x_u, w0, self->sc, w0, 0.0f, p,
                    self->hw);
}

/* Layer 1's token-to-image attention through layer 0's cache: q [t, c]
 * (the tokens + PE), out [t, c]. */
static void
token_to_image_expanded (LodeSam2Decoder *self, const float *q, int t, float *out)
{
  const Attn *a = &self->layers[1].t2i;
  int h = self->heads, in = a->internal, d = in / h, hw = self->hw, n = self->x_n, ht = h * t;
  int w0 = layer0_score_width (self, t);
  float scale = 1.0f / sqrtf ((float) d);
  const float *s = self->f_stats + hw;     /* layer 0's 1 / std */
  const float *okv = self->x_m + (gsize) w0 * n + in;

  linear (self->tq, q, a->qw, a->qb, t);
  lode_ops_split_heads (self->thq, self->tq, t, h, d);
  lode_ops_scale (self->thq, self->thq, scale, (gsize) ht * d);
  expand_low_rank (self, self->thq, t, d, w0, 0, self->x_sl);
  PARALLEL_FOR ((gint64) ht * hw * d)
  for (int k = 0; k < h; k++)
    head_attend_expanded (self->tho + (gsize) k * t * d, self->x_sl + (gsize) k * t * hw,
                          self->thq + (gsize) k * t * d, self->x_c + (gsize) k * d * hw,
                          self->x_p + (gsize) k * d * hw, self->x_c + (gsize) (in + k * d) * hw, s,
                          self->x_beta + k * t, self->x_sum + k * t, t, d, hw);
  /* A0's part of the values: (softmax D0) A0 [ht, w0] through zc Wv'^T,
   * obc's, and the constant b0 Wv^T + bv (the softmax sums to 1) */
  lode_ops_gemm_ld (FALSE, FALSE, ht, w0, hw, 1.0f, self->x_sl, hw, self->sc, w0, 0.0f, self->x_ad, w0);
  for (int k = 0; k < h; k++)
    {
      lode_ops_gemm_ld (FALSE, FALSE, t, d, w0, 1.0f, self->x_ad + (gsize) k * t * w0, w0,
                        self->x_m + in + k * d, n, 1.0f, self->tho + (gsize) k * t * d, d);
      for (int i = 0; i < t; i++)
        for (int j = 0; j < d; j++)
          self->tho[((gsize) k * t + i) * d + j] += self->x_sum[k * t + i] * okv[k * d + j]
                                                    + self->x_cv[k * d + j];
    }
  lode_ops_merge_heads (self->tq, self->tho, t, h, d);
  linear (out, self->tq, a->ow, a->ob, t);
}

/* Layer 1's image-to-token attention through layer 0's cache, as
 * image_to_token_folded leaves it (the softmax in self->sc [hw, heads * t],
 * z). self->sc holds layer 0's softmax A0 until the scores are formed. */
static int
image_to_token_expanded (LodeSam2Decoder *self, const float *ktok, const float *vtok, int t)
{
  const Attn *a = &self->layers[1].i2t;
  int h = self->heads, d = a->internal / h, hw = self->hw, ht = h * t;
  int w0 = layer0_score_width (self, t), col = 2 * self->layers[1].t2i.internal;
  float scale = 1.0f / sqrtf ((float) d);
  const float *s = self->f_stats + hw;
  float *kq = self->tq, *sh = self->ho;

  image_to_token_values (self, 1, ktok, vtok, t);
  lode_ops_scale (kq, self->thk, scale, (gsize) ht * d);
  expand_low_rank (self, kq, t, d, w0, col, sh);
  PARALLEL_FOR ((gint64) ht * hw * d)
  for (int k = 0; k < h; k++)
    {
      float mx[MAX_TOKENS];

      head_scores_expanded (sh + (gsize) k * t * hw, hw, kq + (gsize) k * t * d,
                            self->x_c + (gsize) (col + k * d) * hw,
                            self->x_p + (gsize) (self->layers[1].t2i.internal + k * d) * hw, s,
                            self->x_beta + k * t, mx, t, d, hw);
    }
  PARALLEL_FOR ((gint64) hw * ht * 8)
  for (int r = 0; r < hw; r += NORM_BLOCK)
    heads_softmax_rows (self->sc, ht, sh, NULL, r, MIN (hw, r + NORM_BLOCK), hw, h, t);
  return ht;
}

/* The image's attention to the tokens, queries from kpe (keys + PE).
 * Folded, it returns the width w of the softmax rows in self->sc, whose
 * product with self->z is the output without out_proj's bias
 * (add_product_norm_pe forms it); else 0, the output being in self->ktmp
 * [hw, c]. */
static int
image_to_token (LodeSam2Decoder *self, int layer, const float *kpe, const float *hq0,
                const float *ktok, const float *vtok, int t)
{
  const Attn *a = &self->layers[layer].i2t;
  Heads img_tok = { self->hq, self->thk, self->thv, self->ho };

  if (layer == 1 && self->expanded)
    return image_to_token_expanded (self, ktok, vtok, t);
  if (layer == 0 && use_folded (self, a, t))
    {
      image_to_token_cached (self, hq0, ktok, vtok, t);
      return layer0_score_width (self, t);
    }
  if (use_folded (self, a, t))
    {
      image_to_token_folded (self, layer, kpe, ktok, vtok, t);
      return self->heads * t;
    }
  linear (self->pq, kpe, a->qw, a->qb, self->hw);
  linear (self->tk, ktok, a->kw, a->kb, t);
  linear (self->tv, vtok, a->vw, a->vb, t);
  attn_core (self, a, self->pq, self->tk, self->tv, &img_tok, self->hw, t, self->ktmp);
  return 0;
}

/* out = layer_norm (a + b + bias) over rows of c, out_pe = out + pe, in one
 * pass over each row while it is in the cache (lode_ops_add_layer_norm
 * makes three passes over the whole image). out may be a; b or bias may be
 * NULL, not both; out_pe may be NULL (then only out is written). */
VECTOR_CLONES static void
add_norm_pe_rows (float *out, float *out_pe, const float *a, const float *b, const float *bias,
                  const float *w, const float *wb, const float *pe, int rows, int c, float *stats,
                  gsize stats_stride)
{
  for (int r = 0; r < rows; r++)
    {
      const float *ar = a + (gsize) r * c, *br = b + (gsize) r * c, *pr = pe + (gsize) r * c;
      float *y = out + (gsize) r * c, *yp = out_pe != NULL ? out_pe + (gsize) r * c : NULL;
      float sum = 0.0f, sq = 0.0f, mean, rstd;

      if (b == NULL)
        {
          SIMD_FOR
          for (int j = 0; j < c; j++)
            y[j] = ar[j] + bias[j];
        }
      else if (bias != NULL)
        {
          SIMD_FOR
          for (int j = 0; j < c; j++)
            y[j] = ar[j] + br[j] + bias[j];
        }
      else
        {
          SIMD_FOR
          for (int j = 0; j < c; j++)
            y[j] = ar[j] + br[j];
        }
      SIMD_REDUCE (sum)
      for (int j = 0; j < c; j++)
        sum += y[j];
      mean = sum / (float) c;
      SIMD_REDUCE (sq)
      for (int j = 0; j < c; j++)
        sq += (y[j] - mean) * (y[j] - mean);
      rstd = 1.0f / sqrtf (sq / (float) c + LN_EPS);
      if (stats != NULL)
        {
          stats[r] = mean;
          stats[stats_stride + r] = rstd;
        }
      if (out_pe == NULL)
        {
          SIMD_FOR
          for (int j = 0; j < c; j++)
            y[j] = (y[j] - mean) * rstd * w[j] + wb[j];
          continue;
        }
      SIMD_FOR
      for (int j = 0; j < c; j++)
        {
          y[j] = (y[j] - mean) * rstd * w[j] + wb[j];
          yp[j] = y[j] + pr[j];
        }
    }
}


/* stats (or NULL): the rows' means, then (rows floats on) their 1 / std. */
static void
add_norm_pe (float *out, float *out_pe, const float *a, const float *b, const float *bias,
             const LodeTensor *w, const LodeTensor *wb, const float *pe, int rows, int c,
             float *stats)
{
  PARALLEL_FOR ((gint64) rows * c)
  for (int r = 0; r < rows; r += NORM_BLOCK)
    {
      gsize o = (gsize) r * c;

      add_norm_pe_rows (out + o, out_pe + o, a + o, b != NULL ? b + o : NULL, bias, w->data, wb->data, pe + o,
                        MIN (NORM_BLOCK, rows - r), c, stats != NULL ? stats + r : NULL, (gsize) rows);
    }
}

/* One block of the next token-to-image attention, run inside
 * add_product_norm_pe with an online softmax: s [ht, n] = r x^T are the
 * scores of the block's rows x (keys + PE); each softmax row i keeps its
 * running maximum m[i] and sum l[i], and u[i] [c] the sum of the keys
 * weighted by exp (score - m[i]). */
VECTOR_CLONES static void
online_softmax_rows (float *s, float *m, float *l, float *u, int ht, int n, int c)
{
  for (int i = 0; i < ht; i++)
    {
      float *si = s + (gsize) i * n, *ui = u + (gsize) i * c;
      float mb = si[0], mn, alpha, sum = 0.0f;

      for (int j = 1; j < n; j++)
        mb = MAX (mb, si[j]);
      mn = MAX (m[i], mb);
      alpha = lode_exp_nonpositive (m[i] - mn);
      SIMD_REDUCE (sum)
      for (int j = 0; j < n; j++)
        {
          si[j] = lode_exp_nonpositive (si[j] - mn);
          sum += si[j];
        }
      l[i] = l[i] * alpha + sum;
      m[i] = mn;
      SIMD_FOR
      for (int j = 0; j < c; j++)
        ui[j] *= alpha;
    }
}

/* Rows r0 .. r0 + n of add_product_norm_pe: the block's keys into kr and
 * keys + PE into kpr, if not NULL (in self->keys and self->kpe, or a
 * thread's scratch).
 * When kr is where the block's keys_in are, the product is added there. */
static void
product_norm_block (LodeSam2Decoder *self, const float *keys_in, int w, const float *bias,
                    const LodeTensor *nw, const LodeTensor *nb, float *stats, int r0, int n,
                    float *kr, float *kpr)
{
  gsize o = (gsize) r0 * self->c;
  gboolean in_place = kr == keys_in + o;

  lode_ops_gemm (FALSE, FALSE, n, self->c, w, 1.0f, self->sc + (gsize) r0 * w, self->z,
                 in_place ? 1.0f : 0.0f, kr);
  add_norm_pe_rows (kr, kpr, kr, in_place ? NULL : keys_in + o, bias, nw->data, nb->data,
                    self->dense_pe + o, n, self->c, stats != NULL ? stats + r0 : NULL,
                    (gsize) self->hw);
}

/* A folded image-to-token attention's output, added to the keys and
 * normed: keys = layer_norm (keys_in + A z + bias), kpe = keys + PE, where
 * A is self->sc (rows of w) and z self->z [w, c]. A block of rows at a
 * time, from the product to the norm, so that the sum never goes to
 * memory between them. keys_in may be self->keys. stats as add_norm_pe.
 *
 * With r (not NULL, [ht, c]: token_to_image_queries of the attention that
 * comes next) the tokens' attention to the new keys runs in the same pass,
 * each block's scores r . kpe and sum of keys taken while the block is in
 * the cache, with a softmax kept online per thread and the threads' parts
 * merged in their order at the end: self->z receives the softmax-weighted
 * sums [ht, c] (the attention's values before Wv). Without store, the new
 * keys are not written (nothing after the next attention needs them).
 * Without pe, keys + PE are not written where r is NULL. */
static void
add_product_norm_pe (LodeSam2Decoder *self, const float *keys_in, int w, const float *bias,
                     const LodeTensor *nw, const LodeTensor *nb, float *stats, const float *r,
                     int ht, gboolean store, gboolean pe)
{
  int hw = self->hw, c = self->c, n_blocks = (hw + PRODUCT_BLOCK - 1) / PRODUCT_BLOCK;
  int team = r != NULL ? lode_ops_cpu_threads () : 1;
  gsize part = 2 * (gsize) ht + (gsize) ht * c + 2 * (gsize) PRODUCT_BLOCK * c + (gsize) ht * PRODUCT_BLOCK;
  int used = 1;

  g_return_if_fail (store || r != NULL);

  if (r == NULL)
    {
      PARALLEL_FOR ((gint64) hw * c * w)
      for (int b = 0; b < n_blocks; b++)
        {
          int r0 = b * PRODUCT_BLOCK;

          product_norm_block (self, keys_in, w, bias, nw, nb, stats, r0, MIN (PRODUCT_BLOCK, hw - r0),
                              self->keys + (gsize) r0 * c, pe ? self->kpe + (gsize) r0 * c : NULL);
        }
      return;
    }
  if (self->fuse_threads < team || self->fuse_part < part)
    {
      g_free (self->fuse_buf);
      self->fuse_buf = g_new (float, (gsize) team * part);
      self->fuse_threads = team;
      self->fuse_part = part;
    }

#ifdef _OPENMP
#pragma omp parallel num_threads (team)
#endif
  {
    int id = 0, nt = 1;
    float *m, *l, *u, *kb, *kpb, *sb;

#ifdef _OPENMP
    id = omp_get_thread_num ();
    nt = omp_get_num_threads ();
#pragma omp single
    used = nt;
#endif
    m = self->fuse_buf + (gsize) id * self->fuse_part;
    l = m + ht;
    u = l + ht;
    kb = u + (gsize) ht * c;
    kpb = kb + (gsize) PRODUCT_BLOCK * c;
    sb = kpb + (gsize) PRODUCT_BLOCK * c;
    for (int i = 0; i < ht; i++)
      {
        m[i] = -INFINITY;
        l[i] = 0.0f;
      }
    memset (u, 0, sizeof (float) * ht * c);

    /* a contiguous run of blocks per thread */
    for (int b = n_blocks * id / nt; b < n_blocks * (id + 1) / nt; b++)
      {
        int r0 = b * PRODUCT_BLOCK, n = MIN (PRODUCT_BLOCK, hw - r0);
        gsize o = (gsize) r0 * c;
        float *kr = store ? self->keys + o : kb, *kpr = store ? self->kpe + o : kpb;

        product_norm_block (self, keys_in, w, bias, nw, nb, stats, r0, n, kr, kpr);
        lode_ops_gemm (FALSE, TRUE, ht, n, c, 1.0f, r, kpr, 0.0f, sb);
        online_softmax_rows (sb, m, l, u, ht, n, c);
        lode_ops_gemm (FALSE, FALSE, ht, c, n, 1.0f, sb, kr, 1.0f, u);
      }
  }

  /* the threads' parts, merged in their order */
  for (int i = 0; i < ht; i++)
    {
      float mx = -INFINITY, sum = 0.0f;
      float *zi = self->z + (gsize) i * c;

      for (int p = 0; p < used; p++)
        mx = MAX (mx, self->fuse_buf[(gsize) p * self->fuse_part + i]);
      memset (zi, 0, sizeof (float) * c);
      for (int p = 0; p < used; p++)
        {
          const float *m = self->fuse_buf + (gsize) p * self->fuse_part;
          const float *ui = m + 2 * (gsize) ht + (gsize) i * c;
          float f = m[i] == -INFINITY ? 0.0f : lode_exp_nonpositive (m[i] - mx);

          sum += m[ht + i] * f;
          for (int j = 0; j < c; j++)
            zi[j] += f * ui[j];
        }
      for (int j = 0; j < c; j++)
        zi[j] /= sum;
    }
}

/* out [out_f, rows] = W x^T + b per output row: a projection of the image
 * rows x [rows, c] in transposed head layout [h, d, rows]. */
static void
project_t (float *out, const LodeTensor *w, const LodeTensor *b, const float *x, int rows, int c)
{
  int out_f = (int) w->shape[0];

  lode_ops_gemm (FALSE, TRUE, out_f, rows, c, 1.0f, w->data, x, 0.0f, out);
  lode_ops_add_channel_bias (out, out, b->data, 1, out_f, rows);
}

/* The image's part of layer 1's projections (expand_init), from the
 * cached keys; self->ktmp and self->kpe are scratch here. */
static void
expand_cache (LodeSam2Decoder *self)
{
  const Attn *t2i = &self->layers[1].t2i, *i2t = &self->layers[1].i2t;
  int c = self->c, hw = self->hw;
  const float *b0 = self->layers[0].norm_b[3]->data;
  float *kc = self->ktmp, *bpe = self->kpe;

  PARALLEL_FOR ((gint64) hw * c)
  for (int r = 0; r < hw; r++)
    {
      const float *pe = self->dense_pe + (gsize) r * c;
      float *q = bpe + (gsize) r * c;

      centre_row (kc + (gsize) r * c, self->c_keys + (gsize) r * c, c);
      for (int j = 0; j < c; j++)
        q[j] = b0[j] + pe[j];
    }
  lode_ops_gemm (FALSE, TRUE, self->x_n, hw, c, 1.0f, self->x_w, kc, 0.0f, self->x_c);
  project_t (self->x_p, t2i->kw, t2i->kb, bpe, hw, c);
  project_t (self->x_p + (gsize) t2i->internal * hw, i2t->qw, i2t->qb, bpe, hw, c);
  /* the scores' rows (not the values', a product's operand) in the
   * kernel's order */
  {
    int d = t2i->internal / self->heads;

    for (int k = 0; k < 2 * self->heads; k++)
      {
        gsize head = (gsize) k * d * hw;

        block_head_rows (self->x_c + (k < self->heads ? head : head + (gsize) t2i->internal * hw),
                         kc, d, hw);
        block_head_rows (self->x_p + head, kc, d, hw);
      }
  }
}

/* Layer 0's keys K0 = image_embed + no_mask_embed ([hw, c]), K0 + PE and
 * its token-to-image K and V (head layout) depend on the image only: kept
 * for the embedding of serial cached_serial. */
static void
prepare_first_layer (LodeSam2Decoder *self, const LodeSam2Embedding *emb)
{
  gsize kc = (gsize) self->hw * self->c;
  const Attn *a = &self->layers[0].t2i, *qa;

  if (self->cache_valid && self->cached_serial == emb->serial)
    return;
  lode_ops_nchw_to_nhwc (self->c_keys, emb->image_embed, 1, self->c, self->e, self->e);
  lode_ops_add_row_bias (self->c_keys, self->c_keys, self->no_mask->data, self->hw, self->c);
  lode_ops_add (self->c_kpe, self->c_keys, self->dense_pe, kc);
  project_t (self->c_hk, a->kw, a->kb, self->c_kpe, self->hw, self->c);
  project_t (self->c_hv, a->vw, a->vb, self->c_keys, self->hw, self->c);
  qa = &self->layers[0].i2t;
  project_t (self->c_hq, qa->qw, qa->qb, self->c_kpe, self->hw, self->c);
  lode_ops_gemm (TRUE, TRUE, self->c, self->hw, self->c, 1.0f, self->fm[0], self->c_keys, 0.0f, self->c_y0);
  if (self->x_c != NULL)
    expand_cache (self);
  upscale_cache (self, emb);
  /* the projections that only meet the kernels' scores in their order */
  for (int k = 0; k < self->heads; k++)
    {
      int dk = a->internal / self->heads, dq = qa->internal / self->heads;

      block_head_rows (self->c_hk + (gsize) k * dk * self->hw, self->ktmp, dk, self->hw);
      block_head_rows (self->c_hq + (gsize) k * dq * self->hw, self->ktmp, dq, self->hw);
    }
  self->cached_serial = emb->serial;
  self->cache_valid = TRUE;
}

/* out [n, hw] = cached + [W Wd | W shift] [G; 1], a cached projection in
 * transposed head layout moved by the mask features G [MASK_IN_CHANS, hw]
 * (followed by a row of ones). With d (not 0) the projection is in
 * block_head_rows' order, per head of d rows; tmp: d hw floats. */
static void
move_projection (float *out, const float *cached, const float *wwd, const float *g, int n, int hw,
                 int d, float *tmp)
{
  if (d == 0)
    {
      memcpy (out, cached, sizeof (float) * (gsize) n * hw);
      lode_ops_gemm (FALSE, FALSE, n, hw, MASK_IN_CHANS + 1, 1.0f, wwd, g, 1.0f, out);
      return;
    }
  lode_ops_gemm (FALSE, FALSE, n, hw, MASK_IN_CHANS + 1, 1.0f, wwd, g, 0.0f, out);
  for (int k = 0; k < n / d; k++)
    block_head_rows (out + (gsize) k * d * hw, tmp, d, hw);
  lode_ops_add (out, out, cached, (gsize) n * hw);
}

/* With a mask input, the dense embedding is Wd G + bd (G: mask_features)
 * instead of no_mask_embed, so the keys are K0 + G^T Wd^T + (bd -
 * no_mask_embed), and layer 0's token-to-image K and V, linear in the
 * keys, move by G^T (Wk Wd)^T and G^T (Wv Wd)^T plus the shift through Wk
 * and Wv: products of depth MASK_IN_CHANS (+ 1 for the shift) instead of
 * c. Fills layer 0's K and V (hk, hv) and its image-to-token queries (hq),
 * which move likewise through Wq; then, when the image-to-token attentions
 * are folded, sets mask_g (the keys' move joins layer 0's image-to-token
 * product) and the factors' mask columns, else fills keys and kpe. */
static void
apply_mask_input (LodeSam2Decoder *self, const float *mask)
{
  const Attn *a = &self->layers[0].t2i;
  int c = self->c, hw = self->hw, in = a->internal;
  gsize kc = (gsize) hw * c;
  float *g = mask_features (self, mask);

  for (int r = 0; r < hw; r++)
    g[(gsize) MASK_IN_CHANS * hw + r] = 1.0f;

  if (!self->factored)
    {
      move_projection (self->hk, self->c_hk, self->mask_kw, g, in, hw, in / self->heads, self->pq);
      move_projection (self->hv, self->c_hv, self->mask_vw, g, in, hw, 0, NULL);
      memcpy (self->keys, self->c_keys, kc * sizeof (float));
      lode_ops_gemm (TRUE, TRUE, hw, c, MASK_IN_CHANS, 1.0f, g, self->md_w[2]->data, 1.0f, self->keys);
      lode_ops_add_row_bias (self->keys, self->keys, self->mask_shift, hw, c);
      lode_ops_add (self->kpe, self->keys, self->dense_pe, kc);
      return;
    }
  /* folded: G^T Wd^T + shift joins layer 0's image-to-token product
   * (image_to_token_cached), the moves of its cached projections its
   * attention kernels (scores_moved), and the factors of the upscaling */
  self->mask_g = g;
  {
    int k = self->f_k, base = k - MASK_IN_CHANS - 1;

    PARALLEL_FOR ((gint64) hw * MASK_IN_CHANS)
    for (int r = 0; r < hw; r++)
      for (int j = 0; j <= MASK_IN_CHANS; j++)
        self->f_left[(gsize) r * k + base + j] = g[(gsize) j * hw + r];
  }
}

/* Layer l's self attention of the t tokens (self->queries, updated and
 * normed); the first layer has neither the PE nor the residual. */
static void
token_self_attention (LodeSam2Decoder *self, int l, int t)
{
  const Layer *ly = &self->layers[l];
  const Attn *sa = &ly->self_attn;
  gsize tc = (gsize) t * self->c;
  float *queries = self->queries, *q = self->qtmp, *attn = self->tbuf;
  Heads tok = { self->thq, self->thk, self->thv, self->tho };

  if (l == 0)
    memcpy (q, queries, sizeof (float) * tc);
  else
    lode_ops_add (q, queries, self->tok_pe, tc);
  linear (self->tq, q, sa->qw, sa->qb, t);
  linear (self->tk, q, sa->kw, sa->kb, t);
  linear (self->tv, queries, sa->vw, sa->vb, t);
  attn_core (self, sa, self->tq, self->tk, self->tv, &tok, t, t, attn);
  if (l == 0)
    memcpy (queries, attn, sizeof (float) * tc);
  else
    lode_ops_add (queries, queries, attn, tc);
  layer_norm (queries, ly->norm_w[0], ly->norm_b[0], t, self->c);
}

/* The layers and the final attention. Layer 0's keys and keys + PE
 * (keys0, kpe0: the cached ones, or self->keys and self->kpe with a mask
 * input that is not folded into layer 0's image-to-token product), its token-to-image K and V (hk0, hv0) and image-to-token
 * queries (hq0, head layout) are given; the later
 * layers' keys are in self->keys and self->kpe. Only the first n_out
 * tokens (the object score, IoU and mask tokens) leave the final
 * attention: the prompt tokens' rows are not computed there. */
static void
two_way_transformer (LodeSam2Decoder *self, int t, int n_out, const float *keys0, const float *kpe0,
                     const float *hk0, const float *hv0, const float *hq0)
{
  int c = self->c, hw = self->hw;
  gsize tc = (gsize) t * c, oc = (gsize) n_out * c;
  float *queries = self->queries;
  const float *keys_in = keys0, *kpe_in = kpe0;
  int w;
  gboolean attended = FALSE;
  const float *qpe = self->tok_pe;
  float *q = self->qtmp, *attn = self->tbuf;

  memcpy (queries, qpe, sizeof (float) * tc);

  for (int l = 0; l < self->depth; l++)
    {
      const Layer *ly = &self->layers[l];

      /* self attention, and the tokens' attention to the image (kpe =
       * keys + PE is up to date); or both were done with the previous
       * layer's image pass */
      if (attended)
        token_to_image_output (self, &ly->t2i, t, attn);
      else
        {
          token_self_attention (self, l, t);
          lode_ops_add (q, queries, qpe, tc);
          if (l == 1 && self->expanded)
            token_to_image_expanded (self, q, t, attn);
          else
            token_to_image (self, &ly->t2i, q, t, l == 0 ? hk0 : NULL, l == 0 ? hv0 : NULL, attn);
        }
      attended = FALSE;
      lode_ops_add (queries, queries, attn, tc);
      layer_norm (queries, ly->norm_w[1], ly->norm_b[1], t, c);

      /* MLP */
      mlp_run (&ly->mlp, queries, t, attn, self->tbuf2, NULL);
      lode_ops_add (queries, queries, attn, tc);
      layer_norm (queries, ly->norm_w[2], ly->norm_b[2], t, c);

      /* the image attends to the tokens: q from keys + PE */
      lode_ops_add (q, queries, qpe, tc);
      w = image_to_token (self, l, kpe_in, hq0, q, queries, t);
      if (self->factored)
        factor_layer (self, l, t);
      if (w > 0 && l == 0 && self->expanded)
        {
          /* layer 1's attentions go through layer 0's cache, which needs
           * this norm's statistics; its keys for layer 1's sum */
          expand_click (self, w);
          add_product_norm_pe (self, keys_in, w, ly->i2t.ob->data, ly->norm_w[3], ly->norm_b[3],
                               self->f_stats, NULL, 0, TRUE, FALSE);
        }
      else if (w > 0 && self->factored)
        {
          /* the tokens are final for this layer: the next attention of
           * the tokens to the image (the next layer's, after its self
           * attention, or the final one) runs in the image's pass; the
           * last keys are needed by nothing else (the upscaling goes
           * through the factors) */
          gboolean last = l == self->depth - 1;
          const Attn *next = last ? &self->final_attn : &self->layers[l + 1].t2i;
          int tn = last ? n_out : t;

          if (!last)
            token_self_attention (self, l + 1, t);
          lode_ops_add (q, queries, qpe, (gsize) tn * c);
          token_to_image_queries (self, next, q, tn);
          add_product_norm_pe (self, keys_in, w, ly->i2t.ob->data, ly->norm_w[3], ly->norm_b[3],
                               self->f_stats + (gsize) 2 * l * hw, self->r, self->heads * tn, !last,
                               !last);
          attended = TRUE;
        }
      else if (w > 0)
        add_product_norm_pe (self, keys_in, w, ly->i2t.ob->data, ly->norm_w[3], ly->norm_b[3],
                             NULL, NULL, 0, TRUE, TRUE);
      else
        add_norm_pe (self->keys, self->kpe, keys_in, self->ktmp, NULL, ly->norm_w[3], ly->norm_b[3],
                     self->dense_pe, hw, c, NULL);
      keys_in = self->keys;
      kpe_in = self->kpe;
    }

  /* final attention of the output tokens to the image, then its norm */
  if (attended)
    token_to_image_output (self, &self->final_attn, n_out, attn);
  else
    {
      lode_ops_add (q, queries, qpe, oc);
      token_to_image (self, &self->final_attn, q, n_out, NULL, NULL, attn);
    }
  lode_ops_add (queries, queries, attn, oc);
  layer_norm (queries, self->final_norm_w, self->final_norm_b, n_out, c);
}

/* The upscaling. Each ConvTranspose2d (kernel 2, stride 2) is a product
 * cols [c_out * 4, n] = W^T [c_out * 4, c_in] @ in [c_in, n] (W as PyTorch
 * stores it, [c_in, c_out, 2, 2]): row co * 4 + 2 ky + kx of cols holds
 * output channel co at the sub-pixel (ky, kx) of each input pixel. The
 * features stay in that order, each channel as four sub-images after
 * each other: the first convolution's output is its product plus the bias
 * and the high-resolution features (LayerNorm2d and GELU, per pixel, do
 * not mind the order), the second's product takes it as it is, and only
 * the masks go back to the image's order. The features (with the bias)
 * are kept in that order with the embedding's cache (upscale_cache). It
 * runs on bands of a few rows of the embedding, from the first product to
 * the masks, so that a band's columns stay in the cache and the
 * 32-channel features never exist whole. */

/* The features of the embedding in the products' order: h1 [c, hw],
 * h1[co * 4 + s1, p] = hr1[co] at sub-pixel s1 = 2 ky + kx of pixel p, plus
 * the first bias; h0 [c/2 * 4, hw] (c/8 channels, 16 sub-pixels s1 of the
 * first convolution and s2 of the second), h0[(co * 4 + s2) * 4 + s1, p]
 * = hr0[co] there, plus the second bias. */
static void
upscale_cache (LodeSam2Decoder *self, const LodeSam2Embedding *emb)
{
  int e = self->e, c4 = self->c / 4, c8 = self->c / 8, s1 = 2 * e, s2 = 4 * e, hw = self->hw;
  const float *hr1 = emb->high_res[1], *hr0 = emb->high_res[0];
  const float *b1 = self->up_b[0]->data, *b2 = self->up_b[1]->data;

  PARALLEL_FOR ((gint64) c4 * 4 * hw)
  for (int ch = 0; ch < c4 * 4; ch++)
    {
      int co = ch / 4, ky = (ch % 4) / 2, kx = ch % 2;
      float *dst = self->up_h1 + (gsize) ch * hw;

      for (int i = 0; i < e; i++)
        for (int j = 0; j < e; j++)
          dst[i * e + j] = hr1[((gsize) co * s1 + 2 * i + ky) * s1 + 2 * j + kx] + b1[co];
    }
  PARALLEL_FOR ((gint64) c8 * 16 * hw)
  for (int row = 0; row < c8 * 16; row++)
    {
      int co = row / 16, sub2 = (row / 4) % 4, sub1 = row % 4;
      int y = 2 * (sub1 / 2) + sub2 / 2, x = 2 * (sub1 % 2) + sub2 % 2;
      float *dst = self->up_h0 + (gsize) row * hw;

      for (int i = 0; i < e; i++)
        for (int j = 0; j < e; j++)
          dst[i * e + j] = hr0[((gsize) co * s2 + 4 * i + y) * s2 + 4 * j + x] + b2[co];
    }
}

/* The first convolution's output of a band, in place of its product
 * cols [c, n] (rows n apart): + h1 (rows hw apart) and, with y0 (the
 * factors' cached column, see factor_init), + p0 * y0. */
VECTOR_CLONES static void
upscale_first_rows (float *cols, const float *h1, const float *y0, const float *p0, int rows, int n,
                    gsize hw)
{
  for (int ch = 0; ch < rows; ch++)
    {
      float *o = cols + (gsize) ch * n;
      const float *h = h1 + (gsize) ch * hw;

      if (y0 != NULL)
        {
          const float *y = y0 + (gsize) ch * hw;

          SIMD_FOR
          for (int r = 0; r < n; r++)
            o[r] += h[r] + p0[r] * y[r];
        }
      else
        {
          SIMD_FOR
          for (int r = 0; r < n; r++)
            o[r] += h[r];
        }
    }
}

/* Pixels per step of upscale_masks_span: the four masks' sums stay in
 * the first level of cache, and each channel's features are read in runs
 * of this length. */
#define MASK_LANES 256

/* GELU (a + b) of n values into g, for upscale_masks_span. */
VECTOR_CLONES static void
gelu_sum (float *g, const float *a, const float *b, int n)
{
  if (n == MASK_LANES)
    {
      SIMD_FOR
      for (int r = 0; r < MASK_LANES; r++)
        g[r] = lode_gelu_approx (a[r] + b[r]);
      return;
    }
  SIMD_FOR
  for (int r = 0; r < n; r++)
    g[r] = lode_gelu_approx (a[r] + b[r]);
}

/* The masks of one pair of sub-pixels over n pixels of a band:
 * out[m, r] (rows out_stride apart) = sum_co hyper[m, co] GELU (cols[co, r]
 * + h0[co, r]), channels cols_stride and h0_stride apart. */
VECTOR_CLONES static void
upscale_masks_span (float *out, gsize out_stride, const float *cols, gsize cols_stride,
                    const float *h0, gsize h0_stride, const float *hyper, int c8, int n)
{
  for (int r0 = 0; r0 < n; r0 += MASK_LANES)
    {
      int len = MIN (MASK_LANES, n - r0);
      float g[MASK_LANES];

      for (int co = 0; co < c8; co++)
        {
          /* the next channel's runs are far away: fetch them now */
          if (co + 1 < c8)
            for (int r = 0; r < len; r += 16)
              {
                __builtin_prefetch (cols + (gsize) (co + 1) * cols_stride + r0 + r);
                __builtin_prefetch (h0 + (gsize) (co + 1) * h0_stride + r0 + r);
              }
          gelu_sum (g, cols + (gsize) co * cols_stride + r0, h0 + (gsize) co * h0_stride + r0, len);
          for (int m = 0; m < N_MASK_TOKENS; m++)
            {
              float w = hyper[m * c8 + co], *o = out + (gsize) m * out_stride + r0;

              if (co == 0)
                {
                  SIMD_FOR
                  for (int r = 0; r < len; r++)
                    o[r] = w * g[r];
                }
              else
                {
                  SIMD_FOR
                  for (int r = 0; r < len; r++)
                    o[r] += w * g[r];
                }
            }
        }
    }
}

/* keys [hw, c] (or the factors, see factor_init) -> masks [4, low_res^2]
 * through the upscaling and the hypernetworks' vectors hyper [4, c/8]. */
static void
upscale_masks (LodeSam2Decoder *self, const float *hyper)
{
  int c = self->c, e = self->e, c4 = c / 4, c8 = c / 8, hw = self->hw;
  int s2 = 4 * e, rows = band_rows (self);
  gsize lsz = (gsize) s2 * s2;
  const float *lnw = self->up_ln_w->data, *lnb = self->up_ln_b->data;
  const float *y0 = self->factored ? self->c_y0 : NULL;

  for (int i0 = 0; i0 < e; i0 += rows)
    {
      int nr = MIN (rows, e - i0), n0 = nr * e, n1 = 4 * n0;
      gsize first = (gsize) i0 * e;
      float *cols1 = self->up_cols, *cols2 = self->up_cols + (gsize) c * n0;
      float *md = self->up2;    /* [4 masks, 16 sub-pixels, n0] */

      if (self->factored)
        lode_ops_gemm (TRUE, TRUE, c, n0, self->f_k, 1.0f, self->f_right,
                       self->f_left + first * self->f_k, 0.0f, cols1);
      else
        lode_ops_gemm (TRUE, TRUE, c, n0, c, 1.0f, self->up_w[0]->data, self->keys + first * c,
                       0.0f, cols1);
      PARALLEL_FOR ((gint64) c * n0 * 4)
      for (int ch = 0; ch < c; ch += 4)
        upscale_first_rows (cols1 + (gsize) ch * n0, self->up_h1 + (gsize) ch * hw + first,
                            y0 != NULL ? y0 + (gsize) ch * hw + first : NULL, self->f_p0 + first, 4,
                            n0, hw);
      /* cols1 is the first features [c/4, 4 n0] */
      lode_ops_layer_norm2d (cols1, cols1, lnw, lnb, 1, c4, n1, LN2D_EPS);
      lode_ops_gelu (cols1, cols1, (gsize) c4 * n1);

      lode_ops_gemm (TRUE, FALSE, c8 * 4, n1, c4, 1.0f, self->up_w[1]->data, cols1, 0.0f, cols2);
      PARALLEL_FOR ((gint64) n1 * 4 * c8 * 16)
      for (int pair = 0; pair < 16; pair++)
        {
          int sub2 = pair / 4, sub1 = pair % 4;

          upscale_masks_span (md + (gsize) pair * n0, (gsize) 16 * n0,
                              cols2 + (gsize) sub2 * n1 + (gsize) sub1 * n0, (gsize) 4 * n1,
                              self->up_h0 + (gsize) (sub2 * 4 + sub1) * hw + first, (gsize) 16 * hw,
                              hyper, c8, n0);
        }
      /* back to the image's order: row 4 i + 2 ky1 + ky2, column
       * 4 j + 2 kx1 + kx2 */
      PARALLEL_FOR ((gint64) N_MASK_TOKENS * n0 * 16 * 4)
      for (int y = 0; y < 4 * nr; y++)
        {
          int i = y / 4, ky1 = (y % 4) / 2, ky2 = y % 2;

          for (int m = 0; m < N_MASK_TOKENS; m++)
            {
              float *o = self->masks + m * lsz + (gsize) (4 * i0 + y) * s2;
              const float *src = md + (gsize) m * 16 * n0 + (gsize) i * e;

              for (int j = 0; j < e; j++)
                for (int x = 0; x < 4; x++)
                  {
                    int kx1 = x / 2, kx2 = x % 2;
                    int pair = (2 * ky2 + kx2) * 4 + 2 * ky1 + kx1;

                    o[4 * j + x] = src[(gsize) pair * n0 + j];
                  }
            }
        }
    }
}

/* ---- the whole decoder -------------------------------------------------- */

double
lode_sam2_stability_score (const float *logits, gsize count, double delta)
{
  gsize inter = 0, uni = 0;

  for (gsize i = 0; i < count; i++)
    {
      inter += logits[i] > delta;
      uni += logits[i] > -delta;
    }
  return uni > 0 ? (double) inter / (double) uni : 1.0;
}

void
lode_sam2_decoder_select_masks (const LodeSam2Config  *config,
                                const float           *masks,
                                const float           *iou_all,
                                int                    low_res,
                                gboolean               multimask,
                                LodeSam2DecoderOutput *out)
{
  gsize lsz = (gsize) low_res * low_res;

  out->low_res = low_res;
  if (multimask)
    {
      out->n_masks = 3;
      out->low_res_masks = g_memdup2 (masks + lsz, sizeof (float) * 3 * lsz);
      for (int i = 0; i < 3; i++)
        out->iou[i] = iou_all[1 + i];
      out->best = 0;
      for (int i = 1; i < 3; i++)
        if (out->iou[i] > out->iou[out->best])
          out->best = i;
    }
  else
    {
      int pick = 0;

      if (config->dynamic_multimask_via_stability &&
          lode_sam2_stability_score (masks, lsz, config->dynamic_multimask_stability_delta)
            < config->dynamic_multimask_stability_thresh)
        {
          pick = 1;
          for (int i = 2; i <= 3; i++)
            if (iou_all[i] > iou_all[pick])
              pick = i;
          out->used_stability_fallback = TRUE;
        }
      out->n_masks = 1;
      out->low_res_masks = g_memdup2 (masks + (gsize) pick * lsz, sizeof (float) * lsz);
      out->iou[0] = iou_all[pick];
      out->best = 0;
    }
}

gboolean
lode_sam2_decoder_run (LodeSam2Decoder         *self,
                       const LodeSam2Embedding *emb,
                       const LodeSam2Prompt    *prompt,
                       LodeSam2DecoderOutput   *out,
                       GError                 **error)
{
  int c = self->c, e = self->e, ls = self->low_res;
  int s = self->config.pred_obj_scores ? 1 : 0;
  int n_sparse = 0, t;
  float *hyper_in = self->tbuf;    /* [4, c/8] */
  float iou_all[N_MASK_TOKENS];
  float score[1];

  g_return_val_if_fail (self != NULL && emb != NULL && prompt != NULL && out != NULL, FALSE);

  memset (out, 0, sizeof *out);
  if (emb->image_size != self->config.image_size || emb->d_model != c ||
      emb->embed_size != e || emb->high_res_channels[0] != c / 8 ||
      emb->high_res_channels[1] != c / 4)
    {
      g_set_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_EMBEDDING,
                   _("The image embedding (input size %d, width %d) does not fit the model (input size %d, width %d)"),
                   emb->image_size, emb->d_model, self->config.image_size, c);
      return FALSE;
    }

  /* tokens: [obj_score, iou, mask tokens..., sparse prompts...] */
  if (!embed_prompts (self, prompt, &n_sparse, error))
    return FALSE;
  t = s + 1 + N_MASK_TOKENS + n_sparse;
  if (s)
    memcpy (self->tok_pe, self->obj_token->data, sizeof (float) * c);
  memcpy (self->tok_pe + (gsize) s * c, self->iou_token->data, sizeof (float) * c);
  memcpy (self->tok_pe + (gsize) (s + 1) * c, self->mask_tokens->data,
          sizeof (float) * N_MASK_TOKENS * c);

  /* src = image_embed + dense, as [hw, c] */
  prepare_first_layer (self, emb);
  factor_begin (self, t, prompt->mask_input != NULL);
  self->mask_g = NULL;
  if (prompt->mask_input == NULL)
    {
      two_way_transformer (self, t, s + 1 + N_MASK_TOKENS, self->c_keys, self->c_kpe,
                           self->c_hk, self->c_hv, self->c_hq);
    }
  else
    {
      apply_mask_input (self, prompt->mask_input);
      if (self->mask_g != NULL)
        two_way_transformer (self, t, s + 1 + N_MASK_TOKENS, self->c_keys, self->c_kpe,
                             self->c_hk, self->c_hv, self->c_hq);
      else
        two_way_transformer (self, t, s + 1 + N_MASK_TOKENS, self->keys, self->kpe,
                             self->hk, self->hv, NULL);
    }

  /* hypernetworks: one [c/8] vector per mask token, then the upscaling
   * with the high-resolution features, and masks = hyper @ features */
  {
    gsize part = 2 * (gsize) MAX (c, IOU_HIDDEN);

    /* the heads' MLPs, one row each: their weights are most of their
     * time, so they run side by side (the products stay on their thread) */
#ifdef _OPENMP
#pragma omp parallel for schedule (dynamic, 1)
#endif
    for (int i = 0; i < N_MASK_TOKENS + 1 + s; i++)
      {
        float *ta = self->tbuf2 + (gsize) i * part, *tb = ta + part / 2;

        if (i < N_MASK_TOKENS)
          mlp_run (&self->hyper[i], self->queries + (gsize) (s + 1 + i) * c, 1,
                   hyper_in + (gsize) i * (c / 8), ta, tb);
        else if (i == N_MASK_TOKENS)
          mlp_run (&self->iou_head, self->queries + (gsize) s * c, 1, iou_all, ta, tb);
        else
          mlp_run (&self->obj_head, self->queries, 1, score, ta, tb);
      }
    if (self->factored)
      factor_end (self);
    upscale_masks (self, hyper_in);

    if (self->config.iou_prediction_use_sigmoid)
      lode_ops_sigmoid (iou_all, iou_all, N_MASK_TOKENS);
    if (s)
      out->object_score = score[0];
    else
      out->object_score = 10.0f;
  }

  lode_sam2_decoder_select_masks (&self->config, self->masks, iou_all, ls, prompt->multimask, out);
  return TRUE;
}
