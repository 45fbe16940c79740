/*
 * kernels/cpu.h: whether this CPU runs an instruction set of isa_list.h, per
 * architecture.  Only dispatch.c includes it.  A test answers 0 where the
 * ISA's kernels are not built (see RNNX_X86_TARGETS in compiler.h).
 */
#ifndef RNNX_CPU_H
#define RNNX_CPU_H

#include "compiler.h"

static int rnnx_cpu_any(void) { return 1; }

#ifdef RNNX_X86_TARGETS
/* x86-64: GCC's and Clang's cpuid reader, which also checks (xgetbv) that the
 * OS saves the AVX and AVX-512 registers. */
static int rnnx_cpu_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

static int rnnx_cpu_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           rnnx_cpu_avx2();
}
#else
static int rnnx_cpu_avx2(void) { return 0; }
static int rnnx_cpu_avx512(void) { return 0; }
#endif

#ifdef RNNX_ARM64_TARGETS
/* AArch64: Advanced SIMD (NEON), with its FMA, is part of the base architecture. */
static int rnnx_cpu_neon(void) { return 1; }
#else
static int rnnx_cpu_neon(void) { return 0; }
#endif

#endif /* RNNX_CPU_H */
