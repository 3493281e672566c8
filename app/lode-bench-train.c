/* lode bench train: U-Net training and inference throughput, peak memory. */
#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>
#include <math.h>
#include <stdio.h>
#include <sys/resource.h>

#include "lode-commands.h"
#include "lode-device.h"
#include "lode-grad.h"
#include "lode-unet.h"

static double
peak_mib (void)
{
  struct rusage ru;

  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;   /* KiB on Linux */
}

int
lode_bench_train (int argc, char **argv)
{
  g_autofree char *device = NULL, *encoder = NULL, *precision = NULL;
  int batch = 16, size = 128, bands = 6, classes = 2, steps = 3;
  gboolean frozen = FALSE;
  const GOptionEntry entries[] = {
    { "device", 0, 0, G_OPTION_ARG_STRING, &device, N_("cpu (default), cuda or auto"), N_("DEVICE") },
    { "precision", 0, 0, G_OPTION_ARG_STRING, &precision, N_("fp32 (default), or on CUDA tf32 or bf16 (mixed precision)"), N_("MODE") },
    { "encoder", 0, 0, G_OPTION_ARG_STRING, &encoder, N_("resnet18, resnet34 or resnet50 (default)"), N_("NAME") },
    { "batch", 'b', 0, G_OPTION_ARG_INT, &batch, N_("Batch size (default 16)"), N_("N") },
    { "size", 0, 0, G_OPTION_ARG_INT, &size, N_("Patch side, a multiple of 32 (default 128)"), N_("PIXELS") },
    { "bands", 0, 0, G_OPTION_ARG_INT, &bands, N_("Input bands (default 6)"), N_("N") },
    { "steps", 0, 0, G_OPTION_ARG_INT, &steps, N_("Timed steps after one warm-up (default 3)"), N_("N") },
    { "frozen-encoder", 0, 0, G_OPTION_ARG_NONE, &frozen, N_("Time the decoder-only recipe"), NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeUnet) net = NULL;
  g_autoptr(GRand) rand = g_rand_new_with_seed (1);
  g_autofree float *input = NULL, *logits = NULL;
  g_autofree gint16 *target = NULL;
  g_autofree char *what = NULL, *where = NULL;
  LodeUnetConfig config = { LODE_UNET_RESNET50, 6, 2 };
  LodeUnetMode mode;
  LodeDeviceKind kind;
  LodePrecision mode_precision;
  LodeAdamW opt;
  gsize hw, first;
  gint64 t0;
  double train_s = 0.0, infer_s = 0.0, loss = 0.0;

  g_option_context_set_summary (context,
    _("Time U-Net training steps (forward, loss, backward, AdamW) and inference on\n"
      "random patches, and report images per second and peak memory."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!lode_cli_parse (context, &argc, &argv))
    return LODE_EXIT_USAGE;
  if (encoder != NULL && !lode_unet_encoder_from_name (encoder, &config.encoder))
    {
      lode_cli_error ("bench train", _("--encoder must be resnet18, resnet34 or resnet50, not “%s”"), encoder);
      return LODE_EXIT_USAGE;
    }
  if (batch < 1 || steps < 1 || bands < 1 || size < 32 || size % 32 != 0)
    {
      lode_cli_error ("bench train", _("--batch, --steps and --bands must be positive and --size a multiple of 32"));
      return LODE_EXIT_USAGE;
    }
  if (!lode_precision_parse (precision, &mode_precision))
    {
      lode_cli_error ("bench train", _("--precision must be fp32, tf32 or bf16, not “%s”"), precision);
      return LODE_EXIT_USAGE;
    }
  kind = lode_device_choose (device ? device : "cpu", &error);
  if (error != NULL)
    {
      lode_cli_error ("bench train", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }
  config.in_channels = bands;
  config.classes = classes;
  net = lode_unet_new_on (&config, 1, kind, &error);
  if (net == NULL)
    {
      lode_cli_error ("bench train", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }
  hw = (gsize) size * size;
  input = g_new (float, batch * bands * hw);
  logits = g_new (float, batch * classes * hw);
  target = g_new (gint16, batch * hw);
  for (gsize i = 0; i < batch * bands * hw; i++)
    input[i] = (float) g_rand_double_range (rand, -2, 2);
  for (gsize i = 0; i < batch * hw; i++)
    target[i] = (gint16) g_rand_int_range (rand, 0, classes);
  if (!lode_unet_set_precision (net, mode_precision, &error))
    {
      lode_cli_error ("bench train", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }
  lode_adamw_init_defaults (&opt);
  first = frozen ? lode_unet_encoder_params (net) : 0;
  mode = frozen ? LODE_UNET_TRAIN_DECODER : LODE_UNET_TRAIN;

  what = g_strdup_printf ("%s, %d bands, %d classes, batch %d, %d × %d, %s", lode_unet_encoder_name (config.encoder),
                          bands, classes, batch, size, size,
                          frozen ? _("frozen encoder") : _("full fine-tuning"));
  where = lode_device_describe (kind);
  g_print (_("U-Net %s on the %s, %s arithmetic\n"), what, where,
           lode_precision_name (kind == LODE_DEVICE_CUDA ? mode_precision : LODE_PRECISION_FP32));
  for (int s = 0; s <= steps; s++)
    {
      t0 = g_get_monotonic_time ();
      /* the step of the training job, on the model's device */
      if (!lode_unet_forward (net, input, batch, size, size, mode, NULL, &error)
          || !lode_unet_loss (net, target, NULL, 255, 0.0f, &loss, &error))
        goto fail;
      lode_unet_zero_grad (net);
      if (!lode_unet_backward_checked (net, NULL, &error)
          || !lode_unet_adamw_step (net, &opt, s + 1, first, &error)
          || !lode_unet_finish (net, &error))
        goto fail;
      if (s > 0)   /* the first step allocates the activations */
        train_s += (g_get_monotonic_time () - t0) / 1e6;
    }
  for (int s = 0; s <= steps; s++)
    {
      t0 = g_get_monotonic_time ();
      /* the logits come back to the host, as for prediction */
      if (!lode_unet_forward (net, input, batch, size, size, LODE_UNET_EVAL, logits, &error))
        goto fail;
      if (s > 0)
        infer_s += (g_get_monotonic_time () - t0) / 1e6;
    }
  g_print (_("training:  %.2f images/s (%.2f s a step, last loss %.4f)\n"),
           steps * batch / train_s, train_s / steps, loss);
  g_print (_("inference: %.2f images/s (%.2f s a batch)\n"), steps * batch / infer_s, infer_s / steps);
  g_print (_("peak memory: %.0f MiB\n"), peak_mib ());
  return LODE_EXIT_OK;

fail:
  lode_cli_error ("bench train", "%s", error->message);
  return LODE_EXIT_FAILURE;
}
