/* lode-sam2-tool.h: the SAM2 tool's engine behind the window.
 *
 * Holds the prompts of the patch shown (points in patch pixels with their
 * labels, an optional box), the latest prediction and the chosen candidate.
 * All model work runs on one worker thread, one job after the other: the
 * checkpoint is loaded lazily (one LodeSam2Session per checkpoint and input
 * size), the patch's embedding is read from the project's cache or encoded
 * (the worker opens its own LodeStore on the project file), and every change
 * of the prompts runs a prediction, refined by the previous best
 * low-resolution logits as the official predictor does when points are
 * added. A job made stale by a newer patch or newer prompts is skipped or
 * its result dropped. "changed" is emitted in the main context whenever
 * something shown changes; "error" when the checkpoint or the patch cannot
 * be used (a LODE_SAM2_TOOL_ERROR or the error of the layer below). */
#pragma once

#include <glib-object.h>

#include "lode-composite.h"
#include "lode-sam2-predictor.h"

G_BEGIN_DECLS

#define LODE_TYPE_SAM2_TOOL (lode_sam2_tool_get_type ())
G_DECLARE_FINAL_TYPE (LodeSam2Tool, lode_sam2_tool, LODE, SAM2_TOOL, GObject)

typedef enum {
  LODE_SAM2_TOOL_IDLE,      /* no patch asked for, or no checkpoint */
  LODE_SAM2_TOOL_LOADING,   /* the checkpoint is being read */
  LODE_SAM2_TOOL_ENCODING,  /* the patch's embedding is being computed */
  LODE_SAM2_TOOL_READY,     /* clicks are answered */
  LODE_SAM2_TOOL_FAILED,    /* the checkpoint or the patch could not be used */
} LodeSam2ToolState;

LodeSam2Tool      *lode_sam2_tool_new            (void);

/* The model: checkpoint path (NULL or "" for none), input size (1024 or
 * 512) and the cache bound in bytes. A change drops what was computed. */
void               lode_sam2_tool_set_model      (LodeSam2Tool            *self,
                                                  const char              *checkpoint,
                                                  int                      input_size,
                                                  guint64                  cache_bytes);
const char        *lode_sam2_tool_get_checkpoint (LodeSam2Tool            *self);

/* Asks for the embedding of a patch of the project with this composite
 * (image_path: the patch's GeoTIFF); drops the prompts. Nothing happens
 * when that embedding is already there or on its way. patch_id 0 forgets
 * the patch. */
void               lode_sam2_tool_set_patch      (LodeSam2Tool            *self,
                                                  const char              *project,
                                                  gint64                   patch_id,
                                                  const char              *image_path,
                                                  int                      width,
                                                  int                      height,
                                                  const LodeCompositeSpec *spec);
gint64             lode_sam2_tool_get_patch_id   (LodeSam2Tool            *self);

/* The patch likely to be opened next (the next of the list; 0 or a NULL
 * image_path: none). With prefetching on (the default), once the current
 * patch is ready and no prompt is given, its embedding is computed into
 * the project's cache so that moving on needs no wait; a click, another
 * patch (but that one) or another model stops it. */
void               lode_sam2_tool_set_upcoming   (LodeSam2Tool            *self,
                                                  gint64                   patch_id,
                                                  const char              *image_path);
void               lode_sam2_tool_set_prefetch   (LodeSam2Tool            *self,
                                                  gboolean                 prefetch);
/* The last patch whose prefetch finished (0: none since the project,
 * composite or model changed). */
gint64             lode_sam2_tool_get_prefetched (LodeSam2Tool            *self);

LodeSam2ToolState  lode_sam2_tool_get_state      (LodeSam2Tool            *self);
/* The last error's message (FAILED), else NULL. */
const char        *lode_sam2_tool_get_error      (LodeSam2Tool            *self);
/* Whether the ready embedding came from the project's cache. */
gboolean           lode_sam2_tool_get_from_cache (LodeSam2Tool            *self);
/* TRUE while a job of this patch waits or runs. */
gboolean           lode_sam2_tool_is_busy        (LodeSam2Tool            *self);

/* Prompts, in patch pixels. Each change runs a prediction once ready. */
void               lode_sam2_tool_add_point      (LodeSam2Tool            *self,
                                                  double                   x,
                                                  double                   y,
                                                  gboolean                 positive);
void               lode_sam2_tool_set_box        (LodeSam2Tool            *self,
                                                  double                   x0,
                                                  double                   y0,
                                                  double                   x1,
                                                  double                   y1);
/* Clears the points, the box and the prediction. */
void               lode_sam2_tool_clear          (LodeSam2Tool            *self);
/* points: [n, 2] x, y; labels: [n], 1 positive, 0 negative. */
int                lode_sam2_tool_get_points     (LodeSam2Tool            *self,
                                                  const float            **points,
                                                  const int              **labels);
gboolean           lode_sam2_tool_get_box        (LodeSam2Tool            *self,
                                                  float                    box[4]);
gboolean           lode_sam2_tool_has_prompts    (LodeSam2Tool            *self);

/* The prediction for the current prompts, NULL while none is there. */
const LodeSam2Prediction *lode_sam2_tool_get_prediction (LodeSam2Tool     *self);
int                lode_sam2_tool_get_chosen     (LodeSam2Tool            *self);
/* Chooses candidate index (0-based); FALSE when there is no such one. */
gboolean           lode_sam2_tool_choose         (LodeSam2Tool            *self,
                                                  int                      index);

G_END_DECLS
