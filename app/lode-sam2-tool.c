#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <string.h>

#include <glib/gi18n.h>

#include "lode-background.h"
#include "lode-raster.h"
#include "lode-sam2-session.h"
#include "lode-sam2-tool.h"
#include "lode-store.h"

/* What only the worker thread touches, and the counters both sides read.
 * The tool and every job hold a reference: the last one frees it, so a
 * tool that goes while an encode runs leaves the worker to end (cancelled)
 * and free its own state. */
typedef struct
{
  gint               ref_count;    /* atomic */
  gint               generation;   /* atomic: bumped by a new patch or model */
  gint               serial;       /* atomic: bumped by new prompts */
  gint               closing;      /* atomic: the tool is going */
  LodeSam2Session   *session;
  char              *session_checkpoint;
  int                session_size;
  LodeStore         *store;
  char              *store_path;
  LodeSam2Embedding *embedding;
  char              *embedding_key;
} Worker;

/* JOB_PREFETCH encodes the patch likely to come next into the project's
 * cache and keeps nothing itself. */
typedef enum { JOB_EMBED, JOB_PREDICT, JOB_PREFETCH } JobKind;

typedef struct
{
  JobKind             kind;
  GWeakRef            tool;
  Worker             *worker;
  int                 generation;
  int                 serial;
  char               *checkpoint;
  int                 input_size;
  guint64             cache_bytes;
  char               *project;
  gint64              patch_id;
  char               *image_path;
  int                 width, height;
  LodeCompositeSpec   spec;
  GCancellable       *cancellable;  /* an encode's: cancelled by a new patch */
  /* prompts */
  int                 n_points;
  float              *points;
  int                *labels;
  gboolean            has_box;
  float               box[4];
  float              *low_res;
  /* results */
  gboolean            skipped;
  gboolean            from_cache;
  LodeSam2Prediction *prediction;
  GError             *error;
} Job;

struct _LodeSam2Tool
{
  GObject             parent_instance;

  GMainContext       *context;
  GThreadPool        *pool;
  Worker             *worker;
  GCancellable       *encode_cancellable;  /* the last encode asked for */

  gboolean            prefetch;            /* encode the upcoming patch when idle */
  gint64              upcoming_id;         /* the patch likely to come next, 0: none */
  char               *upcoming_path;
  gint64              prefetch_id;         /* the prefetch in flight, 0: none */
  GCancellable       *prefetch_cancellable;
  gint64              prefetched_id;       /* the last prefetch that finished */
  int                 pending;      /* jobs of this generation in flight */

  char               *checkpoint;
  int                 input_size;
  guint64             cache_bytes;
  gboolean            model_loaded; /* a job has used this model already */

  char               *project;
  gint64              patch_id;
  char               *image_path;
  int                 width, height;
  LodeCompositeSpec   spec;

  LodeSam2ToolState   state;
  char               *error;
  gboolean            from_cache;

  GArray             *points;       /* floats, x y pairs */
  GArray             *labels;       /* ints */
  gboolean            has_box;
  float               box[4];
  LodeSam2Prediction *prediction;
  int                 chosen;
};

enum { SIGNAL_CHANGED, SIGNAL_ERROR, N_SIGNALS };
static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (LodeSam2Tool, lode_sam2_tool, G_TYPE_OBJECT)

static Worker *
worker_new (void)
{
  Worker *w = g_new0 (Worker, 1);

  w->ref_count = 1;
  return w;
}

static Worker *
worker_ref (Worker *w)
{
  g_atomic_int_inc (&w->ref_count);
  return w;
}

static void
worker_unref (Worker *w)
{
  if (!g_atomic_int_dec_and_test (&w->ref_count))
    return;
  g_clear_pointer (&w->session, lode_sam2_session_free);
  g_free (w->session_checkpoint);
  g_clear_pointer (&w->store, lode_store_close);
  g_free (w->store_path);
  g_clear_pointer (&w->embedding, lode_sam2_embedding_free);
  g_free (w->embedding_key);
  g_free (w);
}

