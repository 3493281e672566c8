#define G_LOG_DOMAIN "lode-annotate"

#include "config.h"

#include <inttypes.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <glib/gi18n.h>
#include <glib/gstdio.h>

#include "lode-store-private.h"
#include "lode-version.h"

G_DEFINE_QUARK (lode-store-error-quark, lode_store_error)

#define BUSY_TIMEOUT_MS 5000

struct _LodeStore
{
  sqlite3    *db;
  char       *path;
  char       *folder;
  GHashTable *stmts;      /* SQL text (static) -> sqlite3_stmt*, prepared once */
  gboolean    bulk;       /* inside lode_store_begin() */
  gboolean    bulk_lost;  /* SQLite rolled the bulk transaction back itself */
};

static const char * const review_ids[] = {
  "unlabelled", "in_progress", "to_review", "accepted", "rejected",
};
G_STATIC_ASSERT (G_N_ELEMENTS (review_ids) == LODE_REVIEW_N_STATES);

static const char * const review_labels[] = {
  N_("Unlabelled"), N_("In progress"), N_("To review"), N_("Accepted"), N_("Rejected"),
};

static const char * const source_ids[] = { "original", "manual", "sam2", "model" };
static const char * const model_kind_ids[] = { "unet", "prithvi", "sam2" };

static gboolean
id_lookup (const char * const *ids, guint n, const char *id, int *out)
{
  if (id == NULL)
    return FALSE;
  for (guint i = 0; i < n; i++)
    if (strcmp (ids[i], id) == 0)
      {
        *out = (int) i;
        return TRUE;
      }
  return FALSE;
}

const char *
lode_review_state_id (LodeReviewState state)
{
  g_return_val_if_fail ((guint) state < LODE_REVIEW_N_STATES, NULL);
  return review_ids[state];
}

gboolean
lode_review_state_from_id (const char *id, LodeReviewState *out_state)
{
  int i;

  if (!id_lookup (review_ids, G_N_ELEMENTS (review_ids), id, &i))
    return FALSE;
  if (out_state != NULL)
    *out_state = (LodeReviewState) i;
  return TRUE;
}

const char *
lode_review_state_label (LodeReviewState state)
{
  g_return_val_if_fail ((guint) state < LODE_REVIEW_N_STATES, NULL);
  return _(review_labels[state]);
}

const char *
lode_revision_source_id (LodeRevisionSource source)
{
  g_return_val_if_fail ((guint) source < G_N_ELEMENTS (source_ids), NULL);
  return source_ids[source];
}

gboolean
lode_revision_source_from_id (const char *id, LodeRevisionSource *out_source)
{
  int i;

  if (!id_lookup (source_ids, G_N_ELEMENTS (source_ids), id, &i))
    return FALSE;
  if (out_source != NULL)
    *out_source = (LodeRevisionSource) i;
  return TRUE;
}

const char *
lode_model_kind_id (LodeModelKind kind)
{
  g_return_val_if_fail ((guint) kind < G_N_ELEMENTS (model_kind_ids), NULL);
  return model_kind_ids[kind];
}

gboolean
lode_model_kind_from_id (const char *id, LodeModelKind *out_kind)
{
  int i;

  if (!id_lookup (model_kind_ids, G_N_ELEMENTS (model_kind_ids), id, &i))
    return FALSE;
  if (out_kind != NULL)
    *out_kind = (LodeModelKind) i;
  return TRUE;
}

int
lode_store_format_version (void)
{
  return lode_store_n_migrations;
}

/* Errors */

static void
set_sqlite_error (const char *path, int rc, const char *detail, const char *what, GError **error)
{
  int code;

  switch (rc & 0xff)
    {
    case SQLITE_FULL:
      g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_FULL,
                   _("%s: the disk holding “%s” is full"), what, path);
      return;
    case SQLITE_CORRUPT:
      g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_CORRUPT,
                   _("%s: “%s” is damaged (%s)"), what, path, detail);
      return;
    case SQLITE_NOTADB:
      g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NOT_PROJECT,
                   _("%s: “%s” is not a Lode project (it is not an SQLite database)"), what, path);
      return;
    case SQLITE_READONLY:
      g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_READ_ONLY,
                   _("%s: “%s” cannot be written (%s)"), what, path, detail);
      return;
    case SQLITE_CONSTRAINT:
      code = LODE_STORE_ERROR_CONSTRAINT;
      break;
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      code = LODE_STORE_ERROR_OPEN;
      break;
    default:
      code = LODE_STORE_ERROR_IO;
      break;
    }
  g_set_error (error, LODE_STORE_ERROR, code, _("%s in “%s”: %s"), what, path, detail);
}

static void
store_error (LodeStore *s, int rc, const char *what, GError **error)
{
  const char *detail = sqlite3_errmsg (s->db);

  /* sqlite3_errmsg describes the last call, which may have been a reset. */
  if (detail == NULL || sqlite3_errcode (s->db) == SQLITE_OK)
    detail = sqlite3_errstr (rc);
  set_sqlite_error (s->path, rc, detail, what, error);
}

static void
not_found_patch (LodeStore *s, gint64 patch_id, GError **error)
{
  g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NOT_FOUND,
               _("“%s” has no patch with id %" PRId64), s->path, patch_id);
}

/* Statements */

