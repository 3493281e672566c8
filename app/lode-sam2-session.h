/* lode-sam2-session.h: SAM2 on a project's patches.
 *
 * Joins the model (the predictor), the domain (the patch's composite) and
 * the project store (the index of the embedding cache): an embedding is
 * computed once per patch, composite, checkpoint and input size, saved in a
 * folder beside the project and indexed in the store, and the cache is kept
 * under a size bound by dropping what was used least recently. No GTK.
 * One session per thread. */
#pragma once

#include <gio/gio.h>

#include "lode-composite.h"
#include "lode-raster.h"
#include "lode-sam2-predictor.h"
#include "lode-store.h"

G_BEGIN_DECLS

#define LODE_SAM2_CACHE_DEFAULT_BYTES ((guint64) 2 << 30)

typedef struct _LodeSam2Session LodeSam2Session;

/* input_size 0 takes the model's own (1024). */
LodeSam2Session   *lode_sam2_session_new        (const char              *checkpoint,
                                                 int                      input_size,
                                                 GError                 **error);
void               lode_sam2_session_free       (LodeSam2Session         *self);
LodeSam2Predictor *lode_sam2_session_get_predictor (LodeSam2Session      *self);
/* Names the checkpoint file (path, size, time) and input size: two
 * checkpoints never share cache entries. */
const char        *lode_sam2_session_model_key  (LodeSam2Session         *self);

/* The folder of the project's embedding cache: PROJECT.lode.cache/sam2. */
char              *lode_sam2_cache_dir          (LodeStore               *store);
/* The composite as the cache names it: preset, bands, stretch, gamma. */
char              *lode_sam2_composite_key      (const LodeCompositeSpec *spec);

/* The embedding of the patch's composite: from the cache when there (and
 * valid), else encoded, saved and indexed, evicting past max_bytes (0: the
 * default bound). from_cache says which. cancellable (may be NULL) stops
 * an encode between the encoder's blocks (G_IO_ERROR_CANCELLED). */
LodeSam2Embedding *lode_sam2_session_embed      (LodeSam2Session         *self,
                                                 LodeStore               *store,
                                                 gint64                   patch_id,
                                                 const LodeRaster        *raster,
                                                 const LodeCompositeSpec *spec,
                                                 guint64                  max_bytes,
                                                 gboolean                *from_cache,
                                                 GCancellable            *cancellable,
                                                 GError                 **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeSam2Session, lode_sam2_session_free)

G_END_DECLS
