/* lode-train.c: the U-Net training job and Lode's checkpoint file (see
 * lode-train.h). */
#define G_LOG_DOMAIN "lode-model"

#include "config.h"

#include <errno.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "lode-device.h"
#include "lode-grad.h"
#include "lode-train.h"

G_DEFINE_QUARK (lode-train-error-quark, lode_train_error)

G_STATIC_ASSERT (G_BYTE_ORDER == G_LITTLE_ENDIAN);

#define MAGIC "LODEUNET"
#define MAGIC_LEN 8

struct _LodeTrainJob {
  LodeTrainConfig config;
  LodeTrainSource source;
  char *checkpoint_path;
  LodeUnet *model;
  LodeDeviceKind device;
  gint64 step;
  int n_train;
  int batch;            /* the batch actually drawn */
  gint64 steps_per_epoch, total_steps;
  LodeTrainMetrics metrics;
  gboolean have_metrics;
  /* batch scratch (host) */
  float *images, *plane;
  gint16 *masks;
  guint8 *mask8;
};

void
lode_train_config_init (LodeTrainConfig *config)
{
  memset (config, 0, sizeof *config);
  config->encoder = LODE_UNET_RESNET50;
  config->bands = 6;
  config->classes = 2;
  for (int k = 0; k < LODE_TRAIN_MAX_CLASSES; k++)
    config->class_weights[k] = 1.0f;
  config->ignore_index = 255;
  config->lr = 1e-4f;
  config->weight_decay = 1e-2f;
  config->epochs = 10;
  config->batch_size = 16;
  config->augment = TRUE;
  g_strlcpy (config->device, "auto", sizeof config->device);
  g_strlcpy (config->precision, "fp32", sizeof config->precision);
  for (int b = 0; b < LODE_TRAIN_MAX_BANDS; b++)
    {
      config->std[b] = 1.0f;
      config->band_select[b] = b;
    }
}

static gboolean
config_check (const LodeTrainConfig *c,
              GError               **error)
{
  LodePrecision precision;

  if (c->bands < 1 || c->bands > LODE_TRAIN_MAX_BANDS
      || c->classes < 2 || c->classes > LODE_TRAIN_MAX_CLASSES
      || c->batch_size < 1 || c->epochs < 1 || c->max_steps < 0
      || !(c->lr > 0.0f) || c->weight_decay < 0.0f || c->dice_weight < 0.0f
      || lode_unet_encoder_name (c->encoder) == NULL)
    {
      g_set_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_CONFIG,
                   _("Cannot train with %d bands, %d classes, batch %d, %d epochs and "
                     "learning rate %g: bands must be 1 to %d, classes 2 to %d, the rest positive"),
                   c->bands, c->classes, c->batch_size, c->epochs, c->lr,
                   LODE_TRAIN_MAX_BANDS, LODE_TRAIN_MAX_CLASSES);
      return FALSE;
    }
  if (!lode_precision_parse (c->precision, &precision))
    {
      g_set_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_CONFIG,
                   _("Unknown precision “%s” (expected fp32, tf32 or bf16)"), c->precision);
      return FALSE;
    }
  for (int b = 0; b < c->bands; b++)
    if (!(c->std[b] > 0.0f))
      {
        g_set_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_CONFIG,
                     _("The standard deviation of band %d must be positive, not %g"),
                     b + 1, c->std[b]);
        return FALSE;
      }
  return TRUE;
}

void
lode_train_normalise (float                 *image,
                      const LodeTrainConfig *config,
                      int                    h,
                      int                    w)
{
  gsize hw = (gsize) h * w;

  for (int b = 0; b < config->bands; b++)
    {
      float *p = image + b * hw;
      float mean = config->mean[b], inv = 1.0f / config->std[b];

      for (gsize q = 0; q < hw; q++)
        p[q] = isfinite (p[q]) ? (p[q] - mean) * inv : 0.0f;
    }
}

/* ---- randomness: a function of (seed, a, b), so resumption repeats it --- */

