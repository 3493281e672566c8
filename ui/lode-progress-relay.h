/* lode-progress-relay.h: progress from a worker thread to a progress bar.
 *
 * lode_progress_relay_report is a LodeProgressFunc that may be called from
 * any thread; each report reaches the bar in the main context, in order.
 * The relay holds the bar weakly: a bar destroyed meanwhile is left alone.
 * Reference counted: each report in flight holds the relay. */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

typedef struct _LodeProgressRelay LodeProgressRelay;

LodeProgressRelay *lode_progress_relay_new    (GtkProgressBar    *bar);
LodeProgressRelay *lode_progress_relay_ref    (LodeProgressRelay *relay);
void               lode_progress_relay_unref  (LodeProgressRelay *relay);
/* A LodeProgressFunc: user_data is the relay. */
void               lode_progress_relay_report (double             fraction,
                                               const char        *what,
                                               gpointer           user_data);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeProgressRelay, lode_progress_relay_unref)

G_END_DECLS
