#define G_LOG_DOMAIN "lode-ui"

#include "config.h"

#include <glib/gi18n.h>

#include "lode-background.h"
#include "lode-store.h"
#include "lode-thumbnailer.h"

struct _LodeThumbnailer
{
  GObject              parent_instance;
  char                *path;
  LodeCompositePreset  preset;
  GHashTable          *cache;  /* gint64 * -> GdkTexture */
};

G_DEFINE_FINAL_TYPE (LodeThumbnailer, lode_thumbnailer, G_TYPE_OBJECT)

static void
lode_thumbnailer_finalize (GObject *object)
{
  LodeThumbnailer *self = LODE_THUMBNAILER (object);

  g_free (self->path);
  g_hash_table_unref (self->cache);
  G_OBJECT_CLASS (lode_thumbnailer_parent_class)->finalize (object);
}

static void
lode_thumbnailer_class_init (LodeThumbnailerClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = lode_thumbnailer_finalize;
}

static void
lode_thumbnailer_init (LodeThumbnailer *self)
{
  self->cache = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, g_object_unref);
}

LodeThumbnailer *
lode_thumbnailer_new (const char *project_path, LodeCompositePreset preset)
{
  LodeThumbnailer *self = g_object_new (LODE_TYPE_THUMBNAILER, NULL);

  self->path = g_strdup (project_path);
  self->preset = preset;
  return self;
}

const char *
lode_thumbnailer_get_path (LodeThumbnailer *self)
{
  g_return_val_if_fail (LODE_IS_THUMBNAILER (self), NULL);
  return self->path;
}

GdkTexture *
lode_thumbnailer_lookup (LodeThumbnailer *self, gint64 patch_id)
{
  g_return_val_if_fail (LODE_IS_THUMBNAILER (self), NULL);
  return g_hash_table_lookup (self->cache, &patch_id);
}

void
lode_thumbnailer_invalidate (LodeThumbnailer *self, gint64 patch_id)
{
  g_return_if_fail (LODE_IS_THUMBNAILER (self));
  g_hash_table_remove (self->cache, &patch_id);
}

void
lode_patch_shares_from_mask (const LodeMask *mask, LodePatchShares *out)
{
  guint64 counts[256] = { 0 };
  guint64 valid = 0;

  lode_mask_count (mask, counts);
  for (int i = 0; i < LODE_MASK_NODATA; i++)
    valid += counts[i];
  out->has_mask = TRUE;
  out->mining = valid ? (double) counts[1] / valid : 0.0;
  out->cocoa = valid ? (double) counts[2] / valid : 0.0;
}

typedef struct
{
  gint64               patch_id;  /* first: callers read it as the task data */
  char                *path;
  LodeCompositePreset  preset;
} ThumbJob;

static void
thumb_job_free (ThumbJob *job)
{
  g_free (job->path);
  g_free (job);
}

/* Composite and mask, sampled down to at most LODE_THUMBNAIL_SIZE a side,
 * the mask blended at half opacity. */
static GBytes *
make_thumbnail (const ThumbJob *job, int *out_w, int *out_h, GError **error)
{
  g_autoptr(LodeStore) store = NULL;
  g_autoptr(LodePatch) patch = NULL;
  g_autoptr(LodeRaster) raster = NULL;
  g_autoptr(LodeMask) mask = NULL;
  g_autoptr(GBytes) blob = NULL;
  g_autoptr(LodeClassTable) classes = NULL;
  g_autofree char *image_path = NULL;
  g_autofree char *json = NULL;
  g_autofree guint8 *rgba = NULL;
  g_autofree guint8 *overlay = NULL;
  LodeCompositeSpec spec;
  guint8 *out;
  int w, h, tw, th;

  store = lode_store_open (job->path, FALSE, error);
  if (store == NULL)
    return NULL;
  patch = lode_store_get_patch (store, job->patch_id, error);
  if (patch == NULL)
    return NULL;
  image_path = lode_store_resolve_path (store, patch->image_path);
  raster = lode_raster_open (image_path, error);
  if (raster == NULL)
    return NULL;
  w = raster->width;
  h = raster->height;
  rgba = g_malloc ((gsize) w * h * 4);
  lode_composite_spec_init (&spec, job->preset);
  if (!lode_composite_resolve (&spec, raster, NULL))
    lode_composite_spec_init (&spec, LODE_COMPOSITE_TRUE_COLOUR);
  if (!lode_composite_resolve (&spec, raster, error) ||
      !lode_composite_render_rgba (raster, &spec, NULL, rgba, error))
    return NULL;

  blob = lode_store_get_mask (store, job->patch_id, 0, NULL, error);
  if (blob != NULL)
    {
      mask = lode_mask_deserialize (blob, error);
      if (mask == NULL)
        return NULL;
      json = lode_store_get_class_table_json (store);
      classes = json ? lode_class_table_from_json (json, NULL) : NULL;
      if (classes == NULL)
        classes = lode_class_table_new_cocoa ();
      overlay = g_malloc ((gsize) w * h * 4);
      lode_mask_render_rgba (mask, classes, FALSE, overlay);
    }

  /* The longer side at most LODE_THUMBNAIL_SIZE, the shorter in proportion. */
  if (w >= h)
    {
      tw = MIN (w, LODE_THUMBNAIL_SIZE);
      th = MAX (1, tw * h / w);
    }
  else
    {
      th = MIN (h, LODE_THUMBNAIL_SIZE);
      tw = MAX (1, th * w / h);
    }
  out = g_malloc ((gsize) tw * th * 4);
  for (int y = 0; y < th; y++)
    for (int x = 0; x < tw; x++)
      {
        gsize s = ((gsize) (y * h / th) * w + (x * w / tw)) * 4;
        guint8 *d = out + ((gsize) y * tw + x) * 4;

        for (int c = 0; c < 3; c++)
          {
            guint v = rgba[s + c];
            if (overlay != NULL && overlay[s + 3] > 0)
              v = (v + overlay[s + c]) / 2;
            d[c] = v;
          }
        d[3] = rgba[s + 3] ? 255 : 0;
      }
  *out_w = tw;
  *out_h = th;
  return g_bytes_new_take (out, (gsize) tw * th * 4);
}

