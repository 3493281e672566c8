/* Change statistics on a hand-made project whose pixels are known: the
 * hectares per class and year, the 2016 -> 2022 transitions, and the CSV. */
#include "config.h"

#include <string.h>

#include <glib/gstdio.h>

#include "lode-classes.h"
#include "lode-mask.h"
#include "lode-stats.h"
#include "lode-store.h"
#include "lode-test-util.h"

enum { BG = 0, MINING = 1, COCOA = 2, ND = LODE_MASK_NODATA };

static const guint8 tile7_2016[16] = {
  COCOA, COCOA, COCOA, COCOA,
  COCOA, COCOA, MINING, MINING,
  BG, BG, BG, BG,
  BG, BG, BG, ND,
};
static const guint8 tile7_2022[16] = {
  MINING, MINING, COCOA, COCOA,
  COCOA, MINING, MINING, MINING,
  BG, BG, MINING, BG,
  ND, BG, BG, BG,
};
/* Tile 8, 2016 only, 2 x 2 pixels of 20 m. */
static const guint8 tile8_2016[4] = { COCOA, COCOA, COCOA, MINING };

static gint64
add_patch (LodeStore *store, const char *tile, int year, int side, double pixel,
           const guint8 *pixels, GError **error)
{
  g_autoptr(LodeMask) m = lode_mask_new (side, side);
  g_autoptr(GBytes) blob = NULL;
  g_autoptr(GBytes) empty = NULL;
  g_autofree char *image = g_strdup_printf ("IMG_%s_%d.tif", tile, year);
  LodePatch p = { 0 };
  gint64 id;

  p.tile_id = (char *) tile;
  p.year = year;
  p.image_path = image;
  p.width = p.height = side;
  p.n_bands = 13;
  p.has_geotransform = TRUE;
  p.geotransform[0] = 600000;
  p.geotransform[1] = pixel;
  p.geotransform[3] = 700000;
  p.geotransform[5] = -pixel;
  id = lode_store_add_patch (store, &p, error);
  g_assert_cmpint (id, >, 0);
  /* An original of all background, then the revision that counts. */
  empty = lode_mask_serialize (m);
  g_assert_cmpint (lode_store_add_revision (store, id, empty, LODE_REVISION_ORIGINAL, 0, "import", NULL, error), >, 0);
  memcpy (m->data, pixels, (gsize) side * side);
  blob = lode_mask_serialize (m);
  g_assert_cmpint (lode_store_add_revision (store, id, blob, LODE_REVISION_MANUAL, 0, "tester", NULL, error), >, 0);
  return id;
}

static LodeStore *
make_project (const char *dir)
{
  g_autofree char *path = g_build_filename (dir, "stats.lode", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeClassTable) classes = lode_class_table_new_cocoa ();
  g_autofree char *json = lode_class_table_to_json (classes);
  LodeStore *store = lode_store_open (path, TRUE, &error);

  g_assert_no_error (error);
  g_assert_true (lode_store_set_class_table_json (store, json, &error));
  add_patch (store, "0007", 2016, 4, 10.0, tile7_2016, &error);
  add_patch (store, "0007", 2022, 4, 10.0, tile7_2022, &error);
  add_patch (store, "0008", 2016, 2, 20.0, tile8_2016, &error);
  g_assert_no_error (error);
  return store;
}

