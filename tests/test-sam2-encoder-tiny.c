/* The SAM2.1 image encoder's parity test on the real tiny configuration at
 * 1024 (suite slow): test-sam2-encoder.c with only that case. */
#define LODE_TEST_SAM2_TINY 1
#include "test-sam2-encoder.c"
