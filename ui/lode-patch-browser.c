#define G_LOG_DOMAIN "lode-ui"

#include "config.h"

#include <glib/gi18n.h>

#include "lode-patch-browser.h"

struct _LodePatchBrowser
{
  GtkWidget           parent_instance;

  /* template */
  GtkWidget          *box;
  GtkSearchEntry     *search_entry;
  GtkDropDown        *year_dropdown;
  GtkDropDown        *split_dropdown;
  GtkDropDown        *state_dropdown;
  GtkDropDown        *sort_dropdown;
  GtkToggleButton    *mining_toggle;
  GtkToggleButton    *cocoa_toggle;
  GtkListView        *list_view;
  GtkLabel           *count_label;

  GListStore         *store;
  GtkCustomFilter    *filter;
  GtkFilterListModel *filtered;
  GtkCustomSorter    *sorter;
  GtkSortListModel   *sorted;
  GtkSingleSelection *selection;
  GHashTable         *items;     /* gint64 * -> LodePatchItem (borrowed) */
  GArray             *years;     /* int, the year dropdown's entries after "All" */
  LodeThumbnailer    *thumbnailer;
  gint64              selected;
};

enum {
  SIGNAL_PATCH_SELECTED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (LodePatchBrowser, lode_patch_browser, GTK_TYPE_WIDGET)

/* Filtering and sorting */

static gboolean
filter_func (gpointer object, gpointer user_data)
{
  LodePatchBrowser *self = user_data;
  const LodePatch *p = lode_patch_item_get_patch (object);
  const LodePatchShares *shares = lode_patch_item_get_shares (object);
  const char *search = gtk_editable_get_text (GTK_EDITABLE (self->search_entry));
  guint year = gtk_drop_down_get_selected (self->year_dropdown);
  guint split = gtk_drop_down_get_selected (self->split_dropdown);
  guint state = gtk_drop_down_get_selected (self->state_dropdown);

  if (search != NULL && search[0] != '\0' && strstr (p->tile_id, search) == NULL)
    return FALSE;
  if (year > 0 && year <= self->years->len && p->year != g_array_index (self->years, int, year - 1))
    return FALSE;
  if (split == 1 && g_strcmp0 (p->split, "train") != 0)
    return FALSE;
  if (split == 2 && g_strcmp0 (p->split, "test") != 0)
    return FALSE;
  if (split == 3 && p->split != NULL)
    return FALSE;
  if (state > 0 && state != GTK_INVALID_LIST_POSITION && (guint) p->state != state - 1)
    return FALSE;
  if (gtk_toggle_button_get_active (self->mining_toggle) && (shares == NULL || shares->mining <= 0.0))
    return FALSE;
  if (gtk_toggle_button_get_active (self->cocoa_toggle) && (shares == NULL || shares->cocoa <= 0.0))
    return FALSE;
  return TRUE;
}

static int
compare_tile (const LodePatch *a, const LodePatch *b)
{
  int c = g_strcmp0 (a->tile_id, b->tile_id);
  return c != 0 ? c : (a->year > b->year) - (a->year < b->year);
}

static int
sort_func (gconstpointer ia, gconstpointer ib, gpointer user_data)
{
  LodePatchBrowser *self = user_data;
  const LodePatch *a = lode_patch_item_get_patch ((gpointer) ia);
  const LodePatch *b = lode_patch_item_get_patch ((gpointer) ib);
  const LodePatchShares *sa, *sb;
  double ma, mb;

  switch (gtk_drop_down_get_selected (self->sort_dropdown))
    {
    case LODE_PATCH_SORT_YEAR:
      if (a->year != b->year)
        return a->year < b->year ? -1 : 1;
      break;
    case LODE_PATCH_SORT_STATE:
      if (a->state != b->state)
        return a->state < b->state ? -1 : 1;
      break;
    case LODE_PATCH_SORT_MINING:
      sa = lode_patch_item_get_shares ((gpointer) ia);
      sb = lode_patch_item_get_shares ((gpointer) ib);
      ma = sa ? sa->mining : -1.0;
      mb = sb ? sb->mining : -1.0;
      if (ma != mb)
        return ma > mb ? -1 : 1;  /* most mining first */
      break;
    default:
      break;
    }
  return compare_tile (a, b);
}

static void
update_count (LodePatchBrowser *self)
{
  guint shown = g_list_model_get_n_items (G_LIST_MODEL (self->filtered));
  guint all = g_list_model_get_n_items (G_LIST_MODEL (self->store));
  g_autofree char *text = NULL;

  /* Translators: patches shown after filtering, and in the project */
  text = g_strdup_printf (_("%u of %u patches"), shown, all);
  gtk_label_set_label (self->count_label, text);
}

static void
refilter (LodePatchBrowser *self)
{
  gtk_filter_changed (GTK_FILTER (self->filter), GTK_FILTER_CHANGE_DIFFERENT);
  update_count (self);
}

static void
on_filter_changed (GObject *object, GParamSpec *pspec, LodePatchBrowser *self)
{
  if (self->filter != NULL)
    refilter (self);
}

static void
on_filter_toggled (GtkToggleButton *button, LodePatchBrowser *self)
{
  on_filter_changed (G_OBJECT (button), NULL, self);
}

static void
on_search_changed (GtkSearchEntry *entry, LodePatchBrowser *self)
{
  on_filter_changed (G_OBJECT (entry), NULL, self);
}

static void
on_sort_changed (GObject *object, GParamSpec *pspec, LodePatchBrowser *self)
{
  if (self->sorter != NULL)
    gtk_sorter_changed (GTK_SORTER (self->sorter), GTK_SORTER_CHANGE_DIFFERENT);
}

static void
on_selected (GtkSingleSelection *selection, GParamSpec *pspec, LodePatchBrowser *self)
{
  LodePatchItem *item = gtk_single_selection_get_selected_item (selection);
  gint64 id = item ? lode_patch_item_get_id (item) : 0;

  if (id == 0 || id == self->selected)
    return;
  self->selected = id;
  g_signal_emit (self, signals[SIGNAL_PATCH_SELECTED], 0, id);
}

/* Rows */

static void
setup_row (GtkSignalListItemFactory *factory, GtkListItem *list_item, gpointer user_data)
{
  GtkWidget *row = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 8);
  GtkWidget *picture = gtk_picture_new ();
  GtkWidget *text = gtk_box_new (GTK_ORIENTATION_VERTICAL, 2);
  GtkWidget *title = gtk_label_new (NULL);
  GtkWidget *subtitle = gtk_label_new (NULL);

