#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <inttypes.h>

#include <gio/gio.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
/* GDAL's headers test compiler macros that GCC leaves undefined. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wundef"
#include <cpl_error.h>
#include <gdal.h>
#pragma GCC diagnostic pop
#include <math.h>
#include <stdlib.h>

#include "lode-commands.h"
#include "lode-device.h"
#include "lode-composite.h"
#include "lode-raster.h"
#include "lode-sam2-predictor.h"

/* "x,y" or "x,y,label" with label 1 (inside) or 0 (outside). */
static gboolean
parse_point (const char *s, float *x, float *y, int *label)
{
  g_auto(GStrv) parts = g_strsplit (s, ",", -1);
  guint n = g_strv_length (parts);
  char *end;
  double v[3] = { 0, 0, 1 };

  if (n < 2 || n > 3)
    return FALSE;
  for (guint i = 0; i < n; i++)
    {
      v[i] = g_ascii_strtod (g_strstrip (parts[i]), &end);
      if (*parts[i] == '\0' || *end != '\0' || !isfinite (v[i]))
        return FALSE;
    }
  if (v[2] != 0.0 && v[2] != 1.0)
    return FALSE;
  *x = (float) v[0];
  *y = (float) v[1];
  *label = (int) v[2];
  return TRUE;
}

static gboolean
parse_box (const char *s, float box[4])
{
  g_auto(GStrv) parts = g_strsplit (s, ",", -1);
  char *end;

  if (g_strv_length (parts) != 4)
    return FALSE;
  for (int i = 0; i < 4; i++)
    {
      double v = g_ascii_strtod (g_strstrip (parts[i]), &end);

      if (*parts[i] == '\0' || *end != '\0' || !isfinite (v))
        return FALSE;
      box[i] = (float) v;
    }
  return box[2] > box[0] && box[3] > box[1];
}

/* A one-band Byte GeoTIFF on the image's grid (lode-commands.h). */
gboolean
lode_cli_write_mask (const char *path, const LodeRaster *r, const guint8 *mask, GError **error)
{
  GDALDriverH driver = GDALGetDriverByName ("GTiff");
  char *options[] = { (char *) "COMPRESS=DEFLATE", NULL };
  GDALDatasetH ds;
  CPLErr err;

  if (driver == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                           _("GDAL has no GeoTIFF driver"));
      return FALSE;
    }
  CPLErrorReset ();
  ds = GDALCreate (driver, path, r->width, r->height, 1, GDT_Byte, options);
  if (ds == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, _("Cannot create “%s”: %s"),
                   path, CPLGetLastErrorMsg ());
      return FALSE;
    }
  if (r->has_geotransform)
    GDALSetGeoTransform (ds, (double *) r->geotransform);
  if (r->crs_wkt != NULL && r->crs_wkt[0] != '\0')
    GDALSetProjection (ds, r->crs_wkt);
  err = GDALRasterIO (GDALGetRasterBand (ds, 1), GF_Write, 0, 0, r->width, r->height,
                      (void *) mask, r->width, r->height, GDT_Byte, 0, 0);
  if (err == CE_None)
    GDALSetDescription (GDALGetRasterBand (ds, 1), "mask");
  GDALClose (ds);
  if (err != CE_None || CPLGetLastErrorType () >= CE_Failure)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, _("Cannot write “%s”: %s"),
                   path, CPLGetLastErrorMsg ());
      g_unlink (path);
      return FALSE;
    }
  return TRUE;
}

