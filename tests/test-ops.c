/* The CPU kernels of lode-ops against naive loops written here (double
 * accumulators, the plainest index arithmetic) on small random shapes with
 * odd sizes, and against values worked out by hand or known from torch.
 *
 * Tolerance: the kernels accumulate in float (OpenBLAS) and the references
 * in double; with inputs in [-1, 1] and at most a few thousand terms per
 * sum, the float rounding stays far below 1e-5 of the largest output, so
 * max|got - want| / (max|want| + 1e-6) < 1e-5 is asked everywhere. A wrong
 * index, a missed term or a wrong scale moves outputs by O(1). */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lode-ops.h"
#include "lode-ops-math.h"

#define TOL 1e-5

static float *
random_array (GRand *rand, gsize n)
{
  float *a = g_new (float, n ? n : 1);

  for (gsize i = 0; i < n; i++)
    a[i] = (float) g_rand_double_range (rand, -1.0, 1.0);
  return a;
}

/* max |got - want| / (max |want| + 1e-6) */
static double
rel_error (const float *got, const double *want, gsize n)
{
  double diff = 0.0, mag = 0.0;

  for (gsize i = 0; i < n; i++)
    {
      if (isnan (got[i]))
        return INFINITY;
      diff = MAX (diff, fabs (got[i] - want[i]));
      mag = MAX (mag, fabs (want[i]));
    }
  return diff / (mag + 1e-6);
}

static void
assert_close (const float *got, const double *want, gsize n, const char *what)
{
  double err = rel_error (got, want, n);

  if (!(err < TOL))
    g_test_message ("%s: normalised error %g (tolerance %g)", what, err, TOL);
  g_assert_cmpfloat (err, <, TOL);
}

static void
assert_values (const float *got, const float *want, gsize n, double tol)
{
  for (gsize i = 0; i < n; i++)
    if (tol == 0.0)
      g_assert_cmpfloat (got[i], ==, want[i]);
    else
      g_assert_cmpfloat_with_epsilon (got[i], want[i], tol);
}

/* ---- matrix products ---- */

static void
naive_gemm (gboolean ta, gboolean tb, int m, int n, int k, double alpha,
            const float *a, const float *b, double beta, const float *c0, double *c)
{
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++)
      {
        double s = 0.0;
        for (int p = 0; p < k; p++)
          s += (double) (ta ? a[p * m + i] : a[i * k + p])
               * (tb ? b[j * k + p] : b[p * n + j]);
        c[i * n + j] = alpha * s + (beta != 0.0 ? beta * c0[i * n + j] : 0.0);
      }
}

static void
test_gemm (void)
{
  static const int shapes[][3] = { { 1, 1, 1 }, { 7, 5, 3 }, { 33, 17, 29 }, { 4, 64, 130 } };
  g_autoptr(GRand) rand = g_rand_new_with_seed (1);

  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
    for (int t = 0; t < 4; t++)
      {
        int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        gboolean ta = t & 1, tb = (t >> 1) & 1;
        g_autofree float *a = random_array (rand, (gsize) m * k);
        g_autofree float *b = random_array (rand, (gsize) k * n);
        g_autofree float *c = random_array (rand, (gsize) m * n);
        g_autofree float *c0 = g_memdup2 (c, sizeof (float) * m * n);
        g_autofree double *want = g_new (double, (gsize) m * n);
        g_autofree char *what = g_strdup_printf ("gemm %dx%dx%d ta=%d tb=%d", m, n, k, ta, tb);

        naive_gemm (ta, tb, m, n, k, 0.5, a, b, 2.0, c0, want);
        lode_ops_gemm (ta, tb, m, n, k, 0.5f, a, b, 2.0f, c);
        assert_close (c, want, (gsize) m * n, what);
      }
}

/* Products large enough to be split over the threads, by rows (m >= n)
 * and by columns, with gaps between the stored rows (which must be left
 * alone), on the team and on one thread. */
static void
test_gemm_ld (void)
{
  static const int shapes[][3] = { { 300, 70, 40 }, { 70, 300, 40 }, { 129, 1000, 33 } };
  g_autoptr(GRand) rand = g_rand_new_with_seed (5);
  int threads_before = lode_ops_cpu_threads ();

  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
    for (int t = 0; t < 4; t++)
      {
        int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        gboolean ta = t & 1, tb = (t >> 1) & 1;
        int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5, ldc = n + 7;
        int arows = ta ? k : m, brows = tb ? n : k;
        g_autofree float *a = random_array (rand, (gsize) arows * lda);
        g_autofree float *b = random_array (rand, (gsize) brows * ldb);
        g_autofree float *c = random_array (rand, (gsize) m * ldc);
        g_autofree float *c1 = g_memdup2 (c, sizeof (float) * m * ldc);
        g_autofree float *orig = g_memdup2 (c, sizeof (float) * m * ldc);
        g_autofree float *c0 = g_new (float, (gsize) m * n);
        g_autofree float *ap = g_new (float, (gsize) arows * (ta ? m : k));
        g_autofree float *bp = g_new (float, (gsize) brows * (tb ? k : n));
        g_autofree double *want = g_new (double, (gsize) m * n);
        g_autofree float *got = g_new (float, (gsize) m * n);
        g_autofree char *what = g_strdup_printf ("gemm_ld %dx%dx%d ta=%d tb=%d", m, n, k, ta, tb);

        /* the same matrices packed, for the reference */
        for (int i = 0; i < arows; i++)
          memcpy (ap + (gsize) i * (ta ? m : k), a + (gsize) i * lda, sizeof (float) * (ta ? m : k));
        for (int i = 0; i < brows; i++)
          memcpy (bp + (gsize) i * (tb ? k : n), b + (gsize) i * ldb, sizeof (float) * (tb ? k : n));
        for (int i = 0; i < m; i++)
          memcpy (c0 + (gsize) i * n, c + (gsize) i * ldc, sizeof (float) * n);
        naive_gemm (ta, tb, m, n, k, 0.5, ap, bp, 2.0, c0, want);

        for (int threads = 2; threads >= 1; threads--)
          {
            float *out = threads == 2 ? c : c1;

            lode_ops_cpu_set_threads (threads);
            lode_ops_gemm_ld (ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 2.0f, out, ldc);
            for (int i = 0; i < m; i++)
              {
                memcpy (got + (gsize) i * n, out + (gsize) i * ldc, sizeof (float) * n);
                for (int j = n; j < ldc; j++)
                  g_assert_cmpfloat (out[(gsize) i * ldc + j], ==, orig[(gsize) i * ldc + j]);
              }
            assert_close (got, want, (gsize) m * n, what);
          }
        lode_ops_cpu_set_threads (threads_before);
      }
}

