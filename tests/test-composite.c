/* Composites: which band lands in which channel for each view, how the
 * stretches map values to bytes, nodata, index values, data-set ranges. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lode-bands.h"
#include "lode-composite.h"
#include "lode-test-util.h"

static void
set_value (LodeRaster *r, int band, int pixel, float v)
{
  r->data[(gsize) band * r->width * r->height + pixel] = v;
}

static const guint8 *
px4 (const guint8 *rgba, int pixel)
{
  return rgba + 4 * pixel;
}

/* 13 pixels in a row; pixel p is 1000 in band p and 0 elsewhere. */
static LodeRaster *
one_hot_raster (int n_bands)
{
  LodeRaster *r = lode_raster_new (n_bands, 1, n_bands);

  for (int p = 0; p < n_bands; p++)
    set_value (r, p, p, 1000);
  return r;
}

static void
assert_lit_by (const guint8 *rgba, const LodeRaster *r, int channel, int band)
{
  for (int p = 0; p < r->width; p++)
    g_assert_cmpint (px4 (rgba, p)[channel], ==, p == band ? 255 : 0);
}

static void
test_channel_order (void)
{
  g_autoptr(LodeRaster) r = one_hot_raster (13);
  static const struct {
    LodeCompositePreset preset;
    int                 bands[3];  /* 13-band indices for R, G, B */
  } cases[] = {
    { LODE_COMPOSITE_TRUE_COLOUR, { 2, 1, 0 } },   /* B4 B3 B2 */
    { LODE_COMPOSITE_NIR, { 6, 2, 1 } },           /* B8 B4 B3 */
    { LODE_COMPOSITE_SWIR, { 9, 7, 2 } },          /* B12 B8A B4 */
  };
  guint8 rgba[13 * 4];

  for (gsize c = 0; c < G_N_ELEMENTS (cases); c++)
    {
      LodeCompositeSpec spec;
      g_autoptr(GError) error = NULL;

      lode_composite_spec_init (&spec, cases[c].preset);
      spec.stretch = LODE_STRETCH_FIXED;
      for (int ch = 0; ch < 3; ch++)
        {
          spec.fixed_min[ch] = 0;
          spec.fixed_max[ch] = 1000;
        }
      g_assert_true (lode_composite_render_rgba (r, &spec, NULL, rgba, &error));
      g_assert_no_error (error);
      for (int ch = 0; ch < 3; ch++)
        assert_lit_by (rgba, r, ch, cases[c].bands[ch]);
      for (int p = 0; p < 13; p++)
        g_assert_cmpint (px4 (rgba, p)[3], ==, 255);

      g_assert_true (lode_composite_resolve (&spec, r, &error));
      g_assert_cmpmem (spec.bands, 3 * sizeof (int), cases[c].bands, 3 * sizeof (int));
    }
}

static void
test_sar (void)
{
  g_autoptr(LodeRaster) r = lode_raster_new (3, 1, 13);
  g_autoptr(GError) error = NULL;
  LodeCompositeSpec spec;
  guint8 rgba[3 * 4];

  /* VV, VH in dB: pixel 0 bright VV, pixel 1 bright VH, pixel 2 equal. */
  set_value (r, 10, 0, 0);
  set_value (r, 11, 0, -20);
  set_value (r, 10, 1, -20);
  set_value (r, 11, 1, 0);
  set_value (r, 10, 2, -10);
  set_value (r, 11, 2, -10);
  lode_composite_spec_init (&spec, LODE_COMPOSITE_SAR);
  g_assert_true (lode_composite_resolve (&spec, r, &error));
  g_assert_cmpint (spec.bands[0], ==, 10);
  g_assert_cmpint (spec.bands[1], ==, 11);

  spec.stretch = LODE_STRETCH_MINMAX;
  g_assert_true (lode_composite_render_rgba (r, &spec, NULL, rgba, &error));
  g_assert_no_error (error);
  /* R = VV, G = VH, B = VV - VH (20, -20, 0 dB). */
  g_assert_cmpmem (px4 (rgba, 0), 3, ((guint8[]) { 255, 0, 255 }), 3);
  g_assert_cmpmem (px4 (rgba, 1), 3, ((guint8[]) { 0, 255, 0 }), 3);
  g_assert_cmpmem (px4 (rgba, 2), 3, ((guint8[]) { 128, 128, 128 }), 3);
}

