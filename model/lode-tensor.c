#define G_LOG_DOMAIN "lode-model"

#include "config.h"

#include <math.h>
#include <string.h>

#include "lode-tensor.h"

/* Tensors larger than this many elements are refused (4 TiB of float32). */
#define LODE_TENSOR_MAX_NUMEL (G_GUINT64_CONSTANT (1) << 40)

gboolean
lode_shape_numel (int ndim, const gint64 *shape, guint64 limit, guint64 *numel)
{
  guint64 n = 1;

  if (ndim < 0 || ndim > LODE_TENSOR_MAX_DIMS)
    return FALSE;
  for (int i = 0; i < ndim; i++)
    {
      if (shape[i] < 0)
        return FALSE;
      if (shape[i] == 0)
        n = 0;
      else if (n != 0 && n > limit / (guint64) shape[i])
        return FALSE;
      else
        n *= (guint64) shape[i];
    }
  /* A zero size anywhere makes the product 0 whatever the other sizes, but
   * absurd sizes beside it are still refused. */
  for (int i = 0; i < ndim; i++)
    if ((guint64) shape[i] > limit)
      return FALSE;
  if (n > limit)
    return FALSE;
  if (numel != NULL)
    *numel = n;
  return TRUE;
}

LodeTensor *
lode_tensor_new (int ndim, const gint64 *shape)
{
  LodeTensor *tensor;
  guint64 numel;

  g_return_val_if_fail (ndim == 0 || shape != NULL, NULL);

  if (!lode_shape_numel (ndim, shape, LODE_TENSOR_MAX_NUMEL, &numel)
      || numel > G_MAXSIZE / sizeof (float))
    return NULL;
  tensor = g_new0 (LodeTensor, 1);
  tensor->ndim = ndim;
  if (ndim > 0)
    memcpy (tensor->shape, shape, (gsize) ndim * sizeof (gint64));
  tensor->numel = (gsize) numel;
  tensor->data = g_try_malloc0 (MAX (tensor->numel, 1) * sizeof (float));
  if (tensor->data == NULL)
    {
      g_free (tensor);
      return NULL;
    }
  return tensor;
}

void
lode_tensor_free (LodeTensor *tensor)
{
  if (tensor == NULL)
    return;
  g_free (tensor->data);
  g_free (tensor->name);
  g_free (tensor);
}

gsize
lode_tensor_numel (const LodeTensor *tensor)
{
  g_return_val_if_fail (tensor != NULL, 0);
  return tensor->numel;
}

static const struct {
  const char *name;
  gsize size;
} dtype_info[] = {
  [LODE_DTYPE_FLOAT32] = { "float32", 4 },
  [LODE_DTYPE_FLOAT16] = { "float16", 2 },
  [LODE_DTYPE_BFLOAT16] = { "bfloat16", 2 },
  [LODE_DTYPE_FLOAT64] = { "float64", 8 },
  [LODE_DTYPE_INT64] = { "int64", 8 },
  [LODE_DTYPE_INT32] = { "int32", 4 },
  [LODE_DTYPE_INT16] = { "int16", 2 },
  [LODE_DTYPE_INT8] = { "int8", 1 },
  [LODE_DTYPE_UINT8] = { "uint8", 1 },
  [LODE_DTYPE_BOOL] = { "bool", 1 },
};

gsize
lode_dtype_size (LodeDType dtype)
{
  g_return_val_if_fail ((guint) dtype < G_N_ELEMENTS (dtype_info), 0);
  return dtype_info[dtype].size;
}

const char *
lode_dtype_name (LodeDType dtype)
{
  g_return_val_if_fail ((guint) dtype < G_N_ELEMENTS (dtype_info), NULL);
  return dtype_info[dtype].name;
}

gboolean
lode_dtype_from_name (const char *name, LodeDType *dtype)
{
  for (guint i = 0; i < G_N_ELEMENTS (dtype_info); i++)
    if (g_strcmp0 (name, dtype_info[i].name) == 0)
      {
        *dtype = (LodeDType) i;
        return TRUE;
      }
  return FALSE;
}