static void
test_gemm_batched (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (2);
  int batch = 3, m = 5, n = 7, k = 9;
  /* strides larger than the matrices: the gaps must be left alone */
  gint64 sa = m * k + 2, sb = k * n + 3, sc = m * n + 1;
  g_autofree float *a = random_array (rand, batch * sa);
  g_autofree float *b = random_array (rand, batch * sb);
  g_autofree float *c = g_new0 (float, batch * sc);
  g_autofree double *want = g_new (double, (gsize) m * n);

  lode_ops_gemm_batched (FALSE, TRUE, batch, m, n, k, 1.0f, a, sa, b, sb, 0.0f, c, sc);
  for (int i = 0; i < batch; i++)
    {
      naive_gemm (FALSE, TRUE, m, n, k, 1.0, a + i * sa, b + i * sb, 0.0, NULL, want);
      assert_close (c + i * sc, want, (gsize) m * n, "gemm_batched");
      g_assert_cmpfloat (c[i * sc + m * n], ==, 0.0f);
    }
}

static void
test_matmul_hand (void)
{
  const float a[] = { 1, 2, 3, 4 };
  const float b_kn[] = { 5, 6, 7, 8 };    /* [[5,6],[7,8]] */
  const float b_nk[] = { 5, 7, 6, 8 };    /* the same matrix stored as weight [n,k] */
  const float bias[] = { 1, -1 };
  const float want[] = { 20, 21, 44, 49 }; /* [[19,22],[43,50]] + bias */
  float out[4];

  lode_ops_matmul (out, a, b_kn, bias, 2, 2, 2, FALSE);
  assert_values (out, want, 4, 1e-6);
  lode_ops_matmul (out, a, b_nk, bias, 2, 2, 2, TRUE);
  assert_values (out, want, 4, 1e-6);
}

static void
test_linear (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (3);
  int rows = 11, in_f = 13, out_f = 6;
  g_autofree float *x = random_array (rand, rows * in_f);
  g_autofree float *w = random_array (rand, out_f * in_f);
  g_autofree float *bias = random_array (rand, out_f);
  g_autofree float *out = g_new (float, rows * out_f);
  g_autofree double *want = g_new (double, rows * out_f);

  for (int r = 0; r < rows; r++)
    for (int o = 0; o < out_f; o++)
      {
        double s = bias[o];
        for (int i = 0; i < in_f; i++)
          s += (double) x[r * in_f + i] * w[o * in_f + i];
        want[r * out_f + o] = s;
      }
  lode_ops_linear (out, x, w, bias, rows, in_f, out_f);
  assert_close (out, want, rows * out_f, "linear");
}

/* ---- convolutions ---- */

static const LodeConvShape conv_cases[] = {
  /* n cin h w  cout kh kw  sh sw  ph pw  dh dw  groups  oph opw */
  { 2, 3, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 0 },
  { 1, 4, 11, 8, 6, 3, 2, 2, 1, 1, 0, 1, 1, 2, 0, 0 },
  { 1, 3, 13, 10, 4, 3, 3, 2, 2, 2, 2, 2, 2, 1, 0, 0 },
  { 2, 5, 6, 7, 3, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0 },   /* 1x1: no im2col */
  { 1, 3, 17, 16, 8, 7, 7, 4, 4, 3, 3, 1, 1, 1, 0, 0 }, /* Hiera patch embedding */
  { 1, 16, 180, 181, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 0 }, /* im2col in several chunks */
  { 2, 5, 9, 11, 4, 3, 3, 2, 2, 0, 1, 1, 1, 1, 0, 0 },  /* stride 2, padding on one side only */
};

static void
naive_conv2d (double *out, const float *in, const float *w, const float *bias,
              const LodeConvShape *s, int oh, int ow)
{
  int cig = s->c_in / s->groups, cog = s->c_out / s->groups;

  for (int i = 0; i < s->n; i++)
    for (int co = 0; co < s->c_out; co++)
      for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
          {
            int g = co / cog;
            double acc = bias ? bias[co] : 0.0;

            for (int ci = 0; ci < cig; ci++)
              for (int ky = 0; ky < s->kh; ky++)
                for (int kx = 0; kx < s->kw; kx++)
                  {
                    int y = oy * s->stride_h - s->pad_h + ky * s->dil_h;
                    int x = ox * s->stride_w - s->pad_w + kx * s->dil_w;
                    if (y < 0 || y >= s->h || x < 0 || x >= s->w)
                      continue;
                    acc += (double) in[((i * s->c_in + g * cig + ci) * s->h + y) * s->w + x]
                           * w[((co * cig + ci) * s->kh + ky) * s->kw + kx];
                  }
            out[((i * s->c_out + co) * oh + oy) * ow + ox] = acc;
          }
}

