#define G_LOG_DOMAIN "lode-model"

#include "config.h"

#include <math.h>
#include <string.h>

#include <glib/gi18n.h>

#include "lode-grad.h"
#include "lode-ops.h"
#include "lode-upernet.h"

G_DEFINE_QUARK (lode-upernet-error-quark, lode_upernet_error)

const int lode_upernet_pool_scales[LODE_UPERNET_N_POOLS] = { 1, 2, 3, 6 };

#define BN_EPS 1e-5f
#define BN_MOMENTUM 0.1f
#define MAX_TENSORS 96

typedef enum {
  KIND_CONV,        /* convolution weight */
  KIND_BIAS,        /* convolution bias (follows its weight) */
  KIND_NORM_WEIGHT,
  KIND_NORM_BIAS,
  KIND_RUNNING_MEAN,
  KIND_RUNNING_VAR,
} Kind;

typedef struct {
  char   *name;
  int     ndim;
  gint64  shape[4];
  gsize   offset;
  gsize   numel;
  Kind    kind;
} Tensor;

/* batch norm: indices of weight, bias, running_mean, running_var */
typedef struct {
  int w, b, mean, var;
} Norm;

/* conv (no bias) + batch norm + ReLU */
typedef struct {
  int  conv;
  Norm norm;
  int  c_in, c_out, k;
} ConvModule;

typedef struct _Acts Acts;

struct _LodeUpernet {
  LodeUpernetConfig config;
  Tensor  tensors[MAX_TENSORS];
  guint   n_tensors;
  float  *data;
  float  *grad;          /* same layout as data; zero for the buffers */
  float  *adam_m, *adam_v;
  gint64  adam_step;
  Acts   *acts;          /* kept by the last training forward */
  float  *dev;           /* the values on the device of dev_be (data on the CPU) */
  float  *dgrad;         /* the gradients there (grad on the CPU) */
  float  *dm, *dv;       /* AdamW moments there (CUDA only) */
  LodePrithviBackend dev_be;
  gsize   n_values;
  gsize   n_params;

  int         fpn1_0_w, fpn1_0_b, fpn1_3_w, fpn1_3_b, fpn2_0_w, fpn2_0_b;
  Norm        fpn1_norm;
  ConvModule  psp[LODE_UPERNET_N_POOLS];
  ConvModule  bottleneck;
  ConvModule  lateral[3];
  ConvModule  fpn_conv[3];
  ConvModule  fpn_bottleneck;
  int         head_w, head_b;
};

static int
add_tensor (LodeUpernet *self, const char *name, Kind kind, int ndim, gint64 d0, gint64 d1, gint64 d2, gint64 d3)
{
  Tensor *t = &self->tensors[self->n_tensors];
  gint64 dims[4] = { d0, d1, d2, d3 };

  g_assert (self->n_tensors < MAX_TENSORS);
  t->name = g_strdup (name);
  t->ndim = ndim;
  t->numel = 1;
  for (int i = 0; i < ndim; i++)
    {
      t->shape[i] = dims[i];
      t->numel *= (gsize) dims[i];
    }
  t->offset = self->n_values;
  t->kind = kind;
  self->n_values += t->numel;
  if (kind != KIND_RUNNING_MEAN && kind != KIND_RUNNING_VAR)
    self->n_params += t->numel;
  return (int) self->n_tensors++;
}

static Norm
add_norm (LodeUpernet *self, const char *prefix, int c)
{
  g_autofree char *w = g_strconcat (prefix, ".weight", NULL);
  g_autofree char *b = g_strconcat (prefix, ".bias", NULL);
  g_autofree char *m = g_strconcat (prefix, ".running_mean", NULL);
  g_autofree char *v = g_strconcat (prefix, ".running_var", NULL);
  Norm norm;

  norm.w = add_tensor (self, w, KIND_NORM_WEIGHT, 1, c, 0, 0, 0);
  norm.b = add_tensor (self, b, KIND_NORM_BIAS, 1, c, 0, 0, 0);
  norm.mean = add_tensor (self, m, KIND_RUNNING_MEAN, 1, c, 0, 0, 0);
  norm.var = add_tensor (self, v, KIND_RUNNING_VAR, 1, c, 0, 0, 0);
  return norm;
}

static ConvModule
add_conv_module (LodeUpernet *self, const char *prefix, int c_in, int c_out, int k)
{
  g_autofree char *conv = g_strconcat (prefix, ".conv.weight", NULL);
  g_autofree char *norm = g_strconcat (prefix, ".norm", NULL);
  ConvModule cm = { 0 };

  cm.conv = add_tensor (self, conv, KIND_CONV, 4, c_out, c_in, k, k);
  cm.norm = add_norm (self, norm, c_out);
  cm.c_in = c_in;
  cm.c_out = c_out;
  cm.k = k;
  return cm;
}

static gboolean
check_config (const LodeUpernetConfig *config, GError **error)
{
  if (config->embed_dim < 4 || config->embed_dim % 4 != 0 || config->channels < 1
      || config->classes < 1 || config->classes > 256)
    {
      g_set_error (error, LODE_UPERNET_ERROR, LODE_UPERNET_ERROR_CONFIG,
                   _("UperNet decoder: impossible configuration (width %d, %d channels, %d classes)"),
                   config->embed_dim, config->channels, config->classes);
      return FALSE;
    }
  return TRUE;
}

/* Lays out every tensor in the order of TerraTorch's state dict. */
static LodeUpernet *
layout (const LodeUpernetConfig *config)
{
  LodeUpernet *self = g_new0 (LodeUpernet, 1);
  int e = config->embed_dim, c = config->channels;
  const int lateral_in[3] = { e / 4, e / 2, e };

  self->config = *config;
  self->fpn1_0_w = add_tensor (self, "decoder.fpn1.0.weight", KIND_CONV, 4, e, e / 2, 2, 2);
  self->fpn1_0_b = add_tensor (self, "decoder.fpn1.0.bias", KIND_BIAS, 1, e / 2, 0, 0, 0);
  self->fpn1_norm = add_norm (self, "decoder.fpn1.1", e / 2);
  self->fpn1_3_w = add_tensor (self, "decoder.fpn1.3.weight", KIND_CONV, 4, e / 2, e / 4, 2, 2);
  self->fpn1_3_b = add_tensor (self, "decoder.fpn1.3.bias", KIND_BIAS, 1, e / 4, 0, 0, 0);
  self->fpn2_0_w = add_tensor (self, "decoder.fpn2.0.weight", KIND_CONV, 4, e, e / 2, 2, 2);
  self->fpn2_0_b = add_tensor (self, "decoder.fpn2.0.bias", KIND_BIAS, 1, e / 2, 0, 0, 0);
  for (int i = 0; i < LODE_UPERNET_N_POOLS; i++)
    {
      g_autofree char *p = g_strdup_printf ("decoder.psp_modules.%d.1", i);

      self->psp[i] = add_conv_module (self, p, e, c, 1);
    }
  self->bottleneck = add_conv_module (self, "decoder.bottleneck", e + LODE_UPERNET_N_POOLS * c, c, 3);
  for (int i = 0; i < 3; i++)
    {
      g_autofree char *p = g_strdup_printf ("decoder.lateral_convs.%d", i);

      self->lateral[i] = add_conv_module (self, p, lateral_in[i], c, 1);
    }
  for (int i = 0; i < 3; i++)
    {
      g_autofree char *p = g_strdup_printf ("decoder.fpn_convs.%d", i);

      self->fpn_conv[i] = add_conv_module (self, p, c, c, 3);
    }
  self->fpn_bottleneck = add_conv_module (self, "decoder.fpn_bottleneck", 4 * c, c, 3);
  self->head_w = add_tensor (self, "head.head.2.weight", KIND_CONV, 4, config->classes, c, 1, 1);
  self->head_b = add_tensor (self, "head.head.2.bias", KIND_BIAS, 1, config->classes, 0, 0, 0);
  self->data = g_try_new0 (float, self->n_values);
  self->grad = g_try_new0 (float, self->n_values);
  lode_prithvi_backend_init_cpu (&self->dev_be);
  self->dev = self->data;
  self->dgrad = self->grad;
  if (self->data == NULL || self->grad == NULL)
    {
      lode_upernet_free (self);
      return NULL;
    }
  return self;
}

