#define G_LOG_DOMAIN "lode-test"

#include "config.h"

#include <math.h>
#include <string.h>

#include "lode-prithvi.h"
#include "lode-test-prithvi.h"
#include "lode-test-weights.h"

static char *
data_path (const char *file)
{
  return g_test_build_filename (G_TEST_DIST, "data", "prithvi", file, NULL);
}

static void
entry_free (gpointer p)
{
  LodeTestLayoutEntry *e = p;

  g_free (e->name);
  g_free (e);
}

GPtrArray *
lode_test_prithvi_layout (const char *file)
{
  g_autofree char *path = data_path (file);
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;
  g_autoptr(GError) error = NULL;
  GPtrArray *layout = g_ptr_array_new_with_free_func (entry_free);

  g_file_get_contents (path, &text, NULL, &error);
  g_assert_no_error (error);
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 1; lines[i] != NULL; i++)
    {
      g_auto(GStrv) f = g_strsplit (lines[i], "\t", -1);
      LodeTestLayoutEntry *e;
      const char *p;

      if (lines[i][0] == '\0')
        continue;
      g_assert_cmpuint (g_strv_length (f), ==, 3);
      e = g_new0 (LodeTestLayoutEntry, 1);
      e->name = g_strdup (f[0]);
      e->is_long = g_str_equal (f[2], "LongStorage");
      for (p = f[1]; *p != '\0';)
        {
          if (g_ascii_isdigit (*p))
            {
              char *end;

              g_assert_cmpint (e->ndim, <, 8);
              e->shape[e->ndim++] = g_ascii_strtoll (p, &end, 10);
              p = end;
            }
          else
            p++;
        }
      g_ptr_array_add (layout, e);
    }
  return layout;
}

static void
write_ckpt (const char *path, GPtrArray *layout, const char *prefix, LodeTestWrap wrap,
            gboolean (*keep) (const char *name), gboolean zeros)
{
  g_autoptr(GArray) tensors = g_array_new (FALSE, TRUE, sizeof (LodeTestTensor));
  g_autoptr(GArray) entries = g_array_new (FALSE, TRUE, sizeof (LodeTestZipEntry));
  g_autoptr(GPtrArray) strings = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GByteArray) pkl = NULL;

  for (guint i = 0; i < layout->len; i++)
    {
      LodeTestLayoutEntry *e = layout->pdata[i];
      LodeTestTensor t = { 0 };
      LodeTestZipEntry z = { 0 };
      gint64 numel = 1;
      guint8 *bytes;

      if (keep != NULL && !keep (e->name))
        continue;
      for (int d = 0; d < e->ndim; d++)
        numel *= e->shape[d];
      t.name = g_strconcat (prefix, e->name, NULL);
      t.key = g_strdup_printf ("%u", tensors->len);
      g_ptr_array_add (strings, (char *) t.name);
      g_ptr_array_add (strings, (char *) t.key);
      t.storage_type = e->is_long ? "LongStorage" : "FloatStorage";
      t.storage_numel = numel;
      t.ndim = e->ndim;
      memcpy (t.shape, e->shape, sizeof t.shape);
      g_array_append_val (tensors, t);

      bytes = zeros ? NULL : g_malloc0 ((gsize) numel * (e->is_long ? 8 : 4));
      if (bytes != NULL && !e->is_long)
        lode_test_weights_fill (e->name, e->shape, e->ndim, (float *) bytes);
      if (bytes != NULL)
        g_ptr_array_add (strings, bytes);
      z.name = g_strdup_printf ("archive/data/%s", t.key);
      g_ptr_array_add (strings, (char *) z.name);
      z.nbytes = (guint64) numel * (e->is_long ? 8 : 4);
      z.fill = zeros ? LODE_TEST_FILL_ZEROS : LODE_TEST_FILL_BYTES;
      z.bytes = bytes;
      g_array_append_val (entries, z);
    }
  pkl = lode_test_pickle_tensors ((LodeTestTensor *) tensors->data, tensors->len, wrap, TRUE);
  {
    LodeTestZipEntry head[2] = {
      { "archive/data.pkl", pkl->len, LODE_TEST_FILL_BYTES, pkl->data, 0, FALSE },
      { "archive/byteorder", 6, LODE_TEST_FILL_BYTES, (const guint8 *) "little", 0, FALSE },
    };
    LodeTestZipEntry tail = { "archive/version", 2, LODE_TEST_FILL_BYTES, (const guint8 *) "3\n", 0, FALSE };

    g_array_prepend_vals (entries, head, 2);
    g_array_append_val (entries, tail);
  }
  lode_test_zip_write (path, (LodeTestZipEntry *) entries->data, entries->len, TRUE);
}

