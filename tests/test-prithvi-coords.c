/* The time and place of Prithvi-EO-2.0's -TL encodings on the program's
 * paths: lode-prithvi-patch gives a patch's year (from its file name), day
 * of year and centre; a prediction through it equals
 * lode_prithvi_model_predict with the same coordinates computed here by
 * hand, and moves with the year and with the place; a patch without a CRS
 * keeps its date and loses its place, with a warning. A training source's
 * coordinates reach evaluation (batch rule: a part is passed only when
 * every patch of the batch has it) and training. lode predict and lode
 * train prithvi say which coordinates a -TL checkpoint gets and check
 * --day-of-year.
 *
 * The model is the "tiny" -TL configuration (width 192, both encodings),
 * four blocks, generated weights; the patches are demo tiles of 64 x 64. */
#include "config.h"

#include <math.h>
#include <string.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wundef"
#include <gdal.h>
#include <ogr_srs_api.h>
#pragma GCC diagnostic pop

#include "lode-demo.h"
#include "lode-prithvi-patch.h"
#include "lode-test-prithvi.h"
#include "lode-test-util.h"

#define SIZE 64
#define CLASSES 2
#define PLANE ((gsize) SIZE * SIZE)

static char *demo_dir;

static const char *
demo (void)
{
  if (demo_dir == NULL)
    {
      g_autoptr(GError) error = NULL;
      LodeDemoOptions options;

      demo_dir = lode_test_mkdtemp ();
      lode_demo_options_init (&options);
      options.n_tiles = 4;
      options.size = SIZE;
      g_assert_true (lode_demo_write (demo_dir, &options, NULL, NULL, NULL, &error));
      g_assert_no_error (error);
    }
  return demo_dir;
}

static char *
demo_file (const char *kind, guint tile, int year)
{
  g_autofree char *name = g_strdup_printf ("%s_GH_%04u_%d.tif", kind, tile, year);
  g_autofree char *folder = g_strdup_printf ("%d", year);

  return g_build_filename (demo (), "SmallMinesDS", folder, kind[0] == 'I' ? "IMAGE" : "MASK", name, NULL);
}

static LodeRaster *
open_tile (guint tile, int year)
{
  g_autofree char *path = demo_file ("IMG", tile, year);
  g_autoptr(GError) error = NULL;
  LodeRaster *r = lode_raster_open (path, &error);

  g_assert_no_error (error);
  return r;
}

static LodePrithviModel *
tiny_model (gboolean encodings)
{
  g_autoptr(GError) error = NULL;
  LodePrithviConfig c;
  LodeUpernetConfig d = { 192, 32, CLASSES };
  LodePrithviEncoder *encoder;
  LodeUpernet *decoder;

  g_assert_true (lode_prithvi_config_init (&c, "tiny"));
  g_assert_true (c.temporal_encoding && c.location_encoding);
  c.loaded_depth = 4;
  c.temporal_encoding = c.location_encoding = encodings;
  encoder = lode_prithvi_encoder_new (&c, 7, &error);
  g_assert_no_error (error);
  decoder = lode_upernet_new (&d, 8, &error);
  g_assert_no_error (error);
  return lode_prithvi_model_new (encoder, decoder);
}

/* The raster's bands, NaN where it has no data. */
static float *
raw_bands (const LodeRaster *r)
{
  float *raw = g_new (float, (gsize) r->n_bands * PLANE);

  for (int b = 0; b < r->n_bands; b++)
    for (gsize q = 0; q < PLANE; q++)
      raw[b * PLANE + q] = r->valid[q] ? lode_raster_band (r, b)[q] : NAN;
  return raw;
}

/* The centre of r in degrees by hand: its geotransform at (w / 2, h / 2),
 * then GDAL from its CRS to EPSG:4326 with latitude first (the authority's
 * axis order). */
static void
centre_by_hand (const LodeRaster *r, float *lat, float *lon)
{
  OGRSpatialReferenceH src = OSRNewSpatialReference (r->crs_wkt);
  OGRSpatialReferenceH dst = OSRNewSpatialReference (NULL);
  OGRCoordinateTransformationH ct;
  double x = r->geotransform[0] + SIZE / 2.0 * r->geotransform[1];
  double y = r->geotransform[3] + SIZE / 2.0 * r->geotransform[5];

  OSRSetAxisMappingStrategy (src, OAMS_TRADITIONAL_GIS_ORDER);
  g_assert_cmpint (OSRImportFromEPSG (dst, 4326), ==, OGRERR_NONE);
  ct = OCTNewCoordinateTransformation (src, dst);
  g_assert_nonnull (ct);
  g_assert_true (OCTTransform (ct, 1, &x, &y, NULL));
  *lat = (float) x;
  *lon = (float) y;
  OCTDestroyCoordinateTransformation (ct);
  OSRDestroySpatialReference (src);
  OSRDestroySpatialReference (dst);
}

