#define G_LOG_DOMAIN "lode-annotate"

#include "config.h"

#include <glib/gi18n.h>

#include "lode-demo.h"

G_DEFINE_QUARK (lode-demo-error-quark, lode_demo_error)

void
lode_demo_options_init (LodeDemoOptions *options)
{
  options->n_tiles = 24;
  options->seed = 2016;
  options->size = 128;
}

gboolean
lode_demo_write (const char *dir, const LodeDemoOptions *options,
                 LodeProgressFunc progress, gpointer user_data,
                 GCancellable *cancellable, GError **error)
{
  /* Replaced by the generator in the next commit. */
  g_set_error (error, LODE_DEMO_ERROR, LODE_DEMO_ERROR_INVALID, "demo generator missing");
  return FALSE;
}
