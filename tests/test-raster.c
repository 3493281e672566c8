/* Rasters: every numeric type reads back exactly as float32, nodata becomes
 * NAN and invalid, the CRS and geotransform survive, broken files give a
 * clear error naming the file; band profiles. */
#include "config.h"

#include <math.h>
#include <string.h>

#include <glib/gstdio.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wundef"
#include <gdal.h>
#include <ogr_srs_api.h>
#pragma GCC diagnostic pop

#include "lode-bands.h"
#include "lode-raster.h"
#include "lode-test-util.h"

typedef struct
{
  GDALDataType  type;
  int           width, height, n_bands;
  const double *values;        /* band-major, n_bands * width * height */
  gboolean      has_nodata;
  double        nodata;
  const char  **descriptions;  /* n_bands or NULL */
  int           epsg;          /* 0: no CRS */
  const double *geotransform;  /* NULL: none */
} TifSpec;

static char *
write_tif (const char *dir, const char *name, const TifSpec *t)
{
  char *path = g_build_filename (dir, name, NULL);
  GDALDriverH driver;
  GDALDatasetH ds;

  GDALAllRegister ();
  driver = GDALGetDriverByName ("GTiff");
  g_assert_nonnull (driver);
  ds = GDALCreate (driver, path, t->width, t->height, t->n_bands, t->type, NULL);
  g_assert_nonnull (ds);
  if (t->geotransform != NULL)
    g_assert_cmpint (GDALSetGeoTransform (ds, (double *) t->geotransform), ==, CE_None);
  if (t->epsg != 0)
    {
      OGRSpatialReferenceH srs = OSRNewSpatialReference (NULL);

      g_assert_cmpint (OSRImportFromEPSG (srs, t->epsg), ==, OGRERR_NONE);
      g_assert_cmpint (GDALSetSpatialRef (ds, srs), ==, CE_None);
      OSRDestroySpatialReference (srs);
    }
  for (int b = 0; b < t->n_bands; b++)
    {
      GDALRasterBandH band = GDALGetRasterBand (ds, b + 1);

      if (t->has_nodata && t->type == GDT_Int64)
        g_assert_cmpint (GDALSetRasterNoDataValueAsInt64 (band, (gint64) t->nodata), ==, CE_None);
      else if (t->has_nodata)
        g_assert_cmpint (GDALSetRasterNoDataValue (band, t->nodata), ==, CE_None);
      if (t->descriptions != NULL)
        GDALSetDescription (band, t->descriptions[b]);
      g_assert_cmpint (GDALRasterIO (band, GF_Write, 0, 0, t->width, t->height,
                                     (double *) t->values + (gsize) b * t->width * t->height,
                                     t->width, t->height, GDT_Float64, 0, 0), ==, CE_None);
    }
  GDALClose (ds);
  return path;
}

static const double utm30_gt[6] = { 621000, 10, 0, 696500, 0, -10 };

static void
assert_values (const LodeRaster *r, const double *values)
{
  gsize n = (gsize) r->width * r->height;

  for (int b = 0; b < r->n_bands; b++)
    for (gsize i = 0; i < n; i++)
      g_assert_cmpfloat (lode_raster_band (r, b)[i], ==, (float) values[b * n + i]);
}