  gtk_widget_set_size_request (picture, LODE_THUMBNAIL_SIZE, LODE_THUMBNAIL_SIZE);
  gtk_picture_set_can_shrink (GTK_PICTURE (picture), TRUE);
  gtk_widget_add_css_class (picture, "lode-thumbnail");
  gtk_label_set_xalign (GTK_LABEL (title), 0);
  gtk_label_set_xalign (GTK_LABEL (subtitle), 0);
  gtk_label_set_ellipsize (GTK_LABEL (subtitle), PANGO_ELLIPSIZE_END);
  gtk_widget_add_css_class (title, "heading");
  gtk_widget_add_css_class (subtitle, "dim-label");
  gtk_widget_add_css_class (subtitle, "caption");
  gtk_widget_set_valign (text, GTK_ALIGN_CENTER);
  gtk_box_append (GTK_BOX (text), title);
  gtk_box_append (GTK_BOX (text), subtitle);
  gtk_box_append (GTK_BOX (row), picture);
  gtk_box_append (GTK_BOX (row), text);
  gtk_widget_set_margin_top (row, 3);
  gtk_widget_set_margin_bottom (row, 3);
  gtk_list_item_set_child (list_item, row);
}

static void
update_subtitle (LodePatchItem *item, GParamSpec *pspec, GtkLabel *label)
{
  g_autofree char *s = lode_patch_item_dup_subtitle (item);
  gtk_label_set_label (label, s);
}

static void
on_thumbnail (GObject *source, GAsyncResult *result, gpointer data)
{
  g_autoptr(GtkPicture) picture = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GdkTexture) texture = lode_thumbnailer_load_finish (LODE_THUMBNAILER (source), result, &error);

  if (texture != NULL)
    {
      gint64 want = GPOINTER_TO_SIZE (g_object_get_data (G_OBJECT (picture), "lode-patch-id"));
      gint64 *got = g_task_get_task_data (G_TASK (result));
      /* The row may have been recycled for another patch meanwhile. */
      if (got != NULL && *got == want)
        gtk_picture_set_paintable (picture, GDK_PAINTABLE (texture));
    }
  else if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    g_debug ("thumbnail: %s", error->message);
}

