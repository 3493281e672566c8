/* Training on a project and pre-labelling it: a ResNet-18 U-Net trained for
 * two epochs on the patches of a small demo project (64 x 64) becomes a
 * model version with its metrics; pre-labelling adds model revisions, with
 * that version's id, to the patches chosen and passes over a patch edited
 * by hand, every earlier revision kept; cancelling adds nothing; a first
 * patch of a size the U-Net cannot take does not exclude the others; and the
 * commands `lode train unet --project` and `lode prelabel` with their errors
 * and exit codes. */
#include "config.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#include "lode-cli-progress.h"
#include "lode-demo.h"
#include "lode-mask.h"
#include "lode-prelabel.h"
#include "lode-store.h"
#include "lode-test-util.h"
#include "lode-train-project.h"

typedef struct
{
  char *tmp;
  char *project;
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;
  LodeDemoOptions demo;
  LodeImportOptions import;

  f->tmp = lode_test_mkdtemp ();
  dir = g_build_filename (f->tmp, "data", NULL);
  f->project = g_build_filename (f->tmp, "demo.lode", NULL);
  lode_demo_options_init (&demo);
  demo.n_tiles = 3;
  demo.size = 64;
  g_assert_true (lode_demo_write (dir, &demo, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  lode_import_options_init (&import);
  g_assert_true (lode_cli_import_into (f->project, dir, &import, TRUE, &error));
  g_assert_no_error (error);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  lode_test_rmtree (f->tmp);
  g_free (f->tmp);
  g_free (f->project);
}

static void
small_options (LodeTrainProjectOptions *o)
{
  lode_train_project_options_init (o);
  o->config.encoder = LODE_UNET_RESNET18;
  o->config.epochs = 2;
  o->config.batch_size = 2;
  g_strlcpy (o->config.device, "cpu", sizeof o->config.device);
}

static void
count_validations (const LodeTrainProgress *p, gpointer user_data)
{
  int *validations = user_data;

  if (p->metrics != NULL)
    {
      g_assert_cmpint (p->epoch, ==, *validations + 1);
      (*validations)++;
    }
}

/* The newest revision of a patch and how many it has. */
static LodeRevisionInfo *
latest_revision (LodeStore *store, gint64 patch_id, guint *n)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) revisions = lode_store_list_revisions (store, patch_id, &error);

  g_assert_no_error (error);
  g_assert_cmpuint (revisions->len, >, 0);
  if (n != NULL)
    *n = revisions->len;
  g_ptr_array_set_free_func (revisions, NULL);
  for (guint i = 0; i + 1 < revisions->len; i++)
    lode_revision_info_free (g_ptr_array_index (revisions, i));
  return g_ptr_array_index (revisions, revisions->len - 1);
}

