/* Crash safety of the store: a child process commits edits in a loop and
 * reports each one after lode_store_commit_edit() returned; it is killed
 * (SIGKILL) at random moments, again and again on the same project. Then
 * the project must pass PRAGMA integrity_check and hold every reported edit
 * with the same delta and mask bytes. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lode-store.h"
#include "lode-test-util.h"

#define N_ROUNDS 36

typedef struct
{
  char *mask_sum;
  char *delta_sum;
} Reported;

static void
reported_free (Reported *r)
{
  g_free (r->mask_sum);
  g_free (r->delta_sum);
  g_free (r);
}

static GBytes *
random_bytes (GRand *rand, gsize n)
{
  guint8 *data = g_malloc (n);

  for (gsize i = 0; i < n; i++)
    data[i] = (guint8) g_rand_int (rand);
  return g_bytes_new_take (data, n);
}

static void
write_all (int fd, const char *text)
{
  gsize len = strlen (text), done = 0;

  while (done < len)
    {
      ssize_t n = write (fd, text + done, len - done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        _exit (4);
      done += (gsize) n;
    }
}

/* The child: never returns. */
static void
child_main (const char *path, gint64 patch_id, guint32 seed, int fd)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (seed);
  g_autoptr(GError) error = NULL;
  LodeStore *s = lode_store_open (path, FALSE, &error);

  if (s == NULL)
    {
      g_printerr ("child: %s\n", error->message);
      _exit (2);
    }
  write_all (fd, "ready\n");
  for (;;)
    {
      g_autoptr(GBytes) mask = random_bytes (rand, g_rand_int_range (rand, 1, 48 * 1024));
      g_autoptr(GBytes) delta = random_bytes (rand, g_rand_int_range (rand, 1, 2048));
      g_autofree char *mask_sum = NULL, *delta_sum = NULL, *line = NULL;
      gint64 id = lode_store_commit_edit (s, patch_id, delta, mask, LODE_REVISION_MANUAL,
                                          "crash", &error);

      if (id == 0)
        {
          g_printerr ("child: %s\n", error->message);
          _exit (3);
        }
      mask_sum = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, mask);
      delta_sum = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, delta);
      line = g_strdup_printf ("%" G_GINT64_FORMAT " %s %s\n", id, mask_sum, delta_sum);
      write_all (fd, line);
    }
}

/* Reads what is there (up to timeout_ms for the first byte) into buf;
 * FALSE at end of file. */
static gboolean
read_some (int fd, GString *buf, int timeout_ms)
{
  struct pollfd pfd = { .fd = fd, .events = POLLIN };
  char chunk[4096];
  ssize_t n;

  if (poll (&pfd, 1, timeout_ms) <= 0)
    return TRUE;
  n = read (fd, chunk, sizeof chunk);
  if (n <= 0)
    return FALSE;
  g_string_append_len (buf, chunk, n);
  return TRUE;
}

static guint
parse_lines (GString *buf, GHashTable *reported)
{
  g_auto(GStrv) lines = NULL;
  guint n = 0;
  char *end = strrchr (buf->str, '\n');

  if (end == NULL)
    return 0;
  /* A line cut short by the kill is not a report. */
  *end = '\0';
  lines = g_strsplit (buf->str, "\n", -1);
  for (int i = 0; lines[i] != NULL; i++)
    {
      g_auto(GStrv) f = g_strsplit (lines[i], " ", -1);
      Reported *r;
      gint64 id;

      if (strcmp (lines[i], "ready") == 0)
        continue;
      g_assert_cmpuint (g_strv_length (f), ==, 3);
      id = g_ascii_strtoll (f[0], NULL, 10);
      g_assert_cmpint (id, >, 0);
      g_assert_false (g_hash_table_contains (reported, &id));
      r = g_new0 (Reported, 1);
      r->mask_sum = g_strdup (f[1]);
      r->delta_sum = g_strdup (f[2]);
      g_hash_table_insert (reported, g_memdup2 (&id, sizeof id), r);
      n++;
    }
  return n;
}

