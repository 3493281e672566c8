#define G_LOG_DOMAIN "lode-annotate"

#include "config.h"

#include <math.h>
#include <string.h>

#include "lode-splits.h"

double
lode_splits_percent (guint64 part, guint64 total)
{
  if (total == 0)
    return 0.0;
  return round (10000.0 * (double) part / (double) total) / 100.0;
}

int
lode_splits_bin (double percent)
{
  int bin = (int) ceil (percent / 10.0 - 1e-9) - 1;

  return CLAMP (bin, 0, LODE_SPLITS_N_BINS - 1);
}

/* A percentage as Python prints a float rounded to two decimals. */
static void
format_percent (GString *out, double percent)
{
  char buffer[G_ASCII_DTOSTR_BUF_SIZE];
  gsize len;

  g_ascii_formatd (buffer, sizeof buffer, "%.2f", percent);
  len = strlen (buffer);
  if (buffer[len - 1] == '0')
    buffer[len - 1] = '\0';
  g_string_append (out, buffer);
}

char *
lode_splits_to_csv (const LodeSplitRow *rows, guint n_rows)
{
  static const char * const splits[2] = { "train", "test" };
  GString *csv = g_string_new ("patch_name,class_percentage,bin,split\n");

  g_return_val_if_fail (rows != NULL || n_rows == 0, NULL);

  for (int s = 0; s < 2; s++)
    for (int b = 0; b < LODE_SPLITS_N_BINS; b++)
      for (guint i = 0; i < n_rows; i++)
        {
          const LodeSplitRow *row = &rows[i];

          if (lode_splits_bin (row->percent) != b || g_strcmp0 (row->split, splits[s]) != 0)
            continue;
          g_string_append_printf (csv, "%s,", row->patch_name);
          format_percent (csv, row->percent);
          g_string_append_printf (csv, ",%d-%d%%,%s\n", b * 10, b * 10 + 10, splits[s]);
        }
  return g_string_free (csv, FALSE);
}
