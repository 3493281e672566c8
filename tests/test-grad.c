/* The backward passes of lode-grad against central finite differences of
 * their forwards, and a few values worked out by hand.
 *
 * Each check takes a scalar L = sum_j r_j * y_j (r random, so dL/dy = r),
 * perturbs one input element by +-h, recomputes L summing in double, and
 * compares (L+ - L-) / 2h with the analytic gradient on a sample of
 * elements. The forwards run in float32, so each output carries a rounding
 * error of about 6e-8 |y|; with h = 1e-2 and a few hundred outputs the
 * difference quotient is off by ~1e-4 of the gradient scale, and the
 * second-order term of central differences is O(h^2) = 1e-4 for these
 * smooth functions. We ask max |numeric - analytic| / max |analytic|
 * < 1e-2: a missing term, a wrong index or a wrong scale gives O(1).
 * ReLU and max pooling are only piecewise smooth: their inputs are kept
 * further than h from the kinks (|x| > 0.05, maxima apart by > 0.03). */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lode-grad.h"
#include "lode-ops.h"

#define FD_H 1e-2
#define FD_TOL 1e-2
#define FD_SAMPLES 48

typedef double (*LossFunc) (gpointer ctx);

static float *
random_array (GRand *rand, gsize n, double lo, double hi)
{
  float *a = g_new (float, n ? n : 1);

  for (gsize i = 0; i < n; i++)
    a[i] = (float) g_rand_double_range (rand, lo, hi);
  return a;
}

static double
dot_rd (const float *r, const float *y, gsize n)
{
  double s = 0.0;

  for (gsize i = 0; i < n; i++)
    s += (double) r[i] * y[i];
  return s;
}

/* Compares analytic[0..n) with central differences of loss() in var[0..n)
 * on FD_SAMPLES elements (all when n is smaller). */
static void
check_fd (const char *what,
          float      *var,
          const float *analytic,
          gsize       n,
          LossFunc    loss,
          gpointer    ctx,
          GRand      *rand)
{
  double diff = 0.0, mag = 0.0;

  for (gsize i = 0; i < n; i++)
    mag = MAX (mag, fabs (analytic[i]));
  for (gsize s = 0; s < MIN (n, FD_SAMPLES); s++)
    {
      gsize i = n <= FD_SAMPLES ? s : (gsize) g_rand_int_range (rand, 0, (gint32) n);
      float saved = var[i];
      double lp, lm, num;

      var[i] = (float) (saved + FD_H);
      lp = loss (ctx);
      var[i] = (float) (saved - FD_H);
      lm = loss (ctx);
      var[i] = saved;
      num = (lp - lm) / (((double) (float) (saved + FD_H)) - (double) (float) (saved - FD_H));
      diff = MAX (diff, fabs (num - analytic[i]));
    }
  if (!(diff / (mag + 1e-12) < FD_TOL))
    g_test_message ("%s: finite-difference error %g of %g", what, diff, mag);
  g_assert_cmpfloat (mag, >, 0.0);
  g_assert_cmpfloat (diff / (mag + 1e-12), <, FD_TOL);
}

/* ---- convolution ---- */

typedef struct {
  LodeConvShape s;
  float *x, *w, *b, *r, *y;
  gsize ny;
} ConvCase;

static double
conv_loss (gpointer data)
{
  ConvCase *c = data;

  lode_ops_conv2d (c->y, c->x, c->w, c->b, &c->s);
  return dot_rd (c->r, c->y, c->ny);
}

