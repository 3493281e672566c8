/* lode-unet.c: U-Net with a ResNet encoder (see lode-unet.h).
 *
 * The network is a list of "units" (a convolution, optionally followed by
 * batch norm and ReLU), grouped into residual blocks for the encoder and
 * into decoder blocks. Each unit keeps its convolution output z (the input
 * of batch norm), its output y and a buffer dy for the gradient of y; the
 * backward of a unit turns dy, in place, into the gradient of z and then
 * into the gradient of its input, written into the dy of the unit before it
 * (or added to it, where two paths meet: residual shortcuts, U-Net skips).
 */
#define G_LOG_DOMAIN "lode-model"

#include "config.h"

#include <glib/gi18n.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "lode-grad.h"
#include "lode-ops.h"
#include "lode-unet.h"

G_DEFINE_QUARK (lode-unet-error-quark, lode_unet_error)

#define BN_EPS 1e-5f
#define BN_MOMENTUM 0.1f
#define N_DECODER 5

static const int decoder_channels[N_DECODER] = { 256, 128, 64, 32, 16 };

typedef struct {
  char   *name;
  int     ndim;
  gint64  shape[4];
  gsize   offset;   /* into params or buffers */
  gsize   numel;
  gboolean buffer;  /* running statistics */
} TensorInfo;

typedef struct {
  int c_in, c_out, k, stride, pad;
  gboolean has_bn, relu, has_bias, encoder;
  gsize w_off, b_off, g_off;  /* params: conv weight, bias or BN shift, BN scale */
  gsize rm_off, rv_off;       /* buffers */
  /* the last forward */
  LodeConvShape shape;
  int oh, ow;
  gboolean batch_stats;
  gsize cap;
  float *z, *y, *dy;          /* y == z without batch norm */
  float *mean, *invstd;
} Unit;

typedef struct {
  Unit u[3];
  int nu;
  Unit ds;
  gboolean has_ds;
  const float *in;
  float *out, *dout;
  gsize cap;
} Block;

typedef struct {
  Unit conv1, conv2;
  int c_in, c_skip;
  float *up, *cat, *dcat, *dup;
  gsize cap_up, cap_cat;
} DecoderBlock;

struct _LodeUnet {
  LodeUnetConfig config;
  GArray *tensors;           /* TensorInfo */
  GHashTable *by_name;       /* name -> index + 1 */
  float *params, *grads, *buffers;
  gsize n_params, n_buffers, n_encoder_params;

  Unit stem;
  float *pool, *dpool;
  gint32 *pool_arg;
  gsize cap_pool;
  int n_blocks[4];
  Block *layers[4];
  int enc_channels[6];
  DecoderBlock dec[N_DECODER];
  Unit head;

  /* the last forward */
  const float *input;
  int n, h, w;
  LodeUnetMode mode;
};

/* ---- construction ------------------------------------------------------- */

const char *
lode_unet_encoder_name (LodeUnetEncoder encoder)
{
  switch (encoder)
    {
    case LODE_UNET_RESNET18: return "resnet18";
    case LODE_UNET_RESNET34: return "resnet34";
    case LODE_UNET_RESNET50: return "resnet50";
    default: return NULL;
    }
}

gboolean
lode_unet_encoder_from_name (const char      *name,
                             LodeUnetEncoder *encoder)
{
  for (int e = LODE_UNET_RESNET18; e <= LODE_UNET_RESNET50; e++)
    if (g_strcmp0 (name, lode_unet_encoder_name (e)) == 0)
      {
        *encoder = e;
        return TRUE;
      }
  return FALSE;
}

static gsize
add_tensor (LodeUnet   *self,
            const char *name,
            int         ndim,
            const gint64 *shape,
            gboolean    buffer)
{
  TensorInfo t = { .name = g_strdup (name), .ndim = ndim, .buffer = buffer, .numel = 1 };

  for (int d = 0; d < ndim; d++)
    {
      t.shape[d] = shape[d];
      t.numel *= shape[d];
    }
  if (buffer)
    {
      t.offset = self->n_buffers;
      self->n_buffers += t.numel;
    }
  else
    {
      t.offset = self->n_params;
      self->n_params += t.numel;
    }
  g_array_append_val (self->tensors, t);
  g_hash_table_insert (self->by_name, t.name, GUINT_TO_POINTER (self->tensors->len));
  return t.offset;
}

/* Registers a unit's tensors: conv_name.weight (and .bias), and the batch
 * norm bn_name.{weight,bias,running_mean,running_var} when bn_name. */
