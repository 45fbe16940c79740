/*
 * model/run.c: whole-sequence runs of a model (rnnx_model_run): an optional
 * Embedding, stacked recurrent layers (both directions) and Dense layers,
 * built only on the core's public entry points.
 */
#include <math.h>
#include <string.h>
#ifndef RNNX_NO_STDIO
#include <stdio.h>
#endif

#include "model/internal.h"
#include "rnnx_version.h"

/* ---------------------------------------------------------- whole sequences --- */

int rnnxm_path_for(const rnnx_blas* blas, int dtype)
{
    const int has_gemm = blas && (dtype == RNNX_FLOAT64 ? blas->dgemm != NULL : blas->sgemm != NULL);
    return has_gemm ? RNNX_PATH_AUTO : RNNX_PATH_SMALL;
}

model_dims rnnxm_dims_of(const rnnx_model* m, int T, int B)
{
    /* a token model's x is ids: no activation is input_size (the vocabulary) wide */
    model_dims d = {takes_ids(m) ? 0 : (size_t)m->input_size, 0, 0, 0, 0, -1, 0};
    for (int i = 0; i < m->num_layers; i++) {
        const rnnx_layer* l = &m->layers[i];
        const size_t out = (size_t)layer_output_size(l);
        d.width = out > d.width ? out : d.width;
        if (!is_recurrent(l->kind))
            continue;
        d.recurrent = i;
        d.bidirectional |= l->num_directions == 2;
        d.hidden = (size_t)l->hidden_size > d.hidden ? (size_t)l->hidden_size : d.hidden;
        for (int k = 0; k < l->num_layers; k++) {
            if (l->weights != RNNX_WEIGHTS_FLOAT) {  /* the quantized core's needs instead */
                const size_t q = 64 + rnnxm_q_packed_bytes(l, k) + rnnxm_q_work_bytes(l, k, T, B);
                d.qbytes = q > d.qbytes ? q : d.qbytes;
                continue;
            }
            const int in = k == 0 ? l->input_size : l->num_directions * rnnxm_state_width(l);
            const size_t w = rnnx_forward_work_size_proj(l->kind, T, B, in, l->hidden_size,
                                                         l->proj_size, 0);
            const size_t t = (size_t)in * rnnx_gate_count(l->kind) * l->hidden_size;
            d.core_work = w > d.core_work ? w : d.core_work;
            d.w_ih_t = t > d.w_ih_t ? t : d.w_ih_t;
        }
    }
    return d;
}

size_t rnnx_model_run_work_size(const rnnx_model* m, int T, int B)
{
    if (rnnx_model_check(m) != RNNX_OK || T < 1 || B < 1)
        return 0;
    const model_dims d = rnnxm_dims_of(m, T, B);
    const size_t TB = (size_t)T * B;
    /* three activation buffers, zero h0/c0, h_n, c_n, W_ih^T, the core's work */
    return (3 * TB * d.width + 3 * (size_t)B * d.hidden + d.w_ih_t + d.core_work) *
           elem_size(m->dtype) + d.qbytes;
}

/* Each row's output at its last valid step: pooled (B,D*H) := y (T,B,D*H) at
 * lengths[b]-1 (or T-1); with RNNX_MANY_TO_ONE_STATE the reverse half at t = 0,
 * where that direction ends; zeros for a row of length 0. */
static void last_step(unsigned char* pooled, const unsigned char* y, int T, int B, int H, int D,
                      const int64_t* lengths, int many_to_one, size_t elem)
{
    const size_t row = (size_t)D * H * elem, half = (size_t)H * elem;
    const int reverse_at_0 = D == 2 && many_to_one == RNNX_MANY_TO_ONE_STATE;
    for (int b = 0; b < B; b++) {
        /* a row of length 0 has no last step: its y is 0 everywhere, t = 0 reads a 0 */
        const size_t last = !lengths ? (size_t)(T - 1) : lengths[b] ? (size_t)(lengths[b] - 1) : 0;
        memcpy(pooled + b * row, y + (last * B + b) * row, reverse_at_0 ? half : row);
        if (reverse_at_0)
            memcpy(pooled + b * row + half, y + (size_t)b * row + half, half);
    }
}

/* Where sub-layer (k,d)'s state lies in a recurrent layer's part of the state:
 * h (B,S) at h, c (B,H) (an LSTM's) at c, bytes of each. */
typedef struct state_slot {
    size_t h, c, h_bytes, c_bytes;
} state_slot;

static state_slot slot_of(const rnnx_layer* l, int k, int d, int B, size_t elem)
{
    const size_t sub = (size_t)(k * l->num_directions + d);
    const size_t h_bytes = (size_t)B * rnnxm_state_width(l) * elem;
    const size_t c_bytes = (size_t)B * l->hidden_size * elem;
    const size_t c_part = (size_t)l->num_layers * l->num_directions * h_bytes;
    state_slot s = {sub * h_bytes, c_part + sub * c_bytes, h_bytes, c_bytes};
    return s;
}