static void
run_conv_case (const LodeConvShape *shape)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (17);
  ConvCase c = { .s = *shape };
  int oh, ow;
  gsize nx, nw;
  float *dx, *dw, *db, *dx2;

  g_assert_true (lode_conv_shape_out_size (&c.s, &oh, &ow));
  nx = (gsize) c.s.n * c.s.c_in * c.s.h * c.s.w;
  nw = (gsize) c.s.c_out * (c.s.c_in / c.s.groups) * c.s.kh * c.s.kw;
  c.ny = (gsize) c.s.n * c.s.c_out * oh * ow;
  c.x = random_array (rand, nx, -1, 1);
  c.w = random_array (rand, nw, -1, 1);
  c.b = random_array (rand, c.s.c_out, -1, 1);
  c.r = random_array (rand, c.ny, -1, 1);
  c.y = g_new (float, c.ny);
  dx = g_new (float, nx);
  dw = g_new0 (float, nw);
  db = g_new0 (float, c.s.c_out);

  lode_grad_conv2d (dx, dw, db, c.r, c.x, c.w, &c.s, FALSE);
  check_fd ("conv2d dx", c.x, dx, nx, conv_loss, &c, rand);
  check_fd ("conv2d dw", c.w, dw, nw, conv_loss, &c, rand);
  check_fd ("conv2d db", c.b, db, c.s.c_out, conv_loss, &c, rand);

  /* parameter gradients add up; accumulate_dx adds to dx */
  dx2 = g_memdup2 (dx, sizeof (float) * nx);
  lode_grad_conv2d (dx2, dw, NULL, c.r, c.x, c.w, &c.s, TRUE);
  for (gsize i = 0; i < nx; i++)
    g_assert_cmpfloat_with_epsilon (dx2[i], 2 * dx[i], 1e-5);
  {
    float *dw1 = g_new0 (float, nw);
    lode_grad_conv2d (NULL, dw1, NULL, c.r, c.x, c.w, &c.s, FALSE);
    for (gsize i = 0; i < nw; i++)
      g_assert_cmpfloat_with_epsilon (dw[i], 2 * dw1[i], 1e-4);
    g_free (dw1);
  }

  g_free (c.x); g_free (c.w); g_free (c.b); g_free (c.r); g_free (c.y);
  g_free (dx); g_free (dw); g_free (db); g_free (dx2);
}

static void
test_conv2d_3x3_stride2 (void)
{
  LodeConvShape s;

  lode_conv_shape_init (&s, 2, 3, 7, 6, 4, 3, 2, 1);
  run_conv_case (&s);
}

static void
test_conv2d_7x7 (void)
{
  LodeConvShape s;

  /* the ResNet stem: 7x7, stride 2, padding 3 */
  lode_conv_shape_init (&s, 1, 2, 11, 9, 3, 7, 2, 3);
  run_conv_case (&s);
}

static void
test_conv2d_1x1 (void)
{
  LodeConvShape s;

  /* the direct (im2col-free) path, and the strided 1x1 of a downsample */
  lode_conv_shape_init (&s, 2, 5, 4, 3, 6, 1, 1, 0);
  run_conv_case (&s);
  lode_conv_shape_init (&s, 2, 5, 5, 4, 6, 1, 2, 0);
  run_conv_case (&s);
}

static void
test_conv2d_groups_dilation (void)
{
  LodeConvShape s;

  lode_conv_shape_init (&s, 1, 4, 8, 7, 6, 3, 1, 2);
  s.dil_h = s.dil_w = 2;
  s.groups = 2;
  run_conv_case (&s);
}

/* ---- batch norm ---- */

typedef struct {
  int n, c, hw;
  gboolean train;
  float *x, *w, *b, *rm, *rv, *r, *y, *mean, *invstd;
} BnCase;

static double
bn_loss (gpointer data)
{
  BnCase *c = data;
  gsize ny = (gsize) c->n * c->c * c->hw;

  if (c->train)
    lode_grad_batch_norm_train (c->y, c->x, c->w, c->b, NULL, NULL, c->mean, c->invstd,
                                c->n, c->c, c->hw, 1e-5f, 0.1f);
  else
    lode_ops_batch_norm (c->y, c->x, c->rm, c->rv, c->w, c->b, c->n, c->c, c->hw, 1e-5f);
  return dot_rd (c->r, c->y, ny);
}

static void
run_bn_case (gboolean train)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (23);
  BnCase c = { .n = 3, .c = 4, .hw = 10, .train = train };
  gsize nx = (gsize) c.n * c.c * c.hw;
  float *dx, *dw, *db, *invstd_run;

  c.x = random_array (rand, nx, -2, 2);
  c.w = random_array (rand, c.c, 0.5, 1.5);
  c.b = random_array (rand, c.c, -1, 1);
  c.rm = random_array (rand, c.c, -0.3, 0.3);
  c.rv = random_array (rand, c.c, 0.5, 1.5);
  c.r = random_array (rand, nx, -1, 1);
  c.y = g_new (float, nx);
  c.mean = g_new (float, c.c);
  c.invstd = g_new (float, c.c);
  invstd_run = g_new (float, c.c);
  dx = g_new (float, nx);
  dw = g_new0 (float, c.c);
  db = g_new0 (float, c.c);

  bn_loss (&c);
  lode_grad_invstd (invstd_run, c.rv, c.c, 1e-5f);
  lode_grad_batch_norm (dx, dw, db, c.r, c.x, train ? c.mean : c.rm,
                        train ? c.invstd : invstd_run, c.w, c.n, c.c, c.hw, train);
  check_fd ("batch norm dx", c.x, dx, nx, bn_loss, &c, rand);
  check_fd ("batch norm dweight", c.w, dw, c.c, bn_loss, &c, rand);
  check_fd ("batch norm dbias", c.b, db, c.c, bn_loss, &c, rand);

  g_free (c.x); g_free (c.w); g_free (c.b); g_free (c.rm); g_free (c.rv);
  g_free (c.r); g_free (c.y); g_free (c.mean); g_free (c.invstd); g_free (invstd_run);
  g_free (dx); g_free (dw); g_free (db);
}

