/*
 * model/quantized.c: the model layer's recurrent layers with int8 or bfloat16
 * weights (rnnx_layer.weights, .rnnx version 3) on the quantized core
 * (quant/quant.h): their packed panels and one sub-layer's run of T steps,
 * shared by whole sequences (run.c) and streams (stream.c, T = 1), so that
 * both compute what Python's quantized models compute, bit for bit.
 */
#include <string.h>

#include "model/internal.h"
#include "quant/quant.h"

static int qtype_of(const rnnx_layer* l)
{
    return l->weights == RNNX_WEIGHTS_INT8 ? RNNX_QINT8 : RNNX_QBFLOAT16;
}

static size_t align64(size_t n)
{
    return (n + 63) / 64 * 64;
}

/* Columns of sub-layer k's W_ih: the layer's input, then the stack's D*S. */
static int sub_columns(const rnnx_layer* l, int k)
{
    return k == 0 ? l->input_size : l->num_directions * rnnxm_state_width(l);
}

/* Bytes of sub-layer k's packed W_ih, W_hh (and W_hr), each 64-byte aligned. */
static size_t packed_parts(const rnnx_layer* l, int k, size_t* ih, size_t* hh, size_t* hr)
{
    const int gates = rnnx_gate_count(l->kind), q = qtype_of(l), H = l->hidden_size;
    const int P = l->proj_size;
    *ih = align64(rnnx_qpack_size(q, gates, H, sub_columns(l, k)));
    *hh = align64(rnnx_qpack_size(q, gates, H, rnnxm_state_width(l)));
    *hr = P > 0 ? align64(rnnx_qpack_size(q, 1, P, H)) : 0;
    return *ih + *hh + *hr;
}

size_t rnnxm_q_packed_bytes(const rnnx_layer* l, int k)
{
    size_t ih, hh, hr;
    return packed_parts(l, k, &ih, &hh, &hr);
}

size_t rnnxm_q_work_bytes(const rnnx_layer* l, int k, int T, int B)
{
    return align64(rnnx_qforward_work_size(l->kind, qtype_of(l), T, B, sub_columns(l, k),
                                           l->hidden_size, l->proj_size));
}

int rnnxm_q_pack(const rnnx_layer* l, int k, int d, unsigned char* packed)
{
    const int gates = rnnx_gate_count(l->kind), q = qtype_of(l), H = l->hidden_size;
    const sub_weights w = rnnxm_sub_weights(l, k, d);
    size_t ih, hh, hr;
    packed_parts(l, k, &ih, &hh, &hr);
    int status = rnnx_qpack(q, gates, H, sub_columns(l, k), w.w_ih, w.s_ih, packed);
    if (status == RNNX_OK)
        status = rnnx_qpack(q, gates, H, rnnxm_state_width(l), w.w_hh, w.s_hh, packed + ih);
    if (status == RNNX_OK && l->proj_size > 0)
        status = rnnx_qpack(q, 1, l->proj_size, H, w.w_hr, w.s_hr, packed + ih + hh);
    return status;
}

int rnnxm_q_forward(const rnnx_layer* l, const rnnx_blas* blas, const unsigned char* packed,
                    int k, int d, int T, int B, const int64_t* lengths, const void* x,
                    const void* h0, const void* c0, void* y, ptrdiff_t ldy, void* h_n,
                    void* c_n, void* work)
{
    const sub_weights w = rnnxm_sub_weights(l, k, d);
    size_t ih, hh, hr;
    packed_parts(l, k, &ih, &hh, &hr);
    rnnx_qforward_args a;
    memset(&a, 0, sizeof a);  /* fields the core adds later: zero = the default */
    a.cell = l->kind;
    a.qtype = qtype_of(l);
    a.T = T;
    a.B = B;
    a.input_size = sub_columns(l, k);
    a.H = l->hidden_size;
    a.proj = l->proj_size;
    a.reverse = d;
    a.lengths = lengths;
    a.x = x;
    a.h0 = h0;
    a.c0 = l->kind == RNNX_LSTM ? c0 : NULL;
    a.w_ih = packed;
    a.w_hh = packed + ih;
    a.w_hr = l->proj_size > 0 ? packed + ih + hh : NULL;
    a.b_ih = w.b_ih;
    a.b_hh = w.b_hh;
    a.y = y;
    a.ldy = ldy;
    a.h_n = h_n;
    a.c_n = l->kind == RNNX_LSTM ? c_n : NULL;
    a.work = work;
    return rnnx_qforward(blas, &a);
}
