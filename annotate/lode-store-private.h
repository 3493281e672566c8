/* lode-store-private.h: the store's insides, for lode-store*.c and tests. */
#pragma once

#include <sqlite3.h>

#include "lode-store.h"

G_BEGIN_DECLS

/* One step of the schema: runs inside its own transaction, after which the
 * runner sets PRAGMA user_version to the step's number (index + 1). Returns
 * an SQLite result code; on failure *errmsg may hold sqlite3_malloc'd text. */
typedef int (*LodeStoreMigration) (sqlite3 *db,
                                   char   **errmsg);

extern const LodeStoreMigration lode_store_migrations[];
extern const int                lode_store_n_migrations;

/* Opens (creating when missing) with the schema migrated up to version
 * only, to make files of older formats in tests. */
LodeStore *lode_store_open_at_version      (const char *path,
                                            int         version,
                                            GError    **error);
/* The connection, for tests that need raw SQL. */
sqlite3   *lode_store_get_db               (LodeStore  *s);
/* Caps the file at n pages (PRAGMA max_page_count) to make a full disk;
 * returns the cap in force (never below the current size). */
int        lode_store_set_max_page_count   (LodeStore  *s,
                                            int         n);

G_END_DECLS