static sqlite3_stmt *
stmt (LodeStore *s, const char *sql, GError **error)
{
  sqlite3_stmt *st = g_hash_table_lookup (s->stmts, sql);
  int rc;

  if (st != NULL)
    return st;
  rc = sqlite3_prepare_v3 (s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
  if (rc != SQLITE_OK)
    {
      store_error (s, rc, _("Could not read the project"), error);
      sqlite3_finalize (st);
      return NULL;
    }
  g_hash_table_insert (s->stmts, (gpointer) sql, st);
  return st;
}

static void
done (sqlite3_stmt *st)
{
  if (st == NULL)
    return;
  sqlite3_reset (st);
  sqlite3_clear_bindings (st);
}

static int
step_done (sqlite3_stmt *st)
{
  int rc = sqlite3_step (st);

  return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Runs a statement that returns no rows. */
static gboolean
exec_simple (LodeStore *s, const char *sql, const char *what, GError **error)
{
  sqlite3_stmt *st = stmt (s, sql, error);
  int rc;

  if (st == NULL)
    return FALSE;
  rc = sqlite3_step (st);
  sqlite3_reset (st);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW)
    {
      store_error (s, rc, what, error);
      return FALSE;
    }
  return TRUE;
}

static void
bind_text (sqlite3_stmt *st, int i, const char *text)
{
  sqlite3_bind_text (st, i, text, -1, SQLITE_STATIC);
}

static void
bind_id (sqlite3_stmt *st, int i, gint64 id)
{
  if (id > 0)
    sqlite3_bind_int64 (st, i, id);
  else
    sqlite3_bind_null (st, i);
}

static void
bind_bytes (sqlite3_stmt *st, int i, GBytes *bytes)
{
  gsize n;
  const void *data = g_bytes_get_data (bytes, &n);

  if (n == 0)
    sqlite3_bind_zeroblob (st, i, 0);
  else
    sqlite3_bind_blob64 (st, i, data, n, SQLITE_STATIC);
}

static char *
col_text (sqlite3_stmt *st, int i)
{
  return g_strdup ((const char *) sqlite3_column_text (st, i));
}

static GBytes *
col_bytes (sqlite3_stmt *st, int i)
{
  const void *data = sqlite3_column_blob (st, i);
  int n = sqlite3_column_bytes (st, i);

  return g_bytes_new (data, (gsize) n);
}

typedef gpointer (*RowFunc) (sqlite3_stmt *st);

/* The first row of the bound statement st, made by func, in *out (NULL
 * when there is none). FALSE with error set when reading fails. */
static gboolean
fetch_one (LodeStore *s, sqlite3_stmt *st, RowFunc func, const char *what, gpointer *out,
           GError **error)
{
  int rc = sqlite3_step (st);

  *out = rc == SQLITE_ROW ? func (st) : NULL;
  done (st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    {
      store_error (s, rc, what, error);
      return FALSE;
    }
  return TRUE;
}

/* All rows of the bound statement st, made by func; NULL on failure. */
static GPtrArray *
fetch_all (LodeStore *s, sqlite3_stmt *st, RowFunc func, GDestroyNotify free_func,
           const char *what, GError **error)
{
  g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func (free_func);
  int rc;

  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    g_ptr_array_add (rows, func (st));
  done (st);
  if (rc != SQLITE_DONE)
    {
      store_error (s, rc, what, error);
      return NULL;
    }
  return g_steal_pointer (&rows);
}

/* Transactions: each changing call is one transaction, or a savepoint
 * inside the caller's bulk transaction. */

static gboolean
tx_begin (LodeStore *s, const char *what, GError **error)
{
  if (s->bulk && s->bulk_lost)
    {
      g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_IO,
                   _("%s in “%s”: the transaction was already rolled back after an earlier error"),
                   what, s->path);
      return FALSE;
    }
  return exec_simple (s, s->bulk ? "SAVEPOINT lode_call" : "BEGIN IMMEDIATE", what, error);
}

static void
tx_abort (LodeStore *s)
{
  if (sqlite3_get_autocommit (s->db))
    {
      /* SQLite already rolled back (disk full, I/O error). */
      if (s->bulk)
        s->bulk_lost = TRUE;
      return;
    }
  if (s->bulk)
    {
      exec_simple (s, "ROLLBACK TO lode_call", "", NULL);
      exec_simple (s, "RELEASE lode_call", "", NULL);
    }
  else
    exec_simple (s, "ROLLBACK", "", NULL);
}

static gboolean
tx_commit (LodeStore *s, const char *what, GError **error)
{
  if (exec_simple (s, s->bulk ? "RELEASE lode_call" : "COMMIT", what, error))
    return TRUE;
  tx_abort (s);
  return FALSE;
}

/* Fails the transaction begun by tx_begin with the connection's error. */
static gboolean
tx_fail (LodeStore *s, int rc, const char *what, GError **error)
{
  if (rc != SQLITE_OK)
    store_error (s, rc, what, error);
  tx_abort (s);
  return FALSE;
}

gboolean
lode_store_begin (LodeStore *s, GError **error)
{
  g_return_val_if_fail (s != NULL, FALSE);
  g_return_val_if_fail (!s->bulk, FALSE);

  if (!exec_simple (s, "BEGIN IMMEDIATE", _("Could not start saving"), error))
    return FALSE;
  s->bulk = TRUE;
  s->bulk_lost = FALSE;
  return TRUE;
}

gboolean
lode_store_commit (LodeStore *s, GError **error)
{
  const char *what = _("Could not save");
  gboolean lost;

  g_return_val_if_fail (s != NULL, FALSE);
  g_return_val_if_fail (s->bulk, FALSE);

  lost = s->bulk_lost;
  s->bulk = FALSE;
  s->bulk_lost = FALSE;
  if (lost)
    {
      g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_IO,
                   _("%s in “%s”: the transaction was rolled back after an earlier error"),
                   what, s->path);
      return FALSE;
    }
  if (exec_simple (s, "COMMIT", what, error))
    return TRUE;
  tx_abort (s);
  return FALSE;
}

void
lode_store_rollback (LodeStore *s)
{
  g_return_if_fail (s != NULL);

  s->bulk = FALSE;
  s->bulk_lost = FALSE;
  if (!sqlite3_get_autocommit (s->db))
    exec_simple (s, "ROLLBACK", "", NULL);
}

/* Opening */

static int
query_int (sqlite3 *db, const char *sql, gint64 *out)
{
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2 (db, sql, -1, &st, NULL);

  if (rc == SQLITE_OK)
    {
      rc = sqlite3_step (st);
      if (rc == SQLITE_ROW)
        {
          *out = sqlite3_column_int64 (st, 0);
          rc = SQLITE_OK;
        }
      else if (rc == SQLITE_DONE)
        rc = SQLITE_ERROR;
    }
  sqlite3_finalize (st);
  return rc;
}

static gboolean
init_meta (LodeStore *s, GError **error)
{
  g_autofree char *base = g_path_get_basename (s->path);
  g_autoptr(GDateTime) now = g_date_time_new_now_utc ();
  g_autofree char *created = g_date_time_format_iso8601 (now);

  if (g_str_has_suffix (base, LODE_STORE_EXTENSION))
    base[strlen (base) - strlen (LODE_STORE_EXTENSION)] = '\0';
  return lode_store_set_meta (s, "name", base, error)
      && lode_store_set_meta (s, "created", created, error)
      && lode_store_set_meta (s, "lode_version", lode_version_string (), error);
}

static gboolean
migrate (LodeStore *s, int from, int to, GError **error)
{
  for (int v = from + 1; v <= to; v++)
    {
      char *errmsg = NULL;
      g_autofree char *set_version = g_strdup_printf ("PRAGMA user_version = %d", v);
      g_autofree char *what = g_strdup_printf (_("Could not update the project to format %d"), v);
      int rc;

      rc = sqlite3_exec (s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
      if (rc != SQLITE_OK)
        {
          store_error (s, rc, what, error);
          return FALSE;
        }
      rc = lode_store_migrations[v - 1] (s->db, &errmsg);
      if (rc == SQLITE_OK)
        rc = sqlite3_exec (s->db, set_version, NULL, NULL, NULL);
      if (rc == SQLITE_OK && v == 1)
        {
          /* init_meta uses the one-call transactions: nest them. */
          s->bulk = TRUE;
          if (!init_meta (s, error))
            rc = SQLITE_ERROR;
          s->bulk = FALSE;
        }
      if (rc == SQLITE_OK)
        rc = sqlite3_exec (s->db, "COMMIT", NULL, NULL, NULL);
      if (rc != SQLITE_OK)
        {
          if (error == NULL || *error == NULL)
            set_sqlite_error (s->path, rc, errmsg != NULL ? errmsg : sqlite3_errmsg (s->db),
                              what, error);
          sqlite3_free (errmsg);
          if (!sqlite3_get_autocommit (s->db))
            sqlite3_exec (s->db, "ROLLBACK", NULL, NULL, NULL);
          return FALSE;
        }
    }
  return TRUE;
}

static gboolean
check_writable (const char *path, const char *folder, gboolean exists, GError **error)
{
  if (exists && g_access (path, W_OK) != 0)
    {
      g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_READ_ONLY,
                   _("Could not open “%s”: the file is read-only (%s)"),
                   path, g_strerror (errno));
      return FALSE;
    }
  if (!g_file_test (folder, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_OPEN,
                   _("Could not create “%s”: the folder does not exist"), path);
      return FALSE;
    }
  /* WAL keeps two files beside the project: its folder must be writable. */
  if (g_access (folder, W_OK) != 0)
    {
      g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_READ_ONLY,
                   _("Could not open “%s”: its folder cannot be written (%s)"),
                   path, g_strerror (errno));
      return FALSE;
    }
  return TRUE;
}

/* Reads the header fields and decides whether this is a Lode project (or an
 * empty file to make one of), without writing anything. */
