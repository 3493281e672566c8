#define G_LOG_DOMAIN "lode-annotate"

#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "lode-document.h"

G_DEFINE_QUARK (lode-document-error-quark, lode_document_error)

struct _LodeDocument
{
  LodeStore      *store;
  LodePatch      *patch;
  LodeRaster     *raster;
  LodeMask       *mask;
  LodeMask       *original;
  LodeClassTable *classes;
  LodeHistory    *history;
  gint64          revision;
};

void
lode_document_free (LodeDocument *doc)
{
  if (doc == NULL)
    return;
  g_clear_pointer (&doc->patch, lode_patch_free);
  g_clear_pointer (&doc->raster, lode_raster_free);
  g_clear_pointer (&doc->mask, lode_mask_free);
  g_clear_pointer (&doc->original, lode_mask_free);
  g_clear_pointer (&doc->classes, lode_class_table_free);
  g_clear_pointer (&doc->history, lode_history_free);
  g_free (doc);
}

static LodeMask *
mask_from_blob (GBytes *blob, const LodePatch *patch, GError **error)
{
  g_autoptr(LodeMask) mask = lode_mask_deserialize (blob, error);

  if (mask == NULL)
    return NULL;
  if (mask->width != patch->width || mask->height != patch->height)
    {
      g_set_error (error, LODE_MASK_ERROR, LODE_MASK_ERROR_CORRUPT,
                   _("The stored mask of patch %s (%d) is %d × %d pixels, the patch %d × %d"),
                   patch->tile_id, patch->year, mask->width, mask->height,
                   patch->width, patch->height);
      return NULL;
    }
  return g_steal_pointer (&mask);
}

/* Replays the stored edits into the in-memory history: the applied ones,
 * then the undone ones re-applied on a copy and undone again, so the redo
 * branch comes back too. */
static gboolean
rebuild_history (LodeDocument *doc, GError **error)
{
  g_autoptr(GPtrArray) applied = NULL;
  g_autoptr(GPtrArray) undone = NULL;
  g_autoptr(LodeMask) tip = NULL;

  if (!lode_store_load_edits (doc->store, doc->patch->id, &applied, &undone, error))
    return FALSE;

  tip = lode_mask_copy (doc->mask);
  for (guint i = 0; i < applied->len + undone->len; i++)
    {
      LodeEdit *edit = i < applied->len ? g_ptr_array_index (applied, i)
                                        : g_ptr_array_index (undone, i - applied->len);
      LodeMaskDelta *delta = lode_mask_delta_deserialize (edit->delta, error);

      if (delta == NULL)
        return FALSE;
      if (delta->x < 0 || delta->y < 0 ||
          delta->x + delta->width > tip->width || delta->y + delta->height > tip->height)
        {
          lode_mask_delta_free (delta);
          g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_CORRUPT,
                       _("A stored edit of patch %s (%d) lies outside the patch"),
                       doc->patch->tile_id, doc->patch->year);
          return FALSE;
        }
      if (i >= applied->len)
        lode_mask_delta_apply (delta, tip, TRUE);
      lode_history_push (doc->history, delta);
    }
  for (guint i = 0; i < undone->len; i++)
    lode_history_undo (doc->history, tip);
  return TRUE;
}

/* Reads the patch's latest mask (a blank one when it has none) and its
 * undo history into doc, replacing what was there. A read error is told
 * from "no mask yet" even when the caller passes no GError: opening it as a
 * blank mask would let the next edit save over the labels. */
