/* The demo data set: the SmallMinesDS layout, GeoTIFFs that read back with
 * the right bands, nodata and georeferencing, masks that agree with their
 * images and with each other, split files that agree with the masks,
 * plausible reflectances, the same bytes from the same seed, and clear
 * errors where the folder cannot be written. */
#include "config.h"

#include <math.h>
#include <string.h>

#include <glib/gstdio.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wundef"
#include <gdal.h>
#include <ogr_srs_api.h>
#pragma GCC diagnostic pop

#include "lode-demo.h"
#include "lode-raster.h"
#include "lode-test-util.h"

#define N_TILES 8
#define SIZE 64
#define SEED 11

static const int years[2] = { 2016, 2022 };
static char *shared_dir;

static char *
image_path (const char *dir, guint tile, int year)
{
  g_autofree char *name = g_strdup_printf ("IMG_GH_%04u_%d.tif", tile, year);
  g_autofree char *folder = g_strdup_printf ("%d", year);

  return g_build_filename (dir, "SmallMinesDS", folder, "IMAGE", name, NULL);
}

static char *
mask_path (const char *dir, const char *set, guint tile, int year)
{
  g_autofree char *name = g_strdup_printf ("MASK_GH_%04u_%d.tif", tile, year);
  g_autofree char *folder = g_strdup_printf ("%d", year);

  if (strcmp (set, "cocoa") == 0)
    return g_build_filename (dir, "cocoa", folder, "MASK", name, NULL);
  return g_build_filename (dir, "SmallMinesDS", folder, "MASK", name, NULL);
}

