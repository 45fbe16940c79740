/*
 * rnnx_model.h: the model layer of the rnnx C library.
 *
 * A model is what rnnx.Sequential is in Python: recurrent layers (RNN, LSTM,
 * GRU; stacked, uni- or bidirectional) and Dense layers, run input first, with
 * an output at every step (many-to-many) or one per sequence (many-to-one).
 * It comes from a .rnnx file (docs/rnnx-format.md), from a const buffer
 * holding one (a microcontroller keeps it in flash), or from C source written
 * by rnnx.export_c().
 *
 * Nothing here allocates, prints or exits.  Every buffer comes from the caller,
 * sized by a size function; every function returns a status (RNNX_OK = 0, or
 * a code that rnnx_strerror() names).  A model is read-only once made, so any
 * number of threads may use one model, each with its own stream or work.
 *
 * Layouts are those of rnnx.h: time-major, row-major, x (T,B,I), y (T,B,out)
 * or (B,out) for a many-to-one model; elements of the model's dtype.
 *
 * Token models: a model whose first layer is an Embedding (RNNX_EMBEDDING, a
 * table lookup, rnnx.Embedding) takes int32 ids instead of features: x is
 * (T,B) int32_t for rnnx_model_run and (B,) int32_t for rnnx_stream_step, each
 * id in [0, input_size) (input_size is then the number of embeddings); an id
 * out of range gives RNNX_EINVAL before anything is computed or changed.
 */
#ifndef RNNX_MODEL_H
#define RNNX_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "rnnx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes of the model layer, after the core's RNNX_OK/EINVAL/ENULL. */
enum rnnx_model_status {
    RNNX_EMAGIC = 16,      /* not an .rnnx file: the magic bytes differ */
    RNNX_EVERSION = 17,    /* an .rnnx file of a format version this library does not read */
    RNNX_ETRUNCATED = 18,  /* the buffer or file is shorter than the file says it is */
    RNNX_ECHECKSUM = 19,   /* the CRC-32 does not match: the bytes were altered */
    RNNX_ECORRUPT = 20,    /* a field is out of range or the layers do not fit together */
    RNNX_ENOMEM = 21,      /* the memory handed in is smaller than the size function said */
    RNNX_EALIGN = 22,      /* a buffer is not aligned to its element size */
    RNNX_EIO = 23,         /* the file cannot be opened or read */
    RNNX_EUNSUPPORTED = 24 /* a valid request this model or host cannot do (a bidirectional
                              stream; an .rnnx buffer on a big-endian host) */
};

/* A Dense layer's and an Embedding's kinds, beside enum rnnx_cell's
 * recurrent cells.  An Embedding may only be the first layer. */
enum { RNNX_DENSE = 16, RNNX_EMBEDDING = 17 };

/* Dense activations, as rnnx.Dense names them. */
enum rnnx_activation_kind {
    RNNX_ACT_IDENTITY = 0,
    RNNX_ACT_SIGMOID = 1,
    RNNX_ACT_SOFTMAX = 2,  /* over the features of one row */
    RNNX_ACT_TANH = 3,
    RNNX_ACT_RELU = 4
};

/* rnnx_model.many_to_one: what a many-to-one model reads from its last recurrent layer
 * (Python's Sequential(many_to_one=...)); the two differ for a bidirectional layer only. */
enum rnnx_many_to_one {
    RNNX_MANY_TO_MANY = 0,        /* y (T,B,out): an output at every step */
    RNNX_MANY_TO_ONE_STATE = 1,   /* the final states: forward at each row's last valid
                                     step, reverse at t = 0 ("state") */
    RNNX_MANY_TO_ONE_OUTPUT = 2   /* y at each row's last valid step, both halves ("output") */
};

/* rnnx_layer.weights: how a recurrent layer's weight matrices are stored
 * (rnnx.quantize; Dense layers and an Embedding: RNNX_WEIGHTS_FLOAT only).
 * Biases, states and activations stay in the model's dtype, which must be
 * RNNX_FLOAT32 for the two reduced forms. */
enum rnnx_weights {
    RNNX_WEIGHTS_FLOAT = 0,     /* the model's dtype */
    RNNX_WEIGHTS_INT8 = 1,      /* int8_t (rows,cols), then its float scales (rows,): row r
                                   of the matrix is scale[r] * data[r][:] */
    RNNX_WEIGHTS_BFLOAT16 = 2   /* uint16_t (rows,cols): the upper 16 bits of a float32 */
};

