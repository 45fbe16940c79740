/* The kernels in float32, generic build (see kernels_body.c). */
#include "kernels_body.c"
