#define G_LOG_DOMAIN "lode-annotate"

#include "config.h"

#include "lode-background.h"

static GMutex lock;
static GCond  idle;
static guint  running;

void
lode_background_enter (void)
{
  g_mutex_lock (&lock);
  running++;
  g_mutex_unlock (&lock);
}

void
lode_background_leave (void)
{
  g_mutex_lock (&lock);
  g_assert (running > 0);
  if (--running == 0)
    g_cond_broadcast (&idle);
  g_mutex_unlock (&lock);
}

guint
lode_background_running (void)
{
  guint n;

  g_mutex_lock (&lock);
  n = running;
  g_mutex_unlock (&lock);
  return n;
}

gboolean
lode_background_drain (guint timeout_ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) timeout_ms * G_TIME_SPAN_MILLISECOND;
  gboolean drained;

  g_mutex_lock (&lock);
  while (running > 0)
    if (!g_cond_wait_until (&idle, &lock, end))
      break;
  drained = running == 0;
  g_mutex_unlock (&lock);
  return drained;
}

#define FUNC_KEY "lode-background-func"

static void
counted_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  GTaskThreadFunc func = (GTaskThreadFunc) g_object_get_data (G_OBJECT (task), FUNC_KEY);

  func (task, source, task_data, cancellable);
  lode_background_leave ();
}

void
lode_background_run_in_thread (GTask *task, GTaskThreadFunc func)
{
  g_return_if_fail (G_IS_TASK (task));
  g_return_if_fail (func != NULL);
  /* Counted from now, not from when a pool thread picks it up: a drain that
   * starts in between must wait for it too. */
  lode_background_enter ();
  g_object_set_data (G_OBJECT (task), FUNC_KEY, (gpointer) func);
  g_task_run_in_thread (task, counted_thread);
}