static guint64
mix64 (guint64 x)
{
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

static guint64
hash3 (guint64 seed,
       guint64 a,
       guint64 b)
{
  return mix64 (mix64 (mix64 (seed) ^ a) ^ b);
}

/* The order of the training samples in an epoch. */
static int *
epoch_order (guint64 seed,
             int     epoch,
             int     n)
{
  int *order = g_new (int, n);
  guint64 h = hash3 (seed, 0x5EED, (guint64) epoch);
  g_autoptr(GRand) rand = g_rand_new_with_seed_array ((const guint32[]) { (guint32) h,
                                                                          (guint32) (h >> 32) }, 2);

  for (int i = 0; i < n; i++)
    order[i] = i;
  for (int i = n - 1; i > 0; i--)
    {
      int j = g_rand_int_range (rand, 0, i + 1);
      int t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
  return order;
}

/* One of the 8 symmetries of the square (4 when not square): bit 0 flips
 * columns, bit 1 flips rows, bit 2 transposes. Applied to `planes` float
 * planes and one mask, through scratch of one plane. */
static void
augment (float  *image,
         int     planes,
         guint8 *mask,
         int     h,
         int     w,
         guint   code,
         float  *scratch)
{
  gboolean fx = code & 1, fy = code & 2, tr = (code & 4) && h == w;
  gsize hw = (gsize) h * w;
  guint8 *mscratch;

  if (!fx && !fy && !tr)
    return;
  for (int p = 0; p <= planes; p++)
    {
      gboolean is_mask = p == planes;
      float *src = is_mask ? NULL : image + p * hw;

      if (is_mask)
        mscratch = (guint8 *) scratch;
      for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
          {
            int sy = fy ? h - 1 - y : y, sx = fx ? w - 1 - x : x;
            gsize from = tr ? (gsize) sx * w + sy : (gsize) sy * w + sx;
            if (is_mask)
              mscratch[(gsize) y * w + x] = mask[from];
            else
              scratch[(gsize) y * w + x] = src[from];
          }
      if (is_mask)
        memcpy (mask, mscratch, hw);
      else
        memcpy (src, scratch, sizeof (float) * hw);
    }
}

/* ---- metrics ------------------------------------------------------------ */

void
lode_train_metrics_from_confusion (LodeTrainMetrics *m,
                                   const gint64     *cm,
                                   int               c)
{
  gint64 total = 0, diag = 0, tp = 0, fp = 0, fn = 0;
  int n_iou = 0;

  memset (m, 0, sizeof *m);
  m->classes = c;
  for (int k = 0; k < c; k++)
    {
      gint64 row = 0, col = 0, kk = cm[k * c + k];
      for (int j = 0; j < c; j++)
        {
          row += cm[k * c + j];
          col += cm[j * c + k];
        }
      total += row;
      diag += kk;
      if (k > 0)
        {
          tp += kk;
          fp += col - kk;
          fn += row - kk;
        }
      if (row + col - kk > 0)
        {
          m->iou[k] = (double) kk / (row + col - kk);
          m->mean_iou += m->iou[k];
          n_iou++;
        }
      else
        m->iou[k] = NAN;
    }
  m->mean_iou = n_iou > 0 ? m->mean_iou / n_iou : NAN;
  m->accuracy = total > 0 ? (double) diag / total : NAN;
  m->f1 = 2 * tp + fp + fn > 0 ? 2.0 * tp / (2 * tp + fp + fn) : NAN;
  m->pixels = total;
}

static gboolean
get_sample (const LodeTrainSource *source,
            LodeTrainSplit         split,
            int                    index,
            float                 *image,
            guint8                *mask,
            GError               **error)
{
  GError *local = NULL;

  if (source->get (split, index, image, mask, source->user_data, &local))
    return TRUE;
  if (local == NULL)
    g_set_error (&local, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_DATA,
                 _("Sample %d of the %s set could not be read"), index + 1,
                 split == LODE_TRAIN_SPLIT_TRAIN ? _("training") : _("validation"));
  g_propagate_error (error, local);
  return FALSE;
}

gboolean
lode_train_evaluate (LodeUnet              *model,
                     const LodeTrainConfig *config,
                     const LodeTrainSource *source,
                     LodeTrainSplit         split,
                     LodeTrainMetrics      *metrics,
                     GCancellable          *cancellable,
                     GError               **error)
{
  int n = source->count (split, source->user_data);
  int h = source->height, w = source->width, c = config->classes, b = config->bands;
  int batch = MAX (1, MIN (config->batch_size, n));
  gsize hw = (gsize) h * w;
  g_autofree float *images = g_new (float, batch * b * hw);
  g_autofree float *logits = g_new (float, batch * c * hw);
  g_autofree guint8 *masks = g_new (guint8, batch * hw);
  g_autofree gint64 *cm = g_new0 (gint64, c * c);

  g_return_val_if_fail (model != NULL && metrics != NULL, FALSE);

  for (int i0 = 0; i0 < n; i0 += batch)
    {
      int nb = MIN (batch, n - i0);

      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return FALSE;
      for (int j = 0; j < nb; j++)
        {
          if (!get_sample (source, split, i0 + j, images + j * b * hw, masks + j * hw, error))
            return FALSE;
          lode_train_normalise (images + j * b * hw, config, h, w);
        }
      if (!lode_unet_forward (model, images, nb, h, w, LODE_UNET_EVAL, logits, error))
        return FALSE;
      for (int j = 0; j < nb; j++)
        for (gsize q = 0; q < hw; q++)
          {
            int t = masks[j * hw + q], best = 0;
            const float *x = logits + (gsize) j * c * hw + q;

            if (t == config->ignore_index || t >= c)
              continue;
            for (int k = 1; k < c; k++)
              if (x[k * hw] > x[best * hw])
                best = k;
            cm[t * c + best]++;
          }
    }
  lode_train_metrics_from_confusion (metrics, cm, c);
  return TRUE;
}

/* ---- checkpoints -------------------------------------------------------- */

static JsonNode *
float_array (const float *v,
             int          n)
{
  JsonArray *a = json_array_sized_new (n);
  JsonNode *node = json_node_new (JSON_NODE_ARRAY);

  for (int i = 0; i < n; i++)
    json_array_add_double_element (a, v[i]);
  json_node_take_array (node, a);
  return node;
}

static char *
header_json (LodeUnet              *model,
             const LodeTrainConfig *c,
             gboolean               moments,
             gint64                 step)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;
  gsize np, nb;

  lode_unet_params (model, &np);
  lode_unet_buffers (model, &nb);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "model");
  json_builder_add_string_value (b, "unet");
  json_builder_set_member_name (b, "config");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "encoder");
  json_builder_add_string_value (b, lode_unet_encoder_name (c->encoder));
  json_builder_set_member_name (b, "bands");
  json_builder_add_int_value (b, c->bands);
  json_builder_set_member_name (b, "classes");
  json_builder_add_int_value (b, c->classes);
  json_builder_set_member_name (b, "class_weights");
  json_builder_add_value (b, float_array (c->class_weights, c->classes));
  json_builder_set_member_name (b, "ignore_index");
  json_builder_add_int_value (b, c->ignore_index);
  json_builder_set_member_name (b, "dice_weight");
  json_builder_add_double_value (b, c->dice_weight);
  json_builder_set_member_name (b, "lr");
  json_builder_add_double_value (b, c->lr);
  json_builder_set_member_name (b, "weight_decay");
  json_builder_add_double_value (b, c->weight_decay);
  json_builder_set_member_name (b, "epochs");
  json_builder_add_int_value (b, c->epochs);
  json_builder_set_member_name (b, "max_steps");
  json_builder_add_int_value (b, c->max_steps);
  json_builder_set_member_name (b, "batch_size");
  json_builder_add_int_value (b, c->batch_size);
  json_builder_set_member_name (b, "frozen_encoder");
  json_builder_add_boolean_value (b, c->frozen_encoder);
  json_builder_set_member_name (b, "augment");
  json_builder_add_boolean_value (b, c->augment);
  json_builder_set_member_name (b, "seed");
  json_builder_add_int_value (b, (gint64) c->seed);
  json_builder_set_member_name (b, "device");
  json_builder_add_string_value (b, c->device);
  json_builder_set_member_name (b, "band_select");
  json_builder_begin_array (b);
  for (int i = 0; i < c->bands; i++)
    json_builder_add_int_value (b, c->band_select[i]);
  json_builder_end_array (b);
  json_builder_set_member_name (b, "mean");
  json_builder_add_value (b, float_array (c->mean, c->bands));
  json_builder_set_member_name (b, "std");
  json_builder_add_value (b, float_array (c->std, c->bands));
  json_builder_end_object (b);
  json_builder_set_member_name (b, "step");
  json_builder_add_int_value (b, step);
  json_builder_set_member_name (b, "sections");
  json_builder_begin_array (b);
  json_builder_add_string_value (b, "params");
  json_builder_add_string_value (b, "buffers");
  if (moments)
    {
      json_builder_add_string_value (b, "adam_m");
      json_builder_add_string_value (b, "adam_v");
    }
  json_builder_end_array (b);
  json_builder_set_member_name (b, "n_params");
  json_builder_add_int_value (b, (gint64) np);
  json_builder_set_member_name (b, "n_buffers");
  json_builder_add_int_value (b, (gint64) nb);
  /* the tensor table: name, section, offset, shape */
  json_builder_set_member_name (b, "tensors");
  json_builder_begin_array (b);
  {
    gsize off_p = 0, off_b = 0;
    for (guint i = 0; i < lode_unet_n_tensors (model); i++)
      {
        gint64 shape[4];
        int nd = lode_unet_tensor_shape (model, i, shape);
        gboolean param = lode_unet_tensor_grad (model, i) != NULL;

        json_builder_begin_object (b);
        json_builder_set_member_name (b, "name");
        json_builder_add_string_value (b, lode_unet_tensor_name (model, i));
        json_builder_set_member_name (b, "section");
        json_builder_add_string_value (b, param ? "params" : "buffers");
        json_builder_set_member_name (b, "offset");
        json_builder_add_int_value (b, (gint64) (param ? off_p : off_b));
        json_builder_set_member_name (b, "shape");
        json_builder_begin_array (b);
        for (int d = 0; d < nd; d++)
          json_builder_add_int_value (b, shape[d]);
        json_builder_end_array (b);
        json_builder_end_object (b);
        if (param)
          off_p += lode_unet_tensor_numel (model, i);
        else
          off_b += lode_unet_tensor_numel (model, i);
      }
  }
  json_builder_end_array (b);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  return json_generator_to_data (gen, NULL);
}

