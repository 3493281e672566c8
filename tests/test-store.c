/* The project store: what is saved is there after reopening, revisions and
 * the review log are append-only, undo/redo survive a restart, old files
 * are migrated, files from elsewhere (newer Lode, other programs, not
 * SQLite, read-only, full disk) give clear errors and lose nothing. */
#include "config.h"

#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "lode-store-private.h"
#include "lode-test-util.h"

typedef struct
{
  char *dir;
  char *path;
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  f->dir = lode_test_mkdtemp ();
  f->path = g_build_filename (f->dir, "project.lode", NULL);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_chmod (f->dir, 0700);
  lode_test_rmtree (f->dir);
  g_free (f->dir);
  g_free (f->path);
}

static LodeStore *
open_store (const char *path, gboolean create)
{
  g_autoptr(GError) error = NULL;
  LodeStore *s = lode_store_open (path, create, &error);

  g_assert_no_error (error);
  g_assert_nonnull (s);
  return s;
}

/* Deterministic pseudo-random bytes standing in for a serialized mask. */
static GBytes *
make_bytes (guint32 seed, gsize n)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (seed);
  guint8 *data = g_malloc (n);

  for (gsize i = 0; i < n; i++)
    data[i] = (guint8) g_rand_int (rand);
  return g_bytes_new_take (data, n);
}

static gint64
add_patch (LodeStore *s, const char *tile, int year)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *image = g_strdup_printf ("data/%s_%d.tif", tile, year);
  LodePatch p = {
    .tile_id = (char *) tile, .year = year, .image_path = image,
    .width = 128, .height = 128, .n_bands = 13,
  };
  gint64 id = lode_store_add_patch (s, &p, &error);

  g_assert_no_error (error);
  g_assert_cmpint (id, >, 0);
  return id;
}

static gint64
pragma_int (LodeStore *s, const char *sql)
{
  sqlite3_stmt *st = NULL;
  gint64 v;

  g_assert_cmpint (sqlite3_prepare_v2 (lode_store_get_db (s), sql, -1, &st, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (st), ==, SQLITE_ROW);
  v = sqlite3_column_int64 (st, 0);
  sqlite3_finalize (st);
  return v;
}

static void
assert_error_names_file (const GError *error, const char *path)
{
  g_autofree char *base = g_path_get_basename (path);

  g_assert_nonnull (error);
  if (strstr (error->message, base) == NULL)
    g_error ("message does not name %s: %s", base, error->message);
}

static void
test_create_reopen (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) s = NULL;
  g_autofree char *name = NULL, *version = NULL, *created = NULL, *root = NULL;

  /* Opening a missing project without create fails and makes nothing. */
  s = lode_store_open (f->path, FALSE, &error);
  g_assert_null (s);
  g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NOT_FOUND);
  assert_error_names_file (error, f->path);
  g_assert_false (g_file_test (f->path, G_FILE_TEST_EXISTS));
  g_clear_error (&error);

  s = open_store (f->path, TRUE);
  g_assert_true (g_path_is_absolute (lode_store_get_path (s)));
  g_assert_true (g_str_has_suffix (lode_store_get_path (s), "project.lode"));
  g_assert_cmpint (pragma_int (s, "PRAGMA user_version"), ==, lode_store_format_version ());
  g_assert_cmpint (pragma_int (s, "PRAGMA application_id"), ==, LODE_STORE_APPLICATION_ID);
  g_assert_cmpint (pragma_int (s, "PRAGMA synchronous"), ==, 2);  /* FULL */
  g_assert_cmpint (pragma_int (s, "PRAGMA foreign_keys"), ==, 1);
  g_assert_true (lode_store_set_meta (s, "dataset_root", "../SmallMinesDS", &error));
  g_assert_no_error (error);
  g_assert_true (lode_store_set_meta (s, "band_profile", "smallminesds-13", &error));
  g_assert_true (lode_store_set_meta (s, "band_profile", "sentinel2-10", &error));
  g_assert_null (lode_store_get_meta (s, "absent"));
  g_clear_pointer (&s, lode_store_close);

  s = open_store (f->path, FALSE);
  name = lode_store_get_meta (s, "name");
  version = lode_store_get_meta (s, "lode_version");
  created = lode_store_get_meta (s, "created");
  root = lode_store_get_meta (s, "dataset_root");
  g_assert_cmpstr (name, ==, "project");
  g_assert_cmpstr (version, ==, PACKAGE_VERSION);
  g_assert_nonnull (created);
  g_assert_cmpstr (root, ==, "../SmallMinesDS");
  g_free (root);
  root = lode_store_get_meta (s, "band_profile");
  g_assert_cmpstr (root, ==, "sentinel2-10");

  /* WAL journal, so readers and the writer do not block each other. */
  {
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2 (lode_store_get_db (s), "PRAGMA journal_mode", -1, &st, NULL);
    g_assert_cmpint (sqlite3_step (st), ==, SQLITE_ROW);
    g_assert_cmpstr ((const char *) sqlite3_column_text (st, 0), ==, "wal");
    sqlite3_finalize (st);
  }
  g_assert_true (lode_store_integrity_check (s, &error));
  g_assert_no_error (error);
}

static void
test_paths (Fixture *f, gconstpointer data)
{
  g_autoptr(LodeStore) s = open_store (f->path, TRUE);
  g_autofree char *abs = lode_store_resolve_path (s, "data/0001_2016.tif");
  g_autofree char *expect = g_build_filename (lode_store_get_folder (s), "data", "0001_2016.tif", NULL);
  g_autofree char *same = lode_store_resolve_path (s, "/srv/other/x.tif");
  g_autofree char *rel = lode_store_relative_path (s, abs);
  g_autofree char *outside = lode_store_relative_path (s, "/srv/other/x.tif");

  g_assert_cmpstr (abs, ==, expect);
  g_assert_cmpstr (same, ==, "/srv/other/x.tif");
  g_assert_cmpstr (rel, ==, "data/0001_2016.tif");
  g_assert_cmpstr (outside, ==, "/srv/other/x.tif");
}

