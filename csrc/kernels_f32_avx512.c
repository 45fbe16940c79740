/* The kernels in float32, avx512 build (see kernels_body.c). */
#include "kernels.h"
#ifdef RNNX_X86_TARGETS
#define RNNX_TARGET_AVX512
#include "kernels_body.c"
#endif
