/* The count of background jobs that lets Lode wait for its worker threads
 * before it exits (GDAL and PROJ tear down at exit under a running read). */
#include "config.h"

#include "lode-background.h"

typedef struct
{
  GMutex   lock;
  GCond    cond;
  gboolean release;
  gboolean finished;
} Gate;

static void
gated_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  Gate *g = task_data;

  g_mutex_lock (&g->lock);
  while (!g->release)
    g_cond_wait (&g->cond, &g->lock);
  g_mutex_unlock (&g->lock);
  g_usleep (20 * G_TIME_SPAN_MILLISECOND);
  g->finished = TRUE;  /* read after the drain, which orders it */
  g_task_return_boolean (task, TRUE);
}

static gpointer
open_gate_later (gpointer data)
{
  Gate *g = data;

  g_usleep (50 * G_TIME_SPAN_MILLISECOND);
  g_mutex_lock (&g->lock);
  g->release = TRUE;
  g_cond_broadcast (&g->cond);
  g_mutex_unlock (&g->lock);
  return NULL;
}

static void
test_drain_waits (void)
{
  Gate g = { 0 };
  g_autoptr(GTask) task = g_task_new (NULL, NULL, NULL, NULL);
  GThread *opener;

  g_mutex_init (&g.lock);
  g_cond_init (&g.cond);
  g_assert_cmpuint (lode_background_running (), ==, 0);
  g_assert_true (lode_background_drain (0));
  g_task_set_task_data (task, &g, NULL);
  lode_background_run_in_thread (task, gated_thread);
  g_assert_cmpuint (lode_background_running (), ==, 1);

  /* Held at its gate: a short drain gives up and says so. */
  g_assert_false (lode_background_drain (30));
  g_assert_false (g.finished);

  /* Released: the drain returns only once the job has finished. */
  opener = g_thread_new ("opener", open_gate_later, &g);
  g_assert_true (lode_background_drain (10000));
  g_assert_true (g.finished);
  g_assert_cmpuint (lode_background_running (), ==, 0);
  g_thread_join (opener);
  g_mutex_clear (&g.lock);
  g_cond_clear (&g.cond);
}

static void
test_enter_leave (void)
{
  lode_background_enter ();
  lode_background_enter ();
  g_assert_cmpuint (lode_background_running (), ==, 2);
  g_assert_false (lode_background_drain (1));
  lode_background_leave ();
  lode_background_leave ();
  g_assert_true (lode_background_drain (1));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/background/drain-waits", test_drain_waits);
  g_test_add_func ("/background/enter-leave", test_enter_leave);
  return g_test_run ();
}