static void
test_sar_on_6_bands (void)
{
  g_autoptr(LodeRaster) r = lode_raster_new (4, 4, 6);
  g_autoptr(GError) error = NULL;
  LodeCompositeSpec spec;
  guint8 rgba[16 * 4];

  r->path = g_strdup ("IMG_GH_0007_2016.tif");
  lode_composite_spec_init (&spec, LODE_COMPOSITE_SAR);
  g_assert_false (lode_composite_resolve (&spec, r, &error));
  g_assert_error (error, LODE_COMPOSITE_ERROR, LODE_COMPOSITE_ERROR_BANDS);
  g_assert_nonnull (strstr (error->message, "IMG_GH_0007_2016.tif"));
  g_assert_nonnull (strstr (error->message, "VV"));
  g_clear_error (&error);
  g_assert_false (lode_composite_render_rgba (r, &spec, NULL, rgba, &error));
  g_assert_error (error, LODE_COMPOSITE_ERROR, LODE_COMPOSITE_ERROR_BANDS);
  g_clear_error (&error);

  /* The 6-band set has no B8; the narrow NIR (index 3) stands in. */
  lode_composite_spec_init (&spec, LODE_COMPOSITE_NIR);
  g_assert_true (lode_composite_resolve (&spec, r, &error));
  g_assert_cmpint (spec.bands[0], ==, 3);
  g_assert_cmpint (spec.bands[1], ==, 2);
  g_assert_cmpint (spec.bands[2], ==, 1);
  lode_composite_spec_init (&spec, LODE_COMPOSITE_SWIR);
  g_assert_true (lode_composite_resolve (&spec, r, &error));
  g_assert_cmpint (spec.bands[0], ==, 5);
  lode_composite_spec_init (&spec, LODE_COMPOSITE_ELEVATION);
  g_assert_false (lode_composite_resolve (&spec, r, &error));
  g_assert_error (error, LODE_COMPOSITE_ERROR, LODE_COMPOSITE_ERROR_BANDS);
}

static void
test_generic_and_named (void)
{
  g_autoptr(LodeRaster) generic = lode_raster_new (2, 2, 10);
  g_autoptr(LodeRaster) named = lode_raster_new (2, 2, 4);
  g_autoptr(GError) error = NULL;
  LodeCompositeSpec spec;

  lode_composite_spec_init (&spec, LODE_COMPOSITE_TRUE_COLOUR);
  g_assert_true (lode_composite_resolve (&spec, generic, &error));
  g_assert_cmpint (spec.bands[0], ==, 2);
  g_assert_cmpint (spec.bands[1], ==, 1);
  g_assert_cmpint (spec.bands[2], ==, 0);
  lode_composite_spec_init (&spec, LODE_COMPOSITE_NDVI);
  g_assert_false (lode_composite_resolve (&spec, generic, &error));
  g_assert_error (error, LODE_COMPOSITE_ERROR, LODE_COMPOSITE_ERROR_BANDS);
  g_clear_error (&error);

  /* Band descriptions decide when they name bands. */
  g_free (named->band_names[0]);
  named->band_names[0] = g_strdup ("NIR");
  g_free (named->band_names[1]);
  named->band_names[1] = g_strdup ("Red");
  g_free (named->band_names[2]);
  named->band_names[2] = g_strdup ("green");
  g_free (named->band_names[3]);
  named->band_names[3] = g_strdup ("B02");
  lode_composite_spec_init (&spec, LODE_COMPOSITE_TRUE_COLOUR);
  g_assert_true (lode_composite_resolve (&spec, named, &error));
  g_assert_cmpint (spec.bands[0], ==, 1);
  g_assert_cmpint (spec.bands[1], ==, 2);
  g_assert_cmpint (spec.bands[2], ==, 3);
  lode_composite_spec_init (&spec, LODE_COMPOSITE_NDVI);
  g_assert_true (lode_composite_resolve (&spec, named, &error));
  g_assert_cmpint (spec.bands[0], ==, 0);
  g_assert_cmpint (spec.bands[1], ==, 1);

  /* Custom bands must exist. */
  lode_composite_spec_init (&spec, LODE_COMPOSITE_CUSTOM);
  spec.bands[2] = 4;
  g_assert_false (lode_composite_resolve (&spec, named, &error));
  g_assert_error (error, LODE_COMPOSITE_ERROR, LODE_COMPOSITE_ERROR_SPEC);
}

static int
cmp_float (const void *a, const void *b)
{
  float x = *(const float *) a, y = *(const float *) b;

  return (x > y) - (x < y);
}

/* numpy's default: linear interpolation between ranks, rank = p (n - 1). */
static double
sorted_percentile (const float *sorted, gsize n, double pct)
{
  double rank = pct / 100.0 * (n - 1);
  gsize k = (gsize) floor (rank);

  if (k + 1 >= n)
    return sorted[n - 1];
  return sorted[k] + (rank - k) * (sorted[k + 1] - sorted[k]);
}

