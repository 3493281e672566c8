/* lode-grad.c: the CPU backward passes (see lode-grad.h). Products go to
 * OpenBLAS; per-channel and element-wise loops are split with OpenMP when
 * the build has it, each thread owning whole output channels or planes so
 * that no two threads write the same value. Sums over many values (batch
 * norm statistics, losses) accumulate in double. */
#define G_LOG_DOMAIN "lode-model"

#include "config.h"

#include <math.h>
#include <string.h>

#include "lode-grad.h"
#include "lode-parallel.h"

/* im2col scratch: 16 MiB, as lode_ops_conv2d. */
#define SCRATCH_FLOATS (1 << 22)

/* ---- convolution -------------------------------------------------------- */

/* dx[ci] += the columns dcol[kdim, np] scattered back to the pixels they
 * were gathered from (the transpose of im2col). One thread per channel. */
static void
col2im_add (float               *dx,
            const float         *dcol,
            const LodeConvShape *s,
            int                  cig,
            int                  ow,
            int                  p0,
            int                  np)
{
  PARALLEL_FOR ((gint64) cig * s->kh * s->kw * np)
  for (int ci = 0; ci < cig; ci++)
    {
      float *plane = dx + (gsize) ci * s->h * s->w;

      for (int ky = 0; ky < s->kh; ky++)
        for (int kx = 0; kx < s->kw; kx++)
          {
            const float *src = dcol + ((gsize) (ci * s->kh + ky) * s->kw + kx) * np;
            int oy = p0 / ow, ox = p0 % ow;

            for (int j = 0; j < np; oy++, ox = 0)
              {
                int iy = oy * s->stride_h - s->pad_h + ky * s->dil_h;
                int run = MIN (ow - ox, np - j);

                if (iy >= 0 && iy < s->h)
                  {
                    float *dst = plane + (gsize) iy * s->w;
                    for (int e = 0; e < run; e++)
                      {
                        int ix = (ox + e) * s->stride_w - s->pad_w + kx * s->dil_w;
                        if (ix >= 0 && ix < s->w)
                          dst[ix] += src[j + e];
                      }
                  }
                j += run;
              }
          }
    }
}

