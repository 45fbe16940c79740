/*
 * real.h: the element type of one compilation of the kernels.
 *
 * kernels_f32.c and kernels_f64.c include the cell files once each, with and
 * without RNNX_DOUBLE, so float32 and float64 come from one source.
 */
#ifndef RNNX_REAL_H
#define RNNX_REAL_H

#include <math.h>

#ifdef RNNX_DOUBLE
typedef double real;
#define RNNX_SFX(name) name##_f64
#else
typedef float real;
#define RNNX_SFX(name) name##_f32
#endif

#endif /* RNNX_REAL_H */
