#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>

#include "lode-cli-progress.h"
#include "lode-commands.h"
#include "lode-demo.h"

int
lode_cmd_demo (int argc, char **argv)
{
  int tiles = 24;
  gint64 seed = 2016;
  int size = 128;
  g_auto(GStrv) rest = NULL;
  g_autoptr(GError) error = NULL;
  const GOptionEntry entries[] = {
    { "tiles", 't', 0, G_OPTION_ARG_INT, &tiles, N_("Number of tiles, each in 2016 and 2022 (default 24)"), N_("N") },
    { "seed", 's', 0, G_OPTION_ARG_INT64, &seed, N_("Seed of the generator (default 2016)"), N_("SEED") },
    { "size", 0, 0, G_OPTION_ARG_INT, &size, N_("Patch width and height in pixels (default 128)"), N_("PIXELS") },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_STRING_ARRAY, &rest, NULL, N_("DIR") },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (_("DIR"));
  LodeDemoOptions options;
  LodeImportOptions import_options;
  g_autofree char *project = NULL;
  g_autofree char *binary_project = NULL;

  g_option_context_set_summary (context,
    _("Write a synthetic data set in the SmallMinesDS layout into DIR:\n"
      "13-band GeoTIFF images in UTM 30N for 2016 and 2022, binary and\n"
      "3-class masks, and the split CSVs; and two projects on it:\n"
      "DIR/demo.lode with the 3-class masks (background, mining, cocoa)\n"
      "and DIR/demo-binary.lode with the binary mining masks.\n"
      "The same seed gives the same files."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!lode_cli_parse (context, &argc, &argv))
    return LODE_EXIT_USAGE;

  if (rest == NULL || rest[0] == NULL || rest[1] != NULL)
    {
      lode_cli_error ("demo", _("expected one folder to write into"));
      return LODE_EXIT_USAGE;
    }
  if (tiles < 1 || tiles > 2135)
    {
      lode_cli_error ("demo", _("--tiles must be between 1 and 2135"));
      return LODE_EXIT_USAGE;
    }
  if (size < 16 || size > 4096)
    {
      lode_cli_error ("demo", _("--size must be between 16 and 4096"));
      return LODE_EXIT_USAGE;
    }

  project = g_build_filename (rest[0], "demo.lode", NULL);
  binary_project = g_build_filename (rest[0], "demo-binary.lode", NULL);
  if (g_file_test (project, G_FILE_TEST_EXISTS) || g_file_test (binary_project, G_FILE_TEST_EXISTS))
    {
      lode_cli_error ("demo", _("“%s” already holds a demo project; choose another folder"), rest[0]);
      return LODE_EXIT_FAILURE;
    }

  lode_demo_options_init (&options);
  options.n_tiles = tiles;
  options.seed = (guint64) seed;
  options.size = size;
  if (!lode_demo_write (rest[0], &options, lode_cli_progress, NULL, NULL, &error))
    {
      lode_cli_progress_end ();
      lode_cli_error ("demo", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }
  lode_cli_progress_end ();

  lode_import_options_init (&import_options);
  import_options.expected_size = size;
  import_options.expected_bands = 13;
  if (!lode_cli_import_into (binary_project, rest[0], &import_options, TRUE, &error))
    {
      lode_cli_error ("demo", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }
  import_options.masks = LODE_IMPORT_MASKS_COCOA;
  if (!lode_cli_import_into (project, rest[0], &import_options, TRUE, &error))
    {
      lode_cli_error ("demo", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }
  g_print (_("Wrote %d tiles for 2016 and 2022 into %s, and the projects %s and %s\n"),
           tiles, rest[0], project, binary_project);
  return LODE_EXIT_OK;
}