static void
job_free (Job *job)
{
  g_clear_pointer (&job->worker, worker_unref);
  g_weak_ref_clear (&job->tool);
  g_free (job->checkpoint);
  g_free (job->project);
  g_free (job->image_path);
  g_free (job->points);
  g_free (job->labels);
  g_free (job->low_res);
  g_clear_pointer (&job->prediction, lode_sam2_prediction_free);
  g_clear_error (&job->error);
  g_clear_object (&job->cancellable);
  g_free (job);
}

/* Worker side */

static gboolean
ensure_session (Worker *w, Job *job, GError **error)
{
  if (w->session != NULL && g_strcmp0 (w->session_checkpoint, job->checkpoint) == 0 &&
      w->session_size == job->input_size)
    return TRUE;
  g_clear_pointer (&w->session, lode_sam2_session_free);
  g_clear_pointer (&w->embedding, lode_sam2_embedding_free);
  g_clear_pointer (&w->embedding_key, g_free);
  g_clear_pointer (&w->session_checkpoint, g_free);
  w->session = lode_sam2_session_new (job->checkpoint, job->input_size, error);
  if (w->session == NULL)
    return FALSE;
  w->session_checkpoint = g_strdup (job->checkpoint);
  w->session_size = job->input_size;
  return TRUE;
}

static gboolean
ensure_store (Worker *w, const char *project, GError **error)
{
  if (w->store != NULL && g_strcmp0 (w->store_path, project) == 0)
    return TRUE;
  g_clear_pointer (&w->store, lode_store_close);
  g_clear_pointer (&w->store_path, g_free);
  w->store = lode_store_open (project, FALSE, error);
  if (w->store == NULL)
    return FALSE;
  w->store_path = g_strdup (project);
  return TRUE;
}

static void
run_embed (Worker *w, Job *job)
{
  g_autofree char *composite = lode_sam2_composite_key (&job->spec);
  g_autofree char *key = g_strdup_printf ("%s|%" G_GINT64_FORMAT "|%s", job->project, job->patch_id, composite);
  g_autoptr(LodeRaster) raster = NULL;

  if (!ensure_session (w, job, &job->error))
    return;
  if (w->embedding != NULL && g_strcmp0 (w->embedding_key, key) == 0)
    {
      job->from_cache = TRUE;
      return;
    }
  g_clear_pointer (&w->embedding, lode_sam2_embedding_free);
  g_clear_pointer (&w->embedding_key, g_free);
  if (!ensure_store (w, job->project, &job->error))
    return;
  raster = lode_raster_open (job->image_path, &job->error);
  if (raster == NULL)
    return;
  w->embedding = lode_sam2_session_embed (w->session, w->store, job->patch_id, raster, &job->spec,
                                          job->cache_bytes, &job->from_cache, job->cancellable, &job->error);
  if (w->embedding != NULL)
    w->embedding_key = g_steal_pointer (&key);
}

static void
run_prefetch (Worker *w, Job *job)
{
  g_autoptr(LodeRaster) raster = NULL;
  g_autoptr(GError) error = NULL;
  LodeSam2Embedding *embedding;
  gboolean from_cache = FALSE;

  if (g_cancellable_is_cancelled (job->cancellable) || !ensure_session (w, job, &error) ||
      !ensure_store (w, job->project, &error) || (raster = lode_raster_open (job->image_path, &error)) == NULL)
    {
      job->skipped = TRUE;
      return;
    }
  embedding = lode_sam2_session_embed (w->session, w->store, job->patch_id, raster, &job->spec,
                                       job->cache_bytes, &from_cache, job->cancellable, &error);
  if (embedding == NULL)
    job->skipped = TRUE;
  else
    lode_sam2_embedding_free (embedding);
}

