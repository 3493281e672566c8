#define G_LOG_DOMAIN "lode-annotate"

#include "config.h"

#include <math.h>
#include <string.h>

#include <glib/gi18n.h>

#include "lode-bands.h"
#include "lode-composite.h"

G_DEFINE_QUARK (lode-composite-error-quark, lode_composite_error)

/* Table of the views: id, label, and the canonical names of the input bands
 * (NULL-terminated; custom has none). */
static const struct {
  const char *id;
  const char *label;
  const char *bands[5];
} presets[LODE_COMPOSITE_N_PRESETS] = {
  [LODE_COMPOSITE_TRUE_COLOUR] = { "true-colour", N_("True colour (B4 B3 B2)"), { "B4", "B3", "B2" } },
  [LODE_COMPOSITE_NIR] = { "nir", N_("Near infrared false colour (B8 B4 B3)"), { "B8", "B4", "B3" } },
  [LODE_COMPOSITE_SWIR] = { "swir", N_("Shortwave infrared (B12 B8A B4)"), { "B12", "B8A", "B4" } },
  [LODE_COMPOSITE_SAR] = { "sar", N_("Radar (VV, VH, VV − VH)"), { "VV", "VH" } },
  [LODE_COMPOSITE_ELEVATION] = { "elevation", N_("Elevation (DEM)"), { "DEM" } },
  [LODE_COMPOSITE_NDVI] = { "ndvi", N_("Vegetation index (NDVI)"), { "B8", "B4" } },
  [LODE_COMPOSITE_NDWI] = { "ndwi", N_("Water index (NDWI)"), { "B3", "B8" } },
  [LODE_COMPOSITE_BSI] = { "bsi", N_("Bare soil index (BSI)"), { "B11", "B4", "B8", "B2" } },
  [LODE_COMPOSITE_CUSTOM] = { "custom", N_("Custom bands"), { NULL } },
};

static gboolean
preset_is_valid (LodeCompositePreset p)
{
  return (int) p >= 0 && p < LODE_COMPOSITE_N_PRESETS;
}

const char *
lode_composite_preset_id (LodeCompositePreset p)
{
  g_return_val_if_fail (preset_is_valid (p), NULL);
  return presets[p].id;
}

const char *
lode_composite_preset_label (LodeCompositePreset p)
{
  g_return_val_if_fail (preset_is_valid (p), NULL);
  return _(presets[p].label);
}

gboolean
lode_composite_preset_from_id (const char *id, LodeCompositePreset *out)
{
  if (id == NULL)
    return FALSE;
  for (int p = 0; p < LODE_COMPOSITE_N_PRESETS; p++)
    if (g_ascii_strcasecmp (id, presets[p].id) == 0)
      {
        if (out != NULL)
          *out = (LodeCompositePreset) p;
        return TRUE;
      }
  return FALSE;
}

int
lode_composite_preset_n_channels (LodeCompositePreset p)
{
  switch (p)
    {
    case LODE_COMPOSITE_TRUE_COLOUR:
    case LODE_COMPOSITE_NIR:
    case LODE_COMPOSITE_SWIR:
    case LODE_COMPOSITE_SAR:
    case LODE_COMPOSITE_CUSTOM:
      return 3;
    case LODE_COMPOSITE_ELEVATION:
    case LODE_COMPOSITE_NDVI:
    case LODE_COMPOSITE_NDWI:
    case LODE_COMPOSITE_BSI:
    default:
      return 1;
    }
}

