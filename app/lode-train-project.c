#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>
#include <errno.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#include "lode-mask.h"
#include "lode-model-metrics.h"
#include "lode-raster.h"
#include "lode-store.h"
#include "lode-bands.h"
#include "lode-train-project.h"

static const int bands_rgb[3] = { 2, 1, 0 };

const char *
lode_train_band_set_id (LodeTrainBandSet set)
{
  switch (set)
    {
    case LODE_TRAIN_BANDS_13: return "13";
    case LODE_TRAIN_BANDS_RGB: return "rgb";
    case LODE_TRAIN_BANDS_6:
    default: return "6";
    }
}

gboolean
lode_train_band_set_from_id (const char *id, LodeTrainBandSet *set)
{
  for (int s = LODE_TRAIN_BANDS_6; s <= LODE_TRAIN_BANDS_RGB; s++)
    if (g_strcmp0 (id, lode_train_band_set_id (s)) == 0)
      {
        *set = s;
        return TRUE;
      }
  return FALSE;
}

void
lode_train_config_set_bands (LodeTrainConfig *config, LodeTrainBandSet set)
{
  const int *select = set == LODE_TRAIN_BANDS_6 ? lode_band_profile_six_indices () : set == LODE_TRAIN_BANDS_RGB ? bands_rgb : NULL;
  int n = set == LODE_TRAIN_BANDS_6 ? 6 : set == LODE_TRAIN_BANDS_RGB ? 3 : 13;

  config->bands = n;
  for (int b = 0; b < n; b++)
    {
      config->band_select[b] = select ? select[b] : b;
      config->mean[b] = (float) lode_band_profile_mean (LODE_BAND_PROFILE_SMALLMINES_13)[config->band_select[b]];
      config->std[b] = (float) lode_band_profile_std (LODE_BAND_PROFILE_SMALLMINES_13)[config->band_select[b]];
    }
}

void
lode_train_project_options_init (LodeTrainProjectOptions *options)
{
  memset (options, 0, sizeof *options);
  lode_train_config_init (&options->config);
  options->config.encoder = LODE_UNET_RESNET18;
  options->config.epochs = 5;
  options->config.batch_size = 4;
  options->config.lr = 1e-3f;
  lode_train_config_set_bands (&options->config, LODE_TRAIN_BANDS_6);
}

/* ---- the samples ---------------------------------------------------------- */

typedef struct
{
  char   *image;   /* resolved path */
  guint8 *mask;    /* class indices, ignore_index where unscored */
} Sample;

typedef struct
{
  GArray                *split[2];  /* Sample, by LodeTrainSplit */
  const LodeTrainConfig *config;
  int                    width, height;
} Samples;

static void
sample_clear (gpointer p)
{
  Sample *s = p;

  g_free (s->image);
  g_free (s->mask);
}

static int
samples_count (LodeTrainSplit split, gpointer user_data)
{
  Samples *data = user_data;

  return (int) data->split[split]->len;
}

static gboolean
samples_get (LodeTrainSplit split,
             int            index,
             float         *image,
             guint8        *mask,
             gpointer       user_data,
             GError       **error)
{
  Samples *data = user_data;
  const Sample *s = &g_array_index (data->split[split], Sample, index);
  const LodeTrainConfig *c = data->config;
  gsize hw = (gsize) data->width * data->height;
  g_autoptr(LodeRaster) r = lode_raster_open (s->image, error);

  if (r == NULL)
    return FALSE;
  if (r->width != data->width || r->height != data->height)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   _("“%s” is %d × %d; the patches of this run are %d × %d"),
                   s->image, r->width, r->height, data->width, data->height);
      return FALSE;
    }
  for (int b = 0; b < c->bands; b++)
    {
      if (c->band_select[b] >= r->n_bands)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       _("“%s” has %d bands; band %d is needed"), s->image, r->n_bands,
                       c->band_select[b] + 1);
          return FALSE;
        }
      memcpy (image + b * hw, lode_raster_band (r, c->band_select[b]), hw * sizeof (float));
    }
  for (gsize q = 0; q < hw; q++)
    mask[q] = r->valid[q] ? s->mask[q] : (guint8) c->ignore_index;
  return TRUE;
}

/* The patches of the project as samples: the latest mask of each, its ids
 * turned into indices of the class table's order. */
