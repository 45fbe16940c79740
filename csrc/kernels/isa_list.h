/*
 * kernels/isa_list.h: the instruction sets the kernels are built for, best
 * first.  The one list: dispatch.c's table, the kernel translation units
 * (setup.py and cmake/RnnxSources.cmake generate one per dtype and ISA from
 * the names below) and the names Python shows (_core.ISAS, rnnx.info(),
 * benchmarks/bench.py --isa, all read through rnnx_isa_name) come from it.
 *
 *   X(name, runs)   name: rnnx_set_isa's and RNNX_ISA's name, and the ISA's
 *                   header kernels/vec_<name>.h (vector type, vmadd, target);
 *                   runs: the function of kernels/cpu.h that says whether
 *                   this CPU runs it.
 *
 * An ISA the compiler or platform cannot build (AVX on aarch64, NEON on
 * x86-64, any but generic in the plain C99 build) is still listed: its
 * kernel table is empty and rnnx_isa_available says no.  "generic" (the
 * portable kernels) is last and always runs.  Adding an ISA: a line here,
 * kernels/vec_<name>.h, and its test in kernels/cpu.h.
 */
#ifndef RNNX_ISA_LIST_H
#define RNNX_ISA_LIST_H

#define RNNX_ISA_LIST(X) \
    X(avx512, rnnx_cpu_avx512) \
    X(avx2, rnnx_cpu_avx2) \
    X(neon, rnnx_cpu_neon) \
    X(generic, rnnx_cpu_any)

#endif /* RNNX_ISA_LIST_H */
