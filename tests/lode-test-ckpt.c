#define G_LOG_DOMAIN "lode-test"

#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "lode-test-ckpt.h"

#define CHUNK (1 << 20)

float
lode_test_ckpt_value (guint64 key, guint64 i)
{
  return (float) sin ((double) (key * 1000 + i));
}

static void
put (GByteArray *out, guint64 v, int n)
{
  for (int i = 0; i < n; i++)
    {
      guint8 b = (guint8) (v >> (8 * i));
      g_byte_array_append (out, &b, 1);
    }
}

static void
write_bytes (FILE *f, const GByteArray *b)
{
  g_assert_cmpuint (fwrite (b->data, 1, b->len, f), ==, b->len);
}

/* CRC-32 of n zero bytes, by doubling. */
static uLong
crc_zeros (guint64 n)
{
  uLong crc = crc32 (0L, Z_NULL, 0);
  static const guint8 zero = 0;
  uLong block = crc32 (crc32 (0L, Z_NULL, 0), &zero, 1);
  guint64 block_len = 1;

  while (n > 0)
    {
      if (n & 1)
        crc = crc32_combine (crc, block, (z_off_t) block_len);
      block = crc32_combine (block, block, (z_off_t) block_len);
      block_len *= 2;
      n >>= 1;
    }
  return crc;
}

static void
fill_chunk (const LodeTestZipEntry *e, guint64 start, guint8 *buf, gsize n)
{
  if (e->fill == LODE_TEST_FILL_BYTES)
    memcpy (buf, e->bytes + start, n);
  else
    {
      g_assert_true (start % 4 == 0 && n % 4 == 0);
      for (gsize k = 0; k < n / 4; k++)
        {
          float v = lode_test_ckpt_value (e->key, start / 4 + k);
          guint32 bits;

          memcpy (&bits, &v, 4);
          for (int b = 0; b < 4; b++)
            buf[4 * k + b] = (guint8) (bits >> (8 * b));
        }
    }
}

void
lode_test_zip_write (const char *path, const LodeTestZipEntry *entries, guint n, gboolean central)
{
  g_autoptr(GByteArray) cd = g_byte_array_new ();
  g_autofree guint8 *buf = g_malloc (CHUNK);
  FILE *f = fopen (path, "wb");
  guint64 off = 0;

  g_assert_nonnull (f);
  for (guint i = 0; i < n; i++)
    {
      const LodeTestZipEntry *e = &entries[i];
      g_autoptr(GByteArray) h = g_byte_array_new ();
      g_autofree guint8 *packed = NULL;
      gsize name_len = strlen (e->name);
      guint64 pad, header_off = off, csize = e->nbytes;
      uLong crc = crc32 (0L, Z_NULL, 0);

      /* local header as torch writes it: sizes in a data descriptor */
      put (h, 0x04034b50, 4);
      put (h, 20, 2);
      put (h, 0x0808, 2);
      put (h, e->deflate ? 8 : 0, 2);
      put (h, 0, 4);           /* time, date */
      put (h, 0, 4);           /* crc */
      put (h, 0, 4);           /* sizes */
      put (h, 0, 4);
      put (h, name_len, 2);
      pad = (64 - (off + 30 + name_len + 4) % 64) % 64;
      put (h, 4 + pad, 2);
      g_byte_array_append (h, (const guint8 *) e->name, name_len);
      put (h, 0x4246, 2);      /* "FB" padding field */
      put (h, pad, 2);
      for (guint64 k = 0; k < pad; k++)
        g_byte_array_append (h, (const guint8 *) "Z", 1);
      write_bytes (f, h);
      off += h->len;

      if (e->deflate)
        {
          z_stream zs = { 0 };
          gsize cap = compressBound (e->nbytes) + 64;

          g_assert_true (e->fill == LODE_TEST_FILL_BYTES);
          packed = g_malloc (cap);
          g_assert_cmpint (deflateInit2 (&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), ==, Z_OK);
          zs.next_in = (Bytef *) e->bytes;
          zs.avail_in = (uInt) e->nbytes;
          zs.next_out = packed;
          zs.avail_out = (uInt) cap;
          g_assert_cmpint (deflate (&zs, Z_FINISH), ==, Z_STREAM_END);
          csize = zs.total_out;
          deflateEnd (&zs);
          crc = crc32 (crc, e->bytes, (uInt) e->nbytes);
          g_assert_cmpuint (fwrite (packed, 1, csize, f), ==, csize);
        }
      else if (e->fill == LODE_TEST_FILL_ZEROS)
        {
          crc = crc_zeros (e->nbytes);
          g_assert_cmpint (fseeko (f, (off_t) e->nbytes, SEEK_CUR), ==, 0);
        }
      else
        for (guint64 done = 0; done < e->nbytes;)
          {
            gsize len = (gsize) MIN ((guint64) CHUNK, e->nbytes - done);

            fill_chunk (e, done, buf, len);
            crc = crc32 (crc, buf, (uInt) len);
            g_assert_cmpuint (fwrite (buf, 1, len, f), ==, len);
            done += len;
          }
      off += csize;

      g_byte_array_set_size (h, 0);
      put (h, 0x08074b50, 4);
      put (h, crc, 4);
      put (h, csize, 4);
      put (h, e->nbytes, 4);
      write_bytes (f, h);
      off += h->len;

      put (cd, 0x02014b50, 4);
      put (cd, 20, 2);
      put (cd, 20, 2);
      put (cd, 0x0808, 2);
      put (cd, e->deflate ? 8 : 0, 2);
      put (cd, 0, 4);
      put (cd, crc, 4);
      put (cd, csize, 4);
      put (cd, e->nbytes, 4);
      put (cd, name_len, 2);
      put (cd, 0, 2);          /* extra */
      put (cd, 0, 2);          /* comment */
      put (cd, 0, 2);          /* disk */
      put (cd, 0, 2);          /* internal attributes */
      put (cd, 0, 4);          /* external attributes */
      put (cd, header_off, 4);
      g_byte_array_append (cd, (const guint8 *) e->name, name_len);
    }
  g_assert_cmpuint (off, <, G_MAXUINT32);
  if (central)
    {
      guint64 cd_off = off;
      guint64 cd_len = cd->len;

      put (cd, 0x06054b50, 4);
      put (cd, 0, 2);
      put (cd, 0, 2);
      put (cd, n, 2);
      put (cd, n, 2);
      put (cd, cd_len, 4);
      put (cd, cd_off, 4);
      put (cd, 0, 2);
      write_bytes (f, cd);
    }
  g_assert_cmpint (fclose (f), ==, 0);
}

