/* The kernels in float64, avx2 build (see kernels_body.c). */
#define RNNX_DOUBLE
#include "kernels.h"
#ifdef RNNX_X86_TARGETS
#define RNNX_TARGET_AVX2
#include "kernels_body.c"
#endif
