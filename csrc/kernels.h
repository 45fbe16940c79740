/*
 * kernels.h: the tables of kernels behind rnnx_forward/rnnx_backward.
 * Internal to the core; dispatch.c is their only caller.
 *
 * kernels_body.c is compiled once per (dtype, instruction set): generic,
 * avx2 (AVX2 + FMA) and avx512 (AVX-512 F/VL/BW/DQ), the last two only where
 * the compiler can target them (GCC or Clang on x86-64).  Each compilation
 * exports one table; dispatch.c picks one at run time by the CPU.
 */
#ifndef RNNX_KERNELS_H
#define RNNX_KERNELS_H

#include "compiler.h"
#include "layout.h"
#include "rnnx.h"

typedef struct rnnx_dtype_kernels {
    int (*forward)(const rnnx_cell_desc* d, const rnnx_blas* blas, const rnnx_forward_args* a);
    int (*backward)(const rnnx_cell_desc* d, const rnnx_blas* blas, const rnnx_backward_args* a);
    int (*activation)(int which, const void* x, void* y, size_t n);
    void (*pack)(const rnnx_cell_desc* d, int H, int P, const void* w_hh, const void* w_hr,
                 void* packed);
} rnnx_dtype_kernels;

#if defined(RNNX_GNU_C) && defined(__x86_64__) && !defined(RNNX_NO_ISA)
#define RNNX_X86_TARGETS 1
#endif

extern const rnnx_dtype_kernels rnnx_kernels_f32_generic, rnnx_kernels_f64_generic;
#ifdef RNNX_X86_TARGETS
extern const rnnx_dtype_kernels rnnx_kernels_f32_avx2, rnnx_kernels_f64_avx2;
extern const rnnx_dtype_kernels rnnx_kernels_f32_avx512, rnnx_kernels_f64_avx512;
#endif

#endif /* RNNX_KERNELS_H */
