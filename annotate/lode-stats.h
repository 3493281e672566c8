/* lode-stats.h: what changed on the ground, in hectares.
 *
 * From the latest mask revision of every patch: the area of each class per
 * tile and year, and the transition matrix between two years (pixels of
 * class A in the first year that hold class B in the second, for tiles
 * present in both with the same size). A pixel's area comes from its
 * patch's geotransform: |gt[1] * gt[5]| m² / 10000 (0.01 ha at 10 m);
 * patches without a geotransform count pixels only (0 ha). Nodata pixels
 * count nowhere.
 *
 * CSV (lode_stats_to_csv), one file with a kind column:
 *   kind,tile,year,class,from_class,to_class,pixels,hectares
 *   area,total,2016,Mining,,,1234,12.34
 *   transition,total,2016-2022,,Cocoa,Mining,56,0.56
 * Area rows first (by year, then class-table order), then transitions with
 * cocoa -> mining first, then the other changes, then the unchanged
 * diagonal. Totals come first; with per_tile, each tile's rows follow. */
#pragma once

#include <gio/gio.h>

#include "lode-classes.h"
#include "lode-progress.h"
#include "lode-store.h"

G_BEGIN_DECLS

#define LODE_STATS_ERROR (lode_stats_error_quark ())
GQuark lode_stats_error_quark (void);

typedef enum {
  LODE_STATS_ERROR_NO_CLASSES,  /* the project has no class table */
  LODE_STATS_ERROR_WRITE,       /* the CSV cannot be written */
} LodeStatsError;

typedef struct _LodeStats LodeStats;

/* The id of the class named `name` (ASCII case-insensitive) or its
 * translation (preset tables store translated names: pass "Mining",
 * "Cocoa"), or -1. */
int          lode_stats_find_class      (const LodeClassTable *t,
                                         const char           *name);

LodeStats   *lode_stats_compute         (LodeStore        *store,
                                         int               from_year,
                                         int               to_year,
                                         LodeProgressFunc  progress,
                                         gpointer          user_data,
                                         GCancellable     *cancellable,
                                         GError          **error);
void         lode_stats_free            (LodeStats        *stats);

const LodeClassTable *lode_stats_get_classes (LodeStats  *stats);
/* Tile ids in order. */
guint        lode_stats_n_tiles         (LodeStats        *stats);
const char  *lode_stats_tile            (LodeStats        *stats,
                                         guint             index);
/* tile NULL: all tiles. 0 when nothing is known. */
double       lode_stats_hectares        (LodeStats        *stats,
                                         const char       *tile,
                                         int               year,
                                         guint8            class_id);
guint64      lode_stats_pixels          (LodeStats        *stats,
                                         const char       *tile,
                                         int               year,
                                         guint8            class_id);
double       lode_stats_transition_hectares (LodeStats    *stats,
                                         const char       *tile,
                                         guint8            from_class,
                                         guint8            to_class);
guint64      lode_stats_transition_pixels (LodeStats      *stats,
                                         const char       *tile,
                                         guint8            from_class,
                                         guint8            to_class);

char        *lode_stats_to_csv          (LodeStats        *stats,
                                         gboolean          per_tile);
/* Written atomically (temporary file, then rename). */
gboolean     lode_stats_write_csv       (LodeStats        *stats,
                                         const char       *path,
                                         gboolean          per_tile,
                                         GError          **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeStats, lode_stats_free)

G_END_DECLS
