/*
 * kernels.h: the per-dtype sequence drivers behind rnnx_forward/rnnx_backward.
 * Internal to the core; dispatch.c is their only caller.
 */
#ifndef RNNX_KERNELS_H
#define RNNX_KERNELS_H

#include "rnnx.h"

#define RNNX_DECLARE(sfx)                                                              \
    int rnnx_rnn_forward##sfx(const rnnx_blas* blas, const rnnx_forward_args* a);      \
    int rnnx_rnn_backward##sfx(const rnnx_blas* blas, const rnnx_backward_args* a);    \
    int rnnx_lstm_forward##sfx(const rnnx_blas* blas, const rnnx_forward_args* a);     \
    int rnnx_lstm_backward##sfx(const rnnx_blas* blas, const rnnx_backward_args* a);   \
    int rnnx_gru_forward##sfx(const rnnx_blas* blas, const rnnx_forward_args* a);      \
    int rnnx_gru_backward##sfx(const rnnx_blas* blas, const rnnx_backward_args* a);

RNNX_DECLARE(_f32)
RNNX_DECLARE(_f64)

#undef RNNX_DECLARE

#endif /* RNNX_KERNELS_H */
