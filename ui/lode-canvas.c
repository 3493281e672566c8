#define G_LOG_DOMAIN "lode-ui"

#include "config.h"

#include <math.h>
#include <string.h>

#include <glib/gi18n.h>

#include "lode-canvas.h"

#define MIN_ZOOM_FACTOR 0.25  /* of the fit zoom */
#define CLOSE_DISTANCE  8.0   /* screen pixels to the first polygon vertex */

struct _LodeCanvas
{
  GtkWidget parent_instance;

  cairo_surface_t *image;      /* ARGB32, premultiplied */
  cairo_surface_t *overlay;
  cairo_surface_t *highlight;
  cairo_surface_t *second;
  cairo_surface_t *second_overlay;
  cairo_surface_t *preview;
  int              width;
  int              height;
  double           mask_opacity;
  double           swipe;        /* < 0: off */
  gboolean         show_second;

  /* view: screen = origin + zoom * image */
  gboolean         fit;
  double           zoom;
  double           origin_x;
  double           origin_y;

  /* pointer */
  gboolean         hover;
  double           cursor_x;     /* image coordinates */
  double           cursor_y;
  double           ghost_x;
  double           ghost_y;
  gboolean         space_down;
  gboolean         panning;
  double           pan_origin_x;
  double           pan_origin_y;

  /* tools */
  LodeClassTable  *classes;
  LodeCanvasTool   tool;
  double           radius;
  guint8           active_class;
  gboolean         editable;
  GArray          *stroke;       /* doubles, x y pairs; NULL when none */
  GArray          *polygon;      /* doubles */

  /* SAM2 */
  gboolean         sam2_pressed;
  gboolean         sam2_negative;
  double           sam2_start[2];
  double           sam2_end[2];
  GArray          *prompt_points; /* floats */
  GArray          *prompt_labels; /* ints */
  gboolean         has_box;
  float            box[4];
};

enum {
  SIGNAL_STROKE,
  SIGNAL_FILL,
  SIGNAL_POLYGON,
  SIGNAL_CURSOR_MOVED,
  SIGNAL_VIEW_CHANGED,
  SIGNAL_STATE_CHANGED,
  SIGNAL_SAM2_POINT,
  SIGNAL_SAM2_BOX,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (LodeCanvas, lode_canvas, GTK_TYPE_WIDGET)

static const char *tool_ids[] = { "brush", "eraser", "fill", "polygon", "sam2" };

#define SAM2_DRAG_DISTANCE 5.0 /* screen pixels before a press becomes a box */

/* Straight RGBA bytes into a premultiplied cairo surface. */
static void
fill_surface (cairo_surface_t *s, const guint8 *rgba, int width, int height)
{
  guint8 *dst;
  int stride;

  cairo_surface_flush (s);
  dst = cairo_image_surface_get_data (s);
  stride = cairo_image_surface_get_stride (s);

  for (int y = 0; y < height; y++)
    {
      guint32 *row = (guint32 *) (dst + (gsize) y * stride);
      const guint8 *src = rgba + (gsize) y * width * 4;
      for (int x = 0; x < width; x++)
        {
          guint a = src[4 * x + 3];
          guint r = (src[4 * x + 0] * a + 127) / 255;
          guint g = (src[4 * x + 1] * a + 127) / 255;
          guint b = (src[4 * x + 2] * a + 127) / 255;
          row[x] = (a << 24) | (r << 16) | (g << 8) | b;
        }
    }
  cairo_surface_mark_dirty (s);
}

/* A surface of the same size that nothing else holds (no frame being drawn
 * from it) is refilled in place; otherwise a new one is made. */
static void
replace_surface (cairo_surface_t **slot, const guint8 *rgba, int width, int height)
{
  if (rgba == NULL || width <= 0 || height <= 0)
    {
      g_clear_pointer (slot, cairo_surface_destroy);
      return;
    }
  if (*slot == NULL || cairo_surface_get_reference_count (*slot) != 1 ||
      cairo_image_surface_get_width (*slot) != width || cairo_image_surface_get_height (*slot) != height)
    {
      g_clear_pointer (slot, cairo_surface_destroy);
      *slot = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, width, height);
    }
  fill_surface (*slot, rgba, width, height);
}

static double
fit_zoom (LodeCanvas *self)
{
  int w = gtk_widget_get_width (GTK_WIDGET (self));
  int h = gtk_widget_get_height (GTK_WIDGET (self));
  double z;

  if (self->width <= 0 || w <= 0 || h <= 0)
    return 1.0;
  z = MIN ((double) w / self->width, (double) h / self->height);
  /* Whole-number zoom above 1 keeps pixels square and crisp. */
  if (z >= 1.0)
    z = floor (z);
  return z;
}

static void
apply_fit (LodeCanvas *self)
{
  int w = gtk_widget_get_width (GTK_WIDGET (self));
  int h = gtk_widget_get_height (GTK_WIDGET (self));

  self->zoom = fit_zoom (self);
  self->origin_x = floor ((w - self->width * self->zoom) / 2.0);
  self->origin_y = floor ((h - self->height * self->zoom) / 2.0);
}

static void
view_changed (LodeCanvas *self)
{
  gtk_widget_queue_draw (GTK_WIDGET (self));
  g_signal_emit (self, signals[SIGNAL_VIEW_CHANGED], 0);
}

static void
state_changed (LodeCanvas *self)
{
  gtk_widget_queue_draw (GTK_WIDGET (self));
  g_signal_emit (self, signals[SIGNAL_STATE_CHANGED], 0);
}

static void
paint_surface (cairo_t *cr, cairo_surface_t *s, double alpha)
{
  if (s == NULL || alpha <= 0.0)
    return;
  cairo_set_source_surface (cr, s, 0, 0);
  cairo_pattern_set_filter (cairo_get_source (cr), CAIRO_FILTER_NEAREST);
  cairo_paint_with_alpha (cr, alpha);
}

