#define G_LOG_DOMAIN "lode-model"

#include "config.h"

#include <errno.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lode-grad.h"
#include "lode-ops.h"
#include "lode-sam2-train.h"

#define N_MASK_TOKENS 4
#define LN_EPS 1e-5f
#define LN2D_EPS 1e-6f
#define LOG_EPS 1e-5
#define SCORE_WEIGHT 0.05

/* ---- tensors ------------------------------------------------------------- */

/* Scratch of one forward and backward, zeroed. The buffers are kept
 * between prompts: the same shapes ask for the same sizes in the same
 * order, so after the first step nothing is allocated (fresh pages from the
 * kernel cost more than clearing). */
typedef struct _Arena Arena;

struct _Arena {
  GPtrArray *bufs;   /* float arrays */
  GArray *sizes;     /* gsize, their lengths */
  guint next;
};

static Arena *
arena_new (void)
{
  Arena *a = g_new0 (Arena, 1);

  a->bufs = g_ptr_array_new_with_free_func (g_free);
  a->sizes = g_array_new (FALSE, FALSE, sizeof (gsize));
  return a;
}

static void
arena_free (Arena *a)
{
  if (a == NULL)
    return;
  g_ptr_array_unref (a->bufs);
  g_array_unref (a->sizes);
  g_free (a);
}

typedef struct {
  char *name;
  int ndim;
  gint64 shape[4];
  gsize n;
  float *w, *g, *m, *v;
  gboolean learns;
} Param;

typedef struct { Param *w, *b; } Lin;
typedef struct { Lin q, k, v, o; int internal; } TAttn;
typedef struct { Lin l[3]; int n; } TMlp;
typedef struct { TAttn sa, t2i, i2t; Lin norm[4]; TMlp mlp; } TLayer;

struct _LodeSam2Tuner {
  LodeSam2Config config;
  int c, e, hw, ls, heads, depth, s;
  GPtrArray *params;          /* Param */
  GHashTable *by_name;
  gint64 step;

  Param *gauss, *point_embed[4], *not_a_point, *no_mask;
  Param *obj_token, *iou_token, *mask_tokens;
  TLayer layers[8];
  TAttn final_attn;
  Lin final_norm;
  Lin up[2], up_ln;
  TMlp hyper[N_MASK_TOKENS], iou_head;
  float *dense_pe;            /* [hw, c] */
  Arena *arena;               /* scratch kept between prompts */
};

static void
param_free (gpointer p)
{
  Param *q = p;

  g_free (q->name);
  g_free (q->w);
  g_free (q->g);
  g_free (q->m);
  g_free (q->v);
  g_free (q);
}

typedef struct {
  LodeSam2Tuner *self;
  LodeSam2TensorSource source;
  gpointer data;
  GError **error;
  gboolean failed;
} Loader;

static void
load_one (const char *name, int ndim, const gint64 *shape, gpointer user_data)
{
  Loader *l = user_data;
  Param *p;
  LodeTensor *t;

  if (l->failed)
    return;
  t = l->source (name, ndim, shape, l->data, l->error);
  if (t == NULL)
    {
      l->failed = TRUE;
      return;
    }
  p = g_new0 (Param, 1);
  p->name = g_strdup (name);
  p->ndim = ndim;
  p->n = 1;
  for (int i = 0; i < ndim; i++)
    {
      p->shape[i] = shape[i];
      p->n *= (gsize) shape[i];
    }
  p->w = g_memdup2 (t->data, p->n * sizeof (float));
  p->g = g_new0 (float, p->n);
  p->m = g_new0 (float, p->n);
  p->v = g_new0 (float, p->n);
  p->learns = strstr (name, "pred_obj_score_head") == NULL &&
              strstr (name, "mask_downscaling") == NULL &&
              strstr (name, "gaussian_matrix") == NULL;
  lode_tensor_free (t);
  g_ptr_array_add (l->self->params, p);
  g_hash_table_insert (l->self->by_name, p->name, p);
}

