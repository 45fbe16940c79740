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
#include <string.h>

#include "../compiler.h"
#include "quant.h"

enum { QR = RNNX_QROWS, QGROUP_BYTES = 4 * RNNX_QROWS };  /* one column group of a panel */

/* A kernel call covers np panels, panel j at panel + j * pstride bytes, so
 * each activation load serves several panels (the gates of a block of units,
 * or neighbouring panels) and each weight load several rows.  out (np,M,16)
 * OUT: panel j's sums of row m at out + (j*M + m)*16.
 *
 * int8: a panel is nq groups of 4 columns (nq * 64 bytes of weights), then
 * its rowsum (16 int32) and scale (16 float); x rows of 4*nq bytes at stride
 * ldx bytes, zero past the matrix's columns. */
typedef void (*qdot_i8_fn)(const int8_t* panel, size_t pstride, int np, int nq, const int8_t* x,
                           size_t ldx, int M, int32_t* out);
/* bf16: a panel is np2 pairs of columns (np2 * 64 bytes); x rows of 2*np2
 * values at stride ldx values. */
typedef void (*qdot_bf16_fn)(const uint16_t* panel, size_t pstride, int np, int np2,
                             const uint16_t* x, size_t ldx, int M, float* out);

/* The int8 kernel `name` over np panels from `one`, a kernel of one panel
 * (rowsum: the panel's 16 row sums) with the signature
 *   one(panel, rowsum, nq, x, ldx, M, out (M,16)). */
#define QDOT_I8_PANELS(name, one)                                                              \
    static void name(const int8_t* panel, size_t pstride, int np, int nq, const int8_t* x,    \
                     size_t ldx, int M, int32_t* out)                                         \
    {                                                                                         \
        for (int j = 0; j < np; j++) {                                                        \
            const int8_t* pj = panel + (size_t)j * pstride;                                   \
            int32_t rowsum[QR];                                                               \
            memcpy(rowsum, pj + (size_t)nq * QGROUP_BYTES, sizeof rowsum);                    \
            one(pj, rowsum, nq, x, ldx, M, out + (size_t)j * M * QR);                         \
        }                                                                                     \
    }

typedef struct qkernel {
    const char* name;      /* quant.h's rnnx_qkernel_name */
    const char* isa;       /* the rnnx_get_isa() it serves in "auto", best first */
    int (*runs)(void);     /* this CPU runs it (kernels/cpu.h) */
    qdot_i8_fn dot_i8;     /* or NULL: the generic one */
    qdot_bf16_fn dot_bf16; /* or NULL: the generic one */
} qkernel;

/* One per source file; a table whose ISA is not built has NULL kernels and never runs:
 * QKERNEL_ABSENT(name, isa) is its initializer. */
int rnnx_qkernel_runs_never(void);  /* 0 (qdispatch.c) */
#define QKERNEL_ABSENT(name, isa) {name, isa, rnnx_qkernel_runs_never, NULL, NULL}

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