void
lode_composite_spec_init (LodeCompositeSpec *spec, LodeCompositePreset preset)
{
  /* Ranges for the fixed stretch, per view: reflectance x 10000, dB, metres
   * or an index in [-1, 1]. */
  static const double s2_range[2] = { 0, 3000 };
  static const double sar_range[3][2] = { { -25, 0 }, { -30, -5 }, { 0, 15 } };

  g_return_if_fail (spec != NULL);
  g_return_if_fail (preset_is_valid (preset));

  memset (spec, 0, sizeof *spec);
  spec->preset = preset;
  for (int i = 0; i < 4; i++)
    spec->bands[i] = -1;
  if (preset == LODE_COMPOSITE_CUSTOM)
    {
      spec->bands[0] = 0;
      spec->bands[1] = 1;
      spec->bands[2] = 2;
    }
  spec->stretch = LODE_STRETCH_PERCENTILE;
  spec->low_pct = 2.0;
  spec->high_pct = 98.0;
  spec->gamma = 1.0;
  spec->ramp = lode_composite_preset_n_channels (preset) == 1 ? LODE_RAMP_COLOUR : LODE_RAMP_GREY;
  for (int c = 0; c < 3; c++)
    {
      switch (preset)
        {
        case LODE_COMPOSITE_SAR:
          spec->fixed_min[c] = sar_range[c][0];
          spec->fixed_max[c] = sar_range[c][1];
          break;
        case LODE_COMPOSITE_ELEVATION:
          spec->fixed_min[c] = 0;
          spec->fixed_max[c] = 1000;
          break;
        case LODE_COMPOSITE_NDVI:
        case LODE_COMPOSITE_NDWI:
        case LODE_COMPOSITE_BSI:
          spec->fixed_min[c] = -1;
          spec->fixed_max[c] = 1;
          break;
        case LODE_COMPOSITE_TRUE_COLOUR:
        case LODE_COMPOSITE_NIR:
        case LODE_COMPOSITE_SWIR:
        case LODE_COMPOSITE_CUSTOM:
        default:
          spec->fixed_min[c] = s2_range[0];
          spec->fixed_max[c] = s2_range[1];
          break;
        }
    }
}

/* Band resolution ------------------------------------------------------- */

static gboolean
raster_has_known_names (const LodeRaster *r)
{
  for (int b = 0; b < r->n_bands; b++)
    if (lode_band_name_canonical (r->band_names[b]) != NULL)
      return TRUE;
  return FALSE;
}

/* The raster's band with this canonical name: by the band names when any is
 * known, else by the band profile its band count implies. */
static int
find_band (const LodeRaster *r, gboolean named, const char *canonical)
{
  if (!named)
    return lode_band_profile_find (lode_band_profile_detect (r->n_bands), canonical);
  for (int b = 0; b < r->n_bands; b++)
    {
      const char *name = lode_band_name_canonical (r->band_names[b]);

      if (name != NULL && strcmp (name, canonical) == 0)
        return b;
    }
  return -1;
}

static gboolean
check_spec (const LodeCompositeSpec *spec, GError **error)
{
  if (!preset_is_valid (spec->preset))
    {
      g_set_error (error, LODE_COMPOSITE_ERROR, LODE_COMPOSITE_ERROR_SPEC,
                   _("Unknown composite %d"), (int) spec->preset);
      return FALSE;
    }
  if (spec->stretch == LODE_STRETCH_PERCENTILE
      && !(spec->low_pct >= 0 && spec->low_pct < spec->high_pct && spec->high_pct <= 100))
    {
      g_set_error (error, LODE_COMPOSITE_ERROR, LODE_COMPOSITE_ERROR_SPEC,
                   /* Translators: the numbers are percentiles of a stretch. */
                   _("The stretch percentiles %g and %g must satisfy 0 ≤ low < high ≤ 100"),
                   spec->low_pct, spec->high_pct);
      return FALSE;
    }
  if (!(spec->gamma > 0 && isfinite (spec->gamma)))
    {
      g_set_error (error, LODE_COMPOSITE_ERROR, LODE_COMPOSITE_ERROR_SPEC,
                   _("The gamma %g must be a positive number"), spec->gamma);
      return FALSE;
    }
  return TRUE;
}

