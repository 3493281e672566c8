#define G_LOG_DOMAIN "lode-annotate"

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wundef"
#include <cpl_conv.h>
#include <cpl_error.h>
#include <gdal.h>
#include <gdal_alg.h>
#include <gdal_utils.h>
#include <ogr_api.h>
#include <ogr_srs_api.h>
#pragma GCC diagnostic pop

#include "lode-classes.h"
#include "lode-bands.h"
#include "lode-export.h"
#include "lode-mask.h"
#include "lode-splits.h"
#include "lode-stats.h"
#include "lode-version.h"

G_DEFINE_QUARK (lode-export-error-quark, lode_export_error)

#define EXPORT_NODATA 255
#define TEMP_PREFIX ".lode-tmp-"

static const char * const band_ids[13] = {
  "BLUE", "GREEN", "RED", "RED_EDGE_1", "RED_EDGE_2", "RED_EDGE_3", "NIR_BROAD",
  "NIR_NARROW", "SWIR_1", "SWIR_2", "VV", "VH", "DEM",
};

static const struct
{
  const char       *name;
  LodeExportFormats flag;
} format_names[] = {
  { "masks", LODE_EXPORT_MASKS },
  { "splits", LODE_EXPORT_SPLITS },
  { "manifest", LODE_EXPORT_MANIFEST },
  { "gpkg", LODE_EXPORT_GPKG },
  { "terratorch", LODE_EXPORT_TERRATORCH },
};

void
lode_export_options_init (LodeExportOptions *options)
{
  g_return_if_fail (options != NULL);

  options->formats = LODE_EXPORT_ALL_FORMATS;
  options->accepted_only = FALSE;
  options->bands = LODE_EXPORT_BANDS_ALL;
}

gboolean
lode_export_parse_formats (const char *list, LodeExportFormats *out, GError **error)
{
  g_auto(GStrv) names = NULL;
  LodeExportFormats formats = 0;

  g_return_val_if_fail (list != NULL && out != NULL, FALSE);

  names = g_strsplit (list, ",", -1);
  for (int i = 0; names[i] != NULL; i++)
    {
      gboolean known = FALSE;

      g_strstrip (names[i]);
      if (names[i][0] == '\0')
        continue;
      if (g_str_equal (names[i], "all"))
        {
          formats |= LODE_EXPORT_ALL_FORMATS;
          continue;
        }
      for (gsize f = 0; f < G_N_ELEMENTS (format_names); f++)
        if (g_str_equal (names[i], format_names[f].name))
          {
            formats |= format_names[f].flag;
            known = TRUE;
          }
      if (!known)
        {
          g_set_error (error, LODE_EXPORT_ERROR, LODE_EXPORT_ERROR_INVALID,
                       _("Unknown export format “%s” (expected masks, splits, manifest, gpkg or terratorch)"),
                       names[i]);
          return FALSE;
        }
    }
  if (formats == 0)
    {
      g_set_error (error, LODE_EXPORT_ERROR, LODE_EXPORT_ERROR_INVALID,
                   _("No export format was given"));
      return FALSE;
    }
  *out = formats;
  return TRUE;
}

static gboolean
layout_is_smallminesds (const char *layout)
{
  return layout != NULL && g_str_has_prefix (layout, "smallminesds");
}

/* The image's file name without its extension and without IMG_. */
static char *
patch_stem (const LodePatch *patch)
{
  g_autofree char *base = g_path_get_basename (patch->image_path);
  char *dot = strrchr (base, '.');

  if (dot != NULL)
    *dot = '\0';
  if (g_str_has_prefix (base, "IMG_"))
    return g_strdup (base + 4);
  return g_steal_pointer (&base);
}

char *
lode_export_mask_path (const LodePatch *patch, const char *layout)
{
  g_return_val_if_fail (patch != NULL, NULL);

  if (layout_is_smallminesds (layout))
    {
      g_autofree char *stem = patch_stem (patch);
      g_autofree char *year = g_strdup_printf ("%d", patch->year);
      g_autofree char *name = g_strdup_printf ("MASK_%s.tif", stem);

      return g_build_filename ("SmallMinesDS", year, "MASK", name, NULL);
    }
  if (patch->mask_path != NULL)
    {
      g_autofree char *base = g_path_get_basename (patch->mask_path);
      return g_build_filename ("masks", base, NULL);
    }
  if (patch->year != 0)
    {
      g_autofree char *name = g_strdup_printf ("%s_%d_mask.tif", patch->tile_id, patch->year);
      return g_build_filename ("masks", name, NULL);
    }
  {
    g_autofree char *name = g_strdup_printf ("%s_mask.tif", patch->tile_id);
    return g_build_filename ("masks", name, NULL);
  }
}

/* Paths and the folder's borders. */

/* The absolute, link-free form of path, which need not exist: the longest
 * existing prefix goes through realpath(), the rest is appended. */
static char *
canonical_path (const char *path)
{
  g_autofree char *abs = g_canonicalize_filename (path, NULL);
  g_autofree char *head = g_strdup (abs);
  g_autoptr(GPtrArray) tail = g_ptr_array_new_with_free_func (g_free);
  char resolved[PATH_MAX];
  GString *out;

  while (realpath (head, resolved) == NULL)
    {
      char *parent = g_path_get_dirname (head);

      g_ptr_array_add (tail, g_path_get_basename (head));
      if (g_str_equal (parent, head))
        {
          g_free (parent);
          return g_steal_pointer (&abs);
        }
      g_free (head);
      head = parent;
    }
  out = g_string_new (resolved);
  for (guint i = tail->len; i > 0; i--)
    {
      if (out->len == 0 || out->str[out->len - 1] != G_DIR_SEPARATOR)
        g_string_append_c (out, G_DIR_SEPARATOR);
      g_string_append (out, g_ptr_array_index (tail, i - 1));
    }
  return g_string_free (out, FALSE);
}

/* TRUE when inner is outer or lies under it (both canonical). */
static gboolean
path_within (const char *inner, const char *outer)
{
  gsize n = strlen (outer);

  if (g_str_equal (outer, G_DIR_SEPARATOR_S))
    return TRUE;
  return strncmp (inner, outer, n) == 0 && (inner[n] == '\0' || inner[n] == G_DIR_SEPARATOR);
}

