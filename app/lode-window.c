#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <math.h>

#include <glib/gi18n.h>

#include "lode-canvas.h"
#include "lode-compare-view.h"
#include "lode-composite.h"
#include "lode-document.h"
#include "lode-encode-dialog.h"
#include "lode-prelabel-dialog.h"
#include "lode-training-dialog.h"
#include "lode-error-dialog.h"
#include "lode-export-dialog.h"
#include "lode-import-dialog.h"
#include "lode-patch-browser.h"
#include "lode-patch-item.h"
#include "lode-preferences-dialog.h"
#include "lode-resources.h"
#include "lode-sam2-tool.h"
#include "lode-store.h"
#include "lode-thumbnailer.h"
#include "lode-window.h"

/* Class ids with a meaning in the change overlay. */
#define CLASS_MINING 1
#define CLASS_COCOA  2

struct _LodeWindow
{
  GtkApplicationWindow parent_instance;

  /* template */
  GtkStack           *list_stack;
  LodePatchBrowser   *browser;
  GtkWidget          *toolbar;
  GtkLabel           *brush_label;
  GtkBox             *palette_box;
  GtkStack           *canvas_stack;
  LodeCanvas         *canvas;
  LodeCompareView    *compare_view;
  GtkLabel           *status_label;
  GtkWidget          *inspector;
  GtkStack           *inspector_stack;
  GtkLabel           *patch_title;
  GtkLabel           *patch_info;
  GtkDropDown        *composite_dropdown;
  GtkDropDown        *band_r;
  GtkDropDown        *band_g;
  GtkDropDown        *band_b;
  GtkDropDown        *stretch_dropdown;
  GtkWidget          *low_label;
  GtkSpinButton      *low_spin;
  GtkWidget          *high_label;
  GtkSpinButton      *high_spin;
  GtkScale           *gamma_scale;
  GtkScale           *opacity_scale;
  GtkLabel           *review_state_label;
  GtkLabel           *queue_label;
  GtkEntry           *comment_entry;
  GtkListBox         *revision_list;
  GtkLabel           *reviews_label;
  GtkRevealer        *sam2_bar;
  GtkSpinner         *sam2_spinner;
  GtkLabel           *sam2_label;
  GtkBox             *sam2_candidates;
  GtkRevealer        *sam2_message;
  GtkButton          *sam2_message_close;

  LodeSam2Tool       *sam2;
  char               *sam2_mode;
  gboolean            updating_candidates;

  GSettings          *settings;
  LodeStore          *store;
  LodeThumbnailer    *thumbnailer;
  GCancellable       *scan_cancellable;
  LodeDocument       *doc;        /* the selected patch */
  LodeDocument       *pair;       /* the other year, in the compare view */
  LodeDocument       *active;     /* where undo and redo go */
  LodeCompositeSpec   spec;
  int                 n_band_names;
  int                 shown_bands[3]; /* in the band dropdowns, -1: none */
  gboolean            updating_controls;
  gint64              last_switch_us;
  gint64              switch_start_us;  /* a switch not painted yet */
  gint64              paint_start_us;
  gint64              switch_frame;     /* the frame counter at the switch */
  LodeSwitchTiming    last_timing;
  GdkFrameClock      *frame_clock;
  /* Documents opened before and kept: the patches visited last and those
   * next to the selection, opened in idle time (at most one instance of a
   * patch is open: taken out of here while shown). */
  GPtrArray          *doc_cache;
  guint               prefetch_id;
  gboolean            palette_built;  /* the palette is the project's */
  gboolean            review_dirty;   /* the review panel waits to be seen */
  guint8             *composite_buf;
  guint8             *overlay_buf;
  gsize               buf_size;

  /* property actions */
  char               *tool;
  char               *view;
  char               *compare_mode;
  gboolean            show_original;
  gboolean            mask_outline;
  gboolean            change_overlay;
  gboolean            show_inspector;
};

enum {
  PROP_0,
  PROP_TOOL,
  PROP_VIEW,
  PROP_COMPARE_MODE,
  PROP_SHOW_ORIGINAL,
  PROP_MASK_OUTLINE,
  PROP_CHANGE_OVERLAY,
  PROP_SHOW_INSPECTOR,
  PROP_SAM2_MODE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (LodeWindow, lode_window, GTK_TYPE_APPLICATION_WINDOW)

LodeWindow *
lode_window_new (LodeApplication *app)
{
  return g_object_new (LODE_TYPE_WINDOW, "application", app, NULL);
}

static void
show_error (LodeWindow *self, const char *primary, const GError *error)
{
  lode_error_dialog_show (GTK_WINDOW (self), primary, error->message);
}

static const char *
author (LodeWindow *self)
{
  static char name[256];
  g_autofree char *s = g_settings_get_string (self->settings, "reviewer-name");

  g_strlcpy (name, s[0] != '\0' ? s : g_get_real_name (), sizeof name);
  return name;
}

/* Canvases and the documents they show */

static gboolean
in_compare (LodeWindow *self)
{
  return g_strcmp0 (self->view, "compare") == 0 && self->pair != NULL;
}

static LodeDocument *
earlier_doc (LodeWindow *self)
{
  if (self->pair == NULL)
    return self->doc;
  return lode_document_get_patch (self->pair)->year < lode_document_get_patch (self->doc)->year ? self->pair
                                                                                                   : self->doc;
}

static LodeDocument *
later_doc (LodeWindow *self)
{
  return earlier_doc (self) == self->doc ? self->pair : self->doc;
}

static LodeDocument *
doc_for_canvas (LodeWindow *self, LodeCanvas *canvas)
{
  if (canvas == self->canvas)
    return self->doc;
  if (canvas == lode_compare_view_get_canvas (self->compare_view, 0))
    return earlier_doc (self);
  if (canvas == lode_compare_view_get_canvas (self->compare_view, 1))
    return later_doc (self);
  return NULL;
}

static LodeCanvas *
active_canvas (LodeWindow *self)
{
  if (in_compare (self))
    {
      LodeCanvas *right = lode_compare_view_get_canvas (self->compare_view, 1);
      if (self->active == later_doc (self) && gtk_widget_get_visible (GTK_WIDGET (right)) &&
          gtk_widget_get_mapped (GTK_WIDGET (right)))
        return right;
      return lode_compare_view_get_canvas (self->compare_view, 0);
    }
  return self->canvas;
}

static void
for_each_canvas (LodeWindow *self, void (*func) (LodeCanvas *canvas, gpointer data), gpointer data)
{
  func (self->canvas, data);
  func (lode_compare_view_get_canvas (self->compare_view, 0), data);
  func (lode_compare_view_get_canvas (self->compare_view, 1), data);
}

/* Rendering */

static const LodeMask *
shown_mask (LodeWindow *self, LodeDocument *doc)
{
  const LodeMask *original = lode_document_get_original (doc);

  return self->show_original && original != NULL ? original : lode_document_get_mask (doc);
}

static guint8 *
render_overlay (LodeWindow *self, LodeDocument *doc)
{
  const LodeMask *mask = shown_mask (self, doc);
  guint8 *rgba = g_malloc ((gsize) mask->width * mask->height * 4);

  lode_mask_render_rgba (mask, lode_document_get_classes (doc), self->mask_outline, rgba);
  return rgba;
}

static guint8 *
render_composite (LodeWindow *self, LodeDocument *doc, GError **error)
{
  const LodeRaster *raster = lode_document_get_raster (doc);
  LodeCompositeSpec spec = self->spec;
  g_autofree guint8 *rgba = g_malloc ((gsize) raster->width * raster->height * 4);

  if (!lode_composite_resolve (&spec, raster, error) ||
      !lode_composite_render_rgba (raster, &spec, NULL, rgba, error))
    return NULL;
  return g_steal_pointer (&rgba);
}

/* Pixels whose class differs between the earlier and the later mask:
 * cocoa turned mining in opaque magenta, other gains of mining in orange,
 * any other change in a fainter yellow. */
static guint8 *
render_changes (const LodeMask *before, const LodeMask *after)
{
  gsize n = (gsize) before->width * before->height;
  guint8 *rgba = g_malloc0 (n * 4);

  for (gsize i = 0; i < n; i++)
    {
      guint8 a = before->data[i], b = after->data[i];
      guint8 *px = rgba + 4 * i;

      if (a == b || a == LODE_MASK_NODATA || b == LODE_MASK_NODATA)
        continue;
      if (a == CLASS_COCOA && b == CLASS_MINING)
        px[0] = 255, px[1] = 0, px[2] = 255, px[3] = 255;
      else if (b == CLASS_MINING)
        px[0] = 255, px[1] = 140, px[2] = 0, px[3] = 220;
      else
        px[0] = 255, px[1] = 230, px[2] = 0, px[3] = 140;
    }
  return rgba;
}

static void
update_change_overlay (LodeWindow *self)
{
  LodeCanvas *left = lode_compare_view_get_canvas (self->compare_view, 0);
  LodeCanvas *right = lode_compare_view_get_canvas (self->compare_view, 1);
  g_autofree guint8 *changes = NULL;

  if (in_compare (self) && self->change_overlay)
    {
      const LodeMask *a = shown_mask (self, earlier_doc (self));
      const LodeMask *b = shown_mask (self, later_doc (self));

      if (a->width == b->width && a->height == b->height)
        changes = render_changes (a, b);
    }
  lode_canvas_set_highlight (left, changes);
  lode_canvas_set_highlight (right, changes);
}

/* The second image of swipe and blink: the later year on the left canvas. */
static void
update_second (LodeWindow *self)
{
  LodeCanvas *left = lode_compare_view_get_canvas (self->compare_view, 0);
  g_autofree guint8 *rgba = NULL;
  g_autofree guint8 *overlay = NULL;
  LodeDocument *later;

  if (!in_compare (self))
    return;
  later = later_doc (self);
  if (lode_document_get_raster (later)->width != lode_canvas_get_image_width (left) ||
      lode_document_get_raster (later)->height != lode_canvas_get_image_height (left))
    {
      lode_canvas_set_second (left, NULL, NULL);
      return;
    }
  rgba = render_composite (self, later, NULL);
  overlay = render_overlay (self, later);
  lode_canvas_set_second (left, rgba, overlay);
}

/* The composite and overlay of the shown patch are drawn into buffers kept
 * from one patch to the next; the canvas copies them. */
static gboolean
render_doc (LodeWindow *self, LodeCanvas *canvas, LodeDocument *doc, GError **error)
{
  const LodeRaster *raster = lode_document_get_raster (doc);
  gsize need = (gsize) raster->width * raster->height * 4;
  LodeCompositeSpec spec = self->spec;

  if (need > self->buf_size)
    {
      g_free (self->composite_buf);
      g_free (self->overlay_buf);
      self->composite_buf = g_malloc (need);
      self->overlay_buf = g_malloc (need);
      self->buf_size = need;
    }
  if (!lode_composite_resolve (&spec, raster, error) ||
      !lode_composite_render_rgba (raster, &spec, NULL, self->composite_buf, error))
    return FALSE;
  lode_mask_render_rgba (shown_mask (self, doc), lode_document_get_classes (doc), self->mask_outline,
                         self->overlay_buf);
  lode_canvas_set_image (canvas, self->composite_buf, raster->width, raster->height);
  lode_canvas_set_overlay (canvas, self->overlay_buf);
  lode_canvas_set_classes (canvas, lode_document_get_classes (doc));
  return TRUE;
}

static gboolean
render_all (LodeWindow *self, GError **error)
{
  if (self->doc == NULL)
    return TRUE;
  if (!in_compare (self))
    return render_doc (self, self->canvas, self->doc, error);
  if (!render_doc (self, lode_compare_view_get_canvas (self->compare_view, 0), earlier_doc (self), error) ||
      !render_doc (self, lode_compare_view_get_canvas (self->compare_view, 1), later_doc (self), error))
    return FALSE;
  update_second (self);
  update_change_overlay (self);
  return TRUE;
}

static void
rerender (LodeWindow *self)
{
  g_autoptr(GError) error = NULL;

  if (!render_all (self, &error))
    gtk_label_set_label (self->status_label, error->message);
}

/* The mask of doc changed: its overlays, the change overlay, the list. */
static void
refresh_masks (LodeWindow *self, LodeDocument *doc)
{
  g_autofree guint8 *overlay = render_overlay (self, doc);
  LodePatchShares shares = { lode_document_get_patch (doc)->id };

  if (doc == self->doc)
    lode_canvas_set_overlay (self->canvas, overlay);
  if (in_compare (self))
    {
      lode_canvas_set_overlay (lode_compare_view_get_canvas (self->compare_view, doc == earlier_doc (self) ? 0 : 1),
                               overlay);
      update_second (self);
      update_change_overlay (self);
    }
  lode_patch_shares_from_mask (lode_document_get_mask (doc), &shares);
  lode_patch_browser_set_shares (self->browser, &shares);
  lode_patch_browser_invalidate (self->browser, shares.patch_id);
}

/* Status */

static void
update_actions (LodeWindow *self)
{
  gboolean has_doc = self->doc != NULL;
  LodeDocument *active = self->active ? self->active : self->doc;

  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.next-patch", lode_patch_browser_can_move (self->browser, 1));
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.previous-patch",
                                 lode_patch_browser_can_move (self->browser, -1));
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.undo", active != NULL && lode_document_can_undo (active));
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.redo", active != NULL && lode_document_can_redo (active));
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.export", self->store != NULL);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.encode-project", self->store != NULL);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.train", self->store != NULL);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.prelabel", self->store != NULL);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.accept", has_doc);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.reject", has_doc);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.send-back", has_doc);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.submit", has_doc);
}