static float *
T (LodeUpernet *self, int i)
{
  return self->data + self->tensors[i].offset;
}

static float *
G (LodeUpernet *self, int i)
{
  return self->grad + self->tensors[i].offset;
}

static void acts_free (Acts *a);
static void unbind (LodeUpernet *self);

static gboolean
alloc_failed (LodeUpernet *self, GError **error)
{
  if (self != NULL)
    return FALSE;
  g_set_error (error, LODE_UPERNET_ERROR, LODE_UPERNET_ERROR_CONFIG,
               _("UperNet decoder: not enough memory for the weights"));
  return TRUE;
}

LodeUpernet *
lode_upernet_new (const LodeUpernetConfig *config, guint64 seed, GError **error)
{
  LodeUpernet *self;
  guint32 seeds[2] = { (guint32) seed, (guint32) (seed >> 32) };
  g_autoptr(GRand) rng = g_rand_new_with_seed_array (seeds, 2);

  g_return_val_if_fail (config != NULL, NULL);
  if (!check_config (config, error))
    return NULL;
  self = layout (config);
  if (alloc_failed (self, error))
    return NULL;

  for (guint i = 0; i < self->n_tensors; i++)
    {
      Tensor *t = &self->tensors[i];
      float *d = T (self, (int) i);
      if (t->kind != KIND_CONV && t->kind != KIND_BIAS)
        {
          float v = t->kind == KIND_RUNNING_VAR || t->kind == KIND_NORM_WEIGHT ? 1.0f : 0.0f;

          for (gsize k = 0; k < t->numel; k++)
            d[k] = v;
        }
      else
        {
          /* a convolution weight, or the bias that follows it: PyTorch's
           * bound 1/sqrt(fan_in), fan_in = shape[1] * kh * kw of the weight */
          const Tensor *w = t->kind == KIND_CONV ? t : &self->tensors[i - 1];
          double bound = 1.0 / sqrt ((double) (w->shape[1] * w->shape[2] * w->shape[3]));

          for (gsize k = 0; k < t->numel; k++)
            d[k] = (float) g_rand_double_range (rng, -bound, bound);
        }
    }
  return self;
}

const char *
lode_upernet_checkpoint_find (LodeCheckpoint *checkpoint, const char *suffix)
{
  g_return_val_if_fail (checkpoint != NULL && suffix != NULL, NULL);
  gsize len = strlen (suffix);

  for (guint i = 0; i < lode_checkpoint_n_tensors (checkpoint); i++)
    {
      const char *name = lode_checkpoint_name (checkpoint, i);
      gsize nl = strlen (name);

      if (g_str_has_prefix (name, LODE_UPERNET_STATE_PREFIX))
        continue;
      if (nl >= len && strcmp (name + nl - len, suffix) == 0
          && (nl == len || name[nl - len - 1] == '.'))
        return name;
    }
  return NULL;
}

gboolean
lode_upernet_checkpoint_has_decoder (LodeCheckpoint *checkpoint)
{
  g_return_val_if_fail (checkpoint != NULL, FALSE);
  return lode_upernet_checkpoint_find (checkpoint, "fpn1.0.weight") != NULL;
}

LodeUpernet *
lode_upernet_new_from_checkpoint (LodeCheckpoint *checkpoint, GError **error)
{
  const char *fpn1 = lode_upernet_checkpoint_find (checkpoint, "decoder.fpn1.0.weight");
  const char *head = lode_upernet_checkpoint_find (checkpoint, "head.head.2.weight");
  g_autofree char *prefix = NULL;
  g_autofree char *head_prefix = NULL;
  g_autoptr(LodeUpernet) self = NULL;
  LodeUpernetConfig config = { 0 };
  gint64 shape[LODE_TENSOR_MAX_DIMS];
  int ndim;

  g_return_val_if_fail (checkpoint != NULL, NULL);
  if (fpn1 == NULL || head == NULL)
    {
      g_set_error (error, LODE_UPERNET_ERROR, LODE_UPERNET_ERROR_CHECKPOINT,
                   _("The checkpoint holds no UperNet decoder and head (no tensor named "
                     "“decoder.fpn1.0.weight” and “head.head.2.weight”)"));
      return NULL;
    }
  /* the prefix in front of "decoder." and of "head.head" (e.g. "model.") */
  prefix = g_strndup (fpn1, strlen (fpn1) - strlen ("decoder.fpn1.0.weight"));
  head_prefix = g_strndup (head, strlen (head) - strlen ("head.head.2.weight"));

  lode_checkpoint_shape (checkpoint, fpn1, &ndim, shape);
  if (ndim == 4)
    config.embed_dim = (int) shape[0];
  lode_checkpoint_shape (checkpoint, head, &ndim, shape);
  if (ndim == 4)
    {
      config.classes = (int) shape[0];
      config.channels = (int) shape[1];
    }
  if (!check_config (&config, error))
    return NULL;
  self = layout (&config);
  if (alloc_failed (self, error))
    return NULL;

  for (guint i = 0; i < self->n_tensors; i++)
    {
      Tensor *t = &self->tensors[i];
      gboolean is_head = g_str_has_prefix (t->name, "head.");
      g_autofree char *name = g_strconcat (is_head ? head_prefix : prefix, t->name, NULL);
      g_autoptr(LodeTensor) v = NULL;
      gboolean same = TRUE;

      if (!lode_checkpoint_shape (checkpoint, name, &ndim, shape))
        {
          g_set_error (error, LODE_UPERNET_ERROR, LODE_UPERNET_ERROR_CHECKPOINT,
                       _("The checkpoint’s UperNet decoder lacks the tensor “%s”"), name);
          return NULL;
        }
      same = ndim == t->ndim;
      for (int d = 0; same && d < ndim; d++)
        same = shape[d] == t->shape[d];
      if (!same)
        {
          g_set_error (error, LODE_UPERNET_ERROR, LODE_UPERNET_ERROR_CHECKPOINT,
                       _("The checkpoint’s tensor “%s” has a shape that does not fit an UperNet "
                         "decoder of width %d with %d channels and %d classes"),
                       name, config.embed_dim, config.channels, config.classes);
          return NULL;
        }
      v = lode_checkpoint_load (checkpoint, name, error);
      if (v == NULL)
        return NULL;
      memcpy (T (self, (int) i), v->data, t->numel * sizeof (float));
    }
  return g_steal_pointer (&self);
}