typedef struct
{
  LodeStore               *store;
  const LodeExportOptions *options;
  LodeExportReport        *report;
  LodeClassTable          *classes;
  char                    *layout;
  char                    *root;      /* canonical export folder */
  GHashTable              *made;      /* folders already checked */
  /* polygons */
  GDALDatasetH             gpkg;
  char                    *gpkg_tmp;
  OGRLayerH                layer;
  OGRSpatialReferenceH     layer_srs;
  char                    *last_wkt;
  OGRCoordinateTransformationH to_layer;
  GDALDatasetH             scratch;   /* in-memory vectors for GDALPolygonize */
  /* GDAL's first failure since the last reset */
  char                    *gdal_error;
} ExportContext;

static void CPL_STDCALL
collect_gdal_error (CPLErr kind, CPLErrorNum number, const char *message)
{
  ExportContext *ctx = CPLGetErrorHandlerUserData ();

  if (kind >= CE_Failure && ctx->gdal_error == NULL)
    ctx->gdal_error = g_strdup (message);
}

static void
gdal_reset (ExportContext *ctx)
{
  g_clear_pointer (&ctx->gdal_error, g_free);
  CPLErrorReset ();
}

static void
set_write_error (ExportContext *ctx, GError **error, const char *path)
{
  const char *why = ctx->gdal_error ? ctx->gdal_error : _("GDAL gave no reason");

  g_set_error (error, LODE_EXPORT_ERROR, LODE_EXPORT_ERROR_WRITE,
               _("Cannot write “%s”: %s"), path, why);
}

/* Makes root/rel one folder at a time, refusing any that leads out of
 * root once links are followed, before anything is made through it. */
static gboolean
ensure_folder (ExportContext *ctx, const char *rel, GError **error)
{
  g_auto(GStrv) parts = NULL;
  g_autoptr(GString) path = NULL;

  if (g_hash_table_contains (ctx->made, rel))
    return TRUE;
  /* The export folder itself, with its parents (all checked already). */
  if (g_mkdir_with_parents (ctx->root, 0755) != 0)
    {
      int saved = errno;

      g_set_error (error, LODE_EXPORT_ERROR, LODE_EXPORT_ERROR_WRITE,
                   _("Cannot create the folder “%s”: %s"), ctx->root, g_strerror (saved));
      return FALSE;
    }
  parts = g_strsplit (rel, G_DIR_SEPARATOR_S, -1);
  path = g_string_new (ctx->root);
  for (int i = 0; parts[i] != NULL; i++)
    {
      char resolved[PATH_MAX];

      if (parts[i][0] == '\0' || g_str_equal (parts[i], "."))
        continue;
      g_string_append_c (path, G_DIR_SEPARATOR);
      g_string_append (path, parts[i]);
      if (!g_file_test (path->str, G_FILE_TEST_EXISTS) && !g_file_test (path->str, G_FILE_TEST_IS_SYMLINK)
          && g_mkdir (path->str, 0755) != 0)
        {
          int saved = errno;

          g_set_error (error, LODE_EXPORT_ERROR, LODE_EXPORT_ERROR_WRITE,
                       _("Cannot create the folder “%s”: %s"), path->str, g_strerror (saved));
          return FALSE;
        }
      if (realpath (path->str, resolved) == NULL || !path_within (resolved, ctx->root))
        {
          g_set_error (error, LODE_EXPORT_ERROR, LODE_EXPORT_ERROR_TARGET,
                       _("The folder “%s” is a link leading out of the export folder; nothing was written there"),
                       path->str);
          return FALSE;
        }
      if (!g_file_test (resolved, G_FILE_TEST_IS_DIR))
        {
          g_set_error (error, LODE_EXPORT_ERROR, LODE_EXPORT_ERROR_WRITE,
                       _("Cannot create the folder “%s”: a file of that name is in the way"), path->str);
          return FALSE;
        }
    }
  g_hash_table_add (ctx->made, g_strdup (rel));
  return TRUE;
}

/* A fresh temporary name beside path (the file is made, then removed so
 * that GDAL drivers which refuse existing files can create it). */
static char *
temp_beside (const char *path, const char *suffix, GError **error)
{
  g_autofree char *folder = g_path_get_dirname (path);
  g_autofree char *template = g_strdup_printf (TEMP_PREFIX "XXXXXX%s", suffix);
  g_autofree char *tmp = g_build_filename (folder, template, NULL);
  int fd;

  fd = g_mkstemp_full (tmp, O_RDWR, 0644);
  if (fd < 0)
    {
      int saved = errno;

      g_set_error (error, LODE_EXPORT_ERROR, LODE_EXPORT_ERROR_WRITE,
                   _("Cannot write “%s”: %s"), path, g_strerror (saved));
      return NULL;
    }
  g_close (fd, NULL);
  g_unlink (tmp);
  return g_steal_pointer (&tmp);
}

/* Moves a complete temporary file to its name; on failure removes it. */
static gboolean
publish (ExportContext *ctx, const char *tmp, const char *path, gboolean ok, GError **error)
{
  if (ok && ctx->gdal_error != NULL)
    {
      set_write_error (ctx, error, path);
      ok = FALSE;
    }
  if (ok && (g_chmod (tmp, 0644) != 0 || g_rename (tmp, path) != 0))
    {
      int saved = errno;

      g_set_error (error, LODE_EXPORT_ERROR, LODE_EXPORT_ERROR_WRITE,
                   _("Cannot write “%s”: %s"), path, g_strerror (saved));
      ok = FALSE;
    }
  if (!ok)
    g_unlink (tmp);
  else
    ctx->report->n_files++;
  return ok;
}

static gboolean
write_text (ExportContext *ctx, const char *rel_folder, const char *name, const char *text,
            GError **error)
{
  g_autofree char *folder = g_build_filename (ctx->root, rel_folder, NULL);
  g_autofree char *path = g_build_filename (folder, name, NULL);
  g_autofree char *tmp = NULL;
  g_autoptr(GError) local = NULL;
  gboolean ok;

  if (!ensure_folder (ctx, rel_folder, error))
    return FALSE;
  tmp = temp_beside (path, "", error);
  if (tmp == NULL)
    return FALSE;
  ok = g_file_set_contents_full (tmp, text, -1, G_FILE_SET_CONTENTS_DURABLE, 0644, &local);
  if (!ok)
    {
      g_set_error (error, LODE_EXPORT_ERROR, LODE_EXPORT_ERROR_WRITE,
                   _("Cannot write “%s”: %s"), path, local->message);
    }
  return publish (ctx, tmp, path, ok, error);
}

