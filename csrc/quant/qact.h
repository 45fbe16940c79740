/*
 * quant/qact.h: sigmoid and tanh in float32 for the quantized cells, written
 * with plain IEEE operations only (no libm, no FMA; the core is built with
 * -ffp-contract=off), so they give the same bits on every ISA and platform,
 * and branch-free so the gate loops vectorize.  Within 2 ulp of the correctly
 * rounded value for |x| < 88 (tests/test_quantize_kernels.py measures it).
 * Included by forward.c only.
 */
#ifndef RNNX_QACT_H
#define RNNX_QACT_H

#include <stdint.h>
#include <string.h>

/* e^y - 1 for y <= 0: y = n ln2 + r, |r| <= ln2/2, e^y - 1 = 2^n (e^r - 1) + (2^n - 1),
 * e^r - 1 by its Taylor series to r^7 (remainder below 2^-26 relative). */
static inline float qexpm1_nonpositive(float y)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23: x + magic rounds x to an integer */
    y = y < -87.0f ? -87.0f : y;
    const float n = (y * 1.44269504f + magic) - magic;
    /* ln2 = hi + lo, hi with 12 trailing zero bits, so n * hi is exact for |n| <= 126 */
    const float r = (y - n * 0.693145752f) - n * 1.42860677e-06f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r;
    uint32_t bits;
    const float shifted = n + magic;
    memcpy(&bits, &shifted, sizeof bits);
    bits = (uint32_t)((int32_t)(bits - 0x4b400000u) + 127) << 23; /* 2^n, n in [-126, 0] */
    float s;
    memcpy(&s, &bits, sizeof s);
    return s * p + (s - 1.0f);
}

static inline float qsigmoid(float x)
{
    const float a = x < 0.0f ? -x : x;
    const float e = qexpm1_nonpositive(-a) + 1.0f; /* e^-|x| */
    const float s = 1.0f / (1.0f + e);
    return x != x ? x : x >= 0.0f ? s : e * s;
}

static inline float qtanh(float x)
{
    const float a = x < 0.0f ? -x : x;
    const float m = qexpm1_nonpositive(-2.0f * a); /* e^-2|x| - 1, no cancellation */
    const float t = -m / (2.0f + m);
    return x != x ? x : x < 0.0f ? -t : t;
}

/* v[i] := f(v[i]) for i < n, on arrays, so the loops vectorize. */
static inline void qsigmoid_n(float* restrict v, int n)
{
    for (int i = 0; i < n; i++)
        v[i] = qsigmoid(v[i]);
}

static inline void qtanh_n(float* restrict v, int n)
{
    for (int i = 0; i < n; i++)
        v[i] = qtanh(v[i]);
}

#endif /* RNNX_QACT_H */
