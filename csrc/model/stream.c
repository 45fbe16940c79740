/*
 * model/stream.c: a model one step at a time (rnnx_stream_*), on the core's
 * public entry points, with the packed weights kept in the stream's memory.
 */
#include <math.h>
#include <string.h>
#ifndef RNNX_NO_STDIO
#include <stdio.h>
#endif

#include "model/internal.h"
#include "rnnx_version.h"

/* ------------------------------------------------------------- streaming --- */

/* The stream's memory, in elements of the model's dtype:
 *   per recurrent sub-layer, in model order: [parity 0: h (B,H), c (B,H) if LSTM]
 *                                            [parity 1: the same]
 *   per recurrent sub-layer: w_ih^T (I_k,G), w_hh^T (H,G)   (what the step kernel reads)
 *   two activation buffers (B,width)
 *   the core's work for one step, the largest over the sub-layers
 * then, in bytes, from the first 64-byte boundary (int8/bfloat16 layers only):
 *   per quantized sub-layer: its packed W_ih and W_hh (rnnxm_q_pack)
 *   the quantized core's work for one step, the largest over those sub-layers */
static size_t states_per_row(const rnnx_layer* l)
{
    return (size_t)(l->kind == RNNX_LSTM ? 2 : 1) * l->hidden_size;
}

static size_t sub_input(const rnnx_layer* l, int k)
{
    return k == 0 ? (size_t)l->input_size : (size_t)l->hidden_size;
}

typedef struct stream_sizes {
    size_t states, transposes, activations, core_work;  /* elements */
    size_t qpacked, qwork;                              /* bytes */
} stream_sizes;

static stream_sizes stream_sizes_of(const rnnx_model* m, int B)
{
    const model_dims d = rnnxm_dims_of(m, 1, B);
    stream_sizes s = {0, 0, 2 * (size_t)B * d.width, d.core_work, 0, 0};
    for (int i = 0; i < m->num_layers; i++) {
        const rnnx_layer* l = &m->layers[i];
        if (!is_recurrent(l->kind))
            continue;
        const size_t G = (size_t)rnnx_gate_count(l->kind) * l->hidden_size;
        for (int k = 0; k < l->num_layers; k++) {
            s.states += 2 * (size_t)B * states_per_row(l);
            if (l->weights != RNNX_WEIGHTS_FLOAT) {
                const size_t work = rnnxm_q_work_bytes(l, k, 1, B);
                s.qpacked += rnnxm_q_packed_bytes(l, k);
                s.qwork = work > s.qwork ? work : s.qwork;
                continue;
            }
            s.transposes += sub_input(l, k) * G +
                            rnnx_packed_size(l->kind, m->dtype, l->hidden_size);
        }
    }
    return s;
}

/* Where the quantized part of the stream's memory starts: the first 64-byte
 * boundary after the elements (rnnx_stream_size leaves 64 bytes for it). */
static unsigned char* quantized_part(void* mem, const stream_sizes* sz, size_t elem)
{
    unsigned char* p = (unsigned char*)mem +
                       (sz->states + sz->transposes + sz->activations + sz->core_work) * elem;
    return p + (64 - (uintptr_t)p % 64) % 64;
}

static int stream_supported(const rnnx_model* m, int B)
{
    int status = rnnx_model_check(m);
    if (status != RNNX_OK)
        return status;
    if (B < 1)
        return RNNX_EINVAL;
    for (int i = 0; i < m->num_layers; i++)
        if (m->layers[i].num_directions != 1)
            return RNNX_EUNSUPPORTED;
    return RNNX_OK;
}

size_t rnnx_stream_size(const rnnx_model* m, int B)
{
    if (stream_supported(m, B) != RNNX_OK)
        return 0;
    const stream_sizes s = stream_sizes_of(m, B);
    const size_t q = s.qpacked ? 64 + s.qpacked + s.qwork : 0;
    return (s.states + s.transposes + s.activations + s.core_work) * elem_size(m->dtype) + q;
}

int rnnx_stream_init(rnnx_stream* s, const rnnx_model* m, const rnnx_blas* blas, int B,
                     void* mem, size_t mem_bytes)
{
    if (!s || !mem)
        return RNNX_ENULL;
    int status = stream_supported(m, B);
    if (status != RNNX_OK)
        return status;
    if ((uintptr_t)mem % 8)
        return RNNX_EALIGN;
    if (mem_bytes < rnnx_stream_size(m, B))
        return RNNX_ENOMEM;
    const size_t elem = elem_size(m->dtype);
    const stream_sizes sz = stream_sizes_of(m, B);
    unsigned char* t = (unsigned char*)mem + sz.states * elem;
    unsigned char* q = quantized_part(mem, &sz, elem);
    for (int i = 0; i < m->num_layers; i++) {
        const rnnx_layer* l = &m->layers[i];
        if (!is_recurrent(l->kind))
            continue;
        const size_t G = (size_t)rnnx_gate_count(l->kind) * l->hidden_size, H = (size_t)l->hidden_size;
        for (int k = 0; k < l->num_layers; k++) {
            if (l->weights != RNNX_WEIGHTS_FLOAT) {
                status = rnnxm_q_pack(l, k, 0, q);
                if (status != RNNX_OK)
                    return status;
                q += rnnxm_q_packed_bytes(l, k);
                continue;
            }
            const size_t I = sub_input(l, k);
            const sub_weights w = rnnxm_sub_weights(l, k, 0);
            rnnxm_transpose(t, w.w_ih, G, I, elem);
            t += I * G * elem;
            rnnx_pack_weights(l->kind, m->dtype, (int)H, w.w_hh, t);
            t += rnnx_packed_size(l->kind, m->dtype, (int)H) * elem;
        }
    }
    s->model = m;
    s->blas = blas;
    s->B = B;
    s->mem = mem;
    s->mem_bytes = mem_bytes;
    return rnnx_stream_reset(s);
}

