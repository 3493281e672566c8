/* Checkpoint readers: the SAM2.1 tiny checkpoint assembled from its genuine
 * data.pkl, the other SAM2.1 sizes from generated pickles, the official
 * file cut short, hostile pickles and archives, fp16/bf16 and strided
 * storages, and safetensors files good and bad. */
#include "config.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "lode-checkpoint.h"
#include "lode-test-ckpt.h"
#include "lode-test-util.h"

/* The genuine layout: key, shape "[a, b]", dtype, storage key. */
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

static GBytes *
read_genuine_pickle (void)
{
  const char *shared = lode_test_shared_dir ();
  g_autofree char *path = NULL;
  g_autoptr(GMappedFile) map = NULL;
  g_autoptr(GError) error = NULL;

  if (shared == NULL)
    return NULL;
  path = g_build_filename (shared, "reference", "sam2", "sam2.1_hiera_tiny.data.pkl", NULL);
  map = g_mapped_file_new (path, FALSE, &error);
  g_assert_no_error (error);
  return g_mapped_file_get_bytes (map);
}

static void
assert_shape (LodeCheckpoint *ckpt, const char *name, int ndim, const gint64 *shape)
{
  gint64 got[LODE_TENSOR_MAX_DIMS];
  int got_ndim = -1;

  if (!lode_checkpoint_shape (ckpt, name, &got_ndim, got))
    g_error ("tensor %s is missing", name);
  g_assert_cmpint (got_ndim, ==, ndim);
  for (int d = 0; d < ndim; d++)
    g_assert_cmpint (got[d], ==, shape[d]);
}

#define ASSERT_SHAPE(ckpt, name, ...) G_STMT_START { \
    const gint64 shape_[] = { __VA_ARGS__ }; \
    assert_shape ((ckpt), (name), G_N_ELEMENTS (shape_), shape_); \
  } G_STMT_END

/* Genuine data.pkl + generated storages -------------------------------- */

static void
test_sam2_tiny (void)
{
  g_autoptr(LodeTestLayout) layout = read_tiny_layout ();
  g_autoptr(GBytes) pkl = read_genuine_pickle ();
  g_autofree char *dir = NULL;
  g_autofree char *path = NULL;
  g_autoptr(LodeCheckpoint) ckpt = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) image = NULL;
  LodeTestTensor *t;
  const guint spot[] = { 0, 7, 11, 159, 300, 470 };

  if (layout == NULL || pkl == NULL)
    return;
  g_assert_cmpuint (layout->tensors->len, ==, 471);
  dir = lode_test_mkdtemp ();
  path = g_build_filename (dir, "sam2.1_hiera_tiny.pt", NULL);
  lode_test_ckpt_write (path, "sam2.1_hiera_tiny", g_bytes_get_data (pkl, NULL), g_bytes_get_size (pkl),
                        (LodeTestTensor *) layout->tensors->data, layout->tensors->len, TRUE);

  ckpt = lode_checkpoint_open (path, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (lode_checkpoint_format (ckpt), ==, "pytorch");
  g_assert_cmpuint (lode_checkpoint_n_tensors (ckpt), ==, 471);
  for (guint i = 0; i < layout->tensors->len; i++)
    {
      t = &g_array_index (layout->tensors, LodeTestTensor, i);
      g_assert_cmpstr (lode_checkpoint_name (ckpt, i), ==, t->name);
      assert_shape (ckpt, t->name, t->ndim, t->shape);
      g_assert_cmpstr (lode_checkpoint_dtype (ckpt, t->name), ==, "float32");
    }
  ASSERT_SHAPE (ckpt, "image_encoder.trunk.patch_embed.proj.weight", 96, 3, 7, 7);
  image = lode_checkpoint_names_with_prefix (ckpt, "image_encoder.");
  g_assert_cmpuint (image->len, ==, 162);
  g_assert_false (lode_checkpoint_has (ckpt, "model"));
  g_assert_null (lode_checkpoint_dtype (ckpt, "no.such.tensor"));

  /* values land where the storage key says: element i of storage k */
  for (guint s = 0; s < G_N_ELEMENTS (spot); s++)
    {
      g_autoptr(LodeTensor) tensor = NULL;
      guint64 key;

      t = &g_array_index (layout->tensors, LodeTestTensor, spot[s]);
      key = g_ascii_strtoull (t->key, NULL, 10);
      tensor = lode_checkpoint_load (ckpt, t->name, &error);
      g_assert_no_error (error);
      g_assert_cmpstr (tensor->name, ==, t->name);
      g_assert_cmpuint (tensor->numel, ==, (guint64) t->storage_numel);
      for (gsize i = 0; i < tensor->numel; i += 1 + tensor->numel / 97)
        g_assert_cmpfloat (tensor->data[i], ==, lode_test_ckpt_value (key, i));
      g_assert_cmpfloat (tensor->data[tensor->numel - 1], ==, lode_test_ckpt_value (key, tensor->numel - 1));
    }

  {
    g_autoptr(LodeTensor) none = lode_checkpoint_load (ckpt, "image_encoder.trunk.nothing", &error);

    g_assert_null (none);
    g_assert_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_MISSING);
    g_assert_nonnull (strstr (error->message, "image_encoder.trunk.nothing"));
  }
  g_clear_pointer (&ckpt, lode_checkpoint_free);
  lode_test_rmtree (dir);
}