/* A 3-band custom raster of shuffled ramps with a few huge outliers. */
static LodeRaster *
ramp_raster (int width, int height, guint32 seed, float offset)
{
  LodeRaster *r = lode_raster_new (width, height, 3);
  gsize n = (gsize) width * height;
  g_autoptr(GRand) rand = g_rand_new_with_seed (seed);

  for (int b = 0; b < 3; b++)
    {
      float *v = r->data + b * n;

      for (gsize i = 0; i < n; i++)
        v[i] = offset + (b + 1) * (float) i;
      for (gsize i = n - 1; i > 0; i--)
        {
          gsize j = g_rand_int_range (rand, 0, i + 1);
          float t = v[i];
          v[i] = v[j];
          v[j] = t;
        }
    }
  /* Outliers in band 0. */
  r->data[0] = 1e7f;
  r->data[1] = -1e7f;
  return r;
}

/* compute_range against sorting, for each channel of a 3-band raster. */
static void
assert_percentiles_sorted (const LodeRaster *r, double low, double high)
{
  gsize n = (gsize) r->width * r->height;
  g_autoptr(GError) error = NULL;
  LodeCompositeSpec spec;
  LodeStretchRange range;

  lode_composite_spec_init (&spec, LODE_COMPOSITE_CUSTOM);
  spec.low_pct = low;
  spec.high_pct = high;
  g_assert_true (lode_composite_compute_range (r, &spec, &range, &error));
  g_assert_no_error (error);
  for (int c = 0; c < 3; c++)
    {
      g_autofree float *sorted = g_memdup2 (r->data + c * n, n * sizeof (float));

      qsort (sorted, n, sizeof (float), cmp_float);
      g_assert_cmpfloat_with_epsilon (range.lo[c], sorted_percentile (sorted, n, low), 1e-3);
      g_assert_cmpfloat_with_epsilon (range.hi[c], sorted_percentile (sorted, n, high), 1e-3);
    }
}

static void
test_percentile_sizes (void)
{
  static const double pairs[][2] = { { 2, 98 }, { 0, 100 }, { 1, 99 }, { 50, 50.5 }, { 0.1, 5 } };
  g_autoptr(LodeRaster) small = ramp_raster (50, 40, 3, 100);
  g_autoptr(LodeRaster) large = ramp_raster (160, 128, 5, -300);
  g_autoptr(LodeRaster) flat = ramp_raster (128, 128, 9, 0);
  g_autoptr(GRand) rand = g_rand_new_with_seed (11);

  /* Mostly one value, a few others: ties everywhere. */
  for (gsize i = 0; i < 3 * 128 * 128; i++)
    flat->data[i] = g_rand_int_range (rand, 0, 100) < 97 ? 7.0f : (float) g_rand_int_range (rand, 0, 50);

  for (gsize p = 0; p < G_N_ELEMENTS (pairs); p++)
    {
      assert_percentiles_sorted (small, pairs[p][0], pairs[p][1]);
      assert_percentiles_sorted (large, pairs[p][0], pairs[p][1]);
      assert_percentiles_sorted (flat, pairs[p][0], pairs[p][1]);
    }
}

