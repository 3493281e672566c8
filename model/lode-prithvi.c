#define G_LOG_DOMAIN "lode-model"

#include "config.h"

#include <math.h>
#include <string.h>

#include <gio/gio.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <inttypes.h>
#include <json-glib/json-glib.h>

#include "lode-grad.h"
#include "lode-ops.h"
#include "lode-prithvi-backend.h"
#include "lode-prithvi.h"
#include "lode-vit.h"
#ifdef LODE_WITH_CUDA
#include "lode-ops-cuda.h"
#endif

G_DEFINE_QUARK (lode-prithvi-error-quark, lode_prithvi_error)

const int lode_prithvi_band_indices[LODE_PRITHVI_N_BANDS] = { 0, 1, 2, 7, 8, 9 };
const double lode_prithvi_band_mean[LODE_PRITHVI_N_BANDS] = {
  1473.81388377, 1703.35249650, 1696.67685941, 3832.39764247, 3156.11122121, 2226.06822112,
};
const double lode_prithvi_band_std[LODE_PRITHVI_N_BANDS] = {
  223.43533204, 285.53613398, 413.82320306, 389.61483882, 451.49534791, 468.26765909,
};

#define LN_EPS 1e-5f
#define DEFAULT_IMG_SIZE 224
/* images per pass of lode_prithvi_model_predict */
#define PREDICT_CHUNK 8

/* A transformer block's parameters, in LodeVitParam order. */
typedef struct {
  LodeTensor *t[LODE_VIT_N_PARAMS];
  float      *dev[LODE_VIT_N_PARAMS];  /* copies on a CUDA device, when bound */
} Block;

/* AdamW state of a block being trained: gradients and moments of its
 * parameters, parameter p at offset[p] of each array. The host arrays
 * hold what was last copied back (block_train_sync); dgrad, dm and dv are
 * their copies on the model's device (the host arrays themselves on the
 * CPU), NULL until a step binds them. */
typedef struct {
  float  *grad, *m, *v;
  float  *dgrad, *dm, *dv;
  gsize   offset[LODE_VIT_N_PARAMS + 1];
  gint64  step;
} BlockTrain;

struct _LodePrithviEncoder {
  LodePrithviConfig config;
  LodeTensor *patch_w, *patch_b, *cls, *norm_w, *norm_b;
  float       temporal_scale, location_scale;
  Block      *blocks;
  /* the weights on the device of be when it is CUDA (encoder_bind); a CPU
   * backend's buffers are the tensors themselves */
  LodePrithviBackend be;
  float      *dev_patch_w, *dev_patch_b, *dev_cls, *dev_norm_w, *dev_norm_b;
};

struct _LodePrithviModel {
  LodePrithviBackend  be;           /* the device it runs on (owns the CUDA context) */
  GMutex              lock;         /* one pass at a time on a CUDA context */
  LodePrithviEncoder *encoder;
  LodeUpernet        *decoder;
  LodePrithviPadding  padding;
  LodePrecision       precision;    /* the products and convolutions on CUDA */
  BlockTrain        **block_train;  /* [loaded_depth]: NULL for a block never trained */
};

void
lode_prithvi_options_init (LodePrithviOptions *options)
{
  g_return_if_fail (options != NULL);
  memset (options, 0, sizeof *options);
  for (int i = 0; i < 4; i++)
    options->feature_blocks[i] = -1;
}

gboolean
lode_prithvi_config_init (LodePrithviConfig *config, const char *name)
{
  static const struct {
    const char *name;
    int embed_dim, depth, heads, patch;
    gboolean coords;
  } sizes[] = {
    { "100M", 768, 12, 12, 16, FALSE },
    { "300M", 1024, 24, 16, 16, FALSE },
    { "600M", 1280, 32, 16, 14, FALSE },
    { "tiny", 192, 12, 3, 16, TRUE },
  };

  g_return_val_if_fail (config != NULL && name != NULL, FALSE);
  for (gsize i = 0; i < G_N_ELEMENTS (sizes); i++)
    if (g_ascii_strcasecmp (name, sizes[i].name) == 0)
      {
        memset (config, 0, sizeof *config);
        config->embed_dim = sizes[i].embed_dim;
        config->depth = sizes[i].depth;
        config->loaded_depth = sizes[i].depth;
        config->num_heads = sizes[i].heads;
        config->mlp_hidden = 4 * sizes[i].embed_dim;
        config->in_chans = LODE_PRITHVI_N_BANDS;
        config->patch_size = sizes[i].patch;
        config->img_size = DEFAULT_IMG_SIZE;
        config->temporal_encoding = sizes[i].coords;
        config->location_encoding = sizes[i].coords;
        for (int k = 0; k < 4; k++)
          config->feature_blocks[k] = k;
        config->size_name = sizes[i].name;
        return TRUE;
      }
  return FALSE;
}

/* ---- loading ------------------------------------------------------------ */

/* Loads prefix + name and checks its shape: dims[] of length ndim, where a
 * dimension of -1 accepts any size. */
static LodeTensor *
load (LodeCheckpoint *checkpoint, const char *prefix, const char *name, int ndim, const gint64 *dims,
      GError **error)
{
  g_autofree char *full = g_strconcat (prefix, name, NULL);
  gint64 shape[LODE_TENSOR_MAX_DIMS];
  int nd;
  gboolean ok;

  if (!lode_checkpoint_shape (checkpoint, full, &nd, shape))
    {
      g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_CHECKPOINT,
                   _("The checkpoint’s Prithvi encoder lacks the tensor “%s”"), full);
      return NULL;
    }
  ok = nd == ndim;
  for (int d = 0; ok && d < nd; d++)
    ok = dims[d] < 0 || dims[d] == shape[d];
  if (!ok)
    {
      g_autoptr(GString) want = g_string_new (NULL);
      g_autoptr(GString) got = g_string_new (NULL);

      for (int d = 0; d < ndim; d++)
        g_string_append_printf (want, "%s%" G_GINT64_FORMAT, d ? ", " : "", dims[d]);
      for (int d = 0; d < nd; d++)
        g_string_append_printf (got, "%s%" G_GINT64_FORMAT, d ? ", " : "", shape[d]);
      g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_CHECKPOINT,
                   _("The checkpoint’s tensor “%s” has shape [%s], expected [%s]"),
                   full, got->str, want->str);
      return NULL;
    }
  return lode_checkpoint_load (checkpoint, full, error);
}

static LodeTensor *
load1 (LodeCheckpoint *ckpt, const char *prefix, const char *name, gint64 d0, GError **error)
{
  return load (ckpt, prefix, name, 1, &d0, error);
}

static int
heads_for_width (int embed_dim)
{
  switch (embed_dim)
    {
    case 1280: return 16;
    case 1024: return 16;
    case 768: return 12;
    case 192: return 3;
    default: return embed_dim % 64 == 0 ? embed_dim / 64 : 0;
    }
}

static const char *
size_name (int embed_dim, int depth)
{
  if (embed_dim == 1024 && depth == 24)
    return "300M";
  if (embed_dim == 1280 && depth == 32)
    return "600M";
  if (embed_dim == 768 && depth == 12)
    return "100M";
  if (embed_dim == 192 && depth == 12)
    return "tiny";
  return "custom";
}

static void
free_block (Block *b)
{
  for (int i = 0; i < LODE_VIT_N_PARAMS; i++)
    g_clear_pointer (&b->t[i], lode_tensor_free);
}

/* The block's shape and parameters as lode-vit takes them (parameters
 * NULL while the blocks are not allocated). */
static void
vit_block (LodePrithviEncoder *self, int index, LodeVitBlock *out)
{
  out->dim = self->config.embed_dim;
  out->heads = self->config.num_heads;
  out->mlp_hidden = self->config.mlp_hidden;
  out->eps = LN_EPS;
  for (int p = 0; p < LODE_VIT_N_PARAMS; p++)
    out->param[p] = self->blocks && self->blocks[index].t[p] ? self->blocks[index].t[p]->data : NULL;
}

/* A weight of the encoder as the kernels of be take it: the tensor on the
 * CPU, its copy on a CUDA device (bound by encoder_bind). */
static const float *
weight_on (const LodePrithviBackend *be, const LodeTensor *t, const float *dev)
{
  return be->kind == LODE_DEVICE_CPU ? t->data : dev;
}

/* vit_block with the parameters on the device of be. */
static void
vit_block_on (LodePrithviEncoder *self, const LodePrithviBackend *be, int index, LodeVitBlock *out)
{
  vit_block (self, index, out);
  for (int p = 0; p < LODE_VIT_N_PARAMS; p++)
    out->param[p] = weight_on (be, self->blocks[index].t[p], self->blocks[index].dev[p]);
}

/* Frees the device copies of the weights. */
static void
encoder_unbind (LodePrithviEncoder *self)
{
  LodePrithviBackend *be = &self->be;
  float **const top[] = { &self->dev_patch_w, &self->dev_patch_b, &self->dev_cls, &self->dev_norm_w,
                          &self->dev_norm_b };

  if (be->kind == LODE_DEVICE_CPU)
    return;
  for (gsize i = 0; i < G_N_ELEMENTS (top); i++)
    {
      be->k->unmirror (be, *top[i]);
      *top[i] = NULL;
    }
  for (int b = 0; self->blocks != NULL && b < self->config.loaded_depth; b++)
    for (int p = 0; p < LODE_VIT_N_PARAMS; p++)
      {
        be->k->unmirror (be, self->blocks[b].dev[p]);
        self->blocks[b].dev[p] = NULL;
      }
  memset (be, 0, sizeof *be);
}

/* Copies the weights onto the device of be (nothing to do on the CPU). */
static gboolean
encoder_bind (LodePrithviEncoder *self, const LodePrithviBackend *be, GError **error)
{
  LodePrithviBackend run;
  LodeTensor *const top_t[] = { self->patch_w, self->patch_b, self->cls, self->norm_w, self->norm_b };
  float **const top[] = { &self->dev_patch_w, &self->dev_patch_b, &self->dev_cls, &self->dev_norm_w,
                          &self->dev_norm_b };

  encoder_unbind (self);
  if (be->kind == LODE_DEVICE_CPU)
    return TRUE;
  run = lode_prithvi_backend_run (be);
  for (gsize i = 0; i < G_N_ELEMENTS (top); i++)
    *top[i] = run.k->mirror (&run, top_t[i]->data, top_t[i]->numel);
  for (int b = 0; b < self->config.loaded_depth; b++)
    for (int p = 0; p < LODE_VIT_N_PARAMS; p++)
      self->blocks[b].dev[p] = run.k->mirror (&run, self->blocks[b].t[p]->data, self->blocks[b].t[p]->numel);
  self->be = run;
  if (!lode_prithvi_backend_check (&run, _("load the Prithvi encoder"), error))
    {
      encoder_unbind (self);
      return FALSE;
    }
  return TRUE;
}

static gboolean
load_block (LodePrithviEncoder *self, LodeCheckpoint *ckpt, const char *prefix, int index, GError **error)
{
  g_autofree char *p = g_strdup_printf ("%sblocks.%d.", prefix, index);
  Block loaded = { { NULL } };
  LodeVitBlock shape;

  vit_block (self, index, &shape);
  for (int i = 0; i < LODE_VIT_N_PARAMS; i++)
    {
      gint64 dims[2];
      int nd = lode_vit_param_shape (&shape, i, dims);

      loaded.t[i] = load (ckpt, p, lode_vit_param_name (i), nd, dims, error);
      if (loaded.t[i] == NULL)
        {
          free_block (&loaded);
          return FALSE;
        }
    }
  free_block (&self->blocks[index]);
  self->blocks[index] = loaded;
  return TRUE;
}

static gboolean
load_scale (LodeCheckpoint *ckpt, const char *prefix, const char *name, float *scale, GError **error)
{
  g_autoptr(LodeTensor) t = load1 (ckpt, prefix, name, 1, error);

  if (t == NULL)
    return FALSE;
  *scale = t->data[0];
  return TRUE;
}

