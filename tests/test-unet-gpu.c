/* The U-Net and its training job on CUDA against the CPU (suite 'gpu';
 * every test skips itself without CUDA in the build or a device).
 *
 * Errors are normalised: max |gpu - cpu| / (max |cpu| + 1e-6).
 * Tolerances, fp32 on both sides, TF32 off (the default):
 *   TOL_KERNEL   1e-6  the new kernels (copy, concat, split, invstd): the
 *                      same float operations in the same order; only an
 *                      indexing error exceeds it.
 *   TOL_LOGITS   1e-3  a whole ResNet18 U-Net (about 40 convolutions, batch
 *                      norm between them): cuDNN and OpenBLAS sum each
 *                      product in another order (~1e-6 relative each), and
 *                      the depth compounds it to ~1e-5..1e-4; a wrong
 *                      buffer, a missed upload or a swapped argument gives
 *                      O(1).
 *   TOL_GRADS    5e-3  gradients after one backward: the same through a
 *                      second pass, and batch-norm backward subtracts
 *                      near-equal means, which roughly doubles the relative
 *                      error.
 *   TOL_LOSS     1e-4  relative, the loss of one step (a mean over every
 *                      pixel in double on both sides).
 *   bf16 mixed precision on the GPU against fp32 on the CPU: every
 *   convolution's operands rounded to 8 bits of mantissa (2^-9 relative
 *   each) and its output to bf16: ~4e-3 per layer, renormalised by batch
 *   norm after each, so the logits stay within a few 1e-2 (TOL_BF16_LOGITS
 *   1e-1) and the gradients, through a second pass, within TOL_BF16_GRADS
 *   2e-1; a convolution that reads the wrong buffer is O(1) off. Each bf16
 *   check also asserts a difference of more than 1e-5 from fp32, so a bf16
 *   mode that silently stays fp32 fails.
 *   AdamW after one step moves every parameter by about lr * sign(grad)
 *   (m / sqrt(v) is +-1 at step 1), so a gradient near 0 may take the
 *   other sign on the other device: we allow any parameter to differ by at
 *   most 2 lr, and at most 0.5% of them by more than 1% of lr.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lode-device.h"
#include "lode-grad.h"
#include "lode-test-util.h"
#include "lode-train.h"
#include "lode-unet.h"
#if LODE_HAVE_CUDA
#include "lode-unet-cuda.h"
#endif

#define TOL_KERNEL 1e-6
#define TOL_LOGITS 1e-3
#define TOL_GRADS 5e-3
#define TOL_LOSS 1e-4
#define TOL_BF16_LOGITS 1e-1
#define TOL_BF16_GRADS 2e-1
#define TOL_BF16_LOSS 2e-2

#define SIDE 64
#define BANDS 4
#define CLASSES 3

#if LODE_HAVE_CUDA

static GRand *rand_gen;

static gboolean
gpu_ready (void)
{
  if (lode_device_cuda_count () == 0)
    {
      g_test_skip ("no CUDA device");
      return FALSE;
    }
  return TRUE;
}

static void
ok (int status)
{
  g_autoptr(GError) error = NULL;

  lode_ops_cuda_check (status, &error);
  g_assert_no_error (error);
}

static float *
rnd (gsize n,
     double lo,
     double hi)
{
  float *a = g_new (float, n ? n : 1);

  for (gsize i = 0; i < n; i++)
    a[i] = (float) g_rand_double_range (rand_gen, lo, hi);
  return a;
}

static double
norm_error (const float *got,
            const float *want,
            gsize        n)
{
  double diff = 0.0, mag = 0.0;

  for (gsize i = 0; i < n; i++)
    {
      diff = MAX (diff, fabs ((double) got[i] - want[i]));
      mag = MAX (mag, fabs (want[i]));
    }
  return diff / (mag + 1e-6);
}

static void
check (const float *got,
       const float *want,
       gsize        n,
       double       tol,
       const char  *what)
{
  double e = norm_error (got, want, n);

  g_test_message ("%s: normalised error %g", what, e);
  g_assert_cmpfloat (e, <, tol);
}

/* ---- the new kernels against their CPU twins ------------------------------ */

static void *
up (LodeOpsCuda *ctx,
    const void  *host,
    gsize        bytes)
{
  void *d = NULL;

  ok (lode_ops_cuda_alloc (&d, bytes ? bytes : 4));
  if (host)
    ok (lode_ops_cuda_upload (ctx, d, host, bytes));
  return d;
}