static void
test_float32_13 (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *path = NULL;
  g_autoptr(LodeRaster) r = NULL;
  g_autoptr(GError) error = NULL;
  double values[13 * 5 * 3];
  TifSpec t = { GDT_Float32, 5, 3, 13, values, FALSE, 0, NULL, 32630, utm30_gt };

  for (gsize i = 0; i < G_N_ELEMENTS (values); i++)
    values[i] = (double) i * 37.25 - 400.5;
  path = write_tif (dir, "IMG_GH_0001_2016.tif", &t);

  r = lode_raster_open (path, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (r->path, ==, path);
  g_assert_cmpint (r->width, ==, 5);
  g_assert_cmpint (r->height, ==, 3);
  g_assert_cmpint (r->n_bands, ==, 13);
  g_assert_cmpstr (lode_raster_source_type_name (r), ==, "Float32");
  assert_values (r, values);
  for (int i = 0; i < 15; i++)
    g_assert_cmpint (r->valid[i], ==, 1);
  /* Without descriptions the names come from the 13-band profile. */
  g_assert_cmpstr (r->band_names[0], ==, "B2");
  g_assert_cmpstr (r->band_names[7], ==, "B8A");
  g_assert_cmpstr (r->band_names[10], ==, "VV");
  g_assert_cmpstr (r->band_names[12], ==, "DEM");
  g_assert_null (r->band_names[13]);
  g_assert_false (r->band_has_nodata[0]);
  /* CRS and geotransform. */
  g_assert_cmpint (r->epsg, ==, 32630);
  g_assert_nonnull (strstr (r->crs_wkt, "UTM zone 30N"));
  g_assert_true (r->has_geotransform);
  for (int i = 0; i < 6; i++)
    g_assert_cmpfloat (r->geotransform[i], ==, utm30_gt[i]);

  lode_test_rmtree (dir);
}

static void
test_integer_types (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  static const double u16[] = { 0, 1, 65535, 12345, 54321, 2 };
  static const double i16[] = { -32768, -9999, 32767, -1, 0, 7 };
  static const double u8[] = { 0, 255, 17, 42, 128, 3 };
  static const struct {
    GDALDataType type;
    const double *values;
    const char   *name;
  } cases[] = {
    { GDT_UInt16, u16, "UInt16" },
    { GDT_Int16, i16, "Int16" },
    { GDT_Byte, u8, "Byte" },
  };

  for (gsize c = 0; c < G_N_ELEMENTS (cases); c++)
    {
      TifSpec t = { cases[c].type, 3, 2, 1, cases[c].values, FALSE, 0, NULL, 0, NULL };
      g_autofree char *file = g_strdup_printf ("%s.tif", cases[c].name);
      g_autofree char *path = write_tif (dir, file, &t);
      g_autoptr(GError) error = NULL;
      g_autoptr(LodeRaster) r = lode_raster_open (path, &error);

      g_assert_no_error (error);
      g_assert_cmpstr (lode_raster_source_type_name (r), ==, cases[c].name);
      assert_values (r, cases[c].values);
      /* Without a nodata tag every value counts, -9999 included. */
      for (int i = 0; i < 6; i++)
        g_assert_cmpint (r->valid[i], ==, 1);
      /* No CRS, no geotransform: empty WKT, identity transform. */
      g_assert_cmpstr (r->crs_wkt, ==, "");
      g_assert_cmpint (r->epsg, ==, 0);
      g_assert_false (r->has_geotransform);
      g_assert_cmpstr (r->band_names[0], ==, "Band 1");
    }
  lode_test_rmtree (dir);
}

static void
test_nodata (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  static const double values[] = {
    /* band 1 */ 100, -9999, 300, 400,
    /* band 2 */ 5, 6, -9999, 8,
  };
  const char *names[] = { "red", "nir" };
  TifSpec t = { GDT_Int16, 2, 2, 2, values, TRUE, -9999, names, 4326, NULL };
  g_autofree char *path = write_tif (dir, "nodata.tif", &t);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeRaster) r = lode_raster_open (path, &error);

  g_assert_no_error (error);
  g_assert_true (r->band_has_nodata[0] && r->band_has_nodata[1]);
  g_assert_cmpfloat (r->band_nodata[0], ==, -9999);
  g_assert_cmpfloat (lode_raster_band (r, 0)[0], ==, 100);
  g_assert_true (isnan (lode_raster_band (r, 0)[1]));
  g_assert_true (isnan (lode_raster_band (r, 1)[2]));
  /* The other band keeps its value where one band is nodata. */
  g_assert_cmpfloat (lode_raster_band (r, 1)[1], ==, 6);
  g_assert_cmpint (r->valid[0], ==, 1);
  g_assert_cmpint (r->valid[1], ==, 0);
  g_assert_cmpint (r->valid[2], ==, 0);
  g_assert_cmpint (r->valid[3], ==, 1);
  /* Descriptions win over the generated names; geographic CRS. */
  g_assert_cmpstr (r->band_names[0], ==, "red");
  g_assert_cmpstr (r->band_names[1], ==, "nir");
  g_assert_cmpint (r->epsg, ==, 4326);
  lode_test_rmtree (dir);
}

