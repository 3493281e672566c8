#define G_LOG_DOMAIN "lode-model"

#include "config.h"

#include <gio/gio.h>
#include <glib/gi18n.h>
#include <math.h>
#include <string.h>
#include <zlib.h>

#include "lode-checkpoint.h"
#include "lode-ops.h"
#include "lode-sam2-config.h"
#include "lode-sam2-decoder-dev.h"
#include "lode-sam2-encoder.h"
#include "lode-sam2-predictor.h"

/* ---- predictions -------------------------------------------------------- */

void
lode_sam2_prediction_free (LodeSam2Prediction *p)
{
  if (p == NULL)
    return;
  g_free (p->masks);
  g_free (p->low_res_masks);
  g_free (p);
}

void
lode_sam2_prediction_mask_u8 (const LodeSam2Prediction *p, int index, guint8 *out)
{
  gsize n = (gsize) p->width * p->height;
  const float *m;

  g_return_if_fail (p != NULL && index >= 0 && index < p->n_masks && out != NULL);
  m = p->masks + (gsize) index * n;
  for (gsize i = 0; i < n; i++)
    out[i] = m[i] > 0.0f;
}

const float *
lode_sam2_prediction_low_res (const LodeSam2Prediction *p, int index)
{
  g_return_val_if_fail (p != NULL && index >= 0 && index < p->n_masks, NULL);
  return p->low_res_masks + (gsize) index * p->low_res * p->low_res;
}

/* Checks a click on a patch of pw x ph and maps it to the model's input
 * pixels (transform_coords: normalise by the patch size, scale to the input
 * size) into prompt, whose points are written to points. */
static gboolean
click_to_prompt (const LodeSam2Config *cfg,
                 int                   pw,
                 int                   ph,
                 const LodeSam2Click  *click,
                 float                *points,
                 LodeSam2Prompt       *prompt,
                 GError              **error)
{
  float size = (float) cfg->image_size;

  if (pw <= 0 || ph <= 0 || pw > 65536 || ph > 65536)
    {
      g_set_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_PROMPT,
                   _("Cannot segment a patch of %d x %d pixels"), pw, ph);
      return FALSE;
    }
  if (click->n_points <= 0 && !click->has_box)
    {
      g_set_error_literal (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_PROMPT,
                           _("A click needs at least one point or a box"));
      return FALSE;
    }
  if (click->n_points > LODE_SAM2_MAX_POINTS)
    {
      g_set_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_PROMPT,
                   _("A click has at most %d points, not %d"), LODE_SAM2_MAX_POINTS, click->n_points);
      return FALSE;
    }
  for (int i = 0; i < click->n_points; i++)
    if (click->labels[i] != LODE_SAM2_LABEL_NEGATIVE && click->labels[i] != LODE_SAM2_LABEL_POSITIVE)
      {
        g_set_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_PROMPT,
                     _("Point %d has label %d; points are 1 (inside) or 0 (outside)"),
                     i + 1, click->labels[i]);
        return FALSE;
      }

  for (int i = 0; i < click->n_points; i++)
    {
      points[2 * i] = click->points[2 * i] / (float) pw * size;
      points[2 * i + 1] = click->points[2 * i + 1] / (float) ph * size;
    }
  memset (prompt, 0, sizeof *prompt);
  prompt->n_points = click->n_points;
  prompt->points = points;
  prompt->labels = click->labels;
  prompt->has_box = click->has_box;
  if (click->has_box)
    for (int i = 0; i < 4; i++)
      prompt->box[i] = click->box[i] / (float) (i % 2 == 0 ? pw : ph) * size;
  prompt->mask_input = click->low_res_mask;
  prompt->multimask = click->multimask;
  return TRUE;
}

/* The decoder's output as a prediction on a patch of pw x ph; out's masks
 * are taken. */
