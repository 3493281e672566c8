/* Export of a revised label set: what lands in the chosen folder, read back
 * the way a user's GIS or training script would, and the folders it must
 * refuse. */
#include "config.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wundef"
#include <gdal.h>
#include <ogr_api.h>
#include <ogr_srs_api.h>
#pragma GCC diagnostic pop

#include "lode-demo.h"
#include "lode-document.h"
#include "lode-export.h"
#include "lode-import.h"
#include "lode-raster.h"
#include "lode-splits.h"
#include "lode-stats.h"
#include "lode-test-util.h"

#define SIZE 32

typedef struct
{
  char      *dir;
  char      *source;
  char      *out;
  LodeStore *store;
  gint64     edited;   /* the patch with a painted ring */
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *project = NULL;
  g_autoptr(GPtrArray) patches = NULL;
  g_autoptr(LodeDocument) doc = NULL;
  LodeDemoOptions demo;
  LodeImportOptions options;
  LodeImportReport report;
  double centre[2] = { SIZE / 2.0, SIZE / 2.0 };
  double ring[2 * 33];

  f->dir = lode_test_mkdtemp ();
  f->source = g_build_filename (f->dir, "source", NULL);
  f->out = g_build_filename (f->dir, "export", NULL);
  project = g_build_filename (f->dir, "project.lode", NULL);

  lode_demo_options_init (&demo);
  demo.n_tiles = 3;
  demo.size = SIZE;
  g_assert_true (lode_demo_write (f->source, &demo, NULL, NULL, NULL, &error));
  g_assert_no_error (error);

  f->store = lode_store_open (project, TRUE, &error);
  g_assert_no_error (error);
  lode_import_options_init (&options);
  lode_import_report_init (&report);
  g_assert_true (lode_import_smallminesds (f->store, f->source, &options, &report, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (report.n_masks, ==, 6);
  lode_import_report_clear (&report);

  /* A mining ring around cleared ground: a polygon with a hole. */
  patches = lode_store_list_patches (f->store, &error);
  f->edited = ((LodePatch *) g_ptr_array_index (patches, 0))->id;
  doc = lode_document_open (f->store, f->edited, &error);
  g_assert_no_error (error);
  g_assert_true (lode_document_stroke (doc, centre, 1, 11.0, 0, "tester", &error));
  for (int i = 0; i <= 32; i++)
    {
      ring[2 * i] = SIZE / 2.0 + 7.0 * cos (2 * G_PI * i / 32);
      ring[2 * i + 1] = SIZE / 2.0 + 7.0 * sin (2 * G_PI * i / 32);
    }
  g_assert_true (lode_document_stroke (doc, ring, 33, 1.5, 1, "tester", &error));
  g_assert_no_error (error);
  g_assert_true (lode_store_set_review (f->store, f->edited, LODE_REVIEW_ACCEPTED, "reviewer-a", NULL, &error));
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_clear_pointer (&f->store, lode_store_close);
  lode_test_rmtree (f->dir);
  g_free (f->dir);
  g_free (f->source);
  g_free (f->out);
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

/* 4-connected regions of each class but background and nodata. */
static guint
count_regions (const LodeMask *m)
{
  gsize n = (gsize) m->width * m->height;
  g_autofree guint8 *seen = g_new0 (guint8, n);
  g_autofree gsize *stack = g_new (gsize, n);
  guint regions = 0;

  for (gsize s = 0; s < n; s++)
    {
      gsize top = 0;

      if (seen[s] || m->data[s] == 0 || m->data[s] == LODE_MASK_NODATA)
        continue;
      regions++;
      seen[s] = 1;
      stack[top++] = s;
      while (top > 0)
        {
          gsize i = stack[--top];
          int x = i % m->width, y = i / m->width;
          const int dx[4] = { 1, -1, 0, 0 }, dy[4] = { 0, 0, 1, -1 };

          for (int d = 0; d < 4; d++)
            {
              int nx = x + dx[d], ny = y + dy[d];
              gsize j;

              if (nx < 0 || ny < 0 || nx >= m->width || ny >= m->height)
                continue;
              j = (gsize) ny * m->width + nx;
              if (!seen[j] && m->data[j] == m->data[i])
                {
                  seen[j] = 1;
                  stack[top++] = j;
                }
            }
        }
    }
  return regions;
}

static void
assert_no_temporaries (const char *dir)
{
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;

  if (d == NULL)
    return;
  while ((name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);

      g_assert_false (g_str_has_prefix (name, ".lode-tmp-"));
      if (g_file_test (path, G_FILE_TEST_IS_DIR) && !g_file_test (path, G_FILE_TEST_IS_SYMLINK))
        assert_no_temporaries (path);
    }
}

static gboolean
run_export (Fixture *f, const char *dir, LodeExportFormats formats, gboolean accepted_only,
            LodeExportBands bands, LodeExportReport *report, GError **error)
{
  LodeExportOptions options;

  lode_export_options_init (&options);
  options.formats = formats;
  options.accepted_only = accepted_only;
  options.bands = bands;
  return lode_export_run (f->store, dir, &options, report, NULL, NULL, NULL, error);
}

/* Every mask file: the image's grid, nodata 255, the latest mask's values. */
static void
check_masks (Fixture *f, GPtrArray *patches)
{
  for (guint i = 0; i < patches->len; i++)
    {
      const LodePatch *p = g_ptr_array_index (patches, i);
      g_autofree char *rel = lode_export_mask_path (p, "smallminesds");
      g_autofree char *path = g_build_filename (f->out, rel, NULL);
      g_autofree char *image_path = lode_store_resolve_path (f->store, p->image_path);
      g_autofree char *expected_name = g_strdup_printf ("MASK_GH_%s_%d.tif", p->tile_id, p->year);
      g_autoptr(GError) error = NULL;
      g_autoptr(LodeRaster) image = lode_raster_open_header (image_path, &error);
      g_autoptr(LodeRaster) mask = lode_raster_open (path, &error);
      g_autoptr(LodeMask) latest = latest_mask (f->store, p->id);
      GDALDatasetH ds;
      int has_nodata = 0;

      g_assert_no_error (error);
      g_assert_true (g_str_has_suffix (path, expected_name));
      g_assert_true (lode_raster_same_grid (mask, image));
      g_assert_cmpstr (mask->crs_wkt, ==, image->crs_wkt);
      for (int k = 0; k < 6; k++)
        g_assert_cmpfloat (mask->geotransform[k], ==, image->geotransform[k]);
      g_assert_cmpint (mask->n_bands, ==, 1);
      g_assert_cmpint (mask->source_type, ==, GDT_Byte);
      for (gsize j = 0; j < (gsize) SIZE * SIZE; j++)
        {
          if (latest->data[j] == LODE_MASK_NODATA)
            g_assert_true (isnan (mask->data[j]));
          else
            g_assert_cmpfloat (mask->data[j], ==, latest->data[j]);
        }
      ds = GDALOpen (path, GA_ReadOnly);
      g_assert_nonnull (ds);
      g_assert_cmpfloat (GDALGetRasterNoDataValue (GDALGetRasterBand (ds, 1), &has_nodata), ==, 255);
      g_assert_true (has_nodata);
      g_assert_cmpstr (GDALGetMetadataItem (ds, "COMPRESSION", "IMAGE_STRUCTURE"), ==, "DEFLATE");
      GDALClose (ds);
    }
}

/* The split files parse, name every split patch once and give the mining
 * share of its latest mask. */
static void
check_splits (Fixture *f, GPtrArray *patches)
{
  for (int year = 2016; year <= 2022; year += 6)
    {
      g_autofree char *name = g_strdup_printf ("train_test_splits_%d.csv", year);
      g_autofree char *path = g_build_filename (f->out, "data_splits", name, NULL);
      g_autofree char *text = NULL;
      g_auto(GStrv) lines = NULL;
      guint rows = 0, expected = 0;

      g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
      lines = g_strsplit (text, "\n", -1);
      g_assert_cmpstr (lines[0], ==, "patch_name,class_percentage,bin,split");
      for (guint i = 0; i < patches->len; i++)
        {
          const LodePatch *p = g_ptr_array_index (patches, i);
          g_autofree char *patch_name = g_strdup_printf ("MASK_%s_%d.tif", p->tile_id, year);
          g_autoptr(LodeMask) m = NULL;
          guint64 counts[256];
          double percent;
          gboolean found = FALSE;

          if (p->year != year || p->split == NULL)
            continue;
          expected++;
          m = latest_mask (f->store, p->id);
          lode_mask_count (m, counts);
          percent = lode_splits_percent (counts[1], (guint64) SIZE * SIZE - counts[LODE_MASK_NODATA]);
          for (int l = 1; lines[l] != NULL; l++)
            {
              g_auto(GStrv) fields = g_strsplit (lines[l], ",", -1);
              g_autofree char *bin = NULL;

              if (lines[l][0] == '\0' || !g_str_equal (fields[0], patch_name))
                continue;
              g_assert_cmpuint (g_strv_length (fields), ==, 4);
              g_assert_cmpfloat_with_epsilon (g_ascii_strtod (fields[1], NULL), percent, 1e-9);
              bin = g_strdup_printf ("%d-%d%%", lode_splits_bin (percent) * 10, lode_splits_bin (percent) * 10 + 10);
              g_assert_cmpstr (fields[2], ==, bin);
              g_assert_cmpstr (fields[3], ==, p->split);
              g_assert_false (found);
              found = TRUE;
            }
          g_assert_true (found);
        }
      for (int l = 1; lines[l] != NULL; l++)
        rows += lines[l][0] != '\0';
      g_assert_cmpuint (rows, ==, expected);
    }
}

static void
check_manifest (Fixture *f, GPtrArray *patches)
{
  g_autofree char *path = g_build_filename (f->out, "manifest.json", NULL);
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeMask) edited = latest_mask (f->store, f->edited);
  g_autoptr(GBytes) original_blob = lode_store_get_original_mask (f->store, f->edited, &error);
  g_autoptr(LodeMask) original = lode_mask_deserialize (original_blob, &error);
  JsonObject *root, *counts, *changes, *class_pixels;
  JsonArray *list;
  guint64 changed = 0, mining = 0;
  gboolean seen_edited = FALSE;
  g_autoptr(GPtrArray) revisions = lode_store_list_revisions (f->store, f->edited, NULL);
  int n_revisions = revisions->len;

  g_assert_true (json_parser_load_from_file (parser, path, &error));
  g_assert_no_error (error);
  root = json_node_get_object (json_parser_get_root (parser));
  counts = json_object_get_object_member (root, "counts");
  g_assert_cmpint (json_object_get_int_member (counts, "patches"), ==, patches->len);
  g_assert_cmpint (json_object_get_int_member (json_object_get_object_member (counts, "states"), "accepted"), ==, 1);
  for (gsize j = 0; j < (gsize) SIZE * SIZE; j++)
    changed += edited->data[j] != original->data[j];
  g_assert_cmpuint (changed, >, 0);
  changes = json_object_get_object_member (root, "changes");
  g_assert_cmpint (json_object_get_int_member (changes, "patches_changed"), ==, 1);
  g_assert_cmpint (json_object_get_int_member (changes, "pixels_changed"), ==, (gint64) changed);
  g_assert_nonnull (json_object_get_string_member (root, "lode_version"));
  g_assert_true (json_object_has_member (root, "created"));
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (
    json_object_get_object_member (root, "classes"), "classes")), ==, 2);

  for (guint i = 0; i < patches->len; i++)
    {
      g_autoptr(LodeMask) m = latest_mask (f->store, ((LodePatch *) g_ptr_array_index (patches, i))->id);
      guint64 c[256];

      lode_mask_count (m, c);
      mining += c[1];
    }
  class_pixels = json_object_get_object_member (root, "class_pixels");
  g_assert_cmpint (json_object_get_int_member (class_pixels, "Mining"), ==, (gint64) mining);

  list = json_object_get_array_member (root, "patches");
  g_assert_cmpuint (json_array_get_length (list), ==, patches->len);
  for (guint i = 0; i < json_array_get_length (list); i++)
    {
      JsonObject *p = json_array_get_object_element (list, i);
      gboolean is_edited = g_str_equal (json_object_get_string_member (p, "tile"), "0001")
        && json_object_get_int_member (p, "year") == 2016;

      if (!is_edited)
        {
          g_assert_cmpint (json_object_get_int_member (p, "changed_pixels"), ==, 0);
          g_assert_cmpint (json_object_get_int_member (p, "revisions"), ==, 1);
          continue;
        }
      seen_edited = TRUE;
      g_assert_cmpint (json_object_get_int_member (p, "changed_pixels"), ==, (gint64) changed);
      g_assert_cmpint (json_object_get_int_member (p, "revisions"), ==, n_revisions);
      g_assert_cmpint (n_revisions, >=, 2);
      g_assert_cmpstr (json_object_get_string_member (p, "state"), ==, "accepted");
      g_assert_cmpstr (json_object_get_string_member (p, "reviewer"), ==, "reviewer-a");
    }
  g_assert_true (seen_edited);
}

