#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>

#include "lode-canvas.h"
#include "lode-composite.h"
#include "lode-document.h"
#include "lode-patch-item.h"
#include "lode-resources.h"
#include "lode-store.h"
#include "lode-window.h"

struct _LodeWindow
{
  GtkApplicationWindow parent_instance;

  /* template */
  GtkLabel           *title_label;
  GtkLabel           *subtitle_label;
  GtkStack           *list_stack;
  GtkListView        *patch_list;
  GtkStack           *canvas_stack;
  LodeCanvas         *canvas;
  GtkLabel           *status_label;

  GSettings          *settings;
  LodeStore          *store;
  GListStore         *patches;
  GtkSingleSelection *selection;
  LodeDocument       *doc;
  LodeCompositeSpec   spec;
};

G_DEFINE_FINAL_TYPE (LodeWindow, lode_window, GTK_TYPE_APPLICATION_WINDOW)

LodeWindow *
lode_window_new (LodeApplication *app)
{
  return g_object_new (LODE_TYPE_WINDOW, "application", app, NULL);
}

static void
show_error (LodeWindow *self, const char *primary, const GError *error)
{
  GtkWidget *dialog;

  dialog = gtk_message_dialog_new (GTK_WINDOW (self),
                                   GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT,
                                   GTK_MESSAGE_ERROR, GTK_BUTTONS_CLOSE,
                                   "%s", primary);
  gtk_message_dialog_format_secondary_text (GTK_MESSAGE_DIALOG (dialog), "%s", error->message);
  g_signal_connect (dialog, "response", G_CALLBACK (gtk_window_destroy), NULL);
  gtk_window_present (GTK_WINDOW (dialog));
}

static void
update_actions (LodeWindow *self)
{
  guint n = self->patches ? g_list_model_get_n_items (G_LIST_MODEL (self->patches)) : 0;
  guint pos = self->selection ? gtk_single_selection_get_selected (self->selection) : GTK_INVALID_LIST_POSITION;

  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.next-patch",
                                 pos != GTK_INVALID_LIST_POSITION && pos + 1 < n);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.previous-patch",
                                 pos != GTK_INVALID_LIST_POSITION && pos > 0);
}

/* The status line: what the patch is and what its mask holds. */
static void
update_status (LodeWindow *self)
{
  const LodePatch *patch = lode_document_get_patch (self->doc);
  const LodeRaster *raster = lode_document_get_raster (self->doc);
  const LodeMask *mask = lode_document_get_mask (self->doc);
  LodeClassTable *classes = lode_document_get_classes (self->doc);
  g_autoptr(GString) s = g_string_new (NULL);
  guint64 counts[256] = { 0 };
  guint64 valid = 0;

  lode_mask_count (mask, counts);
  for (int i = 0; i < 255; i++)
    valid += counts[i];

  g_string_append_printf (s, _("%d × %d pixels, %d bands"), raster->width, raster->height, raster->n_bands);
  if (raster->epsg != 0)
    g_string_append_printf (s, " · EPSG:%d", raster->epsg);
  if (patch->split != NULL)
    g_string_append_printf (s, " · %s", g_str_equal (patch->split, "train") ? _("train") : _("test"));
  for (guint i = 0; i < lode_class_table_size (classes); i++)
    {
      const LodeClass *c = lode_class_table_get (classes, i);

      if (c->id == 0 || valid == 0)
        continue;
      g_string_append_printf (s, " · %s %.1f %%", c->name, 100.0 * counts[c->id] / valid);
    }
  if (patch->odd_reason != NULL)
    g_string_append_printf (s, " · %s", patch->odd_reason);
  gtk_label_set_label (self->status_label, s->str);
}

static gboolean
render_document (LodeWindow *self, GError **error)
{
  const LodeRaster *raster = lode_document_get_raster (self->doc);
  const LodeMask *mask = lode_document_get_mask (self->doc);
  LodeCompositeSpec spec = self->spec;
  gsize n = (gsize) raster->width * raster->height;
  g_autofree guint8 *rgba = g_malloc (n * 4);
  g_autofree guint8 *overlay = g_malloc (n * 4);

  if (!lode_composite_resolve (&spec, raster, error) ||
      !lode_composite_render_rgba (raster, &spec, NULL, rgba, error))
    return FALSE;
  lode_mask_render_rgba (mask, lode_document_get_classes (self->doc), FALSE, overlay);
  lode_canvas_set_image (self->canvas, rgba, raster->width, raster->height);
  lode_canvas_set_overlay (self->canvas, overlay);
  return TRUE;
}

