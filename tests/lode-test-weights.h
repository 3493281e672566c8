/* lode-test-weights.h: the deterministic weights rule shared with the
 * PyTorch reference scripts (tests/reference/lode_weights.py explains it).
 * Same numbers on both sides, bit for bit, from integer hashing only. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Fills out[0..numel) with the rule's values for the tensor name of the
 * given shape (ndim dimensions). */
void lode_test_weights_fill (const char   *name,
                             const gint64 *shape,
                             int           ndim,
                             float        *out);

G_END_DECLS