static void
test_patches (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) s = open_store (f->path, TRUE);
  g_autoptr(GPtrArray) list = NULL;
  g_autoptr(LodePatch) found = NULL;
  LodePatch p = {
    .tile_id = "0001", .year = 2022, .image_path = "/data/0001_2022.tif",
    .mask_path = "masks/0001_2022.tif", .width = 128, .height = 96, .n_bands = 13,
    .crs_wkt = "EPSG:32630", .geotransform = { 500000, 10, 0, 700000, 0, -10 },
    .has_geotransform = TRUE, .odd_reason = "cloudy",
  };
  gint64 a, b, c, d, dup;

  c = add_patch (s, "0002", 2016);
  b = lode_store_add_patch (s, &p, &error);
  g_assert_no_error (error);
  a = add_patch (s, "0001", 2016);
  d = add_patch (s, "0003", 2022);

  /* The same tile and year twice is refused, naming the tile and the file. */
  dup = lode_store_add_patch (s, &p, &error);
  g_assert_cmpint (dup, ==, 0);
  g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_CONSTRAINT);
  assert_error_names_file (error, f->path);
  g_assert_nonnull (strstr (error->message, "0001"));
  g_clear_error (&error);

  g_assert_true (lode_store_set_patch_split (s, c, "train", &error));
  g_assert_no_error (error);
  g_assert_false (lode_store_set_patch_split (s, c, "validation", &error));
  g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_INVALID);
  g_clear_error (&error);
  g_clear_pointer (&s, lode_store_close);

  s = open_store (f->path, FALSE);
  list = lode_store_list_patches (s, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 4);
  /* Ordered by tile, then year. */
  g_assert_cmpint (((LodePatch *) list->pdata[0])->id, ==, a);
  g_assert_cmpint (((LodePatch *) list->pdata[1])->id, ==, b);
  g_assert_cmpint (((LodePatch *) list->pdata[2])->id, ==, c);
  g_assert_cmpint (((LodePatch *) list->pdata[3])->id, ==, d);
  g_assert_false (((LodePatch *) list->pdata[0])->has_geotransform);
  g_assert_null (((LodePatch *) list->pdata[0])->mask_path);
  g_assert_cmpstr (((LodePatch *) list->pdata[2])->split, ==, "train");

  found = lode_store_find_patch (s, "0001", 2022, &error);
  g_assert_no_error (error);
  g_assert_cmpint (found->id, ==, b);
  g_assert_cmpstr (found->image_path, ==, p.image_path);
  g_assert_cmpstr (found->mask_path, ==, p.mask_path);
  g_assert_cmpint (found->width, ==, 128);
  g_assert_cmpint (found->height, ==, 96);
  g_assert_cmpint (found->n_bands, ==, 13);
  g_assert_cmpstr (found->crs_wkt, ==, "EPSG:32630");
  g_assert_true (found->has_geotransform);
  for (int i = 0; i < 6; i++)
    g_assert_cmpfloat (found->geotransform[i], ==, p.geotransform[i]);
  g_assert_null (found->split);
  g_assert_cmpstr (found->odd_reason, ==, "cloudy");
  g_assert_cmpint (found->state, ==, LODE_REVIEW_UNLABELLED);
  g_clear_pointer (&found, lode_patch_free);

  found = lode_store_get_patch (s, d, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (found->tile_id, ==, "0003");
  g_clear_pointer (&found, lode_patch_free);

  g_assert_null (lode_store_find_patch (s, "0001", 2019, &error));
  g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_null (lode_store_get_patch (s, 9999, &error));
  g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* The same tile in the other year, either way round; none for a lone tile. */
  g_assert_cmpint (lode_store_find_pair (s, a, &error), ==, b);
  g_assert_cmpint (lode_store_find_pair (s, b, &error), ==, a);
  g_assert_cmpint (lode_store_find_pair (s, c, &error), ==, 0);
  g_assert_no_error (error);
  g_assert_cmpint (lode_store_find_pair (s, 9999, &error), ==, 0);
  g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NOT_FOUND);
}

static void
assert_bytes_equal (GBytes *a, GBytes *b)
{
  g_assert_nonnull (a);
  g_assert_nonnull (b);
  g_assert_cmpmem (g_bytes_get_data (a, NULL), g_bytes_get_size (a),
                   g_bytes_get_data (b, NULL), g_bytes_get_size (b));
}