gboolean
lode_composite_resolve (LodeCompositeSpec *spec, const LodeRaster *r, GError **error)
{
  gboolean named;
  int found[4] = { -1, -1, -1, -1 };

  g_return_val_if_fail (spec != NULL && r != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!check_spec (spec, error))
    return FALSE;

  if (spec->preset == LODE_COMPOSITE_CUSTOM)
    {
      for (int c = 0; c < 3; c++)
        if (spec->bands[c] < 0 || spec->bands[c] >= r->n_bands)
          {
            g_set_error (error, LODE_COMPOSITE_ERROR, LODE_COMPOSITE_ERROR_SPEC,
                         /* Translators: “%s” is a file; %d are band numbers counted from 1. */
                         _("“%s” has no band %d: it has %d bands"),
                         lode_raster_display_name (r), spec->bands[c] + 1, r->n_bands);
            return FALSE;
          }
      spec->bands[3] = -1;
      return TRUE;
    }

  named = raster_has_known_names (r);
  for (int i = 0; presets[spec->preset].bands[i] != NULL; i++)
    {
      const char *want = presets[spec->preset].bands[i];

      found[i] = find_band (r, named, want);
      /* The 6-band set has only the narrow NIR; it serves where B8 is asked. */
      if (found[i] < 0 && strcmp (want, "B8") == 0)
        found[i] = find_band (r, named, "B8A");
      if (found[i] >= 0)
        continue;

      if (spec->preset == LODE_COMPOSITE_TRUE_COLOUR && !named && r->n_bands >= 3)
        {
          /* A generic file: assume blue, green, red come first. */
          found[0] = 2;
          found[1] = 1;
          found[2] = 0;
          break;
        }
      g_set_error (error, LODE_COMPOSITE_ERROR, LODE_COMPOSITE_ERROR_BANDS,
                   /* Translators: “%s” is a file, the second %s a band such as VV,
                    * the third the name of a view such as “Radar (VV, VH, VV − VH)”. */
                   _("“%s” has no %s band, which the view “%s” needs"),
                   lode_raster_display_name (r), want, lode_composite_preset_label (spec->preset));
      return FALSE;
    }
  memcpy (spec->bands, found, sizeof found);
  return TRUE;
}

/* Channels -------------------------------------------------------------- */

/* The output channels of a view over one raster: band data where a channel
 * is a band, computed values otherwise. NAN where undefined. */
typedef struct
{
  int          n_channels;
  gsize        n;
  const float *ch[3];
  float       *owned;
} Channels;

static void
channels_clear (Channels *chan)
{
  g_clear_pointer (&chan->owned, g_free);
}

static void
normalised_difference (float *out, gsize n, const float *p0, const float *p1,
                       const float *q0, const float *q1)
{
  for (gsize i = 0; i < n; i++)
    {
      float p = p1 != NULL ? p0[i] + p1[i] : p0[i];
      float q = q1 != NULL ? q0[i] + q1[i] : q0[i];
      float sum = p + q;

      out[i] = sum != 0.0f ? (p - q) / sum : NAN;
    }
}

static gboolean
channels_build (Channels *chan, const LodeRaster *r, const LodeCompositeSpec *in_spec,
                GError **error)
{
  LodeCompositeSpec spec = *in_spec;
  const float *b[4] = { NULL };

  memset (chan, 0, sizeof *chan);
  if (!lode_composite_resolve (&spec, r, error))
    return FALSE;

  chan->n = (gsize) r->width * r->height;
  chan->n_channels = lode_composite_preset_n_channels (spec.preset);
  for (int i = 0; i < 4; i++)
    if (spec.bands[i] >= 0)
      b[i] = lode_raster_band (r, spec.bands[i]);

  switch (spec.preset)
    {
    case LODE_COMPOSITE_SAR:
      chan->owned = g_new (float, chan->n);
      for (gsize i = 0; i < chan->n; i++)
        chan->owned[i] = b[0][i] - b[1][i];
      chan->ch[0] = b[0];
      chan->ch[1] = b[1];
      chan->ch[2] = chan->owned;
      break;
    case LODE_COMPOSITE_NDVI:
    case LODE_COMPOSITE_NDWI:
      chan->owned = g_new (float, chan->n);
      normalised_difference (chan->owned, chan->n, b[0], NULL, b[1], NULL);
      chan->ch[0] = chan->owned;
      break;
    case LODE_COMPOSITE_BSI:
      chan->owned = g_new (float, chan->n);
      normalised_difference (chan->owned, chan->n, b[0], b[1], b[2], b[3]);
      chan->ch[0] = chan->owned;
      break;
    case LODE_COMPOSITE_ELEVATION:
      chan->ch[0] = b[0];
      break;
    case LODE_COMPOSITE_TRUE_COLOUR:
    case LODE_COMPOSITE_NIR:
    case LODE_COMPOSITE_SWIR:
    case LODE_COMPOSITE_CUSTOM:
    default:
      for (int c = 0; c < 3; c++)
        chan->ch[c] = b[c];
      break;
    }
  return TRUE;
}

