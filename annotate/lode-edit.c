#define G_LOG_DOMAIN "lode-annotate"

#include "config.h"

#include <glib/gi18n.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lode-edit.h"

#define DELTA_MAGIC "LDLT"

/* A pixel rectangle, x1 and y1 exclusive. */
typedef struct
{
  int x0, y0, x1, y1;
} Box;

#define BOX_NONE { G_MAXINT, G_MAXINT, G_MININT, G_MININT }

LodeMaskDelta *
lode_mask_delta_new (int x, int y, int width, int height)
{
  LodeMaskDelta *d;

  g_return_val_if_fail (x >= 0 && y >= 0 && width > 0 && height > 0, NULL);

  d = g_new (LodeMaskDelta, 1);
  d->x = x;
  d->y = y;
  d->width = width;
  d->height = height;
  d->before = g_malloc ((gsize) width * height);
  d->after = g_malloc ((gsize) width * height);
  return d;
}

void
lode_mask_delta_free (LodeMaskDelta *d)
{
  if (d == NULL)
    return;
  g_free (d->before);
  g_free (d->after);
  g_free (d);
}

gsize
lode_mask_delta_bytes (const LodeMaskDelta *d)
{
  g_return_val_if_fail (d != NULL, 0);

  return sizeof *d + 2 * (gsize) d->width * d->height;
}

static void
copy_box_out (const LodeMask *m, int x, int y, int width, int height, guint8 *dest)
{
  for (int r = 0; r < height; r++)
    memcpy (dest + (gsize) r * width, m->data + (gsize) (y + r) * m->width + x, width);
}

void
lode_mask_delta_apply (const LodeMaskDelta *d, LodeMask *m, gboolean forward)
{
  const guint8 *src;

  g_return_if_fail (d != NULL && m != NULL);
  g_return_if_fail (d->x >= 0 && d->y >= 0 && d->width > 0 && d->height > 0);
  g_return_if_fail (d->x + d->width <= m->width && d->y + d->height <= m->height);

  src = forward ? d->after : d->before;
  for (int r = 0; r < d->height; r++)
    memcpy (m->data + (gsize) (d->y + r) * m->width + d->x,
            src + (gsize) r * d->width, d->width);
}

GBytes *
lode_mask_delta_serialize (const LodeMaskDelta *d)
{
  guint32 fields[4];
  const guint8 *parts[2];
  gsize sizes[2];

  g_return_val_if_fail (d != NULL, NULL);

  fields[0] = d->x;
  fields[1] = d->y;
  fields[2] = d->width;
  fields[3] = d->height;
  parts[0] = d->before;
  parts[1] = d->after;
  sizes[0] = sizes[1] = (gsize) d->width * d->height;
  return lode_mask_blob_write (DELTA_MAGIC, fields, 4, parts, sizes, 2);
}

LodeMaskDelta *
lode_mask_delta_deserialize (GBytes *bytes, GError **error)
{
  guint32 f[4];
  LodeMaskDelta *d;
  guint8 *planes;
  gsize n;

  g_return_val_if_fail (bytes != NULL, NULL);

  if (!lode_mask_blob_read_header (bytes, DELTA_MAGIC, f, 4, error))
    return NULL;
  if (f[2] < 1 || f[3] < 1 || f[0] > LODE_MASK_MAX_SIDE || f[1] > LODE_MASK_MAX_SIDE
      || f[2] > LODE_MASK_MAX_SIDE - f[0] || f[3] > LODE_MASK_MAX_SIDE - f[1])
    {
      g_set_error (error, LODE_MASK_ERROR, LODE_MASK_ERROR_TOO_LARGE,
                   _("Stored edit covers %u × %u pixels at %u, %u, outside a mask of at most %d pixels a side"),
                   f[2], f[3], f[0], f[1], LODE_MASK_MAX_SIDE);
      return NULL;
    }
  n = (gsize) f[2] * f[3];
  planes = lode_mask_blob_inflate (bytes, 4, 2 * n, error);
  if (planes == NULL)
    return NULL;

  d = g_new (LodeMaskDelta, 1);
  d->x = f[0];
  d->y = f[1];
  d->width = f[2];
  d->height = f[3];
  d->after = g_memdup2 (planes + n, n);
  d->before = g_realloc (planes, n);
  return d;
}

