#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "lode-mask.h"
#include "lode-model-metrics.h"
#include "lode-sam2-tune-project.h"

struct _LodeSam2TuneProject
{
  LodeStore            *store;
  LodeSam2Session      *session;
  LodeSam2Tuner        *tuner;
  LodeCompositeSpec     spec;
  GArray               *ids;     /* gint64 patch ids: training ones first */
  GPtrArray            *paths;   /* image path of each */
  guint                 n_train, n_val;
  LodeSam2SampleSource  source;
};

static guint8 *
load_labels (LodeStore *store, gint64 id, int *w, int *h, GError **error)
{
  g_autoptr(GBytes) blob = lode_store_get_mask (store, id, 0, NULL, error);
  LodeMask *m;
  guint8 *out;

  if (blob == NULL)
    return NULL;
  m = lode_mask_deserialize (blob, error);
  if (m == NULL)
    return NULL;
  *w = m->width;
  *h = m->height;
  out = g_steal_pointer (&m->data);
  lode_mask_free (m);
  return out;
}

static gboolean
project_get (guint index, LodeSam2Sample *out, gpointer user_data, GError **error)
{
  LodeSam2TuneProject *p = user_data;
  gint64 id = g_array_index (p->ids, gint64, index);
  g_autoptr(LodeRaster) raster = lode_raster_open (p->paths->pdata[index], error);

  if (raster == NULL)
    return FALSE;
  out->embedding = lode_sam2_session_embed (p->session, p->store, id, raster, &p->spec, 0, NULL, NULL, error);
  if (out->embedding == NULL)
    return FALSE;
  out->labels = load_labels (p->store, id, &out->width, &out->height, error);
  if (out->labels == NULL)
    {
      g_clear_pointer (&out->embedding, lode_sam2_embedding_free);
      if (error && *error == NULL)
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, _("Patch %s has no mask"),
                     (const char *) p->paths->pdata[index]);
      return FALSE;
    }
  return TRUE;
}

static gboolean
collect (LodeSam2TuneProject *p, GError **error)
{
  g_autoptr(GPtrArray) patches = lode_store_list_patches (p->store, error);
  g_autoptr(GArray) val_ids = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autoptr(GPtrArray) val_paths = g_ptr_array_new_with_free_func (g_free);

  if (patches == NULL)
    return FALSE;
  for (guint i = 0; i < patches->len; i++)
    {
      const LodePatch *q = g_ptr_array_index (patches, i);
      g_autofree guint8 *labels = NULL;
      g_autoptr(GError) local = NULL;
      gboolean any = FALSE;
      int w = 0, h = 0;

      if (q->odd_reason != NULL)
        continue;
      labels = load_labels (p->store, q->id, &w, &h, &local);
      if (labels == NULL)
        continue;
      for (gsize k = 0; k < (gsize) w * h && !any; k++)
        any = labels[k] != 0 && labels[k] != LODE_MASK_NODATA;
      if (!any)
        continue;
      if (q->split != NULL && g_str_equal (q->split, "test"))
        {
          g_array_append_val (val_ids, q->id);
          g_ptr_array_add (val_paths, lode_store_resolve_path (p->store, q->image_path));
        }
      else
        {
          g_array_append_val (p->ids, q->id);
          g_ptr_array_add (p->paths, lode_store_resolve_path (p->store, q->image_path));
        }
    }
  p->n_train = p->ids->len;
  p->n_val = val_ids->len;
  g_array_append_vals (p->ids, val_ids->data, val_ids->len);
  for (guint i = 0; i < val_paths->len; i++)
    g_ptr_array_add (p->paths, g_strdup (val_paths->pdata[i]));
  return TRUE;
}