static void
test_conv2d_hand (void)
{
  const float in[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
  const float w[] = { 1, 1, 1, 1 };
  const float bias[] = { 1 };
  const float want[] = { 13, 17, 25, 29 };  /* sums of 2x2 blocks, plus 1 */
  LodeConvShape s;
  int oh, ow;
  float out[4];

  lode_conv_shape_init (&s, 1, 1, 3, 3, 1, 2, 1, 0);
  g_assert_true (lode_conv_shape_out_size (&s, &oh, &ow));
  g_assert_cmpint (oh, ==, 2);
  g_assert_cmpint (ow, ==, 2);
  lode_ops_conv2d (out, in, w, bias, &s);
  assert_values (out, want, 4, 1e-6);

  /* shapes that make no sense are refused */
  s.groups = 2;
  g_assert_false (lode_conv_shape_out_size (&s, NULL, NULL));
  lode_conv_shape_init (&s, 1, 1, 3, 3, 1, 5, 1, 0);
  g_assert_false (lode_conv_shape_out_size (&s, NULL, NULL));
}

static const LodeConvShape convt_cases[] = {
  { 1, 4, 5, 6, 3, 2, 2, 2, 2, 0, 0, 1, 1, 1, 0, 0 },  /* SAM2's upscaler */
  { 2, 4, 5, 4, 6, 3, 3, 2, 2, 1, 1, 1, 1, 2, 1, 1 },
  { 1, 3, 4, 5, 2, 3, 2, 1, 2, 0, 1, 2, 1, 1, 0, 0 },
  { 1, 8, 72, 72, 64, 4, 4, 2, 2, 1, 1, 1, 1, 1, 0, 0 }, /* col2im in several chunks */
};

static void
naive_conv_transpose2d (double *out, const float *in, const float *w, const float *bias,
                        const LodeConvShape *s, int oh, int ow)
{
  int cig = s->c_in / s->groups, cog = s->c_out / s->groups;

  for (gsize i = 0; i < (gsize) s->n * s->c_out * oh * ow; i++)
    out[i] = bias ? bias[(i / ((gsize) oh * ow)) % s->c_out] : 0.0;
  /* every input pixel spreads its value times the kernel over the output */
  for (int i = 0; i < s->n; i++)
    for (int ci = 0; ci < s->c_in; ci++)
      for (int y = 0; y < s->h; y++)
        for (int x = 0; x < s->w; x++)
          for (int co = 0; co < cog; co++)
            for (int ky = 0; ky < s->kh; ky++)
              for (int kx = 0; kx < s->kw; kx++)
                {
                  int g = ci / cig;
                  int oy = y * s->stride_h - s->pad_h + ky * s->dil_h;
                  int ox = x * s->stride_w - s->pad_w + kx * s->dil_w;
                  if (oy < 0 || oy >= oh || ox < 0 || ox >= ow)
                    continue;
                  out[((i * s->c_out + g * cog + co) * oh + oy) * ow + ox] +=
                    (double) in[((i * s->c_in + ci) * s->h + y) * s->w + x]
                    * w[((ci * cog + co) * s->kh + ky) * s->kw + kx];
                }
}

/* Runs each case through the kernel and the naive loops with random inputs;
 * odd cases go without bias. */
static void
check_conv_cases (const LodeConvShape *cases, guint ncases, gboolean transposed,
                  guint32 seed)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (seed);

  for (guint c = 0; c < ncases; c++)
    {
      const LodeConvShape *s = &cases[c];
      int oh, ow;
      gsize nin, nw, nout;

      if (transposed)
        g_assert_true (lode_conv_shape_tout_size (s, &oh, &ow));
      else
        g_assert_true (lode_conv_shape_out_size (s, &oh, &ow));
      nin = (gsize) s->n * s->c_in * s->h * s->w;
      /* [c_out, c_in/groups, kh, kw] or, transposed, [c_in, c_out/groups, kh, kw] */
      nw = (gsize) s->c_in * (s->c_out / s->groups) * s->kh * s->kw;
      nout = (gsize) s->n * s->c_out * oh * ow;
      {
        g_autofree float *in = random_array (rand, nin);
        g_autofree float *w = random_array (rand, nw);
        g_autofree float *bias = random_array (rand, s->c_out);
        const float *b = c % 2 ? NULL : bias;
        g_autofree float *out = g_new (float, nout);
        g_autofree double *want = g_new (double, nout);
        g_autofree char *what = g_strdup_printf ("%s case %u",
                                                 transposed ? "conv_transpose2d" : "conv2d", c);

        if (transposed)
          {
            naive_conv_transpose2d (want, in, w, b, s, oh, ow);
            lode_ops_conv_transpose2d (out, in, w, b, s);
          }
        else
          {
            naive_conv2d (want, in, w, b, s, oh, ow);
            lode_ops_conv2d (out, in, w, b, s);
          }
        assert_close (out, want, nout, what);
      }
    }
}

/* SAM2's upscaling step: the product then lode_ops_unfold_2x2, with the
 * high-resolution features added and GELU, against the naive transposed
 * convolution (side 33, above the threads' threshold, odd). */
static void
test_unfold_2x2 (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (23);
  int c_in = 12, c_out = 5, side = 33, ow = 2 * side;
  gsize hw = (gsize) side * side, nout = (gsize) c_out * ow * ow;
  LodeConvShape s;
  g_autofree float *in = random_array (rand, (gsize) c_in * hw);
  g_autofree float *w = random_array (rand, (gsize) c_in * c_out * 4);
  g_autofree float *bias = random_array (rand, c_out);
  g_autofree float *add = random_array (rand, nout);
  g_autofree float *cols = g_new (float, (gsize) c_out * 4 * hw);
  g_autofree float *out = g_new (float, nout);
  g_autofree double *want = g_new (double, nout);

  lode_conv_shape_init (&s, 1, c_in, side, side, c_out, 2, 2, 0);
  naive_conv_transpose2d (want, in, w, bias, &s, ow, ow);
  lode_ops_gemm (TRUE, FALSE, c_out * 4, (int) hw, c_in, 1.0f, w, in, 0.0f, cols);
  lode_ops_unfold_2x2 (out, cols, bias, NULL, c_out, side, FALSE);
  assert_close (out, want, nout, "unfold_2x2");

  for (gsize i = 0; i < nout; i++)
    {
      double v = want[i] + add[i];
      want[i] = 0.5 * v * (1.0 + erf (v / sqrt (2.0)));
    }
  lode_ops_unfold_2x2 (out, cols, bias, add, c_out, side, TRUE);
  assert_close (out, want, nout, "unfold_2x2 + add + gelu");
}

