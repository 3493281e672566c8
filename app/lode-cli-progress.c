#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <unistd.h>

#include "lode-cli-progress.h"

static gboolean drawn;

void
lode_cli_progress (double fraction, const char *what, gpointer user_data)
{
  if (!isatty (STDERR_FILENO))
    return;
  g_printerr ("\r%3.0f%% %s\033[K", fraction * 100.0, what ? what : "");
  drawn = TRUE;
}

void
lode_cli_progress_end (void)
{
  if (drawn)
    g_printerr ("\n");
  drawn = FALSE;
}
