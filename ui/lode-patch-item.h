/* lode-patch-item.h: a patch of the project as a list item. */
#pragma once

#include <gtk/gtk.h>

#include "lode-store.h"
#include "lode-thumbnailer.h"

G_BEGIN_DECLS

#define LODE_TYPE_PATCH_ITEM (lode_patch_item_get_type ())
G_DECLARE_FINAL_TYPE (LodePatchItem, lode_patch_item, LODE, PATCH_ITEM, GObject)

/* Takes a copy of patch. */
LodePatchItem   *lode_patch_item_new       (const LodePatch *patch);
const LodePatch *lode_patch_item_get_patch (LodePatchItem   *self);
gint64           lode_patch_item_get_id    (LodePatchItem   *self);
/* "Tile 0001 · 2016" */
char            *lode_patch_item_dup_title (LodePatchItem   *self);
/* split, state, and why the patch is odd, in one line */
char            *lode_patch_item_dup_subtitle (LodePatchItem *self);
void             lode_patch_item_set_state (LodePatchItem   *self,
                                            LodeReviewState  state);
/* Class shares, once scanned; NULL before. */
const LodePatchShares *lode_patch_item_get_shares (LodePatchItem *self);
void             lode_patch_item_set_shares (LodePatchItem  *self,
                                             const LodePatchShares *shares);

G_END_DECLS