void
lode_upernet_free (LodeUpernet *self)
{
  if (self == NULL)
    return;
  for (guint i = 0; i < self->n_tensors; i++)
    g_free (self->tensors[i].name);
  g_clear_pointer (&self->acts, acts_free);
  unbind (self);
  g_free (self->data);
  g_free (self->grad);
  g_free (self->adam_m);
  g_free (self->adam_v);
  g_free (self);
}

const LodeUpernetConfig *
lode_upernet_get_config (LodeUpernet *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return &self->config;
}

guint
lode_upernet_n_tensors (LodeUpernet *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->n_tensors;
}

const char *
lode_upernet_tensor_name (LodeUpernet *self, guint i)
{
  g_return_val_if_fail (self != NULL && i < self->n_tensors, NULL);
  return self->tensors[i].name;
}

int
lode_upernet_tensor_shape (LodeUpernet *self, guint i, gint64 shape[4])
{
  g_return_val_if_fail (self != NULL && i < self->n_tensors, 0);
  memcpy (shape, self->tensors[i].shape, sizeof self->tensors[i].shape);
  return self->tensors[i].ndim;
}

gsize
lode_upernet_tensor_numel (LodeUpernet *self, guint i)
{
  g_return_val_if_fail (self != NULL && i < self->n_tensors, 0);
  return self->tensors[i].numel;
}

float *
lode_upernet_tensor_data (LodeUpernet *self, guint i)
{
  g_return_val_if_fail (self != NULL && i < self->n_tensors, NULL);
  return T (self, (int) i);
}

gboolean
lode_upernet_tensor_is_buffer (LodeUpernet *self, guint i)
{
  g_return_val_if_fail (self != NULL && i < self->n_tensors, FALSE);
  return self->tensors[i].kind == KIND_RUNNING_MEAN || self->tensors[i].kind == KIND_RUNNING_VAR;
}

int
lode_upernet_find_tensor (LodeUpernet *self, const char *name)
{
  g_return_val_if_fail (self != NULL && name != NULL, -1);
  for (guint i = 0; i < self->n_tensors; i++)
    if (g_str_equal (self->tensors[i].name, name))
      return (int) i;
  return -1;
}

gsize
lode_upernet_n_params (LodeUpernet *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->n_params;
}

/* ---- forward ------------------------------------------------------------ */

void
lode_upernet_adaptive_avg_pool (float *out, const float *in, int nc, int h, int w, int out_h, int out_w)
{
  g_return_if_fail (out != NULL && in != NULL && nc >= 0 && h > 0 && w > 0 && out_h > 0 && out_w > 0);

  for (int p = 0; p < nc; p++)
    {
      const float *plane = in + (gsize) p * h * w;

      for (int i = 0; i < out_h; i++)
        {
          int y0 = (i * h) / out_h;
          int y1 = ((i + 1) * h + out_h - 1) / out_h;

          for (int j = 0; j < out_w; j++)
            {
              int x0 = (j * w) / out_w;
              int x1 = ((j + 1) * w + out_w - 1) / out_w;
              float sum = 0.0f;

              for (int y = y0; y < y1; y++)
                for (int x = x0; x < x1; x++)
                  sum += plane[y * w + x];
              out[((gsize) p * out_h + i) * out_w + j] = sum / (float) ((y1 - y0) * (x1 - x0));
            }
        }
    }
}

/* Where output index dst of a bilinear resize samples the input (as
 * lode_ops_resize and torch compute it). */
static void
bilinear_source (int dst, int in_size, int out_size, gboolean align, int *i0, int *i1, float *frac)
{
  float src;

  if (align)
    src = (out_size > 1 ? (float) (in_size - 1) / (out_size - 1) : 0.0f) * dst;
  else
    src = MAX ((float) in_size / out_size * (dst + 0.5f) - 0.5f, 0.0f);
  *i0 = MIN ((int) src, in_size - 1);
  *i1 = *i0 + (*i0 < in_size - 1 ? 1 : 0);
  *frac = CLAMP (src - *i0, 0.0f, 1.0f);
}

void
lode_upernet_resize_backward (float *dx, const float *dy, int nc, int h, int w, int oh, int ow, gboolean align,
                 gboolean accumulate)
{
  if (!accumulate)
    memset (dx, 0, (gsize) nc * h * w * sizeof (float));
  for (int p = 0; p < nc; p++)
    {
      float *x = dx + (gsize) p * h * w;
      const float *g = dy + (gsize) p * oh * ow;

      for (int oy = 0; oy < oh; oy++)
        {
          int y0, y1;
          float fy;

          bilinear_source (oy, h, oh, align, &y0, &y1, &fy);
          for (int ox = 0; ox < ow; ox++)
            {
              int x0, x1;
              float fx, v = g[oy * ow + ox];

              bilinear_source (ox, w, ow, align, &x0, &x1, &fx);
              x[y0 * w + x0] += (1.0f - fy) * (1.0f - fx) * v;
              x[y0 * w + x1] += (1.0f - fy) * fx * v;
              x[y1 * w + x0] += fy * (1.0f - fx) * v;
              x[y1 * w + x1] += fy * fx * v;
            }
        }
    }
}

/* The activations of a ConvModule: conv output y, after norm and ReLU z,
 * the batch statistics of a training pass. */
typedef struct {
  const float *in;
  float *y, *z, *mean, *invstd;
  int h, w;
} ModuleAct;

/* Everything a forward keeps for the backward: buffers of the backend be,
 * the weights at w (the decoder's values on be's device). */
struct _Acts {
  LodePrithviBackend be;
  float *w, *g;         /* weights and gradients on be's device */
  int n, gh, gw, hs[4], ws[4];
  gboolean train;
  const float *f[4];
  float *t0a, *t0b, *t0c, *s0, *s1, *s3;
  gint32 *s3_arg;       /* where each max of the pool on feature 3 was */
  float *fpn1_mean, *fpn1_invstd;
  ModuleAct lat[3], psp[LODE_UPERNET_N_POOLS], bott, fpn[3], fb;
  float *pooled[LODE_UPERNET_N_POOLS];
  float *latsum[4];     /* laterals after the top-down additions */
  float *cat, *cat2;
  float *mask, *dropped; /* dropout on the head's input */
  float *small;         /* logits at the decoder's size */
  int out_h, out_w;
};

#define RELEASE(a, p) ((a)->be.k->release (&(a)->be, (p)), (p) = NULL)

static void
module_act_clear (Acts *a, ModuleAct *m)
{
  RELEASE (a, m->y);
  RELEASE (a, m->z);
  RELEASE (a, m->mean);
  RELEASE (a, m->invstd);
}