static void
unit_init (LodeUnet   *self,
           Unit       *u,
           const char *conv_name,
           const char *bn_name,
           int         c_in,
           int         c_out,
           int         k,
           int         stride,
           gboolean    relu,
           gboolean    has_bias,
           gboolean    encoder)
{
  gint64 wshape[4] = { c_out, c_in, k, k }, cshape[1] = { c_out };
  g_autofree char *wname = g_strconcat (conv_name, ".weight", NULL);

  memset (u, 0, sizeof *u);
  u->c_in = c_in;
  u->c_out = c_out;
  u->k = k;
  u->stride = stride;
  u->pad = k / 2;
  u->relu = relu;
  u->has_bn = bn_name != NULL;
  u->has_bias = has_bias;
  u->encoder = encoder;
  u->w_off = add_tensor (self, wname, 4, wshape, FALSE);
  if (has_bias)
    {
      g_autofree char *bname = g_strconcat (conv_name, ".bias", NULL);
      u->b_off = add_tensor (self, bname, 1, cshape, FALSE);
    }
  if (u->has_bn)
    {
      g_autofree char *n1 = g_strconcat (bn_name, ".weight", NULL);
      g_autofree char *n2 = g_strconcat (bn_name, ".bias", NULL);
      g_autofree char *n3 = g_strconcat (bn_name, ".running_mean", NULL);
      g_autofree char *n4 = g_strconcat (bn_name, ".running_var", NULL);

      u->g_off = add_tensor (self, n1, 1, cshape, FALSE);
      u->b_off = add_tensor (self, n2, 1, cshape, FALSE);
      u->rm_off = add_tensor (self, n3, 1, cshape, TRUE);
      u->rv_off = add_tensor (self, n4, 1, cshape, TRUE);
    }
}

static void
unit_release (Unit *u)
{
  if (u->has_bn)
    g_free (u->z);
  g_clear_pointer (&u->y, g_free);
  g_clear_pointer (&u->dy, g_free);
  g_clear_pointer (&u->mean, g_free);
  g_clear_pointer (&u->invstd, g_free);
  u->z = NULL;
  u->cap = 0;
}

/* The encoder: torchvision's ResNet under "encoder.". */
static void
build_encoder (LodeUnet *self)
{
  const LodeUnetConfig *c = &self->config;
  gboolean bottleneck = c->encoder == LODE_UNET_RESNET50;
  int expansion = bottleneck ? 4 : 1;
  int in_planes = 64;
  static const int blocks18[4] = { 2, 2, 2, 2 }, blocks34[4] = { 3, 4, 6, 3 };
  const int *nb = c->encoder == LODE_UNET_RESNET18 ? blocks18 : blocks34;

  unit_init (self, &self->stem, "encoder.conv1", "encoder.bn1", c->in_channels, 64, 7, 2,
             TRUE, FALSE, TRUE);
  self->stem.pad = 3;
  self->enc_channels[0] = c->in_channels;
  self->enc_channels[1] = 64;

  for (int l = 0; l < 4; l++)
    {
      int planes = 64 << l;
      int stride = l == 0 ? 1 : 2;

      self->n_blocks[l] = nb[l];
      self->layers[l] = g_new0 (Block, nb[l]);
      for (int b = 0; b < nb[l]; b++)
        {
          Block *blk = &self->layers[l][b];
          int s = b == 0 ? stride : 1;
          g_autofree char *p = g_strdup_printf ("encoder.layer%d.%d", l + 1, b);
          g_autofree char *c1 = g_strconcat (p, ".conv1", NULL);
          g_autofree char *b1 = g_strconcat (p, ".bn1", NULL);
          g_autofree char *c2 = g_strconcat (p, ".conv2", NULL);
          g_autofree char *b2 = g_strconcat (p, ".bn2", NULL);
          g_autofree char *c3 = g_strconcat (p, ".conv3", NULL);
          g_autofree char *b3 = g_strconcat (p, ".bn3", NULL);
          g_autofree char *d0 = g_strconcat (p, ".downsample.0", NULL);
          g_autofree char *d1 = g_strconcat (p, ".downsample.1", NULL);

          if (bottleneck)
            {
              blk->nu = 3;
              unit_init (self, &blk->u[0], c1, b1, in_planes, planes, 1, 1, TRUE, FALSE, TRUE);
              unit_init (self, &blk->u[1], c2, b2, planes, planes, 3, s, TRUE, FALSE, TRUE);
              unit_init (self, &blk->u[2], c3, b3, planes, planes * 4, 1, 1, FALSE, FALSE, TRUE);
            }
          else
            {
              blk->nu = 2;
              unit_init (self, &blk->u[0], c1, b1, in_planes, planes, 3, s, TRUE, FALSE, TRUE);
              unit_init (self, &blk->u[1], c2, b2, planes, planes, 3, 1, FALSE, FALSE, TRUE);
            }
          blk->has_ds = s != 1 || in_planes != planes * expansion;
          if (blk->has_ds)
            unit_init (self, &blk->ds, d0, d1, in_planes, planes * expansion, 1, s,
                       FALSE, FALSE, TRUE);
          in_planes = planes * expansion;
        }
      self->enc_channels[l + 2] = in_planes;
    }
}