static char *
summary_text (LodeWindow *self)
{
  const LodePatch *patch = lode_document_get_patch (self->doc);
  const LodeRaster *raster = lode_document_get_raster (self->doc);
  LodePatchShares shares = { 0 };
  GString *s = g_string_new (NULL);

  lode_patch_shares_from_mask (lode_document_get_mask (self->doc), &shares);
  g_string_append_printf (s, _("%d × %d pixels, %d bands"), raster->width, raster->height, raster->n_bands);
  if (raster->epsg != 0)
    g_string_append_printf (s, " · EPSG:%d", raster->epsg);
  if (patch->split != NULL)
    g_string_append_printf (s, " · %s", g_str_equal (patch->split, "train") ? _("train") : _("test"));
  g_string_append_printf (s, " · %s %.1f %%", _("mining"), 100.0 * shares.mining);
  if (shares.cocoa > 0)
    g_string_append_printf (s, " · %s %.1f %%", _("cocoa"), 100.0 * shares.cocoa);
  g_string_append_printf (s, " · %s", lode_review_state_label (patch->state));
  if (patch->odd_reason != NULL)
    g_string_append_printf (s, " · %s", patch->odd_reason);
  return g_string_free (s, FALSE);
}

static void
update_status (LodeWindow *self)
{
  g_autofree char *text = NULL;

  if (self->doc == NULL)
    return;
  text = summary_text (self);
  gtk_label_set_label (self->status_label, text);
  gtk_label_set_label (self->patch_info, text);
}

static void
on_cursor_moved (LodeCanvas *canvas, double x, double y, LodeWindow *self)
{
  LodeDocument *doc = doc_for_canvas (self, canvas);
  const LodeRaster *raster;
  const LodeMask *mask;
  const LodeClass *c;
  GString *s;
  double mx, my, lon, lat;
  int px, py;

  if (doc == NULL || x < 0 || y < 0)
    {
      update_status (self);
      return;
    }
  raster = lode_document_get_raster (doc);
  mask = shown_mask (self, doc);
  px = (int) floor (x);
  py = (int) floor (y);
  if (px >= raster->width || py >= raster->height)
    return;
  s = g_string_new (NULL);
  g_string_append_printf (s, "%d, %d", px, py);
  lode_raster_pixel_to_map (raster, px + 0.5, py + 0.5, &mx, &my);
  g_string_append_printf (s, " · %.1f %.1f", mx, my);
  if (lode_raster_pixel_to_lonlat (raster, px + 0.5, py + 0.5, &lon, &lat))
    g_string_append_printf (s, " · %.5f° %s %.5f° %s", fabs (lat), lat >= 0 ? _("N") : _("S"),
                            fabs (lon), lon >= 0 ? _("E") : _("W"));
  if (mask->data[(gsize) py * mask->width + px] == LODE_MASK_NODATA)
    g_string_append_printf (s, " · %s", _("no data"));
  else if ((c = lode_class_table_lookup (lode_document_get_classes (doc),
                                         mask->data[(gsize) py * mask->width + px])) != NULL)
    g_string_append_printf (s, " · %s", c->name);
  for (int b = 0; b < raster->n_bands; b++)
    {
      float v = lode_raster_band (raster, b)[(gsize) py * raster->width + px];
      g_string_append_printf (s, "  %s %.4g", raster->band_names[b], v);
    }
  gtk_label_set_label (self->status_label, s->str);
  g_string_free (s, TRUE);
}

/* Tools and palette */

static void
update_brush_label (LodeWindow *self)
{
  LodeCanvas *canvas = active_canvas (self);
  g_autofree char *text = NULL;

  /* Translators: the brush diameter in image pixels */
  text = g_strdup_printf (_("%g px"), 2 * lode_canvas_get_brush_radius (canvas));
  gtk_label_set_label (self->brush_label, text);
}

static void
sync_tools (LodeCanvas *canvas, gpointer data)
{
  LodeWindow *self = data;
  LodeCanvas *from = self->canvas;

  if (canvas == from)
    return;
  lode_canvas_set_brush_radius (canvas, lode_canvas_get_brush_radius (from));
  lode_canvas_set_active_class (canvas, lode_canvas_get_active_class (from));
}

static void
rebuild_palette (LodeWindow *self)
{
  GtkWidget *child;
  LodeClassTable *classes = self->doc ? lode_document_get_classes (self->doc) : NULL;
  int n = 0;

  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self->palette_box))) != NULL)
    gtk_box_remove (self->palette_box, child);
  for (guint i = 0; classes != NULL && i < lode_class_table_size (classes); i++)
    {
      const LodeClass *c = lode_class_table_get (classes, i);
      g_autofree char *tip = NULL;
      g_autofree char *css = NULL;
      GtkWidget *button;

      if (c->id == 0 || n >= 9)
        continue;
      n++;
      button = gtk_toggle_button_new_with_label (c->name);
      gtk_actionable_set_action_name (GTK_ACTIONABLE (button), "win.class");
      gtk_actionable_set_action_target (GTK_ACTIONABLE (button), "i", n);
      /* Translators: a class of the palette and its key */
      tip = g_strdup_printf (_("Paint %s (%d)"), c->name, n);
      gtk_widget_set_tooltip_text (button, tip);
      gtk_widget_add_css_class (button, "lode-class");
      gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (button), c->id == lode_canvas_get_active_class (self->canvas));
      g_object_set_data (G_OBJECT (button), "lode-class-id", GINT_TO_POINTER (c->id));
      {
        GtkWidget *swatch = gtk_drawing_area_new ();
        GtkWidget *box = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
        GtkCssProvider *provider = gtk_css_provider_new ();
        GtkWidget *label = gtk_label_new (c->name);

        css = g_strdup_printf ("* { background: rgba(%d,%d,%d,1); border-radius: 3px; min-width: 12px; min-height: 12px; }",
                               c->rgba[0], c->rgba[1], c->rgba[2]);
        gtk_css_provider_load_from_data (provider, css, -1);
        gtk_style_context_add_provider (gtk_widget_get_style_context (swatch), GTK_STYLE_PROVIDER (provider),
                                        GTK_STYLE_PROVIDER_PRIORITY_APPLICATION);
        g_object_unref (provider);
        gtk_widget_set_valign (swatch, GTK_ALIGN_CENTER);
        gtk_box_append (GTK_BOX (box), swatch);
        gtk_box_append (GTK_BOX (box), label);
        gtk_button_set_child (GTK_BUTTON (button), box);
      }
      gtk_box_append (self->palette_box, button);
    }
  /* One class table per project: the palette serves every patch. */
  self->palette_built = classes != NULL;
}

static void
update_palette_state (LodeWindow *self)
{
  guint8 active = lode_canvas_get_active_class (self->canvas);

  for (GtkWidget *b = gtk_widget_get_first_child (GTK_WIDGET (self->palette_box)); b != NULL;
       b = gtk_widget_get_next_sibling (b))
    gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (b),
                                  GPOINTER_TO_INT (g_object_get_data (G_OBJECT (b), "lode-class-id")) == active &&
                                  g_strcmp0 (self->tool, "eraser") != 0);
}

/* Edits from the canvases */

static void
after_edit (LodeWindow *self, LodeDocument *doc, gboolean ok, GError *error)
{
  if (!ok)
    {
      show_error (self, _("The edit cannot be saved"), error);
      g_error_free (error);
    }
  self->active = doc;
  refresh_masks (self, doc);
  update_actions (self);
  update_status (self);
}

static void
on_stroke (LodeCanvas *canvas, int tool, gpointer xy, int n, double radius, LodeWindow *self)
{
  LodeDocument *doc = doc_for_canvas (self, canvas);
  GError *error = NULL;
  gboolean ok;

  if (doc == NULL)
    return;
  if (tool == LODE_CANVAS_TOOL_ERASER)
    ok = lode_document_erase (doc, xy, n, radius, author (self), &error);
  else
    ok = lode_document_stroke (doc, xy, n, radius, lode_canvas_get_active_class (canvas), author (self), &error);
  after_edit (self, doc, ok, error);
}

static void
on_fill (LodeCanvas *canvas, int x, int y, LodeWindow *self)
{
  LodeDocument *doc = doc_for_canvas (self, canvas);
  GError *error = NULL;
  gboolean ok;

  if (doc == NULL)
    return;
  ok = lode_document_fill (doc, x, y, lode_canvas_get_active_class (canvas), author (self), &error);
  after_edit (self, doc, ok, error);
}

static void
on_polygon (LodeCanvas *canvas, gpointer xy, int n, LodeWindow *self)
{
  LodeDocument *doc = doc_for_canvas (self, canvas);
  GError *error = NULL;
  gboolean ok;

  if (doc == NULL)
    return;
  ok = lode_document_polygon (doc, xy, n, lode_canvas_get_active_class (canvas), author (self), &error);
  after_edit (self, doc, ok, error);
}

static void
on_canvas_state (LodeCanvas *canvas, LodeWindow *self)
{
  const char *ids[] = { "brush", "eraser", "fill", "polygon", "sam2" };
  const char *tool = ids[lode_canvas_get_tool (canvas)];

  if (canvas != self->canvas)
    {
      /* Keep the main canvas the reference of brush and class. */
      if (lode_canvas_get_brush_radius (canvas) != lode_canvas_get_brush_radius (self->canvas))
        lode_canvas_set_brush_radius (self->canvas, lode_canvas_get_brush_radius (canvas));
      if (lode_canvas_get_active_class (canvas) != lode_canvas_get_active_class (self->canvas))
        lode_canvas_set_active_class (self->canvas, lode_canvas_get_active_class (canvas));
      return;
    }
  for_each_canvas (self, sync_tools, self);
  if (g_strcmp0 (tool, self->tool) != 0)
    g_object_set (self, "tool", tool, NULL);
  update_brush_label (self);
  update_palette_state (self);
}

static void
on_canvas_focus (GtkEventControllerFocus *focus, LodeWindow *self)
{
  LodeCanvas *canvas = LODE_CANVAS (gtk_event_controller_get_widget (GTK_EVENT_CONTROLLER (focus)));
  LodeDocument *doc = doc_for_canvas (self, canvas);

  if (doc != NULL)
    {
      self->active = doc;
      update_actions (self);
    }
}

/* SAM2 */

static gint64 doc_id (LodeDocument *doc);
static void update_review_panel (LodeWindow *self);

static gboolean
sam2_active (LodeWindow *self)
{
  return g_strcmp0 (self->tool, "sam2") == 0;
}

static LodeApplyMode
sam2_apply_mode (LodeWindow *self)
{
  if (g_strcmp0 (self->sam2_mode, "add") == 0)
    return LODE_APPLY_ADD;
  if (g_strcmp0 (self->sam2_mode, "subtract") == 0)
    return LODE_APPLY_SUBTRACT;
  return LODE_APPLY_REPLACE;
}