static void
load_thumbnail (LodePatchBrowser *self, GtkListItem *list_item, GtkPicture *picture, gint64 id)
{
  GdkTexture *texture;
  GCancellable *cancellable;

  g_object_set_data (G_OBJECT (picture), "lode-patch-id", GSIZE_TO_POINTER ((gsize) id));
  gtk_picture_set_paintable (picture, NULL);
  if (self->thumbnailer == NULL)
    return;
  texture = lode_thumbnailer_lookup (self->thumbnailer, id);
  if (texture != NULL)
    {
      gtk_picture_set_paintable (picture, GDK_PAINTABLE (texture));
      return;
    }
  cancellable = g_cancellable_new ();
  g_object_set_data_full (G_OBJECT (list_item), "lode-cancellable", cancellable, g_object_unref);
  lode_thumbnailer_load_async (self->thumbnailer, id, cancellable, on_thumbnail, g_object_ref (picture));
}

static void
bind_row (GtkSignalListItemFactory *factory, GtkListItem *list_item, LodePatchBrowser *self)
{
  LodePatchItem *item = gtk_list_item_get_item (list_item);
  GtkWidget *row = gtk_list_item_get_child (list_item);
  GtkWidget *picture = gtk_widget_get_first_child (row);
  GtkWidget *text = gtk_widget_get_next_sibling (picture);
  GtkWidget *title = gtk_widget_get_first_child (text);
  GtkWidget *subtitle = gtk_widget_get_next_sibling (title);
  g_autofree char *t = lode_patch_item_dup_title (item);

  gtk_label_set_label (GTK_LABEL (title), t);
  update_subtitle (item, NULL, GTK_LABEL (subtitle));
  g_signal_connect_object (item, "notify::subtitle", G_CALLBACK (update_subtitle), subtitle, 0);
  load_thumbnail (self, list_item, GTK_PICTURE (picture), lode_patch_item_get_id (item));
}

static void
unbind_row (GtkSignalListItemFactory *factory, GtkListItem *list_item, LodePatchBrowser *self)
{
  LodePatchItem *item = gtk_list_item_get_item (list_item);
  GtkWidget *row = gtk_list_item_get_child (list_item);
  GtkWidget *subtitle = gtk_widget_get_last_child (gtk_widget_get_last_child (row));
  GCancellable *cancellable = g_object_get_data (G_OBJECT (list_item), "lode-cancellable");

  if (cancellable != NULL)
    g_cancellable_cancel (cancellable);
  g_object_set_data (G_OBJECT (list_item), "lode-cancellable", NULL);
  if (item != NULL)
    g_signal_handlers_disconnect_by_func (item, update_subtitle, subtitle);
}

static void
lode_patch_browser_dispose (GObject *object)
{
  LodePatchBrowser *self = LODE_PATCH_BROWSER (object);

  gtk_widget_dispose_template (GTK_WIDGET (self), LODE_TYPE_PATCH_BROWSER);
  g_clear_object (&self->selection);
  g_clear_object (&self->sorted);
  g_clear_object (&self->filtered);
  self->filter = NULL;
  self->sorter = NULL;
  g_clear_object (&self->store);
  g_clear_pointer (&self->items, g_hash_table_unref);
  g_clear_pointer (&self->years, g_array_unref);
  g_clear_object (&self->thumbnailer);
  G_OBJECT_CLASS (lode_patch_browser_parent_class)->dispose (object);
}

static void
lode_patch_browser_class_init (LodePatchBrowserClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = lode_patch_browser_dispose;

  signals[SIGNAL_PATCH_SELECTED] =
    g_signal_new ("patch-selected", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, G_TYPE_INT64);

  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
  gtk_widget_class_set_css_name (widget_class, "lode-patch-browser");
  gtk_widget_class_set_template_from_resource (widget_class, "/org/lodeapp/Lode/lode-patch-browser.ui");
  gtk_widget_class_bind_template_child (widget_class, LodePatchBrowser, box);
  gtk_widget_class_bind_template_child (widget_class, LodePatchBrowser, search_entry);
  gtk_widget_class_bind_template_child (widget_class, LodePatchBrowser, year_dropdown);
  gtk_widget_class_bind_template_child (widget_class, LodePatchBrowser, split_dropdown);
  gtk_widget_class_bind_template_child (widget_class, LodePatchBrowser, state_dropdown);
  gtk_widget_class_bind_template_child (widget_class, LodePatchBrowser, sort_dropdown);
  gtk_widget_class_bind_template_child (widget_class, LodePatchBrowser, mining_toggle);
  gtk_widget_class_bind_template_child (widget_class, LodePatchBrowser, cocoa_toggle);
  gtk_widget_class_bind_template_child (widget_class, LodePatchBrowser, list_view);
  gtk_widget_class_bind_template_child (widget_class, LodePatchBrowser, count_label);
  gtk_widget_class_bind_template_callback (widget_class, on_filter_changed);
  gtk_widget_class_bind_template_callback (widget_class, on_search_changed);
  gtk_widget_class_bind_template_callback (widget_class, on_filter_toggled);
  gtk_widget_class_bind_template_callback (widget_class, on_sort_changed);
}