static gboolean
gather (LodeStore                     *store,
        const LodeClassTable          *table,
        const LodeTrainProjectOptions *options,
        Samples                       *data,
        LodeTrainProjectCounts        *counts,
        GCancellable                  *cancellable,
        GError                       **error)
{
  g_autoptr(GPtrArray) patches = lode_store_list_patches (store, error);
  guint8 index_of[256];

  if (patches == NULL)
    return FALSE;
  memset (index_of, data->config->ignore_index, sizeof index_of);
  for (guint k = 0; k < lode_class_table_size (table); k++)
    index_of[lode_class_table_get (table, k)->id] = (guint8) k;

  for (guint i = 0; i < patches->len; i++)
    {
      const LodePatch *p = g_ptr_array_index (patches, i);
      g_autoptr(GBytes) blob = NULL;
      g_autoptr(LodeMask) mask = NULL;
      g_autoptr(GError) local = NULL;
      LodeTrainSplit split;
      Sample s;
      gsize hw;

      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return FALSE;
      if (g_strcmp0 (p->split, "train") == 0)
        split = LODE_TRAIN_SPLIT_TRAIN;
      else if (g_strcmp0 (p->split, "test") == 0)
        split = LODE_TRAIN_SPLIT_VALIDATION;
      else
        {
          counts->left_out++;
          continue;
        }
      if (p->odd_reason != NULL || (options->accepted_only && p->state != LODE_REVIEW_ACCEPTED))
        {
          counts->left_out++;
          continue;
        }
      blob = lode_store_get_mask (store, p->id, 0, NULL, &local);
      if (local != NULL)
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
      if (blob == NULL)
        {
          counts->left_out++;
          continue;
        }
      mask = lode_mask_deserialize (blob, error);
      if (mask == NULL)
        {
          g_prefix_error (error, _("The mask of tile %s of %d: "), p->tile_id, p->year);
          return FALSE;
        }
      /* The run's size is that of the first patch the network can take. */
      if (mask->width % 32 != 0 || mask->height % 32 != 0)
        {
          counts->left_out++;
          continue;
        }
      if (data->width == 0)
        {
          data->width = mask->width;
          data->height = mask->height;
        }
      if (mask->width != data->width || mask->height != data->height)
        {
          counts->left_out++;
          continue;
        }
      hw = (gsize) mask->width * mask->height;
      s.image = lode_store_resolve_path (store, p->image_path);
      s.mask = g_new (guint8, hw);
      for (gsize q = 0; q < hw; q++)
        s.mask[q] = index_of[mask->data[q]];
      g_array_append_val (data->split[split], s);
      if (split == LODE_TRAIN_SPLIT_TRAIN)
        counts->train++;
      else
        counts->validation++;
    }
  if (data->split[LODE_TRAIN_SPLIT_TRAIN]->len == 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   _("The project “%s” has no labelled patch in the training split whose sides are "
                     "multiples of 32"), lode_store_get_path (store));
      return FALSE;
    }
  return TRUE;
}

/* ---- the metrics JSON ----------------------------------------------------- */

typedef struct
{
  LodeTrainProgressFunc  progress;
  gpointer               user_data;
  GArray                *history;   /* double[4]: epoch, loss, mean IoU, mining IoU */
} Relay;

static void
on_progress (const LodeTrainProgress *p, gpointer user_data)
{
  Relay *relay = user_data;

  if (p->metrics != NULL)
    {
      double row[4] = { p->epoch, p->loss, p->metrics->mean_iou,
                        p->metrics->classes > 1 ? p->metrics->iou[1] : NAN };
      g_array_append_vals (relay->history, row, 4);
    }
  if (relay->progress != NULL)
    relay->progress (p, relay->user_data);
}

static char *
metrics_json (const LodeTrainConfig  *c,
              LodeTrainBandSet        set,
              const LodeClassTable   *table,
              const LodeTrainMetrics *m,
              gint64                  steps,
              GArray                 *history)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "encoder");
  json_builder_add_string_value (b, lode_unet_encoder_name (c->encoder));
  json_builder_set_member_name (b, "bands");
  json_builder_add_int_value (b, c->bands);
  json_builder_set_member_name (b, "band_set");
  json_builder_add_string_value (b, lode_train_band_set_id (set));
  json_builder_set_member_name (b, "classes");
  json_builder_add_int_value (b, c->classes);
  json_builder_set_member_name (b, "class_ids");
  json_builder_begin_array (b);
  for (guint k = 0; k < lode_class_table_size (table); k++)
    json_builder_add_int_value (b, lode_class_table_get (table, k)->id);
  json_builder_end_array (b);
  json_builder_set_member_name (b, "epochs");
  json_builder_add_int_value (b, c->epochs);
  json_builder_set_member_name (b, "steps");
  json_builder_add_int_value (b, steps);
  json_builder_set_member_name (b, "frozen_encoder");
  json_builder_add_boolean_value (b, c->frozen_encoder);
  lode_model_metrics_add_number (b, "lr", c->lr);
  if (m != NULL)
    {
      json_builder_set_member_name (b, "validation");
      json_builder_begin_object (b);
      lode_model_metrics_add_number (b, "mean_iou", m->mean_iou);
      lode_model_metrics_add_number (b, "mining_iou", m->classes > 1 ? m->iou[1] : NAN);
      lode_model_metrics_add_number (b, "f1", m->f1);
      lode_model_metrics_add_number (b, "accuracy", m->accuracy);
      json_builder_set_member_name (b, "iou");
      json_builder_begin_array (b);
      for (int k = 0; k < m->classes; k++)
        if (isfinite (m->iou[k]))
          json_builder_add_double_value (b, m->iou[k]);
        else
          json_builder_add_null_value (b);
      json_builder_end_array (b);
      json_builder_end_object (b);
    }
  json_builder_set_member_name (b, "history");
  json_builder_begin_array (b);
  for (guint i = 0; i + 3 < history->len; i += 4)
    {
      const double *row = &g_array_index (history, double, i);
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "epoch");
      json_builder_add_int_value (b, (gint64) row[0]);
      lode_model_metrics_add_number (b, "loss", row[1]);
      lode_model_metrics_add_number (b, "mean_iou", row[2]);
      lode_model_metrics_add_number (b, "mining_iou", row[3]);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  return json_generator_to_data (gen, NULL);
}

