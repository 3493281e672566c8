#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "lode-bench-sam2.h"
#include "lode-commands.h"
#include "lode-device.h"
#include "lode-sam2-config.h"
#include "lode-sam2-predictor.h"

/* ---- a checkpoint of random weights in the tiny layout ------------------- */

typedef struct {
  GString *header;
  GPtrArray *names;
  GArray *ndims;
  GArray *shapes;   /* 4 gint64 per tensor */
  guint64 offset;
} Layout;

static void
layout_add (const char *name, int ndim, const gint64 *shape, gpointer data)
{
  Layout *l = data;
  guint64 n = 1;
  gint64 s4[4] = { 1, 1, 1, 1 };

  for (int i = 0; i < ndim; i++)
    {
      n *= (guint64) shape[i];
      s4[i] = shape[i];
    }
  g_string_append_printf (l->header, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[",
                          l->names->len ? "," : "", name);
  for (int i = 0; i < ndim; i++)
    g_string_append_printf (l->header, "%s%" G_GINT64_FORMAT, i ? "," : "", shape[i]);
  g_string_append_printf (l->header, "],\"data_offsets\":[%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT "]}",
                          l->offset, l->offset + 4 * n);
  l->offset += 4 * n;
  g_ptr_array_add (l->names, g_strdup (name));
  g_array_append_val (l->ndims, ndim);
  g_array_append_vals (l->shapes, s4, 4);
}

/* Plausible random values: unit-scale norms, small biases, weights of
 * variance 1 / fan_in, unit-variance Fourier features. */
static void
fill_random (const char *name, int ndim, const gint64 *shape, float *out, gsize n)
{
  guint32 x = g_str_hash (name) | 1u;
  const char *leaf = strrchr (name, '.');
  gboolean weight = leaf != NULL && strcmp (leaf, ".weight") == 0;
  double fan_in = ndim > 1 ? (double) n / (double) shape[0] : 1.0;

  for (gsize i = 0; i < n; i++)
    {
      double s;

      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      s = 2.0 * (x / 4294967296.0) - 1.0;
      if (strstr (name, "gaussian_matrix") != NULL)
        out[i] = (float) (sqrt (3.0) * s);
      else if (ndim <= 1)
        out[i] = (float) (weight ? 1.0 + 0.1 * s : 0.02 * s);
      else if (weight)
        out[i] = (float) (sqrt (3.0 / fan_in) * s);
      else
        out[i] = (float) (0.02 * s);
    }
}

/* A safetensors file holding every tensor of the image path and the
 * decoder of cfg, filled with random values. */
gboolean
lode_sam2_write_random_checkpoint (const LodeSam2Config *cfg, const char *path, GError **error)
{
  Layout l = { 0 };
  g_autoptr(GArray) enc = lode_sam2_config_encoder_tensors (cfg);
  FILE *f;
  guint64 hlen;
  gboolean ok = TRUE;

  l.header = g_string_new ("{");
  l.names = g_ptr_array_new_with_free_func (g_free);
  l.ndims = g_array_new (FALSE, FALSE, sizeof (int));
  l.shapes = g_array_new (FALSE, FALSE, sizeof (gint64));
  for (guint i = 0; i < enc->len; i++)
    {
      const LodeSam2TensorSpec *t = &g_array_index (enc, LodeSam2TensorSpec, i);

      layout_add (t->name, t->ndim, t->shape, &l);
    }
  lode_sam2_decoder_list_tensors (cfg, layout_add, &l);
  g_string_append_c (l.header, '}');
  while (l.header->len % 8 != 0)
    g_string_append_c (l.header, ' ');

  f = g_fopen (path, "wb");
  if (f == NULL)
    {
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno),
                   _("Cannot write “%s”: %s"), path, g_strerror (errno));
      ok = FALSE;
    }
  else
    {
      hlen = GUINT64_TO_LE ((guint64) l.header->len);
      ok = fwrite (&hlen, 8, 1, f) == 1 && fwrite (l.header->str, 1, l.header->len, f) == l.header->len;
      for (guint i = 0; ok && i < l.names->len; i++)
        {
          const gint64 *shape = &g_array_index (l.shapes, gint64, 4 * i);
          int ndim = g_array_index (l.ndims, int, i);
          gsize n = (gsize) (shape[0] * shape[1] * shape[2] * shape[3]);
          g_autofree float *v = g_new (float, n);

          fill_random (l.names->pdata[i], ndim, shape, v, n);
          ok = fwrite (v, sizeof (float), n, f) == n;
        }
      if (fclose (f) != 0)
        ok = FALSE;
      if (!ok)
        g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_IO, _("Cannot write “%s”"), path);
    }
  g_string_free (l.header, TRUE);
  g_ptr_array_unref (l.names);
  g_array_unref (l.ndims);
  g_array_unref (l.shapes);
  return ok;
}

