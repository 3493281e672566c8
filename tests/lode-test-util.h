/* lode-test-util.h: helpers shared by Lode's tests. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* A fresh temporary folder, removed with lode_test_rmtree(). */
char       *lode_test_mkdtemp    (void);
void        lode_test_rmtree     (const char *path);
/* ../shared beside the checkout (LODE_SHARED_DIR), or NULL after g_test_skip. */
const char *lode_test_shared_dir (void);
/* Runs the lode binary with argv (NULL-terminated, without "lode");
 * returns the exit status and fills the outputs when not NULL. */
int         lode_test_run_lode   (const char * const *args,
                                  char              **out,
                                  char              **err);

G_END_DECLS
