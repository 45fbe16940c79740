/*
 * quant/qdot_avx512.c: AVX-512 VNNI (vpdpbusd) for int8 and AVX-512 BF16
 * (vdpbf16ps) for bfloat16, each a function with its own target, built where
 * the compiler targets x86-64.  A panel's group of 4 columns (int8) or pair
 * of columns (bf16) is one 64-byte vector: 16 rows, one per int32/float lane;
 * the activation's 4 bytes (or 2 values) are broadcast, so a lane's sum runs
 * over k in the order of the generic kernel.
 */
#include "qkernels.h"

#ifdef RNNX_X86_TARGETS
#  include <immintrin.h>

#  include "../kernels/cpu.h"

enum { MT = 4 };  /* activation rows per tile: 4 independent accumulators */

static inline int32_t load_quad(const int8_t* p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* vpdpbusd multiplies unsigned by signed bytes: x + 128 (x ^ 0x80) is the
 * unsigned operand, and sum (x+128) w = sum x w + 128 rowsum, exact in int32
 * (|cols| <= RNNX_QMAX_COLS), so subtracting 128 rowsum gives the generic sum. */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void
dot_i8_avx512_vnni(const int8_t* panel, const int32_t* rowsum, int nq, const int8_t* x,
                   size_t ldx, int M, int32_t* out)
{
    const __m512i flip = _mm512_set1_epi32((int32_t)0x80808080u);
    const __m512i shift = _mm512_slli_epi32(_mm512_loadu_si512(rowsum), 7);
    int m = 0;
    for (; m + MT <= M; m += MT) {
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        const int8_t* x0 = x + (size_t)m * ldx;
        for (int q = 0; q < nq; q++) {
            const __m512i w = _mm512_loadu_si512(panel + (size_t)q * QGROUP_BYTES);
            a0 = _mm512_dpbusd_epi32(a0, _mm512_xor_si512(_mm512_set1_epi32(load_quad(x0 + 4 * q)), flip), w);
            a1 = _mm512_dpbusd_epi32(a1, _mm512_xor_si512(_mm512_set1_epi32(load_quad(x0 + ldx + 4 * q)), flip), w);
            a2 = _mm512_dpbusd_epi32(a2, _mm512_xor_si512(_mm512_set1_epi32(load_quad(x0 + 2 * ldx + 4 * q)), flip), w);
            a3 = _mm512_dpbusd_epi32(a3, _mm512_xor_si512(_mm512_set1_epi32(load_quad(x0 + 3 * ldx + 4 * q)), flip), w);
        }
        _mm512_storeu_si512(out + (size_t)m * QR, _mm512_sub_epi32(a0, shift));
        _mm512_storeu_si512(out + (size_t)(m + 1) * QR, _mm512_sub_epi32(a1, shift));
        _mm512_storeu_si512(out + (size_t)(m + 2) * QR, _mm512_sub_epi32(a2, shift));
        _mm512_storeu_si512(out + (size_t)(m + 3) * QR, _mm512_sub_epi32(a3, shift));
    }
    for (; m < M; m++) {
        /* one row: two accumulators over alternate groups (int32 sums are exact) */
        __m512i a0 = _mm512_setzero_si512(), a1 = a0;
        const int8_t* x0 = x + (size_t)m * ldx;
        int q = 0;
        for (; q + 2 <= nq; q += 2) {
            a0 = _mm512_dpbusd_epi32(a0, _mm512_xor_si512(_mm512_set1_epi32(load_quad(x0 + 4 * q)), flip),
                                     _mm512_loadu_si512(panel + (size_t)q * QGROUP_BYTES));
            a1 = _mm512_dpbusd_epi32(a1, _mm512_xor_si512(_mm512_set1_epi32(load_quad(x0 + 4 * q + 4)), flip),
                                     _mm512_loadu_si512(panel + (size_t)(q + 1) * QGROUP_BYTES));
        }
        if (q < nq)
            a0 = _mm512_dpbusd_epi32(a0, _mm512_xor_si512(_mm512_set1_epi32(load_quad(x0 + 4 * q)), flip),
                                     _mm512_loadu_si512(panel + (size_t)q * QGROUP_BYTES));
        _mm512_storeu_si512(out + (size_t)m * QR, _mm512_sub_epi32(_mm512_add_epi32(a0, a1), shift));
    }
}

static inline int32_t load_pair(const uint16_t* p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* One lane per row, the pairs in order of p: the generic kernel's chain. */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void
dot_bf16_avx512(const uint16_t* panel, int np, const uint16_t* x, size_t ldx, int M, float* out)
{
    int m = 0;
    for (; m + MT <= M; m += MT) {
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        const uint16_t* x0 = x + (size_t)m * ldx;
        for (int p = 0; p < np; p++) {
            const __m512bh w = (__m512bh)_mm512_loadu_si512(panel + (size_t)p * (QGROUP_BYTES / 2));
            a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_set1_epi32(load_pair(x0 + 2 * p)), w);
            a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_set1_epi32(load_pair(x0 + ldx + 2 * p)), w);
            a2 = _mm512_dpbf16_ps(a2, (__m512bh)_mm512_set1_epi32(load_pair(x0 + 2 * ldx + 2 * p)), w);
            a3 = _mm512_dpbf16_ps(a3, (__m512bh)_mm512_set1_epi32(load_pair(x0 + 3 * ldx + 2 * p)), w);
        }
        _mm512_storeu_ps(out + (size_t)m * QR, a0);
        _mm512_storeu_ps(out + (size_t)(m + 1) * QR, a1);
        _mm512_storeu_ps(out + (size_t)(m + 2) * QR, a2);
        _mm512_storeu_ps(out + (size_t)(m + 3) * QR, a3);
    }
    for (; m < M; m++) {
        __m512 a0 = _mm512_setzero_ps();
        const uint16_t* x0 = x + (size_t)m * ldx;
        for (int p = 0; p < np; p++)
            a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_set1_epi32(load_pair(x0 + 2 * p)),
                                  (__m512bh)_mm512_loadu_si512(panel + (size_t)p * (QGROUP_BYTES / 2)));
        _mm512_storeu_ps(out + (size_t)m * QR, a0);
    }
}

const qkernel rnnx_qkernel_avx512_vnni = {"avx512_vnni", "avx512", rnnx_cpu_avx512_vnni,
                                          dot_i8_avx512_vnni, NULL};
const qkernel rnnx_qkernel_avx512_bf16 = {"avx512_bf16", "avx512", rnnx_cpu_avx512_bf16, NULL,
                                          dot_bf16_avx512};
#else
static int runs_never(void) { return 0; }
const qkernel rnnx_qkernel_avx512_vnni = {"avx512_vnni", "avx512", runs_never, NULL, NULL};
const qkernel rnnx_qkernel_avx512_bf16 = {"avx512_bf16", "avx512", runs_never, NULL, NULL};
#endif
