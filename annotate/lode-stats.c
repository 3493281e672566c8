#define G_LOG_DOMAIN "lode-annotate"

#include "config.h"

#include <math.h>
#include <string.h>

#include <glib/gi18n.h>

#include "lode-mask.h"
#include "lode-stats.h"

G_DEFINE_QUARK (lode-stats-error-quark, lode_stats_error)

typedef struct
{
  int      year;
  guint64 *pixels;    /* per class index */
  double  *hectares;
} YearArea;

typedef struct
{
  char    *tile;
  GArray  *years;     /* YearArea, sorted by year */
  guint64 *trans_pixels;    /* k x k, from-major */
  double  *trans_hectares;
} TileStats;

struct _LodeStats
{
  LodeClassTable *classes;
  guint           k;              /* classes */
  int             index[256];     /* class id -> index, -1 when absent */
  int             from_year;
  int             to_year;
  GPtrArray      *tiles;          /* TileStats*, in tile order */
  GHashTable     *by_tile;        /* tile -> TileStats* */
  TileStats      *total;
};

int
lode_stats_find_class (const LodeClassTable *t, const char *name)
{
  /* Preset names are stored translated: match the translation too. */
  const char *translated = g_dgettext (GETTEXT_PACKAGE, name);

  g_return_val_if_fail (t != NULL && name != NULL, -1);

  for (guint i = 0; i < lode_class_table_size (t); i++)
    {
      const LodeClass *c = lode_class_table_get (t, i);

      if (g_ascii_strcasecmp (c->name, name) == 0 || g_utf8_collate (c->name, translated) == 0)
        return c->id;
    }
  return -1;
}

static void
year_area_clear (gpointer data)
{
  YearArea *a = data;

  g_free (a->pixels);
  g_free (a->hectares);
}

static TileStats *
tile_stats_new (const char *tile, guint k)
{
  TileStats *t = g_new0 (TileStats, 1);

  t->tile = g_strdup (tile);
  t->years = g_array_new (FALSE, FALSE, sizeof (YearArea));
  g_array_set_clear_func (t->years, year_area_clear);
  t->trans_pixels = g_new0 (guint64, (gsize) k * k);
  t->trans_hectares = g_new0 (double, (gsize) k * k);
  return t;
}

static void
tile_stats_free (gpointer data)
{
  TileStats *t = data;

  g_free (t->tile);
  g_array_unref (t->years);
  g_free (t->trans_pixels);
  g_free (t->trans_hectares);
  g_free (t);
}

/* The year's row, added in order when missing (create) or NULL. */
static YearArea *
tile_year (TileStats *t, int year, guint k, gboolean create)
{
  guint i;

  for (i = 0; i < t->years->len; i++)
    {
      YearArea *a = &g_array_index (t->years, YearArea, i);

      if (a->year == year)
        return a;
      if (a->year > year)
        break;
    }
  if (!create)
    return NULL;
  {
    YearArea a = { year, g_new0 (guint64, k), g_new0 (double, k) };
    g_array_insert_val (t->years, i, a);
  }
  return &g_array_index (t->years, YearArea, i);
}

void
lode_stats_free (LodeStats *stats)
{
  if (stats == NULL)
    return;
  g_clear_pointer (&stats->classes, lode_class_table_free);
  g_clear_pointer (&stats->by_tile, g_hash_table_unref);
  g_clear_pointer (&stats->tiles, g_ptr_array_unref);
  g_clear_pointer (&stats->total, tile_stats_free);
  g_free (stats);
}

static double
pixel_hectares (const LodePatch *p)
{
  if (!p->has_geotransform)
    return 0.0;
  return fabs (p->geotransform[1] * p->geotransform[5]) / 10000.0;
}

static void
add_area (LodeStats *stats, TileStats *t, int year, const LodeMask *mask, double ha)
{
  YearArea *a = tile_year (t, year, stats->k, TRUE);
  YearArea *total = tile_year (stats->total, year, stats->k, TRUE);
  guint64 counts[256];

  lode_mask_count (mask, counts);
  for (int id = 0; id < 256; id++)
    {
      int c = stats->index[id];

      if (c < 0 || counts[id] == 0)
        continue;
      a->pixels[c] += counts[id];
      a->hectares[c] += counts[id] * ha;
      total->pixels[c] += counts[id];
      total->hectares[c] += counts[id] * ha;
    }
}

static void
add_transitions (LodeStats *stats, TileStats *t, const LodeMask *from, const LodeMask *to, double ha)
{
  gsize n = (gsize) from->width * from->height;
  guint k = stats->k;

  if (from->width != to->width || from->height != to->height)
    return;
  for (gsize i = 0; i < n; i++)
    {
      int a = stats->index[from->data[i]], b = stats->index[to->data[i]];

      if (a < 0 || b < 0)
        continue;
      t->trans_pixels[a * k + b]++;
      t->trans_hectares[a * k + b] += ha;
      stats->total->trans_pixels[a * k + b]++;
      stats->total->trans_hectares[a * k + b] += ha;
    }
}

