#define G_LOG_DOMAIN "lode-annotate"

#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gi18n.h>
#include <glib/gstdio.h>

/* GDAL's headers test compiler macros that GCC leaves undefined. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wundef"
#include <cpl_conv.h>
#include <cpl_error.h>
#include <gdal.h>
#include <ogr_srs_api.h>
#pragma GCC diagnostic pop

#include "lode-bands.h"
#include "lode-raster.h"

G_DEFINE_QUARK (lode-raster-error-quark, lode_raster_error)

/* Rows read at once are bounded so that the float64 staging buffer stays
 * near this many samples, whatever the raster's size. */
#define STAGING_SAMPLES (1 << 20)

static void
ensure_gdal (void)
{
  static gsize once;

  if (g_once_init_enter (&once))
    {
      GDALAllRegister ();
      g_once_init_leave (&once, 1);
    }
}

/* GDAL's messages are collected here while Lode talks to GDAL instead of
 * being printed; the first failure ends up in the GError. */
typedef struct
{
  char *first_failure;
} GdalErrors;

static void CPL_STDCALL
capture_gdal_error (CPLErr cls, CPLErrorNum num, const char *msg)
{
  GdalErrors *errors = CPLGetErrorHandlerUserData ();

  if (cls >= CE_Failure && errors->first_failure == NULL)
    errors->first_failure = g_strdup (msg);
  else
    g_debug ("GDAL (%d): %s", (int) num, msg);
}

static void
gdal_errors_push (GdalErrors *errors)
{
  errors->first_failure = NULL;
  CPLErrorReset ();
  CPLPushErrorHandlerEx (capture_gdal_error, errors);
}

static void
gdal_errors_pop (GdalErrors *errors)
{
  CPLPopErrorHandler ();
  g_clear_pointer (&errors->first_failure, g_free);
}

static const char *
gdal_errors_message (GdalErrors *errors)
{
  if (errors->first_failure != NULL)
    return errors->first_failure;
  /* Translators: stands in for GDAL's explanation when it gave none. */
  return _("unknown GDAL error");
}

void
lode_raster_free (LodeRaster *r)
{
  if (r == NULL)
    return;
  g_free (r->path);
  g_free (r->data);
  g_free (r->valid);
  g_free (r->crs_wkt);
  g_strfreev (r->band_names);
  g_free (r->band_has_nodata);
  g_free (r->band_nodata);
  g_free (r);
}

static LodeRaster *
raster_alloc (int n_bands)
{
  LodeRaster *r = g_new0 (LodeRaster, 1);

  r->n_bands = n_bands;
  r->geotransform[1] = 1.0;
  r->geotransform[5] = 1.0;
  r->crs_wkt = g_strdup ("");
  r->band_names = g_new0 (char *, n_bands + 1);
  r->band_has_nodata = g_new0 (gboolean, n_bands);
  r->band_nodata = g_new0 (double, n_bands);
  r->source_type = GDT_Float32;
  return r;
}

static char *
default_band_name (int n_bands, int b)
{
  LodeBandProfile profile = lode_band_profile_detect (n_bands);
  const char *name = lode_band_profile_band_name (profile, b);

  if (name != NULL)
    return g_strdup (name);
  /* Translators: the name of a band without a description; %d counts from 1. */
  return g_strdup_printf (_("Band %d"), b + 1);
}

LodeRaster *
lode_raster_new (int width, int height, int n_bands)
{
  LodeRaster *r;
  gsize n;

  g_return_val_if_fail (width > 0 && height > 0 && n_bands > 0, NULL);
  g_return_val_if_fail ((gint64) width * height * n_bands <= LODE_RASTER_MAX_SAMPLES, NULL);

  n = (gsize) width * height;
  r = raster_alloc (n_bands);
  r->width = width;
  r->height = height;
  r->data = g_new0 (float, n * n_bands);
  r->valid = g_malloc (n);
  memset (r->valid, 1, n);
  for (int b = 0; b < n_bands; b++)
    r->band_names[b] = default_band_name (n_bands, b);
  return r;
}