static void
test_conv2d (void)
{
  check_conv_cases (conv_cases, G_N_ELEMENTS (conv_cases), FALSE, 4);
}

static void
test_conv_transpose2d (void)
{
  check_conv_cases (convt_cases, G_N_ELEMENTS (convt_cases), TRUE, 5);
}

static void
test_conv_transpose2d_hand (void)
{
  const float in[] = { 1, 2 };          /* [1,1,1,2] */
  const float w[] = { 1, 2, 3, 4 };     /* [1,1,2,2] */
  const float want[] = { 1, 2, 2, 4,
                         3, 4, 6, 8 };  /* each pixel becomes pixel * kernel */
  LodeConvShape s;
  int oh, ow;
  float out[8];

  lode_conv_shape_init (&s, 1, 1, 1, 2, 1, 2, 2, 0);
  g_assert_true (lode_conv_shape_tout_size (&s, &oh, &ow));
  g_assert_cmpint (oh, ==, 2);
  g_assert_cmpint (ow, ==, 4);
  lode_ops_conv_transpose2d (out, in, w, NULL, &s);
  assert_values (out, want, 8, 1e-6);
}

/* ---- normalisation ---- */

static void
naive_norm (double *out, const float *x, gsize stride, int c, const float *w,
            const float *b, double eps)
{
  double mean = 0.0, var = 0.0;

  for (int j = 0; j < c; j++)
    mean += x[j * stride];
  mean /= c;
  for (int j = 0; j < c; j++)
    var += (x[j * stride] - mean) * (x[j * stride] - mean);
  var /= c;
  for (int j = 0; j < c; j++)
    out[j * stride] = (x[j * stride] - mean) / sqrt (var + eps) * (w ? w[j] : 1.0)
                      + (b ? b[j] : 0.0);
}

static void
test_layer_norm (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (6);
  int rows = 13, c = 37;
  g_autofree float *x = random_array (rand, rows * c);
  g_autofree float *w = random_array (rand, c);
  g_autofree float *b = random_array (rand, c);
  g_autofree float *out = g_new (float, rows * c);
  g_autofree double *want = g_new (double, rows * c);

  for (int r = 0; r < rows; r++)
    naive_norm (want + r * c, x + r * c, 1, c, w, b, 1e-6);
  lode_ops_layer_norm (out, x, w, b, rows, c, 1e-6f);
  assert_close (out, want, rows * c, "layer_norm");
  /* in place */
  lode_ops_layer_norm (x, x, w, b, rows, c, 1e-6f);
  assert_close (x, want, rows * c, "layer_norm in place");
}

static void
test_layer_norm_hand (void)
{
  const float x[] = { 1, 2, 3 };
  /* mean 2, biased variance 2/3: (x - 2) / sqrt(2/3 + 1e-5) */
  const float want[] = { -1.2247357f, 0.0f, 1.2247357f };
  float out[3];

  lode_ops_layer_norm (out, x, NULL, NULL, 1, 3, 1e-5f);
  assert_values (out, want, 3, 1e-6);
}

static void
test_layer_norm2d (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (7);
  /* hw = 300 spans two of the kernel's pixel blocks */
  int n = 2, c = 9, hw = 300;
  gsize total = (gsize) n * c * hw;
  g_autofree float *x = random_array (rand, total);
  g_autofree float *w = random_array (rand, c);
  g_autofree float *b = random_array (rand, c);
  g_autofree float *out = g_new (float, total);
  g_autofree double *want = g_new (double, total);

  for (int i = 0; i < n; i++)
    for (int p = 0; p < hw; p++)
      naive_norm (want + (gsize) i * c * hw + p, x + (gsize) i * c * hw + p, hw, c, w, b, 1e-6);
  lode_ops_layer_norm2d (out, x, w, b, n, c, hw, 1e-6f);
  assert_close (out, want, total, "layer_norm2d");
}

static void
test_batch_norm (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (8);
  int n = 3, c = 5, hw = 17;
  gsize total = (gsize) n * c * hw;
  g_autofree float *x = random_array (rand, total);
  g_autofree float *mean = random_array (rand, c);
  g_autofree float *var = random_array (rand, c);
  g_autofree float *w = random_array (rand, c);
  g_autofree float *b = random_array (rand, c);
  g_autofree float *out = g_new (float, total);
  g_autofree double *want = g_new (double, total);

  for (int j = 0; j < c; j++)
    var[j] = fabsf (var[j]) + 0.1f;
  for (gsize i = 0; i < total; i++)
    {
      int j = (int) ((i / hw) % c);
      want[i] = (x[i] - mean[j]) / sqrt (var[j] + 1e-5) * w[j] + b[j];
    }
  lode_ops_batch_norm (out, x, mean, var, w, b, n, c, hw, 1e-5f);
  assert_close (out, want, total, "batch_norm");
}

/* ---- element-wise ---- */

static void
test_activations_hand (void)
{
  const float x[] = { -100.0f, -1.0f, 0.0f, 1.0f, 100.0f };
  const float gelu[] = { -0.0f, -0.15865525f, 0.0f, 0.84134475f, 100.0f };
  const float gelu_tanh[] = { -0.0f, -0.15880801f, 0.0f, 0.84119199f, 100.0f };
  const float relu[] = { 0, 0, 0, 1, 100 };
  const float sigmoid[] = { 0.0f, 0.26894142f, 0.5f, 0.73105858f, 1.0f };
  float out[5];

  lode_ops_gelu (out, x, 5);
  assert_values (out, gelu, 5, 1e-6);
  lode_ops_gelu_tanh (out, x, 5);
  assert_values (out, gelu_tanh, 5, 1e-6);
  lode_ops_relu (out, x, 5);
  assert_values (out, relu, 5, 0.0);
  lode_ops_sigmoid (out, x, 5);
  assert_values (out, sigmoid, 5, 1e-7);
  g_assert_false (isnan (out[0]));
}

/* The erf behind GELU, against libm's double erf over the float line:
 * within 4e-7 everywhere, odd, and +-1 in the tails. */
