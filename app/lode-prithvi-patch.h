/* lode-prithvi-patch.h: a Prithvi-EO-2.0 segmenter on one patch, with the
 * time and place the "-TL" checkpoints encode.
 *
 * The date: SmallMinesDS images are dry-season January composites, so the
 * year is the patch's (given, or read from its file name,
 * IMG_GH_TTTT_YYYY.tif) and the day of year LODE_PRITHVI_PATCH_DAY unless
 * the user says otherwise. The place: the centre of the patch in WGS84
 * latitude and longitude, from its CRS and geotransform. A part that cannot
 * be known is left out, with a warning, never a failure. Models without
 * those encodings get no coordinates at all.
 *
 * Joins annotate/ (the raster) and model/ (the segmenter and the sample
 * coordinates of lode-train.h). */
#pragma once

#include <glib.h>

#include "lode-prithvi.h"
#include "lode-raster.h"
#include "lode-train.h"

G_BEGIN_DECLS

/* Mid-January, the middle of the composites' dry-season window. */
#define LODE_PRITHVI_PATCH_DAY 15

/* TRUE when the model has a temporal or a location encoding. */
gboolean lode_prithvi_patch_wants_coords (LodePrithviModel *model);

/* FALSE, with a message on stderr for command, unless 1 <= day <= 366. */
gboolean lode_prithvi_patch_check_day    (const char       *command,
                                          int               day_of_year);

/* The date and place of patch r: year (0: from r's file name), day_of_year
 * and r's centre. *warning (may be NULL) gets a sentence per part left out,
 * naming the file and why, or NULL when nothing is; free it. */
void     lode_prithvi_patch_coords       (const LodeRaster *r,
                                          int               year,
                                          int               day_of_year,
                                          LodeTrainCoords  *coords,
                                          char            **warning);

/* The parts of coords that model encodes, for one image: out pointing into
 * temporal[2] and location[2], or NULL when there are none. */
const LodePrithviCoords *lode_prithvi_patch_model_coords (LodePrithviModel      *model,
                                                          const LodeTrainCoords *coords,
                                                          float                 *temporal,
                                                          float                 *location,
                                                          LodePrithviCoords     *out);

/* A line for the command line saying which coordinates a -TL model gets:
 * those of coords (one patch), or, when coords is NULL, of each patch with
 * day day_of_year. NULL for a model without those encodings. */
char    *lode_prithvi_patch_describe     (LodePrithviModel      *model,
                                          const LodeTrainCoords *coords,
                                          int                    day_of_year);

/* Segments r (its bands as lode_prithvi_model_predict takes them, NaN
 * where r has no data) with the coordinates of coords (may be NULL; only
 * the parts the model encodes are passed). logits [classes, h, w] and mask
 * [h, w] (255 where r has no data) may each be NULL. Errors name r. */
gboolean lode_prithvi_patch_predict      (LodePrithviModel      *model,
                                          const LodeRaster      *r,
                                          const LodeTrainCoords *coords,
                                          float                 *logits,
                                          guint8                *mask,
                                          GError               **error);

G_END_DECLS