static void
check_polygons (Fixture *f, GPtrArray *patches)
{
  g_autofree char *path = g_build_filename (f->out, "polygons.gpkg", NULL);
  GDALDatasetH ds = GDALOpenEx (path, GDAL_OF_VECTOR, NULL, NULL, NULL);
  OGRLayerH layer;
  OGRFeatureH feature;
  guint expected = 0, holes = 0;
  OGRSpatialReferenceH srs;

  g_assert_nonnull (ds);
  layer = GDALDatasetGetLayerByName (ds, "labels");
  g_assert_nonnull (layer);
  for (guint i = 0; i < patches->len; i++)
    {
      g_autoptr(LodeMask) m = latest_mask (f->store, ((LodePatch *) g_ptr_array_index (patches, i))->id);
      expected += count_regions (m);
    }
  g_assert_cmpuint (expected, >, 0);
  g_assert_cmpint (OGR_L_GetFeatureCount (layer, TRUE), ==, expected);
  srs = OGR_L_GetSpatialRef (layer);
  g_assert_nonnull (srs);
  g_assert_cmpstr (OSRGetAuthorityCode (srs, NULL), ==, "32630");

  OGR_L_ResetReading (layer);
  while ((feature = OGR_L_GetNextFeature (layer)) != NULL)
    {
      OGRGeometryH g = OGR_F_GetGeometryRef (feature);
      int year = OGR_F_GetFieldAsInteger (feature, OGR_F_GetFieldIndex (feature, "year"));
      const char *tile = OGR_F_GetFieldAsString (feature, OGR_F_GetFieldIndex (feature, "tile"));

      g_assert_cmpstr (OGR_F_GetFieldAsString (feature, OGR_F_GetFieldIndex (feature, "class")), ==, "Mining");
      g_assert_cmpint (OGR_F_GetFieldAsInteger (feature, OGR_F_GetFieldIndex (feature, "class_value")), ==, 1);
      g_assert_true (year == 2016 || year == 2022);
      g_assert_cmpuint (strlen (tile), ==, 4);
      g_assert_cmpint (wkbFlatten (OGR_G_GetGeometryType (g)), ==, wkbPolygon);
      /* The painted ring's hole: about 11 pixels (110 m) across. */
      for (int r = 1; g_str_equal (tile, "0001") && year == 2016 && r < OGR_G_GetGeometryCount (g); r++)
        {
          OGREnvelope env;

          OGR_G_GetEnvelope (OGR_G_GetGeometryRef (g, r), &env);
          if (env.MaxX - env.MinX > 80.0 && env.MaxX - env.MinX < 140.0
              && env.MaxY - env.MinY > 80.0 && env.MaxY - env.MinY < 140.0)
            holes++;
        }
      OGR_F_Destroy (feature);
    }
  g_assert_cmpuint (holes, ==, 1);
  GDALClose (ds);
}

