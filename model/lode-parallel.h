/* lode-parallel.h: how the CPU kernels of model/ (lode-ops.c, lode-grad.c)
 * split their loops over the cores and vector lanes. Private to model/. */
#pragma once

#include <glib.h>

/* Loops below this many elements stay on one thread: starting the team
 * costs more than the work. */
#define PARALLEL_MIN_WORK 32768

#ifdef _OPENMP
#define LODE_PRAGMA(x) _Pragma (#x)
#define PARALLEL_FOR(work) \
  LODE_PRAGMA (omp parallel for schedule (static) if ((work) > PARALLEL_MIN_WORK))
#else
#define PARALLEL_FOR(work)
#endif

/* Element-wise spans built three times, for AVX-512, AVX2 + FMA and the
 * baseline, the one the processor can run chosen when the program loads:
 * Debian's build targets the baseline x86-64, which leaves most of a
 * modern core's width unused in these loops. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__has_attribute)
#if __has_attribute (target_clones)
#define VECTOR_CLONES __attribute__ ((target_clones ("arch=x86-64-v4", "arch=x86-64-v3", "default"), \
                                        optimize ("tree-vectorize", "vect-cost-model=dynamic")))
#endif
#endif
#ifndef VECTOR_CLONES
#define VECTOR_CLONES
#endif
/* The same, with a * b + c contracted to one fused multiply-add (C17 mode
 * turns that off): for kernels whose sums no CPU twin of a CUDA kernel
 * has to match rounding for rounding. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__has_attribute)
#if __has_attribute (target_clones)
#define VECTOR_CLONES_FMA __attribute__ ((target_clones ("arch=x86-64-v4", "arch=x86-64-v3", "default"), \
                                            optimize ("tree-vectorize", "vect-cost-model=dynamic", \
                                                      "fp-contract=fast")))
#endif
#endif
#ifndef VECTOR_CLONES_FMA
#define VECTOR_CLONES_FMA VECTOR_CLONES
#endif
#ifdef _OPENMP
#define SIMD_FOR LODE_PRAGMA (omp simd)
#define SIMD_REDUCE(v) LODE_PRAGMA (omp simd reduction (+:v))
#define SIMD_MAX(v) LODE_PRAGMA (omp simd reduction (max:v))
#else
#define SIMD_FOR
#define SIMD_REDUCE(v)
#define SIMD_MAX(v)
#endif

/* Runs span (out, in, n) over count elements in chunks, one team of threads
 * when the work is large enough. */
#define SPAN_CHUNK 16384
#define PARALLEL_SPANS(span, out, in, count, cost)                                \
  do {                                                                            \
    gint64 n_chunks_ = ((gint64) (count) + SPAN_CHUNK - 1) / SPAN_CHUNK;         \
    PARALLEL_FOR ((gint64) (count) * (cost))                                      \
    for (gint64 k_ = 0; k_ < n_chunks_; k_++)                                     \
      {                                                                           \
        gsize o_ = (gsize) k_ * SPAN_CHUNK;                                       \
        span ((out) + o_, (in) + o_, MIN ((gsize) SPAN_CHUNK, (gsize) (count) - o_)); \
      }                                                                           \
  } while (0)
