/* lode-pickle.h: a safe reader for the pickles inside PyTorch checkpoints.
 *
 * A small interpreter over a bounded byte buffer that builds a tree of
 * plain values (dicts, lists, tuples, strings, numbers) plus the few torch
 * objects a checkpoint holds (storages and tensors). It never imports or
 * calls anything: a global outside the allowlist (collections.OrderedDict,
 * torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter and the
 * torch.*Storage types) is refused with LODE_CHECKPOINT_ERROR_UNSAFE naming
 * it, an opcode it does not know with LODE_CHECKPOINT_ERROR_UNSUPPORTED.
 * Errors use the LODE_CHECKPOINT_ERROR domain.
 */
#pragma once

#include <glib.h>

#include "lode-tensor.h"

G_BEGIN_DECLS

typedef enum {
  LODE_PICKLE_NONE,
  LODE_PICKLE_BOOL,
  LODE_PICKLE_INT,
  LODE_PICKLE_FLOAT,
  LODE_PICKLE_STR,
  LODE_PICKLE_BYTES,
  LODE_PICKLE_TUPLE,
  LODE_PICKLE_LIST,
  LODE_PICKLE_DICT,
  LODE_PICKLE_GLOBAL,
  LODE_PICKLE_STORAGE,
  LODE_PICKLE_TENSOR,
} LodePickleKind;

/* The allowlisted globals. */
typedef enum {
  LODE_PICKLE_GLOBAL_ORDERED_DICT,
  LODE_PICKLE_GLOBAL_REBUILD_TENSOR_V2,
  LODE_PICKLE_GLOBAL_REBUILD_PARAMETER,
  LODE_PICKLE_GLOBAL_STORAGE_TYPE,
} LodePickleGlobalKind;

typedef struct _LodePickleObj LodePickleObj;

struct _LodePickleObj {
  LodePickleKind kind;
  union {
    gboolean b;                 /* BOOL */
    gint64 i;                   /* INT */
    double f;                   /* FLOAT */
    struct {
      char *data;               /* NUL-terminated; STR is valid UTF-8 */
      gsize len;
    } str;                      /* STR, BYTES */
    GPtrArray *items;           /* TUPLE, LIST; DICT: key, value, key, value... */
    struct {
      LodePickleGlobalKind kind;
      const char *qualname;     /* "torch.FloatStorage" */
      LodeDType dtype;          /* for LODE_PICKLE_GLOBAL_STORAGE_TYPE */
    } global;
    struct {
      LodeDType dtype;
      char *key;                /* the zip entry <top>/data/<key> */
      char *location;           /* "cpu", "cuda:0" */
      gint64 numel;             /* elements of dtype */
    } storage;
    struct {
      LodePickleObj *storage;   /* a LODE_PICKLE_STORAGE */
      gint64 offset;            /* in elements */
      int ndim;
      gint64 size[LODE_TENSOR_MAX_DIMS];
      gint64 stride[LODE_TENSOR_MAX_DIMS];
    } tensor;
  };
};

typedef struct _LodePickle LodePickle;

/* Reads the pickle in data[0..len); the buffer must outlive nothing: all
 * strings are copied. Returns NULL with error set on any problem. */
LodePickle     *lode_pickle_load       (const guint8  *data,
                                        gsize          len,
                                        GError       **error);
void            lode_pickle_free       (LodePickle    *pickle);
/* The object STOP returned; owned by the pickle. */
LodePickleObj  *lode_pickle_root       (LodePickle    *pickle);
/* For a DICT: the value of the last item whose key is the string key. */
LodePickleObj  *lode_pickle_dict_get   (LodePickleObj *dict,
                                        const char    *key);
guint           lode_pickle_len        (LodePickleObj *obj);
/* Item i of a TUPLE or LIST; key/value of item i of a DICT. */
LodePickleObj  *lode_pickle_item       (LodePickleObj *obj,
                                        guint          i);
LodePickleObj  *lode_pickle_dict_key   (LodePickleObj *dict,
                                        guint          i);
LodePickleObj  *lode_pickle_dict_value (LodePickleObj *dict,
                                        guint          i);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodePickle, lode_pickle_free)

G_END_DECLS