static void
acts_free (Acts *a)
{
  if (a == NULL)
    return;
  RELEASE (a, a->t0a), RELEASE (a, a->t0b), RELEASE (a, a->t0c);
  RELEASE (a, a->s0), RELEASE (a, a->s1), RELEASE (a, a->s3);
  a->be.k->release (&a->be, (float *) a->s3_arg);
  RELEASE (a, a->fpn1_mean), RELEASE (a, a->fpn1_invstd);
  for (int i = 0; i < 3; i++)
    {
      module_act_clear (a, &a->lat[i]);
      module_act_clear (a, &a->fpn[i]);
    }
  for (int i = 0; i < LODE_UPERNET_N_POOLS; i++)
    {
      module_act_clear (a, &a->psp[i]);
      RELEASE (a, a->pooled[i]);
    }
  module_act_clear (a, &a->bott);
  module_act_clear (a, &a->fb);
  for (int i = 0; i < 3; i++)   /* latsum[3] is bott.z */
    RELEASE (a, a->latsum[i]);
  RELEASE (a, a->cat), RELEASE (a, a->cat2), RELEASE (a, a->mask), RELEASE (a, a->dropped);
  RELEASE (a, a->small);
  g_free (a);
}

/* A weight of the pass a, and its gradient, on its device. */
static float *
W (LodeUpernet *self, Acts *a, int i)
{
  return a->w + self->tensors[i].offset;
}

static float *
GD (LodeUpernet *self, Acts *a, int i)
{
  return a->g + self->tensors[i].offset;
}

static float *
acts_alloc (Acts *a, gsize n)
{
  return a->be.k->alloc (&a->be, n);
}

static void
batch_norm (LodeUpernet *self, Acts *a, const Norm *norm, float *out, const float *in, int n, int c, int hw,
            float **mean, float **invstd)
{
  LodePrithviBackend *be = &a->be;

  if (a->train)
    {
      *mean = acts_alloc (a, c);
      *invstd = acts_alloc (a, c);
      be->k->batch_norm_train (be, out, in, W (self, a, norm->w), W (self, a, norm->b), W (self, a, norm->mean),
                               W (self, a, norm->var), *mean, *invstd, n, c, hw, BN_EPS, BN_MOMENTUM);
    }
  else
    be->k->batch_norm (be, out, in, W (self, a, norm->mean), W (self, a, norm->var), W (self, a, norm->w),
                       W (self, a, norm->b), n, c, hw, BN_EPS);
}

/* ReLU (BN (conv (in))), "same" padding: m->z [n, c_out, h, w]. */
static void
conv_module (LodeUpernet *self, Acts *a, const ConvModule *cm, const float *in, int n, int h, int w, ModuleAct *m)
{
  LodePrithviBackend *be = &a->be;
  LodeConvShape s;
  gsize count = (gsize) n * cm->c_out * h * w;

  m->in = in, m->h = h, m->w = w;
  m->y = acts_alloc (a, count);
  m->z = acts_alloc (a, count);
  lode_conv_shape_init (&s, n, cm->c_in, h, w, cm->c_out, cm->k, 1, cm->k / 2);
  be->k->conv2d (be, m->y, in, W (self, a, cm->conv), NULL, &s);
  batch_norm (self, a, &cm->norm, m->z, m->y, n, cm->c_out, h * w, &m->mean, &m->invstd);
  be->k->relu (be, m->z, m->z, count);
  if (!a->train)
    RELEASE (a, m->y);
}

/* ConvTranspose2d(kernel 2, stride 2) with bias: [n, c_in, h, w] -> [n, c_out, 2h, 2w] */
static void
up2 (LodeUpernet *self, Acts *a, int weight, int bias, const float *in, int n, int c_in, int c_out, int h, int w,
     float *out)
{
  LodeConvShape s;

  lode_conv_shape_init (&s, n, c_in, h, w, c_out, 2, 2, 0);
  a->be.k->conv_transpose2d (&a->be, out, in, W (self, a, weight), W (self, a, bias), &s);
}

/* Resizes each image's [c, h, w] (bilinear, corners aligned) into channel
 * slice at of an [n, c_total, oh, ow] tensor. */
static void
resize_into (LodePrithviBackend *be, float *out, int c_total, int at, const float *in, int n, int c, int h, int w,
             int oh, int ow)
{
  for (int b = 0; b < n; b++)
    {
      float *dst = out + ((gsize) b * c_total + at) * oh * ow;
      const float *src = in + (gsize) b * c * h * w;

      if (h == oh && w == ow)
        be->k->copy (be, dst, src, (gsize) c * h * w);
      else
        be->k->resize (be, dst, src, c, h, w, oh, ow, LODE_RESIZE_BILINEAR_ALIGN_CORNERS);
    }
}

/* Backward of resize_into: dx [n, c, h, w] overwritten from the channel
 * slice at of dout [n, c_total, oh, ow]. */
static void
resize_from (LodePrithviBackend *be, float *dx, const float *dout, int c_total, int at, int n, int c, int h, int w,
             int oh, int ow)
{
  for (int b = 0; b < n; b++)
    {
      const float *src = dout + ((gsize) b * c_total + at) * oh * ow;
      float *dst = dx + (gsize) b * c * h * w;

      if (h == oh && w == ow)
        be->k->copy (be, dst, src, (gsize) c * h * w);
      else
        be->k->resize_backward (be, dst, src, c, h, w, oh, ow, TRUE, FALSE);
    }
}

/* Frees the device copies; the decoder is back on the CPU. */
static void
unbind (LodeUpernet *self)
{
  if (self->dev_be.k != NULL && self->dev_be.kind != LODE_DEVICE_CPU)
    {
      self->dev_be.k->unmirror (&self->dev_be, self->dev);
      self->dev_be.k->unmirror (&self->dev_be, self->dgrad);
      self->dev_be.k->release (&self->dev_be, self->dm);
      self->dev_be.k->release (&self->dev_be, self->dv);
    }
  self->dm = self->dv = NULL;
  self->dev = self->data;
  self->dgrad = self->grad;
  lode_prithvi_backend_init_cpu (&self->dev_be);
}

static gboolean
check_grid (int gh, int gw, GError **error)
{
  if (gh >= 2 && gw >= 2)
    return TRUE;
  g_set_error (error, LODE_UPERNET_ERROR, LODE_UPERNET_ERROR_SIZE,
               _("UperNet decoder: a %d x %d token grid is too small (at least 2 x 2)"), gh, gw);
  return FALSE;
}

/* The forward pass into a->small [n, K, 4 gh, 4 gw] through the kernels of
 * be, with the weights at w on its device; failures stay in the returned
 * acts' backend (copied back into be). */
