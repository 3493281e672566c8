#define G_LOG_DOMAIN "lode-ui"

#include "config.h"

#include "lode-progress-relay.h"

struct _LodeProgressRelay
{
  GWeakRef bar;
};

typedef struct
{
  LodeProgressRelay *relay;
  double             fraction;
  char              *what;
} Report;

static void
relay_clear (gpointer data)
{
  LodeProgressRelay *relay = data;
  g_weak_ref_clear (&relay->bar);
}

LodeProgressRelay *
lode_progress_relay_new (GtkProgressBar *bar)
{
  LodeProgressRelay *relay;

  g_return_val_if_fail (GTK_IS_PROGRESS_BAR (bar), NULL);
  relay = g_atomic_rc_box_new0 (LodeProgressRelay);
  g_weak_ref_init (&relay->bar, bar);
  return relay;
}

LodeProgressRelay *
lode_progress_relay_ref (LodeProgressRelay *relay)
{
  return g_atomic_rc_box_acquire (relay);
}

void
lode_progress_relay_unref (LodeProgressRelay *relay)
{
  g_atomic_rc_box_release_full (relay, relay_clear);
}

static gboolean
show_report (gpointer data)
{
  Report *r = data;
  g_autoptr(GtkProgressBar) bar = g_weak_ref_get (&r->relay->bar);

  if (bar != NULL)
    {
      gtk_progress_bar_set_fraction (bar, CLAMP (r->fraction, 0.0, 1.0));
      if (r->what != NULL)
        gtk_progress_bar_set_text (bar, r->what);
    }
  lode_progress_relay_unref (r->relay);
  g_free (r->what);
  g_free (r);
  return G_SOURCE_REMOVE;
}

void
lode_progress_relay_report (double fraction, const char *what, gpointer user_data)
{
  Report *r = g_new0 (Report, 1);

  r->relay = lode_progress_relay_ref (user_data);
  r->fraction = fraction;
  r->what = g_strdup (what);
  g_main_context_invoke (NULL, show_report, r);
}