static void
check_terratorch (Fixture *f, GPtrArray *patches, int n_bands)
{
  g_autofree char *config_path = g_build_filename (f->out, "terratorch", "config.yaml", NULL);
  g_autofree char *config = NULL;

  for (guint i = 0; i < patches->len; i++)
    {
      const LodePatch *p = g_ptr_array_index (patches, i);
      const char *folder = g_str_equal (p->split, "train") ? "training" : "validation";
      const char *other = g_str_equal (p->split, "train") ? "validation" : "training";
      g_autofree char *img_name = g_strdup_printf ("GH_%s_%d_IMG.tif", p->tile_id, p->year);
      g_autofree char *mask_name = g_strdup_printf ("GH_%s_%d_MASK.tif", p->tile_id, p->year);
      g_autofree char *img = g_build_filename (f->out, "terratorch", folder, img_name, NULL);
      g_autofree char *mask = g_build_filename (f->out, "terratorch", folder, mask_name, NULL);
      g_autofree char *wrong = g_build_filename (f->out, "terratorch", other, img_name, NULL);
      g_autofree char *source = lode_store_resolve_path (f->store, p->image_path);
      g_autoptr(GError) error = NULL;
      g_autoptr(LodeRaster) r = lode_raster_open (img, &error);
      g_autoptr(LodeRaster) src = lode_raster_open (source, &error);
      const int six[6] = { 0, 1, 2, 7, 8, 9 };

      g_assert_no_error (error);
      g_assert_true (g_file_test (mask, G_FILE_TEST_IS_REGULAR));
      g_assert_false (g_file_test (wrong, G_FILE_TEST_EXISTS));
      g_assert_cmpint (r->n_bands, ==, n_bands);
      g_assert_true (lode_raster_same_grid (r, src));
      g_assert_true (r->band_has_nodata[0]);
      for (int b = 0; b < n_bands; b++)
        {
          const float *a = lode_raster_band (r, b);
          const float *s = lode_raster_band (src, n_bands == 6 ? six[b] : b);

          g_assert_cmpmem (a, sizeof (float) * SIZE * SIZE, s, sizeof (float) * SIZE * SIZE);
        }
    }
  g_assert_true (g_file_get_contents (config_path, &config, NULL, NULL));
  g_assert_nonnull (strstr (config, "GenericNonGeoSegmentationDataModule"));
  g_assert_nonnull (strstr (config, "img_grep: \"*_IMG.tif\""));
  g_assert_nonnull (strstr (config, "label_grep: \"*_MASK.tif\""));
  g_assert_nonnull (strstr (config, "batch_size: 4"));
  g_assert_nonnull (strstr (config, "num_classes: 2"));
  if (n_bands == 6)
    g_assert_nonnull (strstr (config, "means: [1473.81388377, 1703.35249650, 1696.67685941, 3832.39764247, 3156.11122121, 2226.06822112]"));
  else
    g_assert_nonnull (strstr (config, "192.83874697]"));
}

