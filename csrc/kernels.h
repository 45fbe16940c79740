/*
 * kernels.h: the tables of kernels behind rnnx_forward/rnnx_backward.
 * Internal to the core; dispatch.c is their only caller.
 *
 * kernels_body.c is compiled once per (dtype, instruction set of
 * kernels/isa_list.h).  Each compilation exports one table, empty where the
 * ISA cannot be built; dispatch.c picks one at run time by the CPU.
 */
#ifndef RNNX_KERNELS_H
#define RNNX_KERNELS_H

#include "compiler.h"
#include "kernels/isa_list.h"
#include "layout.h"
#include "rnnx.h"

typedef struct rnnx_dtype_kernels {
    int (*forward)(const rnnx_cell_desc* d, const rnnx_blas* blas, const rnnx_forward_args* a);
    int (*backward)(const rnnx_cell_desc* d, const rnnx_blas* blas, const rnnx_backward_args* a);
    int (*activation)(int which, const void* x, void* y, size_t n);
    void (*pack)(const rnnx_cell_desc* d, int H, int P, const void* w_hh, const void* w_hr,
                 void* packed);
} rnnx_dtype_kernels;

/* One table per dtype and instruction set of kernels/isa_list.h. */
#define RNNX_DECLARE_KERNELS(name, runs) \
    extern const rnnx_dtype_kernels rnnx_kernels_f32_##name, rnnx_kernels_f64_##name;
RNNX_ISA_LIST(RNNX_DECLARE_KERNELS)
#undef RNNX_DECLARE_KERNELS

/* The table of dtype (RNNX_FLOAT32 or RNNX_FLOAT64) of the instruction set in use
 * (dispatch.c), for callers inside the core that validated their arguments once
 * (the stream, csrc/stream/) and call the kernels directly. */
const rnnx_dtype_kernels* rnnx_kernels_in_use(int dtype);

#endif /* RNNX_KERNELS_H */