static void
lode_patch_browser_init (LodePatchBrowser *self)
{
  const char *splits[] = { _("All splits"), _("Train"), _("Test"), _("No split"), NULL };
  const char *sorts[] = { _("By tile"), _("By year"), _("By state"), _("Most mining"), NULL };
  g_autoptr(GtkStringList) states = gtk_string_list_new (NULL);
  GtkListItemFactory *factory;

  gtk_widget_init_template (GTK_WIDGET (self));
  self->items = g_hash_table_new (g_int64_hash, g_int64_equal);
  self->years = g_array_new (FALSE, FALSE, sizeof (int));

  gtk_drop_down_set_model (self->split_dropdown, G_LIST_MODEL (gtk_string_list_new (splits)));
  g_object_unref (gtk_drop_down_get_model (self->split_dropdown));
  gtk_drop_down_set_model (self->sort_dropdown, G_LIST_MODEL (gtk_string_list_new (sorts)));
  g_object_unref (gtk_drop_down_get_model (self->sort_dropdown));
  gtk_string_list_append (states, _("All states"));
  for (int s = 0; s < LODE_REVIEW_N_STATES; s++)
    gtk_string_list_append (states, lode_review_state_label (s));
  gtk_drop_down_set_model (self->state_dropdown, G_LIST_MODEL (states));
  {
    const char *all_years[] = { _("All years"), NULL };
    gtk_drop_down_set_model (self->year_dropdown, G_LIST_MODEL (gtk_string_list_new (all_years)));
    g_object_unref (gtk_drop_down_get_model (self->year_dropdown));
  }

  self->store = g_list_store_new (LODE_TYPE_PATCH_ITEM);
  self->filter = gtk_custom_filter_new (filter_func, self, NULL);
  self->filtered = gtk_filter_list_model_new (g_object_ref (G_LIST_MODEL (self->store)), GTK_FILTER (self->filter));
  self->sorter = gtk_custom_sorter_new (sort_func, self, NULL);
  self->sorted = gtk_sort_list_model_new (g_object_ref (G_LIST_MODEL (self->filtered)), GTK_SORTER (self->sorter));
  self->selection = gtk_single_selection_new (g_object_ref (G_LIST_MODEL (self->sorted)));
  gtk_single_selection_set_autoselect (self->selection, FALSE);
  gtk_single_selection_set_can_unselect (self->selection, TRUE);
  g_signal_connect (self->selection, "notify::selected", G_CALLBACK (on_selected), self);

  factory = gtk_signal_list_item_factory_new ();
  g_signal_connect (factory, "setup", G_CALLBACK (setup_row), NULL);
  g_signal_connect (factory, "bind", G_CALLBACK (bind_row), self);
  g_signal_connect (factory, "unbind", G_CALLBACK (unbind_row), self);
  gtk_list_view_set_factory (self->list_view, factory);
  g_object_unref (factory);
  gtk_list_view_set_model (self->list_view, GTK_SELECTION_MODEL (self->selection));
  update_count (self);
}

GtkWidget *
lode_patch_browser_new (void)
{
  return g_object_new (LODE_TYPE_PATCH_BROWSER, NULL);
}

static int
compare_int (gconstpointer a, gconstpointer b)
{
  return *(const int *) a - *(const int *) b;
}