static Param *
P (LodeSam2Tuner *self, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static Param *
P (LodeSam2Tuner *self, const char *fmt, ...)
{
  va_list ap;
  g_autofree char *name = NULL;

  va_start (ap, fmt);
  name = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  return g_hash_table_lookup (self->by_name, name);
}

static void
bind_lin (LodeSam2Tuner *self, Lin *l, const char *prefix)
{
  l->w = P (self, "%s.weight", prefix);
  l->b = P (self, "%s.bias", prefix);
}

static void
bind_attn (LodeSam2Tuner *self, TAttn *a, const char *prefix)
{
  g_autofree char *q = g_strconcat (prefix, ".q_proj", NULL);
  g_autofree char *k = g_strconcat (prefix, ".k_proj", NULL);
  g_autofree char *v = g_strconcat (prefix, ".v_proj", NULL);
  g_autofree char *o = g_strconcat (prefix, ".out_proj", NULL);

  bind_lin (self, &a->q, q);
  bind_lin (self, &a->k, k);
  bind_lin (self, &a->v, v);
  bind_lin (self, &a->o, o);
  a->internal = (int) a->q.w->shape[0];
}

static void
bind_mlp (LodeSam2Tuner *self, TMlp *m, const char *prefix, int n)
{
  m->n = n;
  for (int i = 0; i < n; i++)
    {
      g_autofree char *name = g_strdup_printf ("%s.layers.%d", prefix, i);
      bind_lin (self, &m->l[i], name);
    }
}

static void
bind (LodeSam2Tuner *self)
{
  const char *md = "sam_mask_decoder";

  self->gauss = P (self, "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix");
  for (int i = 0; i < 4; i++)
    self->point_embed[i] = P (self, "sam_prompt_encoder.point_embeddings.%d.weight", i);
  self->not_a_point = P (self, "sam_prompt_encoder.not_a_point_embed.weight");
  self->no_mask = P (self, "sam_prompt_encoder.no_mask_embed.weight");
  self->obj_token = P (self, "%s.obj_score_token.weight", md);
  self->iou_token = P (self, "%s.iou_token.weight", md);
  self->mask_tokens = P (self, "%s.mask_tokens.weight", md);
  for (int l = 0; l < self->depth; l++)
    {
      TLayer *ly = &self->layers[l];
      g_autofree char *p = g_strdup_printf ("%s.transformer.layers.%d", md, l);
      g_autofree char *sa = g_strconcat (p, ".self_attn", NULL);
      g_autofree char *t2i = g_strconcat (p, ".cross_attn_token_to_image", NULL);
      g_autofree char *i2t = g_strconcat (p, ".cross_attn_image_to_token", NULL);
      g_autofree char *mlp = g_strconcat (p, ".mlp", NULL);

      bind_attn (self, &ly->sa, sa);
      bind_attn (self, &ly->t2i, t2i);
      bind_attn (self, &ly->i2t, i2t);
      for (int n = 0; n < 4; n++)
        {
          g_autofree char *nn = g_strdup_printf ("%s.norm%d", p, n + 1);
          bind_lin (self, &ly->norm[n], nn);
        }
      bind_mlp (self, &ly->mlp, mlp, 2);
    }
  bind_attn (self, &self->final_attn, "sam_mask_decoder.transformer.final_attn_token_to_image");
  bind_lin (self, &self->final_norm, "sam_mask_decoder.transformer.norm_final_attn");
  bind_lin (self, &self->up[0], "sam_mask_decoder.output_upscaling.0");
  bind_lin (self, &self->up_ln, "sam_mask_decoder.output_upscaling.1");
  bind_lin (self, &self->up[1], "sam_mask_decoder.output_upscaling.3");
  for (int i = 0; i < N_MASK_TOKENS; i++)
    {
      g_autofree char *name = g_strdup_printf ("%s.output_hypernetworks_mlps.%d", md, i);
      bind_mlp (self, &self->hyper[i], name, 3);
    }
  bind_mlp (self, &self->iou_head, "sam_mask_decoder.iou_prediction_head", 3);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeSam2Decoder, lode_sam2_decoder_free)

/* PositionEmbeddingRandom of a point normalised to [0, 1]. */
static void
pe_encode (const LodeSam2Tuner *self, float x, float y, float *out)
{
  int half = self->c / 2;
  const float *g = self->gauss->w;
  const float two_pi = (float) (2.0 * G_PI);
  float cx = 2.0f * x - 1.0f, cy = 2.0f * y - 1.0f;

  for (int j = 0; j < half; j++)
    {
      float v = two_pi * (cx * g[j] + cy * g[half + j]);

      out[j] = sinf (v);
      out[half + j] = cosf (v);
    }
}

LodeSam2Tuner *
lode_sam2_tuner_new (const LodeSam2Config *config,
                     LodeSam2TensorSource  source,
                     gpointer              user_data,
                     GError              **error)
{
  LodeSam2Tuner *self;
  Loader l = { 0 };
  g_autoptr(LodeSam2Decoder) check = NULL;

  g_return_val_if_fail (config != NULL && source != NULL, NULL);

  /* the decoder checks the configuration and every shape */
  check = lode_sam2_decoder_new (config, source, user_data, error);
  if (check == NULL)
    return NULL;
  if (config->decoder_dim / 8 > 64)
    {
      g_set_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_CONFIG,
                   _("SAM2 fine-tuning supports decoder widths up to 512, not %d"), config->decoder_dim);
      return NULL;
    }

  self = g_new0 (LodeSam2Tuner, 1);
  self->config = *config;
  self->c = config->decoder_dim;
  self->e = config->image_size / 16;
  self->hw = self->e * self->e;
  self->ls = 4 * self->e;
  self->heads = config->decoder_heads;
  self->depth = config->decoder_depth;
  self->s = config->pred_obj_scores ? 1 : 0;
  self->params = g_ptr_array_new_with_free_func (param_free);
  self->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  self->arena = arena_new ();
  l.self = self;
  l.source = source;
  l.data = user_data;
  l.error = error;
  lode_sam2_decoder_list_tensors (config, load_one, &l);
  if (l.failed)
    {
      lode_sam2_tuner_free (self);
      return NULL;
    }
  bind (self);
  self->dense_pe = g_new (float, (gsize) self->hw * self->c);
  for (int i = 0; i < self->e; i++)
    for (int j = 0; j < self->e; j++)
      pe_encode (self, ((float) j + 0.5f) / (float) self->e, ((float) i + 0.5f) / (float) self->e,
                 self->dense_pe + ((gsize) i * self->e + j) * self->c);
  return self;
}

static LodeTensor *
checkpoint_source (const char *name, int ndim, const gint64 *shape, gpointer user_data, GError **error)
{
  LodeCheckpoint *ckpt = user_data;
  LodeTensor *t;

  (void) ndim;
  (void) shape;
  if (!lode_checkpoint_has (ckpt, name))
    {
      g_set_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_WEIGHTS,
                   _("The checkpoint has no tensor “%s”; it is not a SAM2.1 checkpoint"), name);
      return NULL;
    }
  t = lode_checkpoint_load (ckpt, name, error);
  return t;
}

LodeSam2Tuner *
lode_sam2_tuner_new_from_checkpoint (LodeCheckpoint       *checkpoint,
                                     const LodeSam2Config *config,
                                     GError              **error)
{
  g_return_val_if_fail (checkpoint != NULL, NULL);
  return lode_sam2_tuner_new (config, checkpoint_source, checkpoint, error);
}

void
lode_sam2_tuner_free (LodeSam2Tuner *self)
{
  if (self == NULL)
    return;
  g_hash_table_unref (self->by_name);
  g_ptr_array_unref (self->params);
  arena_free (self->arena);
  g_free (self->dense_pe);
  g_free (self);
}

guint
lode_sam2_tuner_n_tensors (LodeSam2Tuner *self)
{
  return self->params->len;
}

const char *
lode_sam2_tuner_tensor_name (LodeSam2Tuner *self, guint i)
{
  g_return_val_if_fail (i < self->params->len, NULL);
  return ((Param *) self->params->pdata[i])->name;
}

float *
lode_sam2_tuner_tensor (LodeSam2Tuner *self, guint i, gsize *count)
{
  Param *p;

  g_return_val_if_fail (i < self->params->len, NULL);
  p = self->params->pdata[i];
  if (count)
    *count = p->n;
  return p->w;
}

