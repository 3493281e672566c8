#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>
#include <inttypes.h>
#include <math.h>

#include "lode-classes.h"
#include "lode-commands.h"
#include "lode-sam2-tune-project.h"
#include "lode-store.h"
#include "lode-train-project.h"

LodeStore *
lode_cli_open_project (const char *command, const char *path)
{
  g_autoptr(GError) error = NULL;
  LodeStore *store;

  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    {
      lode_cli_error (command, _("the project “%s” does not exist"), path);
      return NULL;
    }
  if (g_file_test (path, G_FILE_TEST_IS_DIR))
    {
      lode_cli_error (command, _("“%s” is a folder, not a project file"), path);
      return NULL;
    }
  store = lode_store_open (path, FALSE, &error);
  if (store == NULL)
    lode_cli_error (command, "%s", error->message);
  return store;
}

typedef struct
{
  const char *key;
  guint       count;
} Count;

static void
count_key (GArray *counts, const char *key)
{
  for (guint i = 0; i < counts->len; i++)
    {
      Count *c = &g_array_index (counts, Count, i);

      if (g_str_equal (c->key, key))
        {
          c->count++;
          return;
        }
    }
  {
    Count c = { g_intern_string (key), 1 };
    g_array_append_val (counts, c);
  }
}

static void
print_counts (const char *title, GArray *counts)
{
  g_print ("  %s", title);
  for (guint i = 0; i < counts->len; i++)
    {
      const Count *c = &g_array_index (counts, Count, i);
      g_print ("%s%s %u", i ? ", " : " ", c->key, c->count);
    }
  g_print ("\n");
}

static void
print_meta (LodeStore *store, const char *label, const char *key)
{
  g_autofree char *value = lode_store_get_meta (store, key);

  if (value != NULL)
    g_print ("%s %s\n", label, value);
}

/* A model version's key metrics, or NULL when its JSON has none. */
static char *
version_metrics (const LodeModelVersion *v)
{
  double a, b;

  if (v->kind == LODE_MODEL_SAM2 && lode_sam2_tune_project_read_metrics (v->metrics_json, &a, &b))
    /* Translators: a fine-tuned SAM2 model's validation IoU before and after */
    return g_strdup_printf (_("validation IoU %.3f → %.3f"), a, b);
  if (v->kind != LODE_MODEL_SAM2 && lode_train_project_read_metrics (v->metrics_json, &a, &b))
    /* Translators: a trained model's validation scores */
    return g_strdup_printf (_("mining IoU %.3f, mean IoU %.3f"), a, b);
  return NULL;
}

static gboolean
print_models (LodeStore *store, GError **error)
{
  g_autoptr(GPtrArray) versions = lode_store_list_model_versions (store, error);
  g_autofree char *cache = NULL;

  if (versions == NULL)
    return FALSE;
  g_print (_("Model versions: %u\n"), versions->len);
  for (guint i = 0; i < versions->len; i++)
    {
      const LodeModelVersion *v = g_ptr_array_index (versions, i);
      g_autoptr(GDateTime) when = g_date_time_new_from_unix_local (v->created_us / G_USEC_PER_SEC);
      g_autofree char *date = when ? g_date_time_format (when, "%Y-%m-%d %H:%M") : g_strdup ("");
      g_autofree char *metrics = version_metrics (v);

      g_print ("  #%" PRId64 "  %-7s %s  %s  %s", v->id, lode_model_kind_id (v->kind), v->name, date, v->path);
      if (v->parent_id > 0)
        /* Translators: the model version a model was fine-tuned from */
        g_print (_("  (from #%" PRId64 ")"), v->parent_id);
      g_print ("%s%s\n", metrics ? "  " : "", metrics ? metrics : "");
    }
  cache = g_format_size (lode_store_cache_total_bytes (store));
  g_print (_("Embedding cache: %s\n"), cache);
  return TRUE;
}

