/* Undo and redo: every step back or forward gives exactly the mask the user
 * had, and the history stays within its memory budget. */
#include "config.h"

#include <string.h>

#include "lode-edit.h"
#include "lode-history.h"

#define SIZE 64

/* A random edit: mostly brush strokes, sometimes a fill, a polygon or an
 * outside mask, as an annotator would do them. */
static LodeMaskDelta *
random_edit (GRand *rand, LodeMask *m)
{
  double xy[8];
  guint8 class_id = g_rand_int_range (rand, 0, 3);
  int kind = g_rand_int_range (rand, 0, 10);

  for (int i = 0; i < 8; i++)
    xy[i] = g_rand_double_range (rand, -4, SIZE + 4);

  if (kind < 7)
    return lode_edit_stroke (m, NULL, xy, g_rand_int_range (rand, 1, 5),
                             g_rand_double_range (rand, 0.5, 6), class_id);
  if (kind == 7)
    return lode_edit_fill (m, NULL, g_rand_int_range (rand, 0, SIZE),
                           g_rand_int_range (rand, 0, SIZE), class_id, g_rand_boolean (rand));
  if (kind == 8)
    return lode_edit_polygon (m, NULL, xy, 4, class_id);

  {
    g_autofree guint8 *outside = g_malloc0 (SIZE * SIZE);
    int cx = g_rand_int_range (rand, 0, SIZE), cy = g_rand_int_range (rand, 0, SIZE);

    for (int y = 0; y < SIZE; y++)
      for (int x = 0; x < SIZE; x++)
        outside[y * SIZE + x] = (x - cx) * (x - cx) + (y - cy) * (y - cy) < 100;
    return lode_edit_apply (m, NULL, outside, g_rand_int_range (rand, 0, 3), class_id);
  }
}

/* Makes n edits that each change something, keeping the mask after each:
 * states[0] is the start, states[k] the mask after edit k. */
static GPtrArray *
edit_many (GRand *rand, LodeMask *m, LodeHistory *h, guint n)
{
  GPtrArray *states = g_ptr_array_new_with_free_func ((GDestroyNotify) lode_mask_free);

  g_ptr_array_add (states, lode_mask_copy (m));
  while (states->len <= n)
    {
      LodeMaskDelta *d = random_edit (rand, m);

      if (d == NULL)
        continue;
      lode_history_push (h, d);
      g_assert_cmpuint (lode_history_bytes (h), <=, lode_history_max_bytes (h));
      g_ptr_array_add (states, lode_mask_copy (m));
    }
  return states;
}

static LodeMask *
state (GPtrArray *states, guint k)
{
  return g_ptr_array_index (states, k);
}

static void
test_undo_redo_exact (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (42);
  g_autoptr(LodeMask) m = lode_mask_new (SIZE, SIZE);
  g_autoptr(LodeHistory) h = lode_history_new (64 * 1024 * 1024);
  g_autoptr(GPtrArray) states = NULL;
  const guint n = 200;
  guint at = n;

  g_assert_false (lode_history_can_undo (h));
  g_assert_null (lode_history_undo (h, m));
  states = edit_many (rand, m, h, n);
  g_assert_cmpuint (lode_history_n_undo (h), ==, n);
  g_assert_cmpuint (lode_history_n_redo (h), ==, 0);

  /* All the way back, then all the way forward. */
  for (guint k = n; k > 0; k--)
    {
      g_assert_nonnull (lode_history_undo (h, m));
      g_assert_true (lode_mask_equal (m, state (states, k - 1)));
    }
  g_assert_false (lode_history_can_undo (h));
  g_assert_null (lode_history_undo (h, m));
  g_assert_true (lode_mask_equal (m, state (states, 0)));
  g_assert_cmpuint (lode_history_n_redo (h), ==, n);
  for (guint k = 1; k <= n; k++)
    {
      g_assert_nonnull (lode_history_redo (h, m));
      g_assert_true (lode_mask_equal (m, state (states, k)));
    }
  g_assert_false (lode_history_can_redo (h));
  g_assert_null (lode_history_redo (h, m));

  /* A random walk of undos and redos. */
  for (int step = 0; step < 2000; step++)
    {
      if (g_rand_boolean (rand))
        {
          if (lode_history_undo (h, m) != NULL)
            at--;
        }
      else if (lode_history_redo (h, m) != NULL)
        at++;
      g_assert_cmpuint (lode_history_n_undo (h), ==, at);
      g_assert_cmpuint (lode_history_n_redo (h), ==, n - at);
      g_assert_true (lode_mask_equal (m, state (states, at)));
    }
}