/* lut[old] = the value a pixel of class old takes when painted with
 * class_id: itself where the pixel is nodata, locked or filtered out. */
static void
paint_lut (guint8 lut[256], const LodeClassTable *t, guint8 class_id, int only_class)
{
  for (int v = 0; v < 256; v++)
    lut[v] = (only_class < 0 || v == only_class) ? class_id : v;
  lut[LODE_MASK_NODATA] = LODE_MASK_NODATA;
  if (t != NULL)
    for (guint i = 0; i < lode_class_table_size (t); i++)
      {
        const LodeClass *c = lode_class_table_get (t, i);

        if (c->locked)
          lut[c->id] = c->id;
      }
}

static gboolean
box_empty (const Box *b)
{
  return b->x0 >= b->x1 || b->y0 >= b->y1;
}

static void
box_union (Box *b, const Box *o)
{
  if (box_empty (o))
    return;
  if (box_empty (b))
    {
      *b = *o;
      return;
    }
  b->x0 = MIN (b->x0, o->x0);
  b->y0 = MIN (b->y0, o->y0);
  b->x1 = MAX (b->x1, o->x1);
  b->y1 = MAX (b->y1, o->y1);
}

/* Grows b over the pixels x0..x1 - 1 of row y. */
static void
box_add_run (Box *b, int x0, int x1, int y)
{
  b->x0 = MIN (b->x0, x0);
  b->x1 = MAX (b->x1, x1);
  b->y0 = MIN (b->y0, y);
  b->y1 = MAX (b->y1, y + 1);
}

static LodeMaskDelta *
delta_for_box (const Box *b)
{
  return lode_mask_delta_new (b->x0, b->y0, b->x1 - b->x0, b->y1 - b->y0);
}

/* Pixels whose centre lies in [lo, hi] along one axis, clipped to [0, size). */
static void
centre_range (double lo, double hi, int size, int *first, int *end)
{
  double a = ceil (lo - 0.5), b = floor (hi - 0.5) + 1;

  *first = (int) CLAMP (a, 0, size);
  *end = (int) CLAMP (b, 0, size);
}

static gboolean
points_finite (const double *xy, int n_points)
{
  for (int i = 0; i < 2 * n_points; i++)
    if (!isfinite (xy[i]))
      return FALSE;
  return TRUE;
}

/* The delta of box from its snapshot before to the mask now, shrunk to the
 * changed pixels. */
static LodeMaskDelta *
delta_from_snapshot (const LodeMask *m, const Box *box, const guint8 *before)
{
  int bw = box->x1 - box->x0;
  Box changed = BOX_NONE;
  LodeMaskDelta *d;

  for (int y = box->y0; y < box->y1; y++)
    {
      const guint8 *now = m->data + (gsize) y * m->width + box->x0;
      const guint8 *was = before + (gsize) (y - box->y0) * bw;
      int first = -1, last = -1;

      for (int i = 0; i < bw; i++)
        if (now[i] != was[i])
          {
            if (first < 0)
              first = i;
            last = i;
          }
      if (first >= 0)
        box_add_run (&changed, box->x0 + first, box->x0 + last + 1, y);
    }
  if (box_empty (&changed))
    return NULL;

  d = delta_for_box (&changed);
  for (int r = 0; r < d->height; r++)
    memcpy (d->before + (gsize) r * d->width,
            before + (gsize) (d->y + r - box->y0) * bw + (d->x - box->x0), d->width);
  copy_box_out (m, d->x, d->y, d->width, d->height, d->after);
  return d;
}