/* One layer of a model: a recurrent stack (rnnx.RNN/LSTM/GRU), a Dense or an
 * Embedding (the first layer only).
 *
 * tensors lists the layer's arrays in the order of its Python state_dict:
 *   recurrent: for k in 0..num_layers-1, for d in 0..num_directions-1:
 *              w_ih (G, k ? D*S : input_size), w_hh (G,S), then b_ih (G,), b_hh (G,) if bias,
 *              then w_hr (P,H) if proj_size (S = proj_size if > 0, else H)
 *   Dense:     weight (hidden_size, input_size), then bias (hidden_size,) if bias
 *   Embedding: weight (input_size, hidden_size): row i is id i's vector;
 *              num_layers 1, num_directions 1, bias 0, activation 0
 * With weights RNNX_WEIGHTS_INT8 each weight matrix (w_ih, w_hh, w_hr) is
 * two entries, its int8 data then its float scales (rows,); with
 * RNNX_WEIGHTS_BFLOAT16 one entry of uint16_t.  So an int8 LSTM sub-layer is
 * w_ih, w_ih scales, w_hh, w_hh scales, b_ih, b_hh (then w_hr, w_hr scales). */
typedef struct rnnx_layer {
    int kind;             /* enum rnnx_cell, RNNX_DENSE or RNNX_EMBEDDING */
    int input_size;       /* features in; an Embedding's num_embeddings */
    int hidden_size;      /* H; a Dense layer's out_features; an Embedding's embedding_dim */
    int num_layers;       /* L of the stack; 1 for Dense */
    int num_directions;   /* 1, or 2 for bidirectional; 1 for Dense */
    int bias;             /* 1: the layer has biases */
    int activation;       /* enum rnnx_activation_kind, Dense only (0 otherwise) */
    const void* const* tensors;
    int weights;          /* enum rnnx_weights (after tensors, so that older initializers
                             leave it 0) */
    int proj_size;        /* an LSTM's projection P (PyTorch's proj_size, 0 < P < H), or 0:
                             then h and the layer's output are P wide (D*P), c stays H */
} rnnx_layer;

typedef struct rnnx_model {
    int dtype;            /* RNNX_FLOAT32 or RNNX_FLOAT64 */
    int many_to_one;      /* enum rnnx_many_to_one; not 0: y is (B,out), one row a sequence */
    int num_layers;       /* entries of layers */
    int input_size;       /* I of x; the number of ids if layers[0] is an Embedding */
    int output_size;      /* features of y */
    const rnnx_layer* layers;
} rnnx_model;

/* The name of a status code: "ok", "the CRC-32 of the file does not match", ...
 * Never NULL; a static string. */
const char* rnnx_strerror(int status);

/* Checks a model's fields (sizes fit together, tensors non-NULL, alignment).
 * rnnx_model_from_buffer runs it; call it on a hand-made or exported model. */
int rnnx_model_check(const rnnx_model* m);

/* ---------------------------------------------------------- reading .rnnx --- */

/* *bytes = the memory rnnx_model_from_buffer needs for the layer table of the
 * .rnnx image buf[0..len).  Checks the whole image (magic, version, size,
 * CRC-32, layer fields) and returns its status. */
int rnnx_model_mem_size(const void* buf, size_t len, size_t* bytes);

/* Makes *m from the image buf[0..len).  The weights are used in place, so buf
 * must stay valid and unchanged while *m is used and be aligned to 8 bytes
 * (RNNX_EALIGN otherwise); mem (mem_bytes >= rnnx_model_mem_size's, aligned to
 * sizeof(void*)) receives the layer table.  Nothing is allocated.  The
 * tensors are little-endian: a big-endian host gets RNNX_EUNSUPPORTED (use
 * rnnx.export_c's C source there). */
int rnnx_model_from_buffer(rnnx_model* m, void* mem, size_t mem_bytes,
                           const void* buf, size_t len);

#ifndef RNNX_NO_STDIO
/* *bytes = the memory rnnx_model_from_file needs for the file at path: the
 * file itself plus its layer table.  Reads and checks the whole file. */
int rnnx_model_file_size(const char* path, size_t* bytes);

/* Reads the file at path into mem (mem_bytes >= rnnx_model_file_size's,
 * aligned to 8 bytes) and makes *m from it; *m points into mem. */
