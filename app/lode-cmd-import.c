#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>
#include <glib/gstdio.h>

#include "lode-cli-progress.h"
#include "lode-commands.h"
#include "lode-import.h"
#include "lode-store.h"

/* Prints the odd patches of a report, at most a screenful of them. */
void
lode_cli_print_import_report (const LodeImportReport *report)
{
  const guint shown = 20;

  g_print (_("Imported %u patches, %u with masks, %u with a split\n"),
           report->n_patches, report->n_masks, report->n_with_split);
  if (report->odd->len == 0)
    return;
  g_print (g_dngettext (GETTEXT_PACKAGE, "%u patch is odd:\n", "%u patches are odd:\n", report->odd->len),
           report->odd->len);
  for (guint i = 0; i < report->odd->len && i < shown; i++)
    {
      const LodeImportOdd *odd = g_ptr_array_index (report->odd, i);
      g_print ("  %s: %s\n", odd->path, odd->reason);
    }
  if (report->odd->len > shown)
    g_print (_("  … and %u more (lode info lists them all)\n"), report->odd->len - shown);
}

gboolean
lode_cli_import_into (const char *project, const char *source, const LodeImportOptions *options,
                      gboolean quiet, GError **error)
{
  g_autoptr(LodeStore) store = NULL;
  LodeImportReport report;
  gboolean ok;

  if (g_file_test (project, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                   _("“%s” already exists; choose a new project file"), project);
      return FALSE;
    }
  store = lode_store_open (project, TRUE, error);
  if (store == NULL)
    return FALSE;

  lode_import_report_init (&report);
  if (lode_import_is_smallminesds (source))
    ok = lode_import_smallminesds (store, source, options, &report,
                                   quiet ? NULL : lode_cli_progress, NULL, NULL, error);
  else
    ok = lode_import_folder (store, source, options, &report,
                             quiet ? NULL : lode_cli_progress, NULL, NULL, error);
  lode_cli_progress_end ();
  g_clear_pointer (&store, lode_store_close);
  if (!ok)
    {
      /* The project was made by this command and holds nothing: remove it
       * rather than leave an empty file behind. */
      g_autofree char *wal = g_strconcat (project, "-wal", NULL);
      g_autofree char *shm = g_strconcat (project, "-shm", NULL);
      g_unlink (wal);
      g_unlink (shm);
      g_unlink (project);
    }
  else if (!quiet)
    lode_cli_print_import_report (&report);
  lode_import_report_clear (&report);
  return ok;
}

int
lode_cmd_import (int argc, char **argv)
{
  g_autofree char *masks = NULL;
  g_autofree char *cocoa_dir = NULL;
  g_autofree char *mask_regex = NULL;
  g_autofree char *mask_replace = NULL;
  int size = -1;
  int bands = -1;
  g_auto(GStrv) rest = NULL;
  g_autoptr(GError) error = NULL;
  const GOptionEntry entries[] = {
    { "masks", 0, 0, G_OPTION_ARG_STRING, &masks, N_("Mask set of a SmallMinesDS folder: binary (default) or cocoa"), N_("SET") },
    { "cocoa-dir", 0, 0, G_OPTION_ARG_FILENAME, &cocoa_dir, N_("Folder of the 3-class cocoa masks (default SOURCE/cocoa)"), N_("DIR") },
    { "mask-regex", 0, 0, G_OPTION_ARG_STRING, &mask_regex, N_("Generic folders: expression matched against an image’s file name"), N_("REGEX") },
    { "mask-replace", 0, 0, G_OPTION_ARG_STRING, &mask_replace, N_("Generic folders: the mask’s file name, with \\1… for groups"), N_("NAME") },
    { "size", 0, 0, G_OPTION_ARG_INT, &size, N_("Expected patch size; others are listed as odd (SmallMinesDS: 128, generic: any)"), N_("PIXELS") },
    { "bands", 0, 0, G_OPTION_ARG_INT, &bands, N_("Expected band count; others are listed as odd (SmallMinesDS: 13, generic: any)"), N_("N") },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &rest, NULL, N_("SOURCE PROJECT.lode") },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (_("SOURCE PROJECT.lode"));
  LodeImportOptions options;
  gboolean smallmines;

  g_option_context_set_summary (context,
    _("Make a new project from the patches in SOURCE: a folder in the SmallMinesDS\n"
      "layout (YEAR/IMAGE and YEAR/MASK, with the split CSVs when present) or a\n"
      "folder of GeoTIFFs. Odd patches are imported and listed."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!lode_cli_parse (context, &argc, &argv))
    return LODE_EXIT_USAGE;
  if (rest == NULL || g_strv_length (rest) != 2)
    {
      lode_cli_error ("import", _("expected a source folder and a new project file"));
      return LODE_EXIT_USAGE;
    }
  if (!g_str_has_suffix (rest[1], ".lode"))
    {
      lode_cli_error ("import", _("the project file must end in .lode: “%s”"), rest[1]);
      return LODE_EXIT_USAGE;
    }

  lode_import_options_init (&options);
  if (masks != NULL && g_str_equal (masks, "cocoa"))
    options.masks = LODE_IMPORT_MASKS_COCOA;
  else if (masks != NULL && !g_str_equal (masks, "binary"))
    {
      lode_cli_error ("import", _("--masks must be binary or cocoa, not “%s”"), masks);
      return LODE_EXIT_USAGE;
    }
  smallmines = lode_import_is_smallminesds (rest[0]);
  options.cocoa_dir = cocoa_dir;
  options.mask_regex = mask_regex;
  options.mask_replace = mask_replace;
  options.expected_size = size >= 0 ? size : (smallmines ? 128 : 0);
  options.expected_bands = bands >= 0 ? bands : (smallmines ? 13 : 0);

  if (!lode_cli_import_into (rest[1], rest[0], &options, FALSE, &error))
    {
      lode_cli_error ("import", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }
  return LODE_EXIT_OK;
}
