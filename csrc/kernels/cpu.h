/*
 * kernels/cpu.h: whether this CPU runs an instruction set of isa_list.h, per
 * architecture.  Only dispatch.c and quant/qdispatch.c include it.  A test answers 0 where the
 * ISA's kernels are not built (see RNNX_X86_TARGETS in compiler.h).
 */
#ifndef RNNX_CPU_H
#define RNNX_CPU_H

#include "compiler.h"

static int rnnx_cpu_any(void) { return 1; }

#ifdef RNNX_X86_TARGETS
#  include <cpuid.h>
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

/* The int8 and bfloat16 extensions of the quantized kernels (csrc/quant/). */
static int rnnx_cpu_avx512_vnni(void)
{
    __builtin_cpu_init();
    return rnnx_cpu_avx512() && __builtin_cpu_supports("avx512vnni");
}

static int rnnx_cpu_avx512_bf16(void)
{
    __builtin_cpu_init();
    return rnnx_cpu_avx512() && __builtin_cpu_supports("avx512bf16");
}

/* AVX-VNNI (VEX vpdpbusd, Alder Lake, Zen 5): CPUID.(7,1):EAX bit 4; not every
 * compiler's __builtin_cpu_supports knows its name. */
static int rnnx_cpu_avx_vnni(void)
{
    unsigned a, b, c, d;
    return rnnx_cpu_avx2() && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a >> 4 & 1u);
}
#else
static int rnnx_cpu_avx2(void) { return 0; }
static int rnnx_cpu_avx512(void) { return 0; }
static int rnnx_cpu_avx512_vnni(void) { return 0; }
static int rnnx_cpu_avx512_bf16(void) { return 0; }
static int rnnx_cpu_avx_vnni(void) { return 0; }
#endif

#ifdef RNNX_ARM64_TARGETS
/* AArch64: Advanced SIMD (NEON), with its FMA, is part of the base architecture. */
static int rnnx_cpu_neon(void) { return 1; }
/* sdot (ARMv8.2 dotprod, optional until v8.4): Linux's hwcap, else no. */
#  if defined(__linux__)
#    include <sys/auxv.h>
static int rnnx_cpu_neon_dotprod(void) { return (getauxval(AT_HWCAP) >> 20) & 1; /* ASIMDDP */ }
#  else
static int rnnx_cpu_neon_dotprod(void) { return 0; }
#  endif
#else
static int rnnx_cpu_neon(void) { return 0; }
static int rnnx_cpu_neon_dotprod(void) { return 0; }
#endif

#endif /* RNNX_CPU_H */