static void
test_percentile (void)
{
  g_autoptr(LodeRaster) r = ramp_raster (50, 40, 7, 100);
  gsize n = 50 * 40;
  g_autofree float *sorted = g_memdup2 (r->data, n * sizeof (float));
  g_autofree guint8 *rgba = g_malloc (n * 4);
  g_autoptr(GError) error = NULL;
  LodeStretchRange range;
  LodeCompositeSpec spec;
  double p2, p98;
  int below = 0, above = 0;

  lode_composite_spec_init (&spec, LODE_COMPOSITE_CUSTOM);
  g_assert_cmpfloat (spec.low_pct, ==, 2);
  g_assert_cmpfloat (spec.high_pct, ==, 98);
  g_assert_cmpfloat (spec.gamma, ==, 1);
  g_assert_true (lode_composite_compute_range (r, &spec, &range, &error));
  g_assert_no_error (error);

  qsort (sorted, n, sizeof (float), cmp_float);
  p2 = sorted_percentile (sorted, n, 2);
  p98 = sorted_percentile (sorted, n, 98);
  g_test_message ("band 0: p2 %g p98 %g", p2, p98);
  g_assert_cmpfloat_with_epsilon (range.lo[0], p2, 1e-3);
  g_assert_cmpfloat_with_epsilon (range.hi[0], p98, 1e-3);
  /* Band 2 is an untouched ramp 100 + 3 i. */
  g_assert_cmpfloat_with_epsilon (range.lo[2], 100 + 3 * 0.02 * (n - 1), 1e-3);
  g_assert_cmpfloat_with_epsilon (range.hi[2], 100 + 3 * 0.98 * (n - 1), 1e-3);

  g_assert_true (lode_composite_render_rgba (r, &spec, NULL, rgba, &error));
  /* Outliers are clipped, not stretched over. */
  g_assert_cmpint (px4 (rgba, 0)[0], ==, 255);
  g_assert_cmpint (px4 (rgba, 1)[0], ==, 0);
  for (gsize i = 0; i < n; i++)
    {
      float v = r->data[i];
      int expect = (int) (CLAMP ((v - p2) / (p98 - p2), 0.0, 1.0) * 255 + 0.5);

      g_assert_cmpint (abs (px4 (rgba, i)[0] - expect), <=, 1);
      below += v <= p2 && px4 (rgba, i)[0] == 0;
      above += v >= p98 && px4 (rgba, i)[0] == 255;
    }
  /* About 2 % of the pixels at each end saturate. */
  g_assert_cmpint (below, >=, 40);
  g_assert_cmpint (below, <=, 42);
  g_assert_cmpint (above, >=, 40);
  g_assert_cmpint (above, <=, 42);

  /* Percentiles ignore nodata: NAN everywhere but four pixels. */
  for (gsize i = 4; i < n; i++)
    r->data[i] = NAN;
  r->data[0] = 10;
  r->data[1] = 20;
  r->data[2] = 30;
  r->data[3] = 40;
  spec.low_pct = 0;
  spec.high_pct = 100;
  g_assert_true (lode_composite_compute_range (r, &spec, &range, &error));
  g_assert_cmpfloat (range.lo[0], ==, 10);
  g_assert_cmpfloat (range.hi[0], ==, 40);

  spec.low_pct = 60;
  spec.high_pct = 50;
  g_assert_false (lode_composite_compute_range (r, &spec, &range, &error));
  g_assert_error (error, LODE_COMPOSITE_ERROR, LODE_COMPOSITE_ERROR_SPEC);
}

static void
test_minmax_fixed_gamma (void)
{
  g_autoptr(LodeRaster) r = lode_raster_new (5, 1, 3);
  g_autoptr(GError) error = NULL;
  static const float ramp[5] = { -50, 0, 25, 50, 100 };
  LodeCompositeSpec spec;
  LodeStretchRange range;
  guint8 rgb[5 * 3];

  for (int b = 0; b < 3; b++)
    memcpy (r->data + b * 5, ramp, sizeof ramp);
  lode_composite_spec_init (&spec, LODE_COMPOSITE_CUSTOM);

  spec.stretch = LODE_STRETCH_MINMAX;
  g_assert_true (lode_composite_compute_range (r, &spec, &range, &error));
  g_assert_cmpfloat (range.lo[1], ==, -50);
  g_assert_cmpfloat (range.hi[1], ==, 100);
  g_assert_true (lode_composite_render_rgb (r, &spec, NULL, rgb, &error));
  g_assert_cmpint (rgb[0], ==, 0);
  g_assert_cmpint (rgb[3 * 1], ==, 85);    /* 50 / 150 */
  g_assert_cmpint (rgb[3 * 4], ==, 255);

  spec.stretch = LODE_STRETCH_FIXED;
  for (int c = 0; c < 3; c++)
    {
      spec.fixed_min[c] = 0;
      spec.fixed_max[c] = 100;
    }
  spec.fixed_max[2] = 50;
  g_assert_true (lode_composite_render_rgb (r, &spec, NULL, rgb, &error));
  g_assert_cmpmem (rgb, 3, ((guint8[]) { 0, 0, 0 }), 3);          /* below: clipped */
  g_assert_cmpmem (rgb + 6, 3, ((guint8[]) { 64, 64, 128 }), 3);  /* 25 */
  g_assert_cmpmem (rgb + 9, 3, ((guint8[]) { 128, 128, 255 }), 3); /* 50 */
  g_assert_cmpmem (rgb + 12, 3, ((guint8[]) { 255, 255, 255 }), 3);

  /* Gamma 2 lifts the quarter to the half: 255 sqrt (0.25). */
  spec.gamma = 2;
  g_assert_true (lode_composite_render_rgb (r, &spec, NULL, rgb, &error));
  g_assert_cmpint (rgb[6], ==, 128);
  g_assert_cmpint (rgb[9], ==, 180);  /* 255 sqrt (0.5) */
  g_assert_cmpint (rgb[12], ==, 255);
  g_assert_cmpint (rgb[3], ==, 0);
  spec.gamma = 0;
  g_assert_false (lode_composite_render_rgb (r, &spec, NULL, rgb, &error));
  g_assert_error (error, LODE_COMPOSITE_ERROR, LODE_COMPOSITE_ERROR_SPEC);
  g_clear_error (&error);

  /* A given range (for example a data set's) wins over the patch's. */
  spec.gamma = 1;
  spec.stretch = LODE_STRETCH_PERCENTILE;
  range = (LodeStretchRange) { { 0, 0, 0 }, { 200, 200, 200 } };
  g_assert_true (lode_composite_render_rgb (r, &spec, &range, rgb, &error));
  g_assert_cmpint (rgb[12], ==, 128);
}

