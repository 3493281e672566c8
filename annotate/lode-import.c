#define G_LOG_DOMAIN "lode-annotate"

#include "config.h"

#include <glib/gi18n.h>
#include <math.h>
#include <string.h>

#include "lode-import.h"
#include "lode-mask.h"
#include "lode-raster.h"

G_DEFINE_QUARK (lode-import-error-quark, lode_import_error)

/* Masks without a nodata tag still use 255 for "no data" in the
 * SmallMinesDS pipelines. */
#define MASK_NODATA_CONVENTION 255.0

void
lode_import_options_init (LodeImportOptions *options)
{
  memset (options, 0, sizeof *options);
  options->masks = LODE_IMPORT_MASKS_BINARY;
}

static void
lode_import_odd_free (gpointer data)
{
  LodeImportOdd *odd = data;

  g_free (odd->tile_id);
  g_free (odd->path);
  g_free (odd->reason);
  g_free (odd);
}

void
lode_import_report_init (LodeImportReport *report)
{
  memset (report, 0, sizeof *report);
  report->odd = g_ptr_array_new_with_free_func (lode_import_odd_free);
}

void
lode_import_report_clear (LodeImportReport *report)
{
  g_clear_pointer (&report->odd, g_ptr_array_unref);
  memset (report, 0, sizeof *report);
}

static void
report_odd (LodeImportReport *report, const char *tile_id, int year,
            const char *path, char *reason /* owned */)
{
  LodeImportOdd *odd = g_new0 (LodeImportOdd, 1);

  odd->tile_id = g_strdup (tile_id);
  odd->year = year;
  odd->path = g_strdup (path);
  odd->reason = reason;
  g_ptr_array_add (report->odd, odd);
}

gboolean
lode_import_parse_name (const char *name, char **tile_id, int *year)
{
  g_autofree char *base = g_path_get_basename (name);
  char *dot = strrchr (base, '.');
  g_auto(GStrv) fields = NULL;
  guint n;
  char *end = NULL;
  gint64 y;

  if (dot != NULL)
    *dot = '\0';
  fields = g_strsplit (base, "_", -1);
  n = g_strv_length (fields);
  if (n < 2 || fields[n - 2][0] == '\0')
    return FALSE;
  y = g_ascii_strtoll (fields[n - 1], &end, 10);
  if (end == fields[n - 1] || *end != '\0' || strlen (fields[n - 1]) != 4 || y < 1900 || y > 2200)
    return FALSE;
  for (const char *c = fields[n - 2]; *c; c++)
    if (!g_ascii_isalnum (*c))
      return FALSE;
  if (tile_id)
    *tile_id = g_strdup (fields[n - 2]);
  if (year)
    *year = (int) y;
  return TRUE;
}

static char *
pair_key (const char *tile_id, int year)
{
  return g_strdup_printf ("%s_%04d", tile_id, year);
}

static gboolean
is_tiff_name (const char *name)
{
  g_autofree char *lower = g_ascii_strdown (name, -1);

  return g_str_has_suffix (lower, ".tif") || g_str_has_suffix (lower, ".tiff");
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char * const *) a, *(const char * const *) b);
}

/* The sorted names of the GeoTIFFs directly in dir; NULL + error when the
 * folder cannot be read. */
static GPtrArray *
list_tiffs (const char *dir, GError **error)
{
  g_autoptr(GDir) d = NULL;
  g_autoptr(GError) local = NULL;
  GPtrArray *names;
  const char *name;

  d = g_dir_open (dir, 0, &local);
  if (d == NULL)
    {
      g_set_error (error, LODE_IMPORT_ERROR, LODE_IMPORT_ERROR_FOLDER,
                   _("Cannot read the folder “%s”: %s"), dir, local->message);
      return NULL;
    }
  names = g_ptr_array_new_with_free_func (g_free);
  while ((name = g_dir_read_name (d)) != NULL)
    if (is_tiff_name (name))
      g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_sort (names, compare_names);
  return names;
}

