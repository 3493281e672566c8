/* lode-patch-browser.h: every patch of a project, with thumbnails, filters,
 * search and sorting. Rows are recycled by a GtkListView and thumbnails are
 * made only for rows on screen, off the main thread. */
#pragma once

#include <gtk/gtk.h>

#include "lode-patch-item.h"
#include "lode-store.h"
#include "lode-thumbnailer.h"

G_BEGIN_DECLS

#define LODE_TYPE_PATCH_BROWSER (lode_patch_browser_get_type ())
G_DECLARE_FINAL_TYPE (LodePatchBrowser, lode_patch_browser, LODE, PATCH_BROWSER, GtkWidget)

typedef enum {
  LODE_PATCH_SORT_TILE,
  LODE_PATCH_SORT_YEAR,
  LODE_PATCH_SORT_STATE,
  LODE_PATCH_SORT_MINING,
} LodePatchSort;

GtkWidget     *lode_patch_browser_new            (void);
/* patches: LodePatch*; thumbnailer may be NULL. Selects nothing. */
void           lode_patch_browser_set_patches    (LodePatchBrowser *self,
                                                  GPtrArray        *patches,
                                                  LodeThumbnailer  *thumbnailer);
/* Patches shown after filtering. */
guint          lode_patch_browser_get_n_shown    (LodePatchBrowser *self);
guint          lode_patch_browser_get_n_patches  (LodePatchBrowser *self);
/* 0 when nothing is selected. */
gint64         lode_patch_browser_get_selected   (LodePatchBrowser *self);
gboolean       lode_patch_browser_select_position (LodePatchBrowser *self,
                                                  guint             position);
/* FALSE when the patch is hidden by the filters or unknown. */
gboolean       lode_patch_browser_select_id      (LodePatchBrowser *self,
                                                  gint64            patch_id);
/* Moves the selection by step among the shown patches. */
gboolean       lode_patch_browser_move           (LodePatchBrowser *self,
                                                  int               step);
gboolean       lode_patch_browser_can_move       (LodePatchBrowser *self,
                                                  int               step);
/* The id of the patch step places away among the shown ones; 0 when none. */
gint64         lode_patch_browser_get_neighbour  (LodePatchBrowser *self,
                                                  int               step);
LodePatchItem *lode_patch_browser_find           (LodePatchBrowser *self,
                                                  gint64            patch_id);
void           lode_patch_browser_set_state      (LodePatchBrowser *self,
                                                  gint64            patch_id,
                                                  LodeReviewState   state);
void           lode_patch_browser_set_shares     (LodePatchBrowser *self,
                                                  const LodePatchShares *shares);
/* The mask changed: a new thumbnail is made. */
void           lode_patch_browser_invalidate     (LodePatchBrowser *self,
                                                  gint64            patch_id);
/* Filters: state < 0 shows every state; year 0 every year; split NULL every
 * split, "" patches without one. */
void           lode_patch_browser_set_state_filter (LodePatchBrowser *self,
                                                  int               state);
void           lode_patch_browser_set_year_filter (LodePatchBrowser *self,
                                                  int               year);
void           lode_patch_browser_set_search     (LodePatchBrowser *self,
                                                  const char       *text);
void           lode_patch_browser_set_class_filter (LodePatchBrowser *self,
                                                  gboolean          mining,
                                                  gboolean          cocoa);
void           lode_patch_browser_set_sort       (LodePatchBrowser *self,
                                                  LodePatchSort     sort);
void           lode_patch_browser_focus_search   (LodePatchBrowser *self);

G_END_DECLS
