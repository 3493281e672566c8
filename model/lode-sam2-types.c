#define G_LOG_DOMAIN "lode-model"

#include "config.h"

#include "lode-sam2-types.h"

LodeSam2Embedding *
lode_sam2_embedding_new (int image_size, int d_model)
{
  LodeSam2Embedding *e = g_new0 (LodeSam2Embedding, 1);
  gsize s16 = (gsize) (image_size / 16);
  gsize s8 = (gsize) (image_size / 8);
  gsize s4 = (gsize) (image_size / 4);

  g_return_val_if_fail (image_size > 0 && image_size % 16 == 0 && d_model % 8 == 0, NULL);

  static guint64 next_serial = 1;   /* guarded by the atomic add */

  e->serial = (guint64) __atomic_fetch_add (&next_serial, 1, __ATOMIC_RELAXED);
  e->image_size = image_size;
  e->d_model = d_model;
  e->embed_size = image_size / 16;
  e->image_embed = g_new0 (float, (gsize) d_model * s16 * s16);
  e->high_res_channels[0] = d_model / 8;
  e->high_res_channels[1] = d_model / 4;
  e->high_res[0] = g_new0 (float, (gsize) e->high_res_channels[0] * s4 * s4);
  e->high_res[1] = g_new0 (float, (gsize) e->high_res_channels[1] * s8 * s8);
  return e;
}

void
lode_sam2_embedding_free (LodeSam2Embedding *e)
{
  if (e == NULL)
    return;
  g_free (e->image_embed);
  g_free (e->high_res[0]);
  g_free (e->high_res[1]);
  g_free (e);
}

gsize
lode_sam2_embedding_bytes (const LodeSam2Embedding *e)
{
  gsize s16 = (gsize) e->embed_size;
  gsize s8 = s16 * 2, s4 = s16 * 4;

  return sizeof (float) * ((gsize) e->d_model * s16 * s16 +
                           (gsize) e->high_res_channels[0] * s4 * s4 +
                           (gsize) e->high_res_channels[1] * s8 * s8);
}
