/*
 * stream/stream.c: the one streaming step over a list of layers (stream.h).
 *
 * The stream's memory, in this order, each region starting on 64 bytes:
 *   records  one rnnx_forward_args per recurrent sub-layer, in list order,
 *            filled once at init (shapes, weights, packed panels); a call
 *            copies it and points the copy at its input, output, states, work;
 *            then one rnnx_qforward_args per int8/bfloat16 sub-layer
 *            (stream/quantized.c), the same way
 *   state    two halves (a step reads one and writes the other, then flips
 *            parity), each state_elems: per recurrent layer h (L,B,S), c (L,B,H)
 *   weights  per recurrent sub-layer W_ih^T (in,G) then the packed W_hh (and W_hr);
 *            per int8/bfloat16 sub-layer its packed W_ih, W_hh (and W_hr)
 *   act      two activation buffers (B, widest output), between layers
 *   work     the core's forward work for one step, the largest of the sub-layers
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "layout.h"
#include "stream/heads.h"
#include "stream/quantized.h"
#include "stream/stream.h"

enum { REGION_ALIGN = 64 };

static size_t elem_of(int dtype)
{
    return dtype == RNNX_FLOAT64 ? sizeof(double) : sizeof(float);
}

static size_t round_up(size_t bytes)
{
    return (bytes + REGION_ALIGN - 1) / REGION_ALIGN * REGION_ALIGN;
}

static int aligned(const void* p, size_t elem)
{
    return (uintptr_t)p % elem == 0;
}

/* What the layers need, in bytes (records, weights, work) or elements (state, width). */
typedef struct stream_needs {
    size_t records, state, weights, work;
    size_t qrecords;   /* the int8/bfloat16 layers' records, after the others */
    size_t width;   /* the widest output of a layer or sub-layer */
    int in_width;   /* features of x, 0 for ids */
    int out_width;  /* features of y */
} stream_needs;

/* A recurrent layer's sizes, checked (its tensors too if tensors), added to *n; in is
 * its input's width. */
static int needs_of_recurrent(const rnnx_stream_spec* sp, const rnnx_stream_layer* l, int in,
                              int tensors, stream_needs* n)
{
    rnnx_cell_info info;
    if (rnnx_cell_info_of(l->cell, &info) != RNNX_OK)
        return RNNX_ECELL;
    if (l->num_directions == 2)
        return RNNX_EUNSUPPORTED;   /* its reverse direction needs the whole sequence */
    if (l->num_directions != 1 || l->num_layers < 1 || l->hidden_size < 1 || l->input_size != in)
        return RNNX_EINVAL;
    const int H = l->hidden_size, P = l->proj_size, S = rnnx_state_width(H, P);
    if (P < 0 || (P > 0 && (!(info.options & RNNX_OPTION_PROJ) || P >= H)))
        return RNNX_EPROJ;
    const size_t elem = elem_of(sp->dtype), G = (size_t)info.gates * H;
    for (int k = 0; k < l->num_layers; k++) {
        const int I = k == 0 ? in : S;
        const size_t work = rnnx_forward_work_size_proj(l->cell, 1, sp->B, I, H, P, 0);
        const size_t packed = rnnx_packed_size_proj(l->cell, sp->dtype, H, P);
        if (!work || !packed)
            return RNNX_ESIZE;
        if (tensors) {
            const void* const* t = l->tensors + (size_t)k * RNNX_ST_PER_SUBLAYER;
            if (!t[RNNX_ST_W_IH] || !t[RNNX_ST_W_HH] || (P > 0 && !t[RNNX_ST_W_HR]))
                return RNNX_ENULL;
            if (t[RNNX_ST_W_PEEP] && !(info.options & RNNX_OPTION_PEEPHOLE))
                return RNNX_EPEEPHOLE;
            for (int j = 0; j < RNNX_ST_PER_SUBLAYER; j++)
                if (t[j] && !aligned(t[j], elem))
                    return RNNX_EALIGN;
        }
        n->records += sizeof(rnnx_forward_args);
        n->weights += round_up((size_t)I * G * elem) + round_up(packed * elem);
        n->work = work * elem > n->work ? work * elem : n->work;
    }
    n->state += (size_t)l->num_layers * sp->B * (S + (info.states == 2 ? (size_t)H : 0));
    n->width = (size_t)S > n->width ? (size_t)S : n->width;
    n->out_width = S;
    return RNNX_OK;
}