static void
test_wide_types (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  static const double i64[] = { -5000000, 16777216, 0, 255, 3, -1 };
  static const double f64[] = { 0.5, -3.25, 1e6, -1e30, 1e-3, 42 };
  TifSpec t64 = { GDT_Int64, 3, 2, 1, i64, TRUE, 255, NULL, 0, NULL };
  TifSpec tf = { GDT_Float64, 3, 2, 1, f64, TRUE, -1e30, NULL, 0, NULL };
  g_autofree char *p64 = write_tif (dir, "i64.tif", &t64);
  g_autofree char *pf = write_tif (dir, "f64.tif", &tf);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeRaster) r64 = lode_raster_open (p64, &error);
  g_autoptr(LodeRaster) rf = NULL;

  g_assert_no_error (error);
  g_assert_cmpstr (lode_raster_source_type_name (r64), ==, "Int64");
  g_assert_true (r64->band_has_nodata[0]);
  g_assert_cmpfloat (r64->band_nodata[0], ==, 255);
  g_assert_cmpfloat (r64->data[0], ==, -5000000);
  g_assert_cmpfloat (r64->data[1], ==, 16777216);
  g_assert_true (isnan (r64->data[3]));
  g_assert_cmpint (r64->valid[3], ==, 0);
  g_assert_cmpfloat (r64->data[5], ==, -1);

  rf = lode_raster_open (pf, &error);
  g_assert_no_error (error);
  g_assert_cmpfloat (rf->data[0], ==, 0.5f);
  g_assert_cmpfloat (rf->data[1], ==, -3.25f);
  g_assert_cmpfloat (rf->data[2], ==, 1e6f);
  g_assert_true (isnan (rf->data[3]));
  g_assert_cmpfloat (rf->data[4], ==, 1e-3f);
  g_assert_cmpint (rf->valid[3], ==, 0);
  g_assert_cmpint (rf->valid[4], ==, 1);
  lode_test_rmtree (dir);
}

static void
test_complex_refused (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  static const double v[] = { 1, 2, 3, 4 };
  TifSpec t = { GDT_CInt16, 2, 2, 1, v, FALSE, 0, NULL, 0, NULL };
  g_autofree char *path = write_tif (dir, "complex.tif", &t);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeRaster) r = lode_raster_open (path, &error);

  g_assert_null (r);
  g_assert_error (error, LODE_RASTER_ERROR, LODE_RASTER_ERROR_FORMAT);
  g_assert_nonnull (strstr (error->message, path));
  g_assert_nonnull (strstr (error->message, "CInt16"));
  lode_test_rmtree (dir);
}

static void
test_absurd_size (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *path = g_build_filename (dir, "huge.vrt", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeRaster) r = NULL;
  const char *vrt =
    "<VRTDataset rasterXSize=\"200000\" rasterYSize=\"200000\">\n"
    "  <VRTRasterBand dataType=\"Float32\" band=\"1\"/>\n"
    "</VRTDataset>\n";

  g_assert_true (g_file_set_contents (path, vrt, -1, NULL));
  r = lode_raster_open_header (path, &error);
  g_assert_null (r);
  g_assert_error (error, LODE_RASTER_ERROR, LODE_RASTER_ERROR_FORMAT);
  g_assert_nonnull (strstr (error->message, path));
  lode_test_rmtree (dir);
}