static void
class_colour (LodeCanvas *self, guint8 id, double rgba[4])
{
  const LodeClass *c = self->classes ? lode_class_table_lookup (self->classes, id) : NULL;

  if (c == NULL)
    {
      rgba[0] = rgba[1] = rgba[2] = 1.0;
      rgba[3] = 1.0;
      return;
    }
  for (int i = 0; i < 4; i++)
    rgba[i] = c->rgba[i] / 255.0;
}

static void
draw_polyline (cairo_t *cr, GArray *pts)
{
  const double *p = (const double *) pts->data;

  for (guint i = 0; i < pts->len / 2; i++)
    if (i == 0)
      cairo_move_to (cr, p[0], p[1]);
    else
      cairo_line_to (cr, p[2 * i], p[2 * i + 1]);
}

static void
draw_box (LodeCanvas *self, cairo_t *cr, double x0, double y0, double x1, double y1)
{
  static const double dash[] = { 6.0, 4.0 };
  double sx0 = round (self->origin_x + MIN (x0, x1) * self->zoom) + 0.5;
  double sy0 = round (self->origin_y + MIN (y0, y1) * self->zoom) + 0.5;
  double sx1 = round (self->origin_x + MAX (x0, x1) * self->zoom) - 0.5;
  double sy1 = round (self->origin_y + MAX (y0, y1) * self->zoom) - 0.5;

  cairo_rectangle (cr, sx0, sy0, sx1 - sx0, sy1 - sy0);
  cairo_set_source_rgba (cr, 0, 0, 0, 0.85);
  cairo_set_line_width (cr, 3.0);
  cairo_set_dash (cr, NULL, 0, 0);
  cairo_stroke_preserve (cr);
  cairo_set_source_rgba (cr, 1, 1, 1, 1);
  cairo_set_line_width (cr, 1.5);
  cairo_set_dash (cr, dash, 2, 0);
  cairo_stroke (cr);
  cairo_set_dash (cr, NULL, 0, 0);
}

/* Points as discs with a + (positive, green) or − (negative, red), the box
 * dashed, and the box being dragged. In screen space, so they keep their
 * size at every zoom. */
static void
draw_prompts (LodeCanvas *self, cairo_t *cr)
{
  if (self->has_box)
    draw_box (self, cr, self->box[0], self->box[1], self->box[2], self->box[3]);
  if (self->sam2_pressed &&
      hypot ((self->sam2_end[0] - self->sam2_start[0]) * self->zoom,
             (self->sam2_end[1] - self->sam2_start[1]) * self->zoom) >= SAM2_DRAG_DISTANCE)
    draw_box (self, cr, self->sam2_start[0], self->sam2_start[1], self->sam2_end[0], self->sam2_end[1]);
  for (guint i = 0; self->prompt_labels != NULL && i < self->prompt_labels->len; i++)
    {
      const float *p = &g_array_index (self->prompt_points, float, 2 * i);
      gboolean positive = g_array_index (self->prompt_labels, int, i) == 1;
      double sx = self->origin_x + p[0] * self->zoom;
      double sy = self->origin_y + p[1] * self->zoom;

      cairo_arc (cr, sx, sy, 8.0, 0, 2 * G_PI);
      cairo_set_source_rgba (cr, 0, 0, 0, 0.8);
      cairo_set_line_width (cr, 4.0);
      cairo_stroke_preserve (cr);
      if (positive)
        cairo_set_source_rgba (cr, 0.15, 0.70, 0.25, 1);
      else
        cairo_set_source_rgba (cr, 0.85, 0.15, 0.15, 1);
      cairo_fill_preserve (cr);
      cairo_set_source_rgba (cr, 1, 1, 1, 1);
      cairo_set_line_width (cr, 1.5);
      cairo_stroke (cr);
      cairo_move_to (cr, sx - 4.5, sy);
      cairo_line_to (cr, sx + 4.5, sy);
      if (positive)
        {
          cairo_move_to (cr, sx, sy - 4.5);
          cairo_line_to (cr, sx, sy + 4.5);
        }
      cairo_set_line_width (cr, 2.0);
      cairo_stroke (cr);
    }
}

