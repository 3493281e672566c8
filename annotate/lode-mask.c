#define G_LOG_DOMAIN "lode-annotate"

#include "config.h"

#include <glib/gi18n.h>
#include <math.h>
#include <string.h>
#include <zlib.h>

#include "lode-mask.h"

G_DEFINE_QUARK (lode-mask-error-quark, lode_mask_error)

#define BLOB_VERSION 1
#define MASK_MAGIC "LMSK"
/* Deflate cannot expand past about 1032:1; anything claiming more is a lie. */
#define MAX_INFLATE_RATIO 1100
#define MAX_UNKNOWN_LISTED 8

LodeMask *
lode_mask_new (int width, int height)
{
  LodeMask *m;

  g_return_val_if_fail (width > 0 && width <= LODE_MASK_MAX_SIDE, NULL);
  g_return_val_if_fail (height > 0 && height <= LODE_MASK_MAX_SIDE, NULL);

  m = g_new (LodeMask, 1);
  m->width = width;
  m->height = height;
  m->data = g_malloc0 ((gsize) width * height);
  return m;
}

LodeMask *
lode_mask_copy (const LodeMask *m)
{
  LodeMask *copy;

  g_return_val_if_fail (m != NULL, NULL);

  copy = g_new (LodeMask, 1);
  copy->width = m->width;
  copy->height = m->height;
  copy->data = g_memdup2 (m->data, (gsize) m->width * m->height);
  return copy;
}

void
lode_mask_free (LodeMask *m)
{
  if (m == NULL)
    return;
  g_free (m->data);
  g_free (m);
}

gboolean
lode_mask_equal (const LodeMask *a, const LodeMask *b)
{
  g_return_val_if_fail (a != NULL && b != NULL, FALSE);

  return a->width == b->width && a->height == b->height
         && memcmp (a->data, b->data, (gsize) a->width * a->height) == 0;
}

typedef struct
{
  double  value;
  guint64 count;
} UnknownValue;

static void
note_unknown (UnknownValue *seen, guint *n_seen, guint64 *n_others, double v)
{
  for (guint k = 0; k < *n_seen; k++)
    if (seen[k].value == v || (isnan (v) && isnan (seen[k].value)))
      {
        seen[k].count++;
        return;
      }
  if (*n_seen < MAX_UNKNOWN_LISTED)
    {
      seen[*n_seen].value = v;
      seen[*n_seen].count = 1;
      (*n_seen)++;
    }
  else
    (*n_others)++;
}

static void
set_unknown_error (GError **error, const UnknownValue *seen, guint n_seen,
                   guint64 n_others)
{
  g_autoptr(GString) list = g_string_new (NULL);

  for (guint k = 0; k < n_seen; k++)
    {
      char number[G_ASCII_DTOSTR_BUF_SIZE];
      g_autofree char *count = g_strdup_printf ("%" G_GUINT64_FORMAT, seen[k].count);

      g_ascii_formatd (number, sizeof number, "%.10g", seen[k].value);
      if (k > 0)
        g_string_append (list, ", ");
      /* TRANSLATORS: a raster value and how many pixels hold it */
      g_string_append_printf (list, g_dngettext (GETTEXT_PACKAGE, "%s (%s pixel)", "%s (%s pixels)",
                                                 (gulong) MIN (seen[k].count, G_MAXULONG)),
                              number, count);
    }
  if (n_others > 0)
    {
      g_autofree char *count = g_strdup_printf ("%" G_GUINT64_FORMAT, n_others);

      g_string_append (list, ", ");
      g_string_append_printf (list, g_dngettext (GETTEXT_PACKAGE, "other values (%s pixel)",
                                                 "other values (%s pixels)",
                                                 (gulong) MIN (n_others, G_MAXULONG)),
                              count);
    }
  g_set_error (error, LODE_MASK_ERROR, LODE_MASK_ERROR_UNKNOWN_VALUE,
               _("Mask values have no class in the class table: %s"), list->str);
}