static void
test_shared_sample (void)
{
  const char *shared = lode_test_shared_dir ();
  g_autofree char *input = NULL;
  g_autofree char *label = NULL;
  g_autoptr(LodeRaster) r = NULL;
  g_autoptr(LodeRaster) h = NULL;
  g_autoptr(LodeRaster) l = NULL;
  g_autoptr(GError) error = NULL;
  double sum = 0;
  gsize n = 0, ones = 0;

  if (shared == NULL)
    return;
  input = g_build_filename (shared, "samples", "regression_test_0_input.tif", NULL);
  label = g_build_filename (shared, "samples", "segmentation_test_0_label.tif", NULL);

  r = lode_raster_open (input, &error);
  g_assert_no_error (error);
  g_assert_cmpint (r->width, ==, 224);
  g_assert_cmpint (r->height, ==, 224);
  g_assert_cmpint (r->n_bands, ==, 10);
  g_assert_cmpint (r->epsg, ==, 32614);
  g_assert_cmpfloat (r->geotransform[0], ==, 440280);
  g_assert_cmpfloat (r->geotransform[3], ==, 3159720);
  g_assert_cmpfloat (r->geotransform[1], ==, 30);
  g_assert_cmpfloat (r->geotransform[5], ==, -30);
  g_assert_true (r->band_has_nodata[0]);
  g_assert_cmpfloat (r->band_nodata[0], ==, -9999);
  g_assert_cmpstr (r->band_names[9], ==, "Band 10");
  /* GDAL's own statistics of band 1: mean 458.35837850765. */
  for (gsize i = 0; i < (gsize) 224 * 224; i++)
    if (r->valid[i])
      {
        sum += r->data[i];
        n++;
      }
  g_assert_cmpuint (n, >, 0);
  g_assert_cmpfloat_with_epsilon (sum / n, 458.35837850765, 1e-3);

  h = lode_raster_open_header (input, &error);
  g_assert_no_error (error);
  g_assert_null (h->data);
  g_assert_null (h->valid);
  g_assert_cmpint (h->n_bands, ==, 10);
  g_assert_cmpint (h->epsg, ==, 32614);
  g_assert_true (lode_raster_same_grid (r, h));

  l = lode_raster_open (label, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (lode_raster_source_type_name (l), ==, "Int64");
  g_assert_cmpint (l->n_bands, ==, 1);
  g_assert_cmpstr (l->band_names[0], ==, "band_1");
  for (gsize i = 0; i < (gsize) 224 * 224; i++)
    {
      g_assert_true (l->data[i] == 0 || l->data[i] == 1);
      ones += l->data[i] == 1;
    }
  /* GDAL's statistics: mean 0.50161431760203 over 50176 pixels. */
  g_assert_cmpuint (ones, ==, 25169);
  g_assert_false (lode_raster_same_grid (r, l));
}

static void
assert_open_error (const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeRaster) r = lode_raster_open (path, &error);

  g_assert_null (r);
  g_assert_error (error, LODE_RASTER_ERROR, LODE_RASTER_ERROR_OPEN);
  g_assert_nonnull (strstr (error->message, path));
  g_test_message ("%s", error->message);
}

static void
test_broken_files (void)
{
  const char *shared = lode_test_shared_dir ();
  g_autofree char *dir = NULL;
  g_autofree char *input = NULL;
  g_autofree char *contents = NULL;
  g_autofree char *missing = NULL;
  g_autofree char *garbage = NULL;
  gsize length;
  static const gsize cuts[] = { 8, 300, 4000, 600000 };

  if (shared == NULL)
    return;
  dir = lode_test_mkdtemp ();
  input = g_build_filename (shared, "samples", "regression_test_0_input.tif", NULL);
  g_assert_true (g_file_get_contents (input, &contents, &length, NULL));

  for (gsize c = 0; c < G_N_ELEMENTS (cuts); c++)
    {
      g_autofree char *name = g_strdup_printf ("cut-%" G_GSIZE_FORMAT ".tif", cuts[c]);
      g_autofree char *path = g_build_filename (dir, name, NULL);

      g_assert_cmpuint (cuts[c], <, length);
      g_assert_true (g_file_set_contents (path, contents, cuts[c], NULL));
      assert_open_error (path);
    }

  garbage = g_build_filename (dir, "garbage.tif", NULL);
  g_assert_true (g_file_set_contents (garbage, "this is not a GeoTIFF at all\n\x01\x02", -1, NULL));
  assert_open_error (garbage);

  missing = g_build_filename (dir, "no-such-file.tif", NULL);
  assert_open_error (missing);
  lode_test_rmtree (dir);
}