void
lode_test_prithvi_write_ckpt (const char *path, GPtrArray *layout, const char *prefix, LodeTestWrap wrap,
                              gboolean (*keep) (const char *name))
{
  write_ckpt (path, layout, prefix, wrap, keep, FALSE);
}

void
lode_test_prithvi_write_zero_ckpt (const char *path, GPtrArray *layout)
{
  write_ckpt (path, layout, "", LODE_TEST_WRAP_NONE, NULL, TRUE);
}

void
lode_test_record_free (LodeTestRecord *record)
{
  if (record == NULL)
    return;
  g_free (record->data);
  g_free (record);
}

LodeTestRecord *
lode_test_prithvi_record (const char *which, const char *name)
{
  g_autofree char *tsv_name = g_strdup_printf ("prithvi-%s.tsv", which);
  g_autofree char *f32_name = g_strdup_printf ("prithvi-%s.f32", which);
  g_autofree char *tsv = data_path (tsv_name);
  g_autofree char *f32 = data_path (f32_name);
  g_autofree char *text = NULL;
  g_autofree char *blob = NULL;
  gsize blob_len = 0;
  g_auto(GStrv) lines = NULL;
  g_autoptr(GError) error = NULL;

  g_file_get_contents (tsv, &text, NULL, &error);
  g_assert_no_error (error);
  g_file_get_contents (f32, &blob, &blob_len, &error);
  g_assert_no_error (error);
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 1; lines[i] != NULL; i++)
    {
      g_auto(GStrv) f = g_strsplit (lines[i], "\t", -1);
      g_auto(GStrv) dims = NULL;
      LodeTestRecord *r;
      guint64 offset;

      if (g_strv_length (f) != 5 || !g_str_equal (f[0], name))
        continue;
      r = g_new0 (LodeTestRecord, 1);
      offset = g_ascii_strtoull (f[1], NULL, 10);
      r->count = g_ascii_strtoull (f[2], NULL, 10);
      r->stride = (int) g_ascii_strtoll (f[3], NULL, 10);
      dims = g_strsplit (f[4], ",", -1);
      for (r->ndim = 0; dims[r->ndim] != NULL; r->ndim++)
        r->shape[r->ndim] = g_ascii_strtoll (dims[r->ndim], NULL, 10);
      g_assert_cmpuint ((offset + r->count) * 4, <=, blob_len);
      r->data = g_new (float, r->count);
      memcpy (r->data, blob + offset * 4, r->count * 4);
      return r;
    }
  g_error ("no record %s in %s", name, tsv);
  return NULL;
}

double
lode_test_record_error (const LodeTestRecord *ref, const float *got)
{
  double max_ref = 0.0, max_err = 0.0;

  for (gsize i = 0; i < ref->count; i++)
    {
      double d = fabs ((double) got[i * ref->stride] - ref->data[i]);

      if (!(d <= max_err))   /* catches NaN too */
        max_err = isnan (d) ? INFINITY : d;
      max_ref = MAX (max_ref, fabs (ref->data[i]));
    }
  return max_err / MAX (max_ref, 1e-30);
}

void
lode_test_prithvi_raw_input (float *out, int n, int h, int w)
{
  guint64 total = (guint64) n * LODE_PRITHVI_N_BANDS * h * w;

  for (guint64 i = 0; i < total; i++)
    {
      double u = (double) ((i * 2654435761u) & 0xFFFFFFFFu) / 4294967296.0;
      int c = (int) ((i / ((guint64) h * w)) % LODE_PRITHVI_N_BANDS);

      out[i] = (float) (lode_prithvi_band_mean[c] + lode_prithvi_band_std[c] * (3.0 * u - 1.5));
    }
}

void
lode_test_prithvi_hashed (float *out, gsize n, guint64 salt)
{
  for (gsize i = 0; i < n; i++)
    out[i] = (float) ((double) (((i + salt) * 2654435761u) & 0xFFFFFFFFu) / 4294967296.0 * 4.0 - 2.0);
}

LodePrithviModel *
lode_test_prithvi_open (const char *path, const char *decoder_path, gboolean fresh_decoder)
{
  LodePrithviOptions options;
  g_autoptr(GError) error = NULL;
  LodePrithviModel *model;

  lode_prithvi_options_init (&options);
  options.num_heads = 4;
  if (fresh_decoder)
    model = lode_prithvi_model_new_with_decoder (path, 2, 32, 2, &options, &error);
  else
    model = lode_prithvi_model_new_from_checkpoint (path, decoder_path, &options, &error);
  g_assert_no_error (error);
  g_assert_nonnull (model);
  return model;
}