const float *
lode_sam2_tuner_grad (LodeSam2Tuner *self, guint i)
{
  g_return_val_if_fail (i < self->params->len, NULL);
  return ((Param *) self->params->pdata[i])->g;
}

gboolean
lode_sam2_tuner_tensor_learns (LodeSam2Tuner *self, guint i)
{
  g_return_val_if_fail (i < self->params->len, FALSE);
  return ((Param *) self->params->pdata[i])->learns;
}

void
lode_sam2_tuner_zero_grad (LodeSam2Tuner *self)
{
  for (guint i = 0; i < self->params->len; i++)
    {
      Param *p = self->params->pdata[i];
      memset (p->g, 0, p->n * sizeof (float));
    }
}

void
lode_sam2_tuner_step (LodeSam2Tuner *self, double lr, double weight_decay)
{
  LodeAdamW opt;

  lode_adamw_init_defaults (&opt);
  opt.lr = (float) lr;
  opt.weight_decay = (float) weight_decay;
  self->step++;
  for (guint i = 0; i < self->params->len; i++)
    {
      Param *p = self->params->pdata[i];

      if (p->learns)
        lode_grad_adamw (p->w, p->g, p->m, p->v, p->n, &opt, self->step);
    }
}

/* ---- kernels and their backward passes ------------------------------------ */

static float *
anew (Arena *a, gsize n)
{
  float *p;

  n = MAX (n, 1);
  if (a->next < a->bufs->len && g_array_index (a->sizes, gsize, a->next) >= n)
    {
      p = a->bufs->pdata[a->next];
      memset (p, 0, n * sizeof (float));
    }
  else
    {
      p = g_new0 (float, n);
      if (a->next < a->bufs->len)
        {
          g_free (a->bufs->pdata[a->next]);
          a->bufs->pdata[a->next] = p;
          g_array_index (a->sizes, gsize, a->next) = n;
        }
      else
        {
          g_ptr_array_add (a->bufs, p);
          g_array_append_val (a->sizes, n);
        }
    }
  a->next++;
  return p;
}

static float *
acopy (Arena *a, const float *x, gsize n)
{
  float *p = anew (a, n);

  memcpy (p, x, n * sizeof (float));
  return p;
}

static int
lin_in (const Lin *l)
{
  return (int) l->w->shape[1];
}

static int
lin_out (const Lin *l)
{
  return (int) l->w->shape[0];
}

static void
lin_fwd (const Lin *l, const float *x, int rows, float *y)
{
  lode_ops_linear (y, x, l->w->w, l->b->w, rows, lin_in (l), lin_out (l));
}

/* dW += dy^T x, db += sum dy, dx = dy W (when dx is not NULL). */
static void
lin_bwd (const Lin *l, const float *x, const float *dy, int rows, float *dx)
{
  lode_grad_linear (dx, l->w->g, l->b->g, dy, x, l->w->w, rows, lin_in (l), lin_out (l));
}

static void
ln_rows_fwd (const Lin *n, const float *x, float *y, int rows, int c)
{
  lode_ops_layer_norm (y, x, n->w->w, n->b->w, rows, c, LN_EPS);
}

static void
ln_rows_bwd (const Lin *n, const float *x, const float *dy, float *dx, int rows, int c)
{
  lode_grad_layer_norm (dx, n->w->g, n->b->g, dy, x, n->w->w, rows, c, LN_EPS);
}

/* ConvTranspose2d kernel 2 stride 2, in [ci, side^2], w [ci, co, 2, 2]. */
static void
convt_fwd (const Lin *l, const float *in, int ci, int co, int side, float *out, float *cols)
{
  int hw = side * side, ow = 2 * side;

  lode_ops_gemm (TRUE, FALSE, co * 4, hw, ci, 1.0f, l->w->w, in, 0.0f, cols);
  for (int o = 0; o < co; o++)
    for (int ab = 0; ab < 4; ab++)
      {
        const float *col = cols + ((gsize) o * 4 + ab) * hw;
        float *dst = out + (gsize) o * 4 * hw + (ab / 2) * ow + (ab % 2);

        for (int i = 0; i < side; i++)
          for (int j = 0; j < side; j++)
            dst[(gsize) 2 * i * ow + 2 * j] = col[i * side + j] + l->b->w[o];
      }
}

static void
convt_bwd (const Lin *l, const float *in, const float *dout, int ci, int co, int side, float *din)
{
  lode_grad_conv_transpose2x2 (din, l->w->g, l->b->g, dout, in, l->w->w, ci, co, side, side);
}

/* ---- attention ------------------------------------------------------------ */

typedef struct {
  int lq, lk;
  const float *qin, *kin, *vin;   /* inputs (kept by the caller's tape) */
  float *q, *k, *v;               /* projections [l, internal] */
  float *hq, *hk, *hv;            /* head layout [h, l, d] */
  float *p;                       /* probabilities [h, lq, lk] */
  float *o;                       /* merged [lq, internal] */
} AttnTape;

static void
attn_fwd (LodeSam2Tuner *self, Arena *ar, const TAttn *a, AttnTape *t,
          const float *qin, const float *kin, const float *vin, int lq, int lk, float *out)
{
  int h = self->heads, in = a->internal, d = in / h;
  float *ho;

  t->lq = lq;
  t->lk = lk;
  t->qin = qin;
  t->kin = kin;
  t->vin = vin;
  t->q = anew (ar, (gsize) lq * in);
  t->k = anew (ar, (gsize) lk * in);
  t->v = anew (ar, (gsize) lk * in);
  t->hq = anew (ar, (gsize) lq * in);
  t->hk = anew (ar, (gsize) lk * in);
  t->hv = anew (ar, (gsize) lk * in);
  t->p = anew (ar, (gsize) h * lq * lk);
  t->o = anew (ar, (gsize) lq * in);
  ho = anew (ar, (gsize) lq * in);
  lin_fwd (&a->q, qin, lq, t->q);
  lin_fwd (&a->k, kin, lk, t->k);
  lin_fwd (&a->v, vin, lk, t->v);
  lode_ops_split_heads (t->hq, t->q, lq, h, d);
  lode_ops_split_heads (t->hk, t->k, lk, h, d);
  lode_ops_split_heads (t->hv, t->v, lk, h, d);
  lode_grad_attention_forward (ho, t->p, t->hq, t->hk, t->hv, h, lq, lk, d);
  lode_ops_merge_heads (t->o, ho, lq, h, d);
  lin_fwd (&a->o, t->o, lq, out);
}