LodePrithviEncoder *
lode_prithvi_encoder_new_from_checkpoint (LodeCheckpoint *checkpoint, const LodePrithviOptions *options,
                                          GError **error)
{
  g_autoptr(LodePrithviEncoder) self = NULL;
  LodePrithviOptions defaults;
  LodePrithviConfig *c;
  const char *patch = NULL;
  g_autofree char *prefix = NULL;
  g_autofree char *name = NULL;
  gint64 shape[LODE_TENSOR_MAX_DIMS];
  int nd, deepest = -1;
  gboolean default_blocks = TRUE;

  g_return_val_if_fail (checkpoint != NULL, NULL);
  if (options == NULL)
    {
      lode_prithvi_options_init (&defaults);
      options = &defaults;
    }

  patch = lode_upernet_checkpoint_find (checkpoint, "patch_embed.proj.weight");
  if (patch == NULL)
    {
      g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_CHECKPOINT,
                   _("The checkpoint holds no Prithvi encoder (no tensor named “patch_embed.proj.weight”)"));
      return NULL;
    }
  prefix = g_strndup (patch, strlen (patch) - strlen ("patch_embed.proj.weight"));

  self = g_new0 (LodePrithviEncoder, 1);
  c = &self->config;
  lode_checkpoint_shape (checkpoint, patch, &nd, shape);
  if (!((nd == 5 && shape[2] == 1 && shape[3] == shape[4]) || (nd == 4 && shape[2] == shape[3])))
    {
      g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_CHECKPOINT,
                   _("The checkpoint’s patch embedding “%s” is not a square patch of one time step"), patch);
      return NULL;
    }
  c->embed_dim = (int) shape[0];
  c->in_chans = (int) shape[1];
  c->patch_size = (int) shape[nd - 1];
  if (c->embed_dim % 16 != 0 || c->embed_dim <= 0)
    {
      g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_CHECKPOINT,
                   _("The checkpoint’s encoder width %d is not a multiple of 16"), c->embed_dim);
      return NULL;
    }
  for (c->depth = 0;; c->depth++)
    {
      g_free (name);
      name = g_strdup_printf ("%sblocks.%d.norm1.weight", prefix, c->depth);
      if (!lode_checkpoint_has (checkpoint, name))
        break;
    }
  if (c->depth == 0)
    {
      g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_CHECKPOINT,
                   _("The checkpoint’s Prithvi encoder has no transformer blocks"));
      return NULL;
    }
  g_free (name);
  name = g_strdup_printf ("%sblocks.0.mlp.fc1.weight", prefix);
  if (!lode_checkpoint_shape (checkpoint, name, &nd, shape) || nd != 2)
    {
      g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_CHECKPOINT,
                   _("The checkpoint’s Prithvi encoder lacks the tensor “%s”"), name);
      return NULL;
    }
  c->mlp_hidden = (int) shape[0];
  c->num_heads = options->num_heads > 0 ? options->num_heads : heads_for_width (c->embed_dim);
  if (c->num_heads <= 0 || c->embed_dim % c->num_heads != 0)
    {
      g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_CONFIG,
                   _("Cannot split the Prithvi encoder’s width %d into attention heads; give the number of heads"),
                   c->embed_dim);
      return NULL;
    }
  c->img_size = options->img_size > 0 ? options->img_size : DEFAULT_IMG_SIZE;
  if (c->img_size < c->patch_size)
    {
      g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_CONFIG,
                   _("The image size %d is smaller than the patch size %d"), c->img_size, c->patch_size);
      return NULL;
    }
  g_free (name);
  name = g_strconcat (prefix, "temporal_embed_enc.scale", NULL);
  c->temporal_encoding = lode_checkpoint_has (checkpoint, name);
  g_free (name);
  name = g_strconcat (prefix, "location_embed_enc.scale", NULL);
  c->location_encoding = lode_checkpoint_has (checkpoint, name);
  c->size_name = size_name (c->embed_dim, c->depth);

  for (int i = 0; i < 4; i++)
    default_blocks &= options->feature_blocks[i] < 0;
  for (int i = 0; i < 4; i++)
    {
      c->feature_blocks[i] = default_blocks ? i : options->feature_blocks[i];
      if (c->feature_blocks[i] < 0 || c->feature_blocks[i] >= c->depth)
        {
          g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_CONFIG,
                       _("The decoder cannot read block %d of an encoder with %d blocks"),
                       c->feature_blocks[i], c->depth);
          return NULL;
        }
      deepest = MAX (deepest, c->feature_blocks[i]);
    }
  c->loaded_depth = options->load_all_blocks ? c->depth : deepest + 1;

  {
    gint64 pdims[5] = { c->embed_dim, c->in_chans, 1, c->patch_size, c->patch_size };
    gint64 cls[3] = { 1, 1, c->embed_dim };
    int pnd = 0;

    lode_checkpoint_shape (checkpoint, patch, &pnd, shape);
    if (pnd == 4)
      memmove (pdims + 2, pdims + 3, 2 * sizeof (gint64));
    if (!(self->patch_w = load (checkpoint, prefix, "patch_embed.proj.weight", pnd, pdims, error))
        || !(self->patch_b = load1 (checkpoint, prefix, "patch_embed.proj.bias", c->embed_dim, error))
        || !(self->cls = load (checkpoint, prefix, "cls_token", 3, cls, error))
        || !(self->norm_w = load1 (checkpoint, prefix, "norm.weight", c->embed_dim, error))
        || !(self->norm_b = load1 (checkpoint, prefix, "norm.bias", c->embed_dim, error)))
      return NULL;
  }
  if (c->temporal_encoding
      && !load_scale (checkpoint, prefix, "temporal_embed_enc.scale", &self->temporal_scale, error))
    return NULL;
  if (c->location_encoding
      && !load_scale (checkpoint, prefix, "location_embed_enc.scale", &self->location_scale, error))
    return NULL;

  self->blocks = g_new0 (Block, c->loaded_depth);
  for (int i = 0; i < c->loaded_depth; i++)
    if (!load_block (self, checkpoint, prefix, i, error))
      return NULL;
  return g_steal_pointer (&self);
}

static LodeTensor *
generated (GRand *rng, double bound, double fill, gint64 d0, gint64 d1)
{
  gint64 shape[2] = { d0, d1 };
  LodeTensor *t = lode_tensor_new (d1 > 0 ? 2 : 1, shape);

  if (t == NULL)
    return NULL;
  for (gsize i = 0; i < t->numel; i++)
    t->data[i] = bound > 0.0 ? (float) g_rand_double_range (rng, -bound, bound) : (float) fill;
  return t;
}

static LodeTensor *
xavier (GRand *rng, gint64 out_f, gint64 in_f)
{
  return generated (rng, sqrt (6.0 / (double) (in_f + out_f)), 0.0, out_f, in_f);
}

LodePrithviEncoder *
lode_prithvi_encoder_new (const LodePrithviConfig *config, guint64 seed, GError **error)
{
  g_autoptr(LodePrithviEncoder) self = NULL;
  guint32 seeds[2] = { (guint32) seed, (guint32) (seed >> 32) };
  g_autoptr(GRand) rng = g_rand_new_with_seed_array (seeds, 2);
  LodePrithviConfig *c;
  int e, p;
  gboolean ok;

  g_return_val_if_fail (config != NULL, NULL);
  if (config->embed_dim <= 0 || config->embed_dim % 16 != 0 || config->depth <= 0 || config->num_heads <= 0
      || config->embed_dim % config->num_heads != 0 || config->mlp_hidden <= 0 || config->in_chans <= 0
      || config->patch_size <= 0 || config->img_size < config->patch_size
      || config->loaded_depth < 0 || config->loaded_depth > config->depth)
    {
      g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_CONFIG,
                   _("Impossible Prithvi configuration (width %d, %d blocks, %d heads)"),
                   config->embed_dim, config->depth, config->num_heads);
      return NULL;
    }
  for (int i = 0; i < 4; i++)
    if (config->feature_blocks[i] < 0 || config->feature_blocks[i] >= config->depth)
      {
        g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_CONFIG,
                     _("The decoder cannot read block %d of an encoder with %d blocks"),
                     config->feature_blocks[i], config->depth);
        return NULL;
      }
  self = g_new0 (LodePrithviEncoder, 1);
  self->config = *config;
  c = &self->config;
  if (c->loaded_depth == 0)
    c->loaded_depth = c->depth;
  if (c->size_name == NULL)
    c->size_name = size_name (c->embed_dim, c->depth);
  e = c->embed_dim, p = c->patch_size;
  self->temporal_scale = 0.1f;
  self->location_scale = 0.1f;
  self->blocks = g_new0 (Block, c->loaded_depth);

  ok = (self->patch_w = xavier (rng, e, (gint64) c->in_chans * p * p))
    && (self->patch_b = generated (rng, 0.0, 0.0, e, 0))
    && (self->cls = generated (rng, 0.02, 0.0, e, 0))
    && (self->norm_w = generated (rng, 0.0, 1.0, e, 0))
    && (self->norm_b = generated (rng, 0.0, 0.0, e, 0));
  for (int i = 0; ok && i < c->loaded_depth; i++)
    {
      LodeVitBlock shape;

      vit_block (self, i, &shape);
      /* norms 1 and 0, linear layers Xavier uniform with zero biases */
      for (int t = 0; ok && t < LODE_VIT_N_PARAMS; t++)
        {
          gint64 dims[2];
          int nd = lode_vit_param_shape (&shape, t, dims);
          Block *b = &self->blocks[i];

          if (nd == 2)
            b->t[t] = xavier (rng, dims[0], dims[1]);
          else
            b->t[t] = generated (rng, 0.0, t == LODE_VIT_NORM1_WEIGHT || t == LODE_VIT_NORM2_WEIGHT ? 1.0 : 0.0,
                                 dims[0], 0);
          ok = b->t[t] != NULL;
        }
    }
  if (!ok)
    {
      g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_MEMORY,
                   _("Not enough memory for the weights of a Prithvi encoder of width %d"), e);
      return NULL;
    }
  return g_steal_pointer (&self);
}

void
lode_prithvi_encoder_free (LodePrithviEncoder *self)
{
  if (self == NULL)
    return;
  encoder_unbind (self);
  if (self->blocks != NULL)
    for (int i = 0; i < self->config.loaded_depth; i++)
      free_block (&self->blocks[i]);
  g_free (self->blocks);
  lode_tensor_free (self->patch_w);
  lode_tensor_free (self->patch_b);
  lode_tensor_free (self->cls);
  lode_tensor_free (self->norm_w);
  lode_tensor_free (self->norm_b);
  g_free (self);
}

const LodePrithviConfig *
lode_prithvi_encoder_get_config (LodePrithviEncoder *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return &self->config;
}

void
lode_prithvi_encoder_grid (LodePrithviEncoder *self, int h, int w, int *gh, int *gw)
{
  g_return_if_fail (self != NULL);
  if (gh != NULL)
    *gh = h / self->config.patch_size;
  if (gw != NULL)
    *gw = w / self->config.patch_size;
}

/* ---- position and coordinate encodings ---------------------------------- */

/* The 1-D sin-cos embedding of position pos in dim values (dim even):
 * [sin (pos w_k), cos (pos w_k)], w_k = 10000^(-k / (dim/2)), in double
 * as numpy computes the fixed table. */
static void
sincos_1d (double *out, int dim, double pos)
{
  int half = dim / 2;

  for (int k = 0; k < half; k++)
    {
      double omega = 1.0 / pow (10000.0, (double) k / (dim / 2.0));

      out[k] = sin (pos * omega);
      out[half + k] = cos (pos * omega);
    }
}

/* The same in float32 as torch computes the coordinate encodings. */
static void
sincos_1d_f (float *out, int dim, float pos, float scale)
{
  int half = dim / 2;

  for (int k = 0; k < half; k++)
    {
      float omega = 1.0f / powf (10000.0f, (float) k / (float) (dim / 2.0));
      float arg = pos * omega;

      out[k] += scale * sinf (arg);
      out[half + k] += scale * cosf (arg);
    }
}

/* The fixed table of a (1, g, g) grid, channel-major: out [E, g, g]; the
 * width is split into columns (6/16), rows (6/16) and time (4/16). */
static void
pos_table (float *out, int e, int g)
{
  int wd = e / 16 * 6, hd = e / 16 * 6, td = e / 16 * 4;
  g_autofree double *col = g_new (double, wd);
  g_autofree double *row = g_new (double, hd);
  g_autofree double *t0 = g_new (double, td);
  gsize plane = (gsize) g * g;

  sincos_1d (t0, td, 0.0);
  for (int i = 0; i < g; i++)
    {
      sincos_1d (row, hd, i);
      for (int j = 0; j < g; j++)
        {
          gsize p = (gsize) i * g + j;

          sincos_1d (col, wd, j);
          for (int k = 0; k < wd; k++)
            out[k * plane + p] = (float) col[k];
          for (int k = 0; k < hd; k++)
            out[(wd + k) * plane + p] = (float) row[k];
          for (int k = 0; k < td; k++)
            out[(wd + hd + k) * plane + p] = (float) t0[k];
        }
    }
}

static float
cubic1 (float x, float a)
{
  return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f;
}

static float
cubic2 (float x, float a)
{
  return ((a * x - 5.0f * a) * x + 8.0f * a) * x - 4.0f * a;
}

