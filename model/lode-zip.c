#define G_LOG_DOMAIN "lode-model"

#include "config.h"

#include <inttypes.h>

#include <glib/gi18n.h>
#include <string.h>

#include "lode-checkpoint.h"
#include "lode-zip.h"

#define SIG_LOCAL       0x04034b50u
#define SIG_DESCRIPTOR  0x08074b50u
#define SIG_CENTRAL     0x02014b50u
#define SIG_END         0x06054b50u
#define SIG_END64       0x06064b50u
#define FLAG_DESCRIPTOR 0x0008u

static guint64
le (const guint8 *p, int n)
{
  guint64 v = 0;

  for (int i = 0; i < n; i++)
    v |= (guint64) p[i] << (8 * i);
  return v;
}

static gboolean
cut_short (const guint8 *data, gsize size, const char *display, const char *where, GError **error)
{
  g_set_error (error, LODE_CHECKPOINT_ERROR, LODE_CHECKPOINT_ERROR_TRUNCATED,
               _("The checkpoint “%s” is cut short, perhaps by an interrupted download: "
                 "it has only %zu bytes and ends %s, before the archive's "
                 "central directory. Download it again."),
               display, size, where);
  return TRUE;
}

/* The data descriptor that closes a stored entry of unknown size starting
 * at data_off: "PK\7\10", CRC-32, then compressed and uncompressed sizes of
 * 4 bytes, or 8 in zip64, where the compressed size equals the distance. */
static gsize
find_descriptor (const guint8 *data, gsize size, gsize data_off, gsize *next)
{
  gsize p = data_off;

  while (p < size)
    {
      const guint8 *hit = memmem (data + p, size - p, "PK\007\010", 4);
      gsize at, dist;

      if (hit == NULL)
        return 0;
      at = hit - data;
      dist = at - data_off;
      if (size - at >= 16 && le (data + at + 8, 4) == dist && le (data + at + 12, 4) == dist)
        {
          *next = at + 16;
          return at;
        }
      if (size - at >= 24 && le (data + at + 8, 8) == dist && le (data + at + 16, 8) == dist)
        {
          *next = at + 24;
          return at;
        }
      p = at + 1;
    }
  return 0;
}

/* zip64 sizes live in extra field 0x0001: uncompressed, then compressed */
static gboolean
zip64_compressed_size (const guint8 *extra, gsize len, guint64 *csize)
{
  gsize p = 0;

  while (len - p >= 4)
    {
      guint id = (guint) le (extra + p, 2);
      gsize n = (gsize) le (extra + p + 2, 2);

      if (n > len - p - 4)
        return FALSE;
      if (id == 0x0001 && n >= 16)
        {
          *csize = le (extra + p + 4 + 8, 8);
          return TRUE;
        }
      p += 4 + n;
    }
  return FALSE;
}

static gboolean
has_end_record (const guint8 *data, gsize size)
{
  gsize start = size > 65557 ? size - 65557 : 0;

  for (gsize p = size >= 22 ? size - 22 + 1 : 0; p > start; p--)
    if (le (data + p - 1, 4) == SIG_END)
      return TRUE;
  return FALSE;
}

gboolean
lode_zip_check_truncated (const guint8 *data, gsize size, const char *display, GError **error)
{
  g_autofree char *last = NULL;
  gsize off = 0;

  g_return_val_if_fail (data != NULL || size == 0, FALSE);

  for (;;)
    {
      guint32 sig;
      guint flags;
      gsize name_len, extra_len, data_off, next = 0;
      guint64 csize;
      g_autofree char *name = NULL;
      g_autofree char *where = NULL;

      if (off == size)
        {
          where = last ? g_strdup_printf (_("after the entry “%s”"), last) : g_strdup (_("at its start"));
          return cut_short (data, size, display, where, error);
        }
      if (size - off < 4)
        return cut_short (data, size, display, _("inside a file header"), error);
      sig = (guint32) le (data + off, 4);
      if (sig == SIG_CENTRAL || sig == SIG_END || sig == SIG_END64)
        {
          if (!has_end_record (data, size))
            return cut_short (data, size, display, _("inside the central directory"), error);
          return FALSE;
        }
      if (sig != SIG_LOCAL)
        return FALSE;
      if (size - off < 30)
        return cut_short (data, size, display, _("inside a file header"), error);
      flags = (guint) le (data + off + 6, 2);
      csize = le (data + off + 18, 4);
      name_len = (gsize) le (data + off + 26, 2);
      extra_len = (gsize) le (data + off + 28, 2);
      if (size - off - 30 < name_len + extra_len)
        return cut_short (data, size, display, _("inside a file header"), error);
      name = g_utf8_make_valid ((const char *) data + off + 30, (gssize) name_len);
      data_off = off + 30 + name_len + extra_len;
      where = g_strdup_printf (_("inside the entry “%s”"), name);
      if (flags & FLAG_DESCRIPTOR)
        {
          if (find_descriptor (data, size, data_off, &next) == 0)
            return cut_short (data, size, display, where, error);
        }
      else
        {
          if (csize == 0xffffffffu
              && !zip64_compressed_size (data + off + 30 + name_len, extra_len, &csize))
            return FALSE;
          if (csize > size - data_off)
            return cut_short (data, size, display, where, error);
          next = data_off + csize;
        }
      g_free (last);
      last = g_steal_pointer (&name);
      off = next;
    }
}
