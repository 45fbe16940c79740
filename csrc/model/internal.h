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

static inline int layer_output_size(const rnnx_layer* l)
{
    return is_recurrent(l->kind) ? l->num_directions * l->hidden_size : l->hidden_size;
}

/* The widest activation any layer reads or writes, and the recurrent needs. */
typedef struct model_dims {
    size_t width;         /* max features of any activation, input included */
    size_t hidden;        /* max H of a recurrent layer */
    size_t core_work;     /* max rnnx_forward_work_size over recurrent sub-layers */
    size_t w_ih_t;        /* max I_k * G over recurrent sub-layers: room for one W_ih^T */
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

#endif /* RNNX_MODEL_INTERNAL_H */