/* Selection ------------------------------------------------------------- */

/* Reorders a[0..n) so that a[k] holds the k-th smallest value, with nothing
 * larger before it and nothing smaller after it (Hoare partition, median of
 * three). O(n) on average. a holds no NAN. */
static float
select_kth (float *a, gssize n, gssize k)
{
  gssize lo = 0, hi = n - 1;

  while (hi > lo)
    {
      gssize mid = lo + (hi - lo) / 2;
      gssize i = lo, j = hi;
      float pivot, t;

      if (a[mid] < a[lo]) { t = a[mid]; a[mid] = a[lo]; a[lo] = t; }
      if (a[hi] < a[lo]) { t = a[hi]; a[hi] = a[lo]; a[lo] = t; }
      if (a[hi] < a[mid]) { t = a[hi]; a[hi] = a[mid]; a[mid] = t; }
      pivot = a[mid];

      while (i <= j)
        {
          while (a[i] < pivot)
            i++;
          while (a[j] > pivot)
            j--;
          if (i <= j)
            {
              t = a[i]; a[i] = a[j]; a[j] = t;
              i++;
              j--;
            }
        }
      if (k <= j)
        hi = j;
      else if (k >= i)
        lo = i;
      else
        break;
    }
  return a[k];
}

static float
min_of (const float *a, gssize n)
{
  float m = a[0];

  for (gssize i = 1; i < n; i++)
    if (a[i] < m)
      m = a[i];
  return m;
}

/* The value at fractional rank (0-based) of a[0..n); reorders a. numpy's
 * default: linear interpolation between the neighbouring ranks. */
static double
value_at_rank (float *a, gssize n, double rank)
{
  gssize k = (gssize) floor (rank);
  double v = select_kth (a, n, k);

  if (rank > k && k + 1 < n)
    v += (rank - k) * (min_of (a + k + 1, n - k - 1) - v);
  return v;
}

static int
cmp_float (const void *pa, const void *pb)
{
  float x = *(const float *) pa, y = *(const float *) pb;

  return (x > y) - (x < y);
}

#define SAMPLE_SIZE 256
/* Half-width of a bracket, as a fraction of the ranks: over 3.5 standard
 * deviations of a percentile estimated from SAMPLE_SIZE values. */
#define SAMPLE_MARGIN 0.03

typedef struct
{
  double rank;        /* wanted fractional rank */
  float  below_than;  /* values below it are counted, not kept */
  float  above_than;  /* values above it are dropped */
  float *kept;
  gssize n_kept;
  gssize n_below;
} Bracket;

static void
bracket_init (Bracket *b, const float *sample, double fraction, gssize n, float *buffer)
{
  gssize lo = (gssize) floor ((fraction - SAMPLE_MARGIN) * (SAMPLE_SIZE - 1));
  gssize hi = (gssize) ceil ((fraction + SAMPLE_MARGIN) * (SAMPLE_SIZE - 1));

  b->rank = fraction * (n - 1);
  b->below_than = lo <= 0 ? -INFINITY : sample[lo];
  b->above_than = hi >= SAMPLE_SIZE - 1 ? INFINITY : sample[hi];
  b->kept = buffer;
  b->n_kept = 0;
  b->n_below = 0;
}

/* Counts or keeps x; FALSE when the bracket holds too many to be useful. */
static inline gboolean
bracket_take (Bracket *b, float x, gssize cap)
{
  if (x < b->below_than)
    b->n_below++;
  else if (x <= b->above_than)
    {
      if (b->n_kept == cap)
        return FALSE;
      b->kept[b->n_kept++] = x;
    }
  return TRUE;
}

/* Both ranks the interpolation reads lie among the kept values. */
static gboolean
bracket_holds (const Bracket *b, gssize n)
{
  gssize k = (gssize) floor (b->rank);
  gssize last = MIN (k + 1, n - 1);

  return b->n_below <= k && last < b->n_below + b->n_kept;
}