static gboolean
write_all (FILE        *f,
           const void  *data,
           gsize        len,
           uLong       *crc)
{
  const Bytef *p = data;

  *crc = crc32_z (*crc, p, len);
  return fwrite (data, 1, len, f) == len;
}

gboolean
lode_train_checkpoint_save (const char            *path,
                            LodeUnet              *model,
                            const LodeTrainConfig *config,
                            const float           *adam_m,
                            const float           *adam_v,
                            gint64                 step,
                            GError               **error)
{
  g_autofree char *json = NULL;
  g_autofree char *tmp = NULL;
  gsize np, nb;
  float *params, *buffers;
  guint32 version = LODE_TRAIN_CHECKPOINT_VERSION, jlen, crc_le;
  uLong crc = crc32 (0, NULL, 0);
  gboolean ok;
  FILE *f;
  int fd, saved_errno;

  g_return_val_if_fail (path != NULL && model != NULL && config != NULL, FALSE);

  /* a model on the GPU: the host mirrors take the device's values */
  if (!lode_unet_sync_to_host (model, error))
    return FALSE;
  json = header_json (model, config, adam_m != NULL, step);
  jlen = (guint32) strlen (json);
  params = lode_unet_params (model, &np);
  buffers = lode_unet_buffers (model, &nb);
  tmp = g_strconcat (path, ".XXXXXX", NULL);
  fd = g_mkstemp (tmp);
  if (fd < 0 || (f = fdopen (fd, "wb")) == NULL)
    {
      saved_errno = errno;
      if (fd >= 0)
        close (fd);
      g_set_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_IO,
                   _("Cannot write the checkpoint “%s”: %s"), path, g_strerror (saved_errno));
      return FALSE;
    }
  ok = write_all (f, MAGIC, MAGIC_LEN, &crc)
       && write_all (f, &version, 4, &crc)
       && write_all (f, &jlen, 4, &crc)
       && write_all (f, json, jlen, &crc)
       && write_all (f, params, np * sizeof (float), &crc)
       && write_all (f, buffers, nb * sizeof (float), &crc);
  if (ok && adam_m != NULL)
    ok = write_all (f, adam_m, np * sizeof (float), &crc)
         && write_all (f, adam_v, np * sizeof (float), &crc);
  crc_le = (guint32) crc;
  ok = ok && fwrite (&crc_le, 1, 4, f) == 4 && fflush (f) == 0 && fsync (fileno (f)) == 0;
  saved_errno = errno;
  ok = (fclose (f) == 0) && ok;
  if (ok && g_rename (tmp, path) != 0)
    {
      ok = FALSE;
      saved_errno = errno;
    }
  if (!ok)
    {
      g_unlink (tmp);
      g_set_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_IO,
                   _("Cannot write the checkpoint “%s”: %s"), path, g_strerror (saved_errno));
      return FALSE;
    }
  return TRUE;
}

