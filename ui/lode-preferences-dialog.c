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

static void
lode_preferences_dialog_dispose (GObject *object)
{
  LodePreferencesDialog *self = LODE_PREFERENCES_DIALOG (object);

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
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Escape, 0, "window.close", NULL);
}

static void
lode_preferences_dialog_init (LodePreferencesDialog *self)
{
  g_autoptr(GtkStringList) presets = gtk_string_list_new (NULL);
  g_autoptr(GtkStringList) stretches = gtk_string_list_new (NULL);

  gtk_widget_init_template (GTK_WIDGET (self));
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
  return GTK_WIDGET (self);
}