static void
cubic_coefficients (float t, float c[4])
{
  const float a = -0.75f;

  c[0] = cubic2 (t + 1.0f, a);
  c[1] = cubic1 (t, a);
  c[2] = cubic1 (1.0f - t, a);
  c[3] = cubic2 (2.0f - t, a);
}

/* Source index and fraction of output index i, bicubic with corners aligned. */
static void
cubic_source (int i, int in, int out, int *index, float *t)
{
  float scale = out > 1 ? (float) (in - 1) / (float) (out - 1) : 0.0f;
  float real = scale * (float) i;

  *index = MIN ((int) floorf (real), in - 1);
  *t = CLAMP (real - (float) *index, 0.0f, 1.0f);
}

/* F.interpolate(mode='bicubic', align_corners=True) of planes [nc, g, g]
 * to [nc, oh, ow]. */
static void
bicubic (float *out, const float *in, int nc, int g, int oh, int ow)
{
  for (int y = 0; y < oh; y++)
    {
      int iy;
      float ty, cy[4];

      cubic_source (y, g, oh, &iy, &ty);
      cubic_coefficients (ty, cy);
      for (int x = 0; x < ow; x++)
        {
          int ix;
          float tx, cx[4];

          cubic_source (x, g, ow, &ix, &tx);
          cubic_coefficients (tx, cx);
          for (int p = 0; p < nc; p++)
            {
              const float *plane = in + (gsize) p * g * g;
              float v = 0.0f;

              for (int a = 0; a < 4; a++)
                {
                  int yy = CLAMP (iy - 1 + a, 0, g - 1);
                  float rowv = 0.0f;

                  for (int b = 0; b < 4; b++)
                    rowv += plane[yy * g + CLAMP (ix - 1 + b, 0, g - 1)] * cx[b];
                  v += rowv * cy[a];
                }
              out[((gsize) p * oh + y) * ow + x] = v;
            }
        }
    }
}

/* The position encodings of the patch tokens of a gh x gw grid, token-major
 * [gh gw, E] (the class token's is zero). */
static float *
patch_pos_embed (LodePrithviEncoder *self, int gh, int gw)
{
  int e = self->config.embed_dim;
  int g = self->config.img_size / self->config.patch_size;
  g_autofree float *table = g_new (float, (gsize) e * g * g);
  g_autofree float *grid = NULL;
  float *out = g_new (float, (gsize) gh * gw * e);
  const float *src = table;

  pos_table (table, e, g);
  if (gh != g || gw != g)
    {
      grid = g_new (float, (gsize) e * gh * gw);
      bicubic (grid, table, e, g, gh, gw);
      src = grid;
    }
  for (int k = 0; k < e; k++)
    for (int p = 0; p < gh * gw; p++)
      out[(gsize) p * e + k] = src[(gsize) k * gh * gw + p];
  return out;
}

/* ---- forward ------------------------------------------------------------ */

/* What a training forward keeps for the backward through the blocks
 * first .. last (none when first > last), in buffers of the backend. */
typedef struct {
  int           first, last;
  LodeVitActs **acts;       /* [loaded_depth], set for first .. last */
  float        *last_out;   /* [rows, E] block last's output before any final norm */
} Trainable;

static void trainable_clear (LodePrithviBackend *be, Trainable *t, int depth);

/* lode_prithvi_encoder_forward through the kernels of be: input and
 * outputs are be's buffers; train (NULL: inference) gets the activations
 * of the blocks it trains. Kernel failures stay in be. */
static gboolean
encoder_run (LodePrithviEncoder *self, LodePrithviBackend *be, const float *input, int n, int h, int w,
             const LodePrithviCoords *coords, const int *blocks, int n_blocks, float *const *outputs,
             Trainable *train, GError **error)
{
  const LodePrithviKernels *K = be->k;
  const LodePrithviConfig *c;
  int e, gh, gw, l, s, last = -1;
  gsize rows;
  g_autofree float *pos = NULL, *enc = NULL;
  float *patches, *x, *dpos, *denc;
  LodeVitWork *work;
  LodeVitBlock vb;
  LodeConvShape cs;

  c = &self->config;
  e = c->embed_dim;
  lode_prithvi_encoder_grid (self, h, w, &gh, &gw);
  if (gh < 1 || gw < 1)
    {
      g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_INPUT,
                   _("A %d x %d image is smaller than one %d x %d patch"), w, h, c->patch_size, c->patch_size);
      return FALSE;
    }
  for (int i = 0; i < n_blocks; i++)
    {
      if (blocks[i] < 0 || blocks[i] >= c->loaded_depth)
        {
          g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_INPUT,
                       _("Block %d of the Prithvi encoder is not loaded (%d of %d blocks are)"),
                       blocks[i], c->loaded_depth, c->depth);
          return FALSE;
        }
      last = MAX (last, blocks[i]);
    }
  if (n == 0 || n_blocks == 0)
    return TRUE;
  l = gh * gw;
  s = l + 1;
  rows = (gsize) n * s;

  /* patch embedding: a p x p convolution with stride p */
  patches = K->alloc (be, (gsize) n * e * l);
  x = K->alloc (be, rows * e);
  lode_conv_shape_init (&cs, n, c->in_chans, h, w, e, c->patch_size, c->patch_size, 0);
  K->conv2d (be, patches, input, weight_on (be, self->patch_w, self->dev_patch_w),
             weight_on (be, self->patch_b, self->dev_patch_b), &cs);

  /* tokens: class token first, then the patches with their encodings (the
   * tables made on the host) */
  pos = patch_pos_embed (self, gh, gw);
  enc = g_new0 (float, (gsize) n * e);
  for (int b = 0; b < n; b++)
    {
      float *eb = enc + (gsize) b * e;

      if (c->temporal_encoding && coords != NULL && coords->temporal != NULL)
        {
          sincos_1d_f (eb, e / 2, coords->temporal[2 * b], self->temporal_scale);
          sincos_1d_f (eb + e / 2, e - e / 2, coords->temporal[2 * b + 1], self->temporal_scale);
        }
      if (c->location_encoding && coords != NULL && coords->location != NULL)
        {
          g_autofree float *loc = g_new0 (float, e);

          sincos_1d_f (loc, e / 2, coords->location[2 * b], self->location_scale);
          sincos_1d_f (loc + e / 2, e - e / 2, coords->location[2 * b + 1], self->location_scale);
          lode_ops_add (eb, eb, loc, e);
        }
    }
  dpos = K->alloc (be, (gsize) l * e);
  denc = K->alloc (be, (gsize) n * e);
  K->upload (be, dpos, pos, (gsize) l * e);
  K->upload (be, denc, enc, (gsize) n * e);
  K->tokens_assemble (be, x, patches, dpos, denc, weight_on (be, self->cls, self->dev_cls), n, l, e);
  K->release (be, patches);
  K->release (be, dpos);
  K->release (be, denc);

  vit_block_on (self, be, 0, &vb);
  work = lode_vit_work_new_on (be, &vb, n, s, FALSE);
  if (train != NULL)
    {
      train->acts = g_new0 (LodeVitActs *, c->loaded_depth);
      train->last_out = K->alloc (be, rows * e);
      for (int bi = train->first; bi <= train->last && be->status == 0; bi++)
        train->acts[bi] = lode_vit_acts_new_on (be, &vb, n, s);
    }
  if (work == NULL || x == NULL || be->status != 0)
    {
      g_autofree char *what = g_strdup_printf (_("encode %d images"), n);

      if (train != NULL)
        trainable_clear (be, train, c->loaded_depth);
      lode_vit_work_free (work);
      K->release (be, x);
      /* the backend's failure when it had one, else the host's memory */
      if (!lode_prithvi_backend_check (be, what, error))
        return FALSE;
      g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_MEMORY,
                   _("Not enough memory to encode %d images"), n);
      return FALSE;
    }
  for (int bi = 0; bi <= last; bi++)
    {
      vit_block_on (self, be, bi, &vb);
      lode_vit_block_forward_on (be, &vb, x, n, s, work, train != NULL ? train->acts[bi] : NULL);
      if (train != NULL && bi == train->last)
        K->copy (be, train->last_out, x, rows * e);
      for (int i = 0; i < n_blocks; i++)
        {
          if (blocks[i] != bi)
            continue;
          if (bi == c->depth - 1)
            K->layer_norm (be, outputs[i], x, weight_on (be, self->norm_w, self->dev_norm_w),
                           weight_on (be, self->norm_b, self->dev_norm_b), (int) rows, e, LN_EPS);
          else
            K->copy (be, outputs[i], x, rows * e);
        }
    }
  lode_vit_work_free (work);
  K->release (be, x);
  return TRUE;
}

gboolean
lode_prithvi_encoder_forward (LodePrithviEncoder *self, const float *input, int n, int h, int w,
                              const LodePrithviCoords *coords, const int *blocks, int n_blocks,
                              float *const *outputs, GError **error)
{
  LodePrithviBackend cpu;
  int gh, gw;
  gsize tokens;
  float *din;
  g_autofree float **dlist = NULL;
  gboolean ok;

  g_return_val_if_fail (self != NULL && input != NULL && n >= 0, FALSE);
  g_return_val_if_fail (n_blocks >= 0 && (n_blocks == 0 || (blocks != NULL && outputs != NULL)), FALSE);
  /* the host entry: the CPU backend, its buffers filled and read back */
  lode_prithvi_backend_init_cpu (&cpu);
  lode_prithvi_encoder_grid (self, h, w, &gh, &gw);
  tokens = (gsize) n * (MAX (gh, 0) * MAX (gw, 0) + 1) * self->config.embed_dim;
  dlist = g_new0 (float *, MAX (n_blocks, 1));
  din = cpu.k->alloc (&cpu, (gsize) n * self->config.in_chans * h * w);
  cpu.k->upload (&cpu, din, input, (gsize) n * self->config.in_chans * h * w);
  for (int i = 0; i < n_blocks; i++)
    dlist[i] = cpu.k->alloc (&cpu, tokens);
  ok = cpu.status != 0 || encoder_run (self, &cpu, din, n, h, w, coords, blocks, n_blocks, dlist, NULL, error);
  for (int i = 0; i < n_blocks; i++)
    {
      if (ok)
        cpu.k->download (&cpu, outputs[i], dlist[i], tokens);
      cpu.k->release (&cpu, dlist[i]);
    }
  cpu.k->release (&cpu, din);
  if (!ok)
    return FALSE;
  {
    g_autofree char *what = g_strdup_printf (_("encode %d images"), n);

    return lode_prithvi_backend_check (&cpu, what, error);
  }
}

void
lode_prithvi_tokens_to_image (float *out, const float *tokens, int n, int gh, int gw, int embed_dim)
{
  int l = gh * gw;

  g_return_if_fail (out != NULL && tokens != NULL);
  for (int b = 0; b < n; b++)
    for (int t = 0; t < l; t++)
      {
        const float *row = tokens + ((gsize) b * (l + 1) + t + 1) * embed_dim;

        for (int j = 0; j < embed_dim; j++)
          out[((gsize) b * embed_dim + j) * l + t] = row[j];
      }
}

static void
trainable_clear (LodePrithviBackend *be, Trainable *t, int depth)
{
  if (t->acts != NULL)
    for (int i = 0; i < depth; i++)
      lode_vit_acts_free (t->acts[i]);
  g_clear_pointer (&t->acts, g_free);
  be->k->release (be, t->last_out);
  t->last_out = NULL;
}

const float *
lode_prithvi_encoder_get_block_param (LodePrithviEncoder *self, int block, LodeVitParam param, gsize *numel)
{
  g_return_val_if_fail (self != NULL && param < LODE_VIT_N_PARAMS, NULL);
  g_return_val_if_fail (block >= 0 && block < self->config.loaded_depth, NULL);
  if (numel != NULL)
    *numel = self->blocks[block].t[param]->numel;
  return self->blocks[block].t[param]->data;
}

/* A block's parameter as the kernels of be update it: the tensor on the
 * CPU, its copy on a CUDA device. */
static float *
block_param_on (LodePrithviEncoder *enc, const LodePrithviBackend *be, int b, int p)
{
  return be->kind == LODE_DEVICE_CPU ? enc->blocks[b].t[p]->data : enc->blocks[b].dev[p];
}

/* Copies bt's gradients and moments onto the device of be (the CPU's
 * mirrors are the host arrays), those not there yet. */
static void
block_train_bind (LodePrithviBackend *be, BlockTrain *bt)
{
  gsize total = bt->offset[LODE_VIT_N_PARAMS];

  if (bt->dgrad == NULL)
    bt->dgrad = be->k->mirror (be, bt->grad, total);
  if (bt->dm == NULL)
    bt->dm = be->k->mirror (be, bt->m, total);
  if (bt->dv == NULL)
    bt->dv = be->k->mirror (be, bt->v, total);
}