static void
read_float_array (JsonObject *o,
                  const char *name,
                  float      *out,
                  int         n)
{
  JsonArray *a = json_object_has_member (o, name) ? json_object_get_array_member (o, name) : NULL;

  for (int i = 0; a != NULL && i < n && i < (int) json_array_get_length (a); i++)
    out[i] = (float) json_array_get_double_element (a, i);
}

static gboolean
config_from_json (JsonObject      *o,
                  LodeTrainConfig *c)
{
  const char *enc = json_object_get_string_member_with_default (o, "encoder", "");
  const char *dev = json_object_get_string_member_with_default (o, "device", "auto");

  lode_train_config_init (c);
  if (!lode_unet_encoder_from_name (enc, &c->encoder))
    return FALSE;
  c->bands = (int) json_object_get_int_member_with_default (o, "bands", 0);
  c->classes = (int) json_object_get_int_member_with_default (o, "classes", 0);
  if (c->bands < 1 || c->bands > LODE_TRAIN_MAX_BANDS
      || c->classes < 2 || c->classes > LODE_TRAIN_MAX_CLASSES)
    return FALSE;
  read_float_array (o, "class_weights", c->class_weights, c->classes);
  c->ignore_index = (int) json_object_get_int_member_with_default (o, "ignore_index", 255);
  c->dice_weight = (float) json_object_get_double_member_with_default (o, "dice_weight", 0);
  c->lr = (float) json_object_get_double_member_with_default (o, "lr", c->lr);
  c->weight_decay = (float) json_object_get_double_member_with_default (o, "weight_decay",
                                                                         c->weight_decay);
  c->epochs = (int) json_object_get_int_member_with_default (o, "epochs", c->epochs);
  c->max_steps = json_object_get_int_member_with_default (o, "max_steps", 0);
  c->batch_size = (int) json_object_get_int_member_with_default (o, "batch_size", c->batch_size);
  c->frozen_encoder = json_object_get_boolean_member_with_default (o, "frozen_encoder", FALSE);
  c->augment = json_object_get_boolean_member_with_default (o, "augment", TRUE);
  c->seed = (guint64) json_object_get_int_member_with_default (o, "seed", 0);
  g_strlcpy (c->device, dev, sizeof c->device);
  if (json_object_has_member (o, "band_select"))
    {
      JsonArray *a = json_object_get_array_member (o, "band_select");
      for (guint i = 0; a != NULL && i < json_array_get_length (a) && i < (guint) c->bands; i++)
        c->band_select[i] = (int) json_array_get_int_element (a, i);
    }
  read_float_array (o, "mean", c->mean, c->bands);
  read_float_array (o, "std", c->std, c->bands);
  /* Band indices and divisors are used as they are by whoever predicts. */
  for (int b = 0; b < c->bands; b++)
    if (c->band_select[b] < 0 || !(c->std[b] > 0.0f) || !isfinite (c->std[b]) || !isfinite (c->mean[b]))
      return FALSE;
  return TRUE;
}

