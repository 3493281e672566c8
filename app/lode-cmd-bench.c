#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>
#include <stdio.h>

#include "lode-commands.h"

/* lode bench SUBJECT [OPTION…]: one timing run per subject. */
typedef struct
{
  const char *name;
  const char *summary;
  int (*run) (int argc, char **argv);
} LodeBenchSubject;

static const LodeBenchSubject subjects[] = {
  { "sam2", N_("SAM2.1: load, encode a patch, clicks, peak memory"), lode_bench_sam2 },
};

int
lode_cmd_bench (int argc, char **argv)
{
  if (argc >= 2)
    for (gsize i = 0; i < G_N_ELEMENTS (subjects); i++)
      if (g_str_equal (subjects[i].name, argv[1]))
        return subjects[i].run (argc - 1, argv + 1);

  if (argc >= 2 && !g_str_equal (argv[1], "--help") && !g_str_equal (argv[1], "-h"))
    lode_cli_error ("bench", _("unknown subject “%s”"), argv[1]);
  fprintf (stderr, "%s\n  lode bench %s [%s…]\n\n%s\n", _("Usage:"), _("SUBJECT"), _("OPTION"), _("Subjects:"));
  for (gsize i = 0; i < G_N_ELEMENTS (subjects); i++)
    fprintf (stderr, "  %-8s %s\n", subjects[i].name, _(subjects[i].summary));
  return argc >= 2 && (g_str_equal (argv[1], "--help") || g_str_equal (argv[1], "-h"))
         ? LODE_EXIT_OK : LODE_EXIT_USAGE;
}