static void
run_predict (Worker *w, Job *job)
{
  LodeSam2Click click = { 0 };

  if (w->session == NULL || w->embedding == NULL)
    {
      job->skipped = TRUE;
      return;
    }
  click.n_points = job->n_points;
  click.points = job->points;
  click.labels = job->labels;
  click.has_box = job->has_box;
  memcpy (click.box, job->box, sizeof click.box);
  click.low_res_mask = job->low_res;
  click.multimask = TRUE;
  job->prediction = lode_sam2_predictor_predict (lode_sam2_session_get_predictor (w->session), w->embedding,
                                                 job->width, job->height, &click, &job->error);
}

static gboolean job_done (gpointer data);

static void
worker_run (gpointer data, gpointer user_data)
{
  Job *job = data;
  Worker *w = job->worker;

  if (g_atomic_int_get (&w->closing))
    {
      job_free (job);
      lode_background_leave ();
      return;
    }
  if (job->kind == JOB_PREFETCH)
    run_prefetch (w, job);  /* stopped by its own cancellable, not by a new patch */
  else if (job->generation != g_atomic_int_get (&w->generation) ||
           (job->kind == JOB_PREDICT && job->serial != g_atomic_int_get (&w->serial)))
    job->skipped = TRUE;
  else if (job->kind == JOB_EMBED)
    run_embed (w, job);
  else
    run_predict (w, job);
  g_main_context_invoke_full (g_main_context_default (), G_PRIORITY_DEFAULT, job_done, job,
                              (GDestroyNotify) job_free);
  lode_background_leave ();
}

/* Main side */

static void
emit_changed (LodeSam2Tool *self)
{
  g_signal_emit (self, signals[SIGNAL_CHANGED], 0);
}

static Job *
job_new (LodeSam2Tool *self, JobKind kind)
{
  Job *job = g_new0 (Job, 1);

  job->kind = kind;
  g_weak_ref_init (&job->tool, self);
  job->worker = worker_ref (self->worker);
  job->generation = g_atomic_int_get (&self->worker->generation);
  job->serial = g_atomic_int_get (&self->worker->serial);
  job->project = g_strdup (self->project);
  job->patch_id = self->patch_id;
  job->width = self->width;
  job->height = self->height;
  return job;
}

static void
push (LodeSam2Tool *self, Job *job)
{
  self->pending++;
  lode_background_enter ();  /* left by worker_run */
  g_thread_pool_push (self->pool, job, NULL);
}

static void
request_prediction (LodeSam2Tool *self)
{
  Job *job;

  if (self->state != LODE_SAM2_TOOL_READY || !lode_sam2_tool_has_prompts (self))
    return;
  job = job_new (self, JOB_PREDICT);
  job->n_points = self->points->len / 2;
  job->points = g_memdup2 (self->points->data, self->points->len * sizeof (float));
  job->labels = g_memdup2 (self->labels->data, self->labels->len * sizeof (int));
  job->has_box = self->has_box;
  memcpy (job->box, self->box, sizeof job->box);
  /* Refinement: the previous prediction's best logits, as the official
   * predictor is used when points are added. */
  if (self->prediction != NULL)
    job->low_res = g_memdup2 (lode_sam2_prediction_low_res (self->prediction, self->prediction->best),
                              (gsize) self->prediction->low_res * self->prediction->low_res * sizeof (float));
  push (self, job);
}

/* An encode of patch_id (image_path) with the tool's model, cache bound
 * and composite, stopped by its own cancellable, which *cancellable (the
 * tool's handle on it) also holds. */
static Job *
encode_job_new (LodeSam2Tool *self, JobKind kind, gint64 patch_id, const char *image_path,
                GCancellable **cancellable)
{
  Job *job = job_new (self, kind);

  job->patch_id = patch_id;
  job->image_path = g_strdup (image_path);
  job->checkpoint = g_strdup (self->checkpoint);
  job->input_size = self->input_size;
  job->cache_bytes = self->cache_bytes;
  job->spec = self->spec;
  job->cancellable = g_cancellable_new ();
  g_set_object (cancellable, job->cancellable);
  return job;
}