static void
block_train_unbind (LodePrithviBackend *be, BlockTrain *bt)
{
  float **const mirrors[] = { &bt->dgrad, &bt->dm, &bt->dv };

  for (gsize i = 0; i < G_N_ELEMENTS (mirrors); i++)
    {
      if (*mirrors[i] != NULL)
        be->k->unmirror (be, *mirrors[i]);
      *mirrors[i] = NULL;
    }
}

/* The trained blocks' parameters, gradients and moments back into the
 * host arrays from the model's device (nothing to copy on the CPU, where
 * they are the same memory). */
static gboolean
blocks_sync_host (LodePrithviModel *self, GError **error)
{
  LodePrithviEncoder *enc = self->encoder;
  LodePrithviBackend run = lode_prithvi_backend_run (&self->be);

  for (int b = 0; self->block_train != NULL && b < enc->config.loaded_depth; b++)
    {
      BlockTrain *bt = self->block_train[b];
      gsize total;

      if (bt == NULL)
        continue;
      total = bt->offset[LODE_VIT_N_PARAMS];
      for (int p = 0; p < LODE_VIT_N_PARAMS; p++)
        run.k->download (&run, enc->blocks[b].t[p]->data, block_param_on (enc, &run, b, p),
                         enc->blocks[b].t[p]->numel);
      if (bt->dgrad != NULL && bt->dm != NULL && bt->dv != NULL)
        {
          run.k->download (&run, bt->grad, bt->dgrad, total);
          run.k->download (&run, bt->m, bt->dm, total);
          run.k->download (&run, bt->v, bt->dv, total);
        }
    }
  return lode_prithvi_backend_check (&run, _("copy the trained encoder blocks from the GPU"), error);
}

/* ---- the segmenter ------------------------------------------------------ */

/* The blocks that a decoder file written by lode_prithvi_model_save_decoder
 * after training with unfrozen blocks holds ("encoder.blocks.N.…", or with
 * any prefix before it) replace the encoder's. */
static gboolean
load_trained_blocks (LodePrithviEncoder *encoder, LodeCheckpoint *ckpt, GError **error)
{
  for (int i = 0; i < encoder->config.loaded_depth; i++)
    {
      g_autofree char *suffix = g_strdup_printf ("encoder.blocks.%d.norm1.weight", i);
      const char *found = lode_upernet_checkpoint_find (ckpt, suffix);
      g_autofree char *prefix = NULL;

      if (found == NULL)
        continue;
      prefix = g_strndup (found, strlen (found) - strlen (suffix) + strlen ("encoder."));
      if (!load_block (encoder, ckpt, prefix, i, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
backend_set_precision (LodePrithviBackend *be, LodePrecision precision, GError **error)
{
#ifdef LODE_WITH_CUDA
  if (be->kind == LODE_DEVICE_CUDA)
    return lode_ops_cuda_check (lode_ops_cuda_set_precision (be->cuda, precision), error);
#endif
  return TRUE;
}

gboolean
lode_prithvi_model_set_precision (LodePrithviModel *self, LodePrecision precision, GError **error)
{
  gboolean ok;

  g_return_val_if_fail (self != NULL, FALSE);
  g_mutex_lock (&self->lock);
  ok = backend_set_precision (&self->be, precision, error);
  if (ok)
    self->precision = precision;
  g_mutex_unlock (&self->lock);
  return ok;
}

/* Puts the model on device: the decoder's values come back to the host,
 * the device copies are freed, and for CUDA a context is made and the
 * weights copied (the optimiser's moments start again). */
static gboolean
model_bind (LodePrithviModel *self, LodeDeviceKind device, GError **error)
{
  LodePrithviBackend cpu;

  if (device == self->be.kind)
    return TRUE;
  /* what the decoder and the blocks learnt on the device comes back first */
  if (!lode_upernet_sync_host (self->decoder, error) || !blocks_sync_host (self, error))
    return FALSE;
  for (int b = 0; self->block_train != NULL && b < self->encoder->config.loaded_depth; b++)
    if (self->block_train[b] != NULL)
      block_train_unbind (&self->be, self->block_train[b]);
  lode_prithvi_backend_init_cpu (&cpu);
  encoder_bind (self->encoder, &cpu, NULL);
  lode_upernet_bind (self->decoder, &cpu, NULL);
  lode_prithvi_backend_clear (&self->be);
  if (device == LODE_DEVICE_CPU)
    return TRUE;
  if (!lode_prithvi_backend_init (&self->be, device, error))
    return FALSE;
  if (backend_set_precision (&self->be, self->precision, error)
      && encoder_bind (self->encoder, &self->be, error) && lode_upernet_bind (self->decoder, &self->be, error))
    return TRUE;
  /* back to the CPU, the model still usable there */
  encoder_bind (self->encoder, &cpu, NULL);
  lode_upernet_bind (self->decoder, &cpu, NULL);
  lode_prithvi_backend_clear (&self->be);
  return FALSE;
}

gboolean
lode_prithvi_model_use_device (LodePrithviModel *self, LodeDeviceKind device, GError **error)
{
  gboolean ok;

  g_return_val_if_fail (self != NULL, FALSE);
  g_mutex_lock (&self->lock);
  ok = model_bind (self, device, error);
  g_mutex_unlock (&self->lock);
  return ok;
}

static LodePrithviModel *
model_alloc (void)
{
  LodePrithviModel *self = g_new0 (LodePrithviModel, 1);

  lode_prithvi_backend_init_cpu (&self->be);
  g_mutex_init (&self->lock);
  self->padding = LODE_PRITHVI_PAD_END;
  return self;
}

static LodePrithviModel *
model_new (const char *path, const char *decoder_path, int classes, int channels, guint64 seed,
           const LodePrithviOptions *options, LodeDeviceKind device, GError **error)
{
  g_autoptr(LodeCheckpoint) ckpt = NULL;
  g_autoptr(LodePrithviModel) self = model_alloc ();

  g_return_val_if_fail (path != NULL, NULL);
  ckpt = lode_checkpoint_open (path, error);
  if (ckpt == NULL)
    return NULL;
  self->padding = options != NULL ? options->padding : LODE_PRITHVI_PAD_END;
  self->encoder = lode_prithvi_encoder_new_from_checkpoint (ckpt, options, error);
  if (self->encoder == NULL)
    return NULL;
  if (classes > 0)
    {
      LodeUpernetConfig config = { self->encoder->config.embed_dim, channels > 0 ? channels : 256, classes };

      self->decoder = lode_upernet_new (&config, seed, error);
    }
  else
    {
      if (decoder_path != NULL)
        {
          lode_checkpoint_free (ckpt);
          ckpt = lode_checkpoint_open (decoder_path, error);
          if (ckpt == NULL)
            return NULL;
        }
      self->decoder = lode_upernet_new_from_checkpoint (ckpt, error);
      if (self->decoder != NULL && decoder_path != NULL && !load_trained_blocks (self->encoder, ckpt, error))
        return NULL;
      if (self->decoder != NULL
          && lode_upernet_get_config (self->decoder)->embed_dim != self->encoder->config.embed_dim)
        {
          g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_CHECKPOINT,
                       _("The UperNet decoder in “%s” expects features of width %d, the encoder gives %d"),
                       decoder_path ? decoder_path : path, lode_upernet_get_config (self->decoder)->embed_dim,
                       self->encoder->config.embed_dim);
          return NULL;
        }
    }
  if (self->decoder == NULL)
    return NULL;
  g_clear_pointer (&ckpt, lode_checkpoint_free);
  if (!model_bind (self, device, error))
    return NULL;
  return g_steal_pointer (&self);
}

LodePrithviModel *
lode_prithvi_model_new_from_checkpoint (const char *path, const char *decoder_path,
                                        const LodePrithviOptions *options, GError **error)
{
  return model_new (path, decoder_path, 0, 0, 0, options, LODE_DEVICE_CPU, error);
}

LodePrithviModel *
lode_prithvi_model_new_from_checkpoint_on (const char *path, const char *decoder_path,
                                           const LodePrithviOptions *options, LodeDeviceKind device,
                                           GError **error)
{
  return model_new (path, decoder_path, 0, 0, 0, options, device, error);
}

LodePrithviModel *
lode_prithvi_model_new_with_decoder (const char *path, int classes, int channels, guint64 seed,
                                     const LodePrithviOptions *options, GError **error)
{
  g_return_val_if_fail (classes > 0 && channels >= 0, NULL);
  return model_new (path, NULL, classes, channels, seed, options, LODE_DEVICE_CPU, error);
}

LodePrithviModel *
lode_prithvi_model_new (LodePrithviEncoder *encoder, LodeUpernet *decoder)
{
  LodePrithviModel *self;

  g_return_val_if_fail (encoder != NULL && decoder != NULL, NULL);
  g_return_val_if_fail (lode_upernet_get_config (decoder)->embed_dim == encoder->config.embed_dim, NULL);
  self = model_alloc ();
  self->encoder = encoder;
  self->decoder = decoder;
  return self;
}

LodePrithviModel *
lode_prithvi_model_new_on (LodePrithviEncoder *encoder, LodeUpernet *decoder, LodeDeviceKind device,
                           GError **error)
{
  g_autoptr(LodePrithviModel) self = lode_prithvi_model_new (encoder, decoder);

  if (self == NULL || !model_bind (self, device, error))
    return NULL;
  return g_steal_pointer (&self);
}

gboolean
lode_prithvi_model_sync_host (LodePrithviModel *self, GError **error)
{
  gboolean ok;

  g_return_val_if_fail (self != NULL, FALSE);
  g_mutex_lock (&self->lock);
  ok = lode_upernet_sync_host (self->decoder, error) && blocks_sync_host (self, error);
  g_mutex_unlock (&self->lock);
  return ok;
}

LodeDeviceKind
lode_prithvi_model_get_device (LodePrithviModel *self)
{
  g_return_val_if_fail (self != NULL, LODE_DEVICE_CPU);
  return self->be.kind;
}

void
lode_prithvi_model_free (LodePrithviModel *self)
{
  if (self == NULL)
    return;
  if (self->block_train != NULL)
    for (int i = 0; i < self->encoder->config.loaded_depth; i++)
      if (self->block_train[i] != NULL)
        {
          block_train_unbind (&self->be, self->block_train[i]);
          g_free (self->block_train[i]->grad);
          g_free (self->block_train[i]->m);
          g_free (self->block_train[i]->v);
          g_free (self->block_train[i]);
        }
  g_free (self->block_train);
  lode_prithvi_encoder_free (self->encoder);
  lode_upernet_free (self->decoder);
  lode_prithvi_backend_clear (&self->be);
  g_mutex_clear (&self->lock);
  g_free (self);
}

void
lode_prithvi_model_set_padding (LodePrithviModel *self, LodePrithviPadding padding)
{
  g_return_if_fail (self != NULL);
  self->padding = padding;
}

LodePrithviEncoder *
lode_prithvi_model_get_encoder (LodePrithviModel *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return self->encoder;
}

LodeUpernet *
lode_prithvi_model_get_decoder (LodePrithviModel *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return self->decoder;
}

int
lode_prithvi_model_get_classes (LodePrithviModel *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return lode_upernet_get_config (self->decoder)->classes;
}

gboolean
lode_prithvi_normalise (float *out, const float *raw, int n, int n_bands, int h, int w, GError **error)
{
  gsize plane = (gsize) h * w;

  g_return_val_if_fail (out != NULL && raw != NULL && n >= 0 && h >= 0 && w >= 0, FALSE);
  if (n_bands != LODE_PRITHVI_N_BANDS && n_bands <= lode_prithvi_band_indices[LODE_PRITHVI_N_BANDS - 1])
    {
      g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_INPUT,
                   _("Prithvi needs the 6 bands B, G, R, narrow NIR, SWIR1, SWIR2 or the 13 SmallMinesDS bands; "
                     "the patches have %d"), n_bands);
      return FALSE;
    }
  for (int b = 0; b < n; b++)
    for (int c = 0; c < LODE_PRITHVI_N_BANDS; c++)
      {
        int band = n_bands == LODE_PRITHVI_N_BANDS ? c : lode_prithvi_band_indices[c];
        const float *src = raw + ((gsize) b * n_bands + band) * plane;
        float *dst = out + ((gsize) b * LODE_PRITHVI_N_BANDS + c) * plane;
        float mean = (float) lode_prithvi_band_mean[c];
        float std = (float) lode_prithvi_band_std[c];

        for (gsize p = 0; p < plane; p++)
          dst[p] = ((isnan (src[p]) ? 0.0f : src[p]) - mean) / std;
      }
  return TRUE;
}

/* Where a patch sits in the padded input the network sees: TerraTorch pads
 * each side to a multiple of twice the patch (reflecting the edge) and
 * crops the logits back. */
typedef struct {
  int h, w;           /* the patch */
  int ph, pw;         /* padded */
  int top, left;      /* the patch's corner in the padded input */
} Frame;

static gboolean
frame_init (LodePrithviModel *self, int h, int w, Frame *f, GError **error)
{
  int m = 2 * self->encoder->config.patch_size;
  int pad_h = (m - h % m) % m, pad_w = (m - w % m) % m;

  f->h = h, f->w = w;
  f->ph = h + pad_h, f->pw = w + pad_w;
  f->top = self->padding == LODE_PRITHVI_PAD_CENTRE ? pad_h / 2 : 0;
  f->left = self->padding == LODE_PRITHVI_PAD_CENTRE ? pad_w / 2 : 0;
  /* reflection cannot reach further than the patch itself */
  if (h < 2 || w < 2 || MAX (f->top, pad_h - f->top) >= h || MAX (f->left, pad_w - f->left) >= w)
    {
      g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_INPUT,
                   _("A %d x %d patch is too small for a model with %d x %d patches"),
                   w, h, self->encoder->config.patch_size, self->encoder->config.patch_size);
      return FALSE;
    }
  return TRUE;
}

static int
reflect (int i, int n)
{
  return i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i;
}

/* Bands selected, normalised and padded: [n, 6, ph, pw]. */
static float *
prepare_input (const float *raw, int n, int n_bands, const Frame *f, GError **error)
{
  gsize plane = (gsize) f->h * f->w, pplane = (gsize) f->ph * f->pw;
  g_autofree float *input = g_try_new (float, (gsize) n * LODE_PRITHVI_N_BANDS * plane);
  float *padded;

  if (input == NULL)
    {
      g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_MEMORY,
                   _("Not enough memory to segment %d images"), n);
      return NULL;
    }
  if (!lode_prithvi_normalise (input, raw, n, n_bands, f->h, f->w, error))
    return NULL;
  if (pplane == plane)
    return g_steal_pointer (&input);
  padded = g_try_new (float, (gsize) n * LODE_PRITHVI_N_BANDS * pplane);
  if (padded == NULL)
    {
      g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_MEMORY,
                   _("Not enough memory to segment %d images"), n);
      return NULL;
    }
  for (int p = 0; p < n * LODE_PRITHVI_N_BANDS; p++)
    for (int y = 0; y < f->ph; y++)
      {
        const float *src = input + p * plane + (gsize) reflect (y - f->top, f->h) * f->w;
        float *dst = padded + p * pplane + (gsize) y * f->pw;

        for (int x = 0; x < f->pw; x++)
          dst[x] = src[reflect (x - f->left, f->w)];
      }
  return padded;
}

