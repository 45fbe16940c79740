/*
 * kernels_body.c: the whole kernel source, compiled once per (dtype,
 * instruction set) by the small kernels_*.c files, which define RNNX_DOUBLE
 * (float64, else float32) and RNNX_TARGET_AVX2 or RNNX_TARGET_AVX512 (else
 * the portable build, which compilers vectorize for the baseline ISA, NEON
 * included).  Every function is static except the one exported table.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(RNNX_TARGET_AVX2) || defined(RNNX_TARGET_AVX512)
#include <immintrin.h>  /* the FMA intrinsics of kernels/vec.h's vmadd */
#endif

#include "kernels.h"
#include "layout.h"
#include "rnnx.h"

/* The target is set after the system headers, so only our functions get it. */
#if defined(RNNX_TARGET_AVX512)
#  define RNNX_ISA_SFX _avx512
#  if defined(__clang__)
#    pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"))), apply_to = function)
#  else
#    pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,prefer-vector-width=512")
#  endif
#elif defined(RNNX_TARGET_AVX2)
#  define RNNX_ISA_SFX _avx2
#  if defined(__clang__)
#    pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#  else
#    pragma GCC target("avx2,fma")
#  endif
#else
#  define RNNX_ISA_SFX _generic
#endif

#include "real.h"
/* the kernels: arithmetic, BLAS boundary, packed panels, small and ordered products */
#include "kernels/vec.h"
#include "kernels/gemm.c"
#include "kernels/panels.c"
#include "kernels/small_gemm.c"
#include "kernels/ordered.c"
#include "kernels/activations.c"
/* what the cells and the sequence driver share around a step */
#include "driver/step.h"
#include "driver/projection.c"
#include "driver/gradients.c"
/* the cells and the driver */
#include "rnn.c"
#include "lstm.c"
#include "gru.c"
#include "driver.c"

#if defined(__clang__) && (defined(RNNX_TARGET_AVX512) || defined(RNNX_TARGET_AVX2))
#  pragma clang attribute pop
#endif