LodeUnet *
lode_train_checkpoint_load (const char       *path,
                            LodeTrainConfig  *config,
                            float           **adam_m,
                            float           **adam_v,
                            gint64           *step,
                            GError          **error)
{
  return lode_train_checkpoint_load_on (path, LODE_DEVICE_CPU, config, adam_m, adam_v, step,
                                        error);
}

LodeUnet *
lode_train_checkpoint_load_on (const char       *path,
                               LodeDeviceKind    device,
                               LodeTrainConfig  *config,
                               float           **adam_m,
                               float           **adam_v,
                               gint64           *step,
                               GError          **error)
{
  g_autoptr(GMappedFile) map = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(LodeUnet) model = NULL;
  GError *local = NULL;
  const guint8 *data;
  gsize len, np, nb, need;
  guint32 version, jlen, crc_stored;
  JsonObject *root, *cfg;
  LodeTrainConfig c;
  LodeUnetConfig uc;
  gboolean moments;

  g_return_val_if_fail (path != NULL, NULL);

  map = g_mapped_file_new (path, FALSE, &local);
  if (map == NULL)
    {
      g_set_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_IO,
                   _("Cannot read the checkpoint “%s”: %s"), path, local->message);
      g_error_free (local);
      return NULL;
    }
  data = (const guint8 *) g_mapped_file_get_contents (map);
  len = g_mapped_file_get_length (map);
  if (len < MAGIC_LEN + 12 || memcmp (data, MAGIC, MAGIC_LEN) != 0)
    {
      g_set_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_CHECKPOINT,
                   _("“%s” is not a Lode U-Net checkpoint"), path);
      return NULL;
    }
  memcpy (&version, data + MAGIC_LEN, 4);
  if (version != LODE_TRAIN_CHECKPOINT_VERSION)
    {
      g_set_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_CHECKPOINT,
                   _("The checkpoint “%s” has format version %u; this Lode reads version %d"),
                   path, version, LODE_TRAIN_CHECKPOINT_VERSION);
      return NULL;
    }
  memcpy (&crc_stored, data + len - 4, 4);
  if ((guint32) crc32_z (crc32 (0, NULL, 0), data, len - 4) != crc_stored)
    {
      g_set_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_CHECKPOINT,
                   _("The checkpoint “%s” is damaged (its checksum does not match)"), path);
      return NULL;
    }
  memcpy (&jlen, data + MAGIC_LEN + 4, 4);
  if (jlen > len - MAGIC_LEN - 12
      || !json_parser_load_from_data (parser, (const char *) data + MAGIC_LEN + 8, jlen, NULL)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    goto corrupt;
  root = json_node_get_object (json_parser_get_root (parser));
  if (!json_object_has_member (root, "config")
      || !JSON_NODE_HOLDS_OBJECT (json_object_get_member (root, "config")))
    goto corrupt;
  cfg = json_object_get_object_member (root, "config");
  if (!config_from_json (cfg, &c))
    goto corrupt;
  {
    g_autoptr(GError) why = NULL;

    if (!config_check (&c, &why))
      {
        /* Translators: %s is the checkpoint file, then what is wrong */
        g_set_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_CHECKPOINT,
                     _("The checkpoint “%s” is damaged (its configuration cannot be used): %s"),
                     path, why->message);
        return NULL;
      }
  }
  uc = (LodeUnetConfig) { c.encoder, c.bands, c.classes };
  model = lode_unet_new_on (&uc, 0, device, error);
  if (model == NULL)
    return NULL;
  lode_unet_params (model, &np);
  lode_unet_buffers (model, &nb);
  moments = json_object_has_member (root, "sections")
            && json_array_get_length (json_object_get_array_member (root, "sections")) == 4;
  need = MAGIC_LEN + 8 + jlen + (np * (moments ? 3 : 1) + nb) * sizeof (float) + 4;
  if ((gsize) json_object_get_int_member_with_default (root, "n_params", -1) != np
      || (gsize) json_object_get_int_member_with_default (root, "n_buffers", -1) != nb
      || need != len)
    goto corrupt;
  data += MAGIC_LEN + 8 + jlen;
  memcpy (lode_unet_params (model, NULL), data, np * sizeof (float));
  data += np * sizeof (float);
  memcpy (lode_unet_buffers (model, NULL), data, nb * sizeof (float));
  data += nb * sizeof (float);
  if (adam_m != NULL)
    {
      *adam_m = moments ? g_memdup2 (data, np * sizeof (float)) : NULL;
      *adam_v = moments ? g_memdup2 (data + np * sizeof (float), np * sizeof (float)) : NULL;
    }
  if (step)
    *step = json_object_get_int_member_with_default (root, "step", 0);
  if (config)
    *config = c;
  return g_steal_pointer (&model);