static void
test_revisions (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) s = open_store (f->path, TRUE);
  g_autoptr(GBytes) m0 = make_bytes (1, 3000), m1 = make_bytes (2, 2500), m2 = make_bytes (3, 10);
  g_autoptr(GBytes) empty = g_bytes_new (NULL, 0);
  g_autoptr(GBytes) got = NULL;
  g_autoptr(GPtrArray) list = NULL;
  gint64 p, q, r0, r1, r2, r3, mv, rid = 0;
  char *errmsg = NULL;
  LodeRevisionInfo *info;

  p = add_patch (s, "0001", 2016);
  q = add_patch (s, "0002", 2016);

  /* No mask yet: NULL and no error; an unknown patch is an error. */
  g_assert_null (lode_store_get_mask (s, p, 0, &rid, &error));
  g_assert_no_error (error);
  g_assert_cmpint (rid, ==, 0);
  g_assert_null (lode_store_get_original_mask (s, p, &error));
  g_assert_no_error (error);
  g_assert_null (lode_store_get_mask (s, 9999, 0, NULL, &error));
  g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_cmpint (lode_store_add_revision (s, 9999, m0, LODE_REVISION_MANUAL, 0, NULL, NULL, &error),
                   ==, 0);
  g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  mv = lode_store_add_model_version (s, LODE_MODEL_UNET, "unet-1", "models/unet-1.safetensors",
                                     NULL, 0, &error);
  g_assert_no_error (error);
  r0 = lode_store_add_revision (s, p, m0, LODE_REVISION_ORIGINAL, 0, "import", "from data set", &error);
  g_assert_no_error (error);
  r1 = lode_store_add_revision (s, p, m1, LODE_REVISION_MODEL, mv, "unet-1", NULL, &error);
  g_assert_no_error (error);
  r2 = lode_store_add_revision (s, p, m2, LODE_REVISION_SAM2, 0, "ana", NULL, &error);
  g_assert_no_error (error);
  r3 = lode_store_add_revision (s, q, empty, LODE_REVISION_MANUAL, 0, "ana", NULL, &error);
  g_assert_no_error (error);
  g_clear_pointer (&s, lode_store_close);

  s = open_store (f->path, FALSE);
  got = lode_store_get_mask (s, p, 0, &rid, &error);
  g_assert_no_error (error);
  assert_bytes_equal (got, m2);
  g_assert_cmpint (rid, ==, r2);
  g_clear_pointer (&got, g_bytes_unref);
  got = lode_store_get_mask (s, p, r1, &rid, &error);
  assert_bytes_equal (got, m1);
  g_assert_cmpint (rid, ==, r1);
  g_clear_pointer (&got, g_bytes_unref);
  got = lode_store_get_original_mask (s, p, &error);
  assert_bytes_equal (got, m0);
  g_clear_pointer (&got, g_bytes_unref);
  got = lode_store_get_mask (s, q, 0, &rid, &error);
  g_assert_no_error (error);
  assert_bytes_equal (got, empty);
  g_assert_cmpint (rid, ==, r3);
  g_clear_pointer (&got, g_bytes_unref);

  /* A revision of another patch is not found through this one. */
  g_assert_null (lode_store_get_mask (s, q, r1, NULL, &error));
  g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  list = lode_store_list_revisions (s, p, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 3);
  info = list->pdata[0];
  g_assert_cmpint (info->id, ==, r0);
  g_assert_cmpint (info->source, ==, LODE_REVISION_ORIGINAL);
  g_assert_cmpint (info->parent_id, ==, 0);
  g_assert_cmpstr (info->author, ==, "import");
  g_assert_cmpstr (info->note, ==, "from data set");
  g_assert_cmpuint (info->mask_bytes, ==, 3000);
  info = list->pdata[1];
  g_assert_cmpint (info->source, ==, LODE_REVISION_MODEL);
  g_assert_cmpint (info->model_version_id, ==, mv);
  g_assert_cmpint (info->parent_id, ==, r0);
  info = list->pdata[2];
  g_assert_cmpint (info->source, ==, LODE_REVISION_SAM2);
  g_assert_cmpint (info->parent_id, ==, r1);
  g_assert_cmpint (info->created_us, >=, ((LodeRevisionInfo *) list->pdata[1])->created_us);

  /* Revisions are never changed nor deleted, even by raw SQL. */
  g_assert_cmpint (sqlite3_exec (lode_store_get_db (s), "UPDATE revisions SET mask = x'00'",
                                 NULL, NULL, &errmsg), !=, SQLITE_OK);
  g_assert_nonnull (strstr (errmsg, "never"));
  sqlite3_free (errmsg);
  g_assert_cmpint (sqlite3_exec (lode_store_get_db (s), "DELETE FROM revisions",
                                 NULL, NULL, NULL), !=, SQLITE_OK);
  g_clear_pointer (&s, lode_store_close);
  s = open_store (f->path, FALSE);
  got = lode_store_get_mask (s, p, r0, NULL, &error);
  assert_bytes_equal (got, m0);
  g_assert_cmpint (pragma_int (s, "SELECT count(*) FROM revisions"), ==, 4);
}

