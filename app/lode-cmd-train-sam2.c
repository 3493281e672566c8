/* lode train sam2: fine-tunes SAM2's prompt encoder and mask decoder on the
 * corrected masks of a project, the published recipe (lode-sam2-train.h).
 *
 * Joins annotate/ (the project store: patches, their latest masks, class
 * regions), the SAM2 session (the image embeddings, computed once and kept
 * in the project's cache) and model/ (the fine-tuning job). */
#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>

#include "lode-cli-progress.h"
#include "lode-commands.h"
#include "lode-sam2-tune-project.h"

static volatile sig_atomic_t sam2_interrupted;

static void
on_sigint_sam2 (int sig)
{
  (void) sig;
  sam2_interrupted = 1;
}

typedef struct {
  GCancellable *cancellable;
  gboolean quiet;
} Sam2Run;

static void
on_tune_progress (const LodeSam2TuneProgress *p, gpointer user_data)
{
  Sam2Run *run = user_data;

  if (sam2_interrupted)
    g_cancellable_cancel (run->cancellable);
  if (!run->quiet)
    {
      g_printerr ("\r");
      g_printerr (_("step %d/%d, loss %.4f, %.0f s left"), p->step, p->steps, p->loss, p->seconds_left);
      g_printerr ("   ");
    }
}

static void
on_encode_progress (guint done, guint total, gpointer user_data)
{
  lode_cli_progress ((double) done / total, _("Encoding patches"), NULL);
}

