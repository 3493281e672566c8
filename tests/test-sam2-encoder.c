/* The SAM2.1 image encoder: configurations from checkpoint shapes (all four
 * published sizes, unknown and damaged ones), preprocessing, and parity with
 * the official PyTorch model (tests/reference/sam2_encoder_reference.py) on
 * a reduced configuration (suite unit) and on the real tiny configuration at
 * 1024 (suite slow: test-sam2-encoder-tiny.c builds this file with
 * LODE_TEST_SAM2_TINY).
 *
 * Weights come from the deterministic rule of lode-test-weights.h, written
 * into PyTorch checkpoints with the genuine tiny pickle (or the reduced
 * model's state-dict layout) and read back through lode_checkpoint_open. */
#include "config.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "lode-checkpoint.h"
#include "lode-sam2-config.h"
#include "lode-sam2-encoder.h"
#include "lode-test-ckpt.h"
#include "lode-test-util.h"
#include "lode-test-weights.h"

/* The test image, as test_image() in the reference script: w x h RGB. */
#define IMAGE_W 160
#define IMAGE_H 96

static guint8 *
make_image (void)
{
  guint8 *rgb = g_new (guint8, IMAGE_W * IMAGE_H * 3);

  for (int y = 0; y < IMAGE_H; y++)
    for (int x = 0; x < IMAGE_W; x++)
      {
        guint8 *p = rgb + 3 * (y * IMAGE_W + x);

        p[0] = (guint8) ((3 * x + 5 * y) % 256);
        p[1] = (guint8) ((x * y + 17) % 256);
        p[2] = (guint8) ((x * x + 7 * y + 11 * ((x / 9 + y / 7) % 3)) % 256);
      }
  return rgb;
}

/* ---- reference fixtures ------------------------------------------------- */

typedef struct {
  float *data;            /* every record, one after the other */
  GHashTable *records;    /* name -> Record */
} Fixture;

typedef struct {
  gsize offset, count, stride, numel;
} Record;

static void
fixture_free (Fixture *f)
{
  g_free (f->data);
  g_hash_table_unref (f->records);
  g_free (f);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Fixture, fixture_free)

static Fixture *
fixture_read (const char *name)
{
  g_autofree char *f32 = g_strconcat ("encoder-", name, ".f32", NULL);
  g_autofree char *tsv = g_strconcat ("encoder-", name, ".tsv", NULL);
  g_autofree char *data_path = g_test_build_filename (G_TEST_DIST, "data", "sam2", f32, NULL);
  g_autofree char *index_path = g_test_build_filename (G_TEST_DIST, "data", "sam2", tsv, NULL);
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;
  g_autoptr(GError) error = NULL;
  Fixture *f = g_new0 (Fixture, 1);
  gsize len;

  g_file_get_contents (data_path, (char **) &f->data, &len, &error);
  g_assert_no_error (error);
  g_file_get_contents (index_path, &text, NULL, &error);
  g_assert_no_error (error);
  f->records = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 1; lines[i] != NULL && lines[i][0] != '\0'; i++)
    {
      g_auto(GStrv) cols = g_strsplit (lines[i], "\t", -1);
      g_auto(GStrv) dims = NULL;
      Record *r = g_new0 (Record, 1);

      g_assert_cmpuint (g_strv_length (cols), ==, 5);
      r->offset = g_ascii_strtoull (cols[1], NULL, 10);
      r->count = g_ascii_strtoull (cols[2], NULL, 10);
      r->stride = g_ascii_strtoull (cols[3], NULL, 10);
      r->numel = 1;
      dims = g_strsplit (cols[4], ",", -1);
      for (guint d = 0; dims[d] != NULL; d++)
        r->numel *= g_ascii_strtoull (dims[d], NULL, 10);
      g_assert_cmpuint ((r->offset + r->count) * sizeof (float), <=, len);
      g_assert_cmpuint (r->count, ==, (r->numel + r->stride - 1) / r->stride);
      g_hash_table_insert (f->records, g_strdup (cols[0]), r);
    }
  return f;
}

/* The largest |got - want| over the record's samples, divided by the
 * largest |want|. */
