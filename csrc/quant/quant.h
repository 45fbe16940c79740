/*
 * quant/quant.h: int8 and bfloat16 weights for inference (docs/quantization.md).
 *
 * C99, no Python, float32 activations.  A layer's matrices (W_ih (G,I), W_hh
 * (G,H) or (G,P), W_hr (P,H)) are each stored in one of two reduced formats
 * and packed into panels of RNNX_QROWS output rows; a forward call runs T steps
 * of one layer and direction with initial and final state (a stream step is
 * T = 1).  The numbers it computes do not depend on the instruction set or the
 * thread count: integer sums are exact, bfloat16 sums follow vdpbf16ps exactly
 * on every ISA, and every float operation around them runs in one fixed order
 * in portable code.
 *
 * int8 (RNNX_QINT8): weights symmetric per output row, q = rint(w / s) with
 * s = max|w_row| / 127 (s = 0 for a zero row), |q| <= 127.  Activations (x_t,
 * h_{t-1}, m_t = o*tanh(c_t) before W_hr, r*h_{t-1} before a reset-before
 * GRU's W_hn) are quantized the same way per row of the batch, per step, at
 * run time.  A product row is sum_k xq[k]*wq[k] in int32, exact, then
 * (float)sum * (s_x * s_w) in float32.
 *
 * bfloat16 (RNNX_QBFLOAT16): weights and activations rounded to bfloat16 (to
 * nearest even); a product row accumulates, from +0, the pairs k = (2p, 2p+1)
 * in order of p as vdpbf16ps does: acc = fma(x[2p+1], w[2p+1], acc), then
 * fma(x[2p], w[2p], acc), inputs and results flushed to zero when subnormal.
 *
 * Gates, cell state and outputs are float32:
 *   pre = (X-part + b_ih) + (H-part + b_hh)     (this order, every cell)
 * GRU reset after: n = tanh((X_n + b_in) + r * (H_n + b_hn)); reset before:
 * the recurrent input of W_hn is r*h_{t-1}, quantized again.
 */
#ifndef RNNX_QUANT_H
#define RNNX_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "rnnx.h"

#ifdef __cplusplus
extern "C" {
#endif

enum rnnx_qtype { RNNX_QINT8 = 1, RNNX_QBFLOAT16 = 2 };

/* Output rows per packed panel, every ISA: one 64-byte vector of int32 or
 * float32 sums.  A panel of int8 holds, for each group of 4 columns, the
 * panel's 16 rows x 4 bytes; of bfloat16, for each pair of columns, 16 rows x
 * 2 values.  Rows past the matrix's and columns past its width are zero. */
#define RNNX_QROWS 16

/* The largest number of columns (I, H or P) an int8 matrix may have: keeps
 * every int32 sum of 127*127 products, and the 128-shifted sums of the VNNI
 * kernels, exact. */
#define RNNX_QMAX_COLS 65536

/* --- weights ------------------------------------------------------------- */

/* int8: q (rows,cols) OUT, scale (rows,) OUT, from w (rows,cols) IN. */
int rnnx_quantize_int8(int rows, int cols, const float* w, int8_t* q, float* scale);
/* bfloat16 bits (n,) OUT from w (n,) IN, to nearest even (NaN stays NaN). */
int rnnx_to_bfloat16(size_t n, const float* w, uint16_t* out);

/* A packed matrix is `gates` blocks of n rows (W_ih, W_hh: the cell's gates,
 * n = H; W_hr: 1 block, n = P), each block's rows padded to panels of
 * RNNX_QROWS, so a panel never straddles two gates.  An int8 panel is followed
 * by its rows' sums of weights (int32) and scales (float32), 64 bytes each.
 * rnnx_qpack_size: bytes (0 for bad arguments). */
size_t rnnx_qpack_size(int qtype, int gates, int n, int cols);
/* Pack q (gates*n, cols) IN: int8_t for RNNX_QINT8 (with scale (gates*n,) IN)
 * or uint16_t bfloat16 bits (scale NULL) into out (rnnx_qpack_size bytes,
 * OUT; 64-byte alignment is fastest). */
int rnnx_qpack(int qtype, int gates, int n, int cols, const void* q, const float* scale,
               void* out);

/* --- forward --------------------------------------------------------------- */

typedef struct rnnx_qforward_args {
    int cell;                /* enum rnnx_cell */
    int qtype;               /* enum rnnx_qtype, of every matrix of the call */
    int T, B;
    int input_size;          /* I */
    int H;
    int proj;                /* P: 0, or 0 < P < H for an LSTM (W_hr quantized too) */
    int reverse;             /* process t = T-1 .. 0 */
    const int64_t* lengths;  /* (B,) IN, 0 <= lengths[b] <= T, or NULL (as rnnx_forward) */
    const float* x;          /* (T,B,I) IN */
    const float* h0;         /* (B,Hh) IN, Hh = P if proj else H; NULL: zeros */
    const float* c0;         /* (B,H) IN, LSTM only; NULL: zeros */
    const void* w_ih;        /* rnnx_qpack of (G,I) IN */
    const void* w_hh;        /* rnnx_qpack of (G,Hh) IN */
    const void* w_hr;        /* rnnx_qpack of (P,H) IN when proj > 0 */
    const float* b_ih;       /* (G,) IN, or NULL */
    const float* b_hh;       /* (G,) IN, or NULL */
    float* y;                /* (T,B,.) OUT, row (t,b) at y + (t*B+b)*ldy; 0 past a row's length */
    ptrdiff_t ldy;           /* >= Hh */
    float* h_n;              /* (B,Hh) OUT, or NULL */
    float* c_n;              /* (B,H) OUT, LSTM only, or NULL */
    void* work;              /* rnnx_qforward_work_size() bytes, scratch, 64-byte aligned best */
} rnnx_qforward_args;

/* Bytes of scratch a forward call needs. */
size_t rnnx_qforward_work_size(int cell, int qtype, int T, int B, int input_size, int H,
                               int proj);

/* Runs the call.  blas: only its parallel_for, pool and n_threads are used
 * (NULL or zeroed: one thread); the result does not depend on them. */
int rnnx_qforward(const rnnx_blas* blas, const rnnx_qforward_args* a);

/* --- kernels --------------------------------------------------------------- */

/* The kernel variants, best first: "avx512_vnni", "avx_vnni", "avx2",
 * "avx512_bf16", "neon_dotprod", "neon", "generic" (NULL past the last).
 * A variant computes int8, bfloat16 or both; where it lacks one, the
 * "generic" one runs (it is exact, so nothing changes but the speed).
 * rnnx_qkernel_available: built in and runs on this CPU.  rnnx_qset_kernel
 * picks one (NULL or "auto": follow rnnx_get_isa, the best variant of that
 * ISA this CPU runs); RNNX_EISA if unavailable.  rnnx_qget_kernel names the
 * variant that runs qtype now. */
const char* rnnx_qkernel_name(int index);
int rnnx_qkernel_available(const char* name);
int rnnx_qset_kernel(const char* name);
const char* rnnx_qget_kernel(int qtype);

#ifdef __cplusplus
}
#endif

#endif /* RNNX_QUANT_H */