LodeStats *
lode_stats_compute (LodeStore *store, int from_year, int to_year,
                    LodeProgressFunc progress, gpointer user_data,
                    GCancellable *cancellable, GError **error)
{
  g_autoptr(LodeStats) stats = g_new0 (LodeStats, 1);
  g_autoptr(GPtrArray) patches = NULL;
  g_autofree char *json = NULL;
  g_autoptr(LodeMask) from_mask = NULL;
  g_autoptr(LodeMask) to_mask = NULL;
  double from_ha = 0.0;
  TileStats *current = NULL;

  g_return_val_if_fail (store != NULL, NULL);

  json = lode_store_get_class_table_json (store);
  if (json == NULL)
    {
      g_set_error (error, LODE_STATS_ERROR, LODE_STATS_ERROR_NO_CLASSES,
                   _("The project “%s” has no class table"), lode_store_get_path (store));
      return NULL;
    }
  stats->classes = lode_class_table_from_json (json, error);
  if (stats->classes == NULL)
    return NULL;
  stats->k = lode_class_table_size (stats->classes);
  for (int id = 0; id < 256; id++)
    stats->index[id] = -1;
  for (guint c = 0; c < stats->k; c++)
    stats->index[lode_class_table_get (stats->classes, c)->id] = (int) c;
  stats->from_year = from_year;
  stats->to_year = to_year;
  stats->tiles = g_ptr_array_new_with_free_func (tile_stats_free);
  stats->by_tile = g_hash_table_new (g_str_hash, g_str_equal);
  stats->total = tile_stats_new ("total", stats->k);

  patches = lode_store_list_patches (store, error);
  if (patches == NULL)
    return NULL;
  for (guint i = 0; i < patches->len; i++)
    {
      const LodePatch *p = g_ptr_array_index (patches, i);
      g_autoptr(GBytes) blob = NULL;
      g_autoptr(LodeMask) mask = NULL;
      double ha = pixel_hectares (p);

      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return NULL;
      if (current == NULL || !g_str_equal (current->tile, p->tile_id))
        {
          if (current != NULL && from_mask != NULL && to_mask != NULL)
            add_transitions (stats, current, from_mask, to_mask, from_ha);
          g_clear_pointer (&from_mask, lode_mask_free);
          g_clear_pointer (&to_mask, lode_mask_free);
          current = g_hash_table_lookup (stats->by_tile, p->tile_id);
          if (current == NULL)
            {
              current = tile_stats_new (p->tile_id, stats->k);
              g_ptr_array_add (stats->tiles, current);
              g_hash_table_insert (stats->by_tile, current->tile, current);
            }
        }
      blob = lode_store_get_mask (store, p->id, 0, NULL, error);
      if (blob == NULL)
        {
          if (error != NULL && *error != NULL)
            return NULL;
          continue;
        }
      mask = lode_mask_deserialize (blob, error);
      if (mask == NULL)
        return NULL;
      add_area (stats, current, p->year, mask, ha);
      if (p->year == from_year)
        {
          g_clear_pointer (&from_mask, lode_mask_free);
          from_mask = lode_mask_copy (mask);
          from_ha = ha;
        }
      else if (p->year == to_year)
        {
          g_clear_pointer (&to_mask, lode_mask_free);
          to_mask = g_steal_pointer (&mask);
        }
      if (progress != NULL && (i % 32 == 0 || i + 1 == patches->len))
        progress ((double) (i + 1) / patches->len, _("Counting pixels"), user_data);
    }
  if (current != NULL && from_mask != NULL && to_mask != NULL)
    add_transitions (stats, current, from_mask, to_mask, from_ha);
  return g_steal_pointer (&stats);
}

const LodeClassTable *
lode_stats_get_classes (LodeStats *stats)
{
  g_return_val_if_fail (stats != NULL, NULL);
  return stats->classes;
}

guint
lode_stats_n_tiles (LodeStats *stats)
{
  g_return_val_if_fail (stats != NULL, 0);
  return stats->tiles->len;
}

const char *
lode_stats_tile (LodeStats *stats, guint index)
{
  g_return_val_if_fail (stats != NULL && index < stats->tiles->len, NULL);
  return ((TileStats *) g_ptr_array_index (stats->tiles, index))->tile;
}

static TileStats *
find_tile (LodeStats *stats, const char *tile)
{
  return tile == NULL ? stats->total : g_hash_table_lookup (stats->by_tile, tile);
}

double
lode_stats_hectares (LodeStats *stats, const char *tile, int year, guint8 class_id)
{
  TileStats *t;
  YearArea *a;

  g_return_val_if_fail (stats != NULL, 0.0);
  t = find_tile (stats, tile);
  a = t ? tile_year (t, year, stats->k, FALSE) : NULL;
  if (a == NULL || stats->index[class_id] < 0)
    return 0.0;
  return a->hectares[stats->index[class_id]];
}

guint64
lode_stats_pixels (LodeStats *stats, const char *tile, int year, guint8 class_id)
{
  TileStats *t;
  YearArea *a;

  g_return_val_if_fail (stats != NULL, 0);
  t = find_tile (stats, tile);
  a = t ? tile_year (t, year, stats->k, FALSE) : NULL;
  if (a == NULL || stats->index[class_id] < 0)
    return 0;
  return a->pixels[stats->index[class_id]];
}

