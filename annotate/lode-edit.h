/* lode-edit.h: edits of a mask, each returning what it changed.
 *
 * Every operation changes the mask in place and returns a delta: the
 * bounding box of the pixels it changed with their values before and after
 * (NULL when nothing changed). Pixel (x, y) covers [x, x+1) x [y, y+1); its
 * centre is (x + 0.5, y + 0.5) and geometry is tested at centres. No edit
 * paints LODE_MASK_NODATA pixels or overwrites a class the table locks
 * (the table may be NULL: nothing is locked). */
#pragma once

#include <glib.h>

#include "lode-classes.h"
#include "lode-mask.h"

G_BEGIN_DECLS

typedef struct
{
  int     x, y, width, height;  /* bounding box of the changed pixels */
  guint8 *before;               /* width x height, row-major */
  guint8 *after;
} LodeMaskDelta;

/* A delta of the box with both planes uninitialised. */
LodeMaskDelta *lode_mask_delta_new         (int                  x,
                                            int                  y,
                                            int                  width,
                                            int                  height);
void           lode_mask_delta_free        (LodeMaskDelta       *d);
/* Memory the delta holds, for history budgets. */
gsize          lode_mask_delta_bytes       (const LodeMaskDelta *d);
/* forward writes after (redo), backward writes before (undo). */
void           lode_mask_delta_apply       (const LodeMaskDelta *d,
                                            LodeMask            *m,
                                            gboolean             forward);
/* Blob: "LDLT", version, x, y, width, height, zlib of before then after. */
GBytes        *lode_mask_delta_serialize   (const LodeMaskDelta *d);
LodeMaskDelta *lode_mask_delta_deserialize (GBytes              *bytes,
                                            GError             **error);

/* Brush: paints class_id on the pixels whose centre lies within radius of
 * the polyline xy (n_points pairs; one point paints a disc). An eraser is
 * a stroke with class 0, or with whichever class it should leave. */
LodeMaskDelta *lode_edit_stroke            (LodeMask             *m,
                                            const LodeClassTable *t,
                                            const double         *xy,
                                            int                   n_points,
                                            double                radius,
                                            guint8                class_id);
/* Eraser within a class: like a stroke painting background (class 0), but
 * only over pixels of only_class (any class when only_class < 0). */
LodeMaskDelta *lode_edit_erase             (LodeMask             *m,
                                            const LodeClassTable *t,
                                            const double         *xy,
                                            int                   n_points,
                                            double                radius,
                                            int                   only_class);
/* Flood fill of the 4- or 8-connected region of (x, y)'s class. */
LodeMaskDelta *lode_edit_fill              (LodeMask             *m,
                                            const LodeClassTable *t,
                                            int                   x,
                                            int                   y,
                                            guint8                class_id,
                                            gboolean              eight_connected);
/* Polygon (closed; n_points >= 3) filled by the even-odd rule. */
LodeMaskDelta *lode_edit_polygon           (LodeMask             *m,
                                            const LodeClassTable *t,
                                            const double         *xy,
                                            int                   n_points,
                                            guint8                class_id);

typedef enum {
  LODE_APPLY_REPLACE,   /* inside -> class_id; class_id outside -> background */
  LODE_APPLY_ADD,       /* inside -> class_id */
  LODE_APPLY_SUBTRACT,  /* class_id inside -> background */
} LodeApplyMode;

/* Applies an outside binary mask (m's size, nonzero = inside), from SAM2 or
 * a model, within the active class class_id. */
LodeMaskDelta *lode_edit_apply             (LodeMask             *m,
                                            const LodeClassTable *t,
                                            const guint8         *outside,
                                            LodeApplyMode         mode,
                                            guint8                class_id);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeMaskDelta, lode_mask_delta_free)

G_END_DECLS
