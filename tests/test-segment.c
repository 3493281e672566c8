/* lode segment and lode bench sam2 on the command line: usage errors exit 2
 * with a message naming the problem; a cut-short checkpoint exits 1 and
 * says so; no mask file is left behind on failure. --device: an unknown
 * name, or cuda on a machine without a CUDA device, exits 1 with the
 * reason, for segment, encode and bench sam2 alike. */
#include "config.h"

#include <string.h>

#include "lode-device.h"
#include "lode-test-util.h"

static char *
demo_image (const char *dir)
{
  const char *demo[] = { "demo", dir, "--tiles", "1", "--size", "64", NULL };
  char *path;

  g_assert_cmpint (lode_test_run_lode (demo, NULL, NULL), ==, 0);
  path = g_build_filename (dir, "SmallMinesDS", "2016", "IMAGE", "IMG_GH_0001_2016.tif", NULL);
  g_assert_true (g_file_test (path, G_FILE_TEST_IS_REGULAR));
  return path;
}

static void
expect (const char * const *args, int status, const char *needle)
{
  g_autofree char *err = NULL;

  g_assert_cmpint (lode_test_run_lode (args, NULL, &err), ==, status);
  if (strstr (err, needle) == NULL)
    g_error ("expected “%s” in: %s", needle, err);
}

static void
test_segment_errors (void)
{
  const char *shared = lode_test_shared_dir ();
  g_autofree char *dir = NULL, *image = NULL, *out = NULL, *truncated = NULL;

  if (shared == NULL)
    return;
  dir = lode_test_mkdtemp ();
  image = demo_image (dir);
  out = g_build_filename (dir, "mask.tif", NULL);
  truncated = g_build_filename (shared, "reference", "sam2", "sam2.1_hiera_tiny.truncated.pt", NULL);

  {
    const char *args[] = { "segment", "--image", image, NULL };
    expect (args, 2, "--checkpoint");
  }
  {
    const char *args[] = { "segment", "--checkpoint", truncated, "--image", image, "--out", out, NULL };
    expect (args, 2, "--point");
  }
  {
    const char *args[] = { "segment", "--checkpoint", truncated, "--image", image, "--out", out,
                           "--point", "12,x", NULL };
    expect (args, 2, "12,x");
  }
  {
    const char *args[] = { "segment", "--checkpoint", truncated, "--image", image, "--out", out,
                           "--point", "10,10,2", NULL };
    expect (args, 2, "LABEL");
  }
  {
    const char *args[] = { "segment", "--checkpoint", truncated, "--image", image, "--out", out,
                           "--box", "50,10,20,40", NULL };
    expect (args, 2, "--box");
  }
  {
    const char *args[] = { "segment", "--checkpoint", truncated, "--image", image, "--out", out,
                           "--point", "10,10", "--size", "700", NULL };
    expect (args, 2, "700");
  }
  {
    const char *args[] = { "segment", "--checkpoint", truncated, "--image", image, "--out", out,
                           "--point", "100,10", NULL };
    expect (args, 2, "outside");
  }
  {
    const char *args[] = { "segment", "--checkpoint", truncated, "--image", image, "--out", out,
                           "--point", "10,10", "--composite", "ultraviolet", NULL };
    expect (args, 2, "ultraviolet");
  }
  {
    /* an interrupted download: said plainly, nothing written */
    const char *args[] = { "segment", "--checkpoint", truncated, "--image", image, "--out", out,
                           "--point", "10,10", NULL };
    expect (args, 1, "cut short");
    g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
  }
  {
    const char *args[] = { "segment", "--checkpoint", image, "--image", image, "--out", out,
                           "--point", "10,10", NULL };
    expect (args, 1, image);
    g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
  }
  lode_test_rmtree (dir);
}

static void
test_bench_errors (void)
{
  {
    const char *args[] = { "bench", "nothing", NULL };
    expect (args, 2, "nothing");
  }
  {
    const char *args[] = { "bench", "sam2", "--size", "300", NULL };
    expect (args, 2, "300");
  }
  {
    const char *args[] = { "bench", "sam2", "--checkpoint", "/nonexistent/sam2.pt", "--size", "512", NULL };
    expect (args, 1, "/nonexistent/sam2.pt");
  }
}

/* The device is checked before any file is read, so the paths need not
 * exist: the message must be about the device. */
static void
test_device_errors (void)
{
  {
    const char *args[] = { "segment", "--checkpoint", "/nonexistent/sam2.pt", "--image", "/nonexistent/i.tif",
                           "--out", "/nonexistent/m.tif", "--point", "1,1", "--device", "tpu", NULL };
    expect (args, 1, "tpu");
  }
  {
    const char *args[] = { "encode", "--checkpoint", "/nonexistent/sam2.pt", "--device", "tpu",
                           "/nonexistent/p.lode", NULL };
    expect (args, 1, "tpu");
  }
  {
    const char *args[] = { "bench", "sam2", "--device", "tpu", NULL };
    expect (args, 1, "tpu");
  }
  if (lode_device_cuda_count () > 0)
    {
      g_test_message ("a CUDA device is present: cuda is available, its absence not testable here");
      return;
    }
  {
    const char *args[] = { "segment", "--checkpoint", "/nonexistent/sam2.pt", "--image", "/nonexistent/i.tif",
                           "--out", "/nonexistent/m.tif", "--point", "1,1", "--device", "cuda", NULL };
    expect (args, 1, "CUDA");
  }
  {
    const char *args[] = { "encode", "--checkpoint", "/nonexistent/sam2.pt", "--device", "cuda",
                           "/nonexistent/p.lode", NULL };
    expect (args, 1, "CUDA");
  }
  {
    const char *args[] = { "bench", "sam2", "--device", "cuda", "--size", "512", NULL };
    expect (args, 1, "CUDA");
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/segment/errors", test_segment_errors);
  g_test_add_func ("/segment/bench-errors", test_bench_errors);
  g_test_add_func ("/segment/device-errors", test_device_errors);
  return g_test_run ();
}
