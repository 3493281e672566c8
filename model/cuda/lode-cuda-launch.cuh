// lode-cuda-launch.cuh: the launch geometry and block reductions every .cu
// file of Lode uses.
// Element-wise kernels run grid-stride loops with size_t indices over grids
// of BLOCK threads per block, capped at MAX_GRID blocks: the loops cover the
// rest, and the cap keeps every multiprocessor busy on any current GPU.
#pragma once

#include <cuda_runtime.h>
#include <math.h>
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

// Blocks for a kernel that gives one block to each row (grid-stride over
// the rest), at least one.
static inline unsigned int
grid_rows (size_t rows)
{
  return (unsigned int) (rows < MAX_GRID ? (rows ? rows : 1) : MAX_GRID);
}

// ---- block reductions (blockDim.x a multiple of 32, at most 1024) ----------
// Each returns the result to every thread and must be called by all of them.

__device__ static inline float
warp_sum (float v)
{
  for (int off = 16; off > 0; off >>= 1)
    v += __shfl_xor_sync (0xffffffffu, v, off);
  return v;
}

__device__ static inline float
warp_max (float v)
{
  for (int off = 16; off > 0; off >>= 1)
    v = fmaxf (v, __shfl_xor_sync (0xffffffffu, v, off));
  return v;
}

// Sum of v over the block, in float.
__device__ static inline float
block_sum (float v)
{
  __shared__ float partial[32];
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;

  v = warp_sum (v);
  __syncthreads ();  // a previous call may still be reading partial
  if (lane == 0)
    partial[warp] = v;
  __syncthreads ();
  v = lane < nwarps ? partial[lane] : 0.0f;
  return warp_sum (v);
}

__device__ static inline float
block_max (float v)
{
  __shared__ float partial[32];
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;

  v = warp_max (v);
  __syncthreads ();
  if (lane == 0)
    partial[warp] = v;
  __syncthreads ();
  v = lane < nwarps ? partial[lane] : -INFINITY;
  return warp_max (v);
}

// Sum of v over the block in double, by halving (blockDim.x a power of
// two); part: blockDim.x doubles of shared memory, free again on return.
__device__ static inline double
block_sum (double v, double *part)
{
  part[threadIdx.x] = v;
  __syncthreads ();
  for (int k = blockDim.x / 2; k > 0; k /= 2)
    {
      if ((int) threadIdx.x < k)
        part[threadIdx.x] += part[threadIdx.x + k];
      __syncthreads ();
    }
  double r = part[0];
  __syncthreads ();
  return r;
}
