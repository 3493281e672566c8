/* lode-application.h: the GtkApplication. */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define LODE_TYPE_APPLICATION (lode_application_get_type ())
G_DECLARE_FINAL_TYPE (LodeApplication, lode_application, LODE, APPLICATION, GtkApplication)

LodeApplication *lode_application_new (void);

G_END_DECLS