/* dqin, dkin, dvin are overwritten. */
static void
attn_bwd (LodeSam2Tuner *self, Arena *ar, const TAttn *a, const AttnTape *t, const float *dout,
          float *dqin, float *dkin, float *dvin)
{
  int h = self->heads, in = a->internal, d = in / h, lq = t->lq, lk = t->lk;
  float *dmerged = anew (ar, (gsize) lq * in);
  float *dho = anew (ar, (gsize) lq * in);
  float *dhq = anew (ar, (gsize) lq * in);
  float *dhk = anew (ar, (gsize) lk * in);
  float *dhv = anew (ar, (gsize) lk * in);
  float *tmp = anew (ar, (gsize) MAX (lq, lk) * in);

  lin_bwd (&a->o, t->o, dout, lq, dmerged);
  lode_ops_split_heads (dho, dmerged, lq, h, d);
  lode_grad_attention (dhq, dhk, dhv, dho, t->hq, t->hk, t->hv, t->p, h, lq, lk, d);
  lode_ops_merge_heads (tmp, dhq, lq, h, d);
  lin_bwd (&a->q, t->qin, tmp, lq, dqin);
  lode_ops_merge_heads (tmp, dhk, lk, h, d);
  lin_bwd (&a->k, t->kin, tmp, lk, dkin);
  lode_ops_merge_heads (tmp, dhv, lk, h, d);
  lin_bwd (&a->v, t->vin, tmp, lk, dvin);
}

/* ---- MLP with ReLU between layers ----------------------------------------- */

typedef struct {
  const float *x;
  float *act[3];   /* outputs of each layer, after ReLU for the hidden ones */
} MlpTape;

static void
mlp_fwd (Arena *ar, const TMlp *m, MlpTape *t, const float *x, int rows, float *out)
{
  const float *in = x;

  t->x = x;
  for (int i = 0; i < m->n; i++)
    {
      int fo = lin_out (&m->l[i]);
      float *y = i == m->n - 1 ? out : anew (ar, (gsize) rows * fo);

      lin_fwd (&m->l[i], in, rows, y);
      if (i < m->n - 1)
        lode_ops_relu (y, y, (gsize) rows * fo);
      t->act[i] = y;
      in = y;
    }
}

static void
mlp_bwd (Arena *ar, const TMlp *m, const MlpTape *t, const float *dout, int rows, float *dx)
{
  const float *dy = dout;

  for (int i = m->n - 1; i >= 0; i--)
    {
      const float *in = i == 0 ? t->x : t->act[i - 1];
      float *dprev = i == 0 ? dx : anew (ar, (gsize) rows * lin_in (&m->l[i]));

      lin_bwd (&m->l[i], in, dy, rows, dprev);
      if (i > 0 && dprev)
        for (gsize j = 0; j < (gsize) rows * lin_in (&m->l[i]); j++)
          if (in[j] <= 0.0f)
            dprev[j] = 0.0f;
      dy = dprev;
    }
}

/* ---- the training forward and backward ------------------------------------ */

typedef struct {
  float *q_in, *qa;            /* queries entering the layer; self-attention q/k input */
  AttnTape sa, t2i, i2t;
  float *x1, *x2, *x3, *x4;    /* inputs of the four norms */
  float *qb, *kb, *keys_in;    /* t2i inputs; keys entering the layer */
  float *q2;                   /* queries after norm2 (MLP input) */
  MlpTape mlp;
  float *q3, *qc, *kc;         /* queries after norm3, i2t inputs */
} LayerTape;

typedef struct {
  int t;
  float *tok;                  /* [t, c]: tokens = query PE */
  LayerTape layers[8];
  AttnTape fin;
  float *qd, *kd, *keys_fin, *x5;
  float *queries;              /* final [t, c] */
  float *src;                  /* [c, hw] */
  float *u1_in, *u1_ln, *u2;   /* before LN2d, before GELU, before GELU */
  float *g1, *g2;
  MlpTape hyper;
  float hyper_out[64];
  MlpTape iou;
  float iou_out[N_MASK_TOKENS];
  float *mask1;                /* [ls^2] logits of the first multimask output */
} Tape;