LodeSam2TuneProject *
lode_sam2_tune_project_new (LodeStore   *store,
                            const char  *checkpoint,
                            int          input_size,
                            GError     **error)
{
  g_autoptr(LodeSam2TuneProject) self = NULL;
  g_autoptr(LodeCheckpoint) ckpt = NULL;

  g_return_val_if_fail (store != NULL && checkpoint != NULL, NULL);

  self = g_new0 (LodeSam2TuneProject, 1);
  self->store = store;
  self->ids = g_array_new (FALSE, FALSE, sizeof (gint64));
  self->paths = g_ptr_array_new_with_free_func (g_free);
  lode_composite_spec_init (&self->spec, LODE_COMPOSITE_TRUE_COLOUR);
  self->session = lode_sam2_session_new (checkpoint, input_size, error);
  if (self->session == NULL)
    return NULL;
  ckpt = lode_checkpoint_open (checkpoint, error);
  if (ckpt == NULL)
    return NULL;
  self->tuner = lode_sam2_tuner_new_from_checkpoint (ckpt, lode_sam2_predictor_get_config (
                                                       lode_sam2_session_get_predictor (self->session)), error);
  if (self->tuner == NULL || !collect (self, error))
    return NULL;
  self->source.n_train = self->n_train;
  self->source.n_val = self->n_val;
  self->source.get = project_get;
  self->source.user_data = self;
  return g_steal_pointer (&self);
}

void
lode_sam2_tune_project_free (LodeSam2TuneProject *self)
{
  if (self == NULL)
    return;
  g_clear_pointer (&self->tuner, lode_sam2_tuner_free);
  g_clear_pointer (&self->session, lode_sam2_session_free);
  g_array_unref (self->ids);
  g_ptr_array_unref (self->paths);
  g_free (self);
}

guint
lode_sam2_tune_project_n_train (LodeSam2TuneProject *self)
{
  return self->n_train;
}

guint
lode_sam2_tune_project_n_val (LodeSam2TuneProject *self)
{
  return self->n_val;
}

LodeSam2Tuner *
lode_sam2_tune_project_get_tuner (LodeSam2TuneProject *self)
{
  return self->tuner;
}

const LodeSam2SampleSource *
lode_sam2_tune_project_get_source (LodeSam2TuneProject *self)
{
  return &self->source;
}

gboolean
lode_sam2_tune_project_encode (LodeSam2TuneProject        *self,
                               LodeSam2EncodeProgressFunc  progress,
                               gpointer                    user_data,
                               GCancellable               *cancellable,
                               GError                    **error)
{
  for (guint i = 0; i < self->ids->len; i++)
    {
      LodeSam2Sample s = { 0 };

      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return FALSE;
      if (!project_get (i, &s, self, error))
        return FALSE;
      lode_sam2_sample_clear (&s);
      if (progress != NULL)
        progress (i + 1, self->ids->len, user_data);
    }
  return TRUE;
}

/* ---- the whole run -------------------------------------------------------- */

void
lode_sam2_tune_project_options_init (LodeSam2TuneProjectOptions *options)
{
  memset (options, 0, sizeof *options);
  options->input_size = 1024;
  lode_sam2_tune_config_init_defaults (&options->tune);
  options->tune.steps = 0;
}

static char *
metrics_json (const LodeSam2TuneProjectOptions *o,
              const LodeSam2TuneConfig         *c,
              const LodeSam2TuneProjectReport  *r)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "input_size");
  json_builder_add_int_value (b, o->input_size);
  json_builder_set_member_name (b, "steps");
  json_builder_add_int_value (b, r->result.steps_done);
  lode_model_metrics_add_number (b, "lr", c->lr);
  lode_model_metrics_add_number (b, "weight_decay", c->weight_decay);
  json_builder_set_member_name (b, "seed");
  json_builder_add_int_value (b, c->seed);
  json_builder_set_member_name (b, "train_patches");
  json_builder_add_int_value (b, r->train);
  json_builder_set_member_name (b, "validation_patches");
  json_builder_add_int_value (b, r->validation);
  lode_model_metrics_add_number (b, "loss_first", r->result.first_loss);
  lode_model_metrics_add_number (b, "loss_last", r->result.last_loss);
  json_builder_set_member_name (b, "validation");
  json_builder_begin_object (b);
  lode_model_metrics_add_number (b, "iou_before", r->result.val_iou_before);
  lode_model_metrics_add_number (b, "iou_after", r->result.val_iou_after);
  json_builder_end_object (b);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  return json_generator_to_data (gen, NULL);
}

