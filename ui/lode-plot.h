/* lode-plot.h: a small line plot drawn with Cairo: a few series of (x, y)
 * points on shared axes (x from 0 to the largest x, y from 0 to the largest
 * y or 1), each in its colour, with a legend. Training draws its loss and
 * validation IoU per epoch in one. */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define LODE_TYPE_PLOT (lode_plot_get_type ())
G_DECLARE_FINAL_TYPE (LodePlot, lode_plot, LODE, PLOT, GtkWidget)

GtkWidget *lode_plot_new          (void);
/* Adds a series and returns its index; rgb is the line's colour. */
guint      lode_plot_add_series   (LodePlot     *self,
                                   const char   *label,
                                   const GdkRGBA *rgb);
/* Appends a point; non-finite values are left out. */
void       lode_plot_add_point    (LodePlot     *self,
                                   guint         series,
                                   double        x,
                                   double        y);
guint      lode_plot_get_n_points (LodePlot     *self,
                                   guint         series);
/* Forgets every point, keeping the series. */
void       lode_plot_clear        (LodePlot     *self);

G_END_DECLS