static void
test_push_clears_redo (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (7);
  g_autoptr(LodeMask) m = lode_mask_new (SIZE, SIZE);
  g_autoptr(LodeHistory) h = lode_history_new (1024 * 1024);
  g_autoptr(GPtrArray) states = edit_many (rand, m, h, 10);
  g_autoptr(LodeMask) after_new = NULL;
  const LodeMaskDelta *undone;
  const double dot[] = { 3.5, 3.5 };
  gsize bytes_before;

  for (int k = 0; k < 4; k++)
    lode_history_undo (h, m);
  g_assert_true (lode_mask_equal (m, state (states, 6)));
  g_assert_cmpuint (lode_history_n_redo (h), ==, 4);

  /* An edit that changes nothing keeps the redo branch. */
  bytes_before = lode_history_bytes (h);
  lode_history_push (h, NULL);
  g_assert_cmpuint (lode_history_n_redo (h), ==, 4);
  g_assert_cmpuint (lode_history_bytes (h), ==, bytes_before);

  lode_history_push (h, lode_edit_stroke (m, NULL, dot, 1, 0.5,
                                          (m->data[3 * SIZE + 3] + 1) % 3));
  after_new = lode_mask_copy (m);
  g_assert_false (lode_history_can_redo (h));
  g_assert_cmpuint (lode_history_n_redo (h), ==, 0);
  g_assert_cmpuint (lode_history_n_undo (h), ==, 7);
  g_assert_cmpuint (lode_history_bytes (h), <, bytes_before);
  g_assert_null (lode_history_redo (h, m));
  g_assert_true (lode_mask_equal (m, after_new));

  undone = lode_history_undo (h, m);
  g_assert_nonnull (undone);
  g_assert_cmpint (undone->x, ==, 3);
  g_assert_cmpint (undone->width, ==, 1);
  for (guint k = 6; k > 0; k--)
    g_assert_nonnull (lode_history_undo (h, m));
  g_assert_true (lode_mask_equal (m, state (states, 0)));
}

static void
test_budget (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (2024);
  g_autoptr(LodeMask) m = lode_mask_new (SIZE, SIZE);
  const gsize budget = 40 * 1024;
  g_autoptr(LodeHistory) h = lode_history_new (budget);
  g_autoptr(GPtrArray) states = NULL;
  const guint n = 500;
  gsize sum = 0;
  guint kept;

  /* edit_many checks the budget after every push. */
  states = edit_many (rand, m, h, n);
  kept = lode_history_n_undo (h);
  g_assert_cmpuint (kept, >, 5);
  g_assert_cmpuint (kept, <, n);
  g_assert_cmpuint (lode_history_bytes (h), <=, budget);

  /* The newest entries are the ones kept, and undo through all of them is
   * exact; the counted bytes are those of the deltas held. */
  for (guint k = 0; k < kept; k++)
    {
      const LodeMaskDelta *d = lode_history_undo (h, m);

      g_assert_nonnull (d);
      sum += lode_mask_delta_bytes (d);
      g_assert_true (lode_mask_equal (m, state (states, n - k - 1)));
    }
  g_assert_false (lode_history_can_undo (h));
  g_assert_cmpuint (sum, ==, lode_history_bytes (h));
  g_assert_false (lode_mask_equal (m, state (states, 0)));
  for (guint k = 0; k < kept; k++)
    lode_history_redo (h, m);
  g_assert_true (lode_mask_equal (m, state (states, n)));

  /* An edit larger than the whole budget cannot be kept. */
  {
    g_autoptr(LodeHistory) small = lode_history_new (100);
    const double line[] = { 0, 0, SIZE, SIZE };

    memset (m->data, 0, SIZE * SIZE);
    lode_history_push (small, lode_edit_stroke (m, NULL, line, 2, 10, 1));
    g_assert_cmpuint (lode_history_bytes (small), <=, 100);
    g_assert_false (lode_history_can_undo (small));
  }

  lode_history_clear (h);
  g_assert_cmpuint (lode_history_bytes (h), ==, 0);
  g_assert_false (lode_history_can_redo (h));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/history/undo-redo-exact", test_undo_redo_exact);
  g_test_add_func ("/history/push-clears-redo", test_push_clears_redo);
  g_test_add_func ("/history/budget", test_budget);
  return g_test_run ();
}
