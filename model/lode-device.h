/* lode-device.h: which compute backend runs the models.
 *
 * CUDA code is compiled in when the build found nvcc, cuBLAS and cuDNN; it is
 * used only when a device is present at run time. The CPU backend (OpenBLAS)
 * is always there.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define LODE_DEVICE_ERROR (lode_device_error_quark ())
GQuark lode_device_error_quark (void);

typedef enum {
  LODE_DEVICE_ERROR_UNKNOWN,     /* a name that is neither cpu, cuda nor auto */
  LODE_DEVICE_ERROR_UNAVAILABLE, /* CUDA asked for but not built or no device */
} LodeDeviceError;

typedef enum {
  LODE_DEVICE_CPU,
  LODE_DEVICE_CUDA,
} LodeDeviceKind;

gboolean        lode_device_cuda_built     (void);
int             lode_device_cuda_count     (void);
LodeDeviceKind  lode_device_choose         (const char *request,
                                            GError    **error);
const char     *lode_device_kind_name      (LodeDeviceKind kind);
char           *lode_device_describe       (LodeDeviceKind kind);

G_END_DECLS