/* The other SAM2.1 sizes, from the tiny layout and the config table ----- */

typedef struct {
  const char *name;
  int embed;
  int stages[4];
  int bkg;
} Sam2Config;

static const Sam2Config sam2_configs[] = {
  { "tiny", 96, { 1, 2, 7, 2 }, 7 },
  { "small", 96, { 1, 2, 11, 2 }, 7 },
  { "base_plus", 112, { 2, 3, 16, 3 }, 14 },
  { "large", 144, { 2, 6, 36, 4 }, 7 },
};

static LodeTestLayout *
derive_layout (const LodeTestLayout *tiny, const Sam2Config *cfg)
{
  return lode_test_layout_derive_sam2 (tiny, cfg->embed, cfg->stages, cfg->bkg);
}

static void
test_sam2_sizes (void)
{
  g_autoptr(LodeTestLayout) tiny = read_tiny_layout ();
  g_autofree char *dir = NULL;

  if (tiny == NULL)
    return;
  dir = lode_test_mkdtemp ();

  /* the derivation reproduces the genuine tiny layout exactly */
  {
    g_autoptr(LodeTestLayout) again = derive_layout (tiny, &sam2_configs[0]);

    g_assert_cmpuint (again->tensors->len, ==, tiny->tensors->len);
    for (guint i = 0; i < tiny->tensors->len; i++)
      {
        LodeTestTensor *a = &g_array_index (tiny->tensors, LodeTestTensor, i);
        LodeTestTensor *b = &g_array_index (again->tensors, LodeTestTensor, i);

        g_assert_cmpstr (a->name, ==, b->name);
        g_assert_cmpstr (a->key, ==, b->key);
        g_assert_cmpint (a->ndim, ==, b->ndim);
        g_assert_cmpmem (a->shape, sizeof a->shape, b->shape, sizeof b->shape);
      }
  }

  for (guint c = 1; c < G_N_ELEMENTS (sam2_configs); c++)
    {
      const Sam2Config *cfg = &sam2_configs[c];
      g_autoptr(LodeTestLayout) layout = derive_layout (tiny, cfg);
      g_autoptr(GByteArray) pkl = lode_test_pickle_tensors ((LodeTestTensor *) layout->tensors->data,
                                                            layout->tensors->len, LODE_TEST_WRAP_MODEL, FALSE);
      g_autofree char *top = g_strdup_printf ("sam2.1_hiera_%s", cfg->name);
      g_autofree char *file = g_strconcat (top, ".pt", NULL);
      g_autofree char *path = g_build_filename (dir, file, NULL);
      g_autoptr(LodeCheckpoint) ckpt = NULL;
      g_autoptr(GError) error = NULL;
      g_autoptr(LodeTensor) weight = NULL;
      g_autoptr(GPtrArray) blocks = NULL;
      int n_blocks = cfg->stages[0] + cfg->stages[1] + cfg->stages[2] + cfg->stages[3];
      gint64 e = cfg->embed;
      char name[128];

      /* storages are sparse zeros: the large file is ~900 MB on paper */
      lode_test_ckpt_write (path, top, pkl->data, pkl->len,
                            (LodeTestTensor *) layout->tensors->data, layout->tensors->len, FALSE);
      ckpt = lode_checkpoint_open (path, &error);
      g_assert_no_error (error);
      g_assert_cmpuint (lode_checkpoint_n_tensors (ckpt), ==, layout->tensors->len);

      ASSERT_SHAPE (ckpt, "image_encoder.trunk.patch_embed.proj.weight", e, 3, 7, 7);
      ASSERT_SHAPE (ckpt, "image_encoder.trunk.pos_embed", 1, e, cfg->bkg, cfg->bkg);
      g_snprintf (name, sizeof name, "image_encoder.trunk.blocks.%d.mlp.layers.1.weight", n_blocks - 1);
      ASSERT_SHAPE (ckpt, name, 8 * e, 32 * e);
      g_snprintf (name, sizeof name, "image_encoder.trunk.blocks.%d.norm1.weight", n_blocks);
      g_assert_false (lode_checkpoint_has (ckpt, name));
      g_snprintf (name, sizeof name, "image_encoder.trunk.blocks.%d.proj.weight",
                  cfg->stages[0] + cfg->stages[1]);
      ASSERT_SHAPE (ckpt, name, 4 * e, 2 * e);
      ASSERT_SHAPE (ckpt, "image_encoder.neck.convs.0.conv.weight", 256, 8 * e, 1, 1);
      ASSERT_SHAPE (ckpt, "image_encoder.neck.convs.3.conv.weight", 256, e, 1, 1);
      ASSERT_SHAPE (ckpt, "sam_mask_decoder.iou_token.weight", 1, 256);
      blocks = lode_checkpoint_names_with_prefix (ckpt, "image_encoder.trunk.blocks.");
      g_assert_cmpuint (blocks->len, ==, 12 * n_blocks + 2 * 3);

      weight = lode_checkpoint_load (ckpt, name, &error);
      g_assert_no_error (error);
      g_assert_cmpuint (weight->numel, ==, (gsize) (4 * e * 2 * e));
      g_assert_cmpfloat (weight->data[weight->numel - 1], ==, 0.0f);
      g_clear_pointer (&ckpt, lode_checkpoint_free);
      g_unlink (path);
    }
  lode_test_rmtree (dir);
}

