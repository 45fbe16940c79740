/*
 * quant/qkernels.h: the int8 and bfloat16 product kernels, one source per
 * ISA (qdot_<isa>.c), and the panel geometry they share with pack.c and
 * forward.c.  Internal to the core.
 *
 * A kernel computes, for one packed panel (RNNX_QROWS = 16 output rows) and M
 * rows of quantized activations, the 16 sums of each row:
 *   int8:  out[m][r] = sum_k x[m][k] * W[r][k]                 exact, int32
 *   bf16:  out[m][r] = the vdpbf16ps chain over pairs of k (quant.h)  float32
 * so every ISA writes the same bits.
 */
#ifndef RNNX_QKERNELS_H
#define RNNX_QKERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "../compiler.h"
#include "quant.h"

enum { QR = RNNX_QROWS, QGROUP_BYTES = 4 * RNNX_QROWS };  /* one column group of a panel */

/* int8: nq groups of 4 columns, panel = nq * 64 bytes of weights, then
 * rowsum (16 int32) and scale (16 float); x rows of 4*nq bytes at stride ldx
 * bytes, zero past the matrix's columns.  out (M,16) OUT. */
typedef void (*qdot_i8_fn)(const int8_t* panel, const int32_t* rowsum, int nq, const int8_t* x,
                           size_t ldx, int M, int32_t* out);
/* bf16: np pairs of columns, panel = np * 64 bytes; x rows of 2*np values at
 * stride ldx values.  out (M,16) OUT. */
typedef void (*qdot_bf16_fn)(const uint16_t* panel, int np, const uint16_t* x, size_t ldx, int M,
                             float* out);

typedef struct qkernel {
    const char* name;      /* quant.h's rnnx_qkernel_name */
    const char* isa;       /* the rnnx_get_isa() it serves in "auto", best first */
    int (*runs)(void);     /* this CPU runs it (kernels/cpu.h) */
    qdot_i8_fn dot_i8;     /* or NULL: the generic one */
    qdot_bf16_fn dot_bf16; /* or NULL: the generic one */
} qkernel;

/* One per source file; a table whose ISA is not built has NULL kernels. */
extern const qkernel rnnx_qkernel_avx512_vnni, rnnx_qkernel_avx512_bf16, rnnx_qkernel_avx_vnni,
    rnnx_qkernel_avx2, rnnx_qkernel_neon_dotprod, rnnx_qkernel_neon, rnnx_qkernel_generic;

/* The kernels that run qtype now (never NULL). */
qdot_i8_fn rnnx_qdot_i8(void);
qdot_bf16_fn rnnx_qdot_bf16(void);

/* Bytes of one panel of a matrix of `cols` columns; columns groups (int8: 4,
 * bf16: 2) per panel. */
static inline int qgroups(int qtype, int cols)
{
    return qtype == RNNX_QINT8 ? (cols + 3) / 4 : (cols + 1) / 2;
}
static inline size_t qpanel_bytes(int qtype, int cols)
{
    return (size_t)qgroups(qtype, cols) * QGROUP_BYTES + (qtype == RNNX_QINT8 ? 2 * 64 : 0);
}

/* The generic bf16 step, exactly one lane of vdpbf16ps for one product:
 * subnormal inputs read as zero, fma with one rounding, and a result whose
 * exact value is below the least normal in magnitude flushed to a zero of
 * its sign (the instruction tests tininess before rounding). */
float rnnx_qbf16_madd(float acc, uint16_t a, uint16_t b);

#endif /* RNNX_QKERNELS_H */