static void
forward (LodeSam2Tuner *self, Arena *ar, Tape *tp, const LodeSam2Embedding *emb,
         float px, float py)
{
  int c = self->c, hw = self->hw, e = self->e, s = self->s, ls = self->ls;
  int t = s + 1 + N_MASK_TOKENS + 2;
  gsize tc, kc = (gsize) hw * c;
  float size = (float) self->config.image_size;
  float *queries, *keys, *a, *ak;
  float *cols = anew (ar, kc * 4);

  tp->t = t;
  tc = (gsize) t * c;
  tp->tok = anew (ar, tc);
  if (s)
    memcpy (tp->tok, self->obj_token->w, c * sizeof (float));
  memcpy (tp->tok + (gsize) s * c, self->iou_token->w, c * sizeof (float));
  memcpy (tp->tok + (gsize) (s + 1) * c, self->mask_tokens->w, N_MASK_TOKENS * c * sizeof (float));
  {
    float *pt = tp->tok + (gsize) (s + 1 + N_MASK_TOKENS) * c;

    pe_encode (self, (px + 0.5f) / size, (py + 0.5f) / size, pt);
    lode_ops_add (pt, pt, self->point_embed[1]->w, c);
    memcpy (pt + c, self->not_a_point->w, c * sizeof (float));
  }

  /* keys = image_embed + no_mask_embed, [hw, c] */
  keys = anew (ar, kc);
  {
    float *tmp = anew (ar, kc);

    for (int j = 0; j < c; j++)
      for (int p = 0; p < hw; p++)
        tmp[(gsize) j * hw + p] = emb->image_embed[(gsize) j * hw + p] + self->no_mask->w[j];
    lode_ops_nchw_to_nhwc (keys, tmp, 1, c, e, e);
  }
  queries = acopy (ar, tp->tok, tc);
  a = anew (ar, tc);

  for (int l = 0; l < self->depth; l++)
    {
      const TLayer *ly = &self->layers[l];
      LayerTape *lt = &tp->layers[l];
      float *nq;

      lt->q_in = queries;
      lt->keys_in = keys;
      if (l == 0)
        lt->qa = queries;
      else
        {
          lt->qa = anew (ar, tc);
          lode_ops_add (lt->qa, queries, tp->tok, tc);
        }
      attn_fwd (self, ar, &ly->sa, &lt->sa, lt->qa, lt->qa, queries, t, t, a);
      lt->x1 = anew (ar, tc);
      if (l == 0)
        memcpy (lt->x1, a, tc * sizeof (float));
      else
        lode_ops_add (lt->x1, queries, a, tc);
      nq = anew (ar, tc);
      ln_rows_fwd (&ly->norm[0], lt->x1, nq, t, c);
      queries = nq;

      lt->qb = anew (ar, tc);
      lode_ops_add (lt->qb, queries, tp->tok, tc);
      lt->kb = anew (ar, kc);
      lode_ops_add (lt->kb, keys, self->dense_pe, kc);
      attn_fwd (self, ar, &ly->t2i, &lt->t2i, lt->qb, lt->kb, keys, t, hw, a);
      lt->x2 = anew (ar, tc);
      lode_ops_add (lt->x2, queries, a, tc);
      lt->q2 = anew (ar, tc);
      ln_rows_fwd (&ly->norm[1], lt->x2, lt->q2, t, c);
      queries = lt->q2;

      mlp_fwd (ar, &ly->mlp, &lt->mlp, queries, t, a);
      lt->x3 = anew (ar, tc);
      lode_ops_add (lt->x3, queries, a, tc);
      lt->q3 = anew (ar, tc);
      ln_rows_fwd (&ly->norm[2], lt->x3, lt->q3, t, c);
      queries = lt->q3;

      lt->qc = anew (ar, tc);
      lode_ops_add (lt->qc, queries, tp->tok, tc);
      lt->kc = lt->kb;   /* keys are unchanged since: keys + PE */
      ak = anew (ar, kc);
      attn_fwd (self, ar, &ly->i2t, &lt->i2t, lt->kc, lt->qc, queries, hw, t, ak);
      lt->x4 = anew (ar, kc);
      lode_ops_add (lt->x4, keys, ak, kc);
      keys = anew (ar, kc);
      ln_rows_fwd (&ly->norm[3], lt->x4, keys, hw, c);
    }
  tp->keys_fin = keys;
  tp->qd = anew (ar, tc);
  lode_ops_add (tp->qd, queries, tp->tok, tc);
  tp->kd = anew (ar, kc);
  lode_ops_add (tp->kd, keys, self->dense_pe, kc);
  attn_fwd (self, ar, &self->final_attn, &tp->fin, tp->qd, tp->kd, keys, t, hw, a);
  tp->x5 = anew (ar, tc);
  lode_ops_add (tp->x5, queries, a, tc);
  tp->queries = anew (ar, tc);
  ln_rows_fwd (&self->final_norm, tp->x5, tp->queries, t, c);

  /* upscaling */
  tp->src = anew (ar, kc);
  lode_ops_nhwc_to_nchw (tp->src, keys, 1, c, e, e);
  tp->u1_in = anew (ar, kc);
  convt_fwd (&self->up[0], tp->src, c, c / 4, e, tp->u1_in, cols);
  lode_ops_add (tp->u1_in, tp->u1_in, emb->high_res[1], kc);
  tp->u1_ln = anew (ar, kc);
  lode_ops_layer_norm2d (tp->u1_ln, tp->u1_in, self->up_ln.w->w, self->up_ln.b->w, 1, c / 4, 4 * hw, LN2D_EPS);
  tp->g1 = anew (ar, kc);
  lode_ops_gelu (tp->g1, tp->u1_ln, kc);
  tp->u2 = anew (ar, kc * 2);
  convt_fwd (&self->up[1], tp->g1, c / 4, c / 8, 2 * e, tp->u2, cols);
  lode_ops_add (tp->u2, tp->u2, emb->high_res[0], kc * 2);
  tp->g2 = anew (ar, kc * 2);
  lode_ops_gelu (tp->g2, tp->u2, kc * 2);

  /* the first multimask output (mask token 1) and its IoU */
  mlp_fwd (ar, &self->hyper[1], &tp->hyper, tp->queries + (gsize) (s + 2) * c, 1, tp->hyper_out);
  tp->mask1 = anew (ar, (gsize) ls * ls);
  lode_ops_gemm (FALSE, FALSE, 1, ls * ls, c / 8, 1.0f, tp->hyper_out, tp->g2, 0.0f, tp->mask1);
  mlp_fwd (ar, &self->iou_head, &tp->iou, tp->queries + (gsize) s * c, 1, tp->iou_out);
}

static float
iou_value (const LodeSam2Tuner *self, const Tape *tp)
{
  float v = tp->iou_out[1];

  return self->config.iou_prediction_use_sigmoid ? 1.0f / (1.0f + expf (-v)) : v;
}

