#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <inttypes.h>

#include <glib/gi18n.h>

#include "lode-cli-progress.h"
#include "lode-commands.h"
#include "lode-export.h"
#include "lode-store.h"

int
lode_cmd_export (int argc, char **argv)
{
  gboolean accepted_only = FALSE;
  g_autofree char *formats = NULL;
  g_autofree char *bands = NULL;
  g_auto(GStrv) rest = NULL;
  g_autoptr(GError) error = NULL;
  const GOptionEntry entries[] = {
    { "accepted-only", 'a', 0, G_OPTION_ARG_NONE, &accepted_only, N_("Export only the patches whose review state is accepted"), NULL },
    { "format", 'f', 0, G_OPTION_ARG_STRING, &formats, N_("What to write, comma-separated: masks, splits, manifest, gpkg, terratorch (default: all)"), N_("LIST") },
    { "bands", 'b', 0, G_OPTION_ARG_STRING, &bands, N_("Bands of the TerraTorch images: all (default) or 6 (B2 B3 B4 B8A B11 B12)"), N_("all|6") },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &rest, NULL, N_("PROJECT.lode DIR") },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (_("PROJECT.lode DIR"));
  g_autoptr(LodeStore) store = NULL;
  LodeExportOptions options;
  LodeExportReport report;

  g_option_context_set_summary (context,
    _("Write the revised label set of a project into DIR (made when missing):\n"
      "  masks       uint8 GeoTIFF masks on each image's grid, nodata 255\n"
      "              (SmallMinesDS/YEAR/MASK/MASK_GH_TTTT_YYYY.tif, or masks/)\n"
      "  splits      data_splits/train_test_splits_YYYY.csv, shares recomputed\n"
      "  manifest    manifest.json: counts, class pixels, changes, review states\n"
      "  gpkg        polygons.gpkg: class regions with class, tile and year\n"
      "  terratorch  terratorch/training, terratorch/validation and config.yaml\n"
      "Files are written whole or not at all; DIR must lie outside the data set."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!lode_cli_parse (context, &argc, &argv))
    return LODE_EXIT_USAGE;
  if (rest == NULL || g_strv_length (rest) != 2)
    {
      lode_cli_error ("export", _("expected a project file and a folder to export into"));
      return LODE_EXIT_USAGE;
    }

  lode_export_options_init (&options);
  options.accepted_only = accepted_only;
  if (formats != NULL && !lode_export_parse_formats (formats, &options.formats, &error))
    {
      lode_cli_error ("export", "%s", error->message);
      return LODE_EXIT_USAGE;
    }
  if (bands == NULL || g_str_equal (bands, "all"))
    options.bands = LODE_EXPORT_BANDS_ALL;
  else if (g_str_equal (bands, "6"))
    options.bands = LODE_EXPORT_BANDS_SIX;
  else
    {
      lode_cli_error ("export", _("--bands must be all or 6, not “%s”"), bands);
      return LODE_EXIT_USAGE;
    }

  store = lode_cli_open_project ("export", rest[0]);
  if (store == NULL)
    return LODE_EXIT_FAILURE;
  if (!lode_export_run (store, rest[1], &options, &report, lode_cli_progress, NULL, NULL, &error))
    {
      lode_cli_progress_end ();
      lode_cli_error ("export", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }
  lode_cli_progress_end ();
  g_print (_("Exported %u patches into %s (%u files)\n"), report.n_exported, rest[1], report.n_files);
  g_print (_("%u patches differ from their original masks (%" PRIu64 " pixels changed)\n"),
           report.n_changed, report.changed_pixels);
  if (report.n_without_mask > 0)
    g_print (_("Left out %u patches without a mask\n"), report.n_without_mask);
  if (report.n_not_accepted > 0)
    g_print (_("Left out %u patches not accepted\n"), report.n_not_accepted);
  return LODE_EXIT_OK;
}