int
lode_cmd_train_sam2 (int argc, char **argv)
{
  g_autofree char *checkpoint = NULL, *project = NULL, *out = NULL, *name = NULL;
  int size = 1024, steps = 0;
  gint64 seed = 1;
  double lr = 1e-5, wd = 4e-5;
  gboolean quiet = FALSE;
  g_autoptr(GError) error = NULL;
  const GOptionEntry entries[] = {
    { "checkpoint", 'c', 0, G_OPTION_ARG_FILENAME, &checkpoint, N_("SAM2.1 checkpoint to start from (never overwritten)"), N_("FILE") },
    { "project", 'p', 0, G_OPTION_ARG_FILENAME, &project, N_("Project whose masks to learn from"), N_("PROJECT.lode") },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out, N_("New checkpoint to write (safetensors)"), N_("FILE") },
    { "steps", 0, 0, G_OPTION_ARG_INT, &steps, N_("Images seen, one a step (default 10 times the training patches)"), N_("N") },
    { "size", 0, 0, G_OPTION_ARG_INT, &size, N_("Input size of the model: 1024 (its own) or 512 (faster)"), N_("PIXELS") },
    { "lr", 0, 0, G_OPTION_ARG_DOUBLE, &lr, N_("Learning rate (default 1e-5)"), N_("RATE") },
    { "weight-decay", 0, 0, G_OPTION_ARG_DOUBLE, &wd, N_("AdamW weight decay (default 4e-5)"), N_("W") },
    { "seed", 's', 0, G_OPTION_ARG_INT64, &seed, N_("Seed (default 1)"), N_("SEED") },
    { "name", 'n', 0, G_OPTION_ARG_STRING, &name, N_("Name of the model version added to the project (default: made up)"), N_("NAME") },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, N_("No progress line"), NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (NULL);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(LodeStore) store = NULL;
  g_autoptr(LodeSam2TuneProject) tp = NULL;
  LodeSam2TuneConfig tc;
  LodeSam2TuneProjectReport report = { 0 };
  LodeSam2TuneResult *res = &report.result;
  g_autoptr(LodeModelVersion) version = NULL;
  gint64 id;
  Sam2Run run = { 0 };
  guint n_train = 0, n_val = 0;
  gboolean ok;
  gint64 start;

  g_option_context_set_summary (context,
    _("Fine-tune SAM2's prompt encoder and mask decoder on the masks of a project,\n"
      "as the SmallMinesDS paper did: image encoder frozen, one random point inside\n"
      "each class region as the prompt, AdamW. Patches of the test split validate.\n"
      "The result is a new checkpoint, added to the project as a model version\n"
      "(with its validation IoU before and after, shown by lode info); the one\n"
      "given is left as it is."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!lode_cli_parse (context, &argc, &argv))
    return LODE_EXIT_USAGE;
  if (argc != 1)
    {
      lode_cli_error ("train sam2", _("unexpected argument “%s”"), argv[1]);
      return LODE_EXIT_USAGE;
    }
  if (checkpoint == NULL || project == NULL || out == NULL)
    {
      lode_cli_error ("train sam2", _("--checkpoint, --project and --out are required"));
      return LODE_EXIT_USAGE;
    }
  if (size != 1024 && size != 512)
    {
      lode_cli_error ("train sam2", _("--size must be 1024 or 512"));
      return LODE_EXIT_USAGE;
    }
  if (steps < 0 || !(lr > 0) || wd < 0)
    {
      lode_cli_error ("train sam2", _("--steps, --lr and --weight-decay must be positive"));
      return LODE_EXIT_USAGE;
    }

  {
    g_autoptr(GFile) a = g_file_new_for_path (checkpoint);
    g_autoptr(GFile) b = g_file_new_for_path (out);

    if (g_file_equal (a, b))
      {
        lode_cli_error ("train sam2",
                        _("The fine-tuned model would overwrite its source checkpoint “%s”; choose another file"),
                        checkpoint);
        return LODE_EXIT_USAGE;
      }
  }

  store = lode_cli_open_project ("train sam2", project);
  if (store == NULL)
    return LODE_EXIT_FAILURE;
  tp = lode_sam2_tune_project_new (store, checkpoint, size, &error);
  if (tp == NULL)
    goto fail;
  n_train = lode_sam2_tune_project_n_train (tp);
  n_val = lode_sam2_tune_project_n_val (tp);
  if (n_train == 0)
    {
      lode_cli_error ("train sam2", _("the project “%s” has no training patch with a class region"), project);
      return LODE_EXIT_FAILURE;
    }
  g_print (_("Fine-tuning SAM2 on %u patches, validating on %u\n"), n_train, n_val);

  /* every embedding once, into the project's cache */
  if (!lode_sam2_tune_project_encode (tp, quiet ? NULL : on_encode_progress, NULL, NULL, &error))
    goto fail;
  if (!quiet)
    lode_cli_progress_end ();

  lode_sam2_tune_config_init_defaults (&tc);
  tc.steps = steps > 0 ? steps : 10 * (int) n_train;
  tc.lr = lr;
  tc.weight_decay = wd;
  tc.seed = (guint32) seed;
  run.cancellable = cancellable;
  run.quiet = quiet;
  sam2_interrupted = 0;
  signal (SIGINT, on_sigint_sam2);
  start = g_get_monotonic_time ();
  ok = lode_sam2_tune_run (lode_sam2_tune_project_get_tuner (tp), &tc, lode_sam2_tune_project_get_source (tp),
                           on_tune_progress, &run, cancellable, res, &error);
  signal (SIGINT, SIG_DFL);
  if (!quiet)
    g_printerr ("\n");
  if (!ok && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    goto fail;
  if (!ok)
    {
      g_print (_("Interrupted after %d steps; saving what was learnt so far\n"), res->steps_done);
      g_clear_error (&error);
    }
  else
    {
      g_print (_("Fine-tuned for %d steps in %.1f s: training loss %.4f -> %.4f\n"),
               res->steps_done, (g_get_monotonic_time () - start) / 1e6, res->first_loss, res->last_loss);
      if (n_val > 0)
        g_print (_("Validation IoU at threshold 0.5: %.4f -> %.4f\n"),
                 res->val_iou_before, res->val_iou_after);
    }
  if (!lode_sam2_tuner_save (lode_sam2_tune_project_get_tuner (tp), checkpoint, out, &error))
    goto fail;
  g_print (_("Wrote %s\n"), out);
  report.train = n_train;
  report.validation = n_val;
  id = lode_sam2_tune_project_record (store, name, out, size, &tc, &report, &error);
  if (id == 0 || (version = lode_store_get_model_version (store, id, &error)) == NULL)
    goto fail;
  g_print (_("Added model version %" PRId64 " “%s” (%s) to “%s”\n"), id, version->name, version->path, project);
  return ok ? LODE_EXIT_OK : LODE_EXIT_FAILURE;

fail:
  lode_cli_error ("train sam2", "%s", error->message);
  return LODE_EXIT_FAILURE;
}
