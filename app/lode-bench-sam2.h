/* lode-bench-sam2.h: what lode bench sam2 shares with the tests. */
#pragma once

#include <glib.h>

#include "lode-sam2-types.h"

G_BEGIN_DECLS

/* Writes a safetensors checkpoint holding every tensor SAM2's image path
 * and decoder read under cfg, filled with plausible random values. */
gboolean lode_sam2_write_random_checkpoint (const LodeSam2Config *cfg,
                                            const char           *path,
                                            GError              **error);

G_END_DECLS