static gboolean
probe (LodeStore *s, gboolean exists, gboolean create, int target, gint64 *out_version,
       GError **error)
{
  const char *what = _("Could not open the project");
  gint64 app_id = 0, version = 0, n_objects = 0;
  int rc;

  rc = query_int (s->db, "PRAGMA application_id", &app_id);
  if (rc == SQLITE_OK)
    rc = query_int (s->db, "PRAGMA user_version", &version);
  if (rc == SQLITE_OK)
    rc = query_int (s->db, "SELECT count(*) FROM sqlite_schema", &n_objects);
  if (rc != SQLITE_OK)
    {
      store_error (s, rc, what, error);
      return FALSE;
    }

  if (app_id == 0 && version == 0 && n_objects == 0)
    {
      if (exists && !create)
        {
          g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NOT_PROJECT,
                       _("“%s” is not a Lode project: it is empty"), s->path);
          return FALSE;
        }
    }
  else if (app_id != LODE_STORE_APPLICATION_ID)
    {
      g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NOT_PROJECT,
                   _("“%s” is not a Lode project: it is an SQLite database made by another program"),
                   s->path);
      return FALSE;
    }
  else if (version > lode_store_n_migrations)
    {
      g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NEWER_VERSION,
                   _("“%s” was saved by a newer Lode (project format %d); this Lode knows formats up to %d. "
                     "The file was left untouched."),
                   s->path, (int) version, lode_store_n_migrations);
      return FALSE;
    }
  else if (version > target)
    {
      g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NEWER_VERSION,
                   _("“%s” is at project format %d, past the %d asked for"),
                   s->path, (int) version, target);
      return FALSE;
    }
  *out_version = version;
  return TRUE;
}

static LodeStore *
store_open (const char *path, gboolean create, int target, GError **error)
{
  g_autoptr(LodeStore) s = NULL;
  gboolean exists;
  gint64 version = 0;
  g_autofree char *mode = NULL;
  sqlite3_stmt *st = NULL;
  int flags, rc;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  s = g_new0 (LodeStore, 1);
  s->path = g_canonicalize_filename (path, NULL);
  s->folder = g_path_get_dirname (s->path);
  s->stmts = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                    (GDestroyNotify) sqlite3_finalize);

  exists = g_file_test (s->path, G_FILE_TEST_EXISTS);
  if (!exists && !create)
    {
      g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NOT_FOUND,
                   _("Could not open “%s”: there is no such file"), s->path);
      return NULL;
    }
  if (exists && !g_file_test (s->path, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_OPEN,
                   _("Could not open “%s”: it is not a file"), s->path);
      return NULL;
    }
  if (!check_writable (s->path, s->folder, exists, error))
    return NULL;

  flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
  if (create)
    flags |= SQLITE_OPEN_CREATE;
  rc = sqlite3_open_v2 (s->path, &s->db, flags, NULL);
  if (rc != SQLITE_OK)
    {
      set_sqlite_error (s->path, rc, s->db != NULL ? sqlite3_errmsg (s->db) : sqlite3_errstr (rc),
                        _("Could not open the project"), error);
      return NULL;
    }
  if (sqlite3_db_readonly (s->db, "main") == 1)
    {
      g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_READ_ONLY,
                   _("Could not open “%s”: the file is read-only"), s->path);
      return NULL;
    }
  sqlite3_busy_timeout (s->db, BUSY_TIMEOUT_MS);

  if (!probe (s, exists, create, target, &version, error))
    return NULL;

  /* WAL with synchronous=FULL: each commit is on disk when it returns,
   * also across power loss. */
  rc = sqlite3_prepare_v2 (s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
  if (rc == SQLITE_OK && (rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      mode = col_text (st, 0);
      rc = SQLITE_OK;
    }
  sqlite3_finalize (st);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec (s->db, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
                       NULL, NULL, NULL);
  if (rc != SQLITE_OK)
    {
      store_error (s, rc, _("Could not open the project"), error);
      return NULL;
    }
  if (g_strcmp0 (mode, "wal") != 0)
    g_debug ("%s: journal mode %s (no WAL on this file system)", s->path, mode);

  if (!migrate (s, (int) version, target, error))
    return NULL;

  return g_steal_pointer (&s);
}

LodeStore *
lode_store_open (const char *path, gboolean create, GError **error)
{
  return store_open (path, create, lode_store_n_migrations, error);
}

LodeStore *
lode_store_open_at_version (const char *path, int version, GError **error)
{
  g_return_val_if_fail (version >= 1 && version <= lode_store_n_migrations, NULL);
  return store_open (path, TRUE, version, error);
}

void
lode_store_close (LodeStore *s)
{
  if (s == NULL)
    return;
  g_clear_pointer (&s->stmts, g_hash_table_unref);
  if (s->db != NULL)
    {
      int rc = sqlite3_close (s->db);
      if (rc != SQLITE_OK)
        g_warning ("closing %s: %s", s->path, sqlite3_errstr (rc));
    }
  g_free (s->path);
  g_free (s->folder);
  g_free (s);
}

sqlite3 *
lode_store_get_db (LodeStore *s)
{
  return s->db;
}

int
lode_store_set_max_page_count (LodeStore *s, int n)
{
  g_autofree char *sql = g_strdup_printf ("PRAGMA max_page_count = %d", n);
  gint64 cap = 0;

  query_int (s->db, sql, &cap);
  return (int) cap;
}

const char *
lode_store_get_path (LodeStore *s)
{
  g_return_val_if_fail (s != NULL, NULL);
  return s->path;
}

const char *
lode_store_get_folder (LodeStore *s)
{
  g_return_val_if_fail (s != NULL, NULL);
  return s->folder;
}

char *
lode_store_resolve_path (LodeStore *s, const char *stored)
{
  g_return_val_if_fail (s != NULL, NULL);
  if (stored == NULL)
    return NULL;
  return g_canonicalize_filename (stored, s->folder);
}

char *
lode_store_relative_path (LodeStore *s, const char *path)
{
  g_autofree char *abs = NULL;
  gsize n;

  g_return_val_if_fail (s != NULL, NULL);
  if (path == NULL)
    return NULL;
  /* A relative path is taken from the current folder, as a user typed it. */
  abs = g_canonicalize_filename (path, NULL);
  n = strlen (s->folder);
  if (strcmp (s->folder, "/") == 0)
    return g_strdup (abs + 1);
  if (strncmp (abs, s->folder, n) == 0 && abs[n] == G_DIR_SEPARATOR)
    return g_strdup (abs + n + 1);
  return g_steal_pointer (&abs);
}

gboolean
lode_store_integrity_check (LodeStore *s, GError **error)
{
  sqlite3_stmt *st = stmt (s, "PRAGMA integrity_check", error);
  g_autoptr(GString) report = g_string_new (NULL);
  int rc;

  if (st == NULL)
    return FALSE;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      if (report->len > 0)
        g_string_append (report, "; ");
      g_string_append (report, (const char *) sqlite3_column_text (st, 0));
    }
  done (st);
  if (rc != SQLITE_DONE)
    {
      store_error (s, rc, _("Could not check the project"), error);
      return FALSE;
    }
  if (strcmp (report->str, "ok") != 0)
    {
      g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_CORRUPT,
                   _("“%s” is damaged: %s"), s->path, report->str);
      return FALSE;
    }
  return TRUE;
}

/* Metadata */

gboolean
lode_store_set_meta (LodeStore *s, const char *key, const char *value, GError **error)
{
  const char *what = _("Could not save the project settings");
  sqlite3_stmt *st;
  int rc;

  g_return_val_if_fail (s != NULL, FALSE);
  g_return_val_if_fail (key != NULL, FALSE);

  if (!tx_begin (s, what, error))
    return FALSE;
  if (value != NULL)
    st = stmt (s, "INSERT INTO project (key, value) VALUES (?1, ?2) "
                  "ON CONFLICT (key) DO UPDATE SET value = excluded.value", error);
  else
    st = stmt (s, "DELETE FROM project WHERE key = ?1", error);
  if (st == NULL)
    return tx_fail (s, SQLITE_OK, what, error);
  bind_text (st, 1, key);
  if (value != NULL)
    bind_text (st, 2, value);
  rc = step_done (st);
  done (st);
  if (rc != SQLITE_OK)
    return tx_fail (s, rc, what, error);
  return tx_commit (s, what, error);
}

