/*
 * real.h: the element type of one compilation of the kernels.
 *
 * kernels_body.c is compiled with and without RNNX_DOUBLE, so float32 and
 * float64 come from one source; RNNX_SFX names the one exported table.
 */
#ifndef RNNX_REAL_H
#define RNNX_REAL_H

#include <math.h>

#define RNNX_CAT3_(a, b, c) a##b##c
#define RNNX_CAT3(a, b, c) RNNX_CAT3_(a, b, c)

#ifdef RNNX_DOUBLE
typedef double real;
#define RNNX_SFX(name) RNNX_CAT3(name, _f64, RNNX_ISA_SFX)
#define RNNX_UNITS RNNX_UNITS_F64
#else
typedef float real;
#define RNNX_SFX(name) RNNX_CAT3(name, _f32, RNNX_ISA_SFX)
#define RNNX_UNITS RNNX_UNITS_F32
#endif

#endif /* RNNX_REAL_H */