static void
test_batch_norm_train (void)
{
  run_bn_case (TRUE);
}

static void
test_batch_norm_eval (void)
{
  run_bn_case (FALSE);
}

static void
test_batch_norm_stats (void)
{
  /* one channel, values 1 2 3 4 (two images of two pixels): mean 2.5,
   * biased variance 1.25, unbiased 5/3 */
  float x[4] = { 1, 2, 3, 4 }, y[4], rm = 1.0f, rv = 2.0f, mean, invstd;

  lode_grad_batch_norm_train (y, x, NULL, NULL, &rm, &rv, &mean, &invstd, 2, 1, 2, 0.0f, 0.1f);
  g_assert_cmpfloat_with_epsilon (mean, 2.5, 1e-6);
  g_assert_cmpfloat_with_epsilon (invstd, 1.0 / sqrt (1.25), 1e-6);
  g_assert_cmpfloat_with_epsilon (y[0], -1.5 / sqrt (1.25), 1e-6);
  g_assert_cmpfloat_with_epsilon (y[3], 1.5 / sqrt (1.25), 1e-6);
  /* torch: running = 0.9 running + 0.1 batch (unbiased variance) */
  g_assert_cmpfloat_with_epsilon (rm, 0.9 * 1.0 + 0.1 * 2.5, 1e-6);
  g_assert_cmpfloat_with_epsilon (rv, 0.9 * 2.0 + 0.1 * 5.0 / 3.0, 1e-6);
}

/* ---- relu, pooling, upsampling, concatenation ---- */

typedef struct {
  float *x, *r, *y;
  gint32 *arg;
  gsize nx, ny;
  int n, c, h, w;
} EltCase;

static double
relu_loss (gpointer data)
{
  EltCase *c = data;

  lode_ops_relu (c->y, c->x, c->nx);
  return dot_rd (c->r, c->y, c->nx);
}

static void
test_relu (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (5);
  EltCase c = { .nx = 200 };
  float *dx;

  c.x = random_array (rand, c.nx, -1, 1);
  for (gsize i = 0; i < c.nx; i++)
    if (fabsf (c.x[i]) < 0.05f)
      c.x[i] = c.x[i] < 0 ? -0.5f : 0.5f;
  c.r = random_array (rand, c.nx, -1, 1);
  c.y = g_new (float, c.nx);
  dx = g_new (float, c.nx);
  relu_loss (&c);
  lode_grad_relu (dx, c.r, c.y, c.nx);
  check_fd ("relu", c.x, dx, c.nx, relu_loss, &c, rand);
  for (gsize i = 0; i < c.nx; i++)
    g_assert_cmpfloat (dx[i], ==, c.x[i] > 0 ? c.r[i] : 0.0f);
  g_free (c.x); g_free (c.r); g_free (c.y); g_free (dx);
}

static double
pool_loss (gpointer data)
{
  EltCase *c = data;

  lode_grad_max_pool2d_forward (c->y, c->arg, c->x, c->n, c->c, c->h, c->w, 3, 2, 1);
  return dot_rd (c->r, c->y, c->ny);
}

