#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>

#include "lode-application.h"
#include "lode-window.h"

struct _LodeApplication
{
  GtkApplication parent_instance;
};

G_DEFINE_FINAL_TYPE (LodeApplication, lode_application, GTK_TYPE_APPLICATION)

LodeApplication *
lode_application_new (void)
{
  return g_object_new (LODE_TYPE_APPLICATION,
                       "application-id", LODE_APP_ID,
                       "flags", G_APPLICATION_HANDLES_OPEN | G_APPLICATION_NON_UNIQUE,
                       "resource-base-path", "/org/lodeapp/Lode",
                       NULL);
}

static LodeWindow *
lode_application_get_or_create_window (LodeApplication *self)
{
  GtkWindow *window = gtk_application_get_active_window (GTK_APPLICATION (self));

  if (window == NULL)
    window = GTK_WINDOW (lode_window_new (self));
  return LODE_WINDOW (window);
}

static void
lode_application_activate (GApplication *app)
{
  LodeWindow *window = lode_application_get_or_create_window (LODE_APPLICATION (app));

  gtk_window_present (GTK_WINDOW (window));
}

static void
lode_application_open (GApplication  *app,
                       GFile        **files,
                       int            n_files,
                       const char    *hint)
{
  LodeWindow *window = lode_application_get_or_create_window (LODE_APPLICATION (app));

  if (n_files > 0)
    lode_window_open_project (window, files[0]);
  gtk_window_present (GTK_WINDOW (window));
}

static void
lode_application_about (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  GtkApplication *app = GTK_APPLICATION (user_data);
  const char *authors[] = { _("The Lode developers"), NULL };

  gtk_show_about_dialog (gtk_application_get_active_window (app),
                         "program-name", "Lode",
                         "logo-icon-name", LODE_APP_ID,
                         "version", PACKAGE_VERSION,
                         "comments", _("Correct and review mining and cocoa masks on Sentinel-1/2 patches"),
                         "license-type", GTK_LICENSE_GPL_3_0,
                         "authors", authors,
                         "translator-credits", _("translator-credits"),
                         "copyright", _("© 2026 The Lode developers"),
                         NULL);
}

static void
lode_application_quit (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  GApplication *app = G_APPLICATION (user_data);
  GList *windows = gtk_application_get_windows (GTK_APPLICATION (app));

  /* Closing the windows lets each one finish what it is saving. */
  for (GList *l = windows; l != NULL;)
    {
      GList *next = l->next;
      gtk_window_close (GTK_WINDOW (l->data));
      l = next;
    }
}

static const GActionEntry app_actions[] = {
  { "about", lode_application_about },
  { "quit", lode_application_quit },
};

static void
lode_application_startup (GApplication *app)
{
  static const char *quit_accels[] = { "<Control>q", NULL };
  static const char *open_accels[] = { "<Control>o", NULL };
  static const char *help_accels[] = { "<Control>question", NULL };
  g_autoptr(GtkCssProvider) css = gtk_css_provider_new ();

  G_APPLICATION_CLASS (lode_application_parent_class)->startup (app);

  g_action_map_add_action_entries (G_ACTION_MAP (app), app_actions, G_N_ELEMENTS (app_actions), app);
  gtk_application_set_accels_for_action (GTK_APPLICATION (app), "app.quit", quit_accels);
  gtk_application_set_accels_for_action (GTK_APPLICATION (app), "win.open", open_accels);
  gtk_application_set_accels_for_action (GTK_APPLICATION (app), "win.show-help-overlay", help_accels);

  gtk_css_provider_load_from_resource (css, "/org/lodeapp/Lode/style.css");
  gtk_style_context_add_provider_for_display (gdk_display_get_default (),
                                              GTK_STYLE_PROVIDER (css),
                                              GTK_STYLE_PROVIDER_PRIORITY_APPLICATION);
}

static void
lode_application_class_init (LodeApplicationClass *klass)
{
  GApplicationClass *app_class = G_APPLICATION_CLASS (klass);

  app_class->activate = lode_application_activate;
  app_class->open = lode_application_open;
  app_class->startup = lode_application_startup;
}

static void
lode_application_init (LodeApplication *self)
{
}
