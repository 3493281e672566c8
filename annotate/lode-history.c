#define G_LOG_DOMAIN "lode-annotate"

#include "config.h"

#include "lode-history.h"

struct _LodeHistory
{
  GQueue undo;  /* oldest at the head, newest at the tail */
  GQueue redo;  /* next to redo at the tail */
  gsize  bytes;
  gsize  max_bytes;
};

LodeHistory *
lode_history_new (gsize max_bytes)
{
  LodeHistory *h = g_new0 (LodeHistory, 1);

  g_queue_init (&h->undo);
  g_queue_init (&h->redo);
  h->max_bytes = max_bytes;
  return h;
}

static void
drop_all (LodeHistory *h, GQueue *q)
{
  LodeMaskDelta *d;

  while ((d = g_queue_pop_head (q)) != NULL)
    {
      h->bytes -= lode_mask_delta_bytes (d);
      lode_mask_delta_free (d);
    }
}

void
lode_history_free (LodeHistory *h)
{
  if (h == NULL)
    return;
  drop_all (h, &h->undo);
  drop_all (h, &h->redo);
  g_free (h);
}

void
lode_history_clear (LodeHistory *h)
{
  g_return_if_fail (h != NULL);

  drop_all (h, &h->undo);
  drop_all (h, &h->redo);
}

void
lode_history_push (LodeHistory *h, LodeMaskDelta *d)
{
  g_return_if_fail (h != NULL);

  if (d == NULL)
    return;
  drop_all (h, &h->redo);
  g_queue_push_tail (&h->undo, d);
  h->bytes += lode_mask_delta_bytes (d);
  while (h->bytes > h->max_bytes && !g_queue_is_empty (&h->undo))
    {
      LodeMaskDelta *oldest = g_queue_pop_head (&h->undo);

      h->bytes -= lode_mask_delta_bytes (oldest);
      lode_mask_delta_free (oldest);
    }
}

gboolean
lode_history_can_undo (LodeHistory *h)
{
  g_return_val_if_fail (h != NULL, FALSE);

  return !g_queue_is_empty (&h->undo);
}

gboolean
lode_history_can_redo (LodeHistory *h)
{
  g_return_val_if_fail (h != NULL, FALSE);

  return !g_queue_is_empty (&h->redo);
}

static const LodeMaskDelta *
move (GQueue *from, GQueue *to, LodeMask *m, gboolean forward)
{
  LodeMaskDelta *d = g_queue_pop_tail (from);

  if (d == NULL)
    return NULL;
  lode_mask_delta_apply (d, m, forward);
  g_queue_push_tail (to, d);
  return d;
}

const LodeMaskDelta *
lode_history_undo (LodeHistory *h, LodeMask *m)
{
  g_return_val_if_fail (h != NULL && m != NULL, NULL);

  return move (&h->undo, &h->redo, m, FALSE);
}

const LodeMaskDelta *
lode_history_redo (LodeHistory *h, LodeMask *m)
{
  g_return_val_if_fail (h != NULL && m != NULL, NULL);

  return move (&h->redo, &h->undo, m, TRUE);
}

guint
lode_history_n_undo (LodeHistory *h)
{
  g_return_val_if_fail (h != NULL, 0);

  return h->undo.length;
}

guint
lode_history_n_redo (LodeHistory *h)
{
  g_return_val_if_fail (h != NULL, 0);

  return h->redo.length;
}

gsize
lode_history_bytes (LodeHistory *h)
{
  g_return_val_if_fail (h != NULL, 0);

  return h->bytes;
}

gsize
lode_history_max_bytes (LodeHistory *h)
{
  g_return_val_if_fail (h != NULL, 0);

  return h->max_bytes;
}
