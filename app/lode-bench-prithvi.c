#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <stdio.h>
#include <string.h>

#include <glib/gi18n.h>

#include "lode-commands.h"
#include "lode-ops.h"
#include "lode-prithvi.h"

/* "lode bench prithvi": images per second of the Prithvi-EO-2.0 + UperNet
 * segmenter on generated patches, and the peak memory of the process
 * (VmHWM, reset before building the model where the kernel allows it).
 * Weights are generated unless --checkpoint names a file. */

static gsize
peak_kib (void)
{
  g_autofree char *status = NULL;
  const char *line;

  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL))
    return 0;
  line = strstr (status, "VmHWM:");
  return line ? (gsize) g_ascii_strtoull (line + 6, NULL, 10) : 0;
}

static void
reset_peak (void)
{
  FILE *f = fopen ("/proc/self/clear_refs", "w");

  if (f != NULL)
    {
      fputs ("5", f);
      fclose (f);
    }
}

static gboolean
parse_blocks (const char *text, int blocks[4])
{
  g_auto(GStrv) parts = g_strsplit (text, ",", -1);

  if (g_strv_length (parts) != 4)
    return FALSE;
  for (int i = 0; i < 4; i++)
    {
      char *end;
      gint64 v = g_ascii_strtoll (parts[i], &end, 10);

      if (end == parts[i] || *end != '\0' || v < 0 || v > 255)
        return FALSE;
      blocks[i] = (int) v;
    }
  return TRUE;
}

static LodePrithviModel *
make_model (const char *size, const char *checkpoint, const char *decoder, const int blocks[4], int classes,
            gboolean custom_blocks, LodeDeviceKind device, GError **error)
{
  LodePrithviConfig config;
  LodeUpernetConfig dconfig;
  LodePrithviEncoder *encoder;
  LodeUpernet *upernet;
  int deepest = 0;

  if (checkpoint != NULL)
    {
      LodePrithviOptions options;
      g_autoptr(LodePrithviModel) model = NULL;

      lode_prithvi_options_init (&options);
      if (custom_blocks)
        memcpy (options.feature_blocks, blocks, sizeof options.feature_blocks);
      if (decoder != NULL)
        return lode_prithvi_model_new_from_checkpoint_on (checkpoint, decoder, &options, device, error);
      model = lode_prithvi_model_new_with_decoder (checkpoint, classes, 0, 1, &options, error);
      if (model == NULL || !lode_prithvi_model_use_device (model, device, error))
        return NULL;
      return g_steal_pointer (&model);
    }
  if (g_ascii_strcasecmp (size, "reduced") == 0)
    {
      lode_prithvi_config_init (&config, "300M");
      config.embed_dim = 64, config.depth = 4, config.num_heads = 4, config.mlp_hidden = 256;
      config.size_name = "reduced";
    }
  else if (!lode_prithvi_config_init (&config, size))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("unknown model size “%s” (reduced, 100M, 300M, 600M or tiny)"), size);
      return NULL;
    }
  if (custom_blocks)
    memcpy (config.feature_blocks, blocks, sizeof config.feature_blocks);
  for (int i = 0; i < 4; i++)
    deepest = MAX (deepest, config.feature_blocks[i]);
  /* only the blocks the decoder reads run, as when loading a checkpoint */
  config.loaded_depth = MIN (deepest + 1, config.depth);
  encoder = lode_prithvi_encoder_new (&config, 1, error);
  if (encoder == NULL)
    return NULL;
  dconfig.embed_dim = config.embed_dim;
  dconfig.channels = g_ascii_strcasecmp (size, "reduced") == 0 ? 32 : 256;
  dconfig.classes = classes;
  upernet = lode_upernet_new (&dconfig, 2, error);
  if (upernet == NULL)
    {
      lode_prithvi_encoder_free (encoder);
      return NULL;
    }
  return lode_prithvi_model_new_on (encoder, upernet, device, error);
}

