/* lode-document.h: one patch open for editing.
 *
 * Joins the raster, the current mask, the undo history and the store: each
 * edit is applied to the mask in memory, committed to the store as its own
 * transaction (the delta and the revision it produces), and pushed on the
 * history. Undo and redo are persisted the same way, so the history
 * survives a restart. No GTK. */
#pragma once

#include <glib.h>

#include "lode-classes.h"
#include "lode-edit.h"
#include "lode-history.h"
#include "lode-mask.h"
#include "lode-raster.h"
#include "lode-store.h"

G_BEGIN_DECLS

/* In-memory undo steps kept per patch; older steps stay in the store. */
#define LODE_DOCUMENT_HISTORY_BYTES (8u * 1024u * 1024u)

#define LODE_DOCUMENT_ERROR (lode_document_error_quark ())
GQuark lode_document_error_quark (void);

typedef enum {
  /* the patch got a revision from elsewhere; the document now shows it */
  LODE_DOCUMENT_ERROR_CHANGED,
} LodeDocumentError;

typedef struct _LodeDocument LodeDocument;

/* Reads the patch's image and its latest mask (an empty one when it has
 * none) and rebuilds its history from the store. The store must outlive
 * the document. classes NULL reads the project's class table. */
LodeDocument     *lode_document_open         (LodeStore            *store,
                                              gint64                patch_id,
                                              GError              **error);
void              lode_document_free         (LodeDocument         *doc);

const LodePatch  *lode_document_get_patch    (LodeDocument         *doc);
const LodeRaster *lode_document_get_raster   (LodeDocument         *doc);
const LodeMask   *lode_document_get_mask     (LodeDocument         *doc);
/* The mask as imported; NULL when the patch came without one. */
const LodeMask   *lode_document_get_original (LodeDocument         *doc);
LodeClassTable   *lode_document_get_classes  (LodeDocument         *doc);
/* The revision the mask in memory equals; 0 before the first edit of a
 * patch that had no mask. */
gint64            lode_document_get_revision (LodeDocument         *doc);

/* Commits an edit already applied to lode_document_get_mask_for_edit():
 * takes delta (NULL: nothing changed, nothing is saved). On failure the
 * edit is taken back from the mask and the error says why. */
LodeMask         *lode_document_get_mask_for_edit (LodeDocument    *doc);
gboolean          lode_document_commit       (LodeDocument         *doc,
                                              LodeMaskDelta        *delta,
                                              LodeRevisionSource    source,
                                              const char           *author,
                                              GError              **error);

/* The tools, each one committed edit. */
gboolean          lode_document_stroke       (LodeDocument         *doc,
                                              const double         *xy,
                                              int                   n_points,
                                              double                radius,
                                              guint8                class_id,
                                              const char           *author,
                                              GError              **error);
gboolean          lode_document_erase        (LodeDocument         *doc,
                                              const double         *xy,
                                              int                   n_points,
                                              double                radius,
                                              const char           *author,
                                              GError              **error);
gboolean          lode_document_fill         (LodeDocument         *doc,
                                              int                   x,
                                              int                   y,
                                              guint8                class_id,
                                              const char           *author,
                                              GError              **error);
gboolean          lode_document_polygon      (LodeDocument         *doc,
                                              const double         *xy,
                                              int                   n_points,
                                              guint8                class_id,
                                              const char           *author,
                                              GError              **error);
gboolean          lode_document_apply        (LodeDocument         *doc,
                                              const guint8         *outside,
                                              LodeApplyMode         mode,
                                              guint8                class_id,
                                              LodeRevisionSource    source,
                                              const char           *author,
                                              GError              **error);

gboolean          lode_document_can_undo     (LodeDocument         *doc);
gboolean          lode_document_can_redo     (LodeDocument         *doc);
gboolean          lode_document_undo         (LodeDocument         *doc,
                                              const char           *author,
                                              GError              **error);
gboolean          lode_document_redo         (LodeDocument         *doc,
                                              const char           *author,
                                              GError              **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeDocument, lode_document_free)

G_END_DECLS