/* The low and high percentiles of a[0..n), numpy's linear method; may
 * reorder a. A pseudo-random sample brackets each percentile, one pass keeps
 * the few values inside the brackets and a selection among those finishes:
 * about one pass over the data instead of two full selections. Falls back to
 * selecting over all of a when a bracket misses or overflows. */
static void
percentile_pair (float *a, gssize n, double low_pct, double high_pct, double *lo, double *hi)
{
  float sample[SAMPLE_SIZE];
  g_autofree float *buffer = NULL;
  gssize cap = n / 8 + 64;
  Bracket bl, bh;
  guint32 state = 2463534242u;

  if (n < 16 * SAMPLE_SIZE)
    goto select_all;

  for (int i = 0; i < SAMPLE_SIZE; i++)
    {
      state ^= state << 13;
      state ^= state >> 17;
      state ^= state << 5;
      sample[i] = a[state % (guint32) n];
    }
  qsort (sample, SAMPLE_SIZE, sizeof (float), cmp_float);

  buffer = g_new (float, 2 * cap);
  bracket_init (&bl, sample, low_pct / 100.0, n, buffer);
  bracket_init (&bh, sample, high_pct / 100.0, n, buffer + cap);
  for (gssize i = 0; i < n; i++)
    if (!bracket_take (&bl, a[i], cap) || !bracket_take (&bh, a[i], cap))
      goto select_all;
  if (!bracket_holds (&bl, n) || !bracket_holds (&bh, n))
    goto select_all;

  *lo = value_at_rank (bl.kept, bl.n_kept, bl.rank - bl.n_below);
  *hi = value_at_rank (bh.kept, bh.n_kept, bh.rank - bh.n_below);
  return;

select_all:
  *lo = value_at_rank (a, n, low_pct / 100.0 * (n - 1));
  *hi = value_at_rank (a, n, high_pct / 100.0 * (n - 1));
}

static gsize
gather_finite (const float *src, gsize n, float *dst)
{
  gsize m = 0;

  for (gsize i = 0; i < n; i++)
    if (isfinite (src[i]))
      dst[m++] = src[i];
  return m;
}

static void
range_fill_single (LodeStretchRange *out, int n_channels)
{
  for (int c = n_channels; c < 3; c++)
    {
      out->lo[c] = out->lo[0];
      out->hi[c] = out->hi[0];
    }
}

static void
channels_range (const Channels *chan, const LodeCompositeSpec *spec, LodeStretchRange *out)
{
  g_autofree float *scratch = NULL;

  memset (out, 0, sizeof *out);
  if (spec->stretch == LODE_STRETCH_PERCENTILE)
    scratch = g_new (float, chan->n);

  for (int c = 0; c < chan->n_channels; c++)
    {
      const float *v = chan->ch[c];

      switch (spec->stretch)
        {
        case LODE_STRETCH_FIXED:
          out->lo[c] = spec->fixed_min[c];
          out->hi[c] = spec->fixed_max[c];
          break;
        case LODE_STRETCH_MINMAX:
          {
            float mn = INFINITY, mx = -INFINITY;

            for (gsize i = 0; i < chan->n; i++)
              if (isfinite (v[i]))
                {
                  mn = MIN (mn, v[i]);
                  mx = MAX (mx, v[i]);
                }
            if (mn <= mx)
              {
                out->lo[c] = mn;
                out->hi[c] = mx;
              }
          }
          break;
        case LODE_STRETCH_PERCENTILE:
        default:
          {
            gsize m = gather_finite (v, chan->n, scratch);

            if (m > 0)
              percentile_pair (scratch, m, spec->low_pct, spec->high_pct, &out->lo[c], &out->hi[c]);
          }
          break;
        }
    }
  range_fill_single (out, chan->n_channels);
}

