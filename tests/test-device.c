/* Backend choice: cpu always works, unknown names are refused, cuda is
 * refused with a clear message where it cannot be had. */
#include "config.h"

#include <string.h>

#include "lode-device.h"

static void
test_choose_cpu (void)
{
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (lode_device_choose ("cpu", &error), ==, LODE_DEVICE_CPU);
  g_assert_no_error (error);
}

static void
test_choose_unknown (void)
{
  g_autoptr(GError) error = NULL;

  lode_device_choose ("tpu", &error);
  g_assert_error (error, LODE_DEVICE_ERROR, LODE_DEVICE_ERROR_UNKNOWN);
  g_assert_nonnull (strstr (error->message, "tpu"));
}

static void
test_choose_auto (void)
{
  g_autoptr(GError) error = NULL;
  LodeDeviceKind kind = lode_device_choose ("auto", &error);

  g_assert_no_error (error);
  /* auto picks CUDA exactly when a device is there. */
  g_assert_cmpint (kind == LODE_DEVICE_CUDA, ==, lode_device_cuda_count () > 0);
  g_assert_cmpint (lode_device_choose (NULL, NULL), ==, kind);
}

static void
test_choose_cuda (void)
{
  g_autoptr(GError) error = NULL;
  LodeDeviceKind kind = lode_device_choose ("cuda", &error);

  if (lode_device_cuda_count () > 0)
    {
      g_assert_no_error (error);
      g_assert_cmpint (kind, ==, LODE_DEVICE_CUDA);
    }
  else
    {
      g_assert_error (error, LODE_DEVICE_ERROR, LODE_DEVICE_ERROR_UNAVAILABLE);
      g_assert_cmpint (kind, ==, LODE_DEVICE_CPU);
    }
}

static void
test_describe (void)
{
  g_autofree char *cpu = lode_device_describe (LODE_DEVICE_CPU);

  g_assert_true (g_str_has_prefix (cpu, "CPU"));
  g_assert_cmpstr (lode_device_kind_name (LODE_DEVICE_CUDA), ==, "cuda");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/device/choose-cpu", test_choose_cpu);
  g_test_add_func ("/device/choose-unknown", test_choose_unknown);
  g_test_add_func ("/device/choose-auto", test_choose_auto);
  g_test_add_func ("/device/choose-cuda", test_choose_cuda);
  g_test_add_func ("/device/describe", test_describe);
  return g_test_run ();
}
