/*
 * stream/heads.h: the layers without a state (stream/heads.c), which the
 * stream and the model layer's whole-sequence run share.  Internal.
 */
#ifndef RNNX_STREAM_HEADS_H
#define RNNX_STREAM_HEADS_H

#include <stddef.h>
#include <stdint.h>

#include "rnnx.h"
#include "rnnx_model.h"

/* A Dense layer: out (N,O) := act(x (N,In) @ w^T + b), w (O,In), b (O,) or NULL,
 * act an enum rnnx_activation_kind; x and out do not overlap. */
void rnnx_dense_rows(int dtype, void* out, const void* x, const void* w, const void* b, int N,
                     int In, int O, int activation);

/* RNNX_EINVAL unless every one of the n ids lies in [0, num). */
int rnnx_check_ids(const int32_t* ids, size_t n, int num);

/* The Embedding: out (N,E) := table (V,E)[ids[n]], the ids checked in [0, V). */
void rnnx_embed_rows(int dtype, void* out, const int32_t* ids, const void* table, int E, size_t N);

/* dst (cols,rows) := src (rows,cols)^T, elements of elem bytes (W_ih^T for the row kernel). */
void rnnx_transpose_bytes(unsigned char* dst, const unsigned char* src, size_t rows, size_t cols,
                          size_t elem);

#endif /* RNNX_STREAM_HEADS_H */
