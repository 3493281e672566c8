#define G_LOG_DOMAIN "lode-ui"

#include "config.h"

#include <glib/gi18n.h>

#include "lode-composite.h"
#include "lode-preferences-dialog.h"

struct _LodePreferencesDialog
{
  GtkWindow      parent_instance;

  GtkDropDown   *composite_dropdown;
  GtkDropDown   *stretch_dropdown;
  GtkScale      *opacity_scale;
  GtkAdjustment *opacity_adjustment;
  GtkEntry      *reviewer_entry;
  GtkButton     *checkpoint_button;
  GtkLabel      *checkpoint_label;
  GtkButton     *checkpoint_clear;
  GtkDropDown   *size_dropdown;
  GtkAdjustment *cache_adjustment;
  GtkSwitch     *prefetch_switch;

  GSettings     *settings;
};

G_DEFINE_FINAL_TYPE (LodePreferencesDialog, lode_preferences_dialog, GTK_TYPE_WINDOW)

static const char *stretch_ids[] = { "percentile", "minmax", "fixed" };

static gboolean
composite_get (GValue *value, GVariant *variant, gpointer data)
{
  LodeCompositePreset p = LODE_COMPOSITE_TRUE_COLOUR;

  lode_composite_preset_from_id (g_variant_get_string (variant, NULL), &p);
  g_value_set_uint (value, p);
  return TRUE;
}

static GVariant *
composite_set (const GValue *value, const GVariantType *type, gpointer data)
{
  guint p = g_value_get_uint (value);

  if (p >= LODE_COMPOSITE_N_PRESETS)
    return NULL;
  return g_variant_new_string (lode_composite_preset_id (p));
}

static gboolean
stretch_get (GValue *value, GVariant *variant, gpointer data)
{
  const char *id = g_variant_get_string (variant, NULL);

  for (guint i = 0; i < G_N_ELEMENTS (stretch_ids); i++)
    if (g_str_equal (id, stretch_ids[i]))
      g_value_set_uint (value, i);
  return TRUE;
}

static GVariant *
stretch_set (const GValue *value, const GVariantType *type, gpointer data)
{
  guint i = g_value_get_uint (value);

  if (i >= G_N_ELEMENTS (stretch_ids))
    return NULL;
  return g_variant_new_string (stretch_ids[i]);
}

/* The input size dropdown: 1024 first, then 512. */
static gboolean
size_get (GValue *value, GVariant *variant, gpointer data)
{
  g_value_set_uint (value, g_variant_get_int32 (variant) == 512 ? 1 : 0);
  return TRUE;
}

static GVariant *
size_set (const GValue *value, const GVariantType *type, gpointer data)
{
  return g_variant_new_int32 (g_value_get_uint (value) == 1 ? 512 : 1024);
}

static void
update_checkpoint_label (LodePreferencesDialog *self)
{
  g_autofree char *path = g_settings_get_string (self->settings, "sam2-checkpoint");
  g_autofree char *name = path[0] != '\0' ? g_path_get_basename (path) : NULL;

  gtk_label_set_label (self->checkpoint_label, name ? name : _("(None)"));
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->checkpoint_label), path[0] != '\0' ? path : NULL);
  gtk_widget_set_sensitive (GTK_WIDGET (self->checkpoint_clear), path[0] != '\0');
}

static void
on_checkpoint_changed (GSettings *settings, const char *key, LodePreferencesDialog *self)
{
  update_checkpoint_label (self);
}

static void
on_checkpoint_response (GtkNativeDialog *chooser, int response, LodePreferencesDialog *self)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr(GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (chooser));
      g_autofree char *path = g_file_get_path (file);

      if (path != NULL)
        lode_preferences_dialog_set_checkpoint (self, path);
    }
  g_object_unref (chooser);
}

static void
on_checkpoint_clicked (GtkButton *button, LodePreferencesDialog *self)
{
  GtkFileChooserNative *chooser = gtk_file_chooser_native_new (_("Choose a SAM2.1 Checkpoint"), GTK_WINDOW (self),
                                                               GTK_FILE_CHOOSER_ACTION_OPEN,
                                                               _("_Select"), _("_Cancel"));
  g_autoptr(GtkFileFilter) filter = gtk_file_filter_new ();
  g_autoptr(GtkFileFilter) all = gtk_file_filter_new ();

  gtk_file_filter_set_name (filter, _("SAM2.1 checkpoints"));
  gtk_file_filter_add_pattern (filter, "*.pt");
  gtk_file_filter_add_pattern (filter, "*.pth");
  gtk_file_filter_add_pattern (filter, "*.safetensors");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (chooser), filter);
  gtk_file_filter_set_name (all, _("All files"));
  gtk_file_filter_add_pattern (all, "*");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (chooser), all);
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (chooser), TRUE);
  g_signal_connect (chooser, "response", G_CALLBACK (on_checkpoint_response), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (chooser));
}

static void
on_checkpoint_clear (GtkButton *button, LodePreferencesDialog *self)
{
  lode_preferences_dialog_set_checkpoint (self, NULL);
}

