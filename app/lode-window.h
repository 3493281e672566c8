/* lode-window.h: the main window: patch list, canvas, header bar. */
#pragma once

#include <gtk/gtk.h>

#include "lode-application.h"
#include "lode-compare-view.h"
#include "lode-patch-browser.h"
#include "lode-sam2-tool.h"

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

LodeCompareView  *lode_window_get_compare_view (LodeWindow *self);
LodePatchBrowser *lode_window_get_browser      (LodeWindow *self);
/* The other year's patch in the compare view, 0 when none is open. */
gint64      lode_window_get_pair_id  (LodeWindow      *self);
/* The status line's text. */
const char *lode_window_get_status   (LodeWindow      *self);
/* The review comment, as typed in the review panel. */
void        lode_window_set_comment  (LodeWindow      *self,
                                      const char      *comment);
/* Microseconds the last patch switch took, from selection to the new patch
 * rendered for the canvas (document read, composite and overlay). */
gint64      lode_window_get_last_switch_us (LodeWindow *self);
typedef struct
{
  double sync_ms;   /* the switch's work on the main loop */
  double paint_ms;  /* the paint of the frame that shows it */
  double shown_ms;  /* from the selection to the end of that paint, waiting
                     * for the frame clock included */
  guint  frames;    /* frames begun since the selection: 1 is the next */
} LodeSwitchTiming;

/* Switches patch n times as a person would: seed 0 steps through the list
 * (next, turning back at either end), another seed jumps to random patches.
 * After each switch it waits for the frame that shows the new patch and
 * for the idle work that follows. Fills timings (n of them) and returns how
 * many switches it timed. Needs a shown window. */
guint       lode_window_time_switches (LodeWindow       *self,
                                       guint             n,
                                       guint32           seed,
                                       LodeSwitchTiming *timings);
/* Selects the index-th revision of the history (newest first). */
gboolean    lode_window_select_revision (LodeWindow   *self,
                                         guint         index);

/* The SAM2 tool's engine (prompts, prediction, chosen candidate). */
LodeSam2Tool *lode_window_get_sam2_tool (LodeWindow *self);
/* TRUE while the message asking for a checkpoint is shown. */
gboolean    lode_window_get_sam2_message_shown (LodeWindow *self);

G_END_DECLS