gboolean
lode_composite_compute_range (const LodeRaster *r, const LodeCompositeSpec *spec,
                              LodeStretchRange *out, GError **error)
{
  Channels chan;

  g_return_val_if_fail (r != NULL && r->data != NULL, FALSE);
  g_return_val_if_fail (spec != NULL && out != NULL, FALSE);

  if (!channels_build (&chan, r, spec, error))
    return FALSE;
  channels_range (&chan, spec, out);
  channels_clear (&chan);
  return TRUE;
}

/* Data-set accumulator --------------------------------------------------- */

#define HIST_BITS 16
#define HIST_BINS (1 << HIST_BITS)
/* Values kept exactly per channel before falling back to the histogram
 * (8 MiB each): about 128 patches of 128 x 128. */
#define EXACT_LIMIT ((gsize) 1 << 21)

struct _LodeStretchAccumulator
{
  LodeCompositeSpec spec;
  int               n_channels;
  guint64           count[3];
  double            min[3];
  double            max[3];
  guint64          *hist[3];   /* percentile stretch only */
  GArray           *exact[3];  /* NULL once past EXACT_LIMIT */
};

/* A float's bits, reordered so that unsigned order is numeric order. */
static guint32
float_key (float f)
{
  guint32 u;

  memcpy (&u, &f, sizeof u);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static float
key_float (guint32 key)
{
  guint32 u = (key & 0x80000000u) ? (key & 0x7fffffffu) : ~key;
  float f;

  memcpy (&f, &u, sizeof f);
  return f;
}

LodeStretchAccumulator *
lode_stretch_accumulator_new (const LodeCompositeSpec *spec)
{
  LodeStretchAccumulator *acc;

  g_return_val_if_fail (spec != NULL && preset_is_valid (spec->preset), NULL);

  acc = g_new0 (LodeStretchAccumulator, 1);
  acc->spec = *spec;
  acc->n_channels = lode_composite_preset_n_channels (spec->preset);
  for (int c = 0; c < acc->n_channels; c++)
    {
      acc->min[c] = INFINITY;
      acc->max[c] = -INFINITY;
      if (spec->stretch == LODE_STRETCH_PERCENTILE)
        {
          acc->hist[c] = g_new0 (guint64, HIST_BINS);
          acc->exact[c] = g_array_new (FALSE, FALSE, sizeof (float));
        }
    }
  return acc;
}

void
lode_stretch_accumulator_free (LodeStretchAccumulator *acc)
{
  if (acc == NULL)
    return;
  for (int c = 0; c < 3; c++)
    {
      g_free (acc->hist[c]);
      if (acc->exact[c] != NULL)
        g_array_unref (acc->exact[c]);
    }
  g_free (acc);
}

gboolean
lode_stretch_accumulator_add (LodeStretchAccumulator *acc, const LodeRaster *r, GError **error)
{
  Channels chan;

  g_return_val_if_fail (acc != NULL && r != NULL && r->data != NULL, FALSE);

  if (!channels_build (&chan, r, &acc->spec, error))
    return FALSE;

  for (int c = 0; c < acc->n_channels; c++)
    {
      const float *v = chan.ch[c];
      guint64 *hist = acc->hist[c];
      double mn = acc->min[c], mx = acc->max[c];
      guint64 added = 0;

      for (gsize i = 0; i < chan.n; i++)
        {
          if (!isfinite (v[i]))
            continue;
          added++;
          mn = MIN (mn, v[i]);
          mx = MAX (mx, v[i]);
          if (hist != NULL)
            hist[float_key (v[i]) >> (32 - HIST_BITS)]++;
        }
      acc->min[c] = mn;
      acc->max[c] = mx;
      acc->count[c] += added;

      if (acc->exact[c] != NULL)
        {
          if (acc->count[c] > EXACT_LIMIT)
            g_clear_pointer (&acc->exact[c], g_array_unref);
          else
            {
              gsize old = acc->exact[c]->len;

              g_array_set_size (acc->exact[c], old + added);
              gather_finite (v, chan.n, &g_array_index (acc->exact[c], float, old));
            }
        }
    }
  channels_clear (&chan);
  return TRUE;
}

guint64
lode_stretch_accumulator_count (LodeStretchAccumulator *acc, int c)
{
  g_return_val_if_fail (acc != NULL && c >= 0 && c < 3, 0);
  return acc->count[c];
}

/* The value at fractional rank (0-based) among the histogram's n values:
 * linear within the bin, which spans under 1 % of its values' magnitude. */
static double
hist_value (const guint64 *hist, guint64 n, double rank, double mn, double mx)
{
  guint64 before = 0;

  for (guint32 bin = 0; bin < HIST_BINS; bin++)
    {
      if (hist[bin] == 0)
        continue;
      if (rank < (double) (before + hist[bin]))
        {
          double first = key_float (bin << (32 - HIST_BITS));
          double last = key_float ((bin << (32 - HIST_BITS)) | ((1u << (32 - HIST_BITS)) - 1));
          double f = (rank - before + 0.5) / hist[bin];

          return CLAMP (first + f * (last - first), mn, mx);
        }
      before += hist[bin];
    }
  return mx;
}

void
lode_stretch_accumulator_finish (LodeStretchAccumulator *acc, LodeStretchRange *out)
{
  g_return_if_fail (acc != NULL && out != NULL);

  memset (out, 0, sizeof *out);
  for (int c = 0; c < acc->n_channels; c++)
    {
      guint64 n = acc->count[c];

      if (acc->spec.stretch == LODE_STRETCH_FIXED)
        {
          out->lo[c] = acc->spec.fixed_min[c];
          out->hi[c] = acc->spec.fixed_max[c];
        }
      else if (n == 0)
        continue;
      else if (acc->spec.stretch == LODE_STRETCH_MINMAX)
        {
          out->lo[c] = acc->min[c];
          out->hi[c] = acc->max[c];
        }
      else if (acc->exact[c] != NULL)
        percentile_pair ((float *) (void *) acc->exact[c]->data, acc->exact[c]->len,
                         acc->spec.low_pct, acc->spec.high_pct, &out->lo[c], &out->hi[c]);
      else
        {
          out->lo[c] = hist_value (acc->hist[c], n, acc->spec.low_pct / 100.0 * (n - 1),
                                   acc->min[c], acc->max[c]);
          out->hi[c] = hist_value (acc->hist[c], n, acc->spec.high_pct / 100.0 * (n - 1),
                                   acc->min[c], acc->max[c]);
        }
    }
  range_fill_single (out, acc->n_channels);
}

/* Rendering ------------------------------------------------------------- */

typedef struct
{
  guint8 r, g, b;
} Rgb;

/* Colour ramps as a few stops, interpolated linearly. */
static const Rgb ramp_viridis[] = {
  { 68, 1, 84 }, { 59, 82, 139 }, { 33, 145, 140 }, { 94, 201, 98 }, { 253, 231, 37 },
};
static const Rgb ramp_vegetation[] = {
  { 140, 81, 10 }, { 216, 179, 101 }, { 246, 232, 195 }, { 145, 207, 96 }, { 26, 122, 40 },
};
static const Rgb ramp_water[] = {
  { 166, 97, 26 }, { 245, 245, 220 }, { 65, 182, 196 }, { 34, 94, 168 }, { 8, 29, 88 },
};

static void
ramp_table (LodeCompositePreset preset, Rgb table[256])
{
  const Rgb *stops = ramp_viridis;
  int n_stops = G_N_ELEMENTS (ramp_viridis);
  gboolean reverse = FALSE;

  switch (preset)
    {
    case LODE_COMPOSITE_NDVI:
      stops = ramp_vegetation;
      n_stops = G_N_ELEMENTS (ramp_vegetation);
      break;
    case LODE_COMPOSITE_BSI:
      /* More bare soil, more brown. */
      stops = ramp_vegetation;
      n_stops = G_N_ELEMENTS (ramp_vegetation);
      reverse = TRUE;
      break;
    case LODE_COMPOSITE_NDWI:
      stops = ramp_water;
      n_stops = G_N_ELEMENTS (ramp_water);
      break;
    default:
      break;
    }

  for (int i = 0; i < 256; i++)
    {
      double pos = (reverse ? 255 - i : i) / 255.0 * (n_stops - 1);
      int s = MIN ((int) pos, n_stops - 2);
      double f = pos - s;
      const Rgb *a = &stops[s], *b = &stops[s + 1];

      table[i].r = (guint8) lround (a->r + f * (b->r - a->r));
      table[i].g = (guint8) lround (a->g + f * (b->g - a->g));
      table[i].b = (guint8) lround (a->b + f * (b->b - a->b));
    }
}

#define GAMMA_STEPS 4096

typedef struct
{
  double  lo[3];
  double  scale[3];          /* 1 / (hi - lo); 0 when hi == lo */
  guint8 *gamma_lut;         /* GAMMA_STEPS + 1 entries, NULL for gamma 1 */
} Mapping;

static inline guint8
map_value (const Mapping *m, int c, float v)
{
  double t;

  if (m->scale[c] != 0.0)
    t = (v - m->lo[c]) * m->scale[c];
  else
    t = v < m->lo[c] ? 0.0 : v > m->lo[c] ? 1.0 : 0.5;
  t = CLAMP (t, 0.0, 1.0);
  if (m->gamma_lut != NULL)
    return m->gamma_lut[(int) (t * GAMMA_STEPS + 0.5)];
  return (guint8) (t * 255.0 + 0.5);
}

static gboolean
render (const LodeRaster *r, const LodeCompositeSpec *spec, const LodeStretchRange *range,
        guint8 *out, int stride, GError **error)
{
  Channels chan;
  LodeStretchRange own;
  Mapping m = { { 0 } };
  g_autofree guint8 *gamma_lut = NULL;
  Rgb table[256];
  gboolean ramp;

  g_return_val_if_fail (r != NULL && r->data != NULL, FALSE);
  g_return_val_if_fail (spec != NULL && out != NULL, FALSE);

  if (!channels_build (&chan, r, spec, error))
    return FALSE;
  if (range == NULL)
    {
      channels_range (&chan, spec, &own);
      range = &own;
    }

  for (int c = 0; c < 3; c++)
    {
      double span = range->hi[c] - range->lo[c];

      m.lo[c] = range->lo[c];
      m.scale[c] = span != 0.0 && isfinite (span) ? 1.0 / span : 0.0;
    }
  if (spec->gamma != 1.0)
    {
      gamma_lut = g_new (guint8, GAMMA_STEPS + 1);
      for (int i = 0; i <= GAMMA_STEPS; i++)
        gamma_lut[i] = (guint8) lround (255.0 * pow ((double) i / GAMMA_STEPS, 1.0 / spec->gamma));
      m.gamma_lut = gamma_lut;
    }

  ramp = chan.n_channels == 1 && spec->ramp == LODE_RAMP_COLOUR;
  if (ramp)
    ramp_table (spec->preset, table);

  for (gsize i = 0; i < chan.n; i++)
    {
      guint8 *px = out + i * stride;

      if (chan.n_channels == 3)
        {
          float v0 = chan.ch[0][i], v1 = chan.ch[1][i], v2 = chan.ch[2][i];

          if (isfinite (v0) && isfinite (v1) && isfinite (v2))
            {
              px[0] = map_value (&m, 0, v0);
              px[1] = map_value (&m, 1, v1);
              px[2] = map_value (&m, 2, v2);
              if (stride == 4)
                px[3] = 255;
              continue;
            }
        }
      else if (isfinite (chan.ch[0][i]))
        {
          guint8 g = map_value (&m, 0, chan.ch[0][i]);

          if (ramp)
            {
              px[0] = table[g].r;
              px[1] = table[g].g;
              px[2] = table[g].b;
            }
          else
            px[0] = px[1] = px[2] = g;
          if (stride == 4)
            px[3] = 255;
          continue;
        }
      memset (px, 0, stride);
    }

  channels_clear (&chan);
  return TRUE;
}

gboolean
lode_composite_render_rgba (const LodeRaster *r, const LodeCompositeSpec *spec,
                            const LodeStretchRange *range, guint8 *rgba, GError **error)
{
  return render (r, spec, range, rgba, 4, error);
}

gboolean
lode_composite_render_rgb (const LodeRaster *r, const LodeCompositeSpec *spec,
                           const LodeStretchRange *range, guint8 *rgb, GError **error)
{
  return render (r, spec, range, rgb, 3, error);
}
