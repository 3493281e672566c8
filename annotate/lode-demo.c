#define G_LOG_DOMAIN "lode-annotate"

#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gi18n.h>
#include <glib/gstdio.h>

/* GDAL's headers test compiler macros that are not always defined. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wundef"
#include <cpl_conv.h>
#include <cpl_error.h>
#include <gdal.h>
#include <ogr_srs_api.h>
#pragma GCC diagnostic pop

#include "lode-demo.h"
#include "lode-splits.h"

/* A synthetic SmallMinesDS: every tile is a small landscape of forest,
 * cocoa plots, clearings, a river now and then, and mining pits and ponds
 * that grow between 2016 and 2022.  The land cover is drawn first; the
 * 13 bands and the masks are derived from it.  Everything comes from
 * counter-based hashes and one xoshiro256** stream per tile, so a seed
 * always gives the same bytes whatever order the tiles are made in. */

G_DEFINE_QUARK (lode-demo-error-quark, lode_demo_error)

#define N_BANDS 13
#define N_OPTICAL 10
#define BAND_VV 10
#define BAND_VH 11
#define BAND_DEM 12
#define IMAGE_NODATA (-9999.0)
#define MASK_NODATA 255
#define PIXEL_METRES 10.0
#define MAX_TILES 9999
#define MIN_SIZE 16
#define MAX_SIZE 4096

static const int years[2] = { 2016, 2022 };

static const char * const band_names[N_BANDS] = {
  "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12", "VV", "VH", "DEM",
};

typedef enum {
  COVER_FOREST,
  COVER_COCOA,
  COVER_CLEARING,
  COVER_PIT,
  COVER_POND,
  COVER_RIVER,
  N_COVERS
} Cover;

#define COVER_IS_MINING(c) ((c) == COVER_PIT || (c) == COVER_POND)

/* Sentinel-2 L2A digital numbers: reflectance x 10000 plus the offset of
 * 1000 that processing baseline 04.00 adds (the observed minima of the
 * data set sit just above it).  B2 B3 B4 B5 B6 B7 B8 B8A B11 B12. */
static const float optical_dn[N_COVERS][N_OPTICAL] = {
  [COVER_FOREST]   = { 1230, 1480, 1310, 1760, 3020, 3560, 3800, 4000, 2620, 1740 },
  [COVER_COCOA]    = { 1290, 1580, 1440, 1930, 3080, 3560, 3850, 4060, 2860, 1960 },
  [COVER_CLEARING] = { 1450, 1800, 1900, 2350, 2950, 3250, 3400, 3550, 3400, 2550 },
  [COVER_PIT]      = { 1900, 2300, 2650, 2950, 3050, 3150, 3100, 3300, 4400, 3700 },
  [COVER_POND]     = { 1800, 2150, 2250, 1950, 1480, 1380, 1250, 1200, 1080, 1040 },
  [COVER_RIVER]    = { 1550, 1800, 1850, 1650, 1350, 1280, 1200, 1160, 1060, 1030 },
};

/* How strongly the texture of a cover modulates each optical band: canopy
 * shadows darken the near infrared most, sediment load the visible. */
static const float texture_amplitude[N_COVERS] = {
  [COVER_FOREST] = 0.22, [COVER_COCOA] = 0.10, [COVER_CLEARING] = 0.18,
  [COVER_PIT] = 0.25, [COVER_POND] = 0.30, [COVER_RIVER] = 0.20,
};

/* Sentinel-1 backscatter in dB: VV, VH. */
static const float radar_db[N_COVERS][2] = {
  [COVER_FOREST]   = { -7.0, -13.0 },
  [COVER_COCOA]    = { -7.6, -13.8 },
  [COVER_CLEARING] = { -8.5, -15.5 },
  [COVER_PIT]      = { -5.5, -12.5 },
  [COVER_POND]     = { -18.0, -25.0 },
  [COVER_RIVER]    = { -17.0, -24.0 },
};

/* The five mining districts of south-western Ghana the tiles spread over:
 * approximate centres and the height of their valley floors. */
static const struct
{
  double lat, lon, elevation;
} districts[] = {
  { 6.30, -1.90, 150.0 },  /* Amansie West */
  { 6.20, -0.58, 190.0 },  /* Atiwa, around Kyebi */
  { 5.45, -2.15, 110.0 },  /* Prestea-Huni Valley */
  { 5.30, -1.99, 100.0 },  /* Tarkwa-Nsuaem */
  { 6.18, -1.68, 170.0 },  /* Obuasi and Adansi */
};
#define N_DISTRICTS G_N_ELEMENTS (districts)

/* Random numbers. */

