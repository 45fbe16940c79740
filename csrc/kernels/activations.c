/*
 * kernels/activations.c: sigmoid and tanh for both dtypes, branch-free and
 * without libm so that the cells' gate loops vectorize, and `activation`, the
 * hook through which tests/test_kernels.py measures them.
 *
 * Not compiled on its own: kernels_body.c includes it once per (dtype,
 * instruction set), so every function here is static.
 */

#ifdef RNNX_DOUBLE

/* float64 activations, written like the float32 ones below so that the gate
 * loops vectorize (libm's exp and tanh are opaque calls): no branches, no
 * libm, no float-to-int conversion (the integer parts go through the bits of
 * a double, with 64-bit adds and shifts only); NaN in gives NaN out; within a
 * few ulp of the correctly rounded value (tests/test_kernels.py measures it). */

static inline double bits_to_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static inline uint64_t double_to_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

/* 2^n for an integer-valued double n in [-1022, 1023]: n + 1.5*2^52 holds n in its
 * low bits, two's complement. */
static inline double exp2_integer(double n)
{
    const double magic = 6755399441055744.0;  /* 1.5 * 2^52 */
    const uint64_t low = double_to_bits(n + magic) - double_to_bits(magic);
    return bits_to_double((low + 1023u) << 52);
}