static void
lode_canvas_snapshot (GtkWidget *widget, GtkSnapshot *snapshot)
{
  LodeCanvas *self = LODE_CANVAS (widget);
  int w = gtk_widget_get_width (widget);
  int h = gtk_widget_get_height (widget);
  double colour[4];
  cairo_t *cr;

  if (self->image == NULL || w <= 0 || h <= 0)
    return;
  if (self->fit)
    apply_fit (self);

  cr = gtk_snapshot_append_cairo (snapshot, &GRAPHENE_RECT_INIT (0, 0, w, h));
  cairo_save (cr);
  cairo_translate (cr, self->origin_x, self->origin_y);
  cairo_scale (cr, self->zoom, self->zoom);

  if (self->show_second && self->second != NULL)
    {
      paint_surface (cr, self->second, 1.0);
      paint_surface (cr, self->second_overlay, self->mask_opacity);
    }
  else
    {
      paint_surface (cr, self->image, 1.0);
      paint_surface (cr, self->overlay, self->mask_opacity);
    }
  if (self->swipe >= 0.0 && self->second != NULL)
    {
      double sx = self->swipe * self->width;

      cairo_save (cr);
      cairo_rectangle (cr, sx, 0, self->width - sx, self->height);
      cairo_clip (cr);
      paint_surface (cr, self->second, 1.0);
      paint_surface (cr, self->second_overlay, self->mask_opacity);
      cairo_restore (cr);
      cairo_set_source_rgba (cr, 1, 1, 1, 0.9);
      cairo_set_line_width (cr, 2.0 / self->zoom);
      cairo_move_to (cr, sx, 0);
      cairo_line_to (cr, sx, self->height);
      cairo_stroke (cr);
    }
  paint_surface (cr, self->highlight, 1.0);
  paint_surface (cr, self->preview, 1.0);

  /* The stroke in progress, in the class it paints. */
  if (self->stroke != NULL && self->stroke->len >= 2)
    {
      if (self->tool == LODE_CANVAS_TOOL_ERASER)
        colour[0] = colour[1] = colour[2] = 1.0, colour[3] = 1.0;
      else
        class_colour (self, self->active_class, colour);
      cairo_set_source_rgba (cr, colour[0], colour[1], colour[2], MAX (self->mask_opacity, 0.35));
      cairo_set_line_width (cr, 2 * self->radius);
      cairo_set_line_cap (cr, CAIRO_LINE_CAP_ROUND);
      cairo_set_line_join (cr, CAIRO_LINE_JOIN_ROUND);
      draw_polyline (cr, self->stroke);
      if (self->stroke->len == 2)
        cairo_rel_line_to (cr, 0, 0);
      cairo_stroke (cr);
    }
  cairo_restore (cr);

  /* Overlays in screen space: polygon, brush outline, ghost cursor. */
  cairo_set_line_width (cr, 1.0);
  if (self->polygon != NULL && self->polygon->len >= 2)
    {
      const double *p = (const double *) self->polygon->data;

      class_colour (self, self->active_class, colour);
      cairo_save (cr);
      cairo_translate (cr, self->origin_x, self->origin_y);
      cairo_scale (cr, self->zoom, self->zoom);
      draw_polyline (cr, self->polygon);
      if (self->hover)
        cairo_line_to (cr, self->cursor_x, self->cursor_y);
      cairo_restore (cr);
      cairo_set_source_rgba (cr, colour[0], colour[1], colour[2], 1.0);
      cairo_set_line_width (cr, 2.0);
      cairo_stroke (cr);
      cairo_arc (cr, self->origin_x + p[0] * self->zoom, self->origin_y + p[1] * self->zoom,
                 CLOSE_DISTANCE / 2, 0, 2 * G_PI);
      cairo_set_source_rgba (cr, 1, 1, 1, 0.9);
      cairo_fill (cr);
    }
  if (self->hover && self->editable && !self->panning && !self->space_down &&
      (self->tool == LODE_CANVAS_TOOL_BRUSH || self->tool == LODE_CANVAS_TOOL_ERASER))
    {
      double sx = self->origin_x + self->cursor_x * self->zoom;
      double sy = self->origin_y + self->cursor_y * self->zoom;
      double r = MAX (self->radius * self->zoom, 2.0);

      cairo_arc (cr, sx, sy, r, 0, 2 * G_PI);
      cairo_set_source_rgba (cr, 0, 0, 0, 0.8);
      cairo_set_line_width (cr, 3.0);
      cairo_stroke_preserve (cr);
      cairo_set_source_rgba (cr, 1, 1, 1, 0.95);
      cairo_set_line_width (cr, 1.0);
      cairo_stroke (cr);
    }
  draw_prompts (self, cr);
  if (self->ghost_x >= 0.0)
    {
      double sx = self->origin_x + self->ghost_x * self->zoom;
      double sy = self->origin_y + self->ghost_y * self->zoom;

      cairo_move_to (cr, sx - 10, sy);
      cairo_line_to (cr, sx + 10, sy);
      cairo_move_to (cr, sx, sy - 10);
      cairo_line_to (cr, sx, sy + 10);
      cairo_set_source_rgba (cr, 0, 0, 0, 0.8);
      cairo_set_line_width (cr, 3.0);
      cairo_stroke_preserve (cr);
      cairo_set_source_rgba (cr, 1, 1, 0.3, 1);
      cairo_set_line_width (cr, 1.0);
      cairo_stroke (cr);
    }
  cairo_destroy (cr);
}

static void
lode_canvas_size_allocate (GtkWidget *widget, int width, int height, int baseline)
{
  LodeCanvas *self = LODE_CANVAS (widget);

  if (self->fit)
    {
      apply_fit (self);
      g_signal_emit (self, signals[SIGNAL_VIEW_CHANGED], 0);
    }
}

static void
lode_canvas_measure (GtkWidget      *widget,
                     GtkOrientation  orientation,
                     int             for_size,
                     int            *minimum,
                     int            *natural,
                     int            *minimum_baseline,
                     int            *natural_baseline)
{
  *minimum = 64;
  *natural = 512;
}

/* Gestures */

static void
widget_to_image (LodeCanvas *self, double wx, double wy, double *ix, double *iy)
{
  *ix = (wx - self->origin_x) / self->zoom;
  *iy = (wy - self->origin_y) / self->zoom;
}

static void
update_cursor (LodeCanvas *self, double wx, double wy)
{
  widget_to_image (self, wx, wy, &self->cursor_x, &self->cursor_y);
  self->hover = TRUE;
  gtk_widget_queue_draw (GTK_WIDGET (self));
  if (self->cursor_x >= 0 && self->cursor_y >= 0 && self->cursor_x < self->width && self->cursor_y < self->height)
    g_signal_emit (self, signals[SIGNAL_CURSOR_MOVED], 0, self->cursor_x, self->cursor_y);
  else
    g_signal_emit (self, signals[SIGNAL_CURSOR_MOVED], 0, -1.0, -1.0);
}

static void
on_motion (GtkEventControllerMotion *motion, double x, double y, LodeCanvas *self)
{
  update_cursor (self, x, y);
}

static void
on_leave (GtkEventControllerMotion *motion, LodeCanvas *self)
{
  self->hover = FALSE;
  gtk_widget_queue_draw (GTK_WIDGET (self));
  g_signal_emit (self, signals[SIGNAL_CURSOR_MOVED], 0, -1.0, -1.0);
}

static gboolean
on_scroll (GtkEventControllerScroll *scroll, double dx, double dy, LodeCanvas *self)
{
  GdkEvent *event = gtk_event_controller_get_current_event (GTK_EVENT_CONTROLLER (scroll));
  double wx, wy;

  if (self->image == NULL || dy == 0.0)
    return FALSE;
  if (event == NULL || !gdk_event_get_position (event, &wx, &wy))
    {
      wx = gtk_widget_get_width (GTK_WIDGET (self)) / 2.0;
      wy = gtk_widget_get_height (GTK_WIDGET (self)) / 2.0;
    }
  lode_canvas_zoom_at (self, pow (1.25, -dy), wx, wy);
  return TRUE;
}