static guint8 *
snapshot (const LodeMask *m, const Box *box)
{
  guint8 *copy = g_malloc ((gsize) (box->x1 - box->x0) * (box->y1 - box->y0));

  copy_box_out (m, box->x0, box->y0, box->x1 - box->x0, box->y1 - box->y0, copy);
  return copy;
}

/* Pixels within radius of segment a-b (a == b for a dot). */
static void
segment_box (const LodeMask *m, const double *a, const double *b, double radius, Box *box)
{
  centre_range (MIN (a[0], b[0]) - radius, MAX (a[0], b[0]) + radius, m->width,
                &box->x0, &box->x1);
  centre_range (MIN (a[1], b[1]) - radius, MAX (a[1], b[1]) + radius, m->height,
                &box->y0, &box->y1);
}

static void
paint_segment (LodeMask *m, const guint8 lut[256], const double *a, const double *b,
               double radius)
{
  double dx = b[0] - a[0], dy = b[1] - a[1];
  double len2 = dx * dx + dy * dy, r2 = radius * radius;
  Box box;

  segment_box (m, a, b, radius, &box);
  for (int y = box.y0; y < box.y1; y++)
    {
      guint8 *row = m->data + (gsize) y * m->width;
      double py = y + 0.5 - a[1];

      for (int x = box.x0; x < box.x1; x++)
        {
          double px = x + 0.5 - a[0], s = 0, ex, ey;

          if (len2 > 0)
            s = CLAMP ((px * dx + py * dy) / len2, 0.0, 1.0);
          ex = px - s * dx;
          ey = py - s * dy;
          if (ex * ex + ey * ey <= r2)
            row[x] = lut[row[x]];
        }
    }
}

static LodeMaskDelta *
stroke_with_lut (LodeMask *m, const guint8 lut[256], const double *xy, int n_points,
                 double radius)
{
  Box box = { 0, 0, 0, 0 };
  g_autofree guint8 *before = NULL;

  if (n_points < 1 || !(radius >= 0) || !isfinite (radius) || !points_finite (xy, n_points))
    return NULL;

  for (int i = 0; i < n_points; i++)
    {
      Box seg;

      segment_box (m, xy + 2 * i, xy + 2 * MIN (i + 1, n_points - 1), radius, &seg);
      box_union (&box, &seg);
    }
  if (box_empty (&box))
    return NULL;

  before = snapshot (m, &box);
  for (int i = 0; i < n_points; i++)
    paint_segment (m, lut, xy + 2 * i, xy + 2 * MIN (i + 1, n_points - 1), radius);
  return delta_from_snapshot (m, &box, before);
}

LodeMaskDelta *
lode_edit_stroke (LodeMask *m, const LodeClassTable *t, const double *xy, int n_points,
                  double radius, guint8 class_id)
{
  guint8 lut[256];

  g_return_val_if_fail (m != NULL && (xy != NULL || n_points == 0), NULL);
  g_return_val_if_fail (class_id != LODE_MASK_NODATA, NULL);

  paint_lut (lut, t, class_id, -1);
  return stroke_with_lut (m, lut, xy, n_points, radius);
}

LodeMaskDelta *
lode_edit_erase (LodeMask *m, const LodeClassTable *t, const double *xy, int n_points,
                 double radius, int only_class)
{
  guint8 lut[256];

  g_return_val_if_fail (m != NULL && (xy != NULL || n_points == 0), NULL);
  g_return_val_if_fail (only_class < 256, NULL);

  paint_lut (lut, t, 0, only_class);
  return stroke_with_lut (m, lut, xy, n_points, radius);
}

typedef struct
{
  int y, x0, x1;  /* x1 inclusive */
} Span;

typedef struct
{
  int x, y;
} Seed;