corrupt:
  g_set_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_CHECKPOINT,
               _("The checkpoint “%s” is damaged (its header does not describe its contents)"),
               path);
  return NULL;
}

/* ---- the job ------------------------------------------------------------ */

void
lode_train_job_free (LodeTrainJob *self)
{
  if (self == NULL)
    return;
  lode_unet_free (self->model);
  g_free (self->checkpoint_path);
  g_free (self->images);
  g_free (self->plane);
  g_free (self->masks);
  g_free (self->mask8);
  g_free (self);
}

LodeTrainJob *
lode_train_job_new (const LodeTrainConfig  *config,
                    const LodeTrainSource  *source,
                    const char             *checkpoint_path,
                    gboolean                resume,
                    const char             *encoder_weights,
                    GError                **error)
{
  g_autoptr(LodeTrainJob) self = NULL;
  g_autofree float *m = NULL, *v = NULL;
  LodeUnetConfig uc;
  gsize hw;
  LodeDeviceKind device;
  LodePrecision precision;
  GError *local = NULL;

  g_return_val_if_fail (config != NULL && source != NULL, NULL);
  g_return_val_if_fail (source->count != NULL && source->get != NULL, NULL);

  if (!config_check (config, error))
    return NULL;
  device = lode_device_choose (config->device, &local);
  if (local != NULL)
    {
      g_propagate_error (error, local);
      return NULL;
    }
  if (source->height < 32 || source->width < 32
      || source->height % 32 != 0 || source->width % 32 != 0)
    {
      g_set_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_DATA,
                   _("Training patches must have sides that are multiples of 32, not %d × %d"),
                   source->width, source->height);
      return NULL;
    }

  self = g_new0 (LodeTrainJob, 1);
  self->config = *config;
  self->source = *source;
  self->checkpoint_path = g_strdup (checkpoint_path);
  self->device = device;
  self->n_train = source->count (LODE_TRAIN_SPLIT_TRAIN, source->user_data);
  if (self->n_train < 1)
    {
      g_set_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_DATA,
                   _("There are no training samples"));
      return NULL;
    }
  self->batch = MIN (config->batch_size, self->n_train);
  self->steps_per_epoch = self->n_train / self->batch;
  self->total_steps = self->steps_per_epoch * config->epochs;
  if (config->max_steps > 0)
    self->total_steps = MIN (self->total_steps, config->max_steps);

  if (resume && checkpoint_path != NULL && g_file_test (checkpoint_path, G_FILE_TEST_EXISTS))
    {
      LodeTrainConfig saved;

      self->model = lode_train_checkpoint_load_on (checkpoint_path, device, &saved, &m, &v,
                                                   &self->step, error);
      if (self->model == NULL)
        return NULL;
      if (saved.encoder != config->encoder || saved.bands != config->bands
          || saved.classes != config->classes)
        {
          g_set_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_CHECKPOINT,
                       _("The checkpoint “%s” holds a %s U-Net for %d bands and %d classes, "
                         "not the %s for %d bands and %d classes asked for"),
                       checkpoint_path, lode_unet_encoder_name (saved.encoder), saved.bands,
                       saved.classes, lode_unet_encoder_name (config->encoder),
                       config->bands, config->classes);
          return NULL;
        }
    }
  else
    {
      uc = (LodeUnetConfig) { config->encoder, config->bands, config->classes };
      self->model = lode_unet_new_on (&uc, config->seed, device, error);
      if (self->model == NULL)
        return NULL;
      if (encoder_weights != NULL)
        {
          g_autoptr(LodeCheckpoint) ckpt = lode_checkpoint_open (encoder_weights, error);
          if (ckpt == NULL || !lode_unet_load_checkpoint (self->model, ckpt, NULL, error))
            return NULL;
        }
    }
  /* the moments of the checkpoint, or zeros */
  if (!lode_unet_set_adam_moments (self->model, m, m != NULL ? v : NULL, error))
    return NULL;
  /* config_check accepted the name */
  lode_precision_parse (config->precision, &precision);
  if (!lode_unet_set_precision (self->model, precision, error))
    return NULL;
  hw = (gsize) source->height * source->width;
  self->images = g_new (float, self->batch * config->bands * hw);
  self->plane = g_new (float, hw);
  self->masks = g_new (gint16, self->batch * hw);
  self->mask8 = g_new (guint8, hw);
  return g_steal_pointer (&self);
}

