#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>
#include <stdarg.h>

#include "lode-cli.h"
#include "lode-commands.h"

typedef struct
{
  const char *name;
  const char *summary;
  int (*run) (int argc, char **argv);
} LodeCommand;

static const LodeCommand commands[] = {
  { "demo", N_("Write a synthetic data set in the SmallMinesDS layout and a project on it"), lode_cmd_demo },
  { "import", N_("Make a project from a SmallMinesDS folder or a folder of GeoTIFFs"), lode_cmd_import },
  { "export", N_("Write revised masks, split files, a manifest, polygons and a TerraTorch folder"), lode_cmd_export },
  { "stats", N_("Hectares per class and year, and the 2016 → 2022 transition matrix, as CSV"), lode_cmd_stats },
  { "info", N_("Describe a project: patches, splits, review states, odd patches, classes"), lode_cmd_info },
  { "bench", N_("Print timings of the engine (lode bench annotate, sam2, …)"), lode_cmd_bench },
  { "segment", N_("Segment the object under a click with SAM2.1 and write its mask"), lode_cmd_segment },
  { "train", N_("Train a U-Net or a Prithvi segmenter, or fine-tune SAM2 (lode train unet|prithvi|sam2)"), lode_cmd_train },
  { "predict", N_("Write the mask a trained U-Net gives a patch"), lode_cmd_predict },
  { "prelabel", N_("Pre-label a project's patches with a trained model version"), lode_cmd_prelabel },
  { "encode", N_("Compute the SAM2.1 embeddings of a project's patches ahead of time"), lode_cmd_encode },
};

gboolean
lode_cli_is_command (const char *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    if (g_str_equal (commands[i].name, name))
      return TRUE;
  return FALSE;
}

int
lode_cli_run (int argc, char **argv)
{
  g_return_val_if_fail (argc >= 2, LODE_EXIT_USAGE);

  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    if (g_str_equal (commands[i].name, argv[1]))
      return commands[i].run (argc - 1, argv + 1);

  g_printerr (_("lode: unknown command “%s”. Run “lode --help” for the list of commands.\n"), argv[1]);
  return LODE_EXIT_USAGE;
}

void
lode_cli_print_help (FILE *out)
{
  fprintf (out, "%s\n", _("Usage:"));
  fprintf (out, "  lode [%s]\n", _("PROJECT.lode"));
  fprintf (out, "  lode %s [%s…]\n\n", _("COMMAND"), _("OPTION"));
  fprintf (out, "%s\n\n", _("Lode corrects and reviews mining and cocoa masks on Sentinel-1/2 patches.\n"
                            "Without a command it opens the window, and the project if one is given."));
  fprintf (out, "%s\n", _("Commands:"));
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    fprintf (out, "  %-10s %s\n", commands[i].name, _(commands[i].summary));
  fprintf (out, "\n%s\n", _("Options:"));
  fprintf (out, "  %-14s %s\n", "-h, --help", _("Show this help"));
  fprintf (out, "  %-14s %s\n", "--version", _("Show the version"));
  fprintf (out, "\n%s\n", _("Run “lode COMMAND --help” for the options of a command."));
}

gboolean
lode_cli_parse (GOptionContext *context, int *argc, char ***argv)
{
  g_autoptr(GError) error = NULL;

  g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
  if (!g_option_context_parse (context, argc, argv, &error))
    {
      g_printerr ("lode %s: %s\n", (*argv)[0], error->message);
      g_printerr (_("Run “lode %s --help” for its options.\n"), (*argv)[0]);
      return FALSE;
    }
  return TRUE;
}

void
lode_cli_error (const char *command, const char *format, ...)
{
  va_list args;
  g_autofree char *msg = NULL;

  va_start (args, format);
  msg = g_strdup_vprintf (format, args);
  va_end (args);
  g_printerr ("lode %s: %s\n", command, msg);
}