char *
lode_store_get_meta (LodeStore *s, const char *key)
{
  sqlite3_stmt *st;
  char *value = NULL;

  g_return_val_if_fail (s != NULL, NULL);
  g_return_val_if_fail (key != NULL, NULL);

  st = stmt (s, "SELECT value FROM project WHERE key = ?1", NULL);
  if (st == NULL)
    return NULL;
  bind_text (st, 1, key);
  if (sqlite3_step (st) == SQLITE_ROW)
    value = col_text (st, 0);
  done (st);
  return value;
}

static gboolean
json_valid (LodeStore *s, const char *json)
{
  sqlite3_stmt *st = stmt (s, "SELECT json_valid (?1)", NULL);
  gboolean valid = FALSE;

  if (st == NULL)
    return FALSE;
  bind_text (st, 1, json);
  if (sqlite3_step (st) == SQLITE_ROW)
    valid = sqlite3_column_int (st, 0) == 1;
  done (st);
  return valid;
}

gboolean
lode_store_set_class_table_json (LodeStore *s, const char *json, GError **error)
{
  g_return_val_if_fail (s != NULL, FALSE);
  g_return_val_if_fail (json != NULL, FALSE);

  if (!json_valid (s, json))
    {
      g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_INVALID,
                   _("Could not save the class table in “%s”: it is not valid JSON"), s->path);
      return FALSE;
    }
  return lode_store_set_meta (s, "class_table", json, error);
}

char *
lode_store_get_class_table_json (LodeStore *s)
{
  return lode_store_get_meta (s, "class_table");
}

/* Patches */

LodePatch *
lode_patch_new (void)
{
  return g_new0 (LodePatch, 1);
}

LodePatch *
lode_patch_copy (const LodePatch *p)
{
  LodePatch *c;

  if (p == NULL)
    return NULL;
  c = g_memdup2 (p, sizeof *p);
  c->tile_id = g_strdup (p->tile_id);
  c->image_path = g_strdup (p->image_path);
  c->mask_path = g_strdup (p->mask_path);
  c->crs_wkt = g_strdup (p->crs_wkt);
  c->split = g_strdup (p->split);
  c->odd_reason = g_strdup (p->odd_reason);
  return c;
}

void
lode_patch_free (LodePatch *p)
{
  if (p == NULL)
    return;
  g_free (p->tile_id);
  g_free (p->image_path);
  g_free (p->mask_path);
  g_free (p->crs_wkt);
  g_free (p->split);
  g_free (p->odd_reason);
  g_free (p);
}

#define PATCH_COLUMNS \
  "SELECT id, tile_id, year, image_path, mask_path, width, height, n_bands, crs_wkt, " \
  "gt0, gt1, gt2, gt3, gt4, gt5, split, odd_reason, review_state FROM patches "

static gpointer
patch_from_row (sqlite3_stmt *st)
{
  LodePatch *p = lode_patch_new ();

  p->id = sqlite3_column_int64 (st, 0);
  p->tile_id = col_text (st, 1);
  p->year = sqlite3_column_int (st, 2);
  p->image_path = col_text (st, 3);
  p->mask_path = col_text (st, 4);
  p->width = sqlite3_column_int (st, 5);
  p->height = sqlite3_column_int (st, 6);
  p->n_bands = sqlite3_column_int (st, 7);
  p->crs_wkt = col_text (st, 8);
  p->has_geotransform = sqlite3_column_type (st, 9) != SQLITE_NULL;
  for (int i = 0; i < 6; i++)
    p->geotransform[i] = sqlite3_column_double (st, 9 + i);
  p->split = col_text (st, 15);
  p->odd_reason = col_text (st, 16);
  if (!lode_review_state_from_id ((const char *) sqlite3_column_text (st, 17), &p->state))
    p->state = LODE_REVIEW_UNLABELLED;
  return p;
}

static gboolean
patch_exists (LodeStore *s, gint64 patch_id, GError **error)
{
  sqlite3_stmt *st = stmt (s, "SELECT 1 FROM patches WHERE id = ?1", error);
  int rc;

  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, patch_id);
  rc = sqlite3_step (st);
  done (st);
  if (rc == SQLITE_ROW)
    return TRUE;
  if (rc == SQLITE_DONE)
    not_found_patch (s, patch_id, error);
  else
    store_error (s, rc, _("Could not read the project"), error);
  return FALSE;
}

/* The rows of a per-patch query (?1 = patch_id); NOT_FOUND for an unknown patch. */
static GPtrArray *
fetch_for_patch (LodeStore *s, gint64 patch_id, const char *sql, RowFunc func,
                 GDestroyNotify free_func, const char *what, GError **error)
{
  sqlite3_stmt *st;

  if (!patch_exists (s, patch_id, error))
    return NULL;
  st = stmt (s, sql, error);
  if (st == NULL)
    return NULL;
  sqlite3_bind_int64 (st, 1, patch_id);
  return fetch_all (s, st, func, free_func, what, error);
}

/* Appends to the review log and caches the state in the patch, inside the
 * caller's transaction. */
static gboolean
insert_review (LodeStore *s, gint64 patch_id, LodeReviewState state, const char *reviewer,
               const char *comment, const char *what, GError **error)
{
  sqlite3_stmt *st;
  int rc;

  st = stmt (s, "INSERT INTO reviews (patch_id, state, reviewer, comment, created) "
                "VALUES (?1, ?2, ?3, ?4, ?5)", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, patch_id);
  bind_text (st, 2, review_ids[state]);
  bind_text (st, 3, reviewer);
  bind_text (st, 4, comment);
  sqlite3_bind_int64 (st, 5, g_get_real_time ());
  rc = step_done (st);
  done (st);
  if (rc == SQLITE_OK)
    {
      st = stmt (s, "UPDATE patches SET review_state = ?2 WHERE id = ?1", error);
      if (st == NULL)
        return FALSE;
      sqlite3_bind_int64 (st, 1, patch_id);
      bind_text (st, 2, review_ids[state]);
      rc = step_done (st);
      done (st);
    }
  if (rc != SQLITE_OK)
    {
      store_error (s, rc, what, error);
      return FALSE;
    }
  return TRUE;
}

gint64
lode_store_add_patch (LodeStore *s, const LodePatch *p, GError **error)
{
  const char *what = _("Could not add a patch");
  sqlite3_stmt *st;
  gint64 id;
  int rc;

  g_return_val_if_fail (s != NULL, 0);
  g_return_val_if_fail (p != NULL && p->tile_id != NULL && p->image_path != NULL, 0);
  g_return_val_if_fail ((guint) p->state < LODE_REVIEW_N_STATES, 0);

  if (!tx_begin (s, what, error))
    return 0;
  st = stmt (s, "INSERT INTO patches (tile_id, year, image_path, mask_path, width, height, n_bands, "
                "crs_wkt, gt0, gt1, gt2, gt3, gt4, gt5, split, odd_reason) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
             error);
  if (st == NULL)
    return tx_fail (s, SQLITE_OK, what, error);
  bind_text (st, 1, p->tile_id);
  sqlite3_bind_int (st, 2, p->year);
  bind_text (st, 3, p->image_path);
  bind_text (st, 4, p->mask_path);
  sqlite3_bind_int (st, 5, p->width);
  sqlite3_bind_int (st, 6, p->height);
  sqlite3_bind_int (st, 7, p->n_bands);
  bind_text (st, 8, p->crs_wkt);
  for (int i = 0; i < 6; i++)
    if (p->has_geotransform)
      sqlite3_bind_double (st, 9 + i, p->geotransform[i]);
  bind_text (st, 15, p->split);
  bind_text (st, 16, p->odd_reason);
  rc = step_done (st);
  done (st);
  if (rc == SQLITE_CONSTRAINT_UNIQUE)
    {
      g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_CONSTRAINT,
                   _("Could not add tile %s of %d to “%s”: it is already in the project"),
                   p->tile_id, p->year, s->path);
      return tx_fail (s, SQLITE_OK, what, error);
    }
  if (rc != SQLITE_OK)
    return tx_fail (s, rc, what, error);
  id = sqlite3_last_insert_rowid (s->db);

  if (p->state != LODE_REVIEW_UNLABELLED)
    {
      if (!insert_review (s, id, p->state, NULL, NULL, what, error))
        return tx_fail (s, SQLITE_OK, what, error);
    }
  if (!tx_commit (s, what, error))
    return 0;
  return id;
}