static double
fixture_compare (Fixture *f, const char *name, const float *got, gsize numel)
{
  Record *r = g_hash_table_lookup (f->records, name);
  double err = 0.0, scale = 0.0;

  g_assert_nonnull (r);
  g_assert_cmpuint (r->numel, ==, numel);
  for (gsize i = 0; i < r->count; i++)
    {
      double want = f->data[r->offset + i], v = got[i * r->stride];

      g_assert_true (isfinite (v));
      err = MAX (err, fabs (v - want));
      scale = MAX (scale, fabs (want));
    }
  g_assert_cmpfloat (scale, >, 0.0);
  g_test_message ("%s: max abs error %.3g, max abs value %.3g, relative %.3g",
                  name, err, scale, err / scale);
  return err / scale;
}

/* ---- checkpoints -------------------------------------------------------- */

static gboolean
on_image_path (const char *name)
{
  return g_str_has_prefix (name, "image_encoder.")
         || g_str_has_prefix (name, "sam_mask_decoder.conv_s")
         || g_str_equal (name, "no_mem_embed");
}

/* The weights rule on the image path, zeros elsewhere. */
static gboolean
fill_rule (const LodeTestTensor *t, float *out, gpointer user_data)
{
  if (!on_image_path (t->name))
    return FALSE;
  lode_test_weights_fill (t->name, t->shape, t->ndim, out);
  return TRUE;
}

#ifdef LODE_TEST_SAM2_TINY
static GBytes *
read_shared (const char *file)
{
  const char *shared = lode_test_shared_dir ();
  g_autofree char *path = NULL;
  g_autoptr(GMappedFile) map = NULL;
  g_autoptr(GError) error = NULL;

  if (shared == NULL)
    return NULL;
  path = g_build_filename (shared, "reference", "sam2", file, NULL);
  map = g_mapped_file_new (path, FALSE, &error);
  g_assert_no_error (error);
  return g_mapped_file_get_bytes (map);
}
#endif

static LodeTestLayout *
read_tiny_layout (void)
{
  const char *shared = lode_test_shared_dir ();
  g_autofree char *path = NULL;

  if (shared == NULL)
    return NULL;
  path = g_build_filename (shared, "reference", "sam2", "sam2.1_hiera_tiny.layout.tsv", NULL);
  return lode_test_layout_read (path);
}

/* A checkpoint of layout in dir/file, from pkl when given (the genuine
 * pickle), else from a generated one. values: the weights rule on the image
 * path; otherwise sparse zeros. */
static LodeCheckpoint *
write_and_open (const char *dir, const char *file, const LodeTestLayout *layout, GBytes *pkl,
                gboolean values)
{
  g_autofree char *path = g_build_filename (dir, file, NULL);
  g_autoptr(GByteArray) made = NULL;
  g_autoptr(GError) error = NULL;
  const LodeTestTensor *tensors = (const LodeTestTensor *) layout->tensors->data;
  const guint8 *bytes;
  gsize len;
  LodeCheckpoint *ckpt;

  if (pkl != NULL)
    bytes = g_bytes_get_data (pkl, &len);
  else
    {
      made = lode_test_pickle_tensors (tensors, layout->tensors->len, LODE_TEST_WRAP_MODEL, FALSE);
      bytes = made->data;
      len = made->len;
    }
  if (values)
    lode_test_ckpt_write_with (path, "archive", bytes, len, tensors, layout->tensors->len, fill_rule, NULL);
  else
    lode_test_ckpt_write (path, "archive", bytes, len, tensors, layout->tensors->len, FALSE);
  ckpt = lode_checkpoint_open (path, &error);
  g_assert_no_error (error);
  /* the file stays mapped; its name can go */
  g_unlink (path);
  return ckpt;
}

/* ---- configuration ------------------------------------------------------ */

#ifndef LODE_TEST_SAM2_TINY