/* segmentation_models_pytorch's UnetDecoder and SegmentationHead. */
static void
build_decoder (LodeUnet *self)
{
  int in_ch = self->enc_channels[5];

  for (int j = 0; j < N_DECODER; j++)
    {
      DecoderBlock *d = &self->dec[j];
      int skip = j < 4 ? self->enc_channels[4 - j] : 0;
      int out = decoder_channels[j];
      g_autofree char *c1 = g_strdup_printf ("decoder.blocks.%d.conv1.0", j);
      g_autofree char *b1 = g_strdup_printf ("decoder.blocks.%d.conv1.1", j);
      g_autofree char *c2 = g_strdup_printf ("decoder.blocks.%d.conv2.0", j);
      g_autofree char *b2 = g_strdup_printf ("decoder.blocks.%d.conv2.1", j);

      d->c_in = in_ch;
      d->c_skip = skip;
      unit_init (self, &d->conv1, c1, b1, in_ch + skip, out, 3, 1, TRUE, FALSE, FALSE);
      unit_init (self, &d->conv2, c2, b2, out, out, 3, 1, TRUE, FALSE, FALSE);
      in_ch = out;
    }
  unit_init (self, &self->head, "segmentation_head.0", NULL, in_ch, self->config.classes,
             3, 1, FALSE, TRUE, FALSE);
}

static double
gauss (GRand *rand)
{
  double u1 = 1.0 - g_rand_double (rand), u2 = g_rand_double (rand);

  return sqrt (-2.0 * log (u1)) * cos (2.0 * G_PI * u2);
}

static void
init_weights (LodeUnet *self,
              guint64   seed)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed_array ((const guint32[]) { (guint32) seed,
                                                                          (guint32) (seed >> 32) }, 2);
  gboolean in_head;

  for (guint i = 0; i < self->tensors->len; i++)
    {
      TensorInfo *t = &g_array_index (self->tensors, TensorInfo, i);
      float *p = (t->buffer ? self->buffers : self->params) + t->offset;
      const char *leaf = strrchr (t->name, '.') + 1;

      if (t->buffer)
        {
          float v = strcmp (leaf, "running_var") == 0 ? 1.0f : 0.0f;
          for (gsize e = 0; e < t->numel; e++)
            p[e] = v;
          continue;
        }
      if (t->ndim == 1)
        {
          /* batch norm scale 1, shifts and biases 0 */
          float v = strcmp (leaf, "weight") == 0 ? 1.0f : 0.0f;
          for (gsize e = 0; e < t->numel; e++)
            p[e] = v;
          continue;
        }
      in_head = g_str_has_prefix (t->name, "segmentation_head.");
      {
        gsize fan_in = t->numel / t->shape[0];
        gsize fan_out = t->shape[0] * t->shape[2] * t->shape[3];

        if (in_head)
          {
            double a = sqrt (6.0 / (fan_in + fan_out));
            for (gsize e = 0; e < t->numel; e++)
              p[e] = (float) g_rand_double_range (rand, -a, a);
          }
        else if (g_str_has_prefix (t->name, "encoder."))
          {
            double sd = sqrt (2.0 / fan_out);
            for (gsize e = 0; e < t->numel; e++)
              p[e] = (float) (sd * gauss (rand));
          }
        else
          {
            double a = sqrt (6.0 / fan_in);
            for (gsize e = 0; e < t->numel; e++)
              p[e] = (float) g_rand_double_range (rand, -a, a);
          }
      }
    }
}

static void
tensor_info_clear (gpointer data)
{
  g_free (((TensorInfo *) data)->name);
}