/* key "TTTT_YYYY" -> full path of the mask, for every mask in dir. The tile
 * ids of the cocoa companion are shifted by one against the public ones:
 * shift = +1 turns cocoa tile 0000 into public tile 0001. */
static GHashTable *
index_masks (const char *dir, int shift, GError **error)
{
  g_autoptr(GPtrArray) names = NULL;
  GHashTable *index = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);

  if (!g_file_test (dir, G_FILE_TEST_IS_DIR))
    return index;
  names = list_tiffs (dir, error);
  if (names == NULL)
    {
      g_hash_table_unref (index);
      return NULL;
    }
  for (guint i = 0; i < names->len; i++)
    {
      g_autofree char *tile = NULL;
      int year;
      const char *name = g_ptr_array_index (names, i);

      if (!lode_import_parse_name (name, &tile, &year))
        continue;
      if (shift != 0)
        {
          char *end = NULL;
          gint64 n = g_ascii_strtoll (tile, &end, 10);
          int width = (int) strlen (tile);

          if (end == tile || *end != '\0')
            continue;
          g_free (tile);
          tile = g_strdup_printf ("%0*" G_GINT64_FORMAT, width, n + shift);
        }
      g_hash_table_insert (index, pair_key (tile, year), g_build_filename (dir, name, NULL));
    }
  return index;
}

/* Reads a split CSV (patch_name, class_percentage, bin, split) into the
 * map key -> "train"/"test". */
static gboolean
read_splits (const char *path, GHashTable *splits, GError **error)
{
  g_autofree char *text = NULL;
  g_autoptr(GError) local = NULL;
  g_auto(GStrv) lines = NULL;
  g_auto(GStrv) header = NULL;
  int col_name = -1, col_split = -1;
  gsize len;

  if (!g_file_get_contents (path, &text, &len, &local))
    {
      g_set_error (error, LODE_IMPORT_ERROR, LODE_IMPORT_ERROR_SPLITS,
                   _("Cannot read the split file “%s”: %s"), path, local->message);
      return FALSE;
    }
  if (len > 64 * 1024 * 1024 || memchr (text, '\0', len) != NULL)
    {
      g_set_error (error, LODE_IMPORT_ERROR, LODE_IMPORT_ERROR_SPLITS,
                   _("The split file “%s” is not a CSV text file"), path);
      return FALSE;
    }
  lines = g_strsplit (text, "\n", -1);
  if (lines[0] == NULL)
    goto bad_header;
  g_strchomp (lines[0]);
  header = g_strsplit (lines[0], ",", -1);
  for (int i = 0; header[i] != NULL; i++)
    {
      g_strstrip (header[i]);
      if (g_str_equal (header[i], "patch_name"))
        col_name = i;
      else if (g_str_equal (header[i], "split"))
        col_split = i;
    }
  if (col_name < 0 || col_split < 0)
    goto bad_header;

  for (int l = 1; lines[l] != NULL; l++)
    {
      g_auto(GStrv) fields = NULL;
      g_autofree char *tile = NULL;
      int year;

      g_strstrip (lines[l]);
      if (lines[l][0] == '\0')
        continue;
      fields = g_strsplit (lines[l], ",", -1);
      if ((int) g_strv_length (fields) <= MAX (col_name, col_split))
        {
          g_set_error (error, LODE_IMPORT_ERROR, LODE_IMPORT_ERROR_SPLITS,
                       _("The split file “%s” has too few fields on line %d"), path, l + 1);
          return FALSE;
        }
      g_strstrip (fields[col_name]);
      g_strstrip (fields[col_split]);
      if (!lode_import_parse_name (fields[col_name], &tile, &year))
        {
          g_set_error (error, LODE_IMPORT_ERROR, LODE_IMPORT_ERROR_SPLITS,
                       _("The split file “%s” names “%s” on line %d, which is not a SmallMinesDS patch name"),
                       path, fields[col_name], l + 1);
          return FALSE;
        }
      if (!g_str_equal (fields[col_split], "train") && !g_str_equal (fields[col_split], "test"))
        {
          g_set_error (error, LODE_IMPORT_ERROR, LODE_IMPORT_ERROR_SPLITS,
                       _("The split file “%s” has the split “%s” on line %d (expected train or test)"),
                       path, fields[col_split], l + 1);
          return FALSE;
        }
      g_hash_table_insert (splits, pair_key (tile, year), g_strdup (fields[col_split]));
    }
  return TRUE;

bad_header:
  g_set_error (error, LODE_IMPORT_ERROR, LODE_IMPORT_ERROR_SPLITS,
               _("The split file “%s” lacks the columns patch_name and split"), path);
  return FALSE;
}