GPtrArray *
lode_store_list_patches (LodeStore *s, GError **error)
{
  sqlite3_stmt *st;

  g_return_val_if_fail (s != NULL, NULL);

  st = stmt (s, PATCH_COLUMNS "ORDER BY tile_id, year", error);
  if (st == NULL)
    return NULL;
  return fetch_all (s, st, patch_from_row, (GDestroyNotify) lode_patch_free,
                    _("Could not read the patches"), error);
}

LodePatch *
lode_store_get_patch (LodeStore *s, gint64 id, GError **error)
{
  sqlite3_stmt *st;
  gpointer p;

  g_return_val_if_fail (s != NULL, NULL);

  st = stmt (s, PATCH_COLUMNS "WHERE id = ?1", error);
  if (st == NULL)
    return NULL;
  sqlite3_bind_int64 (st, 1, id);
  if (fetch_one (s, st, patch_from_row, _("Could not read the patches"), &p, error) && p == NULL)
    not_found_patch (s, id, error);
  return p;
}

LodePatch *
lode_store_find_patch (LodeStore *s, const char *tile_id, int year, GError **error)
{
  sqlite3_stmt *st;
  gpointer p;

  g_return_val_if_fail (s != NULL, NULL);
  g_return_val_if_fail (tile_id != NULL, NULL);

  st = stmt (s, PATCH_COLUMNS "WHERE tile_id = ?1 AND year = ?2", error);
  if (st == NULL)
    return NULL;
  bind_text (st, 1, tile_id);
  sqlite3_bind_int (st, 2, year);
  if (fetch_one (s, st, patch_from_row, _("Could not read the patches"), &p, error) && p == NULL)
    g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NOT_FOUND,
                 _("“%s” has no tile %s of %d"), s->path, tile_id, year);
  return p;
}

gint64
lode_store_find_pair (LodeStore *s, gint64 patch_id, GError **error)
{
  sqlite3_stmt *st;
  gint64 pair = 0;
  int rc;

  g_return_val_if_fail (s != NULL, 0);

  if (!patch_exists (s, patch_id, error))
    return 0;
  st = stmt (s, "SELECT b.id FROM patches a JOIN patches b ON b.tile_id = a.tile_id AND b.id != a.id "
                "WHERE a.id = ?1 ORDER BY abs (b.year - a.year) DESC, b.year LIMIT 1", error);
  if (st == NULL)
    return 0;
  sqlite3_bind_int64 (st, 1, patch_id);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    pair = sqlite3_column_int64 (st, 0);
  else if (rc != SQLITE_DONE)
    store_error (s, rc, _("Could not read the patches"), error);
  done (st);
  return pair;
}

static gboolean
update_patch_text (LodeStore *s, const char *sql, gint64 patch_id, const char *value,
                   GError **error)
{
  const char *what = _("Could not change the patch");
  sqlite3_stmt *st;
  int rc;

  if (!tx_begin (s, what, error))
    return FALSE;
  if (!patch_exists (s, patch_id, error))
    return tx_fail (s, SQLITE_OK, what, error);
  st = stmt (s, sql, error);
  if (st == NULL)
    return tx_fail (s, SQLITE_OK, what, error);
  sqlite3_bind_int64 (st, 1, patch_id);
  bind_text (st, 2, value);
  rc = step_done (st);
  done (st);
  if (rc != SQLITE_OK)
    return tx_fail (s, rc, what, error);
  return tx_commit (s, what, error);
}

gboolean
lode_store_set_patch_split (LodeStore *s, gint64 patch_id, const char *split, GError **error)
{
  g_return_val_if_fail (s != NULL, FALSE);

  if (split != NULL && strcmp (split, "train") != 0 && strcmp (split, "test") != 0)
    {
      g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_INVALID,
                   _("Could not set the split in “%s”: “%s” is neither train nor test"),
                   s->path, split);
      return FALSE;
    }
  return update_patch_text (s, "UPDATE patches SET split = ?2 WHERE id = ?1", patch_id, split, error);
}

gboolean
lode_store_set_patch_odd_reason (LodeStore *s, gint64 patch_id, const char *reason, GError **error)
{
  g_return_val_if_fail (s != NULL, FALSE);
  return update_patch_text (s, "UPDATE patches SET odd_reason = ?2 WHERE id = ?1",
                            patch_id, reason, error);
}

/* Revisions */

void
lode_revision_info_free (LodeRevisionInfo *info)
{
  if (info == NULL)
    return;
  g_free (info->author);
  g_free (info->note);
  g_free (info);
}

/* Appends a revision inside the caller's transaction; its parent is the
 * patch's latest revision. Returns its id, or 0 with error set. */
static gint64
insert_revision (LodeStore *s, gint64 patch_id, GBytes *mask, LodeRevisionSource source,
                 gint64 model_version_id, const char *author, const char *note,
                 const char *what, GError **error)
{
  sqlite3_stmt *st;
  int rc;

  st = stmt (s, "INSERT INTO revisions (patch_id, created, source, model_version_id, author, "
                "mask, mask_bytes, parent_id, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                "(SELECT max (id) FROM revisions WHERE patch_id = ?1), ?8)", error);
  if (st == NULL)
    return 0;
  sqlite3_bind_int64 (st, 1, patch_id);
  sqlite3_bind_int64 (st, 2, g_get_real_time ());
  bind_text (st, 3, source_ids[source]);
  bind_id (st, 4, model_version_id);
  bind_text (st, 5, author);
  bind_bytes (st, 6, mask);
  sqlite3_bind_int64 (st, 7, (gint64) g_bytes_get_size (mask));
  bind_text (st, 8, note);
  rc = step_done (st);
  done (st);
  if (rc != SQLITE_OK)
    {
      store_error (s, rc, what, error);
      return 0;
    }
  return sqlite3_last_insert_rowid (s->db);
}

gint64
lode_store_add_revision (LodeStore *s, gint64 patch_id, GBytes *mask, LodeRevisionSource source,
                         gint64 model_version_id, const char *author, const char *note,
                         GError **error)
{
  const char *what = _("Could not save the mask");
  gint64 id;

  g_return_val_if_fail (s != NULL, 0);
  g_return_val_if_fail (mask != NULL, 0);
  g_return_val_if_fail ((guint) source < G_N_ELEMENTS (source_ids), 0);

  if (!tx_begin (s, what, error))
    return 0;
  if (!patch_exists (s, patch_id, error))
    return tx_fail (s, SQLITE_OK, what, error);
  id = insert_revision (s, patch_id, mask, source, model_version_id, author, note, what, error);
  if (id == 0)
    return tx_fail (s, SQLITE_OK, what, error);
  if (!tx_commit (s, what, error))
    return 0;
  return id;
}

/* Reads column 1 of the first row as a blob and column 0 as its id. */
static GBytes *
mask_row (LodeStore *s, sqlite3_stmt *st, gint64 *out_id, int *rc)
{
  GBytes *mask = NULL;

  *rc = sqlite3_step (st);
  if (*rc == SQLITE_ROW)
    {
      if (out_id != NULL)
        *out_id = sqlite3_column_int64 (st, 0);
      mask = col_bytes (st, 1);
      *rc = SQLITE_OK;
    }
  else if (*rc == SQLITE_DONE)
    *rc = SQLITE_OK;
  done (st);
  return mask;
}