gboolean
lode_train_project_read_metrics (const char *metrics_json,
                                 double     *mining_iou,
                                 double     *mean_iou)
{
  return lode_model_metrics_read_validation (metrics_json, "mining_iou", FALSE, mining_iou,
                                             "mean_iou", mean_iou);
}

/* ---- the run -------------------------------------------------------------- */

gint64
lode_train_project_run (const char                    *project,
                        const LodeTrainProjectOptions *options,
                        LodeTrainProgressFunc          progress,
                        gpointer                       user_data,
                        LodeTrainProjectCounts        *counts,
                        GCancellable                  *cancellable,
                        GError                       **error)
{
  g_autoptr(LodeStore) store = NULL;
  g_autoptr(LodeClassTable) table = NULL;
  g_autoptr(LodeTrainJob) job = NULL;
  g_autoptr(GArray) history = g_array_new (FALSE, FALSE, sizeof (double));
  g_autofree char *table_json = NULL, *name = NULL, *checkpoint = NULL, *stored = NULL, *json = NULL;
  g_autofree char *dir = NULL;
  LodeTrainProjectCounts local_counts = { 0 };
  LodeTrainConfig config;
  LodeTrainSource source;
  LodeTrainBandSet set = LODE_TRAIN_BANDS_13;
  Samples data = { 0 };
  Relay relay = { progress, user_data, history };
  gint64 id = 0;

  g_return_val_if_fail (project != NULL && options != NULL, 0);

  if (counts == NULL)
    counts = &local_counts;
  memset (counts, 0, sizeof *counts);
  config = options->config;
  for (int s = LODE_TRAIN_BANDS_6; s <= LODE_TRAIN_BANDS_RGB; s++)
    {
      LodeTrainConfig probe = config;
      lode_train_config_set_bands (&probe, s);
      if (probe.bands == config.bands
          && memcmp (probe.band_select, config.band_select, config.bands * sizeof (int)) == 0)
        set = s;
    }

  store = lode_store_open (project, FALSE, error);
  if (store == NULL)
    return 0;
  table_json = lode_store_get_class_table_json (store);
  table = table_json ? lode_class_table_from_json (table_json, error) : lode_class_table_new_binary ();
  if (table == NULL)
    return 0;
  if (lode_class_table_size (table) < 2 || lode_class_table_size (table) > LODE_TRAIN_MAX_CLASSES)
    {
      g_set_error (error, LODE_TRAIN_ERROR, LODE_TRAIN_ERROR_CONFIG,
                   _("The project “%s” has %u classes; training needs 2 to %d"), project,
                   lode_class_table_size (table), LODE_TRAIN_MAX_CLASSES);
      return 0;
    }
  config.classes = (int) lode_class_table_size (table);

  data.split[0] = g_array_new (FALSE, TRUE, sizeof (Sample));
  data.split[1] = g_array_new (FALSE, TRUE, sizeof (Sample));
  g_array_set_clear_func (data.split[0], sample_clear);
  g_array_set_clear_func (data.split[1], sample_clear);
  data.config = &config;
  if (!gather (store, table, options, &data, counts, cancellable, error))
    goto out;

  if (options->name != NULL)
    name = g_strdup (options->name);
  else
    {
      g_autofree char *prefix = g_strdup_printf ("unet-%s", lode_unet_encoder_name (config.encoder));

      name = lode_model_metrics_default_name (store, prefix);
    }
  if (options->checkpoint != NULL)
    checkpoint = g_strdup (options->checkpoint);
  else
    {
      g_autofree char *file = g_strconcat (name, ".lode-unet", NULL);
      dir = g_strconcat (lode_store_get_path (store), "-models", NULL);
      if (g_mkdir_with_parents (dir, 0755) != 0)
        {
          int errsv = errno;
          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                       _("The folder “%s” cannot be made: %s"), dir, g_strerror (errsv));
          goto out;
        }
      checkpoint = g_build_filename (dir, file, NULL);
    }

  source = (LodeTrainSource) { data.height, data.width, samples_count, samples_get, &data };
  job = lode_train_job_new (&config, &source, checkpoint, FALSE, NULL, error);
  if (job == NULL || !lode_train_job_run (job, on_progress, &relay, cancellable, error))
    goto out;

  json = metrics_json (&config, set, table, lode_train_job_get_metrics (job),
                       lode_train_job_get_step (job), history);
  stored = lode_store_relative_path (store, checkpoint);
  id = lode_store_add_model_version (store, LODE_MODEL_UNET, name, stored, json, 0, error);

out:
  g_array_unref (data.split[0]);
  g_array_unref (data.split[1]);
  return id;
}