void
lode_patch_browser_set_patches (LodePatchBrowser *self, GPtrArray *patches, LodeThumbnailer *thumbnailer)
{
  g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GtkStringList) years = NULL;

  g_return_if_fail (LODE_IS_PATCH_BROWSER (self));

  g_set_object (&self->thumbnailer, thumbnailer);
  g_hash_table_remove_all (self->items);
  g_array_set_size (self->years, 0);
  self->selected = 0;
  for (guint i = 0; patches != NULL && i < patches->len; i++)
    {
      const LodePatch *p = g_ptr_array_index (patches, i);
      LodePatchItem *item = lode_patch_item_new (p);
      gboolean seen = FALSE;

      g_ptr_array_add (items, item);
      g_hash_table_insert (self->items, &((LodePatch *) lode_patch_item_get_patch (item))->id, item);
      for (guint y = 0; y < self->years->len; y++)
        seen = seen || g_array_index (self->years, int, y) == p->year;
      if (!seen && p->year > 0)
        g_array_append_val (self->years, p->year);
    }
  g_array_sort (self->years, compare_int);
  years = gtk_string_list_new (NULL);
  gtk_string_list_append (years, _("All years"));
  for (guint y = 0; y < self->years->len; y++)
    {
      char text[16];
      g_snprintf (text, sizeof text, "%d", g_array_index (self->years, int, y));
      gtk_string_list_append (years, text);
    }
  gtk_drop_down_set_model (self->year_dropdown, G_LIST_MODEL (years));
  gtk_single_selection_set_selected (self->selection, GTK_INVALID_LIST_POSITION);
  g_list_store_splice (self->store, 0, g_list_model_get_n_items (G_LIST_MODEL (self->store)),
                       items->pdata, items->len);
  gtk_single_selection_set_selected (self->selection, GTK_INVALID_LIST_POSITION);
  update_count (self);
}

guint
lode_patch_browser_get_n_shown (LodePatchBrowser *self)
{
  g_return_val_if_fail (LODE_IS_PATCH_BROWSER (self), 0);
  return g_list_model_get_n_items (G_LIST_MODEL (self->sorted));
}

guint
lode_patch_browser_get_n_patches (LodePatchBrowser *self)
{
  g_return_val_if_fail (LODE_IS_PATCH_BROWSER (self), 0);
  return g_list_model_get_n_items (G_LIST_MODEL (self->store));
}

gint64
lode_patch_browser_get_selected (LodePatchBrowser *self)
{
  g_return_val_if_fail (LODE_IS_PATCH_BROWSER (self), 0);
  return self->selected;
}

gboolean
lode_patch_browser_select_position (LodePatchBrowser *self, guint position)
{
  g_return_val_if_fail (LODE_IS_PATCH_BROWSER (self), FALSE);
  if (position >= lode_patch_browser_get_n_shown (self))
    return FALSE;
  gtk_single_selection_set_selected (self->selection, position);
  gtk_widget_activate_action (GTK_WIDGET (self->list_view), "list.scroll-to-item", "u", position);
  return TRUE;
}

static guint
position_of (LodePatchBrowser *self, gint64 patch_id)
{
  guint n = lode_patch_browser_get_n_shown (self);

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(LodePatchItem) item = g_list_model_get_item (G_LIST_MODEL (self->sorted), i);
      if (lode_patch_item_get_id (item) == patch_id)
        return i;
    }
  return GTK_INVALID_LIST_POSITION;
}

gboolean
lode_patch_browser_select_id (LodePatchBrowser *self, gint64 patch_id)
{
  guint pos;

  g_return_val_if_fail (LODE_IS_PATCH_BROWSER (self), FALSE);
  pos = position_of (self, patch_id);
  if (pos == GTK_INVALID_LIST_POSITION)
    return FALSE;
  return lode_patch_browser_select_position (self, pos);
}

static guint
target_position (LodePatchBrowser *self, int step)
{
  guint n = lode_patch_browser_get_n_shown (self);
  guint pos = gtk_single_selection_get_selected (self->selection);

  if (n == 0)
    return GTK_INVALID_LIST_POSITION;
  if (pos == GTK_INVALID_LIST_POSITION)
    {
      /* The patch shown was filtered out: start from the first one. */
      pos = self->selected ? position_of (self, self->selected) : GTK_INVALID_LIST_POSITION;
      if (pos == GTK_INVALID_LIST_POSITION)
        return step > 0 ? 0 : GTK_INVALID_LIST_POSITION;
    }
  if ((step < 0 && pos < (guint) -step) || (step > 0 && pos + step >= n))
    return GTK_INVALID_LIST_POSITION;
  return pos + step;
}

gboolean
lode_patch_browser_can_move (LodePatchBrowser *self, int step)
{
  g_return_val_if_fail (LODE_IS_PATCH_BROWSER (self), FALSE);
  return target_position (self, step) != GTK_INVALID_LIST_POSITION;
}

gboolean
lode_patch_browser_move (LodePatchBrowser *self, int step)
{
  guint pos;

  g_return_val_if_fail (LODE_IS_PATCH_BROWSER (self), FALSE);
  pos = target_position (self, step);
  if (pos == GTK_INVALID_LIST_POSITION)
    return FALSE;
  return lode_patch_browser_select_position (self, pos);
}

