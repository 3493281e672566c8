/* lode-cli-progress.h: progress of long commands on stderr. */
#pragma once

#include <glib.h>

#include "lode-import.h"

G_BEGIN_DECLS

/* A LodeProgressFunc: a percentage line on a terminal, nothing otherwise. */
void     lode_cli_progress     (double fraction, const char *what, gpointer user_data);
/* Ends the progress line, if one was drawn. */
void     lode_cli_progress_end (void);

/* Makes project from source (import's work, shared with demo). */
gboolean lode_cli_import_into  (const char              *project,
                                const char              *source,
                                const LodeImportOptions *options,
                                gboolean                 quiet,
                                GError                 **error);
void     lode_cli_print_import_report (const LodeImportReport *report);

G_END_DECLS