static void
pan_begin (LodeCanvas *self)
{
  if (self->fit)
    apply_fit (self);
  self->fit = FALSE;
  self->panning = TRUE;
  self->pan_origin_x = self->origin_x;
  self->pan_origin_y = self->origin_y;
  gtk_widget_set_cursor_from_name (GTK_WIDGET (self), "grabbing");
}

static void
pan_update (LodeCanvas *self, double ox, double oy)
{
  self->origin_x = round (self->pan_origin_x + ox);
  self->origin_y = round (self->pan_origin_y + oy);
  view_changed (self);
}

static void
pan_end (LodeCanvas *self)
{
  self->panning = FALSE;
  gtk_widget_set_cursor_from_name (GTK_WIDGET (self), self->space_down ? "grab" : "crosshair");
}

static void
on_drag_begin (GtkGestureDrag *drag, double x, double y, LodeCanvas *self)
{
  guint button = gtk_gesture_single_get_current_button (GTK_GESTURE_SINGLE (drag));
  double ix, iy;

  gtk_widget_grab_focus (GTK_WIDGET (self));
  if (self->image == NULL)
    return;
  if (button == GDK_BUTTON_MIDDLE || self->space_down || !self->editable)
    {
      pan_begin (self);
      return;
    }
  widget_to_image (self, x, y, &ix, &iy);
  if (self->tool == LODE_CANVAS_TOOL_SAM2 &&
      (button == GDK_BUTTON_SECONDARY ||
       (button == GDK_BUTTON_PRIMARY &&
        (gtk_event_controller_get_current_event_state (GTK_EVENT_CONTROLLER (drag)) & GDK_CONTROL_MASK))))
    {
      lode_canvas_press_secondary (self, ix, iy);
      return;
    }
  if (button != GDK_BUTTON_PRIMARY)
    return;
  if (self->tool == LODE_CANVAS_TOOL_POLYGON && self->polygon != NULL && self->polygon->len >= 6)
    {
      const double *p = (const double *) self->polygon->data;
      if (hypot ((p[0] - ix) * self->zoom, (p[1] - iy) * self->zoom) <= CLOSE_DISTANCE)
        {
          lode_canvas_finish_polygon (self);
          return;
        }
    }
  lode_canvas_press (self, ix, iy);
}

static void
on_drag_update (GtkGestureDrag *drag, double ox, double oy, LodeCanvas *self)
{
  double sx, sy, ix, iy;

  if (self->panning)
    {
      pan_update (self, ox, oy);
      return;
    }
  if (self->stroke == NULL && !self->sam2_pressed)
    return;
  gtk_gesture_drag_get_start_point (drag, &sx, &sy);
  widget_to_image (self, sx + ox, sy + oy, &ix, &iy);
  update_cursor (self, sx + ox, sy + oy);
  lode_canvas_motion (self, ix, iy);
}

static void
on_drag_end (GtkGestureDrag *drag, double ox, double oy, LodeCanvas *self)
{
  if (self->panning)
    {
      pan_end (self);
      return;
    }
  lode_canvas_release (self);
}

static gboolean
on_key_pressed (GtkEventControllerKey *key, guint keyval, guint keycode, GdkModifierType state, LodeCanvas *self)
{
  if (keyval == GDK_KEY_space)
    {
      if (!self->space_down)
        {
          self->space_down = TRUE;
          gtk_widget_set_cursor_from_name (GTK_WIDGET (self), "grab");
          gtk_widget_queue_draw (GTK_WIDGET (self));
        }
      return TRUE;
    }
  return FALSE;
}

static void
on_key_released (GtkEventControllerKey *key, guint keyval, guint keycode, GdkModifierType state, LodeCanvas *self)
{
  if (keyval == GDK_KEY_space)
    {
      self->space_down = FALSE;
      gtk_widget_set_cursor_from_name (GTK_WIDGET (self), "crosshair");
      gtk_widget_queue_draw (GTK_WIDGET (self));
    }
}

/* Actions */

static void
action_zoom (GtkWidget *widget, const char *action_name, GVariant *param)
{
  LodeCanvas *self = LODE_CANVAS (widget);
  double cx = gtk_widget_get_width (widget) / 2.0;
  double cy = gtk_widget_get_height (widget) / 2.0;

  if (g_str_equal (action_name, "canvas.zoom-in"))
    lode_canvas_zoom_at (self, 2.0, cx, cy);
  else if (g_str_equal (action_name, "canvas.zoom-out"))
    lode_canvas_zoom_at (self, 0.5, cx, cy);
  else if (g_str_equal (action_name, "canvas.zoom-fit"))
    lode_canvas_zoom_fit (self);
  else
    {
      double z, x, y;
      lode_canvas_get_view (self, &z, &x, &y);
      lode_canvas_set_view (self, 1.0, x, y);
    }
}

static void
action_tool (GtkWidget *widget, const char *action_name, GVariant *param)
{
  const char *id = g_variant_get_string (param, NULL);

  for (guint i = 0; i < G_N_ELEMENTS (tool_ids); i++)
    if (g_str_equal (id, tool_ids[i]))
      lode_canvas_set_tool (LODE_CANVAS (widget), i);
}

static void
action_brush (GtkWidget *widget, const char *action_name, GVariant *param)
{
  LodeCanvas *self = LODE_CANVAS (widget);
  gboolean grow = g_str_equal (action_name, "canvas.brush-grow");
  double r = self->radius;

  /* Steps of one pixel when small, a quarter of the size when large. */
  r = grow ? r + MAX (1.0, floor (r / 4)) : r - MAX (1.0, floor (r / 5));
  lode_canvas_set_brush_radius (self, r);
}

