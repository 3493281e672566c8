#define G_LOG_DOMAIN "lode-ui"

#include "config.h"

#include <string.h>

#include "lode-canvas.h"

struct _LodeCanvas
{
  GtkWidget parent_instance;

  cairo_surface_t *image;    /* ARGB32, premultiplied */
  cairo_surface_t *overlay;  /* ARGB32, premultiplied, or NULL */
  double mask_opacity;
};

G_DEFINE_FINAL_TYPE (LodeCanvas, lode_canvas, GTK_TYPE_WIDGET)

/* Straight RGBA bytes to a premultiplied cairo surface. */
static cairo_surface_t *
surface_from_rgba (const guint8 *rgba, int width, int height)
{
  cairo_surface_t *s = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, width, height);
  guint8 *dst = cairo_image_surface_get_data (s);
  int stride = cairo_image_surface_get_stride (s);

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
  return s;
}

static void
lode_canvas_snapshot (GtkWidget *widget, GtkSnapshot *snapshot)
{
  LodeCanvas *self = LODE_CANVAS (widget);
  int w = gtk_widget_get_width (widget);
  int h = gtk_widget_get_height (widget);

  if (self->image == NULL || w <= 0 || h <= 0)
    return;

  int iw = cairo_image_surface_get_width (self->image);
  int ih = cairo_image_surface_get_height (self->image);
  double scale = MIN ((double) w / iw, (double) h / ih);
  /* Whole-number zoom above 1 keeps pixels square and crisp. */
  if (scale >= 1.0)
    scale = floor (scale);
  double ox = floor ((w - iw * scale) / 2.0);
  double oy = floor ((h - ih * scale) / 2.0);

  cairo_t *cr = gtk_snapshot_append_cairo (snapshot, &GRAPHENE_RECT_INIT (0, 0, w, h));
  cairo_translate (cr, ox, oy);
  cairo_scale (cr, scale, scale);

  cairo_set_source_surface (cr, self->image, 0, 0);
  cairo_pattern_set_filter (cairo_get_source (cr), CAIRO_FILTER_NEAREST);
  cairo_paint (cr);

  if (self->overlay != NULL && self->mask_opacity > 0.0)
    {
      cairo_set_source_surface (cr, self->overlay, 0, 0);
      cairo_pattern_set_filter (cairo_get_source (cr), CAIRO_FILTER_NEAREST);
      cairo_paint_with_alpha (cr, self->mask_opacity);
    }
  cairo_destroy (cr);
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
  LodeCanvas *self = LODE_CANVAS (widget);
  int n = 128;

  if (self->image != NULL)
    n = orientation == GTK_ORIENTATION_HORIZONTAL
          ? cairo_image_surface_get_width (self->image)
          : cairo_image_surface_get_height (self->image);
  *minimum = MIN (n, 128);
  *natural = n * 4;
}

static void
lode_canvas_dispose (GObject *object)
{
  LodeCanvas *self = LODE_CANVAS (object);

  g_clear_pointer (&self->image, cairo_surface_destroy);
  g_clear_pointer (&self->overlay, cairo_surface_destroy);
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
  gtk_widget_class_set_css_name (widget_class, "lode-canvas");
}

static void
lode_canvas_init (LodeCanvas *self)
{
  self->mask_opacity = 0.5;
  gtk_widget_set_hexpand (GTK_WIDGET (self), TRUE);
  gtk_widget_set_vexpand (GTK_WIDGET (self), TRUE);
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

  g_clear_pointer (&self->image, cairo_surface_destroy);
  g_clear_pointer (&self->overlay, cairo_surface_destroy);
  self->image = surface_from_rgba (rgba, width, height);
  gtk_widget_queue_resize (GTK_WIDGET (self));
}

void
lode_canvas_set_overlay (LodeCanvas *self, const guint8 *rgba)
{
  g_return_if_fail (LODE_IS_CANVAS (self));

  g_clear_pointer (&self->overlay, cairo_surface_destroy);
  if (rgba != NULL && self->image != NULL)
    self->overlay = surface_from_rgba (rgba,
                                       cairo_image_surface_get_width (self->image),
                                       cairo_image_surface_get_height (self->image));
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
lode_canvas_set_mask_opacity (LodeCanvas *self, double opacity)
{
  g_return_if_fail (LODE_IS_CANVAS (self));
  self->mask_opacity = CLAMP (opacity, 0.0, 1.0);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
lode_canvas_clear (LodeCanvas *self)
{
  g_return_if_fail (LODE_IS_CANVAS (self));
  g_clear_pointer (&self->image, cairo_surface_destroy);
  g_clear_pointer (&self->overlay, cairo_surface_destroy);
  gtk_widget_queue_resize (GTK_WIDGET (self));
}

gboolean
lode_canvas_has_image (LodeCanvas *self)
{
  g_return_val_if_fail (LODE_IS_CANVAS (self), FALSE);
  return self->image != NULL;
}
