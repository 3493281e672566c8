#define G_LOG_DOMAIN "lode-annotate"

#include "config.h"

#include <glib/gi18n.h>
#include <json-glib/json-glib.h>
#include <string.h>

#include "lode-classes.h"

G_DEFINE_QUARK (lode-classes-error-quark, lode_classes_error)

#define JSON_MAX_BYTES (1024 * 1024)
#define TABLE_JSON_VERSION 1
#define NODATA_ID 255  /* LODE_MASK_NODATA, kept out of the table */

struct _LodeClassTable
{
  GArray *classes;  /* LodeClass, in display order */
};

static void
class_clear (gpointer data)
{
  LodeClass *c = data;

  g_clear_pointer (&c->name, g_free);
}

LodeClassTable *
lode_class_table_new (void)
{
  LodeClassTable *t = g_new0 (LodeClassTable, 1);

  t->classes = g_array_new (FALSE, TRUE, sizeof (LodeClass));
  g_array_set_clear_func (t->classes, class_clear);
  return t;
}

static void
add_preset (LodeClassTable *t, guint8 id, const char *name,
            guint8 r, guint8 g, guint8 b, guint8 a)
{
  const guint8 rgba[4] = { r, g, b, a };
  gboolean ok = lode_class_table_add (t, id, name, rgba, id, NULL);

  g_assert (ok);
}

LodeClassTable *
lode_class_table_new_binary (void)
{
  LodeClassTable *t = lode_class_table_new ();

  add_preset (t, 0, _("Not mining"), 0x9a, 0x99, 0x96, 0xff);
  add_preset (t, 1, _("Mining"), 0xe0, 0x1b, 0x24, 0xff);
  return t;
}

LodeClassTable *
lode_class_table_new_cocoa (void)
{
  LodeClassTable *t = lode_class_table_new ();

  add_preset (t, 0, _("Background"), 0x9a, 0x99, 0x96, 0xff);
  add_preset (t, 1, _("Mining"), 0xe0, 0x1b, 0x24, 0xff);
  add_preset (t, 2, _("Cocoa"), 0x2e, 0xc2, 0x7e, 0xff);
  return t;
}

LodeClassTable *
lode_class_table_copy (const LodeClassTable *t)
{
  LodeClassTable *copy;

  g_return_val_if_fail (t != NULL, NULL);

  copy = lode_class_table_new ();
  for (guint i = 0; i < t->classes->len; i++)
    {
      LodeClass c = g_array_index (t->classes, LodeClass, i);

      c.name = g_strdup (c.name);
      g_array_append_val (copy->classes, c);
    }
  return copy;
}

void
lode_class_table_free (LodeClassTable *t)
{
  if (t == NULL)
    return;
  g_array_unref (t->classes);
  g_free (t);
}

gboolean
lode_class_table_equal (const LodeClassTable *a, const LodeClassTable *b)
{
  g_return_val_if_fail (a != NULL && b != NULL, FALSE);

  if (a->classes->len != b->classes->len)
    return FALSE;
  for (guint i = 0; i < a->classes->len; i++)
    {
      const LodeClass *ca = &g_array_index (a->classes, LodeClass, i);
      const LodeClass *cb = &g_array_index (b->classes, LodeClass, i);

      if (ca->id != cb->id || g_strcmp0 (ca->name, cb->name) != 0
          || memcmp (ca->rgba, cb->rgba, 4) != 0
          || ca->export_value != cb->export_value
          || !ca->locked != !cb->locked)
        return FALSE;
    }
  return TRUE;
}

static LodeClass *
find (const LodeClassTable *t, guint8 id)
{
  for (guint i = 0; i < t->classes->len; i++)
    {
      LodeClass *c = &g_array_index (t->classes, LodeClass, i);

      if (c->id == id)
        return c;
    }
  return NULL;
}