static void
test_max_pool (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (9);
  EltCase c = { .n = 2, .c = 3, .h = 9, .w = 8 };
  int oh = lode_ops_pool_out_size (9, 3, 2, 1), ow = lode_ops_pool_out_size (8, 3, 2, 1);
  float *dx, *ref;

  c.nx = (gsize) c.n * c.c * c.h * c.w;
  c.ny = (gsize) c.n * c.c * oh * ow;
  /* distinct values 0.04 apart, shuffled: maxima stay maxima under +-h */
  c.x = g_new (float, c.nx);
  for (gsize i = 0; i < c.nx; i++)
    c.x[i] = 0.04f * (float) i - 4.0f;
  for (gsize i = c.nx - 1; i > 0; i--)
    {
      gsize j = (gsize) g_rand_int_range (rand, 0, (gint32) i + 1);
      float t = c.x[i]; c.x[i] = c.x[j]; c.x[j] = t;
    }
  c.r = random_array (rand, c.ny, -1, 1);
  c.y = g_new (float, c.ny);
  c.arg = g_new (gint32, c.ny);
  ref = g_new (float, c.ny);
  dx = g_new (float, c.nx);

  pool_loss (&c);
  lode_ops_max_pool2d (ref, c.x, c.n, c.c, c.h, c.w, 3, 2, 1);
  g_assert_cmpmem (ref, sizeof (float) * c.ny, c.y, sizeof (float) * c.ny);
  lode_grad_max_pool2d (dx, c.r, c.arg, c.n, c.c, c.h, c.w, oh, ow, FALSE);
  check_fd ("max pool", c.x, dx, c.nx, pool_loss, &c, rand);

  /* a tie goes to the first maximum, as in torch */
  {
    float t[4] = { 7, 7, 7, 7 }, o;
    gint32 a;
    lode_grad_max_pool2d_forward (&o, &a, t, 1, 1, 2, 2, 2, 2, 0);
    g_assert_cmpint (a, ==, 0);
  }
  g_free (c.x); g_free (c.r); g_free (c.y); g_free (c.arg); g_free (ref); g_free (dx);
}

static double
upsample_loss (gpointer data)
{
  EltCase *c = data;

  lode_grad_upsample2x_forward (c->y, c->x, c->n * c->c, c->h, c->w);
  return dot_rd (c->r, c->y, c->ny);
}

static void
test_upsample (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (11);
  EltCase c = { .n = 2, .c = 2, .h = 3, .w = 5 };
  float *dx, *ref;

  c.nx = (gsize) c.n * c.c * c.h * c.w;
  c.ny = c.nx * 4;
  c.x = random_array (rand, c.nx, -1, 1);
  c.r = random_array (rand, c.ny, -1, 1);
  c.y = g_new (float, c.ny);
  ref = g_new (float, c.ny);
  dx = g_new (float, c.nx);
  upsample_loss (&c);
  lode_ops_resize (ref, c.x, c.n * c.c, c.h, c.w, 2 * c.h, 2 * c.w, LODE_RESIZE_NEAREST);
  g_assert_cmpmem (ref, sizeof (float) * c.ny, c.y, sizeof (float) * c.ny);
  lode_grad_upsample2x (dx, c.r, c.n * c.c, c.h, c.w);
  check_fd ("upsample", c.x, dx, c.nx, upsample_loss, &c, rand);
  /* hand value: input pixel (0,0) of plane 0 collects dy (0,0) (0,1) (1,0) (1,1) */
  g_assert_cmpfloat_with_epsilon (dx[0], c.r[0] + c.r[1] + c.r[10] + c.r[11], 1e-6);
  g_free (c.x); g_free (c.r); g_free (c.y); g_free (ref); g_free (dx);
}

static void
test_concat (void)
{
  /* n 2, hw 2: a has 1 channel, b 2 channels */
  float a[4] = { 1, 2, 3, 4 }, b[8] = { 5, 6, 7, 8, 9, 10, 11, 12 }, out[12];
  float want[12] = { 1, 2, 5, 6, 7, 8, 3, 4, 9, 10, 11, 12 };
  float da[4], db[8] = { 100, 100, 100, 100, 100, 100, 100, 100 };

  lode_grad_concat_channels (out, a, 1, b, 2, 2, 2);
  g_assert_cmpmem (out, sizeof out, want, sizeof want);
  lode_grad_split_channels (da, db, out, 1, 2, 2, 2);
  g_assert_cmpmem (da, sizeof da, a, sizeof a);
  for (int i = 0; i < 8; i++)
    g_assert_cmpfloat (db[i], ==, 100 + b[i]);
}

/* ---- losses ---- */

typedef struct {
  int n, c, hw, ignore;
  float *x, *cw;
  gint16 *t;
  gboolean dice;
} LossCase;

static double
loss_loss (gpointer data)
{
  LossCase *c = data;

  if (c->dice)
    return lode_grad_dice (NULL, c->x, c->t, c->n, c->c, c->hw, c->ignore, 1.0f);
  return lode_grad_cross_entropy (NULL, c->x, c->t, c->cw, c->n, c->c, c->hw, c->ignore, 1.0f);
}