/* Pickle emitter ---------------------------------------------------------- */

typedef struct {
  GByteArray *out;
  GHashTable *memo;   /* "module\nname" or "'string" -> index + 1 */
  guint next;
} Emitter;

static void
op (Emitter *e, guint8 code)
{
  g_byte_array_append (e->out, &code, 1);
}

/* BINPUT/BINGET with a 1-byte index, LONG_BINPUT/LONG_BINGET beyond */
static void
memo_op (Emitter *e, guint8 short_op, guint8 long_op, guint index)
{
  op (e, index < 256 ? short_op : long_op);
  put (e->out, index, index < 256 ? 1 : 4);
}

static void
memo_put (Emitter *e, const char *what)
{
  guint index = e->next++;

  memo_op (e, 'q', 'r', index);
  if (what != NULL)
    g_hash_table_insert (e->memo, g_strdup (what), GUINT_TO_POINTER (index + 1));
}

static gboolean
memo_get (Emitter *e, const char *what)
{
  guint index = GPOINTER_TO_UINT (g_hash_table_lookup (e->memo, what));

  if (index == 0)
    return FALSE;
  memo_op (e, 'h', 'j', index - 1);
  return TRUE;
}

static void
emit_str (Emitter *e, const char *s, gboolean memoize)
{
  g_autofree char *tag = g_strconcat ("'", s, NULL);

  if (memoize && memo_get (e, tag))
    return;
  op (e, 'X');
  put (e->out, strlen (s), 4);
  g_byte_array_append (e->out, (const guint8 *) s, strlen (s));
  memo_put (e, memoize ? tag : NULL);
}

static void
emit_global (Emitter *e, const char *module, const char *name)
{
  g_autofree char *tag = g_strconcat (module, "\n", name, "\n", NULL);

  if (memo_get (e, tag))
    return;
  op (e, 'c');
  g_byte_array_append (e->out, (const guint8 *) tag, strlen (tag));
  memo_put (e, tag);
}

static void
emit_int (Emitter *e, gint64 v)
{
  if (v >= 0 && v < 256)
    {
      op (e, 'K');
      put (e->out, v, 1);
    }
  else if (v >= 0 && v < 65536)
    {
      op (e, 'M');
      put (e->out, v, 2);
    }
  else if (v >= G_MININT32 && v <= G_MAXINT32)
    {
      op (e, 'J');
      put (e->out, (guint32) v, 4);
    }
  else
    {
      op (e, 0x8a);
      put (e->out, 8, 1);
      put (e->out, (guint64) v, 8);
    }
}