/* Every layer checked (its tensors too if tensors) and sized (layer kinds: validation
 * and sizes). */
static int needs_of(const rnnx_stream_spec* sp, int tensors, stream_needs* n)
{
    memset(n, 0, sizeof *n);
    if (!sp->layers)
        return RNNX_ENULL;
    if ((sp->dtype != RNNX_FLOAT32 && sp->dtype != RNNX_FLOAT64) || sp->B < 1 ||
        sp->num_layers < 1 || (sp->bit_exact != 0 && sp->bit_exact != 1))
        return RNNX_EINVAL;
    const size_t elem = elem_of(sp->dtype);
    int in = sp->layers[0].kind == RNNX_STREAM_EMBEDDING ? 0 : sp->layers[0].input_size;
    n->in_width = in;
    for (int i = 0; i < sp->num_layers; i++) {
        const rnnx_stream_layer* l = &sp->layers[i];
        if (tensors && !l->tensors)
            return RNNX_ENULL;
        int status = RNNX_OK;
        switch (l->kind) {
        case RNNX_STREAM_RECURRENT:
            status = needs_of_recurrent(sp, l, in, tensors, n);
            break;
        case RNNX_STREAM_INT8:
        case RNNX_STREAM_BFLOAT16: {
            rnnx_sq_needs q = {0, n->state, n->weights, n->work, 0};
            status = rnnx_sq_needs_of(sp, l, in, tensors, &q);
            n->qrecords += q.records;
            n->state = q.state;
            n->weights = q.weights;
            n->work = q.work;
            n->out_width = q.out_width;
            break;
        }
        case RNNX_STREAM_DENSE:
            if (l->input_size != in || in < 1 || l->hidden_size < 1 ||
                l->activation < RNNX_ACT_IDENTITY || l->activation > RNNX_ACT_RELU)
                return RNNX_EINVAL;
            if ((double)l->input_size * l->hidden_size > (double)INT32_MAX)
                return RNNX_ESIZE;
            if (tensors && !l->tensors[0])
                return RNNX_ENULL;
            if (tensors && (!aligned(l->tensors[0], elem) ||
                            (l->tensors[1] && !aligned(l->tensors[1], elem))))
                return RNNX_EALIGN;
            n->out_width = l->hidden_size;
            break;
        case RNNX_STREAM_EMBEDDING:
            if (i != 0 || l->input_size < 1 || l->hidden_size < 1)
                return RNNX_EINVAL;
            if (tensors && !l->tensors[0])
                return RNNX_ENULL;
            if (tensors && !aligned(l->tensors[0], elem))
                return RNNX_EALIGN;
            n->out_width = l->hidden_size;
            break;
        default:
            return RNNX_EINVAL;
        }
        if (status != RNNX_OK)
            return status;
        in = n->out_width;
        n->width = (size_t)in > n->width ? (size_t)in : n->width;
        /* every region's bytes stay far from SIZE_MAX, so the sums below do not wrap */
        if ((double)n->state * elem + (double)n->weights + (double)n->work +
                (double)sp->B * n->width * elem > (double)SIZE_MAX / 8)
            return RNNX_ESIZE;
    }
    return RNNX_OK;
}

/* The byte offsets of the regions; returns the total. */
static size_t layout_of(const rnnx_stream_spec* sp, const stream_needs* n, size_t* state_off,
                        size_t* weights_off, size_t* act_off, size_t* work_off)
{
    const size_t elem = elem_of(sp->dtype);
    *state_off = round_up(n->records + n->qrecords);
    *weights_off = *state_off + 2 * round_up(n->state * elem);
    *act_off = *weights_off + n->weights;
    *work_off = *act_off + 2 * round_up((size_t)sp->B * n->width * elem);
    return *work_off + n->work;
}