static LodeSam2Prediction *
prediction_from_output (LodeSam2DecoderOutput *out,
                        int                    pw,
                        int                    ph)
{
  LodeSam2Prediction *p = g_new0 (LodeSam2Prediction, 1);
  gsize lsz = (gsize) out->low_res * out->low_res, psz = (gsize) pw * ph;

  p->width = pw;
  p->height = ph;
  p->n_masks = out->n_masks;
  memcpy (p->iou, out->iou, sizeof p->iou);
  p->object_score = out->object_score;
  p->best = out->best;
  p->used_stability_fallback = out->used_stability_fallback;
  p->low_res = out->low_res;
  /* postprocess_masks: low-res logits straight to the patch size */
  p->masks = g_new (float, psz * out->n_masks);
  lode_ops_resize (p->masks, out->low_res_masks, out->n_masks, out->low_res, out->low_res,
                   ph, pw, LODE_RESIZE_BILINEAR);
  /* the predictor hands back the low-res logits clamped to +-32 */
  p->low_res_masks = out->low_res_masks;
  out->low_res_masks = NULL;
  for (gsize i = 0; i < lsz * out->n_masks; i++)
    p->low_res_masks[i] = CLAMP (p->low_res_masks[i], -32.0f, 32.0f);
  lode_sam2_decoder_output_clear (out);
  return p;
}

LodeSam2Prediction *
lode_sam2_decoder_predict (LodeSam2Decoder         *decoder,
                           const LodeSam2Embedding *embedding,
                           int                      patch_width,
                           int                      patch_height,
                           const LodeSam2Click     *click,
                           GError                 **error)
{
  float points[LODE_SAM2_MAX_POINTS * 2];
  LodeSam2Prompt prompt;
  LodeSam2DecoderOutput out = { 0 };

  g_return_val_if_fail (decoder != NULL && embedding != NULL && click != NULL, NULL);

  if (!click_to_prompt (lode_sam2_decoder_get_config (decoder), patch_width, patch_height, click,
                        points, &prompt, error)
      || !lode_sam2_decoder_run (decoder, embedding, &prompt, &out, error))
    return NULL;
  return prediction_from_output (&out, patch_width, patch_height);
}

/* ---- embedding files ---------------------------------------------------- */

#define EMB_MAGIC "LODESAME"
#define EMB_VERSION 1
#define EMB_HEADER 64
#define EMB_MODEL_LEN 16
#define EMB_MAX_SIZE 4096
#define EMB_MAX_WIDTH 2048

/* header: magic[8], version u32, header size u32, model[16], image_size,
 * d_model, embed_size, high_res_channels[2] (u32 each), crc32 u32,
 * data bytes u64, zero padding to 64. */

static void
put_u32 (guint8 *p, guint32 v)
{
  v = GUINT32_TO_LE (v);
  memcpy (p, &v, 4);
}

static guint32
get_u32 (const guint8 *p)
{
  guint32 v;

  memcpy (&v, p, 4);
  return GUINT32_FROM_LE (v);
}

static gsize
emb_floats (int image_size, int d_model)
{
  gsize s16 = (gsize) image_size / 16;

  return (gsize) d_model * s16 * s16 + (gsize) (d_model / 8) * 16 * s16 * s16 +
         (gsize) (d_model / 4) * 4 * s16 * s16;
}

static void
copy_floats_le (guint8 *dst, const float *src, gsize n)
{
#if G_BYTE_ORDER == G_LITTLE_ENDIAN
  memcpy (dst, src, n * sizeof (float));
#else
  for (gsize i = 0; i < n; i++)
    {
      guint32 v;

      memcpy (&v, src + i, 4);
      put_u32 (dst + 4 * i, v);
    }
#endif
}

static void
read_floats_le (float *dst, const guint8 *src, gsize n)
{
#if G_BYTE_ORDER == G_LITTLE_ENDIAN
  memcpy (dst, src, n * sizeof (float));
#else
  for (gsize i = 0; i < n; i++)
    {
      guint32 v = get_u32 (src + 4 * i);

      memcpy (dst + i, &v, 4);
    }
#endif
}

static guint32
crc_of (const guint8 *data, gsize len)
{
  uLong crc = crc32 (0L, Z_NULL, 0);

  while (len > 0)
    {
      uInt chunk = (uInt) MIN (len, (gsize) G_MAXUINT32 / 2);

      crc = crc32 (crc, data, chunk);
      data += chunk;
      len -= chunk;
    }
  return (guint32) crc;
}

