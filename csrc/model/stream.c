/*
 * model/stream.c: a model one step at a time (rnnx_stream_*): the layer list
 * of the core's one stream (csrc/stream/stream.h), built from the model once.
 *
 * The stream's memory, each part on 64 bytes:
 *   the core stream (rnnx_step_stream)
 *   its layer list: one rnnx_stream_layer per model layer
 *   the tensors' table in the list's order: RNNX_ST_PER_SUBLAYER pointers per
 *   recurrent sub-layer (RNNX_SQ_PER_SUBLAYER with int8/bfloat16 weights: the
 *   stream's RNNX_STREAM_INT8/_BFLOAT16 kinds), weight and bias (or NULL) per Dense layer
 *   the core stream's own memory (rnnx_step_stream_size)
 */
#include <string.h>

#include "model/internal.h"
#include "stream/stream.h"

static size_t round64(size_t bytes)
{
    return (bytes + 63) / 64 * 64;
}

/* Entries of the tensor table per recurrent sub-layer: RNNX_ST_PER_SUBLAYER, or
 * RNNX_SQ_PER_SUBLAYER with int8/bfloat16 weights. */
static size_t per_sublayer(const rnnx_layer* l)
{
    return l->weights != RNNX_WEIGHTS_FLOAT ? RNNX_SQ_PER_SUBLAYER : RNNX_ST_PER_SUBLAYER;
}

/* Entries of the tensor table: per_sublayer per recurrent sub-layer, 2 per Dense. */
static size_t table_entries(const rnnx_model* m)
{
    size_t n = 0;
    for (int i = 0; i < m->num_layers; i++) {
        const rnnx_layer* l = &m->layers[i];
        n += is_recurrent(l->kind) ? (size_t)l->num_layers * per_sublayer(l)
             : l->kind == RNNX_DENSE ? 2 : 0;
    }
    return n;
}

/* The bytes before the core stream's memory. */
static size_t head_bytes(const rnnx_model* m)
{
    return round64(sizeof(rnnx_step_stream)) +
           round64((size_t)m->num_layers * sizeof(rnnx_stream_layer)) +
           round64(table_entries(m) * sizeof(const void*));
}

/* The stream layer of model layer l, its shapes (tensors NULL). */
static rnnx_stream_layer shapes_of(const rnnx_layer* l)
{
    rnnx_stream_layer s;
    memset(&s, 0, sizeof s);
    s.kind = l->kind == RNNX_DENSE                    ? RNNX_STREAM_DENSE
             : l->kind == RNNX_EMBEDDING              ? RNNX_STREAM_EMBEDDING
             : l->weights == RNNX_WEIGHTS_INT8        ? RNNX_STREAM_INT8
             : l->weights == RNNX_WEIGHTS_BFLOAT16    ? RNNX_STREAM_BFLOAT16
                                                      : RNNX_STREAM_RECURRENT;
    s.cell = is_recurrent(l->kind) ? l->kind : 0;
    s.input_size = l->input_size;
    s.hidden_size = l->hidden_size;
    s.num_layers = l->num_layers;
    s.num_directions = l->num_directions;
    s.activation = l->activation;
    s.proj_size = l->proj_size;
    return s;
}

/* *spec over layers[0..m->num_layers), shapes only. */
static int spec_of(const rnnx_model* m, int B, rnnx_stream_layer* layers, rnnx_stream_spec* spec)
{
    const int status = rnnx_model_check(m);
    if (status != RNNX_OK)
        return status;
    if (B < 1)
        return RNNX_EINVAL;
    for (int i = 0; i < m->num_layers; i++)
        layers[i] = shapes_of(&m->layers[i]);
    memset(spec, 0, sizeof *spec);
    spec->dtype = m->dtype;
    spec->B = B;
    spec->num_layers = m->num_layers;
    spec->layers = layers;
    spec->bit_exact = 1;   /* a stream equals rnnx_model_run over the same steps, bit for bit */
    return RNNX_OK;
}

/* The tensors of the list, in the stream's order, into table (per_sublayer pointers
 * per recurrent sub-layer, 2 per Dense layer). */
