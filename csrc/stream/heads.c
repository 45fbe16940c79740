/*
 * stream/heads.c: the layers without a state, for the stream and the model
 * layer's whole-sequence run alike: Dense (out = act(x @ w^T + b)) and the
 * Embedding (a table lookup of int32 ids, the first layer only).
 *
 * The Dense arithmetic is written so that a NumPy twin can reproduce it bit
 * for bit: one product, then one sum, per statement (so no compiler fuses
 * them into an FMA), k in order, the bias added after the sum.
 */
#include <math.h>
#include <string.h>
#ifndef RNNX_NO_STDIO
#include <stdio.h>
#endif

#include "stream/heads.h"

/* ---------------------------------------------------------- Dense layers --- */

/* out (N,O) = act(x (N,In) @ w^T + b): for each element, the products added
 * in order of k, then the bias.  x and out do not overlap. */
#define RNNX_DENSE_KERNEL(sfx, real, expfn)                                              \
    static void dense##sfx(real* out, const real* x, const real* w, const real* b,       \
                           int N, int In, int O, int activation)                         \
    {                                                                                     \
        for (int n = 0; n < N; n++) {                                                     \
            const real* xr = x + (size_t)n * In;                                          \
            real* yr = out + (size_t)n * O;                                               \
            for (int j = 0; j < O; j++) {                                                 \
                const real* wr = w + (size_t)j * In;                                      \
                real acc = 0;                                                             \
                for (int k = 0; k < In; k++) {                                            \
                    const real product = wr[k] * xr[k];                                   \
                    acc = acc + product;                                                  \
                }                                                                         \
                yr[j] = b ? acc + b[j] : acc;                                             \
            }                                                                             \
            if (activation == RNNX_ACT_RELU) {                                            \
                for (int j = 0; j < O; j++)                                               \
                    yr[j] = yr[j] > 0 ? yr[j] : 0;                                        \
            } else if (activation == RNNX_ACT_SOFTMAX) {                                  \
                /* shift by the row max so exp never overflows */                         \
                real top = yr[0], sum = 0;                                                \
                for (int j = 1; j < O; j++)                                               \
                    top = yr[j] > top ? yr[j] : top;                                      \
                for (int j = 0; j < O; j++) {                                             \
                    const real shifted = yr[j] - top;                                     \
                    yr[j] = (real)expfn((double)shifted);                                 \
                    sum = sum + yr[j];                                                    \
                }                                                                         \
                for (int j = 0; j < O; j++)                                               \
                    yr[j] = yr[j] / sum;                                                  \
            }                                                                             \
        }                                                                                 \
        if (activation == RNNX_ACT_SIGMOID || activation == RNNX_ACT_TANH)                \
            rnnx_activation(activation == RNNX_ACT_SIGMOID ? 0 : 1,                       \
                            sizeof(real) == 8 ? RNNX_FLOAT64 : RNNX_FLOAT32, out, out,    \
                            (size_t)N * O);                                               \
    }

RNNX_DENSE_KERNEL(_f32, float, exp)
RNNX_DENSE_KERNEL(_f64, double, exp)

void rnnx_dense_rows(int dtype, void* out, const void* x, const void* w, const void* b, int N,
                     int In, int O, int activation)
{
    if (dtype == RNNX_FLOAT64)
        dense_f64(out, x, w, b, N, In, O, activation);
    else
        dense_f32(out, x, w, b, N, In, O, activation);
}

/* ------------------------------------------------------------- Embedding --- */

/* RNNX_EINVAL unless every one of the n ids lies in [0, num). */
int rnnx_check_ids(const int32_t* ids, size_t n, int num)
{
    for (size_t k = 0; k < n; k++)
        if (ids[k] < 0 || ids[k] >= num)
            return RNNX_EINVAL;
    return RNNX_OK;
}

/* out (N,E) := table[ids[n]] row by row; table (V,E), ids checked in [0, V). */
void rnnx_embed_rows(int dtype, void* out, const int32_t* ids, const void* table_, int E, size_t N)
{
    const size_t row = (size_t)E * (dtype == RNNX_FLOAT64 ? sizeof(double) : sizeof(float));
    const unsigned char* table = (const unsigned char*)table_;
    for (size_t n = 0; n < N; n++)
        memcpy((unsigned char*)out + n * row, table + (size_t)ids[n] * row, row);
}

/* ------------------------------------------------------------- transpose --- */

/* dst (cols,rows) := src (rows,cols)^T, elements of elem bytes. */
void rnnx_transpose_bytes(unsigned char* dst, const unsigned char* src, size_t rows, size_t cols,
                          size_t elem)
{
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++)
            memcpy(dst + (c * rows + r) * elem, src + (r * cols + c) * elem, elem);
}