LodeUnet *
lode_unet_new (const LodeUnetConfig *config,
               guint64               seed,
               GError              **error)
{
  LodeUnet *self;

  g_return_val_if_fail (config != NULL, NULL);

  if (lode_unet_encoder_name (config->encoder) == NULL)
    {
      g_set_error (error, LODE_UNET_ERROR, LODE_UNET_ERROR_CONFIG,
                   _("Unknown U-Net encoder %d"), (int) config->encoder);
      return NULL;
    }
  if (config->in_channels < 1 || config->in_channels > 64
      || config->classes < 1 || config->classes > 256)
    {
      g_set_error (error, LODE_UNET_ERROR, LODE_UNET_ERROR_CONFIG,
                   _("A U-Net needs 1 to 64 bands and 1 to 256 classes, not %d bands and %d classes"),
                   config->in_channels, config->classes);
      return NULL;
    }

  self = g_new0 (LodeUnet, 1);
  self->config = *config;
  self->tensors = g_array_new (FALSE, TRUE, sizeof (TensorInfo));
  g_array_set_clear_func (self->tensors, tensor_info_clear);
  self->by_name = g_hash_table_new (g_str_hash, g_str_equal);

  build_encoder (self);
  self->n_encoder_params = self->n_params;
  build_decoder (self);

  self->params = g_new (float, self->n_params);
  self->grads = g_new0 (float, self->n_params);
  self->buffers = g_new (float, self->n_buffers);
  init_weights (self, seed);
  return self;
}

static void
block_release (Block *b)
{
  for (int i = 0; i < b->nu; i++)
    unit_release (&b->u[i]);
  if (b->has_ds)
    unit_release (&b->ds);
  g_clear_pointer (&b->out, g_free);
  g_clear_pointer (&b->dout, g_free);
  b->cap = 0;
}

void
lode_unet_trim (LodeUnet *self)
{
  g_return_if_fail (self != NULL);

  unit_release (&self->stem);
  g_clear_pointer (&self->pool, g_free);
  g_clear_pointer (&self->dpool, g_free);
  g_clear_pointer (&self->pool_arg, g_free);
  self->cap_pool = 0;
  for (int l = 0; l < 4; l++)
    for (int b = 0; b < self->n_blocks[l]; b++)
      block_release (&self->layers[l][b]);
  for (int j = 0; j < N_DECODER; j++)
    {
      DecoderBlock *d = &self->dec[j];
      unit_release (&d->conv1);
      unit_release (&d->conv2);
      g_clear_pointer (&d->up, g_free);
      g_clear_pointer (&d->dup, g_free);
      g_clear_pointer (&d->cat, g_free);
      g_clear_pointer (&d->dcat, g_free);
      d->cap_up = d->cap_cat = 0;
    }
  unit_release (&self->head);
  self->input = NULL;
}

void
lode_unet_free (LodeUnet *self)
{
  if (self == NULL)
    return;
  lode_unet_trim (self);
  for (int l = 0; l < 4; l++)
    g_free (self->layers[l]);
  g_hash_table_unref (self->by_name);
  g_array_unref (self->tensors);
  g_free (self->params);
  g_free (self->grads);
  g_free (self->buffers);
  g_free (self);
}

const LodeUnetConfig *
lode_unet_get_config (LodeUnet *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return &self->config;
}

/* ---- tensors ------------------------------------------------------------ */

static TensorInfo *
tensor_at (LodeUnet *self,
           guint     i)
{
  g_return_val_if_fail (self != NULL && i < self->tensors->len, NULL);
  return &g_array_index (self->tensors, TensorInfo, i);
}

guint
lode_unet_n_tensors (LodeUnet *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->tensors->len;
}

const char *
lode_unet_tensor_name (LodeUnet *self,
                       guint     i)
{
  TensorInfo *t = tensor_at (self, i);
  return t ? t->name : NULL;
}

int
lode_unet_tensor_shape (LodeUnet *self,
                        guint     i,
                        gint64    shape[4])
{
  TensorInfo *t = tensor_at (self, i);

  if (t == NULL)
    return 0;
  memcpy (shape, t->shape, sizeof (gint64) * t->ndim);
  return t->ndim;
}

gsize
lode_unet_tensor_numel (LodeUnet *self,
                        guint     i)
{
  TensorInfo *t = tensor_at (self, i);
  return t ? t->numel : 0;
}

float *
lode_unet_tensor_data (LodeUnet *self,
                       guint     i)
{
  TensorInfo *t = tensor_at (self, i);

  if (t == NULL)
    return NULL;
  return (t->buffer ? self->buffers : self->params) + t->offset;
}

float *
lode_unet_tensor_grad (LodeUnet *self,
                       guint     i)
{
  TensorInfo *t = tensor_at (self, i);

  if (t == NULL || t->buffer)
    return NULL;
  return self->grads + t->offset;
}

int
lode_unet_find_tensor (LodeUnet   *self,
                       const char *name)
{
  g_return_val_if_fail (self != NULL && name != NULL, -1);
  return GPOINTER_TO_INT (g_hash_table_lookup (self->by_name, name)) - 1;
}

float *
lode_unet_params (LodeUnet *self,
                  gsize    *count)
{
  g_return_val_if_fail (self != NULL, NULL);
  if (count)
    *count = self->n_params;
  return self->params;
}