static void
emit_int_tuple (Emitter *e, const gint64 *v, int n)
{
  if (n == 0)
    op (e, ')');
  else if (n <= 3)
    {
      for (int i = 0; i < n; i++)
        emit_int (e, v[i]);
      op (e, 0x84 + n);
    }
  else
    {
      op (e, '(');
      for (int i = 0; i < n; i++)
        emit_int (e, v[i]);
      op (e, 't');
    }
  memo_put (e, NULL);
}

static void
emit_empty_ordered_dict (Emitter *e)
{
  emit_global (e, "collections", "OrderedDict");
  op (e, ')');
  op (e, 'R');
  memo_put (e, NULL);
}

static void
emit_tensor (Emitter *e, const LodeTestTensor *t, gboolean parameter)
{
  gint64 stride[8];
  gboolean given = FALSE;

  for (int d = 0; d < t->ndim; d++)
    given |= t->stride[d] != 0;
  if (given)
    memcpy (stride, t->stride, sizeof stride);
  else
    {
      gint64 s = 1;

      for (int d = t->ndim - 1; d >= 0; d--)
        {
          stride[d] = s;
          s *= MAX (t->shape[d], 1);
        }
    }

  if (parameter)
    emit_global (e, "torch._utils", "_rebuild_parameter");
  emit_global (e, "torch._utils", "_rebuild_tensor_v2");
  op (e, '(');
  op (e, '(');
  emit_str (e, "storage", TRUE);
  emit_global (e, "torch", t->storage_type);
  emit_str (e, t->key, FALSE);
  emit_str (e, "cpu", TRUE);
  emit_int (e, t->storage_numel);
  op (e, 't');
  memo_put (e, NULL);
  op (e, 'Q');
  emit_int (e, t->offset);
  emit_int_tuple (e, t->shape, t->ndim);
  emit_int_tuple (e, stride, t->ndim);
  op (e, 0x89);
  emit_empty_ordered_dict (e);
  op (e, 't');
  memo_put (e, NULL);
  op (e, 'R');
  memo_put (e, NULL);
  if (parameter)
    {
      op (e, 0x88);
      emit_empty_ordered_dict (e);
      op (e, 0x87);
      op (e, 'R');
      memo_put (e, NULL);
    }
}

GByteArray *
lode_test_pickle_tensors (const LodeTestTensor *tensors, guint n, LodeTestWrap wrap, gboolean parameters)
{
  Emitter e = { g_byte_array_new (), g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL), 0 };

  op (&e, 0x80);
  put (e.out, 2, 1);
  if (wrap != LODE_TEST_WRAP_NONE)
    {
      op (&e, '}');
      memo_put (&e, NULL);
      emit_str (&e, wrap == LODE_TEST_WRAP_MODEL ? "model" : "state_dict", FALSE);
    }
  if (wrap == LODE_TEST_WRAP_MODEL)
    {
      op (&e, '}');
      memo_put (&e, NULL);
    }
  else
    emit_empty_ordered_dict (&e);
  /* SETITEMS in batches of 1000, as pickle does */
  for (guint i = 0; i < n; i += 1000)
    {
      op (&e, '(');
      for (guint k = i; k < MIN (n, i + 1000); k++)
        {
          emit_str (&e, tensors[k].name, FALSE);
          emit_tensor (&e, &tensors[k], parameters);
        }
      op (&e, 'u');
    }
  if (wrap != LODE_TEST_WRAP_NONE)
    op (&e, 's');
  op (&e, '.');
  g_hash_table_unref (e.memo);
  return e.out;
}

static guint64
storage_element_size (const char *type)
{
  if (g_str_equal (type, "HalfStorage") || g_str_equal (type, "BFloat16Storage")
      || g_str_equal (type, "ShortStorage"))
    return 2;
  if (g_str_equal (type, "DoubleStorage") || g_str_equal (type, "LongStorage"))
    return 8;
  if (g_str_equal (type, "ByteStorage") || g_str_equal (type, "CharStorage")
      || g_str_equal (type, "BoolStorage"))
    return 1;
  return 4;
}

