/* lode-raster.h: a patch read through GDAL as float32 bands.
 *
 * Any raster GDAL reads (GeoTIFF first), any band count and any real numeric
 * type is converted to float32. Nodata samples hold NAN and the pixel's entry
 * in valid is 0. The CRS and geotransform are kept so that exports can write
 * them back unchanged.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define LODE_RASTER_ERROR (lode_raster_error_quark ())
GQuark lode_raster_error_quark (void);

typedef enum {
  LODE_RASTER_ERROR_OPEN,    /* missing, unreadable, corrupt or truncated file */
  LODE_RASTER_ERROR_FORMAT,  /* unsupported sample type, zero or absurd size */
  LODE_RASTER_ERROR_PROFILE, /* the band count does not fit a band profile */
  LODE_RASTER_ERROR_GEOREF,  /* no CRS or geotransform, or no way to WGS84 */
} LodeRasterError;

/* Larger rasters are refused with LODE_RASTER_ERROR_FORMAT. */
#define LODE_RASTER_MAX_PIXELS  ((gint64) 1 << 28)  /* width * height */
#define LODE_RASTER_MAX_SAMPLES ((gint64) 1 << 30)  /* width * height * n_bands */

typedef struct _LodeRaster
{
  char      *path;             /* as opened; NULL for lode_raster_new() */
  int        width;
  int        height;
  int        n_bands;
  /* band-major: data[(gsize) b * width * height + y * width + x];
   * nodata and non-finite samples hold NAN. NULL after open_header(). */
  float     *data;
  /* width * height: 1 where every band holds a finite, non-nodata value. */
  guint8    *valid;
  gboolean   has_geotransform;
  double     geotransform[6];  /* GDAL order; identity when absent */
  char      *crs_wkt;          /* never NULL; "" without a CRS */
  int        epsg;             /* 0 when unknown */
  /* n_bands names + NULL: the band description, else the band profile's
   * name for this band count, else "Band N" (1-based). */
  char     **band_names;
  gboolean  *band_has_nodata;  /* n_bands */
  double    *band_nodata;      /* n_bands; meaningful where band_has_nodata */
  int        source_type;      /* GDALDataType of the first band */
} LodeRaster;

LodeRaster  *lode_raster_open            (const char       *path,
                                          GError          **error);
LodeRaster  *lode_raster_open_header     (const char       *path,
                                          GError          **error);
/* An in-memory raster: data zero, valid 1, no CRS, identity geotransform,
 * band names as lode_raster_open() would give them. */
LodeRaster  *lode_raster_new             (int               width,
                                          int               height,
                                          int               n_bands);
/* Recomputes valid from data (after filling data by hand). */
void         lode_raster_update_valid    (LodeRaster       *r);
void         lode_raster_free            (LodeRaster       *r);

const float *lode_raster_band            (const LodeRaster *r,
                                          int               band);
/* The path, or a phrase naming an in-memory raster: for messages. */
const char  *lode_raster_display_name    (const LodeRaster *r);
/* GDAL's name of source_type, e.g. "UInt16". */
const char  *lode_raster_source_type_name (const LodeRaster *r);
/* Same size, geotransform (within 1e-6 of the pixel size) and CRS. */
gboolean     lode_raster_same_grid       (const LodeRaster *a,
                                          const LodeRaster *b);
void         lode_raster_pixel_to_map    (const LodeRaster *r,
                                          double            px,
                                          double            py,
                                          double           *x,
                                          double           *y);
/* FALSE when the raster has no CRS or the transformation fails. */
gboolean     lode_raster_pixel_to_lonlat (const LodeRaster *r,
                                          double            px,
                                          double            py,
                                          double           *lon,
                                          double           *lat);
/* The centre of the raster (pixel width / 2, height / 2) in WGS84
 * (EPSG:4326) degrees, from its CRS and geotransform; FALSE with
 * LODE_RASTER_ERROR_GEOREF, naming the raster, when it has no CRS or no
 * geotransform or the transformation fails. */
gboolean     lode_raster_centre_latlon   (const LodeRaster *r,
                                          double           *lat,
                                          double           *lon,
                                          GError          **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeRaster, lode_raster_free)

G_END_DECLS
