/* lode-ops.h: the numeric kernels of the models, on the CPU.
 *
 * Plain functions on raw float32 arrays with explicit sizes, in the manner of
 * llm.c. Every array is dense and row-major; images are NCHW unless a
 * function says [B,H,W,C]. The output never aliases an input unless the
 * comment says so. Matrix products and convolutions go through OpenBLAS
 * (cblas_sgemm); products and element-wise loops are split over the cores
 * by one OpenMP team when the build has it (lode_ops_cpu_init). Each
 * kernel has a CUDA twin in lode-ops-cuda.h with the same semantics, and
 * tests/test-ops-gpu.c compares the two.
 *
 * Sizes are ints for dimensions and gsize for element counts; a kernel
 * given a negative size or NULL array is a programmer error
 * (g_return_if_fail).
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define LODE_OPS_ERROR (lode_ops_error_quark ())
GQuark lode_ops_error_quark (void);

typedef enum {
  LODE_OPS_ERROR_GPU_MEMORY,   /* the GPU ran out of memory */
  LODE_OPS_ERROR_GPU,          /* a CUDA, cuBLAS or cuDNN call failed */
  LODE_OPS_ERROR_UNSUPPORTED,  /* the GPU twin does not handle these arguments */
} LodeOpsError;

/* How the GPU multiplies: fp32 (the CPU's arithmetic), TF32 tensor cores
 * (10-bit mantissa products, fp32 sums) or bf16 mixed precision (matrix
 * products and convolutions take their operands rounded to bfloat16, 8-bit
 * mantissa, and sum in fp32; every tensor in memory, weights included, stays
 * fp32). The CPU always computes in fp32. */
typedef enum {
  LODE_PRECISION_FP32,
  LODE_PRECISION_TF32,
  LODE_PRECISION_BF16,
} LodePrecision;

/* "fp32" (or NULL or ""), "tf32" or "bf16"; FALSE for anything else. */
gboolean    lode_precision_parse (const char    *name,
                                  LodePrecision *out);
const char *lode_precision_name  (LodePrecision  precision);

/* out[i] = in[i] rounded to the nearest bfloat16 (ties to even), as a float:
 * what the GPU's bf16 mode does to an operand. Infinities stay, NaN stays
 * NaN, values beyond bf16's range become infinities. out may be in. */
void lode_ops_round_bf16 (float       *out,
                          const float *in,
                          gsize        count);

/* ---- threads ------------------------------------------------------------ */

/* Makes OpenBLAS run each product on the calling thread, so that the CPU
 * kernels have one team of threads, OpenMP's; lode_ops_gemm_ld calls it
 * (once is enough, any thread may). */
void lode_ops_cpu_init    (void);
/* The threads of that team: OpenMP's maximum, 1 without OpenMP. */
int  lode_ops_cpu_threads (void);
/* Sets that maximum for the calling thread's later teams (n >= 1). */
void lode_ops_cpu_set_threads (int n);

/* ---- matrix products ---------------------------------------------------- */

/* C = alpha * op(A) @ op(B) + beta * C, row-major, like cblas_sgemm.
 * op(A) is [m,k]: A is stored [m,k], or [k,m] when trans_a.
 * op(B) is [k,n]: B is stored [k,n], or [n,k] when trans_b.
 * C is [m,n]. With beta == 0, C is written without being read. */
void lode_ops_gemm (gboolean     trans_a,
                    gboolean     trans_b,
                    int          m,
                    int          n,
                    int          k,
                    float        alpha,
                    const float *a,
                    const float *b,
                    float        beta,
                    float       *c);

/* lode_ops_gemm with the distance between the stored rows of A, B and C
 * given (lda, ldb, ldc, as cblas_sgemm's). Outside a parallel region a
 * large product is cut into parts of whole rows or columns of C, one per
 * thread of the team (the parts may round differently from one whole). */
void lode_ops_gemm_ld (gboolean     trans_a,
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
                       int          ldc);

/* lode_ops_gemm on batch independent products: the i-th uses
 * a + i*stride_a, b + i*stride_b, c + i*stride_c (strides in elements).
 * torch.baddbmm / the two products of attention. */
void lode_ops_gemm_batched (gboolean     trans_a,
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
                            gint64       stride_c);

/* out[m,n] = a[m,k] @ B + bias[n] (bias may be NULL). B is stored [n,k]
 * ("weight" layout, as torch.nn.Linear keeps it) when b_is_weight, else
 * [k,n] (torch.matmul). */