gint64
lode_patch_browser_get_neighbour (LodePatchBrowser *self, int step)
{
  g_autoptr(LodePatchItem) item = NULL;
  guint pos;

  g_return_val_if_fail (LODE_IS_PATCH_BROWSER (self), 0);
  pos = target_position (self, step);
  if (pos == GTK_INVALID_LIST_POSITION)
    return 0;
  item = g_list_model_get_item (G_LIST_MODEL (self->selection), pos);
  return item ? lode_patch_item_get_id (item) : 0;
}

LodePatchItem *
lode_patch_browser_find (LodePatchBrowser *self, gint64 patch_id)
{
  g_return_val_if_fail (LODE_IS_PATCH_BROWSER (self), NULL);
  return g_hash_table_lookup (self->items, &patch_id);
}

void
lode_patch_browser_set_state (LodePatchBrowser *self, gint64 patch_id, LodeReviewState state)
{
  LodePatchItem *item = lode_patch_browser_find (self, patch_id);

  if (item == NULL)
    return;
  lode_patch_item_set_state (item, state);
  refilter (self);
}

void
lode_patch_browser_set_shares (LodePatchBrowser *self, const LodePatchShares *shares)
{
  LodePatchItem *item = lode_patch_browser_find (self, shares->patch_id);

  if (item != NULL)
    lode_patch_item_set_shares (item, shares);
}

void
lode_patch_browser_invalidate (LodePatchBrowser *self, gint64 patch_id)
{
  LodePatchItem *item = lode_patch_browser_find (self, patch_id);
  guint pos;

  if (self->thumbnailer != NULL)
    lode_thumbnailer_invalidate (self->thumbnailer, patch_id);
  if (item == NULL || !g_list_store_find (self->store, item, &pos))
    return;
  /* Removing and re-adding the item rebinds its row, which reloads the
   * thumbnail; the selection is kept by id. */
  g_object_ref (item);
  g_signal_handlers_block_by_func (self->selection, on_selected, self);
  g_list_store_remove (self->store, pos);
  g_list_store_insert (self->store, pos, item);
  g_signal_handlers_unblock_by_func (self->selection, on_selected, self);
  g_object_unref (item);
  pos = position_of (self, self->selected);
  if (pos != GTK_INVALID_LIST_POSITION)
    {
      g_signal_handlers_block_by_func (self->selection, on_selected, self);
      gtk_single_selection_set_selected (self->selection, pos);
      g_signal_handlers_unblock_by_func (self->selection, on_selected, self);
    }
}

void
lode_patch_browser_set_state_filter (LodePatchBrowser *self, int state)
{
  g_return_if_fail (LODE_IS_PATCH_BROWSER (self));
  gtk_drop_down_set_selected (self->state_dropdown, state < 0 ? 0 : (guint) state + 1);
  refilter (self);
}

void
lode_patch_browser_set_year_filter (LodePatchBrowser *self, int year)
{
  g_return_if_fail (LODE_IS_PATCH_BROWSER (self));
  for (guint y = 0; y < self->years->len; y++)
    if (g_array_index (self->years, int, y) == year)
      {
        gtk_drop_down_set_selected (self->year_dropdown, y + 1);
        return;
      }
  gtk_drop_down_set_selected (self->year_dropdown, 0);
}

void
lode_patch_browser_set_search (LodePatchBrowser *self, const char *text)
{
  g_return_if_fail (LODE_IS_PATCH_BROWSER (self));
  gtk_editable_set_text (GTK_EDITABLE (self->search_entry), text ? text : "");
  refilter (self);
}

void
lode_patch_browser_set_class_filter (LodePatchBrowser *self, gboolean mining, gboolean cocoa)
{
  g_return_if_fail (LODE_IS_PATCH_BROWSER (self));
  gtk_toggle_button_set_active (self->mining_toggle, mining);
  gtk_toggle_button_set_active (self->cocoa_toggle, cocoa);
}

void
lode_patch_browser_set_sort (LodePatchBrowser *self, LodePatchSort sort)
{
  g_return_if_fail (LODE_IS_PATCH_BROWSER (self));
  gtk_drop_down_set_selected (self->sort_dropdown, sort);
}

void
lode_patch_browser_focus_search (LodePatchBrowser *self)
{
  g_return_if_fail (LODE_IS_PATCH_BROWSER (self));
  gtk_widget_grab_focus (GTK_WIDGET (self->search_entry));
}
