/* Class tables, masks and edits: what an annotator paints is exactly what
 * is stored, exported and undone; damaged data is refused, never trusted. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lode-classes.h"
#include "lode-edit.h"
#include "lode-mask.h"

static const guint8 red[4] = { 255, 0, 0, 255 };

static guint8
px (const LodeMask *m, int x, int y)
{
  return m->data[(gsize) y * m->width + x];
}

static void
set_px (LodeMask *m, int x, int y, guint8 v)
{
  m->data[(gsize) y * m->width + x] = v;
}

static guint
count_class (const LodeMask *m, guint8 id)
{
  guint64 counts[256];

  lode_mask_count (m, counts);
  return (guint) counts[id];
}

/* The delta of an edit from was to m must be the tight box of the changed
 * pixels, and must take each mask to the other exactly. */
static void
check_delta (const LodeMask *was, const LodeMask *m, const LodeMaskDelta *d)
{
  int x0 = G_MAXINT, y0 = G_MAXINT, x1 = -1, y1 = -1;
  g_autoptr(LodeMask) back = lode_mask_copy (m);
  g_autoptr(LodeMask) fwd = lode_mask_copy (was);

  for (int y = 0; y < m->height; y++)
    for (int x = 0; x < m->width; x++)
      if (px (was, x, y) != px (m, x, y))
        {
          x0 = MIN (x0, x);
          y0 = MIN (y0, y);
          x1 = MAX (x1, x);
          y1 = MAX (y1, y);
        }
  if (x1 < 0)
    {
      g_assert_null (d);
      return;
    }
  g_assert_nonnull (d);
  g_assert_cmpint (d->x, ==, x0);
  g_assert_cmpint (d->y, ==, y0);
  g_assert_cmpint (d->width, ==, x1 - x0 + 1);
  g_assert_cmpint (d->height, ==, y1 - y0 + 1);

  lode_mask_delta_apply (d, back, FALSE);
  g_assert_true (lode_mask_equal (back, was));
  lode_mask_delta_apply (d, fwd, TRUE);
  g_assert_true (lode_mask_equal (fwd, m));
}

/* Class tables */

static void
test_classes_presets (void)
{
  g_autoptr(LodeClassTable) bin = lode_class_table_new_binary ();
  g_autoptr(LodeClassTable) cocoa = lode_class_table_new_cocoa ();
  const LodeClass *c;

  g_assert_cmpuint (lode_class_table_size (bin), ==, 2);
  c = lode_class_table_lookup (bin, 0);
  g_assert_cmpstr (c->name, ==, "Not mining");
  g_assert_cmpint (c->export_value, ==, 0);
  c = lode_class_table_lookup (bin, 1);
  g_assert_cmpstr (c->name, ==, "Mining");
  g_assert_cmpint (c->export_value, ==, 1);
  g_assert_null (lode_class_table_lookup (bin, 2));

  g_assert_cmpuint (lode_class_table_size (cocoa), ==, 3);
  for (guint i = 0; i < 3; i++)
    {
      c = lode_class_table_get (cocoa, i);
      g_assert_cmpint (c->id, ==, i);
      g_assert_cmpint (c->export_value, ==, i);
      g_assert_false (c->locked);
    }
  g_assert_cmpstr (lode_class_table_lookup (cocoa, 2)->name, ==, "Cocoa");
  g_assert_true (lode_class_table_lookup_export (cocoa, 2) == lode_class_table_lookup (cocoa, 2));
  g_assert_null (lode_class_table_lookup_export (cocoa, 3));
}