/* A uint8 mask GeoTIFF on the patch's grid. */
static gboolean
write_mask_file (ExportContext *ctx, const LodePatch *patch, const guint8 *values,
                 const char *rel_path, GError **error)
{
  g_autofree char *rel_folder = g_path_get_dirname (rel_path);
  g_autofree char *path = g_build_filename (ctx->root, rel_path, NULL);
  g_autofree char *tmp = NULL;
  const char *create_options[] = { "COMPRESS=DEFLATE", "PREDICTOR=2", NULL };
  GDALDatasetH ds;
  GDALRasterBandH band;
  gboolean ok = TRUE;

  if (!ensure_folder (ctx, rel_folder, error))
    return FALSE;
  tmp = temp_beside (path, ".tif", error);
  if (tmp == NULL)
    return FALSE;

  gdal_reset (ctx);
  ds = GDALCreate (GDALGetDriverByName ("GTiff"), tmp, patch->width, patch->height, 1, GDT_Byte,
                   (char **) create_options);
  if (ds == NULL)
    {
      set_write_error (ctx, error, path);
      g_unlink (tmp);
      return FALSE;
    }
  if (patch->has_geotransform)
    ok = GDALSetGeoTransform (ds, (double *) patch->geotransform) == CE_None;
  if (ok && patch->crs_wkt != NULL && patch->crs_wkt[0] != '\0')
    ok = GDALSetProjection (ds, patch->crs_wkt) == CE_None;
  band = GDALGetRasterBand (ds, 1);
  ok = ok && GDALSetRasterNoDataValue (band, EXPORT_NODATA) == CE_None;
  ok = ok && GDALRasterIO (band, GF_Write, 0, 0, patch->width, patch->height, (void *) values,
                           patch->width, patch->height, GDT_Byte, 0, 0) == CE_None;
  GDALClose (ds);
  if (!ok && ctx->gdal_error == NULL)
    ctx->gdal_error = g_strdup (CPLGetLastErrorMsg ());
  if (!ok)
    set_write_error (ctx, error, path);
  return publish (ctx, tmp, path, ok, error);
}

/* The TerraTorch image: the source copied, all bands or the six. */
static gboolean
write_terratorch_image (ExportContext *ctx, const LodePatch *patch, const char *rel_path,
                        GError **error)
{
  g_autofree char *rel_folder = g_path_get_dirname (rel_path);
  g_autofree char *path = g_build_filename (ctx->root, rel_path, NULL);
  g_autofree char *source = lode_store_resolve_path (ctx->store, patch->image_path);
  g_autofree char *tmp = NULL;
  g_autoptr(GStrvBuilder) args = g_strv_builder_new ();
  g_auto(GStrv) argv = NULL;
  GDALTranslateOptions *translate;
  GDALDatasetH src, dst;
  int usage_error = FALSE;

  if (!ensure_folder (ctx, rel_folder, error))
    return FALSE;
  gdal_reset (ctx);
  src = GDALOpen (source, GA_ReadOnly);
  if (src == NULL)
    {
      g_set_error (error, LODE_EXPORT_ERROR, LODE_EXPORT_ERROR_SOURCE,
                   _("Cannot read the image “%s”: %s"), source,
                   ctx->gdal_error ? ctx->gdal_error : _("GDAL gave no reason"));
      return FALSE;
    }
  if (ctx->options->bands == LODE_EXPORT_BANDS_SIX && GDALGetRasterCount (src) < 10)
    {
      g_set_error (error, LODE_EXPORT_ERROR, LODE_EXPORT_ERROR_SOURCE,
                   _("The image “%s” has %d bands; the 6-band subset needs bands 1, 2, 3, 8, 9 and 10"),
                   source, GDALGetRasterCount (src));
      GDALClose (src);
      return FALSE;
    }
  tmp = temp_beside (path, ".tif", error);
  if (tmp == NULL)
    {
      GDALClose (src);
      return FALSE;
    }

  g_strv_builder_add_many (args, "-of", "GTiff", "-co", "COMPRESS=DEFLATE", NULL);
  if (ctx->options->bands == LODE_EXPORT_BANDS_SIX)
    for (int i = 0; i < 6; i++)
      {
        g_autofree char *b = g_strdup_printf ("%d", lode_band_profile_six_indices ()[i] + 1);
        g_strv_builder_add_many (args, "-b", b, NULL);
      }
  argv = g_strv_builder_end (args);
  translate = GDALTranslateOptionsNew (argv, NULL);
  dst = GDALTranslate (tmp, src, translate, &usage_error);
  GDALTranslateOptionsFree (translate);
  GDALClose (src);
  if (dst != NULL)
    GDALClose (dst);
  if (dst == NULL && ctx->gdal_error == NULL)
    ctx->gdal_error = g_strdup (CPLGetLastErrorMsg ());
  if (dst == NULL)
    set_write_error (ctx, error, path);
  return publish (ctx, tmp, path, dst != NULL, error);
}

/* Polygons. */

static gboolean
gpkg_open (ExportContext *ctx, GError **error)
{
  g_autofree char *path = g_build_filename (ctx->root, "polygons.gpkg", NULL);

  ctx->gpkg_tmp = temp_beside (path, ".gpkg", error);
  if (ctx->gpkg_tmp == NULL)
    return FALSE;
  gdal_reset (ctx);
  ctx->gpkg = GDALCreate (GDALGetDriverByName ("GPKG"), ctx->gpkg_tmp, 0, 0, 0, GDT_Unknown, NULL);
  ctx->scratch = GDALCreate (GDALGetDriverByName ("Memory"), "", 0, 0, 0, GDT_Unknown, NULL);
  if (ctx->gpkg == NULL || ctx->scratch == NULL)
    {
      set_write_error (ctx, error, path);
      return FALSE;
    }
  return TRUE;
}