static void
push_runs (GArray *stack, const LodeMask *m, int y, int lo, int hi, guint8 target)
{
  const guint8 *row = m->data + (gsize) y * m->width;
  gboolean in_run = FALSE;

  for (int x = lo; x <= hi; x++)
    {
      if (row[x] == target && !in_run)
        {
          Seed s = { x, y };

          g_array_append_val (stack, s);
        }
      in_run = row[x] == target;
    }
}

LodeMaskDelta *
lode_edit_fill (LodeMask *m, const LodeClassTable *t, int x, int y, guint8 class_id,
                gboolean eight_connected)
{
  g_autoptr(GArray) stack = NULL;
  g_autoptr(GArray) spans = NULL;
  guint8 lut[256], target;
  int reach = eight_connected ? 1 : 0;
  Box box = BOX_NONE;
  LodeMaskDelta *d;

  g_return_val_if_fail (m != NULL, NULL);
  g_return_val_if_fail (class_id != LODE_MASK_NODATA, NULL);

  if (x < 0 || y < 0 || x >= m->width || y >= m->height)
    return NULL;
  paint_lut (lut, t, class_id, -1);
  target = m->data[(gsize) y * m->width + x];
  if (lut[target] == target)
    return NULL;

  stack = g_array_new (FALSE, FALSE, sizeof (Seed));
  spans = g_array_new (FALSE, FALSE, sizeof (Span));
  {
    Seed s = { x, y };
    g_array_append_val (stack, s);
  }
  while (stack->len > 0)
    {
      Seed s = g_array_index (stack, Seed, stack->len - 1);
      guint8 *row = m->data + (gsize) s.y * m->width;
      Span span = { s.y, s.x, s.x };

      g_array_set_size (stack, stack->len - 1);
      if (row[s.x] != target)
        continue;
      while (span.x0 > 0 && row[span.x0 - 1] == target)
        span.x0--;
      while (span.x1 < m->width - 1 && row[span.x1 + 1] == target)
        span.x1++;
      memset (row + span.x0, class_id, span.x1 - span.x0 + 1);
      g_array_append_val (spans, span);
      box_add_run (&box, span.x0, span.x1 + 1, span.y);

      for (int ny = s.y - 1; ny <= s.y + 1; ny += 2)
        if (ny >= 0 && ny < m->height)
          push_runs (stack, m, ny, MAX (span.x0 - reach, 0),
                     MIN (span.x1 + reach, m->width - 1), target);
    }

  /* Every filled pixel changed (target != class_id): the spans' box is tight. */
  d = delta_for_box (&box);
  copy_box_out (m, d->x, d->y, d->width, d->height, d->after);
  memcpy (d->before, d->after, (gsize) d->width * d->height);
  for (guint i = 0; i < spans->len; i++)
    {
      const Span *sp = &g_array_index (spans, Span, i);

      memset (d->before + (gsize) (sp->y - d->y) * d->width + (sp->x0 - d->x),
              target, sp->x1 - sp->x0 + 1);
    }
  return d;
}

static int
compare_doubles (const void *a, const void *b)
{
  double da = *(const double *) a, db = *(const double *) b;

  return (da > db) - (da < db);
}

