// lode-cuda-launch.cuh: the launch geometry every .cu file of Lode uses.
// Element-wise kernels run grid-stride loops with size_t indices over grids
// of BLOCK threads per block, capped at MAX_GRID blocks: the loops cover the
// rest, and the cap keeps every multiprocessor busy on any current GPU.
#pragma once

#include <cuda_runtime.h>
#include <stddef.h>

static const int BLOCK = 256;
static const size_t MAX_GRID = 65535u * 16u;

#define GRID_STRIDE(i, n) \
  for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
       i += (size_t) blockDim.x * gridDim.x)

// Blocks of block threads for work items, at least one.
static inline unsigned int
grid_for (size_t work, int block = BLOCK)
{
  size_t g = (work + block - 1) / block;
  if (g > MAX_GRID)
    g = MAX_GRID;
  return (unsigned int) (g ? g : 1);
}
