/*
 * kernels/madd_fma.h: MADD as one fused multiply-add, for the ISA headers of
 * instruction sets that have FMA (the compiler emits the instruction for its
 * builtin there, not a libm call).
 */
#ifdef RNNX_DOUBLE
#  define MADD(a, b, c) __builtin_fma((a), (b), (c))
#else
#  define MADD(a, b, c) __builtin_fmaf((a), (b), (c))
#endif