static void
down_check (LodeOpsCuda *ctx,
            void        *dev,
            const float *want,
            gsize        n,
            const char  *what)
{
  g_autofree float *got = g_new (float, n);

  ok (lode_ops_cuda_download (ctx, got, dev, n * sizeof (float)));
  lode_ops_cuda_release (dev);
  check (got, want, n, TOL_KERNEL, what);
}

static void
test_kernels (void)
{
  LodeOpsCuda *ctx = NULL;
  int n = 3, ca = 5, cb = 7, hw = 37 * 41, c = 300;
  gsize na = (gsize) n * ca * hw, nb = (gsize) n * cb * hw, nc = na + nb;

  if (!gpu_ready ())
    return;
  ok (lode_ops_cuda_new (&ctx));
  {
    g_autofree float *a = rnd (na, -1, 1), *b = rnd (nb, -1, 1), *cat = g_new (float, nc);
    g_autofree float *dout = rnd (nc, -1, 1), *da = rnd (na, -1, 1), *db = rnd (nb, -1, 1);
    g_autofree float *var = rnd (c, 0, 3), *inv = g_new (float, c);
    float *ga = up (ctx, a, na * 4), *gb = up (ctx, b, nb * 4), *gcat = up (ctx, NULL, nc * 4);
    float *gdout = up (ctx, dout, nc * 4), *gda = up (ctx, da, na * 4), *gdb = up (ctx, db, nb * 4);
    float *gvar = up (ctx, var, c * 4), *ginv = up (ctx, NULL, c * 4), *gcopy = up (ctx, NULL, na * 4);

    lode_grad_concat_channels (cat, a, ca, b, cb, n, hw);
    ok (lode_unet_cuda_concat_channels (ctx, gcat, ga, ca, gb, cb, n, hw));
    down_check (ctx, gcat, cat, nc, "concat");

    /* da written, db added to */
    lode_grad_split_channels (da, db, dout, ca, cb, n, hw);
    ok (lode_unet_cuda_split_channels (ctx, gda, gdb, gdout, ca, cb, n, hw));
    down_check (ctx, gda, da, na, "split da");
    down_check (ctx, gdb, db, nb, "split db");

    lode_grad_invstd (inv, var, c, 1e-5f);
    ok (lode_unet_cuda_invstd (ctx, ginv, gvar, c, 1e-5f));
    down_check (ctx, ginv, inv, c, "invstd");

    ok (lode_ops_cuda_copy (ctx, gcopy, ga, na * 4));
    down_check (ctx, gcopy, a, na, "copy");

    lode_ops_cuda_release (ga);
    lode_ops_cuda_release (gb);
    lode_ops_cuda_release (gdout);
    lode_ops_cuda_release (gvar);
  }
  lode_ops_cuda_free (ctx);
}

/* ---- the model ------------------------------------------------------------ */

static void
model_pair (LodeUnet **cpu,
            LodeUnet **gpu)
{
  LodeUnetConfig config = { LODE_UNET_RESNET18, BANDS, CLASSES };
  g_autoptr(GError) error = NULL;

  *cpu = lode_unet_new_on (&config, 7, LODE_DEVICE_CPU, &error);
  g_assert_no_error (error);
  *gpu = lode_unet_new_on (&config, 7, LODE_DEVICE_CUDA, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lode_unet_get_device (*gpu), ==, LODE_DEVICE_CUDA);
}

/* Forward in train mode (batch statistics, running ones updated), then in
 * eval mode with those running statistics; then one backward. */