static void
test_erf_approx (void)
{
  double worst = 0.0;
  float at = 0.0f;

  for (double x = -8.0; x <= 8.0; x += 1.0 / 4096.0)
    {
      float xf = (float) x;
      double err = fabs ((double) lode_erf_approx (xf) - erf ((double) xf));

      if (err > worst)
        {
          worst = err;
          at = xf;
        }
      g_assert_cmpfloat (lode_erf_approx (-xf), ==, -lode_erf_approx (xf));
    }
  g_test_message ("erf approximation: largest error %.3g at %g", worst, at);
  g_assert_cmpfloat (worst, <, 4e-7);
  g_assert_cmpfloat (fabsf (lode_erf_approx (1e30f) - 1.0f), <, 1e-7);
  g_assert_true (isnan (lode_erf_approx (NAN)));
}

static void
test_elementwise (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (9);
  /* above the threads' threshold, and odd */
  gsize n = 100003;
  g_autofree float *a = random_array (rand, n);
  g_autofree float *b = random_array (rand, n);
  g_autofree float *out = g_new (float, n);
  g_autofree double *want = g_new (double, n);

  for (gsize i = 0; i < n; i++)
    want[i] = 0.5 * a[i] * (1.0 + erf (a[i] / sqrt (2.0)));
  lode_ops_gelu (out, a, n);
  assert_close (out, want, n, "gelu");
  for (gsize i = 0; i < n; i++)
    want[i] = 1.0 / (1.0 + exp (-4.0 * a[i]));
  lode_ops_scale (out, a, 4.0f, n);
  lode_ops_sigmoid (out, out, n);
  assert_close (out, want, n, "scale, sigmoid");
  for (gsize i = 0; i < n; i++)
    want[i] = (double) a[i] + b[i];
  lode_ops_add (out, a, b, n);
  assert_close (out, want, n, "add");
  for (gsize i = 0; i < n; i++)
    want[i] = (double) a[i] * b[i];
  lode_ops_mul (out, a, b, n);
  assert_close (out, want, n, "mul");
}

static void
test_bias (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (10);
  int n = 2, c = 3, hw = 5;
  g_autofree float *x = random_array (rand, n * c * hw);
  g_autofree float *bias = random_array (rand, c * hw);
  g_autofree float *out = g_new (float, n * c * hw);
  g_autofree double *want = g_new (double, n * c * hw);

  for (int i = 0; i < n; i++)
    for (int j = 0; j < c; j++)
      for (int p = 0; p < hw; p++)
        want[(i * c + j) * hw + p] = (double) x[(i * c + j) * hw + p] + bias[j];
  lode_ops_add_channel_bias (out, x, bias, n, c, hw);
  assert_close (out, want, n * c * hw, "add_channel_bias");
  /* the same array seen as [n*c, hw] rows with a bias of hw */
  for (int r = 0; r < n * c; r++)
    for (int p = 0; p < hw; p++)
      want[r * hw + p] = (double) x[r * hw + p] + bias[p];
  lode_ops_add_row_bias (out, x, bias, n * c, hw);
  assert_close (out, want, n * c * hw, "add_row_bias");
}

/* ---- softmax and attention ---- */

static void
test_softmax_hand (void)
{
  const float x[] = { 0.0f, (float) G_LN2, 1000.0f, 1000.0f + (float) G_LN2 };
  /* 1000 + ln 2 rounds in float (steps of 6e-5 there), so the second row's
   * exact answer is taken from the stored inputs; it is 1/3, 2/3 to 1e-4. */
  double d = (double) x[3] - x[2];
  const float want[] = { 1.0f / 3, 2.0f / 3,
                         (float) (1.0 / (1.0 + exp (d))), (float) (1.0 / (1.0 + exp (-d))) };
  float out[4];

  /* the second row would overflow expf without the max subtracted */
  lode_ops_softmax (out, x, 2, 2);
  assert_values (out, want, 4, 1e-6);
  g_assert_cmpfloat_with_epsilon (out[2], 1.0f / 3, 1e-4);
}

static void
naive_softmax (double *row, int c)
{
  double mx = -INFINITY, s = 0.0;

  for (int j = 0; j < c; j++)
    mx = MAX (mx, row[j]);
  for (int j = 0; j < c; j++)
    s += (row[j] = exp (row[j] - mx));
  for (int j = 0; j < c; j++)
    row[j] /= s;
}

static void
test_softmax (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (11);
  int rows = 17, c = 129;
  g_autofree float *x = random_array (rand, rows * c);
  g_autofree float *out = g_new (float, rows * c);
  g_autofree double *want = g_new (double, rows * c);

  for (int i = 0; i < rows * c; i++)
    want[i] = x[i] = x[i] * 20.0f;
  for (int r = 0; r < rows; r++)
    naive_softmax (want + r * c, c);
  lode_ops_softmax (out, x, rows, c);
  assert_close (out, want, rows * c, "softmax");
}

static void
naive_attention (double *out, const float *q, const float *k, const float *v,
                 int bh, int lq, int lk, int d)
{
  g_autofree double *p = g_new (double, lk);

  for (int i = 0; i < bh; i++)
    for (int r = 0; r < lq; r++)
      {
        for (int j = 0; j < lk; j++)
          {
            double s = 0.0;
            for (int e = 0; e < d; e++)
              s += (double) q[((gsize) i * lq + r) * d + e] * k[((gsize) i * lk + j) * d + e];
            p[j] = s / sqrt (d);
          }
        naive_softmax (p, lk);
        for (int e = 0; e < d; e++)
          {
            double s = 0.0;
            for (int j = 0; j < lk; j++)
              s += p[j] * v[((gsize) i * lk + j) * d + e];
            out[((gsize) i * lq + r) * d + e] = s;
          }
      }
}