static void
run_loss_case (gboolean dice)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (31);
  LossCase c = { .n = 2, .c = 3, .hw = 12, .ignore = 255, .dice = dice };
  gsize nx = (gsize) c.n * c.c * c.hw;
  float *dx = g_new0 (float, nx), cw[3] = { 0.5f, 2.0f, 1.0f };

  c.x = random_array (rand, nx, -2, 2);
  c.cw = cw;
  c.t = g_new (gint16, c.n * c.hw);
  for (int i = 0; i < c.n * c.hw; i++)
    c.t[i] = (i % 7 == 3) ? 255 : (gint16) g_rand_int_range (rand, 0, 3);
  if (dice)
    lode_grad_dice (dx, c.x, c.t, c.n, c.c, c.hw, c.ignore, 1.0f);
  else
    lode_grad_cross_entropy (dx, c.x, c.t, c.cw, c.n, c.c, c.hw, c.ignore, 1.0f);
  check_fd (dice ? "dice" : "cross entropy", c.x, dx, nx, loss_loss, &c, rand);
  /* ignored pixels get no gradient */
  for (int i = 0; i < c.n * c.hw; i++)
    if (c.t[i] == 255)
      for (int k = 0; k < c.c; k++)
        g_assert_cmpfloat (dx[(i / c.hw) * c.c * c.hw + k * c.hw + i % c.hw], ==, 0.0f);
  g_free (c.x); g_free (c.t); g_free (dx);
}

static void
test_cross_entropy (void)
{
  run_loss_case (FALSE);
}

static void
test_cross_entropy_values (void)
{
  /* two pixels, two classes: logits (0,0) and (log 3, 0); targets 0 and 1 */
  float x[4] = { 0.0f, (float) log (3.0), 0.0f, 0.0f }, w[2] = { 1.0f, 3.0f }, d[4];
  gint16 t[2] = { 0, 1 }, t_ign[2] = { 0, -100 };
  double l;

  /* unweighted: (log 2 + log 4) / 2 */
  l = lode_grad_cross_entropy (d, x, t, NULL, 1, 2, 2, -100, 1.0f);
  g_assert_cmpfloat_with_epsilon (l, (log (2.0) + log (4.0)) / 2, 1e-6);
  /* d = (p - onehot) / 2: pixel 0 p = (.5, .5), pixel 1 p = (.75, .25) */
  g_assert_cmpfloat_with_epsilon (d[0], -0.25, 1e-6);
  g_assert_cmpfloat_with_epsilon (d[1], 0.375, 1e-6);
  g_assert_cmpfloat_with_epsilon (d[3], -0.375, 1e-6);
  /* weighted mean, as torch: (1 log 2 + 3 log 4) / (1 + 3) */
  l = lode_grad_cross_entropy (NULL, x, t, w, 1, 2, 2, -100, 1.0f);
  g_assert_cmpfloat_with_epsilon (l, (log (2.0) + 3 * log (4.0)) / 4, 1e-6);
  /* the ignored pixel leaves only the first */
  l = lode_grad_cross_entropy (d, x, t_ign, w, 1, 2, 2, -100, 1.0f);
  g_assert_cmpfloat_with_epsilon (l, log (2.0), 1e-6);
  g_assert_cmpfloat (d[1], ==, 0.0f);
}

static void
test_dice (void)
{
  run_loss_case (TRUE);
}

static void
test_dice_values (void)
{
  /* a confident right answer scores ~0, a confident wrong one ~1 */
  float good[4] = { 20, -20, -20, 20 }, bad[4] = { -20, 20, 20, -20 };
  gint16 t[2] = { 0, 1 };

  g_assert_cmpfloat (lode_grad_dice (NULL, good, t, 1, 2, 2, -1, 1.0f), <, 1e-6);
  g_assert_cmpfloat (lode_grad_dice (NULL, bad, t, 1, 2, 2, -1, 1.0f), >, 1 - 1e-6);
}

/* ---- AdamW ---- */