/* The caller's side of undo/redo: masks before/after and deltas in memory. */
static void
test_edits_history (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) s = open_store (f->path, TRUE);
  GBytes *mask[4], *delta[4];
  g_autoptr(GBytes) got = NULL;
  g_autoptr(GPtrArray) applied = NULL, undone = NULL, revs = NULL;
  gint64 p, edit[4], eid = 0;

  for (int i = 0; i < 4; i++)
    {
      mask[i] = make_bytes (100 + i, 4096);
      delta[i] = make_bytes (200 + i, 64 + i);
    }
  p = add_patch (s, "0001", 2016);
  g_assert_cmpint (lode_store_add_revision (s, p, mask[0], LODE_REVISION_ORIGINAL, 0, NULL, NULL,
                                            &error), >, 0);

  /* Nothing to undo or redo yet. */
  g_assert_null (lode_store_undo (s, p, mask[0], "ana", &eid, &error));
  g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  for (int i = 1; i <= 3; i++)
    {
      edit[i] = lode_store_commit_edit (s, p, delta[i], mask[i], LODE_REVISION_MANUAL, "ana", &error);
      g_assert_no_error (error);
      g_assert_cmpint (edit[i], >, 0);
    }
  /* Undo edits 3 and 2: the caller computed the masks before them. */
  got = lode_store_undo (s, p, mask[2], "ana", &eid, &error);
  g_assert_no_error (error);
  assert_bytes_equal (got, delta[3]);
  g_assert_cmpint (eid, ==, edit[3]);
  g_clear_pointer (&got, g_bytes_unref);
  got = lode_store_undo (s, p, mask[1], "ana", &eid, &error);
  assert_bytes_equal (got, delta[2]);
  g_assert_cmpint (eid, ==, edit[2]);
  g_clear_pointer (&got, g_bytes_unref);
  g_clear_pointer (&s, lode_store_close);

  /* After a restart the history is as it was left. */
  s = open_store (f->path, FALSE);
  got = lode_store_get_mask (s, p, 0, NULL, &error);
  assert_bytes_equal (got, mask[1]);
  g_clear_pointer (&got, g_bytes_unref);
  g_assert_true (lode_store_load_edits (s, p, &applied, &undone, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (applied->len, ==, 1);
  g_assert_cmpuint (undone->len, ==, 2);
  g_assert_cmpint (((LodeEdit *) applied->pdata[0])->id, ==, edit[1]);
  assert_bytes_equal (((LodeEdit *) applied->pdata[0])->delta, delta[1]);
  g_assert_false (((LodeEdit *) applied->pdata[0])->undone);
  /* Redo order: the last undone first. */
  g_assert_cmpint (((LodeEdit *) undone->pdata[0])->id, ==, edit[2]);
  g_assert_cmpint (((LodeEdit *) undone->pdata[1])->id, ==, edit[3]);
  g_assert_true (((LodeEdit *) undone->pdata[0])->undone);
  g_clear_pointer (&applied, g_ptr_array_unref);
  g_clear_pointer (&undone, g_ptr_array_unref);

  /* The edit keeps the revision it produced. */
  {
    g_autoptr(LodeEdit) e = lode_store_get_edit (s, edit[3], &error);
    g_assert_no_error (error);
    got = lode_store_get_mask (s, p, e->revision_id, NULL, &error);
    assert_bytes_equal (got, mask[3]);
    g_clear_pointer (&got, g_bytes_unref);
  }

  got = lode_store_redo (s, p, mask[2], "ana", &eid, &error);
  g_assert_no_error (error);
  assert_bytes_equal (got, delta[2]);
  g_assert_cmpint (eid, ==, edit[2]);
  g_clear_pointer (&got, g_bytes_unref);

  /* A new edit drops the redo branch (edit 3) but no revision. */
  edit[0] = lode_store_commit_edit (s, p, delta[0], mask[0], LODE_REVISION_SAM2, "ana", &error);
  g_assert_no_error (error);
  g_assert_null (lode_store_redo (s, p, mask[3], "ana", NULL, &error));
  g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_clear_pointer (&s, lode_store_close);

  s = open_store (f->path, FALSE);
  g_assert_true (lode_store_load_edits (s, p, &applied, &undone, &error));
  g_assert_cmpuint (applied->len, ==, 3);
  g_assert_cmpuint (undone->len, ==, 0);
  g_assert_cmpint (((LodeEdit *) applied->pdata[1])->id, ==, edit[2]);
  g_assert_cmpint (((LodeEdit *) applied->pdata[2])->id, ==, edit[0]);
  g_assert_cmpint (((LodeEdit *) applied->pdata[2])->seq, >, ((LodeEdit *) applied->pdata[1])->seq);
  g_assert_null (lode_store_get_edit (s, edit[3], &error));
  g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* original + 3 edits + 2 undos + 1 redo + 1 edit */
  revs = lode_store_list_revisions (s, p, &error);
  g_assert_cmpuint (revs->len, ==, 8);
  g_assert_cmpstr (((LodeRevisionInfo *) revs->pdata[4])->note, ==, "undo");
  g_assert_cmpstr (((LodeRevisionInfo *) revs->pdata[6])->note, ==, "redo");
  g_assert_cmpint (((LodeRevisionInfo *) revs->pdata[7])->source, ==, LODE_REVISION_SAM2);

  for (int i = 0; i < 4; i++)
    {
      g_bytes_unref (mask[i]);
      g_bytes_unref (delta[i]);
    }
}

static void
test_reviews (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) s = open_store (f->path, TRUE);
  g_autoptr(GPtrArray) log = NULL;
  g_autoptr(LodePatch) patch = NULL;
  LodePatch imported = {
    .tile_id = "0009", .year = 2022, .image_path = "x.tif", .state = LODE_REVIEW_ACCEPTED,
  };
  guint counts[LODE_REVIEW_N_STATES];
  LodeReviewState st;
  gint64 p, q;

  for (int i = 0; i < LODE_REVIEW_N_STATES; i++)
    {
      g_assert_true (lode_review_state_from_id (lode_review_state_id (i), &st));
      g_assert_cmpint (st, ==, i);
      g_assert_nonnull (lode_review_state_label (i));
    }
  g_assert_false (lode_review_state_from_id ("done", &st));

  p = add_patch (s, "0001", 2016);
  q = lode_store_add_patch (s, &imported, &error);
  g_assert_no_error (error);
  add_patch (s, "0002", 2016);
  g_assert_true (lode_store_set_review (s, p, LODE_REVIEW_IN_PROGRESS, "ana", NULL, &error));
  g_assert_true (lode_store_set_review (s, p, LODE_REVIEW_TO_REVIEW, "ana", "pit edges unsure", &error));
  g_assert_true (lode_store_set_review (s, p, LODE_REVIEW_REJECTED, "kofi", "missed a pond", &error));
  g_assert_no_error (error);
  g_assert_false (lode_store_set_review (s, 9999, LODE_REVIEW_ACCEPTED, "kofi", NULL, &error));
  g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_clear_pointer (&s, lode_store_close);

  s = open_store (f->path, FALSE);
  patch = lode_store_get_patch (s, p, &error);
  g_assert_cmpint (patch->state, ==, LODE_REVIEW_REJECTED);
  g_clear_pointer (&patch, lode_patch_free);
  patch = lode_store_get_patch (s, q, &error);
  g_assert_cmpint (patch->state, ==, LODE_REVIEW_ACCEPTED);

  log = lode_store_list_reviews (s, p, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (log->len, ==, 3);
  g_assert_cmpint (((LodeReview *) log->pdata[0])->state, ==, LODE_REVIEW_IN_PROGRESS);
  g_assert_cmpstr (((LodeReview *) log->pdata[1])->comment, ==, "pit edges unsure");
  g_assert_cmpstr (((LodeReview *) log->pdata[2])->reviewer, ==, "kofi");
  g_assert_cmpint (((LodeReview *) log->pdata[2])->state, ==, LODE_REVIEW_REJECTED);
  g_clear_pointer (&log, g_ptr_array_unref);
  log = lode_store_list_reviews (s, q, &error);
  g_assert_cmpuint (log->len, ==, 1);

  g_assert_true (lode_store_count_states (s, counts, &error));
  g_assert_cmpuint (counts[LODE_REVIEW_UNLABELLED], ==, 1);
  g_assert_cmpuint (counts[LODE_REVIEW_REJECTED], ==, 1);
  g_assert_cmpuint (counts[LODE_REVIEW_ACCEPTED], ==, 1);
  g_assert_cmpuint (counts[LODE_REVIEW_IN_PROGRESS], ==, 0);

  /* The log is append-only. */
  g_assert_cmpint (sqlite3_exec (lode_store_get_db (s), "DELETE FROM reviews", NULL, NULL, NULL),
                   !=, SQLITE_OK);
  g_assert_cmpint (pragma_int (s, "SELECT count(*) FROM reviews"), ==, 4);
}

static void
test_class_table (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) s = open_store (f->path, TRUE);
  const char *json = "{\"classes\":[{\"id\":0,\"name\":\"Not mining\"},{\"id\":1,\"name\":\"Mining\"}]}";
  g_autofree char *got = NULL;

  g_assert_null (lode_store_get_class_table_json (s));
  g_assert_true (lode_store_set_class_table_json (s, json, &error));
  g_assert_no_error (error);
  g_assert_false (lode_store_set_class_table_json (s, "{\"classes\": [", &error));
  g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_INVALID);
  assert_error_names_file (error, f->path);
  g_clear_pointer (&s, lode_store_close);

  s = open_store (f->path, FALSE);
  got = lode_store_get_class_table_json (s);
  g_assert_cmpstr (got, ==, json);
}

