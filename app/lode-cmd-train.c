/* lode train unet: trains a U-Net on a folder in the SmallMinesDS layout,
 * or on a project's patches (--project, through lode-train-project).
 * lode train prithvi: trains the UperNet decoder of a Prithvi-EO-2.0
 * segmenter (the encoder frozen, as published, or its last blocks trained
 * too with --unfreeze-blocks) on the same data.
 *
 * Joins annotate/ (the patches and masks are read through GDAL with
 * lode-raster) and model/ (lode-train's job, fed by callbacks). */
#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "lode-commands.h"
#include "lode-device.h"
#include "lode-prithvi-patch.h"
#include "lode-prithvi.h"
#include "lode-raster.h"
#include "lode-store.h"
#include "lode-train-project.h"
#include "lode-train.h"

typedef struct {
  char *image, *mask;
  gboolean has_coords;      /* coords read (once, for a -TL model) */
  LodeTrainCoords coords;
} Sample;

typedef struct {
  GArray *split[2];   /* Sample, by LodeTrainSplit */
  const LodeTrainConfig *config;
  int size;
  int day_of_year;    /* for the -TL encodings */
} Data;

static void
sample_clear (gpointer p)
{
  Sample *s = p;
  g_free (s->image);
  g_free (s->mask);
}

/* "TTTT_YYYY" from IMG_GH_TTTT_YYYY.tif, MASK_TTTT_YYYY.tif, ... */
static char *
tile_key (const char *file_name)
{
  g_autofree char *base = g_strdup (file_name);
  char *dot = strrchr (base, '.'), *last, *prev;

  if (dot)
    *dot = '\0';
  last = strrchr (base, '_');
  if (last == NULL)
    return NULL;
  *last = '\0';
  prev = strrchr (base, '_');
  if (prev == NULL)
    return NULL;
  *last = '_';
  return g_strdup (prev + 1);
}

/* The official split of each patch: key -> "train" / "test". */
static void
read_splits (const char *dir,
             GHashTable *splits)
{
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;

  while (d != NULL && (name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *path = NULL, *text = NULL;
      g_auto(GStrv) lines = NULL;

      if (!g_str_has_prefix (name, "train_test_splits_") || !g_str_has_suffix (name, ".csv"))
        continue;
      path = g_build_filename (dir, name, NULL);
      if (!g_file_get_contents (path, &text, NULL, NULL))
        continue;
      lines = g_strsplit (text, "\n", -1);
      for (char **l = lines; *l != NULL; l++)
        {
          g_auto(GStrv) f = g_strsplit (g_strstrip (*l), ",", -1);
          guint nf = g_strv_length (f);
          char *key;

          if (nf < 2 || g_str_equal (f[0], "patch_name"))
            continue;
          key = tile_key (f[0]);
          if (key != NULL)
            g_hash_table_insert (splits, key, g_strdup (f[nf - 1]));
        }
    }
}

static gboolean
collect (Data       *data,
         const char *dir,
         const char *year,
         GError    **error)
{
  g_autofree char *root = g_build_filename (dir, "SmallMinesDS", NULL);
  g_autofree char *split_dir = NULL;
  g_autoptr(GHashTable) splits = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_autoptr(GDir) top = NULL;
  const char *y;

  if (g_file_test (root, G_FILE_TEST_IS_DIR))
    split_dir = g_build_filename (dir, "data_splits", NULL);
  else
    {
      g_free (root);
      root = g_strdup (dir);
      split_dir = g_build_filename (dir, "..", "data_splits", NULL);
      read_splits (dir, splits);
    }
  read_splits (split_dir, splits);

  top = g_dir_open (root, 0, error);
  if (top == NULL)
    return FALSE;
  while ((y = g_dir_read_name (top)) != NULL)
    {
      g_autofree char *image_dir = g_build_filename (root, y, "IMAGE", NULL);
      g_autoptr(GDir) images = NULL;
      const char *name;

      if (year != NULL && !g_str_equal (year, "all") && !g_str_equal (year, y))
        continue;
      images = g_dir_open (image_dir, 0, NULL);
      while (images != NULL && (name = g_dir_read_name (images)) != NULL)
        {
          g_autofree char *key = tile_key (name);
          g_autofree char *mask_name = NULL;
          const char *split;
          Sample s;

          if (key == NULL || !g_str_has_prefix (name, "IMG_") || !g_str_has_suffix (name, ".tif"))
            continue;
          mask_name = g_strconcat ("MASK_", name + 4, NULL);
          memset (&s, 0, sizeof s);
          s.image = g_build_filename (image_dir, name, NULL);
          s.mask = g_build_filename (root, y, "MASK", mask_name, NULL);
          if (!g_file_test (s.mask, G_FILE_TEST_EXISTS))
            {
              sample_clear (&s);
              continue;
            }
          split = g_hash_table_lookup (splits, key);
          if (split == NULL)   /* no split file: one patch in five validates */
            split = g_str_hash (key) % 5 == 0 ? "test" : "train";
          g_array_append_val (data->split[g_str_equal (split, "train") ? 0 : 1], s);
        }
    }
  if (data->split[0]->len == 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   _("No training patches in “%s” (YEAR/IMAGE/IMG_*.tif with YEAR/MASK/MASK_*.tif)"),
                   dir);
      return FALSE;
    }
  return TRUE;
}

