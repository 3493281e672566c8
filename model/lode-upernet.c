#define G_LOG_DOMAIN "lode-model"

#include "config.h"

#include <math.h>
#include <string.h>

#include <glib/gi18n.h>

#include "lode-ops.h"
#include "lode-upernet.h"

G_DEFINE_QUARK (lode-upernet-error-quark, lode_upernet_error)

const int lode_upernet_pool_scales[LODE_UPERNET_N_POOLS] = { 1, 2, 3, 6 };

#define BN_EPS 1e-5f
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

struct _LodeUpernet {
  LodeUpernetConfig config;
  Tensor  tensors[MAX_TENSORS];
  guint   n_tensors;
  float  *data;
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
  if (self->data == NULL)
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

static const char *
find_suffix (LodeCheckpoint *checkpoint, const char *suffix)
{
  gsize len = strlen (suffix);

  for (guint i = 0; i < lode_checkpoint_n_tensors (checkpoint); i++)
    {
      const char *name = lode_checkpoint_name (checkpoint, i);
      gsize nl = strlen (name);

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
  return find_suffix (checkpoint, "fpn1.0.weight") != NULL;
}

LodeUpernet *
lode_upernet_new_from_checkpoint (LodeCheckpoint *checkpoint, GError **error)
{
  const char *fpn1 = find_suffix (checkpoint, "decoder.fpn1.0.weight");
  const char *head = find_suffix (checkpoint, "head.head.2.weight");
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
  g_free (self->data);
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

static void
batch_norm (LodeUpernet *self, const Norm *norm, float *x, int n, int c, int hw)
{
  lode_ops_batch_norm (x, x, T (self, norm->mean), T (self, norm->var), T (self, norm->w),
                       T (self, norm->b), n, c, hw, BN_EPS);
}

/* out [n, c_out, h, w] = ReLU (BN (conv (in))), "same" padding */
static void
conv_module (LodeUpernet *self, const ConvModule *cm, const float *in, int n, int h, int w, float *out)
{
  LodeConvShape s;

  lode_conv_shape_init (&s, n, cm->c_in, h, w, cm->c_out, cm->k, 1, cm->k / 2);
  lode_ops_conv2d (out, in, T (self, cm->conv), NULL, &s);
  batch_norm (self, &cm->norm, out, n, cm->c_out, h * w);
  lode_ops_relu (out, out, (gsize) n * cm->c_out * h * w);
}

/* ConvTranspose2d(kernel 2, stride 2) with bias: [n, c_in, h, w] -> [n, c_out, 2h, 2w] */
static void
up2 (LodeUpernet *self, int weight, int bias, const float *in, int n, int c_in, int c_out, int h, int w,
     float *out)
{
  LodeConvShape s;

  lode_conv_shape_init (&s, n, c_in, h, w, c_out, 2, 2, 0);
  lode_ops_conv_transpose2d (out, in, T (self, weight), T (self, bias), &s);
}

/* Resizes each image's [c, h, w] (bilinear, corners aligned) into channel
 * slice at of an [n, c_total, oh, ow] tensor. */
static void
resize_into (float *out, int c_total, int at, const float *in, int n, int c, int h, int w, int oh, int ow)
{
  for (int b = 0; b < n; b++)
    {
      float *dst = out + ((gsize) b * c_total + at) * oh * ow;
      const float *src = in + (gsize) b * c * h * w;

      if (h == oh && w == ow)
        memcpy (dst, src, (gsize) c * h * w * sizeof (float));
      else
        lode_ops_resize (dst, src, c, h, w, oh, ow, LODE_RESIZE_BILINEAR_ALIGN_CORNERS);
    }
}

gboolean
lode_upernet_forward (LodeUpernet *self, const float *const features[4], int n, int gh, int gw, float *logits,
                      GError **error)
{
  int e, c, k;
  int hs[4], ws[4];
  float *lat[4] = { NULL };
  float *fpn[3] = { NULL };
  g_autofree float *t0 = NULL, *s0 = NULL, *s1 = NULL, *s3 = NULL, *cat = NULL, *pooled = NULL, *pconv = NULL;
  g_autofree float *cat2 = NULL, *feats = NULL;
  gsize plane;

  g_return_val_if_fail (self != NULL && features != NULL && logits != NULL && n >= 0, FALSE);
  if (gh < 2 || gw < 2)
    {
      g_set_error (error, LODE_UPERNET_ERROR, LODE_UPERNET_ERROR_SIZE,
                   _("UperNet decoder: a %d x %d token grid is too small (at least 2 x 2)"), gh, gw);
      return FALSE;
    }
  if (n == 0)
    return TRUE;
  e = self->config.embed_dim;
  c = self->config.channels;
  k = self->config.classes;
  hs[0] = 4 * gh, ws[0] = 4 * gw;
  hs[1] = 2 * gh, ws[1] = 2 * gw;
  hs[2] = gh, ws[2] = gw;
  hs[3] = gh / 2, ws[3] = gw / 2;

  /* scale modules */
  t0 = g_new (float, (gsize) n * (e / 2) * hs[1] * ws[1]);
  up2 (self, self->fpn1_0_w, self->fpn1_0_b, features[0], n, e, e / 2, gh, gw, t0);
  batch_norm (self, &self->fpn1_norm, t0, n, e / 2, hs[1] * ws[1]);
  lode_ops_gelu (t0, t0, (gsize) n * (e / 2) * hs[1] * ws[1]);
  s0 = g_new (float, (gsize) n * (e / 4) * hs[0] * ws[0]);
  up2 (self, self->fpn1_3_w, self->fpn1_3_b, t0, n, e / 2, e / 4, hs[1], ws[1], s0);
  g_clear_pointer (&t0, g_free);
  s1 = g_new (float, (gsize) n * (e / 2) * hs[1] * ws[1]);
  up2 (self, self->fpn2_0_w, self->fpn2_0_b, features[1], n, e, e / 2, gh, gw, s1);
  s3 = g_new (float, (gsize) n * e * hs[3] * ws[3]);
  lode_ops_max_pool2d (s3, features[3], n, e, gh, gw, 2, 2, 0);

  /* laterals of the three larger scales */
  for (int i = 0; i < 3; i++)
    {
      const float *src = i == 0 ? s0 : i == 1 ? s1 : features[2];

      lat[i] = g_new (float, (gsize) n * c * hs[i] * ws[i]);
      conv_module (self, &self->lateral[i], src, n, hs[i], ws[i], lat[i]);
    }
  g_clear_pointer (&s0, g_free);
  g_clear_pointer (&s1, g_free);

  /* pyramid pooling on the coarsest scale, then the bottleneck */
  plane = (gsize) hs[3] * ws[3];
  cat = g_new (float, (gsize) n * (e + LODE_UPERNET_N_POOLS * c) * plane);
  resize_into (cat, e + LODE_UPERNET_N_POOLS * c, 0, s3, n, e, hs[3], ws[3], hs[3], ws[3]);
  for (int i = 0; i < LODE_UPERNET_N_POOLS; i++)
    {
      int p = lode_upernet_pool_scales[i];

      pooled = g_renew (float, pooled, (gsize) n * e * p * p);
      pconv = g_renew (float, pconv, (gsize) n * c * p * p);
      lode_upernet_adaptive_avg_pool (pooled, s3, n * e, hs[3], ws[3], p, p);
      conv_module (self, &self->psp[i], pooled, n, p, p, pconv);
      resize_into (cat, e + LODE_UPERNET_N_POOLS * c, e + i * c, pconv, n, c, p, p, hs[3], ws[3]);
    }
  lat[3] = g_new (float, (gsize) n * c * plane);
  conv_module (self, &self->bottleneck, cat, n, hs[3], ws[3], lat[3]);
  g_clear_pointer (&cat, g_free);

  /* top-down path */
  for (int i = 3; i > 0; i--)
    {
      gsize count = (gsize) n * c * hs[i - 1] * ws[i - 1];
      g_autofree float *up = g_new (float, count);

      resize_into (up, c, 0, lat[i], n, c, hs[i], ws[i], hs[i - 1], ws[i - 1]);
      lode_ops_add (lat[i - 1], lat[i - 1], up, count);
    }

  /* FPN outputs, all at the finest scale, fused */
  cat2 = g_new (float, (gsize) n * 4 * c * hs[0] * ws[0]);
  for (int i = 0; i < 3; i++)
    {
      fpn[i] = g_new (float, (gsize) n * c * hs[i] * ws[i]);
      conv_module (self, &self->fpn_conv[i], lat[i], n, hs[i], ws[i], fpn[i]);
      resize_into (cat2, 4 * c, i * c, fpn[i], n, c, hs[i], ws[i], hs[0], ws[0]);
    }
  resize_into (cat2, 4 * c, 3 * c, lat[3], n, c, hs[3], ws[3], hs[0], ws[0]);
  feats = g_new (float, (gsize) n * c * hs[0] * ws[0]);
  conv_module (self, &self->fpn_bottleneck, cat2, n, hs[0], ws[0], feats);

  /* head: dropout is the identity at inference, then a 1x1 convolution */
  {
    LodeConvShape s;

    lode_conv_shape_init (&s, n, c, hs[0], ws[0], k, 1, 1, 0);
    lode_ops_conv2d (logits, feats, T (self, self->head_w), T (self, self->head_b), &s);
  }

  for (int i = 0; i < 4; i++)
    g_free (lat[i]);
  for (int i = 0; i < 3; i++)
    g_free (fpn[i]);
  return TRUE;
}
