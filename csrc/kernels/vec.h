/*
 * kernels/vec.h: what every ISA's kernels share, on the vector an ISA header
 * (kernels/vec_<isa>.h) chose: the type `vec` of VBYTES bytes and VL lanes,
 * vload and vstore, VZERO, and the panel width U with the tile sizes that
 * follow from VL.  The ISA header includes it after defining VBYTES, then
 * defines vmadd (vectors) and MADD (scalars) on it.
 *
 * Not compiled on its own: kernels_body.c includes the ISA header once per
 * (dtype, instruction set), after real.h.
 */
#ifndef RNNX_VEC_H
#define RNNX_VEC_H

/* Every multiply-add that should be one FMA says so: MADD for scalars, vmadd
 * for vectors (explicit FMA instructions where the ISA has them, a*b+c with
 * two roundings where it does not), and the core is built with
 * -ffp-contract=off, so the compiler fuses nothing on its own.  A value is then
 * computed the same way in every loop shape, vectorized or not, tile or row,
 * whatever the compiler: GCC 13 left some a*b+c of the one-row kernel unfused
 * where GCC 12 fused them, and results depended on how a step was cut into
 * tasks, i.e. on the thread count.  The ISA headers define MADD and vmadd. */

/* The per-step recurrent product runs on W_hh packed in panels of U units
 * (layout.h): for one gate of one panel, a (H,U) block, k-major, so a tile of
 * MR rows x U columns of the product stays in registers while k runs over H.
 * Every element adds its H products one after another in order of k, from the
 * value it starts with, in both tile shapes: its value does not depend on B,
 * on where the tiles fall, or on which thread computes it. */
enum { U = RNNX_UNITS };

/* The kernels are written once, on `vec`: where the compiler has vector
 * extensions (GCC, Clang), each ISA gets registers of its width; elsewhere
 * (MSVC, or RNNX_PLAIN_C99: see compiler.h) vec is one scalar, VBYTES =
 * sizeof(real), so the same loops are plain C99.  Each element adds the same
 * products in the same order of k whatever the width.  Loads and stores go
 * through vload/vstore, unaligned: panels and rows start anywhere a real may. */
#ifdef RNNX_GNU_C
typedef real vec __attribute__((vector_size(VBYTES), may_alias, aligned(sizeof(real))));
#  define VZERO ((vec){0})
#  define ALWAYS_INLINE inline __attribute__((always_inline))
#else
typedef real vec;
#  define VZERO ((real)0)
#  define ALWAYS_INLINE inline
#endif
#define vload(p) (*(const vec*)(p))          /* VL reals from p */
#define vstore(p, v) (*(vec*)(p) = (v))      /* VL reals to p */
enum { VL = VBYTES / (int)sizeof(real), NV = U / VL };  /* lanes; vectors per panel row */
/* Rows per tile: MR * NV = 8 accumulators, independent sums enough to hide the
 * FMA latency on two FMA pipes, and with the panel row and the broadcast few
 * enough for 16 registers.  4 rows of 2 vectors on AVX2, 8 rows of one
 * 64-byte panel row on AVX-512, 2 rows of 4 on SSE2 and NEON; one row of U
 * scalars in the scalar fallback. */
enum { MR = NV >= 8 ? 1 : 8 / NV };

#endif /* RNNX_VEC_H */
