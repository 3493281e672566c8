#define G_LOG_DOMAIN "lode"

#include "config.h"

#include <glib/gi18n.h>

#include "lode-cli-progress.h"
#include "lode-commands.h"
#include "lode-device.h"
#include "lode-sam2-session.h"

/* lode encode: computes the SAM2 embedding of every patch ahead of time, so
 * the first click on each is fast. */
int
lode_cmd_encode (int argc, char **argv)
{
  g_autofree char *checkpoint = NULL;
  g_autofree char *composite = NULL;
  g_autofree char *device = NULL;
  int size = 1024;
  int cache_mb = (int) (LODE_SAM2_CACHE_DEFAULT_BYTES >> 20);
  g_auto(GStrv) rest = NULL;
  g_autoptr(GError) error = NULL;
  const GOptionEntry entries[] = {
    { "checkpoint", 'c', 0, G_OPTION_ARG_FILENAME, &checkpoint, N_("SAM2.1 checkpoint (sam2.1_hiera_*.pt)"), N_("FILE") },
    { "size", 0, 0, G_OPTION_ARG_INT, &size, N_("Input size of the model: 1024 (its own) or 512 (faster)"), N_("PIXELS") },
    { "composite", 0, 0, G_OPTION_ARG_STRING, &composite, N_("Composite shown to the model (default true-colour)"), N_("NAME") },
    { "cache-mb", 0, 0, G_OPTION_ARG_INT, &cache_mb, N_("Bound of the embedding cache in MiB (default 2048)"), N_("MIB") },
    { "device", 0, 0, G_OPTION_ARG_STRING, &device, N_("cpu, cuda or auto (default)"), N_("DEVICE") },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &rest, NULL, N_("PROJECT.lode") },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (_("PROJECT.lode"));
  g_autoptr(LodeStore) store = NULL;
  g_autoptr(LodeSam2Session) session = NULL;
  g_autoptr(GPtrArray) patches = NULL;
  LodeCompositeSpec spec;
  LodeCompositePreset preset = LODE_COMPOSITE_TRUE_COLOUR;
  guint encoded = 0, cached = 0, failed = 0;
  gint64 start;

  g_option_context_set_summary (context,
    _("Compute the SAM2 embedding of every patch of the project and keep it in\n"
      "the project's cache (PROJECT.lode.cache), so that clicks answer at once."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!lode_cli_parse (context, &argc, &argv))
    return LODE_EXIT_USAGE;
  if (rest == NULL || g_strv_length (rest) != 1)
    {
      lode_cli_error ("encode", _("expected one project file"));
      return LODE_EXIT_USAGE;
    }
  if (checkpoint == NULL)
    {
      lode_cli_error ("encode", _("--checkpoint is required: a SAM2.1 checkpoint you downloaded"));
      return LODE_EXIT_USAGE;
    }
  if (size != 1024 && size != 512)
    {
      lode_cli_error ("encode", _("--size must be 1024 or 512"));
      return LODE_EXIT_USAGE;
    }
  if (cache_mb < 1)
    {
      lode_cli_error ("encode", _("--cache-mb must be at least 1"));
      return LODE_EXIT_USAGE;
    }
  if (composite != NULL && !lode_composite_preset_from_id (composite, &preset))
    {
      lode_cli_error ("encode", _("unknown composite “%s”"), composite);
      return LODE_EXIT_USAGE;
    }
  if (preset == LODE_COMPOSITE_CUSTOM)
    {
      lode_cli_error ("encode", _("the custom composite needs its bands chosen in the window"));
      return LODE_EXIT_USAGE;
    }
  /* the image encoder's device: an unknown name or cuda without a device
   * ends here, before the project is opened */
  lode_device_choose (device, &error);
  if (error != NULL)
    {
      lode_cli_error ("encode", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }
  lode_composite_spec_init (&spec, preset);

  store = lode_cli_open_project ("encode", rest[0]);
  if (store == NULL)
    return LODE_EXIT_FAILURE;
  session = lode_sam2_session_new (checkpoint, size, &error);
  if (session != NULL
      && !lode_sam2_predictor_set_device (lode_sam2_session_get_predictor (session), device, &error))
    g_clear_pointer (&session, lode_sam2_session_free);
  if (session == NULL)
    {
      lode_cli_error ("encode", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }
  patches = lode_store_list_patches (store, &error);
  if (patches == NULL)
    {
      lode_cli_error ("encode", "%s", error->message);
      return LODE_EXIT_FAILURE;
    }

  start = g_get_monotonic_time ();
  for (guint i = 0; i < patches->len; i++)
    {
      const LodePatch *p = g_ptr_array_index (patches, i);
      g_autofree char *path = lode_store_resolve_path (store, p->image_path);
      g_autoptr(LodeRaster) raster = NULL;
      g_autoptr(LodeSam2Embedding) embedding = NULL;
      g_autoptr(GError) local = NULL;
      gboolean from_cache = FALSE;

      raster = lode_raster_open (path, &local);
      if (raster != NULL)
        embedding = lode_sam2_session_embed (session, store, p->id, raster, &spec,
                                             (guint64) cache_mb << 20, &from_cache, NULL, &local);
      if (embedding == NULL)
        {
          lode_cli_progress_end ();
          g_printerr (_("lode encode: tile %s of %d skipped: %s\n"), p->tile_id, p->year, local->message);
          failed++;
        }
      else if (from_cache)
        cached++;
      else
        encoded++;
      lode_cli_progress ((double) (i + 1) / patches->len, _("Encoding patches"), NULL);
    }
  lode_cli_progress_end ();
  g_print (_("Encoded %u patches and found %u in the cache in %.1f s; the cache holds %.1f MiB\n"),
           encoded, cached, (g_get_monotonic_time () - start) / 1e6,
           lode_store_cache_total_bytes (store) / (1024.0 * 1024.0));
  return failed == 0 ? LODE_EXIT_OK : LODE_EXIT_FAILURE;
}
