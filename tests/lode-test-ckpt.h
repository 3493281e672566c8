/* lode-test-ckpt.h: writes PyTorch-style checkpoints for the tests.
 *
 * A zip writer laid out as torch.save does it (stored entries, 64-byte
 * aligned data, sizes in data descriptors, a central directory), a pickle
 * emitter producing the same form as the genuine SAM2 data.pkl, and the
 * value rule of the generated storages.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  LODE_TEST_FILL_BYTES,   /* bytes[0..nbytes) */
  LODE_TEST_FILL_SIN_F32, /* float32 element i = lode_test_ckpt_value (key, i) */
  LODE_TEST_FILL_ZEROS,   /* zeros, written as a hole in a sparse file */
} LodeTestFill;

typedef struct {
  const char   *name;     /* entry name in the archive */
  guint64       nbytes;
  LodeTestFill  fill;
  const guint8 *bytes;
  guint64       key;      /* for LODE_TEST_FILL_SIN_F32 */
  gboolean      deflate;  /* compress the entry (PyTorch never does) */
} LodeTestZipEntry;

/* Writes the entries, with a central directory when central is TRUE. */
void        lode_test_zip_write        (const char             *path,
                                        const LodeTestZipEntry *entries,
                                        guint                   n,
                                        gboolean                central);

typedef struct {
  const char *name;
  const char *storage_type;   /* "FloatStorage", "HalfStorage", ... */
  const char *key;            /* storage key */
  gint64      storage_numel;
  gint64      offset;
  int         ndim;
  gint64      shape[8];
  gint64      stride[8];      /* all 0: contiguous */
} LodeTestTensor;

typedef enum {
  LODE_TEST_WRAP_MODEL,       /* {'model': {name: tensor}} as SAM2 */
  LODE_TEST_WRAP_STATE_DICT,  /* {'state_dict': OrderedDict} */
  LODE_TEST_WRAP_NONE,        /* a bare OrderedDict */
} LodeTestWrap;

/* A protocol 2 pickle of the tensors, each through _rebuild_tensor_v2
 * (wrapped in _rebuild_parameter when parameters is TRUE). */
GByteArray *lode_test_pickle_tensors   (const LodeTestTensor *tensors,
                                        guint                 n,
                                        LodeTestWrap          wrap,
                                        gboolean              parameters);

/* Element i of generated storage key: sin (key * 1000 + i). */
float       lode_test_ckpt_value       (guint64 key,
                                        guint64 i);

/* A torch zip under top/: data.pkl, byteorder, one data/<key> per distinct
 * storage of tensors (float32 storages filled by the value rule, or zeros
 * when values is FALSE), version. */
void        lode_test_ckpt_write       (const char           *path,
                                        const char           *top,
                                        const guint8         *pkl,
                                        gsize                 pkl_len,
                                        const LodeTestTensor *tensors,
                                        guint                 n,
                                        gboolean              values);

/* Fills out[0..numel) with the values of the float32 tensor t and returns
 * TRUE, or returns FALSE to leave its storage zero. */
typedef gboolean (*LodeTestFillFunc) (const LodeTestTensor *t,
                                      float                *out,
                                      gpointer              user_data);

/* lode_test_ckpt_write with the values of each float32 storage given by
 * fill (one tensor per storage). */
void        lode_test_ckpt_write_with  (const char           *path,
                                        const char           *top,
                                        const guint8         *pkl,
                                        gsize                 pkl_len,
                                        const LodeTestTensor *tensors,
                                        guint                 n,
                                        LodeTestFillFunc      fill,
                                        gpointer              user_data);

/* A list of tensors that owns its names and keys. */
typedef struct {
  GPtrArray *strings;   /* owns the names and keys */
  GArray *tensors;      /* LodeTestTensor */
} LodeTestLayout;

LodeTestLayout *lode_test_layout_new   (void);
void            lode_test_layout_free  (LodeTestLayout       *layout);
/* A float32 tensor; key NULL numbers it by position. */
void            lode_test_layout_add   (LodeTestLayout       *layout,
                                        const char           *name,
                                        const char           *key,
                                        int                   ndim,
                                        const gint64         *shape);
/* A layout file as sam2.1_hiera_tiny.layout.tsv: a header line, then key,
 * shape "[a, b]", storage type, storage key, tab-separated. */
LodeTestLayout *lode_test_layout_read  (const char           *path);
/* The tensor list of a SAM2.1 size: the tiny layout with the image
 * encoder's trunk and neck re-derived from embed (width), stages (blocks
 * per stage) and bkg (background positional embedding size); everything
 * else (prompt encoder, mask decoder, memory) is the same in every size. */
LodeTestLayout *lode_test_layout_derive_sam2 (const LodeTestLayout *tiny,
                                              int                   embed,
                                              const int             stages[4],
                                              int                   bkg);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeTestLayout, lode_test_layout_free)

G_END_DECLS