void
lode_preferences_dialog_set_checkpoint (LodePreferencesDialog *self, const char *path)
{
  g_return_if_fail (LODE_IS_PREFERENCES_DIALOG (self));
  g_settings_set_string (self->settings, "sam2-checkpoint", path ? path : "");
}

static void
lode_preferences_dialog_dispose (GObject *object)
{
  LodePreferencesDialog *self = LODE_PREFERENCES_DIALOG (object);

  if (self->settings != NULL)
    g_signal_handlers_disconnect_by_data (self->settings, self);
  g_clear_object (&self->settings);
  gtk_widget_dispose_template (GTK_WIDGET (self), LODE_TYPE_PREFERENCES_DIALOG);
  G_OBJECT_CLASS (lode_preferences_dialog_parent_class)->dispose (object);
}

static void
lode_preferences_dialog_class_init (LodePreferencesDialogClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = lode_preferences_dialog_dispose;
  gtk_widget_class_set_template_from_resource (widget_class, "/org/lodeapp/Lode/lode-preferences-dialog.ui");
  gtk_widget_class_bind_template_child (widget_class, LodePreferencesDialog, composite_dropdown);
  gtk_widget_class_bind_template_child (widget_class, LodePreferencesDialog, stretch_dropdown);
  gtk_widget_class_bind_template_child (widget_class, LodePreferencesDialog, opacity_scale);
  gtk_widget_class_bind_template_child (widget_class, LodePreferencesDialog, opacity_adjustment);
  gtk_widget_class_bind_template_child (widget_class, LodePreferencesDialog, reviewer_entry);
  gtk_widget_class_bind_template_child (widget_class, LodePreferencesDialog, checkpoint_button);
  gtk_widget_class_bind_template_child (widget_class, LodePreferencesDialog, checkpoint_label);
  gtk_widget_class_bind_template_child (widget_class, LodePreferencesDialog, checkpoint_clear);
  gtk_widget_class_bind_template_child (widget_class, LodePreferencesDialog, size_dropdown);
  gtk_widget_class_bind_template_child (widget_class, LodePreferencesDialog, cache_adjustment);
  gtk_widget_class_bind_template_child (widget_class, LodePreferencesDialog, prefetch_switch);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Escape, 0, "window.close", NULL);
}

static void
lode_preferences_dialog_init (LodePreferencesDialog *self)
{
  g_autoptr(GtkStringList) presets = gtk_string_list_new (NULL);
  g_autoptr(GtkStringList) stretches = gtk_string_list_new (NULL);
  g_autoptr(GtkStringList) sizes = gtk_string_list_new (NULL);

  gtk_widget_init_template (GTK_WIDGET (self));
  gtk_string_list_append (sizes, _("1024 pixels (the model’s own)"));
  gtk_string_list_append (sizes, _("512 pixels (faster, coarser)"));
  gtk_drop_down_set_model (self->size_dropdown, G_LIST_MODEL (sizes));
  g_signal_connect (self->checkpoint_button, "clicked", G_CALLBACK (on_checkpoint_clicked), self);
  g_signal_connect (self->checkpoint_clear, "clicked", G_CALLBACK (on_checkpoint_clear), self);
  /* Custom needs bands chosen per project: not a default. */
  for (int p = 0; p < LODE_COMPOSITE_CUSTOM; p++)
    gtk_string_list_append (presets, lode_composite_preset_label (p));
  gtk_drop_down_set_model (self->composite_dropdown, G_LIST_MODEL (presets));
  gtk_string_list_append (stretches, _("Percentiles (2 – 98 %)"));
  gtk_string_list_append (stretches, _("Minimum to maximum"));
  gtk_string_list_append (stretches, _("Fixed range"));
  gtk_drop_down_set_model (self->stretch_dropdown, G_LIST_MODEL (stretches));
}

GtkWidget *
lode_preferences_dialog_new (GtkWindow *parent, GSettings *settings)
{
  LodePreferencesDialog *self = g_object_new (LODE_TYPE_PREFERENCES_DIALOG, "transient-for", parent, NULL);

  self->settings = g_object_ref (settings);
  g_settings_bind_with_mapping (settings, "default-composite", self->composite_dropdown, "selected",
                                G_SETTINGS_BIND_DEFAULT, composite_get, composite_set, NULL, NULL);
  g_settings_bind_with_mapping (settings, "default-stretch", self->stretch_dropdown, "selected",
                                G_SETTINGS_BIND_DEFAULT, stretch_get, stretch_set, NULL, NULL);
  g_settings_bind (settings, "mask-opacity", self->opacity_adjustment, "value", G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (settings, "reviewer-name", self->reviewer_entry, "text", G_SETTINGS_BIND_DEFAULT);
  g_settings_bind_with_mapping (settings, "sam2-input-size", self->size_dropdown, "selected",
                                G_SETTINGS_BIND_DEFAULT, size_get, size_set, NULL, NULL);
  g_settings_bind (settings, "sam2-cache-mb", self->cache_adjustment, "value", G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (settings, "sam2-prefetch", self->prefetch_switch, "active", G_SETTINGS_BIND_DEFAULT);
  g_signal_connect (settings, "changed::sam2-checkpoint", G_CALLBACK (on_checkpoint_changed), self);
  update_checkpoint_label (self);
  return GTK_WIDGET (self);
}
