#define G_LOG_DOMAIN "lode-model"

#include "config.h"

#include <glib/gi18n.h>
#include <string.h>
#include <cblas.h>

#include "lode-device.h"
#include "lode-ops.h"
#ifdef LODE_WITH_CUDA
#include "lode-cuda.h"
#endif

G_DEFINE_QUARK (lode-device-error-quark, lode_device_error)

gboolean
lode_device_cuda_built (void)
{
#ifdef LODE_WITH_CUDA
  return TRUE;
#else
  return FALSE;
#endif
}

int
lode_device_cuda_count (void)
{
#ifdef LODE_WITH_CUDA
  static gsize once = 0;
  static int count = 0;
  if (g_once_init_enter (&once))
    {
      count = lode_cuda_device_count ();
      g_once_init_leave (&once, 1);
    }
  return count;
#else
  return 0;
#endif
}

/* request: NULL or "auto" picks CUDA when a device is present; "cpu" or
 * "cuda" ask for one backend and fail if it cannot be had. */
LodeDeviceKind
lode_device_choose (const char *request, GError **error)
{
  if (request == NULL || g_str_equal (request, "auto"))
    return lode_device_cuda_count () > 0 ? LODE_DEVICE_CUDA : LODE_DEVICE_CPU;
  if (g_str_equal (request, "cpu"))
    return LODE_DEVICE_CPU;
  if (g_str_equal (request, "cuda"))
    {
      if (!lode_device_cuda_built ())
        {
          g_set_error (error, LODE_DEVICE_ERROR, LODE_DEVICE_ERROR_UNAVAILABLE,
                       _("This Lode was built without CUDA; use --device cpu"));
          return LODE_DEVICE_CPU;
        }
      if (lode_device_cuda_count () == 0)
        {
          g_set_error (error, LODE_DEVICE_ERROR, LODE_DEVICE_ERROR_UNAVAILABLE,
                       _("No CUDA device was found; use --device cpu"));
          return LODE_DEVICE_CPU;
        }
      return LODE_DEVICE_CUDA;
    }
  g_set_error (error, LODE_DEVICE_ERROR, LODE_DEVICE_ERROR_UNKNOWN,
               _("Unknown device “%s” (expected cpu, cuda or auto)"), request);
  return LODE_DEVICE_CPU;
}

const char *
lode_device_kind_name (LodeDeviceKind kind)
{
  return kind == LODE_DEVICE_CUDA ? "cuda" : "cpu";
}

char *
lode_device_describe (LodeDeviceKind kind)
{
#ifdef LODE_WITH_CUDA
  if (kind == LODE_DEVICE_CUDA)
    {
      char name[256];
      unsigned long long mem = 0;
      if (lode_cuda_device_name (name, sizeof name, &mem) == 0)
        return g_strdup_printf ("CUDA: %s, %.1f GiB", name, mem / (1024.0 * 1024.0 * 1024.0));
    }
#endif
  return g_strdup_printf ("CPU: %d threads (OpenMP; OpenBLAS, %s kernels)", lode_ops_cpu_threads (),
                          openblas_get_corename ());
}
