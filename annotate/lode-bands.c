#define G_LOG_DOMAIN "lode-annotate"

#include "config.h"

#include <string.h>

#include <glib/gi18n.h>

#include "lode-bands.h"

/* FORMAT.md: band order of a SmallMinesDS patch. */
static const char * const smallmines_names[13] = {
  "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12", "VV", "VH", "DEM",
};

/* FORMAT.md: the 6-band set of the published models. */
static const int smallmines_6_subset[6] = { 0, 1, 2, 7, 8, 9 };

/* FORMAT.md: the published normalisation statistics, 13 bands in order. */
static const double smallmines_13_mean[13] = {
  1473.81388377, 1703.35249650, 1696.67685941, 2105.88077538, 3133.47063806,
  3543.17834759, 3677.26573009, 3832.39764247, 3156.11122121, 2226.06822112,
  -3.60578219, -6.52798491, 192.83874697,
};
static const double smallmines_13_std[13] = {
  223.43533204, 285.53613398, 413.82320306, 395.83356682, 312.48236897,
  354.47004513, 397.92163014, 389.61483882, 451.49534791, 468.26765909,
  3.96725815, 6.66565737, 57.37162747,
};

const int *
lode_band_profile_six_indices (void)
{
  return smallmines_6_subset;
}

/* The 6-band statistics are the 13-band ones at smallmines_6_subset. */
static const double *
subset_stats (const double *full, double *out, gsize *once)
{
  if (g_once_init_enter (once))
    {
      for (gsize i = 0; i < G_N_ELEMENTS (smallmines_6_subset); i++)
        out[i] = full[smallmines_6_subset[i]];
      g_once_init_leave (once, 1);
    }
  return out;
}

/* Aliases, written the way normalise_name() leaves them: lower case without
 * spaces, underscores, hyphens or dots. */
static const struct {
  const char *alias;
  const char *canonical;
} band_aliases[] = {
  { "b2", "B2" }, { "b02", "B2" }, { "blue", "B2" },
  { "b3", "B3" }, { "b03", "B3" }, { "green", "B3" },
  { "b4", "B4" }, { "b04", "B4" }, { "red", "B4" },
  { "b5", "B5" }, { "b05", "B5" }, { "rededge1", "B5" }, { "re1", "B5" },
  { "b6", "B6" }, { "b06", "B6" }, { "rededge2", "B6" }, { "re2", "B6" },
  { "b7", "B7" }, { "b07", "B7" }, { "rededge3", "B7" }, { "re3", "B7" },
  { "b8", "B8" }, { "b08", "B8" }, { "nir", "B8" },
  { "b8a", "B8A" }, { "b08a", "B8A" }, { "rededge4", "B8A" }, { "re4", "B8A" },
  { "narrownir", "B8A" }, { "nirnarrow", "B8A" }, { "nir08", "B8A" },
  { "b11", "B11" }, { "swir1", "B11" }, { "swir16", "B11" },
  { "b12", "B12" }, { "swir2", "B12" }, { "swir22", "B12" },
  { "vv", "VV" }, { "vh", "VH" },
  { "dem", "DEM" }, { "elevation", "DEM" }, { "height", "DEM" },
};

static gboolean
normalise_name (const char *name, char *out, gsize out_size)
{
  gsize n = 0;

  for (const char *p = name; *p != '\0'; p++)
    {
      if (*p == ' ' || *p == '_' || *p == '-' || *p == '.')
        continue;
      if (n + 1 >= out_size)
        return FALSE;
      out[n++] = g_ascii_tolower (*p);
    }
  out[n] = '\0';
  return n > 0;
}

const char *
lode_band_name_canonical (const char *name)
{
  char norm[32];

  if (name == NULL || !normalise_name (name, norm, sizeof norm))
    return NULL;
  for (gsize i = 0; i < G_N_ELEMENTS (band_aliases); i++)
    if (strcmp (norm, band_aliases[i].alias) == 0)
      return band_aliases[i].canonical;
  return NULL;
}

LodeBandProfile
lode_band_profile_detect (int n_bands)
{
  if (n_bands == 13)
    return LODE_BAND_PROFILE_SMALLMINES_13;
  if (n_bands == 6)
    return LODE_BAND_PROFILE_SMALLMINES_6;
  return LODE_BAND_PROFILE_GENERIC;
}

const char *
lode_band_profile_name (LodeBandProfile p)
{
  switch (p)
    {
    case LODE_BAND_PROFILE_SMALLMINES_13:
      return "smallmines-13";
    case LODE_BAND_PROFILE_SMALLMINES_6:
      return "smallmines-6";
    case LODE_BAND_PROFILE_GENERIC:
    default:
      return "generic";
    }
}

int
lode_band_profile_n_bands (LodeBandProfile p)
{
  switch (p)
    {
    case LODE_BAND_PROFILE_SMALLMINES_13:
      return G_N_ELEMENTS (smallmines_names);
    case LODE_BAND_PROFILE_SMALLMINES_6:
      return G_N_ELEMENTS (smallmines_6_subset);
    case LODE_BAND_PROFILE_GENERIC:
    default:
      return 0;
    }
}

const char *
lode_band_profile_band_name (LodeBandProfile p, int i)
{
  if (i < 0 || i >= lode_band_profile_n_bands (p))
    return NULL;
  if (p == LODE_BAND_PROFILE_SMALLMINES_6)
    return smallmines_names[smallmines_6_subset[i]];
  return smallmines_names[i];
}

int
lode_band_profile_find (LodeBandProfile p, const char *name)
{
  const char *canonical = lode_band_name_canonical (name);
  int n = lode_band_profile_n_bands (p);

  if (canonical == NULL)
    return -1;
  for (int i = 0; i < n; i++)
    if (strcmp (lode_band_profile_band_name (p, i), canonical) == 0)
      return i;
  return -1;
}

gboolean
lode_band_profile_check (LodeBandProfile p, const LodeRaster *r, GError **error)
{
  int want = lode_band_profile_n_bands (p);

  g_return_val_if_fail (r != NULL, FALSE);

  if (want == 0 || r->n_bands == want)
    return TRUE;
  g_set_error (error, LODE_RASTER_ERROR, LODE_RASTER_ERROR_PROFILE,
               /* Translators: “%s” is a file; the numbers are band counts. */
               ngettext ("“%s” has %d band, but the %s band profile needs %d",
                         "“%s” has %d bands, but the %s band profile needs %d",
                         r->n_bands),
               lode_raster_display_name (r), r->n_bands, lode_band_profile_name (p), want);
  return FALSE;
}

static const double *
profile_stats (LodeBandProfile p, const double *full, double *six, gsize *once)
{
  switch (p)
    {
    case LODE_BAND_PROFILE_SMALLMINES_13:
      return full;
    case LODE_BAND_PROFILE_SMALLMINES_6:
      return subset_stats (full, six, once);
    case LODE_BAND_PROFILE_GENERIC:
    default:
      return NULL;
    }
}

const double *
lode_band_profile_mean (LodeBandProfile p)
{
  static double six[G_N_ELEMENTS (smallmines_6_subset)];
  static gsize once;

  return profile_stats (p, smallmines_13_mean, six, &once);
}

const double *
lode_band_profile_std (LodeBandProfile p)
{
  static double six[G_N_ELEMENTS (smallmines_6_subset)];
  static gsize once;

  return profile_stats (p, smallmines_13_std, six, &once);
}
