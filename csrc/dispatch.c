/*
 * dispatch.c: the public entry points of rnnx.h.  Checks the arguments that
 * would make the kernels read or write out of bounds, then hands the call to
 * the cell and dtype it names.
 */
#include "rnnx.h"
#include "kernels.h"

int rnnx_gate_count(int cell)
{
    switch (cell) {
    case RNNX_RNN_TANH:
    case RNNX_RNN_RELU:
        return 1;
    case RNNX_LSTM:
        return 4;
    case RNNX_GRU:
    case RNNX_GRU_RESET_BEFORE:
        return 3;
    default:
        return 0;
    }
}

size_t rnnx_cache_size(int cell, int T, int B, int H)
{
    const size_t BH = (size_t)B * H, TBH = (size_t)T * BH;
    const size_t states = TBH + BH;  /* (T+1,B,H) */
    switch (cell) {
    case RNNX_RNN_TANH:
    case RNNX_RNN_RELU:
        return states;                          /* hs */
    case RNNX_LSTM:
        return 2 * states + TBH * 4 + TBH;      /* hs, cs, gates, tanh(c) */
    case RNNX_GRU:
    case RNNX_GRU_RESET_BEFORE:
        return states + TBH * 3 + TBH;          /* hs, gates, aux */
    default:
        return 0;
    }
}

/* Matches split_forward_work in common.c; the slab is not needed by a training
 * forward of LSTM and GRU, whose cache holds the gates. */
size_t rnnx_forward_work_size(int cell, int T, int B, int I, int H, int train)
{
    const size_t G = (size_t)rnnx_gate_count(cell) * H, BH = (size_t)B * H;
    const int slab_in_cache = train && (cell == RNNX_LSTM || cell == RNNX_GRU ||
                                        cell == RNNX_GRU_RESET_BEFORE);
    return (size_t)(H + I) * G + 4 * BH + B * G + BH + (slab_in_cache ? 0 : (size_t)T * B * G);
}

size_t rnnx_backward_work_size(int cell, int T, int B, int I, int H)
{
    (void)I;
    const size_t G = (size_t)rnnx_gate_count(cell) * H, BH = (size_t)B * H;
    return 2 * (size_t)T * B * G + 3 * BH;
}

static int check_dims(int cell, int dtype, int path, int T, int B, int I, int H,
                      const int64_t* lengths)
{
    if (rnnx_gate_count(cell) == 0 || (dtype != RNNX_FLOAT32 && dtype != RNNX_FLOAT64))
        return RNNX_EINVAL;
    if (path < RNNX_PATH_AUTO || path > RNNX_PATH_NAIVE)
        return RNNX_EINVAL;
    if (T < 0 || B < 0 || I < 0 || H < 1)
        return RNNX_EINVAL;
    if (lengths)
        for (int b = 0; b < B; b++)
            if (lengths[b] < 1 || lengths[b] > T)
                return RNNX_EINVAL;
    return RNNX_OK;
}

int rnnx_forward(const rnnx_blas* blas, const rnnx_forward_args* a)
{
    if (!a)
        return RNNX_ENULL;
    int status = check_dims(a->cell, a->dtype, a->path, a->T, a->B, a->I, a->H, a->lengths);
    if (status != RNNX_OK)
        return status;
    if (a->ldy < a->H)
        return RNNX_EINVAL;
    if (!a->x || !a->h0 || !a->w_ih || !a->w_hh || !a->y || !a->h_n || !a->work)
        return RNNX_ENULL;
    if (a->cell == RNNX_LSTM && (!a->c0 || !a->c_n))
        return RNNX_ENULL;
    const int f64 = (a->dtype == RNNX_FLOAT64);
    switch (a->cell) {
    case RNNX_RNN_TANH:
    case RNNX_RNN_RELU:
        return f64 ? rnnx_rnn_forward_f64(blas, a) : rnnx_rnn_forward_f32(blas, a);
    case RNNX_LSTM:
        return f64 ? rnnx_lstm_forward_f64(blas, a) : rnnx_lstm_forward_f32(blas, a);
    default:
        return f64 ? rnnx_gru_forward_f64(blas, a) : rnnx_gru_forward_f32(blas, a);
    }
}

int rnnx_backward(const rnnx_blas* blas, const rnnx_backward_args* a)
{
    if (!a)
        return RNNX_ENULL;
    int status = check_dims(a->cell, a->dtype, a->path, a->T, a->B, a->I, a->H, a->lengths);
    if (status != RNNX_OK)
        return status;
    if (a->dy && a->lddy < a->H)
        return RNNX_EINVAL;
    if (!a->x || !a->w_ih || !a->w_hh || !a->cache || !a->dx || !a->dh0 || !a->dw_ih ||
        !a->dw_hh || !a->work)
        return RNNX_ENULL;
    if (a->cell == RNNX_LSTM && !a->dc0)
        return RNNX_ENULL;
    const int f64 = (a->dtype == RNNX_FLOAT64);
    switch (a->cell) {
    case RNNX_RNN_TANH:
    case RNNX_RNN_RELU:
        return f64 ? rnnx_rnn_backward_f64(blas, a) : rnnx_rnn_backward_f32(blas, a);
    case RNNX_LSTM:
        return f64 ? rnnx_lstm_backward_f64(blas, a) : rnnx_lstm_backward_f32(blas, a);
    default:
        return f64 ? rnnx_gru_backward_f64(blas, a) : rnnx_gru_backward_f32(blas, a);
    }
}

int rnnx_activation(int which, int dtype, const void* x, void* y, size_t n)
{
    if ((which != 0 && which != 1) || (dtype != RNNX_FLOAT32 && dtype != RNNX_FLOAT64))
        return RNNX_EINVAL;
    if (n && (!x || !y))
        return RNNX_ENULL;
    return dtype == RNNX_FLOAT64 ? rnnx_activation_f64(which, x, y, n)
                                 : rnnx_activation_f32(which, x, y, n);
}