/* Cut short -------------------------------------------------------------- */

static void
test_truncated_official (void)
{
  const char *shared = lode_test_shared_dir ();
  g_autofree char *path = NULL;
  g_autoptr(GError) error = NULL;
  LodeCheckpoint *ckpt;

  if (shared == NULL)
    return;
  path = g_build_filename (shared, "reference", "sam2", "sam2.1_hiera_tiny.truncated.pt", NULL);
  ckpt = lode_checkpoint_open (path, &error);
  g_assert_null (ckpt);
  g_assert_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_TRUNCATED);
  g_assert_nonnull (strstr (error->message, "cut short"));
  g_assert_nonnull (strstr (error->message, "1310720 bytes"));
  g_assert_nonnull (strstr (error->message, "sam2.1_hiera_tiny.truncated.pt"));
  /* it ends inside a storage entry, which the message names */
  g_assert_nonnull (strstr (error->message, "sam2.1_hiera_tiny/data/"));
}

static const LodeTestTensor small_tensors[] = {
  { "a.weight", "FloatStorage", "0", 6, 0, 2, { 2, 3 }, { 0 } },
  { "a.bias", "FloatStorage", "1", 2, 0, 1, { 2 }, { 0 } },
};

static char *
write_small (const char *dir, const char *file, LodeTestWrap wrap, gboolean parameters)
{
  g_autoptr(GByteArray) pkl = lode_test_pickle_tensors (small_tensors, G_N_ELEMENTS (small_tensors),
                                                        wrap, parameters);
  char *path = g_build_filename (dir, file, NULL);

  lode_test_ckpt_write (path, "archive", pkl->data, pkl->len, small_tensors,
                        G_N_ELEMENTS (small_tensors), TRUE);
  return path;
}

static void
test_truncated_generated (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *path = write_small (dir, "whole.pt", LODE_TEST_WRAP_MODEL, FALSE);
  g_autofree char *contents = NULL;
  gsize len;
  const gsize cuts[] = { 0, 3, 20, 100, 200 };

  g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
  for (guint i = 0; i < G_N_ELEMENTS (cuts) + 2; i++)
    {
      g_autofree char *cut_path = g_build_filename (dir, "cut.pt", NULL);
      g_autoptr(GError) error = NULL;
      LodeCheckpoint *ckpt;
      /* the last two: cut inside the central directory and just before it */
      gsize cut = i < G_N_ELEMENTS (cuts) ? cuts[i] : len - 30 - 40 * (i - G_N_ELEMENTS (cuts));

      g_assert_true (g_file_set_contents (cut_path, contents, (gssize) cut, NULL));
      ckpt = lode_checkpoint_open (cut_path, &error);
      g_assert_null (ckpt);
      if (cut == 3)
        g_assert_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_NOT_ZIP);
      else
        {
          g_autofree char *bytes = g_strdup_printf ("%" G_GSIZE_FORMAT " bytes", cut);

          g_assert_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_TRUNCATED);
          g_assert_nonnull (strstr (error->message, bytes));
        }
    }
  lode_test_rmtree (dir);
}

/* Hostile pickles ------------------------------------------------------- */

static char *
write_pickle_archive (const char *dir, const char *file, const guint8 *pkl, gsize len)
{
  char *path = g_build_filename (dir, file, NULL);
  LodeTestZipEntry entries[] = {
    { "archive/data.pkl", len, LODE_TEST_FILL_BYTES, pkl, 0, FALSE },
    { "archive/byteorder", 6, LODE_TEST_FILL_BYTES, (const guint8 *) "little", 0, FALSE },
  };

  lode_test_zip_write (path, entries, G_N_ELEMENTS (entries), TRUE);
  return path;
}

