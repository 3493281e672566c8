/* lode-compare-view.h: two patches of one tile (2016 and 2022) side by
 * side, zoom, pan and cursor in step; or one over the other with a swipe
 * line or blinking. Either canvas is editable: the window connects to their
 * signals as it does to the main canvas. The second image for swipe and
 * blink is set on the first canvas (lode_canvas_set_second). */
#pragma once

#include <gtk/gtk.h>

#include "lode-canvas.h"

G_BEGIN_DECLS

#define LODE_TYPE_COMPARE_VIEW (lode_compare_view_get_type ())
G_DECLARE_FINAL_TYPE (LodeCompareView, lode_compare_view, LODE, COMPARE_VIEW, GtkWidget)

typedef enum {
  LODE_COMPARE_SIDE,
  LODE_COMPARE_SWIPE,
  LODE_COMPARE_BLINK,
} LodeCompareMode;

#define LODE_COMPARE_BLINK_MS 600

GtkWidget       *lode_compare_view_new        (void);
/* side 0: left (the earlier year), 1: right. */
LodeCanvas      *lode_compare_view_get_canvas (LodeCompareView *self,
                                               int              side);
void             lode_compare_view_set_titles (LodeCompareView *self,
                                               const char      *left,
                                               const char      *right);
void             lode_compare_view_set_mode   (LodeCompareView *self,
                                               LodeCompareMode  mode);
LodeCompareMode  lode_compare_view_get_mode   (LodeCompareView *self);
/* "side", "swipe", "blink" */
gboolean         lode_compare_mode_from_id    (const char      *id,
                                               LodeCompareMode *out);

G_END_DECLS