static gboolean
gpkg_make_layer (ExportContext *ctx, const char *wkt, GError **error)
{
  g_autofree char *path = g_build_filename (ctx->root, "polygons.gpkg", NULL);
  const char *fields[] = { "class", "class_value", "tile", "year" };
  const OGRFieldType types[] = { OFTString, OFTInteger, OFTString, OFTInteger };

  if (wkt != NULL && wkt[0] != '\0')
    {
      ctx->layer_srs = OSRNewSpatialReference (wkt);
      if (ctx->layer_srs != NULL)
        OSRSetAxisMappingStrategy (ctx->layer_srs, OAMS_TRADITIONAL_GIS_ORDER);
      ctx->last_wkt = g_strdup (wkt);
    }
  ctx->layer = GDALDatasetCreateLayer (ctx->gpkg, "labels", ctx->layer_srs, wkbPolygon, NULL);
  if (ctx->layer == NULL)
    {
      set_write_error (ctx, error, path);
      return FALSE;
    }
  for (gsize i = 0; i < G_N_ELEMENTS (fields); i++)
    {
      OGRFieldDefnH field = OGR_Fld_Create (fields[i], types[i]);
      OGRErr err = OGR_L_CreateField (ctx->layer, field, TRUE);

      OGR_Fld_Destroy (field);
      if (err != OGRERR_NONE)
        {
          set_write_error (ctx, error, path);
          return FALSE;
        }
    }
  if (GDALDatasetStartTransaction (ctx->gpkg, FALSE) != OGRERR_NONE)
    {
      set_write_error (ctx, error, path);
      return FALSE;
    }
  return TRUE;
}

/* Keeps ctx->to_layer right for a patch in CRS wkt. */
static gboolean
gpkg_transform_for (ExportContext *ctx, const char *wkt, GError **error)
{
  OGRSpatialReferenceH srs;
  gboolean same;

  if (g_strcmp0 (wkt, ctx->last_wkt) == 0 || ctx->layer_srs == NULL || wkt == NULL || wkt[0] == '\0')
    return TRUE;
  g_free (ctx->last_wkt);
  ctx->last_wkt = g_strdup (wkt);
  if (ctx->to_layer != NULL)
    OCTDestroyCoordinateTransformation (ctx->to_layer);
  ctx->to_layer = NULL;
  srs = OSRNewSpatialReference (wkt);
  if (srs == NULL)
    return TRUE;
  OSRSetAxisMappingStrategy (srs, OAMS_TRADITIONAL_GIS_ORDER);
  same = OSRIsSame (srs, ctx->layer_srs);
  if (!same)
    ctx->to_layer = OCTNewCoordinateTransformation (srs, ctx->layer_srs);
  OSRDestroySpatialReference (srs);
  if (!same && ctx->to_layer == NULL)
    {
      g_set_error (error, LODE_EXPORT_ERROR, LODE_EXPORT_ERROR_SOURCE,
                   _("Cannot transform polygons from “%s” to the layer’s CRS"), wkt);
      return FALSE;
    }
  return TRUE;
}

static gboolean
gpkg_add_patch (ExportContext *ctx, const LodePatch *patch, const LodeMask *mask, GError **error)
{
  g_autofree char *path = g_build_filename (ctx->root, "polygons.gpkg", NULL);
  gsize n = (gsize) mask->width * mask->height;
  g_autofree guint8 *inside = g_new (guint8, n);
  GDALDatasetH mem;
  OGRLayerH scratch;
  OGRFieldDefnH field;
  OGRFeatureH in;
  gboolean ok = TRUE;
  gboolean any = FALSE;

  if (ctx->layer == NULL && !gpkg_make_layer (ctx, patch->crs_wkt, error))
    return FALSE;
  if (!gpkg_transform_for (ctx, patch->crs_wkt, error))
    return FALSE;

  for (gsize i = 0; i < n; i++)
    {
      inside[i] = mask->data[i] != 0 && mask->data[i] != LODE_MASK_NODATA;
      any |= inside[i];
    }
  if (!any)
    return TRUE;

  gdal_reset (ctx);
  mem = GDALCreate (GDALGetDriverByName ("MEM"), "", mask->width, mask->height, 2, GDT_Byte, NULL);
  if (mem == NULL)
    {
      set_write_error (ctx, error, path);
      return FALSE;
    }
  if (patch->has_geotransform)
    GDALSetGeoTransform (mem, (double *) patch->geotransform);
  if (GDALRasterIO (GDALGetRasterBand (mem, 1), GF_Write, 0, 0, mask->width, mask->height,
                    mask->data, mask->width, mask->height, GDT_Byte, 0, 0) != CE_None
      || GDALRasterIO (GDALGetRasterBand (mem, 2), GF_Write, 0, 0, mask->width, mask->height,
                       inside, mask->width, mask->height, GDT_Byte, 0, 0) != CE_None)
    {
      GDALClose (mem);
      set_write_error (ctx, error, path);
      return FALSE;
    }

  scratch = GDALDatasetCreateLayer (ctx->scratch, "regions", NULL, wkbPolygon, NULL);
  if (scratch == NULL)
    {
      GDALClose (mem);
      set_write_error (ctx, error, path);
      return FALSE;
    }
  field = OGR_Fld_Create ("id", OFTInteger);
  ok = OGR_L_CreateField (scratch, field, TRUE) == OGRERR_NONE;
  OGR_Fld_Destroy (field);
  /* 4-connected regions: no 8CONNECTED option. */
  if (ok && GDALPolygonize (GDALGetRasterBand (mem, 1), GDALGetRasterBand (mem, 2), scratch, 0,
                            NULL, NULL, NULL) != CE_None)
    ok = FALSE;

  OGR_L_ResetReading (scratch);
  while (ok && (in = OGR_L_GetNextFeature (scratch)) != NULL)
    {
      int id = OGR_F_GetFieldAsInteger (in, 0);
      const LodeClass *c = lode_class_table_lookup (ctx->classes, (guint8) id);
      OGRFeatureH out = OGR_F_Create (OGR_L_GetLayerDefn (ctx->layer));
      OGRGeometryH geometry = OGR_G_Clone (OGR_F_GetGeometryRef (in));

      if (ctx->to_layer != NULL && OGR_G_Transform (geometry, ctx->to_layer) != OGRERR_NONE)
        ok = FALSE;
      OGR_F_SetFieldString (out, 0, c ? c->name : "");
      OGR_F_SetFieldInteger (out, 1, c ? c->export_value : id);
      OGR_F_SetFieldString (out, 2, patch->tile_id);
      OGR_F_SetFieldInteger (out, 3, patch->year);
      OGR_F_SetGeometryDirectly (out, geometry);
      if (ok && OGR_L_CreateFeature (ctx->layer, out) != OGRERR_NONE)
        ok = FALSE;
      OGR_F_Destroy (out);
      OGR_F_Destroy (in);
    }
  GDALDatasetDeleteLayer (ctx->scratch, 0);
  GDALClose (mem);
  if (!ok)
    set_write_error (ctx, error, path);
  return ok;
}