/* Reads a mask file through the class table. Returns NULL and sets *reason
 * (owned) when the mask does not fit the image; NULL with an error when the
 * file cannot be read at all. */
static LodeMask *
read_mask (const char *path, const LodeRaster *image, const LodeClassTable *classes,
           char **reason, GError **error)
{
  g_autoptr(LodeRaster) m = NULL;
  g_autoptr(GError) local = NULL;
  g_autofree double *values = NULL;
  LodeMask *mask;
  gsize n;

  m = lode_raster_open (path, &local);
  if (m == NULL)
    {
      *reason = g_strdup_printf (_("the mask cannot be read: %s"), local->message);
      return NULL;
    }
  if (m->n_bands != 1)
    {
      *reason = g_strdup_printf (_("the mask has %d bands, not 1"), m->n_bands);
      return NULL;
    }
  if (m->width != image->width || m->height != image->height)
    {
      *reason = g_strdup_printf (_("the mask is %d × %d pixels, the image %d × %d"),
                                 m->width, m->height, image->width, image->height);
      return NULL;
    }
  /* A mask with no georeferencing at all (common for labels written by
   * training code) lies on its image's grid; one with its own must match. */
  if ((m->has_geotransform || m->crs_wkt[0] != '\0') && !lode_raster_same_grid (m, image))
    {
      *reason = g_strdup (_("the mask’s georeferencing differs from the image’s"));
      return NULL;
    }

  n = (gsize) m->width * m->height;
  values = g_new (double, n);
  for (gsize i = 0; i < n; i++)
    {
      float v = m->data[i];
      values[i] = (isnan (v) || v == MASK_NODATA_CONVENTION) ? -1.0 : v;
    }
  mask = lode_mask_from_values (values, m->width, m->height, classes, TRUE, -1.0, &local);
  if (mask == NULL)
    *reason = g_strdup_printf (_("the mask does not fit the class table: %s"), local->message);
  return mask;
}

typedef struct
{
  LodeStore               *store;
  const LodeImportOptions *options;
  const LodeClassTable    *classes;
  LodeImportReport        *report;
} ImportContext;

/* Adds one patch and its original mask. Odd patches are added and listed;
 * only store failures are errors. */
