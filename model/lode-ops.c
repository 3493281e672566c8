/* lode-ops.c: the CPU kernels (see lode-ops.h for the semantics of each).
 *
 * One team of threads does all the CPU work: OpenMP's. Matrix products and
 * convolutions call cblas_sgemm on the calling thread (OpenBLAS keeps no
 * threads of its own, see lode_ops_cpu_init), cut into one part per thread
 * of the team when large enough (lode_ops_gemm_ld); the other loops are
 * split with OpenMP when the build has it. These are also the readable
 * references for the CUDA kernels in cuda/lode-ops.cu. */
#define G_LOG_DOMAIN "lode-model"

#include "config.h"

#include <glib/gi18n.h>
#include <math.h>
#include <string.h>
#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "lode-ops.h"
#include "lode-ops-math.h"
#include "lode-parallel.h"
#ifdef LODE_WITH_CUDA
#include "lode-ops-cuda.h"
#endif

G_DEFINE_QUARK (lode-ops-error-quark, lode_ops_error)

/* Scratch buffers (im2col columns, attention scores) are cut to this many
 * floats: 16 MiB; smaller chunks make the sgemm calls too thin to run at
 * full speed (the 96-channel 3x3 timing in test-ops halves at 4 MiB). */
#define SCRATCH_FLOATS (1 << 22)

/* ---- precision -------------------------------------------------------- */

static const char *const precision_names[] = { "fp32", "tf32", "bf16" };

gboolean
lode_precision_parse (const char *name, LodePrecision *out)
{
  if (name == NULL || name[0] == '\0')
    {
      *out = LODE_PRECISION_FP32;
      return TRUE;
    }
  for (guint i = 0; i < G_N_ELEMENTS (precision_names); i++)
    if (g_ascii_strcasecmp (name, precision_names[i]) == 0)
      {
        *out = (LodePrecision) i;
        return TRUE;
      }
  return FALSE;
}

const char *
lode_precision_name (LodePrecision precision)
{
  g_return_val_if_fail ((guint) precision < G_N_ELEMENTS (precision_names), "fp32");
  return precision_names[precision];
}

/* bfloat16 is the top half of a float: add half of the dropped half's range
 * (minus one, plus the kept half's lowest bit, for ties to even) and cut.
 * A carry into the exponent rounds up to the next binade, or to infinity. */
void
lode_ops_round_bf16 (float *out, const float *in, gsize count)
{
  g_return_if_fail (count == 0 || (out != NULL && in != NULL));

  for (gsize i = 0; i < count; i++)
    {
      guint32 u;

      memcpy (&u, in + i, sizeof u);
      if ((u & 0x7f800000u) == 0x7f800000u)
        u = (u & 0x007fffffu) ? (u | 0x00400000u) & 0xffff0000u   /* NaN stays NaN */
                              : u;                                /* infinity */
      else
        u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
      memcpy (out + i, &u, sizeof u);
    }
}

/* ---- threads ------------------------------------------------------------ */

/* Products below this many multiply-adds stay on the calling thread. */
#define GEMM_SPLIT_MACS (1 << 18)
/* The least rows (or columns) of C a thread's part has: the height of the
 * kernels' register blocks, so that no part ends in a thin edge. */
#define GEMM_SPLIT_SIDE 16

/* OpenBLAS's own pool beside OpenMP's made two teams for two cores: each
 * product woke OpenBLAS's threads and each element-wise loop OpenMP's,
 * and whichever team was idle spun or slept on the cores the other needed
 * (a SAM2 click, hundreds of small products between element-wise passes,
 * spent a tenth of its time in the scheduler). So OpenBLAS runs every
 * product on the thread that calls it, and lode_ops_gemm_ld splits the
 * large ones over OpenMP's team. */
void
lode_ops_cpu_init (void)
{
  static gsize done = 0;

  if (g_once_init_enter (&done))
    {
      openblas_set_num_threads (1);
      g_once_init_leave (&done, 1);
    }
}

int
lode_ops_cpu_threads (void)
{
#ifdef _OPENMP
  return MAX (1, omp_get_max_threads ());
#else
  return 1;
#endif
}

void
lode_ops_cpu_set_threads (int n)
{
  g_return_if_fail (n >= 1);
#ifdef _OPENMP
  omp_set_num_threads (n);
#endif
}

/* ---- matrix products ---------------------------------------------------- */

