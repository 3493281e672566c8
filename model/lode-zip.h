/* lode-zip.h: the part of zip reading libzip cannot do for Lode.
 *
 * libzip reads an archive through its central directory, which sits at the
 * end of the file; a download cut short has none. This walks the local
 * file headers from the start (as PyTorch writes them: stored entries,
 * sizes in data descriptors) to say exactly where such a file ends.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* TRUE, with LODE_CHECKPOINT_ERROR_TRUNCATED set, when the zip archive in
 * data[0..size) is cut short: its local headers run to the end of the file
 * without reaching a complete central directory. FALSE when it is not (the
 * damage lies elsewhere). display names the file in the message. */
gboolean lode_zip_check_truncated (const guint8  *data,
                                   gsize          size,
                                   const char    *display,
                                   GError       **error);

G_END_DECLS