int rnnx_step_stream_size(const rnnx_stream_spec* spec, size_t* bytes)
{
    if (!spec || !bytes)
        return RNNX_ENULL;
    *bytes = 0;
    stream_needs n;
    const int status = needs_of(spec, 0, &n);
    if (status != RNNX_OK)
        return status;
    size_t a, b, c, d;
    *bytes = layout_of(spec, &n, &a, &b, &c, &d);
    return RNNX_OK;
}

/* The records of recurrent layer l, from *rec on, and its weights packed at *w. */
static void pack_recurrent(const rnnx_stream_spec* sp, const rnnx_stream_layer* l, int in,
                           rnnx_forward_args** rec, unsigned char** w)
{
    const size_t elem = elem_of(sp->dtype);
    const int H = l->hidden_size, P = l->proj_size, S = rnnx_state_width(H, P);
    const size_t G = (size_t)rnnx_gate_count(l->cell) * H;
    for (int k = 0; k < l->num_layers; k++, (*rec)++) {
        const void* const* t = l->tensors + (size_t)k * RNNX_ST_PER_SUBLAYER;
        const int I = k == 0 ? in : S;
        rnnx_forward_args* a = *rec;
        memset(a, 0, sizeof *a);
        a->cell = l->cell;
        a->dtype = sp->dtype;
        a->path = RNNX_PATH_AUTO;
        a->T = 1;
        a->B = sp->B;
        a->input_size = I;
        a->H = H;
        a->proj = P;
        a->w_ih = t[RNNX_ST_W_IH];
        a->w_hh = t[RNNX_ST_W_HH];
        a->b_ih = t[RNNX_ST_B_IH];
        a->b_hh = t[RNNX_ST_B_HH];
        a->w_hr = P > 0 ? t[RNNX_ST_W_HR] : NULL;
        a->w_peep = t[RNNX_ST_W_PEEP];
        a->row_exact = sp->bit_exact;
        a->ldy = S;   /* x, y, states and work: set by each call (run_layers) */
        rnnx_transpose_bytes(*w, t[RNNX_ST_W_IH], G, (size_t)I, elem);
        a->w_ih_t = *w;
        *w += round_up((size_t)I * G * elem);
        rnnx_pack_weights_proj(l->cell, sp->dtype, H, P, a->w_hh, a->w_hr, *w);
        a->w_hh_packed = *w;
        *w += round_up(rnnx_packed_size_proj(l->cell, sp->dtype, H, P) * elem);
    }
}

int rnnx_step_stream_init(rnnx_step_stream* s, const rnnx_stream_spec* spec, void* mem,
                          size_t mem_bytes)
{
    if (!s || !spec || !mem)
        return RNNX_ENULL;
    if ((uintptr_t)mem % 8)
        return RNNX_EALIGN;
    stream_needs n;
    int status = needs_of(spec, 1, &n);
    if (status != RNNX_OK)
        return status;
    size_t weights_off;
    rnnx_step_stream t;
    memset(&t, 0, sizeof t);
    if (mem_bytes < layout_of(spec, &n, &t.state_off, &weights_off, &t.act_off, &t.work_off))
        return RNNX_ENOMEM;
    t.spec = *spec;
    t.in_width = n.in_width;
    t.out_width = n.out_width;
    t.state_elems = n.state;
    t.act_elems = (size_t)spec->B * n.width;
    t.mem = mem;
    unsigned char* base = (unsigned char*)mem;
    rnnx_forward_args* rec = (rnnx_forward_args*)mem;
    t.qrec_off = n.records;
    rnnx_qforward_args* qrec = (rnnx_qforward_args*)(base + t.qrec_off);
    unsigned char* w = base + weights_off;
    int in = n.in_width;
    for (int i = 0; i < spec->num_layers; i++) {   /* layer kinds: packing at init */
        const rnnx_stream_layer* l = &spec->layers[i];
        switch (l->kind) {
        case RNNX_STREAM_RECURRENT:
            pack_recurrent(spec, l, in, &rec, &w);
            in = rnnx_state_width(l->hidden_size, l->proj_size);
            break;
        case RNNX_STREAM_INT8:
        case RNNX_STREAM_BFLOAT16:
            rnnx_sq_pack(spec, l, in, &qrec, &w);
            in = rnnx_state_width(l->hidden_size, l->proj_size);
            break;
        default:   /* Dense and Embedding read their tensors in place */
            in = l->hidden_size;
            break;
        }
    }
    *s = t;
    return rnnx_step_stream_reset(s);
}

