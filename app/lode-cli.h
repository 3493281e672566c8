/* lode-cli.h: dispatching "lode COMMAND ..." to the subcommands. */
#pragma once

#include <stdio.h>
#include <glib.h>

G_BEGIN_DECLS

/* TRUE when name is a subcommand. */
gboolean lode_cli_is_command (const char *name);
/* Runs argv[1] as a subcommand; returns its exit status. */
int      lode_cli_run        (int argc, char **argv);
/* The top-level help: usage, the commands that work, the options. */
void     lode_cli_print_help (FILE *out);

G_END_DECLS