static void
test_model_versions (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) s = open_store (f->path, TRUE);
  g_autoptr(GPtrArray) list = NULL;
  g_autoptr(LodeModelVersion) v = NULL;
  LodeModelKind kind;
  gint64 base, tuned, dec;

  g_assert_true (lode_model_kind_from_id ("prithvi", &kind));
  g_assert_cmpint (kind, ==, LODE_MODEL_PRITHVI);
  g_assert_false (lode_model_kind_from_id ("resnet", &kind));

  base = lode_store_add_model_version (s, LODE_MODEL_PRITHVI, "prithvi-100m",
                                       "/models/prithvi.pt", NULL, 0, &error);
  g_assert_no_error (error);
  tuned = lode_store_add_model_version (s, LODE_MODEL_PRITHVI, "prithvi-ft-1", "models/ft1.safetensors",
                                        "{\"miou\": 0.71, \"epochs\": 12}", base, &error);
  g_assert_no_error (error);
  dec = lode_store_add_model_version (s, LODE_MODEL_SAM2, "sam2-decoder-ft", "models/sam2.safetensors",
                                      NULL, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lode_store_add_model_version (s, LODE_MODEL_UNET, "bad", NULL, "{miou:}", 0, &error),
                   ==, 0);
  g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_INVALID);
  g_clear_error (&error);
  /* A parent that does not exist is refused. */
  g_assert_cmpint (lode_store_add_model_version (s, LODE_MODEL_UNET, "orphan", NULL, NULL, 777, &error),
                   ==, 0);
  g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_CONSTRAINT);
  g_clear_error (&error);
  g_clear_pointer (&s, lode_store_close);

  s = open_store (f->path, FALSE);
  list = lode_store_list_model_versions (s, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 3);
  g_assert_cmpint (((LodeModelVersion *) list->pdata[2])->id, ==, dec);
  g_assert_cmpint (((LodeModelVersion *) list->pdata[2])->kind, ==, LODE_MODEL_SAM2);
  v = lode_store_get_model_version (s, tuned, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (v->name, ==, "prithvi-ft-1");
  g_assert_cmpint (v->parent_id, ==, base);
  g_assert_cmpstr (v->metrics_json, ==, "{\"miou\": 0.71, \"epochs\": 12}");
  g_assert_cmpstr (v->path, ==, "models/ft1.safetensors");
  g_assert_cmpint (v->created_us, >, 0);
  g_assert_null (lode_store_get_model_version (s, 777, &error));
  g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NOT_FOUND);
}