static void
test_adamw (void)
{
  LodeAdamW opt = { .lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f };
  float p = 1.0f, g = 0.5f, m = 0.0f, v = 0.0f;
  double pd = 1.0, md = 0.0, vd = 0.0;
  LodeAdamW def;

  /* step 1 by hand: p = 0.999 - 0.1/0.1 * 0.05 / (sqrt(0.00025)/sqrt(0.001)) */
  lode_grad_adamw (&p, &g, &m, &v, 1, &opt, 1);
  g_assert_cmpfloat_with_epsilon (p, 0.899, 1e-6);
  pd = 0.899; md = 0.05; vd = 0.00025;
  /* later steps against the same recurrence in double */
  for (int step = 2; step <= 20; step++)
    {
      double gs = sin (step);
      float gf = (float) gs;
      lode_grad_adamw (&p, &gf, &m, &v, 1, &opt, step);
      pd *= 1 - 0.1 * 0.01;
      md = 0.9 * md + 0.1 * gf;
      vd = 0.999 * vd + 0.001 * (double) gf * gf;
      pd -= 0.1 / (1 - pow (0.9, step)) * md
            / (sqrt (vd) / sqrt (1 - pow (0.999, step)) + 1e-8);
    }
  g_assert_cmpfloat_with_epsilon (p, pd, 1e-5);

  lode_adamw_init_defaults (&def);
  g_assert_cmpfloat (def.lr, ==, 1e-3f);
  g_assert_cmpfloat (def.weight_decay, ==, 1e-2f);
}

/* ---- transformer layers (SAM2 fine-tuning) ---- */

typedef enum {
  T_LINEAR, T_LAYER_NORM, T_LAYER_NORM2D, T_GELU, T_ATTENTION, T_CONVT, T_RESIZE, T_BCE,
} TKind;

typedef struct {
  TKind kind;
  int a, b, c, d, e;          /* sizes, per kind */
  float *x, *w, *bias, *k, *v, *r, *y;
  guint8 *t;
  gsize nx, ny;
} TCase;

static double
t_loss (gpointer data)
{
  TCase *c = data;
  LodeConvShape s;

  switch (c->kind)
    {
    case T_LINEAR:        /* rows a, in b, out c */
      lode_ops_linear (c->y, c->x, c->w, c->bias, c->a, c->b, c->c);
      break;
    case T_LAYER_NORM:    /* rows a, c b */
      lode_ops_layer_norm (c->y, c->x, c->w, c->bias, c->a, c->b, 1e-5f);
      break;
    case T_LAYER_NORM2D:  /* n a, c b, hw c */
      lode_ops_layer_norm2d (c->y, c->x, c->w, c->bias, c->a, c->b, c->c, 1e-6f);
      break;
    case T_GELU:
      lode_ops_gelu (c->y, c->x, c->nx);
      break;
    case T_ATTENTION:     /* bh a, lq b, lk c, d d */
      lode_ops_attention (c->y, c->x, c->k, c->v, 1, c->a, c->b, c->c, c->d);
      break;
    case T_CONVT:         /* c_in a, c_out b, h c, w d */
      lode_conv_shape_init (&s, 1, c->a, c->c, c->d, c->b, 2, 2, 0);
      lode_ops_conv_transpose2d (c->y, c->x, c->w, c->bias, &s);
      break;
    case T_RESIZE:        /* nc a, h b, w c, out_h d, out_w e */
      lode_ops_resize (c->y, c->x, c->a, c->b, c->c, c->d, c->e, LODE_RESIZE_BILINEAR);
      break;
    case T_BCE:
      return lode_grad_bce_sigmoid (NULL, c->x, c->t, c->nx, 1e-5, 1.0f);
    }
  return dot_rd (c->r, c->y, c->ny);
}

static void
test_linear_backward (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (31);
  TCase c = { .kind = T_LINEAR, .a = 5, .b = 7, .c = 4 };
  g_autofree float *dx = g_new (float, 35), *dw = g_new0 (float, 28), *db = g_new0 (float, 4);

  c.nx = 35;
  c.ny = 20;
  c.x = random_array (rand, 35, -1, 1);
  c.w = random_array (rand, 28, -1, 1);
  c.bias = random_array (rand, 4, -1, 1);
  c.r = random_array (rand, 20, -1, 1);
  c.y = g_new (float, 20);
  lode_grad_linear (dx, dw, db, c.r, c.x, c.w, 5, 7, 4);
  check_fd ("linear dx", c.x, dx, 35, t_loss, &c, rand);
  check_fd ("linear dw", c.w, dw, 28, t_loss, &c, rand);
  check_fd ("linear db", c.bias, db, 4, t_loss, &c, rand);
  g_free (c.x); g_free (c.w); g_free (c.bias); g_free (c.r); g_free (c.y);
}

