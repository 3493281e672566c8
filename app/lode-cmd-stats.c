#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>

#include "lode-cli-progress.h"
#include "lode-commands.h"
#include "lode-stats.h"

int
lode_cmd_stats (int argc, char **argv)
{
  g_autofree char *out = NULL;
  gboolean per_tile = FALSE;
  int from_year = 2016, to_year = 2022;
  g_auto(GStrv) rest = NULL;
  g_autoptr(GError) error = NULL;
  const GOptionEntry entries[] = {
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out, N_("Write the CSV into FILE instead of standard output"), N_("FILE.csv") },
    { "per-tile", 't', 0, G_OPTION_ARG_NONE, &per_tile, N_("Add the rows of every tile after the totals"), NULL },
    { "from", 0, 0, G_OPTION_ARG_INT, &from_year, N_("First year of the transition matrix (default 2016)"), N_("YEAR") },
    { "to", 0, 0, G_OPTION_ARG_INT, &to_year, N_("Second year of the transition matrix (default 2022)"), N_("YEAR") },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &rest, NULL, N_("PROJECT.lode") },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (_("PROJECT.lode"));
  g_autoptr(LodeStore) store = NULL;
  g_autoptr(LodeStats) stats = NULL;

  g_option_context_set_summary (context,
    _("Hectares of each class per year and the transition matrix between two\n"
      "years, from the latest masks, as one CSV with a kind column:\n"
      "  kind,tile,year,class,from_class,to_class,pixels,hectares\n"
      "  area rows: tile, year, class, its pixels and hectares;\n"
      "  transition rows: year = FROM-TO, from_class -> to_class, cocoa -> mining first.\n"
      "Totals come first (tile = total); --per-tile adds each tile's rows.\n"
      "A pixel's area comes from the geotransform (0.01 ha at 10 m)."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!lode_cli_parse (context, &argc, &argv))
    return LODE_EXIT_USAGE;
  if (rest == NULL || g_strv_length (rest) != 1)
    {
      lode_cli_error ("stats", _("expected one project file"));
      return LODE_EXIT_USAGE;
    }

  store = lode_cli_open_project ("stats", rest[0]);
  if (store == NULL)
    return LODE_EXIT_FAILURE;
  stats = lode_stats_compute (store, from_year, to_year, out ? lode_cli_progress : NULL, NULL, NULL, &error);
  lode_cli_progress_end ();
  if (stats == NULL)
    {
      lode_cli_error ("stats", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }
  if (out != NULL)
    {
      if (!lode_stats_write_csv (stats, out, per_tile, &error))
        {
          lode_cli_error ("stats", "%s", error->message);
          return LODE_EXIT_FAILURE;
        }
    }
  else
    {
      g_autofree char *csv = lode_stats_to_csv (stats, per_tile);
      g_print ("%s", csv);
    }
  return LODE_EXIT_OK;
}
