/*
 * kernels.h: the per-dtype sequence drivers behind rnnx_forward/rnnx_backward.
 * Internal to the core; dispatch.c is their only caller.
 */
#ifndef RNNX_KERNELS_H
#define RNNX_KERNELS_H

#include "rnnx.h"

typedef float real_f32;
typedef double real_f64;

#define RNNX_DECLARE(sfx)                                                              \
    int rnnx_rnn_forward##sfx(const rnnx_blas* blas, const rnnx_forward_args* a);      \
    int rnnx_rnn_backward##sfx(const rnnx_blas* blas, const rnnx_backward_args* a);    \
    int rnnx_lstm_forward##sfx(const rnnx_blas* blas, const rnnx_forward_args* a);     \
    int rnnx_lstm_backward##sfx(const rnnx_blas* blas, const rnnx_backward_args* a);   \
    int rnnx_gru_forward##sfx(const rnnx_blas* blas, const rnnx_forward_args* a);      \
    int rnnx_gru_backward##sfx(const rnnx_blas* blas, const rnnx_backward_args* a);    \
    int rnnx_activation##sfx(int which, const real##sfx* x, real##sfx* y, size_t n);

RNNX_DECLARE(_f32)
RNNX_DECLARE(_f64)

#undef RNNX_DECLARE

#endif /* RNNX_KERNELS_H */