int
lode_cmd_info (int argc, char **argv)
{
  g_auto(GStrv) rest = NULL;
  g_autoptr(GError) error = NULL;
  const GOptionEntry entries[] = {
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &rest, NULL, N_("PROJECT.lode") },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (_("PROJECT.lode"));
  g_autoptr(LodeStore) store = NULL;
  g_autoptr(GPtrArray) patches = NULL;
  g_autoptr(GArray) years = g_array_new (FALSE, FALSE, sizeof (Count));
  g_autoptr(GArray) splits = g_array_new (FALSE, FALSE, sizeof (Count));
  g_autoptr(GArray) states = g_array_new (FALSE, FALSE, sizeof (Count));
  g_autoptr(GArray) sources = g_array_new (FALSE, FALSE, sizeof (Count));
  g_autoptr(LodeClassTable) classes = NULL;
  g_autofree char *classes_json = NULL;
  guint n_odd = 0, n_revisions = 0, n_revised = 0;

  g_option_context_set_summary (context,
    _("Describe a project: its format, patches by year, split and review state,\n"
      "revisions, the class table, the model versions with their scores, the size\n"
      "of the embedding cache, and every odd patch with the reason."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!lode_cli_parse (context, &argc, &argv))
    return LODE_EXIT_USAGE;
  if (rest == NULL || g_strv_length (rest) != 1)
    {
      lode_cli_error ("info", _("expected one project file"));
      return LODE_EXIT_USAGE;
    }
  store = lode_cli_open_project ("info", rest[0]);
  if (store == NULL)
    return LODE_EXIT_FAILURE;
  patches = lode_store_list_patches (store, &error);
  if (patches == NULL)
    {
      lode_cli_error ("info", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }

  g_print (_("Project: %s\n"), lode_store_get_path (store));
  g_print (_("Format version: %d\n"), lode_store_format_version ());
  print_meta (store, _("Made by Lode:"), "lode_version");
  print_meta (store, _("Created:"), "created");
  print_meta (store, _("Layout:"), "layout");
  print_meta (store, _("Data set:"), "dataset_root");

  for (guint i = 0; i < patches->len; i++)
    {
      const LodePatch *p = g_ptr_array_index (patches, i);
      g_autofree char *year = g_strdup_printf ("%d", p->year);
      g_autoptr(GPtrArray) revisions = lode_store_list_revisions (store, p->id, &error);

      if (revisions == NULL)
        {
          lode_cli_error ("info", "%s", error->message);
          return LODE_EXIT_FAILURE;
        }
      count_key (years, year);
      count_key (splits, p->split ? p->split : _("none"));
      count_key (states, lode_review_state_id (p->state));
      n_odd += p->odd_reason != NULL;
      n_revisions += revisions->len;
      for (guint r = 0; r < revisions->len; r++)
        count_key (sources, lode_revision_source_id (((LodeRevisionInfo *) g_ptr_array_index (revisions, r))->source));
      n_revised += revisions->len > 1;
    }
  g_print (_("Patches: %u\n"), patches->len);
  print_counts (_("by year:"), years);
  print_counts (_("by split:"), splits);
  print_counts (_("by state:"), states);
  g_print (_("Revisions: %u (%u patches edited since import)\n"), n_revisions, n_revised);
  print_counts (_("by source:"), sources);

  classes_json = lode_store_get_class_table_json (store);
  classes = classes_json ? lode_class_table_from_json (classes_json, NULL) : NULL;
  if (classes != NULL)
    {
      g_print (_("Classes (id, name, value on export, colour):\n"));
      for (guint c = 0; c < lode_class_table_size (classes); c++)
        {
          const LodeClass *k = lode_class_table_get (classes, c);

          g_print ("  %3u  %-20s %3d  #%02x%02x%02x%s\n", k->id, k->name, k->export_value,
                   k->rgba[0], k->rgba[1], k->rgba[2], k->locked ? _("  (locked)") : "");
        }
    }
  else
    g_print (_("Classes: none set\n"));

  if (!print_models (store, &error))
    {
      lode_cli_error ("info", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }

  g_print (_("Odd patches: %u\n"), n_odd);
  for (guint i = 0; i < patches->len; i++)
    {
      const LodePatch *p = g_ptr_array_index (patches, i);

      if (p->odd_reason != NULL)
        g_print ("  %s %d (%s): %s\n", p->tile_id, p->year, p->image_path, p->odd_reason);
    }
  return LODE_EXIT_OK;
}