static void
test_config_table (void)
{
  LodeSam2Config cfg;
  static const char *names[] = { "tiny", "small", "base_plus", "large" };
  static const int blocks[] = { 12, 16, 24, 48 };

  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autoptr(GError) error = NULL;

      g_assert_true (lode_sam2_config_init_size (&cfg, names[i]));
      g_assert_cmpstr (cfg.size_name, ==, names[i]);
      g_assert_cmpint (lode_sam2_config_n_blocks (&cfg), ==, blocks[i]);
      g_assert_cmpint (cfg.image_size, ==, 1024);
      g_assert_cmpint (cfg.d_model, ==, 256);
      g_assert_cmpint (cfg.backbone_channels[3], ==, cfg.embed_dim);
      g_assert_cmpint (cfg.backbone_channels[0], ==, 8 * cfg.embed_dim);
      g_assert_true (lode_sam2_config_complete (&cfg, &error));
      g_assert_no_error (error);
      cfg.image_size = 512;
      g_assert_true (lode_sam2_config_complete (&cfg, &error));
      g_assert_no_error (error);
    }
  g_assert_true (lode_sam2_config_init_size (&cfg, "tiny"));
  g_assert_cmpint (cfg.n_global, ==, 3);
  g_assert_cmpint (cfg.global_blocks[2], ==, 9);
  g_assert_true (lode_sam2_config_block_is_global (&cfg, 7));
  g_assert_false (lode_sam2_config_block_is_global (&cfg, 8));
  g_assert_cmpint (lode_sam2_config_block_stage (&cfg, 3), ==, 2);
  g_assert_cmpint (lode_sam2_config_block_stage (&cfg, 10), ==, 3);
  g_assert_false (lode_sam2_config_init_size (&cfg, "huge"));
  g_assert_cmpstr (cfg.size_name, ==, "tiny");

  /* geometry that cannot run */
  {
    g_autoptr(GError) error = NULL;

    cfg.image_size = 1000;
    g_assert_false (lode_sam2_config_complete (&cfg, &error));
    g_assert_error (error, LODE_SAM2_CONFIG_ERROR, LODE_SAM2_CONFIG_ERROR_INVALID);
    g_assert_nonnull (strstr (error->message, "multiple of 32"));
  }
  {
    g_autoptr(GError) error = NULL;

    lode_sam2_config_init_size (&cfg, "tiny");
    cfg.window_spec[1] = 5;   /* the window block 3 pools q in */
    g_assert_false (lode_sam2_config_complete (&cfg, &error));
    g_assert_error (error, LODE_SAM2_CONFIG_ERROR, LODE_SAM2_CONFIG_ERROR_INVALID);
  }
  {
    g_autoptr(GError) error = NULL;

    lode_sam2_config_init_size (&cfg, "tiny");
    cfg.global_blocks[0] = 12;
    g_assert_false (lode_sam2_config_complete (&cfg, &error));
    g_assert_error (error, LODE_SAM2_CONFIG_ERROR, LODE_SAM2_CONFIG_ERROR_INVALID);
  }
}

/* The published sizes from checkpoints built on the genuine layout; none is
 * run, their storages are sparse zeros. */
static void
test_config_sizes (void)
{
  static const struct {
    const char *name;
    int embed, heads, stages[4], global0, window2, bkg;
  } sizes[] = {
    { "tiny", 96, 1, { 1, 2, 7, 2 }, 5, 14, 7 },
    { "small", 96, 1, { 1, 2, 11, 2 }, 7, 14, 7 },
    { "base_plus", 112, 2, { 2, 3, 16, 3 }, 12, 14, 14 },
    { "large", 144, 2, { 2, 6, 36, 4 }, 23, 16, 7 },
  };
  g_autoptr(LodeTestLayout) tiny = read_tiny_layout ();
  g_autofree char *dir = NULL;

  if (tiny == NULL)
    return;
  dir = lode_test_mkdtemp ();
  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      g_autoptr(LodeTestLayout) layout = lode_test_layout_derive_sam2 (tiny, sizes[i].embed, sizes[i].stages,
                                                                        sizes[i].bkg);
      g_autoptr(LodeCheckpoint) ckpt = write_and_open (dir, "size.pt", layout, NULL, FALSE);
      g_autoptr(GError) error = NULL;
      LodeSam2Config cfg;

      g_assert_true (lode_sam2_config_from_checkpoint (ckpt, &cfg, &error));
      g_assert_no_error (error);
      g_assert_cmpstr (cfg.size_name, ==, sizes[i].name);
      g_assert_cmpint (cfg.embed_dim, ==, sizes[i].embed);
      g_assert_cmpint (cfg.num_heads, ==, sizes[i].heads);
      g_assert_cmpmem (cfg.stages, sizeof cfg.stages, sizes[i].stages, sizeof sizes[i].stages);
      g_assert_cmpint (cfg.global_blocks[0], ==, sizes[i].global0);
      g_assert_cmpint (cfg.window_spec[2], ==, sizes[i].window2);
      g_assert_cmpint (cfg.pos_embed_bkg[0], ==, sizes[i].bkg);
      g_assert_cmpint (cfg.pos_embed_window, ==, 8);
      g_assert_cmpint (cfg.d_model, ==, 256);
      g_assert_cmpint (cfg.backbone_channels[0], ==, 8 * sizes[i].embed);
      g_assert_cmpint (cfg.image_size, ==, 1024);
    }
  lode_test_rmtree (dir);
}

