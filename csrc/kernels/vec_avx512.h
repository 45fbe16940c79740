/*
 * kernels/vec_avx512.h: AVX-512 F/VL/BW/DQ (x86-64, Skylake-X and Zen 4 on):
 * 64-byte vectors, one panel row each, FMA instructions for vmadd and MADD.
 */
#ifdef RNNX_X86_TARGETS
#  define RNNX_VEC_BUILT 1
#  include <immintrin.h>
/* The target is set after the system headers, so only our functions get it;
 * kernels_body.c pops it at its end. */
#  if defined(__clang__)
#    pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"))), apply_to = function)
#    define RNNX_VEC_CLANG_PUSHED 1
#  else
#    pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,prefer-vector-width=512")
#  endif
#  define VBYTES 64
#  include "vec.h"

static ALWAYS_INLINE vec vmadd(real a, vec b, vec c)
{
#  ifdef RNNX_DOUBLE
    return (vec)_mm512_fmadd_pd(_mm512_set1_pd(a), (__m512d)b, (__m512d)c);
#  else
    return (vec)_mm512_fmadd_ps(_mm512_set1_ps(a), (__m512)b, (__m512)c);
#  endif
}
#  include "madd_fma.h"
#else
#  define RNNX_VEC_BUILT 0
#endif