static Acts *
run_forward (LodeUpernet *self, LodePrithviBackend *be, float *w, const float *const features[4], int n, int gh,
             int gw, gboolean train, float dropout, guint64 dropout_seed)
{
  Acts *a = g_new0 (Acts, 1);
  const LodePrithviKernels *K = be->k;
  int e = self->config.embed_dim, c = self->config.channels, k = self->config.classes;
  int *hs = a->hs, *ws = a->ws;
  gsize plane;
  LodePrithviBackend *ab = &a->be;

  a->be = *be;
  a->w = w;
  a->n = n, a->gh = gh, a->gw = gw, a->train = train;
  memcpy (a->f, features, sizeof a->f);
  hs[0] = 4 * gh, ws[0] = 4 * gw;
  hs[1] = 2 * gh, ws[1] = 2 * gw;
  hs[2] = gh, ws[2] = gw;
  hs[3] = gh / 2, ws[3] = gw / 2;

  /* scale modules */
  plane = (gsize) hs[1] * ws[1];
  a->t0a = acts_alloc (a, (gsize) n * (e / 2) * plane);
  a->t0b = acts_alloc (a, (gsize) n * (e / 2) * plane);
  a->t0c = acts_alloc (a, (gsize) n * (e / 2) * plane);
  up2 (self, a, self->fpn1_0_w, self->fpn1_0_b, features[0], n, e, e / 2, gh, gw, a->t0a);
  batch_norm (self, a, &self->fpn1_norm, a->t0b, a->t0a, n, e / 2, (int) plane, &a->fpn1_mean, &a->fpn1_invstd);
  K->gelu (ab, a->t0c, a->t0b, (gsize) n * (e / 2) * plane);
  a->s0 = acts_alloc (a, (gsize) n * (e / 4) * hs[0] * ws[0]);
  up2 (self, a, self->fpn1_3_w, self->fpn1_3_b, a->t0c, n, e / 2, e / 4, hs[1], ws[1], a->s0);
  a->s1 = acts_alloc (a, (gsize) n * (e / 2) * plane);
  up2 (self, a, self->fpn2_0_w, self->fpn2_0_b, features[1], n, e, e / 2, gh, gw, a->s1);
  a->s3 = acts_alloc (a, (gsize) n * e * hs[3] * ws[3]);
  if (train)
    {
      a->s3_arg = (gint32 *) acts_alloc (a, (gsize) n * e * hs[3] * ws[3]);
      K->max_pool2d_train (ab, a->s3, (float *) a->s3_arg, features[3], n, e, gh, gw, 2, 2, 0);
    }
  else
    K->max_pool2d (ab, a->s3, features[3], n, e, gh, gw, 2, 2, 0);

  /* laterals of the three larger scales */
  for (int i = 0; i < 3; i++)
    conv_module (self, a, &self->lateral[i], i == 0 ? a->s0 : i == 1 ? a->s1 : features[2], n, hs[i], ws[i],
                 &a->lat[i]);

  /* pyramid pooling on the coarsest scale, then the bottleneck */
  plane = (gsize) hs[3] * ws[3];
  a->cat = acts_alloc (a, (gsize) n * (e + LODE_UPERNET_N_POOLS * c) * plane);
  resize_into (ab, a->cat, e + LODE_UPERNET_N_POOLS * c, 0, a->s3, n, e, hs[3], ws[3], hs[3], ws[3]);
  for (int i = 0; i < LODE_UPERNET_N_POOLS; i++)
    {
      int p = lode_upernet_pool_scales[i];

      a->pooled[i] = acts_alloc (a, (gsize) n * e * p * p);
      K->adaptive_avg_pool (ab, a->pooled[i], a->s3, n * e, hs[3], ws[3], p, p);
      conv_module (self, a, &self->psp[i], a->pooled[i], n, p, p, &a->psp[i]);
      resize_into (ab, a->cat, e + LODE_UPERNET_N_POOLS * c, e + i * c, a->psp[i].z, n, c, p, p, hs[3], ws[3]);
    }
  conv_module (self, a, &self->bottleneck, a->cat, n, hs[3], ws[3], &a->bott);
  a->latsum[3] = a->bott.z;

  /* top-down path */
  for (int i = 3; i > 0; i--)
    {
      gsize count = (gsize) n * c * hs[i - 1] * ws[i - 1];

      a->latsum[i - 1] = acts_alloc (a, count);
      resize_into (ab, a->latsum[i - 1], c, 0, a->latsum[i], n, c, hs[i], ws[i], hs[i - 1], ws[i - 1]);
      K->add (ab, a->latsum[i - 1], a->latsum[i - 1], a->lat[i - 1].z, count);
    }

  /* FPN outputs, all at the finest scale, fused */
  a->cat2 = acts_alloc (a, (gsize) n * 4 * c * hs[0] * ws[0]);
  for (int i = 0; i < 3; i++)
    {
      conv_module (self, a, &self->fpn_conv[i], a->latsum[i], n, hs[i], ws[i], &a->fpn[i]);
      resize_into (ab, a->cat2, 4 * c, i * c, a->fpn[i].z, n, c, hs[i], ws[i], hs[0], ws[0]);
    }
  resize_into (ab, a->cat2, 4 * c, 3 * c, a->latsum[3], n, c, hs[3], ws[3], hs[0], ws[0]);
  conv_module (self, a, &self->fpn_bottleneck, a->cat2, n, hs[0], ws[0], &a->fb);

  /* head: dropout (training only; the mask drawn on the host), then a 1x1
   * convolution */
  plane = (gsize) hs[0] * ws[0];
  if (train && dropout > 0.0f)
    {
      gsize count = (gsize) n * c * plane;
      guint32 seeds[2] = { (guint32) dropout_seed, (guint32) (dropout_seed >> 32) };
      g_autoptr(GRand) rng = g_rand_new_with_seed_array (seeds, 2);
      g_autofree float *mask = g_new (float, count);

      a->mask = acts_alloc (a, count);
      a->dropped = acts_alloc (a, count);
      for (gsize i = 0; i < count; i++)
        mask[i] = g_rand_double (rng) < dropout ? 0.0f : 1.0f / (1.0f - dropout);
      K->upload (ab, a->mask, mask, count);
      K->mul (ab, a->dropped, a->fb.z, a->mask, count);
    }
  a->small = acts_alloc (a, (gsize) n * k * plane);
  {
    LodeConvShape s;

    lode_conv_shape_init (&s, n, c, hs[0], ws[0], k, 1, 1, 0);
    K->conv2d (ab, a->small, a->dropped ? a->dropped : a->fb.z, W (self, a, self->head_w), W (self, a, self->head_b),
               &s);
  }
  if (be->status == 0)
    be->status = ab->status;
  return a;
}

gboolean
lode_upernet_bind (LodeUpernet *self, LodePrithviBackend *be, GError **error)
{
  LodePrithviBackend run;

  g_return_val_if_fail (self != NULL && be != NULL, FALSE);
  g_clear_pointer (&self->acts, acts_free);
  unbind (self);
  if (be->kind == LODE_DEVICE_CPU)
    return TRUE;
  run = lode_prithvi_backend_run (be);
  self->dev = run.k->mirror (&run, self->data, self->n_values);
  self->dgrad = run.k->mirror (&run, self->grad, self->n_values);
  self->dev_be = run;
  /* moments from earlier steps (or a checkpoint) go along */
  if (self->adam_m != NULL)
    {
      self->dm = run.k->alloc (&run, self->n_values);
      self->dv = run.k->alloc (&run, self->n_values);
      if (self->dm != NULL && self->dv != NULL)
        {
          run.k->upload (&run, self->dm, self->adam_m, self->n_values);
          run.k->upload (&run, self->dv, self->adam_v, self->n_values);
        }
    }
  if (!lode_prithvi_backend_check (&run, _("load the UperNet decoder"), error))
    {
      /* still usable on the CPU */
      unbind (self);
      return FALSE;
    }
  return TRUE;
}

gboolean
lode_upernet_forward_on (LodeUpernet *self, LodePrithviBackend *be, const float *const features[4], int n, int gh,
                         int gw, float *logits, GError **error)
{
  Acts *a;

  g_return_val_if_fail (self != NULL && be != NULL && features != NULL && logits != NULL && n >= 0, FALSE);
  g_return_val_if_fail (self->dev != NULL && self->dev_be.k == be->k, FALSE);
  if (!check_grid (gh, gw, error))
    return FALSE;
  if (n == 0)
    return TRUE;
  a = run_forward (self, be, self->dev, features, n, gh, gw, FALSE, 0.0f, 0);
  be->k->copy (be, logits, a->small, (gsize) n * self->config.classes * 16 * gh * gw);
  acts_free (a);
  return TRUE;
}