static void
test_nodata (void)
{
  g_autoptr(LodeRaster) r = lode_raster_new (2, 2, 13);
  g_autoptr(GError) error = NULL;
  LodeCompositeSpec spec;
  guint8 rgba[4 * 4], rgb[4 * 3];

  for (gsize i = 0; i < 4 * 13; i++)
    r->data[i] = 500 + i;
  set_value (r, 2, 1, NAN);   /* B4 missing at pixel 1 */
  set_value (r, 12, 2, NAN);  /* DEM missing at pixel 2 */
  lode_raster_update_valid (r);
  g_assert_cmpint (r->valid[1], ==, 0);

  lode_composite_spec_init (&spec, LODE_COMPOSITE_TRUE_COLOUR);
  g_assert_true (lode_composite_render_rgba (r, &spec, NULL, rgba, &error));
  g_assert_true (lode_composite_render_rgb (r, &spec, NULL, rgb, &error));
  g_assert_no_error (error);
  g_assert_cmpint (px4 (rgba, 1)[3], ==, 0);
  g_assert_cmpmem (rgb + 3, 3, ((guint8[]) { 0, 0, 0 }), 3);
  /* A gap in a band the view does not use leaves the pixel visible. */
  g_assert_cmpint (px4 (rgba, 0)[3], ==, 255);
  g_assert_cmpint (px4 (rgba, 2)[3], ==, 255);
  g_assert_cmpint (px4 (rgba, 3)[3], ==, 255);
  g_assert_cmpint (px4 (rgba, 3)[0], ==, 255);

  lode_composite_spec_init (&spec, LODE_COMPOSITE_ELEVATION);
  g_assert_true (lode_composite_render_rgba (r, &spec, NULL, rgba, &error));
  g_assert_cmpint (px4 (rgba, 1)[3], ==, 255);
  g_assert_cmpint (px4 (rgba, 2)[3], ==, 0);
}

static void
test_indices (void)
{
  g_autoptr(LodeRaster) r = lode_raster_new (3, 1, 13);
  g_autoptr(GError) error = NULL;
  LodeCompositeSpec spec;
  guint8 rgba[3 * 4];
  static const LodeCompositePreset cases[] = {
    LODE_COMPOSITE_NDVI, LODE_COMPOSITE_NDWI, LODE_COMPOSITE_BSI,
  };

  /* Pixel 0: B2 500, B3 1500, B4 1000, B8 3000, B11 2000. */
  set_value (r, 0, 0, 500);
  set_value (r, 1, 0, 1500);
  set_value (r, 2, 0, 1000);
  set_value (r, 6, 0, 3000);
  set_value (r, 8, 0, 2000);
  /* Pixel 1: all zero, every index undefined. Pixel 2: bare B8 only. */
  set_value (r, 6, 2, 1000);

  for (gsize c = 0; c < G_N_ELEMENTS (cases); c++)
    {
      double index;

      switch (cases[c])
        {
        case LODE_COMPOSITE_NDVI:
          index = (3000.0 - 1000) / (3000 + 1000);
          break;
        case LODE_COMPOSITE_NDWI:
          index = (1500.0 - 3000) / (1500 + 3000);
          break;
        case LODE_COMPOSITE_BSI:
        default:
          index = ((2000.0 + 1000) - (3000 + 500)) / ((2000 + 1000) + (3000 + 500));
          break;
        }

      lode_composite_spec_init (&spec, cases[c]);
      g_assert_cmpint (lode_composite_preset_n_channels (cases[c]), ==, 1);
      spec.stretch = LODE_STRETCH_FIXED;
      g_assert_cmpfloat (spec.fixed_min[0], ==, -1);
      g_assert_cmpfloat (spec.fixed_max[0], ==, 1);
      spec.ramp = LODE_RAMP_GREY;
      g_assert_true (lode_composite_render_rgba (r, &spec, NULL, rgba, &error));
      g_assert_no_error (error);
      /* Fixed range -1..1: grey level (index + 1) / 2 * 255. */
      g_assert_cmpint (px4 (rgba, 0)[0], ==, (int) ((index + 1) / 2 * 255 + 0.5));
      g_assert_cmpint (px4 (rgba, 0)[1], ==, px4 (rgba, 0)[0]);
      g_assert_cmpint (px4 (rgba, 0)[2], ==, px4 (rgba, 0)[0]);
      /* 0 / 0 is no value. */
      g_assert_cmpint (px4 (rgba, 1)[3], ==, 0);
      g_assert_cmpint (px4 (rgba, 2)[3], ==, 255);
    }

  /* NDVI ramp: B8 only is +1 (green end), B4 only is -1 (brown end). */
  set_value (r, 2, 1, 1000);
  lode_composite_spec_init (&spec, LODE_COMPOSITE_NDVI);
  g_assert_cmpint (spec.ramp, ==, LODE_RAMP_COLOUR);
  spec.stretch = LODE_STRETCH_FIXED;
  g_assert_true (lode_composite_render_rgba (r, &spec, NULL, rgba, &error));
  g_assert_cmpint (px4 (rgba, 2)[1], >, px4 (rgba, 2)[0]);
  g_assert_cmpint (px4 (rgba, 2)[1], >, px4 (rgba, 2)[2]);
  g_assert_cmpint (px4 (rgba, 1)[0], >, px4 (rgba, 1)[1]);
  g_assert_cmpint (px4 (rgba, 1)[1], >, px4 (rgba, 1)[2]);
  g_assert_cmpint (px4 (rgba, 0)[3], ==, 255);
}

