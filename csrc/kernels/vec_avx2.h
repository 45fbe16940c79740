/*
 * kernels/vec_avx2.h: AVX2 with FMA (x86-64, Haswell and Zen on): 32-byte
 * vectors, FMA instructions for vmadd and MADD.
 */
#define VBYTES 32
#define RNNX_X86_TARGET_GCC "avx2,fma"
#define RNNX_X86_TARGET_CLANG "avx2,fma"
#define RNNX_X86_FMADD_PS(a, b, c) _mm256_fmadd_ps(_mm256_set1_ps(a), (__m256)(b), (__m256)(c))
#define RNNX_X86_FMADD_PD(a, b, c) _mm256_fmadd_pd(_mm256_set1_pd(a), (__m256d)(b), (__m256d)(c))
#include "vec_x86.h"