/* The model as Preferences say. */
static void
sam2_read_settings (LodeWindow *self)
{
  g_autofree char *checkpoint = g_settings_get_string (self->settings, "sam2-checkpoint");
  int size = g_settings_get_int (self->settings, "sam2-input-size") == 512 ? 512 : 1024;
  guint64 cache = (guint64) MAX (g_settings_get_int (self->settings, "sam2-cache-mb"), 1) << 20;

  lode_sam2_tool_set_model (self->sam2, checkpoint, size, cache);
  lode_sam2_tool_set_prefetch (self->sam2, g_settings_get_boolean (self->settings, "sam2-prefetch"));
}

/* The tool follows the shown patch and composite while chosen; without a
 * checkpoint it says where to choose one. */
static void
sam2_follow_patch (LodeWindow *self)
{
  const char *checkpoint;
  g_autofree char *image = NULL;
  const LodePatch *patch;
  const LodeRaster *raster;

  if (self->sam2 == NULL || self->sam2_bar == NULL)
    return;
  checkpoint = lode_sam2_tool_get_checkpoint (self->sam2);

  gtk_revealer_set_reveal_child (self->sam2_bar, sam2_active (self) && checkpoint != NULL);
  gtk_revealer_set_reveal_child (self->sam2_message, sam2_active (self) && checkpoint == NULL);
  if (!sam2_active (self) || checkpoint == NULL)
    return;
  if (self->doc == NULL || self->store == NULL)
    {
      lode_sam2_tool_set_patch (self->sam2, NULL, 0, NULL, 0, 0, NULL);
      return;
    }
  patch = lode_document_get_patch (self->doc);
  raster = lode_document_get_raster (self->doc);
  image = lode_store_resolve_path (self->store, patch->image_path);
  lode_sam2_tool_set_patch (self->sam2, lode_store_get_path (self->store), patch->id, image,
                            raster->width, raster->height, &self->spec);

  /* The next patch of the list (the browser holds it), for the tool to
   * encode ahead. */
  {
    gint64 next = lode_patch_browser_get_neighbour (self->browser, 1);
    LodePatchItem *item = next != 0 ? lode_patch_browser_find (self->browser, next) : NULL;
    g_autofree char *upcoming_image =
      item ? lode_store_resolve_path (self->store, lode_patch_item_get_patch (item)->image_path) : NULL;

    lode_sam2_tool_set_upcoming (self->sam2, item ? next : 0, upcoming_image);
  }
}

/* The candidate as the canvas previews it: the active class's colour,
 * translucent inside and opaque on the outline. */
static guint8 *
sam2_render_preview (LodeWindow *self, const LodeSam2Prediction *p, int index)
{
  gsize n = (gsize) p->width * p->height;
  g_autofree guint8 *inside = g_malloc (n);
  guint8 *rgba = g_malloc0 (n * 4);
  const LodeClass *c = self->doc ? lode_class_table_lookup (lode_document_get_classes (self->doc),
                                                            lode_canvas_get_active_class (self->canvas)) : NULL;
  guint8 colour[3] = { 255, 255, 255 };

  if (c != NULL)
    memcpy (colour, c->rgba, 3);
  lode_sam2_prediction_mask_u8 (p, index, inside);
  for (int y = 0; y < p->height; y++)
    for (int x = 0; x < p->width; x++)
      {
        gsize i = (gsize) y * p->width + x;
        gboolean edge;

        if (!inside[i])
          continue;
        edge = x == 0 || y == 0 || x == p->width - 1 || y == p->height - 1 || !inside[i - 1] ||
               !inside[i + 1] || !inside[i - p->width] || !inside[i + p->width];
        /* The outline a lighter tint of the class colour, fully opaque. */
        for (int k = 0; k < 3; k++)
          rgba[4 * i + k] = edge ? (guint8) ((colour[k] + 2 * 255) / 3) : colour[k];
        rgba[4 * i + 3] = edge ? 255 : 160;
      }
  return rgba;
}

static void
sam2_show_on_canvas (LodeCanvas *canvas, gpointer data)
{
  LodeWindow *self = data;
  const LodeSam2Prediction *p = lode_sam2_tool_get_prediction (self->sam2);
  gboolean here = sam2_active (self) && self->doc != NULL && doc_for_canvas (self, canvas) == self->doc &&
                  lode_sam2_tool_get_patch_id (self->sam2) == doc_id (self->doc);
  g_autofree guint8 *preview = NULL;
  const float *points = NULL;
  const int *labels = NULL;
  float box[4];
  int n = 0;
  gboolean has_box = FALSE;

  if (here)
    {
      n = lode_sam2_tool_get_points (self->sam2, &points, &labels);
      has_box = lode_sam2_tool_get_box (self->sam2, box);
      if (p != NULL && p->width == lode_canvas_get_image_width (canvas) &&
          p->height == lode_canvas_get_image_height (canvas))
        preview = sam2_render_preview (self, p, lode_sam2_tool_get_chosen (self->sam2));
    }
  lode_canvas_set_prompts (canvas, points, labels, n, has_box ? box : NULL);
  lode_canvas_set_preview (canvas, preview);
}

static void
sam2_update_candidates (LodeWindow *self)
{
  const LodeSam2Prediction *p = lode_sam2_tool_get_prediction (self->sam2);
  int chosen = lode_sam2_tool_get_chosen (self->sam2);
  int i = 0;

  self->updating_candidates = TRUE;
  for (GtkWidget *b = gtk_widget_get_first_child (GTK_WIDGET (self->sam2_candidates)); b != NULL;
       b = gtk_widget_get_next_sibling (b), i++)
    {
      gboolean shown = p != NULL && i < p->n_masks;

      gtk_widget_set_visible (b, shown);
      if (!shown)
        continue;
      {
        /* Translators: a SAM2 candidate mask's number and its predicted IoU score */
        g_autofree char *label = g_strdup_printf (_("%d · IoU %.2f"), i + 1, p->iou[i]);
        gtk_button_set_label (GTK_BUTTON (b), label);
      }
      gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (b), i == chosen);
    }
  self->updating_candidates = FALSE;
}

static void
sam2_update_bar (LodeWindow *self)
{
  LodeSam2ToolState state = lode_sam2_tool_get_state (self->sam2);
  gboolean busy = lode_sam2_tool_is_busy (self->sam2);
  gboolean has_prompts = lode_sam2_tool_has_prompts (self->sam2);
  g_autofree char *text = NULL;

  switch (state)
    {
    case LODE_SAM2_TOOL_LOADING:
      text = g_strdup (_("Loading the SAM2 model…"));
      break;
    case LODE_SAM2_TOOL_ENCODING:
      text = g_strdup (_("Encoding…"));
      break;
    case LODE_SAM2_TOOL_FAILED:
      /* Translators: %s says why SAM2 cannot be used */
      text = g_strdup_printf (_("SAM2 cannot be used: %s"), lode_sam2_tool_get_error (self->sam2));
      break;
    case LODE_SAM2_TOOL_READY:
      if (!has_prompts)
        text = g_strdup (_("Click an object; right click excludes, drag draws a box"));
      else if (lode_sam2_tool_get_prediction (self->sam2) == NULL)
        text = g_strdup (_("Segmenting…"));
      else
        text = g_strdup (_("Tab chooses, Enter applies"));
      break;
    case LODE_SAM2_TOOL_IDLE:
    default:
      text = g_strdup ("");
    }
  gtk_label_set_label (self->sam2_label, text);
  /* Only when it changes: GTK 4.8 can remove a tooltip timeout twice (a
   * critical, fatal in the tests) when the text is set again while the
   * pointer rests on the widget, and this runs at every step of the tool. */
  {
    const char *tip = gtk_widget_get_tooltip_text (GTK_WIDGET (self->sam2_label));

    if (g_strcmp0 (tip, text) != 0)
      gtk_widget_set_tooltip_text (GTK_WIDGET (self->sam2_label), text);
  }
  gtk_spinner_set_spinning (self->sam2_spinner, busy);
  gtk_widget_set_visible (GTK_WIDGET (self->sam2_spinner), busy);
}

static void
sam2_update_actions (LodeWindow *self)
{
  gboolean on = sam2_active (self);
  gboolean has_prediction = on && lode_sam2_tool_get_prediction (self->sam2) != NULL;

  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.sam2-apply", has_prediction && self->doc != NULL);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.sam2-clear", on && lode_sam2_tool_has_prompts (self->sam2));
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.sam2-next", has_prediction);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.sam2-previous", has_prediction);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.sam2-candidate", has_prediction);
}

static void
sam2_refresh (LodeWindow *self)
{
  /* Nothing to show on a window being disposed. */
  if (self->sam2 == NULL || self->sam2_spinner == NULL)
    return;
  for_each_canvas (self, sam2_show_on_canvas, self);
  sam2_update_candidates (self);
  sam2_update_bar (self);
  sam2_update_actions (self);
}

static void
on_sam2_changed (LodeSam2Tool *tool, LodeWindow *self)
{
  sam2_refresh (self);
}

static void
on_sam2_error (LodeSam2Tool *tool, GError *error, LodeWindow *self)
{
  g_autofree char *primary = NULL;

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  /* Translators: %s is the path of the SAM2 checkpoint file */
  primary = g_strdup_printf (_("SAM2 cannot segment this patch with the checkpoint “%s”"),
                             lode_sam2_tool_get_checkpoint (tool));
  if (gtk_widget_get_mapped (GTK_WIDGET (self)))
    show_error (self, primary, error);
  else
    g_warning ("%s: %s", primary, error->message);
}

static void
on_sam2_settings_changed (GSettings *settings, const char *key, LodeWindow *self)
{
  if (self->sam2 == NULL)
    return;
  sam2_read_settings (self);
  sam2_follow_patch (self);
  sam2_refresh (self);
}

static void
on_sam2_message_close (GtkButton *button, LodeWindow *self)
{
  gtk_revealer_set_reveal_child (self->sam2_message, FALSE);
}

static void
on_sam2_point (LodeCanvas *canvas, double x, double y, gboolean positive, LodeWindow *self)
{
  if (doc_for_canvas (self, canvas) != self->doc)
    return;
  lode_sam2_tool_add_point (self->sam2, x, y, positive);
}

static void
on_sam2_box (LodeCanvas *canvas, double x0, double y0, double x1, double y1, LodeWindow *self)
{
  if (doc_for_canvas (self, canvas) != self->doc)
    return;
  lode_sam2_tool_set_box (self->sam2, x0, y0, x1, y1);
}

static void
on_candidate_toggled (GtkToggleButton *button, LodeWindow *self)
{
  if (self->updating_candidates || !gtk_toggle_button_get_active (button))
    return;
  lode_sam2_tool_choose (self->sam2, GPOINTER_TO_INT (g_object_get_data (G_OBJECT (button), "lode-candidate")));
}

static void
sam2_build_candidates (LodeWindow *self)
{
  GtkToggleButton *first = NULL;

  for (int i = 0; i < 3; i++)
    {
      GtkWidget *b = gtk_toggle_button_new ();
      /* Translators: tooltip of a SAM2 candidate button; %d is its key */
      g_autofree char *tip = g_strdup_printf (_("Candidate %d (key %d); IoU is the model’s own estimate of its quality"),
                                              i + 1, i + 1);

      gtk_widget_set_tooltip_text (b, tip);
      gtk_widget_add_css_class (b, "numeric");
      g_object_set_data (G_OBJECT (b), "lode-candidate", GINT_TO_POINTER (i));
      if (first != NULL)
        gtk_toggle_button_set_group (GTK_TOGGLE_BUTTON (b), first);
      else
        first = GTK_TOGGLE_BUTTON (b);
      gtk_widget_set_visible (b, FALSE);
      g_signal_connect (b, "toggled", G_CALLBACK (on_candidate_toggled), self);
      gtk_box_append (self->sam2_candidates, b);
    }
}