LodeMask *
lode_mask_from_values (const double *values, int width, int height,
                       const LodeClassTable *t, gboolean has_nodata,
                       double nodata, GError **error)
{
  g_autoptr(LodeMask) m = NULL;
  gint16 id_of_value[256];
  UnknownValue seen[MAX_UNKNOWN_LISTED];
  guint n_seen = 0;
  guint64 n_others = 0;
  gsize n;

  g_return_val_if_fail (values != NULL && t != NULL, NULL);

  if (width <= 0 || height <= 0 || width > LODE_MASK_MAX_SIDE || height > LODE_MASK_MAX_SIDE)
    {
      g_set_error (error, LODE_MASK_ERROR, LODE_MASK_ERROR_TOO_LARGE,
                   _("Mask size %d × %d is outside 1 to %d pixels a side"),
                   width, height, LODE_MASK_MAX_SIDE);
      return NULL;
    }

  for (int v = 0; v < 256; v++)
    id_of_value[v] = -1;
  for (guint i = 0; i < lode_class_table_size (t); i++)
    {
      const LodeClass *c = lode_class_table_get (t, i);

      id_of_value[c->export_value] = c->id;
    }

  m = lode_mask_new (width, height);
  n = (gsize) width * height;
  for (gsize i = 0; i < n; i++)
    {
      double v = values[i];

      if (has_nodata && (v == nodata || (isnan (v) && isnan (nodata))))
        m->data[i] = LODE_MASK_NODATA;
      else if (v >= 0 && v <= 255 && v == floor (v) && id_of_value[(int) v] >= 0)
        m->data[i] = (guint8) id_of_value[(int) v];
      else
        note_unknown (seen, &n_seen, &n_others, v);
    }

  if (n_seen > 0)
    {
      set_unknown_error (error, seen, n_seen, n_others);
      return NULL;
    }
  return g_steal_pointer (&m);
}

void
lode_mask_to_export (const LodeMask *m, const LodeClassTable *t, guint8 *out,
                     guint8 nodata_out)
{
  guint8 value_of_id[256];
  gsize n;

  g_return_if_fail (m != NULL && t != NULL && out != NULL);

  memset (value_of_id, nodata_out, sizeof value_of_id);
  for (guint i = 0; i < lode_class_table_size (t); i++)
    {
      const LodeClass *c = lode_class_table_get (t, i);

      value_of_id[c->id] = (guint8) c->export_value;
    }
  value_of_id[LODE_MASK_NODATA] = nodata_out;

  n = (gsize) m->width * m->height;
  for (gsize i = 0; i < n; i++)
    out[i] = value_of_id[m->data[i]];
}

void
lode_mask_count (const LodeMask *m, guint64 counts[256])
{
  gsize n;

  g_return_if_fail (m != NULL && counts != NULL);

  memset (counts, 0, 256 * sizeof (guint64));
  n = (gsize) m->width * m->height;
  for (gsize i = 0; i < n; i++)
    counts[m->data[i]]++;
}

static gboolean
on_boundary (const LodeMask *m, int x, int y)
{
  const guint8 *p = m->data + (gsize) y * m->width + x;

  return x == 0 || y == 0 || x == m->width - 1 || y == m->height - 1
         || p[-1] != *p || p[1] != *p || p[-m->width] != *p || p[m->width] != *p;
}

void
lode_mask_render_rgba (const LodeMask *m, const LodeClassTable *t,
                       gboolean outline, guint8 *rgba)
{
  guint8 colour[256][4];

  g_return_if_fail (m != NULL && t != NULL && rgba != NULL);

  memset (colour, 0, sizeof colour);
  for (guint i = 0; i < lode_class_table_size (t); i++)
    {
      const LodeClass *c = lode_class_table_get (t, i);

      if (c->id != 0)
        memcpy (colour[c->id], c->rgba, 4);
    }

  for (int y = 0; y < m->height; y++)
    for (int x = 0; x < m->width; x++)
      {
        gsize i = (gsize) y * m->width + x;
        guint8 id = m->data[i];

        if (outline && colour[id][3] != 0 && !on_boundary (m, x, y))
          memset (rgba + 4 * i, 0, 4);
        else
          memcpy (rgba + 4 * i, colour[id], 4);
      }
}