static void
test_cache (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) s = open_store (f->path, TRUE);
  g_autofree char *ka = lode_store_cache_key (1, "rgb-natural", "sam2-hiera-s", 1024);
  g_autofree char *kb = lode_store_cache_key (2, "rgb-natural", "sam2-hiera-s", 1024);
  g_autofree char *kc = lode_store_cache_key (1, "swir", "sam2-hiera-s", 1024);
  g_autofree char *got = NULL, *expect_a = NULL;
  g_autoptr(GPtrArray) evicted = NULL;

  g_assert_cmpstr (ka, !=, kb);
  g_assert_cmpstr (ka, !=, kc);
  g_assert_true (lode_store_cache_put (s, ka, "cache/a.bin", 100, &error));
  g_assert_true (lode_store_cache_put (s, kb, "cache/b.bin", 200, &error));
  g_assert_true (lode_store_cache_put (s, kc, "/var/cache/c.bin", 300, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (lode_store_cache_total_bytes (s), ==, 600);

  /* Using a makes b the least recently used. */
  got = lode_store_cache_lookup (s, ka);
  expect_a = g_build_filename (lode_store_get_folder (s), "cache", "a.bin", NULL);
  g_assert_cmpstr (got, ==, expect_a);
  g_clear_pointer (&got, g_free);
  g_assert_null (lode_store_cache_lookup (s, "patch=9;composite=x;model=y;size=1"));
  g_clear_pointer (&s, lode_store_close);

  s = open_store (f->path, FALSE);
  evicted = lode_store_cache_evict (s, 600, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (evicted->len, ==, 0);
  g_clear_pointer (&evicted, g_ptr_array_unref);

  evicted = lode_store_cache_evict (s, 350, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (evicted->len, ==, 2);
  g_assert_true (g_str_has_suffix (evicted->pdata[0], "cache/b.bin"));
  g_assert_cmpstr (evicted->pdata[1], ==, "/var/cache/c.bin");
  g_assert_cmpuint (lode_store_cache_total_bytes (s), ==, 100);
  g_assert_null (lode_store_cache_lookup (s, kb));
  got = lode_store_cache_lookup (s, ka);
  g_assert_cmpstr (got, ==, expect_a);
  g_clear_pointer (&got, g_free);

  /* Putting an existing key replaces it. */
  g_assert_true (lode_store_cache_put (s, ka, "cache/a2.bin", 50, &error));
  g_assert_cmpuint (lode_store_cache_total_bytes (s), ==, 50);
  g_clear_pointer (&evicted, g_ptr_array_unref);
  evicted = lode_store_cache_evict (s, 0, &error);
  g_assert_cmpuint (evicted->len, ==, 1);
  g_assert_true (g_str_has_suffix (evicted->pdata[0], "cache/a2.bin"));
}

static void
test_bulk (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) s = open_store (f->path, TRUE);
  g_autoptr(GPtrArray) list = NULL;
  g_autoptr(GBytes) mask = make_bytes (7, 500);
  LodePatch dup = { .tile_id = "0003", .year = 2016, .image_path = "x.tif" };

  g_assert_true (lode_store_begin (s, &error));
  for (int i = 0; i < 20; i++)
    {
      g_autofree char *tile = g_strdup_printf ("%04d", i);
      add_patch (s, tile, 2016);
    }
  lode_store_rollback (s);
  list = lode_store_list_patches (s, &error);
  g_assert_cmpuint (list->len, ==, 0);
  g_clear_pointer (&list, g_ptr_array_unref);

  /* A call that fails inside the bulk undoes only its own part. */
  g_assert_true (lode_store_begin (s, &error));
  for (int i = 0; i < 20; i++)
    {
      g_autofree char *tile = g_strdup_printf ("%04d", i);
      gint64 id = add_patch (s, tile, 2016);
      g_assert_cmpint (lode_store_add_revision (s, id, mask, LODE_REVISION_ORIGINAL, 0, NULL, NULL,
                                                &error), >, 0);
    }
  g_assert_cmpint (lode_store_add_patch (s, &dup, &error), ==, 0);
  g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_CONSTRAINT);
  g_clear_error (&error);
  g_assert_true (lode_store_commit (s, &error));
  g_assert_no_error (error);
  g_clear_pointer (&s, lode_store_close);

  s = open_store (f->path, FALSE);
  list = lode_store_list_patches (s, &error);
  g_assert_cmpuint (list->len, ==, 20);
  g_assert_cmpint (pragma_int (s, "SELECT count(*) FROM revisions"), ==, 20);
}

/* Data written with the tables of version 1, read through today's API. */
static void
test_migrations (Fixture *f, gconstpointer data)
{
  int latest = lode_store_format_version ();

  g_assert_cmpint (latest, >=, 2);
  for (int v = 1; v < latest; v++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(LodeStore) s = NULL;
      g_autoptr(GBytes) mask = make_bytes (v, 777);
      g_autoptr(GBytes) delta = make_bytes (v + 50, 33);
      g_autoptr(GBytes) got = NULL;
      g_autoptr(LodePatch) patch = NULL;
      g_autoptr(GPtrArray) applied = NULL;
      g_autofree char *path = g_strdup_printf ("%s/v%d.lode", f->dir, v);
      g_autofree char *name = NULL;
      g_autofree char *expect_name = g_strdup_printf ("v%d", v);
      gint64 p, e;

      s = lode_store_open_at_version (path, v, &error);
      g_assert_no_error (error);
      g_assert_cmpint (pragma_int (s, "PRAGMA user_version"), ==, v);
      /* The cache index arrives in version 2. */
      if (v < 2)
        g_assert_cmpint (pragma_int (s, "SELECT count(*) FROM sqlite_schema WHERE name = 'embedding_cache'"),
                         ==, 0);
      p = add_patch (s, "0042", 2022);
      g_assert_cmpint (lode_store_add_revision (s, p, mask, LODE_REVISION_ORIGINAL, 0, NULL, NULL, &error),
                       >, 0);
      e = lode_store_commit_edit (s, p, delta, mask, LODE_REVISION_MANUAL, "ana", &error);
      g_assert_no_error (error);
      g_assert_true (lode_store_set_review (s, p, LODE_REVIEW_TO_REVIEW, "ana", NULL, &error));
      g_clear_pointer (&s, lode_store_close);

      s = open_store (path, FALSE);
      g_assert_cmpint (pragma_int (s, "PRAGMA user_version"), ==, latest);
      g_assert_true (lode_store_integrity_check (s, &error));
      name = lode_store_get_meta (s, "name");
      g_assert_cmpstr (name, ==, expect_name);
      patch = lode_store_find_patch (s, "0042", 2022, &error);
      g_assert_no_error (error);
      g_assert_cmpint (patch->state, ==, LODE_REVIEW_TO_REVIEW);
      got = lode_store_get_original_mask (s, p, &error);
      assert_bytes_equal (got, mask);
      g_assert_true (lode_store_load_edits (s, p, &applied, NULL, &error));
      g_assert_cmpuint (applied->len, ==, 1);
      g_assert_cmpint (((LodeEdit *) applied->pdata[0])->id, ==, e);
      assert_bytes_equal (((LodeEdit *) applied->pdata[0])->delta, delta);
      /* What the newer versions brought works. */
      g_assert_true (lode_store_cache_put (s, "k", "cache/k.bin", 10, &error));
      g_assert_no_error (error);
    }
}

static char *
read_file (const char *path, gsize *len)
{
  char *contents = NULL;

  g_assert_true (g_file_get_contents (path, &contents, len, NULL));
  return contents;
}

static void
test_newer_version (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) s = open_store (f->path, TRUE);
  g_autofree char *before = NULL, *after = NULL, *newer = NULL, *known = NULL;
  g_autofree char *sql = NULL;
  sqlite3 *db = NULL;
  gsize n_before, n_after;
  GStatBuf st_before, st_after;

  add_patch (s, "0001", 2016);
  g_clear_pointer (&s, lode_store_close);
  g_assert_cmpint (sqlite3_open (f->path, &db), ==, SQLITE_OK);
  sql = g_strdup_printf ("PRAGMA user_version = %d", lode_store_format_version () + 3);
  g_assert_cmpint (sqlite3_exec (db, sql, NULL, NULL, NULL), ==, SQLITE_OK);
  sqlite3_close (db);

  before = read_file (f->path, &n_before);
  g_assert_cmpint (g_stat (f->path, &st_before), ==, 0);
  g_usleep (20000);

  for (int create = 0; create < 2; create++)
    {
      s = lode_store_open (f->path, create, &error);
      g_assert_null (s);
      g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NEWER_VERSION);
      assert_error_names_file (error, f->path);
      newer = g_strdup_printf ("%d", lode_store_format_version () + 3);
      known = g_strdup_printf ("up to %d", lode_store_format_version ());
      g_assert_nonnull (strstr (error->message, newer));
      g_assert_nonnull (strstr (error->message, known));
      g_clear_pointer (&newer, g_free);
      g_clear_pointer (&known, g_free);
      g_clear_error (&error);
    }

  after = read_file (f->path, &n_after);
  g_assert_cmpint (g_stat (f->path, &st_after), ==, 0);
  g_assert_cmpmem (before, n_before, after, n_after);
  g_assert_cmpint (st_before.st_mtime, ==, st_after.st_mtime);
  g_assert_cmpint (st_before.st_mtim.tv_nsec, ==, st_after.st_mtim.tv_nsec);
}