int rnnx_stream_reset(rnnx_stream* s)
{
    if (!s || !s->model || !s->mem)
        return RNNX_ENULL;
    const stream_sizes sz = stream_sizes_of(s->model, s->B);
    memset(s->mem, 0, sz.states * elem_size(s->model->dtype));
    s->parity = 0;
    return RNNX_OK;
}

int rnnx_stream_step(rnnx_stream* s, const void* x, void* y)
{
    if (!s || !s->model || !s->mem || !x || !y)
        return RNNX_ENULL;
    const rnnx_model* m = s->model;
    const int B = s->B;
    if (B < 1 || s->parity < 0 || s->parity > 1 || s->mem_bytes < rnnx_stream_size(m, B))
        return RNNX_EINVAL;
    if (takes_ids(m) && rnnxm_check_ids(x, (size_t)B, m->input_size) != RNNX_OK)
        return RNNX_EINVAL;  /* before anything is written: the state stays as it was */
    const size_t elem = elem_size(m->dtype);
    const stream_sizes sz = stream_sizes_of(m, B);
    unsigned char* state = (unsigned char*)s->mem;
    unsigned char* t = state + sz.states * elem;
    unsigned char* act[2];
    act[0] = t + sz.transposes * elem;
    act[1] = act[0] + sz.activations / 2 * elem;
    void* core_work = act[1] + sz.activations / 2 * elem;
    unsigned char* q = quantized_part(s->mem, &sz, elem);  /* packed, then the work */
    void* qwork = q + sz.qpacked;

    /* this step reads the state at parity and writes the other half, so a
     * failed step leaves the stream's state as it was */
    const void* cur = x;
    int next = 0;
    for (int i = 0; i < m->num_layers; i++) {
        const rnnx_layer* l = &m->layers[i];
        const int last = i == m->num_layers - 1;
        if (l->kind == RNNX_DENSE || l->kind == RNNX_EMBEDDING) {
            void* out = last ? y : act[next];
            if (l->kind == RNNX_EMBEDDING)  /* layer 0: cur is x, (B,) int32 ids */
                rnnxm_embed(m->dtype, out, cur, l, (size_t)B);
            else
                rnnxm_dense(m->dtype, out, cur, l, B);
            cur = out;
            next = 1 - next;
            continue;
        }
        const size_t H = (size_t)l->hidden_size, G = (size_t)rnnx_gate_count(l->kind) * H;
        const size_t half = (size_t)B * states_per_row(l) * elem, BH = (size_t)B * H * elem;
        for (int k = 0; k < l->num_layers; k++) {
            const size_t I = sub_input(l, k);
            unsigned char* now = state + (size_t)s->parity * half;
            unsigned char* then = state + (size_t)(1 - s->parity) * half;
            void* out = (last && k == l->num_layers - 1) ? y : act[next];
            const sub_weights w = rnnxm_sub_weights(l, k, 0);
            if (l->weights != RNNX_WEIGHTS_FLOAT) {
                int status = rnnxm_q_forward(l, s->blas, q, k, 0, 1, B, NULL, cur, now, now + BH,
                                             out, (ptrdiff_t)H, then, then + BH, qwork);
                if (status != RNNX_OK)
                    return status;
                q += rnnxm_q_packed_bytes(l, k);
                state += 2 * half;
                cur = out;
                next = 1 - next;
                continue;
            }
            rnnx_forward_args a;
            memset(&a, 0, sizeof a);
            a.cell = l->kind;
            a.dtype = m->dtype;
            a.path = rnnxm_path_for(s->blas, m->dtype);
            a.T = 1;
            a.B = B;
            a.input_size = (int)I;
            a.H = (int)H;
            a.x = cur;
            a.h0 = now;
            a.c0 = now + BH;
            a.w_ih = w.w_ih;
            a.w_hh = w.w_hh;
            a.b_ih = w.b_ih;
            a.b_hh = w.b_hh;
            a.w_ih_t = t;
            a.row_exact = 1;                    /* a step equals rnnx_model_run bit for bit */
            a.w_hh_packed = t + I * G * elem;   /* packed once, by rnnx_stream_init */
            a.y = out;
            a.ldy = (ptrdiff_t)H;
            a.h_n = then;
            a.c_n = then + BH;
            a.work = core_work;
            int status = rnnx_forward(s->blas, &a);
            if (status != RNNX_OK)
                return status;
            t += I * G * elem + rnnx_packed_size(l->kind, m->dtype, (int)H) * elem;
            state += 2 * half;
            cur = out;
            next = 1 - next;
        }
    }
    s->parity = 1 - s->parity;
    return RNNX_OK;
}
