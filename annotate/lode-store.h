/* lode-store.h: the project store, one SQLite file per project (".lode").
 *
 * The store is the truth: every call that changes something is its own
 * committed transaction (WAL journal, synchronous=FULL) before it returns,
 * unless it runs inside lode_store_begin()/lode_store_commit(), which groups
 * many calls (bulk import) into one. A failed call is rolled back and leaves
 * everything saved earlier in place.
 *
 * Masks and edit deltas are opaque blobs (made by lode_mask_serialize and
 * lode_mask_delta_serialize); the store keeps them and their sizes and never
 * looks inside. Revisions are append-only: the file refuses to change or
 * delete one.
 *
 * Threads: a LodeStore is one SQLite connection opened without its own
 * mutex. Use each LodeStore from one thread at a time; a worker thread that
 * needs the project opens its own LodeStore on the same file (WAL lets
 * readers and one writer work side by side; writers wait up to a few
 * seconds for each other). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define LODE_STORE_ERROR (lode_store_error_quark ())
GQuark lode_store_error_quark (void);

typedef enum {
  LODE_STORE_ERROR_OPEN,           /* the file cannot be opened or created */
  LODE_STORE_ERROR_CORRUPT,        /* the file is damaged */
  LODE_STORE_ERROR_NEWER_VERSION,  /* made by a newer Lode; left untouched */
  LODE_STORE_ERROR_NOT_FOUND,      /* no such file, patch, revision, edit... */
  LODE_STORE_ERROR_CONSTRAINT,     /* duplicate or inconsistent data refused */
  LODE_STORE_ERROR_FULL,           /* the disk is full */
  LODE_STORE_ERROR_IO,             /* reading or writing failed */
  LODE_STORE_ERROR_NOT_PROJECT,    /* not SQLite, or SQLite from another program */
  LODE_STORE_ERROR_READ_ONLY,      /* the file or its folder cannot be written */
  LODE_STORE_ERROR_INVALID,        /* bad argument value (e.g. malformed JSON) */
} LodeStoreError;

#define LODE_STORE_EXTENSION ".lode"
/* PRAGMA application_id of every project file: 'LODE'. */
#define LODE_STORE_APPLICATION_ID 0x4C4F4445

typedef struct _LodeStore LodeStore;

/* The project-format version this Lode writes (PRAGMA user_version). */
int         lode_store_format_version (void);

/* Opens the project at path; with create, makes it when missing. Older
 * formats are migrated in place, one transaction per step. */
LodeStore  *lode_store_open          (const char  *path,
                                      gboolean     create,
                                      GError     **error);
void        lode_store_close         (LodeStore   *s);
/* Absolute path of the project file. */
const char *lode_store_get_path      (LodeStore   *s);
/* The folder holding the project file, against which relative paths resolve. */
const char *lode_store_get_folder    (LodeStore   *s);
/* stored as written in the store: absolute, or relative to the project folder. */
char       *lode_store_resolve_path  (LodeStore   *s,
                                      const char  *stored);
/* The reverse: path (absolute, or relative to the current folder) becomes
 * relative to the project folder when it lies inside it, else absolute. */
char       *lode_store_relative_path (LodeStore   *s,
                                      const char  *path);

/* Project metadata: name, created, lode_version, dataset_root, band_profile... */
gboolean    lode_store_set_meta      (LodeStore   *s,
                                      const char  *key,
                                      const char  *value,
                                      GError     **error);
char       *lode_store_get_meta      (LodeStore   *s,
                                      const char  *key);
/* The class table as JSON text (lode_class_table_to_json); refused unless
 * it is well-formed JSON. NULL when none was set. */
gboolean    lode_store_set_class_table_json (LodeStore  *s,
                                             const char *json,
                                             GError    **error);
char       *lode_store_get_class_table_json (LodeStore  *s);

/* One transaction around many calls (bulk import). A call that fails
 * inside it undoes only its own part; lode_store_rollback() undoes all, and
 * so does closing the store before lode_store_commit(). After a full disk
 * or I/O error SQLite drops the whole transaction: lode_store_commit() then
 * says so. */
gboolean    lode_store_begin         (LodeStore   *s,
                                      GError     **error);
gboolean    lode_store_commit        (LodeStore   *s,
                                      GError     **error);
void        lode_store_rollback      (LodeStore   *s);

/* PRAGMA integrity_check says "ok"; otherwise a CORRUPT error with its report. */
gboolean    lode_store_integrity_check (LodeStore *s,
                                        GError   **error);

/* Review states */
typedef enum {
  LODE_REVIEW_UNLABELLED,
  LODE_REVIEW_IN_PROGRESS,
  LODE_REVIEW_TO_REVIEW,
  LODE_REVIEW_ACCEPTED,
  LODE_REVIEW_REJECTED,
} LodeReviewState;

#define LODE_REVIEW_N_STATES 5

/* "unlabelled", "in_progress", "to_review", "accepted", "rejected" */
const char *lode_review_state_id      (LodeReviewState  state);
gboolean    lode_review_state_from_id (const char      *id,
                                       LodeReviewState *out_state);