void
lode_grad_conv2d (float               *dx,
                  float               *dweight,
                  float               *dbias,
                  const float         *dy,
                  const float         *x,
                  const float         *weight,
                  const LodeConvShape *s,
                  gboolean             accumulate_dx)
{
  int oh, ow, cig, cog, kdim, chunk;
  gsize npix, ipix;
  gboolean direct;
  float *col = NULL, *dcol = NULL;

  g_return_if_fail (dy != NULL && x != NULL && weight != NULL);
  g_return_if_fail (lode_conv_shape_out_size (s, &oh, &ow));

  cig = s->c_in / s->groups;
  cog = s->c_out / s->groups;
  kdim = cig * s->kh * s->kw;
  npix = (gsize) oh * ow;
  ipix = (gsize) s->h * s->w;
  direct = s->kh == 1 && s->kw == 1 && s->stride_h == 1 && s->stride_w == 1
           && s->pad_h == 0 && s->pad_w == 0;
  chunk = (int) MIN (npix, MAX (1, SCRATCH_FLOATS / kdim));

  if (dbias != NULL)
    for (int i = 0; i < s->n; i++)
      {
        PARALLEL_FOR ((gint64) s->c_out * npix)
        for (int co = 0; co < s->c_out; co++)
          {
            const float *p = dy + ((gsize) i * s->c_out + co) * npix;
            double acc = 0.0;
            for (gsize j = 0; j < npix; j++)
              acc += p[j];
            dbias[co] += (float) acc;
          }
      }

  if (dx != NULL && !accumulate_dx)
    memset (dx, 0, sizeof (float) * s->n * s->c_in * ipix);
  if (dx == NULL && dweight == NULL)
    return;
  if (!direct)
    {
      col = g_new (float, (gsize) kdim * chunk);
      dcol = g_new (float, (gsize) kdim * chunk);
    }

  for (int i = 0; i < s->n; i++)
    for (int g = 0; g < s->groups; g++)
      {
        const float *xg = x + ((gsize) i * s->c_in + (gsize) g * cig) * ipix;
        const float *wg = weight + (gsize) g * cog * kdim;
        const float *dyg = dy + ((gsize) i * s->c_out + (gsize) g * cog) * npix;
        float *dxg = dx ? dx + ((gsize) i * s->c_in + (gsize) g * cig) * ipix : NULL;
        float *dwg = dweight ? dweight + (gsize) g * cog * kdim : NULL;

        if (direct)
          {
            /* dw[cog, cig] += dy[cog, npix] @ x[cig, npix]^T */
            if (dwg)
              lode_ops_gemm (FALSE, TRUE, cog, kdim, (int) npix, 1.0f, dyg, xg, 1.0f, dwg);
            /* dx[cig, npix] += w[cog, cig]^T @ dy[cog, npix] */
            if (dxg)
              lode_ops_gemm (TRUE, FALSE, kdim, (int) npix, cog, 1.0f, wg, dyg, 1.0f, dxg);
            continue;
          }
        for (gsize p0 = 0; p0 < npix; p0 += chunk)
          {
            int np = (int) MIN ((gsize) chunk, npix - p0);

            if (dwg)
              {
                lode_ops_im2col (col, xg, s, (int) p0, np);
                /* dw[cog, kdim] += dy[:, p0:p0+np] @ col[kdim, np]^T */
                lode_ops_gemm_ld (FALSE, TRUE, cog, kdim, np, 1.0f, dyg + p0, (int) npix, col, np,
                                  1.0f, dwg, kdim);
              }
            if (dxg)
              {
                /* dcol[kdim, np] = w[cog, kdim]^T @ dy[:, p0:p0+np] */
                lode_ops_gemm_ld (TRUE, FALSE, kdim, np, cog, 1.0f, wg, kdim, dyg + p0, (int) npix,
                                  0.0f, dcol, np);
                col2im_add (dxg, dcol, s, cig, ow, (int) p0, np);
              }
          }
      }
  g_free (col);
  g_free (dcol);
}

/* ---- batch normalisation ------------------------------------------------ */

void
lode_grad_invstd (float       *invstd,
                  const float *var,
                  int          c,
                  float        eps)
{
  for (int j = 0; j < c; j++)
    invstd[j] = (float) (1.0 / sqrt ((double) var[j] + eps));
}

void
lode_grad_batch_norm_train (float       *out,
                            const float *in,
                            const float *weight,
                            const float *bias,
                            float       *running_mean,
                            float       *running_var,
                            float       *save_mean,
                            float       *save_invstd,
                            int          n,
                            int          c,
                            int          hw,
                            float        eps,
                            float        momentum)
{
  gint64 count = (gint64) n * hw;

  g_return_if_fail (out != NULL && in != NULL && save_mean != NULL && save_invstd != NULL);
  g_return_if_fail (n > 0 && c >= 0 && hw > 0);

  PARALLEL_FOR ((gint64) c * count)
  for (int j = 0; j < c; j++)
    {
      double sum = 0.0, sq = 0.0, mean, var, invstd, scale, shift;

      for (int i = 0; i < n; i++)
        {
          const float *p = in + ((gsize) i * c + j) * hw;
          for (int q = 0; q < hw; q++)
            sum += p[q];
        }
      mean = sum / count;
      for (int i = 0; i < n; i++)
        {
          const float *p = in + ((gsize) i * c + j) * hw;
          for (int q = 0; q < hw; q++)
            {
              double d = p[q] - mean;
              sq += d * d;
            }
        }
      var = sq / count;
      invstd = 1.0 / sqrt (var + eps);
      save_mean[j] = (float) mean;
      save_invstd[j] = (float) invstd;
      if (running_mean)
        running_mean[j] = (float) ((1.0 - momentum) * running_mean[j] + momentum * mean);
      if (running_var)
        running_var[j] = (float) ((1.0 - momentum) * running_var[j]
                                  + momentum * (count > 1 ? sq / (count - 1) : var));
      scale = invstd * (weight ? weight[j] : 1.0f);
      shift = (bias ? bias[j] : 0.0f) - mean * scale;
      for (int i = 0; i < n; i++)
        {
          const float *p = in + ((gsize) i * c + j) * hw;
          float *o = out + ((gsize) i * c + j) * hw;
          for (int q = 0; q < hw; q++)
            o[q] = (float) (p[q] * scale + shift);
        }
    }
}

