// lode-cuda-device.cu: device discovery for the CUDA backend.
#include <cuda_runtime.h>
#include <stdio.h>
#include "../lode-cuda.h"

extern "C" int
lode_cuda_device_count (void)
{
  int n = 0;
  if (cudaGetDeviceCount (&n) != cudaSuccess)
    {
      cudaGetLastError ();  // clear the sticky "no driver" error
      return 0;
    }
  return n;
}

extern "C" int
lode_cuda_device_name (char *buf, unsigned long len, unsigned long long *total_mem)
{
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties (&prop, 0) != cudaSuccess)
    return -1;
  snprintf (buf, len, "%s (sm_%d%d)", prop.name, prop.major, prop.minor);
  if (total_mem)
    *total_mem = prop.totalGlobalMem;
  return 0;
}
