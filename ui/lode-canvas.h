/* lode-canvas.h: the patch canvas: a composite with the mask over it.
 *
 * Zoom (wheel around the cursor, fit, 1:1, in and out up to 32x), pan (middle
 * button or space + drag), crisp pixels (nearest neighbour), the mask overlay
 * at an opacity, and the editing tools. The canvas never edits a mask itself:
 * it emits what the user did in patch-pixel coordinates (x right, y down,
 * pixel (x, y) covering [x, x+1) x [y, y+1)) and the window applies it.
 *
 * Actions (canvas.*): zoom-in, zoom-out, zoom-fit, zoom-actual, tool (string
 * state: "brush", "eraser", "fill", "polygon", "sam2"), brush-grow, brush-shrink,
 * class (int: the n-th class of the palette, 1-based), polygon-finish,
 * polygon-cancel. */
#pragma once

#include <gtk/gtk.h>

#include "lode-classes.h"

G_BEGIN_DECLS

#define LODE_TYPE_CANVAS (lode_canvas_get_type ())
G_DECLARE_FINAL_TYPE (LodeCanvas, lode_canvas, LODE, CANVAS, GtkWidget)

typedef enum {
  LODE_CANVAS_TOOL_BRUSH,
  LODE_CANVAS_TOOL_ERASER,
  LODE_CANVAS_TOOL_FILL,
  LODE_CANVAS_TOOL_POLYGON,
  LODE_CANVAS_TOOL_SAM2,
} LodeCanvasTool;

#define LODE_CANVAS_MAX_ZOOM 32.0
#define LODE_CANVAS_MIN_RADIUS 0.5
#define LODE_CANVAS_MAX_RADIUS 64.0

GtkWidget     *lode_canvas_new              (void);
/* rgba: width * height * 4 bytes, straight (not premultiplied) alpha.
 * A new size resets the view to fit. */
void           lode_canvas_set_image        (LodeCanvas     *self,
                                             const guint8   *rgba,
                                             int             width,
                                             int             height);
/* overlay: the mask already coloured, same size as the image, or NULL. */
void           lode_canvas_set_overlay      (LodeCanvas     *self,
                                             const guint8   *rgba);
/* A second overlay drawn fully opaque above the mask (change, diff), or NULL. */
void           lode_canvas_set_highlight    (LodeCanvas     *self,
                                             const guint8   *rgba);
void           lode_canvas_set_mask_opacity (LodeCanvas     *self,
                                             double          opacity);
double         lode_canvas_get_mask_opacity (LodeCanvas     *self);
void           lode_canvas_clear            (LodeCanvas     *self);
gboolean       lode_canvas_has_image        (LodeCanvas     *self);
int            lode_canvas_get_image_width  (LodeCanvas     *self);
int            lode_canvas_get_image_height (LodeCanvas     *self);

/* Swipe and blink: a second image (and overlay) of the same size.
 * Swipe shows the second image right of position (0..1 of the image width);
 * blink shows the second image instead of the first while shown is TRUE. */
void           lode_canvas_set_second       (LodeCanvas     *self,
                                             const guint8   *rgba,
                                             const guint8   *overlay);
void           lode_canvas_set_swipe        (LodeCanvas     *self,
                                             double          position);
void           lode_canvas_set_show_second  (LodeCanvas     *self,
                                             gboolean        shown);
gboolean       lode_canvas_get_show_second  (LodeCanvas     *self);

/* View: zoom in screen pixels per image pixel, and the image point at the
 * widget's centre. Setting a view leaves fit mode. */
double         lode_canvas_get_zoom         (LodeCanvas     *self);
void           lode_canvas_get_view         (LodeCanvas     *self,
                                             double         *zoom,
                                             double         *centre_x,
                                             double         *centre_y);
void           lode_canvas_set_view         (LodeCanvas     *self,
                                             double          zoom,
                                             double          centre_x,
                                             double          centre_y);
void           lode_canvas_zoom_fit         (LodeCanvas     *self);
/* TRUE while the view follows the widget's size (after a fit, before any zoom or pan). */
gboolean       lode_canvas_get_fit          (LodeCanvas     *self);
/* Zooms by factor keeping the image point under widget point (wx, wy). */
void           lode_canvas_zoom_at          (LodeCanvas     *self,
                                             double          factor,
                                             double          wx,
                                             double          wy);
void           lode_canvas_widget_to_image  (LodeCanvas     *self,
                                             double          wx,
                                             double          wy,
                                             double         *ix,
                                             double         *iy);
/* A crosshair at an image point mirrored from another canvas; x < 0 hides it. */
void           lode_canvas_set_ghost_cursor (LodeCanvas     *self,
                                             double          x,
                                             double          y);

/* Tools and palette. The palette is the class table's classes other than
 * the background (id 0), in table order. */
void           lode_canvas_set_classes      (LodeCanvas          *self,
                                             const LodeClassTable *classes);
void           lode_canvas_set_tool         (LodeCanvas     *self,
                                             LodeCanvasTool  tool);
LodeCanvasTool lode_canvas_get_tool         (LodeCanvas     *self);
void           lode_canvas_set_brush_radius (LodeCanvas     *self,
                                             double          radius);
double         lode_canvas_get_brush_radius (LodeCanvas     *self);
/* Class id painted by brush, fill and polygon. */
void           lode_canvas_set_active_class (LodeCanvas     *self,
                                             guint8          class_id);
guint8         lode_canvas_get_active_class (LodeCanvas     *self);
gboolean       lode_canvas_get_editable     (LodeCanvas     *self);
void           lode_canvas_set_editable     (LodeCanvas     *self,
                                             gboolean        editable);

/* What a pointer does, in image coordinates: the gestures call these, and
 * so can tests. A brush or eraser stroke is begin, any number of moves, end
 * ("stroke" is emitted at end); a press with fill emits "fill"; with
 * polygon each press adds a vertex, and a press on the first vertex or
 * polygon-finish emits "polygon". */
void           lode_canvas_press            (LodeCanvas     *self,
                                             double          x,
                                             double          y);
void           lode_canvas_motion           (LodeCanvas     *self,
                                             double          x,
                                             double          y);
void           lode_canvas_release          (LodeCanvas     *self);
/* With the SAM2 tool a press and release in place emits "sam2-point"
 * (x, y, positive) and a drag emits "sam2-box" (x0, y0, x1, y1); a
 * secondary press (right button, or Ctrl with the left) gives a negative
 * point. */
void           lode_canvas_press_secondary  (LodeCanvas     *self,
                                             double          x,
                                             double          y);
void           lode_canvas_finish_polygon   (LodeCanvas     *self);
void           lode_canvas_cancel_polygon   (LodeCanvas     *self);

/* SAM2 prompts drawn over the image: points [n, 2] in image pixels with
 * labels (1 positive: a green +, 0 negative: a red −) and a box (x0, y0,
 * x1, y1) or NULL. */
void           lode_canvas_set_prompts      (LodeCanvas     *self,
                                             const float    *points,
                                             const int      *labels,
                                             int             n_points,
                                             const float    *box);
/* A candidate mask already coloured (straight RGBA, image size) drawn
 * above the mask, or NULL. */
void           lode_canvas_set_preview      (LodeCanvas     *self,
                                             const guint8   *rgba);

G_END_DECLS