/* The decoder's four input maps [n, E, gh, gw] (be's buffers) for a
 * prepared input (on be's device). Kernel failures stay in be. */
static gboolean
encode_maps (LodePrithviModel *self, LodePrithviBackend *be, const float *input, int n, const Frame *f,
             const LodePrithviCoords *coords, float *maps[4], Trainable *train, GError **error)
{
  const LodePrithviKernels *K = be->k;
  const LodePrithviConfig *c = &self->encoder->config;
  int e = c->embed_dim, gh = f->ph / c->patch_size, gw = f->pw / c->patch_size;
  gsize tokens = (gsize) n * (gh * gw + 1) * e;
  float *outs[4] = { NULL };
  gboolean ok;

  for (int i = 0; i < 4; i++)
    {
      outs[i] = K->alloc (be, tokens);
      maps[i] = K->alloc (be, (gsize) n * e * gh * gw);
    }
  ok = encoder_run (self->encoder, be, input, n, f->ph, f->pw, coords, c->feature_blocks, 4, outs, train, error);
  for (int i = 0; i < 4; i++)
    {
      if (ok)
        K->tokens_to_image (be, maps[i], outs[i], n, gh, gw, e);
      K->release (be, outs[i]);
    }
  if (!ok)
    for (int i = 0; i < 4; i++)
      {
        K->release (be, maps[i]);
        maps[i] = NULL;
      }
  return ok;
}

/* Copies the patch's window of full [nk, ph, pw] into out [nk, h, w]. */
static void
crop (float *out, const float *full, int nk, const Frame *f)
{
  for (int p = 0; p < nk; p++)
    for (int y = 0; y < f->h; y++)
      memcpy (out + ((gsize) p * f->h + y) * f->w,
              full + ((gsize) p * f->ph + f->top + y) * f->pw + f->left, f->w * sizeof (float));
}

static gboolean
predict_chunk (LodePrithviModel *self, const float *raw, int n, int n_bands, int h, int w,
               const LodePrithviCoords *coords, float *logits, GError **error)
{
  int k = lode_prithvi_model_get_classes (self), p = self->encoder->config.patch_size, gh, gw;
  g_autofree float *input = NULL, *full = NULL;
  g_autofree char *what = NULL;
  LodePrithviBackend be = lode_prithvi_backend_run (&self->be);
  const LodePrithviKernels *K = be.k;
  float *maps[4] = { NULL }, *din, *small, *dfull;
  gsize in_count, full_count;
  Frame f;
  gboolean ok;

  if (!frame_init (self, h, w, &f, error) || !(input = prepare_input (raw, n, n_bands, &f, error)))
    return FALSE;
  gh = f.ph / p, gw = f.pw / p;
  in_count = (gsize) n * LODE_PRITHVI_N_BANDS * f.ph * f.pw;
  full_count = (gsize) n * k * f.ph * f.pw;
  full = g_try_new (float, full_count);
  if (full == NULL)
    {
      g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_MEMORY,
                   _("Not enough memory to segment %d images"), n);
      return FALSE;
    }
  what = g_strdup_printf (_("segment %d images"), n);
  din = K->alloc (&be, in_count);
  K->upload (&be, din, input, in_count);
  g_clear_pointer (&input, g_free);
  ok = encode_maps (self, &be, din, n, &f, coords, maps, NULL, error);
  K->release (&be, din);
  if (!ok)
    {
      lode_prithvi_backend_check (&be, what, NULL);
      return FALSE;
    }
  small = K->alloc (&be, (gsize) n * k * 16 * gh * gw);
  ok = lode_upernet_forward_on (self->decoder, &be, (const float *const *) maps, n, gh, gw, small, error);
  for (int i = 0; i < 4; i++)
    K->release (&be, maps[i]);
  if (!ok)
    {
      K->release (&be, small);
      lode_prithvi_backend_check (&be, what, NULL);
      return FALSE;
    }
  /* TerraTorch's rescale to the padded size, then the crop (on the host) */
  if (4 * gh == f.ph && 4 * gw == f.pw)
    dfull = small;
  else
    {
      dfull = K->alloc (&be, full_count);
      K->resize (&be, dfull, small, n * k, 4 * gh, 4 * gw, f.ph, f.pw, LODE_RESIZE_BILINEAR);
      K->release (&be, small);
    }
  K->download (&be, full, dfull, full_count);
  K->release (&be, dfull);
  if (!lode_prithvi_backend_check (&be, what, error))
    return FALSE;
  crop (logits, full, n * k, &f);
  return TRUE;
}

gboolean
lode_prithvi_model_features (LodePrithviModel *self, const float *raw, int n, int n_bands, int h, int w,
                             const LodePrithviCoords *coords, float *const maps[4], GError **error)
{
  g_autofree float *input = NULL;
  g_autofree char *what = NULL;
  LodePrithviBackend be;
  float *dmaps[4] = { NULL }, *din;
  gsize count;
  Frame f;
  int gh, gw;
  gboolean ok;

  g_return_val_if_fail (self != NULL && raw != NULL && maps != NULL && n > 0, FALSE);
  if (!frame_init (self, h, w, &f, error) || !(input = prepare_input (raw, n, n_bands, &f, error)))
    return FALSE;
  gh = f.ph / self->encoder->config.patch_size, gw = f.pw / self->encoder->config.patch_size;
  count = (gsize) n * LODE_PRITHVI_N_BANDS * f.ph * f.pw;
  what = g_strdup_printf (_("encode %d images"), n);
  g_mutex_lock (&self->lock);
  be = lode_prithvi_backend_run (&self->be);
  din = be.k->alloc (&be, count);
  be.k->upload (&be, din, input, count);
  ok = encode_maps (self, &be, din, n, &f, coords, dmaps, NULL, error);
  be.k->release (&be, din);
  for (int i = 0; i < 4; i++)
    {
      if (ok)
        be.k->download (&be, maps[i], dmaps[i], (gsize) n * self->encoder->config.embed_dim * gh * gw);
      be.k->release (&be, dmaps[i]);
    }
  ok = lode_prithvi_backend_check (&be, what, ok ? error : NULL) && ok;
  g_mutex_unlock (&self->lock);
  return ok;
}

gboolean
lode_prithvi_model_predict (LodePrithviModel *self, const float *raw, int n, int n_bands, int h, int w,
                            const LodePrithviCoords *coords, float *logits, guint8 *masks, GCancellable *cancellable,
                            GError **error)
{
  int k;
  gsize plane = (gsize) h * w;
  g_autofree float *scratch = NULL;

  g_return_val_if_fail (self != NULL && raw != NULL && n >= 0 && h >= 0 && w >= 0, FALSE);
  k = lode_prithvi_model_get_classes (self);
  if (logits == NULL && masks == NULL)
    return TRUE;
  if (logits == NULL)
    scratch = g_try_new (float, (gsize) MIN (n, PREDICT_CHUNK) * k * plane);

  for (int start = 0; start < n; start += PREDICT_CHUNK)
    {
      int m = MIN (PREDICT_CHUNK, n - start);
      float *out = logits != NULL ? logits + (gsize) start * k * plane : scratch;
      LodePrithviCoords sub = { NULL, NULL };

      if (out == NULL)
        {
          g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_MEMORY,
                       _("Not enough memory to segment %d images"), n);
          return FALSE;
        }
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return FALSE;
      if (coords != NULL)
        {
          sub.temporal = coords->temporal ? coords->temporal + 2 * start : NULL;
          sub.location = coords->location ? coords->location + 2 * start : NULL;
        }
      {
        gboolean ok;

        /* a CUDA context runs one pass at a time */
        if (self->be.kind != LODE_DEVICE_CPU)
          g_mutex_lock (&self->lock);
        ok = predict_chunk (self, raw + (gsize) start * n_bands * plane, m, n_bands, h, w,
                            coords != NULL ? &sub : NULL, out, error);
        if (self->be.kind != LODE_DEVICE_CPU)
          g_mutex_unlock (&self->lock);
        if (!ok)
          return FALSE;
      }
      if (masks != NULL)
        for (int b = 0; b < m; b++)
          for (gsize p = 0; p < plane; p++)
            {
              const float *lb = out + (gsize) b * k * plane + p;
              int best = 0;

              for (int j = 1; j < k; j++)
                if (lb[j * plane] > lb[best * plane])
                  best = j;
              masks[(gsize) (start + b) * plane + p] = (guint8) best;
            }
    }
  return TRUE;
}

/* ---- saving and training ------------------------------------------------ */

/* One tensor of the file lode_prithvi_model_save_decoder writes. */
typedef struct {
  char        *name;
  int          ndim;
  gint64       shape[4];
  const float *data;
  gsize        numel;
} Saved;

static void
saved_clear (gpointer p)
{
  g_free (((Saved *) p)->name);
}

static BlockTrain *block_train (LodePrithviModel *self, int b);

/* What a checkpoint written by training holds beside the weights, so that
 * a run continues from it as if it had never stopped. */
typedef struct {
  gint64 step;           /* the steps done */
  guint64 seed;
  int    batch_size;
  int    unfreeze_blocks;
} TrainState;

#define STATE_M LODE_UPERNET_STATE_PREFIX "adamw.m."
#define STATE_V LODE_UPERNET_STATE_PREFIX "adamw.v."
#define STATE_STEP LODE_UPERNET_STATE_PREFIX "adamw.step."

static void
saved_add (GArray *list, char *name, int ndim, const gint64 *shape, const float *data, gsize numel)
{
  Saved t = { name, ndim, { 0 }, data, numel };

  for (int k = 0; k < ndim; k++)
    t.shape[k] = shape[k];
  g_array_append_val (list, t);
}

/* The AdamW moments of the decoder and the trained blocks, under
 * STATE_M and STATE_V followed by the tensor's name, and the training
 * state in the metadata (strings, as safetensors wants). */
