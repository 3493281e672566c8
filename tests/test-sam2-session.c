/* SAM2 on a project: the first click on a patch encodes it and keeps the
 * embedding in the project's cache; later clicks, and later sessions, read
 * it back; a damaged entry is computed again; the cache stays under its
 * bound. Random weights in the tiny layout at input size 512. */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>

#include "lode-bench-sam2.h"
#include "lode-cli-progress.h"
#include "lode-demo.h"
#include "lode-sam2-config.h"
#include "lode-sam2-session.h"
#include "lode-test-util.h"

static void
test_cache (void)
{
  g_autofree char *dir = lode_test_mkdtemp ();
  g_autofree char *ckpt = g_build_filename (dir, "random-tiny.safetensors", NULL);
  g_autofree char *project = g_build_filename (dir, "demo.lode", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) store = NULL;
  g_autoptr(GPtrArray) patches = NULL;
  g_autoptr(LodeSam2Session) session = NULL;
  g_autoptr(LodeSam2Embedding) first = NULL;
  g_autoptr(LodeSam2Embedding) again = NULL;
  g_autoptr(LodeRaster) raster = NULL;
  g_autofree char *image = NULL;
  g_autofree char *cache_dir = NULL;
  LodeSam2Config cfg;
  LodeDemoOptions demo;
  LodeImportOptions import;
  LodeCompositeSpec spec;
  const LodePatch *p;
  gboolean from_cache = TRUE;
  guint64 one;

  g_assert_true (lode_sam2_config_init_size (&cfg, "tiny"));
  g_assert_true (lode_sam2_write_random_checkpoint (&cfg, ckpt, &error));
  g_assert_no_error (error);

  lode_demo_options_init (&demo);
  demo.n_tiles = 2;
  demo.size = 32;
  g_assert_true (lode_demo_write (dir, &demo, NULL, NULL, NULL, &error));
  lode_import_options_init (&import);
  g_assert_true (lode_cli_import_into (project, dir, &import, TRUE, &error));
  g_assert_no_error (error);

  store = lode_store_open (project, FALSE, &error);
  patches = lode_store_list_patches (store, &error);
  g_assert_no_error (error);
  p = g_ptr_array_index (patches, 0);
  image = lode_store_resolve_path (store, p->image_path);
  raster = lode_raster_open (image, &error);
  g_assert_no_error (error);
  lode_composite_spec_init (&spec, LODE_COMPOSITE_TRUE_COLOUR);

  session = lode_sam2_session_new (ckpt, 512, &error);
  g_assert_no_error (error);
  g_assert_nonnull (strstr (lode_sam2_session_model_key (session), "tiny-512-"));

  /* First time: encoded and kept. */
  first = lode_sam2_session_embed (session, store, p->id, raster, &spec, 0, &from_cache, NULL, &error);
  g_assert_no_error (error);
  g_assert_false (from_cache);
  g_assert_cmpint (first->image_size, ==, 512);
  one = lode_store_cache_total_bytes (store);
  g_assert_cmpuint (one, ==, lode_sam2_embedding_bytes (first));
  cache_dir = lode_sam2_cache_dir (store);
  g_assert_true (g_str_has_prefix (cache_dir, project));
  g_assert_true (g_file_test (cache_dir, G_FILE_TEST_IS_DIR));

  /* Second time: read back, the same numbers. */
  again = lode_sam2_session_embed (session, store, p->id, raster, &spec, 0, &from_cache, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (from_cache);
  g_assert_cmpmem (first->image_embed, (gsize) first->d_model * first->embed_size * first->embed_size * sizeof (float),
                   again->image_embed, (gsize) again->d_model * again->embed_size * again->embed_size * sizeof (float));
  g_clear_pointer (&again, lode_sam2_embedding_free);

  /* Another composite is another entry. */
  {
    LodeCompositeSpec nir;
    g_autoptr(LodeSam2Embedding) e = NULL;

    lode_composite_spec_init (&nir, LODE_COMPOSITE_NIR);
    e = lode_sam2_session_embed (session, store, p->id, raster, &nir, 0, &from_cache, NULL, &error);
    g_assert_no_error (error);
    g_assert_false (from_cache);
    g_assert_cmpuint (lode_store_cache_total_bytes (store), ==, 2 * one);
  }

  /* A damaged file is computed again, not trusted. */
  {
    g_autofree char *key = NULL;
    g_autofree char *composite = NULL;
    g_autofree char *path = NULL;
    LodeCompositeSpec resolved = spec;

    g_assert_true (lode_composite_resolve (&resolved, raster, &error));
    composite = lode_sam2_composite_key (&resolved);
    key = lode_store_cache_key (p->id, composite, lode_sam2_session_model_key (session), 512);
    path = lode_store_cache_lookup (store, key);
    g_assert_nonnull (path);
    g_assert_true (g_file_set_contents (path, "garbage", -1, NULL));
    again = lode_sam2_session_embed (session, store, p->id, raster, &spec, 0, &from_cache, NULL, &error);
    g_assert_no_error (error);
    g_assert_false (from_cache);
    g_assert_cmpmem (first->image_embed, 64, again->image_embed, 64);
  }

  /* A bound of one embedding: the least recently used goes, file and all. */
  {
    const LodePatch *q = g_ptr_array_index (patches, 1);
    g_autofree char *image2 = lode_store_resolve_path (store, q->image_path);
    g_autoptr(LodeRaster) raster2 = lode_raster_open (image2, &error);
    g_autoptr(LodeSam2Embedding) e = NULL;
    g_autoptr(GDir) d = NULL;
    guint files = 0;

    e = lode_sam2_session_embed (session, store, q->id, raster2, &spec, one, &from_cache, NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (lode_store_cache_total_bytes (store), <=, one);
    d = g_dir_open (cache_dir, 0, NULL);
    while (g_dir_read_name (d) != NULL)
      files++;
    g_assert_cmpuint (files, ==, 1);
  }

  g_clear_pointer (&store, lode_store_close);
  lode_test_rmtree (dir);
}

static void
test_bad_checkpoint (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeSam2Session) session = lode_sam2_session_new ("/nonexistent/sam2.1_hiera_tiny.pt", 1024, &error);

  g_assert_null (session);
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "sam2.1_hiera_tiny.pt"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sam2-session/cache", test_cache);
  g_test_add_func ("/sam2-session/bad-checkpoint", test_bad_checkpoint);
  return g_test_run ();
}
