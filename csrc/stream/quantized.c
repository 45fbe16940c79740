/*
 * stream/quantized.c: the stream's int8 and bfloat16 recurrent layers
 * (RNNX_STREAM_INT8, RNNX_STREAM_BFLOAT16; stream.h), on the quantized core
 * (quant/quant.h): their checks and sizes, their packed panels at init, and a
 * step, which is one rnnx_qforward call of T = 1 per sub-layer, so that a
 * stream gives what a whole-sequence run (rnnx_model_run, Python's quantized
 * layers) gives, bit for bit.  stream.c's three "layer kinds" switches call
 * these; the state layout is the float layers' (h (L,B,S), then c (L,B,H)).
 */
#include <stdint.h>
#include <string.h>

#include "layout.h"
#include "quant/quant.h"
#include "stream/quantized.h"

static size_t round64(size_t bytes)
{
    return (bytes + 63) / 64 * 64;
}

static int qtype_of(const rnnx_stream_layer* l)
{
    return l->kind == RNNX_STREAM_INT8 ? RNNX_QINT8 : RNNX_QBFLOAT16;
}

/* Bytes of the three packed matrices of sub-layer k (in: its input's width). */
static size_t packed_bytes(const rnnx_stream_layer* l, int I, size_t* ih, size_t* hh, size_t* hr)
{
    const int q = qtype_of(l), gates = rnnx_gate_count(l->cell), H = l->hidden_size;
    const int P = l->proj_size, S = rnnx_state_width(H, P);
    *ih = rnnx_qpack_size(q, gates, H, I);
    *hh = rnnx_qpack_size(q, gates, H, S);
    *hr = P > 0 ? rnnx_qpack_size(q, 1, P, H) : 0;
    return round64(*ih) + round64(*hh) + round64(*hr);
}

static int aligned(const void* p, size_t to)
{
    return (uintptr_t)p % to == 0;
}

int rnnx_sq_needs_of(const rnnx_stream_spec* sp, const rnnx_stream_layer* l, int in, int tensors,
                     rnnx_sq_needs* n)
{
    const int gates = rnnx_gate_count(l->cell);
    if (gates < 1)
        return RNNX_ECELL;
    if (l->num_directions == 2)
        return RNNX_EUNSUPPORTED;   /* its reverse direction needs the whole sequence */
    if (sp->dtype != RNNX_FLOAT32 || l->num_directions != 1 || l->num_layers < 1 ||
        l->hidden_size < 1 || l->input_size != in)
        return RNNX_EINVAL;
    const int H = l->hidden_size, P = l->proj_size, S = rnnx_state_width(H, P);
    if (P < 0 || (P > 0 && (l->cell != RNNX_LSTM || P >= H)))
        return RNNX_EPROJ;
    const int weight_align = l->kind == RNNX_STREAM_INT8 ? 1 : 2;
    for (int k = 0; k < l->num_layers; k++) {
        const int I = k == 0 ? in : S;
        size_t ih, hh, hr;
        const size_t packed = packed_bytes(l, I, &ih, &hh, &hr);
        const size_t work = rnnx_qforward_work_size(l->cell, qtype_of(l), 1, sp->B, I, H, P);
        if (!ih || !hh || (P > 0 && !hr) || !work)
            return RNNX_ESIZE;   /* past RNNX_QMAX_COLS, or sizes that do not fit */
        if (tensors) {
            const void* const* t = l->tensors + (size_t)k * RNNX_SQ_PER_SUBLAYER;
            const int int8 = l->kind == RNNX_STREAM_INT8;
            if (!t[RNNX_SQ_W_IH] || !t[RNNX_SQ_W_HH] || (P > 0 && !t[RNNX_SQ_W_HR]) ||
                (int8 && (!t[RNNX_SQ_S_IH] || !t[RNNX_SQ_S_HH] || (P > 0 && !t[RNNX_SQ_S_HR]))))
                return RNNX_ENULL;
            for (int j = 0; j < RNNX_SQ_PER_SUBLAYER; j++) {
                const int weight = j == RNNX_SQ_W_IH || j == RNNX_SQ_W_HH || j == RNNX_SQ_W_HR;
                if (t[j] && !aligned(t[j], weight ? (size_t)weight_align : sizeof(float)))
                    return RNNX_EALIGN;
            }
        }
        n->records += sizeof(rnnx_qforward_args);
        n->weights += packed;
        n->work = work > n->work ? work : n->work;
    }
    n->state += (size_t)l->num_layers * sp->B * (S + (l->cell == RNNX_LSTM ? (size_t)H : 0));
    n->out_width = S;
    return RNNX_OK;
}