LodeUnet *
lode_train_job_get_model (LodeTrainJob *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return self->model;
}

gint64
lode_train_job_get_step (LodeTrainJob *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->step;
}

LodeDeviceKind
lode_train_job_get_device (LodeTrainJob *self)
{
  g_return_val_if_fail (self != NULL, LODE_DEVICE_CPU);
  return self->device;
}

const LodeTrainMetrics *
lode_train_job_get_metrics (LodeTrainJob *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return self->have_metrics ? &self->metrics : NULL;
}

static gboolean
save (LodeTrainJob *self,
      GError      **error)
{
  const float *m, *v;

  if (self->checkpoint_path == NULL)
    return TRUE;
  if (!lode_unet_sync_to_host (self->model, error))
    return FALSE;
  m = lode_unet_adam_moments (self->model, &v);
  return lode_train_checkpoint_save (self->checkpoint_path, self->model, &self->config,
                                     m, v, self->step, error);
}

/* One step: batch, forward, loss, backward, AdamW. */
static gboolean
train_step (LodeTrainJob *self,
            double       *loss,
            GError      **error)
{
  const LodeTrainConfig *c = &self->config;
  int h = self->source.height, w = self->source.width, b = self->batch;
  gsize hw = (gsize) h * w;
  int epoch = (int) (self->step / self->steps_per_epoch);
  int pos = (int) (self->step % self->steps_per_epoch);
  g_autofree int *order = epoch_order (c->seed, epoch, self->n_train);
  LodeAdamW opt;

  for (int j = 0; j < b; j++)
    {
      int index = order[pos * b + j];
      float *img = self->images + (gsize) j * c->bands * hw;

      if (!get_sample (&self->source, LODE_TRAIN_SPLIT_TRAIN, index, img, self->mask8, error))
        return FALSE;
      lode_train_normalise (img, c, h, w);
      if (c->augment)
        augment (img, c->bands, self->mask8, h, w,
                 (guint) (hash3 (c->seed, (guint64) self->step, (guint64) j) & 7), self->plane);
      for (gsize q = 0; q < hw; q++)
        self->masks[j * hw + q] = self->mask8[q];
    }

  /* on the model's device: the logits, their gradient and the step stay
   * there; the loss comes back */
  if (!lode_unet_forward (self->model, self->images, b, h, w,
                          c->frozen_encoder ? LODE_UNET_TRAIN_DECODER : LODE_UNET_TRAIN,
                          NULL, error)
      || !lode_unet_loss (self->model, self->masks, c->class_weights, c->ignore_index,
                          c->dice_weight, loss, error))
    return FALSE;
  lode_unet_zero_grad (self->model);
  if (!lode_unet_backward_checked (self->model, NULL, error))
    return FALSE;

  lode_adamw_init_defaults (&opt);
  opt.lr = c->lr;
  opt.weight_decay = c->weight_decay;
  if (!lode_unet_adamw_step (self->model, &opt, self->step + 1,
                             c->frozen_encoder ? lode_unet_encoder_params (self->model) : 0,
                             error))
    return FALSE;
  self->step++;
  return TRUE;
}

