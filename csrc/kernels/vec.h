/*
 * kernels/vec.h: the arithmetic every kernel is written on: MADD (a scalar
 * multiply-add), the vector type `vec` of VBYTES bytes with VL lanes, vmadd,
 * and the panel width U with the tile sizes that follow from it.
 *
 * Not compiled on its own: kernels_body.c includes it once per (dtype,
 * instruction set), after real.h.
 */

/* Every multiply-add that should be one FMA says so: MADD for scalars, vmadd
 * for vectors (explicit FMA instructions where the ISA has them, a*b+c with
 * two roundings where it does not), and the core is built with
 * -ffp-contract=off, so the compiler fuses nothing on its own.  A value is then
 * computed the same way in every loop shape, vectorized or not, tile or row,
 * whatever the compiler: GCC 13 left some a*b+c of the one-row kernel unfused
 * where GCC 12 fused them, and results depended on how a step was cut into
 * tasks, i.e. on the thread count. */
#if defined(RNNX_TARGET_AVX2) || defined(RNNX_TARGET_AVX512)
#  ifdef RNNX_DOUBLE
#    define MADD(a, b, c) __builtin_fma((a), (b), (c))
#  else
#    define MADD(a, b, c) __builtin_fmaf((a), (b), (c))
#  endif
#else
#  define MADD(a, b, c) ((a) * (b) + (c))
#endif

/* The per-step recurrent product runs on W_hh packed in panels of U units
 * (layout.h): for one gate of one panel, a (H,U) block, k-major, so a tile of
 * MR rows x U columns of the product stays in registers while k runs over H.
 * Every element adds its H products one after another in order of k, from the
 * value it starts with, in both tile shapes: its value does not depend on B,
 * on where the tiles fall, or on which thread computes it. */
enum { U = RNNX_UNITS };

/* The kernels below are written once, on a vector `vec` of VBYTES bytes: where
 * the compiler has vector extensions (GCC, Clang: SSE2 or NEON for the portable
 * build, AVX2 or AVX-512 for the others), each ISA gets registers of its width,
 * with FMA where it has one (vmadd).  Elsewhere (MSVC, or RNNX_PLAIN_C99: see
 * compiler.h) vec is one scalar, so the same loops are plain C99.  Each element
 * adds the same products in the same order of k whatever the width. */
#ifdef RNNX_GNU_C
#  if defined(RNNX_TARGET_AVX512)
#    define VBYTES 64
#  elif defined(RNNX_TARGET_AVX2)
#    define VBYTES 32
#  elif defined(RNNX_GENERIC_VBYTES)
/* CI only (.ci/wide_vectors.sh): the portable build on vectors of the AVX-512
 * build's width, lowered by the compiler to the baseline ISA, so that every
 * x86-64 machine runs the tile shapes the AVX-512 build uses. */
#    define VBYTES RNNX_GENERIC_VBYTES
#  else
#    define VBYTES 16
#  endif
typedef real vec __attribute__((vector_size(VBYTES), may_alias, aligned(sizeof(real))));
#  define VZERO ((vec){0})
#  define ALWAYS_INLINE inline __attribute__((always_inline))
#else
/* The scalar fallback: a "vector" of one lane.  Loads and stores through
 * (vec*) are then plain element accesses. */
#  define VBYTES ((int)sizeof(real))
typedef real vec;
#  define VZERO ((real)0)
#  define ALWAYS_INLINE inline
#endif
enum { VL = VBYTES / (int)sizeof(real), NV = U / VL };  /* lanes; vectors per panel row */
/* Rows per tile: MR * NV = 8 accumulators, independent sums enough to hide the
 * FMA latency on two FMA pipes, and with the panel row and the broadcast few
 * enough for 16 registers.  4 rows of 2 vectors on AVX2, 8 rows of one
 * 64-byte panel row on AVX-512, 2 rows of 4 on SSE2 and NEON; one row of U
 * scalars in the scalar fallback. */
enum { MR = NV >= 8 ? 1 : 8 / NV };

/* vmadd(a, b, c) = a * b + c for a scalar a */
#if defined(RNNX_TARGET_AVX512) || defined(RNNX_TARGET_AVX2)
static ALWAYS_INLINE vec vmadd(real a, vec b, vec c)
{
#    if defined(RNNX_TARGET_AVX512) && defined(RNNX_DOUBLE)
    return (vec)_mm512_fmadd_pd(_mm512_set1_pd(a), (__m512d)b, (__m512d)c);
#    elif defined(RNNX_TARGET_AVX512)
    return (vec)_mm512_fmadd_ps(_mm512_set1_ps(a), (__m512)b, (__m512)c);
#    elif defined(RNNX_DOUBLE)
    return (vec)_mm256_fmadd_pd(_mm256_set1_pd(a), (__m256d)b, (__m256d)c);
#    else
    return (vec)_mm256_fmadd_ps(_mm256_set1_ps(a), (__m256)b, (__m256)c);
#    endif
}
#else
#  define vmadd(a, b, c) ((a) * (b) + (c))
#endif
