/* lode-tensor.h: a float32 host tensor, and the element types found in
 * checkpoint files.
 *
 * Minimal for now: the compute runtime is built on top of it later.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define LODE_TENSOR_MAX_DIMS 8

typedef struct {
  int     ndim;
  gint64  shape[LODE_TENSOR_MAX_DIMS];
  float  *data;
  gsize   numel;
  char   *name;
} LodeTensor;

/* Element types of stored tensors; loaded tensors are always float32. */
typedef enum {
  LODE_DTYPE_FLOAT32,
  LODE_DTYPE_FLOAT16,
  LODE_DTYPE_BFLOAT16,
  LODE_DTYPE_FLOAT64,
  LODE_DTYPE_INT64,
  LODE_DTYPE_INT32,
  LODE_DTYPE_INT16,
  LODE_DTYPE_INT8,
  LODE_DTYPE_UINT8,
  LODE_DTYPE_BOOL,
} LodeDType;

/* A zeroed tensor; NULL when the shape is negative, has more than
 * LODE_TENSOR_MAX_DIMS dimensions or does not fit in memory. */
LodeTensor  *lode_tensor_new            (int           ndim,
                                         const gint64 *shape);
void         lode_tensor_free           (LodeTensor  *tensor);
gsize        lode_tensor_numel          (const LodeTensor *tensor);
/* Product of the sizes, FALSE when it overflows limit. */
gboolean     lode_shape_numel           (int           ndim,
                                         const gint64 *shape,
                                         guint64       limit,
                                         guint64      *numel);

gsize        lode_dtype_size            (LodeDType     dtype);
/* "float32", "float16", "bfloat16", "float64", "int64", ... */
const char  *lode_dtype_name            (LodeDType     dtype);
gboolean     lode_dtype_from_name       (const char   *name,
                                         LodeDType    *dtype);
float        lode_half_to_float         (guint16       half);
guint16      lode_float_to_half         (float         value);
float        lode_bfloat16_to_float     (guint16       bf16);
guint16      lode_float_to_bfloat16     (float         value);
/* Converts n little-endian elements of dtype at src to float32. */
void         lode_dtype_convert         (LodeDType     dtype,
                                         const guint8 *src,
                                         gsize         n,
                                         float        *dst);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeTensor, lode_tensor_free)

G_END_DECLS
