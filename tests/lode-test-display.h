/* lode-test-display.h: helpers for the display suite. */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

/* TRUE when a display is there; otherwise adds one test at path that
 * reports itself skipped, so the suite says why it did nothing. */
gboolean lode_test_display_init      (const char *path);
/* Spins the main loop until cond(data) is TRUE or timeout_ms passes. */
gboolean lode_test_wait_for          (gboolean (*cond) (gpointer data),
                                      gpointer data,
                                      guint    timeout_ms);
/* Lets the window lay out and draw a few frames. */
void     lode_test_settle            (GtkWidget *widget);
/* Renders the widget as shown into a PNG in the build folder; returns its path. */
char    *lode_test_screenshot        (GtkWidget  *widget,
                                      const char *name);

G_END_DECLS
