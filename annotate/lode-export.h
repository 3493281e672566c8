/* lode-export.h: writing a revised label set out of a project.
 *
 * Into one chosen folder (made when missing), for the latest revision of
 * every patch that has a mask (optionally only the accepted ones):
 *
 *   masks       uint8 GeoTIFF masks (DEFLATE) with the patch's CRS,
 *               geotransform and size, the class table's export values and
 *               nodata 255. SmallMinesDS projects mirror the data set:
 *               SmallMinesDS/YEAR/MASK/MASK_GH_TTTT_YYYY.tif (named after
 *               the image); generic folders: masks/ with the original mask's
 *               file name, or TILE[_YEAR]_mask.tif.
 *   splits      data_splits/train_test_splits_YYYY.csv in the official
 *               format, the mining share recomputed from the revised masks,
 *               each patch keeping its stored split (patches without a
 *               split are left out).
 *   manifest    manifest.json: counts, pixels per class, per patch the
 *               pixels changed against the original revision, revisions,
 *               review state and reviewer; the class table; the version.
 *   gpkg        polygons.gpkg, layer "labels": one polygon per 4-connected
 *               region of each class but the background (id 0), holes
 *               kept, with class, class_value, tile and year; in the first
 *               exported patch's CRS (others are transformed to it).
 *   terratorch  terratorch/training and terratorch/validation (train and
 *               test splits) with NAME_IMG.tif (all bands, or the 6 bands
 *               0 1 2 7 8 9 of the published models; values and nodata tag
 *               as in the source) and NAME_MASK.tif, and config.yaml for
 *               TerraTorch's GenericNonGeoSegmentationDataModule.
 *
 * Every file is written under a temporary name in its own folder and
 * renamed when complete: a failure leaves no partial file. Nothing is
 * written outside the chosen folder: a folder inside the data set (or
 * holding it), or a subfolder that is a link leading out, is refused. */
#pragma once

#include <gio/gio.h>

#include "lode-progress.h"
#include "lode-store.h"

G_BEGIN_DECLS

#define LODE_EXPORT_ERROR (lode_export_error_quark ())
GQuark lode_export_error_quark (void);

typedef enum {
  LODE_EXPORT_ERROR_TARGET,   /* the folder is refused (inside the data set, a file, a link out) */
  LODE_EXPORT_ERROR_WRITE,    /* a folder or file cannot be written (full disk, permissions) */
  LODE_EXPORT_ERROR_SOURCE,   /* a patch's image or mask cannot be read */
  LODE_EXPORT_ERROR_INVALID,  /* bad options */
} LodeExportError;

typedef enum {
  LODE_EXPORT_MASKS      = 1 << 0,
  LODE_EXPORT_SPLITS     = 1 << 1,
  LODE_EXPORT_MANIFEST   = 1 << 2,
  LODE_EXPORT_GPKG       = 1 << 3,
  LODE_EXPORT_TERRATORCH = 1 << 4,
} LodeExportFormats;

#define LODE_EXPORT_ALL_FORMATS ((LodeExportFormats) 0x1f)

typedef enum {
  LODE_EXPORT_BANDS_ALL,
  LODE_EXPORT_BANDS_SIX,  /* indices 0 1 2 7 8 9: B2 B3 B4 B8A B11 B12 */
} LodeExportBands;

typedef struct
{
  LodeExportFormats formats;        /* default: all */
  gboolean          accepted_only;  /* default FALSE */
  LodeExportBands   bands;          /* terratorch images; default all */
} LodeExportOptions;

typedef struct
{
  guint   n_exported;        /* patches written */
  guint   n_without_mask;    /* patches left out: no mask */
  guint   n_not_accepted;    /* patches left out by accepted_only */
  guint   n_changed;         /* exported patches whose mask differs from the original */
  guint64 changed_pixels;    /* over all exported patches */
  guint   n_files;           /* files written */
} LodeExportReport;

void      lode_export_options_init  (LodeExportOptions *options);
/* "masks,splits,manifest,gpkg,terratorch" (any subset, comma-separated, or
 * "all") into flags; an unknown name is a LODE_EXPORT_ERROR_INVALID error. */
gboolean  lode_export_parse_formats (const char        *list,
                                     LodeExportFormats *out,
                                     GError           **error);
/* The path of a patch's exported mask, relative to the export folder, for
 * a project of this layout (the store's "layout" meta value). */
char     *lode_export_mask_path     (const LodePatch   *patch,
                                     const char        *layout);

gboolean  lode_export_run           (LodeStore               *store,
                                     const char              *dir,
                                     const LodeExportOptions *options,
                                     LodeExportReport        *report,
                                     LodeProgressFunc         progress,
                                     gpointer                 user_data,
                                     GCancellable            *cancellable,
                                     GError                 **error);

G_END_DECLS