gboolean
lode_upernet_forward (LodeUpernet *self, const float *const features[4], int n, int gh, int gw, float *logits,
                      GError **error)
{
  LodePrithviBackend cpu;
  Acts *a;

  g_return_val_if_fail (self != NULL && features != NULL && logits != NULL && n >= 0, FALSE);
  if (!check_grid (gh, gw, error))
    return FALSE;
  if (n == 0)
    return TRUE;
  lode_prithvi_backend_init_cpu (&cpu);
  a = run_forward (self, &cpu, self->data, features, n, gh, gw, FALSE, 0.0f, 0);
  cpu.k->download (&cpu, logits, a->small, (gsize) n * self->config.classes * 16 * gh * gw);
  acts_free (a);
  return lode_prithvi_backend_check (&cpu, _("run the UperNet decoder"), error);
}

/* ---- training ----------------------------------------------------------- */

gboolean
lode_upernet_forward_train (LodeUpernet *self, const float *const features[4], int n, int gh, int gw,
                            float dropout, guint64 dropout_seed, int out_h, int out_w, float *logits,
                            GError **error)
{
  LodePrithviBackend cpu;
  int k;

  g_return_val_if_fail (self != NULL && features != NULL && logits != NULL, FALSE);
  g_return_val_if_fail (dropout >= 0.0f && dropout < 1.0f && out_h > 0 && out_w > 0, FALSE);
  if (!check_grid (gh, gw, error))
    return FALSE;
  if (n < 2)
    {
      g_set_error (error, LODE_UPERNET_ERROR, LODE_UPERNET_ERROR_SIZE,
                   _("UperNet decoder: training needs batches of at least 2 patches (batch statistics)"));
      return FALSE;
    }
  k = self->config.classes;
  g_clear_pointer (&self->acts, acts_free);
  /* training runs on the host (the backward reads the activations) */
  lode_prithvi_backend_init_cpu (&cpu);
  self->acts = run_forward (self, &cpu, self->data, features, n, gh, gw, TRUE, dropout, dropout_seed);
  self->acts->g = self->grad;
  if (!lode_prithvi_backend_check (&cpu, _("train the UperNet decoder"), error))
    {
      g_clear_pointer (&self->acts, acts_free);
      return FALSE;
    }
  self->acts->out_h = out_h, self->acts->out_w = out_w;
  if (out_h == 4 * gh && out_w == 4 * gw)
    memcpy (logits, self->acts->small, (gsize) n * k * out_h * out_w * sizeof (float));
  else
    lode_ops_resize (logits, self->acts->small, n * k, 4 * gh, 4 * gw, out_h, out_w, LODE_RESIZE_BILINEAR);
  return TRUE;
}

gboolean
lode_upernet_forward_train_on (LodeUpernet *self, LodePrithviBackend *be, const float *const features[4], int n,
                               int gh, int gw, float dropout, guint64 dropout_seed, int out_h, int out_w,
                               float *logits, GError **error)
{
  int k;

  g_return_val_if_fail (self != NULL && be != NULL && features != NULL && logits != NULL, FALSE);
  g_return_val_if_fail (dropout >= 0.0f && dropout < 1.0f && out_h > 0 && out_w > 0, FALSE);
  g_return_val_if_fail (self->dev_be.k == be->k, FALSE);
  if (!check_grid (gh, gw, error))
    return FALSE;
  if (n < 2)
    {
      g_set_error (error, LODE_UPERNET_ERROR, LODE_UPERNET_ERROR_SIZE,
                   _("UperNet decoder: training needs batches of at least 2 patches (batch statistics)"));
      return FALSE;
    }
  k = self->config.classes;
  g_clear_pointer (&self->acts, acts_free);
  self->acts = run_forward (self, be, self->dev, features, n, gh, gw, TRUE, dropout, dropout_seed);
  self->acts->g = self->dgrad;
  self->acts->out_h = out_h, self->acts->out_w = out_w;
  if (out_h == 4 * gh && out_w == 4 * gw)
    be->k->copy (be, logits, self->acts->small, (gsize) n * k * out_h * out_w);
  else
    be->k->resize (be, logits, self->acts->small, n * k, 4 * gh, 4 * gw, out_h, out_w, LODE_RESIZE_BILINEAR);
  return TRUE;
}

/* Backward of a ConvModule from dz (overwritten); dx (NULL: not wanted) is
 * overwritten, or added to when accumulate. */
static void
conv_module_backward (LodeUpernet *self, Acts *a, const ConvModule *cm, const ModuleAct *m, int n, float *dz,
                      float *dx, gboolean accumulate)
{
  LodePrithviBackend *be = &a->be;
  gsize count = (gsize) n * cm->c_out * m->h * m->w;
  LodeConvShape s;

  be->k->grad_relu (be, dz, dz, m->z, count);
  be->k->grad_batch_norm (be, dz, GD (self, a, cm->norm.w), GD (self, a, cm->norm.b), dz, m->y, m->mean, m->invstd,
                          W (self, a, cm->norm.w), n, cm->c_out, m->h * m->w);
  lode_conv_shape_init (&s, n, cm->c_in, m->h, m->w, cm->c_out, cm->k, 1, cm->k / 2);
  be->k->grad_conv2d (be, dx, GD (self, a, cm->conv), NULL, dz, m->in, W (self, a, cm->conv), &s, accumulate);
}

void
lode_upernet_up2_backward (float *dweight, float *dbias, float *dx, const float *x, const float *dy,
                           const float *weight, int n, int c_in, int c_out, int h, int w)
{
  gsize hw = (gsize) h * w;
  g_autofree float *d = g_new (float, (gsize) c_out * 4 * hw);

  for (int b = 0; b < n; b++)
    {
      const float *g = dy + (gsize) b * c_out * 4 * hw;

      for (int co = 0; co < c_out; co++)
        for (int ky = 0; ky < 2; ky++)
          for (int kx = 0; kx < 2; kx++)
            {
              float *row = d + ((gsize) co * 4 + ky * 2 + kx) * hw;

              for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++)
                  row[i * w + j] = g[((gsize) co * 2 * h + 2 * i + ky) * 2 * w + 2 * j + kx];
            }
      for (int co = 0; co < c_out; co++)
        {
          double sum = 0.0;

          for (gsize p = 0; p < 4 * hw; p++)
            sum += d[co * 4 * hw + p];
          dbias[co] += (float) sum;
        }
      lode_ops_gemm (FALSE, TRUE, c_in, c_out * 4, (int) hw, 1.0f, x + (gsize) b * c_in * hw, d, 1.0f, dweight);
      if (dx != NULL)
        lode_ops_gemm (FALSE, FALSE, c_in, (int) hw, c_out * 4, 1.0f, weight, d, 0.0f, dx + (gsize) b * c_in * hw);
    }
}