static void
run_layer_norm (TKind kind)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (37);
  TCase c = { .kind = kind, .a = kind == T_LAYER_NORM ? 6 : 2, .b = 8, .c = 5 };
  gsize n = kind == T_LAYER_NORM ? 6 * 8 : 2 * 8 * 5;
  g_autofree float *dx = g_new (float, n), *dw = g_new0 (float, 8), *db = g_new0 (float, 8);

  c.nx = c.ny = n;
  c.x = random_array (rand, n, -2, 2);
  c.w = random_array (rand, 8, 0.5, 1.5);
  c.bias = random_array (rand, 8, -1, 1);
  c.r = random_array (rand, n, -1, 1);
  c.y = g_new (float, n);
  if (kind == T_LAYER_NORM)
    lode_grad_layer_norm (dx, dw, db, c.r, c.x, c.w, 6, 8, 1e-5f);
  else
    lode_grad_layer_norm2d (dx, dw, db, c.r, c.x, c.w, 2, 8, 5, 1e-6f);
  check_fd ("layer norm dx", c.x, dx, n, t_loss, &c, rand);
  check_fd ("layer norm dweight", c.w, dw, 8, t_loss, &c, rand);
  check_fd ("layer norm dbias", c.bias, db, 8, t_loss, &c, rand);
  g_free (c.x); g_free (c.w); g_free (c.bias); g_free (c.r); g_free (c.y);
}

static void
test_layer_norm_backward (void)
{
  run_layer_norm (T_LAYER_NORM);
  run_layer_norm (T_LAYER_NORM2D);
}

static void
test_gelu_backward (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (41);
  TCase c = { .kind = T_GELU };
  g_autofree float *dx = g_new (float, 64);

  c.nx = c.ny = 64;
  c.x = random_array (rand, 64, -3, 3);
  c.r = random_array (rand, 64, -1, 1);
  c.y = g_new (float, 64);
  lode_grad_gelu (dx, c.r, c.x, 64);
  check_fd ("gelu", c.x, dx, 64, t_loss, &c, rand);
  g_free (c.x); g_free (c.r); g_free (c.y);
}

static void
test_attention_backward (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (43);
  TCase c = { .kind = T_ATTENTION, .a = 2, .b = 3, .c = 5, .d = 4 };
  gsize nq = 2 * 3 * 4, nk = 2 * 5 * 4;
  g_autofree float *out = g_new (float, nq), *p = g_new (float, 2 * 3 * 5);
  g_autofree float *dq = g_new (float, nq), *dk = g_new (float, nk), *dv = g_new (float, nk);

  c.ny = nq;
  c.x = random_array (rand, nq, -1.5, 1.5);
  c.k = random_array (rand, nk, -1.5, 1.5);
  c.v = random_array (rand, nk, -1, 1);
  c.r = random_array (rand, nq, -1, 1);
  c.y = g_new (float, nq);
  lode_grad_attention_forward (out, p, c.x, c.k, c.v, 2, 3, 5, 4);
  t_loss (&c);
  for (gsize i = 0; i < nq; i++)
    g_assert_cmpfloat_with_epsilon (out[i], c.y[i], 1e-5);
  lode_grad_attention (dq, dk, dv, c.r, c.x, c.k, c.v, p, 2, 3, 5, 4);
  check_fd ("attention dq", c.x, dq, nq, t_loss, &c, rand);
  check_fd ("attention dk", c.k, dk, nk, t_loss, &c, rand);
  check_fd ("attention dv", c.v, dv, nk, t_loss, &c, rand);
  g_free (c.x); g_free (c.k); g_free (c.v); g_free (c.r); g_free (c.y);
}

static void
test_conv_transpose2x2_backward (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (47);
  TCase c = { .kind = T_CONVT, .a = 3, .b = 2, .c = 3, .d = 4 };
  gsize nx = 3 * 12, nw = 3 * 2 * 4;
  g_autofree float *dx = g_new (float, nx), *dw = g_new0 (float, nw), *db = g_new0 (float, 2);

  c.ny = 2 * 6 * 8;
  c.x = random_array (rand, nx, -1, 1);
  c.w = random_array (rand, nw, -1, 1);
  c.bias = random_array (rand, 2, -1, 1);
  c.r = random_array (rand, c.ny, -1, 1);
  c.y = g_new (float, c.ny);
  lode_grad_conv_transpose2x2 (dx, dw, db, c.r, c.x, c.w, 3, 2, 3, 4);
  check_fd ("conv transpose 2x2 dx", c.x, dx, nx, t_loss, &c, rand);
  check_fd ("conv transpose 2x2 dw", c.w, dw, nw, t_loss, &c, rand);
  check_fd ("conv transpose 2x2 db", c.bias, db, 2, t_loss, &c, rand);
  g_free (c.x); g_free (c.w); g_free (c.bias); g_free (c.r); g_free (c.y);
}