/* Sub-layer (k,d)'s final state, h_n and c_n (an LSTM's), into its slot of
 * state_n; nothing if state_n is NULL. */
static void copy_state(const rnnx_layer* l, unsigned char* state_n, state_slot s,
                       const void* h_n, const void* c_n)
{
    if (!state_n)
        return;
    memcpy(state_n + s.h, h_n, s.h_bytes);
    if (l->kind == RNNX_LSTM)
        memcpy(state_n + s.c, c_n, s.c_bytes);
}

/* One recurrent layer (a stack, both directions) over a whole sequence:
 * x (T,B,I) -> y (T,B,D*H).  Sub-layer k < L-1 writes inter[k % 2]; neither
 * inter may be y, and inter[0] may not be x.  state0 and state_n are this
 * layer's part of rnnx_model_run's (h (L*D,B,H), then c (L*D,B,H) for an
 * LSTM), or NULL: zero initial states (zeros) / final states not wanted.  The
 * core writes each final state into h_n, c_n (scratch) and it is copied from
 * there, so state_n may be state0: sub-layer (k,d) alone reads its slot.
 * w_ih_t has room for one W_ih^T, handed to the core with row_exact, so that
 * its input projection runs its own row kernel whatever BLAS there is (the
 * same kernel as a stream's steps, so a stream equals a run bit for bit). */
static int run_recurrent(const rnnx_layer* l, int dtype, const rnnx_blas* blas, const void* x,
                         void* y, void* const* inter, int T, int B, const int64_t* lengths,
                         const unsigned char* state0, unsigned char* state_n, void* zeros,
                         void* h_n, void* c_n, unsigned char* w_ih_t, void* core_work,
                         unsigned char* qmem)
{
    const int H = l->hidden_size, D = l->num_directions, S = rnnxm_state_width(l);
    const size_t elem = elem_size(dtype);
    const void* in = x;
    for (int k = 0; k < l->num_layers; k++) {
        void* out = k == l->num_layers - 1 ? y : inter[k % 2];
        for (int d = 0; d < D; d++) {
            const sub_weights w = rnnxm_sub_weights(l, k, d);
            const state_slot slot = slot_of(l, k, d, B, elem);
            const void* h0 = state0 ? state0 + slot.h : NULL;
            const void* c0 = state0 ? state0 + slot.c : NULL;
            void* y_d = (unsigned char*)out + (size_t)d * S * elem;
            int status;
            if (l->weights != RNNX_WEIGHTS_FLOAT) {
                /* qmem: the packed weights (64-byte aligned), then the quantized core's work */
                unsigned char* packed = qmem + (64 - (uintptr_t)qmem % 64) % 64;
                status = rnnxm_q_pack(l, k, d, packed);
                if (status == RNNX_OK)
                    status = rnnxm_q_forward(l, blas, packed, k, d, T, B, lengths, in, h0, c0, y_d,
                                             (ptrdiff_t)D * S, h_n, c_n,
                                             packed + rnnxm_q_packed_bytes(l, k));
                if (status != RNNX_OK)
                    return status;
                copy_state(l, state_n, slot, h_n, c_n);
                continue;
            }
            const int I = k == 0 ? l->input_size : D * S;
            rnnx_transpose_bytes(w_ih_t, w.w_ih, (size_t)rnnx_gate_count(l->kind) * H, (size_t)I, elem);
            rnnx_forward_args a;
            memset(&a, 0, sizeof a);  /* fields the core adds later: zero = the default */
            a.cell = l->kind;
            a.dtype = dtype;
            a.path = rnnxm_path_for(blas, dtype);
            a.T = T;
            a.B = B;
            a.input_size = I;
            a.H = H;
            a.reverse = d;
            a.lengths = lengths;
            a.x = in;
            a.h0 = h0 ? h0 : zeros;
            a.c0 = c0 ? c0 : zeros;
            a.w_ih = w.w_ih;
            a.w_hh = w.w_hh;
            a.b_ih = w.b_ih;
            a.b_hh = w.b_hh;
            a.proj = l->proj_size;
            a.w_hr = w.w_hr;
            a.w_ih_t = w_ih_t;
            a.row_exact = 1;                  /* the numbers of a stream's steps */
            a.y = y_d;
            a.ldy = (ptrdiff_t)D * S;
            a.h_n = h_n;
            a.c_n = c_n;
            a.work = core_work;
            status = rnnx_forward(blas, &a);
            if (status != RNNX_OK)
                return status;
            copy_state(l, state_n, slot, h_n, c_n);
        }
        in = out;
    }
    return RNNX_OK;
}

/* Elements of one recurrent layer's part of the state: h (L*D,B,S), and c (L*D,B,H)
 * for an LSTM. */
