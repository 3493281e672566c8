#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>

#include "lode-canvas.h"
#include "lode-window.h"

struct _LodeWindow
{
  GtkApplicationWindow parent_instance;

  GtkLabel *title_label;
  GtkLabel *subtitle_label;
  GtkStack *list_stack;
  GtkListView *patch_list;
  GtkStack *canvas_stack;
  LodeCanvas *canvas;
  GtkLabel *status_label;

  GSettings *settings;
};

G_DEFINE_FINAL_TYPE (LodeWindow, lode_window, GTK_TYPE_APPLICATION_WINDOW)

LodeWindow *
lode_window_new (LodeApplication *app)
{
  return g_object_new (LODE_TYPE_WINDOW, "application", app, NULL);
}

gboolean
lode_window_open_project (LodeWindow *self, GFile *file)
{
  g_autofree char *name = g_file_get_basename (file);

  gtk_label_set_label (self->subtitle_label, name);
  gtk_widget_set_visible (GTK_WIDGET (self->subtitle_label), TRUE);
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
lode_window_dispose (GObject *object)
{
  LodeWindow *self = LODE_WINDOW (object);

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
}

static void
lode_window_init (LodeWindow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  self->settings = g_settings_new (LODE_APP_ID);
}