static void
action_class (GtkWidget *widget, const char *action_name, GVariant *param)
{
  LodeCanvas *self = LODE_CANVAS (widget);
  int n = g_variant_get_int32 (param);
  int seen = 0;

  if (self->classes == NULL)
    return;
  for (guint i = 0; i < lode_class_table_size (self->classes); i++)
    {
      const LodeClass *c = lode_class_table_get (self->classes, i);
      if (c->id == 0)
        continue;
      if (++seen == n)
        {
          lode_canvas_set_active_class (self, c->id);
          if (self->tool == LODE_CANVAS_TOOL_ERASER)
            lode_canvas_set_tool (self, LODE_CANVAS_TOOL_BRUSH);
          return;
        }
    }
}

static void
action_polygon (GtkWidget *widget, const char *action_name, GVariant *param)
{
  if (g_str_equal (action_name, "canvas.polygon-finish"))
    lode_canvas_finish_polygon (LODE_CANVAS (widget));
  else
    lode_canvas_cancel_polygon (LODE_CANVAS (widget));
}

static void
lode_canvas_dispose (GObject *object)
{
  LodeCanvas *self = LODE_CANVAS (object);

  g_clear_pointer (&self->image, cairo_surface_destroy);
  g_clear_pointer (&self->overlay, cairo_surface_destroy);
  g_clear_pointer (&self->highlight, cairo_surface_destroy);
  g_clear_pointer (&self->second, cairo_surface_destroy);
  g_clear_pointer (&self->second_overlay, cairo_surface_destroy);
  g_clear_pointer (&self->preview, cairo_surface_destroy);
  g_clear_pointer (&self->prompt_points, g_array_unref);
  g_clear_pointer (&self->prompt_labels, g_array_unref);
  g_clear_pointer (&self->classes, lode_class_table_free);
  g_clear_pointer (&self->stroke, g_array_unref);
  g_clear_pointer (&self->polygon, g_array_unref);
  G_OBJECT_CLASS (lode_canvas_parent_class)->dispose (object);
}

