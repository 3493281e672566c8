/* lode-import.h: filling a project from a data set on disk.
 *
 * Two layouts: SmallMinesDS (YEAR/IMAGE/IMG_[GH_]TTTT_YYYY.tif with
 * YEAR/MASK/MASK_[GH_]TTTT_YYYY.tif, both years, binary masks or the 3-class
 * cocoa companion, the official split CSVs when present) and a generic
 * folder of GeoTIFFs with optional masks found by a pattern. Patches that
 * are odd (another size or band count, no mask, a mask whose size or
 * georeferencing differs, mask values outside the class table) are imported
 * where possible and listed with the reason. */
#pragma once

#include <gio/gio.h>

#include "lode-classes.h"
#include "lode-progress.h"
#include "lode-store.h"

G_BEGIN_DECLS

#define LODE_IMPORT_ERROR (lode_import_error_quark ())
GQuark lode_import_error_quark (void);

typedef enum {
  LODE_IMPORT_ERROR_FOLDER,   /* the source folder is missing or unreadable */
  LODE_IMPORT_ERROR_LAYOUT,   /* no patches found in the expected layout */
  LODE_IMPORT_ERROR_SPLITS,   /* a split CSV is malformed */
  LODE_IMPORT_ERROR_INVALID,  /* bad options */
} LodeImportError;

typedef enum {
  LODE_IMPORT_MASKS_BINARY,   /* SmallMinesDS MASK folders, 0/1 */
  LODE_IMPORT_MASKS_COCOA,    /* the 3-class companion, tile ids shifted by one */
} LodeImportMasks;

typedef struct
{
  LodeImportMasks masks;
  /* The cocoa companion's root (its YEAR/MASK folders); NULL looks for
   * SOURCE/cocoa. Only for LODE_IMPORT_MASKS_COCOA. */
  const char     *cocoa_dir;
  /* Generic folders: a regular expression matched against an image's file
   * name and the replacement that names its mask (\1... refer to groups),
   * e.g. "^(.*)_input\\.tif$" and "\\1_label.tif". NULL: no masks. */
  const char     *mask_regex;
  const char     *mask_replace;
  /* The class table the masks' values are read through; NULL takes the
   * preset of the mask set (binary, or cocoa). Generic folders default to
   * the binary table. */
  const LodeClassTable *classes;
  int             expected_size;   /* patches of another size are odd; 0 = any */
  int             expected_bands;  /* 0 = any */
} LodeImportOptions;

typedef struct
{
  char *tile_id;
  int   year;
  char *path;
  char *reason;  /* translated */
} LodeImportOdd;

typedef struct
{
  guint      n_patches;
  guint      n_masks;
  guint      n_with_split;
  GPtrArray *odd;  /* LodeImportOdd* */
} LodeImportReport;

void      lode_import_options_init  (LodeImportOptions *options);
void      lode_import_report_init   (LodeImportReport  *report);
void      lode_import_report_clear  (LodeImportReport  *report);

/* Imports the SmallMinesDS layout found at source (the folder holding
 * SmallMinesDS/ and data_splits/, or SmallMinesDS/ itself) into the store,
 * in one transaction: on error or cancellation nothing is added. */
gboolean  lode_import_smallminesds  (LodeStore               *store,
                                     const char              *source,
                                     const LodeImportOptions *options,
                                     LodeImportReport        *report,
                                     LodeProgressFunc         progress,
                                     gpointer                 user_data,
                                     GCancellable            *cancellable,
                                     GError                 **error);
/* Imports every GeoTIFF directly in source; tile id = file stem, year 0
 * unless the stem ends in _YYYY. */
gboolean  lode_import_folder        (LodeStore               *store,
                                     const char              *source,
                                     const LodeImportOptions *options,
                                     LodeImportReport        *report,
                                     LodeProgressFunc         progress,
                                     gpointer                 user_data,
                                     GCancellable            *cancellable,
                                     GError                 **error);
/* TRUE when source looks like the SmallMinesDS layout. */
gboolean  lode_import_is_smallminesds (const char *source);

/* Splits a SmallMinesDS file name (IMG_GH_0001_2016.tif, MASK_1125_2016.tif)
 * into tile id and year: the last two "_" fields of the stem. */
gboolean  lode_import_parse_name    (const char  *name,
                                     char       **tile_id,
                                     int         *year);

G_END_DECLS
