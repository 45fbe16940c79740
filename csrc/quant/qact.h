/*
 * quant/qact.h: sigmoid and tanh in float32 for the quantized cells, written
 * with plain IEEE operations only (no libm, no FMA; the core is built with
 * -ffp-contract=off), so they give the same bits on every ISA and platform,
 * and branch-free so the gate loops vectorize.  Within 3 ulp of the correctly
 * rounded value for |x| <= 87; below -87, sigmoid is e^-87 / (1 + e^-87),
 * off by less than 2e-38 (tests/test_quantize_kernels.py measures both).
 * Included by forward.c only.
 */
#ifndef RNNX_QACT_H
#define RNNX_QACT_H

#include <stdint.h>
#include <string.h>

/* For y <= 0: y = n ln2 + r, |r| <= ln2/2, *scale = 2^n, and the return value
 * e^r - 1 by its Taylor series to r^7 (remainder below 2^-26 relative); then
 * e^y = 2^n (1 + (e^r - 1)) and e^y - 1 = 2^n (e^r - 1) + (2^n - 1) without
 * cancellation.  y below -87 is read as -87 (2^n stays normal). */
static inline float qexp_parts(float y, float* scale)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23: x + magic rounds x to an integer */
    y = y < -87.0f ? -87.0f : y;
    const float n = (y * 1.44269504f + magic) - magic;
    /* ln2 = hi + lo, hi with 7 trailing zero bits, so n * hi is exact for |n| <= 126 */
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
    memcpy(scale, &bits, sizeof bits);
    return p;
}

static inline float qsigmoid(float x)
{
    const float a = x < 0.0f ? -x : x;
    float two_n;
    const float p = qexp_parts(-a, &two_n);
    const float e = two_n * (p + 1.0f); /* e^-|x| */
    const float s = 1.0f / (1.0f + e);
    return x != x ? x : x >= 0.0f ? s : e * s;
}

static inline float qtanh(float x)
{
    const float a = x < 0.0f ? -x : x;
    float two_n;
    const float p = qexp_parts(-2.0f * a, &two_n);
    const float m = two_n * p + (two_n - 1.0f); /* e^-2|x| - 1, no cancellation */
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