static float
bits_to_float (guint32 bits)
{
  float f;

  memcpy (&f, &bits, sizeof f);
  return f;
}

static guint32
float_to_bits (float f)
{
  guint32 bits;

  memcpy (&bits, &f, sizeof bits);
  return bits;
}

float
lode_half_to_float (guint16 half)
{
  guint32 sign = (guint32) (half & 0x8000) << 16;
  guint32 exponent = (half >> 10) & 0x1f;
  guint32 mantissa = half & 0x3ff;

  if (exponent == 0x1f)
    return bits_to_float (sign | 0x7f800000 | (mantissa << 13));
  if (exponent == 0)
    {
      /* zero or subnormal: mantissa * 2^-24 */
      float v = ldexpf ((float) mantissa, -24);
      return sign ? -v : v;
    }
  return bits_to_float (sign | ((exponent + 112) << 23) | (mantissa << 13));
}

guint16
lode_float_to_half (float value)
{
  guint32 bits = float_to_bits (value);
  guint16 sign = (guint16) ((bits >> 16) & 0x8000);
  float a = fabsf (value);

  if (isnan (value))
    return sign | 0x7e00;
  if (a >= 65520.0f)
    return sign | 0x7c00;
  if (a < ldexpf (1.0f, -14))
    {
      /* subnormal half: round a / 2^-24 to nearest even */
      return sign | (guint16) lrintf (ldexpf (a, 24));
    }
  {
    guint32 abits = float_to_bits (a);
    guint32 mantissa = abits & 0x7fffff;
    guint32 exponent = (abits >> 23) - 112;
    guint32 h = (exponent << 10) | (mantissa >> 13);
    guint32 rest = mantissa & 0x1fff;

    if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
      h++;
    return sign | (guint16) h;
  }
}

float
lode_bfloat16_to_float (guint16 bf16)
{
  return bits_to_float ((guint32) bf16 << 16);
}

guint16
lode_float_to_bfloat16 (float value)
{
  guint32 bits = float_to_bits (value);

  if (isnan (value))
    return (guint16) ((bits >> 16) | 0x40);
  bits += 0x7fff + ((bits >> 16) & 1);
  return (guint16) (bits >> 16);
}

void
lode_dtype_convert (LodeDType dtype, const guint8 *src, gsize n, float *dst)
{
  gsize es = lode_dtype_size (dtype);

  for (gsize i = 0; i < n; i++)
    {
      const guint8 *p = src + i * es;
      guint64 u = 0;

      for (gsize b = 0; b < es; b++)
        u |= (guint64) p[b] << (8 * b);
      switch (dtype)
        {
        case LODE_DTYPE_FLOAT32:
          dst[i] = bits_to_float ((guint32) u);
          break;
        case LODE_DTYPE_FLOAT16:
          dst[i] = lode_half_to_float ((guint16) u);
          break;
        case LODE_DTYPE_BFLOAT16:
          dst[i] = lode_bfloat16_to_float ((guint16) u);
          break;
        case LODE_DTYPE_FLOAT64:
          {
            double d;
            memcpy (&d, &u, sizeof d);
            dst[i] = (float) d;
          }
          break;
        case LODE_DTYPE_INT64:
          dst[i] = (float) (gint64) u;
          break;
        case LODE_DTYPE_INT32:
          dst[i] = (float) (gint32) (guint32) u;
          break;
        case LODE_DTYPE_INT16:
          dst[i] = (float) (gint16) (guint16) u;
          break;
        case LODE_DTYPE_INT8:
          dst[i] = (float) (gint8) (guint8) u;
          break;
        case LODE_DTYPE_UINT8:
          dst[i] = (float) (guint8) u;
          break;
        case LODE_DTYPE_BOOL:
          dst[i] = u != 0 ? 1.0f : 0.0f;
          break;
        default:
          g_return_if_reached ();
        }
    }
}