typedef struct
{
  GBytes *pixels;
  int     width;
  int     height;
} ThumbResult;

static void
thumb_result_free (ThumbResult *r)
{
  g_bytes_unref (r->pixels);
  g_free (r);
}

static void
thumb_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  ThumbJob *job = task_data;
  ThumbResult *result;
  GError *error = NULL;
  int w = 0, h = 0;
  GBytes *pixels;

  if (g_task_return_error_if_cancelled (task))
    return;
  pixels = make_thumbnail (job, &w, &h, &error);
  if (pixels == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  result = g_new0 (ThumbResult, 1);
  result->pixels = pixels;
  result->width = w;
  result->height = h;
  g_task_return_pointer (task, result, (GDestroyNotify) thumb_result_free);
}

void
lode_thumbnailer_load_async (LodeThumbnailer     *self,
                             gint64               patch_id,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  ThumbJob *job;

  g_return_if_fail (LODE_IS_THUMBNAILER (self));
  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, lode_thumbnailer_load_async);
  job = g_new0 (ThumbJob, 1);
  job->path = g_strdup (self->path);
  job->patch_id = patch_id;
  job->preset = self->preset;
  g_task_set_task_data (task, job, (GDestroyNotify) thumb_job_free);
  lode_background_run_in_thread (task, thumb_thread);
}

GdkTexture *
lode_thumbnailer_load_finish (LodeThumbnailer *self, GAsyncResult *result, GError **error)
{
  ThumbResult *r;
  ThumbJob *job;
  GdkTexture *texture;

  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  r = g_task_propagate_pointer (G_TASK (result), error);
  if (r == NULL)
    return NULL;
  texture = gdk_memory_texture_new (r->width, r->height, GDK_MEMORY_R8G8B8A8, r->pixels, (gsize) r->width * 4);
  thumb_result_free (r);
  job = g_task_get_task_data (G_TASK (result));
  if (g_hash_table_size (self->cache) >= LODE_THUMBNAIL_CACHE)
    g_hash_table_remove_all (self->cache);
  g_hash_table_insert (self->cache, g_memdup2 (&job->patch_id, sizeof (gint64)), g_object_ref (texture));
  return texture;
}

static void
scan_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  const char *path = task_data;
  g_autoptr(LodeStore) store = NULL;
  g_autoptr(GPtrArray) patches = NULL;
  g_autoptr(GArray) shares = g_array_new (FALSE, TRUE, sizeof (LodePatchShares));
  GError *error = NULL;

  store = lode_store_open (path, FALSE, &error);
  if (store != NULL)
    patches = lode_store_list_patches (store, &error);
  if (patches == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  for (guint i = 0; i < patches->len; i++)
    {
      const LodePatch *p = g_ptr_array_index (patches, i);
      g_autoptr(GBytes) blob = NULL;
      g_autoptr(LodeMask) mask = NULL;
      LodePatchShares s = { p->id, 0.0, 0.0, FALSE };

      if (g_task_return_error_if_cancelled (task))
        return;
      blob = lode_store_get_mask (store, p->id, 0, NULL, NULL);
      if (blob != NULL)
        mask = lode_mask_deserialize (blob, NULL);
      if (mask != NULL)
        lode_patch_shares_from_mask (mask, &s);
      g_array_append_val (shares, s);
    }
  g_task_return_pointer (task, g_steal_pointer (&shares), (GDestroyNotify) g_array_unref);
}

void
lode_thumbnailer_scan_async (LodeThumbnailer     *self,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (LODE_IS_THUMBNAILER (self));
  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, lode_thumbnailer_scan_async);
  g_task_set_task_data (task, g_strdup (self->path), g_free);
  lode_background_run_in_thread (task, scan_thread);
}

GArray *
lode_thumbnailer_scan_finish (LodeThumbnailer *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}
