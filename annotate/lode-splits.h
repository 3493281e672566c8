/* lode-splits.h: the official split files of SmallMinesDS.
 *
 * train_test_splits_YYYY.csv: "patch_name,class_percentage,bin,split", one
 * row per patch: MASK_TTTT_YYYY.tif, the mining share in percent rounded to
 * two decimals and printed as Python prints it (0.0, 3.94), its 10 % bin
 * ("0-10%" ... "90-100%") and train or test. Shared by the demo data set and
 * the export. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define LODE_SPLITS_N_BINS 10

typedef struct
{
  const char *patch_name;  /* MASK_0001_2016.tif */
  double      percent;     /* 0..100, rounded to two decimals */
  const char *split;       /* "train" or "test" */
} LodeSplitRow;

/* part / total in percent rounded to two decimals; 0 when total is 0. */
double  lode_splits_percent (guint64             part,
                             guint64             total);
/* The bin of a percentage: closed on the right, the first on both sides
 * (0.0 and 10.0 are bin 0, 10.01 is bin 1). */
int     lode_splits_bin     (double              percent);
/* The CSV text: train rows first, then test, each bin by bin, rows of a
 * bin in the order given. */
char   *lode_splits_to_csv  (const LodeSplitRow *rows,
                             guint               n_rows);

G_END_DECLS