static void
test_attention (void)
{
  /* b h lq lk d; the last has more scores than one block of query rows holds */
  static const int shapes[][5] = { { 1, 1, 1, 1, 1 }, { 2, 3, 7, 11, 5 }, { 1, 2, 16, 16, 32 },
                                   { 1, 1, 300, 16000, 8 } };
  g_autoptr(GRand) rand = g_rand_new_with_seed (12);

  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
    {
      int b = shapes[s][0], h = shapes[s][1], lq = shapes[s][2], lk = shapes[s][3];
      int d = shapes[s][4];
      gsize nq = (gsize) b * h * lq * d, nk = (gsize) b * h * lk * d;
      g_autofree float *q = random_array (rand, nq);
      g_autofree float *k = random_array (rand, nk);
      g_autofree float *v = random_array (rand, nk);
      g_autofree float *out = g_new (float, nq);
      g_autofree double *want = g_new (double, nq);
      g_autofree char *what = g_strdup_printf ("attention shape %u", s);

      for (gsize i = 0; i < nq; i++)
        q[i] *= 3.0f;  /* peaked softmax */
      naive_attention (want, q, k, v, b * h, lq, lk, d);
      lode_ops_attention (out, q, k, v, b, h, lq, lk, d);
      assert_close (out, want, nq, what);
    }
}

/* ---- pooling and resizing ---- */

static void
test_max_pool_hand (void)
{
  float x[16];
  const float want[] = { 6, 8, 14, 16 };
  float out[9];

  for (int i = 0; i < 16; i++)
    x[i] = i + 1;
  lode_ops_max_pool2d (out, x, 1, 1, 4, 4, 2, 2, 0);
  assert_values (out, want, 4, 0.0);
  /* kernel 3, stride 2, padding 1 on 4x4: windows start at -1 and 1 */
  g_assert_cmpint (lode_ops_pool_out_size (4, 3, 2, 1), ==, 2);
  lode_ops_max_pool2d (out, x, 1, 1, 4, 4, 3, 2, 1);
  assert_values (out, want, 4, 0.0);
  /* padding never wins, even against negative values */
  for (int i = 0; i < 16; i++)
    x[i] = -(i + 1);
  lode_ops_max_pool2d (out, x, 1, 1, 4, 4, 3, 2, 1);
  g_assert_cmpfloat (out[0], ==, -1.0f);
  g_assert_cmpfloat (out[3], ==, -6.0f);   /* x[1][1] */
}

static void
test_max_pool (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (13);
  int n = 2, c = 3, h = 9, w = 7, k = 3, st = 2, pad = 1;
  int oh = lode_ops_pool_out_size (h, k, st, pad), ow = lode_ops_pool_out_size (w, k, st, pad);
  g_autofree float *x = random_array (rand, n * c * h * w);
  g_autofree float *out = g_new (float, n * c * oh * ow);
  g_autofree double *want = g_new (double, n * c * oh * ow);

  g_assert_cmpint (oh, ==, 5);
  g_assert_cmpint (ow, ==, 4);
  for (int t = 0; t < n * c; t++)
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++)
        {
          double m = -INFINITY;
          for (int y = MAX (0, oy * st - pad); y < MIN (h, oy * st - pad + k); y++)
            for (int x0 = MAX (0, ox * st - pad); x0 < MIN (w, ox * st - pad + k); x0++)
              m = MAX (m, x[(t * h + y) * w + x0]);
          want[(t * oh + oy) * ow + ox] = m;
        }
  lode_ops_max_pool2d (out, x, n, c, h, w, k, st, pad);
  assert_close (out, want, n * c * oh * ow, "max_pool2d");
}

static void
test_resize_hand (void)
{
  const float x[] = { 1, 2, 3, 4 };
  /* torch.nn.functional.interpolate(x, size=(4, 4), mode='bilinear',
   * align_corners=False) */
  const float bilinear[] = { 1.0f, 1.25f, 1.75f, 2.0f,
                             1.5f, 1.75f, 2.25f, 2.5f,
                             2.5f, 2.75f, 3.25f, 3.5f,
                             3.0f, 3.25f, 3.75f, 4.0f };
  const float nearest[] = { 1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4 };
  float aligned[16], out[16];

  /* align_corners=True: the corners stay, steps of 1/3 across, 2/3 down */
  for (int y = 0; y < 4; y++)
    for (int xx = 0; xx < 4; xx++)
      aligned[y * 4 + xx] = 1.0f + xx / 3.0f + 2.0f * y / 3.0f;

  lode_ops_resize (out, x, 1, 2, 2, 4, 4, LODE_RESIZE_BILINEAR);
  assert_values (out, bilinear, 16, 1e-6);
  lode_ops_resize (out, x, 1, 2, 2, 4, 4, LODE_RESIZE_BILINEAR_ALIGN_CORNERS);
  assert_values (out, aligned, 16, 1e-6);
  lode_ops_resize (out, x, 1, 2, 2, 4, 4, LODE_RESIZE_NEAREST);
  assert_values (out, nearest, 16, 0.0);
  /* 2x2 -> 1x1, align_corners=False samples the centre */
  lode_ops_resize (out, x, 1, 2, 2, 1, 1, LODE_RESIZE_BILINEAR);
  g_assert_cmpfloat_with_epsilon (out[0], 2.5f, 1e-6);
}

/* torch's bilinear, written from its definition in double */
static double
naive_bilinear (const float *x, int h, int w, int oy, int ox, int oh, int ow, gboolean align)
{
  double sy, sx, fy, fx;
  int y0, x0, y1, x1;

  if (align)
    {
      sy = oh > 1 ? oy * (double) (h - 1) / (oh - 1) : 0.0;
      sx = ow > 1 ? ox * (double) (w - 1) / (ow - 1) : 0.0;
    }
  else
    {
      sy = MAX ((oy + 0.5) * h / oh - 0.5, 0.0);
      sx = MAX ((ox + 0.5) * w / ow - 0.5, 0.0);
    }
  y0 = MIN ((int) floor (sy), h - 1);
  x0 = MIN ((int) floor (sx), w - 1);
  y1 = MIN (y0 + 1, h - 1);
  x1 = MIN (x0 + 1, w - 1);
  fy = sy - y0;
  fx = sx - x0;
  return (1 - fy) * ((1 - fx) * x[y0 * w + x0] + fx * x[y0 * w + x1])
         + fy * ((1 - fx) * x[y1 * w + x0] + fx * x[y1 * w + x1]);
}