static void
test_forward_backward (void)
{
  g_autoptr(LodeUnet) cpu = NULL, gpu = NULL;
  g_autoptr(GError) error = NULL;
  int n = 2;
  gsize nin = (gsize) n * BANDS * SIDE * SIDE, nl = (gsize) n * CLASSES * SIDE * SIDE;
  g_autofree float *x = NULL, *dl = NULL;
  g_autofree float *lc = g_new (float, nl), *lg = g_new (float, nl);
  gsize np, nb;

  if (!gpu_ready ())
    return;
  rand_gen = g_rand_new_with_seed (3);
  x = rnd (nin, -2, 2);
  dl = rnd (nl, -1e-3, 1e-3);
  model_pair (&cpu, &gpu);
  check (lode_unet_params (gpu, &np), lode_unet_params (cpu, NULL), np, TOL_KERNEL,
         "initial weights");

  g_assert_true (lode_unet_forward (cpu, x, n, SIDE, SIDE, LODE_UNET_TRAIN, lc, &error));
  g_assert_true (lode_unet_forward (gpu, x, n, SIDE, SIDE, LODE_UNET_TRAIN, lg, &error));
  g_assert_no_error (error);
  check (lg, lc, nl, TOL_LOGITS, "train-mode logits");
  check (lode_unet_buffers (gpu, &nb), lode_unet_buffers (cpu, NULL), nb, TOL_LOGITS,
         "running statistics");

  /* backward of this train-mode forward, from the same dlogits */
  lode_unet_zero_grad (cpu);
  lode_unet_zero_grad (gpu);
  lode_unet_backward (cpu, dl);
  g_assert_true (lode_unet_backward_checked (gpu, dl, &error));
  g_assert_no_error (error);
  check (lode_unet_grads (gpu, NULL), lode_unet_grads (cpu, NULL), np, TOL_GRADS, "gradients");
  /* a tensor deep in the encoder, by name */
  {
    int i = lode_unet_find_tensor (cpu, "encoder.conv1.weight");
    check (lode_unet_tensor_grad (gpu, i), lode_unet_tensor_grad (cpu, i),
           lode_unet_tensor_numel (cpu, i), TOL_GRADS, "stem gradient");
  }

  g_assert_true (lode_unet_forward (cpu, x, n, SIDE, SIDE, LODE_UNET_EVAL, lc, &error));
  g_assert_true (lode_unet_forward (gpu, x, n, SIDE, SIDE, LODE_UNET_EVAL, lg, &error));
  g_assert_no_error (error);
  check (lg, lc, nl, TOL_LOGITS, "eval-mode logits");

  /* a weight changed through the host mirror reaches the device */
  {
    int i = lode_unet_find_tensor (gpu, "segmentation_head.0.bias");
    lode_unet_tensor_data (gpu, i)[1] += 5.0f;
    lode_unet_tensor_data (cpu, i)[1] += 5.0f;
    g_assert_true (lode_unet_forward (cpu, x, n, SIDE, SIDE, LODE_UNET_EVAL, lc, &error));
    g_assert_true (lode_unet_forward (gpu, x, n, SIDE, SIDE, LODE_UNET_EVAL, lg, &error));
    check (lg, lc, nl, TOL_LOGITS, "logits after a host edit");
  }
  g_rand_free (rand_gen);
}

/* ---- one step of the training job ---------------------------------------- */

static int
source_count (LodeTrainSplit split,
              gpointer       user_data)
{
  return split == LODE_TRAIN_SPLIT_TRAIN ? 4 : 2;
}

static gboolean
source_get (LodeTrainSplit split,
            int            index,
            float         *image,
            guint8        *mask,
            gpointer       user_data,
            GError       **error)
{
  g_autoptr(GRand) r = g_rand_new_with_seed (100 + index + (split == LODE_TRAIN_SPLIT_VALIDATION) * 50);

  for (int q = 0; q < SIDE * SIDE; q++)
    {
      int y = q / SIDE, x = q % SIDE;
      int cls = ((x / 16 + y / 16 + index) % 5 == 0) ? 1 : ((x + y) % 23 == 0 ? 2 : 0);

      mask[q] = q % 97 == 0 ? 255 : (guint8) cls;
      for (int b = 0; b < BANDS; b++)
        image[b * SIDE * SIDE + q] = (float) (cls * (b + 1) + g_rand_double_range (r, -0.5, 0.5));
    }
  return TRUE;
}

static const LodeTrainSource source = { SIDE, SIDE, source_count, source_get, NULL, NULL };

typedef struct {
  double loss;
} Last;

static void
on_progress (const LodeTrainProgress *p,
             gpointer                 user_data)
{
  ((Last *) user_data)->loss = p->loss;
}