static void
action_sam2 (GtkWidget *widget, const char *action_name, GVariant *param)
{
  LodeWindow *self = LODE_WINDOW (widget);
  const LodeSam2Prediction *p = lode_sam2_tool_get_prediction (self->sam2);
  int chosen = lode_sam2_tool_get_chosen (self->sam2);

  if (g_str_equal (action_name, "win.sam2-clear"))
    lode_sam2_tool_clear (self->sam2);
  else if (p == NULL)
    return;
  else if (g_str_equal (action_name, "win.sam2-next"))
    lode_sam2_tool_choose (self->sam2, (chosen + 1) % p->n_masks);
  else if (g_str_equal (action_name, "win.sam2-previous"))
    lode_sam2_tool_choose (self->sam2, (chosen + p->n_masks - 1) % p->n_masks);
  else if (g_str_equal (action_name, "win.sam2-candidate"))
    lode_sam2_tool_choose (self->sam2, g_variant_get_int32 (param) - 1);
  else if (g_str_equal (action_name, "win.sam2-apply") && self->doc != NULL)
    {
      g_autofree guint8 *inside = g_malloc ((gsize) p->width * p->height);
      const LodeRaster *raster = lode_document_get_raster (self->doc);
      LodeDocument *doc = self->doc;
      GError *error = NULL;
      gboolean ok;

      if (p->width != raster->width || p->height != raster->height)
        return;
      lode_sam2_prediction_mask_u8 (p, chosen, inside);
      ok = lode_document_apply (doc, inside, sam2_apply_mode (self), lode_canvas_get_active_class (self->canvas),
                                LODE_REVISION_SAM2, author (self), &error);
      if (ok)
        lode_sam2_tool_clear (self->sam2);
      after_edit (self, doc, ok, error);
      update_review_panel (self);
    }
}

/* Number keys: with the SAM2 tool and candidates shown, 1 to 3 choose a
 * candidate; otherwise they choose the class. */
static void
action_number (GtkWidget *widget, const char *action_name, GVariant *param)
{
  LodeWindow *self = LODE_WINDOW (widget);
  const LodeSam2Prediction *p = lode_sam2_tool_get_prediction (self->sam2);
  int n = g_variant_get_int32 (param);

  if (sam2_active (self) && p != NULL && n >= 1 && n <= p->n_masks)
    lode_sam2_tool_choose (self->sam2, n - 1);
  else
    gtk_widget_activate_action_variant (widget, "win.class", param);
}

static void
connect_canvas (LodeCanvas *canvas, gpointer data)
{
  LodeWindow *self = data;
  GtkEventController *focus = gtk_event_controller_focus_new ();

  g_signal_connect (canvas, "stroke", G_CALLBACK (on_stroke), self);
  g_signal_connect (canvas, "fill", G_CALLBACK (on_fill), self);
  g_signal_connect (canvas, "polygon", G_CALLBACK (on_polygon), self);
  g_signal_connect (canvas, "cursor-moved", G_CALLBACK (on_cursor_moved), self);
  g_signal_connect (canvas, "state-changed", G_CALLBACK (on_canvas_state), self);
  g_signal_connect (canvas, "sam2-point", G_CALLBACK (on_sam2_point), self);
  g_signal_connect (canvas, "sam2-box", G_CALLBACK (on_sam2_box), self);
  g_signal_connect (focus, "enter", G_CALLBACK (on_canvas_focus), self);
  gtk_widget_add_controller (GTK_WIDGET (canvas), focus);
  {
    /* Tab and Shift+Tab go through the candidates while there are some,
     * and move the focus as usual otherwise (the actions are disabled). */
    GtkEventController *keys = gtk_shortcut_controller_new ();
    const struct { guint key; GdkModifierType mods; const char *action; } tabs[] = {
      { GDK_KEY_Tab, 0, "win.sam2-next" },
      { GDK_KEY_ISO_Left_Tab, GDK_SHIFT_MASK, "win.sam2-previous" },
      { GDK_KEY_Tab, GDK_SHIFT_MASK, "win.sam2-previous" },
    };

    for (guint i = 0; i < G_N_ELEMENTS (tabs); i++)
      gtk_shortcut_controller_add_shortcut (GTK_SHORTCUT_CONTROLLER (keys),
                                            gtk_shortcut_new (gtk_keyval_trigger_new (tabs[i].key, tabs[i].mods),
                                                              gtk_named_action_new (tabs[i].action)));
    gtk_widget_add_controller (GTK_WIDGET (canvas), keys);
  }
}

/* Review */

static void fill_review_panel (LodeWindow *self);

/* The review panel's store queries (queue, revisions, reviews) run when the
 * panel is on screen; a patch switch with the panel hidden only marks it. */
static void
update_review_panel (LodeWindow *self)
{
  if (gtk_widget_get_visible (self->inspector) &&
      g_strcmp0 (gtk_stack_get_visible_child_name (self->inspector_stack), "review") == 0)
    fill_review_panel (self);
  else
    self->review_dirty = TRUE;
}

static void
on_review_panel_shown (GObject *object, GParamSpec *pspec, LodeWindow *self)
{
  if (self->review_dirty)
    update_review_panel (self);
}

static void
fill_review_panel (LodeWindow *self)
{
  g_autoptr(GPtrArray) reviews = NULL;
  g_autoptr(GPtrArray) revisions = NULL;
  g_autoptr(GString) text = g_string_new (NULL);
  const LodePatch *patch;
  guint counts[LODE_REVIEW_N_STATES] = { 0 };
  g_autofree char *queue = NULL;
  g_autofree char *state = NULL;
  GtkWidget *row;

  self->review_dirty = FALSE;
  if (self->store != NULL && lode_store_count_states (self->store, counts, NULL))
    {
      /* Translators: the review queue's length */
      queue = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%u patch waits for review",
                                            "%u patches wait for review", counts[LODE_REVIEW_TO_REVIEW]),
                               counts[LODE_REVIEW_TO_REVIEW]);
      gtk_label_set_label (self->queue_label, queue);
    }
  while ((row = gtk_widget_get_first_child (GTK_WIDGET (self->revision_list))) != NULL)
    gtk_list_box_remove (self->revision_list, row);
  if (self->doc == NULL)
    return;
  patch = lode_document_get_patch (self->doc);
  state = g_strdup_printf ("%s · %s", lode_patch_item_dup_title (lode_patch_browser_find (self->browser, patch->id)),
                           lode_review_state_label (patch->state));
  gtk_label_set_label (self->review_state_label, state);

  revisions = lode_store_list_revisions (self->store, patch->id, NULL);
  for (guint i = 0; revisions != NULL && i < revisions->len; i++)
    {
      const LodeRevisionInfo *r = g_ptr_array_index (revisions, revisions->len - 1 - i);
      g_autoptr(GDateTime) when = g_date_time_new_from_unix_local (r->created_us / G_USEC_PER_SEC);
      g_autofree char *date = g_date_time_format (when, "%Y-%m-%d %H:%M:%S");
      g_autofree char *label = g_strdup_printf ("#%" G_GINT64_FORMAT " · %s · %s%s%s\n%s",
                                                r->id, lode_revision_source_id (r->source),
                                                r->author ? r->author : "", r->note ? " · " : "",
                                                r->note ? r->note : "", date);
      GtkWidget *l = gtk_label_new (label);

      gtk_label_set_xalign (GTK_LABEL (l), 0);
      gtk_widget_add_css_class (l, "caption");
      gtk_widget_set_margin_start (l, 8);
      gtk_widget_set_margin_end (l, 8);
      gtk_widget_set_margin_top (l, 4);
      gtk_widget_set_margin_bottom (l, 4);
      gtk_list_box_append (self->revision_list, l);
      row = gtk_widget_get_parent (l);
      g_object_set_data (G_OBJECT (row), "lode-revision", GSIZE_TO_POINTER ((gsize) r->id));
      g_object_set_data (G_OBJECT (row), "lode-parent", GSIZE_TO_POINTER ((gsize) r->parent_id));
    }

  reviews = lode_store_list_reviews (self->store, patch->id, NULL);
  for (guint i = 0; reviews != NULL && i < reviews->len; i++)
    {
      const LodeReview *r = g_ptr_array_index (reviews, i);
      g_string_append_printf (text, "%s%s%s%s%s%s", i ? "\n" : "", lode_review_state_label (r->state),
                              r->reviewer && r->reviewer[0] ? " · " : "", r->reviewer ? r->reviewer : "",
                              r->comment && r->comment[0] ? " · " : "", r->comment ? r->comment : "");
    }
  gtk_label_set_label (self->reviews_label, text->len ? text->str : _("Not reviewed yet"));
}

static LodeMask *
revision_mask (LodeWindow *self, gint64 patch_id, gint64 revision_id)
{
  g_autoptr(GBytes) blob = NULL;

  if (revision_id == 0)
    return NULL;
  blob = lode_store_get_mask (self->store, patch_id, revision_id, NULL, NULL);
  return blob ? lode_mask_deserialize (blob, NULL) : NULL;
}

/* A revision selected in the history: what it changed, in yellow. */
static void
on_revision_selected (GtkListBox *list, GtkListBoxRow *row, LodeWindow *self)
{
  g_autoptr(LodeMask) after = NULL;
  g_autoptr(LodeMask) before = NULL;
  g_autofree guint8 *rgba = NULL;
  gint64 patch_id;

  if (self->doc == NULL)
    return;
  if (row == NULL)
    {
      lode_canvas_set_highlight (self->canvas, NULL);
      return;
    }
  patch_id = lode_document_get_patch (self->doc)->id;
  after = revision_mask (self, patch_id, GPOINTER_TO_SIZE (g_object_get_data (G_OBJECT (row), "lode-revision")));
  before = revision_mask (self, patch_id, GPOINTER_TO_SIZE (g_object_get_data (G_OBJECT (row), "lode-parent")));
  if (after == NULL)
    return;
  if (before == NULL)
    before = lode_mask_new (after->width, after->height);
  if (before->width != after->width || before->height != after->height)
    return;
  rgba = g_malloc0 ((gsize) after->width * after->height * 4);
  for (gsize i = 0; i < (gsize) after->width * after->height; i++)
    if (after->data[i] != before->data[i])
      {
        rgba[4 * i + 0] = 255;
        rgba[4 * i + 1] = 230;
        rgba[4 * i + 2] = 0;
        rgba[4 * i + 3] = 255;
      }
  lode_canvas_set_highlight (self->canvas, rgba);
  gtk_label_set_label (self->status_label, _("Yellow: the pixels the selected revision changed"));
}

static void
set_review (LodeWindow *self, LodeReviewState state, gboolean need_comment)
{
  g_autoptr(GError) error = NULL;
  const char *comment = gtk_editable_get_text (GTK_EDITABLE (self->comment_entry));
  gint64 id;
  gboolean queue = g_strcmp0 (self->view, "review") == 0;

  if (self->doc == NULL)
    return;
  if (need_comment && (comment == NULL || comment[0] == '\0'))
    {
      gtk_stack_set_visible_child_name (self->inspector_stack, "review");
      gtk_widget_grab_focus (GTK_WIDGET (self->comment_entry));
      gtk_widget_add_css_class (GTK_WIDGET (self->comment_entry), "error");
      gtk_label_set_label (self->status_label, _("Say why the patch is rejected in the comment"));
      return;
    }
  id = lode_document_get_patch (self->doc)->id;
  if (!lode_store_set_review (self->store, id, state, author (self), comment, &error))
    {
      show_error (self, _("The review cannot be saved"), error);
      return;
    }
  ((LodePatch *) lode_document_get_patch (self->doc))->state = state;
  gtk_widget_remove_css_class (GTK_WIDGET (self->comment_entry), "error");
  gtk_editable_set_text (GTK_EDITABLE (self->comment_entry), "");
  lode_patch_browser_set_state (self->browser, id, state);
  /* In the review queue the patch has left the list: go on with the next. */
  if (queue && lode_patch_browser_get_n_shown (self->browser) > 0 &&
      !lode_patch_browser_select_id (self->browser, id))
    lode_patch_browser_select_position (self->browser, 0);
  update_review_panel (self);
  update_status (self);
  update_actions (self);
}

static void
action_review (GtkWidget *widget, const char *action_name, GVariant *param)
{
  LodeWindow *self = LODE_WINDOW (widget);

  if (g_str_equal (action_name, "win.accept"))
    set_review (self, LODE_REVIEW_ACCEPTED, FALSE);
  else if (g_str_equal (action_name, "win.reject"))
    set_review (self, LODE_REVIEW_REJECTED, TRUE);
  else if (g_str_equal (action_name, "win.send-back"))
    set_review (self, LODE_REVIEW_IN_PROGRESS, FALSE);
  else
    set_review (self, LODE_REVIEW_TO_REVIEW, FALSE);
}

/* Layer controls */

/* The bands the composite shows, resolved for the open patch: the chosen
 * ones for custom bands, the preset's for the others (B4 B3 B2 for true
 * colour). A channel that is not one band (the radar ratio, the indices)
 * shows none. */