static void
test_train_and_prelabel (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) store = NULL;
  g_autoptr(GPtrArray) patches = NULL;
  g_autoptr(LodeModelVersion) version = NULL;
  g_autoptr(LodeUnet) model = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autofree char *checkpoint = NULL;
  g_autofree guint *n_before = NULL;
  g_autofree gint64 *first_ids = NULL;
  LodeTrainProjectOptions options;
  LodeTrainProjectCounts counts;
  LodePrelabelReport report;
  LodeTrainConfig config;
  JsonObject *root;
  const LodePatch *edited, *accepted;
  double mining, mean;
  int validations = 0, n_classes;
  gint64 id;

  store = lode_store_open (f->project, FALSE, &error);
  g_assert_no_error (error);
  patches = lode_store_list_patches (store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (patches->len, ==, 6);

  /* A patch edited by hand (its mask all mining) and an accepted one. */
  edited = g_ptr_array_index (patches, 0);
  accepted = g_ptr_array_index (patches, 1);
  {
    g_autoptr(LodeMask) m = lode_mask_new (edited->width, edited->height);
    g_autoptr(GBytes) blob = NULL;
    memset (m->data, 1, (gsize) m->width * m->height);
    blob = lode_mask_serialize (m);
    g_assert_cmpint (lode_store_add_revision (store, edited->id, blob, LODE_REVISION_MANUAL, 0, "tester",
                                              NULL, &error), >, 0);
    g_assert_no_error (error);
  }
  g_assert_true (lode_store_set_review (store, accepted->id, LODE_REVIEW_ACCEPTED, "tester", NULL, &error));
  g_assert_no_error (error);
  n_before = g_new0 (guint, patches->len);
  first_ids = g_new0 (gint64, patches->len);
  for (guint i = 0; i < patches->len; i++)
    {
      const LodePatch *p = g_ptr_array_index (patches, i);
      g_autoptr(GPtrArray) revisions = lode_store_list_revisions (store, p->id, &error);
      g_assert_no_error (error);
      n_before[i] = revisions->len;
      first_ids[i] = ((LodeRevisionInfo *) g_ptr_array_index (revisions, 0))->id;
    }

  /* Training: two epochs, each validated; a model version with metrics. */
  small_options (&options);
  id = lode_train_project_run (f->project, &options, count_validations, &validations, &counts, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (id, >, 0);
  g_assert_cmpint (validations, ==, 2);
  g_assert_cmpuint (counts.train, >, 0);
  g_assert_cmpuint (counts.validation, >, 0);
  g_assert_cmpuint (counts.train + counts.validation + counts.left_out, ==, patches->len);

  version = lode_store_get_model_version (store, id, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version->kind, ==, LODE_MODEL_UNET);
  g_assert_nonnull (version->metrics_json);
  g_assert_true (lode_train_project_read_metrics (version->metrics_json, &mining, &mean));
  g_assert_true (mean >= 0 && mean <= 1);
  g_assert_true (json_parser_load_from_data (parser, version->metrics_json, -1, NULL));
  root = json_node_get_object (json_parser_get_root (parser));
  g_assert_cmpstr (json_object_get_string_member (root, "encoder"), ==, "resnet18");
  {
    g_autofree char *json = lode_store_get_class_table_json (store);
    g_autoptr(LodeClassTable) table = lode_class_table_from_json (json, &error);
    g_assert_no_error (error);
    n_classes = (int) lode_class_table_size (table);
    g_assert_cmpint (n_classes, >=, 2);
  }
  g_assert_cmpint (json_object_get_int_member (root, "classes"), ==, n_classes);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (root, "history")), ==, 2);
  g_assert_false (g_path_is_absolute (version->path));   /* beside the project: moves with it */
  checkpoint = lode_store_resolve_path (store, version->path);
  g_assert_true (g_file_test (checkpoint, G_FILE_TEST_IS_REGULAR));
  model = lode_train_checkpoint_load (checkpoint, &config, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (config.bands, ==, 6);
  g_assert_cmpint (config.classes, ==, n_classes);

  /* Pre-labelling the unlabelled patches: the accepted one is outside the
   * selection, the edited one passed over, the rest get a model revision. */
  g_assert_true (lode_prelabel_run (f->project, id, NULL, LODE_PRELABEL_UNLABELLED, FALSE, NULL, NULL,
                                    &report, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (report.total, ==, patches->len);
  g_assert_cmpuint (report.skipped, ==, 1);
  g_assert_cmpuint (report.edited, ==, 1);
  g_assert_cmpuint (report.failed, ==, 0);
  g_assert_cmpuint (report.labelled, ==, patches->len - 2);
  for (guint i = 0; i < patches->len; i++)
    {
      const LodePatch *p = g_ptr_array_index (patches, i);
      g_autoptr(LodeRevisionInfo) last = NULL;
      g_autoptr(GPtrArray) revisions = NULL;
      guint n;

      last = latest_revision (store, p->id, &n);
      revisions = lode_store_list_revisions (store, p->id, &error);
      g_assert_cmpint (((LodeRevisionInfo *) g_ptr_array_index (revisions, 0))->id, ==, first_ids[i]);
      if (p->id == edited->id)
        {
          g_assert_cmpuint (n, ==, n_before[i]);
          g_assert_cmpint (last->source, ==, LODE_REVISION_MANUAL);
        }
      else if (p->id == accepted->id)
        g_assert_cmpuint (n, ==, n_before[i]);
      else
        {
          g_autofree char *image = lode_store_resolve_path (store, p->image_path);
          g_autoptr(LodeRaster) raster = lode_raster_open (image, &error);
          g_autofree guint8 *expected = NULL;
          g_autoptr(GBytes) blob = NULL;
          g_autoptr(LodeMask) mask = NULL;

          g_assert_cmpuint (n, ==, n_before[i] + 1);
          g_assert_cmpint (last->source, ==, LODE_REVISION_MODEL);
          g_assert_cmpint (last->model_version_id, ==, id);
          /* The stored mask is the model's prediction (the ids are the indices here). */
          expected = lode_prelabel_predict (model, &config, raster, &error);
          g_assert_no_error (error);
          blob = lode_store_get_mask (store, p->id, 0, NULL, &error);
          mask = lode_mask_deserialize (blob, &error);
          g_assert_no_error (error);
          g_assert_cmpmem (mask->data, (gsize) mask->width * mask->height, expected,
                           (gsize) raster->width * raster->height);
        }
    }

  /* Asked to, the edited patch gets one too; its manual revision stays. */
  g_assert_true (lode_prelabel_run (f->project, id, NULL, LODE_PRELABEL_ALL, TRUE, NULL, NULL,
                                    &report, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (report.labelled, ==, patches->len);
  {
    g_autoptr(LodeRevisionInfo) last = NULL;
    g_autoptr(GPtrArray) revisions = lode_store_list_revisions (store, edited->id, &error);
    guint n;

    last = latest_revision (store, edited->id, &n);
    g_assert_cmpint (last->source, ==, LODE_REVISION_MODEL);
    g_assert_cmpuint (n, ==, n_before[0] + 1);
    g_assert_cmpint (((LodeRevisionInfo *) g_ptr_array_index (revisions, n - 2))->source, ==,
                     LODE_REVISION_MANUAL);
  }
}

static void
test_cancel_and_errors (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(LodeStore) store = NULL;
  g_autoptr(GPtrArray) versions = NULL;
  LodeTrainProjectOptions options;

  small_options (&options);
  g_cancellable_cancel (cancellable);
  g_assert_cmpint (lode_train_project_run (f->project, &options, NULL, NULL, NULL, cancellable, &error), ==, 0);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);

  /* No patch accepted: nothing to train on, said so. */
  options.accepted_only = TRUE;
  g_assert_cmpint (lode_train_project_run (f->project, &options, NULL, NULL, NULL, NULL, &error), ==, 0);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "demo.lode"));
  g_clear_error (&error);

  /* An unknown model version. */
  g_assert_false (lode_prelabel_run (f->project, 42, NULL, LODE_PRELABEL_ALL, FALSE, NULL, NULL, NULL, NULL,
                                     &error));
  g_assert_error (error, LODE_STORE_ERROR, LODE_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  store = lode_store_open (f->project, FALSE, &error);
  versions = lode_store_list_model_versions (store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (versions->len, ==, 0);
}

static int
run (const char * const *args, char **out, char **err)
{
  return lode_test_run_lode (args, out, err);
}

static void
test_cli (Fixture *f, gconstpointer data)
{
  g_autofree char *out = NULL, *err = NULL, *bogus = NULL, *ckpt = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(LodeStore) store = NULL;
  g_autoptr(GPtrArray) versions = NULL;
  g_autoptr(GPtrArray) patches = NULL;
  g_autoptr(LodeRevisionInfo) last = NULL;
  g_autofree char *missing = g_build_filename (f->tmp, "missing.lode", NULL);

  /* Usage errors: 2 */
  g_assert_cmpint (run ((const char *[]) { "prelabel", NULL }, NULL, &err), ==, 2);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run ((const char *[]) { "prelabel", f->project, NULL }, NULL, &err), ==, 2);
  g_assert_nonnull (strstr (err, "--model-version"));
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run ((const char *[]) { "prelabel", f->project, "--model-version", "1", "--checkpoint", "x",
                                           NULL }, NULL, &err), ==, 2);
  g_clear_pointer (&err, g_free);
  /* Failures: 1, naming what is wrong */
  g_assert_cmpint (run ((const char *[]) { "prelabel", missing, "-m", "1", NULL }, NULL, &err), ==, 1);
  g_assert_nonnull (strstr (err, "missing.lode"));
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run ((const char *[]) { "prelabel", f->project, "-m", "7", NULL }, NULL, &err), ==, 1);
  g_assert_nonnull (strstr (err, "7"));
  g_clear_pointer (&err, g_free);
  bogus = g_build_filename (f->tmp, "bogus.lode-unet", NULL);
  g_assert_true (g_file_set_contents (bogus, "not a checkpoint", -1, NULL));
  g_assert_cmpint (run ((const char *[]) { "prelabel", f->project, "--checkpoint", bogus, NULL }, NULL, &err), ==, 1);
  g_assert_nonnull (strstr (err, "bogus.lode-unet"));
  g_clear_pointer (&err, g_free);

  /* Training through the command adds a model version... */
  ckpt = g_build_filename (f->tmp, "cli.lode-unet", NULL);
  g_assert_cmpint (run ((const char *[]) { "train", "unet", "--project", f->project, "--encoder", "resnet18",
                                           "--epochs", "1", "--batch", "2", "--device", "cpu", "--out", ckpt,
                                           "--name", "from-cli", "-q", NULL }, &out, &err), ==, 0);
  g_assert_nonnull (strstr (out, "from-cli"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  store = lode_store_open (f->project, FALSE, &error);
  versions = lode_store_list_model_versions (store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (versions->len, ==, 1);
  g_assert_cmpstr (((LodeModelVersion *) g_ptr_array_index (versions, 0))->name, ==, "from-cli");
  g_assert_nonnull (((LodeModelVersion *) g_ptr_array_index (versions, 0))->metrics_json);
  g_clear_pointer (&versions, g_ptr_array_unref);

  /* ...and a checkpoint given as a file becomes one too, then pre-labels. */
  g_assert_cmpint (run ((const char *[]) { "prelabel", f->project, "--checkpoint", ckpt, "--only-unlabelled",
                                           "-q", NULL }, &out, &err), ==, 0);
  g_assert_nonnull (strstr (out, "6"));
  versions = lode_store_list_model_versions (store, &error);
  g_assert_cmpuint (versions->len, ==, 2);
  patches = lode_store_list_patches (store, &error);
  last = latest_revision (store, ((LodePatch *) g_ptr_array_index (patches, 0))->id, NULL);
  g_assert_cmpint (last->source, ==, LODE_REVISION_MODEL);
  g_assert_cmpint (last->model_version_id, ==, ((LodeModelVersion *) g_ptr_array_index (versions, 1))->id);
}

static void
cancel_at_first_step (const LodeTrainProgress *p, gpointer user_data)
{
  g_cancellable_cancel (user_data);
}

/* A patch whose sides the U-Net cannot take, listed first, is left out; it
 * does not set the size of the run and so leave out all the others. */
static void
test_odd_size_first (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(LodeStore) store = lode_store_open (f->project, FALSE, &error);
  g_autoptr(LodeMask) mask = lode_mask_new (40, 40);
  g_autoptr(GBytes) blob = lode_mask_serialize (mask);
  LodeTrainProjectCounts counts = { 0 };
  LodeTrainProjectOptions options;
  LodePatch odd = { 0 };
  gint64 id;

  g_assert_no_error (error);
  odd.tile_id = (char *) "0000";
  odd.year = 2016;
  odd.image_path = (char *) "0000-40.tif";
  odd.width = 40;
  odd.height = 40;
  odd.n_bands = 13;
  odd.split = (char *) "train";
  id = lode_store_add_patch (store, &odd, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lode_store_add_revision (store, id, blob, LODE_REVISION_MANUAL, 0, "test", NULL, &error), >, 0);
  g_assert_no_error (error);
  g_clear_pointer (&store, lode_store_close);

  /* Stopped at the first step: only the gathering is wanted here. */
  small_options (&options);
  g_assert_cmpint (lode_train_project_run (f->project, &options, cancel_at_first_step, cancellable, &counts,
                                           cancellable, &error), ==, 0);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_cmpuint (counts.train, >, 0);
  g_assert_cmpuint (counts.validation, >, 0);
  g_assert_cmpuint (counts.left_out, >=, 1);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/train-project/train-and-prelabel", Fixture, NULL, fixture_setup, test_train_and_prelabel,
              fixture_teardown);
  g_test_add ("/train-project/cancel-and-errors", Fixture, NULL, fixture_setup, test_cancel_and_errors,
              fixture_teardown);
  g_test_add ("/train-project/odd-size-first", Fixture, NULL, fixture_setup, test_odd_size_first,
              fixture_teardown);
  g_test_add ("/train-project/cli", Fixture, NULL, fixture_setup, test_cli, fixture_teardown);
  return g_test_run ();
}
