/*
 * quant/qdot_generic.c: the portable kernels, the exact definition every ISA
 * matches: int8 sums in int32, and the bfloat16 chain of vdpbf16ps emulated
 * step by step (rnnx_qbf16_madd).  Also the fallback where an ISA lacks one.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "qkernels.h"

static void dot_i8_one(const int8_t* panel, const int32_t* rowsum, int nq, const int8_t* x,
                       size_t ldx, int M, int32_t* out)
{
    (void)rowsum;
    for (int m = 0; m < M; m++) {
        const int8_t* xm = x + (size_t)m * ldx;
        int32_t acc[QR] = {0};
        for (int q = 0; q < nq; q++) {
            const int8_t* w = panel + (size_t)q * QGROUP_BYTES;
            for (int r = 0; r < QR; r++)
                acc[r] += xm[4 * q] * w[4 * r] + xm[4 * q + 1] * w[4 * r + 1] +
                          xm[4 * q + 2] * w[4 * r + 2] + xm[4 * q + 3] * w[4 * r + 3];
        }
        memcpy(out + (size_t)m * QR, acc, sizeof acc);
    }
}
QDOT_I8_PANELS(dot_i8_generic, dot_i8_one)

static float bf16_value(uint16_t b)
{
    const uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return fabsf(f) < FLT_MIN ? copysignf(0.0f, f) : f;  /* subnormal in: zero (DAZ) */
}

float rnnx_qbf16_madd(float acc, uint16_t a, uint16_t b)
{
    const float fa = bf16_value(a), fb = bf16_value(b);
    const float r = fmaf(fa, fb, acc);
    const float mag = fabsf(r);
    if (mag > FLT_MIN || r != r)
        return r;
    if (mag < FLT_MIN)
        return copysignf(0.0f, r);
    /* |r| rounded to the least normal: flush it if the exact value was below.
     * fa*fb is exact in double (8-bit significands); TwoSum gives the exact
     * acc + fa*fb as s + e. */
    const double p = (double)fa * (double)fb, s = (double)acc + p;
    const double bp = s - (double)acc, e = ((double)acc - (s - bp)) + (p - bp);
    const int below = fabs(s) < (double)FLT_MIN ||
                      (fabs(s) == (double)FLT_MIN && e != 0.0 && (e < 0.0) != (s < 0.0));
    return below ? copysignf(0.0f, (float)s) : r;
}

static void dot_bf16_generic(const uint16_t* panel, size_t pstride, int np, int np2,
                             const uint16_t* x, size_t ldx, int M, float* out)
{
    for (int j = 0; j < np; j++) {
        const uint16_t* pj = (const uint16_t*)((const unsigned char*)panel + (size_t)j * pstride);
        for (int m = 0; m < M; m++) {
            const uint16_t* xm = x + (size_t)m * ldx;
            float acc[QR];
            for (int r = 0; r < QR; r++)
                acc[r] = 0.0f;
            for (int p = 0; p < np2; p++) {
                const uint16_t* w = pj + (size_t)p * (QGROUP_BYTES / 2);
                for (int r = 0; r < QR; r++) {
                    /* the instruction's order: the odd element of the pair first */
                    acc[r] = rnnx_qbf16_madd(acc[r], xm[2 * p + 1], w[2 * r + 1]);
                    acc[r] = rnnx_qbf16_madd(acc[r], xm[2 * p], w[2 * r]);
                }
            }
            memcpy(out + ((size_t)j * M + m) * QR, acc, sizeof acc);
        }
    }
}

static int runs_any(void) { return 1; }

const qkernel rnnx_qkernel_generic = {"generic", "generic", runs_any, dot_i8_generic,
                                      dot_bf16_generic};