static void
test_elevation_ramp (void)
{
  g_autoptr(LodeRaster) r = lode_raster_new (256, 1, 13);
  g_autoptr(GError) error = NULL;
  LodeCompositeSpec spec;
  guint8 rgba[256 * 4];
  int changes = 0;

  for (int i = 0; i < 256; i++)
    set_value (r, 12, i, 100 + i);
  lode_composite_spec_init (&spec, LODE_COMPOSITE_ELEVATION);
  spec.stretch = LODE_STRETCH_MINMAX;
  spec.ramp = LODE_RAMP_GREY;
  g_assert_true (lode_composite_render_rgba (r, &spec, NULL, rgba, &error));
  for (int i = 0; i < 256; i++)
    {
      g_assert_cmpint (px4 (rgba, i)[0], ==, i);
      g_assert_cmpint (px4 (rgba, i)[2], ==, i);
    }

  spec.ramp = LODE_RAMP_COLOUR;
  g_assert_true (lode_composite_render_rgba (r, &spec, NULL, rgba, &error));
  /* A colour ramp: not grey, smooth, low and high ends differ. */
  g_assert_cmpint (px4 (rgba, 0)[0], !=, px4 (rgba, 0)[1]);
  for (int i = 1; i < 256; i++)
    {
      for (int c = 0; c < 3; c++)
        g_assert_cmpint (abs (px4 (rgba, i)[c] - px4 (rgba, i - 1)[c]), <=, 8);
      changes += memcmp (px4 (rgba, i), px4 (rgba, i - 1), 3) != 0;
    }
  g_assert_cmpint (changes, >, 200);
}

