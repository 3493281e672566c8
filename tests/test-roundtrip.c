/* Import -> edit -> export -> import again gives the same masks on the same
 * grid, on the demo data and on the shared samples; and bad files in a
 * folder are listed as odd, never a crash. */
#include "config.h"

#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wundef"
#include <gdal.h>
#pragma GCC diagnostic pop

#include "lode-demo.h"
#include "lode-document.h"
#include "lode-export.h"
#include "lode-import.h"
#include "lode-raster.h"
#include "lode-test-util.h"

#define SAMPLE_REGEX "^regression_(.*)_input\\.tif$"
#define SAMPLE_REPLACE "segmentation_\\1_label.tif"

static LodeStore *
open_new (const char *dir, const char *name)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autoptr(GError) error = NULL;
  LodeStore *store = lode_store_open (path, TRUE, &error);

  g_assert_no_error (error);
  return store;
}

static LodeMask *
latest_mask (LodeStore *store, gint64 patch_id)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) blob = lode_store_get_mask (store, patch_id, 0, NULL, &error);
  LodeMask *m;

  g_assert_no_error (error);
  g_assert_nonnull (blob);
  m = lode_mask_deserialize (blob, &error);
  g_assert_no_error (error);
  return m;
}

/* A stroke and a flood fill, each committed. */
static void
edit_patch (LodeStore *store, gint64 patch_id, guint8 class_id)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeDocument) doc = lode_document_open (store, patch_id, &error);
  const LodeMask *m;
  double line[6];

  g_assert_no_error (error);
  m = lode_document_get_mask (doc);
  line[0] = 2; line[1] = 2;
  line[2] = m->width / 2.0; line[3] = m->height / 3.0;
  line[4] = m->width - 3; line[5] = m->height - 3;
  g_assert_true (lode_document_stroke (doc, line, 3, 2.5, class_id, "tester", &error));
  g_assert_no_error (error);
  g_assert_true (lode_document_fill (doc, 0, m->height - 1, class_id, "tester", &error));
  g_assert_no_error (error);
}

/* Both projects hold the same patches, masks and georeferencing. */
static void
assert_same_projects (LodeStore *a, LodeStore *b)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) pa = lode_store_list_patches (a, &error);
  g_autoptr(GPtrArray) pb = lode_store_list_patches (b, &error);

  g_assert_no_error (error);
  g_assert_cmpuint (pa->len, ==, pb->len);
  for (guint i = 0; i < pa->len; i++)
    {
      const LodePatch *x = g_ptr_array_index (pa, i);
      const LodePatch *y = g_ptr_array_index (pb, i);
      g_autoptr(LodeMask) mx = latest_mask (a, x->id);
      g_autoptr(LodeMask) my = latest_mask (b, y->id);

      g_assert_cmpstr (x->tile_id, ==, y->tile_id);
      g_assert_cmpint (x->year, ==, y->year);
      g_assert_cmpint (x->width, ==, y->width);
      g_assert_cmpint (x->height, ==, y->height);
      g_assert_cmpstr (x->crs_wkt, ==, y->crs_wkt);
      g_assert_cmpint (x->has_geotransform, ==, y->has_geotransform);
      g_assert_cmpmem (x->geotransform, sizeof x->geotransform, y->geotransform, sizeof y->geotransform);
      g_assert_null (y->odd_reason);
      g_assert_true (lode_mask_equal (mx, my));
    }
}

static void
assert_mask_on_image_grid (const char *mask_path, const char *image_path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeRaster) mask = lode_raster_open_header (mask_path, &error);
  g_autoptr(LodeRaster) image = lode_raster_open_header (image_path, &error);

  g_assert_no_error (error);
  g_assert_true (mask->has_geotransform);
  g_assert_cmpstr (mask->crs_wkt, !=, "");
  g_assert_cmpstr (mask->crs_wkt, ==, image->crs_wkt);
  g_assert_cmpmem (mask->geotransform, sizeof mask->geotransform, image->geotransform, sizeof image->geotransform);
}

