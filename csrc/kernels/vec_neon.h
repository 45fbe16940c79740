/*
 * kernels/vec_neon.h: AArch64 Advanced SIMD (NEON), part of every AArch64
 * CPU: 16-byte vectors, FMA instructions (vfmaq) for vmadd and MADD.  The
 * portable build on aarch64 runs on the same registers without FMA, so the
 * two round differently (see tests/test_embed.py).  No target pragma: NEON is
 * the baseline.
 */
#ifdef RNNX_ARM64_TARGETS
#  define RNNX_VEC_BUILT 1
#  include <arm_neon.h>
#  define VBYTES 16
#  include "vec.h"

static ALWAYS_INLINE vec vmadd(real a, vec b, vec c)
{
#  ifdef RNNX_DOUBLE
    return (vec)vfmaq_f64((float64x2_t)c, (float64x2_t)b, vdupq_n_f64(a));
#  else
    return (vec)vfmaq_f32((float32x4_t)c, (float32x4_t)b, vdupq_n_f32(a));
#  endif
}
#  include "madd_fma.h"
#else
#  define RNNX_VEC_BUILT 0
#endif