static size_t layer_state_size(const rnnx_layer* l, int B)
{
    if (!is_recurrent(l->kind))
        return 0;
    const size_t c = l->kind == RNNX_LSTM ? (size_t)l->hidden_size : 0;
    return (size_t)l->num_layers * l->num_directions * B * (rnnxm_state_width(l) + c);
}

size_t rnnx_model_state_size(const rnnx_model* m, int B)
{
    if (rnnx_model_check(m) != RNNX_OK || B < 1)
        return 0;
    size_t n = 0;
    for (int i = 0; i < m->num_layers; i++)
        n += layer_state_size(&m->layers[i], B);
    return n * elem_size(m->dtype);
}

int rnnx_model_run(const rnnx_model* m, const rnnx_blas* blas, const void* x, int T, int B,
                   const int64_t* lengths, const void* state0, void* state_n, void* y,
                   void* work, size_t work_bytes)
{
    int status = rnnx_model_check(m);
    if (status != RNNX_OK)
        return status;
    if (!x || !y || !work)
        return RNNX_ENULL;
    if (T < 1 || B < 1)
        return RNNX_EINVAL;
    if (lengths)
        for (int b = 0; b < B; b++)
            if (lengths[b] < 0 || lengths[b] > T)  /* 0: the row runs no step */
                return RNNX_EINVAL;
    const size_t elem = elem_size(m->dtype);
    if ((uintptr_t)work % 8 || (uintptr_t)state0 % elem || (uintptr_t)state_n % elem)
        return RNNX_EALIGN;
    if (work_bytes < rnnx_model_run_work_size(m, T, B))
        return RNNX_ENOMEM;
    if (takes_ids(m) && rnnx_check_ids(x, (size_t)T * B, m->input_size) != RNNX_OK)
        return RNNX_EINVAL;
    const model_dims d = rnnxm_dims_of(m, T, B);
    const size_t TB = (size_t)T * B, BH = (size_t)B * d.hidden;
    unsigned char* buffers[3];
    buffers[0] = (unsigned char*)work;
    buffers[1] = buffers[0] + TB * d.width * elem;
    buffers[2] = buffers[1] + TB * d.width * elem;
    unsigned char* zeros = buffers[2] + TB * d.width * elem;
    unsigned char* h_n = zeros + BH * elem;
    unsigned char* c_n = h_n + BH * elem;
    unsigned char* w_ih_t = c_n + BH * elem;
    unsigned char* core_work = w_ih_t + d.w_ih_t * elem;
    unsigned char* qmem = core_work + d.core_work * elem;  /* d.qbytes, int8/bf16 layers' */
    memset(zeros, 0, BH * elem);

    const void* cur = x;
    const unsigned char* layer_state0 = (const unsigned char*)state0;
    unsigned char* layer_state_n = (unsigned char*)state_n;
    int rows = (int)TB;
    for (int i = 0; i < m->num_layers; i++) {
        const rnnx_layer* l = &m->layers[i];
        const int last = i == m->num_layers - 1;
        const int pool = m->many_to_one && i == d.recurrent;
        /* out: y for the last layer, else a buffer cur is not in */
        void* out = y;
        if (!last || pool)
            out = buffers[cur == buffers[0] ? 1 : 0];
        if (l->kind == RNNX_EMBEDDING) {  /* layer 0: cur is x, (T,B) int32 ids */
            rnnxm_embed(m->dtype, out, cur, l, (size_t)rows);
            cur = out;
            continue;
        }
        if (l->kind == RNNX_DENSE) {
            rnnxm_dense(m->dtype, out, cur, l, rows);
            cur = out;
            continue;
        }
        /* the stack's intermediates: the buffers out is not in, one cur is not in first */
        void* inter[3];
        int n = 0;
        for (int j = 0; j < 3; j++)
            if (buffers[j] != out && buffers[j] != cur)
                inter[n++] = buffers[j];
        for (int j = 0; j < 3; j++)
            if (buffers[j] != out && buffers[j] == cur)
                inter[n++] = buffers[j];
        status = run_recurrent(l, m->dtype, blas, cur, out, inter, T, B, lengths, layer_state0,
                               layer_state_n, zeros, h_n, c_n, w_ih_t, core_work, qmem);
        if (status != RNNX_OK)
            return status;
        const size_t state_bytes = layer_state_size(l, B) * elem;
        layer_state0 = layer_state0 ? layer_state0 + state_bytes : NULL;
        layer_state_n = layer_state_n ? layer_state_n + state_bytes : NULL;
        cur = out;
        if (pool) {
            void* pooled = last ? y : buffers[out == buffers[0] ? 1 : 0];
            last_step(pooled, out, T, B, rnnxm_state_width(l), l->num_directions, lengths,
                      m->many_to_one, elem);
            cur = pooled;
            rows = B;
        }
    }
    return RNNX_OK;
}
