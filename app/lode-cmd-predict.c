/* lode predict: a trained U-Net's mask for one patch. */
#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "lode-commands.h"
#include "lode-raster.h"
#include "lode-train.h"

/* The class of each pixel (255 where the image has no data). The image is
 * padded with zeros (the normalised mean) to multiples of 32. */
static guint8 *
predict (LodeUnet              *net,
         const LodeTrainConfig *c,
         const LodeRaster      *r,
         GError               **error)
{
  int ph = (r->height + 31) / 32 * 32, pw = (r->width + 31) / 32 * 32;
  gsize phw = (gsize) ph * pw;
  g_autofree float *input = g_new0 (float, c->bands * phw);
  g_autofree float *logits = g_new (float, c->classes * phw);
  guint8 *mask;

  for (int b = 0; b < c->bands; b++)
    {
      const float *src;
      float *dst = input + b * phw;

      if (c->band_select[b] >= r->n_bands)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       _("“%s” has %d bands; the model reads band %d"), r->path, r->n_bands,
                       c->band_select[b] + 1);
          return NULL;
        }
      src = lode_raster_band (r, c->band_select[b]);
      for (int y = 0; y < r->height; y++)
        for (int x = 0; x < r->width; x++)
          {
            float v = src[(gsize) y * r->width + x];
            dst[(gsize) y * pw + x] = isfinite (v) ? (v - c->mean[b]) / c->std[b] : 0.0f;
          }
    }
  if (!lode_unet_forward (net, input, 1, ph, pw, LODE_UNET_EVAL, logits, error))
    return NULL;
  mask = g_new (guint8, (gsize) r->width * r->height);
  for (int y = 0; y < r->height; y++)
    for (int x = 0; x < r->width; x++)
      {
        gsize q = (gsize) y * pw + x;
        int best = 0;

        for (int k = 1; k < c->classes; k++)
          if (logits[k * phw + q] > logits[best * phw + q])
            best = k;
        mask[(gsize) y * r->width + x] = r->valid[(gsize) y * r->width + x] ? (guint8) best : 255;
      }
  return mask;
}

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
      || (mask = predict (net, &config, raster, &error)) == NULL
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