static void
saved_add_state (LodePrithviModel *self, GArray *list, GString *meta, const TrainState *state)
{
  LodeUpernet *d = self->decoder;

  for (guint i = 0; i < lode_upernet_n_tensors (d); i++)
    {
      gint64 shape[4];
      int ndim = lode_upernet_tensor_shape (d, i, shape);

      if (lode_upernet_tensor_is_buffer (d, i))
        continue;
      for (int which = 0; which < 2; which++)
        saved_add (list, g_strconcat (which ? STATE_V : STATE_M, lode_upernet_tensor_name (d, i), NULL), ndim, shape,
                   lode_upernet_tensor_moment (d, i, which), lode_upernet_tensor_numel (d, i));
    }
  g_string_append_printf (meta, ",\"lode.step\":\"%" G_GINT64_FORMAT "\",\"lode.seed\":\"%" G_GUINT64_FORMAT "\","
                          "\"lode.batch_size\":\"%d\",\"lode.unfreeze_blocks\":\"%d\","
                          "\"" STATE_STEP "decoder\":\"%" G_GINT64_FORMAT "\"",
                          state->step, state->seed, state->batch_size, state->unfreeze_blocks,
                          lode_upernet_get_adamw_step (d));
  for (int b = 0; self->block_train != NULL && b < self->encoder->config.loaded_depth; b++)
    {
      BlockTrain *bt = self->block_train[b];

      if (bt == NULL)
        continue;
      for (int p = 0; p < LODE_VIT_N_PARAMS; p++)
        for (int which = 0; which < 2; which++)
          {
            const LodeTensor *src = self->encoder->blocks[b].t[p];

            saved_add (list, g_strdup_printf ("%sencoder.blocks.%d.%s", which ? STATE_V : STATE_M, b,
                                              lode_vit_param_name (p)),
                       src->ndim, src->shape, (which ? bt->v : bt->m) + bt->offset[p], src->numel);
          }
      g_string_append_printf (meta, ",\"" STATE_STEP "encoder.blocks.%d\":\"%" G_GINT64_FORMAT "\"", b, bt->step);
    }
}

/* The decoder file, with the training state when state is not NULL. */
static gboolean
save_file (LodePrithviModel *self, const char *path, const TrainState *state, GError **error)
{
  LodeUpernet *d;
  g_autoptr(GArray) list = g_array_new (FALSE, TRUE, sizeof (Saved));
  g_autoptr(GString) header = g_string_new ("{");
  g_autoptr(GString) meta = g_string_new ("\"format\":\"pt\",\"writer\":\"lode\"");
  g_autoptr(GByteArray) file = g_byte_array_new ();
  guint64 offset = 0, header_len;

  g_array_set_clear_func (list, saved_clear);
  d = self->decoder;
  /* a decoder trained on a GPU: its values back into the host mirror */
  if (!lode_prithvi_model_sync_host (self, error))
    return FALSE;
  for (guint i = 0; i < lode_upernet_n_tensors (d); i++)
    {
      gint64 shape[4];
      int ndim = lode_upernet_tensor_shape (d, i, shape);

      saved_add (list, g_strdup (lode_upernet_tensor_name (d, i)), ndim, shape, lode_upernet_tensor_data (d, i),
                 lode_upernet_tensor_numel (d, i));
    }
  /* the blocks trained with the decoder, under the encoder's names */
  for (int b = 0; self->block_train != NULL && b < self->encoder->config.loaded_depth; b++)
    if (self->block_train[b] != NULL)
      for (int p = 0; p < LODE_VIT_N_PARAMS; p++)
        {
          const LodeTensor *src = self->encoder->blocks[b].t[p];

          saved_add (list, g_strdup_printf ("encoder.blocks.%d.%s", b, lode_vit_param_name (p)), src->ndim,
                     src->shape, src->data, src->numel);
        }
  if (state != NULL)
    saved_add_state (self, list, meta, state);

  for (guint i = 0; i < list->len; i++)
    {
      const Saved *t = &g_array_index (list, Saved, i);
      guint64 bytes = t->numel * sizeof (float);

      g_string_append_printf (header, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[", i ? "," : "", t->name);
      for (int k = 0; k < t->ndim; k++)
        g_string_append_printf (header, "%s%" G_GINT64_FORMAT, k ? "," : "", t->shape[k]);
      g_string_append_printf (header, "],\"data_offsets\":[%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT "]}",
                              offset, offset + bytes);
      offset += bytes;
    }
  g_string_append_printf (header, ",\"__metadata__\":{%s}}", meta->str);
  while (header->len % 8 != 0)
    g_string_append_c (header, ' ');
  header_len = header->len;
  for (int b = 0; b < 8; b++)
    {
      guint8 byte = (guint8) (header_len >> (8 * b));

      g_byte_array_append (file, &byte, 1);
    }
  g_byte_array_append (file, (const guint8 *) header->str, header->len);
  for (guint i = 0; i < list->len; i++)
    {
      const Saved *t = &g_array_index (list, Saved, i);
      guint at = file->len;

      g_byte_array_set_size (file, at + (guint) (t->numel * 4));
      for (gsize k = 0; k < t->numel; k++)
        {
          guint32 bits;

          memcpy (&bits, &t->data[k], 4);
          bits = GUINT32_TO_LE (bits);
          memcpy (file->data + at + k * 4, &bits, 4);
        }
    }

  if (!g_file_set_contents_full (path, (const char *) file->data, file->len,
                                 G_FILE_SET_CONTENTS_CONSISTENT | G_FILE_SET_CONTENTS_DURABLE, 0666, error))
    {
      g_prefix_error (error, _("Cannot write the decoder to “%s”: "), path);
      return FALSE;
    }
  return TRUE;
}

gboolean
lode_prithvi_model_save_decoder (LodePrithviModel *self, const char *path, GError **error)
{
  g_return_val_if_fail (self != NULL && path != NULL, FALSE);
  return save_file (self, path, NULL, error);
}

/* The "__metadata__" of the safetensors file at path (string values), an
 * empty table when it has none. */
static GHashTable *
read_metadata (const char *path, GError **error)
{
  g_autoptr(GFile) file = g_file_new_for_path (path);
  g_autoptr(GFileInputStream) in = g_file_read (file, NULL, error);
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autofree char *text = NULL;
  GHashTable *table = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  guint8 len_bytes[8];
  guint64 len = 0;
  gsize got = 0;
  JsonNode *root, *node;

  if (in == NULL)
    {
      g_hash_table_unref (table);
      return NULL;
    }
  if (g_input_stream_read_all (G_INPUT_STREAM (in), len_bytes, 8, &got, NULL, NULL) && got == 8)
    for (int b = 7; b >= 0; b--)
      len = len << 8 | len_bytes[b];
  if (len == 0 || len > 100 * 1024 * 1024)
    return table;
  text = g_malloc (len + 1);
  if (!g_input_stream_read_all (G_INPUT_STREAM (in), text, len, &got, NULL, NULL) || got != len)
    return table;
  text[len] = '\0';
  if (!json_parser_load_from_data (parser, text, (gssize) len, NULL))
    return table;
  root = json_parser_get_root (parser);
  node = root != NULL && JSON_NODE_HOLDS_OBJECT (root)
         ? json_object_get_member (json_node_get_object (root), "__metadata__") : NULL;
  if (node != NULL && JSON_NODE_HOLDS_OBJECT (node))
    {
      JsonObject *meta = json_node_get_object (node);
      g_autoptr(GList) members = json_object_get_members (meta);

      for (GList *l = members; l != NULL; l = l->next)
        {
          JsonNode *v = json_object_get_member (meta, l->data);

          if (JSON_NODE_HOLDS_VALUE (v) && json_node_get_value_type (v) == G_TYPE_STRING)
            g_hash_table_insert (table, g_strdup (l->data), g_strdup (json_node_get_string (v)));
        }
    }
  return table;
}

/* The integer value of key in meta, FALSE when absent or not a number. */
static gboolean
meta_int (GHashTable *meta, const char *key, gint64 *out)
{
  const char *text = g_hash_table_lookup (meta, key);

  return text != NULL && g_ascii_string_to_signed (text, 10, 0, G_MAXINT64, out, NULL);
}

/* Loads the moments stored as prefix + name into the n values at out. */
static gboolean
load_moment (LodeCheckpoint *ckpt, const char *path, const char *prefix, const char *name, float *out, gsize n,
             GError **error)
{
  g_autofree char *full = g_strconcat (prefix, name, NULL);
  g_autoptr(GError) local = NULL;
  LodeTensor *t = lode_checkpoint_load (ckpt, full, &local);

  if (t == NULL || t->numel != n)
    {
      g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_CHECKPOINT,
                   _("The training state in “%s” lacks the tensor “%s” or has it in another shape"), path, full);
      lode_tensor_free (t);
      return FALSE;
    }
  memcpy (out, t->data, n * sizeof (float));
  lode_tensor_free (t);
  return TRUE;
}

gboolean
lode_prithvi_model_load_train_state (LodePrithviModel *self, const char *path, const LodeTrainConfig *config,
                                     int unfreeze_blocks, gint64 *step, GError **error)
{
  g_autoptr(GHashTable) meta = NULL;
  g_autoptr(LodeCheckpoint) ckpt = NULL;
  LodeUpernet *d;
  gint64 done, seed, batch, unfreeze, adam_step;

  g_return_val_if_fail (self != NULL && path != NULL && config != NULL, FALSE);
  meta = read_metadata (path, error);
  if (meta == NULL)
    {
      g_prefix_error (error, _("Cannot resume from “%s”: "), path);
      return FALSE;
    }
  if (!meta_int (meta, "lode.step", &done) || !meta_int (meta, "lode.seed", &seed)
      || !meta_int (meta, "lode.batch_size", &batch) || !meta_int (meta, "lode.unfreeze_blocks", &unfreeze)
      || !meta_int (meta, STATE_STEP "decoder", &adam_step))
    {
      g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_CHECKPOINT,
                   _("“%s” holds no training state to resume from (a decoder saved by training holds one)"), path);
      return FALSE;
    }
  if ((guint64) seed != config->seed || batch != config->batch_size || unfreeze != unfreeze_blocks)
    {
      g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_CONFIG,
                   _("“%s” was trained with seed %" PRId64 ", batch %" PRId64 " and %" PRId64 " unfrozen blocks; "
                     "resuming needs the same"), path, seed, batch, unfreeze);
      return FALSE;
    }
  ckpt = lode_checkpoint_open (path, error);
  if (ckpt == NULL)
    return FALSE;
  d = self->decoder;
  for (guint i = 0; i < lode_upernet_n_tensors (d); i++)
    for (int which = 0; which < 2 && !lode_upernet_tensor_is_buffer (d, i); which++)
      if (!load_moment (ckpt, path, which ? STATE_V : STATE_M, lode_upernet_tensor_name (d, i),
                        lode_upernet_tensor_moment (d, i, which), lode_upernet_tensor_numel (d, i), error))
        return FALSE;
  for (int b = 0; b < self->encoder->config.loaded_depth; b++)
    {
      g_autofree char *key = g_strdup_printf (STATE_STEP "encoder.blocks.%d", b);
      gint64 block_step;
      BlockTrain *bt;

      if (!meta_int (meta, key, &block_step))
        continue;
      bt = block_train (self, b);
      if (bt == NULL)
        {
          g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_MEMORY,
                       _("Not enough memory to train %d blocks of the encoder"), unfreeze_blocks);
          return FALSE;
        }
      for (int p = 0; p < LODE_VIT_N_PARAMS; p++)
        for (int which = 0; which < 2; which++)
          {
            g_autofree char *name = g_strdup_printf ("encoder.blocks.%d.%s", b, lode_vit_param_name (p));

            if (!load_moment (ckpt, path, which ? STATE_V : STATE_M, name, (which ? bt->v : bt->m) + bt->offset[p],
                              bt->offset[p + 1] - bt->offset[p], error))
              return FALSE;
          }
      bt->step = block_step;
      /* moments already on the device follow (nothing to copy on the CPU) */
      if (bt->dm != NULL && bt->dv != NULL)
        {
          LodePrithviBackend run = lode_prithvi_backend_run (&self->be);

          run.k->upload (&run, bt->dm, bt->m, bt->offset[LODE_VIT_N_PARAMS]);
          run.k->upload (&run, bt->dv, bt->v, bt->offset[LODE_VIT_N_PARAMS]);
          if (!lode_prithvi_backend_check (&run, _("copy the AdamW moments to the GPU"), error))
            return FALSE;
        }
    }
  if (!lode_upernet_set_adamw_state (d, adam_step, error))
    return FALSE;
  if (step != NULL)
    *step = done;
  return TRUE;
}