static void
resolve_shown_bands (LodeWindow *self)
{
  LodeCompositeSpec spec = self->spec;
  int n_direct = 3;

  for (int i = 0; i < 3; i++)
    self->shown_bands[i] = -1;
  if (self->doc == NULL || !lode_composite_resolve (&spec, lode_document_get_raster (self->doc), NULL))
    return;
  if (spec.preset == LODE_COMPOSITE_SAR)
    n_direct = 2;
  else if (lode_composite_preset_n_channels (spec.preset) != 3)
    n_direct = 0;
  for (int i = 0; i < n_direct; i++)
    self->shown_bands[i] = spec.bands[i] < self->n_band_names ? spec.bands[i] : -1;
}

static void
update_band_dropdowns (LodeWindow *self)
{
  GtkDropDown *dropdowns[3] = { self->band_r, self->band_g, self->band_b };
  gboolean was = self->updating_controls;

  resolve_shown_bands (self);
  self->updating_controls = TRUE;
  for (int i = 0; i < 3; i++)
    if (gtk_drop_down_get_selected (dropdowns[i]) != (guint) self->shown_bands[i])
      gtk_drop_down_set_selected (dropdowns[i], self->shown_bands[i] >= 0 ? (guint) self->shown_bands[i]
                                                                            : GTK_INVALID_LIST_POSITION);
  self->updating_controls = was;
}

static void
update_layer_controls (LodeWindow *self)
{
  gboolean custom = self->spec.preset == LODE_COMPOSITE_CUSTOM;
  gboolean fixed = self->spec.stretch == LODE_STRETCH_FIXED;
  gboolean pct = self->spec.stretch == LODE_STRETCH_PERCENTILE;

  self->updating_controls = TRUE;
  gtk_drop_down_set_selected (self->composite_dropdown, self->spec.preset);
  gtk_drop_down_set_selected (self->stretch_dropdown, self->spec.stretch);
  gtk_widget_set_sensitive (GTK_WIDGET (self->band_r), custom);
  gtk_widget_set_sensitive (GTK_WIDGET (self->band_g), custom);
  gtk_widget_set_sensitive (GTK_WIDGET (self->band_b), custom);
  update_band_dropdowns (self);
  gtk_widget_set_sensitive (GTK_WIDGET (self->low_spin), pct || fixed);
  gtk_widget_set_sensitive (GTK_WIDGET (self->high_spin), pct || fixed);
  gtk_spin_button_set_value (self->low_spin, fixed ? self->spec.fixed_min[0] : self->spec.low_pct);
  gtk_spin_button_set_value (self->high_spin, fixed ? self->spec.fixed_max[0] : self->spec.high_pct);
  gtk_range_set_value (GTK_RANGE (self->gamma_scale), self->spec.gamma);
  self->updating_controls = FALSE;
}

static void
fill_band_names (LodeWindow *self)
{
  const LodeRaster *raster = lode_document_get_raster (self->doc);
  g_autoptr(GtkStringList) names = NULL;

  if (raster->n_bands == self->n_band_names)
    return;
  self->n_band_names = raster->n_bands;
  names = gtk_string_list_new ((const char * const *) raster->band_names);
  self->updating_controls = TRUE;
  gtk_drop_down_set_model (self->band_r, G_LIST_MODEL (names));
  gtk_drop_down_set_model (self->band_g, G_LIST_MODEL (names));
  gtk_drop_down_set_model (self->band_b, G_LIST_MODEL (names));
  self->updating_controls = FALSE;
  if (self->spec.preset == LODE_COMPOSITE_CUSTOM)
    for (int i = 0; i < 3; i++)
      self->spec.bands[i] = MIN (self->spec.bands[i], raster->n_bands - 1);
}

static void
on_layer_changed (GObject *object, GParamSpec *pspec, LodeWindow *self)
{
  guint preset = gtk_drop_down_get_selected (self->composite_dropdown);
  guint stretch = gtk_drop_down_get_selected (self->stretch_dropdown);
  LodeCompositeSpec old = self->spec;

  if (self->updating_controls || preset >= LODE_COMPOSITE_N_PRESETS)
    return;
  if (preset != (guint) self->spec.preset)
    {
      lode_composite_spec_init (&self->spec, preset);
      self->spec.stretch = old.stretch;
      self->spec.gamma = old.gamma;
      /* Custom bands start from the bands the previous view showed. */
      if (preset == LODE_COMPOSITE_CUSTOM && self->doc != NULL)
        for (int i = 0; i < 3; i++)
          self->spec.bands[i] = (self->shown_bands[i] >= 0 && self->shown_bands[i] < self->n_band_names)
                                  ? self->shown_bands[i] : MIN (i, self->n_band_names - 1);
    }
  else if (preset == LODE_COMPOSITE_CUSTOM)
    {
      self->spec.bands[0] = gtk_drop_down_get_selected (self->band_r);
      self->spec.bands[1] = gtk_drop_down_get_selected (self->band_g);
      self->spec.bands[2] = gtk_drop_down_get_selected (self->band_b);
    }
  if (stretch <= LODE_STRETCH_FIXED && stretch != (guint) self->spec.stretch)
    self->spec.stretch = stretch;
  else if (self->spec.stretch == LODE_STRETCH_PERCENTILE)
    {
      self->spec.low_pct = CLAMP (gtk_spin_button_get_value (self->low_spin), 0, 100);
      self->spec.high_pct = CLAMP (gtk_spin_button_get_value (self->high_spin), 0, 100);
    }
  else if (self->spec.stretch == LODE_STRETCH_FIXED)
    for (int c = 0; c < 3; c++)
      {
        self->spec.fixed_min[c] = gtk_spin_button_get_value (self->low_spin);
        self->spec.fixed_max[c] = gtk_spin_button_get_value (self->high_spin);
      }
  self->spec.gamma = gtk_range_get_value (GTK_RANGE (self->gamma_scale));
  update_layer_controls (self);
  rerender (self);
  sam2_follow_patch (self);
}

static void
on_opacity_changed (GtkRange *range, LodeWindow *self)
{
  double v = gtk_range_get_value (range);
  LodeCanvas *canvases[3] = { self->canvas, lode_compare_view_get_canvas (self->compare_view, 0),
                              lode_compare_view_get_canvas (self->compare_view, 1) };

  for (int i = 0; i < 3; i++)
    lode_canvas_set_mask_opacity (canvases[i], v);
}

/* Patches */

#define DOC_CACHE_SIZE 6

static gint64
doc_id (LodeDocument *doc)
{
  return doc ? lode_document_get_patch (doc)->id : 0;
}

static gboolean
holds_doc (LodeWindow *self, gint64 id)
{
  if (doc_id (self->doc) == id || doc_id (self->pair) == id)
    return TRUE;
  for (guint i = 0; i < self->doc_cache->len; i++)
    if (doc_id (g_ptr_array_index (self->doc_cache, i)) == id)
      return TRUE;
  return FALSE;
}

/* The patch's document, from the cache when it was opened before. */
static LodeDocument *
take_doc (LodeWindow *self, gint64 id, GError **error)
{
  for (guint i = 0; i < self->doc_cache->len; i++)
    if (doc_id (g_ptr_array_index (self->doc_cache, i)) == id)
      return g_ptr_array_steal_index (self->doc_cache, i);
  return lode_document_open (self->store, id, error);
}

/* Keeps a document no longer shown; the oldest go beyond the cache size. */
static void
keep_doc (LodeWindow *self, LodeDocument *doc)
{
  if (doc == NULL)
    return;
  g_ptr_array_add (self->doc_cache, doc);
  while (self->doc_cache->len > DOC_CACHE_SIZE)
    g_ptr_array_remove_index (self->doc_cache, 0);
}

static void
clear_docs (LodeWindow *self)
{
  g_clear_handle_id (&self->prefetch_id, g_source_remove);
  g_clear_pointer (&self->pair, lode_document_free);
  g_clear_pointer (&self->doc, lode_document_free);
  self->active = NULL;
  g_ptr_array_set_size (self->doc_cache, 0);
}

/* In idle time, one patch per call: the next and previous patches of the
 * list, and the other year of the shown tile. */
static gboolean
prefetch (gpointer data)
{
  LodeWindow *self = data;
  gint64 candidates[3] = { 0 };

  if (self->store == NULL || self->doc == NULL)
    {
      self->prefetch_id = 0;
      return G_SOURCE_REMOVE;
    }
  candidates[0] = lode_patch_browser_get_neighbour (self->browser, 1);
  candidates[1] = lode_patch_browser_get_neighbour (self->browser, -1);
  if (self->pair == NULL && g_strcmp0 (self->view, "compare") == 0)
    candidates[2] = lode_store_find_pair (self->store, doc_id (self->doc), NULL);
  for (guint i = 0; i < G_N_ELEMENTS (candidates); i++)
    if (candidates[i] != 0 && !holds_doc (self, candidates[i]))
      {
        /* A patch that cannot be opened is reported when it is shown. */
        keep_doc (self, lode_document_open (self->store, candidates[i], NULL));
        if (holds_doc (self, candidates[i]))
          return G_SOURCE_CONTINUE;
      }
  self->prefetch_id = 0;
  return G_SOURCE_REMOVE;
}

static void
schedule_prefetch (LodeWindow *self)
{
  if (self->prefetch_id == 0)
    self->prefetch_id = g_idle_add_full (G_PRIORITY_LOW, prefetch, self, NULL);
}

static gboolean
open_pair (LodeWindow *self, GError **error)
{
  gint64 pair_id;

  keep_doc (self, g_steal_pointer (&self->pair));
  pair_id = lode_store_find_pair (self->store, doc_id (self->doc), error);
  if (pair_id == 0)
    return error == NULL || *error == NULL;
  self->pair = take_doc (self, pair_id, error);
  return self->pair != NULL;
}

static void
update_view (LodeWindow *self)
{
  g_autoptr(GError) error = NULL;
  gboolean compare = g_strcmp0 (self->view, "compare") == 0;

  if (self->doc == NULL)
    {
      gtk_stack_set_visible_child_name (self->canvas_stack, "empty");
      return;
    }
  if (compare && self->pair == NULL && !open_pair (self, &error))
    show_error (self, _("The other year cannot be opened"), error);
  if (compare && self->pair != NULL)
    {
      g_autofree char *left = lode_patch_item_dup_title (lode_patch_browser_find (self->browser,
                                                             lode_document_get_patch (earlier_doc (self))->id));
      g_autofree char *right = lode_patch_item_dup_title (lode_patch_browser_find (self->browser,
                                                              lode_document_get_patch (later_doc (self))->id));
      lode_compare_view_set_titles (self->compare_view, left, right);
      gtk_stack_set_visible_child_name (self->canvas_stack, "compare");
    }
  else
    gtk_stack_set_visible_child_name (self->canvas_stack, compare ? "no-pair" : "canvas");
  rerender (self);
  if (compare && self->pair != NULL)
    lode_canvas_zoom_fit (lode_compare_view_get_canvas (self->compare_view, 0));
}

/* The first frame painted after a switch: the new patch is on screen. */
static void
on_before_paint (GdkFrameClock *clock, LodeWindow *self)
{
  self->paint_start_us = g_get_monotonic_time ();
}

static void
on_after_paint (GdkFrameClock *clock, LodeWindow *self)
{
  gint64 now = g_get_monotonic_time ();

  if (self->switch_start_us == 0)
    return;
  self->last_timing.paint_ms = (now - MAX (self->paint_start_us, self->switch_start_us)) / 1000.0;
  self->last_timing.shown_ms = (now - self->switch_start_us) / 1000.0;
  self->last_timing.frames = (guint) (gdk_frame_clock_get_frame_counter (clock) - self->switch_frame);
  self->switch_start_us = 0;
}

static void
watch_frames (LodeWindow *self, gint64 start)
{
  GdkFrameClock *clock = gtk_widget_get_frame_clock (GTK_WIDGET (self));

  if (clock == NULL)
    return;
  if (clock != self->frame_clock)
    {
      g_signal_connect_object (clock, "before-paint", G_CALLBACK (on_before_paint), self, 0);
      g_signal_connect_object (clock, "after-paint", G_CALLBACK (on_after_paint), self, 0);
      self->frame_clock = clock;
    }
  self->switch_start_us = start;
  self->switch_frame = gdk_frame_clock_get_frame_counter (clock);
  memset (&self->last_timing, 0, sizeof self->last_timing);
  self->last_timing.sync_ms = self->last_switch_us / 1000.0;
}