static void
backward (LodeSam2Tuner *self, Arena *ar, const Tape *tp, const LodeSam2Embedding *emb,
          const float *dmask1, float diou)
{
  int c = self->c, hw = self->hw, e = self->e, s = self->s, ls = self->ls, t = tp->t;
  gsize tc = (gsize) t * c, kc = (gsize) hw * c;
  float *dq = anew (ar, tc), *dk = anew (ar, kc), *dtok = anew (ar, tc);
  float *d1 = anew (ar, kc), *d2 = anew (ar, kc), *d3 = anew (ar, kc);
  float dh[64], diou_all[N_MASK_TOKENS] = { 0 };

  (void) emb;
  /* IoU head, output 1 */
  diou_all[1] = diou;
  if (self->config.iou_prediction_use_sigmoid)
    {
      float sg = 1.0f / (1.0f + expf (-tp->iou_out[1]));

      diou_all[1] *= sg * (1.0f - sg);
    }
  mlp_bwd (ar, &self->iou_head, &tp->iou, diou_all, 1, dq + (gsize) s * c);

  /* masks = hyper_1 . g2 */
  lode_ops_gemm (FALSE, TRUE, 1, c / 8, ls * ls, 1.0f, dmask1, tp->g2, 0.0f, dh);
  {
    float *dg2 = anew (ar, kc * 2), *du2 = anew (ar, kc * 2);

    mlp_bwd (ar, &self->hyper[1], &tp->hyper, dh, 1, dq + (gsize) (s + 2) * c);
    lode_ops_gemm (TRUE, FALSE, c / 8, ls * ls, 1, 1.0f, tp->hyper_out, dmask1, 0.0f, dg2);
    lode_grad_gelu (du2, dg2, tp->u2, kc * 2);
    convt_bwd (&self->up[1], tp->g1, du2, c / 4, c / 8, 2 * e, d1);
    lode_grad_gelu (d2, d1, tp->u1_ln, kc);
    lode_grad_layer_norm2d (d3, self->up_ln.w->g, self->up_ln.b->g, d2, tp->u1_in, self->up_ln.w->w,
                            1, c / 4, 4 * hw, LN2D_EPS);
    convt_bwd (&self->up[0], tp->src, d3, c, c / 4, e, d1);
    lode_ops_nchw_to_nhwc (dk, d1, 1, c, e, e);
  }

  /* final attention */
  {
    float *dx = anew (ar, tc), *da_q = anew (ar, tc), *da_k = anew (ar, kc), *da_v = anew (ar, kc);

    ln_rows_bwd (&self->final_norm, tp->x5, dq, dx, t, c);
    attn_bwd (self, ar, &self->final_attn, &tp->fin, dx, da_q, da_k, da_v);
    lode_ops_add (dq, dx, da_q, tc);
    lode_ops_add (dtok, dtok, da_q, tc);
    lode_ops_add (dk, dk, da_k, kc);
    lode_ops_add (dk, dk, da_v, kc);
  }

  for (int l = self->depth - 1; l >= 0; l--)
    {
      const TLayer *ly = &self->layers[l];
      const LayerTape *lt = &tp->layers[l];
      float *dxk = anew (ar, kc), *dxq = anew (ar, tc);
      float *g_kc = anew (ar, kc), *g_qc = anew (ar, tc), *g_v = anew (ar, tc);
      float *g_kb = anew (ar, kc), *g_vk = anew (ar, kc);
      float *dmlp = anew (ar, tc);

      /* norm4 and the image-to-token attention */
      ln_rows_bwd (&ly->norm[3], lt->x4, dk, dxk, hw, c);
      attn_bwd (self, ar, &ly->i2t, &lt->i2t, dxk, g_kc, g_qc, g_v);
      lode_ops_add (dk, dxk, g_kc, kc);
      lode_ops_add (dq, dq, g_qc, tc);
      lode_ops_add (dq, dq, g_v, tc);
      lode_ops_add (dtok, dtok, g_qc, tc);

      /* norm3 and the MLP */
      ln_rows_bwd (&ly->norm[2], lt->x3, dq, dxq, t, c);
      mlp_bwd (ar, &ly->mlp, &lt->mlp, dxq, t, dmlp);
      lode_ops_add (dq, dxq, dmlp, tc);

      /* norm2 and the token-to-image attention */
      ln_rows_bwd (&ly->norm[1], lt->x2, dq, dxq, t, c);
      attn_bwd (self, ar, &ly->t2i, &lt->t2i, dxq, g_qc, g_kb, g_vk);
      lode_ops_add (dq, dxq, g_qc, tc);
      lode_ops_add (dtok, dtok, g_qc, tc);
      lode_ops_add (dk, dk, g_kb, kc);
      lode_ops_add (dk, dk, g_vk, kc);

      /* norm1 and the self attention */
      ln_rows_bwd (&ly->norm[0], lt->x1, dq, dxq, t, c);
      {
        float *sq = anew (ar, tc), *sk = anew (ar, tc), *sv = anew (ar, tc);

        attn_bwd (self, ar, &ly->sa, &lt->sa, dxq, sq, sk, sv);
        lode_ops_add (sq, sq, sk, tc);     /* q and k read the same input */
        if (l == 0)
          lode_ops_add (dq, sq, sv, tc);
        else
          {
            lode_ops_add (dq, dxq, sv, tc);
            lode_ops_add (dq, dq, sq, tc);
            lode_ops_add (dtok, dtok, sq, tc);
          }
      }
    }
  lode_ops_add (dtok, dtok, dq, tc);

  /* into the tensors */
  if (s)
    lode_ops_add (self->obj_token->g, self->obj_token->g, dtok, c);
  lode_ops_add (self->iou_token->g, self->iou_token->g, dtok + (gsize) s * c, c);
  lode_ops_add (self->mask_tokens->g, self->mask_tokens->g, dtok + (gsize) (s + 1) * c,
                (gsize) N_MASK_TOKENS * c);
  lode_ops_add (self->point_embed[1]->g, self->point_embed[1]->g,
                dtok + (gsize) (s + 1 + N_MASK_TOKENS) * c, c);
  lode_ops_add (self->not_a_point->g, self->not_a_point->g,
                dtok + (gsize) (s + 2 + N_MASK_TOKENS) * c, c);
  for (int p = 0; p < hw; p++)
    lode_ops_add (self->no_mask->g, self->no_mask->g, dk + (gsize) p * c, c);
}