static void
test_resize_bilinear_backward (void)
{
  /* down (SAM2's 256 -> patch) and up, odd sizes */
  const int sizes[2][4] = { { 8, 8, 5, 3 }, { 4, 5, 9, 7 } };

  for (int k = 0; k < 2; k++)
    {
      g_autoptr(GRand) rand = g_rand_new_with_seed (53);
      TCase c = { .kind = T_RESIZE, .a = 2, .b = sizes[k][0], .c = sizes[k][1],
                  .d = sizes[k][2], .e = sizes[k][3] };
      gsize nx = 2 * (gsize) c.b * c.c;
      g_autofree float *dx = g_new (float, nx);

      c.ny = 2 * (gsize) c.d * c.e;
      c.x = random_array (rand, nx, -1, 1);
      c.r = random_array (rand, c.ny, -1, 1);
      c.y = g_new (float, c.ny);
      lode_grad_resize_bilinear (dx, c.r, 2, c.b, c.c, c.d, c.e);
      check_fd ("bilinear resize", c.x, dx, nx, t_loss, &c, rand);
      g_free (c.x); g_free (c.r); g_free (c.y);
    }
}

static void
test_bce_sigmoid (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (59);
  TCase c = { .kind = T_BCE };
  g_autofree float *dz = g_new (float, 40);
  guint8 t[40];
  float z0 = 0.0f;
  guint8 one = 1;

  for (int i = 0; i < 40; i++)
    t[i] = (guint8) g_rand_int_range (rand, 0, 2);
  c.nx = 40;
  c.t = t;
  c.x = random_array (rand, 40, -4, 4);
  lode_grad_bce_sigmoid (dz, c.x, t, 40, 1e-5, 1.0f);
  check_fd ("bce", c.x, dz, 40, t_loss, &c, rand);
  /* by hand: p = 1/2 on a positive pixel gives -log(0.5 + 1e-5) */
  g_assert_cmpfloat_with_epsilon (lode_grad_bce_sigmoid (NULL, &z0, &one, 1, 1e-5, 1.0f),
                                  -log (0.5 + 1e-5), 1e-9);
  g_free (c.x);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/grad/conv2d/3x3-stride2", test_conv2d_3x3_stride2);
  g_test_add_func ("/grad/conv2d/7x7", test_conv2d_7x7);
  g_test_add_func ("/grad/conv2d/1x1", test_conv2d_1x1);
  g_test_add_func ("/grad/conv2d/groups-dilation", test_conv2d_groups_dilation);
  g_test_add_func ("/grad/batch-norm/train", test_batch_norm_train);
  g_test_add_func ("/grad/batch-norm/eval", test_batch_norm_eval);
  g_test_add_func ("/grad/batch-norm/stats", test_batch_norm_stats);
  g_test_add_func ("/grad/relu", test_relu);
  g_test_add_func ("/grad/max-pool", test_max_pool);
  g_test_add_func ("/grad/upsample", test_upsample);
  g_test_add_func ("/grad/concat", test_concat);
  g_test_add_func ("/grad/cross-entropy", test_cross_entropy);
  g_test_add_func ("/grad/cross-entropy/values", test_cross_entropy_values);
  g_test_add_func ("/grad/dice", test_dice);
  g_test_add_func ("/grad/dice/values", test_dice_values);
  g_test_add_func ("/grad/adamw", test_adamw);
  g_test_add_func ("/grad/linear", test_linear_backward);
  g_test_add_func ("/grad/layer-norm", test_layer_norm_backward);
  g_test_add_func ("/grad/gelu", test_gelu_backward);
  g_test_add_func ("/grad/attention", test_attention_backward);
  g_test_add_func ("/grad/conv-transpose-2x2", test_conv_transpose2x2_backward);
  g_test_add_func ("/grad/resize-bilinear", test_resize_bilinear_backward);
  g_test_add_func ("/grad/bce-sigmoid", test_bce_sigmoid);
  return g_test_run ();
}