int
lode_cmd_segment (int argc, char **argv)
{
  g_autofree char *checkpoint = NULL, *image = NULL, *box_s = NULL, *out = NULL;
  g_autofree char *composite = NULL, *device = NULL;
  g_auto(GStrv) point_s = NULL;
  int size = 1024;
  gboolean multimask = FALSE;
  const GOptionEntry entries[] = {
    { "checkpoint", 'c', 0, G_OPTION_ARG_FILENAME, &checkpoint, N_("SAM2.1 checkpoint (sam2.1_hiera_*.pt)"), N_("FILE") },
    { "image", 'i', 0, G_OPTION_ARG_FILENAME, &image, N_("Image patch (GeoTIFF)"), N_("TIF") },
    { "point", 'p', 0, G_OPTION_ARG_STRING_ARRAY, &point_s, N_("A click in pixels; label 1 inside (default), 0 outside; repeat for more"), N_("X,Y[,LABEL]") },
    { "box", 'b', 0, G_OPTION_ARG_STRING, &box_s, N_("A box around the object, in pixels"), N_("X0,Y0,X1,Y1") },
    { "composite", 0, 0, G_OPTION_ARG_STRING, &composite, N_("The view the model sees (default true-colour)"), N_("VIEW") },
    { "size", 's', 0, G_OPTION_ARG_INT, &size, N_("Model input size: 1024 (the model's own) or 512 (faster)"), N_("PIXELS") },
    { "multimask", 'm', 0, G_OPTION_ARG_NONE, &multimask, N_("Ask for three candidates and keep the best"), NULL },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out, N_("Mask to write (0/1 GeoTIFF on the image's grid)"), N_("MASK.tif") },
    { "device", 0, 0, G_OPTION_ARG_STRING, &device, N_("cpu, cuda or auto (default)"), N_("DEVICE") },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeRaster) raster = NULL;
  g_autoptr(LodeSam2Predictor) predictor = NULL;
  g_autoptr(LodeSam2Embedding) emb = NULL;
  g_autoptr(LodeSam2Prediction) pred = NULL;
  g_autofree float *points = NULL;
  g_autofree int *labels = NULL;
  g_autofree guint8 *rgb = NULL, *mask = NULL;
  LodeCompositeSpec spec;
  LodeCompositePreset preset = LODE_COMPOSITE_TRUE_COLOUR;
  LodeSam2Click click = { 0 };
  int n_points = point_s != NULL ? (int) g_strv_length (point_s) : 0;
  gsize inside = 0;
  int pick;

  g_option_context_set_summary (context,
    _("Segment the object under a click with SAM2.1 and write its mask.\n"
      "The image is shown to the model as a composite (true colour by default),\n"
      "resized to the model's input size; points and boxes are in image pixels."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!lode_cli_parse (context, &argc, &argv))
    return LODE_EXIT_USAGE;
  n_points = point_s != NULL ? (int) g_strv_length (point_s) : 0;

  if (checkpoint == NULL || image == NULL || out == NULL)
    {
      lode_cli_error ("segment", _("--checkpoint, --image and --out are required"));
      return LODE_EXIT_USAGE;
    }
  if (n_points == 0 && box_s == NULL)
    {
      lode_cli_error ("segment", _("give at least one --point or a --box"));
      return LODE_EXIT_USAGE;
    }
  if (n_points > LODE_SAM2_MAX_POINTS)
    {
      lode_cli_error ("segment", _("at most %d points"), LODE_SAM2_MAX_POINTS);
      return LODE_EXIT_USAGE;
    }
  if (size != 1024 && size != 512)
    {
      lode_cli_error ("segment", _("--size must be 1024 or 512, not %d"), size);
      return LODE_EXIT_USAGE;
    }
  if (composite != NULL && !lode_composite_preset_from_id (composite, &preset))
    {
      lode_cli_error ("segment", _("unknown composite “%s”"), composite);
      return LODE_EXIT_USAGE;
    }
  points = g_new (float, 2 * MAX (n_points, 1));
  labels = g_new (int, MAX (n_points, 1));
  for (int i = 0; i < n_points; i++)
    if (!parse_point (point_s[i], &points[2 * i], &points[2 * i + 1], &labels[i]))
      {
        lode_cli_error ("segment", _("bad --point “%s”: expected X,Y or X,Y,LABEL with LABEL 0 or 1"), point_s[i]);
        return LODE_EXIT_USAGE;
      }
  if (box_s != NULL && !parse_box (box_s, click.box))
    {
      lode_cli_error ("segment", _("bad --box “%s”: expected X0,Y0,X1,Y1 with X0 < X1 and Y0 < Y1"), box_s);
      return LODE_EXIT_USAGE;
    }

  /* the image encoder's device (clicks run on the CPU): an unknown name or
   * cuda without a device ends here, before any file is read */
  lode_device_choose (device, &error);
  if (error != NULL)
    {
      lode_cli_error ("segment", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }
  raster = lode_raster_open (image, &error);
  if (raster == NULL)
    {
      lode_cli_error ("segment", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }
  for (int i = 0; i < n_points; i++)
    if (points[2 * i] < 0 || points[2 * i] >= raster->width ||
        points[2 * i + 1] < 0 || points[2 * i + 1] >= raster->height)
      {
        lode_cli_error ("segment", _("point %s lies outside the %d x %d image “%s”"),
                        point_s[i], raster->width, raster->height, image);
        return LODE_EXIT_USAGE;
      }
  lode_composite_spec_init (&spec, preset);
  rgb = g_malloc ((gsize) raster->width * raster->height * 3);
  if (!lode_composite_resolve (&spec, raster, &error) ||
      !lode_composite_render_rgb (raster, &spec, NULL, rgb, &error))
    {
      lode_cli_error ("segment", "%s: %s", image, error->message);
      return LODE_EXIT_FAILURE;
    }

  predictor = lode_sam2_predictor_open_on (checkpoint, NULL, size, device, &error);
  if (predictor == NULL)
    {
      lode_cli_error ("segment", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }
  emb = lode_sam2_predictor_encode (predictor, rgb, raster->width, raster->height, &error);
  if (emb == NULL)
    {
      lode_cli_error ("segment", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }
  click.n_points = n_points;
  click.points = points;
  click.labels = labels;
  click.has_box = box_s != NULL;
  click.multimask = multimask;
  pred = lode_sam2_predictor_predict (predictor, emb, raster->width, raster->height, &click, &error);
  if (pred == NULL)
    {
      lode_cli_error ("segment", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }

  pick = multimask ? pred->best : 0;
  mask = g_malloc ((gsize) raster->width * raster->height);
  lode_sam2_prediction_mask_u8 (pred, pick, mask);
  for (gsize i = 0; i < (gsize) raster->width * raster->height; i++)
    inside += mask[i];
  if (!lode_cli_write_mask (out, raster, mask, &error))
    {
      lode_cli_error ("segment", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }
  /* Translators: the summary line of lode segment */
  g_print (_("%s: %zu of %d pixels in the mask, predicted IoU %.3f, object score %.2f\n"),
           out, inside, raster->width * raster->height, pred->iou[pick], pred->object_score);
  return LODE_EXIT_OK;
}
