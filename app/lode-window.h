/* lode-window.h: the main window: patch list, canvas, header bar. */
#pragma once

#include <gtk/gtk.h>

#include "lode-application.h"

G_BEGIN_DECLS

#define LODE_TYPE_WINDOW (lode_window_get_type ())
G_DECLARE_FINAL_TYPE (LodeWindow, lode_window, LODE, WINDOW, GtkApplicationWindow)

LodeWindow *lode_window_new          (LodeApplication *app);
/* Opens a project file; on failure shows a dialog and keeps what was open. */
gboolean    lode_window_open_project (LodeWindow      *self,
                                      GFile           *file);

/* For tests and the benchmark: what the window shows. */
GtkWidget  *lode_window_get_canvas   (LodeWindow      *self);
/* The patch on the canvas, 0 when none. */
gint64      lode_window_get_patch_id (LodeWindow      *self);
/* Selects the patch at position in the list; FALSE when there is none. */
gboolean    lode_window_select_patch (LodeWindow      *self,
                                      guint            position);

G_END_DECLS