GBytes *
lode_store_get_mask (LodeStore *s, gint64 patch_id, gint64 revision_id, gint64 *out_revision_id,
                     GError **error)
{
  sqlite3_stmt *st;
  GBytes *mask;
  int rc;

  g_return_val_if_fail (s != NULL, NULL);

  if (out_revision_id != NULL)
    *out_revision_id = 0;
  if (revision_id > 0)
    st = stmt (s, "SELECT id, mask FROM revisions WHERE id = ?2 AND patch_id = ?1", error);
  else
    st = stmt (s, "SELECT id, mask FROM revisions WHERE patch_id = ?1 ORDER BY id DESC LIMIT 1",
               error);
  if (st == NULL)
    return NULL;
  sqlite3_bind_int64 (st, 1, patch_id);
  if (revision_id > 0)
    sqlite3_bind_int64 (st, 2, revision_id);
  mask = mask_row (s, st, out_revision_id, &rc);
  if (rc != SQLITE_OK)
    {
      store_error (s, rc, _("Could not read the mask"), error);
      return NULL;
    }
  if (mask == NULL && revision_id > 0)
    g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NOT_FOUND,
                 _("“%s” has no revision %" PRId64 " of patch %" PRId64),
                 s->path, revision_id, patch_id);
  else if (mask == NULL)
    patch_exists (s, patch_id, error);
  return mask;
}

gint64
lode_store_latest_revision (LodeStore *s, gint64 patch_id, GError **error)
{
  sqlite3_stmt *st;
  gint64 id = 0;
  int rc;

  g_return_val_if_fail (s != NULL, -1);

  st = stmt (s, "SELECT id FROM revisions WHERE patch_id = ?1 ORDER BY id DESC LIMIT 1", error);
  if (st == NULL)
    return -1;
  sqlite3_bind_int64 (st, 1, patch_id);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    id = sqlite3_column_int64 (st, 0);
  sqlite3_reset (st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    {
      store_error (s, rc, _("Could not read the revisions"), error);
      return -1;
    }
  return id;
}

GBytes *
lode_store_get_original_mask (LodeStore *s, gint64 patch_id, GError **error)
{
  sqlite3_stmt *st;
  GBytes *mask;
  int rc;

  g_return_val_if_fail (s != NULL, NULL);

  st = stmt (s, "SELECT id, mask FROM revisions WHERE patch_id = ?1 AND source = 'original' "
                "ORDER BY id LIMIT 1", error);
  if (st == NULL)
    return NULL;
  sqlite3_bind_int64 (st, 1, patch_id);
  mask = mask_row (s, st, NULL, &rc);
  if (rc != SQLITE_OK)
    store_error (s, rc, _("Could not read the mask"), error);
  else if (mask == NULL)
    patch_exists (s, patch_id, error);
  return mask;
}

static gpointer
revision_from_row (sqlite3_stmt *st)
{
  LodeRevisionInfo *info = g_new0 (LodeRevisionInfo, 1);

  info->id = sqlite3_column_int64 (st, 0);
  info->patch_id = sqlite3_column_int64 (st, 1);
  info->parent_id = sqlite3_column_int64 (st, 2);
  info->model_version_id = sqlite3_column_int64 (st, 3);
  info->created_us = sqlite3_column_int64 (st, 4);
  lode_revision_source_from_id ((const char *) sqlite3_column_text (st, 5), &info->source);
  info->author = col_text (st, 6);
  info->note = col_text (st, 7);
  info->mask_bytes = (gsize) sqlite3_column_int64 (st, 8);
  return info;
}

GPtrArray *
lode_store_list_revisions (LodeStore *s, gint64 patch_id, GError **error)
{
  g_return_val_if_fail (s != NULL, NULL);

  return fetch_for_patch (s, patch_id,
                          "SELECT id, patch_id, parent_id, model_version_id, created, source, "
                          "author, note, mask_bytes FROM revisions WHERE patch_id = ?1 ORDER BY id",
                          revision_from_row, (GDestroyNotify) lode_revision_info_free,
                          _("Could not read the revisions"), error);
}

/* Edits */

void
lode_edit_free (LodeEdit *edit)
{
  if (edit == NULL)
    return;
  g_clear_pointer (&edit->delta, g_bytes_unref);
  g_free (edit);
}

#define EDIT_COLUMNS "SELECT id, patch_id, seq, revision_id, created, undone, delta FROM edits "

static gpointer
edit_from_row (sqlite3_stmt *st)
{
  LodeEdit *e = g_new0 (LodeEdit, 1);

  e->id = sqlite3_column_int64 (st, 0);
  e->patch_id = sqlite3_column_int64 (st, 1);
  e->seq = sqlite3_column_int64 (st, 2);
  e->revision_id = sqlite3_column_int64 (st, 3);
  e->created_us = sqlite3_column_int64 (st, 4);
  e->undone = sqlite3_column_int (st, 5) != 0;
  e->delta = col_bytes (st, 6);
  return e;
}

gint64
lode_store_commit_edit (LodeStore *s, gint64 patch_id, GBytes *delta, GBytes *mask_after,
                        LodeRevisionSource source, const char *author, GError **error)
{
  const char *what = _("Could not save the edit");
  sqlite3_stmt *st;
  gint64 revision_id;
  int rc;

  g_return_val_if_fail (s != NULL, 0);
  g_return_val_if_fail (delta != NULL && mask_after != NULL, 0);
  g_return_val_if_fail ((guint) source < G_N_ELEMENTS (source_ids), 0);

  if (!tx_begin (s, what, error))
    return 0;
  if (!patch_exists (s, patch_id, error))
    return tx_fail (s, SQLITE_OK, what, error);

  /* A new edit ends the redo branch. */
  st = stmt (s, "DELETE FROM edits WHERE patch_id = ?1 AND undone = 1", error);
  if (st == NULL)
    return tx_fail (s, SQLITE_OK, what, error);
  sqlite3_bind_int64 (st, 1, patch_id);
  rc = step_done (st);
  done (st);
  if (rc != SQLITE_OK)
    return tx_fail (s, rc, what, error);

  revision_id = insert_revision (s, patch_id, mask_after, source, 0, author, NULL, what, error);
  if (revision_id == 0)
    return tx_fail (s, SQLITE_OK, what, error);

  st = stmt (s, "INSERT INTO edits (patch_id, seq, created, delta, delta_bytes, revision_id) "
                "VALUES (?1, (SELECT coalesce (max (seq), 0) + 1 FROM edits WHERE patch_id = ?1), "
                "?2, ?3, ?4, ?5)", error);
  if (st == NULL)
    return tx_fail (s, SQLITE_OK, what, error);
  sqlite3_bind_int64 (st, 1, patch_id);
  sqlite3_bind_int64 (st, 2, g_get_real_time ());
  bind_bytes (st, 3, delta);
  sqlite3_bind_int64 (st, 4, (gint64) g_bytes_get_size (delta));
  sqlite3_bind_int64 (st, 5, revision_id);
  rc = step_done (st);
  done (st);
  if (rc != SQLITE_OK)
    return tx_fail (s, rc, what, error);
  if (!tx_commit (s, what, error))
    return 0;
  return sqlite3_last_insert_rowid (s->db);
}

/* One undo (or redo) step in one transaction. */
static GBytes *
history_step (LodeStore *s, gint64 patch_id, GBytes *mask_after, const char *author,
              gboolean undo, gint64 *out_edit_id, GError **error)
{
  const char *what = undo ? _("Could not save the undo") : _("Could not save the redo");
  g_autoptr(LodeEdit) edit = NULL;
  sqlite3_stmt *st;
  gint64 revision_id;
  int rc;

  g_return_val_if_fail (s != NULL, NULL);
  g_return_val_if_fail (mask_after != NULL, NULL);

  if (out_edit_id != NULL)
    *out_edit_id = 0;
  if (!tx_begin (s, what, error))
    return NULL;
  if (!patch_exists (s, patch_id, error))
    {
      tx_fail (s, SQLITE_OK, what, error);
      return NULL;
    }
  if (undo)
    st = stmt (s, EDIT_COLUMNS "WHERE patch_id = ?1 AND undone = 0 ORDER BY seq DESC LIMIT 1", error);
  else
    st = stmt (s, EDIT_COLUMNS "WHERE patch_id = ?1 AND undone = 1 ORDER BY seq LIMIT 1", error);
  if (st == NULL)
    {
      tx_fail (s, SQLITE_OK, what, error);
      return NULL;
    }
  sqlite3_bind_int64 (st, 1, patch_id);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    edit = edit_from_row (st);
  done (st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    {
      tx_fail (s, rc, what, error);
      return NULL;
    }
  if (edit == NULL)
    {
      g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NOT_FOUND,
                   undo ? _("Nothing to undo on patch %" PRId64 " in “%s”")
                        : _("Nothing to redo on patch %" PRId64 " in “%s”"),
                   patch_id, s->path);
      tx_fail (s, SQLITE_OK, what, error);
      return NULL;
    }

  st = stmt (s, "UPDATE edits SET undone = ?2 WHERE id = ?1", error);
  if (st == NULL)
    {
      tx_fail (s, SQLITE_OK, what, error);
      return NULL;
    }
  sqlite3_bind_int64 (st, 1, edit->id);
  sqlite3_bind_int (st, 2, undo ? 1 : 0);
  rc = step_done (st);
  done (st);
  if (rc != SQLITE_OK)
    {
      tx_fail (s, rc, what, error);
      return NULL;
    }

  revision_id = insert_revision (s, patch_id, mask_after, LODE_REVISION_MANUAL, 0, author,
                                 undo ? "undo" : "redo", what, error);
  if (revision_id == 0)
    {
      tx_fail (s, SQLITE_OK, what, error);
      return NULL;
    }
  if (!tx_commit (s, what, error))
    return NULL;
  if (out_edit_id != NULL)
    *out_edit_id = edit->id;
  return g_bytes_ref (edit->delta);
}

GBytes *
lode_store_undo (LodeStore *s, gint64 patch_id, GBytes *mask_after_undo, const char *author,
                 gint64 *out_edit_id, GError **error)
{
  return history_step (s, patch_id, mask_after_undo, author, TRUE, out_edit_id, error);
}

GBytes *
lode_store_redo (LodeStore *s, gint64 patch_id, GBytes *mask_after_redo, const char *author,
                 gint64 *out_edit_id, GError **error)
{
  return history_step (s, patch_id, mask_after_redo, author, FALSE, out_edit_id, error);
}

gboolean
lode_store_load_edits (LodeStore *s, gint64 patch_id, GPtrArray **applied, GPtrArray **undone,
                       GError **error)
{
  g_autoptr(GPtrArray) all = NULL;
  g_autoptr(GPtrArray) a = g_ptr_array_new_with_free_func ((GDestroyNotify) lode_edit_free);
  g_autoptr(GPtrArray) u = g_ptr_array_new_with_free_func ((GDestroyNotify) lode_edit_free);

  g_return_val_if_fail (s != NULL, FALSE);

  all = fetch_for_patch (s, patch_id, EDIT_COLUMNS "WHERE patch_id = ?1 ORDER BY seq",
                         edit_from_row, (GDestroyNotify) lode_edit_free,
                         _("Could not read the edit history"), error);
  if (all == NULL)
    return FALSE;
  /* The edits move to a and u. */
  g_ptr_array_set_free_func (all, NULL);
  for (guint i = 0; i < all->len; i++)
    {
      LodeEdit *e = all->pdata[i];
      g_ptr_array_add (e->undone ? u : a, e);
    }
  if (applied != NULL)
    *applied = g_steal_pointer (&a);
  if (undone != NULL)
    *undone = g_steal_pointer (&u);
  return TRUE;
}

LodeEdit *
lode_store_get_edit (LodeStore *s, gint64 edit_id, GError **error)
{
  sqlite3_stmt *st;
  gpointer e;

  g_return_val_if_fail (s != NULL, NULL);

  st = stmt (s, EDIT_COLUMNS "WHERE id = ?1", error);
  if (st == NULL)
    return NULL;
  sqlite3_bind_int64 (st, 1, edit_id);
  if (fetch_one (s, st, edit_from_row, _("Could not read the edit history"), &e, error) && e == NULL)
    g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NOT_FOUND,
                 _("“%s” has no edit with id %" PRId64), s->path, edit_id);
  return e;
}