static int
data_count (LodeTrainSplit split,
            gpointer       user_data)
{
  Data *data = user_data;
  return (int) data->split[split]->len;
}

static gboolean
data_get (LodeTrainSplit split,
          int            index,
          float         *image,
          guint8        *mask,
          gpointer       user_data,
          GError       **error)
{
  Data *data = user_data;
  const Sample *s = &g_array_index (data->split[split], Sample, index);
  const LodeTrainConfig *c = data->config;
  g_autoptr(LodeRaster) img = lode_raster_open (s->image, error);
  g_autoptr(LodeRaster) msk = NULL;
  gsize hw = (gsize) data->size * data->size;
  const float *m;

  if (img == NULL || (msk = lode_raster_open (s->mask, error)) == NULL)
    return FALSE;
  if (img->width != data->size || img->height != data->size
      || msk->width != data->size || msk->height != data->size)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   _("“%s” is %d × %d; the patches of this run are %d × %d"),
                   s->image, img->width, img->height, data->size, data->size);
      return FALSE;
    }
  for (int b = 0; b < c->bands; b++)
    {
      if (c->band_select[b] >= img->n_bands)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       _("“%s” has %d bands; band %d is needed"), s->image, img->n_bands,
                       c->band_select[b] + 1);
          return FALSE;
        }
      memcpy (image + b * hw, lode_raster_band (img, c->band_select[b]), hw * sizeof (float));
    }
  m = lode_raster_band (msk, 0);
  for (gsize q = 0; q < hw; q++)
    mask[q] = isfinite (m[q]) && m[q] >= 0 && m[q] < c->classes && img->valid[q]
              ? (guint8) m[q] : (guint8) c->ignore_index;
  return TRUE;
}

/* The date (the year in the file name) and place (the centre) of a patch,
 * read once; what cannot be known is left out with a warning. */
static gboolean
data_get_coords (LodeTrainSplit   split,
                 int              index,
                 LodeTrainCoords *coords,
                 gpointer         user_data,
                 GError         **error)
{
  Data *data = user_data;
  Sample *s = &g_array_index (data->split[split], Sample, index);

  if (!s->has_coords)
    {
      g_autoptr(LodeRaster) r = lode_raster_open_header (s->image, error);
      g_autofree char *warning = NULL;

      if (r == NULL)
        return FALSE;
      lode_prithvi_patch_coords (r, 0, data->day_of_year, &s->coords, &warning);
      if (warning != NULL)
        lode_cli_error ("train", _("warning: %s"), warning);
      s->has_coords = TRUE;
    }
  *coords = s->coords;
  return TRUE;
}

static volatile sig_atomic_t interrupted;

static void
on_sigint (int sig)
{
  interrupted = 1;
}

typedef struct {
  GCancellable *cancellable;
  gboolean quiet;
} Run;