/* Missing tensors, wrong shapes and unknown trunks say what they found. */
static void
test_config_errors (void)
{
  g_autoptr(LodeTestLayout) tiny = read_tiny_layout ();
  g_autofree char *dir = NULL;
  static const int odd_stages[4] = { 1, 2, 5, 2 };

  if (tiny == NULL)
    return;
  dir = lode_test_mkdtemp ();

  /* a trunk of no published size */
  {
    g_autoptr(LodeTestLayout) layout = lode_test_layout_derive_sam2 (tiny, 96, odd_stages, 7);
    g_autoptr(LodeCheckpoint) ckpt = write_and_open (dir, "odd.pt", layout, NULL, FALSE);
    g_autoptr(GError) error = NULL;
    LodeSam2Config cfg;

    g_assert_false (lode_sam2_config_from_checkpoint (ckpt, &cfg, &error));
    g_assert_error (error, LODE_SAM2_CONFIG_ERROR, LODE_SAM2_CONFIG_ERROR_UNKNOWN_SIZE);
    g_assert_nonnull (strstr (error->message, "1, 2, 5, 2"));
    g_assert_nonnull (strstr (error->message, "embedding width 96"));
  }

  /* one tensor left out, one tensor with a wrong shape */
  for (int c = 0; c < 2; c++)
    {
      const char *victim = c == 0 ? "image_encoder.neck.convs.2.conv.bias"
                                  : "image_encoder.trunk.blocks.4.mlp.layers.1.weight";
      g_autoptr(LodeTestLayout) layout = lode_test_layout_new ();
      g_autoptr(LodeCheckpoint) ckpt = NULL;
      g_autoptr(GError) error = NULL;
      LodeSam2Config cfg;

      for (guint i = 0; i < tiny->tensors->len; i++)
        {
          const LodeTestTensor *t = &g_array_index (tiny->tensors, LodeTestTensor, i);
          gint64 shape[8];

          memcpy (shape, t->shape, sizeof shape);
          if (g_str_equal (t->name, victim))
            {
              if (c == 0)
                continue;
              shape[1] -= 1;
            }
          lode_test_layout_add (layout, t->name, NULL, t->ndim, shape);
        }
      ckpt = write_and_open (dir, "damaged.pt", layout, NULL, FALSE);
      int code = c == 0 ? LODE_SAM2_CONFIG_ERROR_MISSING : LODE_SAM2_CONFIG_ERROR_SHAPE;

      g_assert_false (lode_sam2_config_from_checkpoint (ckpt, &cfg, &error));
      g_assert_error (error, LODE_SAM2_CONFIG_ERROR, code);
      g_assert_nonnull (strstr (error->message, victim));
      if (c == 1)
        g_assert_nonnull (strstr (error->message, "[384, 1535]"));
    }
  lode_test_rmtree (dir);
}

/* ---- preprocessing ------------------------------------------------------ */

/* A flat colour stays flat whether the image grows or shrinks (the
 * antialiasing taps are normalised), and a left-right ramp stays ordered. */
static void
test_preprocess (void)
{
  static const int sizes[][2] = { { 37, 21 }, { 300, 500 }, { 64, 64 } };
  static const guint8 colour[3] = { 200, 30, 120 };
  static const float mean[3] = { 0.485f, 0.456f, 0.406f };
  static const float std[3] = { 0.229f, 0.224f, 0.225f };
  const int s = 64;

  for (guint k = 0; k < G_N_ELEMENTS (sizes); k++)
    {
      int w = sizes[k][0], h = sizes[k][1];
      g_autofree guint8 *rgb = g_new (guint8, (gsize) w * h * 3);
      g_autofree float *out = g_new (float, 3 * s * s);

      for (int i = 0; i < w * h; i++)
        memcpy (rgb + 3 * i, colour, 3);
      lode_sam2_preprocess (rgb, w, h, s, out);
      for (int c = 0; c < 3; c++)
        for (int i = 0; i < s * s; i++)
          g_assert_cmpfloat_with_epsilon (out[c * s * s + i], (colour[c] / 255.0f - mean[c]) / std[c], 1e-5);

      for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
          memset (rgb + 3 * (y * w + x), x * 255 / (w - 1), 3);
      lode_sam2_preprocess (rgb, w, h, s, out);
      for (int y = 0; y < s; y++)
        for (int x = 1; x < s; x++)
          g_assert_cmpfloat (out[y * s + x], >=, out[y * s + x - 1]);
      g_assert_cmpfloat (out[0], <, out[s - 1]);
    }
}

