/* lode predict: a trained U-Net's or Prithvi segmenter's mask for one patch. */
#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lode-commands.h"
#include "lode-prelabel.h"
#include "lode-prithvi-patch.h"
#include "lode-prithvi.h"
#include "lode-raster.h"
#include "lode-train.h"

/* The Prithvi segmenter's classes (255 where the image has no data), with
 * the patch's date and place for a -TL model. */
static guint8 *
predict_prithvi (LodePrithviModel *model, const LodeRaster *r, int day_of_year, GError **error)
{
  guint8 *mask = g_new (guint8, (gsize) r->width * r->height);
  LodeTrainCoords coords;
  gboolean tl = lode_prithvi_patch_wants_coords (model);

  if (tl)
    {
      g_autofree char *warning = NULL, *line = NULL;

      lode_prithvi_patch_coords (r, 0, day_of_year, &coords, &warning);
      if (warning != NULL)
        lode_cli_error ("predict", _("warning: %s"), warning);
      line = lode_prithvi_patch_describe (model, &coords, day_of_year);
      g_print ("%s\n", line);
    }
  if (!lode_prithvi_patch_predict (model, r, tl ? &coords : NULL, NULL, mask, error))
    g_clear_pointer (&mask, g_free);
  return mask;
}

/* TRUE when path is a checkpoint of lode train unet. */
static gboolean
is_unet_checkpoint (const char *path)
{
  char head[8] = { 0 };
  FILE *f = fopen (path, "rb");
  gboolean yes;

  if (f == NULL)
    return TRUE;   /* let the U-Net loader say what is wrong */
  yes = fread (head, 1, sizeof head, f) == sizeof head && memcmp (head, "LODEUNET", 8) == 0;
  fclose (f);
  return yes;
}

int
lode_cmd_predict (int argc, char **argv)
{
  g_autofree char *model = NULL, *image = NULL, *out = NULL, *encoder = NULL, *device_name = NULL;
  LodeDeviceKind device;
  g_autoptr(GError) error = NULL;
  int day_of_year = LODE_PRITHVI_PATCH_DAY;
  const GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model, N_("Checkpoint written by lode train, or a fine-tuned Prithvi (TerraTorch) checkpoint"), N_("FILE") },
    { "encoder", 0, 0, G_OPTION_ARG_FILENAME, &encoder, N_("Prithvi encoder checkpoint (Prithvi_EO_V2_300M.pt) for a decoder written by “lode train prithvi”"), N_("FILE") },
    { "image", 'i', 0, G_OPTION_ARG_FILENAME, &image, N_("Patch to segment (GeoTIFF)"), N_("TIF") },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out, N_("Mask to write (class indices, 255 where there is no data)"), N_("MASK.tif") },
    { "device", 0, 0, G_OPTION_ARG_STRING, &device_name, N_("Prithvi models: run on cpu, cuda or auto (default: CUDA when present)"), N_("DEVICE") },
    { "day-of-year", 0, 0, G_OPTION_ARG_INT, &day_of_year, N_("Prithvi -TL models: the day of year of the patch (1-366, default 15: the January composites); the year comes from the file name, the place from the patch's centre"), N_("N") },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (NULL);
  g_autoptr(LodeUnet) net = NULL;
  g_autoptr(LodePrithviModel) prithvi = NULL;
  g_autoptr(LodeRaster) raster = NULL;
  g_autofree guint8 *mask = NULL;
  g_autofree gint64 *counts = NULL;
  LodeTrainConfig config;

  g_option_context_set_summary (context,
    _("Segment a patch with a U-Net trained by “lode train unet”, or a Prithvi-EO-2.0\n"
      "segmenter (--encoder with the decoder of “lode train prithvi”, or a\n"
      "fine-tuned TerraTorch checkpoint), and write the class of each pixel as a\n"
      "GeoTIFF on the patch's grid."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!lode_cli_parse (context, &argc, &argv))
    return LODE_EXIT_USAGE;
  if (model == NULL || image == NULL || out == NULL || argc > 1)
    {
      lode_cli_error ("predict", _("--model, --image and --out are needed"));
      return LODE_EXIT_USAGE;
    }
  if (!lode_prithvi_patch_check_day ("predict", day_of_year))
    return LODE_EXIT_USAGE;
  device = lode_device_choose (device_name != NULL ? device_name : "auto", &error);
  if (error != NULL)
    {
      lode_cli_error ("predict", "%s", error->message);
      return error->code == LODE_DEVICE_ERROR_UNKNOWN ? LODE_EXIT_USAGE : LODE_EXIT_FAILURE;
    }
  if (encoder != NULL || !is_unet_checkpoint (model))
    {
      prithvi = lode_prithvi_model_new_from_checkpoint_on (encoder ? encoder : model, encoder ? model : NULL, NULL,
                                                           device, &error);
      if (prithvi != NULL)
        config.classes = lode_prithvi_model_get_classes (prithvi);
      if (prithvi == NULL || (raster = lode_raster_open (image, &error)) == NULL
          || (mask = predict_prithvi (prithvi, raster, day_of_year, &error)) == NULL
          || !lode_cli_write_mask (out, raster, mask, &error))
        {
          lode_cli_error ("predict", "%s", error->message);
          return LODE_EXIT_FAILURE;
        }
    }
  else if (device != LODE_DEVICE_CPU)
    {
      lode_cli_error ("predict", _("--device is for Prithvi models; “%s” is a U-Net checkpoint"), model);
      return LODE_EXIT_USAGE;
    }
  else
    {
      net = lode_train_checkpoint_load (model, &config, NULL, NULL, NULL, &error);
      if (net == NULL || (raster = lode_raster_open (image, &error)) == NULL
          || (mask = lode_prelabel_predict (net, &config, raster, &error)) == NULL
          || !lode_cli_write_mask (out, raster, mask, &error))
        {
          lode_cli_error ("predict", "%s", error->message);
          return LODE_EXIT_FAILURE;
        }
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