float *
lode_unet_grads (LodeUnet *self,
                 gsize    *count)
{
  g_return_val_if_fail (self != NULL, NULL);
  if (count)
    *count = self->n_params;
  return self->grads;
}

gsize
lode_unet_encoder_params (LodeUnet *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->n_encoder_params;
}

float *
lode_unet_buffers (LodeUnet *self,
                   gsize    *count)
{
  g_return_val_if_fail (self != NULL, NULL);
  if (count)
    *count = self->n_buffers;
  return self->buffers;
}

void
lode_unet_zero_grad (LodeUnet *self)
{
  g_return_if_fail (self != NULL);
  memset (self->grads, 0, sizeof (float) * self->n_params);
}

/* The first convolution of a 3-band checkpoint for a model of `bands`
 * bands, as segmentation_models_pytorch's patch_first_conv: one band takes
 * the sum over RGB; otherwise band i takes RGB channel i mod 3, and all are
 * scaled by 3 / bands. */
static void
adapt_first_conv (float       *dst,
                  const float *src,
                  int          c_out,
                  int          bands,
                  int          kk)
{
  for (int o = 0; o < c_out; o++)
    for (int i = 0; i < bands; i++)
      for (int e = 0; e < kk; e++)
        {
          float v;
          if (bands == 1)
            v = src[(o * 3 + 0) * kk + e] + src[(o * 3 + 1) * kk + e] + src[(o * 3 + 2) * kk + e];
          else
            v = src[(o * 3 + i % 3) * kk + e] * (3.0f / bands);
          dst[((gsize) o * bands + i) * kk + e] = v;
        }
}

gboolean
lode_unet_load_checkpoint (LodeUnet       *self,
                           LodeCheckpoint *checkpoint,
                           guint          *n_loaded,
                           GError        **error)
{
  guint loaded = 0, enc_total = 0, enc_found = 0, dec_total = 0, dec_found = 0;
  g_autofree char **names = NULL;
  const char *first_missing_enc = NULL, *first_missing_dec = NULL;
  gboolean bare;

  g_return_val_if_fail (self != NULL && checkpoint != NULL, FALSE);

  /* smp names ("encoder.conv1.weight") or a bare ResNet ("conv1.weight") */
  bare = !lode_checkpoint_has (checkpoint, "encoder.conv1.weight")
         && lode_checkpoint_has (checkpoint, "conv1.weight");
  names = g_new0 (char *, self->tensors->len);

  /* first pass: what is there, and does it fit */
  for (guint i = 0; i < self->tensors->len; i++)
    {
      TensorInfo *t = tensor_at (self, i);
      gboolean enc = g_str_has_prefix (t->name, "encoder.");
      const char *name = bare && enc ? t->name + strlen ("encoder.") : t->name;
      gint64 shape[LODE_TENSOR_MAX_DIMS];
      int ndim;

      if (enc)
        enc_total++;
      else
        dec_total++;
      if (!lode_checkpoint_shape (checkpoint, name, &ndim, shape))
        {
          if (enc && first_missing_enc == NULL)
            first_missing_enc = name;
          if (!enc && first_missing_dec == NULL)
            first_missing_dec = name;
          continue;
        }
      if (ndim != t->ndim
          || memcmp (shape, t->shape, sizeof (gint64) * ndim) != 0)
        {
          gboolean adaptable = strcmp (t->name, "encoder.conv1.weight") == 0 && ndim == 4
                               && shape[0] == t->shape[0] && shape[1] == 3
                               && shape[2] == t->shape[2] && shape[3] == t->shape[3];
          if (!adaptable)
            {
              g_autofree char *want = g_strdup_printf ("%" PRId64, t->shape[0]);
              g_set_error (error, LODE_UNET_ERROR, LODE_UNET_ERROR_CHECKPOINT,
                           _("The checkpoint's tensor “%s” has another shape than the %s U-Net's "
                             "(%d dimensions, %" PRId64 " first; expected %d, %s)"),
                           name, lode_unet_encoder_name (self->config.encoder), ndim, shape[0],
                           t->ndim, want);
              return FALSE;
            }
        }
      names[i] = (char *) name;
      if (enc)
        enc_found++;
      else
        dec_found++;
    }
  if (enc_found == 0)
    {
      g_set_error (error, LODE_UNET_ERROR, LODE_UNET_ERROR_CHECKPOINT,
                   _("The checkpoint holds no %s encoder (no tensor “%s”)"),
                   lode_unet_encoder_name (self->config.encoder), first_missing_enc);
      return FALSE;
    }
  if (enc_found < enc_total || (dec_found > 0 && dec_found < dec_total))
    {
      g_set_error (error, LODE_UNET_ERROR, LODE_UNET_ERROR_CHECKPOINT,
                   _("The checkpoint lacks the tensor “%s” of the %s U-Net"),
                   enc_found < enc_total ? first_missing_enc : first_missing_dec,
                   lode_unet_encoder_name (self->config.encoder));
      return FALSE;
    }

  for (guint i = 0; i < self->tensors->len; i++)
    {
      TensorInfo *t = tensor_at (self, i);
      g_autoptr(LodeTensor) src = NULL;
      float *dst = lode_unet_tensor_data (self, i);

      if (names[i] == NULL)
        continue;
      src = lode_checkpoint_load (checkpoint, names[i], error);
      if (src == NULL)
        return FALSE;
      if (src->numel == t->numel)
        memcpy (dst, src->data, sizeof (float) * t->numel);
      else
        adapt_first_conv (dst, src->data, (int) t->shape[0], self->config.in_channels,
                          (int) (t->shape[2] * t->shape[3]));
      loaded++;
    }
  if (n_loaded)
    *n_loaded = loaded;
  return TRUE;
}