static void
test_classes_errors (void)
{
  g_autoptr(LodeClassTable) t = lode_class_table_new_binary ();
  g_autoptr(GError) error = NULL;

  g_assert_false (lode_class_table_add (t, 1, "Again", red, 7, &error));
  g_assert_error (error, LODE_CLASSES_ERROR, LODE_CLASSES_ERROR_DUPLICATE);
  g_assert_nonnull (strstr (error->message, "Mining"));
  g_clear_error (&error);

  g_assert_false (lode_class_table_add (t, 5, "Water", red, 1, &error));
  g_assert_error (error, LODE_CLASSES_ERROR, LODE_CLASSES_ERROR_DUPLICATE);
  g_clear_error (&error);

  g_assert_false (lode_class_table_add (t, LODE_MASK_NODATA, "Void", red, 9, &error));
  g_assert_error (error, LODE_CLASSES_ERROR, LODE_CLASSES_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (lode_class_table_add (t, 5, "Water", red, 256, &error));
  g_assert_error (error, LODE_CLASSES_ERROR, LODE_CLASSES_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (lode_class_table_add (t, 5, "", red, 5, &error));
  g_assert_error (error, LODE_CLASSES_ERROR, LODE_CLASSES_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_cmpuint (lode_class_table_size (t), ==, 2);

  g_assert_true (lode_class_table_add (t, 5, "Water", red, 5, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (lode_class_table_size (t), ==, 3);
  g_assert_cmpint (lode_class_table_get (t, 2)->id, ==, 5);

  g_assert_false (lode_class_table_set_export_value (t, 5, 0, &error));
  g_assert_error (error, LODE_CLASSES_ERROR, LODE_CLASSES_ERROR_DUPLICATE);
  g_clear_error (&error);
  g_assert_false (lode_class_table_set_export_value (t, 9, 9, &error));
  g_assert_error (error, LODE_CLASSES_ERROR, LODE_CLASSES_ERROR_NOT_FOUND);
  g_clear_error (&error);
  /* Keeping its own value is no conflict. */
  g_assert_true (lode_class_table_set_export_value (t, 5, 5, NULL));
  g_assert_true (lode_class_table_set_export_value (t, 5, 17, NULL));
  g_assert_true (lode_class_table_lookup_export (t, 17) == lode_class_table_lookup (t, 5));
  g_assert_null (lode_class_table_lookup_export (t, 5));

  g_assert_true (lode_class_table_set_name (t, 5, "Lake", NULL));
  g_assert_cmpstr (lode_class_table_lookup (t, 5)->name, ==, "Lake");
  g_assert_false (lode_class_table_set_name (t, 5, "", &error));
  g_assert_error (error, LODE_CLASSES_ERROR, LODE_CLASSES_ERROR_INVALID);
  g_clear_error (&error);

  g_assert_true (lode_class_table_remove (t, 5));
  g_assert_false (lode_class_table_remove (t, 5));
  g_assert_null (lode_class_table_lookup (t, 5));
}

static void
test_classes_json (void)
{
  g_autoptr(LodeClassTable) t = lode_class_table_new_cocoa ();
  g_autoptr(LodeClassTable) copy = NULL;
  g_autoptr(LodeClassTable) back = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *json = NULL;
  const guint8 teal[4] = { 0, 128, 128, 100 };

  /* The cocoa README's encoding: 1, 2, 3 (moved one by one). */
  for (int id = 2; id >= 0; id--)
    g_assert_true (lode_class_table_set_export_value (t, id, id + 1, NULL));
  g_assert_true (lode_class_table_set_name (t, 2, "Cacao “Theobroma” \\ é", NULL));
  lode_class_table_set_colour (t, 2, teal);
  lode_class_table_set_locked (t, 1, TRUE);
  g_assert_true (lode_class_table_is_locked (t, 1));

  copy = lode_class_table_copy (t);
  g_assert_true (lode_class_table_equal (t, copy));

  json = lode_class_table_to_json (t);
  back = lode_class_table_from_json (json, &error);
  g_assert_no_error (error);
  g_assert_true (lode_class_table_equal (t, back));
  g_assert_cmpint (lode_class_table_lookup (back, 0)->export_value, ==, 1);
  g_assert_true (lode_class_table_lookup (back, 1)->locked);
  g_assert_cmpmem (lode_class_table_lookup (back, 2)->rgba, 4, teal, 4);

  lode_class_table_set_locked (copy, 1, FALSE);
  g_assert_false (lode_class_table_equal (t, copy));
}

#define CLASS_OK "\"id\": 1, \"name\": \"Mining\", \"rgba\": [1, 2, 3, 4], \"export\": 1"

static void
test_classes_bad_json (void)
{
  static const char * const bad[] = {
    "",
    "not json at all",
    "[]",
    "{\"classes\": []}",
    "{\"version\": 2, \"classes\": []}",
    "{\"version\": \"1\", \"classes\": []}",
    "{\"version\": 1, \"classes\": {}}",
    "{\"version\": 1, \"classes\": [42]}",
    "{\"version\": 1, \"classes\": [{\"id\": \"1\", \"name\": \"M\", \"rgba\": [1, 2, 3, 4], \"export\": 1}]}",
    "{\"version\": 1, \"classes\": [{\"id\": 1.5, \"name\": \"M\", \"rgba\": [1, 2, 3, 4], \"export\": 1}]}",
    "{\"version\": 1, \"classes\": [{\"id\": 1, \"rgba\": [1, 2, 3, 4], \"export\": 1}]}",
    "{\"version\": 1, \"classes\": [{\"id\": 1, \"name\": 7, \"rgba\": [1, 2, 3, 4], \"export\": 1}]}",
    "{\"version\": 1, \"classes\": [{\"id\": 1, \"name\": \"\", \"rgba\": [1, 2, 3, 4], \"export\": 1}]}",
    "{\"version\": 1, \"classes\": [{\"id\": 1, \"name\": \"M\", \"rgba\": [1, 2, 3], \"export\": 1}]}",
    "{\"version\": 1, \"classes\": [{\"id\": 1, \"name\": \"M\", \"rgba\": [1, 2, 3, 256], \"export\": 1}]}",
    "{\"version\": 1, \"classes\": [{\"id\": 1, \"name\": \"M\", \"rgba\": [1, 2, 3, \"4\"], \"export\": 1}]}",
    "{\"version\": 1, \"classes\": [{\"id\": 1, \"name\": \"M\", \"rgba\": \"#ff0000\", \"export\": 1}]}",
    "{\"version\": 1, \"classes\": [{\"id\": 1, \"name\": \"M\", \"rgba\": [1, 2, 3, 4]}]}",
    "{\"version\": 1, \"classes\": [{\"id\": 1, \"name\": \"M\", \"rgba\": [1, 2, 3, 4], \"export\": -1}]}",
    "{\"version\": 1, \"classes\": [{\"id\": 255, \"name\": \"M\", \"rgba\": [1, 2, 3, 4], \"export\": 1}]}",
    "{\"version\": 1, \"classes\": [{\"id\": -1, \"name\": \"M\", \"rgba\": [1, 2, 3, 4], \"export\": 1}]}",
    "{\"version\": 1, \"classes\": [{\"id\": 99999999999, \"name\": \"M\", \"rgba\": [1, 2, 3, 4], \"export\": 1}]}",
    "{\"version\": 1, \"classes\": [{" CLASS_OK ", \"locked\": \"yes\"}]}",
    "{\"version\": 1, \"classes\": [{" CLASS_OK "}, {" CLASS_OK "}]}",
    "{\"version\": 1, \"classes\": [{" CLASS_OK "}",
  };
  g_autoptr(GString) huge_name = g_string_new ("{\"version\": 1, \"classes\": [{\"id\": 1, \"name\": \"");
  g_autoptr(GString) huge_text = g_string_new ("{\"version\": 1, \"classes\": [], \"pad\": \"");
  g_autoptr(GString) many = g_string_new ("{\"version\": 1, \"classes\": [");
  g_autofree char *good = g_strdup_printf ("{\"version\": 1, \"classes\": [{%s, \"locked\": true}]}", CLASS_OK);
  g_autoptr(LodeClassTable) ok = NULL;
  GPtrArray *all = g_ptr_array_new ();

  /* The good one parses, so the bad ones fail for their fault alone. */
  ok = lode_class_table_from_json (good, NULL);
  g_assert_nonnull (ok);
  g_assert_true (lode_class_table_is_locked (ok, 1));

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    g_ptr_array_add (all, (gpointer) bad[i]);
  for (int i = 0; i < 300; i++)
    g_string_append_c (huge_name, 'a');
  g_string_append (huge_name, "\", \"rgba\": [1, 2, 3, 4], \"export\": 1}]}");
  g_ptr_array_add (all, huge_name->str);
  for (int i = 0; i < 2 * 1024 * 1024; i++)
    g_string_append_c (huge_text, 'b');
  g_string_append (huge_text, "\"}");
  g_ptr_array_add (all, huge_text->str);
  for (int i = 0; i < 256; i++)
    g_string_append_printf (many, "%s{\"id\": %d, \"name\": \"c\", \"rgba\": [0, 0, 0, 0], \"export\": %d}",
                            i ? ", " : "", i, i);
  g_string_append (many, "]}");
  g_ptr_array_add (all, many->str);

  for (guint i = 0; i < all->len; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(LodeClassTable) t = lode_class_table_from_json (all->pdata[i], &error);

      if (t != NULL)
        g_test_message ("accepted: %.200s", (const char *) all->pdata[i]);
      g_assert_null (t);
      g_assert_nonnull (error);
      g_assert_true (error->domain == LODE_CLASSES_ERROR);
    }
  g_ptr_array_unref (all);
}

/* Masks */

static void
test_mask_unknown_values (void)
{
  g_autoptr(LodeClassTable) t = lode_class_table_new_binary ();
  g_autoptr(GError) error = NULL;
  double values[4 * 3] = { 0, 1, 1, 0,
                           7, 0, 7, 2.5,
                           7, 1, 0, 0 };
  LodeMask *m = lode_mask_from_values (values, 4, 3, t, FALSE, 0, &error);

  g_assert_null (m);
  g_assert_error (error, LODE_MASK_ERROR, LODE_MASK_ERROR_UNKNOWN_VALUE);
  g_assert_nonnull (strstr (error->message, "7 (3 pixels)"));
  g_assert_nonnull (strstr (error->message, "2.5 (1 pixel)"));
  g_clear_error (&error);

  /* Once the table knows 7 and the 2.5 is nodata, it imports. */
  g_assert_true (lode_class_table_add (t, 4, "Road", red, 7, NULL));
  m = lode_mask_from_values (values, 4, 3, t, TRUE, 2.5, &error);
  g_assert_no_error (error);
  g_assert_cmpint (px (m, 0, 1), ==, 4);
  g_assert_cmpint (px (m, 1, 0), ==, 1);
  g_assert_cmpint (px (m, 3, 1), ==, LODE_MASK_NODATA);
  g_assert_cmpuint (count_class (m, 4), ==, 3);
  lode_mask_free (m);
}

static void
test_mask_nodata (void)
{
  g_autoptr(LodeClassTable) t = lode_class_table_new_binary ();
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeMask) m = NULL;
  g_autoptr(LodeMask) n = NULL;
  double values[6] = { 0, 255, 1, 255, NAN, 1 };
  double nan_values[3] = { NAN, 1, 0 };
  guint8 out[6];

  /* Without a nodata value, 255 and NaN are unknown values. */
  g_assert_null (lode_mask_from_values (values, 3, 2, t, FALSE, 0, &error));
  g_assert_error (error, LODE_MASK_ERROR, LODE_MASK_ERROR_UNKNOWN_VALUE);
  g_assert_nonnull (strstr (error->message, "255 (2 pixels)"));
  g_assert_nonnull (strstr (error->message, "nan (1 pixel)"));
  g_clear_error (&error);

  n = lode_mask_from_values (nan_values, 3, 1, t, TRUE, NAN, &error);
  g_assert_no_error (error);
  g_assert_cmpint (n->data[0], ==, LODE_MASK_NODATA);
  g_assert_cmpint (n->data[1], ==, 1);

  values[4] = 0;
  m = lode_mask_from_values (values, 3, 2, t, TRUE, 255, &error);
  g_assert_no_error (error);
  g_assert_cmpint (px (m, 1, 0), ==, LODE_MASK_NODATA);
  g_assert_cmpint (px (m, 0, 1), ==, LODE_MASK_NODATA);
  g_assert_cmpuint (count_class (m, LODE_MASK_NODATA), ==, 2);
  g_assert_cmpuint (count_class (m, 1), ==, 2);

  lode_mask_to_export (m, t, out, 99);
  g_assert_cmpmem (out, 6, ((guint8[]) { 0, 99, 1, 99, 0, 1 }), 6);
}

static void
test_mask_export_round_trip (void)
{
  g_autoptr(LodeClassTable) t = lode_class_table_new_cocoa ();
  g_autoptr(LodeMask) m = NULL;
  g_autoptr(GError) error = NULL;
  enum { W = 37, H = 13 };
  double values[W * H];
  guint8 raw[W * H], out[W * H];
  g_autoptr(GRand) rand = g_rand_new_with_seed (3);

  for (int id = 2; id >= 0; id--)
    g_assert_true (lode_class_table_set_export_value (t, id, id + 1, NULL));
  for (int i = 0; i < W * H; i++)
    {
      static const guint8 file_values[] = { 1, 2, 3, 255 };

      raw[i] = file_values[g_rand_int_range (rand, 0, 4)];
      values[i] = raw[i];
    }
  m = lode_mask_from_values (values, W, H, t, TRUE, 255, &error);
  g_assert_no_error (error);
  /* README value 1 is background, id 0; 3 is cocoa, id 2. */
  for (int i = 0; i < W * H; i++)
    g_assert_cmpint (m->data[i], ==, raw[i] == 255 ? LODE_MASK_NODATA : raw[i] - 1);
  lode_mask_to_export (m, t, out, 255);
  g_assert_cmpmem (out, sizeof out, raw, sizeof raw);

  /* The same mask exports in the code's encoding once the table says so. */
  for (int id = 0; id <= 2; id++)
    g_assert_true (lode_class_table_set_export_value (t, id, id, NULL));
  lode_mask_to_export (m, t, out, 255);
  for (int i = 0; i < W * H; i++)
    g_assert_cmpint (out[i], ==, raw[i] == 255 ? 255 : raw[i] - 1);
}

static void
test_mask_render (void)
{
  g_autoptr(LodeClassTable) t = lode_class_table_new_cocoa ();
  g_autoptr(LodeMask) m = lode_mask_new (6, 5);
  guint8 rgba[6 * 5 * 4];
  const guint8 *mining = lode_class_table_lookup (t, 1)->rgba;
  const guint8 *cocoa = lode_class_table_lookup (t, 2)->rgba;
  static const guint8 clear[4] = { 0, 0, 0, 0 };

  /* A 3 x 3 block of mining at (1, 1), cocoa in the last column, one nodata. */
  for (int y = 1; y <= 3; y++)
    for (int x = 1; x <= 3; x++)
      set_px (m, x, y, 1);
  for (int y = 0; y < 5; y++)
    set_px (m, 5, y, 2);
  set_px (m, 0, 4, LODE_MASK_NODATA);

  lode_mask_render_rgba (m, t, FALSE, rgba);
  g_assert_cmpmem (rgba + 4 * (0 * 6 + 0), 4, clear, 4);
  g_assert_cmpmem (rgba + 4 * (4 * 6 + 0), 4, clear, 4);
  g_assert_cmpmem (rgba + 4 * (2 * 6 + 2), 4, mining, 4);
  g_assert_cmpmem (rgba + 4 * (1 * 6 + 1), 4, mining, 4);
  g_assert_cmpmem (rgba + 4 * (2 * 6 + 5), 4, cocoa, 4);

  lode_mask_render_rgba (m, t, TRUE, rgba);
  g_assert_cmpmem (rgba + 4 * (2 * 6 + 2), 4, clear, 4);   /* interior */
  g_assert_cmpmem (rgba + 4 * (1 * 6 + 1), 4, mining, 4);  /* corner */
  g_assert_cmpmem (rgba + 4 * (2 * 6 + 3), 4, mining, 4);  /* edge */
  g_assert_cmpmem (rgba + 4 * (0 * 6 + 0), 4, clear, 4);
  g_assert_cmpmem (rgba + 4 * (2 * 6 + 5), 4, cocoa, 4);   /* at the mask's edge */
}

static LodeMask *
random_mask (GRand *rand, int w, int h)
{
  LodeMask *m = lode_mask_new (w, h);

  /* Blocky like real labels, so it compresses; some nodata. */
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      set_px (m, x, y, ((x / 8 + y / 5) % 3 == 0) ? 1 : 0);
  for (int k = 0; k < 20; k++)
    set_px (m, g_rand_int_range (rand, 0, w), g_rand_int_range (rand, 0, h),
            g_rand_boolean (rand) ? 2 : LODE_MASK_NODATA);
  return m;
}

static GBytes *
bytes_changed (GBytes *b, gsize keep, gssize flip_at, const char *append)
{
  gsize len;
  const guint8 *p = g_bytes_get_data (b, &len);
  GByteArray *a = g_byte_array_new ();

  g_byte_array_append (a, p, MIN (keep, len));
  if (flip_at >= 0)
    a->data[flip_at] ^= 0x5a;
  if (append != NULL)
    g_byte_array_append (a, (const guint8 *) append, strlen (append));
  return g_byte_array_free_to_bytes (a);
}

static void
test_mask_serialize (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (11);
  static const int sizes[][2] = { { 128, 128 }, { 13, 36 }, { 1, 1 }, { 300, 7 } };

  for (guint s = 0; s < G_N_ELEMENTS (sizes); s++)
    {
      g_autoptr(LodeMask) m = random_mask (rand, sizes[s][0], sizes[s][1]);
      g_autoptr(GBytes) blob = lode_mask_serialize (m);
      g_autoptr(GError) error = NULL;
      g_autoptr(LodeMask) back = lode_mask_deserialize (blob, &error);

      g_assert_no_error (error);
      g_assert_true (lode_mask_equal (m, back));
      if (s == 0)
        g_assert_cmpuint (g_bytes_get_size (blob), <, 128 * 128 / 4);
    }
}

static void
assert_mask_refused (GBytes *b)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeMask) m = lode_mask_deserialize (b, &error);

  g_assert_null (m);
  g_assert_nonnull (error);
  g_assert_true (error->domain == LODE_MASK_ERROR);
}

/* A well-formed blob with these fields over a few bytes of pixels. */
static GBytes *
blob_claiming (const char *magic, guint32 w, guint32 h)
{
  static const guint8 pixels[16] = { 0, };
  const guint8 *parts[1] = { pixels };
  gsize sizes[1] = { sizeof pixels };
  guint32 fields[2] = { w, h };

  return lode_mask_blob_write (magic, fields, 2, parts, sizes, 1);
}

static void
test_mask_damaged (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (5);
  g_autoptr(LodeMask) m = random_mask (rand, 40, 30);
  g_autoptr(GBytes) blob = lode_mask_serialize (m);
  gsize len = g_bytes_get_size (blob);

  /* Every truncation and every flipped byte. */
  for (gsize keep = 0; keep < len; keep++)
    {
      g_autoptr(GBytes) b = bytes_changed (blob, keep, -1, NULL);
      assert_mask_refused (b);
    }
  for (gsize at = 0; at < len; at++)
    {
      g_autoptr(GBytes) b = bytes_changed (blob, len, at, NULL);
      assert_mask_refused (b);
    }
  {
    g_autoptr(GBytes) b = bytes_changed (blob, len, -1, "x");
    assert_mask_refused (b);
  }

  /* Absurd sizes: past the limit, zero, or far more than the data holds. */
  {
    g_autoptr(GBytes) b1 = blob_claiming ("LMSK", 100000, 5);
    g_autoptr(GBytes) b2 = blob_claiming ("LMSK", 0, 5);
    g_autoptr(GBytes) b3 = blob_claiming ("LMSK", 16384, 16384);
    g_autoptr(GBytes) b4 = blob_claiming ("LMSK", 4, 4);
    g_autoptr(GBytes) b5 = blob_claiming ("LDLT", 4, 4);
    g_autoptr(GBytes) b6 = blob_claiming ("LMSK", 4, 5);
    g_autoptr(GError) error = NULL;
    g_autoptr(LodeMask) none = lode_mask_deserialize (b1, &error);
    g_autoptr(LodeMask) fits = lode_mask_deserialize (b4, NULL);

    g_assert_error (error, LODE_MASK_ERROR, LODE_MASK_ERROR_TOO_LARGE);
    g_clear_error (&error);
    g_assert_null (lode_mask_deserialize (b2, &error));
    g_assert_error (error, LODE_MASK_ERROR, LODE_MASK_ERROR_TOO_LARGE);
    g_clear_error (&error);
    g_assert_null (lode_mask_deserialize (b3, &error));
    g_assert_error (error, LODE_MASK_ERROR, LODE_MASK_ERROR_CORRUPT);
    assert_mask_refused (b5);
    assert_mask_refused (b6);
    /* The same blob with the size its pixels hold is fine. */
    g_assert_nonnull (fits);
    g_assert_cmpint (fits->width * fits->height, ==, 16);
  }
}

/* Edits */

static double
dist_to_segment (double x, double y, const double *a, const double *b)
{
  double dx = b[0] - a[0], dy = b[1] - a[1];
  double len2 = dx * dx + dy * dy;
  double s = len2 > 0 ? ((x - a[0]) * dx + (y - a[1]) * dy) / len2 : 0;

  s = s < 0 ? 0 : s > 1 ? 1 : s;
  return hypot (x - a[0] - s * dx, y - a[1] - s * dy);
}

static void
test_edit_stroke (void)
{
  g_autoptr(LodeMask) m = lode_mask_new (64, 64);
  g_autoptr(LodeMask) was = lode_mask_copy (m);
  g_autoptr(LodeMaskDelta) d = NULL;
  const double line[] = { 10.5, 10.5, 40.5, 20.5, 40.5, 50.5 };

  d = lode_edit_stroke (m, NULL, line, 3, 3.0, 1);
  check_delta (was, m, d);

  /* Centres at distance exactly 3 are in, just past it out. */
  g_assert_cmpint (px (m, 10, 10), ==, 1);
  g_assert_cmpint (px (m, 10, 13), ==, 1);
  g_assert_cmpint (px (m, 10, 14), ==, 0);
  g_assert_cmpint (px (m, 7, 10), ==, 1);
  g_assert_cmpint (px (m, 6, 10), ==, 0);
  g_assert_cmpint (px (m, 40, 53), ==, 1);
  g_assert_cmpint (px (m, 40, 54), ==, 0);
  g_assert_cmpint (px (m, 43, 35), ==, 1);
  g_assert_cmpint (px (m, 44, 35), ==, 0);
  g_assert_cmpint (px (m, 37, 35), ==, 1);
  g_assert_cmpint (px (m, 36, 35), ==, 0);
  g_assert_cmpint (px (m, 25, 15), ==, 1);
  g_assert_cmpint (px (m, 25, 30), ==, 0);
  /* And everywhere: painted exactly within the radius of the polyline. */
  for (int y = 0; y < 64; y++)
    for (int x = 0; x < 64; x++)
      {
        double dist = MIN (dist_to_segment (x + 0.5, y + 0.5, line, line + 2),
                           dist_to_segment (x + 0.5, y + 0.5, line + 2, line + 4));

        g_assert_cmpint (px (m, x, y), ==, dist <= 3.0 ? 1 : 0);
      }
  g_assert_cmpint (d->x, ==, 7);
  g_assert_cmpint (d->y, ==, 7);
  g_assert_cmpint (d->width, ==, 43 - 7 + 1);
  g_assert_cmpint (d->height, ==, 53 - 7 + 1);

  /* Painting the same again changes nothing. */
  g_assert_null (lode_edit_stroke (m, NULL, line, 3, 3.0, 1));
  /* A single point is a disc; off the mask nothing happens. */
  {
    const double dot[] = { 62.5, 5.5 }, away[] = { -50, -50, -20, -60 };
    g_autoptr(LodeMask) before = lode_mask_copy (m);
    g_autoptr(LodeMaskDelta) dd = lode_edit_stroke (m, NULL, dot, 1, 2.0, 2);

    check_delta (before, m, dd);
    g_assert_cmpuint (count_class (m, 2), ==, 12);  /* 13 less one past the edge */
    g_assert_cmpint (dd->width, ==, 4);  /* columns 60..63 */
    g_assert_cmpint (dd->height, ==, 5);
    g_assert_null (lode_edit_stroke (m, NULL, away, 2, 5.0, 2));
  }
}

static void
test_edit_erase (void)
{
  g_autoptr(LodeMask) m = lode_mask_new (32, 32);
  const double across[] = { 0.5, 16.5, 31.5, 16.5 };
  const double down[] = { 16.5, 0.5, 16.5, 31.5 };
  const double dot[] = { 16.5, 16.5 };
  LodeMaskDelta *d;

  lode_mask_delta_free (lode_edit_stroke (m, NULL, across, 2, 2.0, 1));
  lode_mask_delta_free (lode_edit_stroke (m, NULL, down, 2, 2.0, 2));
  g_assert_cmpint (px (m, 16, 16), ==, 2);
  g_assert_cmpint (px (m, 4, 16), ==, 1);

  /* Erasing within class 1 leaves class 2. */
  {
    const double all[] = { 0.5, 16.5, 31.5, 16.5 };
    g_autoptr(LodeMask) was = lode_mask_copy (m);

    d = lode_edit_erase (m, NULL, all, 2, 3.0, 1);
    check_delta (was, m, d);
    lode_mask_delta_free (d);
    g_assert_cmpuint (count_class (m, 1), ==, 0);
    g_assert_cmpint (px (m, 16, 16), ==, 2);
    g_assert_cmpint (px (m, 16, 5), ==, 2);
  }
  /* An eraser painting background removes whatever is there. */
  {
    g_autoptr(LodeMask) was = lode_mask_copy (m);

    d = lode_edit_stroke (m, NULL, dot, 1, 1.0, 0);
    check_delta (was, m, d);
    lode_mask_delta_free (d);
    g_assert_cmpint (px (m, 16, 16), ==, 0);
    g_assert_cmpint (px (m, 16, 14), ==, 2);
    d = lode_edit_erase (m, NULL, down, 2, 3.0, -1);
    lode_mask_delta_free (d);
    g_assert_cmpuint (count_class (m, 2), ==, 0);
  }
}

static void
test_edit_locked_nodata (void)
{
  g_autoptr(LodeClassTable) t = lode_class_table_new_cocoa ();
  g_autoptr(LodeMask) m = lode_mask_new (20, 20);
  g_autoptr(LodeMask) was = NULL;
  const double line[] = { 0.5, 10.5, 19.5, 10.5 };
  const double square[] = { 0, 0, 20, 0, 20, 20, 0, 20 };
  g_autofree guint8 *all = g_malloc (20 * 20);
  LodeMaskDelta *d;

  for (int x = 5; x < 10; x++)
    set_px (m, x, 10, 2);
  set_px (m, 12, 10, LODE_MASK_NODATA);
  set_px (m, 3, 3, LODE_MASK_NODATA);
  lode_class_table_set_locked (t, 2, TRUE);

  was = lode_mask_copy (m);
  d = lode_edit_stroke (m, t, line, 2, 1.0, 1);
  check_delta (was, m, d);
  lode_mask_delta_free (d);
  for (int x = 5; x < 10; x++)
    g_assert_cmpint (px (m, x, 10), ==, 2);
  g_assert_cmpint (px (m, 12, 10), ==, LODE_MASK_NODATA);
  g_assert_cmpint (px (m, 13, 10), ==, 1);
  g_assert_cmpint (px (m, 4, 11), ==, 1);

  /* Neither the eraser, a polygon, a fill nor an outside mask gets through. */
  lode_mask_delta_free (lode_edit_stroke (m, t, line, 2, 1.0, 0));
  g_assert_cmpint (px (m, 13, 10), ==, 0);
  lode_mask_delta_free (lode_edit_polygon (m, t, square, 4, 1));
  lode_mask_delta_free (lode_edit_fill (m, t, 0, 0, 0, TRUE));
  memset (all, 1, 20 * 20);
  lode_mask_delta_free (lode_edit_apply (m, t, all, LODE_APPLY_ADD, 1));
  for (int x = 5; x < 10; x++)
    g_assert_cmpint (px (m, x, 10), ==, 2);
  g_assert_cmpint (px (m, 12, 10), ==, LODE_MASK_NODATA);
  g_assert_cmpint (px (m, 3, 3), ==, LODE_MASK_NODATA);
  g_assert_cmpuint (count_class (m, 0), ==, 0);
  g_assert_null (lode_edit_fill (m, t, 6, 10, 1, FALSE));
  g_assert_null (lode_edit_fill (m, t, 3, 3, 1, FALSE));

  /* Unlocked, the class can be painted over. */
  lode_class_table_set_locked (t, 2, FALSE);
  lode_mask_delta_free (lode_edit_stroke (m, t, line, 2, 1.0, 1));
  g_assert_cmpuint (count_class (m, 2), ==, 0);
  g_assert_cmpint (px (m, 12, 10), ==, LODE_MASK_NODATA);
}

static void
test_edit_fill (void)
{
  g_autoptr(LodeMask) m = lode_mask_new (8, 8);
  g_autoptr(LodeMask) diagonal = NULL;
  g_autoptr(LodeMask) was = NULL;
  LodeMaskDelta *d;

  for (int i = 0; i < 8; i++)
    set_px (m, i, i, 1);
  diagonal = lode_mask_copy (m);

  /* 4-connected, the diagonal walls off the upper triangle. */
  was = lode_mask_copy (m);
  d = lode_edit_fill (m, NULL, 7, 0, 2, FALSE);
  check_delta (was, m, d);
  g_assert_cmpuint (count_class (m, 2), ==, 28);
  for (int y = 0; y < 8; y++)
    for (int x = 0; x < 8; x++)
      g_assert_cmpint (px (m, x, y), ==, x > y ? 2 : x == y ? 1 : 0);
  g_assert_cmpint (d->x, ==, 1);
  g_assert_cmpint (d->y, ==, 0);
  g_assert_cmpint (d->width, ==, 7);
  g_assert_cmpint (d->height, ==, 7);
  lode_mask_delta_free (d);

  /* 8-connected, background leaks through the diagonal's corners. */
  memcpy (m->data, diagonal->data, 64);
  d = lode_edit_fill (m, NULL, 7, 0, 2, TRUE);
  check_delta (diagonal, m, d);
  lode_mask_delta_free (d);
  g_assert_cmpuint (count_class (m, 2), ==, 56);
  g_assert_cmpuint (count_class (m, 1), ==, 8);

  /* The diagonal itself: one pixel 4-connected, all eight 8-connected. */
  memcpy (m->data, diagonal->data, 64);
  lode_mask_delta_free (lode_edit_fill (m, NULL, 3, 3, 2, FALSE));
  g_assert_cmpuint (count_class (m, 2), ==, 1);
  memcpy (m->data, diagonal->data, 64);
  d = lode_edit_fill (m, NULL, 3, 3, 2, TRUE);
  check_delta (diagonal, m, d);
  lode_mask_delta_free (d);
  g_assert_cmpuint (count_class (m, 2), ==, 8);

  /* Same class or off the mask: nothing. */
  g_assert_null (lode_edit_fill (m, NULL, 3, 3, 2, TRUE));
  g_assert_null (lode_edit_fill (m, NULL, 8, 3, 1, TRUE));
  g_assert_null (lode_edit_fill (m, NULL, -1, 0, 1, TRUE));
}

static void
test_edit_fill_large (void)
{
  /* A serpentine corridor: deep for any recursive fill. */
  g_autoptr(LodeMask) m = lode_mask_new (1024, 1024);
  g_autoptr(LodeMask) was = NULL;
  g_autoptr(LodeMaskDelta) d = NULL;
  guint walls;

  for (int x = 1; x < 1024; x += 2)
    for (int y = 0; y < 1024; y++)
      if (y != ((x / 2) % 2 ? 0 : 1023))
        set_px (m, x, y, 1);
  walls = count_class (m, 1);
  was = lode_mask_copy (m);
  d = lode_edit_fill (m, NULL, 0, 0, 2, FALSE);
  check_delta (was, m, d);
  g_assert_cmpuint (count_class (m, 2), ==, 1024 * 1024 - walls);
}

static void
test_edit_polygon (void)
{
  g_autoptr(LodeMask) m = lode_mask_new (100, 100);
  g_autoptr(LodeMask) was = lode_mask_copy (m);
  const double square[] = { 2, 2, 6, 2, 6, 6, 2, 6 };
  /* A U: a bar across the top and two legs, the notch x 3..6, y 3..9 open. */
  const double u[] = { 0, 0, 9, 0, 9, 9, 6, 9, 6, 3, 3, 3, 3, 9, 0, 9 };
  double star[10];
  LodeMaskDelta *d;

  d = lode_edit_polygon (m, NULL, square, 4, 1);
  check_delta (was, m, d);
  lode_mask_delta_free (d);
  for (int y = 0; y < 10; y++)
    for (int x = 0; x < 10; x++)
      g_assert_cmpint (px (m, x, y), ==, (x >= 2 && x < 6 && y >= 2 && y < 6) ? 1 : 0);
  g_assert_cmpuint (count_class (m, 1), ==, 16);

  memset (m->data, 0, 100 * 100);
  d = lode_edit_polygon (m, NULL, u, 8, 1);
  check_delta (was, m, d);
  lode_mask_delta_free (d);
  for (int y = 0; y < 12; y++)
    for (int x = 0; x < 12; x++)
      {
        gboolean in = x < 9 && y < 9 && (y < 3 || x < 3 || x >= 6);
        g_assert_cmpint (px (m, x, y), ==, in ? 1 : 0);
      }
  g_assert_cmpuint (count_class (m, 1), ==, 27 + 36);

  /* Vertices exactly on rows of pixel centres count once. */
  {
    const double pass[] = { 2, 2, 8, 2, 8, 3.5, 8, 8, 2, 8, 2, 5.5 };
    const double diamond[] = { 30.5, 2.5, 38.5, 10.5, 30.5, 18.5, 22.5, 10.5 };

    memset (m->data, 0, 100 * 100);
    lode_mask_delta_free (lode_edit_polygon (m, NULL, pass, 6, 1));
    g_assert_cmpuint (count_class (m, 1), ==, 36);
    for (int y = 2; y < 8; y++)
      for (int x = 2; x < 8; x++)
        g_assert_cmpint (px (m, x, y), ==, 1);
    /* A diamond through centres: each row spans 2 (8 - |y - 10|) pixels,
     * centres on the left edge in, on the right edge out (half-open, like
     * the vertical rule), so the tips paint nothing. */
    lode_mask_delta_free (lode_edit_polygon (m, NULL, diamond, 4, 2));
    for (int y = 0; y < 21; y++)
      {
        int half = 8 - abs (y - 10);
        for (int x = 20; x < 42; x++)
          g_assert_cmpint (px (m, x, y), ==, (x >= 30 - half && x < 30 + half) ? 2 : 0);
      }
  }

  /* A pentagram: even-odd leaves the centre empty, fills the points. */
  memset (m->data, 0, 100 * 100);
  for (int k = 0; k < 5; k++)
    {
      double a = (-90 + 144 * k) * G_PI / 180;
      star[2 * k] = 50 + 40 * cos (a);
      star[2 * k + 1] = 50 + 40 * sin (a);
    }
  d = lode_edit_polygon (m, NULL, star, 5, 2);
  check_delta (was, m, d);
  lode_mask_delta_free (d);
  g_assert_cmpint (px (m, 50, 50), ==, 0);
  g_assert_cmpint (px (m, 49, 15), ==, 2);
  g_assert_cmpint (px (m, 50, 15), ==, 2);
  g_assert_cmpint (px (m, 44, 15), ==, 0);

  /* Degenerate: two points, or all off the mask. */
  {
    const double off[] = { -10, -10, -5, -10, -5, -5 };
    g_assert_null (lode_edit_polygon (m, NULL, square, 2, 1));
    g_assert_null (lode_edit_polygon (m, NULL, off, 3, 1));
  }
}

static void
test_edit_apply (void)
{
  g_autoptr(LodeClassTable) t = lode_class_table_new_cocoa ();
  g_autoptr(LodeMask) start = lode_mask_new (10, 10);
  guint8 rect[100];

  /* Mining in the top-left 5 x 5, cocoa at (8, 8) and (5, 5); the outside
   * mask is the square x, y in 3..7. */
  for (int y = 0; y < 5; y++)
    for (int x = 0; x < 5; x++)
      set_px (start, x, y, 1);
  set_px (start, 8, 8, 2);
  set_px (start, 5, 5, 2);
  set_px (start, 6, 6, LODE_MASK_NODATA);
  for (int i = 0; i < 100; i++)
    rect[i] = (i % 10 >= 3 && i % 10 <= 7 && i / 10 >= 3 && i / 10 <= 7);

  for (int mode = LODE_APPLY_REPLACE; mode <= LODE_APPLY_SUBTRACT; mode++)
    for (int locked = 0; locked <= 1; locked++)
      {
        g_autoptr(LodeMask) m = lode_mask_copy (start);
        g_autoptr(LodeMaskDelta) d = NULL;

        lode_class_table_set_locked (t, 2, locked);
        d = lode_edit_apply (m, t, rect, mode, 1);
        check_delta (start, m, d);
        for (int y = 0; y < 10; y++)
          for (int x = 0; x < 10; x++)
            {
              gboolean in = rect[y * 10 + x];
              guint8 old = px (start, x, y), want = old;

              if (old == LODE_MASK_NODATA || (locked && old == 2))
                want = old;
              else if (mode == LODE_APPLY_REPLACE)
                want = in ? 1 : old == 1 ? 0 : old;
              else if (mode == LODE_APPLY_ADD)
                want = in ? 1 : old;
              else
                want = in && old == 1 ? 0 : old;
              g_assert_cmpint (px (m, x, y), ==, want);
            }
        /* Spot checks a user would see. */
        g_assert_cmpint (px (m, 6, 6), ==, LODE_MASK_NODATA);
        g_assert_cmpint (px (m, 8, 8), ==, 2);
        if (mode == LODE_APPLY_REPLACE)
          {
            g_assert_cmpint (px (m, 0, 0), ==, 0);
            g_assert_cmpint (px (m, 7, 7), ==, 1);
            g_assert_cmpint (px (m, 5, 5), ==, locked ? 2 : 1);
          }
        else if (mode == LODE_APPLY_ADD)
          {
            g_assert_cmpint (px (m, 0, 0), ==, 1);
            g_assert_cmpint (px (m, 7, 7), ==, 1);
          }
        else
          {
            g_assert_cmpint (px (m, 0, 0), ==, 1);
            g_assert_cmpint (px (m, 4, 4), ==, 0);
            g_assert_cmpint (px (m, 7, 7), ==, 0);
            g_assert_cmpint (px (m, 5, 5), ==, 2);
          }
      }

  /* Applying the same again changes nothing. */
  {
    g_autoptr(LodeMask) m = lode_mask_copy (start);

    lode_mask_delta_free (lode_edit_apply (m, t, rect, LODE_APPLY_REPLACE, 1));
    g_assert_null (lode_edit_apply (m, t, rect, LODE_APPLY_REPLACE, 1));
  }
}

static void
test_delta_serialize (void)
{
  g_autoptr(LodeMask) m = lode_mask_new (64, 48);
  const double line[] = { 5.5, 40.5, 50.5, 12.5 };
  g_autoptr(LodeMaskDelta) d = NULL;
  g_autoptr(LodeMaskDelta) back = NULL;
  g_autoptr(GBytes) blob = NULL;
  g_autoptr(GError) error = NULL;
  gsize len;

  lode_mask_delta_free (lode_edit_stroke (m, NULL, line, 2, 4.0, 2));
  d = lode_edit_stroke (m, NULL, line, 2, 2.5, 1);
  blob = lode_mask_delta_serialize (d);
  back = lode_mask_delta_deserialize (blob, &error);
  g_assert_no_error (error);
  g_assert_cmpint (back->x, ==, d->x);
  g_assert_cmpint (back->y, ==, d->y);
  g_assert_cmpint (back->width, ==, d->width);
  g_assert_cmpint (back->height, ==, d->height);
  g_assert_cmpmem (back->before, back->width * back->height, d->before, d->width * d->height);
  g_assert_cmpmem (back->after, back->width * back->height, d->after, d->width * d->height);

  len = g_bytes_get_size (blob);
  for (gsize keep = 0; keep < len; keep++)
    {
      g_autoptr(GBytes) b = bytes_changed (blob, keep, -1, NULL);
      g_autoptr(GError) e = NULL;
      g_autoptr(LodeMaskDelta) none = lode_mask_delta_deserialize (b, &e);

      g_assert_null (none);
      g_assert_nonnull (e);
    }
  for (gsize at = 0; at < len; at++)
    {
      g_autoptr(GBytes) b = bytes_changed (blob, len, at, NULL);
      g_autoptr(GError) e = NULL;
      g_autoptr(LodeMaskDelta) none = lode_mask_delta_deserialize (b, &e);

      g_assert_null (none);
      g_assert_nonnull (e);
    }
  /* A box past the largest mask, and a mask blob taken for a delta. */
  {
    guint32 f[4] = { 16000, 0, 1000, 1 };
    const guint8 *parts[2] = { d->before, d->after };
    gsize sizes[2] = { 1000, 1000 };
    g_autofree guint8 *zeros = g_malloc0 (1000);
    g_autoptr(GBytes) b = NULL;
    g_autoptr(GBytes) mb = lode_mask_serialize (m);
    g_autoptr(GError) e = NULL;
    g_autoptr(LodeMaskDelta) none = NULL;

    parts[0] = parts[1] = zeros;
    b = lode_mask_blob_write ("LDLT", f, 4, parts, sizes, 2);
    none = lode_mask_delta_deserialize (b, &e);
    g_assert_null (none);
    g_assert_error (e, LODE_MASK_ERROR, LODE_MASK_ERROR_TOO_LARGE);
    g_clear_error (&e);
    none = lode_mask_delta_deserialize (mb, &e);
    g_assert_null (none);
    g_assert_error (e, LODE_MASK_ERROR, LODE_MASK_ERROR_CORRUPT);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/classes/presets", test_classes_presets);
  g_test_add_func ("/classes/errors", test_classes_errors);
  g_test_add_func ("/classes/json", test_classes_json);
  g_test_add_func ("/classes/bad-json", test_classes_bad_json);
  g_test_add_func ("/mask/unknown-values", test_mask_unknown_values);
  g_test_add_func ("/mask/nodata", test_mask_nodata);
  g_test_add_func ("/mask/export-round-trip", test_mask_export_round_trip);
  g_test_add_func ("/mask/render", test_mask_render);
  g_test_add_func ("/mask/serialize", test_mask_serialize);
  g_test_add_func ("/mask/damaged", test_mask_damaged);
  g_test_add_func ("/edit/stroke", test_edit_stroke);
  g_test_add_func ("/edit/erase", test_edit_erase);
  g_test_add_func ("/edit/locked-nodata", test_edit_locked_nodata);
  g_test_add_func ("/edit/fill", test_edit_fill);
  g_test_add_func ("/edit/fill-large", test_edit_fill_large);
  g_test_add_func ("/edit/polygon", test_edit_polygon);
  g_test_add_func ("/edit/apply", test_edit_apply);
  g_test_add_func ("/edit/delta-serialize", test_delta_serialize);
  return g_test_run ();
}
