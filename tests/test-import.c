/* Import of the SmallMinesDS layout and of generic folders: what a user who
 * imports a data set would check — every patch there with its split and its
 * original mask, both mask sets, odd patches listed with the reason, paths
 * typed relative to where the user stands, file names in both variants. */
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
#include "lode-import.h"
#include "lode-raster.h"
#include "lode-test-util.h"

typedef struct
{
  char *dir;      /* the demo data set */
  char *work;     /* where projects go */
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  LodeDemoOptions options;

  f->dir = lode_test_mkdtemp ();
  f->work = lode_test_mkdtemp ();
  lode_demo_options_init (&options);
  options.n_tiles = 5;
  options.size = 32;
  g_assert_true (lode_demo_write (f->dir, &options, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  lode_test_rmtree (f->dir);
  lode_test_rmtree (f->work);
  g_free (f->dir);
  g_free (f->work);
}

static LodeStore *
new_store (Fixture *f, const char *name)
{
  g_autofree char *path = g_build_filename (f->work, name, NULL);
  g_autoptr(GError) error = NULL;
  LodeStore *store = lode_store_open (path, TRUE, &error);

  g_assert_no_error (error);
  return store;
}

/* The mask file's values, through GDAL, as the importer should have read them. */
static guint8 *
read_mask_file (const char *path, int *w, int *h)
{
  GDALDatasetH ds = GDALOpen (path, GA_ReadOnly);
  guint8 *buf;

  g_assert_nonnull (ds);
  *w = GDALGetRasterXSize (ds);
  *h = GDALGetRasterYSize (ds);
  buf = g_malloc ((gsize) *w * *h);
  g_assert_cmpint (GDALRasterIO (GDALGetRasterBand (ds, 1), GF_Read, 0, 0, *w, *h, buf, *w, *h,
                                 GDT_Byte, 0, 0), ==, CE_None);
  GDALClose (ds);
  return buf;
}

static int
count_odd_with (const LodeImportReport *report, const char *needle)
{
  int n = 0;

  for (guint i = 0; i < report->odd->len; i++)
    {
      const LodeImportOdd *odd = g_ptr_array_index (report->odd, i);
      if (strstr (odd->reason, needle) != NULL || strstr (odd->path, needle) != NULL)
        n++;
    }
  return n;
}

static void
test_smallminesds (Fixture *f, gconstpointer data)
{
  g_autoptr(LodeStore) store = new_store (f, "p.lode");
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) patches = NULL;
  LodeImportReport report;
  LodeImportOptions options;

  lode_import_options_init (&options);
  options.expected_size = 32;
  options.expected_bands = 13;
  lode_import_report_init (&report);
  g_assert_true (lode_import_is_smallminesds (f->dir));
  g_assert_true (lode_import_smallminesds (store, f->dir, &options, &report, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (report.n_patches, ==, 10);
  g_assert_cmpuint (report.n_masks, ==, 10);
  g_assert_cmpuint (report.n_with_split, ==, 10);
  g_assert_cmpuint (report.odd->len, ==, 0);
  lode_import_report_clear (&report);

  patches = lode_store_list_patches (store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (patches->len, ==, 10);
  for (guint i = 0; i < patches->len; i++)
    {
      const LodePatch *p = g_ptr_array_index (patches, i);
      g_autofree char *name = g_strdup_printf ("MASK_GH_%s_%d.tif", p->tile_id, p->year);
      g_autofree char *year = g_strdup_printf ("%d", p->year);
      g_autofree char *file = g_build_filename (f->dir, "SmallMinesDS", year, "MASK", name, NULL);
      g_autoptr(GBytes) blob = lode_store_get_original_mask (store, p->id, &error);
      g_autoptr(LodeMask) mask = NULL;
      g_autofree guint8 *values = NULL;
      g_autofree char *image = lode_store_resolve_path (store, p->image_path);
      int w, h;

      g_assert_no_error (error);
      g_assert_nonnull (blob);
      g_assert_true (g_file_test (image, G_FILE_TEST_IS_REGULAR));
      g_assert_nonnull (p->split);
      g_assert_true (g_str_equal (p->split, "train") || g_str_equal (p->split, "test"));
      g_assert_cmpint (p->width, ==, 32);
      g_assert_cmpint (p->n_bands, ==, 13);
      g_assert_true (p->has_geotransform);
      g_assert_cmpfloat (p->geotransform[1], ==, 10.0);
      g_assert_nonnull (strstr (p->crs_wkt, "32630"));
      mask = lode_mask_deserialize (blob, &error);
      g_assert_no_error (error);
      values = read_mask_file (file, &w, &h);
      g_assert_cmpint (w, ==, mask->width);
      for (gsize k = 0; k < (gsize) w * h; k++)
        g_assert_cmpuint (mask->data[k], ==, values[k]);   /* 0, 1 and 255 = nodata */
      g_assert_cmpint (lode_store_find_pair (store, p->id, &error), >, 0);
    }
}

/* The cocoa companion's tile 0000 is the public tile 0001. */
static void
test_cocoa (Fixture *f, gconstpointer data)
{
  g_autoptr(LodeStore) store = new_store (f, "c.lode");
  g_autoptr(GError) error = NULL;
  g_autoptr(LodePatch) p = NULL;
  g_autoptr(GBytes) blob = NULL;
  g_autoptr(LodeMask) mask = NULL;
  g_autofree char *json = NULL;
  g_autofree char *file = g_build_filename (f->dir, "cocoa", "2022", "MASK", "MASK_GH_0000_2022.tif", NULL);
  g_autofree guint8 *values = NULL;
  LodeImportReport report;
  LodeImportOptions options;
  guint64 counts[256] = { 0 };
  int w, h;

  lode_import_options_init (&options);
  options.masks = LODE_IMPORT_MASKS_COCOA;
  lode_import_report_init (&report);
  g_assert_true (lode_import_smallminesds (store, f->dir, &options, &report, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  /* Public tile 0005 has no cocoa tile 0005 - 1 = 0004? It has: ids 0000..0004. */
  g_assert_cmpuint (report.n_masks, ==, 10);
  lode_import_report_clear (&report);

  p = lode_store_find_patch (store, "0001", 2022, &error);
  g_assert_no_error (error);
  blob = lode_store_get_original_mask (store, p->id, &error);
  mask = lode_mask_deserialize (blob, &error);
  g_assert_no_error (error);
  values = read_mask_file (file, &w, &h);
  g_assert_cmpmem (mask->data, (gsize) w * h, values, (gsize) w * h);
  lode_mask_count (mask, counts);
  g_assert_cmpuint (counts[2], >, 0);   /* cocoa is there */

  json = lode_store_get_class_table_json (store);
  g_assert_nonnull (strstr (json, "ocoa"));
}

static void
test_relative_paths (Fixture *f, gconstpointer data)
{
  g_autofree char *cwd = g_get_current_dir ();
  g_autofree char *parent = g_path_get_dirname (f->dir);
  g_autofree char *base = g_path_get_basename (f->dir);
  g_autoptr(LodeStore) store = new_store (f, "r.lode");
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) patches = NULL;
  LodeImportReport report;

  /* The user stands beside the data set and types its name. */
  g_assert_cmpint (g_chdir (parent), ==, 0);
  lode_import_report_init (&report);
  g_assert_true (lode_import_smallminesds (store, base, NULL, &report, NULL, NULL, NULL, &error));
  g_assert_cmpint (g_chdir (cwd), ==, 0);
  g_assert_no_error (error);
  lode_import_report_clear (&report);

  patches = lode_store_list_patches (store, &error);
  for (guint i = 0; i < patches->len; i++)
    {
      const LodePatch *p = g_ptr_array_index (patches, i);
      g_autofree char *image = lode_store_resolve_path (store, p->image_path);
      g_assert_true (g_str_has_prefix (image, f->dir));
      g_assert_true (g_file_test (image, G_FILE_TEST_IS_REGULAR));
    }
}

static void
truncate_file (const char *path, gsize keep)
{
  g_autofree char *bytes = NULL;
  gsize len;

  g_assert_true (g_file_get_contents (path, &bytes, &len, NULL));
  g_assert_cmpuint (keep, <, len);
  g_assert_true (g_file_set_contents (path, bytes, keep, NULL));
}

/* Odd patches are imported where they can be and listed with the reason. */
static void
test_odd (Fixture *f, gconstpointer data)
{
  g_autoptr(LodeStore) store = new_store (f, "o.lode");
  g_autoptr(GError) error = NULL;
  g_autofree char *img1 = g_build_filename (f->dir, "SmallMinesDS", "2016", "IMAGE", "IMG_GH_0001_2016.tif", NULL);
  g_autofree char *mask2 = g_build_filename (f->dir, "SmallMinesDS", "2016", "MASK", "MASK_GH_0002_2016.tif", NULL);
  g_autofree char *mask3 = g_build_filename (f->dir, "SmallMinesDS", "2016", "MASK", "MASK_GH_0003_2016.tif", NULL);
  g_autofree char *stray = g_build_filename (f->dir, "SmallMinesDS", "2016", "IMAGE", "notes.tif", NULL);
  g_autofree char *old_name = g_build_filename (f->dir, "SmallMinesDS", "2016", "IMAGE", "IMG_GH_0004_2016.tif", NULL);
  g_autofree char *new_name = g_build_filename (f->dir, "SmallMinesDS", "2016", "IMAGE", "IMG_0004_2016.tif", NULL);
  GDALDatasetH ds;
  double gt[6];
  LodeImportReport report;
  LodeImportOptions options;
  gsize len;
  g_autofree char *bytes = NULL;

  /* Tile 0001 (2016) cut short after its header: listed, not imported. */
  g_assert_true (g_file_get_contents (img1, &bytes, &len, NULL));
  truncate_file (img1, len - len / 3);
  /* Tile 0002 (2016) has no mask. */
  g_assert_cmpint (g_unlink (mask2), ==, 0);
  /* Tile 0003's mask is shifted by a pixel. */
  ds = GDALOpen (mask3, GA_Update);
  g_assert_nonnull (ds);
  GDALGetGeoTransform (ds, gt);
  gt[0] += 10.0;
  GDALSetGeoTransform (ds, gt);
  GDALClose (ds);
  /* A stray file whose name is not a patch name. */
  g_assert_true (g_file_set_contents (stray, "x", 1, NULL));
  /* The old naming without the country code. */
  g_assert_cmpint (g_rename (old_name, new_name), ==, 0);

  lode_import_options_init (&options);
  options.expected_size = 32;
  lode_import_report_init (&report);
  g_assert_true (lode_import_smallminesds (store, f->dir, &options, &report, NULL, NULL, NULL, &error));
  g_assert_no_error (error);

  g_assert_cmpuint (report.n_patches, ==, 9);   /* all but the truncated one */
  g_assert_cmpuint (report.n_masks, ==, 7);     /* less the missing and the shifted mask */
  g_assert_cmpint (count_odd_with (&report, "IMG_GH_0001_2016.tif"), ==, 1);
  g_assert_cmpint (count_odd_with (&report, "no mask"), ==, 1);
  g_assert_cmpint (count_odd_with (&report, "georeferencing"), ==, 1);
  g_assert_cmpint (count_odd_with (&report, "notes.tif"), ==, 1);
  {
    g_autoptr(LodePatch) p = lode_store_find_patch (store, "0004", 2016, &error);
    g_assert_no_error (error);
    g_assert_nonnull (p);
    g_assert_null (p->odd_reason);
  }
  {
    g_autoptr(LodePatch) p = lode_store_find_patch (store, "0002", 2016, &error);
    g_assert_nonnull (p->odd_reason);
  }
  lode_import_report_clear (&report);
}

static void
test_not_smallminesds (Fixture *f, gconstpointer data)
{
  g_autoptr(LodeStore) store = new_store (f, "n.lode");
  g_autoptr(GError) error = NULL;
  g_autofree char *missing = g_build_filename (f->work, "nothing-here", NULL);
  LodeImportReport report;

  lode_import_report_init (&report);
  g_assert_false (lode_import_is_smallminesds (f->work));
  g_assert_false (lode_import_smallminesds (store, f->work, NULL, &report, NULL, NULL, NULL, &error));
  g_assert_error (error, LODE_IMPORT_ERROR, LODE_IMPORT_ERROR_LAYOUT);
  g_assert_nonnull (strstr (error->message, f->work));
  g_clear_error (&error);
  g_assert_false (lode_import_folder (store, missing, NULL, &report, NULL, NULL, NULL, &error));
  g_assert_error (error, LODE_IMPORT_ERROR, LODE_IMPORT_ERROR_FOLDER);
  g_assert_nonnull (strstr (error->message, "nothing-here"));
  lode_import_report_clear (&report);
}

static void
test_cancel (Fixture *f, gconstpointer data)
{
  g_autoptr(LodeStore) store = new_store (f, "x.lode");
  g_autoptr(GError) error = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GPtrArray) patches = NULL;
  LodeImportReport report;

  g_cancellable_cancel (cancellable);
  lode_import_report_init (&report);
  g_assert_false (lode_import_smallminesds (store, f->dir, NULL, &report, NULL, NULL, cancellable, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  lode_import_report_clear (&report);
  /* One transaction: nothing of it stays. */
  patches = lode_store_list_patches (store, NULL);
  g_assert_cmpuint (patches->len, ==, 0);
}

static void
test_parse_name (void)
{
  const struct { const char *name; const char *tile; int year; } ok[] = {
    { "IMG_GH_0001_2016.tif", "0001", 2016 },
    { "MASK_1125_2016.tif", "1125", 2016 },
    { "/a/b/MASK_GH_2135_2022.tif", "2135", 2022 },
  };
  const char *bad[] = { "notes.tif", "IMG_GH_0001.tif", "IMG_GH_0001_16.tif", "IMG__2016.tif", "IMG_0-1_2016.tif" };

  for (guint i = 0; i < G_N_ELEMENTS (ok); i++)
    {
      g_autofree char *tile = NULL;
      int year = 0;
      g_assert_true (lode_import_parse_name (ok[i].name, &tile, &year));
      g_assert_cmpstr (tile, ==, ok[i].tile);
      g_assert_cmpint (year, ==, ok[i].year);
    }
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    g_assert_false (lode_import_parse_name (bad[i], NULL, NULL));
}

/* The document: edits commit, undo and redo survive closing the project. */
static void
test_document (Fixture *f, gconstpointer data)
{
  g_autofree char *path = g_build_filename (f->work, "d.lode", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeMask) before = NULL;
  g_autoptr(LodeMask) after = NULL;
  gint64 id;
  LodeImportReport report;
  double line[] = { 4, 4, 20, 20 };

  {
    g_autoptr(LodeStore) store = lode_store_open (path, TRUE, &error);
    g_autoptr(LodePatch) p = NULL;
    g_autoptr(LodeDocument) doc = NULL;

    lode_import_report_init (&report);
    g_assert_true (lode_import_smallminesds (store, f->dir, NULL, &report, NULL, NULL, NULL, &error));
    lode_import_report_clear (&report);
    p = lode_store_find_patch (store, "0002", 2022, &error);
    id = p->id;
    doc = lode_document_open (store, id, &error);
    g_assert_no_error (error);
    before = lode_mask_copy (lode_document_get_mask (doc));
    g_assert_false (lode_document_can_undo (doc));
    g_assert_true (lode_document_stroke (doc, line, 2, 3.0, 1, "tester", &error));
    g_assert_no_error (error);
    g_assert_true (lode_document_fill (doc, 30, 1, 1, "tester", &error));
    after = lode_mask_copy (lode_document_get_mask (doc));
    g_assert_false (lode_mask_equal (before, after));
    g_assert_true (lode_document_undo (doc, "tester", &error));
    g_assert_true (lode_document_undo (doc, "tester", &error));
    g_assert_true (lode_mask_equal (before, lode_document_get_mask (doc)));
    g_assert_true (lode_document_redo (doc, "tester", &error));
    g_assert_no_error (error);
  }
  /* Reopened: one edit applied, one to redo. */
  {
    g_autoptr(LodeStore) store = lode_store_open (path, FALSE, &error);
    g_autoptr(LodeDocument) doc = lode_document_open (store, id, &error);

    g_assert_no_error (error);
    g_assert_true (lode_document_can_undo (doc));
    g_assert_true (lode_document_can_redo (doc));
    g_assert_true (lode_document_redo (doc, "tester", &error));
    g_assert_true (lode_mask_equal (after, lode_document_get_mask (doc)));
    g_assert_true (lode_document_undo (doc, "tester", &error));
    g_assert_true (lode_document_undo (doc, "tester", &error));
    g_assert_true (lode_mask_equal (before, lode_document_get_mask (doc)));
    g_assert_false (lode_document_can_undo (doc));
    g_assert_true (lode_mask_equal (before, lode_document_get_original (doc)));
  }
}

/* A revision added from elsewhere (a pre-label run, another window) while a
 * patch is open is never overwritten by an edit made on the old mask: the
 * edit is refused, the document shows the new mask, and the repeated edit
 * lands on top of it. */
static void
test_document_changed_elsewhere (Fixture *f, gconstpointer data)
{
  g_autofree char *path = g_build_filename (f->work, "e.lode", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) store = lode_store_open (path, TRUE, &error);
  g_autoptr(LodeStore) other = NULL;
  g_autoptr(LodeDocument) doc = NULL;
  g_autoptr(LodePatch) p = NULL;
  g_autoptr(LodeMask) elsewhere = NULL;
  g_autoptr(GBytes) blob = NULL;
  g_autoptr(GBytes) latest = NULL;
  g_autoptr(LodeMask) saved = NULL;
  LodeImportReport report;
  double line[] = { 2, 2, 12, 12 };
  gint64 rev;

  lode_import_report_init (&report);
  g_assert_true (lode_import_smallminesds (store, f->dir, NULL, &report, NULL, NULL, NULL, &error));
  lode_import_report_clear (&report);
  p = lode_store_find_patch (store, "0003", 2016, &error);
  doc = lode_document_open (store, p->id, &error);
  g_assert_no_error (error);

  /* Another connection writes a model revision: no mining anywhere. */
  other = lode_store_open (path, FALSE, &error);
  elsewhere = lode_mask_copy (lode_document_get_mask (doc));
  for (gsize i = 0; i < (gsize) elsewhere->width * elsewhere->height; i++)
    if (elsewhere->data[i] != LODE_MASK_NODATA)
      elsewhere->data[i] = 0;
  /* ... and the open document's mask has mining where the stroke will go. */
  g_assert_true (lode_document_stroke (doc, line, 2, 2.0, 1, "tester", &error));
  g_assert_no_error (error);
  blob = lode_mask_serialize (elsewhere);
  rev = lode_store_add_revision (other, p->id, blob, LODE_REVISION_MODEL, 0, "model", NULL, &error);
  g_assert_no_error (error);

  /* An eraser on the old mask is refused; the document now shows the model's mask. */
  g_assert_false (lode_document_erase (doc, line, 2, 2.0, "tester", &error));
  g_assert_error (error, LODE_DOCUMENT_ERROR, LODE_DOCUMENT_ERROR_CHANGED);
  g_assert_nonnull (strstr (error->message, "0003"));
  g_clear_error (&error);
  g_assert_cmpint (lode_document_get_revision (doc), ==, rev);
  g_assert_true (lode_mask_equal (lode_document_get_mask (doc), elsewhere));

  /* A stroke on it is saved on top of the model's mask. */
  g_assert_true (lode_document_stroke (doc, line, 2, 2.0, 1, "tester", &error));
  g_assert_no_error (error);
  latest = lode_store_get_mask (other, p->id, 0, NULL, &error);
  saved = lode_mask_deserialize (latest, &error);
  g_assert_true (lode_mask_equal (saved, lode_document_get_mask (doc)));
  g_assert_cmpuint (saved->data[5 * saved->width + 5], ==, 1);
  g_assert_cmpuint (saved->data[30 * saved->width + 2], ==, elsewhere->data[30 * saved->width + 2]);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  GDALAllRegister ();
  g_test_add ("/import/smallminesds", Fixture, NULL, fixture_setup, test_smallminesds, fixture_teardown);
  g_test_add ("/import/cocoa", Fixture, NULL, fixture_setup, test_cocoa, fixture_teardown);
  g_test_add ("/import/relative-paths", Fixture, NULL, fixture_setup, test_relative_paths, fixture_teardown);
  g_test_add ("/import/odd", Fixture, NULL, fixture_setup, test_odd, fixture_teardown);
  g_test_add ("/import/not-smallminesds", Fixture, NULL, fixture_setup, test_not_smallminesds, fixture_teardown);
  g_test_add ("/import/cancel", Fixture, NULL, fixture_setup, test_cancel, fixture_teardown);
  g_test_add_func ("/import/parse-name", test_parse_name);
  g_test_add ("/document/edit-undo-redo-restart", Fixture, NULL, fixture_setup, test_document, fixture_teardown);
  g_test_add ("/document/changed-elsewhere", Fixture, NULL, fixture_setup, test_document_changed_elsewhere, fixture_teardown);
  return g_test_run ();
}