/* Reviews */

void
lode_review_free (LodeReview *review)
{
  if (review == NULL)
    return;
  g_free (review->reviewer);
  g_free (review->comment);
  g_free (review);
}

gboolean
lode_store_set_review (LodeStore *s, gint64 patch_id, LodeReviewState state,
                       const char *reviewer, const char *comment, GError **error)
{
  const char *what = _("Could not save the review");

  g_return_val_if_fail (s != NULL, FALSE);
  g_return_val_if_fail ((guint) state < LODE_REVIEW_N_STATES, FALSE);

  if (!tx_begin (s, what, error))
    return FALSE;
  if (!patch_exists (s, patch_id, error))
    return tx_fail (s, SQLITE_OK, what, error);
  if (!insert_review (s, patch_id, state, reviewer, comment, what, error))
    return tx_fail (s, SQLITE_OK, what, error);
  return tx_commit (s, what, error);
}

static gpointer
review_from_row (sqlite3_stmt *st)
{
  LodeReview *r = g_new0 (LodeReview, 1);

  r->id = sqlite3_column_int64 (st, 0);
  r->patch_id = sqlite3_column_int64 (st, 1);
  lode_review_state_from_id ((const char *) sqlite3_column_text (st, 2), &r->state);
  r->reviewer = col_text (st, 3);
  r->comment = col_text (st, 4);
  r->created_us = sqlite3_column_int64 (st, 5);
  return r;
}

GPtrArray *
lode_store_list_reviews (LodeStore *s, gint64 patch_id, GError **error)
{
  g_return_val_if_fail (s != NULL, NULL);

  return fetch_for_patch (s, patch_id,
                          "SELECT id, patch_id, state, reviewer, comment, created FROM reviews "
                          "WHERE patch_id = ?1 ORDER BY id",
                          review_from_row, (GDestroyNotify) lode_review_free,
                          _("Could not read the reviews"), error);
}

gboolean
lode_store_count_states (LodeStore *s, guint counts[LODE_REVIEW_N_STATES], GError **error)
{
  sqlite3_stmt *st;
  int rc;

  g_return_val_if_fail (s != NULL, FALSE);

  memset (counts, 0, sizeof (guint) * LODE_REVIEW_N_STATES);
  st = stmt (s, "SELECT review_state, count (*) FROM patches GROUP BY review_state", error);
  if (st == NULL)
    return FALSE;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      LodeReviewState state;

      if (lode_review_state_from_id ((const char *) sqlite3_column_text (st, 0), &state))
        counts[state] = (guint) sqlite3_column_int64 (st, 1);
    }
  done (st);
  if (rc != SQLITE_DONE)
    {
      store_error (s, rc, _("Could not read the reviews"), error);
      return FALSE;
    }
  return TRUE;
}

/* Model versions */

void
lode_model_version_free (LodeModelVersion *v)
{
  if (v == NULL)
    return;
  g_free (v->name);
  g_free (v->path);
  g_free (v->metrics_json);
  g_free (v);
}