static gboolean
gpkg_finish (ExportContext *ctx, gboolean ok, GError **error)
{
  g_autofree char *path = g_build_filename (ctx->root, "polygons.gpkg", NULL);

  if (ctx->gpkg == NULL)
    return ok;
  if (ok && ctx->layer == NULL)
    ok = gpkg_make_layer (ctx, NULL, error);
  if (ok && GDALDatasetCommitTransaction (ctx->gpkg) != OGRERR_NONE)
    {
      set_write_error (ctx, error, path);
      ok = FALSE;
    }
  GDALClose (ctx->gpkg);
  ctx->gpkg = NULL;
  if (!ok)
    {
      g_autofree char *journal = g_strconcat (ctx->gpkg_tmp, "-journal", NULL);
      g_unlink (journal);
    }
  return publish (ctx, ctx->gpkg_tmp, path, ok, error);
}

/* The TerraTorch configuration. */

static void
append_list (GString *out, const char *key, const char * const *items, guint n, gboolean quote)
{
  g_string_append_printf (out, "    %s: [", key);
  for (guint i = 0; i < n; i++)
    g_string_append_printf (out, "%s%s%s%s", i ? ", " : "", quote ? "\"" : "", items[i], quote ? "\"" : "");
  g_string_append (out, "]\n");
}

static void
append_numbers (GString *out, const char *indent, const char *key, const double *values, const int *index, guint n)
{
  g_string_append_printf (out, "%s%s: [", indent, key);
  for (guint i = 0; i < n; i++)
    {
      char buffer[G_ASCII_DTOSTR_BUF_SIZE];

      g_ascii_formatd (buffer, sizeof buffer, "%.8f", values[index ? index[i] : (int) i]);
      g_string_append_printf (out, "%s%s", i ? ", " : "", buffer);
    }
  g_string_append (out, "]\n");
}

static char *
terratorch_config (ExportContext *ctx, int n_bands)
{
  GString *out = g_string_new (NULL);
  gboolean six = ctx->options->bands == LODE_EXPORT_BANDS_SIX;
  guint n_classes = lode_class_table_size (ctx->classes);
  int max_value = 0;
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const int *index = six ? lode_band_profile_six_indices () : NULL;
  guint n = six ? 6 : (guint) MAX (n_bands, 0);
  gboolean known = six || n_bands == 13;

  for (guint i = 0; i < n_classes; i++)
    max_value = MAX (max_value, lode_class_table_get (ctx->classes, i)->export_value);
  for (guint i = 0; i < n; i++)
    g_ptr_array_add (names, known ? g_strdup (band_ids[index ? index[i] : (int) i])
                                  : g_strdup_printf ("%u", i));

  g_string_append_printf (out,
    "# TerraTorch configuration written by Lode %s for this export.\n"
    "# Train with: terratorch fit --config config.yaml (from this folder).\n"
    "# Images keep their source values and nodata tag; no_data_replace sets\n"
    "# nodata to 0 and no_label_replace mask nodata (255) to the ignore index.\n",
    lode_version_string ());
  g_string_append (out,
    "seed_everything: 0\n"
    "trainer:\n"
    "  accelerator: auto\n"
    "  strategy: auto\n"
    "  devices: auto\n"
    "  num_nodes: 1\n"
    "  precision: 16-mixed\n"
    "  max_epochs: 100\n"
    "  log_every_n_steps: 10\n"
    "  default_root_dir: output\n"
    "  callbacks:\n"
    "    - class_path: RichProgressBar\n"
    "    - class_path: LearningRateMonitor\n"
    "      init_args:\n"
    "        logging_interval: epoch\n"
    "data:\n"
    "  class_path: terratorch.datamodules.GenericNonGeoSegmentationDataModule\n"
    "  init_args:\n"
    "    batch_size: 4\n"
    "    num_workers: 2\n"
    "    constant_scale: 1.0\n"
    "    train_data_root: training\n"
    "    train_label_data_root: training\n"
    "    val_data_root: validation\n"
    "    val_label_data_root: validation\n"
    "    test_data_root: validation\n"
    "    test_label_data_root: validation\n"
    "    img_grep: \"*_IMG.tif\"\n"
    "    label_grep: \"*_MASK.tif\"\n");
  append_list (out, "dataset_bands", (const char * const *) names->pdata, names->len, FALSE);
  append_list (out, "output_bands", (const char * const *) names->pdata, names->len, FALSE);
  if (known)
    {
      append_numbers (out, "    ", "means", lode_band_profile_mean (LODE_BAND_PROFILE_SMALLMINES_13), index, n);
      append_numbers (out, "    ", "stds", lode_band_profile_std (LODE_BAND_PROFILE_SMALLMINES_13), index, n);
    }
  else
    {
      g_autofree double *zeros = g_new0 (double, MAX (n, 1));
      g_autofree double *ones = g_new (double, MAX (n, 1));

      for (guint i = 0; i < n; i++)
        ones[i] = 1.0;
      g_string_append (out, "    # Not SmallMinesDS bands: replace with the data set's statistics.\n");
      append_numbers (out, "    ", "means", zeros, NULL, n);
      append_numbers (out, "    ", "stds", ones, NULL, n);
    }
  if (n >= 3 && known)
    g_string_append (out, "    rgb_indices: [2, 1, 0]\n");
  g_string_append_printf (out,
    "    num_classes: %d\n"
    "    no_data_replace: 0\n"
    "    no_label_replace: -1\n"
    "    train_transform:\n"
    "      - class_path: albumentations.HorizontalFlip\n"
    "        init_args:\n"
    "          p: 0.5\n"
    "      - class_path: albumentations.VerticalFlip\n"
    "        init_args:\n"
    "          p: 0.5\n"
    "      - class_path: ToTensorV2\n"
    "model:\n"
    "  class_path: terratorch.tasks.SemanticSegmentationTask\n"
    "  init_args:\n"
    "    model_factory: EncoderDecoderFactory\n"
    "    model_args:\n"
    "      backbone: prithvi_eo_v2_300\n"
    "      backbone_pretrained: true\n",
    max_value + 1);
  g_string_append (out, "      backbone_bands: [");
  for (guint i = 0; i < names->len; i++)
    g_string_append_printf (out, "%s%s", i ? ", " : "", (char *) g_ptr_array_index (names, i));
  g_string_append_printf (out, "]\n"
    "      decoder: UperNetDecoder\n"
    "      decoder_channels: 256\n"
    "      head_dropout: 0.1\n"
    "      num_classes: %d\n"
    "    loss: ce\n"
    "    ignore_index: -1\n"
    "    freeze_backbone: true\n"
    "    freeze_decoder: false\n"
    "optimizer:\n"
    "  class_path: torch.optim.AdamW\n"
    "  init_args:\n"
    "    lr: 1.0e-3\n"
    "    weight_decay: 0.05\n",
    max_value + 1);
  return g_string_free (out, FALSE);
}