static LodeTrainJob *
run_one_step (const char *device,
              const char *precision,
              const char *ckpt,
              double     *loss)
{
  LodeTrainConfig c;
  g_autoptr(GError) error = NULL;
  LodeTrainJob *job;
  Last last = { NAN };

  lode_train_config_init (&c);
  c.encoder = LODE_UNET_RESNET18;
  c.bands = BANDS;
  c.classes = CLASSES;
  c.batch_size = 2;
  c.epochs = 1;
  c.max_steps = 1;
  c.lr = 1e-3f;
  c.seed = 5;
  c.dice_weight = 0.5f;          /* the host Dice path too */
  c.class_weights[2] = 3.0f;
  g_strlcpy (c.device, device, sizeof c.device);
  g_strlcpy (c.precision, precision, sizeof c.precision);
  job = lode_train_job_new (&c, &source, ckpt, FALSE, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (lode_train_job_run (job, on_progress, &last, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (lode_train_job_get_step (job), ==, 1);
  *loss = last.loss;
  return job;
}

static void
test_train_step (void)
{
  g_autofree char *dir = NULL, *path_cpu = NULL, *path_gpu = NULL;
  g_autoptr(LodeTrainJob) jc = NULL, jg = NULL;
  g_autoptr(LodeUnet) back = NULL, init = NULL;
  g_autofree float *m = NULL, *v = NULL;
  g_autoptr(GError) error = NULL;
  LodeUnetConfig uc = { LODE_UNET_RESNET18, BANDS, CLASSES };
  double loss_cpu, loss_gpu, lr = 1e-3;
  const float *pc, *pg, *p0;
  gsize np, far = 0;
  double worst = 0.0;
  LodeTrainConfig saved;
  gint64 step;

  if (!gpu_ready ())
    return;
  dir = lode_test_mkdtemp ();
  path_cpu = g_build_filename (dir, "cpu.lode-unet", NULL);
  path_gpu = g_build_filename (dir, "gpu.lode-unet", NULL);
  jc = run_one_step ("cpu", "fp32", path_cpu, &loss_cpu);
  jg = run_one_step ("cuda", "fp32", path_gpu, &loss_gpu);
  g_assert_cmpint (lode_train_job_get_device (jg), ==, LODE_DEVICE_CUDA);

  g_test_message ("loss cpu %.7f gpu %.7f", loss_cpu, loss_gpu);
  g_assert_cmpfloat (fabs (loss_gpu - loss_cpu) / loss_cpu, <, TOL_LOSS);

  /* every parameter moved by AdamW, the same way on both */
  init = lode_unet_new (&uc, 5, &error);
  p0 = lode_unet_params (init, &np);
  pc = lode_unet_params (lode_train_job_get_model (jc), NULL);
  pg = lode_unet_params (lode_train_job_get_model (jg), NULL);
  for (gsize i = 0; i < np; i++)
    {
      double d = fabs ((double) (pg[i] - p0[i]) - (pc[i] - p0[i]));
      worst = MAX (worst, d);
      if (d > 0.01 * lr)
        far++;
    }
  g_test_message ("parameters after a step: max diff %g, %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT
                  " beyond 1%% of lr", worst, far, np);
  g_assert_cmpfloat (worst, <=, 2.0 * lr * 1.001 + 1e-6);
  g_assert_cmpfloat ((double) far, <, 0.005 * np);
  {
    double moved = 0.0;
    for (gsize i = 0; i < np; i++)
      moved = MAX (moved, fabs ((double) pg[i] - p0[i]));
    g_assert_cmpfloat (moved, >, 0.5 * lr);
  }

  /* the CUDA job's checkpoint: the same format, read on the CPU, holding
   * the device's weights and moments */
  back = lode_train_checkpoint_load (path_gpu, &saved, &m, &v, &step, &error);
  g_assert_no_error (error);
  g_assert_cmpint (step, ==, 1);
  g_assert_nonnull (m);
  g_assert_cmpmem (lode_unet_params (back, NULL), np * sizeof (float), pg, np * sizeof (float));
  {
    const float *gv, *gm = lode_unet_adam_moments (lode_train_job_get_model (jg), &gv);
    g_assert_cmpmem (m, np * sizeof (float), gm, np * sizeof (float));
    g_assert_cmpmem (v, np * sizeof (float), gv, np * sizeof (float));
  }
  {
    g_autoptr(GMappedFile) a = g_mapped_file_new (path_cpu, FALSE, NULL);
    g_autoptr(GMappedFile) b = g_mapped_file_new (path_gpu, FALSE, NULL);
    /* the header names the device asked for: "cuda" is one byte longer than "cpu" */
    g_assert_cmpuint (g_mapped_file_get_length (a), ==, g_mapped_file_get_length (b) - 1);
  }
  lode_test_rmtree (dir);
}

/* bf16 mixed precision: the same model and batch as on the CPU in fp32,
 * near it but not equal; then one step of the training job in bf16. */
static void
test_bf16 (void)
{
  g_autoptr(LodeUnet) cpu = NULL, gpu = NULL;
  g_autoptr(LodeTrainJob) jc = NULL, jg = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL, *path_cpu = NULL, *path_gpu = NULL;
  int n = 2;
  gsize nin = (gsize) n * BANDS * SIDE * SIDE, nl = (gsize) n * CLASSES * SIDE * SIDE, np, far = 0;
  g_autofree float *x = NULL, *dl = NULL;
  g_autofree float *lc = g_new (float, nl), *lg = g_new (float, nl);
  double loss_cpu, loss_gpu, lr = 1e-3, e;
  const float *pc, *pg;

  if (!gpu_ready ())
    return;
  rand_gen = g_rand_new_with_seed (4);
  x = rnd (nin, -2, 2);
  dl = rnd (nl, -1e-3, 1e-3);
  model_pair (&cpu, &gpu);
  g_assert_true (lode_unet_set_precision (gpu, LODE_PRECISION_BF16, &error));
  g_assert_no_error (error);

  g_assert_true (lode_unet_forward (cpu, x, n, SIDE, SIDE, LODE_UNET_TRAIN, lc, &error));
  g_assert_true (lode_unet_forward (gpu, x, n, SIDE, SIDE, LODE_UNET_TRAIN, lg, &error));
  g_assert_no_error (error);
  e = norm_error (lg, lc, nl);
  g_test_message ("bf16 logits: %.3g", e);
  g_assert_cmpfloat (e, <, TOL_BF16_LOGITS);
  g_assert_cmpfloat (e, >, 1e-5);

  lode_unet_zero_grad (cpu);
  lode_unet_zero_grad (gpu);
  lode_unet_backward (cpu, dl);
  g_assert_true (lode_unet_backward_checked (gpu, dl, &error));
  g_assert_no_error (error);
  e = norm_error (lode_unet_grads (gpu, &np), lode_unet_grads (cpu, NULL), np);
  g_test_message ("bf16 gradients: %.3g", e);
  g_assert_cmpfloat (e, <, TOL_BF16_GRADS);
  g_assert_cmpfloat (e, >, 1e-5);
  g_rand_free (rand_gen);

  /* One step of the job: the loss near the CPU's, and AdamW's first step
   * (lr * sign(grad)) the same for all but the parameters whose gradient
   * is so small that bf16 noise flips its sign: at most 5% of them. */
  dir = lode_test_mkdtemp ();
  path_cpu = g_build_filename (dir, "cpu.lode-unet", NULL);
  path_gpu = g_build_filename (dir, "gpu.lode-unet", NULL);
  jc = run_one_step ("cpu", "fp32", path_cpu, &loss_cpu);
  jg = run_one_step ("cuda", "bf16", path_gpu, &loss_gpu);
  g_test_message ("loss cpu %.7f gpu bf16 %.7f", loss_cpu, loss_gpu);
  g_assert_cmpfloat (fabs (loss_gpu - loss_cpu) / loss_cpu, <, TOL_BF16_LOSS);
  pc = lode_unet_params (lode_train_job_get_model (jc), &np);
  pg = lode_unet_params (lode_train_job_get_model (jg), NULL);
  for (gsize i = 0; i < np; i++)
    if (fabs ((double) pg[i] - pc[i]) > 0.01 * lr)
      far++;
  g_test_message ("bf16 step: %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT " parameters beyond 1%% of lr",
                  far, np);
  g_assert_cmpfloat ((double) far, <, 0.05 * np);
  lode_test_rmtree (dir);
}

#endif /* LODE_HAVE_CUDA */

static void
test_no_device (void)
{
  LodeUnetConfig config = { LODE_UNET_RESNET18, BANDS, CLASSES };
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeUnet) net = NULL;

  if (lode_device_cuda_count () > 0)
    {
      g_test_skip ("a CUDA device is present");
      return;
    }
  net = lode_unet_new_on (&config, 1, LODE_DEVICE_CUDA, &error);
  g_assert_null (net);
  g_assert_error (error, LODE_DEVICE_ERROR, LODE_DEVICE_ERROR_UNAVAILABLE);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/unet-gpu/no-device", test_no_device);
#if LODE_HAVE_CUDA
  g_test_add_func ("/unet-gpu/kernels", test_kernels);
  g_test_add_func ("/unet-gpu/forward-backward", test_forward_backward);
  g_test_add_func ("/unet-gpu/train-step", test_train_step);
  g_test_add_func ("/unet-gpu/bf16", test_bf16);
#endif
  return g_test_run ();
}