/* up2's backward for the decoder's tensors weight and bias. */
static void
up2_backward (LodeUpernet *self, Acts *a, int weight, int bias, const float *x, const float *dy, int n, int c_in,
              int c_out, int h, int w, float *dx)
{
  a->be.k->up2_backward (&a->be, GD (self, a, weight), GD (self, a, bias), dx, x, dy, W (self, a, weight), n, c_in,
                         c_out, h, w);
}

void
lode_upernet_adaptive_avg_pool_backward (float *dx, const float *dy, int nc, int h, int w, int out_h, int out_w)
{
  for (int p = 0; p < nc; p++)
    {
      float *plane = dx + (gsize) p * h * w;

      for (int i = 0; i < out_h; i++)
        {
          int y0 = (i * h) / out_h;
          int y1 = ((i + 1) * h + out_h - 1) / out_h;

          for (int j = 0; j < out_w; j++)
            {
              int x0 = (j * w) / out_w;
              int x1 = ((j + 1) * w + out_w - 1) / out_w;
              float g = dy[((gsize) p * out_h + i) * out_w + j] / (float) ((y1 - y0) * (x1 - x0));

              for (int y = y0; y < y1; y++)
                for (int x = x0; x < x1; x++)
                  plane[y * w + x] += g;
            }
        }
    }
}

/* The backward of the training forward a through its backend's kernels:
 * dlogits and dfeatures are its buffers. */
static void
backward_run (LodeUpernet *self, Acts *a, const float *dlogits, float *const dfeatures[4])
{
  LodePrithviBackend *be = &a->be;
  const LodePrithviKernels *K = be->k;
  int n, e, c, k, *hs, *ws;
  gsize p0;
  float *dsmall, *dfb, *dcat2, *dcat, *dlat[4] = { NULL }, *dz = NULL, *ds0, *ds1, *dt0, *ds3 = NULL;
  float *dpooled = NULL;

  n = a->n, e = self->config.embed_dim, c = self->config.channels, k = self->config.classes;
  hs = a->hs, ws = a->ws;
  p0 = (gsize) hs[0] * ws[0];

  /* back to the decoder's size, then the head and dropout */
  dsmall = acts_alloc (a, (gsize) n * k * p0);
  if (a->out_h == hs[0] && a->out_w == ws[0])
    K->copy (be, dsmall, dlogits, (gsize) n * k * p0);
  else
    K->resize_backward (be, dsmall, dlogits, n * k, hs[0], ws[0], a->out_h, a->out_w, FALSE, FALSE);
  dfb = acts_alloc (a, (gsize) n * c * p0);
  {
    LodeConvShape s;

    lode_conv_shape_init (&s, n, c, hs[0], ws[0], k, 1, 1, 0);
    K->grad_conv2d (be, dfb, GD (self, a, self->head_w), GD (self, a, self->head_b), dsmall,
                    a->dropped ? a->dropped : a->fb.z, W (self, a, self->head_w), &s, FALSE);
  }
  RELEASE (a, dsmall);
  if (a->mask != NULL)
    K->mul (be, dfb, dfb, a->mask, (gsize) n * c * p0);

  /* fused FPN outputs */
  dcat2 = acts_alloc (a, (gsize) n * 4 * c * p0);
  conv_module_backward (self, a, &self->fpn_bottleneck, &a->fb, n, dfb, dcat2, FALSE);
  RELEASE (a, dfb);
  for (int i = 0; i < 4; i++)
    dlat[i] = acts_alloc (a, (gsize) n * c * hs[i] * ws[i]);
  for (int i = 0; i < 3; i++)
    {
      dz = acts_alloc (a, (gsize) n * c * hs[i] * ws[i]);
      resize_from (be, dz, dcat2, 4 * c, i * c, n, c, hs[i], ws[i], hs[0], ws[0]);
      conv_module_backward (self, a, &self->fpn_conv[i], &a->fpn[i], n, dz, dlat[i], FALSE);
      RELEASE (a, dz);
    }
  resize_from (be, dlat[3], dcat2, 4 * c, 3 * c, n, c, hs[3], ws[3], hs[0], ws[0]);
  RELEASE (a, dcat2);

  /* top-down path: each sum passes its gradient to the coarser level */
  for (int i = 1; i < 4; i++)
    K->resize_backward (be, dlat[i], dlat[i - 1], n * c, hs[i], ws[i], hs[i - 1], ws[i - 1], TRUE, TRUE);

  /* bottleneck and pyramid pooling; feature 3 gets the max-pooled map's
   * gradient, from the concatenation and through the four pools */
  dcat = acts_alloc (a, (gsize) n * (e + LODE_UPERNET_N_POOLS * c) * hs[3] * ws[3]);
  conv_module_backward (self, a, &self->bottleneck, &a->bott, n, dlat[3], dcat, FALSE);
  if (dfeatures[3] != NULL)
    {
      ds3 = acts_alloc (a, (gsize) n * e * hs[3] * ws[3]);
      resize_from (be, ds3, dcat, e + LODE_UPERNET_N_POOLS * c, 0, n, e, hs[3], ws[3], hs[3], ws[3]);
    }
  for (int i = 0; i < LODE_UPERNET_N_POOLS; i++)
    {
      int p = lode_upernet_pool_scales[i];

      dz = acts_alloc (a, (gsize) n * c * p * p);
      resize_from (be, dz, dcat, e + LODE_UPERNET_N_POOLS * c, e + i * c, n, c, p, p, hs[3], ws[3]);
      if (ds3 != NULL)
        dpooled = acts_alloc (a, (gsize) n * e * p * p);
      conv_module_backward (self, a, &self->psp[i], &a->psp[i], n, dz, dpooled, FALSE);
      if (ds3 != NULL)
        K->adaptive_avg_pool_backward (be, ds3, dpooled, n * e, hs[3], ws[3], p, p);
      RELEASE (a, dz);
      RELEASE (a, dpooled);
    }
  RELEASE (a, dcat);
  if (ds3 != NULL)
    K->grad_max_pool2d (be, dfeatures[3], ds3, (const float *) a->s3_arg, n, e, a->gh, a->gw, hs[3], ws[3], FALSE);
  RELEASE (a, ds3);

  /* laterals, then the scale modules */
  ds0 = acts_alloc (a, (gsize) n * (e / 4) * p0);
  ds1 = acts_alloc (a, (gsize) n * (e / 2) * hs[1] * ws[1]);
  conv_module_backward (self, a, &self->lateral[0], &a->lat[0], n, dlat[0], ds0, FALSE);
  conv_module_backward (self, a, &self->lateral[1], &a->lat[1], n, dlat[1], ds1, FALSE);
  conv_module_backward (self, a, &self->lateral[2], &a->lat[2], n, dlat[2], dfeatures[2], FALSE);
  up2_backward (self, a, self->fpn2_0_w, self->fpn2_0_b, a->f[1], ds1, n, e, e / 2, a->gh, a->gw, dfeatures[1]);
  dt0 = acts_alloc (a, (gsize) n * (e / 2) * hs[1] * ws[1]);
  up2_backward (self, a, self->fpn1_3_w, self->fpn1_3_b, a->t0c, ds0, n, e / 2, e / 4, hs[1], ws[1], dt0);
  K->grad_gelu (be, dt0, dt0, a->t0b, (gsize) n * (e / 2) * hs[1] * ws[1]);
  K->grad_batch_norm (be, dt0, GD (self, a, self->fpn1_norm.w), GD (self, a, self->fpn1_norm.b), dt0, a->t0a,
                      a->fpn1_mean, a->fpn1_invstd, W (self, a, self->fpn1_norm.w), n, e / 2, hs[1] * ws[1]);
  up2_backward (self, a, self->fpn1_0_w, self->fpn1_0_b, a->f[0], dt0, n, e, e / 2, a->gh, a->gw, dfeatures[0]);

  RELEASE (a, ds0), RELEASE (a, ds1), RELEASE (a, dt0);
  for (int i = 0; i < 4; i++)
    RELEASE (a, dlat[i]);
}

