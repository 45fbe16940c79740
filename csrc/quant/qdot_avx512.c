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

/* acc += a (u8) . b (s8) per int32 lane (vpdpbusd), and acc += a . b over bf16 pairs
 * (vdpbf16ps).  GCC 12 copies the accumulator around every use of the intrinsics
 * (two extra register moves per instruction, a third of the loop); the same
 * instruction through asm keeps it in place.  Clang's intrinsics are fine. */
#  if defined(__GNUC__) && !defined(__clang__)
#    define DPBUSD(acc, a, b) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "vm"(b))
#    define DPBF16(acc, a, b) __asm__("vdpbf16ps %2, %1, %0" : "+v"(acc) : "v"(a), "vm"(b))
#  else
#    define DPBUSD(acc, a, b) ((acc) = _mm512_dpbusd_epi32((acc), (a), (b)))
#    define DPBF16(acc, a, b) ((acc) = _mm512_dpbf16_ps((acc), (__m512bh)(a), (__m512bh)(b)))
#  endif

static inline int32_t load_quad(const int8_t* p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* vpdpbusd multiplies unsigned by signed bytes: x + 128 (x ^ 0x80) is the
 * unsigned operand, and sum (x+128) w = sum x w + 128 rowsum, exact in int32
 * (|cols| <= RNNX_QMAX_COLS), so subtracting 128 rowsum gives the generic sum.
 * The shifted activations of a tile are made once per block of KB groups (a
 * stack buffer), so the inner loop is one broadcast load and one vpdpbusd per
 * row and group. */
enum { KB = 256 };

/* xs[i][q] := the 4 bytes of group q0 + q of row i, shifted by 128, q < qn. */
static inline void shift_rows(uint32_t xs[][KB], const int8_t* x, size_t ldx, int rows, int q0,
                              int qn)
{
    for (int i = 0; i < rows; i++)
        for (int q = 0; q < qn; q++)
            xs[i][q] = (uint32_t)load_quad(x + (size_t)i * ldx + 4 * (size_t)(q0 + q)) ^ 0x80808080u;
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void
dot_i8_avx512_vnni(const int8_t* panel, const int32_t* rowsum, int nq, const int8_t* x,
                   size_t ldx, int M, int32_t* out)
{
    const __m512i shift = _mm512_slli_epi32(_mm512_loadu_si512(rowsum), 7);
    uint32_t xs[MT][KB];
    int m = 0;
    for (; m + MT <= M; m += MT) {
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        for (int q0 = 0; q0 < nq; q0 += KB) {
            const int qn = nq - q0 < KB ? nq - q0 : KB;
            shift_rows(xs, x + (size_t)m * ldx, ldx, MT, q0, qn);
            const int8_t* w = panel + (size_t)q0 * QGROUP_BYTES;
            for (int q = 0; q < qn; q++) {
                const __m512i wv = _mm512_loadu_si512(w + (size_t)q * QGROUP_BYTES);
                DPBUSD(a0, _mm512_set1_epi32((int32_t)xs[0][q]), wv);
                DPBUSD(a1, _mm512_set1_epi32((int32_t)xs[1][q]), wv);
                DPBUSD(a2, _mm512_set1_epi32((int32_t)xs[2][q]), wv);
                DPBUSD(a3, _mm512_set1_epi32((int32_t)xs[3][q]), wv);
            }
        }
        _mm512_storeu_si512(out + (size_t)m * QR, _mm512_sub_epi32(a0, shift));
        _mm512_storeu_si512(out + (size_t)(m + 1) * QR, _mm512_sub_epi32(a1, shift));
        _mm512_storeu_si512(out + (size_t)(m + 2) * QR, _mm512_sub_epi32(a2, shift));
        _mm512_storeu_si512(out + (size_t)(m + 3) * QR, _mm512_sub_epi32(a3, shift));
    }
    for (; m < M; m++) {
        /* one row: two accumulators over alternate groups (int32 sums are exact) */
        __m512i a0 = _mm512_setzero_si512(), a1 = a0;
        for (int q0 = 0; q0 < nq; q0 += KB) {
            const int qn = nq - q0 < KB ? nq - q0 : KB;
            shift_rows(xs, x + (size_t)m * ldx, ldx, 1, q0, qn);
            const int8_t* w = panel + (size_t)q0 * QGROUP_BYTES;
            int q = 0;
            for (; q + 2 <= qn; q += 2) {
                DPBUSD(a0, _mm512_set1_epi32((int32_t)xs[0][q]),
                                         _mm512_loadu_si512(w + (size_t)q * QGROUP_BYTES));
                DPBUSD(a1, _mm512_set1_epi32((int32_t)xs[0][q + 1]),
                                         _mm512_loadu_si512(w + (size_t)(q + 1) * QGROUP_BYTES));
            }
            if (q < qn)
                DPBUSD(a0, _mm512_set1_epi32((int32_t)xs[0][q]),
                                         _mm512_loadu_si512(w + (size_t)q * QGROUP_BYTES));
        }
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
            DPBF16(a0, (__m512bh)_mm512_set1_epi32(load_pair(x0 + 2 * p)), w);
            DPBF16(a1, (__m512bh)_mm512_set1_epi32(load_pair(x0 + ldx + 2 * p)), w);
            DPBF16(a2, (__m512bh)_mm512_set1_epi32(load_pair(x0 + 2 * ldx + 2 * p)), w);
            DPBF16(a3, (__m512bh)_mm512_set1_epi32(load_pair(x0 + 3 * ldx + 2 * p)), w);
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
            DPBF16(a0, (__m512bh)_mm512_set1_epi32(load_pair(x0 + 2 * p)),
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