gint64
lode_store_add_model_version (LodeStore *s, LodeModelKind kind, const char *name, const char *path,
                              const char *metrics_json, gint64 parent_id, GError **error)
{
  const char *what = _("Could not save the model version");
  sqlite3_stmt *st;
  int rc;

  g_return_val_if_fail (s != NULL, 0);
  g_return_val_if_fail ((guint) kind < G_N_ELEMENTS (model_kind_ids), 0);
  g_return_val_if_fail (name != NULL, 0);

  if (metrics_json != NULL && !json_valid (s, metrics_json))
    {
      g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_INVALID,
                   _("Could not save model version “%s” in “%s”: its metrics are not valid JSON"),
                   name, s->path);
      return 0;
    }
  if (!tx_begin (s, what, error))
    return 0;
  st = stmt (s, "INSERT INTO model_versions (kind, name, created, path, metrics, parent_id) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6)", error);
  if (st == NULL)
    return tx_fail (s, SQLITE_OK, what, error);
  bind_text (st, 1, model_kind_ids[kind]);
  bind_text (st, 2, name);
  sqlite3_bind_int64 (st, 3, g_get_real_time ());
  bind_text (st, 4, path);
  bind_text (st, 5, metrics_json);
  bind_id (st, 6, parent_id);
  rc = step_done (st);
  done (st);
  if (rc != SQLITE_OK)
    return tx_fail (s, rc, what, error);
  if (!tx_commit (s, what, error))
    return 0;
  return sqlite3_last_insert_rowid (s->db);
}

#define MODEL_COLUMNS "SELECT id, kind, name, created, path, metrics, parent_id FROM model_versions "

static gpointer
model_from_row (sqlite3_stmt *st)
{
  LodeModelVersion *v = g_new0 (LodeModelVersion, 1);

  v->id = sqlite3_column_int64 (st, 0);
  lode_model_kind_from_id ((const char *) sqlite3_column_text (st, 1), &v->kind);
  v->name = col_text (st, 2);
  v->created_us = sqlite3_column_int64 (st, 3);
  v->path = col_text (st, 4);
  v->metrics_json = col_text (st, 5);
  v->parent_id = sqlite3_column_int64 (st, 6);
  return v;
}

LodeModelVersion *
lode_store_get_model_version (LodeStore *s, gint64 id, GError **error)
{
  sqlite3_stmt *st;
  gpointer v;

  g_return_val_if_fail (s != NULL, NULL);

  st = stmt (s, MODEL_COLUMNS "WHERE id = ?1", error);
  if (st == NULL)
    return NULL;
  sqlite3_bind_int64 (st, 1, id);
  if (fetch_one (s, st, model_from_row, _("Could not read the model versions"), &v, error)
      && v == NULL)
    g_set_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NOT_FOUND,
                 _("“%s” has no model version with id %" PRId64), s->path, id);
  return v;
}

GPtrArray *
lode_store_list_model_versions (LodeStore *s, GError **error)
{
  sqlite3_stmt *st;

  g_return_val_if_fail (s != NULL, NULL);

  st = stmt (s, MODEL_COLUMNS "ORDER BY id", error);
  if (st == NULL)
    return NULL;
  return fetch_all (s, st, model_from_row, (GDestroyNotify) lode_model_version_free,
                    _("Could not read the model versions"), error);
}

/* Embedding cache */

char *
lode_store_cache_key (gint64 patch_id, const char *composite, const char *model, int input_size)
{
  return g_strdup_printf ("patch=%" G_GINT64_FORMAT ";composite=%s;model=%s;size=%d",
                          patch_id, composite != NULL ? composite : "",
                          model != NULL ? model : "", input_size);
}

/* last_used is a clock that never repeats or runs backwards, so that the
 * order of use is exact even for uses within one microsecond. */
#define CACHE_NOW "max (?9, (SELECT coalesce (max (last_used), 0) + 1 FROM embedding_cache))"

gboolean
lode_store_cache_put (LodeStore *s, const char *key, const char *path, guint64 bytes,
                      GError **error)
{
  const char *what = _("Could not save the embedding cache index");
  sqlite3_stmt *st;
  int rc;

  g_return_val_if_fail (s != NULL, FALSE);
  g_return_val_if_fail (key != NULL && path != NULL, FALSE);

  if (!tx_begin (s, what, error))
    return FALSE;
  st = stmt (s, "INSERT INTO embedding_cache (key, path, bytes, last_used) "
                "VALUES (?1, ?2, ?3, " CACHE_NOW ") "
                "ON CONFLICT (key) DO UPDATE SET path = excluded.path, bytes = excluded.bytes, "
                "last_used = excluded.last_used", error);
  if (st == NULL)
    return tx_fail (s, SQLITE_OK, what, error);
  bind_text (st, 1, key);
  bind_text (st, 2, path);
  sqlite3_bind_int64 (st, 3, (gint64) bytes);
  sqlite3_bind_int64 (st, 9, g_get_real_time ());
  rc = step_done (st);
  done (st);
  if (rc != SQLITE_OK)
    return tx_fail (s, rc, what, error);
  return tx_commit (s, what, error);
}

char *
lode_store_cache_lookup (LodeStore *s, const char *key)
{
  g_autofree char *path = NULL;
  sqlite3_stmt *st;
  int rc;

  g_return_val_if_fail (s != NULL, NULL);
  g_return_val_if_fail (key != NULL, NULL);

  if (!tx_begin (s, "", NULL))
    return NULL;
  st = stmt (s, "UPDATE embedding_cache SET last_used = " CACHE_NOW " WHERE key = ?1 "
                "RETURNING path", NULL);
  if (st == NULL)
    {
      tx_abort (s);
      return NULL;
    }
  bind_text (st, 1, key);
  sqlite3_bind_int64 (st, 9, g_get_real_time ());
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    path = col_text (st, 0);
  done (st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    {
      tx_abort (s);
      return NULL;
    }
  if (!tx_commit (s, "", NULL))
    return NULL;
  return lode_store_resolve_path (s, path);
}

guint64
lode_store_cache_total_bytes (LodeStore *s)
{
  sqlite3_stmt *st;
  guint64 total = 0;

  g_return_val_if_fail (s != NULL, 0);

  st = stmt (s, "SELECT coalesce (sum (bytes), 0) FROM embedding_cache", NULL);
  if (st == NULL)
    return 0;
  if (sqlite3_step (st) == SQLITE_ROW)
    total = (guint64) sqlite3_column_int64 (st, 0);
  done (st);
  return total;
}

GPtrArray *
lode_store_cache_evict (LodeStore *s, guint64 max_bytes, GError **error)
{
  const char *what = _("Could not update the embedding cache index");
  g_autoptr(GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func (g_free);
  sqlite3_stmt *st;
  guint64 total;
  int rc;

  g_return_val_if_fail (s != NULL, NULL);

  if (!tx_begin (s, what, error))
    return NULL;
  total = lode_store_cache_total_bytes (s);
  st = stmt (s, "SELECT key, path, bytes FROM embedding_cache ORDER BY last_used", error);
  if (st == NULL)
    {
      tx_fail (s, SQLITE_OK, what, error);
      return NULL;
    }
  rc = SQLITE_ROW;
  while (total > max_bytes && (rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      g_ptr_array_add (keys, col_text (st, 0));
      g_ptr_array_add (paths, lode_store_resolve_path (s, (const char *) sqlite3_column_text (st, 1)));
      total -= MIN (total, (guint64) sqlite3_column_int64 (st, 2));
    }
  done (st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    {
      tx_fail (s, rc, what, error);
      return NULL;
    }

  st = stmt (s, "DELETE FROM embedding_cache WHERE key = ?1", error);
  if (st == NULL)
    {
      tx_fail (s, SQLITE_OK, what, error);
      return NULL;
    }
  for (guint i = 0; i < keys->len; i++)
    {
      bind_text (st, 1, keys->pdata[i]);
      rc = step_done (st);
      done (st);
      if (rc != SQLITE_OK)
        {
          tx_fail (s, rc, what, error);
          return NULL;
        }
    }
  if (!tx_commit (s, what, error))
    return NULL;
  return g_steal_pointer (&paths);
}
