/* lode-checkpoint.h: reads the tensors of model checkpoint files.
 *
 * Two formats, told apart by their first bytes, not their extension:
 *  - PyTorch .pt/.pth files written by torch.save (a zip archive holding a
 *    pickle, data.pkl, and one entry per storage). The pickle is read by a
 *    safe interpreter (lode-pickle.h) that never runs anything: any global
 *    outside a short allowlist is refused.
 *  - safetensors files (a JSON header and raw little-endian tensors).
 *
 * The file is memory-mapped and tensors are read only when asked for.
 * Tensor names are flattened: a checkpoint {'model': {name: tensor}},
 * {'state_dict': {...}} or a bare {name: tensor} gives the inner names,
 * e.g. "image_encoder.trunk.patch_embed.proj.weight".
 */
#pragma once

#include <glib.h>

#include "lode-tensor.h"

G_BEGIN_DECLS

#define LODE_CHECKPOINT_ERROR (lode_checkpoint_error_quark ())
GQuark lode_checkpoint_error_quark (void);

typedef enum {
  LODE_CHECKPOINT_ERROR_OPEN,        /* the file cannot be opened or mapped */
  LODE_CHECKPOINT_ERROR_TRUNCATED,   /* the file is cut short (interrupted download) */
  LODE_CHECKPOINT_ERROR_NOT_ZIP,     /* neither a PyTorch zip nor safetensors */
  LODE_CHECKPOINT_ERROR_CORRUPT,     /* damaged archive, pickle or header */
  LODE_CHECKPOINT_ERROR_UNSAFE,      /* the pickle names a global outside the allowlist */
  LODE_CHECKPOINT_ERROR_UNSUPPORTED, /* an opcode, dtype or compression Lode does not read */
  LODE_CHECKPOINT_ERROR_SHAPE,       /* absurd or mismatched shapes, strides or offsets */
  LODE_CHECKPOINT_ERROR_MISSING,     /* an expected tensor or storage is absent */
} LodeCheckpointError;

typedef struct _LodeCheckpoint LodeCheckpoint;

LodeCheckpoint *lode_checkpoint_open              (const char     *path,
                                                   GError        **error);
void            lode_checkpoint_free              (LodeCheckpoint *self);
/* "pytorch" or "safetensors" */
const char     *lode_checkpoint_format            (LodeCheckpoint *self);
guint           lode_checkpoint_n_tensors         (LodeCheckpoint *self);
/* Names in file order. */
const char     *lode_checkpoint_name              (LodeCheckpoint *self,
                                                   guint           i);
gboolean        lode_checkpoint_has               (LodeCheckpoint *self,
                                                   const char     *name);
/* FALSE when there is no tensor of that name. */
gboolean        lode_checkpoint_shape             (LodeCheckpoint *self,
                                                   const char     *name,
                                                   int            *ndim,
                                                   gint64          shape[LODE_TENSOR_MAX_DIMS]);
/* "float32", "float16", "bfloat16", "int64", ...; NULL when absent. */
const char     *lode_checkpoint_dtype             (LodeCheckpoint *self,
                                                   const char     *name);
/* The tensor converted to float32, with its storage offset and strides
 * honoured; MISSING when there is no such tensor. */
LodeTensor     *lode_checkpoint_load              (LodeCheckpoint *self,
                                                   const char     *name,
                                                   GError        **error);
/* Names starting with prefix, in file order (strings owned by self). */
GPtrArray      *lode_checkpoint_names_with_prefix (LodeCheckpoint *self,
                                                   const char     *prefix);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeCheckpoint, lode_checkpoint_free)

G_END_DECLS
