/* lode prelabel: a model version's masks as new revisions of a project's
 * patches (through lode-prelabel). */
#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>
#include <inttypes.h>

#include "lode-cli-progress.h"
#include "lode-commands.h"
#include "lode-prelabel.h"

int
lode_cmd_prelabel (int argc, char **argv)
{
  g_autofree char *checkpoint = NULL;
  gint64 version_id = 0;
  gboolean only_unlabelled = FALSE, only_unreviewed = FALSE, include_edited = FALSE, quiet = FALSE;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) rest = NULL;
  const GOptionEntry entries[] = {
    { "model-version", 'm', 0, G_OPTION_ARG_INT64, &version_id, N_("The project's model version to run (see lode info)"), N_("ID") },
    { "checkpoint", 'c', 0, G_OPTION_ARG_FILENAME, &checkpoint, N_("A checkpoint written by lode train, added to the project as a model version"), N_("FILE") },
    { "only-unlabelled", 0, 0, G_OPTION_ARG_NONE, &only_unlabelled, N_("Only the patches in the unlabelled state"), NULL },
    { "only-unreviewed", 0, 0, G_OPTION_ARG_NONE, &only_unreviewed, N_("Only the patches neither accepted nor rejected"), NULL },
    { "include-edited", 0, 0, G_OPTION_ARG_NONE, &include_edited, N_("Also the patches already edited by hand (a new revision; the old ones stay)"), NULL },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, N_("No progress line"), NULL },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &rest, NULL, N_("PROJECT.lode") },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (_("PROJECT.lode"));
  g_autoptr(LodeStore) store = NULL;
  LodePrelabelReport report;
  LodePrelabelScope scope = LODE_PRELABEL_ALL;
  gboolean ok;

  g_option_context_set_summary (context,
    _("Run a trained U-Net over the project's patches and store each mask as a\n"
      "new revision from that model version; earlier revisions are kept. Patches\n"
      "already edited by hand are passed over unless --include-edited is given."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!lode_cli_parse (context, &argc, &argv))
    return LODE_EXIT_USAGE;
  if (rest == NULL || g_strv_length (rest) != 1)
    {
      lode_cli_error ("prelabel", _("expected one project file"));
      return LODE_EXIT_USAGE;
    }
  if ((version_id > 0) == (checkpoint != NULL) || version_id < 0)
    {
      lode_cli_error ("prelabel", _("either --model-version ID or --checkpoint FILE is needed"));
      return LODE_EXIT_USAGE;
    }
  if (only_unlabelled && only_unreviewed)
    {
      lode_cli_error ("prelabel", _("--only-unlabelled and --only-unreviewed cannot be combined"));
      return LODE_EXIT_USAGE;
    }
  if (only_unlabelled)
    scope = LODE_PRELABEL_UNLABELLED;
  else if (only_unreviewed)
    scope = LODE_PRELABEL_UNREVIEWED;

  /* Says clearly when the project is missing or not one. */
  store = lode_cli_open_project ("prelabel", rest[0]);
  if (store == NULL)
    return LODE_EXIT_FAILURE;
  g_clear_pointer (&store, lode_store_close);

  ok = lode_prelabel_run (rest[0], version_id, checkpoint, scope, include_edited,
                          quiet ? NULL : lode_cli_progress, NULL, &report, NULL, &error);
  lode_cli_progress_end ();
  if (!ok)
    {
      lode_cli_error ("prelabel", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }
  g_print (_("Pre-labelled %u of %u patches; %u edited by hand and %u outside the selection were "
             "passed over; %u failed\n"),
           report.labelled, report.total, report.edited, report.skipped, report.failed);
  return report.failed > 0 ? LODE_EXIT_FAILURE : LODE_EXIT_OK;
}