static void
print_metrics (int epoch, double loss, const LodeTrainMetrics *m)
{
  g_print (_("epoch %d: loss %.4f, mean IoU %.4f, background IoU %.4f, mining IoU %.4f, F1 %.4f, accuracy %.4f\n"),
           epoch, loss, m->mean_iou, m->iou[0], m->iou[1], m->f1, m->accuracy);
  for (int k = 2; k < m->classes; k++)
    g_print (_("  class %d IoU %.4f\n"), k, m->iou[k]);
}

static void
on_progress (const LodeTrainProgress *p,
             gpointer                 user_data)
{
  Run *run = user_data;

  if (interrupted)
    g_cancellable_cancel (run->cancellable);
  if (!run->quiet)
    {
      g_printerr ("\r");
      g_printerr (_("step %" PRId64 "/%" PRId64 ", epoch %d/%d, loss %.4f, %.0f s left"),
                  p->step, p->total_steps, p->epoch, p->epochs, p->loss, p->seconds_left);
      g_printerr ("   ");
    }
  if (p->metrics)
    {
      if (!run->quiet)
        g_printerr ("\n");
      print_metrics (p->epoch, p->loss, p->metrics);
    }
}

static gboolean
parse_weights (const char *text, LodeTrainConfig *c)
{
  g_auto(GStrv) parts = g_strsplit (text, ",", -1);

  if (g_strv_length (parts) != (guint) c->classes)
    return FALSE;
  for (int k = 0; k < c->classes; k++)
    {
      char *end;
      double v = g_ascii_strtod (parts[k], &end);
      if (*end != '\0' || !(v >= 0))
        return FALSE;
      c->class_weights[k] = (float) v;
    }
  return TRUE;
}

/* --project: the patches of a project, the model version added to it. */
static int
train_project (const char            *project,
               const LodeTrainConfig *config,
               const char            *name,
               const char            *out,
               gboolean               accepted_only,
               gboolean               quiet)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) store = NULL;
  g_autoptr(LodeModelVersion) version = NULL;
  LodeTrainProjectOptions options;
  LodeTrainProjectCounts counts;
  Run run = { cancellable, quiet };
  gint64 id;

  lode_train_project_options_init (&options);
  options.config = *config;
  options.accepted_only = accepted_only;
  options.name = name;
  options.checkpoint = out;
  signal (SIGINT, on_sigint);
  id = lode_train_project_run (project, &options, on_progress, &run, &counts, cancellable, &error);
  signal (SIGINT, SIG_DFL);
  if (!quiet)
    g_printerr ("\n");
  if (id == 0)
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          g_print (_("Stopped; no model version was added\n"));
          return LODE_EXIT_FAILURE;
        }
      lode_cli_error ("train", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }
  store = lode_store_open (project, FALSE, &error);
  if (store != NULL)
    version = lode_store_get_model_version (store, id, &error);
  if (version == NULL)
    {
      lode_cli_error ("train", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }
  g_print (_("Trained on %u patches, validated on %u (%u left out)\n"), counts.train, counts.validation,
           counts.left_out);
  g_print (_("Added model version %" PRId64 " “%s” (%s) to “%s”\n"), id, version->name, version->path, project);
  return LODE_EXIT_OK;
}