static void
test_unsafe_global (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *marker = g_build_filename (dir, "pwned", NULL);
  g_autofree char *command = g_strdup_printf ("touch %s", marker);
  struct {
    const char *opening;   /* pushes the callable */
    const char *name;
  } cases[] = {
    { "c" "os\nsystem\n", "os.system" },
    { "c" "posix\nsystem\n", "posix.system" },
    { "c" "subprocess\ncheck_call\n", "subprocess.check_call" },
    { "c" "__builtin__\neval\n", "__builtin__.eval" },
    /* STACK_GLOBAL: SHORT_BINUNICODE 'builtins', SHORT_BINUNICODE 'exec' */
    { "\x8c\x08" "builtins" "\x8c\x04" "exec" "\x93", "builtins.exec" },
    /* allowlisted module, other name */
    { "c" "torch._utils\n_rebuild_from_type_v2\n", "torch._utils._rebuild_from_type_v2" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GByteArray) pkl = g_byte_array_new ();
      g_autofree char *path = NULL;
      g_autoptr(GError) error = NULL;
      LodeCheckpoint *ckpt;
      guint32 n = (guint32) strlen (command);
      guint8 le[4] = { n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >> 24 };

      /* PROTO 2, <callable>, BINUNICODE command, TUPLE1, REDUCE, STOP */
      g_byte_array_append (pkl, (const guint8 *) "\x80\x02", 2);
      g_byte_array_append (pkl, (const guint8 *) cases[i].opening, strlen (cases[i].opening));
      g_byte_array_append (pkl, (const guint8 *) "X", 1);
      g_byte_array_append (pkl, le, 4);
      g_byte_array_append (pkl, (const guint8 *) command, n);
      g_byte_array_append (pkl, (const guint8 *) "\x85R.", 3);

      path = write_pickle_archive (dir, "evil.pt", pkl->data, pkl->len);
      ckpt = lode_checkpoint_open (path, &error);
      g_assert_null (ckpt);
      g_assert_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_UNSAFE);
      g_assert_nonnull (strstr (error->message, cases[i].name));
      g_assert_nonnull (strstr (error->message, "evil.pt"));
      g_assert_false (g_file_test (marker, G_FILE_TEST_EXISTS));
    }
  lode_test_rmtree (dir);
}

static void
assert_archive_fails (const char *path, const LodeTestZipEntry *entries, guint n, int code, const char *needle)
{
  g_autoptr(GError) error = NULL;
  LodeCheckpoint *ckpt;

  lode_test_zip_write (path, entries, n, TRUE);
  ckpt = lode_checkpoint_open (path, &error);
  g_assert_null (ckpt);
  g_assert_error (error, LODE_CHECKPOINT_ERROR, code);
  g_assert_nonnull (strstr (error->message, needle));
}

/* A hand-built pickle {'w': tensor} over one storage, for the tests below
 * that need shapes and offsets torch would never write. */
static void
assert_open_fails (const char *dir, const LodeTestTensor *tensors, guint n, gsize storage_bytes,
                   int code, const char *needle)
{
  g_autoptr(GByteArray) pkl = lode_test_pickle_tensors (tensors, n, LODE_TEST_WRAP_MODEL, FALSE);
  g_autofree char *path = g_build_filename (dir, "bad.pt", NULL);
  g_autofree guint8 *zeros = g_malloc0 (storage_bytes + 1);
  LodeTestZipEntry entries[] = {
    { "archive/data.pkl", pkl->len, LODE_TEST_FILL_BYTES, pkl->data, 0, FALSE },
    { "archive/data/0", storage_bytes, LODE_TEST_FILL_BYTES, zeros, 0, FALSE },
  };

  assert_archive_fails (path, entries, G_N_ELEMENTS (entries), code, needle);
}

static void
test_bad_shapes (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  /* 2^30 x 2^30 x 2^30 elements */
  LodeTestTensor absurd = { "w", "FloatStorage", "0", 4, 0, 3, { 1 << 30, 1 << 30, 1 << 30 }, { 1, 1, 1 } };
  /* a storage that says 100 elements, an entry of 40 bytes */
  LodeTestTensor small = { "w", "FloatStorage", "0", 100, 0, 1, { 100 }, { 0 } };
  /* a tensor that reaches past its storage */
  LodeTestTensor beyond = { "w", "FloatStorage", "0", 10, 0, 2, { 3, 4 }, { 4, 1 } };
  LodeTestTensor offset = { "w", "FloatStorage", "0", 10, 11, 1, { 0 }, { 1 } };
  LodeTestTensor missing = { "w", "FloatStorage", "7", 10, 0, 1, { 10 }, { 0 } };

  assert_open_fails (dir, &absurd, 1, 16, LODE_CHECKPOINT_ERROR_SHAPE, "absurd");
  assert_open_fails (dir, &small, 1, 40, LODE_CHECKPOINT_ERROR_SHAPE, "archive/data/0");
  assert_open_fails (dir, &beyond, 1, 40, LODE_CHECKPOINT_ERROR_SHAPE, "beyond");
  assert_open_fails (dir, &offset, 1, 40, LODE_CHECKPOINT_ERROR_SHAPE, "outside");
  assert_open_fails (dir, &missing, 1, 40, LODE_CHECKPOINT_ERROR_MISSING, "archive/data/7");
  lode_test_rmtree (dir);
}