/* Translated name for display. */
const char *lode_review_state_label   (LodeReviewState  state);

/* Patches */
typedef struct
{
  gint64          id;
  char           *tile_id;        /* "0001" */
  int             year;
  char           *image_path;     /* relative to the project folder, or absolute */
  char           *mask_path;      /* nullable */
  int             width;
  int             height;
  int             n_bands;
  char           *crs_wkt;        /* nullable */
  double          geotransform[6];
  gboolean        has_geotransform;
  char           *split;          /* NULL, "train" or "test" */
  char           *odd_reason;     /* nullable: why the patch is set aside */
  LodeReviewState state;          /* current review state */
} LodePatch;

LodePatch  *lode_patch_new           (void);
LodePatch  *lode_patch_copy          (const LodePatch *p);
void        lode_patch_free          (LodePatch       *p);

/* Returns the new id (> 0), or 0 with an error; a (tile_id, year) already
 * in the project is a CONSTRAINT error. p->id is ignored; p->state, when
 * not unlabelled, is logged as the first review. */
gint64      lode_store_add_patch     (LodeStore       *s,
                                      const LodePatch *p,
                                      GError         **error);
/* LodePatch*, ordered by tile_id then year. */
GPtrArray  *lode_store_list_patches  (LodeStore       *s,
                                      GError         **error);
LodePatch  *lode_store_get_patch     (LodeStore       *s,
                                      gint64           id,
                                      GError         **error);
LodePatch  *lode_store_find_patch    (LodeStore       *s,
                                      const char      *tile_id,
                                      int              year,
                                      GError         **error);
/* The same tile in the other year; 0 with no error when there is none. */
gint64      lode_store_find_pair     (LodeStore       *s,
                                      gint64           patch_id,
                                      GError         **error);
/* split: NULL, "train" or "test". */
gboolean    lode_store_set_patch_split      (LodeStore  *s,
                                             gint64      patch_id,
                                             const char *split,
                                             GError    **error);
gboolean    lode_store_set_patch_odd_reason (LodeStore  *s,
                                             gint64      patch_id,
                                             const char *reason,
                                             GError    **error);

/* Revisions: every mask a patch has had, oldest first, never changed. */
typedef enum {
  LODE_REVISION_ORIGINAL,  /* imported from the data set */
  LODE_REVISION_MANUAL,    /* brush, fill, undo, redo */
  LODE_REVISION_SAM2,      /* accepted SAM2 candidate */
  LODE_REVISION_MODEL,     /* pre-label from a model version */
} LodeRevisionSource;

const char *lode_revision_source_id      (LodeRevisionSource  source);
gboolean    lode_revision_source_from_id (const char         *id,
                                          LodeRevisionSource *out_source);

typedef struct
{
  gint64             id;
  gint64             patch_id;
  gint64             parent_id;         /* the revision it followed, 0 if first */
  gint64             model_version_id;  /* 0 unless from a model */
  gint64             created_us;        /* unix time, microseconds */
  LodeRevisionSource source;
  char              *author;
  char              *note;
  gsize              mask_bytes;
} LodeRevisionInfo;

void        lode_revision_info_free  (LodeRevisionInfo *info);

/* Returns the new revision id, or 0 with an error. model_version_id 0 = none. */
gint64      lode_store_add_revision  (LodeStore          *s,
                                      gint64              patch_id,
                                      GBytes             *mask,
                                      LodeRevisionSource  source,
                                      gint64              model_version_id,
                                      const char         *author,
                                      const char         *note,
                                      GError            **error);
/* revision_id 0 = the latest. NULL with no error when the patch has no mask
 * yet; NOT_FOUND for an unknown patch or a revision of another patch. */
GBytes     *lode_store_get_mask      (LodeStore   *s,
                                      gint64       patch_id,
                                      gint64       revision_id,
                                      gint64      *out_revision_id,
                                      GError     **error);
/* The id of the patch's latest revision, 0 when it has none, -1 with an
 * error when the store cannot say. */
gint64      lode_store_latest_revision (LodeStore *s,
                                        gint64     patch_id,
                                        GError   **error);
/* The first revision imported from the data set; NULL, no error, if none. */
GBytes     *lode_store_get_original_mask (LodeStore *s,
                                          gint64     patch_id,
                                          GError   **error);
/* LodeRevisionInfo*, oldest first. */
GPtrArray  *lode_store_list_revisions (LodeStore  *s,
                                       gint64      patch_id,
                                       GError    **error);

/* Edits: the undo history of a patch, kept across restarts. Applied edits
 * have seq 1..k; undone ones (the redo branch) follow. */
typedef struct
{
  gint64   id;
  gint64   patch_id;
  gint64   seq;
  gint64   revision_id;  /* the revision the edit produced */
  gint64   created_us;
  gboolean undone;
  GBytes  *delta;
} LodeEdit;

void        lode_edit_free           (LodeEdit *edit);

/* One transaction: discards the redo branch (undone edits; their revisions
 * stay), appends mask_after as a revision and delta as the newest applied
 * edit. Returns the edit id, or 0 with an error. */