double
lode_stats_transition_hectares (LodeStats *stats, const char *tile, guint8 from_class, guint8 to_class)
{
  TileStats *t;
  int a, b;

  g_return_val_if_fail (stats != NULL, 0.0);
  t = find_tile (stats, tile);
  a = stats->index[from_class];
  b = stats->index[to_class];
  if (t == NULL || a < 0 || b < 0)
    return 0.0;
  return t->trans_hectares[a * stats->k + b];
}

guint64
lode_stats_transition_pixels (LodeStats *stats, const char *tile, guint8 from_class, guint8 to_class)
{
  TileStats *t;
  int a, b;

  g_return_val_if_fail (stats != NULL, 0);
  t = find_tile (stats, tile);
  a = stats->index[from_class];
  b = stats->index[to_class];
  if (t == NULL || a < 0 || b < 0)
    return 0;
  return t->trans_pixels[a * stats->k + b];
}

/* CSV */

static void
csv_field (GString *out, const char *text)
{
  if (strpbrk (text, ",\"\n\r") == NULL)
    {
      g_string_append (out, text);
      return;
    }
  g_string_append_c (out, '"');
  for (const char *c = text; *c; c++)
    {
      if (*c == '"')
        g_string_append_c (out, '"');
      g_string_append_c (out, *c);
    }
  g_string_append_c (out, '"');
}

static void
csv_number (GString *out, guint64 pixels, double hectares)
{
  char buffer[G_ASCII_DTOSTR_BUF_SIZE];

  g_ascii_formatd (buffer, sizeof buffer, "%.4f", hectares);
  g_string_append_printf (out, ",%" G_GUINT64_FORMAT ",%s\n", pixels, buffer);
}

static const char *
class_name (LodeStats *stats, guint index)
{
  return lode_class_table_get (stats->classes, index)->name;
}

static void
append_tile (LodeStats *stats, GString *out, const TileStats *t, const char *label)
{
  guint k = stats->k;
  int cocoa = lode_stats_find_class (stats->classes, "Cocoa");
  int mining = lode_stats_find_class (stats->classes, "Mining");
  int first_from = cocoa >= 0 && mining >= 0 ? stats->index[cocoa] : -1;
  int first_to = cocoa >= 0 && mining >= 0 ? stats->index[mining] : -1;
  g_autofree char *years = g_strdup_printf ("%d-%d", stats->from_year, stats->to_year);

  for (guint y = 0; y < t->years->len; y++)
    {
      const YearArea *a = &g_array_index (t->years, YearArea, y);

      for (guint c = 0; c < k; c++)
        {
          g_string_append (out, "area,");
          csv_field (out, label);
          g_string_append_printf (out, ",%d,", a->year);
          csv_field (out, class_name (stats, c));
          g_string_append (out, ",,");
          csv_number (out, a->pixels[c], a->hectares[c]);
        }
    }
  /* pass 0: cocoa -> mining; 1: the other changes; 2: unchanged. */
  for (int pass = 0; pass < 3; pass++)
    for (guint a = 0; a < k; a++)
      for (guint b = 0; b < k; b++)
        {
          gboolean first = (int) a == first_from && (int) b == first_to;

          if ((pass == 0 && !first) || (pass == 1 && (first || a == b)) || (pass == 2 && a != b))
            continue;
          g_string_append (out, "transition,");
          csv_field (out, label);
          g_string_append_printf (out, ",%s,,", years);
          csv_field (out, class_name (stats, a));
          g_string_append_c (out, ',');
          csv_field (out, class_name (stats, b));
          csv_number (out, t->trans_pixels[a * k + b], t->trans_hectares[a * k + b]);
        }
}

char *
lode_stats_to_csv (LodeStats *stats, gboolean per_tile)
{
  GString *out = g_string_new ("kind,tile,year,class,from_class,to_class,pixels,hectares\n");

  g_return_val_if_fail (stats != NULL, NULL);

  append_tile (stats, out, stats->total, "total");
  if (per_tile)
    for (guint i = 0; i < stats->tiles->len; i++)
      {
        const TileStats *t = g_ptr_array_index (stats->tiles, i);
        append_tile (stats, out, t, t->tile);
      }
  return g_string_free (out, FALSE);
}

gboolean
lode_stats_write_csv (LodeStats *stats, const char *path, gboolean per_tile, GError **error)
{
  g_autofree char *csv = NULL;
  g_autoptr(GError) local = NULL;

  g_return_val_if_fail (stats != NULL && path != NULL, FALSE);

  csv = lode_stats_to_csv (stats, per_tile);
  /* g_file_set_contents writes a temporary file beside path, then renames. */
  if (!g_file_set_contents (path, csv, -1, &local))
    {
      g_set_error (error, LODE_STATS_ERROR, LODE_STATS_ERROR_WRITE,
                   _("Cannot write “%s”: %s"), path, local->message);
      return FALSE;
    }
  return TRUE;
}
