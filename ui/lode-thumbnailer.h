/* lode-thumbnailer.h: small previews of patches, made off the main thread.
 *
 * Each request runs in a worker thread that opens its own LodeStore on the
 * project file (a store is one connection per thread), reads the patch,
 * renders a small composite with the mask over it and returns a texture;
 * textures are kept in memory (a bounded cache). Class shares of every patch
 * are scanned the same way. */
#pragma once

#include <gtk/gtk.h>

#include "lode-composite.h"
#include "lode-mask.h"

G_BEGIN_DECLS

#define LODE_TYPE_THUMBNAILER (lode_thumbnailer_get_type ())
G_DECLARE_FINAL_TYPE (LodeThumbnailer, lode_thumbnailer, LODE, THUMBNAILER, GObject)

#define LODE_THUMBNAIL_SIZE 64
#define LODE_THUMBNAIL_CACHE 2048  /* textures kept */

/* Shares of the valid pixels held by class ids 1 (mining) and 2 (cocoa). */
typedef struct
{
  gint64 patch_id;
  double mining;
  double cocoa;
  gboolean has_mask;
} LodePatchShares;

LodeThumbnailer *lode_thumbnailer_new           (const char            *project_path,
                                                 LodeCompositePreset    preset);
const char      *lode_thumbnailer_get_path      (LodeThumbnailer       *self);
/* The cached texture, or NULL. */
GdkTexture      *lode_thumbnailer_lookup        (LodeThumbnailer       *self,
                                                 gint64                 patch_id);
void             lode_thumbnailer_load_async    (LodeThumbnailer       *self,
                                                 gint64                 patch_id,
                                                 GCancellable          *cancellable,
                                                 GAsyncReadyCallback    callback,
                                                 gpointer               user_data);
GdkTexture      *lode_thumbnailer_load_finish   (LodeThumbnailer       *self,
                                                 GAsyncResult          *result,
                                                 GError               **error);
/* Forgets the cached texture of a patch whose mask changed. */
void             lode_thumbnailer_invalidate    (LodeThumbnailer       *self,
                                                 gint64                 patch_id);
/* Shares of every patch: a GArray of LodePatchShares. */
void             lode_thumbnailer_scan_async    (LodeThumbnailer       *self,
                                                 GCancellable          *cancellable,
                                                 GAsyncReadyCallback    callback,
                                                 gpointer               user_data);
GArray          *lode_thumbnailer_scan_finish   (LodeThumbnailer       *self,
                                                 GAsyncResult          *result,
                                                 GError               **error);
/* Shares of one mask (by class id). */
void             lode_patch_shares_from_mask    (const LodeMask        *mask,
                                                 LodePatchShares       *out);

G_END_DECLS