static void
show_patch (LodeWindow *self, gint64 patch_id)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeDocument) doc = NULL;
  g_autofree char *title = NULL;
  gint64 start = g_get_monotonic_time ();

  /* The other year, already open in the compare view, is taken as it is. */
  if (doc_id (self->pair) == patch_id)
    doc = g_steal_pointer (&self->pair);
  else
    doc = take_doc (self, patch_id, &error);
  if (doc == NULL)
    {
      gtk_label_set_label (self->status_label, error->message);
      show_error (self, _("The patch cannot be opened"), error);
      return;
    }
  keep_doc (self, g_steal_pointer (&self->pair));
  keep_doc (self, g_steal_pointer (&self->doc));
  self->doc = g_steal_pointer (&doc);
  self->active = self->doc;
  fill_band_names (self);
  update_band_dropdowns (self);
  gtk_list_box_unselect_all (self->revision_list);
  lode_canvas_set_highlight (self->canvas, NULL);
  if (!self->palette_built)
    rebuild_palette (self);
  update_view (self);
  sam2_follow_patch (self);
  sam2_refresh (self);
  title = lode_patch_item_dup_title (lode_patch_browser_find (self->browser, patch_id));
  gtk_label_set_label (self->patch_title, title);
  update_status (self);
  update_review_panel (self);
  update_actions (self);
  self->last_switch_us = g_get_monotonic_time () - start;
  watch_frames (self, start);
  schedule_prefetch (self);
}

static void
on_patch_selected (LodePatchBrowser *browser, gint64 patch_id, LodeWindow *self)
{
  if (self->store != NULL && (self->doc == NULL || lode_document_get_patch (self->doc)->id != patch_id))
    show_patch (self, patch_id);
  update_actions (self);
}

static void
on_scanned (GObject *source, GAsyncResult *result, gpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) shares = lode_thumbnailer_scan_finish (LODE_THUMBNAILER (source), result, &error);
  LodeWindow *self;

  if (shares == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_warning ("class shares: %s", error->message);
      return;
    }
  self = LODE_WINDOW (data);
  for (guint i = 0; i < shares->len; i++)
    lode_patch_browser_set_shares (self->browser, &g_array_index (shares, LodePatchShares, i));
  /* Filters on classes see the shares now. */
  lode_patch_browser_set_state_filter (self->browser, g_strcmp0 (self->view, "review") == 0
                                                        ? LODE_REVIEW_TO_REVIEW : -1);
  update_actions (self);
}

gboolean
lode_window_open_project (LodeWindow *self, GFile *file)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) store = NULL;
  g_autoptr(GPtrArray) patches = NULL;
  g_autofree char *path = g_file_get_path (file);
  g_autofree char *name = g_file_get_basename (file);
  g_autofree char *title = NULL;

  g_return_val_if_fail (LODE_IS_WINDOW (self), FALSE);

  if (path == NULL)
    {
      g_set_error (&error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   _("Only projects on a local disk can be opened"));
      show_error (self, _("The project cannot be opened"), error);
      return FALSE;
    }
  store = lode_store_open (path, FALSE, &error);
  if (store != NULL)
    patches = lode_store_list_patches (store, &error);
  if (patches == NULL)
    {
      show_error (self, _("The project cannot be opened"), error);
      return FALSE;
    }

  if (self->scan_cancellable != NULL)
    g_cancellable_cancel (self->scan_cancellable);
  g_clear_object (&self->scan_cancellable);
  clear_docs (self);
  self->palette_built = FALSE;
  g_clear_pointer (&self->store, lode_store_close);
  self->store = g_steal_pointer (&store);
  g_clear_object (&self->thumbnailer);
  self->thumbnailer = lode_thumbnailer_new (path, self->spec.preset == LODE_COMPOSITE_CUSTOM
                                                    ? LODE_COMPOSITE_TRUE_COLOUR : self->spec.preset);
  self->n_band_names = 0;

  lode_patch_browser_set_patches (self->browser, patches, self->thumbnailer);
  self->scan_cancellable = g_cancellable_new ();
  lode_thumbnailer_scan_async (self->thumbnailer, self->scan_cancellable, on_scanned, self);

  /* Translators: the window title: the project's file name */
  title = g_strdup_printf (_("%s — Lode"), name);
  gtk_window_set_title (GTK_WINDOW (self), title);
  gtk_stack_set_visible_child_name (self->list_stack, "list");
  g_settings_set_string (self->settings, "last-project", path);

  if (g_strcmp0 (self->view, "review") == 0)
    lode_patch_browser_set_state_filter (self->browser, LODE_REVIEW_TO_REVIEW);
  if (!lode_patch_browser_select_position (self->browser, 0))
    {
      lode_canvas_clear (self->canvas);
      gtk_stack_set_visible_child_name (self->canvas_stack, "empty");
      gtk_label_set_label (self->status_label, patches->len ? _("No patch matches the filters")
                                                            : _("The project has no patches"));
    }
  update_review_panel (self);
  update_actions (self);
  return TRUE;
}

/* Actions */

static void
on_open_response (GtkNativeDialog *dialog, int response, gpointer user_data)
{
  LodeWindow *self = LODE_WINDOW (user_data);

  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr(GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      lode_window_open_project (self, file);
    }
  g_object_unref (dialog);
}

static void
action_open (GtkWidget *widget, const char *action_name, GVariant *param)
{
  LodeWindow *self = LODE_WINDOW (widget);
  GtkFileChooserNative *dialog;
  g_autoptr(GtkFileFilter) filter = gtk_file_filter_new ();

  dialog = gtk_file_chooser_native_new (_("Open Project"), GTK_WINDOW (self),
                                        GTK_FILE_CHOOSER_ACTION_OPEN,
                                        _("_Open"), _("_Cancel"));
  gtk_file_filter_set_name (filter, _("Lode projects"));
  gtk_file_filter_add_pattern (filter, "*.lode");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (dialog), filter);
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (dialog), TRUE);
  g_signal_connect (dialog, "response", G_CALLBACK (on_open_response), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (dialog));
}

static void
on_imported (LodeImportDialog *dialog, const char *path, LodeWindow *self)
{
  g_autoptr(GFile) file = g_file_new_for_path (path);
  lode_window_open_project (self, file);
}

static void
action_import (GtkWidget *widget, const char *action_name, GVariant *param)
{
  GtkWidget *dialog = lode_import_dialog_new (GTK_WINDOW (widget));

  g_signal_connect_object (dialog, "imported", G_CALLBACK (on_imported), widget, 0);
  gtk_window_present (GTK_WINDOW (dialog));
}

static void
action_export (GtkWidget *widget, const char *action_name, GVariant *param)
{
  LodeWindow *self = LODE_WINDOW (widget);

  if (self->store == NULL)
    return;
  gtk_window_present (GTK_WINDOW (lode_export_dialog_new (GTK_WINDOW (self), lode_store_get_path (self->store))));
}

static void
action_encode_project (GtkWidget *widget, const char *action_name, GVariant *param)
{
  LodeWindow *self = LODE_WINDOW (widget);
  const char *checkpoint = lode_sam2_tool_get_checkpoint (self->sam2);
  GtkWidget *dialog;

  if (self->store == NULL)
    return;
  if (checkpoint == NULL)
    {
      /* Say where the checkpoint is chosen, as the tool does. */
      gtk_revealer_set_reveal_child (self->sam2_message, TRUE);
      return;
    }
  dialog = lode_encode_dialog_new (GTK_WINDOW (self), lode_store_get_path (self->store), checkpoint,
                                   g_settings_get_int (self->settings, "sam2-input-size") == 512 ? 512 : 1024,
                                   (guint64) MAX (g_settings_get_int (self->settings, "sam2-cache-mb"), 1) << 20,
                                   &self->spec);
  gtk_window_present (GTK_WINDOW (dialog));
  lode_encode_dialog_start (LODE_ENCODE_DIALOG (dialog));
}

static void
action_train (GtkWidget *widget, const char *action_name, GVariant *param)
{
  LodeWindow *self = LODE_WINDOW (widget);

  if (self->store == NULL)
    return;
  gtk_window_present (GTK_WINDOW (lode_training_dialog_new (GTK_WINDOW (self), lode_store_get_path (self->store))));
}

/* After pre-labelling: the project read again (masks, shares, thumbnails),
 * the patch shown before selected again. */
static void
on_prelabel_finished (LodePrelabelDialog *dialog, LodeWindow *self)
{
  gint64 shown = lode_window_get_patch_id (self);
  g_autoptr(GFile) file = NULL;

  if (self->store == NULL)
    return;
  file = g_file_new_for_path (lode_store_get_path (self->store));
  if (lode_window_open_project (self, file) && shown > 0)
    lode_patch_browser_select_id (self->browser, shown);
}

static void
action_prelabel (GtkWidget *widget, const char *action_name, GVariant *param)
{
  LodeWindow *self = LODE_WINDOW (widget);
  GtkWidget *dialog;

  if (self->store == NULL)
    return;
  dialog = lode_prelabel_dialog_new (GTK_WINDOW (self), lode_store_get_path (self->store));
  g_signal_connect_object (dialog, "finished", G_CALLBACK (on_prelabel_finished), self, 0);
  gtk_window_present (GTK_WINDOW (dialog));
}

static void
action_preferences (GtkWidget *widget, const char *action_name, GVariant *param)
{
  LodeWindow *self = LODE_WINDOW (widget);
  gtk_window_present (GTK_WINDOW (lode_preferences_dialog_new (GTK_WINDOW (self), self->settings)));
}

static void
action_move (GtkWidget *widget, const char *action_name, GVariant *param)
{
  LodeWindow *self = LODE_WINDOW (widget);

  lode_patch_browser_move (self->browser, g_str_equal (action_name, "win.next-patch") ? 1 : -1);
  update_actions (self);
}

static void
action_undo (GtkWidget *widget, const char *action_name, GVariant *param)
{
  LodeWindow *self = LODE_WINDOW (widget);
  LodeDocument *doc = self->active ? self->active : self->doc;
  GError *error = NULL;
  gboolean ok;

  if (doc == NULL)
    return;
  if (g_str_equal (action_name, "win.undo"))
    ok = lode_document_undo (doc, author (self), &error);
  else
    ok = lode_document_redo (doc, author (self), &error);
  after_edit (self, doc, ok, error);
  update_review_panel (self);
}

/* Canvas commands reach the canvas the user works on. */
static void
action_canvas (GtkWidget *widget, const char *action_name, GVariant *param)
{
  LodeWindow *self = LODE_WINDOW (widget);
  g_autofree char *name = g_strconcat ("canvas.", action_name + strlen ("win."), NULL);

  gtk_widget_activate_action_variant (GTK_WIDGET (active_canvas (self)), name, param);
}

static void
action_focus_search (GtkWidget *widget, const char *action_name, GVariant *param)
{
  lode_patch_browser_focus_search (LODE_WINDOW (widget)->browser);
}

