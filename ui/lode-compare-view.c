#define G_LOG_DOMAIN "lode-ui"

#include "config.h"

#include <glib/gi18n.h>

#include "lode-compare-view.h"

struct _LodeCompareView
{
  GtkWidget        parent_instance;

  /* template */
  GtkWidget       *box;
  GtkLabel        *left_label;
  GtkLabel        *right_label;
  GtkWidget       *right_box;
  LodeCanvas      *left_canvas;
  LodeCanvas      *right_canvas;
  GtkScale        *swipe_scale;

  LodeCompareMode  mode;
  gboolean         syncing;
  guint            blink_id;
};

G_DEFINE_FINAL_TYPE (LodeCompareView, lode_compare_view, GTK_TYPE_WIDGET)

static LodeCanvas *
other_canvas (LodeCompareView *self, LodeCanvas *canvas)
{
  return canvas == self->left_canvas ? self->right_canvas : self->left_canvas;
}

static void
on_view_changed (LodeCanvas *canvas, LodeCompareView *self)
{
  double zoom, x, y;

  if (self->syncing || self->mode != LODE_COMPARE_SIDE ||
      !lode_canvas_has_image (self->left_canvas) || !lode_canvas_has_image (self->right_canvas))
    return;
  self->syncing = TRUE;
  /* A fitted view fits the other side too, whatever order the two are
   * given their sizes in. */
  if (lode_canvas_get_fit (canvas))
    lode_canvas_zoom_fit (other_canvas (self, canvas));
  else
    {
      lode_canvas_get_view (canvas, &zoom, &x, &y);
      lode_canvas_set_view (other_canvas (self, canvas), zoom, x, y);
    }
  self->syncing = FALSE;
}

static void
on_cursor_moved (LodeCanvas *canvas, double x, double y, LodeCompareView *self)
{
  lode_canvas_set_ghost_cursor (other_canvas (self, canvas), x, y);
}

static void
on_swipe_changed (GtkRange *range, LodeCompareView *self)
{
  if (self->mode == LODE_COMPARE_SWIPE)
    lode_canvas_set_swipe (self->left_canvas, gtk_range_get_value (range));
}

static gboolean
on_blink (gpointer data)
{
  LodeCompareView *self = data;

  lode_canvas_set_show_second (self->left_canvas, !lode_canvas_get_show_second (self->left_canvas));
  return G_SOURCE_CONTINUE;
}

static void
stop_blink (LodeCompareView *self)
{
  g_clear_handle_id (&self->blink_id, g_source_remove);
  lode_canvas_set_show_second (self->left_canvas, FALSE);
}

static void
lode_compare_view_dispose (GObject *object)
{
  LodeCompareView *self = LODE_COMPARE_VIEW (object);

  g_clear_handle_id (&self->blink_id, g_source_remove);
  gtk_widget_dispose_template (GTK_WIDGET (self), LODE_TYPE_COMPARE_VIEW);
  G_OBJECT_CLASS (lode_compare_view_parent_class)->dispose (object);
}

static void
lode_compare_view_unmap (GtkWidget *widget)
{
  /* No blinking while hidden. */
  if (LODE_COMPARE_VIEW (widget)->mode == LODE_COMPARE_BLINK)
    stop_blink (LODE_COMPARE_VIEW (widget));
  GTK_WIDGET_CLASS (lode_compare_view_parent_class)->unmap (widget);
}

static void
lode_compare_view_map (GtkWidget *widget)
{
  LodeCompareView *self = LODE_COMPARE_VIEW (widget);

  GTK_WIDGET_CLASS (lode_compare_view_parent_class)->map (widget);
  if (self->mode == LODE_COMPARE_BLINK && self->blink_id == 0)
    self->blink_id = g_timeout_add (LODE_COMPARE_BLINK_MS, on_blink, self);
}