#endif

/* ---- parity ------------------------------------------------------------- */

/* Runs the encoder of ckpt under cfg on the test image and compares with
 * the fixture; tol bounds each tensor's error relative to its largest
 * value. */
static void
check_parity (LodeCheckpoint *ckpt, const LodeSam2Config *cfg, const char *fixture, double tol)
{
  g_autoptr(Fixture) f = fixture_read (fixture);
  g_autoptr(LodeSam2Encoder) enc = NULL;
  g_autoptr(LodeSam2Embedding) e = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree guint8 *rgb = make_image ();
  g_autofree float *input = NULL;
  int s = cfg->image_size, s4 = s / 4, s8 = s / 8, s16 = s / 16;
  gint64 t0;

  /* preprocessing: the same floats up to rounding (resizing is a few
   * multiply-adds of values in [0, 1]) */
  input = g_new (float, (gsize) 3 * s * s);
  lode_sam2_preprocess (rgb, IMAGE_W, IMAGE_H, s, input);
  g_assert_cmpfloat (fixture_compare (f, "input", input, (gsize) 3 * s * s), <, 1e-6);

  enc = lode_sam2_encoder_new (ckpt, cfg, &error);
  g_assert_no_error (error);
  /* a cancelled run stops with G_IO_ERROR_CANCELLED and leaves the encoder
   * as good as new (the run below must still match the fixture) */
  {
    g_autoptr(GCancellable) cancellable = g_cancellable_new ();

    g_cancellable_cancel (cancellable);
    g_assert_null (lode_sam2_encoder_run_rgb (enc, rgb, IMAGE_W, IMAGE_H, cancellable, &error));
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
    g_clear_error (&error);
  }
  t0 = g_get_monotonic_time ();
  e = lode_sam2_encoder_run_rgb (enc, rgb, IMAGE_W, IMAGE_H, NULL, &error);
  g_assert_no_error (error);
  g_test_message ("%s at %d: encoder %.2f s, weights %" G_GSIZE_FORMAT " MiB, work %" G_GSIZE_FORMAT " MiB",
                  fixture, s, (g_get_monotonic_time () - t0) / 1e6,
                  lode_sam2_encoder_weight_bytes (enc) >> 20, lode_sam2_encoder_work_bytes (enc) >> 20);
  g_assert_cmpint (e->image_size, ==, s);
  g_assert_cmpint (e->embed_size, ==, s16);
  g_assert_cmpfloat (fixture_compare (f, "image_embed", e->image_embed, (gsize) cfg->d_model * s16 * s16), <, tol);
  g_assert_cmpfloat (fixture_compare (f, "high_res_0", e->high_res[0], (gsize) cfg->d_model / 8 * s4 * s4), <, tol);
  g_assert_cmpfloat (fixture_compare (f, "high_res_1", e->high_res[1], (gsize) cfg->d_model / 4 * s8 * s8), <, tol);
}

#ifndef LODE_TEST_SAM2_TINY
/* The reduced configuration of the reference script. */
static void
reduced_config (LodeSam2Config *cfg)
{
  g_autoptr(GError) error = NULL;

  lode_sam2_config_init_size (cfg, "tiny");
  cfg->size_name = "custom";
  cfg->embed_dim = 16;
  cfg->num_heads = 1;
  cfg->stages[0] = 1;
  cfg->stages[1] = 2;
  cfg->stages[2] = 3;
  cfg->stages[3] = 2;
  cfg->n_global = 1;
  cfg->global_blocks[0] = 4;
  cfg->window_spec[0] = 8;
  cfg->window_spec[1] = 4;
  cfg->window_spec[2] = 6;
  cfg->window_spec[3] = 3;
  cfg->pos_embed_bkg[0] = cfg->pos_embed_bkg[1] = 5;
  cfg->d_model = 32;
  cfg->image_size = 128;
  g_assert_true (lode_sam2_config_complete (cfg, &error));
  g_assert_no_error (error);
}