GBytes *
lode_sam2_embedding_serialize (const LodeSam2Embedding *e, const char *model)
{
  gsize n_embed, n0, n1, data_len;
  guint8 *buf, *d;
  guint64 len64;

  g_return_val_if_fail (e != NULL && model != NULL, NULL);

  n_embed = (gsize) e->d_model * e->embed_size * e->embed_size;
  n0 = (gsize) e->high_res_channels[0] * 16 * e->embed_size * e->embed_size;
  n1 = (gsize) e->high_res_channels[1] * 4 * e->embed_size * e->embed_size;
  data_len = (n_embed + n0 + n1) * sizeof (float);
  buf = g_malloc0 (EMB_HEADER + data_len);
  d = buf + EMB_HEADER;
  copy_floats_le (d, e->image_embed, n_embed);
  copy_floats_le (d + n_embed * 4, e->high_res[0], n0);
  copy_floats_le (d + (n_embed + n0) * 4, e->high_res[1], n1);

  memcpy (buf, EMB_MAGIC, 8);
  put_u32 (buf + 8, EMB_VERSION);
  put_u32 (buf + 12, EMB_HEADER);
  strncpy ((char *) buf + 16, model, EMB_MODEL_LEN - 1);
  put_u32 (buf + 32, (guint32) e->image_size);
  put_u32 (buf + 36, (guint32) e->d_model);
  put_u32 (buf + 40, (guint32) e->embed_size);
  put_u32 (buf + 44, (guint32) e->high_res_channels[0]);
  put_u32 (buf + 48, (guint32) e->high_res_channels[1]);
  put_u32 (buf + 52, crc_of (d, data_len));
  len64 = GUINT64_TO_LE ((guint64) data_len);
  memcpy (buf + 56, &len64, 8);
  return g_bytes_new_take (buf, EMB_HEADER + data_len);
}

/* Validates the header; returns the data length it announces. */
static gboolean
check_header (const guint8 *h, const char *model, int image_size,
              int *out_size, int *out_width, guint64 *data_len, GError **error)
{
  char name[EMB_MODEL_LEN];
  int size, width;
  guint64 len;

  if (memcmp (h, EMB_MAGIC, 8) != 0)
    {
      g_set_error_literal (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_FILE,
                           _("not a Lode SAM2 embedding file"));
      return FALSE;
    }
  if (get_u32 (h + 8) != EMB_VERSION || get_u32 (h + 12) != EMB_HEADER)
    {
      g_set_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_FILE,
                   _("embedding file version %u, this Lode reads version %d"),
                   get_u32 (h + 8), EMB_VERSION);
      return FALSE;
    }
  memcpy (name, h + 16, EMB_MODEL_LEN);
  name[EMB_MODEL_LEN - 1] = '\0';
  size = (int) MIN (get_u32 (h + 32), (guint32) G_MAXINT);
  width = (int) MIN (get_u32 (h + 36), (guint32) G_MAXINT);
  if (size <= 0 || size > EMB_MAX_SIZE || size % 16 != 0 || width <= 0 ||
      width > EMB_MAX_WIDTH || width % 8 != 0 || get_u32 (h + 40) != (guint32) size / 16 ||
      get_u32 (h + 44) != (guint32) width / 8 || get_u32 (h + 48) != (guint32) width / 4)
    {
      g_set_error_literal (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_FILE,
                           _("the embedding file announces impossible sizes"));
      return FALSE;
    }
  if (model != NULL && strcmp (name, model) != 0)
    {
      g_set_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_FILE,
                   _("the embedding was made by model “%s”, not “%s”"), name, model);
      return FALSE;
    }
  if (image_size > 0 && size != image_size)
    {
      g_set_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_FILE,
                   _("the embedding is for input size %d, not %d"), size, image_size);
      return FALSE;
    }
  memcpy (&len, h + 56, 8);
  len = GUINT64_FROM_LE (len);
  if (len != emb_floats (size, width) * sizeof (float))
    {
      g_set_error_literal (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_FILE,
                           _("the embedding file announces a data length that does not match its sizes"));
      return FALSE;
    }
  *out_size = size;
  *out_width = width;
  *data_len = len;
  return TRUE;
}