static void
lode_compare_view_class_init (LodeCompareViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = lode_compare_view_dispose;
  widget_class->map = lode_compare_view_map;
  widget_class->unmap = lode_compare_view_unmap;

  g_type_ensure (LODE_TYPE_CANVAS);
  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
  gtk_widget_class_set_css_name (widget_class, "lode-compare-view");
  gtk_widget_class_set_template_from_resource (widget_class, "/org/lodeapp/Lode/lode-compare-view.ui");
  gtk_widget_class_bind_template_child (widget_class, LodeCompareView, box);
  gtk_widget_class_bind_template_child (widget_class, LodeCompareView, left_label);
  gtk_widget_class_bind_template_child (widget_class, LodeCompareView, right_label);
  gtk_widget_class_bind_template_child (widget_class, LodeCompareView, right_box);
  gtk_widget_class_bind_template_child (widget_class, LodeCompareView, left_canvas);
  gtk_widget_class_bind_template_child (widget_class, LodeCompareView, right_canvas);
  gtk_widget_class_bind_template_child (widget_class, LodeCompareView, swipe_scale);
  gtk_widget_class_bind_template_callback (widget_class, on_swipe_changed);
}

static void
lode_compare_view_init (LodeCompareView *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  g_signal_connect (self->left_canvas, "view-changed", G_CALLBACK (on_view_changed), self);
  g_signal_connect (self->right_canvas, "view-changed", G_CALLBACK (on_view_changed), self);
  g_signal_connect (self->left_canvas, "cursor-moved", G_CALLBACK (on_cursor_moved), self);
  g_signal_connect (self->right_canvas, "cursor-moved", G_CALLBACK (on_cursor_moved), self);
}

GtkWidget *
lode_compare_view_new (void)
{
  return g_object_new (LODE_TYPE_COMPARE_VIEW, NULL);
}

LodeCanvas *
lode_compare_view_get_canvas (LodeCompareView *self, int side)
{
  g_return_val_if_fail (LODE_IS_COMPARE_VIEW (self), NULL);
  return side == 0 ? self->left_canvas : self->right_canvas;
}

void
lode_compare_view_set_titles (LodeCompareView *self, const char *left, const char *right)
{
  g_return_if_fail (LODE_IS_COMPARE_VIEW (self));
  gtk_label_set_label (self->left_label, left);
  gtk_label_set_label (self->right_label, right);
}

void
lode_compare_view_set_mode (LodeCompareView *self, LodeCompareMode mode)
{
  g_return_if_fail (LODE_IS_COMPARE_VIEW (self));

  stop_blink (self);
  self->mode = mode;
  gtk_widget_set_visible (self->right_box, mode == LODE_COMPARE_SIDE);
  gtk_widget_set_visible (GTK_WIDGET (self->swipe_scale), mode == LODE_COMPARE_SWIPE);
  lode_canvas_set_swipe (self->left_canvas, mode == LODE_COMPARE_SWIPE
                                              ? gtk_range_get_value (GTK_RANGE (self->swipe_scale)) : -1.0);
  lode_canvas_set_ghost_cursor (self->left_canvas, -1, -1);
  lode_canvas_set_ghost_cursor (self->right_canvas, -1, -1);
  if (mode == LODE_COMPARE_BLINK && gtk_widget_get_mapped (GTK_WIDGET (self)))
    self->blink_id = g_timeout_add (LODE_COMPARE_BLINK_MS, on_blink, self);
  if (mode == LODE_COMPARE_SIDE)
    lode_canvas_zoom_fit (self->left_canvas);
}

LodeCompareMode
lode_compare_view_get_mode (LodeCompareView *self)
{
  g_return_val_if_fail (LODE_IS_COMPARE_VIEW (self), LODE_COMPARE_SIDE);
  return self->mode;
}

gboolean
lode_compare_mode_from_id (const char *id, LodeCompareMode *out)
{
  static const char *ids[] = { "side", "swipe", "blink" };

  for (guint i = 0; i < G_N_ELEMENTS (ids); i++)
    if (g_strcmp0 (id, ids[i]) == 0)
      {
        *out = i;
        return TRUE;
      }
  return FALSE;
}
