#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <inttypes.h>

#include "lode-sam2-session.h"

struct _LodeSam2Session
{
  LodeSam2Predictor *predictor;
  char              *model_key;
  int                input_size;
};

LodeSam2Session *
lode_sam2_session_new (const char *checkpoint, int input_size, GError **error)
{
  g_autoptr(LodeSam2Session) self = g_new0 (LodeSam2Session, 1);
  g_autoptr(GFile) file = g_file_new_for_path (checkpoint);
  g_autoptr(GFileInfo) info = NULL;
  g_autofree char *abs = g_canonicalize_filename (checkpoint, NULL);
  g_autofree char *identity = NULL;
  g_autofree char *digest = NULL;

  info = g_file_query_info (file, G_FILE_ATTRIBUTE_STANDARD_SIZE "," G_FILE_ATTRIBUTE_TIME_MODIFIED,
                            G_FILE_QUERY_INFO_NONE, NULL, error);
  if (info == NULL)
    return NULL;
  self->predictor = lode_sam2_predictor_open_on (checkpoint, NULL, input_size, "auto", error);
  if (self->predictor == NULL)
    return NULL;
  self->input_size = lode_sam2_predictor_get_config (self->predictor)->image_size;

  identity = g_strdup_printf ("%s|%" PRId64 "|%" PRIu64, abs, (gint64) g_file_info_get_size (info),
                              (guint64) g_file_info_get_attribute_uint64 (info, G_FILE_ATTRIBUTE_TIME_MODIFIED));
  digest = g_compute_checksum_for_string (G_CHECKSUM_SHA256, identity, -1);
  digest[16] = '\0';
  self->model_key = g_strdup_printf ("%s-%d-%s", lode_sam2_predictor_model_name (self->predictor),
                                     self->input_size, digest);
  return g_steal_pointer (&self);
}

void
lode_sam2_session_free (LodeSam2Session *self)
{
  if (self == NULL)
    return;
  g_clear_pointer (&self->predictor, lode_sam2_predictor_free);
  g_free (self->model_key);
  g_free (self);
}

LodeSam2Predictor *
lode_sam2_session_get_predictor (LodeSam2Session *self)
{
  return self->predictor;
}

const char *
lode_sam2_session_model_key (LodeSam2Session *self)
{
  return self->model_key;
}

char *
lode_sam2_cache_dir (LodeStore *store)
{
  g_autofree char *folder = g_strconcat (lode_store_get_path (store), ".cache", NULL);

  return g_build_filename (folder, "sam2", NULL);
}

char *
lode_sam2_composite_key (const LodeCompositeSpec *spec)
{
  return g_strdup_printf ("%s:%d,%d,%d,%d:s%d:%g-%g:%g,%g,%g-%g,%g,%g:g%g:r%d",
                          lode_composite_preset_id (spec->preset),
                          spec->bands[0], spec->bands[1], spec->bands[2], spec->bands[3],
                          (int) spec->stretch, spec->low_pct, spec->high_pct,
                          spec->fixed_min[0], spec->fixed_min[1], spec->fixed_min[2],
                          spec->fixed_max[0], spec->fixed_max[1], spec->fixed_max[2],
                          spec->gamma, (int) spec->ramp);
}

/* Drops the least recently used files past the bound; a file that cannot
 * be removed is only forgotten by the index. */
static void
evict (LodeStore *store, guint64 max_bytes)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) paths = lode_store_cache_evict (store, max_bytes, &error);

  if (paths == NULL)
    {
      g_warning ("Could not shrink the embedding cache: %s", error->message);
      return;
    }
  for (guint i = 0; i < paths->len; i++)
    g_unlink (g_ptr_array_index (paths, i));
}

LodeSam2Embedding *
lode_sam2_session_embed (LodeSam2Session         *self,
                         LodeStore               *store,
                         gint64                   patch_id,
                         const LodeRaster        *raster,
                         const LodeCompositeSpec *spec,
                         guint64                  max_bytes,
                         gboolean                *from_cache,
                         GCancellable            *cancellable,
                         GError                 **error)
{
  LodeCompositeSpec resolved = *spec;
  g_autofree char *composite = NULL;
  g_autofree char *key = NULL;
  g_autofree char *cached = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *name = NULL;
  g_autofree char *path = NULL;
  g_autofree guint8 *rgb = NULL;
  g_autoptr(LodeSam2Embedding) embedding = NULL;
  const char *model = lode_sam2_predictor_model_name (self->predictor);

  if (from_cache)
    *from_cache = FALSE;
  if (max_bytes == 0)
    max_bytes = LODE_SAM2_CACHE_DEFAULT_BYTES;
  if (!lode_composite_resolve (&resolved, raster, error))
    return NULL;

  composite = lode_sam2_composite_key (&resolved);
  key = lode_store_cache_key (patch_id, composite, self->model_key, self->input_size);
  cached = lode_store_cache_lookup (store, key);
  if (cached != NULL)
    {
      g_autoptr(GError) local = NULL;

      embedding = lode_sam2_embedding_load (cached, model, self->input_size, &local);
      if (embedding != NULL)
        {
          if (from_cache)
            *from_cache = TRUE;
          return g_steal_pointer (&embedding);
        }
      /* A damaged or vanished file is simply computed again. */
      g_debug ("Embedding cache entry %s is not usable: %s", cached, local->message);
    }

  rgb = g_malloc ((gsize) raster->width * raster->height * 3);
  if (!lode_composite_render_rgb (raster, &resolved, NULL, rgb, error))
    return NULL;
  embedding = lode_sam2_predictor_encode_cancellable (self->predictor, rgb, raster->width, raster->height,
                                                      cancellable, error);
  if (embedding == NULL)
    return NULL;

  dir = lode_sam2_cache_dir (store);
  if (g_mkdir_with_parents (dir, 0755) != 0)
    {
      /* The embedding is good; only the cache cannot keep it. */
      g_debug ("Cannot create the embedding cache %s", dir);
      return g_steal_pointer (&embedding);
    }
  name = g_compute_checksum_for_string (G_CHECKSUM_SHA256, key, -1);
  path = g_strdup_printf ("%s" G_DIR_SEPARATOR_S "%s.emb", dir, name);
  {
    g_autoptr(GError) local = NULL;

    if (!lode_sam2_embedding_save (embedding, model, path, &local) ||
        !lode_store_cache_put (store, key, path, lode_sam2_embedding_bytes (embedding), &local))
      g_debug ("Could not keep the embedding in the cache: %s", local->message);
    else
      evict (store, max_bytes);
  }
  return g_steal_pointer (&embedding);
}