void
lode_raster_update_valid (LodeRaster *r)
{
  gsize n;

  g_return_if_fail (r != NULL && r->data != NULL && r->valid != NULL);

  n = (gsize) r->width * r->height;
  memset (r->valid, 1, n);
  for (int b = 0; b < r->n_bands; b++)
    {
      float *band = r->data + (gsize) b * n;

      for (gsize i = 0; i < n; i++)
        if (!isfinite (band[i]))
          {
            band[i] = NAN;
            r->valid[i] = 0;
          }
    }
}

const float *
lode_raster_band (const LodeRaster *r, int band)
{
  g_return_val_if_fail (r != NULL, NULL);
  g_return_val_if_fail (band >= 0 && band < r->n_bands, NULL);

  if (r->data == NULL)
    return NULL;
  return r->data + (gsize) band * r->width * r->height;
}

const char *
lode_raster_display_name (const LodeRaster *r)
{
  if (r->path != NULL)
    return r->path;
  return _("in-memory raster");
}

const char *
lode_raster_source_type_name (const LodeRaster *r)
{
  const char *name = GDALGetDataTypeName ((GDALDataType) r->source_type);

  return name != NULL ? name : "Unknown";
}

static void
read_crs (LodeRaster *r, GDALDatasetH ds)
{
  OGRSpatialReferenceH srs = GDALGetSpatialRef (ds);
  const char *options[] = { "FORMAT=WKT2_2019", NULL };
  char *wkt = NULL;
  const char *authority;

  if (srs == NULL)
    return;

  if (OSRExportToWktEx (srs, &wkt, options) == OGRERR_NONE && wkt != NULL)
    {
      g_free (r->crs_wkt);
      r->crs_wkt = g_strdup (wkt);
    }
  CPLFree (wkt);

  authority = OSRGetAuthorityName (srs, NULL);
  if (authority == NULL)
    {
      OGRSpatialReferenceH copy = OSRClone (srs);

      if (OSRAutoIdentifyEPSG (copy) == OGRERR_NONE)
        {
          authority = OSRGetAuthorityName (copy, NULL);
          if (authority != NULL && g_ascii_strcasecmp (authority, "EPSG") == 0)
            r->epsg = atoi (OSRGetAuthorityCode (copy, NULL));
        }
      OSRDestroySpatialReference (copy);
    }
  else if (g_ascii_strcasecmp (authority, "EPSG") == 0)
    {
      const char *code = OSRGetAuthorityCode (srs, NULL);

      r->epsg = code != NULL ? atoi (code) : 0;
    }
}

static gboolean
read_band_info (LodeRaster *r, GDALDatasetH ds, GError **error)
{
  for (int b = 0; b < r->n_bands; b++)
    {
      GDALRasterBandH band = GDALGetRasterBand (ds, b + 1);
      GDALDataType type = GDALGetRasterDataType (band);
      const char *description = GDALGetDescription (band);
      int has = FALSE;

      if (type == GDT_Unknown || GDALDataTypeIsComplex (type))
        {
          g_set_error (error, LODE_RASTER_ERROR, LODE_RASTER_ERROR_FORMAT,
                       /* Translators: “%s” is a file, %d a band, the last %s a type such as CInt16. */
                       _("“%s”: band %d has the sample type %s, which Lode cannot show"),
                       r->path, b + 1, GDALGetDataTypeName (type) ? GDALGetDataTypeName (type) : "?");
          return FALSE;
        }
      if (b == 0)
        r->source_type = type;

      if (type == GDT_Int64)
        {
          gint64 v = GDALGetRasterNoDataValueAsInt64 (band, &has);
          r->band_nodata[b] = (double) v;
        }
      else if (type == GDT_UInt64)
        {
          guint64 v = GDALGetRasterNoDataValueAsUInt64 (band, &has);
          r->band_nodata[b] = (double) v;
        }
      else
        r->band_nodata[b] = GDALGetRasterNoDataValue (band, &has);
      r->band_has_nodata[b] = has;

      if (description != NULL && description[0] != '\0')
        r->band_names[b] = g_strdup (description);
      else
        r->band_names[b] = default_band_name (r->n_bands, b);
    }
  return TRUE;
}