/* ---- forward ------------------------------------------------------------ */

static void
unit_forward (LodeUnet    *self,
              Unit        *u,
              const float *x,
              int          n,
              int          h,
              int          w,
              gboolean     batch_stats)
{
  gsize need, hw;
  float *par = self->params, *buf = self->buffers;

  lode_conv_shape_init (&u->shape, n, u->c_in, h, w, u->c_out, u->k, u->stride, u->pad);
  lode_conv_shape_out_size (&u->shape, &u->oh, &u->ow);
  hw = (gsize) u->oh * u->ow;
  need = (gsize) n * u->c_out * hw;
  if (need > u->cap || u->y == NULL)
    {
      unit_release (u);
      u->y = g_new (float, need);
      u->dy = g_new (float, need);
      u->z = u->has_bn ? g_new (float, need) : u->y;
      u->mean = g_new (float, u->c_out);
      u->invstd = g_new (float, u->c_out);
      u->cap = need;
    }
  u->batch_stats = batch_stats;

  lode_ops_conv2d (u->z, x, par + u->w_off, u->has_bias ? par + u->b_off : NULL, &u->shape);
  if (u->has_bn)
    {
      if (batch_stats)
        lode_grad_batch_norm_train (u->y, u->z, par + u->g_off, par + u->b_off,
                                    buf + u->rm_off, buf + u->rv_off, u->mean, u->invstd,
                                    n, u->c_out, (int) hw, BN_EPS, BN_MOMENTUM);
      else
        {
          lode_ops_batch_norm (u->y, u->z, buf + u->rm_off, buf + u->rv_off,
                               par + u->g_off, par + u->b_off, n, u->c_out, (int) hw, BN_EPS);
          memcpy (u->mean, buf + u->rm_off, sizeof (float) * u->c_out);
          lode_grad_invstd (u->invstd, buf + u->rv_off, u->c_out, BN_EPS);
        }
    }
  if (u->relu)
    lode_ops_relu (u->y, u->y, need);
}

/* u->dy holds dL/dy; it is consumed. dx (may be NULL) receives dL/dx,
 * added to when accumulate. */
static void
unit_backward (LodeUnet    *self,
               Unit        *u,
               const float *x,
               float       *dx,
               gboolean     accumulate)
{
  gsize hw = (gsize) u->oh * u->ow, count = (gsize) u->shape.n * u->c_out * hw;
  float *par = self->params, *gr = self->grads;

  if (u->relu)
    lode_grad_relu (u->dy, u->dy, u->y, count);
  if (u->has_bn)
    lode_grad_batch_norm (u->dy, gr + u->g_off, gr + u->b_off, u->dy, u->z, u->mean,
                          u->invstd, par + u->g_off, u->shape.n, u->c_out, (int) hw,
                          u->batch_stats);
  lode_grad_conv2d (dx, gr + u->w_off, u->has_bias ? gr + u->b_off : NULL, u->dy, x,
                    par + u->w_off, &u->shape, accumulate);
}