static gboolean
check_name (const char *name, GError **error)
{
  if (name == NULL || *name == '\0')
    {
      g_set_error (error, LODE_CLASSES_ERROR, LODE_CLASSES_ERROR_INVALID,
                   _("A class needs a name"));
      return FALSE;
    }
  if (strlen (name) > LODE_CLASS_NAME_MAX || !g_utf8_validate (name, -1, NULL))
    {
      g_set_error (error, LODE_CLASSES_ERROR, LODE_CLASSES_ERROR_INVALID,
                   _("Class name is longer than %d bytes or not valid UTF-8"),
                   LODE_CLASS_NAME_MAX);
      return FALSE;
    }
  return TRUE;
}

/* The value must fit an 8-bit mask file and be free (or used by except). */
static gboolean
check_export_value (const LodeClassTable *t, int value, const LodeClass *except,
                    GError **error)
{
  const LodeClass *other;

  if (value < 0 || value > 255)
    {
      g_set_error (error, LODE_CLASSES_ERROR, LODE_CLASSES_ERROR_INVALID,
                   _("Export value %d is outside 0 to 255"), value);
      return FALSE;
    }
  other = lode_class_table_lookup_export (t, value);
  if (other != NULL && other != except)
    {
      g_set_error (error, LODE_CLASSES_ERROR, LODE_CLASSES_ERROR_DUPLICATE,
                   _("Export value %d is already used by class “%s”"),
                   value, other->name);
      return FALSE;
    }
  return TRUE;
}

gboolean
lode_class_table_add (LodeClassTable *t, guint8 id, const char *name,
                      const guint8 rgba[4], int export_value, GError **error)
{
  LodeClass c = { 0, };
  const LodeClass *other;

  g_return_val_if_fail (t != NULL, FALSE);
  g_return_val_if_fail (rgba != NULL, FALSE);

  if (id == NODATA_ID)
    {
      g_set_error (error, LODE_CLASSES_ERROR, LODE_CLASSES_ERROR_INVALID,
                   _("Class id %d is reserved for pixels without data"), NODATA_ID);
      return FALSE;
    }
  other = find (t, id);
  if (other != NULL)
    {
      g_set_error (error, LODE_CLASSES_ERROR, LODE_CLASSES_ERROR_DUPLICATE,
                   _("Class id %d is already used by class “%s”"), id, other->name);
      return FALSE;
    }
  if (!check_name (name, error) || !check_export_value (t, export_value, NULL, error))
    return FALSE;

  c.id = id;
  c.name = g_strdup (name);
  memcpy (c.rgba, rgba, 4);
  c.export_value = export_value;
  g_array_append_val (t->classes, c);
  return TRUE;
}

gboolean
lode_class_table_remove (LodeClassTable *t, guint8 id)
{
  g_return_val_if_fail (t != NULL, FALSE);

  for (guint i = 0; i < t->classes->len; i++)
    if (g_array_index (t->classes, LodeClass, i).id == id)
      {
        g_array_remove_index (t->classes, i);
        return TRUE;
      }
  return FALSE;
}

guint
lode_class_table_size (const LodeClassTable *t)
{
  g_return_val_if_fail (t != NULL, 0);

  return t->classes->len;
}

const LodeClass *
lode_class_table_get (const LodeClassTable *t, guint index)
{
  g_return_val_if_fail (t != NULL, NULL);
  g_return_val_if_fail (index < t->classes->len, NULL);

  return &g_array_index (t->classes, LodeClass, index);
}

const LodeClass *
lode_class_table_lookup (const LodeClassTable *t, guint8 id)
{
  g_return_val_if_fail (t != NULL, NULL);

  return find (t, id);
}

const LodeClass *
lode_class_table_lookup_export (const LodeClassTable *t, int value)
{
  g_return_val_if_fail (t != NULL, NULL);

  for (guint i = 0; i < t->classes->len; i++)
    {
      const LodeClass *c = &g_array_index (t->classes, LodeClass, i);

      if (c->export_value == value)
        return c;
    }
  return NULL;
}

gboolean
lode_class_table_is_locked (const LodeClassTable *t, guint8 id)
{
  const LodeClass *c;

  if (t == NULL)
    return FALSE;
  c = find (t, id);
  return c != NULL && c->locked;
}