static float *
predict_direct (LodePrithviModel *model, const LodeRaster *r, const float *temporal, const float *location)
{
  g_autoptr(GError) error = NULL;
  g_autofree float *raw = raw_bands (r);
  float *logits = g_new (float, CLASSES * PLANE);
  LodePrithviCoords coords = { temporal, location };

  g_assert_true (lode_prithvi_model_predict (model, raw, 1, r->n_bands, SIZE, SIZE, &coords, logits, NULL, NULL,
                                             &error));
  g_assert_no_error (error);
  return logits;
}

static float *
predict_patch (LodePrithviModel *model, const LodeRaster *r, int day, LodeTrainCoords *coords, char **warning)
{
  g_autoptr(GError) error = NULL;
  float *logits = g_new (float, CLASSES * PLANE);

  lode_prithvi_patch_coords (r, 0, day, coords, warning);
  g_assert_true (lode_prithvi_patch_predict (model, r, coords, logits, NULL, &error));
  g_assert_no_error (error);
  return logits;
}

static double
max_diff (const float *a, const float *b, gsize n)
{
  double d = 0;

  for (gsize i = 0; i < n; i++)
    d = MAX (d, fabs ((double) a[i] - b[i]));
  return d;
}

static void
test_predict (void)
{
  g_autoptr(LodePrithviModel) model = tiny_model (TRUE);
  g_autoptr(LodeRaster) r = open_tile (1, 2016);
  g_autofree float *base = NULL, *by_hand = NULL, *other_year = NULL, *other_place = NULL, *later = NULL;
  g_autofree float *no_crs = NULL, *date_only = NULL, *nothing = NULL;
  g_autofree char *warning = NULL, *line = NULL;
  float temporal[2] = { 2016, 15 }, location[2];
  LodeTrainCoords coords;

  g_assert_true (lode_prithvi_patch_wants_coords (model));
  base = predict_patch (model, r, LODE_PRITHVI_PATCH_DAY, &coords, &warning);
  g_assert_null (warning);
  g_assert_true (coords.has_date && coords.has_location);
  g_assert_cmpfloat (coords.year, ==, 2016);
  g_assert_cmpfloat (coords.day_of_year, ==, 15);
  centre_by_hand (r, &location[0], &location[1]);
  g_assert_cmpfloat_with_epsilon (coords.latitude, location[0], 1e-5);
  g_assert_cmpfloat_with_epsilon (coords.longitude, location[1], 1e-5);
  by_hand = predict_direct (model, r, temporal, location);
  g_test_message ("against the direct call: %g", max_diff (base, by_hand, CLASSES * PLANE));
  g_assert_cmpfloat (max_diff (base, by_hand, CLASSES * PLANE), <, 1e-5);
  line = lode_prithvi_patch_describe (model, &coords, 15);
  g_test_message ("%s", line);
  g_assert_nonnull (strstr (line, "year 2016, day of year 15"));
  g_assert_nonnull (strstr (line, "latitude 6."));

  /* the same pixels under another year's name: only the date moves */
  g_free (r->path);
  r->path = demo_file ("IMG", 1, 2022);
  other_year = predict_patch (model, r, 15, &coords, NULL);
  g_assert_cmpfloat (coords.year, ==, 2022);
  g_assert_cmpfloat (max_diff (base, other_year, CLASSES * PLANE), >, 1e-3);
  temporal[0] = 2022;
  g_clear_pointer (&by_hand, g_free);
  by_hand = predict_direct (model, r, temporal, location);
  g_assert_cmpfloat (max_diff (other_year, by_hand, CLASSES * PLANE), <, 1e-5);

  /* another day */
  later = predict_patch (model, r, 200, &coords, NULL);
  g_assert_cmpfloat (max_diff (later, other_year, CLASSES * PLANE), >, 1e-3);

  /* a hundred kilometres further south */
  r->geotransform[3] -= 100000;
  other_place = predict_patch (model, r, 15, &coords, NULL);
  centre_by_hand (r, &location[0], &location[1]);
  g_assert_cmpfloat_with_epsilon (coords.latitude, location[0], 1e-5);
  g_assert_cmpfloat (coords.latitude, <, 5.5);
  g_assert_cmpfloat (max_diff (other_place, other_year, CLASSES * PLANE), >, 1e-3);
  g_clear_pointer (&by_hand, g_free);
  by_hand = predict_direct (model, r, temporal, location);
  g_assert_cmpfloat (max_diff (other_place, by_hand, CLASSES * PLANE), <, 1e-5);

  /* no CRS: the date stays, the place is left out with a warning */
  g_free (r->crs_wkt);
  r->crs_wkt = g_strdup ("");
  no_crs = predict_patch (model, r, 15, &coords, &warning);
  g_assert_true (coords.has_date);
  g_assert_false (coords.has_location);
  g_assert_nonnull (warning);
  g_test_message ("%s", warning);
  g_assert_nonnull (strstr (warning, "IMG_GH_0001_2022.tif"));
  g_assert_nonnull (strstr (warning, "location encoding is left out"));
  date_only = predict_direct (model, r, temporal, NULL);
  g_assert_cmpfloat (max_diff (no_crs, date_only, CLASSES * PLANE), <, 1e-5);

  /* nor a year in the name: nothing is passed */
  g_free (r->path);
  r->path = g_strdup ("patch.tif");
  g_clear_pointer (&warning, g_free);
  g_clear_pointer (&no_crs, g_free);
  no_crs = predict_patch (model, r, 15, &coords, &warning);
  g_assert_false (coords.has_date || coords.has_location);
  g_assert_nonnull (strstr (warning, "no year in its name"));
  nothing = predict_direct (model, r, NULL, NULL);
  g_assert_cmpfloat (max_diff (no_crs, nothing, CLASSES * PLANE), <, 1e-5);
}