/* Hostile archives ------------------------------------------------------ */

static void
test_bad_archives (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autoptr(GByteArray) pkl = lode_test_pickle_tensors (small_tensors, 1, LODE_TEST_WRAP_MODEL, FALSE);
  guint8 floats[24] = { 0 };
  const char *const bad_names[] = { "archive/../escape", "../escape", "/etc/escape", "other/data/1", "loose" };
  g_autofree char *path = g_build_filename (dir, "bad.pt", NULL);

  for (guint i = 0; i < G_N_ELEMENTS (bad_names); i++)
    {
      LodeTestZipEntry entries[] = {
        { "archive/data.pkl", pkl->len, LODE_TEST_FILL_BYTES, pkl->data, 0, FALSE },
        { "archive/data/0", sizeof floats, LODE_TEST_FILL_BYTES, floats, 0, FALSE },
        { bad_names[i], 4, LODE_TEST_FILL_BYTES, floats, 0, FALSE },
      };

      assert_archive_fails (path, entries, G_N_ELEMENTS (entries), LODE_CHECKPOINT_ERROR_CORRUPT, bad_names[i]);
    }

  /* a compressed member: the pickle, then a storage */
  for (guint i = 0; i < 2; i++)
    {
      LodeTestZipEntry entries[] = {
        { "archive/data.pkl", pkl->len, LODE_TEST_FILL_BYTES, pkl->data, 0, i == 0 },
        { "archive/data/0", sizeof floats, LODE_TEST_FILL_BYTES, floats, 0, i == 1 },
      };

      assert_archive_fails (path, entries, G_N_ELEMENTS (entries), LODE_CHECKPOINT_ERROR_UNSUPPORTED,
                            i == 0 ? "archive/data.pkl" : "archive/data/0");
    }

  /* no data.pkl; a damaged storage (CRC mismatch shows when loading) */
  {
    LodeTestZipEntry entries[] = {
      { "archive/data/0", sizeof floats, LODE_TEST_FILL_BYTES, floats, 0, FALSE },
    };
    g_autoptr(GError) error = NULL;

    lode_test_zip_write (path, entries, G_N_ELEMENTS (entries), TRUE);
    g_assert_null (lode_checkpoint_open (path, &error));
    g_assert_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_MISSING);
    g_assert_nonnull (strstr (error->message, "data.pkl"));
  }
  {
    g_autofree char *good = write_small (dir, "good.pt", LODE_TEST_WRAP_MODEL, FALSE);
    g_autofree char *contents = NULL;
    g_autoptr(GError) error = NULL;
    g_autoptr(LodeCheckpoint) ckpt = NULL;
    g_autoptr(LodeTensor) tensor = NULL;
    float v0 = lode_test_ckpt_value (1, 0);
    gsize len;
    char *hit;

    g_assert_true (g_file_get_contents (good, &contents, &len, NULL));
    hit = memmem (contents, len, &v0, 4);
    g_assert_nonnull (hit);
    hit[0] ^= 0x40;
    g_assert_true (g_file_set_contents (good, contents, (gssize) len, NULL));
    ckpt = lode_checkpoint_open (good, &error);
    g_assert_no_error (error);
    tensor = lode_checkpoint_load (ckpt, "a.bias", &error);
    g_assert_null (tensor);
    g_assert_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_CORRUPT);
  }

  /* neither format */
  {
    g_autoptr(GError) error = NULL;

    g_assert_true (g_file_set_contents (path, "GIF89a, not a model at all", -1, NULL));
    g_assert_null (lode_checkpoint_open (path, &error));
    g_assert_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_NOT_ZIP);
    g_clear_error (&error);
    g_assert_null (lode_checkpoint_open (dir, &error));
    g_assert_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_OPEN);
    g_clear_error (&error);
    g_unlink (path);
    g_assert_null (lode_checkpoint_open (path, &error));
    g_assert_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_OPEN);
  }
  lode_test_rmtree (dir);
}

/* Wrappers, dtypes, strides -------------------------------------------- */

