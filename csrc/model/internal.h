/*
 * model/internal.h: what the files of the model layer (csrc/model/) share:
 * the .rnnx format's constants (format.h) and the helpers of one file that
 * another calls.  Internal: not installed.
 */
#ifndef RNNX_MODEL_INTERNAL_H
#define RNNX_MODEL_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "rnnx.h"
#include "rnnx_model.h"
#include "model/format.h"
#include "stream/heads.h"

static inline size_t elem_size(int dtype)
{
    return dtype == RNNX_FLOAT64 ? sizeof(double) : sizeof(float);
}

static inline int is_recurrent(int kind)
{
    return rnnx_gate_count(kind) > 0;
}

static inline int takes_ids(const rnnx_model* m)
{
    return m->layers[0].kind == RNNX_EMBEDDING;
}

/* Entries of rnnx_layer.tensors one weight matrix takes: int8 data and its scales, or one. */
static inline int rnnxm_matrix_entries(const rnnx_layer* l)
{
    return l->weights == RNNX_WEIGHTS_INT8 ? 2 : 1;
}

/* Entries of rnnx_layer.tensors per recurrent sub-layer: w_ih, w_hh, the biases, w_hr. */
static inline int rnnxm_sub_entries(const rnnx_layer* l)
{
    return (2 + (l->proj_size > 0)) * rnnxm_matrix_entries(l) + (l->bias ? 2 : 0);
}

/* The width of a recurrent layer's h: its projection's, or H. */
static inline int rnnxm_state_width(const rnnx_layer* l)
{
    return l->proj_size > 0 ? l->proj_size : l->hidden_size;
}

/* The tensors of recurrent sub-layer (k,d) of a layer: each weight matrix with
 * its scales (NULL unless int8), the biases (NULL without), the projection
 * (NULL without). */
typedef struct sub_weights {
    const void *w_ih, *s_ih, *w_hh, *s_hh, *b_ih, *b_hh, *w_hr, *s_hr;
} sub_weights;

static inline sub_weights rnnxm_sub_weights(const rnnx_layer* l, int k, int d)
{
    const int m = rnnxm_matrix_entries(l), b = l->bias ? 2 : 0;
    const void* const* t = l->tensors + (size_t)(k * l->num_directions + d) * rnnxm_sub_entries(l);
    const int hr = 2 * m + b;   /* where w_hr is, after the biases (PyTorch's order) */
    sub_weights w = {t[0], m == 2 ? t[1] : NULL, t[m], m == 2 ? t[m + 1] : NULL,
                     b ? t[2 * m] : NULL, b ? t[2 * m + 1] : NULL,
                     l->proj_size > 0 ? t[hr] : NULL,
                     l->proj_size > 0 && m == 2 ? t[hr + 1] : NULL};
    return w;
}

static inline int layer_output_size(const rnnx_layer* l)
{
    return is_recurrent(l->kind) ? l->num_directions * rnnxm_state_width(l) : l->hidden_size;
}

/* The widest activation any layer reads or writes, and the recurrent needs. */
typedef struct model_dims {
    size_t width;         /* max features of any activation, input included */
    size_t hidden;        /* max H of a recurrent layer */
    size_t core_work;     /* max rnnx_forward_work_size over recurrent sub-layers */
    size_t w_ih_t;        /* max I_k * G over recurrent sub-layers: room for one W_ih^T */
    size_t qbytes;        /* bytes: max over int8/bfloat16 sub-layers of their packed
                             weights and the quantized core's work (64-byte aligned) */
    int recurrent;        /* index of the last recurrent layer, or -1 */
    int bidirectional;    /* some layer has two directions */
} model_dims;

/* run.c: the path of the core's products (BLAS where the caller gave one). */
int rnnxm_path_for(const rnnx_blas* blas, int dtype);

/* A model's Dense layer l over N rows, and its Embedding (stream/heads.c). */
static inline void rnnxm_dense(int dtype, void* out, const void* x, const rnnx_layer* l, int N)
{
    rnnx_dense_rows(dtype, out, x, l->tensors[0], l->bias ? l->tensors[1] : NULL, N,
                    l->input_size, l->hidden_size, l->activation);
}

static inline void rnnxm_embed(int dtype, void* out, const int32_t* ids, const rnnx_layer* l,
                               size_t N)
{
    rnnx_embed_rows(dtype, out, ids, l->tensors[0], l->hidden_size, N);
}

/* run.c: the widest activation and the recurrent needs of T steps of B rows. */
model_dims rnnxm_dims_of(const rnnx_model* m, int T, int B);

/* quantized.c: a recurrent layer with int8/bfloat16 weights (l->weights != 0).
 * Sub-layer k's W_ih and W_hh packed for the quantized core take
 * rnnxm_q_packed_bytes (64-byte aligned parts; rnnxm_q_pack writes direction
 * d's); a run of T steps of B rows needs rnnxm_q_work_bytes of work.
 * rnnxm_q_forward runs direction d of sub-layer k as rnnx_forward would
 * (x (T,B,I), y rows ldy apart, h0/c0 NULL: zeros, h_n/c_n NULL: not wanted). */
size_t rnnxm_q_packed_bytes(const rnnx_layer* l, int k);
size_t rnnxm_q_work_bytes(const rnnx_layer* l, int k, int T, int B);
int rnnxm_q_pack(const rnnx_layer* l, int k, int d, unsigned char* packed);
int rnnxm_q_forward(const rnnx_layer* l, const rnnx_blas* blas, const unsigned char* packed,
                    int k, int d, int T, int B, const int64_t* lengths, const void* x,
                    const void* h0, const void* c0, void* y, ptrdiff_t ldy, void* h_n,
                    void* c_n, void* work);

#endif /* RNNX_MODEL_INTERNAL_H */