/* A model without the encodings gets no coordinates and prints nothing. */
static void
test_plain_model (void)
{
  g_autoptr(LodePrithviModel) model = tiny_model (FALSE);
  g_autoptr(LodeRaster) r = open_tile (1, 2016);
  LodeTrainCoords coords;
  LodePrithviCoords out;
  float t[2], l[2];

  g_assert_false (lode_prithvi_patch_wants_coords (model));
  g_assert_null (lode_prithvi_patch_describe (model, NULL, 15));
  lode_prithvi_patch_coords (r, 0, 15, &coords, NULL);
  g_assert_null (lode_prithvi_patch_model_coords (model, &coords, t, l, &out));
}

/* ---- the training source ------------------------------------------------ */

typedef struct {
  LodeRaster *images[4];    /* train 0-1, validation 2-3 */
  guint8      masks[4][PLANE];
  LodeTrainCoords coords[4];
} Samples;

static int
samples_count (LodeTrainSplit split, gpointer user_data)
{
  return 2;
}

static gboolean
samples_get (LodeTrainSplit split, int index, float *image, guint8 *mask, gpointer user_data, GError **error)
{
  Samples *s = user_data;
  int i = split * 2 + index;
  g_autofree float *raw = raw_bands (s->images[i]);

  memcpy (image, raw, 13 * PLANE * sizeof (float));
  memcpy (mask, s->masks[i], PLANE);
  return TRUE;
}

static gboolean
samples_get_coords (LodeTrainSplit split, int index, LodeTrainCoords *coords, gpointer user_data, GError **error)
{
  Samples *s = user_data;

  *coords = s->coords[split * 2 + index];
  return TRUE;
}

static void
samples_init (Samples *s)
{
  for (int i = 0; i < 4; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *path = demo_file ("MASK", 1 + i, 2016 + 6 * (i % 2));
      g_autoptr(LodeRaster) m = lode_raster_open (path, &error);

      g_assert_no_error (error);
      s->images[i] = open_tile (1 + i, 2016 + 6 * (i % 2));
      for (gsize q = 0; q < PLANE; q++)
        s->masks[i][q] = (guint8) lode_raster_band (m, 0)[q];
      lode_prithvi_patch_coords (s->images[i], 0, 15, &s->coords[i], NULL);
      g_assert_true (s->coords[i].has_date && s->coords[i].has_location);
    }
}

static void
samples_clear (Samples *s)
{
  for (int i = 0; i < 4; i++)
    lode_raster_free (s->images[i]);
}