/* The checks before anything is written. */

static gboolean
check_target (LodeStore *store, const char *root, GPtrArray *patches, GError **error)
{
  g_autoptr(GHashTable) sources = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autofree char *dataset = lode_store_get_meta (store, "dataset_root");
  GHashTableIter iter;
  gpointer key;

  if (g_file_test (root, G_FILE_TEST_EXISTS) && !g_file_test (root, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, LODE_EXPORT_ERROR, LODE_EXPORT_ERROR_TARGET,
                   _("“%s” is not a folder"), root);
      return FALSE;
    }
  if (dataset != NULL)
    g_hash_table_add (sources, canonical_path (dataset));
  for (guint i = 0; i < patches->len; i++)
    {
      const LodePatch *p = g_ptr_array_index (patches, i);
      const char *files[2] = { p->image_path, p->mask_path };

      for (int f = 0; f < 2; f++)
        if (files[f] != NULL)
          {
            g_autofree char *path = lode_store_resolve_path (store, files[f]);
            g_autofree char *folder = g_path_get_dirname (path);

            if (!g_hash_table_contains (sources, folder))
              g_hash_table_add (sources, canonical_path (folder));
          }
    }
  g_hash_table_iter_init (&iter, sources);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    if (path_within (root, key) || path_within (key, root))
      {
        g_set_error (error, LODE_EXPORT_ERROR, LODE_EXPORT_ERROR_TARGET,
                     _("Refusing to export into “%s”: it overlaps the data set folder “%s”; choose a folder outside the data set"),
                     root, (const char *) key);
        return FALSE;
      }
  return TRUE;
}

/* The manifest. */

static void
add_class_pixels (JsonBuilder *b, const LodeClassTable *classes, const guint64 *counts)
{
  json_builder_begin_object (b);
  for (guint c = 0; c < lode_class_table_size (classes); c++)
    {
      const LodeClass *cls = lode_class_table_get (classes, c);

      json_builder_set_member_name (b, cls->name);
      json_builder_add_int_value (b, (gint64) counts[cls->id]);
    }
  json_builder_set_member_name (b, "nodata");
  json_builder_add_int_value (b, (gint64) counts[LODE_MASK_NODATA]);
  json_builder_end_object (b);
}

typedef struct
{
  char   *name;
  double  percent;
  char   *split;
  int     year;
} SplitEntry;

static void
split_entry_free (gpointer data)
{
  SplitEntry *e = data;

  g_free (e->name);
  g_free (e->split);
  g_free (e);
}

