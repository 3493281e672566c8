/* lode-sam2-config.h: the SAM2.1 configuration, from the published table or
 * inferred from a checkpoint's tensor shapes.
 *
 * The four published sizes (tiny, small, base_plus, large) differ in the
 * Hiera trunk only; what the shapes cannot tell (attention heads, which
 * blocks attend globally, the window sizes) comes from the table once the
 * size is recognised. The prompt encoder and mask decoder are the same in
 * every size.
 *
 * A reduced configuration for tests: start from lode_sam2_config_init_size
 * (any size), change the trunk and neck fields (embed_dim, num_heads,
 * stages, n_global and global_blocks, window_spec, pos_embed_bkg, d_model,
 * image_size), set size_name to "custom", then call
 * lode_sam2_config_complete, which derives backbone_channels,
 * pos_embed_window and decoder_dim and checks that the geometry works.
 */
#pragma once

#include <glib.h>

#include "lode-checkpoint.h"
#include "lode-sam2-types.h"

G_BEGIN_DECLS

#define LODE_SAM2_CONFIG_ERROR (lode_sam2_config_error_quark ())
GQuark lode_sam2_config_error_quark (void);

typedef enum {
  LODE_SAM2_CONFIG_ERROR_UNKNOWN_SIZE, /* shapes that match no published size */
  LODE_SAM2_CONFIG_ERROR_MISSING,      /* a tensor the model needs is absent */
  LODE_SAM2_CONFIG_ERROR_SHAPE,        /* a tensor has the wrong shape */
  LODE_SAM2_CONFIG_ERROR_INVALID,      /* a configuration that cannot run (sizes, windows) */
} LodeSam2ConfigError;

/* The published configuration of size_name ("tiny", "small", "base_plus",
 * "large") at image size 1024; FALSE (cfg untouched) for any other name. */
gboolean    lode_sam2_config_init_size       (LodeSam2Config  *cfg,
                                              const char      *size_name);
/* Derives backbone_channels (embed_dim << 3 .. embed_dim), pos_embed_window
 * (window_spec[0]) and decoder_dim (d_model), then checks the geometry:
 * image_size a multiple of 32 whose stride-4 grid the window embedding
 * tiles, heads dividing every stage's width, even windows where a stage
 * starts with q-pooling, global block indices in range, d_model a multiple
 * of 8. INVALID with the reason otherwise. */
gboolean    lode_sam2_config_complete        (LodeSam2Config  *cfg,
                                              GError         **error);
/* Reads the trunk and neck shapes of ckpt (embed dim, blocks per stage,
 * background positional embedding, neck channels), matches them to the
 * published table and fills cfg for image size 1024 (change image_size
 * afterwards for 512, then call lode_sam2_config_complete). UNKNOWN_SIZE
 * says what was found; MISSING and SHAPE name the tensor. Error messages
 * name tensors, not the file: callers prefix the file name. */
gboolean    lode_sam2_config_from_checkpoint (LodeCheckpoint  *ckpt,
                                              LodeSam2Config  *cfg,
                                              GError         **error);

/* Total number of Hiera blocks. */
int         lode_sam2_config_n_blocks        (const LodeSam2Config *cfg);
/* The stage (0..3) of block. */
int         lode_sam2_config_block_stage     (const LodeSam2Config *cfg,
                                              int                   block);
gboolean    lode_sam2_config_block_is_global (const LodeSam2Config *cfg,
                                              int                   block);

/* One tensor the image encoder reads: its checkpoint name and shape. */
typedef struct {
  char   *name;
  int     ndim;
  gint64  shape[4];
} LodeSam2TensorSpec;

/* The tensors the image path needs (trunk, neck, the mask decoder's conv_s0
 * and conv_s1, no_mem_embed) with their shapes under cfg, in a fixed order:
 * an array of LodeSam2TensorSpec that frees its names. */
GArray     *lode_sam2_config_encoder_tensors (const LodeSam2Config *cfg);
/* Checks that every tensor of lode_sam2_config_encoder_tensors is in ckpt
 * with its shape: MISSING or SHAPE naming the first one that is not. */
gboolean    lode_sam2_config_check_encoder   (const LodeSam2Config *cfg,
                                              LodeCheckpoint       *ckpt,
                                              GError              **error);

G_END_DECLS