static gboolean
import_patch (ImportContext *ctx, const char *tile_id, int year,
              const char *image_path, const char *mask_path,
              GHashTable *splits, GError **error)
{
  g_autoptr(LodeRaster) image = NULL;
  g_autoptr(GError) local = NULL;
  g_autoptr(LodeMask) mask = NULL;
  g_autoptr(GString) odd = g_string_new (NULL);
  g_autofree char *key = pair_key (tile_id, year);
  g_autofree char *rel_image = NULL;
  g_autofree char *rel_mask = NULL;
  LodePatch patch = { 0 };
  const char *split = splits ? g_hash_table_lookup (splits, key) : NULL;
  gint64 id;

  image = lode_raster_open_header (image_path, &local);
  if (image == NULL)
    {
      report_odd (ctx->report, tile_id, year, image_path,
                  g_strdup_printf (_("the image cannot be read: %s"), local->message));
      return TRUE;
    }

  if (ctx->options->expected_size > 0 &&
      (image->width != ctx->options->expected_size || image->height != ctx->options->expected_size))
    g_string_append_printf (odd, _("the image is %d × %d pixels, not %d × %d"),
                            image->width, image->height,
                            ctx->options->expected_size, ctx->options->expected_size);
  if (ctx->options->expected_bands > 0 && image->n_bands != ctx->options->expected_bands)
    {
      if (odd->len)
        g_string_append (odd, "; ");
      g_string_append_printf (odd, _("the image has %d bands, not %d"),
                              image->n_bands, ctx->options->expected_bands);
    }

  if (mask_path == NULL)
    {
      if (odd->len)
        g_string_append (odd, "; ");
      g_string_append (odd, _("no mask"));
    }
  else
    {
      g_autofree char *reason = NULL;

      mask = read_mask (mask_path, image, ctx->classes, &reason, error);
      if (mask == NULL)
        {
          if (odd->len)
            g_string_append (odd, "; ");
          g_string_append (odd, reason);
        }
    }

  rel_image = lode_store_relative_path (ctx->store, image_path);
  rel_mask = mask_path ? lode_store_relative_path (ctx->store, mask_path) : NULL;
  patch.tile_id = (char *) tile_id;
  patch.year = year;
  patch.image_path = rel_image;
  patch.mask_path = rel_mask;
  patch.width = image->width;
  patch.height = image->height;
  patch.n_bands = image->n_bands;
  patch.crs_wkt = image->crs_wkt;
  patch.has_geotransform = image->has_geotransform;
  memcpy (patch.geotransform, image->geotransform, sizeof patch.geotransform);
  patch.split = (char *) split;
  patch.odd_reason = odd->len ? odd->str : NULL;
  patch.state = LODE_REVIEW_UNLABELLED;

  id = lode_store_add_patch (ctx->store, &patch, error);
  if (id == 0)
    return FALSE;
  ctx->report->n_patches++;
  if (split != NULL)
    ctx->report->n_with_split++;
  if (odd->len)
    report_odd (ctx->report, tile_id, year, image_path, g_strdup (odd->str));

  if (mask != NULL)
    {
      g_autoptr(GBytes) blob = lode_mask_serialize (mask);
      g_autofree char *base = g_path_get_basename (mask_path);

      if (lode_store_add_revision (ctx->store, id, blob, LODE_REVISION_ORIGINAL, 0,
                                   "import", base, error) == 0)
        return FALSE;
      ctx->report->n_masks++;
    }
  return TRUE;
}

static char *
find_smallminesds_root (const char *source)
{
  g_autofree char *nested = g_build_filename (source, "SmallMinesDS", NULL);

  if (g_file_test (nested, G_FILE_TEST_IS_DIR))
    return g_steal_pointer (&nested);
  return g_strdup (source);
}

