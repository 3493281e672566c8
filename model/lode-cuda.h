/* lode-cuda.h: the C face of the CUDA backend (the .cu files in model/cuda).
 * Only declared when the build has CUDA; callers check LODE_WITH_CUDA. */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable CUDA devices, 0 when there is no driver or device. */
int lode_cuda_device_count (void);
/* Writes the name and memory of device 0 into buf; returns 0 on success. */
int lode_cuda_device_name (char *buf, unsigned long len, unsigned long long *total_mem);

#ifdef __cplusplus
}
#endif
