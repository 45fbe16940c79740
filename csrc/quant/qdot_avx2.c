/*
 * quant/qdot_avx2.c: int8 on AVX2 (vpmaddubsw, vpmaddwd) and on AVX-VNNI
 * (the VEX vpdpbusd), built where the compiler targets x86-64.  A panel's
 * group of 4 columns is two 32-byte vectors of 8 rows each; the activation's
 * 4 bytes are broadcast.  bfloat16 runs the generic kernel on these CPUs.
 *
 * vpmaddubsw multiplies unsigned by signed bytes and saturates each pair's
 * int16 sum.  With |x| as the unsigned operand and sign(x)*w as the signed one
 * (vpsignb), a pair sums at most 2*127*127 = 32258 < 32767: it never
 * saturates, so the int32 sums equal the generic kernel's exactly.
 */
#include "qkernels.h"

#ifdef RNNX_X86_TARGETS
#  include <immintrin.h>

#  include "../kernels/cpu.h"

static inline int32_t load_quad(const int8_t* p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

__attribute__((target("avx2,fma"))) static void avx2_one(const int8_t* panel,
                                                            const int32_t* rowsum, int nq,
                                                            const int8_t* x, size_t ldx, int M,
                                                            int32_t* out)
{
    (void)rowsum;
    const __m256i ones = _mm256_set1_epi16(1);
    for (int m = 0; m < M; m++) {
        __m256i a0 = _mm256_setzero_si256(), a1 = a0;
        const int8_t* xm = x + (size_t)m * ldx;
        for (int q = 0; q < nq; q++) {
            const __m256i xb = _mm256_set1_epi32(load_quad(xm + 4 * q));
            const __m256i ax = _mm256_abs_epi8(xb);
            const int8_t* w = panel + (size_t)q * QGROUP_BYTES;
            const __m256i w0 = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i*)w), xb);
            const __m256i w1 = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i*)(w + 32)), xb);
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_maddubs_epi16(ax, w0), ones));
            a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_maddubs_epi16(ax, w1), ones));
        }
        _mm256_storeu_si256((__m256i*)(out + (size_t)m * QR), a0);
        _mm256_storeu_si256((__m256i*)(out + (size_t)m * QR + 8), a1);
    }
}
QDOT_I8_PANELS(dot_i8_avx2, avx2_one)

#  if (defined(__clang__) && __clang_major__ >= 12) || \
      (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11)
/* AVX-VNNI: as AVX-512 VNNI on 8 lanes, x + 128 unsigned, 128 rowsum off. */
__attribute__((target("avx2,fma,avxvnni"))) static void avx_vnni_one(const int8_t* panel,
                                                                        const int32_t* rowsum,
                                                                        int nq, const int8_t* x,
                                                                        size_t ldx, int M,
                                                                        int32_t* out)
{
    const __m256i flip = _mm256_set1_epi32((int32_t)0x80808080u);
    const __m256i s0 = _mm256_slli_epi32(_mm256_loadu_si256((const __m256i*)rowsum), 7);
    const __m256i s1 = _mm256_slli_epi32(_mm256_loadu_si256((const __m256i*)(rowsum + 8)), 7);
    for (int m = 0; m < M; m++) {
        __m256i a0 = _mm256_setzero_si256(), a1 = a0;
        const int8_t* xm = x + (size_t)m * ldx;
        for (int q = 0; q < nq; q++) {
            const __m256i xb = _mm256_xor_si256(_mm256_set1_epi32(load_quad(xm + 4 * q)), flip);
            const int8_t* w = panel + (size_t)q * QGROUP_BYTES;
            a0 = _mm256_dpbusd_avx_epi32(a0, xb, _mm256_loadu_si256((const __m256i*)w));
            a1 = _mm256_dpbusd_avx_epi32(a1, xb, _mm256_loadu_si256((const __m256i*)(w + 32)));
        }
        _mm256_storeu_si256((__m256i*)(out + (size_t)m * QR), _mm256_sub_epi32(a0, s0));
        _mm256_storeu_si256((__m256i*)(out + (size_t)m * QR + 8), _mm256_sub_epi32(a1, s1));
    }
}
QDOT_I8_PANELS(dot_i8_avx_vnni, avx_vnni_one)
const qkernel rnnx_qkernel_avx_vnni = {"avx_vnni", "avx2", rnnx_cpu_avx_vnni, dot_i8_avx_vnni,
                                       NULL};
#  else
const qkernel rnnx_qkernel_avx_vnni = QKERNEL_ABSENT("avx_vnni", "avx2");
#  endif
const qkernel rnnx_qkernel_avx2 = {"avx2", "avx2", rnnx_cpu_avx2, dot_i8_avx2, NULL};
#else
const qkernel rnnx_qkernel_avx_vnni = QKERNEL_ABSENT("avx_vnni", "avx2");
const qkernel rnnx_qkernel_avx2 = QKERNEL_ABSENT("avx2", "avx2");
#endif
