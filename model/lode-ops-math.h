/* lode-ops-math.h: scalar functions shared by the CPU kernels and their
 * CUDA twins, so that both compute the same formula.
 *
 * lode_erf_approx: erf in single precision as x P(x^2) / Q(x^2), P and Q of
 * degree 5, on |x| <= 3.92 (beyond it erf is +-1 to within 6e-8). The
 * coefficients are our own weighted least-squares fit, iterated towards
 * equal ripple, of erf on [0, 3.92]: 2e-8 in exact arithmetic, and at most
 * 4e-7 from erf when evaluated in float32 over the whole line (checked in
 * test-ops). It has no branch and no call, so the GELU loops vectorise;
 * libm's erff does not, and GELU over the SAM2 decoder's upscaled features
 * took a quarter of a click. */
#pragma once

#ifdef __CUDACC__
#define LODE_MATH_FN static __host__ __device__ __forceinline__
#else
#define LODE_MATH_FN static inline
#endif

#define LODE_ERF_APPROX_LIMIT 3.92f

LODE_MATH_FN float
lode_erf_approx (float x)
{
  float a = x < -LODE_ERF_APPROX_LIMIT ? -LODE_ERF_APPROX_LIMIT :
            (x > LODE_ERF_APPROX_LIMIT ? LODE_ERF_APPROX_LIMIT : x);
  float a2 = a * a;
  float p = 2.0347745506299475e-06f;
  float q = 3.807102387230754e-05f;

  p = p * a2 + 2.8747803641381714e-04f;
  p = p * a2 + 3.8681771537728508e-03f;
  p = p * a2 + 5.3059963666106616e-02f;
  p = p * a2 + 1.927600589937159e-01f;
  p = p * a2 + 1.1283790225245405f;
  q = q * a2 + 1.1880840836869851e-03f;
  q = q * a2 + 1.5171972451660203e-02f;
  q = q * a2 + 1.1508297661086828e-01f;
  q = q * a2 + 5.041608223216467e-01f;
  q = q * a2 + 1.0f;
  return a * p / q;
}

/* GELU with the exact (erf) form, as PyTorch's default. */
LODE_MATH_FN float
lode_gelu_approx (float x)
{
  return 0.5f * x * (1.0f + lode_erf_approx (x * 0.70710678118654752f));
}

/* exp(x) for x <= 0 (scores minus their row maximum), to about 2 ulp:
 * x = n ln 2 + r with |r| <= ln 2 / 2, e^r by its Taylor polynomial to r^7,
 * 2^n through the exponent bits. Branch-free so that softmax vectorises;
 * torch's softmax uses a vectorised exp of the same accuracy. Below -87
 * it gives e^-87, which a softmax sum never notices. */
LODE_MATH_FN float
lode_exp_nonpositive (float x)
{
  float n, r, p;
  union { float f; int i; } u;

  x = x > -87.0f ? x : -87.0f;
  /* round to nearest by the 1.5 * 2^23 trick (vectorises, unlike rintf) */
  n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  r = x - n * 0.693145751953125f;
  r = r - n * 1.428606765330187045e-06f;
  p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  u.i = ((int) n + 127) << 23;
  return p * u.f;
}