int rnnx_model_from_file(rnnx_model* m, const char* path, void* mem, size_t mem_bytes);
#endif

/* ------------------------------------------------------- whole sequences --- */

/* Bytes of work rnnx_model_run needs for T steps of B rows. */
size_t rnnx_model_run_work_size(const rnnx_model* m, int T, int B);

/* Bytes of the recurrent state of B rows (rnnx_model_run's state0 and state_n),
 * elements of the model's dtype laid out, recurrent layer after recurrent layer
 * in model order (Dense layers have none), as each layer's state in Python:
 *   h (L*D,B,H)                   RNN, GRU  (row k*D+d: sub-layer k, direction d)
 *   h (L*D,B,H), then c (L*D,B,H) LSTM
 * so Sequential's state tuple, each array raveled and concatenated in order (h
 * before c), is this buffer.  0 if m fails rnnx_model_check or B < 1. */
size_t rnnx_model_state_size(const rnnx_model* m, int B);

/* Runs x (T,B,I) (int32 ids (T,B) for a token model).  lengths (B,),
 * 0 <= lengths[b] <= T, or NULL: every row has T steps; a row of length 0
 * runs no step (y 0, its final state = its initial one).  y is (T,B,out), rows past their length 0 where the last layer is
 * recurrent (Dense heads see those zeros), or (B,out) for a many-to-one model.
 *
 * state0 (IN) is the initial state, laid out as rnnx_model_state_size says, or
 * NULL: zeros.  state_n (OUT) receives each row's state after its last valid
 * step (a reverse direction's after t = 0), or NULL: not wanted.  state_n may
 * be state0 (updated in place); neither may overlap x, y or work.  So a long
 * signal runs in chunks, each call's state_n the next call's state0, and
 * equals one call bit for bit (no bidirectional layer, lengths NULL):
 *
 *   rnnx_model_run(&m, NULL, x, T1, B, NULL, NULL, state, y, work, wb);
 *   rnnx_model_run(&m, NULL, x + T1*B*I, T2, B, NULL, state, state, y + T1*B*out, work, wb);
 *
 * blas may be NULL (the core's own gemm).  work: work_bytes >=
 * rnnx_model_run_work_size(m, T, B), aligned to 8 bytes; state0 and state_n
 * aligned to their element size.  A failed run may have written part of y and
 * state_n. */
int rnnx_model_run(const rnnx_model* m, const rnnx_blas* blas, const void* x, int T, int B,
                   const int64_t* lengths, const void* state0, void* state_n, void* y,
                   void* work, size_t work_bytes);

/* ------------------------------------------------------------- streaming --- */

/* A stream: one step at a time through a model with no bidirectional layer,
 * for B rows at once.  Its state, scratch and a transposed copy of the
 * recurrent weights (what the step kernel reads) live in the caller's memory;
 * the struct itself is small and the caller owns it. */
typedef struct rnnx_stream {
    const rnnx_model* model;
    const rnnx_blas* blas;
    int B;
    int parity;           /* which half of the state ping-pong holds the current state */
    void* mem;            /* the caller's memory: the core's one stream over the model's
                             layers (csrc/stream/), its states, packed weights, scratch */
    size_t mem_bytes;
} rnnx_stream;

/* Bytes of memory a stream of B rows needs (state + scratch + transposes),
 * or 0 if m cannot stream (see rnnx_stream_init's status for why). */
size_t rnnx_stream_size(const rnnx_model* m, int B);

/* Sets up *s on mem (mem_bytes >= rnnx_stream_size(m, B), aligned to 8 bytes),
 * with zero state.  blas may be NULL; m and blas must outlive the stream. */
int rnnx_stream_init(rnnx_stream* s, const rnnx_model* m, const rnnx_blas* blas, int B,
                     void* mem, size_t mem_bytes);

/* Sets the state back to zeros. */
int rnnx_stream_reset(rnnx_stream* s);

/* One step: x (B,I) in (int32 ids (B,) for a token model), y (B,out) out (the model's output if the sequence
 * ended at this step, for a many-to-one model).  Never allocates.  Validates nothing but
 * its pointers and the ids (rnnx_stream_init checked the model once), and equals
 * rnnx_model_run over the same steps bit for bit. */
int rnnx_stream_step(rnnx_stream* s, const void* x, void* y);

#ifdef __cplusplus
}
#endif

#endif /* RNNX_MODEL_H */