gboolean
lode_sam2_tuner_loss (LodeSam2Tuner           *self,
                      const LodeSam2Embedding *emb,
                      const LodeSam2Target    *targets,
                      int                      n,
                      gboolean                 accumulate,
                      double                  *loss,
                      double                  *iou,
                      GError                 **error)
{
  int c = self->c, ls = self->ls;
  double total = 0, iou_sum = 0;

  g_return_val_if_fail (self != NULL && emb != NULL && targets != NULL && n > 0, FALSE);

  if (emb->image_size != self->config.image_size || emb->d_model != c ||
      emb->embed_size != self->e)
    {
      g_set_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_EMBEDDING,
                   _("The image embedding (input size %d, width %d) does not fit the model (input size %d, width %d)"),
                   emb->image_size, emb->d_model, self->config.image_size, c);
      return FALSE;
    }
  for (int b = 0; b < n; b++)
    {
      const LodeSam2Target *tg = &targets[b];
      int W = tg->width, H = tg->height;
      gsize N = (gsize) W * H;
      Arena *ar = self->arena;
      Tape tp = { 0 };
      float *up, *dup, *dmask;
      double seg = 0, inter = 0, n_pred = 0, n_true = 0, iou_true, iou_pred, sgn;
      float size = (float) self->config.image_size;

      if (W <= 0 || H <= 0 || tg->mask == NULL)
        {
          g_set_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_PROMPT,
                       _("A SAM2 training target has no mask"));
          return FALSE;
        }
      ar->next = 0;
      forward (self, ar, &tp, emb, tg->x / (float) W * size, tg->y / (float) H * size);
      up = anew (ar, N);
      dup = anew (ar, N);
      lode_ops_resize (up, tp.mask1, 1, ls, ls, H, W, LODE_RESIZE_BILINEAR);
      seg = lode_grad_bce_sigmoid (dup, up, tg->mask, N, LOG_EPS, 1.0f / (float) n);
      for (gsize i = 0; i < N; i++)
        {
          double g = tg->mask[i] ? 1.0 : 0.0;
          gboolean in = 1.0f / (1.0f + expf (-up[i])) > 0.5f;   /* as torch in float32 */

          n_pred += in;
          n_true += g;
          inter += g * in;
        }
      iou_true = n_pred + n_true - inter > 0 ? inter / (n_pred + n_true - inter) : 0.0;
      iou_pred = iou_value (self, &tp);
      total += seg + SCORE_WEIGHT * fabs (iou_pred - iou_true);
      iou_sum += iou_true;
      if (!accumulate)
        continue;

      dmask = anew (ar, (gsize) ls * ls);
      lode_grad_resize_bilinear (dmask, dup, 1, ls, ls, H, W);
      sgn = iou_pred > iou_true ? 1.0 : (iou_pred < iou_true ? -1.0 : 0.0);
      backward (self, ar, &tp, emb, dmask, (float) (SCORE_WEIGHT * sgn / n));
    }
  if (loss)
    *loss = total / n;
  if (iou)
    *iou = iou_sum / n;
  return TRUE;
}

/* ---- saving --------------------------------------------------------------- */

gboolean
lode_sam2_tuner_save (LodeSam2Tuner *self,
                      const char    *source_path,
                      const char    *out_path,
                      GError       **error)
{
  g_autoptr(LodeCheckpoint) src = NULL;
  g_autoptr(GFile) fs = g_file_new_for_path (source_path);
  g_autoptr(GFile) fo = g_file_new_for_path (out_path);
  g_autoptr(GString) header = g_string_new ("{");
  g_autofree char *tmp = g_strconcat (out_path, ".part", NULL);
  guint64 offset = 0, hlen;
  guint n;
  FILE *f;
  gboolean ok = TRUE;

  if (g_file_equal (fs, fo))
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_EXIST,
                   _("The fine-tuned model would overwrite its source checkpoint “%s”; choose another file"),
                   source_path);
      return FALSE;
    }
  src = lode_checkpoint_open (source_path, error);
  if (src == NULL)
    return FALSE;
  n = lode_checkpoint_n_tensors (src);
  for (guint i = 0; i < n; i++)
    {
      const char *name = lode_checkpoint_name (src, i);
      int ndim = 0;
      gint64 shape[LODE_TENSOR_MAX_DIMS];
      guint64 count = 1;

      if (!lode_checkpoint_shape (src, name, &ndim, shape) || ndim > LODE_TENSOR_MAX_DIMS)
        continue;
      for (int d = 0; d < ndim; d++)
        count *= (guint64) shape[d];
      g_string_append_printf (header, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[",
                              offset || i ? "," : "", name);
      for (int d = 0; d < ndim; d++)
        g_string_append_printf (header, "%s%" G_GINT64_FORMAT, d ? "," : "", shape[d]);
      g_string_append_printf (header, "],\"data_offsets\":[%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT "]}",
                              offset, offset + 4 * count);
      offset += 4 * count;
    }
  g_string_append_c (header, '}');
  while (header->len % 8 != 0)
    g_string_append_c (header, ' ');

  f = g_fopen (tmp, "wb");
  if (f == NULL)
    {
      int err = errno;

      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (err),
                   _("Cannot write “%s”: %s"), tmp, g_strerror (err));
      return FALSE;
    }
  hlen = GUINT64_TO_LE ((guint64) header->len);
  ok = fwrite (&hlen, 8, 1, f) == 1 && fwrite (header->str, 1, header->len, f) == header->len;
  for (guint i = 0; ok && i < n; i++)
    {
      const char *name = lode_checkpoint_name (src, i);
      int ndim = 0;
      gint64 shape[LODE_TENSOR_MAX_DIMS];
      Param *p;

      if (!lode_checkpoint_shape (src, name, &ndim, shape) || ndim > LODE_TENSOR_MAX_DIMS)
        continue;
      p = g_hash_table_lookup (self->by_name, name);
      if (p != NULL)
        ok = fwrite (p->w, sizeof (float), p->n, f) == p->n;
      else
        {
          LodeTensor *t = lode_checkpoint_load (src, name, error);
          gsize count;

          if (t == NULL)
            {
              fclose (f);
              g_unlink (tmp);
              return FALSE;
            }
          count = lode_tensor_numel (t);
          ok = fwrite (t->data, sizeof (float), count, f) == count;
          lode_tensor_free (t);
        }
    }
  if (fclose (f) != 0)
    ok = FALSE;
  if (!ok || g_rename (tmp, out_path) != 0)
    {
      g_unlink (tmp);
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_IO, _("Cannot write “%s”"), out_path);
      return FALSE;
    }
  return TRUE;
}

/* ---- the job -------------------------------------------------------------- */

void
lode_sam2_sample_clear (LodeSam2Sample *s)
{
  if (s == NULL)
    return;
  g_clear_pointer (&s->embedding, lode_sam2_embedding_free);
  g_clear_pointer (&s->labels, g_free);
  s->width = s->height = 0;
}