static void
lode_window_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  LodeWindow *self = LODE_WINDOW (object);

  switch (prop_id)
    {
    case PROP_TOOL: g_value_set_string (value, self->tool); break;
    case PROP_VIEW: g_value_set_string (value, self->view); break;
    case PROP_COMPARE_MODE: g_value_set_string (value, self->compare_mode); break;
    case PROP_SHOW_ORIGINAL: g_value_set_boolean (value, self->show_original); break;
    case PROP_MASK_OUTLINE: g_value_set_boolean (value, self->mask_outline); break;
    case PROP_CHANGE_OVERLAY: g_value_set_boolean (value, self->change_overlay); break;
    case PROP_SHOW_INSPECTOR: g_value_set_boolean (value, self->show_inspector); break;
    case PROP_SAM2_MODE: g_value_set_string (value, self->sam2_mode); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
set_tool (LodeCanvas *canvas, gpointer data)
{
  const char *ids[] = { "brush", "eraser", "fill", "polygon", "sam2" };

  for (guint i = 0; i < G_N_ELEMENTS (ids); i++)
    if (g_strcmp0 (data, ids[i]) == 0 && lode_canvas_get_tool (canvas) != i)
      lode_canvas_set_tool (canvas, i);
}

static void
set_view (LodeWindow *self, const char *view)
{
  gboolean was_review = g_strcmp0 (self->view, "review") == 0;
  gboolean review = g_strcmp0 (view, "review") == 0;
  gint64 shown = self->doc ? lode_document_get_patch (self->doc)->id : 0;

  g_free (self->view);
  self->view = g_strdup (view);
  gtk_stack_set_visible_child_name (self->inspector_stack, review ? "review" : "layers");
  if (review != was_review)
    {
      lode_patch_browser_set_state_filter (self->browser, review ? LODE_REVIEW_TO_REVIEW : -1);
      if (!lode_patch_browser_select_id (self->browser, shown))
        lode_patch_browser_select_position (self->browser, 0);
    }
  update_view (self);
  update_actions (self);
}

static void
lode_window_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  LodeWindow *self = LODE_WINDOW (object);
  LodeCompareMode mode;

  switch (prop_id)
    {
    case PROP_TOOL:
      g_free (self->tool);
      self->tool = g_value_dup_string (value);
      for_each_canvas (self, set_tool, self->tool);
      update_palette_state (self);
      sam2_follow_patch (self);
      sam2_refresh (self);
      break;
    case PROP_SAM2_MODE:
      g_free (self->sam2_mode);
      self->sam2_mode = g_value_dup_string (value);
      break;
    case PROP_VIEW:
      set_view (self, g_value_get_string (value));
      break;
    case PROP_COMPARE_MODE:
      g_free (self->compare_mode);
      self->compare_mode = g_value_dup_string (value);
      if (lode_compare_mode_from_id (self->compare_mode, &mode))
        lode_compare_view_set_mode (self->compare_view, mode);
      break;
    case PROP_SHOW_ORIGINAL:
      self->show_original = g_value_get_boolean (value);
      rerender (self);
      break;
    case PROP_MASK_OUTLINE:
      self->mask_outline = g_value_get_boolean (value);
      rerender (self);
      break;
    case PROP_CHANGE_OVERLAY:
      self->change_overlay = g_value_get_boolean (value);
      update_change_overlay (self);
      break;
    case PROP_SHOW_INSPECTOR:
      self->show_inspector = g_value_get_boolean (value);
      gtk_widget_set_visible (self->inspector, self->show_inspector);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      return;
    }
  g_object_notify_by_pspec (object, pspec);
}

static void
lode_window_dispose (GObject *object)
{
  LodeWindow *self = LODE_WINDOW (object);

  if (self->scan_cancellable != NULL)
    g_cancellable_cancel (self->scan_cancellable);
  g_clear_object (&self->scan_cancellable);
  if (self->sam2 != NULL)
    g_signal_handlers_disconnect_by_data (self->sam2, self);
  g_clear_object (&self->sam2);
  if (self->settings != NULL)
    g_signal_handlers_disconnect_by_data (self->settings, self);
  if (self->doc_cache != NULL)
    clear_docs (self);
  gtk_widget_dispose_template (GTK_WIDGET (self), LODE_TYPE_WINDOW);
  g_clear_pointer (&self->store, lode_store_close);
  g_clear_object (&self->thumbnailer);
  g_clear_object (&self->settings);
  G_OBJECT_CLASS (lode_window_parent_class)->dispose (object);
}

static void
lode_window_finalize (GObject *object)
{
  LodeWindow *self = LODE_WINDOW (object);

  g_free (self->tool);
  g_free (self->view);
  g_free (self->compare_mode);
  g_free (self->sam2_mode);
  g_free (self->composite_buf);
  g_free (self->overlay_buf);
  g_ptr_array_unref (self->doc_cache);
  G_OBJECT_CLASS (lode_window_parent_class)->finalize (object);
}

#define BIND(key, mods, action, ...) \
  gtk_widget_class_add_binding_action (widget_class, key, mods, action, __VA_ARGS__)

static void
lode_window_class_init (LodeWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  const char *canvas_actions[] = { "win.zoom-in", "win.zoom-out", "win.zoom-fit", "win.zoom-actual",
                                   "win.brush-grow", "win.brush-shrink" };

  object_class->dispose = lode_window_dispose;
  object_class->finalize = lode_window_finalize;
  object_class->get_property = lode_window_get_property;
  object_class->set_property = lode_window_set_property;

  properties[PROP_TOOL] = g_param_spec_string ("tool", NULL, NULL, "brush",
                                               G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_VIEW] = g_param_spec_string ("view", NULL, NULL, "edit",
                                               G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_COMPARE_MODE] = g_param_spec_string ("compare-mode", NULL, NULL, "side",
                                                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY |
                                                       G_PARAM_STATIC_STRINGS);
  properties[PROP_SHOW_ORIGINAL] = g_param_spec_boolean ("show-original", NULL, NULL, FALSE,
                                                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY |
                                                         G_PARAM_STATIC_STRINGS);
  properties[PROP_MASK_OUTLINE] = g_param_spec_boolean ("mask-outline", NULL, NULL, FALSE,
                                                        G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY |
                                                        G_PARAM_STATIC_STRINGS);
  properties[PROP_CHANGE_OVERLAY] = g_param_spec_boolean ("change-overlay", NULL, NULL, FALSE,
                                                          G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY |
                                                          G_PARAM_STATIC_STRINGS);
  properties[PROP_SHOW_INSPECTOR] = g_param_spec_boolean ("show-inspector", NULL, NULL, TRUE,
                                                          G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY |
                                                          G_PARAM_STATIC_STRINGS);
  properties[PROP_SAM2_MODE] = g_param_spec_string ("sam2-mode", NULL, NULL, "replace",
                                                    G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY |
                                                    G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /* Naming the resources links them in from the static library; their
   * constructor registers them before the template is read. */
  g_assert (lode_get_resource () != NULL);
  g_type_ensure (LODE_TYPE_CANVAS);
  g_type_ensure (LODE_TYPE_COMPARE_VIEW);
  g_type_ensure (LODE_TYPE_PATCH_BROWSER);
  gtk_widget_class_set_template_from_resource (widget_class, "/org/lodeapp/Lode/lode-window.ui");
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, list_stack);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, browser);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, toolbar);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, brush_label);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, palette_box);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, inspector);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, canvas_stack);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, canvas);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, compare_view);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, status_label);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, inspector_stack);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, patch_title);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, patch_info);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, composite_dropdown);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, band_r);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, band_g);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, band_b);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, stretch_dropdown);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, low_label);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, low_spin);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, high_label);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, high_spin);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, gamma_scale);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, opacity_scale);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, review_state_label);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, queue_label);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, comment_entry);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, revision_list);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, reviews_label);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, sam2_bar);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, sam2_spinner);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, sam2_label);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, sam2_candidates);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, sam2_message);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, sam2_message_close);

  gtk_widget_class_install_action (widget_class, "win.open", NULL, action_open);
  gtk_widget_class_install_action (widget_class, "win.import", NULL, action_import);
  gtk_widget_class_install_action (widget_class, "win.export", NULL, action_export);
  gtk_widget_class_install_action (widget_class, "win.encode-project", NULL, action_encode_project);
  gtk_widget_class_install_action (widget_class, "win.train", NULL, action_train);
  gtk_widget_class_install_action (widget_class, "win.prelabel", NULL, action_prelabel);
  gtk_widget_class_install_action (widget_class, "win.preferences", NULL, action_preferences);
  gtk_widget_class_install_action (widget_class, "win.next-patch", NULL, action_move);
  gtk_widget_class_install_action (widget_class, "win.previous-patch", NULL, action_move);
  gtk_widget_class_install_action (widget_class, "win.undo", NULL, action_undo);
  gtk_widget_class_install_action (widget_class, "win.redo", NULL, action_undo);
  gtk_widget_class_install_action (widget_class, "win.accept", NULL, action_review);
  gtk_widget_class_install_action (widget_class, "win.reject", NULL, action_review);
  gtk_widget_class_install_action (widget_class, "win.send-back", NULL, action_review);
  gtk_widget_class_install_action (widget_class, "win.submit", NULL, action_review);
  gtk_widget_class_install_action (widget_class, "win.focus-search", NULL, action_focus_search);
  for (guint i = 0; i < G_N_ELEMENTS (canvas_actions); i++)
    gtk_widget_class_install_action (widget_class, canvas_actions[i], NULL, action_canvas);
  gtk_widget_class_install_action (widget_class, "win.class", "i", action_canvas);
  gtk_widget_class_install_property_action (widget_class, "win.tool", "tool");
  gtk_widget_class_install_property_action (widget_class, "win.view", "view");
  gtk_widget_class_install_property_action (widget_class, "win.compare-mode", "compare-mode");
  gtk_widget_class_install_property_action (widget_class, "win.show-original", "show-original");
  gtk_widget_class_install_property_action (widget_class, "win.mask-outline", "mask-outline");
  gtk_widget_class_install_property_action (widget_class, "win.change-overlay", "change-overlay");
  gtk_widget_class_install_property_action (widget_class, "win.show-inspector", "show-inspector");
  gtk_widget_class_install_property_action (widget_class, "win.sam2-mode", "sam2-mode");
  gtk_widget_class_install_action (widget_class, "win.sam2-apply", NULL, action_sam2);
  gtk_widget_class_install_action (widget_class, "win.sam2-clear", NULL, action_sam2);
  gtk_widget_class_install_action (widget_class, "win.sam2-next", NULL, action_sam2);
  gtk_widget_class_install_action (widget_class, "win.sam2-previous", NULL, action_sam2);
  gtk_widget_class_install_action (widget_class, "win.sam2-candidate", "i", action_sam2);
  gtk_widget_class_install_action (widget_class, "win.number", "i", action_number);

  BIND (GDK_KEY_o, GDK_CONTROL_MASK, "win.open", NULL);
  BIND (GDK_KEY_i, GDK_CONTROL_MASK, "win.import", NULL);
  BIND (GDK_KEY_e, GDK_CONTROL_MASK, "win.export", NULL);
  BIND (GDK_KEY_t, GDK_CONTROL_MASK, "win.train", NULL);
  BIND (GDK_KEY_l, GDK_CONTROL_MASK, "win.prelabel", NULL);
  BIND (GDK_KEY_comma, GDK_CONTROL_MASK, "win.preferences", NULL);
  BIND (GDK_KEY_f, GDK_CONTROL_MASK, "win.focus-search", NULL);
  BIND (GDK_KEY_Page_Down, 0, "win.next-patch", NULL);
  BIND (GDK_KEY_Page_Up, 0, "win.previous-patch", NULL);
  BIND (GDK_KEY_z, GDK_CONTROL_MASK, "win.undo", NULL);
  BIND (GDK_KEY_z, GDK_CONTROL_MASK | GDK_SHIFT_MASK, "win.redo", NULL);
  BIND (GDK_KEY_Z, GDK_CONTROL_MASK | GDK_SHIFT_MASK, "win.redo", NULL);
  BIND (GDK_KEY_b, 0, "win.tool", "s", "brush");
  BIND (GDK_KEY_e, 0, "win.tool", "s", "eraser");
  BIND (GDK_KEY_f, 0, "win.tool", "s", "fill");
  BIND (GDK_KEY_p, 0, "win.tool", "s", "polygon");
  BIND (GDK_KEY_s, 0, "win.tool", "s", "sam2");
  BIND (GDK_KEY_Return, 0, "win.sam2-apply", NULL);
  BIND (GDK_KEY_KP_Enter, 0, "win.sam2-apply", NULL);
  BIND (GDK_KEY_Escape, 0, "win.sam2-clear", NULL);
  for (int n = 1; n <= 9; n++)
    {
      BIND (GDK_KEY_0 + n, 0, "win.number", "i", n);
      BIND (GDK_KEY_KP_0 + n, 0, "win.number", "i", n);
    }
  BIND (GDK_KEY_bracketright, 0, "win.brush-grow", NULL);
  BIND (GDK_KEY_bracketleft, 0, "win.brush-shrink", NULL);
  BIND (GDK_KEY_plus, 0, "win.zoom-in", NULL);
  BIND (GDK_KEY_equal, 0, "win.zoom-in", NULL);
  BIND (GDK_KEY_KP_Add, 0, "win.zoom-in", NULL);
  BIND (GDK_KEY_plus, GDK_CONTROL_MASK, "win.zoom-in", NULL);
  BIND (GDK_KEY_equal, GDK_CONTROL_MASK, "win.zoom-in", NULL);
  BIND (GDK_KEY_minus, 0, "win.zoom-out", NULL);
  BIND (GDK_KEY_KP_Subtract, 0, "win.zoom-out", NULL);
  BIND (GDK_KEY_minus, GDK_CONTROL_MASK, "win.zoom-out", NULL);
  BIND (GDK_KEY_0, GDK_CONTROL_MASK, "win.zoom-fit", NULL);
  BIND (GDK_KEY_1, GDK_CONTROL_MASK, "win.zoom-actual", NULL);
  BIND (GDK_KEY_o, 0, "win.show-original", NULL);
  BIND (GDK_KEY_l, 0, "win.mask-outline", NULL);
  BIND (GDK_KEY_c, 0, "win.change-overlay", NULL);
  BIND (GDK_KEY_F9, 0, "win.show-inspector", NULL);
  BIND (GDK_KEY_1, GDK_ALT_MASK, "win.view", "s", "edit");
  BIND (GDK_KEY_2, GDK_ALT_MASK, "win.view", "s", "compare");
  BIND (GDK_KEY_3, GDK_ALT_MASK, "win.view", "s", "review");
  BIND (GDK_KEY_S, GDK_SHIFT_MASK, "win.compare-mode", "s", "side");
  BIND (GDK_KEY_W, GDK_SHIFT_MASK, "win.compare-mode", "s", "swipe");
  BIND (GDK_KEY_K, GDK_SHIFT_MASK, "win.compare-mode", "s", "blink");
  BIND (GDK_KEY_Return, GDK_CONTROL_MASK, "win.accept", NULL);
  BIND (GDK_KEY_KP_Enter, GDK_CONTROL_MASK, "win.accept", NULL);
  BIND (GDK_KEY_Delete, GDK_CONTROL_MASK, "win.reject", NULL);
  BIND (GDK_KEY_BackSpace, GDK_CONTROL_MASK, "win.send-back", NULL);
  BIND (GDK_KEY_Return, GDK_CONTROL_MASK | GDK_SHIFT_MASK, "win.submit", NULL);
}