static void
test_kill_during_edits (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *path = g_build_filename (dir, "crash.lode", NULL);
  g_autoptr(GHashTable) reported = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free,
                                                           (GDestroyNotify) reported_free);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) s = NULL;
  g_autoptr(GPtrArray) applied = NULL;
  LodePatch p = { .tile_id = "0001", .year = 2016, .image_path = "0001.tif" };
  GHashTableIter iter;
  gpointer key, value;
  gint64 patch_id, last_seq = 0;
  guint killed_mid_open = 0;

  s = lode_store_open (path, TRUE, &error);
  g_assert_no_error (error);
  patch_id = lode_store_add_patch (s, &p, &error);
  g_assert_no_error (error);
  g_clear_pointer (&s, lode_store_close);

  for (int round = 0; round < N_ROUNDS; round++)
    {
      g_autoptr(GString) buf = g_string_new (NULL);
      guint32 seed = g_test_rand_int ();
      int fds[2], status;
      gint64 deadline;
      pid_t pid;
      guint n;

      g_assert_cmpint (pipe (fds), ==, 0);
      pid = fork ();
      g_assert_cmpint (pid, >=, 0);
      if (pid == 0)
        {
          close (fds[0]);
          child_main (path, patch_id, seed, fds[1]);
        }
      close (fds[1]);

      /* Odd rounds let the child open the project before the clock runs
       * (1-30 ms); even rounds (0.1-30 ms from the fork) may kill it while
       * it opens and recovers the WAL. */
      if (round % 2 == 1)
        {
          deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
          while (strchr (buf->str, '\n') == NULL && g_get_monotonic_time () < deadline)
            if (!read_some (fds[0], buf, 100))
              break;
          g_assert_true (g_str_has_prefix (buf->str, "ready\n"));
        }
      if (round % 2 == 1)
        g_usleep (g_test_rand_int_range (1, 31) * 1000);
      else
        g_usleep (g_test_rand_int_range (100, 30001));
      g_assert_cmpint (kill (pid, SIGKILL), ==, 0);
      g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
      /* Killed, not failed on its own. */
      if (!(WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL))
        g_error ("round %d: the child ended by itself (status %d)", round, status);
      while (read_some (fds[0], buf, 1000))
        ;
      close (fds[0]);
      if (!g_str_has_prefix (buf->str, "ready\n"))
        killed_mid_open++;
      n = parse_lines (buf, reported);
      g_test_message ("round %d: %u edits reported", round, n);
    }
  g_test_message ("%u edits reported in %d rounds; %u kills before the project was open",
                  g_hash_table_size (reported), N_ROUNDS, killed_mid_open);
  g_assert_cmpuint (g_hash_table_size (reported), >, 0);

  s = lode_store_open (path, FALSE, &error);
  g_assert_no_error (error);
  g_assert_true (lode_store_integrity_check (s, &error));
  g_assert_no_error (error);

  g_hash_table_iter_init (&iter, reported);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      Reported *r = value;
      g_autoptr(LodeEdit) edit = lode_store_get_edit (s, *(gint64 *) key, &error);
      g_autoptr(GBytes) mask = NULL;
      g_autofree char *mask_sum = NULL, *delta_sum = NULL;

      g_assert_no_error (error);
      g_assert_cmpint (edit->patch_id, ==, patch_id);
      g_assert_false (edit->undone);
      delta_sum = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, edit->delta);
      g_assert_cmpstr (delta_sum, ==, r->delta_sum);
      mask = lode_store_get_mask (s, patch_id, edit->revision_id, NULL, &error);
      g_assert_no_error (error);
      mask_sum = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, mask);
      g_assert_cmpstr (mask_sum, ==, r->mask_sum);
    }

  /* The history is whole: one applied edit per step, in order. */
  g_assert_true (lode_store_load_edits (s, patch_id, &applied, NULL, &error));
  g_assert_cmpuint (applied->len, >=, g_hash_table_size (reported));
  for (guint i = 0; i < applied->len; i++)
    {
      LodeEdit *e = applied->pdata[i];
      g_assert_cmpint (e->seq, ==, last_seq + 1);
      last_seq = e->seq;
    }

  g_clear_pointer (&s, lode_store_close);
  lode_test_rmtree (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/store-crash/kill-during-edits", test_kill_during_edits);
  return g_test_run ();
}