void
lode_grad_batch_norm (float       *dx,
                      float       *dweight,
                      float       *dbias,
                      const float *dy,
                      const float *x,
                      const float *mean,
                      const float *invstd,
                      const float *weight,
                      int          n,
                      int          c,
                      int          hw,
                      gboolean     batch_stats)
{
  gint64 count = (gint64) n * hw;

  g_return_if_fail (dy != NULL && x != NULL && mean != NULL && invstd != NULL);

  PARALLEL_FOR ((gint64) c * count)
  for (int j = 0; j < c; j++)
    {
      double sum_dy = 0.0, sum_dy_xhat = 0.0;
      double m = mean[j], is = invstd[j], g = weight ? weight[j] : 1.0f;

      for (int i = 0; i < n; i++)
        {
          const float *py = dy + ((gsize) i * c + j) * hw;
          const float *px = x + ((gsize) i * c + j) * hw;
          for (int q = 0; q < hw; q++)
            {
              sum_dy += py[q];
              sum_dy_xhat += py[q] * ((px[q] - m) * is);
            }
        }
      if (dweight)
        dweight[j] += (float) sum_dy_xhat;
      if (dbias)
        dbias[j] += (float) sum_dy;
      if (dx == NULL)
        continue;
      for (int i = 0; i < n; i++)
        {
          const float *py = dy + ((gsize) i * c + j) * hw;
          const float *px = x + ((gsize) i * c + j) * hw;
          float *pd = dx + ((gsize) i * c + j) * hw;

          if (batch_stats)
            {
              /* dx = g is / M (M dy - sum dy - xhat sum(dy xhat)) */
              double a = g * is, mdy = sum_dy / count, mdyx = sum_dy_xhat / count;
              for (int q = 0; q < hw; q++)
                {
                  double xhat = (px[q] - m) * is;
                  pd[q] = (float) (a * (py[q] - mdy - xhat * mdyx));
                }
            }
          else
            {
              float a = (float) (g * is);
              for (int q = 0; q < hw; q++)
                pd[q] = py[q] * a;
            }
        }
    }
}

/* ---- element-wise, pooling, resizing, concatenation --------------------- */

