/* lode-version.h: the version of the project file format and of Lode itself. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

const char *lode_version_string (void);

G_END_DECLS