gboolean
lode_sam2_tune_project_read_metrics (const char *metrics_json,
                                     double     *iou_before,
                                     double     *iou_after)
{
  return lode_model_metrics_read_validation (metrics_json, "iou_after", TRUE, iou_after,
                                             "iou_before", iou_before);
}

gint64
lode_sam2_tune_project_run (const char                       *project,
                            const LodeSam2TuneProjectOptions *options,
                            LodeSam2EncodeProgressFunc        encode_progress,
                            LodeSam2TuneProgressFunc          progress,
                            gpointer                          user_data,
                            LodeSam2TuneProjectReport        *report,
                            GCancellable                     *cancellable,
                            GError                          **error)
{
  g_autoptr(LodeStore) store = NULL;
  g_autoptr(LodeSam2TuneProject) tp = NULL;
  g_autoptr(GFile) source_file = NULL, out_file = NULL;
  g_autofree char *name = NULL, *dir = NULL, *file = NULL, *out = NULL;
  LodeSam2TuneProjectReport local = { 0 };
  LodeSam2TuneConfig tc;

  g_return_val_if_fail (project != NULL && options != NULL && options->checkpoint != NULL, 0);

  if (report == NULL)
    report = &local;
  memset (report, 0, sizeof *report);
  store = lode_store_open (project, FALSE, error);
  if (store == NULL)
    return 0;
  tp = lode_sam2_tune_project_new (store, options->checkpoint, options->input_size, error);
  if (tp == NULL)
    return 0;
  report->train = tp->n_train;
  report->validation = tp->n_val;
  if (tp->n_train == 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   _("The project “%s” has no training patch with a class region"), project);
      return 0;
    }

  name = options->name ? g_strdup (options->name) : lode_model_metrics_default_name (store, "sam2");
  dir = g_strconcat (lode_store_get_path (store), "-models", NULL);
  file = g_strconcat (name, ".safetensors", NULL);
  out = g_build_filename (dir, file, NULL);
  source_file = g_file_new_for_path (options->checkpoint);
  out_file = g_file_new_for_path (out);
  if (g_file_equal (source_file, out_file))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                   _("The fine-tuned model would overwrite its source checkpoint “%s”; choose another name"),
                   options->checkpoint);
      return 0;
    }

  if (!lode_sam2_tune_project_encode (tp, encode_progress, user_data, cancellable, error))
    return 0;
  tc = options->tune;
  if (tc.steps <= 0)
    tc.steps = 10 * (int) tp->n_train;
  if (!lode_sam2_tune_run (tp->tuner, &tc, &tp->source, progress, user_data, cancellable, &report->result, error))
    return 0;

  if (g_mkdir_with_parents (dir, 0755) != 0)
    {
      int errsv = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                   _("The folder “%s” cannot be made: %s"), dir, g_strerror (errsv));
      return 0;
    }
  if (!lode_sam2_tuner_save (tp->tuner, options->checkpoint, out, error))
    return 0;
  return lode_sam2_tune_project_record (store, name, out, options->input_size, &tc, report, error);
}

gint64
lode_sam2_tune_project_record (LodeStore                       *store,
                               const char                      *name,
                               const char                      *path,
                               int                              input_size,
                               const LodeSam2TuneConfig        *tune,
                               const LodeSam2TuneProjectReport *report,
                               GError                         **error)
{
  g_autofree char *made_up = NULL, *json = NULL, *stored = NULL;
  LodeSam2TuneProjectOptions o;

  g_return_val_if_fail (store != NULL && path != NULL && tune != NULL && report != NULL, 0);

  if (name == NULL)
    name = made_up = lode_model_metrics_default_name (store, "sam2");
  lode_sam2_tune_project_options_init (&o);
  o.input_size = input_size;
  json = metrics_json (&o, tune, report);
  stored = lode_store_relative_path (store, path);
  return lode_store_add_model_version (store, LODE_MODEL_SAM2, name, stored, json, 0, error);
}
