#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>
#include <inttypes.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#include "lode-mask.h"
#include "lode-prelabel.h"
#include "lode-store.h"

guint8 *
lode_prelabel_predict (LodeUnet              *model,
                       const LodeTrainConfig *c,
                       const LodeRaster      *r,
                       GError               **error)
{
  int ph = (r->height + 31) / 32 * 32, pw = (r->width + 31) / 32 * 32;
  gsize phw = (gsize) ph * pw;
  g_autofree float *input = g_new0 (float, c->bands * phw);
  g_autofree float *logits = g_new (float, c->classes * phw);
  guint8 *mask;

  for (int b = 0; b < c->bands; b++)
    {
      const float *src;
      float *dst = input + b * phw;

      if (c->band_select[b] >= r->n_bands)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       _("“%s” has %d bands; the model reads band %d"), r->path ? r->path : "",
                       r->n_bands, c->band_select[b] + 1);
          return NULL;
        }
      src = lode_raster_band (r, c->band_select[b]);
      for (int y = 0; y < r->height; y++)
        for (int x = 0; x < r->width; x++)
          {
            float v = src[(gsize) y * r->width + x];
            dst[(gsize) y * pw + x] = isfinite (v) ? (v - c->mean[b]) / c->std[b] : 0.0f;
          }
    }
  if (!lode_unet_forward (model, input, 1, ph, pw, LODE_UNET_EVAL, logits, error))
    return NULL;
  mask = g_new (guint8, (gsize) r->width * r->height);
  for (int y = 0; y < r->height; y++)
    for (int x = 0; x < r->width; x++)
      {
        gsize q = (gsize) y * pw + x;
        int best = 0;

        for (int k = 1; k < c->classes; k++)
          if (logits[k * phw + q] > logits[best * phw + q])
            best = k;
        mask[(gsize) y * r->width + x] = r->valid[(gsize) y * r->width + x] ? (guint8) best : 255;
      }
  return mask;
}

/* Class index -> class id: the model version's "class_ids" when its
 * metrics name them, else the class table's order. */
static void
class_ids (const char *metrics_json, const LodeClassTable *table, guint8 id_of[256])
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonObject *root;

  memset (id_of, LODE_MASK_NODATA, 256);
  for (guint k = 0; k < lode_class_table_size (table); k++)
    id_of[k] = lode_class_table_get (table, k)->id;
  if (metrics_json == NULL || !json_parser_load_from_data (parser, metrics_json, -1, NULL)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return;
  root = json_node_get_object (json_parser_get_root (parser));
  if (json_object_has_member (root, "class_ids")
      && JSON_NODE_HOLDS_ARRAY (json_object_get_member (root, "class_ids")))
    {
      JsonArray *ids = json_object_get_array_member (root, "class_ids");
      for (guint k = 0; k < json_array_get_length (ids) && k < 255; k++)
        {
          gint64 id = json_array_get_int_element (ids, k);
          if (id >= 0 && id < LODE_MASK_NODATA && lode_class_table_lookup (table, (guint8) id) != NULL)
            id_of[k] = (guint8) id;
        }
    }
}

/* Has a person edited the patch: a manual or SAM2 revision in its history. */
static gboolean
edited_by_hand (LodeStore *store, gint64 patch_id, GError **error)
{
  g_autoptr(GPtrArray) revisions = lode_store_list_revisions (store, patch_id, error);

  if (revisions == NULL)
    return FALSE;
  for (guint i = 0; i < revisions->len; i++)
    {
      const LodeRevisionInfo *info = g_ptr_array_index (revisions, i);
      if (info->source == LODE_REVISION_MANUAL || info->source == LODE_REVISION_SAM2)
        return TRUE;
    }
  return FALSE;
}

static gboolean
in_scope (const LodePatch *p, LodePrelabelScope scope)
{
  if (p->odd_reason != NULL)
    return FALSE;
  switch (scope)
    {
    case LODE_PRELABEL_UNLABELLED:
      return p->state == LODE_REVIEW_UNLABELLED;
    case LODE_PRELABEL_UNREVIEWED:
      return p->state != LODE_REVIEW_ACCEPTED && p->state != LODE_REVIEW_REJECTED;
    case LODE_PRELABEL_ALL:
    default:
      return TRUE;
    }
}

