/* lode-store-migrations.c: the project schema, one step per format version.
 *
 * Each step runs in its own transaction; the runner (lode-store.c) ends it
 * with PRAGMA user_version = N, so a file is always at one whole version.
 * Steps are never edited once released: a change is a new step. */
#define G_LOG_DOMAIN "lode-annotate"

#include "config.h"

#include "lode-store-private.h"

/* LODE_STORE_APPLICATION_ID in decimal, as the PRAGMA reads it. */
#define APPLICATION_ID_SQL "1280263237"
G_STATIC_ASSERT (LODE_STORE_APPLICATION_ID == 1280263237);

/* Version 1: project metadata, patches, revisions (append-only), edits
 * (undo history), the review log and model versions. */
static int
migrate_1 (sqlite3 *db, char **errmsg)
{
  static const char sql[] =
    "PRAGMA application_id = " APPLICATION_ID_SQL ";"

    "CREATE TABLE project ("
    "  key   TEXT PRIMARY KEY NOT NULL,"
    "  value TEXT"
    ") WITHOUT ROWID;"

    "CREATE TABLE patches ("
    "  id           INTEGER PRIMARY KEY,"
    "  tile_id      TEXT NOT NULL,"
    "  year         INTEGER NOT NULL,"
    "  image_path   TEXT NOT NULL,"
    "  mask_path    TEXT,"
    "  width        INTEGER NOT NULL CHECK (width >= 0),"
    "  height       INTEGER NOT NULL CHECK (height >= 0),"
    "  n_bands      INTEGER NOT NULL CHECK (n_bands >= 0),"
    "  crs_wkt      TEXT,"
    "  gt0 REAL, gt1 REAL, gt2 REAL, gt3 REAL, gt4 REAL, gt5 REAL,"
    "  split        TEXT CHECK (split IN ('train', 'test')),"
    "  odd_reason   TEXT,"
    "  review_state TEXT NOT NULL DEFAULT 'unlabelled'"
    "    CHECK (review_state IN ('unlabelled', 'in_progress', 'to_review', 'accepted', 'rejected')),"
    "  UNIQUE (tile_id, year)"
    ");"

    "CREATE TABLE model_versions ("
    "  id        INTEGER PRIMARY KEY,"
    "  kind      TEXT NOT NULL CHECK (kind IN ('unet', 'prithvi', 'sam2')),"
    "  name      TEXT NOT NULL,"
    "  created   INTEGER NOT NULL,"
    "  path      TEXT,"
    "  metrics   TEXT CHECK (metrics IS NULL OR json_valid (metrics)),"
    "  parent_id INTEGER REFERENCES model_versions (id)"
    ");"

    "CREATE TABLE revisions ("
    "  id               INTEGER PRIMARY KEY,"
    "  patch_id         INTEGER NOT NULL REFERENCES patches (id),"
    "  created          INTEGER NOT NULL,"
    "  source           TEXT NOT NULL CHECK (source IN ('original', 'manual', 'sam2', 'model')),"
    "  model_version_id INTEGER REFERENCES model_versions (id),"
    "  author           TEXT,"
    "  mask             BLOB NOT NULL,"
    "  mask_bytes       INTEGER NOT NULL,"
    "  parent_id        INTEGER REFERENCES revisions (id),"
    "  note             TEXT"
    ");"
    "CREATE INDEX revisions_by_patch ON revisions (patch_id, id);"
    "CREATE TRIGGER revisions_no_update BEFORE UPDATE ON revisions"
    "  BEGIN SELECT RAISE (ABORT, 'revisions are never changed'); END;"
    "CREATE TRIGGER revisions_no_delete BEFORE DELETE ON revisions"
    "  BEGIN SELECT RAISE (ABORT, 'revisions are never deleted'); END;"

    /* AUTOINCREMENT: ids of discarded redo edits are never reused. */
    "CREATE TABLE edits ("
    "  id          INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  patch_id    INTEGER NOT NULL REFERENCES patches (id),"
    "  seq         INTEGER NOT NULL,"
    "  created     INTEGER NOT NULL,"
    "  delta       BLOB NOT NULL,"
    "  delta_bytes INTEGER NOT NULL,"
    "  revision_id INTEGER NOT NULL REFERENCES revisions (id),"
    "  undone      INTEGER NOT NULL DEFAULT 0 CHECK (undone IN (0, 1)),"
    "  UNIQUE (patch_id, seq)"
    ");"

    "CREATE TABLE reviews ("
    "  id       INTEGER PRIMARY KEY,"
    "  patch_id INTEGER NOT NULL REFERENCES patches (id),"
    "  state    TEXT NOT NULL"
    "    CHECK (state IN ('unlabelled', 'in_progress', 'to_review', 'accepted', 'rejected')),"
    "  reviewer TEXT,"
    "  comment  TEXT,"
    "  created  INTEGER NOT NULL"
    ");"
    "CREATE INDEX reviews_by_patch ON reviews (patch_id, id);"
    "CREATE TRIGGER reviews_no_update BEFORE UPDATE ON reviews"
    "  BEGIN SELECT RAISE (ABORT, 'the review log is never changed'); END;"
    "CREATE TRIGGER reviews_no_delete BEFORE DELETE ON reviews"
    "  BEGIN SELECT RAISE (ABORT, 'the review log is never changed'); END;";

  return sqlite3_exec (db, sql, NULL, NULL, errmsg);
}

/* Version 2: the index of cached image embeddings (encoder outputs on disk),
 * with least-recently-used eviction by size. */
static int
migrate_2 (sqlite3 *db, char **errmsg)
{
  static const char sql[] =
    "CREATE TABLE embedding_cache ("
    "  key       TEXT PRIMARY KEY NOT NULL,"
    "  path      TEXT NOT NULL,"
    "  bytes     INTEGER NOT NULL CHECK (bytes >= 0),"
    "  last_used INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX embedding_cache_by_use ON embedding_cache (last_used);";

  return sqlite3_exec (db, sql, NULL, NULL, errmsg);
}

const LodeStoreMigration lode_store_migrations[] = {
  migrate_1,
  migrate_2,
};

const int lode_store_n_migrations = G_N_ELEMENTS (lode_store_migrations);