LodeSam2Embedding *
lode_sam2_embedding_deserialize (const guint8 *data,
                                 gsize         len,
                                 const char   *model,
                                 int           image_size,
                                 GError      **error)
{
  int size, width;
  guint64 data_len;
  LodeSam2Embedding *e;
  const guint8 *d;
  gsize n_embed, n0, n1;

  g_return_val_if_fail (data != NULL || len == 0, NULL);

  if (len < EMB_HEADER)
    {
      g_set_error_literal (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_FILE,
                           _("the embedding file is cut short"));
      return NULL;
    }
  if (!check_header (data, model, image_size, &size, &width, &data_len, error))
    return NULL;
  if (len - EMB_HEADER != data_len)
    {
      g_set_error_literal (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_FILE,
                           len - EMB_HEADER < data_len ? _("the embedding file is cut short")
                                                       : _("the embedding file has trailing bytes"));
      return NULL;
    }
  d = data + EMB_HEADER;
  if (crc_of (d, data_len) != get_u32 (data + 52))
    {
      g_set_error_literal (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_FILE,
                           _("the embedding file is damaged (checksum mismatch)"));
      return NULL;
    }
  e = lode_sam2_embedding_new (size, width);
  n_embed = (gsize) width * (size / 16) * (size / 16);
  n0 = (gsize) (width / 8) * (size / 4) * (size / 4);
  n1 = (gsize) (width / 4) * (size / 8) * (size / 8);
  read_floats_le (e->image_embed, d, n_embed);
  read_floats_le (e->high_res[0], d + 4 * n_embed, n0);
  read_floats_le (e->high_res[1], d + 4 * (n_embed + n0), n1);
  return e;
}

gboolean
lode_sam2_embedding_save (const LodeSam2Embedding *e,
                          const char              *model,
                          const char              *path,
                          GError                 **error)
{
  g_autoptr(GBytes) bytes = lode_sam2_embedding_serialize (e, model);
  g_autoptr(GFile) file = g_file_new_for_path (path);
  g_autoptr(GError) local = NULL;
  gsize len;
  const guint8 *data = g_bytes_get_data (bytes, &len);

  /* GIO writes a temporary file beside the target and renames it. */
  if (!g_file_replace_contents (file, (const char *) data, len, NULL, FALSE,
                                G_FILE_CREATE_NONE, NULL, NULL, &local))
    {
      g_set_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_FILE,
                   _("Cannot write the embedding file “%s”: %s"), path, local->message);
      return FALSE;
    }
  return TRUE;
}

LodeSam2Embedding *
lode_sam2_embedding_load (const char  *path,
                          const char  *model,
                          int          image_size,
                          GError     **error)
{
  g_autoptr(GError) local = NULL;
  g_autoptr(GMappedFile) mapped = NULL;
  LodeSam2Embedding *e;

  g_return_val_if_fail (path != NULL, NULL);

  /* Mapped, not read: nothing beyond the file's real size is allocated
   * whatever its header says. */
  mapped = g_mapped_file_new (path, FALSE, &local);
  if (mapped == NULL)
    {
      g_set_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_FILE,
                   _("Cannot read the embedding file “%s”: %s"), path, local->message);
      return NULL;
    }
  e = lode_sam2_embedding_deserialize ((const guint8 *) g_mapped_file_get_contents (mapped),
                                       g_mapped_file_get_length (mapped), model, image_size, &local);
  if (e == NULL)
    g_set_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_FILE,
                 _("Embedding file “%s”: %s"), path, local->message);
  return e;
}

/* ---- the predictor ------------------------------------------------------ */

struct _LodeSam2Predictor {
  LodeCheckpoint *checkpoint;
  LodeSam2Config config;
  char *model_name;
  LodeSam2Encoder *encoder;
  LodeSam2Decoder *decoder;     /* on the CPU */
  LodeDeviceKind device;        /* the encoder's, and the clicks' */
  gboolean device_auto;         /* chosen by "auto": the CPU if CUDA fails */
  LodePrecision precision;      /* the encoder's products on CUDA */
  /* the clicks on CUDA: made at the first click, with the serial of the
   * embedding last uploaded to it; dev_failed once "auto" fell back */
  LodeSam2DecoderDev *dev_decoder;
  guint64 dev_serial;
  gboolean dev_failed;
};

LodeSam2Predictor *
lode_sam2_predictor_open (const char           *checkpoint_path,
                          const LodeSam2Config *config,
                          int                   input_size,
                          GError              **error)
{
  return lode_sam2_predictor_open_on (checkpoint_path, config, input_size, "cpu", error);
}

