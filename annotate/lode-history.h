/* lode-history.h: undo and redo of the edits of one patch.
 *
 * Holds deltas (changed regions only) within a byte budget: past it, the
 * oldest undo entries are dropped, so lode_history_bytes() never exceeds
 * max_bytes (an edit larger than the whole budget cannot be undone).
 * Undo and redo move deltas between the two branches without copying. */
#pragma once

#include <glib.h>

#include "lode-edit.h"
#include "lode-mask.h"

G_BEGIN_DECLS

typedef struct _LodeHistory LodeHistory;

LodeHistory         *lode_history_new      (gsize          max_bytes);
void                 lode_history_free     (LodeHistory   *h);
/* Takes ownership of d and clears the redo branch; NULL (an edit that
 * changed nothing) changes nothing. */
void                 lode_history_push     (LodeHistory   *h,
                                            LodeMaskDelta *d);
/* Forgets everything, as when the patch is reloaded. */
void                 lode_history_clear    (LodeHistory   *h);
gboolean             lode_history_can_undo (LodeHistory   *h);
gboolean             lode_history_can_redo (LodeHistory   *h);
/* Apply the newest undo entry backward (or redo entry forward) to m and
 * return it (owned by the history), or NULL when there is none. */
const LodeMaskDelta *lode_history_undo     (LodeHistory   *h,
                                            LodeMask      *m);
const LodeMaskDelta *lode_history_redo     (LodeHistory   *h,
                                            LodeMask      *m);
guint                lode_history_n_undo   (LodeHistory   *h);
guint                lode_history_n_redo   (LodeHistory   *h);
gsize                lode_history_bytes    (LodeHistory   *h);
gsize                lode_history_max_bytes (LodeHistory  *h);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeHistory, lode_history_free)

G_END_DECLS