void rnnx_sq_pack(const rnnx_stream_spec* sp, const rnnx_stream_layer* l, int in,
                  rnnx_qforward_args** rec, unsigned char** w)
{
    const int q = qtype_of(l), gates = rnnx_gate_count(l->cell), H = l->hidden_size;
    const int P = l->proj_size, S = rnnx_state_width(H, P);
    for (int k = 0; k < l->num_layers; k++, (*rec)++) {
        const void* const* t = l->tensors + (size_t)k * RNNX_SQ_PER_SUBLAYER;
        const int I = k == 0 ? in : S;
        size_t ih, hh, hr;
        const size_t packed = packed_bytes(l, I, &ih, &hh, &hr);
        rnnx_qforward_args* a = *rec;
        /* one step of the sub-layer; x, y, states and work: set by each call (rnnx_sq_step) */
        const rnnx_qforward_args step = {.cell = l->cell, .qtype = q, .T = 1, .B = sp->B,
                                         .input_size = I, .H = H, .proj = P, .ldy = S,
                                         .b_ih = (const float*)t[RNNX_SQ_B_IH],
                                         .b_hh = (const float*)t[RNNX_SQ_B_HH]};
        *a = step;
        /* checked by rnnx_sq_needs_of: the packs cannot fail */
        rnnx_qpack(q, gates, H, I, t[RNNX_SQ_W_IH], (const float*)t[RNNX_SQ_S_IH], *w);
        a->w_ih = *w;
        rnnx_qpack(q, gates, H, S, t[RNNX_SQ_W_HH], (const float*)t[RNNX_SQ_S_HH],
                   *w + round64(ih));
        a->w_hh = *w + round64(ih);
        if (P > 0) {
            rnnx_qpack(q, 1, P, H, t[RNNX_SQ_W_HR], (const float*)t[RNNX_SQ_S_HR],
                       *w + round64(ih) + round64(hh));
            a->w_hr = *w + round64(ih) + round64(hh);
        }
        *w += packed;
    }
}

size_t rnnx_sq_run_work(const rnnx_stream_layer* l, const rnnx_qforward_args** rec, int T)
{
    size_t most = 0;
    for (int k = 0; k < l->num_layers; k++, (*rec)++) {
        const rnnx_qforward_args* a = *rec;
        const size_t w = rnnx_qforward_work_size(a->cell, a->qtype, T, a->B, a->input_size, a->H,
                                                 a->proj);
        if (!w)
            return 0;
        most = w > most ? w : most;
    }
    return most;
}

size_t rnnx_sq_step(const rnnx_stream_layer* l, const rnnx_blas* blas,
                    const rnnx_qforward_args** rec, int T, int B, const void** cur, void* y,
                    unsigned char* const acts[2], int* next, unsigned char* now,
                    unsigned char* then, void* work)
{
    const int L = l->num_layers, H = l->hidden_size, lstm = l->cell == RNNX_LSTM;
    const size_t BS = (size_t)B * rnnx_state_width(H, l->proj_size) * sizeof(float);
    const size_t BH = (size_t)B * H * sizeof(float), c_at = (size_t)L * BS;
    for (int k = 0; k < L; k++, (*rec)++) {
        float* out = y && k == L - 1 ? (float*)y : (float*)acts[*next];
        rnnx_qforward_args a = **rec;   /* the packed weights, over T steps */
        a.T = T;
        a.x = (const float*)*cur;
        a.y = out;
        a.work = work;
        a.h0 = (const float*)(now + (size_t)k * BS);
        a.h_n = (float*)(then + (size_t)k * BS);
        a.c0 = lstm ? (const float*)(now + c_at + (size_t)k * BH) : NULL;
        a.c_n = lstm ? (float*)(then + c_at + (size_t)k * BH) : NULL;
        rnnx_qforward(blas, &a);   /* checked at init: cannot fail */
        *cur = out;
        *next = 1 - *next;
    }
    return c_at + (lstm ? (size_t)L * BH : 0);
}