/* The validation metrics from a direct prediction of both validation
 * patches with the given coordinates. */
static void
metrics_direct (LodePrithviModel *model, Samples *s, const LodePrithviCoords *coords, LodeTrainMetrics *m)
{
  g_autoptr(GError) error = NULL;
  g_autofree float *raw = g_new (float, 2 * 13 * PLANE);
  guint8 pred[2 * PLANE];
  gint64 cm[CLASSES * CLASSES] = { 0 };

  for (int b = 0; b < 2; b++)
    {
      g_autofree float *one = raw_bands (s->images[2 + b]);
      memcpy (raw + b * 13 * PLANE, one, 13 * PLANE * sizeof (float));
    }
  g_assert_true (lode_prithvi_model_predict (model, raw, 2, 13, SIZE, SIZE, coords, NULL, pred, NULL, &error));
  g_assert_no_error (error);
  for (int b = 0; b < 2; b++)
    for (gsize q = 0; q < PLANE; q++)
      if (s->masks[2 + b][q] < CLASSES)
        cm[s->masks[2 + b][q] * CLASSES + pred[b * PLANE + q]]++;
  lode_train_metrics_from_confusion (m, cm, CLASSES);
}

static void
assert_same_metrics (const LodeTrainMetrics *a, const LodeTrainMetrics *b)
{
  g_assert_cmpint (a->pixels, ==, b->pixels);
  g_assert_cmpfloat (a->accuracy, ==, b->accuracy);
  g_assert_cmpfloat (a->mean_iou, ==, b->mean_iou);
}