static void
test_wrappers (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  const struct { LodeTestWrap wrap; gboolean parameters; } cases[] = {
    { LODE_TEST_WRAP_MODEL, FALSE }, { LODE_TEST_WRAP_STATE_DICT, FALSE },
    { LODE_TEST_WRAP_NONE, FALSE }, { LODE_TEST_WRAP_NONE, TRUE },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *path = write_small (dir, "w.pt", cases[i].wrap, cases[i].parameters);
      g_autoptr(GError) error = NULL;
      g_autoptr(LodeCheckpoint) ckpt = lode_checkpoint_open (path, &error);
      g_autoptr(LodeTensor) bias = NULL;

      g_assert_no_error (error);
      g_assert_cmpuint (lode_checkpoint_n_tensors (ckpt), ==, 2);
      g_assert_cmpstr (lode_checkpoint_name (ckpt, 0), ==, "a.weight");
      ASSERT_SHAPE (ckpt, "a.weight", 2, 3);
      bias = lode_checkpoint_load (ckpt, "a.bias", &error);
      g_assert_no_error (error);
      g_assert_cmpfloat (bias->data[1], ==, lode_test_ckpt_value (1, 1));
    }
  lode_test_rmtree (dir);
}

static void
test_half_types (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *path = g_build_filename (dir, "half.pt", NULL);
  /* float16: 1, -2, 65504, 2^-24 (smallest subnormal), 1/3 rounded, -0, inf */
  const guint8 f16[] = { 0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01, 0x00, 0x55, 0x35, 0x00, 0x80, 0x00, 0x7c };
  const float f16_want[] = { 1.0f, -2.0f, 65504.0f, 5.9604644775390625e-08f, 0.333251953125f, -0.0f, INFINITY };
  /* bfloat16: 1, -3, 3.140625, 1e38-ish */
  const guint8 bf16[] = { 0x80, 0x3f, 0x40, 0xc0, 0x49, 0x40, 0x96, 0x7e };
  const float bf16_want[] = { 1.0f, -3.0f, 3.140625f, 0x1.2cp+126f };
  /* int64: -5, 1 << 40; float64: 0.1 */
  const guint8 i64[] = { 0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1, 0, 0 };
  const guint8 f64[] = { 0x9a, 0x99, 0x99, 0x99, 0x99, 0x99, 0xb9, 0x3f };
  const LodeTestTensor tensors[] = {
    { "h", "HalfStorage", "0", 7, 0, 1, { 7 }, { 0 } },
    { "b", "BFloat16Storage", "1", 4, 0, 2, { 2, 2 }, { 0 } },
    { "l", "LongStorage", "2", 2, 0, 1, { 2 }, { 0 } },
    { "d", "DoubleStorage", "3", 1, 0, 0, { 0 }, { 0 } },
  };
  g_autoptr(GByteArray) pkl = lode_test_pickle_tensors (tensors, G_N_ELEMENTS (tensors), LODE_TEST_WRAP_MODEL, FALSE);
  LodeTestZipEntry entries[] = {
    { "half/data.pkl", pkl->len, LODE_TEST_FILL_BYTES, pkl->data, 0, FALSE },
    { "half/data/0", sizeof f16, LODE_TEST_FILL_BYTES, f16, 0, FALSE },
    { "half/data/1", sizeof bf16, LODE_TEST_FILL_BYTES, bf16, 0, FALSE },
    { "half/data/2", sizeof i64, LODE_TEST_FILL_BYTES, i64, 0, FALSE },
    { "half/data/3", sizeof f64, LODE_TEST_FILL_BYTES, f64, 0, FALSE },
  };
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeCheckpoint) ckpt = NULL;
  g_autoptr(LodeTensor) h = NULL, b = NULL, l = NULL, d = NULL;

  lode_test_zip_write (path, entries, G_N_ELEMENTS (entries), TRUE);
  ckpt = lode_checkpoint_open (path, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (lode_checkpoint_dtype (ckpt, "h"), ==, "float16");
  g_assert_cmpstr (lode_checkpoint_dtype (ckpt, "b"), ==, "bfloat16");
  g_assert_cmpstr (lode_checkpoint_dtype (ckpt, "l"), ==, "int64");
  g_assert_cmpstr (lode_checkpoint_dtype (ckpt, "d"), ==, "float64");
  h = lode_checkpoint_load (ckpt, "h", &error);
  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (f16_want); i++)
    g_assert_cmpfloat (h->data[i], ==, f16_want[i]);
  g_assert_true (signbit (h->data[5]));
  b = lode_checkpoint_load (ckpt, "b", &error);
  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (bf16_want); i++)
    g_assert_cmpfloat (b->data[i], ==, bf16_want[i]);
  l = lode_checkpoint_load (ckpt, "l", &error);
  g_assert_no_error (error);
  g_assert_cmpfloat (l->data[0], ==, -5.0f);
  g_assert_cmpfloat (l->data[1], ==, 1099511627776.0f);
  d = lode_checkpoint_load (ckpt, "d", &error);
  g_assert_no_error (error);
  g_assert_cmpint (d->ndim, ==, 0);
  g_assert_cmpuint (d->numel, ==, 1);
  g_assert_cmpfloat (d->data[0], ==, 0.1f);
  lode_test_rmtree (dir);
}