static void
cancel_and_clear (GCancellable **cancellable)
{
  if (*cancellable != NULL)
    g_cancellable_cancel (*cancellable);
  g_clear_object (cancellable);
}

static void
request_embedding (LodeSam2Tool *self)
{
  Job *job;

  if (self->checkpoint == NULL || self->patch_id == 0)
    {
      self->state = LODE_SAM2_TOOL_IDLE;
      return;
    }
  job = encode_job_new (self, JOB_EMBED, self->patch_id, self->image_path, &self->encode_cancellable);
  self->state = self->model_loaded ? LODE_SAM2_TOOL_ENCODING : LODE_SAM2_TOOL_LOADING;
  g_clear_pointer (&self->error, g_free);
  push (self, job);
}

static void
cancel_prefetch (LodeSam2Tool *self)
{
  cancel_and_clear (&self->prefetch_cancellable);
  self->prefetch_id = 0;
}

/* While the tool waits for clicks on a ready patch, the upcoming patch is
 * encoded into the project's cache (on the same worker, so a click waits
 * for the encoder's next block at most: a click cancels it). */
static void
maybe_prefetch (LodeSam2Tool *self)
{
  Job *job;

  if (!self->prefetch || self->upcoming_id == 0 || self->upcoming_id == self->patch_id ||
      self->state != LODE_SAM2_TOOL_READY || self->pending > 0 || lode_sam2_tool_has_prompts (self) ||
      self->prefetch_id != 0 || self->prefetched_id == self->upcoming_id || self->cache_bytes == 0)
    return;
  job = encode_job_new (self, JOB_PREFETCH, self->upcoming_id, self->upcoming_path,
                        &self->prefetch_cancellable);
  self->prefetch_id = job->patch_id;
  lode_background_enter ();  /* left by worker_run; not counted as busy */
  g_thread_pool_push (self->pool, job, NULL);
}

/* Everything computed so far no longer holds. */
static void
new_generation (LodeSam2Tool *self)
{
  g_atomic_int_inc (&self->worker->generation);
  g_atomic_int_inc (&self->worker->serial);
  /* An encode still running for the patch left behind stops at its next
   * block rather than holding up the new patch's. */
  cancel_and_clear (&self->encode_cancellable);
  self->pending = 0;
  self->from_cache = FALSE;
  g_clear_pointer (&self->prediction, lode_sam2_prediction_free);
  g_array_set_size (self->points, 0);
  g_array_set_size (self->labels, 0);
  self->has_box = FALSE;
  self->chosen = 0;
}

static gboolean
job_done (gpointer data)
{
  Job *job = data;
  g_autoptr(LodeSam2Tool) self = g_weak_ref_get (&job->tool);

  if (self != NULL && self->worker != NULL && job->kind == JOB_PREFETCH)
    {
      if (self->prefetch_id == job->patch_id && self->prefetch_cancellable == job->cancellable)
        {
          self->prefetch_id = 0;
          g_clear_object (&self->prefetch_cancellable);
          if (!job->skipped)
            self->prefetched_id = job->patch_id;
        }
      return G_SOURCE_REMOVE;
    }
  if (self == NULL || self->worker == NULL || job->generation != g_atomic_int_get (&self->worker->generation))
    return G_SOURCE_REMOVE;
  self->pending = MAX (self->pending - 1, 0);
  if (job->skipped)
    {
      emit_changed (self);
      return G_SOURCE_REMOVE;
    }
  if (job->kind == JOB_EMBED)
    {
      if (job->error != NULL)
        {
          self->state = LODE_SAM2_TOOL_FAILED;
          g_free (self->error);
          self->error = g_strdup (job->error->message);
          emit_changed (self);
          g_signal_emit (self, signals[SIGNAL_ERROR], 0, job->error);
          return G_SOURCE_REMOVE;
        }
      self->model_loaded = TRUE;
      self->state = LODE_SAM2_TOOL_READY;
      self->from_cache = job->from_cache;
      request_prediction (self);
      maybe_prefetch (self);
      emit_changed (self);
      return G_SOURCE_REMOVE;
    }
  if (job->serial != g_atomic_int_get (&self->worker->serial))
    return G_SOURCE_REMOVE;
  if (job->error != NULL)
    {
      /* A prompt the model refuses leaves the previous prediction. */
      g_warning ("SAM2 prediction: %s", job->error->message);
      emit_changed (self);
      return G_SOURCE_REMOVE;
    }
  g_clear_pointer (&self->prediction, lode_sam2_prediction_free);
  self->prediction = g_steal_pointer (&job->prediction);
  self->chosen = self->prediction->best;
  emit_changed (self);
  return G_SOURCE_REMOVE;
}