static void
link_to (const char *target, const char *link)
{
  g_autofree char *parent = g_path_get_dirname (link);

  g_assert_cmpint (g_mkdir_with_parents (parent, 0755), ==, 0);
  g_assert_cmpint (symlink (target, link), ==, 0);
}

static void
test_demo (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *source = g_build_filename (dir, "source", NULL);
  g_autofree char *out = g_build_filename (dir, "export", NULL);
  g_autofree char *again = g_build_filename (dir, "again", NULL);
  g_autoptr(LodeStore) first = open_new (dir, "first.lode");
  g_autoptr(LodeStore) second = NULL;
  g_autoptr(GPtrArray) patches = NULL;
  g_autoptr(GError) error = NULL;
  LodeDemoOptions demo;
  LodeImportOptions options;
  LodeImportReport report;
  LodeExportOptions export;

  lode_demo_options_init (&demo);
  demo.n_tiles = 3;
  demo.size = 40;
  g_assert_true (lode_demo_write (source, &demo, NULL, NULL, NULL, &error));
  lode_import_options_init (&options);
  lode_import_report_init (&report);
  g_assert_true (lode_import_smallminesds (first, source, &options, &report, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  lode_import_report_clear (&report);

  patches = lode_store_list_patches (first, &error);
  edit_patch (first, ((LodePatch *) g_ptr_array_index (patches, 0))->id, 1);
  edit_patch (first, ((LodePatch *) g_ptr_array_index (patches, 3))->id, 0);

  lode_export_options_init (&export);
  export.formats = LODE_EXPORT_MASKS | LODE_EXPORT_SPLITS;
  g_assert_true (lode_export_run (first, out, &export, NULL, NULL, NULL, NULL, &error));
  g_assert_no_error (error);

  /* The exported masks beside the original images, in the data set's layout. */
  for (int year = 2016; year <= 2022; year += 6)
    {
      g_autofree char *y = g_strdup_printf ("%d", year);
      g_autofree char *images = g_build_filename (source, "SmallMinesDS", y, "IMAGE", NULL);
      g_autofree char *masks = g_build_filename (out, "SmallMinesDS", y, "MASK", NULL);
      g_autofree char *image_link = g_build_filename (again, "SmallMinesDS", y, "IMAGE", NULL);
      g_autofree char *mask_link = g_build_filename (again, "SmallMinesDS", y, "MASK", NULL);

      link_to (images, image_link);
      link_to (masks, mask_link);
    }
  {
    g_autofree char *splits = g_build_filename (out, "data_splits", NULL);
    g_autofree char *splits_link = g_build_filename (again, "data_splits", NULL);
    link_to (splits, splits_link);
  }
  for (guint i = 0; i < patches->len; i++)
    {
      const LodePatch *p = g_ptr_array_index (patches, i);
      g_autofree char *rel = lode_export_mask_path (p, "smallminesds");
      g_autofree char *mask = g_build_filename (out, rel, NULL);
      g_autofree char *image = lode_store_resolve_path (first, p->image_path);

      assert_mask_on_image_grid (mask, image);
    }

  second = open_new (dir, "second.lode");
  lode_import_report_init (&report);
  g_assert_true (lode_import_smallminesds (second, again, &options, &report, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (report.n_masks, ==, 6);
  g_assert_cmpuint (report.odd->len, ==, 0);
  g_assert_cmpuint (report.n_with_split, ==, 6);
  lode_import_report_clear (&report);
  assert_same_projects (first, second);

  /* The splits survive the trip too. */
  {
    g_autoptr(GPtrArray) pa = lode_store_list_patches (first, NULL);
    g_autoptr(GPtrArray) pb = lode_store_list_patches (second, NULL);

    for (guint i = 0; i < pa->len; i++)
      g_assert_cmpstr (((LodePatch *) g_ptr_array_index (pa, i))->split, ==,
                       ((LodePatch *) g_ptr_array_index (pb, i))->split);
  }
  g_clear_pointer (&first, lode_store_close);
  g_clear_pointer (&second, lode_store_close);
  lode_test_rmtree (dir);
}

static void
test_samples (void)
{
  const char *shared = lode_test_shared_dir ();
  g_autofree char *samples = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *out = NULL;
  g_autofree char *again = NULL;
  g_autofree char *image = NULL;
  g_autofree char *exported = NULL;
  g_autoptr(LodeStore) first = NULL;
  g_autoptr(LodeStore) second = NULL;
  g_autoptr(GPtrArray) patches = NULL;
  g_autoptr(GError) error = NULL;
  LodeImportOptions options;
  LodeImportReport report;
  LodeExportOptions export;
  const LodePatch *p;

  if (shared == NULL)
    return;
  samples = g_build_filename (shared, "samples", NULL);
  image = g_build_filename (samples, "regression_test_0_input.tif", NULL);
  dir = lode_test_mkdtemp ();
  out = g_build_filename (dir, "export", NULL);
  again = g_build_filename (dir, "again", NULL);
  first = open_new (dir, "first.lode");

  lode_import_options_init (&options);
  options.mask_regex = SAMPLE_REGEX;
  options.mask_replace = SAMPLE_REPLACE;
  lode_import_report_init (&report);
  g_assert_true (lode_import_folder (first, samples, &options, &report, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (report.n_patches, ==, 1);
  g_assert_cmpuint (report.n_masks, ==, 1);
  lode_import_report_clear (&report);

  patches = lode_store_list_patches (first, &error);
  p = g_ptr_array_index (patches, 0);
  edit_patch (first, p->id, 1);

  lode_export_options_init (&export);
  export.formats = LODE_EXPORT_MASKS | LODE_EXPORT_MANIFEST;
  g_assert_true (lode_export_run (first, out, &export, NULL, NULL, NULL, NULL, &error));
  g_assert_no_error (error);

  /* The label had no georeferencing: the export writes the image's. */
  exported = g_build_filename (out, "masks", "segmentation_test_0_label.tif", NULL);
  assert_mask_on_image_grid (exported, image);

  {
    g_autofree char *image_link = g_build_filename (again, "regression_test_0_input.tif", NULL);
    g_autofree char *mask_link = g_build_filename (again, "segmentation_test_0_label.tif", NULL);
    link_to (image, image_link);
    link_to (exported, mask_link);
  }
  second = open_new (dir, "second.lode");
  lode_import_report_init (&report);
  g_assert_true (lode_import_folder (second, again, &options, &report, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (report.n_masks, ==, 1);
  g_assert_cmpuint (report.odd->len, ==, 0);
  lode_import_report_clear (&report);
  assert_same_projects (first, second);
  g_clear_pointer (&first, lode_store_close);
  g_clear_pointer (&second, lode_store_close);
  lode_test_rmtree (dir);
}

/* Bad files. */

static void
write_tiff (const char *path, int size, int n_bands, GDALDataType type, double value, int modulo)
{
  GDALDatasetH ds = GDALCreate (GDALGetDriverByName ("GTiff"), path, size, size, n_bands, type, NULL);
  double gt[6] = { 500000, 10, 0, 600000, 0, -10 };
  g_autofree double *values = g_new (double, size * size);

  g_assert_nonnull (ds);
  GDALSetGeoTransform (ds, gt);
  for (int i = 0; i < size * size; i++)
    values[i] = value + (i % modulo);
  for (int b = 1; b <= n_bands; b++)
    g_assert_cmpint (GDALRasterIO (GDALGetRasterBand (ds, b), GF_Write, 0, 0, size, size, values,
                                   size, size, GDT_Float64, 0, 0), ==, CE_None);
  GDALClose (ds);
}

static const LodeImportOdd *
find_odd (const LodeImportReport *report, const char *name)
{
  for (guint i = 0; i < report->odd->len; i++)
    {
      const LodeImportOdd *odd = g_ptr_array_index (report->odd, i);

      if (g_str_has_suffix (odd->path, name))
        return odd;
    }
  return NULL;
}

static void
test_bad_files (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *folder = g_build_filename (dir, "data", NULL);
  g_autofree char *good = g_build_filename (folder, "good.tif", NULL);
  g_autofree char *good_mask = g_build_filename (folder, "good_mask.tif", NULL);
  g_autofree char *two = g_build_filename (folder, "two.tif", NULL);
  g_autofree char *truncated = g_build_filename (folder, "truncated.tif", NULL);
  g_autofree char *garbage = g_build_filename (folder, "garbage.tif", NULL);
  g_autofree char *values = g_build_filename (folder, "values.tif", NULL);
  g_autofree char *values_mask = g_build_filename (folder, "values_mask.tif", NULL);
  g_autoptr(LodeStore) store = open_new (dir, "bad.lode");
  g_autoptr(GError) error = NULL;
  g_autofree char *content = NULL;
  gsize length;
  guint8 junk[3000];
  LodeImportOptions options;
  LodeImportReport report;
  const LodeImportOdd *odd;

  g_assert_cmpint (g_mkdir_with_parents (folder, 0755), ==, 0);
  GDALAllRegister ();
  write_tiff (good, 16, 3, GDT_Float32, 100, 7);
  /* 0 and 1 are in the binary class table; 0..6 are not. */
  write_tiff (good_mask, 16, 1, GDT_Byte, 0, 2);
  write_tiff (two, 16, 2, GDT_Float32, 100, 7);
  write_tiff (values, 16, 3, GDT_Float32, 100, 7);
  write_tiff (values_mask, 16, 1, GDT_Byte, 0, 7);
  write_tiff (truncated, 64, 3, GDT_Float32, 100, 7);
  g_assert_true (g_file_get_contents (truncated, &content, &length, NULL));
  /* Cut inside the header: the import reads headers only. */
  g_assert_true (g_file_set_contents (truncated, content, 120, NULL));
  for (gsize i = 0; i < sizeof junk; i++)
    junk[i] = (guint8) (i * 7919 + 13);
  g_assert_true (g_file_set_contents (garbage, (const char *) junk, sizeof junk, NULL));

  lode_import_options_init (&options);
  options.mask_regex = "^(.*)\\.tif$";
  options.mask_replace = "\\1_mask.tif";
  options.expected_bands = 3;
  lode_import_report_init (&report);
  g_assert_true (lode_import_folder (store, folder, &options, &report, NULL, NULL, NULL, &error));
  g_assert_no_error (error);

  g_assert_null (find_odd (&report, "good.tif"));
  odd = find_odd (&report, "truncated.tif");
  g_assert_nonnull (odd);
  g_test_message ("truncated: %s", odd->reason);
  g_assert_nonnull (strstr (odd->reason, "truncated.tif"));
  odd = find_odd (&report, "garbage.tif");
  g_assert_nonnull (odd);
  g_test_message ("garbage: %s", odd->reason);
  g_assert_nonnull (strstr (odd->reason, "garbage.tif"));
  odd = find_odd (&report, "two.tif");
  g_assert_nonnull (odd);
  g_assert_nonnull (strstr (odd->reason, "2 bands"));
  odd = find_odd (&report, "values.tif");
  g_assert_nonnull (odd);
  g_assert_nonnull (strstr (odd->reason, "class table"));
  lode_import_report_clear (&report);
  g_clear_pointer (&store, lode_store_close);
  lode_test_rmtree (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/roundtrip/demo", test_demo);
  g_test_add_func ("/roundtrip/samples", test_samples);
  g_test_add_func ("/roundtrip/bad-files", test_bad_files);
  return g_test_run ();
}
