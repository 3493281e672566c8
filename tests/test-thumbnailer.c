/* test-thumbnailer.c: patch previews keep the patch's proportions. */
#include "config.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wundef"
#include <gdal.h>
#pragma GCC diagnostic pop

#include "lode-store.h"
#include "lode-test-util.h"
#include "lode-thumbnailer.h"

/* A 13-band Float32 GeoTIFF of the given size, every band a gradient. */
static void
write_patch (const char *path, int width, int height)
{
  GDALDriverH driver;
  GDALDatasetH ds;
  g_autofree float *band = g_new (float, (gsize) width * height);

  GDALAllRegister ();
  driver = GDALGetDriverByName ("GTiff");
  g_assert_nonnull (driver);
  ds = GDALCreate (driver, path, width, height, 13, GDT_Float32, NULL);
  g_assert_nonnull (ds);
  for (int i = 0; i < width * height; i++)
    band[i] = 0.01f * (float) (i % 97);
  for (int b = 1; b <= 13; b++)
    g_assert_cmpint (GDALRasterIO (GDALGetRasterBand (ds, b), GF_Write, 0, 0, width, height, band, width, height,
                                   GDT_Float32, 0, 0), ==, CE_None);
  GDALClose (ds);
}

static gint64
add_patch (LodeStore *store, const char *dir, const char *tile, int width, int height)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *name = g_strdup_printf ("%s.tif", tile);
  g_autofree char *image = g_build_filename (dir, name, NULL);
  LodePatch p = { 0 };
  gint64 id;

  write_patch (image, width, height);
  p.tile_id = (char *) tile;
  p.year = 2020;
  p.image_path = image;
  p.width = width;
  p.height = height;
  p.n_bands = 13;
  id = lode_store_add_patch (store, &p, &error);
  g_assert_no_error (error);
  g_assert_cmpint (id, >, 0);
  return id;
}

static void
on_loaded (GObject *source, GAsyncResult *result, gpointer data)
{
  GdkTexture **out = data;
  g_autoptr(GError) error = NULL;

  *out = lode_thumbnailer_load_finish (LODE_THUMBNAILER (source), result, &error);
  g_assert_no_error (error);
}

static GdkTexture *
load (LodeThumbnailer *thumbnailer, gint64 id)
{
  GdkTexture *texture = NULL;

  lode_thumbnailer_load_async (thumbnailer, id, NULL, on_loaded, &texture);
  while (texture == NULL)
    g_main_context_iteration (NULL, TRUE);
  return texture;
}

static void
test_thumbnail_proportions (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *project = g_build_filename (dir, "project.lode", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) store = lode_store_open (project, TRUE, &error);
  g_autoptr(LodeThumbnailer) thumbnailer = NULL;
  g_autoptr(GdkTexture) small = NULL;
  g_autoptr(GdkTexture) wide = NULL;
  g_autoptr(GdkTexture) tall = NULL;
  gint64 small_id, wide_id, tall_id;

  g_assert_no_error (error);
  small_id = add_patch (store, dir, "0001", 32, 16);
  wide_id = add_patch (store, dir, "0002", 200, 40);
  tall_id = add_patch (store, dir, "0003", 40, 200);
  thumbnailer = lode_thumbnailer_new (project, LODE_COMPOSITE_TRUE_COLOUR);

  /* Smaller than a thumbnail: kept at its own size. */
  small = load (thumbnailer, small_id);
  g_assert_cmpint (gdk_texture_get_width (small), ==, 32);
  g_assert_cmpint (gdk_texture_get_height (small), ==, 16);
  /* Larger: the longer side brought to LODE_THUMBNAIL_SIZE, the other in proportion. */
  wide = load (thumbnailer, wide_id);
  g_assert_cmpint (gdk_texture_get_width (wide), ==, LODE_THUMBNAIL_SIZE);
  g_assert_cmpint (gdk_texture_get_height (wide), ==, LODE_THUMBNAIL_SIZE * 40 / 200);
  tall = load (thumbnailer, tall_id);
  g_assert_cmpint (gdk_texture_get_width (tall), ==, LODE_THUMBNAIL_SIZE * 40 / 200);
  g_assert_cmpint (gdk_texture_get_height (tall), ==, LODE_THUMBNAIL_SIZE);
  /* And kept for the next time the row is shown. */
  g_assert_true (lode_thumbnailer_lookup (thumbnailer, wide_id) == wide);

  g_clear_object (&thumbnailer);
  g_clear_pointer (&store, lode_store_close);
  lode_test_rmtree (dir);
}

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/thumbnailer/proportions", test_thumbnail_proportions);
  return g_test_run ();
}
