/* lode-test-sam2.h: SAM2 decoder weights for the tests, from the
 * deterministic rule of lode-test-weights.h (the same values PyTorch gets in
 * tests/reference/lode_weights.py). Header only: the common test library
 * does not link model/. */
#pragma once

#include "lode-sam2-decoder.h"
#include "lode-test-weights.h"

/* A LodeSam2TensorSource whose every tensor follows the rule. */
static inline LodeTensor *
lode_test_rule_source (const char   *name,
                       int           ndim,
                       const gint64 *shape,
                       gpointer      data,
                       GError      **error)
{
  LodeTensor *t = lode_tensor_new (ndim, shape);

  (void) data;
  (void) error;
  lode_test_weights_fill (name, shape, ndim, t->data);
  return t;
}