static void
show_patch (LodeWindow *self, gint64 patch_id)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeDocument) doc = NULL;
  g_autofree char *title = NULL;
  const LodePatch *patch;

  doc = lode_document_open (self->store, patch_id, &error);
  if (doc == NULL)
    {
      lode_canvas_clear (self->canvas);
      gtk_stack_set_visible_child_name (self->canvas_stack, "empty");
      gtk_label_set_label (self->status_label, error->message);
      show_error (self, _("The patch cannot be opened"), error);
      return;
    }
  g_clear_pointer (&self->doc, lode_document_free);
  self->doc = g_steal_pointer (&doc);

  if (!render_document (self, &error))
    {
      gtk_label_set_label (self->status_label, error->message);
      show_error (self, _("The patch cannot be drawn"), error);
      return;
    }
  patch = lode_document_get_patch (self->doc);
  title = patch->year > 0 ? g_strdup_printf (_("Tile %s · %d"), patch->tile_id, patch->year)
                          : g_strdup (patch->tile_id);
  gtk_label_set_label (self->title_label, title);
  gtk_stack_set_visible_child_name (self->canvas_stack, "canvas");
  update_status (self);
}

static void
on_selection_changed (GtkSingleSelection *selection, GParamSpec *pspec, LodeWindow *self)
{
  LodePatchItem *item = gtk_single_selection_get_selected_item (selection);

  update_actions (self);
  if (item != NULL)
    show_patch (self, lode_patch_item_get_id (item));
}

gboolean
lode_window_open_project (LodeWindow *self, GFile *file)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) store = NULL;
  g_autoptr(GPtrArray) patches = NULL;
  g_autofree char *path = g_file_get_path (file);
  g_autofree char *name = g_file_get_basename (file);

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

  g_clear_pointer (&self->doc, lode_document_free);
  g_clear_pointer (&self->store, lode_store_close);
  self->store = g_steal_pointer (&store);

  g_signal_handlers_block_by_func (self->selection, on_selection_changed, self);
  g_list_store_remove_all (self->patches);
  for (guint i = 0; i < patches->len; i++)
    {
      g_autoptr(LodePatchItem) item = lode_patch_item_new (g_ptr_array_index (patches, i));
      g_list_store_append (self->patches, item);
    }
  g_signal_handlers_unblock_by_func (self->selection, on_selection_changed, self);

  gtk_label_set_label (self->subtitle_label, name);
  gtk_widget_set_visible (GTK_WIDGET (self->subtitle_label), TRUE);
  gtk_stack_set_visible_child_name (self->list_stack, "list");
  g_settings_set_string (self->settings, "last-project", path);

  if (patches->len > 0)
    {
      gtk_single_selection_set_selected (self->selection, GTK_INVALID_LIST_POSITION);
      gtk_single_selection_set_selected (self->selection, 0);
    }
  else
    {
      lode_canvas_clear (self->canvas);
      gtk_stack_set_visible_child_name (self->canvas_stack, "empty");
      gtk_label_set_label (self->status_label, _("The project has no patches"));
    }
  update_actions (self);
  return TRUE;
}

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
lode_window_open (GtkWidget *widget, const char *action_name, GVariant *param)
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
move_selection (LodeWindow *self, int step)
{
  guint pos = gtk_single_selection_get_selected (self->selection);
  guint n = g_list_model_get_n_items (G_LIST_MODEL (self->patches));

  if (pos == GTK_INVALID_LIST_POSITION || n == 0)
    return;
  if ((step < 0 && pos == 0) || (step > 0 && pos + 1 >= n))
    return;
  pos += step;
  gtk_single_selection_set_selected (self->selection, pos);
  gtk_widget_activate_action (GTK_WIDGET (self->patch_list), "list.scroll-to-item", "u", pos);
}

static void
lode_window_next_patch (GtkWidget *widget, const char *action_name, GVariant *param)
{
  move_selection (LODE_WINDOW (widget), 1);
}

static void
lode_window_previous_patch (GtkWidget *widget, const char *action_name, GVariant *param)
{
  move_selection (LODE_WINDOW (widget), -1);
}

static void
setup_row (GtkSignalListItemFactory *factory, GtkListItem *list_item, gpointer user_data)
{
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 2);
  GtkWidget *title = gtk_label_new (NULL);
  GtkWidget *subtitle = gtk_label_new (NULL);

  gtk_label_set_xalign (GTK_LABEL (title), 0);
  gtk_label_set_xalign (GTK_LABEL (subtitle), 0);
  gtk_widget_add_css_class (subtitle, "dim-label");
  gtk_widget_add_css_class (subtitle, "caption");
  gtk_box_append (GTK_BOX (box), title);
  gtk_box_append (GTK_BOX (box), subtitle);
  gtk_widget_set_margin_top (box, 4);
  gtk_widget_set_margin_bottom (box, 4);
  gtk_list_item_set_child (list_item, box);
}