static void
put_u32 (guint8 *p, guint32 v)
{
  p[0] = v & 0xff;
  p[1] = (v >> 8) & 0xff;
  p[2] = (v >> 16) & 0xff;
  p[3] = (v >> 24) & 0xff;
}

static guint32
get_u32 (const guint8 *p)
{
  return (guint32) p[0] | (guint32) p[1] << 8 | (guint32) p[2] << 16 | (guint32) p[3] << 24;
}

/* magic, version, fields, CRC-32 of all that. */
static gsize
header_size (guint n_fields)
{
  return 4 + 4 + 4 * (gsize) n_fields + 4;
}

GBytes *
lode_mask_blob_write (const char *magic, const guint32 *fields, guint n_fields,
                      const guint8 * const *parts, const gsize *part_sizes,
                      guint n_parts)
{
  z_stream zs = { 0, };
  g_autoptr(GByteArray) out = g_byte_array_new ();
  gsize head = header_size (n_fields);
  gsize total = 0;
  int ret;

  g_return_val_if_fail (magic != NULL && strlen (magic) == 4, NULL);

  for (guint k = 0; k < n_parts; k++)
    total += part_sizes[k];

  g_byte_array_set_size (out, head);
  memcpy (out->data, magic, 4);
  put_u32 (out->data + 4, BLOB_VERSION);
  for (guint k = 0; k < n_fields; k++)
    put_u32 (out->data + 8 + 4 * k, fields[k]);
  put_u32 (out->data + head - 4, crc32 (0, out->data, head - 4));

  /* Like g_malloc, running out of memory is fatal. */
  if (deflateInit (&zs, Z_DEFAULT_COMPRESSION) != Z_OK)
    g_error ("zlib could not start: out of memory");
  g_byte_array_set_size (out, head + deflateBound (&zs, total) + 64);

  for (guint k = 0; k < MAX (n_parts, 1); k++)
    {
      int flush = k + 1 >= n_parts ? Z_FINISH : Z_NO_FLUSH;

      zs.next_in = (Bytef *) (k < n_parts ? parts[k] : NULL);
      zs.avail_in = k < n_parts ? part_sizes[k] : 0;
      do
        {
          if (head + zs.total_out == out->len)
            g_byte_array_set_size (out, out->len * 2);
          zs.next_out = out->data + head + zs.total_out;
          zs.avail_out = out->len - head - zs.total_out;
          ret = deflate (&zs, flush);
          g_assert (ret == Z_OK || ret == Z_STREAM_END || ret == Z_BUF_ERROR);
        }
      while (flush == Z_FINISH ? ret != Z_STREAM_END : zs.avail_in > 0);
    }
  g_byte_array_set_size (out, head + zs.total_out);
  deflateEnd (&zs);
  return g_byte_array_free_to_bytes (g_steal_pointer (&out));
}

static void
set_corrupt (GError **error, const char *what)
{
  g_set_error (error, LODE_MASK_ERROR, LODE_MASK_ERROR_CORRUPT,
               _("Stored mask data is damaged: %s"), what);
}

gboolean
lode_mask_blob_read_header (GBytes *bytes, const char *magic, guint32 *fields,
                            guint n_fields, GError **error)
{
  gsize len;
  const guint8 *p;

  g_return_val_if_fail (bytes != NULL && magic != NULL, FALSE);

  p = g_bytes_get_data (bytes, &len);
  if (len < header_size (n_fields))
    {
      set_corrupt (error, _("too short"));
      return FALSE;
    }
  if (memcmp (p, magic, 4) != 0)
    {
      set_corrupt (error, _("wrong kind of data"));
      return FALSE;
    }
  if (crc32 (0, p, header_size (n_fields) - 4) != get_u32 (p + header_size (n_fields) - 4))
    {
      set_corrupt (error, _("its header does not match its checksum"));
      return FALSE;
    }
  if (get_u32 (p + 4) != BLOB_VERSION)
    {
      g_set_error (error, LODE_MASK_ERROR, LODE_MASK_ERROR_CORRUPT,
                   _("Stored mask data has version %u; this program reads version %d"),
                   get_u32 (p + 4), BLOB_VERSION);
      return FALSE;
    }
  for (guint k = 0; k < n_fields; k++)
    fields[k] = get_u32 (p + 8 + 4 * k);
  return TRUE;
}