static gboolean
write_splits (ExportContext *ctx, GPtrArray *entries, GError **error)
{
  g_autoptr(GArray) years = g_array_new (FALSE, FALSE, sizeof (int));

  for (guint i = 0; i < entries->len; i++)
    {
      const SplitEntry *e = g_ptr_array_index (entries, i);
      gboolean seen = FALSE;

      for (guint y = 0; y < years->len; y++)
        seen |= g_array_index (years, int, y) == e->year;
      if (!seen)
        g_array_append_val (years, e->year);
    }
  for (guint y = 0; y < years->len; y++)
    {
      int year = g_array_index (years, int, y);
      g_autofree LodeSplitRow *rows = g_new0 (LodeSplitRow, MAX (entries->len, 1));
      g_autofree char *csv = NULL;
      g_autofree char *name = g_strdup_printf ("train_test_splits_%d.csv", year);
      guint n = 0;

      for (guint i = 0; i < entries->len; i++)
        {
          const SplitEntry *e = g_ptr_array_index (entries, i);

          if (e->year != year)
            continue;
          rows[n].patch_name = e->name;
          rows[n].percent = e->percent;
          rows[n].split = e->split;
          n++;
        }
      csv = lode_splits_to_csv (rows, n);
      if (!write_text (ctx, "data_splits", name, csv, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
export_patch (ExportContext *ctx, const LodePatch *patch, JsonBuilder *manifest,
              GPtrArray *split_entries, guint64 *class_totals, int *max_bands, GError **error)
{
  const LodeExportOptions *options = ctx->options;
  g_autoptr(GBytes) blob = NULL;
  g_autoptr(GBytes) original_blob = NULL;
  g_autoptr(LodeMask) mask = NULL;
  g_autoptr(LodeMask) original = NULL;
  g_autoptr(GPtrArray) revisions = NULL;
  g_autoptr(GPtrArray) reviews = NULL;
  g_autofree guint8 *values = NULL;
  g_autofree char *mask_rel = NULL;
  guint64 counts[256] = { 0 };
  guint64 changed = 0;
  gint64 revision = 0;
  gsize n;
  int mining;
  const char *reviewer = NULL;

  blob = lode_store_get_mask (ctx->store, patch->id, 0, &revision, error);
  if (blob == NULL)
    {
      if (error != NULL && *error != NULL)
        return FALSE;
      ctx->report->n_without_mask++;
      return TRUE;
    }
  if (options->accepted_only && patch->state != LODE_REVIEW_ACCEPTED)
    {
      ctx->report->n_not_accepted++;
      return TRUE;
    }
  mask = lode_mask_deserialize (blob, error);
  if (mask == NULL)
    return FALSE;
  if (mask->width != patch->width || mask->height != patch->height)
    {
      g_set_error (error, LODE_EXPORT_ERROR, LODE_EXPORT_ERROR_SOURCE,
                   _("The mask of patch %s (%d) is %d × %d pixels, its image %d × %d"),
                   patch->tile_id, patch->year, mask->width, mask->height, patch->width, patch->height);
      return FALSE;
    }
  n = (gsize) mask->width * mask->height;
  original_blob = lode_store_get_original_mask (ctx->store, patch->id, error);
  if (original_blob == NULL && error != NULL && *error != NULL)
    return FALSE;
  if (original_blob != NULL)
    {
      original = lode_mask_deserialize (original_blob, error);
      if (original == NULL)
        return FALSE;
    }
  for (gsize i = 0; i < n; i++)
    {
      if (original != NULL && original->width == mask->width && original->height == mask->height)
        changed += original->data[i] != mask->data[i];
      else if (original == NULL)
        changed += mask->data[i] != 0 && mask->data[i] != LODE_MASK_NODATA;
    }
  if (original != NULL && (original->width != mask->width || original->height != mask->height))
    changed = n;
  lode_mask_count (mask, counts);
  for (int c = 0; c < 256; c++)
    class_totals[c] += counts[c];
  revisions = lode_store_list_revisions (ctx->store, patch->id, error);
  if (revisions == NULL)
    return FALSE;
  reviews = lode_store_list_reviews (ctx->store, patch->id, error);
  if (reviews == NULL)
    return FALSE;
  if (reviews->len > 0)
    reviewer = ((LodeReview *) g_ptr_array_index (reviews, reviews->len - 1))->reviewer;

  ctx->report->n_exported++;
  ctx->report->changed_pixels += changed;
  if (changed > 0)
    ctx->report->n_changed++;
  *max_bands = MAX (*max_bands, patch->n_bands);

  values = g_new (guint8, n);
  lode_mask_to_export (mask, ctx->classes, values, EXPORT_NODATA);
  mask_rel = lode_export_mask_path (patch, ctx->layout);

  if ((options->formats & LODE_EXPORT_MASKS) && !write_mask_file (ctx, patch, values, mask_rel, error))
    return FALSE;
  if ((options->formats & LODE_EXPORT_GPKG) && !gpkg_add_patch (ctx, patch, mask, error))
    return FALSE;
  if ((options->formats & LODE_EXPORT_TERRATORCH) && patch->split != NULL)
    {
      const char *folder = g_str_equal (patch->split, "train") ? "training" : "validation";
      g_autofree char *stem = patch_stem (patch);
      g_autofree char *img_name = g_strdup_printf ("%s_IMG.tif", stem);
      g_autofree char *mask_name = g_strdup_printf ("%s_MASK.tif", stem);
      g_autofree char *img_rel = g_build_filename ("terratorch", folder, img_name, NULL);
      g_autofree char *tt_mask_rel = g_build_filename ("terratorch", folder, mask_name, NULL);

      if (!write_terratorch_image (ctx, patch, img_rel, error)
          || !write_mask_file (ctx, patch, values, tt_mask_rel, error))
        return FALSE;
    }

  mining = lode_stats_find_class (ctx->classes, "Mining");
  if (patch->split != NULL && patch->year != 0)
    {
      SplitEntry *e = g_new0 (SplitEntry, 1);
      guint64 valid = n - counts[LODE_MASK_NODATA];

      e->name = g_strdup_printf ("MASK_%s_%d.tif", patch->tile_id, patch->year);
      e->percent = lode_splits_percent (mining >= 0 ? counts[mining] : 0, valid);
      e->split = g_strdup (patch->split);
      e->year = patch->year;
      g_ptr_array_add (split_entries, e);
    }

  json_builder_begin_object (manifest);
  json_builder_set_member_name (manifest, "tile");
  json_builder_add_string_value (manifest, patch->tile_id);
  json_builder_set_member_name (manifest, "year");
  json_builder_add_int_value (manifest, patch->year);
  json_builder_set_member_name (manifest, "mask");
  json_builder_add_string_value (manifest, mask_rel);
  json_builder_set_member_name (manifest, "split");
  if (patch->split)
    json_builder_add_string_value (manifest, patch->split);
  else
    json_builder_add_null_value (manifest);
  json_builder_set_member_name (manifest, "state");
  json_builder_add_string_value (manifest, lode_review_state_id (patch->state));
  json_builder_set_member_name (manifest, "reviewer");
  if (reviewer != NULL)
    json_builder_add_string_value (manifest, reviewer);
  else
    json_builder_add_null_value (manifest);
  json_builder_set_member_name (manifest, "revisions");
  json_builder_add_int_value (manifest, revisions->len);
  json_builder_set_member_name (manifest, "revision_id");
  json_builder_add_int_value (manifest, revision);
  json_builder_set_member_name (manifest, "has_original");
  json_builder_add_boolean_value (manifest, original != NULL);
  json_builder_set_member_name (manifest, "changed_pixels");
  json_builder_add_int_value (manifest, (gint64) changed);
  json_builder_set_member_name (manifest, "class_pixels");
  add_class_pixels (manifest, ctx->classes, counts);
  json_builder_end_object (manifest);
  return TRUE;
}

static char *
manifest_text (ExportContext *ctx, JsonBuilder *patches_builder, const guint64 *class_totals,
               const guint *states)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autoptr(JsonNode) patches = json_builder_get_root (patches_builder);
  g_autofree char *classes_json = lode_class_table_to_json (ctx->classes);
  g_autoptr(JsonNode) classes = json_from_string (classes_json, NULL);
  g_autoptr(GDateTime) now = g_date_time_new_now_utc ();
  g_autofree char *time = g_date_time_format_iso8601 (now);
  const LodeExportReport *r = ctx->report;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "lode_version");
  json_builder_add_string_value (b, lode_version_string ());
  json_builder_set_member_name (b, "project_format");
  json_builder_add_int_value (b, lode_store_format_version ());
  json_builder_set_member_name (b, "created");
  json_builder_add_string_value (b, time);
  json_builder_set_member_name (b, "project");
  json_builder_add_string_value (b, lode_store_get_path (ctx->store));
  json_builder_set_member_name (b, "layout");
  json_builder_add_string_value (b, ctx->layout ? ctx->layout : "");
  json_builder_set_member_name (b, "accepted_only");
  json_builder_add_boolean_value (b, ctx->options->accepted_only);

  json_builder_set_member_name (b, "counts");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "patches");
  json_builder_add_int_value (b, r->n_exported);
  json_builder_set_member_name (b, "without_mask");
  json_builder_add_int_value (b, r->n_without_mask);
  json_builder_set_member_name (b, "not_accepted");
  json_builder_add_int_value (b, r->n_not_accepted);
  json_builder_set_member_name (b, "states");
  json_builder_begin_object (b);
  for (int s = 0; s < LODE_REVIEW_N_STATES; s++)
    {
      json_builder_set_member_name (b, lode_review_state_id (s));
      json_builder_add_int_value (b, states[s]);
    }
  json_builder_end_object (b);
  json_builder_end_object (b);

  json_builder_set_member_name (b, "class_pixels");
  add_class_pixels (b, ctx->classes, class_totals);

  json_builder_set_member_name (b, "changes");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "patches_changed");
  json_builder_add_int_value (b, r->n_changed);
  json_builder_set_member_name (b, "pixels_changed");
  json_builder_add_int_value (b, (gint64) r->changed_pixels);
  json_builder_end_object (b);

  json_builder_set_member_name (b, "classes");
  json_builder_add_value (b, g_steal_pointer (&classes));
  json_builder_set_member_name (b, "patches");
  json_builder_add_value (b, g_steal_pointer (&patches));
  json_builder_end_object (b);

  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  json_generator_set_pretty (gen, TRUE);
  return json_generator_to_data (gen, NULL);
}