void lode_ops_matmul (float       *out,
                      const float *a,
                      const float *b,
                      const float *bias,
                      int          m,
                      int          n,
                      int          k,
                      gboolean     b_is_weight);

/* torch.nn.functional.linear: out[rows,out_f] = x[rows,in_f] @ weight^T + bias,
 * weight [out_f,in_f], bias [out_f] or NULL. */
void lode_ops_linear (float       *out,
                      const float *x,
                      const float *weight,
                      const float *bias,
                      int          rows,
                      int          in_f,
                      int          out_f);

/* ---- convolutions ------------------------------------------------------- */

/* The geometry of a 2-D convolution, as torch.nn.Conv2d / ConvTranspose2d.
 * Input [n, c_in, h, w]. Conv2d weight [c_out, c_in/groups, kh, kw];
 * ConvTranspose2d weight [c_in, c_out/groups, kh, kw]. out_pad_* is
 * ConvTranspose2d's output_padding and is ignored by conv2d. */
typedef struct {
  int n, c_in, h, w;
  int c_out, kh, kw;
  int stride_h, stride_w;
  int pad_h, pad_w;
  int dil_h, dil_w;
  int groups;
  int out_pad_h, out_pad_w;
} LodeConvShape;

/* Fills s for the common case: square kernel k, stride, padding, dilation 1,
 * groups 1, no output padding. */
void lode_conv_shape_init       (LodeConvShape *s,
                                 int            n,
                                 int            c_in,
                                 int            h,
                                 int            w,
                                 int            c_out,
                                 int            k,
                                 int            stride,
                                 int            pad);
/* The output height and width of conv2d (floor((h + 2p - d(k-1) - 1)/s) + 1)
 * or conv_transpose2d ((h-1)s - 2p + d(k-1) + out_pad + 1). FALSE when the
 * shape is invalid (output smaller than 1, channels not divisible by
 * groups, non-positive sizes). */
gboolean lode_conv_shape_out_size  (const LodeConvShape *s,
                                    int                 *out_h,
                                    int                 *out_w);
gboolean lode_conv_shape_tout_size (const LodeConvShape *s,
                                    int                 *out_h,
                                    int                 *out_w);

/* torch.nn.functional.conv2d (zero padding): out [n, c_out, oh, ow]
 * (lode_conv_shape_out_size), bias [c_out] or NULL. im2col + sgemm, in
 * column chunks so that the scratch stays small; 1x1 stride-1 convolutions
 * skip im2col. */
void lode_ops_conv2d (float               *out,
                      const float         *in,
                      const float         *weight,
                      const float         *bias,
                      const LodeConvShape *s);

/* torch.nn.functional.conv_transpose2d: out [n, c_out, oh, ow]
 * (lode_conv_shape_tout_size), any kernel, stride, padding, dilation,
 * output_padding and groups; bias [c_out] or NULL. sgemm + col2im. */
void lode_ops_conv_transpose2d (float               *out,
                                const float         *in,
                                const float         *weight,
                                const float         *bias,
                                const LodeConvShape *s);

/* Columns p0 .. p0+np of the im2col matrix of one image and one group of
 * conv2d (x points at the group's first input channel):
 * col[(ci*kh + ky)*kw + kx, j] = x[ci, oy*sh - ph + ky*dh, ox*sw - pw + kx*dw]
 * for output pixel p0 + j = oy*ow + ox, zero outside the image; col is
 * [c_in/groups * kh * kw, np]. The backward pass of conv2d (lode-grad.h)
 * shares it with lode_ops_conv2d. */
void lode_ops_im2col (float               *col,
                      const float         *x,
                      const LodeConvShape *s,
                      int                  p0,
                      int                  np);

/* ---- normalisation ------------------------------------------------------ */

/* torch.nn.functional.layer_norm over the last dimension: in [rows, c],
 * out = (x - mean) / sqrt(var + eps) * weight + bias, biased variance;
 * weight, bias [c] or NULL. out may be in. */
void lode_ops_layer_norm (float       *out,
                          const float *in,
                          const float *weight,
                          const float *bias,
                          int          rows,
                          int          c,
                          float        eps);

/* SAM2's LayerNorm2d: in [n, c, hw] (NCHW with hw = h*w), every pixel
 * normalised over its c channels, then weight[c], bias[c] (or NULL).
 * out may be in. */
void lode_ops_layer_norm2d (float       *out,
                            const float *in,
                            const float *weight,
                            const float *bias,
                            int          n,
                            int          c,
                            int          hw,
                            float        eps);