int rnnx_step_stream_reset(rnnx_step_stream* s)
{
    if (!s || !s->mem)
        return RNNX_ENULL;
    const size_t half = round_up(s->state_elems * elem_of(s->spec.dtype));
    memset((unsigned char*)s->mem + s->state_off, 0, 2 * half);
    s->parity = 0;
    return RNNX_OK;
}

void* rnnx_step_stream_state(const rnnx_step_stream* s)
{
    if (!s || !s->mem)
        return NULL;
    const size_t half = round_up(s->state_elems * elem_of(s->spec.dtype));
    return (unsigned char*)s->mem + s->state_off + (size_t)s->parity * half;
}

/* ----------------------------------------------------------- T steps at once --- */

/* rnnx_step_stream_run's work: two activation buffers (T,B,width), the core's work for
 * T steps of the largest sub-layer; 0 if T*B does not fit the core's ints. */
size_t rnnx_step_stream_run_size(const rnnx_step_stream* s, int T)
{
    if (!s || !s->mem || T < 1 || (int64_t)T * s->spec.B > INT_MAX)
        return 0;
    const size_t elem = elem_of(s->spec.dtype);
    const rnnx_forward_args* rec = (const rnnx_forward_args*)s->mem;
    const rnnx_qforward_args* qrec =
        (const rnnx_qforward_args*)((const unsigned char*)s->mem + s->qrec_off);
    size_t core = 0;
    for (int i = 0; i < s->spec.num_layers; i++) {
        const rnnx_stream_layer* l = &s->spec.layers[i];
        for (int k = 0; l->kind == RNNX_STREAM_RECURRENT && k < l->num_layers; k++, rec++) {
            const size_t w = rnnx_forward_work_size_proj(rec->cell, T, rec->B, rec->input_size,
                                                         rec->H, rec->proj, 0);
            if (!w)
                return 0;
            core = w > core ? w : core;
        }
        if (l->kind == RNNX_STREAM_INT8 || l->kind == RNNX_STREAM_BFLOAT16) {
            /* bytes, in elements of the dtype (float32), rounded up */
            const size_t w = rnnx_sq_run_work(l, &qrec, T);
            if (!w)
                return 0;
            core = (w + elem - 1) / elem > core ? (w + elem - 1) / elem : core;
        }
    }
    if ((double)T * s->act_elems * elem * 2 + (double)core * elem > (double)SIZE_MAX / 8)
        return 0;
    return 2 * round_up((size_t)T * s->act_elems * elem) + core * elem;
}

/* T steps of every layer from the current state (ids checked by the caller): acts are two
 * activation buffers of act bytes each, core_work the core's work for T steps. */