gboolean
lode_train_job_run (LodeTrainJob          *self,
                    LodeTrainProgressFunc  progress,
                    gpointer               user_data,
                    GCancellable          *cancellable,
                    GError               **error)
{
  g_autoptr(GTimer) timer = g_timer_new ();
  gint64 first_step = self->step;
  int n_val;

  g_return_val_if_fail (self != NULL, FALSE);

  n_val = self->source.count (LODE_TRAIN_SPLIT_VALIDATION, self->source.user_data);
  while (self->step < self->total_steps)
    {
      LodeTrainProgress p = { 0 };
      double loss = 0.0, elapsed;

      if (g_cancellable_is_cancelled (cancellable))
        {
          g_autoptr(GError) save_error = NULL;
          if (!save (self, &save_error))
            {
              g_propagate_error (error, g_steal_pointer (&save_error));
              return FALSE;
            }
          g_cancellable_set_error_if_cancelled (cancellable, error);
          return FALSE;
        }
      if (!train_step (self, &loss, error))
        return FALSE;

      elapsed = g_timer_elapsed (timer, NULL);
      p.step = self->step;
      p.total_steps = self->total_steps;
      p.epoch = (int) ((self->step - 1) / self->steps_per_epoch) + 1;
      p.epochs = (int) ((self->total_steps + self->steps_per_epoch - 1) / self->steps_per_epoch);
      p.loss = loss;
      p.seconds_left = elapsed / (self->step - first_step) * (self->total_steps - self->step);

      if (self->step % self->steps_per_epoch == 0 || self->step == self->total_steps)
        {
          if (n_val > 0)
            {
              if (!lode_train_evaluate (self->model, &self->config, &self->source,
                                        LODE_TRAIN_SPLIT_VALIDATION, &self->metrics,
                                        NULL, error))
                return FALSE;
              self->have_metrics = TRUE;
              p.metrics = &self->metrics;
            }
          if (!save (self, error))
            return FALSE;
        }
      if (progress)
        progress (&p, user_data);
    }
  return save (self, error);
}