/* GDAL's complaints go into the GError, not onto the terminal. */
static void
test_quiet_errors (void)
{
  if (g_test_subprocess ())
    {
      g_autofree char *dir = lode_test_mkdtemp ();
      g_autofree char *path = g_build_filename (dir, "bad.tif", NULL);
      g_autoptr(GError) error = NULL;

      static const char garbage[] = "II*\0\x08\0\0\0garbage";

      g_file_set_contents (path, garbage, sizeof garbage - 1, NULL);
      g_assert_null (lode_raster_open (path, &error));
      g_assert_nonnull (error);
      lode_test_rmtree (dir);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr_unmatched ("*ERROR*");
}

static LodeRaster *
grid_raster (int width, int height, const double *gt, int epsg)
{
  LodeRaster *r = lode_raster_new (width, height, 1);

  if (gt != NULL)
    {
      memcpy (r->geotransform, gt, 6 * sizeof (double));
      r->has_geotransform = TRUE;
    }
  if (epsg != 0)
    {
      OGRSpatialReferenceH srs = OSRNewSpatialReference (NULL);
      char *wkt = NULL;

      g_assert_cmpint (OSRImportFromEPSG (srs, epsg), ==, OGRERR_NONE);
      OSRExportToWkt (srs, &wkt);
      g_free (r->crs_wkt);
      r->crs_wkt = g_strdup (wkt);
      r->epsg = epsg;
      VSIFree (wkt);
      OSRDestroySpatialReference (srs);
    }
  return r;
}

static void
test_same_grid (void)
{
  double shifted[6], nudged[6];
  g_autoptr(LodeRaster) a = grid_raster (8, 8, utm30_gt, 32630);
  g_autoptr(LodeRaster) b = grid_raster (8, 8, utm30_gt, 32630);
  g_autoptr(LodeRaster) c = grid_raster (8, 9, utm30_gt, 32630);
  g_autoptr(LodeRaster) d = NULL, e = NULL, f = NULL, g = NULL;

  memcpy (shifted, utm30_gt, sizeof shifted);
  shifted[0] += 10;
  memcpy (nudged, utm30_gt, sizeof nudged);
  nudged[3] += 1e-7;
  d = grid_raster (8, 8, shifted, 32630);
  e = grid_raster (8, 8, nudged, 32630);
  f = grid_raster (8, 8, utm30_gt, 32631);
  g = grid_raster (8, 8, utm30_gt, 0);

  g_assert_true (lode_raster_same_grid (a, b));
  g_assert_false (lode_raster_same_grid (a, c));
  g_assert_false (lode_raster_same_grid (a, d));
  g_assert_true (lode_raster_same_grid (a, e));
  g_assert_false (lode_raster_same_grid (a, f));
  g_assert_false (lode_raster_same_grid (a, g));
}

static void
test_lonlat (void)
{
  g_autoptr(LodeRaster) r = grid_raster (128, 128, utm30_gt, 32630);
  g_autoptr(LodeRaster) bare = grid_raster (128, 128, NULL, 0);
  double x, y, lon, lat, lon2, lat2;

  lode_raster_pixel_to_map (r, 0.5, 0.5, &x, &y);
  g_assert_cmpfloat (x, ==, 621005);
  g_assert_cmpfloat (y, ==, 696495);

  g_assert_true (lode_raster_pixel_to_lonlat (r, 0, 0, &lon, &lat));
  g_test_message ("UTM 30N 621000 696500 -> lon %.6f lat %.6f", lon, lat);
  /* Ghana: about 1.9 W, 6.3 N (longitude first). */
  g_assert_cmpfloat_with_epsilon (lon, -1.9, 0.05);
  g_assert_cmpfloat_with_epsilon (lat, 6.3, 0.05);
  /* 128 pixels of 10 m east and south: further east, further south. */
  g_assert_true (lode_raster_pixel_to_lonlat (r, 128, 128, &lon2, &lat2));
  g_assert_cmpfloat (lon2, >, lon);
  g_assert_cmpfloat (lat2, <, lat);
  g_assert_cmpfloat_with_epsilon (lon2 - lon, 1280 / 110574.0, 2e-4);

  g_assert_false (lode_raster_pixel_to_lonlat (bare, 0, 0, &lon, &lat));
}

/* The centre in latitude and longitude, and a clear refusal without a CRS
 * or a geotransform. */
static void
test_centre (void)
{
  g_autoptr(LodeRaster) r = grid_raster (128, 64, utm30_gt, 32630);
  g_autoptr(LodeRaster) bare = grid_raster (128, 128, NULL, 0);
  g_autoptr(LodeRaster) no_gt = grid_raster (128, 128, utm30_gt, 32630);
  g_autoptr(GError) error = NULL;
  double lat, lon, lon2, lat2;

  g_assert_true (lode_raster_centre_latlon (r, &lat, &lon, &error));
  g_assert_no_error (error);
  /* latitude first; the centre is 64 x 32 pixels from the corner */
  g_assert_true (lode_raster_pixel_to_lonlat (r, 64, 32, &lon2, &lat2));
  g_assert_cmpfloat (lat, ==, lat2);
  g_assert_cmpfloat (lon, ==, lon2);
  g_assert_cmpfloat_with_epsilon (lat, 6.3, 0.05);
  g_assert_cmpfloat_with_epsilon (lon, -1.9, 0.05);

  g_assert_false (lode_raster_centre_latlon (bare, &lat, &lon, &error));
  g_assert_error (error, LODE_RASTER_ERROR, LODE_RASTER_ERROR_GEOREF);
  g_assert_nonnull (strstr (error->message, "coordinate reference system"));
  g_assert_nonnull (strstr (error->message, lode_raster_display_name (bare)));
  g_clear_error (&error);

  no_gt->has_geotransform = FALSE;
  g_assert_false (lode_raster_centre_latlon (no_gt, &lat, &lon, &error));
  g_assert_error (error, LODE_RASTER_ERROR, LODE_RASTER_ERROR_GEOREF);
  g_assert_nonnull (strstr (error->message, "geotransform"));
}

static void
test_profiles (void)
{
  g_autoptr(LodeRaster) r13 = lode_raster_new (2, 2, 13);
  g_autoptr(LodeRaster) r6 = lode_raster_new (2, 2, 6);
  g_autoptr(GError) error = NULL;
  const double *mean6, *std6;

  g_assert_cmpint (lode_band_profile_detect (13), ==, LODE_BAND_PROFILE_SMALLMINES_13);
  g_assert_cmpint (lode_band_profile_detect (6), ==, LODE_BAND_PROFILE_SMALLMINES_6);
  g_assert_cmpint (lode_band_profile_detect (10), ==, LODE_BAND_PROFILE_GENERIC);
  g_assert_cmpint (lode_band_profile_n_bands (LODE_BAND_PROFILE_SMALLMINES_13), ==, 13);
  g_assert_cmpint (lode_band_profile_n_bands (LODE_BAND_PROFILE_SMALLMINES_6), ==, 6);
  g_assert_cmpint (lode_band_profile_n_bands (LODE_BAND_PROFILE_GENERIC), ==, 0);
  g_assert_cmpstr (lode_band_profile_name (LODE_BAND_PROFILE_SMALLMINES_6), ==, "smallmines-6");

  /* FORMAT.md's band order and the 6-band subset [0,1,2,7,8,9]. */
  g_assert_cmpstr (lode_band_profile_band_name (LODE_BAND_PROFILE_SMALLMINES_13, 2), ==, "B4");
  g_assert_cmpstr (lode_band_profile_band_name (LODE_BAND_PROFILE_SMALLMINES_13, 11), ==, "VH");
  g_assert_cmpstr (lode_band_profile_band_name (LODE_BAND_PROFILE_SMALLMINES_6, 3), ==, "B8A");
  g_assert_cmpstr (lode_band_profile_band_name (LODE_BAND_PROFILE_SMALLMINES_6, 5), ==, "B12");
  g_assert_null (lode_band_profile_band_name (LODE_BAND_PROFILE_SMALLMINES_6, 6));
  g_assert_cmpstr (r6->band_names[4], ==, "B11");

  g_assert_cmpint (lode_band_profile_find (LODE_BAND_PROFILE_SMALLMINES_13, "blue"), ==, 0);
  g_assert_cmpint (lode_band_profile_find (LODE_BAND_PROFILE_SMALLMINES_13, "NIR"), ==, 6);
  g_assert_cmpint (lode_band_profile_find (LODE_BAND_PROFILE_SMALLMINES_13, "b8a"), ==, 7);
  g_assert_cmpint (lode_band_profile_find (LODE_BAND_PROFILE_SMALLMINES_13, "SWIR_1"), ==, 8);
  g_assert_cmpint (lode_band_profile_find (LODE_BAND_PROFILE_SMALLMINES_13, "B02"), ==, 0);
  g_assert_cmpint (lode_band_profile_find (LODE_BAND_PROFILE_SMALLMINES_13, "vv"), ==, 10);
  g_assert_cmpint (lode_band_profile_find (LODE_BAND_PROFILE_SMALLMINES_13, "elevation"), ==, 12);
  g_assert_cmpint (lode_band_profile_find (LODE_BAND_PROFILE_SMALLMINES_6, "swir2"), ==, 5);
  g_assert_cmpint (lode_band_profile_find (LODE_BAND_PROFILE_SMALLMINES_6, "VV"), ==, -1);
  g_assert_cmpint (lode_band_profile_find (LODE_BAND_PROFILE_SMALLMINES_13, "cloud"), ==, -1);
  g_assert_cmpint (lode_band_profile_find (LODE_BAND_PROFILE_GENERIC, "blue"), ==, -1);

  g_assert_cmpfloat (lode_band_profile_mean (LODE_BAND_PROFILE_SMALLMINES_13)[12], ==, 192.83874697);
  g_assert_cmpfloat (lode_band_profile_std (LODE_BAND_PROFILE_SMALLMINES_13)[0], ==, 223.43533204);
  mean6 = lode_band_profile_mean (LODE_BAND_PROFILE_SMALLMINES_6);
  std6 = lode_band_profile_std (LODE_BAND_PROFILE_SMALLMINES_6);
  g_assert_cmpfloat (mean6[3], ==, 3832.39764247);
  g_assert_cmpfloat (mean6[5], ==, 2226.06822112);
  g_assert_cmpfloat (std6[4], ==, 451.49534791);
  g_assert_null (lode_band_profile_mean (LODE_BAND_PROFILE_GENERIC));

  g_assert_true (lode_band_profile_check (LODE_BAND_PROFILE_SMALLMINES_13, r13, &error));
  g_assert_no_error (error);
  g_assert_true (lode_band_profile_check (LODE_BAND_PROFILE_GENERIC, r6, &error));
  g_assert_no_error (error);
}

static void
test_wrong_band_count (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  double values[6 * 4] = { 0 };
  TifSpec t = { GDT_UInt16, 2, 2, 6, values, FALSE, 0, NULL, 0, NULL };
  g_autofree char *path = write_tif (dir, "IMG_GH_0002_2022.tif", &t);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeRaster) r = lode_raster_open_header (path, &error);

  g_assert_no_error (error);
  g_assert_false (lode_band_profile_check (LODE_BAND_PROFILE_SMALLMINES_13, r, &error));
  g_assert_error (error, LODE_RASTER_ERROR, LODE_RASTER_ERROR_PROFILE);
  g_assert_nonnull (strstr (error->message, path));
  g_assert_nonnull (strstr (error->message, " 6 "));
  g_assert_nonnull (strstr (error->message, "13"));
  lode_test_rmtree (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/raster/float32-13", test_float32_13);
  g_test_add_func ("/raster/integer-types", test_integer_types);
  g_test_add_func ("/raster/nodata", test_nodata);
  g_test_add_func ("/raster/wide-types", test_wide_types);
  g_test_add_func ("/raster/complex-refused", test_complex_refused);
  g_test_add_func ("/raster/absurd-size", test_absurd_size);
  g_test_add_func ("/raster/shared-sample", test_shared_sample);
  g_test_add_func ("/raster/broken-files", test_broken_files);
  g_test_add_func ("/raster/quiet-errors", test_quiet_errors);
  g_test_add_func ("/raster/same-grid", test_same_grid);
  g_test_add_func ("/raster/lonlat", test_lonlat);
  g_test_add_func ("/raster/centre", test_centre);
  g_test_add_func ("/raster/profiles", test_profiles);
  g_test_add_func ("/raster/wrong-band-count", test_wrong_band_count);
  return g_test_run ();
}