void
lode_prithvi_train_options_init (LodePrithviTrainOptions *options)
{
  g_return_if_fail (options != NULL);
  options->lr = 1e-3f;
  options->weight_decay = 0.05f;
  options->head_dropout = 0.1f;
  options->flips = TRUE;
  options->ignore_index = 255;
  options->seed = 0;
  options->unfreeze_blocks = 0;
  options->class_weights = NULL;
  options->dice_weight = 0.0f;
}

int
lode_prithvi_model_get_max_unfreeze (LodePrithviModel *self)
{
  int deepest = 0;

  g_return_val_if_fail (self != NULL, 0);
  for (int i = 0; i < 4; i++)
    deepest = MAX (deepest, self->encoder->config.feature_blocks[i]);
  return deepest + 1;
}

gboolean
lode_prithvi_model_check_unfreeze (LodePrithviModel *self, int unfreeze_blocks, GError **error)
{
  int most;

  g_return_val_if_fail (self != NULL, FALSE);
  most = lode_prithvi_model_get_max_unfreeze (self);
  if (unfreeze_blocks >= 0 && unfreeze_blocks <= most)
    return TRUE;
  g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_CONFIG,
               _("Cannot unfreeze %d blocks: the decoder reads blocks 0 to %d of the encoder, so 0 to %d of them "
                 "can be trained"), unfreeze_blocks, most - 1, most);
  return FALSE;
}

const float *
lode_prithvi_model_get_block_grad (LodePrithviModel *self, int block, LodeVitParam param)
{
  BlockTrain *bt;

  g_return_val_if_fail (self != NULL && param < LODE_VIT_N_PARAMS, NULL);
  if (self->block_train == NULL || block < 0 || block >= self->encoder->config.loaded_depth)
    return NULL;
  bt = self->block_train[block];
  return bt != NULL ? bt->grad + bt->offset[param] : NULL;
}

/* The AdamW state of block b, made on first use; NULL when out of memory. */
static BlockTrain *
block_train (LodePrithviModel *self, int b)
{
  BlockTrain *bt;
  LodeVitBlock vb;

  if (self->block_train == NULL)
    self->block_train = g_new0 (BlockTrain *, self->encoder->config.loaded_depth);
  if (self->block_train[b] != NULL)
    return self->block_train[b];
  vit_block (self->encoder, b, &vb);
  bt = g_new0 (BlockTrain, 1);
  for (int p = 0; p < LODE_VIT_N_PARAMS; p++)
    bt->offset[p + 1] = bt->offset[p] + lode_vit_param_numel (&vb, p);
  bt->grad = g_try_new0 (float, bt->offset[LODE_VIT_N_PARAMS]);
  bt->m = g_try_new0 (float, bt->offset[LODE_VIT_N_PARAMS]);
  bt->v = g_try_new0 (float, bt->offset[LODE_VIT_N_PARAMS]);
  if (bt->grad == NULL || bt->m == NULL || bt->v == NULL)
    {
      g_free (bt->grad), g_free (bt->m), g_free (bt->v), g_free (bt);
      return NULL;
    }
  self->block_train[b] = bt;
  return bt;
}

/* Backward through the trained blocks, on the device of be, from the
 * decoder's gradients dmaps (NULL for the features of frozen blocks), into
 * the blocks' gradients (overwritten). Kernel failures stay in be. */
static gboolean
encoder_backward (LodePrithviModel *self, LodePrithviBackend *be, const Trainable *train, float *const dmaps[4],
                  int n, int gh, int gw, GError **error)
{
  const LodePrithviKernels *K = be->k;
  LodePrithviEncoder *enc = self->encoder;
  const LodePrithviConfig *c = &enc->config;
  int e = c->embed_dim, s = gh * gw + 1;
  gsize rows = (gsize) n * s;
  float *dx, *dtok = NULL, *dnorm = NULL;
  LodeVitWork *work;
  LodeVitBlock vb;

  vit_block (enc, 0, &vb);
  work = lode_vit_work_new_on (be, &vb, n, s, TRUE);
  dx = K->alloc (be, rows * e);
  K->zero (be, dx, rows * e);
  if (train->last == c->depth - 1)
    {
      dtok = K->alloc (be, rows * e);
      dnorm = K->alloc (be, rows * e);
    }
  if (work == NULL || be->status != 0)
    {
      g_autofree char *what = g_strdup_printf (_("train on %d patches"), n);

      lode_vit_work_free (work);
      K->release (be, dx), K->release (be, dtok), K->release (be, dnorm);
      lode_prithvi_backend_check (be, what, error);
      return FALSE;
    }
  for (int b = train->last; b >= train->first; b--)
    {
      BlockTrain *bt = self->block_train[b];
      float *grads[LODE_VIT_N_PARAMS];

      /* dL/d(block b's output): block b + 1's input gradient so far, plus
       * the decoder's at the features read here (the last block's through
       * the final norm) */
      for (int i = 0; i < 4; i++)
        {
          if (c->feature_blocks[i] != b || dmaps[i] == NULL)
            continue;
          if (b == c->depth - 1)
            {
              K->zero (be, dtok, rows * e);
              K->image_to_tokens_add (be, dtok, dmaps[i], n, gh, gw, e);
              K->grad_layer_norm (be, dnorm, NULL, NULL, dtok, train->last_out,
                                  weight_on (be, enc->norm_w, enc->dev_norm_w), (int) rows, e, LN_EPS);
              K->add (be, dx, dx, dnorm, rows * e);
            }
          else
            K->image_to_tokens_add (be, dx, dmaps[i], n, gh, gw, e);
        }
      K->zero (be, bt->dgrad, bt->offset[LODE_VIT_N_PARAMS]);
      for (int p = 0; p < LODE_VIT_N_PARAMS; p++)
        grads[p] = bt->dgrad + bt->offset[p];
      vit_block_on (enc, be, b, &vb);
      lode_vit_block_backward_on (be, &vb, dx, train->acts[b], work, grads);
    }
  lode_vit_work_free (work);
  K->release (be, dx), K->release (be, dtok), K->release (be, dnorm);
  return TRUE;
}

static guint32
mix (guint64 a, guint64 b)
{
  guint64 x = a * 0x9E3779B97F4A7C15u ^ (b + 0x632BE59BD9B4E019u);

  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9u;
  x ^= x >> 27;
  return (guint32) (x >> 16);
}

gboolean
lode_prithvi_model_train_step (LodePrithviModel *self, const LodePrithviTrainOptions *options, const float *raw,
                               const guint8 *masks, int n, int n_bands, int h, int w, const LodePrithviCoords *coords,
                               gint64 step, double *loss, GError **error)
{
  int k, p, e, gh, gw;
  gsize plane = (gsize) h * w, in_count, full_count;
  g_autofree float *flipped = NULL, *input = NULL, *full = NULL, *dlogits = NULL;
  g_autofree gint16 *target = NULL;
  g_autofree char *what = NULL;
  float *maps[4] = { NULL }, *dmaps[4] = { NULL }, *din = NULL, *dfull = NULL, *ddlogits = NULL;
  const int *fb;
  Trainable train = { 0, -1, NULL, NULL };
  LodePrithviBackend be;
  const LodePrithviKernels *K;
  LodeAdamW opt;
  Frame f;
  double value;
  gboolean ok;

  g_return_val_if_fail (self != NULL && options != NULL && raw != NULL && masks != NULL, FALSE);
  g_return_val_if_fail (options->dice_weight >= 0.0f, FALSE);
  k = lode_prithvi_model_get_classes (self);
  p = self->encoder->config.patch_size;
  e = self->encoder->config.embed_dim;
  fb = self->encoder->config.feature_blocks;
  if (n < 2)
    {
      g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_INPUT,
                   _("Training needs batches of at least 2 patches"));
      return FALSE;
    }
  if (!lode_prithvi_model_check_unfreeze (self, options->unfreeze_blocks, error) || !frame_init (self, h, w, &f, error))
    return FALSE;
  train.last = lode_prithvi_model_get_max_unfreeze (self) - 1;
  train.first = train.last - options->unfreeze_blocks + 1;
  for (int b = train.first; b <= train.last; b++)
    if (block_train (self, b) == NULL)
      {
        g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_MEMORY,
                     _("Not enough memory to train %d blocks of the encoder"), options->unfreeze_blocks);
        return FALSE;
      }

  /* flips, per patch, of the bands and the mask alike */
  flipped = g_new (float, (gsize) n * n_bands * plane);
  target = g_new (gint16, (gsize) n * plane);
  for (int b = 0; b < n; b++)
    {
      guint32 r = options->flips ? mix (options->seed ^ (guint64) step, (guint64) b) : 0;
      gboolean fx = (r & 1) != 0, fy = (r & 2) != 0;

      for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
          {
            gsize src = (gsize) (fy ? h - 1 - y : y) * w + (fx ? w - 1 - x : x);
            gsize dst = (gsize) y * w + x;
            guint8 m = masks[(gsize) b * plane + src];

            for (int band = 0; band < n_bands; band++)
              flipped[((gsize) b * n_bands + band) * plane + dst] = raw[((gsize) b * n_bands + band) * plane + src];
            target[(gsize) b * plane + dst] = m < k && m != options->ignore_index ? m : -1;
          }
    }
  input = prepare_input (flipped, n, n_bands, &f, error);
  g_clear_pointer (&flipped, g_free);
  if (input == NULL)
    return FALSE;
  gh = f.ph / p, gw = f.pw / p;
  in_count = (gsize) n * LODE_PRITHVI_N_BANDS * f.ph * f.pw;
  full_count = (gsize) n * k * f.ph * f.pw;
  full = g_try_new (float, full_count);
  dlogits = g_try_new0 (float, full_count);
  if (full == NULL || dlogits == NULL)
    {
      g_set_error (error, LODE_PRITHVI_ERROR, LODE_PRITHVI_ERROR_MEMORY,
                   _("Not enough memory to train on %d patches"), n);
      return FALSE;
    }
  what = g_strdup_printf (_("train on %d patches"), n);

  /* one pass at a time on the model's device; the loss on the host */
  g_mutex_lock (&self->lock);
  be = lode_prithvi_backend_run (&self->be);
  K = be.k;
  for (int b = train.first; b <= train.last; b++)
    block_train_bind (&be, self->block_train[b]);
  din = K->alloc (&be, in_count);
  K->upload (&be, din, input, in_count);
  g_clear_pointer (&input, g_free);
  ok = encode_maps (self, &be, din, n, &f, coords, maps, options->unfreeze_blocks > 0 ? &train : NULL, error);
  K->release (&be, din);
  /* the decoder's gradients at the features the trained blocks give */
  for (int i = 0; i < 4 && ok; i++)
    if (fb[i] >= train.first && fb[i] <= train.last)
      dmaps[i] = K->alloc (&be, (gsize) n * e * gh * gw);
  dfull = ok ? K->alloc (&be, full_count) : NULL;
  ok = ok && lode_upernet_forward_train_on (self->decoder, &be, (const float *const *) maps, n, gh, gw,
                                            options->head_dropout, (guint64) mix (options->seed, (guint64) step) << 1 | 1,
                                            f.ph, f.pw, dfull, error);
  if (ok)
    K->download (&be, full, dfull, full_count);
  K->release (&be, dfull);
  ok = lode_prithvi_backend_check (&be, what, ok ? error : NULL) && ok;
  if (ok)
    {
      g_autofree float *logits = g_new (float, (gsize) n * k * plane);
      g_autofree float *dcrop = g_new (float, (gsize) n * k * plane);

      /* the U-Net's loss over the labelled pixels of the patch (the
       * padding is cropped away): weighted cross-entropy, plus the soft
       * Dice when asked; its gradient goes back into the padded frame,
       * zero outside the patch */
      crop (logits, full, n * k, &f);
      value = lode_grad_cross_entropy (dcrop, logits, target, options->class_weights, n, k, (int) plane, -1, 1.0f);
      if (options->dice_weight > 0.0f)
        value += options->dice_weight * lode_grad_dice (dcrop, logits, target, n, k, (int) plane, -1,
                                                        options->dice_weight);
      if (loss != NULL)
        *loss = value;
      for (int q = 0; q < n * k; q++)
        for (int y = 0; y < h; y++)
          memcpy (dlogits + ((gsize) q * f.ph + f.top + y) * f.pw + f.left, dcrop + ((gsize) q * h + y) * w,
                  w * sizeof (float));
      ddlogits = K->alloc (&be, full_count);
      K->upload (&be, ddlogits, dlogits, full_count);
      lode_upernet_zero_grad_on (self->decoder, &be);
      lode_upernet_backward_on (self->decoder, &be, ddlogits, dmaps);
      K->release (&be, ddlogits);
      ok = lode_prithvi_backend_check (&be, what, error);
      if (ok && options->unfreeze_blocks > 0)
        ok = encoder_backward (self, &be, &train, dmaps, n, gh, gw, error)
             && lode_prithvi_backend_check (&be, what, error);
    }
  if (ok)
    {
      /* one optimiser, its settings shared by the decoder and the blocks */
      lode_adamw_init_defaults (&opt);
      opt.lr = options->lr;
      opt.weight_decay = options->weight_decay;
      lode_upernet_adamw_step_on (self->decoder, &be, &opt);
      for (int b = train.first; b <= train.last; b++)
        {
          BlockTrain *bt = self->block_train[b];

          bt->step++;
          for (int q = 0; q < LODE_VIT_N_PARAMS; q++)
            K->adamw (&be, block_param_on (self->encoder, &be, b, q), bt->dgrad + bt->offset[q],
                      bt->dm + bt->offset[q], bt->dv + bt->offset[q], bt->offset[q + 1] - bt->offset[q], &opt,
                      bt->step);
        }
    }
  lode_upernet_release (self->decoder);
  trainable_clear (&be, &train, self->encoder->config.loaded_depth);
  for (int i = 0; i < 4; i++)
    {
      K->release (&be, maps[i]);
      K->release (&be, dmaps[i]);
    }
  ok = lode_prithvi_backend_check (&be, what, ok ? error : NULL) && ok;
  g_mutex_unlock (&self->lock);
  return ok;
}