static void point_tensors(const rnnx_model* m, rnnx_stream_layer* layers, const void** table)
{
    for (int i = 0; i < m->num_layers; i++) {
        const rnnx_layer* l = &m->layers[i];
        if (l->kind == RNNX_EMBEDDING) {
            layers[i].tensors = l->tensors;   /* the table */
            continue;
        }
        layers[i].tensors = table;
        if (l->kind == RNNX_DENSE) {
            table[0] = l->tensors[0];
            table[1] = l->bias ? l->tensors[1] : NULL;
            table += 2;
            continue;
        }
        const size_t per = per_sublayer(l);
        for (int k = 0; k < l->num_layers; k++, table += per) {
            const sub_weights w = rnnxm_sub_weights(l, k, 0);
            for (size_t j = 0; j < per; j++)
                table[j] = NULL;
            if (l->weights != RNNX_WEIGHTS_FLOAT) {
                table[RNNX_SQ_W_IH] = w.w_ih;
                table[RNNX_SQ_S_IH] = w.s_ih;
                table[RNNX_SQ_W_HH] = w.w_hh;
                table[RNNX_SQ_S_HH] = w.s_hh;
                table[RNNX_SQ_B_IH] = w.b_ih;
                table[RNNX_SQ_B_HH] = w.b_hh;
                table[RNNX_SQ_W_HR] = w.w_hr;
                table[RNNX_SQ_S_HR] = w.s_hr;
                continue;
            }
            table[RNNX_ST_W_IH] = w.w_ih;
            table[RNNX_ST_W_HH] = w.w_hh;
            table[RNNX_ST_B_IH] = w.b_ih;
            table[RNNX_ST_B_HH] = w.b_hh;
            table[RNNX_ST_W_HR] = w.w_hr;
        }
    }
}

size_t rnnx_stream_size(const rnnx_model* m, int B)
{
    rnnx_stream_layer layers[RNNX_FORMAT_MAX_LAYERS];   /* rnnx_model_check bounds the count */
    rnnx_stream_spec spec;
    size_t core = 0;
    if (spec_of(m, B, layers, &spec) != RNNX_OK || rnnx_step_stream_size(&spec, &core) != RNNX_OK)
        return 0;
    return head_bytes(m) + core;
}

int rnnx_stream_init(rnnx_stream* s, const rnnx_model* m, const rnnx_blas* blas, int B,
                     void* mem, size_t mem_bytes)
{
    if (!s || !mem)
        return RNNX_ENULL;
    if ((uintptr_t)mem % 8)
        return RNNX_EALIGN;
    unsigned char* base = (unsigned char*)mem;
    rnnx_stream_layer* layers = (rnnx_stream_layer*)(base + round64(sizeof(rnnx_step_stream)));
    rnnx_stream_spec spec;
    size_t core = 0;
    /* the shapes first: a model that cannot stream is refused before mem is written */
    rnnx_stream_layer probe[RNNX_FORMAT_MAX_LAYERS];
    int status = spec_of(m, B, probe, &spec);
    if (status == RNNX_OK)
        status = rnnx_step_stream_size(&spec, &core);
    if (status != RNNX_OK)
        return status;
    const size_t head = head_bytes(m);
    if (mem_bytes < head + core)
        return RNNX_ENOMEM;
    spec_of(m, B, layers, &spec);
    point_tensors(m, layers, (const void**)((unsigned char*)layers +
                                            round64((size_t)m->num_layers * sizeof *layers)));
    status = rnnx_step_stream_init((rnnx_step_stream*)mem, &spec, base + head, mem_bytes - head);
    if (status != RNNX_OK)
        return status;
    s->model = m;
    s->blas = blas;
    s->B = B;
    s->parity = 0;
    s->mem = mem;
    s->mem_bytes = mem_bytes;
    return RNNX_OK;
}

int rnnx_stream_reset(rnnx_stream* s)
{
    if (!s || !s->model || !s->mem)
        return RNNX_ENULL;
    s->parity = 0;
    return rnnx_step_stream_reset((rnnx_step_stream*)s->mem);
}

int rnnx_stream_step(rnnx_stream* s, const void* x, void* y)
{
    if (!s || !s->model || !s->mem)
        return RNNX_ENULL;
    rnnx_step_stream* core = (rnnx_step_stream*)s->mem;
    const int status = rnnx_step_stream_step(core, s->blas, x, y);
    s->parity = core->parity;
    return status;
}