guint8 *
lode_mask_blob_inflate (GBytes *bytes, guint n_fields, gsize size, GError **error)
{
  z_stream zs = { 0, };
  g_autofree guint8 *out = NULL;
  gsize len, head = header_size (n_fields);
  const guint8 *p;
  int ret;

  g_return_val_if_fail (bytes != NULL, NULL);

  p = g_bytes_get_data (bytes, &len);
  g_return_val_if_fail (len >= head, NULL);

  if (len - head > G_MAXUINT32 || size / MAX_INFLATE_RATIO > len - head)
    {
      set_corrupt (error, _("sizes do not match the data"));
      return NULL;
    }

  out = g_malloc (MAX (size, 1));
  if (inflateInit (&zs) != Z_OK)
    {
      set_corrupt (error, _("zlib could not start"));
      return NULL;
    }
  zs.next_in = (Bytef *) p + head;
  zs.avail_in = len - head;
  zs.next_out = out;
  zs.avail_out = size;
  ret = inflate (&zs, Z_FINISH);
  inflateEnd (&zs);

  if (ret == Z_STREAM_END && zs.avail_out == 0 && zs.avail_in == 0)
    return g_steal_pointer (&out);

  if (ret == Z_STREAM_END && zs.avail_out != 0)
    set_corrupt (error, _("fewer pixels than its size says"));
  else if (ret == Z_STREAM_END)
    set_corrupt (error, _("unexpected bytes after the end"));
  else if (ret == Z_BUF_ERROR && zs.avail_out == 0)
    set_corrupt (error, _("more pixels than its size says"));
  else if (ret == Z_BUF_ERROR)
    set_corrupt (error, _("cut short"));
  else
    set_corrupt (error, zs.msg != NULL ? zs.msg : _("not a zlib stream"));
  return NULL;
}

GBytes *
lode_mask_serialize (const LodeMask *m)
{
  guint32 fields[2];
  const guint8 *parts[1];
  gsize sizes[1];

  g_return_val_if_fail (m != NULL, NULL);

  fields[0] = m->width;
  fields[1] = m->height;
  parts[0] = m->data;
  sizes[0] = (gsize) m->width * m->height;
  return lode_mask_blob_write (MASK_MAGIC, fields, 2, parts, sizes, 1);
}

LodeMask *
lode_mask_deserialize (GBytes *bytes, GError **error)
{
  guint32 fields[2];
  LodeMask *m;
  guint8 *data;

  g_return_val_if_fail (bytes != NULL, NULL);

  if (!lode_mask_blob_read_header (bytes, MASK_MAGIC, fields, 2, error))
    return NULL;
  if (fields[0] < 1 || fields[0] > LODE_MASK_MAX_SIDE
      || fields[1] < 1 || fields[1] > LODE_MASK_MAX_SIDE)
    {
      g_set_error (error, LODE_MASK_ERROR, LODE_MASK_ERROR_TOO_LARGE,
                   _("Stored mask size %u × %u is outside 1 to %d pixels a side"),
                   fields[0], fields[1], LODE_MASK_MAX_SIDE);
      return NULL;
    }
  data = lode_mask_blob_inflate (bytes, 2, (gsize) fields[0] * fields[1], error);
  if (data == NULL)
    return NULL;

  m = g_new (LodeMask, 1);
  m->width = fields[0];
  m->height = fields[1];
  m->data = data;
  return m;
}