static void
assert_not_project (const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) s = NULL;
  g_autofree char *before = NULL, *after = NULL;
  gsize n_before, n_after;

  before = read_file (path, &n_before);
  for (int create = 0; create < 2; create++)
    {
      s = lode_store_open (path, create, &error);
      g_assert_null (s);
      g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NOT_PROJECT);
      assert_error_names_file (error, path);
      g_clear_error (&error);
    }
  after = read_file (path, &n_after);
  g_assert_cmpmem (before, n_before, after, n_after);
}

static void
test_not_a_project (Fixture *f, gconstpointer data)
{
  g_autofree char *text = g_build_filename (f->dir, "notes.lode", NULL);
  g_autofree char *other = g_build_filename (f->dir, "other.lode", NULL);
  g_autofree char *empty = g_build_filename (f->dir, "empty.lode", NULL);
  g_autofree char *big = g_build_filename (f->dir, "big.lode", NULL);
  g_autofree char *junk = g_strnfill (8192, 'x');
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) s = NULL;
  sqlite3 *db = NULL;

  g_assert_true (g_file_set_contents (text, "tile,year\n0001,2016\n", -1, NULL));
  assert_not_project (text);
  g_assert_true (g_file_set_contents (big, junk, -1, NULL));
  assert_not_project (big);

  /* An SQLite database from another program. */
  g_assert_cmpint (sqlite3_open (other, &db), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (db, "CREATE TABLE notes (t TEXT); INSERT INTO notes VALUES ('hi');",
                                 NULL, NULL, NULL), ==, SQLITE_OK);
  sqlite3_close (db);
  assert_not_project (other);

  /* An empty file is not a project, but create makes one in it. */
  g_assert_true (g_file_set_contents (empty, "", 0, NULL));
  s = lode_store_open (empty, FALSE, &error);
  g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NOT_PROJECT);
  assert_error_names_file (error, empty);
  g_clear_error (&error);
  s = lode_store_open (empty, TRUE, &error);
  g_assert_no_error (error);
  g_assert_nonnull (s);

  /* A folder where the file should be. */
  g_clear_pointer (&s, lode_store_close);
  s = lode_store_open (f->dir, TRUE, &error);
  g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_OPEN);
}

/* Runs check as an unprivileged user: root writes through permissions. */
static void
run_unprivileged (void (*check) (const char *), const char *path)
{
  pid_t pid;
  int status;

  if (geteuid () != 0)
    {
      check (path);
      return;
    }
  pid = fork ();
  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    {
      if (setgid (65534) != 0 || setuid (65534) != 0)
        _exit (77);
      check (path);
      _exit (0);
    }
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  if (WIFEXITED (status) && WEXITSTATUS (status) == 77)
    {
      g_test_skip ("cannot drop root privileges");
      return;
    }
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 0);
}

static void
check_read_only (const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) s = NULL;
  gboolean exists = g_file_test (path, G_FILE_TEST_EXISTS);

  /* A missing file is only opened to be created. */
  for (int create = exists ? 0 : 1; create < 2; create++)
    {
      s = lode_store_open (path, create, &error);
      g_assert_null (s);
      g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_READ_ONLY);
      assert_error_names_file (error, path);
      g_clear_error (&error);
    }
}

static void
test_read_only (Fixture *f, gconstpointer data)
{
  g_autoptr(LodeStore) s = open_store (f->path, TRUE);
  g_autofree char *sub = g_build_filename (f->dir, "locked", NULL);
  g_autofree char *inside = g_build_filename (sub, "project.lode", NULL);
  g_autofree char *fresh = g_build_filename (sub, "new.lode", NULL);

  add_patch (s, "0001", 2016);
  g_clear_pointer (&s, lode_store_close);
  g_assert_cmpint (g_chmod (f->dir, 0755), ==, 0);

  /* A read-only file. */
  g_assert_cmpint (g_chmod (f->path, 0444), ==, 0);
  run_unprivileged (check_read_only, f->path);

  /* A writable file in a read-only folder (WAL writes beside the file),
   * and a new project there. */
  g_assert_cmpint (g_mkdir (sub, 0755), ==, 0);
  s = open_store (inside, TRUE);
  add_patch (s, "0001", 2016);
  g_clear_pointer (&s, lode_store_close);
  g_assert_cmpint (g_chmod (inside, 0666), ==, 0);
  g_assert_cmpint (g_chmod (sub, 0555), ==, 0);
  run_unprivileged (check_read_only, inside);
  run_unprivileged (check_read_only, fresh);
  g_assert_false (g_file_test (fresh, G_FILE_TEST_EXISTS));

  /* Nothing was lost. */
  g_chmod (sub, 0755);
  g_chmod (f->path, 0644);
  s = open_store (inside, FALSE);
  g_assert_cmpint (pragma_int (s, "SELECT count(*) FROM patches"), ==, 1);
}

