#define G_LOG_DOMAIN "lode-test"

#include "config.h"

#include <glib/gstdio.h>
#include <sys/wait.h>

#include "lode-test-util.h"

char *
lode_test_mkdtemp (void)
{
  g_autoptr(GError) error = NULL;
  char *dir = g_dir_make_tmp ("lode-test-XXXXXX", &error);

  g_assert_no_error (error);
  return dir;
}

void
lode_test_rmtree (const char *path)
{
  GDir *dir;
  const char *name;

  if (path == NULL)
    return;
  if (!g_file_test (path, G_FILE_TEST_IS_DIR) || g_file_test (path, G_FILE_TEST_IS_SYMLINK))
    {
      g_unlink (path);
      return;
    }
  dir = g_dir_open (path, 0, NULL);
  if (dir != NULL)
    {
      while ((name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);
          g_chmod (child, 0700);
          lode_test_rmtree (child);
        }
      g_dir_close (dir);
    }
  g_rmdir (path);
}

const char *
lode_test_shared_dir (void)
{
  const char *dir = g_getenv ("LODE_SHARED_DIR");

  if (dir == NULL || !g_file_test (dir, G_FILE_TEST_IS_DIR))
    {
      g_test_skip ("../shared is not beside the checkout");
      return NULL;
    }
  return dir;
}

int
lode_test_run_lode (const char * const *args, char **out, char **err)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  const char *binary = g_getenv ("LODE_BINARY");
  g_autofree char *ignored_out = NULL;
  int status = -1;

  g_assert_nonnull (binary);
  g_ptr_array_add (argv, (gpointer) binary);
  for (int i = 0; args[i] != NULL; i++)
    g_ptr_array_add (argv, (gpointer) args[i]);
  g_ptr_array_add (argv, NULL);

  /* The child's standard output is always captured: on the test's own
   * stdout it would break the TAP stream. */
  g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                out ? out : &ignored_out, err, &status, &error);
  g_assert_no_error (error);
  if (WIFEXITED (status))
    return WEXITSTATUS (status);
  return -1;
}
