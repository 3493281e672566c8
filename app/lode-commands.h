/* lode-commands.h: the command-line subcommands, one function each.
 * Each takes the arguments after "lode" (argv[0] is the command name) and
 * returns the process exit status: 0 success, 1 failure, 2 bad usage. */
#pragma once

#include <glib.h>

#include "lode-raster.h"
#include "lode-store.h"

G_BEGIN_DECLS

enum {
  LODE_EXIT_OK = 0,
  LODE_EXIT_FAILURE = 1,
  LODE_EXIT_USAGE = 2,
};

int lode_cmd_demo   (int argc, char **argv);
int lode_cmd_import (int argc, char **argv);
int lode_cmd_export (int argc, char **argv);
int lode_cmd_stats  (int argc, char **argv);
int lode_cmd_info   (int argc, char **argv);
int lode_cmd_bench  (int argc, char **argv);
/* lode bench prithvi (app/lode-bench-prithvi.c) */
int lode_bench_prithvi (int argc, char **argv);
int lode_cmd_segment (int argc, char **argv);
int lode_cmd_encode  (int argc, char **argv);
/* lode bench sam2: argv[0] is "sam2". */
int lode_bench_sam2  (int argc, char **argv);
int lode_cmd_train   (int argc, char **argv);
/* lode train sam2: argv[0] is "sam2". */
int lode_cmd_train_sam2 (int argc, char **argv);
int lode_cmd_predict (int argc, char **argv);
int lode_cmd_prelabel (int argc, char **argv);
/* Writes mask (width x height of r) as a one-band Byte GeoTIFF on r's grid. */
gboolean lode_cli_write_mask (const char *path, const LodeRaster *r, const guint8 *mask,
                              GError **error);
/* lode bench train: argv[0] is "train". */
int lode_bench_train (int argc, char **argv);

/* Shared by the commands: parse options, printing a clear message on error.
 * Returns FALSE when the command should exit with LODE_EXIT_USAGE. */
gboolean lode_cli_parse (GOptionContext *context, int *argc, char ***argv);
/* Prints "lode NAME: message" on stderr. */
void     lode_cli_error (const char *command, const char *format, ...) G_GNUC_PRINTF (2, 3);
/* Opens an existing project, or prints why not (naming it) and returns NULL. */
LodeStore *lode_cli_open_project (const char *command, const char *path);

G_END_DECLS
