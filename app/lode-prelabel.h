/* lode-prelabel.h: a model version's masks as new revisions of patches.
 *
 * Runs a U-Net checkpoint over the project's patches and appends each
 * prediction as a revision with source "model" and the model version's id;
 * earlier revisions stay as they were. Patches whose history holds a manual
 * or SAM2 revision (edited by hand) are passed over unless asked. Runs in
 * the caller's thread with a store of its own on the project file. */
#pragma once

#include <gio/gio.h>

#include "lode-progress.h"
#include "lode-raster.h"
#include "lode-train.h"

G_BEGIN_DECLS

typedef enum {
  LODE_PRELABEL_ALL,         /* every patch */
  LODE_PRELABEL_UNLABELLED,  /* patches in the "unlabelled" state */
  LODE_PRELABEL_UNREVIEWED,  /* patches neither accepted nor rejected */
} LodePrelabelScope;

typedef struct
{
  guint labelled;   /* new revisions added */
  guint edited;     /* passed over: edited by hand */
  guint skipped;    /* passed over: outside the scope, or set aside as odd */
  guint failed;     /* could not be read or predicted */
  guint total;      /* patches in the project */
} LodePrelabelReport;

/* The class index of each pixel of r (255 where it has no data). The image
 * is normalised as the model was trained and padded to multiples of 32. */
guint8  *lode_prelabel_predict (LodeUnet              *model,
                                const LodeTrainConfig *config,
                                const LodeRaster      *r,
                                GError               **error);

/* Pre-labels with model version model_version_id of the project; or, when
 * it is 0, with checkpoint (a file written by lode train), which is first
 * added to the project as a model version. Fills report (may be NULL) and
 * returns FALSE with an error on failure or cancellation (what was stored
 * before stays). */
gboolean lode_prelabel_run     (const char         *project,
                                gint64              model_version_id,
                                const char         *checkpoint,
                                LodePrelabelScope   scope,
                                gboolean            include_edited,
                                LodeProgressFunc    progress,
                                gpointer            user_data,
                                LodePrelabelReport *report,
                                GCancellable       *cancellable,
                                GError            **error);

G_END_DECLS
