#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <math.h>

#include "lode-model-metrics.h"

void
lode_model_metrics_add_number (JsonBuilder *b, const char *name, double v)
{
  json_builder_set_member_name (b, name);
  if (isfinite (v))
    json_builder_add_double_value (b, v);
  else
    json_builder_add_null_value (b);
}

static double
number_or_nan (JsonObject *o, const char *name)
{
  if (!json_object_has_member (o, name) || json_object_get_null_member (o, name))
    return NAN;
  return json_object_get_double_member (o, name);
}

gboolean
lode_model_metrics_read_validation (const char *metrics_json,
                                    const char *a,
                                    gboolean    a_required,
                                    double     *va,
                                    const char *b,
                                    double     *vb)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonObject *root, *v;

  *va = *vb = NAN;
  if (metrics_json == NULL || !json_parser_load_from_data (parser, metrics_json, -1, NULL)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return FALSE;
  root = json_node_get_object (json_parser_get_root (parser));
  if (!json_object_has_member (root, "validation")
      || !JSON_NODE_HOLDS_OBJECT (json_object_get_member (root, "validation")))
    return FALSE;
  v = json_object_get_object_member (root, "validation");
  *va = number_or_nan (v, a);
  *vb = number_or_nan (v, b);
  return !a_required || !isnan (*va);
}

char *
lode_model_metrics_default_name (LodeStore *store, const char *prefix)
{
  g_autoptr(GPtrArray) versions = lode_store_list_model_versions (store, NULL);
  g_autoptr(GDateTime) now = g_date_time_new_now_local ();
  g_autofree char *stamp = g_date_time_format (now, "%Y%m%d-%H%M%S");

  return g_strdup_printf ("%s-%u-%s", prefix, versions ? versions->len + 1 : 1, stamp);
}