static void
ckpt_write (const char *path, const char *top, const guint8 *pkl, gsize pkl_len,
            const LodeTestTensor *tensors, guint n, gboolean values,
            LodeTestFillFunc fill, gpointer user_data)
{
  g_autoptr(GArray) entries = g_array_new (FALSE, TRUE, sizeof (LodeTestZipEntry));
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) buffers = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  LodeTestZipEntry entry = { 0 };

#define ADD(nm, len, fl, by, k) do { \
    char *name_ = (nm); \
    g_ptr_array_add (names, name_); \
    entry = (LodeTestZipEntry) { name_, (len), (fl), (by), (k), FALSE }; \
    g_array_append_val (entries, entry); \
  } while (0)

  ADD (g_strconcat (top, "/data.pkl", NULL), pkl_len, LODE_TEST_FILL_BYTES, pkl, 0);
  ADD (g_strconcat (top, "/byteorder", NULL), 6, LODE_TEST_FILL_BYTES, (const guint8 *) "little", 0);
  for (guint i = 0; i < n; i++)
    {
      const LodeTestTensor *t = &tensors[i];
      gboolean f32 = g_str_equal (t->storage_type, "FloatStorage");
      guint64 nbytes = (guint64) t->storage_numel * storage_element_size (t->storage_type);
      char *name;

      if (g_hash_table_contains (seen, t->key))
        continue;
      g_hash_table_add (seen, (gpointer) t->key);
      name = g_strconcat (top, "/data/", t->key, NULL);
      if (fill != NULL)
        {
          float *buf = g_new0 (float, MAX (t->storage_numel, 1));

          g_assert_true (f32);
          g_ptr_array_add (buffers, buf);
          if (fill (t, buf, user_data))
            ADD (name, nbytes, LODE_TEST_FILL_BYTES, (const guint8 *) buf, 0);
          else
            ADD (name, nbytes, LODE_TEST_FILL_ZEROS, NULL, 0);
          continue;
        }
      g_assert_true (f32 || !values);
      ADD (name, nbytes, values ? LODE_TEST_FILL_SIN_F32 : LODE_TEST_FILL_ZEROS, NULL,
           g_ascii_strtoull (t->key, NULL, 10));
    }
  ADD (g_strconcat (top, "/version", NULL), 2, LODE_TEST_FILL_BYTES, (const guint8 *) "3\n", 0);
#undef ADD
  lode_test_zip_write (path, (LodeTestZipEntry *) entries->data, entries->len, TRUE);
}

void
lode_test_ckpt_write (const char *path, const char *top, const guint8 *pkl, gsize pkl_len,
                      const LodeTestTensor *tensors, guint n, gboolean values)
{
  ckpt_write (path, top, pkl, pkl_len, tensors, n, values, NULL, NULL);
}

void
lode_test_ckpt_write_with (const char *path, const char *top, const guint8 *pkl, gsize pkl_len,
                           const LodeTestTensor *tensors, guint n, LodeTestFillFunc fill,
                           gpointer user_data)
{
  ckpt_write (path, top, pkl, pkl_len, tensors, n, TRUE, fill, user_data);
}

/* Layouts ----------------------------------------------------------------- */

void
lode_test_layout_free (LodeTestLayout *layout)
{
  g_ptr_array_unref (layout->strings);
  g_array_unref (layout->tensors);
  g_free (layout);
}

LodeTestLayout *
lode_test_layout_new (void)
{
  LodeTestLayout *layout = g_new0 (LodeTestLayout, 1);

  layout->strings = g_ptr_array_new_with_free_func (g_free);
  layout->tensors = g_array_new (FALSE, TRUE, sizeof (LodeTestTensor));
  return layout;
}

static const char *
layout_intern (LodeTestLayout *layout, char *s)
{
  g_ptr_array_add (layout->strings, s);
  return s;
}

void
lode_test_layout_add (LodeTestLayout *layout, const char *name, const char *key, int ndim,
                      const gint64 *shape)
{
  LodeTestTensor t = { 0 };

  t.name = layout_intern (layout, g_strdup (name));
  t.storage_type = "FloatStorage";
  t.key = key ? layout_intern (layout, g_strdup (key))
              : layout_intern (layout, g_strdup_printf ("%u", layout->tensors->len));
  t.ndim = ndim;
  t.storage_numel = 1;
  for (int d = 0; d < ndim; d++)
    {
      t.shape[d] = shape[d];
      t.storage_numel *= shape[d];
    }
  g_array_append_val (layout->tensors, t);
}

#define ADD(layout, name, ...) G_STMT_START { \
    const gint64 shape_[] = { __VA_ARGS__ }; \
    lode_test_layout_add ((layout), (name), NULL, G_N_ELEMENTS (shape_), shape_); \
  } G_STMT_END