static void
test_accumulator (void)
{
  g_autoptr(LodeRaster) a = ramp_raster (64, 64, 1, 0);
  g_autoptr(LodeRaster) b = ramp_raster (64, 64, 2, 20000);
  g_autoptr(LodeRaster) six = lode_raster_new (4, 4, 6);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStretchAccumulator) one = NULL;
  g_autoptr(LodeStretchAccumulator) two = NULL;
  g_autoptr(LodeStretchAccumulator) sar = NULL;
  LodeCompositeSpec spec;
  LodeStretchRange patch_a, patch_b, acc1, acc2;

  lode_composite_spec_init (&spec, LODE_COMPOSITE_CUSTOM);
  g_assert_true (lode_composite_compute_range (a, &spec, &patch_a, &error));
  g_assert_true (lode_composite_compute_range (b, &spec, &patch_b, &error));

  one = lode_stretch_accumulator_new (&spec);
  g_assert_true (lode_stretch_accumulator_add (one, a, &error));
  g_assert_no_error (error);
  lode_stretch_accumulator_finish (one, &acc1);
  for (int c = 0; c < 3; c++)
    {
      g_assert_cmpfloat (acc1.lo[c], ==, patch_a.lo[c]);
      g_assert_cmpfloat (acc1.hi[c], ==, patch_a.hi[c]);
    }

  /* b is a's values shifted up by 20000: the data set spans both, so its
   * 2nd percentile is in a's range and its 98th in b's. */
  two = lode_stretch_accumulator_new (&spec);
  g_assert_true (lode_stretch_accumulator_add (two, a, &error));
  g_assert_true (lode_stretch_accumulator_add (two, b, &error));
  g_assert_cmpuint (lode_stretch_accumulator_count (two, 0), ==, 2 * 64 * 64);
  lode_stretch_accumulator_finish (two, &acc2);
  for (int c = 0; c < 3; c++)
    {
      g_assert_cmpfloat (acc2.lo[c], >, patch_a.lo[c]);
      g_assert_cmpfloat (acc2.lo[c], <, patch_a.hi[c]);
      g_assert_cmpfloat (acc2.hi[c], >, patch_b.lo[c]);
      g_assert_cmpfloat (acc2.hi[c], <, patch_b.hi[c]);
    }
  /* Band 2 of a is the ramp 3 i, i < 4096: the 2nd percentile of a and
   * a + 20000 together is rank 0.02 * 8191 of 3 i. */
  g_assert_cmpfloat_with_epsilon (acc2.lo[2], 3 * 0.02 * 8191, 1e-3);

  spec.stretch = LODE_STRETCH_MINMAX;
  lode_stretch_accumulator_free (g_steal_pointer (&two));
  two = lode_stretch_accumulator_new (&spec);
  g_assert_true (lode_stretch_accumulator_add (two, a, &error));
  g_assert_true (lode_stretch_accumulator_add (two, b, &error));
  lode_stretch_accumulator_finish (two, &acc2);
  g_assert_cmpfloat (acc2.lo[0], ==, -1e7f);
  g_assert_cmpfloat (acc2.hi[0], ==, 1e7f);
  g_assert_cmpfloat (acc2.lo[1], ==, 0);
  g_assert_cmpfloat (acc2.hi[1], ==, 20000 + 2 * 4095);

  lode_composite_spec_init (&spec, LODE_COMPOSITE_SAR);
  sar = lode_stretch_accumulator_new (&spec);
  g_assert_false (lode_stretch_accumulator_add (sar, six, &error));
  g_assert_error (error, LODE_COMPOSITE_ERROR, LODE_COMPOSITE_ERROR_BANDS);
}

/* Past the exact limit the percentiles come from the histogram. */
static void
test_accumulator_histogram (void)
{
  g_autoptr(LodeStretchAccumulator) acc = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) all = g_array_new (FALSE, FALSE, sizeof (float));
  LodeCompositeSpec spec;
  LodeStretchRange range;
  g_autoptr(GRand) rand = g_rand_new_with_seed (42);

  lode_composite_spec_init (&spec, LODE_COMPOSITE_ELEVATION);
  acc = lode_stretch_accumulator_new (&spec);
  /* 9 x 512 x 512 values: more than the accumulator keeps exactly. */
  for (int k = 0; k < 9; k++)
    {
      g_autoptr(LodeRaster) r = lode_raster_new (512, 512, 1);

      g_free (r->band_names[0]);
      r->band_names[0] = g_strdup ("elevation");
      for (gsize i = 0; i < 512 * 512; i++)
        r->data[i] = (float) (g_rand_double_range (rand, -20, 700) + 50 * k);
      g_array_append_vals (all, r->data, 512 * 512);
      g_assert_true (lode_stretch_accumulator_add (acc, r, &error));
    }
  lode_stretch_accumulator_finish (acc, &range);
  g_array_sort (all, cmp_float);
  for (int c = 0; c < 3; c++)
    {
      double lo = sorted_percentile ((float *) (void *) all->data, all->len, 2);
      double hi = sorted_percentile ((float *) (void *) all->data, all->len, 98);

      g_test_message ("histogram %g %g, exact %g %g", range.lo[c], range.hi[c], lo, hi);
      g_assert_cmpfloat (fabs (range.lo[c] - lo), <, 0.01 * fabs (lo));
      g_assert_cmpfloat (fabs (range.hi[c] - hi), <, 0.01 * fabs (hi));
    }
}