static void
export_context_clear (ExportContext *ctx)
{
  if (ctx->gpkg != NULL)
    GDALClose (ctx->gpkg);
  if (ctx->gpkg_tmp != NULL)
    {
      g_autofree char *journal = g_strconcat (ctx->gpkg_tmp, "-journal", NULL);
      g_unlink (ctx->gpkg_tmp);
      g_unlink (journal);
    }
  if (ctx->scratch != NULL)
    GDALClose (ctx->scratch);
  if (ctx->to_layer != NULL)
    OCTDestroyCoordinateTransformation (ctx->to_layer);
  if (ctx->layer_srs != NULL)
    OSRDestroySpatialReference (ctx->layer_srs);
  g_free (ctx->gpkg_tmp);
  g_free (ctx->last_wkt);
  g_free (ctx->gdal_error);
  g_free (ctx->layout);
  g_free (ctx->root);
  g_clear_pointer (&ctx->made, g_hash_table_unref);
  g_clear_pointer (&ctx->classes, lode_class_table_free);
}

gboolean
lode_export_run (LodeStore               *store,
                 const char              *dir,
                 const LodeExportOptions *options,
                 LodeExportReport        *report,
                 LodeProgressFunc         progress,
                 gpointer                 user_data,
                 GCancellable            *cancellable,
                 GError                 **error)
{
  ExportContext ctx = { 0 };
  LodeExportOptions defaults;
  LodeExportReport local_report = { 0 };
  g_autoptr(GPtrArray) patches = NULL;
  g_autoptr(GPtrArray) split_entries = g_ptr_array_new_with_free_func (split_entry_free);
  g_autoptr(JsonBuilder) manifest = json_builder_new ();
  g_autofree char *classes_json = NULL;
  guint64 class_totals[256] = { 0 };
  guint states[LODE_REVIEW_N_STATES] = { 0 };
  int max_bands = 0;
  gboolean ok = TRUE;

  g_return_val_if_fail (store != NULL && dir != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (options == NULL)
    {
      lode_export_options_init (&defaults);
      options = &defaults;
    }
  if (report == NULL)
    report = &local_report;
  memset (report, 0, sizeof *report);
  if ((options->formats & LODE_EXPORT_ALL_FORMATS) == 0)
    {
      g_set_error (error, LODE_EXPORT_ERROR, LODE_EXPORT_ERROR_INVALID, _("No export format was given"));
      return FALSE;
    }

  classes_json = lode_store_get_class_table_json (store);
  ctx.classes = classes_json ? lode_class_table_from_json (classes_json, error) : lode_class_table_new_binary ();
  if (ctx.classes == NULL)
    return FALSE;
  patches = lode_store_list_patches (store, error);
  if (patches == NULL)
    {
      export_context_clear (&ctx);
      return FALSE;
    }
  ctx.store = store;
  ctx.options = options;
  ctx.report = report;
  ctx.layout = lode_store_get_meta (store, "layout");
  ctx.root = canonical_path (dir);
  ctx.made = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  if (!check_target (store, ctx.root, patches, error) || !ensure_folder (&ctx, ".", error))
    {
      export_context_clear (&ctx);
      return FALSE;
    }

  /* GDAL is registered by lode_raster_open; do it here for an export that
   * reads no raster first. */
  GDALAllRegister ();
  CPLPushErrorHandlerEx (collect_gdal_error, &ctx);
  if (options->formats & LODE_EXPORT_GPKG)
    ok = gpkg_open (&ctx, error);

  json_builder_begin_array (manifest);
  for (guint i = 0; i < patches->len && ok; i++)
    {
      const LodePatch *patch = g_ptr_array_index (patches, i);
      guint before = report->n_exported;

      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        {
          ok = FALSE;
          break;
        }
      ok = export_patch (&ctx, patch, manifest, split_entries, class_totals, &max_bands, error);
      if (report->n_exported > before)
        states[patch->state]++;
      if (progress != NULL && (i % 8 == 0 || i + 1 == patches->len))
        progress (0.95 * (i + 1) / patches->len, _("Exporting patches"), user_data);
    }
  json_builder_end_array (manifest);

  if (options->formats & LODE_EXPORT_GPKG)
    ok = gpkg_finish (&ctx, ok, ok ? error : NULL);
  if (ok && (options->formats & LODE_EXPORT_SPLITS))
    ok = write_splits (&ctx, split_entries, error);
  if (ok && (options->formats & LODE_EXPORT_TERRATORCH))
    {
      g_autofree char *config = terratorch_config (&ctx, max_bands);

      ok = write_text (&ctx, "terratorch", "config.yaml", config, error);
    }
  if (ok && (options->formats & LODE_EXPORT_MANIFEST))
    {
      g_autofree char *text = manifest_text (&ctx, manifest, class_totals, states);

      ok = write_text (&ctx, ".", "manifest.json", text, error);
    }
  CPLPopErrorHandler ();
  export_context_clear (&ctx);
  if (ok && progress != NULL)
    progress (1.0, _("Done"), user_data);
  return ok;
}