static void
lode_sam2_tool_dispose (GObject *object)
{
  LodeSam2Tool *self = LODE_SAM2_TOOL (object);

  if (self->pool != NULL)
    {
      /* The encode running stops at its next block and those waiting are
       * dropped by the worker; nothing here waits for it: the last job
       * frees the worker's state. */
      g_atomic_int_set (&self->worker->closing, 1);
      cancel_and_clear (&self->encode_cancellable);
      cancel_prefetch (self);
      g_thread_pool_free (self->pool, FALSE, FALSE);
      self->pool = NULL;
      g_clear_pointer (&self->worker, worker_unref);
    }
  G_OBJECT_CLASS (lode_sam2_tool_parent_class)->dispose (object);
}

static void
lode_sam2_tool_finalize (GObject *object)
{
  LodeSam2Tool *self = LODE_SAM2_TOOL (object);

  g_free (self->checkpoint);
  g_free (self->project);
  g_free (self->image_path);
  g_free (self->upcoming_path);
  g_free (self->error);
  g_array_unref (self->points);
  g_array_unref (self->labels);
  g_clear_pointer (&self->prediction, lode_sam2_prediction_free);
  G_OBJECT_CLASS (lode_sam2_tool_parent_class)->finalize (object);
}

static void
lode_sam2_tool_class_init (LodeSam2ToolClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = lode_sam2_tool_dispose;
  object_class->finalize = lode_sam2_tool_finalize;
  signals[SIGNAL_CHANGED] = g_signal_new ("changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                                          NULL, NULL, NULL, G_TYPE_NONE, 0);
  /* (error): the checkpoint or the patch cannot be used. */
  signals[SIGNAL_ERROR] = g_signal_new ("error", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                                        NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);
}

static void
lode_sam2_tool_init (LodeSam2Tool *self)
{
  self->worker = worker_new ();
  self->pool = g_thread_pool_new (worker_run, NULL, 1, FALSE, NULL);
  self->points = g_array_new (FALSE, FALSE, sizeof (float));
  self->labels = g_array_new (FALSE, FALSE, sizeof (int));
  self->input_size = 1024;
  self->prefetch = TRUE;
}

LodeSam2Tool *
lode_sam2_tool_new (void)
{
  return g_object_new (LODE_TYPE_SAM2_TOOL, NULL);
}

void
lode_sam2_tool_set_model (LodeSam2Tool *self, const char *checkpoint, int input_size, guint64 cache_bytes)
{
  g_return_if_fail (LODE_IS_SAM2_TOOL (self));

  if (checkpoint != NULL && checkpoint[0] == '\0')
    checkpoint = NULL;
  self->cache_bytes = cache_bytes;
  if (g_strcmp0 (checkpoint, self->checkpoint) == 0 && input_size == self->input_size)
    return;
  g_free (self->checkpoint);
  self->checkpoint = g_strdup (checkpoint);
  self->input_size = input_size;
  self->model_loaded = FALSE;
  cancel_prefetch (self);
  self->prefetched_id = 0;
  new_generation (self);
  self->state = LODE_SAM2_TOOL_IDLE;
  g_clear_pointer (&self->error, g_free);
  if (self->patch_id != 0)
    request_embedding (self);
  emit_changed (self);
}

const char *
lode_sam2_tool_get_checkpoint (LodeSam2Tool *self)
{
  g_return_val_if_fail (LODE_IS_SAM2_TOOL (self), NULL);
  return self->checkpoint;
}

void
lode_sam2_tool_set_patch (LodeSam2Tool            *self,
                          const char              *project,
                          gint64                   patch_id,
                          const char              *image_path,
                          int                      width,
                          int                      height,
                          const LodeCompositeSpec *spec)
{
  g_return_if_fail (LODE_IS_SAM2_TOOL (self));

  if (patch_id != 0 && patch_id == self->patch_id && g_strcmp0 (project, self->project) == 0 &&
      memcmp (spec, &self->spec, sizeof *spec) == 0 && self->state != LODE_SAM2_TOOL_FAILED &&
      self->state != LODE_SAM2_TOOL_IDLE)
    return;
  {
    gboolean same_project = g_strcmp0 (project, self->project) == 0;
    gboolean same_spec = spec != NULL && memcmp (spec, &self->spec, sizeof *spec) == 0;

    /* Moving to the patch being prefetched: its encode goes on, and the
     * patch's own job, queued behind it, finds it in the cache. */
    if (self->prefetch_id != 0 && (self->prefetch_id != patch_id || !same_project || !same_spec))
      cancel_prefetch (self);
    if (!same_project || (spec != NULL && !same_spec))
      self->prefetched_id = 0;
  }
  new_generation (self);
  g_free (self->project);
  g_free (self->image_path);
  self->project = patch_id ? g_strdup (project) : NULL;
  self->image_path = patch_id ? g_strdup (image_path) : NULL;
  self->patch_id = patch_id;
  self->width = width;
  self->height = height;
  if (spec != NULL)
    self->spec = *spec;
  request_embedding (self);
  emit_changed (self);
}

void
lode_sam2_tool_set_upcoming (LodeSam2Tool *self, gint64 patch_id, const char *image_path)
{
  g_return_if_fail (LODE_IS_SAM2_TOOL (self));

  if (patch_id == self->upcoming_id && g_strcmp0 (image_path, self->upcoming_path) == 0)
    return;
  if (self->prefetch_id != 0 && self->prefetch_id != patch_id && self->prefetch_id != self->patch_id)
    cancel_prefetch (self);
  self->upcoming_id = image_path != NULL ? patch_id : 0;
  g_free (self->upcoming_path);
  self->upcoming_path = self->upcoming_id != 0 ? g_strdup (image_path) : NULL;
  maybe_prefetch (self);
}

void
lode_sam2_tool_set_prefetch (LodeSam2Tool *self, gboolean prefetch)
{
  g_return_if_fail (LODE_IS_SAM2_TOOL (self));
  self->prefetch = prefetch;
  if (prefetch)
    maybe_prefetch (self);
  else
    cancel_prefetch (self);
}

gint64
lode_sam2_tool_get_prefetched (LodeSam2Tool *self)
{
  g_return_val_if_fail (LODE_IS_SAM2_TOOL (self), 0);
  return self->prefetched_id;
}

gint64
lode_sam2_tool_get_patch_id (LodeSam2Tool *self)
{
  g_return_val_if_fail (LODE_IS_SAM2_TOOL (self), 0);
  return self->patch_id;
}

LodeSam2ToolState
lode_sam2_tool_get_state (LodeSam2Tool *self)
{
  g_return_val_if_fail (LODE_IS_SAM2_TOOL (self), LODE_SAM2_TOOL_IDLE);
  return self->state;
}

const char *
lode_sam2_tool_get_error (LodeSam2Tool *self)
{
  g_return_val_if_fail (LODE_IS_SAM2_TOOL (self), NULL);
  return self->state == LODE_SAM2_TOOL_FAILED ? self->error : NULL;
}

gboolean
lode_sam2_tool_get_from_cache (LodeSam2Tool *self)
{
  g_return_val_if_fail (LODE_IS_SAM2_TOOL (self), FALSE);
  return self->from_cache;
}

gboolean
lode_sam2_tool_is_busy (LodeSam2Tool *self)
{
  g_return_val_if_fail (LODE_IS_SAM2_TOOL (self), FALSE);
  return self->pending > 0;
}

static void
prompts_changed (LodeSam2Tool *self)
{
  cancel_prefetch (self);
  g_atomic_int_inc (&self->worker->serial);
  request_prediction (self);
  emit_changed (self);
}

void
lode_sam2_tool_add_point (LodeSam2Tool *self, double x, double y, gboolean positive)
{
  float xy[2] = { (float) x, (float) y };
  int label = positive ? 1 : 0;

  g_return_if_fail (LODE_IS_SAM2_TOOL (self));
  if (self->patch_id == 0)
    return;
  g_array_append_vals (self->points, xy, 2);
  g_array_append_val (self->labels, label);
  prompts_changed (self);
}

void
lode_sam2_tool_set_box (LodeSam2Tool *self, double x0, double y0, double x1, double y1)
{
  g_return_if_fail (LODE_IS_SAM2_TOOL (self));
  if (self->patch_id == 0)
    return;
  self->has_box = TRUE;
  self->box[0] = (float) MIN (x0, x1);
  self->box[1] = (float) MIN (y0, y1);
  self->box[2] = (float) MAX (x0, x1);
  self->box[3] = (float) MAX (y0, y1);
  prompts_changed (self);
}

void
lode_sam2_tool_clear (LodeSam2Tool *self)
{
  g_return_if_fail (LODE_IS_SAM2_TOOL (self));
  g_atomic_int_inc (&self->worker->serial);
  g_array_set_size (self->points, 0);
  g_array_set_size (self->labels, 0);
  self->has_box = FALSE;
  g_clear_pointer (&self->prediction, lode_sam2_prediction_free);
  self->chosen = 0;
  maybe_prefetch (self);
  emit_changed (self);
}

int
lode_sam2_tool_get_points (LodeSam2Tool *self, const float **points, const int **labels)
{
  g_return_val_if_fail (LODE_IS_SAM2_TOOL (self), 0);
  if (points)
    *points = (const float *) self->points->data;
  if (labels)
    *labels = (const int *) self->labels->data;
  return self->labels->len;
}

gboolean
lode_sam2_tool_get_box (LodeSam2Tool *self, float box[4])
{
  g_return_val_if_fail (LODE_IS_SAM2_TOOL (self), FALSE);
  if (self->has_box)
    memcpy (box, self->box, sizeof self->box);
  return self->has_box;
}

gboolean
lode_sam2_tool_has_prompts (LodeSam2Tool *self)
{
  g_return_val_if_fail (LODE_IS_SAM2_TOOL (self), FALSE);
  return self->labels->len > 0 || self->has_box;
}

const LodeSam2Prediction *
lode_sam2_tool_get_prediction (LodeSam2Tool *self)
{
  g_return_val_if_fail (LODE_IS_SAM2_TOOL (self), NULL);
  return self->prediction;
}

int
lode_sam2_tool_get_chosen (LodeSam2Tool *self)
{
  g_return_val_if_fail (LODE_IS_SAM2_TOOL (self), 0);
  return self->chosen;
}

gboolean
lode_sam2_tool_choose (LodeSam2Tool *self, int index)
{
  g_return_val_if_fail (LODE_IS_SAM2_TOOL (self), FALSE);
  if (self->prediction == NULL || index < 0 || index >= self->prediction->n_masks)
    return FALSE;
  if (index != self->chosen)
    {
      self->chosen = index;
      emit_changed (self);
    }
  return TRUE;
}