static void
test_resize (void)
{
  /* up, down, mixed, and to a single row */
  static const int sizes[][4] = { { 5, 7, 16, 9 }, { 17, 13, 6, 4 }, { 8, 8, 3, 20 }, { 6, 9, 1, 5 } };
  g_autoptr(GRand) rand = g_rand_new_with_seed (14);

  for (guint s = 0; s < G_N_ELEMENTS (sizes); s++)
    for (int align = 0; align < 2; align++)
      {
        int nc = 3, h = sizes[s][0], w = sizes[s][1], oh = sizes[s][2], ow = sizes[s][3];
        g_autofree float *x = random_array (rand, nc * h * w);
        g_autofree float *out = g_new (float, nc * oh * ow);
        g_autofree double *want = g_new (double, nc * oh * ow);
        g_autofree char *what = g_strdup_printf ("resize %dx%d -> %dx%d align %d",
                                                 h, w, oh, ow, align);

        for (int t = 0; t < nc; t++)
          for (int y = 0; y < oh; y++)
            for (int xx = 0; xx < ow; xx++)
              want[(t * oh + y) * ow + xx] =
                naive_bilinear (x + t * h * w, h, w, y, xx, oh, ow, align);
        lode_ops_resize (out, x, nc, h, w, oh, ow,
                         align ? LODE_RESIZE_BILINEAR_ALIGN_CORNERS : LODE_RESIZE_BILINEAR);
        assert_close (out, want, nc * oh * ow, what);

        /* nearest: floor(dst * in / out) */
        for (int t = 0; t < nc; t++)
          for (int y = 0; y < oh; y++)
            for (int xx = 0; xx < ow; xx++)
              want[(t * oh + y) * ow + xx] =
                x[(t * h + (y * h) / oh) * w + (xx * w) / ow];
        lode_ops_resize (out, x, nc, h, w, oh, ow, LODE_RESIZE_NEAREST);
        assert_close (out, want, nc * oh * ow, "nearest");
      }
}

/* ---- layout ---- */

static void
test_window_partition (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (15);
  int b = 2, h = 10, w = 7, c = 3, win = 4;
  int nh = 3, nw = 2;
  gsize nwin = (gsize) b * nh * nw * win * win * c;
  g_autofree float *x = random_array (rand, b * h * w * c);
  g_autofree float *windows = g_new (float, nwin);
  g_autofree double *want = g_new0 (double, nwin);
  g_autofree float *back = g_new (float, b * h * w * c);
  g_autofree double *orig = g_new (double, b * h * w * c);

  g_assert_cmpint (lode_ops_window_count (h, w, win), ==, nh * nw);
  /* every input pixel lands in window (y/win, x/win) at (y%win, x%win); the
   * rest of each padded window is zero */
  for (int i = 0; i < b; i++)
    for (int y = 0; y < h; y++)
      for (int xx = 0; xx < w; xx++)
        for (int ch = 0; ch < c; ch++)
          {
            gsize widx = ((gsize) i * nh + y / win) * nw + xx / win;
            want[((widx * win + y % win) * win + xx % win) * c + ch] =
              x[((i * h + y) * w + xx) * c + ch];
          }
  lode_ops_window_partition (windows, x, b, h, w, c, win);
  assert_close (windows, want, nwin, "window_partition");

  for (int i = 0; i < b * h * w * c; i++)
    orig[i] = x[i];
  lode_ops_window_unpartition (back, windows, b, h, w, c, win);
  assert_close (back, orig, b * h * w * c, "window_unpartition");
}

static void
test_permute (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (16);
  int n = 2, c = 3, h = 5, w = 7;
  gsize total = (gsize) n * c * h * w;
  g_autofree float *x = random_array (rand, total);
  g_autofree float *nhwc = g_new (float, total);
  g_autofree float *back = g_new (float, total);
  g_autofree double *want = g_new (double, total);
  g_autofree float *bhld = g_new (float, total);
  const int dims[4] = { n, c, h, w };
  const int perm[4] = { 0, 2, 1, 3 };  /* [B, L, H, D] -> [B, H, L, D] */

  for (int i = 0; i < n; i++)
    for (int j = 0; j < c; j++)
      for (int y = 0; y < h; y++)
        for (int xx = 0; xx < w; xx++)
          want[((i * h + y) * w + xx) * c + j] = x[((i * c + j) * h + y) * w + xx];
  lode_ops_nchw_to_nhwc (nhwc, x, n, c, h, w);
  assert_close (nhwc, want, total, "nchw_to_nhwc");
  lode_ops_nhwc_to_nchw (back, nhwc, n, c, h, w);
  g_assert_cmpmem (back, sizeof (float) * total, x, sizeof (float) * total);

  for (int i = 0; i < n; i++)
    for (int j = 0; j < c; j++)
      for (int y = 0; y < h; y++)
        for (int xx = 0; xx < w; xx++)
          want[((i * h + y) * c + j) * w + xx] = x[((i * c + j) * h + y) * w + xx];
  lode_ops_permute4 (bhld, x, dims, perm);
  assert_close (bhld, want, total, "permute4 0213");

  /* heads: tokens [l, h * d] -> [h, l, d] and back (l = 6, h = 5, d = 7) */
  {
    int l = n * c, nh = h, d = w;

    for (int t = 0; t < l; t++)
      for (int k = 0; k < nh; k++)
        for (int j = 0; j < d; j++)
          want[((gsize) k * l + t) * d + j] = x[((gsize) t * nh + k) * d + j];
    lode_ops_split_heads (bhld, x, l, nh, d);
    assert_close (bhld, want, total, "split_heads");
    lode_ops_merge_heads (back, bhld, l, nh, d);
    g_assert_cmpmem (back, sizeof (float) * total, x, sizeof (float) * total);
  }
}

/* ---- speed, for the record ---- */