/* ---- the training job ---------------------------------------------------- */

/* The coordinates of a batch drawn from a source, for the -TL encodings. */
typedef struct {
  gboolean  wanted;          /* the model encodes them and the source tells */
  float    *temporal;        /* [n, 2] */
  float    *location;        /* [n, 2] */
  gboolean  dates, places;   /* every sample so far has one */
} BatchCoords;

static void
batch_coords_init (BatchCoords *bc, LodePrithviModel *self, const LodeTrainSource *source, int n)
{
  const LodePrithviConfig *c = &self->encoder->config;

  memset (bc, 0, sizeof *bc);
  bc->wanted = source->get_coords != NULL && (c->temporal_encoding || c->location_encoding);
  if (bc->wanted)
    {
      bc->temporal = g_new0 (float, (gsize) 2 * n);
      bc->location = g_new0 (float, (gsize) 2 * n);
    }
}

static void
batch_coords_clear (BatchCoords *bc)
{
  g_clear_pointer (&bc->temporal, g_free);
  g_clear_pointer (&bc->location, g_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (BatchCoords, batch_coords_clear)

/* Asks for sample index of split as the batch's b-th. */
static gboolean
batch_coords_get (BatchCoords *bc, const LodeTrainSource *source, LodeTrainSplit split, int index, int b,
                  GError **error)
{
  LodeTrainCoords one = { 0 };

  if (!bc->wanted)
    return TRUE;
  if (b == 0)
    bc->dates = bc->places = TRUE;
  if (!source->get_coords (split, index, &one, source->user_data, error))
    return FALSE;
  bc->dates = bc->dates && one.has_date;
  bc->places = bc->places && one.has_location;
  bc->temporal[2 * b] = one.year;
  bc->temporal[2 * b + 1] = one.day_of_year;
  bc->location[2 * b] = one.latitude;
  bc->location[2 * b + 1] = one.longitude;
  return TRUE;
}

/* The coordinates of the batch gathered since its first sample, or NULL. */
static const LodePrithviCoords *
batch_coords_finish (BatchCoords *bc, LodePrithviCoords *out)
{
  if (!bc->wanted || (!bc->dates && !bc->places))
    return NULL;
  out->temporal = bc->dates ? bc->temporal : NULL;
  out->location = bc->places ? bc->location : NULL;
  return out;
}

static gboolean
check_source (LodePrithviModel *self, const LodeTrainConfig *config, const LodeTrainSource *source, GError **error)
{
  if (config->bands != LODE_PRITHVI_N_BANDS && config->bands != 13)
    {
      g_set_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_CONFIG,
                   _("Prithvi reads 6 bands (B, G, R, B8A, B11, B12) or the 13 SmallMinesDS bands, not %d"),
                   config->bands);
      return FALSE;
    }
  if (config->classes != lode_prithvi_model_get_classes (self))
    {
      g_set_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_CONFIG,
                   _("The decoder has %d classes, the training %d"), lode_prithvi_model_get_classes (self),
                   config->classes);
      return FALSE;
    }
  if (config->classes > LODE_TRAIN_MAX_CLASSES || !(config->dice_weight >= 0.0f))
    {
      g_set_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_CONFIG,
                   _("Cannot train %d classes with a Dice weight of %g: at most %d classes, the weight 0 or more"),
                   config->classes, config->dice_weight, LODE_TRAIN_MAX_CLASSES);
      return FALSE;
    }
  for (int c = 0; c < config->classes; c++)
    if (!(config->class_weights[c] >= 0.0f) || !isfinite (config->class_weights[c]))
      {
        g_set_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_CONFIG,
                     _("The weight of class %d is %g; class weights must be 0 or more"), c,
                     config->class_weights[c]);
        return FALSE;
      }
  if (source->height < 2 || source->width < 2)
    {
      g_set_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_DATA, _("The patches are empty"));
      return FALSE;
    }
  return TRUE;
}

gboolean
lode_prithvi_model_evaluate (LodePrithviModel *self, const LodeTrainConfig *config, const LodeTrainSource *source,
                             LodeTrainSplit split, LodeTrainMetrics *metrics, GCancellable *cancellable,
                             GError **error)
{
  int h, w, k, n, bands;
  gsize plane;
  g_autofree gint64 *cm = NULL;
  g_autofree float *images = NULL;
  g_autofree guint8 *truth = NULL, *pred = NULL;
  BatchCoords bc;
  LodePrithviCoords coords;
  gboolean ok = TRUE;

  g_return_val_if_fail (self != NULL && config != NULL && source != NULL && metrics != NULL, FALSE);
  if (!check_source (self, config, source, error))
    return FALSE;
  h = source->height, w = source->width, k = config->classes, bands = config->bands;
  plane = (gsize) h * w;
  n = source->count (split, source->user_data);
  cm = g_new0 (gint64, (gsize) k * k);
  images = g_new (float, (gsize) PREDICT_CHUNK * bands * plane);
  truth = g_new (guint8, (gsize) PREDICT_CHUNK * plane);
  pred = g_new (guint8, (gsize) PREDICT_CHUNK * plane);
  batch_coords_init (&bc, self, source, PREDICT_CHUNK);
  for (int start = 0; start < n && ok; start += PREDICT_CHUNK)
    {
      int m = MIN (PREDICT_CHUNK, n - start);

      for (int i = 0; i < m && ok; i++)
        ok = source->get (split, start + i, images + (gsize) i * bands * plane, truth + (gsize) i * plane,
                          source->user_data, error)
             && batch_coords_get (&bc, source, split, start + i, i, error);
      ok = ok && lode_prithvi_model_predict (self, images, m, bands, h, w, batch_coords_finish (&bc, &coords), NULL,
                                             pred, cancellable, error);
      for (gsize q = 0; ok && q < (gsize) m * plane; q++)
        if (truth[q] < k && truth[q] != config->ignore_index)
          cm[truth[q] * k + pred[q]]++;
    }
  batch_coords_clear (&bc);
  if (ok)
    lode_train_metrics_from_confusion (metrics, cm, k);
  return ok;
}

gboolean
lode_prithvi_model_train (LodePrithviModel *self, const LodeTrainConfig *config, int unfreeze_blocks,
                          const LodeTrainSource *source, const char *checkpoint_path, LodeTrainProgressFunc progress,
                          gpointer user_data, GCancellable *cancellable, GError **error)
{
  return lode_prithvi_model_train_from (self, config, unfreeze_blocks, source, checkpoint_path, 0, progress,
                                        user_data, cancellable, error);
}

gboolean
lode_prithvi_model_train_from (LodePrithviModel *self, const LodeTrainConfig *config, int unfreeze_blocks,
                               const LodeTrainSource *source, const char *checkpoint_path, gint64 first_step,
                               LodeTrainProgressFunc progress, gpointer user_data, GCancellable *cancellable,
                               GError **error)
{
  LodePrithviTrainOptions options;
  TrainState state;
  int h, w, bands, n_train, batch, steps_per_epoch;
  gint64 total, step = first_step;
  gsize plane;
  g_autofree guint *order = NULL;
  g_autofree float *images = NULL;
  g_autofree guint8 *masks = NULL;
  gint64 started = g_get_monotonic_time ();
  g_auto(BatchCoords) bc = { 0 };
  LodePrithviCoords coords;

  g_return_val_if_fail (self != NULL && config != NULL && source != NULL, FALSE);
  if (!check_source (self, config, source, error)
      || !lode_prithvi_model_check_unfreeze (self, unfreeze_blocks, error))
    return FALSE;
  h = source->height, w = source->width, bands = config->bands, batch = config->batch_size;
  plane = (gsize) h * w;
  n_train = source->count (LODE_TRAIN_SPLIT_TRAIN, source->user_data);
  if (batch < 2 || n_train < batch)
    {
      g_set_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_CONFIG,
                   _("Training the decoder needs batches of at least 2 patches and as many training patches "
                     "(batch %d, %d patches)"), batch, n_train);
      return FALSE;
    }
  steps_per_epoch = n_train / batch;
  total = (gint64) steps_per_epoch * config->epochs;
  if (config->max_steps > 0)
    total = MIN (total, config->max_steps);

  lode_prithvi_train_options_init (&options);
  options.lr = config->lr;
  options.weight_decay = config->weight_decay;
  options.flips = config->augment;
  options.ignore_index = config->ignore_index;
  options.seed = config->seed;
  options.unfreeze_blocks = unfreeze_blocks;
  options.class_weights = config->class_weights;
  options.dice_weight = config->dice_weight;
  state = (TrainState) { 0, config->seed, batch, unfreeze_blocks };
  order = g_new (guint, n_train);
  images = g_new (float, (gsize) batch * bands * plane);
  masks = g_new (guint8, (gsize) batch * plane);
  batch_coords_init (&bc, self, source, batch);

  /* a resumed run draws its epoch's order again and skips the steps done */
  for (int epoch = (int) (step / steps_per_epoch) + 1; step < total; epoch++)
    {
      guint32 seeds[2] = { (guint32) config->seed, (guint32) epoch };
      g_autoptr(GRand) rng = g_rand_new_with_seed_array (seeds, 2);
      LodeTrainProgress p = { 0 };
      LodeTrainMetrics metrics;
      double loss = 0.0;

      for (int i = 0; i < n_train; i++)
        order[i] = (guint) i;
      for (int i = n_train - 1; i > 0; i--)
        {
          int j = g_rand_int_range (rng, 0, i + 1);
          guint t = order[i];

          order[i] = order[j], order[j] = t;
        }
      for (int s = (int) (step % steps_per_epoch); s < steps_per_epoch && step < total; s++, step++)
        {
          if (g_cancellable_is_cancelled (cancellable))
            {
              state.step = step;
              if (checkpoint_path != NULL && !save_file (self, checkpoint_path, &state, error))
                return FALSE;
              return !g_cancellable_set_error_if_cancelled (cancellable, error);
            }
          for (int b = 0; b < batch; b++)
            if (!source->get (LODE_TRAIN_SPLIT_TRAIN, (int) order[s * batch + b], images + (gsize) b * bands * plane,
                              masks + (gsize) b * plane, source->user_data, error)
                || !batch_coords_get (&bc, source, LODE_TRAIN_SPLIT_TRAIN, (int) order[s * batch + b], b, error))
              return FALSE;
          if (!lode_prithvi_model_train_step (self, &options, images, masks, batch, bands, h, w,
                                              batch_coords_finish (&bc, &coords), step, &loss, error))
            return FALSE;
          if (progress != NULL)
            {
              double elapsed = (g_get_monotonic_time () - started) / 1e6;

              p = (LodeTrainProgress) { step + 1, total, epoch, config->epochs, loss,
                                        elapsed / (step - first_step + 1) * (total - step - 1), NULL };
              progress (&p, user_data);
            }
        }
      if (source->count (LODE_TRAIN_SPLIT_VALIDATION, source->user_data) > 0)
        {
          if (!lode_prithvi_model_evaluate (self, config, source, LODE_TRAIN_SPLIT_VALIDATION, &metrics,
                                            cancellable, error))
            return FALSE;
          if (progress != NULL)
            {
              p.metrics = &metrics;
              progress (&p, user_data);
            }
        }
      state.step = step;
      if (checkpoint_path != NULL && !save_file (self, checkpoint_path, &state, error))
        return FALSE;
    }
  return TRUE;
}