void
lode_class_table_set_locked (LodeClassTable *t, guint8 id, gboolean locked)
{
  LodeClass *c;

  g_return_if_fail (t != NULL);
  c = find (t, id);
  g_return_if_fail (c != NULL);

  c->locked = !!locked;
}

static LodeClass *
find_or_error (LodeClassTable *t, guint8 id, GError **error)
{
  LodeClass *c = find (t, id);

  if (c == NULL)
    g_set_error (error, LODE_CLASSES_ERROR, LODE_CLASSES_ERROR_NOT_FOUND,
                 _("There is no class with id %d"), id);
  return c;
}

gboolean
lode_class_table_set_export_value (LodeClassTable *t, guint8 id, int value,
                                   GError **error)
{
  LodeClass *c;

  g_return_val_if_fail (t != NULL, FALSE);

  c = find_or_error (t, id, error);
  if (c == NULL || !check_export_value (t, value, c, error))
    return FALSE;
  c->export_value = value;
  return TRUE;
}

gboolean
lode_class_table_set_name (LodeClassTable *t, guint8 id, const char *name,
                           GError **error)
{
  LodeClass *c;

  g_return_val_if_fail (t != NULL, FALSE);

  c = find_or_error (t, id, error);
  if (c == NULL || !check_name (name, error))
    return FALSE;
  g_free (c->name);
  c->name = g_strdup (name);
  return TRUE;
}

void
lode_class_table_set_colour (LodeClassTable *t, guint8 id, const guint8 rgba[4])
{
  LodeClass *c;

  g_return_if_fail (t != NULL && rgba != NULL);
  c = find (t, id);
  g_return_if_fail (c != NULL);

  memcpy (c->rgba, rgba, 4);
}

char *
lode_class_table_to_json (const LodeClassTable *t)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;

  g_return_val_if_fail (t != NULL, NULL);

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "version");
  json_builder_add_int_value (builder, TABLE_JSON_VERSION);
  json_builder_set_member_name (builder, "classes");
  json_builder_begin_array (builder);
  for (guint i = 0; i < t->classes->len; i++)
    {
      const LodeClass *c = &g_array_index (t->classes, LodeClass, i);

      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "id");
      json_builder_add_int_value (builder, c->id);
      json_builder_set_member_name (builder, "name");
      json_builder_add_string_value (builder, c->name);
      json_builder_set_member_name (builder, "rgba");
      json_builder_begin_array (builder);
      for (int k = 0; k < 4; k++)
        json_builder_add_int_value (builder, c->rgba[k]);
      json_builder_end_array (builder);
      json_builder_set_member_name (builder, "export");
      json_builder_add_int_value (builder, c->export_value);
      json_builder_set_member_name (builder, "locked");
      json_builder_add_boolean_value (builder, c->locked);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  return json_generator_to_data (generator, NULL);
}

static gboolean G_GNUC_PRINTF (2, 3)
parse_error (GError **error, const char *format, ...)
{
  va_list args;
  g_autofree char *what = NULL;

  va_start (args, format);
  what = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, LODE_CLASSES_ERROR, LODE_CLASSES_ERROR_PARSE,
               _("Class table is malformed: %s"), what);
  return FALSE;
}

static gboolean
get_int_member (JsonObject *o, const char *member, gint64 min, gint64 max,
                gint64 *out, guint index, GError **error)
{
  JsonNode *node = json_object_get_member (o, member);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_INT64)
    return parse_error (error, _("class %u: “%s” must be an integer"), index, member);
  *out = json_node_get_int (node);
  if (*out < min || *out > max)
    return parse_error (error, _("class %u: “%s” is %lld, outside %lld to %lld"),
                        index, member, (long long) *out, (long long) min, (long long) max);
  return TRUE;
}