static void
test_timing (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (17);
  int n = 1024;
  g_autofree float *a = random_array (rand, (gsize) n * n);
  g_autofree float *b = random_array (rand, (gsize) n * n);
  g_autofree float *c = g_new (float, (gsize) n * n);
  LodeConvShape s;
  g_autofree float *img = NULL, *w = NULL, *out = NULL;
  gint64 t0;
  double secs;

  lode_ops_gemm (FALSE, FALSE, n, n, n, 1.0f, a, b, 0.0f, c);  /* warm up */
  t0 = g_get_monotonic_time ();
  lode_ops_gemm (FALSE, FALSE, n, n, n, 1.0f, a, b, 0.0f, c);
  secs = (g_get_monotonic_time () - t0) / 1e6;
  g_test_message ("sgemm 1024x1024x1024: %.3f s, %.1f GFLOP/s", secs, 2.0 * n * n * n / secs / 1e9);

  lode_conv_shape_init (&s, 1, 96, 256, 256, 96, 3, 1, 1);
  img = random_array (rand, (gsize) 96 * 256 * 256);
  w = random_array (rand, (gsize) 96 * 96 * 9);
  out = g_new (float, (gsize) 96 * 256 * 256);
  t0 = g_get_monotonic_time ();
  lode_ops_conv2d (out, img, w, NULL, &s);
  secs = (g_get_monotonic_time () - t0) / 1e6;
  g_test_message ("conv2d 1x96x256x256 -> 96, 3x3: %.3f s, %.1f GFLOP/s",
                  secs, 2.0 * 96 * 96 * 9 * 256 * 256 / secs / 1e9);
  /* the product must still be right at this size: spot-check one entry */
  {
    double want = 0.0;
    for (int p = 0; p < n; p++)
      want += (double) a[5 * n + p] * b[p * n + 7];
    g_assert_cmpfloat_with_epsilon (c[5 * n + 7], want, 1e-3);
  }
}

/* bf16 keeps 8 bits of mantissa: 1 + 2^-8 is a tie between 1 and 1 + 2^-7
 * and goes to the even one (1); just above the tie rounds up; a value past
 * bf16's largest finite one (0x7f7f0000) becomes infinity; NaN stays NaN. */
static void
test_round_bf16 (void)
{
  float in[] = { 1.0f, 1.0f + 0x1p-8f, 1.0f + 0x1p-8f + 0x1p-20f, 1.0f + 3 * 0x1p-8f,
                 -2.5f, 0.1f, 3.4e38f, INFINITY, -INFINITY, NAN, 1e-40f };
  float want[] = { 1.0f, 1.0f, 1.0f + 0x1p-7f, 1.0f + 0x1p-6f,
                   -2.5f, 0.10009765625f, INFINITY, INFINITY, -INFINITY, NAN, 0.0f };
  float out[G_N_ELEMENTS (in)];
  LodePrecision p;

  lode_ops_round_bf16 (out, in, G_N_ELEMENTS (in));
  for (guint i = 0; i < G_N_ELEMENTS (in); i++)
    {
      if (isnan (want[i]))
        g_assert_true (isnan (out[i]));
      else if (i == G_N_ELEMENTS (in) - 1)
        g_assert_cmpfloat (fabsf (out[i] - 1e-40f), <=, 0x1p-134f);  /* subnormal: steps of 2^-133 */
      else
        g_assert_cmpfloat (out[i], ==, want[i]);
    }
  /* In place, and idempotent. */
  lode_ops_round_bf16 (in, in, G_N_ELEMENTS (in));
  g_assert_cmpmem (in, 6 * sizeof (float), out, 6 * sizeof (float));

  g_assert_true (lode_precision_parse ("bf16", &p) && p == LODE_PRECISION_BF16);
  g_assert_true (lode_precision_parse ("TF32", &p) && p == LODE_PRECISION_TF32);
  g_assert_true (lode_precision_parse (NULL, &p) && p == LODE_PRECISION_FP32);
  g_assert_false (lode_precision_parse ("fp16", &p));
  g_assert_cmpstr (lode_precision_name (LODE_PRECISION_BF16), ==, "bf16");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/ops/gemm", test_gemm);
  g_test_add_func ("/ops/round-bf16", test_round_bf16);
  g_test_add_func ("/ops/gemm-ld", test_gemm_ld);
  g_test_add_func ("/ops/gemm-batched", test_gemm_batched);
  g_test_add_func ("/ops/matmul-hand", test_matmul_hand);
  g_test_add_func ("/ops/linear", test_linear);
  g_test_add_func ("/ops/conv2d", test_conv2d);
  g_test_add_func ("/ops/conv2d-hand", test_conv2d_hand);
  g_test_add_func ("/ops/conv-transpose2d", test_conv_transpose2d);
  g_test_add_func ("/ops/conv-transpose2d-hand", test_conv_transpose2d_hand);
  g_test_add_func ("/ops/layer-norm", test_layer_norm);
  g_test_add_func ("/ops/layer-norm-hand", test_layer_norm_hand);
  g_test_add_func ("/ops/layer-norm2d", test_layer_norm2d);
  g_test_add_func ("/ops/batch-norm", test_batch_norm);
  g_test_add_func ("/ops/activations-hand", test_activations_hand);
  g_test_add_func ("/ops/erf-approx", test_erf_approx);
  g_test_add_func ("/ops/unfold-2x2", test_unfold_2x2);
  g_test_add_func ("/ops/elementwise", test_elementwise);
  g_test_add_func ("/ops/bias", test_bias);
  g_test_add_func ("/ops/softmax-hand", test_softmax_hand);
  g_test_add_func ("/ops/softmax", test_softmax);
  g_test_add_func ("/ops/attention", test_attention);
  g_test_add_func ("/ops/max-pool-hand", test_max_pool_hand);
  g_test_add_func ("/ops/max-pool", test_max_pool);
  g_test_add_func ("/ops/resize-hand", test_resize_hand);
  g_test_add_func ("/ops/resize", test_resize);
  g_test_add_func ("/ops/window-partition", test_window_partition);
  g_test_add_func ("/ops/permute", test_permute);
  g_test_add_func ("/ops/timing", test_timing);
  return g_test_run ();
}
