/* The machine's float32 multiply-add peak, per instruction set: a loop that keeps
 * ACCUMULATORS independent vector chains in registers (enough to cover the FMA latency
 * on every x86-64 and ARM core we measure), touches no memory, and so runs at the rate
 * the core's vector units allow. benchmarks/fma_peak.py compiles it with the system C
 * compiler and calls it through ctypes (one call per thread); each returns a sum the
 * caller ignores, so the compiler cannot drop the loop.
 *
 * flops of one call = iterations * ACCUMULATORS * lanes * 2.
 * The "generic" loop is what rnnx's portable build has: 16-byte vectors and, on x86-64,
 * no FMA (SSE2), so a multiply-add is a multiply then an add.  Built with
 * -ffp-contract=fast, the compiler fuses a*b+c where the function's target has FMA. */
#define ACCUMULATORS 12

#define PEAK_LOOP(target_attribute, name, bytes)                               \
    typedef float name##_vec __attribute__((vector_size(bytes)));              \
    target_attribute double name(long iterations) {                            \
        name##_vec acc[ACCUMULATORS];                                           \
        name##_vec scale, shift;                                                \
        int lanes = (int)(bytes / sizeof(float));                               \
        for (int l = 0; l < lanes; l++) { scale[l] = 0.999999f; shift[l] = 1e-7f; } \
        for (int k = 0; k < ACCUMULATORS; k++)                                  \
            for (int l = 0; l < lanes; l++) acc[k][l] = (float)(k + l) * 1e-3f;  \
        for (long n = 0; n < iterations; n++)                                   \
            _Pragma("GCC unroll 12")                                            \
            for (int k = 0; k < ACCUMULATORS; k++) acc[k] = acc[k] * scale + shift; \
        double sum = 0.0;                                                       \
        for (int k = 0; k < ACCUMULATORS; k++)                                  \
            for (int l = 0; l < lanes; l++) sum += acc[k][l];                   \
        return sum;                                                             \
    }

PEAK_LOOP(, peak_generic, 16)

#if defined(__x86_64__) && defined(__GNUC__)
PEAK_LOOP(__attribute__((target("avx2,fma"))), peak_avx2, 32)
PEAK_LOOP(__attribute__((target("avx512f"))), peak_avx512, 64)
#endif

#if defined(__aarch64__) && defined(__GNUC__)
/* NEON is the baseline; -ffp-contract=fast fuses the loop's multiply-adds into FMLA */
PEAK_LOOP(, peak_neon, 16)
#endif