static gboolean
add_json_class (LodeClassTable *t, JsonNode *node, guint index, GError **error)
{
  JsonObject *o;
  JsonNode *member;
  JsonArray *rgba_array;
  const char *name;
  guint8 rgba[4];
  gint64 id, export_value, v;
  g_autoptr(GError) local_error = NULL;

  if (!JSON_NODE_HOLDS_OBJECT (node))
    return parse_error (error, _("class %u is not an object"), index);
  o = json_node_get_object (node);

  if (!get_int_member (o, "id", 0, 254, &id, index, error)
      || !get_int_member (o, "export", 0, 255, &export_value, index, error))
    return FALSE;

  member = json_object_get_member (o, "name");
  if (member == NULL || !JSON_NODE_HOLDS_VALUE (member)
      || json_node_get_value_type (member) != G_TYPE_STRING)
    return parse_error (error, _("class %u: “%s” must be a string"), index, "name");
  name = json_node_get_string (member);

  member = json_object_get_member (o, "rgba");
  if (member == NULL || !JSON_NODE_HOLDS_ARRAY (member)
      || json_array_get_length (rgba_array = json_node_get_array (member)) != 4)
    return parse_error (error, _("class %u: “%s” must be an array of 4 integers"),
                        index, "rgba");
  for (guint k = 0; k < 4; k++)
    {
      JsonNode *e = json_array_get_element (rgba_array, k);

      if (!JSON_NODE_HOLDS_VALUE (e) || json_node_get_value_type (e) != G_TYPE_INT64
          || (v = json_node_get_int (e)) < 0 || v > 255)
        return parse_error (error, _("class %u: “%s” must hold integers from 0 to 255"),
                            index, "rgba");
      rgba[k] = (guint8) v;
    }

  if (!lode_class_table_add (t, (guint8) id, name, rgba, (int) export_value, &local_error))
    return parse_error (error, _("class %u: %s"), index, local_error->message);

  member = json_object_get_member (o, "locked");
  if (member != NULL)
    {
      if (!JSON_NODE_HOLDS_VALUE (member)
          || json_node_get_value_type (member) != G_TYPE_BOOLEAN)
        return parse_error (error, _("class %u: “%s” must be true or false"),
                            index, "locked");
      lode_class_table_set_locked (t, (guint8) id, json_node_get_boolean (member));
    }
  return TRUE;
}

LodeClassTable *
lode_class_table_from_json (const char *json, GError **error)
{
  g_autoptr(JsonParser) parser = NULL;
  g_autoptr(LodeClassTable) t = NULL;
  g_autoptr(GError) local_error = NULL;
  JsonNode *root, *member;
  JsonObject *o;
  JsonArray *classes;
  gsize len;

  g_return_val_if_fail (json != NULL, NULL);

  len = strnlen (json, JSON_MAX_BYTES + 1);
  if (len > JSON_MAX_BYTES)
    {
      parse_error (error, _("longer than %d bytes"), JSON_MAX_BYTES);
      return NULL;
    }

  parser = json_parser_new ();
  if (!json_parser_load_from_data (parser, json, (gssize) len, &local_error))
    {
      parse_error (error, "%s", local_error->message);
      return NULL;
    }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      parse_error (error, _("not a JSON object"));
      return NULL;
    }
  o = json_node_get_object (root);

  member = json_object_get_member (o, "version");
  if (member == NULL || !JSON_NODE_HOLDS_VALUE (member)
      || json_node_get_value_type (member) != G_TYPE_INT64
      || json_node_get_int (member) != TABLE_JSON_VERSION)
    {
      parse_error (error, _("unknown version (this program reads version %d)"), TABLE_JSON_VERSION);
      return NULL;
    }
  member = json_object_get_member (o, "classes");
  if (member == NULL || !JSON_NODE_HOLDS_ARRAY (member))
    {
      parse_error (error, _("“%s” must be an array"), "classes");
      return NULL;
    }
  classes = json_node_get_array (member);
  if (json_array_get_length (classes) > 255)
    {
      parse_error (error, _("more than 255 classes"));
      return NULL;
    }

  t = lode_class_table_new ();
  for (guint i = 0; i < json_array_get_length (classes); i++)
    if (!add_json_class (t, json_array_get_element (classes, i), i, error))
      return NULL;
  return g_steal_pointer (&t);
}
