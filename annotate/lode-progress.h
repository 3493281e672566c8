/* lode-progress.h: how long work reports how far it has gone.
 * fraction is in [0, 1]; what is a short translated phrase or NULL.
 * Called from whichever thread does the work. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef void (*LodeProgressFunc) (double      fraction,
                                  const char *what,
                                  gpointer    user_data);

G_END_DECLS
