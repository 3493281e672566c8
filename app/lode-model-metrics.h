/* lode-model-metrics.h: what the training runs of app/ share about a model
 * version's metrics JSON (LodeModelVersion.metrics_json) and its name. */
#pragma once

#include <json-glib/json-glib.h>

#include "lode-store.h"

G_BEGIN_DECLS

/* Member name of b's current object set to v, null when v is not finite. */
void      lode_model_metrics_add_number (JsonBuilder *b,
                                         const char  *name,
                                         double       v);
/* From metrics_json (may be NULL), the numbers a and b of its "validation"
 * object into *va and *vb (NAN when absent or null). FALSE when the text
 * has no validation object, or lacks a when a_required. */
gboolean  lode_model_metrics_read_validation (const char *metrics_json,
                                              const char *a,
                                              gboolean    a_required,
                                              double     *va,
                                              const char *b,
                                              double     *vb);
/* "PREFIX-N-YYYYmmdd-HHMMSS", N the number the new version will have among
 * the store's. */
char     *lode_model_metrics_default_name (LodeStore  *store,
                                           const char *prefix);

G_END_DECLS