gboolean
lode_sam2_predictor_set_device (LodeSam2Predictor *self,
                                const char        *device,
                                GError           **error)
{
  LodeDeviceKind kind;
  GError *local = NULL;

  g_return_val_if_fail (self != NULL, FALSE);

  kind = lode_device_choose (device, &local);
  if (local != NULL)
    {
      g_propagate_error (error, local);
      return FALSE;
    }
  if (self->encoder != NULL && lode_sam2_encoder_device (self->encoder) != kind)
    g_clear_pointer (&self->encoder, lode_sam2_encoder_free);
  if (kind != LODE_DEVICE_CUDA)
    g_clear_pointer (&self->dev_decoder, lode_sam2_decoder_dev_free);
  self->dev_failed = FALSE;
  self->dev_serial = 0;
  self->device = kind;
  self->device_auto = device == NULL || g_str_equal (device, "auto");
  return TRUE;
}

void
lode_sam2_predictor_set_precision (LodeSam2Predictor *self, LodePrecision precision)
{
  g_return_if_fail (self != NULL);
  self->precision = precision;
}

const char *
lode_sam2_predictor_device_name (LodeSam2Predictor *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return lode_device_kind_name (self->encoder != NULL ? lode_sam2_encoder_device (self->encoder)
                                                      : self->device);
}

LodeSam2Predictor *
lode_sam2_predictor_open_on (const char           *checkpoint_path,
                             const LodeSam2Config *config,
                             int                   input_size,
                             const char           *device,
                             GError              **error)
{
  g_autoptr(LodeSam2Predictor) self = NULL;
  g_autoptr(GError) local = NULL;

  g_return_val_if_fail (checkpoint_path != NULL, NULL);

  if (input_size != 0 && input_size != 1024 && input_size != 512)
    {
      g_set_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_CONFIG,
                   _("SAM2 input size %d: use 1024 (the model's own) or 512"), input_size);
      return NULL;
    }
  self = g_new0 (LodeSam2Predictor, 1);
  if (!lode_sam2_predictor_set_device (self, device, error))
    return NULL;
  self->checkpoint = lode_checkpoint_open (checkpoint_path, error);
  if (self->checkpoint == NULL)
    return NULL;
  if (config != NULL)
    self->config = *config;
  else if (!lode_sam2_config_from_checkpoint (self->checkpoint, &self->config, &local))
    {
      g_set_error (error, local->domain, local->code, _("Checkpoint “%s”: %s"),
                   checkpoint_path, local->message);
      return NULL;
    }
  if (input_size != 0 && input_size != self->config.image_size)
    {
      self->config.image_size = input_size;
      if (!lode_sam2_config_complete (&self->config, &local))
        {
          g_set_error (error, local->domain, local->code, _("Checkpoint “%s”: %s"),
                       checkpoint_path, local->message);
          return NULL;
        }
    }
  self->model_name = g_strdup (self->config.size_name != NULL ? self->config.size_name : "custom");
  self->config.size_name = self->model_name;
  self->decoder = lode_sam2_decoder_new_from_checkpoint (self->checkpoint, &self->config, &local);
  if (self->decoder == NULL)
    {
      g_set_error (error, local->domain, local->code, _("Checkpoint “%s”: %s"),
                   checkpoint_path, local->message);
      return NULL;
    }
  return g_steal_pointer (&self);
}

void
lode_sam2_predictor_free (LodeSam2Predictor *self)
{
  if (self == NULL)
    return;
  lode_sam2_decoder_free (self->decoder);
  g_clear_pointer (&self->dev_decoder, lode_sam2_decoder_dev_free);
  g_clear_pointer (&self->encoder, lode_sam2_encoder_free);
  g_clear_pointer (&self->checkpoint, lode_checkpoint_free);
  g_free (self->model_name);
  g_free (self);
}

const LodeSam2Config *
lode_sam2_predictor_get_config (LodeSam2Predictor *self)
{
  return &self->config;
}

const char *
lode_sam2_predictor_model_name (LodeSam2Predictor *self)
{
  return self->model_name;
}

LodeSam2Decoder *
lode_sam2_predictor_get_decoder (LodeSam2Predictor *self)
{
  return self->decoder;
}

LodeSam2Embedding *
lode_sam2_predictor_encode (LodeSam2Predictor *self,
                            const guint8      *rgb,
                            int                width,
                            int                height,
                            GError           **error)
{
  return lode_sam2_predictor_encode_cancellable (self, rgb, width, height, NULL, error);
}

