/* lode-classes.h: the class table of a project.
 *
 * An ordered list of classes (the order is the display order). Ids are
 * unique and fit a mask pixel (0..254; 255 is LODE_MASK_NODATA); id 0 is the
 * background by convention. Each class has a value written on export and
 * read on import (0..255, unique), so that either encoding of a data set
 * (SmallMinesDS 0/1, the cocoa README's 1/2/3 or its code's 0/1/2) imports
 * and exports exactly. A locked class is never overwritten by an edit. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define LODE_CLASSES_ERROR (lode_classes_error_quark ())
GQuark lode_classes_error_quark (void);

typedef enum {
  LODE_CLASSES_ERROR_DUPLICATE,  /* id or export value already used */
  LODE_CLASSES_ERROR_INVALID,    /* bad id, value, name or colour */
  LODE_CLASSES_ERROR_NOT_FOUND,  /* no class with that id */
  LODE_CLASSES_ERROR_PARSE,      /* malformed JSON */
} LodeClassesError;

#define LODE_CLASS_NAME_MAX 256  /* bytes of UTF-8 */

typedef struct
{
  guint8   id;
  char    *name;
  guint8   rgba[4];       /* straight alpha */
  int      export_value;  /* 0..255 */
  gboolean locked;
} LodeClass;

typedef struct _LodeClassTable LodeClassTable;

LodeClassTable  *lode_class_table_new               (void);
/* SmallMinesDS: 0 "Not mining" (export 0), 1 "Mining" (export 1). */
LodeClassTable  *lode_class_table_new_binary        (void);
/* Cocoa companion, the code's encoding: 0 background, 1 mining, 2 cocoa,
 * exported as 0, 1, 2 (its README's 1/2/3 is a set_export_value away). */
LodeClassTable  *lode_class_table_new_cocoa         (void);
LodeClassTable  *lode_class_table_copy              (const LodeClassTable *t);
void             lode_class_table_free              (LodeClassTable       *t);
gboolean         lode_class_table_equal             (const LodeClassTable *a,
                                                     const LodeClassTable *b);

gboolean         lode_class_table_add               (LodeClassTable       *t,
                                                     guint8                id,
                                                     const char           *name,
                                                     const guint8          rgba[4],
                                                     int                   export_value,
                                                     GError              **error);
gboolean         lode_class_table_remove            (LodeClassTable       *t,
                                                     guint8                id);
guint            lode_class_table_size              (const LodeClassTable *t);
const LodeClass *lode_class_table_get               (const LodeClassTable *t,
                                                     guint                 index);
const LodeClass *lode_class_table_lookup            (const LodeClassTable *t,
                                                     guint8                id);
const LodeClass *lode_class_table_lookup_export     (const LodeClassTable *t,
                                                     int                   value);
/* FALSE for NULL tables and absent ids. */
gboolean         lode_class_table_is_locked         (const LodeClassTable *t,
                                                     guint8                id);

void             lode_class_table_set_locked        (LodeClassTable       *t,
                                                     guint8                id,
                                                     gboolean              locked);
gboolean         lode_class_table_set_export_value  (LodeClassTable       *t,
                                                     guint8                id,
                                                     int                   value,
                                                     GError              **error);
gboolean         lode_class_table_set_name          (LodeClassTable       *t,
                                                     guint8                id,
                                                     const char           *name,
                                                     GError              **error);
void             lode_class_table_set_colour        (LodeClassTable       *t,
                                                     guint8                id,
                                                     const guint8          rgba[4]);

/* {"version": 1, "classes": [{"id", "name", "rgba": [r, g, b, a],
 *   "export", "locked"}, ...]} */
char            *lode_class_table_to_json           (const LodeClassTable *t);
/* Bounded (at most 1 MiB of text) and validated like lode_class_table_add. */
LodeClassTable  *lode_class_table_from_json         (const char           *json,
                                                     GError              **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LodeClassTable, lode_class_table_free)

G_END_DECLS