LodeTestLayout *
lode_test_layout_read (const char *path)
{
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;
  g_autoptr(GError) error = NULL;
  LodeTestLayout *layout;

  g_file_get_contents (path, &text, NULL, &error);
  g_assert_no_error (error);
  layout = lode_test_layout_new ();
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 1; lines[i] != NULL; i++)
    {
      g_auto(GStrv) cols = NULL;
      g_auto(GStrv) dims = NULL;
      gint64 shape[8];
      int ndim = 0;

      if (lines[i][0] == '\0')
        continue;
      cols = g_strsplit (lines[i], "\t", -1);
      g_assert_cmpuint (g_strv_length (cols), ==, 4);
      g_assert_cmpstr (cols[2], ==, "FloatStorage");
      g_strdelimit (cols[1], "[]", ' ');
      dims = g_strsplit (cols[1], ",", -1);
      for (guint d = 0; dims[d] != NULL; d++)
        if (*g_strstrip (dims[d]) != '\0')
          shape[ndim++] = g_ascii_strtoll (dims[d], NULL, 10);
      lode_test_layout_add (layout, cols[0], cols[3], ndim, shape);
    }
  return layout;
}

static void
add_blocks (LodeTestLayout *out, int embed, const int stages[4])
{
  int block = 0;

  for (int s = 0; s < 4; s++)
    for (int b = 0; b < stages[s]; b++, block++)
      {
        gint64 dout = (gint64) embed << s;
        gint64 din = (b == 0 && s > 0) ? dout / 2 : dout;
        g_autofree char *p = g_strdup_printf ("image_encoder.trunk.blocks.%d.", block);
        char name[128];

#define BLOCK(suffix, ...) G_STMT_START { \
    g_snprintf (name, sizeof name, "%s%s", p, suffix); \
    ADD (out, name, __VA_ARGS__); \
  } G_STMT_END
        BLOCK ("norm1.weight", din);
        BLOCK ("norm1.bias", din);
        BLOCK ("attn.qkv.weight", 3 * dout, din);
        BLOCK ("attn.qkv.bias", 3 * dout);
        BLOCK ("attn.proj.weight", dout, dout);
        BLOCK ("attn.proj.bias", dout);
        BLOCK ("norm2.weight", dout);
        BLOCK ("norm2.bias", dout);
        BLOCK ("mlp.layers.0.weight", 4 * dout, dout);
        BLOCK ("mlp.layers.0.bias", 4 * dout);
        BLOCK ("mlp.layers.1.weight", dout, 4 * dout);
        BLOCK ("mlp.layers.1.bias", dout);
        if (din != dout)
          {
            BLOCK ("proj.weight", dout, din);
            BLOCK ("proj.bias", dout);
          }
#undef BLOCK
      }
}

LodeTestLayout *
lode_test_layout_derive_sam2 (const LodeTestLayout *tiny, int embed, const int stages[4], int bkg)
{
  LodeTestLayout *out = lode_test_layout_new ();
  gboolean blocks_done = FALSE;
  gint64 e = embed;

  for (guint i = 0; i < tiny->tensors->len; i++)
    {
      const LodeTestTensor *t = &g_array_index (tiny->tensors, LodeTestTensor, i);
      int level;

      if (g_str_has_prefix (t->name, "image_encoder.trunk.blocks."))
        {
          if (!blocks_done)
            add_blocks (out, embed, stages);
          blocks_done = TRUE;
        }
      else if (g_str_equal (t->name, "image_encoder.trunk.pos_embed"))
        ADD (out, t->name, 1, e, bkg, bkg);
      else if (g_str_equal (t->name, "image_encoder.trunk.pos_embed_window"))
        ADD (out, t->name, 1, e, 8, 8);
      else if (g_str_equal (t->name, "image_encoder.trunk.patch_embed.proj.weight"))
        ADD (out, t->name, e, 3, 7, 7);
      else if (g_str_equal (t->name, "image_encoder.trunk.patch_embed.proj.bias"))
        ADD (out, t->name, e);
      else if (g_str_has_suffix (t->name, ".conv.weight")
               && sscanf (t->name, "image_encoder.neck.convs.%d.conv.weight", &level) == 1)
        ADD (out, t->name, 256, e << (3 - level), 1, 1);
      else
        lode_test_layout_add (out, t->name, NULL, t->ndim, t->shape);
    }
  return out;
}