static void
test_hectares_and_transitions (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autoptr(LodeStore) store = make_project (dir);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStats) stats = lode_stats_compute (store, 2016, 2022, NULL, NULL, NULL, &error);
  const LodeClassTable *classes;

  g_assert_no_error (error);
  classes = lode_stats_get_classes (stats);
  g_assert_cmpint (lode_stats_find_class (classes, "COCOA"), ==, COCOA);
  g_assert_cmpint (lode_stats_find_class (classes, "mining"), ==, MINING);
  g_assert_cmpint (lode_stats_find_class (classes, "gold"), ==, -1);
  g_assert_cmpuint (lode_stats_n_tiles (stats), ==, 2);
  g_assert_cmpstr (lode_stats_tile (stats, 0), ==, "0007");

  /* 10 m pixels: 0.01 ha; 20 m pixels: 0.04 ha. */
  g_assert_cmpuint (lode_stats_pixels (stats, "0007", 2016, COCOA), ==, 6);
  g_assert_cmpfloat_with_epsilon (lode_stats_hectares (stats, "0007", 2016, COCOA), 0.06, 1e-9);
  g_assert_cmpfloat_with_epsilon (lode_stats_hectares (stats, "0007", 2016, MINING), 0.02, 1e-9);
  g_assert_cmpfloat_with_epsilon (lode_stats_hectares (stats, "0007", 2016, BG), 0.07, 1e-9);
  g_assert_cmpfloat_with_epsilon (lode_stats_hectares (stats, "0007", 2022, MINING), 0.06, 1e-9);
  g_assert_cmpfloat_with_epsilon (lode_stats_hectares (stats, "0007", 2022, COCOA), 0.03, 1e-9);
  g_assert_cmpfloat_with_epsilon (lode_stats_hectares (stats, "0008", 2016, COCOA), 0.12, 1e-9);
  g_assert_cmpfloat_with_epsilon (lode_stats_hectares (stats, "0008", 2022, COCOA), 0.0, 1e-9);
  g_assert_cmpfloat_with_epsilon (lode_stats_hectares (stats, NULL, 2016, COCOA), 0.18, 1e-9);
  g_assert_cmpfloat_with_epsilon (lode_stats_hectares (stats, NULL, 2016, MINING), 0.06, 1e-9);
  g_assert_cmpuint (lode_stats_pixels (stats, NULL, 2016, COCOA), ==, 9);

  /* Tile 7 only: tile 8 has no 2022 patch. Nodata in either year counts nowhere. */
  g_assert_cmpuint (lode_stats_transition_pixels (stats, NULL, COCOA, MINING), ==, 3);
  g_assert_cmpfloat_with_epsilon (lode_stats_transition_hectares (stats, NULL, COCOA, MINING), 0.03, 1e-9);
  g_assert_cmpuint (lode_stats_transition_pixels (stats, NULL, COCOA, COCOA), ==, 3);
  g_assert_cmpuint (lode_stats_transition_pixels (stats, NULL, MINING, MINING), ==, 2);
  g_assert_cmpuint (lode_stats_transition_pixels (stats, NULL, BG, MINING), ==, 1);
  g_assert_cmpuint (lode_stats_transition_pixels (stats, NULL, BG, BG), ==, 5);
  g_assert_cmpuint (lode_stats_transition_pixels (stats, NULL, MINING, COCOA), ==, 0);
  g_assert_cmpuint (lode_stats_transition_pixels (stats, "0008", COCOA, COCOA), ==, 0);
  lode_test_rmtree (dir);
}

static void
test_csv (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autoptr(LodeStore) store = make_project (dir);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStats) stats = lode_stats_compute (store, 2016, 2022, NULL, NULL, NULL, &error);
  g_autofree char *totals = lode_stats_to_csv (stats, FALSE);
  g_autofree char *path = g_build_filename (dir, "out", "stats.csv", NULL);
  g_autofree char *written = NULL;
  g_autofree char *per_tile = NULL;
  g_auto(GStrv) lines = g_strsplit (totals, "\n", -1);
  int first_transition = -1;

  g_assert_cmpstr (lines[0], ==, "kind,tile,year,class,from_class,to_class,pixels,hectares");
  g_assert_cmpstr (lines[1], ==, "area,total,2016,Background,,,7,0.0700");
  for (int i = 1; lines[i] != NULL; i++)
    if (g_str_has_prefix (lines[i], "transition,") && first_transition < 0)
      first_transition = i;
  g_assert_cmpint (first_transition, >, 0);
  g_assert_cmpstr (lines[first_transition], ==, "transition,total,2016-2022,,Cocoa,Mining,3,0.0300");
  /* 2 years x 3 classes, then 3 x 3 transitions. */
  g_assert_cmpint (first_transition, ==, 7);
  g_assert_cmpuint (g_strv_length (lines), ==, 1 + 6 + 9 + 1);
  g_assert_null (strstr (totals, "area,0007"));

  per_tile = lode_stats_to_csv (stats, TRUE);
  g_assert_nonnull (strstr (per_tile, "area,0008,2016,Cocoa,,,3,0.1200\n"));
  g_assert_nonnull (strstr (per_tile, "transition,0007,2016-2022,,Cocoa,Mining,3,0.0300\n"));

  /* A missing folder is an error naming the file. */
  g_assert_false (lode_stats_write_csv (stats, path, FALSE, &error));
  g_assert_error (error, LODE_STATS_ERROR, LODE_STATS_ERROR_WRITE);
  g_assert_nonnull (strstr (error->message, path));
  g_clear_error (&error);
  g_free (path);
  path = g_build_filename (dir, "stats.csv", NULL);
  g_assert_true (lode_stats_write_csv (stats, path, FALSE, &error));
  g_assert_true (g_file_get_contents (path, &written, NULL, NULL));
  g_assert_cmpstr (written, ==, totals);
  lode_test_rmtree (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/stats/hectares-and-transitions", test_hectares_and_transitions);
  g_test_add_func ("/stats/csv", test_csv);
  return g_test_run ();
}