void
lode_sam2_tune_config_init_defaults (LodeSam2TuneConfig *c)
{
  memset (c, 0, sizeof *c);
  c->steps = 100;
  c->lr = 1e-5;
  c->weight_decay = 4e-5;
  c->seed = 1;
  c->val_every = 0;
}

/* Targets of one sample: per class present (values 1..254, in increasing
 * order), its binary mask and one pixel drawn uniformly inside it. */
static int
make_targets (const LodeSam2Sample *s, GRand *rand, LodeSam2Target *out, guint8 **masks, int max)
{
  gsize N = (gsize) s->width * s->height;
  guint counts[256] = { 0 };
  int n = 0;

  for (gsize i = 0; i < N; i++)
    counts[s->labels[i]]++;
  for (int v = 1; v < 255 && n < max; v++)
    {
      guint pick, seen = 0;

      if (counts[v] == 0)
        continue;
      masks[n] = g_new (guint8, N);
      pick = (guint) g_rand_int_range (rand, 0, (gint32) counts[v]);
      for (gsize i = 0; i < N; i++)
        {
          masks[n][i] = s->labels[i] == v;
          if (masks[n][i] && seen++ == pick)
            {
              out[n].x = (float) (i % s->width);
              out[n].y = (float) (i / s->width);
            }
        }
      out[n].width = s->width;
      out[n].height = s->height;
      out[n].mask = masks[n];
      n++;
    }
  return n;
}

#define MAX_CLASSES 16

gboolean
lode_sam2_tune_validate (LodeSam2Tuner              *self,
                         const LodeSam2SampleSource *source,
                         guint32                     seed,
                         double                     *iou,
                         GError                    **error)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (seed);
  double sum = 0;
  int count = 0;

  for (guint i = 0; i < source->n_val; i++)
    {
      LodeSam2Sample s = { 0 };
      LodeSam2Target tg[MAX_CLASSES];
      guint8 *masks[MAX_CLASSES];
      int n;
      double one;
      gboolean ok = TRUE;

      if (!source->get (source->n_train + i, &s, source->user_data, error))
        return FALSE;
      n = make_targets (&s, rand, tg, masks, MAX_CLASSES);
      if (n > 0)
        {
          ok = lode_sam2_tuner_loss (self, s.embedding, tg, n, FALSE, NULL, &one, error);
          sum += one * n;
          count += n;
        }
      for (int k = 0; k < n; k++)
        g_free (masks[k]);
      lode_sam2_sample_clear (&s);
      if (!ok)
        return FALSE;
    }
  *iou = count > 0 ? sum / count : NAN;
  return TRUE;
}

gboolean
lode_sam2_tune_run (LodeSam2Tuner              *self,
                    const LodeSam2TuneConfig   *config,
                    const LodeSam2SampleSource *source,
                    LodeSam2TuneProgressFunc    progress,
                    gpointer                    progress_data,
                    GCancellable               *cancellable,
                    LodeSam2TuneResult         *result,
                    GError                    **error)
{
  g_autoptr(GRand) rand = NULL;
  gint64 start = g_get_monotonic_time ();
  int tenth, n_first = 0, n_last = 0, n_since = 0;
  double first = 0, last = 0, since = 0, val = NAN;

  g_return_val_if_fail (self != NULL && config != NULL && source != NULL && result != NULL, FALSE);

  memset (result, 0, sizeof *result);
  result->val_iou_before = result->val_iou_after = NAN;
  if (source->n_train == 0 || config->steps <= 0)
    {
      g_set_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_CONFIG,
                   _("Nothing to fine-tune SAM2 on: no training patch with a class region, or no steps"));
      return FALSE;
    }
  rand = g_rand_new_with_seed (config->seed);
  tenth = MAX (1, config->steps / 10);
  if (source->n_val > 0)
    {
      if (!lode_sam2_tune_validate (self, source, config->seed + 1, &val, error))
        return FALSE;
      result->val_iou_before = val;
    }

  for (int step = 0; step < config->steps; step++)
    {
      LodeSam2Sample s = { 0 };
      LodeSam2Target tg[MAX_CLASSES];
      guint8 *masks[MAX_CLASSES];
      guint index;
      int n;
      double loss = 0;
      gboolean ok = TRUE;

      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return FALSE;
      index = (guint) g_rand_int_range (rand, 0, (gint32) source->n_train);
      if (!source->get (index, &s, source->user_data, error))
        return FALSE;
      n = make_targets (&s, rand, tg, masks, MAX_CLASSES);
      if (n > 0)
        {
          lode_sam2_tuner_zero_grad (self);
          ok = lode_sam2_tuner_loss (self, s.embedding, tg, n, TRUE, &loss, NULL, error);
          if (ok)
            lode_sam2_tuner_step (self, config->lr, config->weight_decay);
        }
      for (int k = 0; k < n; k++)
        g_free (masks[k]);
      lode_sam2_sample_clear (&s);
      if (!ok)
        return FALSE;
      result->steps_done = step + 1;
      if (n > 0)
        {
          if (step < tenth)
            {
              first += loss;
              n_first++;
            }
          if (step >= config->steps - tenth)
            {
              last += loss;
              n_last++;
            }
          since += loss;
          n_since++;
        }
      if (config->val_every > 0 && source->n_val > 0 && (step + 1) % config->val_every == 0 &&
          step + 1 < config->steps)
        {
          if (!lode_sam2_tune_validate (self, source, config->seed + 1, &val, error))
            return FALSE;
        }
      if (progress)
        {
          LodeSam2TuneProgress p = { 0 };
          double el = (g_get_monotonic_time () - start) / 1e6;

          p.step = step + 1;
          p.steps = config->steps;
          p.loss = n_since > 0 ? since / n_since : NAN;
          p.val_iou = val;
          p.seconds_left = el / (step + 1) * (config->steps - step - 1);
          progress (&p, progress_data);
          since = 0;
          n_since = 0;
        }
    }
  result->first_loss = n_first > 0 ? first / n_first : NAN;
  result->last_loss = n_last > 0 ? last / n_last : NAN;
  if (source->n_val > 0)
    {
      if (!lode_sam2_tune_validate (self, source, config->seed + 1, &val, error))
        return FALSE;
      result->val_iou_after = val;
    }
  return TRUE;
}