gboolean
lode_prelabel_run (const char         *project,
                   gint64              model_version_id,
                   const char         *checkpoint,
                   LodePrelabelScope   scope,
                   gboolean            include_edited,
                   LodeProgressFunc    progress,
                   gpointer            user_data,
                   LodePrelabelReport *report,
                   GCancellable       *cancellable,
                   GError            **error)
{
  g_autoptr(LodeStore) store = NULL;
  g_autoptr(LodeModelVersion) version = NULL;
  g_autoptr(LodeClassTable) table = NULL;
  g_autoptr(GPtrArray) patches = NULL;
  g_autoptr(LodeUnet) model = NULL;
  g_autofree char *table_json = NULL, *path = NULL, *note = NULL;
  LodePrelabelReport local = { 0 };
  LodeTrainConfig config;
  guint8 id_of[256];

  g_return_val_if_fail (project != NULL, FALSE);
  g_return_val_if_fail (model_version_id > 0 || checkpoint != NULL, FALSE);

  if (report == NULL)
    report = &local;
  memset (report, 0, sizeof *report);
  store = lode_store_open (project, FALSE, error);
  if (store == NULL)
    return FALSE;
  if (model_version_id == 0)
    {
      g_autofree char *stored = lode_store_relative_path (store, checkpoint);
      g_autofree char *name = g_path_get_basename (checkpoint);

      /* Read it first: a file that is no checkpoint is not added. */
      model = lode_train_checkpoint_load (checkpoint, &config, NULL, NULL, NULL, error);
      if (model == NULL)
        return FALSE;
      model_version_id = lode_store_add_model_version (store, LODE_MODEL_UNET, name, stored, NULL, 0, error);
      if (model_version_id == 0)
        return FALSE;
    }
  version = lode_store_get_model_version (store, model_version_id, error);
  if (version == NULL)
    return FALSE;
  if (version->kind != LODE_MODEL_UNET)
    {
      g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_INVALID,
                   _("Model version %" PRId64 " (“%s”) is not a U-Net; only U-Nets pre-label"),
                   model_version_id, version->name);
      return FALSE;
    }
  path = lode_store_resolve_path (store, version->path);
  if (model == NULL)
    {
      model = lode_train_checkpoint_load (path, &config, NULL, NULL, NULL, error);
      if (model == NULL)
        return FALSE;
    }

  table_json = lode_store_get_class_table_json (store);
  table = table_json ? lode_class_table_from_json (table_json, error) : lode_class_table_new_binary ();
  if (table == NULL)
    return FALSE;
  class_ids (version->metrics_json, table, id_of);

  patches = lode_store_list_patches (store, error);
  if (patches == NULL)
    return FALSE;
  report->total = patches->len;
  /* Translators: the note of a pre-label revision; %s is the model version's name */
  note = g_strdup_printf (_("pre-label by %s"), version->name);
  for (guint i = 0; i < patches->len; i++)
    {
      const LodePatch *p = g_ptr_array_index (patches, i);
      g_autofree char *image = NULL, *what = NULL;
      g_autoptr(LodeRaster) raster = NULL;
      g_autoptr(LodeMask) mask = NULL;
      g_autoptr(GBytes) blob = NULL;
      g_autoptr(GError) local_error = NULL;
      g_autofree guint8 *classes = NULL;

      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return FALSE;
      if (!in_scope (p, scope))
        report->skipped++;
      else if (!include_edited && edited_by_hand (store, p->id, &local_error))
        report->edited++;
      else if (local_error != NULL)
        {
          g_propagate_error (error, g_steal_pointer (&local_error));
          return FALSE;
        }
      else
        {
          image = lode_store_resolve_path (store, p->image_path);
          raster = lode_raster_open (image, &local_error);
          if (raster != NULL)
            classes = lode_prelabel_predict (model, &config, raster, &local_error);
          if (classes == NULL)
            {
              g_warning ("Tile %s of %d not pre-labelled: %s", p->tile_id, p->year, local_error->message);
              report->failed++;
            }
          else
            {
              mask = lode_mask_new (raster->width, raster->height);
              for (gsize q = 0; q < (gsize) raster->width * raster->height; q++)
                mask->data[q] = classes[q] == 255 ? LODE_MASK_NODATA : id_of[classes[q]];
              blob = lode_mask_serialize (mask);
              if (lode_store_add_revision (store, p->id, blob, LODE_REVISION_MODEL, model_version_id,
                                           "lode", note, error) == 0)
                return FALSE;
              report->labelled++;
            }
        }
      if (progress != NULL)
        {
          /* Translators: progress of pre-labelling: patches done and all */
          what = g_strdup_printf (_("%u of %u patches"), i + 1, patches->len);
          progress ((double) (i + 1) / patches->len, what, user_data);
        }
    }
  return TRUE;
}
