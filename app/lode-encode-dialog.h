/* lode-encode-dialog.h: "Encode Project": the SAM2 embedding of every patch
 * computed ahead of time in a worker thread (its own store and session),
 * with progress and cancel, so that later clicks answer at once. */
#pragma once

#include <gtk/gtk.h>

#include "lode-composite.h"
#include "lode-job-dialog.h"

G_BEGIN_DECLS

#define LODE_TYPE_ENCODE_DIALOG (lode_encode_dialog_get_type ())
G_DECLARE_FINAL_TYPE (LodeEncodeDialog, lode_encode_dialog, LODE, ENCODE_DIALOG, LodeJobDialog)

typedef struct
{
  guint encoded;   /* computed now */
  guint cached;    /* found in the cache */
  guint failed;    /* could not be read or encoded */
  guint total;
} LodeEncodeReport;

GtkWidget              *lode_encode_dialog_new        (GtkWindow               *parent,
                                                       const char              *project,
                                                       const char              *checkpoint,
                                                       int                      input_size,
                                                       guint64                  cache_bytes,
                                                       const LodeCompositeSpec *spec);
/* Starts the job; FALSE when one runs already. */
gboolean                lode_encode_dialog_start      (LodeEncodeDialog        *self);
/* The last finished job's counts, NULL before one finished. */
const LodeEncodeReport *lode_encode_dialog_get_report (LodeEncodeDialog        *self);
const char             *lode_encode_dialog_get_summary (LodeEncodeDialog       *self);

G_END_DECLS
