/*
 * layout.h: what each cell is, and where everything lives in the cache and
 * work buffers.  The only place these are written down: the size functions of
 * rnnx.h (dispatch.c) and the sequence drivers (driver/forward.c, driver/backward.c) both read them here.
 * Internal to the core.  Sizes and offsets count elements of the dtype.
 */
#ifndef RNNX_LAYOUT_H
#define RNNX_LAYOUT_H

#include <stddef.h>

#include "compiler.h"
#include "rnnx.h"

/* One cell, with named fields: what it is (name, gates and their order, state
 * tensors), which options it takes (RNNX_OPTION_*), and what its training
 * cache and backward scratch hold beyond the states.  rnnx_cell_info (rnnx.h)
 * shows the public part; its forward and backward step functions and their
 * phases are the cell's plan in csrc/cells/<cell>.c. */
typedef struct rnnx_cell_desc {
    int cell;                /* enum rnnx_cell */
    const char* name;
    int gates;               /* G = gates * H */
    const char* gate_order;  /* the gates of W_ih's rows, comma separated */
    int states;              /* 1 (h) or 2 (h, c) */
    const char* state_names[2];
    int options;             /* RNNX_OPTION_* this cell takes */
    int gates_in_cache;      /* training keeps the (T,B,G) gate activations */
    int aux_in_cache;        /* training keeps one more (T,B,H) tensor: LSTM tanh(c), GRU's
                                W_hn h_prev + b_hn (reset after) or r * h_prev (reset before) */
    int split_grads;         /* GRU reset after: a second (T,B,G) gradient for the W_hh side */
} rnnx_cell_desc;

static const rnnx_cell_desc rnnx_cells[] = {
    {.cell = RNNX_RNN_TANH, .name = "rnn_tanh", .gates = 1, .gate_order = "h", .states = 1,
     .state_names = {"h", NULL}},
    {.cell = RNNX_RNN_RELU, .name = "rnn_relu", .gates = 1, .gate_order = "h", .states = 1,
     .state_names = {"h", NULL}},
    {.cell = RNNX_LSTM, .name = "lstm", .gates = 4, .gate_order = "i,f,g,o", .states = 2,
     .state_names = {"h", "c"}, .options = RNNX_OPTION_PROJ | RNNX_OPTION_PEEPHOLE,
     .gates_in_cache = 1, .aux_in_cache = 1},
    {.cell = RNNX_GRU, .name = "gru", .gates = 3, .gate_order = "r,z,n", .states = 1,
     .state_names = {"h", NULL}, .gates_in_cache = 1, .aux_in_cache = 1, .split_grads = 1},
    {.cell = RNNX_GRU_RESET_BEFORE, .name = "gru_reset_before", .gates = 3,
     .gate_order = "r,z,n", .states = 1, .state_names = {"h", NULL}, .gates_in_cache = 1,
     .aux_in_cache = 1},
};

#define RNNX_N_CELLS ((int)(sizeof rnnx_cells / sizeof rnnx_cells[0]))

/* The descriptor of a cell code, or NULL for an unknown one. */
static inline const rnnx_cell_desc* rnnx_cell_find(int cell)
{
    return (cell >= 0 && cell < RNNX_N_CELLS) ? &rnnx_cells[cell] : NULL;
}

/* Units per panel of the packed W_hh: 64 bytes of each gate, so a panel's row
 * for one gate is one cache line.  Fixed per dtype, so packed weights serve
 * every instruction set. */
#define RNNX_UNITS_F32 16
#define RNNX_UNITS_F64 8

/* The packed W_hh: panel p (units p*U .. p*U+U-1) holds, for each gate g, a
 * (H,U) block: packed[((p*gates + g)*H + k)*U + u] = W_hh[g*H + p*U + u][k],
 * zero for units past H. */
static inline size_t rnnx_packed_elems(const rnnx_cell_desc* d, int H, int units)
{
    const size_t panels = ((size_t)H + units - 1) / units;
    return panels * d->gates * (size_t)H * units;
}

/* The same for `gates` blocks of N units each over an inner dimension K:
 * packed[((p*gates + g)*K + k)*U + u] = W[g*N + p*U + u][k].  An LSTM with a
 * projection (proj_size P) packs W_hh (4H,P) with N = H, K = P, and W_hr (P,H)
 * with gates = 1, N = P, K = H. */