static void run_layers(rnnx_step_stream* s, const rnnx_blas* blas, const void* x, int T, void* y,
                       unsigned char* acts0, size_t act, void* core_work)
{
    const rnnx_stream_spec* sp = &s->spec;
    const int B = sp->B, rows = T * B;
    const size_t elem = elem_of(sp->dtype);
    const size_t half = round_up(s->state_elems * elem);
    unsigned char* base = (unsigned char*)s->mem;
    unsigned char* now = base + s->state_off + (size_t)s->parity * half;
    unsigned char* then = base + s->state_off + (size_t)(1 - s->parity) * half;
    unsigned char* acts[2] = {acts0, acts0 + act};
    const rnnx_forward_args* rec = (const rnnx_forward_args*)s->mem;
    const rnnx_qforward_args* qrec = (const rnnx_qforward_args*)(base + s->qrec_off);
    const rnnx_dtype_kernels* kernels = rnnx_kernels_in_use(sp->dtype);
    const void* cur = x;
    int next = 0;
    for (int i = 0; i < sp->num_layers; i++) {   /* layer kinds: T steps */
        const rnnx_stream_layer* l = &sp->layers[i];
        const int last = i == sp->num_layers - 1;
        switch (l->kind) {
        case RNNX_STREAM_EMBEDDING:
        case RNNX_STREAM_DENSE: {
            void* out = last ? y : acts[next];
            if (l->kind == RNNX_STREAM_EMBEDDING)
                rnnx_embed_rows(sp->dtype, out, (const int32_t*)cur, l->tensors[0],
                                l->hidden_size, (size_t)rows);
            else
                rnnx_dense_rows(sp->dtype, out, cur, l->tensors[0], l->tensors[1], rows,
                                l->input_size, l->hidden_size, l->activation);
            cur = out;
            next = 1 - next;
            break;
        }
        case RNNX_STREAM_RECURRENT: {
            const rnnx_cell_desc* d = rnnx_cell_find(l->cell);
            const int L = l->num_layers, H = l->hidden_size;
            const size_t BS = (size_t)B * rnnx_state_width(H, l->proj_size) * elem;
            const size_t BH = (size_t)B * H * elem, c_at = (size_t)L * BS;
            for (int k = 0; k < L; k++, rec++) {
                rnnx_forward_args a = *rec;   /* the packed weights, over T steps */
                void* out = last && k == L - 1 ? y : acts[next];
                a.T = T;
                a.x = cur;
                a.y = out;
                a.work = core_work;
                a.h0 = now + (size_t)k * BS;
                a.h_n = then + (size_t)k * BS;
                a.c0 = d->states == 2 ? now + c_at + (size_t)k * BH : NULL;
                a.c_n = d->states == 2 ? then + c_at + (size_t)k * BH : NULL;
                kernels->forward(d, blas, &a);
                cur = out;
                next = 1 - next;
            }
            const size_t layer_state = c_at + (d->states == 2 ? (size_t)L * BH : 0);
            now += layer_state;
            then += layer_state;
            break;
        }
        case RNNX_STREAM_INT8:
        case RNNX_STREAM_BFLOAT16: {
            const size_t layer_state = rnnx_sq_step(l, blas, &qrec, T, B, &cur,
                                                    last ? y : NULL, acts, &next, now, then,
                                                    core_work);
            now += layer_state;
            then += layer_state;
            break;
        }
        }
    }
    s->parity = 1 - s->parity;
}

int rnnx_step_stream_run(rnnx_step_stream* s, const rnnx_blas* blas, const void* x, int T,
                         void* y, void* work, size_t work_bytes)
{
    if (!s || !s->mem || !x || !y || !work)
        return RNNX_ENULL;
    const size_t need = rnnx_step_stream_run_size(s, T);
    if (!need)
        return T < 1 ? RNNX_EINVAL : RNNX_ESIZE;
    if (work_bytes < need)
        return RNNX_ENOMEM;
    if ((uintptr_t)work % 8)
        return RNNX_EALIGN;
    const rnnx_stream_layer* first = &s->spec.layers[0];
    if (first->kind == RNNX_STREAM_EMBEDDING &&
        rnnx_check_ids((const int32_t*)x, (size_t)T * s->spec.B, first->input_size) != RNNX_OK)
        return RNNX_EINVAL;   /* before anything is written: the state stays as it was */
    const size_t act = round_up((size_t)T * s->act_elems * elem_of(s->spec.dtype));
    run_layers(s, blas, x, T, y, (unsigned char*)work, act, (unsigned char*)work + 2 * act);
    return RNNX_OK;
}

int rnnx_step_stream_step(rnnx_step_stream* s, const rnnx_blas* blas, const void* x, void* y)
{
    if (!s || !s->mem || !x || !y)
        return RNNX_ENULL;
    const rnnx_stream_layer* first = &s->spec.layers[0];
    if (first->kind == RNNX_STREAM_EMBEDDING &&
        rnnx_check_ids((const int32_t*)x, (size_t)s->spec.B, first->input_size) != RNNX_OK)
        return RNNX_EINVAL;   /* before anything is written: the state stays as it was */
    unsigned char* base = (unsigned char*)s->mem;
    run_layers(s, blas, x, 1, y, base + s->act_off,
               round_up(s->act_elems * elem_of(s->spec.dtype)), base + s->work_off);
    return RNNX_OK;
}