static void
block_forward (LodeUnet    *self,
               Block       *b,
               const float *x,
               int          n,
               int          h,
               int          w,
               gboolean     batch_stats,
               int         *oh,
               int         *ow)
{
  Unit *last = &b->u[b->nu - 1];
  gsize count;
  const float *prev = x;
  int ph = h, pw = w;

  b->in = x;
  for (int i = 0; i < b->nu; i++)
    {
      unit_forward (self, &b->u[i], prev, n, ph, pw, batch_stats);
      prev = b->u[i].y;
      ph = b->u[i].oh;
      pw = b->u[i].ow;
    }
  count = (gsize) n * last->c_out * ph * pw;
  if (count > b->cap || b->out == NULL)
    {
      g_free (b->out);
      g_free (b->dout);
      b->out = g_new (float, count);
      b->dout = g_new (float, count);
      b->cap = count;
    }
  if (b->has_ds)
    {
      unit_forward (self, &b->ds, x, n, h, w, batch_stats);
      lode_ops_add (b->out, last->y, b->ds.y, count);
    }
  else
    lode_ops_add (b->out, last->y, x, count);
  lode_ops_relu (b->out, b->out, count);
  *oh = ph;
  *ow = pw;
}

/* b->dout holds dL/dout; dx gets dL/dx (added to when accumulate). */
static void
block_backward (LodeUnet *self,
                Block    *b,
                float    *dx,
                gboolean  accumulate)
{
  Unit *last = &b->u[b->nu - 1];
  gsize count = (gsize) last->shape.n * last->c_out * last->oh * last->ow;

  lode_grad_relu (b->dout, b->dout, b->out, count);
  memcpy (last->dy, b->dout, sizeof (float) * count);
  for (int i = b->nu - 1; i >= 0; i--)
    {
      const float *in = i > 0 ? b->u[i - 1].y : b->in;
      if (i > 0)
        unit_backward (self, &b->u[i], in, b->u[i - 1].dy, FALSE);
      else
        unit_backward (self, &b->u[i], in, dx, accumulate);
    }
  if (b->has_ds)
    {
      memcpy (b->ds.dy, b->dout, sizeof (float) * count);
      unit_backward (self, &b->ds, b->in, dx, TRUE);
    }
  else
    lode_ops_add (dx, dx, b->dout, count);
}

static float *
block_last_dout (LodeUnet *self,
                 int       layer)
{
  return self->layers[layer][self->n_blocks[layer] - 1].dout;
}

gboolean
lode_unet_forward (LodeUnet     *self,
                   const float  *input,
                   int           n,
                   int           h,
                   int           w,
                   LodeUnetMode  mode,
                   float        *logits,
                   GError      **error)
{
  gboolean enc_batch, dec_batch;
  int ph, pw, fh[6], fw[6];
  const float *x, *feat[6];
  gsize count;

  g_return_val_if_fail (self != NULL && input != NULL && logits != NULL, FALSE);
  g_return_val_if_fail (n > 0, FALSE);

  if (h < 32 || w < 32 || h % 32 != 0 || w % 32 != 0)
    {
      g_set_error (error, LODE_UNET_ERROR, LODE_UNET_ERROR_SIZE,
                   _("The U-Net takes images whose sides are multiples of 32, not %d × %d"),
                   w, h);
      return FALSE;
    }
  self->input = input;
  self->n = n;
  self->h = h;
  self->w = w;
  self->mode = mode;
  enc_batch = mode == LODE_UNET_TRAIN;
  dec_batch = mode != LODE_UNET_EVAL;

  /* encoder */
  feat[0] = input;
  fh[0] = h;
  fw[0] = w;
  unit_forward (self, &self->stem, input, n, h, w, enc_batch);
  feat[1] = self->stem.y;
  fh[1] = self->stem.oh;
  fw[1] = self->stem.ow;
  ph = lode_ops_pool_out_size (fh[1], 3, 2, 1);
  pw = lode_ops_pool_out_size (fw[1], 3, 2, 1);
  count = (gsize) n * 64 * ph * pw;
  if (count > self->cap_pool || self->pool == NULL)
    {
      g_free (self->pool);
      g_free (self->dpool);
      g_free (self->pool_arg);
      self->pool = g_new (float, count);
      self->dpool = g_new (float, count);
      self->pool_arg = g_new (gint32, count);
      self->cap_pool = count;
    }
  lode_grad_max_pool2d_forward (self->pool, self->pool_arg, self->stem.y, n, 64,
                                fh[1], fw[1], 3, 2, 1);
  x = self->pool;
  for (int l = 0; l < 4; l++)
    {
      for (int b = 0; b < self->n_blocks[l]; b++)
        {
          block_forward (self, &self->layers[l][b], x, n, ph, pw, enc_batch, &ph, &pw);
          x = self->layers[l][b].out;
        }
      feat[l + 2] = x;
      fh[l + 2] = ph;
      fw[l + 2] = pw;
    }

  /* decoder */
  for (int j = 0; j < N_DECODER; j++)
    {
      DecoderBlock *d = &self->dec[j];
      int sh = fh[5 - j], sw = fw[5 - j];   /* the size before this block */
      gsize nup = (gsize) n * d->c_in * sh * sw * 4;
      gsize ncat = (gsize) n * (d->c_in + d->c_skip) * sh * sw * 4;

      if (nup > d->cap_up || d->up == NULL)
        {
          g_free (d->up);
          g_free (d->dup);
          d->up = g_new (float, nup);
          d->dup = g_new (float, nup);
          d->cap_up = nup;
        }
      lode_grad_upsample2x_forward (d->up, x, n * d->c_in, sh, sw);
      if (d->c_skip > 0)
        {
          if (ncat > d->cap_cat || d->cat == NULL)
            {
              g_free (d->cat);
              g_free (d->dcat);
              d->cat = g_new (float, ncat);
              d->dcat = g_new (float, ncat);
              d->cap_cat = ncat;
            }
          lode_grad_concat_channels (d->cat, d->up, d->c_in, feat[4 - j], d->c_skip, n,
                                     sh * sw * 4);
        }
      unit_forward (self, &d->conv1, d->c_skip > 0 ? d->cat : d->up, n, 2 * sh, 2 * sw,
                    dec_batch);
      unit_forward (self, &d->conv2, d->conv1.y, n, 2 * sh, 2 * sw, dec_batch);
      x = d->conv2.y;
    }
  unit_forward (self, &self->head, x, n, h, w, FALSE);
  memcpy (logits, self->head.y, sizeof (float) * n * self->config.classes * h * w);
  return TRUE;
}

