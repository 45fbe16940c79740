/*
 * stream/stream.h: the one streaming step of rnnx, over a list of layers.
 *
 * A step takes one time step x (B,in) of B rows through every layer of the
 * list, in order, and writes the last layer's output y (B,out), carrying each
 * recurrent layer's state to the next step.  The layers are
 *   recurrent: a stack of num_layers sub-layers of any cell of the cell table
 *              (RNN tanh/relu, LSTM with a projection and/or peepholes, GRU
 *              both forms), biases optional, one direction only;
 *   Dense:     out = act(x @ w^T + b), the activations of enum
 *              rnnx_activation_kind (csrc/stream/heads.c);
 *   Embedding: the first layer only: x is (B,) int32 ids, out = table[ids].
 *
 * Both the C library's stream (rnnx_stream_*, csrc/model/stream.c, which
 * builds the list from a model) and the Python binding's _core.Stream
 * (rnnx/_core_stream.pxi) are this stream.
 *
 * rnnx_step_stream_init validates everything once (kinds, sizes, dtypes,
 * pointers, sizes overflowing the core's indices) and packs the recurrent
 * weights once into the caller's memory, sized by rnnx_step_stream_size: the
 * core never allocates.  A step then checks only that its pointers are not
 * NULL and, for ids, that they are in range (refused before anything
 * changes), and runs the driver's per-step code (the cells' plans over the
 * packed panels, threads through blas->parallel_for), not rnnx_forward.
 *
 * To add a layer kind (int8 or bfloat16 weights, say): one enum value below,
 * and one case in each of the three switches of stream.c marked "layer kinds"
 * (its validation and sizes, its packing at init, its step).
 */
#ifndef RNNX_STREAM_H
#define RNNX_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "rnnx.h"
#include "rnnx_model.h"   /* the Dense activations and the status codes after the core's */