static void
test_strided (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *path = g_build_filename (dir, "strided.pt", NULL);
  /* one storage of 40 floats, viewed four ways */
  const LodeTestTensor tensors[] = {
    { "plain", "FloatStorage", "3", 40, 0, 2, { 4, 10 }, { 0 } },
    { "transposed", "FloatStorage", "3", 40, 0, 2, { 10, 4 }, { 1, 10 } },
    { "offset", "FloatStorage", "3", 40, 13, 2, { 3, 5 }, { 5, 1 } },
    { "every_other", "FloatStorage", "3", 40, 1, 3, { 2, 3, 4 }, { 20, 1, 4 } },
    { "broadcast", "FloatStorage", "3", 40, 7, 2, { 3, 2 }, { 0, 1 } },
  };
  g_autoptr(GByteArray) pkl = lode_test_pickle_tensors (tensors, G_N_ELEMENTS (tensors), LODE_TEST_WRAP_MODEL, FALSE);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeCheckpoint) ckpt = NULL;

  lode_test_ckpt_write (path, "strided", pkl->data, pkl->len, tensors, G_N_ELEMENTS (tensors), TRUE);
  ckpt = lode_checkpoint_open (path, &error);
  g_assert_no_error (error);
  for (guint k = 0; k < G_N_ELEMENTS (tensors); k++)
    {
      const LodeTestTensor *t = &tensors[k];
      g_autoptr(LodeTensor) tensor = lode_checkpoint_load (ckpt, t->name, &error);
      gint64 idx[3] = { 0 };

      g_assert_no_error (error);
      g_assert_cmpint (tensor->ndim, ==, t->ndim);
      for (gsize i = 0; i < tensor->numel; i++)
        {
          gint64 at = t->offset, rest = (gint64) i;
          gint64 stride[3] = { 0 };
          gboolean given = FALSE;

          for (int d = 0; d < t->ndim; d++)
            given |= t->stride[d] != 0;
          for (int d = t->ndim - 1, s = 1; d >= 0; s *= (int) t->shape[d], d--)
            stride[d] = given ? t->stride[d] : s;
          for (int d = t->ndim - 1; d >= 0; d--)
            {
              idx[d] = rest % t->shape[d];
              rest /= t->shape[d];
            }
          for (int d = 0; d < t->ndim; d++)
            at += idx[d] * stride[d];
          g_assert_cmpfloat (tensor->data[i], ==, lode_test_ckpt_value (3, (guint64) at));
        }
    }
  lode_test_rmtree (dir);
}

/* safetensors ----------------------------------------------------------- */

static char *
write_safetensors (const char *dir, const char *header, guint64 header_len_override,
                   const guint8 *data, gsize len)
{
  char *path = g_build_filename (dir, "model.safetensors", NULL);
  g_autoptr(GByteArray) out = g_byte_array_new ();
  guint64 n = header_len_override ? header_len_override : strlen (header);

  for (int i = 0; i < 8; i++)
    {
      guint8 b = (guint8) (n >> (8 * i));
      g_byte_array_append (out, &b, 1);
    }
  g_byte_array_append (out, (const guint8 *) header, strlen (header));
  g_byte_array_append (out, data, len);
  g_assert_true (g_file_set_contents (path, (const char *) out->data, out->len, NULL));
  return path;
}