static LodeRaster *
open_dataset (const char *path, GDALDatasetH *out_ds, GdalErrors *errors, GError **error)
{
  g_autoptr(LodeRaster) r = NULL;
  GDALDatasetH ds;
  int width, height, n_bands;
  GStatBuf st;

  ensure_gdal ();

  ds = GDALOpenEx (path, GDAL_OF_RASTER | GDAL_OF_READONLY | GDAL_OF_VERBOSE_ERROR,
                   NULL, NULL, NULL);
  if (ds == NULL)
    {
      /* Say plainly when the file is not there or cannot be read; GDAL's
       * virtual paths (/vsizip/...) and subdatasets are left to GDAL. */
      if (g_stat (path, &st) != 0 && !g_str_has_prefix (path, "/vsi") && strchr (path, ':') == NULL)
        {
          int saved = errno;
          g_set_error (error, LODE_RASTER_ERROR, LODE_RASTER_ERROR_OPEN,
                       /* Translators: “%s” is a file, the second %s the system's reason. */
                       _("Cannot open “%s”: %s"), path, g_strerror (saved));
        }
      else
        g_set_error (error, LODE_RASTER_ERROR, LODE_RASTER_ERROR_OPEN,
                     /* Translators: “%s” is a file, the second %s GDAL's reason. */
                     _("Cannot read “%s” as a raster: %s"), path, gdal_errors_message (errors));
      return NULL;
    }

  width = GDALGetRasterXSize (ds);
  height = GDALGetRasterYSize (ds);
  n_bands = GDALGetRasterCount (ds);
  if (width <= 0 || height <= 0 || n_bands <= 0)
    {
      g_set_error (error, LODE_RASTER_ERROR, LODE_RASTER_ERROR_FORMAT,
                   /* Translators: “%s” is a file; the numbers are its width, height and bands. */
                   _("“%s” is empty: %d × %d pixels, %d bands"), path, width, height, n_bands);
      GDALClose (ds);
      return NULL;
    }
  if ((gint64) width * height > LODE_RASTER_MAX_PIXELS
      || (gint64) width * height * n_bands > LODE_RASTER_MAX_SAMPLES)
    {
      g_set_error (error, LODE_RASTER_ERROR, LODE_RASTER_ERROR_FORMAT,
                   /* Translators: “%s” is a file; the numbers are its width, height and bands. */
                   _("“%s” is too large to open as a patch: %d × %d pixels, %d bands"),
                   path, width, height, n_bands);
      GDALClose (ds);
      return NULL;
    }

  r = raster_alloc (n_bands);
  r->path = g_strdup (path);
  r->width = width;
  r->height = height;
  r->has_geotransform = GDALGetGeoTransform (ds, r->geotransform) == CE_None;
  if (!r->has_geotransform)
    {
      static const double identity[6] = { 0, 1, 0, 0, 0, 1 };
      memcpy (r->geotransform, identity, sizeof identity);
    }
  read_crs (r, ds);
  if (!read_band_info (r, ds, error))
    {
      GDALClose (ds);
      return NULL;
    }

  *out_ds = ds;
  return g_steal_pointer (&r);
}

static gboolean
is_nodata (double v, gboolean has_nodata, double nodata)
{
  if (!isfinite (v))
    return TRUE;
  return has_nodata && v == nodata;
}

