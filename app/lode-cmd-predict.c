/* lode predict: a trained U-Net's mask for one patch. */
#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "lode-commands.h"
#include "lode-prelabel.h"
#include "lode-raster.h"
#include "lode-train.h"

int
lode_cmd_predict (int argc, char **argv)
{
  g_autofree char *model = NULL, *image = NULL, *out = NULL;
  g_autoptr(GError) error = NULL;
  const GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model, N_("Checkpoint written by lode train"), N_("FILE") },
    { "image", 'i', 0, G_OPTION_ARG_FILENAME, &image, N_("Patch to segment (GeoTIFF)"), N_("TIF") },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out, N_("Mask to write (class indices, 255 where there is no data)"), N_("MASK.tif") },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (NULL);
  g_autoptr(LodeUnet) net = NULL;
  g_autoptr(LodeRaster) raster = NULL;
  g_autofree guint8 *mask = NULL;
  g_autofree gint64 *counts = NULL;
  LodeTrainConfig config;

  g_option_context_set_summary (context,
    _("Segment a patch with a U-Net trained by “lode train unet” and write the\n"
      "class of each pixel as a GeoTIFF on the patch's grid."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!lode_cli_parse (context, &argc, &argv))
    return LODE_EXIT_USAGE;
  if (model == NULL || image == NULL || out == NULL || argc > 1)
    {
      lode_cli_error ("predict", _("--model, --image and --out are needed"));
      return LODE_EXIT_USAGE;
    }
  net = lode_train_checkpoint_load (model, &config, NULL, NULL, NULL, &error);
  if (net == NULL || (raster = lode_raster_open (image, &error)) == NULL
      || (mask = lode_prelabel_predict (net, &config, raster, &error)) == NULL
      || !lode_cli_write_mask (out, raster, mask, &error))
    {
      lode_cli_error ("predict", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }
  counts = g_new0 (gint64, config.classes);
  for (gsize q = 0; q < (gsize) raster->width * raster->height; q++)
    if (mask[q] < config.classes)
      counts[mask[q]]++;
  g_print (_("Wrote “%s”:"), out);
  for (int k = 0; k < config.classes; k++)
    g_print (_(" class %d %" PRId64 " px"), k, counts[k]);
  g_print ("\n");
  return LODE_EXIT_OK;
}
