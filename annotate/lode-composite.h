/* lode-composite.h: what a patch looks like on screen.
 *
 * A composite picks bands (or computes an index), stretches each output
 * channel to 0..1 (percentiles, min-max or a fixed range), applies gamma and
 * writes 8-bit pixels: RGBA for the canvas, RGB for SAM2.
 *
 *   true colour  R B4   G B3   B B2
 *   nir          R B8   G B4   B B3       (B8A stands in for B8 when absent)
 *   swir         R B12  G B8A  B B4
 *   sar          R VV   G VH   B VV - VH  (dB)
 *   elevation    DEM, grey or colour ramp
 *   ndvi         (B8 - B4) / (B8 + B4)
 *   ndwi         (B3 - B8) / (B3 + B8)    (McFeeters)
 *   bsi          ((B11 + B4) - (B8 + B2)) / ((B11 + B4) + (B8 + B2))
 *   custom       any three bands, spec.bands[0..2]
 *
 * Stretch: t = clamp ((v - lo) / (hi - lo), 0, 1), then t^(1 / gamma), then
 * round (255 t). Pixels where a channel is NAN (nodata) or not finite are
 * transparent in RGBA and black in RGB. All functions are thread-safe.
 */
#pragma once

#include <glib.h>

#include "lode-raster.h"

G_BEGIN_DECLS

#define LODE_COMPOSITE_ERROR (lode_composite_error_quark ())
GQuark lode_composite_error_quark (void);

typedef enum {
  LODE_COMPOSITE_ERROR_BANDS, /* the raster lacks the bands the view needs */
  LODE_COMPOSITE_ERROR_SPEC,  /* bad band index, percentiles or range */
} LodeCompositeError;

typedef enum {
  LODE_COMPOSITE_TRUE_COLOUR,
  LODE_COMPOSITE_NIR,
  LODE_COMPOSITE_SWIR,
  LODE_COMPOSITE_SAR,
  LODE_COMPOSITE_ELEVATION,
  LODE_COMPOSITE_NDVI,
  LODE_COMPOSITE_NDWI,
  LODE_COMPOSITE_BSI,
  LODE_COMPOSITE_CUSTOM,
} LodeCompositePreset;

#define LODE_COMPOSITE_N_PRESETS (LODE_COMPOSITE_CUSTOM + 1)

typedef enum {
  LODE_STRETCH_PERCENTILE,
  LODE_STRETCH_MINMAX,
  LODE_STRETCH_FIXED,
} LodeStretchKind;

typedef enum {
  LODE_RAMP_GREY,
  LODE_RAMP_COLOUR,
} LodeRamp;

typedef struct
{
  LodeCompositePreset preset;
  /* Band indices (0-based). Custom: the three bands for R, G, B.
   * Other presets fill them in lode_composite_resolve(): the view's input
   * bands in the order of the table above (bsi uses all four). */
  int             bands[4];
  LodeStretchKind stretch;
  double          low_pct;       /* percentile stretch, default 2 */
  double          high_pct;      /* default 98 */
  double          fixed_min[3];  /* fixed stretch, per output channel */
  double          fixed_max[3];
  double          gamma;         /* 1 = none; > 1 brightens */
  LodeRamp        ramp;          /* single-channel views only */
} LodeCompositeSpec;

/* Per output channel; single-channel views use index 0 (and copy it to 1, 2). */
typedef struct
{
  double lo[3];
  double hi[3];
} LodeStretchRange;

void        lode_composite_spec_init       (LodeCompositeSpec       *spec,
                                            LodeCompositePreset      preset);
const char *lode_composite_preset_id       (LodeCompositePreset      p);
const char *lode_composite_preset_label    (LodeCompositePreset      p);
gboolean    lode_composite_preset_from_id  (const char              *id,
                                            LodeCompositePreset     *out);
/* 3 for colour views (true colour, nir, swir, sar, custom), 1 otherwise. */
int         lode_composite_preset_n_channels (LodeCompositePreset    p);

/* Fills spec->bands for this raster from its band names (or its band
 * profile). Generic rasters without named bands get bands 3, 2, 1 for true
 * colour when they have three or more. FALSE and LODE_COMPOSITE_ERROR_BANDS
 * when the raster lacks a band the view needs. */
gboolean    lode_composite_resolve         (LodeCompositeSpec       *spec,
                                            const LodeRaster        *r,
                                            GError                 **error);
/* The stretch range of one patch. Channels without a finite value get
 * lo = hi = 0. */
gboolean    lode_composite_compute_range   (const LodeRaster        *r,
                                            const LodeCompositeSpec *spec,
                                            LodeStretchRange        *out,
                                            GError                 **error);

/* The stretch range of a data set: add rasters one by one, then finish.
 * Memory stays bounded: values are kept exactly up to a limit, beyond it
 * percentiles come from a 65536-bin histogram per channel (relative error
 * below 1 %). */
typedef struct _LodeStretchAccumulator LodeStretchAccumulator;

LodeStretchAccumulator *lode_stretch_accumulator_new    (const LodeCompositeSpec *spec);
gboolean                lode_stretch_accumulator_add    (LodeStretchAccumulator  *acc,
                                                         const LodeRaster        *r,
                                                         GError                 **error);
/* Number of finite values added so far to output channel c. */
guint64                 lode_stretch_accumulator_count  (LodeStretchAccumulator  *acc,
                                                         int                      c);
void                    lode_stretch_accumulator_finish (LodeStretchAccumulator  *acc,
                                                         LodeStretchRange        *out);
void                    lode_stretch_accumulator_free   (LodeStretchAccumulator  *acc);

/* range NULL: the patch's own range. rgba: width * height * 4 bytes,
 * straight alpha, nodata alpha 0. rgb: width * height * 3, nodata black. */
gboolean    lode_composite_render_rgba     (const LodeRaster        *r,
                                            const LodeCompositeSpec *spec,
                                            const LodeStretchRange  *range,
                                            guint8                  *rgba,
                                            GError                 **error);
gboolean    lode_composite_render_rgb      (const LodeRaster        *r,
                                            const LodeCompositeSpec *spec,
                                            const LodeStretchRange  *range,
                                            guint8                  *rgb,
                                            GError                 **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeStretchAccumulator, lode_stretch_accumulator_free)

G_END_DECLS