static gboolean
read_pixels (LodeRaster *r, GDALDatasetH ds, GdalErrors *errors, GError **error)
{
  gsize n = (gsize) r->width * r->height;
  int rows = MAX (1, MIN (r->height, STAGING_SAMPLES / MAX (1, r->width * r->n_bands)));
  g_autofree double *staging = g_new (double, (gsize) rows * r->width * r->n_bands);

  r->data = g_new (float, n * r->n_bands);
  r->valid = g_malloc (n);
  memset (r->valid, 1, n);

  for (int y0 = 0; y0 < r->height; y0 += rows)
    {
      int ny = MIN (rows, r->height - y0);
      gsize chunk = (gsize) ny * r->width;
      CPLErr err;

      err = GDALDatasetRasterIOEx (ds, GF_Read, 0, y0, r->width, ny, staging, r->width, ny,
                                   GDT_Float64, r->n_bands, NULL,
                                   sizeof (double), sizeof (double) * r->width,
                                   sizeof (double) * chunk, NULL);
      if (err != CE_None)
        {
          g_set_error (error, LODE_RASTER_ERROR, LODE_RASTER_ERROR_OPEN,
                       /* Translators: “%s” is a file, the second %s GDAL's reason. */
                       _("Cannot read the pixels of “%s”: %s"),
                       r->path, gdal_errors_message (errors));
          return FALSE;
        }

      for (int b = 0; b < r->n_bands; b++)
        {
          const double *src = staging + (gsize) b * chunk;
          float *dst = r->data + (gsize) b * n + (gsize) y0 * r->width;
          guint8 *valid = r->valid + (gsize) y0 * r->width;
          gboolean has = r->band_has_nodata[b];
          double nodata = r->band_nodata[b];

          for (gsize i = 0; i < chunk; i++)
            {
              float f = (float) src[i];

              if (is_nodata (src[i], has, nodata) || !isfinite (f))
                {
                  dst[i] = NAN;
                  valid[i] = 0;
                }
              else
                dst[i] = f;
            }
        }
    }
  return TRUE;
}

/* Reads the last row of every band: the last bytes of most files, so a file
 * cut short after its header is caught without reading all of it. */
static gboolean
probe_pixels (LodeRaster *r, GDALDatasetH ds, GdalErrors *errors, GError **error)
{
  g_autofree double *row = g_new (double, (gsize) r->width * r->n_bands);

  if (GDALDatasetRasterIOEx (ds, GF_Read, 0, r->height - 1, r->width, 1, row, r->width, 1,
                             GDT_Float64, r->n_bands, NULL, sizeof (double),
                             sizeof (double) * r->width, sizeof (double) * r->width,
                             NULL) != CE_None)
    {
      g_set_error (error, LODE_RASTER_ERROR, LODE_RASTER_ERROR_OPEN,
                   _("Cannot read the pixels of “%s”: %s"),
                   r->path, gdal_errors_message (errors));
      return FALSE;
    }
  return TRUE;
}

static LodeRaster *
open_common (const char *path, gboolean with_pixels, GError **error)
{
  g_autoptr(LodeRaster) r = NULL;
  GDALDatasetH ds = NULL;
  GdalErrors errors;
  gboolean ok = TRUE;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  gdal_errors_push (&errors);
  r = open_dataset (path, &ds, &errors, error);
  if (r != NULL)
    ok = with_pixels ? read_pixels (r, ds, &errors, error) : probe_pixels (r, ds, &errors, error);
  if (ds != NULL)
    GDALClose (ds);
  gdal_errors_pop (&errors);

  return ok ? g_steal_pointer (&r) : NULL;
}

LodeRaster *
lode_raster_open (const char *path, GError **error)
{
  return open_common (path, TRUE, error);
}

LodeRaster *
lode_raster_open_header (const char *path, GError **error)
{
  return open_common (path, FALSE, error);
}

static double
pixel_size (const double *gt)
{
  return MAX (MAX (fabs (gt[1]), fabs (gt[5])), MAX (fabs (gt[2]), fabs (gt[4])));
}

static OGRSpatialReferenceH
srs_from_wkt (const char *wkt)
{
  OGRSpatialReferenceH srs = OSRNewSpatialReference (NULL);

  if (OSRSetFromUserInput (srs, wkt) != OGRERR_NONE)
    {
      OSRDestroySpatialReference (srs);
      return NULL;
    }
  OSRSetAxisMappingStrategy (srs, OAMS_TRADITIONAL_GIS_ORDER);
  return srs;
}