static void
test_everything (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) patches = lode_store_list_patches (f->store, &error);
  LodeExportReport report;

  g_assert_true (run_export (f, f->out, LODE_EXPORT_ALL_FORMATS, FALSE, LODE_EXPORT_BANDS_SIX, &report, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (report.n_exported, ==, 6);
  g_assert_cmpuint (report.n_changed, ==, 1);
  check_masks (f, patches);
  check_splits (f, patches);
  check_manifest (f, patches);
  check_polygons (f, patches);
  check_terratorch (f, patches, 6);
  assert_no_temporaries (f->out);

  /* Again, all bands, over the first export: files are replaced whole. */
  g_assert_true (run_export (f, f->out, LODE_EXPORT_TERRATORCH, FALSE, LODE_EXPORT_BANDS_ALL, NULL, &error));
  g_assert_no_error (error);
  check_terratorch (f, patches, 13);
  assert_no_temporaries (f->out);
}

static void
test_accepted_only (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *masks_2016 = g_build_filename (f->out, "SmallMinesDS", "2016", "MASK", NULL);
  g_autofree char *masks_2022 = g_build_filename (f->out, "SmallMinesDS", "2022", "MASK", NULL);
  g_autofree char *manifest = g_build_filename (f->out, "manifest.json", NULL);
  g_autofree char *gpkg = g_build_filename (f->out, "polygons.gpkg", NULL);
  g_autoptr(GDir) d = NULL;
  LodeExportReport report;

  g_assert_true (run_export (f, f->out, LODE_EXPORT_MASKS, TRUE, LODE_EXPORT_BANDS_ALL, &report, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (report.n_exported, ==, 1);
  g_assert_cmpuint (report.n_not_accepted, ==, 5);
  g_assert_cmpuint (report.n_files, ==, 1);
  d = g_dir_open (masks_2016, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (g_dir_read_name (d), ==, "MASK_GH_0001_2016.tif");
  g_assert_null (g_dir_read_name (d));
  g_assert_false (g_file_test (masks_2022, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (manifest, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (gpkg, G_FILE_TEST_EXISTS));
}

static void
test_formats (void)
{
  g_autoptr(GError) error = NULL;
  LodeExportFormats formats = 0;

  g_assert_true (lode_export_parse_formats ("masks, gpkg", &formats, &error));
  g_assert_cmpint (formats, ==, LODE_EXPORT_MASKS | LODE_EXPORT_GPKG);
  g_assert_true (lode_export_parse_formats ("all", &formats, &error));
  g_assert_cmpint (formats, ==, LODE_EXPORT_ALL_FORMATS);
  g_assert_false (lode_export_parse_formats ("masks,shapefile", &formats, &error));
  g_assert_error (error, LODE_EXPORT_ERROR, LODE_EXPORT_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "shapefile"));
}

/* Nothing is written into the data set, nor into a folder holding it. */
static void
test_refuses_data_set (Fixture *f, gconstpointer data)
{
  g_autofree char *inside = g_build_filename (f->source, "SmallMinesDS", "2016", "export", NULL);
  g_autofree char *own = g_build_filename (f->source, "SmallMinesDS", NULL);
  g_autofree char *mask_dir = g_build_filename (f->source, "SmallMinesDS", "2016", "MASK", NULL);
  g_autofree char *mask = g_build_filename (mask_dir, "MASK_GH_0001_2016.tif", NULL);
  const char *targets[] = { inside, own, mask_dir, f->source, f->dir };
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;

  g_assert_true (g_file_get_contents (mask, &before, NULL, NULL));
  for (gsize i = 0; i < G_N_ELEMENTS (targets); i++)
    {
      g_autoptr(GError) error = NULL;

      g_assert_false (run_export (f, targets[i], LODE_EXPORT_ALL_FORMATS, FALSE, LODE_EXPORT_BANDS_ALL, NULL, &error));
      g_assert_error (error, LODE_EXPORT_ERROR, LODE_EXPORT_ERROR_TARGET);
      g_assert_nonnull (strstr (error->message, targets[i]));
    }
  g_assert_false (g_file_test (inside, G_FILE_TEST_EXISTS));
  g_assert_true (g_file_get_contents (mask, &after, NULL, NULL));
  g_assert_cmpstr (before, ==, after);
  assert_no_temporaries (f->source);
}

/* A subfolder that is a link to elsewhere is not written through. */
static void
test_refuses_link_out (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *elsewhere = g_build_filename (f->dir, "elsewhere", NULL);
  g_autofree char *link = g_build_filename (f->out, "SmallMinesDS", NULL);
  g_autoptr(GDir) d = NULL;

  g_assert_cmpint (g_mkdir_with_parents (elsewhere, 0755), ==, 0);
  g_assert_cmpint (g_mkdir_with_parents (f->out, 0755), ==, 0);
  g_assert_cmpint (symlink (elsewhere, link), ==, 0);
  g_assert_false (run_export (f, f->out, LODE_EXPORT_MASKS, FALSE, LODE_EXPORT_BANDS_ALL, NULL, &error));
  g_assert_error (error, LODE_EXPORT_ERROR, LODE_EXPORT_ERROR_TARGET);
  g_assert_nonnull (strstr (error->message, link));
  d = g_dir_open (elsewhere, 0, NULL);
  g_assert_nonnull (d);
  g_assert_null (g_dir_read_name (d));
}

/* A file where a folder should be, or a folder where a file should be:
 * a clear error naming it, and no partial or temporary file left. */
static void
test_unwritable (Fixture *f, gconstpointer data)
{
  g_autofree char *file = g_build_filename (f->dir, "a-file", NULL);
  g_autofree char *splits = g_build_filename (f->out, "data_splits", NULL);
  g_autofree char *blocker = g_build_filename (splits, "train_test_splits_2016.csv", NULL);
  g_autofree char *inner = g_build_filename (blocker, "keep", NULL);
  g_autofree char *smd = g_build_filename (f->out, "SmallMinesDS", NULL);
  g_autoptr(GError) error = NULL;

  g_assert_true (g_file_set_contents (file, "not a folder", -1, NULL));
  g_assert_false (run_export (f, file, LODE_EXPORT_ALL_FORMATS, FALSE, LODE_EXPORT_BANDS_ALL, NULL, &error));
  g_assert_error (error, LODE_EXPORT_ERROR, LODE_EXPORT_ERROR_TARGET);
  g_assert_nonnull (strstr (error->message, file));
  g_clear_error (&error);

  /* The masks' folder is a file. */
  g_assert_cmpint (g_mkdir_with_parents (f->out, 0755), ==, 0);
  g_assert_true (g_file_set_contents (smd, "in the way", -1, NULL));
  g_assert_false (run_export (f, f->out, LODE_EXPORT_MASKS, FALSE, LODE_EXPORT_BANDS_ALL, NULL, &error));
  g_assert_error (error, LODE_EXPORT_ERROR, LODE_EXPORT_ERROR_WRITE);
  g_assert_nonnull (strstr (error->message, smd));
  assert_no_temporaries (f->out);
  g_clear_error (&error);
  g_unlink (smd);

  /* A split file's name is taken by a folder: it fails at the rename. */
  g_assert_cmpint (g_mkdir_with_parents (inner, 0755), ==, 0);
  g_assert_false (run_export (f, f->out, LODE_EXPORT_SPLITS, FALSE, LODE_EXPORT_BANDS_ALL, NULL, &error));
  g_assert_error (error, LODE_EXPORT_ERROR, LODE_EXPORT_ERROR_WRITE);
  g_assert_nonnull (strstr (error->message, blocker));
  g_assert_true (g_file_test (inner, G_FILE_TEST_IS_DIR));
  assert_no_temporaries (f->out);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/export/formats", test_formats);
  g_test_add ("/export/everything", Fixture, NULL, fixture_setup, test_everything, fixture_teardown);
  g_test_add ("/export/accepted-only", Fixture, NULL, fixture_setup, test_accepted_only, fixture_teardown);
  g_test_add ("/export/refuses-data-set", Fixture, NULL, fixture_setup, test_refuses_data_set, fixture_teardown);
  g_test_add ("/export/refuses-link-out", Fixture, NULL, fixture_setup, test_refuses_link_out, fixture_teardown);
  g_test_add ("/export/unwritable", Fixture, NULL, fixture_setup, test_unwritable, fixture_teardown);
  return g_test_run ();
}