static void
test_source (void)
{
  g_autoptr(LodePrithviModel) model = tiny_model (TRUE);
  g_autoptr(LodePrithviModel) with = tiny_model (TRUE);
  g_autoptr(LodePrithviModel) without = tiny_model (TRUE);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeRaster) probe = open_tile (1, 2016);
  g_autofree float *la = NULL, *lb = NULL;
  Samples s;
  LodeTrainSource source = { SIZE, SIZE, samples_count, samples_get, &s, samples_get_coords };
  LodeTrainSource plain = { SIZE, SIZE, samples_count, samples_get, &s, NULL };
  LodeTrainConfig config;
  LodeTrainMetrics got, want;
  double with_accuracy;
  float temporal[4], location[4];
  LodePrithviCoords coords = { temporal, location };

  samples_init (&s);
  lode_train_config_init (&config);
  config.bands = 13;
  config.classes = CLASSES;
  config.batch_size = 2;
  config.epochs = 1;
  config.augment = FALSE;
  config.seed = 3;
  for (int b = 0; b < 2; b++)
    {
      temporal[2 * b] = s.coords[2 + b].year;
      temporal[2 * b + 1] = 15;
      location[2 * b] = s.coords[2 + b].latitude;
      location[2 * b + 1] = s.coords[2 + b].longitude;
    }
  g_assert_cmpfloat (temporal[0], ==, 2016);
  g_assert_cmpfloat (temporal[2], ==, 2022);

  /* evaluation passes each patch's coordinates */
  g_assert_true (lode_prithvi_model_evaluate (model, &config, &source, LODE_TRAIN_SPLIT_VALIDATION, &got, NULL,
                                              &error));
  g_assert_no_error (error);
  metrics_direct (model, &s, &coords, &want);
  g_test_message ("accuracy with coordinates %.6f", got.accuracy);
  assert_same_metrics (&got, &want);
  with_accuracy = got.accuracy;
  g_assert_true (lode_prithvi_model_evaluate (model, &config, &plain, LODE_TRAIN_SPLIT_VALIDATION, &got, NULL,
                                              &error));
  metrics_direct (model, &s, NULL, &want);
  g_test_message ("accuracy without %.6f", got.accuracy);
  assert_same_metrics (&got, &want);
  g_assert_cmpfloat (got.accuracy, !=, with_accuracy);

  /* one patch of the batch has no place: the batch keeps only the dates */
  s.coords[3].has_location = FALSE;
  g_assert_true (lode_prithvi_model_evaluate (model, &config, &source, LODE_TRAIN_SPLIT_VALIDATION, &got, NULL,
                                              &error));
  coords.location = NULL;
  metrics_direct (model, &s, &coords, &want);
  assert_same_metrics (&got, &want);

  /* training with the coordinates ends elsewhere than training without */
  g_assert_true (lode_prithvi_model_train (with, &config, 0, &source, NULL, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (lode_prithvi_model_train (without, &config, 0, &plain, NULL, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  la = predict_direct (with, probe, NULL, NULL);
  lb = predict_direct (without, probe, NULL, NULL);
  g_test_message ("decoders trained with and without coordinates: logits %g apart",
                  max_diff (la, lb, CLASSES * PLANE));
  g_assert_cmpfloat (max_diff (la, lb, CLASSES * PLANE), >, 1e-4);
  samples_clear (&s);
}

/* ---- the command line ----------------------------------------------------- */

static void
test_cli (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *ckpt = g_build_filename (dir, "reduced.pt", NULL);
  g_autofree char *out_mask = g_build_filename (dir, "mask.tif", NULL);
  g_autofree char *decoder = g_build_filename (dir, "decoder.safetensors", NULL);
  g_autofree char *decoder2_path = g_build_filename (dir, "decoder2.safetensors", NULL);
  const char *decoder2 = decoder2_path;
  g_autofree char *image = demo_file ("IMG", 2, 2022);
  g_autofree char *data = g_build_filename (demo (), NULL);
  g_autoptr(GPtrArray) layout = lode_test_prithvi_layout ("prithvi_reduced.layout.tsv");
  g_autofree char *out = NULL, *err = NULL;
  const char *predict[] = { "predict", "--model", ckpt, "--image", image, "--out", out_mask, NULL };
  const char *bad_day[] = { "predict", "--model", ckpt, "--image", image, "--out", out_mask,
                            "--day-of-year", "367", NULL };
  const char *train[] = { "train", "prithvi", "--weights", ckpt, "--data", data, "--steps", "1", "--batch", "2",
                          "--epochs", "1", "--day-of-year", "20", "--quiet", "--out", decoder, NULL };
  const char *train_later[] = { "train", "prithvi", "--weights", ckpt, "--data", data, "--steps", "1", "--batch",
                                "2", "--epochs", "1", "--day-of-year", "200", "--quiet", "--out", decoder2, NULL };
  g_autofree char *c1 = NULL, *c2 = NULL;
  gsize l1, l2;
  const char *unet_day[] = { "train", "unet", "--data", data, "--day-of-year", "20", NULL };

  lode_test_prithvi_write_ckpt (ckpt, layout, "", LODE_TEST_WRAP_NONE, NULL);

  g_assert_cmpint (lode_test_run_lode (predict, &out, &err), ==, 0);
  g_test_message ("%s%s", out, err);
  g_assert_nonnull (strstr (out, "Temporal and location encodings: year 2022, day of year 15; latitude 6."));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (lode_test_run_lode (bad_day, &out, &err), ==, 2);
  g_assert_nonnull (strstr (err, "--day-of-year must be 1 to 366, not 367"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (lode_test_run_lode (train, &out, &err), ==, 0);
  g_test_message ("%s%s", out, err);
  g_assert_nonnull (strstr (out, "Temporal and location encodings: the year of each patch, day of year 20; "
                                 "the centre of each patch"));
  g_assert_null (strstr (err, "warning"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* the day reaches the training: another day, another decoder */
  g_assert_cmpint (lode_test_run_lode (train_later, NULL, NULL), ==, 0);
  g_assert_true (g_file_get_contents (decoder, &c1, &l1, NULL));
  g_assert_true (g_file_get_contents (decoder2, &c2, &l2, NULL));
  g_assert_cmpuint (l1, ==, l2);
  g_assert_true (memcmp (c1, c2, l1) != 0);

  g_assert_cmpint (lode_test_run_lode (unet_day, &out, &err), ==, 2);
  g_assert_nonnull (strstr (err, "--day-of-year is for prithvi only"));
  lode_test_rmtree (dir);
}

int
main (int argc, char **argv)
{
  int result;

  g_test_init (&argc, &argv, NULL);
  GDALAllRegister ();
  g_test_add_func ("/prithvi-coords/predict", test_predict);
  g_test_add_func ("/prithvi-coords/plain-model", test_plain_model);
  g_test_add_func ("/prithvi-coords/source", test_source);
  g_test_add_func ("/prithvi-coords/cli", test_cli);
  result = g_test_run ();
  if (demo_dir != NULL)
    {
      lode_test_rmtree (demo_dir);
      g_free (demo_dir);
    }
  return result;
}
