/*
 * kernels/vec_avx2.h: AVX2 with FMA (x86-64, Haswell and Zen on): 32-byte
 * vectors, FMA instructions for vmadd and MADD.
 */
#ifdef RNNX_X86_TARGETS
#  define RNNX_VEC_BUILT 1
#  include <immintrin.h>
/* The target is set after the system headers, so only our functions get it;
 * kernels_body.c pops it at its end. */
#  if defined(__clang__)
#    pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#    define RNNX_VEC_CLANG_PUSHED 1
#  else
#    pragma GCC target("avx2,fma")
#  endif
#  define VBYTES 32
#  include "vec.h"

static ALWAYS_INLINE vec vmadd(real a, vec b, vec c)
{
#  ifdef RNNX_DOUBLE
    return (vec)_mm256_fmadd_pd(_mm256_set1_pd(a), (__m256d)b, (__m256d)c);
#  else
    return (vec)_mm256_fmadd_ps(_mm256_set1_ps(a), (__m256)b, (__m256)c);
#  endif
}
#  include "madd_fma.h"
#else
#  define RNNX_VEC_BUILT 0
#endif