static void
sgemm (gboolean trans_a, gboolean trans_b, int m, int n, int k, float alpha,
       const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
  cblas_sgemm (CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
               m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void
lode_ops_gemm_ld (gboolean     trans_a,
                  gboolean     trans_b,
                  int          m,
                  int          n,
                  int          k,
                  float        alpha,
                  const float *a,
                  int          lda,
                  const float *b,
                  int          ldb,
                  float        beta,
                  float       *c,
                  int          ldc)
{
  int parts = 1;
  gboolean by_rows = m >= n;

  g_return_if_fail (m >= 0 && n >= 0 && k >= 0);
  g_return_if_fail (c != NULL && ldc >= n);

  if (m == 0 || n == 0)
    return;
  if (k == 0)
    {
      /* BLAS leaves C alone when k == 0 only if beta == 1; do it by hand. */
      for (int i = 0; i < m; i++)
        {
          float *row = c + (gsize) i * ldc;

          if (beta == 0.0f)
            memset (row, 0, sizeof (float) * n);
          else
            lode_ops_scale (row, row, beta, n);
        }
      return;
    }
  lode_ops_cpu_init ();
#ifdef _OPENMP
  if (!omp_in_parallel () && (gint64) m * n * k >= GEMM_SPLIT_MACS)
    parts = MIN (lode_ops_cpu_threads (), MAX (m, n) / GEMM_SPLIT_SIDE);
#endif
  if (parts <= 1)
    {
      sgemm (trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
      return;
    }
  /* C cut into parts of whole rows (or columns) */
#ifdef _OPENMP
#pragma omp parallel num_threads (parts)
#endif
  {
    int total = by_rows ? m : n, t = 0, nt = 1;
    int per, s0, s1;

#ifdef _OPENMP
    t = omp_get_thread_num ();
    nt = omp_get_num_threads ();
#endif
    per = ((total + nt - 1) / nt + GEMM_SPLIT_SIDE - 1) / GEMM_SPLIT_SIDE * GEMM_SPLIT_SIDE;
    s0 = MIN (total, t * per);
    s1 = MIN (total, s0 + per);
    if (s1 > s0 && by_rows)
      sgemm (trans_a, trans_b, s1 - s0, n, k, alpha,
             trans_a ? a + s0 : a + (gsize) s0 * lda, lda, b, ldb, beta, c + (gsize) s0 * ldc, ldc);
    else if (s1 > s0)
      sgemm (trans_a, trans_b, m, s1 - s0, k, alpha, a, lda,
             trans_b ? b + (gsize) s0 * ldb : b + s0, ldb, beta, c + s0, ldc);
  }
}

void
lode_ops_gemm (gboolean     trans_a,
               gboolean     trans_b,
               int          m,
               int          n,
               int          k,
               float        alpha,
               const float *a,
               const float *b,
               float        beta,
               float       *c)
{
  lode_ops_gemm_ld (trans_a, trans_b, m, n, k, alpha, a, trans_a ? m : k, b, trans_b ? k : n,
                    beta, c, n);
}

void
lode_ops_gemm_batched (gboolean     trans_a,
                       gboolean     trans_b,
                       int          batch,
                       int          m,
                       int          n,
                       int          k,
                       float        alpha,
                       const float *a,
                       gint64       stride_a,
                       const float *b,
                       gint64       stride_b,
                       float        beta,
                       float       *c,
                       gint64       stride_c)
{
  gint64 macs = (gint64) m * n * k;

  g_return_if_fail (batch >= 0);

  /* small products: one per thread at a time; large ones are split */
#ifdef _OPENMP
#pragma omp parallel for schedule (static) \
  if (macs < GEMM_SPLIT_MACS && batch > 1 && macs * batch >= GEMM_SPLIT_MACS && !omp_in_parallel ())
#endif
  for (int i = 0; i < batch; i++)
    lode_ops_gemm (trans_a, trans_b, m, n, k, alpha,
                   a + i * stride_a, b + i * stride_b, beta, c + i * stride_c);
}

void
lode_ops_matmul (float       *out,
                 const float *a,
                 const float *b,
                 const float *bias,
                 int          m,
                 int          n,
                 int          k,
                 gboolean     b_is_weight)
{
  lode_ops_gemm (FALSE, b_is_weight, m, n, k, 1.0f, a, b, 0.0f, out);
  if (bias != NULL)
    lode_ops_add_row_bias (out, out, bias, m, n);
}

void
lode_ops_linear (float       *out,
                 const float *x,
                 const float *weight,
                 const float *bias,
                 int          rows,
                 int          in_f,
                 int          out_f)
{
  lode_ops_matmul (out, x, weight, bias, rows, out_f, in_f, TRUE);
}

/* ---- convolutions ------------------------------------------------------- */

void
lode_conv_shape_init (LodeConvShape *s,
                      int            n,
                      int            c_in,
                      int            h,
                      int            w,
                      int            c_out,
                      int            k,
                      int            stride,
                      int            pad)
{
  g_return_if_fail (s != NULL);

  *s = (LodeConvShape) {
    .n = n, .c_in = c_in, .h = h, .w = w,
    .c_out = c_out, .kh = k, .kw = k,
    .stride_h = stride, .stride_w = stride,
    .pad_h = pad, .pad_w = pad,
    .dil_h = 1, .dil_w = 1,
    .groups = 1,
  };
}

static gboolean
conv_shape_valid (const LodeConvShape *s)
{
  return s->n > 0 && s->c_in > 0 && s->h > 0 && s->w > 0
         && s->c_out > 0 && s->kh > 0 && s->kw > 0
         && s->stride_h > 0 && s->stride_w > 0
         && s->pad_h >= 0 && s->pad_w >= 0
         && s->dil_h > 0 && s->dil_w > 0
         && s->out_pad_h >= 0 && s->out_pad_w >= 0
         && s->groups > 0
         && s->c_in % s->groups == 0 && s->c_out % s->groups == 0;
}

gboolean
lode_conv_shape_out_size (const LodeConvShape *s,
                          int                 *out_h,
                          int                 *out_w)
{
  int oh, ow;

  g_return_val_if_fail (s != NULL, FALSE);
  if (!conv_shape_valid (s))
    return FALSE;
  oh = s->h + 2 * s->pad_h - s->dil_h * (s->kh - 1) - 1;
  ow = s->w + 2 * s->pad_w - s->dil_w * (s->kw - 1) - 1;
  if (oh < 0 || ow < 0)
    return FALSE;
  if (out_h)
    *out_h = oh / s->stride_h + 1;
  if (out_w)
    *out_w = ow / s->stride_w + 1;
  return TRUE;
}

gboolean
lode_conv_shape_tout_size (const LodeConvShape *s,
                           int                 *out_h,
                           int                 *out_w)
{
  int oh, ow;

  g_return_val_if_fail (s != NULL, FALSE);
  if (!conv_shape_valid (s))
    return FALSE;
  oh = (s->h - 1) * s->stride_h - 2 * s->pad_h + s->dil_h * (s->kh - 1) + s->out_pad_h + 1;
  ow = (s->w - 1) * s->stride_w - 2 * s->pad_w + s->dil_w * (s->kw - 1) + s->out_pad_w + 1;
  if (oh < 1 || ow < 1)
    return FALSE;
  if (out_h)
    *out_h = oh;
  if (out_w)
    *out_w = ow;
  return TRUE;
}

/* Columns p0 .. p0+np of the im2col matrix of one image and group:
 * col[(ci*kh + ky)*kw + kx, j] = x[ci, oy*sh - ph + ky*dh, ox*sw - pw + kx*dw]
 * for output pixel p0 + j = oy*ow + ox, zero outside the image. */
static void
im2col_chunk (float               *col,
              const float         *x,
              const LodeConvShape *s,
              int                  cig,
              int                  ow,
              int                  p0,
              int                  np)
{
  int rows = cig * s->kh * s->kw;

  PARALLEL_FOR ((gint64) rows * np)
  for (int r = 0; r < rows; r++)
    {
      int kx = r % s->kw;
      int ky = (r / s->kw) % s->kh;
      int ci = r / (s->kw * s->kh);
      const float *plane = x + (gsize) ci * s->h * s->w;
      float *dst = col + (gsize) r * np;
      int oy = p0 / ow, ox = p0 % ow;

      /* walk the output pixels row by row, without a division per pixel */
      for (int j = 0; j < np; oy++, ox = 0)
        {
          int iy = oy * s->stride_h - s->pad_h + ky * s->dil_h;
          int run = MIN (ow - ox, np - j);

          if (iy < 0 || iy >= s->h)
            memset (dst + j, 0, sizeof (float) * run);
          else
            {
              const float *src = plane + (gsize) iy * s->w;
              int sw = s->stride_w, x0 = kx * s->dil_w - s->pad_w;
              /* e runs over [lo, hi) where ix = (ox + e) sw + x0 is inside
               * the row: zeros either side, a copy (or a strided gather)
               * in between, without a test per pixel */
              int lo = 0, hi = run;

              while (lo < run && (ox + lo) * sw + x0 < 0)
                lo++;
              while (hi > lo && (ox + hi - 1) * sw + x0 >= s->w)
                hi--;
              if (lo > 0)
                memset (dst + j, 0, sizeof (float) * lo);
              if (hi > lo && sw == 1)
                memcpy (dst + j + lo, src + ox + lo + x0, sizeof (float) * (hi - lo));
              else
                for (int e = lo; e < hi; e++)
                  dst[j + e] = src[(ox + e) * sw + x0];
              if (hi < run)
                memset (dst + j + hi, 0, sizeof (float) * (run - hi));
            }
          j += run;
        }
    }
}

void
lode_ops_im2col (float               *col,
                 const float         *x,
                 const LodeConvShape *s,
                 int                  p0,
                 int                  np)
{
  int ow;

  g_return_if_fail (col != NULL && x != NULL);
  g_return_if_fail (lode_conv_shape_out_size (s, NULL, &ow));

  im2col_chunk (col, x, s, s->c_in / s->groups, ow, p0, np);
}

void
lode_ops_conv2d (float               *out,
                 const float         *in,
                 const float         *weight,
                 const float         *bias,
                 const LodeConvShape *s)
{
  int oh, ow, cig, cog, kdim;
  gsize npix;
  gboolean direct;
  float *col = NULL;
  int chunk;

  g_return_if_fail (out != NULL && in != NULL && weight != NULL);
  g_return_if_fail (lode_conv_shape_out_size (s, &oh, &ow));

  cig = s->c_in / s->groups;
  cog = s->c_out / s->groups;
  kdim = cig * s->kh * s->kw;
  npix = (gsize) oh * ow;
  /* A 1x1 convolution with stride 1 and no padding is a plain product. */
  direct = s->kh == 1 && s->kw == 1 && s->stride_h == 1 && s->stride_w == 1
           && s->pad_h == 0 && s->pad_w == 0;
  chunk = (int) MIN (npix, MAX (1, SCRATCH_FLOATS / kdim));
  if (!direct)
    col = g_new (float, (gsize) kdim * chunk);

  for (int i = 0; i < s->n; i++)
    for (int g = 0; g < s->groups; g++)
      {
        const float *x = in + ((gsize) i * s->c_in + (gsize) g * cig) * s->h * s->w;
        const float *wg = weight + (gsize) g * cog * kdim;
        float *y = out + ((gsize) i * s->c_out + (gsize) g * cog) * npix;

        if (direct)
          {
            lode_ops_gemm (FALSE, FALSE, cog, (int) npix, kdim, 1.0f, wg, x, 0.0f, y);
            continue;
          }
        for (gsize p0 = 0; p0 < npix; p0 += chunk)
          {
            int np = (int) MIN ((gsize) chunk, npix - p0);

            im2col_chunk (col, x, s, cig, ow, (int) p0, np);
            /* y[:, p0:p0+np] = wg[cog, kdim] @ col[kdim, np] (ldc = npix) */
            lode_ops_gemm_ld (FALSE, FALSE, cog, np, kdim, 1.0f, wg, kdim, col, np,
                              0.0f, y + p0, (int) npix);
          }
      }
  g_free (col);
  if (bias != NULL)
    lode_ops_add_channel_bias (out, out, bias, s->n, s->c_out, (int) npix);
}

void
lode_ops_conv_transpose2d (float               *out,
                           const float         *in,
                           const float         *weight,
                           const float         *bias,
                           const LodeConvShape *s)
{
  int oh, ow, cig, cog, rdim, chunk;
  gsize ipix, opix;
  float *col;

  g_return_if_fail (out != NULL && in != NULL && weight != NULL);
  g_return_if_fail (lode_conv_shape_tout_size (s, &oh, &ow));

  cig = s->c_in / s->groups;
  cog = s->c_out / s->groups;
  rdim = cog * s->kh * s->kw;
  ipix = (gsize) s->h * s->w;
  opix = (gsize) oh * ow;
  chunk = (int) MIN (ipix, MAX (1, SCRATCH_FLOATS / rdim));
  col = g_new (float, (gsize) rdim * chunk);
  memset (out, 0, sizeof (float) * opix * s->n * s->c_out);

  for (int i = 0; i < s->n; i++)
    for (int g = 0; g < s->groups; g++)
      {
        const float *x = in + ((gsize) i * s->c_in + (gsize) g * cig) * ipix;
        const float *wg = weight + (gsize) g * cig * rdim;
        float *y = out + ((gsize) i * s->c_out + (gsize) g * cog) * opix;

        for (gsize p0 = 0; p0 < ipix; p0 += chunk)
          {
            int np = (int) MIN ((gsize) chunk, ipix - p0);

            /* col[rdim, np] = wg[cig, rdim]^T @ x[cig, p0:p0+np] */
            lode_ops_gemm_ld (TRUE, FALSE, rdim, np, cig, 1.0f, wg, rdim, x + p0, (int) ipix,
                              0.0f, col, np);
            /* col2im: each output channel is written by one thread only. */
            PARALLEL_FOR ((gint64) rdim * np)
            for (int co = 0; co < cog; co++)
              {
                float *plane = y + (gsize) co * opix;

                for (int ky = 0; ky < s->kh; ky++)
                  for (int kx = 0; kx < s->kw; kx++)
                    {
                      const float *src = col + ((gsize) (co * s->kh + ky) * s->kw + kx) * np;

                      for (int j = 0; j < np; j++)
                        {
                          int p = (int) p0 + j;
                          int oy = (p / s->w) * s->stride_h - s->pad_h + ky * s->dil_h;
                          int ox = (p % s->w) * s->stride_w - s->pad_w + kx * s->dil_w;

                          if (oy >= 0 && oy < oh && ox >= 0 && ox < ow)
                            plane[(gsize) oy * ow + ox] += src[j];
                        }
                    }
              }
          }
      }
  g_free (col);
  if (bias != NULL)
    lode_ops_add_channel_bias (out, out, bias, s->n, s->c_out, (int) opix);
}

/* ---- normalisation ------------------------------------------------------ */

/* One thread's rows of lode_ops_layer_norm: two passes (mean, then the
 * spread around it) in single precision over lanes, which for the widths
 * here (up to a few thousand) stays within a few ulp of the double sums. */
VECTOR_CLONES static void
layer_norm_rows (float *out, const float *in, const float *weight, const float *bias,
                 int rows, int c, float eps)
{
  for (int r = 0; r < rows; r++)
    {
      const float *x = in + (gsize) r * c;
      float *y = out + (gsize) r * c;
      float sum = 0.0f, sq = 0.0f, mean, rstd;

      SIMD_REDUCE (sum)
      for (int j = 0; j < c; j++)
        sum += x[j];
      mean = sum / (float) c;
      SIMD_REDUCE (sq)
      for (int j = 0; j < c; j++)
        sq += (x[j] - mean) * (x[j] - mean);
      rstd = 1.0f / sqrtf (sq / (float) c + eps);
      if (weight != NULL && bias != NULL)
        {
          SIMD_FOR
          for (int j = 0; j < c; j++)
            y[j] = (x[j] - mean) * rstd * weight[j] + bias[j];
        }
      else
        {
          SIMD_FOR
          for (int j = 0; j < c; j++)
            y[j] = (x[j] - mean) * rstd * (weight ? weight[j] : 1.0f) + (bias ? bias[j] : 0.0f);
        }
    }
}

void
lode_ops_layer_norm (float       *out,
                     const float *in,
                     const float *weight,
                     const float *bias,
                     int          rows,
                     int          c,
                     float        eps)
{
  int block;

  g_return_if_fail (rows >= 0 && c > 0);

  block = MAX (1, SPAN_CHUNK / c);
  PARALLEL_FOR ((gint64) rows * c)
  for (int r = 0; r < rows; r += block)
    layer_norm_rows (out + (gsize) r * c, in + (gsize) r * c, weight, bias, MIN (block, rows - r), c, eps);
}

/* Pixels per block in lode_ops_layer_norm2d: the channel loop walks planes
 * hw floats apart, so each thread takes a run of pixels and sweeps the
 * channels over that run, keeping the accesses contiguous. */
#define LN2D_BLOCK 256

/* One block of up to LN2D_BLOCK pixels of lode_ops_layer_norm2d; x and y
 * point at the block's first pixel in channel 0. */
VECTOR_CLONES static void
layer_norm2d_block (float *y, const float *x, const float *weight, const float *bias,
                    int c, int hw, int np, float eps)
{
  float mean[LN2D_BLOCK], rstd[LN2D_BLOCK];

  for (int p = 0; p < np; p++)
    mean[p] = rstd[p] = 0.0f;
  for (int j = 0; j < c; j++)
    {
      const float *xj = x + (gsize) j * hw;
      SIMD_FOR
      for (int p = 0; p < np; p++)
        mean[p] += xj[p];
    }
  for (int p = 0; p < np; p++)
    mean[p] /= (float) c;
  for (int j = 0; j < c; j++)
    {
      const float *xj = x + (gsize) j * hw;
      SIMD_FOR
      for (int p = 0; p < np; p++)
        rstd[p] += (xj[p] - mean[p]) * (xj[p] - mean[p]);
    }
  for (int p = 0; p < np; p++)
    rstd[p] = 1.0f / sqrtf (rstd[p] / (float) c + eps);
  for (int j = 0; j < c; j++)
    {
      const float *xj = x + (gsize) j * hw;
      float *yj = y + (gsize) j * hw;
      float wj = weight ? weight[j] : 1.0f;
      float bj = bias ? bias[j] : 0.0f;

      SIMD_FOR
      for (int p = 0; p < np; p++)
        yj[p] = (xj[p] - mean[p]) * rstd[p] * wj + bj;
    }
}

void
lode_ops_layer_norm2d (float       *out,
                       const float *in,
                       const float *weight,
                       const float *bias,
                       int          n,
                       int          c,
                       int          hw,
                       float        eps)
{
  int nblocks;

  g_return_if_fail (n >= 0 && c > 0 && hw >= 0);

  nblocks = (hw + LN2D_BLOCK - 1) / LN2D_BLOCK;
  PARALLEL_FOR ((gint64) n * c * hw)
  for (gint64 t = 0; t < (gint64) n * nblocks; t++)
    {
      int i = (int) (t / nblocks);
      int p0 = (int) (t % nblocks) * LN2D_BLOCK;

      layer_norm2d_block (out + (gsize) i * c * hw + p0, in + (gsize) i * c * hw + p0, weight, bias,
                          c, hw, MIN (LN2D_BLOCK, hw - p0), eps);
    }
}

void
lode_ops_batch_norm (float       *out,
                     const float *in,
                     const float *mean,
                     const float *var,
                     const float *weight,
                     const float *bias,
                     int          n,
                     int          c,
                     int          hw,
                     float        eps)
{
  g_return_if_fail (n >= 0 && c >= 0 && hw >= 0);
  g_return_if_fail (mean != NULL && var != NULL);

  PARALLEL_FOR ((gint64) n * c * hw)
  for (gint64 t = 0; t < (gint64) n * c; t++)
    {
      int j = (int) (t % c);
      float a = 1.0f / sqrtf (var[j] + eps);
      float b;
      const float *x = in + t * hw;
      float *y = out + t * hw;

      if (weight)
        a *= weight[j];
      b = (bias ? bias[j] : 0.0f) - mean[j] * a;
      for (int p = 0; p < hw; p++)
        y[p] = x[p] * a + b;
    }
}

/* ---- element-wise ------------------------------------------------------- */

VECTOR_CLONES static void
gelu_span (float *out, const float *in, gsize n)
{
  SIMD_FOR
  for (gsize i = 0; i < n; i++)
    out[i] = lode_gelu_approx (in[i]);
}

void
lode_ops_gelu (float *out, const float *in, gsize count)
{
  PARALLEL_SPANS (gelu_span, out, in, count, 8);
}

void
lode_ops_gelu_tanh (float *out, const float *in, gsize count)
{
  const float k = 0.7978845608028654f; /* sqrt(2/pi) */

  PARALLEL_FOR ((gint64) count * 8)
  for (gint64 i = 0; i < (gint64) count; i++)
    {
      float x = in[i];
      out[i] = 0.5f * x * (1.0f + tanhf (k * (x + 0.044715f * x * x * x)));
    }
}

VECTOR_CLONES static void
relu_span (float *out, const float *in, gsize n)
{
  SIMD_FOR
  for (gsize i = 0; i < n; i++)
    out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

void
lode_ops_relu (float *out, const float *in, gsize count)
{
  PARALLEL_SPANS (relu_span, out, in, count, 1);
}

void
lode_ops_sigmoid (float *out, const float *in, gsize count)
{
  PARALLEL_FOR ((gint64) count * 4)
  for (gint64 i = 0; i < (gint64) count; i++)
    {
      float x = in[i];
      if (x >= 0.0f)
        out[i] = 1.0f / (1.0f + expf (-x));
      else
        {
          float e = expf (x);
          out[i] = e / (1.0f + e);
        }
    }
}

void
lode_ops_add (float *out, const float *a, const float *b, gsize count)
{
  PARALLEL_FOR (count)
  for (gint64 i = 0; i < (gint64) count; i++)
    out[i] = a[i] + b[i];
}

void
lode_ops_mul (float *out, const float *a, const float *b, gsize count)
{
  PARALLEL_FOR (count)
  for (gint64 i = 0; i < (gint64) count; i++)
    out[i] = a[i] * b[i];
}

void
lode_ops_scale (float *out, const float *in, float s, gsize count)
{
  PARALLEL_FOR (count)
  for (gint64 i = 0; i < (gint64) count; i++)
    out[i] = in[i] * s;
}

void
lode_ops_add_channel_bias (float       *out,
                           const float *in,
                           const float *bias,
                           int          n,
                           int          c,
                           int          hw)
{
  g_return_if_fail (n >= 0 && c > 0 && hw >= 0);

  PARALLEL_FOR ((gint64) n * c * hw)
  for (gint64 t = 0; t < (gint64) n * c; t++)
    {
      float b = bias[t % c];
      for (int p = 0; p < hw; p++)
        out[t * hw + p] = in[t * hw + p] + b;
    }
}

void
lode_ops_add_row_bias (float       *out,
                       const float *in,
                       const float *bias,
                       int          rows,
                       int          c)
{
  g_return_if_fail (rows >= 0 && c >= 0);

  PARALLEL_FOR ((gint64) rows * c)
  for (int r = 0; r < rows; r++)
    for (int j = 0; j < c; j++)
      out[(gsize) r * c + j] = in[(gsize) r * c + j] + bias[j];
}

/* Two output rows of lode_ops_unfold_2x2: 2i and 2i + 1 of channel co. */
VECTOR_CLONES static void
unfold_2x2_rows (float *out, const float *cols, const float *add, float bias, gboolean gelu,
                 int side, gsize hw, int i)
{
  int ow = 2 * side;

  for (int a = 0; a < 2; a++)
    {
      const float *c0 = cols + (gsize) (2 * a) * hw + (gsize) i * side;
      const float *c1 = c0 + hw;
      float *dst = out + (gsize) (2 * i + a) * ow;
      const float *extra = add != NULL ? add + (gsize) (2 * i + a) * ow : NULL;

      SIMD_FOR
      for (int j = 0; j < side; j++)
        {
          dst[2 * j] = c0[j] + bias;
          dst[2 * j + 1] = c1[j] + bias;
        }
      if (extra != NULL)
        {
          SIMD_FOR
          for (int j = 0; j < ow; j++)
            dst[j] += extra[j];
        }
      if (gelu)
        {
          SIMD_FOR
          for (int j = 0; j < ow; j++)
            dst[j] = lode_gelu_approx (dst[j]);
        }
    }
}

void
lode_ops_unfold_2x2 (float       *out,
                     const float *cols,
                     const float *bias,
                     const float *add,
                     int          c,
                     int          side,
                     gboolean     gelu)
{
  gsize hw = (gsize) side * side;

  g_return_if_fail (c >= 0 && side >= 0);

  PARALLEL_FOR ((gint64) c * hw * 4)
  for (gint64 t = 0; t < (gint64) c * side; t++)
    {
      int co = (int) (t / side), i = (int) (t % side);
      gsize plane = (gsize) co * 4 * hw;

      unfold_2x2_rows (out + plane, cols + plane, add != NULL ? add + plane : NULL,
                       bias != NULL ? bias[co] : 0.0f, gelu, side, hw, i);
    }
}

/* ---- softmax and attention ---------------------------------------------- */

/* In-place softmax of rows rows of n scores, eight lanes at a time for the
 * maximum and the sum. */
VECTOR_CLONES void
lode_ops_softmax_rows (float *s, int rows, int n)
{
  for (int i = 0; i < rows; i++)
    {
      float *row = s + (gsize) i * n;
      float mx[8], sum[8], m, total, inv;
      int j;

      for (int l = 0; l < 8; l++)
        {
          mx[l] = -INFINITY;
          sum[l] = 0.0f;
        }
      for (j = 0; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++)
          mx[l] = row[j + l] > mx[l] ? row[j + l] : mx[l];
      for (; j < n; j++)
        mx[0] = MAX (mx[0], row[j]);
      m = mx[0];
      for (int l = 1; l < 8; l++)
        m = MAX (m, mx[l]);
      for (j = 0; j < n; j++)
        row[j] = lode_exp_nonpositive (row[j] - m);
      for (j = 0; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++)
          sum[l] += row[j + l];
      for (; j < n; j++)
        sum[0] += row[j];
      total = 0.0f;
      for (int l = 0; l < 8; l++)
        total += sum[l];
      inv = 1.0f / total;
      for (j = 0; j < n; j++)
        row[j] *= inv;
    }
}

void
lode_ops_softmax (float       *out,
                  const float *in,
                  int          rows,
                  int          c)
{
  int block;

  g_return_if_fail (rows >= 0 && c > 0);

  if (out != in)
    memcpy (out, in, sizeof (float) * (gsize) rows * c);
  block = MAX (1, SPAN_CHUNK / c);
  PARALLEL_FOR ((gint64) rows * c * 4)
  for (int r = 0; r < rows; r += block)
    lode_ops_softmax_rows (out + (gsize) r * c, MIN (block, rows - r), c);
}

void
lode_ops_attention (float       *out,
                    const float *q,
                    const float *k,
                    const float *v,
                    int          b,
                    int          h,
                    int          lq,
                    int          lk,
                    int          d)
{
  float scale;
  int block;
  float *scores;

  g_return_if_fail (b >= 0 && h >= 0 && lq >= 0 && lk > 0 && d > 0);

  scale = 1.0f / sqrtf ((float) d);
  block = MAX (1, MIN (lq, SCRATCH_FLOATS / lk));
  scores = g_new (float, (gsize) block * lk);
  for (gint64 bh = 0; bh < (gint64) b * h; bh++)
    {
      const float *qh = q + bh * lq * d;
      const float *kh = k + bh * lk * d;
      const float *vh = v + bh * lk * d;
      float *oh = out + bh * lq * d;

      for (int r0 = 0; r0 < lq; r0 += block)
        {
          int nr = MIN (block, lq - r0);

          /* scores[nr, lk] = q[r0:r0+nr] @ k^T / sqrt(d) */
          lode_ops_gemm (FALSE, TRUE, nr, lk, d, scale,
                         qh + (gsize) r0 * d, kh, 0.0f, scores);
          lode_ops_softmax (scores, scores, nr, lk);
          /* out[r0:r0+nr] = scores @ v */
          lode_ops_gemm (FALSE, FALSE, nr, d, lk, 1.0f,
                         scores, vh, 0.0f, oh + (gsize) r0 * d);
        }
    }
  g_free (scores);
}

/* ---- pooling and resizing ----------------------------------------------- */

int
lode_ops_pool_out_size (int size, int kernel, int stride, int pad)
{
  g_return_val_if_fail (kernel > 0 && stride > 0 && pad >= 0, 0);

  if (size + 2 * pad < kernel)
    return 0;
  return (size + 2 * pad - kernel) / stride + 1;
}

void
lode_ops_max_pool2d (float       *out,
                     const float *in,
                     int          n,
                     int          c,
                     int          h,
                     int          w,
                     int          kernel,
                     int          stride,
                     int          pad)
{
  int oh = lode_ops_pool_out_size (h, kernel, stride, pad);
  int ow = lode_ops_pool_out_size (w, kernel, stride, pad);

  g_return_if_fail (n >= 0 && c >= 0);

  PARALLEL_FOR ((gint64) n * c * oh * ow * kernel * kernel)
  for (gint64 t = 0; t < (gint64) n * c; t++)
    {
      const float *x = in + t * h * w;
      float *y = out + t * oh * ow;

      for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
          {
            float m = -INFINITY;

            for (int ky = 0; ky < kernel; ky++)
              {
                int iy = oy * stride - pad + ky;
                if (iy < 0 || iy >= h)
                  continue;
                for (int kx = 0; kx < kernel; kx++)
                  {
                    int ix = ox * stride - pad + kx;
                    if (ix >= 0 && ix < w)
                      m = MAX (m, x[(gsize) iy * w + ix]);
                  }
              }
            y[(gsize) oy * ow + ox] = m;
          }
    }
}

/* Where output index dst samples the input, as torch's
 * area_pixel_compute_source_index: *i0 and *i1 the two neighbours, *frac the
 * weight of *i1. */
static void
bilinear_source (int dst, int in_size, int out_size, gboolean align_corners,
                 int *i0, int *i1, float *frac)
{
  float src;

  if (align_corners)
    {
      float scale = out_size > 1 ? (float) (in_size - 1) / (out_size - 1) : 0.0f;
      src = scale * dst;
    }
  else
    {
      float scale = (float) in_size / out_size;
      src = MAX (scale * (dst + 0.5f) - 0.5f, 0.0f);
    }
  *i0 = MIN ((int) src, in_size - 1);
  *i1 = *i0 + (*i0 < in_size - 1 ? 1 : 0);
  *frac = CLAMP (src - *i0, 0.0f, 1.0f);
}

static int
nearest_source (int dst, int in_size, int out_size)
{
  float scale = (float) in_size / out_size;

  return MIN ((int) floorf (dst * scale), in_size - 1);
}

void
lode_ops_resize (float          *out,
                 const float    *in,
                 int             nc,
                 int             h,
                 int             w,
                 int             out_h,
                 int             out_w,
                 LodeResizeMode  mode)
{
  gboolean align = mode == LODE_RESIZE_BILINEAR_ALIGN_CORNERS;

  g_return_if_fail (nc >= 0 && h > 0 && w > 0 && out_h > 0 && out_w > 0);

  PARALLEL_FOR ((gint64) nc * out_h * out_w * 4)
  for (gint64 t = 0; t < (gint64) nc * out_h; t++)
    {
      int oy = (int) (t % out_h);
      const float *x = in + (t / out_h) * h * w;
      float *y = out + t * out_w;

      if (mode == LODE_RESIZE_NEAREST)
        {
          const float *row = x + (gsize) nearest_source (oy, h, out_h) * w;

          for (int ox = 0; ox < out_w; ox++)
            y[ox] = row[nearest_source (ox, w, out_w)];
        }
      else
        {
          int y0, y1;
          float fy;
          const float *r0, *r1;

          bilinear_source (oy, h, out_h, align, &y0, &y1, &fy);
          r0 = x + (gsize) y0 * w;
          r1 = x + (gsize) y1 * w;
          for (int ox = 0; ox < out_w; ox++)
            {
              int x0, x1;
              float fx;

              bilinear_source (ox, w, out_w, align, &x0, &x1, &fx);
              y[ox] = (1.0f - fy) * ((1.0f - fx) * r0[x0] + fx * r0[x1])
                      + fy * ((1.0f - fx) * r1[x0] + fx * r1[x1]);
            }
        }
    }
}

/* ---- layout ------------------------------------------------------------- */

int
lode_ops_window_count (int h, int w, int win)
{
  g_return_val_if_fail (h > 0 && w > 0 && win > 0, 0);

  return ((h + win - 1) / win) * ((w + win - 1) / win);
}

void
lode_ops_window_partition (float       *out,
                           const float *in,
                           int          b,
                           int          h,
                           int          w,
                           int          c,
                           int          win)
{
  int nh, nw;

  g_return_if_fail (b >= 0 && h > 0 && w > 0 && c > 0 && win > 0);

  nh = (h + win - 1) / win;
  nw = (w + win - 1) / win;
  /* one task per row of a window: (image, window row, window col, row in window) */
  PARALLEL_FOR ((gint64) b * nh * nw * win * win * c)
  for (gint64 t = 0; t < (gint64) b * nh * nw * win; t++)
    {
      int iy = (int) (t % win);
      int wx = (int) ((t / win) % nw);
      int wy = (int) ((t / win / nw) % nh);
      int bi = (int) (t / win / nw / nh);
      int y = wy * win + iy;
      float *dst = out + t * win * c;

      for (int ix = 0; ix < win; ix++)
        {
          int x = wx * win + ix;

          if (y < h && x < w)
            memcpy (dst + (gsize) ix * c, in + (((gsize) bi * h + y) * w + x) * c,
                    sizeof (float) * c);
          else
            memset (dst + (gsize) ix * c, 0, sizeof (float) * c);
        }
    }
}

void
lode_ops_window_unpartition (float       *out,
                             const float *windows,
                             int          b,
                             int          h,
                             int          w,
                             int          c,
                             int          win)
{
  int nw;

  g_return_if_fail (b >= 0 && h > 0 && w > 0 && c > 0 && win > 0);

  nw = (w + win - 1) / win;
  PARALLEL_FOR ((gint64) b * h * w * c)
  for (gint64 t = 0; t < (gint64) b * h; t++)
    {
      int y = (int) (t % h);
      int bi = (int) (t / h);
      int wy = y / win, iy = y % win;

      for (int x = 0; x < w; x++)
        {
          int wx = x / win, ix = x % win;
          gsize widx = ((gsize) bi * ((h + win - 1) / win) + wy) * nw + wx;

          memcpy (out + (t * w + x) * c,
                  windows + ((widx * win + iy) * win + ix) * c,
                  sizeof (float) * c);
        }
    }
}

void
lode_ops_permute4 (float       *out,
                   const float *in,
                   const int    dims[4],
                   const int    perm[4])
{
  gint64 in_stride[4], st[4];
  int od[4];

  g_return_if_fail (dims != NULL && perm != NULL);

  in_stride[3] = 1;
  for (int i = 2; i >= 0; i--)
    in_stride[i] = in_stride[i + 1] * dims[i + 1];
  for (int i = 0; i < 4; i++)
    {
      g_return_if_fail (perm[i] >= 0 && perm[i] < 4 && dims[i] >= 0);
      od[i] = dims[perm[i]];
      st[i] = in_stride[perm[i]];
    }

  PARALLEL_FOR ((gint64) od[0] * od[1] * od[2] * od[3])
  for (gint64 t = 0; t < (gint64) od[0] * od[1]; t++)
    {
      const float *src = in + (t / od[1]) * st[0] + (t % od[1]) * st[1];
      float *dst = out + t * od[2] * od[3];

      for (int i2 = 0; i2 < od[2]; i2++)
        for (int i3 = 0; i3 < od[3]; i3++)
          *dst++ = src[i2 * st[2] + i3 * st[3]];
    }
}

void
lode_ops_split_heads (float *out, const float *in, int l, int h, int d)
{
  const int dims[4] = { 1, l, h, d };
  const int perm[4] = { 0, 2, 1, 3 };

  lode_ops_permute4 (out, in, dims, perm);
}

void
lode_ops_merge_heads (float *out, const float *in, int l, int h, int d)
{
  const int dims[4] = { 1, h, l, d };
  const int perm[4] = { 0, 2, 1, 3 };

  lode_ops_permute4 (out, in, dims, perm);
}

void
lode_ops_nchw_to_nhwc (float *out, const float *in, int n, int c, int h, int w)
{
  const int dims[4] = { n, c, h, w };
  const int perm[4] = { 0, 2, 3, 1 };

  lode_ops_permute4 (out, in, dims, perm);
}

void
lode_ops_nhwc_to_nchw (float *out, const float *in, int n, int c, int h, int w)
{
  const int dims[4] = { n, h, w, c };
  const int perm[4] = { 0, 3, 1, 2 };

  lode_ops_permute4 (out, in, dims, perm);
}

/* ---- CUDA status to GError ---------------------------------------------- */

#ifdef LODE_WITH_CUDA
gboolean
lode_ops_cuda_check (int      status,
                     GError **error)
{
  const char *detail;

  if (status == LODE_CUDA_OK)
    return TRUE;
  detail = lode_ops_cuda_last_message ();
  switch (status)
    {
    case LODE_CUDA_ERROR_NO_MEMORY:
      g_set_error (error, LODE_OPS_ERROR, LODE_OPS_ERROR_GPU_MEMORY,
                   _("The GPU ran out of memory (%s); use a smaller batch or "
                     "image size, close other GPU programs, or use --device cpu"),
                   detail);
      break;
    case LODE_CUDA_ERROR_UNSUPPORTED:
      g_set_error (error, LODE_OPS_ERROR, LODE_OPS_ERROR_UNSUPPORTED,
                   _("The GPU kernels do not support this operation: %s"), detail);
      break;
    default:
      g_set_error (error, LODE_OPS_ERROR, LODE_OPS_ERROR_GPU,
                   _("A GPU computation failed: %s"), detail);
      break;
    }
  return FALSE;
}
#endif

/* ---- SAM2 decoder kernels ------------------------------------------------ */

void
lode_ops_add_layer_norm (float       *out,
                         const float *a,
                         const float *b,
                         const float *weight,
                         const float *bias,
                         int          rows,
                         int          c,
                         float        eps,
                         float       *out_pe,
                         const float *pe)
{
  gsize n = (gsize) rows * c;

  g_return_if_fail (rows >= 0 && c > 0 && a != NULL && out != NULL);
  g_return_if_fail (out_pe == NULL || pe != NULL);

  if (b != NULL)
    lode_ops_add (out, a, b, n);
  lode_ops_layer_norm (out, b != NULL ? out : a, weight, bias, rows, c, eps);
  if (out_pe != NULL)
    lode_ops_add (out_pe, out, pe, n);
}

/* One query row and head of lode_ops_attention_rows; p holds lk scores. */
static void
attention_row (float *o, const float *qi, const float *k, int k_stride, const float *v,
               int v_stride, int lk, int d, float scale, float *p)
{
  float m = -INFINITY, sum = 0.0f;

  for (int j = 0; j < lk; j++)
    {
      const float *kj = k + (gsize) j * k_stride;
      float s = 0.0f;

      for (int x = 0; x < d; x++)
        s += qi[x] * kj[x];
      p[j] = s * scale;
      m = MAX (m, p[j]);
    }
  for (int x = 0; x < d; x++)
    o[x] = 0.0f;
  for (int j = 0; j < lk; j++)
    {
      const float *vj = v + (gsize) j * v_stride;
      float e = expf (p[j] - m);

      sum += e;
      for (int x = 0; x < d; x++)
        o[x] += e * vj[x];
    }
  for (int x = 0; x < d; x++)
    o[x] /= sum;
}

void
lode_ops_attention_rows (float       *out,
                         const float *q,
                         int          q_stride,
                         const float *k,
                         int          k_stride,
                         const float *v,
                         int          v_stride,
                         int          lq,
                         int          lk,
                         int          h,
                         int          d)
{
  float scale;

  g_return_if_fail (lq >= 0 && lk > 0 && h > 0 && d > 0);
  g_return_if_fail (q_stride >= h * d && k_stride >= h * d && v_stride >= h * d);

  scale = 1.0f / sqrtf ((float) d);
  PARALLEL_FOR ((gint64) lq * lk * h * d)
  for (gint64 t = 0; t < (gint64) lq * h; t++)
    {
      int i = (int) (t / h), hd = (int) (t % h) * d;
      float *p = g_new (float, lk);

      attention_row (out + (gsize) i * h * d + hd, q + (gsize) i * q_stride + hd, k + hd, k_stride,
                     v + hd, v_stride, lk, d, scale, p);
      g_free (p);
    }
}

void
lode_ops_point_encoding (float       *out,
                         const float *points,
                         const float *gauss,
                         const float *label_embed,
                         int          n,
                         int          c,
                         float        size)
{
  int half = c / 2;
  const float two_pi = (float) (2.0 * G_PI);

  g_return_if_fail (n >= 0 && c > 0 && c % 2 == 0 && size > 0.0f);

  for (int i = 0; i < n; i++)
    {
      float *row = out + (gsize) i * c;
      int label = (int) points[3 * i + 2];
      float cx = 2.0f * ((points[3 * i] + 0.5f) / size) - 1.0f;
      float cy = 2.0f * ((points[3 * i + 1] + 0.5f) / size) - 1.0f;

      if (label_embed != NULL && label < 0)
        {
          memcpy (row, label_embed, sizeof (float) * c);
          continue;
        }
      for (int j = 0; j < half; j++)
        {
          float a = two_pi * (cx * gauss[j] + cy * gauss[half + j]);

          row[j] = sinf (a);
          row[half + j] = cosf (a);
        }
      if (label_embed != NULL)
        lode_ops_add (row, row, label_embed + (gsize) (label + 1) * c, c);
    }
}

void
lode_ops_bias_relu (float       *out,
                    const float *in,
                    const float *bias,
                    int          rows,
                    int          c)
{
  g_return_if_fail (rows >= 0 && c > 0);

  PARALLEL_FOR ((gint64) rows * c)
  for (int r = 0; r < rows; r++)
    for (int j = 0; j < c; j++)
      {
        float x = in[(gsize) r * c + j] + bias[j];

        out[(gsize) r * c + j] = x > 0.0f ? x : 0.0f;
      }
}