VECTOR_CLONES static void
relu_backward_span (float *dx, const float *dy, const float *y, gsize n)
{
  SIMD_FOR
  for (gsize i = 0; i < n; i++)
    dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void
lode_grad_relu (float       *dx,
                const float *dy,
                const float *y,
                gsize        count)
{
  gint64 n_chunks = ((gint64) count + SPAN_CHUNK - 1) / SPAN_CHUNK;

  g_return_if_fail (dx != NULL && dy != NULL && y != NULL);

  PARALLEL_FOR (count)
  for (gint64 k = 0; k < n_chunks; k++)
    {
      gsize o = (gsize) k * SPAN_CHUNK;

      relu_backward_span (dx + o, dy + o, y + o, MIN ((gsize) SPAN_CHUNK, count - o));
    }
}

void
lode_grad_max_pool2d_forward (float       *out,
                              gint32      *argmax,
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

  g_return_if_fail (out != NULL && argmax != NULL && in != NULL);

  PARALLEL_FOR ((gint64) n * c * oh * ow * kernel * kernel)
  for (gint64 t = 0; t < (gint64) n * c; t++)
    {
      const float *x = in + t * h * w;
      float *y = out + t * oh * ow;
      gint32 *a = argmax + t * oh * ow;

      for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
          {
            float m = -INFINITY;
            gint32 at = -1;

            for (int ky = 0; ky < kernel; ky++)
              {
                int iy = oy * stride - pad + ky;
                if (iy < 0 || iy >= h)
                  continue;
                for (int kx = 0; kx < kernel; kx++)
                  {
                    int ix = ox * stride - pad + kx;
                    if (ix < 0 || ix >= w)
                      continue;
                    if (at < 0 || x[(gsize) iy * w + ix] > m || isnan (x[(gsize) iy * w + ix]))
                      {
                        m = x[(gsize) iy * w + ix];
                        at = iy * w + ix;
                        if (isnan (m))
                          goto found;
                      }
                  }
              }
          found:
            y[(gsize) oy * ow + ox] = m;
            a[(gsize) oy * ow + ox] = at;
          }
    }
}

void
lode_grad_max_pool2d (float        *dx,
                      const float  *dy,
                      const gint32 *argmax,
                      int           n,
                      int           c,
                      int           h,
                      int           w,
                      int           oh,
                      int           ow,
                      gboolean      accumulate)
{
  g_return_if_fail (dx != NULL && dy != NULL && argmax != NULL);

  PARALLEL_FOR ((gint64) n * c * h * w)
  for (gint64 t = 0; t < (gint64) n * c; t++)
    {
      float *plane = dx + t * h * w;
      const float *g = dy + t * oh * ow;
      const gint32 *a = argmax + t * oh * ow;

      if (!accumulate)
        memset (plane, 0, sizeof (float) * h * w);
      for (gint64 q = 0; q < (gint64) oh * ow; q++)
        if (a[q] >= 0)
          plane[a[q]] += g[q];
    }
}

void
lode_grad_upsample2x_forward (float       *out,
                              const float *in,
                              int          nc,
                              int          h,
                              int          w)
{
  g_return_if_fail (out != NULL && in != NULL);

  PARALLEL_FOR ((gint64) nc * h * w * 4)
  for (gint64 t = 0; t < nc; t++)
    {
      const float *x = in + t * h * w;
      float *y = out + t * h * w * 4;

      for (int iy = 0; iy < h; iy++)
        {
          float *r0 = y + (gsize) (2 * iy) * 2 * w;
          for (int ix = 0; ix < w; ix++)
            r0[2 * ix] = r0[2 * ix + 1] = x[(gsize) iy * w + ix];
          memcpy (r0 + 2 * w, r0, sizeof (float) * 2 * w);
        }
    }
}

void
lode_grad_upsample2x (float       *dx,
                      const float *dy,
                      int          nc,
                      int          h,
                      int          w)
{
  g_return_if_fail (dx != NULL && dy != NULL);

  PARALLEL_FOR ((gint64) nc * h * w * 4)
  for (gint64 t = 0; t < nc; t++)
    {
      const float *g = dy + t * h * w * 4;
      float *d = dx + t * h * w;

      for (int iy = 0; iy < h; iy++)
        {
          const float *r0 = g + (gsize) (2 * iy) * 2 * w;
          const float *r1 = r0 + 2 * w;
          for (int ix = 0; ix < w; ix++)
            d[(gsize) iy * w + ix] = (r0[2 * ix] + r0[2 * ix + 1])
                                     + (r1[2 * ix] + r1[2 * ix + 1]);
        }
    }
}

void
lode_grad_concat_channels (float       *out,
                           const float *a,
                           int          ca,
                           const float *b,
                           int          cb,
                           int          n,
                           int          hw)
{
  g_return_if_fail (out != NULL && a != NULL && (b != NULL || cb == 0));

  for (int i = 0; i < n; i++)
    {
      float *o = out + (gsize) i * (ca + cb) * hw;
      memcpy (o, a + (gsize) i * ca * hw, sizeof (float) * ca * hw);
      if (cb > 0)
        memcpy (o + (gsize) ca * hw, b + (gsize) i * cb * hw, sizeof (float) * cb * hw);
    }
}

void
lode_grad_split_channels (float       *da,
                          float       *db,
                          const float *dout,
                          int          ca,
                          int          cb,
                          int          n,
                          int          hw)
{
  g_return_if_fail (dout != NULL);

  for (int i = 0; i < n; i++)
    {
      const float *o = dout + (gsize) i * (ca + cb) * hw;
      if (da)
        memcpy (da + (gsize) i * ca * hw, o, sizeof (float) * ca * hw);
      if (db && cb > 0)
        lode_ops_add (db + (gsize) i * cb * hw, db + (gsize) i * cb * hw,
                      o + (gsize) ca * hw, (gsize) cb * hw);
    }
}

/* ---- losses ------------------------------------------------------------- */

/* The softmax of the c logits of pixel q of image i (stride hw) into p[c]. */
static void
pixel_softmax (double      *p,
               const float *x,
               int          c,
               int          hw)
{
  double mx = -INFINITY, sum = 0.0;

  for (int k = 0; k < c; k++)
    mx = MAX (mx, x[(gsize) k * hw]);
  for (int k = 0; k < c; k++)
    {
      p[k] = exp (x[(gsize) k * hw] - mx);
      sum += p[k];
    }
  for (int k = 0; k < c; k++)
    p[k] /= sum;
}

static inline gboolean
target_valid (int t, int c, int ignore_index)
{
  return t != ignore_index && t >= 0 && t < c;
}

double
lode_grad_cross_entropy (float        *dlogits,
                         const float  *logits,
                         const gint16 *target,
                         const float  *class_weight,
                         int           n,
                         int           c,
                         int           hw,
                         int           ignore_index,
                         float         scale)
{
  double loss = 0.0, wsum = 0.0;
  double *p;

  g_return_val_if_fail (logits != NULL && target != NULL && c > 0, 0.0);

  for (gint64 q = 0; q < (gint64) n * hw; q++)
    {
      int t = target[q];
      if (target_valid (t, c, ignore_index))
        wsum += class_weight ? class_weight[t] : 1.0;
    }

  p = g_new (double, c);
  for (int i = 0; i < n; i++)
    for (int q = 0; q < hw; q++)
      {
        const float *x = logits + (gsize) i * c * hw + q;
        int t = target[(gsize) i * hw + q];
        double wt;

        if (!target_valid (t, c, ignore_index) || wsum <= 0.0)
          {
            if (dlogits)
              for (int k = 0; k < c; k++)
                dlogits[(gsize) i * c * hw + (gsize) k * hw + q] = 0.0f;
            continue;
          }
        wt = class_weight ? class_weight[t] : 1.0;
        pixel_softmax (p, x, c, hw);
        loss += wt * -log (MAX (p[t], 1e-300));
        if (dlogits)
          for (int k = 0; k < c; k++)
            dlogits[(gsize) i * c * hw + (gsize) k * hw + q]
              = (float) (scale * wt * (p[k] - (k == t)) / wsum);
      }
  g_free (p);
  return wsum > 0.0 ? loss / wsum : 0.0;
}

double
lode_grad_dice (float        *dlogits,
                const float  *logits,
                const gint16 *target,
                int           n,
                int           c,
                int           hw,
                int           ignore_index,
                float         scale)
{
  const double eps = 1e-7;
  double *inter, *card, *present, *p, *g, loss = 0.0;

  g_return_val_if_fail (logits != NULL && target != NULL && c > 0, 0.0);

  inter = g_new0 (double, c);
  card = g_new0 (double, c);
  present = g_new0 (double, c);
  p = g_new (double, c);
  g = g_new (double, c);
  for (int i = 0; i < n; i++)
    for (int q = 0; q < hw; q++)
      {
        int t = target[(gsize) i * hw + q];
        if (!target_valid (t, c, ignore_index))
          continue;
        pixel_softmax (p, logits + (gsize) i * c * hw + q, c, hw);
        for (int k = 0; k < c; k++)
          card[k] += p[k];
        inter[t] += p[t];
        card[t] += 1.0;
        present[t] += 1.0;
      }
  for (int k = 0; k < c; k++)
    if (present[k] > 0.0)
      loss += 1.0 - 2.0 * inter[k] / MAX (card[k], eps);
  loss /= c;

  if (dlogits)
    for (int i = 0; i < n; i++)
      for (int q = 0; q < hw; q++)
        {
          int t = target[(gsize) i * hw + q];
          double dot = 0.0;

          if (!target_valid (t, c, ignore_index))
            continue;
          pixel_softmax (p, logits + (gsize) i * c * hw + q, c, hw);
          /* g_k = dloss/dp_k; then the softmax's Jacobian */
          for (int k = 0; k < c; k++)
            {
              g[k] = 0.0;
              if (present[k] > 0.0 && card[k] > eps)
                g[k] = -(2.0 * (k == t) / card[k]
                         - 2.0 * inter[k] / (card[k] * card[k])) / c;
              dot += g[k] * p[k];
            }
          for (int k = 0; k < c; k++)
            dlogits[(gsize) i * c * hw + (gsize) k * hw + q]
              += (float) (scale * p[k] * (g[k] - dot));
        }
  g_free (inter);
  g_free (card);
  g_free (present);
  g_free (p);
  g_free (g);
  return loss;
}

/* ---- transformer layers ------------------------------------------------- */

void
lode_grad_linear (float       *dx,
                  float       *dweight,
                  float       *dbias,
                  const float *dy,
                  const float *x,
                  const float *weight,
                  int          rows,
                  int          in_f,
                  int          out_f)
{
  if (dweight)
    lode_ops_gemm (TRUE, FALSE, out_f, in_f, rows, 1.0f, dy, x, 1.0f, dweight);
  if (dbias)
    for (int r = 0; r < rows; r++)
      for (int o = 0; o < out_f; o++)
        dbias[o] += dy[(gsize) r * out_f + o];
  if (dx)
    lode_ops_gemm (FALSE, FALSE, rows, in_f, out_f, 1.0f, dy, weight, 0.0f, dx);
}

/* Layer norm backward over c features spaced fs apart, rows spaced rs
 * apart: dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy * weight. */
static void
layer_norm_backward (float *dx, float *dweight, float *dbias, const float *dy, const float *x,
                     const float *weight, int rows, int c, gsize rs, gsize fs, float eps)
{
  for (int r = 0; r < rows; r++)
    {
      const float *xr = x + r * rs, *dyr = dy + r * rs;
      float *dxr = dx + r * rs;
      double mean = 0.0, var = 0.0, m1 = 0.0, m2 = 0.0;
      float rstd;

      for (int j = 0; j < c; j++)
        mean += xr[j * fs];
      mean /= c;
      for (int j = 0; j < c; j++)
        var += (xr[j * fs] - mean) * (xr[j * fs] - mean);
      var /= c;
      rstd = (float) (1.0 / sqrt (var + eps));
      for (int j = 0; j < c; j++)
        {
          float xh = (float) (xr[j * fs] - mean) * rstd;
          float g = dyr[j * fs] * (weight ? weight[j] : 1.0f);

          if (dweight)
            dweight[j] += dyr[j * fs] * xh;
          if (dbias)
            dbias[j] += dyr[j * fs];
          m1 += g;
          m2 += (double) g * xh;
        }
      m1 /= c;
      m2 /= c;
      for (int j = 0; j < c; j++)
        {
          float xh = (float) (xr[j * fs] - mean) * rstd;
          float g = dyr[j * fs] * (weight ? weight[j] : 1.0f);

          dxr[j * fs] = rstd * (g - (float) m1 - xh * (float) m2);
        }
    }
}

void
lode_grad_layer_norm (float       *dx,
                      float       *dweight,
                      float       *dbias,
                      const float *dy,
                      const float *x,
                      const float *weight,
                      int          rows,
                      int          c,
                      float        eps)
{
  layer_norm_backward (dx, dweight, dbias, dy, x, weight, rows, c, (gsize) c, 1, eps);
}

void
lode_grad_layer_norm2d (float       *dx,
                        float       *dweight,
                        float       *dbias,
                        const float *dy,
                        const float *x,
                        const float *weight,
                        int          n,
                        int          c,
                        int          hw,
                        float        eps)
{
  for (int b = 0; b < n; b++)
    {
      gsize off = (gsize) b * c * hw;

      layer_norm_backward (dx + off, dweight, dbias, dy + off, x + off, weight, hw, c, 1, (gsize) hw, eps);
    }
}

void
lode_grad_gelu (float       *dx,
                const float *dy,
                const float *x,
                gsize        count)
{
  for (gsize i = 0; i < count; i++)
    {
      double v = x[i];
      double cdf = 0.5 * (1.0 + erf (v / G_SQRT2));
      double pdf = exp (-0.5 * v * v) / sqrt (2.0 * G_PI);

      dx[i] = dy[i] * (float) (cdf + v * pdf);
    }
}

void
lode_grad_attention_forward (float       *out,
                             float       *probs,
                             const float *q,
                             const float *k,
                             const float *v,
                             int          bh,
                             int          lq,
                             int          lk,
                             int          d)
{
  float scale = 1.0f / sqrtf ((float) d);

  for (int b = 0; b < bh; b++)
    {
      float *p = probs + (gsize) b * lq * lk;

      lode_ops_gemm (FALSE, TRUE, lq, lk, d, scale, q + (gsize) b * lq * d, k + (gsize) b * lk * d, 0.0f, p);
      lode_ops_softmax (p, p, lq, lk);
      lode_ops_gemm (FALSE, FALSE, lq, d, lk, 1.0f, p, v + (gsize) b * lk * d, 0.0f, out + (gsize) b * lq * d);
    }
}

void
lode_grad_attention (float       *dq,
                     float       *dk,
                     float       *dv,
                     const float *dout,
                     const float *q,
                     const float *k,
                     const float *v,
                     const float *probs,
                     int          bh,
                     int          lq,
                     int          lk,
                     int          d)
{
  float scale = 1.0f / sqrtf ((float) d);
  float *ds = g_new (float, (gsize) lq * lk);

  for (int b = 0; b < bh; b++)
    {
      const float *p = probs + (gsize) b * lq * lk, *dob = dout + (gsize) b * lq * d;

      /* dV = P^T dO; dP = dO V^T; dS = P (dP - rowsum(P dP)) */
      lode_ops_gemm (TRUE, FALSE, lk, d, lq, 1.0f, p, dob, 0.0f, dv + (gsize) b * lk * d);
      lode_ops_gemm (FALSE, TRUE, lq, lk, d, 1.0f, dob, v + (gsize) b * lk * d, 0.0f, ds);
      for (int i = 0; i < lq; i++)
        {
          const float *pr = p + (gsize) i * lk;
          float *dr = ds + (gsize) i * lk;
          double dot = 0.0;

          for (int j = 0; j < lk; j++)
            dot += (double) pr[j] * dr[j];
          for (int j = 0; j < lk; j++)
            dr[j] = pr[j] * (dr[j] - (float) dot);
        }
      lode_ops_gemm (FALSE, FALSE, lq, d, lk, scale, ds, k + (gsize) b * lk * d, 0.0f, dq + (gsize) b * lq * d);
      lode_ops_gemm (TRUE, FALSE, lk, d, lq, scale, ds, q + (gsize) b * lq * d, 0.0f, dk + (gsize) b * lk * d);
    }
  g_free (ds);
}

void
lode_grad_conv_transpose2x2 (float       *dx,
                             float       *dweight,
                             float       *dbias,
                             const float *dy,
                             const float *x,
                             const float *weight,
                             int          c_in,
                             int          c_out,
                             int          h,
                             int          w)
{
  gsize hw = (gsize) h * w;
  int ow = 2 * w;
  float *cols = g_new (float, (gsize) c_out * 4 * hw);

  /* cols [c_out * 4, hw]: the output pixel (2i + a, 2j + b) of each input
   * pixel (i, j), for kernel position ab = 2a + b */
  for (int o = 0; o < c_out; o++)
    for (int ab = 0; ab < 4; ab++)
      {
        float *col = cols + ((gsize) o * 4 + ab) * hw;
        const float *src = dy + (gsize) o * 4 * hw + (ab / 2) * ow + (ab % 2);

        for (int i = 0; i < h; i++)
          for (int j = 0; j < w; j++)
            {
              float g = src[(gsize) 2 * i * ow + 2 * j];

              col[(gsize) i * w + j] = g;
              if (dbias)
                dbias[o] += g;
            }
      }
  /* dweight [c_in, c_out * 4] += x [c_in, hw] cols^T; dx = weight cols */
  if (dweight)
    lode_ops_gemm (FALSE, TRUE, c_in, c_out * 4, (int) hw, 1.0f, x, cols, 1.0f, dweight);
  if (dx)
    lode_ops_gemm (FALSE, FALSE, c_in, (int) hw, c_out * 4, 1.0f, weight, cols, 0.0f, dx);
  g_free (cols);
}

/* F.interpolate's source index for align_corners=False: the two
 * neighbours and the weight of the second. */
static void
bilinear_source (int in, int out, int o, int *i0, int *i1, float *w1)
{
  float src = ((float) in / (float) out) * ((float) o + 0.5f) - 0.5f;

  if (src < 0.0f)
    src = 0.0f;
  *i0 = (int) src;
  *i1 = *i0 + (*i0 < in - 1 ? 1 : 0);
  *w1 = src - (float) *i0;
}

void
lode_grad_resize_bilinear (float       *dx,
                           const float *dy,
                           int          nc,
                           int          h,
                           int          w,
                           int          out_h,
                           int          out_w)
{
  memset (dx, 0, sizeof (float) * (gsize) nc * h * w);
  for (int p = 0; p < nc; p++)
    {
      float *d = dx + (gsize) p * h * w;
      const float *g = dy + (gsize) p * out_h * out_w;

      for (int y = 0; y < out_h; y++)
        {
          int y0, y1;
          float wy;

          bilinear_source (h, out_h, y, &y0, &y1, &wy);
          for (int x = 0; x < out_w; x++)
            {
              int x0, x1;
              float wx, v = g[(gsize) y * out_w + x];

              bilinear_source (w, out_w, x, &x0, &x1, &wx);
              d[y0 * w + x0] += v * (1 - wy) * (1 - wx);
              d[y0 * w + x1] += v * (1 - wy) * wx;
              d[y1 * w + x0] += v * wy * (1 - wx);
              d[y1 * w + x1] += v * wy * wx;
            }
        }
    }
}

double
lode_grad_bce_sigmoid (float        *dlogits,
                       const float  *logits,
                       const guint8 *target,
                       gsize         count,
                       double        eps,
                       float         scale)
{
  double loss = 0.0;

  for (gsize i = 0; i < count; i++)
    {
      double p = 1.0 / (1.0 + exp (-(double) logits[i]));
      double t = target[i] ? 1.0 : 0.0;

      loss += -t * log (p + eps) - (1.0 - t) * log (1.0 - p + eps);
      if (dlogits)
        dlogits[i] = (float) (scale * p * (1.0 - p) * (-t / (p + eps) + (1.0 - t) / (1.0 - p + eps))
                              / (double) count);
    }
  return count > 0 ? loss / (double) count : 0.0;
}

/* ---- optimiser ---------------------------------------------------------- */

void
lode_adamw_init_defaults (LodeAdamW *opt)
{
  *opt = (LodeAdamW) {
    .lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 1e-2f,
  };
}

void
lode_grad_adamw (float           *param,
                 const float     *grad,
                 float           *m,
                 float           *v,
                 gsize            count,
                 const LodeAdamW *opt,
                 gint64           step)
{
  double bc1, bc2, step_size, bc2_sqrt;
  float decay;

  g_return_if_fail (param != NULL && grad != NULL && m != NULL && v != NULL);
  g_return_if_fail (opt != NULL && step >= 1);

  bc1 = 1.0 - pow (opt->beta1, (double) step);
  bc2 = 1.0 - pow (opt->beta2, (double) step);
  step_size = opt->lr / bc1;
  bc2_sqrt = sqrt (bc2);
  decay = 1.0f - opt->lr * opt->weight_decay;

  PARALLEL_FOR (count)
  for (gsize i = 0; i < count; i++)
    {
      float gi = grad[i];
      float denom;

      param[i] *= decay;
      m[i] = opt->beta1 * m[i] + (1.0f - opt->beta1) * gi;
      v[i] = opt->beta2 * v[i] + (1.0f - opt->beta2) * gi * gi;
      denom = (float) (sqrtf (v[i]) / bc2_sqrt) + opt->eps;
      param[i] -= (float) step_size * (m[i] / denom);
    }
}
