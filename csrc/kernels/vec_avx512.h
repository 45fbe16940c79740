/*
 * kernels/vec_avx512.h: AVX-512 F/VL/BW/DQ (x86-64, Skylake-X and Zen 4 on):
 * 64-byte vectors, one panel row each, FMA instructions for vmadd and MADD.
 * GCC is also told to prefer 512-bit vectors where it vectorizes on its own.
 */
#define VBYTES 64
#define RNNX_X86_TARGET_GCC "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,prefer-vector-width=512"
#define RNNX_X86_TARGET_CLANG "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"
#define RNNX_X86_FMADD_PS(a, b, c) _mm512_fmadd_ps(_mm512_set1_ps(a), (__m512)(b), (__m512)(c))
#define RNNX_X86_FMADD_PD(a, b, c) _mm512_fmadd_pd(_mm512_set1_pd(a), (__m512d)(b), (__m512d)(c))
#include "vec_x86.h"