LodeSam2Embedding *
lode_sam2_predictor_encode_cancellable (LodeSam2Predictor *self,
                                        const guint8      *rgb,
                                        int                width,
                                        int                height,
                                        GCancellable      *cancellable,
                                        GError           **error)
{
  g_return_val_if_fail (self != NULL && rgb != NULL, NULL);

  if (width <= 0 || height <= 0)
    {
      g_set_error (error, LODE_SAM2_ERROR, LODE_SAM2_ERROR_PROMPT,
                   _("Cannot encode an image of %d x %d pixels"), width, height);
      return NULL;
    }
  /* The image path's weights are read at the first encode: a predictor
   * fed cached embeddings never needs them. */
  if (self->encoder == NULL)
    {
      g_autoptr(GError) local = NULL;

      self->encoder = lode_sam2_encoder_new_on (self->checkpoint, &self->config, self->device, &local);
      if (self->encoder == NULL && self->device == LODE_DEVICE_CUDA && self->device_auto)
        {
          /* "auto" must not leave SAM2 unusable when the GPU is full */
          g_message ("SAM2 image encoder on the CPU: %s", local->message);
          g_clear_error (&local);
          self->device = LODE_DEVICE_CPU;
          self->encoder = lode_sam2_encoder_new_on (self->checkpoint, &self->config, self->device, &local);
        }
      if (self->encoder == NULL)
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return NULL;
        }
    }
  if (!lode_sam2_encoder_set_precision (self->encoder, self->precision, error))
    return NULL;
  return lode_sam2_encoder_run_rgb (self->encoder, rgb, width, height, cancellable, error);
}

/* The clicks' decoder on CUDA with embedding uploaded, or NULL for the
 * CPU decoder (the predictor is on the CPU, or "auto" fell back to it). */
static LodeSam2DecoderDev *
device_decoder (LodeSam2Predictor       *self,
                const LodeSam2Embedding *embedding,
                GError                 **error,
                gboolean                *failed)
{
  g_autoptr(GError) local = NULL;

  *failed = FALSE;
  if (self->device != LODE_DEVICE_CUDA || self->dev_failed)
    return NULL;
  if (self->dev_decoder == NULL)
    {
      self->dev_decoder = lode_sam2_decoder_dev_new_from_checkpoint (self->checkpoint, &self->config,
                                                                     LODE_DEVICE_CUDA, &local);
      self->dev_serial = 0;
    }
  if (self->dev_decoder != NULL && self->dev_serial != embedding->serial)
    {
      if (lode_sam2_decoder_dev_set_embedding (self->dev_decoder, embedding, &local))
        self->dev_serial = embedding->serial;
      else if (local->domain == LODE_SAM2_ERROR)
        {
          /* an embedding that does not fit the model: the same error on any device */
          g_propagate_error (error, g_steal_pointer (&local));
          *failed = TRUE;
          return NULL;
        }
      else
        g_clear_pointer (&self->dev_decoder, lode_sam2_decoder_dev_free);
    }
  if (self->dev_decoder != NULL)
    return self->dev_decoder;
  if (!self->device_auto)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      *failed = TRUE;
      return NULL;
    }
  /* "auto" must not leave the clicks unusable when the GPU fails */
  g_message ("SAM2 clicks on the CPU: %s", local->message);
  self->dev_failed = TRUE;
  return NULL;
}

LodeSam2Prediction *
lode_sam2_predictor_predict (LodeSam2Predictor       *self,
                             const LodeSam2Embedding *embedding,
                             int                      patch_width,
                             int                      patch_height,
                             const LodeSam2Click     *click,
                             GError                 **error)
{
  LodeSam2DecoderDev *dev;
  float points[LODE_SAM2_MAX_POINTS * 2];
  LodeSam2Prompt prompt;
  LodeSam2DecoderOutput out = { 0 };
  gboolean failed;

  g_return_val_if_fail (self != NULL && embedding != NULL && click != NULL, NULL);

  dev = device_decoder (self, embedding, error, &failed);
  if (failed)
    return NULL;
  if (dev == NULL)
    return lode_sam2_decoder_predict (self->decoder, embedding, patch_width, patch_height,
                                      click, error);
  if (!click_to_prompt (&self->config, patch_width, patch_height, click, points, &prompt, error)
      || !lode_sam2_decoder_dev_run (dev, &prompt, &out, error))
    return NULL;
  return prediction_from_output (&out, patch_width, patch_height);
}