static gboolean
load_state (LodeDocument *doc, GError **error)
{
  g_autoptr(GBytes) blob = NULL;
  g_autoptr(GError) local = NULL;
  LodeMask *mask;

  blob = lode_store_get_mask (doc->store, doc->patch->id, 0, &doc->revision, &local);
  if (local != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  if (blob != NULL)
    {
      mask = mask_from_blob (blob, doc->patch, error);
      if (mask == NULL)
        return FALSE;
    }
  else
    {
      gsize n = (gsize) doc->patch->width * doc->patch->height;

      mask = lode_mask_new (doc->patch->width, doc->patch->height);
      for (gsize i = 0; i < n; i++)
        if (!doc->raster->valid[i])
          mask->data[i] = LODE_MASK_NODATA;
    }
  g_clear_pointer (&doc->mask, lode_mask_free);
  doc->mask = mask;
  g_clear_pointer (&doc->history, lode_history_free);
  doc->history = lode_history_new (LODE_DOCUMENT_HISTORY_BYTES);
  return rebuild_history (doc, error);
}

LodeDocument *
lode_document_open (LodeStore *store, gint64 patch_id, GError **error)
{
  g_autoptr(LodeDocument) doc = g_new0 (LodeDocument, 1);
  g_autoptr(GBytes) original = NULL;
  g_autoptr(GError) local = NULL;
  g_autofree char *image_path = NULL;
  g_autofree char *json = NULL;

  g_return_val_if_fail (store != NULL, NULL);

  doc->store = store;
  doc->patch = lode_store_get_patch (store, patch_id, error);
  if (doc->patch == NULL)
    return NULL;

  json = lode_store_get_class_table_json (store);
  doc->classes = json ? lode_class_table_from_json (json, error) : lode_class_table_new_binary ();
  if (doc->classes == NULL)
    return NULL;

  image_path = lode_store_resolve_path (store, doc->patch->image_path);
  doc->raster = lode_raster_open (image_path, error);
  if (doc->raster == NULL)
    return NULL;
  if (doc->raster->width != doc->patch->width || doc->raster->height != doc->patch->height)
    {
      g_set_error (error, LODE_RASTER_ERROR, LODE_RASTER_ERROR_FORMAT,
                   _("“%s” is now %d × %d pixels; the project recorded %d × %d"),
                   image_path, doc->raster->width, doc->raster->height,
                   doc->patch->width, doc->patch->height);
      return NULL;
    }

  if (!load_state (doc, error))
    return NULL;

  original = lode_store_get_original_mask (store, patch_id, &local);
  if (local != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }
  if (original != NULL)
    {
      doc->original = mask_from_blob (original, doc->patch, error);
      if (doc->original == NULL)
        return NULL;
    }

  return g_steal_pointer (&doc);
}

const LodePatch *
lode_document_get_patch (LodeDocument *doc)
{
  return doc->patch;
}

const LodeRaster *
lode_document_get_raster (LodeDocument *doc)
{
  return doc->raster;
}

const LodeMask *
lode_document_get_mask (LodeDocument *doc)
{
  return doc->mask;
}

LodeMask *
lode_document_get_mask_for_edit (LodeDocument *doc)
{
  return doc->mask;
}

const LodeMask *
lode_document_get_original (LodeDocument *doc)
{
  return doc->original;
}

LodeClassTable *
lode_document_get_classes (LodeDocument *doc)
{
  return doc->classes;
}

gint64
lode_document_get_revision (LodeDocument *doc)
{
  return doc->revision;
}

/* Another writer (a pre-label run, another window) may have added a
 * revision since the mask was read: an edit on the old mask would then save
 * over it. Such a document reloads the latest mask and history and says so;
 * the caller repeats the edit on what is now shown. */
static gboolean
ensure_fresh (LodeDocument *doc, GError **error)
{
  gint64 latest = lode_store_latest_revision (doc->store, doc->patch->id, error);

  if (latest < 0)
    return FALSE;
  if (latest == doc->revision)
    return TRUE;
  if (!load_state (doc, error))
    return FALSE;
  g_set_error (error, LODE_DOCUMENT_ERROR, LODE_DOCUMENT_ERROR_CHANGED,
               _("Tile %s of %d was changed elsewhere (by a pre-label or another window) after it "
                 "was opened. It now shows the latest mask; repeat the edit on it."),
               doc->patch->tile_id, doc->patch->year);
  return FALSE;
}

gboolean
lode_document_commit (LodeDocument       *doc,
                      LodeMaskDelta      *delta,
                      LodeRevisionSource  source,
                      const char         *author,
                      GError            **error)
{
  g_autoptr(GBytes) delta_blob = NULL;
  g_autoptr(GBytes) mask_blob = NULL;
  g_autoptr(GPtrArray) revisions = NULL;
  gint64 edit_id;

  if (delta == NULL)
    return TRUE;

  if (lode_store_latest_revision (doc->store, doc->patch->id, NULL) != doc->revision)
    {
      lode_mask_delta_apply (delta, doc->mask, FALSE);
      lode_mask_delta_free (delta);
      return ensure_fresh (doc, error);
    }

  delta_blob = lode_mask_delta_serialize (delta);
  mask_blob = lode_mask_serialize (doc->mask);
  edit_id = lode_store_commit_edit (doc->store, doc->patch->id, delta_blob, mask_blob,
                                    source, author, error);
  if (edit_id == 0)
    {
      lode_mask_delta_apply (delta, doc->mask, FALSE);
      lode_mask_delta_free (delta);
      return FALSE;
    }
  lode_history_push (doc->history, delta);
  {
    g_autoptr(LodeEdit) edit = lode_store_get_edit (doc->store, edit_id, NULL);
    if (edit != NULL)
      doc->revision = edit->revision_id;
  }
  return TRUE;
}

gboolean
lode_document_stroke (LodeDocument *doc, const double *xy, int n_points, double radius,
                      guint8 class_id, const char *author, GError **error)
{
  LodeMaskDelta *delta = lode_edit_stroke (doc->mask, doc->classes, xy, n_points, radius, class_id);

  return lode_document_commit (doc, delta, LODE_REVISION_MANUAL, author, error);
}

gboolean
lode_document_erase (LodeDocument *doc, const double *xy, int n_points, double radius,
                     const char *author, GError **error)
{
  LodeMaskDelta *delta = lode_edit_erase (doc->mask, doc->classes, xy, n_points, radius, -1);

  return lode_document_commit (doc, delta, LODE_REVISION_MANUAL, author, error);
}

gboolean
lode_document_fill (LodeDocument *doc, int x, int y, guint8 class_id,
                    const char *author, GError **error)
{
  LodeMaskDelta *delta = lode_edit_fill (doc->mask, doc->classes, x, y, class_id, FALSE);

  return lode_document_commit (doc, delta, LODE_REVISION_MANUAL, author, error);
}

gboolean
lode_document_polygon (LodeDocument *doc, const double *xy, int n_points, guint8 class_id,
                       const char *author, GError **error)
{
  LodeMaskDelta *delta = lode_edit_polygon (doc->mask, doc->classes, xy, n_points, class_id);

  return lode_document_commit (doc, delta, LODE_REVISION_MANUAL, author, error);
}

gboolean
lode_document_apply (LodeDocument *doc, const guint8 *outside, LodeApplyMode mode,
                     guint8 class_id, LodeRevisionSource source,
                     const char *author, GError **error)
{
  LodeMaskDelta *delta = lode_edit_apply (doc->mask, doc->classes, outside, mode, class_id);

  return lode_document_commit (doc, delta, source, author, error);
}

gboolean
lode_document_can_undo (LodeDocument *doc)
{
  return lode_history_can_undo (doc->history);
}

gboolean
lode_document_can_redo (LodeDocument *doc)
{
  return lode_history_can_redo (doc->history);
}

/* One step of undo (forward FALSE) or redo, persisted; the mask in memory is
 * put back when the store refuses. */
static gboolean
step (LodeDocument *doc, gboolean forward, const char *author, GError **error)
{
  const LodeMaskDelta *delta;
  g_autoptr(GBytes) mask_blob = NULL;
  g_autoptr(GBytes) stored = NULL;
  gint64 edit_id = 0;

  if (!ensure_fresh (doc, error))
    return FALSE;
  delta = forward ? lode_history_redo (doc->history, doc->mask)
                  : lode_history_undo (doc->history, doc->mask);
  if (delta == NULL)
    return TRUE;

  mask_blob = lode_mask_serialize (doc->mask);
  stored = forward ? lode_store_redo (doc->store, doc->patch->id, mask_blob, author, &edit_id, error)
                   : lode_store_undo (doc->store, doc->patch->id, mask_blob, author, &edit_id, error);
  if (stored == NULL)
    {
      if (forward)
        lode_history_undo (doc->history, doc->mask);
      else
        lode_history_redo (doc->history, doc->mask);
      return FALSE;
    }
  {
    g_autoptr(GBytes) latest = lode_store_get_mask (doc->store, doc->patch->id, 0, &doc->revision, NULL);
  }
  return TRUE;
}

gboolean
lode_document_undo (LodeDocument *doc, const char *author, GError **error)
{
  return step (doc, FALSE, author, error);
}

gboolean
lode_document_redo (LodeDocument *doc, const char *author, GError **error)
{
  return step (doc, TRUE, author, error);
}