void
lode_unet_backward (LodeUnet    *self,
                    const float *dlogits)
{
  gboolean full;
  float *dfeat[6];
  int n, ph, pw;

  g_return_if_fail (self != NULL && dlogits != NULL);
  g_return_if_fail (self->input != NULL);

  n = self->n;
  full = self->mode != LODE_UNET_TRAIN_DECODER;
  dfeat[1] = self->stem.dy;
  for (int l = 0; l < 4; l++)
    dfeat[l + 2] = block_last_dout (self, l);
  if (full)
    for (int f = 1; f <= 4; f++)
      {
        Unit *u = f == 1 ? &self->stem : NULL;
        gsize count = u ? (gsize) n * u->c_out * u->oh * u->ow
                        : (gsize) n * self->enc_channels[f] * (self->h >> f) * (self->w >> f);
        memset (dfeat[f], 0, sizeof (float) * count);
      }

  memcpy (self->head.dy, dlogits, sizeof (float) * n * self->config.classes * self->h * self->w);
  unit_backward (self, &self->head, self->dec[N_DECODER - 1].conv2.y,
                 self->dec[N_DECODER - 1].conv2.dy, FALSE);
  for (int j = N_DECODER - 1; j >= 0; j--)
    {
      DecoderBlock *d = &self->dec[j];
      int sh = self->h >> (5 - j), sw = self->w >> (5 - j);
      float *dprev;

      unit_backward (self, &d->conv2, d->conv1.y, d->conv1.dy, FALSE);
      if (d->c_skip > 0)
        {
          unit_backward (self, &d->conv1, d->cat, d->dcat, FALSE);
          lode_grad_split_channels (d->dup, full ? dfeat[4 - j] : NULL, d->dcat, d->c_in,
                                    d->c_skip, n, sh * sw * 4);
        }
      else
        unit_backward (self, &d->conv1, d->up, d->dup, FALSE);
      if (j == 0 && !full)
        break;
      dprev = j > 0 ? self->dec[j - 1].conv2.dy : dfeat[5];
      lode_grad_upsample2x (dprev, d->dup, n * d->c_in, sh, sw);
    }
  if (!full)
    return;

  for (int l = 3; l >= 0; l--)
    for (int b = self->n_blocks[l] - 1; b >= 0; b--)
      {
        Block *blk = &self->layers[l][b];
        float *dx;
        gboolean acc;

        if (b > 0)
          {
            dx = self->layers[l][b - 1].dout;
            acc = FALSE;
          }
        else if (l > 0)
          {
            dx = dfeat[l + 1];   /* the previous layer's output, skip grads in it */
            acc = TRUE;
          }
        else
          {
            dx = self->dpool;
            acc = FALSE;
          }
        block_backward (self, blk, dx, acc);
      }
  ph = lode_ops_pool_out_size (self->stem.oh, 3, 2, 1);
  pw = lode_ops_pool_out_size (self->stem.ow, 3, 2, 1);
  lode_grad_max_pool2d (self->stem.dy, self->dpool, self->pool_arg, n, 64, self->stem.oh,
                        self->stem.ow, ph, pw, TRUE);
  unit_backward (self, &self->stem, self->input, NULL, FALSE);
}