/* torch.nn.functional.batch_norm in inference: in [n, c, hw],
 * out = (x - mean[c]) / sqrt(var[c] + eps) * weight[c] + bias[c];
 * weight, bias may be NULL. out may be in. */
void lode_ops_batch_norm (float       *out,
                          const float *in,
                          const float *mean,
                          const float *var,
                          const float *weight,
                          const float *bias,
                          int          n,
                          int          c,
                          int          hw,
                          float        eps);

/* ---- element-wise (count elements; out may be an input) ----------------- */

/* torch GELU, exact: x * 0.5 * (1 + erf(x / sqrt 2)). */
void lode_ops_gelu      (float *out, const float *in, gsize count);
/* GELU(approximate='tanh'): 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))). */
void lode_ops_gelu_tanh (float *out, const float *in, gsize count);
void lode_ops_relu      (float *out, const float *in, gsize count);
/* 1 / (1 + exp(-x)), without overflow for large |x|. */
void lode_ops_sigmoid   (float *out, const float *in, gsize count);
/* out = a + b, out = a * b, out = s * in. */
void lode_ops_add       (float *out, const float *a, const float *b, gsize count);
void lode_ops_mul       (float *out, const float *a, const float *b, gsize count);
void lode_ops_scale     (float *out, const float *in, float s, gsize count);
/* Bias broadcast over the channels of NCHW: in [n, c, hw],
 * out[i,j,p] = in[i,j,p] + bias[j]. */
void lode_ops_add_channel_bias (float       *out,
                                const float *in,
                                const float *bias,
                                int          n,
                                int          c,
                                int          hw);
/* Bias broadcast over the last dimension: in [rows, c],
 * out[r,j] = in[r,j] + bias[j]. */
void lode_ops_add_row_bias (float       *out,
                            const float *in,
                            const float *bias,
                            int          rows,
                            int          c);

/* The second half of a ConvTranspose2d with kernel 2 and stride 2 on
 * [c_in, side, side]: cols [c, 4, side * side] is the product
 * W^T [c * 4, c_in] @ in [c_in, side * side] (W as PyTorch stores it,
 * [c_in, c, 2, 2]); each column goes to its 2 x 2 block of out
 * [c, 2 side, 2 side], plus bias [c] (or NULL), plus add (same shape as
 * out, or NULL), then GELU when gelu is TRUE, in one pass. */
void lode_ops_unfold_2x2 (float       *out,
                          const float *cols,
                          const float *bias,
                          const float *add,
                          int          c,
                          int          side,
                          gboolean     gelu);

/* ---- softmax and attention ---------------------------------------------- */

/* torch.softmax(dim=-1) on in [rows, c], max-subtracted so that large
 * inputs do not overflow. out may be in. */
void lode_ops_softmax (float       *out,
                       const float *in,
                       int          rows,
                       int          c);
/* The same in place on one thread, for callers that split the rows over
 * threads themselves. Scores more than 87 below their row's maximum count
 * as e^-87 of it rather than 0. */
void lode_ops_softmax_rows (float *s,
                            int    rows,
                            int    c);

/* torch.nn.functional.scaled_dot_product_attention without mask or dropout:
 * q [b, h, lq, d], k and v [b, h, lk, d], out [b, h, lq, d],
 * out = softmax(q k^T / sqrt(d)) v. Scores are formed for a block of query
 * rows at a time, so memory stays O(block * lk). */
void lode_ops_attention (float       *out,
                         const float *q,
                         const float *k,
                         const float *v,
                         int          b,
                         int          h,
                         int          lq,
                         int          lk,
                         int          d);

/* ---- pooling and resizing (NCHW) ---------------------------------------- */

/* torch.nn.functional.max_pool2d(kernel, stride, padding), floor mode,
 * padding counts as -inf: out [n, c, oh, ow] with
 * oh = (h + 2 pad - kernel) / stride + 1. */
void lode_ops_max_pool2d (float       *out,
                          const float *in,
                          int          n,
                          int          c,
                          int          h,
                          int          w,
                          int          kernel,
                          int          stride,
                          int          pad);
int  lode_ops_pool_out_size (int size, int kernel, int stride, int pad);

typedef enum {
  LODE_RESIZE_NEAREST,                 /* F.interpolate(mode='nearest') */
  LODE_RESIZE_BILINEAR,                /* mode='bilinear', align_corners=False */
  LODE_RESIZE_BILINEAR_ALIGN_CORNERS,  /* mode='bilinear', align_corners=True */
} LodeResizeMode;

