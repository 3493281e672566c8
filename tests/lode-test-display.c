#define G_LOG_DOMAIN "lode-test"

#include "config.h"

#include <stdlib.h>

#include "lode-background.h"
#include "lode-test-display.h"

/* A test that ends while thumbnails still load must not exit under them:
 * GDAL and PROJ tear down at exit. Registered after the libraries' own
 * destructors, so it runs before them. */
static void
drain_at_exit (void)
{
  if (!lode_background_drain (LODE_BACKGROUND_EXIT_WAIT_MS))
    g_printerr ("background jobs still running at exit\n");
}

static void
skip_no_display (void)
{
  g_test_skip ("no display: run the display suite under xvfb-run");
}

gboolean
lode_test_display_init (const char *path)
{
  if ((g_getenv ("DISPLAY") == NULL && g_getenv ("WAYLAND_DISPLAY") == NULL) || !gtk_init_check ())
    {
      g_test_add_func (path, skip_no_display);
      return FALSE;
    }
  atexit (drain_at_exit);
  return TRUE;
}

static gboolean
on_timeout (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

gboolean
lode_test_wait_for (gboolean (*cond) (gpointer data), gpointer data, guint timeout_ms)
{
  gboolean timed_out = FALSE;
  guint id = g_timeout_add (timeout_ms, on_timeout, &timed_out);

  while (!timed_out && (cond == NULL || !cond (data)))
    g_main_context_iteration (NULL, TRUE);
  if (!timed_out)
    g_source_remove (id);
  return cond == NULL || cond (data);
}

void
lode_test_settle (GtkWidget *widget)
{
  lode_test_wait_for (NULL, NULL, 300);
  while (g_main_context_pending (NULL))
    g_main_context_iteration (NULL, FALSE);
}

char *
lode_test_screenshot (GtkWidget *widget, const char *name)
{
  g_autoptr(GdkPaintable) paintable = gtk_widget_paintable_new (widget);
  g_autoptr(GtkSnapshot) snapshot = gtk_snapshot_new ();
  g_autoptr(GskRenderNode) node = NULL;
  g_autoptr(GdkTexture) texture = NULL;
  GskRenderer *renderer;
  int w = gtk_widget_get_width (widget);
  int h = gtk_widget_get_height (widget);
  char *path;

  g_assert_cmpint (w, >, 0);
  g_assert_cmpint (h, >, 0);
  gdk_paintable_snapshot (paintable, snapshot, w, h);
  node = gtk_snapshot_to_node (snapshot);
  g_assert_nonnull (node);
  renderer = gtk_native_get_renderer (gtk_widget_get_native (widget));
  texture = gsk_renderer_render_texture (renderer, node, &GRAPHENE_RECT_INIT (0, 0, w, h));
  path = g_build_filename (g_getenv ("G_TEST_BUILDDIR") ? g_getenv ("G_TEST_BUILDDIR") : ".", name, NULL);
  g_assert_true (gdk_texture_save_to_png (texture, path));
  g_test_message ("screenshot: %s", path);
  return path;
}