int
lode_bench_prithvi (int argc, char **argv)
{
  g_autofree char *model_size = NULL;
  g_autofree char *checkpoint = NULL;
  g_autofree char *decoder = NULL;
  g_autofree char *blocks_text = NULL;
  g_autofree char *device_name = NULL, *precision = NULL;
  LodeDeviceKind device;
  LodePrecision arithmetic;
  int batch = 4, size = 128, repeat = 3, classes = 2, threads = 0, unfreeze = 0;
  gboolean train = FALSE;
  int blocks[4] = { 0, 1, 2, 3 };
  const GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_STRING, &model_size, N_("Generated model: reduced, 100M, 300M (default), 600M or tiny"), N_("SIZE") },
    { "checkpoint", 0, 0, G_OPTION_ARG_FILENAME, &checkpoint, N_("Encoder checkpoint to load instead (e.g. Prithvi_EO_V2_300M.pt)"), N_("FILE") },
    { "decoder", 0, 0, G_OPTION_ARG_FILENAME, &decoder, N_("UperNet decoder checkpoint (default: a new decoder)"), N_("FILE") },
    { "batch", 'b', 0, G_OPTION_ARG_INT, &batch, N_("Patches per batch (default 4)"), N_("N") },
    { "size", 0, 0, G_OPTION_ARG_INT, &size, N_("Patch width and height (default 128)"), N_("PIXELS") },
    { "repeat", 'r', 0, G_OPTION_ARG_INT, &repeat, N_("Timed batches after one warm-up batch (default 3)"), N_("N") },
    { "threads", 0, 0, G_OPTION_ARG_INT, &threads, N_("CPU threads (default: one per core)"), N_("N") },
    { "train", 0, 0, G_OPTION_ARG_NONE, &train, N_("Time decoder training steps (the recipe's) instead of prediction"), NULL },
    { "unfreeze-blocks", 0, 0, G_OPTION_ARG_INT, &unfreeze, N_("With --train, also train the last N encoder blocks feeding the decoder (default 0)"), N_("N") },
    { "blocks", 0, 0, G_OPTION_ARG_STRING, &blocks_text, N_("Encoder blocks feeding the decoder (default 0,1,2,3 as the recipe)"), N_("A,B,C,D") },
    { "device", 0, 0, G_OPTION_ARG_STRING, &device_name, N_("Run on cpu (default), cuda or auto"), N_("DEVICE") },
    { "precision", 0, 0, G_OPTION_ARG_STRING, &precision, N_("On CUDA: fp32 (default), tf32 or bf16 (mixed precision)"), N_("MODE") },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodePrithviModel) model = NULL;
  g_autofree float *raw = NULL;
  g_autofree guint8 *masks = NULL;
  const LodePrithviConfig *c;
  gsize base_kib, weights_kib;
  g_autofree char *mode = NULL;
  gint64 start, total = 0;

  g_option_context_set_summary (context,
    _("Time Prithvi-EO-2.0 with the UperNet decoder on generated 6-band patches:\n"
      "images per second of batch prediction (normalisation, encoder, decoder,\n"
      "upsampling, arg max) or, with --train, of decoder training steps (the\n"
      "encoder frozen, or its last blocks trained with --unfreeze-blocks), and\n"
      "the peak memory of the process."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!lode_cli_parse (context, &argc, &argv))
    return LODE_EXIT_USAGE;
  if (train && batch < 2)
    {
      lode_cli_error ("bench", _("--train needs --batch of at least 2"));
      return LODE_EXIT_USAGE;
    }
  if (unfreeze != 0 && !train)
    {
      lode_cli_error ("bench", _("--unfreeze-blocks needs --train"));
      return LODE_EXIT_USAGE;
    }
  if (batch < 1 || batch > 256 || size < 32 || size > 2048 || repeat < 1 || repeat > 1000)
    {
      lode_cli_error ("bench", _("--batch must be 1-256, --size 32-2048 and --repeat 1-1000"));
      return LODE_EXIT_USAGE;
    }
  if (blocks_text != NULL && !parse_blocks (blocks_text, blocks))
    {
      lode_cli_error ("bench", _("--blocks takes four block numbers, e.g. 5,11,17,23"));
      return LODE_EXIT_USAGE;
    }

  if (!lode_precision_parse (precision, &arithmetic))
    {
      lode_cli_error ("bench", _("--precision must be fp32, tf32 or bf16, not “%s”"), precision);
      return LODE_EXIT_USAGE;
    }
  device = lode_device_choose (device_name != NULL ? device_name : "cpu", &error);
  if (error != NULL)
    {
      lode_cli_error ("bench", "%s", error->message);
      return error->code == LODE_DEVICE_ERROR_UNKNOWN ? LODE_EXIT_USAGE : LODE_EXIT_FAILURE;
    }

  if (threads > 0)
    lode_ops_cpu_set_threads (threads);
  reset_peak ();
  base_kib = peak_kib ();
  model = make_model (model_size != NULL ? model_size : "300M", checkpoint, decoder, blocks, classes, blocks_text != NULL, device, &error);
  if (model == NULL)
    {
      lode_cli_error ("bench", "%s", error->message);
      return error->domain == G_OPTION_ERROR ? LODE_EXIT_USAGE : LODE_EXIT_FAILURE;
    }
  if (!lode_prithvi_model_set_precision (model, arithmetic, &error))
    {
      lode_cli_error ("bench", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }
  weights_kib = peak_kib () - base_kib;
  c = lode_prithvi_encoder_get_config (lode_prithvi_model_get_encoder (model));
  if (!lode_prithvi_model_check_unfreeze (model, unfreeze, &error))
    {
      lode_cli_error ("bench", "%s", error->message);
      return LODE_EXIT_USAGE;
    }

  raw = g_new (float, (gsize) batch * LODE_PRITHVI_N_BANDS * size * size);
  masks = g_new (guint8, (gsize) batch * size * size);
  for (gsize i = 0; i < (gsize) batch * LODE_PRITHVI_N_BANDS * size * size; i++)
    {
      int band = (int) ((i / ((gsize) size * size)) % LODE_PRITHVI_N_BANDS);

      raw[i] = (float) (lode_prithvi_band_mean[band]
                        + lode_prithvi_band_std[band] * (((i * 2654435761u) & 0xFFFF) / 32768.0 - 1.0));
    }
  for (gsize i = 0; i < (gsize) batch * size * size; i++)
    masks[i] = (guint8) ((i / 7) % classes);
  mode = g_strdup_printf (_("training of the decoder and %d encoder blocks"), unfreeze);
  for (int r = 0; r <= repeat; r++)
    {
      LodePrithviTrainOptions options;
      gboolean ok;

      lode_prithvi_train_options_init (&options);
      options.unfreeze_blocks = unfreeze;
      start = g_get_monotonic_time ();
      if (train)
        ok = lode_prithvi_model_train_step (model, &options, raw, masks, batch, LODE_PRITHVI_N_BANDS, size, size,
                                            NULL, r, NULL, &error);
      else
        ok = lode_prithvi_model_predict (model, raw, batch, LODE_PRITHVI_N_BANDS, size, size, NULL, NULL, masks, NULL,
                                         &error);
      if (!ok)
        {
          lode_cli_error ("bench", "%s", error->message);
          return LODE_EXIT_FAILURE;
        }
      if (r > 0)
        total += g_get_monotonic_time () - start;
    }
  g_print (_("Prithvi-EO-2.0 %s + UperNet, %s, blocks %d,%d,%d,%d (%d of %d run), batch %d of %d x %d: "
             "%.2f images/s (%.1f ms per image, mean of %d batches after a warm-up)\n"),
           c->size_name, !train ? _("prediction") : unfreeze > 0 ? mode : _("decoder training"), c->feature_blocks[0], c->feature_blocks[1], c->feature_blocks[2], c->feature_blocks[3],
           c->loaded_depth, c->depth, batch, size, size,
           (double) batch * repeat / (total / 1e6), total / 1e3 / ((double) batch * repeat), repeat);
  g_print (_("Peak memory: %.0f MiB (weights %.0f MiB); CPU threads: %d\n"), peak_kib () / 1024.0,
           weights_kib / 1024.0, lode_ops_cpu_threads ());
  {
    g_autofree char *where = lode_device_describe (device);

    g_print (_("Device: %s, %s arithmetic\n"), where,
             lode_precision_name (device == LODE_DEVICE_CUDA ? arithmetic : LODE_PRECISION_FP32));
  }
  return LODE_EXIT_OK;
}