/* Reduced configuration at 128: float32 on both sides through 8 blocks.
 * Measured: at most 8.3e-7 of the largest value (a few float32 roundings:
 * sgemm, the folded 1x1 convolutions and the softmax sum in other orders).
 * The bound, 1e-5, leaves 10x for other BLAS kernels and still fails on
 * subtle slips: LayerNorm's eps at 1e-5 instead of 1e-6 gives 1.3e-5 to
 * 5.6e-5; a wrong window, pooling or weight gives errors of order 1. */
static void
test_parity_reduced (void)
{
  g_autofree char *layout_path = g_test_build_filename (G_TEST_DIST, "data", "sam2",
                                                        "encoder-reduced.layout.tsv", NULL);
  g_autoptr(LodeTestLayout) layout = lode_test_layout_read (layout_path);
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autoptr(LodeCheckpoint) ckpt = write_and_open (dir, "reduced.pt", layout, NULL, TRUE);
  g_autoptr(GError) error = NULL;
  LodeSam2Config cfg;

  /* no published size has this trunk */
  g_assert_false (lode_sam2_config_from_checkpoint (ckpt, &cfg, &error));
  g_assert_error (error, LODE_SAM2_CONFIG_ERROR, LODE_SAM2_CONFIG_ERROR_UNKNOWN_SIZE);
  g_assert_nonnull (strstr (error->message, "1, 2, 3, 2"));

  reduced_config (&cfg);
  check_parity (ckpt, &cfg, "reduced", 1e-5);

  /* an input size the four stages cannot halve */
  {
    LodeSam2Config bad = cfg;
    LodeSam2Encoder *enc;

    g_clear_error (&error);
    bad.image_size = 112;
    enc = lode_sam2_encoder_new (ckpt, &bad, &error);
    g_assert_null (enc);
    g_assert_error (error, LODE_SAM2_CONFIG_ERROR, LODE_SAM2_CONFIG_ERROR_INVALID);
  }
  lode_test_rmtree (dir);
}

#else

/* The real tiny configuration at 1024 (and 512) from the genuine pickle. Twelve
 * blocks, global attention over 4096 tokens and 768-wide MLPs accumulate
 * more rounding: measured 1.2e-6 of the largest value; the bound is 2e-5. */
static void
test_parity_tiny (void)
{
  g_autoptr(LodeTestLayout) layout = read_tiny_layout ();
  g_autoptr(GBytes) pkl = read_shared ("sam2.1_hiera_tiny.data.pkl");
  g_autofree char *dir = NULL;
  g_autoptr(LodeCheckpoint) ckpt = NULL;
  g_autoptr(GError) error = NULL;
  LodeSam2Config cfg;

  if (layout == NULL || pkl == NULL)
    return;
  dir = lode_test_mkdtemp ();
  ckpt = write_and_open (dir, "sam2.1_hiera_tiny.pt", layout, pkl, TRUE);
  g_assert_true (lode_sam2_config_from_checkpoint (ckpt, &cfg, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (cfg.size_name, ==, "tiny");
  check_parity (ckpt, &cfg, "tiny", 2e-5);
  /* Lode's faster input size: the same weights, padded windows in the last
   * two stages */
  cfg.image_size = 512;
  g_assert_true (lode_sam2_config_complete (&cfg, &error));
  g_assert_no_error (error);
  check_parity (ckpt, &cfg, "tiny512", 2e-5);
  lode_test_rmtree (dir);
}
#endif

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, NULL);
#ifdef LODE_TEST_SAM2_TINY
  g_test_add_func ("/sam2-encoder/parity-tiny", test_parity_tiny);
#else
  g_test_add_func ("/sam2-encoder/config-table", test_config_table);
  g_test_add_func ("/sam2-encoder/config-sizes", test_config_sizes);
  g_test_add_func ("/sam2-encoder/config-errors", test_config_errors);
  g_test_add_func ("/sam2-encoder/preprocess", test_preprocess);
  g_test_add_func ("/sam2-encoder/parity-reduced", test_parity_reduced);
#endif
  return g_test_run ();
}
