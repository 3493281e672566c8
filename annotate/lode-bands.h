/* lode-bands.h: band profiles, the names and statistics of known band sets.
 *
 * SMALLMINES_13 is the full SmallMinesDS patch (Sentinel-2 B2..B12, Sentinel-1
 * VV and VH, DEM); SMALLMINES_6 is the subset [0,1,2,7,8,9] used by the
 * published models. Everything else is GENERIC.
 */
#pragma once

#include <glib.h>

#include "lode-raster.h"

G_BEGIN_DECLS

typedef enum {
  LODE_BAND_PROFILE_GENERIC,
  LODE_BAND_PROFILE_SMALLMINES_13,
  LODE_BAND_PROFILE_SMALLMINES_6,
} LodeBandProfile;

LodeBandProfile  lode_band_profile_detect    (int               n_bands);
/* "generic", "smallmines-13", "smallmines-6" */
const char      *lode_band_profile_name      (LodeBandProfile   p);
/* 0 for generic */
int              lode_band_profile_n_bands   (LodeBandProfile   p);
/* "B2".."B12", "B8A", "VV", "VH", "DEM"; NULL out of range or generic */
const char      *lode_band_profile_band_name (LodeBandProfile   p,
                                              int               i);
/* Index of a band by name or alias ("blue", "nir", "swir1", "B02", ...),
 * case-insensitive; -1 when the profile has no such band. */
int              lode_band_profile_find      (LodeBandProfile   p,
                                              const char       *name);
/* A wrong band count gives LODE_RASTER_ERROR_PROFILE. Generic fits all. */
gboolean         lode_band_profile_check     (LodeBandProfile   p,
                                              const LodeRaster *r,
                                              GError          **error);
/* The published normalisation statistics, n_bands values; NULL for generic. */
const double    *lode_band_profile_mean      (LodeBandProfile   p);
const double    *lode_band_profile_std       (LodeBandProfile   p);

/* The 6-band set of the published models as indices into the 13 bands:
 * 0, 1, 2, 7, 8, 9 (B, G, R, narrow NIR, SWIR1, SWIR2). */
const int       *lode_band_profile_six_indices (void);

/* The canonical name ("B8A", "VV", "DEM", ...) of a band name or alias,
 * or NULL when the name is not known. */
const char      *lode_band_name_canonical    (const char       *name);

G_END_DECLS