int
lode_cmd_train (int argc, char **argv)
{
  g_autofree char *data_dir = NULL, *project = NULL, *name = NULL, *out = NULL, *encoder = NULL, *bands = NULL;
  g_autofree char *year = NULL, *weights = NULL, *class_weights = NULL, *device = NULL;
  g_autofree char *precision = NULL;
  LodeDeviceKind prithvi_device = LODE_DEVICE_CPU;
  LodePrecision arithmetic;
  int epochs = 10, batch = 4, classes = 2, unfreeze = 0, day_of_year = G_MININT;
  gint64 steps = 0, seed = 0;
  double lr = NAN, wd = 0.05, dice = 0.0;
  gboolean frozen = FALSE, no_augment = FALSE, resume = FALSE, quiet = FALSE, accepted_only = FALSE;
  g_auto(GStrv) rest = NULL;
  g_autoptr(GError) error = NULL;
  const GOptionEntry entries[] = {
    { "data", 'd', 0, G_OPTION_ARG_FILENAME, &data_dir, N_("Folder in the SmallMinesDS layout"), N_("DIR") },
    { "project", 'p', 0, G_OPTION_ARG_FILENAME, &project, N_("Train on a project's labelled patches instead, and add the model version to it"), N_("PROJECT.lode") },
    { "name", 0, 0, G_OPTION_ARG_STRING, &name, N_("Name of the model version (with --project)"), N_("NAME") },
    { "accepted-only", 0, 0, G_OPTION_ARG_NONE, &accepted_only, N_("Only the accepted patches (with --project)"), NULL },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out, N_("Checkpoint to write (default unet.lode-unet)"), N_("FILE") },
    { "encoder", 0, 0, G_OPTION_ARG_STRING, &encoder, N_("resnet18, resnet34 or resnet50 (default)"), N_("NAME") },
    { "weights", 0, 0, G_OPTION_ARG_FILENAME, &weights, N_("Start from a torchvision/timm ResNet or smp U-Net checkpoint (.pt, .safetensors); for prithvi, the encoder (Prithvi_EO_V2_300M.pt, Prithvi_EO_V2_600M.pt)"), N_("FILE") },
    { "bands", 0, 0, G_OPTION_ARG_STRING, &bands, N_("Input bands: 6 (default: B, G, R, B8A, B11, B12), 13 or rgb"), N_("SET") },
    { "year", 0, 0, G_OPTION_ARG_STRING, &year, N_("2016, 2022 or all (default)"), N_("YEAR") },
    { "classes", 0, 0, G_OPTION_ARG_INT, &classes, N_("Classes in the masks (default 2)"), N_("N") },
    { "class-weights", 0, 0, G_OPTION_ARG_STRING, &class_weights, N_("Cross-entropy weight of each class, e.g. 1,4"), N_("W,W") },
    { "dice", 0, 0, G_OPTION_ARG_DOUBLE, &dice, N_("Weight of the soft Dice loss (default 0)"), N_("W") },
    { "epochs", 'e', 0, G_OPTION_ARG_INT, &epochs, N_("Epochs (default 10)"), N_("N") },
    { "steps", 0, 0, G_OPTION_ARG_INT64, &steps, N_("Stop after N steps in all"), N_("N") },
    { "batch", 'b', 0, G_OPTION_ARG_INT, &batch, N_("Batch size (default 4)"), N_("N") },
    { "lr", 0, 0, G_OPTION_ARG_DOUBLE, &lr, N_("Learning rate (default 1e-4; 1e-3 for prithvi)"), N_("RATE") },
    { "weight-decay", 0, 0, G_OPTION_ARG_DOUBLE, &wd, N_("AdamW weight decay (default 0.05)"), N_("W") },
    { "frozen-encoder", 0, 0, G_OPTION_ARG_NONE, &frozen, N_("Train the decoder and head only (the published recipe)"), NULL },
    { "unfreeze-blocks", 0, 0, G_OPTION_ARG_INT, &unfreeze, N_("prithvi: also train the last N encoder blocks that feed the decoder (default 0: the encoder frozen)"), N_("N") },
    { "day-of-year", 0, 0, G_OPTION_ARG_INT, &day_of_year, N_("prithvi -TL models: the day of year of the patches (1-366, default 15: the January composites); each year comes from the file name, each place from the patch's centre"), N_("N") },
    { "no-augment", 0, 0, G_OPTION_ARG_NONE, &no_augment, N_("No flips or rotations"), NULL },
    { "seed", 's', 0, G_OPTION_ARG_INT64, &seed, N_("Seed (default 0)"), N_("SEED") },
    { "device", 0, 0, G_OPTION_ARG_STRING, &device, N_("cpu, cuda or auto (default)"), N_("DEVICE") },
    { "precision", 0, 0, G_OPTION_ARG_STRING, &precision, N_("On CUDA: fp32 (default), tf32 or bf16 (mixed precision)"), N_("MODE") },
    { "resume", 0, 0, G_OPTION_ARG_NONE, &resume, N_("Continue from the checkpoint in --out"), NULL },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, N_("No progress line"), NULL },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_STRING_ARRAY, &rest, NULL, N_("unet|prithvi") },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (_("unet|prithvi"));
  g_autoptr(LodePrithviModel) prithvi = NULL;
  gboolean is_prithvi;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(LodeTrainJob) job = NULL;
  LodeTrainConfig config;
  LodeTrainSource source;
  LodeTrainMetrics start;
  Data data = { 0 };
  Run run;
  LodeTrainBandSet band_set;
  int status = LODE_EXIT_FAILURE;

  if (argc >= 2 && g_str_equal (argv[1], "sam2"))
    return lode_cmd_train_sam2 (argc - 1, argv + 1);

  g_option_context_set_summary (context,
    _("Train a U-Net with a ResNet encoder on the patches and masks of a folder in\n"
      "the SmallMinesDS layout (the official split files when present, else one\n"
      "patch in five for validation). Validation metrics are printed after each\n"
      "epoch; the checkpoint is saved then, and when the run is interrupted.\n"
      "“prithvi” trains the UperNet decoder of Prithvi-EO-2.0 instead, the encoder\n"
      "given by --weights and frozen (the published recipe: cross-entropy, lr\n"
      "1e-3, weight decay 0.05, flips); the decoder is saved as safetensors.\n"
      "--unfreeze-blocks N trains the encoder's last N blocks with it (saved in\n"
      "the same file). --resume continues a run from its checkpoint in --out."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!lode_cli_parse (context, &argc, &argv))
    return LODE_EXIT_USAGE;
  if (rest == NULL || g_strv_length (rest) != 1 || (!g_str_equal (rest[0], "unet") && !g_str_equal (rest[0], "prithvi")))
    {
      lode_cli_error ("train", _("expected the model to train: unet, prithvi or sam2"));
      return LODE_EXIT_USAGE;
    }
  is_prithvi = g_str_equal (rest[0], "prithvi");
  if (is_prithvi && (weights == NULL || encoder != NULL
                     || (bands != NULL && !g_str_equal (bands, "6") && !g_str_equal (bands, "13"))))
    {
      lode_cli_error ("train", _("prithvi needs --weights (the encoder checkpoint) and takes no --encoder; "
                                 "--bands 6 or 13"));
      return LODE_EXIT_USAGE;
    }
  if (!lode_precision_parse (precision, &arithmetic))
    {
      lode_cli_error ("train", _("--precision must be fp32, tf32 or bf16, not “%s”"), precision);
      return LODE_EXIT_USAGE;
    }
  /* the U-Net's device, asked for before any data is read */
  if (!is_prithvi)
    {
      lode_device_choose (device ? device : "auto", &error);
      if (error != NULL)
        {
          lode_cli_error ("train", "%s", error->message);
          return LODE_EXIT_FAILURE;
        }
    }
  else
    {
      /* auto: CUDA when present, with or without unfrozen blocks */
      g_autoptr(GError) device_error = NULL;

      prithvi_device = lode_device_choose (device != NULL ? device : "auto", &device_error);
      if (device_error != NULL)
        {
          lode_cli_error ("train", "%s", device_error->message);
          return device_error->code == LODE_DEVICE_ERROR_UNKNOWN ? LODE_EXIT_USAGE : LODE_EXIT_FAILURE;
        }
    }
  if (unfreeze != 0 && (!is_prithvi || unfreeze < 0))
    {
      lode_cli_error ("train", _("--unfreeze-blocks takes a number of blocks, 0 or more, and is for prithvi only"));
      return LODE_EXIT_USAGE;
    }
  if (day_of_year != G_MININT && !is_prithvi)
    {
      lode_cli_error ("train", _("--day-of-year is for prithvi only"));
      return LODE_EXIT_USAGE;
    }
  if (day_of_year == G_MININT)
    day_of_year = LODE_PRITHVI_PATCH_DAY;
  if (!lode_prithvi_patch_check_day ("train", day_of_year))
    return LODE_EXIT_USAGE;
  if (isnan (lr))
    lr = is_prithvi ? 1e-3 : 1e-4;
  if ((data_dir == NULL) == (project == NULL))
    {
      lode_cli_error ("train", _("either --data DIR or --project PROJECT.lode is needed"));
      return LODE_EXIT_USAGE;
    }
  if (is_prithvi && project != NULL)
    {
      lode_cli_error ("train", _("--project trains a U-Net; train prithvi on a folder with --data"));
      return LODE_EXIT_USAGE;
    }

  lode_train_config_init (&config);
  if (encoder != NULL && !lode_unet_encoder_from_name (encoder, &config.encoder))
    {
      lode_cli_error ("train", _("--encoder must be resnet18, resnet34 or resnet50, not “%s”"), encoder);
      return LODE_EXIT_USAGE;
    }
  if (!lode_train_band_set_from_id (bands ? bands : "6", &band_set))
    {
      lode_cli_error ("train", _("--bands must be 6, 13 or rgb, not “%s”"), bands);
      return LODE_EXIT_USAGE;
    }
  lode_train_config_set_bands (&config, band_set);
  config.classes = classes;
  if (class_weights != NULL && (classes > LODE_TRAIN_MAX_CLASSES || !parse_weights (class_weights, &config)))
    {
      lode_cli_error ("train", _("--class-weights needs %d non-negative numbers, not “%s”"),
                      classes, class_weights);
      return LODE_EXIT_USAGE;
    }
  config.dice_weight = (float) dice;
  config.epochs = epochs;
  config.max_steps = steps;
  config.batch_size = batch;
  config.lr = (float) lr;
  config.weight_decay = (float) wd;
  config.frozen_encoder = frozen || is_prithvi;
  config.augment = !no_augment;
  config.seed = (guint64) seed;
  g_strlcpy (config.device, device ? device : "auto", sizeof config.device);
  g_strlcpy (config.precision, precision ? precision : "fp32", sizeof config.precision);
  if (project != NULL)
    return train_project (project, &config, name, out, accepted_only, quiet);

  data.split[0] = g_array_new (FALSE, TRUE, sizeof (Sample));
  data.split[1] = g_array_new (FALSE, TRUE, sizeof (Sample));
  g_array_set_clear_func (data.split[0], sample_clear);
  g_array_set_clear_func (data.split[1], sample_clear);
  data.config = &config;
  data.day_of_year = day_of_year;
  if (!collect (&data, data_dir, year, &error))
    goto fail;
  {
    Sample *s = &g_array_index (data.split[0], Sample, 0);
    g_autoptr(LodeRaster) first = lode_raster_open_header (s->image, &error);
    if (first == NULL)
      goto fail;
    data.size = first->width;
  }
  source = (LodeTrainSource) { data.size, data.size, data_count, data_get, &data };
  if (out == NULL)
    out = g_strdup (is_prithvi ? "prithvi-decoder.safetensors" : "unet.lode-unet");
  if (is_prithvi)
    {
      gint64 first_step = 0;
      gboolean resuming = resume && g_file_test (out, G_FILE_TEST_EXISTS);

      /* --resume: the decoder (and trained blocks) of --out, its moments
       * and step restored once the model is on its device */
      if (resuming)
        prithvi = lode_prithvi_model_new_from_checkpoint (weights, out, NULL, &error);
      else
        prithvi = lode_prithvi_model_new_with_decoder (weights, config.classes, 0, config.seed, NULL, &error);
      if (prithvi == NULL || !lode_prithvi_model_set_precision (prithvi, arithmetic, &error)
          || !lode_prithvi_model_use_device (prithvi, prithvi_device, &error))
        goto fail;
      if (!lode_prithvi_model_check_unfreeze (prithvi, unfreeze, &error))
        {
          lode_cli_error ("train", "%s", error->message);
          status = LODE_EXIT_USAGE;
          goto done;
        }
      if (resuming && lode_prithvi_model_get_classes (prithvi) != config.classes)
        {
          lode_cli_error ("train", _("“%s” has a decoder of %d classes, not %d (--classes)"), out,
                          lode_prithvi_model_get_classes (prithvi), config.classes);
          status = LODE_EXIT_USAGE;
          goto done;
        }
      if (resuming && !lode_prithvi_model_load_train_state (prithvi, out, &config, unfreeze, &first_step, &error))
        goto fail;
      g_print (_("Training the UperNet decoder of Prithvi-EO-2.0 %s on %u patches, validating on %u "
                 "(%d × %d, %d bands, %d classes)\n"),
               lode_prithvi_encoder_get_config (lode_prithvi_model_get_encoder (prithvi))->size_name,
               data.split[0]->len, data.split[1]->len, data.size, data.size, config.bands, config.classes);
      if (lode_prithvi_patch_wants_coords (prithvi))
        {
          g_autofree char *line = lode_prithvi_patch_describe (prithvi, NULL, day_of_year);

          g_print ("%s\n", line);
          source.get_coords = data_get_coords;
        }
      if (unfreeze > 0)
        {
          int last = lode_prithvi_model_get_max_unfreeze (prithvi) - 1;

          g_print (_("Encoder blocks %d to %d are trained with the decoder\n"), last - unfreeze + 1, last);
        }
      if (resuming)
        g_print (_("Resuming from “%s” after step %" PRId64 "\n"), out, first_step);
      if (data.split[1]->len > 0)
        {
          if (!lode_prithvi_model_evaluate (prithvi, &config, &source, LODE_TRAIN_SPLIT_VALIDATION, &start, NULL,
                                            &error))
            goto fail;
          print_metrics (0, NAN, &start);
        }
      run.cancellable = cancellable;
      run.quiet = quiet;
      signal (SIGINT, on_sigint);
      if (!lode_prithvi_model_train_from (prithvi, &config, unfreeze, &source, out, first_step, on_progress, &run,
                                          cancellable, &error))
        {
          if (!quiet)
            g_printerr ("\n");
          if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
            goto fail;
          g_print (_("Stopped; “%s” holds the decoder of the last step and --resume continues\n"), out);
          goto done;
        }
      if (!quiet)
        g_printerr ("\n");
      g_print (_("Wrote “%s”\n"), out);
      status = LODE_EXIT_OK;
      goto done;
    }
  job = lode_train_job_new (&config, &source, out, resume, weights, &error);
  if (job == NULL)
    goto fail;
  g_print (_("Training a %s U-Net on %u patches, validating on %u (%d × %d, %d bands, %d classes)\n"),
           lode_unet_encoder_name (config.encoder), data.split[0]->len, data.split[1]->len,
           data.size, data.size, config.bands, config.classes);
  {
    g_autofree char *where = lode_device_describe (lode_train_job_get_device (job));
    g_print (_("Running on the %s\n"), where);
  }
  if (data.split[1]->len > 0)
    {
      if (!lode_train_evaluate (lode_train_job_get_model (job), &config, &source,
                                LODE_TRAIN_SPLIT_VALIDATION, &start, NULL, &error))
        goto fail;
      print_metrics (0, NAN, &start);
    }

  run.cancellable = cancellable;
  run.quiet = quiet;
  signal (SIGINT, on_sigint);
  if (!lode_train_job_run (job, on_progress, &run, cancellable, &error))
    {
      if (!quiet)
        g_printerr ("\n");
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          g_print (_("Stopped at step %" PRId64 "; “%s” holds it and --resume continues\n"),
                   lode_train_job_get_step (job), out);
          status = LODE_EXIT_FAILURE;
          goto done;
        }
      goto fail;
    }
  if (!quiet)
    g_printerr ("\n");
  g_print (_("Wrote “%s” after %" PRId64 " steps\n"), out, lode_train_job_get_step (job));
  status = LODE_EXIT_OK;
  goto done;

fail:
  lode_cli_error ("train", "%s", error->message);
done:
  signal (SIGINT, SIG_DFL);
  g_array_unref (data.split[0]);
  g_array_unref (data.split[1]);
  return status;
}
