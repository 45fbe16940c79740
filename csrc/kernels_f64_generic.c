/* The kernels in float64, generic build (see kernels_body.c). */
#define RNNX_DOUBLE
#include "kernels_body.c"
