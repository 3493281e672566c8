#define G_LOG_DOMAIN "lode-annotate"

#include "config.h"
#include "lode-version.h"

const char *
lode_version_string (void)
{
  return PACKAGE_VERSION;
}