void
lode_upernet_backward (LodeUpernet *self, const float *dlogits)
{
  float *const none[4] = { NULL, NULL, NULL, NULL };

  lode_upernet_backward_features (self, dlogits, none);
}

void
lode_upernet_backward_features (LodeUpernet *self, const float *dlogits, float *const dfeatures[4])
{
  g_return_if_fail (self != NULL && self->acts != NULL && self->acts->train && dlogits != NULL);
  g_return_if_fail (dfeatures != NULL && self->acts->be.kind == LODE_DEVICE_CPU);
  /* the CPU backend's buffers are host arrays: the caller's serve as such */
  backward_run (self, self->acts, dlogits, dfeatures);
}

gboolean
lode_upernet_backward_on (LodeUpernet *self, LodePrithviBackend *be, const float *dlogits,
                          float *const dfeatures[4])
{
  float *const none[4] = { NULL, NULL, NULL, NULL };

  g_return_val_if_fail (self != NULL && self->acts != NULL && self->acts->train && dlogits != NULL, FALSE);
  g_return_val_if_fail (self->acts->be.k == be->k, FALSE);
  backward_run (self, self->acts, dlogits, dfeatures != NULL ? dfeatures : none);
  if (be->status == 0)
    be->status = self->acts->be.status;
  self->acts->be.status = 0;
  return TRUE;
}

void
lode_upernet_release (LodeUpernet *self)
{
  g_return_if_fail (self != NULL);
  g_clear_pointer (&self->acts, acts_free);
}

float *
lode_upernet_tensor_grad (LodeUpernet *self, guint i)
{
  g_return_val_if_fail (self != NULL && i < self->n_tensors, NULL);
  if (lode_upernet_tensor_is_buffer (self, i))
    return NULL;
  return G (self, (int) i);
}

void
lode_upernet_zero_grad (LodeUpernet *self)
{
  g_return_if_fail (self != NULL);
  memset (self->grad, 0, self->n_values * sizeof (float));
}

/* The AdamW step on the parameters at data with gradients grad and
 * moments m, v, all buffers of be. */
static void
adamw_run (LodeUpernet *self, LodePrithviBackend *be, float *data, float *grad, float *m, float *v,
           const LodeAdamW *opt)
{
  self->adam_step++;
  for (guint i = 0; i < self->n_tensors; i++)
    {
      Tensor *t = &self->tensors[i];

      if (t->kind == KIND_RUNNING_MEAN || t->kind == KIND_RUNNING_VAR)
        continue;
      be->k->adamw (be, data + t->offset, grad + t->offset, m + t->offset, v + t->offset, t->numel, opt,
                    self->adam_step);
    }
}

/* The host moments, zeros when there were none. */
static void
host_moments (LodeUpernet *self)
{
  if (self->adam_m != NULL)
    return;
  self->adam_m = g_new0 (float, self->n_values);
  self->adam_v = g_new0 (float, self->n_values);
}

void
lode_upernet_adamw_step (LodeUpernet *self, const LodeAdamW *opt)
{
  LodePrithviBackend cpu;

  g_return_if_fail (self != NULL && opt != NULL);
  host_moments (self);
  lode_prithvi_backend_init_cpu (&cpu);
  adamw_run (self, &cpu, self->data, self->grad, self->adam_m, self->adam_v, opt);
}

gboolean
lode_upernet_zero_grad_on (LodeUpernet *self, LodePrithviBackend *be)
{
  g_return_val_if_fail (self != NULL && be != NULL && self->dev_be.k == be->k, FALSE);
  be->k->zero (be, self->dgrad, self->n_values);
  return TRUE;
}

gboolean
lode_upernet_adamw_step_on (LodeUpernet *self, LodePrithviBackend *be, const LodeAdamW *opt)
{
  g_return_val_if_fail (self != NULL && be != NULL && opt != NULL && self->dev_be.k == be->k, FALSE);
  if (be->kind == LODE_DEVICE_CPU)
    {
      lode_upernet_adamw_step (self, opt);
      return TRUE;
    }
  if (self->dm == NULL)
    {
      self->dm = be->k->alloc (be, self->n_values);
      self->dv = be->k->alloc (be, self->n_values);
      if (self->dm == NULL || self->dv == NULL)
        return TRUE;   /* the failure is in be */
      be->k->zero (be, self->dm, self->n_values);
      be->k->zero (be, self->dv, self->n_values);
    }
  adamw_run (self, be, self->dev, self->dgrad, self->dm, self->dv, opt);
  return TRUE;
}

float *
lode_upernet_tensor_moment (LodeUpernet *self, guint i, int which)
{
  Tensor *t;

  g_return_val_if_fail (self != NULL && i < self->n_tensors && (which == 0 || which == 1), NULL);
  t = &self->tensors[i];
  if (t->kind == KIND_RUNNING_MEAN || t->kind == KIND_RUNNING_VAR)
    return NULL;
  host_moments (self);
  return (which == 0 ? self->adam_m : self->adam_v) + t->offset;
}

gint64
lode_upernet_get_adamw_step (LodeUpernet *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->adam_step;
}

gboolean
lode_upernet_set_adamw_state (LodeUpernet *self, gint64 step, GError **error)
{
  LodePrithviBackend run;

  g_return_val_if_fail (self != NULL && step >= 0, FALSE);
  host_moments (self);
  self->adam_step = step;
  if (self->dev == self->data)
    return TRUE;
  run = lode_prithvi_backend_run (&self->dev_be);
  if (self->dm == NULL)
    {
      self->dm = run.k->alloc (&run, self->n_values);
      self->dv = run.k->alloc (&run, self->n_values);
    }
  if (self->dm != NULL && self->dv != NULL)
    {
      run.k->upload (&run, self->dm, self->adam_m, self->n_values);
      run.k->upload (&run, self->dv, self->adam_v, self->n_values);
    }
  return lode_prithvi_backend_check (&run, _("copy the AdamW moments to the GPU"), error);
}

gboolean
lode_upernet_sync_host (LodeUpernet *self, GError **error)
{
  LodePrithviBackend run;

  g_return_val_if_fail (self != NULL, FALSE);
  if (self->dev == self->data)
    return TRUE;
  run = lode_prithvi_backend_run (&self->dev_be);
  run.k->download (&run, self->data, self->dev, self->n_values);
  run.k->download (&run, self->grad, self->dgrad, self->n_values);
  if (self->dm != NULL)
    {
      host_moments (self);
      run.k->download (&run, self->adam_m, self->dm, self->n_values);
      run.k->download (&run, self->adam_v, self->dv, self->n_values);
    }
  return lode_prithvi_backend_check (&run, _("copy the UperNet decoder from the GPU"), error);
}