static inline size_t rnnx_panels_elems(int gates, int N, int K, int units)
{
    const size_t panels = ((size_t)N + units - 1) / units;
    return panels * gates * (size_t)K * units;
}

/* A weight (rows, N) packed by units (strips of U units, (rows,U) each) for the
 * backward per-step product: rows * N rounded up to whole strips. */
static inline size_t rnnx_strips_elems(int rows, int N)
{
    return (size_t)rows * (((size_t)N + RNNX_UNITS_F32 - 1) / RNNX_UNITS_F32 * RNNX_UNITS_F32);
}

/* The width of the state h and of y: proj_size P for an LSTM with a projection
 * (h_t = W_hr (o * tanh(c_t)), P < H), else H.  c stays (B,H). */
static inline int rnnx_state_width(int H, int P)
{
    return P > 0 ? P : H;
}

/* What rnnx_pack_weights_proj writes: W_hh (G,S) in panels of `units` (S the
 * state width), then, with a projection, W_hr (P,H) in panels of P units. */
static inline size_t rnnx_packed_elems_proj(const rnnx_cell_desc* d, int H, int P, int units)
{
    return rnnx_panels_elems(d->gates, H, rnnx_state_width(H, P), units) +
           (P > 0 ? rnnx_panels_elems(1, P, H, units) : 0);
}

/* The training cache.  hs is (T+1,B,P) and cs (T+1,B,H) (see state_offset in
 * driver/step.h; P = rnnx_state_width), gates (T,B,G), aux (T,B,H), and with a
 * projection m (T,B,H) = o * tanh(c), the input of W_hr; a part the cell does
 * not keep has size 0. */
typedef struct rnnx_cache_layout {
    size_t hs, cs, gates, aux, m, total;
} rnnx_cache_layout;

static inline rnnx_cache_layout rnnx_cache_layout_of(const rnnx_cell_desc* d, int T, int B, int H,
                                                     int P)
{
    const size_t BH = (size_t)B * H, TBH = (size_t)T * BH, states = TBH + BH;
    const size_t BP = (size_t)B * rnnx_state_width(H, P), h_states = (size_t)T * BP + BP;
    rnnx_cache_layout c;
    c.hs = 0;
    c.cs = c.hs + h_states;
    c.gates = c.cs + (d->states == 2 ? states : 0);
    c.aux = c.gates + (d->gates_in_cache ? TBH * d->gates : 0);
    c.m = c.aux + (d->aux_in_cache ? TBH : 0);
    c.total = c.m + (P > 0 ? TBH : 0);
    return c;
}

/* The forward scratch. */
typedef struct rnnx_forward_work {
    size_t packed;  /* rnnx_panels_elems (for the larger f32 panel): W_hh packed per call */
    size_t packed_hr; /* the same for W_hr (P,H), with a projection */
    size_t w_ih_t;  /* (I*G) W_ih^T in the panels of rnnx's GEMM (input projection) */
    size_t h_ping;  /* (2,B,P) inference: the states of two consecutive steps */
    size_t c_ping;  /* (2,B,H) inference, LSTM: the same for c */
    size_t aux;     /* (B,H) inference: one step's aux (see rnnx_cell_desc) */
    size_t m;       /* (B,H) inference with a projection: one step's o * tanh(c) */
    size_t slab;    /* (T,B,G) gate pre-activations, where the cache does not hold them */
    size_t fused;   /* rnnx_panels_elems(gates, H, I + P): [W_ih | W_hh] packed for the fused
                       input projection (RNNX_PROJECTION_FUSED), inference only: in the
                       slab's room, after the one step's (B,G) gates fused inference keeps */
    size_t xh;      /* (B, I + P) the fused projection's input: one step's [x_t | h_{t-1}] */
    size_t bias;    /* (G,) the fused projection's start: b_ih + b_hh */
    size_t total;
} rnnx_forward_work;

