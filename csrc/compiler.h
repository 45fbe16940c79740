/*
 * compiler.h: what the compiler and the platform give the core, decided here
 * and nowhere else.  Internal to the core (never included by rnnx.h).
 *
 *   RNNX_GNU_C       GCC or Clang: vector extensions (the kernels' vec type),
 *                    always_inline, target pragmas and __builtin_cpu_supports
 *                    (the AVX2/AVX-512/NEON builds), a load-time constructor.
 *   RNNX_PTHREADS    POSIX threads, GCC's __atomic builtins and dlfcn: the
 *                    thread team of csrc/runtime/.
 *
 * Where they are missing (MSVC), the kernels' vector type is one scalar
 * (kernels/vec.h: the same loops, one element at a time, the same arithmetic) and
 * the pool runs every task on the caller (runtime/serial.c).
 *
 * RNNX_PLAIN_C99 pretends both are missing, so that GCC builds what MSVC
 * builds; CI does (.ci/plain_c99.sh, -std=c99 -pedantic -Werror) and runs the
 * tests on it.  There GCC also refuses (poisons) every GNU name the fallback
 * must not use, so one that slips outside its #if fails that build.
 */
#ifndef RNNX_COMPILER_H
#define RNNX_COMPILER_H

/* The system headers the core uses, read before anything below redefines or
 * poisons a name they may use (UCRT's <stdlib.h> has __declspec(restrict)). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if (defined(__GNUC__) || defined(__clang__)) && !defined(RNNX_PLAIN_C99)
#  define RNNX_GNU_C 1
#  if defined(__unix__) || defined(__APPLE__)
#    define RNNX_PTHREADS 1
#  endif
#endif

/* The instruction sets beyond the portable kernels (kernels/isa_list.h) need
 * GCC's or Clang's vector extensions and target pragmas; RNNX_NO_ISA builds
 * the portable kernels only. */
#if defined(RNNX_GNU_C) && !defined(RNNX_NO_ISA)
#  if defined(__x86_64__)
#    define RNNX_X86_TARGETS 1     /* avx2, avx512 */
#  elif defined(__aarch64__)
#    define RNNX_ARM64_TARGETS 1   /* neon */
#  endif
#endif

/* MSVC's C before /std:c11 spells C99's restrict and inline its own way. */
#if defined(_MSC_VER) && !defined(__clang__) && \
    (!defined(__STDC_VERSION__) || __STDC_VERSION__ < 199901L)
#  define restrict __restrict
#  define inline __inline
#endif

/* The proof build: every GNU name that the plain path must do without is
 * refused from here on. */
#if defined(RNNX_PLAIN_C99) && defined(__GNUC__)
#  pragma GCC poison vector_size always_inline may_alias constructor
#  pragma GCC poison __builtin_cpu_init __builtin_cpu_supports __builtin_fma __builtin_fmaf
#  pragma GCC poison __atomic_load_n __atomic_store_n __atomic_compare_exchange_n
#  pragma GCC poison __atomic_add_fetch __atomic_sub_fetch
#  pragma GCC poison pthread_create pthread_mutex_lock dlopen dladdr _mm_pause
#endif

#endif /* RNNX_COMPILER_H */