static gboolean
same_crs (const char *a, const char *b)
{
  OGRSpatialReferenceH sa, sb;
  gboolean same;
  GdalErrors errors;

  if (strcmp (a, b) == 0)
    return TRUE;
  if (a[0] == '\0' || b[0] == '\0')
    return FALSE;

  ensure_gdal ();
  gdal_errors_push (&errors);
  sa = srs_from_wkt (a);
  sb = srs_from_wkt (b);
  same = sa != NULL && sb != NULL && OSRIsSame (sa, sb);
  if (sa != NULL)
    OSRDestroySpatialReference (sa);
  if (sb != NULL)
    OSRDestroySpatialReference (sb);
  gdal_errors_pop (&errors);
  return same;
}

gboolean
lode_raster_same_grid (const LodeRaster *a, const LodeRaster *b)
{
  double tol;

  g_return_val_if_fail (a != NULL && b != NULL, FALSE);

  if (a->width != b->width || a->height != b->height)
    return FALSE;
  if (a->has_geotransform != b->has_geotransform)
    return FALSE;
  tol = 1e-6 * MAX (pixel_size (a->geotransform), pixel_size (b->geotransform));
  for (int i = 0; i < 6; i++)
    if (fabs (a->geotransform[i] - b->geotransform[i]) > tol)
      return FALSE;
  return same_crs (a->crs_wkt, b->crs_wkt);
}

void
lode_raster_pixel_to_map (const LodeRaster *r, double px, double py, double *x, double *y)
{
  const double *gt;

  g_return_if_fail (r != NULL);

  gt = r->geotransform;
  if (x != NULL)
    *x = gt[0] + px * gt[1] + py * gt[2];
  if (y != NULL)
    *y = gt[3] + px * gt[4] + py * gt[5];
}

/* (px, py) in WGS84 degrees; FALSE with error set (when not NULL) on
 * failure. */
static gboolean
to_lonlat (const LodeRaster *r, double px, double py, double *lon, double *lat, GError **error)
{
  OGRSpatialReferenceH src, dst;
  OGRCoordinateTransformationH ct = NULL;
  GdalErrors errors;
  double x, y;
  gboolean ok = FALSE;

  if (r->crs_wkt[0] == '\0' || !r->has_geotransform)
    {
      g_set_error (error, LODE_RASTER_ERROR, LODE_RASTER_ERROR_GEOREF,
                   r->crs_wkt[0] == '\0' ? _("“%s” has no coordinate reference system")
                                         : _("“%s” has no geotransform"),
                   lode_raster_display_name (r));
      return FALSE;
    }

  ensure_gdal ();
  gdal_errors_push (&errors);
  lode_raster_pixel_to_map (r, px, py, &x, &y);
  src = srs_from_wkt (r->crs_wkt);
  dst = OSRNewSpatialReference (NULL);
  if (src != NULL && OSRImportFromEPSG (dst, 4326) == OGRERR_NONE)
    {
      OSRSetAxisMappingStrategy (dst, OAMS_TRADITIONAL_GIS_ORDER);
      ct = OCTNewCoordinateTransformation (src, dst);
    }
  if (ct != NULL && OCTTransform (ct, 1, &x, &y, NULL) && isfinite (x) && isfinite (y))
    {
      if (lon != NULL)
        *lon = x;
      if (lat != NULL)
        *lat = y;
      ok = TRUE;
    }
  else
    g_set_error (error, LODE_RASTER_ERROR, LODE_RASTER_ERROR_GEOREF,
                 _("The coordinates of “%s” cannot be converted to latitude and longitude: %s"),
                 lode_raster_display_name (r), gdal_errors_message (&errors));
  if (ct != NULL)
    OCTDestroyCoordinateTransformation (ct);
  if (src != NULL)
    OSRDestroySpatialReference (src);
  OSRDestroySpatialReference (dst);
  gdal_errors_pop (&errors);
  return ok;
}

gboolean
lode_raster_pixel_to_lonlat (const LodeRaster *r, double px, double py, double *lon, double *lat)
{
  g_return_val_if_fail (r != NULL, FALSE);

  return to_lonlat (r, px, py, lon, lat, NULL);
}

gboolean
lode_raster_centre_latlon (const LodeRaster *r, double *lat, double *lon, GError **error)
{
  g_return_val_if_fail (r != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return to_lonlat (r, r->width / 2.0, r->height / 2.0, lon, lat, error);
}