static void
test_safetensors (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  guint8 data[64] = { 0 };
  const float f32[] = { 0.5f, -1.25f, 3.0f, 1e-3f };
  const guint8 f16[] = { 0x00, 0x3c, 0x00, 0xc0 };
  const guint8 bf16[] = { 0x49, 0x40, 0x80, 0xbf };
  const char *header =
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"z.bf16\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[20,24]},"
    "\"a.f32\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
    "\"m.f16\":{\"dtype\":\"F16\",\"shape\":[2,1],\"data_offsets\":[16,20]}}";

  memcpy (data, f32, 16);
  memcpy (data + 16, f16, 4);
  memcpy (data + 20, bf16, 4);
  {
    g_autofree char *path = write_safetensors (dir, header, 0, data, 24);
    g_autoptr(GError) error = NULL;
    g_autoptr(LodeCheckpoint) ckpt = lode_checkpoint_open (path, &error);
    g_autoptr(LodeTensor) a = NULL, m = NULL, z = NULL;

    g_assert_no_error (error);
    g_assert_cmpstr (lode_checkpoint_format (ckpt), ==, "safetensors");
    g_assert_cmpuint (lode_checkpoint_n_tensors (ckpt), ==, 3);
    /* file order is data order */
    g_assert_cmpstr (lode_checkpoint_name (ckpt, 0), ==, "a.f32");
    g_assert_cmpstr (lode_checkpoint_name (ckpt, 2), ==, "z.bf16");
    g_assert_false (lode_checkpoint_has (ckpt, "__metadata__"));
    g_assert_cmpstr (lode_checkpoint_dtype (ckpt, "m.f16"), ==, "float16");
    ASSERT_SHAPE (ckpt, "m.f16", 2, 1);
    a = lode_checkpoint_load (ckpt, "a.f32", &error);
    g_assert_no_error (error);
    g_assert_cmpmem (a->data, 16, f32, 16);
    m = lode_checkpoint_load (ckpt, "m.f16", &error);
    g_assert_no_error (error);
    g_assert_cmpfloat (m->data[0], ==, 1.0f);
    g_assert_cmpfloat (m->data[1], ==, -2.0f);
    z = lode_checkpoint_load (ckpt, "z.bf16", &error);
    g_assert_no_error (error);
    g_assert_cmpfloat (z->data[0], ==, 3.140625f);
    g_assert_cmpfloat (z->data[1], ==, -1.0f);
  }

  {
    const struct {
      const char *header;
      guint64 len_override;
      int code;
    } bad[] = {
      /* overlapping */
      { "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 0, LODE_CHECKPOINT_ERROR_CORRUPT },
      /* beyond the end of the file */
      { "{\"a\":{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[0,64]}}", 0, LODE_CHECKPOINT_ERROR_TRUNCATED },
      /* a header length of 2^40 */
      { "{\"a\":{}}", G_GUINT64_CONSTANT (1) << 40, LODE_CHECKPOINT_ERROR_CORRUPT },
      /* a header length beyond the file */
      { "{\"a\":{}}", 4096, LODE_CHECKPOINT_ERROR_TRUNCATED },
      /* bad JSON */
      { "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],", 0, LODE_CHECKPOINT_ERROR_CORRUPT },
      /* size does not match the shape */
      { "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", 0, LODE_CHECKPOINT_ERROR_SHAPE },
      /* negative and non-integer sizes, reversed offsets */
      { "{\"a\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", 0, LODE_CHECKPOINT_ERROR_CORRUPT },
      { "{\"a\":{\"dtype\":\"F32\",\"shape\":[4.5],\"data_offsets\":[0,16]}}", 0, LODE_CHECKPOINT_ERROR_CORRUPT },
      { "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[16,0]}}", 0, LODE_CHECKPOINT_ERROR_CORRUPT },
      /* absurd shape */
      { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,16]}}", 0,
        LODE_CHECKPOINT_ERROR_SHAPE },
      /* an unknown dtype */
      { "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[16],\"data_offsets\":[0,16]}}", 0, LODE_CHECKPOINT_ERROR_UNSUPPORTED },
      /* a tensor that is not an object */
      { "{\"a\":5}", 0, LODE_CHECKPOINT_ERROR_CORRUPT },
      /* a header that is not an object is no safetensors file */
      { "[1,2,3]", 0, LODE_CHECKPOINT_ERROR_NOT_ZIP },
    };

    for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
      {
        g_autofree char *path = write_safetensors (dir, bad[i].header, bad[i].len_override, data, 32);
        g_autoptr(GError) error = NULL;

        g_assert_null (lode_checkpoint_open (path, &error));
        g_assert_error (error, LODE_CHECKPOINT_ERROR, bad[i].code);
        g_assert_nonnull (strstr (error->message, "model.safetensors"));
      }
  }
  lode_test_rmtree (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/checkpoint/sam2-tiny", test_sam2_tiny);
  g_test_add_func ("/checkpoint/sam2-sizes", test_sam2_sizes);
  g_test_add_func ("/checkpoint/truncated-official", test_truncated_official);
  g_test_add_func ("/checkpoint/truncated-generated", test_truncated_generated);
  g_test_add_func ("/checkpoint/unsafe-global", test_unsafe_global);
  g_test_add_func ("/checkpoint/bad-shapes", test_bad_shapes);
  g_test_add_func ("/checkpoint/bad-archives", test_bad_archives);
  g_test_add_func ("/checkpoint/wrappers", test_wrappers);
  g_test_add_func ("/checkpoint/half-types", test_half_types);
  g_test_add_func ("/checkpoint/strided", test_strided);
  g_test_add_func ("/checkpoint/safetensors", test_safetensors);
  return g_test_run ();
}