static void
setup_ellipsized (GtkSignalListItemFactory *factory, GtkListItem *item, gpointer data)
{
  GtkWidget *label = gtk_label_new (NULL);

  gtk_label_set_xalign (GTK_LABEL (label), 0);
  gtk_label_set_ellipsize (GTK_LABEL (label), PANGO_ELLIPSIZE_END);
  gtk_label_set_width_chars (GTK_LABEL (label), 8);
  gtk_list_item_set_child (item, label);
}

static void
bind_ellipsized (GtkSignalListItemFactory *factory, GtkListItem *item, gpointer data)
{
  GtkStringObject *s = gtk_list_item_get_item (item);
  const char *text = gtk_string_object_get_string (s);

  gtk_label_set_label (GTK_LABEL (gtk_list_item_get_child (item)), text);
  gtk_widget_set_tooltip_text (gtk_list_item_get_child (item), text);
}

/* Dropdowns that fit the inspector: long names are ellipsized. */
static void
ellipsize_dropdown (GtkDropDown *dropdown)
{
  GtkListItemFactory *factory = gtk_signal_list_item_factory_new ();

  g_signal_connect (factory, "setup", G_CALLBACK (setup_ellipsized), NULL);
  g_signal_connect (factory, "bind", G_CALLBACK (bind_ellipsized), NULL);
  gtk_drop_down_set_factory (dropdown, factory);
  g_object_unref (factory);
}

static void
lode_window_init (LodeWindow *self)
{
  g_autofree char *composite = NULL;
  g_autoptr(GtkStringList) presets = gtk_string_list_new (NULL);
  g_autoptr(GtkStringList) stretches = gtk_string_list_new (NULL);
  LodeCompositePreset preset = LODE_COMPOSITE_TRUE_COLOUR;

  self->tool = g_strdup ("brush");
  self->view = g_strdup ("edit");
  self->compare_mode = g_strdup ("side");
  self->sam2_mode = g_strdup ("replace");
  self->show_inspector = TRUE;
  self->doc_cache = g_ptr_array_new_with_free_func ((GDestroyNotify) lode_document_free);

  gtk_widget_init_template (GTK_WIDGET (self));
  self->settings = g_settings_new (LODE_APP_ID);

  composite = g_settings_get_string (self->settings, "default-composite");
  lode_composite_preset_from_id (composite, &preset);
  lode_composite_spec_init (&self->spec, preset);
  self->spec.stretch = g_settings_get_enum (self->settings, "default-stretch");

  ellipsize_dropdown (self->composite_dropdown);
  ellipsize_dropdown (self->stretch_dropdown);
  ellipsize_dropdown (self->band_r);
  ellipsize_dropdown (self->band_g);
  ellipsize_dropdown (self->band_b);
  for (int p = 0; p < LODE_COMPOSITE_N_PRESETS; p++)
    gtk_string_list_append (presets, lode_composite_preset_label (p));
  gtk_drop_down_set_model (self->composite_dropdown, G_LIST_MODEL (presets));
  gtk_string_list_append (stretches, _("Percentiles"));
  gtk_string_list_append (stretches, _("Minimum to maximum"));
  gtk_string_list_append (stretches, _("Fixed range"));
  gtk_drop_down_set_model (self->stretch_dropdown, G_LIST_MODEL (stretches));
  update_layer_controls (self);
  g_signal_connect (self->composite_dropdown, "notify::selected", G_CALLBACK (on_layer_changed), self);
  g_signal_connect (self->stretch_dropdown, "notify::selected", G_CALLBACK (on_layer_changed), self);
  g_signal_connect (self->band_r, "notify::selected", G_CALLBACK (on_layer_changed), self);
  g_signal_connect (self->band_g, "notify::selected", G_CALLBACK (on_layer_changed), self);
  g_signal_connect (self->band_b, "notify::selected", G_CALLBACK (on_layer_changed), self);
  g_signal_connect_swapped (self->low_spin, "value-changed", G_CALLBACK (on_layer_changed), self);
  g_signal_connect_swapped (self->high_spin, "value-changed", G_CALLBACK (on_layer_changed), self);
  g_signal_connect_swapped (self->gamma_scale, "value-changed", G_CALLBACK (on_layer_changed), self);

  g_signal_connect (self->opacity_scale, "value-changed", G_CALLBACK (on_opacity_changed), self);
  g_settings_bind (self->settings, "mask-opacity", gtk_range_get_adjustment (GTK_RANGE (self->opacity_scale)),
                   "value", G_SETTINGS_BIND_DEFAULT);
  on_opacity_changed (GTK_RANGE (self->opacity_scale), self);

  for_each_canvas (self, connect_canvas, self);
  g_signal_connect (self->browser, "patch-selected", G_CALLBACK (on_patch_selected), self);
  g_signal_connect (self->revision_list, "row-selected", G_CALLBACK (on_revision_selected), self);
  g_signal_connect (self->inspector_stack, "notify::visible-child", G_CALLBACK (on_review_panel_shown), self);
  g_signal_connect (self->inspector, "notify::visible", G_CALLBACK (on_review_panel_shown), self);
  update_brush_label (self);
  update_actions (self);

  self->sam2 = lode_sam2_tool_new ();
  g_signal_connect (self->sam2, "changed", G_CALLBACK (on_sam2_changed), self);
  g_signal_connect (self->sam2, "error", G_CALLBACK (on_sam2_error), self);
  g_signal_connect (self->settings, "changed::sam2-checkpoint", G_CALLBACK (on_sam2_settings_changed), self);
  g_signal_connect (self->settings, "changed::sam2-input-size", G_CALLBACK (on_sam2_settings_changed), self);
  g_signal_connect (self->settings, "changed::sam2-cache-mb", G_CALLBACK (on_sam2_settings_changed), self);
  g_signal_connect (self->settings, "changed::sam2-prefetch", G_CALLBACK (on_sam2_settings_changed), self);
  g_signal_connect (self->sam2_message_close, "clicked", G_CALLBACK (on_sam2_message_close), self);
  sam2_build_candidates (self);
  sam2_read_settings (self);
  sam2_refresh (self);
}

LodeSam2Tool *
lode_window_get_sam2_tool (LodeWindow *self)
{
  g_return_val_if_fail (LODE_IS_WINDOW (self), NULL);
  return self->sam2;
}

gboolean
lode_window_get_sam2_message_shown (LodeWindow *self)
{
  g_return_val_if_fail (LODE_IS_WINDOW (self), FALSE);
  return gtk_revealer_get_reveal_child (self->sam2_message);
}

GtkWidget *
lode_window_get_canvas (LodeWindow *self)
{
  g_return_val_if_fail (LODE_IS_WINDOW (self), NULL);
  return GTK_WIDGET (self->canvas);
}

LodeCompareView *
lode_window_get_compare_view (LodeWindow *self)
{
  g_return_val_if_fail (LODE_IS_WINDOW (self), NULL);
  return self->compare_view;
}

LodePatchBrowser *
lode_window_get_browser (LodeWindow *self)
{
  g_return_val_if_fail (LODE_IS_WINDOW (self), NULL);
  return self->browser;
}

gint64
lode_window_get_patch_id (LodeWindow *self)
{
  g_return_val_if_fail (LODE_IS_WINDOW (self), 0);
  return self->doc ? lode_document_get_patch (self->doc)->id : 0;
}

gint64
lode_window_get_pair_id (LodeWindow *self)
{
  g_return_val_if_fail (LODE_IS_WINDOW (self), 0);
  return self->pair ? lode_document_get_patch (self->pair)->id : 0;
}

gboolean
lode_window_select_patch (LodeWindow *self, guint position)
{
  g_return_val_if_fail (LODE_IS_WINDOW (self), FALSE);
  return lode_patch_browser_select_position (self->browser, position);
}

const char *
lode_window_get_status (LodeWindow *self)
{
  g_return_val_if_fail (LODE_IS_WINDOW (self), NULL);
  return gtk_label_get_label (self->status_label);
}

void
lode_window_set_comment (LodeWindow *self, const char *comment)
{
  g_return_if_fail (LODE_IS_WINDOW (self));
  gtk_editable_set_text (GTK_EDITABLE (self->comment_entry), comment);
}

gint64
lode_window_get_last_switch_us (LodeWindow *self)
{
  g_return_val_if_fail (LODE_IS_WINDOW (self), 0);
  return self->last_switch_us;
}

static gboolean
switch_painted (LodeWindow *self)
{
  return self->switch_start_us == 0;
}

static void
spin_until (LodeWindow *self, gboolean (*done) (LodeWindow *self), gint64 timeout_us)
{
  gint64 end = g_get_monotonic_time () + timeout_us;

  while (!done (self) && g_get_monotonic_time () < end)
    if (!g_main_context_iteration (NULL, FALSE))
      g_usleep (200);
}

static gboolean
prefetch_done (LodeWindow *self)
{
  return self->prefetch_id == 0;
}

guint
lode_window_time_switches (LodeWindow       *self,
                           guint             n,
                           guint32           seed,
                           LodeSwitchTiming *timings)
{
  g_autoptr(GRand) rand = seed ? g_rand_new_with_seed (seed) : NULL;
  guint done = 0;
  int step = 1;

  g_return_val_if_fail (LODE_IS_WINDOW (self), 0);

  for (guint i = 0; i < n && self->store != NULL; i++)
    {
      guint n_shown = lode_patch_browser_get_n_shown (self->browser);
      gint64 before = doc_id (self->doc);

      if (n_shown < 2)
        break;
      if (rand != NULL)
        lode_patch_browser_select_position (self->browser, g_rand_int_range (rand, 0, n_shown));
      else
        {
          if (!lode_patch_browser_can_move (self->browser, step))
            step = -step;
          lode_patch_browser_move (self->browser, step);
        }
      if (doc_id (self->doc) == before)
        continue;
      /* The frame that shows it, then idle time as a person's pace gives. */
      spin_until (self, switch_painted, G_USEC_PER_SEC);
      spin_until (self, prefetch_done, G_USEC_PER_SEC);
      if (!switch_painted (self))
        continue;
      timings[done++] = self->last_timing;
    }
  return done;
}

gboolean
lode_window_select_revision (LodeWindow *self, guint index)
{
  GtkListBoxRow *row;

  g_return_val_if_fail (LODE_IS_WINDOW (self), FALSE);
  row = gtk_list_box_get_row_at_index (self->revision_list, index);
  if (row == NULL)
    return FALSE;
  gtk_list_box_select_row (self->revision_list, row);
  return TRUE;
}