static guint64
splitmix64 (guint64 *state)
{
  guint64 z = (*state += 0x9e3779b97f4a7c15ULL);

  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static guint64
hash3 (guint64 key, gint64 a, gint64 b)
{
  guint64 state = key ^ ((guint64) a * 0xd6e8feb86659fd93ULL) ^ ((guint64) b * 0xa0761d6478bd642fULL);

  return splitmix64 (&state);
}

/* Uniform in [0, 1) from a key and two integers. */
static double
hash_unit (guint64 key, gint64 a, gint64 b)
{
  return (hash3 (key, a, b) >> 11) * 0x1.0p-53;
}

/* About normal, mean 0 and deviation 1, from four uniforms. */
static double
hash_normal (guint64 key, gint64 a, gint64 b)
{
  guint64 h = hash3 (key, a, b);
  double sum = 0.0;

  for (int i = 0; i < 4; i++)
    sum += ((h >> (16 * i)) & 0xffff) / 65536.0;
  return (sum - 2.0) * 1.7320508;
}

typedef struct
{
  guint64 s[4];
} Rng;

static void
rng_init (Rng *rng, guint64 seed, guint64 stream)
{
  guint64 state = seed ^ (stream * 0xc2b2ae3d27d4eb4fULL);

  for (int i = 0; i < 4; i++)
    rng->s[i] = splitmix64 (&state);
}

static inline guint64
rotl (guint64 x, int k)
{
  return (x << k) | (x >> (64 - k));
}

/* xoshiro256** */
static guint64
rng_next (Rng *rng)
{
  guint64 *s = rng->s;
  guint64 result = rotl (s[1] * 5, 7) * 9;
  guint64 t = s[1] << 17;

  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl (s[3], 45);
  return result;
}

static double
rng_range (Rng *rng, double lo, double hi)
{
  return lo + (hi - lo) * ((rng_next (rng) >> 11) * 0x1.0p-53);
}

static guint
rng_below (Rng *rng, guint n)
{
  return (guint) (rng_range (rng, 0.0, 1.0) * n) % n;
}

/* Smooth value noise: random values on the integer lattice, blended with
 * a smoothstep; fbm sums octaves and stays in [0, 1]. */
static double
value_noise (guint64 key, double x, double y)
{
  double fx = floor (x), fy = floor (y);
  gint64 ix = (gint64) fx, iy = (gint64) fy;
  double tx = x - fx, ty = y - fy;
  double a, b, c, d;

  tx = tx * tx * (3.0 - 2.0 * tx);
  ty = ty * ty * (3.0 - 2.0 * ty);
  a = hash_unit (key, ix, iy);
  b = hash_unit (key, ix + 1, iy);
  c = hash_unit (key, ix, iy + 1);
  d = hash_unit (key, ix + 1, iy + 1);
  return (a + (b - a) * tx) + ((c + (d - c) * tx) - (a + (b - a) * tx)) * ty;
}

static double
fbm (guint64 key, double x, double y, double scale, int octaves)
{
  double sum = 0.0, norm = 0.0, amplitude = 1.0, frequency = 1.0 / scale;

  for (int o = 0; o < octaves; o++)
    {
      sum += amplitude * value_noise (key + 0x51ed27ULL * (guint64) (o + 1), x * frequency, y * frequency);
      norm += amplitude;
      amplitude *= 0.5;
      frequency *= 2.0;
    }
  return sum / norm;
}

/* One tile: the ground in both years and the fields the bands are made of. */

enum {
  KEY_MINING = 1, KEY_MINING_FINE, KEY_COCOA, KEY_PLOTS, KEY_WARP, KEY_CLEARING,
  KEY_POND, KEY_CANOPY, KEY_CANOPY_WIDE, KEY_SOIL, KEY_TERRAIN, KEY_TERRAIN_FINE,
  KEY_RIVER, KEY_STRIP, KEY_LABEL, KEY_SPECKLE, KEY_SENSOR, KEY_SPLIT,
};

typedef struct
{
  int     size;
  guint64 key;
  double  geotransform[6];
  double  elevation_base;
  guint8 *cover[2];   /* per year */
  guint8 *valid;
  float  *canopy;     /* crown texture, [0, 1] */
  float  *soil;       /* soil and sediment texture, [0, 1] */
  float  *terrain;    /* metres above sea level */
  float  *river;      /* distance to the river centre line in pixels */
} DemoTile;

static void
demo_tile_clear (DemoTile *tile)
{
  for (int y = 0; y < 2; y++)
    g_clear_pointer (&tile->cover[y], g_free);
  g_clear_pointer (&tile->valid, g_free);
  g_clear_pointer (&tile->canopy, g_free);
  g_clear_pointer (&tile->soil, g_free);
  g_clear_pointer (&tile->terrain, g_free);
  g_clear_pointer (&tile->river, g_free);
}

static guint64
tile_key (const DemoTile *tile, guint64 what)
{
  return tile->key ^ (what * 0x9fb21c651e98df25ULL);
}

static int
compare_float (const void *a, const void *b)
{
  float fa = *(const float *) a, fb = *(const float *) b;

  return (fa > fb) - (fa < fb);
}

/* Sets mark[i] on the `count` pixels with the highest score among those
 * whose score is finite. */
static void
mark_highest (const float *score, gsize n, gsize count, guint8 *mark)
{
  g_autofree float *sorted = g_new (float, n);
  gsize m = 0;
  float threshold;

  if (count == 0)
    return;
  for (gsize i = 0; i < n; i++)
    if (isfinite (score[i]))
      sorted[m++] = score[i];
  if (m == 0)
    return;
  count = MIN (count, m);
  qsort (sorted, m, sizeof (float), compare_float);
  threshold = sorted[m - count];
  for (gsize i = 0; i < n; i++)
    if (isfinite (score[i]) && score[i] >= threshold)
      mark[i] = 1;
}

/* Where tile `index` lies: district index % 5, on a grid in that district
 * with a gap of half a tile between neighbours. */
static gboolean
demo_tile_place (DemoTile *tile, guint index, const LodeDemoOptions *options,
                 OGRCoordinateTransformationH to_utm, GError **error)
{
  guint district = index % N_DISTRICTS;
  guint rank = index / N_DISTRICTS;
  guint in_district = (options->n_tiles + N_DISTRICTS - 1 - district) / N_DISTRICTS;
  guint columns = (guint) ceil (sqrt ((double) MAX (in_district, 1)));
  guint rows = (in_district + columns - 1) / columns;
  double extent = tile->size * PIXEL_METRES;
  double spacing = round (extent * 1.5 / PIXEL_METRES) * PIXEL_METRES;
  double x = districts[district].lon, y = districts[district].lat;
  Rng rng;

  if (!OCTTransform (to_utm, 1, &x, &y, NULL))
    {
      g_set_error (error, LODE_DEMO_ERROR, LODE_DEMO_ERROR_WRITE,
                   _("Cannot compute UTM zone 30N coordinates: %s"), CPLGetLastErrorMsg ());
      return FALSE;
    }
  /* The seed moves each district's grid by up to two kilometres. */
  rng_init (&rng, options->seed, 0x6e0000ULL + district);
  x += rng_range (&rng, -2000.0, 2000.0) - columns * spacing / 2.0;
  y += rng_range (&rng, -2000.0, 2000.0) + rows * spacing / 2.0;
  tile->geotransform[0] = round (x / PIXEL_METRES) * PIXEL_METRES + (rank % columns) * spacing;
  tile->geotransform[1] = PIXEL_METRES;
  tile->geotransform[2] = 0.0;
  tile->geotransform[3] = round (y / PIXEL_METRES) * PIXEL_METRES - (rank / columns) * spacing;
  tile->geotransform[4] = 0.0;
  tile->geotransform[5] = -PIXEL_METRES;
  tile->elevation_base = districts[district].elevation;
  return TRUE;
}

/* Mining share of the tile in 2016 and 2022. */
static void
draw_mining_shares (Rng *rng, double *share2016, double *share2022)
{
  double r = rng_range (rng, 0.0, 1.0);
  double s16, s22;

  if (r < 0.45)
    s16 = 0.0;
  else if (r < 0.75)
    s16 = rng_range (rng, 0.005, 0.10);
  else if (r < 0.90)
    s16 = rng_range (rng, 0.10, 0.30);
  else
    s16 = rng_range (rng, 0.30, 0.50);

  if (s16 == 0.0)
    s22 = rng_range (rng, 0.0, 1.0) < 0.55 ? 0.0 : rng_range (rng, 0.01, 0.15);
  else
    s22 = MIN (0.62, s16 + (1.0 - s16) * rng_range (rng, 0.03, 0.25));
  *share2016 = s16;
  *share2022 = MAX (s16, s22);
}

static void
demo_tile_generate (DemoTile *tile, guint index, guint64 seed)
{
  int size = tile->size;
  gsize n = (gsize) size * size;
  double gx0 = tile->geotransform[0] / PIXEL_METRES;
  double gy0 = -tile->geotransform[3] / PIXEL_METRES;
  g_autofree float *propensity = g_new (float, n);
  g_autofree float *score = g_new (float, n);
  g_autofree guint8 *cocoa = g_new0 (guint8, n * 2);
  g_autofree guint8 *mining = g_new0 (guint8, n * 2);
  double share[2], cocoa_share, angle, plot_w, plot_h, cos_a, sin_a;
  gboolean has_river, river_across;
  double river_pos = 0, river_slope = 0, river_amp = 0, river_wave = 1, river_phase = 0, river_width = 0;
  int strip_edge = -1;
  double strip_width = 0;
  Rng rng;

  tile->key = hash3 (seed, 0x711e, index);
  rng_init (&rng, seed, 0x10000ULL + index);
  for (int y = 0; y < 2; y++)
    tile->cover[y] = g_new (guint8, n);
  tile->valid = g_new (guint8, n);
  tile->canopy = g_new (float, n);
  tile->soil = g_new (float, n);
  tile->terrain = g_new (float, n);
  tile->river = g_new (float, n);

  draw_mining_shares (&rng, &share[0], &share[1]);
  cocoa_share = rng_range (&rng, 0.0, 1.0) < 0.15 ? 0.02 : rng_range (&rng, 0.12, 0.5);
  angle = rng_range (&rng, -0.5, 0.5);
  cos_a = cos (angle);
  sin_a = sin (angle);
  plot_w = rng_range (&rng, 8.0, 16.0);
  plot_h = rng_range (&rng, 8.0, 16.0);
  has_river = rng_range (&rng, 0.0, 1.0) < 0.3;
  if (has_river)
    {
      river_across = rng_range (&rng, 0.0, 1.0) < 0.5;
      river_pos = rng_range (&rng, 0.2, 0.8) * size;
      river_slope = rng_range (&rng, -0.3, 0.3);
      river_amp = rng_range (&rng, 2.0, 8.0);
      river_wave = rng_range (&rng, 30.0, 80.0);
      river_phase = rng_range (&rng, 0.0, 2.0 * G_PI);
      river_width = rng_range (&rng, 2.0, 5.0);
    }
  else
    river_across = FALSE;
  if (rng_range (&rng, 0.0, 1.0) < 0.125)
    {
      strip_edge = (int) rng_below (&rng, 4);
      strip_width = rng_range (&rng, 0.08, 0.35) * size;
    }

  for (int py = 0; py < size; py++)
    for (int px = 0; px < size; px++)
      {
        gsize i = (gsize) py * size + px;
        double gx = gx0 + px, gy = gy0 + py;
        double along = river_across ? px : py, across = river_across ? py : px;
        double distance = G_MAXFLOAT, suitability, plot, warp, u, v, edge;

        if (has_river)
          {
            double centre = river_pos + river_slope * (along - size / 2.0)
              + river_amp * sin (2.0 * G_PI * along / river_wave + river_phase)
              + 6.0 * (fbm (tile_key (tile, KEY_RIVER), gx, gy, 25.0, 2) - 0.5);
            distance = fabs (across - centre);
          }
        tile->river[i] = distance;

        tile->canopy[i] = fbm (tile_key (tile, KEY_CANOPY), gx, gy, 2.5, 3) * 0.7
          + fbm (tile_key (tile, KEY_CANOPY_WIDE), gx, gy, 20.0, 2) * 0.3;
        tile->soil[i] = fbm (tile_key (tile, KEY_SOIL), gx, gy, 5.0, 3);
        tile->terrain[i] = tile->elevation_base
          + 90.0 * fbm (seed ^ KEY_TERRAIN, gx, gy, 60.0, 3)
          + 12.0 * fbm (seed ^ KEY_TERRAIN_FINE, gx, gy, 10.0, 2)
          - (has_river ? 10.0 * exp (-distance / 8.0) : 0.0);

        /* Mining follows rivers and spreads in clusters. */
        propensity[i] = 0.65 * fbm (tile_key (tile, KEY_MINING), gx, gy, 28.0, 3)
          + 0.35 * fbm (tile_key (tile, KEY_MINING_FINE), gx, gy, 7.0, 2)
          + (has_river ? 0.25 * exp (-distance / 15.0) : 0.0);

        /* Cocoa grows in plots on a slightly rotated, wobbly grid. */
        warp = 3.0 * (fbm (tile_key (tile, KEY_WARP), gx, gy, 12.0, 2) - 0.5);
        u = gx * cos_a + gy * sin_a + warp;
        v = -gx * sin_a + gy * cos_a - warp;
        plot = hash_unit (tile_key (tile, KEY_PLOTS), (gint64) floor (u / plot_w), (gint64) floor (v / plot_h));
        suitability = cocoa_share * 2.0 * fbm (tile_key (tile, KEY_COCOA), gx, gy, 60.0, 2);
        cocoa[i] = plot < suitability;
        cocoa[n + i] = plot < suitability + 0.06;

        /* Clearings: fallow, grass and villages. */
        tile->cover[0][i] = tile->cover[1][i] =
          fbm (tile_key (tile, KEY_CLEARING), gx, gy, 15.0, 3) > 0.74 ? COVER_CLEARING : COVER_FOREST;

        /* A strip outside the swath, ragged by a pixel or two. */
        edge = strip_width + 3.0 * (fbm (tile_key (tile, KEY_STRIP), gx, gy, 6.0, 2) - 0.5);
        switch (strip_edge)
          {
          case 0: tile->valid[i] = py >= edge; break;
          case 1: tile->valid[i] = px < size - edge; break;
          case 2: tile->valid[i] = py < size - edge; break;
          case 3: tile->valid[i] = px >= edge; break;
          default: tile->valid[i] = 1; break;
          }
      }

  /* 2016 mining: the most prone pixels off the river. */
  for (gsize i = 0; i < n; i++)
    score[i] = tile->river[i] * 2.0 < river_width ? NAN : propensity[i];
  mark_highest (score, n, (gsize) round (share[0] * n), mining);
  /* 2022 adds to it, preferring cocoa next to the old pits. */
  for (gsize i = 0; i < n; i++)
    score[i] = mining[i] || !isfinite (score[i]) ? NAN : propensity[i] + 0.12f * cocoa[i];
  memcpy (mining + n, mining, n);
  mark_highest (score, n, (gsize) round ((share[1] - share[0]) * n), mining + n);

  for (int y = 0; y < 2; y++)
    for (int py = 0; py < size; py++)
      for (int px = 0; px < size; px++)
        {
          gsize i = (gsize) py * size + px;
          guint8 *cover = &tile->cover[y][i];

          if (tile->river[i] * 2.0 < river_width)
            *cover = COVER_RIVER;
          else if (mining[y * n + i])
            {
              /* Old pits fill with water. */
              double pond = fbm (tile_key (tile, KEY_POND), gx0 + px, gy0 + py, 6.0, 2);
              double limit = (y == 1 && mining[i]) ? 0.52 : 0.60;

              *cover = pond > limit ? COVER_POND : COVER_PIT;
            }
          else if (cocoa[y * n + i])
            *cover = COVER_COCOA;
        }
}

/* Writing rasters. */

/* Sets error to `what` followed by GDAL's last message. */
static void
set_gdal_error (GError **error, int code, const char *what)
{
  const char *message = CPLGetLastErrorMsg ();

  g_set_error (error, LODE_DEMO_ERROR, code, "%s: %s", what,
               message != NULL && message[0] != '\0' ? message : _("GDAL gave no reason"));
}

/* Creates a GeoTIFF under a temporary name in the folder of `path`. */
static GDALDatasetH
raster_create (const char *path, char **tmp_path, int size, int n_bands, GDALDataType type,
               const double geotransform[6], const char *wkt, GError **error)
{
  g_autofree char *folder = g_path_get_dirname (path);
  g_autofree char *base = g_path_get_basename (path);
  g_autofree char *template = g_strdup_printf (".%s.XXXXXX", base);
  g_autofree char *tmp = g_build_filename (folder, template, NULL);
  const char *create_options[] = {
    "COMPRESS=DEFLATE", "ZLEVEL=6", "INTERLEAVE=BAND",
    type == GDT_Float32 ? "PREDICTOR=3" : "PREDICTOR=2", NULL,
  };
  GDALDatasetH dataset;
  int fd;

  fd = g_mkstemp (tmp);
  if (fd < 0)
    {
      int saved = errno;

      g_set_error (error, LODE_DEMO_ERROR, LODE_DEMO_ERROR_FOLDER,
                   _("Cannot write into the folder “%s”: %s"), folder, g_strerror (saved));
      return NULL;
    }
  g_close (fd, NULL);

  CPLErrorReset ();
  dataset = GDALCreate (GDALGetDriverByName ("GTiff"), tmp, size, size, n_bands, type,
                        (char **) create_options);
  if (dataset == NULL)
    {
      g_autofree char *what = g_strdup_printf (_("Cannot create “%s”"), path);

      set_gdal_error (error, LODE_DEMO_ERROR_WRITE, what);
      g_unlink (tmp);
      return NULL;
    }
  if (GDALSetGeoTransform (dataset, (double *) geotransform) != CE_None
      || GDALSetProjection (dataset, wkt) != CE_None)
    {
      g_autofree char *what = g_strdup_printf (_("Cannot georeference “%s”"), path);

      set_gdal_error (error, LODE_DEMO_ERROR_WRITE, what);
      GDALClose (dataset);
      g_unlink (tmp);
      return NULL;
    }
  *tmp_path = g_steal_pointer (&tmp);
  return dataset;
}

/* Closes the dataset and moves it to its name; on failure removes it. */
static gboolean
raster_finish (GDALDatasetH dataset, char *tmp_path, const char *path, gboolean ok, GError **error)
{
  g_autofree char *tmp = tmp_path;

  GDALClose (dataset);
  if (ok && CPLGetLastErrorType () >= CE_Failure)
    {
      g_autofree char *what = g_strdup_printf (_("Cannot write “%s”"), path);

      set_gdal_error (error, LODE_DEMO_ERROR_WRITE, what);
      ok = FALSE;
    }
  /* g_mkstemp made it private; the data set is for everyone to read. */
  if (ok && (g_chmod (tmp, 0644) != 0 || g_rename (tmp, path) != 0))
    {
      int saved = errno;

      g_set_error (error, LODE_DEMO_ERROR, LODE_DEMO_ERROR_WRITE,
                   _("Cannot write “%s”: %s"), path, g_strerror (saved));
      ok = FALSE;
    }
  if (!ok)
    g_unlink (tmp);
  return ok;
}

static gboolean
write_band (GDALDatasetH dataset, int band, GDALDataType type, void *data, int size,
            double nodata, const char *description, const char *path, GError **error)
{
  GDALRasterBandH handle = GDALGetRasterBand (dataset, band + 1);

  if (description != NULL)
    GDALSetDescription (handle, description);
  if (GDALSetRasterNoDataValue (handle, nodata) != CE_None
      || GDALRasterIO (handle, GF_Write, 0, 0, size, size, data, size, size, type, 0, 0) != CE_None)
    {
      g_autofree char *what = g_strdup_printf (_("Cannot write “%s”"), path);

      set_gdal_error (error, LODE_DEMO_ERROR_WRITE, what);
      return FALSE;
    }
  return TRUE;
}

/* A 1-2-1 blur in both directions: mixed pixels at the edges of covers,
 * the speckle filter on radar, the resampling of the elevation model. */
static void
blur (const float *in, float *out, float *scratch, int size)
{
  for (int y = 0; y < size; y++)
    for (int x = 0; x < size; x++)
      {
        const float *row = in + (gsize) y * size;

        scratch[(gsize) y * size + x] =
          (row[MAX (x - 1, 0)] + 2.0f * row[x] + row[MIN (x + 1, size - 1)]) * 0.25f;
      }
  for (int y = 0; y < size; y++)
    for (int x = 0; x < size; x++)
      {
        const float *above = scratch + (gsize) MAX (y - 1, 0) * size;
        const float *here = scratch + (gsize) y * size;
        const float *below = scratch + (gsize) MIN (y + 1, size - 1) * size;

        out[(gsize) y * size + x] = (above[x] + 2.0f * here[x] + below[x]) * 0.25f;
      }
}

/* One band of one year, before blurring. */
static void
compute_band (const DemoTile *tile, int year, int band, const double *gain, const double *haze,
              float *out)
{
  int size = tile->size;
  const guint8 *cover = tile->cover[year];

  for (int y = 0; y < size; y++)
    for (int x = 0; x < size; x++)
      {
        gsize i = (gsize) y * size + x;
        Cover c = cover[i];
        double value;

        if (band < N_OPTICAL)
          {
            gboolean vegetation = c == COVER_FOREST || c == COVER_COCOA;
            double texture = (vegetation ? tile->canopy[i] : tile->soil[i]) - 0.5;
            double weight = vegetation ? (band >= 4 && band <= 7 ? 1.0 : 0.7)
                                       : (band <= 2 ? 1.0 : 0.6);

            value = (optical_dn[c][band] - 1000.0) * (1.0 + 2.0 * texture_amplitude[c] * weight * texture);
            value = 1000.0 + value * gain[band] + haze[band];
          }
        else if (band == BAND_VV || band == BAND_VH)
          {
            /* Slopes facing the radar look brighter. */
            double slope = (tile->terrain[(gsize) y * size + MIN (x + 1, size - 1)]
                            - tile->terrain[(gsize) y * size + MAX (x - 1, 0)]) / 2.0;
            double rough = c == COVER_PIT ? 2.0 * (tile->soil[i] - 0.5) : 0.0;

            value = radar_db[c][band - BAND_VV] + 0.5 * slope + rough
              + 1.2 * hash_normal (tile_key (tile, KEY_SPECKLE) + (guint64) (band * 2 + year), x, y);
          }
        else
          {
            value = tile->terrain[i];
            if (c == COVER_PIT)
              value -= 2.0 + 5.0 * tile->soil[i];
            else if (c == COVER_POND)
              value -= 5.0;
          }
        out[i] = value;
      }
}

static gboolean
write_image (const DemoTile *tile, int year, const char *path, const char *wkt, GError **error)
{
  int size = tile->size;
  gsize n = (gsize) size * size;
  g_autofree float *raw = g_new (float, n);
  g_autofree float *band = g_new (float, n);
  g_autofree float *scratch = g_new (float, n);
  double gain[N_OPTICAL], haze[N_OPTICAL];
  char *tmp = NULL;
  GDALDatasetH dataset;
  gboolean ok = TRUE;
  Rng rng;

  /* The atmosphere and the sun differ a little between acquisitions. */
  rng_init (&rng, tile->key, 0xa7000ULL + years[year]);
  for (int b = 0; b < N_OPTICAL; b++)
    {
      gain[b] = rng_range (&rng, 0.96, 1.04);
      haze[b] = b == 0 ? rng_range (&rng, 0.0, 60.0) : b == 1 ? rng_range (&rng, 0.0, 30.0) : 0.0;
    }

  dataset = raster_create (path, &tmp, size, N_BANDS, GDT_Float32, tile->geotransform, wkt, error);
  if (dataset == NULL)
    return FALSE;
  for (int b = 0; b < N_BANDS && ok; b++)
    {
      guint64 key = tile_key (tile, KEY_SENSOR) + (guint64) (b * 2 + year);

      compute_band (tile, year, b, gain, haze, raw);
      blur (raw, band, scratch, size);
      for (gsize i = 0; i < n; i++)
        {
          if (!tile->valid[i])
            band[i] = IMAGE_NODATA;
          else if (b < N_OPTICAL)
            band[i] = MAX (1.0f, roundf (band[i] + (8.0f + 0.008f * band[i])
                                                   * hash_normal (key, i % size, i / size)));
          else if (b == BAND_DEM)
            band[i] = roundf (band[i] * 100.0f) / 100.0f;
          else
            band[i] = roundf (band[i] * 1000.0f) / 1000.0f;
        }
      ok = write_band (dataset, b, GDT_Float32, band, size, IMAGE_NODATA, band_names[b], path, error);
    }
  return raster_finish (dataset, tmp, path, ok, error);
}

static gboolean
write_mask (const DemoTile *tile, const guint8 *mask, const char *path, const char *wkt, GError **error)
{
  char *tmp = NULL;
  GDALDatasetH dataset;
  gboolean ok;

  dataset = raster_create (path, &tmp, tile->size, 1, GDT_Byte, tile->geotransform, wkt, error);
  if (dataset == NULL)
    return FALSE;
  ok = write_band (dataset, 0, GDT_Byte, (void *) mask, tile->size, MASK_NODATA, NULL, path, error);
  return raster_finish (dataset, tmp, path, ok, error);
}

/* The binary mask of a year: the drawn mining with a little label noise
 * along its edges, as hand labelling leaves it.  The 3-class mask agrees
 * with it on mining and adds the cocoa of that year. */
static void
make_masks (const DemoTile *tile, int year, guint8 *binary, guint8 *classes)
{
  int size = tile->size;
  const guint8 *cover = tile->cover[year];
  guint64 key = tile_key (tile, KEY_LABEL) + (guint64) year;

  for (int y = 0; y < size; y++)
    for (int x = 0; x < size; x++)
      {
        gsize i = (gsize) y * size + x;
        gboolean mining = COVER_IS_MINING (cover[i]);
        gboolean edge = FALSE;

        if (!tile->valid[i])
          {
            binary[i] = classes[i] = MASK_NODATA;
            continue;
          }
        if (x > 0 && COVER_IS_MINING (cover[i - 1]) != mining)
          edge = TRUE;
        if (x < size - 1 && COVER_IS_MINING (cover[i + 1]) != mining)
          edge = TRUE;
        if (y > 0 && COVER_IS_MINING (cover[i - size]) != mining)
          edge = TRUE;
        if (y < size - 1 && COVER_IS_MINING (cover[i + size]) != mining)
          edge = TRUE;
        if (edge && hash_unit (key, x, y) < 0.12)
          mining = !mining;
        binary[i] = mining ? 1 : 0;
        classes[i] = mining ? 1 : cover[i] == COVER_COCOA ? 2 : 0;
      }
}

/* The split files. */

typedef struct
{
  guint  tile_id;
  double percent;  /* rounded to two decimals */
  int    bin;
} SplitRow;

/* About 70 % train and 30 % test, stratified by bin: each bin gives its
 * share of the test rows, the rounding left over goes to the bins with
 * the largest remainders.  Rows are listed train first, bin by bin, as in
 * the official files. */
static gboolean
write_splits (const char *path, SplitRow *rows, guint n, int year, guint64 seed, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autoptr(GPtrArray) names = NULL;
  g_autofree LodeSplitRow *split_rows = NULL;
  g_autofree char *csv = NULL;
  g_autofree guint8 *is_test = g_new0 (guint8, n);
  g_autofree guint *order = g_new (guint, n);
  guint count[10] = { 0 }, test_count[10] = { 0 }, total_test = 0;
  double remainder[10];
  guint wanted = (guint) floor (0.3 * n + 0.5);
  Rng rng;

  rng_init (&rng, seed, 0x5b1170000ULL + year);
  for (guint i = 0; i < n; i++)
    order[i] = i;
  for (guint i = n; i > 1; i--)
    {
      guint j = rng_below (&rng, i);
      guint t = order[i - 1];

      order[i - 1] = order[j];
      order[j] = t;
    }
  for (guint i = 0; i < n; i++)
    count[rows[i].bin]++;
  for (int b = 0; b < 10; b++)
    {
      test_count[b] = (guint) floor (0.3 * count[b]);
      remainder[b] = 0.3 * count[b] - test_count[b];
      total_test += test_count[b];
    }
  while (total_test < wanted)
    {
      int best = -1;

      for (int b = 0; b < 10; b++)
        if (test_count[b] < count[b] && (best < 0 || remainder[b] > remainder[best]))
          best = b;
      if (best < 0)
        break;
      test_count[best]++;
      remainder[best] = -1.0;
      total_test++;
    }
  /* The first tiles of each bin in shuffled order go to test. */
  for (guint k = 0; k < n; k++)
    {
      SplitRow *row = &rows[order[k]];

      if (test_count[row->bin] > 0)
        {
          is_test[order[k]] = 1;
          test_count[row->bin]--;
        }
    }

  names = g_ptr_array_new_with_free_func (g_free);
  split_rows = g_new (LodeSplitRow, n);
  for (guint k = 0; k < n; k++)
    {
      const SplitRow *row = &rows[order[k]];
      char *name = g_strdup_printf ("MASK_%04u_%d.tif", row->tile_id, years[year]);

      g_ptr_array_add (names, name);
      split_rows[k].patch_name = name;
      split_rows[k].percent = row->percent;
      split_rows[k].split = is_test[order[k]] ? "test" : "train";
    }
  csv = lode_splits_to_csv (split_rows, n);

  if (!g_file_set_contents (path, csv, -1, &local_error))
    {
      g_set_error (error, LODE_DEMO_ERROR, LODE_DEMO_ERROR_WRITE,
                   _("Cannot write “%s”: %s"), path, local_error->message);
      return FALSE;
    }
  return TRUE;
}

/* The folders. */

static gboolean
make_folder (const char *path, GError **error)
{
  if (g_mkdir_with_parents (path, 0755) != 0)
    {
      int saved = errno;

      g_set_error (error, LODE_DEMO_ERROR, LODE_DEMO_ERROR_FOLDER,
                   _("Cannot create the folder “%s”: %s"), path, g_strerror (saved));
      return FALSE;
    }
  return TRUE;
}

static gpointer
register_gdal (gpointer data)
{
  GDALAllRegister ();
  return NULL;
}

void
lode_demo_options_init (LodeDemoOptions *options)
{
  g_return_if_fail (options != NULL);

  options->n_tiles = 24;
  options->seed = 2016;
  options->size = 128;
}

void
lode_demo_tile_district (guint tile_id, double *lat, double *lon)
{
  guint district;

  g_return_if_fail (tile_id >= 1);

  district = (tile_id - 1) % N_DISTRICTS;
  if (lat != NULL)
    *lat = districts[district].lat;
  if (lon != NULL)
    *lon = districts[district].lon;
}

static char *
utm_wkt (OGRCoordinateTransformationH *to_utm, GError **error)
{
  OGRSpatialReferenceH utm = OSRNewSpatialReference (NULL);
  OGRSpatialReferenceH geographic = OSRNewSpatialReference (NULL);
  char *wkt = NULL;
  char *result = NULL;

  CPLErrorReset ();
  if (OSRSetFromUserInput (utm, "EPSG:32630") != OGRERR_NONE
      || OSRSetFromUserInput (geographic, "EPSG:4326") != OGRERR_NONE
      || OSRExportToWkt (utm, &wkt) != OGRERR_NONE)
    {
      g_set_error (error, LODE_DEMO_ERROR, LODE_DEMO_ERROR_WRITE,
                   _("Cannot set up UTM zone 30N (EPSG:32630): %s"), CPLGetLastErrorMsg ());
      goto out;
    }
  OSRSetAxisMappingStrategy (geographic, OAMS_TRADITIONAL_GIS_ORDER);
  OSRSetAxisMappingStrategy (utm, OAMS_TRADITIONAL_GIS_ORDER);
  *to_utm = OCTNewCoordinateTransformation (geographic, utm);
  if (*to_utm == NULL)
    {
      g_set_error (error, LODE_DEMO_ERROR, LODE_DEMO_ERROR_WRITE,
                   _("Cannot set up UTM zone 30N (EPSG:32630): %s"), CPLGetLastErrorMsg ());
      goto out;
    }
  result = g_strdup (wkt);

out:
  CPLFree (wkt);
  OSRDestroySpatialReference (utm);
  OSRDestroySpatialReference (geographic);
  return result;
}

static gboolean
write_tile (const char *dir, const LodeDemoOptions *options, guint index, const char *wkt,
            OGRCoordinateTransformationH to_utm, SplitRow rows[2], GCancellable *cancellable,
            GError **error)
{
  DemoTile tile = { .size = options->size };
  gsize n = (gsize) options->size * options->size;
  g_autofree guint8 *binary = g_new (guint8, n);
  g_autofree guint8 *classes = g_new (guint8, n);
  guint tile_id = index + 1;
  gboolean ok = TRUE;

  if (!demo_tile_place (&tile, index, options, to_utm, error))
    return FALSE;
  demo_tile_generate (&tile, index, options->seed);

  for (int y = 0; y < 2 && ok; y++)
    {
      g_autofree char *name = g_strdup_printf ("IMG_GH_%04u_%d.tif", tile_id, years[y]);
      g_autofree char *mask_name = g_strdup_printf ("MASK_GH_%04u_%d.tif", tile_id, years[y]);
      g_autofree char *cocoa_name = g_strdup_printf ("MASK_GH_%04u_%d.tif", tile_id - 1, years[y]);
      g_autofree char *year = g_strdup_printf ("%d", years[y]);
      g_autofree char *image_path = g_build_filename (dir, "SmallMinesDS", year, "IMAGE", name, NULL);
      g_autofree char *mask_path = g_build_filename (dir, "SmallMinesDS", year, "MASK", mask_name, NULL);
      g_autofree char *cocoa_path = g_build_filename (dir, "cocoa", year, "MASK", cocoa_name, NULL);
      gsize valid = 0, mined = 0;

      make_masks (&tile, y, binary, classes);
      for (gsize i = 0; i < n; i++)
        {
          valid += binary[i] != MASK_NODATA;
          mined += binary[i] == 1;
        }
      rows[y].tile_id = tile_id;
      rows[y].percent = lode_splits_percent (mined, valid);
      rows[y].bin = lode_splits_bin (rows[y].percent);

      ok = !g_cancellable_set_error_if_cancelled (cancellable, error)
        && write_image (&tile, y, image_path, wkt, error)
        && write_mask (&tile, binary, mask_path, wkt, error)
        && write_mask (&tile, classes, cocoa_path, wkt, error);
    }
  demo_tile_clear (&tile);
  return ok;
}

gboolean
lode_demo_write (const char *dir, const LodeDemoOptions *options,
                 LodeProgressFunc progress, gpointer user_data,
                 GCancellable *cancellable, GError **error)
{
  static GOnce gdal_once = G_ONCE_INIT;
  g_autofree SplitRow *rows = NULL;
  g_autofree char *wkt = NULL;
  OGRCoordinateTransformationH to_utm = NULL;
  gboolean ok = TRUE;

  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (options != NULL, FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (options->n_tiles < 1 || options->n_tiles > MAX_TILES)
    {
      g_set_error (error, LODE_DEMO_ERROR, LODE_DEMO_ERROR_INVALID,
                   _("The number of tiles must be between 1 and %d, not %u"), MAX_TILES, options->n_tiles);
      return FALSE;
    }
  if (options->size < MIN_SIZE || options->size > MAX_SIZE)
    {
      g_set_error (error, LODE_DEMO_ERROR, LODE_DEMO_ERROR_INVALID,
                   _("The patch size must be between %d and %d pixels, not %d"), MIN_SIZE, MAX_SIZE, options->size);
      return FALSE;
    }

  g_once (&gdal_once, register_gdal, NULL);
  CPLPushErrorHandler (CPLQuietErrorHandler);

  for (int y = 0; y < 2 && ok; y++)
    {
      g_autofree char *year = g_strdup_printf ("%d", years[y]);
      g_autofree char *image = g_build_filename (dir, "SmallMinesDS", year, "IMAGE", NULL);
      g_autofree char *mask = g_build_filename (dir, "SmallMinesDS", year, "MASK", NULL);
      g_autofree char *cocoa = g_build_filename (dir, "cocoa", year, "MASK", NULL);

      if (y == 0)
        ok = make_folder (dir, error);
      ok = ok && make_folder (image, error) && make_folder (mask, error) && make_folder (cocoa, error);
    }
  if (ok)
    {
      g_autofree char *splits = g_build_filename (dir, "data_splits", NULL);

      ok = make_folder (splits, error);
    }
  if (ok)
    {
      wkt = utm_wkt (&to_utm, error);
      ok = wkt != NULL;
    }

  rows = g_new0 (SplitRow, 2 * (gsize) options->n_tiles);
  for (guint t = 0; t < options->n_tiles && ok; t++)
    {
      SplitRow pair[2] = { { 0 } };

      ok = !g_cancellable_set_error_if_cancelled (cancellable, error)
        && write_tile (dir, options, t, wkt, to_utm, pair, cancellable, error);
      rows[t] = pair[0];
      rows[options->n_tiles + t] = pair[1];
      if (ok && progress != NULL)
        {
          g_autofree char *what = g_strdup_printf (_("Tile %u of %u"), t + 1, options->n_tiles);

          progress (0.98 * (t + 1) / options->n_tiles, what, user_data);
        }
    }

  for (int y = 0; y < 2 && ok; y++)
    {
      g_autofree char *name = g_strdup_printf ("train_test_splits_%d.csv", years[y]);
      g_autofree char *path = g_build_filename (dir, "data_splits", name, NULL);

      ok = !g_cancellable_set_error_if_cancelled (cancellable, error)
        && write_splits (path, rows + y * options->n_tiles, options->n_tiles, y, options->seed, error);
    }

  if (to_utm != NULL)
    OCTDestroyCoordinateTransformation (to_utm);
  CPLPopErrorHandler ();
  if (ok && progress != NULL)
    progress (1.0, _("Done"), user_data);
  return ok;
}