/* The year folders (YYYY with an IMAGE folder) under root, sorted. */
static GPtrArray *
find_years (const char *root)
{
  g_autoptr(GDir) d = g_dir_open (root, 0, NULL);
  GPtrArray *years = g_ptr_array_new_with_free_func (g_free);
  const char *name;

  if (d == NULL)
    return years;
  while ((name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *image_dir = g_build_filename (root, name, "IMAGE", NULL);

      if (strlen (name) == 4 && g_ascii_isdigit (name[0]) && g_ascii_isdigit (name[1]) &&
          g_ascii_isdigit (name[2]) && g_ascii_isdigit (name[3]) &&
          g_file_test (image_dir, G_FILE_TEST_IS_DIR))
        g_ptr_array_add (years, g_strdup (name));
    }
  g_ptr_array_sort (years, compare_names);
  return years;
}

gboolean
lode_import_is_smallminesds (const char *source)
{
  g_autofree char *root = find_smallminesds_root (source);
  g_autoptr(GPtrArray) years = find_years (root);

  return years->len > 0;
}

/* The official split file for a year, wherever the layouts put it. */
static char *
find_split_file (const char *source, const char *root, const char *year)
{
  g_autofree char *name = g_strdup_printf ("train_test_splits_%s.csv", year);
  g_autofree char *parent = g_path_get_dirname (root);
  const char *dirs[] = { source, root, parent };

  for (guint i = 0; i < G_N_ELEMENTS (dirs); i++)
    {
      g_autofree char *a = g_build_filename (dirs[i], "data_splits", name, NULL);
      g_autofree char *b = g_build_filename (dirs[i], name, NULL);

      if (g_file_test (a, G_FILE_TEST_IS_REGULAR))
        return g_steal_pointer (&a);
      if (g_file_test (b, G_FILE_TEST_IS_REGULAR))
        return g_steal_pointer (&b);
    }
  return NULL;
}

static gboolean
check_cancelled (GCancellable *cancellable, GError **error)
{
  return g_cancellable_set_error_if_cancelled (cancellable, error);
}

static gboolean
store_project_meta (LodeStore *store, const char *source, const char *layout,
                    const LodeClassTable *classes, GError **error)
{
  g_autofree char *json = NULL;
  g_autofree char *existing = lode_store_get_class_table_json (store);
  g_autofree char *abs = g_canonicalize_filename (source, NULL);

  if (!lode_store_set_meta (store, "dataset_root", abs, error) ||
      !lode_store_set_meta (store, "layout", layout, error))
    return FALSE;
  if (existing == NULL)
    {
      json = lode_class_table_to_json (classes);
      if (!lode_store_set_class_table_json (store, json, error))
        return FALSE;
    }
  return TRUE;
}

gboolean
lode_import_smallminesds (LodeStore               *store,
                          const char              *source,
                          const LodeImportOptions *options,
                          LodeImportReport        *report,
                          LodeProgressFunc         progress,
                          gpointer                 user_data,
                          GCancellable            *cancellable,
                          GError                 **error)
{
  g_autofree char *root = NULL;
  g_autofree char *cocoa_root = NULL;
  g_autoptr(GPtrArray) years = NULL;
  g_autoptr(GHashTable) splits = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_autoptr(GPtrArray) jobs = g_ptr_array_new_with_free_func ((GDestroyNotify) g_strfreev);
  g_autoptr(LodeClassTable) preset = NULL;
  LodeImportOptions defaults;
  ImportContext ctx;

  g_return_val_if_fail (store != NULL && source != NULL && report != NULL, FALSE);

  if (options == NULL)
    {
      lode_import_options_init (&defaults);
      options = &defaults;
    }
  if (!g_file_test (source, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, LODE_IMPORT_ERROR, LODE_IMPORT_ERROR_FOLDER,
                   _("The folder “%s” does not exist"), source);
      return FALSE;
    }

  root = find_smallminesds_root (source);
  years = find_years (root);
  if (years->len == 0)
    {
      g_set_error (error, LODE_IMPORT_ERROR, LODE_IMPORT_ERROR_LAYOUT,
                   _("“%s” is not in the SmallMinesDS layout: no YEAR/IMAGE folders were found"), source);
      return FALSE;
    }

  if (options->masks == LODE_IMPORT_MASKS_COCOA)
    {
      cocoa_root = options->cocoa_dir ? g_strdup (options->cocoa_dir)
                                      : g_build_filename (source, "cocoa", NULL);
      if (!g_file_test (cocoa_root, G_FILE_TEST_IS_DIR))
        {
          g_set_error (error, LODE_IMPORT_ERROR, LODE_IMPORT_ERROR_FOLDER,
                       _("The cocoa masks folder “%s” does not exist"), cocoa_root);
          return FALSE;
        }
    }
  preset = options->masks == LODE_IMPORT_MASKS_COCOA ? lode_class_table_new_cocoa ()
                                                     : lode_class_table_new_binary ();
  ctx.store = store;
  ctx.options = options;
  ctx.classes = options->classes ? options->classes : preset;
  ctx.report = report;

  /* Gather the work first, so progress is a true fraction. */
  for (guint y = 0; y < years->len; y++)
    {
      const char *year = g_ptr_array_index (years, y);
      g_autofree char *image_dir = g_build_filename (root, year, "IMAGE", NULL);
      g_autofree char *mask_dir = NULL;
      g_autofree char *split_file = find_split_file (source, root, year);
      g_autoptr(GPtrArray) images = NULL;
      g_autoptr(GHashTable) masks = NULL;

      if (cocoa_root != NULL)
        {
          mask_dir = g_build_filename (cocoa_root, year, "MASK", NULL);
          if (!g_file_test (mask_dir, G_FILE_TEST_IS_DIR))
            {
              g_free (mask_dir);
              mask_dir = g_build_filename (cocoa_root, year, NULL);
            }
        }
      else
        mask_dir = g_build_filename (root, year, "MASK", NULL);

      images = list_tiffs (image_dir, error);
      if (images == NULL)
        return FALSE;
      masks = index_masks (mask_dir, cocoa_root != NULL ? 1 : 0, error);
      if (masks == NULL)
        return FALSE;
      if (split_file != NULL && !read_splits (split_file, splits, error))
        return FALSE;

      for (guint i = 0; i < images->len; i++)
        {
          const char *name = g_ptr_array_index (images, i);
          g_autofree char *tile = NULL;
          g_autofree char *key = NULL;
          int file_year;
          char **job;

          if (!lode_import_parse_name (name, &tile, &file_year))
            {
              g_autofree char *path = g_build_filename (image_dir, name, NULL);
              report_odd (report, "", atoi (year), path,
                          g_strdup (_("the file name is not TYPE_[CC_]TTTT_YYYY.tif; not imported")));
              continue;
            }
          key = pair_key (tile, file_year);
          job = g_new0 (char *, 5);
          job[0] = g_steal_pointer (&tile);
          job[1] = g_strdup_printf ("%d", file_year);
          job[2] = g_build_filename (image_dir, name, NULL);
          job[3] = g_strdup (g_hash_table_lookup (masks, key));
          g_ptr_array_add (jobs, job);
        }
    }

  if (jobs->len == 0)
    {
      g_set_error (error, LODE_IMPORT_ERROR, LODE_IMPORT_ERROR_LAYOUT,
                   _("No images were found under “%s”"), root);
      return FALSE;
    }

  if (!lode_store_begin (store, error))
    return FALSE;
  for (guint i = 0; i < jobs->len; i++)
    {
      char **job = g_ptr_array_index (jobs, i);

      if (check_cancelled (cancellable, error) ||
          !import_patch (&ctx, job[0], atoi (job[1]), job[2], job[3], splits, error))
        {
          lode_store_rollback (store);
          return FALSE;
        }
      if (progress != NULL && (i % 16 == 0 || i + 1 == jobs->len))
        progress ((double) (i + 1) / jobs->len, _("Importing patches"), user_data);
    }
  if (!store_project_meta (store, source, options->masks == LODE_IMPORT_MASKS_COCOA ? "smallminesds-cocoa" : "smallminesds",
                           ctx.classes, error) ||
      !lode_store_commit (store, error))
    {
      lode_store_rollback (store);
      return FALSE;
    }
  return TRUE;
}

gboolean
lode_import_folder (LodeStore               *store,
                    const char              *source,
                    const LodeImportOptions *options,
                    LodeImportReport        *report,
                    LodeProgressFunc         progress,
                    gpointer                 user_data,
                    GCancellable            *cancellable,
                    GError                 **error)
{
  g_autoptr(GPtrArray) names = NULL;
  g_autoptr(GRegex) regex = NULL;
  g_autoptr(GHashTable) mask_names = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_autoptr(GHashTable) is_mask = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(LodeClassTable) preset = lode_class_table_new_binary ();
  g_autoptr(GError) local = NULL;
  LodeImportOptions defaults;
  ImportContext ctx;
  guint n_images = 0, done = 0;

  g_return_val_if_fail (store != NULL && source != NULL && report != NULL, FALSE);

  if (options == NULL)
    {
      lode_import_options_init (&defaults);
      options = &defaults;
    }
  if ((options->mask_regex == NULL) != (options->mask_replace == NULL))
    {
      g_set_error (error, LODE_IMPORT_ERROR, LODE_IMPORT_ERROR_INVALID,
                   _("A mask pattern needs both the expression and its replacement"));
      return FALSE;
    }
  if (!g_file_test (source, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, LODE_IMPORT_ERROR, LODE_IMPORT_ERROR_FOLDER,
                   _("The folder “%s” does not exist"), source);
      return FALSE;
    }
  if (options->mask_regex != NULL)
    {
      regex = g_regex_new (options->mask_regex, G_REGEX_ANCHORED, 0, &local);
      if (regex == NULL)
        {
          g_set_error (error, LODE_IMPORT_ERROR, LODE_IMPORT_ERROR_INVALID,
                       _("The mask pattern “%s” is not a valid expression: %s"),
                       options->mask_regex, local->message);
          return FALSE;
        }
    }
  names = list_tiffs (source, error);
  if (names == NULL)
    return FALSE;

  /* Which files are masks of others: those are not images. */
  if (regex != NULL)
    for (guint i = 0; i < names->len; i++)
      {
        const char *name = g_ptr_array_index (names, i);
        g_autofree char *mask_name = NULL;

        if (!g_regex_match (regex, name, 0, NULL))
          continue;
        mask_name = g_regex_replace (regex, name, -1, 0, options->mask_replace, 0, NULL);
        if (mask_name != NULL && !g_str_equal (mask_name, name))
          g_hash_table_insert (mask_names, g_strdup (name), g_steal_pointer (&mask_name));
      }
  for (guint i = 0; i < names->len; i++)
    {
      const char *mask_name = g_hash_table_lookup (mask_names, g_ptr_array_index (names, i));
      if (mask_name != NULL)
        g_hash_table_add (is_mask, (gpointer) mask_name);
    }
  for (guint i = 0; i < names->len; i++)
    if (!g_hash_table_contains (is_mask, g_ptr_array_index (names, i)))
      n_images++;
  if (n_images == 0)
    {
      g_set_error (error, LODE_IMPORT_ERROR, LODE_IMPORT_ERROR_LAYOUT,
                   _("No GeoTIFF images were found in “%s”"), source);
      return FALSE;
    }

  ctx.store = store;
  ctx.options = options;
  ctx.classes = options->classes ? options->classes : preset;
  ctx.report = report;

  if (!lode_store_begin (store, error))
    return FALSE;
  for (guint i = 0; i < names->len; i++)
    {
      const char *name = g_ptr_array_index (names, i);
      const char *mask_name;
      g_autofree char *image_path = NULL;
      g_autofree char *mask_path = NULL;
      g_autofree char *tile = NULL;
      int year = 0;

      if (g_hash_table_contains (is_mask, name))
        continue;
      if (!lode_import_parse_name (name, &tile, &year))
        {
          const char *dot = strrchr (name, '.');
          tile = g_strndup (name, dot ? (gsize) (dot - name) : strlen (name));
          year = 0;
        }
      else
        {
          /* Keep the whole stem but the year as the tile id. */
          g_autofree char *stem = g_strndup (name, strlen (name) - strlen (strrchr (name, '_')));
          g_free (tile);
          tile = g_steal_pointer (&stem);
        }
      image_path = g_build_filename (source, name, NULL);
      mask_name = g_hash_table_lookup (mask_names, name);
      if (mask_name != NULL)
        {
          mask_path = g_build_filename (source, mask_name, NULL);
          if (!g_file_test (mask_path, G_FILE_TEST_IS_REGULAR))
            g_clear_pointer (&mask_path, g_free);
        }
      if (check_cancelled (cancellable, error) ||
          !import_patch (&ctx, tile, year, image_path, mask_path, NULL, error))
        {
          lode_store_rollback (store);
          return FALSE;
        }
      done++;
      if (progress != NULL)
        progress ((double) done / n_images, _("Importing patches"), user_data);
    }
  if (!store_project_meta (store, source, "folder", ctx.classes, error) ||
      !lode_store_commit (store, error))
    {
      lode_store_rollback (store);
      return FALSE;
    }
  return TRUE;
}