static inline rnnx_forward_work rnnx_forward_work_of(const rnnx_cell_desc* d, int T, int B, int I,
                                                     int H, int P, int train)
{
    const size_t BH = (size_t)B * H, G = (size_t)d->gates * H;
    const size_t BP = (size_t)B * rnnx_state_width(H, P);
    const int slab_in_cache = train && d->gates_in_cache;
    rnnx_forward_work w;
    w.packed = 0;
    w.packed_hr = w.packed + rnnx_panels_elems(d->gates, H, rnnx_state_width(H, P), RNNX_UNITS_F32);
    w.w_ih_t = w.packed_hr + (P > 0 ? rnnx_panels_elems(1, P, H, RNNX_UNITS_F32) : 0);
    w.h_ping = w.w_ih_t + (size_t)I * G;
    w.c_ping = w.h_ping + 2 * BP;
    w.aux = w.c_ping + (d->states == 2 ? 2 * BH : 0);
    w.m = w.aux + BH;
    w.slab = w.m + (P > 0 ? BH : 0);
    w.total = w.slab + (slab_in_cache ? 0 : (size_t)T * B * G);
    const size_t K = (size_t)I + rnnx_state_width(H, P);  /* the fused product's depth */
    w.fused = w.slab + (size_t)B * G;
    w.xh = w.fused + rnnx_panels_elems(d->gates, H, 1, RNNX_UNITS_F32) * K;
    w.bias = w.xh + (size_t)B * K;
    return w;
}

/* Whether a forward's work has room for the fused input projection: inference
 * whose (T,B,G) slab, which fusing leaves unused but for one step's gates, holds
 * [W_ih | W_hh] packed, one step's [x_t | h_{t-1}] and the biases' sum.  So
 * fusing costs no memory: training, and sequences too short to hold the
 * weights (a stream's step), stay hoisted. */
static inline int rnnx_fused_fits(const rnnx_cell_desc* d, int T, int B, int I, int H, int P,
                                  int train)
{
    const rnnx_forward_work w = rnnx_forward_work_of(d, T, B, I, H, P, train);
    return !train && w.bias + (size_t)d->gates * H <= w.total;
}

/* The backward scratch. */
typedef struct rnnx_backward_work {
    size_t dg;      /* (T,B,G) gradient of the gate pre-activations (input side) */
    size_t dgh;     /* (T,B,G) the same on the W_hh side, GRU reset after */
    size_t dh;      /* (B,P) gradient at the current state (P = rnnx_state_width) */
    size_t dc;      /* (B,H) LSTM: at the current cell state */
    size_t drh;     /* (B,H) GRU reset before: at r * h_prev */
    size_t x_rows;  /* (B,I) one step's inputs with the rows past their length zeroed */
    size_t packed;  /* W_hh (G,P) packed by units for the per-step product (rnnx_strips_elems) */
    size_t dm;      /* (B,H) with a projection: gradient at m = o * tanh(c) */
    size_t dhs;     /* (T,B,P) with a projection: the gradient at every h_t, for dW_hr */
    size_t packed_hr; /* with a projection: W_hr (P,H) packed by units */
    size_t total;
} rnnx_backward_work;

static inline rnnx_backward_work rnnx_backward_work_of(const rnnx_cell_desc* d, int T, int B,
                                                       int I, int H, int P)
{
    const size_t BH = (size_t)B * H, TBG = (size_t)T * B * d->gates * H;
    const size_t BP = (size_t)B * P;
    rnnx_backward_work w;
    w.dg = 0;
    w.dgh = w.dg + TBG;
    w.dh = w.dgh + (d->split_grads ? TBG : 0);
    w.dc = w.dh + BH;
    w.drh = w.dc + BH;
    w.x_rows = w.drh + BH;
    w.packed = w.x_rows + (size_t)B * I;
    w.dm = w.packed + rnnx_strips_elems(d->gates * H, rnnx_state_width(H, P));
    w.dhs = w.dm + (P > 0 ? BH : 0);
    w.packed_hr = w.dhs + (P > 0 ? (size_t)T * BP : 0);
    w.total = w.packed_hr + (P > 0 ? rnnx_strips_elems(P, H) : 0);
    return w;
}

/* Whether an input projection's rows come out the same however many rows the
 * call has (driver/projection.c): rnnx's GEMM and the naive twin add each
 * element's products in order of k, so every path but float32 BLAS without
 * row_exact.  A sequence cut into chunks then gives the whole call's numbers
 * (driver/wavefront.c runs a layer whole when it need not cut it, and cuts
 * it otherwise knowing the chunks equal the whole). */
static inline int rnnx_projection_rowwise(int dtype, int path, int row_exact)
{
    return dtype == RNNX_FLOAT64 || path != RNNX_PATH_BLAS || row_exact;
}

#endif /* RNNX_LAYOUT_H */
