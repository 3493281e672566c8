#define G_LOG_DOMAIN "lode-test"

#include "config.h"

#include <math.h>
#include <string.h>

#include "lode-test-weights.h"

static guint32
fnv1a (const char *name)
{
  guint32 h = 0x811C9DC5u;

  for (const unsigned char *p = (const unsigned char *) name; *p; p++)
    {
      h ^= *p;
      h *= 0x01000193u;
    }
  return h;
}

static guint32
mix32 (guint32 x)
{
  x ^= x >> 16;
  x *= 0x7FEB352Du;
  x ^= x >> 15;
  x *= 0x846CA68Bu;
  x ^= x >> 16;
  return x;
}

void
lode_test_weights_fill (const char *name, const gint64 *shape, int ndim, float *out)
{
  const char *dot = strrchr (name, '.');
  const char *leaf = dot ? dot + 1 : name;
  guint32 h = fnv1a (name);
  gint64 n = 1;
  gint64 fan_in;

  for (int d = 0; d < ndim; d++)
    n *= shape[d];
  fan_in = (ndim >= 1 && shape[0] > 0) ? n / shape[0] : 1;

  for (gint64 i = 0; i < n; i++)
    {
      guint32 x = mix32 (((guint32) ((guint64) i * 0x9E3779B9u)) ^ h);
      double u = x / 4294967296.0;
      double s = 2.0 * u - 1.0;
      double v;

      if (g_str_equal (leaf, "running_var"))
        v = 1.0 + 0.2 * u;
      else if (g_str_equal (leaf, "running_mean"))
        v = 0.1 * s;
      else if (g_str_equal (leaf, "num_batches_tracked"))
        v = 0.0;
      else if (strstr (name, "gaussian_matrix") != NULL)
        v = sqrt (3.0) * s;
      else if (ndim <= 1)
        v = g_str_equal (leaf, "weight") ? 1.0 + 0.1 * s : 0.02 * s;
      else if (g_str_equal (leaf, "weight"))
        v = sqrt (3.0) * s / sqrt ((double) fan_in);
      else
        v = 0.02 * s;
      out[i] = (float) v;
    }
}
