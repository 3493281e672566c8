/* lode-prithvi-patch.c: a Prithvi-EO-2.0 segmenter on one patch, with the
 * time and place of the -TL encodings. */
#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>
#include <math.h>
#include <string.h>

#include "lode-commands.h"
#include "lode-import.h"
#include "lode-prithvi-patch.h"

gboolean
lode_prithvi_patch_wants_coords (LodePrithviModel *model)
{
  const LodePrithviConfig *c;

  g_return_val_if_fail (model != NULL, FALSE);

  c = lode_prithvi_encoder_get_config (lode_prithvi_model_get_encoder (model));
  return c->temporal_encoding || c->location_encoding;
}

gboolean
lode_prithvi_patch_check_day (const char *command, int day_of_year)
{
  if (day_of_year >= 1 && day_of_year <= 366)
    return TRUE;
  lode_cli_error (command, _("--day-of-year must be 1 to 366, not %d"), day_of_year);
  return FALSE;
}

void
lode_prithvi_patch_coords (const LodeRaster *r, int year, int day_of_year, LodeTrainCoords *coords,
                           char **warning)
{
  g_autoptr(GString) why = g_string_new (NULL);
  g_autoptr(GError) error = NULL;
  double lat, lon;

  g_return_if_fail (r != NULL && coords != NULL);

  memset (coords, 0, sizeof *coords);
  if (year <= 0 && (r->path == NULL || !lode_import_parse_name (r->path, NULL, &year)))
    g_string_append_printf (why, _("“%s” has no year in its name (…_YYYY.tif); the temporal encoding is left out"),
                            lode_raster_display_name (r));
  else
    {
      coords->has_date = TRUE;
      coords->year = (float) year;
      coords->day_of_year = (float) day_of_year;
    }
  if (lode_raster_centre_latlon (r, &lat, &lon, &error))
    {
      coords->has_location = TRUE;
      coords->latitude = (float) lat;
      coords->longitude = (float) lon;
    }
  else
    {
      if (why->len > 0)
        g_string_append (why, "; ");
      g_string_append_printf (why, _("%s; the location encoding is left out"), error->message);
    }
  if (warning != NULL)
    *warning = why->len > 0 ? g_strdup (why->str) : NULL;
}

const LodePrithviCoords *
lode_prithvi_patch_model_coords (LodePrithviModel *model, const LodeTrainCoords *coords, float *temporal,
                                 float *location, LodePrithviCoords *out)
{
  const LodePrithviConfig *c;

  g_return_val_if_fail (model != NULL && out != NULL, NULL);

  if (coords == NULL)
    return NULL;
  c = lode_prithvi_encoder_get_config (lode_prithvi_model_get_encoder (model));
  out->temporal = NULL;
  out->location = NULL;
  if (c->temporal_encoding && coords->has_date)
    {
      temporal[0] = coords->year;
      temporal[1] = coords->day_of_year;
      out->temporal = temporal;
    }
  if (c->location_encoding && coords->has_location)
    {
      location[0] = coords->latitude;
      location[1] = coords->longitude;
      out->location = location;
    }
  return out->temporal != NULL || out->location != NULL ? out : NULL;
}

char *
lode_prithvi_patch_describe (LodePrithviModel *model, const LodeTrainCoords *coords, int day_of_year)
{
  const LodePrithviConfig *c;
  g_autoptr(GString) parts = g_string_new (NULL);
  gboolean dated, placed;

  g_return_val_if_fail (model != NULL, NULL);

  c = lode_prithvi_encoder_get_config (lode_prithvi_model_get_encoder (model));
  dated = c->temporal_encoding && (coords == NULL || coords->has_date);
  placed = c->location_encoding && (coords == NULL || coords->has_location);
  if (!c->temporal_encoding && !c->location_encoding)
    return NULL;
  if (dated && coords == NULL)
    g_string_append_printf (parts, _("the year of each patch, day of year %d"), day_of_year);
  else if (dated)
    g_string_append_printf (parts, _("year %d, day of year %d"), (int) coords->year, (int) coords->day_of_year);
  if (parts->len > 0 && placed)
    g_string_append (parts, "; ");
  if (placed && coords == NULL)
    g_string_append (parts, _("the centre of each patch"));
  else if (placed)
    g_string_append_printf (parts, _("latitude %.5f, longitude %.5f (the centre of the patch)"),
                            coords->latitude, coords->longitude);
  if (parts->len == 0)
    g_string_append (parts, _("none"));
  return g_strdup_printf (c->temporal_encoding && c->location_encoding ? _("Temporal and location encodings: %s")
                          : c->temporal_encoding ? _("Temporal encoding: %s") : _("Location encoding: %s"),
                          parts->str);
}

gboolean
lode_prithvi_patch_predict (LodePrithviModel *model, const LodeRaster *r, const LodeTrainCoords *coords,
                            float *logits, guint8 *mask, GError **error)
{
  gsize hw = (gsize) r->width * r->height;
  g_autofree float *raw = g_new (float, r->n_bands * hw);
  float temporal[2], location[2];
  LodePrithviCoords model_coords;

  g_return_val_if_fail (model != NULL && r != NULL && r->data != NULL, FALSE);

  for (int b = 0; b < r->n_bands; b++)
    {
      const float *src = lode_raster_band (r, b);

      for (gsize q = 0; q < hw; q++)
        raw[b * hw + q] = r->valid[q] ? src[q] : NAN;
    }
  if (!lode_prithvi_model_predict (model, raw, 1, r->n_bands, r->height, r->width,
                                   lode_prithvi_patch_model_coords (model, coords, temporal, location, &model_coords),
                                   logits, mask, NULL, error))
    {
      g_prefix_error (error, "“%s”: ", lode_raster_display_name (r));
      return FALSE;
    }
  if (mask != NULL)
    for (gsize q = 0; q < hw; q++)
      if (!r->valid[q])
        mask[q] = 255;
  return TRUE;
}