static void
lode_canvas_class_init (LodeCanvasClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = lode_canvas_dispose;
  widget_class->snapshot = lode_canvas_snapshot;
  widget_class->measure = lode_canvas_measure;
  widget_class->size_allocate = lode_canvas_size_allocate;
  gtk_widget_class_set_css_name (widget_class, "lode-canvas");
  gtk_widget_class_set_accessible_role (widget_class, GTK_ACCESSIBLE_ROLE_IMG);

  /* (tool, xy, n_points, radius): xy is n_points x, y pairs. */
  signals[SIGNAL_STROKE] =
    g_signal_new ("stroke", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                  G_TYPE_NONE, 4, G_TYPE_INT, G_TYPE_POINTER, G_TYPE_INT, G_TYPE_DOUBLE);
  signals[SIGNAL_FILL] =
    g_signal_new ("fill", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                  G_TYPE_NONE, 2, G_TYPE_INT, G_TYPE_INT);
  signals[SIGNAL_POLYGON] =
    g_signal_new ("polygon", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                  G_TYPE_NONE, 2, G_TYPE_POINTER, G_TYPE_INT);
  /* (x, y) in image coordinates; -1, -1 when the pointer left the image. */
  signals[SIGNAL_CURSOR_MOVED] =
    g_signal_new ("cursor-moved", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                  G_TYPE_NONE, 2, G_TYPE_DOUBLE, G_TYPE_DOUBLE);
  signals[SIGNAL_VIEW_CHANGED] =
    g_signal_new ("view-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                  G_TYPE_NONE, 0);
  /* Tool, brush size or class changed. */
  signals[SIGNAL_STATE_CHANGED] =
    g_signal_new ("state-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                  G_TYPE_NONE, 0);

  gtk_widget_class_install_action (widget_class, "canvas.zoom-in", NULL, action_zoom);
  gtk_widget_class_install_action (widget_class, "canvas.zoom-out", NULL, action_zoom);
  gtk_widget_class_install_action (widget_class, "canvas.zoom-fit", NULL, action_zoom);
  gtk_widget_class_install_action (widget_class, "canvas.zoom-actual", NULL, action_zoom);
  gtk_widget_class_install_action (widget_class, "canvas.tool", "s", action_tool);
  gtk_widget_class_install_action (widget_class, "canvas.brush-grow", NULL, action_brush);
  gtk_widget_class_install_action (widget_class, "canvas.brush-shrink", NULL, action_brush);
  gtk_widget_class_install_action (widget_class, "canvas.class", "i", action_class);
  gtk_widget_class_install_action (widget_class, "canvas.polygon-finish", NULL, action_polygon);
  gtk_widget_class_install_action (widget_class, "canvas.polygon-cancel", NULL, action_polygon);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Return, 0, "canvas.polygon-finish", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Escape, 0, "canvas.polygon-cancel", NULL);

  /* (x, y, positive) in image coordinates. */
  signals[SIGNAL_SAM2_POINT] =
    g_signal_new ("sam2-point", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                  G_TYPE_NONE, 3, G_TYPE_DOUBLE, G_TYPE_DOUBLE, G_TYPE_BOOLEAN);
  /* (x0, y0, x1, y1) in image coordinates, x0 <= x1, y0 <= y1. */
  signals[SIGNAL_SAM2_BOX] =
    g_signal_new ("sam2-box", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                  G_TYPE_NONE, 4, G_TYPE_DOUBLE, G_TYPE_DOUBLE, G_TYPE_DOUBLE, G_TYPE_DOUBLE);
}

static void
lode_canvas_init (LodeCanvas *self)
{
  GtkWidget *widget = GTK_WIDGET (self);
  GtkEventController *controller;
  GtkGesture *drag;

  self->mask_opacity = 0.5;
  self->swipe = -1.0;
  self->fit = TRUE;
  self->zoom = 1.0;
  self->ghost_x = -1.0;
  self->radius = 3.0;
  self->active_class = 1;
  self->editable = TRUE;
  gtk_widget_set_hexpand (widget, TRUE);
  gtk_widget_set_vexpand (widget, TRUE);
  gtk_widget_set_focusable (widget, TRUE);
  gtk_widget_set_overflow (widget, GTK_OVERFLOW_HIDDEN);
  gtk_widget_set_cursor_from_name (widget, "crosshair");
  gtk_widget_action_set_enabled (widget, "canvas.polygon-finish", FALSE);
  gtk_widget_action_set_enabled (widget, "canvas.polygon-cancel", FALSE);

  controller = gtk_event_controller_motion_new ();
  g_signal_connect (controller, "motion", G_CALLBACK (on_motion), self);
  g_signal_connect (controller, "leave", G_CALLBACK (on_leave), self);
  gtk_widget_add_controller (widget, controller);

  controller = gtk_event_controller_scroll_new (GTK_EVENT_CONTROLLER_SCROLL_VERTICAL);
  g_signal_connect (controller, "scroll", G_CALLBACK (on_scroll), self);
  gtk_widget_add_controller (widget, controller);

  drag = gtk_gesture_drag_new ();
  gtk_gesture_single_set_button (GTK_GESTURE_SINGLE (drag), 0);
  g_signal_connect (drag, "drag-begin", G_CALLBACK (on_drag_begin), self);
  g_signal_connect (drag, "drag-update", G_CALLBACK (on_drag_update), self);
  g_signal_connect (drag, "drag-end", G_CALLBACK (on_drag_end), self);
  gtk_widget_add_controller (widget, GTK_EVENT_CONTROLLER (drag));

  controller = gtk_event_controller_key_new ();
  g_signal_connect (controller, "key-pressed", G_CALLBACK (on_key_pressed), self);
  g_signal_connect (controller, "key-released", G_CALLBACK (on_key_released), self);
  gtk_widget_add_controller (widget, controller);
}

GtkWidget *
lode_canvas_new (void)
{
  return g_object_new (LODE_TYPE_CANVAS, NULL);
}

void
lode_canvas_set_image (LodeCanvas *self, const guint8 *rgba, int width, int height)
{
  g_return_if_fail (LODE_IS_CANVAS (self));
  g_return_if_fail (rgba != NULL && width > 0 && height > 0);

  if (width != self->width || height != self->height)
    {
      self->fit = TRUE;
      g_clear_pointer (&self->overlay, cairo_surface_destroy);
      g_clear_pointer (&self->highlight, cairo_surface_destroy);
      g_clear_pointer (&self->second, cairo_surface_destroy);
      g_clear_pointer (&self->second_overlay, cairo_surface_destroy);
      g_clear_pointer (&self->preview, cairo_surface_destroy);
    }
  self->width = width;
  self->height = height;
  replace_surface (&self->image, rgba, width, height);
  lode_canvas_cancel_polygon (self);
  g_clear_pointer (&self->stroke, g_array_unref);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
lode_canvas_set_overlay (LodeCanvas *self, const guint8 *rgba)
{
  g_return_if_fail (LODE_IS_CANVAS (self));
  replace_surface (&self->overlay, self->image ? rgba : NULL, self->width, self->height);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
lode_canvas_set_highlight (LodeCanvas *self, const guint8 *rgba)
{
  g_return_if_fail (LODE_IS_CANVAS (self));
  replace_surface (&self->highlight, self->image ? rgba : NULL, self->width, self->height);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
lode_canvas_set_second (LodeCanvas *self, const guint8 *rgba, const guint8 *overlay)
{
  g_return_if_fail (LODE_IS_CANVAS (self));
  replace_surface (&self->second, self->image ? rgba : NULL, self->width, self->height);
  replace_surface (&self->second_overlay, self->image ? overlay : NULL, self->width, self->height);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
lode_canvas_set_swipe (LodeCanvas *self, double position)
{
  g_return_if_fail (LODE_IS_CANVAS (self));
  self->swipe = position < 0 ? -1.0 : CLAMP (position, 0.0, 1.0);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
lode_canvas_set_show_second (LodeCanvas *self, gboolean shown)
{
  g_return_if_fail (LODE_IS_CANVAS (self));
  self->show_second = shown;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

gboolean
lode_canvas_get_show_second (LodeCanvas *self)
{
  g_return_val_if_fail (LODE_IS_CANVAS (self), FALSE);
  return self->show_second;
}

void
lode_canvas_set_mask_opacity (LodeCanvas *self, double opacity)
{
  g_return_if_fail (LODE_IS_CANVAS (self));
  self->mask_opacity = CLAMP (opacity, 0.0, 1.0);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

double
lode_canvas_get_mask_opacity (LodeCanvas *self)
{
  g_return_val_if_fail (LODE_IS_CANVAS (self), 0.0);
  return self->mask_opacity;
}

void
lode_canvas_clear (LodeCanvas *self)
{
  g_return_if_fail (LODE_IS_CANVAS (self));
  g_clear_pointer (&self->image, cairo_surface_destroy);
  g_clear_pointer (&self->overlay, cairo_surface_destroy);
  g_clear_pointer (&self->highlight, cairo_surface_destroy);
  g_clear_pointer (&self->second, cairo_surface_destroy);
  g_clear_pointer (&self->second_overlay, cairo_surface_destroy);
  g_clear_pointer (&self->preview, cairo_surface_destroy);
  self->width = self->height = 0;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

gboolean
lode_canvas_has_image (LodeCanvas *self)
{
  g_return_val_if_fail (LODE_IS_CANVAS (self), FALSE);
  return self->image != NULL;
}

int
lode_canvas_get_image_width (LodeCanvas *self)
{
  g_return_val_if_fail (LODE_IS_CANVAS (self), 0);
  return self->width;
}

int
lode_canvas_get_image_height (LodeCanvas *self)
{
  g_return_val_if_fail (LODE_IS_CANVAS (self), 0);
  return self->height;
}

double
lode_canvas_get_zoom (LodeCanvas *self)
{
  g_return_val_if_fail (LODE_IS_CANVAS (self), 1.0);
  if (self->fit)
    apply_fit (self);
  return self->zoom;
}

void
lode_canvas_get_view (LodeCanvas *self, double *zoom, double *centre_x, double *centre_y)
{
  g_return_if_fail (LODE_IS_CANVAS (self));
  if (self->fit)
    apply_fit (self);
  *zoom = self->zoom;
  widget_to_image (self, gtk_widget_get_width (GTK_WIDGET (self)) / 2.0,
                   gtk_widget_get_height (GTK_WIDGET (self)) / 2.0, centre_x, centre_y);
}

static double
clamp_zoom (LodeCanvas *self, double zoom)
{
  double lo = MIN (1.0, fit_zoom (self) * MIN_ZOOM_FACTOR);
  return CLAMP (zoom, lo, LODE_CANVAS_MAX_ZOOM);
}

void
lode_canvas_set_view (LodeCanvas *self, double zoom, double centre_x, double centre_y)
{
  g_return_if_fail (LODE_IS_CANVAS (self));
  self->fit = FALSE;
  self->zoom = clamp_zoom (self, zoom);
  self->origin_x = round (gtk_widget_get_width (GTK_WIDGET (self)) / 2.0 - centre_x * self->zoom);
  self->origin_y = round (gtk_widget_get_height (GTK_WIDGET (self)) / 2.0 - centre_y * self->zoom);
  view_changed (self);
}

void
lode_canvas_zoom_fit (LodeCanvas *self)
{
  g_return_if_fail (LODE_IS_CANVAS (self));
  self->fit = TRUE;
  apply_fit (self);
  view_changed (self);
}

gboolean
lode_canvas_get_fit (LodeCanvas *self)
{
  g_return_val_if_fail (LODE_IS_CANVAS (self), FALSE);
  return self->fit;
}

void
lode_canvas_zoom_at (LodeCanvas *self, double factor, double wx, double wy)
{
  double ix, iy, zoom;

  g_return_if_fail (LODE_IS_CANVAS (self));
  if (self->fit)
    apply_fit (self);
  widget_to_image (self, wx, wy, &ix, &iy);
  zoom = clamp_zoom (self, self->zoom * factor);
  /* Snap near whole numbers so pixels stay even. */
  if (zoom > 1.0 && fabs (zoom - round (zoom)) < 0.08)
    zoom = round (zoom);
  self->fit = FALSE;
  self->zoom = zoom;
  self->origin_x = round (wx - ix * zoom);
  self->origin_y = round (wy - iy * zoom);
  view_changed (self);
}

void
lode_canvas_widget_to_image (LodeCanvas *self, double wx, double wy, double *ix, double *iy)
{
  g_return_if_fail (LODE_IS_CANVAS (self));
  if (self->fit)
    apply_fit (self);
  widget_to_image (self, wx, wy, ix, iy);
}

void
lode_canvas_set_ghost_cursor (LodeCanvas *self, double x, double y)
{
  g_return_if_fail (LODE_IS_CANVAS (self));
  self->ghost_x = x;
  self->ghost_y = y;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
lode_canvas_set_classes (LodeCanvas *self, const LodeClassTable *classes)
{
  g_return_if_fail (LODE_IS_CANVAS (self));
  g_clear_pointer (&self->classes, lode_class_table_free);
  if (classes != NULL)
    self->classes = lode_class_table_copy (classes);
  if (self->classes == NULL || lode_class_table_lookup (self->classes, self->active_class) == NULL ||
      self->active_class == 0)
    {
      self->active_class = 1;
      for (guint i = 0; self->classes && i < lode_class_table_size (self->classes); i++)
        if (lode_class_table_get (self->classes, i)->id != 0)
          {
            self->active_class = lode_class_table_get (self->classes, i)->id;
            break;
          }
    }
  state_changed (self);
}

void
lode_canvas_set_tool (LodeCanvas *self, LodeCanvasTool tool)
{
  g_return_if_fail (LODE_IS_CANVAS (self));
  g_return_if_fail (tool <= LODE_CANVAS_TOOL_SAM2);
  if (tool != LODE_CANVAS_TOOL_POLYGON)
    lode_canvas_cancel_polygon (self);
  self->sam2_pressed = FALSE;
  self->tool = tool;
  /* Enter and Escape reach the window's SAM2 actions unless a polygon is drawn. */
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "canvas.polygon-finish", tool == LODE_CANVAS_TOOL_POLYGON);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "canvas.polygon-cancel", tool == LODE_CANVAS_TOOL_POLYGON);
  state_changed (self);
}

LodeCanvasTool
lode_canvas_get_tool (LodeCanvas *self)
{
  g_return_val_if_fail (LODE_IS_CANVAS (self), LODE_CANVAS_TOOL_BRUSH);
  return self->tool;
}

void
lode_canvas_set_brush_radius (LodeCanvas *self, double radius)
{
  g_return_if_fail (LODE_IS_CANVAS (self));
  radius = CLAMP (radius, LODE_CANVAS_MIN_RADIUS, LODE_CANVAS_MAX_RADIUS);
  if (radius == self->radius)
    return;
  self->radius = radius;
  state_changed (self);
}

double
lode_canvas_get_brush_radius (LodeCanvas *self)
{
  g_return_val_if_fail (LODE_IS_CANVAS (self), 0.0);
  return self->radius;
}

void
lode_canvas_set_active_class (LodeCanvas *self, guint8 class_id)
{
  g_return_if_fail (LODE_IS_CANVAS (self));
  if (class_id == self->active_class)
    return;
  self->active_class = class_id;
  state_changed (self);
}

guint8
lode_canvas_get_active_class (LodeCanvas *self)
{
  g_return_val_if_fail (LODE_IS_CANVAS (self), 0);
  return self->active_class;
}

gboolean
lode_canvas_get_editable (LodeCanvas *self)
{
  g_return_val_if_fail (LODE_IS_CANVAS (self), FALSE);
  return self->editable;
}

void
lode_canvas_set_editable (LodeCanvas *self, gboolean editable)
{
  g_return_if_fail (LODE_IS_CANVAS (self));
  self->editable = editable;
  if (!editable)
    {
      lode_canvas_cancel_polygon (self);
      g_clear_pointer (&self->stroke, g_array_unref);
    }
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
lode_canvas_press (LodeCanvas *self, double x, double y)
{
  double xy[2] = { x, y };

  g_return_if_fail (LODE_IS_CANVAS (self));
  if (self->image == NULL || !self->editable)
    return;
  switch (self->tool)
    {
    case LODE_CANVAS_TOOL_BRUSH:
    case LODE_CANVAS_TOOL_ERASER:
      g_clear_pointer (&self->stroke, g_array_unref);
      self->stroke = g_array_new (FALSE, FALSE, sizeof (double));
      g_array_append_vals (self->stroke, xy, 2);
      break;
    case LODE_CANVAS_TOOL_FILL:
      if (x >= 0 && y >= 0 && x < self->width && y < self->height)
        g_signal_emit (self, signals[SIGNAL_FILL], 0, (int) floor (x), (int) floor (y));
      break;
    case LODE_CANVAS_TOOL_POLYGON:
      if (self->polygon == NULL)
        self->polygon = g_array_new (FALSE, FALSE, sizeof (double));
      g_array_append_vals (self->polygon, xy, 2);
      break;
    case LODE_CANVAS_TOOL_SAM2:
      self->sam2_pressed = TRUE;
      self->sam2_negative = FALSE;
      self->sam2_start[0] = self->sam2_end[0] = x;
      self->sam2_start[1] = self->sam2_end[1] = y;
      break;
    default:
      g_assert_not_reached ();
    }
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
lode_canvas_motion (LodeCanvas *self, double x, double y)
{
  const double *last;
  double xy[2] = { x, y };

  g_return_if_fail (LODE_IS_CANVAS (self));
  if (self->sam2_pressed)
    {
      /* Negative points are clicks only; a drag draws a box. */
      self->sam2_end[0] = CLAMP (x, 0, self->width);
      self->sam2_end[1] = CLAMP (y, 0, self->height);
      gtk_widget_queue_draw (GTK_WIDGET (self));
      return;
    }
  if (self->stroke == NULL)
    return;
  last = &g_array_index (self->stroke, double, self->stroke->len - 2);
  /* Points closer than a quarter pixel add nothing to the stroke. */
  if (hypot (last[0] - x, last[1] - y) < 0.25)
    return;
  g_array_append_vals (self->stroke, xy, 2);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
lode_canvas_release (LodeCanvas *self)
{
  g_autoptr(GArray) stroke = NULL;

  g_return_if_fail (LODE_IS_CANVAS (self));
  if (self->sam2_pressed)
    {
      double *a = self->sam2_start, *b = self->sam2_end;

      self->sam2_pressed = FALSE;
      gtk_widget_queue_draw (GTK_WIDGET (self));
      if (!self->sam2_negative && hypot ((b[0] - a[0]) * self->zoom, (b[1] - a[1]) * self->zoom) >= SAM2_DRAG_DISTANCE)
        g_signal_emit (self, signals[SIGNAL_SAM2_BOX], 0, MIN (a[0], b[0]), MIN (a[1], b[1]),
                       MAX (a[0], b[0]), MAX (a[1], b[1]));
      else if (a[0] >= 0 && a[1] >= 0 && a[0] < self->width && a[1] < self->height)
        g_signal_emit (self, signals[SIGNAL_SAM2_POINT], 0, a[0], a[1], !self->sam2_negative);
      return;
    }
  if (self->stroke == NULL)
    return;
  /* Cleared first so that the redraw after the edit shows no preview. */
  stroke = g_steal_pointer (&self->stroke);
  g_signal_emit (self, signals[SIGNAL_STROKE], 0, (int) self->tool,
                 (gpointer) stroke->data, (int) (stroke->len / 2), self->radius);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
lode_canvas_finish_polygon (LodeCanvas *self)
{
  g_autoptr(GArray) polygon = NULL;

  g_return_if_fail (LODE_IS_CANVAS (self));
  if (self->polygon == NULL)
    return;
  polygon = g_steal_pointer (&self->polygon);
  if (polygon->len >= 6)
    g_signal_emit (self, signals[SIGNAL_POLYGON], 0, (gpointer) polygon->data, (int) (polygon->len / 2));
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
lode_canvas_cancel_polygon (LodeCanvas *self)
{
  g_return_if_fail (LODE_IS_CANVAS (self));
  g_clear_pointer (&self->polygon, g_array_unref);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
lode_canvas_press_secondary (LodeCanvas *self, double x, double y)
{
  g_return_if_fail (LODE_IS_CANVAS (self));
  if (self->image == NULL || !self->editable || self->tool != LODE_CANVAS_TOOL_SAM2)
    return;
  lode_canvas_press (self, x, y);
  self->sam2_negative = TRUE;
}

void
lode_canvas_set_prompts (LodeCanvas  *self,
                         const float *points,
                         const int   *labels,
                         int          n_points,
                         const float *box)
{
  g_return_if_fail (LODE_IS_CANVAS (self));
  if (self->prompt_points == NULL)
    {
      self->prompt_points = g_array_new (FALSE, FALSE, sizeof (float));
      self->prompt_labels = g_array_new (FALSE, FALSE, sizeof (int));
    }
  g_array_set_size (self->prompt_points, 0);
  g_array_set_size (self->prompt_labels, 0);
  if (n_points > 0)
    {
      g_array_append_vals (self->prompt_points, points, 2 * n_points);
      g_array_append_vals (self->prompt_labels, labels, n_points);
    }
  self->has_box = box != NULL;
  if (box != NULL)
    memcpy (self->box, box, sizeof self->box);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
lode_canvas_set_preview (LodeCanvas *self, const guint8 *rgba)
{
  g_return_if_fail (LODE_IS_CANVAS (self));
  replace_surface (&self->preview, self->image ? rgba : NULL, self->width, self->height);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}