static void
test_shared_sample (void)
{
  const char *shared = lode_test_shared_dir ();
  g_autofree char *input = NULL;
  g_autoptr(LodeRaster) r = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree guint8 *rgba = NULL;
  g_autofree guint8 *rgb = NULL;
  LodeCompositeSpec spec;
  gsize n = 224 * 224;
  guint hist[256] = { 0 };
  int levels = 0;

  if (shared == NULL)
    return;
  input = g_build_filename (shared, "samples", "regression_test_0_input.tif", NULL);
  r = lode_raster_open (input, &error);
  g_assert_no_error (error);

  lode_composite_spec_init (&spec, LODE_COMPOSITE_TRUE_COLOUR);
  g_assert_true (lode_composite_resolve (&spec, r, &error));
  g_assert_cmpint (spec.bands[0], ==, 2);
  rgba = g_malloc (n * 4);
  rgb = g_malloc (n * 3);
  g_assert_true (lode_composite_render_rgba (r, &spec, NULL, rgba, &error));
  g_assert_true (lode_composite_render_rgb (r, &spec, NULL, rgb, &error));
  g_assert_no_error (error);
  for (gsize i = 0; i < n; i++)
    {
      g_assert_cmpint (rgba[4 * i + 3], ==, r->valid[i] ? 255 : 0);
      g_assert_cmpmem (rgba + 4 * i, 3, rgb + 3 * i, 3);
      hist[rgba[4 * i]]++;
    }
  for (int v = 0; v < 256; v++)
    levels += hist[v] > 0;
  /* A stretched picture uses the whole scale, about 2 % at each end. */
  g_assert_cmpint (levels, >, 200);
  g_assert_cmpuint (hist[0], >=, n / 100);
  g_assert_cmpuint (hist[0], <=, n / 25);
  g_assert_cmpuint (hist[255], >=, n / 100);
  g_assert_cmpuint (hist[255], <=, n / 25);

  lode_composite_spec_init (&spec, LODE_COMPOSITE_SAR);
  g_assert_false (lode_composite_render_rgba (r, &spec, NULL, rgba, &error));
  g_assert_error (error, LODE_COMPOSITE_ERROR, LODE_COMPOSITE_ERROR_BANDS);
}

static void
test_presets (void)
{
  for (int p = 0; p < LODE_COMPOSITE_N_PRESETS; p++)
    {
      LodeCompositePreset back;

      g_assert_true (lode_composite_preset_from_id (lode_composite_preset_id (p), &back));
      g_assert_cmpint (back, ==, p);
      g_assert_cmpuint (strlen (lode_composite_preset_label (p)), >, 3);
    }
  g_assert_cmpstr (lode_composite_preset_id (LODE_COMPOSITE_TRUE_COLOUR), ==, "true-colour");
  g_assert_cmpstr (lode_composite_preset_id (LODE_COMPOSITE_BSI), ==, "bsi");
  g_assert_false (lode_composite_preset_from_id ("infrared-ish", NULL));
}

/* Figures only: a 13-band 128 x 128 patch, per-patch percentile stretch. */
static void
test_timing (void)
{
  g_autoptr(LodeRaster) r = lode_raster_new (128, 128, 13);
  g_autoptr(GRand) rand = g_rand_new_with_seed (1);
  g_autoptr(GError) error = NULL;
  guint8 *rgba = g_malloc (128 * 128 * 4);
  LodeCompositeSpec spec;
  const int runs = 200;
  gint64 start;

  for (gsize i = 0; i < (gsize) 13 * 128 * 128; i++)
    r->data[i] = (float) g_rand_double_range (rand, 500, 5000);
  for (int p = 0; p < LODE_COMPOSITE_N_PRESETS; p++)
    {
      lode_composite_spec_init (&spec, p);
      start = g_get_monotonic_time ();
      for (int k = 0; k < runs; k++)
        g_assert_true (lode_composite_render_rgba (r, &spec, NULL, rgba, &error));
      g_test_message ("%-12s 128 x 128 x 13, 2-98 %% stretch: %.3f ms per patch",
                      lode_composite_preset_id (p),
                      (g_get_monotonic_time () - start) / 1000.0 / runs);
    }
  g_free (rgba);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/composite/presets", test_presets);
  g_test_add_func ("/composite/channel-order", test_channel_order);
  g_test_add_func ("/composite/sar", test_sar);
  g_test_add_func ("/composite/sar-on-6-bands", test_sar_on_6_bands);
  g_test_add_func ("/composite/generic-and-named", test_generic_and_named);
  g_test_add_func ("/composite/percentile", test_percentile);
  g_test_add_func ("/composite/percentile-sizes", test_percentile_sizes);
  g_test_add_func ("/composite/minmax-fixed-gamma", test_minmax_fixed_gamma);
  g_test_add_func ("/composite/nodata", test_nodata);
  g_test_add_func ("/composite/indices", test_indices);
  g_test_add_func ("/composite/elevation-ramp", test_elevation_ramp);
  g_test_add_func ("/composite/accumulator", test_accumulator);
  g_test_add_func ("/composite/accumulator-histogram", test_accumulator_histogram);
  g_test_add_func ("/composite/shared-sample", test_shared_sample);
  g_test_add_func ("/composite/timing", test_timing);
  return g_test_run ();
}