#ifdef __cplusplus
extern "C" {
#endif

/* rnnx_stream_layer.kind */
enum rnnx_stream_kind {
    RNNX_STREAM_RECURRENT = 0,
    RNNX_STREAM_DENSE = 1,
    RNNX_STREAM_EMBEDDING = 2,
    RNNX_STREAM_INT8 = 3,      /* recurrent, int8 weights + row scales (quant/quant.h); float32 */
    RNNX_STREAM_BFLOAT16 = 4   /* recurrent, bfloat16 weights (uint16_t); float32 */
};

/* The tensors of one recurrent sub-layer, in this order (rnnx_stream_layer.tensors). */
enum rnnx_stream_tensor {
    RNNX_ST_W_IH = 0,   /* (G, in)  in = input_size for sub-layer 0, else the state width */
    RNNX_ST_W_HH = 1,   /* (G, S)   S = proj_size if > 0, else H */
    RNNX_ST_B_IH = 2,   /* (G,) or NULL */
    RNNX_ST_B_HH = 3,   /* (G,) or NULL */
    RNNX_ST_W_HR = 4,   /* (P, H) with a projection, else NULL */
    RNNX_ST_W_PEEP = 5, /* (3H,) an LSTM's peepholes [Pi, Pf, Po], or NULL */
    RNNX_ST_PER_SUBLAYER = 6
};

/* The tensors of one sub-layer of an RNNX_STREAM_INT8 or _BFLOAT16 layer, in
 * this order: each weight matrix as rnnx.quantize stores it (int8_t with its
 * float scales (rows,), or uint16_t bfloat16 bits with scales NULL), the
 * biases float32 or NULL.  No peepholes. */
enum rnnx_stream_qtensor {
    RNNX_SQ_W_IH = 0,   /* (G, in) */
    RNNX_SQ_S_IH = 1,   /* (G,) int8 only */
    RNNX_SQ_W_HH = 2,   /* (G, S) */
    RNNX_SQ_S_HH = 3,   /* (G,) int8 only */
    RNNX_SQ_B_IH = 4,   /* (G,) or NULL */
    RNNX_SQ_B_HH = 5,   /* (G,) or NULL */
    RNNX_SQ_W_HR = 6,   /* (P, H) with a projection, else NULL */
    RNNX_SQ_S_HR = 7,   /* (P,) int8 with a projection, else NULL */
    RNNX_SQ_PER_SUBLAYER = 8
};

/* One layer of the list.  Every tensor is C-contiguous, of the stream's dtype,
 * aligned to its element size, and must stay valid and unchanged while the
 * stream is used (the stream reads biases, peepholes, Dense weights and the
 * Embedding table in place; it packs W_hh, W_hr and W_ih^T into its memory). */
typedef struct rnnx_stream_layer {
    int kind;           /* enum rnnx_stream_kind */
    int cell;           /* recurrent: enum rnnx_cell */
    int input_size;     /* features in; an Embedding's number of ids */
    int hidden_size;    /* H; a Dense layer's out features; an Embedding's dimension */
    int proj_size;      /* recurrent LSTM: P (0 < P < H) or 0; else 0 */
    int num_layers;     /* recurrent: sub-layers of the stack (>= 1); else 1 */
    int num_directions; /* 1; 2 (bidirectional) cannot stream: RNNX_EUNSUPPORTED */
    int activation;     /* Dense: enum rnnx_activation_kind; else 0 */
    const void* const* tensors;
                        /* recurrent: RNNX_ST_PER_SUBLAYER entries per sub-layer (see
                           enum rnnx_stream_tensor); int8/bfloat16: RNNX_SQ_PER_SUBLAYER
                           (enum rnnx_stream_qtensor); Dense: weight (out,in), bias (out,)
                           or NULL; Embedding: table (input_size, hidden_size) */
} rnnx_stream_layer;

/* What a stream is made of. */
typedef struct rnnx_stream_spec {
    int dtype;          /* RNNX_FLOAT32 or RNNX_FLOAT64 */
    int B;              /* rows stepped together, >= 1 */
    int num_layers;     /* entries of layers, >= 1 */
    const rnnx_stream_layer* layers;  /* must outlive the stream */
    int bit_exact;      /* 1: every step's numbers equal those of a whole-sequence call over
                           the same steps (rnnx_model_run, or rnnx_forward with row_exact = 1)
                           bit for bit, in both dtypes: each row's input projection is
                           computed alone.  0: a float32 step with a large input projection
                           (B*G*in > 4M) may use the caller's BLAS, faster but with other
                           rounding.  Named here so that no caller relies on which pointers
                           it passes. */
} rnnx_stream_spec;

/* A stream: small, the caller's; its state, packed weights and scratch live in
 * mem.  Fields are the stream's own: read them, do not write them. */
typedef struct rnnx_step_stream {
    rnnx_stream_spec spec;
    int parity;           /* which half of mem's state holds the current state */
    int in_width;         /* features of x (0 for ids) */
    int out_width;        /* features of y */
    size_t state_elems;   /* elements of one state (see rnnx_step_stream_state) */
    size_t act_elems;     /* elements of one activation buffer */
    size_t state_off, act_off, work_off;  /* byte offsets of the regions in mem */
    size_t qrec_off;      /* where the records of int8/bfloat16 layers begin */
    void* mem;
} rnnx_step_stream;

/* *bytes = the memory a stream of spec needs; the status of spec's validation
 * (RNNX_EUNSUPPORTED for a bidirectional layer).  Reads the layers' shapes only:
 * their tensors may be NULL here (rnnx_step_stream_init checks them). */
int rnnx_step_stream_size(const rnnx_stream_spec* spec, size_t* bytes);

/* Checks spec, sets *s up on mem (mem_bytes >= rnnx_step_stream_size's, aligned
 * to 8 bytes), packs the weights, zero state. */
int rnnx_step_stream_init(rnnx_step_stream* s, const rnnx_stream_spec* spec, void* mem,
                          size_t mem_bytes);

/* The state back to zeros. */
int rnnx_step_stream_reset(rnnx_step_stream* s);

/* The current state, state_elems elements of the dtype, read or written in
 * place between steps: recurrent layer after recurrent layer in list order,
 * each as h (L,B,S) then, for an LSTM, c (L,B,H) (S the state width): the
 * layout of rnnx_model_state_size. */
void* rnnx_step_stream_state(const rnnx_step_stream* s);

/* One step: x (B,in_width) of the dtype, or (B,) int32 ids in [0, input_size)
 * with an Embedding first (RNNX_EINVAL before anything changes otherwise);
 * y (B,out_width) OUT, not overlapping x or mem.  blas may be NULL (the core's
 * own products, one thread).  Never allocates, never fails otherwise. */
int rnnx_step_stream_step(rnnx_step_stream* s, const rnnx_blas* blas, const void* x, void* y);

/* T steps at once: x (T,B,in_width) or (T,B) ids, y (T,B,out_width): the numbers of T
 * calls of rnnx_step_stream_step (bit for bit), faster for T > 1 (each recurrent
 * sub-layer runs the T steps as one whole-sequence call of the driver, the input
 * projection hoisted over T*B rows).  work: work_bytes >= rnnx_step_stream_run_size(s,
 * T) (0: T < 1 or T*B too large), aligned to 8 bytes, scratch. */
size_t rnnx_step_stream_run_size(const rnnx_step_stream* s, int T);
int rnnx_step_stream_run(rnnx_step_stream* s, const rnnx_blas* blas, const void* x, int T,
                         void* y, void* work, size_t work_bytes);

#ifdef __cplusplus
}
#endif

#endif /* RNNX_STREAM_H */