gint64      lode_store_commit_edit   (LodeStore          *s,
                                      gint64              patch_id,
                                      GBytes             *delta,
                                      GBytes             *mask_after,
                                      LodeRevisionSource  source,
                                      const char         *author,
                                      GError            **error);
/* Persists one undo step: marks the newest applied edit undone and appends
 * mask_after_undo (computed by the caller from its history) as a manual
 * revision noted "undo", in one transaction. Returns that edit's delta (for
 * the caller to check or apply) and its id; NOT_FOUND when nothing is left
 * to undo. */
GBytes     *lode_store_undo          (LodeStore   *s,
                                      gint64       patch_id,
                                      GBytes      *mask_after_undo,
                                      const char  *author,
                                      gint64      *out_edit_id,
                                      GError     **error);
/* The same for redo: re-applies the earliest undone edit, revision noted "redo". */
GBytes     *lode_store_redo          (LodeStore   *s,
                                      gint64       patch_id,
                                      GBytes      *mask_after_redo,
                                      const char  *author,
                                      gint64      *out_edit_id,
                                      GError     **error);
/* Rebuilds the history at open: applied edits oldest first (the last is the
 * next to undo), undone edits in the order redo re-applies them. LodeEdit*. */
gboolean    lode_store_load_edits    (LodeStore   *s,
                                      gint64       patch_id,
                                      GPtrArray  **applied,
                                      GPtrArray  **undone,
                                      GError     **error);
LodeEdit   *lode_store_get_edit      (LodeStore   *s,
                                      gint64       edit_id,
                                      GError     **error);

/* Reviews: an append-only log; the patch's state is the latest entry. */
typedef struct
{
  gint64          id;
  gint64          patch_id;
  LodeReviewState state;
  char           *reviewer;
  char           *comment;
  gint64          created_us;
} LodeReview;

void        lode_review_free         (LodeReview *review);

gboolean    lode_store_set_review    (LodeStore       *s,
                                      gint64           patch_id,
                                      LodeReviewState  state,
                                      const char      *reviewer,
                                      const char      *comment,
                                      GError         **error);
/* LodeReview*, oldest first. */
GPtrArray  *lode_store_list_reviews  (LodeStore   *s,
                                      gint64       patch_id,
                                      GError     **error);
/* How many patches are in each state: counts[LODE_REVIEW_N_STATES]. */
gboolean    lode_store_count_states  (LodeStore   *s,
                                      guint        counts[LODE_REVIEW_N_STATES],
                                      GError     **error);

/* Model versions */
typedef enum {
  LODE_MODEL_UNET,
  LODE_MODEL_PRITHVI,
  LODE_MODEL_SAM2,
} LodeModelKind;

const char *lode_model_kind_id       (LodeModelKind  kind);
gboolean    lode_model_kind_from_id  (const char    *id,
                                      LodeModelKind *out_kind);

typedef struct
{
  gint64         id;
  LodeModelKind  kind;
  char          *name;
  gint64         created_us;
  char          *path;          /* checkpoint, as stored */
  char          *metrics_json;  /* nullable */
  gint64         parent_id;     /* the version it was fine-tuned from, 0 if none */
} LodeModelVersion;

void        lode_model_version_free  (LodeModelVersion *v);

/* metrics_json must be NULL or well-formed JSON. Returns the id or 0. */
gint64      lode_store_add_model_version  (LodeStore     *s,
                                           LodeModelKind  kind,
                                           const char    *name,
                                           const char    *path,
                                           const char    *metrics_json,
                                           gint64         parent_id,
                                           GError       **error);
LodeModelVersion *lode_store_get_model_version (LodeStore *s,
                                                gint64     id,
                                                GError   **error);
/* LodeModelVersion*, oldest first. */
GPtrArray  *lode_store_list_model_versions (LodeStore  *s,
                                            GError    **error);

/* Embedding cache index: which encoder outputs lie on disk, and where. */
char       *lode_store_cache_key     (gint64       patch_id,
                                      const char  *composite,
                                      const char  *model,
                                      int          input_size);
/* Adds or replaces the entry and marks it just used. */
gboolean    lode_store_cache_put     (LodeStore   *s,
                                      const char  *key,
                                      const char  *path,
                                      guint64      bytes,
                                      GError     **error);
/* The entry's path (resolved against the project folder), marking it just
 * used; NULL when absent. */
char       *lode_store_cache_lookup  (LodeStore   *s,
                                      const char  *key);
guint64     lode_store_cache_total_bytes (LodeStore *s);
/* Forgets least recently used entries until the rest fit in max_bytes;
 * returns their paths (resolved) for the caller to delete. */
GPtrArray  *lode_store_cache_evict   (LodeStore   *s,
                                      guint64      max_bytes,
                                      GError     **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeStore, lode_store_close)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodePatch, lode_patch_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeRevisionInfo, lode_revision_info_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeEdit, lode_edit_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeReview, lode_review_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeModelVersion, lode_model_version_free)

G_END_DECLS
