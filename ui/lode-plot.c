#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <math.h>

#include "lode-plot.h"

typedef struct
{
  char    *label;
  GdkRGBA  rgb;
  GArray  *points;   /* double pairs */
} Series;

struct _LodePlot
{
  GtkWidget  parent_instance;
  GPtrArray *series;  /* Series* */
};

G_DEFINE_FINAL_TYPE (LodePlot, lode_plot, GTK_TYPE_WIDGET)

static void
series_free (gpointer p)
{
  Series *s = p;

  g_free (s->label);
  g_array_unref (s->points);
  g_free (s);
}

static void
draw (LodePlot *self, cairo_t *cr, int width, int height)
{
  GdkRGBA fg;
  const double left = 36, right = 8, top = 8, bottom = 22;
  double max_x = 1, max_y = 1, pw = width - left - right, ph = height - top - bottom;
  char text[32];
  cairo_text_extents_t ext;

  if (pw <= 0 || ph <= 0)
    return;
#if GTK_CHECK_VERSION (4, 10, 0)
  gtk_widget_get_color (GTK_WIDGET (self), &fg);
#else
  gtk_style_context_get_color (gtk_widget_get_style_context (GTK_WIDGET (self)), &fg);
#endif
  for (guint i = 0; i < self->series->len; i++)
    {
      Series *s = g_ptr_array_index (self->series, i);
      for (guint k = 0; k < s->points->len; k += 2)
        {
          max_x = MAX (max_x, g_array_index (s->points, double, k));
          max_y = MAX (max_y, g_array_index (s->points, double, k + 1));
        }
    }

  /* Axes and their ends' values. */
  cairo_set_line_width (cr, 1);
  cairo_set_source_rgba (cr, fg.red, fg.green, fg.blue, 0.5);
  cairo_move_to (cr, left + 0.5, top);
  cairo_line_to (cr, left + 0.5, top + ph + 0.5);
  cairo_line_to (cr, left + pw, top + ph + 0.5);
  cairo_stroke (cr);
  cairo_set_font_size (cr, 10);
  cairo_set_source_rgba (cr, fg.red, fg.green, fg.blue, 0.8);
  g_snprintf (text, sizeof text, "%.2g", max_y);
  cairo_text_extents (cr, text, &ext);
  cairo_move_to (cr, left - 4 - ext.x_advance, top + ext.height);
  cairo_show_text (cr, text);
  cairo_move_to (cr, left - 4 - 6, top + ph);
  cairo_show_text (cr, "0");
  g_snprintf (text, sizeof text, "%.0f", max_x);
  cairo_text_extents (cr, text, &ext);
  cairo_move_to (cr, left + pw - ext.x_advance, top + ph + 14);
  cairo_show_text (cr, text);

  /* Series without points (a SAM2 run has no U-Net IoU) stay out of the
   * legend too. */
  for (guint i = 0, shown = 0; i < self->series->len; i++)
    {
      Series *s = g_ptr_array_index (self->series, i);
      double lx = left + 8, ly = top + 12 + 14 * shown;

      if (s->points->len == 0)
        continue;
      shown++;
      cairo_set_source_rgb (cr, s->rgb.red, s->rgb.green, s->rgb.blue);
      cairo_set_line_width (cr, 2);
      for (guint k = 0; k < s->points->len; k += 2)
        {
          double x = left + pw * g_array_index (s->points, double, k) / max_x;
          double y = top + ph - ph * g_array_index (s->points, double, k + 1) / max_y;
          if (k == 0)
            cairo_move_to (cr, x, y);
          else
            cairo_line_to (cr, x, y);
        }
      cairo_stroke (cr);
      for (guint k = 0; k < s->points->len; k += 2)
        {
          double x = left + pw * g_array_index (s->points, double, k) / max_x;
          double y = top + ph - ph * g_array_index (s->points, double, k + 1) / max_y;
          cairo_arc (cr, x, y, 2.5, 0, 2 * G_PI);
          cairo_fill (cr);
        }
      /* Legend */
      cairo_rectangle (cr, lx, ly - 7, 10, 3);
      cairo_fill (cr);
      cairo_set_source_rgba (cr, fg.red, fg.green, fg.blue, 0.9);
      cairo_move_to (cr, lx + 14, ly - 2);
      cairo_show_text (cr, s->label);
    }
}

static void
lode_plot_snapshot (GtkWidget *widget, GtkSnapshot *snapshot)
{
  int width = gtk_widget_get_width (widget), height = gtk_widget_get_height (widget);
  cairo_t *cr = gtk_snapshot_append_cairo (snapshot, &GRAPHENE_RECT_INIT (0, 0, width, height));

  draw (LODE_PLOT (widget), cr, width, height);
  cairo_destroy (cr);
}

static void
lode_plot_measure (GtkWidget *widget, GtkOrientation orientation, int for_size,
                   int *minimum, int *natural, int *minimum_baseline, int *natural_baseline)
{
  *minimum = orientation == GTK_ORIENTATION_HORIZONTAL ? 160 : 100;
  *natural = orientation == GTK_ORIENTATION_HORIZONTAL ? 360 : 180;
}

static void
lode_plot_finalize (GObject *object)
{
  g_ptr_array_unref (LODE_PLOT (object)->series);
  G_OBJECT_CLASS (lode_plot_parent_class)->finalize (object);
}

static void
lode_plot_class_init (LodePlotClass *klass)
{
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  G_OBJECT_CLASS (klass)->finalize = lode_plot_finalize;
  widget_class->snapshot = lode_plot_snapshot;
  widget_class->measure = lode_plot_measure;
  gtk_widget_class_set_css_name (widget_class, "lode-plot");
  gtk_widget_class_set_accessible_role (widget_class, GTK_ACCESSIBLE_ROLE_IMG);
}

static void
lode_plot_init (LodePlot *self)
{
  self->series = g_ptr_array_new_with_free_func (series_free);
}

GtkWidget *
lode_plot_new (void)
{
  return g_object_new (LODE_TYPE_PLOT, NULL);
}

guint
lode_plot_add_series (LodePlot *self, const char *label, const GdkRGBA *rgb)
{
  Series *s;

  g_return_val_if_fail (LODE_IS_PLOT (self), 0);
  s = g_new0 (Series, 1);
  s->label = g_strdup (label);
  s->rgb = *rgb;
  s->points = g_array_new (FALSE, FALSE, sizeof (double));
  g_ptr_array_add (self->series, s);
  gtk_widget_queue_draw (GTK_WIDGET (self));
  return self->series->len - 1;
}

void
lode_plot_add_point (LodePlot *self, guint series, double x, double y)
{
  Series *s;

  g_return_if_fail (LODE_IS_PLOT (self) && series < self->series->len);
  if (!isfinite (x) || !isfinite (y))
    return;
  s = g_ptr_array_index (self->series, series);
  g_array_append_val (s->points, x);
  g_array_append_val (s->points, y);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

guint
lode_plot_get_n_points (LodePlot *self, guint series)
{
  g_return_val_if_fail (LODE_IS_PLOT (self) && series < self->series->len, 0);
  return ((Series *) g_ptr_array_index (self->series, series))->points->len / 2;
}

void
lode_plot_clear (LodePlot *self)
{
  g_return_if_fail (LODE_IS_PLOT (self));
  for (guint i = 0; i < self->series->len; i++)
    g_array_set_size (((Series *) g_ptr_array_index (self->series, i))->points, 0);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}
