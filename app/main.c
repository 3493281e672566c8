#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "lode-application.h"
#include "lode-background.h"
#include "lode-cli.h"
#include "lode-commands.h"
#include "lode-resources.h"

/* Settings that the libraries read once, while the program loads, before
 * any code of ours runs; when the user has not chosen them, Lode chooses
 * and starts itself again with them (if that cannot be done it carries on
 * as it is).
 * - OPENBLAS_NUM_THREADS=1: the CPU kernels have one team of threads,
 *   OpenMP's, and OpenBLAS runs each product on the thread that calls it
 *   (lode_ops_cpu_init); this spares it starting a pool that would only
 *   sleep.
 * - GOMP_SPINCOUNT=1000: after a parallel loop OpenMP's threads spin this
 *   many times (some tens of microseconds) for the next one before they
 *   sleep. A SAM2 click is hundreds of short parallel steps. Measured with
 *   lode bench sam2 at 1024 on two cores, median click: on a quiet machine
 *   17.8-18.1 ms when the threads sleep at once (OMP_WAIT_POLICY=PASSIVE,
 *   each wake a system call), 12.8-13.3 ms with 1000 spins as with 100000;
 *   with another program keeping one core busy, 26-27 ms sleeping at once,
 *   28-29 ms with 1000 spins, but 111-115 ms with 100000 (a spinning thread
 *   holds the core the other team's thread waits for). */
#define SPIN_COUNT "1000"

static void
ensure_thread_settings (char **argv)
{
  gboolean again = FALSE;

  if (g_getenv ("OPENBLAS_NUM_THREADS") == NULL)
    {
      g_setenv ("OPENBLAS_NUM_THREADS", "1", TRUE);
      again = TRUE;
    }
  if (g_getenv ("OMP_WAIT_POLICY") == NULL && g_getenv ("GOMP_SPINCOUNT") == NULL)
    {
      g_setenv ("GOMP_SPINCOUNT", SPIN_COUNT, TRUE);
      again = TRUE;
    }
  if (again)
    execv ("/proc/self/exe", argv);
}

static void
init_i18n (void)
{
  const char *localedir = LOCALEDIR;

  setlocale (LC_ALL, "");
  /* Run from the build folder (meson devenv or the README's commands): use
   * the translations compiled there. */
  if (g_getenv ("LODE_UNINSTALLED") != NULL)
    localedir = LODE_SOURCE_LOCALEDIR;
  bindtextdomain (GETTEXT_PACKAGE, localedir);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);
}

int
main (int argc, char *argv[])
{
  g_autoptr(LodeApplication) app = NULL;
  int status;

  ensure_thread_settings (argv);
  init_i18n ();

  if (argc >= 2)
    {
      const char *first = argv[1];

      if (g_str_equal (first, "--help") || g_str_equal (first, "-h") || g_str_equal (first, "help"))
        {
          lode_cli_print_help (stdout);
          return LODE_EXIT_OK;
        }
      if (g_str_equal (first, "--version"))
        {
          g_print ("lode %s\n", PACKAGE_VERSION);
          return LODE_EXIT_OK;
        }
      if (lode_cli_is_command (first))
        return lode_cli_run (argc, argv);
      if (first[0] != '-')
        {
          /* Not a command: it must be a project to open. Say so now, on the
           * terminal, rather than with a window that opens on nothing. */
          if (!g_str_has_suffix (first, ".lode"))
            {
              g_printerr (_("lode: unknown command “%s”. Run “lode --help” for the list of commands.\n"), first);
              return LODE_EXIT_USAGE;
            }
          if (!g_file_test (first, G_FILE_TEST_IS_REGULAR))
            {
              g_printerr (_("lode: cannot open “%s”: no such project file\n"), first);
              return LODE_EXIT_FAILURE;
            }
        }
    }

  /* The resources live in a static library: naming them here links them in,
   * and their constructor registers the window templates and the CSS. */
  g_assert (lode_get_resource () != NULL);
  app = lode_application_new ();
  status = g_application_run (G_APPLICATION (app), argc, argv);
  g_clear_object (&app);
  /* Windows closed have cancelled their jobs; let the threads that were
   * still reading or writing stop before GDAL and the GPU libraries tear
   * themselves down at exit. One that will not stop is left to the kernel
   * rather than to those destructors. */
  if (!lode_background_drain (LODE_BACKGROUND_EXIT_WAIT_MS))
    {
      g_printerr (_("lode: a background job did not stop in time; exiting without waiting for it\n"));
      fflush (stdout);
      _exit (status);
    }
  return status;
}
