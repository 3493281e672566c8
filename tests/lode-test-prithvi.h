/* lode-test-prithvi.h: what test-prithvi and test-prithvi-300m share:
 * layouts of tests/data/prithvi (the .layout.tsv files) written as PyTorch checkpoints
 * filled by the weights rule, the reference records of
 * tests/reference/prithvi_reference.py, and its generated input. */
#pragma once

#include <glib.h>

#include "lode-prithvi.h"
#include "lode-test-ckpt.h"

G_BEGIN_DECLS

typedef struct {
  char   *name;
  int     ndim;
  gint64  shape[8];
  gboolean is_long;   /* LongStorage (num_batches_tracked) */
} LodeTestLayoutEntry;

/* The entries of tests/data/prithvi/<file> (key, shape, dtype). */
GPtrArray *lode_test_prithvi_layout      (const char *file);
/* Writes the entries whose names satisfy keep (NULL: all) as a torch zip:
 * stored under prefix + name, values by the weights rule for name. */
void       lode_test_prithvi_write_ckpt  (const char   *path,
                                          GPtrArray    *layout,
                                          const char   *prefix,
                                          LodeTestWrap  wrap,
                                          gboolean    (*keep) (const char *name));

/* The same with every storage zero, written as holes (a sparse file). */
void       lode_test_prithvi_write_zero_ckpt (const char *path,
                                              GPtrArray  *layout);

typedef struct {
  float  *data;       /* count values: element i is element i*stride of the tensor */
  gsize   count;
  int     stride;
  int     ndim;
  gint64  shape[8];
} LodeTestRecord;

/* Record name of tests/data/prithvi/prithvi-<which>.{tsv,f32}. */
LodeTestRecord *lode_test_prithvi_record (const char *which,
                                          const char *name);
void            lode_test_record_free    (LodeTestRecord *record);
/* max |got[i stride] - ref[i]| / max |ref[i]| */
double          lode_test_record_error   (const LodeTestRecord *ref,
                                          const float          *got);

/* The reference script's raw_input: [n, 6, h, w] reflectances. */
void       lode_test_prithvi_raw_input   (float *out,
                                          int    n,
                                          int    h,
                                          int    w);

/* The reduced models of the fixtures (4 heads, which the shapes do not
 * tell): encoder from path, decoder from decoder_path (NULL: path too),
 * or a new decoder of 2 classes and 32 channels when fresh_decoder. */
LodePrithviModel *lode_test_prithvi_open (const char *path,
                                          const char *decoder_path,
                                          gboolean    fresh_decoder);

/* The reference script's hashed: ((i + salt) * 2654435761 mod 2^32) / 2^32
 * * 4 - 2 for i < n. */
void       lode_test_prithvi_hashed      (float   *out,
                                          gsize    n,
                                          guint64  salt);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeTestRecord, lode_test_record_free)

G_END_DECLS