LodeMaskDelta *
lode_edit_polygon (LodeMask *m, const LodeClassTable *t, const double *xy, int n_points,
                   guint8 class_id)
{
  g_autofree guint8 *before = NULL;
  g_autofree double *crossings = NULL;
  guint8 lut[256];
  double min_x = G_MAXDOUBLE, max_x = -G_MAXDOUBLE;
  double min_y = G_MAXDOUBLE, max_y = -G_MAXDOUBLE;
  Box box;

  g_return_val_if_fail (m != NULL && (xy != NULL || n_points == 0), NULL);
  g_return_val_if_fail (class_id != LODE_MASK_NODATA, NULL);

  if (n_points < 3 || !points_finite (xy, n_points))
    return NULL;
  for (int i = 0; i < n_points; i++)
    {
      min_x = MIN (min_x, xy[2 * i]);
      max_x = MAX (max_x, xy[2 * i]);
      min_y = MIN (min_y, xy[2 * i + 1]);
      max_y = MAX (max_y, xy[2 * i + 1]);
    }
  centre_range (min_x, max_x, m->width, &box.x0, &box.x1);
  centre_range (min_y, max_y, m->height, &box.y0, &box.y1);
  if (box_empty (&box))
    return NULL;

  paint_lut (lut, t, class_id, -1);
  before = snapshot (m, &box);
  crossings = g_new (double, n_points);
  for (int y = box.y0; y < box.y1; y++)
    {
      guint8 *row = m->data + (gsize) y * m->width;
      double cy = y + 0.5;
      int n = 0;

      for (int i = 0; i < n_points; i++)
        {
          const double *a = xy + 2 * i, *b = xy + 2 * ((i + 1) % n_points);

          /* Half-open in y, so a vertex on the row counts once. */
          if ((a[1] <= cy) != (b[1] <= cy))
            crossings[n++] = a[0] + (cy - a[1]) * (b[0] - a[0]) / (b[1] - a[1]);
        }
      qsort (crossings, n, sizeof (double), compare_doubles);
      for (int k = 0; k + 1 < n; k += 2)
        {
          /* Centres x + 0.5 in [crossings[k], crossings[k + 1]). */
          double a = ceil (crossings[k] - 0.5), b = ceil (crossings[k + 1] - 0.5);
          int x0 = (int) CLAMP (a, box.x0, box.x1), x1 = (int) CLAMP (b, box.x0, box.x1);

          for (int x = x0; x < x1; x++)
            row[x] = lut[row[x]];
        }
    }
  return delta_from_snapshot (m, &box, before);
}

LodeMaskDelta *
lode_edit_apply (LodeMask *m, const LodeClassTable *t, const guint8 *outside,
                 LodeApplyMode mode, guint8 class_id)
{
  guint8 paint[256], lut_in[256], lut_out[256];
  Box changed = BOX_NONE;
  LodeMaskDelta *d;

  g_return_val_if_fail (m != NULL && outside != NULL, NULL);
  g_return_val_if_fail (class_id != LODE_MASK_NODATA, NULL);

  /* New value of a pixel by its class, inside and outside the mask given. */
  for (int v = 0; v < 256; v++)
    lut_in[v] = lut_out[v] = v;
  switch (mode)
    {
    case LODE_APPLY_REPLACE:
      paint_lut (lut_in, t, class_id, -1);
      paint_lut (paint, t, 0, class_id);
      lut_out[class_id] = paint[class_id];
      break;
    case LODE_APPLY_ADD:
      paint_lut (lut_in, t, class_id, -1);
      break;
    case LODE_APPLY_SUBTRACT:
      paint_lut (paint, t, 0, class_id);
      lut_in[class_id] = paint[class_id];
      break;
    default:
      g_return_val_if_reached (NULL);
    }

  for (int y = 0; y < m->height; y++)
    {
      const guint8 *row = m->data + (gsize) y * m->width;
      const guint8 *in = outside + (gsize) y * m->width;

      for (int x = 0; x < m->width; x++)
        if ((in[x] ? lut_in : lut_out)[row[x]] != row[x])
          box_add_run (&changed, x, x + 1, y);
    }
  if (box_empty (&changed))
    return NULL;

  d = delta_for_box (&changed);
  copy_box_out (m, d->x, d->y, d->width, d->height, d->before);
  for (int r = 0; r < d->height; r++)
    {
      gsize off = (gsize) (d->y + r) * m->width + d->x;
      guint8 *row = m->data + off;
      const guint8 *in = outside + off;

      for (int x = 0; x < d->width; x++)
        row[x] = (in[x] ? lut_in : lut_out)[row[x]];
    }
  copy_box_out (m, d->x, d->y, d->width, d->height, d->after);
  return d;
}
