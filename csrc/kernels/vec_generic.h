/*
 * kernels/vec_generic.h: the portable kernels, built everywhere.  With GCC or
 * Clang, 16-byte vectors that the compiler lowers to the baseline ISA (SSE2
 * on x86-64, NEON on aarch64); elsewhere, and in the plain C99 build, one
 * scalar (kernels/vec.h).  No FMA: a*b+c rounds twice, as in the reference.
 */
#define RNNX_VEC_BUILT 1

#if !defined(RNNX_GNU_C)
#  define VBYTES ((int)sizeof(real))
#elif defined(RNNX_GENERIC_VBYTES)
/* CI only (.ci/wide_vectors.sh): the portable build on vectors of the AVX-512
 * build's width, lowered by the compiler to the baseline ISA, so that every
 * x86-64 machine runs the tile shapes the AVX-512 build uses. */
#  define VBYTES RNNX_GENERIC_VBYTES
#else
#  define VBYTES 16
#endif
#include "vec.h"

#define vmadd(a, b, c) ((a) * (b) + (c))
#define MADD(a, b, c) ((a) * (b) + (c))
