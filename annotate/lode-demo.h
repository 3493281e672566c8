/* lode-demo.h: a synthetic data set in the SmallMinesDS layout. */
#pragma once

#include <gio/gio.h>

#include "lode-progress.h"

G_BEGIN_DECLS

#define LODE_DEMO_ERROR (lode_demo_error_quark ())
GQuark lode_demo_error_quark (void);

typedef enum {
  LODE_DEMO_ERROR_FOLDER,   /* the folder cannot be made or written */
  LODE_DEMO_ERROR_WRITE,    /* GDAL failed writing a file */
  LODE_DEMO_ERROR_INVALID,  /* bad options */
} LodeDemoError;

typedef struct
{
  guint   n_tiles;  /* tiles, each written for 2016 and 2022 */
  guint64 seed;
  int     size;     /* width = height in pixels */
} LodeDemoOptions;

void     lode_demo_options_init (LodeDemoOptions       *options);
gboolean lode_demo_write        (const char            *dir,
                                 const LodeDemoOptions *options,
                                 LodeProgressFunc       progress,
                                 gpointer               user_data,
                                 GCancellable          *cancellable,
                                 GError               **error);
/* The approximate centre, in WGS84 degrees, of the mining district that
 * tile tile_id (1-based, as in IMG_GH_0001_2016.tif) is placed in; the
 * tiles of a district lie within a few kilometres of it. */
void     lode_demo_tile_district (guint                  tile_id,
                                  double                *lat,
                                  double                *lon);

G_END_DECLS
