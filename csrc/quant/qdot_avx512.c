/*
 * quant/qdot_avx512.c: AVX-512 VNNI (vpdpbusd) for int8 and AVX-512 BF16
 * (vdpbf16ps) for bfloat16, each a function with its own target, built where
 * the compiler targets x86-64.  A panel's group of 4 columns (int8) or pair
 * of columns (bf16) is one 64-byte vector: 16 rows, one per int32/float lane;
 * the activation's 4 bytes (or 2 values) are broadcast.  A bf16 lane's sum
 * runs over k in the order of the generic kernel; an int8 sum is exact, in
 * any order.
 */
#include "qkernels.h"

#ifdef RNNX_X86_TARGETS
#  include <immintrin.h>

#  include "../kernels/cpu.h"

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

#  define UNROLL _Pragma("GCC unroll 4")
#  define VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))
#  define BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))
#  define INLINE static inline __attribute__((always_inline))

enum { PF = 8 };  /* groups ahead to prefetch: large matrices stream from L2 */

static inline int32_t load4(const void* p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* A register tile of PT panels x MT rows of sums (at most 4 x 4, a constant at
 * every call: the loops unroll and the sums stay in registers).  A group's
 * activation is broadcast once for the PT panels, a weight vector loaded once
 * for the MT rows.  KS = 2 splits the groups over two accumulators per sum
 * (int32 sums are exact in any order), so a small tile still keeps 4
 * vpdpbusd chains in flight against the instruction's latency.
 *
 * vpdpbusd multiplies unsigned by signed bytes: x + 128 (x ^ 0x80) is the
 * unsigned operand, and sum (x+128) w = sum x w + 128 rowsum, exact in int32
 * (|cols| <= RNNX_QMAX_COLS), so subtracting 128 rowsum gives the generic sum. */
VNNI INLINE void i8_tile(const int8_t* panel, size_t pstride, const int PT, const int MT,
                         const int KS, int nq, const int8_t* x, size_t ldx, size_t ostride,
                         int32_t* out)
{
    __m512i acc[2][4][4];
    const __m512i flip = _mm512_set1_epi32((int32_t)0x80808080u);
    UNROLL for (int s = 0; s < KS; s++)
        UNROLL for (int j = 0; j < PT; j++)
            UNROLL for (int i = 0; i < MT; i++)
                acc[s][j][i] = _mm512_setzero_si512();
    int q = 0;
    for (; q + KS <= nq; q += KS)
        UNROLL for (int s = 0; s < KS; s++) {
            __m512i xb[4];
            UNROLL for (int i = 0; i < MT; i++)
                xb[i] = _mm512_xor_si512(
                    _mm512_set1_epi32(load4(x + (size_t)i * ldx + 4 * (size_t)(q + s))), flip);
            UNROLL for (int j = 0; j < PT; j++) {
                const int8_t* w = panel + (size_t)j * pstride + (size_t)(q + s) * QGROUP_BYTES;
                _mm_prefetch((const char*)(w + PF * QGROUP_BYTES), _MM_HINT_T0);
                const __m512i wv = _mm512_loadu_si512(w);
                UNROLL for (int i = 0; i < MT; i++)
                    DPBUSD(acc[s][j][i], xb[i], wv);
            }
        }
    for (; q < nq; q++)  /* KS = 2 and nq odd: the last group */
        UNROLL for (int j = 0; j < PT; j++) {
            const __m512i wv =
                _mm512_loadu_si512(panel + (size_t)j * pstride + (size_t)q * QGROUP_BYTES);
            UNROLL for (int i = 0; i < MT; i++) {
                const __m512i xb = _mm512_xor_si512(
                    _mm512_set1_epi32(load4(x + (size_t)i * ldx + 4 * (size_t)q)), flip);
                DPBUSD(acc[0][j][i], xb, wv);
            }
        }
    UNROLL for (int j = 0; j < PT; j++) {
        const __m512i shift = _mm512_slli_epi32(
            _mm512_loadu_si512(panel + (size_t)j * pstride + (size_t)nq * QGROUP_BYTES), 7);
        UNROLL for (int i = 0; i < MT; i++) {
            const __m512i sum = KS > 1 ? _mm512_add_epi32(acc[0][j][i], acc[1][j][i])
                                       : acc[0][j][i];
            _mm512_storeu_si512(out + (size_t)j * ostride + (size_t)i * QR,
                                _mm512_sub_epi32(sum, shift));
        }
    }
}

/* Tiles of up to 4 panels x 4 rows over the np x M sums. */
VNNI static void dot_i8_avx512_vnni(const int8_t* panel, size_t pstride, int np, int nq,
                                    const int8_t* x, size_t ldx, int M, int32_t* out)
{
    const size_t ostride = (size_t)M * QR;
    for (int j0 = 0; j0 < np; j0 += 4) {
        const int pt = np - j0 < 4 ? np - j0 : 4;
        const int8_t* pj = panel + (size_t)j0 * pstride;
        for (int m = 0; m < M;) {
            const int mt = M - m < 4 ? M - m : 4;
            const int8_t* xm = x + (size_t)m * ldx;
            int32_t* o = out + (size_t)j0 * ostride + (size_t)m * QR;
#  define I8_TILE(PT, MT, KS) i8_tile(pj, pstride, PT, MT, KS, nq, xm, ldx, ostride, o)
            switch (pt * 8 + mt) {
            case 4 * 8 + 4: I8_TILE(4, 4, 1); break;
            case 4 * 8 + 3: I8_TILE(4, 3, 1); break;
            case 4 * 8 + 2: I8_TILE(4, 2, 1); break;
            case 4 * 8 + 1: I8_TILE(4, 1, 1); break;
            case 3 * 8 + 4: I8_TILE(3, 4, 1); break;
            case 3 * 8 + 3: I8_TILE(3, 3, 1); break;
            case 3 * 8 + 2: I8_TILE(3, 2, 1); break;
            case 3 * 8 + 1: I8_TILE(3, 1, 2); break;
            case 2 * 8 + 4: I8_TILE(2, 4, 1); break;
            case 2 * 8 + 3: I8_TILE(2, 3, 1); break;
            case 2 * 8 + 2: I8_TILE(2, 2, 2); break;
            case 2 * 8 + 1: I8_TILE(2, 1, 2); break;
            case 1 * 8 + 4: I8_TILE(1, 4, 1); break;
            case 1 * 8 + 3: I8_TILE(1, 3, 2); break;
            case 1 * 8 + 2: I8_TILE(1, 2, 2); break;
            default: I8_TILE(1, 1, 2); break;
            }
#  undef I8_TILE
            m += mt;
        }
    }
}

/* bfloat16: one lane per (panel, row, unit), the pairs in order of p, the
 * generic kernel's chain.  The chains of a tile are independent, so PT x MT
 * accumulators hide vdpbf16ps's latency without reordering any sum. */
BF16 INLINE void bf16_tile(const uint16_t* panel, size_t pstride, const int PT, const int MT,
                           int np2, const uint16_t* x, size_t ldx, size_t ostride, float* out)
{
    __m512 acc[4][4];
    UNROLL for (int j = 0; j < PT; j++)
        UNROLL for (int i = 0; i < MT; i++)
            acc[j][i] = _mm512_setzero_ps();
    const unsigned char* base = (const unsigned char*)panel;
    for (int p = 0; p < np2; p++) {
        __m512i xb[4];
        UNROLL for (int i = 0; i < MT; i++)
            xb[i] = _mm512_set1_epi32(load4(x + (size_t)i * ldx + 2 * (size_t)p));
        UNROLL for (int j = 0; j < PT; j++) {
            const unsigned char* w = base + (size_t)j * pstride + (size_t)p * QGROUP_BYTES;
            _mm_prefetch((const char*)(w + PF * QGROUP_BYTES), _MM_HINT_T0);
            const __m512i wv = _mm512_loadu_si512(w);
            UNROLL for (int i = 0; i < MT; i++)
                DPBF16(acc[j][i], xb[i], wv);
        }
    }
    UNROLL for (int j = 0; j < PT; j++)
        UNROLL for (int i = 0; i < MT; i++)
            _mm512_storeu_ps(out + (size_t)j * ostride + (size_t)i * QR, acc[j][i]);
}

BF16 static void dot_bf16_avx512(const uint16_t* panel, size_t pstride, int np, int np2,
                                 const uint16_t* x, size_t ldx, int M, float* out)
{
    const size_t ostride = (size_t)M * QR;
    for (int j0 = 0; j0 < np; j0 += 4) {
        const int pt = np - j0 < 4 ? np - j0 : 4;
        const uint16_t* pj = (const uint16_t*)((const unsigned char*)panel + (size_t)j0 * pstride);
        for (int m = 0; m < M;) {
            const int mt = M - m < 4 ? M - m : 4;
            const uint16_t* xm = x + (size_t)m * ldx;
            float* o = out + (size_t)j0 * ostride + (size_t)m * QR;
#  define BF_TILE(PT, MT) bf16_tile(pj, pstride, PT, MT, np2, xm, ldx, ostride, o)
            switch (pt * 8 + mt) {
            case 4 * 8 + 4: BF_TILE(4, 4); break;
            case 4 * 8 + 3: BF_TILE(4, 3); break;
            case 4 * 8 + 2: BF_TILE(4, 2); break;
            case 4 * 8 + 1: BF_TILE(4, 1); break;
            case 3 * 8 + 4: BF_TILE(3, 4); break;
            case 3 * 8 + 3: BF_TILE(3, 3); break;
            case 3 * 8 + 2: BF_TILE(3, 2); break;
            case 3 * 8 + 1: BF_TILE(3, 1); break;
            case 2 * 8 + 4: BF_TILE(2, 4); break;
            case 2 * 8 + 3: BF_TILE(2, 3); break;
            case 2 * 8 + 2: BF_TILE(2, 2); break;
            case 2 * 8 + 1: BF_TILE(2, 1); break;
            case 1 * 8 + 4: BF_TILE(1, 4); break;
            case 1 * 8 + 3: BF_TILE(1, 3); break;
            case 1 * 8 + 2: BF_TILE(1, 2); break;
            default: BF_TILE(1, 1); break;
            }
#  undef BF_TILE
            m += mt;
        }
    }
}

const qkernel rnnx_qkernel_avx512_vnni = {"avx512_vnni", "avx512", rnnx_cpu_avx512_vnni,
                                          dot_i8_avx512_vnni, NULL};
const qkernel rnnx_qkernel_avx512_bf16 = {"avx512_bf16", "avx512", rnnx_cpu_avx512_bf16, NULL,
                                          dot_bf16_avx512};
#else
const qkernel rnnx_qkernel_avx512_vnni = QKERNEL_ABSENT("avx512_vnni", "avx512");
const qkernel rnnx_qkernel_avx512_bf16 = QKERNEL_ABSENT("avx512_bf16", "avx512");
#endif