static void
bind_row (GtkSignalListItemFactory *factory, GtkListItem *list_item, gpointer user_data)
{
  LodePatchItem *item = gtk_list_item_get_item (list_item);
  GtkWidget *box = gtk_list_item_get_child (list_item);
  GtkWidget *title = gtk_widget_get_first_child (box);
  GtkWidget *subtitle = gtk_widget_get_next_sibling (title);
  g_autofree char *t = lode_patch_item_dup_title (item);
  g_autofree char *s = lode_patch_item_dup_subtitle (item);

  gtk_label_set_label (GTK_LABEL (title), t);
  gtk_label_set_label (GTK_LABEL (subtitle), s);
}

static void
lode_window_dispose (GObject *object)
{
  LodeWindow *self = LODE_WINDOW (object);

  g_clear_pointer (&self->doc, lode_document_free);
  g_clear_pointer (&self->store, lode_store_close);
  g_clear_object (&self->selection);
  g_clear_object (&self->patches);
  g_clear_object (&self->settings);
  gtk_widget_dispose_template (GTK_WIDGET (self), LODE_TYPE_WINDOW);
  G_OBJECT_CLASS (lode_window_parent_class)->dispose (object);
}

static void
lode_window_class_init (LodeWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = lode_window_dispose;

  /* Naming the resources links them in from the static library; their
   * constructor registers them before the template is read. */
  g_assert (lode_get_resource () != NULL);
  g_type_ensure (LODE_TYPE_CANVAS);
  gtk_widget_class_set_template_from_resource (widget_class, "/org/lodeapp/Lode/lode-window.ui");
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, title_label);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, subtitle_label);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, list_stack);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, patch_list);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, canvas_stack);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, canvas);
  gtk_widget_class_bind_template_child (widget_class, LodeWindow, status_label);

  gtk_widget_class_install_action (widget_class, "win.open", NULL, lode_window_open);
  gtk_widget_class_install_action (widget_class, "win.next-patch", NULL, lode_window_next_patch);
  gtk_widget_class_install_action (widget_class, "win.previous-patch", NULL, lode_window_previous_patch);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Page_Down, 0, "win.next-patch", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Page_Up, 0, "win.previous-patch", NULL);
}

static void
lode_window_init (LodeWindow *self)
{
  GtkListItemFactory *factory;
  g_autofree char *composite = NULL;
  LodeCompositePreset preset = LODE_COMPOSITE_TRUE_COLOUR;

  gtk_widget_init_template (GTK_WIDGET (self));
  self->settings = g_settings_new (LODE_APP_ID);

  composite = g_settings_get_string (self->settings, "default-composite");
  lode_composite_preset_from_id (composite, &preset);
  lode_composite_spec_init (&self->spec, preset);
  lode_canvas_set_mask_opacity (self->canvas, g_settings_get_double (self->settings, "mask-opacity"));

  self->patches = g_list_store_new (LODE_TYPE_PATCH_ITEM);
  self->selection = gtk_single_selection_new (g_object_ref (G_LIST_MODEL (self->patches)));
  gtk_single_selection_set_autoselect (self->selection, FALSE);
  g_signal_connect (self->selection, "notify::selected", G_CALLBACK (on_selection_changed), self);

  factory = gtk_signal_list_item_factory_new ();
  g_signal_connect (factory, "setup", G_CALLBACK (setup_row), NULL);
  g_signal_connect (factory, "bind", G_CALLBACK (bind_row), NULL);
  gtk_list_view_set_factory (self->patch_list, factory);
  g_object_unref (factory);
  gtk_list_view_set_model (self->patch_list, GTK_SELECTION_MODEL (self->selection));

  update_actions (self);
}

GtkWidget *
lode_window_get_canvas (LodeWindow *self)
{
  g_return_val_if_fail (LODE_IS_WINDOW (self), NULL);
  return GTK_WIDGET (self->canvas);
}

gint64
lode_window_get_patch_id (LodeWindow *self)
{
  g_return_val_if_fail (LODE_IS_WINDOW (self), 0);
  return self->doc ? lode_document_get_patch (self->doc)->id : 0;
}

gboolean
lode_window_select_patch (LodeWindow *self, guint position)
{
  g_return_val_if_fail (LODE_IS_WINDOW (self), FALSE);
  if (position >= g_list_model_get_n_items (G_LIST_MODEL (self->patches)))
    return FALSE;
  gtk_single_selection_set_selected (self->selection, position);
  return TRUE;
}
