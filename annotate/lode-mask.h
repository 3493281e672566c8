/* lode-mask.h: a label mask, one class id per pixel.
 *
 * Row-major, width x height bytes; each byte is a class id of the project's
 * class table or LODE_MASK_NODATA for pixels outside the image's valid area,
 * which no edit ever paints. Masks cross the store as compact blobs
 * (lode_mask_serialize), and cross files through the class table's export
 * values (lode_mask_from_values, lode_mask_to_export). */
#pragma once

#include <glib.h>

#include "lode-classes.h"

G_BEGIN_DECLS

#define LODE_MASK_ERROR (lode_mask_error_quark ())
GQuark lode_mask_error_quark (void);

typedef enum {
  LODE_MASK_ERROR_UNKNOWN_VALUE,  /* a raster value no class exports to */
  LODE_MASK_ERROR_CORRUPT,        /* a blob that does not decode */
  LODE_MASK_ERROR_TOO_LARGE,      /* sizes past LODE_MASK_MAX_SIDE */
} LodeMaskError;

#define LODE_MASK_NODATA   255
#define LODE_MASK_MAX_SIDE 16384

typedef struct
{
  int     width;
  int     height;
  guint8 *data;
} LodeMask;

/* All pixels class 0. Sides from 1 to LODE_MASK_MAX_SIDE. */
LodeMask *lode_mask_new           (int                   width,
                                   int                   height);
LodeMask *lode_mask_copy          (const LodeMask       *m);
void      lode_mask_free          (LodeMask             *m);
gboolean  lode_mask_equal         (const LodeMask       *a,
                                   const LodeMask       *b);

/* Raster values to class ids through the table's export values; with
 * has_nodata, pixels equal to nodata (or NaN when nodata is NaN) become
 * LODE_MASK_NODATA. Values no class exports to are an error naming them and
 * how many pixels hold them. */
LodeMask *lode_mask_from_values   (const double         *values,
                                   int                   width,
                                   int                   height,
                                   const LodeClassTable *t,
                                   gboolean              has_nodata,
                                   double                nodata,
                                   GError              **error);
/* Class ids to export values in out (width x height bytes); nodata pixels
 * and ids absent from the table become nodata_out. */
void      lode_mask_to_export     (const LodeMask       *m,
                                   const LodeClassTable *t,
                                   guint8               *out,
                                   guint8                nodata_out);
/* counts[id] = pixels of that id (LODE_MASK_NODATA included). */
void      lode_mask_count         (const LodeMask       *m,
                                   guint64               counts[256]);
/* rgba: width x height x 4 bytes, straight alpha, the classes' colours;
 * background (id 0), nodata and ids absent from the table are transparent.
 * With outline, only pixels of a class on its region's boundary (a
 * 4-neighbour of another id, or the mask's edge) are drawn. */
void      lode_mask_render_rgba   (const LodeMask       *m,
                                   const LodeClassTable *t,
                                   gboolean              outline,
                                   guint8               *rgba);

/* Blob: "LMSK", version, width, height, header CRC-32 (little-endian 32-bit),
 * then a zlib stream of the pixels. Deserialisation checks every field, the zlib stream
 * and that nothing trails it. */
GBytes   *lode_mask_serialize     (const LodeMask       *m);
LodeMask *lode_mask_deserialize   (GBytes               *bytes,
                                   GError              **error);

/* The blob layout shared with lode-edit.c: a 4-byte magic, a 32-bit
 * version, n_fields 32-bit fields, the CRC-32 of those bytes, then a zlib
 * stream of the parts (whose own checksum covers them). */
GBytes   *lode_mask_blob_write    (const char           *magic,
                                   const guint32        *fields,
                                   guint                 n_fields,
                                   const guint8 * const *parts,
                                   const gsize          *part_sizes,
                                   guint                 n_parts);
gboolean  lode_mask_blob_read_header (GBytes            *bytes,
                                   const char           *magic,
                                   guint32              *fields,
                                   guint                 n_fields,
                                   GError              **error);
/* Inflates exactly size bytes (refusing sizes the stream cannot hold). */
guint8   *lode_mask_blob_inflate  (GBytes               *bytes,
                                   guint                 n_fields,
                                   gsize                 size,
                                   GError              **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeMask, lode_mask_free)

G_END_DECLS
