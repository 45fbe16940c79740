/*
 * stream/quantized.h: the stream's int8 and bfloat16 recurrent layers
 * (stream/quantized.c), for stream.c's "layer kinds" switches.  Internal.
 */
#ifndef RNNX_STREAM_QUANTIZED_H
#define RNNX_STREAM_QUANTIZED_H

#include <stddef.h>

#include "quant/quant.h"
#include "stream/stream.h"

/* What one such layer adds: bytes of records (one rnnx_qforward_args per
 * sub-layer), packed weights and work (the largest), elements of state; its
 * output's width. */
typedef struct rnnx_sq_needs {
    size_t records, state, weights, work;
    int out_width;
} rnnx_sq_needs;

/* Checks layer l (its tensors too if tensors) fed in features, adds to *n. */
int rnnx_sq_needs_of(const rnnx_stream_spec* sp, const rnnx_stream_layer* l, int in, int tensors,
                     rnnx_sq_needs* n);

/* Fills l's records from *rec on (T = 1, no work: each call sets its own) and
 * packs its weights at *w (advancing both). */
void rnnx_sq_pack(const rnnx_stream_spec* sp, const rnnx_stream_layer* l, int in,
                  rnnx_qforward_args** rec, unsigned char** w);

/* Bytes of work T steps of l take (its records from *rec on, advanced past
 * them); 0 if they do not fit. */
size_t rnnx_sq_run_work(const rnnx_stream_layer* l, const rnnx_qforward_args** rec, int T);

/* T steps of l: *cur (T,B,in) in, each sub-layer's output into acts[*next]
 * (flipping *next) or, for the last sub-layer when y is not NULL, into y;
 * state read at now and written at then; work: rnnx_sq_run_work's bytes.
 * Returns the bytes of l's state. */
size_t rnnx_sq_step(const rnnx_stream_layer* l, const rnnx_blas* blas,
                    const rnnx_qforward_args** rec, int T, int B, const void** cur, void* y,
                    unsigned char* const acts[2], int* next, unsigned char* now,
                    unsigned char* then, void* work);

#endif /* RNNX_STREAM_QUANTIZED_H */