static void
write_demo (const char *dir, guint n_tiles, int size, guint64 seed)
{
  g_autoptr(GError) error = NULL;
  LodeDemoOptions options;

  lode_demo_options_init (&options);
  options.n_tiles = n_tiles;
  options.size = size;
  options.seed = seed;
  g_assert_true (lode_demo_write (dir, &options, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
}

/* One demo set shared by the read-only tests, made on first use. */
static const char *
demo (void)
{
  if (shared_dir == NULL)
    {
      g_autofree char *tmp = lode_test_mkdtemp ();

      shared_dir = g_build_filename (tmp, "nested", "demo", NULL);
      write_demo (shared_dir, N_TILES, SIZE, SEED);
    }
  return shared_dir;
}

static GDALDatasetH
open_raster (const char *path)
{
  GDALDatasetH dataset = GDALOpen (path, GA_ReadOnly);

  g_assert_nonnull (dataset);
  return dataset;
}

static float *
read_float_band (GDALDatasetH dataset, int band)
{
  int w = GDALGetRasterXSize (dataset), h = GDALGetRasterYSize (dataset);
  float *data = g_new (float, (gsize) w * h);

  g_assert_cmpint (GDALRasterIO (GDALGetRasterBand (dataset, band), GF_Read, 0, 0, w, h,
                                 data, w, h, GDT_Float32, 0, 0), ==, CE_None);
  return data;
}

/* The mask at path as bytes, checked to be SIZE x SIZE, one uint8 band
 * with nodata 255, and georeferenced like the image beside it. */
static guint8 *
read_mask (const char *path, const double image_geotransform[6], int size)
{
  GDALDatasetH dataset = open_raster (path);
  GDALRasterBandH band;
  double geotransform[6];
  int has_nodata = 0;
  guint8 *data;

  g_assert_cmpint (GDALGetRasterCount (dataset), ==, 1);
  g_assert_cmpint (GDALGetRasterXSize (dataset), ==, size);
  g_assert_cmpint (GDALGetRasterYSize (dataset), ==, size);
  band = GDALGetRasterBand (dataset, 1);
  g_assert_cmpint (GDALGetRasterDataType (band), ==, GDT_Byte);
  g_assert_cmpfloat (GDALGetRasterNoDataValue (band, &has_nodata), ==, 255.0);
  g_assert_true (has_nodata);
  g_assert_cmpint (GDALGetGeoTransform (dataset, geotransform), ==, CE_None);
  for (int i = 0; i < 6; i++)
    g_assert_cmpfloat (geotransform[i], ==, image_geotransform[i]);
  g_assert_cmpstr (OSRGetAuthorityCode (GDALGetSpatialRef (dataset), NULL), ==, "32630");

  data = g_new (guint8, (gsize) size * size);
  g_assert_cmpint (GDALRasterIO (band, GF_Read, 0, 0, size, size, data, size, size,
                                 GDT_Byte, 0, 0), ==, CE_None);
  GDALClose (dataset);
  return data;
}

static void
get_geotransform (const char *path, double geotransform[6])
{
  GDALDatasetH dataset = open_raster (path);

  g_assert_cmpint (GDALGetGeoTransform (dataset, geotransform), ==, CE_None);
  GDALClose (dataset);
}

static guint
count_entries (const char *folder)
{
  g_autoptr(GDir) dir = g_dir_open (folder, 0, NULL);
  const char *name;
  guint n = 0;

  g_assert_nonnull (dir);
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_assert_false (name[0] == '.');
      n++;
    }
  return n;
}

static void
test_layout (void)
{
  const char *dir = demo ();

  for (int y = 0; y < 2; y++)
    {
      g_autofree char *year = g_strdup_printf ("%d", years[y]);
      g_autofree char *images = g_build_filename (dir, "SmallMinesDS", year, "IMAGE", NULL);
      g_autofree char *masks = g_build_filename (dir, "SmallMinesDS", year, "MASK", NULL);
      g_autofree char *cocoa = g_build_filename (dir, "cocoa", year, "MASK", NULL);
      g_autofree char *splits = g_strdup_printf ("%s/data_splits/train_test_splits_%d.csv", dir, years[y]);
      g_autofree char *past_end = image_path (dir, N_TILES + 1, years[y]);
      g_autofree char *cocoa_past_end = mask_path (dir, "cocoa", N_TILES, years[y]);

      for (guint t = 1; t <= N_TILES; t++)
        {
          g_autofree char *image = image_path (dir, t, years[y]);
          g_autofree char *mask = mask_path (dir, "binary", t, years[y]);
          g_autofree char *shifted = mask_path (dir, "cocoa", t - 1, years[y]);

          g_assert_true (g_file_test (image, G_FILE_TEST_IS_REGULAR));
          g_assert_true (g_file_test (mask, G_FILE_TEST_IS_REGULAR));
          g_assert_true (g_file_test (shifted, G_FILE_TEST_IS_REGULAR));
        }
      g_assert_false (g_file_test (past_end, G_FILE_TEST_EXISTS));
      g_assert_false (g_file_test (cocoa_past_end, G_FILE_TEST_EXISTS));
      g_assert_true (g_file_test (splits, G_FILE_TEST_IS_REGULAR));
      /* Nothing else, no temporary files left behind. */
      g_assert_cmpuint (count_entries (images), ==, N_TILES);
      g_assert_cmpuint (count_entries (masks), ==, N_TILES);
      g_assert_cmpuint (count_entries (cocoa), ==, N_TILES);
    }
}

static void
test_images (void)
{
  static const char * const names[13] = {
    "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12", "VV", "VH", "DEM",
  };
  const char *dir = demo ();
  double footprints[N_TILES][6];

  for (guint t = 1; t <= N_TILES; t++)
    {
      double geotransform[2][6];

      for (int y = 0; y < 2; y++)
        {
          g_autofree char *path = image_path (dir, t, years[y]);
          GDALDatasetH dataset = open_raster (path);
          OGRSpatialReferenceH srs = GDALGetSpatialRef (dataset);
          int north = 0;

          g_assert_cmpint (GDALGetRasterCount (dataset), ==, 13);
          g_assert_cmpint (GDALGetRasterXSize (dataset), ==, SIZE);
          g_assert_cmpint (GDALGetRasterYSize (dataset), ==, SIZE);
          for (int b = 1; b <= 13; b++)
            {
              GDALRasterBandH band = GDALGetRasterBand (dataset, b);
              int has_nodata = 0;

              g_assert_cmpint (GDALGetRasterDataType (band), ==, GDT_Float32);
              g_assert_cmpfloat (GDALGetRasterNoDataValue (band, &has_nodata), ==, -9999.0);
              g_assert_true (has_nodata);
              g_assert_cmpstr (GDALGetDescription (band), ==, names[b - 1]);
            }
          g_assert_nonnull (strstr (GDALGetMetadataItem (dataset, "COMPRESSION", "IMAGE_STRUCTURE"),
                                    "DEFLATE"));
          g_assert_nonnull (srs);
          g_assert_cmpstr (OSRGetAuthorityCode (srs, NULL), ==, "32630");
          g_assert_cmpint (OSRGetUTMZone (srs, &north), ==, 30);
          g_assert_true (north);
          g_assert_cmpint (GDALGetGeoTransform (dataset, geotransform[y]), ==, CE_None);
          g_assert_cmpfloat (geotransform[y][1], ==, 10.0);
          g_assert_cmpfloat (geotransform[y][5], ==, -10.0);
          g_assert_cmpfloat (geotransform[y][2], ==, 0.0);
          g_assert_cmpfloat (geotransform[y][4], ==, 0.0);
          /* South-western Ghana in UTM 30N. */
          g_assert_cmpfloat (geotransform[y][0], >, 550000.0);
          g_assert_cmpfloat (geotransform[y][0], <, 850000.0);
          g_assert_cmpfloat (geotransform[y][3], >, 560000.0);
          g_assert_cmpfloat (geotransform[y][3], <, 760000.0);
          GDALClose (dataset);
        }
      for (int i = 0; i < 6; i++)
        g_assert_cmpfloat (geotransform[0][i], ==, geotransform[1][i]);
      memcpy (footprints[t - 1], geotransform[0], sizeof geotransform[0]);
    }

  /* No two tiles cover the same ground. */
  for (guint a = 0; a < N_TILES; a++)
    for (guint b = a + 1; b < N_TILES; b++)
      {
        double extent = SIZE * 10.0;
        gboolean apart = fabs (footprints[a][0] - footprints[b][0]) >= extent
          || fabs (footprints[a][3] - footprints[b][3]) >= extent;

        g_assert_true (apart);
      }
}

static void
test_masks (void)
{
  const char *dir = demo ();
  gsize n = (gsize) SIZE * SIZE;
  guint tiles_with_nodata = 0;

  for (guint t = 1; t <= N_TILES; t++)
    for (int y = 0; y < 2; y++)
      {
        g_autofree char *path = image_path (dir, t, years[y]);
        g_autofree char *binary_path = mask_path (dir, "binary", t, years[y]);
        g_autofree char *cocoa_path = mask_path (dir, "cocoa", t - 1, years[y]);
        GDALDatasetH image = open_raster (path);
        double geotransform[6];
        g_autofree guint8 *binary = NULL;
        g_autofree guint8 *classes = NULL;
        g_autofree float *blue = read_float_band (image, 1);
        g_autofree float *elevation = read_float_band (image, 13);
        gboolean some_nodata = FALSE;

        g_assert_cmpint (GDALGetGeoTransform (image, geotransform), ==, CE_None);
        GDALClose (image);
        binary = read_mask (binary_path, geotransform, SIZE);
        classes = read_mask (cocoa_path, geotransform, SIZE);
        for (gsize i = 0; i < n; i++)
          {
            g_assert_true (binary[i] == 0 || binary[i] == 1 || binary[i] == 255);
            g_assert_true (classes[i] <= 2 || classes[i] == 255);
            /* nodata in the image, and only there, is nodata in both masks */
            g_assert_cmpint (blue[i] == -9999.0f, ==, binary[i] == 255);
            g_assert_cmpint (elevation[i] == -9999.0f, ==, binary[i] == 255);
            g_assert_cmpint (classes[i] == 255, ==, binary[i] == 255);
            /* the companion's mining is the public mask's mining */
            g_assert_cmpint (classes[i] == 1, ==, binary[i] == 1);
            some_nodata |= binary[i] == 255;
          }
        tiles_with_nodata += some_nodata;
      }
  /* This seed has a tile cut by the swath edge. */
  g_assert_cmpuint (tiles_with_nodata, >, 0);
  g_assert_cmpuint (tiles_with_nodata, <, N_TILES);
}

static void
test_change (void)
{
  const char *dir = demo ();
  gsize n = (gsize) SIZE * SIZE;
  guint64 mining[2] = { 0, 0 }, cocoa_lost = 0;
  guint without_mining = 0, with_much = 0;

  for (guint t = 1; t <= N_TILES; t++)
    {
      g_autofree char *image = image_path (dir, t, 2016);
      g_autofree char *path2016 = mask_path (dir, "binary", t, 2016);
      g_autofree char *path2022 = mask_path (dir, "binary", t, 2022);
      g_autofree char *cocoa_path = mask_path (dir, "cocoa", t - 1, 2016);
      double geotransform[6];
      g_autofree guint8 *m2016 = NULL;
      g_autofree guint8 *m2022 = NULL;
      g_autofree guint8 *c2016 = NULL;
      gsize tile_mining = 0;

      get_geotransform (image, geotransform);
      m2016 = read_mask (path2016, geotransform, SIZE);
      m2022 = read_mask (path2022, geotransform, SIZE);
      c2016 = read_mask (cocoa_path, geotransform, SIZE);
      for (gsize i = 0; i < n; i++)
        {
          mining[0] += m2016[i] == 1;
          mining[1] += m2022[i] == 1;
          tile_mining += m2016[i] == 1;
          cocoa_lost += c2016[i] == 2 && m2022[i] == 1;
        }
      without_mining += tile_mining == 0;
      with_much += tile_mining > n / 10;
    }
  g_assert_cmpuint (mining[1], >, mining[0]);
  g_assert_cmpuint (cocoa_lost, >, 0);
  g_assert_cmpuint (without_mining, >, 0);
  g_assert_cmpuint (with_much, >, 0);
}

static void
test_splits (void)
{
  const char *dir = demo ();

  for (int y = 0; y < 2; y++)
    {
      g_autofree char *path = g_strdup_printf ("%s/data_splits/train_test_splits_%d.csv", dir, years[y]);
      g_autofree char *text = NULL;
      g_auto(GStrv) lines = NULL;
      gboolean seen[N_TILES + 1] = { FALSE };
      guint rows = 0, test = 0;

      g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
      g_assert_true (g_str_has_suffix (text, "\n"));
      lines = g_strsplit (text, "\n", -1);
      g_assert_cmpstr (lines[0], ==, "patch_name,class_percentage,bin,split");
      for (guint l = 1; lines[l] != NULL && lines[l][0] != '\0'; l++)
        {
          g_auto(GStrv) field = g_strsplit (lines[l], ",", -1);
          g_autofree char *mask = NULL;
          g_autofree char *image = NULL;
          g_autofree guint8 *data = NULL;
          double geotransform[6], percent, expected;
          guint tile = 0, low = 0, high = 0, valid = 0, mined = 0;
          int year = 0;

          g_assert_cmpuint (g_strv_length (field), ==, 4);
          g_assert_cmpint (sscanf (field[0], "MASK_%4u_%4d.tif", &tile, &year), ==, 2);
          g_assert_cmpint (strlen (field[0]), ==, strlen ("MASK_0001_2016.tif"));
          g_assert_cmpint (year, ==, years[y]);
          g_assert_cmpuint (tile, >=, 1);
          g_assert_cmpuint (tile, <=, N_TILES);
          g_assert_false (seen[tile]);
          seen[tile] = TRUE;

          mask = mask_path (dir, "binary", tile, year);
          image = image_path (dir, tile, year);
          get_geotransform (image, geotransform);
          data = read_mask (mask, geotransform, SIZE);
          for (gsize i = 0; i < (gsize) SIZE * SIZE; i++)
            {
              valid += data[i] != 255;
              mined += data[i] == 1;
            }
          percent = g_ascii_strtod (field[1], NULL);
          expected = 100.0 * mined / valid;
          g_assert_cmpfloat_with_epsilon (percent, expected, 0.0051);
          /* At most two decimals, as the official files print them. */
          g_assert_cmpfloat_with_epsilon (percent * 100.0, round (percent * 100.0), 1e-6);

          /* 10 % bins closed on the right; 0.0 lies in the first. */
          g_assert_cmpint (sscanf (field[2], "%u-%u%%", &low, &high), ==, 2);
          g_assert_cmpuint (high, ==, low + 10);
          g_assert_true (low % 10 == 0);
          g_assert_true ((percent > low && percent <= high) || (percent == 0.0 && low == 0));

          g_assert_true (strcmp (field[3], "train") == 0 || strcmp (field[3], "test") == 0);
          test += strcmp (field[3], "test") == 0;
          rows++;
        }
      g_assert_cmpuint (rows, ==, N_TILES);
      /* About 30 % test. */
      g_assert_cmpuint (test, >=, 1);
      g_assert_cmpuint (test, <=, (N_TILES * 3 + 9) / 10 + 1);
    }
}

static void
test_plausible (void)
{
  const char *dir = demo ();
  gsize n = (gsize) SIZE * SIZE;
  double nir[3] = { 0 }, red[3] = { 0 }, swir[3] = { 0 };
  guint64 count[3] = { 0 };
  double elevation_min = G_MAXDOUBLE, elevation_max = -G_MAXDOUBLE;

  for (guint t = 1; t <= N_TILES; t++)
    for (int y = 0; y < 2; y++)
      {
        g_autofree char *path = image_path (dir, t, years[y]);
        g_autofree char *cocoa_path = mask_path (dir, "cocoa", t - 1, years[y]);
        GDALDatasetH image = open_raster (path);
        double geotransform[6];
        g_autofree float *b4 = read_float_band (image, 3);
        g_autofree float *b8 = read_float_band (image, 7);
        g_autofree float *b11 = read_float_band (image, 9);
        g_autofree float *dem = read_float_band (image, 13);
        g_autofree guint8 *classes = NULL;

        g_assert_cmpint (GDALGetGeoTransform (image, geotransform), ==, CE_None);
        GDALClose (image);
        classes = read_mask (cocoa_path, geotransform, SIZE);
        for (gsize i = 0; i < n; i++)
          {
            if (classes[i] == 255)
              continue;
            nir[classes[i]] += b8[i];
            red[classes[i]] += b4[i];
            swir[classes[i]] += b11[i];
            count[classes[i]]++;
            elevation_min = MIN (elevation_min, dem[i]);
            elevation_max = MAX (elevation_max, dem[i]);
          }
      }
  for (int c = 0; c < 3; c++)
    {
      g_assert_cmpuint (count[c], >, 0);
      nir[c] /= count[c];
      red[c] /= count[c];
      swir[c] /= count[c];
    }
  /* Vegetation (background, mostly forest, and cocoa) against mining. */
  g_assert_cmpfloat (nir[0], >, nir[1] + 200.0);
  g_assert_cmpfloat (nir[2], >, nir[1] + 200.0);
  g_assert_cmpfloat (red[1], >, red[0] + 300.0);
  g_assert_cmpfloat (red[1], >, red[2] + 300.0);
  g_assert_cmpfloat (swir[1], >, swir[0]);
  /* Cocoa is a little brighter than the forest around it. */
  g_assert_cmpfloat (red[2], >, red[0] - 50.0);
  /* Reflectances as digital numbers with the offset of 1000. */
  g_assert_cmpfloat (nir[2], >, 3000.0);
  g_assert_cmpfloat (nir[2], <, 5000.0);
  g_assert_cmpfloat (elevation_min, >, 50.0);
  g_assert_cmpfloat (elevation_max, <, 400.0);
}

static gboolean
same_file (const char *a, const char *b)
{
  g_autofree char *data_a = NULL;
  g_autofree char *data_b = NULL;
  gsize len_a = 0, len_b = 0;

  g_assert_true (g_file_get_contents (a, &data_a, &len_a, NULL));
  g_assert_true (g_file_get_contents (b, &data_b, &len_b, NULL));
  return len_a == len_b && memcmp (data_a, data_b, len_a) == 0;
}

static void
test_deterministic (void)
{
  const char *dir = demo ();
  g_autofree char *again = lode_test_mkdtemp ();
  g_autofree char *other = lode_test_mkdtemp ();
  guint differing = 0;

  write_demo (again, N_TILES, SIZE, SEED);
  write_demo (other, N_TILES, SIZE, SEED + 1);
  for (guint t = 1; t <= N_TILES; t++)
    for (int y = 0; y < 2; y++)
      {
        char *paths[3][3];
        const char *dirs[3] = { dir, again, other };

        for (int d = 0; d < 3; d++)
          {
            paths[d][0] = image_path (dirs[d], t, years[y]);
            paths[d][1] = mask_path (dirs[d], "binary", t, years[y]);
            paths[d][2] = mask_path (dirs[d], "cocoa", t - 1, years[y]);
          }
        for (int f = 0; f < 3; f++)
          {
            g_assert_true (same_file (paths[0][f], paths[1][f]));
            differing += !same_file (paths[0][f], paths[2][f]);
          }
        g_assert_false (same_file (paths[0][0], paths[2][0]));
        for (int d = 0; d < 3; d++)
          for (int f = 0; f < 3; f++)
            g_free (paths[d][f]);
      }
  g_assert_cmpuint (differing, >, N_TILES);
  for (int y = 0; y < 2; y++)
    {
      g_autofree char *a = g_strdup_printf ("%s/data_splits/train_test_splits_%d.csv", dir, years[y]);
      g_autofree char *b = g_strdup_printf ("%s/data_splits/train_test_splits_%d.csv", again, years[y]);

      g_assert_true (same_file (a, b));
    }
  lode_test_rmtree (again);
  lode_test_rmtree (other);
}

typedef struct
{
  double        last;
  guint         calls;
  GCancellable *cancel_after_first;
} Progress;

static void
on_progress (double fraction, const char *what, gpointer user_data)
{
  Progress *progress = user_data;

  g_assert_cmpfloat (fraction, >=, progress->last);
  g_assert_cmpfloat (fraction, <=, 1.0);
  progress->last = fraction;
  progress->calls++;
  if (progress->cancel_after_first != NULL)
    g_cancellable_cancel (progress->cancel_after_first);
}

static void
test_default_size (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autoptr(GError) error = NULL;
  LodeDemoOptions options;
  Progress progress = { 0 };

  lode_demo_options_init (&options);
  g_assert_cmpint (options.size, ==, 128);
  options.n_tiles = 2;
  g_assert_true (lode_demo_write (dir, &options, on_progress, &progress, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpfloat (progress.last, ==, 1.0);
  g_assert_cmpuint (progress.calls, >=, 2);

  for (guint t = 1; t <= 2; t++)
    for (int y = 0; y < 2; y++)
      {
        g_autofree char *path = image_path (dir, t, years[y]);
        g_autofree char *binary_path = mask_path (dir, "binary", t, years[y]);
        g_autofree char *cocoa_path = mask_path (dir, "cocoa", t - 1, years[y]);
        GDALDatasetH image = open_raster (path);
        double geotransform[6];

        g_assert_cmpint (GDALGetRasterXSize (image), ==, 128);
        g_assert_cmpint (GDALGetRasterYSize (image), ==, 128);
        g_assert_cmpint (GDALGetRasterCount (image), ==, 13);
        g_assert_cmpint (GDALGetGeoTransform (image, geotransform), ==, CE_None);
        GDALClose (image);
        g_free (read_mask (binary_path, geotransform, 128));
        g_free (read_mask (cocoa_path, geotransform, 128));
      }
  lode_test_rmtree (dir);
}

static void
test_cancel (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *images = g_build_filename (dir, "SmallMinesDS", "2016", "IMAGE", NULL);
  g_autofree char *splits = g_build_filename (dir, "data_splits", "train_test_splits_2016.csv", NULL);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GError) error = NULL;
  LodeDemoOptions options;
  Progress progress = { .cancel_after_first = cancellable };

  lode_demo_options_init (&options);
  options.n_tiles = 5;
  options.size = 32;
  g_assert_false (lode_demo_write (dir, &options, on_progress, &progress, cancellable, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_cmpuint (progress.calls, ==, 1);
  /* The tile made before the cancel is whole; nothing half-written stays. */
  g_assert_cmpuint (count_entries (images), ==, 1);
  g_assert_false (g_file_test (splits, G_FILE_TEST_EXISTS));
  lode_test_rmtree (dir);
}

static void
test_unwritable (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *plain = g_build_filename (dir, "plain", NULL);
  g_autofree char *target = g_build_filename (dir, "target", NULL);
  g_autofree char *blocked = g_build_filename (target, "SmallMinesDS", NULL);
  g_autoptr(GError) error = NULL;
  LodeDemoOptions options;

  lode_demo_options_init (&options);
  options.n_tiles = 1;
  options.size = 16;

  /* A regular file where the folder should be. */
  g_assert_true (g_file_set_contents (plain, "x", 1, NULL));
  g_assert_false (lode_demo_write (plain, &options, NULL, NULL, NULL, &error));
  g_assert_error (error, LODE_DEMO_ERROR, LODE_DEMO_ERROR_FOLDER);
  g_assert_nonnull (strstr (error->message, plain));
  g_clear_error (&error);

  /* ... or where one of its folders should be. */
  g_assert_cmpint (g_mkdir (target, 0755), ==, 0);
  g_assert_true (g_file_set_contents (blocked, "x", 1, NULL));
  g_assert_false (lode_demo_write (target, &options, NULL, NULL, NULL, &error));
  g_assert_error (error, LODE_DEMO_ERROR, LODE_DEMO_ERROR_FOLDER);
  g_assert_nonnull (strstr (error->message, blocked));
  lode_test_rmtree (dir);
}

static void
test_invalid (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *target = g_build_filename (dir, "never", NULL);
  g_autoptr(GError) error = NULL;
  LodeDemoOptions options;

  lode_demo_options_init (&options);
  options.n_tiles = 0;
  g_assert_false (lode_demo_write (target, &options, NULL, NULL, NULL, &error));
  g_assert_error (error, LODE_DEMO_ERROR, LODE_DEMO_ERROR_INVALID);
  g_clear_error (&error);

  lode_demo_options_init (&options);
  options.size = 4;
  g_assert_false (lode_demo_write (target, &options, NULL, NULL, NULL, &error));
  g_assert_error (error, LODE_DEMO_ERROR, LODE_DEMO_ERROR_INVALID);
  g_assert_false (g_file_test (target, G_FILE_TEST_EXISTS));
  lode_test_rmtree (dir);
}

/* Each tile's centre, in latitude and longitude from its own CRS and
 * geotransform, lies in the district the demo placed it in: within a few
 * kilometres of that district's centre and nearer to it than to any
 * other. */
static void
test_centre (void)
{
  const char *dir = demo ();

  for (guint t = 1; t <= N_TILES; t++)
    {
      g_autofree char *path = image_path (dir, t, years[t % 2]);
      g_autoptr(GError) error = NULL;
      g_autoptr(LodeRaster) r = lode_raster_open_header (path, &error);
      double lat, lon, dlat, dlon, km;

      g_assert_no_error (error);
      g_assert_true (lode_raster_centre_latlon (r, &lat, &lon, &error));
      g_assert_no_error (error);
      lode_demo_tile_district (t, &dlat, &dlon);
      km = hypot (lat - dlat, (lon - dlon) * cos (dlat * G_PI / 180)) * 111.2;
      g_test_message ("tile %u: %.5f N %.5f E, %.1f km from its district's centre", t, lat, lon, km);
      g_assert_cmpfloat (km, <, 8.0);
      for (guint other = 1; other <= 5; other++)
        {
          double olat, olon;

          lode_demo_tile_district (other, &olat, &olon);
          if ((other - 1) % 5 != (t - 1) % 5)
            g_assert_cmpfloat (hypot (lat - olat, (lon - olon) * cos (olat * G_PI / 180)) * 111.2, >, km);
        }
    }
}

int
main (int argc, char **argv)
{
  int result;

  g_test_init (&argc, &argv, NULL);
  GDALAllRegister ();
  g_test_add_func ("/demo/layout", test_layout);
  g_test_add_func ("/demo/images", test_images);
  g_test_add_func ("/demo/masks", test_masks);
  g_test_add_func ("/demo/change", test_change);
  g_test_add_func ("/demo/splits", test_splits);
  g_test_add_func ("/demo/plausible", test_plausible);
  g_test_add_func ("/demo/centre", test_centre);
  g_test_add_func ("/demo/deterministic", test_deterministic);
  g_test_add_func ("/demo/default-size", test_default_size);
  g_test_add_func ("/demo/cancel", test_cancel);
  g_test_add_func ("/demo/unwritable", test_unwritable);
  g_test_add_func ("/demo/invalid", test_invalid);
  result = g_test_run ();

  if (shared_dir != NULL)
    {
      g_autofree char *nested = g_path_get_dirname (shared_dir);
      g_autofree char *top = g_path_get_dirname (nested);

      lode_test_rmtree (top);
      g_free (shared_dir);
    }
  return result;
}