/* e^y for y <= 0: y = n ln2 + r, |r| <= ln2/2, e^y = 2^n e^r. */
static inline double exp_nonpositive(double y)
{
    const double magic = 6755399441055744.0;     /* x + magic rounds x to an integer */
    y = y < -746.0 ? -746.0 : y;                  /* e^-746 is 0 in double; keeps n >= -1077 */
    const double n = (y * 1.44269504088896338700 + magic) - magic;
    /* ln2 = hi + lo, hi with 32 trailing zero bits, so n * hi is exact */
    const double r = (y - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
    /* e^r by its Taylor series to r^13: the remainder is below 2^-57 for |r| <= ln2/2 */
    double p = 1.0 / 6227020800.0;
    p = MADD(p, r, 1.0 / 479001600.0);
    p = MADD(p, r, 1.0 / 39916800.0);
    p = MADD(p, r, 1.0 / 3628800.0);
    p = MADD(p, r, 1.0 / 362880.0);
    p = MADD(p, r, 1.0 / 40320.0);
    p = MADD(p, r, 1.0 / 5040.0);
    p = MADD(p, r, 1.0 / 720.0);
    p = MADD(p, r, 1.0 / 120.0);
    p = MADD(p, r, 1.0 / 24.0);
    p = MADD(p, r, 1.0 / 6.0);
    p = MADD(p, r, 0.5);
    p = MADD(p, r, 1.0);
    p = MADD(p, r, 1.0);
    /* 2^n as two normal factors, so results down in the subnormal range round once */
    const double n1 = (n * 0.5 + magic) - magic, n2 = n - n1;
    return p * exp2_integer(n1) * exp2_integer(n2);
}

/* e^y - 1 for y <= 0, without the cancellation of exp(y) - 1 near 0. */
static inline double expm1_nonpositive(double y)
{
    /* Taylor series to y^14 for |y| < 0.35 (remainder below 2^-58 relative) */
    double p = 1.0 / 87178291200.0;
    p = MADD(p, y, 1.0 / 6227020800.0);
    p = MADD(p, y, 1.0 / 479001600.0);
    p = MADD(p, y, 1.0 / 39916800.0);
    p = MADD(p, y, 1.0 / 3628800.0);
    p = MADD(p, y, 1.0 / 362880.0);
    p = MADD(p, y, 1.0 / 40320.0);
    p = MADD(p, y, 1.0 / 5040.0);
    p = MADD(p, y, 1.0 / 720.0);
    p = MADD(p, y, 1.0 / 120.0);
    p = MADD(p, y, 1.0 / 24.0);
    p = MADD(p, y, 1.0 / 6.0);
    p = MADD(p, y, 0.5);
    p = MADD(p, y, 1.0);
    const double near0 = p * y;
    const double far = exp_nonpositive(y) - 1.0;
    return y > -0.35 ? near0 : far;
}

/* sigma(x) = 1/(1+e^-x) for x >= 0 and e^x/(1+e^x) below, so e^-|x| never overflows */
static inline double sigmoid(double x)
{
    const double e = exp_nonpositive(-fabs(x));
    const double s = 1.0 / (1.0 + e);
    return x >= 0 ? s : e * s;
}

/* tanh|x| = -m/(2+m) with m = e^(-2|x|) - 1, sign restored */
static inline double tanh_act(double x)
{
    const double m = expm1_nonpositive(-2.0 * fabs(x));
    return copysign(-m / (2.0 + m), x);
}

#else

/* float32 activations written so the compiler can vectorize the gate loops
 * (libm's expf/tanhf are opaque calls to it): no branches, no libm, no
 * float-to-int conversion; NaN in gives NaN out; accurate to a few ulp over
 * the whole float range (tests/test_activations.py measures it). */

static inline float bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* e^y for y <= 0: y = n ln2 + r, |r| <= ln2/2, e^y = 2^n e^r. */
static inline float exp_nonpositive(float y)
{
    const float magic = 12582912.0f;            /* 1.5 * 2^23: x + magic rounds x to an integer */
    y = y < -104.0f ? -104.0f : y;               /* e^-104 is 0 in float; keeps n >= -151; NaN passes */
    const float kf = y * 1.44269504088896341f + magic;
    const float n = kf - magic;
    uint32_t kbits;
    memcpy(&kbits, &kf, sizeof kbits);
    const int32_t ni = (int32_t)(kbits - 0x4B400000u);   /* n as an integer, from magic's low bits */
    const float r = (y - n * 0.693145751953125f) - n * 1.42860682030941723212e-6f;  /* ln2 hi + lo */
    /* e^r by its Taylor series to r^7: the remainder is below 2^-27 for |r| <= ln2/2 */
    float p = 1.0f / 5040;
    p = MADD(p, r, 1.0f / 720);
    p = MADD(p, r, 1.0f / 120);
    p = MADD(p, r, 1.0f / 24);
    p = MADD(p, r, 1.0f / 6);
    p = MADD(p, r, 0.5f);
    p = MADD(p, r, 1.0f);
    p = MADD(p, r, 1.0f);
    /* 2^n as two normal factors, so results down in the subnormal range round once, gradually */
    const int32_t n1 = ni / 2, n2 = ni - n1;
    return p * bits_to_float((uint32_t)(n1 + 127) << 23) * bits_to_float((uint32_t)(n2 + 127) << 23);
}

/* e^y - 1 for y <= 0, without the cancellation of exp(y) - 1 near 0. */
static inline float expm1_nonpositive(float y)
{
    /* Taylor series to y^8 for |y| < 0.35 (remainder below 2^-31 relative) */
    float p = 1.0f / 40320;
    p = MADD(p, y, 1.0f / 5040);
    p = MADD(p, y, 1.0f / 720);
    p = MADD(p, y, 1.0f / 120);
    p = MADD(p, y, 1.0f / 24);
    p = MADD(p, y, 1.0f / 6);
    p = MADD(p, y, 0.5f);
    p = MADD(p, y, 1.0f);
    const float near0 = p * y;
    const float far = exp_nonpositive(y) - 1.0f;
    return y > -0.35f ? near0 : far;
}

/* sigma(x) = 1/(1+e^-x) for x >= 0 and e^x/(1+e^x) below, so e^-|x| never overflows */
static inline float sigmoid(float x)
{
    const float e = exp_nonpositive(-fabsf(x));
    const float s = 1.0f / (1.0f + e);
    return x >= 0 ? s : e * s;
}

/* tanh|x| = -m/(2+m) with m = e^(-2|x|) - 1, sign restored */
static inline float tanh_act(float x)
{
    const float m = expm1_nonpositive(-2.0f * fabsf(x));
    return copysignf(-m / (2.0f + m), x);
}

#endif

/* y[k] = f(x[k]) for the tests of the activations: 0 sigmoid, 1 tanh. */
static int activation(int which, const void* xv, void* yv, size_t n)
{
    const real* x = xv;
    real* y = yv;
    for (size_t k = 0; k < n; k++)
        y[k] = which == 0 ? sigmoid(x[k]) : tanh_act(x[k]);
    return RNNX_OK;
}
