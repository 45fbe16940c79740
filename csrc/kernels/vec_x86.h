/*
 * kernels/vec_x86.h: what the x86-64 ISA headers share.  vec_avx2.h and
 * vec_avx512.h define, then include this:
 *   VBYTES                    the vector width in bytes;
 *   RNNX_X86_TARGET_GCC       the target for GCC's pragma, RNNX_X86_TARGET_CLANG
 *                             for Clang's attribute;
 *   RNNX_X86_FMADD_PS/_PD(a, b, c)  a * b + c, one rounding, for a scalar a.
 * Built where the compiler targets x86-64 (RNNX_X86_TARGETS, compiler.h).
 */
#ifdef RNNX_X86_TARGETS
#  define RNNX_VEC_BUILT 1
#  include <immintrin.h>
/* The target is set after the system headers, so only our functions get it;
 * kernels_body.c pops Clang's at its end. */
#  define RNNX_PRAGMA(text) _Pragma(#text)
#  define RNNX_PRAGMA_TARGET(push) RNNX_PRAGMA(push)
#  if defined(__clang__)
RNNX_PRAGMA_TARGET(clang attribute push(__attribute__((target(RNNX_X86_TARGET_CLANG))), apply_to = function))
#    define RNNX_VEC_CLANG_PUSHED 1
#  else
RNNX_PRAGMA_TARGET(GCC target(RNNX_X86_TARGET_GCC))
#  endif
#  include "vec.h"
#  include "madd_fma.h"

static ALWAYS_INLINE vec vmadd(real a, vec b, vec c)
{
#  ifdef RNNX_DOUBLE
    return (vec)RNNX_X86_FMADD_PD(a, b, c);
#  else
    return (vec)RNNX_X86_FMADD_PS(a, b, c);
#  endif
}
#else
#  define RNNX_VEC_BUILT 0
#endif