/* torch.nn.functional.interpolate(size=(out_h, out_w), antialias=False) on
 * in [nc, h, w] (nc = n*c planes), out [nc, out_h, out_w]. */
void lode_ops_resize (float          *out,
                      const float    *in,
                      int             nc,
                      int             h,
                      int             w,
                      int             out_h,
                      int             out_w,
                      LodeResizeMode  mode);

/* ---- layout ------------------------------------------------------------- */

/* Hiera/SAM2 window_partition: in [b, h, w, c] is zero-padded at the bottom
 * and right to hp = ceil(h/win)*win, wp likewise, and cut into windows:
 * out [b * (hp/win) * (wp/win), win, win, c], windows in row-major order. */
void lode_ops_window_partition (float       *out,
                                const float *in,
                                int          b,
                                int          h,
                                int          w,
                                int          c,
                                int          win);
/* The inverse (window_unpartition): windows [b*nwin, win, win, c] ->
 * out [b, h, w, c], the padding dropped. */
void lode_ops_window_unpartition (float       *out,
                                  const float *windows,
                                  int          b,
                                  int          h,
                                  int          w,
                                  int          c,
                                  int          win);
/* Number of windows per image for lode_ops_window_partition. */
int  lode_ops_window_count (int h, int w, int win);

/* torch.permute(perm).contiguous() of a 4-D tensor in [d0,d1,d2,d3]:
 * out dimension i is input dimension perm[i]. */
void lode_ops_permute4 (float       *out,
                        const float *in,
                        const int    dims[4],
                        const int    perm[4]);
/* Attention's head layout: split_heads takes tokens [l, h * d] (each
 * token's h heads of d values side by side) to [h, l, d], one contiguous
 * block per head; merge_heads takes [h, l, d] back to [l, h * d]. */
void lode_ops_split_heads (float *out, const float *in, int l, int h, int d);
void lode_ops_merge_heads (float *out, const float *in, int l, int h, int d);
/* [n,c,h,w] -> [n,h,w,c] and back. */
void lode_ops_nchw_to_nhwc (float *out, const float *in, int n, int c, int h, int w);
void lode_ops_nhwc_to_nchw (float *out, const float *in, int n, int c, int h, int w);

/* ---- SAM2 decoder kernels (twins of lode-sam2-decoder-cuda.h) ------------ */

/* out = layer_norm (a + b) over rows of c (b may be NULL: out = layer_norm
 * (a)), as lode_ops_layer_norm; then, when out_pe is not NULL,
 * out_pe = out + pe (pe [rows, c]). out may be a or b. */
void lode_ops_add_layer_norm (float       *out,
                              const float *a,
                              const float *b,
                              const float *weight,
                              const float *bias,
                              int          rows,
                              int          c,
                              float        eps,
                              float       *out_pe,
                              const float *pe);

/* Multi-head attention on projected rows, heads side by side in each row:
 * q [lq, h * d] with rows q_stride floats apart, k and v [lk, h * d] with
 * rows k_stride and v_stride apart; out [lq, h * d] contiguous,
 * out[i, head] = softmax_j (q[i, head] . k[j, head] / sqrt d) v[j, head].
 * out does not alias the inputs. */
void lode_ops_attention_rows (float       *out,
                              const float *q,
                              int          q_stride,
                              const float *k,
                              int          k_stride,
                              const float *v,
                              int          v_stride,
                              int          lq,
                              int          lk,
                              int          h,
                              int          d);

/* SAM2's random Fourier features of points plus their label embedding
 * (PromptEncoder._embed_points): points [n, 3] as x, y, label (a float);
 * x and y are normalised as (x + 0.5) / size; gauss [2, c / 2];
 * out[i, 0 .. c/2) = sin, out[i, c/2 .. c) = cos of
 * 2 pi ((2x - 1) gauss[0] + (2y - 1) gauss[1]), then label_embed row
 * label + 1 is added ([5, c]: not-a-point, then labels 0 .. 3), except that
 * a point of label -1 gets not-a-point alone. label_embed may be NULL: the
 * features alone, labels ignored (the dense positional encoding). */
void lode_ops_point_encoding (float       *out,
                              const float *points,
                              const float *gauss,
                              const float *label_embed,
                              int          n,
                              int          c,
                              float        size);

/* out[r, j] = max (in[r, j] + bias[j], 0): a linear layer's bias and ReLU in
 * one pass. out may be in. */
void lode_ops_bias_relu (float       *out,
                         const float *in,
                         const float *bias,
                         int          rows,
                         int          c);

G_END_DECLS