static void
test_disk_full (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) s = open_store (f->path, TRUE);
  g_autoptr(GBytes) m0 = make_bytes (11, 2000);
  g_autoptr(GBytes) big = make_bytes (12, 512 * 1024);
  g_autoptr(GBytes) delta = make_bytes (13, 100);
  g_autoptr(GBytes) got = NULL;
  g_autoptr(GPtrArray) applied = NULL, revs = NULL;
  gint64 p, e1, pages;
  int cap;

  p = add_patch (s, "0001", 2016);
  g_assert_cmpint (lode_store_add_revision (s, p, m0, LODE_REVISION_ORIGINAL, 0, NULL, NULL, &error),
                   >, 0);
  e1 = lode_store_commit_edit (s, p, delta, m0, LODE_REVISION_MANUAL, "ana", &error);
  g_assert_no_error (error);

  pages = pragma_int (s, "PRAGMA page_count");
  cap = lode_store_set_max_page_count (s, (int) pages + 2);
  g_assert_cmpint (cap, ==, pages + 2);

  g_assert_cmpint (lode_store_commit_edit (s, p, delta, big, LODE_REVISION_MANUAL, "ana", &error),
                   ==, 0);
  g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_FULL);
  assert_error_names_file (error, f->path);
  g_clear_error (&error);
  g_assert_cmpint (lode_store_add_revision (s, p, big, LODE_REVISION_SAM2, 0, NULL, NULL, &error), ==, 0);
  g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_FULL);
  g_clear_error (&error);

  /* Inside a bulk transaction too; the commit then reports the loss. */
  g_assert_true (lode_store_begin (s, &error));
  add_patch (s, "0002", 2016);
  g_assert_cmpint (lode_store_add_revision (s, p, big, LODE_REVISION_SAM2, 0, NULL, NULL, &error), ==, 0);
  g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_FULL);
  g_clear_error (&error);
  if (!lode_store_commit (s, &error))
    g_clear_error (&error);

  /* Space comes back: the store works again. */
  lode_store_set_max_page_count (s, 1 << 30);
  g_assert_true (lode_store_set_review (s, p, LODE_REVIEW_IN_PROGRESS, "ana", NULL, &error));
  g_assert_no_error (error);
  g_clear_pointer (&s, lode_store_close);

  s = open_store (f->path, FALSE);
  g_assert_true (lode_store_integrity_check (s, &error));
  got = lode_store_get_mask (s, p, 0, NULL, &error);
  assert_bytes_equal (got, m0);
  g_assert_true (lode_store_load_edits (s, p, &applied, NULL, &error));
  g_assert_cmpuint (applied->len, ==, 1);
  g_assert_cmpint (((LodeEdit *) applied->pdata[0])->id, ==, e1);
  revs = lode_store_list_revisions (s, p, &error);
  g_assert_cmpuint (revs->len, ==, 2);
}

static int
cmp_double (gconstpointer a, gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return (x > y) - (x < y);
}

/* Not a timed test: it prints the time an edit takes to be on disk. */
static void
test_commit_speed (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) s = open_store (f->path, TRUE);
  g_autoptr(GBytes) mask = make_bytes (21, 16 * 1024);
  g_autoptr(GBytes) delta = make_bytes (22, 2 * 1024);
  g_autoptr(GArray) ms = g_array_new (FALSE, FALSE, sizeof (double));
  const int n = 100;
  double sum = 0;
  gint64 p = add_patch (s, "0001", 2016);

  for (int i = 0; i < n; i++)
    {
      gint64 t0 = g_get_monotonic_time ();
      double dt;

      g_assert_cmpint (lode_store_commit_edit (s, p, delta, mask, LODE_REVISION_MANUAL, "ana", &error),
                       >, 0);
      dt = (g_get_monotonic_time () - t0) / 1000.0;
      g_array_append_val (ms, dt);
      sum += dt;
    }
  g_array_sort (ms, cmp_double);
  g_test_message ("commit_edit (16 KiB mask + 2 KiB delta, WAL, synchronous=FULL) in %s: "
                  "mean %.2f ms, median %.2f ms, p95 %.2f ms, max %.2f ms over %d edits",
                  f->dir, sum / n, g_array_index (ms, double, n / 2),
                  g_array_index (ms, double, n * 95 / 100), g_array_index (ms, double, n - 1), n);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(name, func) \
  g_test_add ("/store/" name, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("create-reopen", test_create_reopen);
  ADD ("paths", test_paths);
  ADD ("patches", test_patches);
  ADD ("revisions", test_revisions);
  ADD ("edits-history", test_edits_history);
  ADD ("reviews", test_reviews);
  ADD ("class-table", test_class_table);
  ADD ("model-versions", test_model_versions);
  ADD ("cache", test_cache);
  ADD ("bulk", test_bulk);
  ADD ("migrations", test_migrations);
  ADD ("newer-version", test_newer_version);
  ADD ("not-a-project", test_not_a_project);
  ADD ("read-only", test_read_only);
  ADD ("disk-full", test_disk_full);
  ADD ("commit-speed", test_commit_speed);
#undef ADD

  return g_test_run ();
}
