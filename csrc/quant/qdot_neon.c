/*
 * quant/qdot_neon.c: int8 on AArch64 NEON: sdot (ARMv8.2 dotprod, through a
 * target attribute, chosen at run time by the CPU's hwcap) and a path for
 * cores without it (smull + sadalp).  A panel's group of 4 columns is four
 * 16-byte vectors of 4 rows x 4 bytes.  bfloat16 runs the generic kernel.
 * Both are exact int32 sums, so they equal the generic kernel bit for bit.
 */
#include "qkernels.h"

#ifdef RNNX_ARM64_TARGETS
#  include <arm_neon.h>

#  include "../kernels/cpu.h"

static inline int8x16_t broadcast_quad(const int8_t* p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

#  if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 10)
__attribute__((target("arch=armv8.2-a+dotprod"))) static void
neon_dotprod_one(const int8_t* panel, const int32_t* rowsum, int nq, const int8_t* x,
                 size_t ldx, int M, int32_t* out)
{
    (void)rowsum;
    for (int m = 0; m < M; m++) {
        int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
        const int8_t* xm = x + (size_t)m * ldx;
        for (int q = 0; q < nq; q++) {
            const int8x16_t xb = broadcast_quad(xm + 4 * q);
            const int8_t* w = panel + (size_t)q * QGROUP_BYTES;
            a0 = vdotq_s32(a0, vld1q_s8(w), xb);
            a1 = vdotq_s32(a1, vld1q_s8(w + 16), xb);
            a2 = vdotq_s32(a2, vld1q_s8(w + 32), xb);
            a3 = vdotq_s32(a3, vld1q_s8(w + 48), xb);
        }
        vst1q_s32(out + (size_t)m * QR, a0);
        vst1q_s32(out + (size_t)m * QR + 4, a1);
        vst1q_s32(out + (size_t)m * QR + 8, a2);
        vst1q_s32(out + (size_t)m * QR + 12, a3);
    }
}
QDOT_I8_PANELS(dot_i8_neon_dotprod, neon_dotprod_one)
const qkernel rnnx_qkernel_neon_dotprod = {"neon_dotprod", "neon", rnnx_cpu_neon_dotprod,
                                           dot_i8_neon_dotprod, NULL};
#  else
const qkernel rnnx_qkernel_neon_dotprod = QKERNEL_ABSENT("neon_dotprod", "neon");
#  endif

/* Without sdot: smull gives the 8 products of 2 rows x 4 bytes as int16,
 * sadalp adds adjacent pairs into int32 lanes (row r: k01, k23; row r+1: ...),
 * and a final pairwise add gives each row's sum. */
static void neon_one(const int8_t* panel, const int32_t* rowsum, int nq, const int8_t* x,
                     size_t ldx, int M, int32_t* out)
{
    (void)rowsum;
    for (int m = 0; m < M; m++) {
        int32x4_t acc[8];
        for (int i = 0; i < 8; i++)
            acc[i] = vdupq_n_s32(0);
        const int8_t* xm = x + (size_t)m * ldx;
        for (int q = 0; q < nq; q++) {
            const int8x16_t xb = broadcast_quad(xm + 4 * q);
            const int8_t* w = panel + (size_t)q * QGROUP_BYTES;
            for (int i = 0; i < 4; i++) {
                const int8x16_t wv = vld1q_s8(w + 16 * i);
                acc[2 * i] = vpadalq_s16(acc[2 * i], vmull_s8(vget_low_s8(wv), vget_low_s8(xb)));
                acc[2 * i + 1] = vpadalq_s16(acc[2 * i + 1], vmull_high_s8(wv, xb));
            }
        }
        for (int i = 0; i < 4; i++)
            vst1q_s32(out + (size_t)m * QR + 4 * i, vpaddq_s32(acc[2 * i], acc[2 * i + 1]));
    }
}
QDOT_I8_PANELS(dot_i8_neon, neon_one)
const qkernel rnnx_qkernel_neon = {"neon", "neon", rnnx_cpu_neon, dot_i8_neon, NULL};
#else
const qkernel rnnx_qkernel_neon_dotprod = QKERNEL_ABSENT("neon_dotprod", "neon");
const qkernel rnnx_qkernel_neon = QKERNEL_ABSENT("neon", "neon");
#endif