/* ---- the benchmark ------------------------------------------------------ */

static double
now_ms (void)
{
  return g_get_monotonic_time () / 1000.0;
}

static int
cmp_double (gconstpointer a, gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return (x > y) - (x < y);
}

static double
peak_rss_mib (void)
{
  struct rusage ru;

  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;   /* KiB on Linux */
}

int
lode_bench_sam2 (int argc, char **argv)
{
  g_autofree char *checkpoint = NULL, *device = NULL, *precision = NULL;
  LodePrecision mode_precision;
  int size = 1024, clicks = 20, encodes = 1, patch = 128;
  const GOptionEntry entries[] = {
    { "checkpoint", 'c', 0, G_OPTION_ARG_FILENAME, &checkpoint, N_("SAM2.1 checkpoint (default: random weights in the tiny layout)"), N_("FILE") },
    { "device", 'd', 0, G_OPTION_ARG_STRING, &device, N_("cpu or cuda (default: auto)"), N_("DEVICE") },
    { "precision", 0, 0, G_OPTION_ARG_STRING, &precision, N_("The encoder's products on CUDA: fp32 (default), tf32 or bf16"), N_("MODE") },
    { "size", 's', 0, G_OPTION_ARG_INT, &size, N_("Model input size: 1024 or 512"), N_("PIXELS") },
    { "clicks", 'n', 0, G_OPTION_ARG_INT, &clicks, N_("Number of timed clicks (default 20)"), N_("N") },
    { "encodes", 'e', 0, G_OPTION_ARG_INT, &encodes, N_("Number of timed encodes (default 1)"), N_("N") },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (NULL);
  g_autoptr(GError) error = NULL;
  g_autofree char *tmpdir = NULL, *tmpfile = NULL, *where = NULL;
  g_autoptr(LodeSam2Predictor) predictor = NULL;
  g_autoptr(LodeSam2Embedding) emb = NULL;
  g_autofree guint8 *rgb = NULL;
  g_autofree double *times = NULL;
  LodeDeviceKind kind;
  double t0, load_ms, encode_ms = 0.0, first_ms = 0.0;
  const char *path;
  int status = LODE_EXIT_OK;

  g_option_context_set_summary (context,
    _("Time SAM2.1: loading, encoding a 128 x 128 patch, and clicks\n"
      "(prompt encoder and mask decoder), with the peak memory."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!lode_cli_parse (context, &argc, &argv))
    return LODE_EXIT_USAGE;
  if (size != 1024 && size != 512)
    {
      lode_cli_error ("bench sam2", _("--size must be 1024 or 512, not %d"), size);
      return LODE_EXIT_USAGE;
    }
  if (clicks < 1 || clicks > 100000 || encodes < 1 || encodes > 1000)
    {
      lode_cli_error ("bench sam2", _("--clicks and --encodes must be positive"));
      return LODE_EXIT_USAGE;
    }
  if (!lode_precision_parse (precision, &mode_precision))
    {
      lode_cli_error ("bench sam2", _("--precision must be fp32, tf32 or bf16, not “%s”"), precision);
      return LODE_EXIT_USAGE;
    }
  /* an unknown name, or cuda without a device, ends here */
  lode_device_choose (device, &error);
  if (error != NULL)
    {
      lode_cli_error ("bench sam2", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }

  if (checkpoint == NULL)
    {
      LodeSam2Config cfg;

      tmpdir = g_dir_make_tmp ("lode-bench-XXXXXX", &error);
      if (tmpdir == NULL)
        {
          lode_cli_error ("bench sam2", "%s", error->message);
          return LODE_EXIT_FAILURE;
        }
      tmpfile = g_build_filename (tmpdir, "sam2.1_hiera_tiny-random.safetensors", NULL);
      lode_sam2_config_init_size (&cfg, "tiny");
      t0 = now_ms ();
      if (!lode_sam2_write_random_checkpoint (&cfg, tmpfile, &error))
        {
          lode_cli_error ("bench sam2", "%s", error->message);
          g_unlink (tmpfile);
          g_rmdir (tmpdir);
          return LODE_EXIT_FAILURE;
        }
      g_print (_("checkpoint: random weights in the tiny layout (%.0f ms to write)\n"), now_ms () - t0);
      path = tmpfile;
    }
  else
    path = checkpoint;

  t0 = now_ms ();
  predictor = lode_sam2_predictor_open_on (path, NULL, size, device, &error);
  load_ms = now_ms () - t0;
  if (predictor == NULL)
    {
      lode_cli_error ("bench sam2", "%s", error->message);
      status = LODE_EXIT_FAILURE;
      goto out;
    }
  g_print (_("load: %.0f ms\n"), load_ms);
  lode_sam2_predictor_set_precision (predictor, mode_precision);

  /* a synthetic patch: a smooth background and a bright disc */
  rgb = g_malloc ((gsize) patch * patch * 3);
  for (int y = 0; y < patch; y++)
    for (int x = 0; x < patch; x++)
      {
        guint8 *px = rgb + ((gsize) y * patch + x) * 3;
        gboolean disc = (x - 60) * (x - 60) + (y - 70) * (y - 70) < 400;

        px[0] = disc ? 220 : (guint8) (40 + x / 2);
        px[1] = disc ? 200 : (guint8) (60 + y / 3);
        px[2] = disc ? 120 : 50;
      }
  /* On CUDA the first encode also starts the device and uploads the
   * weights: it runs once untimed, and is reported apart. */
  kind = lode_device_choose (device, NULL);
  if (kind == LODE_DEVICE_CUDA)
    {
      t0 = now_ms ();
      emb = lode_sam2_predictor_encode (predictor, rgb, patch, patch, &error);
      first_ms = now_ms () - t0;
      if (emb == NULL)
        {
          lode_cli_error ("bench sam2", "%s", error->message);
          status = LODE_EXIT_FAILURE;
          goto out;
        }
    }
  for (int i = 0; i < encodes; i++)
    {
      g_clear_pointer (&emb, lode_sam2_embedding_free);
      t0 = now_ms ();
      emb = lode_sam2_predictor_encode (predictor, rgb, patch, patch, &error);
      encode_ms += now_ms () - t0;
      if (emb == NULL)
        {
          lode_cli_error ("bench sam2", "%s", error->message);
          status = LODE_EXIT_FAILURE;
          goto out;
        }
    }
  /* the device the encoder was built on ("auto" falls back to the CPU
   * when the GPU has no room) */
  kind = g_str_equal (lode_sam2_predictor_device_name (predictor), "cuda") ? LODE_DEVICE_CUDA : LODE_DEVICE_CPU;
  where = lode_device_describe (kind);
  g_print (_("model: %s, input size %d, device %s, encoder in %s\n"), lode_sam2_predictor_model_name (predictor), size,
           where, lode_precision_name (kind == LODE_DEVICE_CUDA ? mode_precision : LODE_PRECISION_FP32));
  g_print (_("encode: %.0f ms (mean of %d)\n"), encode_ms / encodes, encodes);
  if (kind == LODE_DEVICE_CUDA)
    g_print (_("encode timed after a first one of %.0f ms (CUDA start, weights upload)\n"), first_ms);

  /* The first click on a patch prepares it (the prompt-independent part of
   * the first layer; on CUDA also the decoder's weights and the embedding
   * going to the device): timed apart. Then first clicks (one positive
   * point, three candidates) and refinement clicks (a positive and a
   * negative point with the previous best mask as input, one mask), as
   * the SAM2 tool makes them. */
  {
    float pt[2] = { 60.0f, 70.0f };
    int label[1] = { 1 };
    LodeSam2Click click = { 1, pt, label, FALSE, { 0 }, NULL, TRUE };
    LodeSam2Prediction *p;

    t0 = now_ms ();
    p = lode_sam2_predictor_predict (predictor, emb, patch, patch, &click, &error);
    first_ms = now_ms () - t0;
    if (p == NULL)
      {
        lode_cli_error ("bench sam2", "%s", error->message);
        status = LODE_EXIT_FAILURE;
        goto out;
      }
    lode_sam2_prediction_free (p);
  }
  g_print (_("clicks on: %s; the first click on the patch: %.1f ms\n"),
           lode_sam2_predictor_device_name (predictor), first_ms);
  times = g_new (double, clicks);
  for (int refine = 0; refine < 2; refine++)
    {
      double sum = 0.0;

      for (int i = 0; i < clicks; i++)
        {
          float pt[4] = { (float) (20 + (i * 37) % 90), (float) (15 + (i * 53) % 100),
                          (float) (10 + (i * 29) % 100), (float) (12 + (i * 41) % 100) };
          int label[2] = { 1, 0 };
          LodeSam2Click click = { 1, pt, label, FALSE, { 0 }, NULL, TRUE };
          LodeSam2Prediction *first = NULL, *p;

          if (refine)
            {
              first = lode_sam2_predictor_predict (predictor, emb, patch, patch, &click, &error);
              if (first == NULL)
                {
                  lode_cli_error ("bench sam2", "%s", error->message);
                  status = LODE_EXIT_FAILURE;
                  goto out;
                }
              click.n_points = 2;
              click.low_res_mask = lode_sam2_prediction_low_res (first, first->best);
              click.multimask = FALSE;
            }
          t0 = now_ms ();
          p = lode_sam2_predictor_predict (predictor, emb, patch, patch, &click, &error);
          times[i] = now_ms () - t0;
          g_clear_pointer (&first, lode_sam2_prediction_free);
          if (p == NULL)
            {
              lode_cli_error ("bench sam2", "%s", error->message);
              status = LODE_EXIT_FAILURE;
              goto out;
            }
          lode_sam2_prediction_free (p);
        }
      qsort (times, clicks, sizeof (double), cmp_double);
      for (int i = 0; i < clicks; i++)
        sum += times[i];
      if (refine)
        g_print (_("refinement click: median %.2f ms, mean %.2f ms, min %.2f ms, max %.2f ms "
                   "(%d clicks: two points and the previous mask, one mask each)\n"),
                 times[clicks / 2], sum / clicks, times[0], times[clicks - 1], clicks);
      else
        g_print (_("click: median %.2f ms, mean %.2f ms, min %.2f ms, max %.2f ms (%d clicks, three masks each)\n"),
                 times[clicks / 2], sum / clicks, times[0], times[clicks - 1], clicks);
    }
  g_print (_("peak memory: %.0f MiB\n"), peak_rss_mib ());

out:
  if (tmpfile != NULL)
    {
      g_unlink (tmpfile);
      g_rmdir (tmpdir);
    }
  return status;
}
